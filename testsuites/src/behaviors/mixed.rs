//! Many tasks running random operations on a dozen paths at once, every result checked against
//! what the contract allows under concurrency.
//!
//! The layout makes file/directory clashes impossible: files are `/mix/d<N>/f<K>` (four
//! directories of three files), directories are never written as files. So `put_content`,
//! `writer` and `rename` onto a valid destination must succeed, `delete` is Ok or
//! PathNotFound, and no operation may ever report Conflict or a Backend error.
//!
//! Every payload describes itself: a header with the path it was written for, a unique id, its
//! length and a checksum of its body. A read checks that what it got is one whole payload,
//! written for a path it could have been renamed from (renames only move `/mix/d<I>/f<K>` to
//! `/mix/d<J>/f<K>`, so the file name stays), and never the payload of a writer whose commit
//! failed or that was cancelled.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use storagedriver::{Error, FileWriter, Result, StorageDriver};

use crate::data::{Rng, read_all};

const ROOT: &str = "/mix";
const DIRS: u64 = 4;
const FILES: u64 = 3;
/// A body this long or longer is written in several chunks and exceeds common write buffers.
const LARGE_BODY: usize = 300 * 1024;
/// How long the whole run may take before it counts as a hang.
const DEADLINE: Duration = Duration::from_secs(300);

fn dir_path(dir: u64) -> String {
    format!("{ROOT}/d{dir}")
}

fn file_path(dir: u64, file: u64) -> String {
    format!("{ROOT}/d{dir}/f{file}")
}

/// `(dir, file)` of a path of the layout.
fn parse_file(path: &str) -> Option<(u64, u64)> {
    let rest = path.strip_prefix(ROOT)?.strip_prefix("/d")?;
    let (dir, file) = rest.split_once("/f")?;
    let (dir, file) = (dir.parse().ok()?, file.parse().ok()?);
    (dir < DIRS && file < FILES).then_some((dir, file))
}

/// FNV-1a, 64 bits.
fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A payload for `origin` with id `id` and a body of `body_len` random bytes.
fn payload(origin: &str, id: u64, body_len: usize) -> Bytes {
    let mut body = vec![0u8; body_len];
    Rng::new(id).fill(&mut body);
    let sum = checksum(&body);
    // The header's length field counts the whole payload, header included; the header's own
    // length depends on it, so settle it in two rounds.
    let mut total = body_len;
    let mut header = String::new();
    for _ in 0..3 {
        header = format!("mix1 {origin} {id} {total} {sum:016x}\n");
        total = header.len() + body_len;
    }
    let mut all = header.into_bytes();
    all.extend_from_slice(&body);
    Bytes::from(all)
}

/// The origin path and id of the payload `data` read at `path`, or why it is not one whole
/// payload that may be there.
fn verify(path: &str, data: &[u8]) -> std::result::Result<(String, u64), String> {
    let head_end = data
        .iter()
        .take(200)
        .position(|&b| b == b'\n')
        .ok_or_else(|| format!("{} bytes with no payload header", data.len()))?;
    let header = std::str::from_utf8(&data[..head_end])
        .map_err(|_| "a header that is not UTF-8".to_owned())?;
    let fields: Vec<&str> = header.split(' ').collect();
    let [magic, origin, id, total, sum] = fields[..] else {
        return Err(format!("a malformed header {header:?}"));
    };
    let id: u64 = id.parse().map_err(|_| format!("bad id in {header:?}"))?;
    let total: usize = total
        .parse()
        .map_err(|_| format!("bad length in {header:?}"))?;
    let sum = u64::from_str_radix(sum, 16).map_err(|_| format!("bad checksum in {header:?}"))?;
    if magic != "mix1" {
        return Err(format!("a malformed header {header:?}"));
    }
    if total != data.len() {
        return Err(format!(
            "payload {id} (header {header:?}) is {} bytes long: torn or mixed",
            data.len()
        ));
    }
    if checksum(&data[head_end + 1..]) != sum {
        return Err(format!(
            "payload {id} (header {header:?}) has a body that fails its checksum: mixed"
        ));
    }
    match (parse_file(origin), parse_file(path)) {
        (Some((_, from)), Some((_, at))) if from == at => Ok((origin.to_owned(), id)),
        _ => Err(format!(
            "payload {id} was written for {origin}, which is never renamed to {path}"
        )),
    }
}

