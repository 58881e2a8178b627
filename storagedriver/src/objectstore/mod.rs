//! The contract on any [`object_store`] backend: the shared core of the S3 and Azure drivers
//! (feature `object-store`).
//!
//! [`ObjectStoreDriver`] maps every operation onto `ObjectStore` + `MultipartStore` once, so a
//! driver crate only builds its store from its parameters and hands it over. Any other
//! `object_store` backend with multipart uploads becomes a [`StorageDriver`] the same way:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> storagedriver::Result<()> {
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use object_store::memory::InMemory;
//! use storagedriver::StorageDriver;
//! use storagedriver::objectstore::{ObjectStoreDriver, ObjectStoreOptions};
//!
//! let driver = ObjectStoreDriver::new("memory", Arc::new(InMemory::new()), "/registry", ObjectStoreOptions::default())?;
//! driver.put_content("/a/b", Bytes::from_static(b"hello")).await?;
//! assert_eq!(driver.list("/a").await?, ["/a/b"]);
//! assert_eq!(driver.get_content("/a/b").await?, "hello");
//! # Ok(()) }
//! ```
//!
//! # Keys
//!
//! A path's key is the root prefix followed by the path without its leading `/`
//! (`rootdirectory = "/docker"`: `/a/b` is `docker/a/b`). Keys never start with `/` and never
//! hold `//`. Keys that are not valid paths (written by other tools, or with characters outside
//! the path grammar) are skipped by `list` and `walk`. A key with an empty segment (`a//b`)
//! cannot be listed at all: `object_store` rejects the whole listing page that holds it.
//!
//! # Operations
//!
//! - `list` is one delimiter listing of `path/`, all pages, sorted. A directory is any
//!   prefix with a valid key below it; an empty listing of a path other than `/` is
//!   `PathNotFound`.
//! - `stat` asks for the object, then for the first valid key below `path/`: `/a` is never a
//!   directory because `/ab` exists. `stat("/")` is always a directory (a registry's health
//!   check), once the store answered a listing.
//! - `delete` removes the object and every key below `path/` (never a sibling that merely
//!   shares the prefix), in the store's batches, and aborts the uploads below it.
//! - `rename` is one server-side copy and a delete; objects over
//!   [`ObjectStoreOptions::copy_threshold`] are copied in parts (ranged reads into a
//!   multipart upload), because one copy of more than 5 GiB is refused by S3.
//! - `walk` is one flat listing, from the start-after hint on, reordered into walk order
//!   (see the `walk` module): no `list` or `stat` per directory.
//! - `url_for` presigns GET or HEAD with the given [`UrlSigner`] (and is `Unsupported`
//!   without one).
//!
//! # Resumable writers
//!
//! A writer uploads its content as a multipart upload in parts of exactly
//! [`ObjectStoreOptions::chunk_size`] (the last part of a commit may be shorter), up to
//! [`ObjectStoreOptions::max_concurrent_parts`] at a time. Content that never fills a part is
//! written with one plain PUT at commit, with no multipart upload at all.
//!
//! What a writer needs to resume is persisted under reserved keys below the root, which no
//! valid path maps to (`~` is not a path character):
//!
//! - `~uploads/<path>/~state`: a JSON record with the owning writer's token, the multipart
//!   upload's id, the ids (ETags) of its parts, the part size, and which tail object holds
//!   the bytes after the last part and how many there are. Opening a writer writes a new
//!   record with a new token, so the record always names the one writer that owns the
//!   upload; a multipart upload is recorded as soon as it is created.
//! - `~uploads/<path>/~tail-<token>`: the bytes after the last full part, written by `close`.
//!   Keeping the tail out of the upload means that closing and resuming never adds a part:
//!   the number of parts never exceeds the content's size divided by the part size.
//!
//! `writer(path, true)` reads the record and the tail, from any driver instance or process.
//! `commit` uploads the tail as the last part and completes the upload (or PUTs the content
//! when there is no upload), then removes the records. `cancel` aborts the upload and removes
//! the records, so nothing is left behind or billed; `delete` of the path, or of a directory
//! above it, does the same when there is committed content to delete (a path that holds only
//! an uncommitted upload is not found, as the contract says, and its upload stays resumable
//! until its writer cancels it).
//!
//! A writer checks that the record still names it before each part, and before `close`,
//! `commit` and `cancel`; when another writer took the upload over it is superseded
//! ([`crate::Error::WriterFinished`] in state `superseded`) and changes nothing. A part that a
//! superseded writer had in flight at the moment of the takeover cannot corrupt the new
//! owner's content: completing an upload checks every part's ETag, so such a commit fails
//! instead.

