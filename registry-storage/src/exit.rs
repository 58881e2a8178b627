//! Exit codes, one per class of failure, and the error every command returns.
//!
//! A failure is printed as one line on stderr (the error's `Display`: the library's errors
//! already name the driver, and the path or the parameter key) and ends the process with the
//! code of its class. The classes are listed in `--help` ([`EXIT_CODES_HELP`]).

use std::fmt;
use std::io;

use storagedriver::Error;
use storagedriver_factory::FactoryError;

use crate::config::ConfigError;

/// The class of a failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// A local file or stdout/stdin could not be read or written.
    Local,
    /// Bad arguments, an invalid parameter or path, an unknown driver, a bad config.yml.
    InvalidInput,
    /// Nothing is stored at the path.
    NotFound,
    /// The storage backend failed (or a driver executable did).
    Backend,
    /// The driver does not offer the operation.
    Unsupported,
    /// The operation clashes with what is stored (a file where a directory is, or below a file).
    Conflict,
    /// A copy differs from its source (`cp --verify`).
    Mismatch,
    /// The driver failed a case of the conformance suite (`check`).
    CheckFailed,
    /// Ctrl-C.
    Interrupted,
}

impl Class {
    /// The process exit code of this class.
    pub(crate) fn code(self) -> u8 {
        match self {
            Class::Local => 1,
            Class::InvalidInput => 2,
            Class::NotFound => 3,
            Class::Backend => 4,
            Class::Unsupported => 5,
            Class::Conflict => 6,
            Class::Mismatch => 7,
            Class::CheckFailed => 8,
            Class::Interrupted => 130,
        }
    }

    /// The class of a driver error.
    pub(crate) fn of(err: &Error) -> Class {
        match err {
            Error::PathNotFound { .. } => Class::NotFound,
            Error::InvalidPath { .. } | Error::InvalidParameter { .. } => Class::InvalidInput,
            Error::Unsupported { .. } => Class::Unsupported,
            Error::Conflict { .. } => Class::Conflict,
            // `Backend`, `WriterFinished`, and whatever later versions add.
            _ => Class::Backend,
        }
    }
}

/// The exit codes as `--help` lists them.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    a local file, stdin or stdout could not be read or written
  2    invalid input: bad arguments, an invalid parameter or path, an unknown driver,
       an unreadable or invalid config.yml, a directory where a file is expected
       (cat DIR, rm DIR without -r)
  3    not found: nothing is stored at the path
  4    backend failure: the storage service or the driver executable failed
  5    unsupported: the driver does not offer the operation (e.g. url on filesystem)
  6    conflict: a file is where a directory must be, or the other way round
  7    mismatch: cp --verify found a copy whose size or SHA-256 differs from its source
  8    check failed: the driver broke a rule of the contract in a case of check
  130  interrupted (Ctrl-C); a put in progress is cancelled, a cp's writers are closed
       (a rerun resumes them)";

/// A failure of a command: its class and the one line that describes it.
#[derive(Debug)]
pub(crate) struct CliError {
    class: Class,
    message: String,
    /// Writing to stdout failed because its reader went away (`| head`): not worth a message.
    broken_pipe: bool,
}

impl CliError {
    /// A failure of `class` described by `message`.
    pub(crate) fn new(class: Class, message: impl Into<String>) -> Self {
        CliError {
            class,
            message: one_line(&message.into()),
            broken_pipe: false,
        }
    }

    /// Invalid input described by `message`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(Class::InvalidInput, message)
    }

    /// The process was interrupted.
    pub(crate) fn interrupted() -> Self {
        Self::new(Class::Interrupted, "interrupted")
    }

    /// A local I/O failure while doing `what` (e.g. `reading /tmp/layer.tar`).
    pub(crate) fn local(what: impl fmt::Display, err: &io::Error) -> Self {
        CliError {
            class: Class::Local,
            message: one_line(&format!("{what}: {err}")),
            broken_pipe: err.kind() == io::ErrorKind::BrokenPipe,
        }
    }

    /// A failure writing to stdout.
    pub(crate) fn stdout(err: &io::Error) -> Self {
        Self::local("writing to stdout", err)
    }

    /// The class of the failure.
    pub(crate) fn class(&self) -> Class {
        self.class
    }

    /// True when stdout was closed by its reader: the process ends quietly with code 0, as
    /// `registry-storage cat PATH | head` should.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        self.broken_pipe
    }
}

/// `message` on one line: a message that spans lines (an external driver's last stderr lines)
/// has its lines joined by spaces.
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    lines.join(" ")
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for CliError {
    fn from(err: Error) -> Self {
        Self::new(Class::of(&err), err.to_string())
    }
}

impl From<FactoryError> for CliError {
    fn from(err: FactoryError) -> Self {
        match err {
            FactoryError::Driver(err) => err.into(),
            FactoryError::UnknownDriver { .. } => Self::invalid(err.to_string()),
            other => Self::new(Class::Backend, other.to_string()),
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(err: ConfigError) -> Self {
        Self::invalid(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_errors_map_to_their_class() {
        let cases = [
            (Error::path_not_found("filesystem", "/a"), 3),
            (Error::invalid_parameter("s3", "bucket", "required"), 2),
            (Error::unsupported("filesystem", "url_for"), 5),
            (Error::conflict("filesystem", "/a", "a directory"), 6),
            (
                Error::backend(
                    "s3",
                    "stat",
                    Some("/a"),
                    storagedriver::Retry::MayHelp,
                    "boom",
                ),
                4,
            ),
        ];
        for (err, code) in cases {
            let message = err.to_string();
            let cli = CliError::from(err);
            assert_eq!(cli.class().code(), code, "{message}");
            assert_eq!(
                cli.to_string(),
                message,
                "printed with Display, as the library words it"
            );
        }
    }

    #[test]
    fn unknown_driver_is_invalid_input_and_names_the_executable() {
        let err = FactoryError::UnknownDriver {
            name: "nosuch".into(),
            registered: vec!["filesystem".into()],
            executable: "registry-storage-nosuch".into(),
            searched: "PATH".into(),
        };
        let cli = CliError::from(err);
        assert_eq!(cli.class(), Class::InvalidInput);
        assert!(cli.to_string().contains("registry-storage-nosuch"), "{cli}");
    }

    #[test]
    fn messages_are_one_line() {
        let err = CliError::new(
            Class::Backend,
            "broken: spawn x: exited; its last stderr lines:\n    first\n\n    second\n",
        );
        assert_eq!(
            err.to_string(),
            "broken: spawn x: exited; its last stderr lines: first second"
        );
    }

    #[test]
    fn broken_pipe_is_recognised() {
        let err = io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(CliError::stdout(&err).is_broken_pipe());
        let err = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(!CliError::local("reading x", &err).is_broken_pipe());
    }
}
