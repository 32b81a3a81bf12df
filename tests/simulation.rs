//! Deterministic simulation of a muxraft cluster under faults.
//!
//! Whole clusters (3–5 nodes, groups of 3 or 5 replicas) run on the
//! testkit's [`Cluster`]: the real nodes, each with the real write-ahead log
//! on an in-memory file system, exchanging real encoded frames. Each seed
//! picks its faults:
//!
//! - the network loses, duplicates, delays and reorders frames, is cut by
//!   partitions (both ways and one way) that heal;
//! - nodes crash (losing what was not durable; sometimes in the middle of a
//!   write, tearing it), the whole cluster crashes at once, nodes pause
//!   while frames queue up, and their clocks run at different rates;
//! - inputs reach nodes between `ready` and `advance`, as in the runtime;
//! - the host deletes groups and creates them again under the same id while
//!   frames of the old incarnation are still in flight, member by member.
//!
//! Checked on everything the nodes persist, send, apply and report (see
//! `src/testkit/check.rs`): election safety at every leadership seen, log
//! matching, leader completeness, state-machine safety, no gap and no
//! double apply, no vote or acknowledgement leaves before what it promises
//! is durable, recovery returns exactly what was durable, and every
//! proposal gets exactly one outcome (acknowledged ones are applied
//! everywhere, ones failed for certain nowhere). Once the faults stop every
//! group must settle, and every proposal still waiting must be decided.
//!
//!     cargo test --release --test simulation
//!     MUXRAFT_SIM_SEEDS=2000 cargo test --release --test simulation -- --nocapture
//!     MUXRAFT_SIM_SEED=1234 cargo test --release --test simulation -- --nocapture
//!
//! Everything random comes from the seed, so a failure replays exactly.

use std::collections::BTreeMap;

use muxraft::raft::{MemberRole, Role};
use muxraft::testkit::{Cluster, ClusterConfig, GroupSpec, NetFaults, NodeFaults, Rng};

/// The faults one seed injects. Drawn from the seed, so that every kind is
/// covered across seeds and each seed is reproducible.
#[derive(Clone, Debug, Default)]
struct Faults {
    net: NetFaults,
    partitions: bool,
    one_way: bool,
    crashes: bool,
    cluster_crashes: bool,
    torn_writes: bool,
    pauses: bool,
    skew: bool,
    lifecycle: bool,
    inputs_between: bool,
    /// One node's data directory is deleted, some of the times it crashes:
    /// it comes back empty and rejoins its groups (never voting again).
    wipes: bool,
}

impl Faults {
    fn kinds(&self) -> [(&'static str, bool); 13] {
        [
            ("loss", self.net.loss > 0.0),
            ("dup", self.net.duplicate > 0.0),
            ("delay", self.net.max_delay > 0),
            ("partition", self.partitions),
            ("one-way", self.one_way),
            ("crash", self.crashes),
            ("cluster-crash", self.cluster_crashes),
            ("torn-write", self.torn_writes),
            ("pause", self.pauses),
            ("skew", self.skew),
            ("lifecycle", self.lifecycle),
            ("between", self.inputs_between),
            ("wipe", self.wipes),
        ]
    }
}

/// How heartbeats travel: batched with idle groups going quiet (the
/// default), batched with every group awake, or one message per group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Quiesced,
    Awake,
    Naive,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Quiesced, Mode::Awake, Mode::Naive];

    fn name(self) -> &'static str {
        match self {
            Mode::Quiesced => "quiesced",
            Mode::Awake => "batched-awake",
            Mode::Naive => "naive",
        }
    }
}

#[derive(Clone, Debug)]
struct Scenario {
    seed: u64,
    nodes: u64,
    groups: u64,
    mode: Mode,
    fault_ticks: u64,
    liveness_ticks: u64,
    faults: Faults,
    forget_vote_on_restart: bool,
    /// Per tick: how likely a host takes a snapshot of one of its groups.
    snapshot_rate: f64,
    /// The nodes' trailing window, snapshot chunk size and transfer timeout.
    trailing: u64,
    chunk_bytes: u64,
    snapshot_timeout: u64,
    /// The one node whose disk may be wiped (a second one would leave
    /// groups of three with one voter).
    wiped_node: u64,
    /// Tight backpressure limits (proposals in flight per group and per
    /// node, bytes not yet durable per group and per node), with bursts of
    /// proposals to one group that run into them; None: the defaults.
    pressure: Option<[u64; 4]>,
    /// The nodes run the leader balancer (every other seed), through the
    /// faults and after them.
    balance: bool,
    /// Leaders tell followers each commit at once (every third seed); else
    /// followers learn it from the next append or heartbeat, the default.
    broadcast_commit: bool,
}

