//! Commit-path benchmark: the CPU one committed proposal costs, leader and
//! followers together, on the in-process cluster.
//!
//!     cargo bench --bench commit_path -- --groups 1000 --per-group 1 --rounds 100
//!     cargo bench --bench commit_path -- --groups 1000 --per-group 8 --json
//!     cargo bench --bench commit_path -- --smoke      # what CI runs
//!     scripts/commit_callgrind.py --per-group 1       # instructions per commit
//!
//! The crate's in-process cluster ([`muxraft::testkit::Cluster`] as
//! [`ClusterConfig::bench`] sets it up, with the real WAL on the in-memory
//! file system unless `--no-wal`) runs N nodes hosting L groups of K
//! replicas, leaders spread evenly. Each measured round proposes
//! `--per-group` 16-byte payloads to each of `--active` of the groups
//! (at their leaders), then runs one cluster tick, in which every node
//! takes its ready (one pass), writes its WAL batch, sends, and the frames
//! are delivered until the network is quiet: every proposal of the round
//! is committed and applied on every replica before the next round. So a
//! round is what a node pass does under load, and `--per-group` is the
//! batch each group activation carries: 1 is the shape of a cluster at
//! mid load (each group gets about one proposal per pass), 8 or more the
//! shape near saturation, where batches grow and the per-activation cost
//! is shared.
//!
//! Reported: commits, wall-clock nanoseconds per commit by phase (ready,
//! send: persist + encode + deliver, step: decode + step, advance, tick),
//! and the Raft messages and bytes the nodes sent per commit. Wall time on a shared
//! machine is noisy; `scripts/commit_callgrind.py` counts instructions
//! per commit with callgrind (two round counts, subtracted), which are not.

use std::process::ExitCode;
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use muxraft::multi::{NodeConfig, Stats};
use muxraft::raft::Role;
use muxraft::storage::WalOptions;
use muxraft::testkit::{Cluster, ClusterConfig, Phases};

mod common;
use common::JsonObject;

const HEARTBEAT_TICKS: u32 = 2;
const ELECTION_TICKS: u32 = 10;
const SEED: u64 = 1;
/// Ticks allowed for the intended leaders to win and every replica to
/// catch up before the warm-up.
const SETTLE_TICK_BOUND: u64 = 200;

#[derive(Parser, Clone, Debug)]
#[command(about = "CPU per committed proposal on the in-process cluster")]
struct Args {
    /// Nodes in the cluster
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Raft groups
    #[arg(long, default_value_t = 1000)]
    groups: u64,
    /// Replicas per group (at most --nodes)
    #[arg(long, default_value_t = 3)]
    replicas: u64,
    /// Groups proposed to in each round (default: all of them)
    #[arg(long)]
    active: Option<u64>,
    /// Proposals per active group per round: the batch a group activation
    /// carries
    #[arg(long, default_value_t = 1)]
    per_group: u64,
    /// Payload bytes per proposal
    #[arg(long, default_value_t = 16)]
    payload_bytes: usize,
    /// Measured rounds
    #[arg(long, default_value_t = 100)]
    rounds: u64,
    /// Rounds run before measuring (logs and buffers reach their size)
    #[arg(long, default_value_t = 20)]
    warmup_rounds: u64,
    /// Keep the groups' logs in memory only (no WAL)
    #[arg(long)]
    no_wal: bool,
    /// One JSON object on one line instead of the table
    #[arg(long)]
    json: bool,
    /// CI's check: a small cluster, every proposal committed everywhere
    #[arg(long)]
    smoke: bool,
    #[command(flatten)]
    cargo: common::CargoArgs,
}

impl common::Args for Args {
    fn json(&self) -> bool {
        self.json
    }
    fn smoke(&self) -> bool {
        self.smoke
    }
}

fn parse() -> Result<Args, String> {
    let (mut a, m) = common::parse_command_line::<Args>("commit_path bench");
    if a.smoke {
        if !common::given(&m, "groups") {
            a.groups = 60;
        }
        if !common::given(&m, "rounds") {
            a.rounds = 20;
        }
        if !common::given(&m, "warmup_rounds") {
            a.warmup_rounds = 5;
        }
    }
    if a.nodes == 0 || a.groups == 0 || a.replicas == 0 || a.per_group == 0 || a.rounds == 0 {
        return Err(
            "--nodes, --groups, --replicas, --per-group and --rounds must be positive".into(),
        );
    }
    if a.replicas > a.nodes {
        return Err(format!(
            "--replicas ({}) must not exceed --nodes ({})",
            a.replicas, a.nodes
        ));
    }
    if a.active.is_some_and(|n| n == 0 || n > a.groups) {
        return Err("--active must be between 1 and --groups".into());
    }
    // Every round's proposals must fit the node-wide limit on proposals in
    // flight, or the bench would measure refusals.
    let per_node = a.active() * a.per_group / a.nodes + a.per_group;
    if per_node > NodeConfig::DEFAULT_MAX_PENDING_PROPOSALS {
        return Err(format!(
            "a round puts about {per_node} proposals in flight per node, over the \
             default limit of {}: lower --active or --per-group",
            NodeConfig::DEFAULT_MAX_PENDING_PROPOSALS
        ));
    }
    Ok(a)
}

