//! SAS URLs for `url_for`, from `object_store`'s Azure signer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use object_store::azure::MicrosoftAzure;
use object_store::path::Path;
use object_store::signer::{Method as HttpMethod, Signer};
use storagedriver::Method;
use storagedriver::objectstore::UrlSigner;

/// Signs GET and HEAD requests with a read-only service SAS (with a shared key) or a user
/// delegation SAS (with a client secret).
#[derive(Debug)]
pub(crate) struct SasSigner(pub(crate) Arc<MicrosoftAzure>);

#[async_trait]
impl UrlSigner for SasSigner {
    async fn signed_url(
        &self,
        method: Method,
        key: &Path,
        expires_in: Duration,
    ) -> object_store::Result<String> {
        // A SAS grants permissions, not methods: read (`sp=r`) allows Get Blob and Get Blob
        // Properties alike, and object_store grants no permission when asked for HEAD.
        let (Method::Get | Method::Head) = method;
        Ok(self
            .0
            .signed_url(HttpMethod::GET, key, expires_in)
            .await?
            .into())
    }
}
