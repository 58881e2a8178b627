//! The one error type every driver returns.

use std::error::Error as StdError;
use std::fmt;

/// A boxed error from a backend, kept as the source of [`Error::Backend`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The result type of every driver operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether repeating a failed operation may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retry {
    /// The failure is transient (a timeout, a throttled request, a dropped connection):
    /// the same call may succeed later.
    MayHelp,
    /// The failure will repeat until something else changes (permissions, a full disk,
    /// a malformed request).
    Useless,
}

/// Every failure a storage driver reports.
///
/// Every variant carries the name of the driver that produced it, and the variants about a
/// path carry that path, so a message read in a log names both. The enum is
/// `#[non_exhaustive]`: match the variants you handle and keep a catch-all arm.
///
/// ```
/// use storagedriver::Error;
///
/// let err = Error::path_not_found("filesystem", "/docker/registry/v2/blobs");
/// assert_eq!(
///     err.to_string(),
///     "filesystem: path not found: /docker/registry/v2/blobs"
/// );
/// assert!(err.is_not_found());
/// assert!(!err.may_retry());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nothing is stored at the path (Go: `PathNotFoundError`).
    #[error("{driver}: path not found: {path}")]
    PathNotFound {
        /// The driver's registered name.
        driver: String,
        /// The path that was asked for.
        path: String,
    },

    /// The path breaks the path grammar (Go: `InvalidPathError`); see [`crate::path`].
    #[error("{driver}: invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The driver's registered name.
        driver: String,
        /// The path as it was given.
        path: String,
        /// Which rule it breaks.
        reason: String,
    },

    /// The operation clashes with what is stored: a file written where a directory is, a
    /// file written below another file, or a move from below a file. Nothing was changed.
    #[error("{driver}: conflict at {path}: {reason}")]
    Conflict {
        /// The driver's registered name.
        driver: String,
        /// The path of the operation.
        path: String,
        /// What is in the way.
        reason: String,
    },

    /// The driver does not offer this operation (Go: `ErrUnsupportedMethod`).
    /// [`crate::Capabilities`] says in advance which optional operations a driver has.
    #[error("{driver}: unsupported operation: {operation}")]
    Unsupported {
        /// The driver's registered name.
        driver: String,
        /// What was asked for, e.g. `url_for` or `append to committed content`.
        operation: String,
    },

    /// A [`crate::FileWriter`] was used after `close`, `cancel` or `commit`, or after a later
    /// writer for the same path superseded it.
    #[error("{driver}: writer for {path} is already {state}")]
    WriterFinished {
        /// The driver's registered name.
        driver: String,
        /// The path the writer was writing.
        path: String,
        /// `closed`, `cancelled`, `committed` or `superseded`.
        state: String,
    },

    /// A driver parameter is unknown, missing or has a bad value.
    #[error("{driver}: parameter {key:?}: {reason}")]
    InvalidParameter {
        /// The driver's registered name.
        driver: String,
        /// The parameter's key.
        key: String,
        /// What was wrong, and what was expected.
        reason: String,
    },

    /// The backend failed (Go: `storagedriver.Error`).
    #[error(
        "{driver}: {operation}{path}: {source}",
        path = .path.as_deref().map(|p| format!(" {p}")).unwrap_or_default()
    )]
    Backend {
        /// The driver's registered name.
        driver: String,
        /// The operation that failed, e.g. `put_content`.
        operation: String,
        /// The path of the operation, when there is one.
        path: Option<String>,
        /// Whether repeating the call may help.
        retry: Retry,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },
}

/// Which [`Error`] variant an error is, without its fields: one name per variant, for code
/// that maps errors to something else (a wire form, an exit code, a metric label).
///
/// ```
/// use storagedriver::{Error, ErrorKind};
///
/// let err = Error::path_not_found("inmemory", "/a");
/// assert_eq!(err.kind(), ErrorKind::PathNotFound);
/// assert_eq!(err.kind().as_str(), "path_not_found");
/// assert_eq!(ErrorKind::from_name("path_not_found"), Some(ErrorKind::PathNotFound));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::PathNotFound`].
    PathNotFound,
    /// [`Error::InvalidPath`].
    InvalidPath,
    /// [`Error::Conflict`].
    Conflict,
    /// [`Error::Unsupported`].
    Unsupported,
    /// [`Error::WriterFinished`].
    WriterFinished,
    /// [`Error::InvalidParameter`].
    InvalidParameter,
    /// [`Error::Backend`].
    Backend,
}

