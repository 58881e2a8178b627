//! The suite's test cases: each behaviour of [`crate::behaviors`] adapted to a [`Ctx`], under
//! the name of the test the macros generate for it.

use futures::future::BoxFuture;

use crate::behaviors;
use crate::fixture::{Fixture, MakeFixture};

/// What a case runs with: the test's fixture, and how to make more (for the model test).
pub struct Ctx {
    /// The fresh fixture of this test.
    pub fixture: Fixture,
    /// Makes another fresh fixture.
    pub make: MakeFixture,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("fixture", &self.fixture)
            .finish_non_exhaustive()
    }
}

/// What a case returns: the behaviour, running.
pub type CaseFuture<'a> = BoxFuture<'a, ()>;

/// A case of the suite.
pub type CaseFn = for<'a> fn(&'a Ctx) -> CaseFuture<'a>;

crate::__for_each_case!(__case_adapters!());

/// Runs [`behaviors::append_resume_from_new_instance`] with a second driver instance opened
/// over the fixture's storage.
pub fn append_resume_from_new_instance(ctx: &Ctx) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let other = ctx.fixture.reopen().await;
        behaviors::append_resume_from_new_instance(ctx.fixture.driver(), other.as_ref()).await;
    })
}

/// Runs [`behaviors::model_random_operations`] with the case count from the environment.
pub fn model_random_operations(ctx: &Ctx) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        let cases = crate::Sizes::from_env().model_cases;
        behaviors::model_random_operations(ctx.make.clone(), cases).await;
    })
}
