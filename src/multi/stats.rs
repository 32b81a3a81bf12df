//! Counters for everything a node sends and receives.

/// Kinds of frame, for per-kind counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum FrameKind {
    Append = 0,
    AppendResponse,
    Vote,
    VoteResponse,
    PreVote,
    PreVoteResponse,
    /// A stand-alone per-group heartbeat (naive mode).
    Heartbeat,
    HeartbeatResponse,
    HeartbeatBatch,
    HeartbeatBatchResponse,
    SnapshotChunk,
    SnapshotAck,
}

impl FrameKind {
    pub const COUNT: usize = 12;
    pub const ALL: [FrameKind; FrameKind::COUNT] = [
        FrameKind::Append,
        FrameKind::AppendResponse,
        FrameKind::Vote,
        FrameKind::VoteResponse,
        FrameKind::PreVote,
        FrameKind::PreVoteResponse,
        FrameKind::Heartbeat,
        FrameKind::HeartbeatResponse,
        FrameKind::HeartbeatBatch,
        FrameKind::HeartbeatBatchResponse,
        FrameKind::SnapshotChunk,
        FrameKind::SnapshotAck,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Append => "append",
            FrameKind::AppendResponse => "append_response",
            FrameKind::Vote => "vote",
            FrameKind::VoteResponse => "vote_response",
            FrameKind::PreVote => "pre_vote",
            FrameKind::PreVoteResponse => "pre_vote_response",
            FrameKind::Heartbeat => "heartbeat",
            FrameKind::HeartbeatResponse => "heartbeat_response",
            FrameKind::HeartbeatBatch => "heartbeat_batch",
            FrameKind::HeartbeatBatchResponse => "heartbeat_batch_response",
            FrameKind::SnapshotChunk => "snapshot_chunk",
            FrameKind::SnapshotAck => "snapshot_ack",
        }
    }

    /// Is this frame liveness traffic (a heartbeat, a batch, or an answer)?
    pub fn is_heartbeat(self) -> bool {
        matches!(
            self,
            FrameKind::Heartbeat
                | FrameKind::HeartbeatResponse
                | FrameKind::HeartbeatBatch
                | FrameKind::HeartbeatBatchResponse
        )
    }
}

/// Messages of one kind, and the bytes their encoding took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    pub messages: u64,
    pub bytes: u64,
}

/// A node's counters since it was created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub sent: [Count; FrameKind::COUNT],
    pub received: [Count; FrameKind::COUNT],
    /// Per-group heartbeats carried inside batches sent.
    pub group_heartbeats_batched: u64,
    /// Per-group heartbeat answers carried inside batch responses sent.
    pub group_heartbeat_responses_batched: u64,
    /// Real elections started by this node's replicas.
    pub elections_started: u64,
    /// Times a replica here saw its group's leader change.
    pub leader_changes: u64,
    /// Frames refused: malformed, too large, wrong cluster or destination
    /// (the decoding layer reports the first three).
    pub frames_rejected: u64,
    /// Messages (or batch entries) for a group not hosted here, or from a
    /// replica that is not a member: dropped for that group only.
    pub messages_dropped: u64,
    /// Messages and batch rows for another incarnation of a group hosted
    /// here (an earlier life of a re-created group id, or a later one):
    /// dropped.
    pub incarnation_mismatches: u64,
    /// Heartbeat batches and responses dropped whole because their
    /// incarnation digest did not match this node's groups (the sender then
    /// names each row's incarnation for a while).
    pub batches_dropped_incarnation: u64,
    /// Heartbeat batches sent with one incarnation per row (after a peer
    /// reported a mismatch) instead of one digest.
    pub batches_with_incarnations: u64,
    pub proposals: u64,
    pub proposals_committed: u64,
    /// Proposals that failed for certain: another entry committed in their
    /// place.
    pub proposals_failed: u64,
    /// Proposals whose outcome is unknown: leadership lost before they were
    /// decided, group removed, node stopped.
    pub proposals_unknown: u64,
    pub entries_applied: u64,
    /// Snapshots the host took of this node's groups.
    pub snapshots_taken: u64,
    /// Snapshots this node's groups installed from their leader.
    pub snapshots_installed: u64,
    /// Snapshot transfers started to followers, and those abandoned for
    /// lack of progress.
    pub snapshot_transfers_started: u64,
    pub snapshot_transfers_failed: u64,
    /// Snapshots received whole whose CRC did not match (received again).
    pub snapshot_crc_failures: u64,
    /// Proposals refused with `Busy` (backpressure).
    pub proposals_refused_busy: u64,
    /// Gauges, now: proposals in flight (accepted, not yet decided) over
    /// all groups, and payload bytes of entries not yet durable here (as of
    /// the last proposal or pass of each group).
    pub pending_proposals: u64,
    pub unsynced_bytes: u64,
    /// Times a group here went quiet (see `quiesce.rs`), and quiesce
    /// notices sent in heartbeat rows.
    pub quiesced: u64,
    pub quiesce_notices_sent: u64,
    /// Times a quiet group here woke up, by cause.
    pub wakeups: [u64; WakeCause::COUNT],
    /// Times this node stopped hearing a peer, heard it again, or saw it
    /// restart (a new session).
    pub peers_lost: u64,
    pub peers_returned: u64,
    pub peers_restarted: u64,
    /// Reads taken (`Node::read_index`), served (confirmed and applied),
    /// failed (leadership lost, group removed, node stopped), and refused
    /// with `Busy`; and now (gauge) reads taken and not yet reported.
    pub reads: u64,
    pub reads_served: u64,
    pub reads_failed: u64,
    pub reads_refused_busy: u64,
    pub pending_reads: u64,
    /// Heartbeat rows sent carrying a read round, and answer rows received
    /// echoing one.
    pub read_rounds_sent: u64,
    pub read_rounds_answered: u64,
    /// Heartbeat rows sent compact (the group id alone: unchanged since a
    /// full row the peer received), and compact rows received that this
    /// node could not use (it asked for full ones).
    pub compact_rows_sent: u64,
    pub compact_rows_refused: u64,
    /// Leadership transfers this node started (`Node::transfer_leader`),
    /// and (gauge) the groups this node leads now.
    pub transfers_started: u64,
    pub groups_led: u64,
    /// Of `transfers_started`, those the leader balancer started
    /// (`balance.rs`).
    pub balance_transfers: u64,
    /// Of `balance_transfers`, those that tried again a transfer of the
    /// same group to the same target that the target did not complete
    /// earlier (after the wait `balance.rs` sets, or once the target is
    /// back).
    pub balance_retries: u64,
    /// Membership changes this node proposed as leader (`Node::add_member`,
    /// `remove_member`, and the automatic promotions are not counted).
    pub membership_changes: u64,
}

