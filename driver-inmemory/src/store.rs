//! The data structure behind [`crate::InMemoryDriver`]: committed files in a sorted map,
//! closed-but-uncommitted writer content beside them.
//!
//! Directories are implicit: a path is a directory when some key lies strictly below it. The
//! keys below `/a/b` are exactly the keys in `["/a/b/", "/a/b0")`, because `0` is the byte
//! right after `/`; a range scan over that interval never meets `/a/b-c` or `/a/b.txt`
//! (`-` and `.` sort before `/`) nor `/a/bc` (which sorts after `0`).
//!
//! Everything here is synchronous. The store's methods run under the driver's lock and never
//! copy file content; the one copy, [`Data::into_bytes`] of a multi-chunk file, is made by the
//! caller after the lock is released.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::mem;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use storagedriver::{Error, FileInfo, Result, path};

use crate::NAME;

/// A committed file.
pub(crate) struct FileEntry {
    /// The whole content; handed out by reference count, never copied.
    pub(crate) data: Data,
    /// When the content was last written.
    pub(crate) mod_time: SystemTime,
}

/// The size of the chunks a reader yields: slices of the stored content, never copies.
pub(crate) const READ_CHUNK_SIZE: usize = 1024 * 1024;

/// The content of a committed file.
///
/// `put_content` stores the buffer it is given ([`Data::Whole`]); a writer's content is
/// published as the chunks it was written in ([`Data::Chunked`]), so that committing a
/// 5 GiB upload neither copies it nor needs 10 GiB at its peak. Cloning is a reference-count
/// increment either way.
#[derive(Clone)]
pub(crate) enum Data {
    /// One buffer.
    Whole(Bytes),
    /// Two or more non-empty chunks, in order.
    Chunked(Arc<Chunks>),
}

/// The chunks of a [`Data::Chunked`], with their end offsets for seeking.
pub(crate) struct Chunks {
    chunks: Vec<Bytes>,
    /// `ends[i]` is the offset just past `chunks[i]`; the last one is the length.
    ends: Vec<u64>,
}

impl Data {
    /// Data made of `chunks`, in order (empty ones are allowed and skipped).
    pub(crate) fn from_chunks(chunks: Vec<Bytes>) -> Self {
        let mut chunks: Vec<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        match chunks.len() {
            0 => Data::Whole(Bytes::new()),
            1 => Data::Whole(chunks.pop().unwrap_or_default()),
            _ => {
                let ends = chunks
                    .iter()
                    .scan(0u64, |end, chunk| {
                        *end += chunk.len() as u64;
                        Some(*end)
                    })
                    .collect();
                Data::Chunked(Arc::new(Chunks { chunks, ends }))
            }
        }
    }

    /// The length in bytes.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Data::Whole(bytes) => bytes.len() as u64,
            Data::Chunked(chunks) => chunks.ends.last().copied().unwrap_or(0),
        }
    }

    /// The content as one buffer: free for [`Data::Whole`], one copy for
    /// [`Data::Chunked`]. Call it outside the lock.
    pub(crate) fn into_bytes(self) -> Bytes {
        match self {
            Data::Whole(bytes) => bytes,
            Data::Chunked(chunks) => {
                let capacity =
                    usize::try_from(chunks.ends.last().copied().unwrap_or(0)).unwrap_or(usize::MAX);
                let mut whole = Vec::with_capacity(capacity);
                for chunk in &chunks.chunks {
                    whole.extend_from_slice(chunk);
                }
                Bytes::from(whole)
            }
        }
    }

    /// The content's chunks, shared, not copied.
    fn into_chunks(self) -> Vec<Bytes> {
        match self {
            Data::Whole(bytes) => vec![bytes],
            Data::Chunked(chunks) => match Arc::try_unwrap(chunks) {
                Ok(owned) => owned.chunks,
                Err(shared) => shared.chunks.clone(),
            },
        }
    }

    /// The content from `offset` to the end, as slices of at most [`READ_CHUNK_SIZE`] bytes
    /// of the stored buffers.
    pub(crate) fn slices_from(self, offset: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
        // The chunks from the one holding `offset` on, and where `offset` lies in the first.
        let (chunks, skip) = match self {
            Data::Whole(bytes) => (vec![bytes], offset),
            Data::Chunked(chunks) => {
                let first = chunks.ends.partition_point(|&end| end <= offset);
                let first_start = first
                    .checked_sub(1)
                    .and_then(|before| chunks.ends.get(before).copied())
                    .unwrap_or(0);
                let rest = chunks.chunks.get(first..).unwrap_or_default().to_vec();
                (rest, offset.saturating_sub(first_start))
            }
        };
        chunks.into_iter().enumerate().flat_map(move |(i, chunk)| {
            let len = chunk.len();
            let from = if i == 0 {
                usize::try_from(skip).unwrap_or(usize::MAX).min(len)
            } else {
                0
            };
            (from..len)
                .step_by(READ_CHUNK_SIZE)
                .map(move |at| chunk.slice(at..at.saturating_add(READ_CHUNK_SIZE).min(len)))
        })
    }
}

