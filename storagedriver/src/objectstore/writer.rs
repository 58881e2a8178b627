//! The resumable writer: a multipart upload in equal parts, with its state under reserved keys.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::multipart::PartId;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload};
use tokio::task::JoinSet;

use super::core::Core;
use super::upload::{self, UploadState};
use crate::error::{Error, Result, Retry};
use crate::writer::{FileWriter, WriterState};

/// Opens a writer for `path`: a new upload, or (`append`) the one an earlier writer closed.
/// Either way the new writer takes the upload over (see the crate docs).
pub(crate) async fn open(core: Arc<Core>, path: &str, append: bool) -> Result<ObjectWriter> {
    let found = upload::find(&core, path).await?;
    let previous = found.state;
    let token = upload::new_token(found.newest.as_deref());
    let (state, tail) = match (append, previous.clone()) {
        (true, Some(previous)) => {
            let tail = upload::read_tail(&core, path, &previous).await?;
            (UploadState { token, ..previous }, tail)
        }
        (true, None) => {
            match core.store.head(&core.keys.object(path)).await {
                Ok(meta) if meta.size == 0 => {}
                Ok(_) => {
                    return Err(Error::unsupported(
                        core.name.as_str(),
                        format!("append to committed non-empty content at {path}"),
                    ));
                }
                Err(e) => return Err(core.error("writer", path, e)),
            }
            (
                UploadState::fresh(token, core.options.chunk_size),
                Bytes::new(),
            )
        }
        (false, _) => (
            UploadState::fresh(token, core.options.chunk_size),
            Bytes::new(),
        ),
    };
    upload::save(&core, path, &state).await?;
    if let (false, Some(previous)) = (append, &previous) {
        upload::abort(&core, path, previous).await?;
    }
    // Every record listed before ours was saved is older than ours.
    upload::remove_listed(
        &core,
        path,
        found.records,
        &state.token,
        false,
        state.tail_owner.as_deref(),
    )
    .await;
    let mut buffer = Buffer::default();
    buffer.push(tail);
    let parts = state.parts.iter().cloned().map(Some).collect();
    Ok(ObjectWriter {
        size: state.size(),
        core,
        path: path.to_owned(),
        state,
        parts,
        buffer,
        in_flight: JoinSet::new(),
        failure: None,
        life: WriterState::Open,
    })
}

/// Bytes written but not yet uploaded, as the caller's own chunks (no copy).
#[derive(Debug, Default)]
struct Buffer {
    chunks: VecDeque<Bytes>,
    len: u64,
}

impl Buffer {
    fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.len += data.len() as u64;
            self.chunks.push_back(data);
        }
    }

    /// The first `n` bytes (`n <= len`), as a payload of the chunks that hold them.
    fn take(&mut self, n: u64) -> PutPayload {
        let mut taken = Vec::new();
        let mut left = n;
        while left > 0 {
            let Some(mut chunk) = self.chunks.pop_front() else {
                break;
            };
            if chunk.len() as u64 > left {
                let rest = chunk.split_off(left as usize);
                self.chunks.push_front(rest);
            }
            left -= chunk.len() as u64;
            taken.push(chunk);
        }
        self.len -= n - left;
        taken.into_iter().collect()
    }

    fn take_all(&mut self) -> PutPayload {
        let n = self.len;
        self.take(n)
    }
}

/// A [`FileWriter`] over a multipart upload.
pub(crate) struct ObjectWriter {
    core: Arc<Core>,
    path: String,
    /// The state as last persisted (plus the upload id once created).
    state: UploadState,
    /// Part ids by part index; `None` while the part is in flight.
    parts: Vec<Option<String>>,
    buffer: Buffer,
    in_flight: JoinSet<(usize, object_store::Result<PartId>)>,
    /// The first part upload that failed: the content has a hole, so it cannot be published.
    failure: Option<String>,
    size: u64,
    life: WriterState,
}

