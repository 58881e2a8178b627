//! `registry-storage cp` throughput, side by side in one sitting: a 1 GiB file filesystem →
//! filesystem against the system `cp` on the same disk, and filesystem → S3 (single-node
//! Garage) against `object_store` used directly (a multipart upload of the same file, read in
//! 1 MiB chunks, in the driver's part size with the driver's parts in flight).
//!
//! ```sh
//! source target/servers/servers.env   # for the S3 half; without it that half is skipped
//! cargo bench -p registry-storage --bench cp
//! ```
//!
//! Each round runs every contender once, the order alternating from round to round; the
//! report gives medians, best rounds, the rate against the reference (of the medians), and
//! the median of the rounds' own rates (each round's two runs are seconds apart, so that
//! figure suffers least from this shared machine's drift). `registry-storage`
//! runs as a process (`cp` is one too), with the filesystem driver's `fsync=false` (the system
//! `cp` does not sync either). `STORAGEDRIVER_BENCH_ROUNDS=N` sets the rounds (default 5),
//! `STORAGEDRIVER_BENCH_CP_MIB=N` the file's size (default 1024). The file lives in a
//! temporary directory under `TMPDIR` (the same disk as the copies) and everything written to
//! S3 goes below a fresh prefix of `STORAGEDRIVER_S3_GARAGE_BENCH_BUCKET`, deleted at the end.
//! Garage deduplicates blocks by hash, so after an untimed first upload both S3 contenders
//! measure the client, HTTP and Garage's hashing rather than this machine's disk.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use driver_s3::S3Config;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use storagedriver::Parameters;
use testsuites::bench::side_by_side::{load_average, utc_now};
use testsuites::servers::unique_name;

const MIB: u64 = 1 << 20;

/// One contender's times.
struct Series {
    name: String,
    times: Vec<Duration>,
}

impl Series {
    fn new(name: &str) -> Self {
        Series {
            name: name.to_owned(),
            times: Vec::new(),
        }
    }

    fn median(&self) -> Duration {
        let mut sorted = self.times.clone();
        sorted.sort();
        sorted[sorted.len() / 2]
    }

    fn best(&self) -> Duration {
        self.times.iter().copied().min().unwrap_or_default()
    }
}

fn must<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Runs `command`, which must succeed, and returns how long it took.
fn timed(command: &mut Command) -> Duration {
    let started = Instant::now();
    let output = must(command.output(), "start the command");
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    took
}

/// Writes `size` bytes of incompressible content to `file`.
fn make_file(file: &Path, size: u64) {
    must(
        std::fs::create_dir_all(file.parent().expect("a parent")),
        "mkdir",
    );
    let mut out = std::io::BufWriter::new(must(std::fs::File::create(file), "create"));
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut block = vec![0u8; MIB as usize];
    for _ in 0..size / MIB {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        must(out.write_all(&block), "write");
    }
    must(out.flush(), "flush");
}

/// The binary with the filesystem driver on `root` as its source, then `args`.
fn registry_storage(root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_registry-storage"));
    command
        .args(["--driver", "filesystem", "-p"])
        .arg(format!("rootdirectory={}", root.display()))
        .args(["-p", "fsync=false"])
        .args(args);
    command
}

