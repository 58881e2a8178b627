//! A writer closed in this process and resumed in another: a `registry-storage-azure` child
//! started through the factory's executable fallback finds the staged blocks from its reserved
//! blobs, appends and commits, and this process reads the whole content back; and the child's
//! command line shows no secret. The behaviours are `testsuites::processes`, shared with the
//! S3 driver.

mod common;

use std::path::Path;

use storagedriver::Parameters;
use testsuites::processes;

/// The driver executable the tests start.
fn executable() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_registry-storage-azure"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_resumes_in_a_second_process() {
    let Some(server) = common::or_skip(common::server()) else {
        return;
    };
    let root = common::unique_root("process");
    let here = server.driver(&root).await;
    let params: Parameters = serde_json::from_value(server.parameters(&root)).expect("params");
    processes::a_writer_resumes_in_a_second_process(here.as_ref(), "azure", executable(), &params)
        .await;
}

/// A child killed with SIGKILL in the middle of a write: its upload stays resumable from the
/// last state it recorded (the bytes it had not flushed are lost, nothing else), and a resumed
/// writer that commits leaves no reserved blob behind.
#[tokio::test(flavor = "multi_thread")]
async fn a_writer_killed_mid_write_resumes_elsewhere() {
    let Some(server) = common::or_skip(common::server()) else {
        return;
    };
    let root = common::unique_root("killed");
    let params: Parameters = serde_json::from_value(server.parameters(&root)).expect("params");
    processes::a_writer_killed_mid_write_resumes_elsewhere(
        "azure",
        executable(),
        &params,
        || server.driver(&root),
        || async { server.raw(&root).list("~uploads").await },
    )
    .await;
}

/// The account key travels to the child in its environment, never on its command line.
#[tokio::test(flavor = "multi_thread")]
async fn the_account_key_stays_off_the_command_line() {
    let Some(server) = common::or_skip(common::server()) else {
        return;
    };
    let root = common::unique_root("secret");
    let params: Parameters = serde_json::from_value(server.parameters(&root)).expect("params");
    processes::parameters_stay_off_the_command_line("azure", executable(), &params, &server.key)
        .await;
}
