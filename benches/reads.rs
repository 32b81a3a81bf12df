//! Read-index throughput: what a linearizable read costs when the heartbeat
//! batch confirms it, against a heartbeat round per read (the naive mode,
//! as etcd/raft does).
//!
//!     cargo bench --bench reads
//!     cargo bench --bench reads -- --groups 1000 --reads 1000,10000,50000 --json
//!
//! An in-memory cluster (the testkit's, lossless, no disk) of `--nodes`
//! nodes hosts `--groups` groups of `--replicas` replicas, leaders spread
//! over the nodes. For each offered load (reads per heartbeat interval,
//! spread over the interval's ticks and round-robin over the groups, each
//! at its leader) it runs `--intervals` intervals and reports:
//!
//! - reads served per interval, and the wait of a read in intervals
//!   (mean, max): one batch round per interval serves every read taken
//!   in it (the simulated network delivers within a tick, so the naive
//!   mode's round trip shows as one tick);
//! - extra messages and bytes per read: the node's messages and bytes over
//!   the same intervals without reads, subtracted;
//! - reads/s: reads served per second of the cluster's CPU time (all nodes
//!   run on this one thread), and the CPU per read over the idle cost.
//!
//! Modes: `batched` (groups awake: every group has a row in every batch),
//! `quiesced` (idle groups asleep: a read wakes its group, which sleeps
//! again once idle), `naive` (no batching: a heartbeat round per read).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use muxraft::multi::Event;
use muxraft::raft::Role;
use muxraft::testkit::{Cluster, ClusterConfig};

mod common;
use common::JsonObject;

const SEED: u64 = 7;
const SETTLE_TICK_BOUND: u64 = 400;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Batched,
    Quiesced,
    Naive,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Batched => "batched",
            Mode::Quiesced => "quiesced",
            Mode::Naive => "naive",
        }
    }
}

/// Read-index throughput and cost, batched against a round per read
#[derive(Parser, Clone, Debug)]
struct Args {
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(3..=7))]
    nodes: u64,
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    groups: u64,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=7))]
    replicas: u64,
    /// Offered loads: reads per heartbeat interval over the cluster
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000,50000")]
    reads: Vec<u64>,
    /// Intervals measured per load (and without reads, for the baseline)
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(2..))]
    intervals: u64,
    #[arg(long, value_delimiter = ',', default_value = "batched,quiesced,naive")]
    modes: Vec<Mode>,
    /// One JSON object per (mode, load) line instead of the table
    #[arg(long)]
    json: bool,
    /// Small and quick; exit non-zero unless the batched modes serve every
    /// read within an interval with no extra message
    #[arg(long)]
    smoke: bool,
    #[command(flatten)]
    cargo: common::CargoArgs,
}

fn parse_args() -> Result<Args, String> {
    let (mut a, m) = common::parse_command_line::<Args>("reads bench");
    if a.smoke {
        if !common::given(&m, "groups") {
            a.groups = 100;
        }
        if !common::given(&m, "reads") {
            a.reads = vec![50, 500];
        }
        if !common::given(&m, "intervals") {
            a.intervals = 10;
        }
    }
    if a.replicas > a.nodes {
        return Err(format!(
            "--replicas {} exceeds --nodes {}",
            a.replicas, a.nodes
        ));
    }
    if a.reads.contains(&0) {
        return Err("--reads: each load must be at least 1".into());
    }
    Ok(a)
}

/// One (mode, load) measurement.
#[derive(Clone, Debug)]
struct Step {
    mode: Mode,
    offered_per_interval: u64,
    served: u64,
    failed: u64,
    intervals: u64,
    /// Waits of served reads, in ticks, sorted.
    waits: Vec<u64>,
    extra_messages: f64,
    extra_bytes: f64,
    /// Heartbeat rows that carried a read round.
    rounds: u64,
    cpu: Duration,
    idle_cpu: Duration,
}

impl Step {
    fn per_read(&self, v: f64) -> f64 {
        v / self.served.max(1) as f64
    }

