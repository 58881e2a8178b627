//! The server: serves a [`StorageDriver`] over the IPC protocol.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use storagedriver::error::Message;
use storagedriver::{
    ByteStream, DriverFactory, Error, FileInfo, Parameters, Result, Retry, StorageDriver,
    UrlOptions, WalkControl, WalkOptions, path,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::frame::{Frame, FrameType, MAX_PAYLOAD, MAX_RESPONSE};
use crate::io::{
    Consumed, Flow, FrameReader, Inflow, Outbox, ReadEnd, Window, credit_payload, parse_credit,
    shrink_map, split_stream,
};
use crate::wire::{self, BadRequest, ErrorWire, FileInfoWire, Request, SizeWire};
use crate::{PARAMETERS_ENV, PROTOCOL_VERSION, SOCKET_ENV};

/// Serves `driver` over `stream` until the client closes it.
///
/// Requests run concurrently, each in its own task; `PING` is answered at once even while
/// they run. On end of file everything still running is abandoned and the result is `Ok`.
///
/// # Errors
///
/// A protocol error (a malformed or oversized frame, a version mismatch, a frame that breaks
/// the rules): the server sends `FATAL`, closes the connection and returns an
/// [`Error::Backend`] naming the driver. It never panics on what the client sends.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> storagedriver::Result<()> {
/// use std::sync::Arc;
/// # #[derive(Debug)] struct D;
/// # #[async_trait::async_trait]
/// # impl storagedriver::StorageDriver for D {
/// #   fn name(&self) -> &str { "d" }
/// #   fn capabilities(&self) -> storagedriver::Capabilities { Default::default() }
/// #   async fn get_content(&self, p: &str) -> storagedriver::Result<bytes::Bytes> { Err(storagedriver::Error::path_not_found("d", p)) }
/// #   async fn put_content(&self, _: &str, _: bytes::Bytes) -> storagedriver::Result<()> { Ok(()) }
/// #   async fn reader(&self, p: &str, _: u64) -> storagedriver::Result<storagedriver::ByteStream> { Err(storagedriver::Error::path_not_found("d", p)) }
/// #   async fn writer(&self, p: &str, _: bool) -> storagedriver::Result<Box<dyn storagedriver::FileWriter>> { Err(storagedriver::Error::path_not_found("d", p)) }
/// #   async fn stat(&self, p: &str) -> storagedriver::Result<storagedriver::FileInfo> { Err(storagedriver::Error::path_not_found("d", p)) }
/// #   async fn list(&self, p: &str) -> storagedriver::Result<Vec<String>> { Err(storagedriver::Error::path_not_found("d", p)) }
/// #   async fn rename(&self, s: &str, _: &str) -> storagedriver::Result<()> { Err(storagedriver::Error::path_not_found("d", s)) }
/// #   async fn delete(&self, p: &str) -> storagedriver::Result<()> { Err(storagedriver::Error::path_not_found("d", p)) }
/// #   async fn url_for(&self, _: &str, _: &storagedriver::UrlOptions) -> storagedriver::Result<String> { Err(storagedriver::Error::unsupported("d", "url_for")) }
/// # }
/// use storagedriver::StorageDriver;
/// use storagedriver_ipc::{serve, IpcDriver};
///
/// let (server_side, client_side) = tokio::net::UnixStream::pair().unwrap();
/// let server = tokio::spawn(serve(Arc::new(D), server_side));
/// let client = IpcDriver::connect("d", client_side).await?;
/// assert!(client.stat("/missing").await.unwrap_err().is_not_found());
/// drop(client);
/// server.await.unwrap()?; // the client went away: Ok
/// # Ok(()) }
/// ```
pub async fn serve<S>(driver: Arc<dyn StorageDriver>, stream: S) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let span = tracing::info_span!("ipc_serve", driver = %driver.name());
    serve_inner(driver, stream).instrument(span).await
}

/// Connects to the Unix socket named by [`SOCKET_ENV`] and serves `driver` on it.
///
/// # Errors
///
/// The variable is unset or the socket cannot be reached, or as [`serve`].
pub async fn serve_from_env(driver: Arc<dyn StorageDriver>) -> Result<()> {
    let name = driver.name().to_owned();
    let fail =
        |message: String| Error::backend(&name, "connect", None, Retry::Useless, Message(message));
    let Some(socket) = std::env::var_os(SOCKET_ENV) else {
        return Err(fail(format!(
            "{SOCKET_ENV} is not set: a driver server is started by the registry, which names its socket there"
        )));
    };
    let stream = tokio::net::UnixStream::connect(&socket)
        .await
        .map_err(|e| {
            fail(format!(
                "cannot connect to {}: {e}",
                socket.to_string_lossy()
            ))
        })?;
    serve(driver, stream).await
}

