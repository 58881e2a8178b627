//! The copy engine of `cp`: [`plan`] (what to copy, and what the destination already holds),
//! [`file`] (one file, streamed and resumable, through the recycled buffers of [`buffers`]),
//! [`verify`] (sizes and SHA-256 on both sides) and [`summary`] (the totals). [`run`] puts them together: up to `jobs` files at once, each
//! in a task of its own, the first failure or Ctrl-C stopping the rest with their writers
//! closed, so that a rerun resumes them.

pub(crate) mod buffers;
pub(crate) mod file;
pub(crate) mod plan;
pub(crate) mod summary;
pub(crate) mod verify;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use storagedriver::StorageDriver;
use tokio::sync::watch;

use self::file::{Failure, Job, Outcome};
use self::plan::Plan;
use self::summary::Summary;
use self::verify::{Digest, Mismatch};
use crate::exit::{Class, CliError};
use crate::interrupt::Interrupt;
use crate::progress;

/// How a copy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    /// Files copied (and verified) at once.
    pub(crate) jobs: usize,
    /// Whether to verify afterwards.
    pub(crate) verify: bool,
}

/// What [`run`] found: the totals and the files that differ (with `verify`).
#[derive(Debug)]
pub(crate) struct Report {
    /// The totals.
    pub(crate) summary: Summary,
    /// Files whose copy differs from the source.
    pub(crate) mismatches: Vec<Mismatch>,
}

/// Copies every file of `plan` from `src` to `dst`, then verifies them all if asked.
/// Ctrl-C closes the open writers and ends with [`CliError::interrupted`]; the first failure
/// does the same to the other files and is returned.
pub(crate) async fn run(
    src: Arc<dyn StorageDriver>,
    dst: Arc<dyn StorageDriver>,
    plan: Plan,
    options: Options,
    interrupt: &Interrupt,
) -> Result<Report, CliError> {
    let (stop_tx, stop) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let watcher = {
        let interrupt = interrupt.clone();
        let stop_tx = Arc::clone(&stop_tx);
        tokio::spawn(async move {
            interrupt.wait().await;
            stop_tx.send_replace(true);
        })
    };
    let result = copy_and_verify(src, dst, plan, options, &stop, &stop_tx).await;
    watcher.abort();
    result
}

async fn copy_and_verify(
    src: Arc<dyn StorageDriver>,
    dst: Arc<dyn StorageDriver>,
    plan: Plan,
    options: Options,
    stop: &watch::Receiver<bool>,
    stop_tx: &watch::Sender<bool>,
) -> Result<Report, CliError> {
    let mut summary = Summary {
        files: plan.items.len() as u64,
        bytes: plan.bytes(),
        ..Summary::default()
    };
    let started = Instant::now();
    let bar = progress::bytes(Some(plan.bytes_to_copy()), "cp");
    let job = Job {
        src: Arc::clone(&src),
        dst: Arc::clone(&dst),
        stop: stop.clone(),
        bar: bar.clone(),
        hash: options.verify,
    };
    let copies = plan.items.iter().cloned().enumerate().map(|(index, item)| {
        let job = job.clone();
        async move {
            let task = tokio::spawn(async move { file::copy(&job, &item).await });
            let outcome = task.await.unwrap_or_else(|join| {
                Err(Failure::Failed(CliError::new(
                    Class::Backend,
                    format!("cp: a copy task failed: {join}"),
                )))
            });
            (index, outcome)
        }
    });
    let mut results = futures::stream::iter(copies).buffer_unordered(options.jobs);
    let mut digests: Vec<Option<Digest>> = vec![None; plan.items.len()];
    let mut first_error = None;
    let mut stopped = false;
    while let Some((index, outcome)) = results.next().await {
        match outcome {
            Ok(outcome) => {
                summary.add(plan.items[index].size, &outcome);
                if let Outcome::Copied {
                    digest: Some(digest),
                    ..
                } = outcome
                {
                    digests[index] = Some(digest);
                }
            }
            Err(Failure::Stopped) => stopped = true,
            Err(Failure::Failed(err)) => {
                first_error.get_or_insert(err);
                stop_tx.send_replace(true);
            }
        }
    }
    drop(results);
    bar.finish_and_clear();
    summary.copy_time = started.elapsed();
    if let Some(err) = first_error {
        return Err(err);
    }
    if stopped || *stop.borrow() {
        return Err(CliError::interrupted());
    }
    let mut mismatches = Vec::new();
    if options.verify {
        let started = Instant::now();
        let to_read: u64 = plan
            .items
            .iter()
            .zip(&digests)
            .map(|(item, known)| if known.is_some() { 0 } else { item.size } + item.size)
            .sum();
        let bar = progress::bytes(Some(to_read), "verify");
        let items = plan.items.into_iter().zip(digests).collect();
        let checked = verify::all(&src, &dst, items, options.jobs, stop, &bar).await;
        bar.finish_and_clear();
        mismatches = checked?;
        summary.verified = Some(summary.files);
        summary.mismatched = mismatches.len() as u64;
        summary.verify_time = started.elapsed();
    }
    Ok(Report {
        summary,
        mismatches,
    })
}
