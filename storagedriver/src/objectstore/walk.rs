//! `walk` as one flat listing: no `list` or `stat` per directory.
//!
//! A flat listing comes in key order, byte by byte, while a walk reports depth first: every
//! entry below `/a/b` before `/a/b-c` (`-` and `.` sort before `/`). [`Reorder`] holds back
//! the few entries that key order brings too early and lets each go as soon as no later key
//! can sort before it, so memory stays bounded by those entries, not by the tree.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::TryStreamExt;
use object_store::ObjectMeta;
use object_store::path::Path;

use super::core::Core;
use crate::error::{Error, Result};
use crate::file_info::FileInfo;
use crate::path;
use crate::walk::{WalkControl, WalkFn, WalkOptions, walk_order};

/// Walks `from` with one flat listing (from the start-after hint on, when there is one).
pub(crate) async fn walk(
    core: &Core,
    from: &str,
    options: &WalkOptions,
    f: &mut WalkFn<'_>,
) -> Result<()> {
    path::check_dir(&core.name, from)?;
    let base = core.keys.object(from);
    let prefix = (!base.as_ref().is_empty()).then_some(&base);
    let hint = options
        .start_after
        .as_deref()
        .filter(|h| *h != from && path::is_within(from, h));
    let offset = hint.map(|h| listing_offset(core, from, h));
    let mut listing = match &offset {
        Some(offset) => core.store.list_with_offset(prefix, offset),
        None => core.store.list(prefix),
    };
    let mut out = Emitter {
        f,
        hint: options.start_after.as_deref(),
        skip: None,
        stopped: false,
        last: None,
    };
    let mut order = Reorder::new(from);
    let mut seen = false;
    while let Some(meta) = listing
        .try_next()
        .await
        .map_err(|e| core.error("walk", from, e))?
    {
        let Some(found) = core.keys.path_below(&base, &meta.location) else {
            continue;
        };
        seen = true;
        order.push(&found, &meta, &mut out);
        if out.stopped {
            return Ok(());
        }
    }
    order.finish(&mut out);
    if seen || from == path::ROOT || (offset.is_some() && exists_below(core, from, &base).await?) {
        Ok(())
    } else {
        Err(Error::path_not_found(core.name.as_str(), from))
    }
}

/// The key to list after so that every entry after `hint` in walk order comes: entries that
/// follow the hint depth first but precede it byte by byte (`/a-x` after `/a/b`) start with
/// the hint's first component below `from`.
fn listing_offset(core: &Core, from: &str, hint: &str) -> Path {
    let rel = hint[from.len()..].trim_start_matches('/');
    let first = rel.split('/').next().unwrap_or(rel);
    core.keys.object(&path::join(from, first))
}

