//! The client: a [`StorageDriver`] whose calls go to a driver server over the IPC protocol.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::Stream;
use serde::de::DeserializeOwned;
use storagedriver::error::Message;
use storagedriver::{
    ByteStream, Capabilities, Error, FileInfo, FileWriter, Parameters, Result, Retry,
    StorageDriver, UrlOptions, WalkFn, WalkOptions, WriterState, path,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OnceCell, mpsc};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::child::ChildHandle;
use crate::error::{Failure, IpcError};
use crate::frame::{FrameType, MAX_PAYLOAD, MAX_RESPONSE};
use crate::io::{
    BoxRead, BoxWrite, Consumed, Flow, FrameReader, Inflow, Outbox, ReadEnd, Window,
    credit_payload, parse_credit, shrink_map, split_stream,
};
use crate::wire::{self, FileInfoWire, Request, SizeWire};
use crate::{PARAMETERS_ENV, PROTOCOL_VERSION, SOCKET_ENV};

/// How long a dropped client lets its server exit by itself before killing it.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The default liveness timeout: no frame for this long and the server is taken as hung.
pub const DEFAULT_LIVENESS_TIMEOUT: Duration = Duration::from_secs(10);

/// The default time a spawned server has to connect.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a failure waits for the child's exit status and last stderr lines.
const SETTLE: Duration = Duration::from_millis(700);

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

/// A [`StorageDriver`] whose calls go over the IPC protocol to a driver server, usually a
/// child process (`registry-storage-<name>`).
///
/// Clones share one connection and one child. When the last clone (and the last stream or
/// writer made from it) is dropped, the connection closes, the child gets a short grace period
/// to exit and is then killed and reaped.
///
/// Errors of the server's driver come back as the same [`Error`] variants with the same
/// fields. Failures of the IPC layer itself (the child exited, the connection closed, a
/// timeout, a protocol error) are [`Error::Backend`] errors that name the driver, the child's
/// exit status and its last stderr lines; once the connection failed every later call fails
/// the same way at once.
///
/// ```no_run
/// # async fn demo() -> storagedriver::Result<()> {
/// use std::path::Path;
/// use storagedriver::{Parameters, StorageDriver};
/// use storagedriver_ipc::IpcDriver;
///
/// let driver = IpcDriver::spawn(
///     "inmemory",
///     Path::new("/usr/local/bin/registry-storage-inmemory"),
///     &Parameters::new(),
/// )
/// .await?;
/// driver.put_content("/a", "hello".into()).await?;
/// assert_eq!(driver.get_content("/a").await?, "hello");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct IpcDriver {
    client: Arc<Client>,
}

impl fmt::Debug for IpcDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpcDriver")
            .field("name", &self.client.conn.name)
            .field("server_version", &self.client.server_version)
            .field("child_pid", &self.child_pid())
            .finish_non_exhaustive()
    }
}

/// What the clones of one driver share; dropping it shuts the connection down.
struct Client {
    conn: Arc<Conn>,
    capabilities: Capabilities,
    server_version: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.conn.out.close("the driver was dropped");
        self.conn.close_pending();
        if let Some(child) = &self.conn.child {
            child.shutdown(SHUTDOWN_GRACE);
        }
    }
}

impl IpcDriver {
    /// Starts `executable` as the driver server `name` with `parameters`, and connects to it.
    ///
    /// The parameters go as a JSON object in the environment variable [`PARAMETERS_ENV`]
    /// (readable by this user only, unlike argument 1) and the socket path in
    /// [`SOCKET_ENV`]; stdin is `/dev/null`, stdout is inherited, and each line of the child's
    /// stderr is echoed to ours prefixed with `[registry-storage-<name> pid N] ` (the last 20
    /// are kept for errors). Fails promptly if the child exits before it connects, or after
    /// the connect timeout (10 s).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] naming `name`, with the child's exit status and last stderr lines
    /// when it failed to start, connect or agree on a version.
    pub async fn spawn(
        name: &str,
        executable: &Path,
        parameters: &Parameters,
    ) -> Result<IpcDriver> {
        IpcDriver::spawn_with(SpawnOptions::new(name, executable).parameters(parameters.clone()))
            .await
    }

    /// Like [`IpcDriver::spawn`], with every option.
    ///
    /// # Errors
    ///
    /// As [`IpcDriver::spawn`].
    pub async fn spawn_with(options: SpawnOptions) -> Result<IpcDriver> {
        let span = tracing::info_span!("ipc_spawn", driver = %options.name, executable = %options.executable.display());
        spawn_inner(options).instrument(span).await
    }

