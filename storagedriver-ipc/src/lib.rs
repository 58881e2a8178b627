//! Storage drivers as separate processes: the client and server of the storage driver IPC
//! protocol (see `PROTOCOL.md` in this crate).
//!
//! A driver can run as its own executable, `registry-storage-<name>`, written in any
//! language. The registry side, [`IpcDriver`], is a [`storagedriver::StorageDriver`] whose
//! calls go to that child process over a Unix socket; the server side, [`serve`], serves any
//! `StorageDriver` over such a connection, and [`run_driver_executable`] is the whole `main`
//! of a driver executable written in Rust.
//!
//! - Requests are multiplexed on one connection and run concurrently on the server.
//! - Streams (`reader`, `get_content`, `put_content`, writers) move in frames of at most
//!   1 MiB under per-stream flow control, so memory stays bounded on both sides whatever the
//!   size. With a peer of protocol 1.1 or later a window starts small (64 KiB, and 0 for a
//!   stream the server sends until the client reads it) and grows with the consumer's pace up
//!   to 4 MiB: a stream nobody reads costs almost nothing, a busy one is not held back.
//! - Every integer on the wire is exact in an IEEE double (at most 2^53 − 1), so that peers
//!   in any language read it right; with a peer of protocol 1.2 a modification time travels as
//!   seconds and nanoseconds (`mod_time_s`, `mod_time_nanos`), with older peers as
//!   `mod_time_ns`.
//! - With a peer of protocol 1.3 a walk streams its entries within a window, and a skipped
//!   directory or a stop reaches the server as one `WALK_CONTROL`; with older peers the two
//!   sides take a turn per entry.
//! - Errors of the server's driver come back as the same [`storagedriver::Error`] variants
//!   with the same fields. Failures of the IPC layer (the child exited, the connection
//!   closed, no sign of life within the liveness timeout, a protocol error, a version
//!   mismatch) are `Error::Backend` errors naming the driver, the child's exit status and its
//!   last stderr lines.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> storagedriver::Result<()> {
//! use std::sync::Arc;
//! use storagedriver::StorageDriver;
//! use storagedriver_ipc::{serve, IpcDriver};
//! # use driver_inmemory::InMemoryDriver;
//!
//! // In process, over a socket pair; a real deployment uses IpcDriver::spawn.
//! let (server_side, client_side) = tokio::net::UnixStream::pair().unwrap();
//! tokio::spawn(serve(Arc::new(InMemoryDriver::new()), server_side));
//! let driver = IpcDriver::connect("inmemory", client_side).await?;
//! assert_eq!(driver.name(), "inmemory"); // the name the server announced
//! let err = driver.stat("/a").await.unwrap_err();
//! assert_eq!(err.to_string(), "inmemory: path not found: /a");
//! # Ok(()) }
//! ```

mod child;
mod client;
mod error;
mod flow;
pub mod frame;
mod ids;
mod io;
mod server;
mod socket;
mod wire;

pub use client::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_LIVENESS_TIMEOUT, IpcDriver, SpawnOptions};
pub use server::{run_driver_executable, serve, serve_from_env};

/// The protocol version this crate speaks (`MAJOR.MINOR`; peers with the same major are
/// compatible).
pub const PROTOCOL_VERSION: &str = "1.3";

/// The environment variable that gives a driver server the path of the socket to connect to.
pub const SOCKET_ENV: &str = "REGISTRY_STORAGE_IPC_SOCKET";

/// The environment variable that gives a driver server its parameters, as a JSON object, when
/// its argument 1 does not. [`IpcDriver::spawn`] always passes them here: a process's
/// environment is readable by its own user only (`/proc/<pid>/environ` is mode 0400), while
/// its command line is readable by every user of the machine, and parameters hold secrets
/// (an S3 secret key, an Azure account key).
pub const PARAMETERS_ENV: &str = "REGISTRY_STORAGE_IPC_PARAMETERS";
