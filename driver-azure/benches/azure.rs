//! The Azure driver side by side with `object_store` used directly on the same server and
//! container, and with the driver over IPC (`registry-storage-azure` as a child, started
//! through the factory's fallback), in one run on Azurite: 64 MiB puts and gets, 1 KiB
//! put+get round trips, a listing of 2,000 blobs, and the writer's peak memory while it
//! writes 1 GiB.
//!
//! ```sh
//! scripts/servers.sh start azurite && source target/servers/servers.env
//! cargo bench -p driver-azure --features server --bench azure
//! ```
//!
//! Each section runs every configuration once per round, the order rotated from round to
//! round, and reports the median and the best of the rounds: ten rounds of 64 MiB, fifteen of
//! 1 KiB round trips and of listings (those two after one untimed pass). The 1 GiB write runs
//! once per configuration, for its memory figures only: Azurite writes every blob to disk, at
//! some 55 MB/s on the development VM. `STORAGEDRIVER_BENCH_QUICK=1` is a smoke run (from a
//! base of two rounds, 50 round trips per sample, the memory measured writing 64 MiB);
//! `STORAGEDRIVER_BENCH_ROUNDS=N` sets the base (the 64 MiB rounds are twice as many, the
//! others three times). The shared harness is `testsuites::bench::side_by_side`.
//!
//! Everything is written to the container `storagedriver-bench` (created when missing) below
//! a fresh root prefix and deleted as the run goes and at its end; the container stays. The direct puts write
//! no blob attributes, as the driver does: `object_store`'s Azure client refuses a multipart
//! upload with attributes. Without Azurite's variables the benchmark says so and does nothing
//! (a failure under `STORAGEDRIVER_REQUIRE_SERVERS=1`).

use std::path::Path;
use std::sync::Arc;

use driver_azure::AzureConfig;
use object_store::ObjectStore;
use storagedriver::{Parameters, StorageDriver};
use testsuites::bench::side_by_side::{
    self as harness, Bench, MIB, MemoryTarget, PeakAlloc, Plan, ReportHeader, must,
};

/// Counts the bytes allocated now and at the peak, for the writer's memory figure.
#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// The container the benchmark writes to.
const CONTAINER: &str = "storagedriver-bench";
/// Blobs the listing benchmark lists (one page of Azure's List Blobs). Not more: Azurite
/// deletes batched blobs at about 3 ms each, so setting up and removing a larger listing
/// would take longer than everything else the benchmark does.
const LIST_KEYS: usize = 2_000;

/// Azurite's settings from `target/servers/servers.env`, or why they are missing.
fn server_parameters(root: &str) -> Result<(Parameters, String), String> {
    let var = |field: &str| {
        let key = format!("STORAGEDRIVER_AZURE_AZURITE_{field}");
        std::env::var(&key).map_err(|_| {
            format!("{key} is not set (run scripts/servers.sh start azurite and source target/servers/servers.env)")
        })
    };
    let service_url = var("SERVICE_URL")?;
    let value = serde_json::json!({
        "accountname": var("ACCOUNT")?,
        "accountkey": var("KEY")?,
        "serviceurl": service_url,
        "container": CONTAINER,
        "rootdirectory": root,
    });
    let params = serde_json::from_value(value).map_err(|e| e.to_string())?;
    Ok((params, service_url))
}

fn main() {
    harness::bench_main("/bench-azure", run, |root| async move {
        if let Ok((params, _)) = server_parameters(&root) {
            cleanup(params).await;
        }
    });
}

/// Deletes everything the benchmark wrote below its root ([`harness::cleanup`]).
async fn cleanup(params: Parameters) {
    let Ok(config) = AzureConfig::from_parameters(&params) else {
        return;
    };
    let (Ok(driver), Ok(store)) = (config.build(), config.build_store()) else {
        return;
    };
    harness::cleanup(&driver, &store, &config.root_directory).await;
}

async fn run(root: String) -> Option<String> {
    let plan = Plan::from_env(&[64 * MIB], 1 << 30, LIST_KEYS);
    let (params, service_url) = match server_parameters(&root) {
        Ok(p) => p,
        Err(reason) => return harness::skipped("Azure", &reason),
    };
    let config = must(AzureConfig::from_parameters(&params), "read the parameters");
    // Creates the container when it is missing (and fails at once if Azurite is not there).
    let driver: Arc<dyn StorageDriver> = Arc::new(must(
        config.connect().await,
        "connect the driver (is Azurite running?)",
    ));
    let store: Arc<dyn ObjectStore> =
        Arc::new(must(config.build_store(), "build the object_store client"));
    let exe = Path::new(env!("CARGO_BIN_EXE_registry-storage-azure"));
    let ipc = testsuites::ipc::spawn_driver("azure", exe, &params).await;
    let child = harness::find_child("registry-storage-azure");
    let chunk = config.chunk_size as usize;
    let bench = Bench {
        driver,
        ipc,
        child,
        store,
        root: root.trim_start_matches('/').to_owned(),
        chunk,
        driver_parts: config.writer_concurrency,
        attributes: config.options().attributes,
        // Azurite stores every blob's bytes: nothing to defeat.
        unique: false,
    };
    let banner = format!("azure bench: {service_url}, container {CONTAINER}");
    let outcome = harness::run(&bench, &plan, &banner, &ALLOC).await;

    eprintln!("  cleaning up {root}");
    cleanup(params).await;
    let bound = chunk as u64 * (1 + config.writer_concurrency as u64);
    Some(harness::report(
        &outcome,
        &ReportHeader {
            title: "Azure on Azurite".into(),
            note: None,
            memory_target: MemoryTarget {
                label: "bound chunksize × (1 + writerconcurrency)".into(),
                bytes: bound,
                resident: false,
            },
        },
    ))
}
