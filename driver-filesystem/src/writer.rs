//! The [`FileWriter`] of the filesystem driver: content goes to `<name>#upload`, which
//! `commit` renames over the target.
//!
//! # Two writers of one path
//!
//! The later writer takes over (see [`storagedriver::StorageDriver::writer`]). A writer owns
//! one upload file, known by its identity (device and inode) and locked for the writer's
//! life (see [`crate::lock`]):
//!
//! - `writer(path, false)` prepares an empty file in a staging slot and renames it over
//!   `<name>#upload`: the earlier writer's file is no longer the upload.
//! - `writer(path, true)` takes the upload file itself when no open writer holds it (the usual
//!   resume, after a `close`, a drop or a crash); when an open writer still holds it, it
//!   copies what the file holds so far into a new file and renames that over the upload.
//! - `commit` and `cancel` check, under the directory's lock, that the upload is still the
//!   writer's own file before they rename or remove it; `close` and each flush check too. A
//!   writer that finds another file there (or none: a `delete` took it) was superseded: it
//!   fails with [`storagedriver::Error::WriterFinished`] in state `superseded` and changes
//!   nothing. Whatever it wrote went to its own file, which nothing reads any more.

use std::fmt;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use cap_std::fs::Dir;
use storagedriver::{Error, FileWriter, Result, Retry, WriterState};

use crate::blocking::Blocking;
use crate::driver::Inner;
use crate::error::{DRIVER_NAME, backend, io_error, is_not_found, lookup_error};
use crate::lock::{DirLock, Identity, try_lock};
use crate::names;
use crate::root::{self, MAX_ATTEMPTS};
use crate::staging;

/// Writes smaller than this are copied into one buffer; larger ones are kept as they came.
const COALESCE_BELOW: usize = 64 * 1024;

/// Buffered bytes are written to the upload file once they reach this much; it bounds the
/// memory of a writer (plus at most one caller's write).
const FLUSH_AT: usize = 4 << 20;

/// A writer of the filesystem driver, from `writer(path, append)`.
pub(crate) struct FsWriter {
    inner: Arc<Inner>,
    blocking: Blocking,
    /// The driver path.
    path: String,
    /// The writer's upload file, locked, open for writing at its end; `None` once finished, or
    /// if a flush was interrupted by dropping its future.
    file: Option<File>,
    /// The upload file's identity, to tell whether it is still the path's upload.
    identity: Identity,
    /// The directory of the upload, open: the upload is in it as long as it is this writer's
    /// (a delete that removes the directory removes the upload first).
    dir: Arc<Dir>,
    /// Large writes, in order, waiting to be written (the coalescing buffer comes after them).
    pending: Vec<Bytes>,
    /// Small writes, coalesced.
    small: BytesMut,
    /// Bytes in `pending` and `small`.
    buffered: usize,
    /// Bytes already in the upload file.
    flushed: u64,
    state: WriterState,
}

impl fmt::Debug for FsWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsWriter")
            .field("path", &self.path)
            .field("flushed", &self.flushed)
            .field("buffered", &self.buffered)
            .field("state", &self.state)
            .finish()
    }
}

/// What opening a writer's upload gave.
struct Opened {
    file: File,
    identity: Identity,
    len: u64,
}

/// An opened upload and its directory.
struct OpenedIn {
    opened: Opened,
    dir: Dir,
}

/// Makes a new, empty upload for the entry `name` of `dir` and puts it under the upload
/// name, superseding any earlier upload. Runs under the directory's lock.
fn start(dir: &Dir, name: &str) -> io::Result<Opened> {
    let slot = staging::claim_slot(dir, name)?;
    if let Err(e) = rustix::fs::renameat(dir, &slot.name, dir, names::upload(name)) {
        let _ = dir.remove_file(&slot.name);
        return Err(e.into());
    }
    Ok(Opened {
        identity: slot.identity,
        file: slot.file,
        len: 0,
    })
}