    /// A client over an already-connected stream, without a child process: for tests and
    /// in-process use. Does the handshake.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] naming `name` when the handshake fails (closed connection, version
    /// mismatch, no answer within the liveness timeout).
    pub async fn connect<S>(name: &str, stream: S) -> Result<IpcDriver>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (read, write) = split_stream(stream);
        start(name, read, write, None, DEFAULT_LIVENESS_TIMEOUT)
            .instrument(tracing::info_span!("ipc_connect", driver = %name))
            .await
    }

    /// The child process's id, when the driver runs in one.
    pub fn child_pid(&self) -> Option<u32> {
        self.client.conn.child.as_ref().and_then(|c| c.pid())
    }

    /// The protocol version the server announced in `WELCOME`.
    pub fn server_version(&self) -> &str {
        &self.client.server_version
    }

    fn conn(&self) -> &Arc<Conn> {
        &self.client.conn
    }
}

async fn spawn_inner(options: SpawnOptions) -> Result<IpcDriver> {
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
fn restrict(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn restrict(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Does the handshake and starts the connection's tasks.
/// `child` is the spawned server and its executable's path (named in errors).
async fn start(
    name: &str,
    read: BoxRead,
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
                let fatal = serde_json::json!({ "message": message }).to_string();
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
            entries: HashMap::new(),
            closed: false,
        }),
        next_id: AtomicU64::new(1),
        dead: OnceCell::new(),
        child: child.map(Arc::new),
        epoch: Instant::now(),
        last_frame_ms: AtomicU64::new(0),
    });
    let reader_task = tokio::spawn(read_loop(Arc::clone(&conn), reader));
    let liveness = tokio::spawn(liveness_loop(Arc::downgrade(&conn), liveness_timeout));
    Ok(IpcDriver {
        client: Arc::new(Client {
            conn,
            capabilities: welcome.capabilities.into(),
            server_version: welcome.version,
            tasks: vec![reader_task, liveness, writer_task],
        }),
    })
}

/// Sends `HELLO` and reads `WELCOME`, which must name the driver `name`.
async fn handshake(
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
        FrameType::Fatal => Err(Failure::Fatal(fatal_message(&frame.payload))),
        other => Err(Failure::Protocol(format!(
            "expected WELCOME, got {}",
            other.name()
        ))),
    }
}

fn fatal_message(payload: &[u8]) -> String {
    serde_json::from_slice::<wire::Fatal>(payload)
        .map(|f| f.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(payload).into_owned())
}

/// What the reader task hands a call.
#[derive(Debug)]
enum Event {
    Response(Bytes),
    Data(Bytes),
    End,
    Reset(Bytes),
    WalkEntry(Bytes),
}

/// A request in flight, as the reader task sees it.
struct Entry {
    tx: mpsc::UnboundedSender<Event>,
    /// For streams the client sends (put_content, writer handles): credit goes here.
    window: Option<Arc<Window>>,
    /// For streams the client receives (get_content, reader).
    inflow: Option<Inflow>,
    walk: bool,
    /// A walk waits for the server's next `WALK_ENTRY` (false while the client owes the
    /// `WALK_CONTROL` of the last one: an entry then breaks the protocol).
    walk_turn: bool,
    /// The `RESPONSE_PART` pieces received so far of a response longer than one frame.
    parts: Option<Parts>,
}

/// The pieces of a response that came in `RESPONSE_PART` frames, kept as they arrived and
/// joined once, when the final `RESPONSE` comes.
#[derive(Default)]
struct Parts {
    pieces: Vec<Bytes>,
    len: usize,
}

impl Parts {
    /// Adds a piece; false when the response would exceed [`MAX_RESPONSE`].
    fn push(&mut self, piece: Bytes) -> bool {
        if piece.len() > MAX_RESPONSE - self.len {
            return false;
        }
        self.len += piece.len();
        self.pieces.push(piece);
        true
    }

    /// The whole response: the pieces, then `last`.
    fn join(self, last: &[u8]) -> Bytes {
        let mut whole = BytesMut::with_capacity(self.len + last.len());
        for piece in &self.pieces {
            whole.extend_from_slice(piece);
        }
        whole.extend_from_slice(last);
        whole.freeze()
    }
}

struct Pending {
    entries: HashMap<u64, Entry>,
    closed: bool,
}

/// One connection: shared by the client, its calls, streams and writers, and its tasks.
struct Conn {
    /// The driver's name (from `WELCOME`), used in every error.
    name: String,
    /// The flow-control rules agreed in the handshake.
    flow: Flow,
    /// The minor version whose rules apply (the lower of the two peers').
    minor: u32,
    out: Arc<Outbox>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
    dead: OnceCell<IpcError>,
    child: Option<Arc<ChildHandle>>,
    epoch: Instant,
    last_frame_ms: AtomicU64,
}

/// How the reader handles a frame.
enum Dispatch {
    Ok,
    Protocol(String),
    Fatal(String),
}

impl Conn {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        shrink_map(&mut pending.entries);
        pending
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_frame_ms.store(ms, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let last = self.last_frame_ms.load(Ordering::Relaxed);
        self.epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }

