//! The conformance suite on the object-store core over `object_store`'s in-memory store, with
//! a small part size so that writers go through multipart uploads, resumes, copies in parts
//! and reordered walks as they do on S3 and Azure. Each test gets its own store; the reopened
//! driver shares it, as a second process shares a bucket.
//!
//! The in-memory store's `complete_multipart` joins every part it holds and ignores the part
//! list it is given; S3 and Azure publish exactly the listed parts, which is what the core
//! relies on when a writer takes an upload over. [`PartListStore`] gives the in-memory store
//! those semantics.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartId, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use storagedriver::StorageDriver;
use storagedriver::objectstore::{ObjectStoreDriver, ObjectStoreOptions};
use testsuites::Fixture;

/// The in-memory store, with multipart uploads that publish exactly the listed parts.
#[derive(Default)]
struct PartListStore {
    inner: InMemory,
    parts: Mutex<HashMap<String, Bytes>>,
    next: AtomicU64,
    /// Run once, at the start of the next `complete_multipart` (a test's interleaving).
    before_complete: Mutex<Option<BoxFuture<'static, ()>>>,
    /// Run once, at the start of the next ranged read.
    before_ranged_get: Mutex<Option<BoxFuture<'static, ()>>>,
}

impl fmt::Debug for PartListStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartListStore").finish_non_exhaustive()
    }
}

impl fmt::Display for PartListStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PartListStore(InMemory)")
    }
}

#[async_trait]
impl ObjectStore for PartListStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.range.is_some() {
            let hook = self.before_ranged_get.lock().expect("hook").take();
            if let Some(hook) = hook {
                hook.await;
            }
        }
        self.inner.get_opts(location, options).await
    }
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[async_trait]
impl MultipartStore for PartListStore {
    async fn create_multipart(&self, _path: &Path) -> object_store::Result<MultipartId> {
        Ok(format!(
            "upload-{}",
            self.next.fetch_add(1, Ordering::Relaxed)
        ))
    }
    async fn put_part(
        &self,
        _path: &Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> object_store::Result<PartId> {
        let content_id = format!(
            "{id}/{part_idx}/{}",
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let bytes: Bytes = data.into();
        self.parts
            .lock()
            .expect("parts")
            .insert(content_id.clone(), bytes);
        Ok(PartId { content_id })
    }
    async fn complete_multipart(
        &self,
        path: &Path,
        _id: &MultipartId,
        parts: Vec<PartId>,
    ) -> object_store::Result<PutResult> {
        let hook = self.before_complete.lock().expect("hook").take();
        if let Some(hook) = hook {
            hook.await;
        }
        let body: Vec<Bytes> = {
            let held = self.parts.lock().expect("parts");
            parts
                .iter()
                .map(|p| {
                    held.get(&p.content_id)
                        .cloned()
                        // S3 answers 404 NoSuchUpload for an aborted upload's parts.
                        .ok_or_else(|| object_store::Error::NotFound {
                            path: path.to_string(),
                            source: format!("NoSuchUpload: no part {}", p.content_id).into(),
                        })
                })
                .collect::<object_store::Result<_>>()?
        };
        self.inner.put(path, body.into_iter().collect()).await
    }
    async fn abort_multipart(&self, _path: &Path, id: &MultipartId) -> object_store::Result<()> {
        let prefix = format!("{id}/");
        self.parts
            .lock()
            .expect("parts")
            .retain(|k, _| !k.starts_with(&prefix));
        Ok(())
    }
}

fn driver(store: Arc<PartListStore>) -> Arc<dyn StorageDriver> {
    let options = ObjectStoreOptions::default()
        .with_chunk_size(64 << 10)
        .with_copy_threshold(256 << 10)
        .with_copy_chunk_size(100 << 10);
    let driver =
        ObjectStoreDriver::new("memory-objects", store, "/suite", options).expect("a valid root");
    Arc::new(driver)
}

testsuites::register_in_process_suite!(|| async {
    let store = Arc::new(PartListStore::default());
    let reopen_store = Arc::clone(&store);
    Fixture::new(driver(store)).with_reopen(move || {
        let store = Arc::clone(&reopen_store);
        async move { driver(store) }
    })
});

/// A writer that takes the upload over between a commit's ownership check and its
/// `complete_multipart` aborts the upload under it: that commit is superseded (the contract's
/// `WriterFinished`), not a `PathNotFound` (found by `concurrent_mixed_operations` in CI, seed
/// 1796032136602806671).
#[tokio::test]
async fn a_takeover_during_commit_supersedes_it() {
    let store = Arc::new(PartListStore::default());
    let d = driver(Arc::clone(&store));
    let mut first = d.writer("/f", false).await.expect("a writer");
    first
        .write(Bytes::from(vec![1u8; 100 << 10]))
        .await
        .expect("a part goes up");
    let taker = Arc::clone(&d);
    let second = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&second);
    *store.before_complete.lock().expect("hook") = Some(Box::pin(async move {
        let writer = taker.writer("/f", false).await.expect("the takeover");
        *slot.lock().expect("slot") = Some(writer);
    }));
    let err = first.commit().await.expect_err("superseded");
    assert!(
        matches!(&err, storagedriver::Error::WriterFinished { state, .. } if state == "superseded"),
        "{err:?}"
    );
    let mut second = second
        .lock()
        .expect("slot")
        .take()
        .expect("the second writer");
    second
        .write(Bytes::from_static(b"second"))
        .await
        .expect("writes");
    second.commit().await.expect("the takeover commits");
    assert_eq!(d.get_content("/f").await.expect("content"), "second");
}

/// A source overwritten while a rename copies it in parts: the rename copies what is there
/// now, not a mix, and fails with no backend error (found by `concurrent_mixed_operations`:
/// `rename: read part ... StartTooLarge`).
#[tokio::test]
async fn a_source_overwritten_during_a_copy_in_parts_is_copied_again() {
    let store = Arc::new(PartListStore::default());
    let d = driver(Arc::clone(&store));
    d.put_content("/a", Bytes::from(vec![7u8; 300 << 10]))
        .await
        .expect("a source above the copy threshold");
    let writer = Arc::clone(&d);
    *store.before_ranged_get.lock().expect("hook") = Some(Box::pin(async move {
        writer
            .put_content("/a", Bytes::from_static(b"newer"))
            .await
            .expect("the overwrite");
    }));
    d.rename("/a", "/b")
        .await
        .expect("the rename copies the newer content");
    assert_eq!(d.get_content("/b").await.expect("moved"), "newer");
    assert!(d.stat("/a").await.expect_err("moved away").is_not_found());
}
