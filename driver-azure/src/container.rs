//! Creating the container on first use, as the Go driver did.
//!
//! `object_store` has no call that creates a container, so the driver sends that one request
//! itself (Create Container, `PUT <serviceurl>/<container>?restype=container`), signed with
//! the configured credential: a shared key signature, the SAS query, or the service
//! principal's OAuth token from the store's own credential provider.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::{HeaderValue, Method, Request, StatusCode};
use object_store::ObjectStore;
use object_store::azure::{AzureCredential, MicrosoftAzure};
use object_store::client::{HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::path::Path;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;
use storagedriver::{Error, Result, Retry};

use crate::DRIVER_NAME;
use crate::config::AzureConfig;
use crate::credential::Credential;

/// The REST API version the request is made with (Azurite 3.37 and Azure both accept it).
const API_VERSION: &str = "2021-08-06";

/// What the service said about the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It did not exist, and now does.
    Created,
    /// It already existed.
    Existed,
    /// The credential may not create containers, and a listing found the container.
    Present,
}

/// Makes sure the container of `config` exists, creating it when it does not and the
/// credential may. A credential the service refuses, and a missing container the credential
/// may not create, are errors that say so; so is an endpoint that does not answer (after
/// `max_retries` retries, as for every other request).
pub(crate) async fn ensure(config: &AzureConfig, store: &MicrosoftAzure) -> Result<Outcome> {
    let fail = |retry: Retry, text: String| {
        Error::backend(DRIVER_NAME, "create container", None, retry, text)
    };
    let credential = store
        .credentials()
        .get_credential()
        .await
        .map_err(|e| fail(Retry::MayHelp, format!("cannot obtain a credential: {e}")))?;
    let client = ReqwestConnector::default()
        .connect(
            &object_store::ClientOptions::new()
                .with_allow_invalid_certificates(config.skip_verify)
                .with_allow_http(config.service_url.starts_with("http://"))
                .with_connect_timeout(std::time::Duration::from_secs(5))
                .with_timeout(std::time::Duration::from_secs(30)),
        )
        .map_err(|e| fail(Retry::Useless, e.to_string()))?;
    // The request is idempotent (an existing container answers 409), so a transport failure
    // or a 5xx answer is retried like any other request of the store: `max_retries` times,
    // from `retry_delay`, doubled each time.
    let mut delay = config.retry_delay;
    let mut attempt = 0;
    let response = loop {
        let request = create_request(config, credential.as_ref())
            .map_err(|(retry, text)| fail(retry, text))?;
        let outcome = client.execute(request).await;
        let retryable = match &outcome {
            Ok(response) => response.status().is_server_error(),
            Err(_) => true,
        };
        if !retryable || attempt >= config.max_retries {
            break outcome.map_err(|e| {
                fail(
                    Retry::MayHelp,
                    format!(
                        "cannot reach {} (attempts: {}): {}",
                        config.service_url,
                        attempt + 1,
                        with_causes(&e)
                    ),
                )
            })?;
        }
        attempt += 1;
        tracing::debug!(driver = DRIVER_NAME, container = %config.container, attempt, ?delay, "retrying create container");
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2);
    };
    let status = response.status();
    let code = response
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let container = &config.container;
    let account = &config.account;
    match status {
        StatusCode::CREATED => {
            tracing::info!(driver = DRIVER_NAME, container = %container, "created the container");
            Ok(Outcome::Created)
        }
        StatusCode::CONFLICT => Ok(Outcome::Existed),
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => {
            let refused = |detail: String| {
                fail(
                    Retry::Useless,
                    format!(
                        "authentication failed: {} refused the {} credential of account \
                         {account:?} ({detail}); check accountkey, sastoken or credentials",
                        config.service_url,
                        config.credential.kind()
                    ),
                )
            };
            if code == "AuthenticationFailed" {
                return Err(refused(format!("{status} {code}")));
            }
            // Not allowed to create: a listing tells a missing container from one that
            // exists, and from a credential refused outright (Azurite answers a wrong key
            // with AuthorizationFailure, not AuthenticationFailed).
            match present(store).await {
                Ok(()) => Ok(Outcome::Present),
                Err(e) if e.to_string().contains("ContainerNotFound") => Err(fail(
                    Retry::Useless,
                    format!(
                        "container {container:?} does not exist in account {account:?}, and \
                         the {} credential may not create it ({status} {code}); create it, or \
                         give a credential with that right",
                        config.credential.kind()
                    ),
                )),
                Err(e) if forbidden(&e) => Err(refused(format!(
                    "{status} {code} to create the container, and 403 to list it"
                ))),
                Err(e) => Err(fail(
                    Retry::MayHelp,
                    format!(
                        "the credential may not create container {container:?} ({status} \
                         {code}), and listing it failed: {e}"
                    ),
                )),
            }
        }
        _ => Err(fail(
            if status.is_server_error() {
                Retry::MayHelp
            } else {
                Retry::Useless
            },
            format!(
                "creating container {container:?} at {} answered {status} {code}",
                config.service_url
            ),
        )),
    }
}

