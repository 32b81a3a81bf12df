//! What one node says to another, as typed values. The multi layer takes
//! these in ([`Node::step`](super::Node::step)) and hands them out
//! ([`NodeReady::messages`](super::NodeReady)); only the wire layer turns
//! them into bytes and back (and documents the byte format).

use bytes::Bytes;

use super::FrameKind;
use crate::raft::{Message, MessageType, SnapshotMeta};

/// A message from node `from` to node `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub from: u64,
    pub to: u64,
    pub body: Body,
}

/// What an envelope carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// One Raft message for one group replica: (group id, incarnation).
    /// Its `from`/`to` are the envelope's: a group has at most one replica
    /// per node, so replica id == node id.
    Group {
        group_id: u64,
        incarnation: u64,
        msg: Message,
    },
    /// Group messages of many groups, in one frame: the codec packs the
    /// appends and append answers a pass sends one peer (see
    /// `runtime::codec::encode_all`), so that a busy node pays one frame,
    /// not one per group. Never empty once decoded. Each message counts as
    /// its own kind in the stats.
    Groups(Vec<GroupMessage>),
    /// The heartbeats of every group the sender leads with a follower on the
    /// receiver, for one interval: one per peer per interval, whatever the
    /// number of groups (see `heartbeat.rs`).
    HeartbeatBatch(HeartbeatBatch),
    /// The receiver's per-group answers to a heartbeat batch.
    HeartbeatBatchResponse(HeartbeatBatchResponse),
    /// A piece of a snapshot, from a leader to a follower behind its
    /// compaction point (`snapshot.rs`).
    SnapshotChunk(SnapshotChunk),
    /// The follower's answer to a chunk: how much of the snapshot it holds.
    SnapshotAck(SnapshotAck),
}

/// One Raft message for one group replica inside [`Body::Groups`]: the
/// fields of [`Body::Group`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMessage {
    pub group_id: u64,
    pub incarnation: u64,
    pub msg: Message,
}

/// A piece of a group's snapshot: `data` holds bytes `offset..offset +
/// data.len()` of the `total_len` bytes whose CRC-32C is `crc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    pub group_id: u64,
    pub incarnation: u64,
    /// The sending leader's term.
    pub term: u64,
    pub meta: SnapshotMeta,
    pub total_len: u64,
    pub crc: u32,
    pub offset: u64,
    pub data: Bytes,
}

/// A follower's answer to a [`SnapshotChunk`]: it holds the first
/// `received` bytes of the snapshot at `index` (0: start again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotAck {
    pub group_id: u64,
    pub incarnation: u64,
    /// The follower's term.
    pub term: u64,
    pub index: u64,
    pub received: u64,
}

impl Body {
    /// The kind of frame this is, for per-kind counters and for the
    /// transport's priority lane (liveness traffic first).
    pub fn kind(&self) -> FrameKind {
        match self {
            Body::Group { msg, .. } => msg_kind(msg),
            // The first message's kind: what a pass packs are appends and
            // their answers, bulk traffic.
            Body::Groups(msgs) => msgs.first().map_or(FrameKind::Append, |m| msg_kind(&m.msg)),
            Body::SnapshotChunk(_) => FrameKind::SnapshotChunk,
            Body::SnapshotAck(_) => FrameKind::SnapshotAck,
            Body::HeartbeatBatch(_) => FrameKind::HeartbeatBatch,
            Body::HeartbeatBatchResponse(_) => FrameKind::HeartbeatBatchResponse,
        }
    }
}

/// The kind of frame a group message is.
pub(crate) fn msg_kind(msg: &Message) -> FrameKind {
    match msg.msg_type {
        MessageType::Append => FrameKind::Append,
        MessageType::AppendResponse => FrameKind::AppendResponse,
        MessageType::Vote => FrameKind::Vote,
        MessageType::VoteResponse => FrameKind::VoteResponse,
        MessageType::PreVote => FrameKind::PreVote,
        MessageType::PreVoteResponse => FrameKind::PreVoteResponse,
        MessageType::Heartbeat => FrameKind::Heartbeat,
        MessageType::HeartbeatResponse => FrameKind::HeartbeatResponse,
        // Never sent as such: it travels as chunks.
        MessageType::Snapshot => FrameKind::SnapshotChunk,
        // Election traffic, and rare: counted with the votes it causes.
        MessageType::TimeoutNow => FrameKind::Vote,
    }
}

/// The heartbeat one leader group sends its follower on the peer node,
/// inside a [`HeartbeatBatch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct GroupHeartbeat {
    pub group_id: u64,
    /// The leader's term; 0 in a compact row (see [`HeartbeatBatch::seq`]),
    /// whose term and commit are those of the group's last full row.
    pub term: u64,
    /// min(follower's match index, leader's commit): never past what the
    /// follower has verified, so a heartbeat that overtakes an append cannot
    /// make the follower commit unverified entries.
    pub commit: u64,
}

/// One group's answer to a [`GroupHeartbeat`], inside a
/// [`HeartbeatBatchResponse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct GroupHeartbeatResponse {
    pub group_id: u64,
    /// The follower's term, so that a stale leader learns it and steps
    /// down; 0 when it is the term of the row answered (see
    /// [`HeartbeatBatchResponse::ack_seq`]).
    pub term: u64,
}

