//! Deterministic simulation of a muxraft cluster under faults.
//!
//! Several nodes, each hosting many groups of 3 or 5 replicas, exchange real
//! encoded frames over a simulated network that loses, duplicates, delays and
//! reorders them, is cut by partitions that heal, and loses nodes that crash
//! (dropping everything not yet persisted) and restart from their durable
//! state. Clients propose throughout and record what was acknowledged.
//!
//! After every step the checker verifies election safety, log matching,
//! leader completeness, state-machine safety, and that no acknowledged
//! proposal is lost or applied twice; once faults stop, every group must elect
//! a leader and apply every acknowledged proposal within a bounded number of
//! ticks.
//!
//!     cargo test --release --test simulation
//!     MUXRAFT_SIM_SEEDS=1000 cargo test --release --test simulation
//!     MUXRAFT_SIM_SEED=1234 cargo test --release --test simulation -- --nocapture
//!
//! Everything random comes from the seed, so a failure replays exactly.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use muxraft::multi::{Event, Node, NodeConfig, NodeReady};
use muxraft::raft::{EntryKind, HardState, Role};
use muxraft::storage::{LogStore, MemStore};

// ---------------------------------------------------------------------------
// Randomness

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x9E37_79B9_7F4A_7C15)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
    }
}

// ---------------------------------------------------------------------------
// Scenario

/// The faults one seed injects. Drawn from the seed, so every fault kind is
/// covered across seeds and each seed is reproducible.
#[derive(Clone, Debug)]
struct Faults {
    loss: f64,
    duplicate: f64,
    max_delay: u64,
    partitions: bool,
    crashes: bool,
}

#[derive(Clone, Debug)]
struct Scenario {
    seed: u64,
    nodes: u64,
    groups: u64,
    batch: bool,
    fault_ticks: u64,
    liveness_ticks: u64,
    faults: Faults,
    /// Inject a known bug: a restarted node forgets the vote it cast.
    forget_vote_on_restart: bool,
}

impl Scenario {
    fn from_seed(seed: u64, batch: bool) -> Scenario {
        let mut r = Rng::new(seed ^ 0x5EED);
        let nodes = 3 + r.below(3); // 3..=5
        let kind = seed % 8; // make sure every fault kind gets its seeds
        let faults = Faults {
            loss: if kind == 0 || r.chance(0.5) {
                0.02 + r.below(15) as f64 / 100.0
            } else {
                0.0
            },
            duplicate: if kind == 1 || r.chance(0.4) {
                r.below(10) as f64 / 100.0
            } else {
                0.0
            },
            max_delay: if kind == 2 || r.chance(0.5) {
                1 + r.below(8)
            } else {
                0
            },
            partitions: kind == 3 || kind == 5 || r.chance(0.4),
            crashes: kind == 4 || kind == 5 || r.chance(0.4),
        };
        Scenario {
            seed,
            nodes,
            groups: 6 + r.below(10),
            batch,
            fault_ticks: 400 + r.below(400),
            liveness_ticks: 1500,
            faults,
            forget_vote_on_restart: false,
        }
    }
}

// ---------------------------------------------------------------------------
// The simulated cluster

struct InFlight {
    at: u64,
    seq: u64,
    from: u64,
    to: u64,
    bytes: Bytes,
}

/// What a node has made durable: per group, its log and hard state.
#[derive(Clone, Default)]
struct Disk {
    groups: BTreeMap<u64, MemStore>,
}

struct Replica {
    /// Next index this replica's state machine expects (in-order check).
    applied: u64,
    /// Payloads applied by this incarnation (applied-twice check).
    seen: HashSet<Bytes>,
}

