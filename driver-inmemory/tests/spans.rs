//! Every operation's span carries its fields: a log line names the driver, the path and the
//! operation's arguments.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use driver_inmemory::InMemoryDriver;
use storagedriver::StorageDriver;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

/// A writer into a shared buffer, for the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut lines) = self.0.lock() {
            lines.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn spans_record_their_fields() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .without_time()
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let driver = InMemoryDriver::new();
    driver
        .put_content("/a/b", Bytes::from_static(b"hello"))
        .await
        .expect("put");
    drop(driver.reader("/a/b", 3).await.expect("reader"));
    drop(driver.writer("/a/c", false).await.expect("writer"));
    driver.rename("/a/b", "/a/d").await.expect("rename");
    let log = String::from_utf8(captured.0.lock().expect("the log").clone()).expect("UTF-8");
    for expected in [
        "put_content{driver=\"inmemory\" path=/a/b size=5}",
        "reader{driver=\"inmemory\" path=/a/b offset=3}",
        "writer{driver=\"inmemory\" path=/a/c append=false}",
        "rename{driver=\"inmemory\" source=/a/b dest=/a/d}",
    ] {
        assert!(log.contains(expected), "no `{expected}` in the log:\n{log}");
    }
    println!("{log}");
}
