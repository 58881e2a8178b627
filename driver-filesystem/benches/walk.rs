//! `walk` of a registry-shaped tree of 20,000 files (`STORAGEDRIVER_WALK_FILES` to change it):
//! `find` on the same tree, the driver in process, and the driver over IPC
//! (`registry-storage-filesystem` as a child), alternating over rounds in one run. Prints the
//! medians and their ratios as a Markdown table. Run with
//! `cargo bench -p driver-filesystem --features server --bench walk`.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use driver_filesystem::{FilesystemConfig, FilesystemDriver};
use storagedriver::{Parameters, StorageDriver, WalkControl, WalkOptions};
use storagedriver_ipc::IpcDriver;

const ROUNDS: usize = 7;

fn main() {
    let files: usize = std::env::var("STORAGEDRIVER_WALK_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let tmp = match tempfile::tempdir() {
        Ok(tmp) => tmp,
        Err(e) => panic!("cannot create a temporary directory: {e}"),
    };
    let made = registry_tree(tmp.path(), files);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("cannot start a runtime: {e}"),
    };
    runtime.block_on(async {
        let config = FilesystemConfig::new(tmp.path()).with_fsync(false);
        let local = match FilesystemDriver::new(config) {
            Ok(driver) => driver,
            Err(e) => panic!("cannot open the driver: {e}"),
        };
        let mut parameters = Parameters::new();
        parameters.insert(
            "rootdirectory".into(),
            tmp.path().display().to_string().into(),
        );
        let exe = Path::new(env!("CARGO_BIN_EXE_registry-storage-filesystem"));
        let remote = match IpcDriver::spawn("filesystem", exe, &parameters).await {
            Ok(driver) => driver,
            Err(e) => panic!("cannot start {}: {e}", exe.display()),
        };
        let (mut find, mut in_process, mut over_ipc) = (Vec::new(), Vec::new(), Vec::new());
        let mut entries = (0, 0, 0);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            entries.0 = find_entries(tmp.path());
            find.push(t.elapsed());
            let t = Instant::now();
            entries.1 = walk_entries(&local).await;
            in_process.push(t.elapsed());
            let t = Instant::now();
            entries.2 = walk_entries(&remote).await;
            over_ipc.push(t.elapsed());
        }
        let (find, in_process, over_ipc) = (median(find), median(in_process), median(over_ipc));
        println!(
            "walk of a registry-shaped tree: {made} files; entries: find {} (with the root), \
             walk {} in process, {} over IPC; median of {ROUNDS} rounds",
            entries.0, entries.1, entries.2
        );
        println!();
        println!("| walk | median | vs `find` | vs in process |");
        println!("|---|---:|---:|---:|");
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!("| `find` | {:.0} ms | 1.00× | |", ms(find));
        println!(
            "| in process | {:.0} ms | {:.2}× | 1.00× |",
            ms(in_process),
            ms(in_process) / ms(find)
        );
        println!(
            "| over IPC | {:.0} ms | {:.2}× | {:.2}× |",
            ms(over_ipc),
            ms(over_ipc) / ms(find),
            ms(over_ipc) / ms(in_process)
        );
    });
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Lines `find` prints for the tree (every entry, the root among them).
fn find_entries(root: &Path) -> usize {
    let output = Command::new("find")
        .arg(root)
        .stderr(Stdio::inherit())
        .output();
    match output {
        Ok(out) if out.status.success() => out.stdout.iter().filter(|b| **b == b'\n').count(),
        Ok(out) => panic!("find failed: {}", out.status),
        Err(e) => panic!("cannot run find: {e}"),
    }
}

async fn walk_entries(driver: &dyn StorageDriver) -> usize {
    let mut count = 0;
    let walked = driver
        .walk("/", &WalkOptions::default(), &mut |_| {
            count += 1;
            WalkControl::Continue
        })
        .await;
    if let Err(e) = walked {
        panic!("walk failed: {e}");
    }
    count
}

/// A registry's tree under `root`, of about `files` files: images of three layers, a config
/// and a manifest (blobs), their layer and revision links, and a tag, in 50 repositories.
/// Returns how many files it wrote.
fn registry_tree(root: &Path, files: usize) -> usize {
    let v2 = root.join("docker/registry/v2");
    let mut written = 0;
    let mut image = 0_u64;
    let write = |path: &Path, content: &str| {
        if let Some(parent) = path.parent()
            && let Err(e) = fs::create_dir_all(parent)
        {
            panic!("cannot create {}: {e}", parent.display());
        }
        if let Err(e) = fs::write(path, content) {
            panic!("cannot write {}: {e}", path.display());
        }
    };
    while written < files {
        let repo = v2.join(format!("repositories/library/app-{}", image % 50));
        let digest = |i: u64| {
            format!(
                "{:064x}",
                (image << 8 | i).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            )
        };
        for part in 0..5 {
            let d = digest(part);
            write(&v2.join(format!("blobs/sha256/{}/{d}/data", &d[..2])), &d);
            written += 1;
            if part < 4 {
                write(&repo.join(format!("_layers/sha256/{d}/link")), &d);
                written += 1;
            }
        }
        let manifest = digest(4);
        write(
            &repo.join(format!("_manifests/revisions/sha256/{manifest}/link")),
            &manifest,
        );
        let tag = repo.join(format!("_manifests/tags/v{image}"));
        write(&tag.join("current/link"), &manifest);
        write(
            &tag.join(format!("index/sha256/{manifest}/link")),
            &manifest,
        );
        written += 3;
        image += 1;
    }
    written
}
