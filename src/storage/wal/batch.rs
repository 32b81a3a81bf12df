//! [`WalBatch`]: the writes of one `ready()` pass, for all groups, encoded
//! as they are added so that [`Wal::write`](super::Wal::write) only frames
//! them, writes them and syncs.

use super::record;
use crate::raft::{Entry, HardState};

/// What one record of a batch does to the bookkeeping, kept next to its
/// bytes so the WAL can update its view once the batch is durable.
#[derive(Debug)]
pub(super) enum Op {
    Create {
        group: u64,
        incarnation: u64,
        members: Vec<u64>,
        /// Where the record starts in the batch buffer (for its creation).
        offset: usize,
    },
    Remove {
        group: u64,
    },
    /// `incarnation` is checked against the live group, not written.
    HardState {
        group: u64,
        incarnation: u64,
        hs: HardState,
    },
    /// `incarnation` is checked against the live group, not written.
    Entries {
        group: u64,
        incarnation: u64,
        first: u64,
        last: u64,
    },
}

/// One unit of writes, usually everything one node `ready()` pass produced
/// for all its groups. Records are applied in the order they were added.
#[derive(Default)]
pub struct WalBatch {
    pub(super) buf: Vec<u8>,
    pub(super) ops: Vec<Op>,
    /// Set when the caller added something that cannot be written; `write`
    /// refuses the whole batch with this reason.
    pub(super) invalid: Option<String>,
}

impl std::fmt::Debug for WalBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalBatch")
            .field("records", &self.ops.len())
            .field("bytes", &self.buf.len())
            .field("invalid", &self.invalid)
            .finish()
    }
}

impl WalBatch {
    pub fn new() -> WalBatch {
        WalBatch::default()
    }

    /// Create `group_id` with these members (voters, by node id).
    /// `incarnation` is the host's number for this life of the group id (the
    /// same on every member); it is stored, recovered
    /// ([`RecoveredGroup::incarnation`](super::RecoveredGroup::incarnation))
    /// and checked against every later record of the group.
    pub fn create_group(&mut self, group_id: u64, incarnation: u64, members: &[u64]) {
        let offset = self.buf.len();
        if let Err(e) = record::encode_create(&mut self.buf, group_id, incarnation, members) {
            self.refuse(format!("group {group_id}: {e}"));
            return;
        }
        self.ops.push(Op::Create {
            group: group_id,
            incarnation,
            members: members.to_vec(),
            offset,
        });
    }

    /// Remove `group_id` and everything recorded for it.
    pub fn remove_group(&mut self, group_id: u64) {
        record::encode_remove(&mut self.buf, group_id);
        self.ops.push(Op::Remove { group: group_id });
    }

    /// Record the group's hard state (replaces the previous one).
    /// [`Wal::write`](super::Wal::write) refuses the batch unless the live
    /// group `group_id` is `incarnation` (the number is not written).
    pub fn hard_state(&mut self, group_id: u64, incarnation: u64, hs: HardState) {
        record::encode_hard_state(&mut self.buf, group_id, &hs);
        self.ops.push(Op::HardState {
            group: group_id,
            incarnation,
            hs,
        });
    }

    /// Record entries with consecutive indexes; they replace the group's log
    /// from `entries[0].index` on. An empty slice records nothing.
    /// [`Wal::write`](super::Wal::write) refuses the batch unless the live
    /// group `group_id` is `incarnation` (the number is not written).
    pub fn entries(&mut self, group_id: u64, incarnation: u64, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        if let Some(w) = entries
            .windows(2)
            .find(|w| w[0].index.checked_add(1) != Some(w[1].index))
        {
            self.refuse(format!(
                "group {group_id}: entries are not consecutive ({} then {})",
                w[0].index, w[1].index
            ));
            return;
        }
        let last = entries[entries.len() - 1].index;
        if first.index == 0 {
            self.refuse(format!("group {group_id}: entries start at index 0"));
            return;
        }
        if let Err(e) = record::encode_entries(&mut self.buf, group_id, entries) {
            self.refuse(format!("group {group_id}: {e}"));
            return;
        }
        self.ops.push(Op::Entries {
            group: group_id,
            incarnation,
            first: first.index,
            last,
        });
    }

    /// Nothing was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.invalid.is_none()
    }

    /// Bytes of records added so far.
    pub fn len_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Empty the batch, keeping its buffer for reuse.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.ops.clear();
        self.invalid = None;
    }

    fn refuse(&mut self, reason: String) {
        self.invalid.get_or_insert(reason);
    }
}
