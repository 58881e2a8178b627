//! Cases specific to the in-memory driver; the shared conformance suite covers the contract.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use driver_inmemory::{InMemoryDriver, InMemoryFactory, READ_CHUNK_SIZE};
use futures::TryStreamExt;
use storagedriver::{
    DriverFactory, Error, Parameters, StorageDriver, UrlOptions, WalkControl, WalkOptions,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn not_found<T: std::fmt::Debug>(result: storagedriver::Result<T>) -> bool {
    matches!(result, Err(Error::PathNotFound { .. }))
}

async fn read_from(
    driver: &InMemoryDriver,
    path: &str,
    offset: u64,
) -> storagedriver::Result<Vec<u8>> {
    let chunks: Vec<Bytes> = driver.reader(path, offset).await?.try_collect().await?;
    Ok(chunks.concat())
}

#[tokio::test]
async fn dropped_writer_keeps_content() -> TestResult {
    let driver = InMemoryDriver::new();
    {
        let mut writer = driver.writer("/up/blob", false).await?;
        writer.write(b("first ")).await?;
        writer.write(Bytes::from(vec![b'x'; 100_000])).await?;
        // Dropped without close, cancel or commit.
    }
    // Still invisible to reads.
    assert!(not_found(driver.get_content("/up/blob").await));
    assert!(not_found(driver.stat("/up").await));
    assert_eq!(driver.list("/").await?, Vec::<String>::new());

    let mut writer = driver.writer("/up/blob", true).await?;
    assert_eq!(writer.size(), 100_006);
    writer.write(b(" last")).await?;
    writer.commit().await?;
    let content = driver.get_content("/up/blob").await?;
    assert_eq!(content.len(), 100_011);
    assert!(content.starts_with(b"first x"));
    assert!(content.ends_with(b"x last"));
    Ok(())
}

#[tokio::test]
async fn writer_lifecycle() -> TestResult {
    let driver = InMemoryDriver::new();
    driver.put_content("/f", b("committed")).await?;

    // A fresh writer leaves committed content alone until commit.
    let mut writer = driver.writer("/f", false).await?;
    writer.write(b("new")).await?;
    assert_eq!(driver.get_content("/f").await?, b("committed"));
    writer.close().await?;
    writer.close().await?; // a no-op
    assert_eq!(writer.size(), 3, "size() is kept after close");
    assert!(matches!(
        writer.write(b("x")).await,
        Err(Error::WriterFinished { .. })
    ));
    assert!(matches!(
        writer.commit().await,
        Err(Error::WriterFinished { .. })
    ));
    assert!(matches!(
        writer.cancel().await,
        Err(Error::WriterFinished { .. })
    ));

    // Resume, then cancel: the upload is gone, committed content untouched.
    let mut writer = driver.writer("/f", true).await?;
    assert_eq!(writer.size(), 3);
    writer.cancel().await?;
    assert_eq!(driver.get_content("/f").await?, b("committed"));
    assert!(matches!(
        driver.writer("/f", true).await,
        Err(Error::Unsupported { .. })
    ));

    // A non-appending writer drops an earlier pending upload.
    let mut writer = driver.writer("/g/h", false).await?;
    writer.write(b("abc")).await?;
    writer.close().await?;
    let mut writer = driver.writer("/g/h", false).await?;
    assert_eq!(writer.size(), 0);
    writer.commit().await?;
    writer.close().await?;
    assert!(matches!(
        driver.writer("/g/h", true).await.map(|w| w.size()),
        Ok(0)
    ));

    assert!(not_found(driver.writer("/missing", true).await));
    Ok(())
}

fn superseded<T: std::fmt::Debug>(result: storagedriver::Result<T>) -> bool {
    matches!(result, Err(Error::WriterFinished { ref state, .. }) if state == "superseded")
}

#[tokio::test]
async fn later_writer_takes_over() -> TestResult {
    let driver = InMemoryDriver::new();

    // The motivating interleaving: the superseded commit publishes nothing, the later one
    // publishes exactly its own bytes.
    let mut w1 = driver.writer("/p", false).await?;
    let mut w2 = driver.writer("/p", false).await?;
    assert!(superseded(w1.write(Bytes::from(vec![b'A'; 20])).await));
    w2.write(Bytes::from(vec![b'B'; 10])).await?;
    assert!(superseded(w1.commit().await));
    assert!(not_found(driver.get_content("/p").await));
    w2.commit().await?;
    assert_eq!(driver.get_content("/p").await?, Bytes::from(vec![b'B'; 10]));
    assert!(superseded(w1.cancel().await));
    assert!(superseded(w1.close().await));
    assert_eq!(driver.get_content("/p").await?, Bytes::from(vec![b'B'; 10]));

    // A resume while a writer is open starts from the upload that writer started from.
    let mut w0 = driver.writer("/q", false).await?;
    w0.write(b("base")).await?;
    w0.close().await?;
    let mut w1 = driver.writer("/q", true).await?;
    w1.write(b("-first")).await?;
    let mut w2 = driver.writer("/q", true).await?;
    assert_eq!(w2.size(), 4);
    w2.write(b("-second")).await?;
    assert!(superseded(w1.close().await));
    w2.close().await?;
    // A superseded writer dropped while open leaves the upload alone.
    let mut w3 = driver.writer("/q", true).await?;
    let w4 = driver.writer("/q", true).await?;
    assert!(superseded(w3.write(b("lost")).await));
    drop(w3);
    assert_eq!(w4.size(), 11);
    drop(w4);
    let mut w5 = driver.writer("/q", true).await?;
    assert_eq!(w5.size(), 11);
    w5.commit().await?;
    assert_eq!(driver.get_content("/q").await?, b("base-second"));
    assert_eq!(
        format!("{driver:?}"),
        "InMemoryDriver { files: 2, uploads: 0 }"
    );
    Ok(())
}

#[tokio::test]
async fn zero_length_put_then_append() -> TestResult {
    let driver = InMemoryDriver::new();
    driver.put_content("/empty", Bytes::new()).await?;
    let mut writer = driver.writer("/empty", true).await?;
    assert_eq!(writer.size(), 0);
    writer.write(b("data")).await?;
    writer.commit().await?;
    assert_eq!(driver.get_content("/empty").await?, b("data"));
    Ok(())
}

#[tokio::test]
async fn conflicts_change_nothing() -> TestResult {
    let driver = InMemoryDriver::new();
    driver.put_content("/a/b", b("file")).await?;

    assert!(matches!(
        driver.put_content("/a", b("x")).await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        driver.put_content("/a/b/c", b("x")).await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        driver.writer("/a/b/c", false).await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        driver.rename("/a/b", "/a").await,
        Err(Error::Conflict { .. })
    ));
    driver.put_content("/z", b("z")).await?;
    assert!(matches!(
        driver.rename("/z", "/a/b/c").await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(driver.get_content("/a/b").await?, b("file"));
    assert_eq!(driver.get_content("/z").await?, b("z"));
    assert_eq!(driver.list("/").await?, ["/a", "/z"]);

    // A commit that clashes keeps its content as a resumable upload.
    let mut writer = driver.writer("/a", false).await?;
    writer.write(b("payload")).await?;
    assert!(matches!(writer.commit().await, Err(Error::Conflict { .. })));
    assert!(matches!(
        writer.write(b("x")).await,
        Err(Error::WriterFinished { .. })
    ));
    driver.delete("/a/b").await?;
    let mut writer = driver.writer("/a", true).await?;
    assert_eq!(writer.size(), 7);
    writer.commit().await?;
    assert_eq!(driver.get_content("/a").await?, b("payload"));
    Ok(())
}

#[tokio::test]
async fn list_is_sorted_and_deduplicated() -> TestResult {
    let driver = InMemoryDriver::new();
    assert_eq!(driver.list("/").await?, Vec::<String>::new());
    for p in [
        "/d/b/x", "/d/b-c", "/d/b.txt", "/d/b/y/z", "/d/bc", "/d/B", "/d/a0", "/d/b0/q", "/e",
    ] {
        driver.put_content(p, b("x")).await?;
    }
    assert_eq!(
        driver.list("/d").await?,
        [
            "/d/B", "/d/a0", "/d/b", "/d/b-c", "/d/b.txt", "/d/b0", "/d/bc"
        ]
    );
    assert_eq!(driver.list("/").await?, ["/d", "/e"]);
    assert_eq!(driver.list("/d/b").await?, ["/d/b/x", "/d/b/y"]);
    assert!(not_found(driver.list("/d/b.txt").await));
    assert!(not_found(driver.list("/nope").await));

    let mut seen = Vec::new();
    driver
        .walk("/", &WalkOptions::default(), &mut |info| {
            seen.push(info.path.clone());
            WalkControl::Continue
        })
        .await?;
    assert_eq!(
        seen,
        [
            "/d", "/d/B", "/d/a0", "/d/b", "/d/b/x", "/d/b/y", "/d/b/y/z", "/d/b-c", "/d/b.txt",
            "/d/b0", "/d/b0/q", "/d/bc", "/e"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn delete_is_prefix_safe() -> TestResult {
    let driver = InMemoryDriver::new();
    for p in ["/a/b", "/a/bc", "/a/b-c/x", "/a/b.d", "/a/b0"] {
        driver.put_content(p, b("x")).await?;
    }
    driver.delete("/a/b").await?;
    assert_eq!(
        driver.list("/a").await?,
        ["/a/b-c", "/a/b.d", "/a/b0", "/a/bc"]
    );

    for p in ["/a/b/x", "/a/b/y/z"] {
        driver.put_content(p, b("x")).await?;
    }
    // A pending upload below the directory goes with it; one beside it stays.
    let mut writer = driver.writer("/a/b/pending", false).await?;
    writer.write(b("p")).await?;
    writer.close().await?;
    let mut writer = driver.writer("/a/bc-pending", false).await?;
    writer.write(b("q")).await?;
    writer.close().await?;

    driver.delete("/a/b").await?;
    assert_eq!(
        driver.list("/a").await?,
        ["/a/b-c", "/a/b.d", "/a/b0", "/a/bc"]
    );
    assert!(not_found(driver.writer("/a/b/pending", true).await));
    assert_eq!(driver.writer("/a/bc-pending", true).await?.size(), 1);

    assert!(not_found(driver.delete("/a/b").await));
    assert!(matches!(
        driver.delete("/").await,
        Err(Error::InvalidPath { .. })
    ));
    driver.delete("/a").await?;
    assert_eq!(driver.list("/").await?, Vec::<String>::new());
    assert!(not_found(driver.stat("/").await));
    Ok(())
}

#[tokio::test]
async fn stat_and_mod_time() -> TestResult {
    let driver = InMemoryDriver::new();
    assert!(not_found(driver.stat("/").await));
    driver.put_content("/dir/old", b("1")).await?;
    let old = driver.stat("/dir/old").await?;
    assert!(!old.is_dir);
    assert_eq!(old.size, 1);
    driver.put_content("/dir/new", b("22")).await?;
    let mut last = driver.stat("/dir/new").await?.mod_time;
    for _ in 0..50 {
        driver.put_content("/dir/new", b("22")).await?;
        let now = driver.stat("/dir/new").await?.mod_time;
        assert!(now > last, "a rewrite moves mod_time forward");
        last = now;
    }
    let dir = driver.stat("/dir").await?;
    assert!(dir.is_dir);
    assert_eq!(
        (dir.path.as_str(), dir.size, dir.mod_time),
        ("/dir", 0, last)
    );
    let root = driver.stat("/").await?;
    assert!(root.is_dir);
    assert_eq!(root.path, "/");
    assert!(not_found(driver.stat("/di").await));
    Ok(())
}

#[tokio::test]
async fn rename_rules() -> TestResult {
    let driver = InMemoryDriver::new();
    driver.put_content("/src", b("source")).await?;
    driver.put_content("/dst/old", b("old")).await?;

    let err = driver
        .rename("/missing", "/dst/old")
        .await
        .expect_err("must fail");
    assert!(err.is_not_found());
    assert_eq!(err.path(), Some("/missing"));
    assert!(not_found(driver.rename("/src/below", "/x").await));
    assert!(not_found(driver.rename("/dst", "/x").await));
    assert_eq!(driver.get_content("/dst/old").await?, b("old"));

    driver.rename("/src", "/src").await?;
    let before = driver.stat("/src").await?.mod_time;
    driver.rename("/src", "/dst/old").await?;
    assert_eq!(driver.get_content("/dst/old").await?, b("source"));
    assert_eq!(driver.stat("/dst/old").await?.mod_time, before);
    assert!(not_found(driver.get_content("/src").await));
    driver.rename("/dst/old", "/new/parents/f").await?;
    assert_eq!(driver.list("/").await?, ["/new"]);
    Ok(())
}

#[tokio::test]
async fn reader_offsets_and_zero_copy() -> TestResult {
    let driver = InMemoryDriver::new();
    let size = 2 * READ_CHUNK_SIZE + 10;
    let data: Bytes = (0..size)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    driver.put_content("/big", data.clone()).await?;

    // get_content hands out the stored buffer itself.
    assert_eq!(driver.get_content("/big").await?.as_ptr(), data.as_ptr());

    let chunks: Vec<Bytes> = driver.reader("/big", 0).await?.try_collect().await?;
    assert_eq!(chunks.len(), 3);
    assert!(chunks.iter().all(|c| c.len() <= READ_CHUNK_SIZE));
    assert_eq!(chunks[0].as_ptr(), data.as_ptr());
    for offset in [0, 1, size / 2, size - 1, size, size + 1, u64::MAX as usize] {
        let got = read_from(&driver, "/big", offset as u64).await?;
        assert_eq!(got, data[offset.min(size)..], "offset {offset}");
    }
    assert!(not_found(read_from(&driver, "/nope", 0).await));
    assert!(not_found(read_from(&driver, "/nope", 10).await));
    driver.put_content("/d/f", b("x")).await?;
    assert!(not_found(read_from(&driver, "/d", 0).await));
    assert!(not_found(driver.get_content("/d").await));
    Ok(())
}

/// Readers of other paths never wait for a writer, however long it writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_while_a_writer_writes() -> TestResult {
    let driver = InMemoryDriver::new();
    let payload = Bytes::from(vec![7u8; 64 * 1024]);
    driver.put_content("/read/me", payload.clone()).await?;

    let writing = Arc::new(AtomicBool::new(true));
    let reads = Arc::new(AtomicUsize::new(0));

    let mut writer = driver.writer("/write/me", false).await?;
    let writer_task = {
        let writing = Arc::clone(&writing);
        let reads = Arc::clone(&reads);
        tokio::spawn(async move {
            // Keep writing until the readers have made progress while the writer is open.
            let mut rounds = 0u64;
            while reads.load(Ordering::SeqCst) < 1_000 || rounds < 100 {
                writer.write(Bytes::from(vec![1u8; 4096])).await?;
                rounds += 1;
                tokio::time::sleep(Duration::from_micros(50)).await;
            }
            writing.store(false, Ordering::SeqCst);
            // Closed, not committed: the content stays invisible to the readers still running.
            writer.close().await?;
            Ok::<_, Error>(rounds)
        })
    };

    let mut readers = Vec::new();
    for _ in 0..8 {
        let driver = driver.clone();
        let payload = payload.clone();
        let writing = Arc::clone(&writing);
        let reads = Arc::clone(&reads);
        readers.push(tokio::spawn(async move {
            let mut during = 0usize;
            while writing.load(Ordering::SeqCst) {
                assert_eq!(driver.get_content("/read/me").await?, payload);
                assert_eq!(driver.stat("/read/me").await?.size, payload.len() as u64);
                assert!(not_found(driver.get_content("/write/me").await));
                reads.fetch_add(1, Ordering::SeqCst);
                during += 1;
                tokio::task::yield_now().await;
            }
            Ok::<_, Error>(during)
        }));
    }

    let rounds = tokio::time::timeout(Duration::from_secs(60), writer_task).await???;
    let mut during = 0;
    for reader in readers {
        during += reader.await??;
    }
    assert!(during >= 1_000, "{during} reads while writing");
    let mut writer = driver.writer("/write/me", true).await?;
    assert_eq!(writer.size(), rounds * 4096);
    writer.commit().await?;
    assert_eq!(
        driver.stat("/write/me").await?.size,
        rounds * 4096,
        "the whole content is committed"
    );
    Ok(())
}

/// Concurrent `put_content` to one path: the survivor is one whole payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_to_one_path() -> TestResult {
    let driver = InMemoryDriver::new();
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let driver = driver.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                driver
                    .put_content("/same", Bytes::from(vec![i; 10_000]))
                    .await?;
                let got = driver.get_content("/same").await?;
                assert_eq!(got.len(), 10_000);
                assert!(got.iter().all(|&x| x == got[0]));
            }
            Ok::<_, Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

#[tokio::test]
async fn small_writes_round_trip() -> TestResult {
    let driver = InMemoryDriver::new();
    let mut writer = driver.writer("/small", false).await?;
    let mut expected = Vec::new();
    for i in 0..50_000u32 {
        let chunk = i.to_le_bytes().repeat(8);
        expected.extend_from_slice(&chunk);
        writer.write(Bytes::from(chunk)).await?;
        if i == 20_000 {
            writer.write(Bytes::from(vec![9u8; 200_000])).await?;
            expected.extend(std::iter::repeat_n(9u8, 200_000));
        }
    }
    assert_eq!(writer.size(), expected.len() as u64);
    writer.close().await?;
    let mut writer = driver.writer("/small", true).await?;
    writer.write(b("end")).await?;
    expected.extend_from_slice(b"end");
    writer.commit().await?;
    assert_eq!(driver.get_content("/small").await?, expected);
    let len = expected.len();
    for offset in [
        0,
        1,
        160_000,
        800_001,
        len / 2,
        len - 3,
        len - 1,
        len,
        len + 7,
    ] {
        let got = read_from(&driver, "/small", offset as u64).await?;
        assert_eq!(got, expected[offset.min(len)..], "offset {offset}");
    }
    Ok(())
}

#[tokio::test]
async fn clones_share_and_new_drivers_do_not() -> TestResult {
    let driver = InMemoryDriver::new();
    let clone = driver.clone();
    clone.put_content("/a", b("a")).await?;
    assert_eq!(driver.get_content("/a").await?, b("a"));
    assert!(not_found(InMemoryDriver::default().get_content("/a").await));
    let mut writer = driver.writer("/w", false).await?;
    writer.close().await?;
    assert_eq!(
        format!("{driver:?}"),
        "InMemoryDriver { files: 1, uploads: 1 }"
    );
    Ok(())
}

#[tokio::test]
async fn errors_name_the_driver() -> TestResult {
    let driver = InMemoryDriver::new();
    assert_eq!(driver.name(), "inmemory");
    let caps = driver.capabilities();
    assert!(caps.detects_file_dir_conflicts);
    assert!(!caps.url_for && !caps.persistent && !caps.append_to_committed);

    let err = driver
        .url_for("/a", &UrlOptions::default())
        .await
        .expect_err("must fail");
    assert!(matches!(err, Error::Unsupported { .. }));
    assert_eq!(err.driver(), "inmemory");
    for bad in ["", "/", "a", "//b", "/a/", "/a/../b", "/a b"] {
        let err = driver.get_content(bad).await.expect_err("must fail");
        assert!(matches!(err, Error::InvalidPath { .. }), "{bad:?}");
        assert_eq!(err.driver(), "inmemory");
    }
    assert!(matches!(
        driver.list("/a/../b").await,
        Err(Error::InvalidPath { .. })
    ));
    assert!(matches!(
        driver.rename("/a", "/").await,
        Err(Error::InvalidPath { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn factory() -> TestResult {
    assert_eq!(InMemoryFactory.name(), "inmemory");
    let driver = InMemoryFactory.create(&Parameters::new()).await?;
    driver.put_content("/x", b("x")).await?;
    let other = InMemoryFactory.create(&Parameters::new()).await?;
    assert!(not_found(other.get_content("/x").await));

    let params: Parameters = serde_json::from_str(r#"{"rootdirectory": "/tmp"}"#)?;
    let err = InMemoryFactory
        .create(&params)
        .await
        .expect_err("must fail");
    assert!(matches!(err, Error::InvalidParameter { ref key, .. } if key == "rootdirectory"));
    Ok(())
}
