//! Fixtures for running the suite against a driver executable over IPC, through the factory's
//! fallback path (`registry-storage-<name>` found on a search path, driven by the IPC client).

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use storagedriver::{Parameters, StorageDriver};
use storagedriver_factory::Registry;

use crate::fixture::{Fixture, MakeFixture, make_fixture};

/// Creates the driver `name` through a registry with no factories whose search path is the
/// directory of `executable`, so the factory falls back to starting that executable.
///
/// # Panics
///
/// When `executable` is not named `registry-storage-<name>`, or the driver cannot start: the
/// test fails with the factory's error (which carries the child's stderr).
pub async fn spawn_driver(
    name: &str,
    executable: &Path,
    parameters: &Parameters,
) -> Arc<dyn StorageDriver> {
    let expected = storagedriver_factory::executable_name(name);
    assert!(
        executable
            .file_name()
            .is_some_and(|f| f == expected.as_str()),
        "{} is not named {expected}",
        executable.display()
    );
    let dir = executable.parent().unwrap_or(Path::new("."));
    let registry = Registry::empty().with_search_path([dir]);
    match registry.create(name, parameters).await {
        Ok(driver) => driver,
        Err(e) => panic!("cannot start {}: {e}", executable.display()),
    }
}

/// A [`MakeFixture`] whose fixtures each start the executable on a fresh temporary directory:
/// `parameters` gets that directory (a driver without storage can ignore it) and returns the
/// driver's parameters as a JSON object. For a persistent driver, reopening starts a second
/// child with the same parameters, so writers resume across processes.
pub fn ipc_fixture<F>(name: &'static str, executable: &'static str, parameters: F) -> MakeFixture
where
    F: Fn(&Path) -> Value + Send + Sync + 'static,
{
    ipc_fixture_requiring(name, executable, parameters, || Ok(()))
}

/// Like [`ipc_fixture`], for a driver that needs something the machine may lack (a server):
/// when `requires` says why not, every fixture is [`Fixture::skipped`] with that reason
/// (a failure under `STORAGEDRIVER_REQUIRE_SERVERS=1`).
pub fn ipc_fixture_requiring<F, R>(
    name: &'static str,
    executable: &'static str,
    parameters: F,
    requires: R,
) -> MakeFixture
where
    F: Fn(&Path) -> Value + Send + Sync + 'static,
    R: Fn() -> Result<(), String> + Send + Sync + 'static,
{
    let parameters = Arc::new(parameters);
    let requires = Arc::new(requires);
    make_fixture(move || {
        let parameters = parameters.clone();
        let requires = requires.clone();
        async move {
            if let Err(reason) = requires() {
                return Fixture::skipped(reason);
            }
            let dir = match tempfile::tempdir() {
                Ok(dir) => dir,
                Err(e) => panic!("cannot create a temporary directory: {e}"),
            };
            let params: Parameters = match serde_json::from_value(parameters(dir.path())) {
                Ok(params) => params,
                Err(e) => panic!("the parameters of {name} are not a JSON object: {e}"),
            };
            let driver = spawn_driver(name, Path::new(executable), &params).await;
            let persistent = driver.capabilities().persistent;
            let fixture = Fixture::new(driver).with_guard(dir);
            if !persistent {
                return fixture;
            }
            let params = Arc::new(params);
            fixture.with_reopen(move || {
                let params = params.clone();
                async move { spawn_driver(name, Path::new(executable), &params).await }
            })
        }
    })
}
