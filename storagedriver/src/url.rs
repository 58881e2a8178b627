//! Options of `url_for`.

use std::time::Duration;

/// The HTTP method a URL from `url_for` is signed for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Method {
    /// Fetch the content.
    #[default]
    Get,
    /// Fetch only the headers (the size).
    Head,
}

impl Method {
    /// `GET` or `HEAD`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }
}

/// What a URL from `url_for` allows (Go: the `method` and `expiry` options).
///
/// ```
/// use std::time::Duration;
/// use storagedriver::{Method, UrlOptions};
///
/// let opts = UrlOptions::default();
/// assert_eq!(opts.method, Method::Get);
/// assert_eq!(opts.expires_in, Duration::from_secs(20 * 60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlOptions {
    /// The method the URL is good for.
    pub method: Method,
    /// How long the URL stays valid.
    pub expires_in: Duration,
}

impl Default for UrlOptions {
    fn default() -> Self {
        UrlOptions {
            method: Method::Get,
            expires_in: Duration::from_secs(20 * 60),
        }
    }
}
