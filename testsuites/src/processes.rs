//! A persistent driver's writer across processes: closed in this process and resumed in a
//! driver executable started through the factory's fallback ([`spawn_driver`]), or killed
//! with SIGKILL in the middle of a write and resumed here. The driver crates' tests call these
//! with their executable and a server's parameters (a `chunksize` of 5 MiB).

use std::fmt::Debug;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use storagedriver::{Parameters, StorageDriver};

use crate::behaviors::{assert_same, ok};
use crate::ipc::spawn_driver;
use storagedriver_ipc::PARAMETERS_ENV;

/// A writer closed here resumes in a second process (the driver `name` from `executable`, on
/// `parameters`: the same storage as `here`) at the closed size; the child appends and
/// commits, and `here` reads the whole content back.
pub async fn a_writer_resumes_in_a_second_process(
    here: &dyn StorageDriver,
    name: &str,
    executable: &Path,
    parameters: &Parameters,
) {
    let first: Vec<u8> = (0..(7u32 << 20)).map(|i| (i % 241) as u8).collect();
    let second: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 239) as u8).collect();

    let mut writer = ok(here.writer("/blobs/upload", false).await, "writer");
    ok(writer.write(Bytes::from(first.clone())).await, "write");
    ok(writer.close().await, "close");

    let child = spawn_driver(name, executable, parameters).await;
    let mut resumed = ok(
        child.writer("/blobs/upload", true).await,
        "resume in the child",
    );
    assert_eq!(
        resumed.size(),
        first.len() as u64,
        "the child resumes at the closed size"
    );
    ok(
        resumed.write(Bytes::from(second.clone())).await,
        "write in the child",
    );
    ok(resumed.commit().await, "commit in the child");
    drop(child);

    let content = ok(here.get_content("/blobs/upload").await, "read back here");
    assert_eq!(content.len(), first.len() + second.len());
    assert_same(&content[..first.len()], &first, "the part written here");
    assert_same(
        &content[first.len()..],
        &second,
        "the part written in the child",
    );
}

/// A child (the driver `name` from `executable`, on `parameters`) killed with SIGKILL in the
/// middle of a write: its upload stays resumable from the last state it recorded (the bytes it
/// had not flushed are lost, nothing else), so a driver `open_here` opens over the same storage
/// resumes it at a whole number of 5 MiB parts, and a commit leaves no reserved key behind:
/// `reserved_left` (afterwards) lists what is left below the root's reserved prefix
/// (`~uploads`, see [`RawStore::list`](crate::servers::RawStore::list)), which must be
/// nothing.
///
/// # Panics
///
/// Also when this process gains other than one child running a driver executable while the
/// child starts (the children are found in `/proc`).
pub async fn a_writer_killed_mid_write_resumes_elsewhere<O, OF, L, LF, K>(
    name: &str,
    executable: &Path,
    parameters: &Parameters,
    open_here: O,
    reserved_left: L,
) where
    O: FnOnce() -> OF,
    OF: Future<Output = Arc<dyn StorageDriver>>,
    L: FnOnce() -> LF,
    LF: Future<Output = Vec<K>>,
    K: Debug,
{
    let child = spawn_driver(name, executable, parameters).await;
    let mut writer = ok(
        child.writer("/blobs/killed", false).await,
        "writer in the child",
    );
    ok(
        writer.write(Bytes::from(vec![9u8; 12 << 20])).await,
        "two parts and a tail, unflushed",
    );
    // The child started with exactly these parameters (other tests start children too).
    let started = format!(
        "{PARAMETERS_ENV}={}\0",
        serde_json::to_string(parameters).unwrap_or_else(|e| panic!("parameters as JSON: {e}"))
    );
    let pids = children_whose_environment_holds(&started);
    assert_eq!(pids.len(), 1, "one child with these parameters: {pids:?}");
    let status = std::process::Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status();
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "kill -9 {}: {status:?}",
        pids[0]
    );
    drop(writer);
    drop(child);

    let here = open_here().await;
    let mut resumed = ok(
        here.writer("/blobs/killed", true).await,
        "resume after SIGKILL",
    );
    let start = resumed.size();
    assert!(
        start <= 12 << 20 && start % (5 << 20) == 0,
        "resumed at {start}"
    );
    let rest = (12u64 << 20) - start;
    ok(
        resumed.write(Bytes::from(vec![9u8; rest as usize])).await,
        "write the rest",
    );
    ok(resumed.commit().await, "commit");
    let content = ok(here.get_content("/blobs/killed").await, "read back");
    assert!(content.len() == 12 << 20 && content.iter().all(|b| *b == 9));
    let left = reserved_left().await;
    assert!(
        left.is_empty(),
        "the commit removed every record, the killed writer's too: {left:?}"
    );
}

/// The parameters of a driver executable started through the factory's fallback stay off its
/// command line, which every user of the machine can read (`ps`, `/proc/<pid>/cmdline`):
/// `secret`, a value in `parameters`, is in the child's environment, which only its user can
/// read (`/proc/<pid>/environ` is mode 0400), and nowhere on its command line. Prints the
/// child's command line as `ps` shows it.
pub async fn parameters_stay_off_the_command_line(
    name: &str,
    executable: &Path,
    parameters: &Parameters,
    secret: &str,
) {
    use std::os::unix::fs::PermissionsExt;

    let child = spawn_driver(name, executable, parameters).await;
    // Other tests of the same binary may start children with the same parameters: every one
    // is held to the rule.
    let children = children_whose_environment_holds(secret);
    assert!(
        !children.is_empty(),
        "no child of this process has the parameters in its environment"
    );
    for pid in children {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap_or_else(|e| panic!("read the command line of pid {pid}: {e}"));
        let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        eprintln!("pid {pid}: {}", shown.trim_end());
        assert!(
            !holds(&cmdline, secret),
            "the secret is on the command line of pid {pid}: {shown}"
        );
        let mode = std::fs::metadata(format!("/proc/{pid}/environ"))
            .unwrap_or_else(|e| panic!("stat the environment of pid {pid}: {e}"))
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o400,
            "/proc/{pid}/environ is readable by its user only"
        );
    }
    drop(child);
}

/// The PIDs of this process's children running a driver executable (`registry-storage-*`)
/// whose environment holds `text`.
fn children_whose_environment_holds(text: &str) -> Vec<i32> {
    driver_children()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| holds(&env, text))
        })
        .collect()
}

/// Whether `bytes` hold `text`.
fn holds(bytes: &[u8], text: &str) -> bool {
    bytes.windows(text.len()).any(|w| w == text.as_bytes())
}

/// The PIDs of this process's children running a driver executable (`registry-storage-*`).
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
