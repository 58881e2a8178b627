//! Scratch space for the cases of `check`: a fresh, empty store per case on the selected
//! driver, and its removal afterwards.
//!
//! The suite's behaviours assume an empty store. How `check` gives each case one depends on
//! the driver ([`Strategy`]):
//!
//! - a driver that is not persistent (`inmemory`): a new instance per fixture, empty by
//!   construction; a "new instance over the same storage" is the same instance, as in the
//!   driver's own suite;
//! - a driver whose `rootdirectory` this tool knows (`filesystem`, `s3`, `azure`, in process or
//!   as their executables with `--ipc`): new instances whose `rootdirectory` is
//!   `<rootdirectory>/registry-storage-check-<random>/<case>`, as the drivers' own suites run;
//! - a driver named with `check --root-param KEY`: the same, with the parameter KEY;
//! - any other driver (an external executable, whose parameters this tool cannot know): the
//!   selected instance wrapped in a [`ScopedDriver`] below `/registry-storage-check-<random>/<case>`,
//!   and new instances of the driver wrapped the same way.
//!
//! After each case, `/registry-storage-check-<random>` goes, through an instance of the selected
//! driver as it was given.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use storagedriver::{Error, Parameters, StorageDriver};
use testsuites::scoped::ScopedDriver;
use testsuites::servers::unique_name;
use testsuites::{Fixture, MakeFixture, make_fixture};

use crate::cleanup;
use crate::exit::CliError;
use crate::opener::Opener;

/// The parameter of the drivers below that holds their root.
const ROOT_KEY: &str = "rootdirectory";

/// The drivers whose `rootdirectory` parameter this tool knows, with its default: a directory
/// (filesystem) or a key prefix (s3, azure), below which a driver sees only its own paths.
const ROOTED: &[(&str, &str)] = &[
    ("filesystem", "/var/lib/registry"),
    ("s3", ""),
    ("azure", ""),
];

/// How each case gets an empty store.
#[derive(Debug, Clone)]
enum Strategy {
    /// A new instance of a driver that keeps nothing beyond its value.
    FreshInstance,
    /// New instances whose root parameter (`rootdirectory`) is below the selected one.
    RootDirectory {
        /// The parameter's key.
        key: String,
        /// The selected value (or the driver's default).
        parent: String,
    },
    /// The driver wrapped below a prefix of its own store.
    Scoped {
        /// Paths refused by the wrappers because they do not fit below the prefix.
        refusals: Arc<AtomicU64>,
    },
}

/// The scratch space of one `check` run.
#[derive(Debug)]
pub(crate) struct Scratch {
    opener: Opener,
    /// The selected driver, as it was given.
    base: Arc<dyn StorageDriver>,
    strategy: Strategy,
    /// `/registry-storage-check-<random>`: every case's scratch lies below it.
    top: String,
}

impl Scratch {
    /// The scratch space for `base`, the driver `opener` opens. `root_param` names the
    /// parameter that holds the root of a driver this tool does not know (`check
    /// --root-param`).
    ///
    /// # Errors
    ///
    /// Invalid input when `root_param` is not among the selected parameters as a string.
    pub(crate) fn new(
        opener: Opener,
        base: Arc<dyn StorageDriver>,
        root_param: Option<&str>,
    ) -> Result<Self, CliError> {
        let given = match root_param {
            Some(key) => match opener.parameters().get(key) {
                Some(Value::String(parent)) => Some((key.to_owned(), parent.clone())),
                _ => {
                    return Err(CliError::invalid(format!(
                        "--root-param {key}: the driver's parameters have no {key} string (set it with -p {key}=...)"
                    )));
                }
            },
            None => None,
        };
        let strategy = if !base.capabilities().persistent {
            Strategy::FreshInstance
        } else if let Some((key, parent)) = given {
            Strategy::RootDirectory { key, parent }
        } else if let Some(parent) = known_root(opener.name(), opener.parameters()) {
            Strategy::RootDirectory {
                key: ROOT_KEY.to_owned(),
                parent,
            }
        } else {
            Strategy::Scoped {
                refusals: Arc::new(AtomicU64::new(0)),
            }
        };
        Ok(Scratch {
            opener,
            base,
            strategy,
            top: format!("/{}", unique_name("registry-storage-check")),
        })
    }

    /// How the cases get their store, for people.
    pub(crate) fn describe(&self) -> String {
        match &self.strategy {
            Strategy::FreshInstance => {
                "each case on a new instance of the driver (it is not persistent)".to_owned()
            }
            Strategy::RootDirectory { key, parent } => format!(
                "each case with {key} {}/<case>",
                child_root(parent, &self.top)
            ),
            Strategy::Scoped { .. } => {
                format!("each case below {}/<case> of the driver's store", self.top)
            }
        }
    }

