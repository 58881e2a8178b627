//! Staged writes: reserved names, creating a staging file, publishing it by rename, fsync,
//! pruning empty directories and deciding what is visible.
//!
//! Content is never written at its real path. It is written to a staging file beside the
//! target, in the same directory, under a name with a `#` in it. The path grammar forbids `#`,
//! so no driver path can address a staging file, and listing skips every name that is not a
//! valid component. The staging file is then renamed over the target, which is atomic on a
//! POSIX filesystem: a reader sees the old file or the new one, and a crash leaves at worst a
//! stray staging file, never a half-written file at a real path.
//!
//! - `<target>#upload`: the content of a [`storagedriver::FileWriter`] for `<target>`. The name
//!   is fixed, so a new driver instance (or process) finds and resumes it.
//! - `<target>#put-<pid>-<n>`: the temporary file of one `put_content`; unique per call.
//! - A target name too long to take a suffix within 255 bytes is shortened first, with a hash
//!   of the full name (see `with_suffix`).
//!
//! Everything here is blocking and runs inside [`crate::blocking::Blocking::run`].

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::is_not_found;

/// The suffix of a writer's upload file.
pub(crate) const UPLOAD_SUFFIX: &str = "#upload";

/// The infix of a `put_content` temporary file, followed by `<pid>-<counter>`.
pub(crate) const PUT_INFIX: &str = "#put-";

/// How often an operation retries when a concurrent delete pruned the directory it was
/// creating a file in.
pub(crate) const MAX_ATTEMPTS: usize = 8;

/// Numbers the temporary files of `put_content` within this process.
static PUT_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The longest file name the filesystems we run on accept, in bytes.
const MAX_NAME_LEN: usize = 255;

/// `target` with `suffix` appended to its last component.
///
/// A component may be 255 bytes long, the limit of the file name itself, so a long name has no
/// room for the suffix. Such a name is shortened to its first bytes plus `#` and a 64-bit
/// FNV-1a hash of the whole name: still unaddressable (it has a `#`), still the same for the
/// same target, so a new driver instance finds the upload again.
fn with_suffix(target: &Path, suffix: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staged = if name.len() + suffix.len() <= MAX_NAME_LEN {
        format!("{name}{suffix}")
    } else {
        let hash = format!("#{:016x}", fnv1a(name.as_bytes()));
        // Valid components are ASCII, so any byte index is a character boundary.
        let keep = MAX_NAME_LEN - suffix.len() - hash.len();
        format!("{}{hash}{suffix}", &name[..keep.min(name.len())])
    };
    target.with_file_name(OsString::from(staged))
}

/// The 64-bit FNV-1a hash: tiny, stable across builds and platforms.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The upload file of a writer for `target`.
pub(crate) fn upload_path(target: &Path) -> PathBuf {
    with_suffix(target, UPLOAD_SUFFIX)
}

/// The process id, read once (`getpid` is a syscall). A child forked later shares it, which
/// `create_new` and the retry on a taken name make harmless.
fn pid() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// A fresh temporary file name for one `put_content` of `target`.
pub(crate) fn put_temp_path(target: &Path) -> PathBuf {
    let n = PUT_COUNTER.fetch_add(1, Ordering::Relaxed);
    with_suffix(target, &format!("{PUT_INFIX}{}-{n}", pid()))
}

/// How [`create_file`] treats an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    /// Fail with `AlreadyExists` (`O_CREAT | O_EXCL`).
    New,
    /// Truncate it to zero length.
    Truncate,
}

/// Opens `path` for writing, creating its parent directories when they are missing.
///
/// The file is created first and the directories only on `NotFound`, so the common case
/// costs one `open`. A concurrent delete can prune a directory between `create_dir_all` and
/// the `open`; that is retried up to [`MAX_ATTEMPTS`] times. A parent that is a file comes
/// back as `NotADirectory` or `AlreadyExists`.
pub(crate) fn create_file(path: &Path, mode: Create) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true);
    match mode {
        Create::New => options.create_new(true),
        Create::Truncate => options.create(true).truncate(true),
    };
    let mut attempt = 0;
    loop {
        match options.open(path) {
            Err(e) if is_not_found(&e) && attempt < MAX_ATTEMPTS => {
                attempt += 1;
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)?;
                }
            }
            other => return other,
        }
    }
}

