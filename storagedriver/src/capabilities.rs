//! What a driver can do beyond the core contract.

/// The optional parts of the contract a driver offers, so that callers and the conformance
/// suite ask instead of guessing.
///
/// ```
/// use storagedriver::Capabilities;
///
/// let caps = Capabilities::new().with_url_for(true);
/// assert!(caps.url_for);
/// assert!(!caps.append_to_committed);
/// ```
///
/// With the `serde` feature it is `Serialize` and `Deserialize`, as a JSON object of its
/// fields in which a missing field is false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
#[non_exhaustive]
pub struct Capabilities {
    /// `url_for` returns URLs a plain HTTP client can fetch; without it `url_for` is
    /// [`crate::Error::Unsupported`].
    pub url_for: bool,
    /// `writer(path, true)` appends to committed content that is not empty; without it such a
    /// call is [`crate::Error::Unsupported`] (appending to empty committed content always works).
    pub append_to_committed: bool,
    /// Data outlives the driver value: a new driver over the same storage sees committed
    /// content and resumes closed writers.
    pub persistent: bool,
    /// `put_content`, `writer` and `rename` detect a file written where a directory is (or
    /// below a file) and fail with [`crate::Error::Conflict`]. Object stores without real
    /// directories do not pay a listing per write to find out.
    pub detects_file_dir_conflicts: bool,
}

impl Capabilities {
    /// Builds capabilities field by field (the struct is `#[non_exhaustive]`, so other crates
    /// start from this and set what they offer).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`Capabilities::url_for`].
    pub fn with_url_for(mut self, yes: bool) -> Self {
        self.url_for = yes;
        self
    }

    /// Sets [`Capabilities::append_to_committed`].
    pub fn with_append_to_committed(mut self, yes: bool) -> Self {
        self.append_to_committed = yes;
        self
    }

    /// Sets [`Capabilities::persistent`].
    pub fn with_persistent(mut self, yes: bool) -> Self {
        self.persistent = yes;
        self
    }

    /// Sets [`Capabilities::detects_file_dir_conflicts`].
    pub fn with_file_dir_conflicts(mut self, yes: bool) -> Self {
        self.detects_file_dir_conflicts = yes;
        self
    }
}
