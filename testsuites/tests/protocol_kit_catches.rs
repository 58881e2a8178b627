//! The protocol kit against a deliberately broken server (`tests/fixtures/registry-storage-sloppy`,
//! Python): each case it breaks fails, with a message that says what the server did wrong.

use std::panic::{AssertUnwindSafe, catch_unwind};

use testsuites::protocol::{ProtocolCaseFn, run_protocol_case};

const SLOPPY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/registry-storage-sloppy"
);

/// Runs `case` on the sloppy server and returns its failure message.
fn failure(case_name: &str, case: ProtocolCaseFn) -> String {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        run_protocol_case(
            case_name,
            case,
            "sloppy",
            SLOPPY,
            &|_| testsuites::serde_json::json!({}),
            &|| Ok(()),
        );
    }));
    let Err(panic) = outcome else {
        panic!("{case_name} passed on a server that breaks it");
    };
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[test]
fn an_error_naming_another_driver_fails() {
    let message = failure("errors_echo_the_path_and_name_the_driver", |t| {
        Box::pin(testsuites::protocol::errors_echo_the_path_and_name_the_driver(t))
    });
    assert!(
        message.contains("every error's `driver` is the name WELCOME announced"),
        "{message}"
    );
}

#[test]
fn a_stream_beyond_its_window_fails() {
    let message = failure("server_stream_stays_within_its_window", |t| {
        Box::pin(testsuites::protocol::server_stream_stays_within_its_window(
            t,
        ))
    });
    assert!(
        message.contains("before any CREDIT a reader's window is 0 bytes"),
        "{message}"
    );
}

#[test]
fn a_server_that_waits_instead_of_fatal_fails() {
    let message = failure("unknown_frame_type_is_fatal", |t| {
        Box::pin(testsuites::protocol::unknown_frame_type_is_fatal(t))
    });
    assert!(
        message.contains("must send FATAL and close the connection"),
        "{message}"
    );
}
