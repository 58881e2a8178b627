//! The command line: global driver selection options and one subcommand per operation.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit::EXIT_CODES_HELP;

/// The directory the filesystem driver uses when nothing selects a driver, relative to the
/// current directory.
pub(crate) const DEFAULT_ROOT: &str = "registry-data";

const SELECTION_HELP: &str = "\
Driver selection (the first that applies):
  1. --driver NAME with --param KEY=VALUE: a built-in driver (filesystem, inmemory, s3, azure)
     or any NAME with an executable registry-storage-NAME on PATH
  2. --config FILE, or else $REGISTRY_CONFIGURATION_PATH: the registry's config.yml, whose
     storage section names the driver (its delete, redirect, cache, maintenance and tag keys
     are ignored); the registry's environment overrides win over the file:
     REGISTRY_STORAGE=<driver> and REGISTRY_STORAGE_<DRIVER>_<KEY>=<value>
     (REGISTRY_STORAGE_AZURE_CREDENTIALS_TYPE sets credentials.type)
  3. those REGISTRY_STORAGE variables alone, when any is set
  4. the filesystem driver under ./registry-data in the current directory
--param overrides parameters in every case; `registry-storage driver` shows the result.";

const EXAMPLES_HELP: &str = "\
Examples:
  registry-storage put /docker/registry/v2/hello.txt ./hello.txt
  registry-storage ls -l /docker/registry/v2
  registry-storage --config /etc/docker/registry/config.yml du /docker/registry/v2
  registry-storage --driver s3 -p bucket=registry -p region=us-east-1 ls -R /docker";

/// `registry-storage`: look inside a container registry's storage, on any storage driver.
#[derive(Debug, Parser)]
#[command(
    name = "registry-storage",
    version,
    about = "Look inside a container registry's storage, on any storage driver",
    long_about = "Look inside a container registry's storage, on any storage driver: list, \
                  stat, read, write, move and delete paths, sign URLs, and add up sizes. Paths \
                  are the driver's: absolute, like /docker/registry/v2/blobs.",
    after_help = format!("{SELECTION_HELP}\n\n{EXIT_CODES_HELP}\n\n{EXAMPLES_HELP}"),
)]
pub(crate) struct Cli {
    /// Which driver, with which parameters.
    #[command(flatten)]
    pub(crate) selection: SelectionArgs,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The options that select the driver; global, so they may follow the subcommand too.
#[derive(Debug, Args)]
#[command(next_help_heading = "Driver selection")]
pub(crate) struct SelectionArgs {
    /// The driver by name: filesystem, inmemory, s3, azure, or NAME for an executable
    /// registry-storage-NAME on PATH
    #[arg(long, global = true, value_name = "NAME", conflicts_with = "config")]
    pub(crate) driver: Option<String>,

    /// A driver parameter (repeatable); values are strings, which the driver reads as numbers
    /// or booleans where it expects them; a dotted KEY (credentials.type) sets a nested one
    #[arg(
        short = 'p',
        long = "param",
        global = true,
        value_name = "KEY=VALUE",
        value_parser = parse_param
    )]
    pub(crate) params: Vec<(String, String)>,

    /// The registry's config.yml (default: $REGISTRY_CONFIGURATION_PATH when set); its storage
    /// section selects the driver, REGISTRY_STORAGE* variables override it
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// `KEY=VALUE`, split at the first `=`.
fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value))
            if !key.is_empty() && !key.split('.').any(|segment| segment.trim().is_empty()) =>
        {
            Ok((key.to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "{text:?} is not KEY=VALUE (e.g. rootdirectory=/var/lib/registry)"
        )),
    }
}

/// The operations.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List a directory (the driver's list), or every entry below it with -R
    #[command(after_help = "\
Examples:
  registry-storage ls /docker/registry/v2/repositories
  registry-storage ls -l /docker/registry/v2/blobs/sha256/ab
  registry-storage ls -lR --json /docker/registry/v2/repositories/library")]
    Ls(LsArgs),

    /// Show a file's or directory's size, type and modification time
    #[command(after_help = "\
Example:
  registry-storage stat --json /docker/registry/v2/blobs/sha256/ab/abcd/data")]
    Stat(StatArgs),

    /// Write a file's content to stdout, streamed, from an offset
    #[command(after_help = "\
Examples:
  registry-storage cat /docker/registry/v2/repositories/library/ubuntu/_manifests/tags/latest/current/link
  registry-storage cat --offset 1048576 /docker/registry/v2/blobs/sha256/ab/abcd/data > tail.bin")]
    Cat(CatArgs),

    /// Write a file from a local file or stdin, streamed through a writer and committed
    #[command(after_help = "\
