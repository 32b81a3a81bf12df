//! What the fuzz targets (`fuzz/`) need of the wire layer's internals, and
//! nothing else: built only with the `fuzzing` feature (and in tests).
//! Not part of the library's API.

use super::frame::{self, Frame};
use super::{columns, messages, WireError};

/// An envelope (the bytes after the length prefix) decoded as
/// `decode_frame` decodes it: heartbeat batches and group messages by the
/// hand-written readers when they accept them, the rest by prost.
pub fn decode_envelope(envelope: &[u8]) -> Result<Frame, WireError> {
    frame::decode_envelope(envelope)
}

/// An envelope (the bytes after the length prefix) decoded by prost alone,
/// without the hand-written readers (heartbeat batches, group messages)
/// `decode_frame` tries first.
pub fn decode_envelope_with_prost(envelope: &[u8]) -> Result<Frame, WireError> {
    frame::decode_envelope_with_prost(envelope)
}

/// What the hand-written heartbeat-batch reader (`columns.rs`) made of an
/// envelope, checked against prost.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchReader {
    /// The reader declined it (another body, a form it leaves to prost,
    /// malformed bytes): prost decides.
    Declined,
    /// The reader accepted it, and prost decodes the same envelope.
    Agrees,
}

/// Runs the hand-written batch reader on `envelope` and, if it accepts,
/// prost with `batch.rs`'s checks too: `Err` describes a disagreement
/// (prost refuses what the reader accepted, or reads other rows), which is
/// a bug.
pub fn check_batch_reader(envelope: &[u8]) -> Result<BatchReader, String> {
    let Some(d) = columns::decode_batch_envelope(envelope) else {
        return Ok(BatchReader::Declined);
    };
    let ours = frame::from_decoded(d);
    match frame::decode_envelope_with_prost(envelope) {
        theirs if theirs == ours => Ok(BatchReader::Agrees),
        theirs => Err(format!("the reader read {ours:?}, prost {theirs:?}")),
    }
}

/// Runs the hand-written group message reader (`messages.rs`) on
/// `envelope` and, if it accepts, prost too: `Err` describes a
/// disagreement (prost refuses what the reader accepted, or reads other
/// messages), which is a bug.
pub fn check_group_reader(envelope: &[u8]) -> Result<BatchReader, String> {
    let Some(d) = messages::decode_group_envelope(envelope) else {
        return Ok(BatchReader::Declined);
    };
    let ours = frame::from_decoded(d);
    match frame::decode_envelope_with_prost(envelope) {
        theirs if theirs == ours => Ok(BatchReader::Agrees),
        theirs => Err(format!("the group reader read {ours:?}, prost {theirs:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multi::{Body, Envelope, GroupHeartbeat, HeartbeatBatch};
    use crate::wire::{encode_frame, FRAME_HEADER_LEN};

    fn batch_envelope() -> Vec<u8> {
        let frame = encode_frame(
            7,
            &Envelope {
                from: 1,
                to: 2,
                body: Body::HeartbeatBatch(HeartbeatBatch {
                    rows: (1..5)
                        .map(|g| GroupHeartbeat {
                            group_id: g,
                            term: 3,
                            commit: 2,
                        })
                        .collect(),
                    ..Default::default()
                }),
            },
        );
        frame[FRAME_HEADER_LEN..].to_vec()
    }

    #[test]
    fn the_batch_check_says_which_path_read_the_envelope() {
        let env = batch_envelope();
        assert_eq!(check_batch_reader(&env), Ok(BatchReader::Agrees));
        // An unknown envelope field: the reader leaves it to prost.
        let mut unknown = env.clone();
        unknown.extend_from_slice(&[0x98, 0x06, 1]);
        assert_eq!(check_batch_reader(&unknown), Ok(BatchReader::Declined));
        assert_eq!(decode_envelope(&env), decode_envelope_with_prost(&env));
        assert_eq!(
            decode_envelope(&unknown),
            decode_envelope_with_prost(&unknown)
        );
        let frame = decode_envelope_with_prost(&env).unwrap();
        assert!(matches!(frame.envelope.body, Body::HeartbeatBatch(b) if b.rows.len() == 4));
        assert!(decode_envelope_with_prost(&env[..env.len() - 1]).is_err());
    }
}
