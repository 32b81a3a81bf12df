//! Storage upkeep through the runtime, on the real file system: a group
//! that stays idle while another writes must not keep old WAL segments
//! alive, and a restart must bring both back exactly (the busy one from its
//! last snapshot, the idle one from the log records upkeep moved forward).
//!
//! One host-driven node, single-replica groups, 64 KiB segments. The busy
//! group writes in rounds of [`ROUND`] entries: its host proposes the next
//! round from inside the apply callback of the last entry of the previous
//! one, so that a whole round goes to the WAL in one write (one fsync) and
//! the test takes a second or less, not one fsync per entry. Every
//! [`SNAPSHOT_EVERY`] entries the host snapshots its state machine (from
//! inside the callback too, which the runtime allows).
//!
//! The segment files are sampled at the end of every round: their number
//! and their *span* (newest sequence number minus oldest, plus one). A
//! group pinning the first segment would let the number stay small (the
//! busy group's compactions free everything else) while the span grows
//! with the run: the span is what catches an idle group pinning.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use bytes::Bytes;
use muxraft::multi::{Event, NodeConfig};
use muxraft::raft::Role;
use muxraft::runtime::{DiskStats, Host, Runtime, RuntimeConfig};
use parking_lot::Mutex;

mod common;
use common::{Machine, TempDir};

const NODE: u64 = 1;
const IDLE: u64 = 1;
const BUSY: u64 = 2;
const SEGMENT_BYTES: u64 = 64 << 10;
/// Entries the idle group writes at the start, one call each.
const IDLE_ENTRIES: u64 = 5;
/// Entries the busy group writes: not a multiple of the snapshot interval,
/// so that entries after the last snapshot are re-applied at the restart.
const BUSY_ENTRIES: u64 = 20_337;
/// Busy entries per WAL write.
const ROUND: u64 = 100;
const SNAPSHOT_EVERY: u64 = 1_000;
/// Entries kept below a snapshot (`snapshot_trailing_entries`).
const TRAILING: u64 = 100;
const PAYLOAD_BYTES: usize = 100;
/// Bounds on the segment files over the run. The busy group's retained log
/// is at most SNAPSHOT_EVERY + TRAILING + ROUND entries (about 150 KiB: it
/// reaches into at most four 64 KiB segments, the active one included);
/// the idle group's entries may hold one more until upkeep moves them,
/// which it does once more than two old segments exist. Measured: 4 files,
/// a span of 6.
const MAX_SEGMENTS: u64 = 6;
const MAX_SPAN: u64 = 8;

fn payload(group: u64, n: u64) -> Bytes {
    let mut v = format!("g{group}-n{n}-").into_bytes();
    v.resize(PAYLOAD_BYTES, b'a' + (n % 26) as u8);
    Bytes::from(v)
}

/// What the segment files looked like at one sample.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    count: u64,
    span: u64,
    oldest: u64,
}

fn segment_files(dir: &Path) -> Sample {
    let seqs: Vec<u64> = std::fs::read_dir(dir)
        .expect("data dir")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "wal")
                .then(|| p.file_stem()?.to_str()?.parse().ok())
                .flatten()
        })
        .collect();
    let (Some(&lo), Some(&hi)) = (seqs.iter().min(), seqs.iter().max()) else {
        return Sample::default();
    };
    Sample {
        count: seqs.len() as u64,
        span: hi - lo + 1,
        oldest: lo,
    }
}

#[derive(Default)]
struct State {
    machines: BTreeMap<u64, Machine>,
    /// Every entry applied, per group: (index, data).
    applied: BTreeMap<u64, Vec<(u64, Bytes)>>,
    restores: Vec<(u64, u64, Bytes)>,
    /// The busy group's writer: entries proposed, the next snapshot point,
    /// the snapshots taken (index, data).
    proposed: u64,
    next_snapshot: u64,
    snapshots: Vec<(u64, Bytes)>,
    /// Segment files at the end of each round, and the runtime's counters.
    samples: Vec<Sample>,
    stats: Vec<DiskStats>,
    /// A runtime call from inside a callback failed.
    error: Option<String>,
}

struct TestHost {
    dir: std::path::PathBuf,
    /// Entries the busy group writes in all.
    busy_entries: u64,
    /// Write the busy group's rounds (the first runtime; not after the
    /// restart).
    write: bool,
    rt: OnceLock<Weak<Runtime>>,
    st: Mutex<State>,
}

