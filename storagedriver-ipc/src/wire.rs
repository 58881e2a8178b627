//! The JSON side of the protocol, in one place: requests, responses, errors, file infos,
//! capabilities and the handshake.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use storagedriver::error::Message;
use storagedriver::{Capabilities, Error, ErrorKind, FileInfo, Method, Retry};

/// The `protocol` field of `HELLO`.
pub(crate) const PROTOCOL_NAME: &str = "registry-storage-ipc";

/// `HELLO`'s payload.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello<'a> {
    #[serde(borrow)]
    pub(crate) protocol: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) version: Cow<'a, str>,
}

/// `WELCOME`'s payload.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Welcome {
    pub(crate) version: String,
    pub(crate) driver: String,
    #[serde(default)]
    pub(crate) capabilities: Capabilities,
}

/// `FATAL`'s payload.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Fatal {
    pub(crate) message: String,
}

impl Fatal {
    /// The payload of a `FATAL` saying `message`.
    pub(crate) fn payload(message: &str) -> Vec<u8> {
        serde_json::json!({ "message": message })
            .to_string()
            .into_bytes()
    }

    /// The message of a `FATAL` payload (its text, when it is not the JSON it should be).
    pub(crate) fn message(payload: &[u8]) -> String {
        serde_json::from_slice::<Fatal>(payload)
            .map(|f| f.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(payload).into_owned())
    }
}

/// The major part of a `"MAJOR.MINOR"` version.
pub(crate) fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

/// The minor part of a `"MAJOR.MINOR"` version (0 when it has none or it is not a number).
pub(crate) fn minor(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// True when two versions can talk: same major.
pub(crate) fn compatible(a: &str, b: &str) -> bool {
    major(a) == major(b)
}

/// The minor version whose rules apply between peers of versions `a` and `b` (of the same
/// major): the lower one.
pub(crate) fn negotiated_minor(a: &str, b: &str) -> u32 {
    minor(a).min(minor(b))
}

/// The first minor version whose `FILEINFO` carries `mod_time_s` and `mod_time_nanos` instead
/// of `mod_time_ns`.
pub(crate) const SPLIT_TIME_MINOR: u32 = 2;

/// The first minor version whose walks stream: `WALK_ENTRY` frames run ahead within a window
/// the client grants with `CREDIT`, and `WALK_CONTROL` only says skip (with the directory) or
/// stop.
pub(crate) const STREAMED_WALK_MINOR: u32 = 3;

/// The window of a streamed walk's entries (bytes of `WALK_ENTRY` payloads) before any
/// `CREDIT`.
pub(crate) const WALK_WINDOW: u64 = 64 * 1024;

/// The largest integer on the wire: 2^53 − 1, the largest that every JSON parser (an IEEE
/// double) reads exactly. Ids, handles, sizes, offsets and durations never exceed it (but
/// `mod_time_ns` under protocol 1.0 and 1.1).
pub(crate) const MAX_EXACT: u64 = (1 << 53) - 1;

/// `Err` naming `field` when `value` is above [`MAX_EXACT`].
pub(crate) fn check_exact(field: &str, value: u64) -> Result<(), String> {
    if value > MAX_EXACT {
        return Err(format!(
            "`{field}` is {value}, above 2^53 - 1, the largest integer the protocol carries"
        ));
    }
    Ok(())
}

/// `method` of `url_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum MethodWire {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "HEAD")]
    Head,
}

impl From<Method> for MethodWire {
    fn from(m: Method) -> Self {
        match m {
            Method::Get => MethodWire::Get,
            Method::Head => MethodWire::Head,
        }
    }
}

impl From<MethodWire> for Method {
    fn from(m: MethodWire) -> Self {
        match m {
            MethodWire::Get => Method::Get,
            MethodWire::Head => Method::Head,
        }
    }
}

/// How a writer handle ends: its four finishing requests, one op each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// `writer_close`: keep the content for a later `writer(path, append = true)`.
    Close,
    /// `writer_cancel`: discard the content.
    Cancel,
    /// `writer_commit`: publish the content.
    Commit,
    /// `writer_drop`: the client dropped the writer while it was open.
    Drop,
}

