//! The storage driver conformance suite: every rule of the contract as a test, for any driver,
//! and the suite's benchmarks.
//!
//! - [`register_in_process_suite!`] generates one test per behaviour in a driver crate's test
//!   target; [`register_ipc_suite!`] does the same against a driver executable over IPC, and
//!   adds the [`protocol`] kit's cases, which speak frames to the executable directly.
//! - [`behaviors`] holds the behaviours as plain public async functions taking the driver, to
//!   run by hand.
//! - [`bench`](mod@bench) runs the suite's benchmarks (put/get, writer/reader, list, delete) on any driver,
//!   and a registry's workload ([`bench::registry`]: pushes, pulls, a garbage collector's walk).
//! - [`scoped`] holds [`scoped::ScopedDriver`]: a driver below a prefix of another, to run the
//!   suite on scratch space of a store in use (`registry-storage check` does).
//! - [`regressions`] and [`processes`] hold what the object-store drivers' own tests check
//!   against their servers beyond the suite (the Go drivers' regressions, signed URLs, writers
//!   resumed across processes), as public async functions taking what differs between
//!   services; [`servers`] has the helpers of tests against servers (skipping, unique names).
//! - [`Sizes`] says how big the large cases are: short by default, the Go sizes with
//!   `STORAGEDRIVER_SUITE=full`.
//!
//! A driver crate adds `testsuites` as its only extra dev-dependency and writes:
//!
//! ```ignore
//! // tests/conformance.rs
//! use std::sync::Arc;
//! use testsuites::Fixture;
//!
//! testsuites::register_in_process_suite!(|| async {
//!     let dir = testsuites::tempfile::tempdir().expect("a temporary directory");
//!     let driver = my_driver::MyDriver::open(dir.path()).expect("the driver");
//!     Fixture::new(Arc::new(driver)).with_guard(dir)
//! });
//! ```
//!
//! A behaviour can also run by hand, inside a multi-threaded runtime:
//!
//! ```
//! # #[derive(Debug)] struct Nothing;
//! async fn check(driver: &dyn testsuites::storagedriver::StorageDriver) {
//!     testsuites::behaviors::delete_only_subpaths(driver).await;
//! }
//! ```

pub mod behaviors;
pub mod bench;
pub mod cases;
pub mod data;
pub mod fixture;
pub mod http;
pub mod ipc;
pub mod logs;
mod macros;
pub mod processes;
pub mod protocol;
pub mod regressions;
mod runner;
pub mod scoped;
pub mod servers;
pub mod sizes;

pub use fixture::{Fixture, MakeFixture, Reopen, make_fixture};
pub use runner::run_case;
pub use sizes::Sizes;

pub use serde_json;
pub use storagedriver;
pub use tempfile;

/// Every case of the suite, by test name, in the order the macros generate them.
pub const CASES: &[(&str, cases::CaseFn)] = __for_each_case!(__case_table!());
