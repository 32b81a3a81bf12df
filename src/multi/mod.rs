//! Many groups on one node: the group registry, tick fan-out, message
//! routing, and the heartbeat mux that sends one batch per peer per interval
//! whatever the number of groups (`heartbeat.rs`).
//!
//! Files: `node.rs` (the node: groups come and go, inputs in, `NodeReady`
//! out), `heartbeat.rs` (the mux and demux, and how batches prove their
//! rows' incarnations), `message.rs` (the typed messages between nodes),
//! `outbox.rs` (messages waiting for the next `ready`), `liveness.rs` and
//! `quiesce.rs` (node-level liveness, idle groups going quiet), `group.rs` (one
//! group and its proposals), `key_metrics.rs` (a few numbers per group that
//! any thread reads without the node's lock), `proposals.rs` (deadlines of undecided
//! proposals), `snapshot.rs` (snapshots sent to followers in chunks),
//! `registry.rs` (groups by id), `config.rs`, `error.rs`, `stats.rs`. This
//! layer never sees bytes: `wire` encodes its messages.

mod balance;
mod config;
mod error;
mod group;
mod heartbeat;
mod key_metrics;
mod liveness;
mod membership;
mod message;
mod node;
mod outbox;
mod proposals;
mod quiesce;
mod registry;
mod snapshot;
mod stats;

pub use config::NodeConfig;
pub use error::{Error, ProposalError, ReadError};
pub use key_metrics::{KeyMetrics, KeyMetricsTable};
pub use membership::MemberInfo;
pub(crate) use message::msg_kind;
pub use message::{
    incarnation_digest, incarnation_row_hash, Body, Envelope, GroupHeartbeat,
    GroupHeartbeatResponse, GroupMessage, HeartbeatBatch, HeartbeatBatchResponse, Incarnations,
    SnapshotAck, SnapshotChunk,
};
pub use node::{Event, GroupReady, Node, NodeReady, Removed};
pub use quiesce::{QuietGauges, QUIET_INTERVALS};
pub use stats::{Count, FrameKind, Stats, WakeCause};

#[cfg(test)]
mod balance_tests;
#[cfg(test)]
mod compact_tests;
#[cfg(test)]
mod grow_tests;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transfer_tests;
