//! The Azurite server the tests run against, as `scripts/servers.sh` describes it in
//! `target/servers/servers.env` (`STORAGEDRIVER_AZURE_AZURITE_{SERVICE_URL,ACCOUNT,KEY}`).
//! Tests share one container, each below its own root prefix; tests about containers make
//! their own.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use driver_azure::AzureConfig;
use serde_json::{Value, json};
use storagedriver::{Parameters, StorageDriver};
use testsuites::Fixture;
// Not every test target uses every helper.
#[allow(unused_imports)]
pub use testsuites::servers::{RawStore, or_skip, unique_name, unique_root};

/// The container the suite's tests share.
pub const CONTAINER: &str = "storagedriver-test";

/// One Azure Blob endpoint from the environment.
#[derive(Debug, Clone)]
pub struct Server {
    pub service_url: String,
    pub account: String,
    pub key: String,
}

/// Azurite, or why it is not configured.
pub fn server() -> Result<Server, String> {
    let var = |field: &str| {
        let key = format!("STORAGEDRIVER_AZURE_AZURITE_{field}");
        std::env::var(&key).map_err(|_| {
            format!(
                "{key} is not set (run scripts/servers.sh start azurite and source target/servers/servers.env)"
            )
        })
    };
    Ok(Server {
        service_url: var("SERVICE_URL")?,
        account: var("ACCOUNT")?,
        key: var("KEY")?,
    })
}

impl Server {
    /// The driver's parameters for this server, in `container`, below `root`.
    pub fn parameters_in(&self, container: &str, root: &str) -> Value {
        json!({
            "accountname": self.account,
            "accountkey": self.key,
            "serviceurl": self.service_url,
            "container": container,
            "chunksize": 5 << 20,
            "rootdirectory": root,
        })
    }

    /// The driver's parameters for this server, in the shared container, below `root`.
    pub fn parameters(&self, root: &str) -> Value {
        self.parameters_in(CONTAINER, root)
    }

    /// The configuration `parameters` describe.
    pub fn config(parameters: Value) -> AzureConfig {
        let params: Parameters = serde_json::from_value(parameters).expect("parameters");
        AzureConfig::from_parameters(&params).expect("valid parameters")
    }

    /// A connected driver for `parameters` (the container is created when missing).
    pub async fn driver_with(&self, parameters: Value) -> Arc<dyn StorageDriver> {
        Arc::new(
            Self::config(parameters)
                .connect()
                .await
                .expect("a connected driver"),
        )
    }

    /// A connected driver below `root`, in the shared container.
    pub async fn driver(&self, root: &str) -> Arc<dyn StorageDriver> {
        self.driver_with(self.parameters(root)).await
    }

    /// The blobs below `root` of the shared container as another tool sees them.
    pub fn raw(&self, root: &str) -> RawStore {
        let store = Self::config(self.parameters("")).build_store();
        RawStore::new(Arc::new(store.expect("a store")), root)
    }

    /// A suite fixture below a fresh root; reopening builds a second driver over it.
    pub async fn fixture(&self, label: &str) -> Fixture {
        let root = unique_root(label);
        let server = self.clone();
        let reopen_root = root.clone();
        Fixture::new(self.driver(&root).await).with_reopen(move || {
            let server = server.clone();
            let root = reopen_root.clone();
            async move { server.driver(&root).await }
        })
    }
}

/// A fixture on Azurite, skipped when it is not configured.
pub async fn fixture() -> Fixture {
    match server() {
        Ok(server) => server.fixture("azurite").await,
        Err(reason) => Fixture::skipped(reason),
    }
}
