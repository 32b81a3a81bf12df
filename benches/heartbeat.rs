//! Heartbeat benchmark: idle heartbeat traffic and CPU, naive vs batched vs
//! quiesced.
//!
//!     cargo bench --bench heartbeat -- --nodes 5 --groups 1000 --replicas 3 --intervals 50
//!     cargo bench --bench heartbeat -- --nodes 5 --groups 10000 --replicas 5 --json
//!     cargo bench --bench heartbeat -- --nodes 5 --groups 100000 --only quiesced
//!     cargo bench --bench heartbeat -- --smoke        # what CI runs
//!     cargo bench --bench heartbeat -- --help         # every flag
//!
//! The crate's in-process cluster ([`muxraft::testkit::Cluster`], as
//! [`ClusterConfig::bench`] sets it up: no WAL, no checker, a lossless
//! in-order network of encoded frames) runs N `multi::Node`s (ids 1..=N)
//! hosting L groups of K replicas with leaders balanced across the nodes.
//! Persistence is a no-op (the groups keep their logs in memory) but
//! `advance` is still called. After the cluster has elected the intended
//! leaders and every replica caught up, the benchmark measures I idle
//! heartbeat intervals in up to three modes, each on a freshly built
//! cluster:
//!
//! - naive: per-group heartbeats, one frame per group per follower;
//! - batched (batched-awake): one batch per peer per interval carrying a
//!   row per group, with quiescence off, so every group stays awake;
//! - quiesced: batched with quiescence on (the default of a real node);
//!   before measuring, the cluster ticks until every replica of every group
//!   has gone quiet (`Node::is_quiesced`), so what remains is the fixed
//!   per-pair liveness traffic: one empty batch and its answer per directed
//!   node pair that shares a group, whatever the number of groups.
//!
//! It reports what went on the wire and the CPU (wall-clock, single thread)
//! per group per interval for the whole round trip: tick, mux, encode,
//! decode, demux, step, respond. The rows "of which ..." are the cluster's
//! [`Phases`]; "ready+send" (JSON key `ready`) is `Node::ready` plus
//! encoding the frames and queueing them on the network. For quiesced it
//! also reports the fixed cost per directed pair per interval.
//! `scripts/heartbeat_callgrind.py` counts instructions per group per
//! interval with callgrind.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use muxraft::multi::{FrameKind, NodeConfig, Stats, QUIET_INTERVALS};
use muxraft::raft::Role;
use muxraft::testkit::{Cluster, ClusterConfig, Phases};

mod common;
use common::JsonObject;

const HEARTBEAT_TICKS: u32 = 2;
const ELECTION_TICKS: u32 = 10;
/// Carried in every frame; its varint size is part of the bytes counted.
const CLUSTER_ID: u64 = 0x4842; // "HB"
/// The cluster's randomness. Only election timeouts use it, and no timeout
/// runs out: the intended leaders campaign before the first tick.
const SEED: u64 = 1;
/// Ticks allowed for the intended leaders to win and every replica to catch up.
const SETTLE_TICK_BOUND: u64 = 200;
/// Idle intervals run after settling, before measuring, so that in-flight
/// appends and commit notifications drain.
const DRAIN_INTERVALS: u64 = 3;
/// Ticks allowed, after settling, for every replica of every group to go
/// quiet (quiesced mode): a leader sends the notice after
/// `QUIET_INTERVALS` idle intervals and its followers answer at once, so
/// this is several times what it takes.
const QUIESCE_TICK_BOUND: u64 =
    4 * (QUIET_INTERVALS as u64 + DRAIN_INTERVALS) * HEARTBEAT_TICKS as u64;

// ---------------------------------------------------------------------------
// Arguments

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Placement {
    /// Group g has members ((g + j) mod N) + 1 for j in 0..K; its leader is
    /// the first. Leaders are balanced, but a leader on node a only ever has
    /// followers on a+1..a+K-1, so only N·(K−1) of the N·(N−1) directed
    /// node pairs carry heartbeats (all of them when K = N).
    Contiguous,
    /// Same leader ((g mod N) + 1), but the followers are the leader plus a
    /// window of K−1 consecutive offsets in 1..N−1 that rotates with
    /// g / N, so every directed pair carries heartbeats once L ≥ N·(N−1)
    /// (the seed's "evenly attributed to N(N−1) paths"), and followers are
    /// balanced too. The default: it is the seed's assumption.
    Spread,
}

impl Placement {
    fn name(self) -> &'static str {
        match self {
            Placement::Contiguous => "contiguous",
            Placement::Spread => "spread",
        }
    }

    /// Members of group `g` (1-based), intended leader first.
    fn members(self, g: u64, n: u64, k: u64) -> Vec<u64> {
        match self {
            Placement::Contiguous => (0..k).map(|j| ((g + j) % n) + 1).collect(),
            Placement::Spread => {
                let leader = g % n; // 0-based
                let mut m = vec![leader + 1];
                if n > 1 {
                    let round = g / n;
                    for j in 1..k {
                        let offset = 1 + (round + j - 1) % (n - 1);
                        m.push((leader + offset) % n + 1);
                    }
                }
                m
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Only {
    /// All three modes: naive, batched, quiesced
    All,
    /// Naive and batched (every group awake), naive first
    Both,
    /// Per-group heartbeats only
    Naive,
    /// One batch per peer, every group awake (quiescence off), only
    Batched,
    /// One batch per peer, every group quiesced, only
    Quiesced,
}

impl Only {
    fn runs(self, m: Mode) -> bool {
        match self {
            Only::All => true,
            Only::Both => m != Mode::Quiesced,
            Only::Naive => m == Mode::Naive,
            Only::Batched => m == Mode::Batched,
            Only::Quiesced => m == Mode::Quiesced,
        }
    }
}

/// What a measured cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// One heartbeat frame per group per follower.
    Naive,
    /// One batch per peer per interval, a row per group: quiescence off,
    /// every group awake ("batched-awake").
    Batched,
    /// One batch per peer per interval, every group quiesced: the batches
    /// are empty.
    Quiesced,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Naive, Mode::Batched, Mode::Quiesced];

    fn name(self) -> &'static str {
        match self {
            Mode::Naive => "naive",
            Mode::Batched => "batched",
            Mode::Quiesced => "quiesced",
        }
    }

    fn batch(self) -> bool {
        self != Mode::Naive
    }
}

