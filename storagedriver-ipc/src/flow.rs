//! Flow control, the same on both sides: the rules a connection agreed on ([`Flow`]), the
//! sender's window of a stream ([`Window`]), the receiver's accounting of what arrived
//! ([`Inflow`]) and of what its consumer took ([`Consumed`], which grows a 1.1 window with the
//! consumer's pace), and the `CREDIT` payload.
//!
//! A side that sends a stream holds its [`Window`]; a side that receives one holds its
//! [`Inflow`] (where frames arrive) and [`Consumed`] (where they are consumed). The client
//! and the server use the same types for the streams they send and receive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

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
    #[cfg(test)]
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
        assert_eq!(
            w.acquire(1).await,
            None,
            "credit does not reopen a closed window"
        );
    }

    #[tokio::test]
    async fn credit_saturates_instead_of_overflowing() {
        let w = Window::new(u64::MAX - 1);
        w.grant(u64::MAX);
        w.grant(u64::MAX);
        assert_eq!(w.acquire(usize::MAX).await, Some(usize::MAX));
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
