//! One public async function per behaviour of the contract.
//!
//! Each takes the driver under test (`&dyn StorageDriver`) and panics with context when the
//! driver breaks the contract, so it can run inside any test harness. They assume a fresh,
//! empty store: give each its own driver (or its own root).

pub mod concurrency;
pub mod content;
pub mod delete;
pub mod list;
pub mod mixed;
pub mod model;
pub mod paths;
pub mod rename;
pub mod stat;
pub mod streams;
pub mod takeover;
pub mod url;
pub mod walk;
pub mod writer;

pub use concurrency::*;
pub use content::*;
pub use delete::*;
pub use list::*;
pub use mixed::*;
pub use model::*;
pub use paths::*;
pub use rename::*;
pub use stat::*;
pub use streams::*;
pub use takeover::*;
pub use url::*;
pub use walk::*;
pub use writer::*;

use std::fmt::Debug;

use bytes::Bytes;
use storagedriver::{Error, Result, StorageDriver};

use crate::data::read_all;

/// Unwraps `result`, or panics naming the operation.
pub(crate) fn ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what}: unexpected error: {err}"),
    }
}

/// Asserts `result` is a PathNotFound for `path` whose message names the driver.
pub(crate) fn assert_not_found<T: Debug>(
    driver: &dyn StorageDriver,
    result: Result<T>,
    path: &str,
    what: &str,
) {
    match result {
        Err(err @ Error::PathNotFound { .. }) => {
            assert_eq!(
                err.path(),
                Some(path),
                "{what}: PathNotFound names the wrong path: {err}"
            );
            assert_eq!(
                err.driver(),
                driver.name(),
                "{what}: wrong driver name in {err}"
            );
            assert!(
                err.to_string().contains(driver.name()),
                "{what}: message does not name the driver: {err}"
            );
        }
        Err(other) => panic!("{what}: expected PathNotFound for {path}, got {other:?}"),
        Ok(value) => panic!("{what}: expected PathNotFound for {path}, got Ok({value:?})"),
    }
}

/// Asserts `result` is an InvalidPath for `path` whose message names the driver.
pub(crate) fn assert_invalid_path<T: Debug>(
    driver: &dyn StorageDriver,
    result: Result<T>,
    path: &str,
    what: &str,
) {
    match result {
        Err(err @ Error::InvalidPath { .. }) => {
            assert_eq!(
                err.path(),
                Some(path),
                "{what}: InvalidPath names the wrong path: {err}"
            );
            assert!(
                err.to_string().contains(driver.name()),
                "{what}: message does not name the driver: {err}"
            );
        }
        Err(other) => panic!("{what}: expected InvalidPath for {path:?}, got {other:?}"),
        Ok(value) => panic!("{what}: expected InvalidPath for {path:?}, got Ok({value:?})"),
    }
}

/// Puts `content` at `path`, panicking on error.
pub(crate) async fn put(driver: &dyn StorageDriver, path: &str, content: impl Into<Bytes>) {
    ok(
        driver.put_content(path, content.into()).await,
        &format!("put_content({path})"),
    );
}

/// Gets the content at `path`, panicking on error.
pub(crate) async fn get(driver: &dyn StorageDriver, path: &str) -> Bytes {
    ok(
        driver.get_content(path).await,
        &format!("get_content({path})"),
    )
}

/// Reads `path` from `offset` through `reader`, panicking on error.
pub(crate) async fn read_from(driver: &dyn StorageDriver, path: &str, offset: u64) -> Bytes {
    let stream = ok(
        driver.reader(path, offset).await,
        &format!("reader({path}, {offset})"),
    );
    ok(
        read_all(stream).await,
        &format!("reading the stream of {path} from {offset}"),
    )
}

/// Writes `chunks` through a new writer and commits, panicking on error.
pub(crate) async fn write_commit(driver: &dyn StorageDriver, path: &str, chunks: &[Bytes]) {
    let mut writer = ok(
        driver.writer(path, false).await,
        &format!("writer({path}, false)"),
    );
    for chunk in chunks {
        ok(
            writer.write(chunk.clone()).await,
            &format!("write to {path}"),
        );
    }
    let total: u64 = chunks.iter().map(|c| c.len() as u64).sum();
    assert_eq!(
        writer.size(),
        total,
        "size() of the writer for {path} before commit"
    );
    ok(writer.commit().await, &format!("commit {path}"));
    ok(writer.close().await, &format!("close after commit {path}"));
}

/// Asserts two payloads are equal without printing megabytes on failure.
pub(crate) fn assert_same(actual: &[u8], expected: &[u8], what: &str) {
    if actual != expected {
        let first = actual.iter().zip(expected).position(|(a, b)| a != b);
        panic!(
            "{what}: content differs: got {} bytes, expected {}; first difference at {:?}",
            actual.len(),
            expected.len(),
            first
        );
    }
}
