//! One connection a server serves: its state (the streams, writer handles and walks open on
//! it), the handshake, the serving loop, and the sending of responses.

use std::cell::Cell;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use storagedriver::error::Message;
use storagedriver::{Error, Result, Retry, StorageDriver};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::PROTOCOL_VERSION;
use crate::flow::{Consumed, Flow, Inflow, Window};
use crate::frame::{Frame, FrameType, MAX_PAYLOAD, MAX_RESPONSE};
use crate::ids::{IdMap, IdSet, shrink_map};
use crate::io::{FrameReader, Outbox, ReadEnd, split_stream};
use crate::wire::{self, ErrorWire, Finish, WalkSignal};

/// The request a task serves, and whether it has answered it yet.
pub(super) struct Current {
    pub(super) id: u64,
    pub(super) responded: Cell<bool>,
}

tokio::task_local! {
    pub(super) static CURRENT: Current;
}

/// A stream the client sends: `put_content` content or a writer handle's data.
pub(super) struct Incoming {
    pub(super) tx: InTx,
    pub(super) inflow: Inflow,
    /// False for a writer handle until its `ok` is sent: `DATA` before it breaks the protocol.
    pub(super) accepting: bool,
}

/// What the dispatcher hands the task that consumes a stream the client sends: its data, a
/// `RESET`, or what ends the stream (`L`: [`ContentEnd`] or [`WriterFinish`]).
#[derive(Debug)]
pub(super) enum InMsg<L> {
    Data(Bytes),
    Reset,
    Last(L),
}

/// `put_content` content ends with `END`.
#[derive(Debug)]
pub(super) struct ContentEnd;

/// A writer handle ends with a finishing request (`writer_close`, ...), answered on `reply`.
#[derive(Debug)]
pub(super) struct WriterFinish {
    pub(super) finish: Finish,
    pub(super) reply: u64,
}

/// The sending end of a stream's messages, by the kind of stream.
pub(super) enum InTx {
    Content(mpsc::UnboundedSender<InMsg<ContentEnd>>),
    Writer(mpsc::UnboundedSender<InMsg<WriterFinish>>),
}

impl InTx {
    pub(super) fn is_writer(&self) -> bool {
        matches!(self, InTx::Writer(_))
    }

    /// Hands over data; false when nobody consumes the stream any more.
    pub(super) fn data(&self, chunk: Bytes) -> bool {
        match self {
            InTx::Content(tx) => tx.send(InMsg::Data(chunk)).is_ok(),
            InTx::Writer(tx) => tx.send(InMsg::Data(chunk)).is_ok(),
        }
    }

    pub(super) fn reset(&self) {
        let _ = match self {
            InTx::Content(tx) => tx.send(InMsg::Reset).is_ok(),
            InTx::Writer(tx) => tx.send(InMsg::Reset).is_ok(),
        };
    }

    /// A sender of the same kind that nobody receives from: data sent to it is dropped.
    pub(super) fn detached(&self) -> InTx {
        match self {
            InTx::Content(_) => InTx::Content(mpsc::unbounded_channel().0),
            InTx::Writer(_) => InTx::Writer(mpsc::unbounded_channel().0),
        }
    }
}

/// The kinds of stream the client sends, by what ends them.
pub(super) trait StreamEnd: Sized {
    fn sender(tx: mpsc::UnboundedSender<InMsg<Self>>) -> InTx;
}

impl StreamEnd for ContentEnd {
    fn sender(tx: mpsc::UnboundedSender<InMsg<Self>>) -> InTx {
        InTx::Content(tx)
    }
}

impl StreamEnd for WriterFinish {
    fn sender(tx: mpsc::UnboundedSender<InMsg<Self>>) -> InTx {
        InTx::Writer(tx)
    }
}

#[derive(Default)]
pub(super) struct Streams {
    pub(super) incoming: IdMap<Incoming>,
    pub(super) outgoing: IdMap<Arc<Window>>,
    pub(super) walks: IdMap<std::sync::mpsc::Sender<WalkSignal>>,
    /// Requests not answered yet: their ids are in use.
    pub(super) unanswered: IdSet,
}

