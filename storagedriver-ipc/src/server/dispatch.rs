//! Dispatch: each frame from the client to the stream, handle or walk it belongs to, and
//! each request to the driver operation it asks for, in a task that turns a panic into an
//! error.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use storagedriver::{StorageDriver, UrlOptions};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::connection::{
    CURRENT, ContentEnd, Current, InMsg, InTx, ProtocolError, Server, WriterFinish,
};
use crate::flow::{Window, credit_payload, parse_credit};
use crate::frame::{Frame, FrameType};
use crate::wire::{self, BadRequest, ErrorWire, FileInfoWire, Finish, Request, SizeWire};

impl Server {
    /// Handles one frame; `Ok(false)` when the client sent `FATAL`.
    pub(super) fn dispatch(
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
                if !incoming.tx.data(frame.payload) {
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
                if let Some(InTx::Content(tx)) = streams.incoming.get(&id).map(|i| &i.tx) {
                    let _ = tx.send(InMsg::Last(ContentEnd));
                    streams.incoming.remove(&id);
                }
            }
            FrameType::Reset => {
                let mut streams = self.lock();
                if let Some(window) = streams.outgoing.remove(&id) {
                    window.close();
                }
                if let Some(incoming) = streams.incoming.remove(&id) {
                    incoming.tx.reset();
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
                let streamed = self.minor() >= wire::STREAMED_WALK_MINOR;
                let Some(signal) = wire::walk_signal_from(&frame.payload, streamed) else {
                    let expected = if streamed {
                        "2, or 1 and a directory"
                    } else {
                        "0, 1 or 2"
                    };
                    return Err(ProtocolError(format!(
                        "WALK_CONTROL payload {:?} is not {expected}",
                        frame.payload
                    )));
                };
                if let Some(tx) = self.lock().walks.get(&id) {
                    let _ = tx.send(signal);
                }
            }
            FrameType::Ping => self.send(FrameType::Pong, id, Bytes::new()),
            FrameType::Fatal => {
                let message = wire::Fatal::message(&frame.payload);
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

    pub(super) fn request(
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
                let (rx, consumed) = self.open_incoming::<ContentEnd>(id);
                self.spawn(tasks, id, op, span, async move {
                    server.put_content(id, path, rx, consumed).await;
                });
            }
            Request::Writer { path, append } => {
                let path = path.into_owned();
                let (rx, consumed) = self.open_incoming::<WriterFinish>(id);
                self.spawn(tasks, id, op, span, async move {
                    server.writer(id, path, append, rx, consumed).await;
                });
            }
            Request::WriterClose { handle } => self.finish(id, handle, Finish::Close),
            Request::WriterCancel { handle } => self.finish(id, handle, Finish::Cancel),
            Request::WriterCommit { handle } => self.finish(id, handle, Finish::Commit),
            Request::WriterDrop { handle } => self.finish(id, handle, Finish::Drop),
            Request::Walk { path, start_after } => {
                let path = path.into_owned();
                let start_after = start_after.map(|s| s.into_owned());
                let (tx, rx) = std::sync::mpsc::channel();
                let mut streams = self.lock();
                streams.walks.insert(id, tx);
                if self.minor() >= wire::STREAMED_WALK_MINOR {
                    streams.outgoing.insert(id, Window::new(wire::WALK_WINDOW));
                }
                drop(streams);
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
    pub(super) fn spawn<F>(
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
    pub(super) fn after_panic(&self, id: u64, op: &str, message: &str) {
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
            if incoming.tx.is_writer() && !responded {
                streams.incoming.remove(&id);
            } else {
                incoming.tx = incoming.tx.detached();
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
}

pub(super) fn join_error_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(panic) => format!("it panicked: {}", panic_message(panic.as_ref())),
        Err(e) => e.to_string(),
    }
}

pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
