//! Panics as results: the silent panic hook of `check` and `bench`, whose cases and benchmarks
//! report a broken rule by panicking, and the first line of a panic's message.

use std::any::Any;
use std::panic::{self, PanicHookInfo};

/// The longest value of an assertion shown in a reason, in characters.
const VALUE_WIDTH: usize = 120;

/// The first line of a panic's message, on one line: with the values of a failed
/// `assert_eq!` (`(left: 5, right: 4)`), and with the next line when the first ends with `:`.
pub(crate) fn panic_reason(payload: Box<dyn Any + Send>) -> String {
    let message = if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panicked without a message".to_owned()
    };
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default().to_owned();
    let rest: Vec<&str> = lines.collect();
    let value = |side: &str| {
        rest.iter()
            .find_map(|line| line.strip_prefix(side))
            .map(|v| shorten(v.trim()))
    };
    if first.starts_with("assertion `left") {
        if let (Some(left), Some(right)) = (value("left:"), value("right:")) {
            return format!("{first} (left: {left}, right: {right})");
        }
    }
    match rest.first() {
        Some(next) if first.ends_with(':') => format!("{first} {}", shorten(next)),
        _ => first,
    }
}

/// `text`, cut to [`VALUE_WIDTH`] characters with `...` when longer.
fn shorten(text: &str) -> String {
    if text.chars().count() <= VALUE_WIDTH {
        return text.to_owned();
    }
    let cut: String = text.chars().take(VALUE_WIDTH).collect();
    format!("{cut}...")
}

/// A panic hook, as [`panic::take_hook`] returns it.
type PanicHook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

/// The panic hook while cases or benchmarks run: silent, so a failing case prints no message or backtrace
/// of its own (its first line is in the table). The previous hook is back on drop.
pub(crate) struct QuietPanics {
    previous: Option<PanicHook>,
}

impl QuietPanics {
    /// Silences panics until the value is dropped.
    pub(crate) fn install() -> Self {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(|_| {}));
        QuietPanics {
            previous: Some(previous),
        }
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            panic::set_hook(previous);
        }
    }
}

impl std::fmt::Debug for QuietPanics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuietPanics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_reasons_are_first_lines() {
        assert_eq!(panic_reason(Box::new("a\nb")), "a");
        assert_eq!(panic_reason(Box::new("a:\n  b\nc")), "a: b");
        assert_eq!(
            panic_reason(Box::new(
                "assertion `left == right` failed: stat size\n  left: 5\n right: 4"
            )),
            "assertion `left == right` failed: stat size (left: 5, right: 4)"
        );
        let long = format!("x:\n{}", "y".repeat(500));
        assert_eq!(
            panic_reason(Box::new(long)).len(),
            "x: ".len() + VALUE_WIDTH + "...".len()
        );
        assert_eq!(panic_reason(Box::new(String::from("x: y\nz"))), "x: y");
        assert_eq!(panic_reason(Box::new(3)), "panicked without a message");
    }
}
