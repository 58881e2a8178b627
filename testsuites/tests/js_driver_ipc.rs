//! The conformance suite over IPC against a driver written in JavaScript for Node.js with the
//! standard library only (`examples/js-driver`): the protocol is language-neutral.

testsuites::register_ipc_suite!(
    driver = "jsdir",
    executable = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/js-driver/registry-storage-jsdir"
    ),
    parameters = |root| testsuites::serde_json::json!({ "rootdirectory": root }),
);
