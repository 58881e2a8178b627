//! `registry-storage`: the command-line tool of the storage drivers. It looks inside a
//! container registry's storage on any driver (`ls`, `stat`, `cat`, `put`, `rm`, `mv`, `url`,
//! `du`), selected by name (`--driver`, `--param`), by the registry's own `config.yml` and
//! environment (`--config`), or by default the filesystem driver under `./registry-data`.
//!
//! Modules: [`cli`] (the clap types), [`select`] with [`config`], [`env`] and [`yaml`] (driver
//! selection), [`commands`] (one module per command), [`exit`] (error classes and exit
//! codes), [`output`] (formatting), [`progress`] (bars on a terminal), [`interrupt`] (Ctrl-C)
//! and [`duration`] (`--expires`). For `check` and `bench`: [`check`] (the suite's cases on
//! scratch stores), [`cleanup`] (deleting them), [`opener`] (opening the driver again, or through its executable with
//! `--ipc`) and [`panics`] (a failing case's panic as its result). For `cp`: [`copy`] (the
//! plan, one file's resumable copy, the verification and the summary).

mod check;
mod cleanup;
mod cli;
mod commands;
mod config;
mod copy;
mod duration;
mod env;
mod exit;
mod interrupt;
mod opener;
mod output;
mod panics;
mod progress;
mod select;
mod yaml;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::exit::CliError;
use crate::interrupt::Interrupt;
use crate::select::Environment;

fn main() -> ExitCode {
    // Usage errors print clap's message and exit with 2 (invalid input); --help and
    // --version exit with 0.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return report(&CliError::local("starting the async runtime", &err)),
    };
    let result = runtime.block_on(run(cli));
    // A read of stdin still blocked in its thread (after Ctrl-C) must not hold up the exit.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => report(&err),
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    // First, so that a Ctrl-C during anything that follows is handled.
    let interrupt =
        Interrupt::install().map_err(|e| CliError::local("installing the Ctrl-C handler", &e))?;
    let environment = Environment::current()?;
    let selection = select::select(&cli.selection, &environment)?;
    commands::run(cli.command, &selection, &interrupt).await
}

/// Prints `err` as one line on stderr and returns its exit code.
fn report(err: &CliError) -> ExitCode {
    output::note(&err.to_string());
    ExitCode::from(err.class().code())
}