mod copy;
mod core;
mod errors;
mod keys;
mod options;
mod upload;
mod walk;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, ObjectStoreExt, PutOptions, PutPayload};

pub use self::core::{ObjectBackend, UrlSigner};
pub use self::options::{MAX_SINGLE_COPY, MIN_PART_SIZE, ObjectStoreOptions};

use self::core::Core;
use crate::capabilities::Capabilities;
use crate::driver::{ByteStream, StorageDriver};
use crate::error::{Error, Result, Retry};
use crate::file_info::FileInfo;
use crate::path;
use crate::url::UrlOptions;
use crate::walk::{WalkFn, WalkOptions};
use crate::writer::FileWriter;

/// A [`StorageDriver`] over an `object_store` backend.
///
/// Cloning is cheap: clones share the store.
#[derive(Debug, Clone)]
pub struct ObjectStoreDriver {
    core: Arc<Core>,
}

impl ObjectStoreDriver {
    /// A driver named `name` (the name every error carries) over `store`, with every key below
    /// `rootdirectory` (`""` or `/` for the top of the bucket).
    ///
    /// A root that the store cannot hold as a key prefix is [`Error::InvalidParameter`].
    pub fn new(
        name: impl Into<String>,
        store: Arc<dyn ObjectBackend>,
        rootdirectory: &str,
        options: ObjectStoreOptions,
    ) -> Result<Self> {
        let name = name.into();
        let keys = keys::Keys::new(&name, rootdirectory)?;
        Ok(ObjectStoreDriver {
            core: Arc::new(Core {
                name,
                store,
                keys,
                options,
                signer: None,
            }),
        })
    }

    /// Presigns `url_for` URLs with `signer` (usually the store itself), which turns on
    /// [`Capabilities::url_for`].
    pub fn with_signer(self, signer: Arc<dyn UrlSigner>) -> Self {
        let mut core = Arc::unwrap_or_clone(self.core);
        core.signer = Some(signer);
        ObjectStoreDriver {
            core: Arc::new(core),
        }
    }

    /// The options the driver runs with.
    pub fn options(&self) -> &ObjectStoreOptions {
        &self.core.options
    }

    fn error(&self, operation: &str, path: &str, err: object_store::Error) -> Error {
        self.core.error(operation, path, err)
    }

    fn put_options(&self) -> PutOptions {
        PutOptions {
            attributes: self.core.options.attributes.clone(),
            ..Default::default()
        }
    }

    /// The first valid key below `path/`, as a directory entry.
    async fn first_below(&self, path: &str) -> Result<Option<FileInfo>> {
        let base = self.core.keys.object(path);
        let prefix = (!base.as_ref().is_empty()).then_some(&base);
        let mut listing = self.core.store.list(prefix);
        while let Some(meta) = listing
            .try_next()
            .await
            .map_err(|e| self.error("stat", path, e))?
        {
            if self.core.keys.path_below(&base, &meta.location).is_some() {
                return Ok(Some(FileInfo::dir(path, meta.last_modified.into())));
            }
        }
        Ok(None)
    }

    /// Deletes every key below `path/`, in the store's batches, at most
    /// [`ObjectStoreOptions::delete_chunk`] keys at a time; returns how many went. A chunk
    /// that fails with a transient error is sent again (deleting is idempotent): the store's
    /// client does not retry batch requests, which are POSTs, when a server closes a kept-alive
    /// connection as the request goes out.
    async fn delete_below(&self, path: &str) -> Result<usize> {
        let base = self.core.keys.object(path);
        let mut chunks = self
            .core
            .store
            .list(Some(&base))
            .map_ok(|meta| meta.location)
            .try_chunks(self.core.options.delete_chunk);
        let mut count = 0;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| self.error("delete", path, e.1))?;
            let mut attempt = 0;
            count += loop {
                match self.delete_keys(path, chunk.clone()).await {
                    Err(e) if e.may_retry() && attempt < DELETE_RETRIES => {
                        attempt += 1;
                        tracing::debug!(driver = %self.core.name, path, attempt, error = %e, "retrying a chunk of deletes");
                        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    }
                    done => break done?,
                }
            };
        }
        Ok(count)
    }

    /// Deletes `keys` in one `delete_stream`; keys already gone are not counted.
    async fn delete_keys(&self, path: &str, keys: Vec<object_store::path::Path>) -> Result<usize> {
        let stream = futures::stream::iter(keys.into_iter().map(Ok)).boxed();
        let mut deleted = self.core.store.delete_stream(stream);
        let mut count = 0;
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) => count += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("delete", path, e)),
            }
        }
        Ok(count)
    }
}

