//! `check`'s output: a row per case as it ends, a summary line, or one JSON document.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Outcome, Status};

/// The width of the case column: the longest case name of the suite.
const CASE_WIDTH: usize = 36;

/// The counts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Summary {
    /// Cases run.
    pub(crate) total: usize,
    /// Cases passed.
    pub(crate) passed: usize,
    /// Cases failed.
    pub(crate) failed: usize,
    /// Cases skipped.
    pub(crate) skipped: usize,
}

impl Summary {
    /// The counts of `outcomes`.
    pub(crate) fn of(outcomes: &[Outcome]) -> Self {
        let mut summary = Summary {
            total: outcomes.len(),
            ..Summary::default()
        };
        for outcome in outcomes {
            match outcome.status {
                Status::Pass => summary.passed += 1,
                Status::Fail(_) => summary.failed += 1,
                Status::Skipped(_) => summary.skipped += 1,
            }
        }
        summary
    }
}

/// The header of the table.
pub(crate) fn header() -> String {
    format!(
        "{:<8} {:<CASE_WIDTH$} {:>8}  DETAIL\n",
        "RESULT", "CASE", "TIME"
    )
}

/// One row: result, case, time and, for a failure or a skip, the reason.
pub(crate) fn row(outcome: &Outcome) -> String {
    let (result, detail) = match &outcome.status {
        Status::Pass => ("pass", ""),
        Status::Fail(reason) => ("fail", reason.as_str()),
        Status::Skipped(reason) => ("skipped", reason.as_str()),
    };
    let line = format!(
        "{result:<8} {:<CASE_WIDTH$} {:>8}  {detail}",
        outcome.case,
        seconds(outcome.elapsed)
    );
    format!("{}\n", line.trim_end())
}

/// The summary line: `driver (how): N cases: P passed, F failed, S skipped in T`.
pub(crate) fn summary_line(driver: &str, summary: &Summary, elapsed: Duration) -> String {
    format!(
        "{driver}: {} cases: {} passed, {} failed, {} skipped in {}\n",
        summary.total,
        summary.passed,
        summary.failed,
        summary.skipped,
        seconds(elapsed)
    )
}

/// The whole run as JSON: `{driver, mode, scratch, cases: [{case, status, reason, seconds}],
/// summary: {total, passed, failed, skipped, seconds}}`.
pub(crate) fn json(
    driver: &str,
    mode: &str,
    scratch: &str,
    outcomes: &[Outcome],
    elapsed: Duration,
) -> Value {
    let summary = Summary::of(outcomes);
    let cases: Vec<Value> = outcomes
        .iter()
        .map(|outcome| {
            let (status, reason) = match &outcome.status {
                Status::Pass => ("pass", Value::Null),
                Status::Fail(reason) => ("fail", json!(reason)),
                Status::Skipped(reason) => ("skipped", json!(reason)),
            };
            json!({
                "case": outcome.case,
                "status": status,
                "reason": reason,
                "seconds": round_ms(outcome.elapsed),
            })
        })
        .collect();
    json!({
        "driver": driver,
        "mode": mode,
        "scratch": scratch,
        "cases": cases,
        "summary": {
            "total": summary.total,
            "passed": summary.passed,
            "failed": summary.failed,
            "skipped": summary.skipped,
            "seconds": round_ms(elapsed),
        },
    })
}

/// Seconds to the millisecond.
fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// A duration for the table: `0.03 s`, `12.4 s`.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(case: &'static str, status: Status) -> Outcome {
        Outcome {
            case,
            status,
            elapsed: Duration::from_millis(1234),
        }
    }

    #[test]
    fn rows_and_summary() {
        assert_eq!(
            row(&outcome("list_sorted", Status::Pass)),
            format!("pass     list_sorted{}   1.23 s\n", " ".repeat(25))
        );
        let failed = row(&outcome(
            "stat_file",
            Status::Fail("size 3, expected 4".into()),
        ));
        assert!(failed.starts_with("fail     stat_file "), "{failed}");
        assert!(failed.ends_with("1.23 s  size 3, expected 4\n"), "{failed}");
        let outcomes = [
            outcome("a", Status::Pass),
            outcome("b", Status::Fail("x".into())),
            outcome("c", Status::Skipped("y".into())),
        ];
        let summary = Summary::of(&outcomes);
        assert_eq!(
            summary_line("pydir", &summary, Duration::from_secs(12)),
            "pydir: 3 cases: 1 passed, 1 failed, 1 skipped in 12.0 s\n"
        );
        let doc = json("pydir", "m", "s", &outcomes, Duration::from_secs(2));
        assert_eq!(doc["summary"]["failed"], 1);
        assert_eq!(doc["cases"][1]["reason"], "x");
        assert_eq!(doc["cases"][0]["reason"], Value::Null);
        assert_eq!(doc["cases"][2]["status"], "skipped");
    }

    #[test]
    fn the_case_column_fits_every_case() {
        for (name, _) in testsuites::CASES {
            assert!(name.len() <= CASE_WIDTH, "{name}");
        }
    }
}
