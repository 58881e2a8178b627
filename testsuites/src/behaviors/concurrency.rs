//! Concurrent readers and writers.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use storagedriver::StorageDriver;

use super::{assert_same, get, ok, put, read_from};
use crate::data::{Rng, random_bytes};

/// Ten readers at random offsets of one file (32 MiB; 128 MiB in full mode) read exactly the
/// bytes from their offset to the end, concurrently.
pub async fn concurrent_readers(d: Arc<dyn StorageDriver>) {
    let size = crate::Sizes::from_env().concurrent_read_file as usize;
    let content = random_bytes(16, size);
    let path = "/concurrent/read";
    write_chunked(d.as_ref(), path, &content).await;
    let mut rng = Rng::new(17);
    let tasks = (0..10).map(|_| {
        let offset = rng.below(size as u64) as usize;
        let d = d.clone();
        let content = content.clone();
        tokio::spawn(async move {
            let got = read_from(d.as_ref(), path, offset as u64).await;
            assert_same(&got, &content[offset..], &format!("reader at {offset}"));
        })
    });
    for result in join_all(tasks).await {
        if let Err(e) = result {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

async fn write_chunked(d: &dyn StorageDriver, path: &str, content: &Bytes) {
    let chunks: Vec<Bytes> = (0..content.len())
        .step_by(1 << 20)
        .map(|i| content.slice(i..(i + (1 << 20)).min(content.len())))
        .collect();
    super::write_commit(d, path, &chunks).await;
}

/// Many writers (8 × 8 MiB; 32 × 32 MiB in full mode) stream distinct files at once; each
/// reads back whole.
pub async fn concurrent_writers(d: Arc<dyn StorageDriver>) {
    let sizes = crate::Sizes::from_env();
    let tasks = (0..sizes.concurrent_writers).map(|i| {
        let d = d.clone();
        tokio::spawn(async move {
            let path = format!("/concurrent/write/{i}");
            let content = random_bytes(100 + i as u64, sizes.concurrent_writer_bytes as usize);
            write_chunked(d.as_ref(), &path, &content).await;
            let got = read_from(d.as_ref(), &path, 0).await;
            assert_same(&got, &content, &format!("concurrent writer {i}"));
        })
    });
    for result in join_all(tasks).await {
        if let Err(e) = result {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// Concurrent `put_content` calls on one path while readers read it: every read sees one whole
/// payload (old or new, never a mix or a torn file), and the survivor is one whole payload.
pub async fn concurrent_put_same_path(d: Arc<dyn StorageDriver>) {
    let path = "/concurrent/same";
    let payloads: Vec<Bytes> = (0..8)
        .map(|i| Bytes::from(vec![b'a' + i as u8; 256 * 1024 + i * 1000]))
        .collect();
    put(d.as_ref(), path, payloads[0].clone()).await;
    let is_whole = {
        let payloads = payloads.clone();
        move |got: &Bytes| payloads.iter().any(|p| p == got)
    };
    let writers = (0..8).map(|i| {
        let d = d.clone();
        let payload = payloads[i].clone();
        tokio::spawn(async move {
            for _ in 0..5 {
                ok(
                    d.put_content(path, payload.clone()).await,
                    "concurrent put_content",
                );
            }
        })
    });
    let readers = (0..4).map(|_| {
        let d = d.clone();
        let is_whole = is_whole.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                let got = get(d.as_ref(), path).await;
                assert!(
                    is_whole(&got),
                    "a reader saw {} bytes that are no whole payload",
                    got.len()
                );
                tokio::task::yield_now().await;
            }
        })
    });
    let all: Vec<_> = writers.chain(readers).collect();
    for result in join_all(all).await {
        if let Err(e) = result {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    let survivor = get(d.as_ref(), path).await;
    assert!(
        is_whole(&survivor),
        "the survivor ({} bytes) is no whole payload",
        survivor.len()
    );
}
