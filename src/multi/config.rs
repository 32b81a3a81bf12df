//! Settings of a node and the groups it hosts.

/// How a [`Node`](super::Node) and its groups behave.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's id, unique in the cluster, never 0. It is also the replica
    /// id of every group replica this node hosts.
    pub node_id: u64,
    /// Frames carrying another cluster id are rejected.
    pub cluster_id: u64,
    /// Ticks without word from a leader before a follower campaigns; each
    /// group randomizes within `[election_ticks, 2 * election_ticks)`.
    pub election_ticks: u32,
    /// Ticks between heartbeats.
    pub heartbeat_ticks: u32,
    /// One `HeartbeatBatch` per peer per interval (true), or one heartbeat
    /// message per group per follower (false, the naive mode kept for
    /// comparison).
    pub batch_heartbeats: bool,
    /// Idle groups go quiet: no rows, no ticks, until something needs them
    /// (see `quiesce.rs`). Only with `batch_heartbeats`, whose per-pair
    /// batch is the liveness signal that covers quiet groups. Default on.
    pub quiesce: bool,
    /// Named in this node's heartbeat batches so that peers notice a
    /// restart; pick a new random value each time the node starts (0:
    /// derived from `seed`).
    pub session: u64,
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// Larger proposals are refused with `TooLarge`.
    pub max_proposal_bytes: usize,
    /// Entry bytes in one append frame; keeps frames small enough that
    /// heartbeat batches are never stuck behind a huge payload.
    pub max_append_bytes: u64,
    pub max_inflight: usize,
    /// Replicas per group at most.
    pub max_replicas: usize,
    /// Snapshots travel in chunks of this many bytes.
    pub snapshot_chunk_bytes: u64,
    /// A snapshot transfer without progress for this many ticks is
    /// abandoned (and started again by the leader).
    pub snapshot_timeout_ticks: u64,
    /// A follower refuses snapshots larger than this (it holds one whole
    /// in memory while receiving it).
    pub max_snapshot_bytes: u64,
    /// The host is told a group should take a snapshot
    /// ([`Event::SnapshotNeeded`](super::Event::SnapshotNeeded)) once this
    /// many entries were applied since its last one...
    pub snapshot_threshold_entries: u64,
    /// ...or its log holds this many bytes of payload.
    pub snapshot_threshold_bytes: u64,
    /// After a snapshot at index I the log keeps entries after I minus this
    /// many, so that a follower a little behind catches up by appends.
    pub snapshot_trailing_entries: u64,
    /// Seeds the election-timeout randomness of every group (with the group
    /// id), so a simulation replays exactly.
    pub seed: u64,
    /// Backpressure: a proposal to a group that already has this many
    /// proposals in flight (accepted here, not yet decided) is refused with
    /// [`Error::Busy`](super::Error::Busy) at once. `u64::MAX`: no limit.
    pub max_pending_proposals_per_group: u64,
    /// ...or when the node has this many in flight over all its groups.
    pub max_pending_proposals: u64,
    /// ...or when the group's entries not yet durable here hold this many
    /// bytes of payload (a proposal is accepted when none are, whatever its
    /// size up to `max_proposal_bytes`).
    pub max_unsynced_bytes_per_group: u64,
    /// ...or when the node's do, over all its groups.
    pub max_unsynced_bytes: u64,
    /// Reads (`Node::read_index`) taken on a group and not yet reported:
    /// one more is refused with [`Error::Busy`](super::Error::Busy).
    pub max_pending_reads_per_group: u64,
    /// ...or over all the node's groups.
    pub max_pending_reads: u64,
    /// The leader balancer (`balance.rs`): this node hands leaderships of
    /// groups it leads beyond its share to voters that lead less than
    /// theirs, a few at a time. Default off here; an embedded node started
    /// by the runtime turns it on unless told otherwise.
    pub balance_leaders: bool,
    /// Transfers the balancer has in flight at most: bounds how many
    /// groups refuse proposals (for one round trip each) at any moment.
    pub balance_max_transfers: u32,
    /// A leader tells its followers each new commit index at once, by an
    /// empty append when it has no entries for them (true), or lets it ride
    /// on its next append or heartbeat row (false, the default: a group
    /// taking one proposal at a time then sends half the messages, and its
    /// followers apply up to a heartbeat interval later). See
    /// [`crate::raft::Config::broadcast_commit`].
    pub broadcast_commit: bool,
}

