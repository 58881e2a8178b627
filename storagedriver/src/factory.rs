//! What a driver crate offers so that a registry of drivers can create it by name, without the
//! driver crate depending on that registry.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::driver::StorageDriver;
use crate::error::Result;
use crate::params::Parameters;

/// Creates drivers of one kind from parameters (Go: `factory.StorageDriverFactory`).
#[async_trait]
pub trait DriverFactory: Send + Sync + Debug {
    /// The name the driver registers under, e.g. `filesystem`.
    fn name(&self) -> &str;

    /// A new driver from `parameters`; unknown keys, missing required keys and bad values are
    /// [`crate::Error::InvalidParameter`].
    async fn create(&self, parameters: &Parameters) -> Result<Arc<dyn StorageDriver>>;
}
