//! The Azure driver against Azurite (which checks Shared Key signatures and SAS tokens): the
//! container created on first use, paging, foreign blob names, SAS URLs, credentials the
//! service refuses, and the errors a user sees. Skipped without the server, a failure under
//! `STORAGEDRIVER_REQUIRE_SERVERS=1`.

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use common::{Server, unique_name, unique_root};
use hmac::{Hmac, Mac};
use object_store::ObjectStoreExt;
use serde_json::json;
use sha2::Sha256;
use storagedriver::{Error, FileWriter, Parameters, StorageDriver, UrlOptions};
use testsuites::regressions::{self, SignedUrls};

/// Azurite, or `None` (and a note) when it is not configured and not required.
fn azurite() -> Option<Server> {
    common::or_skip(common::server())
}

/// An account SAS for the blob service that may read and list, and nothing else: it may
/// not create a container.
fn read_only_account_sas(server: &Server) -> String {
    let now = chrono::Utc::now();
    let start = (now - chrono::Duration::minutes(5))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let expiry = (now + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let version = "2021-08-06";
    // Account SAS, version 2020-12-06 and later: account, permissions, services, resource
    // types, start, expiry, IP, protocol, version, encryption scope, each followed by "\n".
    let to_sign = format!(
        "{}\nrl\nb\nsco\n{start}\n{expiry}\n\n\n{version}\n\n",
        server.account
    );
    let key = STANDARD.decode(&server.key).expect("a base64 key");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("an HMAC key");
    mac.update(to_sign.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    let encode = |s: &str| {
        s.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    };
    format!(
        "sv={version}&ss=b&srt=sco&sp=rl&st={}&se={}&sig={}",
        start.replace(':', "%3A"),
        expiry.replace(':', "%3A"),
        encode(&signature)
    )
}

/// Go's driver created its container when it was missing; so does `connect`, also when many
/// drivers connect at once, and a driver built without connecting says the container is
/// missing.
#[tokio::test(flavor = "multi_thread")]
async fn the_container_is_created_on_first_use() {
    let Some(server) = azurite() else { return };
    let container = unique_name("fresh");
    let params = server.parameters_in(&container, "/registry");
    let unconnected = Server::config(params.clone()).build().expect("a driver");
    let err = unconnected
        .put_content("/x", Bytes::from_static(b"x"))
        .await
        .expect_err("no container yet");
    assert!(
        err.to_string()
            .contains("the bucket or container does not exist"),
        "{err}"
    );

    // Eight drivers connect at once: one creates the container, the others find it.
    let drivers =
        futures::future::join_all((0..8).map(|_| server.driver_with(params.clone()))).await;
    let d = &drivers[0];
    d.put_content("/x", Bytes::from_static(b"first use"))
        .await
        .expect("put into the new container");
    let again = server.driver_with(params).await;
    assert_eq!(
        again.get_content("/x").await.expect("read back"),
        "first use",
        "a second connect finds the container and its content"
    );
}

/// CI found this: under load, Azurite dropped the one Create Container request of a
/// `connect`, which failed at once. The request is idempotent, so it is retried like every
/// other: here a relay drops the first two connections and forwards the rest to Azurite.
#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_create_container_request_is_retried() {
    let Some(server) = azurite() else { return };
    let upstream = server
        .service_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("a host and port")
        .to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let port = listener.local_addr().expect("an address").port();
    let relay = tokio::spawn(async move {
        let mut dropped = 0;
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            if dropped < 2 {
                dropped += 1;
                drop(client);
                continue;
            }
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut target) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut target).await;
                }
            });
        }
    });
    let container = unique_name("relayed");
    let mut params = server.parameters_in(&container, "/registry");
    let path = server.service_url.splitn(4, '/').nth(3).unwrap_or("");
    params["serviceurl"] = json!(format!("http://127.0.0.1:{port}/{path}"));
    params["retry_delay"] = json!("10ms");
    let d = Server::config(params.clone())
        .connect()
        .await
        .expect("connected after two dropped connections");
    d.put_content("/x", Bytes::from_static(b"relayed"))
        .await
        .expect("put into the container the retried request created");
    relay.abort();

    params["max_retries"] = json!(0);
    params["serviceurl"] = json!("http://127.0.0.1:1/devstoreaccount1");
    let err = Server::config(params)
        .connect()
        .await
        .expect_err("nothing listens, and no retry is allowed");
    assert!(err.to_string().contains("(attempts: 1)"), "{err}");
    assert!(err.to_string().contains("Connection refused"), "{err}");
}

