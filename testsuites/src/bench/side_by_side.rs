//! The harness of the object-store drivers' benchmarks (S3, Azure): a driver side by side with
//! `object_store` used directly on the same server and bucket or container, and with the
//! driver over IPC (its executable started as a child), in one process and one sitting.
//! Behind the `object-store` feature.
//!
//! A benchmark builds a [`Bench`] (the driver, the IPC driver, the `object_store` client, the
//! root's key prefix), chooses a [`Plan`] (usually [`Plan::from_env`]), and hands both to
//! [`run`], which runs these sections and returns their timings:
//!
//! | section | configurations |
//! |---|---|
//! | put of each size of [`Plan::sizes`] (1 MiB writes) | the driver, `object_store`'s `WriteMultipart` with the driver's part size and its `writerconcurrency` in flight, the same with [`DEFAULT_PARTS`] in flight, the driver over IPC |
//! | get of each size (the whole object as a stream) | the driver's `reader(path, 0)`, `get(path).into_stream()`, the driver over IPC |
//! | put+get of 1 KiB, [`Plan::small_count`] times | `put_content` and `get_content`, `put_opts` and `get`, over IPC |
//! | a listing of [`Plan::list_keys`] keys | `list`, `list_with_delimiter`, over IPC |
//! | the peak memory of a write of [`Plan::memory_size`] | the driver, `object_store` directly, over IPC (this process and the child) |
//!
//! Each section runs every configuration once per round, the order rotated from round to round,
//! and [`report`] gives the median and the best round of each, with the rate against
//! `object_store` direct. The benchmark's `main` is [`bench_main`]; it deletes what the run
//! wrote through [`cleanup`], also when a step fails.
//!
//! Peak memory comes from a counting global allocator ([`PeakAlloc`], which the benchmark
//! declares: the workspace forbids unsafe code) and, for whole processes, from
//! `/proc/<pid>/status` after `clear_refs` ([`super::ipc::peak_memory`]).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{
    Attributes, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
    WriteMultipart,
};
pub use peak_alloc::PeakAlloc;
use storagedriver::StorageDriver;

use super::format_duration;
use super::ipc::{current_memory, peak_memory, reset_peak_memory};

/// One mebibyte.
pub const MIB: usize = 1 << 20;
/// The callers' write size.
pub const WRITE: usize = MIB;
/// The concurrency of `object_store`'s own `BufWriter` (`WriteMultipart` alone has no bound).
pub const DEFAULT_PARTS: usize = 8;

/// The value of `result`, or a panic that names the benchmark step `what`.
///
/// # Panics
///
/// When `result` is an error: a benchmark has no better answer.
pub fn must<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("benchmark step {what} failed: {e}"),
    }
}

/// How an operation reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The driver in this process.
    Driver,
    /// `object_store` directly, with this many parts in flight (puts; 0 where none apply).
    Direct(usize),
    /// The driver in a child process, through the IPC client.
    Ipc,
}

impl Via {
    /// The configuration's name in the tables.
    pub fn label(self) -> String {
        match self {
            Via::Driver => "driver".into(),
            Via::Direct(0) => "object_store direct".into(),
            Via::Direct(n) if n == DEFAULT_PARTS => {
                format!("object_store direct, {n} in flight (BufWriter's default)")
            }
            Via::Direct(n) => format!("object_store direct, {n} in flight"),
            Via::Ipc => "driver over IPC".into(),
        }
    }

    /// The configuration's name in paths.
    pub fn slug(self) -> String {
        match self {
            Via::Driver => "driver".into(),
            Via::Direct(n) => format!("direct{n}"),
            Via::Ipc => "ipc".into(),
        }
    }
}

/// The timings of one configuration in one section.
#[derive(Debug, Clone)]
pub struct Series {
    /// The section's name (`put 64 MiB`, ...).
    pub section: String,
    /// The configuration.
    pub via: Via,
    /// Bytes moved per sample, for throughput.
    pub bytes: Option<u64>,
    /// Per sample: the time of one operation (or one round trip).
    pub times: Vec<Duration>,
}

impl Series {
    /// The median of the samples (zero without any).
    pub fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort_unstable();
        match t.len() {
            0 => Duration::ZERO,
            n if n % 2 == 1 => t[n / 2],
            n => (t[n / 2 - 1] + t[n / 2]) / 2,
        }
    }

    /// The best (shortest) sample.
    pub fn min(&self) -> Duration {
        self.times.iter().copied().min().unwrap_or_default()
    }

    /// The bytes of one sample over `d`, in MB/s (10^6 bytes), when the section moves bytes.
    pub fn mb_per_s(&self, d: Duration) -> Option<f64> {
        self.bytes.map(|b| b as f64 / d.as_secs_f64() / 1e6)
    }
}

