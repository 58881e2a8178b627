//! Requests and their responses: errors, unknown operations, `PING`, and responses longer
//! than one frame.

use serde_json::{Value, json};

use storagedriver_ipc::frame::FrameType;

use super::Target;
use super::peer::parse;

/// The error of a request for a missing path is `path_not_found` echoing the path as asked,
/// and an invalid path is `invalid_path` with the path and a reason; both name the driver
/// announced in `WELCOME`.
pub async fn errors_echo_the_path_and_name_the_driver(target: &Target) {
    let mut peer = target.connect().await;
    peer.request(1, &json!({"op": "stat", "path": "/protocol-kit/missing"}))
        .await;
    let error = peer.error(1).await;
    assert_eq!(error["kind"], "path_not_found", "{}: {error}", target.name);
    assert_eq!(
        error["path"], "/protocol-kit/missing",
        "{}: the error echoes the path asked for: {error}",
        target.name
    );
    for (id, path) in [(2, "/a//b"), (3, "relative"), (4, "/a/../b"), (5, "/a/b/")] {
        peer.request(id, &json!({"op": "stat", "path": path})).await;
        let error = peer.error(id).await;
        assert_eq!(
            error["kind"], "invalid_path",
            "{}: stat of {path:?} is invalid_path: {error}",
            target.name
        );
        assert_eq!(error["path"], path, "{}: {error}", target.name);
        assert!(
            error["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{}: invalid_path carries a reason: {error}",
            target.name
        );
    }
}

/// An unknown `op`, or a request missing a field, is answered with a `backend` error, not a
/// protocol error: the connection goes on.
pub async fn unknown_op_and_missing_field_are_errors(target: &Target) {
    let mut peer = target.connect().await;
    let cases: [(u64, Value); 4] = [
        (1, json!({"op": "frobnicate", "path": "/a"})),
        (2, json!({"op": "stat"})),
        (3, json!({"op": "reader", "path": "/a"})),
        (4, json!({"path": "/a"})),
    ];
    for (id, request) in &cases {
        peer.request(*id, request).await;
        let error = peer.error(*id).await;
        assert_eq!(
            error["kind"], "backend",
            "{}: {request} is answered with a backend error: {error}",
            target.name
        );
    }
    peer.ping(5).await;
    peer.request(6, &json!({"op": "list", "path": "/"})).await;
    let response = peer.response(6).await;
    assert!(
        response.get("ok").is_some() || response["error"]["kind"] == "path_not_found",
        "{}: the connection still serves requests: {response}",
        target.name
    );
}

/// `PING` with any id, 0 and the id of a request in flight among them, is answered with a
/// `PONG` of the same id.
pub async fn ping_with_any_id(target: &Target) {
    let mut peer = target.connect().await;
    peer.ping(0).await;
    peer.ping(77).await;
    peer.ping(super::MAX_EXACT_ID).await;
    peer.put(1, "/protocol-kit/p", b"pong").await;
    peer.request(
        2,
        &json!({"op": "reader", "path": "/protocol-kit/p", "offset": 0}),
    )
    .await;
    peer.ping(2).await;
}

/// Request ids and offsets up to 2^53 − 1 (every number on the wire is exact in an IEEE
/// double) work; a `reader` at that offset is an empty stream; from protocol 1.2 on, every
/// number in a FILEINFO is within 2^53 − 1 too.
pub async fn numbers_at_their_limits(target: &Target) {
    let mut peer = target.connect().await;
    let id = super::MAX_EXACT_ID;
    peer.put(id, "/protocol-kit/n", b"numbers").await;
    peer.request(
        id - 1,
        &json!({"op": "reader", "path": "/protocol-kit/n", "offset": super::MAX_EXACT_ID}),
    )
    .await;
    let response = peer.response(id - 1).await;
    assert!(
        response.get("ok").is_some(),
        "{}: a reader beyond the end is an empty stream: {response}",
        target.name
    );
    let rest = peer.read_stream(id - 1, 64 * 1024).await;
    assert!(rest.is_empty(), "{}: got {} bytes", target.name, rest.len());
    peer.request(id - 2, &json!({"op": "stat", "path": "/protocol-kit/n"}))
        .await;
    let info = peer.ok(id - 2).await;
    assert_eq!(info["size"], 7, "{}: {info}", target.name);
    assert_eq!(info["path"], "/protocol-kit/n", "{}: {info}", target.name);
    // Before 1.2, FILEINFO's time was `mod_time_ns`, beyond 2^53: 1.2 split it.
    let exact = info
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| peer.minor() >= 2 || *key != "mod_time_ns");
    for (key, value) in exact {
        if let Some(n) = value.as_i64() {
            assert!(
                n.unsigned_abs() <= super::MAX_EXACT_ID,
                "{}: FILEINFO's `{key}` is {n}, beyond 2^53 - 1, which a JSON parser using \
                 doubles rounds",
                target.name
            );
        }
    }
}

