//! Measures what `fsync` costs `put_content`, and how the driver compares with plain
//! filesystem calls doing the same work.
//!
//! ```text
//! cargo run --release -p driver-filesystem --example fsync_cost [DIR]
//! ```
//!
//! `DIR` (default: a temporary directory) should be on the disk the registry would use.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use driver_filesystem::{FilesystemConfig, FilesystemDriver};
use futures::TryStreamExt;
use storagedriver::StorageDriver;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Runs `f` `n` times and returns the mean time of one run.
async fn mean<F, Fut>(n: u32, mut f: F) -> Result<Duration>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let start = Instant::now();
    for i in 0..n {
        f(i).await?;
    }
    Ok(start.elapsed() / n)
}

/// The median of `rounds` measurements.
fn median(mut rounds: Vec<Duration>) -> Duration {
    rounds.sort();
    rounds[rounds.len() / 2]
}

/// How many rounds each comparison runs, alternating driver and raw; the median is reported.
const ROUNDS: usize = 5;

fn report(what: &str, size: usize, per_op: Duration) {
    let secs = per_op.as_secs_f64();
    let ops = 1.0 / secs;
    let mib_s = size as f64 / (1 << 20) as f64 / secs;
    println!(
        "{what:<44} {:>10.1} µs/op {ops:>10.0} ops/s {mib_s:>9.1} MiB/s",
        secs * 1e6
    );
}

