//! The suite's benchmarks, runnable for any driver (Go: `BenchDriver`).
//!
//! | benchmark | one operation |
//! |---|---|
//! | `PutGetEmptyFiles`, `PutGet1KBFiles`, `PutGet1MBFiles`, `PutGet1GBFiles` | `put_content` of a new file, then `get_content` of it |
//! | `StreamEmptyFiles`, `Stream1KBFiles`, `Stream1MBFiles`, `Stream1GBFiles` | a writer writes and commits a new file (1 MiB chunks), then a reader reads it whole |
//! | `List5Files`, `List50Files` | `list` of a directory of 5 or 50 files |
//! | `Delete5Files`, `Delete50Files` | `delete` of a directory of 5 or 50 files (made outside the timing) |
//!
//! [`registry`] plays a registry's workload instead: concurrent pushes and pulls on the
//! registry's own layout, and a garbage collector's walk.
//!
//! Each benchmark runs until [`BenchConfig::min_time`] has passed (at least
//! [`BenchConfig::min_iterations`] times) and reports the mean time per operation and, for
//! the file benchmarks, the file size over that time (as Go's `b.SetBytes` does).
//!
//! ```no_run
//! # async fn demo(driver: &dyn testsuites::storagedriver::StorageDriver) {
//! use testsuites::bench::{BenchConfig, run_suite_benchmarks, markdown_table};
//!
//! let results = run_suite_benchmarks(driver, &BenchConfig::default()).await;
//! println!("{}", markdown_table("my-driver", &results));
//! # }
//! ```

pub mod ipc;
pub mod raw;
pub mod registry;
#[cfg(feature = "object-store")]
pub mod side_by_side;

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use storagedriver::{Result, StorageDriver};

use futures::TryStreamExt;

use crate::data::random_bytes;

/// How long and how much the benchmarks run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Each benchmark repeats until this much time has passed.
    pub min_time: Duration,
    /// ... and at least this many times.
    pub min_iterations: u64,
    /// Run the 1 GiB benchmarks.
    pub one_gib: bool,
    /// Only benchmarks whose name contains this run.
    pub filter: Option<String>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            min_time: Duration::from_secs(2),
            min_iterations: 3,
            one_gib: true,
            filter: None,
        }
    }
}

impl BenchConfig {
    /// The default, changed by `STORAGEDRIVER_BENCH_SECONDS` (minimum time per benchmark),
    /// `STORAGEDRIVER_BENCH_1GB=0` (skip the 1 GiB benchmarks) and `STORAGEDRIVER_BENCH_FILTER`.
    pub fn from_env() -> Self {
        let mut config = BenchConfig::default();
        if let Some(secs) = std::env::var("STORAGEDRIVER_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
        {
            config.min_time = Duration::from_secs_f64(secs);
        }
        if std::env::var("STORAGEDRIVER_BENCH_1GB").is_ok_and(|v| v == "0") {
            config.one_gib = false;
        }
        config.filter = std::env::var("STORAGEDRIVER_BENCH_FILTER").ok();
        config
    }

    fn wants(&self, name: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| name.contains(f))
    }
}

/// One benchmark's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// The benchmark's name (`PutGet1MBFiles`, ...).
    pub name: String,
    /// Operations timed.
    pub iterations: u64,
    /// Mean time of one operation.
    pub per_op: Duration,
    /// Bytes of file per operation (0 for list and delete).
    pub bytes: u64,
}

impl BenchResult {
    /// `bytes` over `per_op`, in MB/s (10^6 bytes), when the benchmark moves bytes.
    pub fn mb_per_s(&self) -> Option<f64> {
        (self.bytes > 0 && !self.per_op.is_zero())
            .then(|| self.bytes as f64 / self.per_op.as_secs_f64() / 1e6)
    }
}

/// Times `op` (which gets the iteration number) until the config's minimum time and count.
/// `setup` runs before each operation, outside the timing.
pub async fn measure<S, SF, O, OF>(
    name: &str,
    bytes: u64,
    config: &BenchConfig,
    mut setup: S,
    mut op: O,
) -> BenchResult
where
    S: FnMut(u64) -> SF,
    SF: Future<Output = ()>,
    O: FnMut(u64) -> OF,
    OF: Future<Output = ()>,
{
    let mut timed = Duration::ZERO;
    let mut iterations = 0u64;
    let started = Instant::now();
    while iterations < config.min_iterations || started.elapsed() < config.min_time {
        // A driver whose calls never wait would otherwise hold its worker thread for the whole
        // benchmark, starving the runtime's other tasks; the yield is outside the timing.
        tokio::task::yield_now().await;
        setup(iterations).await;
        let t = Instant::now();
        op(iterations).await;
        timed += t.elapsed();
        iterations += 1;
    }
    BenchResult {
        name: name.to_owned(),
        iterations,
        per_op: timed / u32::try_from(iterations).unwrap_or(u32::MAX),
        bytes,
    }
}

fn must<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("benchmark step {what} failed: {e}"),
    }
}

