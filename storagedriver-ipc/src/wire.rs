//! The JSON side of the protocol, in one place: requests, responses, errors, file infos,
//! capabilities and the handshake.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use storagedriver::error::Message;
use storagedriver::{Capabilities, Error, FileInfo, Method, Retry};

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
    pub(crate) capabilities: CapsWire,
}

/// `FATAL`'s payload.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Fatal {
    pub(crate) message: String,
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

/// `CAPS`.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct CapsWire {
    pub(crate) url_for: bool,
    pub(crate) append_to_committed: bool,
    pub(crate) persistent: bool,
    pub(crate) detects_file_dir_conflicts: bool,
}

impl From<Capabilities> for CapsWire {
    fn from(c: Capabilities) -> Self {
        CapsWire {
            url_for: c.url_for,
            append_to_committed: c.append_to_committed,
            persistent: c.persistent,
            detects_file_dir_conflicts: c.detects_file_dir_conflicts,
        }
    }
}

impl From<CapsWire> for Capabilities {
    fn from(c: CapsWire) -> Self {
        Capabilities::new()
            .with_url_for(c.url_for)
            .with_append_to_committed(c.append_to_committed)
            .with_persistent(c.persistent)
            .with_file_dir_conflicts(c.detects_file_dir_conflicts)
    }
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
            Request::WriterClose { .. } => "writer_close",
            Request::WriterCancel { .. } => "writer_cancel",
            Request::WriterCommit { .. } => "writer_commit",
            Request::WriterDrop { .. } => "writer_drop",
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

/// `ERROR`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum ErrorWire {
    PathNotFound {
        driver: String,
        path: String,
    },
    InvalidPath {
        driver: String,
        path: String,
        reason: String,
    },
    Conflict {
        driver: String,
        path: String,
        reason: String,
    },
    Unsupported {
        driver: String,
        operation: String,
    },
    WriterFinished {
        driver: String,
        path: String,
        state: String,
    },
    InvalidParameter {
        driver: String,
        key: String,
        reason: String,
    },
    Backend {
        driver: String,
        operation: String,
        #[serde(default)]
        path: Option<String>,
        #[serde(default)]
        retry: bool,
        message: String,
    },
}

