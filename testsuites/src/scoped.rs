//! A driver scoped below a directory of another: scratch space for the suite on a store that
//! holds other data.
//!
//! [`ScopedDriver`] shows the paths below a prefix of an inner driver as a store of their own:
//! its `/` is the inner `<prefix>`, its `/a/b` the inner `<prefix>/a/b`. Results are mapped
//! back (the paths of `stat`, `list` and `walk`, and of errors), so a behaviour of the suite
//! sees an empty store when nothing is below the prefix. `registry-storage check` runs the
//! suite this way on drivers whose parameters it does not know (external executables), each
//! case below a prefix of its own, deleted afterwards with [`remove_tree`].
//!
//! What a scope cannot hide: a path of the scoped driver is longer on the inner driver by the
//! prefix, so paths near the contract's limit ([`MAX_PATH_LEN`] bytes) do not fit. They are
//! refused with [`Error::Unsupported`] and counted ([`ScopedDriver::refusals`]), so a caller can
//! tell such a failure from the driver's own.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> storagedriver::Result<()> {
//! use std::sync::Arc;
//! use testsuites::scoped::ScopedDriver;
//! use testsuites::storagedriver::{Bytes, StorageDriver};
//!
//! let inner: Arc<dyn StorageDriver> = Arc::new(driver_inmemory::InMemoryDriver::new());
//! let scoped = ScopedDriver::new(inner.clone(), "/scratch/case-1")?;
//! assert!(scoped.list("/").await?.is_empty());
//! scoped.put_content("/a/b", Bytes::from_static(b"x")).await?;
//! assert_eq!(scoped.list("/a").await?, ["/a/b"]);
//! assert_eq!(inner.list("/scratch/case-1/a").await?, ["/scratch/case-1/a/b"]);
//! testsuites::scoped::remove_tree(inner.as_ref(), "/scratch").await?;
//! assert!(inner.list("/").await?.is_empty());
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use storagedriver::path::{self, MAX_PATH_LEN, ROOT};
use storagedriver::{
    ByteStream, Capabilities, Error, FileInfo, FileWriter, Result, StorageDriver, UrlOptions,
    WalkControl, WalkFn, WalkOptions,
};

/// The name of the file [`remove_tree`] puts in a directory before deleting it.
pub const REMOVAL_MARKER: &str = "registry-storage-removal-marker";

/// Deletes `dir` and everything below it on `driver`, also when nothing visible is below it
/// (a filesystem keeps the empty directories a driver created for a root): it puts an empty
/// [`REMOVAL_MARKER`] file in `dir` first, so the delete always has something to remove.
///
/// # Errors
///
/// The driver's error from the put or the delete.
pub async fn remove_tree(driver: &dyn StorageDriver, dir: &str) -> Result<()> {
    driver
        .put_content(&path::join(dir, REMOVAL_MARKER), Bytes::new())
        .await?;
    driver.delete(dir).await
}

/// The mapping between a scoped driver's paths and the inner driver's.
#[derive(Debug, Clone)]
struct Scope {
    prefix: String,
    refusals: Arc<AtomicU64>,
}

impl Scope {
    /// The inner path of the scoped `path` (already checked against the grammar).
    fn inner(&self, driver: &str, path: &str) -> Result<String> {
        let inner = if path == ROOT {
            self.prefix.clone()
        } else {
            format!("{}{path}", self.prefix)
        };
        if inner.len() > MAX_PATH_LEN {
            self.refusals.fetch_add(1, Ordering::Relaxed);
            return Err(Error::unsupported(
                driver,
                format!(
                    "a path of {} bytes below the scope {}, where only paths of up to {} bytes fit",
                    path.len(),
                    self.prefix,
                    MAX_PATH_LEN - self.prefix.len()
                ),
            ));
        }
        Ok(inner)
    }

    /// The scoped path of an inner path, when it lies in the scope.
    fn outer(&self, inner: &str) -> Option<String> {
        if inner == self.prefix {
            return Some(ROOT.to_owned());
        }
        inner
            .strip_prefix(&self.prefix)
            .filter(|rest| rest.starts_with('/'))
            .map(str::to_owned)
    }

