//! Frames that break the protocol: each is answered with `FATAL` and the end of the
//! connection, never a hang, and the server exits.

use storagedriver_ipc::frame::{FrameType, HEADER_LEN, MAX_PAYLOAD};

use super::Target;
use super::peer::Peer;

/// Sends a header of `length`, type `kind`, then `payload`, on a connection past its
/// handshake, and expects `FATAL` (or at least the end of the connection), then the server's
/// exit.
async fn fatal_after(target: &Target, what: &str, length: u32, kind: u8, id: u64, payload: &[u8]) {
    let mut peer: Peer = target.connect().await;
    peer.send_header(length, kind, id, payload).await;
    let message = peer.fatal().await;
    assert!(
        message.is_some(),
        "{}: {what}: the server closed the connection without a FATAL",
        target.name
    );
    peer.wait_exit().await;
}

/// The length a header carries for `payload_len` bytes of payload.
fn length_for(payload_len: usize) -> u32 {
    u32::try_from(HEADER_LEN - 4 + payload_len).unwrap_or(u32::MAX)
}

/// A frame type the protocol does not define.
pub async fn unknown_frame_type_is_fatal(target: &Target) {
    fatal_after(
        target,
        "an unknown frame type 0x55",
        length_for(0),
        0x55,
        1,
        &[],
    )
    .await;
}

/// A length beyond 1 MiB of payload is refused from the header alone (the server does not
/// wait for the payload).
pub async fn oversized_frame_is_fatal(target: &Target) {
    let length = length_for(MAX_PAYLOAD + 1);
    fatal_after(
        target,
        "a frame of 1 MiB + 1 byte",
        length,
        FrameType::Data.as_u8(),
        1,
        &[],
    )
    .await;
}

/// A length below the header's 9 bytes.
pub async fn undersized_frame_is_fatal(target: &Target) {
    fatal_after(
        target,
        "a frame length of 3",
        3,
        FrameType::Request.as_u8(),
        1,
        &[],
    )
    .await;
}

/// A request whose JSON does not parse.
pub async fn unparsable_request_is_fatal(target: &Target) {
    let payload = b"{\"op\": \"stat\", \"path\": ";
    let length = length_for(payload.len());
    fatal_after(
        target,
        "a REQUEST whose JSON does not parse",
        length,
        FrameType::Request.as_u8(),
        1,
        payload,
    )
    .await;
}

/// A frame only a server sends (`WELCOME`, `RESPONSE`, `WALK_ENTRY`, `PONG`) arriving from the
/// client.
pub async fn server_frames_from_the_client_are_fatal(target: &Target) {
    for kind in [
        FrameType::Welcome,
        FrameType::Response,
        FrameType::WalkEntry,
        FrameType::Pong,
    ] {
        let payload = b"{}";
        fatal_after(
            target,
            &format!("a {} frame from the client", kind.name()),
            length_for(payload.len()),
            kind.as_u8(),
            1,
            payload,
        )
        .await;
    }
}

/// `DATA` for a stream that is not open.
pub async fn data_for_no_stream_is_fatal(target: &Target) {
    fatal_after(
        target,
        "DATA on an id with no stream",
        length_for(4),
        FrameType::Data.as_u8(),
        4242,
        b"data",
    )
    .await;
}

/// A `DATA` beyond the window of a `put_content`: one frame of 64 KiB + 1 byte right after
/// the request, against an initial window of 64 KiB (the server cannot have granted credit
/// for content it has not received).
///
/// A 1.0 server's window is 4 MiB, more than a frame, which it may credit while the frames
/// arrive: there the case cannot tell a breach from a race, and checks nothing more than the
/// handshake.
pub async fn data_beyond_the_window_is_fatal(target: &Target) {
    let mut peer = target.connect().await;
    if peer.minor() == 0 {
        eprintln!(
            "{}: data_beyond_the_window_is_fatal: not applicable to protocol 1.0",
            target.name
        );
        return;
    }
    peer.request(
        1,
        &serde_json::json!({"op": "put_content", "path": "/protocol-kit/flood"}),
    )
    .await;
    peer.send(FrameType::Data, 1, vec![0_u8; 64 * 1024 + 1])
        .await;
    let message = peer.fatal().await;
    assert!(
        message.is_some(),
        "{}: 64 KiB + 1 byte against a 64 KiB window: the server closed without a FATAL",
        target.name
    );
    peer.wait_exit().await;
}