/// Idle heartbeat traffic and CPU of an in-process cluster, naive
/// (one heartbeat per group per follower) vs batched (one batch per peer,
/// every group awake) vs quiesced (one empty batch per peer, every group
/// quiet).
#[derive(Parser, Clone, Debug)]
#[command(name = "heartbeat", bin_name = "cargo bench --bench heartbeat --")]
struct Args {
    /// Nodes in the cluster (N)
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = at_least_1())]
    nodes: u64,
    /// Groups the cluster hosts (L)
    #[arg(long, value_name = "L", default_value_t = 1000, value_parser = at_least_1())]
    groups: u64,
    /// Replicas of each group (K), at most N and NodeConfig::max_replicas
    #[arg(long, value_name = "K", default_value_t = 3, value_parser = at_least_1())]
    replicas: u64,
    /// Heartbeat intervals measured per window (I), 2 ticks each
    #[arg(long, value_name = "I", default_value_t = 50, value_parser = at_least_1())]
    intervals: u64,
    /// One JSON object on one line instead of the table
    #[arg(long)]
    json: bool,
    /// Tiny cluster (3 nodes, 30 groups, 3 replicas, 5 intervals, all modes,
    /// one window; quiesced also with 60 groups): assert the structural
    /// facts, exit non-zero if they fail
    #[arg(long)]
    smoke: bool,
    /// Which nodes host each group's replicas
    #[arg(long, value_name = "P", value_enum, default_value_t = Placement::Spread)]
    placement: Placement,
    /// Run one mode only (profiling), or `both` for naive and batched
    #[arg(long, value_name = "M", value_enum, default_value_t = Only::All)]
    only: Only,
    /// Measure R windows of I intervals per mode on the same cluster; traffic
    /// counts cover all windows, CPU figures come from the fastest window
    /// (damps noise from other processes on the machine)
    #[arg(long, value_name = "R", default_value_t = 1, value_parser = at_least_1())]
    repeat: u64,
    #[command(flatten)]
    cargo: common::CargoArgs,
}

/// The counts above: 0 would measure nothing.
fn at_least_1() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..)
}

fn parse_args() -> Result<Args, String> {
    let (mut a, m) = common::parse_command_line::<Args>("heartbeat bench");
    if a.smoke {
        if ["nodes", "groups", "replicas", "intervals"]
            .iter()
            .any(|id| common::given(&m, id))
        {
            eprintln!("heartbeat bench: --smoke uses 3 nodes, 30 groups, 3 replicas, 5 intervals; size flags ignored");
        }
        a.nodes = 3;
        a.groups = 30;
        a.replicas = 3;
        a.intervals = 5;
        a.only = Only::All;
        a.repeat = 1;
    }
    if a.replicas > a.nodes {
        return Err(format!(
            "replicas ({}) must not exceed nodes ({})",
            a.replicas, a.nodes
        ));
    }
    let max_replicas = NodeConfig::new(1).max_replicas as u64;
    if a.replicas > max_replicas {
        return Err(format!(
            "replicas ({}) must not exceed NodeConfig::max_replicas ({max_replicas})",
            a.replicas
        ));
    }
    Ok(a)
}

// ---------------------------------------------------------------------------
// The cluster

/// A testkit cluster hosting the bench's groups.
struct Bench {
    cluster: Cluster,
    /// Members per group, intended leader first; index g - 1.
    members: Vec<Vec<u64>>,
}

impl Bench {
    /// Build the cluster, create every group on its members and let the
    /// intended leaders campaign (no time passes).
    fn build(a: &Args, mode: Mode) -> Result<Bench, String> {
        // What the nodes would run with outside the bench, but for the
        // modes and timers that the bench sets.
        let defaults = NodeConfig::new(1);
        let mut cfg = ClusterConfig::bench(a.nodes, SEED);
        cfg.cluster_id = CLUSTER_ID;
        cfg.batch_heartbeats = mode.batch();
        // "batched" is every group awake, each with a row in every batch;
        // "quiesced" is every group asleep, the batches empty.
        cfg.quiesce = mode == Mode::Quiesced;
        cfg.heartbeat_ticks = HEARTBEAT_TICKS;
        cfg.election_ticks = ELECTION_TICKS;
        cfg.max_append_bytes = defaults.max_append_bytes;
        cfg.max_inflight = defaults.max_inflight;
        let mut cluster = Cluster::new(cfg);
        let members: Vec<Vec<u64>> = (1..=a.groups)
            .map(|g| a.placement.members(g, a.nodes, a.replicas))
            .collect();
        common::create_and_campaign(&mut cluster, &members)?;
        Ok(Bench { cluster, members })
    }

    /// Why the cluster is not settled yet, if it is not: every group led by
    /// its intended leader, every replica of the same term, log and commit
    /// as the leader, and the leader's log fully committed.
    fn unsettled(&self) -> Option<String> {
        let status = |id: u64, g: u64| {
            self.cluster
                .node(id)
                .ok_or_else(|| format!("node {id} is down"))?
                .group_status(g)
                .map_err(|e| format!("group {g} on node {id}: {e}"))
        };
        for (g, m) in (1..).zip(&self.members) {
            let leader = m[0];
            let ls = match status(leader, g) {
                Ok(s) => s,
                Err(e) => return Some(e),
            };
            if ls.role != Role::Leader {
                return Some(format!(
                    "group {g}: intended leader {leader} is {:?} (term {}, leader {})",
                    ls.role, ls.term, ls.leader
                ));
            }
            if ls.commit != ls.last_index || ls.applied != ls.commit {
                return Some(format!(
                    "group {g}: leader commit {} applied {} last {}",
                    ls.commit, ls.applied, ls.last_index
                ));
            }
            for &r in &m[1..] {
                let s = match status(r, g) {
                    Ok(s) => s,
                    Err(e) => return Some(e),
                };
                if s.leader != leader
                    || s.term != ls.term
                    || s.commit != ls.commit
                    || s.last_index != ls.last_index
                {
                    return Some(format!(
                        "group {g} replica {r}: leader {} term {} commit {} last {} \
                         (leader {leader}: term {} commit {} last {})",
                        s.leader, s.term, s.commit, s.last_index, ls.term, ls.commit, ls.last_index
                    ));
                }
            }
        }
        None
    }

