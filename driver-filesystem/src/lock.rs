//! Advisory locks and file identities: how writers of one path, in this process or another,
//! agree on who owns an upload or a staging slot.
//!
//! - A staging slot or upload file is owned by whoever holds an exclusive `flock` on it. The
//!   lock lives as long as the open file: a crash, a kill or a dropped handle releases it, so
//!   the next claimant takes the file back.
//! - Changes of which file is a path's upload (a writer starting or resuming, a commit, a
//!   cancel) happen under an exclusive `flock` of the directory that holds the upload, so a
//!   writer checks that the upload is still its own and acts on it in one step. So do the
//!   claim of a staging slot and its publishing by `put_content` (a delete may unlink a slot
//!   in use, and a new claim reuse its name; see [`crate::staging::publish_slot`]).
//! - A writer knows its upload by identity (device and inode), not by name: a later writer
//!   puts another file under the name, and the earlier one sees that it was superseded.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use rustix::fs::{AtFlags, FlockOperation};

/// The device and inode of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    /// The identity of an open file.
    pub(crate) fn of(file: &impl AsFd) -> io::Result<Identity> {
        Self::and_len(file).map(|(identity, _)| identity)
    }

    /// The identity and the length of an open file, from one `fstat`.
    pub(crate) fn and_len(file: &impl AsFd) -> io::Result<(Identity, u64)> {
        let stat = rustix::fs::fstat(file)?;
        let identity = Identity {
            dev: stat.st_dev,
            ino: stat.st_ino,
        };
        Ok((identity, u64::try_from(stat.st_size).unwrap_or(0)))
    }

    /// The identity of the entry `name` of `dir` (not following a symlink), or `None` if there
    /// is none.
    pub(crate) fn of_entry(dir: &impl AsFd, name: &str) -> io::Result<Option<Identity>> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(Identity {
                dev: stat.st_dev,
                ino: stat.st_ino,
            })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Takes an exclusive lock on `file` if no one holds one; true when taken.
pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
    match rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Takes an exclusive lock on `fd`, waiting for it; it is released when `fd` is closed (or
/// with [`unlock`]).
fn lock(fd: &impl AsFd) -> io::Result<()> {
    rustix::fs::flock(fd, FlockOperation::LockExclusive).map_err(io::Error::from)
}

/// Releases the lock on `fd`.
fn unlock(fd: &impl AsFd) -> io::Result<()> {
    rustix::fs::flock(fd, FlockOperation::Unlock).map_err(io::Error::from)
}

/// An exclusive lock on a directory, held until dropped: the lock under which the upload
/// files in that directory change hands and staging slots are claimed and published.
#[derive(Debug)]
pub(crate) struct DirLock<'a> {
    dir: &'a cap_std::fs::Dir,
}

impl<'a> DirLock<'a> {
    /// Waits for the lock on `dir`.
    pub(crate) fn acquire(dir: &'a cap_std::fs::Dir) -> io::Result<Self> {
        lock(dir)?;
        Ok(DirLock { dir })
    }
}

impl Drop for DirLock<'_> {
    fn drop(&mut self) {
        // Closing the directory releases the lock too; an error here only delays that.
        if let Err(e) = unlock(self.dir) {
            tracing::debug!(error = %e, "cannot release a directory lock");
        }
    }
}
