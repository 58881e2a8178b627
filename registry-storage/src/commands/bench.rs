//! `bench`: the suite's benchmarks ([`testsuites::bench`]) or a registry's workload
//! ([`testsuites::bench::registry`]) on the selected driver, below a prefix of its own
//! (`/registry-storage-bench-<random>`, deleted afterwards), as a table or JSON.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use storagedriver::StorageDriver;
use testsuites::bench::registry::{
    Phase, RegistryResults, RegistryWorkload, run_registry_workload,
};
use testsuites::bench::{BenchConfig, BenchResult, format_duration, run_suite_benchmarks};
use testsuites::scoped::ScopedDriver;
use testsuites::servers::unique_name;
use tokio::task::AbortHandle;

use crate::cleanup;
use crate::cli::{BenchArgs, Workload};
use crate::exit::{Class, CliError};
use crate::interrupt::Interrupt;
use crate::opener::Opener;
use crate::panics::{QuietPanics, panic_reason};
use crate::select::Selection;
use crate::{output, progress};

/// Runs `bench`.
pub(crate) async fn run(
    selection: &Selection,
    args: &BenchArgs,
    interrupt: &Interrupt,
) -> Result<(), CliError> {
    if !(args.seconds.is_finite() && args.seconds >= 0.0) {
        return Err(CliError::invalid(format!(
            "--seconds {}: expected a number of seconds, 0 or more",
            args.seconds
        )));
    }
    let opener = Opener::new(selection, args.ipc);
    let base = interrupt.guard(opener.open()).await?;
    let prefix = format!("/{}", unique_name("registry-storage-bench"));
    let driver: Arc<dyn StorageDriver> = Arc::new(ScopedDriver::new(base.clone(), &prefix)?);
    let heading = json!({
        "driver": base.name(),
        "mode": opener.mode(),
    });
    let result = match args.workload {
        Workload::Suite => interrupt.guard(suite(driver, args, heading)).await,
        Workload::Registry => interrupt.guard(registry(driver, args, heading)).await,
    };
    let cleaned = cleanup::remove(base.as_ref(), &prefix).await;
    result.and(cleaned.map_err(CliError::from))
}

/// Runs `work` in a task of its own, a panic (a benchmark's failed step) becoming an error.
/// Dropped (Ctrl-C), it stops the task, so nothing writes while the prefix is deleted.
async fn catching<T: Send + 'static>(
    work: impl Future<Output = Result<T, CliError>> + Send + 'static,
) -> Result<T, CliError> {
    let _quiet = QuietPanics::install();
    let task = tokio::spawn(work);
    let _stop = AbortOnDrop(task.abort_handle());
    match task.await {
        Ok(result) => result,
        Err(join) if join.is_panic() => Err(CliError::new(
            Class::Backend,
            panic_reason(join.into_panic()),
        )),
        Err(join) => Err(CliError::new(Class::Backend, join.to_string())),
    }
}

/// Aborts a task when dropped (a no-op once it has ended).
#[derive(Debug)]
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn suite(
    driver: Arc<dyn StorageDriver>,
    args: &BenchArgs,
    heading: Value,
) -> Result<(), CliError> {
    let config = BenchConfig {
        min_time: Duration::from_secs_f64(args.seconds),
        min_iterations: 3,
        one_gib: args.one_gib,
        filter: args.filter.clone(),
    };
    let results =
        catching(async move { Ok(run_suite_benchmarks(driver.as_ref(), &config).await) }).await?;
    if args.json {
        let rows: Vec<Value> = results
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "iterations": r.iterations,
                    "seconds_per_op": r.per_op.as_secs_f64(),
                    "ops_per_second": ops_per_second(r),
                    "mb_per_second": r.mb_per_s(),
                })
            })
            .collect();
        let mut doc = heading;
        doc["workload"] = json!("suite");
        doc["results"] = json!(rows);
        return output::print_json(&doc);
    }
    output::print_text(&suite_table(&heading, &results))
}

fn ops_per_second(r: &BenchResult) -> f64 {
    if r.per_op.is_zero() {
        0.0
    } else {
        1.0 / r.per_op.as_secs_f64()
    }
}