/// The whole `main` of a driver executable `registry-storage-<name>`.
///
/// Reads the parameters, a JSON object, from argument 1 or the environment variable
/// [`PARAMETERS_ENV`] (neither: no parameters; both: an error), creates the
/// driver with `factory` (an error is printed to stderr and the exit code is 2, without
/// connecting), then serves it on the socket named by [`SOCKET_ENV`] on a tokio runtime.
/// Returns 0 when the client went away, 1 on a protocol or connection error.
///
/// ```no_run
/// // src/bin/registry-storage-inmemory.rs
/// # mod driver_inmemory { #[derive(Debug)] pub struct InMemoryFactory; #[async_trait::async_trait] impl storagedriver::DriverFactory for InMemoryFactory { fn name(&self) -> &str { "inmemory" } async fn create(&self, _: &storagedriver::Parameters) -> storagedriver::Result<std::sync::Arc<dyn storagedriver::StorageDriver>> { unimplemented!() } } }
/// fn main() -> std::process::ExitCode {
///     storagedriver_ipc::run_driver_executable(&driver_inmemory::InMemoryFactory)
/// }
/// ```
pub fn run_driver_executable(factory: &dyn DriverFactory) -> ExitCode {
    let program = format!("registry-storage-{}", factory.name());
    let parameters =
        match read_parameters(std::env::args_os().nth(1), std::env::var_os(PARAMETERS_ENV)) {
            Ok(parameters) => parameters,
            Err(message) => {
                eprintln!("{program}: {message}");
                return ExitCode::from(2);
            }
        };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let driver = match factory.create(&parameters).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{program}: {e}");
                return ExitCode::from(2);
            }
        };
        // Served from a worker thread, which polls the socket itself, rather than from this
        // thread, which a worker would have to wake for every frame.
        match tokio::spawn(serve_from_env(driver)).await {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("{program}: {e}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("{program}: serving failed: {e}");
                ExitCode::FAILURE
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// The request a task serves, and whether it has answered it yet.
struct Current {
    id: u64,
    responded: Cell<bool>,
}

tokio::task_local! {
    static CURRENT: Current;
}

/// A stream the client sends: `put_content` content or a writer handle's data.
struct Incoming {
    tx: mpsc::UnboundedSender<InMsg>,
    inflow: Inflow,
    writer: bool,
    /// False for a writer handle until its `ok` is sent: `DATA` before it breaks the protocol.
    accepting: bool,
}

#[derive(Debug)]
enum InMsg {
    Data(Bytes),
    End,
    Reset,
    Finish { finish: Finish, reply: u64 },
    Drop { reply: u64 },
}

#[derive(Debug, Clone, Copy)]
enum Finish {
    Close,
    Cancel,
    Commit,
}

#[derive(Default)]
struct Streams {
    incoming: HashMap<u64, Incoming>,
    outgoing: HashMap<u64, Arc<Window>>,
    walks: HashMap<u64, std::sync::mpsc::Sender<WalkControl>>,
    /// Requests not answered yet: their ids are in use.
    unanswered: HashSet<u64>,
}

impl Streams {
    /// Gives memory back after many streams ended (maps do not shrink by themselves).
    fn tidy(&mut self) {
        shrink_map(&mut self.incoming);
        shrink_map(&mut self.outgoing);
        shrink_map(&mut self.walks);
        if self.unanswered.capacity() > 64 && self.unanswered.len() * 4 < self.unanswered.capacity()
        {
            self.unanswered.shrink_to(self.unanswered.len() * 2);
        }
    }

    /// True while `id` belongs to a request without its response, or to a stream, writer
    /// handle or walk that is still open.
    fn in_use(&self, id: u64) -> bool {
        self.unanswered.contains(&id)
            || self.incoming.contains_key(&id)
            || self.outgoing.contains_key(&id)
            || self.walks.contains_key(&id)
    }
}

struct Server {
    driver: Arc<dyn StorageDriver>,
    name: String,
    out: Arc<Outbox>,
    streams: Mutex<Streams>,
    /// The minor version whose rules apply (the lower of the two), set by the handshake.
    minor: OnceLock<u32>,
}

/// A protocol error: sent as `FATAL`, then the connection closes.
struct ProtocolError(String);

/// How the serving loop ended.
enum End {
    /// The client went away.
    Eof,
    /// The connection failed or the client broke the protocol.
    Failed(String),
}

async fn serve_inner<S>(driver: Arc<dyn StorageDriver>, stream: S) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = split_stream(stream);
    let (out, writer_task) = Outbox::new(write);
    let writer = tokio::spawn(writer_task);
    let server = Arc::new(Server {
        name: driver.name().to_owned(),
        driver,
        out,
        streams: Mutex::new(Streams::default()),
        minor: OnceLock::new(),
    });
    let mut reader = FrameReader::new(read);
    let mut tasks = JoinSet::new();
    let end = run(&server, &mut reader, &mut tasks).await;
    tasks.abort_all();
    // Dropping the walk controls ends walks blocked on them.
    let streams = std::mem::take(&mut *server.lock());
    for window in streams.outgoing.values() {
        window.close();
    }
    drop(streams);
    let result = match end {
        End::Eof => {
            tracing::debug!("the client closed the connection");
            server.out.close("the client went away");
            Ok(())
        }
        End::Failed(message) => {
            tracing::warn!(%message, "serving stopped");
            server.out.shutdown(Duration::from_secs(1)).await;
            Err(Error::backend(
                &server.name,
                "serve",
                None,
                Retry::Useless,
                Message(message),
            ))
        }
    };
    writer.abort();
    while tasks.join_next().await.is_some() {}
    result
}

/// Handshake, then frames until the end.
async fn run(server: &Arc<Server>, reader: &mut FrameReader, tasks: &mut JoinSet<()>) -> End {
    let hello = match reader.next().await {
        Ok(frame) => frame,
        Err(ReadEnd::Eof) => return End::Eof,
        Err(ReadEnd::Frame(e)) => return server.fatal(ProtocolError(e.to_string())),
        Err(e) => return End::Failed(e.to_string()),
    };
    if let Err(e) = server.handshake(&hello) {
        return server.fatal(e);
    }
    loop {
        let frame = match reader.next().await {
            Ok(frame) => frame,
            Err(ReadEnd::Eof) => return End::Eof,
            Err(ReadEnd::Frame(e)) => return server.fatal(ProtocolError(e.to_string())),
            Err(e) => return End::Failed(e.to_string()),
        };
        match server.dispatch(frame, tasks) {
            Ok(true) => {}
            Ok(false) => return End::Failed("the client sent FATAL".to_owned()),
            Err(e) => return server.fatal(e),
        }
        while tasks.try_join_next().is_some() {}
    }
}

impl Server {
    fn lock(&self) -> MutexGuard<'_, Streams> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.tidy();
        streams
    }

    /// The minor version whose rules apply (0 until the handshake says otherwise).
    fn minor(&self) -> u32 {
        self.minor.get().copied().unwrap_or(0)
    }

    /// The connection's flow-control rules (1.0 until the handshake says otherwise).
    fn flow(&self) -> Flow {
        Flow::for_minor(self.minor())
    }

    /// Registers the stream the client sends on `id` (a `put_content`, or a writer handle when
    /// `writer`): the receiver of its frames, and the credit to grant as they are consumed.
    fn open_incoming(&self, id: u64, writer: bool) -> (mpsc::UnboundedReceiver<InMsg>, Consumed) {
        let (tx, rx) = mpsc::unbounded_channel();
        let flow = self.flow();
        let initial = flow.client_stream_window();
        let (inflow, granted) = Inflow::new(initial);
        self.lock().incoming.insert(
            id,
            Incoming {
                tx,
                inflow,
                writer,
                accepting: !writer,
            },
        );
        (rx, Consumed::new(granted, flow, initial))
    }

    /// Sends `FATAL` and ends serving.
    fn fatal(&self, e: ProtocolError) -> End {
        let payload = serde_json::json!({ "message": e.0 }).to_string();
        let _ = self.out.send(FrameType::Fatal, 0, payload.into());
        End::Failed(format!("protocol error: {}", e.0))
    }

    fn handshake(&self, hello: &Frame) -> std::result::Result<(), ProtocolError> {
        if hello.kind != FrameType::Hello {
            return Err(ProtocolError(format!(
                "the first frame must be HELLO, got {}",
                hello.kind.name()
            )));
        }
        let parsed: wire::Hello<'_> = serde_json::from_slice(&hello.payload)
            .map_err(|e| ProtocolError(format!("HELLO is not understood: {e}")))?;
        if parsed.protocol != wire::PROTOCOL_NAME {
            return Err(ProtocolError(format!(
                "HELLO names protocol {:?}, not {:?}",
                parsed.protocol,
                wire::PROTOCOL_NAME
            )));
        }
        if !wire::compatible(&parsed.version, PROTOCOL_VERSION) {
            return Err(ProtocolError(format!(
                "incompatible IPC protocol versions: client speaks {}, server speaks {PROTOCOL_VERSION}",
                parsed.version
            )));
        }
        let _ = self
            .minor
            .set(wire::negotiated_minor(&parsed.version, PROTOCOL_VERSION));
        let welcome = wire::Welcome {
            version: PROTOCOL_VERSION.to_owned(),
            driver: self.name.clone(),
            capabilities: self.driver.capabilities().into(),
        };
        let payload = serde_json::to_vec(&welcome).unwrap_or_default();
        self.out
            .send(FrameType::Welcome, 0, payload.into())
            .map_err(|e| ProtocolError(e.0))
    }

    fn send(&self, kind: FrameType, id: u64, payload: Bytes) {
        // A closed outbox means the connection is going away; the loop notices.
        let _ = self.out.send(kind, id, payload);
    }

    fn respond<T: Serialize>(&self, id: u64, op: &str, path: Option<&str>, result: Result<T>) {
        let _ = CURRENT.try_with(|c| {
            if c.id == id {
                c.responded.set(true);
            }
        });
        // The id stays in use while its stream, handle or walk is open.
        self.lock().unanswered.remove(&id);
        let payload = match &result {
            Ok(value) => wire::ok_json(value),
            Err(e) => wire::error_json(&ErrorWire::from_error(e, &self.name, op, path)),
        };
        if payload.len() <= MAX_PAYLOAD {
            self.send(FrameType::Response, id, payload.into());
        } else {
            self.respond_in_parts(id, op, path, payload);
        }
    }

    /// Sends a response longer than one frame: `RESPONSE_PART` frames with consecutive
    /// pieces, then `RESPONSE` with the last one. One above [`MAX_RESPONSE`] becomes a
    /// `backend` error.
    #[cold]
    fn respond_in_parts(&self, id: u64, op: &str, path: Option<&str>, payload: Vec<u8>) {
        if payload.len() > MAX_RESPONSE {
            let err = self.backend(
                op,
                path,
                format!(
                    "the response is {} bytes long, above the protocol's limit of {MAX_RESPONSE}",
                    payload.len()
                ),
            );
            let payload = wire::error_json(&ErrorWire::from_error(&err, &self.name, op, path));
            self.send(FrameType::Response, id, payload.into());
            return;
        }
        // Pieces share the payload's allocation: no copies.
        let mut payload = Bytes::from(payload);
        while payload.len() > MAX_PAYLOAD {
            let piece = payload.split_to(MAX_PAYLOAD);
            self.send(FrameType::ResponsePart, id, piece);
        }
        self.send(FrameType::Response, id, payload);
    }

    fn backend(&self, op: &str, path: Option<&str>, message: String) -> Error {
        Error::backend(&self.name, op, path, Retry::Useless, Message(message))
    }

    /// Handles one frame; `Ok(false)` when the client sent `FATAL`.
    fn dispatch(
        self: &Arc<Self>,
        frame: Frame,
        tasks: &mut JoinSet<()>,
    ) -> std::result::Result<bool, ProtocolError> {
        let id = frame.id;
        match frame.kind {
            FrameType::Request => self.request(id, &frame.payload, tasks)?,
            FrameType::Data => {
                if frame.payload.is_empty() {
                    return Err(ProtocolError(format!("empty DATA frame on stream {id}")));
                }
                let mut streams = self.lock();
                let Some(incoming) = streams.incoming.get_mut(&id) else {
                    return Err(ProtocolError(format!(
                        "DATA frame for stream {id}, which is not open"
                    )));
                };
                if !incoming.accepting {
                    return Err(ProtocolError(format!(
                        "DATA frame on writer handle {id} before the writer's response"
                    )));
                }
                let len = frame.payload.len();
                if !incoming.inflow.receive(len) {
                    return Err(ProtocolError(format!("stream {id} overran its window")));
                }
                if incoming.tx.send(InMsg::Data(frame.payload)).is_err() {
                    // Nobody consumes this stream any more (its task failed): grant the
                    // credit here so that the client never waits for it (and count it, so
                    // that the data it lets come is not taken for an overrun).
                    if let Ok(n) = u32::try_from(len) {
                        incoming.inflow.granted_back(u64::from(n));
                        drop(streams);
                        self.send(FrameType::Credit, id, credit_payload(n));
                    }
                }
            }
            FrameType::End => {
                let mut streams = self.lock();
                if streams.incoming.get(&id).is_some_and(|i| !i.writer) {
                    if let Some(incoming) = streams.incoming.remove(&id) {
                        let _ = incoming.tx.send(InMsg::End);
                    }
                }
            }
            FrameType::Reset => {
                let mut streams = self.lock();
                if let Some(window) = streams.outgoing.remove(&id) {
                    window.close();
                }
                if let Some(incoming) = streams.incoming.remove(&id) {
                    let _ = incoming.tx.send(InMsg::Reset);
                }
                streams.walks.remove(&id);
            }
            FrameType::Credit => {
                let Some(n) = parse_credit(&frame.payload) else {
                    return Err(ProtocolError(format!(
                        "CREDIT frame of {} bytes (not 4)",
                        frame.payload.len()
                    )));
                };
                if let Some(window) = self.lock().outgoing.get(&id) {
                    window.grant(u64::from(n));
                }
            }
            FrameType::WalkControl => {
                let control = match frame.payload.as_ref() {
                    [byte] => wire::walk_control_from(*byte),
                    _ => None,
                };
                let Some(control) = control else {
                    return Err(ProtocolError(format!(
                        "WALK_CONTROL payload {:?} is not 0, 1 or 2",
                        frame.payload
                    )));
                };
                if let Some(tx) = self.lock().walks.get(&id) {
                    let _ = tx.send(control);
                }
            }
            FrameType::Ping => self.send(FrameType::Pong, id, Bytes::new()),
            FrameType::Fatal => {
                let message = serde_json::from_slice::<wire::Fatal>(&frame.payload)
                    .map(|f| f.message)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&frame.payload).into_owned());
                tracing::warn!(%message, "the client sent FATAL");
                return Ok(false);
            }
            FrameType::Hello
            | FrameType::Welcome
            | FrameType::Response
            | FrameType::ResponsePart
            | FrameType::WalkEntry
            | FrameType::Pong => {
                return Err(ProtocolError(format!(
                    "unexpected {} frame from the client",
                    frame.kind.name()
                )));
            }
        }
        Ok(true)
    }

    fn request(
        self: &Arc<Self>,
        id: u64,
        payload: &[u8],
        tasks: &mut JoinSet<()>,
    ) -> std::result::Result<(), ProtocolError> {
        if id == 0 {
            return Err(ProtocolError("REQUEST with id 0".to_owned()));
        }
        {
            let mut streams = self.lock();
            if streams.in_use(id) {
                return Err(ProtocolError(format!(
                    "REQUEST id {id} is still in use (ids are never reused)"
                )));
            }
            streams.unanswered.insert(id);
        }
        let request = match wire::parse_request(payload) {
            Ok(r) => r,
            Err(BadRequest::NotJson(e)) => {
                return Err(ProtocolError(format!("REQUEST {id} is not JSON: {e}")));
            }
            Err(BadRequest::Unknown { op, message }) => {
                let op = op.unwrap_or_else(|| "request".to_owned());
                let err = self.backend(&op, None, message);
                self.respond::<()>(id, &op, None, Err(err));
                return Ok(());
            }
        };
        let op = request.op();
        if let Err(message) = request.check_numbers() {
            // A malformed request: answered like a missing field, naming no path.
            let err = self.backend(op, None, format!("request not understood: {message}"));
            self.respond::<()>(id, op, None, Err(err));
            return Ok(());
        }
        let span = tracing::debug_span!("ipc_request", id, op, path = request.path());
        let server = Arc::clone(self);
        match request {
            Request::Stat { path } => {
                let path = path.into_owned();
                self.spawn(tasks, id, op, span, async move {
                    let result = server.driver.stat(&path).await.and_then(|info| {
                        FileInfoWire::new(&info, server.minor())
                            .map_err(|m| server.backend(op, Some(&path), m))
                    });
                    server.respond(id, op, Some(&path), result);
                });
            }
            Request::List { path } => {
                let path = path.into_owned();
                self.spawn(tasks, id, op, span, async move {
                    let result = server.driver.list(&path).await;
                    server.respond(id, op, Some(&path), result);
                });
            }
            Request::Rename { source, dest } => {
                let (source, dest) = (source.into_owned(), dest.into_owned());
                self.spawn(tasks, id, op, span, async move {
                    let result = server.driver.rename(&source, &dest).await;
                    server.respond(id, op, Some(&source), result);
                });
            }
            Request::Delete { path } => {
                let path = path.into_owned();
                self.spawn(tasks, id, op, span, async move {
                    let result = server.driver.delete(&path).await;
                    server.respond(id, op, Some(&path), result);
                });
            }
            Request::UrlFor {
                path,
                method,
                expires_in_ms,
            } => {
                let path = path.into_owned();
                let options = UrlOptions {
                    method: method.into(),
                    expires_in: Duration::from_millis(expires_in_ms),
                };
                self.spawn(tasks, id, op, span, async move {
                    let result = server.driver.url_for(&path, &options).await;
                    server.respond(id, op, Some(&path), result);
                });
            }
            Request::GetContent { path } => {
                let path = path.into_owned();
                let window = Window::new(self.flow().server_stream_window());
                self.lock().outgoing.insert(id, Arc::clone(&window));
                self.spawn(tasks, id, op, span, async move {
                    match server.driver.get_content(&path).await {
                        Ok(content) => {
                            let size = SizeWire {
                                size: content.len() as u64,
                            };
                            server.respond(id, op, Some(&path), Ok(size));
                            // The whole content is here: END follows its last byte at once.
                            if server.send_chunk(id, &content, &window).await {
                                server.send(FrameType::End, id, Bytes::new());
                            }
                        }
                        Err(e) => server.respond::<()>(id, op, Some(&path), Err(e)),
                    }
                    server.lock().outgoing.remove(&id);
                });
            }
            Request::Reader { path, offset } => {
                let path = path.into_owned();
                let window = Window::new(self.flow().server_stream_window());
                self.lock().outgoing.insert(id, Arc::clone(&window));
                self.spawn(tasks, id, op, span, async move {
                    match server.driver.reader(&path, offset).await {
                        Ok(stream) => {
                            server.respond(id, op, Some(&path), Ok(()));
                            server.send_stream(id, op, &path, stream, &window).await;
                        }
                        Err(e) => server.respond::<()>(id, op, Some(&path), Err(e)),
                    }
                    server.lock().outgoing.remove(&id);
                });
            }
            Request::PutContent { path } => {
                let path = path.into_owned();
                let (rx, consumed) = self.open_incoming(id, false);
                self.spawn(tasks, id, op, span, async move {
                    server.put_content(id, path, rx, consumed).await;
                });
            }
            Request::Writer { path, append } => {
                let path = path.into_owned();
                let (rx, consumed) = self.open_incoming(id, true);
                self.spawn(tasks, id, op, span, async move {
                    server.writer(id, path, append, rx, consumed).await;
                });
            }
            Request::WriterClose { handle } => self.finish(id, op, handle, Some(Finish::Close)),
            Request::WriterCancel { handle } => self.finish(id, op, handle, Some(Finish::Cancel)),
            Request::WriterCommit { handle } => self.finish(id, op, handle, Some(Finish::Commit)),
            Request::WriterDrop { handle } => self.finish(id, op, handle, None),
            Request::Walk { path, start_after } => {
                let path = path.into_owned();
                let start_after = start_after.map(|s| s.into_owned());
                let (tx, rx) = std::sync::mpsc::channel();
                self.lock().walks.insert(id, tx);
                self.spawn(tasks, id, op, span, async move {
                    server.walk(id, path, start_after, rx).await;
                });
            }
        }
        Ok(())
    }

    /// Runs a request's future: first polled right here (a request the driver answers at once
    /// costs no task hop), then, if it has to wait, in a task of its own. A panic in the
    /// driver becomes an error instead of a hang.
    fn spawn<F>(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        id: u64,
        op: &'static str,
        span: tracing::Span,
        future: F,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        let server = Arc::clone(self);
        let guarded = async move {
            if let Err(panic) = AssertUnwindSafe(future).catch_unwind().await {
                server.after_panic(id, op, &panic_message(panic.as_ref()));
            }
        };
        let current = Current {
            id,
            responded: Cell::new(false),
        };
        let mut task = Box::pin(CURRENT.scope(current, guarded).instrument(span));
        // Every future is polled again, with the task's own waker, once it is spawned.
        let mut cx = Context::from_waker(Waker::noop());
        if task.as_mut().poll(&mut cx).is_pending() {
            tasks.spawn(task);
        }
    }

    /// Answers for a request whose driver call panicked.
    fn after_panic(&self, id: u64, op: &str, message: &str) {
        tracing::error!(%message, "the driver panicked");
        let err = self.backend(op, None, format!("the driver panicked: {message}"));
        let responded = CURRENT.try_with(|c| c.responded.get()).unwrap_or(false);
        let mut streams = self.lock();
        streams.walks.remove(&id);
        let stream = streams.outgoing.remove(&id);
        // A stream the client sends to the task that panicked: from now on its data is
        // credited and dropped as it arrives, and what the task received without crediting is
        // credited now, so that the client never waits for credit (a writer that got no
        // handle has no stream: forget it).
        let mut owed = 0;
        if let Some(incoming) = streams.incoming.get_mut(&id) {
            if incoming.writer && !responded {
                streams.incoming.remove(&id);
            } else {
                incoming.tx = mpsc::unbounded_channel().0;
                owed = incoming.inflow.release();
            }
        }
        drop(streams);
        if let Some(window) = &stream {
            window.close();
        }
        if owed > 0 {
            let credit = u32::try_from(owed).unwrap_or(u32::MAX);
            self.send(FrameType::Credit, id, credit_payload(credit));
        }
        if !responded {
            self.respond::<()>(id, op, None, Err(err));
        } else if stream.is_some() {
            // The stream had started: end it with the error.
            let reset = wire::error_json_value(&ErrorWire::from_error(&err, &self.name, op, None));
            self.send(FrameType::Reset, id, reset.into());
        }
        // A writer handle stays registered: its data is credited and dropped, and the next
        // finishing request is answered with an error ("no open writer").
    }

    /// Sends `stream` on `id` within the window, then `END` (or `RESET` with the error).
    async fn send_stream(
        &self,
        id: u64,
        op: &str,
        path: &str,
        mut stream: ByteStream,
        window: &Window,
    ) {
        // 1.1: no chunk is pulled from the driver before there is credit to send it, so that a
        // stream nobody reads holds no data here (the stream's END may then wait for credit:
        // the client's credit rule guarantees it comes). 1.0 peers may grant exactly what they
        // expect and wait for END: pull as 1.0 did.
        let gated = self.flow() == Flow::V1_1;
        loop {
            if gated && !window.ready().await {
                tracing::debug!("the client reset the stream");
                return;
            }
            // A reset stops the stream also while the driver is still producing the next chunk.
            let item = tokio::select! {
                item = stream.next() => item,
                () = window.closed() => {
                    tracing::debug!("the client reset the stream");
                    return;
                }
            };
            let Some(item) = item else { break };
            let chunk = match item {
                Ok(chunk) => chunk,
                Err(e) => {
                    let payload = wire::error_json_value(&ErrorWire::from_error(
                        &e,
                        &self.name,
                        op,
                        Some(path),
                    ));
                    self.send(FrameType::Reset, id, payload.into());
                    return;
                }
            };
            if !self.send_chunk(id, &chunk, window).await {
                return;
            }
        }
        self.send(FrameType::End, id, Bytes::new());
    }

    /// Sends `chunk` on `id` in `DATA` frames within the window; false when the client reset
    /// the stream or the connection closed.
    async fn send_chunk(&self, id: u64, chunk: &Bytes, window: &Window) -> bool {
        let mut offset = 0;
        while offset < chunk.len() {
            let want = (chunk.len() - offset).min(MAX_PAYLOAD);
            let Some(n) = window.acquire(want).await else {
                // The client reset the stream: stop and free what we hold.
                tracing::debug!("the client reset the stream");
                return false;
            };
            if self
                .out
                .send(FrameType::Data, id, chunk.slice(offset..offset + n))
                .is_err()
            {
                return false;
            }
            offset += n;
        }
        true
    }

    async fn put_content(
        &self,
        id: u64,
        path: String,
        mut rx: mpsc::UnboundedReceiver<InMsg>,
        mut consumed: Consumed,
    ) {
        let op = "put_content";
        // Answer an invalid path at once; the client then ends the stream, which we discard.
        let mut answered = false;
        if let Err(e) = path::check(&self.name, &path) {
            self.respond::<()>(id, op, Some(&path), Err(e));
            answered = true;
        }
        let mut first: Option<Bytes> = None;
        let mut rest: Option<BytesMut> = None;
        let complete = loop {
            match rx.recv().await {
                Some(InMsg::Data(chunk)) => {
                    if let Some(credit) = consumed.consume(chunk.len()) {
                        self.send(FrameType::Credit, id, credit_payload(credit));
                    }
                    if answered {
                        continue;
                    }
                    match (&mut first, &mut rest) {
                        (None, _) => first = Some(chunk),
                        (Some(head), None) => {
                            let mut buf = BytesMut::with_capacity(head.len() + chunk.len());
                            buf.extend_from_slice(head);
                            buf.extend_from_slice(&chunk);
                            rest = Some(buf);
                        }
                        (Some(_), Some(buf)) => buf.extend_from_slice(&chunk),
                    }
                }
                Some(InMsg::End) => break true,
                Some(InMsg::Reset) | None => break false,
                Some(_) => {}
            }
        };
        self.lock().incoming.remove(&id);
        if answered {
            return;
        }
        if !complete {
            // The client abandoned the content: store nothing.
            let err = self.backend(
                op,
                Some(&path),
                "the client abandoned the content".to_owned(),
            );
            self.respond::<()>(id, op, Some(&path), Err(err));
            return;
        }
        let content = match (first, rest) {
            (_, Some(buf)) => buf.freeze(),
            (Some(one), None) => one,
            (None, None) => Bytes::new(),
        };
        let result = self.driver.put_content(&path, content).await;
        self.respond(id, op, Some(&path), result);
    }

    async fn writer(
        &self,
        id: u64,
        path: String,
        append: bool,
        mut rx: mpsc::UnboundedReceiver<InMsg>,
        mut consumed: Consumed,
    ) {
        let opened =
            self.driver.writer(&path, append).await.and_then(|w| {
                match wire::check_exact("size", w.size()) {
                    Ok(()) => Ok(w),
                    Err(m) => Err(self.backend("writer", Some(&path), m)),
                }
            });
        let mut writer = match opened {
            Ok(w) => {
                let size = SizeWire { size: w.size() };
                // The handle's stream opens with the `ok` (unless the client reset it already).
                if let Some(incoming) = self.lock().incoming.get_mut(&id) {
                    incoming.accepting = true;
                }
                self.respond(id, "writer", Some(&path), Ok(size));
                w
            }
            Err(e) => {
                self.lock().incoming.remove(&id);
                self.respond::<()>(id, "writer", Some(&path), Err(e));
                return;
            }
        };
        // The first failed write, answered to the next finishing request.
        let mut failed: Option<Error> = None;
        while let Some(message) = rx.recv().await {
            match message {
                InMsg::Data(chunk) => {
                    let n = chunk.len();
                    if failed.is_none() {
                        if let Err(e) = writer.write(chunk).await {
                            failed = Some(e);
                        }
                    }
                    if let Some(credit) = consumed.consume(n) {
                        self.send(FrameType::Credit, id, credit_payload(credit));
                    }
                }
                InMsg::Finish { finish, reply } => {
                    let op = match finish {
                        Finish::Close => "writer_close",
                        Finish::Cancel => "writer_cancel",
                        Finish::Commit => "writer_commit",
                    };
                    let result = match (finish, failed.take()) {
                        (Finish::Cancel, Some(e)) => {
                            let _ = writer.cancel().await;
                            Err(e)
                        }
                        (_, Some(e)) => {
                            let _ = writer.close().await;
                            Err(e)
                        }
                        (Finish::Close, None) => writer.close().await,
                        (Finish::Cancel, None) => writer.cancel().await,
                        (Finish::Commit, None) => writer.commit().await,
                    };
                    self.respond(reply, op, Some(&path), result);
                    return;
                }
                InMsg::Drop { reply } => {
                    drop(writer);
                    self.respond(reply, "writer_drop", Some(&path), Ok(()));
                    return;
                }
                InMsg::Reset => return,
                InMsg::End => {}
            }
        }
    }

    /// A finishing request for a writer handle: queued behind the handle's data.
    fn finish(&self, id: u64, op: &'static str, handle: u64, finish: Option<Finish>) {
        let incoming = {
            let mut streams = self.lock();
            match streams.incoming.get(&handle) {
                Some(i) if i.writer => streams.incoming.remove(&handle),
                _ => None,
            }
        };
        let message = match finish {
            Some(finish) => InMsg::Finish { finish, reply: id },
            None => InMsg::Drop { reply: id },
        };
        let sent = incoming.is_some_and(|i| i.tx.send(message).is_ok());
        if !sent {
            let err = self.backend(op, None, format!("no open writer with handle {handle}"));
            self.respond::<()>(id, op, None, Err(err));
        }
    }

    async fn walk(
        &self,
        id: u64,
        path: String,
        start_after: Option<String>,
        control: std::sync::mpsc::Receiver<WalkControl>,
    ) {
        let driver = Arc::clone(&self.driver);
        let out = Arc::clone(&self.out);
        let handle = tokio::runtime::Handle::current();
        let walk_path = path.clone();
        let minor = self.minor();
        // The callback is synchronous and must wait for the client's answer: run the walk on a
        // blocking thread, where waiting is allowed.
        let result = tokio::task::spawn_blocking(move || {
            let mut options = WalkOptions::default();
            if let Some(after) = start_after {
                options = options.start_after(after);
            }
            // An entry the protocol cannot carry (a size beyond 2^53 - 1) ends the walk.
            let mut unfit: Option<String> = None;
            let unfit_slot = &mut unfit;
            let mut callback = move |info: &FileInfo| -> WalkControl {
                let entry = match FileInfoWire::new(info, minor) {
                    Ok(entry) => entry,
                    Err(m) => {
                        *unfit_slot = Some(format!("{}: {m}", info.path));
                        return WalkControl::Stop;
                    }
                };
                let payload = serde_json::to_vec(&entry).unwrap_or_default();
                if out.send(FrameType::WalkEntry, id, payload.into()).is_err() {
                    return WalkControl::Stop;
                }
                // A dropped sender (the client reset the walk or went away) stops it.
                control.recv().unwrap_or(WalkControl::Stop)
            };
            let result = handle.block_on(driver.walk(&walk_path, &options, &mut callback));
            (result, unfit)
        })
        .await;
        self.lock().walks.remove(&id);
        let result = match result {
            Ok((r, None)) => r,
            Ok((_, Some(message))) => Err(self.backend("walk", Some(&path), message)),
            Err(e) => Err(self.backend(
                "walk",
                Some(&path),
                format!("the driver's walk failed: {}", join_error_message(e)),
            )),
        };
        self.respond(id, "walk", Some(&path), result);
    }
}

