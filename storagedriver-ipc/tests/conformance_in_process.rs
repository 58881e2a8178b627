//! The whole conformance suite on the in-memory driver behind the IPC client and server,
//! connected in process over a socket pair.

use std::sync::Arc;

use driver_inmemory::InMemoryDriver;
use storagedriver::StorageDriver;
use storagedriver_ipc::{IpcDriver, serve};
use testsuites::Fixture;

async fn over_ipc(driver: Arc<dyn StorageDriver>) -> Arc<dyn StorageDriver> {
    let (server_side, client_side) = tokio::net::UnixStream::pair().expect("a socket pair");
    tokio::spawn(serve(driver, server_side));
    Arc::new(
        IpcDriver::connect("inmemory", client_side)
            .await
            .expect("the handshake succeeds"),
    )
}

testsuites::register_in_process_suite!(|| async {
    // One store, reachable through several connections: `reopen` gives a new client (and a new
    // server) over the same in-memory store, as a new process would be for a persistent driver.
    let store: Arc<dyn StorageDriver> = Arc::new(InMemoryDriver::new());
    let driver = over_ipc(Arc::clone(&store)).await;
    Fixture::new(driver).with_reopen(move || over_ipc(Arc::clone(&store)))
});
