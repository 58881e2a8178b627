//! The conformance suite against real S3 servers: single-node Garage (checks SigV4) and
//! ministack (a second, independent implementation). `scripts/test.sh` starts both.

mod common;

mod garage {
    testsuites::register_in_process_suite!(|| async { super::common::fixture("GARAGE") });
}

mod ministack {
    testsuites::register_in_process_suite!(|| async { super::common::fixture("MINISTACK") });
}
