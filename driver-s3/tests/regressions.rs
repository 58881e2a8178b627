//! The Go S3 driver's hard-won fixes, as tests against single-node Garage (which checks
//! signatures): each names the Go issue it guards against. Skipped without the server, a
//! failure under `STORAGEDRIVER_REQUIRE_SERVERS=1`.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Server, unique_root};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde_json::json;
use storagedriver::{Error, FileWriter, Parameters, StorageDriver};
use testsuites::regressions::{self, SignedUrls};

/// The Garage server, or `None` (and a note) when it is not configured and not required.
fn garage() -> Option<Server> {
    common::or_skip(common::server("GARAGE"))
}

/// distribution #1055 (TestOverThousandBlobs): a directory of more than 1,000 keys lists
/// and walks whole, across listing pages.
#[tokio::test(flavor = "multi_thread")]
async fn over_a_thousand_objects_in_one_directory() {
    let Some(server) = garage() else { return };
    let root = unique_root("thousand");
    let (d, raw) = (server.driver(&root), server.raw(&root));
    regressions::many_keys_in_one_directory(d.as_ref(), 1_050, |rest| raw.put(rest, b"x")).await;
}

/// distribution #3142 / PR #3479 (TestDeleteOnlyDeletesSubpaths): deleting `d/f` keeps
/// `d/fsuffix`, deleting `d/d` keeps `d/dsuffix/f`.
#[tokio::test(flavor = "multi_thread")]
async fn delete_removes_only_subpaths() {
    let Some(server) = garage() else { return };
    let d = server.driver(&unique_root("subpaths"));
    regressions::delete_removes_only_subpaths(d.as_ref()).await;
}

/// The v2.0.0 driver's stat: `/a` was a directory because `/ab` existed.
#[tokio::test(flavor = "multi_thread")]
async fn stat_of_a_prefix_that_is_not_a_directory() {
    let Some(server) = garage() else { return };
    let d = server.driver(&unique_root("prefix"));
    d.put_content("/ab", Bytes::from_static(b"x"))
        .await
        .expect("put");
    d.put_content("/a-b/c", Bytes::from_static(b"x"))
        .await
        .expect("put");
    assert!(matches!(
        d.stat("/a").await,
        Err(Error::PathNotFound { .. })
    ));
    assert!(matches!(
        d.list("/a").await,
        Err(Error::PathNotFound { .. })
    ));
    assert!(matches!(
        d.delete("/a").await,
        Err(Error::PathNotFound { .. })
    ));
    assert!(d.stat("/a-b").await.expect("stat").is_dir);
}

/// distribution #2292 / PR #2377: the health check's `stat("/")` on an empty bucket or root
/// must not fail; here it is a directory.
#[tokio::test(flavor = "multi_thread")]
async fn stat_root_of_an_empty_root() {
    let Some(server) = garage() else { return };
    let d = server.driver(&unique_root("empty"));
    let info = d.stat("/").await.expect("stat(/) of an empty root");
    assert!(info.is_dir);
    assert!(d.list("/").await.expect("list(/)").is_empty());
}

/// distribution #2119 and TestEmptyRootList: keys another tool wrote that are not valid
/// paths (a space, a colon, a `~`) are skipped by list and walk.
#[tokio::test(flavor = "multi_thread")]
async fn keys_that_are_not_paths_are_skipped() {
    let Some(server) = garage() else { return };
    let root = unique_root("foreign");
    let (d, raw) = (server.driver(&root), server.raw(&root));
    regressions::foreign_keys_are_skipped(d.as_ref(), |rest| raw.put(rest, b"foreign")).await;
}

/// URLFor: a presigned GET and HEAD work from a plain HTTP client, and stop working after
/// their expiry. A URL signed for GET does not allow HEAD.
#[tokio::test(flavor = "multi_thread")]
async fn presigned_urls_work_until_they_expire() {
    let Some(server) = garage() else { return };
    let d = server.driver(&unique_root("presign"));
    let rules = SignedUrls {
        get_url_contains: None,
        head_with_get_url: Some(403),
        // Garage answers 400 "Date is too old", AWS 403 "Request has expired".
        expired: &[400, 403],
    };
    regressions::signed_urls_work_until_they_expire(d.as_ref(), &rules).await;
}

/// A wrong secret key is a clear authentication error at once, not a retry loop.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_key_fails_at_once() {
    let Some(server) = garage() else { return };
    let mut params = server.parameters(&unique_root("auth"));
    params["secretkey"] = json!("0000000000000000000000000000000000000000000000000000000000000000");
    let d = server.driver_with(params);
    let started = Instant::now();
    let err = d
        .put_content("/x", Bytes::from_static(b"x"))
        .await
        .expect_err("a wrong secret");
    eprintln!("wrong secret key: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(!err.may_retry(), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("s3: put_content /x: "), "{text}");
    assert!(
        text.contains("access denied") && text.contains("403"),
        "{text}"
    );
}

