//! The client with real child processes: this test binary itself as a driver server (when
//! started with the socket variable set it runs `run_driver_executable` with the in-memory
//! factory), and Python fake servers (tests/fixtures/fake_server.py) for the failure drills.
//!
//! `harness = false`: `main` is either the server or a small test runner printing libtest's
//! lines.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use driver_inmemory::InMemoryFactory;
use futures::StreamExt;
use serde_json::json;
use storagedriver::{Error, Parameters, StorageDriver};
use storagedriver_ipc::{IpcDriver, SOCKET_ENV, SpawnOptions, run_driver_executable};

fn main() -> ExitCode {
    if std::env::var_os(SOCKET_ENV).is_some() {
        // Started by a test below as the driver server.
        return run_driver_executable(&InMemoryFactory);
    }
    let tests: &[(&str, fn())] = &[
        (
            "real_child_round_trip_and_clean_exit",
            real_child_round_trip_and_clean_exit,
        ),
        (
            "real_child_rejects_bad_parameters",
            real_child_rejects_bad_parameters,
        ),
        (
            "killed_child_fails_in_flight_calls",
            killed_child_fails_in_flight_calls,
        ),
        ("version_2_server_is_refused", version_2_server_is_refused),
        (
            "silent_server_fails_the_handshake",
            silent_server_fails_the_handshake,
        ),
        (
            "hung_server_hits_the_liveness_timeout",
            hung_server_hits_the_liveness_timeout,
        ),
        (
            "server_exiting_at_start_up_reports_status_and_stderr",
            server_exiting_at_start_up_reports_status_and_stderr,
        ),
        (
            "server_crashing_on_a_request_fails_it_promptly",
            server_crashing_on_a_request_fails_it_promptly,
        ),
        (
            "a_server_exit_fails_calls_even_while_its_child_holds_the_socket",
            a_server_exit_fails_calls_even_while_its_child_holds_the_socket,
        ),
        (
            "missing_executable_is_an_error",
            missing_executable_is_an_error,
        ),
    ];
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed, mut filtered) = (0, 0, 0);
    let started = Instant::now();
    let selected: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    filtered += tests.len() - selected.len();
    println!("\nrunning {} tests", selected.len());
    for (name, test) in selected {
        let result = std::panic::catch_unwind(AssertUnwindSafe(test));
        match result {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok");
            }
            Err(_) => {
                failed += 1;
                println!("test {name} ... FAILED");
            }
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; {filtered} filtered out; finished in {:.2}s\n",
        if failed == 0 { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn this_exe() -> PathBuf {
    std::env::current_exe().expect("the test binary's path")
}

fn fake_server() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake_server.py")
}

fn fake(mode: &str) -> SpawnOptions {
    SpawnOptions::new("fake", fake_server()).parameter("mode", mode)
}

/// True once `/proc/<pid>` is gone or the process is no longer running (a zombie is not gone).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            // A zombie means it was not reaped: not gone.
            state == Some("X")
        }
    }
}

