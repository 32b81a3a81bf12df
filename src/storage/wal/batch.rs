//! [`WalBatch`]: the writes of one `ready()` pass, for all groups, encoded
//! as they are added so that [`Wal::write`](super::Wal::write) only frames
//! them, writes them and syncs.

use super::record::{self, Voting};
use crate::raft::{Entry, HardState, Predecessor};

/// What one record of a batch does to the bookkeeping, kept next to its
/// bytes so the WAL can update its view once the batch is durable.
#[derive(Debug)]
pub(super) enum Op {
    Create {
        group: u64,
        incarnation: u64,
        members: Vec<u64>,
        voting: Voting,
        /// Where the record starts in the batch buffer (for its creation).
        offset: usize,
    },
    Remove {
        group: u64,
        tombstone: Option<(u64, Predecessor)>,
    },
    /// `incarnation` is checked against the live group, not written.
    HardState {
        group: u64,
        incarnation: u64,
        hs: HardState,
    },
    /// One group of a Commits record. `incarnation` is checked against the
    /// live group, not written.
    Commit {
        group: u64,
        incarnation: u64,
        commit: u64,
    },
    /// `incarnation` is checked against the live group, not written.
    Entries {
        group: u64,
        incarnation: u64,
        first: u64,
        last: u64,
        /// The group's commit index then (0: not told).
        commit: u64,
        /// Length of the record.
        bytes: u64,
        /// From [`WalBatch::rewrite_entries`]: must end at the group's last
        /// index.
        rewrite: bool,
    },
    /// `incarnation` is checked against the live group, not written.
    Compact {
        group: u64,
        incarnation: u64,
        index: u64,
        term: u64,
    },
    /// `incarnation` is checked against the live group, not written.
    Install {
        group: u64,
        incarnation: u64,
        index: u64,
        term: u64,
    },
}

/// One unit of writes, usually everything one node `ready()` pass produced
/// for all its groups. Records are applied in the order they were added.
#[derive(Default)]
pub struct WalBatch {
    pub(super) buf: Vec<u8>,
    pub(super) ops: Vec<Op>,
    /// Records encoded in `buf` (a Commits record is one record but an op
    /// per group).
    pub(super) records: u32,
    /// Set when the caller added something that cannot be written; `write`
    /// refuses the whole batch with this reason.
    pub(super) invalid: Option<String>,
}

impl std::fmt::Debug for WalBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalBatch")
            .field("records", &self.records)
            .field("bytes", &self.buf.len())
            .field("invalid", &self.invalid)
            .finish()
    }
}

impl WalBatch {
    pub fn new() -> WalBatch {
        WalBatch::default()
    }

    /// An empty batch with room for `bytes` of records and `ops`
    /// operations: a batch built by many small appends (a pass's, one
    /// record per group) otherwise regrows its buffer a dozen times.
    pub fn with_capacity(bytes: usize, ops: usize) -> WalBatch {
        WalBatch {
            buf: Vec::with_capacity(bytes),
            ops: Vec::with_capacity(ops),
            ..WalBatch::default()
        }
    }

    /// Create `group_id` with these members (voters, by node id).
    /// `incarnation` is the host's number for this life of the group id (the
    /// same on every member); it is stored, recovered
    /// ([`RecoveredGroup::incarnation`](super::RecoveredGroup::incarnation))
    /// and checked against every later record of the group.
    pub fn create_group(&mut self, group_id: u64, incarnation: u64, members: &[u64]) {
        self.create(group_id, incarnation, members, Voting::Votes);
    }

    /// [`create_group`](Self::create_group) for a replica that takes the
    /// place of one of the same incarnation this node removed (the node was
    /// removed from the group and is added back: see
    /// [`Node::succession`](crate::multi::Node::succession)): recovery
    /// starts it at `removed`'s term and vote, and reports its vote floor
    /// ([`RecoveredGroup::vote_floor`](super::RecoveredGroup::vote_floor))
    /// for as long as it lives.
    pub fn create_successor(
        &mut self,
        group_id: u64,
        incarnation: u64,
        members: &[u64],
        removed: &Predecessor,
    ) {
        self.create(group_id, incarnation, members, Voting::Succeeds(*removed));
    }

