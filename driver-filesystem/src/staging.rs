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

use std::ffi::OsStr;
use std::fs::File;
use std::io;

use cap_std::fs::Dir;
use rustix::fs::{AtFlags, Mode, OFlags};

use crate::error::is_not_found;
use crate::lock::{DirLock, Identity, try_lock};
use crate::names;
use crate::root::MAX_ATTEMPTS;
use crate::visibility::has_visible_file;

/// The most staging slots one name has: as many writers of one path at once.
const MAX_SLOTS: usize = 4096;

/// How many times [`delete_dir`] empties a directory in place before it moves it away.
const IN_PLACE_PASSES: usize = 3;

/// How many missing slots in a row end [`reclaim_slots`]'s probe.
const PROBE_GAP: usize = 2;

/// A claimed staging slot: its name in its directory, and the file, open, locked, empty.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The slot's name in its directory.
    pub(crate) name: String,
    /// The slot's file; its lock is released when it is closed.
    pub(crate) file: File,
    /// The file's identity.
    pub(crate) identity: Identity,
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

/// True when opening a reserved name found a symlink or a directory there: something this
/// driver never makes, and not its to use or remove.
fn is_foreign(err: &io::Error) -> bool {
    matches!(
        rustix::io::Errno::from_io_error(err),
        Some(rustix::io::Errno::LOOP | rustix::io::Errno::ISDIR)
    )
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
///
/// The caller holds `dir`'s [`DirLock`]: a new file appears under a slot's name only under
/// that lock, which is what lets [`publish_slot`] tell the slot's own file from a newer one.
pub(crate) fn claim_slot(dir: &Dir, name: &str) -> io::Result<Slot> {
    for k in 0..MAX_SLOTS {
        let slot = names::slot(name, k);
        for _ in 0..MAX_ATTEMPTS {
            let file = match open_entry(dir, &slot, true) {
                Ok(file) => file,
                Err(e) if is_foreign(&e) => break,
                Err(e) => return Err(e),
            };
            if !try_lock(&file)? {
                // A live writer owns it.
                break;
            }
            let (identity, len) = Identity::and_len(&file)?;
            if Identity::of_entry(dir, &slot)? != Some(identity) {
                // Its owner renamed or removed it before we locked: open the name again.
                continue;
            }
            if len > 0 {
                // A dead writer's leftovers.
                file.set_len(0)?;
            }
            return Ok(Slot {
                name: slot,
                file,
                identity,
            });
        }
    }
    Err(io::Error::other(format!(
        "all {MAX_SLOTS} staging slots of {name:?} are in use"
    )))
}

/// Removes the staging slots of the entry `name` of `dir` whose owners are gone (killed in
/// the middle of a write); slots in use stay.
///
/// Slots are claimed lowest number first, so the probe stops after [`PROBE_GAP`] missing
/// ones in a row: it costs that many failed lookups when there is nothing to reclaim, whatever
/// the directory holds. A dead writer's slot above a wider gap (crashes while several writes
/// of the path ran at once, then a slot below published) stays until a write of the path
/// claims it again; so at most one slot per concurrent writer of a path is ever left.
pub(crate) fn reclaim_slots(dir: &Dir, name: &str) -> io::Result<()> {
    let mut missing = 0;
    for k in 0..MAX_SLOTS {
        let slot = names::slot(name, k);
        let file = match open_entry(dir, &slot, false) {
            Ok(file) => {
                missing = 0;
                file
            }
            Err(e) if is_not_found(&e) => {
                missing += 1;
                if missing == PROBE_GAP {
                    return Ok(());
                }
                continue;
            }
            Err(e) if is_foreign(&e) => continue,
            Err(e) => return Err(e),
        };
        if lock_if_current(dir, &slot, &file)? {
            match dir.remove_file(&slot) {
                Err(e) if !is_not_found(&e) => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Takes `dir`'s [`DirLock`] and returns it if the claimed `slot` is still the file under its
/// name; `None` (and no lock) when a delete unlinked it and another claim may have reused the
/// name.
fn lock_if_still_ours<'a>(dir: &'a Dir, slot: &Slot) -> io::Result<Option<DirLock<'a>>> {
    let lock = DirLock::acquire(dir)?;
    let ours = Identity::of_entry(dir, &slot.name)? == Some(slot.identity);
    Ok(ours.then_some(lock))
}

/// Renames the claimed `slot` of `dir` over the entry `to_name` of `to` (see [`publish`]) if
/// the slot is still the file under its name, checked and renamed under `dir`'s [`DirLock`].
///
/// Holding a slot's lock does not keep its name: a `delete` of the directory unlinks every
/// entry, slots in use included (see [`remove_tree`]), and the next [`claim_slot`] of the name
/// creates a new, empty file under it. Renaming by name would then publish that file, not
/// this one. Claims create files under the same lock, so the name cannot change between the
/// check and the rename. A slot no longer under its name is [`io::ErrorKind::NotFound`], as
/// when the delete removed the directory with it.
pub(crate) fn publish_slot(
    root: &Dir,
    (dir, slot): (&Dir, &Slot),
    (to, to_name): (&Dir, &str),
    to_relative: &str,
) -> io::Result<()> {
    let Some(_lock) = lock_if_still_ours(dir, slot)? else {
        return Err(io::ErrorKind::NotFound.into());
    };
    publish(root, (dir, &slot.name), (to, to_name), to_relative)
}

/// Removes the claimed `slot` of `dir` if it is still the file under its name (see
/// [`publish_slot`]), under `dir`'s [`DirLock`]; a newer file under the name is another
/// writer's and stays.
pub(crate) fn discard_slot(dir: &Dir, slot: &Slot) -> io::Result<()> {
    let Some(_lock) = lock_if_still_ours(dir, slot)? else {
        return Ok(());
    };
    match dir.remove_file(&slot.name) {
        Err(e) if !is_not_found(&e) => Err(e),
        _ => Ok(()),
    }
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

/// Deletes the directory `name` of `dir` with everything below it.
///
/// It is emptied and removed in place; if concurrent writes keep refilling it, it is renamed
/// to a reserved name (`<name>#del-<k>`) instead, so no new write lands in it and a write that
/// comes later creates the directory anew, and removed from there. A removal that a crash
/// interrupted there is finished by the next delete of the same name.
pub(crate) fn delete_dir(dir: &Dir, name: &str) -> io::Result<()> {
    use rustix::fs::RenameFlags;
    use rustix::io::Errno;
    reclaim_deleted(dir, name)?;
    match remove_tree(dir, name.as_ref(), IN_PLACE_PASSES) {
        Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {}
        done => return done,
    }
    for k in 0..MAX_SLOTS {
        let away = names::deleted(name, k);
        match rustix::fs::renameat_with(dir, name, dir, &away, RenameFlags::NOREPLACE) {
            Ok(()) => return remove_tree(dir, away.as_ref(), MAX_ATTEMPTS),
            // Another delete of the same name is removing that one.
            Err(Errno::EXIST) => {}
            // Another delete took it first.
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other(format!(
        "all {MAX_SLOTS} reserved names to delete {name:?} are in use"
    )))
}

/// Removes what interrupted deletes of the directory `name` of `dir` left (see
/// [`delete_dir`]); probes like [`reclaim_slots`].
fn reclaim_deleted(dir: &Dir, name: &str) -> io::Result<()> {
    let mut missing = 0;
    for k in 0..MAX_SLOTS {
        let away = names::deleted(name, k);
        match rustix::fs::statat(dir, &away, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => {
                missing = 0;
                remove_tree(dir, away.as_ref(), MAX_ATTEMPTS)?;
            }
            Err(rustix::io::Errno::NOENT) => {
                missing += 1;
                if missing == PROBE_GAP {
                    break;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Removes the directory `name` of `dir` and everything below it, never following a symlink
/// (a symlink below is removed itself).
///
/// Unlike a plain recursive removal it lets the tree change meanwhile: an entry that another
/// call removed or renamed first is skipped, and a directory that concurrent writes refilled
/// before its own removal is emptied again, up to `passes` times.
fn remove_tree(dir: &Dir, name: &OsStr, passes: usize) -> io::Result<()> {
    use rustix::io::Errno;
    for _ in 0..passes {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let sub = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => Dir::from_std_file(File::from(fd)),
            Err(Errno::NOENT) => return Ok(()),
            // A file or a symlink where the directory was.
            Err(Errno::NOTDIR | Errno::LOOP) => return unlink(dir, name),
            Err(e) => return Err(e.into()),
        };
        for entry in sub.entries()? {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            let entry_name = entry.file_name();
            match entry.file_type() {
                Ok(t) if t.is_dir() => remove_tree(&sub, &entry_name, passes)?,
                Ok(_) => unlink(&sub, &entry_name)?,
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            // Refilled meanwhile: empty it again.
            Err(Errno::NOTEMPTY | Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::ErrorKind::DirectoryNotEmpty.into())
}

/// Removes the entry `name` of `dir` that is not a directory; one already gone is fine, and
/// one that turned into a directory meanwhile goes as a tree.
fn unlink(dir: &Dir, name: &OsStr) -> io::Result<()> {
    use rustix::io::Errno;
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) => remove_tree(dir, name, MAX_ATTEMPTS),
        Err(e) => Err(e.into()),
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
        // Slot 0 is free again: the next claim takes it, and the probe finds slot 1 past it.
        drop(claim_slot(&dir, "f")?);
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