impl Args {
    fn active(&self) -> u64 {
        self.active.unwrap_or(self.groups)
    }

    fn commits_per_round(&self) -> u64 {
        self.active() * self.per_group
    }
}

/// The cluster and each group's members, intended leader first.
struct Bench {
    cluster: Cluster,
    members: Vec<Vec<u64>>,
    payload: Bytes,
    /// The next group to propose to (round robin when --active < --groups).
    next: u64,
}

impl Bench {
    fn build(a: &Args) -> Result<Bench, String> {
        let defaults = NodeConfig::new(1);
        let mut cfg = ClusterConfig::bench(a.nodes, SEED);
        cfg.wal = !a.no_wal;
        cfg.segment_bytes = WalOptions::DEFAULT_SEGMENT_BYTES;
        cfg.heartbeat_ticks = HEARTBEAT_TICKS;
        cfg.election_ticks = ELECTION_TICKS;
        cfg.max_append_bytes = defaults.max_append_bytes;
        cfg.max_inflight = defaults.max_inflight;
        cfg.snapshot_threshold_entries = defaults.snapshot_threshold_entries;
        let mut cluster = Cluster::new(cfg);
        // Group g: leader on node g mod N, followers on the next ones.
        let members: Vec<Vec<u64>> = (1..=a.groups)
            .map(|g| (0..a.replicas).map(|j| (g + j) % a.nodes + 1).collect())
            .collect();
        common::create_and_campaign(&mut cluster, &members)?;
        Ok(Bench {
            cluster,
            members,
            payload: Bytes::from(vec![b'p'; a.payload_bytes]),
            next: 0,
        })
    }

    /// Why the cluster is not settled, if it is not: each group led by its
    /// intended leader, and every replica holding and applying the leader's
    /// whole log.
    fn unsettled(&self) -> Option<String> {
        for (g, m) in (1..).zip(&self.members) {
            let ls = match self.cluster.node(m[0]).map(|n| n.group_status(g)) {
                Some(Ok(s)) => s,
                other => return Some(format!("group {g} on node {}: {other:?}", m[0])),
            };
            if ls.role != Role::Leader {
                return Some(format!("group {g}: node {} is {:?}", m[0], ls.role));
            }
            for &r in m {
                let s = match self.cluster.node(r).map(|n| n.group_status(g)) {
                    Some(Ok(s)) => s,
                    other => return Some(format!("group {g} on node {r}: {other:?}")),
                };
                // The leader has committed and applied everything; every
                // follower holds the whole log and has applied what it
                // knows is committed, which may trail the leader's commit
                // until its next append or heartbeat tells it (the
                // default: no commit broadcast).
                let behind = if r == m[0] {
                    s.commit != ls.last_index || s.applied != ls.last_index
                } else {
                    s.applied != s.commit
                };
                if s.last_index != ls.last_index || behind {
                    return Some(format!(
                        "group {g} on node {r}: last {} commit {} applied {}, leader's last {}",
                        s.last_index, s.commit, s.applied, ls.last_index
                    ));
                }
            }
        }
        None
    }

    /// One round: the proposals, then one tick (a pass on every node, the
    /// frames delivered until the network is quiet).
    fn round(&mut self, a: &Args) -> Result<(), String> {
        for _ in 0..a.active() {
            let g = self.next % a.groups + 1;
            self.next += 1;
            let leader = self.members[(g - 1) as usize][0];
            let node = self
                .cluster
                .node_mut(leader)
                .ok_or_else(|| format!("node {leader} is down"))?;
            for _ in 0..a.per_group {
                node.propose(g, self.payload.clone())
                    .map_err(|e| format!("proposal to group {g} at node {leader}: {e}"))?;
            }
        }
        self.cluster.tick()
    }

    fn leaders_applied(&self) -> u64 {
        (1..)
            .zip(&self.members)
            .map(|(g, m)| {
                self.cluster
                    .node(m[0])
                    .and_then(|n| n.group_status(g).ok())
                    .map_or(0, |s| s.applied)
            })
            .sum()
    }

    fn stats_sum(&self) -> (u64, u64) {
        self.cluster
            .ids()
            .into_iter()
            .filter_map(|id| self.cluster.node(id))
            .map(|n| {
                let s: &Stats = n.stats();
                s.sent
                    .iter()
                    .fold((0, 0), |(m, b), c| (m + c.messages, b + c.bytes))
            })
            .fold((0, 0), |(m, b), (m2, b2)| (m + m2, b + b2))
    }
}

