//! The driver's parameters, with the Go driver's names, and the store they build.

use std::sync::Arc;
use std::time::Duration;

use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use storagedriver::objectstore::{ObjectStoreDriver, ObjectStoreOptions};
use storagedriver::params::{ParamReader, Parameters};
use storagedriver::{Error, Result};

use crate::DRIVER_NAME;
use crate::connection_string::ConnectionString;
use crate::credential::Credential;

/// The largest `chunksize`: Azure's largest block (4000 MiB).
pub const MAX_CHUNK_SIZE: u64 = 4000 << 20;

/// The smallest `chunksize` (1 MiB): smaller blocks only multiply requests.
pub const MIN_CHUNK_SIZE: u64 = 1 << 20;

/// The Azure driver's configuration, read from [`Parameters`] with the Go driver's names.
///
/// | parameter | default | meaning |
/// |---|---|---|
/// | `accountname` | required (or from `connectionstring`, or `AZURE_STORAGE_ACCOUNT_NAME`) | the storage account |
/// | `container` | required | the container; created on first use when missing and the credentials allow it |
/// | `accountkey` | `AZURE_STORAGE_ACCOUNT_KEY` or `AZURE_STORAGE_KEY` | the account's shared key |
/// | `sastoken` | `AZURE_STORAGE_SAS_TOKEN` | a shared access signature (not a Go parameter) |
/// | `connectionstring` | `AZURE_STORAGE_CONNECTION_STRING` | `AccountName=...;AccountKey=...;BlobEndpoint=...` (or `SharedAccessSignature=`, `UseDevelopmentStorage=true`) |
/// | `credentials.type` | from what is given | `shared_key` (the account key), `client_secret` (a service principal), or `default_credentials` (refused, see below) |
/// | `credentials.clientid`, `.tenantid`, `.secret` | `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_CLIENT_SECRET` | the service principal of `client_secret` |
/// | `realm` | `core.windows.net` | the endpoint suffix: `https://<accountname>.blob.<realm>` |
/// | `serviceurl` | from `realm` | the blob endpoint, e.g. an emulator's `http://127.0.0.1:10000/devstoreaccount1` |
/// | `rootdirectory` | none | the blob name prefix of every path |
/// | `max_retries` | 5 | retries of a failed request (never of a 4xx answer) |
/// | `retry_delay` | `100ms` | the first retry's delay, doubled each time (Go duration notation) |
/// | `skipverify` | `false` | accept any TLS certificate |
/// | `chunksize` | 10 MiB | the writer's block size, 1 MiB to 4000 MiB (not a Go parameter) |
/// | `writerconcurrency` | 2 | writer blocks uploaded at once (not a Go parameter) |
///
/// One credential is used, the first found in this order: `credentials.type`, `accountkey`,
/// `sastoken`, `connectionstring`, then the environment variables in the same order. With
/// none, creating the driver fails: the driver never falls back to a managed identity or the
/// Azure CLI, which would make requests to other hosts (`default_credentials` is refused for
/// that reason). Every other key is rejected.
///
/// ```
/// use driver_azure::AzureConfig;
///
/// let params = serde_json::from_value(serde_json::json!({
///     "accountname": "devstoreaccount1",
///     "accountkey": "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
///     "container": "registry",
///     "serviceurl": "http://127.0.0.1:10000/devstoreaccount1",
///     "rootdirectory": "/docker",
///     "retry_delay": "250ms",
/// }))?;
/// let config = AzureConfig::from_parameters(&params)?;
/// assert_eq!(config.service_url, "http://127.0.0.1:10000/devstoreaccount1");
/// assert_eq!(config.retry_delay, std::time::Duration::from_millis(250));
///
/// let params = serde_json::from_value(serde_json::json!({
///     "accountname": "a", "accountkey": "a2V5", "container": "ctr", "bucket": "b",
/// }))?;
/// let err = AzureConfig::from_parameters(&params).expect_err("an error");
/// assert!(err.to_string().starts_with("azure: parameter \"bucket\": unknown parameter"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AzureConfig {
    /// `accountname`.
    pub account: String,
    /// `container`.
    pub container: String,
    /// The credential, from the parameters or the environment.
    pub credential: Credential,
    /// The blob endpoint: `serviceurl`, or `https://<accountname>.blob.<realm>`.
    pub service_url: String,
    /// `rootdirectory`.
    pub root_directory: String,
    /// `max_retries`.
    pub max_retries: usize,
    /// `retry_delay`.
    pub retry_delay: Duration,
    /// `skipverify`.
    pub skip_verify: bool,
    /// `chunksize`.
    pub chunk_size: u64,
    /// `writerconcurrency`.
    pub writer_concurrency: usize,
}

impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field("account", &self.account)
            .field("container", &self.container)
            .field("credential", &self.credential.kind())
            .field("service_url", &self.service_url)
            .field("root_directory", &self.root_directory)
            .field("max_retries", &self.max_retries)
            .field("retry_delay", &self.retry_delay)
            .field("skip_verify", &self.skip_verify)
            .field("chunk_size", &self.chunk_size)
            .field("writer_concurrency", &self.writer_concurrency)
            .finish()
    }
}

impl AzureConfig {
    /// Reads the parameters (see the table above).
    pub fn from_parameters(params: &Parameters) -> Result<Self> {
        let mut r = ParamReader::new(DRIVER_NAME, params);
        let connection = r
            .string("connectionstring")?
            .filter(|s| !s.is_empty())
            .or_else(|| env("AZURE_STORAGE_CONNECTION_STRING"))
            .map(|text| {
                ConnectionString::parse(&text).map_err(|e| r.invalid("connectionstring", e))
            })
            .transpose()?;
        let account = match r.string("accountname")?.filter(|s| !s.is_empty()) {
            Some(account) => account,
            None => connection
                .as_ref()
                .and_then(|c| c.account.clone())
                .or_else(|| env("AZURE_STORAGE_ACCOUNT_NAME"))
                .ok_or_else(|| r.invalid("accountname", "required, but not given"))?,
        };
        let container = r.required_string("container")?;
        if let Err(reason) = check_container_name(&container) {
            return Err(r.invalid("container", reason));
        }
        let credential = Credential::from_parameters(&mut r, connection.as_ref())?;
        let realm = r
            .string("realm")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "core.windows.net".to_owned());
        let service_url = match r.string("serviceurl")?.filter(|s| !s.is_empty()) {
            Some(url) => url,
            None => match connection.as_ref().and_then(|c| c.blob_endpoint.clone()) {
                Some(url) => url,
                None => format!("https://{account}.blob.{realm}"),
            },
        };
        let service_url = service_url.trim_end_matches('/').to_owned();
        if !(service_url.starts_with("https://") || service_url.starts_with("http://")) {
            return Err(r.invalid(
                "serviceurl",
                format!("expected an http:// or https:// URL, got {service_url:?}"),
            ));
        }
        let root_directory = r.string("rootdirectory")?.unwrap_or_default();
        let max_retries = r.u64_in("max_retries", 0, 100)?.unwrap_or(5) as usize;
        let retry_delay = r
            .duration("retry_delay")?
            .unwrap_or(Duration::from_millis(100));
        let skip_verify = r.bool("skipverify")?.unwrap_or(false);
        let chunk_size = r
            .u64_in("chunksize", MIN_CHUNK_SIZE, MAX_CHUNK_SIZE)?
            .unwrap_or(10 << 20);
        let writer_concurrency = r.u64_in("writerconcurrency", 1, 64)?.unwrap_or(2) as usize;
        r.finish()?;
        Ok(AzureConfig {
            account,
            container,
            credential,
            service_url,
            root_directory,
            max_retries,
            retry_delay,
            skip_verify,
            chunk_size,
            writer_concurrency,
        })
    }

    /// The `object_store` client these parameters describe. It sends no request.
    pub fn build_store(&self) -> Result<MicrosoftAzure> {
        let client = ClientOptions::new()
            .with_allow_invalid_certificates(self.skip_verify)
            .with_allow_http(self.service_url.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(5));
        let builder = MicrosoftAzureBuilder::new()
            .with_account(&self.account)
            .with_container_name(&self.container)
            .with_endpoint(self.service_url.clone())
            .with_client_options(client)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: self.retry_delay,
                    ..BackoffConfig::default()
                },
                max_retries: self.max_retries,
                retry_timeout: Duration::from_secs(30),
            });
        self.credential.apply(builder).build().map_err(|e| {
            Error::invalid_parameter(DRIVER_NAME, self.credential.parameter(), e.to_string())
        })
    }

    /// The options of the object-store core: blocks of `chunksize`, `writerconcurrency` in
    /// flight, every rename one server-side copy (Azure's Copy Blob has no 5 GiB limit), and
    /// recursive deletes in chunks of 1,024 blobs (object_store sends them as 4 batch
    /// requests of 256 at once, where a whole listing page would be 20 at once: a slow
    /// server answers the last of those after the client's timeout).
    pub fn options(&self) -> ObjectStoreOptions {
        ObjectStoreOptions::default()
            .with_chunk_size(self.chunk_size)
            .with_max_concurrent_parts(self.writer_concurrency)
            .with_copy_threshold(u64::MAX)
            .with_delete_chunk(1_024)
    }

    /// The driver, without sending a request: the container must exist (see
    /// [`AzureConfig::connect`]).
    pub fn build(&self) -> Result<ObjectStoreDriver> {
        Ok(self.build_parts()?.0)
    }

    /// The driver, after making sure the container exists: it is created when missing and
    /// the credentials allow it. A credential the service refuses is an error here, at once.
    pub async fn connect(&self) -> Result<ObjectStoreDriver> {
        let (driver, store) = self.build_parts()?;
        let outcome = crate::container::ensure(self, &store).await?;
        tracing::debug!(driver = DRIVER_NAME, container = %self.container, ?outcome, "container ready");
        Ok(driver)
    }

    fn build_parts(&self) -> Result<(ObjectStoreDriver, Arc<MicrosoftAzure>)> {
        let store = Arc::new(self.build_store()?);
        let mut driver = ObjectStoreDriver::new(
            DRIVER_NAME,
            store.clone(),
            &self.root_directory,
            self.options(),
        )?;
        if self.credential.can_sign_urls() {
            driver = driver.with_signer(Arc::new(crate::signer::SasSigner(store.clone())));
        }
        Ok((driver, store))
    }
}

