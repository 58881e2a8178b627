//! Copying one file: a destination writer opened to resume what it already holds, fed from the
//! source's reader at that offset through a short pipeline (a task reads while this one
//! writes), checkpointed now and then, closed on a stop, committed at the end. A small file
//! is read whole and put in one call instead (an object store then takes one request, not the
//! eight or so of a resumable writer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use indicatif::ProgressBar;
use sha2::{Digest as _, Sha256};
use storagedriver::{Error, FileWriter, StorageDriver};
use tokio::sync::{mpsc, watch};

use super::buffers::Filler;
use super::plan::{Item, dest_error, source_error};
use super::verify::Digest;
use crate::exit::{Class, CliError};

/// Buffers the reading task may be ahead of the writer: enough to keep both sides busy, few
/// enough to bound memory (each holds [`super::buffers::BUFFER`] bytes).
const PIPELINE_CHUNKS: usize = 4;

/// Files up to this size are read whole and put with `put_content`: no more memory than the
/// pipeline of a large file holds, and nothing worth resuming.
pub(crate) const SMALL_FILE: u64 = 1 << 20;

/// How often a long copy closes its writer and opens it again to resume: a close is what
/// makes the bytes written so far resumable on every driver (an object store records its
/// upload's parts then), so a killed process loses at most this much work per file.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

/// What copying a file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The destination already held a committed file of the source's size.
    Skipped,
    /// Written and committed.
    Copied {
        /// Bytes read from the source and written in this run.
        moved: u64,
        /// Bytes the destination writer already held (resumed), 0 for a copy from scratch.
        resumed: u64,
        /// The size and SHA-256 of the source as read, when asked for and read whole.
        digest: Option<Digest>,
    },
}

/// Why a file's copy did not finish.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The copy was asked to stop (Ctrl-C, or another file failed); its writer was closed, so
    /// a rerun resumes it.
    Stopped,
    /// It failed.
    Failed(CliError),
}

impl From<CliError> for Failure {
    fn from(err: CliError) -> Self {
        Failure::Failed(err)
    }
}

/// What every file's copy shares.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The source driver.
    pub(crate) src: Arc<dyn StorageDriver>,
    /// The destination driver.
    pub(crate) dst: Arc<dyn StorageDriver>,
    /// Turns true when the copy must stop.
    pub(crate) stop: watch::Receiver<bool>,
    /// Bytes moved.
    pub(crate) bar: ProgressBar,
    /// Whether to hash what is read (for `--verify`).
    pub(crate) hash: bool,
}

/// Copies `item` as [`Outcome`] says; see the module docs.
pub(crate) async fn copy(job: &Job, item: &Item) -> Result<Outcome, Failure> {
    if item.complete() {
        return Ok(Outcome::Skipped);
    }
    if *job.stop.borrow() {
        return Err(Failure::Stopped);
    }
    if item.size <= SMALL_FILE {
        return put_small(job, item).await;
    }
    let (mut writer, resumed) = open_writer(job, item).await?;
    job.bar.dec_length(resumed);
    let mut hasher = (job.hash && resumed == 0).then(Sha256::new);
    let streamed = stream(job, item, &mut writer, resumed, hasher.as_mut()).await;
    match streamed {
        Ok(moved) => {
            writer.commit().await.map_err(dest_error)?;
            Ok(Outcome::Copied {
                moved,
                resumed,
                digest: hasher.map(|h| Digest {
                    size: item.size,
                    sha256: h.finalize().into(),
                }),
            })
        }
        Err(failure) => {
            // Kept for the rerun: a closed writer resumes from what it wrote. A failed close
            // leaves what was recorded before; the failure that stopped the copy is the one
            // to report.
            let _ = writer.close().await;
            Err(failure)
        }
    }
}

/// Copies a small file: read whole, then put at once (atomic, so a stop leaves nothing).
async fn put_small(job: &Job, item: &Item) -> Result<Outcome, Failure> {
    let mut stream = job
        .src
        .reader(&item.source, 0)
        .await
        .map_err(source_error)?;
    let mut content = BytesMut::with_capacity(item.size as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(source_error)?;
        if (content.len() + chunk.len()) as u64 > item.size {
            return Err(changed(job, item, "grew").into());
        }
        content.extend_from_slice(&chunk);
    }
    if content.len() as u64 != item.size {
        return Err(changed(job, item, "shrank").into());
    }
    let content = content.freeze();
    let digest = job.hash.then(|| Digest {
        size: item.size,
        sha256: Sha256::digest(&content).into(),
    });
    job.dst
        .put_content(&item.dest, content)
        .await
        .map_err(dest_error)?;
    job.bar.inc(item.size);
    Ok(Outcome::Copied {
        moved: item.size,
        resumed: 0,
        digest,
    })
}

