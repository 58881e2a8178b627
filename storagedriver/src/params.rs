//! Driver parameters: the map a driver is created from, and the one parser of its values.
//!
//! Keys are the Go drivers' names (`rootdirectory`, `maxthreads`, `bucket`, ...). Values may
//! arrive as JSON strings, numbers or booleans: configuration from environment variables is
//! all strings, so `"10485760"` and `10485760` mean the same. A JSON `null` counts as absent.
//! Unknown keys, missing required keys and bad values are [`Error::InvalidParameter`] errors
//! naming the driver and the key.

use std::collections::BTreeMap;

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The parameters a driver is created from.
pub type Parameters = BTreeMap<String, Value>;

/// Reads a [`Parameters`] map for one driver, key by key, and rejects what is left.
///
/// ```
/// use serde_json::json;
/// use storagedriver::params::{ParamReader, Parameters};
///
/// let params: Parameters = serde_json::from_value(json!({
///     "rootdirectory": "/srv/registry",
///     "maxthreads": "50",
///     "fsync": true,
/// })).unwrap();
/// let mut reader = ParamReader::new("filesystem", &params);
/// assert_eq!(reader.string("rootdirectory")?.as_deref(), Some("/srv/registry"));
/// assert_eq!(reader.u64("maxthreads")?, Some(50));
/// assert_eq!(reader.bool("fsync")?, Some(true));
/// reader.finish()?;
///
/// let params: Parameters = serde_json::from_value(json!({ "rootdir": "/x" })).unwrap();
/// let err = ParamReader::new("filesystem", &params).finish().unwrap_err();
/// assert_eq!(err.to_string(), "filesystem: parameter \"rootdir\": unknown parameter (accepted: none)");
/// # Ok::<(), storagedriver::Error>(())
/// ```
#[derive(Debug)]
pub struct ParamReader<'a> {
    driver: &'a str,
    params: Source<'a>,
    accepted: Vec<&'static str>,
    /// The key of the object this reader reads, for a nested reader ([`ParamReader::nested`]).
    within: Option<&'static str>,
}

impl<'a> ParamReader<'a> {
    /// Starts reading `params` for `driver`.
    pub fn new(driver: &'a str, params: &'a Parameters) -> Self {
        ParamReader {
            driver,
            params: Source::Top(params),
            accepted: Vec::new(),
            within: None,
        }
    }

    /// `key` as errors name it: `credentials.type` inside the object `credentials`.
    fn key_name(&self, key: &str) -> String {
        match self.within {
            Some(outer) => format!("{outer}.{key}"),
            None => key.to_owned(),
        }
    }

    fn take(&mut self, key: &'static str) -> Option<&'a Value> {
        self.accepted.push(key);
        self.params.get(key).filter(|v| !v.is_null())
    }

    fn bad(&self, key: &str, expected: &str, got: &Value) -> Error {
        self.invalid(key, format!("expected {expected}, got {got}"))
    }

    /// An [`Error::InvalidParameter`] for `key` of this reader's driver.
    pub fn invalid(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::invalid_parameter(self.driver, self.key_name(key), reason)
    }

    /// An optional string; a number or boolean is taken as its text.
    pub fn string(&mut self, key: &'static str) -> Result<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
            Some(v) => Err(self.bad(key, "a string", v)),
        }
    }

    /// A required string.
    pub fn required_string(&mut self, key: &'static str) -> Result<String> {
        self.string(key)?
            .ok_or_else(|| self.invalid(key, "required, but not given"))
    }