    /// Create a group replica that rejoins its group after this node lost
    /// its state (its data directory was wiped, or its snapshot is gone): it
    /// starts empty, and recovery reports it
    /// [`rejoined`](super::RecoveredGroup::rejoined) for as long as it lives,
    /// because it must never vote (it may have voted and acknowledged
    /// before, and no longer knows what).
    pub fn rejoin_group(&mut self, group_id: u64, incarnation: u64, members: &[u64]) {
        self.create(group_id, incarnation, members, Voting::Rejoined);
    }

    fn create(&mut self, group_id: u64, incarnation: u64, members: &[u64], voting: Voting) {
        let offset = self.buf.len();
        let r = record::encode_create(&mut self.buf, group_id, incarnation, members, voting);
        if let Err(e) = r {
            self.refuse(format!("group {group_id}: {e}"));
            return;
        }
        self.records += 1;
        self.ops.push(Op::Create {
            group: group_id,
            incarnation,
            members: members.to_vec(),
            voting,
            offset,
        });
    }

    /// Remove `group_id` and everything recorded for it.
    pub fn remove_group(&mut self, group_id: u64) {
        record::encode_remove(&mut self.buf, group_id, None);
        self.records += 1;
        self.ops.push(Op::Remove {
            group: group_id,
            tombstone: None,
        });
    }

    /// [`remove_group`](Self::remove_group), and remember the removed
    /// replica (of `incarnation`, in state `removed`: see
    /// [`Node::remove_group`](crate::multi::Node::remove_group)) among the
    /// WAL's tombstones, until a replica of the same incarnation is created
    /// ([`create_successor`](Self::create_successor)) or the bound forgets
    /// it. Recovery returns them
    /// ([`Recovered::tombstones`](super::Recovered::tombstones)).
    pub fn remove_replica(&mut self, group_id: u64, incarnation: u64, removed: &Predecessor) {
        record::encode_remove(&mut self.buf, group_id, Some((incarnation, removed)));
        self.records += 1;
        self.ops.push(Op::Remove {
            group: group_id,
            tombstone: Some((incarnation, *removed)),
        });
    }

    /// Record the group's hard state (replaces the previous one).
    /// [`Wal::write`](super::Wal::write) refuses the batch unless the live
    /// group `group_id` is `incarnation` (the number is not written).
    pub fn hard_state(&mut self, group_id: u64, incarnation: u64, hs: HardState) {
        record::encode_hard_state(&mut self.buf, group_id, &hs);
        self.records += 1;
        self.ops.push(Op::HardState {
            group: group_id,
            incarnation,
            hs,
        });
    }

    /// Record the commit index of each (group, incarnation, commit) in
    /// `commits`, in one Commits record (a few bytes per group): for groups
    /// whose commit index alone moved (term and vote did not, and they write
    /// no entries, which would carry it). Recovery raises each group's
    /// commit to it, never lowers it. [`Wal::write`](super::Wal::write)
    /// refuses the batch unless each group is live with that incarnation.
    /// An empty list records nothing.
    pub fn commits(&mut self, commits: &[(u64, u64, u64)]) {
        if commits.is_empty() {
            return;
        }
        record::encode_commits(&mut self.buf, commits.iter().map(|&(g, _, c)| (g, c)));
        self.records += 1;
        for &(group, incarnation, commit) in commits {
            self.ops.push(Op::Commit {
                group,
                incarnation,
                commit,
            });
        }
    }

    /// Record entries with consecutive indexes; they replace the group's log
    /// from `entries[0].index` on. An empty slice records nothing.
    /// [`Wal::write`](super::Wal::write) refuses the batch unless the live
    /// group `group_id` is `incarnation` (the number is not written), the
    /// entries start after the group's compaction point and no later than
    /// just after its last index.
    pub fn entries(&mut self, group_id: u64, incarnation: u64, entries: &[Entry]) {
        self.add_entries(group_id, incarnation, entries, 0, false);
    }

