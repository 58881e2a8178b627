//! The driver's parameters, with the Go driver's names, and the store they build.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{Attribute, Attributes, BackoffConfig, ClientOptions, RetryConfig};
use storagedriver::objectstore::{
    MAX_SINGLE_COPY, MIN_PART_SIZE, ObjectStoreDriver, ObjectStoreOptions,
};
use storagedriver::params::{ParamReader, Parameters};
use storagedriver::{Error, Result};

use crate::DRIVER_NAME;

/// The largest `chunksize`: S3's largest part (5 GiB).
pub const MAX_CHUNK_SIZE: u64 = 5 << 30;

/// The storage classes S3 knows; `NONE` sends no storage class header.
const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "OUTPOSTS",
    "GLACIER_IR",
    "NONE",
];

/// The S3 driver's configuration, read from [`Parameters`] with the Go driver's names.
///
/// | parameter | default | meaning |
/// |---|---|---|
/// | `bucket` | required | the bucket |
/// | `region` | required unless `regionendpoint` is set (then `us-east-1`) | the region requests are signed for |
/// | `regionendpoint` | AWS | the endpoint URL of an S3-compatible server (`http://127.0.0.1:3900`) |
/// | `forcepathstyle` | `false` | `bucket` in the path instead of the host name |
/// | `accesskey`, `secretkey`, `sessiontoken` | from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | static credentials; with none at all, object_store's chain (web identity, container, instance metadata) |
/// | `encrypt` | `false` | server-side encryption: SSE-KMS with `keyid`, else SSE-S3 (AES256) |
/// | `keyid` | none | the KMS key of `encrypt` |
/// | `secure` | `true` | HTTPS to the default endpoint (`false`: HTTP); a `regionendpoint` without a scheme gets `https://` or `http://` from it |
/// | `skipverify` | `false` | accept any TLS certificate |
/// | `chunksize` | 10 MiB | the writer's part size, 5 MiB to 5 GiB |
/// | `multipartcopythresholdsize` | 5 GiB | objects above it are renamed by a copy in parts (at most 5 GiB) |
/// | `multipartcopychunksize` | 32 MiB | the part size of such a copy |
/// | `multipartcopymaxconcurrency` | 4 | parts of such a copy in flight |
/// | `writerconcurrency` | 2 | writer parts uploaded at once (not a Go parameter) |
/// | `rootdirectory` | none | the key prefix of every path |
/// | `storageclass` | `STANDARD` | the storage class of new objects (`NONE`: send none) |
/// | `useragent` | object_store's | the `User-Agent` header |
/// | `objectacl` | `private` | only `private` (object_store sends no ACL header, and S3's default is private) |
/// | `v4auth` | `true` | only `true` (SigV4 is the only signature) |
/// | `usedualstack`, `accelerate`, `usefipsendpoint` | `false` | only `false` (object_store has no such endpoints) |
/// | `loglevel` | `off` | only `off`: requests are logged through `tracing` instead |
///
/// Every other key is rejected, as is a Go parameter set to a value the driver cannot honour.
///
/// ```
/// use driver_s3::S3Config;
///
/// let params = serde_json::from_value(serde_json::json!({
///     "bucket": "registry",
///     "regionendpoint": "http://127.0.0.1:3900",
///     "region": "garage",
///     "forcepathstyle": true,
///     "accesskey": "GK0123456789abcdef01234567",
///     "secretkey": "secret",
///     "chunksize": "16777216",
///     "rootdirectory": "/docker",
/// }))?;
/// let config = S3Config::from_parameters(&params)?;
/// assert_eq!(config.chunk_size, 16 << 20);
///
/// let params = serde_json::from_value(serde_json::json!({ "bucket": "b", "region": "x", "chunksize": 1024 }))?;
/// let err = S3Config::from_parameters(&params).expect_err("an error");
/// assert!(err.to_string().contains("chunksize"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3Config {
    /// `bucket`.
    pub bucket: String,
    /// `region`.
    pub region: String,
    /// `regionendpoint`, with its scheme.
    pub endpoint: Option<String>,
    /// `forcepathstyle`.
    pub force_path_style: bool,
    /// `accesskey` (or `AWS_ACCESS_KEY_ID`).
    pub access_key: Option<String>,
    /// `secretkey` (or `AWS_SECRET_ACCESS_KEY`).
    pub secret_key: Option<String>,
    /// `sessiontoken` (or `AWS_SESSION_TOKEN`).
    pub session_token: Option<String>,
    /// `encrypt`.
    pub encrypt: bool,
    /// `keyid`.
    pub key_id: Option<String>,
    /// `secure`.
    pub secure: bool,
    /// `skipverify`.
    pub skip_verify: bool,
    /// `chunksize`.
    pub chunk_size: u64,
    /// `multipartcopythresholdsize`.
    pub copy_threshold: u64,
    /// `multipartcopychunksize`.
    pub copy_chunk_size: u64,
    /// `multipartcopymaxconcurrency`.
    pub copy_concurrency: usize,
    /// `writerconcurrency`.
    pub writer_concurrency: usize,
    /// `rootdirectory`.
    pub root_directory: String,
    /// `storageclass` (`None` for `NONE`).
    pub storage_class: Option<String>,
    /// `useragent`.
    pub user_agent: Option<String>,
}

