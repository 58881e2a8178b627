//! The server against a raw peer: garbage, truncated and oversized frames, protocol
//! violations, and the rules of PROTOCOL.md seen from the wire.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use driver_inmemory::InMemoryDriver;
use futures::StreamExt;
use serde_json::{Value, json};
use storagedriver::StorageDriver;
use storagedriver_ipc::frame::{self, Frame, FrameDecoder, FrameType, MAX_PAYLOAD};
use storagedriver_ipc::serve;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

mod common;

/// A raw client: writes frames, reads frames.
struct Raw {
    stream: UnixStream,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl Raw {
    async fn send(&mut self, kind: FrameType, id: u64, payload: impl Into<Bytes>) {
        let mut out = BytesMut::new();
        frame::encode(&Frame::new(kind, id, payload), &mut out).expect("encodes");
        self.stream.write_all(&out).await.expect("write");
    }

    async fn send_json(&mut self, kind: FrameType, id: u64, value: Value) {
        self.send(kind, id, value.to_string().into_bytes()).await;
    }

    /// The next frame, or `None` at end of file.
    async fn next(&mut self) -> Option<Frame> {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(f) = self.decoder.decode(&mut self.buf).expect("valid frames") {
                    return Some(f);
                }
                self.buf.reserve(64 * 1024);
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("the server answers within 5 s")
    }

    async fn expect(&mut self, kind: FrameType) -> Frame {
        let f = self.next().await.expect("a frame");
        assert_eq!(f.kind, kind, "got {f:?}");
        f
    }

    async fn json(&mut self, kind: FrameType) -> (u64, Value) {
        let f = self.expect(kind).await;
        (f.id, serde_json::from_slice(&f.payload).expect("JSON"))
    }

    /// The handshake as a 1.0 client (windows of 4 MiB).
    async fn hello(&mut self) -> Value {
        self.hello_as("1.0").await
    }

    /// The handshake as a client of `version`.
    async fn hello_as(&mut self, version: &str) -> Value {
        self.send_json(
            FrameType::Hello,
            0,
            json!({"protocol":"registry-storage-ipc","version":version}),
        )
        .await;
        self.json(FrameType::Welcome).await.1
    }
}

/// A raw client connected to `serve(driver)`.
fn start_with(driver: Arc<dyn StorageDriver>) -> (Raw, JoinHandle<storagedriver::Result<()>>) {
    let (server_side, client_side) = UnixStream::pair().expect("a socket pair");
    let server = tokio::spawn(serve(driver, server_side));
    (
        Raw {
            stream: client_side,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(),
        },
        server,
    )
}

fn start() -> (
    Raw,
    JoinHandle<storagedriver::Result<()>>,
    Arc<InMemoryDriver>,
) {
    let driver = Arc::new(InMemoryDriver::new());
    let (server_side, client_side) = UnixStream::pair().expect("a socket pair");
    let server = tokio::spawn(serve(driver.clone() as Arc<dyn StorageDriver>, server_side));
    (
        Raw {
            stream: client_side,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(),
        },
        server,
        driver,
    )
}

async fn ends_with_err(server: JoinHandle<storagedriver::Result<()>>) -> String {
    let result = tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("the server stops promptly")
        .expect("the server task does not panic");
    let err = result.expect_err("a protocol error is an error");
    assert_eq!(err.driver(), "inmemory");
    err.to_string()
}

/// Reads until the server's FATAL and the end of the connection.
async fn expect_fatal(raw: &mut Raw) -> String {
    loop {
        match raw.next().await {
            Some(f) if f.kind == FrameType::Fatal => {
                let v: Value = serde_json::from_slice(&f.payload).expect("JSON");
                let message = v["message"].as_str().expect("a message").to_owned();
                assert!(raw.next().await.is_none(), "the server closes after FATAL");
                return message;
            }
            Some(_) => {}
            None => panic!("the connection closed without FATAL"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_and_welcome() {
    let (mut raw, server, _) = start();
    let welcome = raw.hello().await;
    assert_eq!(welcome["version"], storagedriver_ipc::PROTOCOL_VERSION);
    assert_eq!(welcome["driver"], "inmemory");
    assert_eq!(welcome["capabilities"]["url_for"], false);
    assert_eq!(welcome["capabilities"]["detects_file_dir_conflicts"], true);
    drop(raw);
    let result = tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("ends")
        .expect("task");
    assert!(result.is_ok(), "end of file is a clean end: {result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_mismatch_is_fatal_naming_both() {
    let (mut raw, server, _) = start();
    raw.send_json(
        FrameType::Hello,
        0,
        json!({"protocol":"registry-storage-ipc","version":"2.3"}),
    )
    .await;
    let message = expect_fatal(&mut raw).await;
    assert!(
        message.contains(&format!(
            "client speaks 2.3, server speaks {}",
            storagedriver_ipc::PROTOCOL_VERSION
        )),
        "{message}"
    );
    assert!(ends_with_err(server).await.contains("2.3"));

    // A newer minor version is fine.
    let (mut raw, _server, _) = start();
    raw.send_json(
        FrameType::Hello,
        0,
        json!({"protocol":"registry-storage-ipc","version":"1.9"}),
    )
    .await;
    raw.expect(FrameType::Welcome).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_truncated_and_oversized_frames() {
    // Garbage before the handshake.
    let (mut raw, server, _) = start();
    raw.stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    expect_fatal(&mut raw).await;
    ends_with_err(server).await;

    // An oversized length after the handshake: refused before anything is allocated.
    let (mut raw, server, _) = start();
    raw.hello().await;
    let mut bad = Vec::new();
    bad.extend_from_slice(&(u32::MAX).to_le_bytes());
    bad.push(0x20);
    bad.extend_from_slice(&1u64.to_le_bytes());
    raw.stream.write_all(&bad).await.expect("write");
    let message = expect_fatal(&mut raw).await;
    assert!(message.contains("exceeds"), "{message}");
    ends_with_err(server).await;

    // Just over the limit.
    let (mut raw, server, _) = start();
    raw.hello().await;
    let len = (MAX_PAYLOAD + 10) as u32;
    raw.stream
        .write_all(&len.to_le_bytes())
        .await
        .expect("write");
    expect_fatal(&mut raw).await;
    ends_with_err(server).await;

    // A length below 9.
    let (mut raw, server, _) = start();
    raw.hello().await;
    raw.stream
        .write_all(&[3, 0, 0, 0, 0x40, 0, 0])
        .await
        .expect("write");
    expect_fatal(&mut raw).await;
    ends_with_err(server).await;

    // An unknown type.
    let (mut raw, server, _) = start();
    raw.hello().await;
    let mut f = Vec::new();
    f.extend_from_slice(&9u32.to_le_bytes());
    f.push(0x66);
    f.extend_from_slice(&0u64.to_le_bytes());
    raw.stream.write_all(&f).await.expect("write");
    expect_fatal(&mut raw).await;
    ends_with_err(server).await;

    // A truncated frame, then end of file: a clean end (the client went away), promptly.
    let (mut raw, server, _) = start();
    raw.hello().await;
    let mut f = Vec::new();
    f.extend_from_slice(&1000u32.to_le_bytes());
    f.push(0x10);
    f.extend_from_slice(&5u64.to_le_bytes());
    f.extend_from_slice(b"{\"op\":");
    raw.stream.write_all(&f).await.expect("write");
    drop(raw);
    let result = tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("ends")
        .expect("task");
    assert!(result.is_ok(), "{result:?}");

    // Random garbage of many shapes: never a panic, always an end within a second.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..200 {
        let (mut raw, server, _) = start();
        if round % 2 == 0 {
            raw.hello().await;
        }
        let len = (round * 37) % 300 + 1;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = raw.stream.write_all(&bytes).await;
        let _ = raw.stream.shutdown().await;
        let result = tokio::time::timeout(Duration::from_secs(1), server)
            .await
            .expect("the server ends promptly on garbage")
            .expect("no panic");
        // Either a protocol error, or a clean end if the bytes happened to parse.
        drop(result);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_op_and_missing_fields_are_backend_errors() {
    let (mut raw, _server, _) = start();
    raw.hello().await;
    raw.send_json(
        FrameType::Request,
        1,
        json!({"op":"frobnicate","path":"/a"}),
    )
    .await;
    let (id, v) = raw.json(FrameType::Response).await;
    assert_eq!(id, 1);
    assert_eq!(v["error"]["kind"], "backend");
    assert_eq!(v["error"]["driver"], "inmemory");
    assert_eq!(v["error"]["operation"], "frobnicate");
    raw.send_json(FrameType::Request, 2, json!({"op":"stat"}))
        .await;
    let (id, v) = raw.json(FrameType::Response).await;
    assert_eq!(id, 2);
    assert_eq!(v["error"]["kind"], "backend");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("text")
            .contains("path")
    );
    // The server validates paths itself.
    raw.send_json(FrameType::Request, 3, json!({"op":"stat","path":"/a/../b"}))
        .await;
    let (_, v) = raw.json(FrameType::Response).await;
    assert_eq!(v["error"]["kind"], "invalid_path");
    assert_eq!(v["error"]["path"], "/a/../b");
    // An unknown writer handle.
    raw.send_json(
        FrameType::Request,
        4,
        json!({"op":"writer_commit","handle":99}),
    )
    .await;
    let (_, v) = raw.json(FrameType::Response).await;
    assert_eq!(v["error"]["kind"], "backend");
    // Still serving.
    raw.send(FrameType::Ping, 77, Bytes::new()).await;
    assert_eq!(raw.expect(FrameType::Pong).await.id, 77);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_breaking_frames_are_fatal() {
    // DATA for a stream that is not open.
    let (mut raw, server, _) = start();
    raw.hello().await;
    raw.send(FrameType::Data, 42, &b"x"[..]).await;
    assert!(expect_fatal(&mut raw).await.contains("not open"));
    ends_with_err(server).await;

    // A REQUEST that is not JSON.
    let (mut raw, server, _) = start();
    raw.hello().await;
    raw.send(FrameType::Request, 1, &b"{not json"[..]).await;
    expect_fatal(&mut raw).await;
    ends_with_err(server).await;

    // A frame only the server sends.
    let (mut raw, server, _) = start();
    raw.hello().await;
    raw.send(FrameType::Pong, 1, Bytes::new()).await;
    expect_fatal(&mut raw).await;
    ends_with_err(server).await;

    // DATA on a writer's id before its response (the server's writer is stuck, so the
    // response never comes): the handle's stream opens with the `ok` only.
    let stuck = common::Counting::new();
    stuck
        .stuck_writers
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (server_side, client_side) = UnixStream::pair().expect("a socket pair");
    let server = tokio::spawn(serve(Arc::new(stuck), server_side));
    let mut raw = Raw {
        stream: client_side,
        buf: BytesMut::new(),
        decoder: FrameDecoder::new(),
    };
    raw.hello().await;
    raw.send_json(
        FrameType::Request,
        1,
        json!({"op":"writer","path":"/p","append":false}),
    )
    .await;
    raw.send(FrameType::Data, 1, vec![0u8; 100]).await;
    let message = expect_fatal(&mut raw).await;
    assert!(
        message.contains("before the writer's response"),
        "{message}"
    );
    ends_with_err(server).await;

    // HELLO must come first.
    let (mut raw, server, _) = start();
    raw.send_json(FrameType::Request, 1, json!({"op":"stat","path":"/"}))
        .await;
    assert!(expect_fatal(&mut raw).await.contains("HELLO"));
    ends_with_err(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_follow_the_window_and_credit() {
    let (mut raw, _server, driver) = start();
    raw.hello().await;
    driver
        .put_content("/big", Bytes::from(vec![5u8; 10 << 20]))
        .await
        .expect("put");
    raw.send_json(
        FrameType::Request,
        1,
        json!({"op":"reader","path":"/big","offset":0}),
    )
    .await;
    let (_, v) = raw.json(FrameType::Response).await;
    assert_eq!(v, json!({"ok": null}));
    // Without credit, exactly the 4 MiB window arrives, then nothing.
    let mut got = 0usize;
    while got < 4 << 20 {
        let f = raw.expect(FrameType::Data).await;
        assert!(!f.payload.is_empty() && f.payload.len() <= MAX_PAYLOAD);
        got += f.payload.len();
    }
    assert_eq!(got, 4 << 20);
    raw.send(FrameType::Ping, 9, Bytes::new()).await;
    assert_eq!(
        raw.expect(FrameType::Pong).await.id,
        9,
        "nothing beyond the window, and PING is answered while the stream waits"
    );
    // Credit for the rest.
    raw.send(FrameType::Credit, 1, (6u32 << 20).to_le_bytes().to_vec())
        .await;
    while got < 10 << 20 {
        got += raw.expect(FrameType::Data).await.payload.len();
    }
    raw.expect(FrameType::End).await;

    // put_content: the server answers after END; credit comes back as it consumes.
    raw.send_json(
        FrameType::Request,
        2,
        json!({"op":"put_content","path":"/up"}),
    )
    .await;
    for i in 0..8u8 {
        raw.send(FrameType::Data, 2, vec![i; 1 << 20]).await;
        if i == 3 {
            // The window is used up: wait for credit before going on.
            let f = raw.expect(FrameType::Credit).await;
            assert_eq!(f.id, 2);
        }
    }
    raw.send(FrameType::End, 2, Bytes::new()).await;
    loop {
        let f = raw.next().await.expect("frame");
        if f.kind == FrameType::Response {
            assert_eq!(f.id, 2);
            let v: Value = serde_json::from_slice(&f.payload).expect("JSON");
            assert_eq!(v, json!({"ok": null}));
            break;
        }
        assert_eq!(f.kind, FrameType::Credit);
    }
    assert_eq!(driver.stat("/up").await.expect("stat").size, 8 << 20);

    // put_content to an invalid path: answered before END, and the stream is discarded.
    raw.send_json(
        FrameType::Request,
        3,
        json!({"op":"put_content","path":"/../x"}),
    )
    .await;
    raw.send(FrameType::Data, 3, &b"abc"[..]).await;
    let (id, v) = raw.json(FrameType::Response).await;
    assert_eq!(id, 3);
    assert_eq!(v["error"]["kind"], "invalid_path");
    raw.send(FrameType::End, 3, Bytes::new()).await;

    // RESET of a put_content midway stores nothing.
    raw.send_json(
        FrameType::Request,
        4,
        json!({"op":"put_content","path":"/torn"}),
    )
    .await;
    raw.send(FrameType::Data, 4, &b"partial"[..]).await;
    raw.send(FrameType::Reset, 4, Bytes::new()).await;
    let (id, v) = raw.json(FrameType::Response).await;
    assert_eq!(id, 4);
    assert_eq!(v["error"]["kind"], "backend");
    assert!(
        driver
            .stat("/torn")
            .await
            .expect_err("nothing")
            .is_not_found()
    );

    // A writer handle: data, then commit applies everything sent before it.
    raw.send_json(
        FrameType::Request,
        6,
        json!({"op":"writer","path":"/w","append":false}),
    )
    .await;
    let (_, v) = raw.json(FrameType::Response).await;
    assert_eq!(v, json!({"ok": {"size": 0}}));
    raw.send(FrameType::Data, 6, &b"hello "[..]).await;
    raw.send(FrameType::Data, 6, &b"world"[..]).await;
    raw.send_json(
        FrameType::Request,
        7,
        json!({"op":"writer_commit","handle":6}),
    )
    .await;
    let (id, v) = raw.json(FrameType::Response).await;
    assert_eq!(id, 7);
    assert_eq!(v, json!({"ok": null}));
    assert_eq!(driver.get_content("/w").await.expect("get"), "hello world");
    // RESET of a reader: the server stops; later CREDIT for it is ignored.
    raw.send_json(
        FrameType::Request,
        5,
        json!({"op":"reader","path":"/big","offset":0}),
    )
    .await;
    raw.send(FrameType::Reset, 5, Bytes::new()).await;
    raw.send(FrameType::Credit, 5, 100u32.to_le_bytes().to_vec())
        .await;
    raw.send(FrameType::Ping, 10, Bytes::new()).await;
    loop {
        let f = raw.next().await.expect("frame");
        if f.kind == FrameType::Pong {
            break;
        }
        assert_eq!(f.id, 5, "only frames already on their way");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_responses_come_in_parts() {
    let (mut raw, server, driver) = start();
    raw.hello().await;
    // 6,000 names of 200 bytes: a response of about 1.2 MiB.
    for i in 0..6000 {
        let path = format!("/d/{i:06}-{}", "z".repeat(193));
        driver.put_content(&path, Bytes::new()).await.expect("put");
    }
    let want = driver.list("/d").await.expect("list");
    raw.send_json(FrameType::Request, 1, json!({"op":"list","path":"/d"}))
        .await;
    let mut whole = Vec::new();
    let mut parts = 0;
    let last = loop {
        let f = raw.next().await.expect("a frame");
        assert_eq!(f.id, 1);
        match f.kind {
            FrameType::ResponsePart => {
                assert_eq!(f.payload.len(), MAX_PAYLOAD, "full pieces before the last");
                whole.extend_from_slice(&f.payload);
                parts += 1;
            }
            FrameType::Response => break f.payload,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(parts, 1);
    assert!(!last.is_empty() && last.len() <= MAX_PAYLOAD);
    whole.extend_from_slice(&last);
    let v: Value = serde_json::from_slice(&whole).expect("the pieces join into JSON");
    assert_eq!(v, json!({ "ok": want }));

    // A short response is still one RESPONSE.
    raw.send_json(FrameType::Request, 2, json!({"op":"list","path":"/"}))
        .await;
    let (id, v) = raw.json(FrameType::Response).await;
    assert_eq!((id, v), (2, json!({"ok": ["/d"]})));

    // Only the server sends RESPONSE_PART.
    raw.send(FrameType::ResponsePart, 3, &b"{"[..]).await;
    assert!(expect_fatal(&mut raw).await.contains("RESPONSE_PART"));
    ends_with_err(server).await;
}

/// A raw 1.0 server (the test) with a real client connected to it: the handshake is done.
async fn raw_server() -> (Raw, storagedriver_ipc::IpcDriver) {
    raw_server_as("1.0").await
}

/// A raw server of `version` with a real client connected to it.
async fn raw_server_as(version: &str) -> (Raw, storagedriver_ipc::IpcDriver) {
    let (server_side, client_side) = UnixStream::pair().expect("a socket pair");
    let connect = tokio::spawn(storagedriver_ipc::IpcDriver::connect("raw", client_side));
    let mut raw = Raw {
        stream: server_side,
        buf: BytesMut::new(),
        decoder: FrameDecoder::new(),
    };
    raw.expect(FrameType::Hello).await;
    raw.send_json(
        FrameType::Welcome,
        0,
        json!({"version":version,"driver":"raw","capabilities":{
            "url_for":false,"append_to_committed":false,"persistent":false,
            "detects_file_dir_conflicts":false}}),
    )
    .await;
    let client = connect
        .await
        .expect("the connect task")
        .expect("the handshake succeeds");
    (raw, client)
}

impl Raw {
    /// The next frame from the client that is not a PING.
    async fn next_from_client(&mut self) -> Option<Frame> {
        loop {
            match self.next().await {
                Some(f) if f.kind == FrameType::Ping => {}
                other => return other,
            }
        }
    }

    /// The next request from the client: its id and JSON.
    async fn request(&mut self) -> (u64, Value) {
        let f = self.next_from_client().await.expect("a request");
        assert_eq!(f.kind, FrameType::Request, "got {f:?}");
        (f.id, serde_json::from_slice(&f.payload).expect("JSON"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_joins_parts_and_ignores_them_for_abandoned_requests() {
    let (mut raw, client) = raw_server().await;

    // Pieces, another request's response in between, and the last piece in RESPONSE.
    let c = client.clone();
    let first = tokio::spawn(async move { c.list("/a").await });
    let (id1, v) = raw.request().await;
    assert_eq!(v, json!({"op":"list","path":"/a"}));
    let c = client.clone();
    let second = tokio::spawn(async move { c.list("/b").await });
    let (id2, _) = raw.request().await;
    raw.send(FrameType::ResponsePart, id1, &b"{\"ok\":[\"/a/"[..])
        .await;
    raw.send(FrameType::ResponsePart, id2, &b"{\"ok\":[\"/b/x\"]}"[..])
        .await;
    raw.send(FrameType::ResponsePart, id1, &b"x\",\"/a"[..])
        .await;
    raw.send(FrameType::Response, id1, &b"/y\"]}"[..]).await;
    // The last piece may be empty.
    raw.send(FrameType::Response, id2, Bytes::new()).await;
    assert_eq!(first.await.expect("task").expect("list"), ["/a/x", "/a/y"]);
    assert_eq!(second.await.expect("task").expect("list"), ["/b/x"]);

    // A request abandoned midway: the rest of its parts and its response are ignored.
    let c = client.clone();
    let abandoned = tokio::spawn(async move { c.list("/gone").await });
    let (id3, _) = raw.request().await;
    raw.send(FrameType::ResponsePart, id3, &b"{\"ok\":["[..])
        .await;
    abandoned.abort();
    let _ = abandoned.await;
    raw.send(FrameType::ResponsePart, id3, vec![b' '; MAX_PAYLOAD])
        .await;
    raw.send(FrameType::Response, id3, &b"]}"[..]).await;
    let c = client.clone();
    let after = tokio::spawn(async move { c.list("/c").await });
    let (id4, _) = raw.request().await;
    raw.send_json(FrameType::Response, id4, json!({"ok":["/c/1"]}))
        .await;
    assert_eq!(after.await.expect("task").expect("list"), ["/c/1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_refuses_more_than_64_mib_of_parts() {
    use storagedriver_ipc::frame::MAX_RESPONSE;
    let (mut raw, client) = raw_server().await;
    let c = client.clone();
    let call = tokio::spawn(async move { c.list("/big").await });
    let (id, _) = raw.request().await;
    // Exactly 64 MiB of parts is still fine; one byte more is not.
    let piece = Bytes::from(vec![b' '; MAX_PAYLOAD]);
    for _ in 0..MAX_RESPONSE / MAX_PAYLOAD {
        raw.send(FrameType::ResponsePart, id, piece.clone()).await;
    }
    raw.send(FrameType::ResponsePart, id, &b" "[..]).await;
    let message = loop {
        let f = raw.next_from_client().await.expect("FATAL before the end");
        if f.kind == FrameType::Fatal {
            let v: Value = serde_json::from_slice(&f.payload).expect("JSON");
            break v["message"].as_str().expect("a message").to_owned();
        }
    };
    assert!(message.contains("exceeds"), "{message}");
    assert!(raw.next().await.is_none(), "the client closes after FATAL");
    let err = call.await.expect("task").expect_err("the call fails");
    assert!(err.to_string().contains("protocol error"), "{err}");
    assert!(client.stat("/a").await.is_err(), "the connection is dead");
}

impl Raw {
    /// The next frame if one comes within `ms` milliseconds.
    async fn next_within(&mut self, ms: u64) -> Option<Frame> {
        tokio::time::timeout(Duration::from_millis(ms), self.next())
            .await
            .ok()
            .flatten()
    }

    /// The next frame from the client that is not PING, CREDIT or RESET.
    async fn next_skipping_credit(&mut self) -> Frame {
        loop {
            let f = self.next_from_client().await.expect("a frame");
            if f.kind != FrameType::Credit && f.kind != FrameType::Reset {
                return f;
            }
        }
    }

    /// Reads until the PONG for `ping` (sent now), returning the frames that came before it.
    async fn until_pong(&mut self, ping: u64) -> Vec<Frame> {
        self.send(FrameType::Ping, ping, Bytes::new()).await;
        let mut before = Vec::new();
        loop {
            let f = self.next().await.expect("a frame");
            if f.kind == FrameType::Pong && f.id == ping {
                return before;
            }
            before.push(f);
        }
    }
}

fn credit(n: u32) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_1_server_sends_and_pulls_nothing_before_credit() {
    let driver = common::Counting::new();
    let content = common::pattern(3, 300_000);
    driver
        .inner
        .put_content("/blob", content.clone())
        .await
        .expect("put");
    let (mut raw, _server) = start_with(Arc::new(driver.clone()));
    let welcome = raw.hello_as("1.1").await;
    assert_eq!(welcome["version"], storagedriver_ipc::PROTOCOL_VERSION);
    raw.send_json(
        FrameType::Request,
        1,
        json!({"op":"reader","path":"/blob","offset":0}),
    )
    .await;
    let (_, v) = raw.json(FrameType::Response).await;
    assert_eq!(v, json!({"ok": null}));
    // An idle stream: the window starts at 0, nothing comes and nothing is read ahead.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(raw.until_pong(9).await.is_empty(), "no DATA before CREDIT");
    assert_eq!(
        driver.pulled(),
        0,
        "no chunk pulled from the driver without credit"
    );
    // Exactly the credit comes, and no more.
    raw.send(FrameType::Credit, 1, credit(1000)).await;
    let mut got = Vec::new();
    while got.len() < 1000 {
        got.extend_from_slice(&raw.expect(FrameType::Data).await.payload);
    }
    assert_eq!(got.len(), 1000);
    assert!(
        raw.until_pong(10).await.is_empty(),
        "nothing beyond the credit"
    );
    // Credit for exactly the rest: the data comes; END waits until the server may read on.
    raw.send(FrameType::Credit, 1, credit(299_000)).await;
    while got.len() < 300_000 {
        let f = raw.expect(FrameType::Data).await;
        got.extend_from_slice(&f.payload);
    }
    assert_eq!(got, content);
    assert!(
        raw.until_pong(11).await.is_empty(),
        "END needs credit to be learnt"
    );
    raw.send(FrameType::Credit, 1, credit(1)).await;
    raw.expect(FrameType::End).await;

    // get_content: nothing before credit either, and END right after the last byte.
    raw.send_json(
        FrameType::Request,
        2,
        json!({"op":"get_content","path":"/blob"}),
    )
    .await;
    let (_, v) = raw.json(FrameType::Response).await;
    assert_eq!(v, json!({"ok": {"size": 300_000}}));
    assert!(raw.until_pong(12).await.is_empty(), "no DATA before CREDIT");
    raw.send(FrameType::Credit, 2, credit(300_000)).await;
    let mut got = 0;
    while got < 300_000 {
        got += raw.expect(FrameType::Data).await.payload.len();
    }
    raw.expect(FrameType::End).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_1_client_stream_starts_with_64_kib_and_gets_credit() {
    let (mut raw, _server, driver) = start();
    raw.hello_as("1.1").await;
    raw.send_json(
        FrameType::Request,
        1,
        json!({"op":"put_content","path":"/up"}),
    )
    .await;
    // Send 3 MiB, never beyond the window: 64 KiB, then what CREDIT allows.
    let total = 3usize << 20;
    let (mut sent, mut allowed) = (0usize, 64usize << 10);
    let mut credits = 0;
    while sent < total {
        if sent < allowed {
            let n = (allowed - sent).min(total - sent).min(MAX_PAYLOAD);
            raw.send(FrameType::Data, 1, vec![(sent % 251) as u8; n])
                .await;
            sent += n;
        } else {
            let f = raw.expect(FrameType::Credit).await;
            assert_eq!(f.id, 1);
            allowed += u32::from_le_bytes(f.payload[..].try_into().expect("4 bytes")) as usize;
            credits += 1;
        }
    }
    raw.send(FrameType::End, 1, Bytes::new()).await;
    loop {
        let f = raw.next().await.expect("a frame");
        if f.kind == FrameType::Response {
            let v: Value = serde_json::from_slice(&f.payload).expect("JSON");
            assert_eq!(v, json!({"ok": null}));
            break;
        }
        assert_eq!(f.kind, FrameType::Credit);
    }
    assert!(credits > 0);
    assert_eq!(driver.stat("/up").await.expect("stat").size, total as u64);

    // 64 KiB and one byte before any credit is an overrun.
    raw.send_json(
        FrameType::Request,
        2,
        json!({"op":"put_content","path":"/over"}),
    )
    .await;
    raw.send(FrameType::Data, 2, vec![1u8; (64 << 10) + 1])
        .await;
    assert!(expect_fatal(&mut raw).await.contains("overran its window"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_1_client_opens_a_reader_when_it_is_first_read() {
    let (mut raw, client) = raw_server_as("1.1").await;
    let c = client.clone();
    let open = tokio::spawn(async move { c.reader("/r", 0).await });
    let (id, v) = raw.request().await;
    assert_eq!(v, json!({"op":"reader","path":"/r","offset":0}));
    raw.send_json(FrameType::Response, id, json!({"ok": null}))
        .await;
    let mut stream = open.await.expect("task").expect("reader");
    // Not read yet: no credit.
    while let Some(f) = raw.next_within(300).await {
        assert_eq!(
            f.kind,
            FrameType::Ping,
            "only pings from an idle reader: {f:?}"
        );
    }
    let read = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(chunk) = stream.next().await {
            all.extend_from_slice(&chunk.expect("a chunk"));
        }
        all
    });
    let f = raw.next_from_client().await.expect("a frame");
    assert_eq!((f.kind, f.id), (FrameType::Credit, id));
    assert_eq!(f.payload[..], (64u32 << 10).to_le_bytes());
    raw.send(FrameType::Data, id, &b"0123456789"[..]).await;
    raw.send(FrameType::End, id, Bytes::new()).await;
    assert_eq!(read.await.expect("task"), b"0123456789");

    // get_content: the REQUEST is followed by CREDIT at once; the announced size widens it.
    let c = client.clone();
    let get = tokio::spawn(async move { c.get_content("/g").await });
    let (id, _) = raw.request().await;
    let f = raw.next_from_client().await.expect("a frame");
    assert_eq!(
        (f.kind, f.id),
        (FrameType::Credit, id),
        "before any response"
    );
    assert_eq!(f.payload[..], (64u32 << 10).to_le_bytes());
    raw.send_json(FrameType::Response, id, json!({"ok": {"size": 200_000}}))
        .await;
    let f = raw.next_from_client().await.expect("a frame");
    assert_eq!((f.kind, f.id), (FrameType::Credit, id));
    assert_eq!(f.payload[..], (200_000u32 - (64 << 10)).to_le_bytes());
    raw.send(FrameType::Data, id, vec![7u8; 200_000]).await;
    raw.send(FrameType::End, id, Bytes::new()).await;
    assert_eq!(get.await.expect("task").expect("content").len(), 200_000);

    // A server that sends beyond its credit breaks the protocol.
    let c = client.clone();
    let open = tokio::spawn(async move { c.reader("/r", 0).await });
    let f = raw.next_skipping_credit().await;
    assert_eq!(f.kind, FrameType::Request);
    let id = f.id;
    raw.send_json(FrameType::Response, id, json!({"ok": null}))
        .await;
    let mut stream = open.await.expect("task").expect("reader");
    // More than even the first grant, whether it arrives before the first read or after.
    raw.send(FrameType::Data, id, vec![0u8; (64 << 10) + 1])
        .await;
    let err = stream
        .next()
        .await
        .expect("an item")
        .expect_err("an overrun");
    assert!(err.to_string().contains("overran its window"), "{err}");
}

/// Serves one `get_content` to `client`: announces `announced` bytes, sends `pieces`, then END.
async fn get_content_with(
    raw: &mut Raw,
    client: &storagedriver_ipc::IpcDriver,
    version: &str,
    announced: u64,
    pieces: &[&'static [u8]],
) -> storagedriver::Result<Bytes> {
    let c = client.clone();
    let get = tokio::spawn(async move { c.get_content("/five").await });
    let f = raw.next_skipping_credit().await;
    assert_eq!(f.kind, FrameType::Request);
    raw.send_json(
        FrameType::Response,
        f.id,
        json!({"ok": {"size": announced}}),
    )
    .await;
    // From 1.1 the stream opens with the client's CREDIT, which follows the request: a server
    // sends nothing before it.
    if version != "1.0" {
        loop {
            let c = raw.next_from_client().await.expect("a frame");
            if c.kind == FrameType::Credit && c.id == f.id {
                break;
            }
        }
    }
    for piece in pieces {
        raw.send(FrameType::Data, f.id, *piece).await;
    }
    raw.send(FrameType::End, f.id, Bytes::new()).await;
    get.await.expect("task")
}

/// `get_content` of servers that announce 5 bytes and send `cases` (pieces, and the error's
/// words), as 1.0 and as 1.1 servers; the right size still works, and the connection too.
async fn check_announced_size(cases: &[(&[&'static [u8]], &str)]) {
    for version in ["1.0", "1.1"] {
        let (mut raw, client) = raw_server_as(version).await;
        let got = get_content_with(&mut raw, &client, version, 5, &[b"abc", b"de"]).await;
        assert_eq!(got.expect("the announced size"), "abcde");
        for (pieces, want) in cases {
            let err = get_content_with(&mut raw, &client, version, 5, pieces)
                .await
                .expect_err("a stream of the wrong size is an error");
            let text = err.to_string();
            assert!(text.contains(want), "{version}: {text}");
            match &err {
                storagedriver::Error::Backend {
                    driver,
                    operation,
                    path,
                    ..
                } => {
                    assert_eq!(driver, "raw");
                    assert_eq!(operation, "get_content");
                    assert_eq!(path.as_deref(), Some("/five"));
                }
                other => panic!("{version}: not a backend error: {other:?}"),
            }
            assert!(text.starts_with("raw: get_content /five: "), "{text}");
        }
        // The connection is still good.
        let c = client.clone();
        let list = tokio::spawn(async move { c.list("/").await });
        let f = raw.next_skipping_credit().await;
        assert_eq!(f.kind, FrameType::Request);
        raw.send_json(FrameType::Response, f.id, json!({"ok": []}))
            .await;
        assert!(list.await.expect("task").expect("list").is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_content_shorter_than_announced_is_an_error() {
    check_announced_size(&[
        (&[b"abcd"], "expected 5 bytes, got 4"),
        (&[b"ab", b"c"], "expected 5 bytes, got 3"),
        (&[], "expected 5 bytes, got 0"),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_content_longer_than_announced_is_an_error() {
    check_announced_size(&[
        (&[b"abcdef"], "expected 5 bytes, got at least 6"),
        (&[b"abc", b"def"], "expected 5 bytes, got at least 6"),
        (&[b"abcde", b"f"], "expected 5 bytes, got at least 6"),
    ])
    .await;
}

// ------------------------------------------------------------------------------------------
// The rules PROTOCOL.md pins down: RESET before a response, writer handles, numbers, versions
// of FILEINFO, errors and FATAL on either side.

/// 2^53 − 1, the largest integer on the wire.
const MAX_EXACT: u64 = (1 << 53) - 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_before_the_response_still_gets_the_response() {
    // get_content, as a 1.0 client (a 4 MiB window from the start): the response comes; of
    // the stream, at most what was on its way before the RESET (the window), never the rest.
    let (mut raw, _server, driver) = start();
    raw.hello().await;
    let size = 10usize << 20;
    driver
        .put_content("/g", Bytes::from(vec![1u8; size]))
        .await
        .expect("put");
    raw.send_json(
        FrameType::Request,
        1,
        json!({"op":"get_content","path":"/g"}),
    )
    .await;
    raw.send(FrameType::Reset, 1, Bytes::new()).await;
    raw.send(FrameType::Credit, 1, credit(6 << 20)).await;
    let (id, v) = raw.json(FrameType::Response).await;
    assert_eq!((id, v), (1, json!({"ok": {"size": size}})));
    let late = raw.until_pong(2).await;
    let data: usize = late
        .iter()
        .filter(|f| f.kind == FrameType::Data)
        .map(|f| f.payload.len())
        .sum();
    assert!(data <= 4 << 20, "{data} bytes after the RESET");
    assert!(
        late.iter().all(|f| f.kind == FrameType::Data),
        "no END after a RESET"
    );

    // writer: answered, then dropped at once; the handle never opens.
    raw.send_json(
        FrameType::Request,
        3,
        json!({"op":"writer","path":"/w","append":false}),
    )
    .await;
    raw.send(FrameType::Reset, 3, Bytes::new()).await;
    let (id, v) = raw.json(FrameType::Response).await;
    assert_eq!((id, v), (3, json!({"ok": {"size": 0}})));
    raw.send_json(
        FrameType::Request,
        4,
        json!({"op":"writer_commit","handle":3}),
    )
    .await;
    let (id, v) = raw.json(FrameType::Response).await;
    assert_eq!(id, 4);
    assert_eq!(v["error"]["kind"], "backend", "{v}");
    assert_eq!(v["error"]["operation"], "writer_commit", "{v}");
    assert_eq!(v["error"]["path"], Value::Null, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no open writer with handle 3")),
        "{v}"
    );
    assert!(
        driver.stat("/w").await.expect_err("nothing").is_not_found(),
        "nothing committed"
    );

    // A RESET on a request without a stream is ignored; its response comes.
    raw.send_json(FrameType::Request, 5, json!({"op":"stat","path":"/g"}))
        .await;
    raw.send(FrameType::Reset, 5, Bytes::new()).await;
    let (id, v) = raw.json(FrameType::Response).await;
    assert_eq!((id, &v["ok"]["size"]), (5, &json!(size)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_protocol_errors() {
    // A second HELLO.
    let (mut raw, server, _) = start();
    raw.hello_as("1.2").await;
    raw.send_json(
        FrameType::Hello,
        0,
        json!({"protocol":"registry-storage-ipc","version":"1.2"}),
    )
    .await;
    assert!(expect_fatal(&mut raw).await.contains("HELLO"));
    ends_with_err(server).await;

    // Frames only a server sends.
    for kind in [
        FrameType::Welcome,
        FrameType::WalkEntry,
        FrameType::Response,
    ] {
        let (mut raw, server, _) = start();
        raw.hello_as("1.2").await;
        raw.send(kind, 1, &b"{}"[..]).await;
        assert!(expect_fatal(&mut raw).await.contains(kind.name()));
        ends_with_err(server).await;
    }

    // REQUEST id 0.
    let (mut raw, server, _) = start();
    raw.hello_as("1.2").await;
    raw.send_json(FrameType::Request, 0, json!({"op":"stat","path":"/"}))
        .await;
    assert!(expect_fatal(&mut raw).await.contains("id 0"));
    ends_with_err(server).await;

    // An id in use by a request without its response (a writer stuck in the driver).
    let stuck = common::Counting::new();
    stuck
        .stuck_writers
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut raw, server) = start_with(Arc::new(stuck));
    raw.hello_as("1.2").await;
    raw.send_json(
        FrameType::Request,
        7,
        json!({"op":"writer","path":"/p","append":false}),
    )
    .await;
    raw.send_json(FrameType::Request, 7, json!({"op":"stat","path":"/"}))
        .await;
    assert!(expect_fatal(&mut raw).await.contains("in use"));
    ends_with_err(server).await;

    // An id in use by an open stream (a reader nobody reads).
    let (mut raw, server, driver) = start();
    raw.hello_as("1.2").await;
    driver
        .put_content("/r", Bytes::from_static(b"abc"))
        .await
        .expect("put");
    raw.send_json(
        FrameType::Request,
        8,
        json!({"op":"reader","path":"/r","offset":0}),
    )
    .await;
    raw.json(FrameType::Response).await;
    raw.send_json(FrameType::Request, 8, json!({"op":"stat","path":"/r"}))
        .await;
    assert!(expect_fatal(&mut raw).await.contains("in use"));
    ends_with_err(server).await;

    // FATAL from the client: the server closes without answering it and ends with an error
    // (a driver executable then exits non-zero).
    let (mut raw, server, _) = start();
    raw.hello_as("1.2").await;
    raw.send_json(FrameType::Fatal, 0, json!({"message":"bye"}))
        .await;
    assert!(raw.next().await.is_none(), "closed, no FATAL back");
    ends_with_err(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_backend_errors_naming_the_op_and_no_path() {
    let (mut raw, _server, driver) = start();
    raw.hello_as("1.2").await;
    driver
        .put_content("/n", Bytes::from_static(b"numbers"))
        .await
        .expect("put");
    let cases = [
        (json!([1, 2]), "request"),
        (json!({"op": 5}), "request"),
        (json!({"op":"stat","path":null}), "stat"),
        (
            json!({"op":"reader","path":"/n","offset":MAX_EXACT + 1}),
            "reader",
        ),
        (json!({"op":"reader","path":"/n","offset":-1}), "reader"),
        (
            json!({"op":"writer_commit","handle":u64::MAX}),
            "writer_commit",
        ),
        (
            json!({"op":"url_for","path":"/n","method":"GET","expires_in_ms":MAX_EXACT + 1}),
            "url_for",
        ),
    ];
    for (id, (request, operation)) in (1..).zip(cases) {
        raw.send_json(FrameType::Request, id, request.clone()).await;
        let (got, v) = raw.json(FrameType::Response).await;
        assert_eq!(got, id);
        assert_eq!(v["error"]["kind"], "backend", "{request}: {v}");
        assert_eq!(v["error"]["operation"], operation, "{request}: {v}");
        assert_eq!(v["error"]["path"], Value::Null, "{request}: {v}");
        assert_eq!(v["error"]["driver"], "inmemory", "{request}: {v}");
    }
    // At the limit: a reader at offset 2^53 - 1 is an empty stream.
    raw.send_json(
        FrameType::Request,
        100,
        json!({"op":"reader","path":"/n","offset":MAX_EXACT}),
    )
    .await;
    let (_, v) = raw.json(FrameType::Response).await;
    assert_eq!(v, json!({"ok": null}));
    raw.send(FrameType::Credit, 100, credit(1000)).await;
    raw.expect(FrameType::End).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_info_takes_the_form_of_the_lower_version() {
    let (_, _server, driver) = start();
    driver
        .put_content("/d/f", Bytes::from_static(b"abc"))
        .await
        .expect("put");
    let want = driver.stat("/d/f").await.expect("stat");
    let since = want
        .mod_time
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch");
    for version in ["1.0", "1.1", "1.2", "1.7"] {
        let (mut raw, _server) = start_with(Arc::new(driver.clone()) as Arc<dyn StorageDriver>);
        raw.hello_as(version).await;
        raw.send_json(FrameType::Request, 1, json!({"op":"stat","path":"/d/f"}))
            .await;
        let (_, v) = raw.json(FrameType::Response).await;
        let info = &v["ok"];
        assert_eq!(info["path"], "/d/f");
        assert_eq!(info["size"], 3);
        if version == "1.0" || version == "1.1" {
            assert_eq!(
                info["mod_time_ns"],
                json!(since.as_nanos() as i64),
                "{version}: {info}"
            );
            assert!(info.get("mod_time_s").is_none(), "{version}: {info}");
        } else {
            assert!(info.get("mod_time_ns").is_none(), "{version}: {info}");
            assert_eq!(
                info["mod_time_s"],
                json!(since.as_secs()),
                "{version}: {info}"
            );
            assert_eq!(
                info["mod_time_nanos"],
                json!(since.subsec_nanos()),
                "{version}: {info}"
            );
        }
        // Walk entries too.
        raw.send_json(
            FrameType::Request,
            2,
            json!({"op":"walk","path":"/","start_after":null}),
        )
        .await;
        for path in ["/d", "/d/f"] {
            let (_, entry) = raw.json(FrameType::WalkEntry).await;
            assert_eq!(entry["path"], path);
            assert_eq!(
                entry.get("mod_time_s").is_some(),
                version != "1.0" && version != "1.1",
                "{version}: {entry}"
            );
            // From 1.3 the entries stream: no answer per entry.
            if ["1.0", "1.1", "1.2"].contains(&version) {
                raw.send(FrameType::WalkControl, 2, vec![0u8]).await;
            }
        }
        let (_, v) = raw.json(FrameType::Response).await;
        assert_eq!(v, json!({"ok": null}));
    }
}

/// A raw server that answers HELLO with `welcome`, and the client's connect task.
async fn raw_server_welcoming(
    welcome: Value,
) -> (
    Raw,
    JoinHandle<storagedriver::Result<storagedriver_ipc::IpcDriver>>,
) {
    let (server_side, client_side) = UnixStream::pair().expect("a socket pair");
    let connect = tokio::spawn(storagedriver_ipc::IpcDriver::connect("raw", client_side));
    let mut raw = Raw {
        stream: server_side,
        buf: BytesMut::new(),
        decoder: FrameDecoder::new(),
    };
    raw.expect(FrameType::Hello).await;
    raw.send_json(FrameType::Welcome, 0, welcome).await;
    (raw, connect)
}

fn caps(url_for: bool) -> Value {
    json!({"url_for":url_for,"append_to_committed":false,"persistent":false,
        "detects_file_dir_conflicts":false})
}

/// Reads the client's frames until its FATAL (its message) and the end of the connection.
async fn client_fatal(raw: &mut Raw) -> String {
    loop {
        let f = raw.next().await.expect("FATAL before the end");
        if f.kind == FrameType::Fatal {
            let v: Value = serde_json::from_slice(&f.payload).expect("JSON");
            let message = v["message"].as_str().expect("a message").to_owned();
            assert!(raw.next().await.is_none(), "the client closes after FATAL");
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_refuses_a_welcome_it_cannot_accept_with_fatal() {
    let cases = [
        (
            json!({"version":"1.2","driver":"other","capabilities":caps(false)}),
            "\"other\"",
        ),
        (
            json!({"version":"2.0","driver":"raw","capabilities":caps(false)}),
            "server speaks 2.0",
        ),
        (json!({"driver":"raw"}), "WELCOME is not understood"),
    ];
    for (welcome, words) in cases {
        let (mut raw, connect) = raw_server_welcoming(welcome).await;
        let message = client_fatal(&mut raw).await;
        assert!(message.contains(words), "{message}");
        let err = connect
            .await
            .expect("task")
            .expect_err("the handshake fails");
        assert!(err.to_string().contains(words), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sends_fatal_for_every_protocol_error() {
    /// What the raw server does to break the protocol, given a stat request's id.
    type Breach = fn(u64) -> (FrameType, u64, Vec<u8>);
    let breaches: [(Breach, &str); 7] = [
        (
            |id| (FrameType::Response, id, b"{not json".to_vec()),
            "not understood",
        ),
        (|id| (FrameType::Response, id, b"{}".to_vec()), "neither"),
        (
            |id| (FrameType::Response, id + 100, b"{\"ok\":null}".to_vec()),
            "never used",
        ),
        (
            |_| (FrameType::Response, 0, b"{\"ok\":null}".to_vec()),
            "never used",
        ),
        (
            |id| (FrameType::End, id, Vec::new()),
            "no stream from the server",
        ),
        (
            |id| (FrameType::WalkEntry, id, b"{}".to_vec()),
            "not a walk",
        ),
        (|_| (FrameType::Ping, 1, Vec::new()), "PING"),
    ];
    for (breach, words) in breaches {
        let (mut raw, client) = raw_server_as("1.2").await;
        let c = client.clone();
        let call = tokio::spawn(async move { c.stat("/a").await });
        let (id, _) = raw.request().await;
        let (kind, on, payload) = breach(id);
        raw.send(kind, on, payload).await;
        let message = client_fatal(&mut raw).await;
        assert!(message.contains(words), "{words}: {message}");
        let err = call.await.expect("task").expect_err("the call fails");
        assert!(err.to_string().contains("protocol error"), "{err}");
    }

    // An oversize frame.
    let (mut raw, client) = raw_server_as("1.2").await;
    let mut bad = Vec::new();
    bad.extend_from_slice(&u32::MAX.to_le_bytes());
    bad.push(0x11);
    bad.extend_from_slice(&1u64.to_le_bytes());
    raw.stream.write_all(&bad).await.expect("write");
    assert!(client_fatal(&mut raw).await.contains("exceeds"));
    assert!(client.stat("/a").await.is_err(), "the connection is dead");

    // An empty RESET on a stream the server sends.
    let (mut raw, client) = raw_server_as("1.2").await;
    let c = client.clone();
    let get = tokio::spawn(async move { c.get_content("/a").await });
    let f = raw.next_skipping_credit().await;
    raw.send_json(FrameType::Response, f.id, json!({"ok":{"size":5}}))
        .await;
    raw.send(FrameType::Reset, f.id, Bytes::new()).await;
    assert!(client_fatal(&mut raw).await.contains("without an ERROR"));
    assert!(get.await.expect("task").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reads_file_info_of_the_lower_version_and_checks_it() {
    let ok = |info: Value| json!({"ok": info});
    // 1.1: mod_time_ns; 1.2: seconds and nanoseconds.
    for (version, info) in [
        (
            "1.1",
            json!({"path":"/a","size":3,"mod_time_ns":1_700_000_000_500_000_000i64,"is_dir":false}),
        ),
        (
            "1.2",
            json!({"path":"/a","size":3,"mod_time_s":1_700_000_000,"mod_time_nanos":500_000_000,"is_dir":false}),
        ),
    ] {
        let (mut raw, client) = raw_server_as(version).await;
        let c = client.clone();
        let stat = tokio::spawn(async move { c.stat("/a").await });
        let (id, _) = raw.request().await;
        raw.send_json(FrameType::Response, id, ok(info)).await;
        let got = stat.await.expect("task").expect("stat");
        assert_eq!(
            got.mod_time,
            std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500),
            "{version}"
        );
    }
    // Answers that break the rules.
    for (version, info, words) in [
        (
            "1.2",
            json!({"path":"/a","size":3,"mod_time_ns":5,"is_dir":false}),
            "mod_time_s",
        ),
        (
            "1.1",
            json!({"path":"/a","size":3,"mod_time_s":5,"mod_time_nanos":0,"is_dir":false}),
            "mod_time_ns",
        ),
        (
            "1.2",
            json!({"path":"/b","size":3,"mod_time_s":5,"mod_time_nanos":0,"is_dir":false}),
            "\"/b\"",
        ),
        (
            "1.2",
            json!({"path":"/a","size":MAX_EXACT + 1,"mod_time_s":5,"mod_time_nanos":0,"is_dir":false}),
            "2^53",
        ),
    ] {
        let (mut raw, client) = raw_server_as(version).await;
        let c = client.clone();
        let stat = tokio::spawn(async move { c.stat("/a").await });
        let (id, _) = raw.request().await;
        raw.send_json(FrameType::Response, id, ok(info)).await;
        assert!(client_fatal(&mut raw).await.contains(words), "{words}");
        let err = stat.await.expect("task").expect_err("a protocol error");
        assert!(err.to_string().contains(words), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_keeps_numbers_exact_and_skips_url_for_without_the_capability() {
    let (mut raw, client) = raw_server_as("1.2").await;
    // An offset beyond 2^53 - 1 goes as 2^53 - 1 (no file is longer).
    let c = client.clone();
    let read = tokio::spawn(async move { c.reader("/a", u64::MAX).await.map(drop) });
    let (id, v) = raw.request().await;
    assert_eq!(v["offset"], json!(MAX_EXACT));
    raw.send_json(FrameType::Response, id, json!({"ok": null}))
        .await;
    read.await.expect("task").expect("reader");
    // Without the capability, url_for is `unsupported` without a request.
    let err = client
        .url_for("/a", &storagedriver::UrlOptions::default())
        .await
        .expect_err("unsupported");
    assert!(
        matches!(&err, storagedriver::Error::Unsupported { operation, .. } if operation == "url_for"),
        "{err:?}"
    );
    while let Some(f) = raw.next_within(200).await {
        // The reader dropped above resets its stream; no request goes out.
        assert!(
            matches!(f.kind, FrameType::Ping | FrameType::Reset),
            "{f:?}"
        );
    }
    // With it, a huge expiry goes as 2^53 - 1 milliseconds.
    let (mut raw, connect) =
        raw_server_welcoming(json!({"version":"1.2","driver":"raw","capabilities":caps(true)}))
            .await;
    let client = connect.await.expect("task").expect("connected");
    let url = tokio::spawn(async move {
        let options = storagedriver::UrlOptions {
            expires_in: Duration::MAX,
            ..Default::default()
        };
        client.url_for("/a", &options).await
    });
    let (id, v) = raw.request().await;
    assert_eq!(v["expires_in_ms"], json!(MAX_EXACT));
    raw.send_json(FrameType::Response, id, json!({"ok": "http://x/a"}))
        .await;
    assert_eq!(url.await.expect("task").expect("url"), "http://x/a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_resets_a_writer_abandoned_before_its_response() {
    let (mut raw, client) = raw_server_as("1.2").await;
    let c = client.clone();
    let open = tokio::spawn(async move { c.writer("/w", false).await.map(drop) });
    let (id, v) = raw.request().await;
    assert_eq!(v["op"], "writer");
    open.abort();
    let _ = open.await;
    let f = raw.next_from_client().await.expect("a frame");
    assert_eq!(
        (f.kind, f.id),
        (FrameType::Reset, id),
        "the abandoned writer is reset"
    );
    // The response the server still owes is ignored; the connection goes on.
    raw.send_json(FrameType::Response, id, json!({"ok": {"size": 0}}))
        .await;
    let c = client.clone();
    let list = tokio::spawn(async move { c.list("/").await });
    let (id, _) = raw.request().await;
    raw.send_json(FrameType::Response, id, json!({"ok": []}))
        .await;
    assert!(list.await.expect("task").expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_entry_ahead_of_the_walk_control_is_fatal() {
    let (mut raw, client) = raw_server_as("1.2").await;
    let (release, released) = std::sync::mpsc::channel::<()>();
    let walk = tokio::spawn(async move {
        let mut f = move |_: &storagedriver::FileInfo| {
            // The callback holds the first entry until the client has seen the second, which
            // so arrives before the control.
            let _ = released.recv_timeout(Duration::from_secs(10));
            storagedriver::WalkControl::Continue
        };
        client
            .walk("/", &storagedriver::WalkOptions::default(), &mut f)
            .await
    });
    let (id, _) = raw.request().await;
    let entry = json!({"path":"/a","size":0,"mod_time_s":0,"mod_time_nanos":0,"is_dir":true});
    raw.send_json(FrameType::WalkEntry, id, entry.clone()).await;
    raw.send_json(FrameType::WalkEntry, id, entry).await;
    let message = client_fatal(&mut raw).await;
    let _ = release.send(());
    assert!(
        message.contains("before the client's WALK_CONTROL"),
        "{message}"
    );
    assert!(walk.await.expect("task").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_content_answered_early_stops_waiting_for_credit() {
    let (mut raw, client) = raw_server_as("1.2").await;
    let c = client.clone();
    let put =
        tokio::spawn(async move { c.put_content("/p", Bytes::from(vec![3u8; 300_000])).await });
    let (id, v) = raw.request().await;
    assert_eq!(v["op"], "put_content");
    // The initial window of 64 KiB arrives; then the server answers without granting credit.
    let mut got = 0;
    while got < 64 << 10 {
        let f = raw.next_from_client().await.expect("a frame");
        assert_eq!((f.kind, f.id), (FrameType::Data, id));
        got += f.payload.len();
    }
    assert_eq!(got, 64 << 10, "nothing beyond the window");
    raw.send_json(
        FrameType::Response,
        id,
        json!({"error":{"kind":"conflict","driver":"raw","path":"/p","reason":"a file is a parent"}}),
    )
    .await;
    let f = raw.next_from_client().await.expect("a frame");
    assert_eq!(
        (f.kind, f.id),
        (FrameType::End, id),
        "the client ends the stream at once"
    );
    let err = put.await.expect("task").expect_err("the server's error");
    assert!(
        matches!(err, storagedriver::Error::Conflict { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_3_walk_streams_within_its_window_and_skips_what_the_client_skips() {
    let (mut raw, _server, driver) = start();
    for i in 0..2_000 {
        driver
            .put_content(&format!("/a/{i:05}"), Bytes::from_static(b"x"))
            .await
            .expect("put");
    }
    driver
        .put_content("/b/x", Bytes::from_static(b"x"))
        .await
        .expect("put");
    raw.hello_as("1.3").await;
    raw.send_json(
        FrameType::Request,
        1,
        json!({"op":"walk","path":"/","start_after":null}),
    )
    .await;
    // No WALK_CONTROL, no CREDIT: the server sends its first window of entries and waits.
    let mut first = 0;
    let mut paths = Vec::new();
    while let Ok(Some(f)) = tokio::time::timeout(Duration::from_millis(300), raw.next()).await {
        assert_eq!(f.kind, FrameType::WalkEntry, "{f:?}");
        first += f.payload.len();
        let entry: Value = serde_json::from_slice(&f.payload).expect("JSON");
        paths.push(entry["path"].as_str().expect("a path").to_owned());
    }
    assert!(
        first <= 65_536 && first > 60_000,
        "the first window is 64 KiB of entries; got {first} bytes"
    );
    assert_eq!(&paths[..2], ["/a", "/a/00000"]);
    // Skip /a: what is below it stops coming, and the walk goes on with /b.
    let mut skip = vec![1u8];
    skip.extend_from_slice(b"/a");
    raw.send(FrameType::WalkControl, 1, skip).await;
    raw.send(FrameType::Credit, 1, credit(1 << 20)).await;
    let mut after = Vec::new();
    loop {
        let f = raw.next().await.expect("a frame");
        match f.kind {
            FrameType::WalkEntry => {
                let entry: Value = serde_json::from_slice(&f.payload).expect("JSON");
                after.push(entry["path"].as_str().expect("a path").to_owned());
            }
            FrameType::Response => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let below_a = after.iter().filter(|p| p.starts_with("/a/")).count();
    assert!(
        below_a <= 1,
        "the server skips below /a from the next entry; it still sent {below_a}"
    );
    assert!(
        after.ends_with(&["/b".to_owned(), "/b/x".to_owned()]),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_3_walk_control_of_another_form_is_fatal() {
    let (mut raw, _server, driver) = start();
    driver
        .put_content("/a/b", Bytes::from_static(b"x"))
        .await
        .expect("put");
    raw.hello_as("1.3").await;
    raw.send_json(
        FrameType::Request,
        1,
        json!({"op":"walk","path":"/","start_after":null}),
    )
    .await;
    raw.send(FrameType::WalkControl, 1, vec![0u8]).await;
    let message = expect_fatal(&mut raw).await;
    assert!(message.contains("WALK_CONTROL"), "{message}");
}
