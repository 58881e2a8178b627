//! The stream behind `reader`: a file read lazily, on blocking threads, in chunks that grow
//! with the consumer's pace.
//!
//! Opening a stream opens the file and reads nothing more than a small file's whole content
//! (at most [`READ_AT_OPEN`], which saves small files a second trip to a blocking thread), so
//! an idle stream costs a file descriptor and a few KiB at most. Then the first chunk is small
//! and each next one twice the last, up to [`MAX_CHUNK`]: a stream read once holds little, a
//! stream read to its end soon moves large chunks, each one trip to a blocking thread.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream;
use storagedriver::{ByteStream, Error, Result};

use crate::blocking::Blocking;
use crate::driver::Inner;
use crate::error::{DRIVER_NAME, io_error, lookup_error};
use crate::root;

/// Content up to this size is read when the stream is opened, in the same blocking call.
pub(crate) const READ_AT_OPEN: u64 = 16 << 10;

/// The first chunk a stream reads after it is opened.
pub(crate) const FIRST_CHUNK: usize = 64 << 10;

/// The most a chunk holds: large enough for the trip to a blocking thread to be small next to
/// the read, small enough to keep memory bounded (a stream holds at most one chunk that its
/// consumer has not taken).
pub(crate) const MAX_CHUNK: usize = 1 << 20;

/// What an open stream still has to read.
struct Open {
    file: File,
    remaining: u64,
    /// The size of the next chunk.
    chunk: usize,
}

/// Reads up to `max` bytes from `file`, fewer only at the end of the file.
fn read_chunk(file: &mut File, max: usize) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(max);
    file.take(max as u64).read_to_end(&mut buf)?;
    Ok(Bytes::from(buf))
}

/// Reads the next chunk of `open`; returns what is left to read, or `None` at the end.
fn next_chunk(mut open: Open) -> io::Result<(Bytes, Option<Open>)> {
    let asked = usize::try_from(open.remaining)
        .unwrap_or(open.chunk)
        .min(open.chunk);
    let chunk = read_chunk(&mut open.file, asked)?;
    if chunk.len() < asked {
        // The file is shorter than it was at open (a foreign truncation): stop there.
        return Ok((chunk, None));
    }
    open.remaining -= chunk.len() as u64;
    open.chunk = (open.chunk * 2).min(MAX_CHUNK);
    if open.remaining == 0 {
        Ok((chunk, None))
    } else {
        Ok((chunk, Some(open)))
    }
}

/// What opening a stream gives: content read at once, and what is left to read.
type Opened = (Option<Bytes>, Option<Open>);

/// Opens the file of driver path `path` beneath the root at `offset`, and reads it whole if
/// what is left from `offset` is small. A missing file or a directory is
/// [`Error::PathNotFound`].
fn open_at(inner: &Inner, path: &str, offset: u64) -> Result<Opened> {
    let mut file = inner
        .root
        .dir()
        .open(root::relative(path))
        .map_err(|e| lookup_error("reader", path, e))?
        .into_std();
    let metadata = file.metadata().map_err(|e| io_error("reader", path, e))?;
    if !metadata.is_file() {
        return Err(Error::path_not_found(DRIVER_NAME, path));
    }
    let size = metadata.len();
    if offset >= size {
        return Ok((None, None));
    }
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error("reader", path, e))?;
    }
    let remaining = size - offset;
    let open = Open {
        file,
        remaining,
        chunk: FIRST_CHUNK,
    };
    if remaining > READ_AT_OPEN {
        return Ok((None, Some(open)));
    }
    let (chunk, rest) = next_chunk(open).map_err(|e| io_error("reader", path, e))?;
    Ok((Some(chunk).filter(|c| !c.is_empty()), rest))
}

/// A stream of the file of `path` from `offset`, read on `blocking` threads chunk by chunk as
/// the consumer asks. The file is opened before this returns, so a missing path fails here
/// rather than in the stream; beyond a small file's content, nothing is read until the stream
/// is polled.
pub(crate) async fn open_stream(
    inner: std::sync::Arc<Inner>,
    blocking: &Blocking,
    path: &str,
    offset: u64,
) -> Result<ByteStream> {
    let owned = path.to_owned();
    let (head, open) = blocking
        .run("reader", path, move || open_at(&inner, &owned, offset))
        .await?;
    let head = stream::iter(head.map(Ok));
    let Some(open) = open else {
        return Ok(head.boxed());
    };
    let state = (blocking.clone(), path.to_owned(), Some(open));
    let chunks = stream::unfold(state, |(blocking, path, open)| async move {
        let open = open?;
        let owned = path.clone();
        let result = blocking
            .run("reader", &path, move || {
                next_chunk(open).map_err(|e| io_error("reader", &owned, e))
            })
            .await;
        match result {
            Ok((chunk, next)) if chunk.is_empty() => {
                // Nothing left after all; end without an empty item.
                drop(next);
                None
            }
            Ok((chunk, next)) => Some((Ok(chunk), (blocking, path, next))),
            Err(e) => Some((Err(e), (blocking, path, None))),
        }
    });
    Ok(head.chain(chunks).boxed())
}
