//! The suite's benchmarks on the in-memory driver. Run with
//! `cargo bench -p driver-inmemory`; `STORAGEDRIVER_BENCH_*` variables tune it (see
//! `testsuites::bench::BenchConfig::from_env`).

use driver_inmemory::InMemoryDriver;
use testsuites::bench::{BenchConfig, markdown_table, run_suite_benchmarks};

fn main() {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("cannot start a tokio runtime: {e}"),
    };
    let config = BenchConfig::from_env();
    let results = runtime.block_on(run_suite_benchmarks(&InMemoryDriver::new(), &config));
    println!("{}", markdown_table("inmemory", &results));
}
