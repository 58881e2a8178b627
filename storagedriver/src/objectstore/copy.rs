//! Copies too large for one server-side copy: ranged reads into the parts of a multipart upload.

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::multipart::PartId;
use object_store::path::Path;

use super::core::Core;
use crate::error::Result;

/// Copies the `size` bytes at `from` to `to` in parts of `copy_chunk_size`, with up to
/// `copy_concurrency` parts in flight; `source` names the path in errors. On failure the
/// upload is aborted, so nothing is left behind.
pub(crate) async fn copy_in_parts(
    core: &Core,
    source: &str,
    from: &Path,
    to: &Path,
    size: u64,
) -> Result<()> {
    let chunk = core.options.copy_chunk_size;
    let id = core
        .store
        .create_multipart(to)
        .await
        .map_err(|e| core.error("rename: start copy", source, e))?;
    let parts = size.div_ceil(chunk);
    let copied: Result<Vec<PartId>> = futures::stream::iter(0..parts)
        .map(|index| {
            let id = id.clone();
            async move {
                let start = index * chunk;
                let end = (start + chunk).min(size);
                let data = core
                    .store
                    .get_range(from, start..end)
                    .await
                    .map_err(|e| core.error("rename: read part", source, e))?;
                core.store
                    .put_part(to, &id, index as usize, data.into())
                    .await
                    .map_err(|e| core.error("rename: write part", source, e))
            }
        })
        .buffered(core.options.copy_concurrency)
        .try_collect()
        .await;
    let completed = match copied {
        Ok(parts) => core
            .store
            .complete_multipart(to, &id, parts)
            .await
            .map(|_| ())
            .map_err(|e| core.error("rename: complete copy", source, e)),
        Err(e) => Err(e),
    };
    if completed.is_err() {
        if let Err(e) = core.store.abort_multipart(to, &id).await {
            tracing::warn!(driver = %core.name, path = source, error = %e, "could not abort a failed copy");
        }
    }
    completed
}
