//! The streams the server sends (`get_content`, `reader`): `DATA` within the window, then
//! `END` or `RESET`.

use bytes::Bytes;
use futures::StreamExt;
use storagedriver::ByteStream;

use super::connection::Server;
use crate::flow::{Flow, Window};
use crate::frame::{FrameType, MAX_PAYLOAD};
use crate::wire::{self, ErrorWire};

impl Server {
    /// Sends `stream` on `id` within the window, then `END` (or `RESET` with the error).
    pub(super) async fn send_stream(
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
    pub(super) async fn send_chunk(&self, id: u64, chunk: &Bytes, window: &Window) -> bool {
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
}
