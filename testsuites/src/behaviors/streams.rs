//! Streaming reads and large streams.

use bytes::Bytes;
use storagedriver::StorageDriver;

use super::{assert_not_found, assert_same, ok, read_from, write_commit};
use crate::data::{Rng, random_bytes, sha256_of};
use sha2::{Digest, Sha256};

async fn writer_round_trip(d: &dyn StorageDriver, path: &str, content: Bytes) {
    write_commit(d, path, std::slice::from_ref(&content)).await;
    assert_same(
        &read_from(d, path, 0).await,
        &content,
        &format!("reader({path}, 0) after commit"),
    );
    assert_same(
        &super::get(d, path).await,
        &content,
        &format!("get_content({path}) after commit"),
    );
}

/// A one-byte file written through a writer reads back.
pub async fn writer_round_trip_one_byte(d: &dyn StorageDriver) {
    writer_round_trip(d, "/stream/one-byte", Bytes::from_static(b"a")).await;
}

/// A two-byte UTF-8 string written through a writer reads back.
pub async fn writer_round_trip_utf8(d: &dyn StorageDriver) {
    writer_round_trip(d, "/stream/utf8", Bytes::from("\u{e9}".as_bytes().to_vec())).await;
}

/// 32 random bytes written through a writer read back.
pub async fn writer_round_trip_random_32(d: &dyn StorageDriver) {
    writer_round_trip(d, "/stream/random-32", random_bytes(33, 32)).await;
}

/// 1 MiB written through a writer, in uneven chunks, reads back.
pub async fn writer_round_trip_1mib(d: &dyn StorageDriver) {
    let content = random_bytes(4, 1 << 20);
    let chunks: Vec<Bytes> = [0usize, 1, 4097, 65536, 300_000, 1 << 20]
        .windows(2)
        .map(|w| content.slice(w[0]..w[1]))
        .collect();
    write_commit(d, "/stream/one-mib", &chunks).await;
    assert_same(
        &read_from(d, "/stream/one-mib", 0).await,
        &content,
        "reader after a chunked write",
    );
}

/// Bytes that are not UTF-8, written through a writer, read back.
pub async fn writer_round_trip_non_utf8(d: &dyn StorageDriver) {
    writer_round_trip(
        d,
        "/stream/non-utf8",
        Bytes::from_static(&[0xff, 0xfe, 0x80, 0x00, 0xc3, 0x28]),
    )
    .await;
}

/// A large stream (256 MiB by default, 5 GiB in full mode) written in 1 MiB chunks reads back
/// with the same SHA-256, in bounded memory.
pub async fn large_stream_sha256(d: &dyn StorageDriver) {
    let size = crate::Sizes::from_env().large_stream;
    let path = "/stream/large";
    let chunk_len = 1usize << 20;
    let mut rng = Rng::new(5);
    let mut buf = vec![0u8; chunk_len];
    let mut hasher = Sha256::new();
    let mut writer = ok(d.writer(path, false).await, "writer for the large stream");
    let mut written = 0u64;
    while written < size {
        let n = chunk_len.min((size - written) as usize);
        rng.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        ok(
            writer.write(Bytes::copy_from_slice(&buf[..n])).await,
            "write to the large stream",
        );
        written += n as u64;
    }
    assert_eq!(writer.size(), size, "size() of the large stream's writer");
    ok(writer.commit().await, "commit the large stream");
    let expected: [u8; 32] = hasher.finalize().into();
    let stream = ok(d.reader(path, 0).await, "reader of the large stream");
    let (read, digest) = ok(sha256_of(stream).await, "reading the large stream");
    assert_eq!(read, size, "bytes read back from the large stream");
    assert!(digest == expected, "the large stream's SHA-256 differs");
    assert_eq!(
        ok(d.stat(path).await, "stat of the large stream").size,
        size,
        "stat size of the large stream"
    );
}

/// `reader` at offsets 0, the middle, size-1, size and past the size.
pub async fn reader_offsets(d: &dyn StorageDriver) {
    let path = "/offsets/file";
    let content = random_bytes(6, 96);
    super::put(d, path, content.clone()).await;
    for offset in [0u64, 32, 48, 95] {
        let got = read_from(d, path, offset).await;
        assert_same(
            &got,
            &content[offset as usize..],
            &format!("reader at offset {offset}"),
        );
    }
    for offset in [96u64, 97, 1 << 40] {
        let got = read_from(d, path, offset).await;
        assert!(
            got.is_empty(),
            "reader at offset {offset} of a 96-byte file gave {} bytes",
            got.len()
        );
    }
}

/// `reader` of a missing path is PathNotFound at any offset, and of a directory too.
pub async fn reader_missing_path(d: &dyn StorageDriver) {
    for offset in [0u64, 64] {
        let result = d.reader("/missing/stream", offset).await.map(|_| ());
        assert_not_found(
            d,
            result,
            "/missing/stream",
            &format!("reader of a missing path at {offset}"),
        );
    }
    super::put(d, "/dir/file", Bytes::from_static(b"x")).await;
    assert_not_found(
        d,
        d.reader("/dir", 0).await.map(|_| ()),
        "/dir",
        "reader of a directory",
    );
}
