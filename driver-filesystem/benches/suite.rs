//! The suite's benchmarks on the filesystem driver, fsync off and on, side by side with raw
//! loops on the same disk in the same run:
//!
//! - `raw write+read 1MB`: create a file, write 1 MiB, close, read it back (what `dd` without
//!   `conv=fsync` and a read measure); `raw write+fsync+read 1MB` adds an fsync before close.
//! - `raw create+write+rename 1KB`: write 1 KiB to a new file and rename it into place, the
//!   least a crash-safe put can do; `raw create+write+fsync+rename+dirsync 1KB` adds the two
//!   fsyncs that make it survive power loss.
//!
//! Run with `cargo bench -p driver-filesystem`; `STORAGEDRIVER_BENCH_*` variables tune it (see
//! `testsuites::bench::BenchConfig::from_env`). Files go to a temporary directory under the
//! workspace's `target/`, which is on the disk being measured.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use driver_filesystem::{FilesystemConfig, FilesystemDriver};
use testsuites::bench::{
    BenchConfig, BenchResult, format_duration, markdown_table, measure, run_suite_benchmarks,
};
use testsuites::data::random_bytes;

fn must<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

fn scratch() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scratch");
    must(fs::create_dir_all(&base), "create the scratch directory");
    must(tempfile::tempdir_in(base), "create a temporary directory")
}

fn write_file(path: &Path, data: &[u8], sync: bool) {
    let mut file = must(File::create(path), "create");
    must(file.write_all(data), "write");
    if sync {
        must(file.sync_all(), "fsync");
    }
}

async fn raw_write_read(config: &BenchConfig, sync: bool) -> BenchResult {
    let dir = scratch();
    let data = random_bytes(1, 1 << 20);
    let name = if sync {
        "raw write+fsync+read 1MB"
    } else {
        "raw write+read 1MB"
    };
    measure(
        name,
        1 << 20,
        config,
        |_| async {},
        |i| {
            let path = dir.path().join(i.to_string());
            let data = data.clone();
            async move {
                write_file(&path, &data, sync);
                let back = must(fs::read(&path), "read");
                assert_eq!(back.len(), data.len());
            }
        },
    )
    .await
}

async fn raw_create_rename(config: &BenchConfig, sync: bool) -> BenchResult {
    let dir = scratch();
    let data = random_bytes(2, 1 << 10);
    let name = if sync {
        "raw create+write+fsync+rename+dirsync 1KB"
    } else {
        "raw create+write+rename 1KB"
    };
    let root: PathBuf = dir.path().to_owned();
    measure(
        name,
        1 << 10,
        config,
        |_| async {},
        |i| {
            let tmp = root.join(format!("{i}.tmp"));
            let dest = root.join(i.to_string());
            let data = data.clone();
            let root = root.clone();
            async move {
                write_file(&tmp, &data, sync);
                must(fs::rename(&tmp, &dest), "rename");
                if sync {
                    must(must(File::open(&root), "open dir").sync_all(), "fsync dir");
                }
            }
        },
    )
    .await
}

async fn driver_put_1kb(
    driver: &FilesystemDriver,
    config: &BenchConfig,
    label: &str,
) -> BenchResult {
    use testsuites::storagedriver::StorageDriver;
    let data = random_bytes(3, 1 << 10);
    let result = measure(
        &format!("{label} put_content 1KB"),
        1 << 10,
        config,
        |_| async {},
        |i| {
            let data = data.clone();
            async move {
                must(
                    driver.put_content(&format!("/put1k/{i}"), data).await,
                    "put_content",
                )
            }
        },
    )
    .await;
    must(driver.delete("/put1k").await, "cleanup");
    result
}

async fn driver_put_get_1mb(
    driver: &FilesystemDriver,
    config: &BenchConfig,
    label: &str,
) -> BenchResult {
    use testsuites::storagedriver::StorageDriver;
    let data = random_bytes(4, 1 << 20);
    let result = measure(
        &format!("{label} put+get 1MB"),
        1 << 20,
        config,
        |_| async {},
        |i| {
            let data = data.clone();
            async move {
                let path = format!("/putget1m/{i}");
                must(driver.put_content(&path, data).await, "put_content");
                let back = must(driver.get_content(&path).await, "get_content");
                assert_eq!(back.len(), 1 << 20);
            }
        },
    )
    .await;
    must(driver.delete("/putget1m").await, "cleanup");
    result
}

fn driver(dir: &tempfile::TempDir, fsync: bool) -> FilesystemDriver {
    must(
        FilesystemDriver::new(FilesystemConfig::new(dir.path()).with_fsync(fsync)),
        "create the driver",
    )
}

/// The median of `results` by time per operation.
fn median(mut results: Vec<BenchResult>) -> BenchResult {
    results.sort_by_key(|r| r.per_op);
    results.swap_remove(results.len() / 2)
}

const ROUNDS: usize = 3;

fn main() {
    let runtime = must(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        "start a tokio runtime",
    );
    let config = BenchConfig::from_env();
    // The paired comparisons alternate raw loop and driver, round after round, so that both see
    // the same disk: the machine is shared and its disk's speed drifts.
    let round = BenchConfig {
        min_time: config.min_time / 2,
        ..config.clone()
    };
    runtime.block_on(async {
        let mut pairs = Vec::new();
        for fsync in [false, true] {
            let label = if fsync { "filesystem fsync=true" } else { "filesystem fsync=false" };
            let (mut raw_1m, mut drv_1m, mut raw_1k, mut drv_1k) = (vec![], vec![], vec![], vec![]);
            for _ in 0..ROUNDS {
                raw_1m.push(raw_write_read(&round, fsync).await);
                let dir = scratch();
                drv_1m.push(driver_put_get_1mb(&driver(&dir, fsync), &round, label).await);
                raw_1k.push(raw_create_rename(&round, fsync).await);
                let dir = scratch();
                drv_1k.push(driver_put_1kb(&driver(&dir, fsync), &round, label).await);
            }
            pairs.push((median(raw_1m), median(drv_1m)));
            pairs.push((median(raw_1k), median(drv_1k)));
        }
        println!("| raw loop | time/op | driver | time/op | driver rate / raw rate |\n|---|---:|---|---:|---:|");
        for (raw, drv) in &pairs {
            let ratio = raw.per_op.as_secs_f64() / drv.per_op.as_secs_f64() * 100.0;
            println!(
                "| {} | {} | {} | {} | {ratio:.0} % |",
                raw.name,
                format_duration(raw.per_op),
                drv.name,
                format_duration(drv.per_op)
            );
        }
        println!();
        for fsync in [false, true] {
            let dir = scratch();
            let label = if fsync { "filesystem fsync=true" } else { "filesystem fsync=false" };
            let results = run_suite_benchmarks(&driver(&dir, fsync), &config).await;
            println!("{}", markdown_table(label, &results));
        }
    });
}
