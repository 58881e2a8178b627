//! `mapdriver`: a small storage driver kept in one sorted map behind one mutex, written to
//! show what a third-party driver needs: validate paths with `storagedriver::path`, return the
//! contract's errors, and run the conformance suite (see `tests/conformance.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use storagedriver::{
    ByteStream, Capabilities, Error, FileInfo, FileWriter, Result, StorageDriver, WriterState, path,
};

const NAME: &str = "mapdriver";

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<String, (Bytes, SystemTime)>,
    /// Each path's upload: what a closed writer left, or what the open writer started from.
    uploads: HashMap<String, Vec<u8>>,
    /// The id of the open writer that owns each path's upload: the latest one opened.
    owners: HashMap<String, u64>,
    next_writer: u64,
}

impl State {
    /// Committed paths strictly below `dir`.
    fn below<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.files
            .keys()
            .filter(move |k| path::is_within(dir, k) && k.as_str() != dir)
    }
}

/// The driver: cloning it shares the store.
#[derive(Debug, Clone, Default)]
pub struct MapDriver {
    state: Arc<Mutex<State>>,
}

impl MapDriver {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl StorageDriver for MapDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }

    async fn get_content(&self, p: &str) -> Result<Bytes> {
        path::check(NAME, p)?;
        let state = self.lock();
        state
            .files
            .get(p)
            .map(|(data, _)| data.clone())
            .ok_or_else(|| Error::path_not_found(NAME, p))
    }

    async fn put_content(&self, p: &str, content: Bytes) -> Result<()> {
        path::check(NAME, p)?;
        self.lock()
            .files
            .insert(p.to_owned(), (content, SystemTime::now()));
        Ok(())
    }

    async fn reader(&self, p: &str, offset: u64) -> Result<ByteStream> {
        let data = self.get_content(p).await?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let rest = data.slice(start..);
        let chunks = if rest.is_empty() {
            Vec::new()
        } else {
            vec![Ok(rest)]
        };
        Ok(Box::pin(futures::stream::iter(chunks)))
    }

    async fn writer(&self, p: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        path::check(NAME, p)?;
        let mut state = self.lock();
        // Two writers for one path: the later one takes over. The upload stays in the store
        // (a writer resumed while this one is open starts from it), and this writer becomes
        // its owner, which supersedes the writer that owned it.
        let buffer = if !append {
            state.uploads.insert(p.to_owned(), Vec::new());
            Vec::new()
        } else if let Some(resumed) = state.uploads.get(p) {
            resumed.clone()
        } else {
            match state.files.get(p) {
                Some((data, _)) if data.is_empty() => {
                    state.uploads.insert(p.to_owned(), Vec::new());
                    Vec::new()
                }
                Some(_) => return Err(Error::unsupported(NAME, "append to committed content")),
                None => return Err(Error::path_not_found(NAME, p)),
            }
        };
        let id = state.next_writer;
        state.next_writer += 1;
        state.owners.insert(p.to_owned(), id);
        Ok(Box::new(MapWriter {
            driver: self.clone(),
            path: p.to_owned(),
            id,
            buffer,
            state: WriterState::Open,
        }))
    }

    async fn stat(&self, p: &str) -> Result<FileInfo> {
        path::check_dir(NAME, p)?;
        let state = self.lock();
        if let Some((data, modified)) = state.files.get(p) {
            return Ok(FileInfo::file(p, data.len() as u64, *modified));
        }
        match state
            .below(p)
            .filter_map(|k| state.files.get(k))
            .map(|(_, m)| *m)
            .max()
        {
            Some(newest) => Ok(FileInfo::dir(p, newest)),
            None => Err(Error::path_not_found(NAME, p)),
        }
    }

    async fn list(&self, p: &str) -> Result<Vec<String>> {
        path::check_dir(NAME, p)?;
        let state = self.lock();
        let mut children: Vec<String> = state
            .below(p)
            .map(|k| {
                let rest = k[p.len()..].trim_start_matches('/');
                path::join(p, rest.split('/').next().unwrap_or(rest))
            })
            .collect();
        children.sort();
        children.dedup();
        if children.is_empty() && p != path::ROOT {
            return Err(Error::path_not_found(NAME, p));
        }
        Ok(children)
    }

    async fn rename(&self, source: &str, dest: &str) -> Result<()> {
        path::check(NAME, source)?;
        path::check(NAME, dest)?;
        let mut state = self.lock();
        let (data, _) = state
            .files
            .remove(source)
            .ok_or_else(|| Error::path_not_found(NAME, source))?;
        state
            .files
            .insert(dest.to_owned(), (data, SystemTime::now()));
        Ok(())
    }

    async fn delete(&self, p: &str) -> Result<()> {
        path::check(NAME, p)?;
        let mut state = self.lock();
        let before = state.files.len();
        state.files.retain(|k, _| !path::is_within(p, k));
        if state.files.len() == before {
            return Err(Error::path_not_found(NAME, p));
        }
        state.uploads.retain(|k, _| !path::is_within(p, k));
        Ok(())
    }
}

/// The writer: a buffer that goes into the store's uploads on close (or drop) and into its
/// files on commit, as long as no later writer for the path took over.
#[derive(Debug)]
struct MapWriter {
    driver: MapDriver,
    path: String,
    /// This writer's id; the store's `owners` says whether it still owns the path's upload.
    id: u64,
    buffer: Vec<u8>,
    state: WriterState,
}

impl MapWriter {
    /// Ok while open; once a later writer took over, the writer is superseded: Err.
    fn check(&mut self, state: &State) -> Result<()> {
        if self.state == WriterState::Open && state.owners.get(&self.path) != Some(&self.id) {
            self.state = WriterState::Superseded;
        }
        self.state.ensure_open(NAME, &self.path)
    }
}

#[async_trait]
impl FileWriter for MapWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let driver = self.driver.clone();
        self.check(&driver.lock())?;
        self.buffer.extend_from_slice(&data);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.buffer.len() as u64
    }

    async fn close(&mut self) -> Result<()> {
        if self.state == WriterState::Superseded {
            return self.state.ensure_open(NAME, &self.path);
        }
        if self.state == WriterState::Open {
            let driver = self.driver.clone();
            let mut state = driver.lock();
            self.check(&state)?;
            self.state = WriterState::Closed;
            state.uploads.insert(self.path.clone(), self.buffer.clone());
            state.owners.remove(&self.path);
        }
        Ok(())
    }

    async fn cancel(&mut self) -> Result<()> {
        let driver = self.driver.clone();
        let mut state = driver.lock();
        self.check(&state)?;
        self.state = WriterState::Cancelled;
        self.buffer.clear();
        state.uploads.remove(&self.path);
        state.owners.remove(&self.path);
        Ok(())
    }

    async fn commit(&mut self) -> Result<()> {
        let driver = self.driver.clone();
        let mut state = driver.lock();
        self.check(&state)?;
        self.state = WriterState::Committed;
        let data = Bytes::copy_from_slice(&self.buffer);
        state
            .files
            .insert(self.path.clone(), (data, SystemTime::now()));
        state.uploads.remove(&self.path);
        state.owners.remove(&self.path);
        Ok(())
    }
}

impl Drop for MapWriter {
    fn drop(&mut self) {
        let driver = self.driver.clone();
        let mut state = driver.lock();
        if self.state == WriterState::Open && state.owners.get(&self.path) == Some(&self.id) {
            let buffer = std::mem::take(&mut self.buffer);
            state.uploads.insert(self.path.clone(), buffer);
            state.owners.remove(&self.path);
        }
    }
}
