//! Writer handles: their stream, finishing requests, resuming, and abandoned writers.

use serde_json::json;
use storagedriver_ipc::frame::FrameType;

use super::Target;
use super::peer::Peer;
use crate::data::random_bytes;

/// Opens a writer on request `id`; returns the size it resumed.
async fn open(peer: &mut Peer, id: u64, path: &str, append: bool) -> u64 {
    peer.request(id, &json!({"op": "writer", "path": path, "append": append}))
        .await;
    let ok = peer.ok(id).await;
    match ok["size"].as_u64() {
        Some(size) => size,
        None => panic!("{}: writer answers {{\"size\":N}}, got {ok}", peer.name),
    }
}

/// Sends `content` on a fresh writer handle, within its window.
async fn write(peer: &mut Peer, handle: u64, content: &[u8]) {
    let window = peer.client_window();
    let early = peer.send_stream_no_end(handle, content, window).await;
    assert!(
        early.is_none(),
        "{}: writer {handle} answered {early:?}",
        peer.name
    );
}

/// A finishing request (`writer_close`, `writer_commit`, ...) on request `id`; its response
/// (`CREDIT` frames before it are passed over).
async fn finish(peer: &mut Peer, id: u64, op: &str, handle: u64) -> serde_json::Value {
    peer.request(id, &json!({"op": op, "handle": handle})).await;
    peer.response(id).await
}

/// A writer closed (not committed) resumes in a new `writer` with `append`: it reports the
/// bytes it holds, takes more, and commits the whole.
pub async fn writer_close_then_resume(target: &Target) {
    let mut peer = target.connect().await;
    let path = "/protocol-kit/resume";
    let content = random_bytes(9, 200 * 1024);
    assert_eq!(open(&mut peer, 1, path, false).await, 0);
    write(&mut peer, 1, &content[..150 * 1024]).await;
    let closed = finish(&mut peer, 2, "writer_close", 1).await;
    assert!(closed.get("ok").is_some(), "{}: {closed}", target.name);
    let resumed = open(&mut peer, 3, path, true).await;
    assert_eq!(
        resumed,
        150 * 1024,
        "{}: a closed writer resumes with what it holds",
        target.name
    );
    write(&mut peer, 3, &content[150 * 1024..]).await;
    let committed = finish(&mut peer, 4, "writer_commit", 3).await;
    assert!(
        committed.get("ok").is_some(),
        "{}: {committed}",
        target.name
    );
    peer.request(5, &json!({"op": "get_content", "path": path}))
        .await;
    peer.credit(5, 64 * 1024).await;
    let ok = peer.ok(5).await;
    assert_eq!(ok["size"], 200 * 1024, "{}: {ok}", target.name);
    let got = peer.read_stream(5, 0).await;
    assert!(
        got == content,
        "{}: the committed content differs",
        target.name
    );
}

/// A finishing request on a handle that is not open (never opened, or already finished) is
/// answered with an error, never `FATAL`; the connection goes on.
pub async fn finishing_an_unknown_handle_is_an_error(target: &Target) {
    let mut peer = target.connect().await;
    let response = finish(&mut peer, 1, "writer_commit", 999).await;
    peer.error_of(1, &response);
    assert_eq!(open(&mut peer, 2, "/protocol-kit/twice", false).await, 0);
    let committed = finish(&mut peer, 3, "writer_commit", 2).await;
    assert!(
        committed.get("ok").is_some(),
        "{}: {committed}",
        target.name
    );
    let again = finish(&mut peer, 4, "writer_close", 2).await;
    peer.error_of(4, &again);
    peer.ping(5).await;
}

/// A writer the client gives up on (`writer_drop`) leaves its content resumable, and a
/// `writer_cancel` leaves nothing: the path stays missing.
pub async fn dropped_and_cancelled_writers(target: &Target) {
    let mut peer = target.connect().await;
    let content = random_bytes(10, 70 * 1024);
    assert_eq!(open(&mut peer, 1, "/protocol-kit/dropped", false).await, 0);
    write(&mut peer, 1, &content).await;
    let dropped = finish(&mut peer, 2, "writer_drop", 1).await;
    assert!(dropped.get("ok").is_some(), "{}: {dropped}", target.name);
    assert_eq!(
        open(&mut peer, 3, "/protocol-kit/cancelled", false).await,
        0
    );
    write(&mut peer, 3, &content).await;
    let cancelled = finish(&mut peer, 4, "writer_cancel", 3).await;
    assert!(
        cancelled.get("ok").is_some(),
        "{}: {cancelled}",
        target.name
    );
    peer.request(5, &json!({"op": "stat", "path": "/protocol-kit/cancelled"}))
        .await;
    let error = peer.error(5).await;
    assert_eq!(error["kind"], "path_not_found", "{}: {error}", target.name);
}

/// Writers on many handles at once, their frames interleaved on the connection, each get
/// their own content.
pub async fn interleaved_writers(target: &Target) {
    let mut peer = target.connect().await;
    let handles: Vec<u64> = (1..=8).collect();
    for &handle in &handles {
        let path = format!("/protocol-kit/interleaved/{handle}");
        assert_eq!(open(&mut peer, handle, &path, false).await, 0);
    }
    for round in 0..4_u64 {
        for &handle in &handles {
            let chunk = random_bytes(handle * 100 + round, 10_000);
            peer.send(FrameType::Data, handle, chunk.to_vec()).await;
        }
    }
    for &handle in &handles {
        let committed = finish(&mut peer, 100 + handle, "writer_commit", handle).await;
        assert!(
            committed.get("ok").is_some(),
            "{}: {committed}",
            target.name
        );
    }
    for &handle in &handles {
        let path = format!("/protocol-kit/interleaved/{handle}");
        let id = 200 + handle;
        peer.request(id, &json!({"op": "get_content", "path": path}))
            .await;
        peer.credit(id, 64 * 1024).await;
        let ok = peer.ok(id).await;
        assert_eq!(ok["size"], 40_000, "{}: {ok}", target.name);
        let got = peer.read_stream(id, 0).await;
        let expected: Vec<u8> = (0..4_u64)
            .flat_map(|round| random_bytes(handle * 100 + round, 10_000).to_vec())
            .collect();
        assert!(
            got == expected,
            "{}: writer {handle}'s content differs",
            target.name
        );
    }
}
