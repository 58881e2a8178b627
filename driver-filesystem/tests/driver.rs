//! Behaviour specific to the filesystem driver: staging files, visibility, resuming across
//! instances, crash leftovers, conflicts, parameters and construction.

use std::fs;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use driver_filesystem::{FilesystemConfig, FilesystemDriver, FilesystemFactory};
use futures::TryStreamExt;
use storagedriver::{DriverFactory, Error, Parameters, StorageDriver};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn driver(root: &Path) -> FilesystemDriver {
    FilesystemDriver::new(FilesystemConfig::new(root).with_fsync(false)).expect("a driver")
}

fn params(value: serde_json::Value) -> Parameters {
    serde_json::from_value(value).expect("a parameter map")
}

async fn read_all(d: &FilesystemDriver, path: &str, offset: u64) -> storagedriver::Result<Vec<u8>> {
    let chunks: Vec<Bytes> = d.reader(path, offset).await?.try_collect().await?;
    Ok(chunks.concat())
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn put_get_and_layout_on_disk() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    d.put_content("/a/b/c", Bytes::from_static(b"hello"))
        .await?;
    assert_eq!(fs::read(dir.path().join("a/b/c"))?, b"hello");
    assert_eq!(&d.get_content("/a/b/c").await?[..], b"hello");
    // No staging file is left behind.
    assert_eq!(names(&dir.path().join("a/b")), ["c"]);
    d.put_content("/a/b/c", Bytes::from_static(b"x")).await?;
    assert_eq!(&d.get_content("/a/b/c").await?[..], b"x");
    d.put_content("/empty", Bytes::new()).await?;
    assert_eq!(d.get_content("/empty").await?.len(), 0);
    Ok(())
}

#[tokio::test]
async fn fsync_on_works_too() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = FilesystemDriver::with_root(dir.path())?;
    assert!(d.config().fsync());
    d.put_content("/a/b", Bytes::from_static(b"durable"))
        .await?;
    let mut w = d.writer("/a/c", false).await?;
    w.write(Bytes::from_static(b"up")).await?;
    w.close().await?;
    let mut w = d.writer("/a/c", true).await?;
    w.write(Bytes::from_static(b"load")).await?;
    w.commit().await?;
    assert_eq!(&d.get_content("/a/c").await?[..], b"upload");
    d.rename("/a/c", "/x/y").await?;
    assert_eq!(&d.get_content("/x/y").await?[..], b"upload");
    Ok(())
}

#[tokio::test]
async fn missing_and_directories_are_not_found() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    assert!(
        d.get_content("/nope")
            .await
            .is_err_and(|e| e.is_not_found())
    );
    d.put_content("/dir/file", Bytes::from_static(b"1")).await?;
    assert!(d.get_content("/dir").await.is_err_and(|e| e.is_not_found()));
    assert!(d.reader("/dir", 0).await.is_err_and(|e| e.is_not_found()));
    assert!(d.reader("/nope", 10).await.is_err_and(|e| e.is_not_found()));
    // Below a file.
    assert!(
        d.get_content("/dir/file/x")
            .await
            .is_err_and(|e| e.is_not_found())
    );
    assert!(d.stat("/dir/file/x").await.is_err_and(|e| e.is_not_found()));
    assert!(d.list("/dir/file").await.is_err_and(|e| e.is_not_found()));
    assert!(
        d.delete("/dir/file/x")
            .await
            .is_err_and(|e| e.is_not_found())
    );
    Ok(())
}