impl Finish {
    /// The request's `op`.
    pub(crate) fn op(self) -> &'static str {
        match self {
            Finish::Close => "writer_close",
            Finish::Cancel => "writer_cancel",
            Finish::Commit => "writer_commit",
            Finish::Drop => "writer_drop",
        }
    }

    /// The finishing request of writer handle `handle`.
    pub(crate) fn request(self, handle: u64) -> Request<'static> {
        match self {
            Finish::Close => Request::WriterClose { handle },
            Finish::Cancel => Request::WriterCancel { handle },
            Finish::Commit => Request::WriterCommit { handle },
            Finish::Drop => Request::WriterDrop { handle },
        }
    }
}

/// A request; `op` names the variant.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Request<'a> {
    GetContent {
        #[serde(borrow)]
        path: Cow<'a, str>,
    },
    PutContent {
        #[serde(borrow)]
        path: Cow<'a, str>,
    },
    Reader {
        #[serde(borrow)]
        path: Cow<'a, str>,
        offset: u64,
    },
    Writer {
        #[serde(borrow)]
        path: Cow<'a, str>,
        append: bool,
    },
    WriterClose {
        handle: u64,
    },
    WriterCancel {
        handle: u64,
    },
    WriterCommit {
        handle: u64,
    },
    WriterDrop {
        handle: u64,
    },
    Stat {
        #[serde(borrow)]
        path: Cow<'a, str>,
    },
    List {
        #[serde(borrow)]
        path: Cow<'a, str>,
    },
    Rename {
        #[serde(borrow)]
        source: Cow<'a, str>,
        #[serde(borrow)]
        dest: Cow<'a, str>,
    },
    Delete {
        #[serde(borrow)]
        path: Cow<'a, str>,
    },
    UrlFor {
        #[serde(borrow)]
        path: Cow<'a, str>,
        method: MethodWire,
        expires_in_ms: u64,
    },
    Walk {
        #[serde(borrow)]
        path: Cow<'a, str>,
        #[serde(borrow, default)]
        start_after: Option<Cow<'a, str>>,
    },
}

impl Request<'_> {
    /// The `op` of the request.
    pub(crate) fn op(&self) -> &'static str {
        match self {
            Request::GetContent { .. } => "get_content",
            Request::PutContent { .. } => "put_content",
            Request::Reader { .. } => "reader",
            Request::Writer { .. } => "writer",
            Request::WriterClose { .. } => Finish::Close.op(),
            Request::WriterCancel { .. } => Finish::Cancel.op(),
            Request::WriterCommit { .. } => Finish::Commit.op(),
            Request::WriterDrop { .. } => Finish::Drop.op(),
            Request::Stat { .. } => "stat",
            Request::List { .. } => "list",
            Request::Rename { .. } => "rename",
            Request::Delete { .. } => "delete",
            Request::UrlFor { .. } => "url_for",
            Request::Walk { .. } => "walk",
        }
    }

    /// The path the request is about, for errors and spans.
    pub(crate) fn path(&self) -> Option<&str> {
        match self {
            Request::GetContent { path }
            | Request::PutContent { path }
            | Request::Reader { path, .. }
            | Request::Writer { path, .. }
            | Request::Stat { path }
            | Request::List { path }
            | Request::Delete { path }
            | Request::UrlFor { path, .. }
            | Request::Walk { path, .. } => Some(path),
            Request::Rename { source, .. } => Some(source),
            Request::WriterClose { .. }
            | Request::WriterCancel { .. }
            | Request::WriterCommit { .. }
            | Request::WriterDrop { .. } => None,
        }
    }

    /// `Err` when an integer field is above [`MAX_EXACT`] (a malformed request).
    pub(crate) fn check_numbers(&self) -> Result<(), String> {
        match self {
            Request::Reader { offset, .. } => check_exact("offset", *offset),
            Request::UrlFor { expires_in_ms, .. } => check_exact("expires_in_ms", *expires_in_ms),
            Request::WriterClose { handle }
            | Request::WriterCancel { handle }
            | Request::WriterCommit { handle }
            | Request::WriterDrop { handle } => check_exact("handle", *handle),
            _ => Ok(()),
        }
    }

    /// The JSON text of the request.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        // Serializing these plain structs cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Why a request payload was not understood.
