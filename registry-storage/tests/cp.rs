//! `cp` on the filesystem driver, run as a user runs it: trees and single files between two
//! roots and within one, skipping complete files, resuming a partial destination, rewriting
//! one that holds other content, `--verify` catching a corrupted copy, and the errors.

mod common;

use std::path::Path;

use common::{Store, content};
use serde_json::Value;

/// A tree of files of several sizes below `/tree`: (path below the tree, content).
fn tree() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", Vec::new()),
        ("one", content(1, 1)),
        ("a/small", content(5_000, 2)),
        ("a/b/c/deep", content(70_000, 3)),
        // More than the filesystem reader's and writer's chunks, and not a multiple of them.
        ("big/data", content(9 * 1024 * 1024 + 123, 4)),
        ("a-b/x", content(10, 5)),
    ]
}

/// Writes `files` below `dir` (a driver path) straight into the store's root, as the
/// filesystem driver keeps them.
fn write_tree(store: &Store, dir: &str, files: &[(&str, Vec<u8>)]) {
    for (path, bytes) in files {
        let file = on_disk(store, &format!("{dir}/{path}"));
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
        std::fs::write(&file, bytes).expect("write");
    }
}

/// The file behind driver path `path`.
fn on_disk(store: &Store, path: &str) -> std::path::PathBuf {
    store.root().join(path.trim_start_matches('/'))
}

