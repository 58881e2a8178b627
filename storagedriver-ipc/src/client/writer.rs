//! The [`FileWriter`] of an `IpcDriver`: data within the handle's window, and the finishing
//! requests.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use bytes::Bytes;
use storagedriver::{Error, FileWriter, Result, WriterState};

use super::calls::{Call, CallKind};
use super::driver::Client;
use crate::flow::Window;
use crate::frame::{FrameType, MAX_PAYLOAD};
use crate::wire::Finish;

/// A writer whose bytes go to the server's driver writer.
pub(super) struct IpcFileWriter {
    pub(super) client: Arc<Client>,
    /// The `writer` call: its id is the handle, and its entry receives the handle's credit.
    pub(super) handle: Call,
    pub(super) window: Arc<Window>,
    pub(super) path: String,
    pub(super) size: u64,
    pub(super) state: WriterState,
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
    pub(super) async fn finish(&mut self, finish: Finish, state: WriterState) -> Result<()> {
        // From here on the server closes the handle whatever the answer.
        self.state = state;
        let request = finish.request(self.handle.id);
        let op = finish.op();
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
        self.finish(Finish::Close, WriterState::Closed).await
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.client.conn.name, path = %self.path))]
    async fn cancel(&mut self) -> Result<()> {
        self.state.ensure_open(&self.client.conn.name, &self.path)?;
        self.finish(Finish::Cancel, WriterState::Cancelled).await
    }

    #[tracing::instrument(level = "debug", skip_all, err(level = "debug"), fields(driver = %self.client.conn.name, path = %self.path))]
    async fn commit(&mut self) -> Result<()> {
        self.state.ensure_open(&self.client.conn.name, &self.path)?;
        self.finish(Finish::Commit, WriterState::Committed).await
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
        let request = Finish::Drop.request(self.handle.id);
        let _ = conn
            .out
            .send(FrameType::Request, id, request.to_json().into());
    }
}