/// Takes over the upload of the entry `name` of `dir`, if there is one. Runs under the
/// directory's lock.
fn resume(dir: &Dir, name: &str) -> io::Result<Option<Opened>> {
    let upload = names::upload(name);
    let mut file = match dir.open_with(
        &upload,
        cap_std::fs::OpenOptions::new().read(true).write(true),
    ) {
        Ok(file) => file.into_std(),
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let identity = Identity::of(&file)?;
    if try_lock(&file)? {
        if Identity::of_entry(dir, &upload)? != Some(identity) {
            // A delete took it between the open and the lock.
            return Ok(None);
        }
        let len = file.seek(SeekFrom::End(0))?;
        return Ok(Some(Opened {
            file,
            identity,
            len,
        }));
    }
    // An open writer holds it: copy what it has so far into a file of our own.
    let mut slot = staging::claim_slot(dir, name)?;
    let copied = io::copy(&mut file, &mut slot.file).and_then(|len| {
        rustix::fs::renameat(dir, &slot.name, dir, &upload)
            .map_err(io::Error::from)
            .map(|()| len)
    });
    match copied {
        Ok(len) => Ok(Some(Opened {
            identity: slot.identity,
            file: slot.file,
            len,
        })),
        Err(e) => {
            let _ = dir.remove_file(&slot.name);
            Err(e)
        }
    }
}

/// Opens the upload of a new writer of `path`; see [`FsWriter::open`].
fn open_upload(inner: &Inner, path: &str, append: bool) -> Result<OpenedIn> {
    let (_, name) = root::split(path);
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Resuming creates nothing: with nothing to resume the path is not found.
        let dir = inner.root.open_parent(path, !append).map_err(|e| {
            if append {
                lookup_error("writer", path, e)
            } else {
                io_error("writer", path, e)
            }
        })?;
        let opened = {
            let _lock = DirLock::acquire(&dir).map_err(|e| io_error("writer", path, e))?;
            if append {
                resume(&dir, name)
            } else {
                start(&dir, name).map(Some)
            }
        };
        match opened {
            Ok(Some(opened)) => return Ok(OpenedIn { opened, dir }),
            Ok(None) => break,
            // A concurrent delete pruned the directory.
            Err(e) if is_not_found(&e) && attempt < MAX_ATTEMPTS => continue,
            Err(e) if is_not_found(&e) => {
                return Err(backend("writer", Some(path), Retry::MayHelp, e));
            }
            Err(e) => return Err(io_error("writer", path, e)),
        }
    }
    // Nothing to resume: zero-length committed content is appended to, anything else is not.
    match inner.root.dir().metadata(root::relative(path)) {
        Ok(md) if md.is_file() && md.len() == 0 => open_upload(inner, path, false),
        Ok(md) if md.is_file() => Err(Error::unsupported(
            DRIVER_NAME,
            "append to committed content",
        )),
        Ok(_) => Err(Error::path_not_found(DRIVER_NAME, path)),
        Err(e) => Err(lookup_error("writer", path, e)),
    }
}

/// Whether the file of `identity` is still the upload of the entry `name` of `dir`.
fn still_current(dir: &Dir, name: &str, identity: Identity) -> io::Result<bool> {
    Ok(Identity::of_entry(dir, &names::upload(name))? == Some(identity))
}

/// Writes `chunks` in order.
fn write_chunks(file: &mut File, chunks: &[Bytes]) -> io::Result<()> {
    for chunk in chunks {
        file.write_all(chunk)?;
    }
    Ok(())
}

/// How an operation that checks the upload ended, from its blocking task.
enum Checked<T> {
    /// Done.
    Done(T),
    /// The upload is no longer this writer's.
    Superseded,
}

impl FsWriter {
    /// A writer for driver path `path`.
    ///
    /// `append == false` starts a new, empty upload. `append == true` takes over the
    /// upload if there is one; otherwise starts an empty upload over committed zero-length
    /// content, is [`Error::Unsupported`] over committed non-empty content, and
    /// [`Error::PathNotFound`] over nothing (or a directory). Either way an earlier writer of
    /// the path is superseded.
    pub(crate) async fn open(
        inner: Arc<Inner>,
        blocking: Blocking,
        path: &str,
        append: bool,
    ) -> Result<Self> {
        let OpenedIn { opened, dir } = {
            let inner = Arc::clone(&inner);
            let owned = path.to_owned();
            blocking
                .run("writer", path, move || open_upload(&inner, &owned, append))
                .await?
        };
        Ok(FsWriter {
            inner,
            blocking,
            path: path.to_owned(),
            file: Some(opened.file),
            identity: opened.identity,
            dir: Arc::new(dir),
            pending: Vec::new(),
            small: BytesMut::new(),
            buffered: 0,
            flushed: opened.len,
            state: WriterState::Open,
        })
    }

    /// The buffered bytes, in order, leaving the buffers empty.
    fn take_buffered(&mut self) -> Vec<Bytes> {
        let mut chunks = std::mem::take(&mut self.pending);
        if !self.small.is_empty() {
            chunks.push(self.small.split().freeze());
        }
        self.buffered = 0;
        chunks
    }

