//! Symlinks in the tree never lead the driver outside its root: every operation, on a symlink
//! to a directory outside, on a symlink to a file outside, on an absolute symlink, and while
//! another thread swaps a symlink in and out. Symlinks that stay inside the root work.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use driver_filesystem::{FilesystemConfig, FilesystemDriver};
use futures::TryStreamExt;
use storagedriver::{Error, StorageDriver, WalkControl, WalkOptions};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A root beside a directory `outside` that holds `secret`, and the driver over the root.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    driver: FilesystemDriver,
}

fn tree() -> Result<Tree, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&root)?;
    fs::create_dir_all(&outside)?;
    fs::write(outside.join("secret"), b"outside the root")?;
    let driver = FilesystemDriver::new(FilesystemConfig::new(&root).with_fsync(false))?;
    Ok(Tree {
        _dir: dir,
        root,
        outside,
        driver,
    })
}

/// Every name in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The error of an operation refused because its path leads outside the root.
fn assert_refused<T: std::fmt::Debug>(what: &str, path: &str, result: storagedriver::Result<T>) {
    match result {
        Err(Error::Backend {
            ref driver,
            path: Some(ref at),
            ..
        }) if driver == "filesystem" && at == path => {
            let message = result.expect_err("an error").to_string();
            assert!(message.contains("outside the root"), "{what}: {message}");
        }
        other => panic!("{what} {path}: expected a refusal naming {path}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_symlink_to_a_directory_outside_leads_nowhere() -> TestResult {
    let t = tree()?;
    symlink(&t.outside, t.root.join("link"))?;
    t.driver
        .put_content("/inside", Bytes::from_static(b"in"))
        .await?;
    let d = &t.driver;

    assert_refused(
        "get_content",
        "/link/secret",
        d.get_content("/link/secret").await,
    );
    assert_refused(
        "put_content",
        "/link/planted",
        d.put_content("/link/planted", Bytes::from_static(b"x"))
            .await,
    );
    assert_refused("delete", "/link/secret", d.delete("/link/secret").await);
    assert_refused("stat", "/link/secret", d.stat("/link/secret").await);
    assert_refused("stat", "/link", d.stat("/link").await);
    assert_refused("list", "/link", d.list("/link").await);
    assert_refused(
        "reader",
        "/link/secret",
        d.reader("/link/secret", 0).await.map(|_| ()),
    );
    assert_refused(
        "writer",
        "/link/new",
        d.writer("/link/new", false).await.map(|_| ()),
    );
    assert_refused(
        "writer",
        "/link/secret",
        d.writer("/link/secret", true).await.map(|_| ()),
    );
    assert_refused(
        "rename from",
        "/link/secret",
        d.rename("/link/secret", "/stolen").await,
    );
    assert_refused(
        "rename to",
        "/link/moved",
        d.rename("/inside", "/link/moved").await,
    );

    // Outside, nothing was read, written, moved or removed; inside, the symlink is not shown.
    assert_eq!(listing(&t.outside), ["secret"]);
    assert_eq!(fs::read(t.outside.join("secret"))?, b"outside the root");
    assert_eq!(d.list("/").await?, ["/inside"]);
    assert!(
        d.get_content("/stolen")
            .await
            .is_err_and(|e| e.is_not_found())
    );
    assert_eq!(&d.get_content("/inside").await?[..], b"in");
    let mut walked = Vec::new();
    d.walk("/", &WalkOptions::default(), &mut |info| {
        walked.push(info.path.clone());
        WalkControl::Continue
    })
    .await?;
    assert_eq!(walked, ["/inside"]);
    Ok(())
}

#[tokio::test]
async fn a_symlink_to_a_file_outside_is_neither_read_nor_written_through() -> TestResult {
    let t = tree()?;
    symlink(t.outside.join("secret"), t.root.join("file"))?;
    symlink("../outside/secret", t.root.join("relative"))?;
    let d = &t.driver;
    for path in ["/file", "/relative"] {
        assert_refused("get_content", path, d.get_content(path).await);
        assert_refused("reader", path, d.reader(path, 0).await.map(|_| ()));
        assert_refused("stat", path, d.stat(path).await);
        assert_refused("delete", path, d.delete(path).await);
        assert_refused("writer", path, d.writer(path, true).await.map(|_| ()));
    }
    assert_eq!(d.list("/").await?, Vec::<String>::new());
    // A put replaces the symlink itself; the file it pointed at stays as it was.
    d.put_content("/file", Bytes::from_static(b"replaced"))
        .await?;
    assert_eq!(&d.get_content("/file").await?[..], b"replaced");
    assert!(!fs::symlink_metadata(t.root.join("file"))?.is_symlink());
    let mut w = d.writer("/relative", false).await?;
    w.write(Bytes::from_static(b"committed over the link"))
        .await?;
    w.commit().await?;
    assert_eq!(
        &d.get_content("/relative").await?[..],
        b"committed over the link"
    );
    assert_eq!(fs::read(t.outside.join("secret"))?, b"outside the root");
    assert_eq!(listing(&t.outside), ["secret"]);
    Ok(())
}

#[tokio::test]
async fn symlinks_that_stay_inside_the_root_are_followed() -> TestResult {
    let t = tree()?;
    let d = &t.driver;
    d.put_content("/real/f", Bytes::from_static(b"content"))
        .await?;
    symlink("real", t.root.join("alias"))?;
    symlink("real/f", t.root.join("f-alias"))?;
    assert_eq!(&d.get_content("/alias/f").await?[..], b"content");
    assert_eq!(&d.get_content("/f-alias").await?[..], b"content");
    d.put_content("/alias/g", Bytes::from_static(b"through the alias"))
        .await?;
    assert_eq!(fs::read(t.root.join("real/g"))?, b"through the alias");
    let chunks: Vec<Bytes> = d.reader("/alias/g", 8).await?.try_collect().await?;
    assert_eq!(chunks.concat(), b"the alias");
    // A symlink to a file is listed as that file; a symlink to a directory is not walked into.
    assert_eq!(d.list("/").await?, ["/f-alias", "/real"]);
    // An absolute symlink is refused even when it points inside: resolution stays relative.
    symlink(t.root.join("real"), t.root.join("absolute"))?;
    assert_refused(
        "get_content",
        "/absolute/f",
        d.get_content("/absolute/f").await,
    );
    Ok(())
}

#[tokio::test]
async fn the_root_itself_may_be_a_symlink() -> TestResult {
    let dir = tempfile::tempdir()?;
    fs::create_dir(dir.path().join("real-root"))?;
    symlink("real-root", dir.path().join("root-link"))?;
    let d = FilesystemDriver::new(
        FilesystemConfig::new(dir.path().join("root-link")).with_fsync(false),
    )?;
    d.put_content("/a/b", Bytes::from_static(b"x")).await?;
    assert!(dir.path().join("real-root/a/b").is_file());
    assert_eq!(d.list("/a").await?, ["/a/b"]);
    Ok(())
}

/// A thread swaps `/swap` between a real directory and a symlink to the outside as fast as it
/// can while the driver reads, writes and deletes below it: no call ever reaches outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_swapped_in_during_calls_never_wins() -> TestResult {
    let t = tree()?;
    let d = t.driver.clone();
    let swap = t.root.join("swap");
    let staged = t.root.join("swap-staged");
    fs::create_dir(&swap)?;
    fs::write(swap.join("secret"), b"inside")?;
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, swap, staged, outside) = (
            Arc::clone(&stop),
            swap.clone(),
            staged.clone(),
            t.outside.clone(),
        );
        std::thread::spawn(move || -> std::io::Result<u64> {
            let away = swap.with_extension("away");
            let mut swaps = 0;
            while !stop.load(Ordering::Relaxed) {
                // The symlink replaces the directory (which the driver may also prune or
                // recreate meanwhile), then the directory comes back.
                let _ = fs::remove_file(&staged);
                symlink(&outside, &staged)?;
                let moved = fs::rename(&swap, &away).is_ok();
                if fs::rename(&staged, &swap).is_ok() {
                    swaps += 1;
                    fs::remove_file(&swap)?;
                }
                if moved && fs::rename(&away, &swap).is_err() {
                    let _ = fs::remove_dir_all(&away);
                }
            }
            Ok(swaps)
        })
    };
    let deadline = Instant::now() + Duration::from_millis(1500);
    let (mut calls, mut reads_inside) = (0u64, 0u64);
    while Instant::now() < deadline {
        if let Ok(content) = d.get_content("/swap/secret").await {
            assert_eq!(&content[..], b"inside", "read through the swapped symlink");
            reads_inside += 1;
        }
        let _ = d
            .put_content("/swap/planted", Bytes::from_static(b"x"))
            .await;
        let _ = d.delete("/swap/planted").await;
        let _ = d.delete("/swap/secret").await;
        let _ = d
            .put_content("/swap/secret", Bytes::from_static(b"inside"))
            .await;
        calls += 5;
        assert_eq!(
            listing(&t.outside),
            ["secret"],
            "something was written outside"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper
        .join()
        .map_err(|_| "the swapping thread panicked")??;
    println!("{calls} calls against {swaps} swaps; {reads_inside} reads found the inside file");
    assert_eq!(fs::read(t.outside.join("secret"))?, b"outside the root");
    assert_eq!(listing(&t.outside), ["secret"]);
    assert!(swaps > 0);
    Ok(())
}
