//! `bench`: the suite's benchmarks and the registry workload through the tool, tiny runs on
//! the in-memory and filesystem drivers, checking the figures are there and nothing is left.

mod common;

use serde_json::Value;

use common::{Store, command, run};

/// A registry workload small enough for a debug build: 4 pushes of 2 layers of 64 KiB in
/// 16 KiB chunks, 8 pulls, 2 at a time.
const TINY: &[&str] = &[
    "bench",
    "--workload",
    "registry",
    "--pushes",
    "4",
    "--pulls",
    "8",
    "--layers",
    "2",
    "--layer-size",
    "64K",
    "--chunk-size",
    "16K",
    "--concurrency",
    "2",
];

#[track_caller]
fn assert_registry_figures(doc: &Value, driver: &str) {
    assert_eq!(doc["driver"], driver, "{doc}");
    assert_eq!(doc["workload"], "registry");
    assert_eq!(doc["concurrency"], 2);
    assert_eq!(doc["layer_size"], 65536);
    assert_eq!(doc["push"]["count"], 4);
    assert_eq!(doc["pull"]["count"], 8);
    // 2 layers of 64 KiB and a config of 1500 bytes per push.
    assert_eq!(doc["push"]["bytes"], 4 * (2 * 65536 + 1500));
    for phase in ["push", "pull"] {
        for field in ["seconds", "per_second", "mb_per_second", "p50_ms", "p99_ms"] {
            assert!(
                doc[phase][field].as_f64().is_some_and(|v| v > 0.0),
                "{phase}.{field} in {doc}"
            );
        }
    }
    // Reads start at an offset: fewer bytes than the pulled images hold, but some.
    let pulled = doc["pull"]["bytes"].as_u64().expect("pull.bytes");
    assert!(pulled > 0 && pulled <= 8 * (2 * 65536 + 1500), "{doc}");
    // Per image: its repository, _layers, _manifests and the blobs: dozens of entries.
    assert!(
        doc["walk"]["entries"].as_u64().is_some_and(|n| n > 4 * 20),
        "{doc}"
    );
    assert!(
        doc["walk"]["entries_per_second"]
            .as_f64()
            .is_some_and(|v| v > 0.0)
    );
}

#[test]
fn registry_workload_on_inmemory() {
    let mut cmd = command();
    cmd.args(["--driver", "inmemory"]).args(TINY).arg("--json");
    let run = run(cmd, b"");
    let doc: Value = serde_json::from_str(&run.ok()).expect("JSON");
    assert_registry_figures(&doc, "inmemory");
    assert_eq!(doc["mode"], "in process");
}

#[test]
fn registry_workload_on_filesystem_leaves_nothing() {
    let store = Store::new();
    store.put("/docker/keep", b"x");
    let doc: Value =
        serde_json::from_str(&store.run(&[TINY, &["--json"]].concat()).ok()).expect("JSON");
    assert_registry_figures(&doc, "filesystem");
    assert_eq!(store.run(&["ls", "/"]).ok(), "/docker\n");
    assert_eq!(store.run(&["ls", "-R", "/docker"]).ok(), "/docker/keep\n");

    let table = store.run(TINY).ok();
    for part in [
        "registry workload, 4 pushes and 8 pulls",
        "pushes/s",
        "pulls/s",
        "entries/s",
    ] {
        assert!(table.contains(part), "{part:?} in {table}");
    }
}

#[test]
fn suite_benchmarks_on_inmemory() {
    let mut cmd = command();
    cmd.args([
        "--driver",
        "inmemory",
        "bench",
        "--seconds",
        "0",
        "--filter",
        "1KB",
        "--json",
    ]);
    let run = run(cmd, b"");
    let doc: Value = serde_json::from_str(&run.ok()).expect("JSON");
    assert_eq!(doc["workload"], "suite");
    let names: Vec<&str> = doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["PutGet1KBFiles", "Stream1KBFiles"]);
    for result in doc["results"].as_array().expect("results") {
        assert!(result["ops_per_second"].as_f64().is_some_and(|v| v > 0.0));
        assert!(result["mb_per_second"].as_f64().is_some_and(|v| v > 0.0));
        assert_eq!(result["iterations"], 3);
    }
}
