//! Measures the IPC layer against raw Unix sockets between two processes.
//!
//! ```text
//! cargo run --release -p storagedriver-ipc --example ipc_bench [SIZE_MIB]
//! ```
//!
//! - latency: a `stat` round trip against a raw 64-byte request/reply (blocking sockets both
//!   sides), and against the same over epoll (non-blocking sockets, each side waiting in
//!   `epoll_wait` for the other's message, as any readiness-based runtime does);
//! - throughput: a `reader` stream of SIZE_MIB (1024 by default) against raw 1 MiB writes,
//!   and a writer stream the other way;
//! - memory: the peak RSS of this process and of the child.
//!
//! The child is this same executable: with `REGISTRY_STORAGE_IPC_SOCKET` set it serves a
//! synthetic driver (content made on the fly, writes discarded) so that only the IPC layer's
//! memory shows; with `IPC_BENCH_RAW` set it is the raw peer.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use driver_inmemory::InMemoryDriver;
use futures::StreamExt;
use storagedriver::forward::Forward;
use storagedriver::{
    ByteStream, Capabilities, DriverFactory, Error, FileInfo, FileWriter, Parameters, Result,
    StorageDriver, forward_storage_driver,
};
use storagedriver_ipc::{IpcDriver, SOCKET_ENV, run_driver_executable};

const CHUNK: usize = 1 << 20;