/// Writes at most this long are coalesced into a writer's tail buffer; longer ones are kept
/// as they came, without a copy.
const SMALL_WRITE: usize = 64 * 1024;
/// The tail buffer is sealed into a chunk when it reaches this size.
const TAIL_LIMIT: usize = 1024 * 1024;
/// The first allocation of a tail buffer.
const TAIL_MIN: usize = 4 * 1024;

/// Content a writer is building: the bytes of a pending upload.
///
/// Large writes are kept as the [`Bytes`] they came in (zero-copy); small ones are coalesced
/// into a tail buffer of at most [`TAIL_LIMIT`] bytes, so that a million 32-byte writes do not
/// become a million chunks.
#[derive(Default)]
pub(crate) struct Content {
    chunks: Vec<Bytes>,
    tail: Vec<u8>,
    len: u64,
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sizes only: content may be large, and is nobody's business in a log.
        f.debug_struct("Content")
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .field("tail", &self.tail.len())
            .finish()
    }
}

impl Content {
    /// Content that holds `data`, as it is (its chunks are shared, not copied).
    pub(crate) fn from_data(data: Data) -> Self {
        let len = data.len();
        let chunks = data
            .into_chunks()
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect();
        Content {
            chunks,
            tail: Vec::new(),
            len,
        }
    }

    /// Bytes held so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The same content, sharing the sealed chunks (reference counts, no copy) and copying
    /// only the unsealed tail (empty in stored uploads, which are sealed).
    pub(crate) fn share(&self) -> Content {
        Content {
            chunks: self.chunks.clone(),
            tail: self.tail.clone(),
            len: self.len,
        }
    }

    /// Appends `data`.
    pub(crate) fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.len += data.len() as u64;
        if data.len() <= SMALL_WRITE {
            self.push_small(&data);
        } else {
            self.seal_tail();
            self.chunks.push(data);
        }
    }

    fn push_small(&mut self, data: &[u8]) {
        if self.tail.len() + data.len() > TAIL_LIMIT {
            self.seal_tail();
        }
        let needed = self.tail.len() + data.len();
        if needed > self.tail.capacity() {
            // Grow by doubling, but never past the limit: the sealed chunk keeps its
            // allocation, so spare capacity would be memory held for nothing.
            // `needed <= TAIL_LIMIT` (checked above) and `TAIL_MIN < TAIL_LIMIT`, so the
            // bounds are ordered.
            let target = (self.tail.capacity() * 2).clamp(needed.max(TAIL_MIN), TAIL_LIMIT);
            self.tail.reserve_exact(target - self.tail.len());
        }
        self.tail.extend_from_slice(data);
    }

    /// Turns the tail buffer into a chunk of its own.
    pub(crate) fn seal_tail(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        let mut tail = mem::take(&mut self.tail);
        // A sealed chunk keeps its allocation: give back much spare capacity (a tail sealed
        // early, by a large write or the end of the content), but do not pay a reallocation
        // for a little.
        if tail.capacity() - tail.len() > tail.len() / 8 {
            tail.shrink_to_fit();
        }
        self.chunks.push(Bytes::from(tail));
    }

    /// The content as committed [`Data`], without copying.
    pub(crate) fn into_data(mut self) -> Data {
        self.seal_tail();
        Data::from_chunks(self.chunks)
    }
}

/// Committed files and pending uploads.
#[derive(Default)]
pub(crate) struct Store {
    /// Committed files, by path.
    files: BTreeMap<String, FileEntry>,
    /// The upload of each path: the content of writers that were closed (or dropped) without
    /// committing, or, while a writer is open, what that writer started from. Invisible to
    /// every read operation.
    uploads: HashMap<String, Content>,
    /// The open writer that owns each path's upload (the latest one opened), by its
    /// `superseded` flag: opening another writer for the path sets the flag of the one here.
    owners: HashMap<String, Arc<AtomicBool>>,
}

/// The store shared by every clone of a driver and by its writers.
pub(crate) type Shared = Arc<RwLock<Store>>;

