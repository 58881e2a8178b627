//! The stream behind `reader`: a file read lazily in bounded chunks on blocking threads.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream;
use storagedriver::{ByteStream, Error, Result};

use crate::blocking::Blocking;
use crate::error::{DRIVER_NAME, io_error, lookup_error};

/// The most a chunk holds. Each chunk costs one trip to a blocking thread, so chunks are
/// large enough for that trip to be small next to the read, and small enough to keep memory
/// bounded (a stream holds at most one chunk that its consumer has not taken).
pub(crate) const CHUNK_SIZE: usize = 1 << 20;

/// What an open stream still has to read.
struct Open {
    file: File,
    remaining: u64,
}

/// Reads up to `max` bytes from `file`, fewer only at the end of the file.
fn read_chunk(file: &mut File, max: u64) -> io::Result<Bytes> {
    let capacity = usize::try_from(max).unwrap_or(CHUNK_SIZE).min(CHUNK_SIZE);
    let mut buf = Vec::with_capacity(capacity);
    file.take(capacity as u64).read_to_end(&mut buf)?;
    Ok(Bytes::from(buf))
}

/// Reads the next chunk of `open`; returns what is left to read, or `None` at the end.
fn next_chunk(mut open: Open) -> io::Result<(Bytes, Option<Open>)> {
    let chunk = read_chunk(&mut open.file, open.remaining)?;
    let asked = open.remaining.min(CHUNK_SIZE as u64);
    if (chunk.len() as u64) < asked {
        // The file is shorter than it was at open (a foreign truncation): stop there.
        return Ok((chunk, None));
    }
    open.remaining -= chunk.len() as u64;
    if open.remaining == 0 {
        Ok((chunk, None))
    } else {
        Ok((chunk, Some(open)))
    }
}

/// Opens `full` (the file of driver path `path`) at `offset` and reads the first chunk, all
/// in one blocking call. A missing file or a directory is [`Error::PathNotFound`].
fn open_at(full: &Path, path: &str, offset: u64) -> Result<(Bytes, Option<Open>)> {
    let mut file = File::open(full).map_err(|e| lookup_error("reader", path, e))?;
    let metadata = file.metadata().map_err(|e| io_error("reader", path, e))?;
    if !metadata.is_file() {
        return Err(Error::path_not_found(DRIVER_NAME, path));
    }
    let size = metadata.len();
    if offset >= size {
        return Ok((Bytes::new(), None));
    }
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error("reader", path, e))?;
    }
    let open = Open {
        file,
        remaining: size - offset,
    };
    next_chunk(open).map_err(|e| io_error("reader", path, e))
}

/// A stream of the file at `full` from `offset`, read on `blocking` threads chunk by chunk
/// as the consumer asks. The file is opened (and the first chunk read) before this returns,
/// so a missing path fails here rather than in the stream.
pub(crate) async fn open_stream(
    blocking: &Blocking,
    full: std::path::PathBuf,
    path: &str,
    offset: u64,
) -> Result<ByteStream> {
    let owned = path.to_owned();
    let (first, rest) = blocking
        .run("reader", path, move || open_at(&full, &owned, offset))
        .await?;
    let head = if first.is_empty() {
        None
    } else {
        Some(Ok(first))
    };
    let Some(rest) = rest else {
        return Ok(stream::iter(head).boxed());
    };
    let state = (blocking.clone(), path.to_owned(), Some(rest));
    let tail = stream::unfold(state, |(blocking, path, open)| async move {
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
    Ok(stream::iter(head).chain(tail).boxed())
}
