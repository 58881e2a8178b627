//! Staged writes: claiming a staging slot, taking back the slots of dead writers, publishing a
//! staged file by rename, flushing directories and pruning empty ones.
//!
//! Content is never written at its real path. It is written to a staging slot beside the
//! target (see [`crate::names`]) and renamed over the target, which is atomic on a POSIX
//! filesystem: a reader sees the old file or the new one, and a crash leaves at worst a slot,
//! never a half-written file at a real path. A slot belongs to whoever holds its lock, so the
//! slot of a killed writer is free again at once and the next write of the path reuses it:
//! what crashes leave behind never grows past one slot per concurrent writer of a path, and
//! [`reclaim_slots`] (run by `delete`) removes even that.
//!
//! Everything here is blocking and runs inside [`crate::blocking::Blocking::run`], on a
//! directory already opened beneath the root.

use std::fs::File;
use std::io;

use cap_std::fs::Dir;
use rustix::fs::{Mode, OFlags};

use crate::error::is_not_found;
use crate::lock::{Identity, try_lock};
use crate::names;
use crate::root::MAX_ATTEMPTS;
use crate::visibility::has_visible_file;

/// The most staging slots one name has: as many writers of one path at once.
const MAX_SLOTS: usize = 4096;

/// A claimed staging slot: its name in its directory, and the file, open, locked, empty.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The slot's name in its directory.
    pub(crate) name: String,
    /// The slot's file; its lock is released when it is closed.
    pub(crate) file: File,
}

/// Opens the entry `name` of `dir` for reading and writing without following a symlink,
/// creating it if `create`.
fn open_entry(dir: &Dir, name: &str, create: bool) -> io::Result<File> {
    let mut flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    if create {
        flags |= OFlags::CREATE;
    }
    let mode = Mode::RUSR | Mode::WUSR | Mode::RGRP | Mode::WGRP | Mode::ROTH | Mode::WOTH;
    Ok(File::from(rustix::fs::openat(dir, name, flags, mode)?))
}

/// Locks the open `file` if it is free and still the entry `name` of `dir`.
///
/// The check after the lock closes the race with the slot's previous owner, which may have
/// renamed it into place or removed it between our open and our lock.
fn lock_if_current(dir: &Dir, name: &str, file: &File) -> io::Result<bool> {
    if !try_lock(file)? {
        return Ok(false);
    }
    Ok(Identity::of_entry(dir, name)? == Some(Identity::of(file)?))
}

/// Claims a free staging slot of the entry `name` of `dir`: the lowest-numbered one that is
/// missing or whose owner is gone. The slot comes back empty and locked.
pub(crate) fn claim_slot(dir: &Dir, name: &str) -> io::Result<Slot> {
    for k in 0..MAX_SLOTS {
        let slot = names::slot(name, k);
        for _ in 0..MAX_ATTEMPTS {
            let file = match open_entry(dir, &slot, true) {
                Ok(file) => file,
                // A foreign symlink or directory under a reserved name: not ours to use.
                Err(e)
                    if matches!(
                        rustix::io::Errno::from_io_error(&e),
                        Some(rustix::io::Errno::LOOP | rustix::io::Errno::ISDIR)
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e),
            };
            if !try_lock(&file)? {
                // A live writer owns it.
                break;
            }
            if Identity::of_entry(dir, &slot)? != Some(Identity::of(&file)?) {
                // Its owner renamed or removed it before we locked: open the name again.
                continue;
            }
            if file.metadata()?.len() > 0 {
                // A dead writer's leftovers.
                file.set_len(0)?;
            }
            return Ok(Slot { name: slot, file });
        }
    }
    Err(io::Error::other(format!(
        "all {MAX_SLOTS} staging slots of {name:?} are in use"
    )))
}

