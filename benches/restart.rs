//! Restart benchmark: does restarting a node cost what its groups hold now
//! (snapshot + log since), or everything they ever committed?
//!
//!     cargo bench --bench restart                       # 10,000 and 1,000,000 entries
//!     cargo bench --bench restart -- --entries 10000,100000,1000000,2000000
//!     cargo bench --bench restart -- --json
//!     cargo bench --bench restart -- --smoke            # tiny sizes, < 1 s; what CI runs
//!
//! For each history size H (`--entries`), twice — with snapshots and naive
//! (no snapshots, the whole log replays) — on a fresh data directory:
//!
//! 1. **Write.** One host-driven [`Runtime`] with a data directory hosts
//!    `--groups` single-replica groups and commits H entries spread evenly
//!    over them (`--payload` bytes each). The host writes in rounds: when
//!    the last entry of a group's round is applied it proposes the group's
//!    next `--round` entries from inside the apply callback, so one WAL
//!    write (one fsync) carries a round of every group at once. Its state
//!    machine per group is a digest of every entry applied.
//!    With snapshots, the node hints (`SnapshotNeeded`) once a group applied
//!    `--snapshot-every` entries since its last snapshot, and the host takes
//!    one at once (from inside the callback: the digest, 24 bytes);
//!    `--trailing` entries stay below each snapshot. Naive: no hints, no
//!    snapshots.
//! 2. **Restart**, `--restarts` times: the runtime is dropped, then timed
//!    from `Runtime::new` (which recovers the WAL and the snapshot files and
//!    has the host restore each group) until every group's state machine
//!    is back where it was (the runtime's next pass applies the committed
//!    log after the snapshot; one tick starts it where `new` did not).
//!    Counted on the last restart: `Applied` events (entries re-applied)
//!    and `Restore` events; the digests must equal those before the restart.
//!
//! Reported per size and mode: write time, restart time (median of the
//! restarts; `Runtime::new` alone beside it), entries re-applied, snapshots
//! restored, WAL segment files and bytes of the data directory before the
//! restart; and the ratio restart(largest H) / restart(smallest H).
//!
//! What to expect: with snapshots, a restart reads the snapshot files and
//! the WAL segments still live, and re-applies at most `--snapshot-every`
//! (plus a round) entries per group, whatever H; its WAL replay covers only
//! the entries since each group's snapshot (the `--trailing` window below
//! a snapshot is kept in memory, not on disk), and once the live logs are
//! a small part of the segment files upkeep moves them to a fresh segment
//! and deletes the rest. Where H per group is a multiple of the interval
//! (1,000,000 over 100 groups: 10,000 each) the last round ends on a
//! snapshot, nothing is re-applied and the WAL is one small segment; other
//! sizes re-apply up to the bound. Naive, a restart replays and re-applies
//! everything. The files are read from the page cache (they were just
//! written), so the times are mostly CPU; each restart also creates a WAL
//! segment (two fsyncs), which adds the disk's sync latency.
//!
//! `--help` lists the options.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use muxraft::multi::{Event, NodeConfig};
use muxraft::raft::Role;
use muxraft::runtime::{Host, Runtime, RuntimeConfig};
use parking_lot::Mutex;

mod common;
use common::JsonObject;
#[path = "../tests/common/mod.rs"]
mod test_common;
use test_common::{Machine, TempDir};

const NODE: u64 = 1;
const CLUSTER_ID: u64 = 0x5253; // "RS"
/// Ticks allowed for every single-replica group to elect itself.
const ELECT_TICK_BOUND: u32 = 1_000;
/// Ticks allowed after a restart for every group to apply its log.
const CATCH_UP_TICK_BOUND: u32 = 100;

// ---------------------------------------------------------------------------
// Arguments

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Only {
    /// Snapshots and naive, side by side
    Both,
    /// With snapshots only
    Snapshots,
    /// Without snapshots only
    Naive,
}

