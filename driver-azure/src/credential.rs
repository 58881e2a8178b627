//! The credential forms the driver accepts, read from the parameters, a connection string or
//! the standard Azure environment variables.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use storagedriver::Result;
use storagedriver::params::ParamReader;

use crate::config::env;
use crate::connection_string::ConnectionString;

/// How the driver authenticates. `Debug` never shows a secret.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// The account's shared key (base64), which signs every request.
    SharedKey(String),
    /// A shared access signature: the query string of a SAS URL, with or without its `?`.
    SasToken(String),
    /// A service principal's client secret, exchanged for OAuth tokens at
    /// `login.microsoftonline.com`.
    ClientSecret {
        /// `credentials.clientid`.
        client_id: String,
        /// `credentials.tenantid`.
        tenant_id: String,
        /// `credentials.secret`.
        secret: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl Credential {
    /// The credential's kind, as `credentials.type` names it (`sas_token` for a SAS).
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::SharedKey(_) => "shared_key",
            Credential::SasToken(_) => "sas_token",
            Credential::ClientSecret { .. } => "client_secret",
        }
    }

    /// The parameter errors about this credential name.
    pub(crate) fn parameter(&self) -> &'static str {
        match self {
            Credential::SharedKey(_) => "accountkey",
            Credential::SasToken(_) => "sastoken",
            Credential::ClientSecret { .. } => "credentials",
        }
    }

    /// Whether `url_for` can sign: a SAS cannot sign another SAS.
    pub(crate) fn can_sign_urls(&self) -> bool {
        !matches!(self, Credential::SasToken(_))
    }

    /// Reads `credentials`, `accountkey` and `sastoken`, then falls back on the connection
    /// string and the environment, in the order [`crate::AzureConfig`] documents.
    pub(crate) fn from_parameters(
        r: &mut ParamReader<'_>,
        connection: Option<&ConnectionString>,
    ) -> Result<Self> {
        let typed = match r.nested("credentials")? {
            None => None,
            Some(mut c) => {
                let kind = c.string("type")?.filter(|s| !s.is_empty());
                let client_id = c.string("clientid")?.filter(|s| !s.is_empty());
                let tenant_id = c.string("tenantid")?.filter(|s| !s.is_empty());
                let secret = c.string("secret")?.filter(|s| !s.is_empty());
                let typed = match kind.as_deref() {
                    None => None,
                    Some("shared_key") => Some(None),
                    Some("client_secret") => {
                        let field = |value: Option<String>, key: &str, var: &str| {
                            value.or_else(|| env(var)).ok_or_else(|| {
                                c.invalid(key, format!("required by client_secret (or {var})"))
                            })
                        };
                        Some(Some(Credential::ClientSecret {
                            client_id: field(client_id, "clientid", "AZURE_CLIENT_ID")?,
                            tenant_id: field(tenant_id, "tenantid", "AZURE_TENANT_ID")?,
                            secret: field(secret, "secret", "AZURE_CLIENT_SECRET")?,
                        }))
                    }
                    Some("default_credentials") => {
                        return Err(c.invalid(
                            "type",
                            "default_credentials is not supported: it looks for a managed \
                             identity at the instance metadata service or runs the Azure CLI; \
                             give accountkey, sastoken, connectionstring or client_secret \
                             credentials",
                        ));
                    }
                    Some(other) => {
                        return Err(c.invalid(
                            "type",
                            format!(
                                "unknown credential type {other:?} (accepted: shared_key, client_secret)"
                            ),
                        ));
                    }
                };
                c.finish()?;
                typed
            }
        };
        let account_key = r.string("accountkey")?.filter(|s| !s.is_empty());
        let sas_token = r.string("sastoken")?.filter(|s| !s.is_empty());
        let from_connection = connection.and_then(|c| {
            c.key
                .clone()
                .map(Credential::SharedKey)
                .or_else(|| c.sas.clone().map(Credential::SasToken))
        });
        let key_from_env = || env("AZURE_STORAGE_ACCOUNT_KEY").or_else(|| env("AZURE_STORAGE_KEY"));
        let credential = match typed {
            Some(Some(client_secret)) => client_secret,
            Some(None) => account_key
                .or_else(|| connection.and_then(|c| c.key.clone()))
                .or_else(key_from_env)
                .map(Credential::SharedKey)
                .ok_or_else(|| {
                    r.invalid(
                        "accountkey",
                        "required by credentials.type shared_key (or AZURE_STORAGE_ACCOUNT_KEY)",
                    )
                })?,
            None => account_key
                .map(Credential::SharedKey)
                .or_else(|| sas_token.map(Credential::SasToken))
                .or(from_connection)
                .or_else(|| key_from_env().map(Credential::SharedKey))
                .or_else(|| env("AZURE_STORAGE_SAS_TOKEN").map(Credential::SasToken))
                .or_else(client_secret_from_env)
                .ok_or_else(|| {
                    r.invalid(
                        "accountkey",
                        "no credential given: set accountkey, sastoken, connectionstring or \
                         credentials (or AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_TOKEN, \
                         AZURE_STORAGE_CONNECTION_STRING); the driver never falls back to a \
                         managed identity",
                    )
                })?,
        };
        if let Credential::SharedKey(key) = &credential {
            if STANDARD.decode(key.trim()).is_err() {
                return Err(r.invalid("accountkey", "not a base64 account key"));
            }
        }
        Ok(credential)
    }

    /// `builder` authenticating with this credential, and with nothing else.
    pub(crate) fn apply(&self, builder: MicrosoftAzureBuilder) -> MicrosoftAzureBuilder {
        match self {
            Credential::SharedKey(key) => builder
                .with_access_key(key.trim())
                .with_credential_type("access_key"),
            Credential::SasToken(token) => builder
                .with_config(AzureConfigKey::SasKey, token.trim())
                .with_credential_type("sas_token"),
            Credential::ClientSecret {
                client_id,
                tenant_id,
                secret,
            } => builder
                .with_client_secret_authorization(client_id, secret, tenant_id)
                .with_credential_type("client_secret"),
        }
    }
}

/// A service principal from `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and `AZURE_CLIENT_SECRET`,
/// when all three are set.
fn client_secret_from_env() -> Option<Credential> {
    Some(Credential::ClientSecret {
        client_id: env("AZURE_CLIENT_ID")?,
        tenant_id: env("AZURE_TENANT_ID")?,
        secret: env("AZURE_CLIENT_SECRET")?,
    })
}
