//! The handshake: `HELLO`, `WELCOME`, versions, and the end of the connection.

use serde_json::json;
use storagedriver_ipc::frame::FrameType;

use super::Target;

/// `WELCOME` names the driver of `registry-storage-<name>`, a version of major 1, and the four
/// capabilities as booleans; the server exits with status 0 when the connection closes.
pub async fn welcome_names_driver_version_and_capabilities(target: &Target) {
    let mut peer = target.start().await;
    let welcome = peer.hello().await;
    for capability in [
        "url_for",
        "append_to_committed",
        "persistent",
        "detects_file_dir_conflicts",
    ] {
        assert!(
            welcome["capabilities"][capability].is_boolean(),
            "{}: WELCOME's capabilities must carry `{capability}` as a boolean, got {welcome}",
            target.name
        );
    }
    let code = peer.close().await;
    assert_eq!(
        code,
        Some(0),
        "{}: a server exits with status 0 at the end of its connection",
        target.name
    );
}

/// A `HELLO` of another major version is answered with `FATAL` naming both versions, and the
/// server closes the connection.
pub async fn other_major_version_is_fatal(target: &Target) {
    let mut peer = target.start().await;
    let hello = json!({"protocol": "registry-storage-ipc", "version": "99.0"});
    peer.send_json(FrameType::Hello, 0, &hello).await;
    let message = peer.fatal().await;
    assert!(
        message.as_deref().is_some_and(|m| m.contains("99.0")),
        "{}: the FATAL for a HELLO of version 99.0 names that version, got {message:?}",
        target.name
    );
    peer.wait_exit().await;
}

/// A `HELLO` of the same major and a higher minor is answered with the server's own version:
/// minor versions are compatible.
pub async fn higher_minor_version_is_welcome(target: &Target) {
    let mut peer = target.start().await;
    let welcome = peer.hello_as("1.999").await;
    let version = welcome["version"].as_str().unwrap_or_default();
    assert!(
        version.starts_with("1.") && version != "1.999",
        "{}: a server answers a HELLO of 1.999 with its own 1.x version, got {welcome}",
        target.name
    );
    peer.ping(1).await;
}

/// A first frame that is not `HELLO` is a protocol error: `FATAL`, then the server closes.
pub async fn request_before_hello_is_fatal(target: &Target) {
    let mut peer = target.start().await;
    peer.request(1, &json!({"op": "stat", "path": "/"})).await;
    peer.fatal().await;
    peer.wait_exit().await;
}
