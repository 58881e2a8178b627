//! Test data: fast deterministic random bytes, and reading a stream whole.

use bytes::{Bytes, BytesMut};
use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use storagedriver::{ByteStream, Result};

/// A SplitMix64 generator: fast, deterministic, good enough for test payloads.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// `len` random bytes from `seed`.
///
/// ```
/// let a = testsuites::data::random_bytes(7, 100);
/// assert_eq!(a.len(), 100);
/// assert_eq!(a, testsuites::data::random_bytes(7, 100));
/// assert_ne!(a, testsuites::data::random_bytes(8, 100));
/// ```
pub fn random_bytes(seed: u64, len: usize) -> Bytes {
    let mut buf = vec![0u8; len];
    Rng::new(seed).fill(&mut buf);
    Bytes::from(buf)
}

/// Reads a stream to its end.
pub async fn read_all(stream: ByteStream) -> Result<Bytes> {
    let chunks: Vec<Bytes> = stream.try_collect().await?;
    if chunks.len() == 1 {
        return Ok(chunks.into_iter().next().unwrap_or_default());
    }
    let mut all = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
    for chunk in chunks {
        all.extend_from_slice(&chunk);
    }
    Ok(all.freeze())
}

/// Reads a stream to its end, hashing it: returns the byte count and the SHA-256.
pub async fn sha256_of(mut stream: ByteStream) -> Result<(u64, [u8; 32])> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    while let Some(chunk) = stream.try_next().await? {
        total += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((total, hasher.finalize().into()))
}
