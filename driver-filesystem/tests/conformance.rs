//! The conformance suite on the filesystem driver: one test per behaviour of the contract, each
//! under a fresh temporary root. The resume tests reopen a second driver over the same root.

use std::sync::Arc;

use driver_filesystem::{FilesystemConfig, FilesystemDriver};
use testsuites::Fixture;
use testsuites::storagedriver::StorageDriver;

fn open(root: &std::path::Path, fsync: bool) -> Arc<dyn StorageDriver> {
    match FilesystemDriver::new(FilesystemConfig::new(root).with_fsync(fsync)) {
        Ok(driver) => Arc::new(driver),
        Err(e) => panic!(
            "cannot open the filesystem driver at {}: {e}",
            root.display()
        ),
    }
}

/// The suite with fsync off: the same code paths but the syncs, and fast.
mod fsync_off {
    use super::*;

    testsuites::register_in_process_suite!(|| async {
        let dir = match testsuites::tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        let root = dir.path().to_owned();
        Fixture::new(open(&root, false))
            .with_reopen(move || {
                let root = root.clone();
                async move { open(&root, false) }
            })
            .with_guard(dir)
    });
}

/// The suite with fsync on, the default.
mod fsync_on {
    use super::*;

    testsuites::register_in_process_suite!(|| async {
        let dir = match testsuites::tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        let root = dir.path().to_owned();
        Fixture::new(open(&root, true))
            .with_reopen(move || {
                let root = root.clone();
                async move { open(&root, true) }
            })
            .with_guard(dir)
    });
}
