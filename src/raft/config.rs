//! Settings of one Raft replica.

use super::ReplicaId;

/// How one replica behaves. Times are in ticks: the host decides how long a
/// tick is.
#[derive(Clone, Debug)]
pub struct Config {
    /// This replica's id (its node's id); never 0.
    pub id: ReplicaId,
    /// A follower that hears nothing from a leader for a random number of
    /// ticks in `[election_ticks, 2 * election_ticks)` starts an election.
    pub election_ticks: u32,
    /// A leader sends heartbeats every `heartbeat_ticks` ticks.
    pub heartbeat_ticks: u32,
    /// When true, `tick` never sends heartbeats: the host calls
    /// [`Raft::broadcast_heartbeat`](super::Raft::broadcast_heartbeat) once per
    /// interval instead. The multi layer uses it to send every group's
    /// heartbeats to a peer in one batch at one instant.
    pub external_heartbeat: bool,
    /// Ask for pre-votes before disrupting the cluster with a new term.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout
    /// steps down; a follower that heard from a leader within one refuses
    /// votes.
    pub check_quorum: bool,
    /// Upper bound on the entry bytes of one append message.
    pub max_append_bytes: u64,
    /// Appends in flight per follower in replicate state.
    pub max_inflight: usize,
    /// Upper bound on the entry bytes handed out for applying in one `Ready`.
    pub max_apply_bytes: u64,
    /// Index the host's state machine has already applied (on restart).
    pub applied: u64,
    /// When the host takes a snapshot at index I, the log keeps the entries
    /// from I − `snapshot_trailing_entries` + 1 on, so that a follower a
    /// little behind catches up by appends rather than by a snapshot.
    pub snapshot_trailing_entries: u64,
    /// False for a replica whose durable state was lost (its node's data
    /// directory was wiped) and that rejoins its group: it may have voted in
    /// terms it no longer knows of, and acknowledged entries it no longer
    /// holds, so it never votes, never campaigns and never grants a
    /// pre-vote. It still replicates, but its messages say it rejoined
    /// (`Message::rejoined`) and its leader counts it in no quorum.
    pub can_vote: bool,
    /// Seed of the replica's election-timeout randomness: the same seed gives
    /// the same timeouts, which is what makes simulations replayable.
    pub seed: u64,
    /// A leader that commits tells every follower at once, with an empty
    /// append for any follower it has no entries for (true); or lets the
    /// new commit index ride on its next append or heartbeat (false), so
    /// that a steady stream of single proposals costs two messages per
    /// follower and commit rather than four. Followers then learn of
    /// commits, and apply them, up to a heartbeat interval later; the
    /// leader's commits and answers are as prompt either way. A commit
    /// that reaches a membership change the leader has not applied yet is
    /// always told at once.
    pub broadcast_commit: bool,
}

impl Config {
    pub fn new(id: ReplicaId) -> Config {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 2,
            external_heartbeat: false,
            pre_vote: true,
            check_quorum: true,
            max_append_bytes: 1 << 20,
            max_inflight: 256,
            max_apply_bytes: 4 << 20,
            applied: 0,
            snapshot_trailing_entries: 1024,
            can_vote: true,
            seed: id,
            broadcast_commit: true,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), super::Error> {
        use super::Error::InvalidConfig;
        if self.id == super::NONE {
            return Err(InvalidConfig("replica id must not be 0"));
        }
        if self.heartbeat_ticks == 0 {
            return Err(InvalidConfig("heartbeat_ticks must be at least 1"));
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(InvalidConfig("election_ticks must exceed heartbeat_ticks"));
        }
        if self.max_inflight == 0 {
            return Err(InvalidConfig("max_inflight must be at least 1"));
        }
        Ok(())
    }
}