    /// The upload file, or the error for a writer whose file was lost.
    fn take_file(&mut self) -> Result<File> {
        self.file.take().ok_or_else(|| {
            backend(
                "write",
                Some(&self.path),
                Retry::Useless,
                "an earlier operation on this writer was interrupted; cancel it and start again",
            )
        })
    }

    /// Marks the writer superseded and returns the error it answers with from now on.
    fn superseded<T>(&mut self) -> Result<T> {
        self.state = WriterState::Superseded;
        self.file = None;
        self.take_buffered();
        Err(Error::WriterFinished {
            driver: DRIVER_NAME.to_owned(),
            path: self.path.clone(),
            state: "superseded".to_owned(),
        })
    }

    /// Writes the buffered bytes to the upload, then flushes the file to the disk if `sync`,
    /// after checking that the upload is still this writer's.
    async fn flush(&mut self, operation: &'static str, sync: bool) -> Result<()> {
        if self.buffered == 0 && !sync {
            return Ok(());
        }
        let chunks = self.take_buffered();
        let mut file = self.take_file()?;
        let path = self.path.clone();
        let dir = Arc::clone(&self.dir);
        let identity = self.identity;
        let (file, result) = self
            .blocking
            .run(operation, &self.path, move || {
                match still_current(&dir, root::split(&path).1, identity) {
                    Ok(true) => {}
                    Ok(false) => return Ok((file, Ok(Checked::Superseded))),
                    Err(e) => return Ok((file, Err(io_error(operation, &path, e)))),
                }
                let mut result = write_chunks(&mut file, &chunks);
                if result.is_ok() && sync {
                    result = file.sync_data();
                }
                // Whatever happened, the file's length is what the upload holds.
                let len = file.metadata().map(|m| m.len());
                Ok((
                    file,
                    result
                        .and(len)
                        .map(Checked::Done)
                        .map_err(|e| io_error(operation, &path, e)),
                ))
            })
            .await?;
        self.file = Some(file);
        match result? {
            Checked::Done(len) => {
                self.flushed = len;
                Ok(())
            }
            Checked::Superseded => self.superseded(),
        }
    }
}

#[async_trait]
impl FileWriter for FsWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.state.ensure_open(DRIVER_NAME, &self.path)?;
        if data.is_empty() {
            return Ok(());
        }
        self.buffered += data.len();
        if data.len() < COALESCE_BELOW {
            self.small.extend_from_slice(&data);
        } else {
            if !self.small.is_empty() {
                self.pending.push(self.small.split().freeze());
            }
            self.pending.push(data);
        }
        if self.buffered >= FLUSH_AT {
            self.flush("write", false).await?;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.flushed + self.buffered as u64
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = DRIVER_NAME, path = %self.path))]
    async fn close(&mut self) -> Result<()> {
        match self.state {
            WriterState::Open => {}
            WriterState::Superseded => return self.superseded(),
            _ => return Ok(()),
        }
        self.flush("close", self.inner.config.fsync()).await?;
        let file = self.take_file()?;
        let dir = Arc::clone(&self.dir);
        let path = self.path.clone();
        let identity = self.identity;
        let current = self
            .blocking
            .run("close", &self.path, move || {
                let current = still_current(&dir, root::split(&path).1, identity)
                    .map_err(|e| io_error("close", &path, e));
                // Closing the file releases its lock: the upload is free to resume.
                drop(file);
                current
            })
            .await?;
        if !current {
            return self.superseded();
        }
        self.state = WriterState::Closed;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = DRIVER_NAME, path = %self.path))]
    async fn cancel(&mut self) -> Result<()> {
        self.state.ensure_open(DRIVER_NAME, &self.path)?;
        self.take_buffered();
        let file = self.take_file()?;
        let inner = Arc::clone(&self.inner);
        let dir = Arc::clone(&self.dir);
        let path = self.path.clone();
        let identity = self.identity;
        let outcome = self
            .blocking
            .run("cancel", &self.path, move || {
                let outcome = cancel_upload(&inner, &dir, &path, identity)
                    .map_err(|e| io_error("cancel", &path, e));
                drop(file);
                outcome
            })
            .await?;
        match outcome {
            Checked::Done(()) => {
                self.state = WriterState::Cancelled;
                Ok(())
            }
            Checked::Superseded => self.superseded(),
        }
    }

    #[tracing::instrument(
        level = "debug",
        skip(self),
        fields(driver = DRIVER_NAME, path = %self.path, size = self.size())
    )]
    async fn commit(&mut self) -> Result<()> {
        self.state.ensure_open(DRIVER_NAME, &self.path)?;
        let fsync = self.inner.config.fsync();
        let total = self.size();
        let chunks = self.take_buffered();
        let mut file = self.take_file()?;
        let inner = Arc::clone(&self.inner);
        let dir = Arc::clone(&self.dir);
        let path = self.path.clone();
        let identity = self.identity;
        let outcome = self
            .blocking
            .run("commit", &self.path, move || {
                let mut written = write_chunks(&mut file, &chunks);
                if written.is_ok() && fsync {
                    written = file.sync_data();
                }
                let published =
                    written.and_then(|()| publish_upload(&inner, &dir, &path, identity));
                let len = file.metadata().map(|m| m.len()).ok();
                Ok(match published {
                    Ok(Checked::Done(Ok(()))) => Commit::Done,
                    Ok(Checked::Done(Err(e))) => Commit::Unsynced(io_error("commit", &path, e)),
                    Ok(Checked::Superseded) => Commit::Superseded,
                    Err(e) => Commit::Failed {
                        file,
                        len,
                        error: io_error("commit", &path, e),
                    },
                })
            })
            .await?;
        match outcome {
            Commit::Done => {
                self.state = WriterState::Committed;
                self.flushed = total;
                Ok(())
            }
            Commit::Unsynced(error) => {
                // Published, but the directory may not be on the disk yet.
                self.state = WriterState::Committed;
                self.flushed = total;
                Err(error)
            }
            Commit::Superseded => self.superseded(),
            Commit::Failed { file, len, error } => {
                // The upload is still there: the writer stays open, to be cancelled or retried.
                self.file = Some(file);
                if let Some(len) = len {
                    self.flushed = len;
                }
                Err(error)
            }
        }
    }
}

