//! What every operation of the core shares: the store, the key mapping, the options.

use std::fmt;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::multipart::MultipartStore;
use std::time::Duration;

use async_trait::async_trait;
use object_store::path::Path;

use super::errors;
use super::keys::Keys;
use super::options::ObjectStoreOptions;
use crate::error::Error;
use crate::url::Method;

/// A store the core can drive: the object API and multipart uploads. Every `object_store`
/// backend with multipart uploads (S3, Azure, GCS, the in-memory store, ...) is one.
pub trait ObjectBackend: ObjectStore + MultipartStore {}

impl<T: ObjectStore + MultipartStore> ObjectBackend for T {}

/// Presigns URLs for `url_for`: a driver crate implements it over its store's signer (for
/// example `object_store`'s `Signer` on S3 or Azure), so the core needs no HTTP client.
#[async_trait]
pub trait UrlSigner: Send + Sync + fmt::Debug {
    /// A URL that lets a plain HTTP client send `method` to `key` until `expires_in` has
    /// passed.
    async fn signed_url(
        &self,
        method: Method,
        key: &Path,
        expires_in: Duration,
    ) -> object_store::Result<String>;
}

/// The driver's shared state, behind an `Arc` so writers and streams outlive a call. A clone
/// shares the store.
#[derive(Clone)]
pub(crate) struct Core {
    pub(crate) name: String,
    pub(crate) store: Arc<dyn ObjectBackend>,
    pub(crate) keys: Keys,
    pub(crate) options: ObjectStoreOptions,
    pub(crate) signer: Option<Arc<dyn UrlSigner>>,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreDriver")
            .field("name", &self.name)
            .field("store", &format_args!("{}", self.store))
            .field("root", &self.keys.root())
            .field("chunk_size", &self.options.chunk_size)
            .field("url_for", &self.signer.is_some())
            .finish()
    }
}

impl Core {
    /// The contract's error for a failed `operation` on `path`.
    pub(crate) fn error(&self, operation: &str, path: &str, err: object_store::Error) -> Error {
        errors::map(&self.name, operation, path, err)
    }
}
