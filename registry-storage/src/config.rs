//! The `storage` section of the Docker Registry's `config.yml`, with the registry's
//! environment overrides, as the driver name and parameters it selects.
//!
//! ```yaml
//! storage:
//!   s3: { region: us-east-1, bucket: registry }
//!   delete: { enabled: true }          # not a driver: ignored, as are redirect, cache,
//!   maintenance: { uploadpurging: { enabled: false } }   # maintenance and tag
//! ```
//!
//! The section names exactly one driver (a key other than [`NON_DRIVER_KEYS`]), or is the
//! driver's name alone (`storage: inmemory`); its value, a mapping, holds the parameters.
//! Nested mappings (azure's `credentials:`) become nested JSON objects, and scalars JSON
//! strings, numbers or booleans (see [`crate::yaml`]). The environment is then applied as the
//! registry applies it ([`crate::env`]), and what results must again name exactly one driver.

use std::collections::BTreeMap;

use serde_json::Value;
use storagedriver::Parameters;

use crate::yaml::{self, YamlError};

/// The keys of the `storage` section that configure the registry rather than a driver.
pub(crate) const NON_DRIVER_KEYS: [&str; 5] = ["delete", "redirect", "cache", "maintenance", "tag"];

/// The drivers a `storage` section configures, each with its parameters (one, when valid).
pub(crate) type StorageSection = BTreeMap<String, Parameters>;

/// Why a configuration selects no driver.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration {origin}: {reason}")]
    Read {
        /// The file.
        origin: String,
        /// The system's reason.
        reason: String,
    },
    /// The text is not YAML.
    #[error("{origin}: {source}")]
    Yaml {
        /// The file or environment variable.
        origin: String,
        /// The parser's complaint, with the line or key.
        source: YamlError,
    },
    /// A key holds the wrong kind of value.
    #[error("{origin}: {key}: {reason}")]
    Shape {
        /// The file or environment variable.
        origin: String,
        /// The dotted key.
        key: String,
        /// What was expected.
        reason: String,
    },
    /// Neither the file nor the environment names a driver.
    #[error(
        "{origin} names no storage driver: add a storage section (e.g. `storage: {{filesystem: {{rootdirectory: /var/lib/registry}}}}`) or set REGISTRY_STORAGE"
    )]
    NoDriver {
        /// Where the driver was looked for.
        origin: String,
    },
    /// More than one driver is named.
    #[error(
        "{origin} name more than one storage driver: {} (the registry refuses this too): keep one, or set REGISTRY_STORAGE to the one to use",
        names.join(", ")
    )]
    ManyDrivers {
        /// Where the drivers were found.
        origin: String,
        /// Their names.
        names: Vec<String>,
    },
}

/// Reads the `storage` section of a `config.yml`'s text; `origin` names the file in errors.
/// A file without a `storage` section gives an empty section.
pub(crate) fn storage_section(text: &str, origin: &str) -> Result<StorageSection, ConfigError> {
    let doc = yaml::load(text).map_err(|source| ConfigError::Yaml {
        origin: origin.to_owned(),
        source,
    })?;
    match doc {
        Value::Null => Ok(StorageSection::new()),
        Value::Object(mut top) => match top.remove("storage") {
            None => Ok(StorageSection::new()),
            Some(storage) => section_from_value(storage, origin, "storage"),
        },
        _ => Err(shape(origin, "the document", "expected a mapping")),
    }
}

/// A `storage` value as a section: a driver's name, or a mapping of drivers and other keys.
pub(crate) fn section_from_value(
    storage: Value,
    origin: &str,
    key: &str,
) -> Result<StorageSection, ConfigError> {
    let mut section = StorageSection::new();
    match storage {
        Value::Null => {}
        Value::String(name) if !name.trim().is_empty() => {
            section.insert(name.trim().to_owned(), Parameters::new());
        }
        Value::Object(entries) => {
            for (name, value) in entries {
                if NON_DRIVER_KEYS.contains(&name.as_str()) {
                    continue;
                }
                let params = parameters_from_value(value, origin, &format!("{key}.{name}"))?;
                section.insert(name, params);
            }
        }
        _ => {
            return Err(shape(
                origin,
                key,
                "expected a driver's name or a mapping with one driver",
            ));
        }
    }
    Ok(section)
}

/// A driver's value as its parameters: a mapping, or nothing (`inmemory:`).
pub(crate) fn parameters_from_value(
    value: Value,
    origin: &str,
    key: &str,
) -> Result<Parameters, ConfigError> {
    match value {
        Value::Null => Ok(Parameters::new()),
        Value::Object(map) => Ok(map.into_iter().collect()),
        _ => Err(shape(
            origin,
            key,
            "expected a mapping of the driver's parameters",
        )),
    }
}

