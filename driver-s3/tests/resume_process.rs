//! A writer closed in this process and resumed in another: a `registry-storage-s3` child
//! started through the factory's executable fallback finds the upload from its reserved keys,
//! appends and commits, and this process reads the whole content back.

mod common;

use std::path::Path;

use bytes::Bytes;
use storagedriver::Parameters;

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_resumes_in_a_second_process() {
    let server = match common::server("GARAGE") {
        Ok(server) => server,
        Err(reason) if testsuites::sizes::servers_required() => {
            panic!("STORAGEDRIVER_REQUIRE_SERVERS=1, but {reason}")
        }
        Err(reason) => return eprintln!("skipped: {reason}"),
    };
    let root = common::unique_root("process");
    let here = server.driver(&root);
    let first: Vec<u8> = (0..(7u32 << 20)).map(|i| (i % 241) as u8).collect();
    let second: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 239) as u8).collect();

    let mut writer = here.writer("/blobs/upload", false).await.expect("writer");
    writer
        .write(Bytes::from(first.clone()))
        .await
        .expect("write");
    writer.close().await.expect("close");

    let params: Parameters = serde_json::from_value(server.parameters(&root)).expect("params");
    let exe = Path::new(env!("CARGO_BIN_EXE_registry-storage-s3"));
    let child = testsuites::ipc::spawn_driver("s3", exe, &params).await;
    let mut resumed = child
        .writer("/blobs/upload", true)
        .await
        .expect("resume in the child");
    assert_eq!(
        resumed.size(),
        first.len() as u64,
        "the child resumes at the closed size"
    );
    resumed
        .write(Bytes::from(second.clone()))
        .await
        .expect("write in the child");
    resumed.commit().await.expect("commit in the child");
    drop(child);

    let content = here
        .get_content("/blobs/upload")
        .await
        .expect("read back here");
    assert_eq!(content.len(), first.len() + second.len());
    assert!(content[..first.len()] == first[..] && content[first.len()..] == second[..]);
}
