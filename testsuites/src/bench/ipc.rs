//! Benchmarks that put a driver over IPC side by side with the same driver in process and with
//! the raw transport: small-operation round trips, concurrent small operations, a 1 GiB stream,
//! the peak memory of both processes while streaming, and what 1,000 idle readers cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use futures::future::join_all;
use storagedriver::StorageDriver;

fn must<T>(result: storagedriver::Result<T>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("benchmark step {what} failed: {e}"),
    }
}

/// Mean time of one `stat` of a small file, over `count` sequential calls.
pub async fn stat_round_trip(d: &dyn StorageDriver, count: u32) -> Duration {
    must(
        d.put_content("/bench-rtt/file", Bytes::from_static(b"x"))
            .await,
        "put_content",
    );
    for _ in 0..count / 10 {
        must(d.stat("/bench-rtt/file").await, "stat");
    }
    let started = Instant::now();
    for _ in 0..count {
        must(d.stat("/bench-rtt/file").await, "stat");
    }
    let mean = started.elapsed() / count.max(1);
    must(d.delete("/bench-rtt").await, "cleanup");
    mean
}

/// `stat` calls per second with `concurrency` tasks each making `per_task` calls.
pub async fn concurrent_stats(
    d: Arc<dyn StorageDriver>,
    concurrency: usize,
    per_task: usize,
) -> f64 {
    must(
        d.put_content("/bench-conc/file", Bytes::from_static(b"x"))
            .await,
        "put_content",
    );
    let started = Instant::now();
    let tasks = (0..concurrency).map(|_| {
        let d = d.clone();
        tokio::spawn(async move {
            for _ in 0..per_task {
                must(d.stat("/bench-conc/file").await, "stat");
            }
        })
    });
    for result in join_all(tasks).await {
        if let Err(e) = result {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    let rate = (concurrency * per_task) as f64 / started.elapsed().as_secs_f64();
    must(d.delete("/bench-conc").await, "cleanup");
    rate
}

/// Figures of [`stream_through`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamFigures {
    /// Bytes per second writing the file through a writer (commit included).
    pub write_bytes_per_s: f64,
    /// Bytes per second reading it back through a reader.
    pub read_bytes_per_s: f64,
}

/// Writes `size` bytes through a writer in 1 MiB chunks (one reused buffer, so the caller's
/// memory stays small), commits, then reads them back through a reader, counting.
pub async fn stream_through(d: &dyn StorageDriver, size: u64) -> StreamFigures {
    let chunk = crate::data::random_bytes(9, 1 << 20);
    let path = "/bench-stream/file";
    let started = Instant::now();
    let mut writer = must(d.writer(path, false).await, "writer");
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64);
        must(writer.write(chunk.slice(..n as usize)).await, "write");
        left -= n;
    }
    must(writer.commit().await, "commit");
    let write = started.elapsed();
    let started = Instant::now();
    let mut stream = must(d.reader(path, 0).await, "reader");
    let mut read = 0u64;
    while let Some(chunk) = must(stream.try_next().await, "read") {
        read += chunk.len() as u64;
    }
    let elapsed = started.elapsed();
    assert_eq!(read, size, "the stream returned the wrong size");
    must(d.delete("/bench-stream").await, "cleanup");
    StreamFigures {
        write_bytes_per_s: size as f64 / write.as_secs_f64(),
        read_bytes_per_s: size as f64 / elapsed.as_secs_f64(),
    }
}

/// Resets the peak resident memory of process `pid` (`self` for this one), so that
/// [`peak_memory`] measures from now on. Linux only; false where it cannot.
pub fn reset_peak_memory(pid: &str) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The peak resident memory of process `pid` (`self` for this one) in bytes, from
/// `/proc/<pid>/status` (`VmHWM`).
pub fn peak_memory(pid: &str) -> Option<u64> {
    status_bytes(pid, "VmHWM:")
}

/// The resident memory of process `pid` (`self` for this one) in bytes now, from
/// `/proc/<pid>/status` (`VmRSS`). Linux only.
pub fn current_memory(pid: &str) -> Option<u64> {
    status_bytes(pid, "VmRSS:")
}