/// Opens a section: one empty [`Series`] per configuration, appended to `series`; returns
/// the index of the first, for [`record`].
pub fn open_section(
    series: &mut Vec<Series>,
    section: &str,
    configs: &[Via],
    bytes: Option<u64>,
) -> usize {
    let first = series.len();
    series.extend(configs.iter().map(|&via| Series {
        section: section.to_owned(),
        via,
        bytes,
        times: Vec::new(),
    }));
    first
}

/// Adds one round's time of `via` to its series of the section opened at `first`, and logs it.
pub fn record(series: &mut [Series], first: usize, round: usize, via: Via, t: Duration) {
    if let Some(s) = series[first..].iter_mut().find(|s| s.via == via) {
        eprintln!(
            "  {} round {} {}: {}",
            s.section,
            round + 1,
            via.label(),
            format_duration(t)
        );
        s.times.push(t);
    }
}

/// Configurations in round `round`'s order: rotated by one each round.
pub fn rotated(configs: &[Via], round: usize) -> Vec<Via> {
    let mut v = configs.to_vec();
    if !v.is_empty() {
        let n = round % v.len();
        v.rotate_left(n);
    }
    v
}

/// `size` as `64 MiB` or `1 GiB`.
pub fn size_label(size: usize) -> String {
    if size >= 1 << 30 {
        format!("{} GiB", size >> 30)
    } else {
        format!("{} MiB", size >> 20)
    }
}

/// `bytes` in MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// The load averages of 1, 5 and 15 minutes, from `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The time now, as `date -u` gives it.
pub fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown time".into())
}

/// The child of this process running the executable named `executable` (the factory does not
/// hand out its pid): the newest one, from `/proc`.
pub fn find_child(executable: &str) -> Option<u32> {
    let me = std::process::id();
    let mut found = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        let named = exe
            .as_deref()
            .and_then(Path::file_name)
            .is_some_and(|n| n == executable);
        if ppid == Some(me) && named {
            found = found.max(Some(pid));
        }
    }
    found
}

/// Flushes the page cache's dirty data (untimed) before a large put, so that no put pays for
/// the writeback of the one before it: the server's disk is this machine's.
pub async fn settle() {
    let started = Instant::now();
    let synced = tokio::task::spawn_blocking(|| std::process::Command::new("sync").status()).await;
    if !matches!(synced, Ok(Ok(status)) if status.success()) {
        eprintln!("  sync failed: {synced:?}");
    }
    let took = started.elapsed();
    if took > Duration::from_secs(1) {
        eprintln!("  (sync took {})", format_duration(took));
    }
}

/// `None` after saying why the benchmark `name` is skipped (`reason`: the server is not
/// configured).
///
/// # Panics
///
/// Under `STORAGEDRIVER_REQUIRE_SERVERS=1`, with `reason`.
pub fn skipped<T>(name: &str, reason: &str) -> Option<T> {
    if crate::sizes::servers_required() {
        panic!("{reason}");
    }
    println!("{name} benchmark skipped: {reason}");
    None
}

/// A buffer of random bytes that each put takes whole and gives back. When `unique`, it is
/// stamped anew each time (16 bytes every 64 KiB) so that no put repeats a block a server
/// that deduplicates blocks by hash (Garage) already stores.
#[derive(Debug)]
pub struct Source {
    buf: Option<BytesMut>,
    unique: bool,
    stamp: u64,
}

impl Source {
    /// `len` random bytes, stamped anew for each put when `unique`.
    pub fn new(len: usize, unique: bool) -> Self {
        let mut buf = BytesMut::zeroed(len);
        crate::data::Rng::new(0x5eed).fill(&mut buf);
        Source {
            buf: Some(buf),
            unique,
            stamp: 0,
        }
    }

    /// The buffer (stamped when `unique`), as one `Bytes` that puts slice without copying.
    ///
    /// # Panics
    ///
    /// When the buffer was not given back since the last `take`.
    pub fn take(&mut self) -> Bytes {
        let mut buf = self
            .buf
            .take()
            .unwrap_or_else(|| panic!("the source was not given back"));
        if !self.unique {
            return buf.freeze();
        }
        self.stamp += 1;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        for block in buf.chunks_mut(64 << 10) {
            let n = block.len().min(16);
            let mut stamp = [0u8; 16];
            stamp[..8].copy_from_slice(&self.stamp.to_le_bytes());
            stamp[8..].copy_from_slice(&nanos.to_le_bytes());
            block[..n].copy_from_slice(&stamp[..n]);
        }
        buf.freeze()
    }

    /// Takes the buffer back (copied, untimed, if something still holds a slice of it).
    pub fn give_back(&mut self, bytes: Bytes) {
        self.buf = Some(match bytes.try_into_mut() {
            Ok(buf) => buf,
            // Something still holds a slice: copy, untimed.
            Err(bytes) => BytesMut::from(&bytes[..]),
        });
    }
}

