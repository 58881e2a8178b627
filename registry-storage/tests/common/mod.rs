//! Running the built `registry-storage` binary in tests, on the filesystem driver under a
//! temporary root.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// The binary, with no `REGISTRY_*` variable of the environment the tests run in.
pub fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_registry-storage"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("REGISTRY_") {
            command.env_remove(name);
        }
    }
    command
}

/// What a run of the binary left.
#[derive(Debug)]
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Stdout, as bytes.
    pub stdout: Vec<u8>,
    /// Stderr, as text.
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout as text.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert_eq!(self.code, 0, "expected success; stderr: {}", self.stderr);
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    /// Asserts a failure with `code`, reported as one line on stderr containing each of
    /// `parts`, with nothing on stdout and no panic.
    #[track_caller]
    pub fn fails(&self, code: i32, parts: &[&str]) {
        assert_eq!(self.code, code, "exit code; stderr: {}", self.stderr);
        assert!(
            self.stdout.is_empty(),
            "stdout: {:?}",
            String::from_utf8_lossy(&self.stdout)
        );
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "one line: {:?}",
            self.stderr
        );
        assert!(
            self.stderr.starts_with("registry-storage: "),
            "{}",
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        for part in parts {
            assert!(
                self.stderr.contains(part),
                "{part:?} not in {:?}",
                self.stderr
            );
        }
    }
}

/// Runs `command` with `stdin` as its input.
pub fn run(mut command: Command, stdin: &[u8]) -> Run {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the binary starts");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        // The binary may not read stdin at all.
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().expect("the binary runs");
    feeder.join().expect("stdin written");
    Run::from(output)
}

/// A filesystem driver's root in a temporary directory.
#[derive(Debug)]
pub struct Store {
    dir: TempDir,
    root: PathBuf,
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        Store { dir, root }
    }

    /// The driver's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A scratch directory beside the root, for local files.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The binary with `--driver filesystem` on this store, then `args`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = command();
        command
            .arg("--driver")
            .arg("filesystem")
            .arg("-p")
            .arg(format!("rootdirectory={}", self.root.display()))
            .arg("-p")
            .arg("fsync=false")
            .args(args);
        command
    }

    /// Runs `args` on this store with empty stdin.
    pub fn run(&self, args: &[&str]) -> Run {
        run(self.command(args), b"")
    }

    /// Runs `args` on this store with `stdin`.
    pub fn run_with(&self, args: &[&str], stdin: &[u8]) -> Run {
        run(self.command(args), stdin)
    }

    /// Writes `content` at `path` through `put` from stdin.
    #[track_caller]
    pub fn put(&self, path: &str, content: &[u8]) {
        self.run_with(&["put", path], content).ok();
    }
}

/// `len` bytes of deterministic, incompressible-looking content.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}