/// Restart time and entries re-applied after H committed entries, with
/// snapshots and without.
#[derive(Parser, Clone, Debug)]
#[command(name = "restart", bin_name = "cargo bench --bench restart --")]
struct Args {
    /// History sizes: committed entries in all, comma-separated
    #[arg(long, value_name = "H,...", value_delimiter = ',', default_values_t = [10_000u64, 1_000_000])]
    entries: Vec<u64>,
    /// Single-replica groups on the node; the entries are spread evenly
    #[arg(long, value_name = "G", default_value_t = 100, value_parser = at_least_1())]
    groups: u64,
    /// Entries applied per group between two snapshots (the node's
    /// snapshot_threshold_entries; the host snapshots at each hint)
    #[arg(long, value_name = "S", default_value_t = 10_000, value_parser = at_least_1())]
    snapshot_every: u64,
    /// Entries kept below each snapshot (snapshot_trailing_entries)
    #[arg(long, value_name = "T", default_value_t = NodeConfig::new(1).snapshot_trailing_entries)]
    trailing: u64,
    /// WAL segment size in KiB
    #[arg(long, value_name = "K", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(64..))]
    segment_kib: u64,
    /// Bytes of each entry's payload (at least 16)
    #[arg(long, value_name = "B", default_value_t = 64, value_parser = clap::value_parser!(u64).range(16..=65536))]
    payload: u64,
    /// Entries per group per WAL write
    #[arg(long, value_name = "R", default_value_t = 1_000, value_parser = at_least_1())]
    round: u64,
    /// Restarts timed per size and mode (the median is reported)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = at_least_1())]
    restarts: u64,
    /// Run one mode only
    #[arg(long, value_name = "M", value_enum, default_value_t = Only::Both)]
    only: Only,
    /// One JSON object on one line instead of the table
    #[arg(long)]
    json: bool,
    /// Tiny sizes (10 groups, 1,000 and 20,000 entries, a snapshot every
    /// 500, 50 trailing, 64 KiB segments, rounds of 100, one restart), both
    /// modes; exit non-zero unless the larger history re-applies no more
    /// than the bound with snapshots and everything without
    #[arg(long)]
    smoke: bool,
    #[command(flatten)]
    cargo: common::CargoArgs,
}

fn at_least_1() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..)
}

fn parse_args() -> Result<Args, String> {
    let (mut a, m) = common::parse_command_line::<Args>("restart bench");
    if a.smoke {
        let sizes = [
            "entries",
            "groups",
            "snapshot_every",
            "trailing",
            "segment_kib",
            "round",
            "restarts",
        ];
        if sizes.iter().any(|id| common::given(&m, id)) {
            eprintln!("restart bench: --smoke uses its own sizes (see --help); size flags ignored");
        }
        a.entries = vec![1_000, 20_000];
        a.groups = 10;
        a.snapshot_every = 500;
        a.trailing = 50;
        a.segment_kib = 64;
        a.round = 100;
        a.restarts = 1;
        a.only = Only::Both;
    }
    if a.entries.is_empty() || a.entries.contains(&0) {
        return Err("--entries: at least one size, each at least 1".into());
    }
    a.entries.sort_unstable();
    a.entries.dedup();
    Ok(a)
}

// ---------------------------------------------------------------------------
// The host: a digest per group, and the writer

#[derive(Default)]
struct Group {
    machine: Machine,
    /// Entries proposed so far, and in all.
    proposed: u64,
    target: u64,
    /// Index of the latest snapshot the host took.
    snapshot: u64,
}

#[derive(Default)]
struct State {
    groups: BTreeMap<u64, Group>,
    /// The first callback proposes every group's first round.
    started: bool,
    applied_events: u64,
    restores: u64,
    snapshots_taken: u64,
    /// A runtime call from inside a callback failed, or an event made no
    /// sense.
    error: Option<String>,
}

struct BenchHost {
    payload: usize,
    round: u64,
    rt: OnceLock<Weak<Runtime>>,
    st: Mutex<State>,
}

/// What a callback asks the runtime to do once the state lock is released.
enum Call {
    Snapshot(u64, u64, Bytes),
    Propose(u64, std::ops::Range<u64>),
}

fn payload(group: u64, n: u64, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&group.to_le_bytes());
    v.extend_from_slice(&n.to_le_bytes());
    v.resize(len, (n % 251) as u8);
    Bytes::from(v)
}

