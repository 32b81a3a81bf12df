//! A three-node cluster hosting 300 groups, all in one process, with frames
//! carried by an in-memory queue. Shows leaders being elected, entries being
//! replicated, and what heartbeat batching saves. It uses the sans-I/O Rust
//! API directly: `multi::Node` takes and hands out typed messages, and
//! `wire` turns them into the bytes a real transport would carry.
//!
//!     cargo run --release --example local_cluster

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use muxraft::multi::{Event, FrameKind, Node, NodeConfig};
use muxraft::raft::Role;
use muxraft::wire::{decode_frame_bytes, encode_frame, DEFAULT_MAX_FRAME_BYTES};

const CLUSTER_ID: u64 = 7;

const NODES: u64 = 3;
const GROUPS: u64 = 300;

struct Cluster {
    nodes: BTreeMap<u64, Node>,
    wire: VecDeque<(u64, Bytes)>,
    applied: BTreeMap<(u64, u64), Vec<u64>>,
    committed: u64,
}

impl Cluster {
    fn new(batch: bool) -> Cluster {
        let mut nodes = BTreeMap::new();
        for id in 1..=NODES {
            let mut cfg = NodeConfig::new(id);
            cfg.cluster_id = CLUSTER_ID;
            cfg.batch_heartbeats = batch;
            let mut node = Node::new(cfg).expect("config");
            for g in 1..=GROUPS {
                node.create_group(g, 1, &[1, 2, 3]).expect("group");
            }
            nodes.insert(id, node);
        }
        Cluster {
            nodes,
            wire: VecDeque::new(),
            applied: BTreeMap::new(),
            committed: 0,
        }
    }

    /// One tick: every node ticks, then frames flow until the cluster is quiet.
    fn tick(&mut self) {
        for n in self.nodes.values_mut() {
            n.tick();
        }
        self.settle();
    }

    fn settle(&mut self) {
        loop {
            for (&id, n) in self.nodes.iter_mut() {
                while n.has_ready() {
                    let rd = n.ready();
                    // In memory: nothing to persist. Send, then deliver events.
                    self.wire.extend(
                        rd.messages
                            .iter()
                            .map(|m| (m.to, encode_frame(CLUSTER_ID, m))),
                    );
                    for ev in &rd.events {
                        match ev {
                            Event::Applied {
                                group_id, index, ..
                            } => self
                                .applied
                                .entry((id, *group_id))
                                .or_default()
                                .push(*index),
                            Event::ProposalDone { result: Ok(_), .. } => self.committed += 1,
                            _ => {}
                        }
                    }
                    n.advance(rd);
                }
            }
            let Some((to, frame)) = self.wire.pop_front() else {
                return;
            };
            if let Some(n) = self.nodes.get_mut(&to) {
                let f = decode_frame_bytes(frame, DEFAULT_MAX_FRAME_BYTES).expect("a frame");
                assert_eq!(f.cluster_id, CLUSTER_ID);
                n.step(f.envelope).expect("frame from a peer");
            }
        }
    }

    fn leaders(&self) -> BTreeMap<u64, u64> {
        let mut per_node = BTreeMap::new();
        for (&id, n) in &self.nodes {
            let led = n
                .group_ids()
                .filter(|&g| {
                    n.group_status(g)
                        .map(|s| s.role == Role::Leader)
                        .unwrap_or(false)
                })
                .count() as u64;
            per_node.insert(id, led);
        }
        per_node
    }

    fn heartbeat_frames(&self) -> (u64, u64) {
        let mut frames = 0;
        let mut carried = 0;
        for n in self.nodes.values() {
            frames += n.stats().heartbeat_traffic_sent().messages;
            carried += n.stats().group_heartbeats_batched;
        }
        (frames, carried)
    }
}

fn run(batch: bool) -> (u64, u64, u64) {
    let mut c = Cluster::new(batch);
    let mut ticks = 0;
    while c.leaders().values().sum::<u64>() < GROUPS {
        c.tick();
        ticks += 1;
        assert!(ticks < 200, "leaders not elected");
    }
    if batch {
        println!("after {ticks} ticks every group has a leader:");
        for (id, led) in c.leaders() {
            println!("  node {id} leads {led:>3} groups");
        }
    }
    // Each leader replicates 10 entries.
    for round in 0..10 {
        for (&_, n) in c.nodes.iter_mut() {
            let groups: Vec<u64> = n.group_ids().collect();
            for g in groups {
                if n.group_status(g).unwrap().role == Role::Leader {
                    n.propose(g, Bytes::from(format!("msg {round} for queue {g}")))
                        .expect("propose");
                }
            }
        }
        c.tick();
    }
    for _ in 0..4 {
        c.tick();
    }
    if batch {
        let complete = c.applied.values().filter(|v| v.len() == 10).count();
        println!(
            "{} proposals committed; {complete} of {} replicas applied all 10 entries, in order: {}",
            c.committed,
            GROUPS * NODES,
            c.applied.values().all(|v| v.windows(2).all(|w| w[0] < w[1]))
        );
    }
    // Idle for 50 heartbeat intervals and count liveness traffic.
    let (f0, c0) = c.heartbeat_frames();
    for _ in 0..100 {
        c.tick();
    }
    let (f1, c1) = c.heartbeat_frames();
    let elections: u64 = c.nodes.values().map(|n| n.stats().elections_started).sum();
    let _ = FrameKind::HeartbeatBatch;
    ((f1 - f0) / 50, (c1 - c0) / 50, elections)
}

fn main() {
    println!("muxraft demo: {NODES} nodes, {GROUPS} groups of 3 replicas, in one process\n");
    let (batched, carried, e1) = run(true);
    let (naive, _, e2) = run(false);
    println!("\nidle heartbeat traffic per 100 ms interval (heartbeats + answers):");
    println!("  batched: {batched:>5} frames, carrying {carried} group heartbeats");
    println!("  naive:   {naive:>5} frames");
    println!(
        "  reduction: {:.0}x (elections: batched {e1}, naive {e2})",
        naive as f64 / batched as f64
    );
}
