//! The root directory, opened once, and every lookup beneath it.
//!
//! The driver never hands a full host path to the kernel. It keeps the root open as a
//! [`cap_std::fs::Dir`] and resolves every driver path relative to it, at the moment of the
//! call, with `openat2(RESOLVE_BENEATH)` where the kernel has it (cap-std falls back to its
//! own component-by-component resolution elsewhere). So a symlink inside the tree can never
//! lead a read, a write, a rename or a delete outside the root, and there is no gap between a
//! check and a use for a swapped symlink to slip into: the check is the open.
//!
//! Symlinks that stay inside the root are followed; a symlink (or `..` in one) that leads
//! outside is refused with an error naming the driver path (see [`is_escape`]). The last
//! component of a path that is created, renamed or removed is never followed: those calls act
//! on the entry itself, in a parent directory opened beneath the root.

use std::fs::File;
use std::io;
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::is_not_found;

/// How often a lookup is tried again when a concurrent `delete` prunes the directory it is
/// creating or working in.
pub(crate) const MAX_ATTEMPTS: usize = 64;

/// The root directory of a driver, open.
#[derive(Debug)]
pub(crate) struct Root {
    dir: Dir,
}

impl Root {
    /// Opens the directory at `path` (which may itself be a symlink) as the root.
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        Ok(Root {
            dir: Dir::open_ambient_dir(path, ambient_authority())?,
        })
    }

    /// The root directory, to resolve relative paths beneath.
    pub(crate) fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Opens the directory `relative` (to the root) beneath the root, as a directory that can
    /// be read, locked and flushed.
    pub(crate) fn open_dir(&self, relative: &str) -> io::Result<Dir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(&self.dir, relative, flags, Mode::empty(), resolve) {
                Ok(fd) => return Ok(Dir::from_std_file(File::from(fd))),
                // A rename elsewhere in the tree raced the resolution: the kernel asks for a
                // retry.
                Err(Errno::AGAIN) if attempt < MAX_ATTEMPTS => {}
                Err(Errno::XDEV) => return Err(escape_error()),
                // No openat2 (before Linux 5.6): cap-std resolves beneath the root itself,
                // then the directory is opened for reading.
                Err(Errno::NOSYS) => {
                    let beneath = self.dir.open_dir(relative)?;
                    let fd = rustix::fs::openat(&beneath, ".", flags, Mode::empty())?;
                    return Ok(Dir::from_std_file(File::from(fd)));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Opens the directory holding the last component of the (non-root) driver path `path`.
    ///
    /// With `create`, missing directories are created first; a concurrent delete that prunes
    /// one of them meanwhile is retried.
    pub(crate) fn open_parent(&self, path: &str, create: bool) -> io::Result<Dir> {
        let (parent, _) = split(path);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.open_dir(parent) {
                Ok(dir) => return Ok(dir),
                Err(e) if create && is_not_found(&e) && attempt < MAX_ATTEMPTS => {
                    match self.dir.create_dir_all(parent) {
                        // Created; or pruned again before the open: go round.
                        Ok(()) => {}
                        Err(e) if is_not_found(&e) => {}
                        // Created by a concurrent writer and pruned again while it was
                        // checked, or a file in the way: the next open tells which.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The path of a driver path relative to the root: `a/b` for `/a/b`, `.` for `/`.
pub(crate) fn relative(path: &str) -> &str {
    match path.trim_start_matches('/') {
        "" => ".",
        relative => relative,
    }
}

/// The directory (relative to the root, `.` for the root) and the last component of a
/// non-root driver path.
pub(crate) fn split(path: &str) -> (&str, &str) {
    let relative = path.trim_start_matches('/');
    match relative.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => (".", relative),
    }
}

/// The message of the error cap-std returns when a path leads outside the root.
const ESCAPE_MESSAGE: &str = "a path led outside of the filesystem";

/// The error of a path that leads outside the root, as cap-std reports it.
fn escape_error() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, ESCAPE_MESSAGE)
}

/// True when `err` says the path led outside the root (through a symlink or `..` in one).
pub(crate) fn is_escape(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::PermissionDenied
        && err.raw_os_error().is_none()
        && err.to_string() == ESCAPE_MESSAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_paths_map_beneath_the_root() {
        assert_eq!(relative("/"), ".");
        assert_eq!(relative("/a/b"), "a/b");
        assert_eq!(split("/a"), (".", "a"));
        assert_eq!(split("/a/b/c"), ("a/b", "c"));
    }

    #[test]
    fn an_escaping_symlink_is_refused_and_recognised() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("in"))?;
        std::fs::create_dir(dir.path().join("outside"))?;
        std::fs::write(dir.path().join("outside/secret"), b"s")?;
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("out"))?;
        std::os::unix::fs::symlink("in", root.join("inner"))?;
        let opened = Root::open(&root)?;
        let err = opened
            .dir()
            .read("out/secret")
            .expect_err("an escaping symlink must be refused");
        assert!(is_escape(&err), "{err}");
        assert!(!is_escape(&io::Error::from(
            io::ErrorKind::PermissionDenied
        )));
        std::fs::write(root.join("in/f"), b"f")?;
        assert_eq!(opened.dir().read("inner/f")?, b"f");
        Ok(())
    }
}
