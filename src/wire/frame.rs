//! The envelope and the framing: turning a [`Frame`] into length-prefixed
//! bytes and back, and splitting a byte stream into frames.
//!
//! Decoding is where a peer's bytes first meet our code, so it validates
//! everything the byte format can express wrongly and hands the layers above
//! only well-formed frames: a valid version, non-zero node ids, a body, known
//! message types and entry kinds, and well-formed batches.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message as _;

use super::batch;
use super::columns;
use super::messages;
use super::{proto, WireError, PROTOCOL_VERSION};
use crate::multi::{Body, Envelope, GroupMessage, SnapshotAck, SnapshotChunk};
use crate::raft::{Entry, EntryKind, Message, MessageType, SnapshotMeta};

/// Bytes of the length prefix in front of every envelope.
pub const FRAME_HEADER_LEN: usize = 4;

/// Everything one node sends another in one frame: the multi layer's
/// [`Envelope`] and the cluster it belongs to.
///
/// In a group message `msg.from`/`msg.to` equal the envelope's `from`/`to`:
/// they are not sent twice, and decoding fills them in from the envelope. A
/// heartbeat batch may be encoded in any row order; decoding yields
/// strictly ascending group ids. On a decoded frame `from` and `to` are
/// never 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The cluster the sender belongs to; see [`Frame::check_cluster`].
    pub cluster_id: u64,
    pub envelope: Envelope,
}

impl Frame {
    /// Refuses a frame from another cluster. Kept apart from decoding
    /// because the expected id is the receiving node's configuration.
    pub fn check_cluster(&self, expected: u64) -> Result<(), WireError> {
        if self.cluster_id == expected {
            Ok(())
        } else {
            Err(WireError::ClusterMismatch {
                expected,
                actual: self.cluster_id,
            })
        }
    }
}

/// Encodes `envelope` as a frame of cluster `cluster_id`, length prefix
/// included.
///
/// # Panics
///
/// If the envelope is over `u32::MAX` bytes, which a 4-byte prefix cannot
/// express. Only a group message with gigabytes of entries can get there;
/// callers that do not bound entry sizes themselves should use
/// [`try_encode_frame`] with the peer's limit instead.
pub fn encode_frame(cluster_id: u64, envelope: &Envelope) -> Bytes {
    match try_encode_frame(cluster_id, envelope, u32::MAX as usize) {
        Ok(bytes) => bytes,
        Err(err) => panic!("cannot encode frame: {err}"),
    }
}

/// Encodes a frame, length prefix included, unless its envelope (the bytes
/// after the prefix) is over `max` bytes, in which case the peer would refuse
/// it anyway.
pub fn try_encode_frame(
    cluster_id: u64,
    envelope: &Envelope,
    max: usize,
) -> Result<Bytes, WireError> {
    let max = max.min(u32::MAX as usize);
    // The batches every interval brings are written by hand (the same
    // bytes, faster: `columns.rs`): straight from rows in group order,
    // the multi layer's, or else from the columns `batch.rs` builds.
    let rows = match &envelope.body {
        Body::HeartbeatBatch(b) if columns::ascending(b.rows.iter().map(|h| h.group_id)) => {
            Some(columns::BatchBody::Rows(b))
        }
        Body::HeartbeatBatchResponse(r)
            if columns::ascending(r.rows.iter().map(|a| a.group_id)) =>
        {
            Some(columns::BatchBody::Answers(r))
        }
        _ => None,
    };
    if let Some(body) = rows {
        let (bytes, len) =
            columns::encode_batch_frame(cluster_id, envelope.from, envelope.to, body);
        if len > max {
            return Err(WireError::TooLarge { len, max });
        }
        return Ok(bytes);
    }
    // Group messages, the data path, by hand too (`messages.rs`).
    let group_frame = match &envelope.body {
        Body::Group {
            group_id,
            incarnation,
            msg,
        } => {
            debug_assert_eq!(
                (msg.from, msg.to),
                (envelope.from, envelope.to),
                "a group message travels between the nodes hosting its replicas"
            );
            let item = [(*group_id, *incarnation, msg)];
            Some(messages::encode_group_frame(
                cluster_id,
                envelope.from,
                envelope.to,
                &item,
                true,
            ))
        }
        Body::Groups(msgs) if !msgs.is_empty() => {
            let items: Vec<messages::Item> = msgs
                .iter()
                .map(|m| {
                    debug_assert_eq!((m.msg.from, m.msg.to), (envelope.from, envelope.to));
                    (m.group_id, m.incarnation, &m.msg)
                })
                .collect();
            Some(messages::encode_group_frame(
                cluster_id,
                envelope.from,
                envelope.to,
                &items,
                false,
            ))
        }
        _ => None,
    };
    if let Some((bytes, len)) = group_frame {
        if len > max {
            return Err(WireError::TooLarge { len, max });
        }
        return Ok(bytes);
    }
    let columns = match &envelope.body {
        Body::HeartbeatBatch(b) => Some(proto::EnvelopeBody::Batch(batch::encode_heartbeats(b))),
        Body::HeartbeatBatchResponse(r) => Some(proto::EnvelopeBody::BatchResponse(
            batch::encode_responses(r),
        )),
        _ => None,
    };
    if let Some(body) = columns {
        let body = match &body {
            proto::EnvelopeBody::Batch(b) => columns::BatchBody::Batch(b),
            proto::EnvelopeBody::BatchResponse(r) => columns::BatchBody::Response(r),
            _ => unreachable!("a batch body"),
        };
        let (bytes, len) =
            columns::encode_batch_frame(cluster_id, envelope.from, envelope.to, body);
        if len > max {
            return Err(WireError::TooLarge { len, max });
        }
        return Ok(bytes);
    }
    let envelope = to_envelope(cluster_id, envelope);
    let len = envelope.encoded_len();
    if len > max {
        return Err(WireError::TooLarge { len, max });
    }
    let mut buf = BytesMut::with_capacity(FRAME_HEADER_LEN + len);
    // `len <= u32::MAX` was checked above.
    buf.put_u32(len as u32);
    // Cannot fail: the buffer was sized for the envelope (and BytesMut grows).
    envelope
        .encode(&mut buf)
        .map_err(|err| WireError::TooLarge {
            len: err.required_capacity(),
            max: err.remaining(),
        })?;
    Ok(buf.freeze())
}

/// Encodes one frame of cluster `cluster_id` carrying the group messages
/// `msgs` from node `from` to node `to`, as [`Body::Groups`] would (without
/// building the body: the messages are borrowed). Every one of `msgs` must
/// be a [`Body::Group`] between `from` and `to`; others are skipped (a
/// debug build panics).
///
/// # Panics
///
/// If the envelope is over `u32::MAX` bytes (see [`encode_frame`]).
pub fn encode_groups_frame(cluster_id: u64, from: u64, to: u64, msgs: &[&Envelope]) -> Bytes {
    let items: Vec<messages::Item> = msgs
        .iter()
        .filter_map(|env| match &env.body {
            Body::Group {
                group_id,
                incarnation,
                msg,
            } if env.from == from && env.to == to => Some((*group_id, *incarnation, msg)),
            _ => {
                debug_assert!(false, "not a group message from {from} to {to}: {env:?}");
                None
            }
        })
        .collect();
    messages::encode_group_frame(cluster_id, from, to, &items, false).0
}

