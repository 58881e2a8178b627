//! Raw figures of this machine's inter-process transport, to compare the IPC protocol with:
//! a 64-byte request/reply round trip and a one-way stream over a Unix stream socket between
//! this process and a child process.
//!
//! The child is the benchmark executable itself, started again with an environment variable:
//! a benchmark's `main` must call [`serve_raw_peer_if_asked`] first.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PEER_ENV: &str = "TESTSUITES_RAW_PEER_SOCKET";
const BLOCK: usize = 64;

/// The raw figures of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawFigures {
    /// Mean time of a 64-byte request and its 64-byte reply between the two processes.
    pub round_trip: Duration,
    /// Bytes per second of a one-way stream written in 1 MiB writes.
    pub stream_bytes_per_s: f64,
}

/// If this process was started as the raw peer, serves the parent and exits; otherwise returns
/// at once. Call it first in a benchmark's `main`.
pub fn serve_raw_peer_if_asked() {
    let Ok(socket) = std::env::var(PEER_ENV) else {
        return;
    };
    let code = match peer(&socket) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("raw peer: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn peer(socket: &str) -> std::io::Result<()> {
    let mut stream = UnixStream::connect(socket)?;
    let mut block = [0u8; BLOCK];
    loop {
        stream.read_exact(&mut block)?;
        if block[0] == b'T' {
            break;
        }
        stream.write_all(&block)?;
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buf)? {
            0 => break,
            n => total += n as u64,
        }
    }
    stream.write_all(&total.to_le_bytes())
}

struct PeerGuard(Child);

impl Drop for PeerGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Measures the round trip (`round_trips` times) and a one-way stream of `stream_bytes`.
///
/// # Panics
///
/// When the child cannot be started or the socket fails (a benchmark has no better answer).
pub fn measure_raw(round_trips: u32, stream_bytes: u64) -> RawFigures {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("raw benchmark: no temporary directory: {e}"),
    };
    let path = dir.path().join("raw.sock");
    let io = |what: &str, e: std::io::Error| -> ! { panic!("raw benchmark: {what}: {e}") };
    let listener = UnixListener::bind(&path).unwrap_or_else(|e| io("bind", e));
    let exe = std::env::current_exe().unwrap_or_else(|e| io("current_exe", e));
    let child = Command::new(exe)
        .env(PEER_ENV, &path)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| io("spawn the peer", e));
    let _guard = PeerGuard(child);
    let (mut stream, _) = listener.accept().unwrap_or_else(|e| io("accept", e));

    let request = [b'P'; BLOCK];
    let mut reply = [0u8; BLOCK];
    for _ in 0..round_trips / 10 {
        stream
            .write_all(&request)
            .unwrap_or_else(|e| io("warm-up write", e));
        stream
            .read_exact(&mut reply)
            .unwrap_or_else(|e| io("warm-up read", e));
    }
    let started = Instant::now();
    for _ in 0..round_trips {
        stream
            .write_all(&request)
            .unwrap_or_else(|e| io("write", e));
        stream
            .read_exact(&mut reply)
            .unwrap_or_else(|e| io("read", e));
    }
    let round_trip = started.elapsed() / round_trips.max(1);

    stream
        .write_all(&[b'T'; BLOCK])
        .unwrap_or_else(|e| io("switch", e));
    let chunk = vec![7u8; 1 << 20];
    let started = Instant::now();
    let mut left = stream_bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        stream
            .write_all(&chunk[..n])
            .unwrap_or_else(|e| io("stream", e));
        left -= n as u64;
    }
    stream
        .shutdown(std::net::Shutdown::Write)
        .unwrap_or_else(|e| io("shutdown", e));
    let mut count = [0u8; 8];
    stream
        .read_exact(&mut count)
        .unwrap_or_else(|e| io("count", e));
    let elapsed = started.elapsed();
    assert_eq!(
        u64::from_le_bytes(count),
        stream_bytes,
        "the raw peer counted the wrong size"
    );
    RawFigures {
        round_trip,
        stream_bytes_per_s: stream_bytes as f64 / elapsed.as_secs_f64(),
    }
}