    /// The error a call gets once the connection is unusable.
    fn dead_error(&self, operation: &str, path: Option<&str>) -> Error {
        let err = match self.dead.get() {
            Some(e) => e.clone(),
            None => IpcError {
                failure: self.out.error().map_or(Failure::Closed, Failure::Io),
                child: self.child.as_ref().map(|c| c.report()),
            },
        };
        err.into_error(&self.name, operation, path)
    }

    /// Marks the connection as failed (the first failure wins), waits briefly for the child's
    /// exit status and stderr, then fails every pending call.
    async fn fail(self: Arc<Self>, failure: Failure) {
        let conn = Arc::clone(&self);
        self.dead
            .get_or_init(|| async move {
                tracing::warn!(driver = %conn.name, %failure, "IPC connection failed");
                if let Failure::Protocol(m) = &failure {
                    let fatal = serde_json::json!({ "message": m }).to_string();
                    let _ = conn.out.send(FrameType::Fatal, 0, fatal.into());
                    conn.out.drain(Duration::from_millis(100)).await;
                }
                conn.out.close(&failure.to_string());
                if let Some(child) = &conn.child {
                    match failure {
                        Failure::Liveness(_) => child.kill(),
                        _ => child.shutdown(SHUTDOWN_GRACE),
                    }
                    child.settle(SETTLE).await;
                }
                // A closed or broken connection of a server that exited: say that it exited.
                let exited = conn.child.as_ref().is_some_and(|c| c.status().is_some());
                let failure = match failure {
                    Failure::Closed | Failure::Io(_) if exited => Failure::ServerExited,
                    other => other,
                };
                IpcError {
                    failure,
                    child: conn.child.as_ref().map(|c| c.report()),
                }
            })
            .await;
        self.close_pending();
    }

    fn fail_in_background(self: &Arc<Self>, failure: Failure) {
        if self.dead.initialized() {
            return;
        }
        let conn = Arc::clone(self);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(conn.fail(failure));
        }
    }

    /// Fails every pending call (their channels close) and refuses new ones.
    fn close_pending(&self) {
        let entries = {
            let mut p = self.lock();
            p.closed = true;
            std::mem::take(&mut p.entries)
        };
        for entry in entries.into_values() {
            if let Some(w) = &entry.window {
                w.close();
            }
        }
    }

    fn dispatch(&self, frame: crate::frame::Frame) -> Dispatch {
        let id = frame.id;
        let kind = frame.kind;
        match kind {
            FrameType::Pong => return Dispatch::Ok,
            FrameType::Fatal => return Dispatch::Fatal(fatal_message(&frame.payload)),
            FrameType::Response
            | FrameType::ResponsePart
            | FrameType::Data
            | FrameType::End
            | FrameType::Reset
            | FrameType::WalkEntry
            | FrameType::Credit => {}
            FrameType::Hello
            | FrameType::Welcome
            | FrameType::Request
            | FrameType::WalkControl
            | FrameType::Ping => {
                return Dispatch::Protocol(format!(
                    "unexpected {} frame from the server",
                    kind.name()
                ));
            }
        }
        let mut p = self.lock();
        let Some(entry) = p.entries.get_mut(&id) else {
            if id == 0 || id >= self.next_id.load(Ordering::Relaxed) {
                return Dispatch::Protocol(format!(
                    "{} frame for id {id}, which the client never used",
                    kind.name()
                ));
            }
            // A late frame for a call that is over (its caller went away): ignore it.
            return Dispatch::Ok;
        };
        let event = match kind {
            FrameType::Response => match entry.parts.take() {
                None => Event::Response(frame.payload),
                Some(parts) => {
                    if frame.payload.len() > MAX_RESPONSE - parts.len {
                        return Dispatch::Protocol(format!(
                            "the response to request {id} exceeds {MAX_RESPONSE} bytes"
                        ));
                    }
                    Event::Response(parts.join(&frame.payload))
                }
            },
            FrameType::ResponsePart => {
                let parts = entry.parts.get_or_insert_with(Parts::default);
                if !parts.push(frame.payload) {
                    return Dispatch::Protocol(format!(
                        "the response to request {id} exceeds {MAX_RESPONSE} bytes"
                    ));
                }
                return Dispatch::Ok;
            }
            FrameType::Data => {
                let Some(inflow) = entry.inflow.as_mut() else {
                    return Dispatch::Protocol(format!(
                        "DATA frame for request {id}, which has no stream from the server"
                    ));
                };
                if frame.payload.is_empty() {
                    return Dispatch::Protocol(format!("empty DATA frame on stream {id}"));
                }
                if !inflow.receive(frame.payload.len()) {
                    return Dispatch::Protocol(format!("stream {id} overran its window"));
                }
                Event::Data(frame.payload)
            }
            FrameType::End | FrameType::Reset => {
                if entry.inflow.is_none() {
                    // A server never ends or resets a stream the client sends: it answers.
                    return Dispatch::Protocol(format!(
                        "{} frame for request {id}, which has no stream from the server",
                        kind.name()
                    ));
                }
                if kind == FrameType::End {
                    Event::End
                } else {
                    Event::Reset(frame.payload)
                }
            }
            FrameType::WalkEntry => {
                if !entry.walk {
                    return Dispatch::Protocol(format!(
                        "WALK_ENTRY frame for request {id}, which is not a walk"
                    ));
                }
                if !entry.walk_turn {
                    return Dispatch::Protocol(format!(
                        "WALK_ENTRY frame for walk {id} before the client's WALK_CONTROL for the previous entry"
                    ));
                }
                entry.walk_turn = false;
                Event::WalkEntry(frame.payload)
            }
            FrameType::Credit => {
                let Some(n) = parse_credit(&frame.payload) else {
                    return Dispatch::Protocol(format!(
                        "CREDIT frame of {} bytes (not 4)",
                        frame.payload.len()
                    ));
                };
                if let Some(w) = &entry.window {
                    w.grant(u64::from(n));
                }
                return Dispatch::Ok;
            }
            _ => return Dispatch::Ok,
        };
        // A closed receiver means the caller went away; its guard removes the entry.
        let _ = entry.tx.send(event);
        Dispatch::Ok
    }
}

