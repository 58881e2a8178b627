//! The storage driver contract of a container registry, after the Docker Registry's Go
//! `storagedriver` package.
//!
//! A registry keeps every blob and manifest behind [`StorageDriver`]: a filesystem-like
//! key/value store with whole-content get and put, streaming reads from an offset, resumable
//! [`FileWriter`]s, `stat`, `list`, `rename`, recursive `delete`, signed URLs and `walk`.
//! Drivers live in their own crates (`driver-inmemory`, `driver-filesystem`, ...) and depend on
//! this one only; `testsuites` checks any driver against the contract. The whole contract, in
//! one page for authors of drivers in any language, is `CONTRACT.md` at the top of the
//! repository; each method's `# Behavior` list below says the same for that method.
//!
//! This crate holds the trait, the [`FileWriter`] handle, [`FileInfo`], [`Capabilities`], the
//! one [`Error`] enum with its [`ErrorKind`], the path grammar ([`path`]), the generic walk
//! ([`walk`]), parameter parsing ([`params`]), [`forward`] for drivers that wrap another, and
//! the [`DriverFactory`] trait a driver crate implements to be created by name.
//!
//! # From Go to Rust
//!
//! | Go (`storagedriver`) | here |
//! |---|---|
//! | `StorageDriver` interface | [`StorageDriver`] trait, used as `Arc<dyn StorageDriver>` |
//! | `Name()` | [`StorageDriver::name`] |
//! | `GetContent(ctx, path)` | [`StorageDriver::get_content`] |
//! | `PutContent(ctx, path, content)` | [`StorageDriver::put_content`] |
//! | `Reader(ctx, path, offset)` / 2015 `ReadStream` | [`StorageDriver::reader`], a [`ByteStream`] |
//! | `Writer(ctx, path, append)` / 2015 `WriteStream` | [`StorageDriver::writer`], a [`FileWriter`] |
//! | `FileWriter.Write`, `Size`, `Close`, `Cancel`, `Commit` | [`FileWriter::write`], [`FileWriter::size`], [`FileWriter::close`], [`FileWriter::cancel`], [`FileWriter::commit`] |
//! | `Stat(ctx, path)`, `FileInfo` | [`StorageDriver::stat`], [`FileInfo`] |
//! | `List(ctx, path)` | [`StorageDriver::list`] (sorted) |
//! | `Move(ctx, src, dst)` | [`StorageDriver::rename`] |
//! | `Delete(ctx, path)` | [`StorageDriver::delete`] |
//! | `URLFor(ctx, path, options)` / `RedirectURL(r, path)` | [`StorageDriver::url_for`] with [`UrlOptions`] |
//! | `Walk(ctx, path, f, WithStartAfterHint)` | [`StorageDriver::walk`] with [`WalkOptions`] |
//! | `WalkFallback` | [`walk::walk_fallback`] |
//! | `ErrSkipDir`, `ErrFilledBuffer` | [`WalkControl::SkipDir`], [`WalkControl::Stop`] |
//! | `PathRegexp` | [`path::validate`] (also rejects `.` and `..`, and bounds lengths) |
//! | `PathNotFoundError{Path, DriverName}` | [`Error::PathNotFound`] |
//! | `InvalidPathError{Path, DriverName}` | [`Error::InvalidPath`] (with the reason) |
//! | `InvalidOffsetError` | none: offsets are `u64`, and past the end is an empty stream |
//! | `ErrUnsupportedMethod{DriverName}` | [`Error::Unsupported`] (with the operation) |
//! | `Error{DriverName, Detail}` | [`Error::Backend`] (with operation, path and [`Retry`]) |
//! | errors from parameter parsing | [`Error::InvalidParameter`] |
//! | no Go counterpart | [`Error::Conflict`], [`Error::WriterFinished`], [`Capabilities`] |
//! | `factory.StorageDriverFactory` | [`DriverFactory`], created from [`Parameters`] |
//!
//! # Example
//!
//! Code written against the trait works with any driver:
//!
//! ```
//! use bytes::Bytes;
//! use storagedriver::{Error, StorageDriver};
//!
//! async fn publish(driver: &dyn StorageDriver, path: &str, body: &[u8]) -> storagedriver::Result<()> {
//!     let mut writer = driver.writer(path, false).await?;
//!     writer.write(Bytes::copy_from_slice(body)).await?;
//!     writer.commit().await?;
//!     match driver.stat(path).await {
//!         Ok(info) => assert_eq!(info.size, body.len() as u64),
//!         Err(Error::PathNotFound { .. }) => unreachable!("committed content is visible"),
//!         Err(other) => return Err(other),
//!     }
//!     Ok(())
//! }
//! ```

pub mod capabilities;
pub mod driver;
pub mod error;
pub mod factory;
pub mod file_info;
pub mod forward;
#[cfg(feature = "object-store")]
pub mod objectstore;
pub mod params;
pub mod path;
pub mod url;
pub mod walk;
pub mod writer;

pub use capabilities::Capabilities;
pub use driver::{ByteStream, StorageDriver};
pub use error::{BoxError, Error, ErrorKind, Result, Retry};
pub use factory::DriverFactory;
pub use file_info::FileInfo;
pub use params::{ParamReader, Parameters};
pub use url::{Method, UrlOptions};
pub use walk::{WalkControl, WalkFn, WalkOptions};
pub use writer::{FileWriter, WriterState};

pub use bytes::Bytes;

/// What [`forward_storage_driver!`] expands to needs; not public API.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
}
