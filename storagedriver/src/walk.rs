//! Walking a tree: the callback's answers, the options and the generic list+stat walk.

use std::cmp::Ordering;

use crate::driver::StorageDriver;
use crate::error::{Error, Result};
use crate::file_info::FileInfo;

/// What a walk callback tells the walk to do next (Go: `nil`, `ErrSkipDir`, `ErrFilledBuffer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkControl {
    /// Go on; descend into this entry if it is a directory.
    Continue,
    /// On a directory: do not descend into it. On a file: skip the rest of its directory.
    SkipDir,
    /// End the walk now, successfully.
    Stop,
}

/// Options of a walk.
///
/// ```
/// use storagedriver::WalkOptions;
/// let opts = WalkOptions::default().start_after("/a/b");
/// assert_eq!(opts.start_after.as_deref(), Some("/a/b"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WalkOptions {
    /// Resume a walk: entries at or before this path in walk order are not reported (the
    /// directories leading to it are still entered). Go: `WithStartAfterHint`.
    pub start_after: Option<String>,
}

impl WalkOptions {
    /// Sets [`WalkOptions::start_after`].
    pub fn start_after(mut self, path: impl Into<String>) -> Self {
        self.start_after = Some(path.into());
        self
    }
}

/// The callback of a walk: it sees each entry and says what to do next.
pub type WalkFn<'a> = dyn FnMut(&FileInfo) -> WalkControl + Send + 'a;

/// Compares two paths in walk order: component by component, so that everything below
/// `/a/b` comes before `/a/b-c`.
///
/// ```
/// use std::cmp::Ordering;
/// use storagedriver::walk::walk_order;
/// assert_eq!(walk_order("/a/b/x", "/a/b-c"), Ordering::Less);
/// assert_eq!(walk_order("/a/b", "/a/b/x"), Ordering::Less);
/// ```
pub fn walk_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// True when a walk with [`WalkOptions::start_after`] `hint` reports the entry `path`: it
/// comes after the hint in walk order (every entry, without a hint).
///
/// ```
/// use storagedriver::walk::after_hint;
/// assert!(after_hint("/a/c", Some("/a/b")));
/// assert!(!after_hint("/a/b", Some("/a/b")));
/// assert!(after_hint("/a", None));
/// ```
pub fn after_hint(path: &str, hint: Option<&str>) -> bool {
    hint.is_none_or(|h| walk_order(path, h) == Ordering::Greater)
}

/// True when a walk must enter the directory `dir` even though it does not report it: the
/// hint is the directory itself or lies below it, so some of its entries come after the hint.
///
/// ```
/// use storagedriver::walk::leads_to_hint;
/// assert!(leads_to_hint("/a", Some("/a/b/c")));
/// assert!(!leads_to_hint("/b", Some("/a/b/c")));
/// ```
pub fn leads_to_hint(dir: &str, hint: Option<&str>) -> bool {
    hint.is_some_and(|h| crate::path::is_within(dir, h))
}

/// The generic walk every driver gets by default (Go: `WalkFallback`): `list` each directory,
/// sort its children, `stat` each one, depth first.
///
/// # Behavior
///
/// - `from` must be a directory (or `/`); a missing path or a file is
///   [`Error::PathNotFound`], as with `list`.
/// - Entries are reported depth first, each directory's children in sorted order.
/// - An entry removed between `list` and `stat` is skipped, not an error.
/// - [`WalkControl::SkipDir`] and [`WalkControl::Stop`] behave as documented on the enum.
///
/// ```
/// # async fn demo(driver: &dyn storagedriver::StorageDriver) -> storagedriver::Result<()> {
/// use storagedriver::{walk::walk_fallback, WalkControl, WalkOptions};
///
/// let mut seen = Vec::new();
/// walk_fallback(driver, "/", &WalkOptions::default(), &mut |info| {
///     seen.push(info.path.clone());
///     WalkControl::Continue
/// })
/// .await?;
/// # Ok(()) }
/// ```
pub async fn walk_fallback<D: StorageDriver + ?Sized>(
    driver: &D,
    from: &str,
    options: &WalkOptions,
    f: &mut WalkFn<'_>,
) -> Result<()> {
    crate::path::check_dir(driver.name(), from)?;
    let hint = options.start_after.as_deref();
    // Each frame is a directory's remaining children, in reverse so `pop` yields them in order.
    let mut first = driver.list(from).await?;
    first.sort_by(|a, b| walk_order(a, b));
    first.reverse();
    let mut stack: Vec<Vec<String>> = vec![first];
    while let Some(frame) = stack.last_mut() {
        let Some(child) = frame.pop() else {
            stack.pop();
            continue;
        };
        let report = after_hint(&child, hint);
        let enter_for_hint = leads_to_hint(&child, hint);
        if !report && !enter_for_hint {
            continue;
        }
        let info = match driver.stat(&child).await {
            Ok(info) => info,
            Err(Error::PathNotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let control = if report {
            f(&info)
        } else {
            WalkControl::Continue
        };
        match control {
            WalkControl::Stop => return Ok(()),
            WalkControl::SkipDir if info.is_dir => continue,
            WalkControl::SkipDir => {
                stack.pop();
                continue;
            }
            WalkControl::Continue => {}
        }
        if info.is_dir {
            match driver.list(&child).await {
                Ok(mut children) => {
                    children.sort_by(|a, b| walk_order(a, b));
                    children.reverse();
                    stack.push(children);
                }
                Err(Error::PathNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
