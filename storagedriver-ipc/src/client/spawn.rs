//! Starting a driver server and shaking hands with it: [`SpawnOptions`], the child process
//! and its socket, `HELLO` and `WELCOME`, and the start of the connection's tasks.

use crate::ids::IdMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use storagedriver::{Parameters, Result};
use tokio::sync::OnceCell;

use super::connection::{Conn, Pending, exit_watch, liveness_loop, read_loop};
use super::driver::{Client, IpcDriver};
use super::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_LIVENESS_TIMEOUT, SETTLE};
use crate::child::ChildHandle;
use crate::error::{Failure, IpcError};
use crate::flow::Flow;
use crate::frame::FrameType;
use crate::io::{BoxWrite, FrameReader, Outbox, ReadEnd, ReadHalf, split_stream};
use crate::wire::{self};
use crate::{PARAMETERS_ENV, PROTOCOL_VERSION, SOCKET_ENV};

/// How to start a driver server; see [`IpcDriver::spawn_with`].
///
/// ```
/// use std::time::Duration;
/// use storagedriver_ipc::SpawnOptions;
///
/// let options = SpawnOptions::new("filesystem", "/usr/local/bin/registry-storage-filesystem")
///     .parameter("rootdirectory", "/srv/registry")
///     .liveness_timeout(Duration::from_secs(30));
/// assert_eq!(options.name, "filesystem");
/// assert_eq!(options.connect_timeout, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SpawnOptions {
    /// The driver's name as asked for; used in errors until the server's `WELCOME` gives its
    /// own, and in the `[registry-storage-<name> pid N]` prefix of its stderr lines.
    pub name: String,
    /// The executable to run.
    pub executable: PathBuf,
    /// The driver's parameters, passed as a JSON object in the environment variable
    /// [`crate::PARAMETERS_ENV`] (not on the command line, which other users can read).
    pub parameters: Parameters,
    /// No frame at all from the server for this long and it is taken as hung: killed, and
    /// every call fails. 10 s by default.
    pub liveness_timeout: Duration,
    /// How long the server has to connect after it was started. 10 s by default.
    pub connect_timeout: Duration,
}

