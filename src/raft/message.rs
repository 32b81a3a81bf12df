//! The messages one Raft replica sends another, and the log entries they carry.
//!
//! These types are the whole vocabulary of the protocol. They know nothing of
//! groups or bytes: the multi layer adds the group id and the wire layer the
//! encoding.

use bytes::Bytes;

/// Identifies a replica. In muxraft a group has at most one replica per node,
/// so a replica id is the id of the node hosting it. Zero means "none".
pub type ReplicaId = u64;

/// The id that means "no replica" (no vote cast, no leader known).
pub const NONE: ReplicaId = 0;

/// What an entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum EntryKind {
    /// A command proposed by the host; delivered to `apply`.
    #[default]
    Normal,
    /// The empty entry a new leader appends so that it can commit entries of
    /// earlier terms (Raft §5.4.2). Never delivered to the host's `apply`.
    Noop,
    /// A new membership of the group (`membership.rs`): the whole member
    /// list, in effect from the moment it is in a replica's log. Reported
    /// to the host when applied, never delivered to `apply`.
    Config,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub kind: EntryKind,
    pub data: Bytes,
}

impl Entry {
    /// Bytes this entry costs in a message, used against the per-append size
    /// limit (payload plus a rough header).
    pub fn size(&self) -> u64 {
        self.data.len() as u64 + 16
    }
}

/// A snapshot of a group's state machine as Raft sees it: the state after
/// applying `index` (whose entry had `term`), with the membership of that
/// time (voters; non-voters, and which of them are promotable).
/// The state's bytes belong to the host and travel beside it (the multi
/// layer sends them in chunks).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SnapshotMeta {
    pub index: u64,
    pub term: u64,
    pub voters: Vec<ReplicaId>,
    pub learners: Vec<ReplicaId>,
    pub promotable: Vec<ReplicaId>,
}

impl SnapshotMeta {
    /// The membership this snapshot records.
    pub fn membership(&self) -> super::Membership {
        super::Membership {
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            promotable: self.promotable.clone(),
        }
    }
}

/// Term, vote and commit: the state that must be durable before any message
/// depending on it leaves the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HardState {
    pub term: u64,
    pub vote: ReplicaId,
    pub commit: u64,
}

/// Kinds of Raft message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// RequestVote: `index`/`log_term` are the candidate's last entry.
    Vote,
    VoteResponse,
    /// PreVote (Raft thesis §9.6): same fields as `Vote`, sent with the term
    /// the candidate *would* use, without incrementing its own.
    PreVote,
    PreVoteResponse,
    /// AppendEntries: `index`/`log_term` name the entry preceding `entries`.
    Append,
    /// Answer to `Append`. Accepted: `index` is the last index now known to
    /// match. Rejected: `index` is the rejected `Append.index`, and
    /// `reject_hint`/`log_term` carry the follower's hint for fast back-off.
    AppendResponse,
    /// Liveness and commit propagation from a leader: `term` and
    /// `commit` = min(follower's match, leader's commit). Carries no log
    /// position, so a heartbeat that overtakes an append can never make a
    /// follower truncate, and never commit past what it has verified.
    /// `index` is the read round it belongs to (0: none; see `read.rs`).
    Heartbeat,
    /// Answer to `Heartbeat`: the follower's term, and in `index` the
    /// heartbeat's read round.
    HeartbeatResponse,
    /// The leader's log no longer holds the entries the follower needs:
    /// install the snapshot `snapshot` names. A leader emits it when a
    /// follower is behind its compaction point; its bytes travel as chunks
    /// (the multi layer), and the follower's node steps it only once the
    /// whole snapshot arrived and was verified. Answered with an
    /// `AppendResponse` at the snapshot's index.
    Snapshot,
    /// Leadership transfer (Raft thesis §3.10): the leader, having caught
    /// the receiver up, asks it to campaign at once. The receiver skips
    /// PreVote and sets `transfer` on its vote requests.
    TimeoutNow,
}

impl MessageType {
    /// Responses to these carry a term the sender may not have yet; the
    /// candidate-side variants of vote messages are sent at a future term.
    pub fn is_response(self) -> bool {
        matches!(
            self,
            MessageType::VoteResponse
                | MessageType::PreVoteResponse
                | MessageType::AppendResponse
                | MessageType::HeartbeatResponse
        )
    }
}

/// A Raft message between two replicas of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub msg_type: MessageType,
    pub from: ReplicaId,
    pub to: ReplicaId,
    pub term: u64,
    /// Vote/PreVote: term of the candidate's last entry. Append: term of the
    /// entry at `index`. Rejected AppendResponse: term of the follower's entry
    /// at `reject_hint` (0 if none).
    pub log_term: u64,
    /// See [`MessageType`] for its meaning per kind.
    pub index: u64,
    pub entries: Vec<Entry>,
    /// Append / Heartbeat: the commit index the follower may adopt.
    pub commit: u64,
    pub reject: bool,
    /// Rejected AppendResponse: the follower's last index at or below the
    /// rejected index whose term is ≤ the leader's `log_term`.
    pub reject_hint: u64,
    /// Snapshot: which snapshot to install.
    pub snapshot: Option<Box<SnapshotMeta>>,
    /// Vote: the candidate campaigns because its leader handed leadership
    /// over (`TimeoutNow`): voters grant it even within their lease, which
    /// otherwise makes them ignore candidates while a leader is alive.
    pub transfer: bool,
    /// Set on every message of a replica that lost its durable state and
    /// rejoined its group (`Config::can_vote` false). It may have
    /// acknowledged entries, and heard of terms, that it no longer knows
    /// of, so its leader counts it in no quorum: not toward commit, read
    /// confirmation nor CheckQuorum (see `Progress::rejoined`).
    pub rejoined: bool,
}

impl Message {
    pub fn new(msg_type: MessageType, from: ReplicaId, to: ReplicaId, term: u64) -> Message {
        Message {
            msg_type,
            from,
            to,
            term,
            log_term: 0,
            index: 0,
            entries: Vec::new(),
            commit: 0,
            reject: false,
            reject_hint: 0,
            snapshot: None,
            transfer: false,
            rejoined: false,
        }
    }
}
