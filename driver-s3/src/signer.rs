//! Presigned URLs for `url_for`, from `object_store`'s S3 signer.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::signer::{Method as HttpMethod, Signer};
use storagedriver::Method;
use storagedriver::objectstore::UrlSigner;

/// Presigns GET and HEAD requests with SigV4 query parameters.
#[derive(Debug)]
pub(crate) struct S3Signer(pub(crate) Arc<AmazonS3>);

#[async_trait]
impl UrlSigner for S3Signer {
    async fn signed_url(
        &self,
        method: Method,
        key: &Path,
        expires_in: Duration,
    ) -> object_store::Result<String> {
        let method = match method {
            Method::Get => HttpMethod::GET,
            Method::Head => HttpMethod::HEAD,
        };
        Ok(self.0.signed_url(method, key, expires_in).await?.into())
    }
}
