//! The client's spans carry their fields: a log line of a call names the driver, the path and
//! the call's arguments.

use std::sync::Arc;

use bytes::Bytes;
use driver_inmemory::InMemoryDriver;
use storagedriver::{StorageDriver, WalkControl, WalkOptions};
use storagedriver_ipc::{IpcDriver, serve};
use testsuites::logs::Captured;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_spans_record_their_fields() {
    let (server_side, client_side) = tokio::net::UnixStream::pair().expect("a socket pair");
    tokio::spawn(serve(Arc::new(InMemoryDriver::new()), server_side));
    let client = IpcDriver::connect("inmemory", client_side)
        .await
        .expect("connects");
    let logs = Captured::default();
    let _guard = logs.install();
    client
        .put_content("/a/b", Bytes::from_static(b"hello"))
        .await
        .expect("put");
    drop(client.reader("/a/b", 3).await.expect("reader"));
    let mut writer = client.writer("/a/c", true).await;
    if let Ok(w) = writer.as_mut() {
        w.cancel().await.expect("cancel");
    }
    client.rename("/a/b", "/a/d").await.expect("rename");
    client
        .walk(
            "/a",
            &WalkOptions::default().start_after("/a/c"),
            &mut |_| WalkControl::Continue,
        )
        .await
        .expect("walk");
    let log = logs.text();
    for expected in [
        "put_content{driver=inmemory path=/a/b len=5}",
        "reader{driver=inmemory path=/a/b offset=3}",
        "writer{driver=inmemory path=/a/c append=true}",
        "rename{driver=inmemory source=/a/b dest=/a/d}",
        "walk{driver=inmemory path=/a start_after=\"/a/c\"}",
    ] {
        assert!(log.contains(expected), "no `{expected}` in the log:\n{log}");
    }
}
