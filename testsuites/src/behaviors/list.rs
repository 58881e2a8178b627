//! Listing directories.

use bytes::Bytes;
use storagedriver::StorageDriver;

use super::{assert_not_found, ok, put};

/// Children come back sorted, as absolute paths, files and directories alike.
pub async fn list_sorted(d: &dyn StorageDriver) {
    let names = ["zeta", "alpha", "Beta", "m-1", "m.1", "m_1", "0", "m"];
    for name in names {
        put(d, &format!("/sorted/{name}"), Bytes::from_static(b"x")).await;
    }
    put(d, "/sorted/dir/child", Bytes::from_static(b"x")).await;
    let listed = ok(d.list("/sorted").await, "list(/sorted)");
    let mut expected: Vec<String> = names.iter().map(|n| format!("/sorted/{n}")).collect();
    expected.push("/sorted/dir".to_owned());
    expected.sort();
    assert_eq!(listed, expected, "list must be sorted");
}

/// `list("/")` shows the top level.
pub async fn list_root(d: &dyn StorageDriver) {
    put(d, "/root-a/file", Bytes::from_static(b"x")).await;
    put(d, "/root-b", Bytes::from_static(b"x")).await;
    let listed = ok(d.list("/").await, "list(/)");
    assert_eq!(listed, ["/root-a", "/root-b"], "list(/)");
}

/// `list("/")` of an empty store is an empty list, not an error.
pub async fn list_empty_root(d: &dyn StorageDriver) {
    let listed = ok(d.list("/").await, "list(/) of an empty store");
    assert!(listed.is_empty(), "list(/) of an empty store: {listed:?}");
}

/// Listing a missing directory is PathNotFound, not an empty list.
pub async fn list_missing_directory(d: &dyn StorageDriver) {
    put(d, "/present/file", Bytes::from_static(b"x")).await;
    assert_not_found(
        d,
        d.list("/present/nonexistent").await,
        "/present/nonexistent",
        "list of a missing directory",
    );
    assert_not_found(
        d,
        d.list("/absent").await,
        "/absent",
        "list of a missing top-level directory",
    );
}

/// Listing a file is PathNotFound (a file has no children).
pub async fn list_file(d: &dyn StorageDriver) {
    put(d, "/listfile/file", Bytes::from_static(b"x")).await;
    assert_not_found(
        d,
        d.list("/listfile/file").await,
        "/listfile/file",
        "list of a file",
    );
}

/// Directories implied by deeper files are listed once each; only direct children appear.
pub async fn list_nested(d: &dyn StorageDriver) {
    for path in [
        "/nested/a/b/c/file1",
        "/nested/a/b/c/file2",
        "/nested/a/b/file3",
        "/nested/a/x",
        "/nested/top",
    ] {
        put(d, path, Bytes::from_static(b"x")).await;
    }
    assert_eq!(
        ok(d.list("/nested").await, "list(/nested)"),
        ["/nested/a", "/nested/top"]
    );
    assert_eq!(
        ok(d.list("/nested/a").await, "list(/nested/a)"),
        ["/nested/a/b", "/nested/a/x"]
    );
    assert_eq!(
        ok(d.list("/nested/a/b").await, "list(/nested/a/b)"),
        ["/nested/a/b/c", "/nested/a/b/file3"]
    );
    assert_eq!(
        ok(d.list("/nested/a/b/c").await, "list(/nested/a/b/c)"),
        ["/nested/a/b/c/file1", "/nested/a/b/c/file2"]
    );
}