/// What the tasks share: the counters that say which outcomes are allowed, and what was seen.
#[derive(Default)]
struct Shared {
    /// Per directory: how many deletes of the directory or of a file in it started, and how
    /// many ended, so a writer can tell whether a delete overlapped it.
    deletes: HashMap<u64, (AtomicU64, AtomicU64)>,
    /// Per file path: how many `writer` calls for it started, and how many ended, so a writer
    /// can tell whether another one may have superseded it.
    opens: HashMap<String, (AtomicU64, AtomicU64)>,
    /// The ids of payloads that must never be visible (their commit failed, or their writer
    /// cancelled), and of those that were seen, with where.
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    never_visible: BTreeSet<u64>,
    seen: HashMap<u64, String>,
    violations: Vec<String>,
}

impl Shared {
    fn new() -> Self {
        let mut shared = Shared::default();
        for dir in 0..DIRS {
            shared
                .deletes
                .insert(dir, (AtomicU64::new(0), AtomicU64::new(0)));
            for file in 0..FILES {
                shared
                    .opens
                    .insert(file_path(dir, file), (AtomicU64::new(0), AtomicU64::new(0)));
            }
        }
        shared
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn violation(&self, task: u64, step: usize, message: String) {
        self.log()
            .violations
            .push(format!("task {task}, step {step}: {message}"));
    }

    fn deletes(&self, dir: u64) -> &(AtomicU64, AtomicU64) {
        match self.deletes.get(&dir) {
            Some(counter) => counter,
            None => panic!("no delete counter for directory {dir}"),
        }
    }

    fn opens(&self, path: &str) -> &(AtomicU64, AtomicU64) {
        match self.opens.get(path) {
            Some(counter) => counter,
            None => panic!("no writer counter for {path}"),
        }
    }

    /// Checks a read's content and records the payload as seen.
    fn check_read(&self, path: &str, data: &[u8]) -> std::result::Result<(), String> {
        let (_, id) = verify(path, data)?;
        self.log().seen.insert(id, path.to_owned());
        Ok(())
    }
}

/// True when `result` is a PathNotFound naming `path`.
fn not_found_at<T>(result: &Result<T>, path: &str) -> bool {
    matches!(result, Err(e @ Error::PathNotFound { .. }) if e.path() == Some(path))
}

fn is_superseded<T>(result: &Result<T>) -> bool {
    matches!(result, Err(Error::WriterFinished { state, .. }) if state == "superseded")
}

fn describe<T: std::fmt::Debug>(result: &Result<T>) -> String {
    match result {
        Ok(value) => {
            let mut text = format!("Ok({value:?})");
            text.truncate(200);
            text
        }
        Err(e) => format!("Err({e:?})"),
    }
}

/// One task: `ops` random operations from `rng`, each result checked.
async fn run_task(
    d: Arc<dyn StorageDriver>,
    shared: Arc<Shared>,
    task: u64,
    seed: u64,
    ops: usize,
) {
    let mut rng = Rng::new(seed ^ task.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for step in 0..ops {
        let dir = rng.below(DIRS);
        let file = rng.below(FILES);
        let path = file_path(dir, file);
        let id = (task + 1) * 1_000_000 + step as u64;
        let body = if rng.below(16) == 0 {
            LARGE_BODY + rng.below(1000) as usize
        } else {
            64 + rng.below(2048) as usize
        };
        let report = |message: String| shared.violation(task, step, message);
        match rng.below(100) {
            0..=14 => {
                let result = d.put_content(&path, payload(&path, id, body)).await;
                if result.is_err() {
                    report(format!("put_content({path}): {}", describe(&result)));
                }
            }
            15..=32 => {
                let commit = rng.below(4) != 0;
                let append = !commit && rng.below(2) == 0;
                write_one(&d, &shared, &mut rng, &path, dir, id, body, commit, append)
                    .await
                    .unwrap_or_else(report);
            }
            33..=47 => {
                let result = d.get_content(&path).await;
                match &result {
                    Ok(data) => {
                        if let Err(why) = shared.check_read(&path, data) {
                            report(format!("get_content({path}): {why}"));
                        }
                    }
                    r if not_found_at(r, &path) => {}
                    r => report(format!("get_content({path}): {}", describe(r))),
                }
            }
            48..=55 => {
                let result = match d.reader(&path, 0).await {
                    Ok(stream) => read_all(stream).await,
                    Err(e) => Err(e),
                };
                match &result {
                    Ok(data) => {
                        if let Err(why) = shared.check_read(&path, data) {
                            report(format!("reader({path}, 0): {why}"));
                        }
                    }
                    r if not_found_at(r, &path) => {}
                    r => report(format!("reader({path}, 0): {}", describe(r))),
                }
            }
            56..=62 => {
                let (target, is_dir) = if rng.below(3) == 0 {
                    (dir_path(dir), true)
                } else {
                    (path.clone(), false)
                };
                let result = d.stat(&target).await;
                match &result {
                    Ok(info) if info.path == target && info.is_dir == is_dir => {
                        if !is_dir && info.size < 40 {
                            report(format!(
                                "stat({target}): size {} is no payload's",
                                info.size
                            ));
                        }
                    }
                    r if not_found_at(r, &target) => {}
                    r => report(format!("stat({target}): {}", describe(r))),
                }
            }
            63..=70 => {
                let target = if rng.below(4) == 0 {
                    ROOT.to_owned()
                } else {
                    dir_path(dir)
                };
                let result = d.list(&target).await;
                match &result {
                    Ok(children) => {
                        if let Err(why) = check_listing(&target, children) {
                            report(format!("list({target}): {why}"));
                        }
                    }
                    r if not_found_at(r, &target) => {}
                    r => report(format!("list({target}): {}", describe(r))),
                }
            }
            71..=80 => {
                let other = (dir + 1 + rng.below(DIRS - 1)) % DIRS;
                let dest = file_path(other, file);
                let result = d.rename(&path, &dest).await;
                match &result {
                    Ok(()) => {}
                    r if not_found_at(r, &path) => {}
                    r => report(format!("rename({path}, {dest}): {}", describe(r))),
                }
            }
            81..=90 => {
                let (started, ended) = shared.deletes(dir);
                started.fetch_add(1, Ordering::SeqCst);
                let result = d.delete(&path).await;
                ended.fetch_add(1, Ordering::SeqCst);
                match &result {
                    Ok(()) => {}
                    r if not_found_at(r, &path) => {}
                    r => report(format!("delete({path}): {}", describe(r))),
                }
            }
            _ => {
                let target = dir_path(dir);
                let (started, ended) = shared.deletes(dir);
                started.fetch_add(1, Ordering::SeqCst);
                let result = d.delete(&target).await;
                ended.fetch_add(1, Ordering::SeqCst);
                match &result {
                    Ok(()) => {}
                    r if not_found_at(r, &target) => {}
                    r => report(format!("delete({target}): {}", describe(r))),
                }
            }
        }
    }
}

/// A writer for `path`: opens it (`append` or not), writes payload `id` in one to three
/// chunks, then commits or cancels, checking each answer.
#[allow(clippy::too_many_arguments)]
async fn write_one(
    d: &Arc<dyn StorageDriver>,
    shared: &Shared,
    rng: &mut Rng,
    path: &str,
    dir: u64,
    id: u64,
    body: usize,
    commit: bool,
    append: bool,
) -> std::result::Result<(), String> {
    let data = payload(path, id, body);
    let (deletes_started, deletes_ended) = shared.deletes(dir);
    let opens = shared.opens(path);
    // Read `ended` first: a delete that ends in between then shows as still under way.
    let deletes_ended_before = deletes_ended.load(Ordering::SeqCst);
    let deletes_started_before = deletes_started.load(Ordering::SeqCst);
    let (starts, ends) = opens;
    let ends_before = ends.load(Ordering::SeqCst);
    let starts_with_ours = starts.fetch_add(1, Ordering::SeqCst) + 1;
    let result = d.writer(path, append).await;
    ends.fetch_add(1, Ordering::SeqCst);
    // Another writer's open overlapped or followed this one's: one that started later, one
    // that ended since this one started (besides this one), or one still under way.
    let taken_over = || {
        let (now_started, now_ended) = (starts.load(Ordering::SeqCst), ends.load(Ordering::SeqCst));
        now_started != starts_with_ours || now_ended != ends_before + 1 || now_ended < now_started
    };
    // A delete in the directory overlapped this writer: one was under way when it started,
    // or one started since.
    let deleted = || {
        deletes_started_before != deletes_ended_before
            || deletes_started.load(Ordering::SeqCst) != deletes_started_before
    };
    let mut writer: Box<dyn FileWriter> = match result {
        Ok(w) => w,
        Err(Error::PathNotFound { .. } | Error::Unsupported { .. }) if append => {
            // Nothing to resume, or committed non-empty content that cannot be appended to.
            return Ok(());
        }
        Err(e) => return Err(format!("writer({path}, {append}): {e:?}")),
    };
    // Only cancelled writers resume; what they write must never be visible.
    if !commit {
        shared.log().never_visible.insert(id);
    }
    let mut start = 0;
    let pieces = 1 + rng.below(3) as usize;
    for piece in 0..pieces {
        let end = if piece + 1 == pieces {
            data.len()
        } else {
            (start + data.len() / pieces).min(data.len())
        };
        let result = writer.write(data.slice(start..end)).await;
        start = end;
        match &result {
            Ok(()) => {}
            // A delete that took the upload may be reported as a takeover too.
            r if is_superseded(r) && (taken_over() || deleted()) => {
                shared.log().never_visible.insert(id);
                return Ok(());
            }
            r if matches!(r, Err(Error::PathNotFound { .. })) && deleted() => {
                shared.log().never_visible.insert(id);
                return Ok(());
            }
            r => return Err(format!("write to the writer of {path}: {}", describe(r))),
        }
    }
    let (what, result) = if commit {
        ("commit", writer.commit().await)
    } else {
        ("cancel", writer.cancel().await)
    };
    match &result {
        Ok(()) => Ok(()),
        r if is_superseded(r) && (taken_over() || deleted()) => {
            shared.log().never_visible.insert(id);
            Ok(())
        }
        // A delete of the path or of its directory removes uncommitted content, also that of
        // an open writer.
        r if matches!(r, Err(Error::PathNotFound { .. })) && deleted() => {
            shared.log().never_visible.insert(id);
            Ok(())
        }
        r => Err(format!(
            "{what} of the writer of {path} (append {append}): {}",
            describe(r)
        )),
    }
}

/// Checks a listing of `/mix` or `/mix/d<N>`: sorted, no duplicates, only children of the
/// layout.
fn check_listing(dir: &str, children: &[String]) -> std::result::Result<(), String> {
    if children.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(format!("not sorted or with duplicates: {children:?}"));
    }
    let valid = |child: &String| {
        if dir == ROOT {
            (0..DIRS).any(|n| *child == dir_path(n))
        } else {
            parse_file(child).is_some_and(|(n, _)| dir_path(n) == dir)
        }
    };
    match children.iter().find(|child| !valid(child)) {
        Some(child) => Err(format!("{child} is no child of the layout in {children:?}")),
        None if children.is_empty() && dir != ROOT => {
            Err("an empty listing instead of PathNotFound".to_owned())
        }
        None => Ok(()),
    }
}

/// Sixteen tasks (32 in full mode) each run 100 random operations (400 in full mode) on the
/// twelve files of a layout where no file/directory clash is possible: `put_content`, a writer
/// that writes and commits, a writer (new or resumed) that writes and cancels, `get_content`,
/// `reader`, `stat` of a file or directory, `list`, `rename` between directories, `delete` of a
/// file and of a directory. Every result must be one the contract allows under concurrency:
///
/// - a read gives one whole payload written for that path (or renamed there), or PathNotFound;
///   never the payload of a writer whose commit failed or that was cancelled;
/// - `put_content` and `writer(path, false)` succeed (a concurrent delete pruning the
///   directory is no excuse for PathNotFound); `rename` succeeds or is PathNotFound naming the
///   source; `delete` succeeds or is PathNotFound, never Conflict;
/// - a writer's `write`, `commit` or `cancel` succeeds, or fails with WriterFinished
///   `superseded` only when another writer for the path was opened meanwhile or a delete of
///   the path or its directory overlapped it, or with PathNotFound only for such a delete;
/// - `list` is sorted, without duplicates, with only children of the layout;
/// - no Backend error, no Conflict, no hang (the run has five minutes).
///
/// The operations of each task follow from a seed (`STORAGEDRIVER_MIXED_SEED`, random when
/// unset); the interleaving does not, but a failure prints the seed to rerun with. Needs a
/// multi-threaded tokio runtime to run the tasks in parallel (the suite's runner has one).
pub async fn concurrent_mixed_operations(d: Arc<dyn StorageDriver>) {
    let sizes = crate::Sizes::from_env();
    let seed = crate::sizes::mixed_seed().unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.as_nanos() as u64)
            .unwrap_or(0)
    });
    let shared = Arc::new(Shared::new());
    let tasks = (0..sizes.mixed_tasks as u64).map(|task| {
        let d = d.clone();
        let shared = shared.clone();
        tokio::spawn(run_task(d, shared, task, seed, sizes.mixed_ops))
    });
    let all = tokio::time::timeout(DEADLINE, join_all(tasks)).await;
    let results = match all {
        Ok(results) => results,
        Err(_) => panic!(
            "concurrent_mixed_operations (STORAGEDRIVER_MIXED_SEED={seed}): the operations did \
             not finish within {DEADLINE:?}: a hang"
        ),
    };
    for result in results {
        if let Err(e) = result {
            if e.is_panic() {
                eprintln!(
                    "concurrent_mixed_operations: rerun with STORAGEDRIVER_MIXED_SEED={seed}"
                );
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    // What is left: every file one whole payload, or nothing.
    for dir in 0..DIRS {
        for file in 0..FILES {
            let path = file_path(dir, file);
            let result = d.get_content(&path).await;
            match &result {
                Ok(data) => {
                    if let Err(why) = shared.check_read(&path, data) {
                        shared.violation(u64::MAX, 0, format!("final get_content({path}): {why}"));
                    }
                }
                r if not_found_at(r, &path) => {}
                r => shared.violation(
                    u64::MAX,
                    0,
                    format!("final get_content({path}): {}", describe(r)),
                ),
            }
        }
    }
    let log = shared.log();
    let mut violations = log.violations.clone();
    for (id, path) in &log.seen {
        if log.never_visible.contains(id) {
            violations.push(format!(
                "payload {id} was read at {path}, but its writer's commit failed or it cancelled"
            ));
        }
    }
    if !violations.is_empty() {
        let mut message = format!(
            "concurrent_mixed_operations (STORAGEDRIVER_MIXED_SEED={seed}, {} tasks x {} \
             operations): {} results the contract does not allow:\n",
            sizes.mixed_tasks,
            sizes.mixed_ops,
            violations.len()
        );
        for violation in violations.iter().take(20) {
            let _ = writeln!(message, "  {violation}");
        }
        panic!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_verify_and_detect_damage() {
        let path = file_path(1, 2);
        let data = payload(&path, 7, 1000);
        assert_eq!(verify(&path, &data), Ok((path.clone(), 7)));
        assert!(
            verify(&file_path(3, 2), &data).is_ok(),
            "renamed across directories"
        );
        assert!(
            verify(&file_path(1, 1), &data).is_err(),
            "another file name"
        );
        assert!(verify(&path, &data[..data.len() - 1]).is_err(), "torn");
        let mut mixed = data.to_vec();
        mixed[500] ^= 1;
        assert!(verify(&path, &mixed).is_err(), "mixed");
        let big = payload(&path, 9, LARGE_BODY);
        assert!(verify(&path, &big).is_ok());
    }

    #[test]
    fn listings_are_checked() {
        let dir = dir_path(0);
        assert!(check_listing(&dir, &[file_path(0, 0), file_path(0, 2)]).is_ok());
        assert!(check_listing(&dir, &[file_path(0, 2), file_path(0, 0)]).is_err());
        assert!(check_listing(&dir, &[file_path(1, 0)]).is_err());
        assert!(check_listing(&dir, &[]).is_err());
        assert!(check_listing(ROOT, &[dir_path(0), dir_path(3)]).is_ok());
        assert!(check_listing(ROOT, &[]).is_ok());
    }
}
