//! Heartbeat benchmark: idle heartbeat traffic and CPU, naive vs batched.
//!
//!     cargo bench --bench heartbeat -- --nodes 5 --groups 1000 --replicas 3 --intervals 50
//!     cargo bench --bench heartbeat -- --nodes 5 --groups 10000 --replicas 5 --json
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
//! heartbeat intervals, once with per-group heartbeats (naive) and once with
//! one batch per peer (batched), each on a freshly built cluster, and
//! reports what went on the wire and the CPU (wall-clock, single thread) per
//! group per interval for the whole round trip: tick, mux, encode, decode,
//! demux, step, respond. The rows "of which ..." are the cluster's
//! [`Phases`]; "ready+send" (JSON key `ready`) is `Node::ready` plus
//! encoding the frames and queueing them on the network.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use muxraft::multi::{FrameKind, NodeConfig, Stats};
use muxraft::raft::Role;
use muxraft::testkit::{Cluster, ClusterConfig, GroupSpec, Phases};

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
    /// Both modes, naive first
    Both,
    /// Per-group heartbeats only
    Naive,
    /// One batch per peer only
    Batched,
}

/// Idle heartbeat traffic and CPU of an in-process cluster, naive
/// (one heartbeat per group per follower) vs batched (one batch per peer).
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
    /// Tiny cluster (3 nodes, 30 groups, 3 replicas, 5 intervals, both modes,
    /// one window): assert the structural facts, exit non-zero if they fail
    #[arg(long)]
    smoke: bool,
    /// Which nodes host each group's replicas
    #[arg(long, value_name = "P", value_enum, default_value_t = Placement::Spread)]
    placement: Placement,
    /// Run one mode only (profiling)
    #[arg(long, value_name = "M", value_enum, default_value_t = Only::Both)]
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
        a.only = Only::Both;
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
    fn build(a: &Args, batch: bool) -> Result<Bench, String> {
        // What the nodes would run with outside the bench, but for the
        // modes and timers that the bench sets.
        let defaults = NodeConfig::new(1);
        let mut cfg = ClusterConfig::bench(a.nodes, SEED);
        cfg.cluster_id = CLUSTER_ID;
        cfg.batch_heartbeats = batch;
        // "batched" is every group awake, each with a row in every batch.
        cfg.quiesce = false;
        cfg.heartbeat_ticks = HEARTBEAT_TICKS;
        cfg.election_ticks = ELECTION_TICKS;
        cfg.max_append_bytes = defaults.max_append_bytes;
        cfg.max_inflight = defaults.max_inflight;
        let mut cluster = Cluster::new(cfg);
        let members: Vec<Vec<u64>> = (1..=a.groups)
            .map(|g| a.placement.members(g, a.nodes, a.replicas))
            .collect();
        for (g, m) in (1..).zip(&members) {
            let spec = GroupSpec {
                incarnation: 1,
                members: m.clone(),
            };
            cluster
                .create_group(g, spec, 0)
                .map_err(|e| format!("create group {g}: {e}"))?;
        }
        for (g, m) in (1..).zip(&members) {
            cluster.campaign(m[0], g)?;
        }
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
        d
    }

    fn sent(&self, k: FrameKind) -> u64 {
        self.sent_messages[k as usize]
    }
}

// ---------------------------------------------------------------------------
// Measurement

/// One mode's measured window, per interval where it says so.
#[derive(Clone, Debug)]
struct Measured {
    batch: bool,
    settle_ticks: u64,
    /// Heartbeat frames (and their answers) put on the wire per interval.
    messages_per_interval: f64,
    bytes_per_interval: f64,
    /// Per-group heartbeats carried per interval: stand-alone `Heartbeat`
    /// frames (naive) or rows in `HeartbeatBatch` frames (batched).
    group_heartbeats_per_interval: f64,
    /// Heartbeat bytes (both directions) per group heartbeat carried.
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
    wall: Duration,
    ns_per_group_interval: f64,
    phases: Phases,
}