/// The measured rounds, out of line so that `scripts/commit_callgrind.py
/// --profile` can collect only them (`--toggle-collect`).
#[inline(never)]
fn measured_window(b: &mut Bench, a: &Args) -> Result<(), String> {
    for _ in 0..a.rounds {
        b.round(a)?;
    }
    Ok(())
}

struct Report {
    args: Args,
    commits: u64,
    wall_ns_per_commit: f64,
    phases: Phases,
    messages_per_commit: f64,
    bytes_per_commit: f64,
    elections: u64,
}

fn run(a: &Args) -> Result<Report, String> {
    let mut b = Bench::build(a)?;
    let mut ticks = 0;
    while let Some(why) = b.unsettled() {
        if ticks >= SETTLE_TICK_BOUND {
            return Err(format!("not settled after {ticks} ticks: {why}"));
        }
        b.cluster.tick()?;
        ticks += 1;
    }
    for _ in 0..a.warmup_rounds {
        b.round(a)?;
    }
    if let Some(why) = b.unsettled() {
        return Err(format!("a warm-up round left work behind: {why}"));
    }
    let elections = b.cluster.elections();
    let applied = b.leaders_applied();
    let (messages, bytes) = b.stats_sum();
    b.cluster.phases = Phases::default();
    let t = Instant::now();
    measured_window(&mut b, a)?;
    let wall = t.elapsed();
    if let Some(why) = b.unsettled() {
        return Err(format!("a measured round left work behind: {why}"));
    }
    let commits = b.leaders_applied() - applied;
    let expected = a.rounds * a.commits_per_round();
    if commits != expected {
        return Err(format!(
            "{commits} proposals applied in the window, {expected} made"
        ));
    }
    let (messages2, bytes2) = b.stats_sum();
    Ok(Report {
        args: a.clone(),
        commits,
        wall_ns_per_commit: wall.as_nanos() as f64 / commits as f64,
        phases: b.cluster.phases,
        messages_per_commit: (messages2 - messages) as f64 / commits as f64,
        bytes_per_commit: (bytes2 - bytes) as f64 / commits as f64,
        elections: b.cluster.elections() - elections,
    })
}

/// A phase of the host loop, read off [`Phases`].
type PhaseOf = fn(&Phases) -> std::time::Duration;

const PHASES: [(&str, PhaseOf); 6] = [
    ("tick", |p| p.tick),
    ("has_ready", |p| p.has_ready),
    ("ready", |p| p.ready),
    ("send", |p| p.send),
    ("step", |p| p.step),
    ("advance", |p| p.advance),
];

impl common::Report for Report {
    fn json(&self) -> String {
        let a = &self.args;
        let mut j = JsonObject::default();
        j.int("nodes", a.nodes);
        j.int("groups", a.groups);
        j.int("replicas", a.replicas);
        j.int("active", a.active());
        j.int("per_group", a.per_group);
        j.int("payload_bytes", a.payload_bytes as u64);
        j.int("rounds", a.rounds);
        j.bool("wal", !a.no_wal);
        j.int("commits", self.commits);
        j.num("ns_per_commit", self.wall_ns_per_commit);
        for (name, f) in PHASES {
            j.num(
                &format!("ns_per_commit_{name}"),
                f(&self.phases).as_nanos() as f64 / self.commits as f64,
            );
        }
        j.num("messages_per_commit", self.messages_per_commit);
        j.num("bytes_per_commit", self.bytes_per_commit);
        j.int("elections", self.elections);
        j.finish()
    }

    fn table(&self) -> String {
        let a = &self.args;
        let mut s = format!(
            "commit path: {} nodes, {} groups x {} replicas, {} groups x {} proposal(s) of {} \
             bytes per round, {} rounds, {}\n",
            a.nodes,
            a.groups,
            a.replicas,
            a.active(),
            a.per_group,
            a.payload_bytes,
            a.rounds,
            if a.no_wal {
                "no WAL"
            } else {
                "WAL on the in-memory file system"
            }
        );
        s += &format!("  commits                      {:>12}\n", self.commits);
        s += &format!(
            "  ns / commit (wall)           {:>12.0}\n",
            self.wall_ns_per_commit
        );
        for (name, f) in PHASES {
            s += &format!(
                "    of which {:<16}{:>12.0}\n",
                name,
                f(&self.phases).as_nanos() as f64 / self.commits as f64
            );
        }
        s += &format!(
            "  messages / commit            {:>12.3}\n",
            self.messages_per_commit
        );
        s += &format!(
            "  bytes / commit               {:>12.1}\n",
            self.bytes_per_commit
        );
        s += &format!("  elections                    {:>12}\n", self.elections);
        s
    }

    fn smoke_failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.elections > 0 {
            f.push(format!("{} elections while proposing", self.elections));
        }
        f
    }
}

fn main() -> ExitCode {
    common::run_main(
        "commit_path bench",
        "the figures are not worth reading (use cargo bench, or --profile release)",
        parse,
        run,
    )
}