impl Scenario {
    fn from_seed(seed: u64, mode: Mode) -> Scenario {
        let mut r = Rng::new(seed ^ 0x5EED);
        let nodes = 3 + r.below(3); // 3..=5
                                    // Every seed turns one kind on for sure, so each kind gets its share.
        let kind = seed % 13;
        let on = |r: &mut Rng, k: u64, p: f64| kind == k || r.chance(p);
        let faults = Faults {
            net: NetFaults {
                loss: if on(&mut r, 0, 0.5) {
                    0.02 + r.below(15) as f64 / 100.0
                } else {
                    0.0
                },
                duplicate: if on(&mut r, 1, 0.4) {
                    (1 + r.below(10)) as f64 / 100.0
                } else {
                    0.0
                },
                max_delay: if on(&mut r, 2, 0.5) {
                    1 + r.below(8)
                } else {
                    0
                },
            },
            partitions: on(&mut r, 3, 0.35),
            one_way: on(&mut r, 4, 0.25),
            crashes: on(&mut r, 5, 0.35),
            cluster_crashes: on(&mut r, 6, 0.1),
            torn_writes: on(&mut r, 7, 0.25),
            pauses: on(&mut r, 8, 0.25),
            skew: on(&mut r, 9, 0.25),
            lifecycle: on(&mut r, 10, 0.35),
            inputs_between: on(&mut r, 11, 0.4),
            wipes: on(&mut r, 12, 0.15),
        };
        Scenario {
            seed,
            nodes,
            groups: 6 + r.below(10),
            mode,
            fault_ticks: 400 + r.below(400),
            liveness_ticks: 1500,
            faults,
            forget_vote_on_restart: false,
            snapshot_rate: [0.0, 0.05, 0.2, 0.5][r.below(4) as usize],
            trailing: r.below(12),
            chunk_bytes: 16 + r.below(200),
            snapshot_timeout: 30 + r.below(90),
            wiped_node: 1 + r.below(nodes),
            // Drawn last: the draws above stay what they were for a seed.
            pressure: r.chance(0.3).then(|| {
                [
                    1 + r.below(6),
                    4 + r.below(30),
                    64 + r.below(2000),
                    256 + r.below(8000),
                ]
            }),
            // From the seed alone: the draws stay what they were.
            balance: seed % 2 == 0,
            broadcast_commit: seed % 3 == 0,
        }
    }
}

/// Totals over many seeds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Totals {
    seeds: u64,
    kinds: BTreeMap<&'static str, u64>,
    elections: u64,
    frames: u64,
    lost: u64,
    duplicated: u64,
    cut: u64,
    partitions: u64,
    one_way_cuts: u64,
    crashes: u64,
    crashes_in_loop: u64,
    cluster_crashes: u64,
    torn_writes: u64,
    torn_writes_kept: u64,
    pauses: u64,
    inputs_between: u64,
    groups_removed: u64,
    groups_created: u64,
    stale_drops: u64,
    proposals: u64,
    committed: u64,
    failed_certain: u64,
    unknown: u64,
    applied: u64,
    leaderships: u64,
    votes_checked: u64,
    acks_checked: u64,
    acks_by_index_only: u64,
    slowest_settle: u64,
    snapshots: u64,
    snapshots_torn: u64,
    installs: u64,
    restores_checked: u64,
    wipes: u64,
    rejoined: u64,
    successors: u64,
    tombstones_recovered: u64,
    floors_recovered: u64,
    busy: u64,
    /// Reads taken, served (each checked linearizable), failed.
    reads: u64,
    reads_served: u64,
    reads_failed: u64,
    transfers: u64,
    transfers_refused: u64,
    membership_changes: u64,
    membership_refused: u64,
    members_dropped: u64,
    adds_lost: u64,
    quorum_checks: u64,
    quiet: QuietTotals,
    balance: BalanceTotals,
}

struct Run {
    sc: Scenario,
    c: Cluster,
    rng: Rng,
    partition_until: u64,
    crashed_until: BTreeMap<u64, u64>,
    next_incarnation: u64,
    partitions: u64,
    one_way_cuts: u64,
}

impl Run {
    fn new(sc: Scenario) -> Result<Run, String> {
        let mut cfg = ClusterConfig::new(sc.nodes, sc.seed);
        cfg.batch_heartbeats = sc.mode != Mode::Naive;
        cfg.quiesce = sc.mode == Mode::Quiesced;
        cfg.snapshot_trailing_entries = sc.trailing;
        cfg.snapshot_chunk_bytes = sc.chunk_bytes;
        cfg.snapshot_timeout_ticks = sc.snapshot_timeout;
        if let Some([group, node, group_bytes, node_bytes]) = sc.pressure {
            cfg.max_pending_proposals_per_group = group;
            cfg.max_pending_proposals = node;
            cfg.max_unsynced_bytes_per_group = group_bytes;
            cfg.max_unsynced_bytes = node_bytes;
        }
        cfg.balance_leaders = sc.balance;
        cfg.broadcast_commit = sc.broadcast_commit;
        let mut c = Cluster::new(cfg);
        c.net.faults = sc.faults.net.clone();
        c.faults = NodeFaults {
            torn_write: if sc.faults.torn_writes { 0.004 } else { 0.0 },
            input_between: if sc.faults.inputs_between { 0.2 } else { 0.0 },
            crash_in_loop: if sc.faults.crashes { 0.002 } else { 0.0 },
            // A majority stays up (whole-cluster crashes aside).
            min_up: sc.nodes / 2 + 1,
            forget_vote_on_restart: sc.forget_vote_on_restart,
            torn_snapshot: if sc.faults.torn_writes { 0.05 } else { 0.0 },
        };
        let mut rng = Rng::new(sc.seed ^ 0xFA17);
        if sc.faults.skew {
            for id in c.ids() {
                let rate = 70 + rng.below(61); // 0.7x to 1.3x
                c.set_tick_rate(id, rate);
            }
        }
        let mut run = Run {
            c,
            rng,
            partition_until: 0,
            crashed_until: BTreeMap::new(),
            next_incarnation: 1,
            partitions: 0,
            one_way_cuts: 0,
            sc,
        };
        for i in 1..=run.sc.groups {
            // Sparse ids.
            let g = i * 7 + run.rng.below(5);
            let spec = run.new_spec();
            run.c.create_group(g, spec, 0)?;
        }
        Ok(run)
    }