/// The suite's results: a row per benchmark with operations/s and MB/s.
fn suite_table(heading: &Value, results: &[BenchResult]) -> String {
    let mut out = format!(
        "{}, {}: the suite's benchmarks\n{:<20} {:>10} {:>12} {:>12} {:>10}\n",
        heading["driver"].as_str().unwrap_or_default(),
        heading["mode"].as_str().unwrap_or_default(),
        "BENCHMARK",
        "ITERATIONS",
        "TIME/OP",
        "OPS/S",
        "MB/S"
    );
    for r in results {
        let mb = r.mb_per_s().map_or_else(String::new, |v| format!("{v:.1}"));
        let _ = writeln!(
            out,
            "{:<20} {:>10} {:>12} {:>12.1} {mb:>10}",
            r.name,
            r.iterations,
            format_duration(r.per_op),
            ops_per_second(r)
        );
    }
    out
}

async fn registry(
    driver: Arc<dyn StorageDriver>,
    args: &BenchArgs,
    heading: Value,
) -> Result<(), CliError> {
    let workload = RegistryWorkload {
        concurrency: usize::from(args.concurrency),
        pushes: args.pushes,
        pulls: args.pulls,
        layers: args.layers,
        layer_size: args.layer_size,
        chunk_size: args.chunk_size,
    };
    let bar = progress::counter(
        u64::from(workload.pushes) + u64::from(workload.pulls),
        "pushes and pulls",
    );
    let shown = bar.clone();
    let task_workload = workload.clone();
    let results = catching(async move {
        let progress = move |phase: Phase, n: u64| match phase {
            Phase::Push | Phase::Pull => shown.inc(n),
            Phase::Walk => shown.set_message("walking the tree"),
        };
        Ok(run_registry_workload(driver, &task_workload, &progress).await?)
    })
    .await;
    bar.finish_and_clear();
    let results = results?;
    if args.json {
        let mut doc = heading;
        doc["workload"] = json!("registry");
        doc["concurrency"] = json!(workload.concurrency);
        doc["pushes"] = json!(workload.pushes);
        doc["pulls"] = json!(workload.pulls);
        doc["layers"] = json!(workload.layers);
        doc["layer_size"] = json!(workload.layer_size);
        doc["chunk_size"] = json!(workload.chunk_size);
        if let (Value::Object(doc), Value::Object(figures)) = (&mut doc, results.to_json()) {
            doc.extend(figures);
        }
        return output::print_json(&doc);
    }
    output::print_text(&registry_table(&heading, &workload, &results))
}

/// The registry workload's results: pushes/s, pulls/s, MB/s, latencies, the walk's entries/s.
fn registry_table(heading: &Value, w: &RegistryWorkload, r: &RegistryResults) -> String {
    let mut out = format!(
        "{}, {}: registry workload, {} pushes and {} pulls of {} layers of {} ({} chunks), {} at a time\n",
        heading["driver"].as_str().unwrap_or_default(),
        heading["mode"].as_str().unwrap_or_default(),
        w.pushes,
        w.pulls,
        w.layers,
        output::human_size(w.layer_size),
        output::human_size(w.chunk_size),
        w.concurrency
    );
    let _ = writeln!(
        out,
        "{:<6} {:>8} {:>9} {:>12} {:>9} {:>10} {:>10}",
        "PHASE", "COUNT", "TIME", "RATE", "MB/S", "P50", "P99"
    );
    for (name, unit, phase) in [("push", "pushes/s", &r.push), ("pull", "pulls/s", &r.pull)] {
        let _ = writeln!(
            out,
            "{name:<6} {:>8} {:>9} {:>12} {:>9.1} {:>10} {:>10}",
            phase.count,
            format_duration(phase.elapsed),
            format!("{:.1} {unit}", phase.per_second()),
            phase.mb_per_second(),
            format_duration(phase.latency(0.5)),
            format_duration(phase.latency(0.99))
        );
    }
    let _ = writeln!(
        out,
        "{:<6} {:>8} {:>9} {:>12}",
        "walk",
        r.walk.entries,
        format_duration(r.walk.elapsed),
        format!("{:.0} entries/s", r.walk.per_second())
    );
    out
}
