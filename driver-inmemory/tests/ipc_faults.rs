//! Fault drills against the real `registry-storage-inmemory` child: it is killed mid-stream,
//! rejects its parameters, or is dropped; callers get prompt errors and no child is left.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use storagedriver::{Parameters, StorageDriver};
use storagedriver_ipc::IpcDriver;

const EXE: &str = env!("CARGO_BIN_EXE_registry-storage-inmemory");

fn params(value: serde_json::Value) -> Parameters {
    match serde_json::from_value(value) {
        Ok(params) => params,
        Err(e) => panic!("not a JSON object: {e}"),
    }
}

/// Waits until the process `pid` no longer exists (it was reaped, not left a zombie).
async fn assert_gone(pid: u32) {
    let proc_dir = format!("/proc/{pid}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&proc_dir).exists() {
        assert!(
            Instant::now() < deadline,
            "child {pid} is still there 5 s later: {:?}",
            std::fs::read_to_string(format!("{proc_dir}/stat"))
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn spawn() -> IpcDriver {
    match IpcDriver::spawn("inmemory", Path::new(EXE), &Parameters::new()).await {
        Ok(driver) => driver,
        Err(e) => panic!("cannot start {EXE}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_256_mib_stream_fails_within_a_second() {
    let driver = spawn().await;
    let pid = driver.child_pid().expect("a child pid");
    let chunk = Bytes::from(vec![7u8; 1 << 20]);
    let mut writer = driver.writer("/big", false).await.expect("writer");
    for _ in 0..256 {
        writer.write(chunk.clone()).await.expect("write");
    }
    writer.commit().await.expect("commit");

    let mut stream = driver.reader("/big", 0).await.expect("reader");
    let mut read = 0usize;
    while read < 16 << 20 {
        read += stream
            .next()
            .await
            .expect("a chunk")
            .expect("no error yet")
            .len();
    }
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -9 {pid} failed");
    let killed_at = Instant::now();
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(Ok(chunk))) => read += chunk.len(),
            Ok(Some(Err(e))) => break e,
            Ok(None) => {
                panic!("the stream ended cleanly after {read} bytes though the child was killed")
            }
            Err(_) => panic!("the stream hung after kill -9"),
        }
    };
    let waited = killed_at.elapsed();
    println!("kill -9 after {read} bytes: error after {waited:?}: {error}");
    assert!(waited < Duration::from_secs(1), "the error took {waited:?}");
    assert!(
        read < 256 << 20,
        "all 256 MiB arrived though the child was killed"
    );
    let text = error.to_string();
    assert!(
        text.contains("inmemory") && text.contains("signal: 9"),
        "the error names neither the driver nor the signal: {text}"
    );

    let later = Instant::now();
    let err = driver
        .stat("/big")
        .await
        .expect_err("a call after the child died");
    assert!(
        later.elapsed() < Duration::from_secs(1),
        "a later call took {:?}",
        later.elapsed()
    );
    println!("a later stat: {err}");
    drop(driver);
    assert_gone(pid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_fail_at_start_up_with_the_childs_stderr() {
    let started = Instant::now();
    let err = IpcDriver::spawn(
        "inmemory",
        Path::new(EXE),
        &params(serde_json::json!({ "rootdirectory": "/x" })),
    )
    .await
    .expect_err("the child must refuse an unknown parameter");
    println!("bad parameters: {err}");
    let text = err.to_string();
    assert!(
        text.contains("rootdirectory"),
        "the error lacks the child's stderr: {text}"
    );
    assert!(
        text.contains("exit status: 2"),
        "the error lacks the exit status: {text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_client_stops_and_reaps_the_child() {
    let driver = spawn().await;
    let pid = driver.child_pid().expect("a child pid");
    driver
        .put_content("/a", Bytes::from_static(b"x"))
        .await
        .expect("put");
    let clone = driver.clone();
    drop(driver);
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "a clone still holds the child"
    );
    drop(clone);
    assert_gone(pid).await;
}

/// True when `pid` has exited: no such process, or a zombie waiting for whoever adopted it.
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_whose_parent_dies_exits() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dying_parent.py"
    );
    let mut parent = tokio::process::Command::new("python3")
        .arg(script)
        .arg(EXE)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the stand-in parent");
    let stdout = parent.stdout.take().expect("its stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("the parent printed the child's pid in time")
        .expect("a readable line")
        .expect("a line");
    let child: u32 = line.trim().parse().expect("a pid");
    assert!(!exited(child), "the child {child} is not running");
    parent.start_kill().expect("kill -9 the parent");
    parent.wait().await.expect("reap the parent");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !exited(child) {
        assert!(
            Instant::now() < deadline,
            "the child {child} still runs 5 s after its parent died"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("the child {child} exited after its parent was killed");
}