    /// Paths refused so far because they do not fit below a scope's prefix.
    pub(crate) fn refusals(&self) -> u64 {
        match &self.strategy {
            Strategy::Scoped { refusals } => refusals.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// Makes the fixtures of `case`: the first below `<top>/<case>`, later ones (the model
    /// test makes one per sequence) below `<top>/<case>-2`, `-3`, ...
    pub(crate) fn fixtures_for(&self, case: &str) -> MakeFixture {
        let opener = self.opener.clone();
        let base = self.base.clone();
        let strategy = self.strategy.clone();
        let top = self.top.clone();
        let case = case.to_owned();
        let made = Arc::new(AtomicU64::new(0));
        make_fixture(move || {
            let n = made.fetch_add(1, Ordering::Relaxed) + 1;
            let name = if n == 1 {
                case.clone()
            } else {
                format!("{case}-{n}")
            };
            fixture(
                opener.clone(),
                base.clone(),
                strategy.clone(),
                format!("{top}/{name}"),
            )
        })
    }

    /// Deletes everything the cases wrote (nothing to do for drivers that are not persistent).
    pub(crate) async fn clean(&self) -> Result<(), Error> {
        if matches!(self.strategy, Strategy::FreshInstance) {
            return Ok(());
        }
        cleanup::remove(self.base.as_ref(), &self.top).await
    }
}

/// A fixture whose store is `scope` (`<top>/<case>`) as the strategy makes it.
async fn fixture(
    opener: Opener,
    base: Arc<dyn StorageDriver>,
    strategy: Strategy,
    scope: String,
) -> Fixture {
    match strategy {
        Strategy::FreshInstance => Fixture::new(open_or_panic(&opener, None).await),
        Strategy::RootDirectory { key, parent } => {
            let root = Arc::new((key, child_root(&parent, &scope)));
            let driver = open_or_panic(&opener, Some(&root)).await;
            Fixture::new(driver).with_reopen(move || {
                let opener = opener.clone();
                let root = root.clone();
                async move { open_or_panic(&opener, Some(&root)).await }
            })
        }
        Strategy::Scoped { refusals } => {
            let scoped = match ScopedDriver::new(base, scope) {
                Ok(scoped) => scoped.counting_refusals(refusals),
                Err(e) => panic!("cannot scope the driver: {e}"),
            };
            let template = scoped.clone();
            Fixture::new(Arc::new(scoped)).with_reopen(move || {
                let opener = opener.clone();
                let template = template.clone();
                async move {
                    let inner = open_or_panic(&opener, None).await;
                    Arc::new(template.with_inner(inner)) as Arc<dyn StorageDriver>
                }
            })
        }
    }
}

/// A new instance of the driver, with the root parameter `(key, value)` when given. A failure
/// is a panic: the case that needed the driver fails with it.
async fn open_or_panic(opener: &Opener, root: Option<&(String, String)>) -> Arc<dyn StorageDriver> {
    let mut parameters = opener.parameters().clone();
    if let Some((key, value)) = root {
        parameters.insert(key.clone(), Value::String(value.clone()));
    }
    match opener.open_with(&parameters).await {
        Ok(driver) => driver,
        Err(e) => panic!("cannot create a new instance of the driver: {e}"),
    }
}

/// The selected `rootdirectory` of a driver this tool knows, or its default; `None` for other
/// drivers, and when the parameter is not a string (the driver refuses it then anyway).
fn known_root(driver: &str, parameters: &Parameters) -> Option<String> {
    let (_, default) = ROOTED.iter().find(|(name, _)| *name == driver)?;
    match parameters.get(ROOT_KEY) {
        None | Some(Value::Null) => Some((*default).to_owned()),
        Some(Value::String(root)) => Some(root.clone()),
        Some(_) => None,
    }
}

/// `parent` (a directory, a key prefix, or empty) with `scope` (`/a/b`) below it.
fn child_root(parent: &str, scope: &str) -> String {
    format!("{}{scope}", parent.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(value: Value) -> Parameters {
        serde_json::from_value(value).expect("an object")
    }

    #[test]
    fn known_roots_and_their_defaults() {
        assert_eq!(
            known_root("filesystem", &params(json!({"rootdirectory": "/srv/r/"}))),
            Some("/srv/r/".to_owned())
        );
        assert_eq!(
            known_root("filesystem", &params(json!({}))),
            Some("/var/lib/registry".to_owned())
        );
        assert_eq!(
            known_root("s3", &params(json!({"bucket": "b"}))),
            Some(String::new())
        );
        assert_eq!(
            known_root("pydir", &params(json!({"rootdirectory": "/x"}))),
            None
        );
        assert_eq!(
            known_root("azure", &params(json!({"rootdirectory": 3}))),
            None
        );
    }

    #[test]
    fn child_roots() {
        assert_eq!(child_root("/srv/r/", "/c-1/case"), "/srv/r/c-1/case");
        assert_eq!(child_root("", "/c-1/case"), "/c-1/case");
        assert_eq!(child_root("/prefix", "/c-1/case"), "/prefix/c-1/case");
    }
}
