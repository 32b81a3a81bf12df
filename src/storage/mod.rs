//! Durable storage: the node-wide write-ahead log shared by every group of
//! a node ([`Wal`]), the snapshot files beside it ([`SnapshotStore`]), the
//! one entry point that recovers both ([`open_storage`]), and the
//! file-system seam they run on ([`WalFs`]: [`RealFs`] on disk, or
//! [`MemFs`] in memory with simulated crashes, for tests and simulations).
//!
//! The storage interface the Raft core reads its log through
//! ([`LogStore`]) and the in-memory store recovery rebuilds each group into
//! ([`MemStore`]) belong to the protocol and live in [`raft`](crate::raft);
//! this layer depends on `raft` only for those types.
//!
//! # A node's data directory
//!
//! ```text
//! <dir>/00000000000000000001.wal ...     WAL segments (see `Wal`)
//! <dir>/snapshots/<group>-<incarnation>-<index>.snap ...   (see `SnapshotStore`)
//! ```
//!
//! The WAL's segments sit directly in the directory, as before snapshots
//! existed, so existing data directories open unchanged.
//!
//! # Write order
//!
//! A snapshot file is always made durable before the WAL record that needs
//! it: [`SnapshotStore::save`], then [`WalBatch::compact`] (the host took a
//! snapshot) or [`WalBatch::install_snapshot`] (a follower received one).
//! So a crash between the two leaves a snapshot the WAL does not know of
//! yet — never a WAL compacted past any snapshot — and [`open_storage`]
//! finishes the job.
//!
//! # Recovery
//!
//! [`open_storage`] recovers the WAL, then for each group it lists loads
//! the newest valid snapshot of its incarnation at or above its compaction
//! point ([`SnapshotStore::load`]; a snapshot below the point is useless,
//! the entries between are gone):
//!
//! * **no compaction point and no usable snapshot**: the log from index 1,
//!   as the WAL holds it;
//! * **a usable snapshot S**: the store records S as its snapshot, and its
//!   commit index is raised to S.index if below (S holds only committed
//!   state; the durable commit may lag what was applied). If the log does
//!   not hold S — S.index beyond its last index, or another term there —
//!   S came from the leader and the crash took the WAL's Install record
//!   (the file is saved first): the log is replaced as by an install, and
//!   an Install record is written so that the WAL agrees. The snapshot's
//!   bytes are returned for the host to restore;
//! * **a compaction point but no usable snapshot** (the files are missing
//!   or damaged): the group is reported *lost*, with an error logged. Its
//!   log has a hole where the snapshot should be; the runtime must not run
//!   it as it is, but rejoin the group as a fresh replica that never votes
//!   (the hard state is still returned: its term and vote must not go
//!   backwards).
//!
//! Snapshot files of groups or incarnations the WAL does not list (removed
//! groups, a group id created again) are deleted.

mod snapshots;
mod wal;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tracing::{error, info, warn};

use crate::raft::{LogStore, MemStore, Predecessor, SnapshotMeta};

pub use snapshots::{SnapshotStore, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};

pub use wal::{
    crc32c, DirLock, MemFs, MemFsStats, Pinned, RealFs, Recovered, RecoveredGroup, SegmentInfo,
    Wal, WalBatch, WalError, WalFile, WalFs, WalOptions, WalStats, LOCK_FILE, MEMFS_PAGE,
};

/// Name of the snapshot directory inside a node's data directory.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// How [`open_storage`] opens a node's storage.
#[derive(Clone, Debug)]
pub struct StorageOptions {
    /// Size at which the WAL starts a new segment
    /// ([`WalOptions::segment_bytes`]).
    pub segment_bytes: u64,
    /// Snapshot files larger than this are refused at recovery (and the
    /// next older one tried): a bound on what one group's restore can make
    /// the node allocate.
    pub max_snapshot_bytes: u64,
}

impl Default for StorageOptions {
    fn default() -> StorageOptions {
        StorageOptions {
            segment_bytes: WalOptions::DEFAULT_SEGMENT_BYTES,
            max_snapshot_bytes: 1 << 30,
        }
    }
}