/// Takes the read lock. A poisoned lock is recovered: every mutation below leaves the maps
/// consistent at each step, so a panic elsewhere cannot have left them half-changed.
pub(crate) fn read(shared: &Shared) -> RwLockReadGuard<'_, Store> {
    shared.read().unwrap_or_else(PoisonError::into_inner)
}

/// Takes the write lock, recovering a poisoned one (see [`read`]).
pub(crate) fn write(shared: &Shared) -> RwLockWriteGuard<'_, Store> {
    shared.write().unwrap_or_else(PoisonError::into_inner)
}

/// `(start, end)` of the keys strictly below `dir` (the root included).
fn below_bounds(dir: &str) -> (String, String) {
    if dir == path::ROOT {
        ("/".to_owned(), "0".to_owned())
    } else {
        (format!("{dir}/"), format!("{dir}0"))
    }
}

/// A modification time for new content at a path last written at `previous`: now, but
/// strictly later than `previous` when the clock has not moved (or went back).
fn next_mod_time(previous: Option<SystemTime>) -> SystemTime {
    let now = SystemTime::now();
    match previous {
        Some(prev) if now <= prev => prev.checked_add(Duration::from_nanos(1)).unwrap_or(prev),
        _ => now,
    }
}

impl Store {
    /// Committed files.
    pub(crate) fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Pending uploads.
    pub(crate) fn upload_count(&self) -> usize {
        self.uploads.len()
    }

    /// The committed files strictly below `dir`, in key order.
    fn below<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a String, &'a FileEntry)> + 'a {
        let (start, end) = below_bounds(dir);
        self.files.range::<str, _>((
            Bound::Included(start.as_str()),
            Bound::Excluded(end.as_str()),
        ))
    }

    /// True when some committed file lies strictly below `dir`.
    fn is_dir(&self, dir: &str) -> bool {
        self.below(dir).next().is_some()
    }