/// The Create Container request, signed with `credential` (dated now: a retry is re-signed).
fn create_request(
    config: &AzureConfig,
    credential: &AzureCredential,
) -> std::result::Result<Request<HttpRequestBody>, (Retry, String)> {
    let mut uri = format!(
        "{}/{}?restype=container",
        config.service_url, config.container
    );
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let mut request = Request::builder()
        .method(Method::PUT)
        .header("x-ms-version", API_VERSION)
        .header("content-length", "0")
        .header("x-ms-date", &date);
    match (&config.credential, credential) {
        (Credential::SharedKey(key), _) => {
            let signature =
                shared_key_signature(config, key, &date).map_err(|e| (Retry::Useless, e))?;
            request = request.header(
                "authorization",
                format!("SharedKey {}:{signature}", config.account),
            );
        }
        (_, AzureCredential::BearerToken(token)) => {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| {
                (
                    Retry::Useless,
                    format!("the OAuth token is not a header value: {e}"),
                )
            })?;
            request = request.header("authorization", value);
        }
        (_, AzureCredential::SASToken(pairs)) => {
            for (key, value) in pairs {
                uri.push('&');
                uri.extend(utf8_percent_encode(key, NON_ALPHANUMERIC));
                uri.push('=');
                uri.extend(utf8_percent_encode(value, NON_ALPHANUMERIC));
            }
        }
        (_, other) => {
            return Err((
                Retry::Useless,
                format!(
                    "cannot create a container with a {} credential",
                    kind(other)
                ),
            ));
        }
    }
    request
        .uri(&uri)
        .body(HttpRequestBody::empty())
        .map_err(|e| (Retry::Useless, format!("cannot build the request: {e}")))
}

/// `err` and every error beneath it, so a user sees "connection refused" or "timed out",
/// not only "error sending request".
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether a listing of the container succeeds.
async fn present(store: &MicrosoftAzure) -> object_store::Result<()> {
    store
        .list_with_delimiter(Some(&Path::from("~container-probe")))
        .await
        .map(|_| ())
}

/// Whether `err` is a refusal (401 or 403), however `object_store` classified it.
fn forbidden(err: &object_store::Error) -> bool {
    matches!(
        err,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) || {
        let text = err.to_string();
        text.contains("status code: 403") || text.contains("status code: 401")
    }
}

/// The Shared Key signature of the Create Container request: HMAC-SHA256, keyed with the
/// decoded account key, over the request's canonical form.
fn shared_key_signature(
    config: &AzureConfig,
    key: &str,
    date: &str,
) -> std::result::Result<String, String> {
    let key = STANDARD
        .decode(key.trim())
        .map_err(|_| "accountkey is not base64".to_owned())?;
    let path = config
        .service_url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
        .unwrap_or("");
    // Verb, then 11 empty standard headers (Content-Length is empty when 0), the x-ms-
    // headers in order, and the canonical resource with its query parameter.
    let string_to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{API_VERSION}\n/{}{path}/{}\nrestype:container",
        config.account, config.container
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(string_to_sign.as_bytes());
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}

/// A credential's kind, for an error message.
fn kind(credential: &AzureCredential) -> &'static str {
    match credential {
        AzureCredential::AccessKey(_) => "shared key",
        AzureCredential::SASToken(_) => "SAS",
        AzureCredential::BearerToken(_) => "OAuth",
    }
}
