//! Azure Storage connection strings: `AccountName=...;AccountKey=...;BlobEndpoint=...`.

/// The parts of a connection string the blob driver uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConnectionString {
    pub(crate) account: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) sas: Option<String>,
    pub(crate) blob_endpoint: Option<String>,
}

/// The storage emulator's well-known development account (`UseDevelopmentStorage=true`).
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEV_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// The keys of the other services' endpoints, which a blob driver ignores.
const OTHER_SERVICES: &[&str] = &[
    "QueueEndpoint",
    "TableEndpoint",
    "FileEndpoint",
    "QueueSecondaryEndpoint",
    "TableSecondaryEndpoint",
    "FileSecondaryEndpoint",
    "BlobSecondaryEndpoint",
];

impl ConnectionString {
    /// Parses `text`; the error says which part is wrong (it never repeats a secret).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut parsed = ConnectionString::default();
        let mut protocol = None;
        let mut suffix = None;
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!(
                    "expected Key=Value parts separated by ';', got a part without '=' ({} characters)",
                    part.len()
                ));
            };
            let value = value.trim().to_owned();
            match key.trim() {
                "AccountName" => parsed.account = Some(value),
                "AccountKey" => parsed.key = Some(value),
                "SharedAccessSignature" => parsed.sas = Some(value),
                "BlobEndpoint" => parsed.blob_endpoint = Some(value),
                "DefaultEndpointsProtocol" => protocol = Some(value),
                "EndpointSuffix" => suffix = Some(value),
                "UseDevelopmentStorage" if value.eq_ignore_ascii_case("true") => {
                    parsed.account.get_or_insert_with(|| DEV_ACCOUNT.to_owned());
                    parsed.key.get_or_insert_with(|| DEV_KEY.to_owned());
                    parsed
                        .blob_endpoint
                        .get_or_insert_with(|| DEV_BLOB_ENDPOINT.to_owned());
                }
                other if OTHER_SERVICES.contains(&other) => {}
                other => {
                    return Err(format!(
                        "unknown key {other:?} (accepted: AccountName, AccountKey, \
                         SharedAccessSignature, BlobEndpoint, DefaultEndpointsProtocol, \
                         EndpointSuffix, UseDevelopmentStorage)"
                    ));
                }
            }
        }
        if parsed.blob_endpoint.is_none() && (protocol.is_some() || suffix.is_some()) {
            if let Some(account) = &parsed.account {
                parsed.blob_endpoint = Some(format!(
                    "{}://{account}.blob.{}",
                    protocol.as_deref().unwrap_or("https"),
                    suffix.as_deref().unwrap_or("core.windows.net")
                ));
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_portal_connection_string() {
        let c = ConnectionString::parse(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5==;EndpointSuffix=core.windows.net",
        )
        .expect("valid");
        assert_eq!(c.account.as_deref(), Some("acct"));
        assert_eq!(c.key.as_deref(), Some("a2V5=="));
        assert_eq!(
            c.blob_endpoint.as_deref(),
            Some("https://acct.blob.core.windows.net")
        );
    }

    #[test]
    fn the_development_storage_shortcut() {
        let c = ConnectionString::parse("UseDevelopmentStorage=true").expect("valid");
        assert_eq!(c.account.as_deref(), Some(DEV_ACCOUNT));
        assert_eq!(c.blob_endpoint.as_deref(), Some(DEV_BLOB_ENDPOINT));
    }

    #[test]
    fn errors_never_repeat_the_secret() {
        let err = ConnectionString::parse("AccountName=a;s3cr3t").expect_err("an error");
        assert!(!err.contains("s3cr3t"), "{err}");
        let err = ConnectionString::parse("AccountName=a;Bucket=b").expect_err("an error");
        assert!(err.contains("\"Bucket\""), "{err}");
    }
}