Examples:
  registry-storage put /docker/registry/v2/blobs/sha256/ab/abcd/data ./layer.tar.gz
  echo -n sha256:abcd | registry-storage put /docker/registry/v2/repositories/library/ubuntu/_manifests/tags/latest/current/link

Nothing is visible at PATH until the whole input is written; on an error or Ctrl-C the
writer is cancelled and PATH is left as it was.")]
    Put(PutArgs),

    /// Delete a file, or a directory and everything below it with -r
    #[command(after_help = "\
Examples:
  registry-storage rm /docker/registry/v2/repositories/library/ubuntu/_manifests/tags/old/current/link
  registry-storage rm -r /docker/registry/v2/repositories/library/ubuntu/_uploads")]
    Rm(RmArgs),

    /// Move a file to another path (replacing what is there)
    #[command(after_help = "\
Example:
  registry-storage mv /docker/registry/v2/tmp/data /docker/registry/v2/blobs/sha256/ab/abcd/data")]
    Mv(MvArgs),

    /// Print a signed URL that reads the file directly from the backend (s3, azure)
    #[command(after_help = "\
Example:
  registry-storage --driver s3 -p bucket=registry -p region=us-east-1 \\
      url --method get --expires 1h /docker/registry/v2/blobs/sha256/ab/abcd/data")]
    Url(UrlArgs),

    /// Add up the sizes below a directory: one total per direct child, largest first, with a bar
    #[command(after_help = "\
Examples:
  registry-storage du /docker/registry/v2
  registry-storage du --json /docker/registry/v2/repositories")]
    Du(DuArgs),

    /// Copy a file or a whole tree, within one driver or to another, streamed, in parallel and
    /// resumable
    #[command(after_help = CP_HELP)]
    Cp(CpArgs),

    /// Run the conformance suite against the driver: one row per behaviour, exit 8 on a failure
    #[command(after_help = CHECK_HELP)]
    Check(CheckArgs),

    /// Benchmark the driver: the suite's benchmarks, or a registry's workload
    #[command(after_help = BENCH_HELP)]
    Bench(BenchArgs),

    /// Show the selected driver and its parameters (secrets masked) without connecting
    #[command(after_help = "\
Example:
  REGISTRY_STORAGE_S3_REGION=eu-west-1 registry-storage --config config.yml driver")]
    Driver(DriverArgs),
}

/// `ls [PATH]`.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// The directory (or file) to list
    #[arg(default_value = "/")]
    pub(crate) path: String,
    /// Long listing: type, size in bytes, modification time (UTC), path
    #[arg(short = 'l', long = "long")]
    pub(crate) long: bool,
    /// Every entry below PATH, depth first (the driver's walk)
    #[arg(short = 'R', long)]
    pub(crate) recursive: bool,
    /// Sizes in KiB, MiB, ... with -l
    #[arg(short = 'H', long)]
    pub(crate) human: bool,
    /// A JSON array of {path, size, mod_time, is_dir}
    #[arg(long)]
    pub(crate) json: bool,
}

/// `stat PATH`.
#[derive(Debug, Args)]
pub(crate) struct StatArgs {
    /// The file or directory
    pub(crate) path: String,
    /// A JSON object {path, size, mod_time, is_dir}
    #[arg(long)]
    pub(crate) json: bool,
}

/// `cat PATH`.
#[derive(Debug, Args)]
pub(crate) struct CatArgs {
    /// The file
    pub(crate) path: String,
    /// Start this many bytes into the file (past the end: nothing)
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    pub(crate) offset: u64,
}

/// `put PATH [FILE]`.
#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// The path to write
    pub(crate) path: String,
    /// The local file to read; stdin when absent or `-`
    pub(crate) file: Option<PathBuf>,
}

/// `rm PATH`.
#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// The file or directory
    pub(crate) path: String,
    /// Delete a directory and everything below it
    #[arg(short = 'r', short_alias = 'R', long)]
    pub(crate) recursive: bool,
}

/// `mv FROM TO`.
#[derive(Debug, Args)]
pub(crate) struct MvArgs {
    /// The file to move
    pub(crate) from: String,
    /// Where it goes
    pub(crate) to: String,
}

/// The HTTP method a signed URL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MethodArg {
    /// GET: read the content
    Get,
    /// HEAD: read the headers only
    Head,
}

