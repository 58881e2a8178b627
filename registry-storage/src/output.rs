//! How entries, sizes, times and bars are shown: the text a user reads and the JSON a
//! script reads.

use std::io::Write;
use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use storagedriver::FileInfo;

use crate::exit::CliError;

/// A size in bytes with binary units: `512 B`, `1.5 KiB`, `20.0 MiB`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A modification time for people: `2025-06-01 12:00:05` (UTC).
pub(crate) fn short_time(time: SystemTime) -> String {
    DateTime::<Utc>::from(time)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A modification time for scripts: RFC 3339 in UTC, to the precision the driver keeps.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// An entry as JSON: `{"path", "size", "mod_time", "is_dir"}`.
pub(crate) fn info_json(info: &FileInfo) -> Value {
    json!({
        "path": info.path,
        "size": info.size,
        "mod_time": rfc3339(info.mod_time),
        "is_dir": info.is_dir,
    })
}

/// A path for people: directories end in `/` (the root is `/` already).
pub(crate) fn shown_path(info: &FileInfo) -> String {
    if info.is_dir && info.path != "/" {
        format!("{}/", info.path)
    } else {
        info.path.clone()
    }
}

/// A line of `ls -l`: type, size (bytes, or human with `human`), time, path.
pub(crate) fn long_line(info: &FileInfo, human: bool) -> String {
    let (kind, size) = if info.is_dir {
        ('d', "-".to_owned())
    } else if human {
        ('-', human_size(info.size))
    } else {
        ('-', info.size.to_string())
    };
    format!(
        "{kind} {size:>12}  {}  {}",
        short_time(info.mod_time),
        shown_path(info)
    )
}

/// A bar `width` cells wide, filled in proportion `part / whole`, in eighths of a cell.
pub(crate) fn bar(part: u64, whole: u64, width: usize) -> String {
    const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let eighths = if whole == 0 {
        0
    } else {
        ((part as u128 * width as u128 * 8 + whole as u128 / 2) / whole as u128) as usize
    };
    let eighths = eighths.min(width * 8);
    let mut out = "█".repeat(eighths / 8);
    if eighths % 8 != 0 {
        out.push(EIGHTHS[eighths % 8]);
    }
    let cells = out.chars().count();
    out.extend(std::iter::repeat_n(' ', width - cells));
    out
}

/// Writes `text` to stdout (unlike `print!`, a closed stdout is an error, not a panic).
pub(crate) fn print_text(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::stdout(&e))
}

/// Writes one line to stderr; a stderr that cannot be written to is ignored.
pub(crate) fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "registry-storage: {line}");
}

/// Writes `value` to stdout as pretty JSON, with a final newline.
pub(crate) fn print_json(value: &Value) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush())
        .map_err(|e| CliError::stdout(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(20 << 20), "20.0 MiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn times() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_748_779_205, 120_000_000);
        assert_eq!(short_time(t), "2025-06-01 12:00:05");
        assert_eq!(rfc3339(t), "2025-06-01T12:00:05.120Z");
    }

    #[test]
    fn bars_are_proportional_and_fixed_width() {
        assert_eq!(bar(1, 1, 4), "████");
        assert_eq!(bar(0, 1, 4), "    ");
        assert_eq!(bar(1, 2, 4), "██  ");
        assert_eq!(bar(1, 8, 1), "▏");
        assert_eq!(bar(5, 0, 3), "   ");
        for part in 0..=100 {
            assert_eq!(bar(part, 100, 10).chars().count(), 10);
        }
    }

    #[test]
    fn long_lines() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_748_779_205);
        assert_eq!(
            long_line(&FileInfo::file("/a/data", 1536, t), false),
            "-         1536  2025-06-01 12:00:05  /a/data"
        );
        assert_eq!(
            long_line(&FileInfo::file("/a/data", 1536, t), true),
            "-      1.5 KiB  2025-06-01 12:00:05  /a/data"
        );
        assert_eq!(
            long_line(&FileInfo::dir("/a", t), false),
            "d            -  2025-06-01 12:00:05  /a/"
        );
    }
}
