//! Helpers for the tests that run against a server (the S3 and Azure drivers' regression and
//! process tests): skipping when the server is not configured, names no other test uses, and
//! what a driver's walk sees. With the `object-store` feature, [`RawStore`]: the keys below a
//! driver's root as another tool sees them.
//!
//! ```
//! # fn server() -> Result<&'static str, String> { Err("not configured".into()) }
//! use testsuites::servers::{or_skip, unique_root};
//!
//! # if testsuites::sizes::servers_required() { return; }
//! let Some(server) = or_skip(server()) else { return };
//! let root = unique_root("my-test");
//! # let _ = (server, root);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use storagedriver::{StorageDriver, WalkControl, WalkOptions};

use crate::behaviors::ok;

/// `found`, or `None` with a note when what the test needs is not configured (`Err` says
/// why); under `STORAGEDRIVER_REQUIRE_SERVERS=1` that is a failure instead.
///
/// # Panics
///
/// On `Err` under `STORAGEDRIVER_REQUIRE_SERVERS=1`, with the reason.
pub fn or_skip<T>(found: Result<T, String>) -> Option<T> {
    match found {
        Ok(found) => Some(found),
        Err(reason) if crate::sizes::servers_required() => {
            panic!("STORAGEDRIVER_REQUIRE_SERVERS=1, but {reason}")
        }
        Err(reason) => {
            eprintln!("skipped: {reason}");
            None
        }
    }
}

/// The longest Azure container name.
const MAX_NAME: usize = 63;

/// A name no other test uses (in this run or another), from `label`: the time, the process id
/// and a counter after the label. It is a valid S3 key and a valid Azure container name:
/// lowercase letters, digits and single hyphens, starting and ending with a letter or digit,
/// 3 to 63 characters. The label is made so: lowercased, every run of other characters a
/// hyphen, and cut when the name would be too long.
pub fn unique_name(label: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let suffix = format!(
        "{:x}-{}-{}",
        nanos & 0xffff_ffff_ffff,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut prefix = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            prefix.push(c.to_ascii_lowercase());
        } else if !prefix.is_empty() && !prefix.ends_with('-') {
            prefix.push('-');
        }
    }
    prefix.truncate(MAX_NAME.saturating_sub(suffix.len() + 1));
    let prefix = prefix.trim_end_matches('-');
    if prefix.is_empty() {
        suffix
    } else {
        format!("{prefix}-{suffix}")
    }
}

/// A root prefix no other test uses: `/tests/` and a [`unique_name`] from `label`.
pub fn unique_root(label: &str) -> String {
    format!("/tests/{}", unique_name(label))
}

/// Every path a default walk of `d` from `from` visits, in order.
///
/// # Panics
///
/// When the walk fails.
pub async fn walk_paths(d: &dyn StorageDriver, from: &str) -> Vec<String> {
    let mut seen = Vec::new();
    ok(
        d.walk(from, &WalkOptions::default(), &mut |info| {
            seen.push(info.path.clone());
            WalkControl::Continue
        })
        .await,
        &format!("walk {from}"),
    );
    seen
}

#[cfg(feature = "object-store")]
pub use raw::RawStore;

#[cfg(feature = "object-store")]
mod raw {
    use std::sync::Arc;

    use futures::TryStreamExt;
    use object_store::path::Path as Key;
    use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

    /// The keys below a driver's root as another tool sees them: an `object_store` client of
    /// the driver's bucket or container (built with no root directory) and the driver's root
    /// directory, to write and list keys without the driver.
    #[derive(Debug, Clone)]
    pub struct RawStore {
        store: Arc<dyn ObjectStore>,
        root: String,
    }

    impl RawStore {
        /// The keys of `store` below the driver root directory `root` (`/tests/x` or `tests/x`).
        pub fn new(store: Arc<dyn ObjectStore>, root: &str) -> Self {
            RawStore {
                store,
                root: root.trim_start_matches('/').to_owned(),
            }
        }

        /// The store, below nothing.
        pub fn store(&self) -> &dyn ObjectStore {
            self.store.as_ref()
        }

        /// The store's key of `rest` below the root (`rest` has no leading `/`).
        ///
        /// # Panics
        ///
        /// When that is not a valid key.
        pub fn key(&self, rest: &str) -> Key {
            let key = format!("{}/{rest}", self.root);
            match Key::parse(&key) {
                Ok(key) => key,
                Err(e) => panic!("{key:?} is not a key: {e}"),
            }
        }

        /// Writes `content` at [`key(rest)`](Self::key), without the driver.
        ///
        /// # Panics
        ///
        /// When the write fails.
        pub async fn put(&self, rest: impl AsRef<str>, content: &'static [u8]) {
            let key = self.key(rest.as_ref());
            if let Err(e) = self.store.put(&key, PutPayload::from_static(content)).await {
                panic!("put {key} without the driver: {e}");
            }
        }

        /// Every object whose key is below [`key(rest)`](Self::key) (`~uploads`: the
        /// reserved keys of the root's uploads).
        ///
        /// # Panics
        ///
        /// When the listing fails.
        pub async fn list(&self, rest: &str) -> Vec<ObjectMeta> {
            let prefix = self.key(rest);
            match self.store.list(Some(&prefix)).try_collect().await {
                Ok(objects) => objects,
                Err(e) => panic!("list {prefix} without the driver: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_container(name: &str) -> bool {
        (3..=MAX_NAME).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-')
            && !name.contains("--")
    }

    #[test]
    fn unique_names_are_container_names() {
        let long = "x".repeat(100);
        for label in [
            "fresh",
            "ipc-garage-tmpAbC_12",
            "",
            "--",
            "A__b--C.",
            "é-é",
            long.as_str(),
        ] {
            let name = unique_name(label);
            assert!(valid_container(&name), "{label:?} gave {name:?}");
        }
        assert!(unique_name("ipc-garage-tmpAbC_12").starts_with("ipc-garage-tmpabc-12-"));
        assert_ne!(unique_name("same"), unique_name("same"));
        assert!(unique_root("process").starts_with("/tests/process-"));
    }
}