/// How many times `rename` copies again when the copy is not visible at its destination.
const RENAME_RETRIES: u32 = 4;

/// How many times a recursive delete sends a failed chunk again.
const DELETE_RETRIES: u32 = 3;

#[async_trait]
impl StorageDriver for ObjectStoreDriver {
    fn name(&self) -> &str {
        &self.core.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .with_persistent(true)
            .with_url_for(self.core.signer.is_some())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = %self.core.name))]
    async fn get_content(&self, path: &str) -> Result<Bytes> {
        path::check(&self.core.name, path)?;
        let key = self.core.keys.object(path);
        let result = self
            .core
            .store
            .get(&key)
            .await
            .map_err(|e| self.error("get_content", path, e))?;
        result
            .bytes()
            .await
            .map_err(|e| self.error("get_content", path, e))
    }

    #[tracing::instrument(level = "debug", skip(self, content), fields(driver = %self.core.name, size = content.len()))]
    async fn put_content(&self, path: &str, content: Bytes) -> Result<()> {
        path::check(&self.core.name, path)?;
        let key = self.core.keys.object(path);
        self.core
            .store
            .put_opts(&key, PutPayload::from(content), self.put_options())
            .await
            .map(|_| ())
            .map_err(|e| self.error("put_content", path, e))
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = %self.core.name))]
    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream> {
        path::check(&self.core.name, path)?;
        let key = self.core.keys.object(path);
        let options = GetOptions {
            range: (offset > 0).then_some(GetRange::Offset(offset)),
            ..Default::default()
        };
        let result = match self.core.store.get_opts(&key, options).await {
            Ok(result) => result,
            Err(e @ object_store::Error::NotFound { .. }) => {
                return Err(self.error("reader", path, e));
            }
            Err(e) if offset > 0 => {
                // At or past the end, S3 answers 416: an empty stream, if the object exists.
                let meta = self
                    .core
                    .store
                    .head(&key)
                    .await
                    .map_err(|e| self.error("reader", path, e))?;
                if offset >= meta.size {
                    return Ok(futures::stream::empty().boxed());
                }
                return Err(self.error("reader", path, e));
            }
            Err(e) => return Err(self.error("reader", path, e)),
        };
        let core = Arc::clone(&self.core);
        let owned = path.to_owned();
        Ok(result
            .into_stream()
            .map_err(move |e| core.error("reader", &owned, e))
            .boxed())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = %self.core.name))]
    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        path::check(&self.core.name, path)?;
        let writer = writer::open(Arc::clone(&self.core), path, append).await?;
        Ok(Box::new(writer))
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = %self.core.name))]
    async fn stat(&self, path: &str) -> Result<FileInfo> {
        path::check_dir(&self.core.name, path)?;
        if path == path::ROOT {
            let found = self.first_below(path).await?;
            return Ok(found.unwrap_or_else(|| FileInfo::dir(path, std::time::UNIX_EPOCH)));
        }
        match self.core.store.head(&self.core.keys.object(path)).await {
            Ok(meta) => return Ok(FileInfo::file(path, meta.size, meta.last_modified.into())),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error("stat", path, e)),
        }
        self.first_below(path)
            .await?
            .ok_or_else(|| Error::path_not_found(self.core.name.as_str(), path))
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = %self.core.name))]
    async fn list(&self, path: &str) -> Result<Vec<String>> {
        path::check_dir(&self.core.name, path)?;
        let base = self.core.keys.object(path);
        let prefix = (!base.as_ref().is_empty()).then_some(&base);
        let listing = self
            .core
            .store
            .list_with_delimiter(prefix)
            .await
            .map_err(|e| self.error("list", path, e))?;
        let keys = &self.core.keys;
        let mut children: Vec<String> = listing
            .objects
            .iter()
            .map(|meta| &meta.location)
            .chain(&listing.common_prefixes)
            .filter_map(|key| keys.path_below(&base, key))
            .collect();
        children.sort_unstable();
        children.dedup();
        if children.is_empty() && path != path::ROOT {
            return Err(Error::path_not_found(self.core.name.as_str(), path));
        }
        Ok(children)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = %self.core.name))]
    async fn rename(&self, source: &str, dest: &str) -> Result<()> {
        path::check(&self.core.name, source)?;
        path::check(&self.core.name, dest)?;
        let from = self.core.keys.object(source);
        let meta = self
            .core
            .store
            .head(&from)
            .await
            .map_err(|e| self.error("rename", source, e))?;
        if source == dest {
            return Ok(());
        }
        let to = self.core.keys.object(dest);
        let mut attempt = 0;
        let mut meta = meta;
        loop {
            if attempt > 0 {
                // The source may have changed meanwhile (a concurrent writer, a rename away).
                meta = self
                    .core
                    .store
                    .head(&from)
                    .await
                    .map_err(|e| self.error("rename", source, e))?;
            }
            // Why the copy must be made again, if it must.
            let again = if meta.size > self.core.options.copy_threshold {
                match copy::copy_in_parts(&self.core, source, &from, &to, &meta).await? {
                    copy::Copied::Done => None,
                    // A writer committed over the source (or it went) while it was read: copy
                    // what is there now.
                    copy::Copied::SourceChanged => {
                        Some("the source kept changing while it was copied")
                    }
                }
            } else {
                self.core
                    .store
                    .copy(&from, &to)
                    .await
                    .map_err(|e| self.error("rename", source, e))?;
                None
            };
            // The source goes only once the copy is there: a server may order a copy behind a
            // delete of the same key made a moment before (Garage 2.5 stamps both with the
            // same millisecond, and the delete wins), which would lose the file. (Whatever is
            // there may also be a concurrent writer's content: that writer simply came later.)
            let why = match again {
                Some(why) => why,
                None => match self.core.store.head(&to).await {
                    Ok(_) => break,
                    Err(object_store::Error::NotFound { .. }) => "the copy does not show there",
                    Err(e) => return Err(self.error("rename: check the copy", dest, e)),
                },
            };
            if attempt == RENAME_RETRIES {
                return Err(Error::backend(
                    self.core.name.as_str(),
                    "rename",
                    Some(source),
                    Retry::MayHelp,
                    format!("{why} (to {dest}); the source is kept"),
                ));
            }
            attempt += 1;
            tracing::debug!(driver = %self.core.name, source, dest, attempt, why, "copying again");
            tokio::time::sleep(Duration::from_millis(2 << attempt)).await;
        }
        match self.core.store.delete(&from).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("rename: delete source", source, e)),
        }
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = %self.core.name))]
    async fn delete(&self, path: &str) -> Result<()> {
        path::check(&self.core.name, path)?;
        let below = self.delete_below(path).await?;
        let key = self.core.keys.object(path);
        let object = match self.core.store.head(&key).await {
            Ok(_) => {
                match self.core.store.delete(&key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.error("delete", path, e)),
                }
                true
            }
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(self.error("delete", path, e)),
        };
        if below == 0 && !object {
            return Err(Error::path_not_found(self.core.name.as_str(), path));
        }
        upload::remove_all_below(&self.core, path).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(driver = %self.core.name))]
    async fn url_for(&self, path: &str, options: &UrlOptions) -> Result<String> {
        path::check(&self.core.name, path)?;
        let Some(signer) = &self.core.signer else {
            return Err(Error::unsupported(self.core.name.as_str(), "url_for"));
        };
        signer
            .signed_url(
                options.method,
                &self.core.keys.object(path),
                options.expires_in,
            )
            .await
            .map_err(|e| self.error("url_for", path, e))
    }

    #[tracing::instrument(level = "debug", skip(self, f), fields(driver = %self.core.name))]
    async fn walk(&self, path: &str, options: &WalkOptions, f: &mut WalkFn<'_>) -> Result<()> {
        walk::walk(&self.core, path, options, f).await
    }
}