#[tokio::test]
async fn reader_offsets_and_chunks() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    let content: Vec<u8> = (0..3 * (1 << 20) + 17).map(|i| (i % 251) as u8).collect();
    d.put_content("/big", Bytes::from(content.clone())).await?;
    let size = content.len() as u64;
    for offset in [0, 1, size / 2, (1 << 20) - 1, 1 << 20, size - 1] {
        assert_eq!(
            read_all(&d, "/big", offset).await?,
            &content[offset as usize..]
        );
    }
    assert!(read_all(&d, "/big", size).await?.is_empty());
    assert!(read_all(&d, "/big", size + 100).await?.is_empty());
    // Memory is bounded: no chunk is larger than 1 MiB.
    let chunks: Vec<Bytes> = d.reader("/big", 0).await?.try_collect().await?;
    assert!(chunks.len() >= 4);
    assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= 1 << 20));
    // A reader keeps seeing the content it opened, even when it is replaced.
    let stream = d.reader("/big", 0).await?;
    d.put_content("/big", Bytes::from_static(b"new")).await?;
    let old: Vec<Bytes> = stream.try_collect().await?;
    assert_eq!(old.concat(), content);
    Ok(())
}

#[tokio::test]
async fn staging_files_are_never_listed_or_stat_ed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    d.put_content("/a/file", Bytes::from_static(b"1")).await?;
    let mut w = d.writer("/a/upload", false).await?;
    w.write(Bytes::from_static(b"pending")).await?;
    w.close().await?;
    assert!(dir.path().join("a/upload#upload").is_file());
    assert_eq!(d.list("/a").await?, ["/a/file"]);
    assert!(d.stat("/a/upload").await.is_err_and(|e| e.is_not_found()));
    assert!(
        d.get_content("/a/upload")
            .await
            .is_err_and(|e| e.is_not_found())
    );
    // Staging names cannot even be asked for.
    for bad in ["/a/upload#upload", "/a/file#put-1-1"] {
        assert!(matches!(d.stat(bad).await, Err(Error::InvalidPath { .. })));
    }
    let mut walked = Vec::new();
    d.walk("/", &Default::default(), &mut |info| {
        walked.push(info.path.clone());
        storagedriver::WalkControl::Continue
    })
    .await?;
    assert_eq!(walked, ["/a", "/a/file"]);
    Ok(())
}

#[tokio::test]
async fn a_directory_holding_only_an_upload_is_invisible() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    // An empty store.
    assert_eq!(d.list("/").await?, Vec::<String>::new());
    assert!(d.stat("/").await.is_err_and(|e| e.is_not_found()));

    let mut w = d.writer("/x/y/z", false).await?;
    w.write(Bytes::from_static(b"abc")).await?;
    w.close().await?;
    assert!(dir.path().join("x/y/z#upload").is_file());
    assert_eq!(d.list("/").await?, Vec::<String>::new());
    assert!(d.stat("/").await.is_err_and(|e| e.is_not_found()));
    assert!(d.list("/x").await.is_err_and(|e| e.is_not_found()));
    assert!(d.stat("/x/y").await.is_err_and(|e| e.is_not_found()));
    assert!(d.delete("/x").await.is_err_and(|e| e.is_not_found()));
    // Empty directories are invisible too.
    fs::create_dir_all(dir.path().join("e/f/g"))?;
    assert_eq!(d.list("/").await?, Vec::<String>::new());
    assert!(d.stat("/e").await.is_err_and(|e| e.is_not_found()));

    // Once something is committed, the directories appear.
    let mut w = d.writer("/x/y/z", true).await?;
    assert_eq!(w.size(), 3);
    w.commit().await?;
    assert_eq!(d.list("/").await?, ["/x"]);
    assert!(d.stat("/").await?.is_dir);
    assert!(d.stat("/x/y").await?.is_dir);
    assert_eq!(d.stat("/x/y/z").await?.size, 3);
    Ok(())
}

