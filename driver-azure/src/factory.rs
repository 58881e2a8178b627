//! Creating the driver by name.

use std::sync::Arc;

use async_trait::async_trait;
use storagedriver::{DriverFactory, Parameters, Result, StorageDriver};

use crate::DRIVER_NAME;
use crate::config::AzureConfig;

/// Creates Azure drivers from parameters, under the name `azure` (Go: the `azure` driver's
/// factory). Creating a driver makes sure its container exists ([`AzureConfig::connect`]).
///
/// ```no_run
/// use driver_azure::AzureFactory;
/// use storagedriver::DriverFactory;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let params = serde_json::from_value(serde_json::json!({
///     "connectionstring": "UseDevelopmentStorage=true",
///     "container": "registry",
/// }))?;
/// let driver = AzureFactory.create(&params).await?;
/// assert_eq!(driver.name(), "azure");
/// assert!(driver.capabilities().url_for);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AzureFactory;

#[async_trait]
impl DriverFactory for AzureFactory {
    fn name(&self) -> &str {
        DRIVER_NAME
    }

    /// A driver from [`AzureConfig::from_parameters`], connected with
    /// [`AzureConfig::connect`].
    async fn create(&self, parameters: &Parameters) -> Result<Arc<dyn StorageDriver>> {
        let config = AzureConfig::from_parameters(parameters)?;
        Ok(Arc::new(config.connect().await?))
    }
}