/// A writer for `item`'s destination and the bytes it holds: the unfinished content of an
/// earlier copy when there is some that is no longer than the source, else new content.
async fn open_writer(job: &Job, item: &Item) -> Result<(Box<dyn FileWriter>, u64), CliError> {
    // Over committed content of another size, a driver that appends to committed content
    // would resume *that*: such a destination is written anew. Elsewhere resuming finds only
    // what an earlier writer left uncommitted (or nothing: not found, or unsupported over
    // committed content).
    let may_resume = item.existing.is_none() || !job.dst.capabilities().append_to_committed;
    if may_resume {
        match job.dst.writer(&item.dest, true).await {
            Ok(writer) if writer.size() <= item.size => {
                let held = writer.size();
                return Ok((writer, held));
            }
            Ok(mut longer) => {
                // More than the source holds: not a copy of it. Discarded; the new writer below
                // would supersede it anyway.
                let _ = longer.cancel().await;
            }
            Err(e) if e.is_not_found() || matches!(e, Error::Unsupported { .. }) => {}
            Err(e) => return Err(dest_error(e)),
        }
    }
    let writer = job
        .dst
        .writer(&item.dest, false)
        .await
        .map_err(dest_error)?;
    Ok((writer, 0))
}

/// Streams the source from `offset` into `writer`; returns the bytes written.
async fn stream(
    job: &Job,
    item: &Item,
    writer: &mut Box<dyn FileWriter>,
    offset: u64,
    mut hasher: Option<&mut Sha256>,
) -> Result<u64, Failure> {
    if offset == item.size {
        return Ok(0);
    }
    let mut chunks = spawn_reader(Arc::clone(&job.src), item.source.clone(), offset);
    let mut stop = job.stop.clone();
    let mut moved = 0_u64;
    let mut checkpoint = Instant::now();
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => return Err(Failure::Stopped),
            next = chunks.recv() => next,
        };
        let chunk = match next {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => return Err(source_error(e).into()),
        };
        let len = chunk.len() as u64;
        if offset + moved + len > item.size {
            return Err(changed(job, item, "grew").into());
        }
        if let Some(hasher) = hasher.as_deref_mut() {
            hasher.update(&chunk);
        }
        writer.write(chunk).await.map_err(dest_error)?;
        moved += len;
        job.bar.inc(len);
        if checkpoint.elapsed() >= CHECKPOINT_EVERY && offset + moved < item.size {
            *writer = reopen(job, item, writer, offset + moved).await?;
            checkpoint = Instant::now();
        }
    }
    if offset + moved != item.size {
        return Err(changed(job, item, "shrank").into());
    }
    Ok(moved)
}

/// Closes `writer` (what it wrote becomes resumable) and resumes it, expecting `size` bytes.
async fn reopen(
    job: &Job,
    item: &Item,
    writer: &mut Box<dyn FileWriter>,
    size: u64,
) -> Result<Box<dyn FileWriter>, CliError> {
    writer.close().await.map_err(dest_error)?;
    let resumed = job.dst.writer(&item.dest, true).await.map_err(dest_error)?;
    if resumed.size() != size {
        return Err(CliError::new(
            Class::Backend,
            format!(
                "cp: destination {}: {}: resumed at {} bytes after a checkpoint at {size}: another writer took the upload over",
                job.dst.name(),
                item.dest,
                resumed.size()
            ),
        ));
    }
    Ok(resumed)
}

/// The error for a source that changed size while it was copied.
fn changed(job: &Job, item: &Item, how: &str) -> CliError {
    CliError::new(
        Class::Backend,
        format!(
            "cp: source {}: {} {how} from {} bytes while it was copied; run cp again",
            job.src.name(),
            item.source,
            item.size
        ),
    )
}

/// Reads `path` from `offset` in a task of its own, a few chunks ahead of the consumer, copied
/// into recycled buffers (see [`super::buffers`]); the task ends when the consumer drops the
/// receiver.
fn spawn_reader(
    src: Arc<dyn StorageDriver>,
    path: String,
    offset: u64,
) -> mpsc::Receiver<Result<Bytes, Error>> {
    let (tx, rx) = mpsc::channel(PIPELINE_CHUNKS);
    tokio::spawn(async move {
        let mut stream = match src.reader(&path, offset).await {
            Ok(stream) => stream,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let mut filler = Filler::new();
        while let Some(chunk) = stream.next().await {
            let full = match chunk {
                Ok(chunk) => filler.push(&chunk),
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            for buffer in full {
                if tx.send(Ok(buffer)).await.is_err() {
                    return;
                }
            }
        }
        if let Some(rest) = filler.finish() {
            let _ = tx.send(Ok(rest)).await;
        }
    });
    rx
}