/// A node's durable storage, open.
#[derive(Debug)]
pub struct Storage {
    /// The write-ahead log, in the data directory itself.
    pub wal: Wal,
    /// The snapshot files, in `<dir>/snapshots`.
    pub snapshots: SnapshotStore,
}

/// This node's replica of one group, as [`open_storage`] rebuilt it.
#[derive(Debug)]
pub struct RecoveredReplica {
    /// The host's incarnation number of the group.
    pub incarnation: u64,
    pub members: Vec<u64>,
    /// It rejoined once after losing its state
    /// ([`WalBatch::rejoin_group`]): it must never vote.
    pub rejoined: bool,
    /// It took the place of a replica this node removed
    /// ([`RecoveredGroup::vote_floor`]).
    pub vote_floor: Option<(u64, u64)>,
    /// Hard state, log and snapshot meta (`store.snapshot()`, index 0 when
    /// there is no snapshot). The log starts after the compaction point.
    pub store: MemStore,
    /// The snapshot the store records, with the host's bytes: restore the
    /// state machine from it before applying anything after it.
    pub snapshot: Option<(SnapshotMeta, Bytes)>,
    /// The log was compacted but no usable snapshot covers it: the state
    /// cannot be rebuilt. Rejoin the group as a fresh replica that never
    /// votes; do not run `store` as it is (its hard state is still right).
    pub lost: bool,
}

/// What [`open_storage`] recovered: every live group, and what it took.
#[derive(Debug, Default)]
pub struct RecoveredNode {
    pub groups: BTreeMap<u64, RecoveredReplica>,
    /// Replicas this node removed that it still remembers, oldest first
    /// ([`Recovered::tombstones`](wal::Recovered::tombstones)).
    pub tombstones: Vec<(u64, u64, Predecessor)>,
    /// Bytes of torn tail cut off the last WAL segment.
    pub truncated_tail_bytes: u64,
    /// WAL records and segments replayed.
    pub records: u64,
    pub segments: usize,
    /// Snapshot files refused (damaged, too large) while loading.
    pub bad_snapshot_files: u64,
    /// Snapshot files deleted because their group or incarnation is gone.
    pub snapshot_files_deleted: usize,
    /// Groups whose snapshot install the WAL had not recorded before the
    /// crash: completed now.
    pub installs_completed: usize,
}

/// Open a node's storage in `dir` — the WAL in `dir`, the snapshots in
/// `dir/snapshots` — and recover every group, joining each group's log to
/// its newest usable snapshot. See the module documentation for the cases;
/// a group that cannot be rebuilt is reported
/// [`lost`](RecoveredReplica::lost), not an error.
///
/// Errors are those of [`Wal::open_with`], I/O errors of the snapshot
/// store, and those of the WAL write that completes interrupted installs.
pub fn open_storage(
    dir: &Path,
    fs: Arc<dyn WalFs>,
    opts: StorageOptions,
) -> Result<(Storage, RecoveredNode), WalError> {
    let mut wal_opts = WalOptions::new(dir);
    wal_opts.segment_bytes = opts.segment_bytes;
    let (mut wal, recovered) = Wal::open_with(wal_opts, Arc::clone(&fs))?;
    let mut snapshots = SnapshotStore::open(fs, snapshots_dir(dir))?;
    let live = &recovered.groups;
    let deleted = snapshots.retain(|g, inc| live.get(&g).is_some_and(|r| r.incarnation == inc))?;

    let mut node = RecoveredNode {
        truncated_tail_bytes: recovered.truncated_tail_bytes,
        records: recovered.records,
        segments: recovered.segments,
        snapshot_files_deleted: deleted,
        tombstones: recovered.tombstones,
        ..RecoveredNode::default()
    };
    let mut installs = WalBatch::new();
    for (id, g) in recovered.groups {
        let RecoveredGroup {
            incarnation,
            members,
            rejoined,
            vote_floor,
            mut store,
            compacted_index,
            ..
        } = g;
        let snapshot = snapshots.load(id, incarnation, compacted_index, opts.max_snapshot_bytes);
        let mut lost = false;
        match &snapshot {
            Some((meta, _)) => {
                if meta.index > store.last_index() || store.term(meta.index) != Ok(meta.term) {
                    // Saved before the crash, its Install record was not.
                    warn!(
                        group = id,
                        index = meta.index,
                        term = meta.term,
                        last_index = store.last_index(),
                        "completing a snapshot install the WAL had not recorded"
                    );
                    store.apply_snapshot(meta.clone());
                    installs.install_snapshot(id, incarnation, meta.index, meta.term);
                    node.installs_completed += 1;
                } else {
                    store.set_snapshot(meta.clone());
                }
                let mut hs = store.hard_state();
                if hs.commit < meta.index {
                    hs.commit = meta.index;
                    store.set_hard_state(hs);
                }
            }
            None if compacted_index > 0 => {
                error!(
                    group = id,
                    incarnation,
                    compacted_index,
                    dir = %snapshots.dir().display(),
                    "group lost: its log was compacted to {compacted_index} and no valid snapshot at or above it exists"
                );
                lost = true;
            }
            None => {}
        }
        node.groups.insert(
            id,
            RecoveredReplica {
                incarnation,
                members,
                rejoined,
                vote_floor,
                store,
                snapshot,
                lost,
            },
        );
    }
    wal.write(&installs)?;
    node.bad_snapshot_files = snapshots.bad_files();
    info!(
        dir = %dir.display(),
        groups = node.groups.len(),
        snapshots = snapshots.count(),
        snapshot_bytes = snapshots.total_bytes(),
        lost = node.groups.values().filter(|g| g.lost).count(),
        installs_completed = node.installs_completed,
        "storage recovered"
    );
    Ok((Storage { wal, snapshots }, node))
}

