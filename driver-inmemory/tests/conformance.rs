//! The conformance suite on the in-memory driver: one test per behaviour of the contract.

use std::sync::Arc;

use driver_inmemory::InMemoryDriver;
use testsuites::Fixture;

testsuites::register_in_process_suite!(|| async { Fixture::new(Arc::new(InMemoryDriver::new())) });
