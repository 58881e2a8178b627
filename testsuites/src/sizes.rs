//! How big the suite's cases are: short by default, the Go sizes in full mode.
//!
//! | variable | effect |
//! |---|---|
//! | `STORAGEDRIVER_SUITE=full` | the Go sizes: 5 GiB stream, 32 writers × 32 MiB, 10 readers of 128 MiB |
//! | `STORAGEDRIVER_LARGE_STREAM_MIB=N` | the large stream's size in MiB, in either mode |
//! | `STORAGEDRIVER_MODEL_CASES=N` | how many random sequences the model test runs |
//! | `STORAGEDRIVER_MIXED_SEED=N` | the seed of the concurrent mixed-operations test (default: random, printed on failure) |
//! | `STORAGEDRIVER_REQUIRE_SERVERS=1` | a skipped fixture fails its test (CI sets it) |

const MIB: u64 = 1 << 20;

/// The sizes of the suite's larger cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Bytes of the large stream checked by SHA-256.
    pub large_stream: u64,
    /// How many concurrent writers of distinct files.
    pub concurrent_writers: usize,
    /// Bytes each concurrent writer writes.
    pub concurrent_writer_bytes: u64,
    /// Bytes of the file the concurrent readers read.
    pub concurrent_read_file: u64,
    /// Random operation sequences the model test runs.
    pub model_cases: u32,
    /// Concurrent tasks of the mixed-operations test.
    pub mixed_tasks: usize,
    /// Operations each task of the mixed-operations test runs.
    pub mixed_ops: usize,
}

impl Sizes {
    /// The short sizes (the default).
    pub const SHORT: Sizes = Sizes {
        large_stream: 256 * MIB,
        concurrent_writers: 8,
        concurrent_writer_bytes: 8 * MIB,
        concurrent_read_file: 32 * MIB,
        model_cases: 128,
        mixed_tasks: 16,
        mixed_ops: 100,
    };

    /// The Go sizes.
    pub const FULL: Sizes = Sizes {
        large_stream: 5 * 1024 * MIB,
        concurrent_writers: 32,
        concurrent_writer_bytes: 32 * MIB,
        concurrent_read_file: 128 * MIB,
        model_cases: 1024,
        mixed_tasks: 32,
        mixed_ops: 400,
    };

    /// The sizes the environment asks for.
    pub fn from_env() -> Sizes {
        let mut sizes = if std::env::var("STORAGEDRIVER_SUITE").is_ok_and(|v| v == "full") {
            Sizes::FULL
        } else {
            Sizes::SHORT
        };
        if let Some(mib) = env_number("STORAGEDRIVER_LARGE_STREAM_MIB") {
            sizes.large_stream = mib * MIB;
        }
        if let Some(cases) = env_number("STORAGEDRIVER_MODEL_CASES") {
            sizes.model_cases = u32::try_from(cases).unwrap_or(u32::MAX);
        }
        sizes
    }
}

/// The seed the environment gives the concurrent mixed-operations test
/// (`STORAGEDRIVER_MIXED_SEED`), if any.
pub fn mixed_seed() -> Option<u64> {
    env_number("STORAGEDRIVER_MIXED_SEED")
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={value:?}: expected a whole number"),
    }
}

/// True when a skipped fixture must fail its test (`STORAGEDRIVER_REQUIRE_SERVERS=1`).
pub fn servers_required() -> bool {
    std::env::var("STORAGEDRIVER_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}