/// Reads frames and hands them to the calls, until the connection ends.
async fn read_loop(conn: Arc<Conn>, mut reader: FrameReader) {
    let child = conn.child.clone();
    let exited = async move {
        match child {
            Some(c) => c.exited().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(exited);
    conn.touch();
    let failure = loop {
        let frame = tokio::select! {
            frame = reader.next() => frame,
            () = &mut exited => break Failure::ServerExited,
        };
        match frame {
            Ok(frame) => {
                conn.touch();
                match conn.dispatch(frame) {
                    Dispatch::Ok => {}
                    Dispatch::Protocol(m) => break Failure::Protocol(m),
                    Dispatch::Fatal(m) => break Failure::Fatal(m),
                }
            }
            Err(ReadEnd::Eof) => break Failure::Closed,
            Err(ReadEnd::Io(e)) => break Failure::Io(format!("reading failed: {e}")),
            Err(ReadEnd::Frame(e)) => break Failure::Protocol(e.to_string()),
        }
    };
    drop(reader);
    conn.fail(failure).await;
}

/// Pings the server and takes it as hung when nothing at all arrives for `timeout`.
async fn liveness_loop(conn: Weak<Conn>, timeout: Duration) {
    let period = (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(conn) = conn.upgrade() else { return };
        if conn.dead.initialized() {
            return;
        }
        if conn.silent_for() > timeout {
            conn.fail(Failure::Liveness(timeout)).await;
            return;
        }
        let _ = conn.out.send(FrameType::Ping, 0, Bytes::new());
    }
}

/// A request on its way: its id, its events, and cleanup when the caller goes away.
struct Call {
    conn: Arc<Conn>,
    id: u64,
    op: &'static str,
    path: Option<String>,
    rx: mpsc::UnboundedReceiver<Event>,
    /// The server may still send on the stream: reset it if the call is dropped.
    incoming_open: bool,
    /// The client has not finished its stream: reset it if the call is dropped.
    outgoing_open: bool,
    /// A walk waits for the client: reset it if the call is dropped.
    walk_open: bool,
}

#[derive(Clone, Copy)]
enum CallKind {
    Plain,
    /// The server sends a stream on the request id.
    Incoming,
    /// The client sends a stream on the request id (put_content, writer).
    Outgoing,
    Walk,
}

impl Call {
    /// Registers a new request; fails at once on a dead connection.
    fn new(
        conn: &Arc<Conn>,
        op: &'static str,
        path: Option<&str>,
        kind: CallKind,
    ) -> Result<(Call, Option<Arc<Window>>, Option<Consumed>)> {
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        if id > wire::MAX_EXACT {
            // Not reached in practice (2^53 requests); ids stay exact in every JSON parser.
            return Err(Error::backend(
                &conn.name,
                op,
                path,
                Retry::Useless,
                Message("the connection has used up its request ids (2^53 - 1)".to_owned()),
            ));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let flow = conn.flow;
        let window =
            matches!(kind, CallKind::Outgoing).then(|| Window::new(flow.client_stream_window()));
        let (inflow, consumed) = if matches!(kind, CallKind::Incoming) {
            let initial = flow.server_stream_window();
            let (inflow, granted) = Inflow::new(initial);
            (Some(inflow), Some(Consumed::new(granted, flow, initial)))
        } else {
            (None, None)
        };
        {
            let mut p = conn.lock();
            if p.closed {
                drop(p);
                return Err(conn.dead_error(op, path));
            }
            p.entries.insert(
                id,
                Entry {
                    tx,
                    window: window.clone(),
                    inflow,
                    walk: matches!(kind, CallKind::Walk),
                    walk_turn: true,
                    parts: None,
                },
            );
        }
        Ok((
            Call {
                conn: Arc::clone(conn),
                id,
                op,
                path: path.map(str::to_owned),
                rx,
                incoming_open: matches!(kind, CallKind::Incoming),
                outgoing_open: false,
                walk_open: matches!(kind, CallKind::Walk),
            },
            window,
            consumed,
        ))
    }

    fn error(&self) -> Error {
        self.conn.dead_error(self.op, self.path.as_deref())
    }

    /// Sends a frame on the connection; a closed connection fails the call, once the
    /// failure is settled (so that the error carries the child's exit status).
    async fn send(&self, kind: FrameType, id: u64, payload: Bytes) -> Result<()> {
        match self.conn.out.send(kind, id, payload) {
            Ok(()) => Ok(()),
            Err(closed) => {
                Arc::clone(&self.conn).fail(Failure::Io(closed.0)).await;
                Err(self.error())
            }
        }
    }

    /// Sends without waiting; a failure shows up as the end of the call's events.
    fn try_send(&self, kind: FrameType, id: u64, payload: Bytes) {
        if let Err(closed) = self.conn.out.send(kind, id, payload) {
            self.conn.fail_in_background(Failure::Io(closed.0));
        }
    }

    async fn send_request(&self, request: &Request<'_>) -> Result<()> {
        self.send(FrameType::Request, self.id, request.to_json().into())
            .await
    }

    /// The next event; a closed channel means the connection failed.
    async fn recv(&mut self) -> Result<Event> {
        match self.rx.recv().await {
            Some(event) => Ok(event),
            None => Err(self.error()),
        }
    }

    /// Waits for the `RESPONSE`.
    async fn response(&mut self) -> Result<Bytes> {
        match self.recv().await? {
            Event::Response(payload) => Ok(payload),
            other => Err(self.protocol(format!("expected RESPONSE, got {other:?}"))),
        }
    }

    /// A protocol error: the connection fails, and so does this call.
    fn protocol(&self, message: String) -> Error {
        self.conn
            .fail_in_background(Failure::Protocol(message.clone()));
        IpcError {
            failure: Failure::Protocol(message),
            child: self.conn.child.as_ref().map(|c| c.report()),
        }
        .into_error(&self.conn.name, self.op, self.path.as_deref())
    }

    /// The `ok` value of a response, or its error.
    fn parse<T: DeserializeOwned>(&mut self, payload: &[u8]) -> Result<T> {
        let ok = match wire::parse_response(payload) {
            Ok(Ok(ok)) => ok,
            Ok(Err(error)) => {
                self.incoming_open = false;
                self.outgoing_open = false;
                return Err(wire::error_from_value(
                    error,
                    &self.conn.name,
                    self.op,
                    self.path.as_deref(),
                ));
            }
            Err(e) => return Err(self.protocol(format!("RESPONSE is not understood: {e}"))),
        };
        serde_json::from_value(ok).map_err(|e| {
            self.protocol(format!(
                "the `ok` value of {} is not understood: {e}",
                self.op
            ))
        })
    }

    /// Sends the request and returns the parsed `ok` value.
    async fn run<T: DeserializeOwned>(&mut self, request: &Request<'_>) -> Result<T> {
        self.send_request(request).await?;
        let payload = self.response().await?;
        self.parse(&payload)
    }

    /// The error of a stream that carried another size than its response announced: `got`
    /// bytes (`at_least`: the stream was cut there, more may have followed).
    fn size_mismatch(&self, expected: u64, got: u64, at_least: bool) -> Error {
        let got = if at_least {
            format!("at least {got}")
        } else {
            got.to_string()
        };
        Error::backend(
            &self.conn.name,
            self.op,
            self.path.as_deref(),
            // A file that changed while the server read it, say: the call may succeed again.
            Retry::MayHelp,
            Message(format!(
                "the stream's size differs from the size the driver server announced: expected {expected} bytes, got {got}"
            )),
        )
    }

    /// The error of a `RESET` payload. A server's `RESET` always carries the `ERROR` that
    /// ended its stream: an empty one breaks the protocol.
    fn reset_error(&self, payload: &[u8]) -> Error {
        if payload.is_empty() {
            return self.protocol(format!(
                "the server reset the stream of {} without an ERROR",
                self.op
            ));
        }
        match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(value) => {
                wire::error_from_value(value, &self.conn.name, self.op, self.path.as_deref())
            }
            Err(e) => self.protocol(format!("RESET payload is not JSON: {e}")),
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.conn.lock().entries.remove(&self.id);
        if self.incoming_open || self.outgoing_open || self.walk_open {
            // Best effort: tell the server to stop (or to discard what we sent).
            let _ = self.conn.out.send(FrameType::Reset, self.id, Bytes::new());
        }
    }
}

impl IpcDriver {
    fn call(&self, op: &'static str, path: Option<&str>, kind: CallKind) -> Result<Call> {
        Call::new(self.conn(), op, path, kind).map(|(call, _, _)| call)
    }

    async fn plain<T: DeserializeOwned>(
        &self,
        op: &'static str,
        path: &str,
        request: Request<'_>,
    ) -> Result<T> {
        let mut call = self.call(op, Some(path), CallKind::Plain)?;
        call.run(&request).await
    }
}

#[async_trait]
impl StorageDriver for IpcDriver {
    fn name(&self) -> &str {
        &self.client.conn.name
    }

    fn capabilities(&self) -> Capabilities {
        self.client.capabilities
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path))]
    async fn get_content(&self, path: &str) -> Result<Bytes> {
        path::check(self.name(), path)?;
        let (mut call, _, consumed) =
            Call::new(self.conn(), "get_content", Some(path), CallKind::Incoming)?;
        let mut consumed = consumed.ok_or_else(|| call.error())?;
        call.send_request(&Request::GetContent { path: path.into() })
            .await?;
        // 1.1: the stream's window starts at 0; open it right behind the request, so that the
        // content follows the response without waiting for us.
        if let Some(credit) = consumed.open() {
            call.send(FrameType::Credit, call.id, credit_payload(credit))
                .await?;
        }
        let payload = call.response().await?;
        let size: SizeWire = call.parse(&payload)?;
        if let Err(m) = wire::check_exact("size", size.size) {
            return Err(call.protocol(format!("get_content's response: {m}")));
        }
        // We take the whole content at once: let as much as its size come (up to the cap).
        if let Some(credit) = consumed.widen(size.size) {
            call.send(FrameType::Credit, call.id, credit_payload(credit))
                .await?;
        }
        let mut received: u64 = 0;
        let mut first: Option<Bytes> = None;
        let mut rest: Option<BytesMut> = None;
        loop {
            match call.recv().await? {
                Event::Data(chunk) => {
                    received = received.saturating_add(chunk.len() as u64);
                    if received > size.size {
                        // Dropping the call resets the stream.
                        return Err(call.size_mismatch(size.size, received, true));
                    }
                    // After the last byte only END is due, which needs no credit.
                    if received < size.size {
                        if let Some(credit) = consumed.consume(chunk.len()) {
                            call.send(FrameType::Credit, call.id, credit_payload(credit))
                                .await?;
                        }
                    }
                    match (&mut first, &mut rest) {
                        (None, _) => first = Some(chunk),
                        (Some(head), None) => {
                            // Never trust the announced size for more than a first guess.
                            let cap = usize::try_from(size.size)
                                .unwrap_or(usize::MAX)
                                .min(64 << 20)
                                .max(head.len() + chunk.len());
                            let mut buf = BytesMut::with_capacity(cap);
                            buf.extend_from_slice(head);
                            buf.extend_from_slice(&chunk);
                            rest = Some(buf);
                        }
                        (Some(_), Some(buf)) => buf.extend_from_slice(&chunk),
                    }
                }
                Event::End => {
                    call.incoming_open = false;
                    if received != size.size {
                        return Err(call.size_mismatch(size.size, received, false));
                    }
                    return Ok(match (first, rest) {
                        (_, Some(buf)) => buf.freeze(),
                        (Some(one), None) => one,
                        (None, None) => Bytes::new(),
                    });
                }
                Event::Reset(payload) => {
                    call.incoming_open = false;
                    return Err(call.reset_error(&payload));
                }
                other => return Err(call.protocol(format!("unexpected {other:?} in get_content"))),
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path, len = content.len()))]
    async fn put_content(&self, path: &str, content: Bytes) -> Result<()> {
        path::check(self.name(), path)?;
        let (mut call, window, _) =
            Call::new(self.conn(), "put_content", Some(path), CallKind::Outgoing)?;
        let window = window.ok_or_else(|| call.error())?;
        call.send_request(&Request::PutContent { path: path.into() })
            .await?;
        call.outgoing_open = true;
        let mut offset = 0;
        let mut early = None;
        while offset < content.len() {
            let want = (content.len() - offset).min(MAX_PAYLOAD);
            tokio::select! {
                biased;
                event = call.rx.recv() => match event {
                    Some(Event::Response(payload)) => {
                        early = Some(payload);
                        break;
                    }
                    Some(other) => return Err(call.protocol(format!("unexpected {other:?} in put_content"))),
                    None => return Err(call.error()),
                },
                granted = window.acquire(want) => match granted {
                    Some(n) => {
                        call.send(FrameType::Data, call.id, content.slice(offset..offset + n))
                            .await?;
                        offset += n;
                    }
                    None => return Err(call.error()),
                },
            }
        }
        call.send(FrameType::End, call.id, Bytes::new()).await?;
        call.outgoing_open = false;
        let payload = match early {
            Some(payload) => payload,
            None => call.response().await?,
        };
        call.parse::<serde_json::Value>(&payload).map(drop)
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path, offset))]
    async fn reader(&self, path: &str, offset: u64) -> Result<ByteStream> {
        path::check(self.name(), path)?;
        let (mut call, _, consumed) =
            Call::new(self.conn(), "reader", Some(path), CallKind::Incoming)?;
        call.run::<serde_json::Value>(&Request::Reader {
            path: path.into(),
            // No file is longer than 2^53 - 1 bytes (the largest size on the wire), so a larger
            // offset reads as that one: an empty stream, or path_not_found.
            offset: offset.min(wire::MAX_EXACT),
        })
        .await?;
        let consumed = consumed.ok_or_else(|| call.error())?;
        Ok(Box::pin(IpcReadStream {
            _client: Arc::clone(&self.client),
            call,
            consumed,
            done: false,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path, append))]
    async fn writer(&self, path: &str, append: bool) -> Result<Box<dyn FileWriter>> {
        path::check(self.name(), path)?;
        let (mut call, window, _) =
            Call::new(self.conn(), "writer", Some(path), CallKind::Outgoing)?;
        let window = window.ok_or_else(|| call.error())?;
        // Until the response: a caller that goes away drops the call, which resets the
        // request, and the server drops the writer it opens (so no handle stays open).
        call.outgoing_open = true;
        let size: SizeWire = call
            .run(&Request::Writer {
                path: path.into(),
                append,
            })
            .await?;
        if let Err(m) = wire::check_exact("size", size.size) {
            return Err(call.protocol(format!("writer's response: {m}")));
        }
        // From here on the writer's finishing request (or writer_drop) releases the handle.
        call.outgoing_open = false;
        Ok(Box::new(IpcFileWriter {
            client: Arc::clone(&self.client),
            handle: call,
            window,
            path: path.to_owned(),
            size: size.size,
            state: WriterState::Open,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path))]
    async fn stat(&self, path: &str) -> Result<FileInfo> {
        path::check_dir(self.name(), path)?;
        let mut call = self.call("stat", Some(path), CallKind::Plain)?;
        let info: FileInfoWire = call.run(&Request::Stat { path: path.into() }).await?;
        if info.path != path {
            return Err(call.protocol(format!(
                "stat of {path} answered FILEINFO for {:?} (the server echoes the path asked for)",
                info.path
            )));
        }
        info.into_info(self.conn().minor)
            .map_err(|m| call.protocol(format!("stat's FILEINFO: {m}")))
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path))]
    async fn list(&self, path: &str) -> Result<Vec<String>> {
        path::check_dir(self.name(), path)?;
        self.plain("list", path, Request::List { path: path.into() })
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), source, dest))]
    async fn rename(&self, source: &str, dest: &str) -> Result<()> {
        path::check(self.name(), source)?;
        path::check(self.name(), dest)?;
        self.plain::<serde_json::Value>(
            "rename",
            source,
            Request::Rename {
                source: source.into(),
                dest: dest.into(),
            },
        )
        .await
        .map(drop)
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path))]
    async fn delete(&self, path: &str) -> Result<()> {
        path::check(self.name(), path)?;
        self.plain::<serde_json::Value>("delete", path, Request::Delete { path: path.into() })
            .await
            .map(drop)
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path))]
    async fn url_for(&self, path: &str, options: &UrlOptions) -> Result<String> {
        path::check(self.name(), path)?;
        if !self.client.capabilities.url_for {
            // The server would answer `unsupported`: no need to ask.
            return Err(Error::unsupported(self.name(), "url_for"));
        }
        self.plain(
            "url_for",
            path,
            Request::UrlFor {
                path: path.into(),
                method: options.method.into(),
                expires_in_ms: u64::try_from(options.expires_in.as_millis())
                    .unwrap_or(u64::MAX)
                    .min(wire::MAX_EXACT),
            },
        )
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path))]
    async fn walk(&self, path: &str, options: &WalkOptions, f: &mut WalkFn<'_>) -> Result<()> {
        path::check_dir(self.name(), path)?;
        let mut call = self.call("walk", Some(path), CallKind::Walk)?;
        call.send_request(&Request::Walk {
            path: path.into(),
            start_after: options.start_after.as_deref().map(Into::into),
        })
        .await?;
        loop {
            match call.recv().await? {
                Event::WalkEntry(payload) => {
                    let info = serde_json::from_slice::<FileInfoWire>(&payload)
                        .map_err(|e| e.to_string())
                        .and_then(|info| info.into_info(self.conn().minor));
                    let info = match info {
                        Ok(info) => info,
                        Err(e) => {
                            return Err(call.protocol(format!("WALK_ENTRY is not understood: {e}")));
                        }
                    };
                    let control = f(&info);
                    let byte = wire::walk_control_byte(control);
                    // The server's turn again: its next entry may come once the control left.
                    if let Some(entry) = call.conn.lock().entries.get_mut(&call.id) {
                        entry.walk_turn = true;
                    }
                    call.send(
                        FrameType::WalkControl,
                        call.id,
                        Bytes::copy_from_slice(&[byte]),
                    )
                    .await?;
                }
                Event::Response(payload) => {
                    call.walk_open = false;
                    return call.parse::<serde_json::Value>(&payload).map(drop);
                }
                other => return Err(call.protocol(format!("unexpected {other:?} in walk"))),
            }
        }
    }
}