    fn new_spec(&mut self) -> GroupSpec {
        let k = if self.sc.nodes >= 5 && self.rng.chance(0.4) {
            5
        } else {
            3
        };
        let mut pool: Vec<u64> = (1..=self.sc.nodes).collect();
        let mut members = Vec::new();
        for _ in 0..k {
            let i = self.rng.below(pool.len() as u64) as usize;
            members.push(pool.swap_remove(i));
        }
        members.sort_unstable();
        self.next_incarnation += 1;
        GroupSpec {
            // Incarnations as a broker might make them: large, and unique.
            incarnation: self.sc.seed.wrapping_mul(1_000_003) ^ (self.next_incarnation << 40),
            members,
            ..Default::default()
        }
    }

    fn fail(&self, what: String) -> String {
        format!(
            "{what}\n  at tick {} (mode {}, faults {:?})\n  replay: MUXRAFT_SIM_SEED={} cargo test --release --test simulation -- --nocapture",
            self.c.now,
            self.sc.mode.name(),
            self.sc
                .faults
                .kinds()
                .iter()
                .filter(|(_, on)| *on)
                .map(|(k, _)| *k)
                .collect::<Vec<_>>(),
            self.sc.seed
        )
    }

    /// At most a minority of nodes is down at once (whole-cluster crashes
    /// aside), so the cluster can make progress.
    fn may_crash_one(&self) -> bool {
        self.c.up_count() > self.sc.nodes / 2 + 1
    }

    fn inject_faults(&mut self) -> Result<(), String> {
        let f = self.sc.faults.clone();
        let now = self.c.now;
        if f.partitions || f.one_way {
            if now >= self.partition_until && self.c.net.is_partitioned() {
                self.c.net.heal();
            } else if !self.c.net.is_partitioned() && self.rng.chance(0.01) {
                if f.partitions && (!f.one_way || self.rng.chance(0.5)) {
                    self.partitions += 1;
                    let sides = (1..=self.sc.nodes)
                        .map(|id| (id, self.rng.below(2) as u8))
                        .collect();
                    self.c.net.partition(sides);
                } else {
                    // One way: a node stops hearing one or two others (or
                    // they stop hearing it) while the reverse direction works.
                    self.one_way_cuts += 1;
                    let a = 1 + self.rng.below(self.sc.nodes);
                    for _ in 0..1 + self.rng.below(2) {
                        let b = 1 + self.rng.below(self.sc.nodes);
                        if a != b {
                            if self.rng.chance(0.5) {
                                self.c.net.cut_one_way(a, b);
                            } else {
                                self.c.net.cut_one_way(b, a);
                            }
                        }
                    }
                }
                self.partition_until = now + 20 + self.rng.below(80);
            }
        }
        if f.crashes || f.cluster_crashes || f.torn_writes {
            // Nodes that died on their own (a torn write, a crash in the
            // middle of their loop) come back a little later.
            let back: Vec<u64> = self
                .crashed_until
                .iter()
                .filter(|(_, &t)| t <= now)
                .map(|(&id, _)| id)
                .collect();
            for id in back {
                self.crashed_until.remove(&id);
                self.c.restart(id)?;
            }
            for id in self.c.ids() {
                if !self.c.is_up(id) && !self.crashed_until.contains_key(&id) {
                    let at = now + 1 + self.rng.below(30);
                    self.crashed_until.insert(id, at);
                }
            }
        }
        if f.crashes && self.may_crash_one() && self.rng.chance(0.01) {
            let id = 1 + self.rng.below(self.sc.nodes);
            if self.c.is_up(id) {
                self.c.crash(id);
                let at = now + 5 + self.rng.below(60);
                self.crashed_until.insert(id, at);
            }
        }
        if f.cluster_crashes && self.crashed_until.is_empty() && self.rng.chance(0.002) {
            self.c.stats.cluster_crashes += 1;
            for id in self.c.ids() {
                self.c.crash(id);
                let at = now + 3 + self.rng.below(40);
                self.crashed_until.insert(id, at);
            }
        }
        if f.wipes && self.may_crash_one() && self.rng.chance(0.003) {
            let id = self.sc.wiped_node;
            if self.c.is_up(id) {
                self.c.wipe(id);
                let at = now + 5 + self.rng.below(60);
                self.crashed_until.insert(id, at);
            }
        }
        if f.pauses && self.rng.chance(0.02) {
            let id = 1 + self.rng.below(self.sc.nodes);
            if self.c.is_up(id) && !self.c.is_paused(id) {
                // Mostly shorter than an election timeout, sometimes longer.
                let max = if self.rng.chance(0.7) { 10 } else { 40 };
                let ticks = 1 + self.rng.below(max);
                self.c.pause(id, ticks);
            }
        }
        if f.lifecycle && self.rng.chance(0.006) {
            // The host deletes a queue and creates it again under the same
            // id; each member learns of both at its own time, so frames of
            // the old incarnation are still in flight and some members still
            // run it while others run the new one.
            let gs: Vec<u64> = self.c.groups.keys().copied().collect();
            if !gs.is_empty() {
                let g = *self.rng.pick(&gs);
                let spread = self.rng.below(30);
                self.c.remove_group(g, spread)?;
                if self.rng.chance(0.9) {
                    let spec = self.new_spec();
                    self.c.create_group(g, spec, spread + self.rng.below(30))?;
                }
            }
        }
        Ok(())
    }

