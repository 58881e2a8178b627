//! Creating the driver by name.

use std::sync::Arc;

use async_trait::async_trait;
use storagedriver::{DriverFactory, ParamReader, Parameters, Result, StorageDriver};

use crate::NAME;
use crate::driver::InMemoryDriver;

/// Creates [`InMemoryDriver`]s by the name `inmemory` (Go: the `inmemory` driver factory).
///
/// The driver takes no parameters: any key is [`storagedriver::Error::InvalidParameter`].
/// Each driver it creates has a new, empty store of its own.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> storagedriver::Result<()> {
/// use driver_inmemory::InMemoryFactory;
/// use storagedriver::{DriverFactory, Parameters};
///
/// let driver = InMemoryFactory.create(&Parameters::new()).await?;
/// assert_eq!(driver.name(), "inmemory");
///
/// let mut params = Parameters::new();
/// params.insert("rootdirectory".into(), "/tmp".into());
/// let err = InMemoryFactory.create(&params).await.unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "inmemory: parameter \"rootdirectory\": unknown parameter (accepted: none)"
/// );
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct InMemoryFactory;

#[async_trait]
impl DriverFactory for InMemoryFactory {
    fn name(&self) -> &str {
        NAME
    }

    async fn create(&self, parameters: &Parameters) -> Result<Arc<dyn StorageDriver>> {
        ParamReader::new(NAME, parameters).finish()?;
        Ok(Arc::new(InMemoryDriver::new()))
    }
}