#[tokio::test]
async fn resume_from_a_new_driver_instance() -> TestResult {
    let dir = tempfile::tempdir()?;
    let first = driver(dir.path());
    let mut w = first.writer("/uploads/blob", false).await?;
    let part: Vec<u8> = (0..5 * (1 << 20)).map(|i| (i % 7) as u8).collect();
    w.write(Bytes::from(part.clone())).await?;
    w.write(Bytes::from_static(b"tail")).await?;
    assert_eq!(w.size(), part.len() as u64 + 4);
    w.close().await?;
    drop(first);

    let second = driver(dir.path());
    let mut w = second.writer("/uploads/blob", true).await?;
    assert_eq!(w.size(), part.len() as u64 + 4);
    for _ in 0..100 {
        w.write(Bytes::from_static(b"0123456789abcdef0123456789abcdef"))
            .await?;
    }
    assert_eq!(w.size(), part.len() as u64 + 4 + 3200);
    w.commit().await?;
    assert_eq!(
        w.size(),
        part.len() as u64 + 4 + 3200,
        "size() after commit"
    );
    let got = second.get_content("/uploads/blob").await?;
    assert_eq!(got.len() as u64, part.len() as u64 + 4 + 3200);
    assert_eq!(&got[..part.len()], &part[..]);
    assert_eq!(&got[part.len()..part.len() + 4], b"tail");
    assert_eq!(names(&dir.path().join("uploads")), ["blob"]);
    Ok(())
}

#[tokio::test]
async fn writer_lifecycle() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    d.put_content("/f", Bytes::from_static(b"old")).await?;

    // The committed content stays readable until commit.
    let mut w = d.writer("/f", false).await?;
    w.write(Bytes::from_static(b"new content")).await?;
    assert_eq!(&d.get_content("/f").await?[..], b"old");
    w.commit().await?;
    assert_eq!(&d.get_content("/f").await?[..], b"new content");
    // After commit: write/commit/cancel fail, close is a no-op.
    assert!(matches!(
        w.write(Bytes::from_static(b"x")).await,
        Err(Error::WriterFinished { .. })
    ));
    assert!(matches!(
        w.commit().await,
        Err(Error::WriterFinished { .. })
    ));
    assert!(matches!(
        w.cancel().await,
        Err(Error::WriterFinished { .. })
    ));
    w.close().await?;

    // Cancel drops the upload and leaves committed content alone.
    let mut w = d.writer("/f", false).await?;
    w.write(Bytes::from_static(b"discard")).await?;
    w.close().await?;
    let mut w = d.writer("/f", true).await?;
    assert_eq!(w.size(), 7);
    w.cancel().await?;
    assert!(matches!(
        w.write(Bytes::from_static(b"x")).await,
        Err(Error::WriterFinished { .. })
    ));
    w.close().await?;
    assert_eq!(&d.get_content("/f").await?[..], b"new content");
    assert!(!dir.path().join("f#upload").exists());
    // Cancel of an upload in a fresh directory removes the directory too.
    let mut w = d.writer("/g/h/i", false).await?;
    w.cancel().await?;
    assert!(!dir.path().join("g").exists());

    // Append: committed non-empty content is unsupported; nothing is not found.
    assert!(matches!(
        d.writer("/f", true).await,
        Err(Error::Unsupported { .. })
    ));
    assert!(
        d.writer("/none", true)
            .await
            .is_err_and(|e| e.is_not_found())
    );
    d.put_content("/dirs/inner", Bytes::from_static(b"1"))
        .await?;
    assert!(
        d.writer("/dirs", true)
            .await
            .is_err_and(|e| e.is_not_found())
    );

    // Zero-byte put, then append; zero-byte writer, then append.
    d.put_content("/zero", Bytes::new()).await?;
    let mut w = d.writer("/zero", true).await?;
    assert_eq!(w.size(), 0);
    w.write(Bytes::from_static(b"more")).await?;
    w.commit().await?;
    assert_eq!(&d.get_content("/zero").await?[..], b"more");
    let mut w = d.writer("/zw", false).await?;
    w.commit().await?;
    assert_eq!(d.stat("/zw").await?.size, 0);
    let mut w = d.writer("/zw", true).await?;
    w.write(Bytes::from_static(b"z")).await?;
    w.commit().await?;
    assert_eq!(&d.get_content("/zw").await?[..], b"z");

    // A dropped writer keeps what it flushed and never touches committed content.
    let mut w = d.writer("/f", false).await?;
    w.write(Bytes::from(vec![1u8; 5 << 20])).await?;
    w.write(Bytes::from_static(b"unflushed")).await?;
    drop(w);
    assert_eq!(&d.get_content("/f").await?[..], b"new content");
    let mut w = d.writer("/f", true).await?;
    assert_eq!(w.size(), 5 << 20);
    w.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn crash_leftovers_are_hidden_and_reused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    fs::create_dir_all(root.join("a/tmp-only"))?;
    fs::write(root.join("a/b#tmp-0"), b"half a fi")?;
    fs::write(root.join("a/tmp-only/c#tmp-3"), b"x")?;
    fs::write(root.join("a/\u{fc}n\u{ef}code"), b"foreign")?;
    fs::write(root.join("a/with space"), b"foreign")?;
    let d = driver(root);
    assert!(d.list("/a").await.is_err_and(|e| e.is_not_found()));
    assert_eq!(d.list("/").await?, Vec::<String>::new());
    // A put takes the slot a killed put left (nobody holds its lock) and publishes it.
    d.put_content("/a/b", Bytes::from_static(b"whole")).await?;
    assert!(!root.join("a/b#tmp-0").exists());
    assert_eq!(d.list("/a").await?, ["/a/b"]);
    assert_eq!(&d.get_content("/a/b").await?[..], b"whole");
    // Deleting a path takes back the slots left for it, whatever their numbers.
    for n in [0, 1, 2] {
        fs::write(root.join(format!("a/d#tmp-{n}")), b"stale")?;
    }
    d.put_content("/a/d", Bytes::from_static(b"fresh")).await?;
    assert_eq!(&d.get_content("/a/d").await?[..], b"fresh");
    assert_eq!(d.list("/a").await?, ["/a/b", "/a/d"]);
    d.delete("/a/d").await?;
    assert!(!names(&root.join("a")).iter().any(|n| n.starts_with("d#")));
    // Deleting the directory sweeps the leftovers along with it.
    d.delete("/a").await?;
    assert!(!root.join("a").exists());
    Ok(())
}

