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
#[derive(Debug, Default)]
struct PartListStore {
    inner: InMemory,
    parts: Mutex<HashMap<String, Bytes>>,
    next: AtomicU64,
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