/// Why a quiet group woke up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeCause {
    /// A proposal, a campaign or another call of the host's.
    Host = 0,
    /// A message or heartbeat row from the group's leader.
    LeaderMessage,
    /// A message or answer row from another replica.
    FollowerMessage,
    /// The node of the group's leader was lost or restarted, or a quiet
    /// leader stopped hearing a quorum.
    PeerLost,
    /// A peer with a replica of the group came back.
    PeerReturned,
}

impl WakeCause {
    pub const COUNT: usize = 5;
    pub const ALL: [WakeCause; WakeCause::COUNT] = [
        WakeCause::Host,
        WakeCause::LeaderMessage,
        WakeCause::FollowerMessage,
        WakeCause::PeerLost,
        WakeCause::PeerReturned,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WakeCause::Host => "host",
            WakeCause::LeaderMessage => "leader_message",
            WakeCause::FollowerMessage => "follower_message",
            WakeCause::PeerLost => "peer_lost",
            WakeCause::PeerReturned => "peer_returned",
        }
    }
}

impl Stats {
    /// A message of this kind was handed out to be sent.
    pub(crate) fn on_sent(&mut self, kind: FrameKind) {
        self.sent[kind as usize].messages += 1;
    }

    /// Its encoding took this many bytes (reported by the encoding layer).
    pub(crate) fn on_bytes_sent(&mut self, kind: FrameKind, bytes: usize) {
        self.sent[kind as usize].bytes += bytes as u64;
    }

    pub(crate) fn on_received(&mut self, kind: FrameKind) {
        self.received[kind as usize].messages += 1;
    }

    pub(crate) fn on_bytes_received(&mut self, kind: FrameKind, bytes: usize) {
        self.received[kind as usize].bytes += bytes as u64;
    }

    pub fn sent_of(&self, kind: FrameKind) -> Count {
        self.sent[kind as usize]
    }

    pub fn received_of(&self, kind: FrameKind) -> Count {
        self.received[kind as usize]
    }

    /// All frames sent.
    pub fn messages_sent(&self) -> u64 {
        self.sent.iter().map(|c| c.messages).sum()
    }

    pub fn bytes_sent(&self) -> u64 {
        self.sent.iter().map(|c| c.bytes).sum()
    }

    pub fn messages_received(&self) -> u64 {
        self.received.iter().map(|c| c.messages).sum()
    }

    pub fn bytes_received(&self) -> u64 {
        self.received.iter().map(|c| c.bytes).sum()
    }

    /// Liveness frames sent (heartbeats and batches, with their answers).
    pub fn heartbeat_traffic_sent(&self) -> Count {
        let mut c = Count::default();
        for k in FrameKind::ALL.iter().filter(|k| k.is_heartbeat()) {
            c.messages += self.sent[*k as usize].messages;
            c.bytes += self.sent[*k as usize].bytes;
        }
        c
    }
}
