//! The protobuf messages that are the wire format, written by hand with
//! `prost` derives (there is no `.proto` compilation step).
//!
//! These structs are the schema: field numbers and types here are the
//! contract with every peer, so a field number is never reused or retyped.
//! New fields get new numbers; proto3 decoders skip fields they do not know,
//! which is what lets a newer peer add a field without bumping
//! [`PROTOCOL_VERSION`](super::PROTOCOL_VERSION), unless an older peer
//! skipping it would be unsafe (the rejoined marks of version 3).
//!
//! Nothing outside `wire` sees these types: [`frame`](super::frame) converts
//! between them and the Rust-side [`Frame`](super::Frame), and validates
//! everything a peer could get wrong on the way in.
//!
//! Repeated `uint64` fields are packed (prost's default for numeric fields,
//! as in proto3): one tag and one length for the whole column, then the
//! varints back to back. The heartbeat batches rely on this for their size;
//! a test in this file checks the wire type.

use bytes::Bytes;

/// Everything one node sends another travels in one envelope.
///
/// `from` and `to` are node ids. Since a group has at most one replica per
/// node, they are also the replica ids of a group message, which therefore
/// does not repeat them.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Envelope {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(uint64, tag = "2")]
    pub cluster_id: u64,
    #[prost(uint64, tag = "3")]
    pub from: u64,
    #[prost(uint64, tag = "4")]
    pub to: u64,
    #[prost(oneof = "EnvelopeBody", tags = "5, 6, 7, 8, 9, 10")]
    pub body: Option<EnvelopeBody>,
}

/// The first four fields of [`Envelope`] alone.
///
/// Decoding this first lets the decoder report a version mismatch even when
/// the body of a newer version would not parse as ours: prost skips the
/// length-delimited body fields without looking inside them.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EnvelopeHeader {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(uint64, tag = "2")]
    pub cluster_id: u64,
    #[prost(uint64, tag = "3")]
    pub from: u64,
    #[prost(uint64, tag = "4")]
    pub to: u64,
}

/// What an envelope carries; exactly one is required.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum EnvelopeBody {
    #[prost(message, tag = "5")]
    Group(GroupMessage),
    #[prost(message, tag = "6")]
    Batch(HeartbeatBatch),
    #[prost(message, tag = "7")]
    BatchResponse(HeartbeatBatchResponse),
    #[prost(message, tag = "8")]
    SnapshotChunk(SnapshotChunk),
    #[prost(message, tag = "9")]
    SnapshotAck(SnapshotAck),
    #[prost(message, tag = "10")]
    Groups(GroupMessages),
}

/// Group messages of many groups between the same two nodes (appends and
/// their answers, packed by the sender's codec).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GroupMessages {
    #[prost(message, repeated, tag = "1")]
    pub messages: Vec<GroupMessage>,
}

/// A piece of a group's snapshot (see `multi::SnapshotChunk`).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SnapshotChunk {
    #[prost(uint64, tag = "1")]
    pub group_id: u64,
    #[prost(uint64, tag = "2")]
    pub incarnation: u64,
    #[prost(uint64, tag = "3")]
    pub term: u64,
    /// The snapshot: its index, the term of that entry, its voters.
    #[prost(uint64, tag = "4")]
    pub index: u64,
    #[prost(uint64, tag = "5")]
    pub snapshot_term: u64,
    #[prost(uint64, repeated, tag = "6")]
    pub voters: Vec<u64>,
    #[prost(uint64, tag = "7")]
    pub total_len: u64,
    #[prost(fixed32, tag = "8")]
    pub crc: u32,
    #[prost(uint64, tag = "9")]
    pub offset: u64,
    #[prost(bytes = "bytes", tag = "10")]
    pub data: Bytes,
    /// The snapshot's non-voters, and which of them are promotable.
    #[prost(uint64, repeated, tag = "11")]
    pub learners: Vec<u64>,
    #[prost(uint64, repeated, tag = "12")]
    pub promotable: Vec<u64>,
}

/// A follower's answer to a snapshot chunk.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SnapshotAck {
    #[prost(uint64, tag = "1")]
    pub group_id: u64,
    #[prost(uint64, tag = "2")]
    pub incarnation: u64,
    #[prost(uint64, tag = "3")]
    pub term: u64,
    #[prost(uint64, tag = "4")]
    pub index: u64,
    #[prost(uint64, tag = "5")]
    pub received: u64,
}

