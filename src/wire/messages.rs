//! The bytes of group message frames (appends, their answers, votes),
//! written and read by hand: the same bytes prost writes for the schema in
//! `proto.rs`, without building its structs.
//!
//! Under load these frames are most of what a node encodes and decodes:
//! every proposal crosses the wire as an entry of an append and comes back
//! as an answer, twice per follower. Through prost each message was first
//! copied into a `proto::RaftMessage` (its entries into a new vector),
//! measured (`encoded_len`, once per nesting level), then written a byte
//! at a time through `BufMut`; on the way in decoded into proto structs
//! grown one push at a time and then converted again. Here a frame is
//! measured once and written into a buffer of exactly its size, and read
//! straight into the messages the node steps.
//!
//! The format is unchanged: [`encode_group_frame`] writes exactly the bytes
//! prost writes (fields in tag order, proto3 defaults left out, a present
//! `msg` always written), and a test checks it against prost on random
//! messages. [`decode_group_envelope`] reads only what it can read exactly
//! as prost and `frame.rs` would (the schema's fields with their wire
//! types, every singular field at most once, known message types and
//! entry kinds, entries small enough to be copied) and answers `None` for
//! anything else, which the caller then decodes with prost: every error,
//! and every frame it leaves alone, are prost's. A test and the
//! `batch_decode` fuzz target check that whatever it accepts, prost
//! decodes to the same frame.

use bytes::Bytes;

use super::columns::{key, push_varint, scalar, varint_len, Decoded, Reader, LEN, VARINT};
use super::frame::SHARE_ENTRIES_FROM;
use super::frame::{
    entry_kind_from_wire, entry_kind_to_wire, msg_type_from_wire, msg_type_to_wire,
};
use super::{FRAME_HEADER_LEN, PROTOCOL_VERSION};
use crate::multi::{Body, GroupMessage};
use crate::raft::{Entry, Message};

/// The envelope's body fields of the two group message kinds.
const ENVELOPE_GROUP: u32 = 5;
const ENVELOPE_GROUPS: u32 = 10;

/// One group message as the encoder takes it: (group id, incarnation, the
/// Raft message), borrowed.
pub(super) type Item<'a> = (u64, u64, &'a Message);

/// Bytes of a proto3 scalar field (below 16): nothing when 0.
fn scalar_len(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        1 + varint_len(v)
    }
}

/// Bytes of a length-delimited field (below 16) of `len` bytes.
fn nested_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn entry_len(e: &Entry) -> usize {
    let data = if e.data.is_empty() {
        0
    } else {
        nested_len(e.data.len())
    };
    scalar_len(e.term)
        + scalar_len(e.index)
        + scalar_len(u64::from(entry_kind_to_wire(e.kind)))
        + data
}

fn raft_len(m: &Message) -> usize {
    scalar_len(u64::from(msg_type_to_wire(m.msg_type)))
        + scalar_len(m.term)
        + scalar_len(m.log_term)
        + scalar_len(m.index)
        + m.entries
            .iter()
            .map(|e| nested_len(entry_len(e)))
            .sum::<usize>()
        + scalar_len(m.commit)
        + 2 * usize::from(m.reject)
        + scalar_len(m.reject_hint)
        + 2 * usize::from(m.transfer)
        + 2 * usize::from(m.rejoined)
}

/// A `GroupMessage`'s bytes, given its Raft message's.
fn group_len(group_id: u64, incarnation: u64, raft: usize) -> usize {
    scalar_len(group_id) + nested_len(raft) + scalar_len(incarnation)
}

fn write_entry(buf: &mut Vec<u8>, e: &Entry) {
    scalar(buf, 1, e.term);
    scalar(buf, 2, e.index);
    scalar(buf, 3, u64::from(entry_kind_to_wire(e.kind)));
    if !e.data.is_empty() {
        buf.push(key(4, LEN));
        push_varint(buf, e.data.len() as u64);
        buf.extend_from_slice(&e.data);
    }
}

fn write_bool(buf: &mut Vec<u8>, field: u32, v: bool) {
    if v {
        buf.push(key(field, VARINT));
        buf.push(1);
    }
}