impl fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("driver", &self.core.name)
            .field("path", &self.path)
            .field("size", &self.size)
            .field("parts", &self.parts.len())
            .field("buffered", &self.buffer.len)
            .field("life", &self.life)
            .finish_non_exhaustive()
    }
}

impl ObjectWriter {
    fn finished(&self) -> Result<()> {
        self.life.ensure_open(&self.core.name, &self.path)
    }

    /// Fails unless this writer still owns the upload; a writer that lost it is superseded
    /// from then on.
    async fn ensure_owner(&mut self) -> Result<()> {
        let owner = upload::owner(&self.core, &self.path).await?;
        if owner.as_deref() == Some(self.state.token.as_str()) {
            return Ok(());
        }
        self.in_flight.abort_all();
        self.life = WriterState::Superseded;
        self.finished()
    }

    /// Uploads one full part, keeping at most `max_concurrent_parts` in flight.
    async fn upload_part(&mut self, payload: PutPayload) -> Result<()> {
        self.ensure_owner().await?;
        let key = self.core.keys.object(&self.path);
        let id = match &self.state.upload {
            Some(id) => id.clone(),
            None => {
                let options = PutMultipartOptions {
                    attributes: self.core.options.attributes.clone(),
                    ..Default::default()
                };
                let id = self
                    .core
                    .store
                    .create_multipart_opts(&key, options)
                    .await
                    .map_err(|e| self.core.error("writer: start upload", &self.path, e))?;
                self.state.upload = Some(id.clone());
                // Persisted at once, so that a crash leaves an upload that cancel and delete
                // can find and abort.
                upload::save(&self.core, &self.path, &self.state).await?;
                id
            }
        };
        while self.in_flight.len() >= self.core.options.max_concurrent_parts {
            if let Err(e) = self.join_one().await {
                self.ensure_owner().await?;
                return Err(e);
            }
        }
        self.spawn_part(key, id, payload);
        Ok(())
    }

    /// Starts the upload of the next part.
    fn spawn_part(&mut self, key: Path, id: String, payload: PutPayload) {
        let index = self.parts.len();
        self.parts.push(None);
        let store = Arc::clone(&self.core.store);
        self.in_flight
            .spawn(async move { (index, store.put_part(&key, &id, index, payload).await) });
    }

    /// Waits for one part in flight and records it.
    async fn join_one(&mut self) -> Result<()> {
        let Some(joined) = self.in_flight.join_next().await else {
            return Ok(());
        };
        let failure = match joined {
            Ok((index, Ok(part))) => {
                self.parts[index] = Some(part.content_id);
                return Ok(());
            }
            Ok((index, Err(e))) => {
                self.core
                    .error(&format!("writer: upload part {}", index + 1), &self.path, e)
            }
            Err(join) => Error::backend(
                self.core.name.as_str(),
                "writer: upload part",
                Some(&self.path),
                Retry::MayHelp,
                join,
            ),
        };
        self.failure.get_or_insert_with(|| failure.to_string());
        Err(failure)
    }

    /// Waits for every part in flight; fails if any part ever failed, as superseded when
    /// another writer took the upload over (it may have aborted the upload under this one).
    async fn drain(&mut self) -> Result<()> {
        match self.drain_parts().await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.ensure_owner().await?;
                Err(e)
            }
        }
    }

    async fn drain_parts(&mut self) -> Result<()> {
        let mut first = None;
        while !self.in_flight.is_empty() {
            if let Err(e) = self.join_one().await {
                first.get_or_insert(e);
            }
        }
        if let Some(e) = first {
            return Err(e);
        }
        match &self.failure {
            None => Ok(()),
            Some(failure) => Err(Error::backend(
                self.core.name.as_str(),
                "writer",
                Some(&self.path),
                Retry::Useless,
                format!("an earlier part upload failed, so the content has a hole: {failure}"),
            )),
        }
    }

    fn uploaded_parts(&self) -> Vec<String> {
        self.parts.iter().flatten().cloned().collect()
    }

    /// Removes this writer's records, and older ones, after a commit or cancel.
    async fn forget(&self) {
        upload::remove_older(&self.core, &self.path, &self.state.token, true).await;
    }
}

