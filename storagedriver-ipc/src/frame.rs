//! The framing of the IPC protocol: frame types, encoding and an incremental decoder.
//!
//! Pure code, no I/O, so that it can be fuzzed. A frame on the wire is
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 4 | `length`: `9 + payload length`, little-endian |
//! | 4 | 1 | `type` ([`FrameType`]) |
//! | 5 | 8 | `id`, little-endian |
//! | 13 | `length - 9` | payload, at most [`MAX_PAYLOAD`] bytes |
//!
//! ```
//! use bytes::BytesMut;
//! use storagedriver_ipc::frame::{encode, Frame, FrameDecoder, FrameType};
//!
//! let mut wire = BytesMut::new();
//! encode(&Frame::new(FrameType::Ping, 7, &b""[..]), &mut wire).unwrap();
//! encode(&Frame::new(FrameType::Data, 1, &b"hello"[..]), &mut wire).unwrap();
//!
//! let mut decoder = FrameDecoder::new();
//! let mut half = wire.split_to(20); // a frame and a half arrived so far
//! let ping = decoder.decode(&mut half).unwrap().unwrap();
//! assert_eq!((ping.kind, ping.id), (FrameType::Ping, 7));
//! assert!(decoder.decode(&mut half).unwrap().is_none()); // needs more bytes
//! half.unsplit(wire);
//! let data = decoder.decode(&mut half).unwrap().unwrap();
//! assert_eq!(&data.payload[..], b"hello");
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The bytes before a frame's payload: length (4), type (1) and id (8).
pub const HEADER_LEN: usize = 13;

/// The largest payload a frame may carry: 1 MiB.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// The largest JSON response, all its `RESPONSE_PART` pieces and the final `RESPONSE`
/// together: 64 MiB.
pub const MAX_RESPONSE: usize = 64 << 20;

/// The smallest valid `length` field: type and id, no payload.
const MIN_LENGTH: u32 = 9;

/// The type of a frame (the byte at offset 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Client → server, id 0: the client's protocol version.
    Hello = 0x01,
    /// Server → client, id 0: the server's version, driver name and capabilities.
    Welcome = 0x02,
    /// Client → server: a JSON request on a new request id.
    Request = 0x10,
    /// Server → client: the JSON answer to a request (or its last piece, after
    /// [`FrameType::ResponsePart`] frames).
    Response = 0x11,
    /// Server → client: a piece of a JSON answer longer than [`MAX_PAYLOAD`]; the pieces and
    /// the final [`FrameType::Response`] concatenate to the whole.
    ResponsePart = 0x12,
    /// Both ways: raw bytes of a stream (1 byte to 1 MiB).
    Data = 0x20,
    /// Both ways: the stream's sender has sent everything.
    End = 0x21,
    /// Both ways: 4 bytes, the stream's receiver allows that many more bytes.
    Credit = 0x22,
    /// Both ways: the stream is abandoned (payload empty or a JSON error).
    Reset = 0x23,
    /// Server → client: one entry of a walk (JSON file info).
    WalkEntry = 0x30,
    /// Client → server: 1 byte, what the walk does after an entry.
    WalkControl = 0x31,
    /// Client → server: are you alive?
    Ping = 0x40,
    /// Server → client: the answer to a ping, with its id.
    Pong = 0x41,
    /// Both ways, id 0: a protocol error; the sender closes the connection next.
    Fatal = 0x7f,
}

impl FrameType {
    /// The type of a type byte, if it is one of the protocol's.
    pub fn from_u8(byte: u8) -> Option<FrameType> {
        Some(match byte {
            0x01 => FrameType::Hello,
            0x02 => FrameType::Welcome,
            0x10 => FrameType::Request,
            0x11 => FrameType::Response,
            0x12 => FrameType::ResponsePart,
            0x20 => FrameType::Data,
            0x21 => FrameType::End,
            0x22 => FrameType::Credit,
            0x23 => FrameType::Reset,
            0x30 => FrameType::WalkEntry,
            0x31 => FrameType::WalkControl,
            0x40 => FrameType::Ping,
            0x41 => FrameType::Pong,
            0x7f => FrameType::Fatal,
            _ => return None,
        })
    }