#[tokio::test]
async fn file_directory_conflicts_change_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    d.put_content("/file", Bytes::from_static(b"f")).await?;
    d.put_content("/dir/child", Bytes::from_static(b"c"))
        .await?;

    // Below a file.
    let err = d.put_content("/file/below", Bytes::from_static(b"x")).await;
    assert!(matches!(err, Err(Error::Conflict { .. })), "{err:?}");
    let err = d
        .put_content("/file/deeper/below", Bytes::from_static(b"x"))
        .await;
    assert!(matches!(err, Err(Error::Conflict { .. })), "{err:?}");
    let err = d.writer("/file/below", false).await;
    assert!(matches!(err, Err(Error::Conflict { .. })), "{err:?}");
    // Where a directory is.
    let err = d.put_content("/dir", Bytes::from_static(b"x")).await;
    assert!(matches!(err, Err(Error::Conflict { .. })), "{err:?}");
    let mut w = d.writer("/dir", false).await?;
    w.write(Bytes::from_static(b"x")).await?;
    let err = w.commit().await;
    assert!(matches!(err, Err(Error::Conflict { .. })), "{err:?}");
    // The writer stays usable after a failed commit.
    w.cancel().await?;
    let err = d.rename("/file", "/dir").await;
    assert!(matches!(err, Err(Error::Conflict { .. })), "{err:?}");
    let err = d.rename("/file", "/file/x").await;
    assert!(matches!(err, Err(Error::Conflict { .. })), "{err:?}");

    assert_eq!(&d.get_content("/file").await?[..], b"f");
    assert_eq!(&d.get_content("/dir/child").await?[..], b"c");
    assert_eq!(d.list("/").await?, ["/dir", "/file"]);
    assert_eq!(names(dir.path()), ["dir", "file"]);
    assert_eq!(names(&dir.path().join("dir")), ["child"]);
    Ok(())
}

