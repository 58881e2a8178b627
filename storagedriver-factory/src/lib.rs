//! Create storage drivers by name from a parameter map (Go: `factory.Create`).
//!
//! A [`Registry`] maps names to [`DriverFactory`] values. The built-in drivers are registered by
//! the crate's features (`inmemory` and `filesystem`, both on by default; `s3` and `azure`, off by
//! default because they bring an HTTP client and TLS), so a program that
//! depends on this crate can create them by name without registration code of its own. A name
//! that is not registered falls back to an executable `registry-storage-<name>` found on the
//! search path (`PATH` by default), started as a child process and driven through the IPC
//! protocol ([`storagedriver_ipc::IpcDriver`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), storagedriver_factory::FactoryError> {
//! use storagedriver::Parameters;
//!
//! let driver = storagedriver_factory::create("inmemory", &Parameters::new()).await?;
//! assert_eq!(driver.name(), "inmemory");
//!
//! let err = storagedriver_factory::create("nosuchdriver", &Parameters::new()).await.unwrap_err();
//! assert!(err.to_string().contains("registry-storage-nosuchdriver"));
//! # Ok(()) }
//! ```

mod registry;

pub use registry::{FactoryError, Registry, create, default_registry, executable_name, register};
pub use storagedriver::{DriverFactory, Parameters, StorageDriver};
