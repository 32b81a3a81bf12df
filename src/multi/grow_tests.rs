//! Growing a live group from three replicas to five and shrinking it back,
//! one change at a time, while proposals flow: the group never stops
//! taking them.

use crate::raft::{MemberRole, Role};
use crate::testkit::{Cluster, ClusterConfig, GroupSpec};

const G: u64 = 1;

fn leader(c: &Cluster) -> u64 {
    let spec = &c.groups[&G];
    spec.members
        .iter()
        .copied()
        .find(|&id| {
            c.node(id)
                .is_some_and(|n| n.group_status(G).is_ok_and(|s| s.role == Role::Leader))
        })
        .expect("a leader")
}

fn voters(c: &Cluster) -> Vec<u64> {
    let mut v: Vec<u64> = c
        .node(leader(c))
        .unwrap()
        .members(G)
        .unwrap()
        .iter()
        .filter(|m| m.role == MemberRole::Voter)
        .map(|m| m.node_id)
        .collect();
    v.sort_unstable();
    v
}

/// One tick with a proposal before it, which the leader must accept.
fn busy_tick(c: &mut Cluster, ticks: &mut u64) {
    assert!(
        c.propose(G).is_some(),
        "tick {ticks}: no leader took the proposal"
    );
    c.tick().unwrap();
    *ticks += 1;
}

/// Ask the leader for a change until it takes it (one change at a time:
/// `Busy` while the previous one is uncommitted), ticking meanwhile.
fn change(c: &mut Cluster, ticks: &mut u64, add: Option<u64>, remove: Option<u64>) {
    for _ in 0..100 {
        let l = leader(c);
        let n = c.node_mut(l).unwrap();
        let r = match (add, remove) {
            (Some(id), _) => n.add_member(G, id, MemberRole::Promotable),
            (_, Some(id)) => n.remove_member(G, id),
            _ => unreachable!(),
        };
        if r.is_ok() {
            return;
        }
        busy_tick(c, ticks);
    }
    panic!("the change was never taken");
}

// Availability: every tick's proposal is taken by a leader, none fails,
// and no election happens while the group grows to five and shrinks back
// (the checker verifies every acknowledged proposal survives).
#[test]
fn a_group_grown_from_three_to_five_and_shrunk_back_takes_proposals_throughout() {
    let mut c = Cluster::new(ClusterConfig::new(5, 11));
    let spec = GroupSpec {
        incarnation: 1,
        members: vec![1, 2, 3],
        ..Default::default()
    };
    c.create_group(G, spec, 0).unwrap();
    c.campaign(1, G).unwrap();
    for _ in 0..40 {
        c.tick().unwrap();
    }
    let elections = c.elections();
    let mut ticks = 0;
    for new in [4, 5] {
        // The host records it, creates the empty replica, then asks.
        c.join(new, G).unwrap();
        change(&mut c, &mut ticks, Some(new), None);
        while !voters(&c).contains(&new) {
            busy_tick(&mut c, &mut ticks);
            if ticks >= 500 {
                let n = c.node(leader(&c)).unwrap();
                panic!("node {new} never promoted: {:?}", n.members(G));
            }
        }
    }
    assert_eq!(voters(&c), vec![1, 2, 3, 4, 5]);
    for old in [5, 4] {
        change(&mut c, &mut ticks, None, Some(old));
        while voters(&c).contains(&old) {
            busy_tick(&mut c, &mut ticks);
            assert!(ticks < 1000, "node {old} never removed");
        }
    }
    assert_eq!(voters(&c), vec![1, 2, 3]);
    for _ in 0..20 {
        busy_tick(&mut c, &mut ticks);
    }
    c.settle().unwrap();
    assert_eq!(c.elections(), elections, "no election while it changed");
    let failed: u64 = c
        .ids()
        .iter()
        .filter_map(|&id| c.node(id))
        .map(|n| n.stats().proposals_failed + n.stats().proposals_unknown)
        .sum();
    assert_eq!(failed, 0);
    assert!(c.undecided().is_empty());
}