    /// Tick until the intended leaders lead and every replica caught up,
    /// then let a few idle intervals drain whatever is still in flight.
    /// Returns the ticks it took to settle.
    fn settle(&mut self) -> Result<u64, String> {
        let mut ticks = 0;
        while let Some(why) = self.unsettled() {
            if ticks >= SETTLE_TICK_BOUND {
                return Err(format!(
                    "cluster not settled after {SETTLE_TICK_BOUND} ticks: {why}"
                ));
            }
            self.cluster.tick()?;
            ticks += 1;
        }
        for _ in 0..DRAIN_INTERVALS * HEARTBEAT_TICKS as u64 {
            self.cluster.tick()?;
        }
        if let Some(why) = self.unsettled() {
            return Err(format!("cluster unsettled again while draining: {why}"));
        }
        Ok(ticks)
    }

    /// Why not every replica of every group is quiesced, if one is not.
    /// Cheap when they all are (`Node::quiet_counts` per node); names a
    /// group awake otherwise.
    fn not_quiet(&self) -> Option<String> {
        for id in self.cluster.ids() {
            let Some(n) = self.cluster.node(id) else {
                return Some(format!("node {id} is down"));
            };
            let (awake, quiet) = n.quiet_counts();
            if awake == 0 {
                continue;
            }
            let example = (1..)
                .zip(&self.members)
                .find(|(g, m)| m.contains(&id) && !n.is_quiesced(*g))
                .map_or(String::new(), |(g, _)| match n.group_status(g) {
                    Ok(s) => format!(
                        "; e.g. group {g}: {:?}, term {}, leader {}, commit {} of {}",
                        s.role, s.term, s.leader, s.commit, s.last_index
                    ),
                    Err(e) => format!("; e.g. group {g}: {e}"),
                });
            return Some(format!(
                "node {id}: {awake} replicas awake, {quiet} quiesced{example}"
            ));
        }
        None
    }

    /// After `settle`: tick until every replica of every group is quiesced,
    /// then let a few idle intervals pass (answers to the last notices
    /// drain; nothing may wake). Returns the tick, counted from the
    /// cluster's start, by which they all were (often within `settle`'s
    /// own drain).
    fn quiesce(&mut self) -> Result<u64, String> {
        let mut ticks = 0;
        while let Some(why) = self.not_quiet() {
            if ticks >= QUIESCE_TICK_BOUND {
                return Err(format!(
                    "quiesced: groups still awake {QUIESCE_TICK_BOUND} ticks after settling: {why}"
                ));
            }
            self.cluster.tick()?;
            ticks += 1;
        }
        let quiet_at = self.cluster.now;
        for _ in 0..DRAIN_INTERVALS * HEARTBEAT_TICKS as u64 {
            self.cluster.tick()?;
        }
        if let Some(why) = self.not_quiet() {
            return Err(format!(
                "quiesced: a group woke up again while draining: {why}"
            ));
        }
        if let Some(why) = self.unsettled() {
            return Err(format!(
                "quiesced: cluster unsettled after going quiet: {why}"
            ));
        }
        Ok(quiet_at)
    }

    fn stats_sum(&self) -> Totals {
        let mut t = Totals::default();
        for id in self.cluster.ids() {
            if let Some(n) = self.cluster.node(id) {
                t.add(n.stats());
            }
        }
        t
    }
}

/// Counters summed over all nodes.
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    sent_messages: [u64; FrameKind::COUNT],
    sent_bytes: [u64; FrameKind::COUNT],
    heartbeat_messages: u64,
    heartbeat_bytes: u64,
    all_messages: u64,
    group_heartbeats_batched: u64,
    group_heartbeat_responses_batched: u64,
    elections: u64,
    leader_changes: u64,
    frames_rejected: u64,
    messages_dropped: u64,
    /// Quiet groups woken, whatever the cause.
    wakeups: u64,
    quiesce_notices_sent: u64,
}

impl Totals {
    fn add(&mut self, s: &Stats) {
        for k in FrameKind::ALL {
            self.sent_messages[k as usize] += s.sent_of(k).messages;
            self.sent_bytes[k as usize] += s.sent_of(k).bytes;
        }
        let hb = s.heartbeat_traffic_sent();
        self.heartbeat_messages += hb.messages;
        self.heartbeat_bytes += hb.bytes;
        self.all_messages += s.messages_sent();
        self.group_heartbeats_batched += s.group_heartbeats_batched;
        self.group_heartbeat_responses_batched += s.group_heartbeat_responses_batched;
        self.elections += s.elections_started;
        self.leader_changes += s.leader_changes;
        self.frames_rejected += s.frames_rejected;
        self.messages_dropped += s.messages_dropped;
        self.wakeups += s.wakeups.iter().sum::<u64>();
        self.quiesce_notices_sent += s.quiesce_notices_sent;
    }

