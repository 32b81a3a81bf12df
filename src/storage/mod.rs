//! Durable storage: the node-wide write-ahead log shared by every group of
//! a node ([`Wal`]), and the file-system seam it runs on ([`WalFs`]:
//! [`RealFs`] on disk, or [`MemFs`] in memory with simulated crashes, for
//! tests and simulations).
//!
//! The storage interface the Raft core reads its log through
//! ([`LogStore`](crate::raft::LogStore)) and the in-memory store recovery
//! rebuilds each group into ([`MemStore`](crate::raft::MemStore)) belong to
//! the protocol and live in [`raft`](crate::raft); this layer depends on
//! `raft` only for those types.

mod snapshots;
mod wal;

pub use snapshots::{SnapshotStore, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};

pub use wal::{
    crc32c, MemFs, MemFsStats, Pinned, RealFs, Recovered, RecoveredGroup, SegmentInfo, Wal,
    WalBatch, WalError, WalFile, WalFs, WalOptions, WalStats, MEMFS_PAGE,
};