    fn propose_some(&mut self) {
        for _ in 0..2 {
            if !self.rng.chance(0.5) {
                continue;
            }
            // Groups take turns being busy, a third at a time for 100
            // ticks, so that the others idle long enough to go quiet (and
            // are woken again, under whatever faults are on then).
            let phase = self.c.now / 100;
            let gs: Vec<u64> = self
                .c
                .groups
                .keys()
                .enumerate()
                .filter(|(i, _)| (*i as u64 + phase) % 3 == 0)
                .map(|(_, &g)| g)
                .collect();
            if let Some(&g) = gs.get(self.rng.below(gs.len().max(1) as u64) as usize) {
                // Under tight limits, now and then a burst to one group
                // that runs into them (refused with Busy: the checker makes
                // sure none of those is ever applied).
                let burst = match self.sc.pressure {
                    Some(_) if self.rng.chance(0.2) => 2 + self.rng.below(10),
                    _ => 1,
                };
                for _ in 0..burst {
                    let _ = self.c.propose(g);
                }
            }
        }
        // Now and then a leader hands its group to another member, under
        // whatever faults are on (the checker: one leader per term, no
        // committed entry lost).
        if self.rng.chance(0.05) {
            let gs: Vec<u64> = self.c.groups.keys().copied().collect();
            if !gs.is_empty() {
                let g = *self.rng.pick(&gs);
                self.c.transfer(g);
            }
        }
        // Membership changes (add as voter, non-voter or promotable;
        // promote; remove, the leader too), under whatever faults are on:
        // the checker keeps one leader per term and every committed entry
        // across memberships, and checks every commit is held by a quorum
        // of the leader's voters.
        if self.rng.chance(0.03) {
            let gs: Vec<u64> = self.c.groups.keys().copied().collect();
            if !gs.is_empty() {
                let g = *self.rng.pick(&gs);
                let never = if self.sc.faults.wipes {
                    self.sc.wiped_node
                } else {
                    0
                };
                self.c.change_members(g, 5, never);
            }
        }
        // Reads of any group, busy or quiet (a read wakes it), at any
        // member that believes it leads: a deposed leader's must fail,
        // never be served stale (the checker's linearizability check).
        if self.rng.chance(0.3) {
            let gs: Vec<u64> = self.c.groups.keys().copied().collect();
            if !gs.is_empty() {
                let g = *self.rng.pick(&gs);
                for _ in 0..1 + self.rng.below(3) {
                    self.c.read(g);
                }
            }
        }
    }

    /// Hosts snapshot their groups now and then, at whatever they applied.
    fn snapshot_some(&mut self) -> Result<(), String> {
        if !self.rng.chance(self.sc.snapshot_rate) {
            return Ok(());
        }
        let gs: Vec<u64> = self.c.groups.keys().copied().collect();
        let Some(&g) = gs.get(self.rng.below(gs.len() as u64) as usize) else {
            return Ok(());
        };
        let members = self.c.groups[&g].members.clone();
        let id = *self.rng.pick(&members);
        let pad = self.rng.below(400) as usize;
        self.c.snapshot(id, g, pad)?;
        Ok(())
    }

    fn step(&mut self, faults: bool) -> Result<(), String> {
        self.snapshot_some().map_err(|e| self.fail(e))?;
        if faults {
            self.inject_faults().map_err(|e| self.fail(e))?;
            self.propose_some();
        }
        self.c.tick().map_err(|e| self.fail(e))
    }
}

/// What the balancer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct BalanceTotals {
    seeds: u64,
    transfers: u64,
    settled_moves: u64,
    late_retries: u64,
}

fn leader_changes(run: &Run) -> u64 {
    run.c
        .ids()
        .iter()
        .filter_map(|&id| run.c.node(id))
        .map(|n| n.stats().leader_changes)
        .sum()
}

/// Transfers started by every node (by the host or the balancer), and
/// those of them that retried a transfer its target did not complete.
fn transfers(run: &Run) -> (u64, u64) {
    run.c
        .ids()
        .iter()
        .filter_map(|&id| run.c.node(id))
        .map(|n| (n.stats().transfers_started, n.stats().balance_retries))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// After the faults, with the balancer on: leaders may still move to
/// balance (the faults left them anywhere), but within 150 ticks they
/// stop, and none moves in the 150 after (no group handed back and
/// forth), but by a retry of a transfer its target did not complete
/// during the faults (tried again 20 election timeouts later, which can
/// fall there: seed 58). Then the balancer is turned off, so that the
/// quiescence phase sees only what a node's death causes.
fn balance_phase(run: &mut Run) -> Result<BalanceTotals, String> {
    let start = leader_changes(run);
    for _ in 0..150 {
        run.step(false)?;
    }
    let settled = leader_changes(run);
    let (elections, (started, retries)) = (run.c.elections(), transfers(run));
    for _ in 0..150 {
        run.step(false)?;
    }
    let after = leader_changes(run);
    let (elections_after, (started_after, retries_after)) = (run.c.elections(), transfers(run));
    // A retried transfer makes its target campaign: one election each.
    let retried = retries_after - retries;
    let new_moves =
        (elections_after - elections).saturating_sub(retried) + (started_after - started - retried);
    if after != settled && new_moves > 0 {
        return Err(run.fail(format!(
            "balancer: {} leader changes 150 ticks after the faults stopped, {} elections and {} transfers started then ({} of them retries) (leaders handed back and forth?)",
            after - settled,
            elections_after - elections,
            started_after - started,
            retries_after - retries
        )));
    }
    let t = BalanceTotals {
        seeds: 1,
        transfers: run.c.balance_transfers(),
        settled_moves: settled - start,
        late_retries: retried,
    };
    run.c.set_balance_leaders(false);
    Ok(t)
}

/// What the quiescence phase saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct QuietTotals {
    /// Ticks until every group was quiet on every replica (the slowest
    /// of the two times it is checked).
    slowest_quiet: u64,
    /// Ticks from the crash of the busiest leader's node to every group
    /// led again.
    slowest_failover: u64,
    groups_failed_over: u64,
}

