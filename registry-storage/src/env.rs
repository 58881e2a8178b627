//! The registry's environment overrides of its `storage` section, applied as the Go registry
//! applies them (`configuration/parser.go`), with two improvements noted below.
//!
//! - `REGISTRY_STORAGE=<driver>` replaces the whole section with that driver and no
//!   parameters (the registry does the same: the file's parameters are dropped, so give the
//!   driver's parameters in the environment too). A YAML mapping as the value is read as a
//!   whole section.
//! - `REGISTRY_STORAGE_<DRIVER>_<KEY>=value` sets the driver's parameter `<key>` (lowercased)
//!   to the string `value`; the drivers' parameter parser reads numbers and booleans from
//!   strings. `_` separates levels: `REGISTRY_STORAGE_AZURE_CREDENTIALS_TYPE` sets `type` in the
//!   object `credentials`. A driver the section does not hold yet is added, as in the
//!   registry, so the environment alone can configure one.
//! - `REGISTRY_STORAGE_<DRIVER>=<yaml mapping>` sets all the driver's parameters.
//! - Variables of the keys that are not drivers (`REGISTRY_STORAGE_DELETE_ENABLED`, ...) and of
//!   the IPC protocol (`REGISTRY_STORAGE_IPC_*`) are ignored.
//!
//! The variables apply in the order of their names, as in the registry, so `REGISTRY_STORAGE`
//! comes before the variables that fill in its driver. Unlike the registry, a key that
//! itself holds `_` is found: a name's segments are first matched, longest first, against the
//! keys already there (case-insensitively) and the built-in drivers' keys with an `_`
//! (`max_retries`, `retry_delay`), so `REGISTRY_STORAGE_AZURE_MAX_RETRIES` sets `max_retries`
//! rather than `max.retries`; a third-party driver named with an `_` that the file holds is
//! found the same way.

use serde_json::{Map, Value};

use crate::config::{self, ConfigError, NON_DRIVER_KEYS, StorageSection};
use crate::yaml;

/// The variable that names the driver.
pub(crate) const STORAGE_VAR: &str = "REGISTRY_STORAGE";

/// The prefix of the variables of the IPC protocol, which are not configuration.
const IPC_PREFIX: &str = "REGISTRY_STORAGE_IPC_";

/// Parameter keys of the built-in drivers that hold an `_`.
const UNDERSCORE_KEYS: [&str; 2] = ["max_retries", "retry_delay"];

/// True for a variable this module reads.
pub(crate) fn is_storage_var(name: &str) -> bool {
    (name == STORAGE_VAR || name.starts_with("REGISTRY_STORAGE_")) && !name.starts_with(IPC_PREFIX)
}

/// Applies the variables among `vars` that override the storage section, in name order, and
/// returns the names of those that changed it.
pub(crate) fn apply(
    section: &mut StorageSection,
    vars: &[(String, String)],
) -> Result<Vec<String>, ConfigError> {
    let mut vars: Vec<&(String, String)> = vars
        .iter()
        .filter(|(name, _)| is_storage_var(name))
        .collect();
    vars.sort();
    let mut applied = Vec::new();
    for (name, value) in vars {
        if name == STORAGE_VAR {
            let parsed = yaml::load(value).map_err(|source| ConfigError::Yaml {
                origin: name.clone(),
                source,
            })?;
            *section = match parsed {
                // `REGISTRY_STORAGE=` (empty) removes the driver, as the registry's YAML does.
                Value::Null => StorageSection::new(),
                // A name that YAML reads as a number or boolean is still a name.
                Value::Number(_) | Value::Bool(_) => config::section_from_value(
                    Value::String(value.trim().to_owned()),
                    name,
                    "storage",
                )?,
                other => config::section_from_value(other, name, "storage")?,
            };
            applied.push(name.clone());
            continue;
        }
        let segments: Vec<&str> = name[STORAGE_VAR.len() + 1..].split('_').collect();
        if segments.iter().any(|s| s.is_empty())
            || NON_DRIVER_KEYS.contains(&segments[0].to_ascii_lowercase().as_str())
        {
            continue;
        }
        let (driver, used) = match longest_match(section.keys(), &segments) {
            Some((key, used)) => (key.clone(), used),
            None => (segments[0].to_ascii_lowercase(), 1),
        };
        let rest = &segments[used..];
        let params = section.entry(driver.clone()).or_default();
        if rest.is_empty() {
            let parsed = yaml::load(value).map_err(|source| ConfigError::Yaml {
                origin: name.clone(),
                source,
            })?;
            *params = config::parameters_from_value(parsed, name, &format!("storage.{driver}"))?;
        } else {
            let mut object: Map<String, Value> = std::mem::take(params).into_iter().collect();
            set(&mut object, rest, value, true);
            *params = object.into_iter().collect();
        }
        applied.push(name.clone());
    }
    Ok(applied)
}