/// What a benchmark runs against.
#[derive(Debug)]
pub struct Bench {
    /// The driver in this process.
    pub driver: Arc<dyn StorageDriver>,
    /// The same driver over IPC.
    pub ipc: Arc<dyn StorageDriver>,
    /// The IPC child's pid, for its memory ([`find_child`]).
    pub child: Option<u32>,
    /// `object_store`'s client with the driver's settings, on the same bucket or container.
    pub store: Arc<dyn ObjectStore>,
    /// The root's key prefix (no leading `/`).
    pub root: String,
    /// The driver's part size (`chunksize`), also the direct puts' part size.
    pub chunk: usize,
    /// The driver's parts in flight (`writerconcurrency`), also the direct reference put's.
    pub driver_parts: usize,
    /// The attributes the driver writes objects with, and so the direct puts.
    pub attributes: Attributes,
    /// Whether every large put's content is new to the server ([`Source`]).
    pub unique: bool,
}

impl Bench {
    /// The key of the driver's `path`.
    pub fn key(&self, path: &str) -> Key {
        Key::from(format!("{}{path}", self.root))
    }

    fn driver_of(&self, via: Via) -> &dyn StorageDriver {
        match via {
            Via::Ipc => self.ipc.as_ref(),
            _ => self.driver.as_ref(),
        }
    }

    /// Starts `object_store`'s multipart upload at the driver's `path`, in the driver's parts.
    async fn direct_upload(&self, path: &str) -> WriteMultipart {
        let options = PutMultipartOptions {
            attributes: self.attributes.clone(),
            ..Default::default()
        };
        let upload = must(
            self.store
                .put_multipart_opts(&self.key(path), options)
                .await,
            "object_store put_multipart",
        );
        WriteMultipart::new_with_chunk_size(upload, self.chunk)
    }

    /// Writes `data` at `path` in 1 MiB writes, the driver's way or `object_store`'s.
    pub async fn put(&self, via: Via, path: &str, data: &Bytes) -> Duration {
        let started = Instant::now();
        match via {
            Via::Driver | Via::Ipc => {
                let d = self.driver_of(via);
                let mut writer = must(d.writer(path, false).await, "open a writer");
                for offset in (0..data.len()).step_by(WRITE) {
                    let end = (offset + WRITE).min(data.len());
                    must(writer.write(data.slice(offset..end)).await, "writer write");
                }
                must(writer.commit().await, "writer commit");
            }
            Via::Direct(parts) => {
                let mut upload = self.direct_upload(path).await;
                for offset in (0..data.len()).step_by(WRITE) {
                    let end = (offset + WRITE).min(data.len());
                    must(
                        upload.wait_for_capacity(parts).await,
                        "object_store upload part",
                    );
                    upload.put(data.slice(offset..end));
                }
                must(upload.finish().await, "object_store finish the upload");
            }
        }
        started.elapsed()
    }

    /// Reads `path` whole as a stream, counting.
    ///
    /// # Panics
    ///
    /// When it reads other than `size` bytes.
    pub async fn get(&self, via: Via, path: &str, size: u64) -> Duration {
        let started = Instant::now();
        let mut read = 0u64;
        match via {
            Via::Driver | Via::Ipc => {
                let mut stream = must(self.driver_of(via).reader(path, 0).await, "open a reader");
                while let Some(chunk) = must(stream.try_next().await, "reader read") {
                    read += chunk.len() as u64;
                }
            }
            Via::Direct(_) => {
                let result = must(self.store.get(&self.key(path)).await, "object_store get");
                let mut stream = result.into_stream();
                while let Some(chunk) = must(stream.try_next().await, "object_store get stream") {
                    read += chunk.len() as u64;
                }
            }
        }
        let elapsed = started.elapsed();
        assert_eq!(read, size, "{} read the wrong size of {path}", via.label());
        elapsed
    }

    /// `count` put+get round trips of `payload` at fresh paths below `dir`; the mean.
    pub async fn small(&self, via: Via, dir: &str, payload: &Bytes, count: u32) -> Duration {
        let started = Instant::now();
        for i in 0..count {
            let path = format!("{dir}/{i}");
            match via {
                Via::Driver | Via::Ipc => {
                    let d = self.driver_of(via);
                    must(d.put_content(&path, payload.clone()).await, "put_content");
                    let got = must(d.get_content(&path).await, "get_content");
                    assert_eq!(got.len(), payload.len());
                }
                Via::Direct(_) => {
                    let key = self.key(&path);
                    let options = PutOptions {
                        attributes: self.attributes.clone(),
                        ..Default::default()
                    };
                    must(
                        self.store
                            .put_opts(&key, PutPayload::from(payload.clone()), options)
                            .await,
                        "object_store put",
                    );
                    let got = must(self.store.get(&key).await, "object_store get");
                    let got = must(got.bytes().await, "object_store get body");
                    assert_eq!(got.len(), payload.len());
                }
            }
        }
        started.elapsed() / count.max(1)
    }

