//! An in-memory [`LogStore`]: what every group runs on. The write-ahead log
//! rebuilds one per group at start, and the node records into it what the
//! host made durable.

use super::{Entry, HardState, LogStore, SnapshotMeta, StorageError};

/// An in-memory [`LogStore`].
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    hard_state: HardState,
    /// Index and term of the entry before `entries[0]` (0/0 for a new log):
    /// the compaction point.
    offset_index: u64,
    offset_term: u64,
    entries: Vec<Entry>,
    /// The latest snapshot; at or after the compaction point (a trailing
    /// window of entries may be kept below it).
    snapshot: SnapshotMeta,
    /// Bytes of payload held.
    bytes: u64,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// A log rebuilt from durable state: `snapshot`, then `entries`
    /// following the compaction point (`compacted_index`, `compacted_term`).
    pub fn restored(
        hs: HardState,
        snapshot: SnapshotMeta,
        compacted_index: u64,
        compacted_term: u64,
        entries: Vec<Entry>,
    ) -> MemStore {
        debug_assert!(compacted_index <= snapshot.index.max(compacted_index));
        let mut s = MemStore {
            hard_state: hs,
            offset_index: compacted_index,
            offset_term: compacted_term,
            entries: Vec::new(),
            snapshot,
            bytes: 0,
        };
        s.append(&entries);
        s
    }

    /// Cut the log where `entries` (about to be appended) begin, and count
    /// their payload in.
    fn make_room(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        assert!(
            first.index > self.offset_index && first.index <= self.last_index() + 1,
            "append at {} leaves a gap after {}",
            first.index,
            self.last_index()
        );
        let keep = (first.index - self.offset_index - 1) as usize;
        let dropped: u64 = self.entries[keep.min(self.entries.len())..]
            .iter()
            .map(|e| e.data.len() as u64)
            .sum();
        self.entries.truncate(keep);
        self.bytes =
            self.bytes - dropped + entries.iter().map(|e| e.data.len() as u64).sum::<u64>();
    }

    /// Number of bytes of payload held (for statistics).
    pub fn payload_bytes(&self) -> u64 {
        self.bytes
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl LogStore for MemStore {
    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    fn first_index(&self) -> u64 {
        self.offset_index + 1
    }

    fn last_index(&self) -> u64 {
        self.offset_index + self.entries.len() as u64
    }

    fn term(&self, index: u64) -> Result<u64, StorageError> {
        if index == self.offset_index {
            return Ok(self.offset_term);
        }
        if index < self.offset_index {
            return Err(StorageError::Compacted(index));
        }
        let i = (index - self.offset_index - 1) as usize;
        self.entries
            .get(i)
            .map(|e| e.term)
            .ok_or(StorageError::Unavailable(index))
    }

    fn entries(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        if lo <= self.offset_index {
            return Err(StorageError::Compacted(lo));
        }
        if hi > self.last_index() + 1 {
            return Err(StorageError::Unavailable(hi));
        }
        let start = (lo - self.offset_index - 1) as usize;
        let end = (hi - self.offset_index - 1) as usize;
        let range = &self.entries[start..end.max(start)];
        // Sized for the whole range (a pointer and a few words per entry,
        // bounded by what the log holds): most calls return all of it.
        let mut out = super::entry_lists::take(range.len());
        let mut size = 0u64;
        for e in range {
            size += e.size();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn append(&mut self, entries: &[Entry]) {
        self.make_room(entries);
        self.entries.extend_from_slice(entries);
    }

    fn append_drain(&mut self, entries: std::vec::Drain<'_, Entry>) {
        self.make_room(entries.as_slice());
        self.entries.extend(entries);
    }

    fn snapshot(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// Record a snapshot taken at `meta.index`, which this log holds (or
    /// held). Entries are kept; [`compact`](Self::compact) drops them.
    fn set_snapshot(&mut self, meta: SnapshotMeta) {
        debug_assert!(meta.index >= self.snapshot.index);
        self.snapshot = meta;
    }

    /// Drop the entries up to and including `index` (at most the last
    /// index). The term of `index` is kept, so that log matching works
    /// across the compaction point. Memory is given back.
    fn compact(&mut self, index: u64) {
        if index <= self.offset_index {
            return;
        }
        let index = index.min(self.last_index());
        let Ok(term) = self.term(index) else {
            return;
        };
        let n = (index - self.offset_index) as usize;
        let freed: u64 = self.entries[..n].iter().map(|e| e.data.len() as u64).sum();
        self.entries.drain(..n);
        if self.entries.capacity() > 64 && self.entries.capacity() > 4 * self.entries.len() {
            self.entries.shrink_to(2 * self.entries.len());
        }
        self.bytes -= freed;
        self.offset_index = index;
        self.offset_term = term;
    }

    /// Replace the whole log by a snapshot received from a leader: no
    /// entries, the next one after the snapshot.
    fn apply_snapshot(&mut self, meta: SnapshotMeta) {
        self.entries = Vec::new();
        self.bytes = 0;
        self.offset_index = meta.index;
        self.offset_term = meta.term;
        self.snapshot = meta;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::EntryKind;
    use bytes::Bytes;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            kind: EntryKind::Normal,
            data: Bytes::from(vec![0u8; 10]),
        }
    }

    #[test]
    fn append_drain_moves_what_append_copies() {
        let mut copied = MemStore::new();
        let mut moved = MemStore::new();
        let mut first = vec![ent(1, 1), ent(2, 1), ent(3, 1)];
        copied.append(&first);
        moved.append_drain(first.drain(..2));
        moved.append_drain(first.drain(..));
        let mut second = vec![ent(2, 2), ent(3, 2)];
        copied.append(&second[..1]);
        moved.append_drain(second.drain(..1));
        assert!(second.len() == 1 && first.is_empty());
        assert_eq!(
            (moved.last_index(), moved.term(2), moved.payload_bytes()),
            (2, Ok(2), 20)
        );
        assert_eq!(moved.entries, copied.entries);
        assert_eq!(moved.bytes, copied.bytes);
    }

    #[test]
    fn append_replaces_conflicting_suffix() {
        let mut s = MemStore::new();
        s.append(&[ent(1, 1), ent(2, 1), ent(3, 1)]);
        s.append(&[ent(2, 2)]);
        assert_eq!(s.last_index(), 2);
        assert_eq!(s.term(2), Ok(2));
        assert_eq!(s.term(0), Ok(0));
        assert_eq!(s.term(3), Err(StorageError::Unavailable(3)));
    }

    #[test]
    fn entries_respects_size_but_returns_at_least_one() {
        let mut s = MemStore::new();
        s.append(&[ent(1, 1), ent(2, 1), ent(3, 1)]);
        assert_eq!(s.entries(1, 4, 0).unwrap().len(), 1);
        assert_eq!(s.entries(1, 4, 52).unwrap().len(), 2);
        assert_eq!(s.entries(1, 4, u64::MAX).unwrap().len(), 3);
        assert!(s.entries(0, 2, 100).is_err());
        assert!(s.entries(1, 5, 100).is_err());
    }

    #[test]
    fn compaction_keeps_the_term_of_its_point_and_frees_the_entries() {
        let mut s = MemStore::new();
        s.append(&[ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2)]);
        assert_eq!(s.payload_bytes(), 40);
        s.compact(2);
        assert_eq!((s.first_index(), s.last_index()), (3, 4));
        assert_eq!(s.term(2), Ok(1), "log matching across the point");
        assert_eq!(s.term(1), Err(StorageError::Compacted(1)));
        assert!(s.entries(2, 4, u64::MAX).is_err());
        assert_eq!(s.entries(3, 5, u64::MAX).unwrap().len(), 2);
        assert_eq!(s.payload_bytes(), 20);
        s.compact(1); // already compacted: nothing
        assert_eq!(s.first_index(), 3);
        s.append(&[ent(5, 3)]);
        assert_eq!(s.last_index(), 5);
    }

    #[test]
    fn an_installed_snapshot_replaces_the_log() {
        let mut s = MemStore::new();
        s.append(&[ent(1, 1), ent(2, 1)]);
        let meta = SnapshotMeta {
            index: 10,
            term: 3,
            voters: vec![1, 2, 3],
            ..Default::default()
        };
        s.apply_snapshot(meta.clone());
        assert_eq!((s.first_index(), s.last_index()), (11, 10));
        assert_eq!(s.term(10), Ok(3));
        assert_eq!(s.snapshot(), &meta);
        assert_eq!(s.payload_bytes(), 0);
        s.append(&[ent(11, 3)]);
        assert_eq!(s.last_index(), 11);
    }
}