    fn wait_intervals(&self, q: f64, heartbeat_ticks: u32) -> f64 {
        if self.waits.is_empty() {
            return f64::NAN;
        }
        let i = ((self.waits.len() - 1) as f64 * q).round() as usize;
        self.waits[i] as f64 / f64::from(heartbeat_ticks)
    }

    fn wait_mean_intervals(&self, heartbeat_ticks: u32) -> f64 {
        let sum: u64 = self.waits.iter().sum();
        sum as f64 / self.waits.len().max(1) as f64 / f64::from(heartbeat_ticks)
    }

    fn reads_per_s(&self) -> f64 {
        self.served as f64 / self.cpu.as_secs_f64().max(1e-9)
    }

    fn cpu_ns_per_read(&self) -> f64 {
        let extra = self.cpu.as_secs_f64() - self.idle_cpu.as_secs_f64();
        extra.max(0.0) * 1e9 / self.served.max(1) as f64
    }
}

struct Bench {
    c: Cluster,
    members: Vec<Vec<u64>>,
    heartbeat_ticks: u32,
}

impl Bench {
    fn build(a: &Args, mode: Mode) -> Result<Bench, String> {
        let mut cfg = ClusterConfig::bench(a.nodes, SEED);
        cfg.batch_heartbeats = mode != Mode::Naive;
        cfg.quiesce = mode == Mode::Quiesced;
        cfg.record_events = true;
        cfg.timing = false;
        let heartbeat_ticks = cfg.heartbeat_ticks;
        let mut c = Cluster::new(cfg);
        let members: Vec<Vec<u64>> = (0..a.groups)
            .map(|g| (0..a.replicas).map(|r| 1 + (g + r) % a.nodes).collect())
            .collect();
        common::create_and_campaign(&mut c, &members)?;
        let mut b = Bench {
            c,
            members,
            heartbeat_ticks,
        };
        b.settle(mode)?;
        Ok(b)
    }

    fn leader(&self, g: u64) -> u64 {
        self.members[(g - 1) as usize][0]
    }

    fn led(&self) -> bool {
        (1..=self.members.len() as u64).all(|g| {
            self.c
                .node(self.leader(g))
                .and_then(|n| n.group_status(g).ok())
                .is_some_and(|s| s.role == Role::Leader && s.commit == s.last_index)
        })
    }

    fn quiet(&self) -> bool {
        self.c
            .ids()
            .iter()
            .all(|&id| self.c.node(id).is_some_and(|n| n.quiet_counts().0 == 0))
    }

    /// Every group led by its intended leader with its log committed (and,
    /// quiesced, every replica asleep), then a few idle intervals.
    fn settle(&mut self, mode: Mode) -> Result<(), String> {
        let mut ticks = 0;
        while !(self.led() && (mode != Mode::Quiesced || self.quiet())) {
            if ticks >= SETTLE_TICK_BOUND {
                return Err(format!("{}: not settled after {ticks} ticks", mode.name()));
            }
            self.c.tick()?;
            ticks += 1;
        }
        for _ in 0..3 * self.heartbeat_ticks {
            self.c.tick()?;
        }
        self.c.events.clear();
        Ok(())
    }

    fn totals(&self) -> (u64, u64, u64) {
        let mut t = (0, 0, 0);
        for id in self.c.ids() {
            if let Some(n) = self.c.node(id) {
                let s = n.stats();
                t.0 += s.messages_sent();
                t.1 += s.bytes_sent();
                t.2 += s.read_rounds_sent;
            }
        }
        t
    }

    /// Count the reads reported since the last call: served (with their
    /// wait in ticks) or failed; each must be one of `taken`.
    fn reads_done(
        &mut self,
        taken: &mut HashMap<(u64, u64), u64>,
        served: &mut u64,
        failed: &mut u64,
        waits: &mut Vec<u64>,
    ) -> Result<(), String> {
        for (id, events) in std::mem::take(&mut self.c.events) {
            for ev in events {
                if let Event::ReadDone {
                    read_id, result, ..
                } = ev
                {
                    let at = taken
                        .remove(&(id, read_id))
                        .ok_or("a read reported twice or never taken")?;
                    match result {
                        Ok(_) => {
                            *served += 1;
                            waits.push(self.c.now - at);
                        }
                        Err(_) => *failed += 1,
                    }
                }
            }
        }
        Ok(())
    }

