//! The connection's plumbing, shared by client and server: the frame writer, the reading of
//! frames, and stream windows.
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

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::Notify;

use crate::frame::{self, Frame, FrameDecoder, FrameError, FrameType, HEADER_LEN};

/// Protocol 1.0: every stream's initial window, 4 MiB.
pub(crate) const WINDOW_1_0: u64 = 4 << 20;

/// Protocol 1.0: a receiver grants credit back once it has consumed this much.
pub(crate) const CREDIT_BATCH_1_0: u64 = 1 << 20;

/// Protocol 1.1: the initial window of a stream the client sends, and the first grant the
/// client makes for a stream the server sends (whose window starts at 0): 64 KiB.
pub(crate) const INITIAL_WINDOW: u64 = 64 << 10;

/// Protocol 1.1: the largest window this crate's receivers grow a stream's window to.
pub(crate) const MAX_WINDOW: u64 = 4 << 20;

/// Protocol 1.1: a receiver doubles a stream's window when its consumer took less than this
/// to consume a whole window (it reads faster than the window lets the sender send).
pub(crate) const GROW_WITHIN: Duration = Duration::from_millis(20);

/// The flow-control rules of a connection, from the two peers' versions (see PROTOCOL.md,
/// "Streams and flow control").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// One of the peers speaks 1.0: every stream's window starts at 4 MiB and stays there;
    /// credit goes back in batches of 1 MiB.
    V1_0,
    /// Both speak 1.1 or later: a stream the client sends starts with a window of 64 KiB, a
    /// stream the server sends with a window of 0 (the client opens it with `CREDIT` when its
    /// caller starts reading); receivers grow windows with their consumer's pace.
    V1_1,
}

impl Flow {
    /// The rules for a connection whose negotiated minor version (the lower of the peers')
    /// is `minor`.
    pub(crate) fn for_minor(minor: u32) -> Flow {
        if minor >= 1 { Flow::V1_1 } else { Flow::V1_0 }
    }

    /// The window a stream the client sends starts with.
    pub(crate) fn client_stream_window(self) -> u64 {
        match self {
            Flow::V1_0 => WINDOW_1_0,
            Flow::V1_1 => INITIAL_WINDOW,
        }
    }

    /// The window a stream the server sends starts with.
    pub(crate) fn server_stream_window(self) -> u64 {
        match self {
            Flow::V1_0 => WINDOW_1_0,
            Flow::V1_1 => 0,
        }
    }
}

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

/// Splits a stream into boxed halves; a `UnixStream` is split without a lock between them.
pub(crate) fn split_stream<S>(stream: S) -> (BoxRead, BoxWrite)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut slot = Some(stream);
    let unix = (&mut slot as &mut dyn std::any::Any)
        .downcast_mut::<Option<tokio::net::UnixStream>>()
        .and_then(Option::take);
    if let Some(unix) = unix {
        let (r, w) = unix.into_split();
        return (Box::new(r), Box::new(w));
    }
    match slot {
        Some(s) => {
            let (r, w) = tokio::io::split(Box::pin(s));
            (Box::new(r), Box::new(w))
        }
        // Not reached (the stream was taken only if it was a UnixStream); a closed connection
        // rather than a panic all the same.
        None => (Box::new(tokio::io::empty()), Box::new(tokio::io::sink())),
    }
}

