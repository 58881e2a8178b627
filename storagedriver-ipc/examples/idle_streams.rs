//! What idle streams cost over IPC, and what a busy one does, in one run.
//!
//! ```text
//! cargo build --release -p driver-inmemory --features server
//! cargo run --release -p storagedriver-ipc --example idle_streams -- \
//!     --child target/release/registry-storage-inmemory
//! ```
//!
//! One measurement (a fresh process, a fresh child):
//!
//! 1. spawns the driver executable (`--child`, driver `--name`, `inmemory` by default; the
//!    `filesystem` driver gets a temporary root) and stores a file of `--file-mib` MiB (4);
//! 2. takes the resident memory (`VmRSS` from `/proc`) of this process and of the child as
//!    the baseline;
//! 3. opens `--readers` readers of that file (1,000) and does not read them; once both
//!    processes' memory has settled, takes it again (*idle*);
//! 4. drops the readers; once memory has settled, takes it again (*after drop*); with
//!    `--cycles N`, opens and drops them N - 1 times more, taking memory after each drop;
//! 5. writes a file of `--stream-mib` MiB (1,024) through a writer and reads it back through a
//!    reader `--reads` times (3), timing each read.
//!
//! It prints `RESULT <name> <value>` lines (memory in MiB, throughput in MB/s). `--part idle`
//! does steps 1-4 only, `--part stream` step 5 only.
//!
//! `compare` runs measurements of two builds alternately, `--rounds` times (3), and prints
//! both side by side: the build of this example from another checkout (the code before a
//! change, say) with that checkout's driver executable, and this one. Each round runs the idle
//! part and the stream part in processes of their own (old idle, new idle, old stream, new
//! stream), so that memory one part left with the allocator does not help or hurt the other:
//!
//! ```text
//! idle_streams compare --old-bin OLD/idle_streams --old-child OLD/registry-storage-inmemory \
//!     --new-child NEW/registry-storage-inmemory [--rounds 3] [other options for both]
//! ```
//!
//! Only the public API of `storagedriver-ipc` is used, so that the same file builds against
//! older versions of the crate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use storagedriver::{Parameters, StorageDriver};
use storagedriver_ipc::IpcDriver;

/// The options of one measurement.
#[derive(Debug, Clone)]
struct Options {
    child: PathBuf,
    name: String,
    readers: usize,
    file_mib: usize,
    stream_mib: usize,
    reads: usize,
    /// Measure the idle readers (steps 1-4).
    idle: bool,
    /// Open and drop the readers this many times (step 4 again).
    cycles: usize,
    /// Measure the busy stream (step 5).
    stream: bool,
}

