//! The server: serves a [`storagedriver::StorageDriver`] over the IPC protocol.
//!
//! - [`entry`]: the process entry points and the reading of parameters.
//! - [`connection`]: one connection's state, handshake, serving loop and responses.
//! - [`dispatch`]: each frame and each request to where it belongs.
//! - [`send`]: the streams the server sends.
//! - [`receive`]: the streams the client sends, and writer handles.
//! - [`walk`]: the walk and its turns.

mod connection;
mod dispatch;
mod entry;
mod receive;
mod send;
mod walk;

pub use entry::{run_driver_executable, serve, serve_from_env};
