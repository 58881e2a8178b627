//! The driver on a 3-node Garage cluster (replication factor 3, `scripts/servers.sh start
//! garage-cluster`): the whole conformance suite, and a drill that SIGKILLs one node while a
//! 512 MiB write and a 512 MiB read are in flight. Skipped without the cluster, a failure under
//! `STORAGEDRIVER_REQUIRE_SERVERS=1`.
//!
//! Garage 2.5.0 on more than one node is not read-after-delete consistent for listings: each
//! replica filters deleted entries out before the coordinator merges the answers, so a replica
//! that has not applied a delete yet brings the deleted key back into the listing (HEAD and GET
//! are right). A replica that was down during the delete keeps doing so after its restart,
//! until the tables' anti-entropy sync reaches it (up to 10 minutes); so the suite's tests
//! never overlap the drill's fault window (see [`Exclusion`]). A replica merely behind on a
//! write does so for a few milliseconds, which the suite can still hit (a list or a directory
//! delete right after a delete or a rename, mostly in `model_random_operations`). So the
//! suite here runs when `STORAGEDRIVER_S3_CLUSTER_SUITE=1` asks for it; the drill always runs.

mod common;

mod suite {
    testsuites::register_in_process_suite!(|| async {
        if std::env::var("STORAGEDRIVER_S3_CLUSTER_SUITE").is_ok_and(|v| v == "1") {
            let ticket = super::SuiteTicket::enter();
            super::common::fixture("GARAGE_CLUSTER").with_guard(ticket)
        } else {
            testsuites::Fixture::not_requested(
                "the suite on the Garage cluster runs with STORAGEDRIVER_S3_CLUSTER_SUITE=1: \
                 Garage 2.5.0's listings are not read-after-delete consistent across nodes, \
                 so a default run would fail now and then for Garage's sake",
            )
        }
    });
}

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Server, unique_root};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use storagedriver::StorageDriver;

const MIB: u64 = 1 << 20;
/// The size of each object of the drill.
const OBJECT_SIZE: u64 = 512 * MIB;
/// The size of each `write` (and of each generated chunk).
const WRITE_SIZE: u64 = MIB;
/// Progress (of both the write and the read) at which the node is killed.
const KILL_AT: u64 = OBJECT_SIZE / 4;
/// How far the read may run ahead of the write, so both are in flight when the node dies.
const READ_LEAD: u64 = 16 * MIB;
/// The node the drill kills: not node 1, the driver's endpoint.
const VICTIM: &str = "3";
/// The S3 endpoint of the victim node.
const VICTIM_ENDPOINT: &str = "http://127.0.0.1:3930";
/// Progress counter value of a task that has ended (successfully or not).
const DONE: u64 = u64::MAX;

/// Keeps the suite's fixtures and the drill's fault window apart, in this test process.
///
/// Fixtures wait only while the drill holds the window; the drill waits until no fixture is
/// alive. A test that opens a second fixture while holding one (the model test opens one per
/// sequence) therefore never waits behind the drill, so nesting cannot deadlock.
#[derive(Debug)]
struct Exclusion {
    state: Mutex<ExclusionState>,
    changed: Condvar,
}

#[derive(Debug)]
struct ExclusionState {
    fixtures: usize,
    drill: bool,
}

static EXCLUSION: Exclusion = Exclusion {
    state: Mutex::new(ExclusionState {
        fixtures: 0,
        drill: false,
    }),
    changed: Condvar::new(),
};

impl Exclusion {
    fn lock(&self) -> MutexGuard<'_, ExclusionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A suite fixture's share of the cluster; blocks while the drill's fault window is open.
#[derive(Debug)]
struct SuiteTicket;

impl SuiteTicket {
    fn enter() -> SuiteTicket {
        let mut state = EXCLUSION.lock();
        while state.drill {
            state = EXCLUSION
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.fixtures += 1;
        SuiteTicket
    }
}

impl Drop for SuiteTicket {
    fn drop(&mut self) {
        EXCLUSION.lock().fixtures -= 1;
        EXCLUSION.changed.notify_all();
    }
}

/// The drill's fault window: no suite fixture is alive while it is held.
#[derive(Debug)]
struct DrillTicket;

impl DrillTicket {
    /// Waits (blocking) until no fixture is alive, at most `timeout`.
    fn enter(timeout: Duration) -> DrillTicket {
        let deadline = Instant::now() + timeout;
        let mut state = EXCLUSION.lock();
        while state.fixtures > 0 || state.drill {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} suite fixtures still alive after {timeout:?}",
                state.fixtures
            );
            state = EXCLUSION
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.drill = true;
        DrillTicket
    }
}

impl Drop for DrillTicket {
    fn drop(&mut self) {
        EXCLUSION.lock().drill = false;
        EXCLUSION.changed.notify_all();
    }
}

/// `scripts/servers/garage-cluster.sh`, as `STORAGEDRIVER_S3_GARAGE_CLUSTER_SCRIPT` names it.
#[derive(Debug, Clone)]
struct ClusterScript(PathBuf);

impl ClusterScript {
    fn output(&self, args: &[&str]) -> std::io::Result<Output> {
        Command::new(&self.0).args(args).output()
    }

