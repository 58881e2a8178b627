//! Property tests of the frame decoder: arbitrary bytes, truncated frames, oversized lengths.
//! The decoder never panics, never reserves room beyond one frame of the maximum size, and
//! errors on garbage.

use std::sync::atomic::{AtomicU32, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use storagedriver_ipc::frame::{
    self, Frame, FrameDecoder, FrameError, FrameType, HEADER_LEN, MAX_PAYLOAD,
};

const CASES: u32 = 4096;

const TYPES: [FrameType; 14] = [
    FrameType::Hello,
    FrameType::Welcome,
    FrameType::Request,
    FrameType::Response,
    FrameType::ResponsePart,
    FrameType::Data,
    FrameType::End,
    FrameType::Credit,
    FrameType::Reset,
    FrameType::WalkEntry,
    FrameType::WalkControl,
    FrameType::Ping,
    FrameType::Pong,
    FrameType::Fatal,
];

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

/// What decoding `bytes` fed in pieces of the given sizes gives: the frames, then how it
/// ended (an error, or `None` when more bytes were needed). Checks the allocation bound after
/// every call.
fn decode_in_pieces(
    decoder: &mut FrameDecoder,
    bytes: &[u8],
    pieces: &[usize],
) -> Result<(Vec<Frame>, Option<FrameError>), TestCaseError> {
    let limit = 2 * (HEADER_LEN + decoder.max_payload()) + 64;
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    let mut piece = pieces.iter().cycle();
    loop {
        loop {
            let before = buf.capacity();
            match decoder.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => {
                    prop_assert!(
                        buf.capacity() <= before.max(limit),
                        "reserved {} bytes (limit {limit})",
                        buf.capacity()
                    );
                    break;
                }
                Err(e) => {
                    prop_assert_eq!(buf.capacity(), before, "nothing reserved on an error");
                    return Ok((frames, Some(e)));
                }
            }
        }
        if fed == bytes.len() {
            return Ok((frames, None));
        }
        let n = (*piece.next().unwrap_or(&1)).clamp(1, bytes.len() - fed);
        buf.put_slice(&bytes[fed..fed + n]);
        fed += n;
    }
}

fn arb_frame(max_payload: usize) -> impl Strategy<Value = Frame> {
    (
        0..TYPES.len(),
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..=max_payload),
    )
        .prop_map(|(t, id, payload)| Frame::new(TYPES[t], id, payload))
}

#[test]
fn arbitrary_bytes_never_panic_and_chunking_does_not_matter() {
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..2048),
        proptest::collection::vec(1usize..64, 1..8),
        prop_oneof![Just(MAX_PAYLOAD), 0usize..256],
    );
    let ran = AtomicU32::new(0);
    runner()
        .run(&strategy, |(bytes, pieces, max)| {
            ran.fetch_add(1, Ordering::Relaxed);
            let whole = decode_in_pieces(
                &mut FrameDecoder::with_max_payload(max),
                &bytes,
                &[bytes.len().max(1)],
            )?;
            let split =
                decode_in_pieces(&mut FrameDecoder::with_max_payload(max), &bytes, &pieces)?;
            prop_assert_eq!(&whole.0, &split.0);
            prop_assert_eq!(whole.1, split.1);
            Ok(())
        })
        .expect("decoding arbitrary bytes");
    let ran = ran.into_inner();
    assert!(ran >= CASES, "{ran} cases ran");
    eprintln!("arbitrary bytes: {ran} cases");
}

#[test]
fn valid_frames_round_trip_and_truncation_waits() {
    let strategy = (
        proptest::collection::vec(arb_frame(300), 1..6),
        proptest::collection::vec(1usize..200, 1..6),
        any::<proptest::sample::Index>(),
    );
    runner()
        .run(&strategy, |(frames, pieces, cut)| {
            let mut wire = BytesMut::new();
            for f in &frames {
                frame::encode(f, &mut wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            let (got, end) =
                decode_in_pieces(&mut FrameDecoder::with_max_payload(300), &wire, &pieces)?;
            prop_assert_eq!(&got, &frames);
            prop_assert!(end.is_none());

            // Truncated anywhere: the whole frames before the cut, then a wait for more.
            let cut = cut.index(wire.len());
            let (got, end) = decode_in_pieces(&mut FrameDecoder::new(), &wire[..cut], &pieces)?;
            prop_assert!(
                end.is_none(),
                "a truncated frame is not an error: {:?}",
                end
            );
            let mut complete = 0;
            let mut offset = 0;
            for f in &frames {
                offset += HEADER_LEN + f.payload.len();
                if offset <= cut {
                    complete += 1;
                }
            }
            prop_assert_eq!(&got[..], &frames[..complete]);
            Ok(())
        })
        .expect("round trips");
    eprintln!("valid and truncated frames: {CASES} cases");
}

#[test]
fn oversized_and_undersized_lengths_are_refused_without_allocating() {
    let strategy = (
        prop_oneof![(MAX_PAYLOAD as u32 + 10)..=u32::MAX, 0u32..9,],
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..64),
    );
    runner()
        .run(&strategy, |(length, kind, rest)| {
            let mut buf = BytesMut::new();
            buf.put_u32_le(length);
            buf.put_u8(kind);
            buf.put_slice(&rest);
            let cap = buf.capacity();
            let result = FrameDecoder::new().decode(&mut buf);
            prop_assert!(
                matches!(
                    result,
                    Err(FrameError::TooLong { .. } | FrameError::TooShort(_))
                ),
                "{:?}",
                result
            );
            prop_assert_eq!(buf.capacity(), cap);
            Ok(())
        })
        .expect("bad lengths");
    eprintln!("bad lengths: {CASES} cases");
}

#[test]
fn garbage_type_bytes_are_errors() {
    let strategy = (any::<u8>(), 9u32..1000, any::<u64>());
    runner()
        .run(&strategy, |(kind, length, id)| {
            let mut buf = BytesMut::new();
            buf.put_u32_le(length);
            buf.put_u8(kind);
            buf.put_u64_le(id);
            let result = FrameDecoder::new().decode(&mut buf);
            match FrameType::from_u8(kind) {
                Some(_) => prop_assert!(result.is_ok()),
                None => prop_assert_eq!(result, Err(FrameError::UnknownType(kind))),
            }
            Ok(())
        })
        .expect("type bytes");
    eprintln!("type bytes: {CASES} cases");
}

#[test]
fn the_largest_frame_decodes() {
    let payload = Bytes::from(vec![0xabu8; MAX_PAYLOAD]);
    let mut wire = BytesMut::new();
    frame::encode(&Frame::new(FrameType::Data, 3, payload.clone()), &mut wire).expect("fits");
    let f = FrameDecoder::new()
        .decode(&mut wire)
        .expect("valid")
        .expect("whole");
    assert_eq!(f.payload, payload);
    assert!(
        frame::encode(
            &Frame::new(FrameType::Data, 3, vec![0u8; MAX_PAYLOAD + 1]),
            &mut wire
        )
        .is_err()
    );
}

#[test]
fn the_type_list_is_complete() {
    let known: Vec<FrameType> = (0..=255u8).filter_map(FrameType::from_u8).collect();
    assert_eq!(known.len(), TYPES.len());
    for kind in known {
        assert!(
            TYPES.contains(&kind),
            "{} is missing from TYPES",
            kind.name()
        );
    }
    assert_eq!(FrameType::from_u8(0x12), Some(FrameType::ResponsePart));
    assert_eq!(FrameType::ResponsePart.name(), "RESPONSE_PART");
}