#[derive(Debug)]
pub(crate) enum BadRequest {
    /// Not JSON at all: a protocol error.
    NotJson(String),
    /// JSON, but an unknown op or a missing field: a `backend` error for that request.
    Unknown { op: Option<String>, message: String },
}

/// Parses a `REQUEST` payload.
pub(crate) fn parse_request(payload: &[u8]) -> Result<Request<'_>, BadRequest> {
    match serde_json::from_slice::<Request<'_>>(payload) {
        Ok(request) => Ok(request),
        Err(e) => match serde_json::from_slice::<serde_json::Value>(payload) {
            Err(_) => Err(BadRequest::NotJson(e.to_string())),
            Ok(value) => Err(BadRequest::Unknown {
                op: value
                    .get("op")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned),
                message: format!("request not understood: {e}"),
            }),
        },
    }
}

/// `ERROR`: `kind` (the name of an [`ErrorKind`]), `driver`, and the fields of that kind (see
/// PROTOCOL.md, "Errors"). Every field but `kind` and `driver` is kept as JSON, so that a field
/// that only another kind has is ignored whatever its type; [`ErrorWire::into_error`] checks
/// the fields of the error's own kind.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ErrorWire {
    kind: String,
    driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operation: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<serde_json::Value>,
}

/// A string field of the wire form.
fn text(s: &str) -> Option<serde_json::Value> {
    Some(serde_json::Value::String(s.to_owned()))
}

/// The string `field` must be, or `None` when it is missing or not a string.
fn string(field: Option<serde_json::Value>) -> Option<String> {
    match field {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    }
}

impl ErrorWire {
    /// The wire form of `err`, naming `driver` (the name the server announced in `WELCOME`,
    /// whatever name the error carries); `operation` and `path` fill a `backend` error for
    /// variants this crate does not know.
    pub(crate) fn from_error(
        err: &Error,
        driver: &str,
        operation: &str,
        path: Option<&str>,
    ) -> ErrorWire {
        let wire = ErrorWire {
            kind: err.kind().as_str().to_owned(),
            driver: driver.to_owned(),
            ..ErrorWire::default()
        };
        match err {
            Error::PathNotFound { path, .. } => ErrorWire {
                path: text(path),
                ..wire
            },
            Error::InvalidPath { path, reason, .. } | Error::Conflict { path, reason, .. } => {
                ErrorWire {
                    path: text(path),
                    reason: text(reason),
                    ..wire
                }
            }
            Error::Unsupported { operation, .. } => ErrorWire {
                operation: text(operation),
                ..wire
            },
            Error::WriterFinished { path, state, .. } => ErrorWire {
                path: text(path),
                state: text(state),
                ..wire
            },
            Error::InvalidParameter { key, reason, .. } => ErrorWire {
                key: text(key),
                reason: text(reason),
                ..wire
            },
            Error::Backend {
                operation,
                path,
                retry,
                source,
                ..
            } => ErrorWire::backend(
                wire,
                operation,
                path.as_deref(),
                *retry == Retry::MayHelp,
                source.to_string(),
            ),
            other => ErrorWire::backend(
                ErrorWire {
                    kind: ErrorKind::Backend.as_str().to_owned(),
                    ..wire
                },
                operation,
                other.path().or(path),
                other.may_retry(),
                other.to_string(),
            ),
        }
    }

    /// `wire` with the fields of a `backend` error.
    fn backend(
        wire: ErrorWire,
        operation: &str,
        path: Option<&str>,
        retry: bool,
        message: String,
    ) -> ErrorWire {
        ErrorWire {
            operation: text(operation),
            // `backend` always carries `path`, `null` when there is none.
            path: Some(path.map_or(serde_json::Value::Null, |p| p.into())),
            retry: Some(retry.into()),
            message: Some(message.into()),
            ..wire
        }
    }

