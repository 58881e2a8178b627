//! Creating drivers by name: built-ins, registration, the executable fallback, and the errors
//! a user sees.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use storagedriver::{Error, Parameters};
use storagedriver_factory::{FactoryError, Registry};

fn params(value: serde_json::Value) -> Parameters {
    match serde_json::from_value(value) {
        Ok(params) => params,
        Err(e) => panic!("not a JSON object: {e}"),
    }
}

fn python_driver_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/python-driver"
    ))
}

#[tokio::test]
async fn builtin_drivers_are_there_by_name() {
    let registry = Registry::with_builtin();
    let mut expected = vec![];
    if cfg!(feature = "azure") {
        expected.push("azure");
    }
    expected.extend(["filesystem", "inmemory"]);
    if cfg!(feature = "s3") {
        expected.push("s3");
    }
    assert_eq!(registry.names(), expected);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let driver = storagedriver_factory::create(
        "filesystem",
        &params(json!({ "rootdirectory": dir.path(), "maxthreads": "25" })),
    )
    .await
    .expect("the filesystem driver");
    assert_eq!(driver.name(), "filesystem");
}

#[tokio::test]
async fn an_unknown_name_without_an_executable_lists_what_there_is() {
    let err = storagedriver_factory::create("nosuchdriver", &Parameters::new())
        .await
        .expect_err("an error");
    println!("create(\"nosuchdriver\"): {err}");
    match &err {
        FactoryError::UnknownDriver {
            name,
            registered,
            executable,
            ..
        } => {
            assert_eq!(name, "nosuchdriver");
            let builtin = Registry::with_builtin().names();
            assert_eq!(registered, &builtin);
            assert!(registered.contains(&"filesystem".to_owned()));
            assert!(registered.contains(&"inmemory".to_owned()));
            assert_eq!(executable, "registry-storage-nosuchdriver");
        }
        other => panic!("expected UnknownDriver, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("filesystem, inmemory")
            && text.contains("registry-storage-nosuchdriver")
            && text.contains("PATH"),
        "{text}"
    );
}

#[tokio::test]
async fn a_wrong_parameter_names_the_driver_and_the_key() {
    let err = storagedriver_factory::create("filesystem", &params(json!({ "maxthreads": "ten" })))
        .await
        .expect_err("an error");
    println!("create(\"filesystem\", maxthreads=\"ten\"): {err}");
    match &err {
        FactoryError::Driver(Error::InvalidParameter { driver, key, .. }) => {
            assert_eq!(driver, "filesystem");
            assert_eq!(key, "maxthreads");
        }
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
    let err = storagedriver_factory::create("inmemory", &params(json!({ "rootdirectory": "/x" })))
        .await
        .expect_err("an error");
    println!("create(\"inmemory\", rootdirectory=\"/x\"): {err}");
    assert!(
        matches!(err, FactoryError::Driver(Error::InvalidParameter { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn registering_a_name_twice_is_an_error() {
    let registry = Registry::with_builtin();
    let err = registry
        .register(Arc::new(driver_inmemory::InMemoryFactory))
        .expect_err("an error");
    assert!(
        matches!(err, FactoryError::AlreadyRegistered { ref name } if name == "inmemory"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "a storage driver named \"inmemory\" is already registered"
    );
}

#[tokio::test]
async fn an_unknown_name_falls_back_to_its_executable() {
    let registry = Registry::empty().with_search_path([python_driver_dir()]);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let driver = registry
        .create("pydir", &params(json!({ "rootdirectory": dir.path() })))
        .await
        .expect("the Python driver");
    assert_eq!(driver.name(), "pydir");
    driver
        .put_content("/a", bytes::Bytes::from_static(b"over IPC"))
        .await
        .expect("put over IPC");
    assert_eq!(
        std::fs::read(dir.path().join("a")).expect("the file the child wrote"),
        b"over IPC"
    );
}

#[tokio::test]
async fn an_executable_that_rejects_its_parameters_reports_its_stderr() {
    let registry = Registry::empty().with_search_path([python_driver_dir()]);
    let err = registry
        .create("pydir", &params(json!({ "rootdir": "/x" })))
        .await
        .expect_err("an error");
    println!("create(\"pydir\", rootdir=\"/x\") through the executable: {err}");
    let text = err.to_string();
    assert!(text.contains("pydir") && text.contains("rootdir"), "{text}");
}

#[tokio::test]
async fn names_that_could_leave_the_search_path_are_not_looked_up() {
    let registry = Registry::empty().with_search_path([python_driver_dir()]);
    for name in ["../python-driver/registry-storage-pydir", "a/b", ""] {
        let err = registry
            .create(name, &Parameters::new())
            .await
            .expect_err("an error");
        assert!(
            matches!(err, FactoryError::UnknownDriver { .. }),
            "{name}: {err:?}"
        );
    }
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn s3_is_built_in_with_its_feature() {
    // Creating the driver sends no request, so no server is needed here.
    let driver = storagedriver_factory::create(
        "s3",
        &params(json!({
            "bucket": "registry",
            "region": "garage",
            "regionendpoint": "http://127.0.0.1:3900",
            "forcepathstyle": true,
            "accesskey": "GK0123456789abcdef01234567",
            "secretkey": "secret",
        })),
    )
    .await
    .expect("the s3 driver");
    assert_eq!(driver.name(), "s3");
    let err = storagedriver_factory::create("s3", &params(json!({ "bucket": "b" })))
        .await
        .expect_err("no region");
    assert!(err.to_string().contains("region"), "{err}");
}

#[cfg(feature = "azure")]
#[tokio::test]
async fn azure_is_built_in_with_its_feature() {
    // Bad parameters fail before any request.
    let err = storagedriver_factory::create("azure", &params(json!({ "accountname": "a" })))
        .await
        .expect_err("no container");
    assert!(err.to_string().contains("\"container\""), "{err}");
    // Creating the driver makes sure its container exists, so it needs the server.
    let Ok(service_url) = std::env::var("STORAGEDRIVER_AZURE_AZURITE_SERVICE_URL") else {
        assert!(
            std::env::var("STORAGEDRIVER_REQUIRE_SERVERS").as_deref() != Ok("1"),
            "STORAGEDRIVER_REQUIRE_SERVERS=1, but STORAGEDRIVER_AZURE_AZURITE_SERVICE_URL is not set"
        );
        eprintln!("skipped: STORAGEDRIVER_AZURE_AZURITE_SERVICE_URL is not set");
        return;
    };
    let driver = storagedriver_factory::create(
        "azure",
        &params(json!({
            "accountname": std::env::var("STORAGEDRIVER_AZURE_AZURITE_ACCOUNT").unwrap_or_default(),
            "accountkey": std::env::var("STORAGEDRIVER_AZURE_AZURITE_KEY").unwrap_or_default(),
            "serviceurl": service_url,
            "container": "storagedriver-test",
        })),
    )
    .await
    .expect("the azure driver");
    assert_eq!(driver.name(), "azure");
}