    /// One listing of `dir`; the entries it found.
    pub async fn list(&self, via: Via, dir: &str) -> (Duration, usize) {
        let started = Instant::now();
        let n = match via {
            Via::Driver | Via::Ipc => must(self.driver_of(via).list(dir).await, "list").len(),
            Via::Direct(_) => {
                let listing = must(
                    self.store.list_with_delimiter(Some(&self.key(dir))).await,
                    "object_store list_with_delimiter",
                );
                listing.objects.len() + listing.common_prefixes.len()
            }
        };
        (started.elapsed(), n)
    }

    /// Deletes the object at `path`, if there is one.
    ///
    /// # Panics
    ///
    /// When the delete fails.
    pub async fn remove(&self, path: &str) {
        match self.store.delete(&self.key(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => panic!("cannot delete {path}: {e}"),
        }
    }

    /// Deletes every object below the driver's directory `dir` (see [`delete_keys`]).
    ///
    /// # Panics
    ///
    /// When the listing or a delete fails.
    pub async fn remove_dir(&self, dir: &str) {
        let keys: Vec<Key> = must(
            self.store
                .list(Some(&self.key(dir)))
                .map_ok(|m| m.location)
                .try_collect()
                .await,
            "object_store list",
        );
        if let Err(e) = delete_keys(self.store.as_ref(), keys).await {
            panic!("cannot delete below {dir}: {e}");
        }
    }

    /// Writes `size` bytes in 1 MiB chunks, each a fresh `Vec` copied from the 1 MiB `pattern`
    /// (and stamped with `seq`, when the content is to be unique), dropped once written.
    async fn write_generated(
        &self,
        via: Via,
        path: &str,
        size: usize,
        pattern: &[u8],
        seq: &mut u64,
    ) -> Duration {
        let chunk = |seq: &mut u64| {
            let mut v = pattern.to_vec();
            if self.unique {
                *seq += 1;
                for block in v.chunks_mut(64 << 10) {
                    let n = block.len().min(8);
                    block[..n].copy_from_slice(&seq.to_le_bytes()[..n]);
                }
            }
            Bytes::from(v)
        };
        let started = Instant::now();
        match via {
            Via::Driver | Via::Ipc => {
                let d = self.driver_of(via);
                let mut writer = must(d.writer(path, false).await, "open a writer");
                for _ in 0..size / WRITE {
                    must(writer.write(chunk(seq)).await, "writer write");
                }
                must(writer.commit().await, "writer commit");
            }
            Via::Direct(parts) => {
                let mut upload = self.direct_upload(path).await;
                for _ in 0..size / WRITE {
                    must(
                        upload.wait_for_capacity(parts).await,
                        "object_store upload part",
                    );
                    upload.put(chunk(seq));
                }
                must(upload.finish().await, "object_store finish the upload");
            }
        }
        started.elapsed()
    }
}

/// What [`run`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The sizes of the timed puts and gets.
    pub sizes: Vec<usize>,
    /// The base number of rounds: sizes below 1 GiB run twice as many, the 1 KiB round trips
    /// and the listings three times as many (after one untimed pass).
    pub rounds: usize,
    /// 1 KiB put+get round trips per sample.
    pub small_count: u32,
    /// Keys the listing lists (none: no listing).
    pub list_keys: usize,
    /// The size of the write whose peak memory is measured.
    pub memory_size: usize,
}

impl Plan {
    /// Whether `STORAGEDRIVER_BENCH_QUICK=1` asks for a smoke run.
    pub fn quick() -> bool {
        std::env::var("STORAGEDRIVER_BENCH_QUICK").is_ok_and(|v| v == "1")
    }