/// The stream of a `reader`: yields `DATA` payloads as they arrive, grants credit as they are
/// consumed, and resets the stream when dropped early.
struct IpcReadStream {
    _client: Arc<Client>,
    call: Call,
    consumed: Consumed,
    done: bool,
}

impl Stream for IpcReadStream {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        // 1.1: the server sends nothing until the stream is read; the first poll opens it.
        if let Some(credit) = this.consumed.open() {
            this.call
                .try_send(FrameType::Credit, this.call.id, credit_payload(credit));
        }
        let event = match this.call.rx.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(event) => event,
        };
        let item = match event {
            Some(Event::Data(chunk)) => {
                if let Some(credit) = this.consumed.consume(chunk.len()) {
                    this.call
                        .try_send(FrameType::Credit, this.call.id, credit_payload(credit));
                }
                return Poll::Ready(Some(Ok(chunk)));
            }
            Some(Event::End) => {
                this.call.incoming_open = false;
                this.done = true;
                return Poll::Ready(None);
            }
            Some(Event::Reset(payload)) => {
                this.call.incoming_open = false;
                this.call.reset_error(&payload)
            }
            Some(other) => this
                .call
                .protocol(format!("unexpected {other:?} in a reader stream")),
            None => this.call.error(),
        };
        this.done = true;
        Poll::Ready(Some(Err(item)))
    }
}

