//! The conformance suite over IPC: every behaviour against `registry-storage-inmemory`, started
//! through the factory's executable fallback.

testsuites::register_ipc_suite!(
    driver = "inmemory",
    executable = env!("CARGO_BIN_EXE_registry-storage-inmemory"),
    parameters = |_root| testsuites::serde_json::json!({}),
);
