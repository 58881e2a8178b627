//! Creating the driver by name.

use std::sync::Arc;

use async_trait::async_trait;
use storagedriver::{DriverFactory, Parameters, Result, StorageDriver};

use crate::config::FilesystemConfig;
use crate::driver::FilesystemDriver;
use crate::error::DRIVER_NAME;

/// Creates [`FilesystemDriver`]s from parameters, under the name `filesystem`
/// (Go: the `filesystem` driver's factory).
///
/// ```
/// use driver_filesystem::FilesystemFactory;
/// use storagedriver::DriverFactory;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let params = serde_json::from_value(serde_json::json!({
///     "rootdirectory": dir.path().join("registry"),
///     "fsync": "false",
/// }))?;
/// let driver = FilesystemFactory.create(&params).await?;
/// assert_eq!(driver.name(), "filesystem");
/// assert!(dir.path().join("registry").is_dir());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct FilesystemFactory;

#[async_trait]
impl DriverFactory for FilesystemFactory {
    fn name(&self) -> &str {
        DRIVER_NAME
    }

    /// A [`FilesystemDriver`] from [`FilesystemConfig::from_parameters`]; the root directory
    /// is created if missing.
    async fn create(&self, parameters: &Parameters) -> Result<Arc<dyn StorageDriver>> {
        let config = FilesystemConfig::from_parameters(parameters)?;
        Ok(Arc::new(FilesystemDriver::new(config)?))
    }
}
