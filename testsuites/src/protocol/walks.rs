//! Walks on the wire: turns before protocol 1.3, a window of streamed entries from 1.3.

use serde_json::{Value, json};
use storagedriver_ipc::frame::FrameType;

use super::Target;
use super::peer::{Peer, parse};

/// The path of a `WALK_ENTRY` payload.
fn entry_path(peer: &Peer, payload: &[u8]) -> String {
    let entry: Value = parse(&peer.name, payload);
    match entry["path"].as_str() {
        Some(path) => path.to_owned(),
        None => panic!("{}: a WALK_ENTRY is a FILEINFO, got {entry}", peer.name),
    }
}

/// Before 1.3 the server sends a walk's next entry only after the client's `WALK_CONTROL` for
/// the previous one. From 1.3 it sends entries ahead, never more than the walk's window (64 KiB
/// of payloads) before any `CREDIT`, and a skip sent with a directory's path stops what is
/// below it from the next entry on.
pub async fn walk_entries_keep_turns_or_window(target: &Target) {
    let mut peer = target.connect().await;
    let long = "w".repeat(100);
    let count = 1_000_u64;
    let mut in_flight = 0;
    for i in 0..count {
        if in_flight == 64 {
            peer.ok_any().await;
            in_flight -= 1;
        }
        let path = format!("/protocol-kit/walk/a/{long}-{i:04}");
        peer.request(i + 1, &json!({"op": "put_content", "path": path}))
            .await;
        peer.send(FrameType::Data, i + 1, b"x".to_vec()).await;
        peer.send(FrameType::End, i + 1, Vec::new()).await;
        in_flight += 1;
    }
    for _ in 0..in_flight {
        peer.ok_any().await;
    }
    peer.put(count + 1, "/protocol-kit/walk/b/x", b"x").await;
    let walk = count + 2;
    peer.request(
        walk,
        &json!({"op": "walk", "path": "/protocol-kit/walk", "start_after": null}),
    )
    .await;
    let mut ahead = 0;
    let mut seen = Vec::new();
    while let Some(super::peer::Received::Frame(f)) = peer.next_within(super::QUIET_PERIOD).await {
        if f.kind == FrameType::Credit {
            continue;
        }
        assert!(
            f.kind == FrameType::WalkEntry && f.id == walk,
            "{}: got {} on id {} during a walk",
            target.name,
            f.kind.name(),
            f.id
        );
        ahead += f.payload.len();
        seen.push(entry_path(&peer, &f.payload));
    }
    if peer.minor() < 3 {
        assert_eq!(
            seen.len(),
            1,
            "{}: before 1.3 the walk waits for WALK_CONTROL after each entry; it sent {:?}",
            target.name,
            seen
        );
        peer.send(FrameType::WalkControl, walk, vec![1]).await;
        let f = peer.next().await;
        assert_eq!(f.kind, FrameType::WalkEntry, "{}", target.name);
        assert_eq!(entry_path(&peer, &f.payload), "/protocol-kit/walk/b");
        peer.send(FrameType::WalkControl, walk, vec![2]).await;
        let response = peer.response(walk).await;
        assert!(response.get("ok").is_some(), "{}: {response}", target.name);
        return;
    }
    assert!(
        ahead <= 65_536 && seen.len() > 1,
        "{}: from 1.3 a walk sends entries ahead within 64 KiB; it sent {ahead} bytes in {} \
         entries",
        target.name,
        seen.len()
    );
    let mut skip = vec![1_u8];
    skip.extend_from_slice(b"/protocol-kit/walk/a");
    peer.send(FrameType::WalkControl, walk, skip).await;
    peer.credit(walk, 1 << 20).await;
    let mut after = Vec::new();
    loop {
        let f = peer.next().await;
        match f.kind {
            FrameType::WalkEntry if f.id == walk => after.push(entry_path(&peer, &f.payload)),
            FrameType::Response if f.id == walk => break,
            _ => panic!("{}: got {} on id {}", target.name, f.kind.name(), f.id),
        }
    }
    let below = after
        .iter()
        .filter(|p| p.starts_with("/protocol-kit/walk/a/"))
        .count();
    assert!(
        below <= 1,
        "{}: after the skip of /protocol-kit/walk/a the server sent {below} entries below it",
        target.name
    );
    assert!(
        after.ends_with(&[
            "/protocol-kit/walk/b".to_owned(),
            "/protocol-kit/walk/b/x".to_owned()
        ]),
        "{}: the walk goes on after the skipped directory: {after:?}",
        target.name
    );
}
