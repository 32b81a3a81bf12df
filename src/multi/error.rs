use crate::wire::WireError;

/// Why a node refused a call or a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("group {0} not found")]
    NotFound(u64),
    #[error("group {0} already exists")]
    AlreadyExists(u64),
    #[error("this node is not the leader of group {group} (leader: {leader}, 0 if unknown)")]
    NotLeader { group: u64, leader: u64 },
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("malformed frame: {0}")]
    Malformed(WireError),
    #[error("frame from cluster {got}, this node is in cluster {expected}")]
    WrongCluster { expected: u64, got: u64 },
    #[error("frame addressed to node {to}, this is node {me}")]
    WrongDestination { to: u64, me: u64 },
    /// Writing to durable storage failed.
    #[error("storage failed: {0}")]
    Storage(String),
    #[error("stored state of group {group} is unusable: {reason}")]
    Corrupt { group: u64, reason: String },
}

/// Why an accepted proposal did not commit.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProposalError {
    /// Leadership moved and the new leader's log replaced the entry.
    #[error("leadership changed before the proposal committed")]
    LeaderChanged,
    /// The group was removed from this node.
    #[error("the group was removed")]
    GroupRemoved,
    /// The node stopped before the proposal committed. It may still commit
    /// (other replicas have it); its outcome is unknown here.
    #[error("the node stopped before the proposal committed")]
    Shutdown,
}