struct Sim {
    sc: Scenario,
    rng: Rng,
    now: u64,
    nodes: BTreeMap<u64, Option<Node>>,
    disks: BTreeMap<u64, Disk>,
    restarts: BTreeMap<u64, u64>,
    members: BTreeMap<u64, Vec<u64>>,
    net: Vec<InFlight>,
    seq: u64,
    /// Partition: node -> side. Messages between sides are dropped.
    side: BTreeMap<u64, u8>,
    partition_until: u64,
    crashed_until: BTreeMap<u64, u64>,
    // checker state
    leaders: HashMap<(u64, u64), u64>,
    committed: BTreeMap<u64, BTreeMap<u64, (u64, Bytes)>>,
    entry_prev: HashMap<(u64, u64, u64), (u64, Bytes)>,
    replicas: HashMap<(u64, u64), Replica>,
    acked: BTreeMap<Bytes, (u64, u64)>,
    proposals: BTreeMap<(u64, u64), Bytes>,
    next_payload: u64,
    elections: u64,
    stats: SimStats,
}

#[derive(Default, Debug, Clone)]
struct SimStats {
    crashes: u64,
    partitions: u64,
    dropped: u64,
    duplicated: u64,
    proposed: u64,
    acked: u64,
    frames: u64,
}

type Check = Result<(), String>;

impl Sim {
    fn new(sc: Scenario) -> Sim {
        let mut rng = Rng::new(sc.seed);
        let ids: Vec<u64> = (1..=sc.nodes).collect();
        let mut members = BTreeMap::new();
        for g in 1..=sc.groups {
            let k = if sc.nodes >= 5 && rng.chance(0.4) {
                5
            } else {
                3
            };
            let mut pool = ids.clone();
            let mut m = Vec::new();
            for _ in 0..k {
                let i = rng.below(pool.len() as u64) as usize;
                m.push(pool.swap_remove(i));
            }
            m.sort_unstable();
            members.insert(g * 7 + rng.below(5), m); // sparse, unsorted-looking ids
        }
        let mut sim = Sim {
            rng,
            now: 0,
            nodes: BTreeMap::new(),
            disks: ids.iter().map(|&i| (i, Disk::default())).collect(),
            restarts: ids.iter().map(|&i| (i, 0)).collect(),
            members,
            net: Vec::new(),
            seq: 0,
            side: BTreeMap::new(),
            partition_until: 0,
            crashed_until: BTreeMap::new(),
            leaders: HashMap::new(),
            committed: BTreeMap::new(),
            entry_prev: HashMap::new(),
            replicas: HashMap::new(),
            acked: BTreeMap::new(),
            proposals: BTreeMap::new(),
            next_payload: 0,
            elections: 0,
            stats: SimStats::default(),
            sc,
        };
        for &id in &ids {
            sim.start_node(id);
        }
        sim
    }

    fn node_config(&self, id: u64) -> NodeConfig {
        let mut c = NodeConfig::new(id);
        c.cluster_id = 42;
        c.batch_heartbeats = self.sc.batch;
        c.election_ticks = 10;
        c.heartbeat_ticks = 2;
        c.max_append_bytes = 512;
        c.max_inflight = 8;
        c.seed = self
            .sc
            .seed
            .wrapping_mul(31)
            .wrapping_add(id * 1000 + self.restarts[&id]);
        c
    }

    /// Start (or restart) a node from its disk: what was persisted is all it
    /// gets back.
    fn start_node(&mut self, id: u64) {
        let mut node = Node::new(self.node_config(id)).expect("valid config");
        let groups: Vec<(u64, Vec<u64>)> = self
            .members
            .iter()
            .filter(|(_, m)| m.contains(&id))
            .map(|(&g, m)| (g, m.clone()))
            .collect();
        for (g, m) in groups {
            let mut store = self.disks[&id].groups.get(&g).cloned().unwrap_or_default();
            if self.sc.forget_vote_on_restart {
                let hs = store.hard_state();
                store.set_hard_state(HardState { vote: 0, ..hs });
            }
            node.create_group_with_store(g, 1, &m, store, 0)
                .expect("group from disk");
            self.replicas.insert(
                (id, g),
                Replica {
                    applied: 0,
                    seen: HashSet::new(),
                },
            );
        }
        self.nodes.insert(id, Some(node));
    }

    fn live(&self, id: u64) -> bool {
        matches!(self.nodes.get(&id), Some(Some(_)))
    }

    fn fail(&self, what: String) -> String {
        format!(
            "{what}\n  at tick {} (mode {})\n  replay: MUXRAFT_SIM_SEED={} cargo test --release --test simulation -- --nocapture",
            self.now,
            if self.sc.batch { "batched" } else { "naive" },
            self.sc.seed
        )
    }

