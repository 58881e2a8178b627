//! Durations as Go writes them (`20m`, `1h30m`, `90s`, `1.5h`), for `url --expires`.

use std::time::Duration;

/// Parses a duration: one or more `<number><unit>` with unit `ms`, `s`, `m` or `h`, or a bare
/// number of seconds. Used as a clap value parser, so the error is the message clap shows.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration: expected e.g. 20m, 1h30m, 90s or 3600");
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut rest = text;
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    if text.is_empty() || !total.is_finite() || total > 1e12 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
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
