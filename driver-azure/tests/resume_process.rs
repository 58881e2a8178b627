//! A writer closed in this process and resumed in another: a `registry-storage-azure` child
//! started through the factory's executable fallback finds the staged blocks from its reserved blobs,
//! appends and commits, and this process reads the whole content back.

mod common;

use std::path::Path;

use bytes::Bytes;
use storagedriver::Parameters;

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_resumes_in_a_second_process() {
    let Some(server) = common::or_skip(common::server()) else {
        return;
    };
    let root = common::unique_root("process");
    let here = server.driver(&root).await;
    let first: Vec<u8> = (0..(7u32 << 20)).map(|i| (i % 241) as u8).collect();
    let second: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 239) as u8).collect();

    let mut writer = here.writer("/blobs/upload", false).await.expect("writer");
    writer
        .write(Bytes::from(first.clone()))
        .await
        .expect("write");
    writer.close().await.expect("close");

    let params: Parameters = serde_json::from_value(server.parameters(&root)).expect("params");
    let exe = Path::new(env!("CARGO_BIN_EXE_registry-storage-azure"));
    let child = testsuites::ipc::spawn_driver("azure", exe, &params).await;
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

/// The PIDs of this process's children running `registry-storage-azure`.
fn driver_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: comm is cut to 15 bytes.
            let (comm, rest) = stat.split_once(") ")?;
            let ppid = rest.split_whitespace().nth(1)?;
            (comm.ends_with("registry-storag") && ppid == me).then_some(pid)
        })
        .collect()
}

/// A child killed with SIGKILL in the middle of a write: its upload stays resumable from the
/// last state it recorded (the bytes it had not flushed are lost, nothing else), and a resumed
/// writer that commits leaves no reserved blob behind.
#[tokio::test(flavor = "multi_thread")]
async fn a_writer_killed_mid_write_resumes_elsewhere() {
    let Some(server) = common::or_skip(common::server()) else {
        return;
    };
    let root = common::unique_root("killed");
    let params: Parameters = serde_json::from_value(server.parameters(&root)).expect("params");
    let exe = Path::new(env!("CARGO_BIN_EXE_registry-storage-azure"));
    let before = driver_children();
    let child = testsuites::ipc::spawn_driver("azure", exe, &params).await;
    let mut writer = child
        .writer("/blobs/killed", false)
        .await
        .expect("writer in the child");
    writer
        .write(Bytes::from(vec![9u8; 12 << 20]))
        .await
        .expect("two parts and a tail, unflushed");
    let pids: Vec<i32> = driver_children()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(pids.len(), 1, "one new child: {pids:?}");
    let status = std::process::Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    drop(writer);
    drop(child);

    let here = server.driver(&root).await;
    let mut resumed = here
        .writer("/blobs/killed", true)
        .await
        .expect("resume after SIGKILL");
    let start = resumed.size();
    assert!(
        start <= 12 << 20 && start % (5 << 20) == 0,
        "resumed at {start}"
    );
    let rest = (12u64 << 20) - start;
    resumed
        .write(Bytes::from(vec![9u8; rest as usize]))
        .await
        .expect("write the rest");
    resumed.commit().await.expect("commit");
    let content = here.get_content("/blobs/killed").await.expect("read back");
    assert!(content.len() == 12 << 20 && content.iter().all(|b| *b == 9));
    let raw: Parameters = serde_json::from_value(server.parameters("")).expect("params");
    let store = driver_azure::AzureConfig::from_parameters(&raw)
        .expect("config")
        .build_store()
        .expect("store");
    let uploads =
        object_store::path::Path::parse(format!("{}/~uploads", root.trim_start_matches('/')))
            .expect("a key");
    let left: Vec<_> =
        futures::TryStreamExt::try_collect(object_store::ObjectStore::list(&store, Some(&uploads)))
            .await
            .expect("list reserved keys");
    assert!(
        left.is_empty(),
        "the commit removed every record, the killed writer's too: {left:?}"
    );
}
