//! The conformance suite over IPC against a driver written in Python with the standard library
//! only (`examples/python-driver`): the protocol is language-neutral.

testsuites::register_ipc_suite!(
    driver = "pydir",
    executable = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/python-driver/registry-storage-pydir"
    ),
    parameters = |root| testsuites::serde_json::json!({ "rootdirectory": root }),
);
