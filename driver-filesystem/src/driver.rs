//! The filesystem driver.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use storagedriver::{
    ByteStream, Capabilities, Error, FileInfo, FileWriter, Result, Retry, StorageDriver,
    UrlOptions, path as dpath,
};

use crate::blocking::Blocking;
use crate::config::FilesystemConfig;
use crate::error::{DRIVER_NAME, backend, io_error, is_not_found, lookup_error};
use crate::staging::{self, Kind};
use crate::writer::FsWriter;

/// What every clone of a driver shares.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: FilesystemConfig,
}

impl Inner {
    /// The root directory.
    pub(crate) fn root(&self) -> &Path {
        self.config.root_directory()
    }

    /// The file or directory of a valid driver path (the root for `/`).
    fn full(&self, path: &str) -> PathBuf {
        match path.strip_prefix('/') {
            Some("") | None => self.root().to_path_buf(),
            Some(relative) => self.root().join(relative),
        }
    }
}

/// A storage driver that keeps content in a directory tree under a root directory (Go: the
/// `filesystem` driver), registered as `filesystem`.
///
/// A driver path `/a/b` is the file `<root>/a/b`. Content is written beside its target under a
/// reserved name (a name with `#`, which no driver path can hold) and renamed into place, so
/// a reader sees the old content or the new, and a crash never leaves a half-written file at
/// a real path. With [`FilesystemConfig::fsync`] on (the default) acknowledged content is on
/// the disk.
///
/// # Visibility
///
/// Entries whose names are not valid path components (staging files, foreign files) are
/// never listed, walked or reported by `stat`. A directory exists for the driver only if a
/// file lies somewhere below it: a directory holding only uploads or empty directories is
/// [`Error::PathNotFound`] for `list` and `stat` and is not listed in its parent.
///
/// # Decisions beyond the contract
///
/// - `put_content`, `commit` and `rename` replace a directory that holds no visible file (for
///   example one holding only an uncommitted upload) as if it were not there, dropping the
///   uploads in it; over a directory with content they are [`Error::Conflict`].
/// - `delete` removes the uncommitted upload of the path itself and every upload below it;
///   a path holding only an upload is [`Error::PathNotFound`] and keeps it.
/// - `rename` does not move the source's uncommitted upload.
/// - Directories left empty by `delete`, `rename` and `cancel` are removed, up to the root.
///
/// The driver is cheap to clone: clones share the configuration and the `maxthreads` limit.
///
/// ```
/// use driver_filesystem::FilesystemDriver;
/// use storagedriver::StorageDriver;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let driver = FilesystemDriver::with_root(dir.path())?;
/// assert_eq!(driver.name(), "filesystem");
/// assert!(driver.capabilities().persistent);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FilesystemDriver {
    inner: Arc<Inner>,
    blocking: Blocking,
}

impl FilesystemDriver {
    /// A driver with `config`; creates the root directory (and its parents) if missing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for a bad value set through the config's builder methods,
    /// or when the root directory cannot be created (key `rootdirectory`).
    pub fn new(config: FilesystemConfig) -> Result<Self> {
        config.validate()?;
        let root = config.root_directory();
        fs::create_dir_all(root).map_err(|e| {
            Error::invalid_parameter(
                DRIVER_NAME,
                "rootdirectory",
                format!("cannot create {}: {e}", root.display()),
            )
        })?;
        let max_threads = usize::try_from(config.max_threads())
            .unwrap_or(FilesystemConfig::DEFAULT_MAX_THREADS as usize);
        Ok(FilesystemDriver {
            blocking: Blocking::new(max_threads),
            inner: Arc::new(Inner { config }),
        })
    }

    /// A driver over `root` with the other parameters at their defaults (`fsync` on).
    ///
    /// # Errors
    ///
    /// As [`FilesystemDriver::new`].
    pub fn with_root(root: impl Into<PathBuf>) -> Result<Self> {
        Self::new(FilesystemConfig::new(root))
    }

    /// The configuration the driver was built with.
    pub fn config(&self) -> &FilesystemConfig {
        &self.inner.config
    }

    /// The root directory.
    pub fn root_directory(&self) -> &Path {
        self.inner.root()
    }