fn measure(a: &Args, batch: bool) -> Result<Measured, String> {
    let mut c = Bench::build(a, batch)?;
    let settle_ticks = c.settle()?;
    let before = c.stats_sum();
    let ticks = a.intervals * HEARTBEAT_TICKS as u64;
    // The fastest of `repeat` windows, with its phase breakdown.
    let mut best: Option<(Duration, Phases)> = None;
    for _ in 0..a.repeat {
        c.cluster.phases = Phases::default();
        let start = Instant::now();
        for _ in 0..ticks {
            c.cluster.tick()?;
        }
        let wall = start.elapsed();
        if best.map_or(true, |(w, _)| wall < w) {
            best = Some((wall, c.cluster.phases));
        }
    }
    let (wall, phases) = best.expect("repeat >= 1");
    let d = c.stats_sum().minus(&before);
    if let Some(why) = c.unsettled() {
        return Err(format!(
            "{} cluster changed during the measured window: {why}",
            mode_name(batch)
        ));
    }
    drop(c); // free this cluster before the caller builds the next one

    let (mine, theirs) = if batch {
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
    let group_heartbeats = if batch {
        d.group_heartbeats_batched
    } else {
        d.sent(FrameKind::Heartbeat)
    };
    // Traffic and events are counted over all windows.
    let iv = (a.intervals * a.repeat) as f64;
    Ok(Measured {
        batch,
        settle_ticks,
        // Stats::heartbeat_traffic_sent(): all four liveness kinds; the
        // other mode's kinds are counted separately and must be 0.
        messages_per_interval: d.heartbeat_messages as f64 / iv,
        bytes_per_interval: d.heartbeat_bytes as f64 / iv,
        group_heartbeats_per_interval: group_heartbeats as f64 / iv,
        bytes_per_group_heartbeat: d.heartbeat_bytes as f64 / group_heartbeats as f64,
        other_messages: d.all_messages - d.heartbeat_messages,
        wrong_kind_messages,
        elections: d.elections,
        leader_changes: d.leader_changes,
        frames_rejected: d.frames_rejected,
        messages_dropped: d.messages_dropped,
        wall,
        ns_per_group_interval: wall.as_nanos() as f64 / (a.groups * a.intervals) as f64,
        phases,
    })
}

fn mode_name(batch: bool) -> &'static str {
    if batch {
        "batched"
    } else {
        "naive"
    }
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

// ---------------------------------------------------------------------------
// Report

struct Report {
    args: Args,
    naive: Option<Measured>,
    batched: Option<Measured>,
    heartbeat_pairs: u64,
}

impl Report {
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
}

impl common::Report for Report {
    fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        for m in [&self.naive, &self.batched].into_iter().flatten() {
            let mode = mode_name(m.batch);
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
        for (name, m) in [("naive", &self.naive), ("batched", &self.batched)] {
            let m = m.as_ref();
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
        for (name, m) in [("naive", &self.naive), ("batched", &self.batched)] {
            let m = m.as_ref();
            o.num(
                &format!("{name}_ns_per_group_interval"),
                m.map(|m| m.ns_per_group_interval),
            );
        }
        o.num("cpu_ratio", self.cpu_ratio());
        for (name, m) in [("naive", &self.naive), ("batched", &self.batched)] {
            let m = m.as_ref();
            o.int(&format!("{name}_elections"), m.map(|m| m.elections));
        }
        for (name, m) in [("naive", &self.naive), ("batched", &self.batched)] {
            let m = m.as_ref();
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
        let mut rows: Vec<[String; 4]> = Vec::new();
        let mut row = |name: &str, f: &dyn Fn(&Measured) -> f64, prec: usize, ratio: bool| {
            let nv = n.map(f);
            let bv = b.map(f);
            let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| fmt_num(v, prec));
            let r = match (ratio, nv, bv) {
                (true, Some(x), Some(y)) if y != 0.0 => format!("{:.2}x", x / y),
                _ => "".to_string(),
            };
            rows.push([name.to_string(), cell(nv), cell(bv), r]);
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
            "fastest window wall ms",
            &|m| m.wall.as_secs_f64() * 1e3,
            1,
            true,
        );
        row("settle ticks", &|m| m.settle_ticks as f64, 0, false);

        let header = ["metric", "naive", "batched", "naive/batched"];
        let mut w = [0usize; 4];
        for r in rows
            .iter()
            .map(|r| [r[0].len(), r[1].len(), r[2].len(), r[3].len()])
            .chain([header.map(str::len)])
        {
            for i in 0..4 {
                w[i] = w[i].max(r[i]);
            }
        }
        let line = |c: [&str; 4]| {
            format!(
                "  {:<w0$} | {:>w1$} | {:>w2$} | {:>w3$}\n",
                c[0],
                c[1],
                c[2],
                c[3],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3]
            )
        };
        out.push_str(&line(header));
        out.push_str(&format!(
            "  {}-+-{}-+-{}-+-{}\n",
            "-".repeat(w[0]),
            "-".repeat(w[1]),
            "-".repeat(w[2]),
            "-".repeat(w[3])
        ));
        for r in &rows {
            out.push_str(&line([&r[0], &r[1], &r[2], &r[3]]));
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
            "  directed node pairs carrying heartbeats: {} of N(N-1) = {} (placement {}); \
             expected batched msgs / interval = 2 * {} = {}\n",
            self.heartbeat_pairs,
            a.nodes * (a.nodes - 1),
            a.placement.name(),
            self.heartbeat_pairs,
            2 * self.heartbeat_pairs
        ));
        if let Some(r) = self.cpu_ratio() {
            out.push_str(&format!(
                "  cpu ratio (naive ns / batched ns per group per interval): {r:.2}x\n"
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
    let (Some(n), Some(b)) = (&r.naive, &r.batched) else {
        return vec!["smoke needs both modes".into()];
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
        let mode = mode_name(m.batch);
        if m.group_heartbeats_per_interval != group_beats {
            f.push(format!(
                "{mode}: group heartbeats / interval = {}, want L*(K-1) = {group_beats}",
                m.group_heartbeats_per_interval
            ));
        }
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
    }
    f
}

// ---------------------------------------------------------------------------

fn run(a: &Args) -> Result<Report, String> {
    let naive = match a.only {
        Only::Batched => None,
        _ => Some(measure(a, false)?),
    };
    let batched = match a.only {
        Only::Naive => None,
        _ => Some(measure(a, true)?),
    };
    Ok(Report {
        args: a.clone(),
        naive,
        batched,
        heartbeat_pairs: heartbeat_pairs(a),
    })
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
