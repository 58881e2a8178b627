//! What a suite test runs against: a fresh driver, and how to make it.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use storagedriver::StorageDriver;

/// Opens a new driver instance over the same storage as the fixture's driver.
pub type Reopen = Arc<dyn Fn() -> BoxFuture<'static, Arc<dyn StorageDriver>> + Send + Sync>;

/// Makes a fresh [`Fixture`]; every suite test calls it once (the model test once per case).
pub type MakeFixture = Arc<dyn Fn() -> BoxFuture<'static, Fixture> + Send + Sync>;

/// A fresh driver for one test, with what keeps its storage alive.
///
/// ```
/// use std::sync::Arc;
/// use testsuites::Fixture;
/// # #[derive(Debug)] struct MyDriver;
/// # fn driver() -> Arc<dyn testsuites::storagedriver::StorageDriver> { unimplemented!() }
///
/// // A driver that needs a server declares a skip when the server is not there; with
/// // STORAGEDRIVER_REQUIRE_SERVERS=1 (CI) the skip is a failure instead.
/// let fixture = Fixture::skipped("no server listening on 127.0.0.1:3900");
/// assert!(fixture.skip_reason().is_some());
/// ```
pub struct Fixture {
    driver: Option<Arc<dyn StorageDriver>>,
    reopen: Option<Reopen>,
    skip: Option<String>,
    /// The skip is the run's choice (an opt-in suite), not a missing server.
    chosen: bool,
    guard: Option<Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("driver", &self.driver)
            .field("reopen", &self.reopen.is_some())
            .field("skip", &self.skip)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// A fixture around a fresh driver.
    pub fn new(driver: Arc<dyn StorageDriver>) -> Self {
        Fixture {
            driver: Some(driver),
            reopen: None,
            skip: None,
            chosen: false,
            guard: None,
        }
    }

    /// A fixture whose tests are skipped, for `reason` (for example: the server the driver
    /// needs is not running). When the environment variable `STORAGEDRIVER_REQUIRE_SERVERS` is
    /// `1`, a skipped test fails instead.
    pub fn skipped(reason: impl Into<String>) -> Self {
        Fixture {
            driver: None,
            reopen: None,
            skip: Some(reason.into()),
            chosen: false,
            guard: None,
        }
    }

    /// A fixture whose tests are skipped because the run did not ask for them (an opt-in
    /// suite, for `reason`). Unlike [`Fixture::skipped`], this is never a failure, also under
    /// `STORAGEDRIVER_REQUIRE_SERVERS=1`.
    pub fn not_requested(reason: impl Into<String>) -> Self {
        Fixture {
            chosen: true,
            ..Fixture::skipped(reason)
        }
    }

    /// True for a fixture from [`Fixture::not_requested`].
    pub fn is_not_requested(&self) -> bool {
        self.chosen
    }

    /// Tells the suite how to open a new driver instance over the same storage; the tests that
    /// resume a writer from a new instance use it. Persistent drivers should give one.
    pub fn with_reopen<F, Fut>(mut self, reopen: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Arc<dyn StorageDriver>> + Send + 'static,
    {
        self.reopen = Some(Arc::new(move || Box::pin(reopen())));
        self
    }

    /// Keeps `guard` (a temporary directory, a server handle) alive as long as the fixture.
    pub fn with_guard(mut self, guard: impl Any + Send + Sync) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// The driver under test.
    ///
    /// # Panics
    ///
    /// On a skipped fixture; the runner never calls a behaviour with one.
    pub fn driver(&self) -> &dyn StorageDriver {
        match &self.driver {
            Some(d) => d.as_ref(),
            None => panic!("the fixture was skipped: {:?}", self.skip),
        }
    }

    /// The driver under test, shared.
    ///
    /// # Panics
    ///
    /// On a skipped fixture.
    pub fn driver_arc(&self) -> Arc<dyn StorageDriver> {
        match &self.driver {
            Some(d) => d.clone(),
            None => panic!("the fixture was skipped: {:?}", self.skip),
        }
    }

    /// A new driver over the same storage, or the same driver when none was given.
    pub async fn reopen(&self) -> Arc<dyn StorageDriver> {
        match &self.reopen {
            Some(reopen) => reopen().await,
            None => self.driver_arc(),
        }
    }

    /// Why the fixture's tests are skipped, if they are.
    pub fn skip_reason(&self) -> Option<&str> {
        self.skip.as_deref()
    }
}

/// Turns a closure returning a future of a [`Fixture`] into a [`MakeFixture`].
pub fn make_fixture<F, Fut>(make: F) -> MakeFixture
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Fixture> + Send + 'static,
{
    Arc::new(move || Box::pin(make()))
}