/// Reads a length prefix and checks it before anything is buffered: the
/// envelope length it announces, which is neither 0 (an envelope always
/// carries at least a version and a body) nor over `max`.
///
/// Stream readers call this on the first 4 bytes of a frame so that a
/// corrupt or hostile prefix cannot make them allocate up to 4 GiB.
pub fn frame_length(header: [u8; FRAME_HEADER_LEN], max: usize) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(header) as usize;
    if len == 0 {
        return Err(WireError::Malformed("zero-length frame".into()));
    }
    // The second test only matters where usize is 32 bits: the whole frame
    // length must be representable.
    if len > max || len.checked_add(FRAME_HEADER_LEN).is_none() {
        return Err(WireError::TooLarge { len, max });
    }
    Ok(len)
}

/// Splits the next whole frame (prefix included, ready for [`decode_frame`]
/// or [`decode_frame_bytes`]) off the front of a stream buffer.
///
/// Returns `Ok(None)` until the buffer holds a whole frame; call it again
/// after reading more bytes, and repeatedly while it returns frames. It does
/// not reserve room for the announced length, so memory grows with the bytes
/// actually received, not with what a prefix promises. An error means the
/// stream cannot be resynchronized: close the connection.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, WireError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(None);
    }
    let len = frame_length([buf[0], buf[1], buf[2], buf[3]], max)?;
    let total = FRAME_HEADER_LEN + len;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(buf.split_to(total).freeze()))
}

/// Decodes one whole frame, length prefix included, whose envelope may be at
/// most `max` bytes.
///
/// Entry payloads are copied out of `buf`; [`decode_frame_bytes`] avoids
/// that copy.
pub fn decode_frame(buf: &[u8], max: usize) -> Result<Frame, WireError> {
    check_prefix(buf, max)?;
    decode_envelope(&buf[FRAME_HEADER_LEN..])
}

/// Like [`decode_frame`], but large entry payloads (at least
/// [`SHARE_ENTRIES_FROM`] bytes) share `buf` instead of being copied (they
/// keep the frame's allocation alive as long as they live); small ones are
/// copied, so that a log of small entries does not pin whole frames.
/// Meant for the frames [`split_frame`] returns.
pub fn decode_frame_bytes(buf: Bytes, max: usize) -> Result<Frame, WireError> {
    check_prefix(&buf, max)?;
    decode_envelope(buf.slice(FRAME_HEADER_LEN..))
}

/// Checks that `buf` is exactly one frame: its length prefix is valid and
/// agrees with the buffer length.
fn check_prefix(buf: &[u8], max: usize) -> Result<(), WireError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Err(WireError::Truncated {
            need: FRAME_HEADER_LEN,
            have: buf.len(),
        });
    }
    // Agreement with the buffer first: noise announcing a huge length is
    // malformed, not "too large"; only a whole frame over the limit is.
    let announced = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let have = buf.len() - FRAME_HEADER_LEN;
    match have.cmp(&announced) {
        std::cmp::Ordering::Less => Err(WireError::Truncated {
            need: FRAME_HEADER_LEN.saturating_add(announced),
            have: buf.len(),
        }),
        std::cmp::Ordering::Greater => Err(WireError::Malformed(format!(
            "length prefix says {announced} bytes, {have} follow"
        ))),
        std::cmp::Ordering::Equal => {
            frame_length([buf[0], buf[1], buf[2], buf[3]], max).map(|_| ())
        }
    }
}

/// Decodes and validates an envelope (the bytes after the prefix).
pub(super) fn decode_envelope<B: Buf + Clone>(payload: B) -> Result<Frame, WireError> {
    // Batches first, read by hand where prost would read the same
    // (`columns.rs`); anything else, errors included, is prost's.
    // The group messages of the data path the same way (`messages.rs`).
    if payload.chunk().len() == payload.remaining() {
        let buf = payload.chunk();
        match columns::body_key(buf) {
            Some(k) if columns::is_batch_key(k) => {
                if let Some(d) = columns::decode_batch_envelope(buf) {
                    return from_decoded(d);
                }
            }
            Some(k) if messages::is_group_key(k) => {
                if let Some(d) = messages::decode_group_envelope(buf) {
                    return from_decoded(d);
                }
            }
            _ => {}
        }
    }
    decode_envelope_with_prost(payload)
}

/// An envelope as prost alone reads it: what [`decode_envelope`] does with
/// anything the hand-written batch reader declines (and what it must agree
/// with on everything that reader accepts).
pub(super) fn decode_envelope_with_prost<B: Buf + Clone>(payload: B) -> Result<Frame, WireError> {
    // The version is checked first, on the header fields alone, so that a
    // peer with another version gets `Version` even when its body would not
    // parse as ours.
    let header = proto::EnvelopeHeader::decode(payload.clone()).map_err(malformed)?;
    if header.version != PROTOCOL_VERSION {
        return Err(WireError::Version(header.version));
    }
    let envelope = proto::Envelope::decode(payload).map_err(malformed)?;
    from_envelope(envelope)
}

fn malformed(err: prost::DecodeError) -> WireError {
    WireError::Malformed(err.to_string())
}

/// `frame` as prost's structs: how every body but the hand-written ones
/// is encoded, and the reference the hand-written writers are checked
/// against.
pub(super) fn to_envelope(cluster_id: u64, frame: &Envelope) -> proto::Envelope {
    let body = match &frame.body {
        Body::Group {
            group_id,
            incarnation,
            msg,
        } => {
            // (Checked by `try_encode_frame`, which writes these by hand.)
            proto::EnvelopeBody::Group(proto::GroupMessage {
                group_id: *group_id,
                incarnation: *incarnation,
                msg: Some(raft_message_to_wire(msg)),
            })
        }
        Body::Groups(msgs) => proto::EnvelopeBody::Groups(proto::GroupMessages {
            messages: msgs
                .iter()
                .map(|m| {
                    debug_assert_eq!((m.msg.from, m.msg.to), (frame.from, frame.to));
                    proto::GroupMessage {
                        group_id: m.group_id,
                        incarnation: m.incarnation,
                        msg: Some(raft_message_to_wire(&m.msg)),
                    }
                })
                .collect(),
        }),
        Body::HeartbeatBatch(beats) => proto::EnvelopeBody::Batch(batch::encode_heartbeats(beats)),
        Body::HeartbeatBatchResponse(responses) => {
            proto::EnvelopeBody::BatchResponse(batch::encode_responses(responses))
        }
        Body::SnapshotChunk(c) => proto::EnvelopeBody::SnapshotChunk(proto::SnapshotChunk {
            group_id: c.group_id,
            incarnation: c.incarnation,
            term: c.term,
            index: c.meta.index,
            snapshot_term: c.meta.term,
            voters: c.meta.voters.clone(),
            total_len: c.total_len,
            crc: c.crc,
            offset: c.offset,
            data: c.data.clone(),
            learners: c.meta.learners.clone(),
            promotable: c.meta.promotable.clone(),
        }),
        Body::SnapshotAck(a) => proto::EnvelopeBody::SnapshotAck(proto::SnapshotAck {
            group_id: a.group_id,
            incarnation: a.incarnation,
            term: a.term,
            index: a.index,
            received: a.received,
        }),
    };
    proto::Envelope {
        version: PROTOCOL_VERSION,
        cluster_id,
        from: frame.from,
        to: frame.to,
        body: Some(body),
    }
}

