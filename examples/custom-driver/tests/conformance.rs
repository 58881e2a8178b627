//! The whole conformance suite on `MapDriver`: one test per behaviour of the contract.

use std::sync::Arc;

use custom_driver::MapDriver;
use testsuites::Fixture;

testsuites::register_in_process_suite!(|| async { Fixture::new(Arc::new(MapDriver::new())) });