/// What a user sees for a missing bucket, an unreachable endpoint and bad parameters.
#[tokio::test(flavor = "multi_thread")]
async fn errors_say_what_is_wrong() {
    let Some(server) = garage() else { return };
    let mut params = server.parameters(&unique_root("errors"));
    params["bucket"] = json!("no-such-bucket-here");
    let err = server
        .driver_with(params)
        .stat("/x")
        .await
        .expect_err("a missing bucket");
    eprintln!("missing bucket: {err}");
    assert!(
        !err.is_not_found(),
        "a missing bucket is not a missing path: {err}"
    );
    assert!(
        err.to_string()
            .contains("bucket or container does not exist"),
        "{err}"
    );

    let mut params = server.parameters(&unique_root("errors"));
    params["regionendpoint"] = json!("http://127.0.0.1:1");
    let started = Instant::now();
    let err = server
        .driver_with(params)
        .get_content("/x")
        .await
        .expect_err("nothing listens");
    eprintln!("unreachable endpoint ({:?}): {err}", started.elapsed());
    assert!(err.may_retry(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );

    for (key, value, expected) in [
        (
            "chunksize",
            json!(1 << 20),
            "expected an integer from 5242880 to 5368709120",
        ),
        ("bucketname", json!("x"), "unknown parameter"),
        (
            "objectacl",
            json!("public-read"),
            "only \"private\" is supported",
        ),
    ] {
        let mut params = server.parameters("/");
        params[key] = value;
        let params: Parameters = serde_json::from_value(params).expect("object");
        let err = driver_s3::S3Config::from_parameters(&params).expect_err(key);
        eprintln!("{key}: {err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
}

/// The state record of `path`'s upload, read as another tool would.
async fn upload_parts(server: &Server, root: &str, path: &str) -> usize {
    let raw = server.raw(root);
    let store = raw.store();
    let dir = raw.key(&format!("~uploads{path}"));
    let listing = store
        .list_with_delimiter(Some(&dir))
        .await
        .expect("list upload records");
    let state = listing
        .objects
        .iter()
        .filter(|m| {
            m.location
                .filename()
                .is_some_and(|n| n.starts_with("~state-"))
        })
        .max_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()))
        .expect("a state record");
    let body = store
        .get(&state.location)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    value["parts"].as_array().expect("parts").len()
}

/// Closing and resuming a writer 100 times never adds parts beyond size / chunksize
/// (distribution #3873: equal parts), and cancel leaves no reserved key behind.
#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_close_and_resume_cycles_keep_the_parts_whole() {
    let Some(server) = garage() else { return };
    let root = unique_root("cycles");
    let d = server.driver(&root);
    let piece = Bytes::from(vec![b'z'; 150 << 10]);
    let mut w = d.writer("/up", false).await.expect("writer");
    w.close().await.expect("close");
    for _ in 0..100 {
        let mut w = d.writer("/up", true).await.expect("resume");
        w.write(piece.clone()).await.expect("write");
        w.close().await.expect("close");
    }
    let size = 100 * piece.len() as u64;
    let parts = upload_parts(&server, &root, "/up").await;
    assert_eq!(
        parts as u64,
        size / (5 << 20),
        "{parts} parts for {size} bytes"
    );
    let mut w = d.writer("/up", true).await.expect("resume");
    assert_eq!(w.size(), size);
    w.commit().await.expect("commit");
    let content = d.get_content("/up").await.expect("get");
    assert!(content.len() as u64 == size && content.iter().all(|b| *b == b'z'));

    let mut w = d.writer("/cancelled", false).await.expect("writer");
    w.write(Bytes::from(vec![1u8; 11 << 20]))
        .await
        .expect("write two parts");
    w.close().await.expect("close");
    let mut w = d.writer("/cancelled", true).await.expect("resume");
    w.cancel().await.expect("cancel");
    let left = server.raw(&root).list("~uploads").await;
    assert!(left.is_empty(), "cancel and commit leave nothing: {left:?}");
}

/// distribution #886 / PR #1906: a rename above the single-copy threshold is a copy in
/// parts. By default a 12 MiB object with the threshold lowered to 5 MiB; with
/// `STORAGEDRIVER_SUITE=full`, a 6 GiB object at the default threshold (5 GiB, S3's limit).
#[tokio::test(flavor = "multi_thread")]
async fn rename_above_the_single_copy_limit() {
    let Some(server) = garage() else { return };
    let full = std::env::var("STORAGEDRIVER_SUITE").is_ok_and(|v| v == "full");
    let root = unique_root("bigmove");
    let mut params = server.parameters(&root);
    let size: u64 = if full {
        6 << 30
    } else {
        params["multipartcopythresholdsize"] = json!(5 << 20);
        params["multipartcopychunksize"] = json!(5 << 20);
        12 << 20
    };
    let d = server.driver_with(params);
    let mut w = d.writer("/big", false).await.expect("writer");
    let chunk = Bytes::from(
        (0..(8u32 << 20))
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let mut written = 0;
    while written < size {
        let n = (size - written).min(chunk.len() as u64) as usize;
        w.write(chunk.slice(..n)).await.expect("write");
        written += n as u64;
    }
    w.commit().await.expect("commit");
    let started = Instant::now();
    d.rename("/big", "/moved/big")
        .await
        .expect("rename in parts");
    eprintln!("renamed {size} bytes in {:?}", started.elapsed());
    assert!(matches!(
        d.stat("/big").await,
        Err(Error::PathNotFound { .. })
    ));
    assert_eq!(d.stat("/moved/big").await.expect("stat").size, size);
    let mut offset = 0u64;
    let mut stream = d.reader("/moved/big", 0).await.expect("reader");
    while let Some(data) = stream.try_next().await.expect("read") {
        for (i, b) in data.iter().enumerate() {
            let at = offset + i as u64;
            assert_eq!(*b, ((at % (8 << 20)) % 251) as u8, "byte {at}");
        }
        offset += data.len() as u64;
    }
    assert_eq!(offset, size);
    d.rename("/moved/big", "/moved/big")
        .await
        .expect("rename onto itself");
    assert_eq!(d.stat("/moved/big").await.expect("stat").size, size);
    d.delete("/moved").await.expect("delete");
}