/// The state behind the outbox's lock.
struct OutState {
    io: Option<BoxWrite>,
    queue: VecDeque<Bytes>,
    queued_bytes: usize,
    needs_flush: bool,
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
    progress: Notify,
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
                queued_bytes: 0,
                needs_flush: false,
                task_waker: None,
                error: None,
            }),
            enqueued: AtomicU64::new(0),
            written: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            progress: Notify::new(),
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
        self.closed.load(Ordering::Acquire)
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
        self.written.fetch_add(done as u64, Ordering::Relaxed);
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
            self.progress.notify_waiters();
            return Ok(());
        }
        st.needs_flush = true;
        {
            // Queue what the socket did not take, in order.
            if done < first.len() {
                st.queue.push_back(Bytes::copy_from_slice(&first[done..]));
                st.queued_bytes += first.len() - done;
                if !second.is_empty() {
                    st.queue.push_back(payload.clone());
                    st.queued_bytes += payload.len();
                }
            } else {
                let from = done - first.len();
                st.queue.push_back(payload.slice(from..));
                st.queued_bytes += payload.len() - from;
            }
        }
        // The writer task writes the rest when the socket takes more.
        wake(&mut st);
        Ok(())
    }

    /// Waits until everything sent so far has been handed to the socket, or `timeout` passed,
    /// or the outbox closed. True when everything went out.
    pub(crate) async fn drain(&self, timeout: Duration) -> bool {
        let target = self.enqueued.load(Ordering::Relaxed);
        let wait = async {
            loop {
                let notified = self.progress.notified();
                if self.written.load(Ordering::Relaxed) >= target {
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

    fn fail_locked(&self, st: &mut OutState, reason: String) {
        if st.error.is_none() {
            st.error = Some(reason);
        }
        self.close_locked(st);
    }

    fn close_locked(&self, st: &mut OutState) {
        st.io = None;
        st.queue.clear();
        st.queued_bytes = 0;
        self.closed.store(true, Ordering::Release);
        wake(st);
        self.progress.notify_waiters();
    }
}

fn wake(st: &mut OutState) {
    if let Some(w) = st.task_waker.take() {
        w.wake();
    }
}

fn push_frame(st: &mut OutState, header: &[u8; HEADER_LEN], payload: Bytes) {
    st.queued_bytes += HEADER_LEN + payload.len();
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
            queued_bytes,
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
        let slices: Vec<IoSlice<'_>> = queue
            .iter()
            .take(MAX_IOV)
            .map(|b| IoSlice::new(b))
            .collect();
        match Pin::new(&mut **io).poll_write_vectored(cx, &slices) {
            Poll::Ready(Ok(0)) => {
                outbox.fail_locked(&mut st, "the connection accepts no more bytes".to_owned());
                return Poll::Ready(());
            }
            Poll::Ready(Ok(mut n)) => {
                drop(slices);
                *queued_bytes -= n.min(*queued_bytes);
                outbox.written.fetch_add(n as u64, Ordering::Relaxed);
                *needs_flush = true;
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
                outbox.progress.notify_waiters();
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Poll::Ready(Err(e)) => {
                drop(slices);
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
    io: BoxRead,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl FrameReader {
    /// A reader over `io`.
    pub(crate) fn new(io: BoxRead) -> FrameReader {
        FrameReader {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            decoder: FrameDecoder::new(),
        }
    }

    /// The next frame already in the buffer, without reading.
    pub(crate) fn buffered(&mut self) -> Result<Option<Frame>, ReadEnd> {
        self.decoder.decode(&mut self.buf).map_err(ReadEnd::Frame)
    }

    /// Reads more bytes into the buffer (cancel safe: bytes read are kept).
    pub(crate) async fn fill(&mut self) -> Result<(), ReadEnd> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(READ_CHUNK);
        }
        match self.io.read_buf(&mut self.buf).await {
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

/// The sending side's view of one stream's window.
#[derive(Debug)]
pub(crate) struct Window {
    state: Mutex<WindowState>,
    notify: Notify,
}

#[derive(Debug)]
struct WindowState {
    available: u64,
    closed: bool,
}

impl Window {
    /// A window that starts at `initial` bytes (see [`Flow`]).
    pub(crate) fn new(initial: u64) -> Arc<Window> {
        Arc::new(Window {
            state: Mutex::new(WindowState {
                available: initial,
                closed: false,
            }),
            notify: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, WindowState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes up to `want` bytes of window, waiting while none is left; `None` once closed.
    pub(crate) async fn acquire(&self, want: usize) -> Option<usize> {
        loop {
            let notified = self.notify.notified();
            {
                let mut st = self.lock();
                if st.closed {
                    return None;
                }
                if st.available > 0 {
                    let n = (want as u64).min(st.available);
                    st.available -= n;
                    // `n <= want`, a usize.
                    return Some(n as usize);
                }
            }
            notified.await;
        }
    }

    /// Waits until there is window to send (true), without taking any; false once closed.
    /// A sender calls it before it produces data, so that it never holds data it may not send.
    pub(crate) async fn ready(&self) -> bool {
        loop {
            let notified = self.notify.notified();
            {
                let st = self.lock();
                if st.closed {
                    return false;
                }
                if st.available > 0 {
                    return true;
                }
            }
            notified.await;
        }
    }

    /// Adds `n` bytes of credit (saturating: a peer cannot overflow it).
    pub(crate) fn grant(&self, n: u64) {
        let mut st = self.lock();
        st.available = st.available.saturating_add(n);
        drop(st);
        self.notify.notify_one();
    }

    /// Closes the window: waiters and later acquires get `None`.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
        self.notify.notify_waiters();
    }

    /// Waits until the window is closed (the receiver reset the stream).
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.notify.notified();
            if self.lock().closed {
                return;
            }
            notified.await;
        }
    }
}

/// The receiving side's accounting of one stream: what arrived against what was granted.
#[derive(Debug)]
pub(crate) struct Inflow {
    received: u64,
    initial: u64,
    granted: Arc<AtomicU64>,
}

impl Inflow {
    /// A new stream's accounting, whose window starts at `initial` bytes, and the counter its
    /// consumer adds grants to.
    pub(crate) fn new(initial: u64) -> (Inflow, Arc<AtomicU64>) {
        let granted = Arc::new(AtomicU64::new(initial));
        (
            Inflow {
                received: 0,
                initial,
                granted: Arc::clone(&granted),
            },
            granted,
        )
    }

    /// Records `n` bytes of credit granted without a consumer (whose data is dropped).
    pub(crate) fn granted_back(&self, n: u64) {
        self.granted.fetch_add(n, Ordering::AcqRel);
    }

    /// Credits everything received that was not credited yet (its consumer is gone): records
    /// it as granted and returns it, for a `CREDIT` to send.
    pub(crate) fn release(&mut self) -> u64 {
        let credited = self
            .granted
            .load(Ordering::Acquire)
            .saturating_sub(self.initial);
        let owed = self.received.saturating_sub(credited);
        self.granted.fetch_add(owed, Ordering::AcqRel);
        owed
    }

    /// Counts `n` arriving bytes; false when the sender overran its window.
    pub(crate) fn receive(&mut self, n: usize) -> bool {
        self.received = self.received.saturating_add(n as u64);
        self.received <= self.granted.load(Ordering::Acquire)
    }
}

/// The consumer's side of an [`Inflow`]: counts consumed bytes, says when to send credit and
/// how much, and (protocol 1.1) tunes the stream's window to the consumer's pace.
///
/// Under 1.1 the window starts at [`INITIAL_WINDOW`] (or at 0 for a stream the server sends,
/// until [`Consumed::open`]); credit goes back once a quarter of the window was consumed; and
/// each time the consumer has consumed a whole window, the window doubles (up to
/// [`MAX_WINDOW`]) if that took less than [`GROW_WITHIN`]: the extra is added to the credit.
#[derive(Debug)]
pub(crate) struct Consumed {
    granted: Arc<AtomicU64>,
    flow: Flow,
    /// The stream's window: the most the sender may have sent beyond what was consumed.
    window: u64,
    /// Consumed bytes not credited back yet.
    pending: u64,
    /// Bytes consumed since `round_start` (1.1 growth rule).
    round: u64,
    round_start: Instant,
}

impl Consumed {
    /// Tracks consumption for the stream whose grants go to `granted` and whose window
    /// started at `initial` bytes.
    pub(crate) fn new(granted: Arc<AtomicU64>, flow: Flow, initial: u64) -> Consumed {
        Consumed {
            granted,
            flow,
            window: initial,
            pending: 0,
            round: 0,
            round_start: Instant::now(),
        }
    }

    /// The stream's current window.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn window(&self) -> u64 {
        self.window
    }

    /// The credit that opens a stream whose window started at 0 ([`INITIAL_WINDOW`]), to send
    /// when the consumer starts reading; `None` when the window is open already.
    pub(crate) fn open(&mut self) -> Option<u32> {
        if self.window > 0 {
            return None;
        }
        self.window = INITIAL_WINDOW;
        self.round = 0;
        self.round_start = Instant::now();
        self.granted.fetch_add(INITIAL_WINDOW, Ordering::AcqRel);
        Some(INITIAL_WINDOW as u32)
    }

    /// Widens an open 1.1 window to `to` bytes (at most [`MAX_WINDOW`]) at once, for a
    /// consumer that knows it takes that much without waiting (`get_content` of a known
    /// size); the extra credit to send, if any.
    pub(crate) fn widen(&mut self, to: u64) -> Option<u32> {
        let to = to.min(MAX_WINDOW);
        if self.flow != Flow::V1_1 || self.window == 0 || to <= self.window {
            return None;
        }
        let extra = to - self.window;
        self.window = to;
        self.granted.fetch_add(extra, Ordering::AcqRel);
        // `extra <= MAX_WINDOW`.
        Some(extra as u32)
    }

    /// Counts `n` consumed bytes; returns the credit to send now, if any is due.
    pub(crate) fn consume(&mut self, n: usize) -> Option<u32> {
        self.pending = self.pending.saturating_add(n as u64);
        let mut grow = 0;
        match self.flow {
            Flow::V1_0 => {
                if self.pending < CREDIT_BATCH_1_0 {
                    return None;
                }
            }
            Flow::V1_1 => {
                self.round = self.round.saturating_add(n as u64);
                if self.pending < (self.window / 4).max(1) {
                    return None;
                }
                if self.round >= self.window {
                    let now = Instant::now();
                    if self.window < MAX_WINDOW
                        && now.duration_since(self.round_start) < GROW_WITHIN
                    {
                        let grown = (self.window * 2).clamp(INITIAL_WINDOW, MAX_WINDOW);
                        grow = grown - self.window;
                        self.window = grown;
                    }
                    self.round = 0;
                    self.round_start = now;
                }
            }
        }
        // At most u32::MAX in one CREDIT; the rest stays pending.
        let from_pending = self.pending.min(u64::from(u32::MAX) - grow);
        self.pending -= from_pending;
        let credit = from_pending + grow;
        // Record the grant before the peer can act on it.
        self.granted.fetch_add(credit, Ordering::AcqRel);
        // `credit <= u32::MAX`.
        Some(credit as u32)
    }
}

/// Shrinks a map that removals left mostly empty: a map never gives memory back by itself, and
/// a connection that once had many streams open should not keep their room.
pub(crate) fn shrink_map<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() * 4 < map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

/// The payload of a `CREDIT` frame.
pub(crate) fn credit_payload(n: u32) -> Bytes {
    Bytes::copy_from_slice(&n.to_le_bytes())
}

/// The credit of a `CREDIT` payload; `None` unless it is exactly 4 bytes.
pub(crate) fn parse_credit(payload: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = payload.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outbox_writes_in_order_through_backpressure() {
        let (a, b) = tokio::net::UnixStream::pair().expect("a socket pair");
        let (_ar, aw) = split_stream(a);
        let (br, _bw) = split_stream(b);
        let (outbox, task) = Outbox::new(aw);
        let writer = tokio::spawn(task);
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

    #[tokio::test]
    async fn window_waits_for_credit() {
        let w = Window::new(INITIAL_WINDOW);
        assert_eq!(w.acquire(usize::MAX).await, Some(INITIAL_WINDOW as usize));
        let w2 = Arc::clone(&w);
        let waiter = tokio::spawn(async move { w2.acquire(10).await });
        tokio::task::yield_now().await;
        w.grant(3);
        assert_eq!(waiter.await.expect("task"), Some(3));
        w.close();
        assert_eq!(w.acquire(1).await, None);
        w.grant(u64::from(u32::MAX));
        w.grant(u64::MAX);
    }

    #[tokio::test]
    async fn an_empty_window_is_not_ready_until_credit() {
        let w = Window::new(0);
        let w2 = Arc::clone(&w);
        let ready = tokio::spawn(async move { w2.ready().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!ready.is_finished(), "no credit, no data produced");
        w.grant(5);
        assert!(ready.await.expect("task"));
        assert!(w.ready().await, "ready takes nothing");
        assert_eq!(w.acquire(100).await, Some(5));
        let w2 = Arc::clone(&w);
        let ready = tokio::spawn(async move { w2.ready().await });
        tokio::task::yield_now().await;
        w.close();
        assert!(!ready.await.expect("task"));
    }

    #[test]
    fn inflow_and_consumed_1_0() {
        let (mut inflow, granted) = Inflow::new(WINDOW_1_0);
        let mut consumed = Consumed::new(granted, Flow::V1_0, WINDOW_1_0);
        assert_eq!(consumed.open(), None, "a 1.0 window is open from the start");
        assert!(inflow.receive(WINDOW_1_0 as usize));
        assert!(
            !Inflow {
                received: inflow.received,
                initial: inflow.initial,
                granted: Arc::clone(&inflow.granted)
            }
            .receive(1)
        );
        assert_eq!(consumed.consume(1000), None);
        assert_eq!(
            consumed.consume(CREDIT_BATCH_1_0 as usize),
            Some(CREDIT_BATCH_1_0 as u32 + 1000)
        );
        assert_eq!(consumed.widen(8 << 20), None, "1.0 windows do not change");
        assert!(inflow.receive(1000));
        assert_eq!(parse_credit(&credit_payload(77)), Some(77));
        assert_eq!(parse_credit(&[1, 2, 3]), None);
    }

    #[test]
    fn a_server_stream_opens_at_64_kib_and_a_fast_consumer_grows_it_to_the_cap() {
        let (mut inflow, granted) = Inflow::new(Flow::V1_1.server_stream_window());
        let consumed = Consumed::new(granted, Flow::V1_1, 0);
        assert!(
            !inflow.receive(1),
            "nothing may come before the client opens it"
        );
        let (mut inflow, granted) = Inflow::new(0);
        let mut consumed2 = Consumed::new(granted, Flow::V1_1, 0);
        assert_eq!(consumed2.open(), Some(INITIAL_WINDOW as u32));
        assert_eq!(consumed2.open(), None);
        assert!(inflow.receive(INITIAL_WINDOW as usize));
        assert!(
            !Inflow {
                received: inflow.received,
                initial: inflow.initial,
                granted: Arc::clone(&inflow.granted)
            }
            .receive(1),
            "no more than the first grant"
        );
        // A consumer that takes everything at once: the window doubles every round.
        let mut outstanding = INITIAL_WINDOW;
        let mut total_credit = INITIAL_WINDOW;
        for _ in 0..10_000 {
            let n = 4096.min(outstanding as usize);
            assert!(
                n > 0,
                "the consumer never waits for credit that does not come"
            );
            outstanding -= n as u64;
            if let Some(c) = consumed2.consume(n) {
                outstanding += u64::from(c);
                total_credit += u64::from(c);
            }
            assert!(outstanding <= consumed2.window());
        }
        assert_eq!(consumed2.window(), MAX_WINDOW);
        assert_eq!(
            total_credit,
            consumed2.granted.load(Ordering::Acquire),
            "every credit is recorded as granted"
        );
        drop(consumed);
    }

    #[test]
    fn a_slow_consumer_keeps_a_small_window() {
        let (_inflow, granted) = Inflow::new(INITIAL_WINDOW);
        let mut consumed = Consumed::new(granted, Flow::V1_1, INITIAL_WINDOW);
        let mut credits = 0;
        for _ in 0..8 {
            std::thread::sleep(GROW_WITHIN / 3);
            if let Some(c) = consumed.consume(INITIAL_WINDOW as usize / 4) {
                assert_eq!(
                    u64::from(c),
                    INITIAL_WINDOW / 4,
                    "exactly what was consumed"
                );
                credits += 1;
            }
        }
        assert_eq!(
            credits, 8,
            "credit once a quarter of the window is consumed"
        );
        assert_eq!(consumed.window(), INITIAL_WINDOW, "too slow to grow");
        assert_eq!(
            consumed.widen(1 << 20),
            Some((1 << 20) - INITIAL_WINDOW as u32)
        );
        assert_eq!(consumed.window(), 1 << 20);
        assert_eq!(
            consumed.widen(100 << 20),
            Some((MAX_WINDOW - (1 << 20)) as u32)
        );
        assert_eq!(consumed.widen(100 << 20), None);
    }
}
