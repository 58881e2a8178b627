//! The stream a `reader` call returns: `DATA` as it arrives, with credit as it is consumed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use storagedriver::Result;

use super::calls::Call;
use super::driver::Client;
use super::events::Event;
use crate::flow::{Consumed, credit_payload};
use crate::frame::FrameType;

/// The stream of a `reader`: yields `DATA` payloads as they arrive, grants credit as they are
/// consumed, and resets the stream when dropped early.
pub(super) struct IpcReadStream {
    pub(super) _client: Arc<Client>,
    pub(super) call: Call,
    pub(super) consumed: Consumed,
    pub(super) done: bool,
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
