//! A storage driver of a container registry that keeps its content in an Azure Blob Storage
//! container (Go: the `azure` driver), on Azure or an emulator such as Azurite.
//!
//! The driver is the object-store core of the trait crate
//! ([`storagedriver::objectstore::ObjectStoreDriver`]) over `object_store`'s Azure client: this
//! crate reads the Go driver's parameters ([`AzureConfig`]), builds the client from them, and
//! creates the container on first use. The core's documentation describes the blob names,
//! how each operation maps onto the store, and how a writer's upload is persisted.
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use driver_azure::AzureConfig;
//! use storagedriver::StorageDriver;
//!
//! let params = serde_json::from_value(serde_json::json!({
//!     "accountname": "devstoreaccount1",
//!     "accountkey": "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
//!     "serviceurl": "http://127.0.0.1:10000/devstoreaccount1",
//!     "container": "registry",
//!     "rootdirectory": "/docker",
//! }))?;
//! // Creates the container when it is missing; a refused key fails here.
//! let driver = AzureConfig::from_parameters(&params)?.connect().await?;
//!
//! let mut writer = driver.writer("/blobs/upload", false).await?;
//! writer.write(Bytes::from(vec![7u8; 12 << 20])).await?; // one 10 MiB block is staged
//! writer.close().await?; // the 2 MiB tail is kept under a reserved blob name
//!
//! let mut writer = driver.writer("/blobs/upload", true).await?; // any process can resume
//! assert_eq!(writer.size(), 12 << 20);
//! writer.commit().await?; // one Put Block List
//! assert_eq!(driver.stat("/blobs/upload").await?.size, 12 << 20);
//! # Ok(()) }
//! ```
//!
//! # Blob names
//!
//! A path's blob name is `rootdirectory` followed by the path without its leading `/`
//! (`rootdirectory = "/docker"`: `/a/b` is `docker/a/b`), never with an empty segment (the Go
//! driver's `container//docker/...`).
//!
//! # Resuming a writer
//!
//! A writer stages blocks of `chunksize` (Put Block, `writerconcurrency` at a time) and
//! commits them with one Put Block List. `close` records the staged block ids and keeps the
//! bytes after the last block under `~uploads/<path>/`; `writer(path, true)` on any driver
//! instance, in any process, with the same `container` and `rootdirectory`, reads that
//! record and continues. Azure discards a blob's staged blocks a week after the last one was
//! staged, so a writer left closed longer cannot be resumed. `cancel` removes the record;
//! Azure has no call that discards staged blocks, so they are left to that expiry, never
//! visible. Azure (not Azurite) also discards a blob's staged blocks when other content is
//! committed at its name (a `put_content`): a writer resumed after that fails to commit, and
//! the path keeps the other content.
//!
//! # Capabilities
//!
//! `persistent` and `url_for` (a read-only SAS for GET and HEAD; with a `sastoken` credential
//! there is no key to sign with, and `url_for` is unsupported). A file written where a
//! directory is is not detected, and a writer cannot append to committed content that is not
//! empty.
//!
//! # Errors
//!
//! Every error names the driver (`azure`) and the path. A refused credential, a missing
//! container the credential may not create, and an unreachable endpoint are
//! [`storagedriver::Error::Backend`] errors that say so, and creating the driver reports
//! them; a missing blob is [`storagedriver::Error::PathNotFound`]. The client retries
//! transient failures (5xx answers, dropped connections) `max_retries` times, for at most 30
//! seconds, and never a 4xx.

mod config;
mod connection_string;
mod container;
mod credential;
mod factory;
mod signer;

pub use config::{AzureConfig, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
pub use credential::Credential;
pub use factory::AzureFactory;
pub use storagedriver::objectstore::ObjectStoreDriver as AzureDriver;

/// The name the driver registers under and puts in its errors.
pub const DRIVER_NAME: &str = "azure";