    /// The nearest proper ancestor of `path` that is a committed file.
    fn ancestor_file<'a>(&self, path: &'a str) -> Option<&'a str> {
        let mut current = path::parent(path)?;
        while current != path::ROOT {
            if self.files.contains_key(current) {
                return Some(current);
            }
            current = path::parent(current)?;
        }
        None
    }

    /// Fails with [`Error::Conflict`] when a file at `path` would clash with what is stored:
    /// `path` is a directory, or one of its ancestors is a file.
    fn check_file_slot(&self, path: &str) -> Result<()> {
        if self.is_dir(path) {
            return Err(Error::conflict(NAME, path, "a directory is at this path"));
        }
        self.check_no_ancestor_file(path)
    }

    /// Fails with [`Error::Conflict`] when an ancestor of `path` is a file.
    pub(crate) fn check_no_ancestor_file(&self, path: &str) -> Result<()> {
        match self.ancestor_file(path) {
            Some(file) => Err(Error::conflict(
                NAME,
                path,
                format!("{file} is a file, not a directory"),
            )),
            None => Ok(()),
        }
    }

    /// The committed content at `path`.
    pub(crate) fn get(&self, path: &str) -> Result<Data> {
        self.files
            .get(path)
            .map(|entry| entry.data.clone())
            .ok_or_else(|| Error::path_not_found(NAME, path))
    }

    /// Replaces the content at `path`, or fails with [`Error::Conflict`] changing nothing.
    /// Returns the replaced content, for the caller to drop outside the lock.
    pub(crate) fn put(&mut self, path: &str, data: Data) -> Result<Option<Data>> {
        if let Some(entry) = self.files.get_mut(path) {
            // A file already at `path` proves there is no clash: stored files never clash.
            entry.mod_time = next_mod_time(Some(entry.mod_time));
            return Ok(Some(mem::replace(&mut entry.data, data)));
        }
        self.check_file_slot(path)?;
        let entry = FileEntry {
            data,
            mod_time: next_mod_time(None),
        };
        self.files.insert(path.to_owned(), entry);
        Ok(None)
    }

    /// Size of the committed file at `path`, if there is one.
    pub(crate) fn file_len(&self, path: &str) -> Option<u64> {
        self.files.get(path).map(|entry| entry.data.len())
    }

    /// Removes and returns the pending upload at `path`.
    pub(crate) fn take_upload(&mut self, path: &str) -> Option<Content> {
        self.uploads.remove(path)
    }

    /// Keeps `content` as the pending upload at `path`, replacing any other. Returns the
    /// replaced one, for the caller to drop outside the lock.
    pub(crate) fn put_upload(&mut self, path: &str, content: Content) -> Option<Content> {
        self.uploads.insert(path.to_owned(), content)
    }

    /// The pending upload at `path`, shared (its chunks are reference counted, not copied).
    pub(crate) fn share_upload(&self, path: &str) -> Option<Content> {
        self.uploads.get(path).map(Content::share)
    }

    /// Makes a new writer the owner of `path`'s upload, marking any open one superseded;
    /// returns the new writer's flag, set once a later writer supersedes it.
    pub(crate) fn take_ownership(&mut self, path: &str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        if let Some(previous) = self.owners.insert(path.to_owned(), Arc::clone(&flag)) {
            previous.store(true, Ordering::Release);
        }
        flag
    }

    /// The writer whose flag is `flag` is done with `path`: it no longer owns the upload.
    /// (A superseded writer owns nothing, so this changes nothing for it.)
    pub(crate) fn release(&mut self, path: &str, flag: &Arc<AtomicBool>) {
        if self.owners.get(path).is_some_and(|f| Arc::ptr_eq(f, flag)) {
            self.owners.remove(path);
        }
    }

    /// Facts about the file or directory at `path` (the root included).
    pub(crate) fn stat(&self, path: &str) -> Result<FileInfo> {
        if let Some(entry) = self.files.get(path) {
            return Ok(FileInfo::file(path, entry.data.len(), entry.mod_time));
        }
        self.below(path)
            .map(|(_, entry)| entry.mod_time)
            .max()
            .map(|newest| FileInfo::dir(path, newest))
            .ok_or_else(|| Error::path_not_found(NAME, path))
    }

    /// The direct children of `dir`, sorted.
    ///
    /// Seeks past each child directory's subtree instead of scanning it, so the cost is one
    /// map lookup per child, however deep the tree below.
    pub(crate) fn list(&self, dir: &str) -> Result<Vec<String>> {
        let (prefix, end) = below_bounds(dir);
        let mut children = Vec::new();
        let mut start = Bound::Included(prefix.clone());
        loop {
            let range = (
                start.as_ref().map(String::as_str),
                Bound::Excluded(end.as_str()),
            );
            let Some((key, _)) = self.files.range::<str, _>(range).next() else {
                break;
            };
            let rest = &key[prefix.len()..];
            match rest.find('/') {
                Some(slash) => {
                    let child = &key[..prefix.len() + slash];
                    children.push(child.to_owned());
                    // Everything below `child` lies in [child + "/", child + "0").
                    start = Bound::Included(format!("{child}0"));
                }
                None => {
                    children.push(key.clone());
                    start = Bound::Excluded(key.clone());
                }
            }
        }
        if children.is_empty() && dir != path::ROOT {
            return Err(Error::path_not_found(NAME, dir));
        }
        // Key order is not path order (`/a/b-c` < `/a/b.txt` < `/a/b/x`), and a directory
        // can appear beside a file of a longer name: sort the names themselves.
        children.sort_unstable();
        children.dedup();
        Ok(children)
    }

    /// Moves the committed file at `source` to `dest`. Returns the overwritten content, for
    /// the caller to drop outside the lock.
    pub(crate) fn rename(&mut self, source: &str, dest: &str) -> Result<Option<Data>> {
        if !self.files.contains_key(source) {
            return Err(Error::path_not_found(NAME, source));
        }
        if source == dest {
            return Ok(None);
        }
        if !self.files.contains_key(dest) {
            self.check_file_slot(dest)?;
        }
        let Some(entry) = self.files.remove(source) else {
            return Err(Error::path_not_found(NAME, source));
        };
        Ok(self
            .files
            .insert(dest.to_owned(), entry)
            .map(|old| old.data))
    }

    /// Removes the file at `path`, or every file below the directory `path`, and the pending
    /// uploads at or below it. Returns what was removed, for the caller to drop outside the
    /// lock.
    pub(crate) fn delete(&mut self, path: &str) -> Result<Removed> {
        let mut removed = Removed::default();
        if let Some(entry) = self.files.remove(path) {
            removed.files.push(entry.data);
        } else {
            let keys: Vec<String> = self.below(path).map(|(key, _)| key.clone()).collect();
            if keys.is_empty() {
                return Err(Error::path_not_found(NAME, path));
            }
            for key in keys {
                if let Some(entry) = self.files.remove(&key) {
                    removed.files.push(entry.data);
                }
            }
        }
        let uploads: Vec<String> = self
            .uploads
            .keys()
            .filter(|key| path::is_within(path, key))
            .cloned()
            .collect();
        for key in uploads {
            if let Some(content) = self.uploads.remove(&key) {
                removed.uploads.push(content);
            }
        }
        Ok(removed)
    }
}