/// `url PATH`.
#[derive(Debug, Args)]
pub(crate) struct UrlArgs {
    /// The file
    pub(crate) path: String,
    /// The HTTP method the URL is signed for
    #[arg(long, value_enum, default_value = "get")]
    pub(crate) method: MethodArg,
    /// How long the URL stays valid: 20m, 1h30m, 90s, or seconds
    #[arg(long, default_value = "20m", value_parser = crate::duration::parse, value_name = "DURATION")]
    pub(crate) expires: Duration,
}

/// `du [PATH]`.
#[derive(Debug, Args)]
pub(crate) struct DuArgs {
    /// The directory to add up
    #[arg(default_value = "/")]
    pub(crate) path: String,
    /// A JSON object {path, size, files, entries: [{path, size, files, is_dir}]}, largest first
    #[arg(long)]
    pub(crate) json: bool,
}

/// The help that follows `cp`'s options.
const CP_HELP: &str = "\
The destination driver is the source's unless --to-driver or --to-config selects another
(read as --driver and --config are); --to-param sets a destination parameter, over the
source's own parameters when neither is given. A directory SRC is walked and each file is
copied to DST plus its path below SRC; a file SRC is copied to DST.

Resumable: a rerun skips the files whose copy is complete (same size) and continues each
unfinished one from what its destination writer holds (after Ctrl-C, which closes the open
writers, or a killed process: then from the last checkpoint, taken every few seconds). A
destination of another size is written anew.

Examples:
  registry-storage --driver filesystem -p rootdirectory=/var/lib/registry cp /docker /docker \\
      --to-driver s3 --to-param bucket=registry --to-param region=us-east-1 --verify
  registry-storage --config old.yml cp --to-config new.yml --jobs 8 /docker/registry/v2 /docker/registry/v2
  registry-storage cp /docker/registry/v2/blobs/sha256/ab/abcd/data /backup/abcd-data";

/// `cp SRC DST`.
#[derive(Debug, Args)]
pub(crate) struct CpArgs {
    /// The file or directory to copy, on the source driver
    pub(crate) src: String,
    /// Where the copy goes, on the destination driver
    pub(crate) dst: String,
    /// The destination driver by name (as --driver); default: the source driver
    #[arg(long, value_name = "NAME", conflicts_with = "to_config")]
    pub(crate) to_driver: Option<String>,
    /// A destination driver parameter (repeatable, as --param)
    #[arg(long = "to-param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub(crate) to_params: Vec<(String, String)>,
    /// A registry config.yml whose storage section selects the destination (as --config)
    #[arg(long, value_name = "FILE")]
    pub(crate) to_config: Option<PathBuf>,
    /// How many files are copied at once
    #[arg(short = 'j', long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) jobs: u16,
    /// Afterwards, compare the size and SHA-256 of every file on both sides, skipped ones too
    #[arg(long)]
    pub(crate) verify: bool,
    /// The summary as a JSON object
    #[arg(long)]
    pub(crate) json: bool,
}

/// The help that follows `check`'s options.
const CHECK_HELP: &str = "\
Every case of the conformance suite (the testsuites crate, as a driver's own tests run it)
runs on a fresh, empty store of its own on the selected driver, one case at a time, and what
it wrote is deleted afterwards: below rootdirectory <root>/registry-storage-check-<random>/<case>
for filesystem, s3 and azure (and with --root-param KEY, below parameter KEY); below
/registry-storage-check-<random>/<case> of the store for other persistent drivers (external
executables), where a case needing paths of 1,024 bytes is skipped; on a new instance for
drivers that keep nothing (inmemory). A case that finds a
broken rule fails with the first line of its message; a case about a capability the driver
lacks (url_for, append_to_committed) is skipped once it has checked the driver says so.
STORAGEDRIVER_SUITE=full runs the Go sizes (a 5 GiB stream, ...).

Examples:
  registry-storage --driver inmemory check
  registry-storage --driver s3 -p bucket=registry -p region=us-east-1 check --filter walk_
  PATH=./drivers:$PATH registry-storage --driver mydriver -p rootdirectory=/tmp/d check --json
  PATH=./drivers:$PATH registry-storage --driver mydriver -p rootdirectory=/tmp/d check --root-param rootdirectory";

/// `check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Run only the cases whose name contains SUBSTRING (e.g. walk_, writer_takeover)
    #[arg(long, value_name = "SUBSTRING")]
    pub(crate) filter: Option<String>,
    /// Run a built-in driver through its executable registry-storage-NAME on PATH, over IPC
    #[arg(long)]
    pub(crate) ipc: bool,
    /// The parameter that holds an external driver's root (a directory or key prefix, e.g.
    /// rootdirectory): each case then gets a fresh root below it instead of a prefix of the store
    #[arg(long, value_name = "KEY")]
    pub(crate) root_param: Option<String>,
    /// A JSON object {driver, mode, scratch, cases: [{case, status, reason, seconds}], summary}
    #[arg(long)]
    pub(crate) json: bool,
    /// A case that takes longer fails, and the check goes on (e.g. 90s, 10m)
    #[arg(long, default_value = "10m", value_name = "DURATION", value_parser = crate::duration::parse)]
    pub(crate) case_timeout: Duration,
}

