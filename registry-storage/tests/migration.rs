//! The migration as a test: a tree of files of mixed sizes on the filesystem driver, copied
//! with `cp --verify` to S3 (single-node Garage) and to Azure (Azurite) by the real binary,
//! killed with SIGKILL once partway, then run again to completion. The rerun must verify and
//! move only what was missing.
//!
//! Default sizes keep CI fast (200 files up to 8 MiB); `STORAGEDRIVER_SUITE=full` copies 1,000
//! files up to 64 MiB. The servers come from `target/servers/servers.env` (see
//! `scripts/servers.sh`); without them the tests are skipped, or fail under
//! `STORAGEDRIVER_REQUIRE_SERVERS=1`. Each test writes below a root of its own and deletes it.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use testsuites::servers::{or_skip, unique_root};

const MIB: u64 = 1 << 20;

/// How many files, and the largest.
fn sizes() -> (usize, u64) {
    if std::env::var("STORAGEDRIVER_SUITE").is_ok_and(|v| v == "full") {
        (1000, 64 * MIB)
    } else {
        (200, 8 * MIB)
    }
}

/// A registry-shaped tree of `count` files below `root` (a directory on disk), most of them
/// small, some of a few hundred KiB, one in ten large (up to `largest`), a few empty; returns
/// their total size.
fn make_tree(root: &Path, count: usize, largest: u64) -> u64 {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut total = 0;
    for i in 0..count {
        let size = match i % 10 {
            0 if i % 40 == 0 => 0,
            0..=5 => next() % (64 << 10),
            6..=8 => (64 << 10) + next() % (960 << 10),
            _ => MIB + next() % (largest - MIB + 1),
        };
        let dir = root.join(format!(
            "docker/registry/v2/blobs/sha256/{:02x}/{i:06}",
            i % 37
        ));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut bytes = Vec::with_capacity(size as usize + 8);
        while (bytes.len() as u64) < size {
            bytes.extend_from_slice(&next().to_le_bytes());
        }
        bytes.truncate(size as usize);
        std::fs::write(dir.join("data"), &bytes).expect("write");
        total += size;
    }
    total
}

/// The source: the filesystem driver on `root`.
fn source_args(root: &Path) -> Vec<String> {
    vec![
        "--driver".into(),
        "filesystem".into(),
        "-p".into(),
        format!("rootdirectory={}", root.display()),
        "-p".into(),
        "fsync=false".into(),
    ]
}

/// An environment variable of the test servers, or why it is missing.
fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| {
        format!(
            "{name} is not set (run scripts/servers.sh start and source target/servers/servers.env)"
        )
    })
}

/// The Garage destination as a registry `config.yml` (so `--to-config` is what selects it),
/// below `root`.
fn garage_config(dir: &Path, root: &str) -> Result<Vec<String>, String> {
    let field = |f: &str| var(&format!("STORAGEDRIVER_S3_GARAGE_{f}"));
    let text = format!(
        "version: 0.1\nstorage:\n  s3:\n    bucket: {}\n    region: {}\n    regionendpoint: {}\n    forcepathstyle: true\n    accesskey: {}\n    secretkey: {}\n    chunksize: 5242880\n    rootdirectory: {root}\n  delete:\n    enabled: true\n",
        field("BUCKET")?,
        field("REGION")?,
        field("ENDPOINT")?,
        field("ACCESS_KEY")?,
        field("SECRET_KEY")?,
    );
    let file = dir.join("garage.yml");
    std::fs::write(&file, text).map_err(|e| format!("writing {}: {e}", file.display()))?;
    Ok(vec!["--to-config".into(), file.display().to_string()])
}

/// The Azurite destination as `--to-driver azure --to-param ...`, below `root`.
fn azurite_args(root: &str) -> Result<Vec<String>, String> {
    let field = |f: &str| var(&format!("STORAGEDRIVER_AZURE_AZURITE_{f}"));
    let params = [
        ("accountname", field("ACCOUNT")?),
        ("accountkey", field("KEY")?),
        ("serviceurl", field("SERVICE_URL")?),
        ("container", "storagedriver-test".to_owned()),
        ("chunksize", "5242880".to_owned()),
        ("rootdirectory", root.to_owned()),
    ];
    let mut args = vec!["--to-driver".to_owned(), "azure".to_owned()];
    for (key, value) in params {
        args.push("--to-param".into());
        args.push(format!("{key}={value}"));
    }
    Ok(args)
}

/// The same destination as a source selection, for `du` and `rm` on it.
fn as_selection(destination: &[String]) -> Vec<String> {
    destination
        .iter()
        .map(|a| match a.as_str() {
            "--to-config" => "--config".to_owned(),
            "--to-driver" => "--driver".to_owned(),
            "--to-param" => "-p".to_owned(),
            other => other.to_owned(),
        })
        .collect()
}

/// Runs the binary with `args` to completion.
fn run(args: &[String]) -> common::Run {
    let mut command = common::command();
    command.args(args);
    common::run(command, b"")
}

/// Committed files and bytes below `/docker` on the destination (`du`), (0, 0) when none.
fn committed(destination: &[String]) -> (u64, u64) {
    let mut args = as_selection(destination);
    args.extend(["du".into(), "--json".into(), "/docker".into()]);
    let run = run(&args);
    if run.code == 3 {
        return (0, 0);
    }
    let du: Value = serde_json::from_str(&run.ok()).expect("du JSON");
    (
        du["files"].as_u64().expect("files"),
        du["size"].as_u64().expect("size"),
    )
}

