//! `--verify`: the size and SHA-256 of every file of the copy, read on both sides.

use std::fmt::Write as _;
use std::sync::Arc;

use futures::StreamExt;
use indicatif::ProgressBar;
use sha2::{Digest as _, Sha256};
use storagedriver::{Error, StorageDriver};
use tokio::sync::watch;

use super::plan::Item;
use crate::exit::{Class, CliError};

/// What a file holds, as far as a comparison needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digest {
    /// Its size in bytes.
    pub(crate) size: u64,
    /// The SHA-256 of its content.
    pub(crate) sha256: [u8; 32],
}

impl Digest {
    /// The hash in hex.
    pub(crate) fn hex(&self) -> String {
        self.sha256
            .iter()
            .fold(String::with_capacity(64), |mut out, byte| {
                let _ = write!(out, "{byte:02x}");
                out
            })
    }
}

/// A file whose copy differs from its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mismatch {
    /// The file's path on the source.
    pub(crate) source: String,
    /// Its copy's path on the destination.
    pub(crate) dest: String,
    /// How they differ.
    pub(crate) reason: String,
}

/// Reads `path` on `driver` from the start, hashing it; `None` when nothing is there.
pub(crate) async fn digest(
    driver: &dyn StorageDriver,
    path: &str,
    bar: &ProgressBar,
) -> Result<Option<Digest>, Error> {
    let mut stream = match driver.reader(path, 0).await {
        Ok(stream) => stream,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hasher = Sha256::new();
    let mut size = 0_u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        bar.inc(chunk.len() as u64);
        hasher.update(&chunk);
    }
    Ok(Some(Digest {
        size,
        sha256: hasher.finalize().into(),
    }))
}

/// Compares one file with its copy; `known` is the source's digest when the copy read it
/// whole. `None` when they match.
pub(crate) async fn check(
    src: Arc<dyn StorageDriver>,
    dst: Arc<dyn StorageDriver>,
    item: Item,
    known: Option<Digest>,
    bar: ProgressBar,
) -> Result<Option<Mismatch>, CliError> {
    let source = match known {
        Some(digest) => Some(digest),
        None => digest(&*src, &item.source, &bar)
            .await
            .map_err(|e| verify_error("source", e))?,
    };
    let copy = digest(&*dst, &item.dest, &bar)
        .await
        .map_err(|e| verify_error("destination", e))?;
    let reason = match (source, copy) {
        (None, _) => Some(format!(
            "{} {} is gone from the source",
            src.name(),
            item.source
        )),
        (Some(_), None) => Some(format!("{} {} is missing", dst.name(), item.dest)),
        (Some(s), Some(c)) if s.size != c.size => Some(format!(
            "{} {} holds {} bytes where {} {} holds {}",
            dst.name(),
            item.dest,
            c.size,
            src.name(),
            item.source,
            s.size
        )),
        (Some(s), Some(c)) if s.sha256 != c.sha256 => Some(format!(
            "{} {} has SHA-256 {} where {} {} has {}",
            dst.name(),
            item.dest,
            c.hex(),
            src.name(),
            item.source,
            s.hex()
        )),
        _ => None,
    };
    Ok(reason.map(|reason| Mismatch {
        source: item.source,
        dest: item.dest,
        reason,
    }))
}

/// Checks every item with up to `jobs` at once, in the plan's order; stops early (with
/// [`CliError::interrupted`]) when `stop` turns true.
pub(crate) async fn all(
    src: &Arc<dyn StorageDriver>,
    dst: &Arc<dyn StorageDriver>,
    items: Vec<(Item, Option<Digest>)>,
    jobs: usize,
    stop: &watch::Receiver<bool>,
    bar: &ProgressBar,
) -> Result<Vec<Mismatch>, CliError> {
    let checks = items.into_iter().map(|(item, known)| {
        let task = tokio::spawn(check(
            Arc::clone(src),
            Arc::clone(dst),
            item,
            known,
            bar.clone(),
        ));
        async move {
            task.await.unwrap_or_else(|join| {
                Err(CliError::new(
                    Class::Backend,
                    format!("cp: verify: a check failed: {join}"),
                ))
            })
        }
    });
    let mut results = futures::stream::iter(checks).buffered(jobs);
    let mut stop = stop.clone();
    let mut mismatches = Vec::new();
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => return Err(CliError::interrupted()),
            next = results.next() => next,
        };
        match next {
            None => return Ok(mismatches),
            Some(result) => mismatches.extend(result?),
        }
    }
}

/// A driver error while verifying, naming the side.
fn verify_error(side: &str, err: Error) -> CliError {
    CliError::new(Class::of(&err), format!("cp: verify: {side} {err}"))
}