impl S3Config {
    /// Reads the parameters (see the table above).
    pub fn from_parameters(params: &Parameters) -> Result<Self> {
        let mut r = ParamReader::new(DRIVER_NAME, params);
        let bucket = r.required_string("bucket")?;
        let endpoint_param = r.string("regionendpoint")?.filter(|e| !e.is_empty());
        let region = match (
            r.string("region")?.filter(|s| !s.is_empty()),
            &endpoint_param,
        ) {
            (Some(region), _) => region,
            (None, Some(_)) => "us-east-1".to_owned(),
            (None, None) => {
                return Err(Error::invalid_parameter(
                    DRIVER_NAME,
                    "region",
                    "required, unless regionendpoint is set",
                ));
            }
        };
        let secure = r.bool("secure")?.unwrap_or(true);
        let endpoint = endpoint_param.map(|e| with_scheme(&e, secure));
        let force_path_style = r.bool("forcepathstyle")?.unwrap_or(false);
        let access_key = r
            .string("accesskey")?
            .filter(|s| !s.is_empty())
            .or_else(|| env("AWS_ACCESS_KEY_ID"));
        let secret_key = r
            .string("secretkey")?
            .filter(|s| !s.is_empty())
            .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
        let session_token = r
            .string("sessiontoken")?
            .filter(|s| !s.is_empty())
            .or_else(|| env("AWS_SESSION_TOKEN"));
        if access_key.is_some() != secret_key.is_some() {
            return Err(Error::invalid_parameter(
                DRIVER_NAME,
                if access_key.is_some() {
                    "secretkey"
                } else {
                    "accesskey"
                },
                "accesskey and secretkey come together (in the parameters or the AWS_ environment variables)",
            ));
        }
        let encrypt = r.bool("encrypt")?.unwrap_or(false);
        let key_id = r.string("keyid")?.filter(|s| !s.is_empty());
        if key_id.is_some() && !encrypt {
            return Err(Error::invalid_parameter(
                DRIVER_NAME,
                "keyid",
                "needs encrypt = true",
            ));
        }
        let skip_verify = r.bool("skipverify")?.unwrap_or(false);
        let chunk_size = r
            .u64_in("chunksize", MIN_PART_SIZE, MAX_CHUNK_SIZE)?
            .unwrap_or(10 << 20);
        let copy_threshold = r
            .u64_in("multipartcopythresholdsize", 0, MAX_SINGLE_COPY)?
            .unwrap_or(MAX_SINGLE_COPY);
        let copy_chunk_size = r
            .u64_in("multipartcopychunksize", MIN_PART_SIZE, MAX_CHUNK_SIZE)?
            .unwrap_or(32 << 20);
        let copy_concurrency =
            r.u64_in("multipartcopymaxconcurrency", 1, 64)?.unwrap_or(4) as usize;
        let writer_concurrency = r.u64_in("writerconcurrency", 1, 64)?.unwrap_or(2) as usize;
        let root_directory = r.string("rootdirectory")?.unwrap_or_default();
        let storage_class = match r.string("storageclass")? {
            None => Some("STANDARD".to_owned()),
            Some(class) if STORAGE_CLASSES.contains(&class.as_str()) => {
                (class != "NONE").then_some(class)
            }
            Some(class) => {
                return Err(Error::invalid_parameter(
                    DRIVER_NAME,
                    "storageclass",
                    format!(
                        "unknown storage class {class:?} (accepted: {})",
                        STORAGE_CLASSES.join(", ")
                    ),
                ));
            }
        };
        let user_agent = r.string("useragent")?.filter(|s| !s.is_empty());
        only(
            &mut r,
            "objectacl",
            "private",
            "object_store sends no ACL header; S3's default is private",
        )?;
        only_bool(
            &mut r,
            "v4auth",
            true,
            "AWS signature version 4 is the only signature",
        )?;
        for key in ["usedualstack", "accelerate", "usefipsendpoint"] {
            only_bool(
                &mut r,
                key,
                false,
                "object_store has no such endpoint; give regionendpoint instead",
            )?;
        }
        only(
            &mut r,
            "loglevel",
            "off",
            "requests are logged through tracing (RUST_LOG) instead",
        )?;
        r.finish()?;
        Ok(S3Config {
            bucket,
            region,
            endpoint,
            force_path_style,
            access_key,
            secret_key,
            session_token,
            encrypt,
            key_id,
            secure,
            skip_verify,
            chunk_size,
            copy_threshold,
            copy_chunk_size,
            copy_concurrency,
            writer_concurrency,
            root_directory,
            storage_class,
            user_agent,
        })
    }

