//! The filesystem driver.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use storagedriver::{
    ByteStream, Capabilities, Error, FileInfo, FileWriter, Result, Retry, StorageDriver, WalkFn,
    WalkOptions, path as dpath,
};

use crate::blocking::Blocking;
use crate::config::FilesystemConfig;
use crate::error::{DRIVER_NAME, backend, io_error, is_not_found, lookup_error};
use crate::lock::DirLock;
use crate::root::{self, MAX_ATTEMPTS, Root, relative};
use crate::staging;
use crate::visibility::{Kind, Unreadable, classify, driver_path, has_visible_file, join};
use crate::writer::FsWriter;

/// What every clone of a driver shares.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: FilesystemConfig,
    /// The root directory, open: every path is resolved beneath it.
    pub(crate) root: Root,
}

/// The error of an operation that found a directory it could not read below its path.
fn unreadable(operation: &str, unreadable: Unreadable) -> Error {
    io_error(
        operation,
        &driver_path(&unreadable.relative),
        unreadable.error,
    )
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
/// # Symlinks
///
/// Every path is resolved beneath the root when it is used: a symlink that leads outside the
/// root (or any absolute symlink) is refused with [`Error::Backend`] naming the path; a
/// relative one that stays inside is followed. See the crate docs.
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
/// - `delete` also removes the staging files that killed writers left for the path, even
///   when the path itself is missing (it then still answers [`Error::PathNotFound`]).
/// - A `delete` of a directory that concurrent writes keep filling removes what they put
///   there too, and ends with `Ok`; a write racing it either survives whole or is gone.
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
    /// or when the root directory cannot be created or opened, or is not a directory (key
    /// `rootdirectory`).
    pub fn new(config: FilesystemConfig) -> Result<Self> {
        config.validate()?;
        let root = open_root(config.root_directory())?;
        let max_threads = usize::try_from(config.max_threads())
            .unwrap_or(FilesystemConfig::DEFAULT_MAX_THREADS as usize);
        Ok(FilesystemDriver {
            blocking: Blocking::new(max_threads),
            inner: Arc::new(Inner { config, root }),
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
        self.inner.config.root_directory()
    }

    /// Runs `f` with the shared state on a blocking thread.
    pub(crate) async fn run<T, F>(&self, operation: &'static str, path: &str, f: F) -> Result<T>
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

/// Creates (if missing) and opens the root directory at `path`.
fn open_root(path: &Path) -> Result<Root> {
    let invalid = |reason: String| Error::invalid_parameter(DRIVER_NAME, "rootdirectory", reason);
    let not_a_directory = || {
        invalid(format!(
            "expected a directory, but {} is not one",
            path.display()
        ))
    };
    let under_a_file = || {
        invalid(format!(
            "cannot create {}: a parent of it is a file, not a directory",
            path.display()
        ))
    };
    match fs::metadata(path) {
        Ok(md) if !md.is_dir() => return Err(not_a_directory()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Err(under_a_file()),
        Err(e) if is_not_found(&e) => {
            fs::create_dir_all(path).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => under_a_file(),
                _ => invalid(format!("cannot create {}: {e}", path.display())),
            })?;
        }
        Err(e) => return Err(invalid(format!("cannot use {}: {e}", path.display()))),
    }
    Root::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotADirectory => not_a_directory(),
        _ => invalid(format!("cannot open {}: {e}", path.display())),
    })
}

/// What a test runs in [`put_blocking`] once the content is staged, before it is published,
/// given the directory and the slot's name: a concurrent operation landing in that window.
#[cfg(test)]
type BeforePublish = Box<dyn FnMut(&cap_std::fs::Dir, &str)>;

#[cfg(test)]
thread_local! {
    /// The [`BeforePublish`] hook of the puts on this thread, if a test set one.
    static BEFORE_PUBLISH: std::cell::RefCell<Option<BeforePublish>> =
        const { std::cell::RefCell::new(None) };
}

/// `put_content` in one blocking call: a staging slot, write, optional `fdatasync`, rename,
/// optional directory sync.
fn put_blocking(inner: &Inner, path: &str, content: &[u8]) -> Result<()> {
    let (_, name) = root::split(path);
    let fsync = inner.config.fsync();
    let failed = |e: io::Error| match e.kind() {
        // A concurrent delete kept removing the directory.
        io::ErrorKind::NotFound => backend("put_content", Some(path), Retry::MayHelp, e),
        _ => io_error("put_content", path, e),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let dir = inner.root.open_parent(path, true).map_err(failed)?;
        let claimed = {
            let _lock = DirLock::acquire(&dir).map_err(failed)?;
            staging::claim_slot(&dir, name)
        };
        let mut slot = match claimed {
            Ok(slot) => slot,
            Err(e) if is_not_found(&e) && attempt < MAX_ATTEMPTS => continue,
            Err(e) => return Err(failed(e)),
        };
        let mut written = slot.file.write_all(content);
        if written.is_ok() && fsync {
            written = slot.file.sync_data();
        }
        #[cfg(test)]
        BEFORE_PUBLISH.with_borrow_mut(|hook| {
            if let Some(hook) = hook {
                hook(&dir, &slot.name);
            }
        });
        let published = written.and_then(|()| {
            staging::publish_slot(
                inner.root.dir(),
                (&dir, &slot),
                (&dir, name),
                relative(path),
            )
        });
        match published {
            Ok(()) => {
                drop(slot);
                if fsync {
                    staging::sync_dir(&dir).map_err(|e| io_error("put_content", path, e))?;
                }
                return Ok(());
            }
            Err(e) => {
                // Remove it rather than leave it for reclaim, unless a delete took it already.
                let _ = staging::discard_slot(&dir, &slot);
                // A concurrent delete removed the slot, or the directory with the slot in it.
                if is_not_found(&e) && attempt < MAX_ATTEMPTS {
                    continue;
                }
                return Err(failed(e));
            }
        }
    }
}

/// `stat` in one blocking call.
fn stat_blocking(inner: &Inner, path: &str) -> Result<FileInfo> {
    let rel = relative(path);
    let metadata = inner
        .root
        .dir()
        .metadata(rel)
        .map_err(|e| lookup_error("stat", path, e))?;
    let modified = || {
        metadata
            .modified()
            .map(|time| time.into_std())
            .map_err(|e| io_error("stat", path, e))
    };
    if metadata.is_file() {
        Ok(FileInfo::file(path, metadata.len(), modified()?))
    } else if metadata.is_dir()
        && has_visible_file(inner.root.dir(), rel).map_err(|u| unreadable("stat", u))?
    {
        Ok(FileInfo::dir(path, modified()?))
    } else {
        Err(Error::path_not_found(DRIVER_NAME, path))
    }
}

/// `list` in one blocking call.
fn list_blocking(inner: &Inner, path: &str) -> Result<Vec<String>> {
    let root = inner.root.dir();
    let rel = relative(path);
    let entries = root
        .read_dir(rel)
        .map_err(|e| lookup_error("list", path, e))?;
    let mut children = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(io_error("list", path, e)),
        };
        let visible = match classify(root, rel, &entry) {
            Ok(Kind::File) => true,
            Ok(Kind::Dir) => match entry.file_name().to_str() {
                Some(name) => {
                    has_visible_file(root, &join(rel, name)).map_err(|u| unreadable("list", u))?
                }
                None => false,
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
    let source_is_file = || match inner.root.dir().metadata(relative(source)) {
        Ok(md) if md.is_file() => Ok(()),
        Ok(_) => Err(Error::path_not_found(DRIVER_NAME, source)),
        Err(e) => Err(lookup_error("rename", source, e)),
    };
    source_is_file()?;
    if source == dest {
        return Ok(());
    }
    let (source_dir, source_name) = root::split(source);
    let (_, dest_name) = root::split(dest);
    let mut attempt = 0;
    let to = loop {
        attempt += 1;
        let from = inner
            .root
            .open_parent(source, false)
            .map_err(|e| lookup_error("rename", source, e))?;
        let to = inner
            .root
            .open_parent(dest, true)
            .map_err(|e| io_error("rename", dest, e))?;
        match staging::publish(
            inner.root.dir(),
            (&from, source_name),
            (&to, dest_name),
            relative(dest),
        ) {
            Ok(()) => break to,
            Err(e) if is_not_found(&e) => {
                // The source went meanwhile, or the destination's directory was pruned.
                source_is_file()?;
                if attempt >= MAX_ATTEMPTS {
                    return Err(backend("rename", Some(dest), Retry::MayHelp, e));
                }
            }
            Err(e) => return Err(io_error("rename", dest, e)),
        }
    };
    if inner.config.fsync() {
        staging::sync_dir(&to).map_err(|e| io_error("rename", dest, e))?;
    }
    staging::prune_empty_dirs(inner.root.dir(), source_dir);
    Ok(())
}

/// `delete` in one blocking call, in the directory of the path, opened once.
fn delete_blocking(inner: &Inner, path: &str) -> Result<()> {
    use rustix::fs::{AtFlags, FileType};
    let root = inner.root.dir();
    let rel = relative(path);
    let (parent, name) = root::split(path);
    let dir = inner
        .root
        .open_parent(path, false)
        .map_err(|e| lookup_error("delete", path, e))?;
    let file_type = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => FileType::from_raw_mode(stat.st_mode),
        Err(rustix::io::Errno::NOENT) => {
            // Nothing to delete, but what killed writers left for the path goes.
            log_reclaim(path, staging::reclaim_slots(&dir, name));
            return Err(Error::path_not_found(DRIVER_NAME, path));
        }
        Err(e) => return Err(lookup_error("delete", path, e.into())),
    };
    // A symlink counts as what it leads to, if that is inside the root; it is the link that
    // goes.
    let is_dir = match file_type {
        FileType::Directory => true,
        FileType::Symlink => root
            .metadata(rel)
            .map_err(|e| lookup_error("delete", path, e))?
            .is_dir(),
        _ => false,
    };
    if is_dir {
        if !has_visible_file(root, rel).map_err(|u| unreadable("delete", u))? {
            return Err(Error::path_not_found(DRIVER_NAME, path));
        }
        staging::delete_dir(&dir, name).map_err(|e| match e.kind() {
            io::ErrorKind::DirectoryNotEmpty => backend(
                "delete",
                Some(path),
                Retry::MayHelp,
                "concurrent writes kept filling the directory while it was being deleted",
            ),
            _ => io_error("delete", path, e),
        })?;
    } else {
        dir.remove_file(name)
            .map_err(|e| lookup_error("delete", path, e))?;
    }
    // The path's own uncommitted upload goes with it, like those below it, and so do the
    // staging slots that killed writers left.
    match dir.remove_file(crate::names::upload(name)) {
        Err(e) if !is_not_found(&e) => return Err(io_error("delete", path, e)),
        _ => {}
    }
    log_reclaim(path, staging::reclaim_slots(&dir, name));
    staging::prune_empty_dirs(root, parent);
    Ok(())
}

/// Reclaiming is tidying: a failure is logged, not returned.
fn log_reclaim(path: &str, reclaimed: io::Result<()>) {
    match reclaimed {
        Err(e) if !is_not_found(&e) => {
            tracing::debug!(driver = DRIVER_NAME, path, error = %e, "cannot reclaim staging slots");
        }
        _ => {}
    }
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
            inner
                .root
                .dir()
                .read(relative(path))
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
        crate::reader::open_stream(Arc::clone(&self.inner), &self.blocking, path, offset).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = DRIVER_NAME))]
    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        dpath::check(DRIVER_NAME, path)?;
        let writer =
            FsWriter::open(Arc::clone(&self.inner), self.blocking.clone(), path, append).await?;
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

    #[tracing::instrument(level = "debug", skip(self, options, f), fields(driver = DRIVER_NAME, start_after = options.start_after.as_deref()))]
    async fn walk(&self, path: &str, options: &WalkOptions, f: &mut WalkFn<'_>) -> Result<()> {
        self.walk_tree(path, options, f).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Identity;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A `delete` of the directory unlinks a put's staging slot while the put is flushing it
    /// (it removes every entry, locked or not), and another put claims the slot's name anew,
    /// with a new, empty file. The first put must not publish that file: it used to rename
    /// the slot by name, so the target became the other put's empty file.
    #[test]
    fn a_put_never_publishes_a_slot_that_another_put_claimed_anew() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let driver = FilesystemDriver::new(FilesystemConfig::new(tmp.path()).with_fsync(false))
            .map_err(io::Error::other)?;
        let rival = Rc::new(RefCell::new(None));
        let armed = Rc::new(RefCell::new(true));
        {
            let (rival, armed) = (Rc::clone(&rival), Rc::clone(&armed));
            BEFORE_PUBLISH.set(Some(Box::new(move |dir: &cap_std::fs::Dir, slot: &str| {
                if armed.replace(false) {
                    // What the delete's removal of the tree does to the slot.
                    dir.remove_file(slot).expect("the slot unlinked");
                    // A concurrent put of the same path claims the free name.
                    let claimed = staging::claim_slot(dir, "f").expect("a slot claimed");
                    assert_eq!(claimed.name, slot, "the rival took the same name");
                    *rival.borrow_mut() = Some(claimed);
                }
            })));
        }
        let payload = b"the whole payload";
        let put = put_blocking(&driver.inner, "/d/f", payload);
        BEFORE_PUBLISH.set(None);
        put.map_err(io::Error::other)?;
        let dir = driver.inner.root.open_dir("d")?;
        assert_eq!(dir.read("f")?, payload, "the put published another file");
        let rival = rival.borrow_mut().take().expect("the hook ran");
        assert_eq!(
            Identity::of_entry(&dir, &rival.name)?,
            Some(rival.identity),
            "the rival's slot was taken from it"
        );
        Ok(())
    }
}
