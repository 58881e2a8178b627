//! A Unix socket split so that each half is woken only by what it waits for.
//!
//! tokio registers a `UnixStream` for reading and for writing at once, edge-triggered, and a
//! Unix socket reports itself writable again every time the peer reads what it was sent. In a
//! request/response exchange that wakes each side once more per round trip, for nothing: the
//! write had already gone through. `strace` showed it: two `epoll_wait` wake-ups per side per
//! `stat`, one of them for `EPOLLOUT`.
//!
//! Here the read half is registered for readability only. The write half writes to a second
//! descriptor of the socket without any registration, and registers that descriptor for
//! writability only while a write waits for room (a long stream against a slow reader); the
//! registration is dropped once the writer has caught up.
//!
//! Reads go through `std::io::Read` (the workspace forbids unsafe code, so bytes cannot be
//! read into a `BytesMut`'s uninitialised room): frames up to [`SCRATCH`] bytes through a
//! scratch buffer initialised once, larger frames straight into a vector sized for the frame
//! (`read_to_end` fills a vector's room without initialising it first).

use std::io::{self, IoSlice, Read, Write};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::frame::HEADER_LEN;

/// Reads of at most this many bytes go through the scratch buffer; a frame longer than this
/// is read into a vector of its own.
pub(crate) const SCRATCH: usize = 64 * 1024;

/// Splits a tokio `UnixStream` into halves that wake only for their own direction.
///
/// # Errors
///
/// The socket cannot be taken from tokio's reactor, duplicated or registered anew: the stream
/// is given back when it still can be, to be used as tokio made it.
pub(crate) fn split(
    stream: tokio::net::UnixStream,
) -> Result<(SocketReader, SocketWriter), Option<tokio::net::UnixStream>> {
    // The write half registers later, when a write first waits: with this runtime's reactor,
    // whichever thread (or runtime) that write happens on.
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Err(Some(stream));
    };
    let std = stream.into_std().map_err(|_| None)?;
    let write = match std
        .try_clone()
        .and_then(|w| w.set_nonblocking(true).map(|()| w))
    {
        Ok(write) => write,
        Err(_) => return Err(tokio::net::UnixStream::from_std(std).ok()),
    };
    match register(std, Interest::READABLE) {
        Ok(fd) => Ok((
            SocketReader {
                fd,
                scratch: vec![0; SCRATCH].into_boxed_slice(),
                big: None,
                after_big: false,
            },
            SocketWriter::new(write, runtime),
        )),
        Err((std, _)) => {
            drop(write);
            Err(tokio::net::UnixStream::from_std(std).ok())
        }
    }
}

/// The read half: a descriptor registered for readability only.
pub(crate) struct SocketReader {
    fd: AsyncFd<UnixStream>,
    /// Where reads of small frames land (initialised once).
    scratch: Box<[u8]>,
    /// The frame being read into a vector of its own: its bytes so far, and its length.
    big: Option<(Vec<u8>, usize)>,
    /// The last frame was read into a vector of its own: the next read takes only a header,
    /// so that the start of another large frame is not copied twice.
    after_big: bool,
}