    /// The full plan (five base rounds, 200 round trips per sample, the `sizes` and the
    /// `memory_size` given) unless `STORAGEDRIVER_BENCH_QUICK=1` asks for a smoke run (64 MiB
    /// only, memory included, from two base rounds, 50 round trips per sample);
    /// `STORAGEDRIVER_BENCH_ROUNDS=N` sets the base rounds.
    pub fn from_env(sizes: &[usize], memory_size: usize, list_keys: usize) -> Self {
        let quick = Self::quick();
        let rounds: usize = std::env::var("STORAGEDRIVER_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 2 } else { 5 })
            .max(1);
        let (sizes, memory_size) = if quick {
            (vec![64 * MIB], 64 * MIB)
        } else {
            (sizes.to_vec(), memory_size)
        };
        Plan {
            sizes,
            rounds,
            small_count: if quick { 50 } else { 200 },
            list_keys,
            memory_size,
        }
    }

    /// The rounds of a put or get of `size`.
    fn size_rounds(&self, size: usize) -> usize {
        if size < 1 << 30 {
            2 * self.rounds
        } else {
            self.rounds
        }
    }
}

/// Peak memory figures, in bytes above the baseline.
#[derive(Debug, Default, Clone)]
pub struct Memory {
    /// The size written.
    pub size: usize,
    /// The driver in process: the counting allocator's peak.
    pub driver_alloc: u64,
    /// The driver in process: this process's resident peak above its resident size before.
    pub driver_hwm: Option<u64>,
    /// The driver in process: the time of the write.
    pub driver_time: Duration,
    /// `object_store` directly with the driver's parts in flight: the allocator's peak.
    pub direct_alloc: u64,
    /// `object_store` directly: the time of the write.
    pub direct_time: Duration,
    /// Over IPC: this process's (the client's) allocator peak.
    pub ipc_client_alloc: u64,
    /// Over IPC: the child's whole resident peak.
    pub ipc_child_hwm: Option<u64>,
    /// Over IPC: the child's resident size before the write.
    pub ipc_child_rss_before: Option<u64>,
    /// Over IPC: the time of the write.
    pub ipc_time: Duration,
}

/// Measures the peak memory of writing `size` bytes (1 MiB writes made on the fly) through the
/// driver, `object_store` directly with the driver's parts in flight, and the driver over IPC;
/// `alloc` is the benchmark's global allocator.
pub async fn measure_memory(bench: &Bench, size: usize, alloc: &PeakAlloc) -> Memory {
    let pattern = crate::data::random_bytes(0xa110c, WRITE);
    let mut seq = 0u64;
    let mut m = Memory {
        size,
        ..Memory::default()
    };

    settle().await;
    let baseline = alloc.current_usage() as u64;
    alloc.reset_peak_usage();
    let hwm_reset = reset_peak_memory("self");
    let rss_before = current_memory("self");
    m.driver_time = bench
        .write_generated(Via::Driver, "/mem/driver", size, &pattern, &mut seq)
        .await;
    m.driver_alloc = (alloc.peak_usage() as u64).saturating_sub(baseline);
    if hwm_reset {
        m.driver_hwm = peak_memory("self")
            .zip(rss_before)
            .map(|(peak, before)| peak.saturating_sub(before));
    }
    bench.remove("/mem/driver").await;

    settle().await;
    let baseline = alloc.current_usage() as u64;
    alloc.reset_peak_usage();
    m.direct_time = bench
        .write_generated(
            Via::Direct(bench.driver_parts),
            "/mem/direct",
            size,
            &pattern,
            &mut seq,
        )
        .await;
    m.direct_alloc = (alloc.peak_usage() as u64).saturating_sub(baseline);
    bench.remove("/mem/direct").await;

    settle().await;
    let child = bench.child.map(|p| p.to_string());
    let child_reset = child.as_deref().is_some_and(reset_peak_memory);
    m.ipc_child_rss_before = child.as_deref().and_then(current_memory);
    let baseline = alloc.current_usage() as u64;
    alloc.reset_peak_usage();
    m.ipc_time = bench
        .write_generated(Via::Ipc, "/mem/ipc", size, &pattern, &mut seq)
        .await;
    m.ipc_client_alloc = (alloc.peak_usage() as u64).saturating_sub(baseline);
    if child_reset {
        m.ipc_child_hwm = child.as_deref().and_then(peak_memory);
    }
    bench.remove("/mem/ipc").await;
    m
}

/// Everything [`run`] measured, for [`report`].
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The timings, section by section.
    pub series: Vec<Series>,
    /// The peak memory of the large write.
    pub memory: Memory,
    /// When the run started ([`utc_now`]).
    pub started_at: String,
    /// The load average before the run.
    pub load_before: String,
    /// The load average after it.
    pub load_after: String,
    /// The plan's base rounds.
    pub rounds: usize,
    /// The driver's part size.
    pub chunk: usize,
    /// The driver's parts in flight.
    pub driver_parts: usize,
}

