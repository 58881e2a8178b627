//! The [`FileWriter`] of the in-memory driver.

use std::fmt;
use std::mem;

use async_trait::async_trait;
use bytes::Bytes;
use storagedriver::{FileWriter, Result, WriterState};

use crate::NAME;
use crate::store::{self, Content, Shared};

/// Builds content for one path in a buffer of its own, and takes the store's lock only to
/// hand the content over at `close`, `commit` or drop: a long write never blocks anyone.
pub(crate) struct InMemoryWriter {
    store: Shared,
    path: String,
    content: Content,
    /// Bytes in the content, resumed ones included; kept after `close`, `cancel` and `commit`
    /// hand the content over (Go's `Size` answers the same after `Close`).
    size: u64,
    state: WriterState,
}

impl InMemoryWriter {
    /// A writer for `path` that starts with `content` (resumed from a pending upload, or
    /// empty).
    pub(crate) fn new(store: Shared, path: String, content: Content) -> Self {
        InMemoryWriter {
            store,
            path,
            size: content.len(),
            content,
            state: WriterState::Open,
        }
    }

    /// Leaves the content as the pending upload of the path, resumable with
    /// `writer(path, true)`.
    fn park(&mut self) {
        let mut content = mem::take(&mut self.content);
        content.seal_tail();
        let replaced = store::write(&self.store).put_upload(&self.path, content);
        // Freed once the lock is released.
        drop(replaced);
    }
}

impl fmt::Debug for InMemoryWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryWriter")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl FileWriter for InMemoryWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.state.ensure_open(NAME, &self.path)?;
        self.size += data.len() as u64;
        self.content.push(data);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    #[tracing::instrument(level = "debug", skip_all, fields(driver = NAME, path = %self.path, size = self.size))]
    async fn close(&mut self) -> Result<()> {
        if self.state != WriterState::Open {
            return Ok(());
        }
        self.state = WriterState::Closed;
        self.park();
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(driver = NAME, path = %self.path, size = self.size))]
    async fn cancel(&mut self) -> Result<()> {
        self.state.ensure_open(NAME, &self.path)?;
        self.state = WriterState::Cancelled;
        // The writer owns its content (a resumed upload left the store when it was resumed),
        // so discarding it touches nothing shared.
        drop(mem::take(&mut self.content));
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = NAME, path = %self.path, size = self.size))]
    async fn commit(&mut self) -> Result<()> {
        self.state.ensure_open(NAME, &self.path)?;
        let data = mem::take(&mut self.content).into_data();
        let mut guard = store::write(&self.store);
        match guard.put(&self.path, data.clone()) {
            Ok(replaced) => {
                drop(guard);
                drop(replaced);
                self.state = WriterState::Committed;
                Ok(())
            }
            Err(err) => {
                // Nothing is lost: the content stays resumable with `writer(path, true)`.
                let replaced = guard.put_upload(&self.path, Content::from_data(data));
                drop(guard);
                drop(replaced);
                self.state = WriterState::Closed;
                Err(err)
            }
        }
    }
}

impl Drop for InMemoryWriter {
    fn drop(&mut self) {
        if self.state == WriterState::Open {
            tracing::debug!(
                driver = NAME,
                path = %self.path,
                size = self.size,
                "writer dropped while open; its content stays resumable"
            );
            self.park();
        }
    }
}