impl TestHost {
    fn new(dir: &Path, write: bool, busy_entries: u64) -> Arc<TestHost> {
        Arc::new(TestHost {
            dir: dir.to_path_buf(),
            busy_entries,
            write,
            rt: OnceLock::new(),
            st: Mutex::new(State {
                next_snapshot: SNAPSHOT_EVERY,
                ..State::default()
            }),
        })
    }

    /// The last busy entry of a round was applied: sample, snapshot if
    /// due, propose the next round. From inside the callback every call
    /// only queues: the drive loop below picks it all up.
    fn end_of_round(&self, rt: &Runtime) -> Result<(), String> {
        let sample = segment_files(&self.dir);
        let disk = rt.stats().3;
        let (snapshot, next) = {
            let mut st = self.st.lock();
            st.samples.push(sample);
            st.stats.push(disk);
            let m = st.machines[&BUSY];
            let snapshot = if m.count >= st.next_snapshot {
                st.next_snapshot += SNAPSHOT_EVERY;
                let data = m.encode();
                st.snapshots.push((m.applied, data.clone()));
                Some((m.applied, data))
            } else {
                None
            };
            let next = ROUND.min(self.busy_entries - st.proposed);
            st.proposed += next;
            (snapshot, st.proposed - next..st.proposed)
        };
        if let Some((index, data)) = snapshot {
            rt.snapshot(BUSY, index, data)
                .map_err(|e| format!("snapshot at {index}: {e}"))?;
        }
        for n in next {
            rt.propose(BUSY, payload(BUSY, n))
                .map_err(|e| format!("propose {n}: {e}"))?;
        }
        Ok(())
    }
}

impl Host for TestHost {
    fn send(&self, _to: u64, _frame: &[u8], _liveness: bool) {
        panic!("a single-replica group sends nothing");
    }

    fn event(&self, ev: &Event) {
        let round_done = match ev {
            Event::Applied {
                group_id,
                index,
                data,
                ..
            } => {
                let mut st = self.st.lock();
                let m = st.machines.entry(*group_id).or_default();
                assert!(
                    *index > m.applied,
                    "index {index} applied after {}",
                    m.applied
                );
                m.apply(*index, data);
                st.applied
                    .entry(*group_id)
                    .or_default()
                    .push((*index, data.clone()));
                self.write && *group_id == BUSY && st.machines[&BUSY].count == st.proposed
            }
            Event::Restore {
                group_id,
                index,
                data,
                ..
            } => {
                let mut st = self.st.lock();
                let m = Machine::decode(data).expect("snapshot data length");
                assert_eq!(m.applied, *index, "snapshot data names its index");
                st.machines.insert(*group_id, m);
                st.restores.push((*group_id, *index, data.clone()));
                false
            }
            _ => false,
        };
        if round_done {
            let rt = self.rt.get().and_then(Weak::upgrade).expect("runtime");
            if let Err(e) = self.end_of_round(&rt) {
                self.st.lock().error.get_or_insert(e);
            }
        }
    }
}

fn config(dir: &Path) -> RuntimeConfig {
    let mut node = NodeConfig::new(NODE);
    node.cluster_id = 0x5550; // "UP"
    node.snapshot_trailing_entries = TRAILING;
    // The host snapshots on its own schedule; no hints.
    node.snapshot_threshold_entries = u64::MAX;
    node.snapshot_threshold_bytes = u64::MAX;
    let mut cfg = RuntimeConfig::new(node);
    cfg.data_dir = Some(dir.to_path_buf());
    cfg.wal_segment_bytes = SEGMENT_BYTES;
    cfg
}

fn start(dir: &Path, write: bool) -> (Arc<Runtime>, Arc<TestHost>) {
    start_with(dir, write, BUSY_ENTRIES)
}

fn start_with(dir: &Path, write: bool, busy_entries: u64) -> (Arc<Runtime>, Arc<TestHost>) {
    let host = TestHost::new(dir, write, busy_entries);
    let rt = Arc::new(Runtime::new(config(dir), host.clone()).expect("runtime"));
    host.rt.set(Arc::downgrade(&rt)).unwrap();
    (rt, host)
}

fn elect(rt: &Runtime, groups: &[u64]) {
    for _ in 0..500 {
        if groups
            .iter()
            .all(|&g| rt.group_status(g).unwrap().role == Role::Leader)
        {
            return;
        }
        rt.tick().unwrap();
    }
    panic!("no leader after 500 ticks");
}

