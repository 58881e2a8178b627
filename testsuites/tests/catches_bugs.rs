//! The suite catches classic driver bugs: each buggy driver below wraps the in-memory driver,
//! breaks one rule, and must fail the behaviour named after that rule, while the plain driver
//! passes it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use driver_inmemory::InMemoryDriver;
use storagedriver::{
    ByteStream, Error, FileInfo, FileWriter, Result, Retry, StorageDriver, UrlOptions, WalkFn,
    WalkOptions,
};
use testsuites::{CASES, Fixture, make_fixture, run_case};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bug {
    /// Deleting `/a/b` also deletes `/a/bc` (a raw prefix delete).
    PrefixDelete,
    /// `list` returns children in reverse order.
    UnsortedList,
    /// `list` of a missing directory is an empty list.
    MissingDirListedEmpty,
    /// `put_content` publishes the first half before the whole.
    TornPut,
    /// `writer(path, true)` forgets the resumed bytes.
    AppendLosesResumed,
    /// InvalidPath comes back as PathNotFound.
    InvalidPathAsNotFound,
    /// Every 20th `put_content` fails with a retryable Backend error, changing nothing.
    FlakyPut,
    /// `delete` of a directory is a Conflict while a file below it was written within the
    /// last few milliseconds (a delete racing a write below it).
    DeleteConflictWhileWriting,
}

#[derive(Debug)]
struct Buggy {
    inner: InMemoryDriver,
    bug: Bug,
    puts: AtomicUsize,
    last_put: Mutex<Option<(String, Instant)>>,
}

impl Buggy {
    fn map_err<T>(&self, result: Result<T>) -> Result<T> {
        match result {
            Err(Error::InvalidPath { driver, path, .. })
                if self.bug == Bug::InvalidPathAsNotFound =>
            {
                Err(Error::PathNotFound { driver, path })
            }
            other => other,
        }
    }
}

// Inside this impl both traits are in scope: the driver's name is `self.inner.name()`.
#[async_trait]
impl storagedriver::forward::Forward for Buggy {
    fn inner(&self) -> &dyn StorageDriver {
        &self.inner
    }
    /// The generic walk over this driver's `list` and `stat`, so that their bugs show in walks.
    async fn walk(&self, path: &str, options: &WalkOptions, f: &mut WalkFn<'_>) -> Result<()> {
        storagedriver::walk::walk_fallback(self, path, options, f).await
    }
    async fn get_content(&self, path: &str) -> Result<Bytes> {
        self.map_err(self.inner.get_content(path).await)
    }
    async fn put_content(&self, path: &str, content: Bytes) -> Result<()> {
        let n = self.puts.fetch_add(1, Ordering::Relaxed);
        if self.bug == Bug::FlakyPut && n % 20 == 19 {
            return Err(Error::backend(
                self.inner.name(),
                "put_content",
                Some(path),
                Retry::MayHelp,
                "connection reset",
            ));
        }
        *self.last_put.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((path.to_owned(), Instant::now()));
        if self.bug == Bug::TornPut && content.len() > 1 {
            self.inner
                .put_content(path, content.slice(..content.len() / 2))
                .await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.map_err(self.inner.put_content(path, content).await)
    }
    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream> {
        self.map_err(self.inner.reader(path, offset).await)
    }
    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        if self.bug == Bug::AppendLosesResumed && append {
            if let Ok(mut resumed) = self.inner.writer(path, true).await {
                if resumed.size() > 0 {
                    resumed.cancel().await?;
                    return self.inner.writer(path, false).await;
                }
                return Ok(resumed);
            }
        }
        self.map_err(self.inner.writer(path, append).await)
    }
    async fn stat(&self, path: &str) -> Result<FileInfo> {
        self.map_err(self.inner.stat(path).await)
    }
    async fn list(&self, path: &str) -> Result<Vec<String>> {
        let result = self.map_err(self.inner.list(path).await);
        match (self.bug, result) {
            (Bug::UnsortedList, Ok(mut children)) => {
                children.reverse();
                Ok(children)
            }
            (Bug::MissingDirListedEmpty, Err(Error::PathNotFound { .. })) => Ok(Vec::new()),
            (_, other) => other,
        }
    }
    async fn rename(&self, source: &str, dest: &str) -> Result<()> {
        self.map_err(self.inner.rename(source, dest).await)
    }
    async fn delete(&self, path: &str) -> Result<()> {
        if self.bug == Bug::PrefixDelete {
            if let Some(parent) = storagedriver::path::parent(path) {
                let siblings = self.inner.list(parent).await.unwrap_or_default();
                for sibling in siblings
                    .iter()
                    .filter(|s| s.starts_with(path) && s.as_str() != path)
                {
                    self.inner.delete(sibling).await?;
                }
            }
        }
        if self.bug == Bug::DeleteConflictWhileWriting {
            let last = self
                .last_put
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some((written, at)) = last {
                if written.starts_with(&format!("{path}/"))
                    && at.elapsed() < Duration::from_millis(5)
                {
                    return Err(Error::conflict(
                        self.inner.name(),
                        path,
                        "a file is being written below",
                    ));
                }
            }
        }
        self.map_err(self.inner.delete(path).await)
    }
    async fn url_for(&self, path: &str, options: &UrlOptions) -> Result<String> {
        self.map_err(self.inner.url_for(path, options).await)
    }
}