    /// The error the caller sees: the same variant with the same fields, naming `driver`;
    /// `None` for a kind this crate does not know, or a known kind that lacks one of its
    /// fields or has one of the wrong type.
    pub(crate) fn into_error(self, driver: &str) -> Option<Error> {
        let driver = driver.to_owned();
        Some(match ErrorKind::from_name(&self.kind)? {
            ErrorKind::PathNotFound => Error::PathNotFound {
                driver,
                path: string(self.path)?,
            },
            ErrorKind::InvalidPath => Error::InvalidPath {
                driver,
                path: string(self.path)?,
                reason: string(self.reason)?,
            },
            ErrorKind::Conflict => Error::Conflict {
                driver,
                path: string(self.path)?,
                reason: string(self.reason)?,
            },
            ErrorKind::Unsupported => Error::Unsupported {
                driver,
                operation: string(self.operation)?,
            },
            ErrorKind::WriterFinished => Error::WriterFinished {
                driver,
                path: string(self.path)?,
                state: string(self.state)?,
            },
            ErrorKind::InvalidParameter => Error::InvalidParameter {
                driver,
                key: string(self.key)?,
                reason: string(self.reason)?,
            },
            ErrorKind::Backend => Error::Backend {
                driver,
                operation: string(self.operation)?,
                path: match self.path {
                    None | Some(serde_json::Value::Null) => None,
                    some => Some(string(some)?),
                },
                retry: match self.retry {
                    None => Retry::Useless,
                    Some(serde_json::Value::Bool(retry)) => {
                        if retry {
                            Retry::MayHelp
                        } else {
                            Retry::Useless
                        }
                    }
                    Some(_) => return None,
                },
                source: Box::new(Message(string(self.message)?)),
            },
            // A kind added to the trait crate that this crate does not map yet.
            _ => return None,
        })
    }
}

/// Decodes an `ERROR` value of the driver `driver` (the name in `WELCOME`, which every error
/// carries). One this crate does not understand (a kind from a newer minor version, or a known
/// kind missing a field or with a field of the wrong type) becomes a `backend` error carrying
/// its JSON text.
pub(crate) fn error_from_value(
    value: serde_json::Value,
    driver: &str,
    operation: &str,
    path: Option<&str>,
) -> Error {
    let text = value.to_string();
    let known = serde_json::from_value::<ErrorWire>(value)
        .ok()
        .and_then(|wire| wire.into_error(driver));
    known.unwrap_or_else(|| Error::Backend {
        driver: driver.to_owned(),
        operation: operation.to_owned(),
        path: path.map(str::to_owned),
        retry: Retry::Useless,
        source: Box::new(Message(format!("error from the server: {text}"))),
    })
}

/// The `ok` value of a response that is `{"ok":VALUE}` and nothing else, read straight into
/// `T`; `None` for anything else (an error, or a response to look at with
/// [`parse_response`]).
pub(crate) fn parse_ok<T: DeserializeOwned>(payload: &[u8]) -> Option<T> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct OkOnly<T> {
        ok: T,
    }
    serde_json::from_slice::<OkOnly<T>>(payload)
        .ok()
        .map(|r| r.ok)
}

/// A `RESPONSE` payload: `Ok(Ok(value))` for `{"ok":VALUE}`, `Ok(Err(error))` for
/// `{"error":ERROR}`; `Err` saying why when it is neither (not JSON, not an object, both keys
/// or none).
pub(crate) fn parse_response(
    payload: &[u8],
) -> Result<Result<serde_json::Value, serde_json::Value>, String> {
    let mut object = match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(object)) => object,
        Ok(_) => return Err("it is not a JSON object".to_owned()),
        Err(e) => return Err(e.to_string()),
    };
    match (object.remove("ok"), object.remove("error")) {
        (Some(ok), None) => Ok(Ok(ok)),
        (None, Some(error)) => Ok(Err(error)),
        (Some(_), Some(_)) => Err("it has both `ok` and `error`".to_owned()),
        (None, None) => Err("it has neither `ok` nor `error`".to_owned()),
    }
}