    /// The type byte.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The protocol's name of the type, e.g. `DATA`.
    pub fn name(self) -> &'static str {
        match self {
            FrameType::Hello => "HELLO",
            FrameType::Welcome => "WELCOME",
            FrameType::Request => "REQUEST",
            FrameType::Response => "RESPONSE",
            FrameType::ResponsePart => "RESPONSE_PART",
            FrameType::Data => "DATA",
            FrameType::End => "END",
            FrameType::Credit => "CREDIT",
            FrameType::Reset => "RESET",
            FrameType::WalkEntry => "WALK_ENTRY",
            FrameType::WalkControl => "WALK_CONTROL",
            FrameType::Ping => "PING",
            FrameType::Pong => "PONG",
            FrameType::Fatal => "FATAL",
        }
    }
}

/// One frame: its type, its id and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame's type.
    pub kind: FrameType,
    /// The request or stream the frame belongs to (0 for connection-level frames).
    pub id: u64,
    /// The payload: JSON or raw bytes, depending on the type.
    pub payload: Bytes,
}

impl Frame {
    /// A frame of `kind` on `id` carrying `payload`.
    pub fn new(kind: FrameType, id: u64, payload: impl Into<Bytes>) -> Frame {
        Frame {
            kind,
            id,
            payload: payload.into(),
        }
    }
}

/// A frame that breaks the framing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The `length` field is below 9 (a frame always has a type and an id).
    #[error("frame length {0} is below the minimum of 9")]
    TooShort(u32),
    /// The `length` field announces a payload above the limit.
    #[error("frame length {length} exceeds the maximum of {max} (payload at most {max_payload} bytes)", max = .max_payload + 9)]
    TooLong {
        /// The announced length.
        length: u32,
        /// The largest payload allowed.
        max_payload: usize,
    },
    /// The type byte is not one of the protocol's.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    /// A payload to encode is above the limit.
    #[error("a payload of {0} bytes exceeds the maximum of {MAX_PAYLOAD}")]
    PayloadTooLarge(usize),
}

/// The 13 header bytes of a frame of `kind` on `id` with a payload of `payload_len` bytes.
///
/// # Errors
///
/// [`FrameError::PayloadTooLarge`] when `payload_len` is above [`MAX_PAYLOAD`].
pub fn encode_header(
    kind: FrameType,
    id: u64,
    payload_len: usize,
) -> Result<[u8; HEADER_LEN], FrameError> {
    if payload_len > MAX_PAYLOAD {
        return Err(FrameError::PayloadTooLarge(payload_len));
    }
    // MAX_PAYLOAD + 9 fits in a u32.
    let length = (payload_len as u32) + MIN_LENGTH;
    let mut header = [0u8; HEADER_LEN];
    header[0..4].copy_from_slice(&length.to_le_bytes());
    header[4] = kind.as_u8();
    header[5..13].copy_from_slice(&id.to_le_bytes());
    Ok(header)
}

/// Appends `frame`, header and payload, to `dst`.
///
/// # Errors
///
/// [`FrameError::PayloadTooLarge`] when the payload is above [`MAX_PAYLOAD`]; `dst` is then
/// unchanged.
pub fn encode(frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
    let header = encode_header(frame.kind, frame.id, frame.payload.len())?;
    dst.reserve(HEADER_LEN + frame.payload.len());
    dst.put_slice(&header);
    dst.put_slice(&frame.payload);
    Ok(())
}