impl SocketReader {
    /// Reads what the socket has into `buf`; when `frame` is the length of a frame whose start
    /// is in `buf` and which is longer than [`SCRATCH`], the frame is read into a vector of its
    /// own, and `buf` becomes that frame once it is whole. `Ok(0)` is end of file.
    pub(crate) fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        frame: Option<usize>,
    ) -> Poll<io::Result<usize>> {
        if self.big.is_none() {
            if let Some(total) = frame.filter(|&total| total > SCRATCH && total > buf.len()) {
                let mut vec = Vec::with_capacity(total + COPY_SLACK);
                vec.extend_from_slice(buf);
                buf.clear();
                self.big = Some((vec, total));
            }
        }
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let socket = guard.get_inner();
            let result = match &mut self.big {
                Some((vec, total)) => read_big(socket, vec, *total),
                None => {
                    let room = if self.after_big && buf.is_empty() {
                        HEADER_LEN
                    } else {
                        SCRATCH
                    };
                    read_small(socket, &mut self.scratch[..room], buf)
                }
            };
            match result {
                Ok(Got { n, drained }) => {
                    if drained {
                        guard.clear_ready();
                    }
                    self.after_big = false;
                    if let Some((vec, total)) = self.big.take() {
                        if vec.len() == total {
                            *buf = BytesMut::from(Bytes::from(vec));
                            self.after_big = true;
                        } else if n > 0 {
                            self.big = Some((vec, total));
                        }
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// What one read did.
struct Got {
    /// Bytes that arrived (0: end of file).
    n: usize,
    /// The socket has no more for now.
    drained: bool,
}

/// One read into the scratch buffer, appended to `buf`.
fn read_small(socket: &UnixStream, scratch: &mut [u8], buf: &mut BytesMut) -> io::Result<Got> {
    let n = (&*socket).read(scratch)?;
    buf.extend_from_slice(&scratch[..n]);
    Ok(Got {
        n,
        // A short read took all there was: the next one would only say "would block".
        drained: n < scratch.len(),
    })
}

/// Reads into `vec` until it holds `total` bytes or the socket has no more for now.
///
/// `io::copy` into a vector reads into its room without initialising it, and after its first
/// read asks for all the room there is; the room must exceed `total` by [`COPY_SLACK`], or it
/// would grow the vector (a copy) before its last read.
fn read_big(socket: &UnixStream, vec: &mut Vec<u8>, total: usize) -> io::Result<Got> {
    let before = vec.len();
    let want = (total - before) as u64;
    match io::copy(&mut socket.take(want), vec) {
        Ok(_) => Ok(Got {
            n: vec.len() - before,
            drained: false,
        }),
        // `io::copy` keeps what it read before the socket ran dry.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && vec.len() > before => Ok(Got {
            n: vec.len() - before,
            drained: true,
        }),
        Err(e) => Err(e),
    }
}

/// The room a large frame's vector has beyond the frame (see [`read_big`]).
const COPY_SLACK: usize = 8 * 1024;

/// The write half: writes without a registration, and registers for writability only while
/// a write waits for room.
pub(crate) struct SocketWriter {
    fd: WriteFd,
    /// The runtime of the connection, whose reactor the registration goes to.
    runtime: tokio::runtime::Handle,
}

/// The write half's descriptor, registered with the reactor or not.
enum WriteFd {
    Plain(UnixStream),
    Waiting(AsyncFd<UnixStream>),
    /// Only while moving between the two.
    Moving,
}

impl SocketWriter {
    fn new(socket: UnixStream, runtime: tokio::runtime::Handle) -> SocketWriter {
        SocketWriter {
            fd: WriteFd::Plain(socket),
            runtime,
        }
    }

    fn socket(&self) -> Option<&UnixStream> {
        match &self.fd {
            WriteFd::Plain(socket) => Some(socket),
            WriteFd::Waiting(fd) => Some(fd.get_ref()),
            WriteFd::Moving => None,
        }
    }

    /// Registers the descriptor for writability (once a write would block).
    fn register(&mut self) -> io::Result<()> {
        if let WriteFd::Plain(_) = self.fd {
            let WriteFd::Plain(socket) = std::mem::replace(&mut self.fd, WriteFd::Moving) else {
                return Ok(());
            };
            let registered = {
                let _runtime = self.runtime.enter();
                register(socket, Interest::WRITABLE)
            };
            match registered {
                Ok(fd) => self.fd = WriteFd::Waiting(fd),
                Err((socket, e)) => {
                    self.fd = WriteFd::Plain(socket);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Drops the registration: the peer's reads would wake this side for nothing.
    fn unregister(&mut self) {
        if let WriteFd::Waiting(_) = self.fd {
            if let WriteFd::Waiting(fd) = std::mem::replace(&mut self.fd, WriteFd::Moving) {
                self.fd = WriteFd::Plain(fd.into_inner());
            }
        }
    }

    fn poll_io<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&UnixStream) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        loop {
            let Some(socket) = self.socket() else {
                return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
            };
            match op(socket) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return Poll::Ready(other),
            }
            self.register()?;
            let WriteFd::Waiting(fd) = &self.fd else {
                continue;
            };
            let mut guard = ready!(fd.poll_write_ready(cx))?;
            guard.clear_ready();
        }
    }
}

/// Registers `socket` with the reactor for `interest`; gives it back when that fails.
///
/// tokio deprecated this safe constructor because an `AsRawFd` value could close its
/// descriptor while registered; a `UnixStream` owned by the registration cannot.
#[allow(deprecated)]
fn register(
    socket: UnixStream,
    interest: Interest,
) -> Result<AsyncFd<UnixStream>, (UnixStream, io::Error)> {
    AsyncFd::try_with_interest(socket, interest).map_err(|e| e.into_parts())
}

impl AsyncWrite for SocketWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_io(cx, |mut s| s.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // One slice with bytes (a small frame, say): a plain write, which the kernel takes
        // with less work than a writev.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next()) {
            return self.get_mut().poll_io(cx, |mut s| s.write(only));
        }
        self.get_mut().poll_io(cx, |mut s| s.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Nothing to flush; the writer has caught up, so its registration goes.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().unregister();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.unregister();
        Poll::Ready(match this.socket() {
            Some(socket) => socket.shutdown(std::net::Shutdown::Write),
            None => Ok(()),
        })
    }
}

impl Drop for SocketWriter {
    /// As tokio's write half does: the peer sees end of file once the writer is gone.
    fn drop(&mut self) {
        if let Some(socket) = self.socket() {
            let _ = socket.shutdown(std::net::Shutdown::Write);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::{sleep, timeout};

    use super::*;
    use crate::frame::{Frame, FrameDecoder, FrameType, MAX_PAYLOAD, encode};
    use crate::io::{BoxWrite, FrameReader, Outbox, ReadEnd, ReadHalf, split_stream};

    /// Long enough never to fire when the code is right; a hang fails instead of blocking.
    const LIMIT: Duration = Duration::from_secs(10);

    /// The byte at `pos` of a stream or payload seeded by `seed`: a lost, repeated or moved
    /// byte shows.
    fn byte_at(seed: u64, pos: usize) -> u8 {
        ((pos as u64 ^ seed.rotate_left(40)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
    }

    fn pattern(seed: u64, from: usize, len: usize) -> Vec<u8> {
        (from..from + len).map(|p| byte_at(seed, p)).collect()
    }

    /// The wire bytes of DATA frames `(id, payload length)`, payloads from [`pattern`].
    fn wire(frames: &[(u64, usize)]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for &(id, len) in frames {
            encode(
                &Frame::new(FrameType::Data, id, pattern(id, 0, len)),
                &mut out,
            )
            .expect("a payload within the limit");
        }
        out.to_vec()
    }

    fn assert_frame(frame: &Frame, id: u64, len: usize) {
        assert_eq!(
            (frame.kind, frame.id, frame.payload.len()),
            (FrameType::Data, id, len)
        );
        assert!(
            frame.payload[..] == pattern(id, 0, len)[..],
            "payload of frame {id} ({len} bytes) corrupted"
        );
    }

    /// Our end split as the crate splits it: it must be the socket path, not the fallback.
    fn frame_reader(stream: tokio::net::UnixStream) -> (FrameReader, BoxWrite) {
        let (read, write) = split_stream(stream);
        assert!(
            matches!(read, ReadHalf::Socket(_)),
            "a Unix socket is split"
        );
        (FrameReader::new(read), write)
    }

    fn socket_pair() -> (SocketReader, SocketWriter, tokio::net::UnixStream) {
        let (ours, peer) = tokio::net::UnixStream::pair().expect("a socket pair");
        let (reader, writer) = split(ours).expect("the socket splits");
        (reader, writer, peer)
    }

    /// Payload lengths around every boundary: empty, small, a whole frame of exactly
    /// `SCRATCH` bytes (scratch path), `SCRATCH + 1` (a vector of its own), the maximum, several
    /// maxima in a row, small frames right after large ones.
    fn mixed_frames() -> Vec<(u64, usize)> {
        let lens = [
            0,
            100,
            SCRATCH - HEADER_LEN,
            SCRATCH - HEADER_LEN + 1,
            0,
            MAX_PAYLOAD,
            MAX_PAYLOAD,
            MAX_PAYLOAD,
            1,
            100,
            SCRATCH - HEADER_LEN - 1,
            SCRATCH - HEADER_LEN + 1,
            SCRATCH - HEADER_LEN,
            SCRATCH,
            MAX_PAYLOAD - 1,
            0,
            SCRATCH + 1,
            13,
            MAX_PAYLOAD,
            5,
        ];
        lens.iter()
            .enumerate()
            .map(|(i, &len)| (i as u64 + 1, len))
            .collect()
    }

    /// The peer writes `frames` in pieces of the sizes in `pieces` (cycled), pausing between
    /// them; every frame must come out whole, in order and intact, then end of file.
    async fn frames_survive_pieces(pieces: &[usize]) {
        let frames = mixed_frames();
        let bytes = wire(&frames);
        let (ours, mut peer) = tokio::net::UnixStream::pair().expect("a socket pair");
        let (mut reader, _write) = frame_reader(ours);
        let pieces = pieces.to_vec();
        let writer = tokio::spawn(async move {
            let (mut at, mut k) = (0, 0);
            while at < bytes.len() {
                let n = pieces[k % pieces.len()].min(bytes.len() - at);
                peer.write_all(&bytes[at..at + n])
                    .await
                    .expect("the peer writes");
                at += n;
                k += 1;
                match k % 4 {
                    0 => sleep(Duration::from_millis(1)).await,
                    2 => tokio::task::yield_now().await,
                    _ => {}
                }
            }
        });
        for &(id, len) in &frames {
            let frame = timeout(LIMIT, reader.next())
                .await
                .expect("the frame arrives")
                .expect("a frame");
            assert_frame(&frame, id, len);
        }
        writer.await.expect("the peer wrote everything");
        let end = timeout(LIMIT, reader.next())
            .await
            .expect("no hang at the end");
        assert!(matches!(end, Err(ReadEnd::Eof)), "end of file, got {end:?}");
    }

    /// Frames of every size arrive whole through pieces of 1, 7, 13 bytes and 65 KiB.
    #[tokio::test]
    async fn frames_arrive_whole_from_awkward_pieces() {
        frames_survive_pieces(&[1, 7, 13, 65 * 1024]).await;
    }

    /// The same, with the reader on another thread than the peer, and other cuts: pieces that
    /// straddle the scratch size, headers cut after 3 and 12 bytes, everything at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_arrive_whole_across_threads() {
        frames_survive_pieces(&[13, 1, 7, 65 * 1024]).await;
        frames_survive_pieces(&[SCRATCH + 1, 3, SCRATCH - 1, 12, 100_000]).await;
        frames_survive_pieces(&[usize::MAX]).await;
    }

    /// Reads `reader` once into `buf`, as `FrameReader::fill` does.
    async fn fill(reader: &mut SocketReader, buf: &mut BytesMut) -> usize {
        let total = FrameDecoder::new().frame_len(buf).expect("valid framing");
        read_once(reader, buf, total).await
    }

    /// Reads `reader` once into `buf`, told the length of the frame at its front, if any.
    async fn read_once(
        reader: &mut SocketReader,
        buf: &mut BytesMut,
        frame: Option<usize>,
    ) -> usize {
        timeout(LIMIT, poll_fn(|cx| reader.poll_fill(cx, buf, frame)))
            .await
            .expect("bytes are there")
            .expect("the read works")
    }

    /// A frame longer than `SCRATCH` is read into a vector of its own and handed over whole;
    /// the read after it takes only the next header; a frame of exactly `SCRATCH` bytes goes
    /// through the scratch buffer and does not limit the next read.
    #[tokio::test]
    async fn large_frame_then_header_only_read() {
        let frames = [
            (1, SCRATCH - HEADER_LEN + 1),
            (2, 100),
            (3, SCRATCH - HEADER_LEN),
            (4, 100),
        ];
        let first = wire(&frames[..1]);
        let rest = wire(&frames[1..]);
        let (mut reader, _writer, mut peer) = socket_pair();
        let writing = tokio::spawn(async move {
            peer.write_all(&first).await.expect("the peer writes");
            peer
        });
        let mut decoder = FrameDecoder::new();
        let mut buf = BytesMut::new();
        while !reader.after_big {
            assert!(
                fill(&mut reader, &mut buf).await > 0,
                "no early end of file"
            );
            if reader.big.is_some() {
                assert!(buf.is_empty(), "a large frame's bytes go to its own vector");
            }
        }
        assert!(reader.big.is_none());
        assert_eq!(buf.len(), SCRATCH + 1, "the whole frame is handed over");
        let frame = decoder.decode(&mut buf).expect("valid").expect("whole");
        assert_frame(&frame, 1, SCRATCH - HEADER_LEN + 1);
        assert!(buf.is_empty());

        // The rest (about 64 KiB) fits in the socket's buffer: all of it is there to read.
        let mut peer = timeout(LIMIT, writing)
            .await
            .expect("the first frame is read")
            .expect("the peer");
        timeout(LIMIT, peer.write_all(&rest))
            .await
            .expect("the socket buffer holds the rest")
            .expect("the peer writes");
        assert_eq!(
            fill(&mut reader, &mut buf).await,
            HEADER_LEN,
            "only a header"
        );
        assert!(!reader.after_big);
        let mut got = Vec::new();
        while got.len() < 3 {
            match decoder.decode(&mut buf).expect("valid") {
                Some(frame) => got.push(frame),
                None => {
                    assert!(fill(&mut reader, &mut buf).await > HEADER_LEN);
                }
            }
        }
        assert!(
            reader.big.is_none() && !reader.after_big,
            "no large frame here"
        );
        for (frame, &(id, len)) in got.iter().zip(&frames[1..]) {
            assert_frame(frame, id, len);
        }
        assert!(buf.is_empty());
    }

    /// The peer writes `bytes` (pausing in the middle) and closes; `whole` frames arrive,
    /// then the reader reports end of file (or an error), again on every later call, and
    /// neither hangs nor panics.
    async fn eof_after(bytes: Vec<u8>, whole: &[(u64, usize)]) {
        let (ours, mut peer) = tokio::net::UnixStream::pair().expect("a socket pair");
        let (mut reader, _write) = frame_reader(ours);
        let writer = tokio::spawn(async move {
            let half = bytes.len() / 2;
            peer.write_all(&bytes[..half])
                .await
                .expect("the peer writes");
            sleep(Duration::from_millis(5)).await;
            peer.write_all(&bytes[half..])
                .await
                .expect("the peer writes");
            sleep(Duration::from_millis(5)).await;
            // Dropping the stream closes the peer's end.
        });
        for &(id, len) in whole {
            let frame = timeout(LIMIT, reader.next())
                .await
                .expect("the frame arrives")
                .expect("a whole frame");
            assert_frame(&frame, id, len);
        }
        for _ in 0..3 {
            let end = timeout(LIMIT, reader.next())
                .await
                .expect("end of file is reported, not waited on");
            assert!(
                matches!(end, Err(ReadEnd::Eof | ReadEnd::Io(_))),
                "end of file or an error, got {end:?}"
            );
        }
        writer.await.expect("the peer");
    }

    /// End of file in the middle of a header, of a small frame and of a large one (read into
    /// a vector of its own or not yet), and right after a large frame, is end of file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn eof_mid_frame_is_end_of_file() {
        let big = wire(&[(1, MAX_PAYLOAD)]);
        let over = wire(&[(1, SCRATCH - HEADER_LEN + 1)]);
        let small = wire(&[(1, 100)]);
        let cut = |bytes: &[u8], n: usize| bytes[..n].to_vec();
        let then = |a: &[u8], b: &[u8]| [a, b].concat();

        eof_after(Vec::new(), &[]).await;
        eof_after(cut(&small, 3), &[]).await;
        eof_after(cut(&small, 7), &[]).await;
        eof_after(cut(&small, HEADER_LEN - 1), &[]).await;
        eof_after(cut(&small, HEADER_LEN + 50), &[]).await;
        eof_after(cut(&big, HEADER_LEN), &[]).await;
        eof_after(cut(&big, HEADER_LEN + 1), &[]).await;
        eof_after(cut(&big, SCRATCH), &[]).await;
        eof_after(cut(&big, HEADER_LEN + 500_000), &[]).await;
        eof_after(cut(&big, big.len() - 1), &[]).await;
        eof_after(cut(&over, over.len() - 1), &[]).await;
        eof_after(then(&small, &cut(&big, 600_000)), &[(1, 100)]).await;
        eof_after(big.clone(), &[(1, MAX_PAYLOAD)]).await;
        eof_after(then(&big, &cut(&small, 5)), &[(1, MAX_PAYLOAD)]).await;
        eof_after(
            then(&big, &cut(&small, HEADER_LEN + 1)),
            &[(1, MAX_PAYLOAD)],
        )
        .await;
        eof_after(then(&big, &cut(&big, HEADER_LEN + 1)), &[(1, MAX_PAYLOAD)]).await;
        eof_after(
            then(&over, &cut(&over, over.len() - 1)),
            &[(1, SCRATCH - HEADER_LEN + 1)],
        )
        .await;
    }

    /// Counts its wake-ups.
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Everything `peer` receives until end of file (which must come).
    async fn until_end(peer: &mut tokio::net::UnixStream) -> Vec<u8> {
        let mut got = Vec::new();
        timeout(LIMIT, peer.read_to_end(&mut got))
            .await
            .expect("end of file, not a hang")
            .expect("reads");
        got
    }

    /// Reads exactly `sent` bytes from `peer`.
    async fn drain(peer: &mut tokio::net::UnixStream, sent: usize) {
        let mut buf = vec![0u8; 1 << 20];
        let mut read = 0;
        while read < sent {
            read += timeout(LIMIT, peer.read(&mut buf))
                .await
                .expect("the peer reads")
                .expect("a read");
        }
        assert_eq!(read, sent);
    }

    /// Waits until `wakes` counted a wake-up: the writer is woken once there is room.
    async fn woken(wakes: &Wakes) {
        timeout(LIMIT, async {
            while wakes.0.load(Ordering::SeqCst) == 0 {
                sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the writer is woken once there is room");
    }

    /// Writes to `writer` with a waker that does nothing until the socket is full.
    fn fill_socket(writer: &mut SocketWriter) -> usize {
        let chunk = vec![7u8; 64 * 1024];
        let mut cx = Context::from_waker(Waker::noop());
        let mut written = 0;
        for _ in 0..10_000 {
            match Pin::new(&mut *writer).poll_write(&mut cx, &chunk) {
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => panic!("write failed: {e}"),
                Poll::Pending => return written,
            }
        }
        panic!("the socket never filled up");
    }

    /// The writer writes without a registration, registers only once a write would block,
    /// is woken when the peer makes room, and drops the registration on flush; the cycle
    /// repeats.
    #[tokio::test]
    async fn writer_registers_only_while_blocked() {
        let (_reader, mut writer, mut peer) = socket_pair();
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..100 {
            let ready = Pin::new(&mut writer).poll_write(&mut cx, b"small");
            assert!(matches!(ready, Poll::Ready(Ok(5))));
        }
        assert!(
            matches!(writer.fd, WriteFd::Plain(_)),
            "no registration yet"
        );
        let mut sent = 500;
        for round in 0..3 {
            sent += fill_socket(&mut writer);
            assert!(matches!(writer.fd, WriteFd::Waiting(_)), "round {round}");
            let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
            let waker = Waker::from(Arc::clone(&wakes));
            let pending = Pin::new(&mut writer).poll_write(&mut Context::from_waker(&waker), b"x");
            assert!(pending.is_pending(), "still full");
            // The peer reads everything: the writer must be woken.
            drain(&mut peer, sent).await;
            sent = 0;
            woken(&wakes).await;
            let wrote = Pin::new(&mut writer).poll_write(&mut cx, b"x");
            assert!(matches!(wrote, Poll::Ready(Ok(1))));
            sent += 1;
            assert!(
                matches!(writer.fd, WriteFd::Waiting(_)),
                "kept until flushed"
            );
            assert!(Pin::new(&mut writer).poll_flush(&mut cx).is_ready());
            assert!(matches!(writer.fd, WriteFd::Plain(_)), "flush unregisters");
        }
    }

    /// A write that first waits on a thread outside any runtime (a call or writer dropped
    /// there sends its last frame) registers with the connection's runtime, which wakes it
    /// once the peer makes room: no "no reactor running" panic, no wake-up that never comes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_waits_outside_the_runtime_registers_with_the_connections() {
        let (_reader, writer, mut peer) = socket_pair();
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&wakes));
        let (mut writer, sent) = std::thread::spawn(move || {
            let mut writer = writer;
            let sent = fill_socket(&mut writer);
            let pending = Pin::new(&mut writer).poll_write(&mut Context::from_waker(&waker), b"x");
            assert!(pending.is_pending(), "still full");
            (writer, sent)
        })
        .join()
        .expect("no panic outside the runtime");
        assert!(matches!(writer.fd, WriteFd::Waiting(_)));
        drain(&mut peer, sent).await;
        woken(&wakes).await;
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(
            Pin::new(&mut writer).poll_write(&mut cx, b"x"),
            Poll::Ready(Ok(1))
        ));
    }

    /// 64 MiB through the writer to a reader that is slow at first: it arrives whole and in
    /// order; the writer registered while it waited, flush drops that, small writes go on
    /// without one, and dropping the writer ends the stream.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writer_streams_64_mib_to_a_slow_reader() {
        const TOTAL: usize = 64 << 20;
        const SEED: u64 = 0xC0FFEE;
        let (_reader, mut writer, mut peer) = socket_pair();
        let (caught_up, on_caught_up) = tokio::sync::oneshot::channel::<()>();
        let reading = tokio::spawn(async move {
            let mut buf = vec![0u8; 1 << 20];
            let mut got = 0usize;
            let check = |chunk: &[u8], got: usize| {
                assert!(
                    chunk == pattern(SEED, got, chunk.len()),
                    "bytes at {got} corrupted"
                );
            };
            sleep(Duration::from_millis(50)).await;
            for _ in 0..20 {
                let n = peer.read(&mut buf[..4096]).await.expect("a read");
                assert!(n > 0, "no early end of file");
                check(&buf[..n], got);
                got += n;
                sleep(Duration::from_millis(2)).await;
            }
            while got < TOTAL {
                let want = (TOTAL - got).min(buf.len());
                let n = peer.read(&mut buf[..want]).await.expect("a read");
                assert!(n > 0, "no early end of file at {got}");
                check(&buf[..n], got);
                got += n;
            }
            caught_up.send(()).expect("the writer waits");
            let mut tail = Vec::new();
            peer.read_to_end(&mut tail)
                .await
                .expect("reads to end of file");
            tail
        });
        let data = pattern(SEED, 0, TOTAL);
        for piece in data.chunks(3 << 20) {
            timeout(LIMIT, writer.write_all(piece))
                .await
                .expect("the reader makes room")
                .expect("the write works");
        }
        assert!(
            matches!(writer.fd, WriteFd::Waiting(_)),
            "the writer waited"
        );
        writer.flush().await.expect("flushes");
        assert!(
            matches!(writer.fd, WriteFd::Plain(_)),
            "flush drops the registration"
        );
        timeout(LIMIT, on_caught_up)
            .await
            .expect("the reader catches up")
            .expect("the reader");
        let mut cx = Context::from_waker(Waker::noop());
        for i in 0..10u8 {
            let wrote = Pin::new(&mut writer).poll_write(&mut cx, &[i; 3]);
            assert!(matches!(wrote, Poll::Ready(Ok(3))), "room without waiting");
        }
        let slices = [IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"cde")];
        let wrote = Pin::new(&mut writer).poll_write_vectored(&mut cx, &slices);
        assert!(matches!(wrote, Poll::Ready(Ok(5))));
        assert!(
            matches!(writer.fd, WriteFd::Plain(_)),
            "no registration for these"
        );
        drop(writer);
        let tail = timeout(LIMIT, reading)
            .await
            .expect("the peer sees end of file")
            .expect("the reader");
        let mut want: Vec<u8> = (0..10u8).flat_map(|i| [i; 3]).collect();
        want.extend_from_slice(b"abcde");
        assert_eq!(tail, want);
    }

    /// Dropping the writer shuts the write direction down: the peer sees end of file while
    /// our reader is alive, and the reader still gets what the peer sends; also when the
    /// writer is dropped while registered.
    #[tokio::test]
    async fn dropping_the_writer_is_end_of_file_for_the_peer() {
        let (mut reader, mut writer, mut peer) = socket_pair();
        writer.write_all(b"bye").await.expect("writes");
        drop(writer);
        let got = until_end(&mut peer).await;
        assert_eq!(got, b"bye");
        peer.write_all(b"still here")
            .await
            .expect("the peer writes");
        let mut buf = BytesMut::new();
        while buf.len() < 10 {
            assert!(read_once(&mut reader, &mut buf, None).await > 0);
        }
        assert_eq!(&buf[..], b"still here");
        drop(peer);
        let end = read_once(&mut reader, &mut buf, None).await;
        assert_eq!(end, 0, "then end of file");

        let (reader, mut writer, mut peer) = socket_pair();
        let sent = fill_socket(&mut writer);
        assert!(matches!(writer.fd, WriteFd::Waiting(_)));
        drop(writer);
        let got = until_end(&mut peer).await;
        assert_eq!(got.len(), sent);
        drop(reader);
    }

    /// Shutdown ends the peer's stream and later writes fail; a writer whose peer is gone
    /// reports an error instead of waiting for room.
    #[tokio::test]
    async fn shutdown_and_a_vanished_peer_are_errors() {
        let (_reader, mut writer, mut peer) = socket_pair();
        writer.write_all(b"last").await.expect("writes");
        writer.shutdown().await.expect("shuts down");
        let mut got = Vec::new();
        timeout(LIMIT, peer.read_to_end(&mut got))
            .await
            .expect("end of file")
            .expect("reads");
        assert_eq!(got, b"last");
        assert!(
            writer.write_all(b"more").await.is_err(),
            "no writes after shutdown"
        );

        let (_reader, mut writer, peer) = socket_pair();
        fill_socket(&mut writer);
        let blocked = tokio::spawn(async move {
            let result = writer.write_all(&[1u8; 1 << 20]).await;
            (result, writer)
        });
        sleep(Duration::from_millis(10)).await;
        drop(peer);
        let (result, _writer) = timeout(LIMIT, blocked)
            .await
            .expect("the blocked write ends")
            .expect("the task");
        assert!(result.is_err(), "a write to a closed peer fails");
    }

    /// Frames both ways at once through `Outbox` and `FrameReader` on each side, one side
    /// slow to read at first: the two registrations of one socket do not get in each
    /// other's way, and every frame arrives intact.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_duplex_through_outboxes() {
        let (a, b) = tokio::net::UnixStream::pair().expect("a socket pair");
        let frames: Vec<(u64, usize)> = (0..40u64)
            .map(|i| {
                let len = match i % 4 {
                    0 => MAX_PAYLOAD,
                    1 => (i as usize) * 31,
                    2 => SCRATCH - HEADER_LEN + 1,
                    _ => 0,
                };
                (i + 1, len)
            })
            .collect();
        let mut tasks = Vec::new();
        for (side, stream) in [a, b].into_iter().enumerate() {
            let (read, write) = split_stream(stream);
            assert!(matches!(read, ReadHalf::Socket(_)));
            let (outbox, task) = Outbox::new(write);
            let writer = tokio::spawn(task);
            let frames = frames.clone();
            tasks.push(tokio::spawn(async move {
                for &(id, len) in &frames {
                    outbox
                        .send(FrameType::Data, id, Bytes::from(pattern(id, 0, len)))
                        .expect("the outbox is open");
                }
                let mut reader = FrameReader::new(read);
                if side == 0 {
                    sleep(Duration::from_millis(50)).await;
                }
                for &(id, len) in &frames {
                    let frame = reader.next().await.expect("a frame");
                    assert_frame(&frame, id, len);
                }
                assert!(outbox.drain(LIMIT).await, "everything was written");
                outbox.close("done");
                writer.await.expect("the writer task ends");
            }));
        }
        for task in tasks {
            timeout(LIMIT, task)
                .await
                .expect("both sides finish")
                .expect("no panic");
        }
    }
}
