//! Failures as a user meets them: one line on stderr naming the driver, the path or the key,
//! and the exit code of its class (see `registry-storage --help`).

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Store, command, run};

#[test]
fn not_found_is_3() {
    let store = Store::new();
    store.put("/present", b"x");
    for args in [
        &["stat", "/docker/nope"][..],
        &["cat", "/docker/nope"],
        &["ls", "/docker/nope"],
        &["ls", "-R", "/docker/nope"],
        &["rm", "/docker/nope"],
        &["du", "/docker/nope"],
        &["mv", "/docker/nope", "/docker/other"],
    ] {
        store
            .run(args)
            .fails(3, &["filesystem: path not found: /docker/nope"]);
    }
}

#[test]
fn invalid_path_is_2() {
    let store = Store::new();
    store.put("/present", b"x");
    for (args, path) in [
        (&["stat", "/a/../b"][..], "\"/a/../b\""),
        (&["cat", "relative/path"], "\"relative/path\""),
        (&["put", "/a b"], "\"/a b\""),
        (&["ls", "/a#upload"], "\"/a#upload\""),
        (&["rm", "-r", "/"], "\"/\""),
    ] {
        store
            .run(args)
            .fails(2, &["filesystem: invalid path ", path]);
    }
}

#[test]
fn unknown_and_invalid_parameters_are_2_naming_the_key() {
    let store = Store::new();
    store
        .run(&["-p", "rootdir=/x", "ls"])
        .fails(2, &["filesystem: parameter \"rootdir\": unknown parameter"]);
    store
        .run(&["-p", "maxthreads=many", "ls"])
        .fails(2, &["filesystem: parameter \"maxthreads\"", "many"]);
    let mut bad = command();
    bad.args([
        "--driver",
        "filesystem",
        "-p",
        "rootdirectory=relative",
        "ls",
    ]);
    run(bad, b"").fails(2, &["parameter \"rootdirectory\"", "absolute"]);
}

#[test]
fn unknown_driver_is_2_naming_the_executable_looked_for() {
    let empty = tempfile::tempdir().expect("tempdir");
    let mut cmd = command();
    cmd.env("PATH", empty.path())
        .args(["--driver", "nosuch", "ls"]);
    run(cmd, b"").fails(
        2,
        &[
            "no storage driver named \"nosuch\"",
            "registry-storage-nosuch",
            "filesystem",
        ],
    );
}

#[test]
fn a_failing_driver_executable_is_4_on_one_line() {
    let bin = tempfile::tempdir().expect("tempdir");
    let exe = bin.path().join("registry-storage-broken");
    std::fs::write(
        &exe,
        "#!/bin/sh\necho 'cannot reach the backend' >&2\nexit 1\n",
    )
    .expect("write");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut cmd = command();
    cmd.env("PATH", bin.path())
        .args(["--driver", "broken", "ls"]);
    let result = run(cmd, b"");
    // The driver's own stderr is passed through, prefixed; the error is the last line.
    assert_eq!(result.code, 4, "{}", result.stderr);
    let last = result.stderr.lines().last().expect("a line");
    assert!(
        last.starts_with("registry-storage: broken: "),
        "{}",
        result.stderr
    );
    assert!(
        last.contains("cannot reach the backend"),
        "{}",
        result.stderr
    );
}

#[test]
fn unsupported_is_5() {
    let store = Store::new();
    store.put("/blob", b"x");
    store
        .run(&["url", "/blob"])
        .fails(5, &["filesystem: unsupported operation: url_for"]);
}

#[test]
fn conflict_is_6() {
    let store = Store::new();
    store.put("/dir/file", b"x");
    store
        .run_with(&["put", "/dir"], b"y")
        .fails(6, &["filesystem: conflict at /dir"]);
    store
        .run_with(&["put", "/dir/file/below"], b"y")
        .fails(6, &["filesystem: conflict at /dir/file/below"]);
    assert_eq!(store.run(&["cat", "/dir/file"]).ok(), "x", "left as it was");
}

#[test]
fn a_directory_where_a_file_is_expected_is_2() {
    let store = Store::new();
    store.put("/dir/file", b"x");
    store
        .run(&["cat", "/dir"])
        .fails(2, &["filesystem: /dir is a directory"]);
    store
        .run(&["rm", "/dir"])
        .fails(2, &["/dir is a directory", "rm -r"]);
}

#[test]
fn local_files_are_1_or_2() {
    let store = Store::new();
    let missing = store.scratch().join("missing.tar");
    store
        .run(&["put", "/x", missing.to_str().expect("utf-8")])
        .fails(1, &["opening ", "missing.tar", "No such file"]);
    store
        .run(&["put", "/x", store.scratch().to_str().expect("utf-8")])
        .fails(2, &["is a directory"]);
    store.run(&["stat", "/x"]).fails(3, &["/x"]);
}

#[test]
fn usage_errors_are_2() {
    let store = Store::new();
    for args in [
        &["stat"][..],
        &["ls", "--bogus"],
        &["url", "--expires", "5days", "/x"],
        &["url", "--method", "post", "/x"],
        &["cat", "--offset", "-1", "/x"],
        &["-p", "novalue", "ls"],
        &["frobnicate"],
    ] {
        let result = store.run(args);
        assert_eq!(result.code, 2, "{args:?}: {}", result.stderr);
        assert!(
            result.stderr.starts_with("error: "),
            "{args:?}: {}",
            result.stderr
        );
        assert!(!result.stderr.contains("panicked"), "{}", result.stderr);
    }
    let mut both = command();
    both.args(["--driver", "inmemory", "--config", "c.yml", "ls"]);
    assert_eq!(run(both, b"").code, 2);
}

#[test]
fn every_command_has_help_with_an_example() {
    let top = run(
        {
            let mut c = command();
            c.arg("--help");
            c
        },
        b"",
    )
    .ok();
    for part in [
        "Exit codes:",
        "130  interrupted",
        "./registry-data",
        "REGISTRY_STORAGE_<DRIVER>_<KEY>",
        "Examples:",
    ] {
        assert!(top.contains(part), "{part:?} missing from --help");
    }
    for name in [
        "ls", "stat", "cat", "put", "rm", "mv", "url", "du", "driver",
    ] {
        let mut c = command();
        c.args([name, "--help"]);
        let help = run(c, b"").ok();
        let examples = help
            .split_once("Example")
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("{name} --help has no example: {help}"));
        let line = examples
            .lines()
            .find(|l| l.contains("registry-storage "))
            .unwrap_or_else(|| panic!("{name}: no example command line: {help}"));
        let continued = examples
            .lines()
            .skip_while(|l| *l != line)
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            continued.split_whitespace().any(|word| word == name),
            "{name}: the example does not run {name}: {continued}"
        );
        assert!(
            help.contains("--driver <NAME>"),
            "{name} --help shows the selection options"
        );
    }
}
