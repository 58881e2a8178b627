//! `mapdriver`: a small storage driver kept in one sorted map behind one mutex, written to
//! show what a third-party driver needs: validate paths with `storagedriver::path`, return the
//! contract's errors, and run the conformance suite (see `tests/conformance.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use storagedriver::{
    ByteStream, Capabilities, Error, FileInfo, FileWriter, Result, StorageDriver, UrlOptions,
    WriterState, path,
};

const NAME: &str = "mapdriver";

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<String, (Bytes, SystemTime)>,
    uploads: HashMap<String, Vec<u8>>,
}

impl State {
    /// Committed paths strictly below `dir`.
    fn below<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.files.keys().filter(move |k| path::is_within(dir, k) && k.as_str() != dir)
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
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
        state.files.get(p).map(|(data, _)| data.clone()).ok_or_else(|| Error::path_not_found(NAME, p))
    }

    async fn put_content(&self, p: &str, content: Bytes) -> Result<()> {
        path::check(NAME, p)?;
        self.lock().files.insert(p.to_owned(), (content, SystemTime::now()));
        Ok(())
    }

    async fn reader(&self, p: &str, offset: u64) -> Result<ByteStream> {
        let data = self.get_content(p).await?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        let rest = data.slice(start..);
        let chunks = if rest.is_empty() { Vec::new() } else { vec![Ok(rest)] };
        Ok(Box::pin(futures::stream::iter(chunks)))
    }

    async fn writer(&self, p: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        path::check(NAME, p)?;
        let mut state = self.lock();
        let buffer = if !append {
            state.uploads.remove(p);
            Vec::new()
        } else if let Some(resumed) = state.uploads.remove(p) {
            resumed
        } else {
            match state.files.get(p) {
                Some((data, _)) if data.is_empty() => Vec::new(),
                Some(_) => return Err(Error::unsupported(NAME, "append to committed content")),
                None => return Err(Error::path_not_found(NAME, p)),
            }
        };
        Ok(Box::new(MapWriter { driver: self.clone(), path: p.to_owned(), buffer, state: WriterState::Open }))
    }

    async fn stat(&self, p: &str) -> Result<FileInfo> {
        path::check_dir(NAME, p)?;
        let state = self.lock();
        if let Some((data, modified)) = state.files.get(p) {
            return Ok(FileInfo::file(p, data.len() as u64, *modified));
        }
        match state.below(p).filter_map(|k| state.files.get(k)).map(|(_, m)| *m).max() {
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
        let (data, _) = state.files.remove(source).ok_or_else(|| Error::path_not_found(NAME, source))?;
        state.files.insert(dest.to_owned(), (data, SystemTime::now()));
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

    async fn url_for(&self, p: &str, _options: &UrlOptions) -> Result<String> {
        path::check(NAME, p)?;
        Err(Error::unsupported(NAME, "url_for"))
    }
}

/// The writer: a buffer that goes into the store's uploads on close (or drop) and into its
/// files on commit.
#[derive(Debug)]
struct MapWriter {
    driver: MapDriver,
    path: String,
    buffer: Vec<u8>,
    state: WriterState,
}

#[async_trait]
impl FileWriter for MapWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.state.ensure_open(NAME, &self.path)?;
        self.buffer.extend_from_slice(&data);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.buffer.len() as u64
    }

    async fn close(&mut self) -> Result<()> {
        if self.state == WriterState::Open {
            self.state = WriterState::Closed;
            self.driver.lock().uploads.insert(self.path.clone(), self.buffer.clone());
        }
        Ok(())
    }

    async fn cancel(&mut self) -> Result<()> {
        self.state.ensure_open(NAME, &self.path)?;
        self.state = WriterState::Cancelled;
        self.buffer.clear();
        Ok(())
    }

    async fn commit(&mut self) -> Result<()> {
        self.state.ensure_open(NAME, &self.path)?;
        self.state = WriterState::Committed;
        let data = Bytes::copy_from_slice(&self.buffer);
        self.driver.lock().files.insert(self.path.clone(), (data, SystemTime::now()));
        Ok(())
    }
}

impl Drop for MapWriter {
    fn drop(&mut self) {
        if self.state == WriterState::Open {
            let buffer = std::mem::take(&mut self.buffer);
            self.driver.lock().uploads.insert(self.path.clone(), buffer);
        }
    }
}
