//! [`Call`]: one request in flight, from its registration to its response, and the reset
//! that tells the server when its caller went away.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use storagedriver::error::Message;
use storagedriver::{Error, Result, Retry};

use super::connection::{Conn, Entry};
use super::events::{self, Event, EventRx};
use crate::error::{Failure, IpcError};
use crate::flow::{Consumed, Inflow, Window};
use crate::frame::FrameType;
use crate::wire::{self, Request};

/// A request on its way: its id, its events, and cleanup when the caller goes away.
pub(super) struct Call {
    pub(super) conn: Arc<Conn>,
    pub(super) id: u64,
    pub(super) op: &'static str,
    pub(super) path: Option<String>,
    pub(super) rx: EventRx,
    /// The server may still send on the stream: reset it if the call is dropped.
    pub(super) incoming_open: bool,
    /// The client has not finished its stream: reset it if the call is dropped.
    pub(super) outgoing_open: bool,
    /// A walk waits for the client: reset it if the call is dropped.
    pub(super) walk_open: bool,
}

#[derive(Clone, Copy)]
pub(super) enum CallKind {
    Plain,
    /// The server sends a stream on the request id.
    Incoming,
    /// The client sends a stream on the request id (put_content, writer).
    Outgoing,
    Walk,
}

impl Call {
    /// Registers a new request; fails at once on a dead connection.
    pub(super) fn new(
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
        let (tx, rx) = events::channel(matches!(kind, CallKind::Plain));
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

    pub(super) fn error(&self) -> Error {
        self.conn.dead_error(self.op, self.path.as_deref())
    }

    /// Sends a frame on the connection; a closed connection fails the call, once the
    /// failure is settled (so that the error carries the child's exit status).
    pub(super) async fn send(&self, kind: FrameType, id: u64, payload: Bytes) -> Result<()> {
        match self.conn.out.send(kind, id, payload) {
            Ok(()) => Ok(()),
            Err(closed) => {
                Arc::clone(&self.conn).fail(Failure::Io(closed.0)).await;
                Err(self.error())
            }
        }
    }

    /// Sends without waiting; a failure shows up as the end of the call's events.
    pub(super) fn try_send(&self, kind: FrameType, id: u64, payload: Bytes) {
        if let Err(closed) = self.conn.out.send(kind, id, payload) {
            self.conn.fail_in_background(Failure::Io(closed.0));
        }
    }

    pub(super) async fn send_request(&self, request: &Request<'_>) -> Result<()> {
        self.send(FrameType::Request, self.id, request.to_json().into())
            .await
    }

    /// The next event; a closed channel means the connection failed.
    pub(super) async fn recv(&mut self) -> Result<Event> {
        match self.rx.recv().await {
            Some(event) => Ok(event),
            None => Err(self.error()),
        }
    }

    /// Waits for the `RESPONSE`.
    pub(super) async fn response(&mut self) -> Result<Bytes> {
        match self.recv().await? {
            Event::Response(payload) => Ok(payload),
            other => Err(self.protocol(format!("expected RESPONSE, got {other:?}"))),
        }
    }

    /// A protocol error: the connection fails, and so does this call.
    pub(super) fn protocol(&self, message: String) -> Error {
        self.conn
            .fail_in_background(Failure::Protocol(message.clone()));
        IpcError {
            failure: Failure::Protocol(message),
            child: self.conn.child.as_ref().map(|c| c.report()),
        }
        .into_error(&self.conn.name, self.op, self.path.as_deref())
    }

    /// The `ok` value of a response, or its error.
    pub(super) fn parse<T: DeserializeOwned>(&mut self, payload: &[u8]) -> Result<T> {
        if let Some(ok) = wire::parse_ok(payload) {
            return Ok(ok);
        }
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
    pub(super) async fn run<T: DeserializeOwned>(&mut self, request: &Request<'_>) -> Result<T> {
        self.send_request(request).await?;
        let payload = self.response().await?;
        self.parse(&payload)
    }

    /// The error of a stream that carried another size than its response announced: `got`
    /// bytes (`at_least`: the stream was cut there, more may have followed).
    pub(super) fn size_mismatch(&self, expected: u64, got: u64, at_least: bool) -> Error {
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
    pub(super) fn reset_error(&self, payload: &[u8]) -> Error {
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
