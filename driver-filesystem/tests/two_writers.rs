//! Two writers of one path, from one driver or from two drivers over the same root (as two
//! processes would be): the later takes over, the earlier changes nothing, and committed
//! content is always one writer's whole payload. The suite's `writer_takeover_*` behaviours
//! hold every driver to the same rule; these cases add a second driver instance and the
//! sizes that make the filesystem writer flush.

use std::path::Path;

use bytes::Bytes;
use driver_filesystem::{FilesystemConfig, FilesystemDriver};
use storagedriver::{Error, StorageDriver};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn driver(root: &Path) -> FilesystemDriver {
    FilesystemDriver::new(FilesystemConfig::new(root).with_fsync(false)).expect("a driver")
}

fn assert_superseded(what: &str, result: storagedriver::Result<()>) {
    assert!(
        matches!(&result, Err(Error::WriterFinished { state, .. }) if state == "superseded"),
        "{what}: expected WriterFinished(superseded), got {result:?}"
    );
}

/// The reproduction from the issue: `BBBBBBBBBBAAAAAAAAAA` was published.
#[tokio::test]
async fn the_earlier_writer_cannot_publish_a_mix() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (one, two) = (driver(dir.path()), driver(dir.path()));
    for (first, second) in [(&one, &one), (&one, &two)] {
        let mut w1 = first.writer("/p", false).await?;
        let mut w2 = second.writer("/p", false).await?;
        w1.write(Bytes::from(vec![b'A'; 20])).await?;
        w2.write(Bytes::from(vec![b'B'; 10])).await?;
        assert_superseded("w1.commit", w1.commit().await);
        assert!(one.get_content("/p").await.is_err_and(|e| e.is_not_found()));
        w2.commit().await?;
        assert_eq!(&one.get_content("/p").await?[..], &[b'B'; 10]);
        assert_superseded("w1.cancel after w2's commit", w1.cancel().await);
        assert_eq!(&two.get_content("/p").await?[..], &[b'B'; 10]);
        one.delete("/p").await?;
    }
    Ok(())
}

/// Writes large enough to be flushed: the superseded writer's flush fails, and its data
/// never reaches the upload the later writer owns.
#[tokio::test]
async fn large_writes_of_the_earlier_writer_never_reach_the_later_upload() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (one, two) = (driver(dir.path()), driver(dir.path()));
    let mut w1 = one.writer("/blob", false).await?;
    w1.write(Bytes::from(vec![b'A'; 5 << 20])).await?;
    let mut w2 = two.writer("/blob", false).await?;
    w2.write(Bytes::from(vec![b'B'; 6 << 20])).await?;
    let late = w1.write(Bytes::from(vec![b'A'; 5 << 20])).await;
    assert_superseded("w1.write that flushes", late);
    assert_superseded("w1.close", w1.close().await);
    w2.close().await?;
    // The upload to resume is w2's, whole.
    let mut w3 = one.writer("/blob", true).await?;
    assert_eq!(w3.size(), 6 << 20);
    w3.write(Bytes::from_static(b"end")).await?;
    w3.commit().await?;
    let content = two.get_content("/blob").await?;
    assert_eq!(content.len(), (6 << 20) + 3);
    assert!(content[..6 << 20].iter().all(|&b| b == b'B'));
    Ok(())
}

/// A resume while the earlier writer is still open takes over what it had flushed; the
/// earlier writer's later bytes go nowhere.
#[tokio::test]
async fn a_resume_takes_over_an_open_writer_in_another_instance() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (one, two) = (driver(dir.path()), driver(dir.path()));
    let mut w1 = one.writer("/u", false).await?;
    w1.write(Bytes::from(vec![1u8; 5 << 20])).await?;
    w1.write(Bytes::from_static(b"buffered, not flushed"))
        .await?;
    let mut w2 = two.writer("/u", true).await?;
    let resumed = w2.size();
    assert_eq!(resumed, 5 << 20, "w2 resumes what w1 had flushed");
    w1.write(Bytes::from(vec![9u8; 5 << 20])).await.ok();
    assert_superseded("w1.commit", w1.commit().await);
    w2.write(Bytes::from_static(b"tail")).await?;
    w2.commit().await?;
    let content = one.get_content("/u").await?;
    assert_eq!(content.len() as u64, resumed + 4);
    assert!(content[..5 << 20].iter().all(|&b| b == 1));
    assert_eq!(&content[5 << 20..], b"tail");
    Ok(())
}

/// A resume after the earlier writer closed (or was dropped) takes the upload itself, as
/// before: no copy, and the earlier writer is finished anyway.
#[tokio::test]
async fn a_resume_after_close_or_drop_continues_the_same_upload() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = driver(dir.path());
    let mut w = d.writer("/r", false).await?;
    w.write(Bytes::from(vec![3u8; 5 << 20])).await?;
    drop(w);
    let mut w = driver(dir.path()).writer("/r", true).await?;
    assert_eq!(w.size(), 5 << 20);
    w.write(Bytes::from_static(b"+")).await?;
    w.close().await?;
    let mut w = d.writer("/r", true).await?;
    assert_eq!(w.size(), (5 << 20) + 1);
    w.commit().await?;
    assert_eq!(d.stat("/r").await?.size, (5 << 20) + 1);
    Ok(())
}
