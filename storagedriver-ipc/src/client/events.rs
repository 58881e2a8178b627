//! What the read loop hands a call: its [`Event`]s, through a channel sized to the call (a
//! plain call gets one response, a stream or walk gets many events).

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// What the reader task hands a call.
#[derive(Debug)]
pub(super) enum Event {
    Response(Bytes),
    Data(Bytes),
    End,
    Reset(Bytes),
    WalkEntry(Bytes),
}

/// The read loop's end of a call's events.
pub(super) enum EventTx {
    /// A plain call: the first event (its response) is the only one it reads.
    Once(Option<oneshot::Sender<Event>>),
    Many(mpsc::UnboundedSender<Event>),
}

/// The call's end of its events.
pub(super) enum EventRx {
    /// `None` once the one event was taken.
    Once(Option<oneshot::Receiver<Event>>),
    Many(mpsc::UnboundedReceiver<Event>),
}

/// A channel for a call that reads one event (`once`) or many.
pub(super) fn channel(once: bool) -> (EventTx, EventRx) {
    if once {
        let (tx, rx) = oneshot::channel();
        (EventTx::Once(Some(tx)), EventRx::Once(Some(rx)))
    } else {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventTx::Many(tx), EventRx::Many(rx))
    }
}

impl EventTx {
    /// Hands over an event. It is dropped when the call went away, or when a call that
    /// reads one event already has it.
    pub(super) fn send(&mut self, event: Event) {
        match self {
            EventTx::Once(tx) => {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(event);
                }
            }
            EventTx::Many(tx) => {
                let _ = tx.send(event);
            }
        }
    }
}

impl EventRx {
    /// The next event; `None` when there will be none (the connection failed, or the one
    /// event was taken).
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        match self {
            EventRx::Once(slot) => {
                let Some(rx) = slot.as_mut() else {
                    return Poll::Ready(None);
                };
                let event = std::task::ready!(Pin::new(rx).poll(cx)).ok();
                *slot = None;
                Poll::Ready(event)
            }
            EventRx::Many(rx) => rx.poll_recv(cx),
        }
    }

    /// Waits for the next event (cancel safe: an event is taken only when returned).
    pub(super) async fn recv(&mut self) -> Option<Event> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
}
