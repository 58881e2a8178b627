//! A `delete` racing writes below it, on a multi-thread runtime: the delete ends with Ok, a
//! racing write either survives whole or is gone whole, and no write reports an error after
//! it succeeded (with `fsync` on, the directory flush used to find its directory pruned).
//! The suite's `concurrent_mixed_operations` holds every driver to the same rules with random
//! operations; these are the targeted reproductions.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use driver_filesystem::{FilesystemConfig, FilesystemDriver};
use storagedriver::{Error, StorageDriver};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn driver(root: &Path, fsync: bool) -> FilesystemDriver {
    FilesystemDriver::new(FilesystemConfig::new(root).with_fsync(fsync)).expect("a driver")
}

/// 100 files in `/d`, a task putting `/d/zz` in a loop, then `delete("/d")`: 200 times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_of_a_directory_being_written_ends_ok() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path(), false);
    let payload = Bytes::from(vec![b'z'; 4096]);
    let (mut deleted, mut survived) = (0, 0);
    for _ in 0..200 {
        for i in 0..100 {
            d.put_content(&format!("/d/f{i:03}"), Bytes::from_static(b"x"))
                .await?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (d, stop, payload) = (d.clone(), Arc::clone(&stop), payload.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    d.put_content("/d/zz", payload.clone()).await?;
                    tokio::task::yield_now().await;
                }
                Ok::<_, Error>(())
            })
        };
        tokio::task::yield_now().await;
        let result = d.delete("/d").await;
        stop.store(true, Ordering::Relaxed);
        writer.await??;
        assert!(
            result.is_ok(),
            "delete(/d) racing a put below it: {result:?}"
        );
        deleted += 1;
        for i in 0..100 {
            let path = format!("/d/f{i:03}");
            assert!(
                d.get_content(&path).await.is_err_and(|e| e.is_not_found()),
                "{path} survived the delete"
            );
        }
        match d.get_content("/d/zz").await {
            Ok(content) => {
                assert_eq!(content, payload, "a torn /d/zz");
                survived += 1;
            }
            Err(e) => assert!(e.is_not_found(), "{e}"),
        }
        let _ = d.delete("/d").await;
    }
    println!("{deleted} deletes, each Ok; /d/zz written after the delete {survived} times");
    Ok(())
}

/// With `fsync` on, puts, renames and writer commits into a directory that another task
/// deletes again and again: none reports an error after it took effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_into_a_directory_being_deleted_report_no_false_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path(), true);
    let stop = Arc::new(AtomicBool::new(false));
    let deleter = {
        let (d, stop) = (d.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut deletes = 0u32;
            while !stop.load(Ordering::Relaxed) {
                match d.delete("/hot").await {
                    Ok(()) => deletes += 1,
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
                tokio::task::yield_now().await;
            }
            Ok(deletes)
        })
    };
    let mut tasks = Vec::new();
    for t in 0..3 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let mut superseded = 0u32;
            for i in 0..150 {
                let payload = Bytes::from(format!("task {t} op {i}"));
                d.put_content(&format!("/hot/a/b/put{t}"), payload.clone())
                    .await?;
                let source = format!("/cold/src{t}");
                d.put_content(&source, payload.clone()).await?;
                d.rename(&source, &format!("/hot/c/moved{t}")).await?;
                let mut w = d.writer(&format!("/hot/w{t}"), false).await?;
                w.write(payload).await?;
                match w.commit().await {
                    Ok(()) => {}
                    // The delete took the upload before the commit: the writer was superseded.
                    Err(Error::WriterFinished { state, .. }) if state == "superseded" => {
                        superseded += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, Error>(superseded)
        }));
    }
    let mut superseded = 0;
    for task in tasks {
        superseded += task.await??;
    }
    stop.store(true, Ordering::Relaxed);
    let deletes = deleter.await??;
    println!(
        "{deletes} deletes of /hot raced 1350 writes; {superseded} writers lost their upload to a delete"
    );
    Ok(())
}

/// Puts and file deletes deep in a tree, whose deletes prune the directories the puts are
/// creating: every put succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_racing_pruning_deletes_all_succeed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path(), false);
    let mut tasks = Vec::new();
    for t in 0..4 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..300 {
                let path = format!("/n/a/b/c{}/f{t}", i % 3);
                d.put_content(&path, Bytes::from_static(b"x")).await?;
                match d.delete(&path).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