/// Idle groups go quiet on every replica; the node leading the most groups
/// dies while they are quiet: exactly its groups wake and are led again
/// within a bound, the others keep their leader and term; it returns, is
/// caught up, and everything goes quiet again.
fn quiet_phase(run: &mut Run) -> Result<QuietTotals, String> {
    let mut t = QuietTotals {
        slowest_quiet: wait_all_quiet(run)?,
        ..QuietTotals::default()
    };
    // Who leads what, now.
    let mut led: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut count: BTreeMap<u64, u64> = BTreeMap::new();
    for (&g, spec) in &run.c.groups {
        for &id in &spec.members {
            let st = run.c.node(id).and_then(|n| n.group_status(g).ok());
            if let Some(st) = st.filter(|s| s.role == Role::Leader) {
                led.insert(g, (id, st.term));
                *count.entry(id).or_default() += 1;
            }
        }
    }
    let Some((&victim, _)) = count.iter().max_by_key(|&(&id, &n)| (n, id)) else {
        return Ok(t);
    };
    run.c.crash(victim);
    let start = run.c.now;
    // Losing the peer takes an election timeout, the staggered campaigns
    // up to another; a round the survivors split costs up to two more
    // (each candidate's randomized timeout). Six timeouts of 10 ticks allow
    // one split round: they are rare (the stagger), not impossible (a
    // survivor that loses the peer late, or a replica that cannot vote,
    // leaves no spare vote), and the slowest failover is reported.
    let bound = 6 * 10;
    loop {
        run.step(false)?;
        let mut pending = Vec::new();
        for (&g, &(leader, term)) in &led {
            let spec = &run.c.groups[&g];
            let leaders: Vec<(u64, u64)> = spec
                .members
                .iter()
                .filter_map(|&id| {
                    let st = run.c.node(id)?.group_status(g).ok()?;
                    (st.role == Role::Leader).then_some((id, st.term))
                })
                .collect();
            // Only a group whose live voters that can vote are a majority
            // of its voters keeps or regains a leader: a replica that
            // rejoined with a wiped disk never votes and counts in no
            // quorum (CheckQuorum included); non-voters never do.
            let voters: Vec<u64> = spec
                .members
                .iter()
                .find_map(|&id| run.c.node(id)?.members(g).ok())
                .unwrap_or_default()
                .iter()
                .filter(|m| m.role == MemberRole::Voter)
                .map(|m| m.node_id)
                .collect();
            let voting = voters
                .iter()
                .filter(|&&id| run.c.node(id).and_then(|n| n.group_can_vote(g)) == Some(true))
                .count();
            let quorum_left = voting > voters.len() / 2;
            if leader != victim {
                // Led elsewhere: untouched, but by a leader that lost its
                // quorum with the victim (it steps down, and nobody can
                // be elected).
                let lost = !quorum_left && leaders.iter().all(|&l| l == (leader, term));
                if leaders != [(leader, term)] && !lost {
                    return Err(run.fail(format!(
                        "quiescence: group {g}, led by {leader} at term {term}, changed to {leaders:?} when node {victim} died"
                    )));
                }
            } else if leaders.len() != 1 && quorum_left {
                pending.push(g);
            }
        }
        if pending.is_empty() {
            break;
        }
        if run.c.now - start > bound {
            let g = pending[0];
            let states: Vec<String> = run.c.groups[&g]
                .members
                .iter()
                .filter_map(|&m| {
                    let n = run.c.node(m)?;
                    Some(format!(
                        "node {m}: quiet {} {:?} members {:?} can vote {:?}",
                        n.is_quiesced(g),
                        n.group_status(g).ok(),
                        n.members(g)
                            .ok()
                            .map(|v| v.iter().map(|x| (x.node_id, x.role)).collect::<Vec<_>>()),
                        n.group_can_vote(g)
                    ))
                })
                .collect();
            return Err(run.fail(format!(
                "quiescence: groups {pending:?} of dead node {victim} not led again {bound} ticks after it died; group {g}:\n    {}",
                states.join("\n    ")
            )));
        }
    }
    t.slowest_failover = run.c.now - start;
    t.groups_failed_over = led
        .keys()
        .filter(|g| led[g].0 == victim)
        .filter(|g| {
            run.c.groups[g]
                .members
                .iter()
                .filter_map(|&id| run.c.node(id)?.group_status(**g).ok())
                .any(|s| s.role == Role::Leader)
        })
        .count() as u64;
    run.c.restart(victim).map_err(|e| run.fail(e))?;
    let mut settled = false;
    for _ in 0..run.sc.liveness_ticks {
        run.step(false)?;
        if run.c.settled().is_ok() {
            settled = true;
            break;
        }
    }
    if !settled {
        let e = run.c.settled().err().unwrap_or_default();
        return Err(run.fail(format!(
            "quiescence: not settled after node {victim} returned: {e}"
        )));
    }
    t.slowest_quiet = t.slowest_quiet.max(wait_all_quiet(run)?);
    Ok(t)
}