    // -- one tick ------------------------------------------------------------

    fn step(&mut self, faults_on: bool, propose: bool) -> Check {
        self.now += 1;
        if faults_on {
            self.inject_faults();
        }
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for &id in &ids {
            if let Some(Some(n)) = self.nodes.get_mut(&id) {
                n.tick();
            }
        }
        if propose {
            self.propose_some();
        }
        for &id in &ids {
            self.drain(id, faults_on)?;
        }
        self.deliver(faults_on)?;
        self.check_leaders()
    }

    fn inject_faults(&mut self) {
        let f = self.sc.faults.clone();
        if f.partitions {
            if self.now >= self.partition_until && !self.side.is_empty() {
                self.side.clear(); // heal
            } else if self.side.is_empty() && self.rng.chance(0.01) {
                self.stats.partitions += 1;
                for id in 1..=self.sc.nodes {
                    let s = self.rng.below(2) as u8;
                    self.side.insert(id, s);
                }
                self.partition_until = self.now + 20 + self.rng.below(80);
            }
        }
        if f.crashes {
            let down: Vec<u64> = self
                .crashed_until
                .iter()
                .filter(|(_, &t)| t <= self.now)
                .map(|(&id, _)| id)
                .collect();
            for id in down {
                self.crashed_until.remove(&id);
                self.start_node(id);
            }
            // At most a minority down at once, so the cluster can make progress.
            let max_down = (self.sc.nodes - 1) / 2;
            if (self.crashed_until.len() as u64) < max_down && self.rng.chance(0.01) {
                let id = 1 + self.rng.below(self.sc.nodes);
                if self.live(id) {
                    self.crash(id);
                }
            }
        }
    }

    fn crash(&mut self, id: u64) {
        self.stats.crashes += 1;
        if let Some(Some(n)) = self.nodes.get(&id) {
            self.elections += n.stats().elections_started;
        }
        self.nodes.insert(id, None);
        *self.restarts.get_mut(&id).unwrap() += 1;
        self.crashed_until
            .insert(id, self.now + 5 + self.rng.below(60));
    }

    fn propose_some(&mut self) {
        for _ in 0..2 {
            if !self.rng.chance(0.5) {
                continue;
            }
            let gids: Vec<u64> = self.members.keys().copied().collect();
            let g = gids[self.rng.below(gids.len() as u64) as usize];
            let leader = self.members[&g].iter().copied().find(|&id| {
                matches!(self.nodes.get(&id), Some(Some(n)) if n.group_status(g).map(|s| s.role == Role::Leader).unwrap_or(false))
            });
            let Some(id) = leader else { continue };
            self.next_payload += 1;
            let payload = Bytes::from(format!("s{}-p{}", self.sc.seed, self.next_payload));
            let n = self.nodes.get_mut(&id).unwrap().as_mut().unwrap();
            if let Ok(pid) = n.propose(g, payload.clone()) {
                self.stats.proposed += 1;
                self.proposals.insert((id, pid), payload);
            }
        }
    }

    /// Process every pending ready of node `id`: persist, send, deliver
    /// events, advance. Sometimes crash half-way: after persisting only some
    /// groups, before sending anything.
    fn drain(&mut self, id: u64, faults_on: bool) -> Check {
        loop {
            let Some(Some(n)) = self.nodes.get_mut(&id) else {
                return Ok(());
            };
            if !n.has_ready() {
                return Ok(());
            }
            let rd = n.ready();
            let crash_mid = faults_on
                && self.sc.faults.crashes
                && (self.crashed_until.len() as u64) < (self.sc.nodes - 1) / 2
                && self.rng.chance(0.002);
            let persist_upto = if crash_mid {
                self.rng.below(rd.groups.len() as u64 + 1) as usize
            } else {
                rd.groups.len()
            };
            self.persist(id, &rd, persist_upto)?;
            if crash_mid {
                self.crash(id);
                return Ok(());
            }
            self.send(id, &rd, faults_on);
            self.observe(id, &rd)?;
            if let Some(Some(n)) = self.nodes.get_mut(&id) {
                n.advance(rd);
            }
        }
    }

