//! Node statistics and group status as C structs.

use super::callbacks::muxraft_role;
use crate::multi::{FrameKind, Stats};
use crate::raft::Status;

/// A group replica's state, from `muxraft_group_status`. Its layout is
/// fixed for `MUXRAFT_ABI_VERSION` 1.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct muxraft_group_info {
    pub role: muxraft_role,
    /// Current term.
    pub term: u64,
    /// The leader this replica knows of, 0 if none.
    pub leader_id: u64,
    /// Highest index known committed.
    pub commit_index: u64,
    /// Highest index applied (delivered to `apply`, or one of Raft's own
    /// entries, which are not delivered).
    pub applied_index: u64,
    /// Highest index in this replica's log.
    pub last_index: u64,
}

impl From<Status> for muxraft_group_info {
    fn from(s: Status) -> muxraft_group_info {
        muxraft_group_info {
            role: s.role.into(),
            term: s.term,
            leader_id: s.leader,
            commit_index: s.commit,
            applied_index: s.applied,
            last_index: s.last_index,
        }
    }
}

/// Counters since the node was created, from `muxraft_node_stats`. Its
/// layout is fixed for `MUXRAFT_ABI_VERSION` 1: new counters come at the end
/// with a new ABI version (and soname), so a program never receives more
/// bytes than it allocated.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct muxraft_stats {
    /// Frames handed to `send` (or the transport), of every kind.
    pub messages_sent: u64,
    pub bytes_sent: u64,
    /// Frames stepped into the node (accepted ones).
    pub messages_received: u64,
    /// `HeartbeatBatch` frames sent: at most one per peer per interval.
    pub heartbeat_batches_sent: u64,
    /// Per-group heartbeats carried inside those batches: what the naive
    /// scheme would have sent as separate messages.
    pub group_heartbeats_batched: u64,
    /// Elections started by this node's replicas.
    pub elections_started: u64,
    /// Frames refused: malformed, too large, another cluster or node.
    pub frames_rejected: u64,
    /// Stand-alone per-group heartbeat frames sent (naive mode).
    pub heartbeats_sent: u64,
    /// Heartbeat-batch answers sent.
    pub heartbeat_batch_responses_sent: u64,
    /// All liveness frames sent (heartbeats, batches and their answers).
    pub heartbeat_messages_sent: u64,
    pub heartbeat_bytes_sent: u64,
    pub bytes_received: u64,
    /// Messages for a group not hosted here, or from a non-member.
    pub messages_dropped: u64,
    pub leader_changes: u64,
    pub proposals: u64,
    pub proposals_committed: u64,
    pub proposals_failed: u64,
    pub entries_applied: u64,
    pub groups: u64,
}

impl muxraft_stats {
    pub(crate) fn from_stats(s: &Stats, groups: usize) -> muxraft_stats {
        let hb = s.heartbeat_traffic_sent();
        muxraft_stats {
            messages_sent: s.messages_sent(),
            bytes_sent: s.bytes_sent(),
            messages_received: s.messages_received(),
            heartbeat_batches_sent: s.sent_of(FrameKind::HeartbeatBatch).messages,
            group_heartbeats_batched: s.group_heartbeats_batched,
            elections_started: s.elections_started,
            frames_rejected: s.frames_rejected,
            heartbeats_sent: s.sent_of(FrameKind::Heartbeat).messages,
            heartbeat_batch_responses_sent: s.sent_of(FrameKind::HeartbeatBatchResponse).messages,
            heartbeat_messages_sent: hb.messages,
            heartbeat_bytes_sent: hb.bytes,
            bytes_received: s.bytes_received(),
            messages_dropped: s.messages_dropped,
            leader_changes: s.leader_changes,
            proposals: s.proposals,
            proposals_committed: s.proposals_committed,
            proposals_failed: s.proposals_failed,
            entries_applied: s.entries_applied,
            groups: groups as u64,
        }
    }
}