/// Ticks (with nothing proposed) until every group is quiet on every
/// replica; an error after 300.
fn wait_all_quiet(run: &mut Run) -> Result<u64, String> {
    let start = run.c.now;
    loop {
        let mut awake = None;
        for (&g, spec) in &run.c.groups {
            for &id in &spec.members {
                if run.c.node(id).is_some_and(|n| !n.is_quiesced(g)) {
                    awake = Some((g, id));
                }
            }
        }
        let Some((g, id)) = awake else {
            return Ok(run.c.now - start);
        };
        if run.c.now - start > 300 {
            let st = run.c.node(id).and_then(|n| n.group_status(g).ok());
            let others: Vec<String> = run.c.groups[&g]
                .members
                .iter()
                .filter_map(|&m| {
                    let n = run.c.node(m)?;
                    let members = n.members(g).unwrap_or_default();
                    let progress: Vec<String> = members
                        .iter()
                        .filter_map(|x| n.describe_progress(g, x.node_id))
                        .collect();
                    Some(format!(
                        "node {m}: quiet {} {:?}; hears {:?}; members {members:?}; progress {progress:?}",
                        n.is_quiesced(g),
                        n.group_status(g).ok(),
                        n.peer_liveness()
                    ))
                })
                .collect();
            return Err(run.fail(format!(
                "quiescence: group {g} still awake on node {id} after 300 idle ticks: {st:?}\n    {}",
                others.join("\n    ")
            )));
        }
        run.step(false)?;
    }
}

fn run(sc: Scenario) -> Result<Totals, String> {
    let mut run = Run::new(sc.clone())?;
    for _ in 0..sc.fault_ticks {
        run.step(true)?;
    }
    run.c.heal().map_err(|e| run.fail(e))?;
    run.c.faults.torn_write = 0.0;
    run.c.faults.torn_snapshot = 0.0;
    run.c.faults.crash_in_loop = 0.0;
    run.c.net.faults = NetFaults::default();
    let start = run.c.now;
    let mut last_err = String::new();
    let mut settled_at = None;
    for _ in 0..sc.liveness_ticks {
        run.step(false)?;
        match run.c.settled() {
            Ok(()) => {
                settled_at = Some(run.c.now);
                break;
            }
            Err(e) => last_err = e,
        }
    }
    let Some(settled_at) = settled_at else {
        return Err(run.fail(format!(
            "liveness: not settled {} ticks after the faults stopped: {last_err}",
            sc.liveness_ticks
        )));
    };
    // Proposals whose leader lost leadership are decided within an election
    // timeout (the unknown ones are reported after it).
    for _ in 0..3 * 10 {
        run.step(false)?;
    }
    let undecided = run.c.undecided();
    if !undecided.is_empty() {
        return Err(run.fail(format!(
            "{} proposals on running nodes never got an outcome, e.g. {:?}",
            undecided.len(),
            &undecided[..undecided.len().min(3)]
        )));
    }
    let unread = run.c.reads_pending();
    if !unread.is_empty() {
        return Err(run.fail(format!(
            "{} reads on running nodes were never reported, e.g. {:?}",
            unread.len(),
            &unread[..unread.len().min(3)]
        )));
    }
    let mut balance = BalanceTotals::default();
    if sc.balance {
        balance = balance_phase(&mut run)?;
    }
    let mut quiet = QuietTotals::default();
    if sc.mode == Mode::Quiesced {
        quiet = quiet_phase(&mut run)?;
    }
    let s = &run.c.stats;
    let k = &run.c.checker.stats;
    let n = &run.c.net.stats;
    let mut t = Totals {
        seeds: 1,
        elections: run.c.elections(),
        frames: n.sent,
        lost: n.lost,
        duplicated: n.duplicated,
        cut: n.cut,
        partitions: run.partitions,
        one_way_cuts: run.one_way_cuts,
        crashes: s.crashes,
        crashes_in_loop: s.crashes_in_loop,
        cluster_crashes: s.cluster_crashes,
        torn_writes: s.torn_writes,
        torn_writes_kept: s.torn_writes_kept,
        pauses: s.pauses,
        inputs_between: s.inputs_between,
        groups_removed: s.groups_removed,
        groups_created: s.groups_created,
        stale_drops: run.c.stale_drops(),
        proposals: k.proposals,
        committed: k.committed,
        failed_certain: k.failed_certain,
        unknown: k.unknown,
        applied: k.entries_applied,
        leaderships: k.leaderships,
        votes_checked: k.votes_checked,
        acks_checked: k.acks_checked,
        acks_by_index_only: k.acks_checked_by_index_only,
        slowest_settle: settled_at - start,
        snapshots: s.snapshots,
        snapshots_torn: s.snapshots_torn,
        installs: run.c.installs(),
        restores_checked: k.restores_checked,
        wipes: s.wipes,
        rejoined: s.groups_rejoined,
        successors: s.successors,
        tombstones_recovered: s.tombstones_recovered,
        floors_recovered: s.floors_recovered,
        busy: s.proposals_busy,
        reads: k.reads,
        reads_served: k.reads_served,
        reads_failed: k.reads_failed,
        transfers: s.transfers,
        transfers_refused: s.transfers_refused,
        membership_changes: s.membership_changes,
        membership_refused: s.membership_refused,
        members_dropped: s.members_dropped,
        adds_lost: s.adds_lost,
        quorum_checks: s.quorum_checks,
        quiet,
        balance,
        ..Totals::default()
    };
    for (name, on) in sc.faults.kinds() {
        t.kinds.insert(name, on as u64);
    }
    t.kinds.insert("backpressure", sc.pressure.is_some() as u64);
    t.kinds
        .insert("commit-broadcast", sc.broadcast_commit as u64);
    Ok(t)
}