#[async_trait]
impl FileWriter for ObjectWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.finished()?;
        self.size += data.len() as u64;
        self.buffer.push(data);
        let part_size = self.state.part_size;
        while self.buffer.len >= part_size {
            let part = self.buffer.take(part_size);
            self.upload_part(part).await?;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn close(&mut self) -> Result<()> {
        match self.life {
            WriterState::Open => {}
            WriterState::Superseded => return self.finished(),
            _ => return Ok(()),
        }
        self.drain().await?;
        self.ensure_owner().await?;
        let previous_tail = self.state.tail_owner.take();
        if self.buffer.len > 0 {
            let tail = self.buffer.take_all();
            upload::write_tail(&self.core, &self.path, &self.state.token, tail).await?;
            self.state.tail_owner = Some(self.state.token.clone());
        }
        self.state.tail_len = self.size - self.parts.len() as u64 * self.state.part_size;
        self.state.parts = self.uploaded_parts();
        upload::save(&self.core, &self.path, &self.state).await?;
        if let Some(owner) = previous_tail.filter(|o| Some(o) != self.state.tail_owner.as_ref()) {
            upload::remove_tail(&self.core, &self.path, &owner).await;
        }
        self.life = WriterState::Closed;
        Ok(())
    }

    async fn cancel(&mut self) -> Result<()> {
        self.finished()?;
        self.in_flight.abort_all();
        self.ensure_owner().await?;
        upload::abort(&self.core, &self.path, &self.state).await?;
        self.forget().await;
        self.life = WriterState::Cancelled;
        Ok(())
    }

    async fn commit(&mut self) -> Result<()> {
        self.finished()?;
        self.ensure_owner().await?;
        let key = self.core.keys.object(&self.path);
        let upload = self.state.upload.clone();
        if let Some(id) = &upload {
            if self.buffer.len > 0 {
                // The last (shorter) part goes up beside the parts still in flight.
                let last = self.buffer.take_all();
                self.spawn_part(key.clone(), id.clone(), last);
            }
        }
        self.drain().await?;
        match upload {
            None => {
                let payload = self.buffer.take_all();
                let options = PutOptions {
                    attributes: self.core.options.attributes.clone(),
                    ..Default::default()
                };
                self.core
                    .store
                    .put_opts(&key, payload, options)
                    .await
                    .map_err(|e| self.core.error("commit", &self.path, e))?;
            }
            Some(id) => {
                let parts = self
                    .uploaded_parts()
                    .into_iter()
                    .map(|content_id| PartId { content_id })
                    .collect();
                if let Err(e) = self.core.store.complete_multipart(&key, &id, parts).await {
                    let err = self.core.error("commit: complete upload", &self.path, e);
                    // A writer that took the upload over since the check above aborted it:
                    // this one is superseded, not missing its path.
                    self.ensure_owner().await?;
                    return Err(err);
                }
            }
        }
        self.forget().await;
        self.life = WriterState::Committed;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_cuts_exact_parts_across_chunks() {
        let mut buffer = Buffer::default();
        buffer.push(Bytes::from_static(b"abc"));
        buffer.push(Bytes::from_static(b"defgh"));
        let part: Vec<u8> = buffer
            .take(4)
            .into_iter()
            .flat_map(|b| b.to_vec())
            .collect();
        assert_eq!(part, b"abcd");
        assert_eq!(buffer.len, 4);
        let rest: Vec<u8> = buffer
            .take_all()
            .into_iter()
            .flat_map(|b| b.to_vec())
            .collect();
        assert_eq!(rest, b"efgh");
        assert_eq!(buffer.len, 0);
    }
}
