//! Streams under flow control: windows, `CREDIT`, `RESET` from the client, and the content a
//! `get_content` announces.

use serde_json::json;
use storagedriver_ipc::frame::FrameType;

use super::Target;
use super::peer::{Received, credit_value};
use crate::data::random_bytes;

/// A server sends a `reader`'s stream only as the client grants credit: nothing before the
/// first `CREDIT` (protocol 1.1; 4 MiB in 1.0), never more than granted, and all of it, then
/// `END`, as the credit comes.
pub async fn server_stream_stays_within_its_window(target: &Target) {
    let mut peer = target.connect().await;
    let initial = peer.server_window();
    let content = random_bytes(11, initial as usize + 300 * 1024);
    peer.put(1, "/protocol-kit/window", &content).await;
    peer.request(
        2,
        &json!({"op": "reader", "path": "/protocol-kit/window", "offset": 0}),
    )
    .await;
    let response = peer.response(2).await;
    assert!(response.get("ok").is_some(), "{}: {response}", target.name);
    let mut received = peer.data_within_quiet_period(2).await as u64;
    assert!(
        received <= initial,
        "{}: before any CREDIT a reader's window is {initial} bytes (protocol 1.{}); the \
         server sent {received}",
        target.name,
        peer.minor()
    );
    let granted = initial + 1000;
    peer.credit(2, 1000).await;
    while received < granted {
        let f = peer.next().await;
        assert!(
            f.kind == FrameType::Data && f.id == 2,
            "{}: got {} on id {}",
            target.name,
            f.kind.name(),
            f.id
        );
        received += f.payload.len() as u64;
    }
    received += peer.data_within_quiet_period(2).await as u64;
    assert_eq!(
        received, granted,
        "{}: the window allowed {granted} bytes, the server sent {received}",
        target.name
    );
    let rest = peer.read_stream(2, 64 * 1024).await;
    assert!(
        rest[..] == content[granted as usize..],
        "{}: the stream carries the whole file ({} bytes), got {} after the first {granted}",
        target.name,
        content.len(),
        rest.len()
    );
}

/// `get_content` announces the size, and its stream carries exactly that many bytes.
pub async fn get_content_carries_the_announced_size(target: &Target) {
    let mut peer = target.connect().await;
    for (id, size) in [(1_u64, 0_usize), (3, 1), (5, 65_536), (7, 1_048_577)] {
        let content = random_bytes(id, size);
        let path = format!("/protocol-kit/get-{size}");
        peer.put(id, &path, &content).await;
        peer.request(id + 1, &json!({"op": "get_content", "path": path}))
            .await;
        peer.credit(id + 1, 64 * 1024).await;
        let ok = peer.ok(id + 1).await;
        assert_eq!(ok["size"], size, "{}: {ok}", target.name);
        let got = peer.read_stream(id + 1, 0).await;
        assert!(
            got == content,
            "{}: get_content of {size} bytes streamed {} bytes",
            target.name,
            got.len()
        );
    }
}

/// A `RESET` from the client on a request before its response (an abandoned `get_content`)
/// leaves the connection working: the server stops the stream, and other requests go on.
pub async fn reset_before_the_response(target: &Target) {
    let mut peer = target.connect().await;
    let content = random_bytes(5, 2 << 20);
    peer.put(1, "/protocol-kit/reset", &content).await;
    peer.request(
        2,
        &json!({"op": "get_content", "path": "/protocol-kit/reset"}),
    )
    .await;
    peer.send(FrameType::Reset, 2, Vec::new()).await;
    peer.ping(3).await;
    peer.request(4, &json!({"op": "stat", "path": "/protocol-kit/reset"}))
        .await;
    let info = peer
        .response_with(4, |f| {
            assert!(
                f.id == 2 || f.kind == FrameType::Pong,
                "unexpected {} on id {}",
                f.kind.name(),
                f.id
            );
        })
        .await;
    assert_eq!(info["ok"]["size"], 2 << 20, "{}: {info}", target.name);
    // Whatever still comes for id 2 stays within the window it had (none from 1.1 on).
    let late = peer.data_within_quiet_period(2).await as u64;
    assert!(
        late <= peer.server_window(),
        "{}: the reset stream had a window of {} bytes; the server sent {late} on it",
        target.name,
        peer.server_window()
    );
}