fn add(total: &mut Totals, t: &Totals) {
    total.seeds += t.seeds;
    for (k, v) in &t.kinds {
        *total.kinds.entry(k).or_default() += v;
    }
    total.elections += t.elections;
    total.frames += t.frames;
    total.lost += t.lost;
    total.duplicated += t.duplicated;
    total.cut += t.cut;
    total.partitions += t.partitions;
    total.one_way_cuts += t.one_way_cuts;
    total.crashes += t.crashes;
    total.crashes_in_loop += t.crashes_in_loop;
    total.cluster_crashes += t.cluster_crashes;
    total.torn_writes += t.torn_writes;
    total.torn_writes_kept += t.torn_writes_kept;
    total.pauses += t.pauses;
    total.inputs_between += t.inputs_between;
    total.groups_removed += t.groups_removed;
    total.groups_created += t.groups_created;
    total.stale_drops += t.stale_drops;
    total.proposals += t.proposals;
    total.committed += t.committed;
    total.failed_certain += t.failed_certain;
    total.unknown += t.unknown;
    total.applied += t.applied;
    total.leaderships += t.leaderships;
    total.votes_checked += t.votes_checked;
    total.acks_checked += t.acks_checked;
    total.acks_by_index_only += t.acks_by_index_only;
    total.slowest_settle = total.slowest_settle.max(t.slowest_settle);
    total.snapshots += t.snapshots;
    total.snapshots_torn += t.snapshots_torn;
    total.installs += t.installs;
    total.restores_checked += t.restores_checked;
    total.wipes += t.wipes;
    total.rejoined += t.rejoined;
    total.successors += t.successors;
    total.tombstones_recovered += t.tombstones_recovered;
    total.floors_recovered += t.floors_recovered;
    total.busy += t.busy;
    total.reads += t.reads;
    total.reads_served += t.reads_served;
    total.reads_failed += t.reads_failed;
    total.transfers += t.transfers;
    total.transfers_refused += t.transfers_refused;
    total.membership_changes += t.membership_changes;
    total.membership_refused += t.membership_refused;
    total.members_dropped += t.members_dropped;
    total.adds_lost += t.adds_lost;
    total.quorum_checks += t.quorum_checks;
    total.balance.seeds += t.balance.seeds;
    total.balance.transfers += t.balance.transfers;
    total.balance.settled_moves += t.balance.settled_moves;
    total.balance.late_retries += t.balance.late_retries;
    total.quiet.slowest_quiet = total.quiet.slowest_quiet.max(t.quiet.slowest_quiet);
    total.quiet.slowest_failover = total.quiet.slowest_failover.max(t.quiet.slowest_failover);
    total.quiet.groups_failed_over += t.quiet.groups_failed_over;
}

/// Seeds outside the usual range that once found a bug, run along with
/// it every time: 7168 (a replica removed and added back joined empty and
/// voted a leader in without a committed entry; see
/// `a_node_added_back_keeps_its_removed_replicas_vote_and_floor_across_restarts`),
/// 7683 (a non-voter woken while its leader slept stayed awake for good
/// once its wake-up answer was lost; see
/// `a_non_voter_that_hears_nothing_from_its_leader_pokes_it_once_per_election_timeout`),
/// 13630 (a replica that rejoined after its disk was wiped acknowledged a
/// stale leader's appends, which committed an entry conflicting with one
/// the replica had helped commit before the wipe: a rejoined replica now
/// marks its answers and counts in no quorum; see
/// `a_rejoined_replica_does_not_give_a_stale_leader_a_quorum`),
/// 14728 (the check of the quiescence phase, not the library: once a
/// rejoined replica counted in no quorum, a leader whose other voter died
/// rightly lost its quorum and stepped down),
/// 14908 (the simulated host never made a joiner's replica when the
/// node still held the group's earlier incarnation: `HostOp::Join`),
/// 16470 (a node holding its transfers after a loss reported a stale
/// excess, so that it was given its share only when the hold ended; see
/// `a_node_holding_after_a_loss_still_reports_its_share_and_is_given_it`).
const REGRESSIONS: &[u64] = &[7168, 7683, 13630, 14728, 14908, 16470];

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("MUXRAFT_SIM_SEED") {
        return vec![s.trim().parse().expect("MUXRAFT_SIM_SEED must be a number")];
    }
    let n: u64 = std::env::var("MUXRAFT_SIM_SEEDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(200);
    let base: u64 = std::env::var("MUXRAFT_SIM_BASE")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1);
    let mut seeds: Vec<u64> = (base..base + n).collect();
    seeds.extend(REGRESSIONS.iter().filter(|s| !(base..base + n).contains(s)));
    seeds
}

