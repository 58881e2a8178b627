//! Progress on stderr, shown only when stderr is a terminal (never in pipes, logs or tests).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// True when progress may be drawn: stderr is a terminal.
pub(crate) fn enabled() -> bool {
    std::io::stderr().is_terminal()
}

/// True when progress may be drawn while output streams to stdout: stderr is a terminal and
/// stdout is not the same screen (a bar between the lines of a listing would garble both).
pub(crate) fn enabled_beside_stdout() -> bool {
    enabled() && !std::io::stdout().is_terminal()
}

/// A bar of bytes moved, with rate and time left when `total` is known, else a counter.
pub(crate) fn bytes(total: Option<u64>, message: &str) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "[{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        None => ProgressBar::no_length().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A spinner counting the entries of a walk; `beside_stdout` when the walk's entries are
/// written to stdout as they come.
pub(crate) fn entries(message: &str, beside_stdout: bool) -> ProgressBar {
    let shown = if beside_stdout {
        enabled_beside_stdout()
    } else {
        enabled()
    };
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::no_length().with_style(
        ProgressStyle::with_template("{spinner} {human_pos} entries {elapsed} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar of `total` items (`unit`: `cases`), with the current item as its message.
pub(crate) fn counter(total: u64, unit: &str) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(&format!(
            "[{{bar:30}}] {{pos}}/{{len}} {unit} {{elapsed}} {{wide_msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