#[tokio::test]
async fn an_invisible_directory_is_replaced_by_a_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    let mut w = d.writer("/a/b/c", false).await?;
    w.write(Bytes::from_static(b"pending")).await?;
    w.close().await?;
    d.put_content("/a/b", Bytes::from_static(b"file")).await?;
    assert_eq!(&d.get_content("/a/b").await?[..], b"file");
    // The upload went with the directory: nothing to resume.
    assert!(
        d.writer("/a/b/c", true)
            .await
            .is_err_and(|e| e.is_not_found())
    );
    Ok(())
}

#[tokio::test]
async fn rename_rules() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    d.put_content("/src/deep/file", Bytes::from_static(b"content"))
        .await?;
    d.put_content("/dst", Bytes::from_static(b"old")).await?;

    // Missing source: not found, naming the source, destination untouched.
    let err = d.rename("/missing", "/dst").await;
    assert!(
        matches!(&err, Err(Error::PathNotFound { path, .. }) if path == "/missing"),
        "{err:?}"
    );
    assert_eq!(&d.get_content("/dst").await?[..], b"old");
    // A directory as the source.
    assert!(
        d.rename("/src", "/elsewhere")
            .await
            .is_err_and(|e| e.is_not_found())
    );
    // From below a file (Go: TestMoveInvalid).
    d.put_content("/notadir", Bytes::from_static(b"x")).await?;
    assert!(d.rename("/notadir/foo", "/notadir/bar").await.is_err());
    assert_eq!(&d.get_content("/notadir").await?[..], b"x");
    // To itself.
    d.rename("/dst", "/dst").await?;
    assert_eq!(&d.get_content("/dst").await?[..], b"old");

    // Overwrite, and empty source directories are pruned.
    d.rename("/src/deep/file", "/dst").await?;
    assert_eq!(&d.get_content("/dst").await?[..], b"content");
    assert!(!dir.path().join("src").exists());
    // Creates the destination's parents.
    d.rename("/dst", "/new/parent/dir/file").await?;
    assert_eq!(
        &d.get_content("/new/parent/dir/file").await?[..],
        b"content"
    );
    assert_eq!(d.list("/").await?, ["/new", "/notadir"]);
    Ok(())
}

#[tokio::test]
async fn delete_only_the_path_and_below() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    for p in ["/a/b", "/a/bc", "/a/b-c/x", "/a/b/x/y", "/a/b/z"] {
        if p == "/a/b" {
            continue;
        }
        d.put_content(p, Bytes::from_static(b"1")).await?;
    }
    let mut w = d.writer("/a/b/pending", false).await?;
    w.close().await?;
    d.delete("/a/b").await?;
    assert_eq!(d.list("/a").await?, ["/a/b-c", "/a/bc"]);
    assert!(!dir.path().join("a/b").exists());
    assert!(d.delete("/a/b").await.is_err_and(|e| e.is_not_found()));
    assert!(matches!(
        d.delete("/").await,
        Err(Error::InvalidPath { .. })
    ));
    d.delete("/a/bc").await?;
    d.delete("/a/b-c/x").await?;
    // Emptied directories are pruned up to (not including) the root.
    assert!(!dir.path().join("a").exists());
    assert!(dir.path().is_dir());
    assert_eq!(d.list("/").await?, Vec::<String>::new());
    Ok(())
}