/// `{"ok":VALUE}`.
pub(crate) fn ok_json<T: Serialize>(value: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Ok<'a, T> {
        ok: &'a T,
    }
    serde_json::to_vec(&Ok { ok: value }).unwrap_or_else(|_| b"{\"ok\":null}".to_vec())
}

/// `{"error":ERROR}`.
pub(crate) fn error_json(err: &ErrorWire) -> Vec<u8> {
    #[derive(Serialize)]
    struct Err<'a> {
        error: &'a ErrorWire,
    }
    serde_json::to_vec(&Err { error: err }).unwrap_or_default()
}

/// A bare `ERROR` (the payload of a `RESET`).
pub(crate) fn error_json_value(err: &ErrorWire) -> Vec<u8> {
    serde_json::to_vec(err).unwrap_or_default()
}

/// `{"size":N}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SizeWire {
    pub(crate) size: u64,
}

/// `FILEINFO`: the modification time is `mod_time_ns` up to protocol 1.1, `mod_time_s` and
/// `mod_time_nanos` from 1.2 on.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FileInfoWire {
    pub(crate) path: String,
    pub(crate) size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mod_time_ns: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mod_time_s: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mod_time_nanos: Option<u32>,
    pub(crate) is_dir: bool,
}

impl FileInfoWire {
    /// The wire form of `info` under the rules of minor version `minor`; `Err` when its size
    /// is above [`MAX_EXACT`].
    pub(crate) fn new(info: &FileInfo, minor: u32) -> Result<FileInfoWire, String> {
        check_exact("size", info.size)?;
        let (mod_time_ns, mod_time_s, mod_time_nanos) = if minor >= SPLIT_TIME_MINOR {
            let (s, nanos) = time_to_parts(info.mod_time);
            (None, Some(s), Some(nanos))
        } else {
            (Some(time_to_ns(info.mod_time)), None, None)
        };
        Ok(FileInfoWire {
            path: info.path.clone(),
            size: info.size,
            mod_time_ns,
            mod_time_s,
            mod_time_nanos,
            is_dir: info.is_dir,
        })
    }

    /// The file info, read under the rules of minor version `minor`; `Err` saying what breaks
    /// them (a missing time field, nanoseconds out of range, a number above [`MAX_EXACT`]).
    pub(crate) fn into_info(self, minor: u32) -> Result<FileInfo, String> {
        check_exact("size", self.size)?;
        let mod_time = if minor >= SPLIT_TIME_MINOR {
            let (Some(s), Some(nanos)) = (self.mod_time_s, self.mod_time_nanos) else {
                return Err(
                    "FILEINFO lacks `mod_time_s` or `mod_time_nanos` (protocol 1.2)".to_owned(),
                );
            };
            check_exact("mod_time_s", s.unsigned_abs())?;
            if nanos >= NANOS_PER_SECOND {
                return Err(format!("`mod_time_nanos` is {nanos}, not in 0..=999999999"));
            }
            parts_to_time(s, nanos)
        } else {
            let Some(ns) = self.mod_time_ns else {
                return Err("FILEINFO lacks `mod_time_ns` (protocol 1.0 and 1.1)".to_owned());
            };
            ns_to_time(ns)
        };
        Ok(FileInfo {
            path: self.path,
            size: self.size,
            mod_time,
            is_dir: self.is_dir,
        })
    }
}

/// Nanoseconds in a second.
const NANOS_PER_SECOND: u32 = 1_000_000_000;

/// Whole seconds since the Unix epoch (rounded down: negative before it, within ±(2^53 − 1))
/// and the nanoseconds after them (0 to 999,999,999).
pub(crate) fn time_to_parts(t: SystemTime) -> (i64, u32) {
    let max = MAX_EXACT as i64;
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => {
            let s = i64::try_from(d.as_secs()).unwrap_or(max);
            if s > max {
                (max, NANOS_PER_SECOND - 1)
            } else {
                (s, d.subsec_nanos())
            }
        }
        Err(before) => {
            let d = before.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(max);
            let (s, nanos) = match d.subsec_nanos() {
                0 => (-whole, 0),
                n => (-whole - 1, NANOS_PER_SECOND - n),
            };
            if s < -max { (-max, 0) } else { (s, nanos) }
        }
    }
}