/// A `RESET` in the middle of a `reader`'s stream stops it: nothing beyond the credit given
/// comes, and the connection goes on.
pub async fn reset_in_the_middle_of_a_stream(target: &Target) {
    let mut peer = target.connect().await;
    let content = random_bytes(6, 1 << 20);
    peer.put(1, "/protocol-kit/midway", &content).await;
    peer.request(
        2,
        &json!({"op": "reader", "path": "/protocol-kit/midway", "offset": 100}),
    )
    .await;
    let ok = peer.response(2).await;
    assert!(ok.get("ok").is_some(), "{}: {ok}", target.name);
    let granted = peer.server_window() as usize + 4096;
    peer.credit(2, 4096).await;
    let mut received = Vec::new();
    while received.len() < 4096 {
        let f = peer.next().await;
        assert!(
            f.kind == FrameType::Data && f.id == 2,
            "{}: got {}",
            target.name,
            f.kind.name()
        );
        received.extend_from_slice(&f.payload);
    }
    peer.send(FrameType::Reset, 2, Vec::new()).await;
    let total = received.len() + peer.data_within_quiet_period(2).await;
    assert!(
        received[..] == content[100..100 + received.len()],
        "{}: the stream carries the file from offset 100",
        target.name
    );
    assert!(
        total <= granted,
        "{}: {total} bytes on a stream granted {granted}, across a RESET",
        target.name
    );
    peer.request(3, &json!({"op": "stat", "path": "/protocol-kit/midway"}))
        .await;
    let info = peer
        .response_with(3, |f| {
            assert!(f.id == 2, "unexpected {} on id {}", f.kind.name(), f.id);
        })
        .await;
    assert_eq!(info["ok"]["size"], 1 << 20, "{}: {info}", target.name);
}

/// A `put_content` the server refuses before the content's `END` (an invalid path) is
/// answered with an error while the client is still sending; the client then ends the stream
/// and the connection goes on.
pub async fn put_content_fails_early(target: &Target) {
    let mut peer = target.connect().await;
    peer.request(
        2,
        &json!({"op": "put_content", "path": "/protocol-kit//invalid"}),
    )
    .await;
    let content = random_bytes(7, 1 << 20);
    let window = peer.client_window();
    let early = peer.send_stream(2, &content, window).await;
    let answered_early = early.is_some();
    let response = match early {
        Some(response) => response,
        None => peer.response(2).await,
    };
    if answered_early {
        peer.send(FrameType::End, 2, Vec::new()).await;
    }
    let error = peer.error_of(2, &response);
    assert_eq!(error["kind"], "invalid_path", "{}: {error}", target.name);
    peer.put(3, "/protocol-kit/after", b"after").await;
    peer.request(4, &json!({"op": "stat", "path": "/protocol-kit/after"}))
        .await;
    let info = peer.ok(4).await;
    assert_eq!(
        info["size"], 5,
        "{}: the connection goes on: {info}",
        target.name
    );
}

/// The window of a stream the client sends (`put_content`) starts at 64 KiB (4 MiB in 1.0),
/// and the server grants `CREDIT` as it consumes, so that content of any size goes through.
pub async fn client_stream_gets_credit(target: &Target) {
    let mut peer = target.connect().await;
    let mut granted = peer.client_window();
    let content = random_bytes(8, granted as usize + (3 << 20));
    peer.request(
        1,
        &json!({"op": "put_content", "path": "/protocol-kit/credit"}),
    )
    .await;
    let mut sent: u64 = 0;
    let mut credits = 0;
    for chunk in content.chunks(16 * 1024) {
        while granted - sent < chunk.len() as u64 {
            match peer.next_within(super::peer::ANSWER_TIMEOUT).await {
                Some(Received::Frame(f)) if f.kind == FrameType::Credit && f.id == 1 => {
                    credits += 1;
                    granted += u64::from(credit_value(&target.name, &f.payload));
                }
                Some(Received::Frame(f)) => panic!(
                    "{}: while sending, got {} on id {}",
                    target.name,
                    f.kind.name(),
                    f.id
                ),
                Some(Received::Closed) | None => panic!(
                    "{}: the server granted {granted} bytes of a {}-byte put_content and no \
                     more: a client waits forever",
                    target.name,
                    content.len()
                ),
            }
        }
        peer.send(FrameType::Data, 1, chunk.to_vec()).await;
        sent += chunk.len() as u64;
    }
    peer.send(FrameType::End, 1, Vec::new()).await;
    let response = peer
        .response_with(1, |f| {
            assert!(f.kind == FrameType::Credit, "unexpected {}", f.kind.name());
        })
        .await;
    assert!(response.get("ok").is_some(), "{}: {response}", target.name);
    assert!(credits > 0, "{}", target.name);
    peer.request(2, &json!({"op": "stat", "path": "/protocol-kit/credit"}))
        .await;
    let info = peer.ok(2).await;
    assert_eq!(info["size"], content.len(), "{}: {info}", target.name);
}