    /// Runs the script with `args`; panics, with its output, unless it succeeds. Returns its
    /// stderr (where it logs) followed by its stdout.
    fn run(&self, args: &[&str]) -> String {
        let out = self
            .output(args)
            .unwrap_or_else(|e| panic!("cannot run {} {args:?}: {e}", self.0.display()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} {args:?} failed ({}):\n--- stderr\n{stderr}\n--- stdout\n{stdout}",
            self.0.display(),
            out.status,
        );
        format!("{stderr}{stdout}")
    }

    /// [`ClusterScript::run`] on a blocking thread, so the runtime keeps driving the transfers.
    async fn run_async(&self, args: &'static [&'static str]) -> String {
        let script = self.clone();
        tokio::task::spawn_blocking(move || script.run(args))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}

/// Restarts the victim node when dropped while armed: a failed drill must not leave the
/// cluster with a node down for the tests that follow.
#[derive(Debug)]
struct RestartGuard {
    script: ClusterScript,
    armed: bool,
}

impl Drop for RestartGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        eprintln!("drill: restarting node {VICTIM} after a failure");
        for args in [&["start-node", VICTIM][..], &["wait-healthy", "60"][..]] {
            match self.script.output(args) {
                Ok(out) => eprintln!(
                    "drill: {args:?}: {}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => eprintln!("drill: cannot run {args:?}: {e}"),
            }
        }
    }
}

/// The cluster server and its script, or `None` (and a note) when they are not configured and
/// not required.
fn cluster() -> Option<(Server, ClusterScript)> {
    let found = common::server("GARAGE_CLUSTER").and_then(|server| {
        std::env::var("STORAGEDRIVER_S3_GARAGE_CLUSTER_SCRIPT")
            .map(|script| (server, ClusterScript(script.into())))
            .map_err(|_| {
                "STORAGEDRIVER_S3_GARAGE_CLUSTER_SCRIPT is not set (run scripts/servers.sh start \
                 garage-cluster and source target/servers/servers.env)"
                    .to_owned()
            })
    });
    common::or_skip(found)
}

