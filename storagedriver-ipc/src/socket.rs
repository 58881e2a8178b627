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
            SocketWriter::new(write),
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
}

/// The write half's descriptor, registered with the reactor or not.
enum WriteFd {
    Plain(UnixStream),
    Waiting(AsyncFd<UnixStream>),
    /// Only while moving between the two.
    Moving,
}

impl SocketWriter {
    fn new(socket: UnixStream) -> SocketWriter {
        SocketWriter {
            fd: WriteFd::Plain(socket),
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
            match register(socket, Interest::WRITABLE) {
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