impl ErrorKind {
    /// Every kind, in the order of the variants of [`Error`].
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::PathNotFound,
        ErrorKind::InvalidPath,
        ErrorKind::Conflict,
        ErrorKind::Unsupported,
        ErrorKind::WriterFinished,
        ErrorKind::InvalidParameter,
        ErrorKind::Backend,
    ];

    /// The kind's name in `snake_case` (`path_not_found`, ..., `backend`): the `kind` of the
    /// IPC protocol's `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::PathNotFound => "path_not_found",
            ErrorKind::InvalidPath => "invalid_path",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::WriterFinished => "writer_finished",
            ErrorKind::InvalidParameter => "invalid_parameter",
            ErrorKind::Backend => "backend",
        }
    }

    /// The kind named `name` (as [`ErrorKind::as_str`] spells it), if there is one.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// A [`Error::PathNotFound`] for `path`.
    pub fn path_not_found(driver: impl Into<String>, path: impl Into<String>) -> Self {
        Error::PathNotFound {
            driver: driver.into(),
            path: path.into(),
        }
    }

    /// An [`Error::Unsupported`] for `operation`.
    pub fn unsupported(driver: impl Into<String>, operation: impl Into<String>) -> Self {
        Error::Unsupported {
            driver: driver.into(),
            operation: operation.into(),
        }
    }

    /// A [`Error::Conflict`] at `path`.
    pub fn conflict(
        driver: impl Into<String>,
        path: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Conflict {
            driver: driver.into(),
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::InvalidParameter`] for `key`.
    pub fn invalid_parameter(
        driver: impl Into<String>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidParameter {
            driver: driver.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// A [`Error::Backend`] wrapping `source`.
    pub fn backend(
        driver: impl Into<String>,
        operation: impl Into<String>,
        path: Option<&str>,
        retry: Retry,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Backend {
            driver: driver.into(),
            operation: operation.into(),
            path: path.map(str::to_owned),
            retry,
            source: source.into(),
        }
    }

    /// Which variant the error is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::PathNotFound { .. } => ErrorKind::PathNotFound,
            Error::InvalidPath { .. } => ErrorKind::InvalidPath,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::WriterFinished { .. } => ErrorKind::WriterFinished,
            Error::InvalidParameter { .. } => ErrorKind::InvalidParameter,
            Error::Backend { .. } => ErrorKind::Backend,
        }
    }

    /// The name of the driver that reported the error.
    pub fn driver(&self) -> &str {
        match self {
            Error::PathNotFound { driver, .. }
            | Error::InvalidPath { driver, .. }
            | Error::Conflict { driver, .. }
            | Error::Unsupported { driver, .. }
            | Error::WriterFinished { driver, .. }
            | Error::InvalidParameter { driver, .. }
            | Error::Backend { driver, .. } => driver,
        }
    }

    /// The path the error is about, when it is about one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Error::PathNotFound { path, .. }
            | Error::InvalidPath { path, .. }
            | Error::Conflict { path, .. }
            | Error::WriterFinished { path, .. } => Some(path),
            Error::Backend { path, .. } => path.as_deref(),
            Error::Unsupported { .. } | Error::InvalidParameter { .. } => None,
        }
    }

    /// True for [`Error::PathNotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::PathNotFound { .. })
    }

    /// Whether repeating the same call may succeed. Only a [`Error::Backend`] error marked
    /// [`Retry::MayHelp`] says yes: every other variant describes a state that a retry does
    /// not change.
    pub fn may_retry(&self) -> bool {
        matches!(
            self,
            Error::Backend {
                retry: Retry::MayHelp,
                ..
            }
        )
    }
}

impl From<Error> for std::io::Error {
    fn from(err: Error) -> Self {
        let kind = match &err {
            Error::PathNotFound { .. } => std::io::ErrorKind::NotFound,
            Error::InvalidPath { .. } | Error::InvalidParameter { .. } => {
                std::io::ErrorKind::InvalidInput
            }
            Error::Unsupported { .. } => std::io::ErrorKind::Unsupported,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, err)
    }
}

/// A plain message used as the source of a [`Error::Backend`] when the backend gave only text
/// (for example an error that crossed a process boundary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message(pub String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Message {}
