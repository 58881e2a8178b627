//! Durations as Go writes them (`20m`, `1h30m`, `90s`, `1.5h`), for `url --expires` and
//! `check --case-timeout`.

use std::time::Duration;

/// Parses a duration with the drivers' one parser of Go durations
/// ([`storagedriver::params::parse_duration`]). Used as a clap value parser, so the error is
/// the message clap shows.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    storagedriver::params::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration: expected e.g. 20m, 1h30m, 90s or 3600"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_durations() {
        let secs = Duration::from_secs;
        assert_eq!(parse("20m"), Ok(secs(1200)));
        assert_eq!(parse("1h30m"), Ok(secs(5400)));
        assert_eq!(parse("90s"), Ok(secs(90)));
        assert_eq!(parse("1.5h"), Ok(secs(5400)));
        assert_eq!(parse("3600"), Ok(secs(3600)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "m", "20 minutes", "-5m", "1d", "1..5s", "1e400h"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
