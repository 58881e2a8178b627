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

/// A case of the suite.
pub type CaseFn = for<'a> fn(&'a Ctx) -> BoxFuture<'a, ()>;

macro_rules! driver_cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("Runs [`behaviors::", stringify!($name), "`] on the fixture's driver.")]
            pub fn $name(ctx: &Ctx) -> BoxFuture<'_, ()> {
                Box::pin(behaviors::$name(ctx.fixture.driver()))
            }
        )*
    };
}

macro_rules! shared_driver_cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("Runs [`behaviors::", stringify!($name), "`] on the fixture's driver.")]
            pub fn $name(ctx: &Ctx) -> BoxFuture<'_, ()> {
                Box::pin(behaviors::$name(ctx.fixture.driver_arc()))
            }
        )*
    };
}

driver_cases!(
    valid_paths,
    invalid_paths,
    invalid_paths_every_operation,
    put_get_one_byte,
    put_get_utf8,
    put_get_random_32,
    put_get_1mib,
    put_get_non_utf8,
    put_get_empty,
    truncate,
    put_twice,
    get_missing,
    get_directory,
    put_file_dir_conflict,
    writer_round_trip_one_byte,
    writer_round_trip_utf8,
    writer_round_trip_random_32,
    writer_round_trip_1mib,
    writer_round_trip_non_utf8,
    large_stream_sha256,
    reader_offsets,
    reader_missing_path,
    append_resume_small_chunks,
    append_resume_large_chunks,
    zero_byte_writer_then_append,
    zero_byte_put_then_append,
    append_missing_path,
    append_to_committed,
    writer_cancel,
    writer_commit_visibility,
    writer_use_after_finish,
    writer_dropped,
    list_sorted,
    list_root,
    list_empty_root,
    list_missing_directory,
    list_file,
    list_nested,
    rename_file,
    rename_overwrite,
    rename_missing_source,
    rename_under_file,
    delete_file,
    delete_missing,
    delete_directory,
    delete_only_subpaths,
    delete_root,
    stat_file,
    stat_directory,
    stat_missing,
    stat_root,
    stat_mod_time_after_rewrite,
    url_for_get_and_head,
    walk_order,
    walk_skip_dir,
    walk_stop,
    walk_start_after,
    walk_missing,
    walk_concurrent_delete,
);

shared_driver_cases!(
    concurrent_readers,
    concurrent_writers,
    concurrent_put_same_path
);

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