impl ErrorWire {
    /// The wire form of `err`; `operation` and `path` fill a `backend` error for variants this
    /// crate does not know.
    pub(crate) fn from_error(err: &Error, operation: &str, path: Option<&str>) -> ErrorWire {
        match err {
            Error::PathNotFound { driver, path } => ErrorWire::PathNotFound {
                driver: driver.clone(),
                path: path.clone(),
            },
            Error::InvalidPath {
                driver,
                path,
                reason,
            } => ErrorWire::InvalidPath {
                driver: driver.clone(),
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::Conflict {
                driver,
                path,
                reason,
            } => ErrorWire::Conflict {
                driver: driver.clone(),
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::Unsupported { driver, operation } => ErrorWire::Unsupported {
                driver: driver.clone(),
                operation: operation.clone(),
            },
            Error::WriterFinished {
                driver,
                path,
                state,
            } => ErrorWire::WriterFinished {
                driver: driver.clone(),
                path: path.clone(),
                state: state.clone(),
            },
            Error::InvalidParameter {
                driver,
                key,
                reason,
            } => ErrorWire::InvalidParameter {
                driver: driver.clone(),
                key: key.clone(),
                reason: reason.clone(),
            },
            Error::Backend {
                driver,
                operation,
                path,
                retry,
                source,
            } => ErrorWire::Backend {
                driver: driver.clone(),
                operation: operation.clone(),
                path: path.clone(),
                retry: *retry == Retry::MayHelp,
                message: source.to_string(),
            },
            other => ErrorWire::Backend {
                driver: other.driver().to_owned(),
                operation: operation.to_owned(),
                path: other.path().or(path).map(str::to_owned),
                retry: other.may_retry(),
                message: other.to_string(),
            },
        }
    }

    /// The error the caller sees: the same variant with the same fields.
    pub(crate) fn into_error(self) -> Error {
        match self {
            ErrorWire::PathNotFound { driver, path } => Error::PathNotFound { driver, path },
            ErrorWire::InvalidPath {
                driver,
                path,
                reason,
            } => Error::InvalidPath {
                driver,
                path,
                reason,
            },
            ErrorWire::Conflict {
                driver,
                path,
                reason,
            } => Error::Conflict {
                driver,
                path,
                reason,
            },
            ErrorWire::Unsupported { driver, operation } => {
                Error::Unsupported { driver, operation }
            }
            ErrorWire::WriterFinished {
                driver,
                path,
                state,
            } => Error::WriterFinished {
                driver,
                path,
                state,
            },
            ErrorWire::InvalidParameter {
                driver,
                key,
                reason,
            } => Error::InvalidParameter {
                driver,
                key,
                reason,
            },
            ErrorWire::Backend {
                driver,
                operation,
                path,
                retry,
                message,
            } => Error::Backend {
                driver,
                operation,
                path,
                retry: if retry {
                    Retry::MayHelp
                } else {
                    Retry::Useless
                },
                source: Box::new(Message(message)),
            },
        }
    }
}

/// Decodes an `ERROR` value. One this crate does not understand (a kind from a newer minor
/// version, say) becomes a `backend` error carrying its JSON text.
pub(crate) fn error_from_value(
    value: serde_json::Value,
    driver: &str,
    operation: &str,
    path: Option<&str>,
) -> Error {
    let text = value.to_string();
    match serde_json::from_value::<ErrorWire>(value.clone()) {
        Ok(wire) => wire.into_error(),
        Err(_) => Error::Backend {
            driver: value
                .get("driver")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(driver)
                .to_owned(),
            operation: operation.to_owned(),
            path: path.map(str::to_owned),
            retry: Retry::Useless,
            source: Box::new(Message(format!("error from the server: {text}"))),
        },
    }
}

/// A `RESPONSE` payload, both forms.
#[derive(Debug, Deserialize)]
pub(crate) struct ResponseWire {
    #[serde(default)]
    pub(crate) ok: serde_json::Value,
    #[serde(default)]
    pub(crate) error: Option<serde_json::Value>,
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

/// `FILEINFO`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FileInfoWire {
    pub(crate) path: String,
    pub(crate) size: u64,
    pub(crate) mod_time_ns: i64,
    pub(crate) is_dir: bool,
}

impl From<&FileInfo> for FileInfoWire {
    fn from(info: &FileInfo) -> Self {
        FileInfoWire {
            path: info.path.clone(),
            size: info.size,
            mod_time_ns: time_to_ns(info.mod_time),
            is_dir: info.is_dir,
        }
    }
}

impl From<FileInfoWire> for FileInfo {
    fn from(w: FileInfoWire) -> Self {
        FileInfo {
            path: w.path,
            size: w.size,
            mod_time: ns_to_time(w.mod_time_ns),
            is_dir: w.is_dir,
        }
    }
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

/// The walk control of a `WALK_CONTROL` byte.
pub(crate) fn walk_control_from(byte: u8) -> Option<storagedriver::WalkControl> {
    match byte {
        0 => Some(storagedriver::WalkControl::Continue),
        1 => Some(storagedriver::WalkControl::SkipDir),
        2 => Some(storagedriver::WalkControl::Stop),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(err: Error) -> Error {
        let wire = ErrorWire::from_error(&err, "op", None);
        let json = error_json(&wire);
        let response: ResponseWire = serde_json::from_slice(&json).expect("parses");
        error_from_value(response.error.expect("an error"), "x", "op", None)
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
            let back = round_trip(Error::backend(
                "z",
                "z",
                None,
                Retry::Useless,
                Message("".into()),
            ));
            assert!(matches!(back, Error::Backend { .. }));
            let text = err.to_string();
            let back = round_trip(err);
            assert_eq!(back.to_string(), text);
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
        let err = error_from_value(value, "x", "put_content", Some("/a"));
        assert!(matches!(err, Error::Backend { .. }));
        assert_eq!(err.driver(), "s3");
        assert!(err.to_string().contains("quota_exceeded"));
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
        assert_eq!(major("3"), "3");
    }
}