#[test]
fn a_group_idle_while_another_writes_keeps_no_old_segment_alive_and_both_survive_a_restart() {
    let tmp = TempDir::new("idle-pin");
    let dir = tmp.path();
    let t0 = Instant::now();

    let (rt, host) = start(dir, true);
    rt.create_group(IDLE, 1, &[NODE]).unwrap();
    rt.create_group(BUSY, 1, &[NODE]).unwrap();
    elect(&rt, &[IDLE, BUSY]);
    for n in 0..IDLE_ENTRIES {
        rt.propose(IDLE, payload(IDLE, n)).unwrap();
    }
    let idle_before = host.st.lock().applied[&IDLE].clone();
    assert_eq!(idle_before.len() as u64, IDLE_ENTRIES);
    let first = segment_files(dir);
    assert_eq!(
        first.count, 1,
        "the idle group's entries are in the first segment"
    );

    // The busy group: the first entry from here, every later round from
    // inside the callback; in host-driven mode this call returns when the
    // last round is applied.
    host.st.lock().proposed = 1;
    rt.propose(BUSY, payload(BUSY, 0)).unwrap();
    let wrote = t0.elapsed();

    let (busy_before, busy_applied_before, snapshots, samples, stats) = {
        let st = host.st.lock();
        assert_eq!(st.error, None);
        (
            st.machines[&BUSY],
            st.applied[&BUSY].clone(),
            st.snapshots.clone(),
            st.samples.clone(),
            st.stats.clone(),
        )
    };
    assert_eq!(busy_before.count, BUSY_ENTRIES, "every busy entry applied");
    let end = segment_files(dir);
    let disk = rt.stats().3;
    let max_count = samples.iter().map(|s| s.count).max().unwrap();
    let max_span = samples.iter().map(|s| s.span).max().unwrap();
    let max_reported = stats.iter().map(|s| s.wal_segments).max().unwrap();
    let written_segments = end.oldest + end.span - 1;
    println!(
        "storage_upkeep: {BUSY_ENTRIES} busy entries of {PAYLOAD_BYTES} B in rounds of {ROUND}, \
         a snapshot every {SNAPSHOT_EVERY} ({} taken), {IDLE_ENTRIES} idle entries, \
         {} KiB segments: {written_segments} segments written, {} deleted; over {} rounds \
         at most {max_count} segment files (stats: {max_reported}), span at most {max_span}; \
         at the end {} files ({} .. {}), {} WAL bytes, {} logs rewritten ({} bytes), \
         {} snapshot files; wrote in {:.2} s",
        snapshots.len(),
        SEGMENT_BYTES >> 10,
        disk.wal_segments_deleted,
        samples.len(),
        end.count,
        end.oldest,
        end.oldest + end.span - 1,
        disk.wal_bytes,
        disk.logs_rewritten,
        disk.bytes_rewritten,
        disk.snapshot_files,
        wrote.as_secs_f64(),
    );
    // The run wrote many times the bound, so a bounded directory means
    // segments were reclaimed as it went, not at the end.
    assert!(
        written_segments >= 4 * MAX_SEGMENTS,
        "the run is too short to tell: {written_segments} segments written"
    );
    assert!(
        max_count <= MAX_SEGMENTS && max_reported <= MAX_SEGMENTS,
        "segment files grew to {max_count} (stats {max_reported}), more than {MAX_SEGMENTS}"
    );
    assert!(
        max_span <= MAX_SPAN,
        "an old segment stayed alive: the files spanned up to {max_span} sequence numbers"
    );
    assert!(
        end.oldest > 1,
        "the first segment, the idle group's, still exists"
    );
    assert!(
        disk.wal_segments_deleted >= written_segments - MAX_SEGMENTS,
        "{} of {written_segments} segments deleted",
        disk.wal_segments_deleted
    );
    assert!(
        disk.logs_rewritten > 0 && disk.bytes_rewritten > 0,
        "upkeep never moved the idle group's log forward: {disk:?}"
    );
    assert_eq!(
        disk.wal_segments, end.count,
        "stats agree with the directory"
    );
    let (last_snapshot, last_data) = snapshots.last().cloned().expect("snapshots taken");
    assert!(
        busy_before.applied > last_snapshot,
        "entries after the last snapshot"
    );

    // Restart.
    drop(rt);
    let (rt, host) = start(dir, false);
    let recovery = rt.recovery();
    assert_eq!(
        (recovery.groups, recovery.restored, recovery.lost),
        (2, 1, 0)
    );
    let st = host.st.lock();
    assert_eq!(st.error, None);
    // The busy group: restored from the last snapshot, then exactly the
    // entries after it, as they were applied the first time.
    assert_eq!(st.restores, vec![(BUSY, last_snapshot, last_data)]);
    let after: Vec<_> = busy_applied_before
        .iter()
        .filter(|(i, _)| *i > last_snapshot)
        .cloned()
        .collect();
    assert_eq!(
        st.applied.get(&BUSY).cloned().unwrap_or_default(),
        after,
        "apply resumes right after the snapshot"
    );
    assert_eq!(st.machines[&BUSY], busy_before, "the busy group's state");
    // The idle group: its entries, all of them, from the log.
    assert_eq!(
        st.applied.get(&IDLE).cloned().unwrap_or_default(),
        idle_before,
        "the idle group's entries"
    );
    println!(
        "storage_upkeep: restart restored the snapshot at {last_snapshot} and re-applied {} busy \
         and {} idle entries; whole test {:.2} s",
        after.len(),
        idle_before.len(),
        t0.elapsed().as_secs_f64()
    );
    drop(st);
    assert_eq!(rt.group_status(BUSY).unwrap().commit, busy_before.applied);
}

