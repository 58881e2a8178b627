//! The S3 driver side by side with `object_store` used directly on the same server and bucket,
//! and with the driver over IPC (`registry-storage-s3` as a child, started through the
//! factory's fallback), in one run on single-node Garage: 64 MiB and 1 GiB puts and gets,
//! 1 KiB put+get round trips, a listing of 10,000 keys, and the writer's peak memory while it
//! writes 1 GiB.
//!
//! ```sh
//! scripts/servers.sh start garage && source target/servers/s3.env
//! cargo bench -p driver-s3 --features server --bench s3
//! ```
//!
//! Each section runs every configuration once per round, the order rotated from round to
//! round, and reports the median and the best of the rounds: five rounds of 1 GiB, ten of
//! 64 MiB, fifteen of 1 KiB round trips and of listings (those two after one untimed pass).
//! `STORAGEDRIVER_BENCH_QUICK=1` runs 64 MiB only, from a base of two rounds (a smoke run);
//! `STORAGEDRIVER_BENCH_ROUNDS=N` sets the base (the 1 GiB rounds). Everything is written
//! below a fresh prefix of `STORAGEDRIVER_S3_GARAGE_BENCH_BUCKET` and deleted at the end.
//! Without the server's variables the benchmark says so and does nothing (a failure under
//! `STORAGEDRIVER_REQUIRE_SERVERS=1`).
//!
//! Every large put writes the same random content, which Garage already holds from an untimed
//! first put (the objects the gets read): Garage deduplicates blocks by hash, so the timed puts
//! cost the client, HTTP and Garage's hashing and metadata, not this machine's disk, and the
//! run never holds more than about 1 GiB of blocks (Garage frees deleted blocks only minutes
//! later). `STORAGEDRIVER_BENCH_S3_UNIQUE=1` stamps every put's content anew instead, so each
//! put writes its blocks to the disk (and the run needs room for some 25 GiB).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use driver_s3::S3Config;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::path::Path as Key;
use object_store::{
    Attributes, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
    WriteMultipart,
};
use peak_alloc::PeakAlloc;
use storagedriver::{Parameters, StorageDriver};

/// Counts the bytes allocated now and at the peak, for the writer's memory figure.
#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

const MIB: usize = 1 << 20;
/// The callers' write size.
const WRITE: usize = MIB;
/// Objects the listing benchmark lists.
const LIST_KEYS: usize = 10_000;
/// `writerconcurrency`'s default, the parts the driver keeps in flight.
const DRIVER_PARTS: usize = 2;
/// The concurrency of `object_store`'s own `BufWriter` (`WriteMultipart` alone has no bound).
const DEFAULT_PARTS: usize = 8;

fn must<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("benchmark step {what} failed: {e}"),
    }
}

/// How an operation reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// The driver in this process.
    Driver,
    /// `object_store` directly, with this many parts in flight (puts; 0 where none apply).
    Direct(usize),
    /// The driver in a `registry-storage-s3` child, through the IPC client.
    Ipc,
}

impl Via {
    fn label(self) -> String {
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

    fn slug(self) -> String {
        match self {
            Via::Driver => "driver".into(),
            Via::Direct(n) => format!("direct{n}"),
            Via::Ipc => "ipc".into(),
        }
    }
}

/// The timings of one configuration in one section.
#[derive(Debug)]
struct Series {
    section: String,
    via: Via,
    /// Bytes moved per sample, for throughput.
    bytes: Option<u64>,
    /// Per sample: the time of one operation (or one round trip).
    times: Vec<Duration>,
}

impl Series {
    fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort_unstable();
        match t.len() {
            0 => Duration::ZERO,
            n if n % 2 == 1 => t[n / 2],
            n => (t[n / 2 - 1] + t[n / 2]) / 2,
        }
    }

    fn min(&self) -> Duration {
        self.times.iter().copied().min().unwrap_or_default()
    }

    fn mb_per_s(&self, d: Duration) -> Option<f64> {
        self.bytes.map(|b| b as f64 / d.as_secs_f64() / 1e6)
    }
}

