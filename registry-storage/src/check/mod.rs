//! `check`'s engine: runs the conformance suite's cases ([`testsuites::CASES`], the list
//! `register_in_process_suite!` generates its tests from) one after the other on the selected
//! driver, each on a fresh store ([`scratch`]), each in a task of its own so that a panicking
//! case (how a behaviour reports a broken rule) becomes its failure instead of ending the tool.
//! [`report`] prints the outcomes.

pub(crate) mod report;
pub(crate) mod scratch;

use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use storagedriver::Capabilities;
use testsuites::cases::{CaseFn, Ctx};

use crate::exit::CliError;
use crate::interrupt::Interrupt;
use crate::output;
use crate::panics::{QuietPanics, panic_reason};

use self::scratch::Scratch;

/// Whether a driver has a capability.
type HasCapability = fn(&Capabilities) -> bool;

/// The cases that check an optional capability, and the capability: without it they only check
/// that the driver says `Unsupported`, and are reported as skipped when they pass.
const CAPABILITY_CASES: &[(&str, &str, HasCapability)] = &[
    ("url_for_get_and_head", "url_for", |c| c.url_for),
    ("append_to_committed", "append_to_committed", |c| {
        c.append_to_committed
    }),
];

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// The driver keeps every rule the case checks.
    Pass,
    /// The case failed: the first line of its panic message.
    Fail(String),
    /// The case did not apply, and why.
    Skipped(String),
}

/// One case's result.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// The case's name (the suite's test name).
    pub(crate) case: &'static str,
    /// How it ended.
    pub(crate) status: Status,
    /// How long it ran, fixtures included.
    pub(crate) elapsed: Duration,
}

/// The suite's cases whose name contains `filter` (every case without one), in the suite's
/// order.
pub(crate) fn cases(filter: Option<&str>) -> Vec<(&'static str, CaseFn)> {
    testsuites::CASES
        .iter()
        .filter(|(name, _)| filter.is_none_or(|f| name.contains(f)))
        .copied()
        .collect()
}

/// How long a case that does not finish is given to end once it is aborted.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// Runs `cases` one by one, each on its own scratch store, which goes afterwards; calls
/// `done` with each outcome as it comes. `bar` counts the cases (hidden when stderr is not a
/// terminal). A case that takes longer than `case_timeout` is aborted and fails (a driver that
/// never answers must not hang the check). Ctrl-C stops the case, cleans up and ends with
/// [`CliError::interrupted`].
pub(crate) async fn run(
    scratch: &Scratch,
    cases: &[(&'static str, CaseFn)],
    case_timeout: Duration,
    capabilities: Capabilities,
    interrupt: &Interrupt,
    bar: &ProgressBar,
    mut done: impl FnMut(&Outcome) -> Result<(), CliError>,
) -> Result<Vec<Outcome>, CliError> {
    let _quiet = QuietPanics::install();
    let mut outcomes = Vec::with_capacity(cases.len());
    for &(name, case) in cases {
        bar.set_message(name);
        let refusals = scratch.refusals();
        let started = Instant::now();
        let make = scratch.fixtures_for(name);
        let mut task = tokio::spawn(async move {
            let fixture = make().await;
            let ctx = Ctx { fixture, make };
            case(&ctx).await;
        });
        let joined = tokio::select! {
            joined = &mut task => Some(joined),
            () = tokio::time::sleep(case_timeout) => {
                task.abort();
                // A case stuck outside an await cannot be aborted: go on without it.
                let _ = tokio::time::timeout(ABORT_GRACE, task).await;
                None
            }
            () = interrupt.wait() => {
                task.abort();
                // The case's writers and streams are dropped before the store goes.
                let _ = task.await;
                clean(scratch, bar).await;
                return Err(CliError::interrupted());
            }
        };
        let status = match joined {
            None => Status::Fail(format!(
                "no result after {case_timeout:?} (the driver stopped answering, or is too \
                 slow for the case: raise --case-timeout)"
            )),
            Some(Ok(())) => {
                capability_note(name, &capabilities).map_or(Status::Pass, Status::Skipped)
            }
            Some(Err(_)) if scratch.refusals() > refusals => Status::Skipped(format!(
                "it needs paths of up to {} bytes, which do not fit below the check's scratch \
                 prefix on this driver",
                storagedriver::path::MAX_PATH_LEN
            )),
            Some(Err(join)) if join.is_panic() => Status::Fail(panic_reason(join.into_panic())),
            Some(Err(join)) => Status::Fail(format!("the case's task ended: {join}")),
        };
        clean(scratch, bar).await;
        let outcome = Outcome {
            case: name,
            status,
            elapsed: started.elapsed(),
        };
        bar.inc(1);
        done(&outcome)?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Deletes the scratch space; a failure is a note (the next case uses another scope anyway).
async fn clean(scratch: &Scratch, bar: &ProgressBar) {
    match scratch.clean().await {
        Ok(()) => {}
        Err(e) => bar.suspend(|| output::note(&format!("cleaning up after a case: {e}"))),
    }
}

/// Why a passing case counts as skipped: it checks a capability the driver does not have.
fn capability_note(case: &str, capabilities: &Capabilities) -> Option<String> {
    CAPABILITY_CASES
        .iter()
        .find(|(name, _, _)| *name == case)
        .filter(|(_, _, has)| !has(capabilities))
        .map(|(_, capability, _)| {
            format!(
                "the driver does not have the {capability} capability (it answers Unsupported, \
                 as the contract asks)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_once_and_filtered() {
        assert_eq!(cases(None).len(), testsuites::CASES.len());
        let walks = cases(Some("walk_"));
        assert!(!walks.is_empty());
        assert!(walks.iter().all(|(name, _)| name.contains("walk_")));
        assert!(cases(Some("no such case")).is_empty());
    }

    #[test]
    fn capability_cases_are_cases_of_the_suite() {
        for (name, _, _) in CAPABILITY_CASES {
            assert!(
                testsuites::CASES.iter().any(|(case, _)| case == name),
                "{name}"
            );
        }
        let none = Capabilities::new();
        assert!(capability_note("url_for_get_and_head", &none).is_some());
        assert!(capability_note("url_for_get_and_head", &none.with_url_for(true)).is_none());
        assert!(capability_note("list_sorted", &none).is_none());
    }
}