/// Removes the upload of `path` (in `dir`) if it is still the file of `identity`, under the
/// directory's lock, then prunes the directories it leaves empty.
fn cancel_upload(
    inner: &Inner,
    dir: &Dir,
    path: &str,
    identity: Identity,
) -> io::Result<Checked<()>> {
    let (parent, name) = root::split(path);
    {
        let _lock = DirLock::acquire(dir)?;
        if !still_current(dir, name, identity)? {
            return Ok(Checked::Superseded);
        }
        match dir.remove_file(names::upload(name)) {
            Err(e) if !is_not_found(&e) => return Err(e),
            _ => {}
        }
    }
    staging::prune_empty_dirs(inner.root.dir(), parent);
    Ok(Checked::Done(()))
}

/// Renames the upload of `path` (in `dir`) over its target if it is still the file of
/// `identity`, under the directory's lock, then flushes the directory if `fsync` is on (the
/// inner result).
fn publish_upload(
    inner: &Inner,
    dir: &Dir,
    path: &str,
    identity: Identity,
) -> io::Result<Checked<io::Result<()>>> {
    let (_, name) = root::split(path);
    {
        let _lock = DirLock::acquire(dir)?;
        if !still_current(dir, name, identity)? {
            return Ok(Checked::Superseded);
        }
        match staging::publish(
            inner.root.dir(),
            (dir, &names::upload(name)),
            (dir, name),
            root::relative(path),
        ) {
            Ok(()) => {}
            // A delete removed the directory, upload and all, after the check.
            Err(e) if is_not_found(&e) => return Ok(Checked::Superseded),
            Err(e) => return Err(e),
        }
    }
    let synced = if inner.config.fsync() {
        staging::sync_dir(dir)
    } else {
        Ok(())
    };
    Ok(Checked::Done(synced))
}

impl Drop for FsWriter {
    /// Keeps what was flushed (the upload stays resumable); bytes still buffered are lost.
    fn drop(&mut self) {
        if self.state == WriterState::Open && self.buffered > 0 {
            tracing::debug!(
                driver = DRIVER_NAME,
                path = %self.path,
                lost = self.buffered,
                "writer dropped without close, cancel or commit"
            );
        }
    }
}

/// How a commit ended, from its blocking task.
enum Commit {
    /// Published (and flushed to the disk if `fsync`).
    Done,
    /// Published, but flushing the directory failed.
    Unsynced(Error),
    /// The upload is no longer this writer's; nothing was published.
    Superseded,
    /// Not published; the upload stays.
    Failed {
        file: File,
        len: Option<u64>,
        error: Error,
    },
}