impl SpawnOptions {
    /// Options for running `executable` as the driver `name`, without parameters.
    pub fn new(name: impl Into<String>, executable: impl Into<PathBuf>) -> SpawnOptions {
        SpawnOptions {
            name: name.into(),
            executable: executable.into(),
            parameters: Parameters::new(),
            liveness_timeout: DEFAULT_LIVENESS_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Sets all parameters.
    pub fn parameters(mut self, parameters: Parameters) -> SpawnOptions {
        self.parameters = parameters;
        self
    }

    /// Sets one parameter.
    pub fn parameter(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> SpawnOptions {
        self.parameters.insert(key.into(), value.into());
        self
    }

    /// Sets [`SpawnOptions::liveness_timeout`].
    pub fn liveness_timeout(mut self, timeout: Duration) -> SpawnOptions {
        self.liveness_timeout = timeout;
        self
    }

    /// Sets [`SpawnOptions::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> SpawnOptions {
        self.connect_timeout = timeout;
        self
    }
}

pub(super) async fn spawn_inner(options: SpawnOptions) -> Result<IpcDriver> {
    let name = options.name.clone();
    let program = format!("registry-storage-{name}");
    let executable = options.executable.display().to_string();
    let fail = |failure: Failure, child: Option<&ChildHandle>| {
        IpcError {
            failure,
            child: child.map(ChildHandle::report),
        }
        .into_error(&name, "spawn", Some(&executable))
    };
    let dir = tempfile::Builder::new()
        .prefix("registry-storage-ipc-")
        .tempdir()
        .map_err(|e| {
            fail(
                Failure::Spawn(format!("cannot create a socket directory: {e}")),
                None,
            )
        })?;
    restrict(dir.path()).map_err(|e| {
        fail(
            Failure::Spawn(format!("cannot restrict {}: {e}", dir.path().display())),
            None,
        )
    })?;
    let socket = dir.path().join("ipc.sock");
    let listener = tokio::net::UnixListener::bind(&socket).map_err(|e| {
        fail(
            Failure::Spawn(format!("cannot listen on {}: {e}", socket.display())),
            None,
        )
    })?;
    let params = serde_json::to_string(&options.parameters).map_err(|e| {
        fail(
            Failure::Spawn(format!("parameters are not JSON: {e}")),
            None,
        )
    })?;
    let mut command = tokio::process::Command::new(&options.executable);
    // Through the environment, never the command line: other users can read a command line.
    command.env(PARAMETERS_ENV, params).env(SOCKET_ENV, &socket);
    let child = ChildHandle::start(command, program)
        .map_err(|e| fail(Failure::Spawn(e.to_string()), None))?;
    tracing::debug!(pid = ?child.pid(), "driver server started");
    let accepted = tokio::select! {
        accepted = listener.accept() => accepted.map_err(|e| Failure::Accept(e.to_string())),
        () = child.exited() => Err(Failure::ExitedBeforeConnecting),
        () = tokio::time::sleep(options.connect_timeout) => Err(Failure::ConnectTimeout(options.connect_timeout)),
    };
    drop(listener);
    drop(dir);
    let stream = match accepted {
        Ok((stream, _)) => stream,
        Err(failure) => {
            child.kill();
            child.settle(SETTLE).await;
            return Err(fail(failure, Some(&child)));
        }
    };
    let (read, write) = split_stream(stream);
    start(
        &name,
        read,
        write,
        Some((child, executable)),
        options.liveness_timeout,
    )
    .await
}

#[cfg(unix)]
pub(super) fn restrict(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
pub(super) fn restrict(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Does the handshake and starts the connection's tasks.
/// `child` is the spawned server and its executable's path (named in errors).
pub(super) async fn start(
    name: &str,
    read: ReadHalf,
    write: BoxWrite,
    child: Option<(ChildHandle, String)>,
    liveness_timeout: Duration,
) -> Result<IpcDriver> {
    let (child, executable) = match child {
        Some((child, executable)) => (Some(child), Some(executable)),
        None => (None, None),
    };
    let (out, writer_task) = Outbox::new(write);
    let writer_task = tokio::spawn(writer_task);
    let mut reader = FrameReader::new(read);
    let welcome = handshake(name, &mut reader, &out, child.as_ref(), liveness_timeout).await;
    let welcome = match welcome {
        Ok(w) => w,
        Err(failure) => {
            // The server broke the protocol or speaks another major: say so before closing,
            // as after the handshake.
            let fatal = match &failure {
                Failure::Protocol(message) => Some(message.clone()),
                Failure::VersionMismatch { .. } => Some(failure.to_string()),
                _ => None,
            };
            if let Some(message) = fatal {
                let fatal = wire::Fatal::payload(&message);
                let _ = out.send(FrameType::Fatal, 0, fatal.into());
                out.drain(Duration::from_millis(100)).await;
            }
            out.close("the handshake failed");
            drop(reader);
            if let Some(child) = &child {
                child.shutdown(Duration::from_millis(500));
                child.settle(Duration::from_secs(2)).await;
            }
            writer_task.abort();
            return Err(IpcError {
                failure,
                child: child.as_ref().map(ChildHandle::report),
            }
            .into_error(name, "handshake", executable.as_deref()));
        }
    };
    tracing::debug!(driver = %welcome.driver, version = %welcome.version, "connected to the driver server");
    let minor = wire::negotiated_minor(PROTOCOL_VERSION, &welcome.version);
    let conn = Arc::new(Conn {
        name: welcome.driver,
        flow: Flow::for_minor(minor),
        minor,
        out,
        pending: Mutex::new(Pending {
            entries: IdMap::default(),
            closed: false,
        }),
        next_id: AtomicU64::new(1),
        dead: OnceCell::new(),
        child: child.map(Arc::new),
        frames_in: AtomicU64::new(0),
    });
    let reader_task = tokio::spawn(read_loop(Arc::clone(&conn), reader));
    let liveness = tokio::spawn(liveness_loop(Arc::downgrade(&conn), liveness_timeout));
    let mut tasks = vec![liveness, writer_task];
    if let Some(child) = &conn.child {
        let read = reader_task.abort_handle();
        tasks.push(tokio::spawn(exit_watch(
            Arc::downgrade(&conn),
            Arc::clone(child),
            read,
        )));
    }
    tasks.push(reader_task);
    Ok(IpcDriver {
        client: Arc::new(Client {
            conn,
            capabilities: welcome.capabilities,
            server_version: welcome.version,
            tasks,
        }),
    })
}

/// Sends `HELLO` and reads `WELCOME`, which must name the driver `name`.
pub(super) async fn handshake(
    name: &str,
    reader: &mut FrameReader,
    out: &Outbox,
    child: Option<&ChildHandle>,
    timeout: Duration,
) -> std::result::Result<wire::Welcome, Failure> {
    let hello = wire::Hello {
        protocol: wire::PROTOCOL_NAME.into(),
        version: PROTOCOL_VERSION.into(),
    };
    let hello = serde_json::to_vec(&hello).map_err(|e| Failure::Protocol(e.to_string()))?;
    out.send(FrameType::Hello, 0, hello.into())
        .map_err(|e| Failure::Io(e.0))?;
    let exited = async {
        match child {
            Some(c) => c.exited().await,
            None => std::future::pending().await,
        }
    };
    let frame = tokio::select! {
        frame = tokio::time::timeout(timeout, reader.next()) => match frame {
            Err(_) => return Err(Failure::HandshakeTimeout(timeout)),
            Ok(Ok(frame)) => frame,
            Ok(Err(ReadEnd::Eof)) => return Err(Failure::Closed),
            Ok(Err(ReadEnd::Frame(e))) => return Err(Failure::Protocol(e.to_string())),
            Ok(Err(e)) => return Err(Failure::Io(e.to_string())),
        },
        () = exited => return Err(Failure::ServerExited),
    };
    match frame.kind {
        FrameType::Welcome => {
            let welcome: wire::Welcome = serde_json::from_slice(&frame.payload)
                .map_err(|e| Failure::Protocol(format!("WELCOME is not understood: {e}")))?;
            if !wire::compatible(PROTOCOL_VERSION, &welcome.version) {
                return Err(Failure::VersionMismatch {
                    client: PROTOCOL_VERSION.to_owned(),
                    server: welcome.version,
                });
            }
            if welcome.driver != name {
                // `registry-storage-<name>` serves the driver `<name>`: another name means
                // another executable than the one asked for.
                return Err(Failure::Protocol(format!(
                    "WELCOME names the driver {:?}, but the driver asked for is {name:?}",
                    welcome.driver
                )));
            }
            Ok(welcome)
        }
        FrameType::Fatal => Err(Failure::Fatal(wire::Fatal::message(&frame.payload))),
        other => Err(Failure::Protocol(format!(
            "expected WELCOME, got {}",
            other.name()
        ))),
    }
}
