//! `du`: the sizes below a directory, added up per direct child through the driver's `walk`,
//! largest first, each with a bar in proportion to the whole.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::json;
use storagedriver::{FileInfo, StorageDriver, WalkControl, WalkOptions};

use crate::cli::DuArgs;
use crate::exit::CliError;
use crate::output;
use crate::progress;

/// The width of a bar, in cells.
const BAR_WIDTH: usize = 24;

/// A direct child of the directory, with what is below it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Child {
    path: String,
    is_dir: bool,
    /// Bytes in files at or below the child.
    size: u64,
    /// Files at or below the child.
    files: u64,
}

/// Runs `du`.
pub(crate) async fn run(driver: &dyn StorageDriver, args: &DuArgs) -> Result<(), CliError> {
    let path = super::path_arg(&args.path);
    let top = driver.stat(&path).await?;
    let children = if top.is_dir {
        let bar = progress::entries(&path, false);
        let mut totals = Totals::new(&path);
        let walked = driver
            .walk(&path, &WalkOptions::default(), &mut |info| {
                bar.inc(1);
                totals.add(info);
                WalkControl::Continue
            })
            .await;
        bar.finish_and_clear();
        walked?;
        totals.largest_first()
    } else {
        vec![Child {
            path: top.path.clone(),
            is_dir: false,
            size: top.size,
            files: 1,
        }]
    };
    let size: u64 = children.iter().map(|c| c.size).sum();
    let files: u64 = children.iter().map(|c| c.files).sum();
    if args.json {
        let entries: Vec<_> = children
            .iter()
            .map(|c| json!({"path": c.path, "size": c.size, "files": c.files, "is_dir": c.is_dir}))
            .collect();
        return output::print_json(
            &json!({"path": path, "size": size, "files": files, "entries": entries}),
        );
    }
    output::print_text(&render(&top, &children, size, files))
}

/// The totals per direct child of a directory, as a walk reports its entries.
#[derive(Debug)]
struct Totals {
    /// The directory's path followed by `/` (just `/` for the root).
    prefix: String,
    children: BTreeMap<String, Child>,
}

impl Totals {
    fn new(dir: &str) -> Self {
        let prefix = if dir == "/" {
            "/".to_owned()
        } else {
            format!("{dir}/")
        };
        Totals {
            prefix,
            children: BTreeMap::new(),
        }
    }

    fn add(&mut self, info: &FileInfo) {
        let Some(below) = info.path.strip_prefix(&self.prefix) else {
            return;
        };
        let name = below.split('/').next().unwrap_or(below);
        let path = format!("{}{name}", self.prefix);
        let child = self.children.entry(path.clone()).or_insert_with(|| Child {
            path: path.clone(),
            is_dir: true,
            size: 0,
            files: 0,
        });
        if info.path == path {
            child.is_dir = info.is_dir;
        }
        if !info.is_dir {
            child.size += info.size;
            child.files += 1;
        }
    }

    fn largest_first(self) -> Vec<Child> {
        let mut children: Vec<Child> = self.children.into_values().collect();
        children.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
        children
    }
}

/// The table: one row per child, then the total.
fn render(top: &FileInfo, children: &[Child], size: u64, files: u64) -> String {
    let mut out = String::new();
    for child in children {
        let share = if size == 0 {
            0.0
        } else {
            child.size as f64 * 100.0 / size as f64
        };
        // Something, however small, is not shown as nothing.
        let share = if child.size > 0 && share < 0.05 {
            "<0.1".to_owned()
        } else {
            format!("{share:.1}")
        };
        let shown = if child.is_dir {
            format!("{}/  ({})", child.path, count(child.files))
        } else {
            child.path.clone()
        };
        let _ = writeln!(
            out,
            "{:>10}  {share:>5}%  {}  {shown}",
            output::human_size(child.size),
            output::bar(child.size, size, BAR_WIDTH)
        );
    }
    let _ = writeln!(
        out,
        "{:>10}  100.0%  {:BAR_WIDTH$}  {}  ({} in total)",
        output::human_size(size),
        "",
        output::shown_path(top),
        count(files)
    );
    out
}

fn count(files: u64) -> String {
    if files == 1 {
        "1 file".to_owned()
    } else {
        format!("{files} files")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn file(path: &str, size: u64) -> FileInfo {
        FileInfo::file(path, size, SystemTime::UNIX_EPOCH)
    }

    fn dir(path: &str) -> FileInfo {
        FileInfo::dir(path, SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn totals_per_direct_child_largest_first() {
        let mut totals = Totals::new("/v2");
        for info in [
            dir("/v2/blobs"),
            dir("/v2/blobs/ab"),
            file("/v2/blobs/ab/data", 300),
            file("/v2/blobs/cd", 100),
            dir("/v2/empty"),
            file("/v2/readme", 50),
            dir("/v2/repositories"),
            file("/v2/repositories/link", 71),
            file("/v2/repositories/link2", 71),
        ] {
            totals.add(&info);
        }
        let children = totals.largest_first();
        let summary: Vec<(&str, u64, u64, bool)> = children
            .iter()
            .map(|c| (c.path.as_str(), c.size, c.files, c.is_dir))
            .collect();
        assert_eq!(
            summary,
            [
                ("/v2/blobs", 400, 2, true),
                ("/v2/repositories", 142, 2, true),
                ("/v2/readme", 50, 1, false),
                ("/v2/empty", 0, 0, true),
            ]
        );
    }

    #[test]
    fn root_prefix() {
        let mut totals = Totals::new("/");
        totals.add(&dir("/docker"));
        totals.add(&file("/docker/a", 5));
        assert_eq!(totals.largest_first()[0].path, "/docker");
    }

    #[test]
    fn a_tiny_share_is_not_shown_as_zero() {
        let children = [
            Child {
                path: "/big".into(),
                is_dir: false,
                size: 1 << 30,
                files: 1,
            },
            Child {
                path: "/small".into(),
                is_dir: false,
                size: 10,
                files: 1,
            },
            Child {
                path: "/empty".into(),
                is_dir: true,
                size: 0,
                files: 0,
            },
        ];
        let text = render(&dir("/"), &children, (1 << 30) + 10, 2);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].contains("   <0.1%  "), "{text}");
        assert!(lines[2].contains("    0.0%  "), "{text}");
        assert!(lines[2].ends_with("/empty/  (0 files)"), "{text}");
    }

    #[test]
    fn rendering() {
        let children = [
            Child {
                path: "/v2/blobs".into(),
                is_dir: true,
                size: 3 << 20,
                files: 3,
            },
            Child {
                path: "/v2/readme".into(),
                is_dir: false,
                size: 1 << 20,
                files: 1,
            },
        ];
        let text = render(&dir("/v2"), &children, 4 << 20, 4);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            format!(
                "   3.0 MiB   75.0%  {}  /v2/blobs/  (3 files)",
                "█".repeat(18) + &" ".repeat(6)
            )
        );
        assert_eq!(
            lines[1],
            format!(
                "   1.0 MiB   25.0%  {}  /v2/readme",
                "█".repeat(6) + &" ".repeat(18)
            )
        );
        assert_eq!(
            lines[2],
            format!(
                "   4.0 MiB  100.0%  {}  /v2/  (4 files in total)",
                " ".repeat(24)
            )
        );
    }
}
