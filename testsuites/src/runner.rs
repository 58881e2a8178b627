//! Runs one case the way a generated test does.

use crate::cases::{CaseFn, Ctx};
use crate::fixture::MakeFixture;
use crate::sizes::servers_required;

/// Runs `case` on a fresh fixture from `make`, on a multi-threaded runtime of its own.
///
/// A skipped fixture ends the test successfully with a note on stderr, unless
/// `STORAGEDRIVER_REQUIRE_SERVERS=1`, where it fails (but for one the run did not ask for,
/// [`crate::Fixture::not_requested`]).
///
/// # Panics
///
/// When the case fails (that is how a test fails), or when the runtime cannot start.
pub fn run_case(name: &str, case: CaseFn, make: MakeFixture) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("{name}: cannot start a tokio runtime: {e}"),
    };
    runtime.block_on(async {
        let fixture = make().await;
        if let Some(reason) = fixture.skip_reason() {
            assert!(
                fixture.is_not_requested() || !servers_required(),
                "{name}: the fixture was skipped ({reason}), but STORAGEDRIVER_REQUIRE_SERVERS=1 requires it"
            );
            eprintln!("{name}: skipped: {reason}");
            return;
        }
        let ctx = Ctx { fixture, make };
        case(&ctx).await;
    });
}