fn run_mode(mode: Mode) -> Totals {
    let mut total = Totals::default();
    for seed in seeds() {
        match run(Scenario::from_seed(seed, mode)) {
            Ok(t) => add(&mut total, &t),
            Err(e) => panic!("simulation seed {seed} failed: {e}"),
        }
    }
    let t = &total;
    println!(
        "mode {}: {} seeds ok\n  seeds per fault: {:?}\n  network: {} frames, {} lost, {} duplicated, {} cut; {} partitions, {} one-way cuts\n  nodes: {} crashes ({} in the middle of the host loop, {} whole-cluster), {} torn writes ({} kept whole), {} pauses, {} inputs between ready and advance\n  groups: {} removed, {} created; {} frames or rows of another incarnation dropped\n  proposals: {} accepted, {} committed, {} failed for certain, {} unknown, {} refused busy; {} entries applied\n  reads: {} taken, {} served (each checked linearizable), {} failed\n  leadership transfers: {} started, {} refused\n  membership: {} changes taken, {} refused; {} replicas deleted after their removal applied ({} lost additions); {} commits checked held by a quorum of the leader's voters\n  checks: {} leaderships, {} vote grants and {} acknowledgements checked against the disk ({} by index only)\n  snapshots: {} taken ({} interrupted by a crash), {} installed from a leader, {} restores checked against the replicas' states; {} disks wiped, {} groups rejoined\n  elections {}; slowest settle {} ticks",
        mode.name(),
        t.seeds,
        t.kinds,
        t.frames,
        t.lost,
        t.duplicated,
        t.cut,
        t.partitions,
        t.one_way_cuts,
        t.crashes,
        t.crashes_in_loop,
        t.cluster_crashes,
        t.torn_writes,
        t.torn_writes_kept,
        t.pauses,
        t.inputs_between,
        t.groups_removed,
        t.groups_created,
        t.stale_drops,
        t.proposals,
        t.committed,
        t.failed_certain,
        t.unknown,
        t.busy,
        t.applied,
        t.reads,
        t.reads_served,
        t.reads_failed,
        t.transfers,
        t.transfers_refused,
        t.membership_changes,
        t.membership_refused,
        t.members_dropped,
        t.adds_lost,
        t.quorum_checks,
        t.leaderships,
        t.votes_checked,
        t.acks_checked,
        t.acks_by_index_only,
        t.snapshots,
        t.snapshots_torn,
        t.installs,
        t.restores_checked,
        t.wipes,
        t.rejoined,
        t.elections,
        t.slowest_settle
    );
    println!(
        "  added back: {} replicas created in the place of one their node removed; recovery read back {} tombstones and {} vote floors at restarts (each checked against what was written)",
        t.successors, t.tombstones_recovered, t.floors_recovered
    );
    println!(
        "  leader balancer: on in {} seeds, {} transfers started by it; after the faults, leaders stopped moving within 150 ticks ({} moves then, 0 after but {} retries of transfers abandoned during the faults)",
        t.balance.seeds, t.balance.transfers, t.balance.settled_moves, t.balance.late_retries
    );
    if mode == Mode::Quiesced {
        println!(
            "  quiescence: every group quiet on every replica within {} idle ticks; {} groups of a dead leader's node led again, the slowest after {} ticks, none led elsewhere disturbed",
            t.quiet.slowest_quiet, t.quiet.groups_failed_over, t.quiet.slowest_failover
        );
    }
    total
}

/// Every mode under the same seeds: all safe and live.
#[test]
fn simulation_is_safe_and_live_in_every_mode() {
    let totals: Vec<(Mode, Totals)> = Mode::ALL.iter().map(|&m| (m, run_mode(m))).collect();
    let line = |what: &str, f: &dyn Fn(&Totals) -> u64| {
        let parts: Vec<String> = totals
            .iter()
            .map(|(m, t)| format!("{} {}", m.name(), f(t)))
            .collect();
        format!("{what}: {}", parts.join(" vs "))
    };
    println!(
        "over {} seeds per mode: {}; {}",
        totals[0].1.seeds,
        line("elections", &|t| t.elections),
        line("frames", &|t| t.frames)
    );
}

/// A seed replays exactly: the same seed run twice in one process (where
/// every `HashMap` gets other random keys) gives the same run, so a failure
/// reported with its seed can be replayed and debugged.
#[test]
fn a_seed_replays_exactly() {
    // 172 restarts a node that must drop several groups: the order it drops
    // them in once came from a `HashMap` and changed from run to run.
    let mut differ = Vec::new();
    for seed in [3, 172] {
        for mode in Mode::ALL {
            let first = run(Scenario::from_seed(seed, mode));
            for _ in 0..4 {
                if run(Scenario::from_seed(seed, mode)) != first {
                    differ.push((seed, mode));
                    break;
                }
            }
        }
    }
    assert!(
        differ.is_empty(),
        "runs that did not replay (seed, mode): {differ:?}"
    );
}

/// The checker is not vacuous: a node that forgets its vote on restart can
/// vote twice in a term, and the simulation must catch the two leaders (or
/// the divergence they cause) on some seed.
#[test]
fn checker_catches_a_node_that_forgets_its_vote() {
    let mut caught = None;
    for seed in 1..400 {
        let mut sc = Scenario::from_seed(seed, Mode::Quiesced);
        sc.forget_vote_on_restart = true;
        // What is caught must be the checker's own finding.
        sc.balance = false;
        // The checker sees a leader by the appends it sends: the empty
        // appends that tell followers each commit show the second leader
        // of a term on more seeds.
        sc.broadcast_commit = true;
        sc.faults.crashes = true;
        sc.faults.net.loss = 0.1;
        sc.faults.net.max_delay = 3;
        if let Err(e) = run(sc) {
            caught = Some((seed, e));
            break;
        }
    }
    let (seed, e) = caught.expect("forgetting votes on restart went unnoticed on 400 seeds");
    println!("caught on seed {seed}: {e}");
    assert!(
        e.contains("violated") || e.contains("liveness") || e.contains("twice"),
        "{e}"
    );
}
