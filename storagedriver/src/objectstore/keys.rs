//! The one mapping between driver paths and object keys, and the reserved keys of uploads.
//!
//! A path's key is the root prefix followed by the path without its leading `/`: with the
//! root `docker`, `/a/b` is `docker/a/b`; with no root it is `a/b`. Keys never start with `/`
//! and never hold `//`.
//!
//! Writer state lives under `<root>/~uploads/<path>/`: `~state-<token>` (a writer's JSON
//! record of the upload) and `~tail-<token>` (bytes shorter than a part). `~` is not a path character, so no valid path
//! maps to these keys and `list`/`walk` skip them like any other invalid key.

use object_store::path::Path;

use crate::error::{Error, Result};

/// The component that holds every writer's state, below the root.
pub(crate) const UPLOADS: &str = "~uploads";
/// The prefix of the names of an upload's state records.
pub(crate) const STATE: &str = "~state-";
/// The prefix of the names of an upload's tail objects.
pub(crate) const TAIL: &str = "~tail-";

/// Maps paths to keys below one root prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// The root prefix without leading or trailing `/` (empty for the bucket's top).
    root: String,
}

impl Keys {
    /// Keys below `rootdirectory`; leading, trailing and doubled `/` are dropped. A root that
    /// object_store cannot hold as a key prefix (a `.` or `..` component, control characters)
    /// is an error naming `driver`.
    pub(crate) fn new(driver: &str, rootdirectory: &str) -> Result<Self> {
        let root = rootdirectory
            .split('/')
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        if !root.is_empty() {
            Path::parse(&root).map_err(|e| {
                Error::invalid_parameter(
                    driver,
                    "rootdirectory",
                    format!("not a valid key prefix: {e}"),
                )
            })?;
        }
        Ok(Keys { root })
    }

    /// The root prefix (empty for none).
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// `root` joined with `rest` (which has no leading `/`).
    fn join(&self, rest: &str) -> String {
        match (self.root.is_empty(), rest.is_empty()) {
            (true, _) => rest.to_owned(),
            (false, true) => self.root.clone(),
            (false, false) => format!("{}/{rest}", self.root),
        }
    }

    /// The key of a valid path, or of the root (`/`) for a listing.
    pub(crate) fn object(&self, path: &str) -> Path {
        raw(self.join(path.trim_start_matches('/')))
    }

    /// The prefix of every upload of `path` and of the paths below it.
    pub(crate) fn uploads(&self, path: &str) -> Path {
        raw(self.join(&format!("{UPLOADS}{path}")))
    }

    /// The state record the writer `token` keeps for `path`.
    pub(crate) fn state(&self, path: &str, token: &str) -> Path {
        raw(self.join(&format!("{UPLOADS}{path}/{STATE}{token}")))
    }

    /// The tail object a writer with `token` keeps for `path`.
    pub(crate) fn tail(&self, path: &str, token: &str) -> Path {
        raw(self.join(&format!("{UPLOADS}{path}/{TAIL}{token}")))
    }

    /// The driver path of a listed key below `base` (the key of the listed directory), when
    /// the key is a valid path: `None` for reserved keys, keys outside the grammar, and the
    /// directory marker `base/` itself.
    pub(crate) fn path_below(&self, base: &Path, key: &Path) -> Option<String> {
        let rel = relative(base, key)?;
        let dir = self.relative_dir(base)?;
        let path = if dir.is_empty() {
            format!("/{rel}")
        } else {
            format!("/{dir}/{rel}")
        };
        crate::path::validate(&path).ok().map(|()| path)
    }

    /// The driver directory (without its leading `/`) that `base` is the key of.
    fn relative_dir<'a>(&self, base: &'a Path) -> Option<&'a str> {
        let base = base.as_ref();
        if self.root.is_empty() {
            return Some(base);
        }
        match base.strip_prefix(self.root.as_str()) {
            Some("") => Some(""),
            Some(rest) => rest.strip_prefix('/'),
            None => None,
        }
    }
}

/// `key` relative to `base`, when `key` lies strictly below it.
pub(crate) fn relative<'a>(base: &Path, key: &'a Path) -> Option<&'a str> {
    let key = key.as_ref();
    let base = base.as_ref();
    let rest = if base.is_empty() {
        key
    } else {
        key.strip_prefix(base)?.strip_prefix('/')?
    };
    (!rest.is_empty()).then_some(rest)
}

/// A key built from a valid path and a root that [`Keys::new`] accepted: every component is
/// non-empty and free of control characters, so object_store takes it as it is (its fallback,
/// which percent-encodes, is never reached for such keys).
fn raw(key: String) -> Path {
    Path::parse(&key).unwrap_or_else(|_| Path::from(key.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_no_leading_or_doubled_slashes() {
        let keys = Keys::new("s3", "//docker//registry/").expect("a value");
        assert_eq!(keys.root(), "docker/registry");
        assert_eq!(keys.object("/a/b").as_ref(), "docker/registry/a/b");
        assert_eq!(keys.object("/").as_ref(), "docker/registry");
        let bare = Keys::new("s3", "").expect("a value");
        assert_eq!(bare.object("/a").as_ref(), "a");
        assert_eq!(bare.object("/").as_ref(), "");
    }

    #[test]
    fn upload_keys_are_reserved() {
        let keys = Keys::new("s3", "/r").expect("a value");
        assert_eq!(
            keys.state("/a/b", "t1").as_ref(),
            "r/~uploads/a/b/~state-t1"
        );
        assert_eq!(keys.tail("/a/b", "t1").as_ref(), "r/~uploads/a/b/~tail-t1");
        assert_eq!(keys.uploads("/a").as_ref(), "r/~uploads/a");
        let base = keys.object("/");
        assert_eq!(keys.path_below(&base, &keys.state("/a", "t")), None);
        assert_eq!(
            keys.path_below(&base, &keys.object("/a/b")).as_deref(),
            Some("/a/b")
        );
    }

    #[test]
    fn invalid_keys_and_markers_are_skipped() {
        let keys = Keys::new("s3", "").expect("a value");
        let base = keys.object("/dir");
        assert_eq!(keys.path_below(&base, &Path::from("dir/Bad Key")), None);
        assert_eq!(keys.path_below(&base, &Path::from("dir")), None);
        assert_eq!(keys.path_below(&base, &Path::from("dirx/a")), None);
        assert_eq!(
            keys.path_below(&base, &Path::from("dir/a")).as_deref(),
            Some("/dir/a")
        );
    }

    #[test]
    fn a_root_object_store_cannot_hold_is_rejected() {
        let err = Keys::new("s3", "/a/../b").expect_err("an error");
        assert!(err.to_string().contains("rootdirectory"), "{err}");
    }
}