/// Azure lists at most 5,000 blobs per page: a directory of 5,100 lists and walks whole.
#[tokio::test(flavor = "multi_thread")]
async fn over_five_thousand_blobs_in_one_directory() {
    let Some(server) = azurite() else { return };
    let root = unique_root("paging");
    let (d, raw) = (server.driver(&root).await, server.raw(&root));
    regressions::many_keys_in_one_directory(d.as_ref(), 5_100, |rest| raw.put(rest, b"x")).await;
}

/// distribution #3142 (TestDeleteOnlyDeletesSubpaths): deleting `d/f` keeps `d/fsuffix`,
/// deleting `d/d` keeps `d/dsuffix/f` and `d/d-x`.
#[tokio::test(flavor = "multi_thread")]
async fn delete_removes_only_subpaths() {
    let Some(server) = azurite() else { return };
    let d = server.driver(&unique_root("subpaths")).await;
    regressions::delete_removes_only_subpaths(d.as_ref()).await;
}

/// Blobs another tool wrote at names that are not valid paths (a space, a colon, a `~`)
/// are skipped by list and walk, and removed with the directory above them.
#[tokio::test(flavor = "multi_thread")]
async fn blob_names_that_are_not_paths_are_skipped() {
    let Some(server) = azurite() else { return };
    let root = unique_root("foreign");
    let (d, raw) = (server.driver(&root).await, server.raw(&root));
    regressions::foreign_keys_are_skipped(d.as_ref(), |rest| raw.put(rest, b"foreign")).await;
    assert!(
        raw.store()
            .head(&raw.key("dir/x:y"))
            .await
            .is_err_and(|e| matches!(e, object_store::Error::NotFound { .. })),
        "the foreign blob below /dir is gone"
    );
}

/// url_for: a SAS URL for GET and one for HEAD work from a plain HTTP client, and are
/// refused after their expiry.
#[tokio::test(flavor = "multi_thread")]
async fn sas_urls_work_until_they_expire() {
    let Some(server) = azurite() else { return };
    let d = server.driver(&unique_root("sas")).await;
    let rules = SignedUrls {
        get_url_contains: Some("sig="),
        // A SAS grants read, not one method: a HEAD with it is not checked.
        head_with_get_url: None,
        expired: &[403],
    };
    regressions::signed_urls_work_until_they_expire(d.as_ref(), &rules).await;
}

/// Asserts that `err`, the refusal of a wrong account key, came at once (within 5 s of
/// `started`), may not be retried, and says `starts`; returns its text.
fn assert_refused_at_once(err: &Error, started: Instant, starts: &str) -> String {
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!err.may_retry(), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with(starts), "{text}");
    text
}

/// A wrong account key is a clear authentication error when the driver is created, and on
/// any operation of a driver built without connecting: at once, never a retry loop.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_account_key_fails_at_once() {
    let Some(server) = azurite() else { return };
    let mut params = server.parameters(&unique_root("auth"));
    params["accountkey"] = json!(STANDARD.encode([7u8; 64]));
    let config = Server::config(params);
    let started = Instant::now();
    let err = config.connect().await.expect_err("a wrong key");
    eprintln!("wrong account key, connect: {err}");
    let text = assert_refused_at_once(
        &err,
        started,
        "azure: create container: authentication failed",
    );
    // Azure answers AuthenticationFailed; Azurite AuthorizationFailure, then 403 to a listing.
    assert!(text.contains("403"), "{text}");

    let d = config.build().expect("a driver, not connected");
    let started = Instant::now();
    let err = d
        .put_content("/x", Bytes::from_static(b"x"))
        .await
        .expect_err("a wrong key");
    eprintln!("wrong account key, put_content: {err}");
    assert_refused_at_once(&err, started, "azure: put_content /x: access denied");
}

