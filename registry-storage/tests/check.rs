//! `check`: the conformance suite through the tool, on the built-in drivers (every case
//! passes), on a deliberately broken external driver (`tests/fixtures/registry-storage-broken`:
//! it fails with the reasons of its bugs) and on the S3 and Azure test servers when they are
//! configured (`source target/servers/servers.env`; a missing server is a skip, or a failure
//! under `STORAGEDRIVER_REQUIRE_SERVERS=1`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use testsuites::servers::{or_skip, unique_name};

use common::{Run, Store, command, run};

/// The cases that check a capability the drivers below lack; they pass as `skipped`.
const CAPABILITY_CASES: &[&str] = &["url_for_get_and_head", "append_to_committed"];

/// Smaller large cases than the suite's default (a 16 MiB stream, 32 model sequences), so a
/// whole check of a driver takes seconds in a debug build.
fn quick(command: &mut Command) -> &mut Command {
    command
        .env("STORAGEDRIVER_LARGE_STREAM_MIB", "16")
        .env("STORAGEDRIVER_MODEL_CASES", "32")
        .env_remove("STORAGEDRIVER_SUITE")
}

/// The JSON document of a `check --json` run.
fn report(run: &Run) -> Value {
    serde_json::from_slice(&run.stdout).expect("check --json prints JSON")
}