/// One Raft message addressed to one group replica: (group id,
/// incarnation). A receiver whose replica of the group is another
/// incarnation drops the message.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GroupMessage {
    #[prost(uint64, tag = "1")]
    pub group_id: u64,
    #[prost(message, optional, tag = "2")]
    pub msg: Option<RaftMessage>,
    #[prost(uint64, tag = "3")]
    pub incarnation: u64,
}

/// A Raft message minus `from`/`to`, which are the envelope's.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RaftMessage {
    /// See `frame::msg_type_to_wire` for the numbering; 0 is invalid.
    #[prost(uint32, tag = "1")]
    pub msg_type: u32,
    #[prost(uint64, tag = "2")]
    pub term: u64,
    #[prost(uint64, tag = "3")]
    pub log_term: u64,
    #[prost(uint64, tag = "4")]
    pub index: u64,
    #[prost(message, repeated, tag = "5")]
    pub entries: Vec<Entry>,
    #[prost(uint64, tag = "6")]
    pub commit: u64,
    #[prost(bool, tag = "7")]
    pub reject: bool,
    #[prost(uint64, tag = "8")]
    pub reject_hint: u64,
    /// Vote: a campaign its leader asked for (leadership transfer).
    #[prost(bool, tag = "9")]
    pub transfer: bool,
    /// The sender is a replica that lost its durable state and rejoined
    /// its group: its leader must count it in no quorum. Written only when
    /// true, so that every other message costs nothing more.
    #[prost(bool, tag = "10")]
    pub rejoined: bool,
}

/// One log entry. `data` is `Bytes` so that decoding from a `Bytes` buffer
/// shares the payload instead of copying it.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Entry {
    #[prost(uint64, tag = "1")]
    pub term: u64,
    #[prost(uint64, tag = "2")]
    pub index: u64,
    /// See `frame::entry_kind_to_wire`; Normal = 0, Noop = 1, Config = 2.
    #[prost(uint32, tag = "3")]
    pub kind: u32,
    #[prost(bytes = "bytes", tag = "4")]
    pub data: Bytes,
}

/// The heartbeats of many groups from one leader node to one follower node,
/// as columns: row `i` is (group `i`, `terms[i]`, `commits[i]`).
///
/// `group_deltas` holds the first group id, then the difference between each
/// id and the previous one; see [`batch`](super::batch) for why and for the
/// rules a decoder enforces.
///
/// Which incarnation of each group a row belongs to is proven either by
/// `incarnation_digest` alone (one number for the whole batch) or, when
/// `incarnations` is not empty, by one incarnation per row.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HeartbeatBatch {
    #[prost(uint64, repeated, tag = "1")]
    pub group_deltas: Vec<u64>,
    #[prost(uint64, repeated, tag = "2")]
    pub terms: Vec<u64>,
    #[prost(uint64, repeated, tag = "3")]
    pub commits: Vec<u64>,
    #[prost(fixed64, tag = "4")]
    pub incarnation_digest: u64,
    #[prost(uint64, repeated, tag = "5")]
    pub incarnations: Vec<u64>,
    /// The groups whose row carries the quiesce notice, delta-coded as
    /// `group_deltas`; each must be the group of a row.
    #[prost(uint64, repeated, tag = "6")]
    pub quiesce_deltas: Vec<u64>,
    #[prost(fixed64, tag = "7")]
    pub session: u64,
    /// The rows that carry a read round: their groups, delta-coded as
    /// `group_deltas` (each the group of a row), and the rounds, one per
    /// group. Empty unless reads are pending.
    #[prost(uint64, repeated, tag = "8")]
    pub read_group_deltas: Vec<u64>,
    #[prost(uint64, repeated, tag = "9")]
    pub read_rounds: Vec<u64>,
    /// This node's number for the batch (per peer, growing; 0: none). A
    /// numbered batch is compact: only the rows listed in `full_deltas`
    /// (delta-coded as `group_deltas`, each the group of a row) have a term
    /// and a commit in `terms` and `commits`; every other row is compact,
    /// "the same term and commit as the last full row of this group you
    /// received", which the sender only writes once the receiver's answers
    /// acknowledged that row's batch.
    #[prost(uint64, tag = "10")]
    pub seq: u64,
    #[prost(uint64, repeated, tag = "11")]
    pub full_deltas: Vec<u64>,
    /// The sender's leader excess (see `multi::HeartbeatBatch`), absent
    /// when it does not balance leaders.
    #[prost(sint64, optional, tag = "12")]
    pub leader_excess: Option<i64>,
}

