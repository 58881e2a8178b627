//! A property test: random operation sequences checked step by step against a plain model of
//! the contract.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use storagedriver::{Error, Result, StorageDriver};

use crate::data::{random_bytes, read_all};
use crate::fixture::MakeFixture;

/// Files the model writes. No file lies below another, so no sequence provokes a file/directory
/// conflict (those have their own tests).
const MODEL_FILES: &[&str] = &["/a/x", "/a/y", "/b/x", "/b/d/z", "/c"];

/// Directories the model lists, stats and deletes.
const MODEL_DIRS: &[&str] = &["/", "/a", "/b", "/b/d"];

/// How a writer ends in a [`ModelOp::Write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterEnd {
    /// `close`: the content stays resumable.
    Close,
    /// `cancel`: the content is discarded.
    Cancel,
    /// `commit`: the content is published.
    Commit,
}

/// One step of a random sequence.
#[derive(Debug, Clone)]
enum ModelOp {
    /// `put_content` of `len` random bytes.
    Put { file: usize, seed: u64, len: usize },
    /// A writer (`append` or not) that writes chunks of the given lengths, then ends.
    Write {
        file: usize,
        append: bool,
        chunks: Vec<usize>,
        seed: u64,
        end: WriterEnd,
    },
    /// `get_content`.
    Get { file: usize },
    /// `reader` from an offset.
    Read { file: usize, offset: u64 },
    /// `stat` of a file (`dir == false`) or a directory.
    Stat { index: usize, dir: bool },
    /// `list` of a directory.
    List { dir: usize },
    /// `rename` of one model file to another.
    Rename { from: usize, to: usize },
    /// `delete` of a file or a directory.
    Delete { index: usize, dir: bool },
}

fn op_strategy() -> impl Strategy<Value = ModelOp> {
    let file = 0..MODEL_FILES.len();
    let dir = 0..MODEL_DIRS.len();
    let end = prop_oneof![
        Just(WriterEnd::Close),
        Just(WriterEnd::Cancel),
        Just(WriterEnd::Commit)
    ];
    prop_oneof![
        3 => (file.clone(), any::<u64>(), 0..64usize).prop_map(|(file, seed, len)| ModelOp::Put { file, seed, len }),
        4 => (file.clone(), any::<bool>(), prop::collection::vec(0..48usize, 0..4), any::<u64>(), end)
            .prop_map(|(file, append, chunks, seed, end)| ModelOp::Write { file, append, chunks, seed, end }),
        2 => file.clone().prop_map(|file| ModelOp::Get { file }),
        1 => (file.clone(), 0..80u64).prop_map(|(file, offset)| ModelOp::Read { file, offset }),
        1 => file.clone().prop_map(|index| ModelOp::Stat { index, dir: false }),
        1 => dir.clone().prop_map(|index| ModelOp::Stat { index, dir: true }),
        2 => dir.clone().prop_map(|dir| ModelOp::List { dir }),
        2 => (file.clone(), file.clone()).prop_map(|(from, to)| ModelOp::Rename { from, to }),
        1 => file.prop_map(|index| ModelOp::Delete { index, dir: false }),
        1 => (1..MODEL_DIRS.len()).prop_map(|index| ModelOp::Delete { index, dir: true }),
    ]
}

/// The model: committed files and closed, uncommitted writer content.
#[derive(Debug, Default)]
struct Model {
    committed: BTreeMap<String, Bytes>,
    uploads: BTreeMap<String, Bytes>,
    append_to_committed: bool,
}

/// An operation's result, reduced to what the contract fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Done,
    Content(Bytes),
    Listing(Vec<String>),
    File(u64),
    Dir,
    NotFound,
    Unsupported,
    /// `stat("/")` of an empty store: a directory or PathNotFound are both right.
    EmptyRoot,
}

fn outcome<T>(result: Result<T>, f: impl FnOnce(T) -> Outcome) -> Outcome {
    match result {
        Ok(value) => f(value),
        Err(Error::PathNotFound { .. }) => Outcome::NotFound,
        Err(Error::Unsupported { .. }) => Outcome::Unsupported,
        Err(other) => Outcome::Content(Bytes::from(format!("unexpected error: {other}"))),
    }
}

impl Model {
    fn has_below(&self, dir: &str) -> bool {
        self.committed
            .keys()
            .any(|k| storagedriver::path::is_within(dir, k) && k != dir)
    }