/// The case rows of a report: (case, status, reason).
fn rows(report: &Value) -> Vec<(String, String, String)> {
    report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            (
                case["case"].as_str().expect("case").to_owned(),
                case["status"].as_str().expect("status").to_owned(),
                case["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Asserts every case of the suite ran and passed, but the capability cases of a driver without
/// them (`skipped`, saying why).
#[track_caller]
fn assert_all_pass(run: &Run, url_for: bool) {
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let report = report(run);
    let rows = rows(&report);
    let names: Vec<&str> = rows.iter().map(|(case, _, _)| case.as_str()).collect();
    let expected: Vec<&str> = testsuites::CASES.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, expected, "every case of the suite, in order");
    for (case, status, reason) in &rows {
        let capability = CAPABILITY_CASES.contains(&case.as_str())
            && !(url_for && case == "url_for_get_and_head");
        if capability {
            assert_eq!(status, "skipped", "{case}: {reason}");
            assert!(reason.contains("capability"), "{case}: {reason}");
        } else {
            assert_eq!(status, "pass", "{case}: {reason}");
        }
    }
    assert_eq!(report["summary"]["failed"], 0);
    assert_eq!(report["summary"]["total"], expected.len());
}

#[test]
fn inmemory_passes_every_case() {
    let mut cmd = command();
    quick(&mut cmd).args(["--driver", "inmemory", "check", "--json"]);
    let run = run(cmd, b"");
    assert_all_pass(&run, false);
    assert!(
        report(&run)["scratch"]
            .as_str()
            .is_some_and(|s| s.contains("new instance")),
        "{}",
        report(&run)
    );
}

#[test]
fn filesystem_passes_every_case_as_a_table_and_leaves_nothing() {
    let store = Store::new();
    store.put("/docker/keep", b"data of the registry");
    let mut cmd = store.command(&["check"]);
    quick(&mut cmd);
    let run = run(cmd, b"");
    let out = run.ok();
    let mut lines = out.lines();
    let intro = lines.next().expect("the intro line");
    assert!(
        intro.starts_with("filesystem, in process: 72 cases, each case with rootdirectory "),
        "{intro}"
    );
    assert!(lines.next().is_some_and(|h| h.starts_with("RESULT")));
    let table: Vec<&str> = lines.collect();
    let (summary, table) = table.split_last().expect("a summary");
    assert_eq!(table.len(), testsuites::CASES.len(), "{out}");
    for (row, (name, _)) in table.iter().zip(testsuites::CASES) {
        let mut fields = row.split_whitespace();
        let result = fields.next().expect("a result");
        assert_eq!(fields.next(), Some(*name), "{row}");
        let expected = if CAPABILITY_CASES.contains(name) {
            "skipped"
        } else {
            "pass"
        };
        assert_eq!(result, expected, "{row}");
    }
    assert!(
        summary.starts_with("filesystem: 72 cases: 70 passed, 0 failed, 2 skipped in "),
        "{summary}"
    );
    // Only what was there before: the scratch roots are gone.
    let left: Vec<_> = std::fs::read_dir(store.root())
        .expect("the root")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert_eq!(left, ["docker"]);
    assert_eq!(
        store.run(&["cat", "/docker/keep"]).stdout,
        b"data of the registry"
    );
}

/// `PATH` with the fixtures directory first.
fn path_with_fixtures() -> String {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<PathBuf> = vec![fixtures];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs)
        .expect("a PATH")
        .into_string()
        .expect("UTF-8")
}

/// `registry-storage --driver broken` (the fixture, on `PATH`) at suite sizes, rooted in `dir`.
fn broken_driver(dir: &Path) -> Command {
    let mut cmd = command();
    quick(&mut cmd).env("PATH", path_with_fixtures()).args([
        "--driver",
        "broken",
        "-p",
        &format!("rootdirectory={}", dir.join("root").display()),
    ]);
    cmd
}

#[test]
fn the_broken_driver_fails_with_the_reasons_of_its_bugs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = broken_driver(dir.path());
    // A seed whose mixed operations list a directory of two files (reversed by the bug).
    cmd.env("STORAGEDRIVER_MIXED_SEED", "1796016346699652550")
        .args(["check", "--json"]);
    let run = run(cmd, b"");
    assert_eq!(run.code, 8, "exit code of a failed check; {}", run.stderr);
    let stderr: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("registry-storage: "))
        .collect();
    assert_eq!(stderr, ["registry-storage: broken: 14 of 72 cases failed"]);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    let report = report(&run);
    assert_eq!(report["driver"], "broken");
    assert_eq!(report["summary"]["failed"], 14);
    let rows = rows(&report);
    let reason = |case: &str| {
        let (_, status, reason) = rows
            .iter()
            .find(|(name, _, _)| name == case)
            .expect("the case ran");
        assert_eq!(status, "fail", "{case}");
        reason.clone()
    };
    // `list` in reverse order.
    assert!(
        reason("list_root").contains(
            "list(/) (left: [\"/root-b\", \"/root-a\"], right: [\"/root-a\", \"/root-b\"])"
        ),
        "{}",
        reason("list_root")
    );
    assert!(reason("list_sorted").contains("list must be sorted"));
    assert!(reason("walk_order").contains("walk order"));
    // `stat` one byte too large.
    assert!(
        reason("stat_file").contains("stat size (left: 322, right: 321)"),
        "{}",
        reason("stat_file")
    );
    assert!(
        reason("model_random_operations").starts_with("model test failed: step "),
        "{}",
        reason("model_random_operations")
    );
    // The rest of the driver is pydir's, which keeps the contract.
    for (case, status, reason) in &rows {
        if status == "pass" || status == "fail" {
            continue;
        }
        assert!(
            CAPABILITY_CASES.contains(&case.as_str()) || case == "valid_paths",
            "{case} {status}: {reason}"
        );
    }
    let skipped = rows.iter().find(|(case, _, _)| case == "valid_paths");
    assert!(
        skipped.is_some_and(
            |(_, status, reason)| status == "skipped" && reason.contains("scratch prefix")
        ),
        "{skipped:?}"
    );
}

