use crate::raft;

/// Why a node refused a call or a message. Errors of the layers around it
/// (bytes, storage, network) belong to those layers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("group {0} not found")]
    NotFound(u64),
    #[error("group {0} already exists")]
    AlreadyExists(u64),
    #[error("this node is not the leader of group {group_id} (leader: {leader}, 0 if unknown)")]
    NotLeader { group_id: u64, leader: u64 },
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    /// Backpressure: the group or the node is over one of its limits on
    /// proposals in flight, bytes not yet durable, or reads pending (see
    /// [`NodeConfig`](super::NodeConfig)); nothing was taken. Retry once
    /// earlier ones are decided (proposals) or reported (reads).
    #[error("group {group_id}: busy, {what} is {value} (limit {limit}); retry once earlier ones are done")]
    Busy {
        group_id: u64,
        what: &'static str,
        value: u64,
        limit: u64,
    },
    /// A message from node `from` addressed to node `to` reached node `me`.
    #[error("message from node {from} to node {to} reached node {me}")]
    WrongDestination { to: u64, from: u64, me: u64 },
    /// The Raft core refused a group (a configuration it cannot run, a
    /// recovered store that contradicts itself).
    #[error("group {group_id}: {source}")]
    Raft {
        group_id: u64,
        #[source]
        source: raft::Error,
    },
}

/// Why an accepted proposal has no committed outcome to report.
///
/// Every accepted proposal gets exactly one outcome: committed at an index
/// (`Ok`), failed for certain ([`Superseded`](ProposalError::Superseded):
/// it is never applied anywhere), or unknown (every other variant: it may
/// have committed on other replicas, and if it did, it is applied like any
/// committed entry, but no second outcome is reported).
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProposalError {
    /// Failed for certain: another leader's entry was committed at its
    /// index, so it can never commit.
    #[error("another entry was committed in the proposal's place")]
    Superseded,
    /// Unknown: this node lost leadership before the proposal was decided
    /// and it was still undecided one election timeout later.
    #[error("leadership was lost before the proposal was decided; it may still commit")]
    LeadershipLost,
    /// Unknown: the group was removed from this node while the proposal was
    /// in flight (it may commit on the other replicas).
    #[error("the group was removed while the proposal was in flight; it may still commit")]
    GroupRemoved,
    /// Unknown: the node stopped before the proposal was decided (it may
    /// still commit on the other replicas).
    #[error("the node stopped before the proposal was decided; it may still commit")]
    Shutdown,
}

impl ProposalError {
    /// Is this a certain failure (the entry is never applied anywhere)?
    /// Otherwise the outcome is unknown.
    pub fn is_certain(self) -> bool {
        matches!(self, ProposalError::Superseded)
    }
}

/// Why a read taken with `Node::read_index` was not served. Reads change
/// nothing, so a failed read is simply taken again (at the new leader).
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    /// This node stopped leading the group before a quorum confirmed the
    /// read.
    #[error("leadership was lost before the read was confirmed")]
    LeadershipLost,
    /// The group was removed from this node while the read was pending.
    #[error("the group was removed while the read was pending")]
    GroupRemoved,
    /// The node stopped while the read was pending.
    #[error("the node stopped while the read was pending")]
    Shutdown,
}
