//! Walking a tree.

use bytes::Bytes;
use storagedriver::{StorageDriver, WalkControl, WalkOptions};

use super::{assert_not_found, ok, put};

const TREE: &[&str] = &[
    "/walk/a/1",
    "/walk/a/2",
    "/walk/a/b/3",
    "/walk/a-c/4",
    "/walk/b",
    "/walk/c/d/e/5",
];

/// The full walk order of [`TREE`] from `/walk`: depth first, children sorted.
const ORDER: &[&str] = &[
    "/walk/a",
    "/walk/a/1",
    "/walk/a/2",
    "/walk/a/b",
    "/walk/a/b/3",
    "/walk/a-c",
    "/walk/a-c/4",
    "/walk/b",
    "/walk/c",
    "/walk/c/d",
    "/walk/c/d/e",
    "/walk/c/d/e/5",
];

async fn tree(d: &dyn StorageDriver) {
    for path in TREE {
        put(d, path, Bytes::from(path.as_bytes().to_vec())).await;
    }
}

async fn walk_collect(
    d: &dyn StorageDriver,
    from: &str,
    options: &WalkOptions,
    mut control: impl FnMut(&str) -> WalkControl + Send,
) -> Vec<String> {
    let mut seen = Vec::new();
    let result = d
        .walk(from, options, &mut |info| {
            seen.push(info.path.clone());
            control(&info.path)
        })
        .await;
    ok(result, &format!("walk({from})"));
    seen
}

/// Every file and directory comes depth first, children sorted, with correct FileInfo.
pub async fn walk_order(d: &dyn StorageDriver) {
    tree(d).await;
    let seen = walk_collect(d, "/walk", &WalkOptions::default(), |_| {
        WalkControl::Continue
    })
    .await;
    assert_eq!(seen, ORDER, "walk order");
    let mut infos = Vec::new();
    ok(
        d.walk("/walk/a", &WalkOptions::default(), &mut |info| {
            infos.push(info.clone());
            WalkControl::Continue
        })
        .await,
        "walk(/walk/a)",
    );
    for info in infos {
        assert_eq!(
            info.is_dir,
            info.path == "/walk/a/b",
            "is_dir of {}",
            info.path
        );
        if !info.is_dir {
            assert_eq!(info.size, info.path.len() as u64, "size of {}", info.path);
        }
    }
}

/// SkipDir on a directory skips its children; on a file, the rest of its directory.
pub async fn walk_skip_dir(d: &dyn StorageDriver) {
    tree(d).await;
    let seen = walk_collect(d, "/walk", &WalkOptions::default(), |p| {
        if p == "/walk/a" || p == "/walk/c/d" {
            WalkControl::SkipDir
        } else {
            WalkControl::Continue
        }
    })
    .await;
    assert_eq!(
        seen,
        [
            "/walk/a",
            "/walk/a-c",
            "/walk/a-c/4",
            "/walk/b",
            "/walk/c",
            "/walk/c/d"
        ],
        "skip directories"
    );
    let seen = walk_collect(d, "/walk/a", &WalkOptions::default(), |p| {
        if p == "/walk/a/1" {
            WalkControl::SkipDir
        } else {
            WalkControl::Continue
        }
    })
    .await;
    assert_eq!(
        seen,
        ["/walk/a/1"],
        "SkipDir on a file skips the rest of its directory"
    );
}

/// Stop ends the walk at once, successfully.
pub async fn walk_stop(d: &dyn StorageDriver) {
    tree(d).await;
    let seen = walk_collect(d, "/walk", &WalkOptions::default(), |p| {
        if p == "/walk/a/b/3" {
            WalkControl::Stop
        } else {
            WalkControl::Continue
        }
    })
    .await;
    assert_eq!(seen, &ORDER[..5], "stop");
}

/// A start-after hint resumes the walk after the given path.
pub async fn walk_start_after(d: &dyn StorageDriver) {
    tree(d).await;
    for (i, hint) in ORDER.iter().enumerate() {
        let options = WalkOptions::default().start_after(*hint);
        let seen = walk_collect(d, "/walk", &options, |_| WalkControl::Continue).await;
        assert_eq!(seen, &ORDER[i + 1..], "walk after {hint}");
    }
    let options = WalkOptions::default().start_after("/walk/a/10");
    let seen = walk_collect(d, "/walk", &options, |_| WalkControl::Continue).await;
    assert_eq!(seen, &ORDER[2..], "walk after a path that does not exist");
}

/// Walking a missing path, or a file, is PathNotFound; walking "/" of an empty store is empty.
pub async fn walk_missing(d: &dyn StorageDriver) {
    let seen = walk_collect(d, "/", &WalkOptions::default(), |_| WalkControl::Continue).await;
    assert!(seen.is_empty(), "walk(/) of an empty store: {seen:?}");
    let result = d
        .walk("/walk/missing", &WalkOptions::default(), &mut |_| {
            WalkControl::Continue
        })
        .await;
    assert_not_found(d, result, "/walk/missing", "walk of a missing path");
    put(d, "/walk/file", Bytes::from_static(b"x")).await;
    let result = d
        .walk("/walk/file", &WalkOptions::default(), &mut |_| {
            WalkControl::Continue
        })
        .await;
    assert_not_found(d, result, "/walk/file", "walk of a file");
}

/// Files deleted while the walk runs are not errors: each is skipped, or reported when the
/// driver had listed it before the delete (a walk over one flat listing, as on S3); every
/// entry that was not deleted is reported, in walk order. The deletes run from inside the
/// walk's callback, so this needs a multi-threaded tokio runtime (the suite's runner has one).
pub async fn walk_concurrent_delete(d: &dyn StorageDriver) {
    tree(d).await;
    let mut seen = Vec::new();
    let handle = tokio::runtime::Handle::current();
    let result = d
        .walk("/walk", &WalkOptions::default(), &mut |info| {
            seen.push(info.path.clone());
            if info.path == "/walk/a/1" {
                // Delete entries the walk has listed but not yet reached.
                tokio::task::block_in_place(|| {
                    handle.block_on(async {
                        ok(d.delete("/walk/a/2").await, "delete during walk");
                        ok(d.delete("/walk/c").await, "delete a directory during walk");
                    })
                });
            }
            WalkControl::Continue
        })
        .await;
    ok(result, "walk with concurrent deletes");
    let deleted = [
        "/walk/a/2",
        "/walk/c",
        "/walk/c/d",
        "/walk/c/d/e",
        "/walk/c/d/e/5",
    ];
    let kept: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .filter(|p| !deleted.contains(p))
        .collect();
    assert_eq!(
        kept,
        [
            "/walk/a",
            "/walk/a/1",
            "/walk/a/b",
            "/walk/a/b/3",
            "/walk/a-c",
            "/walk/a-c/4",
            "/walk/b"
        ],
        "entries that were not deleted, in walk order"
    );
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| storagedriver::walk::walk_order(a, b));
    assert_eq!(
        seen, sorted,
        "a walk with concurrent deletes keeps walk order"
    );
}