    fn minus(&self, before: &Totals) -> Totals {
        let mut d = *self;
        for i in 0..FrameKind::COUNT {
            d.sent_messages[i] -= before.sent_messages[i];
            d.sent_bytes[i] -= before.sent_bytes[i];
        }
        d.heartbeat_messages -= before.heartbeat_messages;
        d.heartbeat_bytes -= before.heartbeat_bytes;
        d.all_messages -= before.all_messages;
        d.group_heartbeats_batched -= before.group_heartbeats_batched;
        d.group_heartbeat_responses_batched -= before.group_heartbeat_responses_batched;
        d.elections -= before.elections;
        d.leader_changes -= before.leader_changes;
        d.frames_rejected -= before.frames_rejected;
        d.messages_dropped -= before.messages_dropped;
        d.wakeups -= before.wakeups;
        d.quiesce_notices_sent -= before.quiesce_notices_sent;
        d
    }

    fn sent(&self, k: FrameKind) -> u64 {
        self.sent_messages[k as usize]
    }

    fn sent_bytes(&self, k: FrameKind) -> u64 {
        self.sent_bytes[k as usize]
    }
}

// ---------------------------------------------------------------------------
// Measurement

/// One mode's measured window, per interval where it says so.
#[derive(Clone, Debug)]
struct Measured {
    mode: Mode,
    /// Groups of the cluster measured (the smoke run measures quiesced at
    /// two sizes).
    groups: u64,
    settle_ticks: u64,
    /// The tick (counted from the cluster's start) by which every replica
    /// of every group was quiet (quiesced).
    quiet_at_tick: Option<u64>,
    /// Heartbeat frames (and their answers) put on the wire per interval.
    messages_per_interval: f64,
    bytes_per_interval: f64,
    /// `HeartbeatBatch` frames per interval, and the bytes of the batches
    /// and of their answers (`HeartbeatBatchResponse`).
    batches_per_interval: f64,
    batch_bytes_per_interval: f64,
    answer_bytes_per_interval: f64,
    /// Per-group heartbeats carried per interval: stand-alone `Heartbeat`
    /// frames (naive) or rows in `HeartbeatBatch` frames (batched, and
    /// quiesced, where it must be 0).
    group_heartbeats_per_interval: f64,
    /// Answer rows in `HeartbeatBatchResponse` frames per interval.
    group_answers_per_interval: f64,
    /// Heartbeat bytes (both directions) per group heartbeat carried (not
    /// finite when none is: quiesced).
    bytes_per_group_heartbeat: f64,
    /// Frames that are not liveness traffic (appends, votes, ...) in the
    /// window: 0 for an idle cluster.
    other_messages: u64,
    /// Liveness frames of the other mode's kinds in the window: must be 0.
    wrong_kind_messages: u64,
    elections: u64,
    leader_changes: u64,
    frames_rejected: u64,
    messages_dropped: u64,
    /// Quiet groups woken, and quiesce notices sent, in the window.
    wakeups: u64,
    quiesce_notices: u64,
    wall: Duration,
    ns_per_group_interval: f64,
    phases: Phases,
}

fn measure(a: &Args, mode: Mode) -> Result<Measured, String> {
    let mut c = Bench::build(a, mode)?;
    let settle_ticks = c.settle()?;
    let quiet_at_tick = match mode {
        Mode::Quiesced => Some(c.quiesce()?),
        _ => None,
    };
    let before = c.stats_sum();
    let ticks = a.intervals * HEARTBEAT_TICKS as u64;
    // The fastest of `repeat` windows, with its phase breakdown.
    let mut best: Option<(Duration, Phases)> = None;
    for _ in 0..a.repeat {
        c.cluster.phases = Phases::default();
        let wall = measured_window(&mut c, ticks)?;
        if best.map_or(true, |(w, _)| wall < w) {
            best = Some((wall, c.cluster.phases));
        }
    }
    let (wall, phases) = best.expect("repeat >= 1");
    let d = c.stats_sum().minus(&before);
    if let Some(why) = c.unsettled() {
        return Err(format!(
            "{} cluster changed during the measured window: {why}",
            mode.name()
        ));
    }
    if mode == Mode::Quiesced {
        if let Some(why) = c.not_quiet() {
            return Err(format!(
                "quiesced: a group woke up during the measured window: {why}"
            ));
        }
    }
    drop(c); // free this cluster before the caller builds the next one

    let (mine, theirs) = if mode.batch() {
        (
            [FrameKind::HeartbeatBatch, FrameKind::HeartbeatBatchResponse],
            [FrameKind::Heartbeat, FrameKind::HeartbeatResponse],
        )
    } else {
        (
            [FrameKind::Heartbeat, FrameKind::HeartbeatResponse],
            [FrameKind::HeartbeatBatch, FrameKind::HeartbeatBatchResponse],
        )
    };
    let mine_messages: u64 = mine.iter().map(|&k| d.sent(k)).sum();
    let wrong_kind_messages: u64 = theirs.iter().map(|&k| d.sent(k)).sum();
    debug_assert_eq!(mine_messages + wrong_kind_messages, d.heartbeat_messages);
    let group_heartbeats = if mode.batch() {
        d.group_heartbeats_batched
    } else {
        d.sent(FrameKind::Heartbeat)
    };
    // Traffic and events are counted over all windows.
    let iv = (a.intervals * a.repeat) as f64;
    Ok(Measured {
        mode,
        groups: a.groups,
        settle_ticks,
        quiet_at_tick,
        // Stats::heartbeat_traffic_sent(): all four liveness kinds; the
        // other mode's kinds are counted separately and must be 0.
        messages_per_interval: d.heartbeat_messages as f64 / iv,
        bytes_per_interval: d.heartbeat_bytes as f64 / iv,
        batches_per_interval: d.sent(FrameKind::HeartbeatBatch) as f64 / iv,
        batch_bytes_per_interval: d.sent_bytes(FrameKind::HeartbeatBatch) as f64 / iv,
        answer_bytes_per_interval: d.sent_bytes(FrameKind::HeartbeatBatchResponse) as f64 / iv,
        group_heartbeats_per_interval: group_heartbeats as f64 / iv,
        group_answers_per_interval: d.group_heartbeat_responses_batched as f64 / iv,
        bytes_per_group_heartbeat: d.heartbeat_bytes as f64 / group_heartbeats as f64,
        other_messages: d.all_messages - d.heartbeat_messages,
        wrong_kind_messages,
        elections: d.elections,
        leader_changes: d.leader_changes,
        frames_rejected: d.frames_rejected,
        messages_dropped: d.messages_dropped,
        wakeups: d.wakeups,
        quiesce_notices: d.quiesce_notices_sent,
        wall,
        ns_per_group_interval: wall.as_nanos() as f64 / (a.groups * a.intervals) as f64,
        phases,
    })
}