/// Removes the staging slots of the entry `name` of `dir` whose owners are gone (killed in
/// the middle of a write); slots in use stay.
pub(crate) fn reclaim_slots(dir: &Dir, name: &str) -> io::Result<()> {
    for entry in dir.entries()? {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        let entry_name = entry.file_name();
        let Some(entry_name) = entry_name.to_str() else {
            continue;
        };
        let Some((_, number)) = entry_name.rsplit_once(names::SLOT_INFIX) else {
            continue;
        };
        let Ok(k) = number.parse::<usize>() else {
            continue;
        };
        if names::slot(name, k) != entry_name {
            continue;
        }
        let file = match open_entry(dir, entry_name, false) {
            Ok(file) => file,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        if lock_if_current(dir, entry_name, &file)? {
            match dir.remove_file(entry_name) {
                Err(e) if !is_not_found(&e) => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Renames the entry `from_name` of `from` over the entry `to_name` of `to`; `to_relative` is
/// the destination's path relative to the root (for the visibility check).
///
/// A directory at the destination that holds no visible file (only staging files or empty
/// directories: to a caller it does not exist) is removed, with whatever uploads it holds,
/// and the rename tried again. A directory with visible content stays, and the error
/// (`IsADirectory`, `DirectoryNotEmpty`) comes back.
pub(crate) fn publish(
    root: &Dir,
    (from, from_name): (&Dir, &str),
    (to, to_name): (&Dir, &str),
    to_relative: &str,
) -> io::Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match rustix::fs::renameat(from, from_name, to, to_name) {
            Ok(()) => return Ok(()),
            Err(
                rustix::io::Errno::ISDIR | rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST,
            ) if attempt < MAX_ATTEMPTS => {
                match has_visible_file(root, to_relative) {
                    Ok(false) => {}
                    Ok(true) => return Err(io::ErrorKind::IsADirectory.into()),
                    Err(unreadable) => return Err(unreadable.error),
                }
                match to.remove_dir_all(to_name) {
                    Err(e) if !is_not_found(&e) => return Err(e),
                    _ => {}
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Flushes a directory's entries (a rename or a new file in it) to the disk. The directory is
/// open, so a concurrent delete that removed it meanwhile makes this a no-op, not an error.
pub(crate) fn sync_dir(dir: &Dir) -> io::Result<()> {
    rustix::fs::fsync(dir).map_err(io::Error::from)
}

/// Removes the directory `dir` (relative to the root) and its ancestors while they are empty,
/// stopping below the root (which always stays) or at the first that is not empty. Errors are
/// ignored: pruning is tidying, and a directory that cannot go is invisible anyway.
pub(crate) fn prune_empty_dirs(root: &Dir, dir: &str) {
    let mut current = dir;
    while current != "." && !current.is_empty() {
        if root.remove_dir(current).is_err() {
            break;
        }
        current = current.rsplit_once('/').map_or(".", |(parent, _)| parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;
    use std::fs;
    use std::io::Write;

    fn open(path: &std::path::Path) -> io::Result<Dir> {
        Dir::open_ambient_dir(path, ambient_authority())
    }

    #[test]
    fn a_slot_is_reused_once_its_owner_is_gone() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = open(tmp.path())?;
        let mut first = claim_slot(&dir, "f")?;
        assert_eq!(first.name, "f#tmp-0");
        first.file.write_all(b"half a file")?;
        // Held: the next claimant takes slot 1.
        let second = claim_slot(&dir, "f")?;
        assert_eq!(second.name, "f#tmp-1");
        drop(first);
        // Released (as by a crash): slot 0 comes back, emptied.
        let third = claim_slot(&dir, "f")?;
        assert_eq!(third.name, "f#tmp-0");
        assert_eq!(third.file.metadata()?.len(), 0);
        drop(third);
        reclaim_slots(&dir, "f")?;
        assert!(!tmp.path().join("f#tmp-0").exists());
        assert!(tmp.path().join("f#tmp-1").exists(), "a slot in use stays");
        drop(second);
        reclaim_slots(&dir, "f")?;
        assert!(!tmp.path().join("f#tmp-1").exists());
        Ok(())
    }

    #[test]
    fn prune_stops_at_root_and_at_content() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path();
        fs::create_dir_all(path.join("a/b/c/d"))?;
        fs::write(path.join("a/keep"), b"")?;
        let root = open(path)?;
        prune_empty_dirs(&root, "a/b/c/d");
        assert!(!path.join("a/b").exists());
        assert!(path.join("a/keep").exists());
        fs::remove_file(path.join("a/keep"))?;
        prune_empty_dirs(&root, "a");
        assert!(!path.join("a").exists());
        assert!(path.exists());
        Ok(())
    }
}