/// The help that follows `bench`'s options.
const BENCH_HELP: &str = "\
--workload suite (the default) runs the suite's benchmarks (put/get and writer/reader of
empty, 1 KiB, 1 MiB and, with --one-gib, 1 GiB files; list and delete of 5 and 50 files).
--workload registry plays a registry: concurrent pushes (resumable chunked layer uploads to
_uploads/<id>/data, moved to blobs/sha256/<xx>/<digest>/data, layer links, a manifest, its
revision link, a tag's current and index links), then concurrent pulls (tag link, links,
blob stats, layer reads from an offset), then a garbage collector's walk of the whole tree.
Everything is written below /registry-storage-bench-<random> and deleted afterwards.

Examples:
  registry-storage --driver inmemory bench --seconds 0.5
  registry-storage bench --workload registry --concurrency 16 --pushes 64 --json
  PATH=target/release:$PATH registry-storage --driver filesystem -p rootdirectory=/tmp/r bench --ipc";

/// What `bench` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Workload {
    /// The suite's benchmarks
    Suite,
    /// A registry's pushes, pulls and garbage-collection walk
    Registry,
}

/// `bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// What to run
    #[arg(long, value_enum, default_value = "suite")]
    pub(crate) workload: Workload,
    /// Run a built-in driver through its executable registry-storage-NAME on PATH, over IPC
    #[arg(long)]
    pub(crate) ipc: bool,
    /// The results as a JSON object
    #[arg(long)]
    pub(crate) json: bool,
    /// suite: the minimum time of each benchmark, in seconds
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub(crate) seconds: f64,
    /// suite: also the 1 GiB benchmarks
    #[arg(long)]
    pub(crate) one_gib: bool,
    /// suite: only the benchmarks whose name contains SUBSTRING
    #[arg(long, value_name = "SUBSTRING")]
    pub(crate) filter: Option<String>,
    /// registry: how many operations run at once
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) concurrency: u16,
    /// registry: how many images are pushed (one repository each)
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) pushes: u32,
    /// registry: how many images are pulled (round robin over the pushed ones)
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) pulls: u32,
    /// registry: layers per image
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub(crate) layers: u32,
    /// registry: bytes per layer (K, M, G suffixes: 4M)
    #[arg(long, default_value = "4M", value_parser = parse_size, value_name = "SIZE")]
    pub(crate) layer_size: u64,
    /// registry: bytes per upload chunk (K, M suffixes)
    #[arg(long, default_value = "1M", value_parser = parse_size, value_name = "SIZE")]
    pub(crate) chunk_size: u64,
}

/// A size in bytes: a number with an optional K, M or G suffix (binary units).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 10),
        Some((i, 'm' | 'M')) => (&text[..i], 20),
        Some((i, 'g' | 'G')) => (&text[..i], 30),
        _ => (text, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a size (e.g. 4M, 512K, 1048576)"))
}

/// `driver`.
#[derive(Debug, Args)]
pub(crate) struct DriverArgs {
    /// A JSON object {driver, source, parameters} (secrets masked)
    #[arg(long)]
    pub(crate) json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn params() {
        assert_eq!(parse_param("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(
            parse_param("rootdirectory="),
            Ok(("rootdirectory".into(), String::new()))
        );
        assert!(parse_param("novalue").is_err());
        assert!(parse_param("=x").is_err());
        assert!(parse_param("credentials..type=x").is_err());
    }

    #[test]
    fn global_options_follow_the_subcommand() {
        let cli = Cli::try_parse_from([
            "registry-storage",
            "ls",
            "-l",
            "--driver",
            "inmemory",
            "-p",
            "a=1",
        ])
        .expect("parses");
        assert_eq!(cli.selection.driver.as_deref(), Some("inmemory"));
        assert_eq!(cli.selection.params, [("a".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("0").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("-1M").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn driver_and_config_conflict() {
        let err = Cli::try_parse_from([
            "registry-storage",
            "--driver",
            "s3",
            "--config",
            "c.yml",
            "ls",
        ])
        .expect_err("conflict");
        assert_eq!(err.exit_code(), 2);
    }
}