/// Once every group with a long history has snapshotted, the WAL shrinks
/// to one small segment: the durable log is compacted to the snapshot (the
/// trailing window below it lives only in memory), and upkeep moves what
/// little is live (the idle group's entries) into a fresh segment so that
/// the segments full of dead entries go. A restart then reads almost
/// nothing, whatever the history: the restart bench's claim, as a test.
///
/// Without the compaction to the snapshot, the trailing window keeps
/// TRAILING busy entries (10 KiB) and their segments live; without the
/// move to a fresh segment, the active segment keeps up to 64 KiB of dead
/// entries. Either fails the size check.
#[test]
fn once_every_busy_group_snapshotted_the_wal_is_one_small_segment() {
    let tmp = TempDir::new("all-snapshotted");
    let dir = tmp.path();
    // A multiple of the snapshot interval: the last round ends on one.
    const ENTRIES: u64 = 10 * SNAPSHOT_EVERY;
    let (rt, host) = start_with(dir, true, ENTRIES);
    rt.create_group(IDLE, 1, &[NODE]).unwrap();
    rt.create_group(BUSY, 1, &[NODE]).unwrap();
    elect(&rt, &[IDLE, BUSY]);
    for n in 0..IDLE_ENTRIES {
        rt.propose(IDLE, payload(IDLE, n)).unwrap();
    }
    host.st.lock().proposed = 1;
    rt.propose(BUSY, payload(BUSY, 0)).unwrap();
    let (busy, last_snapshot) = {
        let st = host.st.lock();
        assert_eq!(st.error, None);
        (st.machines[&BUSY], st.snapshots.last().cloned())
    };
    assert_eq!(busy.count, ENTRIES);
    let (last_snapshot, last_data) = last_snapshot.expect("snapshots taken");
    assert_eq!(
        last_snapshot, busy.applied,
        "the last round ends on a snapshot"
    );
    // Upkeep runs between passes; one more pass after the last snapshot.
    rt.tick().unwrap();
    let end = segment_files(dir);
    let disk = rt.stats().3;
    let live_bound = IDLE_ENTRIES * (PAYLOAD_BYTES as u64 + 64) + 1024;
    println!(
        "storage_upkeep: {ENTRIES} busy entries, all snapshotted: {} segment file(s), \
         {} WAL bytes (bound {live_bound}), {} logs moved ({} bytes)",
        end.count, disk.wal_bytes, disk.logs_rewritten, disk.bytes_rewritten
    );
    assert_eq!(end.count, 1, "segments full of dead entries remain");
    assert!(
        disk.wal_bytes <= live_bound,
        "the WAL holds {} bytes, more than the live logs and a checkpoint ({live_bound})",
        disk.wal_bytes
    );
    let idle_before = host.st.lock().applied[&IDLE].clone();

    drop(rt);
    let (rt, host) = start_with(dir, false, ENTRIES);
    let st = host.st.lock();
    assert_eq!(st.error, None);
    assert_eq!(st.restores, vec![(BUSY, last_snapshot, last_data)]);
    assert_eq!(st.applied.get(&BUSY), None, "nothing after the snapshot");
    assert_eq!(st.machines[&BUSY], busy);
    assert_eq!(st.applied.get(&IDLE), Some(&idle_before));
    drop(st);
    assert_eq!(rt.group_status(BUSY).unwrap().commit, busy.applied);
}