    /// `path` of an error, mapped back when it lies in the scope.
    fn outer_or_same(&self, path: String) -> String {
        self.outer(&path).unwrap_or(path)
    }

    /// An inner driver's error with its path mapped back.
    fn error(&self, err: Error) -> Error {
        match err {
            Error::PathNotFound { driver, path } => Error::PathNotFound {
                driver,
                path: self.outer_or_same(path),
            },
            Error::InvalidPath {
                driver,
                path,
                reason,
            } => Error::InvalidPath {
                driver,
                path: self.outer_or_same(path),
                reason,
            },
            Error::Conflict {
                driver,
                path,
                reason,
            } => Error::Conflict {
                driver,
                path: self.outer_or_same(path),
                reason,
            },
            Error::WriterFinished {
                driver,
                path,
                state,
            } => Error::WriterFinished {
                driver,
                path: self.outer_or_same(path),
                state,
            },
            Error::Backend {
                driver,
                operation,
                path,
                retry,
                source,
            } => Error::Backend {
                driver,
                operation,
                path: path.map(|p| self.outer_or_same(p)),
                retry,
                source,
            },
            other => other,
        }
    }
}

/// A driver whose store is what lies below a prefix of another driver (see the
/// [module](self)). Its name and capabilities are the inner driver's.
#[derive(Debug, Clone)]
pub struct ScopedDriver {
    inner: Arc<dyn StorageDriver>,
    scope: Scope,
}

impl ScopedDriver {
    /// `inner`, scoped below `prefix` (a valid path; it need not exist).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] when `prefix` is not a valid path (or is `/`).
    pub fn new(inner: Arc<dyn StorageDriver>, prefix: impl Into<String>) -> Result<Self> {
        let prefix = prefix.into();
        path::check(inner.name(), &prefix)?;
        Ok(ScopedDriver {
            inner,
            scope: Scope {
                prefix,
                refusals: Arc::new(AtomicU64::new(0)),
            },
        })
    }

    /// Counts the refused paths ([`ScopedDriver::refusals`]) in `counter`, which other scopes
    /// may share (one count for all the scopes of a run).
    pub fn counting_refusals(mut self, counter: Arc<AtomicU64>) -> Self {
        self.scope.refusals = counter;
        self
    }

    /// Another instance of the inner driver (over the same storage) in the same scope, sharing
    /// the count of [`ScopedDriver::refusals`]: the suite's "new driver instance".
    pub fn with_inner(&self, inner: Arc<dyn StorageDriver>) -> Self {
        ScopedDriver {
            inner,
            scope: self.scope.clone(),
        }
    }

    /// The inner driver's directory that is this driver's `/`.
    pub fn prefix(&self) -> &str {
        &self.scope.prefix
    }

    /// The inner driver.
    pub fn inner(&self) -> &Arc<dyn StorageDriver> {
        &self.inner
    }

    /// How many paths were refused because, with the prefix, they are longer than
    /// [`MAX_PATH_LEN`] (counted across [`ScopedDriver::with_inner`] instances).
    pub fn refusals(&self) -> u64 {
        self.scope.refusals.load(Ordering::Relaxed)
    }

    fn file_path(&self, path: &str) -> Result<String> {
        path::check(self.name(), path)?;
        self.scope.inner(self.name(), path)
    }

    fn dir_path(&self, path: &str) -> Result<String> {
        path::check_dir(self.name(), path)?;
        self.scope.inner(self.name(), path)
    }
}

#[async_trait]
impl StorageDriver for ScopedDriver {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn get_content(&self, path: &str) -> Result<Bytes> {
        let inner = self.file_path(path)?;
        self.inner
            .get_content(&inner)
            .await
            .map_err(|e| self.scope.error(e))
    }

