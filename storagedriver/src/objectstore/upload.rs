//! A writer's persisted state: the record under `~state` and the tail object, read and written
//! here only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::{Value, json};

use super::core::Core;
use super::keys::{self, STATE, TAIL};
use crate::error::{Error, Result, Retry};

/// What a writer persists so that another driver instance, or another process, can resume it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UploadState {
    /// The writer that owns the upload; a later writer replaces it, which supersedes the first.
    pub(crate) token: String,
    /// The multipart upload, once the first part went up.
    pub(crate) upload: Option<String>,
    /// The uploaded parts' ids (ETags), in order.
    pub(crate) parts: Vec<String>,
    /// The size of every part but the last, fixed when the upload began.
    pub(crate) part_size: u64,
    /// The token of the writer whose tail object holds the bytes after the last part.
    pub(crate) tail_owner: Option<String>,
    /// The length of that tail.
    pub(crate) tail_len: u64,
}

impl UploadState {
    /// A new, empty upload owned by `token`.
    pub(crate) fn fresh(token: String, part_size: u64) -> Self {
        UploadState {
            token,
            upload: None,
            parts: Vec::new(),
            part_size,
            tail_owner: None,
            tail_len: 0,
        }
    }

    /// Bytes in the upload: its parts and its tail.
    pub(crate) fn size(&self) -> u64 {
        self.parts.len() as u64 * self.part_size + self.tail_len
    }

    fn to_json(&self) -> Value {
        json!({
            "version": 1,
            "token": self.token,
            "upload": self.upload,
            "parts": self.parts,
            "part_size": self.part_size,
            "tail_owner": self.tail_owner,
            "tail_len": self.tail_len,
        })
    }

    fn from_json(value: &Value) -> Option<Self> {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let parts = value
            .get("parts")?
            .as_array()?
            .iter()
            .map(|p| p.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        Some(UploadState {
            token: text("token")?,
            upload: text("upload"),
            parts,
            part_size: value.get("part_size")?.as_u64()?,
            tail_owner: text("tail_owner"),
            tail_len: value.get("tail_len")?.as_u64()?,
        })
    }
}

/// A token that sorts after `after` (the newest record's token), and that no other writer
/// has: a sequence number one past `after`'s, then the time, the process and a counter.
pub(crate) fn new_token(after: Option<&str>) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seq = after
        .and_then(|t| t.split('-').next())
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .map_or(0, |s| s.saturating_add(1));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{seq:016x}-{nanos:x}-{:x}-{count:x}", std::process::id())
}

/// The reserved keys directly in the upload directory of `path`: state records and tails,
/// each with its writer's token.
async fn records(core: &Core, path: &str) -> Result<Vec<Record>> {
    let listing = core
        .store
        .list_with_delimiter(Some(&core.keys.uploads(path)))
        .await
        .map_err(|e| core.error("read upload state", path, e))?;
    let mut records: Vec<Record> = listing
        .objects
        .into_iter()
        .filter_map(|meta| {
            let name = meta.location.filename()?;
            let (state, token) = match (name.strip_prefix(STATE), name.strip_prefix(TAIL)) {
                (Some(token), _) => (true, token.to_owned()),
                (None, Some(token)) => (false, token.to_owned()),
                (None, None) => return None,
            };
            Some(Record {
                state,
                token,
                key: meta.location,
            })
        })
        .collect();
    records.sort_by(|a, b| a.token.cmp(&b.token));
    Ok(records)
}

/// One reserved key of an upload.
pub(crate) struct Record {
    /// A state record (else a tail).
    state: bool,
    token: String,
    key: Path,
}

/// The token of the writer that owns the upload of `path`: the newest state record's.
pub(crate) async fn owner(core: &Core, path: &str) -> Result<Option<String>> {
    Ok(records(core, path)
        .await?
        .into_iter()
        .rfind(|r| r.state)
        .map(|r| r.token))
}

/// What a new writer finds of the upload of `path`: every reserved key (listed once), the
/// newest state record's token, and that record.
pub(crate) struct Found {
    pub(crate) records: Vec<Record>,
    pub(crate) newest: Option<String>,
    pub(crate) state: Option<UploadState>,
}

/// Lists the upload of `path` and reads its newest state record.
pub(crate) async fn find(core: &Core, path: &str) -> Result<Found> {
    let records = records(core, path).await?;
    let newest = records.iter().rfind(|r| r.state);
    let state = match newest {
        Some(record) => read_record(core, path, &record.key).await?,
        None => None,
    };
    let newest = newest.map(|r| r.token.clone());
    Ok(Found {
        records,
        newest,
        state,
    })
}

/// The state record at `key` (`None` if it went meanwhile).
async fn read_record(core: &Core, path: &str, key: &Path) -> Result<Option<UploadState>> {
    let body = match core.store.get(key).await {
        Ok(result) => result
            .bytes()
            .await
            .map_err(|e| core.error("read upload state", path, e))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(core.error("read upload state", path, e)),
    };
    serde_json::from_slice::<Value>(&body)
        .ok()
        .as_ref()
        .and_then(UploadState::from_json)
        .map(Some)
        .ok_or_else(|| {
            Error::backend(
                core.name.as_str(),
                "read upload state",
                Some(path),
                Retry::Useless,
                format!("the upload state at {key} is not a record this driver wrote"),
            )
        })
}

