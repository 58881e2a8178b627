//! [`IpcDriver`], the [`StorageDriver`] adapter: its constructors, and each operation of the
//! trait as a call to the server.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use storagedriver::{
    ByteStream, Capabilities, Error, FileInfo, FileWriter, Parameters, Result, StorageDriver,
    UrlOptions, WalkControl, WalkFn, WalkOptions, WriterState, path,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::calls::{Call, CallKind};
use super::connection::Conn;
use super::events::Event;
use super::spawn::{SpawnOptions, spawn_inner, start};
use super::streams::IpcReadStream;
use super::writer::IpcFileWriter;
use super::{DEFAULT_LIVENESS_TIMEOUT, SHUTDOWN_GRACE};
use crate::flow::credit_payload;
use crate::frame::{FrameType, MAX_PAYLOAD};
use crate::io::split_stream;
use crate::wire::{self, FileInfoWire, Request, SizeWire};

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
    pub(super) client: Arc<Client>,
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
pub(super) struct Client {
    pub(super) conn: Arc<Conn>,
    pub(super) capabilities: Capabilities,
    pub(super) server_version: String,
    pub(super) tasks: Vec<JoinHandle<()>>,
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
    /// The parameters go as a JSON object in the environment variable
    /// [`PARAMETERS_ENV`](crate::PARAMETERS_ENV) (readable by this user only, unlike argument 1)
    /// and the socket path in [`SOCKET_ENV`](crate::SOCKET_ENV); stdin is `/dev/null`, stdout
    /// is inherited, and each line of the child's stderr is echoed to ours prefixed with
    /// `[registry-storage-<name> pid N] ` (the last 20 are kept for errors). Fails promptly if
    /// the child exits before it connects, or after the connect timeout (10 s).
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

    pub(super) fn conn(&self) -> &Arc<Conn> {
        &self.client.conn
    }
}

impl IpcDriver {
    pub(super) fn call(
        &self,
        op: &'static str,
        path: Option<&str>,
        kind: CallKind,
    ) -> Result<Call> {
        Call::new(self.conn(), op, path, kind).map(|(call, _, _)| call)
    }

    pub(super) async fn plain<T: DeserializeOwned>(
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

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path = %path))]
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

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path = %path, len = content.len()))]
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

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path = %path, offset = offset))]
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

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path = %path, append = append))]
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

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path = %path))]
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

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path = %path))]
    async fn list(&self, path: &str) -> Result<Vec<String>> {
        path::check_dir(self.name(), path)?;
        self.plain("list", path, Request::List { path: path.into() })
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), source = %source, dest = %dest))]
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

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path = %path))]
    async fn delete(&self, path: &str) -> Result<()> {
        path::check(self.name(), path)?;
        self.plain::<serde_json::Value>("delete", path, Request::Delete { path: path.into() })
            .await
            .map(drop)
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path = %path))]
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

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.name(), path = %path, start_after = options.start_after.as_deref()))]
    async fn walk(&self, path: &str, options: &WalkOptions, f: &mut WalkFn<'_>) -> Result<()> {
        path::check_dir(self.name(), path)?;
        let mut call = self.call("walk", Some(path), CallKind::Walk)?;
        call.send_request(&Request::Walk {
            path: path.into(),
            start_after: options.start_after.as_deref().map(Into::into),
        })
        .await?;
        if self.conn().minor >= wire::STREAMED_WALK_MINOR {
            return self.streamed_walk(call, f).await;
        }
        loop {
            match call.recv().await? {
                Event::WalkEntry(payload) => {
                    let info = self.walk_entry(&call, &payload)?;
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

impl IpcDriver {
    /// The `FILEINFO` of a `WALK_ENTRY`.
    fn walk_entry(&self, call: &Call, payload: &[u8]) -> Result<FileInfo> {
        serde_json::from_slice::<FileInfoWire>(payload)
            .map_err(|e| e.to_string())
            .and_then(|info| info.into_info(self.conn().minor))
            .map_err(|e| call.protocol(format!("WALK_ENTRY is not understood: {e}")))
    }

    /// A walk of protocol 1.3: the server sends entries ahead within the window; the client
    /// credits what its callback consumed, drops entries below a directory it skipped (and
    /// tells the server, which skips the rest), and after a stop drops everything until the
    /// response.
    async fn streamed_walk(&self, mut call: Call, f: &mut WalkFn<'_>) -> Result<()> {
        let mut window = wire::WALK_WINDOW;
        let mut uncredited: u64 = 0;
        let mut skipped: Vec<String> = Vec::new();
        let mut stopped = false;
        loop {
            match call.recv().await? {
                Event::WalkEntry(payload) => {
                    let len = payload.len() as u64;
                    if len > window {
                        return Err(call.protocol(format!(
                            "WALK_ENTRY of {len} bytes beyond the walk's window of {window}"
                        )));
                    }
                    window -= len;
                    uncredited += len;
                    if stopped {
                        continue;
                    }
                    let info = self.walk_entry(&call, &payload)?;
                    if !skipped.iter().any(|dir| path::is_within(dir, &info.path)) {
                        match f(&info) {
                            WalkControl::Continue => {}
                            WalkControl::SkipDir => {
                                let dir = if info.is_dir {
                                    info.path.clone()
                                } else {
                                    path::parent(&info.path).unwrap_or(path::ROOT).to_owned()
                                };
                                call.send(
                                    FrameType::WalkControl,
                                    call.id,
                                    wire::walk_skip_payload(&dir),
                                )
                                .await?;
                                skipped.push(dir);
                            }
                            WalkControl::Stop => {
                                stopped = true;
                                call.send(
                                    FrameType::WalkControl,
                                    call.id,
                                    Bytes::from_static(&[2]),
                                )
                                .await?;
                                continue;
                            }
                        }
                    }
                    // Credit a quarter of the window at a time.
                    if uncredited >= wire::WALK_WINDOW / 4 {
                        let n = u32::try_from(uncredited).unwrap_or(u32::MAX);
                        call.send(FrameType::Credit, call.id, credit_payload(n))
                            .await?;
                        window += u64::from(n);
                        uncredited -= u64::from(n);
                    }
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