    /// Run `ticks` ticks taking `per_tick[i % len]` reads at tick i,
    /// round-robin over the groups from `next`. Returns (served, failed,
    /// waits in ticks, cpu).
    fn run(
        &mut self,
        ticks: u64,
        per_tick: &[u64],
        next: &mut u64,
    ) -> Result<(u64, u64, Vec<u64>, Duration), String> {
        let groups = self.members.len() as u64;
        let mut taken: HashMap<(u64, u64), u64> = HashMap::new();
        let (mut served, mut failed, mut waits) = (0, 0, Vec::new());
        let mut cpu = Duration::ZERO;
        for t in 0..ticks {
            let start = Instant::now();
            for _ in 0..per_tick[(t % per_tick.len() as u64) as usize] {
                let g = 1 + *next % groups;
                *next += 1;
                let leader = self.leader(g);
                let node = self.c.node_mut(leader).ok_or("a node is down")?;
                let id = node
                    .read_index(g)
                    .map_err(|e| format!("read of group {g} at node {leader}: {e}"))?;
                taken.insert((leader, id), self.c.now);
            }
            self.c.tick()?;
            cpu += start.elapsed();
            self.reads_done(&mut taken, &mut served, &mut failed, &mut waits)?;
        }
        // Let the last interval's reads finish (not counted in the CPU).
        for _ in 0..2 * self.heartbeat_ticks {
            self.c.tick()?;
            self.reads_done(&mut taken, &mut served, &mut failed, &mut waits)?;
        }
        if !taken.is_empty() {
            return Err(format!("{} reads never reported", taken.len()));
        }
        waits.sort_unstable();
        Ok((served, failed, waits, cpu))
    }
}

fn measure(a: &Args, mode: Mode) -> Result<Vec<Step>, String> {
    let mut b = Bench::build(a, mode)?;
    let hb = u64::from(b.heartbeat_ticks);
    let ticks = a.intervals * hb;
    let mut next = 0;
    // Baseline: the same intervals without reads.
    let before = b.totals();
    let (_, _, _, idle_cpu) = b.run(ticks, &[0], &mut next)?;
    let after = b.totals();
    let idle = (after.0 - before.0, after.1 - before.1);
    let mut steps = Vec::new();
    for &load in &a.reads {
        if mode == Mode::Quiesced {
            b.settle(mode)?;
        }
        // `load` reads per interval, spread over its ticks.
        let per_tick: Vec<u64> = (0..hb)
            .map(|i| load / hb + u64::from(i < load % hb))
            .collect();
        let before = b.totals();
        let (served, failed, waits, cpu) = b.run(ticks, &per_tick, &mut next)?;
        let after = b.totals();
        // Both runs are `ticks` ticks and the same drain after them.
        let base = |v: u64| v as f64;
        steps.push(Step {
            mode,
            offered_per_interval: load,
            served,
            failed,
            intervals: a.intervals,
            waits,
            extra_messages: (after.0 - before.0) as f64 - base(idle.0),
            extra_bytes: (after.1 - before.1) as f64 - base(idle.1),
            rounds: after.2 - before.2,
            cpu,
            idle_cpu,
        });
    }
    Ok(steps)
}

struct Report {
    args: Args,
    heartbeat_ticks: u32,
    steps: Vec<Step>,
}