/// The frame of a batch envelope the hand-written reader read, checked as
/// [`decode_envelope_with_prost`] checks the same envelope.
pub(super) fn from_decoded(d: columns::Decoded) -> Result<Frame, WireError> {
    if d.version != PROTOCOL_VERSION {
        return Err(WireError::Version(d.version));
    }
    check_ends(d.from, d.to)?;
    Ok(Frame {
        cluster_id: d.cluster_id,
        envelope: Envelope {
            from: d.from,
            to: d.to,
            body: d.body,
        },
    })
}

/// 0 is "no replica" in Raft: a message from or to nobody cannot be
/// stepped, and would confuse vote and leader bookkeeping.
pub(super) fn check_ends(from: u64, to: u64) -> Result<(), WireError> {
    if from == 0 {
        return Err(WireError::Malformed("sender node id is 0".into()));
    }
    if to == 0 {
        return Err(WireError::Malformed("receiver node id is 0".into()));
    }
    Ok(())
}

fn from_envelope(envelope: proto::Envelope) -> Result<Frame, WireError> {
    let proto::Envelope {
        version: _,
        cluster_id,
        from,
        to,
        body,
    } = envelope;
    check_ends(from, to)?;
    let body = match body {
        None => return Err(WireError::Malformed("envelope has no body".into())),
        Some(proto::EnvelopeBody::Group(group)) => {
            let m = group_message(group, from, to)?;
            Body::Group {
                group_id: m.group_id,
                incarnation: m.incarnation,
                msg: m.msg,
            }
        }
        Some(proto::EnvelopeBody::Groups(groups)) => {
            if groups.messages.is_empty() {
                return Err(WireError::Malformed("group messages frame is empty".into()));
            }
            Body::Groups(
                groups
                    .messages
                    .into_iter()
                    .map(|g| group_message(g, from, to))
                    .collect::<Result<_, _>>()?,
            )
        }
        Some(proto::EnvelopeBody::Batch(beats)) => {
            Body::HeartbeatBatch(batch::decode_heartbeats(beats)?)
        }
        Some(proto::EnvelopeBody::BatchResponse(responses)) => {
            Body::HeartbeatBatchResponse(batch::decode_responses(responses)?)
        }
        Some(proto::EnvelopeBody::SnapshotChunk(c)) => Body::SnapshotChunk(snapshot_chunk(c)?),
        Some(proto::EnvelopeBody::SnapshotAck(a)) => Body::SnapshotAck(SnapshotAck {
            group_id: a.group_id,
            incarnation: a.incarnation,
            term: a.term,
            index: a.index,
            received: a.received,
        }),
    };
    Ok(Frame {
        cluster_id,
        envelope: Envelope { from, to, body },
    })
}

fn group_message(
    group: proto::GroupMessage,
    from: u64,
    to: u64,
) -> Result<GroupMessage, WireError> {
    let msg = group
        .msg
        .ok_or_else(|| WireError::Malformed("group message has no Raft message".into()))?;
    Ok(GroupMessage {
        group_id: group.group_id,
        incarnation: group.incarnation,
        msg: raft_message_from_wire(msg, from, to)?,
    })
}

/// A chunk must be a piece of a snapshot that exists (index > 0, a term no
/// later than the sender's) and lie within it.
fn snapshot_chunk(c: proto::SnapshotChunk) -> Result<SnapshotChunk, WireError> {
    if c.index == 0 {
        return Err(WireError::Malformed("snapshot chunk of index 0".into()));
    }
    if c.snapshot_term > c.term {
        return Err(WireError::Malformed(
            "snapshot chunk of a term after its sender's".into(),
        ));
    }
    let within =
        matches!(c.offset.checked_add(c.data.len() as u64), Some(end) if end <= c.total_len);
    if !within {
        return Err(WireError::Malformed(format!(
            "snapshot chunk at {} of {} bytes runs past the snapshot's {} bytes",
            c.offset,
            c.data.len(),
            c.total_len
        )));
    }
    Ok(SnapshotChunk {
        group_id: c.group_id,
        incarnation: c.incarnation,
        term: c.term,
        meta: SnapshotMeta {
            index: c.index,
            term: c.snapshot_term,
            voters: c.voters,
            learners: c.learners,
            promotable: c.promotable,
        },
        total_len: c.total_len,
        crc: c.crc,
        offset: c.offset,
        data: c.data,
    })
}

fn raft_message_to_wire(msg: &Message) -> proto::RaftMessage {
    proto::RaftMessage {
        msg_type: msg_type_to_wire(msg.msg_type),
        term: msg.term,
        log_term: msg.log_term,
        index: msg.index,
        entries: msg
            .entries
            .iter()
            .map(|e| proto::Entry {
                term: e.term,
                index: e.index,
                kind: entry_kind_to_wire(e.kind),
                data: e.data.clone(),
            })
            .collect(),
        commit: msg.commit,
        reject: msg.reject,
        reject_hint: msg.reject_hint,
        transfer: msg.transfer,
        rejoined: msg.rejoined,
    }
}

fn raft_message_from_wire(
    msg: proto::RaftMessage,
    from: u64,
    to: u64,
) -> Result<Message, WireError> {
    let entries = msg
        .entries
        .into_iter()
        .map(|e| {
            Ok(Entry {
                term: e.term,
                index: e.index,
                kind: entry_kind_from_wire(e.kind)?,
                data: own_unless_large(e.data),
            })
        })
        .collect::<Result<Vec<_>, WireError>>()?;
    Ok(Message {
        msg_type: msg_type_from_wire(msg.msg_type)?,
        from,
        to,
        term: msg.term,
        log_term: msg.log_term,
        index: msg.index,
        entries,
        commit: msg.commit,
        reject: msg.reject,
        reject_hint: msg.reject_hint,
        snapshot: None,
        transfer: msg.transfer,
        rejoined: msg.rejoined,
    })
}