    /// An optional non-negative integer, given as a JSON number or a decimal string.
    pub fn u64(&mut self, key: &'static str) -> Result<Option<u64>> {
        match self.take(key) {
            None => Ok(None),
            Some(v @ Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.bad(key, "a non-negative integer", v)),
            Some(v @ Value::String(s)) => s
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| self.bad(key, "a non-negative integer", v)),
            Some(v) => Err(self.bad(key, "a non-negative integer", v)),
        }
    }

    /// An optional integer within `min..=max`.
    pub fn u64_in(&mut self, key: &'static str, min: u64, max: u64) -> Result<Option<u64>> {
        match self.u64(key)? {
            Some(n) if n < min || n > max => Err(self.invalid(
                key,
                format!("expected an integer from {min} to {max}, got {n}"),
            )),
            other => Ok(other),
        }
    }

    /// An optional boolean: `true`/`false` as JSON booleans or strings (any case).
    pub fn bool(&mut self, key: &'static str) -> Result<Option<bool>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v @ Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(self.bad(key, "true or false", v)),
            },
            Some(v) => Err(self.bad(key, "true or false", v)),
        }
    }

    /// An optional duration in Go's notation: a decimal number and a unit (`ns`, `us`, `µs`,
    /// `ms`, `s`, `m`, `h`), repeated: `"100ms"`, `"1.5s"`, `"1m30s"`. A bare number is
    /// seconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use storagedriver::params::{ParamReader, Parameters};
    ///
    /// let params: Parameters = serde_json::from_value(serde_json::json!({ "retry_delay": "1m30.5s" }))?;
    /// let mut reader = ParamReader::new("azure", &params);
    /// assert_eq!(reader.duration("retry_delay")?, Some(Duration::from_millis(90_500)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn duration(&mut self, key: &'static str) -> Result<Option<Duration>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                match n.as_f64().and_then(|s| Duration::try_from_secs_f64(s).ok()) {
                    Some(duration) => Ok(Some(duration)),
                    None => Err(self.invalid(key, format!("expected a duration, got {n}"))),
                }
            }
            Some(v @ Value::String(s)) => parse_duration(s)
                .map(Some)
                .ok_or_else(|| self.bad(key, "a duration such as \"100ms\" or \"1.5s\"", v)),
            Some(v) => Err(self.bad(key, "a duration", v)),
        }
    }

    /// The object at `key`, read by a reader of its own, whose errors name its keys
    /// `key.inner`; `None` when absent. Call [`ParamReader::finish`] on it to reject its
    /// unknown keys.
    ///
    /// ```
    /// use storagedriver::params::{ParamReader, Parameters};
    ///
    /// let params: Parameters = serde_json::from_value(serde_json::json!({
    ///     "credentials": { "type": "client_secret", "tenant": "t" },
    /// }))?;
    /// let mut reader = ParamReader::new("azure", &params);
    /// let mut credentials = reader.nested("credentials")?.expect("present");
    /// assert_eq!(credentials.string("type")?.as_deref(), Some("client_secret"));
    /// let err = credentials.finish().unwrap_err();
    /// assert!(err.to_string().starts_with("azure: parameter \"credentials.tenant\": unknown parameter"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn nested(&mut self, key: &'static str) -> Result<Option<ParamReader<'a>>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(ParamReader {
                driver: self.driver,
                params: Source::Nested(map),
                accepted: Vec::new(),
                within: Some(key),
            })),
            Some(v) => Err(self.bad(key, "an object", v)),
        }
    }

    /// Ends reading: the first key that was never asked for is an error listing the keys the
    /// driver accepts.
    pub fn finish(self) -> Result<()> {
        match self
            .params
            .keys()
            .into_iter()
            .find(|k| !self.accepted.contains(&k.as_str()))
        {
            None => Ok(()),
            Some(unknown) => {
                let accepted = if self.accepted.is_empty() {
                    "none".to_owned()
                } else {
                    self.accepted.join(", ")
                };
                Err(self.invalid(unknown, format!("unknown parameter (accepted: {accepted})")))
            }
        }
    }
}

/// The map a reader reads: the parameters, or an object nested in them.
#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    Top(&'a Parameters),
    Nested(&'a Map<String, Value>),
}

impl<'a> Source<'a> {
    fn get(self, key: &str) -> Option<&'a Value> {
        match self {
            Source::Top(map) => map.get(key),
            Source::Nested(map) => map.get(key),
        }
    }

    fn keys(self) -> Vec<&'a String> {
        match self {
            Source::Top(map) => map.keys().collect(),
            Source::Nested(map) => map.keys().collect(),
        }
    }
}

/// Parses Go's duration notation (`time.ParseDuration`) for a non-negative duration: a
/// decimal number and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), repeated; a bare number
/// is seconds. `None` for anything else, a negative duration or one too long to hold.
///
/// ```
/// use std::time::Duration;
/// use storagedriver::params::parse_duration;
///
/// assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
/// assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_duration("20 minutes"), None);
/// ```
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let mut rest = text;
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "ns" => 1e-9,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit..];
        total += number * scale;
    }
    if text.is_empty() {
        return None;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("100ms"), Some(ms(100)));
        assert_eq!(parse_duration("1.5s"), Some(ms(1_500)));
        assert_eq!(parse_duration("2m3s"), Some(ms(123_000)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        let huge = "9".repeat(40);
        for bad in [
            "",
            "ms",
            "5 parsecs",
            "-1s",
            "1d",
            "1.2.3s",
            "-3",
            &format!("{huge}h"),
            "1e400",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
