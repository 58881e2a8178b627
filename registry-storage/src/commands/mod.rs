//! One module per command; [`run`] creates the driver and dispatches.

mod bench;
mod cat;
mod check;
mod cp;
mod driver;
mod du;
mod ls;
mod mv;
mod put;
mod rm;
mod stat;
mod url;

use storagedriver::{Error, StorageDriver};

use crate::cli::Command;
use crate::exit::CliError;
use crate::interrupt::Interrupt;
use crate::select::{self, Selection};

/// Runs `command` on the driver `selection` names. Ctrl-C ends any command with
/// [`CliError::interrupted`]; `put` cancels its writer first.
pub(crate) async fn run(
    command: Command,
    selection: &Selection,
    interrupt: &Interrupt,
) -> Result<(), CliError> {
    if let Command::Driver(args) = &command {
        return driver::run(selection, args);
    }
    if let Command::Cp(args) = &command {
        return cp::run(selection, args, interrupt).await;
    }
    if let Command::Check(args) = &command {
        return check::run(selection, args, interrupt).await;
    }
    if let Command::Bench(args) = &command {
        return bench::run(selection, args, interrupt).await;
    }
    let driver = interrupt.guard(select::open(selection)).await?;
    let driver: &dyn StorageDriver = &*driver;
    match command {
        Command::Ls(args) => interrupt.guard(ls::run(driver, &args)).await,
        Command::Stat(args) => interrupt.guard(stat::run(driver, &args)).await,
        Command::Cat(args) => interrupt.guard(cat::run(driver, &args)).await,
        Command::Put(args) => put::run(driver, &args, interrupt).await,
        Command::Rm(args) => interrupt.guard(rm::run(driver, &args)).await,
        Command::Mv(args) => interrupt.guard(mv::run(driver, &args)).await,
        Command::Url(args) => interrupt.guard(url::run(driver, &args)).await,
        Command::Du(args) => interrupt.guard(du::run(driver, &args)).await,
        Command::Driver(_) | Command::Cp(_) | Command::Check(_) | Command::Bench(_) => Ok(()),
    }
}

/// A path as given, without trailing slashes (`/docker/` is `/docker`; `/` stays). The
/// driver checks the rest of the grammar and names what is wrong.
pub(crate) fn path_arg(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() && path.starts_with('/') {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// For a `PathNotFound` from an operation on files: when `path` is a directory, says so (the
/// contract reports a directory as not found to `reader`), as invalid input.
pub(crate) async fn not_a_directory(
    driver: &dyn StorageDriver,
    path: &str,
    err: Error,
    hint: &str,
) -> CliError {
    if err.is_not_found() {
        if let Ok(info) = driver.stat(path).await {
            if info.is_dir {
                return CliError::invalid(format!(
                    "{}: {path} is a directory: {hint}",
                    driver.name()
                ));
            }
        }
    }
    err.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_slashes_go() {
        assert_eq!(path_arg("/docker/"), "/docker");
        assert_eq!(path_arg("/docker//"), "/docker");
        assert_eq!(path_arg("/"), "/");
        assert_eq!(path_arg("//"), "/");
        assert_eq!(path_arg("docker"), "docker");
        assert_eq!(path_arg(""), "");
    }
}