/// The one driver of `section`, with its parameters; `origin` says where the section came from.
pub(crate) fn single_driver(
    mut section: StorageSection,
    origin: &str,
) -> Result<(String, Parameters), ConfigError> {
    if section.len() > 1 {
        return Err(ConfigError::ManyDrivers {
            origin: origin.to_owned(),
            names: section.into_keys().collect(),
        });
    }
    section.pop_first().ok_or_else(|| ConfigError::NoDriver {
        origin: origin.to_owned(),
    })
}

fn shape(origin: &str, key: &str, reason: &str) -> ConfigError {
    ConfigError::Shape {
        origin: origin.to_owned(),
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(value: Value) -> Parameters {
        serde_json::from_value(value).expect("an object")
    }

    fn one(text: &str) -> (String, Parameters) {
        let section = storage_section(text, "config.yml").expect("valid");
        single_driver(section, "config.yml").expect("one driver")
    }

    /// The storage section of the registry's sample configuration for the filesystem driver
    /// (`cmd/registry/config-example.yml` in the Go registry), with the keys that are not the
    /// driver's.
    const FILESYSTEM: &str = include_str!("../tests/fixtures/filesystem.yml");

    /// The s3 section as the Go registry's documentation gives it (`docs/content/about/configuration.md`).
    const S3: &str = include_str!("../tests/fixtures/s3.yml");

    /// The azure section as the Go registry's documentation gives it, with `credentials:`.
    const AZURE: &str = include_str!("../tests/fixtures/azure.yml");

    #[test]
    fn filesystem_sample_selects_the_driver_and_ignores_the_other_keys() {
        let (driver, parameters) = one(FILESYSTEM);
        assert_eq!(driver, "filesystem");
        assert_eq!(
            parameters,
            params(json!({"rootdirectory": "/var/lib/registry"}))
        );
    }

    #[test]
    fn s3_sample_keeps_types() {
        let (driver, parameters) = one(S3);
        assert_eq!(driver, "s3");
        assert_eq!(parameters["bucket"], json!("bucketname"));
        assert_eq!(parameters["chunksize"], json!(5242880));
        assert_eq!(parameters["forcepathstyle"], json!(true));
        assert_eq!(
            parameters["regionendpoint"],
            json!("http://myobjects.local")
        );
        assert_eq!(
            parameters.len(),
            18,
            "every key of the s3 section, and only those"
        );
        assert!(!parameters.contains_key("delete") && !parameters.contains_key("cache"));
    }

    #[test]
    fn azure_sample_nests_credentials() {
        let (driver, parameters) = one(AZURE);
        assert_eq!(driver, "azure");
        assert_eq!(parameters["realm"], json!("core.windows.net"));
        assert_eq!(
            parameters["credentials"],
            json!({"type": "client_secret", "clientid": "client_id_string",
                   "tenantid": "tenant_id_string", "secret": "secret_string"})
        );
    }

    #[test]
    fn driver_name_alone_and_empty_parameters() {
        assert_eq!(
            one("storage: inmemory\n"),
            ("inmemory".into(), Parameters::new())
        );
        assert_eq!(
            one("storage:\n  inmemory:\n"),
            ("inmemory".into(), Parameters::new())
        );
    }

    #[test]
    fn no_driver_and_many_drivers_are_errors() {
        for text in [
            "version: 0.1\n",
            "",
            "storage:\n  delete: {enabled: true}\n",
        ] {
            let section = storage_section(text, "config.yml").expect("valid yaml");
            let err = single_driver(section, "config.yml").expect_err("no driver");
            assert!(
                err.to_string()
                    .starts_with("config.yml names no storage driver"),
                "{err}"
            );
        }
        let section =
            storage_section("storage:\n  s3: {}\n  filesystem: {}\n", "c.yml").expect("yaml");
        let err = single_driver(section, "c.yml").expect_err("two drivers");
        assert!(err.to_string().contains("filesystem, s3"), "{err}");
    }

    #[test]
    fn wrong_shapes_name_the_key() {
        let err = storage_section("storage:\n  s3: bucketname\n", "c.yml").expect_err("shape");
        assert_eq!(
            err.to_string(),
            "c.yml: storage.s3: expected a mapping of the driver's parameters"
        );
        let err = storage_section("storage: [s3]\n", "c.yml").expect_err("shape");
        assert!(
            err.to_string().starts_with("c.yml: storage: expected"),
            "{err}"
        );
        let err = storage_section("- a\n", "c.yml").expect_err("shape");
        assert!(err.to_string().contains("expected a mapping"), "{err}");
    }
}
