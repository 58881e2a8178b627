//! Driver selection: which driver, with which parameters, from the command line, the
//! registry's `config.yml` and environment, or the default (see `--help`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use storagedriver::{Parameters, StorageDriver};

use crate::cli::{DEFAULT_ROOT, SelectionArgs};
use crate::config::{self, ConfigError, StorageSection};
use crate::env;
use crate::exit::CliError;

/// The variable that names the registry's configuration file when `--config` is not given.
pub(crate) const CONFIG_PATH_VAR: &str = "REGISTRY_CONFIGURATION_PATH";

/// A driver to create: its name, its parameters, and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Selection {
    /// The driver's name, as the factory knows it.
    pub(crate) driver: String,
    /// Its parameters.
    pub(crate) parameters: Parameters,
    /// Where the choice came from, for people: `config /etc/...yml, environment REGISTRY_...`.
    pub(crate) source: String,
}

/// What selection reads from the process: the registry's variables and the current directory.
#[derive(Debug, Clone, Default)]
pub(crate) struct Environment {
    /// The variables whose names start with `REGISTRY_`.
    pub(crate) vars: Vec<(String, String)>,
    /// The current directory, which the default root and a relative `--config` are under.
    pub(crate) cwd: PathBuf,
}

impl Environment {
    /// The process's own; a `REGISTRY_` variable whose value is not UTF-8 is an error.
    pub(crate) fn current() -> Result<Self, CliError> {
        let mut vars = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str().filter(|n| n.starts_with("REGISTRY_")) else {
                continue;
            };
            let value = value.into_string().map_err(|_| {
                CliError::invalid(format!("environment variable {name} is not valid UTF-8"))
            })?;
            vars.push((name.to_owned(), value));
        }
        let cwd = std::env::current_dir()
            .map_err(|e| CliError::local("reading the current directory", &e))?;
        Ok(Environment { vars, cwd })
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Selects the driver as `--help` describes.
pub(crate) fn select(
    args: &SelectionArgs,
    environment: &Environment,
) -> Result<Selection, CliError> {
    let mut selection = if let Some(driver) = &args.driver {
        Selection {
            driver: driver.clone(),
            parameters: Parameters::new(),
            source: format!("--driver {driver}"),
        }
    } else if let Some(file) = args.config.clone().or_else(|| {
        environment
            .var(CONFIG_PATH_VAR)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    }) {
        from_config(&environment.cwd.join(file), environment)?
    } else if environment
        .vars
        .iter()
        .any(|(name, _)| env::is_storage_var(name))
    {
        from_environment(environment)?
    } else {
        let root = environment.cwd.join(DEFAULT_ROOT);
        let mut parameters = Parameters::new();
        parameters.insert(
            "rootdirectory".to_owned(),
            Value::String(root.display().to_string()),
        );
        Selection {
            driver: "filesystem".to_owned(),
            parameters,
            source: format!("default: filesystem under {}", root.display()),
        }
    };
    apply_params(&mut selection, &args.params, "--param");
    Ok(selection)
}

/// Sets `params` (`KEY=VALUE` pairs, dotted keys nested) over the selection's parameters and
/// notes them in its source as given by `option` (`--param`).
pub(crate) fn apply_params(selection: &mut Selection, params: &[(String, String)], option: &str) {
    if params.is_empty() {
        return;
    }
    for (key, value) in params {
        set_dotted(&mut selection.parameters, key, Value::String(value.clone()));
    }
    let keys: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    selection
        .source
        .push_str(&format!(", {option} {}", keys.join(", ")));
}

/// The registry's `config.yml` at `file`, with the environment's overrides.
fn from_config(file: &Path, environment: &Environment) -> Result<Selection, CliError> {
    let origin = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError::Read {
        origin: origin.clone(),
        reason: e.to_string(),
    })?;
    let mut section = config::storage_section(&text, &origin)?;
    let applied = env::apply(&mut section, &environment.vars)?;
    let mut source = format!("config {origin}");
    if !applied.is_empty() {
        source.push_str(&format!(", environment {}", applied.join(", ")));
    }
    let what = if applied.is_empty() {
        origin
    } else {
        format!("{origin} and the environment")
    };
    let (driver, parameters) = config::single_driver(section, &what)?;
    Ok(Selection {
        driver,
        parameters,
        source,
    })
}

/// The registry's environment variables alone.
fn from_environment(environment: &Environment) -> Result<Selection, CliError> {
    let mut section = StorageSection::new();
    let applied = env::apply(&mut section, &environment.vars)?;
    let (driver, parameters) = config::single_driver(section, "the REGISTRY_STORAGE variables")?;
    Ok(Selection {
        driver,
        parameters,
        source: format!("environment {}", applied.join(", ")),
    })
}

