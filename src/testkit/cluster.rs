//! A cluster of muxraft nodes in one process, driven tick by tick.
//!
//! Each node runs the real [`Node`] with the real write-ahead log on its own
//! [`MemFs`], persisting every `NodeReady` the way the runtime does, and
//! talks to the others through a [`Net`]. The cluster also plays the host:
//! it keeps the broker's metadata (which incarnation of each group id
//! exists, and on which nodes) and applies it to each node, at once or
//! spread over time the way real brokers do. Everything a node hands out
//! goes through the [`Checker`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::check::{Check, Checker, Durable};
use super::net::Net;
use super::Rng;
use crate::multi::{Envelope, Event, Node, NodeConfig};
use crate::raft::{HardState, Role};
use crate::raft::{LogStore, MemStore};
use crate::runtime::{
    creation_batch, encode, removal_batch, step_frame, wal_batch, Creation, Disk,
};
use crate::storage::{MemFs, StorageOptions};
use crate::wire::DEFAULT_MAX_FRAME_BYTES;

/// How the nodes of a cluster are set up.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub nodes: u64,
    /// Every node's `NodeConfig::cluster_id`. Frames carry it as a varint,
    /// so it changes their size: a benchmark that counts bytes keeps its own.
    pub cluster_id: u64,
    pub batch_heartbeats: bool,
    /// Idle groups go quiet (batched mode only; see `multi/quiesce.rs`).
    pub quiesce: bool,
    pub election_ticks: u32,
    pub heartbeat_ticks: u32,
    pub max_append_bytes: u64,
    pub max_inflight: usize,
    /// The nodes' snapshot settings (see [`NodeConfig`]).
    pub snapshot_trailing_entries: u64,
    pub snapshot_chunk_bytes: u64,
    pub snapshot_timeout_ticks: u64,
    pub snapshot_threshold_entries: u64,
    /// The nodes' backpressure limits (see [`NodeConfig`]): proposals in
    /// flight per group and per node, bytes not yet durable per group and
    /// per node.
    pub max_pending_proposals_per_group: u64,
    pub max_pending_proposals: u64,
    pub max_unsynced_bytes_per_group: u64,
    pub max_unsynced_bytes: u64,
    /// Reads pending per group before `read_index` is refused as busy.
    pub max_pending_reads_per_group: u64,
    /// Every node runs the leader balancer (`multi/balance.rs`).
    pub balance_leaders: bool,
    /// Leaders tell followers each commit at once (`NodeConfig`'s
    /// `broadcast_commit`); false, the default, lets it ride on the next
    /// append or heartbeat.
    pub broadcast_commit: bool,
    pub seed: u64,
    /// Keep each node's groups in the real WAL on an in-memory file system
    /// (crashes then keep exactly what was made durable). Without it a
    /// crash loses everything: only for runs without crashes.
    pub wal: bool,
    pub segment_bytes: u64,
    /// Feed everything to the [`Checker`] (off for benchmarks, which measure
    /// the nodes alone).
    pub check: bool,
    /// Keep every event each node reports, in [`Cluster::events`].
    pub record_events: bool,
    /// Time the phases of the host loop, in [`Cluster::phases`].
    pub timing: bool,
}

/// Where the time of the host loop went (with [`ClusterConfig::timing`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    /// `Node::tick` on every node.
    pub tick: Duration,
    /// `Node::has_ready`.
    pub has_ready: Duration,
    /// `Node::ready`.
    pub ready: Duration,
    /// Persisting, encoding and sending what a ready asked.
    pub send: Duration,
    /// `Node::advance`.
    pub advance: Duration,
    /// Delivering the frames due: decoding and stepping them (and the host
    /// operations that land in between, if any).
    pub step: Duration,
}

impl Phases {
    /// All the phases: what the nodes and their frames cost, without the
    /// cluster's own bookkeeping between them (the network queue, host
    /// operations, reading the clock).
    pub fn total(&self) -> Duration {
        self.tick + self.has_ready + self.ready + self.send + self.advance + self.step
    }
}

impl ClusterConfig {
    pub fn new(nodes: u64, seed: u64) -> ClusterConfig {
        ClusterConfig {
            nodes,
            cluster_id: 42,
            batch_heartbeats: true,
            quiesce: true,
            election_ticks: 10,
            heartbeat_ticks: 2,
            max_append_bytes: 512,
            max_inflight: 8,
            snapshot_trailing_entries: 4,
            snapshot_chunk_bytes: 64,
            snapshot_timeout_ticks: 60,
            snapshot_threshold_entries: 10_000,
            max_pending_proposals_per_group: NodeConfig::DEFAULT_MAX_PENDING_PROPOSALS_PER_GROUP,
            max_pending_proposals: NodeConfig::DEFAULT_MAX_PENDING_PROPOSALS,
            max_unsynced_bytes_per_group: NodeConfig::DEFAULT_MAX_UNSYNCED_BYTES_PER_GROUP,
            max_unsynced_bytes: NodeConfig::DEFAULT_MAX_UNSYNCED_BYTES,
            max_pending_reads_per_group: NodeConfig::DEFAULT_MAX_PENDING_READS_PER_GROUP,
            balance_leaders: false,
            broadcast_commit: false,
            seed,
            wal: true,
            segment_bytes: 16 << 10,
            check: true,
            record_events: false,
            timing: false,
        }
    }

    /// A lossless, memory-only cluster that checks nothing: what the
    /// benchmarks measure.
    pub fn bench(nodes: u64, seed: u64) -> ClusterConfig {
        ClusterConfig {
            wal: false,
            check: false,
            timing: true,
            ..ClusterConfig::new(nodes, seed)
        }
    }
}

/// The host's record of one group: what a broker's metadata store holds.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GroupSpec {
    pub incarnation: u64,
    /// The nodes hosting a replica: the creation's members, then as
    /// membership changes add and remove them (`membership.rs`).
    pub members: Vec<u64>,
    /// Of `members`, those added later: a restarted node joins these
    /// (`Node::join_group`) rather than creating them.
    pub joined: Vec<u64>,
}

/// Faults and habits of the nodes themselves (the network has its own).
#[derive(Clone, Debug, Default)]
pub struct NodeFaults {
    /// Per write: the power fails after the write and before its fsync
    /// completes (the node crashes with a torn tail).
    pub torn_write: f64,
    /// Per `NodeReady`: inputs (frames, a proposal, a tick) reach the node
    /// between `ready` and `advance`, as they do in the runtime.
    pub input_between: f64,
    /// Per `NodeReady`: the node crashes after persisting it and before
    /// sending its frames, or after sending them and before `advance` (a
    /// process dies at any point of its loop).
    pub crash_in_loop: f64,
    /// Crashes of all kinds leave at least this many nodes up (torn writes
    /// and `crash_in_loop` respect it; whole-cluster crashes are explicit).
    pub min_up: u64,
    /// A restarted node forgets the vote it cast (an injected bug that the
    /// checker must catch).
    pub forget_vote_on_restart: bool,
    /// Per host snapshot: the power fails at some step of making it
    /// durable (the file, its rename, the compaction record).
    pub torn_snapshot: f64,
}

