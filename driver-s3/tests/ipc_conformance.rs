//! The conformance suite over IPC: every behaviour against `registry-storage-s3`, started
//! through the factory's executable fallback, on Garage and on ministack. The resume test opens
//! a second child process over the same root.

mod common;

fn parameters(server: &str, root: &std::path::Path) -> testsuites::serde_json::Value {
    let label = root
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("ipc")
        .trim_start_matches('.');
    match common::server(if server == "garage" {
        "GARAGE"
    } else {
        "MINISTACK"
    }) {
        Ok(s) => s.parameters(&common::unique_root(&format!("ipc-{server}-{label}"))),
        Err(_) => testsuites::serde_json::json!({}),
    }
}

mod garage {
    testsuites::register_ipc_suite!(
        driver = "s3",
        executable = env!("CARGO_BIN_EXE_registry-storage-s3"),
        parameters = |root| super::parameters("garage", root),
        requires = || super::common::server("GARAGE").map(|_| ()),
    );
}

mod ministack {
    testsuites::register_ipc_suite!(
        driver = "s3",
        executable = env!("CARGO_BIN_EXE_registry-storage-s3"),
        parameters = |root| super::parameters("ministack", root),
        requires = || super::common::server("MINISTACK").map(|_| ()),
    );
}