/// One measured window: `ticks` ticks of the idle cluster, and the wall
/// time they took. Never inlined, so that a profiler can count it alone
/// (`scripts/heartbeat_callgrind.py --profile` collects only this).
#[inline(never)]
fn measured_window(c: &mut Bench, ticks: u64) -> Result<Duration, String> {
    let start = Instant::now();
    for _ in 0..ticks {
        c.cluster.tick()?;
    }
    Ok(start.elapsed())
}

/// Directed node pairs (leader node → follower node) that carry at least
/// one group heartbeat in this placement.
fn heartbeat_pairs(a: &Args) -> u64 {
    let n = a.nodes as usize;
    let mut used = vec![false; n * n];
    for g in 1..=a.groups {
        let m = a.placement.members(g, a.nodes, a.replicas);
        for &f in &m[1..] {
            used[(m[0] as usize - 1) * n + (f as usize - 1)] = true;
        }
    }
    used.iter().filter(|&&u| u).count() as u64
}

/// Directed node pairs (a → b) whose nodes share at least one group: each
/// such node sends the other one batch per interval (rows or not) and
/// answers each batch, so these carry the liveness traffic, and the
/// quiesced cluster's only traffic. At least `heartbeat_pairs` (it counts
/// follower → leader too).
fn sharing_pairs(a: &Args) -> u64 {
    let n = a.nodes as usize;
    let mut used = vec![false; n * n];
    for g in 1..=a.groups {
        let m = a.placement.members(g, a.nodes, a.replicas);
        for &x in &m {
            for &y in &m {
                if x != y {
                    used[(x as usize - 1) * n + (y as usize - 1)] = true;
                }
            }
        }
    }
    used.iter().filter(|&&u| u).count() as u64
}

// ---------------------------------------------------------------------------
// Report

struct Report {
    args: Args,
    naive: Option<Measured>,
    batched: Option<Measured>,
    quiesced: Option<Measured>,
    /// Smoke only: quiesced again on a cluster with twice the groups (same
    /// nodes, pairs and intervals), to show the traffic does not grow.
    quiesced_more: Option<Measured>,
    heartbeat_pairs: u64,
    sharing_pairs: u64,
}

impl Report {
    /// The modes in the order reported, with their names.
    fn modes(&self) -> [(&'static str, Option<&Measured>); 3] {
        [
            ("naive", self.naive.as_ref()),
            ("batched", self.batched.as_ref()),
            ("quiesced", self.quiesced.as_ref()),
        ]
    }

    /// The seed's reduction rate, counting heartbeats only and only the
    /// heartbeats that actually exist: L·(K−1)/(N·(N−1)). The seed itself
    /// writes L·K/(N·(N−1)) (it counts the leader's own replica, which is
    /// sent no heartbeat; see DESIGN.md). Responses double both numerator
    /// and denominator, so the ratio of messages is the same.
    fn formula_reduction(&self) -> f64 {
        let a = &self.args;
        (a.groups * (a.replicas - 1)) as f64 / (a.nodes * (a.nodes - 1)) as f64
    }

    fn seed_formula_reduction(&self) -> f64 {
        let a = &self.args;
        (a.groups * a.replicas) as f64 / (a.nodes * (a.nodes - 1)) as f64
    }

    fn measured_reduction(&self) -> Option<f64> {
        Some(
            self.naive.as_ref()?.messages_per_interval
                / self.batched.as_ref()?.messages_per_interval,
        )
    }

    fn cpu_ratio(&self) -> Option<f64> {
        Some(
            self.naive.as_ref()?.ns_per_group_interval
                / self.batched.as_ref()?.ns_per_group_interval,
        )
    }

    /// Batched-awake CPU over quiesced CPU, per group per interval.
    fn quiesced_cpu_ratio(&self) -> Option<f64> {
        Some(
            self.batched.as_ref()?.ns_per_group_interval
                / self.quiesced.as_ref()?.ns_per_group_interval,
        )
    }

    /// A per-interval figure of the quiesced cluster, per directed pair
    /// that shares a group: the fixed cost of the liveness traffic.
    fn per_pair(&self, v: f64) -> f64 {
        v / self.sharing_pairs as f64
    }

    /// Wall ns per directed pair per interval (quiesced: all of it is the
    /// fixed per-pair cost, the groups cost nothing).
    fn ns_per_pair(&self, m: &Measured) -> f64 {
        self.per_pair(m.wall.as_nanos() as f64 / self.args.intervals as f64)
    }
}

impl common::Report for Report {
    fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        for m in self.modes().into_iter().filter_map(|(_, m)| m) {
            let mode = m.mode.name();
            if m.elections != 0 {
                w.push(format!(
                    "WARNING: {mode}: {} elections started during the measured window of an idle cluster",
                    m.elections
                ));
            }
            if m.leader_changes != 0 {
                w.push(format!(
                    "WARNING: {mode}: {} leader changes during the measured window",
                    m.leader_changes
                ));
            }
            if m.other_messages != 0 {
                w.push(format!(
                    "WARNING: {mode}: {} non-heartbeat frames sent during the measured window (cluster not idle)",
                    m.other_messages
                ));
            }
            if m.wrong_kind_messages != 0 {
                w.push(format!(
                    "WARNING: {mode}: {} liveness frames of the other mode's kinds were sent",
                    m.wrong_kind_messages
                ));
            }
            if m.frames_rejected != 0 || m.messages_dropped != 0 {
                w.push(format!(
                    "WARNING: {mode}: {} frames rejected, {} messages dropped",
                    m.frames_rejected, m.messages_dropped
                ));
            }
            if m.wakeups != 0 {
                w.push(format!(
                    "WARNING: {mode}: {} quiet groups woken during the measured window",
                    m.wakeups
                ));
            }
            if m.mode == Mode::Quiesced && m.group_heartbeats_per_interval != 0.0 {
                w.push(format!(
                    "WARNING: quiesced: {} group heartbeat rows / interval (want 0)",
                    m.group_heartbeats_per_interval
                ));
            }
        }
        w
    }

