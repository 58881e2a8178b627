//! Driver parameters: the map a driver is created from, and the one parser of its values.
//!
//! Keys are the Go drivers' names (`rootdirectory`, `maxthreads`, `bucket`, ...). Values may
//! arrive as JSON strings, numbers or booleans: configuration from environment variables is
//! all strings, so `"10485760"` and `10485760` mean the same. A JSON `null` counts as absent.
//! Unknown keys, missing required keys and bad values are [`Error::InvalidParameter`] errors
//! naming the driver and the key.

use std::collections::BTreeMap;

use serde_json::Value;

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
    params: &'a Parameters,
    accepted: Vec<&'static str>,
}

impl<'a> ParamReader<'a> {
    /// Starts reading `params` for `driver`.
    pub fn new(driver: &'a str, params: &'a Parameters) -> Self {
        ParamReader {
            driver,
            params,
            accepted: Vec::new(),
        }
    }

    fn take(&mut self, key: &'static str) -> Option<&'a Value> {
        self.accepted.push(key);
        self.params.get(key).filter(|v| !v.is_null())
    }

    fn bad(&self, key: &str, expected: &str, got: &Value) -> Error {
        Error::invalid_parameter(self.driver, key, format!("expected {expected}, got {got}"))
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
            .ok_or_else(|| Error::invalid_parameter(self.driver, key, "required, but not given"))
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
            Some(n) if n < min || n > max => Err(Error::invalid_parameter(
                self.driver,
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

    /// Ends reading: the first key that was never asked for is an error listing the keys the
    /// driver accepts.
    pub fn finish(self) -> Result<()> {
        match self
            .params
            .keys()
            .find(|k| !self.accepted.contains(&k.as_str()))
        {
            None => Ok(()),
            Some(unknown) => {
                let accepted = if self.accepted.is_empty() {
                    "none".to_owned()
                } else {
                    self.accepted.join(", ")
                };
                Err(Error::invalid_parameter(
                    self.driver,
                    unknown.as_str(),
                    format!("unknown parameter (accepted: {accepted})"),
                ))
            }
        }
    }
}
