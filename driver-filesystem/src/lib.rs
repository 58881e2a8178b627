//! A [`storagedriver::StorageDriver`] that keeps a registry's content in a local directory
//! tree (Go: `registry/storage/driver/filesystem`), registered as `filesystem`.
//!
//! The driver path `/a/b` is the file `<rootdirectory>/a/b`. Every write goes to a staging
//! file beside its target, under a name with a `#` (which the path grammar forbids, so no
//! path can reach it and no listing shows it), and is published by `rename`: readers see the
//! old content or the new, and a crash leaves no half-written file at a real path. A staging
//! file belongs to whoever holds its lock, so one that a killed process left is reused by the
//! next write of the path and removed by a delete of it: crashes leave nothing that grows.
//! With `fsync` on (the default) the data and the directory entry are on the disk before a
//! write is acknowledged; see [`FilesystemConfig::fsync`] for the cost.
//!
//! # Nothing outside the root
//!
//! The root is opened once, and every path is resolved beneath it when it is used
//! (`openat2(RESOLVE_BENEATH)`, through cap-std and rustix), so no symlink in the tree, nor
//! one swapped in while a call runs, leads a read, write, rename or delete outside the root.
//! A relative symlink that stays inside the root is followed; a symlink that leads outside,
//! and any absolute symlink, is refused with an error that names the driver path and says
//! why. A `put_content`, `commit` or `rename` onto a symlink replaces the symlink itself. The
//! root itself may be a symlink.
//!
//! # Writers
//!
//! The upload of a [`storagedriver::FileWriter`] lives in `<target>#upload`, a fixed name, so
//! a writer closed without committing is resumed with `writer(path, true)`, also by a new
//! driver or process over the same root. A later writer of a path supersedes an earlier one,
//! across processes too: the earlier one's `close`, `commit` and `cancel` fail with
//! [`storagedriver::Error::WriterFinished`] in state `superseded` and change nothing.
//! Blocking filesystem calls run on tokio's blocking threads, at most `maxthreads` at once.
//! The driver needs a tokio runtime, and Linux or another system with `flock`.
//!
//! # Parameters
//!
//! | key | default | |
//! |---|---|---|
//! | `rootdirectory` | `/var/lib/registry` | an absolute path; created if missing |
//! | `maxthreads` | 100 | at least 25 |
//! | `fsync` | `true` | flush writes to the disk before acknowledging them |
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use driver_filesystem::{FilesystemConfig, FilesystemDriver};
//! use futures::TryStreamExt;
//! use storagedriver::StorageDriver;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let driver = FilesystemDriver::new(FilesystemConfig::new(dir.path()).with_fsync(false))?;
//!
//! driver.put_content("/docker/registry/v2/repositories/hello", Bytes::from("manifest")).await?;
//! assert_eq!(&driver.get_content("/docker/registry/v2/repositories/hello").await?[..], b"manifest");
//!
//! // A resumable upload: written, closed, resumed by a fresh driver over the same root.
//! let mut writer = driver.writer("/blobs/data", false).await?;
//! writer.write(Bytes::from("hello, ")).await?;
//! writer.close().await?;
//! let again = FilesystemDriver::with_root(dir.path())?;
//! let mut writer = again.writer("/blobs/data", true).await?;
//! assert_eq!(writer.size(), 7);
//! writer.write(Bytes::from("world")).await?;
//! writer.commit().await?;
//!
//! let chunks: Vec<Bytes> = again.reader("/blobs/data", 7).await?.try_collect().await?;
//! assert_eq!(chunks.concat(), b"world");
//! assert_eq!(again.list("/").await?, ["/blobs", "/docker"]);
//! # Ok(()) }
//! ```

mod blocking;
mod config;
mod driver;
mod error;
mod factory;
mod lock;
mod names;
mod reader;
mod root;
mod staging;
mod visibility;
mod walk;
mod writer;

pub use config::FilesystemConfig;
pub use driver::FilesystemDriver;
pub use error::DRIVER_NAME;
pub use factory::FilesystemFactory;
