//! The frame decoder on arbitrary bytes, as the transport's reader meets
//! them: the stream split into frames (`split_frame`), each decoded with
//! and without a copy, and the whole input decoded as one frame. Whatever
//! decodes is encoded again and must decode to the same frame, and that
//! encoding must be stable (encoding the decoded copy gives the same bytes).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use muxraft::wire::{decode_frame, decode_frame_bytes, encode_frame, split_frame, Frame};

/// Small enough that the fuzzer reaches "too large" too.
const MAX: usize = 16 << 10;

fn round_trip(frame: &Frame) {
    let bytes = encode_frame(frame.cluster_id, &frame.envelope);
    let again = decode_frame(&bytes, usize::MAX).expect("an encoded frame decodes");
    assert_eq!(&again, frame, "decode(encode(frame)) != frame");
    let twice = encode_frame(again.cluster_id, &again.envelope);
    assert_eq!(bytes, twice, "encoding is not stable");
}

fuzz_target!(|data: &[u8]| {
    // The whole input as one frame.
    let copied = decode_frame(data, MAX);
    let shared = decode_frame_bytes(bytes::Bytes::copy_from_slice(data), MAX);
    assert_eq!(
        copied, shared,
        "decode_frame and decode_frame_bytes disagree"
    );
    if let Ok(frame) = &copied {
        round_trip(frame);
    }
    // The input as a stream, fed in chunks of a size taken from its first
    // byte, split into frames as the connection reader does.
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match split_frame(&mut buf, MAX) {
                Ok(Some(frame)) => {
                    let copied = decode_frame(&frame, MAX);
                    let shared = decode_frame_bytes(frame, MAX);
                    assert_eq!(copied, shared);
                    if let Ok(frame) = &shared {
                        round_trip(frame);
                    }
                }
                Ok(None) => break,
                // The stream cannot be resynchronized: the reader closes it.
                Err(_) => return,
            }
        }
    }
});
