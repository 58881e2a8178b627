//! The commands, run as a user runs them: the built binary on the filesystem driver under a
//! temporary root.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Store, content};
use serde_json::Value;

const V2: &str = "/docker/registry/v2";

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn put_from_stdin_and_from_a_file_then_cat() {
    let store = Store::new();
    // More than one chunk of the put loop (1 MiB), and not a multiple of it.
    let blob = content(2_500_001, 1);
    store.put("/from/stdin", &blob);
    let local = store.scratch().join("layer.bin");
    std::fs::write(&local, &blob).expect("write");
    store
        .run(&["put", "/from/file", local.to_str().expect("utf-8")])
        .ok();
    for path in ["/from/stdin", "/from/file"] {
        let run = store.run(&["cat", path]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout == blob, "{path}: content differs");
        // The driver stores exactly the bytes: check on disk too.
        let on_disk = std::fs::read(store.root().join(&path[1..])).expect("on disk");
        assert!(on_disk == blob, "{path} on disk");
    }
    // `-` is stdin too; an empty input makes an empty file.
    store.run_with(&["put", "/empty", "-"], b"").ok();
    let stat = json(&store.run(&["stat", "--json", "/empty"]).ok());
    assert_eq!(stat["size"], 0);
}

#[test]
fn put_replaces_what_was_there() {
    let store = Store::new();
    store.put("/a/link", b"sha256:0123456789abcdef");
    store.put("/a/link", b"sha256:ff");
    assert_eq!(store.run(&["cat", "/a/link"]).ok(), "sha256:ff");
}