/// A response longer than one frame (a `list` of more than 1 MiB of JSON) comes as
/// `RESPONSE_PART` frames and a `RESPONSE`, which join into the whole sorted list.
pub async fn long_response_in_parts(target: &Target) {
    let mut peer = target.connect().await;
    let long = "x".repeat(200);
    let names: Vec<String> = (0..5_300)
        .map(|i| format!("/protocol-kit/long/{long}-{i:05}"))
        .collect();
    // At most 64 puts in flight: a server against a remote store runs them all at once.
    let mut in_flight = 0;
    for (id, path) in (1..).zip(&names) {
        if in_flight == 64 {
            peer.ok_any().await;
            in_flight -= 1;
        }
        peer.request(id, &json!({"op": "put_content", "path": path}))
            .await;
        peer.send(FrameType::Data, id, path.clone().into_bytes())
            .await;
        peer.send(FrameType::End, id, Vec::new()).await;
        in_flight += 1;
    }
    for _ in 0..in_flight {
        peer.ok_any().await;
    }
    peer.request(0x4000, &json!({"op": "list", "path": "/protocol-kit/long"}))
        .await;
    let mut joined = Vec::new();
    let mut parts = 0;
    loop {
        let f = peer.next().await;
        match f.kind {
            FrameType::ResponsePart if f.id == 0x4000 => {
                parts += 1;
                joined.extend_from_slice(&f.payload);
            }
            FrameType::Response if f.id == 0x4000 => {
                joined.extend_from_slice(&f.payload);
                break;
            }
            _ => {}
        }
    }
    assert!(
        parts >= 1,
        "{}: a response of {} bytes comes in RESPONSE_PART frames first",
        target.name,
        joined.len()
    );
    let response = parse(&target.name, &joined);
    let Some(listed) = response["ok"].as_array() else {
        panic!("{}: list failed: {response}", target.name);
    };
    let mut expected = names.clone();
    expected.sort();
    let listed: Vec<&str> = listed.iter().filter_map(Value::as_str).collect();
    assert!(
        listed.len() == expected.len() && listed.iter().zip(&expected).all(|(a, b)| a == b),
        "{}: the joined list is every path ({} of them) in byte order; got {} paths",
        target.name,
        expected.len(),
        listed.len()
    );
}

/// Many requests in flight at once are all answered, each once, in any order.
pub async fn many_requests_in_flight(target: &Target) {
    let mut peer = target.connect().await;
    peer.put(1, "/protocol-kit/many", b"many").await;
    let count = 256;
    for id in 2..2 + count {
        peer.request(id, &json!({"op": "stat", "path": "/protocol-kit/many"}))
            .await;
    }
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < count as usize {
        let f = peer.next().await;
        assert_eq!(
            f.kind,
            FrameType::Response,
            "{}: got {}",
            target.name,
            f.kind.name()
        );
        assert!(
            (2..2 + count).contains(&f.id) && seen.insert(f.id),
            "{}: a response for id {} that was not asked or was answered twice",
            target.name,
            f.id
        );
    }
}
