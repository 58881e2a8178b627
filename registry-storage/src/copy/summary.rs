//! What a copy did, added up: the summary line and its JSON.

use std::time::Duration;

use serde_json::{Value, json};

use super::file::Outcome;
use crate::output::human_size;

/// The totals of a copy.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Summary {
    /// Files below the source.
    pub(crate) files: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
    /// Files written and committed in this run, resumed ones included.
    pub(crate) copied: u64,
    /// Of those, files that continued from what their destination writer held.
    pub(crate) resumed: u64,
    /// The bytes those writers held already.
    pub(crate) resumed_bytes: u64,
    /// Files skipped: the destination held them whole.
    pub(crate) skipped: u64,
    /// Their bytes.
    pub(crate) skipped_bytes: u64,
    /// Bytes read from the source and written to the destination in this run.
    pub(crate) moved: u64,
    /// Files verified (`None` without `--verify`).
    pub(crate) verified: Option<u64>,
    /// Files whose copy differs from the source.
    pub(crate) mismatched: u64,
    /// How long the copy took (verification excluded).
    pub(crate) copy_time: Duration,
    /// How long the verification took.
    pub(crate) verify_time: Duration,
}

impl Summary {
    /// Counts one file's outcome.
    pub(crate) fn add(&mut self, size: u64, outcome: &Outcome) {
        match outcome {
            Outcome::Skipped => {
                self.skipped += 1;
                self.skipped_bytes += size;
            }
            Outcome::Copied { moved, resumed, .. } => {
                self.copied += 1;
                self.moved += moved;
                if *resumed > 0 {
                    self.resumed += 1;
                    self.resumed_bytes += resumed;
                }
            }
        }
    }

    /// The summary line.
    pub(crate) fn line(&self) -> String {
        let seconds = self.copy_time.as_secs_f64();
        let rate = if seconds > 0.0 {
            format!(", {}/s", human_size((self.moved as f64 / seconds) as u64))
        } else {
            String::new()
        };
        let verified = match self.verified {
            None => "not verified".to_owned(),
            Some(n) if self.mismatched > 0 => {
                format!("verified {n}: {} differ", self.mismatched)
            }
            Some(n) => format!(
                "verified {n} (size and SHA-256) in {:.1} s",
                self.verify_time.as_secs_f64()
            ),
        };
        format!(
            "copied {} of {} files ({} resumed, {} already there), skipped {}, moved {} of {} in {seconds:.1} s{rate}; {verified}\n",
            self.copied,
            self.files,
            self.resumed,
            human_size(self.resumed_bytes),
            self.skipped,
            human_size(self.moved),
            human_size(self.bytes),
        )
    }

    /// The summary as JSON.
    pub(crate) fn json(&self) -> Value {
        json!({
            "files": self.files,
            "bytes": self.bytes,
            "copied": self.copied,
            "resumed": self.resumed,
            "resumed_bytes": self.resumed_bytes,
            "skipped": self.skipped,
            "skipped_bytes": self.skipped_bytes,
            "moved": self.moved,
            "verified": self.verified,
            "mismatched": self.mismatched,
            "copy_seconds": self.copy_time.as_secs_f64(),
            "verify_seconds": self.verify_time.as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_add_up() {
        let mut summary = Summary {
            files: 3,
            bytes: 30,
            ..Summary::default()
        };
        summary.add(10, &Outcome::Skipped);
        summary.add(
            10,
            &Outcome::Copied {
                moved: 10,
                resumed: 0,
                digest: None,
            },
        );
        summary.add(
            10,
            &Outcome::Copied {
                moved: 4,
                resumed: 6,
                digest: None,
            },
        );
        assert_eq!(
            (
                summary.copied,
                summary.resumed,
                summary.resumed_bytes,
                summary.skipped,
                summary.moved
            ),
            (2, 1, 6, 1, 14)
        );
        assert_eq!(summary.skipped_bytes, 10);
        let line = summary.line();
        assert!(
            line.starts_with("copied 2 of 3 files (1 resumed, 6 B already there), skipped 1, moved 14 B of 30 B in 0.0 s; not verified"),
            "{line}"
        );
        assert_eq!(summary.json()["verified"], Value::Null);
    }
}
