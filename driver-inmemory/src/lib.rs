//! An in-memory storage driver for a container registry (Go: `storagedriver/inmemory`).
//!
//! [`InMemoryDriver`] keeps committed files in a sorted map in process memory, shared by all
//! its clones; nothing is persisted. It implements the whole [`storagedriver::StorageDriver`]
//! contract except `url_for` and appending to committed non-empty content, and detects
//! file/directory clashes like a filesystem. It is the reference driver for tests and for
//! development registries. [`InMemoryFactory`] creates it by the name `inmemory`, with no
//! parameters.
//!
//! Reads never copy: `get_content` returns the stored [`bytes::Bytes`] and `reader` yields
//! slices of it. The store's lock is held only for map lookups and updates, never across an
//! `.await`; writers build their content apart and publish it in one step.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> storagedriver::Result<()> {
//! use bytes::Bytes;
//! use driver_inmemory::InMemoryDriver;
//! use futures::TryStreamExt;
//! use storagedriver::StorageDriver;
//!
//! let driver = InMemoryDriver::new();
//! driver.put_content("/docker/registry/v2/repositories/hello", Bytes::from_static(b"world")).await?;
//! assert_eq!(driver.list("/docker/registry/v2").await?, ["/docker/registry/v2/repositories"]);
//!
//! // A resumable upload: write, close, resume, commit.
//! let mut writer = driver.writer("/uploads/blob", false).await?;
//! writer.write(Bytes::from_static(b"hello, ")).await?;
//! writer.close().await?;
//! let mut writer = driver.writer("/uploads/blob", true).await?;
//! assert_eq!(writer.size(), 7);
//! writer.write(Bytes::from_static(b"world")).await?;
//! writer.commit().await?;
//!
//! let tail: Vec<Bytes> = driver.reader("/uploads/blob", 7).await?.try_collect().await?;
//! assert_eq!(tail.concat(), b"world");
//! assert_eq!(driver.stat("/uploads/blob").await?.size, 12);
//!
//! driver.delete("/uploads").await?;
//! assert!(driver.get_content("/uploads/blob").await.unwrap_err().is_not_found());
//! # Ok(()) }
//! ```

mod driver;
mod factory;
mod store;
mod writer;

pub use driver::{InMemoryDriver, READ_CHUNK_SIZE};
pub use factory::InMemoryFactory;

/// The name the driver registers under, and that every error it returns carries.
pub const NAME: &str = "inmemory";