/// Counters of what the cluster did to its nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterStats {
    pub crashes: u64,
    /// Of which in the middle of the host loop (before or after sending).
    pub crashes_in_loop: u64,
    pub torn_writes: u64,
    pub torn_writes_kept: u64,
    pub cluster_crashes: u64,
    pub pauses: u64,
    pub inputs_between: u64,
    pub groups_removed: u64,
    pub groups_created: u64,
    pub proposals_refused: u64,
    /// Of those, refused with `Busy` (backpressure).
    pub proposals_busy: u64,
    pub elections: u64,
    pub stale_incarnation_drops: u64,
    /// Snapshots the hosts took, and of those, the ones a crash
    /// interrupted.
    pub snapshots: u64,
    pub snapshots_torn: u64,
    /// Data directories deleted (nodes that came back empty and rejoined).
    pub wipes: u64,
    pub groups_rejoined: u64,
    /// Replicas created in the place of one the node removed (a node added
    /// back to a group: `Node::succession`), and, at restarts, the
    /// tombstones of removed replicas and the vote floors of such replicas
    /// that recovery read back from disk.
    pub successors: u64,
    pub tombstones_recovered: u64,
    pub floors_recovered: u64,
    /// Reads refused by the leader that was asked (busy, or no longer
    /// leading by the time it was asked).
    pub reads_refused: u64,
    /// Leadership transfers started, and refused (not leading any more,
    /// target not caught up).
    pub transfers: u64,
    pub transfers_refused: u64,
    /// Membership changes a leader took, and refused (busy, not leading);
    /// replicas the host deleted after their removal (or a lost addition)
    /// was applied, of which lost additions; commits checked to be held by
    /// a quorum of the leader's voters.
    pub membership_changes: u64,
    pub membership_refused: u64,
    pub members_dropped: u64,
    pub adds_lost: u64,
    pub quorum_checks: u64,
}

/// A host operation waiting for its time on one node.
struct PendingOp {
    at: u64,
    node: u64,
    /// Runs in the middle of delivering frames (after some were stepped,
    /// before the node's next `ready`) rather than right after the ticks.
    mid_delivery: bool,
    op: HostOp,
}

/// A change of the host's metadata reaching one node.
#[derive(Clone, Debug)]
pub(super) enum HostOp {
    Remove {
        group: u64,
        incarnation: u64,
    },
    Create {
        group: u64,
        spec: GroupSpec,
    },
    /// The node was added to the group: it creates an empty replica.
    Join {
        group: u64,
        incarnation: u64,
    },
}

struct SimNode {
    node: Option<Node>,
    disk: Option<Disk>,
    fs: MemFs,
    /// Groups (id, incarnation) this node hosted when its disk was wiped:
    /// it rejoins them when it comes back (and never votes in them).
    lost: BTreeSet<(u64, u64)>,
    /// Restarts so far: a new life starts a new state machine.
    life: u64,
    paused_until: u64,
    /// Ticks per simulated tick, in percent (tick skew between nodes).
    rate: u64,
    credit: u64,
    /// Snapshots installed by this node's earlier lives.
    installs: u64,
    balance_transfers: u64,
    durable: Durable,
    /// Other durable states recovery may rightly return after the crash
    /// that interrupted a write: as if the torn write had reached the disk
    /// whole, or (a snapshot file saved, the WAL batch after it lost) with
    /// just the snapshot installed.
    torn: Vec<Durable>,
    elections: u64,
}

pub struct Cluster {
    pub cfg: ClusterConfig,
    pub now: u64,
    pub rng: Rng,
    pub net: Net,
    pub checker: Checker,
    pub faults: NodeFaults,
    pub stats: ClusterStats,
    /// The host's metadata: the live incarnation and members of each group.
    pub groups: BTreeMap<u64, GroupSpec>,
    /// Every event each node reported (with `record_events`).
    pub events: BTreeMap<u64, Vec<Event>>,
    pub phases: Phases,
    nodes: BTreeMap<u64, SimNode>,
    ops: Vec<PendingOp>,
    next_payload: u64,
    /// Additions a leader took, by (group, node): (incarnation, index of
    /// the configuration entry), until a membership shows their fate.
    pub(super) pending_adds: BTreeMap<(u64, u64), (u64, u64, u64)>,
    /// The index of the latest membership applied anywhere, per group.
    pub(super) conf_index: BTreeMap<(u64, u64), u64>,
    /// The commit index last seen per (node, group, incarnation).
    pub(super) commit_seen: BTreeMap<(u64, u64, u64), u64>,
}

fn wal_dir() -> PathBuf {
    PathBuf::from("/wal")
}

