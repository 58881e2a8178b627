//! What a driver built on the core tunes: part sizes, concurrency, and object attributes.

use object_store::Attributes;

/// The smallest part most S3 servers accept for any part but the last (5 MiB).
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// The largest object one server-side copy may produce on S3 (5 GiB).
pub const MAX_SINGLE_COPY: u64 = 5 << 30;

/// How the core writes and copies.
///
/// ```
/// use storagedriver::objectstore::ObjectStoreOptions;
///
/// let options = ObjectStoreOptions::default().with_chunk_size(16 << 20);
/// assert_eq!(options.chunk_size, 16 << 20);
/// assert_eq!(options.max_concurrent_parts, 2);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ObjectStoreOptions {
    /// The size of every part of a writer's multipart upload but the last (Go: `chunksize`).
    /// Every non-final part has exactly this size, because some servers reject unequal parts.
    /// A writer holds at most `chunk_size × (1 + max_concurrent_parts)` bytes.
    pub chunk_size: u64,
    /// Parts a writer uploads at once.
    pub max_concurrent_parts: usize,
    /// Objects larger than this are renamed by a copy in parts (Go:
    /// `multipartcopythresholdsize`); smaller ones by one server-side copy.
    pub copy_threshold: u64,
    /// The size of each part of a copy in parts (Go: `multipartcopychunksize`).
    pub copy_chunk_size: u64,
    /// Parts of a copy in flight at once (Go: `multipartcopymaxconcurrency`).
    pub copy_concurrency: usize,
    /// Attributes every object is written with (content type, storage class, ...).
    pub attributes: Attributes,
    /// The most keys a recursive `delete` hands the store at once. The store splits them into
    /// its own batches and sends several batches at a time; a slow server answers batches
    /// that wait behind many others only after the client's timeout, so a smaller figure
    /// bounds the batches in flight.
    pub delete_chunk: usize,
}

impl Default for ObjectStoreOptions {
    fn default() -> Self {
        ObjectStoreOptions {
            chunk_size: 10 << 20,
            max_concurrent_parts: 2,
            copy_threshold: MAX_SINGLE_COPY,
            copy_chunk_size: 32 << 20,
            copy_concurrency: 4,
            attributes: Attributes::new(),
            delete_chunk: 20_000,
        }
    }
}

impl ObjectStoreOptions {
    /// Sets [`ObjectStoreOptions::chunk_size`].
    pub fn with_chunk_size(mut self, bytes: u64) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// Sets [`ObjectStoreOptions::max_concurrent_parts`] (at least 1).
    pub fn with_max_concurrent_parts(mut self, parts: usize) -> Self {
        self.max_concurrent_parts = parts.max(1);
        self
    }

    /// Sets [`ObjectStoreOptions::copy_threshold`].
    pub fn with_copy_threshold(mut self, bytes: u64) -> Self {
        self.copy_threshold = bytes;
        self
    }

    /// Sets [`ObjectStoreOptions::copy_chunk_size`].
    pub fn with_copy_chunk_size(mut self, bytes: u64) -> Self {
        self.copy_chunk_size = bytes.max(1);
        self
    }

    /// Sets [`ObjectStoreOptions::copy_concurrency`] (at least 1).
    pub fn with_copy_concurrency(mut self, parts: usize) -> Self {
        self.copy_concurrency = parts.max(1);
        self
    }

    /// Sets [`ObjectStoreOptions::delete_chunk`] (at least 1).
    pub fn with_delete_chunk(mut self, keys: usize) -> Self {
        self.delete_chunk = keys.max(1);
        self
    }

    /// Sets [`ObjectStoreOptions::attributes`].
    pub fn with_attributes(mut self, attributes: Attributes) -> Self {
        self.attributes = attributes;
        self
    }
}
