//! Compact heartbeat rows end to end, on the testkit's cluster (every frame
//! encoded and decoded): an awake group whose term and commit do not move
//! costs about a byte per row each way, and a follower that cannot read a
//! compact row gets a full one.

use super::*;
use crate::raft::Role;
use crate::testkit::{Cluster, ClusterConfig, GroupSpec};

const GROUPS: u64 = 200;

/// 3 nodes, `GROUPS` awake groups (no quiescence) led by node 1.
fn awake() -> Cluster {
    let mut cfg = ClusterConfig::new(3, 5);
    cfg.wal = false;
    cfg.quiesce = false;
    let mut c = Cluster::new(cfg);
    for g in 1..=GROUPS {
        let spec = GroupSpec {
            incarnation: 1,
            members: vec![1, 2, 3],
            ..Default::default()
        };
        c.create_group(g, spec, 0).unwrap();
        c.campaign(1, g).unwrap();
    }
    for _ in 0..10 {
        c.tick().unwrap();
    }
    c
}

fn sum(c: &Cluster, f: impl Fn(&Stats) -> u64) -> u64 {
    c.ids()
        .iter()
        .map(|&id| f(c.node(id).unwrap().stats()))
        .sum()
}

// Mutation: never compacting (or compacting rows whose values moved, which
// the checker's leadership check and the commit assertions catch) fails it.
#[test]
fn unchanged_awake_groups_cost_about_a_byte_per_row_each_way() {
    let mut c = awake();
    let bytes = |c: &Cluster, k: FrameKind| sum(c, |s| s.sent_of(k).bytes);
    let (b0, r0) = (
        bytes(&c, FrameKind::HeartbeatBatch),
        bytes(&c, FrameKind::HeartbeatBatchResponse),
    );
    let rows0 = sum(&c, |s| s.group_heartbeats_batched);
    let compact0 = sum(&c, |s| s.compact_rows_sent);
    for _ in 0..20 {
        c.tick().unwrap();
    }
    let rows = sum(&c, |s| s.group_heartbeats_batched) - rows0;
    assert_eq!(
        rows,
        10 * GROUPS * 2,
        "a row per group per follower per interval"
    );
    assert_eq!(
        sum(&c, |s| s.compact_rows_sent) - compact0,
        rows,
        "all compact"
    );
    let per_row = |b: u64| b as f64 / rows as f64;
    let (batch, answer) = (
        per_row(bytes(&c, FrameKind::HeartbeatBatch) - b0),
        per_row(bytes(&c, FrameKind::HeartbeatBatchResponse) - r0),
    );
    assert!(batch <= 2.0, "{batch:.2} bytes per row in the batches");
    assert!(answer <= 2.0, "{answer:.2} bytes per row in the answers");
    // A commit that moves goes full to every follower, and gets there.
    c.propose(7).unwrap();
    for _ in 0..6 {
        c.tick().unwrap();
    }
    let leader = c.node(1).unwrap().group_status(7).unwrap();
    for id in [2, 3] {
        assert_eq!(
            c.node(id).unwrap().group_status(7).unwrap().commit,
            leader.commit
        );
    }
}

// Mutation: a follower reading a compact row while it does not follow the
// sender (it campaigns) would take the sender as leader of its own term.
#[test]
fn a_follower_that_does_not_follow_the_sender_asks_for_a_full_row() {
    let mut c = awake();
    let elections = sum(&c, |s| s.elections_started);
    let term = c.node(2).unwrap().group_status(9).unwrap().term;
    // Node 2's replica of group 9 starts a pre-vote: it forgets its leader
    // (the pre-vote is refused: node 3 is in its lease).
    c.node_mut(2).unwrap().campaign(9).unwrap();
    assert_ne!(
        c.node(2).unwrap().group_status(9).unwrap().role,
        Role::Follower
    );
    for _ in 0..6 {
        c.tick().unwrap();
    }
    let n2 = c.node(2).unwrap();
    assert!(n2.stats().compact_rows_refused >= 1);
    let s = n2.group_status(9).unwrap();
    assert_eq!((s.role, s.leader, s.term), (Role::Follower, 1, term));
    assert_eq!(sum(&c, |s| s.elections_started), elections);
}
