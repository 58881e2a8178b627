//! Drivers that wrap another driver (middleware, test doubles) and change only some of what it
//! does: [`Forward`] forwards every operation to the wrapped driver unless overridden, and
//! [`forward_storage_driver!`](crate::forward_storage_driver) makes such a wrapper a
//! [`StorageDriver`].
//!
//! A wrapper implements [`Forward`] (its [`Forward::inner`] and the operations it changes),
//! then invokes the macro once. An operation added to [`StorageDriver`] is added here and in
//! the macro, and every wrapper forwards it without a change.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use storagedriver::forward::Forward;
//! use storagedriver::{StorageDriver, forward_storage_driver};
//!
//! /// Counts the `stat` calls of the driver it wraps.
//! #[derive(Debug)]
//! struct CountingStats<D> {
//!     inner: D,
//!     stats: AtomicUsize,
//! }
//!
//! #[async_trait::async_trait]
//! impl<D: StorageDriver> Forward for CountingStats<D> {
//!     fn inner(&self) -> &dyn StorageDriver {
//!         &self.inner
//!     }
//!     async fn stat(&self, path: &str) -> storagedriver::Result<storagedriver::FileInfo> {
//!         self.stats.fetch_add(1, Ordering::Relaxed);
//!         self.inner.stat(path).await
//!     }
//! }
//!
//! forward_storage_driver!(impl<D: StorageDriver> for CountingStats<D>);
//! ```
//!
//! Inside an implementation of [`Forward`], call the wrapped driver through
//! [`Forward::inner`] (or a field): with both traits in scope, `self.name()` is ambiguous.

use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;

use crate::capabilities::Capabilities;
use crate::driver::{ByteStream, StorageDriver};
use crate::error::Result;
use crate::file_info::FileInfo;
use crate::url::UrlOptions;
use crate::walk::{WalkFn, WalkOptions};
use crate::writer::FileWriter;

/// A driver that wraps another: every operation forwards to [`Forward::inner`] unless the
/// wrapper overrides it. [`forward_storage_driver!`](crate::forward_storage_driver) turns a
/// `Forward` into a [`StorageDriver`].
///
/// `walk` forwards too: a wrapper that changes `list` or `stat` and wants a walk that sees the
/// change overrides `walk` with [`crate::walk::walk_fallback`] on itself.
#[async_trait]
pub trait Forward: Send + Sync + Debug {
    /// The wrapped driver.
    fn inner(&self) -> &dyn StorageDriver;

    /// [`StorageDriver::name`].
    fn name(&self) -> &str {
        self.inner().name()
    }

    /// [`StorageDriver::capabilities`].
    fn capabilities(&self) -> Capabilities {
        self.inner().capabilities()
    }

    /// [`StorageDriver::get_content`].
    async fn get_content(&self, path: &str) -> Result<Bytes> {
        self.inner().get_content(path).await
    }

    /// [`StorageDriver::put_content`].
    async fn put_content(&self, path: &str, content: Bytes) -> Result<()> {
        self.inner().put_content(path, content).await
    }

    /// [`StorageDriver::reader`].
    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream> {
        self.inner().reader(path, offset).await
    }

    /// [`StorageDriver::writer`].
    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        self.inner().writer(path, append).await
    }

    /// [`StorageDriver::stat`].
    async fn stat(&self, path: &str) -> Result<FileInfo> {
        self.inner().stat(path).await
    }

    /// [`StorageDriver::list`].
    async fn list(&self, path: &str) -> Result<Vec<String>> {
        self.inner().list(path).await
    }

    /// [`StorageDriver::rename`].
    async fn rename(&self, source: &str, dest: &str) -> Result<()> {
        self.inner().rename(source, dest).await
    }

    /// [`StorageDriver::delete`].
    async fn delete(&self, path: &str) -> Result<()> {
        self.inner().delete(path).await
    }

    /// [`StorageDriver::url_for`].
    async fn url_for(&self, path: &str, options: &UrlOptions) -> Result<String> {
        self.inner().url_for(path, options).await
    }

    /// [`StorageDriver::walk`].
    async fn walk(&self, path: &str, options: &WalkOptions, f: &mut WalkFn<'_>) -> Result<()> {
        self.inner().walk(path, options, f).await
    }
}

/// Implements [`StorageDriver`] for a type that implements [`Forward`]: every operation calls
/// the type's [`Forward`] method of the same name.
///
/// `forward_storage_driver!(MyWrapper)` for a plain type;
/// `forward_storage_driver!(impl<D: StorageDriver> for MyWrapper<D>)` for a generic one.
/// See [`crate::forward`] for an example.
#[macro_export]
macro_rules! forward_storage_driver {
    (impl<$($param:ident $(: $bound:path)?),* $(,)?> for $ty:ty) => {
        $crate::__forward_impl!([$($param $(: $bound)?),*] $ty);
    };
    ($ty:ty) => {
        $crate::__forward_impl!([] $ty);
    };
}

/// The body of [`forward_storage_driver!`]; not public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __forward_impl {
    ([$($generics:tt)*] $ty:ty) => {
        #[$crate::__private::async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<$($generics)*> $crate::StorageDriver for $ty {
            fn name(&self) -> &str {
                $crate::forward::Forward::name(self)
            }
            fn capabilities(&self) -> $crate::Capabilities {
                $crate::forward::Forward::capabilities(self)
            }
            async fn get_content(&self, path: &str) -> $crate::Result<$crate::Bytes> {
                $crate::forward::Forward::get_content(self, path).await
            }
            async fn put_content(&self, path: &str, content: $crate::Bytes) -> $crate::Result<()> {
                $crate::forward::Forward::put_content(self, path, content).await
            }
            async fn reader(&self, path: &str, offset: u64) -> $crate::Result<$crate::ByteStream> {
                $crate::forward::Forward::reader(self, path, offset).await
            }
            async fn writer(
                &self,
                path: &str,
                append: bool,
            ) -> $crate::Result<::std::boxed::Box<dyn $crate::FileWriter>> {
                $crate::forward::Forward::writer(self, path, append).await
            }
            async fn stat(&self, path: &str) -> $crate::Result<$crate::FileInfo> {
                $crate::forward::Forward::stat(self, path).await
            }
            async fn list(&self, path: &str) -> $crate::Result<::std::vec::Vec<::std::string::String>> {
                $crate::forward::Forward::list(self, path).await
            }
            async fn rename(&self, source: &str, dest: &str) -> $crate::Result<()> {
                $crate::forward::Forward::rename(self, source, dest).await
            }
            async fn delete(&self, path: &str) -> $crate::Result<()> {
                $crate::forward::Forward::delete(self, path).await
            }
            async fn url_for(
                &self,
                path: &str,
                options: &$crate::UrlOptions,
            ) -> $crate::Result<::std::string::String> {
                $crate::forward::Forward::url_for(self, path, options).await
            }
            async fn walk(
                &self,
                path: &str,
                options: &$crate::WalkOptions,
                f: &mut $crate::WalkFn<'_>,
            ) -> $crate::Result<()> {
                $crate::forward::Forward::walk(self, path, options, f).await
            }
        }
    };
}
