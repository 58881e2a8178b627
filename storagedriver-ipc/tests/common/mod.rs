//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use driver_inmemory::InMemoryDriver;
use futures::{Stream, StreamExt};
use storagedriver::forward::Forward;
use storagedriver::{
    ByteStream, FileInfo, FileWriter, Result, StorageDriver, WalkFn, WalkOptions,
    forward_storage_driver,
};
use storagedriver_ipc::{IpcDriver, serve};
use tokio::task::JoinHandle;

/// An in-memory driver that counts the reader streams alive on the server side.
#[derive(Debug, Clone)]
pub struct Counting {
    pub inner: InMemoryDriver,
    pub live_readers: Arc<AtomicUsize>,
    /// Walks running on the server side.
    pub live_walks: Arc<AtomicUsize>,
    /// When set, `writer` never returns (a stuck backend).
    pub stuck_writers: Arc<std::sync::atomic::AtomicBool>,
    /// Chunks taken from reader streams on the server side.
    pub pulled: Arc<AtomicUsize>,
}

impl Counting {
    pub fn new() -> Counting {
        Counting {
            inner: InMemoryDriver::new(),
            live_readers: Arc::new(AtomicUsize::new(0)),
            stuck_writers: Arc::default(),
            live_walks: Arc::default(),
            pulled: Arc::default(),
        }
    }

    pub fn pulled(&self) -> usize {
        self.pulled.load(Ordering::SeqCst)
    }

    pub fn live(&self) -> usize {
        self.live_readers.load(Ordering::SeqCst)
    }
}

struct Tracked {
    inner: ByteStream,
    live: Arc<AtomicUsize>,
    pulled: Arc<AtomicUsize>,
}

impl Stream for Tracked {
    type Item = Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(_)) = &polled {
            self.pulled.fetch_add(1, Ordering::SeqCst);
        }
        polled
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Forward for Counting {
    fn inner(&self) -> &dyn StorageDriver {
        &self.inner
    }
    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream> {
        let inner = self.inner.reader(path, offset).await?;
        let inner = if path == "/panic-stream" {
            // Yields the first chunk, then panics.
            inner
                .enumerate()
                .map(|(i, item)| {
                    assert!(i == 0, "the backend blew up mid-stream");
                    item
                })
                .boxed()
        } else {
            inner
        };
        self.live_readers.fetch_add(1, Ordering::SeqCst);
        Ok(Box::pin(Tracked {
            inner,
            live: Arc::clone(&self.live_readers),
            pulled: Arc::clone(&self.pulled),
        }))
    }
    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        if self.stuck_writers.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if path == "/panic-writer" {
            return Ok(Box::new(PanicWriter));
        }
        self.inner.writer(path, append).await
    }
    async fn stat(&self, path: &str) -> Result<FileInfo> {
        if path == "/panic" {
            panic!("stat of /panic");
        }
        self.inner.stat(path).await
    }
    async fn walk(&self, path: &str, options: &WalkOptions, f: &mut WalkFn<'_>) -> Result<()> {
        struct Live(Arc<AtomicUsize>);
        impl Drop for Live {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.live_walks.fetch_add(1, Ordering::SeqCst);
        let _live = Live(Arc::clone(&self.live_walks));
        self.inner.walk(path, options, f).await
    }
}

forward_storage_driver!(Counting);

/// A client connected in process to `serve(driver)` over a socket pair, and the server task.
pub async fn connect(driver: Arc<dyn StorageDriver>) -> (IpcDriver, JoinHandle<Result<()>>) {
    let (server_side, client_side) = tokio::net::UnixStream::pair().expect("a socket pair");
    // The client checks that WELCOME names the driver it asked for.
    let name = driver.name().to_owned();
    let server = tokio::spawn(serve(driver, server_side));
    let client = IpcDriver::connect(&name, client_side)
        .await
        .expect("the handshake succeeds");
    (client, server)
}

/// `len` bytes of a pattern that depends on `seed`.
pub fn pattern(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| {
            (i as u64).wrapping_mul(31).wrapping_add(u64::from(seed)) as u8 ^ ((i >> 20) as u8)
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Checks that `chunk`, found at `offset` of a `pattern(seed, _)`, matches it.
pub fn check_pattern(seed: u8, offset: usize, chunk: &[u8]) -> bool {
    chunk.iter().enumerate().all(|(j, b)| {
        let i = offset + j;
        *b == ((i as u64).wrapping_mul(31).wrapping_add(u64::from(seed)) as u8 ^ ((i >> 20) as u8))
    })
}

/// A writer whose backend blows up on the first write.
#[derive(Debug)]
struct PanicWriter;

#[async_trait]
impl FileWriter for PanicWriter {
    async fn write(&mut self, _data: Bytes) -> Result<()> {
        panic!("the backend blew up mid-write")
    }
    fn size(&self) -> u64 {
        0
    }
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
    async fn cancel(&mut self) -> Result<()> {
        Ok(())
    }
    async fn commit(&mut self) -> Result<()> {
        Ok(())
    }
}