    async fn put_content(&self, path: &str, content: Bytes) -> Result<()> {
        let inner = self.file_path(path)?;
        self.inner
            .put_content(&inner, content)
            .await
            .map_err(|e| self.scope.error(e))
    }

    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream> {
        let inner = self.file_path(path)?;
        let stream = self
            .inner
            .reader(&inner, offset)
            .await
            .map_err(|e| self.scope.error(e))?;
        let scope = self.scope.clone();
        Ok(Box::pin(stream.map_err(move |e| scope.error(e))))
    }

    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        let inner = self.file_path(path)?;
        let writer = self
            .inner
            .writer(&inner, append)
            .await
            .map_err(|e| self.scope.error(e))?;
        Ok(Box::new(ScopedWriter {
            inner: writer,
            scope: self.scope.clone(),
        }))
    }

    async fn stat(&self, path: &str) -> Result<FileInfo> {
        let inner = self.dir_path(path)?;
        let info = self
            .inner
            .stat(&inner)
            .await
            .map_err(|e| self.scope.error(e))?;
        Ok(FileInfo {
            path: path.to_owned(),
            ..info
        })
    }

    async fn list(&self, path: &str) -> Result<Vec<String>> {
        let inner = self.dir_path(path)?;
        match self.inner.list(&inner).await {
            Ok(children) => Ok(children
                .iter()
                .filter_map(|child| self.scope.outer(child))
                .collect()),
            // The scope holds nothing yet: an empty store, whose root lists as empty.
            Err(Error::PathNotFound { .. }) if path == ROOT => Ok(Vec::new()),
            Err(e) => Err(self.scope.error(e)),
        }
    }

    async fn rename(&self, source: &str, dest: &str) -> Result<()> {
        let inner_source = self.file_path(source)?;
        let inner_dest = self.file_path(dest)?;
        self.inner
            .rename(&inner_source, &inner_dest)
            .await
            .map_err(|e| self.scope.error(e))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let inner = self.file_path(path)?;
        self.inner
            .delete(&inner)
            .await
            .map_err(|e| self.scope.error(e))
    }

    async fn url_for(&self, path: &str, options: &UrlOptions) -> Result<String> {
        let inner = self.file_path(path)?;
        self.inner
            .url_for(&inner, options)
            .await
            .map_err(|e| self.scope.error(e))
    }

    async fn walk(&self, path: &str, options: &WalkOptions, f: &mut WalkFn<'_>) -> Result<()> {
        let inner = self.dir_path(path)?;
        let mut inner_options = WalkOptions::default();
        if let Some(hint) = &options.start_after {
            let mapped = if hint == ROOT {
                self.scope.prefix.clone()
            } else {
                format!("{}{hint}", self.scope.prefix)
            };
            inner_options = inner_options.start_after(mapped);
        }
        let scope = &self.scope;
        let walked = self
            .inner
            .walk(
                &inner,
                &inner_options,
                &mut |info| match scope.outer(&info.path) {
                    Some(outer) => f(&FileInfo {
                        path: outer,
                        ..info.clone()
                    }),
                    None => WalkControl::Continue,
                },
            )
            .await;
        match walked {
            // The scope holds nothing yet: an empty store, whose root walks as empty.
            Err(Error::PathNotFound { .. }) if path == ROOT => Ok(()),
            other => other.map_err(|e| self.scope.error(e)),
        }
    }
}

/// A writer of a [`ScopedDriver`]: the inner writer, its errors mapped back.
#[derive(Debug)]
struct ScopedWriter {
    inner: Box<dyn FileWriter>,
    scope: Scope,
}

#[async_trait]
impl FileWriter for ScopedWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.inner
            .write(data)
            .await
            .map_err(|e| self.scope.error(e))
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    async fn close(&mut self) -> Result<()> {
        self.inner.close().await.map_err(|e| self.scope.error(e))
    }

    async fn cancel(&mut self) -> Result<()> {
        self.inner.cancel().await.map_err(|e| self.scope.error(e))
    }

    async fn commit(&mut self) -> Result<()> {
        self.inner.commit().await.map_err(|e| self.scope.error(e))
    }
}