fn join_error_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(panic) => format!("it panicked: {}", panic_message(panic.as_ref())),
        Err(e) => e.to_string(),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// The parameters from argument 1 or from [`PARAMETERS_ENV`], or why they are unusable.
fn read_parameters(
    argument: Option<std::ffi::OsString>,
    environment: Option<std::ffi::OsString>,
) -> Result<Parameters, String> {
    let (text, source) = match (argument, environment) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "parameters given both in argument 1 and in {PARAMETERS_ENV}: give them once"
            ));
        }
        (Some(arg), None) => (arg, "argument 1"),
        (None, Some(env)) => (env, PARAMETERS_ENV),
        (None, None) => return Ok(Parameters::new()),
    };
    let Some(text) = text.to_str() else {
        return Err(format!("{source} (the parameters) is not UTF-8"));
    };
    if text.trim().is_empty() {
        return Ok(Parameters::new());
    }
    serde_json::from_str::<Parameters>(text)
        .map_err(|e| format!("{source} must be a JSON object of parameters: {e}"))
}

#[cfg(test)]
mod parameter_tests {
    use super::*;

    #[test]
    fn parameters_come_from_one_place() {
        let json = || Some(std::ffi::OsString::from(r#"{"rootdirectory":"/srv"}"#));
        for (arg, env) in [(json(), None), (None, json())] {
            let params = read_parameters(arg, env).expect("parameters");
            assert_eq!(params["rootdirectory"], "/srv");
        }
        assert!(read_parameters(None, None).expect("none").is_empty());
        let err = read_parameters(json(), json()).expect_err("both");
        assert!(err.contains("give them once"), "{err}");
        let err = read_parameters(None, Some("[1]".into())).expect_err("not an object");
        assert!(err.starts_with(PARAMETERS_ENV), "{err}");
    }
}