/// splitmix64: spreads any input over all 64 bits (and never gives 0 for these seeds).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Chunk `index` of the deterministic content `seed`: [`WRITE_SIZE`] bytes of xorshift64*,
/// seeded from both, so any chunk is made without the ones before it.
fn chunk(seed: u64, index: u64) -> Bytes {
    let mut x = mix(mix(seed) ^ index).max(1);
    let mut out = Vec::with_capacity(WRITE_SIZE as usize);
    for _ in 0..WRITE_SIZE / 8 {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    Bytes::from(out)
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / MIB as f64 / elapsed.as_secs_f64()
}

/// Writes [`OBJECT_SIZE`] bytes of content `seed` to `path` in [`WRITE_SIZE`] writes and
/// commits; counts the bytes handed to the writer in `progress`. Returns the content's SHA-256.
async fn write_object(
    driver: Arc<dyn StorageDriver>,
    path: &str,
    seed: u64,
    progress: Arc<AtomicU64>,
) -> storagedriver::Result<String> {
    let mut writer = driver.writer(path, false).await?;
    let mut hasher = Sha256::new();
    for index in 0..OBJECT_SIZE / WRITE_SIZE {
        let data = chunk(seed, index);
        hasher.update(&data);
        writer.write(data).await?;
        progress.fetch_add(WRITE_SIZE, Ordering::Relaxed);
    }
    assert_eq!(writer.size(), OBJECT_SIZE, "writer size of {path}");
    writer.commit().await?;
    Ok(hex(&hasher.finalize()))
}

/// Streams `path` from its start and hashes it; counts the bytes in `progress`. While `pace` is
/// set, stays at most [`READ_LEAD`] ahead of the counter `pace` holds (until that one is
/// [`DONE`]). Returns the SHA-256 and the size read.
async fn read_object(
    driver: Arc<dyn StorageDriver>,
    path: &str,
    progress: Arc<AtomicU64>,
    pace: Option<Arc<AtomicU64>>,
) -> storagedriver::Result<(String, u64)> {
    let mut stream = driver.reader(path, 0).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(data) = stream.next().await {
        let data = data?;
        hasher.update(&data);
        size += data.len() as u64;
        progress.store(size, Ordering::Relaxed);
        if let Some(pace) = &pace {
            while size > pace.load(Ordering::Relaxed).saturating_add(READ_LEAD) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    Ok((hex(&hasher.finalize()), size))
}

/// Sets a progress counter to [`DONE`] when dropped, so nothing waits on a task that ended.
#[derive(Debug)]
struct MarkDone(Arc<AtomicU64>);

impl Drop for MarkDone {
    fn drop(&mut self) {
        self.0.store(DONE, Ordering::Relaxed);
    }
}

/// The drill: with a 512 MiB write and a 512 MiB read in flight through node 1, SIGKILL node 3
/// at about 25 % of both. With replication factor 3, two nodes still make every quorum: both
/// transfers complete with the right bytes, and node 3, restarted, rejoins and serves the object
/// it missed.
#[tokio::test(flavor = "multi_thread")]
async fn node_killed_during_a_512_mib_write_and_read() {
    let Some((server, script)) = cluster() else {
        return;
    };
    let started = Instant::now();
    eprintln!(
        "drill: cluster before:\n{}",
        script.run_async(&["wait-healthy", "60"]).await
    );

    let root = unique_root("drill");
    let driver = server.driver(&root);
    let (path_a, path_b) = ("/drill/a", "/drill/b");
    // Fresh content every run: Garage deduplicates blocks, and blocks of an earlier run's
    // deleted objects linger until its block GC, so repeated content would not be rewritten.
    let seed_a = mix(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default());
    let seed_b = mix(seed_a);
    eprintln!(
        "drill: root {root} on {}, seeds A {seed_a:#018x} B {seed_b:#018x}",
        server.endpoint
    );

    // (a) Object A, committed while the cluster is whole.
    let t = Instant::now();
    let hash_a = write_object(
        Arc::clone(&driver),
        path_a,
        seed_a,
        Arc::new(AtomicU64::new(0)),
    )
    .await
    .expect("write A");
    let put_a = t.elapsed();
    eprintln!(
        "drill: (a) put A, 512 MiB, in {put_a:.2?} ({:.0} MiB/s), sha256 {hash_a}",
        mib_per_s(OBJECT_SIZE, put_a)
    );
    let info = driver.stat(path_a).await.expect("stat A");
    assert_eq!(info.size, OBJECT_SIZE, "size of A");

    // (b) Write B and read A at once; kill node 3 when both are past 25 %. From here until the
    // cluster is whole again, no suite test runs (see `Exclusion`).
    let t = Instant::now();
    let window = tokio::task::spawn_blocking(|| DrillTicket::enter(Duration::from_secs(600)))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    eprintln!(
        "drill: (b) waited {:.2?} for the suite's running tests to end",
        t.elapsed()
    );
    let written = Arc::new(AtomicU64::new(0));
    let read = Arc::new(AtomicU64::new(0));
    let phase = Instant::now();
    let w = tokio::spawn({
        let (driver, written) = (Arc::clone(&driver), Arc::clone(&written));
        async move {
            let _done = MarkDone(Arc::clone(&written));
            let result = write_object(driver, path_b, seed_b, written).await;
            (result, phase.elapsed())
        }
    });
    let r = tokio::spawn({
        let (driver, read, pace) = (Arc::clone(&driver), Arc::clone(&read), Arc::clone(&written));
        async move {
            let _done = MarkDone(Arc::clone(&read));
            let result = read_object(driver, path_a, read, Some(pace)).await;
            (result, phase.elapsed())
        }
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (w_at, r_at) = (
            written.load(Ordering::Relaxed),
            read.load(Ordering::Relaxed),
        );
        if w_at >= KILL_AT && r_at >= KILL_AT {
            break;
        }
        assert!(
            w_at != DONE && r_at != DONE,
            "a transfer ended before 25 % (written {w_at}, read {r_at}): {:?} {:?}",
            w.is_finished().then_some("W ended"),
            r.is_finished().then_some("R ended"),
        );
        assert!(
            Instant::now() < deadline,
            "no 25 % after 300 s (written {w_at}, read {r_at})"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut guard = RestartGuard {
        script: script.clone(),
        armed: true,
    };
    let (w_at, r_at) = (
        written.load(Ordering::Relaxed),
        read.load(Ordering::Relaxed),
    );
    let kill_started = phase.elapsed();
    let kill_log = script.run_async(&["kill-node", VICTIM]).await;
    let killed_at = phase.elapsed();
    let (w_after, r_after) = (
        written.load(Ordering::Relaxed),
        read.load(Ordering::Relaxed),
    );
    eprintln!(
        "drill: (b) kill-node {VICTIM} at +{kill_started:.2?} (W {} MiB, R {} MiB written/read), \
         done at +{killed_at:.2?} (W {} MiB, R {} MiB): {}",
        w_at / MIB,
        r_at / MIB,
        w_after.min(OBJECT_SIZE) / MIB,
        r_after.min(OBJECT_SIZE) / MIB,
        kill_log.trim()
    );
    let node_down = Instant::now();

    let (w_result, w_time) = w.await.expect("W task");
    let (r_result, r_time) = r.await.expect("R task");
    let hash_b = w_result.expect("W: write B with node 3 killed");
    let (hash_r, size_r) = r_result.expect("R: read A with node 3 killed");
    eprintln!(
        "drill: (b) W committed B at +{w_time:.2?} ({:.2?} after the kill), sha256 {hash_b}",
        w_time.saturating_sub(killed_at)
    );
    eprintln!(
        "drill: (b) R read A at +{r_time:.2?} ({:.2?} after the kill), {size_r} bytes, sha256 {hash_r}",
        r_time.saturating_sub(killed_at)
    );
    assert_ne!(
        hash_b, hash_a,
        "A and B must differ for the checks to mean anything"
    );
    assert_eq!(size_r, OBJECT_SIZE, "bytes of A read while node 3 died");
    assert_eq!(hash_r, hash_a, "SHA-256 of A read while node 3 died");

    let t = Instant::now();
    let (hash_b_read, size_b) = read_object(
        Arc::clone(&driver),
        path_b,
        Arc::new(AtomicU64::new(0)),
        None,
    )
    .await
    .expect("read B with node 3 down");
    eprintln!(
        "drill: (b) read B back through node 1 (node 3 down) in {:.2?}, sha256 {hash_b_read}",
        t.elapsed()
    );
    assert_eq!(size_b, OBJECT_SIZE, "bytes of B");
    assert_eq!(hash_b_read, hash_b, "SHA-256 of B read back");

    // (c) Restart node 3; the cluster heals and node 3 serves B.
    let t = Instant::now();
    let start_log = script.run_async(&["start-node", VICTIM]).await;
    let start_time = t.elapsed();
    let down_for = node_down.elapsed();
    let t = Instant::now();
    let health_log = script.run_async(&["wait-healthy", "60"]).await;
    let heal_time = t.elapsed();
    guard.armed = false;
    drop(window);
    eprintln!(
        "drill: (c) node {VICTIM} was down {:.2?}; start-node in {start_time:.2?}:\n{}",
        down_for,
        start_log.trim()
    );
    eprintln!(
        "drill: (c) wait-healthy in {heal_time:.2?}:\n{}",
        health_log.trim()
    );
    eprintln!(
        "drill: (c) status:\n{}",
        script.run_async(&["status"]).await.trim()
    );

    let via_victim = Server {
        endpoint: VICTIM_ENDPOINT.to_owned(),
        ..server.clone()
    }
    .driver(&root);
    let t = Instant::now();
    let (hash_b_victim, size_b_victim) =
        read_object(via_victim, path_b, Arc::new(AtomicU64::new(0)), None)
            .await
            .expect("read B through node 3");
    let victim_read = t.elapsed();
    eprintln!(
        "drill: (c) read B through node 3 ({VICTIM_ENDPOINT}) in {victim_read:.2?} ({:.0} MiB/s), \
         sha256 {hash_b_victim}",
        mib_per_s(OBJECT_SIZE, victim_read)
    );
    assert_eq!(size_b_victim, OBJECT_SIZE, "bytes of B through node 3");
    assert_eq!(hash_b_victim, hash_b, "SHA-256 of B through node 3");

    driver
        .delete("/drill")
        .await
        .expect("delete the drill's objects");
    eprintln!("drill: done in {:.2?}", started.elapsed());
}