    /// The `object_store` client these parameters describe.
    pub fn build_store(&self) -> Result<AmazonS3> {
        let mut client = ClientOptions::new()
            .with_allow_invalid_certificates(self.skip_verify)
            .with_connect_timeout(Duration::from_secs(5));
        if let Some(agent) = &self.user_agent {
            let value = agent.parse().map_err(|_| {
                Error::invalid_parameter(DRIVER_NAME, "useragent", "not a valid HTTP header value")
            })?;
            client = client.with_user_agent(value);
        }
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| (!self.secure).then(|| self.plain_http_endpoint()));
        let virtual_hosted = !self.force_path_style;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_client_options(client)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
            });
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(if virtual_hosted {
                    bucket_host(&endpoint, &self.bucket)
                } else {
                    endpoint
                });
        }
        builder = builder.with_virtual_hosted_style_request(virtual_hosted);
        if let (Some(key), Some(secret)) = (&self.access_key, &self.secret_key) {
            builder = builder
                .with_access_key_id(key)
                .with_secret_access_key(secret);
            if let Some(token) = &self.session_token {
                builder = builder.with_token(token);
            }
        }
        if self.encrypt {
            builder = match &self.key_id {
                Some(key) => builder.with_sse_kms_encryption(key),
                None => {
                    let key = "aws_server_side_encryption"
                        .parse::<AmazonS3ConfigKey>()
                        .map_err(|e| {
                            Error::invalid_parameter(DRIVER_NAME, "encrypt", e.to_string())
                        })?;
                    builder.with_config(key, "AES256")
                }
            };
        }
        builder
            .build()
            .map_err(|e| Error::invalid_parameter(DRIVER_NAME, "regionendpoint", e.to_string()))
    }

    /// The options of the object-store core.
    pub fn options(&self) -> ObjectStoreOptions {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, "application/octet-stream".into());
        if let Some(class) = &self.storage_class {
            attributes.insert(Attribute::StorageClass, class.clone().into());
        }
        ObjectStoreOptions::default()
            .with_chunk_size(self.chunk_size)
            .with_max_concurrent_parts(self.writer_concurrency)
            .with_copy_threshold(self.copy_threshold)
            .with_copy_chunk_size(self.copy_chunk_size)
            .with_copy_concurrency(self.copy_concurrency)
            .with_attributes(attributes)
    }

    /// The driver: the store, the core's options, and the store as the `url_for` signer.
    pub fn build(&self) -> Result<ObjectStoreDriver> {
        let store = Arc::new(self.build_store()?);
        Ok(ObjectStoreDriver::new(
            DRIVER_NAME,
            store.clone(),
            &self.root_directory,
            self.options(),
        )?
        .with_signer(Arc::new(crate::signer::S3Signer(store))))
    }

    /// AWS's endpoint over plain HTTP (`secure = false`).
    fn plain_http_endpoint(&self) -> String {
        format!("http://s3.{}.amazonaws.com", self.region)
    }
}