    /// Runs `f` with the shared state on a blocking thread.
    async fn run<T, F>(&self, operation: &'static str, path: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &str) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let owned = path.to_owned();
        self.blocking
            .run(operation, path, move || f(&inner, &owned))
            .await
    }
}

/// `put_content` in one blocking call: temporary file, write, optional `fdatasync`, rename,
/// optional directory sync.
fn put_blocking(inner: &Inner, path: &str, content: &[u8]) -> Result<()> {
    let target = inner.full(path);
    let fsync = inner.config.fsync();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (temp, mut file) = staging::create_put_temp(&target).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => backend("put_content", Some(path), Retry::MayHelp, e),
            _ => io_error("put_content", path, e),
        })?;
        let mut written = io::Write::write_all(&mut file, content);
        if written.is_ok() && fsync {
            written = file.sync_data();
        }
        drop(file);
        let published = written.and_then(|()| staging::publish(&temp, &target));
        match published {
            Ok(()) => break,
            Err(e) => {
                let _ = fs::remove_file(&temp);
                // A concurrent delete removed the directory with the temporary file in it.
                if is_not_found(&e) && attempt < staging::MAX_ATTEMPTS {
                    continue;
                }
                return Err(match e.kind() {
                    io::ErrorKind::NotFound => {
                        backend("put_content", Some(path), Retry::MayHelp, e)
                    }
                    _ => io_error("put_content", path, e),
                });
            }
        }
    }
    if fsync {
        staging::sync_parent(&target).map_err(|e| io_error("put_content", path, e))?;
    }
    Ok(())
}

/// `stat` in one blocking call.
fn stat_blocking(inner: &Inner, path: &str) -> Result<FileInfo> {
    let full = inner.full(path);
    let metadata = fs::metadata(&full).map_err(|e| lookup_error("stat", path, e))?;
    let modified = || metadata.modified().map_err(|e| io_error("stat", path, e));
    if metadata.is_file() {
        Ok(FileInfo::file(path, metadata.len(), modified()?))
    } else if metadata.is_dir()
        && staging::has_visible_file(&full).map_err(|e| lookup_error("stat", path, e))?
    {
        Ok(FileInfo::dir(path, modified()?))
    } else {
        Err(Error::path_not_found(DRIVER_NAME, path))
    }
}

/// `list` in one blocking call.
fn list_blocking(inner: &Inner, path: &str) -> Result<Vec<String>> {
    let full = inner.full(path);
    let entries = fs::read_dir(&full).map_err(|e| lookup_error("list", path, e))?;
    let mut children = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(io_error("list", path, e)),
        };
        let visible = match staging::classify(&entry) {
            Ok(Kind::File) => true,
            Ok(Kind::Dir) => match staging::has_visible_file(&entry.path()) {
                Ok(visible) => visible,
                Err(e) if is_not_found(&e) => false,
                Err(e) => return Err(io_error("list", path, e)),
            },
            Ok(Kind::Hidden) => false,
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(io_error("list", path, e)),
        };
        if visible {
            // `classify` only passes valid (so UTF-8) names.
            if let Some(name) = entry.file_name().to_str() {
                children.push(dpath::join(path, name));
            }
        }
    }
    if children.is_empty() && path != dpath::ROOT {
        return Err(Error::path_not_found(DRIVER_NAME, path));
    }
    children.sort_unstable();
    Ok(children)
}

/// `rename` in one blocking call.
fn rename_blocking(inner: &Inner, source: &str, dest: &str) -> Result<()> {
    let from = inner.full(source);
    let to = inner.full(dest);
    let source_is_file = |from: &Path| match fs::metadata(from) {
        Ok(md) if md.is_file() => Ok(()),
        Ok(_) => Err(Error::path_not_found(DRIVER_NAME, source)),
        Err(e) => Err(lookup_error("rename", source, e)),
    };
    source_is_file(&from)?;
    if source == dest {
        return Ok(());
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match staging::publish(&from, &to) {
            Ok(()) => break,
            Err(e) if is_not_found(&e) => {
                // The source went meanwhile, or the destination's directory is missing.
                source_is_file(&from)?;
                let Some(parent) = to.parent() else {
                    return Err(io_error("rename", dest, e));
                };
                if attempt >= staging::MAX_ATTEMPTS {
                    return Err(backend("rename", Some(dest), Retry::MayHelp, e));
                }
                if let Err(e) = fs::create_dir_all(parent) {
                    return Err(io_error("rename", dest, e));
                }
            }
            Err(e) => return Err(io_error("rename", dest, e)),
        }
    }
    if inner.config.fsync() {
        staging::sync_parent(&to).map_err(|e| io_error("rename", dest, e))?;
    }
    if let Some(dir) = from.parent() {
        staging::prune_empty_dirs(inner.root(), dir);
    }
    Ok(())
}