/// Writes the state record of the writer that owns `state`.
pub(crate) async fn save(core: &Core, path: &str, state: &UploadState) -> Result<()> {
    let body = Bytes::from(state.to_json().to_string());
    core.store
        .put(&core.keys.state(path, &state.token), PutPayload::from(body))
        .await
        .map(|_| ())
        .map_err(|e| core.error("write upload state", path, e))
}

/// Removes the records of writers older than `token` (their state records, and their tails
/// but `keep_tail`), or up to and including `token` when `inclusive`. Newer writers' records
/// are never touched, so a writer that finishes cannot remove the state of one that took over
/// meanwhile. A failure only leaves reserved keys behind.
pub(crate) async fn remove_older(core: &Core, path: &str, token: &str, inclusive: bool) {
    match records(core, path).await {
        Ok(records) => remove_listed(core, path, records, token, inclusive, None).await,
        Err(e) => {
            tracing::debug!(driver = %core.name, path, error = %e, "leaving stale upload records");
        }
    }
}

/// [`remove_older`] over records already listed.
pub(crate) async fn remove_listed(
    core: &Core,
    path: &str,
    records: Vec<Record>,
    token: &str,
    inclusive: bool,
    keep_tail: Option<&str>,
) {
    let stale = records
        .into_iter()
        .filter(|r| {
            if inclusive {
                r.token.as_str() <= token
            } else {
                r.token.as_str() < token
            }
        })
        .filter(|r| r.state || Some(r.token.as_str()) != keep_tail)
        .map(|r| r.key)
        .collect();
    if let Err(e) = delete_keys(core, path, stale).await {
        tracing::debug!(driver = %core.name, path, error = %e, "leaving stale upload records");
    }
}

/// The tail bytes the state names.
pub(crate) async fn read_tail(core: &Core, path: &str, state: &UploadState) -> Result<Bytes> {
    let Some(owner) = &state.tail_owner else {
        return Ok(Bytes::new());
    };
    let tail = core
        .store
        .get(&core.keys.tail(path, owner))
        .await
        .map_err(|e| core.error("read upload tail", path, e))?
        .bytes()
        .await
        .map_err(|e| core.error("read upload tail", path, e))?;
    if tail.len() as u64 != state.tail_len {
        return Err(Error::backend(
            core.name.as_str(),
            "read upload tail",
            Some(path),
            Retry::Useless,
            format!(
                "the upload's tail holds {} bytes where its state records {}",
                tail.len(),
                state.tail_len
            ),
        ));
    }
    Ok(tail)
}

/// Writes the tail of the writer `token`.
pub(crate) async fn write_tail(
    core: &Core,
    path: &str,
    token: &str,
    tail: PutPayload,
) -> Result<()> {
    core.store
        .put(&core.keys.tail(path, token), tail)
        .await
        .map(|_| ())
        .map_err(|e| core.error("write upload tail", path, e))
}

/// Removes a tail object another writer left; a failure only leaves a stray reserved key.
pub(crate) async fn remove_tail(core: &Core, path: &str, owner: &str) {
    if let Err(e) = core.store.delete(&core.keys.tail(path, owner)).await {
        tracing::debug!(driver = %core.name, path, error = %e, "leaving a stale upload tail");
    }
}

/// Aborts the multipart upload of `state`, if it has one. An upload that is already gone is
/// not an error.
pub(crate) async fn abort(core: &Core, path: &str, state: &UploadState) -> Result<()> {
    let Some(id) = &state.upload else {
        return Ok(());
    };
    match core
        .store
        .abort_multipart(&core.keys.object(path), id)
        .await
    {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(core.error("abort upload", path, e)),
    }
}

/// Aborts every upload of `path` and of the paths below it and removes their records.
pub(crate) async fn remove_all_below(core: &Core, path: &str) -> Result<()> {
    let dir = core.keys.uploads(path);
    let keys: Vec<Path> = core
        .store
        .list(Some(&dir))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| core.error("delete", path, e))?;
    for key in keys
        .iter()
        .filter(|k| k.filename().is_some_and(|n| n.starts_with(STATE)))
    {
        let Some(rel) = keys::relative(&dir, key) else {
            continue;
        };
        let upload_path = match rel.rsplit_once('/') {
            Some((below, _)) => format!("{path}/{below}"),
            None => path.to_owned(),
        };
        if let Some(state) = read_record(core, &upload_path, key).await? {
            abort(core, &upload_path, &state).await?;
        }
    }
    delete_keys(core, path, keys).await
}

/// Deletes `keys` in the store's batches; keys already gone are fine.
async fn delete_keys(core: &Core, path: &str, keys: Vec<Path>) -> Result<()> {
    let mut results = core
        .store
        .delete_stream(futures::stream::iter(keys.into_iter().map(Ok)).boxed());
    while let Some(result) = results.next().await {
        match result {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(core.error("remove upload state", path, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_json() {
        let mut state = UploadState::fresh(new_token(None), 5 << 20);
        state.upload = Some("id-1".into());
        state.parts = vec!["e1".into(), "e2".into()];
        state.tail_owner = Some(state.token.clone());
        state.tail_len = 7;
        assert_eq!(
            UploadState::from_json(&state.to_json()),
            Some(state.clone())
        );
        assert_eq!(state.size(), (10 << 20) + 7);
    }

    #[test]
    fn a_new_token_sorts_after_the_one_it_follows() {
        let first = new_token(None);
        let second = new_token(Some(&first));
        let rival = new_token(Some(&first));
        assert!(second > first && rival > first && second != rival);
        assert!(new_token(Some(&second)) > rival);
    }
}
