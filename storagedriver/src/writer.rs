//! The resumable writer handle.

use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;

/// A handle that writes new content for one path (Go: `FileWriter`), from
/// [`crate::StorageDriver::writer`].
///
/// Nothing written becomes readable until [`FileWriter::commit`]. Until then the committed
/// content at the path, if any, stays as it was.
///
/// # Behavior
///
/// - `write` appends bytes; memory stays bounded whatever the total size.
/// - `size` counts every byte of the content so far, including bytes resumed from an earlier
///   writer.
/// - `close` flushes and releases the handle; the content stays resumable with
///   `writer(path, true)` (from a new driver instance too, on persistent drivers).
/// - `cancel` discards the content written so far; committed content is untouched.
/// - `commit` publishes the content atomically: a reader sees the old content or the new.
/// - After `close`, `cancel` or `commit`, `write`, `commit` and `cancel` fail with
///   [`crate::Error::WriterFinished`]; `close` is a no-op (so `commit` then `close` is fine).
/// - A later writer for the same path supersedes this one (see
///   [`crate::StorageDriver::writer`]): from then on `close`, `commit` and `cancel` fail with
///   [`crate::Error::WriterFinished`] in state `superseded` and change nothing, and `write`
///   fails the same way or is accepted and discarded.
/// - A writer dropped without any of them loses at most the bytes it had not flushed yet and
///   never damages committed content.
#[async_trait]
pub trait FileWriter: Send + Sync + Debug {
    /// Appends `data` to the content.
    async fn write(&mut self, data: Bytes) -> Result<()>;

    /// Bytes in the content so far, resumed bytes included.
    fn size(&self) -> u64;

    /// Flushes what was written and releases the handle, leaving the content resumable.
    async fn close(&mut self) -> Result<()>;

    /// Discards the content written so far (resumed bytes included).
    async fn cancel(&mut self) -> Result<()>;

    /// Publishes the content at the path, atomically.
    async fn commit(&mut self) -> Result<()>;
}

#[async_trait]
impl<W: FileWriter + ?Sized> FileWriter for Box<W> {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        (**self).write(data).await
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
    async fn close(&mut self) -> Result<()> {
        (**self).close().await
    }
    async fn cancel(&mut self) -> Result<()> {
        (**self).cancel().await
    }
    async fn commit(&mut self) -> Result<()> {
        (**self).commit().await
    }
}

/// Where a writer is in its life; drivers keep one to answer
/// [`crate::Error::WriterFinished`] consistently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterState {
    /// Accepting writes.
    Open,
    /// `close` was called.
    Closed,
    /// `cancel` was called.
    Cancelled,
    /// `commit` was called.
    Committed,
    /// A later writer for the same path took the content over.
    Superseded,
}

impl WriterState {
    /// Ok while open; otherwise the [`crate::Error::WriterFinished`] a driver returns.
    pub fn ensure_open(self, driver: &str, path: &str) -> Result<()> {
        let state = match self {
            WriterState::Open => return Ok(()),
            WriterState::Closed => "closed",
            WriterState::Cancelled => "cancelled",
            WriterState::Committed => "committed",
            WriterState::Superseded => "superseded",
        };
        Err(crate::Error::WriterFinished {
            driver: driver.to_owned(),
            path: path.to_owned(),
            state: state.to_owned(),
        })
    }
}
