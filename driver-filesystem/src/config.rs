//! The driver's parameters.

use std::path::{Path, PathBuf};

use storagedriver::{Error, ParamReader, Parameters, Result};

use crate::error::DRIVER_NAME;

/// How a [`crate::FilesystemDriver`] is set up (Go: the `filesystem` driver's parameters).
///
/// | key | type | default | meaning |
/// |---|---|---|---|
/// | `rootdirectory` | string, an absolute path | `/var/lib/registry` | the directory that holds the content |
/// | `maxthreads` | integer, 25 or more | 100 | blocking filesystem calls running at once |
/// | `fsync` | boolean | `true` | flush content to the disk before acknowledging a write |
///
/// Values may be JSON strings, numbers or booleans (`"50"` and `50` are the same); an unknown
/// key or a bad value is [`Error::InvalidParameter`].
///
/// ```
/// use driver_filesystem::FilesystemConfig;
///
/// let config = FilesystemConfig::new("/srv/registry").with_max_threads(50).with_fsync(false);
/// assert_eq!(config.root_directory(), std::path::Path::new("/srv/registry"));
/// assert_eq!(config.max_threads(), 50);
/// assert!(!config.fsync());
///
/// let params = serde_json::from_value(serde_json::json!({
///     "rootdirectory": "/srv/registry", "maxthreads": "50", "fsync": "false",
/// }))?;
/// assert_eq!(FilesystemConfig::from_parameters(&params)?, config);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesystemConfig {
    root_directory: PathBuf,
    max_threads: u64,
    fsync: bool,
}

impl FilesystemConfig {
    /// The `rootdirectory` used when none is given.
    pub const DEFAULT_ROOT_DIRECTORY: &'static str = "/var/lib/registry";
    /// The `maxthreads` used when none is given.
    pub const DEFAULT_MAX_THREADS: u64 = 100;
    /// The smallest `maxthreads` accepted.
    pub const MIN_MAX_THREADS: u64 = 25;
    /// The largest `maxthreads` accepted.
    pub const MAX_MAX_THREADS: u64 = 1 << 20;

    /// The defaults, with `root_directory` as the root.
    pub fn new(root_directory: impl Into<PathBuf>) -> Self {
        FilesystemConfig {
            root_directory: root_directory.into(),
            max_threads: Self::DEFAULT_MAX_THREADS,
            fsync: true,
        }
    }

    /// Reads the driver's parameters: `rootdirectory`, `maxthreads` and `fsync`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for an unknown key, an empty or relative `rootdirectory`, a
    /// `maxthreads` that is not an integer from 25 to 2^20, or an `fsync` that is not
    /// `true` or `false`.
    pub fn from_parameters(parameters: &Parameters) -> Result<Self> {
        let mut reader = ParamReader::new(DRIVER_NAME, parameters);
        let root = reader.string("rootdirectory")?;
        let max_threads =
            reader.u64_in("maxthreads", Self::MIN_MAX_THREADS, Self::MAX_MAX_THREADS)?;
        let fsync = reader.bool("fsync")?;
        reader.finish()?;
        let mut config = FilesystemConfig::default();
        if let Some(root) = root {
            config.root_directory = PathBuf::from(root);
        }
        if let Some(n) = max_threads {
            config.max_threads = n;
        }
        if let Some(fsync) = fsync {
            config.fsync = fsync;
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets the root directory (`rootdirectory`).
    pub fn with_root_directory(mut self, root_directory: impl Into<PathBuf>) -> Self {
        self.root_directory = root_directory.into();
        self
    }

    /// Sets how many blocking filesystem calls may run at once (`maxthreads`); checked to be
    /// from [`Self::MIN_MAX_THREADS`] to [`Self::MAX_MAX_THREADS`] when the driver is built.
    pub fn with_max_threads(mut self, max_threads: u64) -> Self {
        self.max_threads = max_threads;
        self
    }

    /// Sets whether writes are flushed to the disk before they are acknowledged (`fsync`).
    /// See [`Self::fsync`] for what it costs.
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    /// The directory that holds the content.
    pub fn root_directory(&self) -> &Path {
        &self.root_directory
    }

    /// How many blocking filesystem calls may run at once.
    pub fn max_threads(&self) -> u64 {
        self.max_threads
    }

    /// Whether writes reach the disk before they are acknowledged.
    ///
    /// With `fsync` on (the default), `put_content` and `FileWriter::commit` flush the file's
    /// data (`fdatasync`) before renaming it into place and then flush the directory, and
    /// `FileWriter::close` flushes the upload (and `rename` the destination directory), so content the driver acknowledged survives a
    /// power loss or a kernel crash: a registry must not lose a blob it answered `201` for.
    /// Without it the data sits in the page cache for up to ~30 s (the kernel's writeback
    /// delay), and a crash in that window can leave a committed path empty or missing, though
    /// never torn, because content is always published by rename.
    ///
    /// The cost, measured on the development machine (ext4 on a virtio disk, 2 cores, other
    /// builds running; three runs of `cargo run --release -p driver-filesystem --example
    /// fsync_cost`, each figure the median of 5 rounds of puts that overwrite 64 paths in
    /// turn):
    ///
    /// | `put_content` of | fsync on | fsync off | on / off |
    /// |---|---|---|---|
    /// | 1 KiB | 0.48-0.65 ms (1 500-2 100 puts/s) | 0.09-0.13 ms (7 800-11 400 puts/s) | about 5× slower |
    /// | 1 MiB | 1.41-1.78 ms (560-710 MiB/s) | 0.96-1.12 ms (890-1 040 MiB/s) | about 1.5× slower |
    ///
    /// In each case the driver was within 5% of a raw loop making the same syscalls. Small
    /// content pays for two flushes (file and directory) that dominate its cost; large content
    /// mostly pays for its data reaching the disk, which happens later anyway. Turn it off only
    /// where losing the last ~30 s of writes on a crash is acceptable (caches, tests, CI).
    pub fn fsync(&self) -> bool {
        self.fsync
    }

    /// Checks the values set through the builder methods.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.root_directory.as_os_str().is_empty() {
            return Err(Error::invalid_parameter(
                DRIVER_NAME,
                "rootdirectory",
                "expected a directory, got an empty string",
            ));
        }
        if !self.root_directory.is_absolute() {
            // A relative root would depend on the working directory of whichever process
            // opens it (another one for a driver executable).
            return Err(Error::invalid_parameter(
                DRIVER_NAME,
                "rootdirectory",
                format!(
                    "expected an absolute path, got {:?}",
                    self.root_directory.display().to_string()
                ),
            ));
        }
        if !(Self::MIN_MAX_THREADS..=Self::MAX_MAX_THREADS).contains(&self.max_threads) {
            return Err(Error::invalid_parameter(
                DRIVER_NAME,
                "maxthreads",
                format!(
                    "expected an integer from {} to {}, got {}",
                    Self::MIN_MAX_THREADS,
                    Self::MAX_MAX_THREADS,
                    self.max_threads
                ),
            ));
        }
        Ok(())
    }
}

impl Default for FilesystemConfig {
    /// `rootdirectory` `/var/lib/registry`, `maxthreads` 100, `fsync` on.
    fn default() -> Self {
        FilesystemConfig::new(Self::DEFAULT_ROOT_DIRECTORY)
    }
}
