//! The path grammar, as every driver must enforce it.

use bytes::Bytes;
use storagedriver::{StorageDriver, UrlOptions, WalkControl, WalkOptions};

use super::{assert_invalid_path, get, ok, put};

/// Paths the grammar accepts (the Go TestValidPaths list and more).
pub const VALID_PATHS: &[&str] = &[
    "/a",
    "/2",
    "/aa",
    "/a.a",
    "/0-9/abcdefg",
    "/abcdefg/z.75",
    "/abc/1.2.3.4.5-6_zyx/123.z/4",
    "/docker/docker-registry",
    "/123.abc",
    "/abc./abc",
    "/.abc",
    "/a--b",
    "/a-.b",
    "/_.abc",
    "/Docker/docker-registry",
    "/Abc/Cba",
];

/// Paths the grammar rejects for a file operation.
pub const INVALID_PATHS: &[&str] = &[
    "",
    "/",
    "abc",
    "123.abc",
    "//bcd",
    "/abc_123/",
    "/a/../b",
    "/./a",
    "/a/.",
    "/..",
    "/a b",
    "/ä",
    "/a#b",
    "/a\\b",
    "/a:b",
];

/// Every valid path can be written and read back; the content lands where it was put. This
/// includes a 255-byte component, through `put_content` and through a resumed writer, and a
/// path of exactly 1024 bytes.
pub async fn valid_paths(d: &dyn StorageDriver) {
    let long_component = format!("/long/{}", "c".repeat(255));
    let longest_path = format!("/{}", "d".repeat(200)).repeat(5) + &format!("/{}", "e".repeat(18));
    assert_eq!(longest_path.len(), 1024);
    let mut paths: Vec<&str> = VALID_PATHS.to_vec();
    paths.push(&long_component);
    paths.push(&longest_path);
    for path in [long_component.as_str(), longest_path.as_str()] {
        let mut w = ok(d.writer(path, false).await, &format!("writer({path})"));
        ok(w.write(Bytes::from_static(b"part one ")).await, "write");
        ok(w.close().await, "close");
        let mut w = ok(
            d.writer(path, true).await,
            &format!("resume writer({path})"),
        );
        ok(w.write(Bytes::from_static(b"part two")).await, "write");
        ok(w.commit().await, "commit");
        assert_eq!(
            get(d, path).await,
            Bytes::from_static(b"part one part two"),
            "{path} after a resumed writer"
        );
    }
    for (i, path) in paths.iter().enumerate() {
        let content = Bytes::from(format!("content {i}"));
        put(d, path, content.clone()).await;
        assert_eq!(get(d, path).await, content, "get_content({path})");
        ok(
            d.delete(first_component(path)).await,
            &format!("delete {path}"),
        );
    }
}

fn first_component(path: &str) -> &str {
    match path[1..].find('/') {
        Some(i) => &path[..i + 1],
        None => path,
    }
}

/// Invalid paths are InvalidPath errors from put_content and get_content, naming the driver.
pub async fn invalid_paths(d: &dyn StorageDriver) {
    for path in INVALID_PATHS {
        assert_invalid_path(
            d,
            d.put_content(path, Bytes::from_static(b"x")).await,
            path,
            "put_content",
        );
        assert_invalid_path(d, d.get_content(path).await, path, "get_content");
    }
    let long = format!("/{}", "a".repeat(256));
    assert_invalid_path(
        d,
        d.put_content(&long, Bytes::new()).await,
        &long,
        "put_content of a 256-byte component",
    );
    let too_long = "/abcdefghij".repeat(103);
    assert_invalid_path(
        d,
        d.put_content(&too_long, Bytes::new()).await,
        &too_long,
        "put_content of a 1133-byte path",
    );
    let listed = ok(d.list("/").await, "list(/) after invalid puts");
    assert!(
        listed.is_empty(),
        "an invalid put left something behind: {listed:?}"
    );
}

/// Every operation rejects an invalid path with InvalidPath before touching the backend; only
/// list, stat and walk accept the root.
pub async fn invalid_paths_every_operation(d: &dyn StorageDriver) {
    put(d, "/file", Bytes::from_static(b"x")).await;
    for path in ["/a/../file", "//file", "/file/", "/a b"] {
        assert_invalid_path(d, d.get_content(path).await, path, "get_content");
        assert_invalid_path(d, d.reader(path, 0).await.map(|_| ()), path, "reader");
        assert_invalid_path(d, d.writer(path, false).await.map(|_| ()), path, "writer");
        assert_invalid_path(
            d,
            d.writer(path, true).await.map(|_| ()),
            path,
            "writer(append)",
        );
        assert_invalid_path(d, d.stat(path).await, path, "stat");
        assert_invalid_path(d, d.list(path).await, path, "list");
        assert_invalid_path(d, d.rename(path, "/dest").await, path, "rename source");
        assert_invalid_path(d, d.rename("/file", path).await, path, "rename dest");
        assert_invalid_path(d, d.delete(path).await, path, "delete");
        assert_invalid_path(
            d,
            d.url_for(path, &UrlOptions::default()).await,
            path,
            "url_for",
        );
        let walked = d
            .walk(path, &WalkOptions::default(), &mut |_| {
                WalkControl::Continue
            })
            .await;
        assert_invalid_path(d, walked, path, "walk");
    }
    assert_invalid_path(d, d.delete("/").await, "/", "delete(/)");
    assert_invalid_path(d, d.get_content("/").await, "/", "get_content(/)");
    assert_invalid_path(d, d.writer("/", false).await.map(|_| ()), "/", "writer(/)");
    assert_eq!(
        get(d, "/file").await,
        Bytes::from_static(b"x"),
        "the file survived"
    );
}
