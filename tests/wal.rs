//! The node-wide WAL: what a crash leaves, what recovery rebuilds, what it
//! refuses, what group commit costs, and which segments may be deleted;
//! and with the snapshot files beside it, what a node's storage recovers.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use muxraft::raft::{Entry, EntryKind, HardState, LogStore, Predecessor, SnapshotMeta};
use muxraft::storage::{
    crc32c, open_storage, MemFs, MemFsStats, RealFs, Recovered, RecoveredNode, Storage,
    StorageOptions, Wal, WalBatch, WalError, WalOptions,
};

mod common;
use common::TempDir;

// ---------------------------------------------------------------- helpers

/// Bytes of a segment header (format version 2).
const SEGMENT_HEADER: u64 = 32;

/// Deterministic xorshift, so every run writes the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        term,
        index,
        kind: if data.is_empty() {
            EntryKind::Noop
        } else {
            EntryKind::Normal
        },
        data: Bytes::copy_from_slice(data),
    }
}

fn entries(first: u64, n: u64, term: u64, size: usize) -> Vec<Entry> {
    (first..first + n)
        .map(|i| entry(i, term, &vec![(i * 7 + term) as u8; size]))
        .collect()
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState { term, vote, commit }
}

/// What the WAL should hold: the same operations applied to plain vectors.
#[derive(Clone, Debug, Default)]
struct Model {
    groups: BTreeMap<u64, ModelGroup>,
    /// Incarnations handed out so far: each creation gets a new one, as a
    /// host would give a group id created again.
    incarnations: u64,
    /// Compactions that moved a compaction point, and installs, so far
    /// (statistics of the random tests).
    compactions: u64,
    installs: u64,
}

#[derive(Clone, Debug, Default)]
struct ModelGroup {
    incarnation: u64,
    members: Vec<u64>,
    hs: HardState,
    /// The compaction point (index, term): `log` holds the entries after it.
    compacted: (u64, u64),
    log: Vec<Entry>,
}

impl ModelGroup {
    fn last(&self) -> u64 {
        self.compacted.0 + self.log.len() as u64
    }

    /// Term of the entry at `index` (the compaction point included).
    fn term(&self, index: u64) -> u64 {
        if index == self.compacted.0 {
            return self.compacted.1;
        }
        self.log[(index - self.compacted.0 - 1) as usize].term
    }
}

/// A batch and the model, kept in step.
struct Writer<'a> {
    batch: WalBatch,
    model: &'a mut Model,
}