    /// What node `id` has made durable for group `g`.
    fn disk(&mut self, id: u64, g: u64) -> &mut MemStore {
        self.disks
            .get_mut(&id)
            .expect("every node has a disk")
            .groups
            .entry(g)
            .or_default()
    }

    fn persist(&mut self, id: u64, rd: &NodeReady, upto: usize) -> Check {
        for gr in rd.groups.iter().take(upto) {
            let g = gr.group_id;
            if let Some(first) = gr.ready.entries.first() {
                // Log matching, inductively: an entry (index, term) is the same
                // everywhere (same data) and always follows the same term.
                let mut prev_term = self.disk(id, g).term(first.index - 1).unwrap_or(0);
                for e in &gr.ready.entries {
                    let key = (g, e.index, e.term);
                    let val = (prev_term, e.data.clone());
                    if let Some(seen) = self.entry_prev.get(&key) {
                        if *seen != val {
                            let msg = format!(
                                "log matching violated: group {g} entry ({}, {}) on node {id} follows term {} with {:?}, elsewhere follows {} with {:?}",
                                e.index, e.term, prev_term, e.data, seen.0, seen.1
                            );
                            return Err(self.fail(msg));
                        }
                    } else {
                        self.entry_prev.insert(key, val);
                    }
                    prev_term = e.term;
                }
                self.disk(id, g).append(&gr.ready.entries);
            }
            if let Some(hs) = gr.ready.hard_state {
                self.disk(id, g).set_hard_state(hs);
            }
        }
        Ok(())
    }

    fn send(&mut self, from: u64, rd: &NodeReady, faults_on: bool) {
        for f in &rd.frames {
            self.stats.frames += 1;
            let f_loss = if faults_on { self.sc.faults.loss } else { 0.0 };
            if self.rng.chance(f_loss) {
                self.stats.dropped += 1;
                continue;
            }
            let copies = if faults_on && self.rng.chance(self.sc.faults.duplicate) {
                self.stats.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = if faults_on && self.sc.faults.max_delay > 0 {
                    self.rng.below(self.sc.faults.max_delay + 1)
                } else {
                    0
                };
                self.seq += 1;
                self.net.push(InFlight {
                    at: self.now + delay,
                    seq: self.seq,
                    from,
                    to: f.to,
                    bytes: f.bytes.clone(),
                });
            }
        }
    }

    /// Check what a ready applied and acknowledged.
    fn observe(&mut self, id: u64, rd: &NodeReady) -> Check {
        for gr in &rd.groups {
            let g = gr.group_id;
            for e in &gr.ready.committed_entries {
                let rep = self.replicas.get_mut(&(id, g)).unwrap();
                if e.index != rep.applied + 1 {
                    let msg = format!(
                        "node {id} group {g} applied index {} after {} (gap or repeat)",
                        e.index, rep.applied
                    );
                    return Err(self.fail(msg));
                }
                rep.applied = e.index;
                if e.kind == EntryKind::Normal && !rep.seen.insert(e.data.clone()) {
                    let msg = format!("node {id} group {g} applied {:?} twice", e.data);
                    return Err(self.fail(msg));
                }
                let slot = self.committed.entry(g).or_default();
                match slot.get(&e.index) {
                    Some((t, d)) if (*t, d) != (e.term, &e.data) => {
                        let msg = format!(
                            "state machine safety violated: group {g} index {} applied as (term {}, {:?}) on node {id}, as (term {t}, {d:?}) elsewhere",
                            e.index, e.term, e.data
                        );
                        return Err(self.fail(msg));
                    }
                    Some(_) => {}
                    None => {
                        slot.insert(e.index, (e.term, e.data.clone()));
                    }
                }
            }
            if let Some((Role::Leader, term, _)) = gr.ready.role_change {
                self.check_leader_completeness(id, g, term)?;
            }
        }
        for ev in &rd.events {
            if let Event::ProposalDone {
                group_id,
                proposal_id,
                result: Ok(index),
            } = ev
            {
                let payload = self.proposals.get(&(id, *proposal_id)).cloned().unwrap();
                // The acknowledged entry must be what was applied there.
                let applied = self.committed.get(group_id).and_then(|m| m.get(index));
                if applied.map(|(_, d)| d) != Some(&payload) {
                    let msg = format!(
                        "proposal {payload:?} acknowledged at {group_id}/{index} but that index holds {applied:?}"
                    );
                    return Err(self.fail(msg));
                }
                self.stats.acked += 1;
                self.acked.insert(payload, (*group_id, *index));
            }
        }
        Ok(())
    }

