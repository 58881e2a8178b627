//! The one place where `std::io::Error` becomes a [`storagedriver::Error`].

use std::io;

use storagedriver::{Error, Retry};

/// The name the driver registers under; every error carries it.
pub const DRIVER_NAME: &str = "filesystem";

/// What a path that resolves outside the root is refused with.
pub(crate) const ESCAPE: &str = "refused: a symlink on the path leads outside the root directory";

/// Maps an I/O error of `operation` on the driver path `path`.
///
/// - A path that resolves outside the root (a symlink): [`Error::Backend`] with
///   [`Retry::Useless`], saying so.
/// - `NotFound`: [`Error::PathNotFound`].
/// - `NotADirectory` (a parent is a file), `IsADirectory`, `DirectoryNotEmpty` (a directory is
///   where a file should go) and `AlreadyExists`: [`Error::Conflict`].
/// - `Interrupted`, `TimedOut`, `WouldBlock`: [`Error::Backend`] with [`Retry::MayHelp`].
/// - Anything else: [`Error::Backend`] with [`Retry::Useless`].
pub(crate) fn io_error(operation: &str, path: &str, err: io::Error) -> Error {
    use io::ErrorKind as K;
    if crate::root::is_escape(&err) {
        return backend(operation, Some(path), Retry::Useless, ESCAPE);
    }
    match err.kind() {
        K::NotFound => Error::path_not_found(DRIVER_NAME, path),
        K::NotADirectory => Error::conflict(DRIVER_NAME, path, "a parent of the path is a file"),
        K::IsADirectory | K::DirectoryNotEmpty => {
            Error::conflict(DRIVER_NAME, path, "a directory is in the way")
        }
        K::AlreadyExists => Error::conflict(DRIVER_NAME, path, "a file is in the way"),
        K::Interrupted | K::TimedOut | K::WouldBlock => {
            backend(operation, Some(path), Retry::MayHelp, err)
        }
        _ => backend(operation, Some(path), Retry::Useless, err),
    }
}

/// Like [`io_error`], for operations that look a path up: a parent that is a file, or a
/// directory where a file was expected, means there is no such file ([`Error::PathNotFound`]).
pub(crate) fn lookup_error(operation: &str, path: &str, err: io::Error) -> Error {
    use io::ErrorKind as K;
    match err.kind() {
        K::NotADirectory | K::IsADirectory => Error::path_not_found(DRIVER_NAME, path),
        _ => io_error(operation, path, err),
    }
}

/// A [`Error::Backend`] of this driver.
pub(crate) fn backend(
    operation: &str,
    path: Option<&str>,
    retry: Retry,
    source: impl Into<storagedriver::BoxError>,
) -> Error {
    Error::backend(DRIVER_NAME, operation, path, retry, source)
}

/// True when an I/O error says the entry (or one of its parents) does not exist.
pub(crate) fn is_not_found(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_variants() {
        let e = io_error(
            "get_content",
            "/a",
            io::Error::from(io::ErrorKind::NotFound),
        );
        assert!(e.is_not_found());
        assert_eq!(e.driver(), DRIVER_NAME);
        let e = io_error("put_content", "/a/b", io::ErrorKind::NotADirectory.into());
        assert!(matches!(e, Error::Conflict { .. }), "{e}");
        let e = io_error("put_content", "/a", io::ErrorKind::IsADirectory.into());
        assert!(matches!(e, Error::Conflict { .. }), "{e}");
        let e = io_error("rename", "/a", io::ErrorKind::DirectoryNotEmpty.into());
        assert!(matches!(e, Error::Conflict { .. }), "{e}");
        let e = io_error("put_content", "/a", io::ErrorKind::Interrupted.into());
        assert!(e.may_retry());
        let e = io_error("put_content", "/a", io::ErrorKind::TimedOut.into());
        assert!(e.may_retry());
        let e = io_error("put_content", "/a", io::ErrorKind::PermissionDenied.into());
        assert!(!e.may_retry());
        assert!(matches!(e, Error::Backend { ref operation, .. } if operation == "put_content"));
        assert_eq!(e.path(), Some("/a"));
        let e = lookup_error("stat", "/a/b", io::ErrorKind::NotADirectory.into());
        assert!(e.is_not_found());
        let e = lookup_error("get_content", "/a", io::ErrorKind::IsADirectory.into());
        assert!(e.is_not_found());
    }
}
