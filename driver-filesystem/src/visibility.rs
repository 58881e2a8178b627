//! What a caller sees of the tree: which entries count as files and directories.
//!
//! Entries whose names are not valid path components (staging files, foreign names) are
//! never shown. A directory exists for a caller only if a file lies somewhere below it.

use std::io;

use cap_std::fs::{Dir, DirEntry};

use crate::error::is_not_found;
use crate::root::is_escape;

/// How an entry found in a directory counts for a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file (or a symlink to one inside the root) at a valid name.
    File,
    /// A directory at a valid name; visible only if it holds a visible file somewhere below.
    Dir,
    /// A staging file, a name outside the path grammar, a symlink to a directory or to
    /// anything outside the root, or anything else: never shown.
    Hidden,
}

/// `name` inside the directory `dir` (both relative to the root, `.` for the root).
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir == "." {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// The driver path of a path relative to the root.
pub(crate) fn driver_path(relative: &str) -> String {
    if relative == "." {
        "/".to_owned()
    } else {
        format!("/{relative}")
    }
}

/// Classifies an entry of the directory `dir` (relative to the root), without a `stat` where
/// the filesystem reports the type.
pub(crate) fn classify(root: &Dir, dir: &str, entry: &DirEntry) -> io::Result<Kind> {
    let name = entry.file_name();
    let Some(name) = name.to_str() else {
        return Ok(Kind::Hidden);
    };
    if storagedriver::path::validate_component(name).is_err() {
        return Ok(Kind::Hidden);
    }
    let file_type = entry.file_type()?;
    if file_type.is_file() {
        Ok(Kind::File)
    } else if file_type.is_dir() {
        Ok(Kind::Dir)
    } else if file_type.is_symlink() {
        // A symlink to a regular file inside the root reads as that file; others are hidden
        // (following symlinked directories could loop).
        match root.metadata(join(dir, name)) {
            Ok(md) if md.is_file() => Ok(Kind::File),
            Ok(_) => Ok(Kind::Hidden),
            Err(e) if is_not_found(&e) || is_escape(&e) => Ok(Kind::Hidden),
            Err(e) => Err(e),
        }
    } else {
        Ok(Kind::Hidden)
    }
}

/// A directory that could not be read, relative to the root, and why.
#[derive(Debug)]
pub(crate) struct Unreadable {
    /// The directory (or entry) that failed, relative to the root.
    pub(crate) relative: String,
    /// Why.
    pub(crate) error: io::Error,
}

/// True when the directory `dir` (relative to the root) holds a visible file somewhere below
/// it; stops at the first one found. A directory that disappears meanwhile counts as empty.
pub(crate) fn has_visible_file(root: &Dir, dir: &str) -> Result<bool, Unreadable> {
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = match root.read_dir(&dir) {
            Ok(entries) => entries,
            Err(e)
                if is_not_found(&e)
                    || is_escape(&e)
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                continue;
            }
            Err(error) => {
                return Err(Unreadable {
                    relative: dir,
                    error,
                });
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if is_not_found(&e) => continue,
                Err(error) => {
                    return Err(Unreadable {
                        relative: dir,
                        error,
                    });
                }
            };
            match classify(root, &dir, &entry) {
                Ok(Kind::File) => return Ok(true),
                Ok(Kind::Dir) => {
                    if let Some(name) = entry.file_name().to_str() {
                        pending.push(join(&dir, name));
                    }
                }
                Ok(Kind::Hidden) => {}
                Err(e) if is_not_found(&e) => {}
                Err(error) => {
                    return Err(Unreadable {
                        relative: dir,
                        error,
                    });
                }
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;
    use std::fs;

    #[test]
    fn visibility_needs_a_visible_file() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path();
        fs::create_dir_all(path.join("a/b/c"))?;
        fs::write(path.join("a/b/x#upload"), b"")?;
        fs::write(path.join("a/b/c/y#tmp-0"), b"")?;
        let root = Dir::open_ambient_dir(path, ambient_authority())?;
        let visible = |rel: &str| has_visible_file(&root, rel).map_err(|u| u.error);
        assert!(!visible(".")?);
        fs::write(path.join("a/b/c/z"), b"")?;
        assert!(visible(".")?);
        assert!(visible("a/b")?);
        assert!(!visible("missing")?);
        Ok(())
    }

    #[test]
    fn relative_and_driver_paths() {
        assert_eq!(join(".", "a"), "a");
        assert_eq!(join("a", "b"), "a/b");
        assert_eq!(driver_path("."), "/");
        assert_eq!(driver_path("a/b"), "/a/b");
    }
}