#[tokio::test]
async fn delete_takes_the_paths_own_upload_but_not_a_lone_one() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    d.put_content("/f", Bytes::from_static(b"committed"))
        .await?;
    let mut w = d.writer("/f", false).await?;
    w.write(Bytes::from_static(b"pending")).await?;
    w.close().await?;
    d.delete("/f").await?;
    assert!(!dir.path().join("f#upload").exists());
    assert!(d.writer("/f", true).await.is_err_and(|e| e.is_not_found()));

    // Only an upload: nothing to delete, and the upload stays resumable.
    let mut w = d.writer("/g", false).await?;
    w.write(Bytes::from_static(b"pending")).await?;
    w.close().await?;
    assert!(d.delete("/g").await.is_err_and(|e| e.is_not_found()));
    let mut w = d.writer("/g", true).await?;
    assert_eq!(w.size(), 7);
    w.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn stat_and_mod_time() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    d.put_content("/d/f", Bytes::from_static(b"12345")).await?;
    let info = d.stat("/d/f").await?;
    assert_eq!(
        (info.path.as_str(), info.size, info.is_dir),
        ("/d/f", 5, false)
    );
    let dir_info = d.stat("/d").await?;
    assert_eq!(
        (dir_info.path.as_str(), dir_info.size, dir_info.is_dir),
        ("/d", 0, true)
    );
    std::thread::sleep(Duration::from_millis(20));
    d.put_content("/d/f", Bytes::from_static(b"1")).await?;
    let later = d.stat("/d/f").await?;
    assert!(later.mod_time > info.mod_time);
    assert_eq!(later.size, 1);
    Ok(())
}

#[tokio::test]
async fn concurrent_puts_leave_one_whole_payload() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    let payloads: Vec<Bytes> = (0..16u8).map(|i| Bytes::from(vec![i; 64 * 1024])).collect();
    let mut tasks = Vec::new();
    for p in payloads.clone() {
        let d = d.clone();
        tasks.push(tokio::spawn(async move { d.put_content("/one", p).await }));
    }
    for t in tasks {
        t.await??;
    }
    let got = d.get_content("/one").await?;
    assert!(payloads.contains(&got));
    assert_eq!(names(dir.path()), ["one"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_race_with_deletes_that_prune() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    for round in 0..50 {
        let path = format!("/race/{round}/deep/file");
        let other = format!("/race/{round}/deep/other");
        d.put_content(&other, Bytes::from_static(b"o")).await?;
        let (a, b) = tokio::join!(
            d.put_content(&path, Bytes::from_static(b"p")),
            d.delete(&other)
        );
        a?;
        b?;
        assert_eq!(&d.get_content(&path).await?[..], b"p");
    }
    Ok(())
}

#[tokio::test]
async fn url_for_is_unsupported() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    let err = d.url_for("/a", &Default::default()).await;
    assert!(matches!(err, Err(Error::Unsupported { .. })));
    let caps = d.capabilities();
    assert!(caps.persistent && caps.detects_file_dir_conflicts);
    assert!(!caps.url_for && !caps.append_to_committed);
    Ok(())
}