// Message type numbers on the wire. They are part of the protocol: a number
// is never reused or reassigned, and a retired type keeps its number here as
// a comment. 0 is invalid, so that a missing field (proto3 default) is caught.
const WIRE_VOTE: u32 = 1;
const WIRE_VOTE_RESPONSE: u32 = 2;
const WIRE_PRE_VOTE: u32 = 3;
const WIRE_PRE_VOTE_RESPONSE: u32 = 4;
const WIRE_APPEND: u32 = 5;
const WIRE_APPEND_RESPONSE: u32 = 6;
const WIRE_HEARTBEAT: u32 = 7;
const WIRE_HEARTBEAT_RESPONSE: u32 = 8;
/// Reserved: a snapshot never travels as a group message (its chunks do, as
/// bodies of their own), so decoding refuses it.
const WIRE_SNAPSHOT_RESERVED: u32 = 9;
const WIRE_TIMEOUT_NOW: u32 = 10;

/// Entries of at least this many bytes stay slices of the frame they came
/// in; smaller ones are copied (see [`own_unless_large`]).
pub const SHARE_ENTRIES_FROM: usize = 64 << 10;

/// An entry's data decoded from a frame is a slice of the frame's buffer
/// (and of the connection's read buffer the frame was split from), and
/// entries live in their group's log until its next snapshot: a 16-byte
/// entry would keep a whole buffer of other groups' entries and heartbeats
/// alive for minutes. Small entries are copied into their own allocation
/// (a copy of a few bytes per entry, against memory that grows with the
/// snapshot interval); large ones are most of their buffer anyway.
fn own_unless_large(data: Bytes) -> Bytes {
    if data.len() < SHARE_ENTRIES_FROM {
        Bytes::copy_from_slice(&data)
    } else {
        data
    }
}

pub(super) fn msg_type_to_wire(t: MessageType) -> u32 {
    match t {
        MessageType::Vote => WIRE_VOTE,
        MessageType::VoteResponse => WIRE_VOTE_RESPONSE,
        MessageType::PreVote => WIRE_PRE_VOTE,
        MessageType::PreVoteResponse => WIRE_PRE_VOTE_RESPONSE,
        MessageType::Append => WIRE_APPEND,
        MessageType::AppendResponse => WIRE_APPEND_RESPONSE,
        MessageType::Heartbeat => WIRE_HEARTBEAT,
        MessageType::HeartbeatResponse => WIRE_HEARTBEAT_RESPONSE,
        MessageType::Snapshot => WIRE_SNAPSHOT_RESERVED,
        MessageType::TimeoutNow => WIRE_TIMEOUT_NOW,
    }
}

pub(super) fn msg_type_from_wire(n: u32) -> Result<MessageType, WireError> {
    Ok(match n {
        WIRE_VOTE => MessageType::Vote,
        WIRE_VOTE_RESPONSE => MessageType::VoteResponse,
        WIRE_PRE_VOTE => MessageType::PreVote,
        WIRE_PRE_VOTE_RESPONSE => MessageType::PreVoteResponse,
        WIRE_APPEND => MessageType::Append,
        WIRE_APPEND_RESPONSE => MessageType::AppendResponse,
        WIRE_HEARTBEAT => MessageType::Heartbeat,
        WIRE_HEARTBEAT_RESPONSE => MessageType::HeartbeatResponse,
        WIRE_TIMEOUT_NOW => MessageType::TimeoutNow,
        WIRE_SNAPSHOT_RESERVED => {
            return Err(WireError::Malformed(
                "a snapshot travels as chunks, not as a group message".into(),
            ))
        }
        _ => return Err(WireError::Malformed(format!("unknown message type {n}"))),
    })
}

// Entry kind numbers on the wire; same rule: never reused. Normal is 0 so
// that the common kind costs no bytes (proto3 omits default values).
const WIRE_ENTRY_NORMAL: u32 = 0;
const WIRE_ENTRY_NOOP: u32 = 1;
const WIRE_ENTRY_CONFIG: u32 = 2;

pub(super) fn entry_kind_to_wire(kind: EntryKind) -> u32 {
    match kind {
        EntryKind::Normal => WIRE_ENTRY_NORMAL,
        EntryKind::Noop => WIRE_ENTRY_NOOP,
        EntryKind::Config => WIRE_ENTRY_CONFIG,
    }
}

pub(super) fn entry_kind_from_wire(n: u32) -> Result<EntryKind, WireError> {
    match n {
        WIRE_ENTRY_NORMAL => Ok(EntryKind::Normal),
        WIRE_ENTRY_NOOP => Ok(EntryKind::Noop),
        WIRE_ENTRY_CONFIG => Ok(EntryKind::Config),
        _ => Err(WireError::Malformed(format!("unknown entry kind {n}"))),
    }
}

/// Every message type a group message may carry (tests).
#[cfg(test)]
pub(super) const ALL_MESSAGE_TYPES: [MessageType; 9] = [
    MessageType::Vote,
    MessageType::VoteResponse,
    MessageType::PreVote,
    MessageType::PreVoteResponse,
    MessageType::Append,
    MessageType::AppendResponse,
    MessageType::Heartbeat,
    MessageType::HeartbeatResponse,
    MessageType::TimeoutNow,
];

#[cfg(test)]
mod tests {
    use super::super::DEFAULT_MAX_FRAME_BYTES;
    use super::*;
    use crate::multi::{
        GroupHeartbeat, GroupHeartbeatResponse, HeartbeatBatch, HeartbeatBatchResponse,
        Incarnations,
    };

    /// A frame as the tests build them: envelope fields inline.
    fn framed(cluster_id: u64, from: u64, to: u64, body: Body) -> Frame {
        Frame {
            cluster_id,
            envelope: Envelope { from, to, body },
        }
    }

    fn enc(f: &Frame) -> Bytes {
        encode_frame(f.cluster_id, &f.envelope)
    }

    const MAX: usize = DEFAULT_MAX_FRAME_BYTES;

    fn full_message(msg_type: MessageType) -> Message {
        Message {
            msg_type,
            from: 3,
            to: 7,
            term: 12,
            log_term: 11,
            index: 100,
            entries: vec![
                Entry {
                    term: 11,
                    index: 101,
                    kind: EntryKind::Noop,
                    data: Bytes::new(),
                },
                Entry {
                    term: 12,
                    index: 102,
                    kind: EntryKind::Normal,
                    data: Bytes::from_static(b"enqueue hello"),
                },
                Entry {
                    term: u64::MAX,
                    index: u64::MAX,
                    kind: EntryKind::Normal,
                    data: Bytes::from(vec![0xAB; 300]),
                },
            ],
            commit: 99,
            reject: true,
            reject_hint: 42,
            snapshot: None,
            transfer: true,
            rejoined: false,
        }
    }

    fn group_frame(msg: Message) -> Frame {
        framed(
            0xC1,
            msg.from,
            msg.to,
            Body::Group {
                group_id: 77,
                incarnation: 0xABCD_EF01_2345,
                msg,
            },
        )
    }

    fn batch_frame() -> Frame {
        framed(
            0xC1,
            1,
            2,
            Body::HeartbeatBatch(HeartbeatBatch {
                rows: vec![
                    GroupHeartbeat {
                        group_id: 10,
                        term: 1,
                        commit: 5,
                    },
                    GroupHeartbeat {
                        group_id: 12,
                        term: 2,
                        commit: 6,
                    },
                ],
                incarnations: Incarnations::Digest(0x1234_5678_9ABC_DEF0),
                ..Default::default()
            }),
        )
    }

