//! Creating the driver by name.

use std::sync::Arc;

use async_trait::async_trait;
use storagedriver::{DriverFactory, Parameters, Result, StorageDriver};

use crate::DRIVER_NAME;
use crate::config::S3Config;

/// Creates S3 drivers from parameters, under the name `s3` (Go: the `s3` driver's factory).
///
/// ```
/// use driver_s3::S3Factory;
/// use storagedriver::DriverFactory;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let params = serde_json::from_value(serde_json::json!({
///     "bucket": "registry",
///     "regionendpoint": "http://127.0.0.1:3900",
///     "region": "garage",
///     "forcepathstyle": "true",
///     "accesskey": "GK0123456789abcdef01234567",
///     "secretkey": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
/// }))?;
/// // Creating the driver sends no request; the first operation does.
/// let driver = S3Factory.create(&params).await?;
/// assert_eq!(driver.name(), "s3");
/// assert!(driver.capabilities().url_for);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct S3Factory;

#[async_trait]
impl DriverFactory for S3Factory {
    fn name(&self) -> &str {
        DRIVER_NAME
    }

    /// A driver from [`S3Config::from_parameters`].
    async fn create(&self, parameters: &Parameters) -> Result<Arc<dyn StorageDriver>> {
        let config = S3Config::from_parameters(parameters)?;
        Ok(Arc::new(config.build()?))
    }
}