    /// Every entry committed so far must be in a new leader's log.
    fn check_leader_completeness(&self, id: u64, g: u64, term: u64) -> Check {
        let Some(Some(n)) = self.nodes.get(&id) else {
            return Ok(());
        };
        if let Some(entries) = self.committed.get(&g) {
            for (&index, &(t, _)) in entries {
                if n.log_term(g, index) != Some(t) {
                    let msg = format!(
                        "leader completeness violated: node {id} leads group {g} in term {term} without committed entry ({index}, term {t})"
                    );
                    return Err(self.fail(msg));
                }
            }
        }
        Ok(())
    }

    fn deliver(&mut self, faults_on: bool) -> Check {
        loop {
            let mut due: Vec<InFlight> = Vec::new();
            let mut later = Vec::new();
            for m in self.net.drain(..) {
                if m.at <= self.now {
                    due.push(m);
                } else {
                    later.push(m);
                }
            }
            self.net = later;
            if due.is_empty() {
                return Ok(());
            }
            due.sort_by_key(|m| (m.at, m.seq));
            if faults_on && self.sc.faults.max_delay > 0 {
                // Reorder what is due at once.
                for i in (1..due.len()).rev() {
                    let j = self.rng.below(i as u64 + 1) as usize;
                    due.swap(i, j);
                }
            }
            let mut touched = BTreeSet::new();
            for m in due {
                let cut = self.side.get(&m.from) != self.side.get(&m.to);
                if cut || !self.live(m.to) {
                    continue;
                }
                let n = self.nodes.get_mut(&m.to).unwrap().as_mut().unwrap();
                if let Err(e) = n.step(&m.bytes) {
                    return Err(
                        self.fail(format!("well-formed frame refused by node {}: {e}", m.to))
                    );
                }
                touched.insert(m.to);
            }
            for id in touched {
                self.drain(id, faults_on)?;
            }
        }
    }

