//! One connection to a driver server: the calls in flight, the read loop that hands each
//! frame to its call, the liveness pings, the watch on the server's exit, and what happens
//! when the connection fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use storagedriver::Error;
use tokio::sync::OnceCell;
use tokio::task::AbortHandle;

use super::events::{Event, EventTx};
use super::{SETTLE, SHUTDOWN_GRACE};
use crate::child::ChildHandle;
use crate::error::{Failure, IpcError};
use crate::flow::{Flow, Inflow, Window, parse_credit};
use crate::frame::{FrameType, MAX_RESPONSE};
use crate::ids::{IdMap, shrink_map};
use crate::io::{FrameReader, Outbox, ReadEnd};
use crate::wire;

/// A request in flight, as the reader task sees it.
pub(super) struct Entry {
    pub(super) tx: EventTx,
    /// For streams the client sends (put_content, writer handles): credit goes here.
    pub(super) window: Option<Arc<Window>>,
    /// For streams the client receives (get_content, reader).
    pub(super) inflow: Option<Inflow>,
    pub(super) walk: bool,
    /// A walk waits for the server's next `WALK_ENTRY` (false while the client owes the
    /// `WALK_CONTROL` of the last one: an entry then breaks the protocol).
    pub(super) walk_turn: bool,
    /// The `RESPONSE_PART` pieces received so far of a response longer than one frame.
    pub(super) parts: Option<Parts>,
}

/// The pieces of a response that came in `RESPONSE_PART` frames, kept as they arrived and
/// joined once, when the final `RESPONSE` comes.
#[derive(Default)]
pub(super) struct Parts {
    pub(super) pieces: Vec<Bytes>,
    pub(super) len: usize,
}

impl Parts {
    /// Adds a piece; false when the response would exceed [`MAX_RESPONSE`].
    pub(super) fn push(&mut self, piece: Bytes) -> bool {
        if piece.len() > MAX_RESPONSE - self.len {
            return false;
        }
        self.len += piece.len();
        self.pieces.push(piece);
        true
    }

    /// The whole response: the pieces, then `last`.
    pub(super) fn join(self, last: &[u8]) -> Bytes {
        let mut whole = BytesMut::with_capacity(self.len + last.len());
        for piece in &self.pieces {
            whole.extend_from_slice(piece);
        }
        whole.extend_from_slice(last);
        whole.freeze()
    }
}

pub(super) struct Pending {
    pub(super) entries: IdMap<Entry>,
    pub(super) closed: bool,
}

/// One connection: shared by the client, its calls, streams and writers, and its tasks.
pub(super) struct Conn {
    /// The driver's name (from `WELCOME`), used in every error.
    pub(super) name: String,
    /// The flow-control rules agreed in the handshake.
    pub(super) flow: Flow,
    /// The minor version whose rules apply (the lower of the two peers').
    pub(super) minor: u32,
    pub(super) out: Arc<Outbox>,
    pub(super) pending: Mutex<Pending>,
    pub(super) next_id: AtomicU64,
    pub(super) dead: OnceCell<IpcError>,
    pub(super) child: Option<Arc<ChildHandle>>,
    /// Frames received so far: the liveness loop sees whether any came since its last look
    /// (a counter, so that the read loop reads no clock per frame).
    pub(super) frames_in: AtomicU64,
}

/// The frames that belong to a call (the others are about the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallFrame {
    Response,
    ResponsePart,
    Data,
    End,
    Reset,
    WalkEntry,
    Credit,
}

/// How the reader handles a frame.
pub(super) enum Dispatch {
    Ok,
    Protocol(String),
    Fatal(String),
}

