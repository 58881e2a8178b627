//! The streams the client sends: `put_content` content, and writer handles with their
//! finishing requests.

use bytes::{Bytes, BytesMut};
use storagedriver::{Error, StorageDriver, path};
use tokio::sync::mpsc;

use super::connection::{ContentEnd, InMsg, InTx, Incoming, Server, WriterFinish};
use crate::flow::{Consumed, credit_payload};
use crate::frame::FrameType;
use crate::wire::{self, Finish, SizeWire};

impl Server {
    pub(super) async fn put_content(
        &self,
        id: u64,
        path: String,
        mut rx: mpsc::UnboundedReceiver<InMsg<ContentEnd>>,
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
                Some(InMsg::Last(ContentEnd)) => break true,
                Some(InMsg::Reset) | None => break false,
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

    pub(super) async fn writer(
        &self,
        id: u64,
        path: String,
        append: bool,
        mut rx: mpsc::UnboundedReceiver<InMsg<WriterFinish>>,
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
                InMsg::Last(WriterFinish { finish, reply }) => {
                    let result = match (finish, failed.take()) {
                        (Finish::Drop, _) => {
                            drop(writer);
                            Ok(())
                        }
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
                    self.respond(reply, finish.op(), Some(&path), result);
                    return;
                }
                InMsg::Reset => return,
            }
        }
    }

    /// A finishing request for a writer handle: queued behind the handle's data.
    pub(super) fn finish(&self, id: u64, handle: u64, finish: Finish) {
        let writer = {
            let mut streams = self.lock();
            match streams.incoming.remove(&handle) {
                Some(Incoming {
                    tx: InTx::Writer(tx),
                    ..
                }) => Some(tx),
                Some(content) => {
                    // `put_content` content, not a writer handle: it stays as it was.
                    streams.incoming.insert(handle, content);
                    None
                }
                None => None,
            }
        };
        let message = InMsg::Last(WriterFinish { finish, reply: id });
        let sent = writer.is_some_and(|tx| tx.send(message).is_ok());
        if !sent {
            let op = finish.op();
            let err = self.backend(op, None, format!("no open writer with handle {handle}"));
            self.respond::<()>(id, op, None, Err(err));
        }
    }
}
