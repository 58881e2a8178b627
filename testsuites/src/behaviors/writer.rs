//! Writers: resume, append, cancel, commit and misuse.

use bytes::Bytes;
use storagedriver::{Error, StorageDriver};

use super::{assert_not_found, assert_same, get, ok, put, read_from};
use crate::data::random_bytes;

/// Writes three chunks through three writers (close, resume, resume + commit), the second and
/// third opened on `resume_on`, and checks sizes and the result (Go: testContinueStreamAppend).
async fn append_in_three_writers(
    first: &dyn StorageDriver,
    resume_on: &dyn StorageDriver,
    path: &str,
    chunk: usize,
) {
    let content = random_bytes(chunk as u64, chunk * 3);
    let c = chunk as u64;

    let mut w = ok(first.writer(path, false).await, "first writer");
    ok(w.write(content.slice(..chunk)).await, "first chunk");
    ok(w.close().await, "close the first writer");
    assert_eq!(w.size(), c, "size() after the first chunk");
    assert_not_found(
        first,
        first.get_content(path).await,
        path,
        "uncommitted content is not readable",
    );

    let mut w = ok(resume_on.writer(path, true).await, "second writer (append)");
    assert_eq!(
        w.size(),
        c,
        "size() of a resumed writer counts the resumed bytes"
    );
    ok(
        w.write(content.slice(chunk..2 * chunk)).await,
        "second chunk",
    );
    ok(w.close().await, "close the second writer");
    assert_eq!(w.size(), 2 * c, "size() after the second chunk");

    let mut w = ok(resume_on.writer(path, true).await, "third writer (append)");
    assert_eq!(w.size(), 2 * c, "size() of the third writer");
    ok(w.write(content.slice(2 * chunk..)).await, "third chunk");
    ok(w.commit().await, "commit the third writer");
    ok(w.close().await, "close after commit");
    assert_eq!(w.size(), 3 * c, "size() after commit");

    assert_same(
        &get(resume_on, path).await,
        &content,
        "content after three writers",
    );
    assert_same(
        &get(first, path).await,
        &content,
        "content seen by the first driver instance",
    );
}

/// Append resume with 32-byte chunks.
pub async fn append_resume_small_chunks(d: &dyn StorageDriver) {
    append_in_three_writers(d, d, "/append/small", 32).await;
}

/// Append resume with 10 MiB chunks.
pub async fn append_resume_large_chunks(d: &dyn StorageDriver) {
    append_in_three_writers(d, d, "/append/large", 10 << 20).await;
}

/// Append resume where the resuming writers come from a second driver instance over the same
/// storage (for persistent drivers; others pass the same instance twice).
pub async fn append_resume_from_new_instance(d: &dyn StorageDriver, other: &dyn StorageDriver) {
    append_in_three_writers(d, other, "/append/new-instance", 1024).await;
}

/// A zero-byte writer commits an empty file, which a later writer appends to.
pub async fn zero_byte_writer_then_append(d: &dyn StorageDriver) {
    let path = "/zero/writer";
    let mut w = ok(d.writer(path, false).await, "zero-byte writer");
    ok(w.commit().await, "commit zero bytes");
    ok(w.close().await, "close after commit");
    assert_eq!(w.size(), 0, "size() of the zero-byte writer");
    assert!(
        read_from(d, path, 0).await.is_empty(),
        "the empty file reads empty"
    );
    append_32_to_empty(d, path).await;
}

/// An empty file from put_content accepts an appending writer.
pub async fn zero_byte_put_then_append(d: &dyn StorageDriver) {
    let path = "/zero/put";
    put(d, path, Bytes::new()).await;
    append_32_to_empty(d, path).await;
}

async fn append_32_to_empty(d: &dyn StorageDriver, path: &str) {
    let content = random_bytes(32, 32);
    let mut w = ok(
        d.writer(path, true).await,
        "append to committed empty content",
    );
    assert_eq!(w.size(), 0, "size() of an append to empty content");
    ok(w.write(content.clone()).await, "write 32 bytes");
    ok(w.commit().await, "commit the append");
    ok(w.close().await, "close after commit");
    assert_eq!(w.size(), 32, "size() after the append");
    assert_same(
        &get(d, path).await,
        &content,
        "content after appending to an empty file",
    );
}

/// An appending writer for a path with nothing to resume is PathNotFound.
pub async fn append_missing_path(d: &dyn StorageDriver) {
    let result = d.writer("/append/missing", true).await.map(|_| ());
    assert_not_found(
        d,
        result,
        "/append/missing",
        "writer(append) of a missing path",
    );
}

