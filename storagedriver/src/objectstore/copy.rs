//! Copies too large for one server-side copy: ranged reads into the parts of a multipart upload.

use futures::{StreamExt, TryStreamExt};
use object_store::multipart::PartId;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStoreExt};

use super::core::Core;
use crate::error::{Error, Result};

/// How a copy in parts ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Copied {
    /// The copy is complete.
    Done,
    /// The source changed (or went) while it was read: nothing was published; the caller
    /// looks at the source again.
    SourceChanged,
}

/// Why one part could not be copied.
enum PartFailure {
    Read(object_store::Error),
    Write(Error),
}

/// Copies the object `meta` describes at `from` to `to` in parts of `copy_chunk_size`, with up
/// to `copy_concurrency` parts in flight; `source` names the path in errors. Every part is
/// read on the condition that the source is still the object of `meta` (its ETag, when the
/// store gives one); a source that changed meanwhile is [`Copied::SourceChanged`]. On failure
/// the upload is aborted, so nothing is left behind.
pub(crate) async fn copy_in_parts(
    core: &Core,
    source: &str,
    from: &Path,
    to: &Path,
    meta: &ObjectMeta,
) -> Result<Copied> {
    let chunk = core.options.copy_chunk_size;
    let size = meta.size;
    let id = core
        .store
        .create_multipart(to)
        .await
        .map_err(|e| core.error("rename: start copy", source, e))?;
    let parts = size.div_ceil(chunk);
    let copied: std::result::Result<Vec<PartId>, PartFailure> = futures::stream::iter(0..parts)
        .map(|index| {
            let id = id.clone();
            async move {
                let start = index * chunk;
                let end = (start + chunk).min(size);
                let options = GetOptions {
                    range: Some(GetRange::Bounded(start..end)),
                    if_match: meta.e_tag.clone(),
                    ..GetOptions::default()
                };
                let read = core.store.get_opts(from, options).await;
                let data = match read {
                    Ok(got) => got.bytes().await,
                    Err(e) => Err(e),
                }
                .map_err(PartFailure::Read)?;
                core.store
                    .put_part(to, &id, index as usize, data.into())
                    .await
                    .map_err(|e| PartFailure::Write(core.error("rename: write part", source, e)))
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
            .map(|_| Copied::Done)
            .map_err(|e| core.error("rename: complete copy", source, e)),
        Err(PartFailure::Write(e)) => Err(e),
        Err(PartFailure::Read(e)) => {
            if changed(core, from, meta).await {
                Ok(Copied::SourceChanged)
            } else {
                Err(core.error("rename: read part", source, e))
            }
        }
    };
    if !matches!(completed, Ok(Copied::Done)) {
        if let Err(e) = core.store.abort_multipart(to, &id).await {
            tracing::warn!(driver = %core.name, path = source, error = %e, "could not abort a failed copy");
        }
    }
    completed
}

/// True when the object at `from` is no longer the one `meta` describes (or is gone).
async fn changed(core: &Core, from: &Path, meta: &ObjectMeta) -> bool {
    match core.store.head(from).await {
        Ok(now) => now.size != meta.size || now.e_tag != meta.e_tag,
        Err(object_store::Error::NotFound { .. }) => true,
        Err(_) => false,
    }
}
