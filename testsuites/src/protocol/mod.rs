//! The protocol conformance kit: cases that speak frames to a driver executable directly, to
//! hold any server of `storagedriver-ipc`'s PROTOCOL.md to it, in any language.
//!
//! The behaviour suite drives a server through the real client, which only walks the happy
//! paths. These cases do what that client never does: reset requests before and after their
//! responses, abandon writers, send content the server refuses, ask for responses longer than a
//! frame, watch that a stream stays within its window, send malformed frames and numbers at
//! their limits. Every wait is bounded, so a server that hangs fails the case instead of the
//! run. A server is held to protocol 1.1 or later.
//!
//! [`register_ipc_suite!`](crate::register_ipc_suite) runs every case, as tests named
//! `protocol_kit_<case>`, beside the behaviour suite; [`run_protocol_case`] runs one by hand.

mod handshake;
mod malformed;
mod peer;
mod requests;
mod streams;
mod walks;
mod writers;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

pub use handshake::*;
pub use malformed::*;
pub use peer::{ANSWER_TIMEOUT, Peer, QUIET_PERIOD, Received};
pub use requests::*;
pub use streams::*;
pub use walks::*;
pub use writers::*;

use crate::sizes::servers_required;

/// The largest integer on the wire: 2^53 − 1, the largest an IEEE double holds exactly (a
/// JSON parser that reads numbers as doubles, JavaScript's among them, reads it right).
pub const MAX_EXACT_ID: u64 = (1 << 53) - 1;

/// The longest a case may run: every wait inside is bounded by [`ANSWER_TIMEOUT`], this
/// bounds the whole.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(300);

/// The server under test: its executable, the driver name it must announce, and its
/// parameters (for a fresh, empty store).
#[derive(Debug)]
pub struct Target {
    /// The `<name>` of `registry-storage-<name>`.
    pub name: String,
    /// The executable.
    pub executable: PathBuf,
    /// The parameters every server of this case is started with.
    pub parameters: Value,
}

impl Target {
    /// Starts a server; no frame is exchanged yet.
    pub async fn start(&self) -> Peer {
        Peer::start(&self.name, &self.executable, &self.parameters).await
    }

    /// Starts a server and does the handshake.
    pub async fn connect(&self) -> Peer {
        Peer::connected(&self.name, &self.executable, &self.parameters).await
    }
}

/// A case of the kit, as [`run_protocol_case`] takes it.
pub type ProtocolCaseFn = for<'a> fn(&'a Target) -> BoxFuture<'a, ()>;

/// Runs `case` against the executable `executable` of driver `name`, with the parameters
/// `parameters` returns for a fresh temporary directory, on a runtime of its own. When
/// `requires` says why the server cannot run (a missing test server), the case is skipped
/// with a note, or fails under `STORAGEDRIVER_REQUIRE_SERVERS=1`.
///
/// # Panics
///
/// When the case fails (that is how a test fails), or runs longer than [`CASE_TIMEOUT`].
pub fn run_protocol_case(
    case_name: &str,
    case: ProtocolCaseFn,
    name: &str,
    executable: &str,
    parameters: &dyn Fn(&Path) -> Value,
    requires: &dyn Fn() -> Result<(), String>,
) {
    if let Err(reason) = requires() {
        assert!(
            !servers_required(),
            "{case_name}: skipped ({reason}), but STORAGEDRIVER_REQUIRE_SERVERS=1 requires it"
        );
        eprintln!("{case_name}: skipped: {reason}");
        return;
    }
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("cannot create a temporary directory: {e}"),
    };
    let target = Arc::new(Target {
        name: name.to_owned(),
        executable: PathBuf::from(executable),
        parameters: parameters(dir.path()),
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("{case_name}: cannot start a tokio runtime: {e}"),
    };
    runtime.block_on(async {
        if tokio::time::timeout(CASE_TIMEOUT, case(&target))
            .await
            .is_err()
        {
            panic!("{case_name}: {name} did not finish within {CASE_TIMEOUT:?}");
        }
    });
}