/// Sets `value` at a dotted `key` (`credentials.type`), creating objects on the way.
pub(crate) fn set_dotted(parameters: &mut Parameters, key: &str, value: Value) {
    let mut segments = key.split('.');
    let first = segments.next().unwrap_or(key).to_owned();
    let rest: Vec<&str> = segments.collect();
    let Some((last, middle)) = rest.split_last() else {
        parameters.insert(first, value);
        return;
    };
    let mut slot = parameters
        .entry(first)
        .or_insert_with(|| Value::Object(Map::new()));
    for segment in middle {
        slot = object(slot)
            .entry((*segment).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    object(slot).insert((*last).to_owned(), value);
}

/// `slot` as an object, replacing whatever else it held.
fn object(slot: &mut Value) -> &mut Map<String, Value> {
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(map) => map,
        _ => unreachable!("made an object above"),
    }
}

/// Creates the selected driver through the factory: a built-in one, or an executable
/// `registry-storage-<name>` on `PATH`.
pub(crate) async fn open(selection: &Selection) -> Result<Arc<dyn StorageDriver>, CliError> {
    Ok(storagedriver_factory::create(&selection.driver, &selection.parameters).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(driver: Option<&str>, config: Option<&Path>, params: &[(&str, &str)]) -> SelectionArgs {
        SelectionArgs {
            driver: driver.map(str::to_owned),
            config: config.map(Path::to_path_buf),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn environment(vars: &[(&str, &str)]) -> Environment {
        Environment {
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            cwd: PathBuf::from("/work/here"),
        }
    }

    #[test]
    fn nothing_given_is_the_filesystem_driver_under_the_current_directory() {
        let selection = select(&args(None, None, &[]), &environment(&[])).expect("selects");
        assert_eq!(selection.driver, "filesystem");
        assert_eq!(
            selection.parameters["rootdirectory"],
            json!("/work/here/registry-data")
        );
    }

    #[test]
    fn driver_and_params_ignore_the_environment() {
        let selection = select(
            &args(
                Some("s3"),
                None,
                &[("bucket", "b"), ("chunksize", "5242880")],
            ),
            &environment(&[
                ("REGISTRY_STORAGE_S3_REGION", "x"),
                ("REGISTRY_STORAGE", "azure"),
            ]),
        )
        .expect("selects");
        assert_eq!(selection.driver, "s3");
        assert_eq!(
            Value::Object(selection.parameters.into_iter().collect()),
            json!({"bucket": "b", "chunksize": "5242880"})
        );
    }

    #[test]
    fn config_file_with_environment_override_and_param() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.yml");
        std::fs::write(
            &file,
            "version: 0.1\nstorage:\n  azure:\n    accountname: acct\n    accountkey: key\n    container: c\n    credentials:\n      type: default\n  delete:\n    enabled: true\n  tag:\n    concurrencylimit: 8\n",
        )
        .expect("write");
        let selection = select(
            &args(None, Some(&file), &[("credentials.clientid", "id")]),
            &environment(&[
                ("REGISTRY_STORAGE_AZURE_CONTAINER", "from-env"),
                ("REGISTRY_STORAGE_AZURE_CREDENTIALS_TYPE", "client_secret"),
            ]),
        )
        .expect("selects");
        assert_eq!(selection.driver, "azure");
        assert_eq!(selection.parameters["container"], json!("from-env"));
        assert_eq!(
            selection.parameters["credentials"],
            json!({"type": "client_secret", "clientid": "id"})
        );
        assert_eq!(selection.parameters["accountname"], json!("acct"));
        assert!(
            selection
                .source
                .contains("REGISTRY_STORAGE_AZURE_CONTAINER"),
            "{}",
            selection.source
        );
    }

    #[test]
    fn config_path_from_the_registry_variable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.yml");
        std::fs::write(&file, "storage:\n  inmemory:\n").expect("write");
        let selection = select(
            &args(None, None, &[]),
            &environment(&[(CONFIG_PATH_VAR, file.to_str().expect("utf-8"))]),
        )
        .expect("selects");
        assert_eq!(selection.driver, "inmemory");
    }

    #[test]
    fn environment_alone() {
        let selection = select(
            &args(None, None, &[]),
            &environment(&[("REGISTRY_STORAGE", "inmemory")]),
        )
        .expect("selects");
        assert_eq!(selection.driver, "inmemory");
        assert_eq!(selection.source, "environment REGISTRY_STORAGE");
    }

    #[test]
    fn missing_config_file_is_invalid_input_naming_it() {
        let err = select(
            &args(None, Some(Path::new("/no/such/config.yml")), &[]),
            &environment(&[]),
        )
        .expect_err("missing");
        assert_eq!(err.class(), crate::exit::Class::InvalidInput);
        assert!(err.to_string().contains("/no/such/config.yml"), "{err}");
    }

    #[test]
    fn dotted_keys_nest_and_replace_scalars() {
        let mut parameters = Parameters::new();
        set_dotted(&mut parameters, "a", json!("1"));
        set_dotted(&mut parameters, "a.b.c", json!("2"));
        set_dotted(&mut parameters, "a.b.d", json!("3"));
        assert_eq!(parameters["a"], json!({"b": {"c": "2", "d": "3"}}));
    }
}