impl<'a> Writer<'a> {
    fn new(model: &'a mut Model) -> Writer<'a> {
        Writer {
            batch: WalBatch::default(),
            model,
        }
    }

    fn create(&mut self, g: u64, members: &[u64]) -> &mut Self {
        self.model.incarnations += 1;
        let incarnation = 1000 + self.model.incarnations;
        self.batch.create_group(g, incarnation, members);
        self.model.groups.insert(
            g,
            ModelGroup {
                incarnation,
                members: members.to_vec(),
                ..ModelGroup::default()
            },
        );
        self
    }

    fn remove(&mut self, g: u64) -> &mut Self {
        self.batch.remove_group(g);
        self.model.groups.remove(&g);
        self
    }

    fn hs(&mut self, g: u64, h: HardState) -> &mut Self {
        let m = self.model.groups.get_mut(&g).unwrap();
        self.batch.hard_state(g, m.incarnation, h);
        m.hs = h;
        self
    }

    fn entries(&mut self, g: u64, es: &[Entry]) -> &mut Self {
        let m = self.model.groups.get_mut(&g).unwrap();
        self.batch.entries(g, m.incarnation, es);
        let keep = (es[0].index - m.compacted.0 - 1) as usize;
        m.log.truncate(keep);
        m.log.extend_from_slice(es);
        self
    }

    /// Compact the group's log up to `index` (at most its last index), with
    /// the term the log has there.
    fn compact(&mut self, g: u64, index: u64) -> &mut Self {
        let m = self.model.groups.get_mut(&g).unwrap();
        let term = if index < m.compacted.0 {
            0
        } else {
            m.term(index)
        };
        self.batch.compact(g, m.incarnation, index, term);
        if index > m.compacted.0 {
            m.log.drain(..(index - m.compacted.0) as usize);
            m.compacted = (index, term);
            self.model.compactions += 1;
        }
        self
    }

    /// Replace the group's log by a snapshot at (`index`, `term`).
    fn install(&mut self, g: u64, index: u64, term: u64) -> &mut Self {
        let m = self.model.groups.get_mut(&g).unwrap();
        self.batch.install_snapshot(g, m.incarnation, index, term);
        m.log.clear();
        m.compacted = (index, term);
        self.model.installs += 1;
        self
    }

    fn write(&mut self, wal: &mut Wal) {
        wal.write(&self.batch).unwrap();
        self.batch.clear();
    }
}

fn assert_recovered(model: &Model, rec: &Recovered) {
    if let Some(diff) = differs(model, rec) {
        panic!("recovered state differs from the model: {diff}");
    }
}

/// How the recovered state differs from the model, if it does.
fn differs(model: &Model, rec: &Recovered) -> Option<String> {
    let want: Vec<u64> = model.groups.keys().copied().collect();
    let got: Vec<u64> = rec.groups.keys().copied().collect();
    if got != want {
        return Some(format!("groups {got:?}, expected {want:?}"));
    }
    for (id, m) in &model.groups {
        let g = &rec.groups[id];
        let log = g
            .store
            .entries(g.store.first_index(), g.store.last_index() + 1, u64::MAX)
            .unwrap_or_default();
        let diff = if g.incarnation != m.incarnation {
            format!("incarnation {} vs {}", g.incarnation, m.incarnation)
        } else if g.members != m.members {
            format!("members {:?} vs {:?}", g.members, m.members)
        } else if g.store.hard_state() != m.hs {
            format!("hard state {:?} vs {:?}", g.store.hard_state(), m.hs)
        } else if (g.compacted_index, g.compacted_term) != m.compacted {
            format!(
                "compaction point {:?} vs {:?}",
                (g.compacted_index, g.compacted_term),
                m.compacted
            )
        } else if g.store.first_index() != m.compacted.0 + 1 {
            format!("first index {}", g.store.first_index())
        } else if g.store.term(m.compacted.0) != Ok(m.compacted.1) {
            format!(
                "term at the compaction point {:?}",
                g.store.term(m.compacted.0)
            )
        } else if g.store.last_index() != m.last() {
            format!("last index {} vs {}", g.store.last_index(), m.last())
        } else if log != m.log {
            "entries differ".into()
        } else {
            continue;
        };
        return Some(format!("group {id}: {diff}"));
    }
    None
}

fn open(dir: &Path) -> (Wal, Recovered) {
    Wal::open(WalOptions::new(dir)).unwrap()
}

fn open_small(dir: &Path, segment_bytes: u64) -> (Wal, Recovered) {
    open_small_result(dir, segment_bytes).unwrap()
}

fn open_small_result(dir: &Path, segment_bytes: u64) -> Result<(Wal, Recovered), WalError> {
    let mut o = WalOptions::new(dir);
    o.segment_bytes = segment_bytes;
    Wal::open(o)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for f in segment_files(from) {
        fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Many groups, several batches of random entries, overwrites and hard
/// states.
fn random_history(wal: &mut Wal, model: &mut Model, rng: &mut Rng, groups: u64, batches: u64) {
    let mut w = Writer::new(model);
    for g in 1..=groups {
        w.create(g, &[1, 2, 3]);
    }
    w.write(wal);
    for b in 0..batches {
        for _ in 0..groups / 2 + 1 {
            let g = 1 + rng.below(groups);
            let last = w.model.groups[&g].last();
            // Mostly appends, sometimes an overwrite of a suffix.
            let first = if last > 3 && rng.below(5) == 0 {
                last - rng.below(3)
            } else {
                last + 1
            };
            let n = 1 + rng.below(4);
            let es: Vec<Entry> = (first..first + n)
                .map(|i| {
                    let size = rng.below(200) as usize;
                    entry(i, b + 1, &rng.bytes(size))
                })
                .collect();
            w.entries(g, &es);
            if rng.below(2) == 0 {
                w.hs(g, hs(b + 1, rng.below(4), first - 1));
            }
        }
        w.write(wal);
    }
}

// ------------------------------------------------------------- recovery

#[test]
fn crash_and_reopen_recovers_every_group_exactly() {
    let dir = TempDir::new("crash");
    let mut model = Model::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut wal, rec) = open(dir.path());
    assert!(rec.groups.is_empty());
    random_history(&mut wal, &mut model, &mut rng, 40, 30);
    drop(wal); // a crash: there is no close

    let (mut wal, rec) = open(dir.path());
    assert_recovered(&model, &rec);
    assert_eq!(rec.truncated_tail_bytes, 0);
    assert!(rec.records > 40 * 2);

    // Recovery's own new segment recovers too, and more history on top.
    random_history_more(&mut wal, &mut model, &mut rng);
    drop(wal);
    let (_, rec) = open(dir.path());
    assert_recovered(&model, &rec);
}

fn random_history_more(wal: &mut Wal, model: &mut Model, rng: &mut Rng) {
    let mut w = Writer::new(model);
    for g in 1..=40 {
        let last = w.model.groups[&g].last();
        w.entries(g, &entries(last + 1, 1 + rng.below(3), 99, 10));
        w.hs(g, hs(99, g % 3, last));
    }
    w.write(wal);
}

#[test]
fn overwrite_below_the_last_index_is_what_recovery_returns() {
    let dir = TempDir::new("overwrite");
    let mut model = Model::default();
    let (mut wal, _) = open(dir.path());
    let mut w = Writer::new(&mut model);
    w.create(1, &[1, 2, 3]).entries(1, &entries(1, 10, 1, 32));
    w.write(&mut wal);
    // A new leader replaces 6..=10 with its own 6..=7.
    w.entries(1, &entries(6, 2, 2, 16)).hs(1, hs(2, 2, 5));
    w.write(&mut wal);
    drop(wal);
    let (_, rec) = open(dir.path());
    assert_recovered(&model, &rec);
    let s = &rec.groups[&1].store;
    assert_eq!(s.last_index(), 7);
    assert_eq!(s.term(6), Ok(2));
    assert_eq!(s.term(5), Ok(1));
}

/// The commit index an Entries or a Commits record carries raises the group's commit
/// at recovery and in the next segment's checkpoint; it never lowers it,
/// and a HardState record still sets term and vote.
#[test]
fn the_commit_an_entries_record_carries_is_recovered_and_never_lowers_it() {
    let fs = MemFs::new(3);
    let (mut wal, _) = open_mem(&fs, 1 << 20).unwrap();
    let mut b = WalBatch::new();
    b.create_group(1, 1, &[1, 2, 3]);
    b.entries(1, 1, &entries(1, 5, 2, 8));
    b.hard_state(1, 1, hs(2, 3, 4));
    wal.write(&b).unwrap();
    let mut b = WalBatch::new();
    b.entries_with_commit(1, 1, &entries(6, 3, 2, 8), 7);
    wal.write(&b).unwrap();
    let mut b = WalBatch::new();
    b.entries_with_commit(1, 1, &entries(9, 1, 2, 8), 5); // stale: ignored
    wal.write(&b).unwrap();
    drop(wal);
    let (mut wal, rec) = open_mem(&fs, 1 << 20).unwrap();
    assert_eq!(rec.groups[&1].store.hard_state(), hs(2, 3, 7));
    // A group that writes no entries: a Commits record. Not for another
    // incarnation of the group, nor a group that does not exist.
    let mut b = WalBatch::new();
    b.create_group(2, 1, &[1]);
    b.commits(&[(1, 1, 8), (2, 1, 0)]);
    wal.write(&b).unwrap();
    for bad in [(1, 2, 9), (3, 1, 9)] {
        let mut b = WalBatch::new();
        b.commits(&[bad]);
        assert!(
            matches!(wal.write(&b), Err(WalError::InvalidBatch(_))),
            "{bad:?}"
        );
    }
    drop(wal);
    let (mut wal, rec) = open_mem(&fs, 1 << 20).unwrap();
    let s = &rec.groups[&1].store;
    assert_eq!(s.last_index(), 9);
    assert_eq!(s.hard_state(), hs(2, 3, 8));
    // Recovery started a new segment: its checkpoint carries it too, once
    // the old segments are gone.
    let mut b = WalBatch::new();
    b.compact(1, 1, 9, 2);
    wal.write(&b).unwrap();
    wal.delete_unneeded_segments().unwrap();
    assert_eq!(wal.segments().len(), 1);
    drop(wal);
    let (_, rec) = open_mem(&fs, 1 << 20).unwrap();
    assert_eq!(rec.groups[&1].store.hard_state(), hs(2, 3, 8));
}

/// The check of a batch keeps its map of the groups the batch creates
/// between batches (so that it allocates nothing): a refused batch that
/// created a group must leave nothing in it for the next one to trust.
/// Mutation: not clearing the kept map lets the second batch write entries
/// for a group that was never created.
#[test]
fn a_refused_batch_leaves_nothing_for_the_next_ones_check() {
    let fs = MemFs::new(3);
    let (mut wal, _) = open_mem(&fs, 1 << 20).unwrap();
    let mut b = WalBatch::new();
    b.create_group(7, 1, &[1, 2, 3]);
    b.entries(7, 1, &entries(1, 2, 1, 8));
    b.commits(&[(8, 1, 1)]); // group 8 does not exist: all refused
    assert!(matches!(wal.write(&b), Err(WalError::InvalidBatch(_))));
    let mut b = WalBatch::new();
    b.entries(7, 1, &entries(3, 1, 1, 8));
    assert!(
        matches!(wal.write(&b), Err(WalError::InvalidBatch(_))),
        "group 7 was never created"
    );
    let mut b = WalBatch::new();
    b.create_group(7, 1, &[1, 2, 3]);
    b.entries(7, 1, &entries(1, 2, 1, 8));
    wal.write(&b).unwrap();
    drop(wal);
    let (_, rec) = open_mem(&fs, 1 << 20).unwrap();
    assert_eq!(rec.groups[&7].store.last_index(), 2);
    assert!(!rec.groups.contains_key(&8));
}

/// `write_unsynced` appends a batch and leaves its fsync to `sync`, or to
/// whatever the WAL writes next, which syncs it first (each write is synced
/// before the next starts, so only the last commit can be torn); until
/// then the bookkeeping does not count it. A crash before its sync leaves
/// the batch whole or gone, never a log recovery refuses.
/// Mutation: a `write` that does not sync what waits first is refused
/// (its entries would leave a hole in what the WAL counts), and this fails.
#[test]
fn an_unsynced_batch_is_synced_by_sync_or_first_by_the_next_write() {
    let (mut kept, mut lost) = (0, 0);
    for seed in 0..40 {
        let fs = MemFs::new(seed);
        let (mut wal, _) = open_mem(&fs, 1 << 20).unwrap();
        let mut b = WalBatch::new();
        b.create_group(1, 1, &[1]);
        b.entries(1, 1, &entries(1, 2, 1, 8));
        wal.write(&b).unwrap();
        let syncs = fs.stats().data_syncs;
        let mut b = WalBatch::new();
        b.entries(1, 1, &entries(3, 1, 1, 8));
        wal.write_unsynced(b).unwrap();
        assert_eq!(wal.last_index(1), Some(2), "counted before its sync");
        assert_eq!(fs.stats().data_syncs, syncs);
        let mut b = WalBatch::new();
        b.entries(1, 1, &entries(4, 1, 1, 8));
        wal.write(&b).unwrap();
        assert_eq!(wal.last_index(1), Some(4));
        assert_eq!(fs.stats().data_syncs, syncs + 2, "one fsync each");
        wal.sync().unwrap();
        assert_eq!(fs.stats().data_syncs, syncs + 2, "nothing waited");
        let mut b = WalBatch::new();
        b.entries(1, 1, &entries(5, 1, 1, 8));
        wal.write_unsynced(b).unwrap();
        drop(wal);
        fs.crash(seed);
        let (_, rec) = open_mem(&fs, 1 << 20).unwrap();
        match rec.groups[&1].store.last_index() {
            4 => lost += 1,
            5 => kept += 1,
            other => panic!("seed {seed}: recovered up to {other}"),
        }
    }
    assert!(kept > 0 && lost > 0, "kept {kept}, lost {lost}");
}

/// Another thread's write may be the one that syncs a waiting batch; if
/// that sync fails, the writer of the batch must hear it from its own
/// `sync`, not an Ok that would let it promise the batch durable.
/// Mutation: `sync` answering Ok when nothing waits, whatever happened to
/// the batch, fails this.
#[test]
fn a_failed_sync_of_a_waiting_batch_fails_its_writers_sync_too() {
    let fs = MemFs::new(11);
    let (mut wal, _) = open_mem(&fs, 1 << 20).unwrap();
    let mut b = WalBatch::new();
    b.create_group(1, 1, &[1]);
    wal.write(&b).unwrap();
    let mut b = WalBatch::new();
    b.entries(1, 1, &entries(1, 1, 1, 8));
    wal.write_unsynced(b).unwrap();
    fs.fail_next_sync();
    let mut b = WalBatch::new();
    b.create_group(2, 1, &[1]);
    assert!(wal.write(&b).is_err());
    assert!(matches!(wal.sync(), Err(WalError::Failed)));
}

/// One writer per directory: a second `Wal` on a directory in use is
/// refused (in this process too), and the directory is free once the first
/// is dropped. Without the lock both would append to the same segments.
#[test]
fn a_directory_in_use_is_refused_until_its_wal_is_dropped() {
    let dir = TempDir::new("in-use");
    let (wal, _) = open(dir.path());
    match Wal::open(WalOptions::new(dir.path())) {
        Err(WalError::InUse { dir: d, holder }) => {
            assert_eq!(d, dir.path());
            assert!(holder.contains("this process"), "{holder}");
        }
        other => panic!("expected InUse, got {other:?}"),
    }
    let e = Wal::open(WalOptions::new(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("in use") && e.contains(&dir.path().display().to_string()),
        "{e}"
    );
    drop(wal);
    let (_wal, _) = open(dir.path());
}

#[test]
fn remove_and_recreate_recovers_only_the_new_incarnation() {
    let dir = TempDir::new("recreate");
    let mut model = Model::default();
    let (mut wal, _) = open(dir.path());
    let mut w = Writer::new(&mut model);
    w.create(7, &[1, 2, 3])
        .entries(7, &entries(1, 5, 1, 8))
        .hs(7, hs(1, 1, 5));
    w.write(&mut wal);
    w.remove(7).create(7, &[4, 5, 6]).hs(7, hs(1, 0, 0));
    w.write(&mut wal);
    drop(wal);
    let (mut wal, rec) = open(dir.path());
    assert_recovered(&model, &rec);
    assert_eq!(rec.groups[&7].store.last_index(), 0, "old entries are gone");

    // And once more, with the new incarnation writing entries.
    let mut w = Writer::new(&mut model);
    w.entries(7, &entries(1, 2, 3, 8));
    w.write(&mut wal);
    drop(wal);
    let (_, rec) = open(dir.path());
    assert_recovered(&model, &rec);
}

/// A replica that rejoined after losing its state stays marked as such for
/// its whole life: the mark is in its Create record, and in every
/// checkpoint after the segment holding that record is deleted. Mutation:
/// dropping the flag from the checkpoint lets it vote after a restart.
#[test]
fn a_rejoined_replica_stays_rejoined_across_restarts_and_segment_deletion() {
    let dir = TempDir::new("rejoined");
    let (mut wal, _) = open_small(dir.path(), 4096);
    let mut b = WalBatch::new();
    b.rejoin_group(1, 10, &[1, 2, 3]);
    b.create_group(2, 20, &[1, 2, 3]);
    wal.write(&b).unwrap();
    // Group 1 compacts its entries away while group 2 writes on, so the
    // segment with the Create records goes.
    let mut last = 0;
    for i in 0..40u64 {
        let mut b = WalBatch::new();
        b.entries(1, 10, &entries(i * 4 + 1, 4, 1, 200));
        b.entries(2, 20, &entries(i * 4 + 1, 4, 1, 200));
        wal.write(&b).unwrap();
        last = i * 4 + 4;
        let mut c = WalBatch::new();
        c.compact(1, 10, last, 1);
        c.compact(2, 20, last, 1);
        wal.write(&c).unwrap();
        wal.delete_unneeded_segments().unwrap();
    }
    assert!(wal.stats().segments_deleted > 0, "{:?}", wal.stats());
    assert!(!segment_files(dir.path())
        .iter()
        .any(|p| p.ends_with("00000000000000000001.wal")));
    drop(wal);
    let (_, rec) = open_small(dir.path(), 4096);
    assert!(rec.groups[&1].rejoined);
    assert!(!rec.groups[&2].rejoined);
    assert_eq!(rec.groups[&1].compacted_index, last);
}

/// What a node remembers of a replica it removed (a tombstone), and the
/// vote floor of a replica that later takes its place, survive restarts and
/// the deletion of the segments holding their records: each segment starts
/// with every tombstone kept, and its checkpoint carries each floor. A
/// creation of the incarnation takes the tombstone. Mutations: not writing
/// the tombstones at a segment's start, or the floor in a checkpoint, loses
/// them once the first segment is deleted.
#[test]
fn tombstones_and_vote_floors_survive_restarts_and_segment_deletion() {
    let dir = TempDir::new("tombstones");
    let (mut wal, _) = open_small(dir.path(), 4096);
    let old = Predecessor {
        term: 4,
        vote: 3,
        last: (4, 27),
    };
    let other = Predecessor {
        term: 2,
        vote: 0,
        last: (1, 5),
    };
    let mut b = WalBatch::new();
    b.create_group(1, 10, &[1, 2, 3]);
    b.create_group(2, 20, &[1, 2, 3]);
    b.create_group(3, 30, &[1, 2, 3]);
    wal.write(&b).unwrap();
    let mut b = WalBatch::new();
    b.remove_replica(1, 10, &old);
    b.remove_replica(3, 30, &other);
    wal.write(&b).unwrap();
    // Group 2 writes on and compacts behind itself, so that the segments
    // with the Create and Remove records go.
    let mut next = 1;
    let mut churn = |wal: &mut Wal| {
        for _ in 0..40 {
            let mut b = WalBatch::new();
            b.entries(2, 20, &entries(next, 4, 1, 200));
            wal.write(&b).unwrap();
            next += 4;
            let mut c = WalBatch::new();
            c.compact(2, 20, next - 1, 1);
            wal.write(&c).unwrap();
            wal.delete_unneeded_segments().unwrap();
        }
        assert!(!segment_files(dir.path())
            .iter()
            .any(|p| p.ends_with("00000000000000000001.wal")));
    };
    churn(&mut wal);
    drop(wal);
    let (mut wal, rec) = open_small(dir.path(), 4096);
    assert_eq!(rec.tombstones, vec![(1, 10, old), (3, 30, other)]);
    assert!(!rec.groups.contains_key(&1));

    // Node 1 is added back to group 1: the new replica takes the old one's
    // place, its term and vote, and its floor.
    let mut b = WalBatch::new();
    b.create_successor(1, 10, &[], &old);
    wal.write(&b).unwrap();
    drop(wal);
    let (mut wal, rec) = open_small(dir.path(), 4096);
    assert_eq!(
        rec.tombstones,
        vec![(3, 30, other)],
        "taken by the creation"
    );
    assert_eq!(rec.groups[&1].vote_floor, Some((4, 27)));
    assert_eq!(rec.groups[&1].store.hard_state(), hs(4, 3, 0));
    assert_eq!(rec.groups[&2].vote_floor, None);

    // And after the segment with that Create record is gone too (the
    // checkpoints carry the floor), with the replica's term moving on.
    let mut b = WalBatch::new();
    b.hard_state(1, 10, hs(6, 0, 0));
    wal.write(&b).unwrap();
    let first = segment_files(dir.path())[0].clone();
    churn(&mut wal);
    assert!(!first.exists());
    drop(wal);
    let (_, rec) = open_small(dir.path(), 4096);
    assert_eq!(rec.tombstones, vec![(3, 30, other)]);
    assert_eq!(rec.groups[&1].vote_floor, Some((4, 27)));
    assert_eq!(rec.groups[&1].store.hard_state(), hs(6, 0, 0));
    assert!(!rec.groups[&1].rejoined);
}

// ------------------------------------------------------- torn tails

/// A WAL whose last commit is one entries record; returns the model before
/// and after it, and where the last commit starts and ends in its segment.
fn wal_with_last_commit(dir: &Path) -> (Model, Model, PathBuf, u64, u64) {
    let mut model = Model::default();
    let mut rng = Rng(42);
    let (mut wal, _) = open(dir);
    random_history(&mut wal, &mut model, &mut rng, 5, 10);
    let before = model.clone();
    let seg = wal.active_segment().unwrap();
    let start = fs::metadata(&seg).unwrap().len();
    let mut w = Writer::new(&mut model);
    let last = w.model.groups[&3].last();
    w.entries(3, &entries(last + 1, 3, 50, 300));
    w.write(&mut wal);
    let end = fs::metadata(&seg).unwrap().len();
    drop(wal);
    (before, model, seg, start, end)
}

#[test]
fn torn_last_commit_is_truncated_at_every_cut_and_the_wal_stays_usable() {
    let base = TempDir::new("torn-base");
    let (before, after, seg, start, end) = wal_with_last_commit(base.path());
    {
        let (_, rec) = open(copy_of(base.path(), "torn-intact").path());
        assert_recovered(&after, &rec);
    }
    let len = end - start;
    // Inside the commit record (37 bytes), right after it, inside the
    // record header, in the middle of the payload, one byte short.
    for cut in [1, 10, 36, 37, 38, 48, len / 2, len - 1] {
        let copy = copy_of(base.path(), "torn");
        let f = copy.path().join(seg.file_name().unwrap());
        fs::OpenOptions::new()
            .write(true)
            .open(&f)
            .unwrap()
            .set_len(start + cut)
            .unwrap();
        let (mut wal, rec) = open(copy.path());
        assert_eq!(rec.truncated_tail_bytes, cut, "cut at {cut}");
        assert_recovered(&before, &rec);
        assert_eq!(fs::metadata(&f).unwrap().len(), start, "file cut back");

        // Writable afterwards, and recovers again.
        let mut model = before.clone();
        let mut w = Writer::new(&mut model);
        let last = w.model.groups[&2].last();
        w.entries(2, &entries(last + 1, 2, 60, 20))
            .hs(2, hs(60, 1, last));
        w.write(&mut wal);
        drop(wal);
        let (_, rec) = open(copy.path());
        assert_eq!(rec.truncated_tail_bytes, 0);
        assert_recovered(&model, &rec);
    }
}

fn copy_of(from: &Path, name: &str) -> TempDir {
    let t = TempDir::new(name);
    copy_dir(from, t.path());
    t
}

#[test]
fn garbage_after_the_last_commit_is_truncated() {
    let base = TempDir::new("garbage-base");
    let (_, after, seg, _, end) = wal_with_last_commit(base.path());
    let mut rng = Rng(7);
    let tails: Vec<Vec<u8>> = vec![
        rng.bytes(1),
        rng.bytes(8),
        rng.bytes(37), // as long as a commit record
        rng.bytes(4096),
        vec![0u8; 512],  // a file extended with zeros
        vec![0xFF; 100], // erased flash
    ];
    for tail in tails {
        let copy = copy_of(base.path(), "garbage");
        let f = copy.path().join(seg.file_name().unwrap());
        let mut data = fs::read(&f).unwrap();
        data.extend_from_slice(&tail);
        fs::write(&f, &data).unwrap();
        let (mut wal, rec) = open(copy.path());
        assert_eq!(rec.truncated_tail_bytes, tail.len() as u64);
        assert_recovered(&after, &rec);
        assert_eq!(fs::metadata(&f).unwrap().len(), end);
        let mut b = WalBatch::default();
        b.hard_state(1, after.groups[&1].incarnation, hs(77, 1, 0));
        wal.write(&b).unwrap();
        drop(wal);
        let (_, rec) = open(copy.path());
        assert_eq!(rec.groups[&1].store.hard_state(), hs(77, 1, 0));
    }
}

#[test]
fn a_segment_whose_header_was_never_written_is_dropped() {
    let dir = TempDir::new("torn-header");
    let (_, after, _, _, _) = wal_with_last_commit(dir.path());
    let names = segment_files(dir.path());
    let next = names.len() as u64 + 1;
    let f = dir.path().join(format!("{next:020}.wal"));
    fs::write(&f, b"MUXR").unwrap();
    let (_, rec) = open(dir.path());
    assert_eq!(rec.truncated_tail_bytes, 4);
    assert_recovered(&after, &rec);
}

/// Found by the `wal_recovery` fuzz target: a segment named (and headed)
/// with a sequence number near `u64::MAX`, or a commit record with a good
/// CRC and salt carrying one, made recovery overflow counting on from it
/// (a panic with overflow checks, a wrapped number without). Such numbers
/// are never written (2^62 commits would take a century and a half at a
/// billion a second): they are corruption. The fuzzer's input is kept in
/// fuzz/regressions/wal_recovery/.
#[test]
fn sequence_numbers_past_the_largest_a_wal_writes_are_corrupt() {
    const MAX_SEQ: u64 = 1 << 62;
    let base = TempDir::new("huge-seq-base");
    let starts = write_commits(base.path(), 3);
    assert_eq!(segment_files(base.path()).len(), 1);
    // The segment renamed, and its header changed, to a huge number.
    for seq in [MAX_SEQ + 1, u64::MAX - 1, u64::MAX] {
        let copy = copy_of(base.path(), "huge-segment-seq");
        let old = segment_files(copy.path()).remove(0);
        let mut data = fs::read(&old).unwrap();
        data[16..24].copy_from_slice(&seq.to_le_bytes());
        fs::remove_file(&old).unwrap();
        let f = copy.path().join(format!("{seq:020}.wal"));
        fs::write(&f, &data).unwrap();
        match Wal::open(WalOptions::new(copy.path())) {
            Err(WalError::Corrupt {
                segment, reason, ..
            }) => {
                assert_eq!(segment, f);
                assert!(reason.contains("sequence number"), "{seq}: {reason}");
            }
            Err(e) => panic!("{seq}: wrong error: {e}"),
            Ok(_) => panic!("segment {seq} was accepted"),
        }
    }
    // Just below the limit it is a segment like any other; opening starts
    // the segment at the limit, after which no number is left for the
    // next open's segment: that open refuses, writing nothing (found by
    // the fuzz target too: an open used to write a segment past the limit,
    // which every later open refused as corrupt).
    let copy = copy_of(base.path(), "max-segment-seq");
    let old = segment_files(copy.path()).remove(0);
    let mut data = fs::read(&old).unwrap();
    data[16..24].copy_from_slice(&(MAX_SEQ - 1).to_le_bytes());
    fs::remove_file(&old).unwrap();
    fs::write(copy.path().join(format!("{:020}.wal", MAX_SEQ - 1)), &data).unwrap();
    let (wal, rec) = open(copy.path());
    assert_eq!(rec.groups[&1].store.last_index(), 3);
    drop(wal);
    let files = segment_files(copy.path());
    assert_eq!(
        files.last(),
        Some(&copy.path().join(format!("{MAX_SEQ:020}.wal")))
    );
    for _ in 0..2 {
        match Wal::open(WalOptions::new(copy.path())) {
            Err(WalError::Exhausted { segment, max, .. }) => {
                assert_eq!((segment, max), (MAX_SEQ, MAX_SEQ));
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a segment past {MAX_SEQ} was written"),
        }
        assert_eq!(segment_files(copy.path()), files, "nothing written");
    }
    // The last commit's sequence number made huge, its CRC made right.
    let (seg, at) = starts[2].clone();
    let at = at as usize;
    for seq in [MAX_SEQ + 1, u64::MAX] {
        let copy = copy_of(base.path(), "huge-commit-seq");
        let f = copy.path().join(seg.file_name().unwrap());
        let mut data = fs::read(&f).unwrap();
        // len:u32 | crc:u32 | type:u8 | seq:u64 | body_len:u64 | count:u32 | salt:u64
        data[at + 9..at + 17].copy_from_slice(&seq.to_le_bytes());
        let crc = crc32c(&data[at + 8..at + 9 + 28]);
        data[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        fs::write(&f, &data).unwrap();
        match Wal::open(WalOptions::new(copy.path())) {
            Err(WalError::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, at as u64);
                assert!(reason.contains("sequence number"), "{seq}: {reason}");
            }
            Err(e) => panic!("commit {seq}: wrong error: {e}"),
            Ok(_) => panic!("commit {seq} was accepted"),
        }
    }
}

/// Found by the `wal_recovery` fuzz target: a checkpoint (CRC right)
/// saying a group's log ends, or is compacted, at `u64::MAX` made recovery
/// overflow computing the index after it. No log gets past 2^62 entries:
/// such an index is corruption, as is a Compact, Install or Entries record
/// past it. The input is kept in fuzz/regressions/wal_recovery/.
#[test]
fn log_indexes_past_the_largest_a_wal_writes_are_corrupt() {
    const MAX_INDEX: u64 = 1 << 62;
    let base = TempDir::new("huge-index-base");
    write_commits(base.path(), 3);
    // Reopened: segment 2 begins with a checkpoint listing group 1 (of
    // incarnation 1001); a later commit makes a damaged checkpoint
    // corruption, not a torn tail.
    let (mut wal, _) = open(base.path());
    let mut b = WalBatch::new();
    b.hard_state(1, 1001, hs(2, 1, 0));
    wal.write(&b).unwrap();
    drop(wal);
    let seg = segment_files(base.path()).pop().unwrap();
    let data = fs::read(&seg).unwrap();
    // Header, the commit record (9 + 28 bytes), then the checkpoint: count
    // (u32), then group, creation seq and offset, incarnation, term, vote,
    // commit, compacted index, compacted term, last index (u64 each).
    let cp = 32 + 9 + 28;
    assert_eq!(data[cp + 8], 2, "a checkpoint record");
    let payload = cp + 9;
    assert_eq!(
        u32::from_le_bytes(data[payload..payload + 4].try_into().unwrap()),
        1
    );
    let compacted_at = payload + 4 + 7 * 8;
    let last_at = payload + 4 + 9 * 8;
    for (what, compacted, last) in [
        ("last index", 0, u64::MAX),
        ("both", u64::MAX, u64::MAX),
        ("last index past the limit", 0, MAX_INDEX + 1),
    ] {
        let copy = copy_of(base.path(), "huge-index");
        let f = copy.path().join(seg.file_name().unwrap());
        let mut d = data.clone();
        d[compacted_at..compacted_at + 8].copy_from_slice(&compacted.to_le_bytes());
        d[last_at..last_at + 8].copy_from_slice(&last.to_le_bytes());
        let len = u32::from_le_bytes(d[cp..cp + 4].try_into().unwrap()) as usize;
        let crc = crc32c(&d[cp + 8..cp + 9 + len]);
        d[cp + 4..cp + 8].copy_from_slice(&crc.to_le_bytes());
        fs::write(&f, &d).unwrap();
        match Wal::open(WalOptions::new(copy.path())) {
            Err(WalError::Corrupt { reason, .. }) => {
                assert!(reason.contains("past the largest"), "{what}: {reason}")
            }
            Err(e) => panic!("{what}: wrong error: {e}"),
            Ok(_) => panic!("{what}: accepted"),
        }
    }
}

/// A commit record as a client can forge one in a proposal: len | crc |
/// type 1 | payload with crc = CRC-32C(type ++ payload), payload = seq,
/// body_len, count as format version 1 laid it out or, with `salt`, as
/// version 2 does (seq, body_len, count, salt) with a guessed salt.
fn forged_commit(seq: u64, body_len: u64, count: u32, salt: Option<u64>) -> Vec<u8> {
    let mut typed = vec![1u8];
    typed.extend_from_slice(&seq.to_le_bytes());
    typed.extend_from_slice(&body_len.to_le_bytes());
    typed.extend_from_slice(&count.to_le_bytes());
    if let Some(salt) = salt {
        typed.extend_from_slice(&salt.to_le_bytes());
    }
    let mut rec = Vec::new();
    rec.extend_from_slice(&(typed.len() as u32 - 1).to_le_bytes());
    rec.extend_from_slice(&crc32c(&typed).to_le_bytes());
    rec.extend_from_slice(&typed);
    rec
}

/// How a crash tore the write that carried the forged records.
#[derive(Clone, Copy, Debug)]
enum Tear {
    /// Its first page reads as zeros, the later ones made it.
    FirstPageLost,
    /// The same, and the file ends a little after the forged records.
    FirstPageLostAndCut,
    /// Its second page reads as zeros (the commit record is intact).
    SecondPageLost,
}

/// A proposal carries byte-exact commit records with plausible next
/// sequence numbers (laid out as in format version 1, and as in version 2
/// with guessed salts). The write that carries it is torn: some page never
/// reaches the disk, the pages with the forged records do. Recovery must
/// cut the torn commit, not take the forged records for later commits and
/// refuse to open — also when that write started a new segment, whose
/// header is then lost with the first page.
#[test]
fn a_commit_record_forged_in_a_payload_does_not_block_recovery_of_a_torn_tail() {
    for new_segment in [false, true] {
        for tear in [
            Tear::FirstPageLost,
            Tear::FirstPageLostAndCut,
            Tear::SecondPageLost,
        ] {
            hostile_payload_torn(new_segment, tear);
        }
    }
}

fn hostile_payload_torn(new_segment: bool, tear: Tear) {
    let what = format!("new_segment={new_segment} {tear:?}");
    let dir = TempDir::new("hostile");
    let segment_bytes = if new_segment { 1 } else { 64 << 20 };
    let mut model = Model::default();
    let (mut wal, _) = open_small(dir.path(), segment_bytes); // commit 1
    let mut w = Writer::new(&mut model);
    w.create(1, &[1, 2, 3]).entries(1, &entries(1, 5, 1, 100));
    w.write(&mut wal); // commit 2
    w.entries(1, &entries(6, 5, 1, 100)).hs(1, hs(1, 1, 5));
    w.write(&mut wal); // commit 3
    let before = w.model.clone();

    let mut forged = Vec::new();
    for seq in 4..8 {
        forged.extend_from_slice(&forged_commit(seq, 0, 0, None));
        for salt in [0, 1, seq, u64::MAX] {
            forged.extend_from_slice(&forged_commit(seq, 0, 0, Some(salt)));
        }
    }
    let mut data = vec![b'x'; 8192];
    data.extend_from_slice(&forged);
    data.extend_from_slice(&[b'y'; 100]);
    let seg_before = wal.active_segment().unwrap();
    let len_before = fs::metadata(&seg_before).unwrap().len() as usize;
    w.entries(1, &[entry(11, 1, &data)]);
    w.write(&mut wal); // commit 4, the hostile one
    let seg = wal.active_segment().unwrap();
    drop(wal);
    assert_eq!(seg != seg_before, new_segment);
    // Where the hostile write starts.
    let start = if new_segment { 0 } else { len_before };

    let mut bytes = fs::read(&seg).unwrap();
    let page_end = (start / 4096 + 1) * 4096;
    match tear {
        Tear::FirstPageLost | Tear::FirstPageLostAndCut => bytes[start..page_end].fill(0),
        Tear::SecondPageLost => bytes[page_end..page_end + 4096].fill(0),
    }
    let at = find(&bytes, &forged).expect("the forged records survive the crash");
    assert!(at >= page_end + 4096, "{what}");
    if let Tear::FirstPageLostAndCut = tear {
        bytes.truncate(at + forged.len() + 10);
    }
    // A new segment whose header is intact keeps it.
    let header_lost = new_segment && !matches!(tear, Tear::SecondPageLost);
    let cut_at = if new_segment && !header_lost {
        SEGMENT_HEADER as usize
    } else {
        start
    };
    let torn = (bytes.len() - cut_at) as u64;
    fs::write(&seg, &bytes).unwrap();

    let (mut wal, rec) = match open_small_result(dir.path(), segment_bytes) {
        Ok(r) => r,
        Err(e) => panic!("{what}: recovery refused a torn tail: {e}"),
    };
    assert_eq!(rec.truncated_tail_bytes, torn, "{what}");
    assert_recovered(&before, &rec);
    if header_lost {
        assert!(!seg.exists(), "{what}: the torn segment is removed");
    } else {
        assert_eq!(
            fs::metadata(&seg).unwrap().len(),
            cut_at as u64,
            "{what}: file cut back"
        );
    }

    // And the WAL goes on.
    let mut model = before.clone();
    let mut w = Writer::new(&mut model);
    w.entries(1, &entries(11, 1, 2, 10)).hs(1, hs(2, 1, 10));
    w.write(&mut wal);
    drop(wal);
    let (_, rec) = open_small(dir.path(), segment_bytes);
    assert_recovered(&model, &rec);
}

/// Commits of a WAL, each with its segment and where it starts: the
/// segment's length before each write.
fn write_commits(dir: &Path, n: u64) -> Vec<(PathBuf, u64)> {
    let mut model = Model::default();
    let (mut wal, _) = open(dir);
    let mut starts = Vec::new();
    let mut w = Writer::new(&mut model);
    w.create(1, &[1, 2, 3]);
    for i in 1..=n {
        let seg = wal.active_segment().unwrap();
        starts.push((seg.clone(), fs::metadata(&seg).unwrap().len()));
        w.entries(1, &entries(i, 1, 1, 50)).hs(1, hs(1, 1, i - 1));
        w.write(&mut wal);
    }
    drop(wal);
    starts
}

/// Rule (b): a commit record that does not count, followed by genuine
/// (salted, newer) commits, is corruption, not a torn tail — whatever part
/// of it is damaged.
#[test]
fn a_damaged_commit_record_followed_by_later_commits_is_reported() {
    let base = TempDir::new("commit-header-base");
    let starts = write_commits(base.path(), 10);
    let (seg, at) = starts[4].clone();
    let at = at as usize;
    // Length, CRC, type, seq, body_len, count, salt; then the whole record.
    type Damage = fn(&mut [u8], usize);
    let damages: [(&str, Damage); 8] = [
        ("length", |d, at| d[at] ^= 0x01),
        ("crc", |d, at| d[at + 5] ^= 0x40),
        ("type", |d, at| d[at + 8] = 2),
        ("seq", |d, at| d[at + 9] ^= 0x01),
        ("body_len", |d, at| d[at + 17] ^= 0x02),
        ("count", |d, at| d[at + 25] ^= 0x01),
        ("salt", |d, at| d[at + 36] ^= 0x80),
        ("zeroed", |d, at| d[at..at + 37].fill(0)),
    ];
    for (what, damage) in damages {
        let copy = copy_of(base.path(), "commit-header");
        let f = copy.path().join(seg.file_name().unwrap());
        let mut data = fs::read(&f).unwrap();
        damage(&mut data, at);
        fs::write(&f, &data).unwrap();
        match Wal::open(WalOptions::new(copy.path())) {
            Err(WalError::Corrupt {
                segment,
                offset,
                reason,
            }) => {
                assert_eq!(segment, f, "{what}");
                assert_eq!(offset, at as u64, "{what}");
                assert!(reason.contains("follows"), "{what}: {reason}");
            }
            Err(e) => panic!("{what}: wrong error: {e}"),
            Ok(_) => panic!("{what}: a damaged commit was skipped or cut"),
        }
        assert_eq!(fs::read(&f).unwrap(), data, "{what}: nothing truncated");
    }
    // The same damage to the last commit is a torn tail.
    let (seg, at) = starts[9].clone();
    let f = base.path().join(seg.file_name().unwrap());
    let mut data = fs::read(&f).unwrap();
    let len = data.len() as u64;
    data[at as usize + 5] ^= 0x40;
    fs::write(&f, &data).unwrap();
    let (_, rec) = open(base.path());
    assert_eq!(rec.truncated_tail_bytes, len - at);
    assert_eq!(rec.groups[&1].store.last_index(), 9);
}

/// A lost page zeroes the length field of a record header while the CRC
/// and type after it survive on the next page: the record reads as an empty
/// record with the original CRC. Record CRCs are not salted, so a client who
/// chose the payload can have made that CRC equal CRC-32C of the type byte
/// alone, and the damaged record passes its CRC check but cannot decode. In
/// the last commit that is a torn tail (rule a), not corruption; with a
/// later commit after it, it is corruption.
#[test]
fn a_record_with_a_good_crc_that_cannot_decode_in_a_torn_commit_is_cut() {
    // What the damaged record header looks like: length 0, the forged CRC,
    // type Entries.
    let forge = |d: &mut [u8], record_at: usize| {
        d[record_at..record_at + 4].fill(0);
        d[record_at + 4..record_at + 8].copy_from_slice(&crc32c(&[6]).to_le_bytes());
        assert_eq!(d[record_at + 8], 6, "an Entries record");
    };
    const COMMIT_RECORD: usize = 37;

    // The last commit: cut as a torn tail.
    let base = TempDir::new("forged-crc");
    let (before, _, seg, start, end) = wal_with_last_commit(base.path());
    let mut data = fs::read(&seg).unwrap();
    forge(&mut data, start as usize + COMMIT_RECORD);
    fs::write(&seg, &data).unwrap();
    let (_, rec) = match Wal::open(WalOptions::new(base.path())) {
        Ok(r) => r,
        Err(e) => panic!("recovery refused a torn tail: {e}"),
    };
    assert_eq!(rec.truncated_tail_bytes, end - start);
    assert_recovered(&before, &rec);

    // A commit in the middle, with later commits after it: corruption.
    let dir = TempDir::new("forged-crc-middle");
    let starts = write_commits(dir.path(), 10);
    let (seg, at) = starts[4].clone();
    let mut data = fs::read(&seg).unwrap();
    forge(&mut data, at as usize + COMMIT_RECORD);
    fs::write(&seg, &data).unwrap();
    match Wal::open(WalOptions::new(dir.path())) {
        Err(WalError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, at + COMMIT_RECORD as u64);
            assert!(reason.contains("follows"), "{reason}");
        }
        r => panic!("expected Corrupt, got {:?}", r.map(|_| ())),
    }
}

#[test]
fn a_damaged_header_of_a_last_segment_with_commits_is_reported() {
    let dir = TempDir::new("damaged-header");
    let starts = write_commits(dir.path(), 3);
    let seg = starts[0].0.clone();
    let mut data = fs::read(&seg).unwrap();
    data[0] ^= 0xFF; // bad magic; the salt after it is intact
    fs::write(&seg, &data).unwrap();
    match Wal::open(WalOptions::new(dir.path())) {
        Err(WalError::Corrupt { reason, .. }) => assert!(reason.contains("magic"), "{reason}"),
        r => panic!("expected Corrupt, got {:?}", r.map(|_| ())),
    }
}

#[test]
fn version_1_segments_are_refused_by_name() {
    let dir = TempDir::new("v1");
    fs::create_dir_all(dir.path()).unwrap();
    // A version 1 segment: 24-byte header, then an (unsalted) commit.
    let mut data = b"MUXRWAL\0".to_vec();
    data.extend_from_slice(&1u32.to_le_bytes());
    data.extend_from_slice(&0u32.to_le_bytes());
    data.extend_from_slice(&1u64.to_le_bytes());
    data.extend_from_slice(&forged_commit(1, 0, 0, None));
    let f = dir.path().join(format!("{:020}.wal", 1));
    fs::write(&f, &data).unwrap();
    match Wal::open(WalOptions::new(dir.path())) {
        Err(WalError::Corrupt {
            segment, reason, ..
        }) => {
            assert_eq!(segment, f);
            assert!(reason.contains("version 1"), "{reason}");
        }
        r => panic!("expected Corrupt, got {:?}", r.map(|_| ())),
    }
    assert_eq!(fs::read(&f).unwrap(), data, "left alone");
}

// ------------------------------------------------------- corruption

const MARKER: &[u8] = b"<<this entry gets corrupted>>";

#[test]
fn a_flipped_byte_in_an_early_record_is_reported_not_skipped() {
    let dir = TempDir::new("corrupt-middle");
    let mut model = Model::default();
    let (mut wal, _) = open(dir.path());
    let mut w = Writer::new(&mut model);
    w.create(1, &[1, 2, 3]).entries(1, &[entry(1, 1, MARKER)]);
    w.write(&mut wal);
    for i in 2..10 {
        w.entries(1, &[entry(i, 1, b"later, valid")]);
        w.write(&mut wal);
    }
    let seg = wal.active_segment().unwrap();
    drop(wal);

    let mut data = fs::read(&seg).unwrap();
    let at = find(&data, MARKER).unwrap();
    data[at + 5] ^= 0x01;
    fs::write(&seg, &data).unwrap();
    match Wal::open(WalOptions::new(dir.path())) {
        Err(WalError::Corrupt {
            segment,
            offset,
            reason,
        }) => {
            assert_eq!(segment, seg);
            assert!(
                offset < at as u64 && at as u64 - offset < 64,
                "offset {offset} vs {at}"
            );
            assert!(reason.contains("CRC"), "{reason}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("corruption was skipped"),
    }
    // Nothing was truncated by the failed open.
    assert_eq!(fs::read(&seg).unwrap(), data);
}

#[test]
fn corruption_in_a_non_last_segment_is_reported() {
    let dir = TempDir::new("corrupt-old");
    let (mut wal, _) = open_small(dir.path(), 512);
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    w.create(1, &[1]).entries(1, &[entry(1, 1, MARKER)]);
    w.write(&mut wal);
    let first = wal.active_segment().unwrap();
    for i in 2..40 {
        w.entries(1, &entries(i, 1, 1, 100));
        w.write(&mut wal);
    }
    assert_ne!(wal.active_segment().unwrap(), first);
    drop(wal);

    // A flipped byte in the old segment.
    let copy = copy_of(dir.path(), "corrupt-old-flip");
    let f = copy.path().join(first.file_name().unwrap());
    let mut data = fs::read(&f).unwrap();
    let at = find(&data, MARKER).unwrap();
    data[at] ^= 0x80;
    fs::write(&f, &data).unwrap();
    match Wal::open(WalOptions::new(copy.path())) {
        Err(WalError::Corrupt { segment, .. }) => assert_eq!(segment, f),
        r => panic!("expected Corrupt, got {:?}", r.map(|_| ())),
    }

    // A cut-off tail is torn only in the last segment; anywhere else it is
    // corruption.
    let copy = copy_of(dir.path(), "corrupt-old-cut");
    let f = copy.path().join(first.file_name().unwrap());
    let len = fs::metadata(&f).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    match Wal::open(WalOptions::new(copy.path())) {
        Err(WalError::Corrupt { segment, .. }) => assert_eq!(segment, f),
        r => panic!("expected Corrupt, got {:?}", r.map(|_| ())),
    }

    // Intact, it all recovers.
    let (_, rec) = open(dir.path());
    assert_recovered(&model, &rec);
}

// ------------------------------------------------------- group commit

#[test]
fn one_write_for_a_thousand_groups_costs_one_fsync() {
    let dir = TempDir::new("group-commit");
    let (mut wal, _) = open(dir.path());
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    for g in 1..=1000 {
        w.create(g, &[1, 2, 3]);
    }
    let before = wal.stats().fsyncs;
    w.write(&mut wal);
    assert_eq!(wal.stats().fsyncs - before, 1);

    // Every group's entries and hard state in one batch: one fsync.
    for g in 1..=1000 {
        w.entries(g, &entries(1, 2, 1, 64)).hs(g, hs(1, 1, 0));
    }
    let before = wal.stats();
    w.write(&mut wal);
    let after = wal.stats();
    assert_eq!(after.fsyncs - before.fsyncs, 1);
    assert_eq!(after.records - before.records, 2000);
    eprintln!(
        "group commit: 1000 groups, {} records, {} bytes, {} fsync",
        after.records - before.records,
        after.bytes - before.bytes,
        after.fsyncs - before.fsyncs
    );
    drop(wal);
    let (_, rec) = open(dir.path());
    assert_recovered(&model, &rec);
}

#[test]
fn a_hundred_writes_cost_a_hundred_fsyncs() {
    let dir = TempDir::new("hundred");
    let (mut wal, _) = open(dir.path());
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    w.create(1, &[1]);
    w.write(&mut wal);
    let before = wal.stats().fsyncs;
    for i in 1..=100 {
        w.entries(1, &entries(i, 1, 1, 16));
        w.write(&mut wal);
    }
    assert_eq!(wal.stats().fsyncs - before, 100);
    // An empty batch writes nothing and syncs nothing.
    wal.write(&WalBatch::default()).unwrap();
    assert_eq!(wal.stats().fsyncs - before, 100);
}

#[test]
fn invalid_batches_are_refused_and_nothing_is_written() {
    let dir = TempDir::new("invalid");
    let (mut wal, _) = open(dir.path());
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    w.create(1, &[1]).entries(1, &entries(1, 3, 1, 4));
    w.write(&mut wal);
    let bytes = wal.stats().bytes;
    let inc = model.groups[&1].incarnation;

    let refused = |wal: &mut Wal, b: &WalBatch| {
        assert!(matches!(wal.write(b), Err(WalError::InvalidBatch(_))));
    };
    let mut b = WalBatch::default();
    b.hard_state(2, inc, hs(1, 0, 0));
    refused(&mut wal, &b);
    let mut b = WalBatch::default();
    b.entries(1, inc, &entries(5, 1, 1, 4)); // leaves a gap after 3
    refused(&mut wal, &b);
    let mut b = WalBatch::default();
    b.create_group(1, inc + 1, &[1]);
    refused(&mut wal, &b);
    let mut b = WalBatch::default();
    b.entries(1, inc, &[entry(4, 1, b"a"), entry(6, 1, b"b")]);
    refused(&mut wal, &b);
    let mut b = WalBatch::default();
    b.remove_group(1);
    b.hard_state(1, inc, hs(1, 0, 0));
    refused(&mut wal, &b);
    assert_eq!(wal.stats().bytes, bytes);

    // Still usable.
    let mut w = Writer::new(&mut model);
    w.entries(1, &entries(4, 1, 1, 4));
    w.write(&mut wal);
    drop(wal);
    let (_, rec) = open(dir.path());
    assert_recovered(&model, &rec);
}

/// A WAL on a MemFs (tiny segments, so writes also roll).
fn open_mem(fs: &MemFs, segment_bytes: u64) -> Result<(Wal, Recovered), WalError> {
    let mut o = WalOptions::new("/mem/wal");
    o.segment_bytes = segment_bytes;
    Wal::open_with(o, Arc::new(fs.clone()))
}

#[test]
fn a_failed_write_or_sync_fails_the_wal_until_it_is_reopened() {
    // Each way a write can fail: a short append, a failed data sync, a
    // failed directory sync when rolling, a failed segment creation.
    // (segment_bytes 1: every write starts a segment.)
    type Arm = fn(&MemFs);
    let faults: [(&str, u64, Arm); 6] = [
        ("append", 1 << 20, MemFs::fail_next_append),
        ("sync", 1 << 20, MemFs::fail_next_sync),
        ("append when rolling", 1, MemFs::fail_next_append),
        ("sync when rolling", 1, MemFs::fail_next_sync),
        ("dir sync", 1, |fs| fs.fail_after(3)), // create, append, sync, dir sync
        ("create", 1, |fs| fs.fail_after(0)),
    ];
    for (what, segment_bytes, arm) in faults {
        let fs = MemFs::new(1);
        let mut model = Model::default();
        let (mut wal, _) = open_mem(&fs, segment_bytes).unwrap();
        let mut w = Writer::new(&mut model);
        w.create(1, &[1, 2, 3]).entries(1, &entries(1, 3, 1, 10));
        w.write(&mut wal);
        let durable = w.model.clone();

        let mut b = WalBatch::default();
        b.entries(1, durable.groups[&1].incarnation, &entries(4, 2, 1, 5000));
        arm(&fs);
        assert!(
            matches!(wal.write(&b), Err(WalError::Io(_))),
            "{what}: the write fails"
        );
        assert!(!fs.fault_pending(), "{what}: the fault was hit");
        assert!(matches!(wal.write(&b), Err(WalError::Failed)), "{what}");
        assert!(
            matches!(wal.delete_unneeded_segments(), Err(WalError::Failed)),
            "{what}"
        );
        drop(wal);

        // Reopened (no crash): the failed write is there whole or not at all.
        let (_, rec) = open_mem(&fs, segment_bytes).unwrap();
        let mut attempted = durable.clone();
        Writer::new(&mut attempted).entries(1, &entries(4, 2, 1, 5000));
        if rec.groups[&1].store.last_index() == 3 {
            assert_recovered(&durable, &rec);
        } else {
            assert_recovered(&attempted, &rec);
        }
    }
}

/// A host persisting the Ready of a group id that was removed and created
/// again (a new incarnation) must not write into the new group's log: the
/// WAL refuses the whole batch, naming the group and both incarnations.
#[test]
fn a_batch_for_another_incarnation_of_a_group_is_refused_whole() {
    let dir = TempDir::new("incarnation");
    let (mut wal, _) = open_small(dir.path(), 512);
    let mut b = WalBatch::default();
    b.create_group(7, 1, &[1, 2, 3]);
    b.entries(7, 1, &entries(1, 3, 1, 8));
    b.create_group(8, 5, &[1]);
    wal.write(&b).unwrap();
    // Group 7 is removed and created again as incarnation 2.
    let mut b = WalBatch::default();
    b.remove_group(7);
    b.create_group(7, 2, &[4, 5, 6]);
    wal.write(&b).unwrap();
    let bytes = wal.stats().bytes;

    let refused = |wal: &mut Wal, b: &WalBatch, theirs: u64, ours: u64| match wal.write(b) {
        Err(WalError::InvalidBatch(m)) => assert!(
            m.contains("group 7")
                && m.contains(&format!("incarnation {theirs}"))
                && m.contains(&format!("incarnation {ours}")),
            "{m}"
        ),
        r => panic!("expected InvalidBatch, got {:?}", r.map(|_| ())),
    };
    // Stale entries and hard state of incarnation 1, next to valid records
    // of group 8.
    let mut b = WalBatch::default();
    b.entries(8, 5, &entries(1, 1, 1, 8));
    b.entries(7, 1, &entries(4, 1, 1, 8));
    refused(&mut wal, &b, 1, 2);
    let mut b = WalBatch::default();
    b.hard_state(8, 5, hs(1, 1, 0));
    b.hard_state(7, 1, hs(1, 1, 3));
    refused(&mut wal, &b, 1, 2);
    // A number from the future is refused as well.
    let mut b = WalBatch::default();
    b.entries(7, 3, &entries(1, 1, 1, 8));
    refused(&mut wal, &b, 3, 2);
    // Removed and created again within the batch: later records must name
    // the new incarnation.
    let mut b = WalBatch::default();
    b.remove_group(7);
    b.create_group(7, 3, &[1]);
    b.hard_state(7, 2, hs(1, 1, 0));
    refused(&mut wal, &b, 2, 3);
    assert_eq!(wal.stats().bytes, bytes, "nothing written");

    // The WAL is still usable, and recovery returns the incarnations.
    let mut b = WalBatch::default();
    b.entries(7, 2, &entries(1, 2, 4, 8));
    b.hard_state(7, 2, hs(4, 4, 1));
    b.entries(8, 5, &entries(1, 1, 1, 8));
    wal.write(&b).unwrap();
    // More segments: their checkpoints list both groups with their
    // incarnations, which recovery checks against the Create records.
    for i in 0..10 {
        let mut b = WalBatch::default();
        b.entries(8, 5, &entries(2 + i, 1, 1, 100));
        wal.write(&b).unwrap();
    }
    assert!(wal.stats().segments > 2);
    wal.delete_unneeded_segments().unwrap();
    drop(wal);
    let (_, rec) = open_small(dir.path(), 512);
    assert_eq!(rec.groups[&7].incarnation, 2);
    assert_eq!(rec.groups[&7].members, vec![4, 5, 6]);
    assert_eq!(rec.groups[&7].store.last_index(), 2);
    assert_eq!(rec.groups[&7].store.term(1), Ok(4));
    assert_eq!(rec.groups[&8].incarnation, 5);
    assert_eq!(rec.groups[&8].store.last_index(), 11);
}

// ------------------------------------------------- segments and deletion

#[test]
fn segments_roll_and_recovery_reads_them_all() {
    let dir = TempDir::new("roll");
    let (mut wal, _) = open_small(dir.path(), 4096);
    let mut model = Model::default();
    let mut rng = Rng(5);
    random_history(&mut wal, &mut model, &mut rng, 20, 60);
    let segs = wal.stats().segments;
    assert!(segs > 10, "only {segs} segments");
    assert_eq!(segment_files(dir.path()).len(), segs);
    drop(wal);
    let (_, rec) = open_small(dir.path(), 4096);
    assert_eq!(rec.segments, segs);
    assert_recovered(&model, &rec);
}

#[test]
fn a_rolling_write_costs_one_data_sync_and_one_directory_sync() {
    let dir = TempDir::new("roll-fsync");
    let (mut wal, _) = open_small(dir.path(), 1);
    let mut b = WalBatch::default();
    b.create_group(1, 1, &[1]);
    let before = wal.stats();
    wal.write(&b).unwrap();
    let after = wal.stats();
    assert_eq!(after.fsyncs - before.fsyncs, 2);
    assert_eq!(after.segments, before.segments + 1);
}

#[test]
fn removed_groups_free_their_segments_and_live_groups_survive_deletion() {
    let dir = TempDir::new("delete-removed");
    let (mut wal, _) = open_small(dir.path(), 2048);
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    // Group 1 is created first, but gets its entries only much later: its
    // creation record is in a segment that will be deleted.
    w.create(1, &[1, 2, 3]).hs(1, hs(1, 1, 0));
    w.write(&mut wal);
    let first_segment = wal.active_segment().unwrap();
    // Short-lived groups fill many segments.
    for g in 100..140 {
        w.create(g, &[1, 2]).entries(g, &entries(1, 5, 1, 100));
        w.write(&mut wal);
    }
    // Group 2 lives on, with entries spread over the old segments.
    w.create(2, &[1, 2, 3]);
    for i in 0..30 {
        w.entries(2, &entries(i * 2 + 1, 2, 1, 100));
        w.write(&mut wal);
    }
    assert_eq!(
        wal.delete_unneeded_segments().unwrap(),
        0,
        "all still needed"
    );
    for g in 100..140 {
        w.remove(g);
    }
    w.entries(1, &entries(1, 3, 2, 10)).hs(1, hs(2, 1, 3));
    w.write(&mut wal);

    let segs_before = wal.stats().segments;
    let deleted = wal.delete_unneeded_segments().unwrap();
    assert!(deleted > 5, "deleted {deleted} of {segs_before}");
    assert_eq!(wal.stats().segments, segs_before - deleted);
    assert_eq!(wal.stats().segments_deleted, deleted as u64);
    assert_eq!(segment_files(dir.path()).len(), segs_before - deleted);
    assert!(
        !first_segment.exists(),
        "group 1's creation segment was deleted"
    );
    assert_eq!(
        wal.delete_unneeded_segments().unwrap(),
        0,
        "nothing more to do"
    );
    drop(wal);

    let (mut wal, rec) = open_small(dir.path(), 2048);
    assert_recovered(&model, &rec);
    assert_eq!(rec.groups.len(), 2);

    // Deletion after recovery uses the rebuilt bookkeeping, and group 2's
    // segments are never deleted.
    let mut w = Writer::new(&mut model);
    w.entries(2, &entries(61, 1, 3, 10));
    w.write(&mut wal);
    wal.delete_unneeded_segments().unwrap();
    drop(wal);
    let (_, rec) = open_small(dir.path(), 2048);
    assert_recovered(&model, &rec);
}

#[test]
fn overwritten_entries_across_deleted_segments_recover_exactly() {
    // segment_bytes = 1: every write starts a new segment.
    let dir = TempDir::new("delete-overwritten");
    let (mut wal, _) = open_small(dir.path(), 1);
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    w.create(1, &[1, 2, 3]).create(2, &[1, 2, 3]);
    w.entries(1, &entries(1, 5, 1, 10))
        .entries(2, &entries(1, 1, 1, 10));
    w.write(&mut wal); // A: 1[1..5], 2[1]
    w.entries(1, &entries(6, 5, 1, 10));
    w.write(&mut wal); // B: 1[6..10]
    w.entries(1, &entries(11, 5, 1, 10))
        .entries(2, &entries(2, 1, 1, 10));
    w.write(&mut wal); // C: 1[11..15] (to be overwritten), 2[2] keeps C
    w.entries(1, &entries(4, 3, 2, 10)).hs(1, hs(2, 2, 3));
    w.write(&mut wal); // D: 1[4..6] replaces 4..=15
    let segs = segment_files(dir.path());

    // B holds only overwritten entries (and the open-time segment nothing).
    assert_eq!(wal.delete_unneeded_segments().unwrap(), 2);
    let left = segment_files(dir.path());
    assert_eq!(left.len(), segs.len() - 2);
    drop(wal);

    // Replay sees 1[1..5] (A), then 1[11..15] (C) after a hole that the
    // deleted B left, then the overwrite from 4 (D) that fills it.
    let (_, rec) = open_small(dir.path(), 1);
    assert_recovered(&model, &rec);
    assert_eq!(rec.groups[&1].store.last_index(), 6);
}

#[test]
fn a_recreated_group_does_not_inherit_the_old_log_when_the_removal_segment_is_gone() {
    let dir = TempDir::new("delete-recreate");
    let (mut wal, _) = open_small(dir.path(), 1);
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    w.create(1, &[1, 2, 3]).create(9, &[1]);
    w.entries(1, &entries(1, 3, 1, 10))
        .entries(9, &entries(1, 1, 1, 10));
    w.write(&mut wal); // kept: group 9 needs it; holds group 1's old log
    w.remove(1).create(1, &[4, 5, 6]);
    w.write(&mut wal); // deleted: only creation and removal
    w.hs(1, hs(3, 4, 0));
    w.write(&mut wal);
    let removal_segment = segment_files(dir.path())[2].clone();
    assert!(wal.delete_unneeded_segments().unwrap() >= 1);
    assert!(!removal_segment.exists());
    drop(wal);
    let (_, rec) = open_small(dir.path(), 1);
    assert_recovered(&model, &rec);
    assert_eq!(rec.groups[&1].store.last_index(), 0);
    assert_eq!(rec.groups[&1].members, vec![4, 5, 6]);
}

#[test]
fn crc32c_check_value() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}

/// Random histories — groups created, removed and re-created, appends,
/// overwrites, hard states, compaction — with tiny segments, deletion after
/// every write, and now and then a crash, sometimes tearing the last
/// commit: every reopen must rebuild exactly what was durably written.
#[test]
fn random_histories_with_deletion_and_crashes_recover_exactly() {
    let seeds: u64 = std::env::var("MUXRAFT_WAL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let (mut torn, mut compactions, mut installs) = (0, 0, 0);
    for seed in 1..=seeds {
        let (t, model) = random_history_with_crashes(seed);
        torn += t;
        compactions += model.compactions;
        installs += model.installs;
    }
    assert!(torn > 0, "no commit was ever torn");
    assert!(compactions > 0 && installs > 0, "{compactions} {installs}");
}

/// Add 1 to 4 random operations on groups 1..=8 to the batch: creations
/// (with a new incarnation), removals, appends, overwrites of a suffix
/// (entries of up to `max_size` bytes), hard states, compactions (some at
/// or below the compaction point: no-ops) and snapshot installs (within or
/// beyond the log, sometimes followed by entries in the same batch).
fn random_batch(w: &mut Writer, rng: &mut Rng, step: u64, max_size: u64) {
    for _ in 0..1 + rng.below(4) {
        let g = 1 + rng.below(8);
        let exists = w.model.groups.contains_key(&g);
        let (c, last) = match w.model.groups.get(&g) {
            Some(m) => (m.compacted.0, m.last()),
            None => (0, 0),
        };
        match rng.below(20) {
            0 | 1 if exists => {
                w.remove(g);
            }
            0..=3 if !exists => {
                w.create(g, &[g, g + 1]);
            }
            4 | 5 if exists => {
                let index = if rng.below(4) == 0 {
                    rng.below(c + 1)
                } else {
                    c + rng.below(last - c + 1)
                };
                w.compact(g, index);
            }
            6 if exists => {
                let index = (c + rng.below(last - c + 4)).max(1);
                w.install(g, index, step + 1);
                if rng.below(2) == 0 {
                    let size = rng.below(max_size) as usize;
                    w.entries(g, &entries(index + 1, 1 + rng.below(3), step + 1, size));
                }
            }
            _ if exists => {
                let first = if last > c && rng.below(4) == 0 {
                    c + 1 + rng.below(last - c)
                } else {
                    last + 1
                };
                let n = 1 + rng.below(3);
                let size = rng.below(max_size) as usize;
                w.entries(g, &entries(first, n, step + 1, size));
                if rng.below(2) == 0 {
                    w.hs(g, hs(step + 1, g, first - 1));
                }
            }
            _ => {}
        }
    }
}

/// One random history; returns how many times its last commit was torn,
/// and the model at the end.
fn random_history_with_crashes(seed: u64) -> (u64, Model) {
    let dir = TempDir::new("random");
    let mut rng = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    let mut model = Model::default();
    let segment_bytes = 256 + rng.below(2048);
    let (mut wal, _) = open_small(dir.path(), segment_bytes);
    let (mut deleted, mut torn) = (0, 0);
    for step in 0..150u64 {
        let durable = model.clone();
        let seg_before = wal.active_segment().unwrap();
        let len_before = fs::metadata(&seg_before).unwrap().len();
        let mut w = Writer::new(&mut model);
        random_batch(&mut w, &mut rng, step, 120);
        let wrote = !w.batch.is_empty();
        w.write(&mut wal);
        if rng.below(12) == 0 {
            // Crash; half the time the last write never fully reached the disk.
            let seg = wal.active_segment().unwrap();
            drop(wal);
            let mut expect = 0;
            if wrote && rng.below(2) == 0 {
                let start = if seg == seg_before {
                    len_before
                } else {
                    SEGMENT_HEADER
                };
                let end = fs::metadata(&seg).unwrap().len();
                let cut = start + 1 + rng.below(end - start - 1);
                let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
                f.set_len(cut).unwrap();
                expect = cut - start;
                model = durable;
                torn += 1;
            }
            let (w2, rec) = open_small(dir.path(), segment_bytes);
            assert_eq!(rec.truncated_tail_bytes, expect, "seed {seed} step {step}");
            assert_recovered(&model, &rec);
            wal = w2;
        }
        deleted += wal.delete_unneeded_segments().unwrap();
    }
    drop(wal);
    let (_, rec) = open_small(dir.path(), segment_bytes);
    assert_recovered(&model, &rec);
    assert!(deleted > 0, "seed {seed}: nothing was ever deleted");
    (torn, model)
}

// ------------------------------------------- compaction and snapshot installs

/// Group 1 gets `writes` batches of 5 entries (100 bytes each) and a hard
/// state, in segments of `segment_bytes`.
fn group_with_entries(wal: &mut Wal, model: &mut Model, writes: u64) {
    let mut w = Writer::new(model);
    w.create(1, &[1, 2, 3]);
    for i in 0..writes {
        w.entries(1, &entries(i * 5 + 1, 5, 1, 100))
            .hs(1, hs(1, 1, i * 5));
        w.write(wal);
    }
}

#[test]
fn compaction_frees_the_segments_below_it_and_recovery_starts_the_log_after_it() {
    let dir = TempDir::new("compact");
    let (mut wal, _) = open_small(dir.path(), 1024);
    let mut model = Model::default();
    group_with_entries(&mut wal, &mut model, 20);
    assert_eq!(wal.delete_unneeded_segments().unwrap(), 0, "all needed");
    let segments = wal.stats().segments;

    let mut w = Writer::new(&mut model);
    w.compact(1, 52);
    w.write(&mut wal);
    let deleted = wal.delete_unneeded_segments().unwrap();
    assert!(deleted >= segments / 3, "deleted {deleted} of {segments}");
    drop(wal);

    let (_, rec) = open_small(dir.path(), 1024);
    assert_recovered(&model, &rec);
    let g = &rec.groups[&1];
    assert_eq!((g.compacted_index, g.compacted_term), (52, 1));
    assert_eq!(g.store.first_index(), 53);
    assert_eq!(g.store.term(52), Ok(1), "log matching across the point");
    assert!(g.store.entries(52, 54, u64::MAX).is_err(), "compacted away");
    assert_eq!(g.store.last_index(), 100);
}

#[test]
fn an_entries_record_straddling_a_compaction_point_is_trimmed_by_recovery() {
    let dir = TempDir::new("compact-straddle");
    let (mut wal, _) = open(dir.path());
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    w.create(1, &[1]).entries(1, &entries(1, 10, 2, 40));
    w.write(&mut wal);
    let seq = wal.segments().last().unwrap().seq;
    let before = wal.live_bytes_in(seq).unwrap();
    w.compact(1, 4);
    w.write(&mut wal);
    // Six of ten entries are still needed: about 60% of the record.
    let after = wal.live_bytes_in(seq).unwrap();
    assert!(
        after * 10 >= before * 5 && after * 10 <= before * 7,
        "{before} -> {after}"
    );
    drop(wal);
    let (_, rec) = open(dir.path());
    assert_recovered(&model, &rec);
    assert_eq!(rec.groups[&1].store.first_index(), 5);
    assert_eq!(rec.groups[&1].store.term(4), Ok(2));
}

#[test]
fn an_installed_snapshot_replaces_the_log_and_entries_may_follow_in_the_same_batch() {
    let dir = TempDir::new("install");
    let (mut wal, _) = open_small(dir.path(), 1024);
    let mut model = Model::default();
    group_with_entries(&mut wal, &mut model, 6);
    // Beyond the log, with entries after it in the same batch.
    let mut w = Writer::new(&mut model);
    w.install(1, 100, 3)
        .entries(1, &entries(101, 2, 3, 10))
        .hs(1, hs(3, 2, 100));
    w.write(&mut wal);
    assert!(
        wal.delete_unneeded_segments().unwrap() > 0,
        "the old log is gone"
    );
    drop(wal);
    let (mut wal, rec) = open_small(dir.path(), 1024);
    assert_recovered(&model, &rec);
    let s = &rec.groups[&1].store;
    assert_eq!((s.first_index(), s.last_index()), (101, 102));
    assert_eq!(s.term(100), Ok(3));

    // Below the last index: the log is still replaced, and ends there.
    let mut w = Writer::new(&mut model);
    w.install(1, 101, 3);
    w.write(&mut wal);
    drop(wal);
    let (_, rec) = open_small(dir.path(), 1024);
    assert_recovered(&model, &rec);
    assert_eq!(rec.groups[&1].store.last_index(), 101);
    assert_eq!(rec.groups[&1].store.first_index(), 102);
}

#[test]
fn compactions_and_installs_are_checked_like_the_other_records() {
    let dir = TempDir::new("compact-invalid");
    let (mut wal, _) = open(dir.path());
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    w.create(1, &[1])
        .entries(1, &entries(1, 10, 1, 4))
        .compact(1, 5);
    w.write(&mut wal);
    let bytes = wal.stats().bytes;
    let inc = model.groups[&1].incarnation;

    let refused = |wal: &mut Wal, b: &WalBatch, what: &str| match wal.write(b) {
        Err(WalError::InvalidBatch(m)) => assert!(m.contains("group 1"), "{what}: {m}"),
        r => panic!("{what}: expected InvalidBatch, got {:?}", r.map(|_| ())),
    };
    let mut b = WalBatch::new();
    b.compact(1, inc, 11, 1);
    refused(&mut wal, &b, "compaction beyond the last index");
    let mut b = WalBatch::new();
    b.compact(1, inc + 1, 6, 1);
    refused(&mut wal, &b, "compaction of another incarnation");
    let mut b = WalBatch::new();
    b.install_snapshot(1, inc + 1, 20, 1);
    refused(&mut wal, &b, "install for another incarnation");
    let mut b = WalBatch::new();
    b.entries(1, inc, &entries(5, 2, 2, 4));
    refused(&mut wal, &b, "entries at the compaction point");
    let mut b = WalBatch::new();
    b.install_snapshot(1, inc, 4, 1);
    refused(&mut wal, &b, "install below the compaction point");
    let mut b = WalBatch::new();
    b.install_snapshot(1, inc, 0, 1);
    refused(&mut wal, &b, "install at 0");
    let mut b = WalBatch::new();
    b.install_snapshot(1, inc, 30, 2);
    b.entries(1, inc, &entries(32, 1, 2, 4));
    refused(&mut wal, &b, "a gap after an install");
    let mut b = WalBatch::new();
    b.compact(1, inc, 8, 1);
    b.entries(1, inc, &entries(8, 1, 2, 4));
    refused(
        &mut wal,
        &b,
        "entries below a compaction earlier in the batch",
    );
    let mut b = WalBatch::new();
    b.rewrite_entries(1, inc, &entries(6, 4, 1, 4));
    refused(&mut wal, &b, "a rewrite that would cut the log");
    let mut b = WalBatch::new();
    b.remove_group(1);
    b.compact(1, inc, 6, 1);
    refused(&mut wal, &b, "compaction of a removed group");
    assert_eq!(wal.stats().bytes, bytes, "nothing written");

    // A compaction at or below the point is a no-op, not an error; one to
    // entries written earlier in the same batch is fine.
    let mut w = Writer::new(&mut model);
    w.compact(1, 3).compact(1, 5);
    w.entries(1, &entries(11, 2, 2, 4)).compact(1, 12);
    w.write(&mut wal);
    drop(wal);
    let (_, rec) = open(dir.path());
    assert_recovered(&model, &rec);
    assert_eq!(rec.groups[&1].compacted_index, 12);
    assert_eq!(rec.groups[&1].store.last_index(), 12);
}

/// Segments of one write each (segment_bytes 1): group 2 keeps the first
/// one, which holds group 1's entries 1..=10; the second holds only `op`
/// for group 1 and is deleted; the third's checkpoint must carry what it
/// did.
fn op_in_a_deleted_segment(name: &str, op: impl FnOnce(&mut Writer)) -> Model {
    let dir = TempDir::new(name);
    let (mut wal, _) = open_small(dir.path(), 1);
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    w.create(1, &[1, 2, 3]).create(2, &[1]);
    w.entries(1, &entries(1, 10, 1, 10))
        .entries(2, &entries(1, 1, 1, 10));
    w.write(&mut wal);
    let kept = wal.active_segment().unwrap();
    op(&mut w);
    w.write(&mut wal);
    let gone = wal.active_segment().unwrap();
    w.hs(2, hs(2, 1, 1));
    w.write(&mut wal);
    wal.delete_unneeded_segments().unwrap();
    assert!(kept.exists() && !gone.exists(), "{name}");
    drop(wal);
    let (_, rec) = open_small(dir.path(), 1);
    assert_recovered(&model, &rec);
    model
}

#[test]
fn a_compaction_whose_record_was_deleted_comes_back_from_the_next_checkpoint() {
    let m = op_in_a_deleted_segment("compact-deleted", |w| {
        w.compact(1, 5);
    });
    assert_eq!(m.groups[&1].compacted, (5, 1));
}

#[test]
fn an_install_whose_record_was_deleted_comes_back_from_the_next_checkpoint() {
    let m = op_in_a_deleted_segment("install-deleted", |w| {
        w.install(1, 50, 3);
    });
    assert_eq!(m.groups[&1].last(), 50);
}

/// The install shortens the log to 5; entries 6..=10 are still in the kept
/// segment and must not come back: the checkpoint carries the last index.
#[test]
fn an_install_below_the_last_index_whose_record_was_deleted_brings_back_no_stale_entry() {
    let m = op_in_a_deleted_segment("install-deleted-below", |w| {
        w.install(1, 5, 2);
    });
    assert_eq!(m.groups[&1].last(), 5);
    assert!(m.groups[&1].log.is_empty());
}

/// Entries 6..=10 and 11..=15 of group 1 sit in segments that get deleted
/// once an overwrite from 8 and a compaction to 7 made them useless. Replay
/// sees 1..=5, then 8..=9 after a hole, then the compaction that does away
/// with the hole.
#[test]
fn a_hole_below_a_compaction_point_is_no_hole() {
    let dir = TempDir::new("compact-hole");
    let (mut wal, _) = open_small(dir.path(), 1);
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    w.create(1, &[1, 2, 3]).create(2, &[1]);
    w.entries(1, &entries(1, 5, 1, 10))
        .entries(2, &entries(1, 1, 1, 10));
    w.write(&mut wal);
    w.entries(1, &entries(6, 5, 1, 10));
    w.write(&mut wal);
    w.entries(1, &entries(11, 5, 1, 10));
    w.write(&mut wal);
    w.entries(1, &entries(8, 2, 2, 10)).compact(1, 7);
    w.write(&mut wal);
    let before = wal.stats().segments;
    assert_eq!(wal.delete_unneeded_segments().unwrap(), 3);
    assert_eq!(wal.stats().segments, before - 3);
    drop(wal);
    let (_, rec) = open_small(dir.path(), 1);
    assert_recovered(&model, &rec);
    assert_eq!(rec.groups[&1].store.first_index(), 8);
}

/// An idle group that compacted keeps a trailing window of entries in an
/// old segment while a busy group fills new ones: `pinning` names it, a
/// rewrite of its log moves the window to the active segment, and the old
/// segment goes.
#[test]
fn an_idle_group_pinning_an_old_segment_is_unpinned_by_a_rewrite() {
    let dir = TempDir::new("pinning");
    let (mut wal, _) = open_small(dir.path(), 2048);
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    w.create(1, &[1]).create(2, &[1]);
    w.entries(1, &entries(1, 5, 1, 20)).compact(1, 2);
    w.write(&mut wal);
    let idle_segment = wal.segments().last().unwrap().seq;
    // Group 2 is busy and compacts as it goes: it pins only recent segments.
    for i in 0..40 {
        w.entries(2, &entries(i * 4 + 1, 4, 1, 100));
        if i > 0 {
            w.compact(2, i * 4 - 2);
        }
        w.write(&mut wal);
    }
    wal.delete_unneeded_segments().unwrap();
    let segs = wal.segments();
    assert_eq!(segs[0].seq, idle_segment, "the idle group keeps it");
    assert!(segs[0].live_bytes * 10 < segs[0].bytes, "{:?}", segs[0]);
    assert!(segs.len() >= 2 && segs.len() <= 4, "{segs:?}");

    let pinned = wal.pinning(10);
    assert_eq!(pinned[0].group, 1);
    assert_eq!(pinned[0].seq, idle_segment);
    assert_eq!((pinned[0].first_index, pinned[0].last_index), (3, 5));
    assert_eq!(pinned[0].incarnation, model.groups[&1].incarnation);
    assert!(
        pinned[0].bytes > 0 && pinned[0].bytes < 200,
        "{:?}",
        pinned[0]
    );
    assert!(pinned.iter().all(|p| p.seq < segs.last().unwrap().seq));

    // Rewrite what it holds from there: the same entries, in the active
    // segment.
    let mut b = WalBatch::new();
    for p in pinned.iter().filter(|p| p.seq == idle_segment) {
        let m = &model.groups[&p.group];
        let from = (p.first_index - m.compacted.0 - 1) as usize;
        b.rewrite_entries(p.group, p.incarnation, &m.log[from..]);
    }
    wal.write(&b).unwrap();
    assert!(wal.needs_maintenance(), "an overwrite may free a segment");
    wal.delete_unneeded_segments().unwrap();
    assert!(wal.segments()[0].seq > idle_segment);
    assert!(wal.pinning(10).iter().all(|p| p.group != 1));
    drop(wal);
    let (_, rec) = open_small(dir.path(), 2048);
    assert_recovered(&model, &rec);
}

#[test]
fn live_bytes_count_the_records_that_live_logs_still_need() {
    let fs = MemFs::new(1);
    let (mut wal, _) = open_mem(&fs, 1 << 20).unwrap();
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    w.create(1, &[1]).create(2, &[1]);
    w.write(&mut wal);
    let seq = wal.segments().last().unwrap().seq;
    assert_eq!(wal.live_bytes_in(seq), Some(0));
    // An Entries record of 10 entries of 100 bytes: 14 + 10 × 103 bytes.
    w.entries(1, &entries(1, 10, 1, 100));
    w.entries(2, &entries(1, 10, 1, 100));
    w.write(&mut wal);
    assert_eq!(wal.live_bytes_in(seq), Some(2 * 1044));
    let info = *wal.segments().last().unwrap();
    assert!(info.active && info.runs == 2);
    let path = wal.active_segment().unwrap();
    assert_eq!(info.bytes, fs.contents(&path).unwrap().len() as u64);
    w.compact(1, 5);
    w.write(&mut wal);
    assert_eq!(wal.live_bytes_in(seq), Some(1044 + 1044 / 2));
    w.install(2, 30, 2);
    w.write(&mut wal);
    assert_eq!(wal.live_bytes_in(seq), Some(1044 / 2));
    w.remove(1);
    w.write(&mut wal);
    assert_eq!(wal.live_bytes_in(seq), Some(0));
    assert_eq!(wal.segments().last().unwrap().runs, 0);
    assert_eq!(wal.live_bytes_in(seq + 1), None);
}

#[test]
fn needs_maintenance_says_when_a_segment_may_have_been_freed() {
    let fs = MemFs::new(1);
    let (mut wal, _) = open_mem(&fs, 1 << 20).unwrap();
    assert!(wal.needs_maintenance(), "after open");
    wal.delete_unneeded_segments().unwrap();
    assert!(!wal.needs_maintenance());
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    w.create(1, &[1]).create(2, &[1]);
    w.entries(1, &entries(1, 10, 1, 10)).hs(1, hs(1, 1, 3));
    w.write(&mut wal);
    w.entries(1, &entries(11, 1, 1, 10));
    w.write(&mut wal);
    assert!(!wal.needs_maintenance(), "creations, appends, hard states");
    type Op = fn(&mut Writer);
    let ops: [(&str, Op); 4] = [
        ("compaction", |w| {
            w.compact(1, 2);
        }),
        ("install", |w| {
            w.install(1, 20, 2);
        }),
        ("overwrite", |w| {
            w.entries(1, &entries(21, 1, 2, 10))
                .entries(1, &entries(21, 1, 3, 10));
        }),
        ("removal", |w| {
            w.remove(2);
        }),
    ];
    for (what, op) in ops {
        let mut w = Writer::new(&mut model);
        op(&mut w);
        w.write(&mut wal);
        assert!(wal.needs_maintenance(), "{what}");
        wal.delete_unneeded_segments().unwrap();
        assert!(!wal.needs_maintenance(), "{what}");
    }
    // A roll.
    drop(wal);
    let (mut wal, _) = open_mem(&fs, 1).unwrap();
    wal.delete_unneeded_segments().unwrap();
    let mut b = WalBatch::new();
    b.hard_state(1, model.groups[&1].incarnation, hs(5, 1, 3));
    wal.write(&b).unwrap();
    assert!(wal.needs_maintenance(), "a roll");
}

// ------------------------------------------------- crashes on a MemFs

/// What the MemFs crash histories went through, summed over seeds.
#[derive(Debug, Default)]
struct CrashCounts {
    crashes: u64,
    failed_writes: u64,
    /// Failed writes that recovery kept whole, and that it dropped whole.
    kept: u64,
    dropped: u64,
    failed_opens: u64,
    failed_deletions: u64,
    truncated_bytes: u64,
    segments_deleted: u64,
    rolls: u64,
    /// Compactions and snapshot installs in the acknowledged histories.
    compactions: u64,
    installs: u64,
}

/// Random histories on a [`MemFs`] — groups created (each time with a new
/// incarnation), removed, appended to, overwritten, hard states,
/// compactions, snapshot installs, small segments and deletion — with
/// failures and power losses
/// anywhere: a write whose append, data sync, directory sync or segment
/// creation fails; a deletion that fails half way; a recovery that fails;
/// a crash at a quiet moment. A crash loses what was not synced: a random
/// prefix of the last write survives, pages of it read as zeros, files
/// created or removed since the last directory sync may vanish or come
/// back. Every recovery must succeed and return exactly the state of the
/// acknowledged writes, plus — for a write that failed — that write whole
/// or not at all. Seeded and reproducible: `MUXRAFT_WAL_SEEDS` raises the
/// number of seeds.
#[test]
fn memfs_crashes_anywhere_recover_exactly_the_acknowledged_writes() {
    let seeds: u64 = std::env::var("MUXRAFT_WAL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let mut n = CrashCounts::default();
    let mut fs = MemFsStats::default();
    for seed in 1..=seeds {
        let s = memfs_crash_history(seed, &mut n);
        fs.files_vanished += s.files_vanished;
        fs.files_restored += s.files_restored;
        fs.bytes_lost += s.bytes_lost;
        fs.pages_zeroed += s.pages_zeroed;
    }
    eprintln!("MemFs crash histories ({seeds} seeds): {n:?} {fs:?}");
    assert!(fs.files_vanished > 0 && fs.files_restored > 0, "{fs:?}");
    assert!(fs.bytes_lost > 0 && fs.pages_zeroed > 0, "{fs:?}");
    assert!(n.crashes > 10 * seeds, "{n:?}");
    assert!(n.kept > 0 && n.dropped > 0, "{n:?}");
    assert!(n.failed_opens > 0 && n.failed_deletions > 0, "{n:?}");
    assert!(n.truncated_bytes > 0, "{n:?}");
    assert!(n.segments_deleted > 0 && n.rolls > 0, "{n:?}");
    assert!(n.compactions > 0 && n.installs > 0, "{n:?}");
}

/// Arm one random injected error on `fs`.
fn arm_random_fault(fs: &MemFs, rng: &mut Rng) {
    match rng.below(3) {
        0 => fs.fail_next_append(),
        1 => fs.fail_next_sync(),
        _ => fs.fail_after(rng.below(5)),
    }
}

/// One history; returns what its crashes did.
fn memfs_crash_history(seed: u64, n: &mut CrashCounts) -> MemFsStats {
    let fs = MemFs::new(seed);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let segment_bytes = 512 + rng.below(4096);
    let ctx = |step: u64| format!("seed {seed} step {step}");

    // Reopen after a failure or a crash: recovery itself may fail (then
    // the power goes out again) but must end up succeeding.
    let reopen = |rng: &mut Rng, n: &mut CrashCounts, crash: bool| -> (Wal, Recovered) {
        let mut crash = crash;
        loop {
            if crash {
                fs.crash(rng.next());
                n.crashes += 1;
            }
            fs.clear_fault();
            if rng.below(4) == 0 {
                arm_random_fault(&fs, rng);
            }
            match open_mem(&fs, segment_bytes) {
                Ok((wal, rec)) => {
                    fs.clear_fault();
                    n.truncated_bytes += rec.truncated_tail_bytes;
                    return (wal, rec);
                }
                Err(WalError::Io(_)) => {
                    n.failed_opens += 1;
                    crash = rng.below(2) == 0;
                }
                Err(e) => panic!("seed {seed}: recovery failed: {e}"),
            }
        }
    };

    let mut model = Model::default();
    let (mut wal, _) = reopen(&mut rng, n, false);
    for step in 0..200u64 {
        let segments = wal.stats().segments;
        let mut attempted = model.clone();
        let mut w = Writer::new(&mut attempted);
        random_batch(&mut w, &mut rng, step, 300);
        if rng.below(8) == 0 {
            arm_random_fault(&fs, &mut rng);
        }
        match wal.write(&w.batch) {
            Ok(()) => {
                fs.clear_fault(); // armed for an operation the write never did
                model = attempted;
                n.rolls += u64::from(wal.stats().segments > segments);
            }
            Err(WalError::Io(_)) => {
                // Unknown what reached the disk. A restart, with or without
                // a power loss.
                n.failed_writes += 1;
                drop(wal);
                let crash = rng.below(3) != 0;
                let (w2, rec) = reopen(&mut rng, n, crash);
                wal = w2;
                match (differs(&model, &rec), differs(&attempted, &rec)) {
                    (None, _) => n.dropped += 1,
                    (_, None) => {
                        n.kept += 1;
                        model = attempted;
                    }
                    (Some(a), Some(b)) => panic!(
                        "{}: after a failed write, neither the state before it ({a}) nor after it ({b})",
                        ctx(step)
                    ),
                }
                continue;
            }
            Err(e) => panic!("{}: {e}", ctx(step)),
        }
        if rng.below(3) == 0 {
            let fault = rng.below(4) == 0;
            if fault {
                fs.fail_after(rng.below(3));
            }
            match wal.delete_unneeded_segments() {
                Ok(d) => n.segments_deleted += d as u64,
                Err(WalError::Io(_)) => {
                    // Deleting changes no state, whatever reached the disk.
                    n.failed_deletions += 1;
                    drop(wal);
                    let crash = rng.below(2) == 0;
                    let (w2, rec) = reopen(&mut rng, n, crash);
                    wal = w2;
                    if let Some(d) = differs(&model, &rec) {
                        panic!("{}: after a failed deletion: {d}", ctx(step));
                    }
                    continue;
                }
                Err(e) => panic!("{}: {e}", ctx(step)),
            }
            fs.clear_fault();
        }
        if rng.below(15) == 0 {
            // Power loss at a quiet moment: every acknowledged write stays.
            drop(wal);
            let (w2, rec) = reopen(&mut rng, n, true);
            wal = w2;
            if let Some(d) = differs(&model, &rec) {
                panic!("{}: after a crash: {d}", ctx(step));
            }
        }
    }
    drop(wal);
    let (_, rec) = reopen(&mut rng, n, true);
    if let Some(d) = differs(&model, &rec) {
        panic!("seed {seed}: at the end: {d}");
    }
    n.compactions += model.compactions;
    n.installs += model.installs;
    fs.stats()
}

fn segment_path_mem(seq: u64) -> PathBuf {
    Path::new("/mem/wal").join(format!("{seq:020}.wal"))
}

/// A failed open can leave a segment that holds only its header (its first
/// commit was torn, and the next recovery cut it back), hence no
/// checkpoint. Group 1's entry 1 sits in an older segment, deleted after a
/// compaction; entry 2 in a kept one comes after a hole that the deletion
/// explains. Replay must count the missing segments from the last
/// checkpoint it read, not from the header-only segment.
#[test]
fn a_header_only_segment_left_by_a_failed_open_does_not_turn_a_deletion_into_corruption() {
    let fs = MemFs::new(3);
    let (mut wal, _) = open_mem(&fs, 1).unwrap();
    let mut model = Model::default();
    let mut w = Writer::new(&mut model);
    w.create(1, &[1, 2, 3]).entries(1, &entries(1, 1, 1, 10));
    w.write(&mut wal);
    drop(wal);
    // The open's first append is cut in half: a whole header, a torn commit.
    fs.fail_next_append();
    assert!(matches!(open_mem(&fs, 1), Err(WalError::Io(_))));
    let (mut wal, rec) = open_mem(&fs, 1).unwrap();
    assert!(rec.truncated_tail_bytes > 0);
    let header_only = fs
        .files()
        .into_iter()
        .find(|p| fs.contents(p).unwrap().len() == SEGMENT_HEADER as usize)
        .expect("a segment cut back to its header");
    let mut w = Writer::new(&mut model);
    w.entries(1, &entries(2, 1, 1, 10));
    w.write(&mut wal);
    w.compact(1, 1);
    w.write(&mut wal);
    // Deletion, oldest first, stops before the header-only segment: the
    // first segment (a checkpoint only) and the one with entry 1 go.
    let first_entry = segment_path_mem(2);
    assert!(fs.contents(&first_entry).is_some());
    fs.fail_after(2);
    assert!(wal.delete_unneeded_segments().is_err());
    assert!(fs.contents(&first_entry).is_none());
    assert!(fs.contents(&header_only).is_some());
    drop(wal);
    let (_, rec) = match open_mem(&fs, 1) {
        Ok(r) => r,
        Err(e) => panic!("a legitimate deletion read as corruption: {e}"),
    };
    assert_recovered(&model, &rec);
}

// ------------------------------------- snapshots and the WAL, together

/// The leader's log of group `g`, which every replica here follows: entry
/// `i` has a term and data that depend only on (g, i), so a replica's log
/// is always a prefix of it and a snapshot at `i` is "the state after i".
fn leader_entry(g: u64, i: u64) -> Entry {
    entry(i, leader_term(i), format!("g{g}#{i}").as_bytes())
}

fn leader_term(i: u64) -> u64 {
    1 + i / 40
}

fn leader_entries(g: u64, first: u64, last: u64) -> Vec<Entry> {
    (first..=last).map(|i| leader_entry(g, i)).collect()
}

fn leader_state(g: u64, i: u64) -> Vec<u8> {
    format!("state of g{g} after {i}").into_bytes()
}

fn leader_snapshot(i: u64) -> SnapshotMeta {
    SnapshotMeta {
        index: i,
        term: leader_term(i),
        voters: vec![1, 2, 3],
        ..Default::default()
    }
}

/// What the node acknowledged durable for one group: every entry up to
/// `last` (in its log or below its snapshot), and a snapshot at `snapshot`.
#[derive(Clone, Copy, Debug, Default)]
struct Acked {
    last: u64,
    snapshot: u64,
    compacted: u64,
}

#[derive(Debug, Default)]
struct StorageCounts {
    restarts: u64,
    crashes: u64,
    failures: u64,
    snapshots: u64,
    installs: u64,
    installs_completed: u64,
    rewrites: u64,
    segments_deleted: u64,
}

const STORAGE_GROUPS: u64 = 3;

/// Hosts that snapshot and compact, followers that install their leader's
/// snapshots, the runtime un-pinning old segments by rewriting the logs
/// `pinning` names, small segments and deletion — with any file operation
/// failing now and then, and power losses: every restart must recover
/// every group (never lost), each log a prefix of the leader's, each
/// snapshot the leader's state at its index, and nothing acknowledged
/// missing.
#[test]
fn snapshots_compaction_and_installs_survive_crashes_at_any_step() {
    let seeds: u64 = std::env::var("MUXRAFT_WAL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let mut n = StorageCounts::default();
    for seed in 1..=seeds {
        storage_crash_history(seed, &mut n);
    }
    eprintln!("storage crash histories ({seeds} seeds): {n:?}");
    assert!(n.crashes > seeds && n.failures > seeds, "{n:?}");
    assert!(
        n.snapshots > 0 && n.installs > 0 && n.installs_completed > 0,
        "{n:?}"
    );
    assert!(n.rewrites > 0 && n.segments_deleted > 0, "{n:?}");
}

fn open_node(fs: &MemFs) -> Result<(Storage, RecoveredNode), WalError> {
    let opts = StorageOptions {
        segment_bytes: 1024,
        ..StorageOptions::default()
    };
    open_storage(Path::new("/mem/node"), Arc::new(fs.clone()), opts)
}

/// Check what recovery rebuilt against the leader and what was
/// acknowledged, and return what the node holds now per group.
fn check_recovered(seed: u64, node: &RecoveredNode, acked: &[Acked]) -> Vec<Acked> {
    let mut now = Vec::new();
    for g in 1..=STORAGE_GROUPS {
        let r = &node.groups[&g];
        let a = acked[g as usize];
        let ctx = format!("seed {seed} group {g} (acked {a:?})");
        assert!(!r.lost, "{ctx}: lost");
        let s = &r.store;
        let (first, last) = (s.first_index(), s.last_index());
        assert_eq!(
            s.entries(first, last + 1, u64::MAX).unwrap(),
            leader_entries(g, first, last),
            "{ctx}: not the leader's log"
        );
        if first > 1 {
            assert_eq!(s.term(first - 1), Ok(leader_term(first - 1)), "{ctx}");
        }
        let snap = match &r.snapshot {
            Some((m, data)) => {
                assert_eq!(*m, leader_snapshot(m.index), "{ctx}");
                assert_eq!(&data[..], &leader_state(g, m.index)[..], "{ctx}");
                assert_eq!(s.snapshot(), m, "{ctx}");
                assert!(m.index + 1 >= first, "{ctx}: a hole below the log");
                assert!(s.hard_state().commit >= m.index, "{ctx}");
                m.index
            }
            None => {
                assert_eq!(first, 1, "{ctx}: compacted without a snapshot");
                0
            }
        };
        assert!(
            last >= a.last,
            "{ctx}: acknowledged entries lost (last {last})"
        );
        assert!(
            snap >= a.snapshot,
            "{ctx}: acknowledged snapshot lost ({snap})"
        );
        now.push(Acked {
            last,
            snapshot: snap,
            compacted: first - 1,
        });
    }
    now.insert(0, Acked::default());
    now
}

fn storage_crash_history(seed: u64, n: &mut StorageCounts) {
    let fs = MemFs::new(seed);
    let mut rng = Rng(seed.wrapping_mul(0xA24B_AED4_963E_E407) | 1);
    let inc = |g: u64| 100 + g;
    let (mut st, _) = open_node(&fs).unwrap();
    let mut b = WalBatch::new();
    for g in 1..=STORAGE_GROUPS {
        b.create_group(g, inc(g), &[1, 2, 3]);
    }
    st.wal.write(&b).unwrap();
    let mut acked = vec![Acked::default(); STORAGE_GROUPS as usize + 1];

    for step in 0..150u64 {
        let g = 1 + rng.below(STORAGE_GROUPS);
        let a = acked[g as usize];
        if rng.below(6) == 0 {
            fs.fail_after(rng.below(8));
        }
        let mut b = WalBatch::new();
        let result: Result<(), String> = match rng.below(12) {
            // The host snapshots at its last index and compacts, keeping
            // a window of 3 entries: the file first, then the record.
            0 | 1 if a.last > a.snapshot => {
                let i = a.last;
                st.snapshots
                    .save(g, inc(g), &leader_snapshot(i), &leader_state(g, i))
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        acked[g as usize].snapshot = i;
                        n.snapshots += 1;
                        let c = i.saturating_sub(3).max(a.compacted);
                        b.compact(g, inc(g), c, leader_term(c));
                        st.wal.write(&b).map_err(|e| e.to_string())?;
                        acked[g as usize].compacted = c;
                        Ok(())
                    })
            }
            // A follower far behind installs its leader's snapshot: the
            // file first, then the Install record (with entries after it).
            2 => {
                let i = a.last + 1 + rng.below(30);
                st.snapshots
                    .save(g, inc(g), &leader_snapshot(i), &leader_state(g, i))
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        n.installs += 1;
                        let more = rng.below(3);
                        b.install_snapshot(g, inc(g), i, leader_term(i));
                        b.entries(g, inc(g), &leader_entries(g, i + 1, i + more));
                        st.wal.write(&b).map_err(|e| e.to_string())?;
                        acked[g as usize] = Acked {
                            last: i + more,
                            snapshot: i,
                            compacted: i,
                        };
                        Ok(())
                    })
            }
            // The runtime's maintenance: delete, un-pin the oldest segment
            // by rewriting the logs that hold it, delete again.
            3 => {
                let mut r = st.wal.delete_unneeded_segments();
                if let Ok(d) = r {
                    n.segments_deleted += d as u64;
                    for p in st.wal.pinning(2) {
                        let last = acked[p.group as usize].last;
                        assert_eq!(p.last_index, last, "seed {seed} step {step}");
                        b.rewrite_entries(
                            p.group,
                            p.incarnation,
                            &leader_entries(p.group, p.first_index, last),
                        );
                        n.rewrites += 1;
                    }
                    r = st
                        .wal
                        .write(&b)
                        .and_then(|()| st.wal.delete_unneeded_segments());
                    if let Ok(d) = r {
                        n.segments_deleted += d as u64;
                    }
                }
                r.map(|_| ()).map_err(|e| e.to_string())
            }
            // Appends from the leader, committed.
            _ => {
                let k = 1 + rng.below(4);
                b.entries(g, inc(g), &leader_entries(g, a.last + 1, a.last + k));
                b.hard_state(
                    g,
                    inc(g),
                    HardState {
                        term: leader_term(a.last + k),
                        vote: 1,
                        commit: a.last + k,
                    },
                );
                st.wal.write(&b).map_err(|e| e.to_string()).map(|()| {
                    acked[g as usize].last = a.last + k;
                })
            }
        };
        fs.clear_fault();
        let restart = match result {
            Ok(()) => rng.below(20) == 0,
            Err(e) => {
                assert!(!e.contains("invalid"), "seed {seed} step {step}: {e}");
                n.failures += 1;
                true
            }
        };
        if restart {
            drop(st);
            n.restarts += 1;
            let node = loop {
                if rng.below(3) != 0 {
                    fs.crash(rng.next());
                    n.crashes += 1;
                }
                if rng.below(4) == 0 {
                    fs.fail_after(rng.below(6));
                }
                let r = open_node(&fs);
                fs.clear_fault();
                match r {
                    Ok((s, node)) => {
                        st = s;
                        break node;
                    }
                    Err(WalError::Io(_)) => n.failures += 1,
                    Err(e) => panic!("seed {seed} step {step}: {e}"),
                }
            };
            n.installs_completed += node.installs_completed as u64;
            acked = check_recovered(seed, &node, &acked);
        }
    }
    drop(st);
    fs.crash(rng.next());
    let (_, node) = open_node(&fs).unwrap();
    check_recovered(seed, &node, &acked);
}

/// The same on disk: snapshot files are renamed into place and synced with
/// std::fs, and a node's directory holds the WAL and `snapshots/`.
#[test]
fn a_node_on_the_real_file_system_recovers_its_snapshots_and_compacted_logs() {
    let dir = TempDir::new("storage");
    let open = || open_storage(dir.path(), Arc::new(RealFs), StorageOptions::default()).unwrap();
    let (mut st, _) = open();
    let mut b = WalBatch::new();
    b.create_group(1, 5, &[1, 2, 3]);
    b.entries(1, 5, &leader_entries(1, 1, 30));
    st.wal.write(&b).unwrap();
    st.snapshots
        .save(1, 5, &leader_snapshot(25), &leader_state(1, 25))
        .unwrap();
    let mut b = WalBatch::new();
    b.compact(1, 5, 22, leader_term(22));
    st.wal.write(&b).unwrap();
    drop(st);
    let (st, node) = open();
    let r = &node.groups[&1];
    assert!(!r.lost);
    assert_eq!(r.snapshot.as_ref().unwrap().0, leader_snapshot(25));
    assert_eq!((r.store.first_index(), r.store.last_index()), (23, 30));
    let snaps = dir.path().join("snapshots");
    let names: Vec<String> = fs::read_dir(&snaps)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["00000000000000000001-00000000000000000005-00000000000000000025.snap"]
    );
    assert_eq!(
        st.snapshots.total_bytes(),
        fs::metadata(snaps.join(&names[0])).unwrap().len()
    );
}

/// A snapshot file above the size limit is refused like a damaged one.
#[test]
fn a_snapshot_larger_than_the_limit_is_not_loaded_at_recovery() {
    let fs = MemFs::new(1);
    let (mut st, _) = open_node(&fs).unwrap();
    let mut b = WalBatch::new();
    b.create_group(1, 5, &[1]);
    b.entries(1, 5, &leader_entries(1, 1, 10));
    st.wal.write(&b).unwrap();
    st.snapshots
        .save(1, 5, &leader_snapshot(8), &vec![7; 4096])
        .unwrap();
    drop(st);
    let opts = StorageOptions {
        max_snapshot_bytes: 4096,
        ..StorageOptions::default()
    };
    let (_, node) = open_storage(Path::new("/mem/node"), Arc::new(fs.clone()), opts).unwrap();
    assert!(node.groups[&1].snapshot.is_none(), "refused");
    assert_eq!(node.bad_snapshot_files, 1);
    assert!(!node.groups[&1].lost, "the log from 1 is still whole");
    let (_, node) = open_node(&fs).unwrap();
    assert_eq!(node.groups[&1].snapshot.as_ref().unwrap().0.index, 8);
}