fn usage(message: &str) -> ExitCode {
    eprintln!("idle_streams: {message}");
    eprintln!(
        "usage: idle_streams --child EXE [--name inmemory|filesystem] [--readers N] [--cycles N] [--file-mib N] [--stream-mib N] [--reads N] [--part idle|stream]\n       idle_streams compare --old-bin BIN --old-child EXE --new-child EXE [--rounds N] [options]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("compare") {
        return compare(&args[1..]);
    }
    let mut options = Options {
        child: PathBuf::new(),
        name: "inmemory".to_owned(),
        readers: 1000,
        file_mib: 4,
        stream_mib: 1024,
        reads: 3,
        idle: true,
        cycles: 1,
        stream: true,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else {
            return usage(&format!("{flag} needs a value"));
        };
        let number = || value.parse::<usize>().ok();
        match (flag.as_str(), number()) {
            ("--child", _) => options.child = PathBuf::from(value),
            ("--name", _) => options.name = value.clone(),
            ("--readers", Some(n)) => options.readers = n,
            ("--file-mib", Some(n)) => options.file_mib = n,
            ("--stream-mib", Some(n)) => options.stream_mib = n,
            ("--reads", Some(n)) => options.reads = n.max(1),
            ("--cycles", Some(n)) => options.cycles = n.max(1),
            ("--part", _) if value == "idle" => options.stream = false,
            ("--part", _) if value == "stream" => options.idle = false,
            _ => return usage(&format!("unknown or invalid option {flag} {value}")),
        }
    }
    if options.child.as_os_str().is_empty() {
        return usage("--child is required");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage(&format!("no runtime: {e}")),
    };
    // In a spawned task, as a registry's request handlers run.
    let results = runtime.block_on(async move { tokio::spawn(measure(options)).await });
    match results {
        Ok(Ok(results)) => {
            for (name, value) in results {
                println!("RESULT {name} {value:.1}");
            }
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("idle_streams: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("idle_streams: the measurement failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `VmRSS` of `pid` (`self` for this process) in MiB.
fn rss_mib(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The resident memory of this process and of `child` once it stops changing (less than
/// 1 MiB between samples 100 ms apart, three times in a row), or after 15 s.
async fn settled(child: &str) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = (rss_mib("self"), rss_mib(child));
    let mut calm = 0;
    while calm < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = (rss_mib("self"), rss_mib(child));
        if (now.0 - last.0).abs() < 1.0 && (now.1 - last.1).abs() < 1.0 {
            calm += 1;
        } else {
            calm = 0;
        }
        last = now;
    }
    last
}

fn content(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(2_654_435_761) as u8)
        .collect::<Vec<u8>>()
        .into()
}

async fn measure(options: Options) -> storagedriver::Result<Vec<(String, f64)>> {
    let root = tempfile::tempdir().map_err(|e| {
        storagedriver::Error::backend(
            "idle_streams",
            "setup",
            None,
            storagedriver::Retry::Useless,
            storagedriver::error::Message(e.to_string()),
        )
    })?;
    let mut parameters = Parameters::new();
    if options.name == "filesystem" {
        parameters.insert(
            "rootdirectory".into(),
            root.path().display().to_string().into(),
        );
        parameters.insert("fsync".into(), false.into());
    }
    let driver = IpcDriver::spawn(&options.name, &options.child, &parameters).await?;
    let child = driver
        .child_pid()
        .map_or_else(|| "self".to_owned(), |p| p.to_string());
    let mut results = Vec::new();
    let mut record = |name: &str, value: f64| {
        eprintln!("{name:>24}: {value:.1}");
        results.push((name.to_owned(), value));
    };

    if options.idle {
        let file_len = options.file_mib << 20;
        driver.put_content("/idle/blob", content(file_len)).await?;
        // One reader read whole: the content is right.
        let mut check = driver.reader("/idle/blob", 0).await?;
        let mut read = 0;
        while let Some(chunk) = check.next().await {
            read += chunk?.len();
        }
        drop(check);
        assert_eq!(read, file_len, "a reader returns the whole file");

        let (base_client, base_child) = settled(&child).await;
        record("baseline_client_mib", base_client);
        record("baseline_child_mib", base_child);

        let started = Instant::now();
        let mut readers = Vec::with_capacity(options.readers);
        for _ in 0..options.readers {
            readers.push(driver.reader("/idle/blob", 0).await?);
        }
        record("open_readers_ms", started.elapsed().as_secs_f64() * 1000.0);
        let (idle_client, idle_child) = settled(&child).await;
        record("idle_client_growth_mib", idle_client - base_client);
        record("idle_child_growth_mib", idle_child - base_child);
        record(
            "idle_total_growth_mib",
            idle_client - base_client + idle_child - base_child,
        );
        drop(readers);
        let (after_client, after_child) = settled(&child).await;
        record(
            "after_drop_client_above_baseline_mib",
            after_client - base_client,
        );
        record(
            "after_drop_child_above_baseline_mib",
            after_child - base_child,
        );
        // More rounds of the same: memory that stays after a drop and is reused by the next
        // round was kept by the allocator; memory that keeps growing would be a leak.
        for cycle in 2..=options.cycles {
            let mut readers = Vec::with_capacity(options.readers);
            for _ in 0..options.readers {
                readers.push(driver.reader("/idle/blob", 0).await?);
            }
            drop(readers);
            let (client, child) = settled(&child).await;
            record(
                &format!("after_drop_{cycle}_client_above_baseline_mib"),
                client - base_client,
            );
            record(
                &format!("after_drop_{cycle}_child_above_baseline_mib"),
                child - base_child,
            );
        }
    }
    if options.stream {
        // The busy stream.
        let stream_len = (options.stream_mib as u64) << 20;
        let chunk = content(1 << 20);
        let started = Instant::now();
        let mut writer = driver.writer("/stream/big", false).await?;
        let mut left = stream_len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            writer.write(chunk.slice(..n)).await?;
            left -= n as u64;
        }
        writer.commit().await?;
        record(
            "stream_write_mb_s",
            stream_len as f64 / started.elapsed().as_secs_f64() / 1e6,
        );
        let mut rates = Vec::new();
        for _ in 0..options.reads {
            let started = Instant::now();
            let mut stream = driver.reader("/stream/big", 0).await?;
            let mut got = 0u64;
            while let Some(chunk) = stream.next().await {
                got += chunk?.len() as u64;
            }
            let elapsed = started.elapsed();
            assert_eq!(got, stream_len, "the stream returns the whole file");
            rates.push(got as f64 / elapsed.as_secs_f64() / 1e6);
        }
        rates.sort_by(f64::total_cmp);
        record("stream_read_best_mb_s", rates[rates.len() - 1]);
        record("stream_read_median_mb_s", rates[rates.len() / 2]);
        driver.delete("/stream").await?;
    }
    Ok(results)
}

/// `compare`: alternate runs of the old build and this one, then a table.
fn compare(args: &[String]) -> ExitCode {
    let (mut old_bin, mut old_child, mut new_child) = (None, None, None);
    let mut rounds = 3usize;
    let mut passed = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let Some(value) = it.next() else {
            return usage(&format!("{flag} needs a value"));
        };
        match flag.as_str() {
            "--old-bin" => old_bin = Some(value.clone()),
            "--old-child" => old_child = Some(value.clone()),
            "--new-child" => new_child = Some(value.clone()),
            "--rounds" => match value.parse() {
                Ok(n) => rounds = n,
                Err(_) => return usage("--rounds needs a number"),
            },
            _ => {
                passed.push(flag.clone());
                passed.push(value.clone());
            }
        }
    }
    let (Some(old_bin), Some(old_child), Some(new_child)) = (old_bin, old_child, new_child) else {
        return usage("compare needs --old-bin, --old-child and --new-child");
    };
    let Ok(new_bin) = std::env::current_exe() else {
        return usage("cannot find this executable");
    };
    let mut figures: BTreeMap<String, [Vec<f64>; 2]> = BTreeMap::new();
    let mut order = Vec::new();
    for round in 0..rounds {
        for (part, side) in [("idle", 0), ("idle", 1), ("stream", 0), ("stream", 1)] {
            let (bin, child): (PathBuf, &str) = if side == 0 {
                (old_bin.clone().into(), &old_child)
            } else {
                (new_bin.clone(), &new_child)
            };
            let label = ["old", "new"][side];
            eprintln!("--- round {} of {rounds}: {label}, {part}", round + 1);
            let output = Command::new(&bin)
                .arg("--child")
                .arg(child)
                .arg("--part")
                .arg(part)
                .args(&passed)
                .stderr(std::process::Stdio::inherit())
                .output();
            let output = match output {
                Ok(o) if o.status.success() => o,
                Ok(o) => return usage(&format!("{label} run failed: {}", o.status)),
                Err(e) => return usage(&format!("cannot run {}: {e}", bin.display())),
            };
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                let mut words = line.split_whitespace();
                if let (Some("RESULT"), Some(name), Some(value)) =
                    (words.next(), words.next(), words.next())
                {
                    let Ok(value) = value.parse::<f64>() else {
                        continue;
                    };
                    if !figures.contains_key(name) {
                        order.push(name.to_owned());
                    }
                    figures.entry(name.to_owned()).or_default()[side].push(value);
                }
            }
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| figure ({rounds} alternating rounds) | old: each round | new: each round | old median | new median |"
    );
    println!("|---|---|---|---:|---:|");
    for name in order {
        let [old, new] = &figures[&name];
        println!(
            "| {name} | {} | {} | {:.1} | {:.1} |",
            list(old),
            list(new),
            median(old),
            median(new)
        );
    }
    ExitCode::SUCCESS
}