#[tokio::test]
async fn parameters() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("r");

    let config = FilesystemConfig::from_parameters(&params(serde_json::json!({})))?;
    assert_eq!(config, FilesystemConfig::default());
    assert_eq!(config.root_directory(), Path::new("/var/lib/registry"));
    assert_eq!(config.max_threads(), 100);
    assert!(config.fsync());

    let config = FilesystemConfig::from_parameters(&params(serde_json::json!({
        "rootdirectory": root, "maxthreads": 25, "fsync": false,
    })))?;
    assert_eq!((config.max_threads(), config.fsync()), (25, false));
    let config = FilesystemConfig::from_parameters(&params(serde_json::json!({
        "maxthreads": "64", "fsync": "TRUE",
    })))?;
    assert_eq!((config.max_threads(), config.fsync()), (64, true));

    let err = FilesystemConfig::from_parameters(&params(serde_json::json!({ "rootdir": "/x" })))
        .expect_err("an unknown key");
    assert!(
        matches!(&err, Error::InvalidParameter { key, .. } if key == "rootdir"),
        "{err}"
    );
    assert!(err.to_string().contains("filesystem"), "{err}");

    let err = FilesystemConfig::from_parameters(&params(serde_json::json!({ "maxthreads": "10" })))
        .expect_err("too few threads");
    assert!(
        matches!(&err, Error::InvalidParameter { key, .. } if key == "maxthreads"),
        "{err}"
    );
    assert!(err.to_string().contains("25"), "{err}");
    let err =
        FilesystemConfig::from_parameters(&params(serde_json::json!({ "maxthreads": "many" })))
            .expect_err("not a number");
    assert!(matches!(&err, Error::InvalidParameter { key, .. } if key == "maxthreads"));

    let err = FilesystemConfig::from_parameters(&params(serde_json::json!({ "fsync": "maybe" })))
        .expect_err("not a boolean");
    assert!(
        matches!(&err, Error::InvalidParameter { key, .. } if key == "fsync"),
        "{err}"
    );
    let err =
        FilesystemConfig::from_parameters(&params(serde_json::json!({ "rootdirectory": "" })))
            .expect_err("an empty root");
    assert!(matches!(&err, Error::InvalidParameter { key, .. } if key == "rootdirectory"));

    // A relative root would resolve against whatever directory the process runs in.
    for relative in ["var/lib/registry", "./r", "../r"] {
        let err = FilesystemConfig::from_parameters(&params(
            serde_json::json!({ "rootdirectory": relative }),
        ))
        .expect_err("a relative root");
        assert!(
            matches!(&err, Error::InvalidParameter { key, .. } if key == "rootdirectory"),
            "{err}"
        );
        assert!(
            err.to_string().contains("expected an absolute path"),
            "{err}"
        );
        let err = FilesystemDriver::with_root(relative).expect_err("a relative root");
        assert!(
            err.to_string().contains("expected an absolute path"),
            "{err}"
        );
    }

    let err = FilesystemDriver::new(FilesystemConfig::new(&root).with_max_threads(3))
        .expect_err("too few threads");
    assert!(matches!(&err, Error::InvalidParameter { key, .. } if key == "maxthreads"));
    Ok(())
}

#[tokio::test]
async fn a_root_that_cannot_be_created() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("regular");
    fs::write(&file, b"x")?;
    for (root, why) in [
        (file.join("below"), "a parent of it is a file"),
        (file.clone(), "expected a directory"),
    ] {
        let err = FilesystemDriver::with_root(&root).expect_err("a root under a file");
        assert!(err.to_string().contains(why), "{err}");
        match &err {
            Error::InvalidParameter {
                driver,
                key,
                reason,
            } => {
                assert_eq!(
                    (driver.as_str(), key.as_str()),
                    ("filesystem", "rootdirectory")
                );
                assert!(reason.contains(&root.display().to_string()), "{reason}");
            }
            other => panic!("unexpected error {other}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn factory_creates_a_working_driver() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("made/by/factory");
    let factory = FilesystemFactory;
    assert_eq!(factory.name(), "filesystem");
    let d = factory
        .create(&params(serde_json::json!({
            "rootdirectory": root, "maxthreads": "30", "fsync": false,
        })))
        .await?;
    d.put_content("/x", Bytes::from_static(b"y")).await?;
    assert_eq!(fs::read(root.join("x"))?, b"y");
    let err = factory
        .create(&params(serde_json::json!({ "bogus": 1 })))
        .await
        .expect_err("unknown key");
    assert!(matches!(err, Error::InvalidParameter { .. }));
    Ok(())
}

#[tokio::test]
async fn invalid_paths_are_rejected_before_touching_the_disk() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    for bad in ["", "/", "a", "/a/../b", "/a/", "//a", "/a#b", "/a b"] {
        let err = d.put_content(bad, Bytes::new()).await;
        assert!(
            matches!(err, Err(Error::InvalidPath { .. })),
            "{bad}: {err:?}"
        );
        assert!(
            matches!(d.get_content(bad).await, Err(Error::InvalidPath { .. })),
            "{bad}"
        );
        assert!(
            matches!(d.writer(bad, false).await, Err(Error::InvalidPath { .. })),
            "{bad}"
        );
        assert!(
            matches!(d.delete(bad).await, Err(Error::InvalidPath { .. })),
            "{bad}"
        );
    }
    assert!(names(dir.path()).is_empty());
    Ok(())
}