impl Streams {
    /// Gives memory back after many streams ended (maps do not shrink by themselves).
    pub(super) fn tidy(&mut self) {
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
    pub(super) fn in_use(&self, id: u64) -> bool {
        self.unanswered.contains(&id)
            || self.incoming.contains_key(&id)
            || self.outgoing.contains_key(&id)
            || self.walks.contains_key(&id)
    }
}

pub(super) struct Server {
    pub(super) driver: Arc<dyn StorageDriver>,
    pub(super) name: String,
    pub(super) out: Arc<Outbox>,
    pub(super) streams: Mutex<Streams>,
    /// The minor version whose rules apply (the lower of the two), set by the handshake.
    pub(super) minor: OnceLock<u32>,
}

/// A protocol error: sent as `FATAL`, then the connection closes.
pub(super) struct ProtocolError(pub(super) String);

/// How the serving loop ended.
pub(super) enum End {
    /// The client went away.
    Eof,
    /// The connection failed or the client broke the protocol.
    Failed(String),
}

pub(super) async fn serve_inner<S>(driver: Arc<dyn StorageDriver>, stream: S) -> Result<()>
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
    server.out.uncork();
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
pub(super) async fn run(
    server: &Arc<Server>,
    reader: &mut FrameReader,
    tasks: &mut JoinSet<()>,
) -> End {
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
        // The frames of one read are dispatched corked: the answers of the requests that
        // complete at once leave in one write, before the next read.
        let frame = match reader.buffered() {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                server.out.uncork();
                match reader.fill().await {
                    Ok(()) => {
                        server.out.cork();
                        continue;
                    }
                    Err(ReadEnd::Eof) => return End::Eof,
                    Err(e) => return End::Failed(e.to_string()),
                }
            }
            Err(e) => return server.fatal(ProtocolError(e.to_string())),
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
    pub(super) fn lock(&self) -> MutexGuard<'_, Streams> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.tidy();
        streams
    }

    /// The minor version whose rules apply (0 until the handshake says otherwise).
    pub(super) fn minor(&self) -> u32 {
        self.minor.get().copied().unwrap_or(0)
    }

    /// The connection's flow-control rules (1.0 until the handshake says otherwise).
    pub(super) fn flow(&self) -> Flow {
        Flow::for_minor(self.minor())
    }

    /// Registers the stream the client sends on `id` (`put_content` content, or a writer
    /// handle): the receiver of its frames, and the credit to grant as they are consumed.
    pub(super) fn open_incoming<L: StreamEnd>(
        &self,
        id: u64,
    ) -> (mpsc::UnboundedReceiver<InMsg<L>>, Consumed) {
        let (tx, rx) = mpsc::unbounded_channel();
        let tx = L::sender(tx);
        let flow = self.flow();
        let initial = flow.client_stream_window();
        let (inflow, granted) = Inflow::new(initial);
        let accepting = !tx.is_writer();
        self.lock().incoming.insert(
            id,
            Incoming {
                tx,
                inflow,
                accepting,
            },
        );
        (rx, Consumed::new(granted, flow, initial))
    }

    /// Sends `FATAL` and ends serving.
    pub(super) fn fatal(&self, e: ProtocolError) -> End {
        let payload = wire::Fatal::payload(&e.0);
        let _ = self.out.send(FrameType::Fatal, 0, payload.into());
        End::Failed(format!("protocol error: {}", e.0))
    }

    pub(super) fn handshake(&self, hello: &Frame) -> std::result::Result<(), ProtocolError> {
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
            capabilities: self.driver.capabilities(),
        };
        let payload = serde_json::to_vec(&welcome).unwrap_or_default();
        self.out
            .send(FrameType::Welcome, 0, payload.into())
            .map_err(|e| ProtocolError(e.0))
    }

    pub(super) fn send(&self, kind: FrameType, id: u64, payload: Bytes) {
        // A closed outbox means the connection is going away; the loop notices.
        let _ = self.out.send(kind, id, payload);
    }

    pub(super) fn respond<T: Serialize>(
        &self,
        id: u64,
        op: &str,
        path: Option<&str>,
        result: Result<T>,
    ) {
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
    pub(super) fn respond_in_parts(&self, id: u64, op: &str, path: Option<&str>, payload: Vec<u8>) {
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

    pub(super) fn backend(&self, op: &str, path: Option<&str>, message: String) -> Error {
        Error::backend(&self.name, op, path, Retry::Useless, Message(message))
    }
}