    fn children(&self, dir: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .committed
            .keys()
            .filter(|k| storagedriver::path::is_within(dir, k) && k.as_str() != dir)
            .map(|k| {
                let rest = if dir == "/" {
                    &k[1..]
                } else {
                    &k[dir.len() + 1..]
                };
                storagedriver::path::join(dir, rest.split('/').next().unwrap_or(rest))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn stat(&self, path: &str) -> Outcome {
        if let Some(content) = self.committed.get(path) {
            Outcome::File(content.len() as u64)
        } else if self.has_below(path) {
            Outcome::Dir
        } else if path == "/" {
            Outcome::EmptyRoot
        } else {
            Outcome::NotFound
        }
    }

    /// The content a writer starts from, or the outcome that refuses it.
    fn start_writer(&mut self, path: &str, append: bool) -> std::result::Result<Bytes, Outcome> {
        if !append {
            self.uploads.remove(path);
            return Ok(Bytes::new());
        }
        if let Some(resumed) = self.uploads.remove(path) {
            return Ok(resumed);
        }
        match self.committed.get(path) {
            Some(c) if c.is_empty() => Ok(Bytes::new()),
            Some(c) if self.append_to_committed => Ok(c.clone()),
            Some(_) => Err(Outcome::Unsupported),
            None => Err(Outcome::NotFound),
        }
    }
}

async fn step(
    d: &dyn StorageDriver,
    model: &mut Model,
    op: &ModelOp,
) -> std::result::Result<(), String> {
    let (expected, actual) = match op {
        ModelOp::Put { file, seed, len } => {
            let path = MODEL_FILES[*file];
            let content = random_bytes(*seed, *len);
            model.committed.insert(path.to_owned(), content.clone());
            (
                Outcome::Done,
                outcome(d.put_content(path, content).await, |_| Outcome::Done),
            )
        }
        ModelOp::Write {
            file,
            append,
            chunks,
            seed,
            end,
        } => {
            let path = MODEL_FILES[*file];
            let start = model.start_writer(path, *append);
            let actual = d.writer(path, *append).await;
            match (start, actual) {
                (Ok(mut content), Ok(mut writer)) => {
                    if writer.size() != content.len() as u64 {
                        return Err(format!(
                            "{op:?}: size() {} at start, model says {}",
                            writer.size(),
                            content.len()
                        ));
                    }
                    for (i, len) in chunks.iter().enumerate() {
                        let chunk = random_bytes(seed.wrapping_add(i as u64), *len);
                        writer
                            .write(chunk.clone())
                            .await
                            .map_err(|e| format!("{op:?}: write: {e}"))?;
                        content = [content, chunk].concat().into();
                    }
                    if writer.size() != content.len() as u64 {
                        return Err(format!(
                            "{op:?}: size() {} after writes, model says {}",
                            writer.size(),
                            content.len()
                        ));
                    }
                    let ended = match end {
                        WriterEnd::Close => {
                            model.uploads.insert(path.to_owned(), content);
                            writer.close().await
                        }
                        WriterEnd::Cancel => writer.cancel().await,
                        WriterEnd::Commit => {
                            model.committed.insert(path.to_owned(), content);
                            writer.commit().await
                        }
                    };
                    (Outcome::Done, outcome(ended, |_| Outcome::Done))
                }
                (Ok(_), Err(e)) => {
                    return Err(format!(
                        "{op:?}: the model opens a writer, the driver said {e}"
                    ));
                }
                (Err(expected), Ok(_)) => {
                    return Err(format!(
                        "{op:?}: the model says {expected:?}, the driver opened a writer"
                    ));
                }
                (Err(expected), Err(e)) => (expected, outcome::<()>(Err(e), |_| Outcome::Done)),
            }
        }
        ModelOp::Get { file } => {
            let path = MODEL_FILES[*file];
            let expected = model
                .committed
                .get(path)
                .cloned()
                .map_or(Outcome::NotFound, Outcome::Content);
            (
                expected,
                outcome(d.get_content(path).await, Outcome::Content),
            )
        }
        ModelOp::Read { file, offset } => {
            let path = MODEL_FILES[*file];
            let expected = match model.committed.get(path) {
                Some(c) => Outcome::Content(c.slice((*offset as usize).min(c.len())..)),
                None => Outcome::NotFound,
            };
            let actual = match d.reader(path, *offset).await {
                Ok(stream) => outcome(read_all(stream).await, Outcome::Content),
                Err(e) => outcome::<()>(Err(e), |_| Outcome::Done),
            };
            (expected, actual)
        }
        ModelOp::Stat { index, dir } => {
            let path = if *dir {
                MODEL_DIRS[*index]
            } else {
                MODEL_FILES[*index]
            };
            let expected = model.stat(path);
            let actual = outcome(d.stat(path).await, |info| {
                if info.path != path {
                    Outcome::Content(Bytes::from(format!("stat path {}", info.path)))
                } else if info.is_dir {
                    Outcome::Dir
                } else {
                    Outcome::File(info.size)
                }
            });
            if expected == Outcome::EmptyRoot && matches!(actual, Outcome::Dir | Outcome::NotFound)
            {
                return Ok(());
            }
            (expected, actual)
        }
        ModelOp::List { dir } => {
            let path = MODEL_DIRS[*dir];
            let children = model.children(path);
            let expected = if children.is_empty() && path != "/" {
                Outcome::NotFound
            } else {
                Outcome::Listing(children)
            };
            (expected, outcome(d.list(path).await, Outcome::Listing))
        }
        ModelOp::Rename { from, to } => {
            let (from, to) = (MODEL_FILES[*from], MODEL_FILES[*to]);
            let expected = match model.committed.remove(from) {
                Some(content) => {
                    model.committed.insert(to.to_owned(), content);
                    Outcome::Done
                }
                None => Outcome::NotFound,
            };
            (
                expected,
                outcome(d.rename(from, to).await, |_| Outcome::Done),
            )
        }
        ModelOp::Delete { index, dir } => {
            let path = if *dir {
                MODEL_DIRS[*index]
            } else {
                MODEL_FILES[*index]
            };
            let expected = if model.committed.contains_key(path) || model.has_below(path) {
                model
                    .committed
                    .retain(|k, _| !storagedriver::path::is_within(path, k));
                model
                    .uploads
                    .retain(|k, _| !storagedriver::path::is_within(path, k));
                Outcome::Done
            } else {
                Outcome::NotFound
            };
            (expected, outcome(d.delete(path).await, |_| Outcome::Done))
        }
    };
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{op:?}: the model says {expected:?}, the driver gave {actual:?}"
        ))
    }
}

