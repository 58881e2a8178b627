//! The errors of the IPC layer itself: the connection or the child process failed.

use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

use storagedriver::{Error, Retry};

/// Why a connection to a driver server is unusable.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// The executable could not be started.
    Spawn(String),
    /// The server exited before it connected.
    ExitedBeforeConnecting,
    /// The server did not connect within the connect timeout.
    ConnectTimeout(Duration),
    /// Accepting the server's connection failed.
    Accept(String),
    /// No `WELCOME` within the timeout.
    HandshakeTimeout(Duration),
    /// The versions' majors differ.
    VersionMismatch { client: String, server: String },
    /// The server closed the connection.
    Closed,
    /// The server process exited.
    ServerExited,
    /// No frame at all from the server for the liveness timeout.
    Liveness(Duration),
    /// The server broke the protocol.
    Protocol(String),
    /// The server sent `FATAL`.
    Fatal(String),
    /// Reading or writing the socket failed.
    Io(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Spawn(e) => write!(f, "cannot start the driver server: {e}"),
            Failure::ExitedBeforeConnecting => {
                f.write_str("the driver server exited before it connected")
            }
            Failure::ConnectTimeout(d) => {
                write!(f, "the driver server did not connect within {d:?}")
            }
            Failure::Accept(e) => write!(f, "accepting the driver server's connection failed: {e}"),
            Failure::HandshakeTimeout(d) => {
                write!(f, "the driver server did not answer HELLO within {d:?}")
            }
            Failure::VersionMismatch { client, server } => write!(
                f,
                "incompatible IPC protocol versions: client speaks {client}, server speaks {server}"
            ),
            Failure::Closed => f.write_str("the driver server closed the connection"),
            Failure::ServerExited => f.write_str("the driver server exited"),
            Failure::Liveness(d) => write!(
                f,
                "the driver server sent nothing for {d:?} and was taken as hung (killed)"
            ),
            Failure::Protocol(m) => write!(f, "IPC protocol error: {m}"),
            Failure::Fatal(m) => write!(f, "the driver server reported a fatal error: {m}"),
            Failure::Io(m) => write!(f, "IPC connection failed: {m}"),
        }
    }
}

/// What is known about the child process when an error is made.
#[derive(Debug, Clone)]
pub(crate) struct ChildReport {
    /// `registry-storage-<name>`.
    pub(crate) program: String,
    pub(crate) pid: Option<u32>,
    pub(crate) status: Option<ExitStatus>,
    pub(crate) stderr: Vec<String>,
}

impl fmt::Display for ChildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program)?;
        if let Some(pid) = self.pid {
            write!(f, " (pid {pid})")?;
        }
        match &self.status {
            Some(status) => write!(f, " exited with {status}")?,
            None => f.write_str(" has not exited")?,
        }
        if self.stderr.is_empty() {
            f.write_str("; it wrote nothing to stderr")
        } else {
            f.write_str("; its last stderr lines:")?;
            for line in &self.stderr {
                write!(f, "\n    {line}")?;
            }
            Ok(())
        }
    }
}

/// The source of the [`Error::Backend`] errors the IPC layer makes.
#[derive(Debug, Clone)]
pub(crate) struct IpcError {
    pub(crate) failure: Failure,
    pub(crate) child: Option<ChildReport>,
}

impl fmt::Display for IpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.failure)?;
        if let Some(child) = &self.child {
            write!(f, "; {child}")?;
        }
        Ok(())
    }
}

impl std::error::Error for IpcError {}

impl IpcError {
    /// The driver error carrying this failure.
    pub(crate) fn into_error(self, driver: &str, operation: &str, path: Option<&str>) -> Error {
        Error::Backend {
            driver: driver.to_owned(),
            operation: operation.to_owned(),
            path: path.map(str::to_owned),
            retry: Retry::Useless,
            source: Box::new(self),
        }
    }
}
