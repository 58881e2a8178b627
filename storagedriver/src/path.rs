//! The path grammar, in one place for every driver.
//!
//! A path is absolute: `/` followed by one or more components joined by single `/`. A
//! component is one or more of `A-Z a-z 0-9 . _ -` and is never `.` or `..`. There is no
//! trailing `/` and no empty component; a path is at most [`MAX_PATH_LEN`] bytes and a
//! component at most [`MAX_COMPONENT_LEN`] bytes. The root, `/`, is accepted only where an
//! operation says so (`list`, `stat`, `walk`).
//!
//! Drivers call [`check`] (or [`check_dir`] where the root is allowed) first thing in every
//! operation, so that an invalid path is an [`Error::InvalidPath`] naming the driver, whatever
//! the backend.
//!
//! ```
//! use storagedriver::path::validate;
//!
//! for ok in ["/a", "/2", "/a.a", "/0-9/abcdefg", "/abc/1.2.3.4.5-6_zyx/123.z/4", "/.abc",
//!            "/abc./abc", "/a--b", "/_.abc", "/Docker/docker-registry"] {
//!     assert!(validate(ok).is_ok(), "{ok}");
//! }
//! for bad in ["", "/", "abc", "123.abc", "//bcd", "/abc_123/", "/a/../b", "/./a", "/a b",
//!             "/ä", "/a#upload"] {
//!     assert!(validate(bad).is_err(), "{bad}");
//! }
//! ```

use crate::error::{Error, Result};

/// The longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 1024;

/// The longest component accepted, in bytes.
pub const MAX_COMPONENT_LEN: usize = 255;

/// The root directory, accepted by `list`, `stat` and `walk` only.
pub const ROOT: &str = "/";

/// Why a path is not valid: the `reason` of [`Error::InvalidPath`].
///
/// ```
/// use storagedriver::path::{validate, PathError};
///
/// assert_eq!(validate("/a/../b"), Err(PathError::DotComponent));
/// assert_eq!(validate("/a/"), Err(PathError::EmptyComponent));
/// assert_eq!(validate("/a b"), Err(PathError::BadCharacter(' ')));
/// assert_eq!(validate("a"), Err(PathError::NotAbsolute));
/// assert_eq!(validate("/"), Err(PathError::Root));
/// assert_eq!(validate(&format!("/{}", "a".repeat(256))), Err(PathError::ComponentTooLong(256)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is empty.
    #[error("the path is empty")]
    Empty,
    /// The path does not start with `/`.
    #[error("the path must start with '/'")]
    NotAbsolute,
    /// The path is `/`, where the operation needs a file or a directory below the root.
    #[error("the root '/' is not accepted by this operation")]
    Root,
    /// Two `/` in a row, or a trailing `/`.
    #[error("the path has an empty component (a '//' or a trailing '/')")]
    EmptyComponent,
    /// A component is `.` or `..`.
    #[error("'.' and '..' are not path components")]
    DotComponent,
    /// A character outside `A-Z a-z 0-9 . _ -`.
    #[error(
        "the character {0:?} is not allowed (only A-Z a-z 0-9 . _ - and '/' between components)"
    )]
    BadCharacter(char),
    /// The path is longer than [`MAX_PATH_LEN`] bytes.
    #[error("the path is {0} bytes long; at most {MAX_PATH_LEN} are allowed")]
    TooLong(usize),
    /// A component is longer than [`MAX_COMPONENT_LEN`] bytes.
    #[error("a component is {0} bytes long; at most {MAX_COMPONENT_LEN} are allowed")]
    ComponentTooLong(usize),
}

/// True for the bytes a component may hold.
fn is_component_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Checks `path` against the grammar; the root `/` is rejected.
pub fn validate(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path == ROOT {
        return Err(PathError::Root);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong(path.len()));
    }
    for component in path[1..].split('/') {
        validate_component(component)?;
    }
    Ok(())
}

/// Checks one component (a name between two `/`).
///
/// ```
/// use storagedriver::path::validate_component;
/// assert!(validate_component("data").is_ok());
/// assert!(validate_component("..").is_err());
/// assert!(validate_component("a/b").is_err());
/// ```
pub fn validate_component(component: &str) -> Result<(), PathError> {
    if component.is_empty() {
        return Err(PathError::EmptyComponent);
    }
    if component == "." || component == ".." {
        return Err(PathError::DotComponent);
    }
    if component.len() > MAX_COMPONENT_LEN {
        return Err(PathError::ComponentTooLong(component.len()));
    }
    if let Some(bad) = component
        .chars()
        .find(|c| !c.is_ascii() || !is_component_byte(*c as u8))
    {
        return Err(PathError::BadCharacter(bad));
    }
    Ok(())
}

/// Checks a path for an operation on a file (everything but `list`, `stat` and `walk`),
/// turning a violation into [`Error::InvalidPath`] naming `driver`.
///
/// ```
/// use storagedriver::{path, Error};
///
/// let err = path::check("inmemory", "/a/../etc").unwrap_err();
/// assert!(matches!(err, Error::InvalidPath { .. }));
/// assert_eq!(
///     err.to_string(),
///     "inmemory: invalid path \"/a/../etc\": '.' and '..' are not path components"
/// );
/// ```
pub fn check(driver: &str, path: &str) -> Result<()> {
    validate(path).map_err(|e| invalid(driver, path, e))
}

/// Like [`check`], but also accepts the root `/` (for `list`, `stat` and `walk`).
///
/// ```
/// use storagedriver::path;
/// assert!(path::check_dir("inmemory", "/").is_ok());
/// assert!(path::check("inmemory", "/").is_err());
/// ```
pub fn check_dir(driver: &str, path: &str) -> Result<()> {
    if path == ROOT {
        return Ok(());
    }
    check(driver, path)
}

fn invalid(driver: &str, path: &str, reason: PathError) -> Error {
    Error::InvalidPath {
        driver: driver.to_owned(),
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The parent of a valid path; the parent of `/a` is `/`, and `/` has none.
///
/// ```
/// use storagedriver::path::parent;
/// assert_eq!(parent("/a/b/c"), Some("/a/b"));
/// assert_eq!(parent("/a"), Some("/"));
/// assert_eq!(parent("/"), None);
/// ```
pub fn parent(path: &str) -> Option<&str> {
    if path == ROOT {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some(ROOT),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last component of a valid path (`""` for the root).
///
/// ```
/// use storagedriver::path::file_name;
/// assert_eq!(file_name("/a/b.txt"), "b.txt");
/// assert_eq!(file_name("/"), "");
/// ```
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// Joins a directory (the root included) and a component.
///
/// ```
/// use storagedriver::path::join;
/// assert_eq!(join("/", "a"), "/a");
/// assert_eq!(join("/a", "b"), "/a/b");
/// ```
pub fn join(dir: &str, name: &str) -> String {
    if dir == ROOT {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// True when `candidate` is `dir` itself or lies below it. This compares whole components:
/// `/a/bc` is not below `/a/b`, and every path is below the root.
///
/// ```
/// use storagedriver::path::is_within;
/// assert!(is_within("/a/b", "/a/b"));
/// assert!(is_within("/a/b", "/a/b/c"));
/// assert!(!is_within("/a/b", "/a/bc"));
/// assert!(!is_within("/a/b", "/a/b-c/x"));
/// assert!(is_within("/", "/anything"));
/// ```
pub fn is_within(dir: &str, candidate: &str) -> bool {
    if dir == ROOT {
        return candidate.starts_with('/');
    }
    match candidate.strip_prefix(dir) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}