/// Appending to committed non-empty content works or is Unsupported, as the capabilities say;
/// either way the committed content is intact.
pub async fn append_to_committed(d: &dyn StorageDriver) {
    let path = "/append/committed";
    put(d, path, Bytes::from_static(b"abc")).await;
    let result = d.writer(path, true).await;
    if d.capabilities().append_to_committed {
        let mut w = ok(result, "append to committed content");
        assert_eq!(w.size(), 3, "size() of an append to committed content");
        ok(
            w.write(Bytes::from_static(b"def")).await,
            "write the append",
        );
        ok(w.commit().await, "commit the append");
        assert_eq!(
            get(d, path).await,
            Bytes::from_static(b"abcdef"),
            "appended content"
        );
    } else {
        match result {
            Err(Error::Unsupported { .. }) => {}
            Err(other) => {
                panic!("append to committed content: expected Unsupported, got {other:?}")
            }
            Ok(w) => {
                panic!("append to committed content: expected Unsupported, got a writer {w:?}")
            }
        }
        assert_eq!(
            get(d, path).await,
            Bytes::from_static(b"abc"),
            "committed content intact"
        );
    }
}

/// Cancel discards the writer's content and leaves committed content untouched.
pub async fn writer_cancel(d: &dyn StorageDriver) {
    let path = "/cancel/file";
    let mut w = ok(d.writer(path, false).await, "writer");
    ok(w.write(random_bytes(7, 1000)).await, "write");
    ok(w.close().await, "close");
    let mut w = ok(d.writer(path, true).await, "resume");
    ok(w.write(random_bytes(8, 10)).await, "write after resume");
    ok(w.cancel().await, "cancel");
    assert_not_found(
        d,
        d.get_content(path).await,
        path,
        "cancelled content is not readable",
    );
    assert_not_found(
        d,
        d.writer(path, true).await.map(|_| ()),
        path,
        "cancelled content cannot be resumed",
    );

    put(d, path, Bytes::from_static(b"committed")).await;
    let mut w = ok(d.writer(path, false).await, "writer over committed content");
    ok(w.write(Bytes::from_static(b"replacement")).await, "write");
    ok(w.cancel().await, "cancel");
    assert_eq!(
        get(d, path).await,
        Bytes::from_static(b"committed"),
        "cancel kept the committed content"
    );
}

/// Content is readable only after commit; until then the old committed content stays.
pub async fn writer_commit_visibility(d: &dyn StorageDriver) {
    let path = "/visibility/file";
    let mut w = ok(d.writer(path, false).await, "writer");
    ok(w.write(Bytes::from_static(b"new")).await, "write");
    ok(w.close().await, "close");
    assert_not_found(
        d,
        d.get_content(path).await,
        path,
        "closed, uncommitted content is not readable",
    );
    assert_not_found(
        d,
        d.stat(path).await,
        path,
        "closed, uncommitted content has no stat",
    );
    assert_not_found(
        d,
        d.list("/visibility").await,
        "/visibility",
        "uncommitted content is not listed",
    );

    put(d, path, Bytes::from_static(b"old")).await;
    let mut w = ok(d.writer(path, false).await, "second writer");
    ok(w.write(Bytes::from_static(b"newer")).await, "write");
    assert_eq!(
        get(d, path).await,
        Bytes::from_static(b"old"),
        "old content before commit"
    );
    ok(w.commit().await, "commit");
    assert_eq!(
        get(d, path).await,
        Bytes::from_static(b"newer"),
        "new content after commit"
    );
    let listed = ok(d.list("/visibility").await, "list after commit");
    assert_eq!(
        listed,
        ["/visibility/file"],
        "only the committed file is listed"
    );
}

/// Using a writer after close, cancel or commit is WriterFinished, never a panic; close after
/// them is fine.
pub async fn writer_use_after_finish(d: &dyn StorageDriver) {
    for finish in ["close", "cancel", "commit"] {
        let path = format!("/finished/{finish}");
        let mut w = ok(d.writer(&path, false).await, "writer");
        ok(w.write(Bytes::from_static(b"data")).await, "write");
        match finish {
            "close" => ok(w.close().await, "close"),
            "cancel" => ok(w.cancel().await, "cancel"),
            _ => ok(w.commit().await, "commit"),
        }
        let write = w.write(Bytes::from_static(b"more")).await;
        assert!(
            matches!(write, Err(Error::WriterFinished { .. })),
            "write after {finish}: {write:?}"
        );
        let commit = w.commit().await;
        assert!(
            matches!(commit, Err(Error::WriterFinished { .. })),
            "commit after {finish}: {commit:?}"
        );
        let cancel = w.cancel().await;
        assert!(
            matches!(cancel, Err(Error::WriterFinished { .. })),
            "cancel after {finish}: {cancel:?}"
        );
        ok(w.close().await, &format!("close after {finish}"));
    }
    assert_eq!(
        get(d, "/finished/commit").await,
        Bytes::from_static(b"data"),
        "the committed writer's content"
    );
}

/// A writer dropped without close, cancel or commit never damages committed content.
pub async fn writer_dropped(d: &dyn StorageDriver) {
    let path = "/dropped/file";
    put(d, path, Bytes::from_static(b"committed")).await;
    let mut w = ok(d.writer(path, false).await, "writer");
    ok(w.write(random_bytes(9, 4096)).await, "write");
    drop(w);
    assert_eq!(
        get(d, path).await,
        Bytes::from_static(b"committed"),
        "committed content after a dropped writer"
    );
    let listed = ok(d.list("/dropped").await, "list after a dropped writer");
    assert_eq!(
        listed,
        ["/dropped/file"],
        "a dropped writer left something visible"
    );
}
