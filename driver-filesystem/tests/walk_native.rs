//! The driver's own walk (directory reads) against the generic walk (`list` and `stat`) on
//! trees with hidden entries: the same entries in the same order, for every start hint and
//! every answer of the callback.

use std::fs;
use std::path::Path;

use driver_filesystem::FilesystemDriver;
use proptest::prelude::*;
use storagedriver::walk::walk_fallback;
use storagedriver::{StorageDriver, WalkControl, WalkOptions};

/// What a walk reported, and how it ended.
type Seen = (Vec<(String, bool, u64)>, Result<(), String>);

/// The callback's answer for an entry: skip the `skip`-th entry's directory, stop at `stop`.
fn answer(index: usize, skip: Option<usize>, stop: Option<usize>) -> WalkControl {
    if Some(index) == stop {
        WalkControl::Stop
    } else if Some(index) == skip {
        WalkControl::SkipDir
    } else {
        WalkControl::Continue
    }
}

/// The callback of a walk that records every entry and answers per [`answer`].
fn recorder(
    seen: &mut Vec<(String, bool, u64)>,
    skip: Option<usize>,
    stop: Option<usize>,
) -> impl FnMut(&storagedriver::FileInfo) -> WalkControl + Send + '_ {
    move |info| {
        seen.push((info.path.clone(), info.is_dir, info.size));
        answer(seen.len() - 1, skip, stop)
    }
}

async fn native(
    d: &FilesystemDriver,
    from: &str,
    o: &WalkOptions,
    skip: Option<usize>,
    stop: Option<usize>,
) -> Seen {
    let mut seen = Vec::new();
    let result = d.walk(from, o, &mut recorder(&mut seen, skip, stop)).await;
    (seen, result.map_err(|e| e.to_string()))
}

async fn generic(
    d: &FilesystemDriver,
    from: &str,
    o: &WalkOptions,
    skip: Option<usize>,
    stop: Option<usize>,
) -> Seen {
    let mut seen = Vec::new();
    let result = walk_fallback(d, from, o, &mut recorder(&mut seen, skip, stop)).await;
    (seen, result.map_err(|e| e.to_string()))
}

/// Builds a tree under `root` from `entries`: (path of up to 3 components from a small
/// alphabet, kind) with kind 0 a file, 1 an upload's staging file (hidden), 2 an empty
/// directory.
fn build(root: &Path, entries: &[(Vec<u8>, u8)]) -> Vec<String> {
    let names = ["a", "b", "b-c", "c", "a.b"];
    let mut paths = Vec::new();
    for (components, kind) in entries {
        let rel: Vec<&str> = components
            .iter()
            .map(|c| names[*c as usize % names.len()])
            .collect();
        let rel = rel.join("/");
        let full = root.join(&rel);
        let Some(parent) = full.parent() else {
            continue;
        };
        if fs::create_dir_all(parent).is_err() {
            continue;
        }
        let made = match kind % 3 {
            0 => fs::write(&full, rel.as_bytes()).is_ok(),
            1 => fs::write(format!("{}#upload", full.display()), b"hidden").is_ok(),
            _ => fs::create_dir_all(&full).is_ok(),
        };
        if made {
            paths.push(format!("/{rel}"));
        }
    }
    paths
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_native_walk_reports_what_the_generic_walk_reports(
        entries in prop::collection::vec((prop::collection::vec(0u8..5, 1..4), 0u8..3), 1..24),
        skip in prop::option::of(0usize..12),
        stop in prop::option::of(0usize..12),
    ) {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let paths = build(tmp.path(), &entries);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let d = FilesystemDriver::with_root(tmp.path()).expect("the driver");
            let mut froms = vec!["/".to_owned()];
            froms.extend(paths.iter().cloned());
            let mut hints = vec![None];
            hints.extend(paths.iter().cloned().map(Some));
            for from in &froms {
                for hint in &hints {
                    let o = match hint {
                        Some(h) => WalkOptions::default().start_after(h.clone()),
                        None => WalkOptions::default(),
                    };
                    let mine = native(&d, from, &o, skip, stop).await;
                    let theirs = generic(&d, from, &o, skip, stop).await;
                    prop_assert_eq!(mine, theirs, "from {} after {:?}", from, hint);
                }
            }
            Ok(())
        })?;
    }
}