#[test]
fn cat_from_an_offset() {
    let store = Store::new();
    let blob = content(300_000, 2);
    store.put("/blob", &blob);
    let run = store.run(&["cat", "--offset", "123457", "/blob"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout == blob[123_457..], "the tail from the offset");
    for past in ["300000", "999999"] {
        let run = store.run(&["cat", "--offset", past, "/blob"]);
        assert_eq!((run.code, run.stdout.len()), (0, 0), "offset {past}");
    }
}

/// A small registry-shaped tree: three blobs and four links.
fn registry(store: &Store) {
    store.put(
        &format!("{V2}/blobs/sha256/ab/abcd/data"),
        &content(5000, 3),
    );
    store.put(
        &format!("{V2}/blobs/sha256/cd/cdef/data"),
        &content(3000, 4),
    );
    store.put(
        &format!("{V2}/blobs/sha256/ef/ef01/data"),
        &content(1000, 5),
    );
    let repo = format!("{V2}/repositories/library/ubuntu");
    store.put(
        &format!("{repo}/_manifests/tags/latest/current/link"),
        b"sha256:ef01",
    );
    store.put(
        &format!("{repo}/_manifests/revisions/sha256/ef01/link"),
        b"sha256:ef01",
    );
    store.put(&format!("{repo}/_layers/sha256/abcd/link"), b"sha256:abcd");
    store.put(&format!("{repo}/_layers/sha256/cdef/link"), b"sha256:cdef");
}

#[test]
fn ls_names_long_recursive_and_json() {
    let store = Store::new();
    registry(&store);

    let names = store.run(&["ls", V2]).ok();
    assert_eq!(
        names,
        format!("{V2}/blobs\n{V2}/repositories\n"),
        "the driver's list, sorted"
    );
    // A trailing slash is accepted.
    assert_eq!(store.run(&["ls", &format!("{V2}/")]).ok(), names);

    let long = store
        .run(&["ls", "-l", &format!("{V2}/blobs/sha256/ab/abcd")])
        .ok();
    let fields: Vec<&str> = long.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "type, size, date, time, path: {long:?}");
    assert_eq!(fields[0], "-");
    assert_eq!(fields[1], "5000");
    assert_eq!(fields[4], format!("{V2}/blobs/sha256/ab/abcd/data"));
    let long = store.run(&["ls", "-l", V2]).ok();
    assert!(long.starts_with("d "), "{long}");
    assert!(long.contains(&format!("{V2}/blobs/\n")), "{long}");
    let human = store
        .run(&["ls", "-lH", &format!("{V2}/blobs/sha256/ab/abcd")])
        .ok();
    assert!(human.contains("4.9 KiB"), "{human}");

    let all = store
        .run(&[
            "ls",
            "-R",
            &format!("{V2}/repositories/library/ubuntu/_layers"),
        ])
        .ok();
    let base = format!("{V2}/repositories/library/ubuntu/_layers");
    assert_eq!(
        all.lines().collect::<Vec<_>>(),
        [
            format!("{base}/sha256/"),
            format!("{base}/sha256/abcd/"),
            format!("{base}/sha256/abcd/link"),
            format!("{base}/sha256/cdef/"),
            format!("{base}/sha256/cdef/link"),
        ],
        "depth first, directories marked"
    );

    let entries = json(
        &store
            .run(&["ls", "-R", "--json", &format!("{V2}/blobs")])
            .ok(),
    );
    let entries = entries.as_array().expect("an array");
    assert_eq!(
        entries.len(),
        10,
        "sha256, 3 two-character dirs, 3 digest dirs, 3 files"
    );
    let files: Vec<(&str, u64)> = entries
        .iter()
        .filter(|e| e["is_dir"] == false)
        .map(|e| {
            (
                e["path"].as_str().expect("path"),
                e["size"].as_u64().expect("size"),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            (format!("{V2}/blobs/sha256/ab/abcd/data").as_str(), 5000),
            (format!("{V2}/blobs/sha256/cd/cdef/data").as_str(), 3000),
            (format!("{V2}/blobs/sha256/ef/ef01/data").as_str(), 1000),
        ]
    );
    for entry in entries {
        let time = entry["mod_time"].as_str().expect("mod_time");
        chrono::DateTime::parse_from_rfc3339(time).expect("RFC 3339");
    }
    // Without -R, --json stats each child.
    let children = json(&store.run(&["ls", "--json", V2]).ok());
    assert_eq!(children[0]["path"], format!("{V2}/blobs"));
    assert_eq!(children[0]["is_dir"], true);
    assert_eq!(children.as_array().map(Vec::len), Some(2));
    // An empty listing is an empty array.
    store.put("/e/x", b"x");
    store.run(&["rm", "/e/x"]).ok();
    store.put("/only/file", b"1");
    let empty = store.run(&["ls", "--json", "/only/file"]).ok();
    assert_eq!(
        json(&empty).as_array().map(Vec::len),
        Some(1),
        "ls of a file is the file"
    );
}

#[test]
fn ls_of_a_file_shows_the_file() {
    let store = Store::new();
    store.put("/dir/file", b"12345");
    assert_eq!(store.run(&["ls", "/dir/file"]).ok(), "/dir/file\n");
    let long = store.run(&["ls", "-lR", "/dir/file"]).ok();
    assert!(long.starts_with("-            5  "), "{long:?}");
}

#[test]
fn stat_text_and_json() {
    let store = Store::new();
    store.put("/a/b/data", &content(2048, 6));
    let before = chrono::Utc::now() - chrono::Duration::seconds(60);
    let file = json(&store.run(&["stat", "--json", "/a/b/data"]).ok());
    assert_eq!(file["path"], "/a/b/data");
    assert_eq!(file["size"], 2048);
    assert_eq!(file["is_dir"], false);
    let time = chrono::DateTime::parse_from_rfc3339(file["mod_time"].as_str().expect("time"))
        .expect("RFC 3339");
    assert!(time > before, "a modification time of now, not {time}");
    let dir = json(&store.run(&["stat", "--json", "/a"]).ok());
    assert_eq!(dir["is_dir"], true);
    let text = store.run(&["stat", "/a/b/data"]).ok();
    assert!(text.contains("type      file\n"), "{text}");
    assert!(text.contains("size      2048 (2.0 KiB)\n"), "{text}");
}

#[test]
fn rm_a_file_and_a_directory() {
    let store = Store::new();
    store.put("/d/one", b"1");
    store.put("/d/sub/two", b"2");
    store.run(&["rm", "/d/one"]).ok();
    store.run(&["stat", "/d/one"]).fails(3, &["/d/one"]);
    store.run(&["stat", "/d/sub/two"]).ok();

    store
        .run(&["rm", "/d"])
        .fails(2, &["filesystem", "/d is a directory", "rm -r"]);
    store.run(&["stat", "/d/sub/two"]).ok();
    store.run(&["rm", "-r", "/d/"]).ok();
    store.run(&["stat", "/d"]).fails(3, &["/d"]);
    assert_eq!(
        std::fs::read_dir(store.root()).map(Iterator::count).ok(),
        Some(0)
    );
}

#[test]
fn mv_moves_a_file() {
    let store = Store::new();
    let blob = content(70_000, 7);
    store.put("/uploads/u1/data", &blob);
    store
        .run(&["mv", "/uploads/u1/data", "/blobs/sha256/12/1234/data"])
        .ok();
    store
        .run(&["stat", "/uploads/u1/data"])
        .fails(3, &["/uploads/u1/data"]);
    let run = store.run(&["cat", "/blobs/sha256/12/1234/data"]);
    assert!(run.code == 0 && run.stdout == blob, "moved content");
}

#[test]
fn du_adds_up_per_child_largest_first() {
    let store = Store::new();
    registry(&store);
    store.put(&format!("{V2}/readme"), &content(100, 8));

    let text = store.run(&["du", V2]).ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].ends_with(&format!("{V2}/blobs/  (3 files)")),
        "{text}"
    );
    assert!(lines[0].starts_with("   8.8 KiB   98.4%  "), "{text}");
    assert!(lines[1].starts_with("     100 B    1.1%  "), "{text}");
    assert!(lines[1].ends_with(&format!("{V2}/readme")), "{text}");
    assert!(
        lines[2].ends_with(&format!("{V2}/repositories/  (4 files)")),
        "{text}"
    );
    assert!(
        lines[3].contains("100.0%") && lines[3].ends_with("(8 files in total)"),
        "{text}"
    );
    // The bars shrink with the share.
    let bar = |line: &str| line.chars().filter(|c| "█▉▊▋▌▍▎▏".contains(*c)).count();
    assert!(bar(lines[0]) >= 23 && bar(lines[2]) == 1, "{text}");

    let du = json(&store.run(&["du", "--json", V2]).ok());
    assert_eq!(du["size"], 9000 + 44 + 100);
    assert_eq!(du["files"], 8);
    let entries: Vec<(&str, u64, u64, bool)> = du["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["path"].as_str().expect("path"),
                e["size"].as_u64().expect("size"),
                e["files"].as_u64().expect("files"),
                e["is_dir"].as_bool().expect("is_dir"),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (format!("{V2}/blobs").as_str(), 9000, 3, true),
            (format!("{V2}/readme").as_str(), 100, 1, false),
            (format!("{V2}/repositories").as_str(), 44, 4, true),
        ],
        "largest first"
    );

    let blobs = json(
        &store
            .run(&["du", "--json", &format!("{V2}/blobs/sha256")])
            .ok(),
    );
    let order: Vec<&str> = blobs["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["path"].as_str().expect("path"))
        .collect();
    assert_eq!(
        order,
        [
            format!("{V2}/blobs/sha256/ab"),
            format!("{V2}/blobs/sha256/cd"),
            format!("{V2}/blobs/sha256/ef"),
        ]
    );
    // du of a file is the file.
    let one = json(&store.run(&["du", "--json", &format!("{V2}/readme")]).ok());
    assert_eq!(
        (one["size"].as_u64(), one["files"].as_u64()),
        (Some(100), Some(1))
    );
}

#[test]
fn cat_into_a_closed_pipe_ends_quietly() {
    let store = Store::new();
    store.put("/big", &content(4 << 20, 9));
    let mut child = store
        .command(&["cat", "/big"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0_u8; 10];
    stdout.read_exact(&mut first).expect("some content");
    drop(stdout);
    let output = child.wait_with_output().expect("ends");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn ctrl_c_cancels_a_put() {
    let store = Store::new();
    let mut child = store
        .command(&["put", "/up/file"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, b"part of a layer").expect("write");
    // The writer's upload file exists once the writer is open, and the handler of Ctrl-C is
    // installed before the driver is created.
    let upload = store.root().join("up/file#upload");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !upload.exists() {
        assert!(Instant::now() < deadline, "the writer never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let output = child.wait_with_output().expect("ends");
    drop(stdin);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert_eq!(stderr, "registry-storage: interrupted\n");
    assert!(!store.root().join("up/file").exists(), "nothing committed");
    assert!(!upload.exists(), "the writer was cancelled");
}