storagedriver::forward_storage_driver!(Buggy);

/// Runs the case `name` on a fresh driver with `bug` (or the plain driver) and says whether it
/// passed.
fn passes(name: &str, bug: Option<Bug>) -> bool {
    let case = match CASES.iter().find(|(n, _)| *n == name) {
        Some((_, case)) => *case,
        None => panic!("no case named {name}"),
    };
    let make = make_fixture(move || async move {
        let inner = InMemoryDriver::new();
        let driver: Arc<dyn StorageDriver> = match bug {
            Some(bug) => Arc::new(Buggy {
                inner,
                bug,
                puts: AtomicUsize::new(0),
                last_put: Mutex::new(None),
            }),
            None => Arc::new(inner),
        };
        Fixture::new(driver)
    });
    catch_unwind(AssertUnwindSafe(|| run_case(name, case, make))).is_ok()
}

fn assert_caught(bug: Bug, behaviour: &str) {
    assert!(
        passes(behaviour, None),
        "{behaviour} fails on the plain in-memory driver"
    );
    assert!(
        !passes(behaviour, Some(bug)),
        "{behaviour} did not catch {bug:?}"
    );
}

#[test]
fn prefix_delete_fails_delete_only_subpaths() {
    assert_caught(Bug::PrefixDelete, "delete_only_subpaths");
}

#[test]
fn unsorted_list_fails_list_sorted() {
    assert_caught(Bug::UnsortedList, "list_sorted");
}

#[test]
fn missing_directory_listed_empty_fails_list_missing_directory() {
    assert_caught(Bug::MissingDirListedEmpty, "list_missing_directory");
}

#[test]
fn torn_put_fails_concurrent_put_same_path() {
    assert_caught(Bug::TornPut, "concurrent_put_same_path");
}

#[test]
fn append_losing_resumed_bytes_fails_append_resume_small_chunks() {
    assert_caught(Bug::AppendLosesResumed, "append_resume_small_chunks");
}

#[test]
fn invalid_path_as_not_found_fails_invalid_paths() {
    assert_caught(Bug::InvalidPathAsNotFound, "invalid_paths");
}

#[test]
fn flaky_put_fails_concurrent_mixed_operations() {
    assert_caught(Bug::FlakyPut, "concurrent_mixed_operations");
}

#[test]
fn delete_conflict_while_writing_fails_concurrent_mixed_operations() {
    assert_caught(
        Bug::DeleteConflictWhileWriting,
        "concurrent_mixed_operations",
    );
}

#[test]
fn the_model_test_catches_every_bug_it_can_reach() {
    for bug in [
        Bug::UnsortedList,
        Bug::MissingDirListedEmpty,
        Bug::AppendLosesResumed,
    ] {
        assert!(
            !passes("model_random_operations", Some(bug)),
            "the model test did not catch {bug:?}"
        );
    }
}
