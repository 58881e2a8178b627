//! The connection's plumbing, shared by client and server: the frame writer and the reading of
//! frames (flow control is in [`crate::flow`]).
//!
//! # The writer
//!
//! Every frame goes through [`Outbox::send`], which never awaits: when nothing is queued it
//! writes the frame straight to the socket (non-blocking, under a short lock), so a small
//! request costs one `write` syscall and no task hop; what the socket does not take at once is
//! queued and written by the connection's writer task, in order. Because a frame is either
//! written whole or queued whole before `send` returns, a caller that is cancelled can never
//! leave half a frame on the wire. The queue is bounded by the protocol's flow control: stream
//! data is sent only within a window, and everything else is small (but for a response longer
//! than a frame, at most 64 MiB, whose pieces share the allocation of its JSON).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::Notify;

use crate::frame::{self, Frame, FrameDecoder, FrameError, FrameType, HEADER_LEN};
use crate::socket::{self, SocketReader};

/// How much a read asks for when no large frame is being received.
const READ_CHUNK: usize = 64 * 1024;

/// Payloads up to this size are copied next to their header and written in one piece.
const SMALL_FRAME: usize = 16 * 1024;

/// Slices gathered into one vectored write.
const MAX_IOV: usize = 64;

/// A boxed write half.
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;
/// A boxed read half.
pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;

/// The read half of a connection.
pub(crate) enum ReadHalf {
    /// A Unix socket, registered for readability only (see [`crate::socket`]).
    Socket(SocketReader),
    /// Any other stream.
    Stream(BoxRead),
}

/// Splits a stream into halves; a tokio `UnixStream` is split into halves that wake only for
/// their own direction, without a lock between them.
pub(crate) fn split_stream<S>(stream: S) -> (ReadHalf, BoxWrite)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut slot = Some(stream);
    let unix = (&mut slot as &mut dyn std::any::Any)
        .downcast_mut::<Option<tokio::net::UnixStream>>()
        .and_then(Option::take);
    if let Some(unix) = unix {
        return match socket::split(unix) {
            Ok((r, w)) => (ReadHalf::Socket(r), Box::new(w)),
            Err(Some(unix)) => {
                let (r, w) = unix.into_split();
                (ReadHalf::Stream(Box::new(r)), Box::new(w))
            }
            Err(None) => closed(),
        };
    }
    match slot {
        Some(s) => {
            let (r, w) = tokio::io::split(Box::pin(s));
            (ReadHalf::Stream(Box::new(r)), Box::new(w))
        }
        // Not reached (the stream was taken only if it was a UnixStream).
        None => closed(),
    }
}

/// The halves of a connection that is closed already: a failure the caller reports as such,
/// rather than a panic.
fn closed() -> (ReadHalf, BoxWrite) {
    (
        ReadHalf::Stream(Box::new(tokio::io::empty())),
        Box::new(tokio::io::sink()),
    )
}

/// The state behind the outbox's lock.
struct OutState {
    io: Option<BoxWrite>,
    queue: VecDeque<Bytes>,
    needs_flush: bool,
    /// Between [`Outbox::cork`] and [`Outbox::uncork`]: frames are queued, not written.
    corked: bool,
    task_waker: Option<Waker>,
    error: Option<String>,
}

/// The sending side of a connection: see the module docs.
pub(crate) struct Outbox {
    state: Mutex<OutState>,
    /// Bytes accepted by `send` so far.
    enqueued: AtomicU64,
    /// Bytes handed to the socket so far.
    written: AtomicU64,
    closed: AtomicBool,
    /// Wakes [`Outbox::drain`] when bytes go out or the outbox closes.
    progress: Notify,
    /// How many [`Outbox::drain`] calls wait: the writers notify only then (a notification
    /// takes a lock, on every write).
    draining: AtomicUsize,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("enqueued", &self.enqueued.load(Ordering::Relaxed))
            .field("written", &self.written.load(Ordering::Relaxed))
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// The outbox was closed (by the other side going away, a write error, or shutdown).
#[derive(Debug, Clone)]
pub(crate) struct Closed(pub(crate) String);

impl Outbox {
    /// An outbox over `io`, and the future of its writer task (spawn it).
    pub(crate) fn new(io: BoxWrite) -> (Arc<Outbox>, impl Future<Output = ()> + Send + 'static) {
        let outbox = Arc::new(Outbox {
            state: Mutex::new(OutState {
                io: Some(io),
                queue: VecDeque::new(),
                needs_flush: false,
                corked: false,
                task_waker: None,
                error: None,
            }),
            enqueued: AtomicU64::new(0),
            written: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            progress: Notify::new(),
            draining: AtomicUsize::new(0),
        });
        let task = writer_task(Arc::clone(&outbox));
        (outbox, task)
    }

