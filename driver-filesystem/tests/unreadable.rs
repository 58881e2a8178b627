//! A directory the driver cannot read makes `list`, `walk` and `stat` fail with an error
//! naming that directory, not the one asked for.
//!
//! Permissions do not stop root, so when the tests run as root this test runs itself again as
//! `nobody` through `setpriv` (util-linux).

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use bytes::Bytes;
use driver_filesystem::{FilesystemConfig, FilesystemDriver};
use storagedriver::{StorageDriver, WalkControl, WalkOptions};

/// Set in the re-run as `nobody`.
const AS_NOBODY: &str = "DRIVER_FILESYSTEM_UNREADABLE_AS_NOBODY";

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn an_unreadable_directory_is_named_in_the_error() {
    if running_as_root() && std::env::var_os(AS_NOBODY).is_none() {
        let exe = std::env::current_exe().expect("the test executable");
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(exe)
            .args([
                "--exact",
                "an_unreadable_directory_is_named_in_the_error",
                "--nocapture",
            ])
            .env(AS_NOBODY, "1")
            .env("TMPDIR", "/tmp")
            .output()
            .expect("setpriv (util-linux) runs the test as nobody");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the run as nobody failed:\n{stdout}\n{stderr}"
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(check());
}

async fn check() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let d = FilesystemDriver::new(FilesystemConfig::new(dir.path()).with_fsync(false))
        .expect("a driver");
    d.put_content("/open/f", Bytes::from_static(b"x"))
        .await
        .expect("put");
    d.put_content("/a/locked/g", Bytes::from_static(b"x"))
        .await
        .expect("put");
    let locked = dir.path().join("a/locked");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");

    let list = d.list("/").await;
    let walk = d
        .walk("/", &WalkOptions::default(), &mut |_| WalkControl::Continue)
        .await;
    let stat = d.stat("/a").await;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    for (what, result) in [
        ("list", list.map(|_| ())),
        ("walk", walk),
        ("stat", stat.map(|_| ())),
    ] {
        let err = result.expect_err("an unreadable directory below");
        assert_eq!(err.path(), Some("/a/locked"), "{what}: {err}");
        assert!(err.to_string().contains("/a/locked"), "{what}: {err}");
        println!("{what}: {err}");
    }
}
