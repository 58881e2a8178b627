//! A storage driver of a container registry that keeps its content in an S3 bucket (Go: the
//! `s3` driver), on any S3-compatible server: AWS, Garage, MinIO, Ceph, ...
//!
//! The driver is the object-store core of the trait crate
//! ([`storagedriver::objectstore::ObjectStoreDriver`]) over `object_store`'s S3 client: this
//! crate reads the Go driver's parameters ([`S3Config`]) and builds the client from them. The
//! core's documentation describes the keys, how each operation maps onto S3, and how a
//! writer's multipart upload is persisted so that another process can resume it.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use driver_s3::S3Config;
//! use storagedriver::StorageDriver;
//!
//! let params = serde_json::from_value(serde_json::json!({
//!     "bucket": "registry",
//!     "region": "garage",
//!     "regionendpoint": "http://127.0.0.1:3900",
//!     "forcepathstyle": true,
//!     "accesskey": "GK0123456789abcdef01234567",
//!     "secretkey": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
//!     "rootdirectory": "/docker",
//! }))?;
//! let driver = S3Config::from_parameters(&params)?.build()?;
//!
//! let mut writer = driver.writer("/blobs/upload", false).await?;
//! writer.write(Bytes::from(vec![7u8; 12 << 20])).await?; // one 10 MiB part goes up
//! writer.close().await?; // the 2 MiB tail is kept under a reserved key
//!
//! let mut writer = driver.writer("/blobs/upload", true).await?; // any process can resume
//! assert_eq!(writer.size(), 12 << 20);
//! writer.commit().await?;
//! assert_eq!(driver.stat("/blobs/upload").await?.size, 12 << 20);
//! # Ok(()) }
//! ```
//!
//! # Capabilities
//!
//! `persistent` and `url_for` (presigned GET and HEAD). A file written where a directory is
//! is not detected (`detects_file_dir_conflicts` is off: S3 has no directories, and a
//! listing per write would cost more than it saves), and a writer cannot append to committed
//! content that is not empty.
//!
//! # Errors
//!
//! Every error names the driver (`s3`) and the path. A missing bucket, a wrong key and an
//! unreachable endpoint are [`storagedriver::Error::Backend`] errors that say so; a missing
//! object is [`storagedriver::Error::PathNotFound`]. The client retries transient failures
//! (5xx answers, dropped connections) three times, for at most 30 seconds, and never a 4xx.

mod config;
mod factory;
mod signer;

pub use config::{MAX_CHUNK_SIZE, S3Config};
pub use factory::S3Factory;
pub use storagedriver::objectstore::ObjectStoreDriver as S3Driver;

/// The name the driver registers under and puts in its errors.
pub const DRIVER_NAME: &str = "s3";