async fn assert_gone(pid: u32, within: Duration) {
    let deadline = Instant::now() + within;
    while !process_gone(pid) {
        assert!(
            Instant::now() < deadline,
            "process {pid} is still there (or a zombie)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The pid a spawn error mentions: `(pid N)`.
fn pid_in(message: &str) -> u32 {
    let start = message.find("(pid ").expect("the error names the pid") + 5;
    let end = start + message[start..].find(')').expect("closing parenthesis");
    message[start..end].parse().expect("a pid")
}

fn real_child_round_trip_and_clean_exit() {
    runtime().block_on(async {
        let driver = IpcDriver::spawn("inmemory", &this_exe(), &Parameters::new())
            .await
            .expect("spawned");
        let pid = driver.child_pid().expect("a child pid");
        assert_eq!(driver.name(), "inmemory");
        assert_eq!(driver.server_version(), storagedriver_ipc::PROTOCOL_VERSION);
        let data = Bytes::from(
            (0..(48usize << 20))
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>(),
        );
        driver
            .put_content("/blob", data.clone())
            .await
            .expect("put");
        let mut stream = driver.reader("/blob", 0).await.expect("reader");
        let mut offset = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.expect("chunk");
            assert_eq!(chunk, data.slice(offset..offset + chunk.len()));
            offset += chunk.len();
        }
        assert_eq!(offset, data.len());
        let err = driver.stat("/missing").await.expect_err("missing");
        assert!(matches!(err, Error::PathNotFound { ref driver, .. } if driver == "inmemory"));
        // Clones share the child; the child goes when the last one (and its streams) is gone.
        let clone = driver.clone();
        drop(driver);
        assert_eq!(clone.child_pid(), Some(pid));
        assert!(clone.stat("/blob").await.is_ok());
        drop(stream);
        drop(clone);
        // The child sees end of file and exits by itself; it is reaped.
        assert_gone(pid, Duration::from_secs(5)).await;
    });
}

fn real_child_rejects_bad_parameters() {
    runtime().block_on(async {
        let mut params = Parameters::new();
        params.insert("bogus".into(), json!(1));
        let started = Instant::now();
        let err = IpcDriver::spawn("inmemory", &this_exe(), &params)
            .await
            .expect_err("invalid parameters");
        assert!(started.elapsed() < Duration::from_secs(5));
        let text = err.to_string();
        eprintln!("    the error: {text}");
        assert!(err.to_string().starts_with("inmemory: "), "{text}");
        assert!(text.contains("exit status: 2"), "{text}");
        assert!(
            text.contains("bogus"),
            "the stderr lines name the key: {text}"
        );
        assert_gone(pid_in(&text), Duration::from_secs(3)).await;
    });
}

fn killed_child_fails_in_flight_calls() {
    runtime().block_on(async {
        let driver = IpcDriver::spawn("inmemory", &this_exe(), &Parameters::new())
            .await
            .expect("spawned");
        let pid = driver.child_pid().expect("a child pid");
        driver
            .put_content("/big", Bytes::from(vec![1u8; 16 << 20]))
            .await
            .expect("put");
        // A reader that is not consumed keeps a stream in flight; a walk waits on its callback.
        let mut stream = driver.reader("/big", 0).await.expect("reader");
        let first = stream.next().await.expect("a chunk").expect("ok");
        assert!(!first.is_empty());
        let status = std::process::Command::new("kill")
            .arg("-9")
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
        let started = Instant::now();
        let mut err = None;
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("the stream fails");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "failed within a second or so"
        );
        let text = err.to_string();
        eprintln!("    the error: {text}");
        assert!(text.starts_with("inmemory: reader /big: "), "{text}");
        assert!(text.contains("signal: 9"), "names the exit status: {text}");
        // Later calls fail the same way at once.
        let started = Instant::now();
        let err = driver.stat("/big").await.expect_err("dead");
        assert!(started.elapsed() < Duration::from_millis(100));
        assert!(err.to_string().contains("signal: 9"), "{err}");
        assert!(matches!(err, Error::Backend { .. }));
        assert_gone(pid, Duration::from_secs(3)).await;
    });
}

fn version_2_server_is_refused() {
    runtime().block_on(async {
        let err = IpcDriver::spawn_with(fake("version2"))
            .await
            .expect_err("incompatible");
        let text = err.to_string();
        eprintln!("    the error: {text}");
        assert!(
            text.contains(&format!(
                "client speaks {}, server speaks 2.0",
                storagedriver_ipc::PROTOCOL_VERSION
            )),
            "{text}"
        );
        assert!(text.starts_with("fake: "), "{text}");
        assert_gone(pid_in(&text), Duration::from_secs(3)).await;
    });
}

fn silent_server_fails_the_handshake() {
    runtime().block_on(async {
        let started = Instant::now();
        let err = IpcDriver::spawn_with(fake("silent").liveness_timeout(Duration::from_secs(1)))
            .await
            .expect_err("no WELCOME");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        let text = err.to_string();
        eprintln!("    the error: {text}");
        assert!(text.contains("did not answer HELLO"), "{text}");
        assert_gone(pid_in(&text), Duration::from_secs(3)).await;
    });
}

fn hung_server_hits_the_liveness_timeout() {
    runtime().block_on(async {
        let driver = IpcDriver::spawn_with(
            fake("silent_after_welcome").liveness_timeout(Duration::from_secs(1)),
        )
        .await
        .expect("the handshake works");
        let pid = driver.child_pid().expect("a child pid");
        let started = Instant::now();
        let err = driver.stat("/a").await.expect_err("hung");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{took:?}");
        let text = err.to_string();
        eprintln!("    the error: {text}");
        assert!(text.starts_with("fake: stat /a: "), "{text}");
        assert!(text.contains("sent nothing for 1s"), "{text}");
        assert!(text.contains("signal: 9"), "it was killed: {text}");
        let started = Instant::now();
        assert!(driver.list("/").await.is_err());
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "later calls fail at once"
        );
        assert_gone(pid, Duration::from_secs(3)).await;
    });
}