/// What a delete took out of the store, dropped by the caller once the lock is released so
/// that freeing large buffers never holds up other operations.
#[derive(Default)]
pub(crate) struct Removed {
    files: Vec<Data>,
    uploads: Vec<Content>,
}

impl Removed {
    /// Number of committed files removed.
    pub(crate) fn file_count(&self) -> usize {
        self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(paths: &[&str]) -> Store {
        let mut store = Store::default();
        for p in paths {
            store
                .put(p, Data::Whole(Bytes::from_static(b"x")))
                .expect("test paths do not clash");
        }
        store
    }

    #[test]
    fn list_skips_subtrees_and_sorts() {
        let store = store_with(&["/a/b-c", "/a/b.txt", "/a/b/x", "/a/b/y/z", "/a/bc", "/b"]);
        assert_eq!(
            store.list("/a").expect("dir"),
            ["/a/b", "/a/b-c", "/a/b.txt", "/a/bc"]
        );
        assert_eq!(store.list("/").expect("root"), ["/a", "/b"]);
        assert_eq!(store.list("/a/b").expect("dir"), ["/a/b/x", "/a/b/y"]);
        assert!(store.list("/a/b-c").expect_err("file").is_not_found());
        assert!(store.list("/zz").expect_err("missing").is_not_found());
    }

    #[test]
    fn put_detects_clashes() {
        let mut store = store_with(&["/a/b"]);
        assert!(matches!(
            store.put("/a", Data::Whole(Bytes::new())),
            Err(Error::Conflict { .. })
        ));
        assert!(matches!(
            store.put("/a/b/c", Data::Whole(Bytes::new())),
            Err(Error::Conflict { .. })
        ));
        assert!(store.put("/a/b0", Data::Whole(Bytes::new())).is_ok());
        assert!(store.put("/a/b-c/d", Data::Whole(Bytes::new())).is_ok());
    }

    #[test]
    fn mod_time_strictly_increases() {
        let mut store = Store::default();
        let mut last = None;
        for _ in 0..100 {
            store.put("/f", Data::Whole(Bytes::new())).expect("put");
            let now = store.stat("/f").expect("stat").mod_time;
            if let Some(prev) = last {
                assert!(now > prev);
            }
            last = Some(now);
        }
    }

    #[test]
    fn content_coalesces_small_writes() {
        let mut content = Content::default();
        for _ in 0..100_000 {
            content.push(Bytes::from_static(&[7; 32]));
        }
        content.seal_tail();
        assert_eq!(content.len(), 3_200_000);
        assert!(content.chunks.len() <= 4, "{} chunks", content.chunks.len());
        let big = Bytes::from(vec![1; SMALL_WRITE + 1]);
        let mut content = Content::from_data(Data::Whole(big.clone()));
        content.push(Bytes::from_static(b"end"));
        let whole = content.into_data().into_bytes();
        assert_eq!(whole.len(), big.len() + 3);
        assert_eq!(&whole[big.len()..], b"end");
    }

    #[test]
    fn chunked_data_slices_from_any_offset() {
        let parts: Vec<Bytes> = [3usize, 0, READ_CHUNK_SIZE + 5, 1, 7]
            .iter()
            .enumerate()
            .map(|(i, &n)| Bytes::from(vec![i as u8; n]))
            .collect();
        let whole: Vec<u8> = parts.concat();
        let data = Data::from_chunks(parts);
        assert!(matches!(data, Data::Chunked(_)));
        assert_eq!(data.len(), whole.len() as u64);
        assert_eq!(data.clone().into_bytes(), whole);
        let len = whole.len();
        for offset in [
            0,
            1,
            2,
            3,
            4,
            READ_CHUNK_SIZE,
            len - 9,
            len - 8,
            len - 7,
            len - 1,
            len,
            len + 1,
        ] {
            let slices: Vec<Bytes> = data.clone().slices_from(offset as u64).collect();
            assert!(
                slices
                    .iter()
                    .all(|s| !s.is_empty() && s.len() <= READ_CHUNK_SIZE)
            );
            assert_eq!(slices.concat(), whole[offset.min(len)..], "offset {offset}");
        }
        let content = Content::from_data(data);
        assert_eq!(content.len(), len as u64);
        assert_eq!(content.chunks.len(), 4);
    }
}