fn status_bytes(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Figures of [`idle_readers`]: resident memory (bytes, signed: it may shrink) relative to
/// before the readers were opened, of this process and of the child.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleFigures {
    /// The readers opened.
    pub readers: usize,
    /// This process's growth with the readers open.
    pub client_growth: Option<i64>,
    /// The child's growth with the readers open.
    pub child_growth: Option<i64>,
    /// This process, after the readers were dropped.
    pub client_after_drop: Option<i64>,
    /// The child, after the readers were dropped.
    pub child_after_drop: Option<i64>,
}

/// The resident memory of this process and of `child` once it stops changing (less than
/// 1 MiB between samples 100 ms apart, three times in a row), or after 15 s.
async fn settled_memory(child: Option<&str>) -> (Option<u64>, Option<u64>) {
    let sample = || (current_memory("self"), child.and_then(current_memory));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = sample();
    let mut calm = 0;
    let near = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => a.abs_diff(b) < 1 << 20,
        _ => true,
    };
    while calm < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = sample();
        if near(now.0, last.0) && near(now.1, last.1) {
            calm += 1;
        } else {
            calm = 0;
        }
        last = now;
    }
    last
}

/// Opens `readers` readers of a file of `file_len` bytes and does not read them (a registry's
/// slow downloads): what that costs in resident memory here and in the child (`child`'s pid),
/// and what is left once they are dropped. Memory the allocator kept from earlier work may be
/// reused, so growth is a lower bound of what the readers allocated.
pub async fn idle_readers(
    d: &dyn StorageDriver,
    readers: usize,
    file_len: usize,
    child: Option<&str>,
) -> IdleFigures {
    let path = "/bench-idle/file";
    must(
        d.put_content(path, crate::data::random_bytes(11, file_len))
            .await,
        "put_content",
    );
    let diff = |now: Option<u64>, base: Option<u64>| match (now, base) {
        (Some(n), Some(b)) => Some(n as i64 - b as i64),
        _ => None,
    };
    let base = settled_memory(child).await;
    let mut open = Vec::with_capacity(readers);
    for _ in 0..readers {
        open.push(must(d.reader(path, 0).await, "reader"));
    }
    let idle = settled_memory(child).await;
    drop(open);
    let after = settled_memory(child).await;
    must(d.delete("/bench-idle").await, "cleanup");
    IdleFigures {
        readers,
        client_growth: diff(idle.0, base.0),
        child_growth: diff(idle.1, base.1),
        client_after_drop: diff(after.0, base.0),
        child_after_drop: diff(after.1, base.1),
    }
}