/// A writer whose bytes go to the server's driver writer.
struct IpcFileWriter {
    client: Arc<Client>,
    /// The `writer` call: its id is the handle, and its entry receives the handle's credit.
    handle: Call,
    window: Arc<Window>,
    path: String,
    size: u64,
    state: WriterState,
}

impl fmt::Debug for IpcFileWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpcFileWriter")
            .field("driver", &self.client.conn.name)
            .field("handle", &self.handle.id)
            .field("path", &self.path)
            .field("size", &self.size)
            .field("state", &self.state)
            .finish()
    }
}

impl IpcFileWriter {
    async fn finish(&mut self, op: &'static str, state: WriterState) -> Result<()> {
        // From here on the server closes the handle whatever the answer.
        self.state = state;
        let handle = self.handle.id;
        let request = match op {
            "writer_close" => Request::WriterClose { handle },
            "writer_cancel" => Request::WriterCancel { handle },
            _ => Request::WriterCommit { handle },
        };
        let mut call = Call::new(&self.client.conn, op, Some(&self.path), CallKind::Plain)?.0;
        let result = call.run::<serde_json::Value>(&request).await.map(drop);
        if matches!(&result, Err(Error::WriterFinished { state, .. }) if state == "superseded") {
            // Every later close, commit or cancel answers the same.
            self.state = WriterState::Superseded;
        }
        result
    }
}

