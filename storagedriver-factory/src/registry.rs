//! The registry of driver factories, and the executable fallback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use storagedriver::{DriverFactory, Parameters, StorageDriver};
use storagedriver_ipc::IpcDriver;

/// Why a driver could not be created or registered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FactoryError {
    /// No factory is registered under the name and no executable for it was found.
    #[error(
        "no storage driver named {name:?}: the registered drivers are [{registered}], and no executable {executable:?} was found on {searched}",
        registered = .registered.join(", ")
    )]
    UnknownDriver {
        /// The name asked for.
        name: String,
        /// The names that are registered.
        registered: Vec<String>,
        /// The executable looked for.
        executable: String,
        /// Where it was looked for (`PATH`, or the registry's search path).
        searched: String,
    },

    /// A factory is already registered under the name.
    #[error("a storage driver named {name:?} is already registered")]
    AlreadyRegistered {
        /// The name.
        name: String,
    },

    /// The driver (or its executable) refused the parameters or failed to start.
    #[error(transparent)]
    Driver(#[from] storagedriver::Error),
}

/// Named driver factories, with a search path for external driver executables.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), storagedriver_factory::FactoryError> {
/// use std::sync::Arc;
/// use storagedriver_factory::{FactoryError, Registry};
///
/// let registry = Registry::empty();
/// registry.register(Arc::new(driver_inmemory::InMemoryFactory))?;
/// let err = registry.register(Arc::new(driver_inmemory::InMemoryFactory)).unwrap_err();
/// assert!(matches!(err, FactoryError::AlreadyRegistered { .. }));
/// assert_eq!(registry.names(), ["inmemory"]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Registry {
    factories: RwLock<BTreeMap<String, Arc<dyn DriverFactory>>>,
    search_path: Option<Vec<PathBuf>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::with_builtin()
    }
}

impl Registry {
    /// A registry with no factories; executables are looked for on `PATH`.
    pub fn empty() -> Self {
        Registry {
            factories: RwLock::new(BTreeMap::new()),
            search_path: None,
        }
    }

    /// A registry with the built-in drivers this crate's features enable (`inmemory`,
    /// `filesystem`, `s3`, `azure`).
    pub fn with_builtin() -> Self {
        let registry = Self::empty();
        for factory in builtin_factories() {
            registry.insert(factory);
        }
        registry
    }

    /// Looks for driver executables in `dirs` instead of `PATH`.
    pub fn with_search_path(mut self, dirs: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        self.search_path = Some(dirs.into_iter().map(Into::into).collect());
        self
    }

    fn insert(&self, factory: Arc<dyn DriverFactory>) -> bool {
        let mut factories = self
            .factories
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let name = factory.name().to_owned();
        if factories.contains_key(&name) {
            return false;
        }
        factories.insert(name, factory);
        true
    }

    /// Registers `factory` under its name; a name registered twice is an error.
    pub fn register(&self, factory: Arc<dyn DriverFactory>) -> Result<(), FactoryError> {
        let name = factory.name().to_owned();
        if self.insert(factory) {
            Ok(())
        } else {
            Err(FactoryError::AlreadyRegistered { name })
        }
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let factories = self
            .factories
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        factories.keys().cloned().collect()
    }

    /// Creates the driver `name` from `parameters`: a registered factory, or else the
    /// executable `registry-storage-<name>` on the search path, run as a child process.
    pub async fn create(
        &self,
        name: &str,
        parameters: &Parameters,
    ) -> Result<Arc<dyn StorageDriver>, FactoryError> {
        let factory = {
            let factories = self
                .factories
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            factories.get(name).cloned()
        };
        if let Some(factory) = factory {
            return Ok(factory.create(parameters).await?);
        }
        let executable = executable_name(name);
        let (dirs, searched) = self.search_dirs();
        let found = valid_driver_name(name)
            .then(|| {
                dirs.iter()
                    .map(|d| d.join(&executable))
                    .find(|p| is_executable(p))
            })
            .flatten();
        match found {
            Some(path) => {
                tracing::debug!(driver = name, executable = %path.display(), "starting an external driver");
                let driver = IpcDriver::spawn(name, &path, parameters).await?;
                Ok(Arc::new(driver))
            }
            None => Err(FactoryError::UnknownDriver {
                name: name.to_owned(),
                registered: self.names(),
                executable,
                searched,
            }),
        }
    }

    fn search_dirs(&self) -> (Vec<PathBuf>, String) {
        match &self.search_path {
            Some(dirs) => {
                let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                (
                    dirs.clone(),
                    format!("the search path [{}]", shown.join(", ")),
                )
            }
            None => {
                let path = std::env::var_os("PATH").unwrap_or_default();
                (std::env::split_paths(&path).collect(), "PATH".to_owned())
            }
        }
    }
}

/// The executable a driver name falls back to: `registry-storage-<name>`.
pub fn executable_name(name: &str) -> String {
    format!("registry-storage-{name}")
}

/// Only names that cannot reach outside the search directory are looked up.
fn valid_driver_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The factories of the built-in drivers this crate's features enable.
fn builtin_factories() -> Vec<Arc<dyn DriverFactory>> {
    [
        inmemory_factory(),
        filesystem_factory(),
        s3_factory(),
        azure_factory(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

#[cfg(feature = "inmemory")]
fn inmemory_factory() -> Option<Arc<dyn DriverFactory>> {
    Some(Arc::new(driver_inmemory::InMemoryFactory))
}

#[cfg(not(feature = "inmemory"))]
fn inmemory_factory() -> Option<Arc<dyn DriverFactory>> {
    None
}

#[cfg(feature = "filesystem")]
fn filesystem_factory() -> Option<Arc<dyn DriverFactory>> {
    Some(Arc::new(driver_filesystem::FilesystemFactory))
}

#[cfg(not(feature = "filesystem"))]
fn filesystem_factory() -> Option<Arc<dyn DriverFactory>> {
    None
}

#[cfg(feature = "s3")]
fn s3_factory() -> Option<Arc<dyn DriverFactory>> {
    Some(Arc::new(driver_s3::S3Factory))
}

#[cfg(not(feature = "s3"))]
fn s3_factory() -> Option<Arc<dyn DriverFactory>> {
    None
}

#[cfg(feature = "azure")]
fn azure_factory() -> Option<Arc<dyn DriverFactory>> {
    Some(Arc::new(driver_azure::AzureFactory))
}

#[cfg(not(feature = "azure"))]
fn azure_factory() -> Option<Arc<dyn DriverFactory>> {
    None
}

/// The process-wide registry behind [`create`] and [`register`], holding the built-in drivers.
pub fn default_registry() -> &'static Registry {
    static DEFAULT: OnceLock<Registry> = OnceLock::new();
    DEFAULT.get_or_init(Registry::with_builtin)
}

/// Creates the driver `name` with the [`default_registry`] (Go: `factory.Create`).
pub async fn create(
    name: &str,
    parameters: &Parameters,
) -> Result<Arc<dyn StorageDriver>, FactoryError> {
    default_registry().create(name, parameters).await
}

/// Registers `factory` in the [`default_registry`] (Go: `factory.Register`).
pub fn register(factory: Arc<dyn DriverFactory>) -> Result<(), FactoryError> {
    default_registry().register(factory)
}
