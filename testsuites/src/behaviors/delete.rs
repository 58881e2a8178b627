//! Deleting files and directories.

use bytes::Bytes;
use storagedriver::StorageDriver;

use super::{assert_invalid_path, assert_not_found, get, ok, put};

/// Deleting a file removes it and leaves its siblings.
pub async fn delete_file(d: &dyn StorageDriver) {
    put(d, "/del/file", Bytes::from_static(b"x")).await;
    put(d, "/del/sibling", Bytes::from_static(b"y")).await;
    ok(d.delete("/del/file").await, "delete");
    assert_not_found(
        d,
        d.get_content("/del/file").await,
        "/del/file",
        "get after delete",
    );
    assert_eq!(
        get(d, "/del/sibling").await,
        Bytes::from_static(b"y"),
        "the sibling survives"
    );
    assert_eq!(
        ok(d.list("/del").await, "list after delete"),
        ["/del/sibling"]
    );
}

/// Deleting a missing path is PathNotFound.
pub async fn delete_missing(d: &dyn StorageDriver) {
    assert_not_found(
        d,
        d.delete("/del/missing").await,
        "/del/missing",
        "delete of a missing path",
    );
}

/// Deleting a directory removes everything below it.
pub async fn delete_directory(d: &dyn StorageDriver) {
    for path in [
        "/deldir/a/1",
        "/deldir/a/2",
        "/deldir/a/b/3",
        "/deldir/keep",
    ] {
        put(d, path, Bytes::from_static(b"x")).await;
    }
    ok(d.delete("/deldir/a").await, "delete a directory");
    for path in ["/deldir/a/1", "/deldir/a/2", "/deldir/a/b/3"] {
        assert_not_found(
            d,
            d.get_content(path).await,
            path,
            "a file below a deleted directory",
        );
    }
    assert_not_found(
        d,
        d.list("/deldir/a").await,
        "/deldir/a",
        "list of a deleted directory",
    );
    assert_eq!(
        ok(d.list("/deldir").await, "list after delete"),
        ["/deldir/keep"]
    );
}

/// Deleting `/d/f` keeps `/d/fsuffix`, and deleting `/d/d` keeps `/d/d-suffix/f` (Go
/// TestDeleteOnlyDeletesSubpaths: prefix deletes must respect `/`).
pub async fn delete_only_subpaths(d: &dyn StorageDriver) {
    for path in [
        "/only/f",
        "/only/fsuffix",
        "/only/f-c",
        "/only/d/f",
        "/only/dsuffix/f",
        "/only/d-c/f",
        "/only/d.c/f",
    ] {
        put(d, path, Bytes::from_static(b"x")).await;
    }
    ok(d.delete("/only/f").await, "delete /only/f");
    ok(d.delete("/only/d").await, "delete /only/d");
    for path in [
        "/only/fsuffix",
        "/only/f-c",
        "/only/dsuffix/f",
        "/only/d-c/f",
        "/only/d.c/f",
    ] {
        assert_eq!(
            get(d, path).await,
            Bytes::from_static(b"x"),
            "{path} must survive"
        );
    }
}

/// The root cannot be deleted.
pub async fn delete_root(d: &dyn StorageDriver) {
    put(d, "/keep", Bytes::from_static(b"x")).await;
    assert_invalid_path(d, d.delete("/").await, "/", "delete(/)");
    assert_eq!(
        get(d, "/keep").await,
        Bytes::from_static(b"x"),
        "the store survives delete(/)"
    );
}