/// A credential that may read but not create containers: connecting to a missing container
/// says so; connecting to an existing one works, read-only, and url_for is unsupported (a
/// SAS cannot sign another).
#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_sas_cannot_create_the_container() {
    let Some(server) = azurite() else { return };
    let sas = read_only_account_sas(&server);
    let with_sas = |container: &str| {
        json!({
            "accountname": server.account,
            "sastoken": sas,
            "serviceurl": server.service_url,
            "container": container,
        })
    };
    let missing = unique_name("missing");
    let err = Server::config(with_sas(&missing))
        .connect()
        .await
        .expect_err("a missing container the SAS may not create");
    eprintln!("missing container, read-only SAS: {err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("container {missing:?} does not exist"))
            && text.contains("may not create it"),
        "{text}"
    );
    assert!(!err.may_retry(), "{err:?}");

    let root = unique_root("readonly");
    server
        .driver(&root)
        .await
        .put_content("/readable", Bytes::from_static(b"readable"))
        .await
        .expect("put with the key");
    let mut params = with_sas(common::CONTAINER);
    params["rootdirectory"] = json!(root);
    let d = Server::config(params)
        .connect()
        .await
        .expect("an existing container needs no create right");
    assert_eq!(d.get_content("/readable").await.expect("read"), "readable");
    assert!(!d.capabilities().url_for);
    assert!(matches!(
        d.url_for("/readable", &UrlOptions::default()).await,
        Err(Error::Unsupported { .. })
    ));
    let err = d
        .put_content("/denied", Bytes::from_static(b"x"))
        .await
        .expect_err("the SAS may not write");
    assert!(err.to_string().contains("access denied"), "{err}");
}

/// What a user sees for an unreachable endpoint, an unknown parameter and the Go
/// parameters the driver refuses.
#[tokio::test(flavor = "multi_thread")]
async fn errors_say_what_is_wrong() {
    let Some(server) = azurite() else { return };
    let mut params = server.parameters(&unique_root("errors"));
    params["serviceurl"] = json!("http://127.0.0.1:1/devstoreaccount1");
    params["max_retries"] = json!(1);
    let started = Instant::now();
    let err = Server::config(params)
        .connect()
        .await
        .expect_err("nothing listens");
    eprintln!("unreachable endpoint ({:?}): {err}", started.elapsed());
    assert!(err.may_retry(), "{err:?}");
    assert!(err.to_string().contains("cannot reach"), "{err}");

    for (key, value, expected) in [
        ("bucket", json!("x"), "unknown parameter (accepted: "),
        (
            "credentials",
            json!({ "type": "default_credentials" }),
            "default_credentials is not supported",
        ),
        (
            "credentials",
            json!({ "type": "client_secret", "clientid": "c", "tenantid": "t" }),
            "parameter \"credentials.secret\": required by client_secret",
        ),
        (
            "accountkey",
            json!("not base64!"),
            "not a base64 account key",
        ),
        ("retry_delay", json!("soon"), "expected a duration"),
    ] {
        let mut params = server.parameters("/");
        params[key] = value;
        let params: Parameters = serde_json::from_value(params).expect("object");
        let err = driver_azure::AzureConfig::from_parameters(&params).expect_err(key);
        eprintln!("{key}: {err}");
        assert!(err.to_string().contains(expected), "{err}");
    }
}

/// A connection string alone (the emulator's shortcut, here with Azurite's endpoint) is
/// enough to connect.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_string_is_enough() {
    let Some(server) = azurite() else { return };
    let connection = format!(
        "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={};",
        server.account, server.key, server.service_url
    );
    let d = server
        .driver_with(json!({
            "connectionstring": connection,
            "container": common::CONTAINER,
            "rootdirectory": unique_root("connection"),
        }))
        .await;
    d.put_content("/x", Bytes::from_static(b"x"))
        .await
        .expect("put");
    assert_eq!(d.list("/").await.expect("list"), ["/x"]);
}

/// Content committed at a path while a closed writer waits there: Azure discards the
/// path's staged blocks, so the resumed writer's commit fails and the other content stays.
#[tokio::test(flavor = "multi_thread")]
async fn other_content_committed_over_a_closed_writer_wins() {
    let Some(server) = azurite() else { return };
    let d = server.driver(&unique_root("overwrite")).await;
    let mut writer = d.writer("/blob", false).await.expect("writer");
    writer
        .write(Bytes::from(vec![1u8; 6 << 20]))
        .await
        .expect("one block and a tail");
    writer.close().await.expect("close");
    d.put_content("/blob", Bytes::from_static(b"other"))
        .await
        .expect("put over it");
    let mut resumed = d.writer("/blob", true).await.expect("resume");
    let outcome = resumed.commit().await;
    let content = d.get_content("/blob").await.expect("read");
    eprintln!(
        "commit after put_content: {outcome:?}; content {} bytes",
        content.len()
    );
    match outcome {
        Ok(()) => assert_eq!(content.len(), 6 << 20, "a commit that succeeds is whole"),
        Err(err) => {
            assert_eq!(content, "other", "a failed commit changes nothing: {err}");
        }
    }
}