/// The time `s` seconds and `nanos` nanoseconds after the Unix epoch (`s` may be negative).
pub(crate) fn parts_to_time(s: i64, nanos: u32) -> SystemTime {
    let whole = Duration::from_secs(s.unsigned_abs());
    let t = if s >= 0 {
        UNIX_EPOCH.checked_add(whole)
    } else {
        UNIX_EPOCH.checked_sub(whole)
    };
    t.and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
        .unwrap_or(UNIX_EPOCH)
}

/// Nanoseconds since the Unix epoch, saturating at the ends of `i64`.
pub(crate) fn time_to_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos())
            .map(|n| -n)
            .unwrap_or(i64::MIN),
    }
}

/// The time `ns` nanoseconds after (or before) the Unix epoch.
pub(crate) fn ns_to_time(ns: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(ns.unsigned_abs());
    let t = if ns >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    t.unwrap_or(UNIX_EPOCH)
}

/// `WALK_CONTROL`'s byte.
pub(crate) fn walk_control_byte(control: storagedriver::WalkControl) -> u8 {
    match control {
        storagedriver::WalkControl::Continue => 0,
        storagedriver::WalkControl::SkipDir => 1,
        storagedriver::WalkControl::Stop => 2,
    }
}

/// What a `WALK_CONTROL` frame says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WalkSignal {
    /// Before 1.3: the answer to the entry just sent (the two sides take turns).
    Turn(storagedriver::WalkControl),
    /// From 1.3: skip everything below this directory (the server may have sent some of it
    /// already: the client drops those).
    Skip(String),
    /// From 1.3: end the walk.
    Stop,
}

/// The signal of a `WALK_CONTROL` payload on a connection whose walks stream (`streamed`) or
/// take turns; `None` when the payload is not one.
pub(crate) fn walk_signal_from(payload: &[u8], streamed: bool) -> Option<WalkSignal> {
    match (streamed, payload) {
        (false, [0]) => Some(WalkSignal::Turn(storagedriver::WalkControl::Continue)),
        (false, [1]) => Some(WalkSignal::Turn(storagedriver::WalkControl::SkipDir)),
        (false, [2]) => Some(WalkSignal::Turn(storagedriver::WalkControl::Stop)),
        (true, [1, dir @ ..]) => std::str::from_utf8(dir)
            .ok()
            .filter(|d| d.starts_with('/'))
            .map(|d| WalkSignal::Skip(d.to_owned())),
        (true, [2]) => Some(WalkSignal::Stop),
        _ => None,
    }
}

