//! Moving files.

use bytes::Bytes;
use storagedriver::StorageDriver;

use super::{assert_not_found, get, ok, put};
use crate::data::random_bytes;

/// A file moves to a new path (creating its parents); the source is gone.
pub async fn rename_file(d: &dyn StorageDriver) {
    let content = random_bytes(10, 4096);
    put(d, "/move/source", content.clone()).await;
    ok(
        d.rename("/move/source", "/move/new/parents/dest").await,
        "rename",
    );
    assert_eq!(
        get(d, "/move/new/parents/dest").await,
        content,
        "content at the destination"
    );
    assert_not_found(
        d,
        d.get_content("/move/source").await,
        "/move/source",
        "the source after rename",
    );
}

/// A move overwrites an existing destination.
pub async fn rename_overwrite(d: &dyn StorageDriver) {
    let content = random_bytes(11, 100);
    put(d, "/overwrite/source", content.clone()).await;
    put(d, "/overwrite/dest", random_bytes(12, 5000)).await;
    ok(
        d.rename("/overwrite/source", "/overwrite/dest").await,
        "rename over a file",
    );
    assert_eq!(
        get(d, "/overwrite/dest").await,
        content,
        "the destination has the source's content"
    );
    assert_not_found(
        d,
        d.get_content("/overwrite/source").await,
        "/overwrite/source",
        "the source after rename",
    );
}

/// A missing source is PathNotFound naming the source, and the destination is untouched.
pub async fn rename_missing_source(d: &dyn StorageDriver) {
    put(d, "/nosource/dest", Bytes::from_static(b"dest")).await;
    let result = d.rename("/nosource/missing", "/nosource/dest").await;
    assert_not_found(d, result, "/nosource/missing", "rename of a missing source");
    assert_eq!(
        get(d, "/nosource/dest").await,
        Bytes::from_static(b"dest"),
        "the destination is untouched"
    );
}

/// Moving from below a file (Go TestMoveInvalid) is an error and changes nothing.
pub async fn rename_under_file(d: &dyn StorageDriver) {
    put(d, "/notadir", Bytes::from_static(b"file")).await;
    let result = d.rename("/notadir/foo", "/notadir/bar").await;
    assert!(result.is_err(), "rename from below a file succeeded");
    assert_eq!(
        get(d, "/notadir").await,
        Bytes::from_static(b"file"),
        "the file is untouched"
    );
    assert_eq!(
        ok(d.list("/").await, "list(/)"),
        ["/notadir"],
        "nothing else appeared"
    );
}

/// A file moved away and straight back, many times over: it is always there, whole, at the
/// end. Found on Garage 2.5, which may order a copy behind a delete of the same key made in
/// the same millisecond, so that a rename back to a just-vacated path lost the file.
pub async fn rename_back_and_forth(d: &dyn StorageDriver) {
    for round in 0..60u64 {
        let content = random_bytes(round, 64 + round as usize);
        put(d, "/bounce/a/x", content.clone()).await;
        ok(
            d.rename("/bounce/a/x", "/bounce/a/y").await,
            "rename x to y",
        );
        ok(
            d.rename("/bounce/a/y", "/bounce/b/z").await,
            "rename y away",
        );
        ok(
            d.rename("/bounce/b/z", "/bounce/a/y").await,
            "rename back to y",
        );
        assert_eq!(
            ok(d.list("/bounce/a").await, "list after the round trip"),
            ["/bounce/a/y"],
            "round {round}: the file is back"
        );
        assert_eq!(get(d, "/bounce/a/y").await, content, "round {round}: whole");
        ok(d.delete("/bounce").await, "delete the round");
    }
}