#[async_trait]
impl FileWriter for IpcFileWriter {
    #[tracing::instrument(level = "trace", skip_all, err(level = "debug"), fields(driver = %self.client.conn.name, path = %self.path, len = data.len()))]
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.state.ensure_open(&self.client.conn.name, &self.path)?;
        let mut offset = 0;
        while offset < data.len() {
            let want = (data.len() - offset).min(MAX_PAYLOAD);
            let Some(n) = self.window.acquire(want).await else {
                return Err(self.handle.conn.dead_error("write", Some(&self.path)));
            };
            self.handle
                .send(
                    FrameType::Data,
                    self.handle.id,
                    data.slice(offset..offset + n),
                )
                .await?;
            offset += n;
            self.size += n as u64;
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        self.size
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.client.conn.name, path = %self.path))]
    async fn close(&mut self) -> Result<()> {
        match self.state {
            WriterState::Open => {}
            WriterState::Superseded => {
                return self.state.ensure_open(&self.client.conn.name, &self.path);
            }
            _ => return Ok(()),
        }
        self.finish("writer_close", WriterState::Closed).await
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.client.conn.name, path = %self.path))]
    async fn cancel(&mut self) -> Result<()> {
        self.state.ensure_open(&self.client.conn.name, &self.path)?;
        self.finish("writer_cancel", WriterState::Cancelled).await
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.client.conn.name, path = %self.path))]
    async fn commit(&mut self) -> Result<()> {
        self.state.ensure_open(&self.client.conn.name, &self.path)?;
        self.finish("writer_commit", WriterState::Committed).await
    }
}

impl Drop for IpcFileWriter {
    fn drop(&mut self) {
        if self.state != WriterState::Open {
            return;
        }
        // Best effort and without waiting: the answer is ignored.
        let conn = &self.client.conn;
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        let request = Request::WriterDrop {
            handle: self.handle.id,
        };
        let _ = conn
            .out
            .send(FrameType::Request, id, request.to_json().into());
    }
}