/// Runs everything above for one driver, in process and over IPC, with the raw transport
/// measured in the same run, and returns the report as Markdown. `spawn_ipc` starts the IPC
/// driver (after the raw and in-process measurements, which keep a worker thread busy) and
/// gives its child process, whose peak memory is reported. The benchmark's `main` must have
/// called [`super::raw::serve_raw_peer_if_asked`] first.
pub async fn compare_report<F>(
    label: &str,
    in_process: Arc<dyn StorageDriver>,
    spawn_ipc: F,
    config: &super::BenchConfig,
    stream_size: u64,
) -> String
where
    F: std::future::Future<Output = (Arc<dyn StorageDriver>, Option<u32>)>,
{
    use super::format_duration;
    let mut out = String::new();
    let raw = super::raw::measure_raw(20_000, stream_size);

    let local = super::run_suite_benchmarks(in_process.as_ref(), config).await;
    let (over_ipc, child_pid) = spawn_ipc.await;
    let remote = super::run_suite_benchmarks(over_ipc.as_ref(), config).await;
    out.push_str(&format!(
        "| {label} | in process | over IPC | IPC / in process |\n|---|---:|---:|---:|\n"
    ));
    for (l, r) in local.iter().zip(&remote) {
        let ratio = r.per_op.as_secs_f64() / l.per_op.as_secs_f64().max(1e-12);
        out.push_str(&format!(
            "| {} | {} | {} | {ratio:.2}× |\n",
            l.name,
            format_duration(l.per_op),
            format_duration(r.per_op)
        ));
    }

    let rtt_local = stat_round_trip(in_process.as_ref(), 20_000).await;
    let rtt_ipc = stat_round_trip(over_ipc.as_ref(), 20_000).await;
    let conc = concurrent_stats(over_ipc.clone(), 64, 2_000).await;

    let child = child_pid.map(|p| p.to_string());
    let reset = reset_peak_memory("self") && child.as_deref().is_none_or(reset_peak_memory);
    let stream = stream_through(over_ipc.as_ref(), stream_size).await;
    let client_peak = peak_memory("self");
    let child_peak = child.as_deref().and_then(peak_memory);
    let idle = idle_readers(over_ipc.as_ref(), 1000, 4 << 20, child.as_deref()).await;

    let gib = stream_size as f64 / (1u64 << 30) as f64;
    let mb = |v: f64| format!("{:.0} MB/s", v / 1e6);
    let mib = |v: Option<u64>| {
        v.map_or("n/a".to_owned(), |b| {
            format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
        })
    };
    out.push_str(&format!(
        "\n| {label}: transport | figure | raw, same run | IPC / raw |\n|---|---:|---:|---:|\n"
    ));
    out.push_str(&format!(
        "| stat round trip over IPC (in process: {}) | {} | 64-byte request/reply: {} | {:.2}× |\n",
        format_duration(rtt_local),
        format_duration(rtt_ipc),
        format_duration(raw.round_trip),
        rtt_ipc.as_secs_f64() / raw.round_trip.as_secs_f64()
    ));
    out.push_str(&format!(
        "| 64 concurrent stat over IPC | {conc:.0} ops/s | | |\n"
    ));
    out.push_str(&format!(
        "| {gib:.2} GiB reader stream over IPC | {} | socket stream: {} | {:.0} % |\n",
        mb(stream.read_bytes_per_s),
        mb(raw.stream_bytes_per_s),
        stream.read_bytes_per_s / raw.stream_bytes_per_s * 100.0
    ));
    out.push_str(&format!(
        "| {gib:.2} GiB writer stream over IPC | {} | socket stream: {} | {:.0} % |\n",
        mb(stream.write_bytes_per_s),
        mb(raw.stream_bytes_per_s),
        stream.write_bytes_per_s / raw.stream_bytes_per_s * 100.0
    ));
    out.push_str(&format!(
        "| peak memory while streaming{} | client {} | child {} | |\n",
        if reset {
            ""
        } else {
            " (not reset: includes earlier work)"
        },
        mib(client_peak),
        mib(child_peak)
    ));
    let delta = |v: Option<i64>| {
        v.map_or("n/a".to_owned(), |b| {
            format!("{:+.1} MiB", b as f64 / (1u64 << 20) as f64)
        })
    };
    out.push_str(&format!(
        "| {} idle readers of a 4 MiB file over IPC (opened, not read): resident memory | client {}, child {} | after dropping them: client {}, child {} | |\n",
        idle.readers,
        delta(idle.client_growth),
        delta(idle.child_growth),
        delta(idle.client_after_drop),
        delta(idle.child_after_drop)
    ));
    out
}

/// Makes the in-process driver (on the first directory) and the child's parameters (for the
/// second directory) of [`bench_main`].
pub type Setup =
    fn(&std::path::Path, &std::path::Path) -> (Arc<dyn StorageDriver>, storagedriver::Parameters);

/// The whole `main` of a driver's IPC benchmark: serves as the raw peer when asked, starts a
/// runtime, and prints [`compare_report`] for `name` in process (from `setup`) and over IPC
/// (the executable `exe` started with `setup`'s parameters), streaming 1 GiB.
///
/// # Panics
///
/// When the runtime, the temporary directories or the child cannot be had.
pub fn bench_main(name: &'static str, exe: &'static str, setup: Setup) {
    super::raw::serve_raw_peer_if_asked();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("cannot start a tokio runtime: {e}"),
    };
    let config = super::BenchConfig::from_env();
    // The work runs in a spawned task, on the runtime's workers, as a server's request handlers
    // would; `block_on`'s own thread is not a worker and adds a wake-up per call.
    let work = runtime.spawn(async move {
        let (Ok(local), Ok(remote)) = (tempfile::tempdir(), tempfile::tempdir()) else {
            panic!("no temporary directories")
        };
        let (in_process, parameters) = setup(local.path(), remote.path());
        let spawn_ipc = async move {
            match storagedriver_ipc::IpcDriver::spawn(name, std::path::Path::new(exe), &parameters)
                .await
            {
                Ok(driver) => {
                    let pid = driver.child_pid();
                    (Arc::new(driver) as Arc<dyn StorageDriver>, pid)
                }
                Err(e) => panic!("cannot start {exe}: {e}"),
            }
        };
        compare_report(name, in_process, spawn_ipc, &config, 1 << 30).await
    });
    match runtime.block_on(work) {
        Ok(report) => println!("{report}"),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