/// Where [`open_storage`] keeps the snapshots of the node in `dir`.
pub fn snapshots_dir(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOTS_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Entry, EntryKind, HardState, StorageError};

    const G: u64 = 7;
    const INC: u64 = 3;

    fn dir() -> PathBuf {
        PathBuf::from("/mem/node")
    }

    fn open(fs: &MemFs) -> (Storage, RecoveredNode) {
        open_storage(&dir(), Arc::new(fs.clone()), StorageOptions::default()).unwrap()
    }

    fn ents(first: u64, n: u64, term: u64) -> Vec<Entry> {
        (first..first + n)
            .map(|index| Entry {
                term,
                index,
                kind: EntryKind::Normal,
                data: Bytes::from(vec![index as u8; 20]),
            })
            .collect()
    }

    fn meta(index: u64, term: u64) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term,
            voters: vec![1, 2, 3],
            ..Default::default()
        }
    }

    fn state(index: u64) -> Vec<u8> {
        format!("state after {index}").into_bytes()
    }

    /// A node with group G (incarnation INC), entries 1..=20 of term 1,
    /// commit 10.
    fn node_with_log(fs: &MemFs) -> Storage {
        let (mut st, _) = open(fs);
        let mut b = WalBatch::new();
        b.create_group(G, INC, &[1, 2, 3]);
        b.entries(G, INC, &ents(1, 20, 1));
        b.hard_state(
            G,
            INC,
            HardState {
                term: 1,
                vote: 1,
                commit: 10,
            },
        );
        st.wal.write(&b).unwrap();
        st
    }

    /// The host took a snapshot at `index` and compacted to `compact`.
    fn snapshot_and_compact(st: &mut Storage, index: u64, compact: u64) {
        st.snapshots
            .save(G, INC, &meta(index, 1), &state(index))
            .unwrap();
        let mut b = WalBatch::new();
        b.compact(G, INC, compact, 1);
        st.wal.write(&b).unwrap();
    }

    fn replica(node: &RecoveredNode) -> &RecoveredReplica {
        &node.groups[&G]
    }

    fn corrupt(fs: &MemFs, index: u64) {
        let name = format!("{G:020}-{INC:020}-{index:020}.snap");
        let p = snapshots_dir(&dir()).join(name);
        let mut d = fs.contents(&p).expect("the snapshot file exists");
        let at = d.len() - 6;
        d[at] ^= 0x20;
        assert!(fs.set_contents(&p, d));
    }

    #[test]
    fn a_group_without_compaction_or_snapshot_recovers_its_log_from_index_1() {
        let fs = MemFs::new(1);
        drop(node_with_log(&fs));
        fs.crash(1);
        let (_, node) = open(&fs);
        let r = replica(&node);
        assert!(!r.lost && r.snapshot.is_none());
        assert_eq!((r.store.first_index(), r.store.last_index()), (1, 20));
        assert_eq!(r.store.snapshot().index, 0);
        assert_eq!(r.store.hard_state().commit, 10);
        assert_eq!((r.incarnation, &r.members[..]), (INC, &[1, 2, 3][..]));
        // The WAL lives in the directory itself, the snapshots beside it.
        assert!(fs
            .files()
            .iter()
            .all(|p| p.parent() == Some(dir().as_path())));
    }

    #[test]
    fn a_compacted_group_recovers_from_its_snapshot_and_the_log_after_it() {
        let fs = MemFs::new(1);
        let mut st = node_with_log(&fs);
        snapshot_and_compact(&mut st, 15, 12);
        drop(st);
        fs.crash(2);
        let (_, node) = open(&fs);
        let r = replica(&node);
        assert!(!r.lost);
        let (m, data) = r.snapshot.as_ref().unwrap();
        assert_eq!((m, &data[..]), (&meta(15, 1), &state(15)[..]));
        assert_eq!(r.store.snapshot(), &meta(15, 1));
        assert_eq!((r.store.first_index(), r.store.last_index()), (13, 20));
        assert_eq!(r.store.term(12), Ok(1));
        assert_eq!(
            r.store.hard_state().commit,
            15,
            "the snapshot holds only committed state"
        );
        assert_eq!(node.installs_completed, 0);
    }

    #[test]
    fn a_snapshot_the_log_still_holds_only_sets_the_snapshot_meta() {
        // The snapshot file was saved, the crash took the Compact record.
        let fs = MemFs::new(1);
        let mut st = node_with_log(&fs);
        st.snapshots.save(G, INC, &meta(15, 1), &state(15)).unwrap();
        drop(st);
        fs.crash(3);
        let (_, node) = open(&fs);
        let r = replica(&node);
        assert!(r.snapshot.is_some() && !r.lost);
        assert_eq!(r.store.snapshot().index, 15);
        assert_eq!((r.store.first_index(), r.store.last_index()), (1, 20));
        assert_eq!(node.installs_completed, 0);
    }

    /// A follower far behind saved its leader's snapshot at 50; the crash
    /// came before the WAL's Install record. The log is replaced at
    /// recovery, and the WAL is told.
    #[test]
    fn a_crash_between_the_snapshot_file_and_the_wal_install_record_still_installs_it() {
        let fs = MemFs::new(1);
        let mut st = node_with_log(&fs);
        st.snapshots.save(G, INC, &meta(50, 3), &state(50)).unwrap();
        drop(st);
        fs.crash(4);
        let (mut st, node) = open(&fs);
        let r = replica(&node);
        assert!(!r.lost);
        assert_eq!(node.installs_completed, 1);
        assert_eq!(r.snapshot.as_ref().unwrap().0, meta(50, 3));
        assert_eq!((r.store.first_index(), r.store.last_index()), (51, 50));
        assert_eq!(r.store.term(50), Ok(3));
        assert_eq!(r.store.term(20), Err(StorageError::Compacted(20)));
        assert_eq!(r.store.hard_state().commit, 50);
        // The WAL agrees: it takes the entries after the snapshot, and has
        // recorded the install (without the file, the group would be lost).
        let mut b = WalBatch::new();
        b.entries(G, INC, &ents(51, 2, 3));
        st.wal.write(&b).unwrap();
        drop(st);
        let (_, node) = open(&fs);
        assert_eq!(node.installs_completed, 0, "done once");
        let r = replica(&node);
        assert_eq!((r.store.first_index(), r.store.last_index()), (51, 52));
        assert_eq!(
            node.groups[&G].store.entries(51, 53, u64::MAX).unwrap(),
            ents(51, 2, 3)
        );
    }

    /// The leader's snapshot is within the follower's log, but the
    /// follower's entry there has another term: its log diverged, and is
    /// replaced.
    #[test]
    fn a_saved_snapshot_whose_term_conflicts_with_the_log_replaces_it() {
        let fs = MemFs::new(1);
        let mut st = node_with_log(&fs);
        st.snapshots.save(G, INC, &meta(18, 2), &state(18)).unwrap();
        drop(st);
        let (_, node) = open(&fs);
        let r = replica(&node);
        assert_eq!(node.installs_completed, 1);
        assert_eq!((r.store.first_index(), r.store.last_index()), (19, 18));
        assert_eq!(r.store.term(18), Ok(2));
    }

    #[test]
    fn a_corrupt_newest_snapshot_falls_back_to_an_older_one_that_still_covers_the_log() {
        let fs = MemFs::new(1);
        let mut st = node_with_log(&fs);
        snapshot_and_compact(&mut st, 10, 8);
        snapshot_and_compact(&mut st, 16, 9);
        drop(st);
        corrupt(&fs, 16);
        let (_, node) = open(&fs);
        let r = replica(&node);
        assert!(!r.lost);
        assert_eq!(node.bad_snapshot_files, 1);
        assert_eq!(r.snapshot.as_ref().unwrap().0, meta(10, 1));
        assert_eq!(r.store.snapshot().index, 10);
        assert_eq!((r.store.first_index(), r.store.last_index()), (10, 20));
    }

    #[test]
    fn a_compacted_group_without_a_usable_snapshot_is_lost() {
        // Both snapshots damaged.
        let fs = MemFs::new(1);
        let mut st = node_with_log(&fs);
        snapshot_and_compact(&mut st, 10, 8);
        snapshot_and_compact(&mut st, 16, 9);
        drop(st);
        corrupt(&fs, 10);
        corrupt(&fs, 16);
        let (_, node) = open(&fs);
        let r = replica(&node);
        assert!(r.lost && r.snapshot.is_none());
        assert_eq!(node.bad_snapshot_files, 2);
        assert_eq!(r.store.hard_state().term, 1, "its hard state still counts");

        // The only valid snapshot is below the compaction point: the
        // entries between are gone, so it cannot be used either.
        let fs = MemFs::new(1);
        let mut st = node_with_log(&fs);
        snapshot_and_compact(&mut st, 10, 8);
        snapshot_and_compact(&mut st, 16, 14);
        drop(st);
        corrupt(&fs, 16);
        let (_, node) = open(&fs);
        assert!(replica(&node).lost);
        assert_eq!(node.bad_snapshot_files, 1, "the one below is not even read");

        // And no file at all.
        let fs = MemFs::new(1);
        let (mut st, _) = open(&fs);
        let mut b = WalBatch::new();
        b.create_group(G, INC, &[1]);
        b.install_snapshot(G, INC, 40, 2);
        st.wal.write(&b).unwrap();
        drop(st);
        assert!(replica(&open(&fs).1).lost);
    }

    #[test]
    fn snapshot_files_of_removed_groups_and_old_incarnations_are_deleted() {
        let fs = MemFs::new(1);
        let mut st = node_with_log(&fs);
        let mut b = WalBatch::new();
        b.create_group(8, 1, &[1]);
        b.create_group(9, 1, &[1]);
        st.wal.write(&b).unwrap();
        st.snapshots.save(8, 1, &meta(5, 1), b"eight").unwrap();
        st.snapshots.save(9, 1, &meta(5, 1), b"nine").unwrap();
        st.snapshots.save(G, INC, &meta(5, 1), b"g").unwrap();
        // Group 8 is removed, group 9 created again as incarnation 2.
        let mut b = WalBatch::new();
        b.remove_group(8);
        b.remove_group(9);
        b.create_group(9, 2, &[1]);
        st.wal.write(&b).unwrap();
        drop(st);
        let (st, node) = open(&fs);
        assert_eq!(node.snapshot_files_deleted, 2);
        assert_eq!(st.snapshots.count(), 1);
        assert_eq!(st.snapshots.list(G), vec![(INC, 5)]);
        let nine = &node.groups[&9];
        assert!(nine.snapshot.is_none() && !nine.lost);
    }
}