/// `delete` in one blocking call.
fn delete_blocking(inner: &Inner, path: &str) -> Result<()> {
    let full = inner.full(path);
    let metadata = fs::symlink_metadata(&full).map_err(|e| lookup_error("delete", path, e))?;
    let removed = if metadata.is_dir() {
        if !staging::has_visible_file(&full).map_err(|e| lookup_error("delete", path, e))? {
            return Err(Error::path_not_found(DRIVER_NAME, path));
        }
        fs::remove_dir_all(&full)
    } else {
        fs::remove_file(&full)
    };
    removed.map_err(|e| lookup_error("delete", path, e))?;
    // The path's own uncommitted upload goes with it, like those below it.
    match fs::remove_file(staging::upload_path(&full)) {
        Err(e) if !is_not_found(&e) => return Err(io_error("delete", path, e)),
        _ => {}
    }
    if let Some(dir) = full.parent() {
        staging::prune_empty_dirs(inner.root(), dir);
    }
    Ok(())
}

#[async_trait]
impl StorageDriver for FilesystemDriver {
    fn name(&self) -> &str {
        DRIVER_NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .with_persistent(true)
            .with_file_dir_conflicts(true)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = DRIVER_NAME))]
    async fn get_content(&self, path: &str) -> Result<Bytes> {
        dpath::check(DRIVER_NAME, path)?;
        self.run("get_content", path, |inner, path| {
            fs::read(inner.full(path))
                .map(Bytes::from)
                .map_err(|e| lookup_error("get_content", path, e))
        })
        .await
    }

    #[tracing::instrument(
        level = "debug",
        skip(self, content),
        fields(driver = DRIVER_NAME, len = content.len())
    )]
    async fn put_content(&self, path: &str, content: Bytes) -> Result<()> {
        dpath::check(DRIVER_NAME, path)?;
        self.run("put_content", path, move |inner, path| {
            put_blocking(inner, path, &content)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = DRIVER_NAME))]
    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream> {
        dpath::check(DRIVER_NAME, path)?;
        crate::reader::open_stream(&self.blocking, self.inner.full(path), path, offset).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = DRIVER_NAME))]
    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        dpath::check(DRIVER_NAME, path)?;
        let writer = FsWriter::open(
            Arc::clone(&self.inner),
            self.blocking.clone(),
            path,
            self.inner.full(path),
            append,
        )
        .await?;
        Ok(Box::new(writer))
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = DRIVER_NAME))]
    async fn stat(&self, path: &str) -> Result<FileInfo> {
        dpath::check_dir(DRIVER_NAME, path)?;
        self.run("stat", path, stat_blocking).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = DRIVER_NAME))]
    async fn list(&self, path: &str) -> Result<Vec<String>> {
        dpath::check_dir(DRIVER_NAME, path)?;
        self.run("list", path, list_blocking).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = DRIVER_NAME))]
    async fn rename(&self, source: &str, dest: &str) -> Result<()> {
        dpath::check(DRIVER_NAME, source)?;
        dpath::check(DRIVER_NAME, dest)?;
        let dest = dest.to_owned();
        self.run("rename", source, move |inner, source| {
            rename_blocking(inner, source, &dest)
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = DRIVER_NAME))]
    async fn delete(&self, path: &str) -> Result<()> {
        dpath::check(DRIVER_NAME, path)?;
        self.run("delete", path, delete_blocking).await
    }

    async fn url_for(&self, path: &str, _options: &UrlOptions) -> Result<String> {
        dpath::check(DRIVER_NAME, path)?;
        Err(Error::unsupported(DRIVER_NAME, "url_for"))
    }
}
