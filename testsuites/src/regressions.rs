//! The regressions the object-store drivers (S3, Azure) check against their servers, beyond
//! the suite: listings longer than a page, deletes that stop at the path's end, keys another
//! tool wrote, and signed URLs fetched by a plain HTTP client. One public async function per
//! behaviour, taking the driver and what differs between services; the driver crates' tests
//! call them, each under its own name.
//!
//! As in [`behaviors`](crate::behaviors), each panics with context when the driver is wrong
//! and assumes a fresh, empty root.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use storagedriver::{Method, StorageDriver, UrlOptions};

use crate::behaviors::{ok, put};
use crate::http::fetch;
use crate::servers::walk_paths;

/// distribution #1055 (TestOverThousandBlobs): a directory of `count` keys, more than one
/// listing page of the service, lists and walks whole, and deletes whole (in batches).
///
/// `put_raw(rest)` writes a small object at the key `rest` below the driver's root without the
/// driver (see [`RawStore::put`](crate::servers::RawStore::put)); it is called 32 at a time.
pub async fn many_keys_in_one_directory<P, PF>(d: &dyn StorageDriver, count: usize, put_raw: P)
where
    P: Fn(String) -> PF,
    PF: Future<Output = ()>,
{
    let names: Vec<String> = (0..count).map(|i| format!("blob-{i:05}")).collect();
    futures::stream::iter(names.iter())
        .map(|name| put_raw(format!("many/{name}")))
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let expected: Vec<String> = names.iter().map(|n| format!("/many/{n}")).collect();
    assert_eq!(ok(d.list("/many").await, "list"), expected);
    assert_eq!(walk_paths(d, "/many").await, expected);
    ok(
        d.delete("/many").await,
        &format!("delete {count} keys in batches"),
    );
    assert!(ok(d.list("/").await, "list root").is_empty());
}

/// distribution #3142 / PR #3479 (TestDeleteOnlyDeletesSubpaths): deleting `d/f` keeps
/// `d/fsuffix`, deleting `d/d` keeps `d/dsuffix/f` and `d/d-x`.
pub async fn delete_removes_only_subpaths(d: &dyn StorageDriver) {
    for path in ["/d/f", "/d/fsuffix", "/d/d/f", "/d/dsuffix/f", "/d/d-x"] {
        put(d, path, Bytes::from_static(b"x")).await;
    }
    ok(d.delete("/d/f").await, "delete a file");
    ok(d.delete("/d/d").await, "delete a directory");
    assert_eq!(
        ok(d.list("/d").await, "list"),
        ["/d/d-x", "/d/dsuffix", "/d/fsuffix"]
    );
    assert_eq!(ok(d.list("/d/dsuffix").await, "list"), ["/d/dsuffix/f"]);
}

/// The keys [`foreign_keys_are_skipped`] writes without the driver, below its root: a space
/// and a `!`, a colon, a `~`, and a space at the top.
pub const FOREIGN_KEYS: [&str; 4] = ["dir/Bad Key!", "dir/x:y", "dir/ok-too~", "Top Level"];

/// distribution #2119 and TestEmptyRootList: keys another tool wrote that are not valid paths
/// ([`FOREIGN_KEYS`]) are skipped by list and walk, and a delete of the directory above them
/// succeeds.
///
/// `put_raw(rest)` writes a small object at the key `rest` below the driver's root without the
/// driver (see [`RawStore::put`](crate::servers::RawStore::put)).
pub async fn foreign_keys_are_skipped<P, PF>(d: &dyn StorageDriver, put_raw: P)
where
    P: Fn(&'static str) -> PF,
    PF: Future<Output = ()>,
{
    put(d, "/dir/ok", Bytes::from_static(b"x")).await;
    for rest in FOREIGN_KEYS {
        put_raw(rest).await;
    }
    assert_eq!(ok(d.list("/").await, "list /"), ["/dir"]);
    assert_eq!(ok(d.list("/dir").await, "list /dir"), ["/dir/ok"]);
    assert_eq!(walk_paths(d, "/").await, ["/dir", "/dir/ok"]);
    ok(
        d.delete("/dir").await,
        "delete removes foreign keys below too",
    );
}

/// What a service does with the URLs `url_for` signs, where services differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedUrls {
    /// Text a URL for GET contains (Azure's SAS: `sig=`), when checked.
    pub get_url_contains: Option<&'static str>,
    /// The status of a HEAD sent with a URL signed for GET, when checked: S3 signs the method,
    /// so 403.
    pub head_with_get_url: Option<u16>,
    /// The statuses that refuse an expired URL (Garage answers 400 "Date is too old", AWS 403
    /// "Request has expired", Azure 403).
    pub expired: &'static [u16],
}

/// url_for: a signed GET and HEAD work from a plain HTTP client, and stop working after their
/// expiry (a 1 s URL fetched 2.5 s later), as `rules` says the service does.
pub async fn signed_urls_work_until_they_expire(d: &dyn StorageDriver, rules: &SignedUrls) {
    let content: &[u8] = b"signed content";
    put(d, "/blob", Bytes::from_static(content)).await;
    let get = ok(d.url_for("/blob", &UrlOptions::default()).await, "GET URL");
    if let Some(text) = rules.get_url_contains {
        assert!(get.contains(text), "a URL with {text:?}: {get}");
    }
    let reply = ok(fetch("GET", &get).await, "GET");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, content);
    let head_options = UrlOptions {
        method: Method::Head,
        ..UrlOptions::default()
    };
    let head = ok(d.url_for("/blob", &head_options).await, "HEAD URL");
    let reply = ok(fetch("HEAD", &head).await, "HEAD");
    assert_eq!(
        (reply.status, reply.content_length),
        (200, Some(content.len() as u64)),
        "{reply:?}"
    );
    if let Some(status) = rules.head_with_get_url {
        let reply = ok(fetch("HEAD", &get).await, "HEAD with a GET URL");
        assert_eq!(
            reply.status, status,
            "a HEAD with a URL signed for GET: {reply:?}"
        );
    }

    let short = UrlOptions {
        expires_in: Duration::from_secs(1),
        ..UrlOptions::default()
    };
    let url = ok(d.url_for("/blob", &short).await, "a short URL");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let reply = ok(fetch("GET", &url).await, "GET after expiry");
    assert!(
        rules.expired.contains(&reply.status),
        "an expired URL is refused with one of {:?}: {reply:?}",
        rules.expired
    );
}
