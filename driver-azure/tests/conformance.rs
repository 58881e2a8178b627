//! The conformance suite against Azurite (which checks Shared Key signatures).
//! `scripts/test.sh` starts it.

mod common;

testsuites::register_in_process_suite!(|| async { common::fixture().await });
