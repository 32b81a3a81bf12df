//! Writes the fuzz targets' seed corpus (`fuzz/seeds/`) from real traffic:
//! three nodes of cluster 7 in one process, host-driven through the
//! runtime (what `muxraft_tick` and `muxraft_step` wrap), hosting groups 1
//! to 3, electing leaders, committing proposals; node 1 with a write-ahead
//! log in small segments, a snapshot and a restart. What node 1 received
//! becomes the seeds of `node_step` (in that target's input format, see
//! `fuzz/fuzz_targets/node_step.rs`); the frames of each kind those of
//! `frame_decode` and (heartbeat batches, their answers and group
//! messages, without the length prefix) `batch_decode`; node 1's segment files those of
//! `wal_recovery`; hellos, refusals and proofs those of `handshake`.
//!
//!     cargo run --example fuzz_seeds -- fuzz/seeds
//!
//! The output is the same every run except the WAL segments (their salts
//! are random).

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use muxraft::multi::{Body, Event, NodeConfig};
use muxraft::runtime::{Host, Runtime, RuntimeConfig};
use muxraft::transport::handshake::{proof_head, Hello, RefuseReason};
use muxraft::wire::{decode_frame, FRAME_HEADER_LEN};

const CLUSTER: u64 = 7;
const GROUPS: u64 = 3;

/// What a node sent and what it applied.
#[derive(Default)]
struct Outbox {
    frames: Mutex<VecDeque<(u64, Vec<u8>)>>,
    applied: Mutex<BTreeMap<u64, u64>>,
}

struct Collect(Arc<Outbox>);

impl Host for Collect {
    fn send(&self, to: u64, frame: &[u8], _liveness: bool) {
        self.0
            .frames
            .lock()
            .unwrap()
            .push_back((to, frame.to_vec()));
    }
    fn event(&self, ev: &Event) {
        if let Event::Applied {
            group_id, index, ..
        } = ev
        {
            self.0.applied.lock().unwrap().insert(*group_id, *index);
        }
    }
}

/// Inputs of the `node_step` target (see its documentation): the
/// operations, each encoded, in order.
#[derive(Default)]
struct Script(Vec<Vec<u8>>);

impl Script {
    fn tick(&mut self) {
        self.0.push(vec![0]);
    }
    fn step(&mut self, from: u64, frame: &[u8]) {
        let who = match from {
            2 => 0u8,
            3 => 1,
            _ => unreachable!("node 1 hears from 2 and 3"),
        };
        let mut op = vec![2 | (who << 2)];
        op.extend_from_slice(&u16::try_from(frame.len()).unwrap().to_be_bytes());
        op.extend_from_slice(frame);
        self.0.push(op);
    }
    /// The operations cut into inputs of at most 2 KiB (short inputs run
    /// faster; a fresh node follows a leader from any point on), `max` of
    /// them spread over the script.
    fn inputs(&self, max: usize) -> Vec<Vec<u8>> {
        let mut all = vec![Vec::new()];
        for op in &self.0 {
            if all.last().unwrap().len() + op.len() > 2048 {
                all.push(Vec::new());
            }
            all.last_mut().unwrap().extend_from_slice(op);
        }
        let step = all.len().div_ceil(max);
        all.into_iter().step_by(step.max(1)).collect()
    }
}

struct Cluster {
    nodes: BTreeMap<u64, (Runtime, Arc<Outbox>)>,
    /// Frames node 1 received, by kind: a few of each.
    kinds: BTreeMap<&'static str, Vec<Vec<u8>>>,
    script: Script,
}

fn kind(frame: &[u8]) -> &'static str {
    match decode_frame(frame, usize::MAX).map(|f| f.envelope.body) {
        Ok(Body::Group { .. }) => "group",
        Ok(Body::Groups(_)) => "groups",
        Ok(Body::HeartbeatBatch(_)) => "batch",
        Ok(Body::HeartbeatBatchResponse(_)) => "batch-response",
        Ok(Body::SnapshotChunk(_)) => "snapshot-chunk",
        Ok(Body::SnapshotAck(_)) => "snapshot-ack",
        Err(e) => panic!("a node sent a frame that does not decode: {e}"),
    }
}

