//! An in-memory [`LogStore`]: what every group runs on. The write-ahead log
//! rebuilds one per group at start, and the node records into it what the
//! host made durable.

use super::{Entry, HardState, LogStore, StorageError};

/// An in-memory [`LogStore`].
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    hard_state: HardState,
    /// Index and term of the entry before `entries[0]` (0/0 for a new log).
    offset_index: u64,
    offset_term: u64,
    entries: Vec<Entry>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Number of bytes of payload held (for statistics).
    pub fn payload_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.data.len() as u64).sum()
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
        let mut out = Vec::new();
        let mut size = 0u64;
        for e in &self.entries[start..end.max(start)] {
            size += e.size();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn append(&mut self, entries: &[Entry]) {
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
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
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
}
