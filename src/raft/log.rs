//! The log as the Raft core sees it: entries already recorded in the
//! [`LogStore`] followed by entries not yet durable ("unstable"), plus the
//! commit and apply positions.

use super::{Entry, HardState, SnapshotMeta};
use super::{LogStore, StorageError};

pub struct RaftLog<S: LogStore> {
    pub(crate) store: S,
    /// A snapshot received from a leader that replaces the whole log, not
    /// yet made durable by the host (handed out in the next `Ready`).
    pending_snapshot: Option<SnapshotMeta>,
    /// Whether `pending_snapshot` was already handed out in a `Ready`.
    pending_snapshot_in_ready: bool,
    /// Entries not yet handed back through `advance`, starting at
    /// `unstable_offset`. They may overwrite a suffix of the store (a
    /// follower truncating a conflicting tail).
    unstable: Vec<Entry>,
    unstable_offset: u64,
    /// Payload bytes of `unstable`, kept as it changes: backpressure reads
    /// it on every proposal.
    unstable_bytes: u64,
    /// How many unstable entries were already handed out in a `Ready`.
    unstable_in_ready: usize,
    pub committed: u64,
    pub applied: u64,
}

impl<S: LogStore> RaftLog<S> {
    pub fn new(store: S, applied: u64) -> RaftLog<S> {
        let hs = store.hard_state();
        let first = store.first_index();
        let unstable_offset = store.last_index() + 1;
        // A snapshot holds only committed entries: its index is committed
        // even if the hard state saved with it is older (a snapshot install
        // can become durable before the commit that came with it).
        let committed = hs.commit.max(first - 1);
        // Never claim to have applied something not committed, nor less than
        // what was compacted away.
        let applied = applied.min(committed).max(first - 1);
        RaftLog {
            store,
            pending_snapshot: None,
            pending_snapshot_in_ready: false,
            unstable: Vec::new(),
            unstable_offset,
            unstable_bytes: 0,
            unstable_in_ready: 0,
            committed,
            applied,
        }
    }

    pub fn last_index(&self) -> u64 {
        match (self.unstable.len(), &self.pending_snapshot) {
            (0, Some(s)) => s.index,
            (0, None) => self.store.last_index(),
            (n, _) => self.unstable_offset + n as u64 - 1,
        }
    }

    pub fn first_index(&self) -> u64 {
        match &self.pending_snapshot {
            Some(s) => s.index + 1,
            None => self.store.first_index(),
        }
    }

    /// The latest snapshot covering this log (a received one not yet
    /// durable included).
    pub fn snapshot(&self) -> &SnapshotMeta {
        self.pending_snapshot
            .as_ref()
            .unwrap_or_else(|| self.store.snapshot())
    }

    /// Replace the whole log by a snapshot from a leader: nothing before or
    /// at its index remains, its index is committed, and the host must make
    /// it durable (and restore its state machine from it) before anything
    /// after it is applied.
    pub fn restore(&mut self, meta: SnapshotMeta) {
        self.unstable_offset = meta.index + 1;
        self.unstable.clear();
        self.unstable_bytes = 0;
        self.unstable_in_ready = 0;
        self.committed = meta.index;
        self.pending_snapshot = Some(meta);
        self.pending_snapshot_in_ready = false;
    }

    pub fn has_pending_snapshot_for_ready(&self) -> bool {
        self.pending_snapshot.is_some() && !self.pending_snapshot_in_ready
    }

    /// The received snapshot to hand out in a `Ready`, once.
    pub fn pending_snapshot_for_ready(&mut self) -> Option<SnapshotMeta> {
        if self.pending_snapshot_in_ready {
            return None;
        }
        self.pending_snapshot_in_ready = true;
        self.pending_snapshot.clone()
    }

    /// The host made the received snapshot `meta` durable and restored its
    /// state machine from it.
    pub fn snapshot_stable(&mut self, meta: &SnapshotMeta) {
        if self.pending_snapshot.as_ref() != Some(meta) {
            return; // replaced by a later one since
        }
        self.pending_snapshot = None;
        self.pending_snapshot_in_ready = false;
        self.store.apply_snapshot(meta.clone());
        self.applied = self.applied.max(meta.index);
    }

    /// Term of the entry at `index`; 0 past the end or before the log.
    pub fn term(&self, index: u64) -> Result<u64, StorageError> {
        if let Some(s) = &self.pending_snapshot {
            if index == s.index {
                return Ok(s.term);
            }
            if index < s.index {
                return Err(StorageError::Compacted(index));
            }
        }
        if index >= self.unstable_offset {
            let i = (index - self.unstable_offset) as usize;
            return self
                .unstable
                .get(i)
                .map(|e| e.term)
                .ok_or(StorageError::Unavailable(index));
        }
        self.store.term(index)
    }