/// Runs one sequence on `d` (a fresh, empty store), checking every step against the model.
/// Returns the first step that disagrees, with the model's and the driver's outcomes.
async fn check_sequence(d: &dyn StorageDriver, ops: &[ModelOp]) -> std::result::Result<(), String> {
    let mut model = Model {
        append_to_committed: d.capabilities().append_to_committed,
        ..Model::default()
    };
    for (i, op) in ops.iter().enumerate() {
        step(d, &mut model, op)
            .await
            .map_err(|e| format!("step {i}: {e}"))?;
    }
    Ok(())
}

/// What a model run did: cases, the longest sequence, and operations in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelStats {
    /// Random sequences that passed.
    pub cases: u32,
    /// Operations in the longest sequence.
    pub longest: usize,
    /// Operations run in all.
    pub operations: usize,
}

/// The property test: `cases` random sequences of up to 64 operations, each on a fresh driver
/// from `make`, checked step by step against a plain model of the contract. Failures shrink to
/// a minimal sequence. Must run inside a multi-threaded tokio runtime.
pub async fn model_random_operations(make: MakeFixture, cases: u32) -> ModelStats {
    let handle = tokio::runtime::Handle::current();
    let longest = Arc::new(AtomicUsize::new(0));
    let operations = Arc::new(AtomicUsize::new(0));
    let (longest_seen, operations_seen) = (longest.clone(), operations.clone());
    let result = tokio::task::spawn_blocking(move || {
        let config = Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        runner.run(&prop::collection::vec(op_strategy(), 1..64), |ops| {
            longest_seen.fetch_max(ops.len(), Ordering::Relaxed);
            operations_seen.fetch_add(ops.len(), Ordering::Relaxed);
            handle.block_on(async {
                let fixture = make().await;
                check_sequence(fixture.driver(), &ops)
                    .await
                    .map_err(TestCaseError::fail)
            })
        })
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(TestError::Fail(why, ops))) => {
            panic!("model test failed: {why}\nminimal sequence: {ops:#?}")
        }
        Ok(Err(TestError::Abort(why))) => panic!("model test aborted: {why}"),
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
    let stats = ModelStats {
        cases,
        longest: longest.load(Ordering::Relaxed),
        operations: operations.load(Ordering::Relaxed),
    };
    eprintln!(
        "model_random_operations: {} cases passed, longest sequence {} operations, {} operations in all",
        stats.cases, stats.longest, stats.operations
    );
    stats
}