    /// Frames a hand-built envelope, for inputs the encoder refuses to make.
    fn frame_envelope(envelope: &proto::Envelope) -> Vec<u8> {
        let payload = envelope.encode_to_vec();
        let mut buf = (payload.len() as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(&payload);
        buf
    }

    fn valid_envelope() -> proto::Envelope {
        {
            let f = group_frame(full_message(MessageType::Append));
            to_envelope(f.cluster_id, &f.envelope)
        }
    }

    fn assert_malformed<T: std::fmt::Debug>(result: Result<T, WireError>, needle: &str) {
        match result {
            Err(WireError::Malformed(msg)) => {
                assert!(msg.contains(needle), "{msg:?} should mention {needle:?}")
            }
            other => panic!("expected Malformed({needle:?}), got {other:?}"),
        }
    }

    #[test]
    fn group_messages_of_many_groups_round_trip_in_one_frame() {
        let envs: Vec<Envelope> = (1..=3)
            .map(|g| {
                let mut msg = full_message(if g == 2 {
                    MessageType::AppendResponse
                } else {
                    MessageType::Append
                });
                msg.term += g;
                Envelope {
                    from: msg.from,
                    to: msg.to,
                    body: Body::Group {
                        group_id: g * 10,
                        incarnation: g,
                        msg,
                    },
                }
            })
            .collect();
        let refs: Vec<&Envelope> = envs.iter().collect();
        let bytes = encode_groups_frame(0xC1, 3, 7, &refs);
        let expected = framed(
            0xC1,
            3,
            7,
            Body::Groups(
                envs.iter()
                    .map(|e| match &e.body {
                        Body::Group {
                            group_id,
                            incarnation,
                            msg,
                        } => GroupMessage {
                            group_id: *group_id,
                            incarnation: *incarnation,
                            msg: msg.clone(),
                        },
                        _ => unreachable!(),
                    })
                    .collect(),
            ),
        );
        assert_eq!(decode_frame(&bytes, MAX), Ok(expected.clone()));
        // The same bytes as encoding the body itself.
        assert_eq!(enc(&expected), bytes);
        assert_eq!(decode_frame_bytes(bytes, MAX), Ok(expected));
    }

    #[test]
    fn a_frame_of_group_messages_must_hold_one_and_each_must_be_whole() {
        let mut env = valid_envelope();
        env.body = Some(proto::EnvelopeBody::Groups(proto::GroupMessages {
            messages: Vec::new(),
        }));
        assert_malformed(decode_frame(&frame_envelope(&env), MAX), "empty");
        let Some(proto::EnvelopeBody::Group(good)) = valid_envelope().body else {
            unreachable!()
        };
        let mut bad = good.clone();
        bad.msg = None;
        env.body = Some(proto::EnvelopeBody::Groups(proto::GroupMessages {
            messages: vec![good.clone(), bad],
        }));
        assert_malformed(decode_frame(&frame_envelope(&env), MAX), "no Raft message");
        let mut bad = good.clone();
        if let Some(m) = bad.msg.as_mut() {
            m.msg_type = 0;
        }
        env.body = Some(proto::EnvelopeBody::Groups(proto::GroupMessages {
            messages: vec![good, bad],
        }));
        assert!(decode_frame(&frame_envelope(&env), MAX).is_err());
    }

    #[test]
    fn every_message_type_round_trips_with_entries() {
        for msg_type in ALL_MESSAGE_TYPES {
            let frame = group_frame(full_message(msg_type));
            let bytes = enc(&frame);
            assert_eq!(decode_frame(&bytes, MAX), Ok(frame.clone()), "{msg_type:?}");
            assert_eq!(decode_frame_bytes(bytes, MAX), Ok(frame), "{msg_type:?}");
        }
    }

    /// A message of a rejoined replica, by the hand-written writer and
    /// reader and by prost: the same bytes, the same message, mark
    /// included (a lost mark would let its leader count it in quorums).
    // Mutation: the mark dropped by `raft_message_to_wire` or
    // `raft_message_from_wire`: prost's bytes or message differ.
    #[test]
    fn a_rejoined_replicas_message_round_trips_by_hand_and_by_prost() {
        for msg_type in ALL_MESSAGE_TYPES {
            let mut msg = full_message(msg_type);
            msg.rejoined = true;
            let frame = group_frame(msg);
            let bytes = enc(&frame);
            let prost = frame_envelope(&to_envelope(frame.cluster_id, &frame.envelope));
            assert_eq!(&bytes[..], &prost[..], "{msg_type:?}");
            let payload = &bytes[FRAME_HEADER_LEN..];
            assert_eq!(decode_envelope_with_prost(payload), Ok(frame.clone()));
            assert_eq!(decode_frame(&bytes, MAX), Ok(frame.clone()));
            assert_eq!(decode_frame_bytes(bytes, MAX), Ok(frame), "{msg_type:?}");
        }
    }

    /// The rejoined column of an answer, rows in group order (written
    /// from the rows) or not (written from the columns `batch.rs` builds):
    /// the bytes prost writes, decoded ascending by both readers.
    // Mutation: the column left out of `encode_responses`,
    // `decode_responses`, `write_answers` or `read_response`: the bytes or
    // the decoded answer differ.
    #[test]
    fn a_rejoined_column_round_trips_by_hand_and_by_prost() {
        let answer = |group_id, term| GroupHeartbeatResponse { group_id, term };
        let rows = vec![answer(10, 1), answer(12, 2), answer(u64::MAX, 3)];
        let expected = HeartbeatBatchResponse {
            rows: rows.clone(),
            incarnation_digest: 99,
            quiesced: vec![12],
            rejoined: vec![10, u64::MAX],
            ..Default::default()
        };
        let mut reversed = expected.clone();
        reversed.rows.reverse();
        reversed.rejoined = vec![u64::MAX, 10, 10];
        for sent in [expected.clone(), reversed] {
            let frame = framed(0xC1, 2, 1, Body::HeartbeatBatchResponse(sent));
            let bytes = enc(&frame);
            let prost = frame_envelope(&to_envelope(frame.cluster_id, &frame.envelope));
            assert_eq!(&bytes[..], &prost[..]);
            let decoded = framed(0xC1, 2, 1, Body::HeartbeatBatchResponse(expected.clone()));
            let payload = &bytes[FRAME_HEADER_LEN..];
            assert!(columns::decode_batch_envelope(payload).is_some());
            assert_eq!(decode_envelope_with_prost(payload), Ok(decoded.clone()));
            assert_eq!(decode_frame(&bytes, MAX), Ok(decoded));
        }
        // No rejoined replica: no column, not even its key.
        let none = HeartbeatBatchResponse {
            rejoined: Vec::new(),
            ..expected.clone()
        };
        let with = enc(&framed(1, 2, 1, Body::HeartbeatBatchResponse(expected)));
        let without = enc(&framed(1, 2, 1, Body::HeartbeatBatchResponse(none)));
        // Key, length, and the deltas 10 and `u64::MAX - 10` (10 bytes).
        assert_eq!(with.len(), without.len() + 13);
    }

    /// A rejoined mark for a group without a row cannot come from a
    /// correct peer: the answer is refused whole, by the prost path (the
    /// hand-written reader leaves it to prost).
    #[test]
    fn decode_rejects_a_rejoined_group_without_a_row() {
        let envelope = proto::Envelope {
            body: Some(proto::EnvelopeBody::BatchResponse(
                proto::HeartbeatBatchResponse {
                    group_deltas: vec![10, 2],
                    terms: vec![1, 1],
                    rejoined_deltas: vec![11],
                    ..Default::default()
                },
            )),
            ..valid_envelope()
        };
        let bytes = frame_envelope(&envelope);
        assert!(columns::decode_batch_envelope(&bytes[FRAME_HEADER_LEN..]).is_none());
        assert_malformed(decode_frame(&bytes, MAX), "rejoined: group 11 has no row");
    }

    // Memory: entries stay in a group's log until its next snapshot, often
    // minutes. An entry that is a slice of the frame (or of the connection's
    // read buffer the frame was split from) keeps the whole buffer alive —
    // every other group's entries and the heartbeats in it — which made a
    // node hold ~150 bytes per 16-byte entry and its memory grow with the
    // snapshot interval (soak). Small entries get their own allocation.
    #[test]
    fn a_small_entry_decoded_from_a_shared_buffer_does_not_keep_the_buffer_alive() {
        let bytes = enc(&group_frame(full_message(MessageType::Append)));
        let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
        let frame = decode_frame_bytes(bytes.clone(), MAX).unwrap();
        let Body::Group { msg, .. } = frame.envelope.body else {
            panic!("a group message");
        };
        let small = &msg.entries[1].data;
        assert_eq!(&small[..], b"enqueue hello");
        assert!(
            !range.contains(&(small.as_ptr() as usize)),
            "a 13-byte entry is a slice of the {}-byte frame",
            bytes.len()
        );
        // A large entry is most of its frame anyway: not copied.
        let big = vec![0x5A; SHARE_ENTRIES_FROM];
        let mut m = full_message(MessageType::Append);
        m.entries[2].data = Bytes::from(big);
        let bytes = enc(&group_frame(m));
        let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
        let Body::Group { msg, .. } = decode_frame_bytes(bytes.clone(), MAX)
            .unwrap()
            .envelope
            .body
        else {
            panic!("a group message");
        };
        assert!(range.contains(&(msg.entries[2].data.as_ptr() as usize)));
    }

    #[test]
    fn message_with_all_default_fields_round_trips() {
        let frame = group_frame(Message::new(MessageType::Heartbeat, 1, 2, 0));
        assert_eq!(decode_frame(&enc(&frame), MAX), Ok(frame));
    }

    #[test]
    fn decoded_group_message_takes_from_and_to_from_the_envelope() {
        let frame = group_frame(full_message(MessageType::Vote));
        let Ok(Frame {
            envelope:
                Envelope {
                    body: Body::Group { msg, .. },
                    ..
                },
            ..
        }) = decode_frame(&enc(&frame), MAX)
        else {
            panic!("expected a group frame");
        };
        assert_eq!((msg.from, msg.to), (3, 7));
    }

    #[test]
    fn heartbeat_batch_and_response_round_trip() {
        let frame = batch_frame();
        assert_eq!(decode_frame(&enc(&frame), MAX), Ok(frame));

        let response = framed(
            0xC1,
            2,
            1,
            Body::HeartbeatBatchResponse(HeartbeatBatchResponse {
                rows: vec![
                    GroupHeartbeatResponse {
                        group_id: 10,
                        term: 1,
                    },
                    GroupHeartbeatResponse {
                        group_id: u64::MAX,
                        term: 3,
                    },
                ],
                incarnation_digest: 99,
                incarnation_mismatch: true,
                ..Default::default()
            }),
        );
        assert_eq!(decode_frame(&enc(&response), MAX), Ok(response));
    }

    /// An empty batch is the node-level liveness signal, so it must survive
    /// the trip even though its body encodes to zero bytes.
    #[test]
    fn empty_batches_round_trip_as_liveness_signals() {
        for body in [
            Body::HeartbeatBatch(HeartbeatBatch::default()),
            Body::HeartbeatBatchResponse(HeartbeatBatchResponse::default()),
        ] {
            let frame = framed(0, 1, 2, body);
            assert_eq!(decode_frame(&enc(&frame), MAX), Ok(frame));
        }
    }

    #[test]
    fn unsorted_batch_frame_decodes_sorted() {
        let mut frame = batch_frame();
        let Body::HeartbeatBatch(beats) = &mut frame.envelope.body else {
            unreachable!()
        };
        beats.rows.reverse();
        let decoded = decode_frame(&enc(&frame), MAX);
        assert_eq!(decoded, Ok(batch_frame()));
    }

    #[test]
    fn frame_starts_with_big_endian_envelope_length() {
        let bytes = enc(&batch_frame());
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        assert_eq!(len, bytes.len() - FRAME_HEADER_LEN);
    }

    #[test]
    fn message_type_numbers_are_stable() {
        let expected = [1, 2, 3, 4, 5, 6, 7, 8];
        for (msg_type, number) in ALL_MESSAGE_TYPES.into_iter().zip(expected) {
            assert_eq!(msg_type_to_wire(msg_type), number, "{msg_type:?}");
            assert_eq!(msg_type_from_wire(number), Ok(msg_type));
        }
    }

    #[test]
    fn entry_kind_numbers_are_stable() {
        assert_eq!(entry_kind_to_wire(EntryKind::Normal), 0);
        assert_eq!(entry_kind_to_wire(EntryKind::Noop), 1);
        assert_eq!(entry_kind_from_wire(0), Ok(EntryKind::Normal));
        assert_eq!(entry_kind_from_wire(1), Ok(EntryKind::Noop));
    }

    #[test]
    fn decode_rejects_wrong_version() {
        for version in [0, 1, PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1, u32::MAX] {
            let mut envelope = valid_envelope();
            envelope.version = version;
            let result = decode_frame(&frame_envelope(&envelope), MAX);
            assert_eq!(result, Err(WireError::Version(version)));
        }
    }

    /// Version 2 peers would skip the rejoined marks (field 10 of a Raft
    /// message, column 13 of an answer) and count a rejoined replica in
    /// their quorums: their frames are refused even where every field would
    /// parse, by the hand-written readers as by prost.
    // Mutation: `from_decoded` without its version check: the readers by
    // hand accept a version 2 frame.
    #[test]
    fn a_version_2_frame_is_refused_though_it_would_parse() {
        assert_eq!(PROTOCOL_VERSION, 3);
        let mut msg = full_message(MessageType::AppendResponse);
        msg.rejoined = true;
        let answer = HeartbeatBatchResponse {
            rows: vec![GroupHeartbeatResponse {
                group_id: 4,
                term: 2,
            }],
            rejoined: vec![4],
            ..Default::default()
        };
        for frame in [
            group_frame(msg),
            framed(0xC1, 2, 1, Body::HeartbeatBatchResponse(answer)),
        ] {
            let mut bytes = enc(&frame).to_vec();
            // The envelope starts with its version: key 0x08, then 3.
            assert_eq!(bytes[FRAME_HEADER_LEN..FRAME_HEADER_LEN + 2], [0x08, 3]);
            bytes[FRAME_HEADER_LEN + 1] = 2;
            assert_eq!(decode_frame(&bytes, MAX), Err(WireError::Version(2)));
            let payload = &bytes[FRAME_HEADER_LEN..];
            assert_eq!(
                decode_envelope_with_prost(payload),
                Err(WireError::Version(2))
            );
        }
    }

    /// A future version may change what a body means; the peer must hear
    /// "wrong version", not "malformed", even if the body is gibberish to us.
    #[test]
    fn version_is_reported_even_when_the_body_does_not_parse() {
        let header = proto::EnvelopeHeader {
            version: PROTOCOL_VERSION + 1,
            cluster_id: 1,
            from: 1,
            to: 2,
        };
        let mut payload = header.encode_to_vec();
        // Field 5 (our group message), length 3, bytes that are not a valid
        // GroupMessage (a varint that never ends).
        payload.extend_from_slice(&[0x2a, 3, 0xff, 0xff, 0xff]);
        let mut buf = (payload.len() as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(&payload);
        assert_eq!(
            decode_frame(&buf, MAX),
            Err(WireError::Version(PROTOCOL_VERSION + 1))
        );
    }

    #[test]
    fn decode_rejects_zero_from_and_zero_to() {
        let mut envelope = valid_envelope();
        envelope.from = 0;
        assert_malformed(decode_frame(&frame_envelope(&envelope), MAX), "sender");
        let mut envelope = valid_envelope();
        envelope.to = 0;
        assert_malformed(decode_frame(&frame_envelope(&envelope), MAX), "receiver");
    }

    #[test]
    fn decode_rejects_unknown_message_type() {
        for msg_type in [0, 11, u32::MAX] {
            let mut envelope = valid_envelope();
            if let Some(proto::EnvelopeBody::Group(group)) = &mut envelope.body {
                if let Some(msg) = &mut group.msg {
                    msg.msg_type = msg_type;
                }
            }
            assert_malformed(
                decode_frame(&frame_envelope(&envelope), MAX),
                &format!("unknown message type {msg_type}"),
            );
        }
    }

    /// A stray or forged snapshot message must never reach a group: only a
    /// whole, verified transfer installs a snapshot.
    #[test]
    fn decode_refuses_a_snapshot_as_a_group_message() {
        let mut envelope = valid_envelope();
        if let Some(proto::EnvelopeBody::Group(group)) = &mut envelope.body {
            if let Some(msg) = &mut group.msg {
                msg.msg_type = WIRE_SNAPSHOT_RESERVED;
            }
        }
        assert_malformed(
            decode_frame(&frame_envelope(&envelope), MAX),
            "travels as chunks",
        );
    }

    #[test]
    fn decode_rejects_unknown_entry_kind() {
        let mut envelope = valid_envelope();
        if let Some(proto::EnvelopeBody::Group(group)) = &mut envelope.body {
            if let Some(msg) = &mut group.msg {
                msg.entries[1].kind = 7;
            }
        }
        assert_malformed(
            decode_frame(&frame_envelope(&envelope), MAX),
            "unknown entry kind 7",
        );
    }

    #[test]
    fn decode_rejects_envelope_without_body() {
        let mut envelope = valid_envelope();
        envelope.body = None;
        assert_malformed(decode_frame(&frame_envelope(&envelope), MAX), "no body");
    }

    #[test]
    fn decode_rejects_group_message_without_raft_message() {
        let mut envelope = valid_envelope();
        envelope.body = Some(proto::EnvelopeBody::Group(proto::GroupMessage {
            group_id: 1,
            incarnation: 0,
            msg: None,
        }));
        assert_malformed(
            decode_frame(&frame_envelope(&envelope), MAX),
            "no Raft message",
        );
    }

    #[test]
    fn decode_rejects_truncated_frame() {
        let bytes = enc(&batch_frame());
        assert_eq!(
            decode_frame(&bytes[..3], MAX),
            Err(WireError::Truncated { need: 4, have: 3 })
        );
        let cut = bytes.len() - 1;
        assert_eq!(
            decode_frame(&bytes[..cut], MAX),
            Err(WireError::Truncated {
                need: bytes.len(),
                have: cut
            })
        );
    }

    #[test]
    fn decode_rejects_bytes_after_the_announced_length() {
        let mut bytes = enc(&batch_frame()).to_vec();
        bytes.push(0);
        assert_malformed(decode_frame(&bytes, MAX), "length prefix says");
    }

    #[test]
    fn decode_rejects_zero_length_prefix() {
        assert_malformed(decode_frame(&[0, 0, 0, 0], MAX), "zero-length");
    }

    #[test]
    fn decode_rejects_frame_over_max() {
        let bytes = enc(&group_frame(full_message(MessageType::Append)));
        let len = bytes.len() - FRAME_HEADER_LEN;
        assert!(decode_frame(&bytes, len).is_ok());
        assert_eq!(
            decode_frame(&bytes, len - 1),
            Err(WireError::TooLarge { len, max: len - 1 })
        );
        assert_eq!(
            decode_frame_bytes(bytes, len - 1),
            Err(WireError::TooLarge { len, max: len - 1 })
        );
    }

    #[test]
    fn decode_rejects_non_increasing_group_ids() {
        let envelope = proto::Envelope {
            body: Some(proto::EnvelopeBody::BatchResponse(
                proto::HeartbeatBatchResponse {
                    group_deltas: vec![5, 1, 0],
                    terms: vec![1, 1, 1],
                    ..Default::default()
                },
            )),
            ..valid_envelope()
        };
        assert_malformed(
            decode_frame(&frame_envelope(&envelope), MAX),
            "not strictly increasing",
        );
    }

    #[test]
    fn decode_rejects_mismatched_batch_columns() {
        let envelope = proto::Envelope {
            body: Some(proto::EnvelopeBody::Batch(proto::HeartbeatBatch {
                group_deltas: vec![5, 1],
                terms: vec![1, 1],
                commits: vec![1, 1, 1],
                ..Default::default()
            })),
            ..valid_envelope()
        };
        assert_malformed(decode_frame(&frame_envelope(&envelope), MAX), "column");
    }

    #[test]
    fn decode_rejects_batch_delta_overflow() {
        let envelope = proto::Envelope {
            body: Some(proto::EnvelopeBody::Batch(proto::HeartbeatBatch {
                group_deltas: vec![u64::MAX, 1],
                terms: vec![1, 1],
                commits: vec![1, 1],
                ..Default::default()
            })),
            ..valid_envelope()
        };
        assert_malformed(decode_frame(&frame_envelope(&envelope), MAX), "overflows");
    }

    #[test]
    fn frame_length_refuses_length_over_max_and_zero() {
        assert_eq!(frame_length([0, 0, 1, 0], 256), Ok(256));
        assert_eq!(
            frame_length([0, 0, 1, 1], 256),
            Err(WireError::TooLarge { len: 257, max: 256 })
        );
        assert_eq!(
            frame_length([0xff; 4], MAX),
            Err(WireError::TooLarge {
                len: u32::MAX as usize,
                max: MAX
            })
        );
        assert_malformed(frame_length([0; 4], MAX), "zero-length");
    }

    /// A 4-byte prefix announcing 4 GiB must cost nothing: the reader
    /// refuses it with the header alone and does not grow its buffer.
    #[test]
    fn split_frame_refuses_oversized_length_without_allocating() {
        let mut buf = BytesMut::with_capacity(4);
        buf.extend_from_slice(&[0xff; 4]);
        let result = split_frame(&mut buf, MAX);
        assert!(matches!(result, Err(WireError::TooLarge { .. })));
        assert_eq!(buf.capacity(), 4);
        assert_eq!(buf.len(), 4);
    }

    #[test]
    fn split_frame_waits_for_whole_frames_and_splits_back_to_back_frames() {
        let frames = [
            batch_frame(),
            group_frame(full_message(MessageType::Append)),
            batch_frame(),
        ];
        let stream: Vec<u8> = frames.iter().flat_map(|f| enc(f).to_vec()).collect();

        // Byte by byte: a frame appears exactly when its last byte arrives.
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for &byte in &stream {
            buf.put_u8(byte);
            while let Some(frame) = split_frame(&mut buf, MAX).expect("valid stream") {
                decoded.push(decode_frame_bytes(frame, MAX).expect("valid frame"));
            }
        }
        assert_eq!(decoded, frames);
        assert!(buf.is_empty());

        // All at once.
        let mut buf = BytesMut::from(stream.as_slice());
        let mut count = 0;
        while let Some(frame) = split_frame(&mut buf, MAX).expect("valid stream") {
            assert_eq!(decode_frame(&frame, MAX).as_ref(), Ok(&frames[count]));
            count += 1;
        }
        assert_eq!(count, frames.len());
    }

    #[test]
    fn try_encode_frame_refuses_frame_over_max() {
        let frame = group_frame(full_message(MessageType::Append));
        let len = enc(&frame).len() - FRAME_HEADER_LEN;
        assert!(try_encode_frame(frame.cluster_id, &frame.envelope, len).is_ok());
        assert_eq!(
            try_encode_frame(frame.cluster_id, &frame.envelope, len - 1),
            Err(WireError::TooLarge { len, max: len - 1 })
        );
    }

    #[test]
    fn check_cluster_refuses_another_cluster() {
        let frame = batch_frame();
        assert_eq!(frame.check_cluster(0xC1), Ok(()));
        assert_eq!(
            frame.check_cluster(0xC2),
            Err(WireError::ClusterMismatch {
                expected: 0xC2,
                actual: 0xC1
            })
        );
    }

    /// xorshift64*: deterministic, dependency-free pseudo-random numbers.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// Decodes `buf` both ways; whatever decodes must re-encode to a frame
    /// that decodes to the same value.
    fn decode_must_not_panic(buf: &[u8], max: usize) {
        let copied = decode_frame(buf, max);
        let shared = decode_frame_bytes(Bytes::copy_from_slice(buf), max);
        assert_eq!(copied, shared);
        if let Ok(frame) = copied {
            assert_eq!(decode_frame(&enc(&frame), MAX), Ok(frame));
        }
        let mut stream = BytesMut::from(buf);
        while let Ok(Some(frame)) = split_frame(&mut stream, max) {
            let _ = decode_frame_bytes(frame, max);
        }
    }

    fn with_prefix(payload: &[u8]) -> Vec<u8> {
        let mut buf = (payload.len() as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(payload);
        buf
    }

    #[test]
    fn decode_never_panics_on_random_garbage() {
        const SEED: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rng = Rng(SEED);
        for _ in 0..20_000 {
            let len = rng.below(256);
            let garbage = rng.bytes(len);
            // Raw garbage rarely has a matching prefix, so also give it one,
            // and one with a valid version field, to reach the protobuf
            // decoder and the validation behind it.
            decode_must_not_panic(&garbage, MAX);
            decode_must_not_panic(&with_prefix(&garbage), MAX);
            let mut versioned = vec![0x08, PROTOCOL_VERSION as u8];
            versioned.extend_from_slice(&garbage);
            decode_must_not_panic(&with_prefix(&versioned), MAX);
        }
    }

    #[test]
    fn decode_never_panics_on_any_prefix_of_a_valid_frame() {
        for frame in [
            group_frame(full_message(MessageType::Append)),
            batch_frame(),
        ] {
            let bytes = enc(&frame);
            for cut in 0..bytes.len() {
                let prefix = &bytes[..cut];
                assert!(decode_frame(prefix, MAX).is_err(), "cut at {cut}");
                decode_must_not_panic(prefix, MAX);
                // The same cut with a matching length prefix reaches the
                // protobuf decoder with a truncated envelope.
                if cut > FRAME_HEADER_LEN {
                    decode_must_not_panic(&with_prefix(&bytes[FRAME_HEADER_LEN..cut]), MAX);
                }
            }
        }
    }

    #[test]
    fn decode_never_panics_on_byte_flips_of_valid_frames() {
        const SEED: u64 = 0xDEAD_BEEF_CAFE_F00D;
        let mut rng = Rng(SEED);
        let frames: Vec<Vec<u8>> = [
            group_frame(full_message(MessageType::Append)),
            group_frame(full_message(MessageType::AppendResponse)),
            batch_frame(),
            framed(
                9,
                2,
                1,
                Body::HeartbeatBatchResponse(HeartbeatBatchResponse {
                    rows: (1..50)
                        .map(|i| GroupHeartbeatResponse {
                            group_id: i * 3,
                            term: i,
                        })
                        .collect(),
                    incarnation_digest: 5,
                    incarnation_mismatch: false,
                    rejoined: vec![3, 27, 147],
                    ..Default::default()
                }),
            ),
            group_frame(Message {
                rejoined: true,
                ..full_message(MessageType::HeartbeatResponse)
            }),
        ]
        .iter()
        .map(|f| enc(f).to_vec())
        .collect();
        for round in 0..20_000 {
            let mut buf = frames[round % frames.len()].clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(buf.len());
                buf[at] ^= 1 << rng.below(8);
            }
            decode_must_not_panic(&buf, MAX);
            // Flips of the envelope with the prefix kept consistent.
            decode_must_not_panic(&with_prefix(&buf[FRAME_HEADER_LEN..]), MAX);
        }
    }
}