    fn check_leaders(&mut self) -> Check {
        for (&id, n) in &self.nodes {
            let Some(n) = n else { continue };
            for g in n.group_ids().collect::<Vec<_>>() {
                let s = n.group_status(g).unwrap();
                if s.role == Role::Leader {
                    match self.leaders.insert((g, s.term), id) {
                        Some(other) if other != id => {
                            let msg = format!(
                                "election safety violated: group {g} term {} has leaders {other} and {id}",
                                s.term
                            );
                            return Err(self.fail(msg));
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    // -- the end -----------------------------------------------------------

    fn heal(&mut self) {
        self.side.clear();
        let down: Vec<u64> = self.crashed_until.keys().copied().collect();
        for id in down {
            self.crashed_until.remove(&id);
            self.start_node(id);
        }
    }

    /// Is every group led, and has every replica applied everything its
    /// leader committed, including every acknowledged proposal?
    fn settled(&self) -> Result<(), String> {
        for (&g, m) in &self.members {
            let leaders: Vec<u64> = m
                .iter()
                .copied()
                .filter(|&id| {
                    self.nodes[&id]
                        .as_ref()
                        .unwrap()
                        .group_status(g)
                        .unwrap()
                        .role
                        == Role::Leader
                })
                .collect();
            let &[leader] = leaders.as_slice() else {
                return Err(format!("group {g} has leaders {leaders:?}"));
            };
            let commit = self.nodes[&leader]
                .as_ref()
                .unwrap()
                .group_status(g)
                .unwrap()
                .commit;
            for &id in m {
                let s = self.nodes[&id].as_ref().unwrap().group_status(g).unwrap();
                if s.applied < commit || self.replicas[&(id, g)].applied < commit {
                    return Err(format!(
                        "group {g} node {id} applied {} of {commit}",
                        s.applied
                    ));
                }
            }
        }
        for (payload, (g, index)) in &self.acked {
            for &id in &self.members[g] {
                let rep = &self.replicas[&(id, *g)];
                if !rep.seen.contains(payload) {
                    return Err(format!(
                        "acknowledged proposal {payload:?} ({g}/{index}) not applied on node {id}"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
struct Outcome {
    elections: u64,
    stats: SimStats,
    settle_ticks: u64,
}

fn run(sc: Scenario) -> Result<Outcome, String> {
    let mut sim = Sim::new(sc.clone());
    for _ in 0..sc.fault_ticks {
        sim.step(true, true)?;
    }
    sim.heal();
    let start = sim.now;
    let mut last_err = String::new();
    for _ in 0..sc.liveness_ticks {
        sim.step(false, false)?;
        match sim.settled() {
            Ok(()) => {
                // Elections of earlier incarnations were added at each crash.
                sim.elections += sim
                    .nodes
                    .values()
                    .map(|n| n.as_ref().unwrap().stats().elections_started)
                    .sum::<u64>();
                return Ok(Outcome {
                    elections: sim.elections,
                    stats: sim.stats.clone(),
                    settle_ticks: sim.now - start,
                });
            }
            Err(e) => last_err = e,
        }
    }
    Err(sim.fail(format!(
        "liveness: not settled {} ticks after faults stopped: {last_err}",
        sc.liveness_ticks
    )))
}

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
    (base..base + n).collect()
}

fn run_mode(batch: bool) -> (u64, Outcome) {
    let mut total = Outcome::default();
    let seeds = seeds();
    let mut mix = [0u64; 5];
    for &seed in &seeds {
        let sc = Scenario::from_seed(seed, batch);
        let f = &sc.faults;
        for (i, on) in [
            f.loss > 0.0,
            f.duplicate > 0.0,
            f.max_delay > 0,
            f.partitions,
            f.crashes,
        ]
        .into_iter()
        .enumerate()
        {
            mix[i] += on as u64;
        }
        match run(sc) {
            Ok(o) => {
                total.elections += o.elections;
                total.settle_ticks = total.settle_ticks.max(o.settle_ticks);
                let s = &mut total.stats;
                s.crashes += o.stats.crashes;
                s.partitions += o.stats.partitions;
                s.dropped += o.stats.dropped;
                s.duplicated += o.stats.duplicated;
                s.proposed += o.stats.proposed;
                s.acked += o.stats.acked;
                s.frames += o.stats.frames;
            }
            Err(e) => panic!("simulation seed {seed} failed: {e}"),
        }
    }
    println!(
        "mode {:7}: {} seeds ok; seeds with loss/dup/delay+reorder/partition/crash: {:?}; {:?}; elections {}; slowest settle {} ticks",
        if batch { "batched" } else { "naive" },
        seeds.len(),
        mix,
        total.stats,
        total.elections,
        total.settle_ticks
    );
    (seeds.len() as u64, total)
}

/// Both modes under the same seeds: both safe, and batching must not cost
/// elections (its heartbeats are the same per group, only packed).
#[test]
fn simulation_is_safe_and_live_with_and_without_batching() {
    let (n, batched) = run_mode(true);
    let (_, naive) = run_mode(false);
    println!(
        "elections over {n} seeds: batched {} vs naive {}; frames batched {} vs naive {}",
        batched.elections, naive.elections, batched.stats.frames, naive.stats.frames
    );
    if n > 1 {
        assert!(
            batched.elections <= naive.elections,
            "batching caused more elections ({} > {})",
            batched.elections,
            naive.elections
        );
    }
}

/// The checker is not vacuous: a node that forgets its vote on restart can
/// vote twice in a term, and the simulation must catch the two leaders (or
/// the divergence they cause) on some seed.
#[test]
fn checker_catches_a_node_that_forgets_its_vote() {
    let mut caught = None;
    for seed in 1..400 {
        let mut sc = Scenario::from_seed(seed, true);
        sc.forget_vote_on_restart = true;
        sc.faults.crashes = true;
        sc.faults.loss = 0.1;
        sc.faults.max_delay = 3;
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