/// Cuts frames out of a buffer of received bytes, one at a time.
///
/// [`FrameDecoder::decode`] returns `Ok(None)` while the buffer holds less than a whole
/// frame. It checks the announced length before it reserves room for the payload, so it never
/// allocates more than one frame of the maximum size, whatever the bytes say. The payload of a
/// decoded frame is split off the buffer without copying.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_payload: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    /// A decoder that accepts payloads up to [`MAX_PAYLOAD`].
    pub fn new() -> FrameDecoder {
        FrameDecoder {
            max_payload: MAX_PAYLOAD,
        }
    }

    /// A decoder with a lower payload limit (at most [`MAX_PAYLOAD`]), e.g. for tests.
    pub fn with_max_payload(max_payload: usize) -> FrameDecoder {
        FrameDecoder {
            max_payload: max_payload.min(MAX_PAYLOAD),
        }
    }

    /// The largest payload this decoder accepts.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The whole length (header and payload) of the frame at the front of `buf`, once its
    /// length and type bytes are there; `Ok(None)` before.
    ///
    /// # Errors
    ///
    /// As [`FrameDecoder::decode`]: the length or the type breaks the rules.
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        Ok(self.header(buf)?.map(|(total, _)| total))
    }

    /// The whole length and the type of the frame at the front of `buf`, checked.
    fn header(&self, buf: &[u8]) -> Result<Option<(usize, FrameType)>, FrameError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let length = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if length < MIN_LENGTH {
            return Err(FrameError::TooShort(length));
        }
        let payload_len = (length - MIN_LENGTH) as usize;
        if payload_len > self.max_payload {
            return Err(FrameError::TooLong {
                length,
                max_payload: self.max_payload,
            });
        }
        if buf.len() < 5 {
            return Ok(None);
        }
        let Some(kind) = FrameType::from_u8(buf[4]) else {
            return Err(FrameError::UnknownType(buf[4]));
        };
        Ok(Some((HEADER_LEN + payload_len, kind)))
    }

    /// The next frame at the front of `buf`, removed from it; `Ok(None)` when more bytes are
    /// needed (room for the rest of the frame is then reserved in `buf`).
    ///
    /// # Errors
    ///
    /// A `length` below 9 or above `9 + max_payload`, or an unknown type: the connection is
    /// broken and must be closed; `buf` is left as it was.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some((total, kind)) = self.header(buf)? else {
            return Ok(None);
        };
        if buf.len() < total {
            // The length is checked: room for this one frame is bounded by the limit.
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let mut frame = buf.split_to(total);
        frame.advance(5);
        let id = frame.get_u64_le();
        Ok(Some(Frame {
            kind,
            id,
            payload: frame.freeze(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_type() {
        for byte in 0..=255u8 {
            let Some(kind) = FrameType::from_u8(byte) else {
                continue;
            };
            assert_eq!(kind.as_u8(), byte);
            let mut buf = BytesMut::new();
            let frame = Frame::new(kind, u64::MAX - u64::from(byte), vec![byte; 3]);
            encode(&frame, &mut buf).expect("encodes");
            let got = FrameDecoder::new().decode(&mut buf).expect("decodes");
            assert_eq!(got, Some(frame));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn header_layout_is_little_endian() {
        let header = encode_header(FrameType::Credit, 0x0102_0304_0506_0708, 4).expect("fits");
        assert_eq!(
            header,
            [13, 0, 0, 0, 0x22, 8, 7, 6, 5, 4, 3, 2, 1],
            "length 9+4, type, id"
        );
    }

    #[test]
    fn limits() {
        assert!(encode_header(FrameType::Data, 1, MAX_PAYLOAD).is_ok());
        assert_eq!(
            encode_header(FrameType::Data, 1, MAX_PAYLOAD + 1),
            Err(FrameError::PayloadTooLarge(MAX_PAYLOAD + 1))
        );
        let mut buf = BytesMut::from(&[8u8, 0, 0, 0, 0x20][..]);
        assert_eq!(
            FrameDecoder::new().decode(&mut buf),
            Err(FrameError::TooShort(8))
        );
        let too_long = (MAX_PAYLOAD as u32 + 10).to_le_bytes();
        let mut buf = BytesMut::from(&too_long[..]);
        let cap = buf.capacity();
        assert!(matches!(
            FrameDecoder::new().decode(&mut buf),
            Err(FrameError::TooLong { .. })
        ));
        assert_eq!(buf.capacity(), cap, "nothing reserved for a bad length");
        let mut buf = BytesMut::from(&[9u8, 0, 0, 0, 0x55][..]);
        assert_eq!(
            FrameDecoder::new().decode(&mut buf),
            Err(FrameError::UnknownType(0x55))
        );
    }

    #[test]
    fn partial_frames_wait() {
        let mut wire = BytesMut::new();
        encode(&Frame::new(FrameType::Data, 9, vec![7u8; 1000]), &mut wire).expect("encodes");
        let mut decoder = FrameDecoder::new();
        let mut buf = BytesMut::new();
        for (i, byte) in wire.iter().enumerate() {
            buf.put_u8(*byte);
            let got = decoder.decode(&mut buf).expect("valid");
            if i + 1 < wire.len() {
                assert!(got.is_none());
            } else {
                assert_eq!(got.map(|f| f.payload.len()), Some(1000));
            }
        }
    }
}