    /// Like `term` but folding "no such entry" into 0, which never matches a
    /// real term: for comparisons only.
    pub fn term_or_zero(&self, index: u64) -> u64 {
        self.term(index).unwrap_or(0)
    }

    pub fn last_term(&self) -> u64 {
        self.term_or_zero(self.last_index())
    }

    pub fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index).map(|t| t == term).unwrap_or(false)
    }

    /// Is a log ending at (`last_index`, `last_term`) at least as up to date
    /// as ours (Raft §5.4.1)?
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        let our_term = self.last_term();
        last_term > our_term || (last_term == our_term && last_index >= self.last_index())
    }

    /// Entries in `lo..=last_index()`, at most `max_bytes` (at least one).
    pub fn entries_from(&self, lo: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        self.slice(lo, self.last_index() + 1, max_bytes)
    }

    pub fn slice(&self, lo: u64, hi: u64, max_bytes: u64) -> Result<Vec<Entry>, StorageError> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        if self
            .pending_snapshot
            .as_ref()
            .is_some_and(|s| lo <= s.index)
        {
            return Err(StorageError::Compacted(lo));
        }
        let mut out = Vec::new();
        let mut size = 0u64;
        if lo < self.unstable_offset {
            out = self
                .store
                .entries(lo, hi.min(self.unstable_offset), max_bytes)?;
            size = out.iter().map(Entry::size).sum();
            let reached = lo + out.len() as u64;
            if reached < hi.min(self.unstable_offset) {
                return Ok(out); // size limit hit inside the store
            }
        }
        if hi > self.unstable_offset {
            let from = lo.max(self.unstable_offset);
            let start = (from - self.unstable_offset) as usize;
            let end = ((hi - self.unstable_offset) as usize).min(self.unstable.len());
            let range = self.unstable.get(start..end).unwrap_or(&[]);
            if out.capacity() == 0 {
                out = super::entry_lists::take(range.len());
            } else {
                out.reserve(range.len());
            }
            for e in range {
                size += e.size();
                if !out.is_empty() && size > max_bytes {
                    break;
                }
                out.push(e.clone());
            }
        }
        Ok(out)
    }

    /// Append entries the leader created itself. Returns the new last index.
    pub fn append(&mut self, entries: &[Entry]) -> u64 {
        if let Some(first) = entries.first() {
            self.truncate_and_append(first.index, entries.iter().cloned());
        }
        self.last_index()
    }

    /// Replace the log from `at` on with `entries` (moved in: a follower's
    /// come from the append it steps, and cloning each entry's payload
    /// handle cost an allocation per entry).
    fn truncate_and_append(&mut self, at: u64, entries: impl IntoIterator<Item = Entry>) {
        debug_assert!(at > self.committed, "truncating committed entry {at}");
        let next = self.unstable_offset + self.unstable.len() as u64;
        if at <= self.unstable_offset {
            // Replaces part of the store (or nothing of it, when the
            // unstable part was empty): the host must overwrite it.
            self.unstable_offset = at;
            self.unstable.clear();
            self.unstable_in_ready = 0;
            self.unstable_bytes = 0;
        } else if at < next {
            let keep = (at - self.unstable_offset) as usize;
            self.unstable_bytes -= payload_bytes(&self.unstable[keep..]);
            self.unstable.truncate(keep);
            self.unstable_in_ready = self.unstable_in_ready.min(keep);
        }
        let from = self.unstable.len();
        self.unstable.extend(entries);
        self.unstable_bytes += payload_bytes(&self.unstable[from..]);
    }

    /// A follower's consistency check and append (Raft Fig. 2, AppendEntries
    /// steps 2–5). Returns the last index now known to match the leader and,
    /// if a conflicting suffix was replaced, the first index replaced; None
    /// when the log does not contain (`index`, `log_term`).
    pub fn maybe_append(
        &mut self,
        index: u64,
        log_term: u64,
        commit: u64,
        mut entries: Vec<Entry>,
    ) -> Option<(u64, Option<u64>)> {
        if !self.match_term(index, log_term) {
            return None;
        }
        let last_new = index + entries.len() as u64;
        // Skip the prefix we already hold; an existing entry that conflicts
        // (same index, other term) and everything after it is replaced.
        let conflict = entries
            .iter()
            .position(|e| !self.match_term(e.index, e.term));
        let mut replaced = None;
        if let Some(pos) = conflict {
            let at = entries[pos].index;
            if at <= self.last_index() {
                replaced = Some(at);
            }
            if at <= self.committed {
                // A leader never sends entries that conflict with committed
                // ones; refusing keeps a corrupt or malicious peer from
                // rewriting history.
                tracing::error!(
                    at,
                    committed = self.committed,
                    "append conflicts with committed entry"
                );
                return None;
            }
            entries.drain(..pos);
            self.truncate_and_append(at, entries.drain(..));
        }
        // The list's room serves the next list this thread makes.
        super::entry_lists::give(entries);
        // Only what this append verified may be committed from it.
        self.commit_to(commit.min(last_new));
        Some((last_new, replaced))
    }

    /// The follower's hint for fast back-off: the largest index ≤ `index`
    /// whose term is ≤ `term`. The leader can skip everything after it.
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let mut i = index.min(self.last_index());
        loop {
            match self.term(i) {
                Ok(t) if t > term => i -= 1,
                Ok(t) => return (i, t),
                Err(_) => return (i, 0),
            }
            if i == 0 {
                return (0, 0);
            }
        }
    }

    pub fn commit_to(&mut self, index: u64) {
        if index > self.committed {
            debug_assert!(index <= self.last_index(), "commit {index} past last");
            self.committed = index.min(self.last_index());
        }
    }

    /// Committed entries not yet handed out for applying, at most `max_bytes`.
    /// None while a received snapshot waits to be restored: nothing after it
    /// may be applied before it.
    pub fn next_committed(&self, max_bytes: u64) -> Vec<Entry> {
        if self.pending_snapshot.is_some() {
            return Vec::new();
        }
        self.slice(self.applied + 1, self.committed + 1, max_bytes)
            .unwrap_or_default()
    }

    pub fn has_next_committed(&self) -> bool {
        self.committed > self.applied && self.pending_snapshot.is_none()
    }

    pub fn applied_to(&mut self, index: u64) {
        if index > self.applied {
            debug_assert!(index <= self.committed);
            self.applied = index;
        }
    }

    /// Unstable entries not yet handed out in a `Ready`.
    pub fn unstable_for_ready(&mut self) -> Vec<Entry> {
        let new = &self.unstable[self.unstable_in_ready..];
        let mut out = super::entry_lists::take(new.len());
        out.extend_from_slice(new);
        self.unstable_in_ready = self.unstable.len();
        out
    }

    /// Is every entry in the log durable (recorded in the store)?
    pub fn all_stable(&self) -> bool {
        self.unstable.is_empty() && self.pending_snapshot.is_none()
    }

    pub fn has_unstable_for_ready(&self) -> bool {
        self.unstable_in_ready < self.unstable.len()
    }

    /// The host made entries up to (`index`, `term`) durable: move them into
    /// the store. A mismatch means the entry was replaced since; keep it.
    pub fn stable_to(&mut self, index: u64, term: u64, hs: Option<HardState>) {
        if let Some(hs) = hs {
            self.store.set_hard_state(hs);
        }
        if index < self.unstable_offset || !self.match_term(index, term) {
            return;
        }
        let n = (index - self.unstable_offset + 1) as usize;
        self.unstable_bytes -= payload_bytes(&self.unstable[..n]);
        self.store.append_drain(self.unstable.drain(..n));
        self.unstable_offset = index + 1;
        self.unstable_in_ready = self.unstable_in_ready.saturating_sub(n);
    }

    /// The last index of the durable log (the store's; entries after it
    /// are not yet durable).
    pub fn stable_last_index(&self) -> u64 {
        self.unstable_offset - 1
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Bytes of payload of the entries not yet durable. O(1).
    pub fn unstable_payload_bytes(&self) -> u64 {
        debug_assert_eq!(self.unstable_bytes, payload_bytes(&self.unstable));
        self.unstable_bytes
    }

    /// The host took a snapshot at `meta.index` (applied, and durable in
    /// this log): record it, and drop the durable entries up to `compact_to`.
    pub fn snapshot_taken(&mut self, meta: SnapshotMeta, compact_to: u64) {
        self.store.set_snapshot(meta);
        let upto = compact_to
            .min(self.applied)
            .min(self.unstable_offset.saturating_sub(1));
        self.store.compact(upto);
    }
}

fn payload_bytes(entries: &[Entry]) -> u64 {
    entries.iter().map(|e| e.data.len() as u64).sum()
}