/// Asserts that every file of `files` is below `dir` in `store`, with its content.
#[track_caller]
fn assert_tree(store: &Store, dir: &str, files: &[(&str, Vec<u8>)]) {
    for (path, bytes) in files {
        let file = on_disk(store, &format!("{dir}/{path}"));
        let copy = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(copy == *bytes, "{} differs", file.display());
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `cp --json ARGS` from `from` to the store `to` (the same when `None`), as JSON.
#[track_caller]
fn cp(from: &Store, to: Option<&Store>, args: &[&str]) -> Value {
    json(&cp_run(from, to, args).ok())
}

fn cp_run(from: &Store, to: Option<&Store>, args: &[&str]) -> common::Run {
    let mut all: Vec<String> = vec!["cp".into(), "--json".into()];
    if let Some(to) = to {
        all.push("--to-param".into());
        all.push(format!("rootdirectory={}", to.root().display()));
    }
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    from.run(&all)
}

fn total(files: &[(&str, Vec<u8>)]) -> u64 {
    files.iter().map(|(_, b)| b.len() as u64).sum()
}

#[test]
fn a_tree_to_another_root_then_skipped_on_a_rerun() {
    let (src, dst) = (Store::new(), Store::new());
    let files = tree();
    write_tree(&src, "/tree", &files);
    let first = cp(&src, Some(&dst), &["/tree", "/copy"]);
    assert_eq!(first["files"], files.len());
    assert_eq!(first["copied"], files.len());
    assert_eq!(first["skipped"], 0);
    assert_eq!(first["moved"], total(&files));
    assert_eq!(first["verified"], Value::Null);
    assert_tree(&dst, "/copy", &files);

    let again = cp(&src, Some(&dst), &["/tree", "/copy", "--verify"]);
    assert_eq!(again["skipped"], files.len());
    assert_eq!(
        (again["copied"].clone(), again["moved"].clone()),
        (0.into(), 0.into())
    );
    assert_eq!(again["verified"], files.len());
    assert_eq!(again["mismatched"], 0);
}

#[test]
fn the_summary_line_and_the_root_as_source() {
    let (src, dst) = (Store::new(), Store::new());
    let files = vec![("x", content(3, 1)), ("d/y", content(4, 2))];
    write_tree(&src, "/top", &files);
    let run = src.run(&[
        "cp",
        "/",
        "/",
        "--to-param",
        &format!("rootdirectory={}", dst.root().display()),
        "--verify",
    ]);
    let line = run.ok();
    assert!(
        line.starts_with(
            "copied 2 of 2 files (0 resumed, 0 B already there), skipped 0, moved 7 B of 7 B in "
        ),
        "{line}"
    );
    assert!(line.contains("; verified 2 (size and SHA-256)"), "{line}");
    assert_tree(&dst, "/top", &files);
}

#[test]
fn a_single_file_and_a_copy_within_one_driver() {
    let store = Store::new();
    let files = tree();
    write_tree(&store, "/tree", &files);
    let single = cp(
        &store,
        None,
        &["/tree/big/data", "/elsewhere/blob", "--verify"],
    );
    assert_eq!(
        (single["files"].clone(), single["copied"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(
        std::fs::read(on_disk(&store, "/elsewhere/blob")).expect("copied"),
        files[4].1
    );
    let within = cp(&store, None, &["/tree/", "/copy", "-j", "2"]);
    assert_eq!(within["copied"], files.len());
    assert_tree(&store, "/copy", &files);
    // The source is untouched.
    assert_tree(&store, "/tree", &files);
}

#[test]
fn a_partial_destination_resumes_from_what_its_writer_holds() {
    let (src, dst) = (Store::new(), Store::new());
    let blob = content(6 * 1024 * 1024 + 7, 9);
    let other = content(2_000_000, 10);
    write_tree(
        &src,
        "/s",
        &[("blob", blob.clone()), ("other", other.clone())],
    );
    // What a writer of /d/blob that was closed (or killed) after 2.5 MB leaves.
    let held = 2_500_000;
    std::fs::create_dir_all(on_disk(&dst, "/d")).expect("mkdir");
    std::fs::write(on_disk(&dst, "/d/blob#upload"), &blob[..held]).expect("upload");
    let run = cp(&src, Some(&dst), &["/s", "/d", "--verify"]);
    assert_eq!(run["resumed"], 1);
    assert_eq!(run["resumed_bytes"], held);
    assert_eq!(run["moved"], (blob.len() - held + other.len()) as u64);
    assert_eq!(run["mismatched"], 0);
    assert!(std::fs::read(on_disk(&dst, "/d/blob")).expect("copied") == blob);
    assert!(
        !on_disk(&dst, "/d/blob#upload").exists(),
        "the upload was committed"
    );
}

#[test]
fn a_destination_longer_than_the_source_or_of_another_size_is_written_anew() {
    let (src, dst) = (Store::new(), Store::new());
    let blob = content(3_000_000, 11);
    write_tree(
        &src,
        "/s",
        &[
            ("upload", blob.clone()),
            ("longer", blob.clone()),
            ("shorter", blob.clone()),
        ],
    );
    std::fs::create_dir_all(on_disk(&dst, "/d")).expect("mkdir");
    // An upload holding more than the source: not a copy of it.
    std::fs::write(on_disk(&dst, "/d/upload#upload"), content(3_000_001, 12)).expect("upload");
    // Committed files of other sizes, whose bytes start like the source's.
    std::fs::write(on_disk(&dst, "/d/longer"), [&blob[..], b"tail"].concat()).expect("write");
    std::fs::write(on_disk(&dst, "/d/shorter"), &blob[..1000]).expect("write");
    let run = cp(&src, Some(&dst), &["/s", "/d", "--verify"]);
    assert_eq!(run["copied"], 3);
    assert_eq!(run["resumed"], 0);
    assert_eq!(run["moved"], 3 * blob.len() as u64);
    assert_eq!(run["mismatched"], 0);
    for name in ["upload", "longer", "shorter"] {
        assert!(
            std::fs::read(on_disk(&dst, &format!("/d/{name}"))).expect("copied") == blob,
            "{name}"
        );
    }
}

#[test]
fn verify_reports_a_corrupted_copy_per_path() {
    let (src, dst) = (Store::new(), Store::new());
    let files = tree();
    write_tree(&src, "/tree", &files);
    cp(&src, Some(&dst), &["/tree", "/copy"]);
    // Same size, one byte changed: a rerun skips it, and only --verify can tell.
    let victim = on_disk(&dst, "/copy/a/b/c/deep");
    let mut bytes = std::fs::read(&victim).expect("read");
    bytes[100] ^= 0xff;
    std::fs::write(&victim, &bytes).expect("corrupt");
    let run = cp_run(&src, Some(&dst), &["/tree", "/copy", "--verify"]);
    assert_eq!(run.code, 7, "{}", run.stderr);
    let summary = json(&String::from_utf8(run.stdout.clone()).expect("UTF-8"));
    assert_eq!(summary["skipped"], files.len());
    assert_eq!(summary["mismatched"], 1);
    assert_eq!(summary["mismatches"][0]["dest"], "/copy/a/b/c/deep");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    assert!(
        lines[0].contains("/copy/a/b/c/deep has SHA-256") && lines[0].contains("filesystem"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("1 of 6 files differ"), "{}", lines[1]);
}

#[test]
fn errors_name_the_side_the_driver_and_the_path() {
    let (src, dst) = (Store::new(), Store::new());
    write_tree(&src, "/tree", &tree());
    cp_run(&src, Some(&dst), &["/nope", "/x"])
        .fails(3, &["cp: source filesystem", "path not found", "/nope"]);
    cp_run(&src, Some(&dst), &["/tree/one", "not/absolute"]).fails(
        2,
        &["cp: destination filesystem", "invalid path", "not/absolute"],
    );
    cp_run(&src, Some(&dst), &["/tree/one", "/a b"]).fails(2, &["invalid path", "/a b"]);
    cp_run(&src, None, &["/tree", "/tree/inside"]).fails(2, &["/tree/inside", "below it"]);
    cp_run(&src, None, &["/tree/one", "/tree/one"])
        .fails(2, &["the destination /tree/one is the source"]);
    // A file where the copy needs a directory.
    std::fs::create_dir_all(dst.root()).expect("mkdir");
    std::fs::write(on_disk(&dst, "/copy"), b"a file").expect("write");
    cp_run(&src, Some(&dst), &["/tree", "/copy"]).fails(6, &["destination filesystem", "/copy"]);
    // A destination selection that does not parse.
    src.run(&["cp", "/tree", "/x", "--to-driver", "nosuchdriver"])
        .fails(2, &["registry-storage-nosuchdriver"]);
}

#[test]
fn help_has_an_example() {
    let run = common::command()
        .args(["cp", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&run.stdout);
    assert!(
        help.contains("Examples:") && help.contains("registry-storage --driver filesystem"),
        "{help}"
    );
    assert!(help.contains("--to-config"), "{help}");
    assert!(Path::new(env!("CARGO_BIN_EXE_registry-storage")).exists());
}

#[test]
fn ctrl_c_closes_the_writer_and_a_rerun_resumes_it() {
    let (src, dst) = (Store::new(), Store::new());
    // Large enough to be mid-copy when the signal comes (a few hundred ms on a fast disk).
    let mut blob = Vec::with_capacity(256 << 20);
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    while blob.len() < 256 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        blob.extend_from_slice(&state.to_le_bytes());
    }
    write_tree(&src, "/s", &[("blob", blob.clone())]);
    let to = format!("rootdirectory={}", dst.root().display());
    let mut child = src
        .command(&["cp", "/s/blob", "/d/blob", "--to-param", &to])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cp starts");
    let upload = on_disk(&dst, "/d/blob#upload");
    // Once the writer has flushed something, interrupt.
    while std::fs::metadata(&upload).map_or(true, |m| m.len() == 0) {
        assert!(child.try_wait().expect("wait").is_none(), "cp ended first");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let output = child.wait_with_output().expect("cp ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert_eq!(stderr.trim(), "registry-storage: interrupted");
    // The writer was closed, not cancelled: its upload holds what it wrote.
    let held = std::fs::metadata(&upload).expect("the upload stays").len();
    assert!(held > 0 && held < blob.len() as u64, "{held}");
    assert!(!on_disk(&dst, "/d/blob").exists(), "nothing committed");

    let run = cp(&src, Some(&dst), &["/s/blob", "/d/blob", "--verify"]);
    assert_eq!(run["resumed"], 1);
    assert_eq!(run["resumed_bytes"], held);
    assert_eq!(run["moved"], blob.len() as u64 - held);
    assert_eq!(run["mismatched"], 0);
    assert!(std::fs::read(on_disk(&dst, "/d/blob")).expect("copied") == blob);
}