/// A `GroupMessage` (its key and length included: a repeated or oneof
/// field of `field`).
fn write_group(buf: &mut Vec<u8>, field: u32, (group_id, incarnation, m): Item<'_>, raft: usize) {
    buf.push(key(field, LEN));
    push_varint(buf, group_len(group_id, incarnation, raft) as u64);
    scalar(buf, 1, group_id);
    buf.push(key(2, LEN));
    push_varint(buf, raft as u64);
    scalar(buf, 1, u64::from(msg_type_to_wire(m.msg_type)));
    scalar(buf, 2, m.term);
    scalar(buf, 3, m.log_term);
    scalar(buf, 4, m.index);
    for e in &m.entries {
        buf.push(key(5, LEN));
        push_varint(buf, entry_len(e) as u64);
        write_entry(buf, e);
    }
    scalar(buf, 6, m.commit);
    write_bool(buf, 7, m.reject);
    scalar(buf, 8, m.reject_hint);
    write_bool(buf, 9, m.transfer);
    write_bool(buf, 10, m.rejoined);
    scalar(buf, 3, incarnation);
}

/// The frame (length prefix included) of an envelope carrying `msgs`: as
/// one group message body (`Body::Group`) if `single` (then `msgs` holds
/// exactly one), else as group messages (`Body::Groups`); with the
/// envelope's length (the bytes after the prefix).
pub(super) fn encode_group_frame(
    cluster_id: u64,
    from: u64,
    to: u64,
    msgs: &[Item<'_>],
    single: bool,
) -> (Bytes, usize) {
    debug_assert!(!single || msgs.len() == 1);
    // Each Raft message's length, measured once: it is written in front
    // of the message and counts in every length around it.
    let raft_lens: Vec<usize> = msgs.iter().map(|&(_, _, m)| raft_len(m)).collect();
    // A single message is the body itself; a pack nests them in one more
    // message (`GroupMessages`, whose field 1 repeats).
    let (tag, body_len) = if single {
        let (g, i, _) = msgs[0];
        (ENVELOPE_GROUP, group_len(g, i, raft_lens[0]))
    } else {
        let groups = msgs
            .iter()
            .zip(&raft_lens)
            .map(|(&(g, i, _), &raft)| nested_len(group_len(g, i, raft)))
            .sum();
        (ENVELOPE_GROUPS, groups)
    };
    let envelope_len = scalar_len(u64::from(PROTOCOL_VERSION))
        + scalar_len(cluster_id)
        + scalar_len(from)
        + scalar_len(to)
        + nested_len(body_len);
    let prefix = u32::try_from(envelope_len).expect("a frame of group messages is under 4 GiB");
    let mut buf = Vec::with_capacity(FRAME_HEADER_LEN + envelope_len);
    buf.extend_from_slice(&prefix.to_be_bytes());
    scalar(&mut buf, 1, u64::from(PROTOCOL_VERSION));
    scalar(&mut buf, 2, cluster_id);
    scalar(&mut buf, 3, from);
    scalar(&mut buf, 4, to);
    if single {
        write_group(&mut buf, tag, msgs[0], raft_lens[0]);
    } else {
        buf.push(key(tag, LEN));
        push_varint(&mut buf, body_len as u64);
        for (&item, &raft) in msgs.iter().zip(&raft_lens) {
            write_group(&mut buf, 1, item, raft);
        }
    }
    debug_assert_eq!(buf.len(), FRAME_HEADER_LEN + envelope_len);
    (Bytes::from(buf), envelope_len)
}

/// Could `key` (an envelope's body key, see `columns::body_key`) start a
/// body [`decode_group_envelope`] reads?
pub(super) fn is_group_key(key_byte: u8) -> bool {
    key_byte == key(ENVELOPE_GROUP, LEN) || key_byte == key(ENVELOPE_GROUPS, LEN)
}

/// Reads an envelope (the bytes after the length prefix) carrying one group
/// message or several straight into the messages the node steps, if it is
/// in a form this reader reads exactly as prost and `frame.rs` would and
/// valid; `None` for anything else (another body, an unknown field, a
/// singular field written twice, malformed bytes, an unknown message type
/// or entry kind, no Raft message, no messages, an entry of
/// [`SHARE_ENTRIES_FROM`] bytes or more, which prost's path shares with
/// the frame instead of copying), which the caller decodes with prost.
/// Ends (`from`, `to`) and the version are the caller's to check, as for
/// prost's envelopes.
pub(super) fn decode_group_envelope(buf: &[u8]) -> Option<Decoded> {
    let mut r = Reader::new(buf);
    let (mut version, mut cluster_id, mut from, mut to) = (0, 0, 0, 0);
    let mut seen = 0u32;
    let mut body: Option<(u32, &[u8])> = None;
    while !r.done() {
        let (field, wire_type) = r.key()?;
        first_time::<32>(&mut seen, field)?;
        match (field, wire_type) {
            // prost reads a uint32 as a varint cut to 32 bits.
            (1, VARINT) => version = r.varint()? as u32,
            (2, VARINT) => cluster_id = r.varint()?,
            (3, VARINT) => from = r.varint()?,
            (4, VARINT) => to = r.varint()?,
            (ENVELOPE_GROUP | ENVELOPE_GROUPS, LEN) if body.is_none() => {
                body = Some((field, r.bytes()?))
            }
            _ => return None,
        }
    }
    let body = match body? {
        (ENVELOPE_GROUP, bytes) => {
            let mut m = blank(from, to);
            read_group(bytes, &mut m)?;
            Body::Group {
                group_id: m.group_id,
                incarnation: m.incarnation,
                msg: m.msg,
            }
        }
        (_, bytes) => {
            // Counted first (each message is skipped by its length), so
            // that the vector is allocated once; each message is read in
            // its place there (a message is over a hundred bytes: moving
            // each one into place costs more than reading it).
            let mut msgs = Vec::with_capacity(count_messages(bytes)?);
            let mut r = Reader::new(bytes);
            while !r.done() {
                match r.key()? {
                    (1, LEN) => {
                        let bytes = r.bytes()?;
                        msgs.push(blank(from, to));
                        read_group(bytes, msgs.last_mut()?)?;
                    }
                    _ => return None,
                }
            }
            if msgs.is_empty() {
                return None;
            }
            Body::Groups(msgs)
        }
    };
    Some(Decoded {
        version,
        cluster_id,
        from,
        to,
        body,
    })
}

/// How many messages a `GroupMessages` body holds (its only field, 1,
/// repeated); `None` if it holds anything else, is malformed, or holds a
/// message too short to carry a Raft message of a known type (its key, its
/// length, a type's key and value: [`MIN_GROUP_MESSAGE`] bytes), which the
/// reader would decline anyway. So the list allocated for them is at most
/// a sixth of the body's length in messages: junk of two-byte empty
/// messages does not make a node allocate fifty times a frame's size
/// before declining it.
fn count_messages(buf: &[u8]) -> Option<usize> {
    let mut r = Reader::new(buf);
    let mut n = 0;
    while !r.done() {
        match r.key()? {
            (1, LEN) if r.bytes()?.len() >= MIN_GROUP_MESSAGE => {}
            _ => return None,
        };
        n += 1;
    }
    Some(n)
}

/// The fewest bytes a group message the reader accepts takes: field 2
/// (key and a one-byte length) holding a message type (key and value).
const MIN_GROUP_MESSAGE: usize = 4;

/// Marks `field` as seen in `seen` (a bit per field number below `N`
/// bits); `None` if it was seen before or is out of range: a singular
/// field written twice, which prost would merge or overwrite, is left to
/// prost.
#[inline(always)]
fn first_time<const N: u32>(seen: &mut u32, field: u32) -> Option<()> {
    if field >= N.min(32) {
        return None;
    }
    let bit = 1 << field;
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    Some(())
}

/// A group message to read into: all defaults, `from` and `to` the
/// envelope's.
fn blank(from: u64, to: u64) -> GroupMessage {
    GroupMessage {
        group_id: 0,
        incarnation: 0,
        msg: Message::new(crate::raft::MessageType::Append, from, to, 0),
    }
}

/// A `GroupMessage` into `g` (from [`blank`]): its group, incarnation and
/// Raft message, which must be there.
fn read_group(buf: &[u8], g: &mut GroupMessage) -> Option<()> {
    let mut r = Reader::new(buf);
    let mut seen = 0;
    while !r.done() {
        let (field, wire_type) = r.key()?;
        first_time::<8>(&mut seen, field)?;
        match (field, wire_type) {
            (1, VARINT) => g.group_id = r.varint()?,
            (2, LEN) => read_raft(r.bytes()?, &mut g.msg)?,
            (3, VARINT) => g.incarnation = r.varint()?,
            _ => return None,
        }
    }
    // No Raft message: prost's error.
    (seen & 1 << 2 != 0).then_some(())
}

/// A `RaftMessage` into `m` (all defaults but `from` and `to`).
fn read_raft(buf: &[u8], m: &mut Message) -> Option<()> {
    let mut r = Reader::new(buf);
    let mut msg_type = 0u32;
    let mut seen = 0;
    while !r.done() {
        let (field, wire_type) = r.key()?;
        if (field, wire_type) == (5, LEN) {
            // Repeated: every occurrence is one more entry.
            m.entries.push(read_entry(r.bytes()?)?);
            continue;
        }
        first_time::<16>(&mut seen, field)?;
        if wire_type != VARINT {
            return None;
        }
        let v = r.varint()?;
        match field {
            1 => msg_type = v as u32,
            2 => m.term = v,
            3 => m.log_term = v,
            4 => m.index = v,
            6 => m.commit = v,
            7 => m.reject = v != 0,
            8 => m.reject_hint = v,
            9 => m.transfer = v != 0,
            10 => m.rejoined = v != 0,
            _ => return None,
        }
    }
    m.msg_type = msg_type_from_wire(msg_type).ok()?;
    Some(())
}

fn read_entry(buf: &[u8]) -> Option<Entry> {
    let mut r = Reader::new(buf);
    let mut e = Entry::default();
    let mut seen = 0;
    while !r.done() {
        let (field, wire_type) = r.key()?;
        first_time::<8>(&mut seen, field)?;
        match (field, wire_type) {
            (1, VARINT) => e.term = r.varint()?,
            (2, VARINT) => e.index = r.varint()?,
            (3, VARINT) => e.kind = entry_kind_from_wire(r.varint()? as u32).ok()?,
            (4, LEN) => {
                let data = r.bytes()?;
                if data.len() >= SHARE_ENTRIES_FROM {
                    return None;
                }
                e.data = Bytes::copy_from_slice(data);
            }
            _ => return None,
        }
    }
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::super::frame::{self, decode_envelope_with_prost};
    use super::super::WireError;
    use super::*;
    use crate::multi::Envelope;
    use crate::raft::{EntryKind, MessageType, Rng};
    use prost::Message as _;

    fn maybe(rng: &mut Rng) -> u64 {
        match rng.range(0, 4) {
            0 => 0,
            1 => rng.range(1, 128),
            2 => rng.range(128, 1 << 30),
            _ => rng.next_u64(),
        }
    }

    fn random_message(rng: &mut Rng, from: u64, to: u64) -> Message {
        let types = frame::ALL_MESSAGE_TYPES;
        let t = types[rng.range(0, types.len() as u64) as usize];
        let mut m = Message::new(t, from, to, maybe(rng));
        m.log_term = maybe(rng);
        m.index = maybe(rng);
        m.commit = maybe(rng);
        m.reject = rng.range(0, 3) == 0;
        m.reject_hint = maybe(rng);
        m.transfer = rng.range(0, 5) == 0;
        m.rejoined = rng.range(0, 5) == 0;
        let n = match rng.range(0, 4) {
            0 => 0,
            1 => 1,
            _ => rng.range(0, 20),
        };
        m.entries = (0..n)
            .map(|_| Entry {
                term: maybe(rng),
                index: maybe(rng),
                kind: [EntryKind::Normal, EntryKind::Noop, EntryKind::Config]
                    [rng.range(0, 3) as usize],
                data: {
                    let len = match rng.range(0, 8) {
                        0 => 0,
                        1 => rng.range(128, 20_000),
                        _ => rng.range(1, 64),
                    };
                    (0..len).map(|i| i as u8).collect::<Vec<u8>>().into()
                },
            })
            .collect();
        m
    }

    fn random_envelope(rng: &mut Rng) -> (u64, Envelope) {
        let (from, to) = (maybe(rng).max(1), maybe(rng).max(1));
        let n = rng.range(1, 40);
        let mut msgs: Vec<GroupMessage> = (0..n)
            .map(|_| GroupMessage {
                group_id: maybe(rng),
                incarnation: maybe(rng),
                msg: random_message(rng, from, to),
            })
            .collect();
        let body = if rng.range(0, 3) == 0 {
            let m = msgs.pop().unwrap();
            Body::Group {
                group_id: m.group_id,
                incarnation: m.incarnation,
                msg: m.msg,
            }
        } else {
            Body::Groups(msgs)
        };
        (maybe(rng), Envelope { from, to, body })
    }

    /// What prost writes for `env`, length prefix included (the schema's
    /// structs as `frame.rs` builds them for prost).
    fn prost_frame(cluster_id: u64, env: &Envelope) -> Vec<u8> {
        let bytes = frame::to_envelope(cluster_id, env).encode_to_vec();
        let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&bytes);
        out
    }

    // Mutation: a field out of tag order, a default written, a nested
    // length off by one, an absent `msg` for an empty message: the bytes
    // differ from prost's.
    #[test]
    fn group_frames_are_the_bytes_prost_writes() {
        let mut rng = Rng::new(0x6e5);
        for _ in 0..2_000 {
            let (cluster_id, env) = random_envelope(&mut rng);
            let expected = prost_frame(cluster_id, &env);
            let bytes = crate::wire::encode_frame(cluster_id, &env);
            assert_eq!(&bytes[..], &expected[..], "envelope {env:?}");
            if let Body::Groups(msgs) = &env.body {
                let refs: Vec<Envelope> = msgs
                    .iter()
                    .map(|m| Envelope {
                        from: env.from,
                        to: env.to,
                        body: Body::Group {
                            group_id: m.group_id,
                            incarnation: m.incarnation,
                            msg: m.msg.clone(),
                        },
                    })
                    .collect();
                let refs: Vec<&Envelope> = refs.iter().collect();
                let packed = crate::wire::encode_groups_frame(cluster_id, env.from, env.to, &refs);
                assert_eq!(&packed[..], &expected[..]);
            }
        }
    }

    /// The reader accepts every frame written here (entries under the
    /// sharing size) and reads what prost reads.
    // Mutation: a field read into the wrong place, a bool read as `== 1`,
    // entries of one message lost: prost reads otherwise.
    #[test]
    fn the_reader_reads_what_prost_reads() {
        let mut rng = Rng::new(0x7ead);
        let (mut read, mut declined) = (0, 0);
        for _ in 0..2_000 {
            let (cluster_id, env) = random_envelope(&mut rng);
            let bytes = crate::wire::encode_frame(cluster_id, &env);
            let payload = &bytes[FRAME_HEADER_LEN..];
            let theirs = decode_envelope_with_prost(payload);
            assert!(theirs.is_ok(), "{theirs:?}");
            match decode_group_envelope(payload) {
                Some(d) => {
                    read += 1;
                    assert_eq!(frame::from_decoded(d), theirs);
                }
                None => declined += 1,
            }
            assert_eq!(frame::decode_envelope(payload), theirs);
        }
        // Every frame with no entry of the sharing size is read by hand.
        assert!(read > 1_500, "read {read}, declined {declined}");
    }

    fn decode_both(payload: &[u8]) -> (Option<Decoded>, Result<crate::wire::Frame, WireError>) {
        (
            decode_group_envelope(payload),
            decode_envelope_with_prost(payload),
        )
    }

    /// An append of group 3 from node 1 to node 2 with one entry, as
    /// prost writes it, to mutate.
    fn one_append() -> Vec<u8> {
        let mut m = Message::new(MessageType::Append, 1, 2, 4);
        m.index = 9;
        m.log_term = 4;
        m.commit = 8;
        m.entries.push(Entry {
            term: 4,
            index: 10,
            kind: EntryKind::Normal,
            data: Bytes::from_static(b"hello"),
        });
        let env = Envelope {
            from: 1,
            to: 2,
            body: Body::Groups(vec![GroupMessage {
                group_id: 3,
                incarnation: 1,
                msg: m,
            }]),
        };
        crate::wire::encode_frame(7, &env)[FRAME_HEADER_LEN..].to_vec()
    }

    // Mutation: drop any of the reader's checks (duplicates, wire types,
    // unknown fields, missing msg, unknown type or kind, empty pack, large
    // entries): it accepts a frame prost refuses or reads otherwise.
    #[test]
    fn what_the_reader_cannot_read_exactly_is_left_to_prost() {
        let base = one_append();
        let (ours, theirs) = decode_both(&base);
        assert!(ours.is_some() && theirs.is_ok());
        // Envelope: the version, cluster 7, from 1, to 2, then the body.
        let version = PROTOCOL_VERSION as u8;
        assert_eq!(&base[..8], &[0x08, version, 0x10, 7, 0x18, 1, 0x20, 2]);
        let with = |extra: &[u8]| [base.clone(), extra.to_vec()].concat();
        // A second body, an unknown envelope field, `to` written twice.
        for extra in [&base[8..], &[0x98, 0x06, 1][..], &[0x20, 3][..]] {
            let (ours, _) = decode_both(&with(extra));
            assert!(ours.is_none(), "{extra:?}");
        }
        // An empty pack: prost refuses it as empty.
        let empty = [&base[..8], &[0x52, 0][..]].concat();
        let (ours, theirs) = decode_both(&empty);
        assert!(ours.is_none());
        assert!(matches!(theirs, Err(WireError::Malformed(_))));
        // A group message without its Raft message.
        let bare = [&base[..8], &[0x52, 4, 0x0a, 2, 0x08, 3][..]].concat();
        let (ours, theirs) = decode_both(&bare);
        assert!(ours.is_none());
        assert!(matches!(theirs, Err(WireError::Malformed(_))));
        // An unknown message type (11) and the reserved snapshot type (9).
        for t in [11u8, 9] {
            let odd = [&base[..8], &[0x52, 6, 0x0a, 4, 0x12, 2, 0x08, t][..]].concat();
            let (ours, theirs) = decode_both(&odd);
            assert!(ours.is_none());
            assert!(matches!(theirs, Err(WireError::Malformed(_))), "{theirs:?}");
        }
        // An entry kind of 3.
        let kind = [
            &base[..8],
            &[0x52, 10, 0x0a, 8, 0x12, 6, 0x08, 5, 0x2a, 2, 0x18, 3][..],
        ]
        .concat();
        let (ours, theirs) = decode_both(&kind);
        assert!(ours.is_none());
        assert!(matches!(theirs, Err(WireError::Malformed(_))));
        // The same without the kind is read, with the entry.
        let plain = [
            &base[..8],
            &[0x52, 10, 0x0a, 8, 0x12, 6, 0x08, 5, 0x2a, 2, 0x08, 3][..],
        ]
        .concat();
        let (ours, theirs) = decode_both(&plain);
        let ours = frame::from_decoded(ours.unwrap());
        assert_eq!(ours, theirs);
        // A scalar of the Raft message as a length-delimited field, and
        // the term written twice (prost keeps the last).
        for raft in [&[0x08, 5, 0x12, 1, 0][..], &[0x08, 5, 0x10, 1, 0x10, 2][..]] {
            let len = raft.len() as u8;
            let odd = [
                &base[..8],
                &[0x52, len + 4, 0x0a, len + 2, 0x12, len][..],
                raft,
            ]
            .concat();
            let (ours, _) = decode_both(&odd);
            assert!(ours.is_none(), "{raft:?}");
        }
        // A truncated frame: prost's error.
        let (ours, theirs) = decode_both(&base[..base.len() - 1]);
        assert!(ours.is_none() && theirs.is_err());
    }

    // Mutation: no minimum in `count_messages`: the list for a body of
    // empty messages is allocated at a message per two bytes.
    #[test]
    fn a_body_of_messages_too_short_to_be_read_is_declined_before_anything_is_allocated() {
        // The smallest message the reader accepts: a Raft message holding
        // only its type.
        assert_eq!(count_messages(&[0x0a, 4, 0x12, 2, 0x08, 5]), Some(1));
        assert_eq!(MIN_GROUP_MESSAGE, 4);
        let empty: Vec<u8> = [0x0a, 0].repeat(1000);
        assert_eq!(count_messages(&empty), None);
        let version = PROTOCOL_VERSION as u8;
        let mut env = vec![0x08, version, 0x10, 7, 0x18, 1, 0x20, 2, 0x52];
        push_varint(&mut env, empty.len() as u64);
        env.extend_from_slice(&empty);
        assert!(decode_group_envelope(&env).is_none());
        // prost refuses it too (group messages without a Raft message).
        assert!(matches!(
            decode_envelope_with_prost(&env[..]),
            Err(WireError::Malformed(_))
        ));
    }

    /// A rejoined replica's mark (field 10) is written only when set, as
    /// prost writes it, and read as prost reads it; written twice it is
    /// left to prost.
    // Mutation: the mark left out of `raft_len`, `write_group` or
    // `read_raft`, written when false, or read as `== 1`: the bytes or the
    // message differ from prost's.
    #[test]
    fn a_rejoined_mark_is_written_and_read_as_prost_does() {
        let group = |msg: Message| Envelope {
            from: 1,
            to: 2,
            body: Body::Group {
                group_id: 3,
                incarnation: 1,
                msg,
            },
        };
        for msg_type in frame::ALL_MESSAGE_TYPES {
            let mut m = Message::new(msg_type, 1, 2, 4);
            m.commit = 8;
            let plain = crate::wire::encode_frame(7, &group(m.clone()));
            m.rejoined = true;
            let env = group(m);
            let bytes = crate::wire::encode_frame(7, &env);
            assert_eq!(&bytes[..], &prost_frame(7, &env)[..], "{msg_type:?}");
            // The mark costs its key and a byte, and only when set.
            assert_eq!(bytes.len(), plain.len() + 2);
            let (ours, theirs) = decode_both(&bytes[FRAME_HEADER_LEN..]);
            let ours = frame::from_decoded(ours.expect("read by hand"));
            assert_eq!(ours, theirs);
            assert_eq!(ours.map(|f| f.envelope), Ok(env));
        }
        // By hand: an append of group 3 whose Raft message is `raft`.
        let envelope = |raft: &[u8]| {
            let len = raft.len() as u8;
            let head = [0x08, PROTOCOL_VERSION as u8, 0x10, 7, 0x18, 1, 0x20, 2];
            [&head[..], &[0x2a, len + 4, 0x08, 3, 0x12, len], raft].concat()
        };
        // The mark as 0, as 1 and as 2 (prost reads a bool as "not 0").
        for (v, rejoined) in [(0, false), (1, true), (2, true)] {
            let (ours, theirs) = decode_both(&envelope(&[0x08, 5, 0x50, v]));
            let ours = frame::from_decoded(ours.expect("read by hand"));
            assert_eq!(ours, theirs);
            let Ok(Body::Group { msg, .. }) = ours.map(|f| f.envelope.body) else {
                panic!("a group message");
            };
            assert_eq!(msg.rejoined, rejoined, "{v}");
        }
        // Twice (prost keeps the last), and as a length-delimited field.
        for raft in [&[0x08, 5, 0x50, 1, 0x50, 0][..], &[0x08, 5, 0x52, 1, 1]] {
            let (ours, theirs) = decode_both(&envelope(raft));
            assert!(ours.is_none(), "{raft:?}");
            assert_eq!(frame::decode_envelope(&envelope(raft)[..]), theirs);
        }
    }

    #[test]
    fn large_entries_go_to_prost_which_shares_them_with_the_frame() {
        let mut m = Message::new(MessageType::Append, 1, 2, 4);
        m.entries.push(Entry {
            term: 4,
            index: 10,
            kind: EntryKind::Normal,
            data: vec![7u8; SHARE_ENTRIES_FROM].into(),
        });
        let env = Envelope {
            from: 1,
            to: 2,
            body: Body::Group {
                group_id: 3,
                incarnation: 1,
                msg: m,
            },
        };
        let bytes = crate::wire::encode_frame(7, &env);
        assert!(decode_group_envelope(&bytes[FRAME_HEADER_LEN..]).is_none());
        let f = crate::wire::decode_frame_bytes(bytes.clone(), usize::MAX).unwrap();
        assert_eq!(f.envelope, env);
        let Body::Group { msg, .. } = &f.envelope.body else {
            unreachable!()
        };
        // Shared: the entry's bytes are inside the frame's.
        let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
        assert!(range.contains(&(msg.entries[0].data.as_ptr() as usize)));
    }
}