/// Azure's rule for container names: 3 to 63 lowercase letters, digits and hyphens, starting
/// and ending with a letter or digit, with no two hyphens in a row (`$root` is the account's
/// root container).
fn check_container_name(name: &str) -> std::result::Result<(), String> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok = name == "$root"
        || ((3..=63).contains(&name.len())
            && valid_chars
            && !name.starts_with('-')
            && !name.ends_with('-')
            && !name.contains("--"));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a container name: 3 to 63 lowercase letters, digits and single \
             hyphens, starting and ending with a letter or digit"
        ))
    }
}

/// An environment variable, when set and not empty.
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(value: serde_json::Value) -> Parameters {
        serde_json::from_value(value).expect("a value")
    }

    #[test]
    fn the_endpoint_follows_the_realm_unless_given() {
        let c = AzureConfig::from_parameters(&params(serde_json::json!({
            "accountname": "acct", "accountkey": "a2V5", "container": "ctr", "realm": "core.chinacloudapi.cn",
        })))
        .expect("valid");
        assert_eq!(c.service_url, "https://acct.blob.core.chinacloudapi.cn");
        assert_eq!(c.max_retries, 5);
        assert_eq!(c.retry_delay, Duration::from_millis(100));
        let c = AzureConfig::from_parameters(&params(serde_json::json!({
            "accountname": "acct", "accountkey": "a2V5", "container": "ctr",
            "serviceurl": "http://127.0.0.1:10000/acct/",
        })))
        .expect("valid");
        assert_eq!(c.service_url, "http://127.0.0.1:10000/acct");
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for (key, value, says) in [
            ("chunksize", serde_json::json!(1024), "from 1048576"),
            ("retry_delay", serde_json::json!("soon"), "a duration"),
            ("serviceurl", serde_json::json!("ftp://x"), "http"),
            ("container", serde_json::Value::Null, "required"),
            (
                "container",
                serde_json::json!("Registry_Blobs"),
                "not a container name",
            ),
            (
                "container",
                serde_json::json!("a--b"),
                "not a container name",
            ),
        ] {
            let mut p = params(
                serde_json::json!({ "accountname": "a", "accountkey": "a2V5", "container": "ctr" }),
            );
            p.insert(key.to_owned(), value);
            let err = AzureConfig::from_parameters(&p).expect_err("an error");
            let text = err.to_string();
            assert!(
                text.contains(&format!("\"{key}\"")) && text.contains(says),
                "{text}"
            );
        }
    }

    #[test]
    fn debug_output_hides_the_key() {
        let c = AzureConfig::from_parameters(&params(serde_json::json!({
            "accountname": "a", "accountkey": "c2VjcmV0LWtleQ==", "container": "ctr",
        })))
        .expect("valid");
        let text = format!("{c:?}");
        assert!(!text.contains("c2VjcmV0LWtleQ=="), "{text}");
        assert!(text.contains("shared_key"), "{text}");
    }
}
