//! What a copy has to do: the files below the source, each with its destination path and
//! what the destination already holds there (one walk of each side, no stat per file).

use std::collections::HashMap;

use storagedriver::{Error, StorageDriver, WalkControl, WalkOptions};

use crate::exit::CliError;

/// One file to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    /// Its path on the source driver.
    pub(crate) source: String,
    /// The path of its copy on the destination driver.
    pub(crate) dest: String,
    /// Its size on the source, when the copy was planned.
    pub(crate) size: u64,
    /// The size of the committed file at `dest` when the copy was planned, if there was one.
    pub(crate) existing: Option<u64>,
}

impl Item {
    /// True when the destination already holds a committed file of the source's size: the
    /// copy skips it.
    pub(crate) fn complete(&self) -> bool {
        self.existing == Some(self.size)
    }
}

/// The files of a copy, in the source's walk order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The files.
    pub(crate) items: Vec<Item>,
}

impl Plan {
    /// Bytes of every file on the source.
    pub(crate) fn bytes(&self) -> u64 {
        self.items.iter().map(|i| i.size).sum()
    }

    /// Bytes of the files whose destination is not complete yet (at most what moves).
    pub(crate) fn bytes_to_copy(&self) -> u64 {
        self.items
            .iter()
            .filter(|i| !i.complete())
            .map(|i| i.size)
            .sum()
    }
}

/// A driver error on the source side, as `cp` reports it.
pub(crate) fn source_error(err: Error) -> CliError {
    side_error("source", err)
}

/// A driver error on the destination side, as `cp` reports it.
pub(crate) fn dest_error(err: Error) -> CliError {
    side_error("destination", err)
}

/// `err` prefixed with the side it happened on (`cp: source filesystem: path not found: /a`):
/// both sides may be the same kind of driver.
fn side_error(side: &str, err: Error) -> CliError {
    let class = crate::exit::Class::of(&err);
    CliError::new(class, format!("cp: {side} {err}"))
}

/// Plans the copy of `from` (on `src`) to `to` (on `dst`). `same_storage` says that both
/// drivers are one storage: then `to` may not be `from` or lie below it (a rerun would copy
/// the copy again).
pub(crate) async fn make(
    src: &dyn StorageDriver,
    dst: &dyn StorageDriver,
    from: &str,
    to: &str,
    same_storage: bool,
) -> Result<Plan, CliError> {
    let top = src.stat(from).await.map_err(source_error)?;
    if same_storage && (to == from || (top.is_dir && is_below(to, from))) {
        return Err(CliError::invalid(format!(
            "cp: the destination {to} is the source {from}{} on the same storage",
            if to == from { "" } else { " or below it" }
        )));
    }
    if !top.is_dir {
        let existing = match dst.stat(to).await {
            Ok(info) if !info.is_dir => Some(info.size),
            Ok(_) => None,
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(dest_error(e)),
        };
        return Ok(Plan {
            items: vec![Item {
                source: from.to_owned(),
                dest: to.to_owned(),
                size: top.size,
                existing,
            }],
        });
    }
    let mut files = Vec::new();
    src.walk(from, &WalkOptions::default(), &mut |info| {
        if !info.is_dir {
            files.push((info.path.clone(), info.size));
        }
        WalkControl::Continue
    })
    .await
    .map_err(source_error)?;
    let existing = committed_below(dst, to).await?;
    let items = files
        .into_iter()
        .map(|(source, size)| {
            let dest = join(to, relative(from, &source));
            Item {
                existing: existing.get(&dest).copied(),
                source,
                dest,
                size,
            }
        })
        .collect();
    Ok(Plan { items })
}

/// The committed files below `dir` on `dst` and their sizes; none when `dir` is missing.
async fn committed_below(
    dst: &dyn StorageDriver,
    dir: &str,
) -> Result<HashMap<String, u64>, CliError> {
    let mut sizes = HashMap::new();
    let walked = dst
        .walk(dir, &WalkOptions::default(), &mut |info| {
            if !info.is_dir {
                sizes.insert(info.path.clone(), info.size);
            }
            WalkControl::Continue
        })
        .await;
    match walked {
        Ok(()) => Ok(sizes),
        Err(e) if e.is_not_found() => Ok(HashMap::new()),
        Err(e) => Err(dest_error(e)),
    }
}

/// True when `path` lies strictly below the directory `dir`.
fn is_below(path: &str, dir: &str) -> bool {
    dir == "/" && path != "/"
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `path` (below `dir`) relative to `dir`, without a leading `/`.
fn relative<'a>(dir: &str, path: &'a str) -> &'a str {
    let rest = if dir == "/" {
        path
    } else {
        path.strip_prefix(dir).unwrap_or(path)
    };
    rest.trim_start_matches('/')
}

/// `dir` and a relative path below it.
fn join(dir: &str, relative: &str) -> String {
    if dir == "/" {
        format!("/{relative}")
    } else {
        format!("{dir}/{relative}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_below_a_directory() {
        assert!(is_below("/a/b", "/a"));
        assert!(is_below("/a/b/c", "/a"));
        assert!(!is_below("/a", "/a"));
        assert!(!is_below("/ab", "/a"));
        assert!(!is_below("/a-b/c", "/a"));
        assert!(is_below("/a", "/"));
        assert!(!is_below("/", "/"));
    }

    #[test]
    fn destination_paths_keep_the_path_below_the_source() {
        assert_eq!(join("/to", relative("/from", "/from/x/y")), "/to/x/y");
        assert_eq!(join("/", relative("/from", "/from/x")), "/x");
        assert_eq!(join("/to", relative("/", "/x/y")), "/to/x/y");
    }

    #[test]
    fn only_a_committed_file_of_the_same_size_is_complete() {
        let item = |existing| Item {
            source: "/a".into(),
            dest: "/b".into(),
            size: 5,
            existing,
        };
        assert!(item(Some(5)).complete());
        assert!(!item(Some(4)).complete());
        assert!(!item(Some(6)).complete());
        assert!(!item(None).complete());
        let plan = Plan {
            items: vec![item(Some(5)), item(None)],
        };
        assert_eq!((plan.bytes(), plan.bytes_to_copy()), (10, 5));
    }
}
