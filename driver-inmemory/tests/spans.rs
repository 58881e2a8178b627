//! Every operation's span carries its fields: a log line names the driver, the path and the
//! operation's arguments.

use bytes::Bytes;
use driver_inmemory::InMemoryDriver;
use storagedriver::StorageDriver;
use testsuites::logs::Captured;

#[tokio::test]
async fn spans_record_their_fields() {
    let logs = Captured::default();
    let _guard = logs.install();
    let driver = InMemoryDriver::new();
    driver
        .put_content("/a/b", Bytes::from_static(b"hello"))
        .await
        .expect("put");
    drop(driver.reader("/a/b", 3).await.expect("reader"));
    drop(driver.writer("/a/c", false).await.expect("writer"));
    driver.rename("/a/b", "/a/d").await.expect("rename");
    let log = logs.text();
    for expected in [
        "put_content{driver=\"inmemory\" path=/a/b size=5}",
        "reader{driver=\"inmemory\" path=/a/b offset=3}",
        "writer{driver=\"inmemory\" path=/a/c append=false}",
        "rename{driver=\"inmemory\" source=/a/b dest=/a/d}",
    ] {
        assert!(log.contains(expected), "no `{expected}` in the log:\n{log}");
    }
}