fn rounds() -> usize {
    std::env::var("STORAGEDRIVER_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// Times both contenders `rounds()` times, `run(0)` and `run(1)` in alternating order, and
/// prints each round's figures.
async fn alternate(series: &mut [Series; 2], mut run: impl AsyncFnMut(usize) -> Duration) {
    for round in 0..rounds() {
        for which in [round % 2, 1 - round % 2] {
            let took = run(which).await;
            series[which].times.push(took);
        }
        eprintln!(
            "round {}: {} {:?}, {} {:?}",
            round + 1,
            series[0].name,
            series[0].times[round],
            series[1].name,
            series[1].times[round]
        );
    }
}

/// `registry-storage` on the destination of `to` (its `--to-driver`/`--to-param` arguments),
/// running `args` (an `rm`).
fn on_destination(src_root: &Path, to: &[String], args: &[&str]) -> Command {
    let mut command = registry_storage(src_root, args);
    command.args(to.iter().map(|a| {
        a.replace("--to-driver", "--driver")
            .replace("--to-param", "-p")
    }));
    command
}

/// Prints the table of `series`, the first being the reference.
fn report(title: &str, size: u64, series: &[Series]) {
    println!("\n{title}\n");
    println!(
        "| contender | rounds | median | best | MB/s (median) | rate / {} (medians) | median of the rounds' rates |",
        series[0].name
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let reference = series[0].median().as_secs_f64();
    for s in series {
        let median = s.median().as_secs_f64();
        let mut paired: Vec<f64> = series[0]
            .times
            .iter()
            .zip(&s.times)
            .map(|(r, t)| r.as_secs_f64() / t.as_secs_f64())
            .collect();
        paired.sort_by(f64::total_cmp);
        println!(
            "| {} | {} | {:.0} ms | {:.0} ms | {:.1} | {} | {} |",
            s.name,
            s.times.len(),
            median * 1e3,
            s.best().as_secs_f64() * 1e3,
            size as f64 / median / 1e6,
            if std::ptr::eq(s, &series[0]) {
                "reference".to_owned()
            } else {
                format!("{:.0} %", reference / median * 100.0)
            },
            if std::ptr::eq(s, &series[0]) {
                "reference".to_owned()
            } else {
                format!("{:.0} %", paired[paired.len() / 2] * 100.0)
            }
        );
    }
}

/// 1 GiB filesystem → filesystem: the system `cp` against `registry-storage cp`.
async fn filesystem(dir: &Path, size: u64) {
    let src_root = dir.join("src");
    let file = src_root.join("big/data");
    make_file(&file, size);
    let dst_root = dir.join("dst");
    let mut series = [Series::new("system cp"), Series::new("registry-storage cp")];
    let to_param = format!("rootdirectory={}", dst_root.display());
    alternate(&mut series, async |which| {
        let _ = std::fs::remove_dir_all(&dst_root);
        must(std::fs::create_dir_all(dst_root.join("copy")), "mkdir");
        if which == 0 {
            timed(
                Command::new("cp")
                    .arg(&file)
                    .arg(dst_root.join("copy/data")),
            )
        } else {
            timed(&mut registry_storage(
                &src_root,
                &["cp", "/big/data", "/copy/data", "--to-param", &to_param],
            ))
        }
    })
    .await;
    let _ = std::fs::remove_dir_all(&dst_root);
    report(
        &format!(
            "filesystem → filesystem, {} MiB, {}, load average {}",
            size / MIB,
            utc_now(),
            load_average()
        ),
        size,
        &series,
    );
}

/// The Garage bench bucket's driver parameters below `root`, or why they are missing.
fn garage(root: &str) -> Result<Parameters, String> {
    let var = |field: &str| {
        let key = format!("STORAGEDRIVER_S3_GARAGE_{field}");
        std::env::var(&key).map_err(|_| format!("{key} is not set"))
    };
    let value = serde_json::json!({
        "bucket": var("BENCH_BUCKET")?,
        "region": var("REGION")?,
        "regionendpoint": var("ENDPOINT")?,
        "forcepathstyle": "true",
        "accesskey": var("ACCESS_KEY")?,
        "secretkey": var("SECRET_KEY")?,
        "rootdirectory": root,
    });
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Uploads `file` to `key` with `object_store`'s multipart upload in `chunk`-sized parts,
/// `parts` in flight, reading 1 MiB at a time.
async fn direct_upload(
    store: &Arc<dyn ObjectStore>,
    key: &Key,
    file: &Path,
    chunk: usize,
    parts: usize,
) -> Duration {
    let started = Instant::now();
    let upload = must(store.put_multipart(key).await, "put_multipart");
    let mut upload = WriteMultipart::new_with_chunk_size(upload, chunk);
    let mut input = must(std::fs::File::open(file), "open");
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let n = must(input.read(&mut buf), "read");
        if n == 0 {
            break;
        }
        must(upload.wait_for_capacity(parts).await, "upload a part");
        upload.write(&buf[..n]);
    }
    must(upload.finish().await, "finish the upload");
    started.elapsed()
}

/// 1 GiB filesystem → S3: `object_store` directly against `registry-storage cp`.
async fn s3(dir: &Path, size: u64) {
    let root = format!("/{}", unique_name("bench-cp"));
    let parameters = match garage(&root) {
        Ok(p) => p,
        Err(reason) => {
            eprintln!("filesystem → S3 skipped: {reason} (source target/servers/servers.env)");
            return;
        }
    };
    let config = must(S3Config::from_parameters(&parameters), "S3 parameters");
    let store: Arc<dyn ObjectStore> = Arc::new(must(config.build_store(), "the S3 store"));
    let src_root = dir.join("src");
    let file = src_root.join("big/data");
    let mut to: Vec<String> = vec!["--to-driver".into(), "s3".into()];
    for (key, value) in &parameters {
        to.push("--to-param".into());
        to.push(format!("{key}={}", value.as_str().unwrap_or_default()));
    }
    let mut cp_args: Vec<&str> = vec!["cp", "/big/data", "/copy/data"];
    cp_args.extend(to.iter().map(String::as_str));
    let direct_key = Key::from(format!("{}/direct/data", root.trim_start_matches('/')));
    // The driver's defaults: 10 MiB parts, 2 in flight.
    let (chunk, parts) = (10 << 20, 2);
    // Untimed: Garage then holds the blocks, for both contenders alike.
    direct_upload(&store, &direct_key, &file, chunk, parts).await;
    let mut series = [
        Series::new("object_store multipart (10 MiB parts, 2 in flight)"),
        Series::new("registry-storage cp"),
    ];
    alternate(&mut series, async |which| {
        if which == 0 {
            direct_upload(&store, &direct_key, &file, chunk, parts).await
        } else {
            let _ = on_destination(&src_root, &to, &["rm", "/copy/data"]).output();
            timed(&mut registry_storage(&src_root, &cp_args))
        }
    })
    .await;
    let _ = store.delete(&direct_key).await;
    let _ = on_destination(&src_root, &to, &["rm", "-r", "/copy"]).output();
    report(
        &format!(
            "filesystem → S3 (Garage), {} MiB, {}, load average {}",
            size / MIB,
            utc_now(),
            load_average()
        ),
        size,
        &series,
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let size = std::env::var("STORAGEDRIVER_BENCH_CP_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1024)
        * MIB;
    let temp = must(tempfile::tempdir(), "a temporary directory");
    let dir = temp.path();
    let runtime = must(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        "a runtime",
    );
    runtime.block_on(async {
        filesystem(dir, size).await;
        s3(dir, size).await;
    });
}
