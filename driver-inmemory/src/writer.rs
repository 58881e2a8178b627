//! The [`FileWriter`] of the in-memory driver.

use std::fmt;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use storagedriver::{FileWriter, Result, WriterState};

use crate::NAME;
use crate::store::{self, Content, Shared, Store};

/// Builds content for one path in a buffer of its own, and takes the store's lock only to
/// hand the content over at `close`, `commit` or drop: a long write never blocks anyone.
///
/// The writer owns the path's upload until a later writer for the path takes it over (the
/// store then sets `superseded`); from then on it changes nothing.
pub(crate) struct InMemoryWriter {
    store: Shared,
    path: String,
    content: Content,
    /// Bytes in the content, resumed ones included; kept after `close`, `cancel` and `commit`
    /// hand the content over (Go's `Size` answers the same after `Close`).
    size: u64,
    state: WriterState,
    /// Set by the store, under its lock, when a later writer for the path is opened.
    superseded: Arc<AtomicBool>,
}

impl InMemoryWriter {
    /// A writer for `path` that starts with `content` (resumed from a pending upload, or
    /// empty), and that the store marks through `superseded` when a later writer takes over.
    pub(crate) fn new(
        store: Shared,
        path: String,
        content: Content,
        superseded: Arc<AtomicBool>,
    ) -> Self {
        InMemoryWriter {
            store,
            path,
            size: content.len(),
            content,
            state: WriterState::Open,
            superseded,
        }
    }

    /// Ok while open and not superseded; otherwise the WriterFinished to answer. A writer
    /// found superseded lets go of its content.
    fn check_open(&mut self) -> Result<()> {
        if self.state == WriterState::Open && self.superseded.load(Ordering::Acquire) {
            self.become_superseded();
        }
        self.state.ensure_open(NAME, &self.path)
    }

    /// True, with the store's lock held (`_locked` proves it), that no later writer took
    /// over; the store sets the flag under the same lock, so the answer holds until the lock
    /// is released.
    fn owns(&self, _locked: &Store) -> bool {
        !self.superseded.load(Ordering::Acquire)
    }

    /// The WriterFinished of a writer found superseded, which lets go of its content.
    fn superseded_error(&mut self) -> Result<()> {
        self.become_superseded();
        self.state.ensure_open(NAME, &self.path)
    }

    fn become_superseded(&mut self) {
        self.state = WriterState::Superseded;
        drop(mem::take(&mut self.content));
    }

    /// Leaves the content as the pending upload of the path, resumable with
    /// `writer(path, true)`, unless a later writer took over; either way the writer no longer
    /// owns the path.
    fn park(&mut self) -> Result<()> {
        let mut content = mem::take(&mut self.content);
        content.seal_tail();
        let mut guard = store::write(&self.store);
        if !self.owns(&guard) {
            drop(guard);
            drop(content);
            return self.superseded_error();
        }
        let replaced = guard.put_upload(&self.path, content);
        guard.release(&self.path, &self.superseded);
        drop(guard);
        // Freed once the lock is released.
        drop(replaced);
        Ok(())
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
        self.check_open()?;
        self.size += data.len() as u64;
        self.content.push(data);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = NAME, path = %self.path, size = self.size))]
    async fn close(&mut self) -> Result<()> {
        match self.state {
            WriterState::Open => {}
            WriterState::Superseded => return self.state.ensure_open(NAME, &self.path),
            _ => return Ok(()),
        }
        self.check_open()?;
        self.park()?;
        self.state = WriterState::Closed;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = NAME, path = %self.path, size = self.size))]
    async fn cancel(&mut self) -> Result<()> {
        self.check_open()?;
        let content = mem::take(&mut self.content);
        let mut guard = store::write(&self.store);
        if !self.owns(&guard) {
            drop(guard);
            drop(content);
            return self.superseded_error();
        }
        let upload = guard.take_upload(&self.path);
        guard.release(&self.path, &self.superseded);
        drop(guard);
        // Freed once the lock is released.
        drop(upload);
        drop(content);
        self.state = WriterState::Cancelled;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = NAME, path = %self.path, size = self.size))]
    async fn commit(&mut self) -> Result<()> {
        self.check_open()?;
        let data = mem::take(&mut self.content).into_data();
        let mut guard = store::write(&self.store);
        if !self.owns(&guard) {
            drop(guard);
            drop(data);
            return self.superseded_error();
        }
        match guard.put(&self.path, data.clone()) {
            Ok(replaced) => {
                let upload = guard.take_upload(&self.path);
                guard.release(&self.path, &self.superseded);
                drop(guard);
                drop(replaced);
                drop(upload);
                self.state = WriterState::Committed;
                Ok(())
            }
            Err(err) => {
                // Nothing is lost: the content stays resumable with `writer(path, true)`.
                let replaced = guard.put_upload(&self.path, Content::from_data(data));
                guard.release(&self.path, &self.superseded);
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
        if self.state != WriterState::Open {
            return;
        }
        match self.park() {
            Ok(()) => tracing::debug!(
                driver = NAME,
                path = %self.path,
                size = self.size,
                "writer dropped while open; its content stays resumable"
            ),
            Err(_) => tracing::debug!(
                driver = NAME,
                path = %self.path,
                "superseded writer dropped; nothing changes"
            ),
        }
    }
}