impl Cluster {
    fn node(id: u64, data_dir: Option<&Path>) -> (Runtime, Arc<Outbox>) {
        let mut cfg = NodeConfig::new(id);
        cfg.cluster_id = CLUSTER;
        let mut rc = RuntimeConfig::new(cfg);
        rc.data_dir = data_dir.map(Path::to_path_buf);
        rc.wal_segment_bytes = 4096;
        let outbox = Arc::new(Outbox::default());
        let rt = Runtime::new(rc, Arc::new(Collect(outbox.clone()))).expect("a node");
        (rt, outbox)
    }

    fn new(wal: &Path) -> Cluster {
        let mut nodes = BTreeMap::new();
        for id in 1..=3 {
            let node = Cluster::node(id, (id == 1).then_some(wal));
            for g in 1..=GROUPS {
                node.0.create_group(g, 1, &[1, 2, 3]).expect("a group");
            }
            nodes.insert(id, node);
        }
        Cluster {
            nodes,
            kinds: BTreeMap::new(),
            script: Script::default(),
        }
    }

    /// Frames flow until none is left.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for from in 1..=3 {
                let out = self.nodes[&from].1.clone();
                let frames: Vec<_> = out.frames.lock().unwrap().drain(..).collect();
                for (to, frame) in frames {
                    moved = true;
                    if to == 1 {
                        self.script.step(from, &frame);
                        // Up to 6 of each kind, of different lengths.
                        let seen = self.kinds.entry(kind(&frame)).or_default();
                        if seen.len() < 6 && seen.iter().all(|f| f.len() != frame.len()) {
                            seen.push(frame.clone());
                        }
                    }
                    let _ = self.nodes[&to].0.step(from, &frame);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn tick(&mut self) {
        for (id, (rt, _)) in &self.nodes {
            if *id == 1 {
                self.script.tick();
            }
            rt.tick().expect("tick");
        }
        self.settle();
    }

    fn propose(&mut self, n: u64) {
        for g in 1..=GROUPS {
            for (rt, _) in self.nodes.values() {
                let _ = rt.propose(g, Bytes::from(format!("entry {n} of group {g}")));
            }
        }
        self.settle();
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

/// Node 1's segment files, concatenated behind a `wal_recovery` control
/// byte.
fn wal_seed(wal: &Path, control: u8) -> Vec<u8> {
    let mut names: Vec<PathBuf> = fs::read_dir(wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    names.sort();
    let mut seed = vec![control];
    for p in names {
        seed.extend_from_slice(&fs::read(p).unwrap());
    }
    seed
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/seeds".into()),
    );
    let wal = std::env::temp_dir().join(format!("muxraft-fuzz-seeds-{}", std::process::id()));
    let _ = fs::remove_dir_all(&wal);

    let mut c = Cluster::new(&wal);
    // Elections: node 1 hears votes and heartbeats.
    for _ in 0..40 {
        c.tick();
    }
    let election = std::mem::take(&mut c.script);
    // Proposals: appends, their answers, commits.
    for n in 0..20 {
        c.propose(n);
        c.tick();
    }
    let replication = std::mem::take(&mut c.script);
    // A snapshot on node 1 (the WAL records the compaction), then quiet.
    let applied = c.nodes[&1].1.applied.lock().unwrap().clone();
    for (g, index) in applied {
        c.nodes[&1]
            .0
            .snapshot(g, index, Bytes::from(format!("state of {g} at {index}")))
            .expect("a snapshot");
    }
    for _ in 0..60 {
        c.tick();
    }
    let quiet = std::mem::take(&mut c.script);
    let wal_before_restart = wal_seed(&wal, 0);

    // Node 1 restarts from its WAL and catches up.
    drop(c.nodes.remove(&1));
    c.nodes.insert(1, Cluster::node(1, Some(&wal)));
    for n in 100..105 {
        c.propose(n);
        c.tick();
    }
    for _ in 0..20 {
        c.tick();
    }
    let wal_after_restart = wal_seed(&wal, 0);
    let wal_after_restart_fixed = wal_seed(&wal, 3);

    // Node 1 leaves group 1 and is added back (a Remove record with a
    // tombstone, then a Create record that takes it), leaves group 2 for
    // good (its tombstone stays), and writes on until a new segment
    // starts with the tombstones kept.
    let n1 = &c.nodes[&1].0;
    n1.remove_group(1).expect("removed");
    n1.remove_group(2).expect("removed");
    n1.join_group(1, 1).expect("joined again");
    for n in 200..210 {
        c.propose(n);
        c.tick();
    }

    let node_step = out.join("node_step");
    for (phase, script) in [
        ("election", &election),
        ("replication", &replication),
        ("quiet", &quiet),
    ] {
        for (i, input) in script.inputs(3).iter().enumerate() {
            write(&node_step, &format!("{phase}-{i}"), input);
        }
    }

    let frame_decode = out.join("frame_decode");
    let batch_decode = out.join("batch_decode");
    let mut stream = Vec::new();
    for (kind, frames) in &c.kinds {
        for (i, frame) in frames.iter().enumerate() {
            write(&frame_decode, &format!("{kind}-{i}"), frame);
            if kind.starts_with("batch") || kind.starts_with("group") {
                write(
                    &batch_decode,
                    &format!("{kind}-{i}"),
                    &frame[FRAME_HEADER_LEN..],
                );
            }
            stream.extend_from_slice(frame);
        }
    }
    write(&frame_decode, "stream", &stream);

    let wal_recovery = out.join("wal_recovery");
    write(&wal_recovery, "before-restart", &wal_before_restart);
    write(&wal_recovery, "after-restart", &wal_after_restart);
    // The same with the CRCs fixed by the target and files named by their
    // headers.
    write(
        &wal_recovery,
        "after-restart-fixed",
        &wal_after_restart_fixed,
    );
    write(&wal_recovery, "tombstones", &wal_seed(&wal, 0));
    write(&wal_recovery, "tombstones-fixed", &wal_seed(&wal, 3));

    // Handshakes: node 5 of cluster 0xC1 (see the target), modes
    // accept/dial x without/with a secret.
    let handshake = out.join("handshake");
    let hello = |id| Hello::new(0xC1, id).encode();
    let auth = |id| Hello::new(0xC1, id).authenticating().encode();
    let mut seeds: Vec<(&str, u8, Vec<u8>)> = vec![
        ("accept-hello", 0, hello(3).to_vec()),
        ("accept-wrong-direction", 0, hello(7).to_vec()),
        ("dial-hello", 2, hello(7).to_vec()),
        (
            "dial-refusal",
            2,
            RefuseReason::UnknownNode.encode().to_vec(),
        ),
    ];
    let mut with_proof = auth(3).to_vec();
    with_proof.extend_from_slice(&[0x5a; 32]);
    with_proof.extend_from_slice(&proof_head());
    with_proof.extend_from_slice(&[0xa5; 32]);
    seeds.push(("accept-secret", 1, with_proof));
    let mut answer = auth(7).to_vec();
    answer.extend_from_slice(&[0x5a; 32]);
    answer.extend_from_slice(&[0xa5; 32]);
    seeds.push(("dial-secret", 3, answer));
    for (name, mode, bytes) in seeds {
        let mut seed = vec![mode];
        seed.extend_from_slice(&bytes);
        write(&handshake, name, &seed);
    }

    let _ = fs::remove_dir_all(&wal);
    println!("seeds written under {}", out.display());
}
