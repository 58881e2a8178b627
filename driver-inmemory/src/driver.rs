//! The [`StorageDriver`] implementation.

use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use storagedriver::{
    ByteStream, Capabilities, Error, FileInfo, FileWriter, Result, StorageDriver, path,
};

use crate::NAME;
use crate::store::{self, Content, Data, Shared, Store};
use crate::writer::InMemoryWriter;

/// The size of the chunks [`StorageDriver::reader`] yields: slices of the stored content,
/// never copies.
pub const READ_CHUNK_SIZE: usize = store::READ_CHUNK_SIZE;

/// A storage driver that keeps everything in process memory (Go: the `inmemory` driver).
///
/// Meant for tests and development: nothing outlives the last clone. Cloning is cheap and
/// every clone shares the same store; [`InMemoryDriver::new`] (or [`Default`]) makes an empty,
/// independent one.
///
/// # Behavior
///
/// - Nothing is copied on the way in or out: `put_content` stores the given [`Bytes`] and
///   `get_content` returns it; a writer's content is committed as the buffers it was
///   written in (small writes are coalesced into buffers of up to 1 MiB), and `reader`
///   yields slices of the stored buffers. The one copy: `get_content` of a file committed
///   by a writer in several buffers joins them.
/// - Directories are implicit: a path is a directory while some file lies below it, and
///   disappears with its last file. A file where a directory is, or below a file, is
///   [`Error::Conflict`] and changes nothing
///   ([`Capabilities::detects_file_dir_conflicts`]).
/// - Operations lock the store only for the map lookups and updates; a writer builds its
///   content in a buffer of its own, so a long write never blocks readers.
/// - The `mod_time` of a rewritten file is strictly later than before, even when the clock
///   has not moved (it is then bumped by a nanosecond). `rename` keeps the source's
///   `mod_time`. A directory's `mod_time` is the newest of the files below it.
/// - A writer that is closed, dropped while open, or whose `commit` fails with
///   [`Error::Conflict`] leaves its content as a pending upload that `writer(path, true)`
///   resumes. Pending uploads are invisible to reads, listings and `stat`, are not moved by
///   `rename`, and go with `delete` of their path or a directory above it.
/// - Two writers for one path: the later one takes over. Opening a writer makes it the owner
///   of the path's upload and marks the writer that owned it superseded; from then on that
///   writer's `write`, `close`, `commit` and `cancel` fail with [`Error::WriterFinished`] in
///   state `superseded` and change nothing, and dropping it changes nothing either. A writer
///   keeps its own writes in a buffer of its own until it closes or commits, so a writer
///   resumed while another is open starts from what the upload held when that one opened
///   (empty for `append == false`), never from the other's unpublished writes.
/// - `writer(path, true)` on committed non-empty content is [`Error::Unsupported`], and so is
///   `url_for`.
///
/// ```
/// use driver_inmemory::InMemoryDriver;
/// use storagedriver::StorageDriver;
///
/// let driver = InMemoryDriver::new();
/// let same_store = driver.clone();
/// assert_eq!(same_store.name(), "inmemory");
/// assert_eq!(format!("{driver:?}"), "InMemoryDriver { files: 0, uploads: 0 }");
/// ```
#[derive(Clone, Default)]
pub struct InMemoryDriver {
    store: Shared,
}

impl InMemoryDriver {
    /// A driver over a new, empty store.
    pub fn new() -> Self {
        InMemoryDriver {
            store: Arc::new(RwLock::new(Store::default())),
        }
    }
}

impl fmt::Debug for InMemoryDriver {
    /// Counts only, never contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (files, uploads) = {
            let store = store::read(&self.store);
            (store.file_count(), store.upload_count())
        };
        f.debug_struct("InMemoryDriver")
            .field("files", &files)
            .field("uploads", &uploads)
            .finish()
    }
}

#[async_trait]
impl StorageDriver for InMemoryDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with_file_dir_conflicts(true)
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = NAME, path = %path))]
    async fn get_content(&self, path: &str) -> Result<Bytes> {
        path::check(NAME, path)?;
        let data = store::read(&self.store).get(path)?;
        // Free for content stored by `put_content`; content committed by a writer in several
        // chunks is joined here, outside the lock.
        Ok(data.into_bytes())
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = NAME, path = %path, size = content.len()))]
    async fn put_content(&self, path: &str, content: Bytes) -> Result<()> {
        path::check(NAME, path)?;
        let replaced = store::write(&self.store).put(path, Data::Whole(content))?;
        // Freed once the lock is released.
        drop(replaced);
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = NAME, path = %path, offset = offset))]
    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream> {
        path::check(NAME, path)?;
        let data = store::read(&self.store).get(path)?;
        Ok(futures::stream::iter(data.slices_from(offset).map(Ok)).boxed())
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = NAME, path = %path, append = append))]
    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        path::check(NAME, path)?;
        let mut store = store::write(&self.store);
        let (content, dropped) = if append {
            match store.share_upload(path) {
                // The upload as it is now: closed content, or what the open writer this one
                // supersedes started from (its own writes are its own).
                Some(pending) => (pending, None),
                None => match store.file_len(path) {
                    // Committed empty content: an empty upload, resumable by a later writer
                    // that takes over from this one.
                    Some(0) => (
                        Content::default(),
                        store.put_upload(path, Content::default()),
                    ),
                    Some(_) => {
                        return Err(Error::unsupported(NAME, "append to committed content"));
                    }
                    None => return Err(Error::path_not_found(NAME, path)),
                },
            }
        } else {
            store.check_no_ancestor_file(path)?;
            // New, empty content: an earlier upload is dropped, and a writer that takes over
            // from this one while it is open resumes the empty upload.
            (
                Content::default(),
                store.put_upload(path, Content::default()),
            )
        };
        let superseded = store.take_ownership(path);
        drop(store);
        drop(dropped);
        Ok(Box::new(InMemoryWriter::new(
            Arc::clone(&self.store),
            path.to_owned(),
            content,
            superseded,
        )))
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = NAME, path = %path))]
    async fn stat(&self, path: &str) -> Result<FileInfo> {
        path::check_dir(NAME, path)?;
        store::read(&self.store).stat(path)
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = NAME, path = %path))]
    async fn list(&self, path: &str) -> Result<Vec<String>> {
        path::check_dir(NAME, path)?;
        store::read(&self.store).list(path)
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = NAME, source = %source, dest = %dest))]
    async fn rename(&self, source: &str, dest: &str) -> Result<()> {
        path::check(NAME, source)?;
        path::check(NAME, dest)?;
        let replaced = store::write(&self.store).rename(source, dest)?;
        drop(replaced);
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = NAME, path = %path))]
    async fn delete(&self, path: &str) -> Result<()> {
        path::check(NAME, path)?;
        let removed = store::write(&self.store).delete(path)?;
        tracing::trace!(files = removed.file_count(), "deleted");
        // Freed once the lock is released.
        drop(removed);
        Ok(())
    }
}
