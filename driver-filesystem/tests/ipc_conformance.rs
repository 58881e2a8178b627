//! The conformance suite over IPC: every behaviour against `registry-storage-filesystem`, each
//! test on a fresh root, started through the factory's executable fallback. The resume test
//! opens a second child process over the same root.

testsuites::register_ipc_suite!(
    driver = "filesystem",
    executable = env!("CARGO_BIN_EXE_registry-storage-filesystem"),
    parameters = |root| testsuites::serde_json::json!({ "rootdirectory": root, "fsync": false }),
);