    fn json(&self) -> String {
        let a = &self.args;
        let mut o = JsonObject::default();
        o.int("nodes", a.nodes);
        o.int("groups", a.groups);
        o.int("replicas", a.replicas);
        o.int("intervals", a.intervals);
        o.int("repeat", a.repeat);
        o.str("placement", a.placement.name());
        o.int("heartbeat_ticks", HEARTBEAT_TICKS as u64);
        o.int("election_ticks", ELECTION_TICKS as u64);
        o.int("directed_pairs", a.nodes * (a.nodes - 1));
        o.int("directed_pairs_with_heartbeats", self.heartbeat_pairs);
        o.int("directed_pairs_sharing_groups", self.sharing_pairs);
        for (name, m) in self.modes() {
            o.num(
                &format!("{name}_messages_per_interval"),
                m.map(|m| m.messages_per_interval),
            );
            o.num(
                &format!("{name}_bytes_per_interval"),
                m.map(|m| m.bytes_per_interval),
            );
        }
        o.num(
            "batched_bytes_per_group_heartbeat",
            self.batched.as_ref().map(|m| m.bytes_per_group_heartbeat),
        );
        o.num(
            "naive_bytes_per_group_heartbeat",
            self.naive.as_ref().map(|m| m.bytes_per_group_heartbeat),
        );
        o.num("measured_reduction", self.measured_reduction());
        o.num("formula_reduction", self.formula_reduction());
        o.num("seed_formula_reduction_lk", self.seed_formula_reduction());
        for (name, m) in self.modes() {
            o.num(
                &format!("{name}_ns_per_group_interval"),
                m.map(|m| m.ns_per_group_interval),
            );
        }
        o.num("cpu_ratio", self.cpu_ratio());
        o.num("batched_quiesced_cpu_ratio", self.quiesced_cpu_ratio());
        for (name, m) in self.modes() {
            o.int(&format!("{name}_elections"), m.map(|m| m.elections));
        }
        for (name, m) in self.modes() {
            o.num(
                &format!("{name}_group_heartbeats_per_interval"),
                m.map(|m| m.group_heartbeats_per_interval),
            );
            o.int(
                &format!("{name}_other_messages"),
                m.map(|m| m.other_messages),
            );
            o.int(
                &format!("{name}_leader_changes"),
                m.map(|m| m.leader_changes),
            );
            o.int(&format!("{name}_settle_ticks"), m.map(|m| m.settle_ticks));
            o.num(
                &format!("{name}_wall_ms"),
                m.map(|m| m.wall.as_secs_f64() * 1e3),
            );
            let per = |d: Duration| d.as_nanos() as f64 / (a.groups * a.intervals) as f64;
            for (phase, _, f) in PHASES {
                o.num(
                    &format!("{name}_{phase}_ns_per_group_interval"),
                    m.map(|m| per(f(&m.phases))),
                );
            }
        }
        // Quiesced only: how it got there, and the fixed per-pair cost.
        let q = self.quiesced.as_ref();
        o.int("quiesced_quiet_at_tick", q.and_then(|m| m.quiet_at_tick));
        o.int("quiesced_wakeups", q.map(|m| m.wakeups));
        o.int("quiesced_quiesce_notices", q.map(|m| m.quiesce_notices));
        o.num(
            "quiesced_group_answers_per_interval",
            q.map(|m| m.group_answers_per_interval),
        );
        o.num(
            "quiesced_batches_per_interval",
            q.map(|m| m.batches_per_interval),
        );
        o.num(
            "quiesced_messages_per_pair_interval",
            q.map(|m| self.per_pair(m.messages_per_interval)),
        );
        o.num(
            "quiesced_bytes_per_pair_interval",
            q.map(|m| self.per_pair(m.bytes_per_interval)),
        );
        o.num(
            "quiesced_batch_bytes_per_pair_interval",
            q.map(|m| self.per_pair(m.batch_bytes_per_interval)),
        );
        o.num(
            "quiesced_answer_bytes_per_pair_interval",
            q.map(|m| self.per_pair(m.answer_bytes_per_interval)),
        );
        o.num(
            "quiesced_ns_per_pair_interval",
            q.map(|m| self.ns_per_pair(m)),
        );
        o.finish()
    }