fn server_exiting_at_start_up_reports_status_and_stderr() {
    runtime().block_on(async {
        let started = Instant::now();
        let err = IpcDriver::spawn_with(fake("exit3"))
            .await
            .expect_err("exits");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "fails promptly, not after the connect timeout"
        );
        let text = err.to_string();
        eprintln!("    the error: {text}");
        assert!(matches!(err, Error::Backend { ref driver, .. } if driver == "fake"));
        assert!(text.contains("exited before it connected"), "{text}");
        assert!(text.contains("exit status: 3"), "{text}");
        assert!(
            text.contains("cannot open bucket 'nope': access denied"),
            "{text}"
        );
        assert!(text.contains("registry-storage-fake"), "{text}");
        assert_gone(pid_in(&text), Duration::from_secs(3)).await;
    });
}

fn server_crashing_on_a_request_fails_it_promptly() {
    crash_fails_the_call_promptly("crash_on_request");
}

/// The server exits while a process it forked keeps the socket open: no end of file comes,
/// and the exit alone must fail the call, promptly (not at the liveness timeout).
fn a_server_exit_fails_calls_even_while_its_child_holds_the_socket() {
    crash_fails_the_call_promptly("crash_leaving_a_child");
}

/// The fake server in `mode` crashes on the first request: the call fails within 2 s with the
/// exit status and the last stderr line, the process is gone, and later calls fail alike.
fn crash_fails_the_call_promptly(mode: &str) {
    runtime().block_on(async {
        let driver = IpcDriver::spawn_with(fake(mode))
            .await
            .expect("the handshake works");
        let pid = driver.child_pid().expect("a child pid");
        let started = Instant::now();
        let err = driver.get_content("/a").await.expect_err("crashed");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let text = err.to_string();
        eprintln!("    the error: {text}");
        assert!(text.contains("exit status: 5"), "{text}");
        assert!(text.contains("segfault in the backend"), "{text}");
        assert_gone(pid, Duration::from_secs(3)).await;
        let again = driver.stat("/a").await.expect_err("the connection is over");
        assert!(again.to_string().contains("exit status: 5"), "{again}");
    });
}

fn missing_executable_is_an_error() {
    runtime().block_on(async {
        let err = IpcDriver::spawn(
            "nothing",
            Path::new("/nonexistent/registry-storage-nothing"),
            &Parameters::new(),
        )
        .await
        .expect_err("no such file");
        let text = err.to_string();
        eprintln!("    the error: {text}");
        assert!(text.starts_with("nothing: spawn"), "{text}");
        assert!(
            text.contains("/nonexistent/registry-storage-nothing"),
            "{text}"
        );
    });
}
