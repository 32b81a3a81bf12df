//! Where a group's log and hard state live, as the Raft core sees them.
//!
//! [`LogStore`] is what the core reads its log from and records into once
//! the host has made entries durable (`Raft::advance`). It belongs to the
//! protocol, like etcd raft's `storage.go` and raft-rs's `storage.rs`: the
//! durable implementation (the node-wide write-ahead log of the storage
//! layer) rebuilds one [`MemStore`](super::MemStore) per group
//! from disk at start.

use super::{Entry, HardState, SnapshotMeta};

/// Errors a store can report to the Raft core.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StorageError {
    /// The requested index is below the first index the store still holds.
    #[error("index {0} was compacted")]
    Compacted(u64),
    /// The requested index is past the last index.
    #[error("index {0} is not available")]
    Unavailable(u64),
}

/// A group's persisted log as the Raft core sees it.
///
/// Indexes start at 1. `first_index()..=last_index()` are readable; the entry
/// just before `first_index()` (index 0, or the last compacted one) still has
/// a known term so that log matching works across a compaction point.
pub trait LogStore {
    /// Hard state as last recorded.
    fn hard_state(&self) -> HardState;
    fn set_hard_state(&mut self, hs: HardState);
    /// First index with an entry held.
    fn first_index(&self) -> u64;
    /// Last index with an entry (first_index() - 1 when empty).
    fn last_index(&self) -> u64;
    /// Term of the entry at `index`; index first_index()-1 is answered too.
    fn term(&self, index: u64) -> Result<u64, StorageError>;
    /// Entries in `lo..hi`, stopping once `max_bytes` is exceeded (at least
    /// one entry is always returned if the range is non-empty).
    fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError>;
    /// Record entries that are now durable. `entries[0].index` may be at most
    /// `last_index() + 1`; anything at or after it is replaced.
    fn append(&mut self, entries: &[Entry]);
    /// [`append`](LogStore::append), moving the entries in rather than
    /// copying them: what the log does with its unstable entries once they
    /// are durable.
    fn append_drain(&mut self, entries: std::vec::Drain<'_, Entry>) {
        let entries: Vec<Entry> = entries.collect();
        self.append(&entries);
    }
    /// The latest snapshot covering this log (index 0 when there is none).
    fn snapshot(&self) -> &SnapshotMeta;
    /// Record a snapshot taken at `meta.index`, an index this log holds or
    /// held; entries are kept (see [`compact`](LogStore::compact)).
    fn set_snapshot(&mut self, meta: SnapshotMeta);
    /// Drop the entries up to and including `index` (a durable, applied
    /// index); the term at `index` stays known.
    fn compact(&mut self, index: u64);
    /// Replace the whole log by a snapshot received from a leader (now
    /// durable): no entries; the next one follows the snapshot.
    fn apply_snapshot(&mut self, meta: SnapshotMeta);
}