    fn table(&self) -> String {
        let a = &self.args;
        let mut out = String::new();
        out.push_str(&format!(
            "heartbeat bench: {} nodes, {} groups, {} replicas, {} intervals of {} ticks \
             (election {} ticks), best of {} window(s), placement {}, release={}\n",
            a.nodes,
            a.groups,
            a.replicas,
            a.intervals,
            HEARTBEAT_TICKS,
            ELECTION_TICKS,
            a.repeat,
            a.placement.name(),
            !cfg!(debug_assertions)
        ));
        let n = self.naive.as_ref();
        let b = self.batched.as_ref();
        let q = self.quiesced.as_ref();
        const COLS: usize = 6;
        let mut rows: Vec<[String; COLS]> = Vec::new();
        let mut row = |name: &str, f: &dyn Fn(&Measured) -> f64, prec: usize, ratio: bool| {
            let (nv, bv, qv) = (n.map(f), b.map(f), q.map(f));
            // Fractions (quiesced figures per group) keep 3 decimals.
            let cell = |v: Option<f64>| {
                v.map_or("-".to_string(), |v| {
                    let small = prec > 0 && v != 0.0 && v.abs() < 1.0;
                    fmt_num(v, if small { 3 } else { prec })
                })
            };
            let ratio = |x: Option<f64>, y: Option<f64>| match (ratio, x, y) {
                (true, Some(x), Some(y)) if x.is_finite() && y.is_finite() && y != 0.0 => {
                    format!("{:.2}x", x / y)
                }
                _ => "".to_string(),
            };
            rows.push([
                name.to_string(),
                cell(nv),
                cell(bv),
                cell(qv),
                ratio(nv, bv),
                ratio(bv, qv),
            ]);
        };
        row(
            "heartbeat msgs / interval",
            &|m| m.messages_per_interval,
            1,
            true,
        );
        row(
            "heartbeat bytes / interval",
            &|m| m.bytes_per_interval,
            1,
            true,
        );
        row(
            "group heartbeats / interval",
            &|m| m.group_heartbeats_per_interval,
            1,
            true,
        );
        row(
            "bytes / group heartbeat (both ways)",
            &|m| m.bytes_per_group_heartbeat,
            2,
            true,
        );
        row(
            "ns / group / interval (wall)",
            &|m| m.ns_per_group_interval,
            1,
            true,
        );
        for (_, label, f) in PHASES {
            let per = move |m: &Measured| {
                f(&m.phases).as_nanos() as f64 / (a.groups * a.intervals) as f64
            };
            row(&format!("  of which {label}"), &per, 1, true);
        }
        row(
            "  of which host loop / timers",
            &|m| {
                m.wall.saturating_sub(m.phases.total()).as_nanos() as f64
                    / (a.groups * a.intervals) as f64
            },
            1,
            true,
        );
        row(
            "elections (measured windows)",
            &|m| m.elections as f64,
            0,
            false,
        );
        row(
            "leader changes (measured windows)",
            &|m| m.leader_changes as f64,
            0,
            false,
        );
        row(
            "other frames (measured windows)",
            &|m| m.other_messages as f64,
            0,
            false,
        );
        row(
            "groups woken (measured windows)",
            &|m| m.wakeups as f64,
            0,
            false,
        );
        row(
            "fastest window wall ms",
            &|m| m.wall.as_secs_f64() * 1e3,
            1,
            true,
        );
        row("settle ticks", &|m| m.settle_ticks as f64, 0, false);
        row(
            "all quiet at tick",
            &|m| m.quiet_at_tick.map_or(f64::NAN, |t| t as f64),
            0,
            false,
        );

        let header = [
            "metric",
            "naive",
            "batched",
            "quiesced",
            "naive/batched",
            "batched/quiesced",
        ];
        let mut w = [0usize; COLS];
        for r in rows
            .iter()
            .map(|r| r.clone().map(|c| c.len()))
            .chain([header.map(str::len)])
        {
            for i in 0..COLS {
                w[i] = w[i].max(r[i]);
            }
        }
        let line = |c: [&str; COLS]| {
            let mut s = format!("  {:<w0$}", c[0], w0 = w[0]);
            for i in 1..COLS {
                s.push_str(&format!(" | {:>wi$}", c[i], wi = w[i]));
            }
            s.push('\n');
            s
        };
        out.push_str(&line(header));
        let rule: Vec<String> = w.iter().map(|&wi| "-".repeat(wi)).collect();
        out.push_str(&format!("  {}\n", rule.join("-+-")));
        for r in &rows {
            out.push_str(&line(r.each_ref().map(String::as_str)));
        }
        out.push_str(&format!(
            "  measured reduction (naive/batched heartbeat msgs): {}\n",
            self.measured_reduction()
                .map_or("-".to_string(), |r| format!("{r:.2}"))
        ));
        out.push_str(&format!(
            "  formula reduction L(K-1)/(N(N-1)) = {}*{}/({}*{}) = {:.2}  \
             (heartbeats only; the seed counts L*K: {:.2})\n",
            a.groups,
            a.replicas - 1,
            a.nodes,
            a.nodes.saturating_sub(1),
            self.formula_reduction(),
            self.seed_formula_reduction()
        ));
        out.push_str(&format!(
            "  directed node pairs carrying heartbeats: {} of N(N-1) = {} (placement {})\n",
            self.heartbeat_pairs,
            a.nodes * (a.nodes - 1),
            a.placement.name(),
        ));
        // Every node sends each peer that shares a group with it one batch
        // per interval, rows or not (the liveness signal), and answers each:
        // so batched and quiesced send the same frames, follower to leader
        // too, and only their rows differ.
        out.push_str(&format!(
            "  directed node pairs sharing a group: {}; expected batched and quiesced \
             msgs / interval = 2 * {} = {}\n",
            self.sharing_pairs,
            self.sharing_pairs,
            2 * self.sharing_pairs
        ));
        if let Some(r) = self.cpu_ratio() {
            out.push_str(&format!(
                "  cpu ratio (naive ns / batched ns per group per interval): {r:.2}x\n"
            ));
        }
        if let Some(m) = q {
            out.push_str(&format!(
                "  quiesced fixed cost per directed pair per interval (empty batch + its answer): \
                 {} msgs, {} bytes (batch {}, answer {}), {} ns wall\n",
                fmt_num(self.per_pair(m.messages_per_interval), 2),
                fmt_num(self.per_pair(m.bytes_per_interval), 1),
                fmt_num(self.per_pair(m.batch_bytes_per_interval), 1),
                fmt_num(self.per_pair(m.answer_bytes_per_interval), 1),
                fmt_num(self.ns_per_pair(m), 0),
            ));
        }
        if let Some(r) = self.quiesced_cpu_ratio() {
            out.push_str(&format!(
                "  cpu ratio (batched ns / quiesced ns per group per interval): {r:.2}x\n"
            ));
        }
        out
    }

    fn smoke_failures(&self) -> Vec<String> {
        smoke_failures(self)
    }
}