/// Runs the [`Plan`] on `bench` (see the module's documentation), after logging `banner` with
/// the run's settings; `alloc` is the benchmark's global allocator. Writes below the
/// directories `/put`, `/read`, `/small`, `/list` and `/mem` of the root and deletes what it
/// wrote as it goes; the caller deletes what a failure left ([`cleanup`]).
pub async fn run(bench: &Bench, plan: &Plan, banner: &str, alloc: &PeakAlloc) -> Outcome {
    let rounds = plan.rounds;
    let load_before = load_average();
    let started_at = utc_now();
    eprintln!(
        "{banner}, root /{}, {rounds} rounds, chunksize {} MiB, writerconcurrency {}, IPC child pid {:?}, load {load_before}",
        bench.root,
        bench.chunk >> 20,
        bench.driver_parts,
        bench.child
    );

    let mut series: Vec<Series> = Vec::new();
    let largest = plan.sizes.iter().copied().max().unwrap_or(64 * MIB);
    let mut source = Source::new(largest, bench.unique);

    // The objects the gets read, written first: a deduplicating server then holds the puts'
    // blocks (unless the content is unique), and every timed put finds them there alike.
    for &size in &plan.sizes {
        let whole = source.take();
        bench
            .put(
                Via::Direct(DEFAULT_PARTS),
                &format!("/read/{}", size >> 20),
                &whole.slice(..size),
            )
            .await;
        source.give_back(whole);
    }

    // Puts.
    let mut put_configs = vec![
        Via::Driver,
        Via::Direct(bench.driver_parts),
        Via::Direct(DEFAULT_PARTS),
        Via::Ipc,
    ];
    put_configs.dedup();
    for &size in &plan.sizes {
        let section = format!("put {}", size_label(size));
        let first = open_section(&mut series, &section, &put_configs, Some(size as u64));
        for round in 0..plan.size_rounds(size) {
            for via in rotated(&put_configs, round) {
                let whole = source.take();
                let data = whole.slice(..size);
                let path = format!("/put/{}-{round}-{}", via.slug(), size >> 20);
                settle().await;
                let t = bench.put(via, &path, &data).await;
                drop(data);
                source.give_back(whole);
                bench.remove(&path).await;
                record(&mut series, first, round, via, t);
            }
        }
    }

    // Gets, of objects written once.
    let get_configs = [Via::Driver, Via::Direct(0), Via::Ipc];
    for &size in &plan.sizes {
        let path = format!("/read/{}", size >> 20);
        let section = format!("get {}", size_label(size));
        let first = open_section(&mut series, &section, &get_configs, Some(size as u64));
        settle().await;
        for round in 0..plan.size_rounds(size) {
            for via in rotated(&get_configs, round) {
                let t = bench.get(via, &path, size as u64).await;
                record(&mut series, first, round, via, t);
            }
        }
        bench.remove(&path).await;
    }
    drop(source);

    // 1 KiB put+get round trips.
    let small_count = plan.small_count;
    let payload = crate::data::random_bytes(1, 1024);
    let section = format!("put+get 1 KiB (mean of {small_count})");
    let first = open_section(&mut series, &section, &get_configs, None);
    // Short rounds: three times as many, after one untimed pass of each configuration.
    // Each sample's files are deleted after it (untimed), so that the store does not grow
    // from sample to sample.
    for via in get_configs {
        let dir = format!("/small/{}-warm", via.slug());
        bench.small(via, &dir, &payload, 10).await;
        bench.remove_dir(&dir).await;
    }
    for round in 0..3 * rounds {
        for via in rotated(&get_configs, round) {
            let dir = format!("/small/{}-{round}", via.slug());
            let t = bench.small(via, &dir, &payload, small_count).await;
            bench.remove_dir(&dir).await;
            record(&mut series, first, round, via, t);
        }
    }

    if plan.list_keys > 0 {
        list_section(bench, plan, &get_configs, &mut series).await;
    }

    // Peak memory while writing the plan's size, data made on the fly.
    let memory = measure_memory(bench, plan.memory_size, alloc).await;

    Outcome {
        series,
        memory,
        started_at,
        load_before,
        load_after: load_average(),
        rounds,
        chunk: bench.chunk,
        driver_parts: bench.driver_parts,
    }
}

/// A listing of `plan.list_keys` keys, written first (64 at a time, untimed).
async fn list_section(bench: &Bench, plan: &Plan, configs: &[Via], series: &mut Vec<Series>) {
    let keys = plan.list_keys;
    let setup = Instant::now();
    let written = futures::stream::iter(0..keys)
        .map(|i| {
            let key = bench.key(&format!("/list/f{i:05}"));
            let store = Arc::clone(&bench.store);
            async move { store.put(&key, PutPayload::from_static(b"x")).await }
        })
        .buffer_unordered(64)
        .try_fold(0usize, |n, _| async move { Ok(n + 1) })
        .await;
    let written = must(written, "write the listing's keys");
    eprintln!(
        "  wrote {written} keys to list in {}",
        format_duration(setup.elapsed())
    );
    let section = format!("list {keys} keys");
    let first = open_section(series, &section, configs, None);
    for &via in configs {
        bench.list(via, "/list").await;
    }
    for round in 0..3 * plan.rounds {
        for via in rotated(configs, round) {
            let (t, n) = bench.list(via, "/list").await;
            assert_eq!(n, keys, "{} listed the wrong number of keys", via.label());
            record(series, first, round, via, t);
        }
    }
    bench.remove_dir("/list").await;
}