    fn lock(&self) -> MutexGuard<'_, OutState> {
        // A panic while holding this lock leaves a consistent queue behind: go on with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once the outbox is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The reason the outbox closed, if it did because of an error.
    pub(crate) fn error(&self) -> Option<String> {
        self.lock().error.clone()
    }

    /// Sends a frame with a payload of at most [`frame::MAX_PAYLOAD`] bytes, whole, in order.
    /// Never waits.
    pub(crate) fn send(&self, kind: FrameType, id: u64, payload: Bytes) -> Result<(), Closed> {
        let header = match frame::encode_header(kind, id, payload.len()) {
            Ok(h) => h,
            Err(e) => return Err(Closed(e.to_string())),
        };
        let total = HEADER_LEN + payload.len();
        let mut st = self.lock();
        if st.io.is_none() {
            return Err(Closed(
                st.error
                    .clone()
                    .unwrap_or_else(|| "the connection is closed".to_owned()),
            ));
        }
        self.enqueued.fetch_add(total as u64, Ordering::Relaxed);
        if st.corked {
            // Written together at `uncork`, unless the writer task is at work already.
            push_frame(&mut st, &header, payload);
            return Ok(());
        }
        if !st.queue.is_empty() || st.needs_flush {
            // The writer task owns the socket's waker until it is done: queue behind it.
            push_frame(&mut st, &header, payload);
            wake(&mut st);
            return Ok(());
        }
        // Nothing queued: try to write the frame straight away, without waiting.
        let mut cx = Context::from_waker(Waker::noop());
        let small = payload.len() <= SMALL_FRAME;
        let joined;
        let (first, second): (&[u8], &[u8]) = if small {
            let mut buf = Vec::with_capacity(total);
            buf.extend_from_slice(&header);
            buf.extend_from_slice(&payload);
            joined = buf;
            (&joined, &[])
        } else {
            (&header, &payload)
        };
        let mut done = 0usize;
        let mut failed = None;
        if let Some(io) = st.io.as_mut() {
            while done < total {
                let slices = slices_from(first, second, done);
                match Pin::new(&mut *io).poll_write_vectored(&mut cx, &slices) {
                    Poll::Ready(Ok(0)) => {
                        failed = Some("the connection accepts no more bytes".to_owned());
                        break;
                    }
                    Poll::Ready(Ok(n)) => done += n,
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Poll::Ready(Err(e)) => {
                        failed = Some(format!("writing to the connection failed: {e}"));
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        if let Some(reason) = failed {
            self.fail_locked(&mut st, reason.clone());
            return Err(Closed(reason));
        }
        self.written.fetch_add(done as u64, Ordering::SeqCst);
        if done == total {
            // Flushing a socket is a no-op; other streams may need the writer task for it.
            let flushed = match st.io.as_mut() {
                Some(io) => Pin::new(&mut **io).poll_flush(&mut cx),
                None => Poll::Ready(Ok(())),
            };
            match flushed {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    let reason = format!("flushing the connection failed: {e}");
                    self.fail_locked(&mut st, reason.clone());
                    return Err(Closed(reason));
                }
                Poll::Pending => {
                    st.needs_flush = true;
                    wake(&mut st);
                }
            }
            drop(st);
            self.notify_progress();
            return Ok(());
        }
        st.needs_flush = true;
        {
            // Queue what the socket did not take, in order.
            if done < first.len() {
                st.queue.push_back(Bytes::copy_from_slice(&first[done..]));
                if !second.is_empty() {
                    st.queue.push_back(payload.clone());
                }
            } else {
                let from = done - first.len();
                st.queue.push_back(payload.slice(from..));
            }
        }
        // The writer task writes the rest when the socket takes more.
        wake(&mut st);
        Ok(())
    }

    /// Holds back the frames sent from now on, to be written together by [`Outbox::uncork`]:
    /// a server answering a batch of requests that arrived in one read answers them in one
    /// write. Frames still go out in the order they were sent.
    pub(crate) fn cork(&self) {
        self.lock().corked = true;
    }

    /// Writes what was held back since [`Outbox::cork`]: straight to the socket when it takes
    /// it all at once, else through the writer task.
    pub(crate) fn uncork(&self) {
        let mut st = self.lock();
        st.corked = false;
        if st.queue.is_empty() {
            return;
        }
        if st.needs_flush || st.task_waker.is_none() {
            // The writer task owns the socket (or has not started): leave the queue to it.
            wake(&mut st);
            return;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let OutState { io, queue, .. } = &mut *st;
        let Some(io) = io.as_mut() else { return };
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let pieces = gather(queue, &mut slices);
        let written = match Pin::new(&mut **io).poll_write_vectored(&mut cx, &slices[..pieces]) {
            Poll::Ready(Ok(n)) if n > 0 => n,
            // Nothing taken, or an error: the writer task retries it and reports the error.
            _ => 0,
        };
        consume(queue, written);
        self.written.fetch_add(written as u64, Ordering::SeqCst);
        if !st.queue.is_empty() {
            st.needs_flush = true;
            wake(&mut st);
        }
        drop(st);
        if written > 0 {
            self.notify_progress();
        }
    }

    /// Waits until everything sent so far has been handed to the socket, or `timeout` passed,
    /// or the outbox closed. True when everything went out.
    pub(crate) async fn drain(&self, timeout: Duration) -> bool {
        let target = self.enqueued.load(Ordering::Relaxed);
        // Counted before `written` is read, and the writers add to `written` before they look
        // at the count (both SeqCst): either this sees their bytes or they notify it.
        self.draining.fetch_add(1, Ordering::SeqCst);
        let _counted = DrainGuard(&self.draining);
        let wait = async {
            loop {
                let notified = self.progress.notified();
                if self.written.load(Ordering::SeqCst) >= target {
                    return true;
                }
                if self.is_closed() {
                    return false;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// Closes the outbox: the write half is dropped (the peer sees end of file once the read
    /// half is gone too) and later sends fail.
    pub(crate) fn close(&self, reason: &str) {
        let mut st = self.lock();
        if st.error.is_none() {
            st.error = Some(reason.to_owned());
        }
        self.close_locked(&mut st);
    }

    /// Shuts the write direction down gracefully once what is queued is written (the peer sees
    /// end of file), then closes.
    pub(crate) async fn shutdown(&self, timeout: Duration) {
        self.drain(timeout).await;
        let io = self.lock().io.take();
        if let Some(mut io) = io {
            let _ =
                tokio::time::timeout(timeout, poll_fn(|cx| Pin::new(&mut *io).poll_shutdown(cx)))
                    .await;
        }
        self.close("the connection was shut down");
    }

    /// Wakes the [`Outbox::drain`] calls waiting, if any.
    fn notify_progress(&self) {
        if self.draining.load(Ordering::SeqCst) > 0 {
            self.progress.notify_waiters();
        }
    }

    fn fail_locked(&self, st: &mut OutState, reason: String) {
        if st.error.is_none() {
            st.error = Some(reason);
        }
        self.close_locked(st);
    }

    fn close_locked(&self, st: &mut OutState) {
        st.io = None;
        st.queue.clear();
        self.closed.store(true, Ordering::SeqCst);
        wake(st);
        self.notify_progress();
    }
}

/// Takes a waiting [`Outbox::drain`] off the count when it ends, however it ends.
struct DrainGuard<'a>(&'a AtomicUsize);

impl Drop for DrainGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn wake(st: &mut OutState) {
    if let Some(w) = st.task_waker.take() {
        w.wake();
    }
}

fn push_frame(st: &mut OutState, header: &[u8; HEADER_LEN], payload: Bytes) {
    if payload.len() <= SMALL_FRAME {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + payload.len());
        buf.extend_from_slice(header);
        buf.extend_from_slice(&payload);
        st.queue.push_back(buf.freeze());
    } else {
        st.queue.push_back(Bytes::copy_from_slice(header));
        st.queue.push_back(payload);
    }
}

/// Points `slices` at the first pieces of `queue` (at most [`MAX_IOV`]) for one vectored write,
/// and returns how many it filled: on the stack, as this runs for every answer a server sends.
fn gather<'a>(queue: &'a VecDeque<Bytes>, slices: &mut [IoSlice<'a>; MAX_IOV]) -> usize {
    let mut filled = 0;
    for (slot, piece) in slices.iter_mut().zip(queue) {
        *slot = IoSlice::new(piece);
        filled += 1;
    }
    filled
}

/// Drops the first `n` bytes of `queue`, which the socket took.
fn consume(queue: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = queue.front_mut() else {
            break;
        };
        if n >= front.len() {
            n -= front.len();
            queue.pop_front();
        } else {
            let rest = front.slice(n..);
            *front = rest;
            n = 0;
        }
    }
}

/// The unwritten parts of `first` then `second`, `done` bytes in.
fn slices_from<'a>(first: &'a [u8], second: &'a [u8], done: usize) -> [IoSlice<'a>; 2] {
    if done < first.len() {
        [IoSlice::new(&first[done..]), IoSlice::new(second)]
    } else {
        [
            IoSlice::new(&second[done - first.len()..]),
            IoSlice::new(&[]),
        ]
    }
}

/// Writes what the outbox queued, in order, until the outbox closes.
async fn writer_task(outbox: Arc<Outbox>) {
    poll_fn(|cx| poll_writer(&outbox, cx)).await;
}

fn poll_writer(outbox: &Outbox, cx: &mut Context<'_>) -> Poll<()> {
    let mut st = outbox.lock();
    loop {
        let OutState {
            io,
            queue,
            needs_flush,
            task_waker,
            ..
        } = &mut *st;
        let Some(io) = io.as_mut() else {
            return Poll::Ready(());
        };
        if queue.is_empty() {
            if queue.capacity() > 1024 {
                // A burst is over: give its room back.
                queue.shrink_to(64);
            }
            if *needs_flush {
                match Pin::new(&mut **io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => *needs_flush = false,
                    Poll::Ready(Err(e)) => {
                        outbox.fail_locked(&mut st, format!("flushing the connection failed: {e}"));
                        return Poll::Ready(());
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            match task_waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *task_waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let pieces = gather(queue, &mut slices);
        match Pin::new(&mut **io).poll_write_vectored(cx, &slices[..pieces]) {
            Poll::Ready(Ok(0)) => {
                outbox.fail_locked(&mut st, "the connection accepts no more bytes".to_owned());
                return Poll::Ready(());
            }
            Poll::Ready(Ok(n)) => {
                outbox.written.fetch_add(n as u64, Ordering::SeqCst);
                *needs_flush = true;
                consume(queue, n);
                outbox.notify_progress();
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Poll::Ready(Err(e)) => {
                outbox.fail_locked(&mut st, format!("writing to the connection failed: {e}"));
                return Poll::Ready(());
            }
            Poll::Pending => {
                // The socket wakes us when it is writable; `send` queues behind us meanwhile.
                return Poll::Pending;
            }
        }
    }
}

/// What ended a connection's reading.
#[derive(Debug)]
pub(crate) enum ReadEnd {
    /// End of file.
    Eof,
    /// A read failed.
    Io(io::Error),
    /// The bytes break the framing.
    Frame(FrameError),
}

impl std::fmt::Display for ReadEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadEnd::Eof => f.write_str("the connection was closed"),
            ReadEnd::Io(e) => write!(f, "reading from the connection failed: {e}"),
            ReadEnd::Frame(e) => write!(f, "protocol error: {e}"),
        }
    }
}

/// Reads frames: a buffer, a decoder and the read half.
pub(crate) struct FrameReader {
    io: ReadHalf,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl FrameReader {
    /// A reader over `io`.
    pub(crate) fn new(io: ReadHalf) -> FrameReader {
        FrameReader {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            decoder: FrameDecoder::new(),
        }
    }

    /// The next frame already in the buffer, without reading.
    pub(crate) fn buffered(&mut self) -> Result<Option<Frame>, ReadEnd> {
        if let ReadHalf::Socket(_) = self.io {
            // A long frame is read into room of its own: do not let the decoder reserve it.
            let total = self.decoder.frame_len(&self.buf).map_err(ReadEnd::Frame)?;
            if total.is_some_and(|total| total > socket::SCRATCH && total > self.buf.len()) {
                return Ok(None);
            }
        }
        self.decoder.decode(&mut self.buf).map_err(ReadEnd::Frame)
    }

    /// Reads more bytes into the buffer (cancel safe: bytes read are kept).
    pub(crate) async fn fill(&mut self) -> Result<(), ReadEnd> {
        let read = match &mut self.io {
            ReadHalf::Socket(socket) => {
                let total = self.decoder.frame_len(&self.buf).map_err(ReadEnd::Frame)?;
                let buf = &mut self.buf;
                poll_fn(|cx| socket.poll_fill(cx, buf, total)).await
            }
            ReadHalf::Stream(io) => {
                if self.buf.capacity() - self.buf.len() < 1024 {
                    self.buf.reserve(READ_CHUNK);
                }
                io.read_buf(&mut self.buf).await
            }
        };
        match read {
            Ok(0) => Err(ReadEnd::Eof),
            Ok(_) => Ok(()),
            Err(e) => Err(ReadEnd::Io(e)),
        }
    }

    /// The next frame, reading as needed.
    pub(crate) async fn next(&mut self) -> Result<Frame, ReadEnd> {
        loop {
            if let Some(frame) = self.buffered()? {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outbox writing into one end of a socket pair, its writer task, the other end's read
    /// half, and the halves that must stay open meanwhile.
    fn outbox_to_peer() -> (
        Arc<Outbox>,
        tokio::task::JoinHandle<()>,
        ReadHalf,
        (ReadHalf, BoxWrite),
    ) {
        let (a, b) = tokio::net::UnixStream::pair().expect("a socket pair");
        let (ar, aw) = split_stream(a);
        let (br, bw) = split_stream(b);
        let (outbox, task) = Outbox::new(aw);
        (outbox, tokio::spawn(task), br, (ar, bw))
    }

    #[tokio::test]
    async fn outbox_writes_in_order_through_backpressure() {
        let (outbox, writer, br, _keep) = outbox_to_peer();
        let reader = tokio::spawn(async move {
            let mut reader = FrameReader::new(br);
            let mut got = Vec::new();
            for _ in 0..200 {
                let f = reader.next().await.expect("a frame");
                got.push((f.id, f.payload.len(), f.payload.first().copied()));
            }
            got
        });
        for i in 0..200u64 {
            let len = if i % 3 == 0 {
                1 << 20
            } else {
                (i as usize) * 7
            };
            outbox
                .send(FrameType::Data, i, Bytes::from(vec![i as u8; len]))
                .expect("open");
        }
        let got = reader.await.expect("reader");
        for (i, (id, len, first)) in got.into_iter().enumerate() {
            let i = i as u64;
            assert_eq!(id, i);
            let want = if i % 3 == 0 {
                1 << 20
            } else {
                (i as usize) * 7
            };
            assert_eq!(len, want);
            if want > 0 {
                assert_eq!(first, Some(i as u8));
            }
        }
        assert!(outbox.drain(Duration::from_secs(5)).await);
        outbox.close("done");
        writer.await.expect("writer task ends");
        assert!(outbox.send(FrameType::Ping, 0, Bytes::new()).is_err());
    }

    /// `drain` waits while the socket is full and returns as soon as the peer reads what
    /// was queued (the writers notify only while a drain waits: that notice must not be
    /// lost), and a drain that ends early takes itself off the count.
    #[tokio::test]
    async fn drain_waits_for_the_peer_and_is_woken_when_it_reads() {
        let (outbox, writer, br, _keep) = outbox_to_peer();
        for i in 0..16u64 {
            outbox
                .send(FrameType::Data, i, Bytes::from(vec![1u8; 1 << 20]))
                .expect("open");
        }
        assert!(
            !outbox.drain(Duration::from_millis(50)).await,
            "16 MiB cannot have left while nobody reads"
        );
        assert_eq!(outbox.draining.load(Ordering::SeqCst), 0);
        let reader = tokio::spawn(async move {
            let mut reader = FrameReader::new(br);
            for _ in 0..16 {
                reader.next().await.expect("a frame");
            }
        });
        assert!(
            outbox.drain(Duration::from_secs(10)).await,
            "the drain saw the queue leave"
        );
        assert_eq!(outbox.draining.load(Ordering::SeqCst), 0);
        reader.await.expect("reader");
        outbox.close("done");
        writer.await.expect("writer task ends");
    }
}
