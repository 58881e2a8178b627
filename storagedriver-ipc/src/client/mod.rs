//! The client: a [`storagedriver::StorageDriver`] whose calls go to a driver server over the
//! IPC protocol.
//!
//! - [`spawn`]: starting the server process, its socket, and the handshake.
//! - [`connection`]: one connection, its read loop and liveness pings.
//! - [`calls`]: one request in flight.
//! - [`events`]: what the read loop hands a call.
//! - [`driver`]: [`IpcDriver`], the `StorageDriver` adapter.
//! - [`streams`]: the stream a `reader` returns.
//! - [`writer`]: the writer a `writer` returns.

use std::time::Duration;

mod calls;
mod connection;
mod driver;
mod events;
mod spawn;
mod streams;
mod writer;

pub use driver::IpcDriver;
pub use spawn::SpawnOptions;

/// How long a dropped client lets its server exit by itself before killing it.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The default liveness timeout: no frame for this long and the server is taken as hung.
pub const DEFAULT_LIVENESS_TIMEOUT: Duration = Duration::from_secs(10);

/// The default time a spawned server has to connect.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a failure waits for the child's exit status and last stderr lines.
const SETTLE: Duration = Duration::from_millis(700);
