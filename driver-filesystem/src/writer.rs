//! The [`FileWriter`] of the filesystem driver: content goes to `<target>#upload`, which
//! `commit` renames over the target.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use storagedriver::{Error, FileWriter, Result, Retry, WriterState};

use crate::blocking::Blocking;
use crate::driver::Inner;
use crate::error::{DRIVER_NAME, backend, io_error, is_not_found, lookup_error};
use crate::staging::{self, Create};

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
    /// The file the content is published at.
    target: PathBuf,
    /// `<target>#upload`.
    upload: PathBuf,
    /// The upload, open for writing at its end; `None` once finished, or if a flush was
    /// interrupted by dropping its future.
    file: Option<File>,
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
            .field("upload", &self.upload)
            .field("flushed", &self.flushed)
            .field("buffered", &self.buffered)
            .field("state", &self.state)
            .finish()
    }
}

/// Opens the upload of a new writer: `<target>#upload` created or truncated, parents created.
fn start(target: &Path, path: &str) -> Result<File> {
    let upload = staging::upload_path(target);
    staging::create_file(&upload, Create::Truncate).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => backend("writer", Some(path), Retry::MayHelp, e),
        _ => io_error("writer", path, e),
    })
}

/// Opens the upload of a resuming writer, with its length; see [`FsWriter::open`].
fn resume(target: &Path, path: &str) -> Result<(File, u64)> {
    let upload = staging::upload_path(target);
    match OpenOptions::new().append(true).open(&upload) {
        Ok(file) => {
            let len = file
                .metadata()
                .map_err(|e| io_error("writer", path, e))?
                .len();
            Ok((file, len))
        }
        Err(e) if is_not_found(&e) || e.kind() == io::ErrorKind::NotADirectory => {
            match fs::metadata(target) {
                Ok(md) if md.is_file() && md.len() == 0 => Ok((start(target, path)?, 0)),
                Ok(md) if md.is_file() => Err(Error::unsupported(
                    DRIVER_NAME,
                    "append to committed content",
                )),
                Ok(_) => Err(Error::path_not_found(DRIVER_NAME, path)),
                Err(e) => Err(lookup_error("writer", path, e)),
            }
        }
        Err(e) => Err(io_error("writer", path, e)),
    }
}

impl FsWriter {
    /// A writer for driver path `path` at `target` (its file under the root).
    ///
    /// `append == false` creates or truncates `<target>#upload`. `append == true` resumes
    /// `<target>#upload` if it exists; otherwise starts an empty upload over committed
    /// zero-length content, is [`Error::Unsupported`] over committed non-empty content, and
    /// [`Error::PathNotFound`] over nothing (or a directory).
    pub(crate) async fn open(
        inner: Arc<Inner>,
        blocking: Blocking,
        path: &str,
        target: PathBuf,
        append: bool,
    ) -> Result<Self> {
        let (file, flushed) = {
            let target = target.clone();
            let owned = path.to_owned();
            blocking
                .run("writer", path, move || {
                    if append {
                        resume(&target, &owned)
                    } else {
                        start(&target, &owned).map(|file| (file, 0))
                    }
                })
                .await?
        };
        Ok(FsWriter {
            inner,
            blocking,
            path: path.to_owned(),
            upload: staging::upload_path(&target),
            target,
            file: Some(file),
            pending: Vec::new(),
            small: BytesMut::new(),
            buffered: 0,
            flushed,
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

    /// Writes the buffered bytes to the upload, then flushes the file to the disk if `sync`.
    async fn flush(&mut self, operation: &'static str, sync: bool) -> Result<()> {
        if self.buffered == 0 && !sync {
            return Ok(());
        }
        let chunks = self.take_buffered();
        let mut file = self.take_file()?;
        let path = self.path.clone();
        let (file, result) = self
            .blocking
            .run(operation, &self.path, move || {
                let mut result = write_chunks(&mut file, &chunks);
                if result.is_ok() && sync {
                    result = file.sync_data();
                }
                // Whatever happened, the file's length is what the upload holds.
                let len = file.metadata().map(|m| m.len());
                Ok((
                    file,
                    result.and(len).map_err(|e| io_error(operation, &path, e)),
                ))
            })
            .await?;
        self.file = Some(file);
        self.flushed = result?;
        Ok(())
    }
}

/// Writes `chunks` in order.
fn write_chunks(file: &mut File, chunks: &[Bytes]) -> io::Result<()> {
    for chunk in chunks {
        file.write_all(chunk)?;
    }
    Ok(())
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
        if self.state != WriterState::Open {
            return Ok(());
        }
        self.flush("close", self.inner.config.fsync()).await?;
        self.state = WriterState::Closed;
        self.file = None;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = DRIVER_NAME, path = %self.path))]
    async fn cancel(&mut self) -> Result<()> {
        self.state.ensure_open(DRIVER_NAME, &self.path)?;
        self.state = WriterState::Cancelled;
        self.take_buffered();
        self.file = None;
        let upload = self.upload.clone();
        let inner = Arc::clone(&self.inner);
        let path = self.path.clone();
        self.blocking
            .run("cancel", &self.path, move || {
                match fs::remove_file(&upload) {
                    Err(e) if !is_not_found(&e) => return Err(io_error("cancel", &path, e)),
                    _ => {}
                }
                if let Some(dir) = upload.parent() {
                    staging::prune_empty_dirs(inner.root(), dir);
                }
                Ok(())
            })
            .await
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
        let upload = self.upload.clone();
        let target = self.target.clone();
        let path = self.path.clone();
        let outcome = self
            .blocking
            .run("commit", &self.path, move || {
                let mut written = write_chunks(&mut file, &chunks);
                if written.is_ok() && fsync {
                    written = file.sync_data();
                }
                let published = written.and_then(|()| staging::publish(&upload, &target));
                if let Err(e) = published {
                    let len = file.metadata().map(|m| m.len()).ok();
                    return Ok(Commit::Failed {
                        file,
                        len,
                        error: io_error("commit", &path, e),
                    });
                }
                drop(file);
                if fsync {
                    if let Err(e) = staging::sync_parent(&target) {
                        return Ok(Commit::Unsynced(io_error("commit", &path, e)));
                    }
                }
                Ok(Commit::Done)
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
    /// Not published; the upload stays.
    Failed {
        file: File,
        len: Option<u64>,
        error: Error,
    },
}