/// The bound the memory table checks the peaks against.
#[derive(Debug, Clone)]
pub struct MemoryTarget {
    /// How the bound is named in the table's heading (`target 4 × chunksize + 32 MiB`).
    pub label: String,
    /// The bound.
    pub bytes: u64,
    /// Whether the bound applies to the resident peaks too (whole processes), or only to the
    /// counting allocator's figures of the writes in process.
    pub resident: bool,
}

/// What the report says about the run besides the timings.
#[derive(Debug, Clone)]
pub struct ReportHeader {
    /// What ran where (`S3 on single-node Garage`).
    pub title: String,
    /// A remark after the settings, if any.
    pub note: Option<String>,
    /// The memory bound.
    pub memory_target: MemoryTarget,
}

/// The run's tables, in Markdown: every section's median and best round with the rate against
/// `object_store` direct (with the driver's parts in flight, for puts), the driver's rate
/// against the target of 90 %, and the peak memory figures.
pub fn report(o: &Outcome, h: &ReportHeader) -> String {
    let series = &o.series;
    let m = &o.memory;
    let mut out = String::new();
    out.push_str(&format!(
        "{}, started {}, base rounds {} (64 MiB: twice, 1 KiB and lists: three times as many), chunksize {} MiB, writerconcurrency {}{}; load average before {}, after {}\n\n",
        h.title,
        o.started_at,
        o.rounds,
        o.chunk >> 20,
        o.driver_parts,
        h.note
            .as_deref()
            .map(|n| format!(", {n}"))
            .unwrap_or_default(),
        o.load_before,
        o.load_after
    ));
    out.push_str(
        "| operation | configuration | rounds | median | best | MB/s (median) | rate / direct (medians) |\n",
    );
    out.push_str("|---|---|---:|---:|---:|---:|---:|\n");
    let mut sections: Vec<&str> = Vec::new();
    for s in series {
        if !sections.contains(&s.section.as_str()) {
            sections.push(&s.section);
        }
    }
    let reference = |section: &str| {
        series.iter().find(|s| {
            s.section == section && matches!(s.via, Via::Direct(n) if n == o.driver_parts || n == 0)
        })
    };
    let mut targets = Vec::new();
    for section in &sections {
        let direct = reference(section);
        for s in series.iter().filter(|s| s.section == *section) {
            let median = s.median();
            let mb = s
                .mb_per_s(median)
                .map(|v| format!("{v:.1}"))
                .unwrap_or_default();
            let ratio = match direct {
                Some(d) if std::ptr::eq(d, s) => "reference".to_owned(),
                Some(d) => format!(
                    "{:.0} %",
                    d.median().as_secs_f64() / median.as_secs_f64() * 100.0
                ),
                None => String::new(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                s.section,
                s.via.label(),
                s.times.len(),
                format_duration(median),
                format_duration(s.min()),
                mb,
                ratio
            ));
            if let (Some(d), Via::Driver) = (direct, s.via) {
                let ratio = d.median().as_secs_f64() / median.as_secs_f64();
                let best = d.min().as_secs_f64() / s.min().as_secs_f64();
                targets.push((section.to_string(), ratio, best));
            }
        }
    }
    out.push_str(
        "\n| target: driver ≥ 90 % of object_store direct | medians | best rounds | result |\n",
    );
    out.push_str("|---|---:|---:|---|\n");
    for (section, ratio, best) in &targets {
        out.push_str(&format!(
            "| {section} | {:.0} % | {:.0} % | {} |\n",
            ratio * 100.0,
            best * 100.0,
            if *ratio >= 0.9 {
                "reached"
            } else {
                "**not reached**"
            }
        ));
    }
    out.push_str(&memory_table(m, o.driver_parts, &h.memory_target));
    out
}

/// The memory part of [`report`].
fn memory_table(m: &Memory, driver_parts: usize, target: &MemoryTarget) -> String {
    let verdict = |bytes: u64| {
        if bytes <= target.bytes {
            "within".to_owned()
        } else {
            format!("**over** by {:.1} MiB", mib(bytes - target.bytes))
        }
    };
    let resident = |bytes: u64| {
        if target.resident {
            verdict(bytes)
        } else {
            String::new()
        }
    };
    let mut out = format!(
        "\n| peak memory writing {} (1 MiB writes made on the fly) | above baseline | time | {} = {:.0} MiB |\n",
        size_label(m.size),
        target.label,
        mib(target.bytes)
    );
    out.push_str("|---|---:|---:|---|\n");
    out.push_str(&format!(
        "| driver in process, counting allocator | {:.1} MiB | {} | {} |\n",
        mib(m.driver_alloc),
        format_duration(m.driver_time),
        verdict(m.driver_alloc)
    ));
    if let Some(hwm) = m.driver_hwm {
        out.push_str(&format!(
            "| driver in process, resident (VmHWM above VmRSS before) | {:.1} MiB | | {} |\n",
            mib(hwm),
            resident(hwm)
        ));
    }
    out.push_str(&format!(
        "| object_store direct, {driver_parts} in flight, counting allocator | {:.1} MiB | {} | {} |\n",
        mib(m.direct_alloc),
        format_duration(m.direct_time),
        verdict(m.direct_alloc)
    ));
    out.push_str(&format!(
        "| over IPC: this process (client), counting allocator | {:.1} MiB | {} | |\n",
        mib(m.ipc_client_alloc),
        format_duration(m.ipc_time)
    ));
    match (m.ipc_child_hwm, m.ipc_child_rss_before) {
        (Some(hwm), Some(before)) => out.push_str(&format!(
            "| over IPC: the child, whole resident peak (VmHWM; {:.1} MiB above its VmRSS before) | {:.1} MiB | | {} |\n",
            mib(hwm.saturating_sub(before)),
            mib(hwm),
            resident(hwm)
        )),
        _ => out.push_str("| over IPC: the child | not measured (no child pid or /proc not writable) | | |\n"),
    }
    out
}

