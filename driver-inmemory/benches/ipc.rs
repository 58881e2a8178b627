//! The inmemory driver in process and over IPC (`registry-storage-inmemory` as a child), side by
//! side with this machine's raw socket figures from the same run. Run with
//! `cargo bench -p driver-inmemory --features server --bench ipc`.

use std::path::Path;
use std::sync::Arc;

use testsuites::storagedriver::{Parameters, StorageDriver};

fn main() {
    testsuites::bench::ipc::bench_main(
        "inmemory",
        env!("CARGO_BIN_EXE_registry-storage-inmemory"),
        setup,
    );
}

/// The in-process driver and the child's parameters.
fn setup(_local: &Path, _remote: &Path) -> (Arc<dyn StorageDriver>, Parameters) {
    (
        Arc::new(driver_inmemory::InMemoryDriver::new()),
        Parameters::new(),
    )
}