    /// [`entries`](Self::entries), and the group's commit index is now
    /// `commit`: recovery raises the group's commit to it, so a batch that
    /// writes a group's entries needs no [`hard_state`](Self::hard_state)
    /// record when only the commit index moved (term and vote did not).
    pub fn entries_with_commit(
        &mut self,
        group_id: u64,
        incarnation: u64,
        entries: &[Entry],
        commit: u64,
    ) {
        self.add_entries(group_id, incarnation, entries, commit, false);
    }

    /// Record entries the group's log already holds again, in the segment
    /// being written, so that the old segments holding them can be deleted
    /// (see [`Wal::pinning`](super::Wal::pinning)). Written exactly like
    /// [`entries`](Self::entries), with one more check:
    /// [`Wal::write`](super::Wal::write) refuses the batch unless the
    /// entries end at the group's last index (counting records earlier in
    /// the batch), since an Entries record replaces the log from its first
    /// index on and a rewrite that ends short would cut off the entries
    /// after it. Pass the entries from `first_index` to the *current* last
    /// durable index, with their terms and data unchanged.
    pub fn rewrite_entries(&mut self, group_id: u64, incarnation: u64, entries: &[Entry]) {
        self.add_entries(group_id, incarnation, entries, 0, true);
    }

    fn add_entries(
        &mut self,
        group_id: u64,
        incarnation: u64,
        entries: &[Entry],
        commit: u64,
        rewrite: bool,
    ) {
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
        let start = self.buf.len();
        if let Err(e) = record::encode_entries(&mut self.buf, group_id, commit, entries) {
            self.refuse(format!("group {group_id}: {e}"));
            return;
        }
        self.records += 1;
        self.ops.push(Op::Entries {
            group: group_id,
            incarnation,
            first: first.index,
            last,
            commit,
            bytes: (self.buf.len() - start) as u64,
            rewrite,
        });
    }

    /// The group no longer needs its entries up to and including `index`
    /// (typically: the host saved a snapshot at or above it, and a trailing
    /// window of entries stays below the snapshot for slow followers);
    /// `term` is the term of the entry at `index`, kept so that log matching
    /// works across the compaction point after recovery. Old segments that
    /// held only such entries can then be deleted.
    ///
    /// At or below the group's current compaction point it is a no-op (an
    /// install may have moved the point meanwhile). [`Wal::write`](super::Wal::write)
    /// refuses the batch if `index` is above the group's last index
    /// (counting records earlier in the batch), or unless the live group
    /// `group_id` is `incarnation`.
    pub fn compact(&mut self, group_id: u64, incarnation: u64, index: u64, term: u64) {
        record::encode_compact(&mut self.buf, group_id, index, term);
        self.records += 1;
        self.ops.push(Op::Compact {
            group: group_id,
            incarnation,
            index,
            term,
        });
    }

    /// The group's log is replaced by a snapshot at (`index`, `term`)
    /// received from its leader: it holds no entry, and its next one is
    /// `index + 1` (whatever it held before, above or below). Entries from
    /// `index + 1` may follow in the same batch. Save the snapshot's bytes
    /// durably *before* writing this (see
    /// [`SnapshotStore::save`](crate::storage::SnapshotStore::save)):
    /// recovery then finds a snapshot for every install it replays.
    ///
    /// [`Wal::write`](super::Wal::write) refuses the batch if `index` is 0
    /// or below the group's compaction point, or unless the live group
    /// `group_id` is `incarnation`.
    pub fn install_snapshot(&mut self, group_id: u64, incarnation: u64, index: u64, term: u64) {
        if index == 0 {
            self.refuse(format!("group {group_id}: snapshot install at index 0"));
            return;
        }
        record::encode_install(&mut self.buf, group_id, index, term);
        self.records += 1;
        self.ops.push(Op::Install {
            group: group_id,
            incarnation,
            index,
            term,
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
        self.records = 0;
        self.invalid = None;
    }

    fn refuse(&mut self, reason: String) {
        self.invalid.get_or_insert(reason);
    }
}
