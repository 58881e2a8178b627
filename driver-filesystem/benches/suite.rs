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
use testsuites::bench::{BenchConfig, BenchResult, markdown_table, measure, run_suite_benchmarks};
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

fn main() {
    let runtime = must(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        "start a tokio runtime",
    );
    let config = BenchConfig::from_env();
    runtime.block_on(async {
        let raw = vec![
            raw_write_read(&config, false).await,
            raw_write_read(&config, true).await,
            raw_create_rename(&config, false).await,
            raw_create_rename(&config, true).await,
        ];
        println!("{}", markdown_table("raw disk", &raw));
        for fsync in [false, true] {
            let dir = scratch();
            let label = if fsync {
                "filesystem fsync=true"
            } else {
                "filesystem fsync=false"
            };
            let driver = must(
                FilesystemDriver::new(FilesystemConfig::new(dir.path()).with_fsync(fsync)),
                "create the driver",
            );
            let mut results = vec![driver_put_1kb(&driver, &config, label).await];
            results.extend(run_suite_benchmarks(&driver, &config).await);
            println!("{}", markdown_table(label, &results));
        }
    });
}
