//! Whole-content put and get.

use bytes::Bytes;
use storagedriver::{Error, StorageDriver};

use super::{assert_not_found, assert_same, get, ok, put};
use crate::data::random_bytes;

async fn round_trip(d: &dyn StorageDriver, path: &str, content: Bytes) {
    put(d, path, content.clone()).await;
    assert_same(
        &get(d, path).await,
        &content,
        &format!("get_content({path}) after put_content"),
    );
}

/// A one-byte file (`a`) reads back.
pub async fn put_get_one_byte(d: &dyn StorageDriver) {
    round_trip(d, "/put/one-byte", Bytes::from_static(b"a")).await;
}

/// A two-byte UTF-8 string reads back.
pub async fn put_get_utf8(d: &dyn StorageDriver) {
    round_trip(d, "/put/utf8", Bytes::from("\u{e9}".as_bytes().to_vec())).await;
}

/// 32 random bytes read back.
pub async fn put_get_random_32(d: &dyn StorageDriver) {
    round_trip(d, "/put/random-32", random_bytes(32, 32)).await;
}

/// 1 MiB of random bytes reads back.
pub async fn put_get_1mib(d: &dyn StorageDriver) {
    round_trip(d, "/put/one-mib", random_bytes(1, 1 << 20)).await;
}

/// Bytes that are not UTF-8 read back unchanged.
pub async fn put_get_non_utf8(d: &dyn StorageDriver) {
    round_trip(
        d,
        "/put/non-utf8",
        Bytes::from_static(&[0xff, 0xfe, 0xfd, 0x80, 0x00, 0xc3, 0x28]),
    )
    .await;
}

/// An empty file reads back empty.
pub async fn put_get_empty(d: &dyn StorageDriver) {
    round_trip(d, "/put/empty", Bytes::new()).await;
}

/// Putting 1 KiB over 1 MiB leaves exactly the 1 KiB (no old tail).
pub async fn truncate(d: &dyn StorageDriver) {
    let path = "/truncate/file";
    put(d, path, random_bytes(2, 1 << 20)).await;
    let small = random_bytes(3, 1024);
    put(d, path, small.clone()).await;
    assert_same(
        &get(d, path).await,
        &small,
        "get_content after truncating put",
    );
    let info = ok(d.stat(path).await, "stat after truncating put");
    assert_eq!(info.size, 1024, "stat size after truncating put");
}

/// A second put replaces the first.
pub async fn put_twice(d: &dyn StorageDriver) {
    let path = "/twice/file";
    put(d, path, Bytes::from_static(b"first")).await;
    put(d, path, Bytes::from_static(b"second content")).await;
    assert_eq!(
        get(d, path).await,
        Bytes::from_static(b"second content"),
        "get after the second put"
    );
}

/// get_content of a missing path is PathNotFound naming the path and the driver.
pub async fn get_missing(d: &dyn StorageDriver) {
    assert_not_found(
        d,
        d.get_content("/missing/file").await,
        "/missing/file",
        "get_content of a missing path",
    );
}

/// get_content of a directory is PathNotFound.
pub async fn get_directory(d: &dyn StorageDriver) {
    put(d, "/dir/child", Bytes::from_static(b"x")).await;
    assert_not_found(
        d,
        d.get_content("/dir").await,
        "/dir",
        "get_content of a directory",
    );
}

/// A file where a directory is, or below a file, is a Conflict that changes nothing (drivers
/// with real directories); other drivers must at least keep the existing data readable.
pub async fn put_file_dir_conflict(d: &dyn StorageDriver) {
    put(d, "/clash/dir/child", Bytes::from_static(b"child")).await;
    put(d, "/clash/file", Bytes::from_static(b"file")).await;
    let over_dir = d
        .put_content("/clash/dir", Bytes::from_static(b"over"))
        .await;
    let under_file = d
        .put_content("/clash/file/below", Bytes::from_static(b"below"))
        .await;
    if d.capabilities().detects_file_dir_conflicts {
        assert!(
            matches!(over_dir, Err(Error::Conflict { .. })),
            "put over a directory: {over_dir:?}"
        );
        assert!(
            matches!(under_file, Err(Error::Conflict { .. })),
            "put below a file: {under_file:?}"
        );
        let listed = ok(d.list("/clash").await, "list after conflicts");
        assert_eq!(
            listed,
            ["/clash/dir", "/clash/file"],
            "the conflicts changed the tree"
        );
    }
    assert_eq!(
        get(d, "/clash/dir/child").await,
        Bytes::from_static(b"child"),
        "child survives"
    );
    assert_eq!(
        get(d, "/clash/file").await,
        Bytes::from_static(b"file"),
        "file survives"
    );
}