fn main() -> ExitCode {
    if std::env::var_os(SOCKET_ENV).is_some() {
        return run_driver_executable(&SyntheticFactory);
    }
    if let Some(mode) = std::env::var_os("IPC_BENCH_RAW") {
        raw_peer(&mode.to_string_lossy());
        return ExitCode::SUCCESS;
    }
    let size_mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let size = size_mib << 20;

    let only = std::env::var("IPC_BENCH_ONLY").unwrap_or_default();
    let raw_rtt = raw_latency(20_000);
    let raw_bw = raw_throughput(size);
    println!(
        "raw 64-byte request/reply: {:.1} µs",
        raw_rtt.as_secs_f64() * 1e6
    );
    println!("raw unix socket stream: {:.2} GB/s", raw_bw / 1e9);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // Measured from a spawned task, as a registry's request handlers are (not from the
    // block_on thread, which a worker must wake for every event).
    let bench = runtime.spawn(async move {
        let exe = std::env::current_exe().expect("own path");
        let driver = IpcDriver::spawn("synthetic", &exe, &Parameters::new())
            .await
            .expect("spawned");
        let pid = driver.child_pid().expect("a child");
        let tokio_rtt = tokio_latency(1000).await;
        println!(
            "tokio 64-byte request/reply, task to task, no demultiplexing (best of 10 x 1000): {:.1} µs",
            tokio_rtt.as_secs_f64() * 1e6
        );

        // Latency: sequential stats, in batches alternating with raw request/replies (the
        // machine may be shared): the median of the batch ratios, and the best of each.
        if only.is_empty() || only == "stat" {
            let mut echo = RawEcho::start(Readiness::Blocking);
            let mut polled = RawEcho::start(Readiness::Epoll);
            echo.measure(2000);
            polled.measure(2000);
            for _ in 0..2000 {
                driver.stat("/x").await.expect("stat");
            }
            let mut ratios = Vec::new();
            let (mut raws, mut stats, mut epolls) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..40 {
                let raw = tokio::task::block_in_place(|| echo.measure(500));
                epolls.push(tokio::task::block_in_place(|| polled.measure(500)));
                let started = Instant::now();
                for _ in 0..500 {
                    driver.stat("/x").await.expect("stat");
                }
                let stat = started.elapsed() / 500;
                ratios.push(stat.as_secs_f64() / raw.as_secs_f64());
                raws.push(raw);
                stats.push(stat);
            }
            ratios.sort_by(f64::total_cmp);
            raws.sort();
            stats.sort();
            epolls.sort();
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            println!(
                "ipc stat round trip (40 batches of 500, alternating with raw batches): best {:.1} µs vs raw {:.1} µs ({:.2}x); median {:.1} µs vs raw {:.1} µs ({:.2}x); median of the batch ratios {:.2}x",
                us(stats[0]),
                us(raws[0]),
                stats[0].as_secs_f64() / raws[0].as_secs_f64(),
                us(stats[20]),
                us(raws[20]),
                stats[20].as_secs_f64() / raws[20].as_secs_f64(),
                ratios[ratios.len() / 2]
            );
            println!(
                "raw 64-byte request/reply over epoll, same batches: best {:.1} µs ({:.2}x raw), median {:.1} µs; ipc stat best / epoll best {:.2}x",
                us(epolls[0]),
                epolls[0].as_secs_f64() / raws[0].as_secs_f64(),
                us(epolls[20]),
                stats[0].as_secs_f64() / epolls[0].as_secs_f64(),
            );
        }
        // Reader throughput.
        if only.is_empty() || only == "reader" {
            let floor = tokio_throughput(size).await;
            println!(
                "tokio reader task + channel, fresh 1 MiB buffers: {:.2} GB/s ({:.0}% of raw)",
                floor / 1e9,
                100.0 * floor / raw_bw
            );
            let mut best = 0.0f64;
            for _ in 0..3 {
                let started = Instant::now();
                let mut stream = driver
                    .reader(&format!("/gen/{size}"), 0)
                    .await
                    .expect("reader");
                let mut got = 0usize;
                while let Some(chunk) = stream.next().await {
                    got += chunk.expect("chunk").len();
                }
                assert_eq!(got, size);
                best = best.max(size as f64 / started.elapsed().as_secs_f64());
            }
            println!(
                "ipc reader stream: {:.2} GB/s ({:.0}% of raw)",
                best / 1e9,
                100.0 * best / raw_bw
            );
        }
        // Writer throughput.
        if only.is_empty() || only == "writer" {
            let data = Bytes::from(vec![7u8; CHUNK]);
            let started = Instant::now();
            let mut w = driver.writer("/sink", false).await.expect("writer");
            for _ in 0..(size / CHUNK) {
                w.write(data.clone()).await.expect("write");
            }
            w.commit().await.expect("commit");
            let bw = size as f64 / started.elapsed().as_secs_f64();
            println!(
                "ipc writer stream: {:.2} GB/s ({:.0}% of raw)",
                bw / 1e9,
                100.0 * bw / raw_bw
            );
        }
        // Concurrent stats.
        let started = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let d = driver.clone();
                tokio::spawn(async move {
                    for _ in 0..500 {
                        d.stat("/x").await.expect("stat");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        println!(
            "64 tasks x 500 stats: {:.0} stats/s",
            32_000.0 / started.elapsed().as_secs_f64()
        );

        println!(
            "peak RSS: client {} MiB, child {} MiB",
            hwm("self") >> 10,
            hwm(&pid.to_string()) >> 10
        );
    });
    runtime.block_on(bench).expect("the benchmark task");
    ExitCode::SUCCESS
}

/// VmHWM in KiB.
fn hwm(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn raw_child(mode: &str, socket: &std::path::Path, extra: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("own path"))
        .env("IPC_BENCH_RAW", mode)
        .env("IPC_BENCH_SOCKET", socket)
        .env("IPC_BENCH_ARG", extra)
        .spawn()
        .expect("raw child")
}

/// How the two ends of a raw echo wait for each other's message.
#[derive(Clone, Copy)]
enum Readiness {
    /// Blocking reads: the kernel wakes the reader itself.
    Blocking,
    /// Non-blocking sockets and `epoll_wait`, as a readiness-based runtime waits.
    Epoll,
}

/// One end of a raw echo.
enum RawSocket {
    Blocking(UnixStream),
    Epoll(PolledSocket),
}

impl RawSocket {
    fn new(stream: UnixStream, readiness: Readiness) -> RawSocket {
        match readiness {
            Readiness::Blocking => RawSocket::Blocking(stream),
            Readiness::Epoll => RawSocket::Epoll(PolledSocket::new(stream)),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            RawSocket::Blocking(s) => s.write_all(buf),
            RawSocket::Epoll(s) => s.write_all(buf),
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        match self {
            RawSocket::Blocking(s) => s.read_exact(buf),
            RawSocket::Epoll(s) => s.read_exact(buf),
        }
    }
}

/// A non-blocking socket that waits for readability in `epoll_wait` (edge-triggered).
struct PolledSocket {
    stream: UnixStream,
    epoll: std::os::fd::OwnedFd,
}

impl PolledSocket {
    fn new(stream: UnixStream) -> PolledSocket {
        use rustix::event::epoll;
        stream.set_nonblocking(true).expect("nonblocking");
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
        epoll::add(
            &epoll,
            &stream,
            epoll::EventData::new_u64(0),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )
        .expect("epoll add");
        PolledSocket { stream, epoll }
    }

    fn wait(&self) {
        use rustix::event::epoll;
        let mut events = [epoll::Event {
            flags: epoll::EventFlags::empty(),
            data: epoll::EventData::new_u64(0),
        }];
        let _ = epoll::wait(&self.epoll, &mut events[..], None);
    }

    fn write_all(&mut self, mut buf: &[u8]) -> std::io::Result<()> {
        while !buf.is_empty() {
            match self.stream.write(buf) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                // 64 bytes always fit in an idle socket: a full one is only retried.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits first, as a runtime does after it sent a request: the answer is not there yet.
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            self.wait();
            loop {
                match self.stream.read(&mut buf[filled..]) {
                    Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
                if filled == buf.len() {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// A raw echo peer in another process, both sides waiting the same way.
struct RawEcho {
    socket: RawSocket,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl RawEcho {
    fn start(readiness: Readiness) -> RawEcho {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("raw.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let mode = match readiness {
            Readiness::Blocking => "echo",
            Readiness::Epoll => "epoll_echo",
        };
        let child = raw_child(mode, &path, "");
        let (stream, _) = listener.accept().expect("accept");
        RawEcho {
            socket: RawSocket::new(stream, readiness),
            child,
            _dir: dir,
        }
    }

    /// The mean round trip of `n` 64-byte request/replies.
    fn measure(&mut self, n: u32) -> Duration {
        let mut buf = [0u8; 64];
        let started = Instant::now();
        for _ in 0..n {
            self.socket.write_all(&buf).expect("write");
            self.socket.read_exact(&mut buf).expect("read");
        }
        started.elapsed() / n
    }
}

impl Drop for RawEcho {
    fn drop(&mut self) {
        let stream = match &self.socket {
            RawSocket::Blocking(s) => s,
            RawSocket::Epoll(s) => &s.stream,
        };
        let _ = stream.shutdown(std::net::Shutdown::Both);
        let _ = self.child.wait();
    }
}

fn raw_latency(n: u32) -> Duration {
    let mut echo = RawEcho::start(Readiness::Blocking);
    echo.measure(2000);
    echo.measure(n)
}

/// The floor of any tokio design: one task doing write + read against a tokio echo task in
/// the other process (no demultiplexing, no task hand-offs).
async fn tokio_latency(n: u32) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("raw.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind");
    let mut child = raw_child("tokio_echo", &path, "");
    let (mut s, _) = listener.accept().await.expect("accept");
    let mut buf = [0u8; 64];
    let mut best = Duration::MAX;
    for round in 0..11 {
        let started = Instant::now();
        for _ in 0..n {
            s.write_all(&buf).await.expect("write");
            s.read_exact(&mut buf).await.expect("read");
        }
        if round > 0 {
            best = best.min(started.elapsed() / n);
        }
    }
    drop(s);
    let _ = child.wait();
    best
}

/// A tokio reader task reading 1 MiB frames into fresh buffers and handing them over a
/// channel: the floor of the IPC reader's design.
async fn tokio_throughput(size: usize) -> f64 {
    use tokio::io::AsyncReadExt;
    let mut best = 0.0f64;
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("raw.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        let mut child = raw_child("source", &path, &size.to_string());
        let (mut s, _) = listener.accept().await.expect("accept");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<bytes::Bytes>();
        let started = Instant::now();
        if std::env::var_os("IPC_BENCH_REUSE").is_some() {
            let mut buf = vec![0u8; CHUNK];
            let mut got = 0;
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            best = best.max(got as f64 / started.elapsed().as_secs_f64());
            let _ = child.wait();
            continue;
        }
        tokio::spawn(async move {
            let mut buf = bytes::BytesMut::new();
            loop {
                if buf.len() >= CHUNK {
                    if tx.send(buf.split_to(CHUNK).freeze()).is_err() {
                        return;
                    }
                    continue;
                }
                buf.reserve(CHUNK - buf.len());
                match s.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(buf.split().freeze());
                        return;
                    }
                    Ok(_) => {}
                }
            }
        });
        let mut got = 0;
        while let Some(b) = rx.recv().await {
            got += b.len();
        }
        best = best.max(got as f64 / started.elapsed().as_secs_f64());
        let _ = child.wait();
    }
    best
}

fn raw_throughput(size: usize) -> f64 {
    let mut best = 0.0f64;
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("raw.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let mut child = raw_child("source", &path, &size.to_string());
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; CHUNK];
        let started = Instant::now();
        let mut got = 0;
        while got < size {
            let n = s.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            got += n;
        }
        best = best.max(got as f64 / started.elapsed().as_secs_f64());
        let _ = child.wait();
    }
    best
}

fn raw_peer(mode: &str) {
    let path = std::env::var_os("IPC_BENCH_SOCKET").expect("socket");
    let mut s = UnixStream::connect(path).expect("connect");
    match mode {
        "tokio_echo" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            let echo = rt.spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                s.set_nonblocking(true).expect("nonblocking");
                let mut s = tokio::net::UnixStream::from_std(s).expect("tokio stream");
                let mut buf = [0u8; 64];
                while s.read_exact(&mut buf).await.is_ok() {
                    if s.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
            let _ = rt.block_on(echo);
        }
        "echo" | "epoll_echo" => {
            let readiness = if mode == "echo" {
                Readiness::Blocking
            } else {
                Readiness::Epoll
            };
            let mut s = RawSocket::new(s, readiness);
            let mut buf = [0u8; 64];
            while s.read_exact(&mut buf).is_ok() {
                if s.write_all(&buf).is_err() {
                    break;
                }
            }
        }
        _ => {
            let size: usize = std::env::var("IPC_BENCH_ARG")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let buf = vec![7u8; CHUNK];
            let mut sent = 0;
            while sent < size {
                let n = CHUNK.min(size - sent);
                s.write_all(&buf[..n]).expect("write");
                sent += n;
            }
        }
    }
}

/// Content made on the fly: `/gen/<n>` is n bytes; writes are counted and dropped; every other
/// operation finds an empty store.
#[derive(Debug)]
struct Synthetic {
    chunk: Bytes,
    empty: InMemoryDriver,
}

#[derive(Debug)]
struct SyntheticFactory;

#[async_trait]
impl DriverFactory for SyntheticFactory {
    fn name(&self) -> &str {
        "synthetic"
    }
    async fn create(&self, _parameters: &Parameters) -> Result<Arc<dyn StorageDriver>> {
        Ok(Arc::new(Synthetic {
            chunk: Bytes::from(vec![1u8; CHUNK]),
            empty: InMemoryDriver::new(),
        }))
    }
}

#[derive(Debug)]
struct Sink(u64, bool);

#[async_trait]
impl FileWriter for Sink {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.0 += data.len() as u64;
        Ok(())
    }
    fn size(&self) -> u64 {
        self.0
    }
    async fn close(&mut self) -> Result<()> {
        self.1 = true;
        Ok(())
    }
    async fn cancel(&mut self) -> Result<()> {
        Ok(())
    }
    async fn commit(&mut self) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl Forward for Synthetic {
    fn inner(&self) -> &dyn StorageDriver {
        &self.empty
    }
    fn name(&self) -> &str {
        "synthetic"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }
    async fn put_content(&self, _path: &str, _content: Bytes) -> Result<()> {
        Ok(())
    }
    async fn reader(&self, path: &str, _offset: u64) -> Result<ByteStream> {
        let size: usize = path
            .strip_prefix("/gen/")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::path_not_found("synthetic", path))?;
        let chunk = self.chunk.clone();
        let chunks = size / CHUNK;
        let rest = size % CHUNK;
        let tail = chunk.slice(..rest);
        let stream = futures::stream::iter(
            std::iter::repeat_n(chunk, chunks)
                .chain((rest > 0).then_some(tail))
                .map(Ok),
        );
        Ok(stream.boxed())
    }
    async fn writer(&self, _path: &str, _append: bool) -> Result<Box<dyn FileWriter>> {
        Ok(Box::new(Sink(0, false)))
    }
    async fn stat(&self, path: &str) -> Result<FileInfo> {
        Ok(FileInfo::file(path, 42, SystemTime::now()))
    }
}

forward_storage_driver!(Synthetic);