impl BenchHost {
    fn new(args: &Args) -> Arc<BenchHost> {
        Arc::new(BenchHost {
            payload: args.payload as usize,
            round: args.round,
            rt: OnceLock::new(),
            st: Mutex::new(State::default()),
        })
    }

    /// The next round of group `g`, if its last one is applied (`st` is
    /// locked): proposed entries are counted now.
    fn next_round(&self, g: u64, grp: &mut Group, calls: &mut Vec<Call>) {
        if grp.machine.count == grp.proposed && grp.proposed < grp.target {
            let n = self.round.min(grp.target - grp.proposed);
            calls.push(Call::Propose(g, grp.proposed..grp.proposed + n));
            grp.proposed += n;
        }
    }

    fn run(&self, calls: Vec<Call>) -> Result<(), String> {
        if calls.is_empty() {
            return Ok(());
        }
        let rt = self
            .rt
            .get()
            .and_then(Weak::upgrade)
            .ok_or("no runtime in a callback")?;
        for c in calls {
            match c {
                Call::Snapshot(g, index, data) => rt
                    .snapshot(g, index, data)
                    .map_err(|e| format!("group {g}: snapshot at {index}: {e}"))?,
                Call::Propose(g, range) => {
                    for n in range {
                        rt.propose(g, payload(g, n, self.payload))
                            .map_err(|e| format!("group {g}: propose: {e}"))?;
                    }
                }
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        match &self.st.lock().error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

impl Host for BenchHost {
    fn send(&self, _to: u64, _frame: &[u8], _liveness: bool) {
        self.st
            .lock()
            .error
            .get_or_insert_with(|| "a single-replica group sent a frame".into());
    }

    fn event(&self, ev: &Event) {
        let mut calls = Vec::new();
        {
            let mut st = self.st.lock();
            let st = &mut *st;
            match ev {
                Event::Applied {
                    group_id,
                    index,
                    data,
                    ..
                } => {
                    st.applied_events += 1;
                    let grp = st.groups.entry(*group_id).or_default();
                    grp.machine.apply(*index, data);
                    self.next_round(*group_id, grp, &mut calls);
                    if !st.started {
                        st.started = true;
                        for (&g, grp) in st.groups.iter_mut() {
                            self.next_round(g, grp, &mut calls);
                        }
                    }
                }
                Event::Restore {
                    group_id,
                    index,
                    data,
                    ..
                } => {
                    st.restores += 1;
                    match Machine::decode(data) {
                        Some(m) if m.applied == *index => {
                            st.groups.entry(*group_id).or_default().machine = m;
                        }
                        _ => {
                            st.error.get_or_insert_with(|| {
                                format!("group {group_id}: bad snapshot data at {index}")
                            });
                        }
                    }
                }
                Event::SnapshotNeeded { group_id, .. } => {
                    let grp = st.groups.entry(*group_id).or_default();
                    let m = grp.machine;
                    if m.applied > grp.snapshot {
                        grp.snapshot = m.applied;
                        st.snapshots_taken += 1;
                        calls.push(Call::Snapshot(*group_id, m.applied, m.encode()));
                    }
                }
                _ => {}
            }
        }
        // From inside a callback every call only queues (and a snapshot is
        // made durable): the drive loop running below picks the work up.
        if let Err(e) = self.run(calls) {
            self.st.lock().error.get_or_insert(e);
        }
    }
}

// ---------------------------------------------------------------------------
// One size, one mode

#[derive(Clone, Debug)]
struct Measured {
    entries: u64,
    snapshots: bool,
    write: Duration,
    snapshots_taken: u64,
    /// Before the restart.
    wal_segments: u64,
    wal_segments_deleted: u64,
    snapshot_files: u64,
    dir_bytes: u64,
    /// Median over the restarts: until every group is back; `Runtime::new`
    /// alone.
    restart: Duration,
    new: Duration,
    restart_min: Duration,
    restart_max: Duration,
    /// On the last restart.
    reapplied: u64,
    restored: u64,
}

fn config(a: &Args, dir: &Path, snapshots: bool) -> RuntimeConfig {
    let mut node = NodeConfig::new(NODE);
    node.cluster_id = CLUSTER_ID;
    node.snapshot_trailing_entries = a.trailing;
    node.snapshot_threshold_entries = if snapshots {
        a.snapshot_every
    } else {
        u64::MAX
    };
    node.snapshot_threshold_bytes = u64::MAX;
    // A round of every group is in flight at once (100 x 1,000 by
    // default): more than the node-wide backpressure default, which is
    // about latency under overload, not what this bench measures.
    node.max_pending_proposals = u64::MAX;
    let mut cfg = RuntimeConfig::new(node);
    cfg.data_dir = Some(dir.to_path_buf());
    cfg.wal_segment_bytes = a.segment_kib << 10;
    cfg
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn new_runtime(cfg: RuntimeConfig, host: &Arc<BenchHost>) -> Result<Arc<Runtime>, String> {
    let rt = Runtime::new(cfg, host.clone()).map_err(|e| format!("Runtime::new: {e}"))?;
    let rt = Arc::new(rt);
    let _ = host.rt.set(Arc::downgrade(&rt));
    Ok(rt)
}

fn measure(a: &Args, entries: u64, snapshots: bool) -> Result<Measured, String> {
    let mode = if snapshots { "snapshots" } else { "naive" };
    let tmp = TempDir::new(&format!("{mode}-{entries}"));
    let dir = tmp.path();
    let groups: Vec<u64> = (1..=a.groups).collect();

    // 1. Write.
    let host = BenchHost::new(a);
    let rt = new_runtime(config(a, dir, snapshots), &host)?;
    {
        let mut st = host.st.lock();
        for (i, &g) in groups.iter().enumerate() {
            let extra = u64::from((i as u64) < entries % a.groups);
            st.groups.insert(
                g,
                Group {
                    target: entries / a.groups + extra,
                    ..Group::default()
                },
            );
        }
    }
    for &g in &groups {
        rt.create_group(g, 1, &[NODE])
            .map_err(|e| format!("create group {g}: {e}"))?;
    }
    let mut ticks = 0;
    while !groups
        .iter()
        .all(|&g| rt.group_status(g).is_ok_and(|s| s.role == Role::Leader))
    {
        ticks += 1;
        if ticks > ELECT_TICK_BOUND {
            return Err(format!(
                "groups not all leaders after {ELECT_TICK_BOUND} ticks"
            ));
        }
        rt.tick().map_err(|e| format!("tick: {e}"))?;
    }
    let t = Instant::now();
    // The first group's first entry from here; its apply callback proposes
    // every group's first round, and each group's apply callbacks its next
    // rounds: this call returns once everything is applied.
    let first = groups[0];
    {
        let mut st = host.st.lock();
        let grp = st.groups.get_mut(&first).expect("group");
        if grp.target == 0 {
            return Err("fewer entries than groups".into());
        }
        grp.proposed = 1;
    }
    rt.propose(first, payload(first, 0, a.payload as usize))
        .map_err(|e| format!("propose: {e}"))?;
    let write = t.elapsed();
    host.check()?;
    let (expected, snapshots_taken) = {
        let st = host.st.lock();
        for (g, grp) in &st.groups {
            if grp.machine.count != grp.target {
                return Err(format!(
                    "group {g}: {} of {} entries applied after the write",
                    grp.machine.count, grp.target
                ));
            }
        }
        let m: BTreeMap<u64, Machine> = st.groups.iter().map(|(g, x)| (*g, x.machine)).collect();
        (m, st.snapshots_taken)
    };
    let disk = rt.stats().3;
    drop(rt);
    let bytes = dir_bytes(dir);

    // 2. Restart.
    let mut times = Vec::new();
    let mut news = Vec::new();
    let (mut reapplied, mut restored) = (0, 0);
    for _ in 0..a.restarts {
        let host = BenchHost::new(a);
        let t = Instant::now();
        let rt = new_runtime(config(a, dir, snapshots), &host)?;
        let new = t.elapsed();
        let back = |host: &BenchHost| {
            let st = host.st.lock();
            expected
                .iter()
                .all(|(g, m)| st.groups.get(g).is_some_and(|x| x.machine == *m))
        };
        let mut ticks = 0;
        while !back(&host) {
            host.check()?;
            ticks += 1;
            if ticks > CATCH_UP_TICK_BOUND {
                let st = host.st.lock();
                let behind = expected
                    .iter()
                    .filter(|(g, m)| st.groups.get(g).map(|x| x.machine) != Some(**m))
                    .count();
                return Err(format!(
                    "{mode}, {entries} entries: {behind} groups not back after {CATCH_UP_TICK_BOUND} ticks"
                ));
            }
            rt.tick().map_err(|e| format!("tick: {e}"))?;
        }
        times.push(t.elapsed());
        news.push(new);
        host.check()?;
        let st = host.st.lock();
        reapplied = st.applied_events;
        restored = st.restores;
        drop(st);
        drop(rt);
    }
    let median = |mut v: Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    Ok(Measured {
        entries,
        snapshots,
        write,
        snapshots_taken,
        wal_segments: disk.wal_segments,
        wal_segments_deleted: disk.wal_segments_deleted,
        snapshot_files: disk.snapshot_files,
        dir_bytes: bytes,
        restart_min: *times.iter().min().expect("a restart"),
        restart_max: *times.iter().max().expect("a restart"),
        restart: median(times),
        new: median(news),
        reapplied,
        restored,
    })
}

// ---------------------------------------------------------------------------
// Report

struct Report {
    args: Args,
    runs: Vec<Measured>,
}

fn mode_name(snapshots: bool) -> &'static str {
    if snapshots {
        "snapshots"
    } else {
        "naive"
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Report {
    fn run_of(&self, entries: u64, snapshots: bool) -> Option<&Measured> {
        self.runs
            .iter()
            .find(|m| m.entries == entries && m.snapshots == snapshots)
    }

    /// restart(largest H) / restart(smallest H) for one mode.
    fn ratio(&self, snapshots: bool) -> Option<f64> {
        let lo = self.run_of(*self.args.entries.first()?, snapshots)?;
        let hi = self.run_of(*self.args.entries.last()?, snapshots)?;
        (self.args.entries.len() > 1).then(|| ms(hi.restart) / ms(lo.restart))
    }

    /// Entries a restart with snapshots may re-apply, whatever the history:
    /// per group, what it applied since its last snapshot (below the
    /// threshold, plus the round that crossed it).
    fn reapply_bound(&self) -> u64 {
        self.args.groups * (self.args.snapshot_every + self.args.round)
    }
}

impl common::Report for Report {
    fn json(&self) -> String {
        let a = &self.args;
        let mut o = JsonObject::default();
        o.int("groups", a.groups);
        o.int("snapshot_every", a.snapshot_every);
        o.int("trailing", a.trailing);
        o.int("segment_kib", a.segment_kib);
        o.int("payload", a.payload);
        o.int("round", a.round);
        o.int("restarts", a.restarts);
        o.int("reapply_bound", self.reapply_bound());
        for m in &self.runs {
            let k = format!("{}_{}", mode_name(m.snapshots), m.entries);
            o.num(&format!("{k}_write_ms"), ms(m.write));
            o.num(&format!("{k}_restart_ms"), ms(m.restart));
            o.num(&format!("{k}_restart_min_ms"), ms(m.restart_min));
            o.num(&format!("{k}_restart_max_ms"), ms(m.restart_max));
            o.num(&format!("{k}_new_ms"), ms(m.new));
            o.int(&format!("{k}_reapplied"), m.reapplied);
            o.int(&format!("{k}_restored"), m.restored);
            o.int(&format!("{k}_snapshots_taken"), m.snapshots_taken);
            o.int(&format!("{k}_wal_segments"), m.wal_segments);
            o.int(&format!("{k}_wal_segments_deleted"), m.wal_segments_deleted);
            o.int(&format!("{k}_snapshot_files"), m.snapshot_files);
            o.int(&format!("{k}_dir_bytes"), m.dir_bytes);
        }
        o.num("snapshots_restart_ratio", self.ratio(true));
        o.num("naive_restart_ratio", self.ratio(false));
        o.finish()
    }

    fn table(&self) -> String {
        let a = &self.args;
        let mut out = format!(
            "restart bench: {} single-replica groups, {} B entries in rounds of {} per group, \
             snapshot every {} entries per group (trailing {}), {} KiB WAL segments, \
             median of {} restart(s), release={}\n",
            a.groups,
            a.payload,
            a.round,
            a.snapshot_every,
            a.trailing,
            a.segment_kib,
            a.restarts,
            !cfg!(debug_assertions)
        );
        let head = [
            "entries",
            "groups",
            "mode",
            "write s",
            "restart ms",
            "(new ms)",
            "re-applied",
            "restored",
            "snaps taken",
            "wal segs",
            "segs deleted",
            "data dir bytes",
        ];
        let mut rows: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
        for m in &self.runs {
            rows.push(vec![
                m.entries.to_string(),
                a.groups.to_string(),
                mode_name(m.snapshots).to_string(),
                format!("{:.2}", m.write.as_secs_f64()),
                format!("{:.1}", ms(m.restart)),
                format!("{:.1}", ms(m.new)),
                m.reapplied.to_string(),
                m.restored.to_string(),
                m.snapshots_taken.to_string(),
                m.wal_segments.to_string(),
                m.wal_segments_deleted.to_string(),
                m.dir_bytes.to_string(),
            ]);
        }
        let widths: Vec<usize> = (0..head.len())
            .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
            .collect();
        for r in &rows {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(c, s)| {
                    if c == 2 {
                        format!("{s:<w$}", w = widths[c])
                    } else {
                        format!("{s:>w$}", w = widths[c])
                    }
                })
                .collect();
            out.push_str(&format!("  {}\n", cells.join("  ")));
        }
        if let (Some(lo), Some(hi)) = (a.entries.first(), a.entries.last()) {
            for snapshots in [true, false] {
                if let Some(r) = self.ratio(snapshots) {
                    out.push_str(&format!(
                        "restart({hi})/restart({lo}), {}: {r:.2}x\n",
                        mode_name(snapshots)
                    ));
                }
            }
        }
        out.push_str(&format!(
            "with snapshots a restart re-applies at most groups x (snapshot every + round) = {} entries\n",
            self.reapply_bound()
        ));
        out
    }

    fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        for m in self.runs.iter().filter(|m| m.snapshots) {
            if m.reapplied > self.reapply_bound() {
                w.push(format!(
                    "WARNING: {} entries with snapshots: {} re-applied, above the bound {}",
                    m.entries,
                    m.reapplied,
                    self.reapply_bound()
                ));
            }
        }
        w
    }

    fn smoke_failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        let Some(&hi) = self.args.entries.last() else {
            return vec!["no sizes".into()];
        };
        let (Some(s), Some(n)) = (self.run_of(hi, true), self.run_of(hi, false)) else {
            return vec!["smoke needs both modes".into()];
        };
        if n.reapplied != hi {
            f.push(format!(
                "naive, {hi} entries: {} re-applied, expected all",
                n.reapplied
            ));
        }
        if s.reapplied > self.reapply_bound() || s.reapplied >= n.reapplied {
            f.push(format!(
                "snapshots, {hi} entries: {} re-applied (bound {}, naive {})",
                s.reapplied,
                self.reapply_bound(),
                n.reapplied
            ));
        }
        if s.restored != self.args.groups {
            f.push(format!(
                "snapshots, {hi} entries: {} groups restored from a snapshot of {}",
                s.restored, self.args.groups
            ));
        }
        if s.wal_segments_deleted == 0 {
            f.push(format!(
                "snapshots, {hi} entries: no WAL segment was deleted"
            ));
        }
        f
    }
}

impl common::Args for Args {
    fn json(&self) -> bool {
        self.json
    }
    fn smoke(&self) -> bool {
        self.smoke
    }
}

fn run(a: &Args) -> Result<Report, String> {
    let mut runs = Vec::new();
    for &entries in &a.entries {
        for snapshots in [true, false] {
            let wanted = match a.only {
                Only::Both => true,
                Only::Snapshots => snapshots,
                Only::Naive => !snapshots,
            };
            if wanted {
                runs.push(measure(a, entries, snapshots)?);
            }
        }
    }
    Ok(Report {
        args: a.clone(),
        runs,
    })
}

fn main() -> ExitCode {
    common::run_main(
        "restart bench",
        "times are not meaningful (use cargo bench)",
        parse_args,
        run,
    )
}