impl Cluster {
    pub fn new(cfg: ClusterConfig) -> Cluster {
        let mut rng = Rng::new(cfg.seed);
        let mut nodes = BTreeMap::new();
        for id in 1..=cfg.nodes {
            nodes.insert(
                id,
                SimNode {
                    node: None,
                    disk: None,
                    fs: MemFs::new(rng.next_u64()),
                    lost: BTreeSet::new(),
                    life: 0,
                    paused_until: 0,
                    rate: 100,
                    credit: 0,
                    installs: 0,
                    balance_transfers: 0,
                    durable: Durable::default(),
                    torn: Vec::new(),
                    elections: 0,
                },
            );
        }
        let mut c = Cluster {
            cfg,
            now: 0,
            rng,
            net: Net::default(),
            checker: Checker::default(),
            faults: NodeFaults::default(),
            stats: ClusterStats::default(),
            groups: BTreeMap::new(),
            events: BTreeMap::new(),
            phases: Phases::default(),
            nodes,
            ops: Vec::new(),
            next_payload: 0,
            pending_adds: BTreeMap::new(),
            conf_index: BTreeMap::new(),
            commit_seen: BTreeMap::new(),
        };
        for id in c.ids() {
            c.start(id).expect("a fresh node starts");
        }
        c
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn node(&self, id: u64) -> Option<&Node> {
        self.nodes.get(&id).and_then(|n| n.node.as_ref())
    }

    pub fn node_mut(&mut self, id: u64) -> Option<&mut Node> {
        self.nodes.get_mut(&id).and_then(|n| n.node.as_mut())
    }

    pub fn is_up(&self, id: u64) -> bool {
        self.node(id).is_some()
    }

    pub fn up_count(&self) -> u64 {
        self.nodes.values().filter(|n| n.node.is_some()).count() as u64
    }

    pub fn life(&self, id: u64) -> u64 {
        self.nodes[&id].life
    }

    pub fn is_paused(&self, id: u64) -> bool {
        self.nodes[&id].paused_until > self.now
    }

    fn node_config(&self, id: u64) -> NodeConfig {
        let mut c = NodeConfig::new(id);
        c.cluster_id = self.cfg.cluster_id;
        c.batch_heartbeats = self.cfg.batch_heartbeats;
        c.quiesce = self.cfg.quiesce;
        c.election_ticks = self.cfg.election_ticks;
        c.heartbeat_ticks = self.cfg.heartbeat_ticks;
        c.max_append_bytes = self.cfg.max_append_bytes;
        c.max_inflight = self.cfg.max_inflight;
        c.snapshot_trailing_entries = self.cfg.snapshot_trailing_entries;
        c.snapshot_chunk_bytes = self.cfg.snapshot_chunk_bytes;
        c.snapshot_timeout_ticks = self.cfg.snapshot_timeout_ticks;
        c.snapshot_threshold_entries = self.cfg.snapshot_threshold_entries;
        c.max_pending_proposals_per_group = self.cfg.max_pending_proposals_per_group;
        c.max_pending_proposals = self.cfg.max_pending_proposals;
        c.max_unsynced_bytes_per_group = self.cfg.max_unsynced_bytes_per_group;
        c.max_unsynced_bytes = self.cfg.max_unsynced_bytes;
        c.max_pending_reads_per_group = self.cfg.max_pending_reads_per_group;
        c.balance_leaders = self.cfg.balance_leaders;
        c.broadcast_commit = self.cfg.broadcast_commit;
        c.seed = self
            .cfg
            .seed
            .wrapping_mul(31)
            .wrapping_add(id * 1000 + self.nodes[&id].life);
        c
    }

    // -- nodes coming and going --------------------------------------------

    /// Start (or restart) node `id` from what its disk holds, then bring its
    /// groups in line with the host's metadata.
    fn start(&mut self, id: u64) -> Check {
        let mut node = Node::new(self.node_config(id)).expect("valid config");
        let forget_vote = self.faults.forget_vote_on_restart;
        let sn = self.nodes.get_mut(&id).expect("node");
        let mut durable = Durable::default();
        if self.cfg.wal {
            let opts = StorageOptions {
                segment_bytes: self.cfg.segment_bytes,
                max_snapshot_bytes: u64::MAX,
            };
            let (disk, mut recovered) = Disk::open(&wal_dir(), Arc::new(sn.fs.clone()), opts)
                .map_err(|e| format!("node {id} cannot recover its storage: {e}"))?;
            for (&g, rg) in &recovered.groups {
                if rg.lost {
                    return Err(format!(
                        "node {id} lost group {g}: its log was compacted and no snapshot covers it"
                    ));
                }
                durable.groups.insert(g, (rg.incarnation, rg.store.clone()));
                if let Some(f) = rg.vote_floor {
                    durable.floors.insert(g, f);
                }
            }
            for &(g, inc, p) in &recovered.tombstones {
                durable.tombstones.insert((g, inc), p);
            }
            self.stats.tombstones_recovered += durable.tombstones.len() as u64;
            self.stats.floors_recovered += durable.floors.len() as u64;
            // What recovery rebuilt is exactly what was durable: the state
            // after the last write that completed, or one of those the
            // interrupted one allows.
            let matches = |d: &Durable| same_durable(d, &durable);
            if !matches(&sn.durable) {
                match sn.torn.iter().position(matches) {
                    Some(_) => self.stats.torn_writes_kept += 1,
                    None => {
                        return Err(format!(
                            "node {id}: recovery returned a state that was never durable: {}\n  expected {}",
                            describe_durable(&durable),
                            describe_durable(&sn.durable)
                        ))
                    }
                }
            }
            sn.torn.clear();
            if forget_vote {
                for rg in recovered.groups.values_mut() {
                    let hs = rg.store.hard_state();
                    rg.store.set_hard_state(HardState { vote: 0, ..hs });
                }
            }
            disk.recover_into(&mut node, recovered)
                .map_err(|e| format!("node {id}: groups from disk: {e}"))?;
            sn.disk = Some(disk);
        }
        sn.durable = durable;
        sn.node = Some(node);
        self.checker.on_recovered(id, &self.nodes[&id].durable)?;
        // The host reconciles: groups deleted while the node was down go,
        // groups created meanwhile come; those it hosted before its disk was
        // wiped, it rejoins.
        let hosted: Vec<(u64, u64)> = self.nodes[&id]
            .durable
            .groups
            .iter()
            .map(|(&g, (inc, _))| (g, *inc))
            .collect();
        for (g, inc) in hosted {
            let keep = self
                .groups
                .get(&g)
                .is_some_and(|s| s.incarnation == inc && s.members.contains(&id));
            if !keep {
                self.host_remove(id, g)?;
            }
        }
        let wanted: Vec<(u64, GroupSpec)> = self
            .groups
            .iter()
            .filter(|(_, s)| s.members.contains(&id))
            .map(|(&g, s)| (g, s.clone()))
            .collect();
        for (g, spec) in wanted {
            if self
                .node(id)
                .is_some_and(|n| n.group_incarnation(g).is_none())
            {
                if self.nodes[&id].lost.contains(&(g, spec.incarnation)) {
                    self.host_rejoin(id, g, &spec)?;
                } else if spec.joined.contains(&id) {
                    self.host_join(id, g, spec.incarnation)?;
                } else {
                    self.host_create(id, g, &spec)?;
                }
            }
        }
        Ok(())
    }

    /// Crash node `id`: everything not durable is lost.
    pub fn crash(&mut self, id: u64) {
        let seed = self.rng.next_u64();
        let sn = self.nodes.get_mut(&id).expect("node");
        if let Some(n) = sn.node.take() {
            sn.elections += n.stats().elections_started;
            sn.installs += n.stats().snapshots_installed;
            sn.balance_transfers += n.stats().balance_transfers;
            self.stats.stale_incarnation_drops +=
                n.stats().incarnation_mismatches + n.stats().batches_dropped_incarnation;
        }
        sn.disk = None;
        sn.fs.clear_fault();
        sn.fs.crash(seed);
        sn.life += 1;
        sn.paused_until = 0;
        self.stats.crashes += 1;
    }

    /// Crash node `id` and delete its data directory (a failed disk
    /// replaced): it comes back empty, and its host rejoins the groups it
    /// hosted, as replicas that never vote.
    pub fn wipe(&mut self, id: u64) {
        if self.is_up(id) {
            self.crash(id);
        }
        let seed = self.rng.next_u64();
        let sn = self.nodes.get_mut(&id).expect("node");
        let hosted: Vec<(u64, u64)> = sn
            .durable
            .groups
            .iter()
            .map(|(&g, (inc, _))| (g, *inc))
            .chain(
                sn.torn
                    .iter()
                    .flat_map(|d| d.groups.iter().map(|(&g, (inc, _))| (g, *inc))),
            )
            .collect();
        sn.lost.extend(hosted);
        sn.fs = MemFs::new(seed);
        sn.durable = Durable::default();
        sn.torn.clear();
        self.checker.on_wiped(id);
        self.stats.wipes += 1;
    }

    pub fn restart(&mut self, id: u64) -> Check {
        if self.is_up(id) {
            return Ok(());
        }
        self.start(id)
    }

    /// Turn every node's leader balancer on or off (nodes started later
    /// too).
    pub fn set_balance_leaders(&mut self, on: bool) {
        self.cfg.balance_leaders = on;
        for sn in self.nodes.values_mut() {
            if let Some(n) = sn.node.as_mut() {
                n.set_balance_leaders(on);
            }
        }
    }

    /// Node `id` stops ticking and stepping for `ticks` ticks; frames for it
    /// wait.
    pub fn pause(&mut self, id: u64, ticks: u64) {
        self.stats.pauses += 1;
        let until = self.now + ticks;
        self.nodes.get_mut(&id).expect("node").paused_until = until;
    }

    /// Node `id` ticks `percent` times per 100 simulated ticks.
    pub fn set_tick_rate(&mut self, id: u64, percent: u64) {
        self.nodes.get_mut(&id).expect("node").rate = percent;
    }

    // -- the host ------------------------------------------------------------

    /// Create group `g` (a new incarnation) on its members: at once (before
    /// their next `ready`), or each member within `spread` ticks.
    pub fn create_group(&mut self, g: u64, spec: GroupSpec, spread: u64) -> Check {
        self.groups.insert(g, spec.clone());
        for &m in &spec.members {
            let op = HostOp::Create {
                group: g,
                spec: spec.clone(),
            };
            self.schedule(m, spread, op);
        }
        self.run_ops(false)
    }

    pub(super) fn schedule(&mut self, node: u64, spread: u64, op: HostOp) {
        let at = self.now + self.rng.below(spread + 1);
        let mid_delivery = spread > 0 && self.rng.chance(0.5);
        self.ops.push(PendingOp {
            at,
            node,
            mid_delivery,
            op,
        });
    }

    /// The host adds node `id` to group `g`'s metadata and creates its
    /// empty replica there now (`Node::join_group`, with its WAL), as it
    /// does before asking the leader to add it.
    pub fn join(&mut self, id: u64, g: u64) -> Check {
        let spec = self.groups.get_mut(&g).ok_or("no such group")?;
        if !spec.members.contains(&id) {
            spec.members.push(id);
            spec.members.sort_unstable();
            spec.joined.push(id);
        }
        let inc = spec.incarnation;
        self.host_join(id, g, inc)
    }

    /// Delete group `g` on its members: at once, or each within `spread`.
    pub fn remove_group(&mut self, g: u64, spread: u64) -> Check {
        let Some(spec) = self.groups.remove(&g) else {
            return Ok(());
        };
        self.pending_adds.retain(|&(pg, _), _| pg != g);
        for &m in &spec.members {
            let op = HostOp::Remove {
                group: g,
                incarnation: spec.incarnation,
            };
            self.schedule(m, spread, op);
        }
        self.run_ops(false)
    }

    /// Run the host operations due now in this phase (and any overdue).
    fn run_ops(&mut self, mid_delivery: bool) -> Check {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = self
            .ops
            .drain(..)
            .partition(|o| o.at < now || (o.at == now && o.mid_delivery == mid_delivery));
        self.ops = later;
        for PendingOp { node: id, op, .. } in due {
            if !self.is_up(id) {
                continue; // it reconciles when it comes back
            }
            match op {
                HostOp::Remove { group, incarnation } => {
                    // Not if the node was added back meanwhile: its replica
                    // (whole, just behind) serves as the new member.
                    let back = self
                        .groups
                        .get(&group)
                        .is_some_and(|s| s.incarnation == incarnation && s.members.contains(&id));
                    if !back
                        && self.node(id).and_then(|n| n.group_incarnation(group))
                            == Some(incarnation)
                    {
                        self.host_remove(id, group)?;
                    }
                }
                HostOp::Join { group, incarnation } => {
                    let wanted = self
                        .groups
                        .get(&group)
                        .is_some_and(|s| s.incarnation == incarnation && s.members.contains(&id));
                    if !wanted {
                        continue;
                    }
                    match self.node(id).and_then(|n| n.group_incarnation(group)) {
                        Some(i) if i == incarnation => {}
                        // A replica of the group's earlier life, whose
                        // deletion has not reached this node yet (seed
                        // 14908): it goes now, as a Create does it, or the
                        // joiner would never be made.
                        Some(_) => {
                            self.host_remove(id, group)?;
                            self.host_join(id, group, incarnation)?;
                        }
                        None => self.host_join(id, group, incarnation)?,
                    }
                }
                HostOp::Create { group, spec } => {
                    // Only if it is still what the metadata says (members
                    // added since join; removed ones are not created).
                    let same = self.groups.get(&group).is_some_and(|s| {
                        s.incarnation == spec.incarnation && s.members.contains(&id)
                    });
                    if !same {
                        continue;
                    }
                    match self.node(id).and_then(|n| n.group_incarnation(group)) {
                        Some(i) if i == spec.incarnation => {}
                        Some(_) => {
                            self.host_remove(id, group)?;
                            self.host_create(id, group, &spec)?;
                        }
                        None => self.host_create(id, group, &spec)?,
                    }
                }
            }
        }
        Ok(())
    }

    fn host_create(&mut self, id: u64, g: u64, spec: &GroupSpec) -> Check {
        self.host_add(id, g, spec, false)
    }

    fn host_rejoin(&mut self, id: u64, g: u64, spec: &GroupSpec) -> Check {
        self.host_add(id, g, spec, true)
    }

    fn host_add(&mut self, id: u64, g: u64, spec: &GroupSpec, rejoin: bool) -> Check {
        let sn = self.nodes.get_mut(&id).expect("node");
        let Some(node) = sn.node.as_mut() else {
            return Ok(());
        };
        let r = if rejoin {
            node.rejoin_group(g, spec.incarnation, &spec.members)
        } else {
            node.create_group(g, spec.incarnation, &spec.members)
        };
        r.map_err(|e| format!("node {id} cannot create group {g}: {e}"))?;
        let how = if rejoin {
            Creation::Rejoin
        } else {
            Creation::Create
        };
        if let Some(disk) = &sn.disk {
            let b = creation_batch(node, g, spec.incarnation, &spec.members, how);
            disk.write(&b)
                .map_err(|e| format!("node {id} WAL create {g}: {e}"))?;
        }
        let succeeds = node.succession(g);
        self.stats.successors += u64::from(succeeds.is_some());
        sn.durable.create(g, spec.incarnation, succeeds);
        if rejoin {
            self.stats.groups_rejoined += 1;
        } else {
            self.stats.groups_created += 1;
        }
        Ok(())
    }

    fn host_join(&mut self, id: u64, g: u64, incarnation: u64) -> Check {
        let sn = self.nodes.get_mut(&id).expect("node");
        let Some(node) = sn.node.as_mut() else {
            return Ok(());
        };
        node.join_group(g, incarnation)
            .map_err(|e| format!("node {id} cannot join group {g}: {e}"))?;
        if let Some(disk) = &sn.disk {
            let b = creation_batch(node, g, incarnation, &[], Creation::Join);
            disk.write(&b)
                .map_err(|e| format!("node {id} WAL join {g}: {e}"))?;
        }
        let succeeds = node.succession(g);
        self.stats.successors += u64::from(succeeds.is_some());
        sn.durable.create(g, incarnation, succeeds);
        self.stats.groups_created += 1;
        Ok(())
    }

    /// Did node `id` lose its disk while hosting group `g`/`inc`?
    pub(super) fn lost_on(&self, id: u64, g: u64, inc: u64) -> bool {
        self.nodes
            .get(&id)
            .is_some_and(|n| n.lost.contains(&(g, inc)))
    }

    /// What node `id` has made durable (as the checker sees it).
    pub(super) fn durable_of(&self, id: u64) -> Option<&Durable> {
        self.nodes.get(&id).map(|n| &n.durable)
    }

    fn host_remove(&mut self, id: u64, g: u64) -> Check {
        let sn = self.nodes.get_mut(&id).expect("node");
        let Some(node) = sn.node.as_mut() else {
            return Ok(());
        };
        let Ok(removed) = node.remove_group(g) else {
            return Ok(());
        };
        self.checker
            .on_replica_deleted(id, sn.life, (g, removed.incarnation));
        if let Some(disk) = &sn.disk {
            disk.write(&removal_batch(g, &removed))
                .map_err(|e| format!("node {id} WAL remove {g}: {e}"))?;
            disk.forget_group(g);
            disk.upkeep(node)
                .map_err(|e| format!("node {id} storage upkeep: {e}"))?;
        }
        sn.durable.remove(g, &removed);
        self.stats.groups_removed += 1;
        Ok(())
    }

    /// The host of node `id` takes a snapshot of its replica of group `g`:
    /// its state machine as it is now (with `pad` bytes more, so that it
    /// travels in several chunks), made durable as the runtime does it (the
    /// file, then the compaction), where a power failure may strike at any
    /// step (with [`NodeFaults::torn_snapshot`]). Returns the snapshot's
    /// index, or None if there was nothing new to snapshot or the node
    /// crashed.
    pub fn snapshot(&mut self, id: u64, g: u64, pad: usize) -> Result<Option<u64>, String> {
        let life = self.life(id);
        let Some(node) = self.node(id) else {
            return Ok(None);
        };
        let Some(inc) = node.group_incarnation(g) else {
            return Ok(None);
        };
        let Some(st) = self.checker.state(id, life, (g, inc)) else {
            return Ok(None);
        };
        let Ok(meta) = node.snapshot_meta_at(g, st.index) else {
            return Ok(None); // not after the current snapshot
        };
        let data = st.encode(pad);
        let may_crash = self.up_count() > self.faults.min_up.max(1);
        let torn = may_crash && self.rng.chance(self.faults.torn_snapshot);
        let fail_at = self.rng.below(12);
        let sn = self.nodes.get_mut(&id).expect("node");
        if torn {
            sn.fs.fail_after(fail_at);
        }
        if let Some(disk) = &sn.disk {
            if disk.save_snapshot(g, inc, &meta, &data).is_err() {
                // Whether the file survives or not, the log and hard state
                // are as they were (recovery uses the file if it is whole).
                self.stats.snapshots_torn += 1;
                self.crash(id);
                return Ok(None);
            }
        }
        let node = sn.node.as_mut().expect("running");
        let (index, term) = node
            .take_snapshot(g, meta.clone(), data)
            .map_err(|e| format!("node {id} group {g}: snapshot at {}: {e}", meta.index))?;
        // As the durable model has it: the WAL caps the point at its end.
        let mut compacted = sn.durable.clone();
        let mut point = (index, term);
        if let Some((i, store)) = compacted.groups.get_mut(&g) {
            if *i == inc {
                let last = store.last_index();
                if index > last {
                    point = (last, store.term(last).unwrap_or(0));
                }
                store.set_snapshot(meta.clone());
                store.compact(point.0);
            }
        }
        if let Some(disk) = &sn.disk {
            match disk.record_compaction(node, g, inc, (index, term)) {
                Ok(Some(p)) if p != point => {
                    return Err(format!(
                        "node {id} group {g}: compaction recorded at {p:?}, the durable model says {point:?}"
                    ))
                }
                Ok(_) => {}
                Err(_) => {
                    sn.torn = vec![compacted];
                    self.stats.snapshots_torn += 1;
                    self.crash(id);
                    return Ok(None);
                }
            }
        }
        sn.fs.clear_fault();
        sn.durable = compacted;
        self.stats.snapshots += 1;
        Ok(Some(meta.index))
    }

    /// Propose a fresh payload to group `g` at whichever member leads its
    /// live incarnation. Returns the payload if a leader accepted it.
    pub fn propose(&mut self, g: u64) -> Option<Bytes> {
        let spec = self.groups.get(&g)?.clone();
        let leader = spec.members.iter().copied().find(|&id| {
            !self.is_paused(id)
                && self.node(id).is_some_and(|n| {
                    n.group_incarnation(g) == Some(spec.incarnation)
                        && n.group_status(g).is_ok_and(|s| s.role == Role::Leader)
                })
        })?;
        self.next_payload += 1;
        let mut payload = format!(
            "s{}-g{g}-i{}-p{}",
            self.cfg.seed, spec.incarnation, self.next_payload
        );
        // Some payloads are large, so that appends split at
        // `max_append_bytes` and a follower may match part of a batch.
        if self.rng.chance(0.2) {
            let pad = self.rng.below(2 * self.cfg.max_append_bytes) as usize;
            payload.push_str(&".".repeat(pad));
        }
        self.propose_at(leader, g, Bytes::from(payload))
    }

    /// Take a linearizable read of group `g` at whichever member leads its
    /// live incarnation; the checker then checks what it is served.
    /// Returns whether a leader took it.
    pub fn read(&mut self, g: u64) -> bool {
        let Some(spec) = self.groups.get(&g).cloned() else {
            return false;
        };
        // Any member that believes it leads, even a deposed one: those
        // are the reads that must fail rather than be served stale.
        let leaders: Vec<u64> = spec
            .members
            .iter()
            .copied()
            .filter(|&id| {
                !self.is_paused(id)
                    && self.node(id).is_some_and(|n| {
                        n.group_incarnation(g) == Some(spec.incarnation)
                            && n.group_status(g).is_ok_and(|s| s.role == Role::Leader)
                    })
            })
            .collect();
        let Some(&id) = leaders.get(self.rng.below(leaders.len().max(1) as u64) as usize) else {
            return false;
        };
        let life = self.nodes[&id].life;
        let node = self.node_mut(id).expect("up");
        match node.read_index(g) {
            Ok(rid) => {
                self.checker.on_read(id, life, rid, (g, spec.incarnation));
                true
            }
            Err(_) => {
                self.stats.reads_refused += 1;
                false
            }
        }
    }

    /// Ask whichever member leads group `g` to hand leadership to another
    /// member, picked at random. Returns whether a transfer started.
    pub fn transfer(&mut self, g: u64) -> bool {
        let Some(spec) = self.groups.get(&g).cloned() else {
            return false;
        };
        let leader = spec.members.iter().copied().find(|&id| {
            !self.is_paused(id)
                && self.node(id).is_some_and(|n| {
                    n.group_incarnation(g) == Some(spec.incarnation)
                        && n.group_status(g).is_ok_and(|s| s.role == Role::Leader)
                })
        });
        let Some(leader) = leader else {
            return false;
        };
        let others: Vec<u64> = spec
            .members
            .iter()
            .copied()
            .filter(|&m| m != leader)
            .collect();
        let Some(&to) = others.get(self.rng.below(others.len().max(1) as u64) as usize) else {
            return false;
        };
        match self.node_mut(leader).expect("up").transfer_leader(g, to) {
            Ok(()) => {
                self.stats.transfers += 1;
                true
            }
            Err(_) => {
                self.stats.transfers_refused += 1;
                false
            }
        }
    }

    /// Reads taken by running nodes that still have no outcome.
    pub fn reads_pending(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for id in self.ids() {
            if self.is_up(id) {
                for rid in self.checker.reads_pending(id, self.life(id)) {
                    out.push((id, rid));
                }
            }
        }
        out
    }

    fn propose_at(&mut self, id: u64, g: u64, payload: Bytes) -> Option<Bytes> {
        let life = self.nodes[&id].life;
        let node = self.node_mut(id)?;
        let inc = node.group_incarnation(g)?;
        match node.propose(g, payload.clone()) {
            Ok(pid) => {
                self.checker
                    .on_propose(id, life, pid, (g, inc), payload.clone());
                Some(payload)
            }
            Err(e) => {
                self.stats.proposals_refused += 1;
                if matches!(e, crate::multi::Error::Busy { .. }) {
                    self.stats.proposals_busy += 1;
                    // Refused: it must never be applied anywhere.
                    self.checker.on_refused(payload);
                }
                None
            }
        }
    }

    // -- time ----------------------------------------------------------------

    /// One simulated tick: a tick for every running node (as many as its
    /// rate gives), then the host operations that are due (between a node's
    /// tick and its next `ready`, as a host thread may), then every frame
    /// due is delivered and every node's work processed until the network is
    /// quiet for this instant.
    pub fn tick(&mut self) -> Check {
        self.now += 1;
        let t = self.cfg.timing.then(Instant::now);
        for id in self.ids() {
            if self.is_paused(id) || !self.is_up(id) {
                continue;
            }
            let sn = self.nodes.get_mut(&id).expect("node");
            sn.credit += sn.rate;
            while sn.credit >= 100 {
                sn.credit -= 100;
                if let Some(n) = sn.node.as_mut() {
                    n.tick();
                }
            }
        }
        if let Some(t) = t {
            self.phases.tick += t.elapsed();
        }
        self.run_ops(false)?;
        if !self.pending_adds.is_empty() {
            self.resolve_lost_adds();
        }
        self.settle()
    }

    /// Process every node's work and deliver every frame due now, until the
    /// network is quiet for this instant (no time passes).
    pub fn settle(&mut self) -> Check {
        for id in self.ids() {
            self.drain(id)?;
        }
        self.deliver()
    }

    /// Process every node's work without delivering anything: what they
    /// send stays in flight (see [`Net::frames`], [`decode`]).
    pub fn collect(&mut self) -> Check {
        for id in self.ids() {
            self.drain(id)?;
        }
        Ok(())
    }

    /// The messages in flight, decoded, in send order: (to, message).
    pub fn in_flight(&self) -> Vec<Envelope> {
        self.net
            .frames()
            .iter()
            .flat_map(|f| decode(&f.bytes))
            .collect()
    }

    /// Take the frames [`Net::hold_to`] set aside, decoded, in send order.
    pub fn take_held(&mut self) -> Vec<Envelope> {
        let mut held = std::mem::take(&mut self.net.held);
        held.sort_by_key(|f| f.seq);
        held.iter().flat_map(|f| decode(&f.bytes)).collect()
    }

    /// Make node `id`'s replica of group `g` campaign now.
    pub fn campaign(&mut self, id: u64, g: u64) -> Check {
        if let Some(n) = self.node_mut(id) {
            n.campaign(g)
                .map_err(|e| format!("node {id} cannot campaign for {g}: {e}"))?;
        }
        self.settle()
    }

    fn deliver(&mut self) -> Check {
        // Frames stepped in the last few rounds, named if the loop never ends.
        let mut last: Vec<String> = Vec::new();
        for round in 0.. {
            let now = self.now;
            if round == 100_000 {
                // Frames that keep causing frames within one instant: a
                // livelock between nodes. Say which.
                return Err(format!(
                    "the network never quiets at tick {now}; last frames stepped: {last:#?}"
                ));
            }
            let due = {
                let nodes = &self.nodes;
                self.net.take_due(
                    &mut self.rng,
                    now,
                    |id| nodes.get(&id).is_some_and(|n| n.node.is_some()),
                    |id| nodes.get(&id).is_some_and(|n| n.paused_until > now),
                )
            };
            if due.is_empty() {
                return Ok(());
            }
            if round >= 99_996 {
                last.extend(
                    due.iter()
                        .map(|f| format!("{}->{}: {:?}", f.from, f.to, decode(&f.bytes))),
                );
            }
            let mut touched = BTreeSet::new();
            // Host operations may land between a node's inputs and its
            // next `ready` (a broker thread deleting a queue while the node
            // thread steps frames).
            let ops_at = self.rng.below(due.len() as u64 + 1) as usize;
            // Timed as a whole: a clock read per frame would cost about as
            // much as stepping a heartbeat.
            let t = self.cfg.timing.then(Instant::now);
            for (i, f) in due.into_iter().enumerate() {
                if i == ops_at {
                    self.run_ops(true)?;
                }
                self.step(f.to, f.from, f.bytes)?;
                touched.insert(f.to);
            }
            if let Some(t) = t {
                self.phases.step += t.elapsed();
            }
            self.run_ops(true)?;
            for id in touched {
                self.drain(id)?;
            }
        }
        unreachable!("the loop returns")
    }

    fn step(&mut self, id: u64, from: u64, bytes: Bytes) -> Check {
        let Some(n) = self.node_mut(id) else {
            return Ok(());
        };
        step_frame(n, DEFAULT_MAX_FRAME_BYTES, Some(from), bytes)
            .map_err(|e| format!("node {id} refused a well-formed frame: {e}"))
    }

    /// Process every ready of node `id`: persist (which may tear and crash
    /// the node), check what leaves, let inputs in between, send, deliver
    /// events to the checker, advance.
    pub fn drain(&mut self, id: u64) -> Check {
        if !self.cfg.check {
            return self.drain_unchecked(id);
        }
        // Each turn of the loop runs a pass or returns.
        for passes in 0..10_000 {
            let may_crash = self.up_count() > self.faults.min_up.max(1);
            let torn = may_crash && self.rng.chance(self.faults.torn_write);
            let between = self.rng.chance(self.faults.input_between);
            let crash_at = if may_crash && self.rng.chance(self.faults.crash_in_loop) {
                1 + self.rng.below(2)
            } else {
                0
            };
            let sn = self.nodes.get_mut(&id).expect("node");
            if sn.paused_until > self.now {
                return Ok(());
            }
            let Some(node) = sn.node.as_mut() else {
                return Ok(());
            };
            // As the runtime's drive loop: upkeep between every two passes.
            if let Some(disk) = &sn.disk {
                disk.upkeep(node)
                    .map_err(|e| format!("node {id} storage upkeep: {e}"))?;
            }
            if !node.has_ready() {
                // After a pass, with no work left: every group's key
                // metrics, which readers on other threads see, are its
                // state (`multi/key_metrics.rs`).
                if passes > 0 {
                    if let Some(stale) = node.key_metrics_stale() {
                        return Err(format!("node {id}: {stale}"));
                    }
                }
                if let Some(group) = node.unlisted_work() {
                    return Err(format!(
                        "node {id}: group {group} has work for a pass but is not listed"
                    ));
                }
                return Ok(());
            }
            let rd = node.ready();
            // 0. As the runtime's drive loop: a leader's appends leave
            // before its own write (a crash in the write below leaves them
            // on the network, with entries the leader's disk never got).
            if !rd.early.is_empty() {
                let early = encode(node, &rd.early);
                let node_ref = sn.node.as_ref().expect("running");
                self.checker.on_send(id, &rd.early, &sn.durable, |g| {
                    node_ref.group_incarnation(g)
                })?;
                for f in early {
                    self.net.send(&mut self.rng, self.now, id, f.to, f.bytes);
                }
            }
            let sn = self.nodes.get_mut(&id).expect("node");
            let life = sn.life;
            // 1. Durable first: the files of the snapshots it installs,
            // then one WAL batch, appended, then synced (as the runtime's
            // pass, in steps so that the model knows which completed).
            // Between append and sync, the events that depend on nothing
            // the batch holds reach the host, as in the runtime: a crash
            // in the sync then leaves acknowledgements behind, which must
            // hold on what was durable before.
            let batch = wal_batch(&rd);
            let installs = rd.groups.iter().any(|gr| gr.ready.snapshot.is_some());
            let early = |checker: &mut Checker, sn: &SimNode| {
                let node = sn.node.as_ref().expect("running");
                checker
                    .on_early_events(id, life, &rd, &sn.durable, |g, i| node_log_term(node, g, i))
            };
            if sn.disk.is_none() || (batch.is_empty() && !installs) {
                early(&mut self.checker, sn)?; // nothing to append
            }
            if let Some(disk) = &sn.disk {
                if !batch.is_empty() || installs {
                    if torn {
                        sn.fs.fail_next_sync();
                    }
                    let saved = disk.save_received_snapshots(&rd);
                    let appended = saved.is_ok() && disk.write_unsynced(batch).is_ok();
                    if appended {
                        early(&mut self.checker, sn)?;
                    }
                    let written = appended && disk.sync().is_ok();
                    if !written {
                        // The power failed during the write: the node is
                        // gone, with whatever part of it reached the disk.
                        // A snapshot file that is whole makes recovery
                        // complete its install, batch or no batch.
                        let mut whole = sn.durable.clone();
                        whole.persist(&rd);
                        let mut installed = sn.durable.clone();
                        installed.install(&rd);
                        if saved.is_ok() {
                            sn.durable = installed;
                            sn.torn = vec![whole];
                        } else {
                            sn.torn = vec![installed];
                        }
                        self.stats.torn_writes += 1;
                        self.crash(id);
                        return Ok(());
                    }
                }
            }
            sn.durable.persist(&rd);
            let node = sn.node.as_ref().expect("running");
            self.checker.on_persisted(id, &rd, &sn.durable)?;
            // 2. What leaves must be backed by what is durable.
            self.checker
                .on_send(id, &rd.messages, &sn.durable, |g| node.group_incarnation(g))?;
            // 3. What it applied and reported.
            self.checker
                .on_ready(id, life, &rd, |g, i| node_log_term(node, g, i))?;
            if self.cfg.record_events {
                self.events
                    .entry(id)
                    .or_default()
                    .extend(rd.events.iter().cloned());
            }
            let groups: Vec<u64> = rd.groups.iter().map(|gr| gr.group_id).collect();
            self.after_ready_membership(id, &rd.events, &groups)?;
            if between {
                self.stats.inputs_between += 1;
                self.inputs_between(id)?;
            }
            if crash_at == 1 {
                self.stats.crashes_in_loop += 1;
                self.crash(id);
                return Ok(());
            }
            let frames: Vec<_> = match self.node_mut(id) {
                Some(n) => encode(n, &rd.messages),
                None => Vec::new(),
            };
            for f in frames {
                self.net.send(&mut self.rng, self.now, id, f.to, f.bytes);
            }
            if crash_at == 2 {
                self.stats.crashes_in_loop += 1;
                self.crash(id);
                return Ok(());
            }
            if let Some(n) = self.node_mut(id) {
                n.advance(rd);
                // The backpressure gauges, kept by hand, against a recount.
                let (pending, unsynced) = n.pressure_recounted();
                let s = n.stats();
                if (s.pending_proposals, s.unsynced_bytes) != (pending, unsynced) {
                    return Err(format!(
                        "node {id}: backpressure gauges say {} proposals in flight and {} bytes not yet durable; the groups hold {pending} and {unsynced}",
                        s.pending_proposals, s.unsynced_bytes
                    ));
                }
            }
        }
        Err(format!("node {id} never runs out of work"))
    }

    /// `drain` without the checker, the shadow disk or fault injection: the
    /// host loop alone, as the benchmarks measure it.
    fn drain_unchecked(&mut self, id: u64) -> Check {
        let timing = self.cfg.timing;
        let sn = self.nodes.get_mut(&id).expect("node");
        if sn.paused_until > self.now {
            return Ok(());
        }
        let Some(node) = sn.node.as_mut() else {
            return Ok(());
        };
        for _ in 0..10_000 {
            let t = timing.then(Instant::now);
            let has_ready = node.has_ready();
            if let Some(t) = t {
                self.phases.has_ready += t.elapsed();
            }
            if !has_ready {
                return Ok(());
            }
            let t = timing.then(Instant::now);
            let rd = node.ready();
            let t = t.map(|t| {
                let now = Instant::now();
                self.phases.ready += now - t;
                now
            });
            if let Some(disk) = &sn.disk {
                disk.persist_unsynced(&rd)
                    .and_then(|()| disk.sync())
                    .map_err(|e| format!("node {id} storage write: {e}"))?;
            }
            if self.cfg.record_events {
                self.events
                    .entry(id)
                    .or_default()
                    .extend(rd.events.iter().cloned());
            }
            for f in encode(node, &rd.early)
                .into_iter()
                .chain(encode(node, &rd.messages))
            {
                self.net.send(&mut self.rng, self.now, id, f.to, f.bytes);
            }
            let t = t.map(|t| {
                let now = Instant::now();
                self.phases.send += now - t;
                now
            });
            node.advance(rd);
            if let Some(t) = t {
                self.phases.advance += t.elapsed();
            }
        }
        Err(format!("node {id} never runs out of work"))
    }

    /// Inputs that reach a node while its `NodeReady` is being persisted and
    /// sent: frames due for it, a proposal, or a tick.
    fn inputs_between(&mut self, id: u64) -> Check {
        match self.rng.below(3) {
            0 => {
                let frames = self.net.take_due_for(self.now, id, 3);
                for f in frames {
                    self.step(id, f.from, f.bytes)?;
                }
            }
            1 => {
                let gs: Vec<u64> = self.groups.keys().copied().collect();
                if let Some(&g) = gs.get(self.rng.below(gs.len() as u64) as usize) {
                    self.next_payload += 1;
                    let payload =
                        Bytes::from(format!("s{}-g{g}-b{}", self.cfg.seed, self.next_payload));
                    let _ = self.propose_at(id, g, payload);
                }
            }
            _ => {
                if let Some(n) = self.node_mut(id) {
                    n.tick();
                }
            }
        }
        Ok(())
    }

    // -- the end -------------------------------------------------------------

    /// Heal the network, restart every crashed node and unpause every node.
    pub fn heal(&mut self) -> Check {
        self.net.heal();
        for id in self.ids() {
            self.nodes.get_mut(&id).expect("node").paused_until = 0;
            self.set_tick_rate(id, 100);
            self.restart(id)?;
        }
        // Host operations still queued take effect now.
        for op in self.ops.iter_mut() {
            op.at = op.at.min(self.now);
        }
        self.run_ops(false)?;
        self.run_ops(true)
    }

    /// Is every group led, with every replica applied up to its leader's
    /// commit and every acknowledged proposal applied everywhere?
    pub fn settled(&self) -> Check {
        for (&g, spec) in &self.groups {
            let key = (g, spec.incarnation);
            let mut leaders = Vec::new();
            for &id in &spec.members {
                let n = self.node(id).ok_or(format!("node {id} is down"))?;
                if n.group_incarnation(g) != Some(spec.incarnation) {
                    return Err(format!(
                        "node {id} does not host group {g}/{}",
                        spec.incarnation
                    ));
                }
                if n.group_status(g).is_ok_and(|s| s.role == Role::Leader) {
                    leaders.push(id);
                }
            }
            let &[leader] = leaders.as_slice() else {
                let views: Vec<String> = self
                    .ids()
                    .into_iter()
                    .filter_map(|id| {
                        let n = self.node(id)?;
                        let s = n.group_status(g).ok()?;
                        Some(format!(
                            "node {id}: {:?} term {} leader {} commit {} last {}, members {:?}",
                            s.role,
                            s.term,
                            s.leader,
                            s.commit,
                            s.last_index,
                            n.members(g)
                                .ok()?
                                .iter()
                                .map(|m| (m.node_id, m.role))
                                .collect::<Vec<_>>()
                        ))
                    })
                    .collect();
                return Err(format!(
                    "group {g} has leaders {leaders:?} (hosts {:?})\n  {}",
                    spec.members,
                    views.join("\n  ")
                ));
            };
            let commit = self
                .node(leader)
                .and_then(|n| n.group_status(g).ok())
                .map_or(0, |s| s.commit);
            for &id in &spec.members {
                let life = self.life(id);
                let applied = self.checker.applied_index(id, life, key);
                if applied < commit {
                    let st = |n: u64| self.node(n).and_then(|x| x.group_status(g).ok());
                    return Err(format!(
                        "group {g} node {id} applied {applied} of {commit}\n  node {id}: {:?}\n  leader {leader}: {:?}\n  leader's progress of {id}: {:?}",
                        st(id),
                        st(leader),
                        self.node(leader).and_then(|n| n.describe_progress(g, id))
                    ));
                }
            }
            // Every acknowledged proposal is in every replica's state: it
            // applied past its index (by entries or by a snapshot, and the
            // checker compares the states at each index).
            for (payload, index) in self.checker.acked_of(key) {
                for &id in &spec.members {
                    if self.checker.applied_index(id, self.life(id), key) < index {
                        return Err(format!(
                            "acknowledged proposal {payload:?} ({g}#{index}) not applied on node {id}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Proposals accepted by running nodes that still have no outcome.
    pub fn undecided(&self) -> Vec<(u64, u64, Bytes)> {
        let mut out = Vec::new();
        for id in self.ids() {
            if self.is_up(id) {
                for (pid, payload) in self.checker.undecided(id, self.life(id)) {
                    out.push((id, pid, payload));
                }
            }
        }
        out
    }

    /// Elections started by every node in every life.
    pub fn elections(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| n.elections + n.node.as_ref().map_or(0, |n| n.stats().elections_started))
            .sum()
    }

    /// Transfers the nodes' leader balancers started, over all their lives.
    pub fn balance_transfers(&self) -> u64 {
        self.nodes
            .values()
            .map(|sn| {
                sn.balance_transfers + sn.node.as_ref().map_or(0, |n| n.stats().balance_transfers)
            })
            .sum()
    }

    /// Snapshots installed from a leader, by every node in every life.
    pub fn installs(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| n.installs + n.node.as_ref().map_or(0, |n| n.stats().snapshots_installed))
            .sum()
    }

    /// Frames and rows dropped for belonging to another incarnation, all
    /// nodes and lives.
    pub fn stale_drops(&self) -> u64 {
        self.stats.stale_incarnation_drops
            + self
                .nodes
                .values()
                .filter_map(|n| n.node.as_ref())
                .map(|n| n.stats().incarnation_mismatches + n.stats().batches_dropped_incarnation)
                .sum::<u64>()
    }
}

/// Decode a frame the cluster's nodes sent (a test inspecting the
/// network): its envelope, or one envelope per group message of a frame
/// that packs several ([`Body::Groups`](crate::multi::Body::Groups)).
pub fn decode(bytes: &Bytes) -> Vec<Envelope> {
    let env = crate::wire::decode_frame(bytes, usize::MAX)
        .expect("the nodes send well-formed frames")
        .envelope;
    match env.body {
        crate::multi::Body::Groups(msgs) => msgs
            .into_iter()
            .map(|m| Envelope {
                from: env.from,
                to: env.to,
                body: crate::multi::Body::Group {
                    group_id: m.group_id,
                    incarnation: m.incarnation,
                    msg: m.msg,
                },
            })
            .collect(),
        body => vec![Envelope { body, ..env }],
    }
}

fn same_store(a: &MemStore, b: &MemStore) -> bool {
    a.hard_state() == b.hard_state()
        && a.first_index() == b.first_index()
        && a.last_index() == b.last_index()
        && a.entries(a.first_index(), a.last_index() + 1, u64::MAX)
            .ok()
            == b.entries(b.first_index(), b.last_index() + 1, u64::MAX)
                .ok()
}

fn same_durable(a: &Durable, b: &Durable) -> bool {
    a.floors == b.floors
        && a.tombstones == b.tombstones
        && a.groups.len() == b.groups.len()
        && a.groups.iter().all(|(g, (inc, s))| {
            b.groups
                .get(g)
                .is_some_and(|(i, t)| i == inc && same_store(s, t))
        })
}

fn describe_durable(d: &Durable) -> String {
    let mut v: Vec<String> = d
        .groups
        .iter()
        .map(|(g, (inc, s))| format!("{g}/{inc}: last {} {:?}", s.last_index(), s.hard_state()))
        .collect();
    v.sort();
    format!(
        "{}; floors {:?}; tombstones {:?}",
        v.join(", "),
        d.floors,
        d.tombstones
    )
}

/// The term of entry `i` in `node`'s log of group `g`, as the checker's
/// leader completeness reads it: `Err(first)` for an index the log no
/// longer holds, `first` being the first index it still holds.
fn node_log_term(node: &Node, g: u64, i: u64) -> Result<Option<u64>, u64> {
    match node.log_term(g, i) {
        Some(t) => Ok(Some(t)),
        None => match node.group_status(g) {
            Ok(s) if i < s.first_index => Err(s.first_index),
            _ => Ok(None),
        },
    }
}