impl common::Report for Report {
    fn json(&self) -> String {
        self.steps
            .iter()
            .map(|s| {
                let mut o = JsonObject::default();
                o.str("mode", s.mode.name());
                o.int("nodes", self.args.nodes);
                o.int("groups", self.args.groups);
                o.int("replicas", self.args.replicas);
                o.int("offered_per_interval", s.offered_per_interval);
                o.num("served_per_interval", s.served as f64 / s.intervals as f64);
                o.int("failed", s.failed);
                o.num(
                    "wait_mean_intervals",
                    s.wait_mean_intervals(self.heartbeat_ticks),
                );
                o.num(
                    "wait_max_intervals",
                    s.wait_intervals(1.0, self.heartbeat_ticks),
                );
                o.num("extra_messages_per_read", s.per_read(s.extra_messages));
                o.num("extra_bytes_per_read", s.per_read(s.extra_bytes));
                o.num("read_rounds_per_read", s.per_read(s.rounds as f64));
                o.num("reads_per_s", s.reads_per_s());
                o.num("cpu_ns_per_read", s.cpu_ns_per_read());
                o.finish()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn table(&self) -> String {
        let a = &self.args;
        let mut out = format!(
            "read index: {} nodes, {} groups x {} replicas, {} intervals per load ({} ticks each)\n\
             {:<9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>10} {:>10} {:>11} {:>11} {:>10}\n",
            a.nodes,
            a.groups,
            a.replicas,
            a.intervals,
            self.heartbeat_ticks,
            "mode",
            "offered",
            "served",
            "failed",
            "wait mean",
            "wait max",
            "msgs/read",
            "bytes/read",
            "rounds/read",
            "reads/s",
            "ns/read",
        );
        for s in &self.steps {
            out.push_str(&format!(
                "{:<9} {:>9} {:>9.0} {:>7} {:>9.2} {:>9.2} {:>10.3} {:>10.2} {:>11.3} {:>11.0} {:>10.0}\n",
                s.mode.name(),
                s.offered_per_interval,
                s.served as f64 / s.intervals as f64,
                s.failed,
                s.wait_mean_intervals(self.heartbeat_ticks),
                s.wait_intervals(1.0, self.heartbeat_ticks),
                s.per_read(s.extra_messages),
                s.per_read(s.extra_bytes),
                s.per_read(s.rounds as f64),
                s.reads_per_s(),
                s.cpu_ns_per_read(),
            ));
        }
        out.push_str(
            "offered/served: reads per heartbeat interval; wait: from the read to its report, in \
             intervals;\nmsgs/read, bytes/read: what the nodes sent beyond the same intervals \
             without reads; rounds/read:\nheartbeat rows carrying a read round (batched modes); \
             reads/s: reads served per second of the\ncluster's CPU (every node on this one \
             thread); ns/read: that CPU beyond the idle intervals'.\n",
        );
        out
    }

    fn smoke_failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        for s in &self.steps {
            let offered = s.offered_per_interval * s.intervals;
            if s.served != offered || s.failed != 0 {
                f.push(format!(
                    "{} at {}: served {} of {offered}, {} failed",
                    s.mode.name(),
                    s.offered_per_interval,
                    s.served,
                    s.failed
                ));
            }
            let max_wait = s.wait_intervals(1.0, self.heartbeat_ticks);
            if s.mode != Mode::Naive && max_wait > 1.0 {
                f.push(format!(
                    "{} at {}: a read waited {max_wait} intervals (one batch round should serve it)",
                    s.mode.name(),
                    s.offered_per_interval
                ));
            }
            if s.mode == Mode::Batched && s.per_read(s.extra_messages).abs() > 0.01 {
                f.push(format!(
                    "batched at {}: {} extra messages per read (the batches should carry them)",
                    s.offered_per_interval,
                    s.per_read(s.extra_messages)
                ));
            }
        }
        f
    }
}

fn run(a: &Args) -> Result<Report, String> {
    let mut steps = Vec::new();
    for &mode in &a.modes {
        steps.extend(measure(a, mode)?);
    }
    Ok(Report {
        args: a.clone(),
        heartbeat_ticks: ClusterConfig::bench(a.nodes, SEED).heartbeat_ticks,
        steps,
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
        "reads bench",
        "CPU figures are not meaningful (use cargo bench)",
        parse_args,
        run,
    )
}