/// What the runs of one migration measured (printed for the record).
#[derive(Debug)]
struct Figures {
    files: usize,
    bytes: u64,
    killed_after: Duration,
    committed_at_kill: (u64, u64),
    rerun: Duration,
    summary: Value,
}

/// Copies a fresh tree to `destination` and checks the rerun after a kill (see
/// [`kill_then_resume`]), then deletes what it wrote.
fn migrate(label: &str, destination: impl FnOnce(&Path, &str) -> Result<Vec<String>, String>) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let root = unique_root(label);
    let Some(destination) = or_skip(destination(scratch.path(), &root)) else {
        return;
    };
    let (count, largest) = sizes();
    let source_root = scratch.path().join("source");
    let bytes = make_tree(&source_root, count, largest);
    let mut cp: Vec<String> = source_args(&source_root);
    cp.extend(["cp".into(), "--json".into(), "--verify".into()]);
    cp.extend(destination.iter().cloned());
    cp.extend(["/docker".into(), "/docker".into()]);

    let figures = kill_then_resume(&cp, &destination, count, bytes);
    let n = |key: &str| figures.summary[key].as_u64().unwrap_or_default();
    eprintln!(
        "{label}: {} files, {} bytes; killed after {:.2} s with {} files ({} bytes) committed; \
         the rerun took {:.2} s (copy {:.2} s, verify {:.2} s): skipped {} ({} bytes), \
         copied {} ({} resumed, {} bytes resumed), moved {} bytes, verified {}",
        figures.files,
        figures.bytes,
        figures.killed_after.as_secs_f64(),
        figures.committed_at_kill.0,
        figures.committed_at_kill.1,
        figures.rerun.as_secs_f64(),
        figures.summary["copy_seconds"].as_f64().unwrap_or_default(),
        figures.summary["verify_seconds"]
            .as_f64()
            .unwrap_or_default(),
        n("skipped"),
        n("skipped_bytes"),
        n("copied"),
        n("resumed"),
        n("resumed_bytes"),
        n("moved"),
        n("verified"),
    );

    let mut rm = as_selection(&destination);
    rm.extend(["rm".into(), "-r".into(), "/docker".into()]);
    let removed = run(&rm);
    assert!(removed.code == 0 || removed.code == 3, "{}", removed.stderr);
}

/// Runs `cp`, kills it with SIGKILL once a tenth of the `count` files are committed at the
/// `destination` (some but not all bytes), runs it again to completion with `--verify`, and
/// checks that the rerun skipped the committed files and moved exactly the rest.
fn kill_then_resume(cp: &[String], destination: &[String], count: usize, bytes: u64) -> Figures {
    let started = Instant::now();
    let mut child = common::command()
        .args(cp)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cp starts");
    let deadline = started + Duration::from_secs(600);
    let at_kill = loop {
        let now = committed(destination);
        if now.0 >= (count as u64 / 10).max(1) {
            break now;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("cp ended before any file was committed: {status}");
        }
        assert!(Instant::now() < deadline, "no file committed in 10 minutes");
        std::thread::sleep(Duration::from_millis(50));
    };
    if child.try_wait().expect("wait").is_some() {
        panic!("cp finished before it could be killed: make the tree larger");
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reaped");
    let killed_after = started.elapsed();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed by SIGKILL"
    );
    let after_kill = committed(destination);
    assert!(
        after_kill.0 >= at_kill.0 && after_kill.0 < count as u64,
        "some but not all files reached the destination: {after_kill:?} of {count}"
    );

    let started = Instant::now();
    let rerun = run(cp);
    let took = started.elapsed();
    let summary: Value = serde_json::from_str(&rerun.ok()).expect("cp JSON");
    let n = |key: &str| {
        summary[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {summary}"))
    };
    assert_eq!(n("files"), count as u64);
    assert_eq!(n("bytes"), bytes);
    assert_eq!(n("verified"), count as u64, "{summary}");
    assert_eq!(n("mismatched"), 0, "{summary}");
    // A request the killed process had sent may still have completed after it died.
    assert!(
        n("skipped") >= after_kill.0 && n("skipped_bytes") >= after_kill.1,
        "the files committed before the kill are skipped: {summary}"
    );
    assert!(n("skipped") > 0 && n("moved") < bytes, "{summary}");
    assert_eq!(
        n("moved") + n("resumed_bytes") + n("skipped_bytes"),
        bytes,
        "the rerun moved exactly what was missing: {summary}"
    );
    assert_eq!(n("copied") + n("skipped"), count as u64);
    assert_eq!(committed(destination), (count as u64, bytes));
    Figures {
        files: count,
        bytes,
        killed_after,
        committed_at_kill: after_kill,
        rerun: took,
        summary,
    }
}

#[test]
fn migrate_filesystem_to_s3_on_garage_killed_once_then_resumed() {
    migrate("cp-migration-garage", garage_config);
}

#[test]
fn migrate_filesystem_to_azure_on_azurite_killed_once_then_resumed() {
    migrate("cp-migration-azurite", |_, root| azurite_args(root));
}