/// A driver that stops answering fails the case after `--case-timeout`, and the check goes
/// on to the next case instead of hanging.
#[test]
fn a_case_the_driver_never_answers_fails_after_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = broken_driver(dir.path());
    cmd.env("BROKEN_STALL_STAT", "1").args([
        "check",
        "--filter",
        "stat_",
        "--case-timeout",
        "2s",
        "--json",
    ]);
    let started = std::time::Instant::now();
    let run = run(cmd, b"");
    assert_eq!(run.code, 8, "exit code of a failed check; {}", run.stderr);
    let rows = rows(&report(&run));
    assert!(rows.len() > 1, "{rows:?}");
    for (case, status, reason) in &rows {
        assert_eq!(status, "fail", "{case}: {reason}");
        assert!(
            reason.starts_with("no result after 2s (the driver stopped answering"),
            "{case}: {reason}"
        );
    }
    let bound = std::time::Duration::from_secs(8 * rows.len() as u64 + 30);
    assert!(
        started.elapsed() < bound,
        "{:?} for {} cases",
        started.elapsed(),
        rows.len()
    );
}

#[test]
fn a_filter_runs_some_cases_and_one_matching_none_is_invalid_input() {
    let mut cmd = command();
    cmd.args([
        "--driver", "inmemory", "check", "--filter", "walk_", "--json",
    ]);
    let filtered = run(cmd, b"");
    assert_eq!(filtered.code, 0, "{}", filtered.stderr);
    let rows = rows(&report(&filtered));
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(
        rows.iter()
            .all(|(case, status, _)| case.starts_with("walk_") && status == "pass")
    );

    let mut cmd = command();
    cmd.args(["--driver", "inmemory", "check", "--filter", "nosuchcase"]);
    run(cmd, b"").fails(2, &["no case of the suite matches --filter \"nosuchcase\""]);
}

/// The S3 driver's parameters for server `name` (`GARAGE`) of `target/servers/servers.env`,
/// or why there are none.
fn s3_params(name: &str) -> Result<Vec<String>, String> {
    let var = |field: &str| {
        let key = format!("STORAGEDRIVER_S3_{name}_{field}");
        std::env::var(&key).map_err(|_| format!("{key} is not set"))
    };
    Ok(vec![
        format!("bucket={}", var("BUCKET")?),
        format!("region={}", var("REGION")?),
        format!("regionendpoint={}", var("ENDPOINT")?),
        "forcepathstyle=true".to_owned(),
        format!("accesskey={}", var("ACCESS_KEY")?),
        format!("secretkey={}", var("SECRET_KEY")?),
        format!(
            "rootdirectory=/tests/{}",
            unique_name("registry-storage-check")
        ),
    ])
}

/// The Azure driver's parameters for Azurite, or why there are none.
fn azure_params() -> Result<Vec<String>, String> {
    let var = |field: &str| {
        let key = format!("STORAGEDRIVER_AZURE_AZURITE_{field}");
        std::env::var(&key).map_err(|_| format!("{key} is not set"))
    };
    Ok(vec![
        format!("accountname={}", var("ACCOUNT")?),
        format!("accountkey={}", var("KEY")?),
        format!("serviceurl={}", var("SERVICE_URL")?),
        "container=storagedriver-test".to_owned(),
        format!(
            "rootdirectory=/tests/{}",
            unique_name("registry-storage-check")
        ),
    ])
}

/// `check` on a server-backed driver: the cases whose name contains `filter` (the whole suite
/// takes minutes on a server; run it by hand), every one passing.
fn check_on_server(driver: &str, params: Vec<String>, filter: &str) {
    let mut cmd = command();
    quick(&mut cmd).args(["--driver", driver]);
    for param in params {
        cmd.args(["-p", &param]);
    }
    cmd.args(["check", "--filter", filter, "--json"]);
    let run = run(cmd, b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows = rows(&report(&run));
    assert!(!rows.is_empty());
    for (case, status, reason) in rows {
        assert_eq!(status, "pass", "{driver} {case}: {reason}");
    }
}

#[test]
fn s3_on_garage() {
    let Some(params) = or_skip(s3_params("GARAGE")) else {
        return;
    };
    check_on_server("s3", params, "writer_");
}

#[test]
fn azure_on_azurite() {
    let Some(params) = or_skip(azure_params()) else {
        return;
    };
    check_on_server("azure", params, "writer_");
}