type PhaseFn = fn(&Phases) -> Duration;
/// The phases reported: JSON key, table row, time.
const PHASES: [(&str, &str, PhaseFn); 5] = [
    ("tick", "tick", |p| p.tick),
    ("has_ready", "has_ready", |p| p.has_ready),
    ("ready", "ready+send", |p| p.ready + p.send),
    ("advance", "advance", |p| p.advance),
    ("step", "step", |p| p.step),
];

fn fmt_num(v: f64, prec: usize) -> String {
    if v.is_finite() {
        format!("{v:.prec$}")
    } else {
        "n/a".to_string()
    }
}

// ---------------------------------------------------------------------------
// Smoke checks

/// The structural facts CI relies on; returns the failures.
fn smoke_failures(r: &Report) -> Vec<String> {
    let a = &r.args;
    let mut f = Vec::new();
    let (Some(n), Some(b), Some(q), Some(q2)) =
        (&r.naive, &r.batched, &r.quiesced, &r.quiesced_more)
    else {
        return vec!["smoke needs all three modes (and quiesced at two sizes)".into()];
    };
    let all_pairs = a.nodes * (a.nodes - 1);
    if r.heartbeat_pairs != all_pairs {
        f.push(format!(
            "smoke config must make every directed pair carry heartbeats: {} of {all_pairs}",
            r.heartbeat_pairs
        ));
    }
    let want_batched = (2 * all_pairs) as f64;
    if b.messages_per_interval != want_batched {
        f.push(format!(
            "batched heartbeat msgs / interval = {}, want 2*N*(N-1) = {want_batched}",
            b.messages_per_interval
        ));
    }
    let group_beats = (a.groups * (a.replicas - 1)) as f64;
    let want_naive = 2.0 * group_beats;
    if n.messages_per_interval != want_naive {
        f.push(format!(
            "naive heartbeat msgs / interval = {}, want 2*L*(K-1) = {want_naive}",
            n.messages_per_interval
        ));
    }
    for m in [n, b] {
        let mode = m.mode.name();
        if m.group_heartbeats_per_interval != group_beats {
            f.push(format!(
                "{mode}: group heartbeats / interval = {}, want L*(K-1) = {group_beats}",
                m.group_heartbeats_per_interval
            ));
        }
    }
    // Quiesced: one (empty) batch and one answer per directed pair that
    // shares a group, at either size; no rows; the bytes do not grow with
    // the groups.
    if r.sharing_pairs != all_pairs {
        f.push(format!(
            "smoke config must make every directed pair share a group: {} of {all_pairs}",
            r.sharing_pairs
        ));
    }
    for m in [q, q2] {
        let l = m.groups;
        let want = (2 * r.sharing_pairs) as f64;
        if m.messages_per_interval != want {
            f.push(format!(
                "quiesced (L={l}): heartbeat msgs / interval = {}, want one batch and one answer \
                 per directed pair sharing a group, 2*{} = {want}",
                m.messages_per_interval, r.sharing_pairs
            ));
        }
        if m.batches_per_interval != r.sharing_pairs as f64 {
            f.push(format!(
                "quiesced (L={l}): batches / interval = {}, want {}",
                m.batches_per_interval, r.sharing_pairs
            ));
        }
        if m.group_heartbeats_per_interval != 0.0 || m.group_answers_per_interval != 0.0 {
            f.push(format!(
                "quiesced (L={l}): {} heartbeat rows and {} answer rows / interval, want 0",
                m.group_heartbeats_per_interval, m.group_answers_per_interval
            ));
        }
        if m.wakeups != 0 || m.quiesce_notices != 0 {
            f.push(format!(
                "quiesced (L={l}): {} groups woken, {} quiesce notices in the window, want 0",
                m.wakeups, m.quiesce_notices
            ));
        }
    }
    if q2.bytes_per_interval > q.bytes_per_interval {
        f.push(format!(
            "quiesced: bytes / interval grew with the quiesced groups: {} at L={}, {} at L={}",
            q.bytes_per_interval, q.groups, q2.bytes_per_interval, q2.groups
        ));
    }
    for m in [n, b, q, q2] {
        let mode = m.mode.name();
        if m.elections != 0 {
            f.push(format!(
                "{mode}: {} elections in the window, want 0",
                m.elections
            ));
        }
        if m.wrong_kind_messages != 0 {
            f.push(format!(
                "{mode}: {} liveness frames of the other mode's kinds",
                m.wrong_kind_messages
            ));
        }
        if m.other_messages != 0 {
            f.push(format!(
                "{mode}: {} non-heartbeat frames in the window of an idle cluster, want 0",
                m.other_messages
            ));
        }
    }
    f
}

// ---------------------------------------------------------------------------

fn run(a: &Args) -> Result<Report, String> {
    let mut r = Report {
        args: a.clone(),
        naive: None,
        batched: None,
        quiesced: None,
        quiesced_more: None,
        heartbeat_pairs: heartbeat_pairs(a),
        sharing_pairs: sharing_pairs(a),
    };
    for mode in Mode::ALL {
        if !a.only.runs(mode) {
            continue;
        }
        let m = Some(measure(a, mode)?);
        match mode {
            Mode::Naive => r.naive = m,
            Mode::Batched => r.batched = m,
            Mode::Quiesced => r.quiesced = m,
        }
    }
    if a.smoke {
        // Twice the groups on the same nodes: the quiet groups must add
        // nothing to the wire.
        let more = Args {
            groups: 2 * a.groups,
            ..a.clone()
        };
        if sharing_pairs(&more) != r.sharing_pairs {
            return Err("smoke: doubling the groups changed the pairs that share one".into());
        }
        r.quiesced_more = Some(measure(&more, Mode::Quiesced)?);
    }
    Ok(r)
}

impl common::Args for Args {
    fn json(&self) -> bool {
        self.json
    }
    fn smoke(&self) -> bool {
        self.smoke
    }
}

fn main() -> ExitCode {
    common::run_main(
        "heartbeat bench",
        "CPU figures are not meaningful (use cargo bench)",
        parse_args,
        run,
    )
}
