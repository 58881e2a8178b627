//! The S3 servers the tests run against, as `scripts/servers.sh` describes them in
//! `target/servers/servers.env` (`STORAGEDRIVER_S3_<SERVER>_{ENDPOINT,REGION,BUCKET,ACCESS_KEY,SECRET_KEY}`).
//! Every test works below its own root prefix, so tests share a bucket without seeing each
//! other.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use driver_s3::S3Config;
use serde_json::{Value, json};
use storagedriver::{Parameters, StorageDriver};
use testsuites::Fixture;
// Not every test target uses every helper.
#[allow(unused_imports)]
pub use testsuites::servers::{RawStore, or_skip, unique_root};

/// One S3 server from the environment.
#[derive(Debug, Clone)]
pub struct Server {
    pub name: &'static str,
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

/// The server `name` (`GARAGE`, `MINISTACK`, `GARAGE_CLUSTER`), or why it is not configured.
pub fn server(name: &'static str) -> Result<Server, String> {
    let var = |field: &str| {
        let key = format!("STORAGEDRIVER_S3_{name}_{field}");
        std::env::var(&key).map_err(|_| {
            format!(
                "{key} is not set (run scripts/servers.sh start and source target/servers/servers.env)"
            )
        })
    };
    Ok(Server {
        name,
        endpoint: var("ENDPOINT")?,
        region: var("REGION")?,
        bucket: var("BUCKET")?,
        access_key: var("ACCESS_KEY")?,
        secret_key: var("SECRET_KEY")?,
    })
}

impl Server {
    /// The driver's parameters for this server, below `root`.
    pub fn parameters(&self, root: &str) -> Value {
        json!({
            "bucket": self.bucket,
            "region": self.region,
            "regionendpoint": self.endpoint,
            "forcepathstyle": true,
            "accesskey": self.access_key,
            "secretkey": self.secret_key,
            "chunksize": 5 << 20,
            "rootdirectory": root,
        })
    }

    /// A driver for `parameters`.
    pub fn driver_with(&self, parameters: Value) -> Arc<dyn StorageDriver> {
        let params: Parameters = serde_json::from_value(parameters).expect("parameters");
        let config = S3Config::from_parameters(&params).expect("valid parameters");
        Arc::new(config.build().expect("a driver"))
    }

    /// A driver below `root`.
    pub fn driver(&self, root: &str) -> Arc<dyn StorageDriver> {
        self.driver_with(self.parameters(root))
    }

    /// The keys below `root` as another tool sees them, through a store of the bucket.
    pub fn raw(&self, root: &str) -> RawStore {
        let params: Parameters = serde_json::from_value(self.parameters("")).expect("parameters");
        let config = S3Config::from_parameters(&params).expect("valid parameters");
        RawStore::new(Arc::new(config.build_store().expect("a store")), root)
    }

    /// A suite fixture below a fresh root; reopening builds a second driver over it.
    pub fn fixture(&self, label: &str) -> Fixture {
        let root = unique_root(label);
        let server = self.clone();
        let reopen_root = root.clone();
        Fixture::new(self.driver(&root)).with_reopen(move || {
            let driver = server.driver(&reopen_root);
            async move { driver }
        })
    }
}

/// A fixture on server `name`, skipped when the server is not configured.
pub fn fixture(name: &'static str) -> Fixture {
    match server(name) {
        Ok(server) => server.fixture(&name.to_ascii_lowercase()),
        Err(reason) => Fixture::skipped(reason),
    }
}