/// Sets `value` at the key the upper-case `segments` name in `object`, creating objects.
fn set(object: &mut Map<String, Value>, segments: &[&str], value: &str, top: bool) {
    let joined = segments.join("_").to_ascii_lowercase();
    let known = top && UNDERSCORE_KEYS.contains(&joined.as_str());
    let found = longest_match(object.keys(), segments);
    let whole = match &found {
        Some((key, used)) if *used == segments.len() => Some((*key).clone()),
        _ if known || segments.len() == 1 => Some(joined),
        _ => None,
    };
    if let Some(key) = whole {
        // The registry writes the lower-case key; any spelling of it the file used goes.
        object.retain(|k, _| !k.eq_ignore_ascii_case(&key));
        object.insert(key.to_ascii_lowercase(), Value::String(value.to_owned()));
        return;
    }
    let (key, used) = match found {
        Some((key, used)) => (key.clone(), used),
        None => (segments[0].to_ascii_lowercase(), 1),
    };
    let inner = object
        .entry(key)
        .and_modify(|v| {
            if !v.is_object() {
                *v = Value::Object(Map::new());
            }
        })
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(inner) = inner {
        set(inner, &segments[used..], value, false);
    }
}

/// The key among `keys` that the most leading `segments` spell (joined by `_`, any case), with
/// how many segments it takes.
fn longest_match<'k>(
    keys: impl Iterator<Item = &'k String>,
    segments: &[&str],
) -> Option<(&'k String, usize)> {
    keys.filter_map(|key| {
        (1..=segments.len())
            .rev()
            .find(|&n| segments[..n].join("_").eq_ignore_ascii_case(key))
            .map(|n| (key, n))
    })
    .max_by_key(|&(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{single_driver, storage_section};
    use serde_json::json;
    use storagedriver::Parameters;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn resolve(text: &str, env: &[(&str, &str)]) -> Result<(String, Parameters), ConfigError> {
        let mut section = storage_section(text, "config.yml")?;
        apply(&mut section, &vars(env))?;
        single_driver(section, "config.yml and the environment")
    }

    const FILESYSTEM: &str = "storage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n  delete:\n    enabled: true\n";

    #[test]
    fn a_parameter_override_wins_over_the_file() {
        let (driver, params) = resolve(
            FILESYSTEM,
            &[("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/srv/registry")],
        )
        .expect("resolves");
        assert_eq!(driver, "filesystem");
        assert_eq!(params["rootdirectory"], json!("/srv/registry"));
        assert_eq!(params.len(), 1);
    }

    #[test]
    fn registry_storage_replaces_the_driver_and_its_parameters() {
        let (driver, params) = resolve(
            FILESYSTEM,
            &[
                ("REGISTRY_STORAGE_S3_BUCKET", "registry"),
                ("REGISTRY_STORAGE", "s3"),
                ("REGISTRY_STORAGE_S3_REGION", "eu-west-1"),
            ],
        )
        .expect("resolves");
        assert_eq!(driver, "s3");
        assert_eq!(
            params,
            serde_json::from_value::<Parameters>(
                json!({"bucket": "registry", "region": "eu-west-1"})
            )
            .expect("object")
        );
    }

    #[test]
    fn same_driver_named_again_drops_the_file_parameters_as_the_registry_does() {
        let (driver, params) =
            resolve(FILESYSTEM, &[("REGISTRY_STORAGE", "filesystem")]).expect("resolves");
        assert_eq!(driver, "filesystem");
        assert!(params.is_empty());
    }

    #[test]
    fn nested_keys_become_objects_and_merge_with_the_file() {
        let text = "storage:\n  azure:\n    accountname: acct\n    credentials:\n      type: default\n      clientid: c\n";
        let (driver, params) = resolve(
            text,
            &[
                ("REGISTRY_STORAGE_AZURE_CREDENTIALS_TYPE", "client_secret"),
                ("REGISTRY_STORAGE_AZURE_CREDENTIALS_SECRET", "s3cr3t"),
                ("REGISTRY_STORAGE_AZURE_MAX_RETRIES", "7"),
                ("REGISTRY_STORAGE_AZURE_ACCOUNTKEY", "k=="),
            ],
        )
        .expect("resolves");
        assert_eq!(driver, "azure");
        assert_eq!(
            params["credentials"],
            json!({"type": "client_secret", "clientid": "c", "secret": "s3cr3t"})
        );
        assert_eq!(params["max_retries"], json!("7"));
        assert_eq!(params["accountkey"], json!("k=="));
        assert_eq!(params["accountname"], json!("acct"));
    }

    #[test]
    fn environment_alone_configures_a_driver() {
        let (driver, params) = resolve(
            "",
            &[
                ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/data"),
                ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
                ("REGISTRY_STORAGE_IPC_PARAMETERS", "{}"),
                (
                    "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED",
                    "false",
                ),
                ("REGISTRY_HTTP_ADDR", ":5000"),
            ],
        )
        .expect("resolves");
        assert_eq!(driver, "filesystem");
        assert_eq!(params.len(), 1);
        assert_eq!(params["rootdirectory"], json!("/data"));
    }

    #[test]
    fn a_second_driver_from_the_environment_is_an_error() {
        let err =
            resolve(FILESYSTEM, &[("REGISTRY_STORAGE_S3_BUCKET", "b")]).expect_err("two drivers");
        assert!(err.to_string().contains("filesystem, s3"), "{err}");
    }

    #[test]
    fn existing_keys_match_case_insensitively_and_take_the_lower_case_spelling() {
        let text = "storage:\n  filesystem:\n    rootDirectory: /old\n";
        let (_, params) = resolve(
            text,
            &[("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/new")],
        )
        .expect("ok");
        assert_eq!(params.len(), 1);
        assert_eq!(params["rootdirectory"], json!("/new"));
    }

    #[test]
    fn whole_driver_from_a_yaml_value() {
        let (driver, params) = resolve(
            "",
            &[("REGISTRY_STORAGE_S3", "{bucket: b, chunksize: 5242880}")],
        )
        .expect("ok");
        assert_eq!(driver, "s3");
        assert_eq!(params["chunksize"], json!(5242880));
        let (driver, params) = resolve(
            "",
            &[(
                "REGISTRY_STORAGE",
                "{inmemory: {}, delete: {enabled: true}}",
            )],
        )
        .expect("ok");
        assert_eq!((driver.as_str(), params.len()), ("inmemory", 0));
    }

    #[test]
    fn bad_yaml_in_a_variable_names_it() {
        let err = resolve("", &[("REGISTRY_STORAGE_S3", "{bucket: [")]).expect_err("bad");
        assert!(
            err.to_string().starts_with("REGISTRY_STORAGE_S3: line"),
            "{err}"
        );
    }
}
