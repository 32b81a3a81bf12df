//! One Raft group as a deterministic state machine.
//!
//! No clocks (time is [`Raft::tick`]), no threads, no sockets, no files. The
//! host feeds it ticks, messages and proposals, and takes back a [`Ready`]:
//! what to persist, what to send, what to apply. Heartbeats are their own
//! message kind carrying only term and a clamped commit index, so the multi
//! layer can batch them per peer without the group knowing.
//!
//! Files: `core.rs` (state, term rules, roles), `election.rs`,
//! `replication.rs` (appends, heartbeats, commit), `read.rs` (the read
//! index), `transfer.rs` (leadership transfer), `membership.rs`
//! (membership changes), `progress.rs` (the
//! leader's view of each follower), `quorum.rs`, `log.rs` (durable +
//! unstable log), `ready.rs` (the host contract), `storage.rs` (the
//! `LogStore` interface the log is read through) and `mem_store.rs` (the
//! in-memory `LogStore`).

mod config;
mod core;
mod election;
pub(crate) mod entry_lists;
mod log;
mod mem_store;
mod membership;
mod message;
mod progress;
mod quiet;
mod quorum;
mod read;
mod ready;
mod replica_map;
mod replication;
mod rng;
mod storage;
mod transfer;

pub use self::config::Config;
pub use self::core::{Proposed, Raft, Role, Status};
pub use self::election::Predecessor;
pub use self::log::RaftLog;
pub use self::mem_store::MemStore;
pub use self::membership::{ConfChange, MemberRole, Membership, MAX_MEMBERS};
pub use self::message::*;
pub use self::progress::{Progress, ProgressState};
pub use self::read::ReadState;
pub use self::ready::Ready;
pub use self::rng::Rng;
pub use self::storage::{LogStore, StorageError};

/// Why the core refused a call.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    #[error("not the leader (leader is {leader}, 0 if unknown)")]
    NotLeader { leader: ReplicaId },
    #[error("message addressed to replica {to}, not this one")]
    NotForMe { to: ReplicaId },
    #[error("message from replica {0}, which is not a member of this group")]
    UnknownPeer(ReplicaId),
    /// A message no correct replica sends (refused, nothing changed).
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    #[error("stored state is inconsistent: {0}")]
    Corrupt(String),
    /// A snapshot the host reported cannot be taken (not applied yet, not
    /// newer than the current one).
    #[error("snapshot refused: {0}")]
    Snapshot(String),
    /// A leadership transfer to a replica that is not a voter, or that
    /// rejoined without its disk and so never votes or leads.
    #[error("leadership transfer refused: replica {0} is not a voter of the group")]
    TransferNotVoter(ReplicaId),
    /// A leadership transfer to a replica the leader is not replicating to
    /// (unreachable, probing, or receiving a snapshot).
    #[error("leadership transfer refused: replica {0} is not caught up")]
    TransferNotCaughtUp(ReplicaId),
    /// A membership change while another is in flight, or before the
    /// leader committed an entry of its term (`membership.rs`).
    #[error("membership change refused: another change is in flight or the leader is new")]
    ConfChangeBusy,
    /// A membership change that cannot be made.
    #[error("membership change refused: {0}")]
    ConfChangeInvalid(&'static str),
}

#[cfg(test)]
mod tests;
