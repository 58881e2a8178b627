//! Two writers for one path: the later one takes over.
//!
//! Opening a writer for a path supersedes every writer of that path still open. From then on
//! the superseded writer changes nothing: its `close`, `commit` and `cancel` fail with
//! [`Error::WriterFinished`] in state `superseded`, its `write` fails the same way or is
//! accepted and discarded, and committed content is always exactly the whole payload of one
//! commit or one `put_content`.
//!
//! Each behaviour runs with small (20-byte) and large (a few MiB, written in 1 MiB chunks)
//! payloads, so that drivers which buffer or stream writes are exercised. Over IPC a write is
//! only sent, so a superseded writer's first finishing call is the one that must report
//! `superseded`; later calls on it only have to fail with [`Error::WriterFinished`] (or, for
//! `close`, succeed as a no-op).

use bytes::Bytes;
use storagedriver::{Error, FileWriter, Result, StorageDriver};

use super::{assert_not_found, assert_same, get, ok, put};
use crate::data::random_bytes;

/// 1 MiB: the chunk size of the large payloads' writes.
const CHUNK: usize = 1 << 20;

/// The payload pairs every behaviour runs with: `(label, first writer's, second writer's)`.
fn payloads(seed: u64) -> [(&'static str, Bytes, Bytes); 2] {
    [
        (
            "small",
            Bytes::from(vec![b'A'; 20]),
            Bytes::from(vec![b'B'; 10]),
        ),
        (
            "large",
            random_bytes(seed, 3 * CHUNK + 7),
            random_bytes(seed + 1, 2 * CHUNK + 3),
        ),
    ]
}

/// Writes `data` in chunks of at most 1 MiB, panicking on error.
async fn write_all(w: &mut dyn FileWriter, data: &Bytes, what: &str) {
    for start in (0..data.len()).step_by(CHUNK) {
        let chunk = data.slice(start..(start + CHUNK).min(data.len()));
        ok(w.write(chunk).await, what);
    }
}

/// Writes `data` through a superseded writer: every write is accepted (and discarded) or fails
/// with WriterFinished `superseded`; after the first failure it stops.
async fn write_superseded(w: &mut dyn FileWriter, path: &str, data: &Bytes, what: &str) {
    for start in (0..data.len()).step_by(CHUNK) {
        let chunk = data.slice(start..(start + CHUNK).min(data.len()));
        match w.write(chunk).await {
            Ok(()) => {}
            Err(err) => {
                assert_superseded(Err::<(), _>(err), path, what);
                return;
            }
        }
    }
}

/// Opens a first writer of `path` and writes `a`, then a second one that supersedes it and
/// writes `b`.
async fn both_written(
    d: &dyn StorageDriver,
    path: &str,
    a: &Bytes,
    b: &Bytes,
) -> (Box<dyn FileWriter>, Box<dyn FileWriter>) {
    let mut w1 = ok(d.writer(path, false).await, "first writer");
    write_all(w1.as_mut(), a, &format!("{path}: first writer's write")).await;
    let mut w2 = ok(d.writer(path, false).await, "second writer");
    write_all(w2.as_mut(), b, &format!("{path}: second writer's write")).await;
    (w1, w2)
}

/// Asserts `result` is WriterFinished in state `superseded` for `path`.
fn assert_superseded(result: Result<()>, path: &str, what: &str) {
    match result {
        Err(Error::WriterFinished { path: p, state, .. }) if state == "superseded" => {
            assert_eq!(p, path, "{what}: WriterFinished names the wrong path");
        }
        Err(other) => panic!("{what}: expected WriterFinished (superseded), got {other:?}"),
        Ok(()) => panic!("{what}: expected WriterFinished (superseded), got Ok"),
    }
}

/// Asserts a call on a writer whose first finishing call already failed (superseded) changes
/// nothing visible: it fails with WriterFinished (any state), or is a `close` that is a no-op.
fn assert_finished_or_noop(result: Result<()>, is_close: bool, what: &str) {
    match result {
        Err(Error::WriterFinished { .. }) => {}
        Ok(()) if is_close => {}
        other => panic!("{what}: expected WriterFinished, got {other:?}"),
    }
}

/// Asserts the committed content at `path` is `expected`, or that nothing is there.
async fn assert_content(d: &dyn StorageDriver, path: &str, expected: Option<&Bytes>, what: &str) {
    match expected {
        Some(expected) => assert_same(&get(d, path).await, expected, what),
        None => assert_not_found(d, d.get_content(path).await, path, what),
    }
}

/// Two writers for one path; the first writes and commits after the second opened: the first
/// one's commit fails (superseded) and changes nothing, whether or not content was committed
/// at the path before; the second's commit publishes exactly its own payload.
///
/// This is the scenario where a driver sharing one staging file between writers published
/// `BBBBBBBBBBAAAAAAAAAA` and then failed the second commit with PathNotFound.
pub async fn writer_takeover_commit_commit(d: &dyn StorageDriver) {
    for (label, a, b) in payloads(301) {
        for old in [None, Some(Bytes::from_static(b"old content"))] {
            let path = format!(
                "/takeover/commit-commit/{label}-{}",
                if old.is_some() { "over-old" } else { "new" }
            );
            let path = path.as_str();
            if let Some(old) = &old {
                put(d, path, old.clone()).await;
            }
            let mut w1 = ok(d.writer(path, false).await, "first writer");
            let mut w2 = ok(d.writer(path, false).await, "second writer");
            write_superseded(w1.as_mut(), path, &a, &format!("{path}: superseded write")).await;
            write_all(w2.as_mut(), &b, &format!("{path}: second writer's write")).await;
            assert_superseded(
                w1.commit().await,
                path,
                &format!("{path}: commit of the superseded writer"),
            );
            assert_content(
                d,
                path,
                old.as_ref(),
                &format!("{path}: after the superseded commit"),
            )
            .await;
            ok(
                w2.commit().await,
                &format!("{path}: commit of the second writer"),
            );
            assert_content(
                d,
                path,
                Some(&b),
                &format!("{path}: after the second writer's commit"),
            )
            .await;
            assert_finished_or_noop(
                w1.close().await,
                true,
                &format!("{path}: close of the superseded writer"),
            );
            assert_finished_or_noop(
                w1.cancel().await,
                false,
                &format!("{path}: cancel of the superseded writer"),
            );
            assert_content(
                d,
                path,
                Some(&b),
                &format!("{path}: after the superseded writer's close and cancel"),
            )
            .await;
        }
    }
}

/// The later writer commits; then the earlier one's cancel fails (superseded) and the
/// committed content stays the later writer's whole payload.
pub async fn writer_takeover_cancel_after_commit(d: &dyn StorageDriver) {
    for (label, a, b) in payloads(311) {
        let path = format!("/takeover/cancel-after-commit/{label}");
        let path = path.as_str();
        let (mut w1, mut w2) = both_written(d, path, &a, &b).await;
        ok(
            w2.commit().await,
            &format!("{path}: commit of the second writer"),
        );
        assert_superseded(
            w1.cancel().await,
            path,
            &format!("{path}: cancel of the superseded writer"),
        );
        assert_content(
            d,
            path,
            Some(&b),
            &format!("{path}: after the superseded cancel"),
        )
        .await;
        assert_finished_or_noop(
            w1.commit().await,
            false,
            &format!("{path}: commit after the superseded cancel"),
        );
        assert_content(
            d,
            path,
            Some(&b),
            &format!("{path}: after the superseded commit"),
        )
        .await;
    }
}

/// The earlier writer's cancel, after a later writer opened, fails (superseded) and discards
/// nothing of the later writer's: it still commits its whole payload, and committed content
/// at the path is untouched until then.
pub async fn writer_takeover_cancel_before_commit(d: &dyn StorageDriver) {
    for (label, a, b) in payloads(321) {
        let path = format!("/takeover/cancel-before-commit/{label}");
        let path = path.as_str();
        let old = Bytes::from_static(b"committed before");
        put(d, path, old.clone()).await;
        let mut w1 = ok(d.writer(path, false).await, "first writer");
        write_all(w1.as_mut(), &a, &format!("{path}: first writer's write")).await;
        let mut w2 = ok(d.writer(path, false).await, "second writer");
        write_all(
            w2.as_mut(),
            &b.slice(..b.len() / 2),
            &format!("{path}: write"),
        )
        .await;
        assert_superseded(
            w1.cancel().await,
            path,
            &format!("{path}: cancel of the superseded writer"),
        );
        assert_content(
            d,
            path,
            Some(&old),
            &format!("{path}: committed content after the superseded cancel"),
        )
        .await;
        write_all(
            w2.as_mut(),
            &b.slice(b.len() / 2..),
            &format!("{path}: write"),
        )
        .await;
        assert_eq!(
            w2.size(),
            b.len() as u64,
            "{path}: size() of the second writer"
        );
        ok(
            w2.commit().await,
            &format!("{path}: commit of the second writer"),
        );
        assert_content(
            d,
            path,
            Some(&b),
            &format!("{path}: after the second writer's commit"),
        )
        .await;
    }
}

/// The earlier writer writes again after the later one committed: the write is discarded or
/// fails (superseded), its commit fails (superseded), and the content stays the later
/// writer's.
pub async fn writer_takeover_write_after_commit(d: &dyn StorageDriver) {
    for (label, a, b) in payloads(331) {
        let path = format!("/takeover/write-after-commit/{label}");
        let path = path.as_str();
        let (mut w1, mut w2) = both_written(d, path, &a, &b).await;
        ok(
            w2.commit().await,
            &format!("{path}: commit of the second writer"),
        );
        write_superseded(
            w1.as_mut(),
            path,
            &a,
            &format!("{path}: write of the superseded writer"),
        )
        .await;
        assert_superseded(
            w1.commit().await,
            path,
            &format!("{path}: commit of the superseded writer"),
        );
        assert_content(
            d,
            path,
            Some(&b),
            &format!("{path}: after the superseded writer's commit"),
        )
        .await;
    }
}

/// A writer resumed (`append == true`) while an earlier writer of the path is still open takes
/// over from what the upload held: at most what the earlier writer wrote (a buffering driver
/// may not have flushed all of it), and always a prefix of it. The earlier writer's `close`
/// (or, in a second round, `commit`) then fails (superseded) and changes nothing; the resumed
/// writer commits that prefix followed by its own bytes. The large round starts from an upload
/// closed by a writer before, so the earlier writer is itself a resumed one.
pub async fn writer_takeover_resume(d: &dyn StorageDriver) {
    for finish in ["close", "commit"] {
        for (label, a, b) in payloads(341) {
            let path = format!("/takeover/resume/{label}-{finish}");
            let path = path.as_str();
            // What the first writer's content holds in the end: an earlier upload, then `a`.
            let mut first_content = Vec::new();
            let mut w1 = if label == "large" {
                let base = random_bytes(349, CHUNK / 2 + 1);
                let mut w0 = ok(d.writer(path, false).await, "the upload's first writer");
                write_all(w0.as_mut(), &base, &format!("{path}: write")).await;
                ok(w0.close().await, &format!("{path}: close the upload"));
                first_content.extend_from_slice(&base);
                let w1 = ok(d.writer(path, true).await, "first writer (resumed)");
                assert_eq!(
                    w1.size(),
                    base.len() as u64,
                    "{path}: size() of the resumed first writer"
                );
                w1
            } else {
                ok(d.writer(path, false).await, "first writer")
            };
            write_all(w1.as_mut(), &a, &format!("{path}: first writer's write")).await;
            first_content.extend_from_slice(&a);

            let mut w2 = ok(
                d.writer(path, true).await,
                &format!("{path}: second writer (append) while the first is open"),
            );
            let start = w2.size();
            let start_len = usize::try_from(start).unwrap_or(usize::MAX);
            assert!(
                start_len <= first_content.len(),
                "{path}: the resumed writer starts at {start} bytes, but the first writer's \
                 content has only {}",
                first_content.len()
            );
            write_all(w2.as_mut(), &b, &format!("{path}: second writer's write")).await;
            let what = format!("{finish} of the superseded writer at {path}");
            let result = if finish == "close" {
                w1.close().await
            } else {
                w1.commit().await
            };
            assert_superseded(result, path, &what);
            assert_not_found(
                d,
                d.get_content(path).await,
                path,
                &format!("{path}: nothing committed after the superseded {finish}"),
            );
            assert_eq!(
                w2.size(),
                start + b.len() as u64,
                "{path}: size() of the resumed writer"
            );
            ok(
                w2.commit().await,
                &format!("{path}: commit of the resumed writer"),
            );
            let mut expected = first_content[..start_len].to_vec();
            expected.extend_from_slice(&b);
            assert_content(
                d,
                path,
                Some(&Bytes::from(expected)),
                &format!("{path}: the resumed writer's content"),
            )
            .await;
        }
    }
}

/// A writer opened with `append == false` takes over from an open one whose `close` then
/// fails (superseded), before or after the later writer's own `close`, and a later
/// `writer(path, true)` resumes the later writer's upload, not the earlier one's. A superseded
/// writer dropped without finishing changes nothing either.
pub async fn writer_takeover_close_then_resume(d: &dyn StorageDriver) {
    for (label, a, b) in payloads(351) {
        for order in ["superseded-first", "newer-first", "dropped"] {
            let path = format!("/takeover/close-resume/{label}-{order}");
            let path = path.as_str();
            let mut w1 = ok(d.writer(path, false).await, "first writer");
            write_all(w1.as_mut(), &a, &format!("{path}: first writer's write")).await;
            let mut w2 = ok(d.writer(path, false).await, "second writer");
            assert_eq!(w2.size(), 0, "{path}: size() of a new writer");
            write_all(w2.as_mut(), &b, &format!("{path}: second writer's write")).await;
            let what = format!("{path}: close of the superseded writer");
            match order {
                "superseded-first" => {
                    assert_superseded(w1.close().await, path, &what);
                    ok(
                        w2.close().await,
                        &format!("{path}: close of the second writer"),
                    );
                }
                "newer-first" => {
                    ok(
                        w2.close().await,
                        &format!("{path}: close of the second writer"),
                    );
                    assert_superseded(w1.close().await, path, &what);
                }
                _ => {
                    ok(
                        w2.close().await,
                        &format!("{path}: close of the second writer"),
                    );
                    drop(w1);
                }
            }
            assert_not_found(
                d,
                d.get_content(path).await,
                path,
                &format!("{path}: closed uploads are not readable"),
            );
            let mut w3 = ok(d.writer(path, true).await, "resume after both closed");
            assert_eq!(
                w3.size(),
                b.len() as u64,
                "{path}: the resumed upload is the second writer's"
            );
            ok(
                w3.commit().await,
                &format!("{path}: commit of the resumed upload"),
            );
            assert_content(
                d,
                path,
                Some(&b),
                &format!("{path}: the second writer's upload, committed"),
            )
            .await;
        }
    }
}