/// The raw loop `put_content` is measured against: create, write, (fsync), rename, (dir fsync).
fn raw_put(dir: &Path, i: u32, body: &[u8], sync: bool) -> std::io::Result<()> {
    let temp = dir.join(format!("f{}#tmp", i % 64));
    let target = dir.join(format!("f{}", i % 64));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)?;
    file.write_all(body)?;
    if sync {
        file.sync_data()?;
    }
    drop(file);
    fs::rename(&temp, &target)?;
    if sync {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

async fn driver_put(driver: &FilesystemDriver, n: u32, body: &Bytes) -> Result<Duration> {
    mean(n, |i| {
        let body = body.clone();
        async move {
            driver
                .put_content(&format!("/blobs/f{}", i % 64), body)
                .await?;
            Ok(())
        }
    })
    .await
}

async fn raw_put_loop(dir: &Path, n: u32, body: &[u8], sync: bool) -> Result<Duration> {
    mean(n, |i| async move { Ok(raw_put(dir, i, body, sync)?) }).await
}

/// `put_content` then `get_content` (`stream == false`) or `reader` (`stream == true`).
async fn driver_put_get(
    driver: &FilesystemDriver,
    n: u32,
    body: &Bytes,
    stream: bool,
) -> Result<Duration> {
    mean(n, |i| {
        let body = body.clone();
        async move {
            let path = format!("/pg/f{}", i % 16);
            let size = body.len();
            driver.put_content(&path, body).await?;
            let got = if stream {
                let chunks: Vec<Bytes> = driver.reader(&path, 0).await?.try_collect().await?;
                chunks.iter().map(Bytes::len).sum()
            } else {
                driver.get_content(&path).await?.len()
            };
            assert_eq!(got, size);
            Ok(())
        }
    })
    .await
}

async fn driver_writer_reader(driver: &FilesystemDriver, n: u32, body: &Bytes) -> Result<Duration> {
    mean(n, |i| {
        let body = body.clone();
        async move {
            let path = format!("/pg/w{}", i % 16);
            let size = body.len();
            let mut w = driver.writer(&path, false).await?;
            w.write(body).await?;
            w.commit().await?;
            let chunks: Vec<Bytes> = driver.reader(&path, 0).await?.try_collect().await?;
            assert_eq!(chunks.iter().map(Bytes::len).sum::<usize>(), size);
            Ok(())
        }
    })
    .await
}

async fn raw_write_read(dir: &Path, n: u32, body: &[u8]) -> Result<Duration> {
    mean(n, |i| async move {
        let path = dir.join(format!("f{}", i % 16));
        fs::write(&path, body)?;
        let mut got = Vec::with_capacity(body.len());
        fs::File::open(&path)?.read_to_end(&mut got)?;
        assert_eq!(got.len(), body.len());
        Ok(())
    })
    .await
}

#[tokio::main]
async fn main() -> Result<()> {
    let base = match std::env::args().nth(1) {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    println!(
        "directory: {}; median of {ROUNDS} rounds",
        base.path().display()
    );
    for (size, n) in [(1usize << 10, 1000u32), (1 << 20, 200)] {
        let body = Bytes::from(vec![7u8; size]);
        for fsync in [true, false] {
            let n = if fsync { n / 4 } else { n };
            let root = base.path().join(format!("{size}-{fsync}"));
            let driver = FilesystemDriver::new(FilesystemConfig::new(&root).with_fsync(fsync))?;
            let raw = base.path().join(format!("raw-{size}-{fsync}"));
            fs::create_dir_all(&raw)?;
            let (mut d, mut r) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                d.push(driver_put(&driver, n, &body).await?);
                r.push(raw_put_loop(&raw, n, &body, fsync).await?);
            }
            let (d, r) = (median(d), median(r));
            report(
                &format!("driver put_content {size} B fsync={fsync}"),
                size,
                d,
            );
            report(
                &format!("raw create+write+rename {size} B fsync={fsync}"),
                size,
                r,
            );
            println!(
                "  driver/raw throughput: {:.0}%",
                100.0 * r.as_secs_f64() / d.as_secs_f64()
            );
        }
    }

    // put+get of 1 MiB against raw write+read, fsync off.
    let size = 1 << 20;
    let body = Bytes::from(vec![9u8; size]);
    let driver =
        FilesystemDriver::new(FilesystemConfig::new(base.path().join("pg")).with_fsync(false))?;
    let raw = base.path().join("raw-pg");
    fs::create_dir_all(&raw)?;
    let n = 200;
    let (mut g, mut s, mut w, mut r) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        g.push(driver_put_get(&driver, n, &body, false).await?);
        s.push(driver_put_get(&driver, n, &body, true).await?);
        w.push(driver_writer_reader(&driver, n, &body).await?);
        r.push(raw_write_read(&raw, n, &body).await?);
    }
    let r = median(r);
    for (what, d) in [
        ("driver put_content+get_content 1 MiB", median(g)),
        ("driver put_content+reader 1 MiB", median(s)),
        ("driver writer+reader 1 MiB", median(w)),
    ] {
        report(what, 2 * size, d);
        println!(
            "  driver/raw throughput: {:.0}%",
            100.0 * r.as_secs_f64() / d.as_secs_f64()
        );
    }
    report("raw write+read 1 MiB", 2 * size, r);

    // A large file through writer and reader.
    let big: u64 = 256 << 20;
    let chunk = Bytes::from(vec![3u8; 1 << 20]);
    let start = Instant::now();
    let mut w = driver.writer("/big/file", false).await?;
    for _ in 0..(big >> 20) {
        w.write(chunk.clone()).await?;
    }
    w.commit().await?;
    report(
        "driver writer 256 MiB (1 MiB writes)",
        big as usize,
        start.elapsed(),
    );
    let start = Instant::now();
    let mut stream = driver.reader("/big/file", 0).await?;
    let mut total = 0u64;
    while let Some(c) = stream.try_next().await? {
        total += c.len() as u64;
    }
    assert_eq!(total, big);
    report("driver reader 256 MiB", big as usize, start.elapsed());
    let start = Instant::now();
    let raw_big = raw.join("big");
    {
        let mut f = fs::File::create(&raw_big)?;
        for _ in 0..(big >> 20) {
            f.write_all(&chunk)?;
        }
    }
    report(
        "raw write 256 MiB (1 MiB writes)",
        big as usize,
        start.elapsed(),
    );
    let start = Instant::now();
    let mut f = fs::File::open(&raw_big)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    assert_eq!(total, big);
    report("raw read 256 MiB", big as usize, start.elapsed());
    Ok(())
}
