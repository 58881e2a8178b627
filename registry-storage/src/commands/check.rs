//! `check`: the conformance suite on the selected driver, a row per case (see [`crate::check`]).

use std::time::Instant;

use crate::check::report::{self, Summary};
use crate::check::scratch::Scratch;
use crate::check::{self, Outcome};
use crate::cli::CheckArgs;
use crate::exit::{Class, CliError};
use crate::interrupt::Interrupt;
use crate::opener::Opener;
use crate::select::Selection;
use crate::{output, progress};

/// Runs `check`.
pub(crate) async fn run(
    selection: &Selection,
    args: &CheckArgs,
    interrupt: &Interrupt,
) -> Result<(), CliError> {
    let cases = check::cases(args.filter.as_deref());
    if cases.is_empty() {
        return Err(CliError::invalid(format!(
            "no case of the suite matches --filter {:?}",
            args.filter.as_deref().unwrap_or_default()
        )));
    }
    let opener = Opener::new(selection, args.ipc);
    let base = interrupt.guard(opener.open()).await?;
    let name = base.name().to_owned();
    let capabilities = base.capabilities();
    let scratch = Scratch::new(opener.clone(), base, args.root_param.as_deref())?;
    let bar = progress::counter(cases.len() as u64, "cases");
    let started = Instant::now();
    if !args.json {
        let intro = format!(
            "{name}, {}: {} cases, {}\n{}",
            opener.mode(),
            cases.len(),
            scratch.describe(),
            report::header()
        );
        bar.suspend(|| output::print_text(&intro))?;
    }
    let json = args.json;
    let print_row = |outcome: &Outcome| {
        if json {
            return Ok(());
        }
        bar.suspend(|| output::print_text(&report::row(outcome)))
    };
    let outcomes = check::run(
        &scratch,
        &cases,
        args.case_timeout,
        capabilities,
        interrupt,
        &bar,
        print_row,
    )
    .await;
    bar.finish_and_clear();
    let outcomes = outcomes?;
    let elapsed = started.elapsed();
    let summary = Summary::of(&outcomes);
    if args.json {
        output::print_json(&report::json(
            &name,
            &opener.mode(),
            &scratch.describe(),
            &outcomes,
            elapsed,
        ))?;
    } else {
        output::print_text(&report::summary_line(&name, &summary, elapsed))?;
    }
    if summary.failed > 0 {
        return Err(CliError::new(
            Class::CheckFailed,
            format!(
                "{name}: {} of {} cases failed",
                summary.failed, summary.total
            ),
        ));
    }
    Ok(())
}