/// The `WALK_CONTROL` payload of a streamed walk's skip of `dir`.
pub(crate) fn walk_skip_payload(dir: &str) -> bytes::Bytes {
    let mut payload = Vec::with_capacity(1 + dir.len());
    payload.push(1);
    payload.extend_from_slice(dir.as_bytes());
    payload.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(err: Error) -> Error {
        let err_driver = err.driver().to_owned();
        let wire = ErrorWire::from_error(&err, &err_driver, "op", None);
        let json = error_json(&wire);
        let error = parse_response(&json)
            .expect("parses")
            .expect_err("an error");
        error_from_value(error, &err_driver, "op", None)
    }

    #[test]
    fn errors_keep_variant_and_fields() {
        let cases = vec![
            Error::path_not_found("d", "/a"),
            Error::InvalidPath {
                driver: "d".into(),
                path: "/a/..".into(),
                reason: "dots".into(),
            },
            Error::conflict("d", "/a", "a file is there"),
            Error::unsupported("d", "url_for"),
            Error::WriterFinished {
                driver: "d".into(),
                path: "/w".into(),
                state: "committed".into(),
            },
            Error::invalid_parameter("d", "rootdirectory", "required"),
            Error::backend(
                "d",
                "stat",
                Some("/a"),
                Retry::MayHelp,
                Message("boom".into()),
            ),
            Error::backend("d", "list", None, Retry::Useless, Message("no".into())),
        ];
        for err in cases {
            let debug = format!("{err:?}");
            let back = round_trip(err);
            assert_eq!(
                format!("{back:?}"),
                debug,
                "the same variant, with the same fields"
            );
        }
        let back = round_trip(Error::backend(
            "d",
            "stat",
            Some("/a"),
            Retry::MayHelp,
            Message("boom".into()),
        ));
        assert!(back.may_retry());
        assert_eq!(back.path(), Some("/a"));
        let back = round_trip(Error::path_not_found("fs", "/p"));
        assert!(
            matches!(back, Error::PathNotFound { ref driver, ref path } if driver == "fs" && path == "/p")
        );
    }

    #[test]
    fn unknown_error_kind_becomes_backend() {
        let value = serde_json::json!({"kind":"quota_exceeded","driver":"s3","limit":5});
        let err = error_from_value(value, "s3", "put_content", Some("/a"));
        assert!(matches!(err, Error::Backend { .. }));
        assert_eq!(err.driver(), "s3");
        assert!(err.to_string().contains("quota_exceeded"));
    }

    #[test]
    fn a_known_kind_missing_a_field_becomes_backend_carrying_its_json() {
        let value = serde_json::json!({"kind":"path_not_found","driver":"pydir"});
        let err = error_from_value(value, "pydir", "stat", Some("/a"));
        match &err {
            Error::Backend {
                driver,
                operation,
                path,
                ..
            } => {
                assert_eq!(driver, "pydir");
                assert_eq!(operation, "stat");
                assert_eq!(path.as_deref(), Some("/a"));
            }
            other => panic!("not a backend error: {other:?}"),
        }
        assert!(err.to_string().contains("path_not_found"), "{err}");
        let value = serde_json::json!({"kind":"conflict","driver":"d","path":5,"reason":"r"});
        assert!(matches!(
            error_from_value(value, "d", "put_content", None),
            Error::Backend { .. }
        ));
    }

    #[test]
    fn every_error_names_the_announced_driver() {
        // The server writes its WELCOME name, the client reads it, whatever the error says.
        let inner = Error::path_not_found("inner", "/a");
        let json = error_json_value(&ErrorWire::from_error(&inner, "outer", "stat", None));
        let value: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        assert_eq!(value["driver"], "outer");
        let err = error_from_value(
            serde_json::json!({"kind":"path_not_found","driver":"other","path":"/a"}),
            "outer",
            "stat",
            Some("/a"),
        );
        assert_eq!(err.driver(), "outer");
    }

    #[test]
    fn file_info_by_version() {
        let info = FileInfo {
            path: "/a".into(),
            size: 7,
            mod_time: parts_to_time(1_700_000_000, 123_456_789),
            is_dir: false,
        };
        let old = serde_json::to_value(FileInfoWire::new(&info, 1).expect("fits")).expect("JSON");
        assert_eq!(
            old,
            serde_json::json!({"path":"/a","size":7,"mod_time_ns":1_700_000_000_123_456_789i64,"is_dir":false})
        );
        let new = serde_json::to_value(FileInfoWire::new(&info, 2).expect("fits")).expect("JSON");
        assert_eq!(
            new,
            serde_json::json!({"path":"/a","size":7,"mod_time_s":1_700_000_000,"mod_time_nanos":123_456_789,"is_dir":false})
        );
        for (value, minor) in [(old.clone(), 1), (new.clone(), 2)] {
            let wire: FileInfoWire = serde_json::from_value(value).expect("parses");
            assert_eq!(wire.into_info(minor).expect("valid"), info);
        }
        // Each version requires its own fields.
        let wire: FileInfoWire = serde_json::from_value(old).expect("parses");
        assert!(
            wire.into_info(2)
                .expect_err("1.2 needs mod_time_s")
                .contains("mod_time_s")
        );
        let wire: FileInfoWire = serde_json::from_value(new).expect("parses");
        assert!(
            wire.into_info(1)
                .expect_err("1.1 needs mod_time_ns")
                .contains("mod_time_ns")
        );
        let bad = serde_json::json!({"path":"/a","size":1,"mod_time_s":0,"mod_time_nanos":1_000_000_000u32,"is_dir":false});
        let wire: FileInfoWire = serde_json::from_value(bad).expect("parses");
        assert!(wire.into_info(2).is_err(), "nanoseconds out of range");
        let big = FileInfo {
            size: MAX_EXACT + 1,
            ..info
        };
        assert!(
            FileInfoWire::new(&big, 2).is_err(),
            "a size beyond 2^53 - 1"
        );
    }

    #[test]
    fn a_response_is_ok_or_error() {
        assert_eq!(
            parse_response(br#"{"ok":null}"#).expect("valid"),
            Ok(serde_json::Value::Null)
        );
        assert!(
            parse_response(br#"{"error":{"kind":"x"}}"#)
                .expect("valid")
                .is_err()
        );
        for bad in [&b"{}"[..], br#"{"ok":1,"error":{}}"#, b"[1]", b"{"] {
            assert!(
                parse_response(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn time_parts_round_trip_and_round_down() {
        for (s, nanos) in [
            (0i64, 0u32),
            (1, 1),
            (-1, 0),
            (-1, 999_999_999),
            (-5, 500),
            (1_700_000_000, 5),
        ] {
            assert_eq!(time_to_parts(parts_to_time(s, nanos)), (s, nanos));
        }
        // Half a second before the epoch is second -1 plus 500 ms.
        let t = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(time_to_parts(t), (-1, 500_000_000));
        assert_eq!(time_to_parts(ns_to_time(-1)), (-1, 999_999_999));
    }

    #[test]
    fn request_numbers_are_exact() {
        let r = parse_request(br#"{"op":"reader","path":"/a","offset":9007199254740991}"#)
            .expect("valid");
        assert!(r.check_numbers().is_ok());
        let r = parse_request(br#"{"op":"reader","path":"/a","offset":9007199254740992}"#)
            .expect("valid");
        assert!(r.check_numbers().expect_err("2^53").contains("offset"));
        let r = parse_request(br#"{"op":"writer_commit","handle":18446744073709551615}"#)
            .expect("valid");
        assert!(r.check_numbers().is_err());
    }

    #[test]
    fn requests_parse_and_reject() {
        let r = parse_request(br#"{"op":"reader","path":"/a","offset":5}"#).expect("valid");
        assert!(matches!(r, Request::Reader { offset: 5, .. }));
        match parse_request(br#"{"op":"frobnicate","path":"/a"}"#) {
            Err(BadRequest::Unknown { op, .. }) => assert_eq!(op.as_deref(), Some("frobnicate")),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse_request(br#"{"op":"stat"}"#),
            Err(BadRequest::Unknown { .. })
        ));
        assert!(matches!(
            parse_request(b"{nope"),
            Err(BadRequest::NotJson(_))
        ));
        let w = parse_request(br#"{"op":"walk","path":"/","start_after":null,"extra":1}"#)
            .expect("extra fields are ignored");
        assert!(matches!(
            w,
            Request::Walk {
                start_after: None,
                ..
            }
        ));
        let json = Request::UrlFor {
            path: "/a".into(),
            method: MethodWire::Head,
            expires_in_ms: 1000,
        }
        .to_json();
        assert_eq!(
            std::str::from_utf8(&json).expect("utf-8"),
            r#"{"op":"url_for","path":"/a","method":"HEAD","expires_in_ms":1000}"#
        );
    }

    #[test]
    fn times_round_trip() {
        for ns in [0i64, 1, -1, 1_700_000_000_123_456_789, -5_000_000_000] {
            assert_eq!(time_to_ns(ns_to_time(ns)), ns);
        }
    }

    #[test]
    fn versions() {
        assert!(compatible("1.0", "1.7"));
        assert!(!compatible("1.0", "2.0"));
        assert_eq!((minor("1.0"), minor("1.1"), minor("1.12")), (0, 1, 12));
        assert_eq!((minor("1"), minor("1.x")), (0, 0));
        assert_eq!(negotiated_minor("1.2", "1.1"), 1);
        assert_eq!(negotiated_minor("1.2", "1.9"), 2);
        assert_eq!(major("3"), "3");
    }
}