/// The answers of many groups to one [`HeartbeatBatch`], same columnar
/// layout: row `i` is (group `i`, the follower's `terms[i]`).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HeartbeatBatchResponse {
    #[prost(uint64, repeated, tag = "1")]
    pub group_deltas: Vec<u64>,
    #[prost(uint64, repeated, tag = "2")]
    pub terms: Vec<u64>,
    #[prost(fixed64, tag = "3")]
    pub incarnation_digest: u64,
    /// The last batch this node received from the peer named group
    /// incarnations it does not host.
    #[prost(bool, tag = "4")]
    pub incarnation_mismatch: bool,
    /// The groups whose row answers a quiesce notice by going quiet,
    /// delta-coded as `group_deltas`; each must be the group of a row.
    #[prost(uint64, repeated, tag = "5")]
    pub quiesced_deltas: Vec<u64>,
    #[prost(fixed64, tag = "6")]
    pub session: u64,
    /// The rows that answer a row carrying a read round, and the rounds
    /// they echo (as in [`HeartbeatBatch`]).
    #[prost(uint64, repeated, tag = "7")]
    pub read_group_deltas: Vec<u64>,
    #[prost(uint64, repeated, tag = "8")]
    pub read_rounds: Vec<u64>,
    /// The highest batch number received from the peer (0: none). When not
    /// 0 the answer is compact: only the rows listed in `explicit_deltas`
    /// have a term in `terms`; every other row's term is the term of the
    /// row it answers.
    #[prost(uint64, tag = "9")]
    pub ack_seq: u64,
    /// Which of the 64 batches up to `ack_seq` were received: bit i for
    /// batch `ack_seq - i` (bit 0, `ack_seq` itself, always set).
    #[prost(fixed64, tag = "12")]
    pub ack_bits: u64,
    #[prost(uint64, repeated, tag = "10")]
    pub explicit_deltas: Vec<u64>,
    /// Groups whose compact row could not be used (this replica does not
    /// follow the sender at the term the row stands for): send them full.
    /// Delta-coded, not necessarily groups of rows.
    #[prost(uint64, repeated, tag = "11")]
    pub need_full_deltas: Vec<u64>,
    /// The groups whose row is answered by a replica that lost its durable
    /// state and rejoined (its leader counts it in no quorum), delta-coded
    /// as `group_deltas`; each must be the group of a row. Such replicas
    /// are rare: the column is almost always empty, and then absent.
    #[prost(uint64, repeated, tag = "13")]
    pub rejoined_deltas: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    /// Wire type 2 (length-delimited) on a repeated scalar means it is
    /// packed; wire type 0 would mean one tag per element.
    #[test]
    fn repeated_u64_columns_are_packed() {
        let batch = HeartbeatBatch {
            group_deltas: vec![1, 1, 1],
            terms: vec![2, 2, 2],
            commits: vec![3, 3, 3],
            ..Default::default()
        };
        let bytes = batch.encode_to_vec();
        // field 1, wire type 2, length 3, then three one-byte varints, etc.
        assert_eq!(
            bytes,
            [0x0a, 3, 1, 1, 1, 0x12, 3, 2, 2, 2, 0x1a, 3, 3, 3, 3],
            "packed columns cost one tag and one length per column"
        );

        let response = HeartbeatBatchResponse {
            group_deltas: vec![7, 1],
            terms: vec![5, 5],
            ..Default::default()
        };
        assert_eq!(response.encode_to_vec(), [0x0a, 2, 7, 1, 0x12, 2, 5, 5]);
    }

    #[test]
    fn header_decodes_from_a_full_envelope_and_skips_the_body() {
        let env = Envelope {
            version: 9,
            cluster_id: 42,
            from: 1,
            to: 2,
            body: Some(EnvelopeBody::Batch(HeartbeatBatch {
                group_deltas: vec![1],
                terms: vec![1],
                commits: vec![1],
                ..Default::default()
            })),
        };
        let header = EnvelopeHeader::decode(env.encode_to_vec().as_slice());
        assert_eq!(
            header,
            Ok(EnvelopeHeader {
                version: 9,
                cluster_id: 42,
                from: 1,
                to: 2,
            })
        );
    }
}