impl NodeConfig {
    /// As RabbitMQ's Ra caps a leader's pipeline: enough to keep a group's
    /// appends batched, small enough that a flooded group cannot hold the
    /// node's memory.
    pub const DEFAULT_MAX_PENDING_PROPOSALS_PER_GROUP: u64 = 4096;
    /// Node-wide, sized for latency rather than memory: proposals in flight
    /// over throughput is their queueing delay (4,096 at ~30,000 commits/s
    /// per node: about 140 ms). Deeper queues make every pass heavier: at
    /// 16,384 a minute at twice saturation still saw elections.
    pub const DEFAULT_MAX_PENDING_PROPOSALS: u64 = 4096;
    pub const DEFAULT_MAX_UNSYNCED_BYTES_PER_GROUP: u64 = 16 << 20;
    pub const DEFAULT_MAX_UNSYNCED_BYTES: u64 = 256 << 20;
    /// A read waits at most about one heartbeat interval: 4,096 per group
    /// and 65,536 per node (a few MiB) cover far more reads per interval
    /// than a node serves.
    pub const DEFAULT_MAX_PENDING_READS_PER_GROUP: u64 = 4096;
    pub const DEFAULT_MAX_PENDING_READS: u64 = 65536;
    /// Eight transfers in flight move about 150 leaderships a second with
    /// 50 ms ticks (each takes a round trip and a vote), enough to balance
    /// 1,000 groups in a few seconds, while at most eight groups at a time
    /// pause their proposals for a round trip.
    pub const DEFAULT_BALANCE_MAX_TRANSFERS: u32 = 8;

    pub fn new(node_id: u64) -> NodeConfig {
        NodeConfig {
            node_id,
            cluster_id: 0,
            election_ticks: 10,
            heartbeat_ticks: 2,
            batch_heartbeats: true,
            quiesce: true,
            session: 0,
            pre_vote: true,
            check_quorum: true,
            max_proposal_bytes: 1 << 20,
            max_append_bytes: 256 << 10,
            max_inflight: 256,
            max_replicas: 7,
            snapshot_chunk_bytes: 1 << 20,
            snapshot_timeout_ticks: 600,
            max_snapshot_bytes: 1 << 30,
            snapshot_threshold_entries: 10_000,
            snapshot_threshold_bytes: 8 << 20,
            snapshot_trailing_entries: 1024,
            seed: node_id,
            max_pending_proposals_per_group: Self::DEFAULT_MAX_PENDING_PROPOSALS_PER_GROUP,
            max_pending_proposals: Self::DEFAULT_MAX_PENDING_PROPOSALS,
            max_unsynced_bytes_per_group: Self::DEFAULT_MAX_UNSYNCED_BYTES_PER_GROUP,
            max_unsynced_bytes: Self::DEFAULT_MAX_UNSYNCED_BYTES,
            max_pending_reads_per_group: Self::DEFAULT_MAX_PENDING_READS_PER_GROUP,
            max_pending_reads: Self::DEFAULT_MAX_PENDING_READS,
            balance_leaders: false,
            balance_max_transfers: Self::DEFAULT_BALANCE_MAX_TRANSFERS,
            broadcast_commit: false,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), super::Error> {
        use super::Error::InvalidArgument as bad;
        if self.node_id == 0 {
            return Err(bad("node_id must be non-zero".into()));
        }
        if self.heartbeat_ticks == 0 {
            return Err(bad("heartbeat_ticks must be at least 1".into()));
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(bad("election_ticks must exceed heartbeat_ticks".into()));
        }
        if self.max_proposal_bytes == 0 || self.max_append_bytes == 0 || self.max_inflight == 0 {
            return Err(bad("size limits must be non-zero".into()));
        }
        if self.snapshot_chunk_bytes == 0 || self.snapshot_timeout_ticks == 0 {
            return Err(bad(
                "snapshot_chunk_bytes and snapshot_timeout_ticks must be non-zero".into(),
            ));
        }
        Ok(())
    }

    /// The configuration of this node's replica of `group_id`.
    pub(crate) fn raft_config(
        &self,
        group_id: u64,
        applied: u64,
        can_vote: bool,
    ) -> crate::raft::Config {
        let mut c = crate::raft::Config::new(self.node_id);
        c.election_ticks = self.election_ticks;
        c.heartbeat_ticks = self.heartbeat_ticks;
        // With batching the node decides when heartbeats go out, so every
        // group's land in the same batch.
        c.external_heartbeat = self.batch_heartbeats;
        c.pre_vote = self.pre_vote;
        c.check_quorum = self.check_quorum;
        c.max_append_bytes = self.max_append_bytes;
        c.max_inflight = self.max_inflight;
        c.applied = applied;
        c.can_vote = can_vote;
        c.snapshot_trailing_entries = self.snapshot_trailing_entries;
        c.broadcast_commit = self.broadcast_commit;
        c.seed = mix(self.seed ^ mix(group_id) ^ mix(self.node_id.rotate_left(17)));
        c
    }
}

fn mix(x: u64) -> u64 {
    let mut r = crate::raft::Rng::new(x);
    r.next_u64()
}