impl Conn {
    pub(super) fn lock(&self) -> MutexGuard<'_, Pending> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        shrink_map(&mut pending.entries);
        pending
    }

    fn touch(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }

    /// The error a call gets once the connection is unusable.
    pub(super) fn dead_error(&self, operation: &str, path: Option<&str>) -> Error {
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
    pub(super) async fn fail(self: Arc<Self>, failure: Failure) {
        let conn = Arc::clone(&self);
        self.dead
            .get_or_init(|| async move {
                tracing::warn!(driver = %conn.name, %failure, "IPC connection failed");
                if let Failure::Protocol(m) = &failure {
                    let fatal = wire::Fatal::payload(m);
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

    pub(super) fn fail_in_background(self: &Arc<Self>, failure: Failure) {
        if self.dead.initialized() {
            return;
        }
        let conn = Arc::clone(self);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(conn.fail(failure));
        }
    }

    /// Fails every pending call (their channels close) and refuses new ones.
    pub(super) fn close_pending(&self) {
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

    /// Hands a frame to the call it belongs to, after checking it against the call's state.
    pub(super) fn dispatch(&self, frame: crate::frame::Frame) -> Dispatch {
        let id = frame.id;
        let kind = frame.kind;
        let to_call = match kind {
            FrameType::Pong => return Dispatch::Ok,
            FrameType::Fatal => return Dispatch::Fatal(wire::Fatal::message(&frame.payload)),
            FrameType::Response => CallFrame::Response,
            FrameType::ResponsePart => CallFrame::ResponsePart,
            FrameType::Data => CallFrame::Data,
            FrameType::End => CallFrame::End,
            FrameType::Reset => CallFrame::Reset,
            FrameType::WalkEntry => CallFrame::WalkEntry,
            FrameType::Credit => CallFrame::Credit,
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
        };
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
        let event = match to_call {
            CallFrame::Response => match entry.parts.take() {
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
            CallFrame::ResponsePart => {
                let parts = entry.parts.get_or_insert_with(Parts::default);
                if !parts.push(frame.payload) {
                    return Dispatch::Protocol(format!(
                        "the response to request {id} exceeds {MAX_RESPONSE} bytes"
                    ));
                }
                return Dispatch::Ok;
            }
            CallFrame::Data => {
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
            CallFrame::End | CallFrame::Reset => {
                if entry.inflow.is_none() {
                    // A server never ends or resets a stream the client sends: it answers.
                    return Dispatch::Protocol(format!(
                        "{} frame for request {id}, which has no stream from the server",
                        kind.name()
                    ));
                }
                if to_call == CallFrame::End {
                    Event::End
                } else {
                    Event::Reset(frame.payload)
                }
            }
            CallFrame::WalkEntry => {
                if !entry.walk {
                    return Dispatch::Protocol(format!(
                        "WALK_ENTRY frame for request {id}, which is not a walk"
                    ));
                }
                // Walks take turns before 1.3; from 1.3 entries stream (the walk checks
                // them against its window).
                if self.minor < wire::STREAMED_WALK_MINOR {
                    if !entry.walk_turn {
                        return Dispatch::Protocol(format!(
                            "WALK_ENTRY frame for walk {id} before the client's WALK_CONTROL for the previous entry"
                        ));
                    }
                    entry.walk_turn = false;
                }
                Event::WalkEntry(frame.payload)
            }
            CallFrame::Credit => {
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
        };
        // A closed receiver means the caller went away; its guard removes the entry.
        entry.tx.send(event);
        Dispatch::Ok
    }
}

/// Reads frames and hands them to the calls, until the connection ends.
pub(super) async fn read_loop(conn: Arc<Conn>, mut reader: FrameReader) {
    let failure = loop {
        match reader.next().await {
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

/// Fails the connection when the server process exits, and then stops its read loop (`read`):
/// a process of its own may hold the socket open after it, so no end of file would come.
///
/// A task of its own rather than a branch of the read loop, which would poll the exit status
/// again on every frame.
pub(super) async fn exit_watch(conn: Weak<Conn>, child: Arc<ChildHandle>, read: AbortHandle) {
    child.exited().await;
    if let Some(conn) = conn.upgrade() {
        conn.fail(Failure::ServerExited).await;
    }
    read.abort();
}

/// Pings the server and takes it as hung when nothing at all arrives for `timeout`.
pub(super) async fn liveness_loop(conn: Weak<Conn>, timeout: Duration) {
    let period = (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut seen, mut last_frame) = (0, Instant::now());
    loop {
        tick.tick().await;
        let Some(conn) = conn.upgrade() else { return };
        if conn.dead.initialized() {
            return;
        }
        let frames = conn.frames_in.load(Ordering::Relaxed);
        if frames != seen {
            (seen, last_frame) = (frames, Instant::now());
        } else if last_frame.elapsed() > timeout {
            conn.fail(Failure::Liveness(timeout)).await;
            return;
        }
        let _ = conn.out.send(FrameType::Ping, 0, Bytes::new());
    }
}
