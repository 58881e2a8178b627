//! The filesystem driver in process and over IPC (`registry-storage-filesystem` as a child), side by
//! side with this machine's raw socket figures from the same run. Run with
//! `cargo bench -p driver-filesystem --features server --bench ipc`.

use std::path::Path;
use std::sync::Arc;

use testsuites::storagedriver::{Parameters, StorageDriver};

fn main() {
    testsuites::bench::ipc::bench_main(
        "filesystem",
        env!("CARGO_BIN_EXE_registry-storage-filesystem"),
        setup,
    );
}

/// The in-process driver and the child's parameters: the same configuration (fsync off), each
/// on its own root.
fn setup(local: &Path, remote: &Path) -> (Arc<dyn StorageDriver>, Parameters) {
    let config = driver_filesystem::FilesystemConfig::new(local).with_fsync(false);
    let driver = match driver_filesystem::FilesystemDriver::new(config) {
        Ok(driver) => driver,
        Err(e) => panic!("cannot open the filesystem driver: {e}"),
    };
    let mut parameters = Parameters::new();
    parameters.insert("rootdirectory".into(), remote.display().to_string().into());
    parameters.insert("fsync".into(), false.into());
    (Arc::new(driver), parameters)
}