/// Creates a new temporary file for a `put_content` of `target`, under a name no other call
/// uses (a stale file left by a crashed process with the same pid is stepped over).
pub(crate) fn create_put_temp(target: &Path) -> io::Result<(PathBuf, File)> {
    let mut attempt = 0;
    loop {
        let temp = put_temp_path(target);
        match create_file(&temp, Create::New) {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < MAX_ATTEMPTS => {
                // A stale name, or a parent that is a file: tell them apart.
                if temp.parent().is_some_and(|p| !p.is_dir()) {
                    return Err(e);
                }
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Renames the staging file `staged` over `target`.
///
/// A directory at `target` that holds no visible file (only staging files or empty
/// directories: to a caller it does not exist) is removed, with whatever uploads it holds,
/// and the rename tried again. A directory with visible content stays, and the error
/// (`IsADirectory`, `DirectoryNotEmpty`) comes back.
pub(crate) fn publish(staged: &Path, target: &Path) -> io::Result<()> {
    let mut attempt = 0;
    loop {
        match fs::rename(staged, target) {
            Ok(()) => return Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty
                ) && attempt < MAX_ATTEMPTS =>
            {
                attempt += 1;
                if has_visible_file(target)? {
                    return Err(e);
                }
                match fs::remove_dir_all(target) {
                    Err(rm) if !is_not_found(&rm) => return Err(rm),
                    _ => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Flushes a directory's entries (a rename or a new file in it) to the disk.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Flushes the directory that holds `file`.
pub(crate) fn sync_parent(file: &Path) -> io::Result<()> {
    match file.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Removes `dir` and its ancestors while they are empty, stopping below `root` (which always
/// stays) or at the first that is not empty. Errors are ignored: pruning is tidying, and a
/// directory that cannot go is invisible anyway.
pub(crate) fn prune_empty_dirs(root: &Path, dir: &Path) {
    let mut current = Some(dir);
    while let Some(dir) = current {
        if dir == root || !dir.starts_with(root) {
            break;
        }
        if fs::remove_dir(dir).is_err() {
            break;
        }
        current = dir.parent();
    }
}

/// How an entry found in a directory counts for a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file (or a symlink to one) at a valid name: committed content.
    File,
    /// A directory at a valid name; visible only if it holds a visible file somewhere below.
    Dir,
    /// A staging file, a name outside the path grammar, or anything else: never shown.
    Hidden,
}

/// Classifies a directory entry without a `stat` where the filesystem reports the type.
pub(crate) fn classify(entry: &fs::DirEntry) -> io::Result<Kind> {
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
        // Symlinks are foreign; one to a regular file reads as that file, others are hidden
        // (following symlinked directories could loop).
        match fs::metadata(entry.path()) {
            Ok(md) if md.is_file() => Ok(Kind::File),
            Ok(_) => Ok(Kind::Hidden),
            Err(e) if is_not_found(&e) => Ok(Kind::Hidden),
            Err(e) => Err(e),
        }
    } else {
        Ok(Kind::Hidden)
    }
}

/// True when `dir` holds a visible file somewhere below it; stops at the first one found.
/// A directory (or subdirectory) that disappears meanwhile counts as empty.
pub(crate) fn has_visible_file(dir: &Path) -> io::Result<bool> {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if is_not_found(&e) || e.kind() == io::ErrorKind::NotADirectory => {
                continue;
            }
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            match classify(&entry) {
                Ok(Kind::File) => return Ok(true),
                Ok(Kind::Dir) => pending.push(entry.path()),
                Ok(Kind::Hidden) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_not_valid_components() {
        let target = Path::new("/root/a/b");
        let upload = upload_path(target);
        let temp = put_temp_path(target);
        assert_eq!(upload, Path::new("/root/a/b#upload"));
        for staged in [upload, temp] {
            let name = staged
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a UTF-8 name");
            assert!(name.starts_with("b#"), "{name}");
            assert!(storagedriver::path::validate_component(name).is_err());
        }
        assert_ne!(put_temp_path(target), put_temp_path(target));
    }

    #[test]
    fn visibility_needs_a_visible_file() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        fs::create_dir_all(root.join("a/b/c"))?;
        File::create(root.join("a/b/x#upload"))?;
        File::create(root.join("a/b/c/y#put-1-2"))?;
        assert!(!has_visible_file(root)?);
        File::create(root.join("a/b/c/z"))?;
        assert!(has_visible_file(root)?);
        assert!(!has_visible_file(&root.join("missing"))?);
        Ok(())
    }

    #[test]
    fn prune_stops_at_root_and_at_content() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        fs::create_dir_all(root.join("a/b/c/d"))?;
        File::create(root.join("a/keep"))?;
        prune_empty_dirs(root, &root.join("a/b/c/d"));
        assert!(!root.join("a/b").exists());
        assert!(root.join("a/keep").exists());
        fs::remove_file(root.join("a/keep"))?;
        prune_empty_dirs(root, &root.join("a"));
        assert!(!root.join("a").exists());
        assert!(root.exists());
        Ok(())
    }
}