const FILE_SIZES: &[(&str, u64)] = &[
    ("Empty", 0),
    ("1KB", 1 << 10),
    ("1MB", 1 << 20),
    ("1GB", 1 << 30),
];

/// Runs every benchmark of the suite on `driver` (an empty store it may fill and clean).
pub async fn run_suite_benchmarks(
    driver: &dyn StorageDriver,
    config: &BenchConfig,
) -> Vec<BenchResult> {
    let mut results = Vec::new();
    for &(label, size) in FILE_SIZES {
        if size == 1 << 30 && !config.one_gib {
            continue;
        }
        let name = format!("PutGet{label}Files");
        if config.wants(&name) {
            results.push(put_get(driver, &name, size, config).await);
        }
        let name = format!("Stream{label}Files");
        if config.wants(&name) {
            results.push(stream(driver, &name, size, config).await);
        }
    }
    for count in [5usize, 50] {
        let name = format!("List{count}Files");
        if config.wants(&name) {
            results.push(list(driver, &name, count, config).await);
        }
    }
    for count in [5usize, 50] {
        let name = format!("Delete{count}Files");
        if config.wants(&name) {
            results.push(delete(driver, &name, count, config).await);
        }
    }
    results
}

async fn put_get(
    d: &dyn StorageDriver,
    name: &str,
    size: u64,
    config: &BenchConfig,
) -> BenchResult {
    let content = random_bytes(size, size as usize);
    let dir = format!("/bench/{name}");
    let result = measure(
        name,
        size,
        config,
        |_| async {},
        |i| {
            let content = content.clone();
            let path = format!("{dir}/{i}");
            async move {
                must(d.put_content(&path, content).await, "put_content");
                let got = must(d.get_content(&path).await, "get_content");
                assert_eq!(
                    got.len() as u64,
                    size,
                    "{name}: get_content returned the wrong size"
                );
            }
        },
    )
    .await;
    must(d.delete(&dir).await, "cleanup");
    result
}

async fn stream(d: &dyn StorageDriver, name: &str, size: u64, config: &BenchConfig) -> BenchResult {
    let chunk = random_bytes(size, (size as usize).min(1 << 20));
    let dir = format!("/bench/{name}");
    let result = measure(
        name,
        size,
        config,
        |_| async {},
        |i| {
            let path = format!("{dir}/{i}");
            let chunk = chunk.clone();
            async move {
                let mut writer = must(d.writer(&path, false).await, "writer");
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len() as u64);
                    must(writer.write(chunk.slice(..n as usize)).await, "write");
                    left -= n;
                }
                must(writer.commit().await, "commit");
                let mut stream = must(d.reader(&path, 0).await, "reader");
                let mut read = 0u64;
                while let Some(chunk) = must(stream.try_next().await, "read") {
                    read += chunk.len() as u64;
                }
                assert_eq!(read, size, "{name}: the reader returned the wrong size");
            }
        },
    )
    .await;
    must(d.delete(&dir).await, "cleanup");
    result
}

/// Puts `count` one-byte files named `0`, `1`, ... in `dir` (outside any timing).
async fn put_files(d: &dyn StorageDriver, dir: &str, count: usize) {
    for i in 0..count {
        must(
            d.put_content(&format!("{dir}/{i}"), Bytes::from_static(b"x"))
                .await,
            "put_content",
        );
    }
}

async fn list(
    d: &dyn StorageDriver,
    name: &str,
    count: usize,
    config: &BenchConfig,
) -> BenchResult {
    let dir = format!("/bench/{name}");
    put_files(d, &dir, count).await;
    let result = measure(
        name,
        0,
        config,
        |_| async {},
        |_| {
            let dir = dir.clone();
            async move {
                let listed = must(d.list(&dir).await, "list");
                assert_eq!(listed.len(), count, "{name}: list returned the wrong count");
            }
        },
    )
    .await;
    must(d.delete(&dir).await, "cleanup");
    result
}

async fn delete(
    d: &dyn StorageDriver,
    name: &str,
    count: usize,
    config: &BenchConfig,
) -> BenchResult {
    let dir = format!("/bench/{name}");
    measure(
        name,
        0,
        config,
        |i| {
            let dir = format!("{dir}/{i}");
            async move { put_files(d, &dir, count).await }
        },
        |i| {
            let dir = format!("{dir}/{i}");
            async move { must(d.delete(&dir).await, "delete") }
        },
    )
    .await
}

/// A Markdown table of `results` under a heading column `label`.
pub fn markdown_table(label: &str, results: &[BenchResult]) -> String {
    let mut out = format!("| {label} | iterations | time/op | MB/s |\n|---|---:|---:|---:|\n");
    for r in results {
        let mb = r.mb_per_s().map_or("".to_owned(), |v| format!("{v:.1}"));
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.name,
            r.iterations,
            format_duration(r.per_op),
            mb
        ));
    }
    out
}

/// A duration in the unit that reads best (ns, µs, ms or s).
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else if ns < 10_000_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}