/// Opens a section: one empty [`Series`] per configuration, appended to `series`; returns
/// the index of the first, for [`record`].
fn open_section(
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
fn record(series: &mut [Series], first: usize, round: usize, via: Via, t: Duration) {
    if let Some(s) = series[first..].iter_mut().find(|s| s.via == via) {
        eprintln!(
            "  {} round {} {}: {}",
            s.section,
            round + 1,
            via.label(),
            fmt_duration(t)
        );
        s.times.push(t);
    }
}

/// A buffer of random bytes that each put takes whole and gives back. When `unique`, it is
/// stamped anew each time (16 bytes every 64 KiB) so that no put repeats a block Garage
/// already stores (it deduplicates blocks by hash).
struct Source {
    buf: Option<BytesMut>,
    unique: bool,
    stamp: u64,
}

impl Source {
    fn new(len: usize, unique: bool) -> Self {
        let mut buf = BytesMut::zeroed(len);
        testsuites::data::Rng::new(0x5eed).fill(&mut buf);
        Source {
            buf: Some(buf),
            unique,
            stamp: 0,
        }
    }

    /// The buffer (stamped when `unique`), as one `Bytes` that puts slice without copying.
    fn take(&mut self) -> Bytes {
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

    fn give_back(&mut self, bytes: Bytes) {
        self.buf = Some(match bytes.try_into_mut() {
            Ok(buf) => buf,
            // Something still holds a slice: copy, untimed.
            Err(bytes) => BytesMut::from(&bytes[..]),
        });
    }
}

/// What the benchmark runs against.
struct Bench {
    driver: Arc<dyn StorageDriver>,
    ipc: Arc<dyn StorageDriver>,
    child: Option<u32>,
    store: Arc<AmazonS3>,
    /// The root's key prefix (no leading `/`).
    root: String,
    chunk: usize,
    attributes: Attributes,
    /// Whether every large put's content is new to Garage (`STORAGEDRIVER_BENCH_S3_UNIQUE=1`).
    unique: bool,
}

impl Bench {
    fn key(&self, path: &str) -> Key {
        Key::from(format!("{}{path}", self.root))
    }

    fn driver_of(&self, via: Via) -> &dyn StorageDriver {
        match via {
            Via::Ipc => self.ipc.as_ref(),
            _ => self.driver.as_ref(),
        }
    }

    /// Writes `data` at `path` in 1 MiB writes, the driver's way or `object_store`'s.
    async fn put(&self, via: Via, path: &str, data: &Bytes) -> Duration {
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
                let mut upload = WriteMultipart::new_with_chunk_size(upload, self.chunk);
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
    async fn get(&self, via: Via, path: &str, size: u64) -> Duration {
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
    async fn small(&self, via: Via, dir: &str, payload: &Bytes, count: u32) -> Duration {
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
    async fn list(&self, via: Via, dir: &str) -> (Duration, usize) {
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

    async fn remove(&self, path: &str) {
        match self.store.delete(&self.key(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => panic!("cannot delete {path}: {e}"),
        }
    }
}

/// Configurations in round `round`'s order: rotated by one each round.
fn rotated(configs: &[Via], round: usize) -> Vec<Via> {
    let mut v = configs.to_vec();
    if !v.is_empty() {
        let n = round % v.len();
        v.rotate_left(n);
    }
    v
}

fn size_label(size: usize) -> String {
    if size >= 1 << 30 {
        format!("{} GiB", size >> 30)
    } else {
        format!("{} MiB", size >> 20)
    }
}

fn fmt_duration(d: Duration) -> String {
    testsuites::bench::format_duration(d)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown time".into())
}

/// The child of this process running `registry-storage-s3` (the factory does not hand out its
/// pid): the newest one, from `/proc`.
fn find_child() -> Option<u32> {
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
            .is_some_and(|n| n == "registry-storage-s3");
        if ppid == Some(me) && named {
            found = found.max(Some(pid));
        }
    }
    found
}

/// The server's settings from `target/servers/s3.env`, or why they are missing.
fn server_parameters(root: &str) -> Result<(Parameters, String), String> {
    let var = |field: &str| {
        let key = format!("STORAGEDRIVER_S3_GARAGE_{field}");
        std::env::var(&key).map_err(|_| {
            format!("{key} is not set (run scripts/servers.sh start garage and source target/servers/s3.env)")
        })
    };
    let endpoint = var("ENDPOINT")?;
    let value = serde_json::json!({
        "bucket": var("BENCH_BUCKET")?,
        "region": var("REGION")?,
        "regionendpoint": endpoint,
        "forcepathstyle": true,
        "accesskey": var("ACCESS_KEY")?,
        "secretkey": var("SECRET_KEY")?,
        "rootdirectory": root,
    });
    let params = serde_json::from_value(value).map_err(|e| e.to_string())?;
    Ok((params, endpoint))
}

fn main() {
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
    let root = format!("/bench-s3-{nanos:x}-{}", std::process::id());
    // The work runs on the runtime's workers, as a server's request handlers would.
    match runtime.block_on(runtime.spawn(run(root.clone()))) {
        Ok(Some(report)) => println!("{report}"),
        Ok(None) => {}
        Err(e) => {
            // Leave nothing behind in the bucket, then fail as the step did.
            if let Ok((params, _)) = server_parameters(&root) {
                let _ = runtime.block_on(runtime.spawn(cleanup(params)));
            }
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// The directories the benchmark writes below its root.
const DIRS: [&str; 5] = ["/put", "/read", "/small", "/list", "/mem"];

/// Deletes everything the benchmark wrote below its root. A driver writer that a failed step
/// left open is resumed and cancelled, which aborts its multipart upload: `delete` of a
/// directory that holds no committed object answers `PathNotFound` and leaves such uploads.
/// (An upload that a failed step left unfinished through `object_store` directly cannot be
/// found.)
async fn cleanup(params: Parameters) {
    let Ok(config) = S3Config::from_parameters(&params) else {
        return;
    };
    let (Ok(driver), Ok(store)) = (config.build(), config.build_store()) else {
        return;
    };
    for dir in DIRS {
        match driver.delete(dir).await {
            Ok(()) | Err(storagedriver::Error::PathNotFound { .. }) => {}
            Err(e) => eprintln!("  cleanup of {dir} failed: {e}"),
        }
    }
    let root = Key::from(config.root_directory.trim_start_matches('/'));
    let left: Vec<Key> = match store
        .list(Some(&root))
        .map_ok(|m| m.location)
        .try_collect()
        .await
    {
        Ok(left) => left,
        Err(e) => return eprintln!("  cleanup: cannot list {root}: {e}"),
    };
    let uploads = format!("{root}/~uploads/");
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
        match cancelled {
            Ok(()) => eprintln!("  cleanup: cancelled the upload left at {path}"),
            Err(e) => eprintln!("  cleanup: cannot cancel the upload at {path}: {e}"),
        }
    }
    let left = futures::stream::iter(left.into_iter().map(Ok)).boxed();
    let mut deleted = store.delete_stream(left);
    while let Some(result) = deleted.next().await {
        match result {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => eprintln!("  cleanup: {e}"),
        }
    }
}

/// Flushes the page cache's dirty data (untimed) before a large put, so that no put pays for
/// the writeback of the one before it: the server's disk is this machine's.
async fn settle() {
    let started = Instant::now();
    let synced = tokio::task::spawn_blocking(|| std::process::Command::new("sync").status()).await;
    if !matches!(synced, Ok(Ok(status)) if status.success()) {
        eprintln!("  sync failed: {synced:?}");
    }
    let took = started.elapsed();
    if took > Duration::from_secs(1) {
        eprintln!("  (sync took {})", fmt_duration(took));
    }
}

async fn run(root: String) -> Option<String> {
    let quick = std::env::var("STORAGEDRIVER_BENCH_QUICK").is_ok_and(|v| v == "1");
    let rounds: usize = std::env::var("STORAGEDRIVER_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2 } else { 5 })
        .max(1);
    let sizes: Vec<usize> = if quick {
        vec![64 * MIB]
    } else {
        vec![64 * MIB, 1 << 30]
    };
    let small_count: u32 = if quick { 50 } else { 200 };
    let (params, endpoint) = match server_parameters(&root) {
        Ok(p) => p,
        Err(reason) => {
            if std::env::var("STORAGEDRIVER_REQUIRE_SERVERS").is_ok_and(|v| v == "1") {
                panic!("{reason}");
            }
            println!("S3 benchmark skipped: {reason}");
            return None;
        }
    };
    let config = must(S3Config::from_parameters(&params), "read the parameters");
    let store = Arc::new(must(config.build_store(), "build the object_store client"));
    let driver: Arc<dyn StorageDriver> = Arc::new(must(config.build(), "build the driver"));
    let exe = Path::new(env!("CARGO_BIN_EXE_registry-storage-s3"));
    let ipc = testsuites::ipc::spawn_driver("s3", exe, &params).await;
    let child = find_child();
    let chunk = config.chunk_size as usize;
    let bench = Bench {
        driver,
        ipc,
        child,
        store,
        root: root.trim_start_matches('/').to_owned(),
        chunk,
        attributes: config.options().attributes,
        unique: std::env::var("STORAGEDRIVER_BENCH_S3_UNIQUE").is_ok_and(|v| v == "1"),
    };
    // Reachable, and the bucket exists.
    must(
        bench.store.list_with_delimiter(Some(&bench.key("/"))).await,
        "list the bench bucket (is Garage running?)",
    );
    let load_before = load_average();
    let started_at = utc_now();
    eprintln!(
        "s3 bench: {endpoint}, bucket {}, root {root}, {rounds} rounds, chunksize {} MiB, writerconcurrency {}, IPC child pid {:?}, load {load_before}",
        config.bucket,
        chunk >> 20,
        config.writer_concurrency,
        bench.child
    );

    let mut series: Vec<Series> = Vec::new();
    let largest = sizes.iter().copied().max().unwrap_or(64 * MIB);
    let mut source = Source::new(largest, bench.unique);

    // The objects the gets read, written first: Garage then holds the puts' blocks (unless
    // the content is unique), and every timed put finds them there alike.
    for &size in &sizes {
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
    let put_configs = [
        Via::Driver,
        Via::Direct(DRIVER_PARTS),
        Via::Direct(DEFAULT_PARTS),
        Via::Ipc,
    ];
    for &size in &sizes {
        let section = format!("put {}", size_label(size));
        let first = open_section(&mut series, &section, &put_configs, Some(size as u64));
        // A 64 MiB round is short: twice as many of them.
        let size_rounds = if size < 1 << 30 { 2 * rounds } else { rounds };
        for round in 0..size_rounds {
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
    for &size in &sizes {
        let path = format!("/read/{}", size >> 20);
        let section = format!("get {}", size_label(size));
        let first = open_section(&mut series, &section, &get_configs, Some(size as u64));
        settle().await;
        let size_rounds = if size < 1 << 30 { 2 * rounds } else { rounds };
        for round in 0..size_rounds {
            for via in rotated(&get_configs, round) {
                let t = bench.get(via, &path, size as u64).await;
                record(&mut series, first, round, via, t);
            }
        }
        bench.remove(&path).await;
    }

    // 1 KiB put+get round trips.
    let payload = testsuites::data::random_bytes(1, 1024);
    let section = format!("put+get 1 KiB (mean of {small_count})");
    let first = open_section(&mut series, &section, &get_configs, None);
    // Short rounds: three times as many, after one untimed pass of each configuration.
    for via in get_configs {
        bench
            .small(via, &format!("/small/{}-warm", via.slug()), &payload, 10)
            .await;
    }
    for round in 0..3 * rounds {
        for via in rotated(&get_configs, round) {
            let t = bench
                .small(
                    via,
                    &format!("/small/{}-{round}", via.slug()),
                    &payload,
                    small_count,
                )
                .await;
            record(&mut series, first, round, via, t);
        }
    }

    // A listing of 10,000 keys.
    let setup = Instant::now();
    let written = futures::stream::iter(0..LIST_KEYS)
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
        fmt_duration(setup.elapsed())
    );
    let section = format!("list {LIST_KEYS} keys");
    let first = open_section(&mut series, &section, &get_configs, None);
    for via in get_configs {
        bench.list(via, "/list").await;
    }
    for round in 0..3 * rounds {
        for via in rotated(&get_configs, round) {
            let (t, n) = bench.list(via, "/list").await;
            assert_eq!(
                n,
                LIST_KEYS,
                "{} listed the wrong number of keys",
                via.label()
            );
            record(&mut series, first, round, via, t);
        }
    }
    drop(source);

    // Peak memory while writing the largest size, data made on the fly.
    let memory = measure_memory(&bench, largest).await;

    let load_after = load_average();
    eprintln!("  cleaning up {root}");
    cleanup(params).await;
    Some(report(
        &series,
        &memory,
        &ReportHeader {
            started_at,
            unique: bench.unique,
            load_before,
            load_after,
            rounds,
            chunk,
            writer_concurrency: config.writer_concurrency,
        },
    ))
}

/// Peak memory figures, in bytes above the baseline.
#[derive(Debug, Default)]
struct Memory {
    size: usize,
    driver_alloc: u64,
    driver_hwm: Option<u64>,
    driver_time: Duration,
    direct_alloc: u64,
    direct_time: Duration,
    ipc_client_alloc: u64,
    ipc_child_hwm: Option<u64>,
    ipc_child_rss_before: Option<u64>,
    ipc_time: Duration,
}

/// Writes `size` bytes in 1 MiB chunks, each a fresh `Vec` copied from a 1 MiB pattern (and
/// stamped, when the content is to be unique), dropped once written.
async fn write_generated(
    bench: &Bench,
    via: Via,
    path: &str,
    size: usize,
    pattern: &[u8],
    seq: &mut u64,
) -> Duration {
    let chunk = |seq: &mut u64| {
        let mut v = pattern.to_vec();
        if bench.unique {
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
            let d = bench.driver_of(via);
            let mut writer = must(d.writer(path, false).await, "open a writer");
            for _ in 0..size / WRITE {
                must(writer.write(chunk(seq)).await, "writer write");
            }
            must(writer.commit().await, "writer commit");
        }
        Via::Direct(parts) => {
            let options = PutMultipartOptions {
                attributes: bench.attributes.clone(),
                ..Default::default()
            };
            let upload = must(
                bench
                    .store
                    .put_multipart_opts(&bench.key(path), options)
                    .await,
                "object_store put_multipart",
            );
            let mut upload = WriteMultipart::new_with_chunk_size(upload, bench.chunk);
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

async fn measure_memory(bench: &Bench, size: usize) -> Memory {
    let pattern = testsuites::data::random_bytes(0xa110c, WRITE);
    let mut seq = 0u64;
    let mut m = Memory {
        size,
        ..Memory::default()
    };

    settle().await;
    let baseline = ALLOC.current_usage() as u64;
    ALLOC.reset_peak_usage();
    let hwm_reset = testsuites::bench::ipc::reset_peak_memory("self");
    let rss_before = testsuites::bench::ipc::current_memory("self");
    m.driver_time =
        write_generated(bench, Via::Driver, "/mem/driver", size, &pattern, &mut seq).await;
    m.driver_alloc = (ALLOC.peak_usage() as u64).saturating_sub(baseline);
    if hwm_reset {
        m.driver_hwm = testsuites::bench::ipc::peak_memory("self")
            .zip(rss_before)
            .map(|(peak, before)| peak.saturating_sub(before));
    }
    bench.remove("/mem/driver").await;

    settle().await;
    let baseline = ALLOC.current_usage() as u64;
    ALLOC.reset_peak_usage();
    m.direct_time = write_generated(
        bench,
        Via::Direct(DRIVER_PARTS),
        "/mem/direct",
        size,
        &pattern,
        &mut seq,
    )
    .await;
    m.direct_alloc = (ALLOC.peak_usage() as u64).saturating_sub(baseline);
    bench.remove("/mem/direct").await;

    settle().await;
    let child = bench.child.map(|p| p.to_string());
    let child_reset = child
        .as_deref()
        .is_some_and(testsuites::bench::ipc::reset_peak_memory);
    m.ipc_child_rss_before = child
        .as_deref()
        .and_then(testsuites::bench::ipc::current_memory);
    let baseline = ALLOC.current_usage() as u64;
    ALLOC.reset_peak_usage();
    m.ipc_time = write_generated(bench, Via::Ipc, "/mem/ipc", size, &pattern, &mut seq).await;
    m.ipc_client_alloc = (ALLOC.peak_usage() as u64).saturating_sub(baseline);
    if child_reset {
        m.ipc_child_hwm = child
            .as_deref()
            .and_then(testsuites::bench::ipc::peak_memory);
    }
    bench.remove("/mem/ipc").await;
    m
}

struct ReportHeader {
    started_at: String,
    unique: bool,
    load_before: String,
    load_after: String,
    rounds: usize,
    chunk: usize,
    writer_concurrency: usize,
}

fn report(series: &[Series], m: &Memory, h: &ReportHeader) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "S3 on single-node Garage, started {}, base rounds {} (64 MiB: twice, 1 KiB and lists: three times as many), chunksize {} MiB, writerconcurrency {}, {}; load average before {}, after {}\n\n",
        h.started_at,
        h.rounds,
        h.chunk >> 20,
        h.writer_concurrency,
        if h.unique {
            "every put's content new to Garage"
        } else {
            "large puts repeat content Garage holds (deduplicated blocks, no block writes)"
        },
        h.load_before,
        h.load_after
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
            s.section == section && matches!(s.via, Via::Direct(n) if n == DRIVER_PARTS || n == 0)
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
                fmt_duration(median),
                fmt_duration(s.min()),
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
    let target = 4 * h.chunk as u64 + 32 * MIB as u64;
    let verdict = |bytes: u64| {
        if bytes <= target {
            "within"
        } else {
            "**over**"
        }
    };
    out.push_str(&format!(
        "\n| peak memory writing {} (1 MiB writes made on the fly) | above baseline | time | target 4 × chunksize + 32 MiB = {:.0} MiB |\n",
        size_label(m.size),
        mib(target)
    ));
    out.push_str("|---|---:|---:|---|\n");
    out.push_str(&format!(
        "| driver in process, counting allocator | {:.1} MiB | {} | {} |\n",
        mib(m.driver_alloc),
        fmt_duration(m.driver_time),
        verdict(m.driver_alloc)
    ));
    if let Some(hwm) = m.driver_hwm {
        out.push_str(&format!(
            "| driver in process, resident (VmHWM above VmRSS before) | {:.1} MiB | | {} |\n",
            mib(hwm),
            verdict(hwm)
        ));
    }
    out.push_str(&format!(
        "| object_store direct, {DRIVER_PARTS} in flight, counting allocator | {:.1} MiB | {} | {} |\n",
        mib(m.direct_alloc),
        fmt_duration(m.direct_time),
        verdict(m.direct_alloc)
    ));
    out.push_str(&format!(
        "| over IPC: this process (client), counting allocator | {:.1} MiB | {} | |\n",
        mib(m.ipc_client_alloc),
        fmt_duration(m.ipc_time)
    ));
    match (m.ipc_child_hwm, m.ipc_child_rss_before) {
        (Some(hwm), Some(before)) => out.push_str(&format!(
            "| over IPC: the child, whole resident peak (VmHWM; {:.1} MiB above its VmRSS before) | {:.1} MiB | | {} |\n",
            mib(hwm.saturating_sub(before)),
            mib(hwm),
            verdict(hwm)
        )),
        _ => out.push_str("| over IPC: the child | not measured (no child pid or /proc not writable) | | |\n"),
    }
    out
}