/// True when some key lies below `base` (a walk that listed from an offset saw none).
async fn exists_below(core: &Core, from: &str, base: &Path) -> Result<bool> {
    let mut listing = core.store.list(Some(base));
    while let Some(meta) = listing
        .try_next()
        .await
        .map_err(|e| core.error("walk", from, e))?
    {
        if core.keys.path_below(base, &meta.location).is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Hands entries to the callback, applying the hint and the callback's answers.
struct Emitter<'a, 'f> {
    f: &'a mut WalkFn<'f>,
    hint: Option<&'a str>,
    /// Entries within this directory are skipped (the callback said `SkipDir`).
    skip: Option<String>,
    stopped: bool,
    /// The last path reported: a key that is both a file and a directory (written by another
    /// tool) is reported once.
    last: Option<String>,
}

impl Emitter<'_, '_> {
    fn emit(&mut self, info: &FileInfo) {
        if self.stopped || self.last.as_deref() == Some(info.path.as_str()) {
            return;
        }
        self.last = Some(info.path.clone());
        if let Some(skip) = &self.skip {
            if path::is_within(skip, &info.path) {
                return;
            }
            self.skip = None;
        }
        if self
            .hint
            .is_some_and(|h| walk_order(&info.path, h) != Ordering::Greater)
        {
            return;
        }
        match (self.f)(info) {
            WalkControl::Continue => {}
            WalkControl::Stop => self.stopped = true,
            WalkControl::SkipDir if info.is_dir => self.skip = Some(info.path.clone()),
            WalkControl::SkipDir => {
                self.skip = path::parent(&info.path).map(str::to_owned);
            }
        }
    }
}

/// The key order point after which `entry` is safe to report: a key starting with
/// `entry[..i] + "/"`, where `entry[i]` is the first byte below `/` from `start` (the first
/// byte below the walked directory), would sort before it in walk order; every such key is
/// below `entry[..i] + "0"`. `None` when no such byte exists.
fn release_key(start: usize, entry: &str) -> Option<String> {
    let i = entry
        .bytes()
        .skip(start)
        .position(|b| b < b'/')
        .map(|p| p + start)?;
    Some(format!("{}0", &entry[..i]))
}

/// A path ordered as a walk reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WalkKey(String);

impl Ord for WalkKey {
    fn cmp(&self, other: &Self) -> Ordering {
        walk_order(&self.0, &other.0)
    }
}

impl PartialOrd for WalkKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Turns paths in key order into walk order, with the directories the keys imply.
struct Reorder {
    /// The walked directory; entries are below it.
    from: String,
    /// Entries not yet reported, in walk order.
    held: BTreeMap<WalkKey, FileInfo>,
    /// The directories of the previous key, outermost first (keys of one directory are
    /// contiguous in key order, so a directory is new when it is not among them).
    open_dirs: Vec<String>,
}

impl Reorder {
    fn new(from: &str) -> Self {
        Reorder {
            from: from.to_owned(),
            held: BTreeMap::new(),
            open_dirs: Vec::new(),
        }
    }

    /// Takes the next listed file (paths arrive in key order) and reports what is ready.
    fn push(&mut self, file: &str, meta: &ObjectMeta, out: &mut Emitter<'_, '_>) {
        let mod_time = SystemTime::from(meta.last_modified);
        let dirs = self.dirs_of(file);
        let common = dirs
            .iter()
            .zip(&self.open_dirs)
            .take_while(|(a, b)| a == b)
            .count();
        for dir in &dirs[common..] {
            self.held
                .insert(WalkKey(dir.clone()), FileInfo::dir(dir.clone(), mod_time));
        }
        self.open_dirs = dirs;
        self.held.insert(
            WalkKey(file.to_owned()),
            FileInfo::file(file, meta.size, mod_time),
        );
        self.release(Some(file), out);
    }

    /// Reports everything still held.
    fn finish(&mut self, out: &mut Emitter<'_, '_>) {
        self.release(None, out);
    }

    /// Reports held entries, first in walk order, while no key at or after `latest` can sort
    /// before them.
    fn release(&mut self, latest: Option<&str>, out: &mut Emitter<'_, '_>) {
        let start = if self.from == path::ROOT {
            1
        } else {
            self.from.len() + 1
        };
        while let Some(entry) = self.held.first_entry() {
            if let Some(latest) = latest {
                if let Some(release) = release_key(start, &entry.key().0) {
                    if latest < release.as_str() {
                        return;
                    }
                }
            }
            let info = entry.remove();
            out.emit(&info);
            if out.stopped {
                return;
            }
        }
    }

    /// The directories between the walked directory and `file`, outermost first.
    fn dirs_of(&self, file: &str) -> Vec<String> {
        let mut dirs = Vec::new();
        let mut dir = path::parent(file);
        while let Some(d) = dir {
            if d == self.from || !path::is_within(&self.from, d) {
                break;
            }
            dirs.push(d.to_owned());
            dir = path::parent(d);
        }
        dirs.reverse();
        dirs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(size: u64) -> ObjectMeta {
        ObjectMeta {
            location: Path::from("x"),
            last_modified: Default::default(),
            size,
            e_tag: None,
            version: None,
        }
    }

    fn walk_keys(from: &str, keys: &[&str]) -> Vec<String> {
        let mut seen = Vec::new();
        let mut f = |info: &FileInfo| {
            seen.push(info.path.clone());
            WalkControl::Continue
        };
        let mut out = Emitter {
            f: &mut f,
            hint: None,
            skip: None,
            stopped: false,
            last: None,
        };
        let mut order = Reorder::new(from);
        let mut sorted: Vec<&str> = keys.to_vec();
        sorted.sort_unstable();
        for key in sorted {
            order.push(key, &meta(1), &mut out);
        }
        order.finish(&mut out);
        seen
    }

    #[test]
    fn key_order_becomes_walk_order() {
        // `/a/b` is both a file and a directory here, as another tool can leave it.
        let seen = walk_keys("/", &["/a/b", "/a-c", "/a.d/e", "/a/b-x/y", "/a/b/z", "/b"]);
        assert_eq!(
            seen,
            [
                "/a", "/a/b", "/a/b/z", "/a/b-x", "/a/b-x/y", "/a-c", "/a.d", "/a.d/e", "/b"
            ]
        );
    }

    #[test]
    fn a_walk_below_a_dashed_directory_holds_nothing_back() {
        let seen = walk_keys("/x-y", &["/x-y/a", "/x-y/b/c"]);
        assert_eq!(seen, ["/x-y/a", "/x-y/b", "/x-y/b/c"]);
    }
}
