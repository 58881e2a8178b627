//! What `stat` and `walk` report about a path.

use std::time::SystemTime;

/// Facts about a file or directory (Go: `FileInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The path as it was asked for.
    pub path: String,
    /// The content's length in bytes; 0 for a directory.
    pub size: u64,
    /// When the content was last written, at the backend's time resolution. For a directory,
    /// whatever the backend records (possibly the time of the newest write below it).
    pub mod_time: SystemTime,
    /// True for a directory: any path that has children.
    pub is_dir: bool,
}

impl FileInfo {
    /// A file of `size` bytes written at `mod_time`.
    pub fn file(path: impl Into<String>, size: u64, mod_time: SystemTime) -> Self {
        FileInfo {
            path: path.into(),
            size,
            mod_time,
            is_dir: false,
        }
    }

    /// A directory, with size 0.
    pub fn dir(path: impl Into<String>, mod_time: SystemTime) -> Self {
        FileInfo {
            path: path.into(),
            size: 0,
            mod_time,
            is_dir: true,
        }
    }
}
