//! The conformance suite over IPC: every behaviour against `registry-storage-azure`, started
//! through the factory's executable fallback, on Azurite. The resume test opens a second
//! child process over the same root.

mod common;

fn parameters(root: &std::path::Path) -> testsuites::serde_json::Value {
    let label = root
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("ipc")
        .trim_start_matches('.');
    match common::server() {
        Ok(s) => s.parameters(&common::unique_root(&format!("ipc-{label}"))),
        Err(_) => testsuites::serde_json::json!({}),
    }
}

testsuites::register_ipc_suite!(
    driver = "azure",
    executable = env!("CARGO_BIN_EXE_registry-storage-azure"),
    parameters = parameters,
    requires = || common::server().map(|_| ()),
);