/// An environment variable, when set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `endpoint` with a scheme: its own, or the one `secure` says.
fn with_scheme(endpoint: &str, secure: bool) -> String {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.trim_end_matches('/').to_owned()
    } else if secure {
        format!("https://{}", endpoint.trim_end_matches('/'))
    } else {
        format!("http://{}", endpoint.trim_end_matches('/'))
    }
}

/// The virtual-hosted endpoint: the bucket as the first label of the host.
fn bucket_host(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, host)) => format!("{scheme}://{bucket}.{host}"),
        None => format!("{bucket}.{endpoint}"),
    }
}

/// Accepts a Go string parameter only at the one value the driver honours.
fn only(r: &mut ParamReader<'_>, key: &'static str, value: &str, why: &str) -> Result<()> {
    match r.string(key)? {
        Some(given) if !given.eq_ignore_ascii_case(value) => Err(Error::invalid_parameter(
            DRIVER_NAME,
            key,
            format!("only {value:?} is supported, got {given:?}: {why}"),
        )),
        _ => Ok(()),
    }
}

/// Accepts a Go boolean parameter only at the one value the driver honours.
fn only_bool(r: &mut ParamReader<'_>, key: &'static str, value: bool, why: &str) -> Result<()> {
    match r.bool(key)? {
        Some(given) if given != value => Err(Error::invalid_parameter(
            DRIVER_NAME,
            key,
            format!("only {value} is supported: {why}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(value: serde_json::Value) -> Parameters {
        serde_json::from_value(value).expect("a value")
    }

    #[test]
    fn endpoints_get_a_scheme_and_a_bucket_host() {
        assert_eq!(
            with_scheme("127.0.0.1:3900", false),
            "http://127.0.0.1:3900"
        );
        assert_eq!(with_scheme("minio.local/", true), "https://minio.local");
        assert_eq!(
            bucket_host("http://s3.local:9000", "b"),
            "http://b.s3.local:9000"
        );
    }

    #[test]
    fn go_parameters_the_driver_cannot_honour_are_rejected() {
        for (key, value) in [
            ("objectacl", serde_json::json!("public-read")),
            ("v4auth", serde_json::json!(false)),
            ("accelerate", serde_json::json!(true)),
            ("loglevel", serde_json::json!("debug")),
        ] {
            let mut p = params(
                serde_json::json!({ "bucket": "b", "region": "r", "accesskey": "a", "secretkey": "s" }),
            );
            p.insert(key.to_owned(), value);
            let err = S3Config::from_parameters(&p).expect_err("an error");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn defaults_follow_go() {
        let c = S3Config::from_parameters(&params(serde_json::json!({
            "bucket": "b", "regionendpoint": "127.0.0.1:9000", "secure": "false",
            "accesskey": "a", "secretkey": "s",
        })))
        .expect("a value");
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.chunk_size, 10 << 20);
        assert_eq!(c.storage_class.as_deref(), Some("STANDARD"));
        assert!(!c.force_path_style);
    }

    #[test]
    fn unknown_parameters_and_small_chunks_are_rejected() {
        let err = S3Config::from_parameters(&params(serde_json::json!({
            "bucket": "b", "region": "r", "accesskey": "a", "secretkey": "s", "chunksize": 1 << 20,
        })))
        .expect_err("an error");
        assert_eq!(
            err.to_string(),
            "s3: parameter \"chunksize\": expected an integer from 5242880 to 5368709120, got 1048576"
        );
        let err = S3Config::from_parameters(&params(serde_json::json!({
            "bucket": "b", "region": "r", "accesskey": "a", "secretkey": "s", "bucketname": "x",
        })))
        .expect_err("an error");
        assert!(
            err.to_string()
                .starts_with("s3: parameter \"bucketname\": unknown parameter"),
            "{err}"
        );
    }
}
