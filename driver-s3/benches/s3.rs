//! The S3 driver side by side with `object_store` used directly on the same server and bucket,
//! and with the driver over IPC (`registry-storage-s3` as a child, started through the
//! factory's fallback), in one run on single-node Garage: 64 MiB and 1 GiB puts and gets,
//! 1 KiB put+get round trips, a listing of 10,000 keys, and the writer's peak memory while it
//! writes 1 GiB.
//!
//! ```sh
//! scripts/servers.sh start garage && source target/servers/servers.env
//! cargo bench -p driver-s3 --features server --bench s3
//! ```
//!
//! Each section runs every configuration once per round, the order rotated from round to
//! round, and reports the median and the best of the rounds: five rounds of 1 GiB, ten of
//! 64 MiB, fifteen of 1 KiB round trips and of listings (those two after one untimed pass).
//! `STORAGEDRIVER_BENCH_QUICK=1` runs 64 MiB only, from a base of two rounds (a smoke run);
//! `STORAGEDRIVER_BENCH_ROUNDS=N` sets the base (the 1 GiB rounds). Everything is written
//! below a fresh prefix of `STORAGEDRIVER_S3_GARAGE_BENCH_BUCKET` and deleted at the end.
//! Without the server's variables the benchmark says so and does nothing (a failure under
//! `STORAGEDRIVER_REQUIRE_SERVERS=1`). The harness, shared with the Azure benchmark, is
//! `testsuites::bench::side_by_side`.
//!
//! Every large put writes the same random content, which Garage already holds from an untimed
//! first put (the objects the gets read): Garage deduplicates blocks by hash, so the timed puts
//! cost the client, HTTP and Garage's hashing and metadata, not this machine's disk, and the
//! run never holds more than about 1 GiB of blocks (Garage frees deleted blocks only minutes
//! later). `STORAGEDRIVER_BENCH_S3_UNIQUE=1` stamps every put's content anew instead, so each
//! put writes its blocks to the disk (and the run needs room for some 25 GiB).

use std::path::Path;
use std::sync::Arc;

use driver_s3::S3Config;
use object_store::ObjectStore;
use storagedriver::{Parameters, StorageDriver};
use testsuites::bench::side_by_side::{
    self as harness, Bench, MIB, MemoryTarget, PeakAlloc, Plan, ReportHeader, must,
};

/// Counts the bytes allocated now and at the peak, for the writer's memory figure.
#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Objects the listing benchmark lists.
const LIST_KEYS: usize = 10_000;

/// The server's settings from `target/servers/servers.env`, or why they are missing.
fn server_parameters(root: &str) -> Result<(Parameters, String), String> {
    let var = |field: &str| {
        let key = format!("STORAGEDRIVER_S3_GARAGE_{field}");
        std::env::var(&key).map_err(|_| {
            format!("{key} is not set (run scripts/servers.sh start garage and source target/servers/servers.env)")
        })
    };
    let endpoint = var("ENDPOINT")?;
    let value = serde_json::json!({
        "bucket": var("BENCH_BUCKET")?,
        "region": var("REGION")?,
        "regionendpoint": endpoint,
        "forcepathstyle": true,
        "accesskey": var("ACCESS_KEY")?,
        "secretkey": var("SECRET_KEY")?,
        "rootdirectory": root,
    });
    let params = serde_json::from_value(value).map_err(|e| e.to_string())?;
    Ok((params, endpoint))
}

fn main() {
    harness::bench_main("/bench-s3", run, |root| async move {
        if let Ok((params, _)) = server_parameters(&root) {
            cleanup(params).await;
        }
    });
}

/// Deletes everything the benchmark wrote below its root ([`harness::cleanup`]).
async fn cleanup(params: Parameters) {
    let Ok(config) = S3Config::from_parameters(&params) else {
        return;
    };
    let (Ok(driver), Ok(store)) = (config.build(), config.build_store()) else {
        return;
    };
    harness::cleanup(&driver, &store, &config.root_directory).await;
}

async fn run(root: String) -> Option<String> {
    let plan = Plan::from_env(&[64 * MIB, 1 << 30], 1 << 30, LIST_KEYS);
    let (params, endpoint) = match server_parameters(&root) {
        Ok(p) => p,
        Err(reason) => return harness::skipped("S3", &reason),
    };
    let config = must(S3Config::from_parameters(&params), "read the parameters");
    let store: Arc<dyn ObjectStore> =
        Arc::new(must(config.build_store(), "build the object_store client"));
    let driver: Arc<dyn StorageDriver> = Arc::new(must(config.build(), "build the driver"));
    let exe = Path::new(env!("CARGO_BIN_EXE_registry-storage-s3"));
    let ipc = testsuites::ipc::spawn_driver("s3", exe, &params).await;
    let child = harness::find_child("registry-storage-s3");
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
        unique: std::env::var("STORAGEDRIVER_BENCH_S3_UNIQUE").is_ok_and(|v| v == "1"),
    };
    // Reachable, and the bucket exists.
    must(
        bench.store.list_with_delimiter(Some(&bench.key("/"))).await,
        "list the bench bucket (is Garage running?)",
    );
    let banner = format!("s3 bench: {endpoint}, bucket {}", config.bucket);
    let outcome = harness::run(&bench, &plan, &banner, &ALLOC).await;

    eprintln!("  cleaning up {root}");
    cleanup(params).await;
    Some(harness::report(
        &outcome,
        &ReportHeader {
            title: "S3 on single-node Garage".into(),
            note: Some(
                if bench.unique {
                    "every put's content new to Garage"
                } else {
                    "large puts repeat content Garage holds (deduplicated blocks, no block writes)"
                }
                .into(),
            ),
            memory_target: MemoryTarget {
                label: "target 4 × chunksize + 32 MiB".into(),
                bytes: 4 * chunk as u64 + 32 * MIB as u64,
                resident: true,
            },
        },
    ))
}
