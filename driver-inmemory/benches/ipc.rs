//! The inmemory driver in process and over IPC (`registry-storage-inmemory` as a child), side by
//! side with this machine's raw socket figures from the same run. Run with
//! `cargo bench -p driver-inmemory --features server --bench ipc`.

use std::path::Path;
use std::sync::Arc;

use testsuites::bench::BenchConfig;
use testsuites::bench::ipc::compare_report;
use testsuites::bench::raw::serve_raw_peer_if_asked;
use testsuites::storagedriver::{Parameters, StorageDriver};

const EXE: &str = env!("CARGO_BIN_EXE_registry-storage-inmemory");

fn main() {
    serve_raw_peer_if_asked();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("cannot start a tokio runtime: {e}"),
    };
    let config = BenchConfig::from_env();
    // The work runs in a spawned task, on the runtime's workers, as a server's request
    // handlers would; `block_on`'s own thread is not a worker and adds a wake-up per call.
    let work =
        runtime.spawn(async move {
            let dirs = (
                testsuites::tempfile::tempdir(),
                testsuites::tempfile::tempdir(),
            );
            let (Ok(local_dir), Ok(remote_dir)) = dirs else {
                panic!("no temporary directories")
            };
            let (in_process, parameters) = setup(local_dir.path(), remote_dir.path());
            let over_ipc =
                match storagedriver_ipc::IpcDriver::spawn("inmemory", Path::new(EXE), &parameters)
                    .await
                {
                    Ok(driver) => driver,
                    Err(e) => panic!("cannot start {EXE}: {e}"),
                };
            let pid = over_ipc.child_pid();
            compare_report(
                "inmemory",
                in_process,
                Arc::new(over_ipc),
                pid,
                &config,
                1 << 30,
            )
            .await
        });
    match runtime.block_on(work) {
        Ok(report) => println!("{report}"),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The in-process driver and the child's parameters.
fn setup(_local: &Path, _remote: &Path) -> (Arc<dyn StorageDriver>, Parameters) {
    (
        Arc::new(driver_inmemory::InMemoryDriver::new()),
        Parameters::new(),
    )
}