/// Deletes `keys` with `delete_stream`, at most 256 per call and one call at a time (what
/// is not found is deleted already). Azure takes 256 deletes per batch request, and its client
/// sends up to 20 such batches at once: Azurite works through them at about 3 ms a blob, so
/// with thousands of blobs the last batches outlast the client's 30 s request timeout.
///
/// # Errors
///
/// The first delete that failed.
pub async fn delete_keys(store: &dyn ObjectStore, keys: Vec<Key>) -> object_store::Result<()> {
    let mut keys = keys.into_iter().peekable();
    while keys.peek().is_some() {
        let batch: Vec<object_store::Result<Key>> = keys.by_ref().take(256).map(Ok).collect();
        let mut deleted = store.delete_stream(futures::stream::iter(batch).boxed());
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Deletes everything a benchmark wrote below the root `root_directory` of `driver` and
/// `store`. A driver writer that a failed step left open is resumed and cancelled first, which
/// aborts its multipart upload (an upload that a failed step left unfinished through
/// `object_store` directly cannot be found); then every key left below the root is deleted
/// ([`delete_keys`]). Failures are logged, not raised.
pub async fn cleanup(driver: &dyn StorageDriver, store: &dyn ObjectStore, root_directory: &str) {
    let root = Key::from(root_directory.trim_start_matches('/'));
    let list = || store.list(Some(&root)).map_ok(|m| m.location).try_collect();
    let left: Vec<Key> = match list().await {
        Ok(left) => left,
        Err(e) => return eprintln!("  cleanup: cannot list {root}: {e}"),
    };
    let uploads = format!("{root}/~uploads/");
    let mut cancelled_any = false;
    for key in &left {
        let key = key.as_ref();
        let Some((path, _)) = key
            .strip_prefix(&uploads)
            .and_then(|k| k.rsplit_once("/~state-"))
        else {
            continue;
        };
        let path = format!("/{path}");
        let cancelled = match driver.writer(&path, true).await {
            Ok(mut writer) => writer.cancel().await,
            Err(e) => Err(e),
        };
        cancelled_any = true;
        match cancelled {
            Ok(()) => eprintln!("  cleanup: cancelled the upload left at {path}"),
            Err(e) => eprintln!("  cleanup: cannot cancel the upload at {path}: {e}"),
        }
    }
    let left = if cancelled_any {
        match list().await {
            Ok(left) => left,
            Err(e) => return eprintln!("  cleanup: cannot list {root}: {e}"),
        }
    } else {
        left
    };
    if let Err(e) = delete_keys(store, left).await {
        eprintln!("  cleanup: {e}");
    }
}

/// The whole `main` of a benchmark: a multi-threaded runtime, a fresh root
/// `<root_prefix>-<time>-<pid>`, and `run(root)` on the runtime's workers (as a server's
/// request handlers would run), whose report it prints. When a step fails, `cleanup(root)`
/// deletes what the run wrote before the failure is passed on.
///
/// # Panics
///
/// When the runtime cannot start, and when `run` panics.
pub fn bench_main<R, RF, C, CF>(root_prefix: &str, run: R, cleanup: C)
where
    R: FnOnce(String) -> RF,
    RF: Future<Output = Option<String>> + Send + 'static,
    C: FnOnce(String) -> CF,
    CF: Future<Output = ()> + Send + 'static,
{
    let runtime = must(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        "start a tokio runtime",
    );
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let root = format!("{root_prefix}-{nanos:x}-{}", std::process::id());
    match runtime.block_on(runtime.spawn(run(root.clone()))) {
        Ok(Some(report)) => println!("{report}"),
        Ok(None) => {}
        Err(e) => {
            // Leave nothing behind, then fail as the step did.
            let _ = runtime.block_on(runtime.spawn(cleanup(root)));
            std::panic::resume_unwind(e.into_panic());
        }
    }
}
