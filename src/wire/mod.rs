//! The byte format: the only code in muxraft that knows how messages look on
//! the wire.
//!
//! # Format
//!
//! Everything one node sends another is a *frame*: a 4-byte big-endian
//! length `N`, then `N` bytes of a protobuf `Envelope` carrying the protocol
//! version, the cluster id, the sending and receiving node ids, and exactly
//! one body:
//!
//! - a **group message**: one Raft [`Message`](crate::raft::Message) for one
//!   group replica, named by (group id, incarnation) (votes, appends, and
//!   their responses; a stand-alone heartbeat is possible too). Its
//!   `from`/`to` are the envelope's, since a group has at most one replica
//!   per node and so replica id == node id;
//! - **group messages**: several group messages between the same two
//!   nodes, of any groups (the codec packs the appends and append answers
//!   one pass sends a peer, up to 256 KiB a frame, so that a busy node
//!   answers a thousand groups with one frame, not a thousand);
//! - a **heartbeat batch**: the heartbeats of every group the sender leads
//!   that has a follower on the receiver, one batch per peer per interval
//!   whatever the number of groups, sent even when empty because the batch
//!   is also the node-level liveness signal. Which incarnation each row's
//!   group is, is proven by one digest for the whole batch (or, after a
//!   mismatch, one incarnation per row): see
//!   [`Incarnations`](crate::multi::Incarnations);
//! - a **heartbeat batch response**: the receiver's per-group answers.
//!
//! The length prefix lets a stream reader check the size against a limit
//! ([`frame_length`]) before it buffers anything, and split a byte stream
//! into frames ([`split_frame`]). The schema (see `proto.rs`) is
//! hand-written prost; field numbers are never reused, and new fields get
//! new numbers so that older peers skip them (a field an older peer must
//! not skip comes with a new [`PROTOCOL_VERSION`]). The heartbeat batch
//! frames, which every node pair exchanges every interval, and the group
//! message frames of the data path are written and read by hand (`columns.rs`,
//! `messages.rs`): the bytes prost writes, and only what prost would read
//! the same (the rest goes to prost).
//!
//! # Why batches are columnar
//!
//! The point of batching is that idle cost is O(peers), not O(groups), so a
//! batch of thousands of groups must stay small. A batch is stored as packed
//! columns (group ids, terms, commits) rather than one sub-message per
//! group, so a group costs only the varint bytes of its values, with group
//! ids sorted and delta-encoded to keep them to one byte when ids are dense.
//! A 1000-group batch with small terms and commits costs about 4 bytes per
//! group, its response about 2 (see `batch.rs`).
//!
//! # Validation
//!
//! Decoding never panics and never allocates more than a small multiple of
//! the input length. It rejects a frame over the caller's size limit, a
//! length prefix that disagrees with the buffer, another protocol version,
//! a zero node id, a missing body, an empty group messages body, an
//! unknown message type or entry kind,
//! and a batch whose group ids are not strictly increasing or whose columns
//! differ in length. Checking the cluster id against the local one is
//! [`Frame::check_cluster`]. What the wire layer does not check is Raft
//! semantics (whether entries are contiguous, whether a term makes sense):
//! that is protocol logic, and belongs to `raft`.

mod batch;
mod columns;
mod frame;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod messages;
mod proto;

pub use frame::{
    decode_frame, decode_frame_bytes, encode_frame, encode_groups_frame, frame_length, split_frame,
    try_encode_frame, Frame, FRAME_HEADER_LEN,
};

/// The version every envelope carries. A peer speaking another version is
/// refused with [`WireError::Version`]; compatible additions (new fields)
/// do not need a new version.
///
/// Version 2 added group incarnations (group messages name theirs, batches
/// prove theirs with a digest): a version 1 peer would accept rows of a
/// removed group's earlier life, so the two do not talk. The group messages
/// body (field 10) is part of version 2 from its start: no release spoke
/// version 2 without it.
///
/// Version 3 added the rejoined marks (a Raft message's field 10, a batch
/// response's column 13): a replica that lost its durable state and
/// rejoined its group says so, and its leader counts it in no quorum. A
/// version 2 node decodes through prost, which skips fields it does not
/// know, so a version 2 leader would silently ignore the mark and count the
/// rejoined replica toward its quorums (commit, read confirmation,
/// CheckQuorum): unsafe, so the two do not talk.
pub const PROTOCOL_VERSION: u32 = 3;

/// The default limit on the envelope size of one frame (the bytes after the
/// length prefix). Appends are split well below this by the Raft layer; the
/// limit exists so that a corrupt or hostile length prefix cannot make a
/// reader buffer gigabytes.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 << 20;

/// Why a frame could not be decoded (or encoded within a size limit).
///
/// Every variant means the frame must be dropped (and counted); on a stream,
/// any error from [`split_frame`] or [`frame_length`] means the stream can no
/// longer be split into frames and the connection must be closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The envelope is longer than the limit the caller set.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// The buffer ends before the frame its length prefix announces.
    #[error("truncated frame: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    /// The bytes are not a valid frame; the string says what is wrong.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The peer speaks another protocol version.
    #[error("unsupported protocol version {0} (this node speaks version {PROTOCOL_VERSION})")]
    Version(u32),
    /// The frame belongs to another cluster: a misconfigured peer, which
    /// must never be allowed to step a group.
    #[error("frame from cluster {actual}, but this node is in cluster {expected}")]
    ClusterMismatch { expected: u64, actual: u64 },
}
