//! The storage driver trait.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::capabilities::Capabilities;
use crate::error::Result;
use crate::file_info::FileInfo;
use crate::url::UrlOptions;
use crate::walk::{WalkFn, WalkOptions};
use crate::writer::FileWriter;

/// The bytes of a file from an offset to its end, in chunks, from
/// [`StorageDriver::reader`].
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A filesystem-like key/value store that keeps a registry's blobs and manifests (Go:
/// `storagedriver.StorageDriver`).
///
/// The trait is object safe and used as `Arc<dyn StorageDriver>`. Every path argument follows
/// the grammar of [`crate::path`]; a path that does not is [`crate::Error::InvalidPath`], and
/// every error names the driver ([`StorageDriver::name`]).
///
/// ```
/// use std::sync::Arc;
/// use storagedriver::StorageDriver;
///
/// fn takes_any<D: StorageDriver>(_driver: D) {}
/// fn forwards(driver: Arc<dyn StorageDriver>) {
///     takes_any(driver.clone());
///     takes_any(Box::new(driver));
/// }
/// ```
#[async_trait]
pub trait StorageDriver: Send + Sync + Debug {
    /// The driver's registered name (`inmemory`, `filesystem`, `s3`, `azure`, or an external
    /// driver's name); every error it returns carries it.
    fn name(&self) -> &str;

    /// What the driver offers beyond the core contract.
    fn capabilities(&self) -> Capabilities;

    /// The whole content at `path`.
    ///
    /// # Behavior
    ///
    /// - A missing path or a directory: [`crate::Error::PathNotFound`].
    /// - Meant for small content (manifests, links); stream large files with
    ///   [`StorageDriver::reader`].
    async fn get_content(&self, path: &str) -> Result<Bytes>;

    /// Replaces the whole content at `path`.
    ///
    /// # Behavior
    ///
    /// - Atomic: a concurrent reader sees the old content or the new, never a mix.
    /// - Parent directories are implicit.
    /// - Writing a file where a directory is, or below a file, is
    ///   [`crate::Error::Conflict`] and changes nothing on drivers whose
    ///   [`Capabilities::detects_file_dir_conflicts`] is set.
    async fn put_content(&self, path: &str, content: Bytes) -> Result<()>;

    /// A stream of the bytes of `path` from `offset` to the end.
    ///
    /// # Behavior
    ///
    /// - A missing path (at any offset) or a directory: [`crate::Error::PathNotFound`].
    /// - `offset` equal to the size or past it: an empty stream.
    /// - Memory stays bounded whatever the file's size: the content comes in chunks.
    /// - Dropping the stream early releases what it holds.
    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream>;

    /// A [`FileWriter`] for new content at `path`.
    ///
    /// # Behavior
    ///
    /// - `append == false` starts new, empty content (dropping any earlier uncommitted
    ///   content for the path). Committed content at the path stays readable, unchanged,
    ///   until the writer commits.
    /// - `append == true` resumes the content an earlier writer for the path wrote and closed
    ///   without committing (also from a new driver instance when the driver is
    ///   [`Capabilities::persistent`]); [`FileWriter::size`] starts at the bytes already
    ///   written. With nothing to resume it appends to committed zero-length content. With
    ///   committed non-empty content it appends when
    ///   [`Capabilities::append_to_committed`] is set and is
    ///   [`crate::Error::Unsupported`] otherwise. With nothing at all:
    ///   [`crate::Error::PathNotFound`].
    /// - Two writers for one path: the later one takes over. Opening a writer for a path
    ///   (`append` false or true) supersedes every writer of that path that is still open, in
    ///   this process or, on [`Capabilities::persistent`] drivers, in another one sharing the
    ///   storage. From then on the superseded writer changes nothing: its
    ///   [`FileWriter::close`], [`FileWriter::commit`] and [`FileWriter::cancel`] fail with
    ///   [`crate::Error::WriterFinished`] in state `superseded` and leave the upload and the
    ///   committed content as they are; its [`FileWriter::write`] fails the same way or is
    ///   accepted and discarded (a driver that buffers or streams writes learns of the
    ///   takeover at its next flush). A writer resumed with `append == true` starts from what
    ///   the upload held when it took over.
    /// - Committed content is always exactly the whole payload of one `commit` or one
    ///   [`StorageDriver::put_content`], never a mix of two.
    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>>;

    /// Facts about the file or directory at `path`.
    ///
    /// # Behavior
    ///
    /// - `path` in the result is the path asked for.
    /// - A directory (any path with children) has `is_dir` and size 0.
    /// - A missing path: [`crate::Error::PathNotFound`].
    /// - `stat("/")` is a directory, or [`crate::Error::PathNotFound`] on an empty store
    ///   (registries call it as a health check).
    /// - The `mod_time` of a rewritten file is later than before the rewrite, at the backend's
    ///   time resolution.
    async fn stat(&self, path: &str) -> Result<FileInfo>;

