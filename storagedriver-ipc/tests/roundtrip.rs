//! Every operation through the IPC client and server, in process over a socket pair.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Counting, check_pattern, connect, pattern};
use driver_inmemory::InMemoryDriver;
use futures::{StreamExt, TryStreamExt};
use storagedriver::{Error, Method, StorageDriver, UrlOptions, WalkControl, WalkOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_round_trips() {
    let (driver, server) = connect(Arc::new(InMemoryDriver::new())).await;
    assert_eq!(driver.name(), "inmemory");
    assert_eq!(driver.server_version(), storagedriver_ipc::PROTOCOL_VERSION);
    assert_eq!(driver.child_pid(), None);
    assert_eq!(
        driver.capabilities(),
        InMemoryDriver::new().capabilities(),
        "capabilities cross the wire"
    );

    // put / get, including empty and multi-frame content.
    for (path, content) in [
        ("/a", Bytes::from_static(b"a")),
        ("/empty", Bytes::new()),
        ("/dir/utf8", Bytes::from("\u{00e9}t\u{00e9}")),
        ("/dir/big", pattern(7, 3 * 1024 * 1024 + 17)),
    ] {
        driver
            .put_content(path, content.clone())
            .await
            .expect("put");
        assert_eq!(driver.get_content(path).await.expect("get"), content);
    }

    // stat of a file, a directory and the root.
    let info = driver.stat("/dir/big").await.expect("stat");
    assert_eq!(info.path, "/dir/big");
    assert_eq!(info.size, 3 * 1024 * 1024 + 17);
    assert!(!info.is_dir);
    let local = InMemoryDriver::new();
    local.put_content("/x", Bytes::new()).await.expect("put");
    assert!(driver.stat("/dir").await.expect("stat dir").is_dir);
    assert!(driver.stat("/").await.expect("stat root").is_dir);
    let t = driver.stat("/a").await.expect("stat").mod_time;
    assert!(t > std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000));

    // list
    assert_eq!(
        driver.list("/").await.expect("list"),
        ["/a", "/dir", "/empty"]
    );
    assert_eq!(
        driver.list("/dir").await.expect("list"),
        ["/dir/big", "/dir/utf8"]
    );

    // reader at offsets
    let big = pattern(7, 3 * 1024 * 1024 + 17);
    for offset in [
        0u64,
        1,
        1 << 20,
        big.len() as u64 - 1,
        big.len() as u64,
        big.len() as u64 + 10,
    ] {
        let chunks: Vec<Bytes> = driver
            .reader("/dir/big", offset)
            .await
            .expect("reader")
            .try_collect()
            .await
            .expect("stream");
        let start = (offset as usize).min(big.len());
        assert_eq!(chunks.concat(), &big[start..], "offset {offset}");
        assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= 1 << 20));
    }

    // rename and delete
    driver.rename("/a", "/moved/a").await.expect("rename");
    assert!(driver.stat("/a").await.expect_err("gone").is_not_found());
    assert_eq!(driver.get_content("/moved/a").await.expect("get"), "a");
    driver.delete("/moved").await.expect("delete");
    assert!(
        driver
            .get_content("/moved/a")
            .await
            .expect_err("gone")
            .is_not_found()
    );

    // url_for is unsupported by the in-memory driver.
    let err = driver
        .url_for(
            "/dir/big",
            &UrlOptions {
                method: Method::Head,
                expires_in: Duration::from_secs(60),
            },
        )
        .await
        .expect_err("unsupported");
    assert!(
        matches!(err, Error::Unsupported { ref driver, .. } if driver == "inmemory"),
        "{err:?}"
    );

    // writer round trip
    let mut w = driver.writer("/w", false).await.expect("writer");
    assert_eq!(w.size(), 0);
    w.write(Bytes::from_static(b"hello, "))
        .await
        .expect("write");
    w.write(pattern(1, 2 * 1024 * 1024)).await.expect("write");
    assert_eq!(w.size(), 7 + 2 * 1024 * 1024);
    w.commit().await.expect("commit");
    w.close().await.expect("close after commit is a no-op");
    let err = w
        .write(Bytes::from_static(b"x"))
        .await
        .expect_err("finished");
    assert!(matches!(err, Error::WriterFinished { ref state, .. } if state == "committed"));
    let got = driver.get_content("/w").await.expect("get");
    assert_eq!(&got[..7], b"hello, ");
    assert!(check_pattern(1, 0, &got[7..]));

    drop(w);
    drop(driver);
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server ends when the client goes away")
        .expect("the server task");
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_variant_and_fields() {
    let (driver, _server) = connect(Arc::new(InMemoryDriver::new())).await;

    let err = driver.get_content("/missing").await.expect_err("missing");
    match &err {
        Error::PathNotFound { driver, path } => {
            assert_eq!(driver, "inmemory");
            assert_eq!(path, "/missing");
        }
        other => panic!("expected PathNotFound, got {other:?}"),
    }
    assert_eq!(err.to_string(), "inmemory: path not found: /missing");
    let err = driver.reader("/missing", 5).await.err().expect("missing");
    assert!(matches!(err, Error::PathNotFound { ref path, .. } if path == "/missing"));
    let err = driver.stat("/missing").await.expect_err("missing");
    assert!(err.is_not_found());
    let err = driver
        .writer("/missing", true)
        .await
        .expect_err("nothing to resume");
    assert!(err.is_not_found());

    // Invalid paths are refused by the client before anything is sent.
    let err = driver.stat("/a/../b").await.expect_err("invalid");
    assert!(
        matches!(err, Error::InvalidPath { ref driver, ref path, .. } if driver == "inmemory" && path == "/a/../b")
    );
    let err = driver.delete("/").await.expect_err("root");
    assert!(matches!(err, Error::InvalidPath { .. }));
    let err = driver
        .put_content("relative", Bytes::new())
        .await
        .expect_err("invalid");
    assert!(matches!(err, Error::InvalidPath { .. }));

    // A conflict: a file below a file.
    driver
        .put_content("/file", Bytes::from_static(b"x"))
        .await
        .expect("put");
    let err = driver
        .put_content("/file/below", Bytes::from_static(b"y"))
        .await
        .expect_err("conflict");
    assert!(
        matches!(err, Error::Conflict { ref driver, ref path, .. } if driver == "inmemory" && path == "/file/below"),
        "{err:?}"
    );

    // Appending to committed content is unsupported by the in-memory driver.
    let err = driver.writer("/file", true).await.expect_err("unsupported");
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");

    // Writer finished states.
    let mut w = driver.writer("/w", false).await.expect("writer");
    w.cancel().await.expect("cancel");
    let err = w.commit().await.expect_err("finished");
    assert!(
        matches!(err, Error::WriterFinished { ref state, ref path, .. } if state == "cancelled" && path == "/w")
    );

    // The connection still works after all that.
    assert_eq!(driver.get_content("/file").await.expect("get"), "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_resumes_after_close() {
    let (driver, _server) = connect(Arc::new(InMemoryDriver::new())).await;
    let mut w = driver.writer("/upload", false).await.expect("writer");
    w.write(pattern(3, 1_500_000)).await.expect("write");
    w.close().await.expect("close");
    assert!(
        driver
            .stat("/upload")
            .await
            .expect_err("not committed")
            .is_not_found()
    );

    let mut w = driver.writer("/upload", true).await.expect("resume");
    assert_eq!(w.size(), 1_500_000, "size starts at the resumed bytes");
    let all = pattern(3, 3_000_000);
    w.write(all.slice(1_500_000..)).await.expect("write");
    assert_eq!(w.size(), 3_000_000);
    w.commit().await.expect("commit");
    assert_eq!(driver.get_content("/upload").await.expect("get"), all);

    // A writer dropped without finishing: the server drops its writer, committed content stays.
    let mut w = driver.writer("/upload", false).await.expect("writer");
    w.write(Bytes::from_static(b"lost")).await.expect("write");
    drop(w);
    assert_eq!(driver.get_content("/upload").await.expect("get"), all);
    // Zero-byte writer then append.
    let mut w = driver.writer("/zero", false).await.expect("writer");
    w.commit().await.expect("commit");
    let mut w = driver.writer("/zero", true).await.expect("append to empty");
    assert_eq!(w.size(), 0);
    w.write(Bytes::from_static(b"z")).await.expect("write");
    w.commit().await.expect("commit");
    assert_eq!(driver.get_content("/zero").await.expect("get"), "z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walk_with_skip_and_stop() {
    let (driver, _server) = connect(Arc::new(InMemoryDriver::new())).await;
    for p in ["/a/1", "/a/2", "/b/x/1", "/b/y", "/c"] {
        driver
            .put_content(p, Bytes::from_static(b"."))
            .await
            .expect("put");
    }
    let mut seen = Vec::new();
    driver
        .walk("/", &WalkOptions::default(), &mut |info| {
            seen.push((info.path.clone(), info.is_dir));
            WalkControl::Continue
        })
        .await
        .expect("walk");
    let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["/a", "/a/1", "/a/2", "/b", "/b/x", "/b/x/1", "/b/y", "/c"]
    );
    assert!(seen[0].1 && !seen[1].1);

    let mut seen = Vec::new();
    driver
        .walk("/", &WalkOptions::default(), &mut |info| {
            seen.push(info.path.clone());
            if info.path == "/a" || info.path == "/b/x" {
                WalkControl::SkipDir
            } else {
                WalkControl::Continue
            }
        })
        .await
        .expect("walk");
    assert_eq!(seen, ["/a", "/b", "/b/x", "/b/y", "/c"]);

    let mut seen = Vec::new();
    driver
        .walk("/", &WalkOptions::default(), &mut |info| {
            seen.push(info.path.clone());
            if info.path == "/b/x" {
                WalkControl::Stop
            } else {
                WalkControl::Continue
            }
        })
        .await
        .expect("walk");
    assert_eq!(seen, ["/a", "/a/1", "/a/2", "/b", "/b/x"]);

    let mut seen = Vec::new();
    driver
        .walk(
            "/",
            &WalkOptions::default().start_after("/b/x"),
            &mut |info| {
                seen.push(info.path.clone());
                WalkControl::Continue
            },
        )
        .await
        .expect("walk");
    assert_eq!(seen, ["/b/x/1", "/b/y", "/c"]);

    let err = driver
        .walk("/nothing", &WalkOptions::default(), &mut |_| {
            WalkControl::Continue
        })
        .await
        .expect_err("missing");
    assert!(err.is_not_found());

    // Other requests go on while a walk waits for its callback.
    let d2 = driver.clone();
    let mut stats = 0;
    driver
        .walk("/a", &WalkOptions::default(), &mut |_| {
            let d3 = d2.clone();
            let ok = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(async move { d3.stat("/c").await.is_ok() })
            })
            .join()
            .expect("thread");
            if ok {
                stats += 1;
            }
            WalkControl::Continue
        })
        .await
        .expect("walk");
    assert_eq!(stats, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_stats() {
    let (driver, _server) = connect(Arc::new(InMemoryDriver::new())).await;
    for i in 0..64 {
        driver
            .put_content(&format!("/f/{i}"), Bytes::from(vec![0u8; i]))
            .await
            .expect("put");
    }
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let d = driver.clone();
            tokio::spawn(async move {
                let info = d.stat(&format!("/f/{i}")).await.expect("stat");
                assert_eq!(info.size, i as u64);
                let missing = d.stat(&format!("/g/{i}")).await.expect_err("missing");
                assert!(matches!(missing, Error::PathNotFound { ref path, .. } if *path == format!("/g/{i}")));
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_streams_both_directions() {
    const SIZE: usize = 64 << 20;
    const STREAMS: u8 = 3;
    let (driver, _server) = connect(Arc::new(InMemoryDriver::new())).await;
    for s in 0..STREAMS {
        driver
            .put_content(&format!("/down/{s}"), pattern(s, SIZE))
            .await
            .expect("put");
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..STREAMS {
        // Download.
        let d = driver.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = d.reader(&format!("/down/{s}"), 0).await.expect("reader");
            let mut offset = 0;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.expect("chunk");
                assert!(check_pattern(s, offset, &chunk), "stream {s} at {offset}");
                offset += chunk.len();
            }
            assert_eq!(offset, SIZE);
        }));
        // Upload, in uneven pieces.
        let d = driver.clone();
        tasks.push(tokio::spawn(async move {
            let data = pattern(s + 100, SIZE);
            let path = format!("/up/{s}");
            let mut w = d.writer(&path, false).await.expect("writer");
            let mut offset = 0;
            let mut piece = 100_000;
            while offset < SIZE {
                let end = (offset + piece).min(SIZE);
                w.write(data.slice(offset..end)).await.expect("write");
                offset = end;
                piece = piece * 3 % 3_000_001 + 1;
            }
            w.commit().await.expect("commit");
            let mut stream = d.reader(&path, 0).await.expect("reader");
            let mut offset = 0;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.expect("chunk");
                assert!(check_pattern(s + 100, offset, &chunk));
                offset += chunk.len();
            }
            assert_eq!(offset, SIZE);
        }));
    }
    // A big put_content and get_content at the same time.
    let d = driver.clone();
    tasks.push(tokio::spawn(async move {
        let data = pattern(200, SIZE);
        d.put_content("/whole", data.clone()).await.expect("put");
        assert_eq!(d.get_content("/whole").await.expect("get"), data);
    }));
    for t in tasks {
        t.await.expect("task");
    }
    eprintln!(
        "{} streams of 64 MiB each way in {:?}",
        STREAMS,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_reader_early_frees_the_server_stream() {
    let counting = Counting::new();
    let (driver, _server) = connect(Arc::new(counting.clone())).await;
    driver
        .put_content("/big", pattern(9, 32 << 20))
        .await
        .expect("put");
    for round in 0..50 {
        let mut stream = driver.reader("/big", 0).await.expect("reader");
        let first = stream.next().await.expect("a chunk").expect("ok");
        assert!(!first.is_empty());
        drop(stream);
        // The server drops its stream once the RESET arrives.
        let deadline = Instant::now() + Duration::from_secs(2);
        while counting.live() > 0 {
            assert!(
                Instant::now() < deadline,
                "round {round}: the server still holds the stream"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // And the connection goes on.
        assert_eq!(driver.stat("/big").await.expect("stat").size, 32 << 20);
    }
    // A reader dropped before its response arrives is reset too.
    for _ in 0..20 {
        let fut = driver.reader("/big", 0);
        let _ = tokio::time::timeout(Duration::from_micros(50), fut).await;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while counting.live() > 0 {
        assert!(
            Instant::now() < deadline,
            "a cancelled reader left a stream behind"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        driver.get_content("/big").await.expect("get").len(),
        32 << 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_put_content_stores_nothing() {
    let (driver, _server) = connect(Arc::new(InMemoryDriver::new())).await;
    driver
        .put_content("/p", Bytes::from_static(b"old"))
        .await
        .expect("put");
    // Cancel a large put midway: the server must not store a truncated file.
    for _ in 0..10 {
        let fut = driver.put_content("/p", pattern(1, 40 << 20));
        let _ = tokio::time::timeout(Duration::from_millis(5), fut).await;
        let got = driver.get_content("/p").await.expect("get");
        assert!(
            got == "old" || got.len() == 40 << 20,
            "a torn put_content: {} bytes",
            got.len()
        );
        driver
            .put_content("/p", Bytes::from_static(b"old"))
            .await
            .expect("put");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn works_on_a_current_thread_runtime() {
    let (driver, _server) = connect(Arc::new(InMemoryDriver::new())).await;
    driver
        .put_content("/a/b", pattern(5, 9 << 20))
        .await
        .expect("put");
    assert_eq!(
        driver.get_content("/a/b").await.expect("get"),
        pattern(5, 9 << 20)
    );
    let mut seen = 0;
    driver
        .walk("/", &WalkOptions::default(), &mut |_| {
            seen += 1;
            WalkControl::Continue
        })
        .await
        .expect("walk");
    assert_eq!(seen, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_panics_are_errors_not_hangs() {
    let counting = Counting::new();
    let (driver, _server) = connect(Arc::new(counting.clone())).await;
    let err = tokio::time::timeout(Duration::from_secs(5), driver.stat("/panic"))
        .await
        .expect("no hang")
        .expect_err("panicked");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(err.to_string().contains("panicked"), "{err}");

    // A panic midway through a stream ends the stream with an error.
    let content = pattern(4, 3 << 20);
    driver
        .put_content("/panic-stream", content)
        .await
        .expect("put");
    let mut stream = driver.reader("/panic-stream", 0).await.expect("reader");
    let mut saw_error = false;
    while let Some(item) = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("no hang")
    {
        if let Err(e) = item {
            assert!(e.to_string().contains("panicked"), "{e}");
            saw_error = true;
            break;
        }
    }
    assert!(saw_error);
    // The connection goes on.
    assert!(driver.stat("/panic-stream").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_whose_backend_panicked_never_waits_for_credit() {
    let (driver, _server) = connect(Arc::new(Counting::new())).await;
    let mut w = driver.writer("/panic-writer", false).await.expect("writer");
    // Far more than any window: the data is credited and dropped, nothing hangs.
    let chunk = Bytes::from(vec![1u8; 256 << 10]);
    tokio::time::timeout(Duration::from_secs(10), async {
        for _ in 0..40 {
            w.write(chunk.clone()).await.expect("writes go on");
        }
    })
    .await
    .expect("no write waits for credit that never comes");
    let err = w.commit().await.expect_err("the writer is gone");
    assert!(err.to_string().contains("no open writer"), "{err}");
    driver
        .put_content("/ok", Bytes::from_static(b"x"))
        .await
        .expect("the connection is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_walk_is_reset() {
    let counting = Counting::new();
    let (driver, _server) = connect(Arc::new(counting.clone())).await;
    for i in 0..10 {
        driver
            .put_content(&format!("/w/{i}"), Bytes::from_static(b"."))
            .await
            .expect("put");
    }
    // A walk whose future is dropped while the server waits for its WALK_CONTROL.
    for _ in 0..20 {
        let options = WalkOptions::default();
        let mut slow = |_: &storagedriver::FileInfo| {
            std::thread::sleep(Duration::from_millis(1));
            WalkControl::Continue
        };
        let fut = driver.walk("/", &options, &mut slow);
        let _ = tokio::time::timeout(Duration::from_millis(2), fut).await;
    }
    // A panicking callback unwinds through the walk and resets it too.
    let d = driver.clone();
    let panicked = tokio::spawn(async move {
        d.walk("/", &WalkOptions::default(), &mut |_| panic!("callback"))
            .await
    })
    .await;
    assert!(panicked.is_err());
    // The server's walks all ended.
    let deadline = Instant::now() + Duration::from_secs(2);
    while counting
        .live_walks
        .load(std::sync::atomic::Ordering::SeqCst)
        > 0
    {
        assert!(
            Instant::now() < deadline,
            "an abandoned walk still runs on the server"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut n = 0;
    driver
        .walk("/w", &WalkOptions::default(), &mut |_| {
            n += 1;
            WalkControl::Continue
        })
        .await
        .expect("walks still work");
    assert_eq!(n, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_over_any_stream_not_only_unix_sockets() {
    let (server_side, client_side) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(storagedriver_ipc::serve(
        Arc::new(InMemoryDriver::new()),
        server_side,
    ));
    let driver = storagedriver_ipc::IpcDriver::connect("inmemory", client_side)
        .await
        .expect("handshake");
    let data = pattern(8, 6 << 20);
    driver.put_content("/d", data.clone()).await.expect("put");
    assert_eq!(driver.get_content("/d").await.expect("get"), data);
    let chunks: Vec<Bytes> = driver
        .reader("/d", 5)
        .await
        .expect("reader")
        .try_collect()
        .await
        .expect("stream");
    assert_eq!(chunks.concat(), &data[5..]);
    drop(driver);
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("ends")
        .expect("task");
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_of_a_huge_directory_arrives_whole() {
    const FILES: usize = 40_000;
    let (driver, _server) = connect(Arc::new(InMemoryDriver::new())).await;
    let mut want: Vec<String> = (0..FILES)
        .map(|i| {
            // 200-byte names, stored in an order that is not the sorted one.
            let n = (i * 7919) % FILES;
            let name = format!("{n:06}-{}", "x".repeat(193));
            assert_eq!(name.len(), 200);
            format!("/huge/{name}")
        })
        .collect();
    futures::stream::iter(want.clone())
        .map(|path| {
            let d = driver.clone();
            async move { d.put_content(&path, Bytes::from_static(b"x")).await }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await
        .expect("puts");
    want.sort();
    let started = Instant::now();
    let got = driver.list("/huge").await.expect("list");
    eprintln!(
        "listed {} entries ({} bytes of JSON) in {:?}",
        got.len(),
        serde_json::to_vec(&got).expect("JSON").len(),
        started.elapsed()
    );
    assert_eq!(got.len(), FILES);
    assert!(got == want, "the whole sorted list arrives");
    // The connection is fine afterwards.
    assert_eq!(driver.list("/").await.expect("list"), ["/huge"]);
}

/// Names whose `{"ok":[...]}` is exactly `total` bytes long (`total` at least 300).
fn names_with_json_len(total: usize) -> Vec<String> {
    let mut names = Vec::new();
    // `{"ok":[` and `]}`; each name costs its length, 2 quotes and a comma (but the first).
    let mut remaining = total - 9;
    while remaining > 300 {
        let name = format!("/n/{:0>247}", names.len());
        remaining -= name.len() + 2 + usize::from(!names.is_empty());
        names.push(name);
    }
    let last = remaining - 2 - usize::from(!names.is_empty());
    names.push(format!("/m/{}", "y".repeat(last - 3)));
    names
}

/// A driver whose `list("/size/N")` answers names whose JSON response is N bytes long.
#[derive(Debug)]
struct SizedLists(InMemoryDriver);

#[async_trait::async_trait]
impl storagedriver::forward::Forward for SizedLists {
    fn inner(&self) -> &dyn StorageDriver {
        &self.0
    }
    fn name(&self) -> &str {
        "sized"
    }
    async fn list(&self, path: &str) -> storagedriver::Result<Vec<String>> {
        match path.strip_prefix("/size/").and_then(|n| n.parse().ok()) {
            Some(total) => Ok(names_with_json_len(total)),
            None => self.0.list(path).await,
        }
    }
}

storagedriver::forward_storage_driver!(SizedLists);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_up_to_64_mib_arrive_and_longer_ones_are_backend_errors() {
    use storagedriver_ipc::frame::{MAX_PAYLOAD, MAX_RESPONSE};
    let (driver, _server) = connect(Arc::new(SizedLists(InMemoryDriver::new()))).await;
    for total in [
        1000,
        MAX_PAYLOAD - 1,
        MAX_PAYLOAD,
        MAX_PAYLOAD + 1,
        2 * MAX_PAYLOAD,
        2 * MAX_PAYLOAD + 1,
        5 * MAX_PAYLOAD + 12_345,
        MAX_RESPONSE,
    ] {
        let want = names_with_json_len(total);
        let json = serde_json::to_vec(&serde_json::json!({ "ok": want })).expect("JSON");
        assert_eq!(
            json.len(),
            total,
            "the test's names have the JSON length asked for"
        );
        let got = driver
            .list(&format!("/size/{total}"))
            .await
            .unwrap_or_else(|e| panic!("a response of {total} bytes: {e}"));
        assert!(got == want, "a response of {total} bytes arrives whole");
    }
    // One byte more: the server answers a backend error instead, and goes on serving.
    let path = format!("/size/{}", MAX_RESPONSE + 1);
    let err = driver.list(&path).await.expect_err("too long");
    assert!(
        matches!(err, Error::Backend { .. }),
        "a backend error: {err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("limit"), "{message}");
    assert_eq!(err.driver(), "sized");
    assert!(driver.list("/").await.expect("still serving").is_empty());
}
