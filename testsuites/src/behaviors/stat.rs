//! Stat of files, directories and the root.

use std::time::Duration;

use bytes::Bytes;
use storagedriver::{Error, StorageDriver};

use super::{assert_not_found, ok, put};
use crate::data::random_bytes;

/// A file's stat has its path, size and is not a directory.
pub async fn stat_file(d: &dyn StorageDriver) {
    put(d, "/stat/dir/file", random_bytes(13, 321)).await;
    let info = ok(d.stat("/stat/dir/file").await, "stat of a file");
    assert_eq!(info.path, "/stat/dir/file", "stat path");
    assert_eq!(info.size, 321, "stat size");
    assert!(!info.is_dir, "a file is not a directory");
}

/// A directory's stat is a directory of size 0.
pub async fn stat_directory(d: &dyn StorageDriver) {
    put(d, "/stat/dir/file", random_bytes(14, 321)).await;
    for dir in ["/stat", "/stat/dir"] {
        let info = ok(d.stat(dir).await, "stat of a directory");
        assert_eq!(info.path, dir, "stat path");
        assert!(info.is_dir, "{dir} is a directory");
        assert_eq!(info.size, 0, "a directory has size 0");
    }
}

/// Stat of a missing path is PathNotFound.
pub async fn stat_missing(d: &dyn StorageDriver) {
    assert_not_found(
        d,
        d.stat("/stat/missing").await,
        "/stat/missing",
        "stat of a missing path",
    );
}

/// `stat("/")` is a directory or PathNotFound on an empty store, and a directory once the
/// store holds a file (registries call it as a health check).
pub async fn stat_root(d: &dyn StorageDriver) {
    match d.stat("/").await {
        Ok(info) => assert!(info.is_dir, "stat(/) of an empty store is a directory"),
        Err(Error::PathNotFound { .. }) => {}
        Err(other) => panic!("stat(/) of an empty store: {other:?}"),
    }
    put(d, "/health", Bytes::from_static(b"x")).await;
    let info = ok(d.stat("/").await, "stat(/) of a store with a file");
    assert!(info.is_dir, "stat(/) is a directory");
    assert_eq!(info.path, "/", "stat(/) path");
}

/// A rewritten file's mod_time is later than before the rewrite.
pub async fn stat_mod_time_after_rewrite(d: &dyn StorageDriver) {
    put(d, "/mtime/file", Bytes::from_static(b"one")).await;
    let before = ok(d.stat("/mtime/file").await, "stat before rewrite").mod_time;
    // Most backends have at least millisecond resolution; some object stores have seconds.
    let mut delay = Duration::from_millis(20);
    loop {
        tokio::time::sleep(delay).await;
        put(d, "/mtime/file", Bytes::from_static(b"two")).await;
        let after = ok(d.stat("/mtime/file").await, "stat after rewrite").mod_time;
        if after > before {
            return;
        }
        assert!(
            delay < Duration::from_secs(2),
            "mod_time did not move after a rewrite: {before:?} then {after:?}"
        );
        delay *= 4;
    }
}