/// How a batch proves which incarnation of each group its rows belong to.
///
/// A group id can be removed and created again; rows of the earlier
/// incarnation (late, or from a node that has not removed it yet) must never
/// reach the later one. Sending every row's incarnation would double a
/// batch, so normally a batch carries one digest of all its
/// (group id, incarnation) pairs ([`incarnation_digest`]): a receiver that
/// hosts exactly those incarnations computes the same number, and a single
/// row of another incarnation always changes it. A receiver that finds a
/// mismatch drops the whole batch and says so in its response; the sender
/// then names each row's incarnation for a while, so that only the rows of
/// other incarnations are dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incarnations {
    /// [`incarnation_digest`] of every row's (group id, incarnation).
    Digest(u64),
    /// The incarnation of each row's group, in row order.
    PerRow(Vec<u64>),
}

impl Default for Incarnations {
    fn default() -> Self {
        Incarnations::Digest(0)
    }
}

/// The heartbeats of many groups from one node to another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeartbeatBatch {
    /// Ascending by group id once decoded; the encoder accepts any order.
    pub rows: Vec<GroupHeartbeat>,
    pub incarnations: Incarnations,
    /// The groups whose row carries the quiesce notice: the leader is
    /// going quiet and asks the follower to stop expecting its heartbeats
    /// (see `quiesce.rs`). Each is the group of a row; ascending once
    /// decoded.
    pub quiesce: Vec<u64>,
    /// The sender's session: drawn at random when its node starts, so that
    /// a restart is noticed even when it was too quick to miss a batch.
    pub session: u64,
    /// (group, read round) of the rows that carry a read round: the
    /// group's leader has reads waiting, and the answer to that row echoes
    /// the round (`raft/read.rs`). Each is the group of a row; ascending
    /// once decoded. Empty unless reads are pending.
    pub rounds: Vec<(u64, u64)>,
    /// The sender's number for this batch to this receiver (growing; 0:
    /// none). Rows of a numbered batch may be compact: a row with term 0
    /// stands for "the same term and commit as the last full row of this
    /// group you received from me" (see `heartbeat.rs`).
    pub seq: u64,
    /// The sender's leader balancer's own tally: how many more groups it
    /// leads than its share, in units of 1/720,720 of a group (see
    /// `balance.rs`); `None` when its balancer is off or has not tallied
    /// yet. Peers hand it leaderships only while it is below its share.
    pub leader_excess: Option<i64>,
}

/// The answers of many groups to a [`HeartbeatBatch`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeartbeatBatchResponse {
    /// Ascending by group id once decoded; the encoder accepts any order.
    pub rows: Vec<GroupHeartbeatResponse>,
    /// [`incarnation_digest`] of every row's (group id, incarnation). A
    /// response names no incarnation per row: it answers rows the responder
    /// already matched, so a mismatch is a rare race (a group re-created in
    /// between) and the whole response is dropped.
    pub incarnation_digest: u64,
    /// The last batch the responder received from this node named group
    /// incarnations it does not host: send incarnations per row.
    pub incarnation_mismatch: bool,
    /// The groups whose row answers a quiesce notice by going quiet. Each
    /// is the group of a row; ascending once decoded.
    pub quiesced: Vec<u64>,
    /// The responder's session (see [`HeartbeatBatch::session`]).
    pub session: u64,
    /// (group, read round) of the rows that answer a row carrying a read
    /// round, echoing it. Each is the group of a row; ascending once
    /// decoded.
    pub rounds: Vec<(u64, u64)>,
    /// The highest batch number the responder received from this node (0:
    /// none). Rows of an answer with one may have term 0: "the term of the
    /// row this answers".
    pub ack_seq: u64,
    /// Which of the 64 batches up to `ack_seq` the responder received (and
    /// stepped): bit i for batch `ack_seq - i`.
    pub ack_bits: u64,
    /// Groups whose compact row the responder could not use: send them a
    /// full row. Ascending once decoded.
    pub need_full: Vec<u64>,
    /// The groups whose row is answered by a replica that lost its durable
    /// state and rejoined (see `Message::rejoined`): its leader counts it
    /// in no quorum. Each is the group of a row; ascending once decoded.
    /// Empty unless the responder hosts such a replica.
    pub rejoined: Vec<u64>,
}

/// The contribution of one row to an incarnation digest. For a given group
/// id, two different incarnations always give different values (both
/// steps are bijections), so one stale row always changes a digest.
pub fn incarnation_row_hash(group_id: u64, incarnation: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    mix(group_id ^ mix(incarnation.wrapping_add(0x9E37_79B9_7F4A_7C15)))
}

/// The digest of a batch's (group id, incarnation) pairs: the wrapping sum
/// of their row hashes, so it does not depend on row order and can be
/// computed while the rows are visited.
pub fn incarnation_digest(pairs: impl IntoIterator<Item = (u64, u64)>) -> u64 {
    pairs
        .into_iter()
        .fold(0u64, |d, (g, i)| d.wrapping_add(incarnation_row_hash(g, i)))
}