    /// The direct children of the directory `path`, files and directories, as absolute paths,
    /// sorted.
    ///
    /// # Behavior
    ///
    /// - `list("/")` on an empty store is an empty list.
    /// - A path with no children (missing, or a file): [`crate::Error::PathNotFound`].
    /// - Directories implied by deeper files are listed; internal objects (staging files,
    ///   upload state) and backend keys that are not valid paths never are.
    async fn list(&self, path: &str) -> Result<Vec<String>>;

    /// Moves the file at `source` to `dest` (Go: `Move`).
    ///
    /// # Behavior
    ///
    /// - Overwrites `dest`; creates its parents.
    /// - A missing `source`: [`crate::Error::PathNotFound`] naming `source`, and `dest` is
    ///   untouched.
    /// - A `source` below an existing file is an error and changes nothing.
    async fn rename(&self, source: &str, dest: &str) -> Result<()>;

    /// Removes the file at `path`, or the directory and everything below it.
    ///
    /// # Behavior
    ///
    /// - A missing path: [`crate::Error::PathNotFound`]. The root cannot be deleted
    ///   ([`crate::Error::InvalidPath`]).
    /// - Only `path` and what lies below it go: deleting `/a/b` never touches `/a/bc` or
    ///   `/a/b-c/x`.
    /// - Uncommitted writer content below `path` goes too, also that of a writer still open:
    ///   its next `close`, `commit` or `cancel` fails with [`crate::Error::PathNotFound`] or
    ///   [`crate::Error::WriterFinished`] in state `superseded`, and publishes nothing.
    async fn delete(&self, path: &str) -> Result<()>;

    /// A URL that a plain HTTP client can fetch without credentials, with the method of
    /// `options`, until `options.expires_in` has passed (Go: `URLFor`/`RedirectURL`).
    ///
    /// # Behavior
    ///
    /// - Drivers without [`Capabilities::url_for`]: [`crate::Error::Unsupported`].
    /// - The default is for those drivers: a path that breaks the grammar is
    ///   [`crate::Error::InvalidPath`], any other [`crate::Error::Unsupported`] naming the
    ///   driver and `url_for`.
    async fn url_for(&self, path: &str, options: &UrlOptions) -> Result<String> {
        let _ = options;
        crate::path::check(self.name(), path)?;
        Err(crate::Error::unsupported(self.name(), "url_for"))
    }

    /// Calls `f` for every file and directory below `path`, depth first, each directory's
    /// children in sorted order.
    ///
    /// # Behavior
    ///
    /// - `f` steers the walk with [`crate::WalkControl`]: skip a directory, or stop.
    /// - An entry deleted while the walk runs is not an error: it is skipped, or reported
    ///   when the driver had listed it before the delete (a walk over one flat listing).
    /// - [`WalkOptions::start_after`] resumes a long walk after a given path.
    /// - A missing `path`, or a file: [`crate::Error::PathNotFound`].
    /// - The default is [`crate::walk::walk_fallback`] (list + stat); drivers may override it
    ///   with something faster that reports the same entries in the same order.
    async fn walk(&self, path: &str, options: &WalkOptions, f: &mut WalkFn<'_>) -> Result<()> {
        crate::walk::walk_fallback(self, path, options, f).await
    }
}

macro_rules! forward_driver {
    ($ty:ty) => {
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<T: StorageDriver + ?Sized> StorageDriver for $ty {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn get_content(&self, path: &str) -> Result<Bytes> {
                (**self).get_content(path).await
            }
            async fn put_content(&self, path: &str, content: Bytes) -> Result<()> {
                (**self).put_content(path, content).await
            }
            async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream> {
                (**self).reader(path, offset).await
            }
            async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
                (**self).writer(path, append).await
            }
            async fn stat(&self, path: &str) -> Result<FileInfo> {
                (**self).stat(path).await
            }
            async fn list(&self, path: &str) -> Result<Vec<String>> {
                (**self).list(path).await
            }
            async fn rename(&self, source: &str, dest: &str) -> Result<()> {
                (**self).rename(source, dest).await
            }
            async fn delete(&self, path: &str) -> Result<()> {
                (**self).delete(path).await
            }
            async fn url_for(&self, path: &str, options: &UrlOptions) -> Result<String> {
                (**self).url_for(path, options).await
            }
            async fn walk(
                &self,
                path: &str,
                options: &WalkOptions,
                f: &mut WalkFn<'_>,
            ) -> Result<()> {
                (**self).walk(path, options, f).await
            }
        }
    };
}

forward_driver!(Arc<T>);
forward_driver!(Box<T>);
