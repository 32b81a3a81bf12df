//! The hand-written envelope readers on arbitrary envelopes (the bytes
//! after the length prefix): the heartbeat-batch column reader
//! (`src/wire/columns.rs`) and the group message reader
//! (`src/wire/messages.rs`) must read exactly what prost reads whenever
//! they accept, and the envelope decoder (which tries them first) must
//! give the same result, frame or error, as prost alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muxraft::wire::fuzzing::{
    check_batch_reader, check_group_reader, decode_envelope, decode_envelope_with_prost,
};
use muxraft::wire::{decode_frame, encode_frame};

fuzz_target!(|envelope: &[u8]| {
    if let Err(disagreement) = check_batch_reader(envelope) {
        panic!("{disagreement}");
    }
    if let Err(disagreement) = check_group_reader(envelope) {
        panic!("{disagreement}");
    }
    let both = decode_envelope(envelope);
    let prost = decode_envelope_with_prost(envelope);
    assert_eq!(
        both, prost,
        "the hand-written readers and prost decode differently"
    );
    if let Ok(f) = both {
        // A decoded frame re-encodes (batches and group messages by the
        // hand-written writers) to bytes the decoder reads back to the same
        // frame.
        let bytes = encode_frame(f.cluster_id, &f.envelope);
        assert_eq!(decode_frame(&bytes, usize::MAX), Ok(f));
    }
});
