//! `cp`: a file or a tree copied within one driver or to another, through the copy engine
//! ([`crate::copy`]): the destination selected as the source is, the plan, the copy, the
//! verification, the summary.

use std::sync::Arc;

use crate::cli::{CpArgs, SelectionArgs};
use crate::copy::{self, Options, plan};
use crate::exit::{Class, CliError};
use crate::interrupt::Interrupt;
use crate::output;
use crate::select::{self, Environment, Selection};

/// Runs `cp` from the driver `source` selects.
pub(crate) async fn run(
    source: &Selection,
    args: &CpArgs,
    interrupt: &Interrupt,
) -> Result<(), CliError> {
    let destination = destination(source, args, &Environment::current()?)?;
    // The same driver with the same parameters: one storage, opened once (an in-memory
    // driver opened twice would be two stores).
    let same_storage =
        destination.driver == source.driver && destination.parameters == source.parameters;
    let src = interrupt.guard(select::open(source)).await?;
    let dst = if same_storage {
        Arc::clone(&src)
    } else {
        interrupt.guard(select::open(&destination)).await?
    };
    let from = super::path_arg(&args.src);
    let to = super::path_arg(&args.dst);
    let plan = interrupt
        .guard(plan::make(&*src, &*dst, &from, &to, same_storage))
        .await?;
    let options = Options {
        jobs: usize::from(args.jobs),
        verify: args.verify,
    };
    let report = copy::run(Arc::clone(&src), Arc::clone(&dst), plan, options, interrupt).await?;
    if args.json {
        let mut value = report.summary.json();
        value["mismatches"] = report
            .mismatches
            .iter()
            .map(|m| serde_json::json!({"source": m.source, "dest": m.dest, "reason": m.reason}))
            .collect();
        output::print_json(&value)?;
    } else {
        output::print_text(&report.summary.line())?;
    }
    for mismatch in &report.mismatches {
        output::note(&format!("verify: {}", mismatch.reason));
    }
    if report.mismatches.is_empty() {
        Ok(())
    } else {
        Err(CliError::new(
            Class::Mismatch,
            format!(
                "cp: verify: {} of {} files differ from their source on {}",
                report.mismatches.len(),
                report.summary.files,
                dst.name()
            ),
        ))
    }
}

/// The destination: the source's selection with `--to-param` applied, or what `--to-driver`
/// or `--to-config` select (as `--driver` and `--config` would), with `--to-param` applied.
fn destination(
    source: &Selection,
    args: &CpArgs,
    environment: &Environment,
) -> Result<Selection, CliError> {
    if args.to_driver.is_none() && args.to_config.is_none() {
        let mut selection = source.clone();
        select::apply_params(&mut selection, &args.to_params, "--to-param");
        return Ok(selection);
    }
    let selected = select::select(
        &SelectionArgs {
            driver: args.to_driver.clone(),
            params: args.to_params.clone(),
            config: args.to_config.clone(),
        },
        environment,
    )?;
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    fn source() -> Selection {
        let mut parameters = storagedriver::Parameters::new();
        parameters.insert("rootdirectory".into(), json!("/src"));
        Selection {
            driver: "filesystem".into(),
            parameters,
            source: "--driver filesystem".into(),
        }
    }

    fn args(
        to_driver: Option<&str>,
        to_config: Option<PathBuf>,
        to_params: &[(&str, &str)],
    ) -> CpArgs {
        CpArgs {
            src: "/a".into(),
            dst: "/b".into(),
            to_driver: to_driver.map(str::to_owned),
            to_params: to_params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            to_config,
            jobs: 4,
            verify: false,
            json: false,
        }
    }

    #[test]
    fn no_destination_option_is_the_source() {
        let selected =
            destination(&source(), &args(None, None, &[]), &Environment::default()).expect("ok");
        assert_eq!(selected, source());
    }

    #[test]
    fn to_param_alone_changes_the_source_parameters() {
        let selected = destination(
            &source(),
            &args(None, None, &[("rootdirectory", "/dst")]),
            &Environment::default(),
        )
        .expect("ok");
        assert_eq!(selected.driver, "filesystem");
        assert_eq!(selected.parameters["rootdirectory"], json!("/dst"));
        assert!(selected.source.ends_with("--to-param rootdirectory"));
    }

    #[test]
    fn to_driver_starts_from_nothing() {
        let selected = destination(
            &source(),
            &args(Some("inmemory"), None, &[]),
            &Environment::default(),
        )
        .expect("ok");
        assert_eq!(selected.driver, "inmemory");
        assert!(selected.parameters.is_empty());
    }

    #[test]
    fn to_config_is_read_as_config_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.yml");
        std::fs::write(
            &file,
            "storage:\n  s3:\n    bucket: b\n    region: r\n  delete:\n    enabled: true\n",
        )
        .expect("write");
        let selected = destination(
            &source(),
            &args(None, Some(file), &[("bucket", "c")]),
            &Environment::default(),
        )
        .expect("ok");
        assert_eq!(selected.driver, "s3");
        assert_eq!(selected.parameters["bucket"], json!("c"));
        assert_eq!(selected.parameters["region"], json!("r"));
    }
}
