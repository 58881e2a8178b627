//! The filesystem driver's hardening, over IPC through `registry-storage-filesystem`: twenty
//! `kill -9`s in the middle of a 32 MiB `put_content` leave no growth (what the killed puts
//! leave never grows past one staging slot, the next put of the path takes it back, and a
//! delete of the path removes it); a symlink out of the root is refused there too; a relative
//! root is refused at start-up, before the child can resolve it against its own working
//! directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use storagedriver::{Parameters, StorageDriver};
use storagedriver_ipc::IpcDriver;

const EXE: &str = env!("CARGO_BIN_EXE_registry-storage-filesystem");

const SIZE: usize = 32 << 20;

/// Every regular file below `dir`, with its size.
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(md) = entry.metadata() else { continue };
            if md.is_dir() {
                pending.push(entry.path());
            } else {
                found.push((entry.path(), md.len()));
            }
        }
    }
    found.sort();
    found
}

async fn spawn(root: &Path) -> IpcDriver {
    let parameters: Parameters = serde_json::from_value(serde_json::json!({
        "rootdirectory": root, "fsync": false,
    }))
    .expect("a parameter map");
    match IpcDriver::spawn("filesystem", Path::new(EXE), &parameters).await {
        Ok(driver) => driver,
        Err(e) => panic!("cannot start {EXE}: {e}"),
    }
}

/// Waits until a staging slot of `/big/blob` holds some bytes, or the put ended.
async fn wait_for_a_partial_slot(
    root: &Path,
    put: &tokio::task::JoinHandle<storagedriver::Result<()>>,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !put.is_finished() {
        let partial = files(root)
            .iter()
            .any(|(path, len)| *len > 0 && path.to_string_lossy().contains("blob#tmp-"));
        if partial {
            return;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_killed_puts_leave_no_growth() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path();
    let payload = Bytes::from(vec![0x5a; SIZE]);
    let mut totals = Vec::new();
    let mut killed_mid_write = 0;
    for kill in 0..20 {
        let driver = spawn(root).await;
        let pid = driver.child_pid().expect("a child pid");
        let put = {
            let (driver, payload) = (driver.clone(), payload.clone());
            tokio::spawn(async move { driver.put_content("/big/blob", payload).await })
        };
        wait_for_a_partial_slot(root, &put).await;
        let status = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -9 {pid}");
        let result = put.await.expect("the put task");
        if result.is_err() {
            killed_mid_write += 1;
        }
        drop(driver);
        let left = files(root);
        let slots = left
            .iter()
            .filter(|(path, _)| path.to_string_lossy().contains("#tmp-"))
            .count();
        let total: u64 = left.iter().map(|(_, len)| len).sum();
        assert!(
            slots <= 1,
            "kill {kill}: {slots} staging slots left behind: {left:?}"
        );
        assert!(
            total <= 2 * SIZE as u64,
            "kill {kill}: {total} bytes left: {left:?}"
        );
        totals.push(total);
    }
    println!(
        "20 kills ({killed_mid_write} in the middle of the write); bytes under the root after each: {totals:?}"
    );
    assert!(
        killed_mid_write >= 15,
        "the drill must hit the write: {killed_mid_write}"
    );

    // The next put takes the slot back; only the blob remains.
    let driver = spawn(root).await;
    driver
        .put_content("/big/blob", payload.clone())
        .await
        .expect("a put after the kills");
    let left = files(root);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].1, SIZE as u64);

    // A kill, then a delete of the path: the slot goes with it.
    let pid = driver.child_pid().expect("a child pid");
    let put = {
        let (driver, payload) = (driver.clone(), payload.clone());
        tokio::spawn(async move { driver.put_content("/big/other", payload).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    let _ = put.await;
    let driver = spawn(root).await;
    let _ = driver.delete("/big/other").await;
    driver.delete("/big/blob").await.expect("delete");
    assert_eq!(files(root), Vec::<(PathBuf, u64)>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_out_of_the_root_is_refused_over_ipc() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&root).expect("root");
    std::fs::create_dir_all(&outside).expect("outside");
    std::fs::write(outside.join("secret"), b"outside").expect("secret");
    std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");
    let driver = spawn(&root).await;
    let err = driver
        .get_content("/link/secret")
        .await
        .expect_err("a read through the symlink");
    let message = err.to_string();
    assert!(
        message.contains("/link/secret") && message.contains("outside the root"),
        "{message}"
    );
    let err = driver
        .put_content("/link/planted", Bytes::from_static(b"x"))
        .await
        .expect_err("a write through the symlink");
    assert!(err.to_string().contains("outside the root"), "{err}");
    assert!(!outside.join("planted").exists());
}

#[tokio::test]
async fn a_relative_root_is_refused_at_start_up() {
    let parameters: Parameters = serde_json::from_value(serde_json::json!({
        "rootdirectory": "relative/registry",
    }))
    .expect("a parameter map");
    let err = IpcDriver::spawn("filesystem", Path::new(EXE), &parameters)
        .await
        .expect_err("a relative root");
    assert!(
        err.to_string().contains("expected an absolute path"),
        "{err}"
    );
}
