//! Leadership transfer through the node (the Raft side is in
//! `raft/tests.rs`): groups move to the node asked for, quiet ones too,
//! the leader gauge follows, and nothing else is disturbed.

use bytes::Bytes;

use super::*;
use crate::raft::Role;
use crate::testkit::{Cluster, ClusterConfig, GroupSpec};

fn cluster(groups: u64) -> Cluster {
    let mut cfg = ClusterConfig::new(3, 3);
    cfg.wal = false;
    cfg.record_events = true;
    let mut c = Cluster::new(cfg);
    for g in 1..=groups {
        let spec = GroupSpec {
            incarnation: 1,
            members: vec![1, 2, 3],
            ..Default::default()
        };
        c.create_group(g, spec, 0).unwrap();
        c.campaign(1, g).unwrap();
    }
    for _ in 0..40 {
        c.tick().unwrap();
    }
    c
}

fn role(c: &Cluster, id: u64, g: u64) -> Role {
    c.node(id).unwrap().group_status(g).unwrap().role
}

fn elections(c: &Cluster) -> u64 {
    c.ids()
        .iter()
        .map(|&id| c.node(id).unwrap().stats().elections_started)
        .sum()
}

// Mutation: a transfer that does not wake a quiet group (or whose target,
// quiet, ignores TimeoutNow) never completes.
#[test]
fn quiet_groups_move_to_the_node_asked_for_one_election_each() {
    let mut c = cluster(6);
    assert_eq!(c.node(1).unwrap().stats().groups_led, 6);
    assert!((1..=6).all(|g| c.node(1).unwrap().is_quiesced(g)));
    let before = elections(&c);
    for g in 1..=3 {
        c.node_mut(1).unwrap().transfer_leader(g, 2).unwrap();
    }
    // Proposals wait for the new leader.
    assert!(matches!(
        c.node_mut(1).unwrap().propose(1, Bytes::from_static(b"x")),
        Err(Error::NotLeader { leader: 2, .. })
    ));
    for _ in 0..10 {
        c.tick().unwrap();
    }
    for g in 1..=3 {
        assert_eq!(role(&c, 2, g), Role::Leader, "group {g}");
    }
    for g in 4..=6 {
        assert_eq!(role(&c, 1, g), Role::Leader, "group {g} stays");
    }
    assert_eq!(elections(&c) - before, 3, "one election per group moved");
    assert_eq!(c.node(1).unwrap().stats().groups_led, 3);
    assert_eq!(c.node(2).unwrap().stats().groups_led, 3);
    assert_eq!(c.node(1).unwrap().stats().transfers_started, 3);
}

#[test]
fn transfer_is_refused_where_it_cannot_work() {
    let mut c = cluster(1);
    let n2 = c.node_mut(2).unwrap();
    assert!(matches!(
        n2.transfer_leader(1, 3),
        Err(Error::NotLeader { leader: 1, .. })
    ));
    let n1 = c.node_mut(1).unwrap();
    assert_eq!(n1.transfer_leader(9, 2), Err(Error::NotFound(9)));
    assert!(matches!(
        n1.transfer_leader(1, 7),
        Err(Error::Raft {
            source: crate::raft::Error::TransferNotVoter(7),
            ..
        })
    ));
    assert_eq!(n1.transfer_leader(1, 1), Ok(()), "to itself: nothing to do");
}
