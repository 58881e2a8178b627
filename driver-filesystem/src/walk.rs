//! `walk` from directory reads: one blocking read per directory, each entry's size and time
//! from that read, and a directory reported only once a visible file below it shows up.
//!
//! The generic walk (`list` and `stat` per entry) costs a `stat` per entry, and both `list`
//! and `stat` search each directory for a visible file below it; this walk reads every
//! directory once.

use cap_std::fs::Dir;
use storagedriver::walk::{after_hint, leads_to_hint};
use storagedriver::{Error, FileInfo, Result, WalkControl, WalkFn, WalkOptions, path as dpath};

use crate::driver::{FilesystemDriver, Inner};
use crate::error::{DRIVER_NAME, io_error, is_not_found};
use crate::root::{is_escape, relative};
use crate::visibility::{Kind, classify, driver_path, has_visible_file, join};

/// A visible entry of a directory, as one read of the directory found it.
#[derive(Debug)]
struct Child {
    name: String,
    info: ChildInfo,
}

#[derive(Debug)]
enum ChildInfo {
    File {
        size: u64,
        modified: std::time::SystemTime,
    },
    Dir {
        modified: std::time::SystemTime,
    },
}

/// A directory being walked: its path, its children not walked yet (in reverse order, so
/// `pop` yields the next), and its own entry while it waits to be reported.
#[derive(Debug)]
struct Frame {
    path: String,
    children: Vec<Child>,
    unreported: Option<FileInfo>,
}

/// Reads the directory at driver path `path`: its entries that may be visible (files, and
/// directories, which are visible only if a file lies below), sorted by name. `None` when it
/// has gone (a concurrent delete) or is not a directory.
fn read_children(inner: &Inner, path: &str) -> Result<Option<Vec<Child>>> {
    let root = inner.root.dir();
    let rel = relative(path);
    let entries = match root.read_dir(rel) {
        Ok(entries) => entries,
        Err(e) if is_not_found(&e) || e.kind() == std::io::ErrorKind::NotADirectory => {
            return Ok(None);
        }
        Err(e) => return Err(io_error("walk", path, e)),
    };
    let mut children = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(io_error("walk", path, e)),
        };
        let kind = match classify(root, rel, &entry) {
            Ok(kind) => kind,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(io_error("walk", path, e)),
        };
        // `classify` only passes valid (so UTF-8) names.
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let child = match kind {
            Kind::Hidden => continue,
            Kind::File => match file_info(root, rel, &name) {
                Ok(Some(info)) => info,
                Ok(None) => continue,
                Err(e) => return Err(io_error("walk", &dpath::join(path, &name), e)),
            },
            Kind::Dir => match entry.metadata().and_then(|md| md.modified()) {
                Ok(modified) => ChildInfo::Dir {
                    modified: modified.into_std(),
                },
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(io_error("walk", &dpath::join(path, &name), e)),
            },
        };
        children.push(Child { name, info: child });
    }
    children.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(children))
}

/// True when a visible file lies below the directory at driver path `path`.
fn holds_a_file(inner: &Inner, path: &str) -> Result<bool> {
    has_visible_file(inner.root.dir(), relative(path))
        .map_err(|u| io_error("walk", &driver_path(&u.relative), u.error))
}

/// The size and time of the file `name` in `dir` (relative to the root), following a
/// symlink that `classify` let through; `None` when it has gone.
fn file_info(root: &Dir, dir: &str, name: &str) -> std::io::Result<Option<ChildInfo>> {
    match root.metadata(join(dir, name)) {
        Ok(md) if md.is_file() => Ok(Some(ChildInfo::File {
            size: md.len(),
            modified: md.modified()?.into_std(),
        })),
        Ok(_) => Ok(None),
        Err(e) if is_not_found(&e) || is_escape(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How reporting the waiting directories went.
enum Ancestors {
    /// All reported; the walk goes on inside them.
    Reported,
    /// The callback skipped one of them: its frame and those below it are gone.
    Skipped,
    /// The callback ended the walk.
    Stop,
}

/// Reports the directories on the stack that wait for a visible file (outermost first),
/// now that one was found below them. A [`WalkControl::SkipDir`] drops that directory's
/// frame and everything below it from the stack.
fn report_ancestors(stack: &mut Vec<Frame>, f: &mut WalkFn<'_>) -> Ancestors {
    for depth in 0..stack.len() {
        let Some(info) = stack[depth].unreported.take() else {
            continue;
        };
        match f(&info) {
            WalkControl::Continue => {}
            WalkControl::Stop => return Ancestors::Stop,
            WalkControl::SkipDir => {
                stack.truncate(depth);
                return Ancestors::Skipped;
            }
        }
    }
    Ancestors::Reported
}

impl FilesystemDriver {
    /// The walk of [`storagedriver::StorageDriver::walk`], from directory reads.
    pub(crate) async fn walk_tree(
        &self,
        from: &str,
        options: &WalkOptions,
        f: &mut WalkFn<'_>,
    ) -> Result<()> {
        dpath::check_dir(DRIVER_NAME, from)?;
        let hint = options.start_after.as_deref();
        let not_found = || Error::path_not_found(DRIVER_NAME, from);
        let Some(mut first) = self.run("walk", from, read_children).await? else {
            return Err(not_found());
        };
        first.reverse();
        let mut stack = vec![Frame {
            path: from.to_owned(),
            children: first,
            unreported: None,
        }];
        let mut found_file = false;
        while let Some(top) = stack.last_mut() {
            let Some(child) = top.children.pop() else {
                stack.pop();
                continue;
            };
            let path = dpath::join(&top.path, &child.name);
            match child.info {
                ChildInfo::File { size, modified } => {
                    found_file = true;
                    if !after_hint(&path, hint) {
                        continue;
                    }
                    match report_ancestors(&mut stack, f) {
                        Ancestors::Reported => {}
                        Ancestors::Skipped => continue,
                        Ancestors::Stop => return Ok(()),
                    }
                    match f(&FileInfo::file(&path, size, modified)) {
                        WalkControl::Continue => {}
                        WalkControl::Stop => return Ok(()),
                        WalkControl::SkipDir => {
                            stack.pop();
                        }
                    }
                }
                ChildInfo::Dir { modified } => {
                    let report = after_hint(&path, hint);
                    if !report && !leads_to_hint(&path, hint) {
                        continue;
                    }
                    let Some(mut children) = self.run("walk", &path, read_children).await? else {
                        continue;
                    };
                    children.reverse();
                    stack.push(Frame {
                        unreported: report.then(|| FileInfo::dir(&path, modified)),
                        path,
                        children,
                    });
                }
            }
        }
        // Like `list`, a directory with no visible file below it does not exist. A walk that
        // saw no file (all of them at or before the hint, say) asks the tree.
        if !found_file && from != dpath::ROOT && !self.run("walk", from, holds_a_file).await? {
            return Err(not_found());
        }
        Ok(())
    }
}
