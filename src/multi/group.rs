//! One group as hosted by a node: its replica and the proposals made here
//! that are still waiting to commit.

use std::collections::VecDeque;
use std::sync::Arc;

use super::key_metrics::KeyCell;
use super::message::incarnation_row_hash;
use super::snapshot::{Held, Incoming};
use super::ProposalError;
use crate::raft::MemStore;
use crate::raft::{Entry, Raft, Role};

struct Pending {
    index: u64,
    term: u64,
    id: u64,
}

pub(crate) struct Group {
    pub raft: Raft<MemStore>,
    /// Which creation of this group id the replica belongs to, as the host
    /// named it: the same on every member, carried by every message.
    pub incarnation: u64,
    /// `incarnation_row_hash(group id, incarnation)`: this replica's share
    /// of a batch's incarnation digest, computed once.
    pub row_hash: u64,
    /// Unique on this node for its life (even if a host reuses an
    /// incarnation), so that a `NodeReady` taken before a remove + create is
    /// never applied to the new group.
    pub generation: u64,
    pending: VecDeque<Pending>,
    /// Highest proposal id already scheduled to be reported unknown if still
    /// undecided at its deadline.
    pub undecided_upto: u64,
    pub last_leader: u64,
    /// This replica leads (as of the last `Ready`), counted in the node's
    /// `groups_led`.
    pub leading: bool,
    pub last_elections: u64,
    /// Listed in the node's dirty set (has work for the next `ready`).
    pub dirty: bool,
    /// The latest snapshot's bytes (taken here, received, or loaded from
    /// disk at restart), for followers that need it.
    pub snapshot: Option<Held>,
    /// A snapshot being received from the leader.
    pub incoming: Option<Incoming>,
    /// A whole snapshot received, waiting for the `Ready` that installs it.
    pub received: Option<Held>,
    /// The host was told to take a snapshot and has not yet.
    pub hinted: bool,
    /// The group's bytes not yet durable as last counted in the node's
    /// total (`Node::account_unsynced`).
    pub unsynced_counted: u64,
    /// Awake, going quiet, or quiet (see `quiesce.rs`).
    pub quiet: Quiet,
    /// The members as last counted in the node's per-peer group counts,
    /// and the membership version they were read at (`Raft::conf_version`).
    pub members: Vec<u64>,
    pub conf_version: u64,
    /// A membership listing this node was reported to the host (or the
    /// replica was created as a member). Until then (a joiner) a
    /// membership without it is not reported: it is not a removal, only
    /// news from before it was added (a snapshot taken earlier, say).
    pub reported_self: bool,
    /// The group's key metrics as published for readers on any thread
    /// (`key_metrics.rs`); the registry lists it by id.
    pub metrics: Arc<KeyCell>,
}

/// Where a group stands with quiescence (see `quiesce.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Quiet {
    /// Ticked. For a leader, `idle` counts the heartbeat intervals in a row
    /// in which it could have gone quiet.
    Awake { idle: u32 },
    /// A leader whose heartbeat rows carry the quiesce notice, and the
    /// followers that answered it by going quiet.
    Quiescing { acked: Vec<u64> },
    /// A quiet leader.
    Leader,
    /// A quiet follower of the leader on node `leader`, which this node
    /// heard in liveness `epoch` when it went quiet.
    Follower { leader: u64, epoch: u64 },
}

impl Group {
    /// This replica, as its heartbeat rows name it.
    pub fn replica(&self) -> super::heartbeat::Replica {
        super::heartbeat::Replica {
            incarnation: self.incarnation,
            hash: self.row_hash,
        }
    }

    pub fn new(group_id: u64, raft: Raft<MemStore>, incarnation: u64, generation: u64) -> Group {
        Group {
            last_elections: raft.elections_started(),
            metrics: Arc::new(KeyCell::new(incarnation, &raft)),
            raft,
            incarnation,
            row_hash: incarnation_row_hash(group_id, incarnation),
            generation,
            pending: VecDeque::new(),
            undecided_upto: 0,
            last_leader: 0,
            leading: false,
            dirty: false,
            snapshot: None,
            incoming: None,
            received: None,
            hinted: false,
            unsynced_counted: 0,
            quiet: Quiet::Awake { idle: 0 },
            members: Vec::new(),
            conf_version: u64::MAX,
            reported_self: false,
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Proposals made here still waiting to be decided.
    pub fn pending_len(&self) -> u64 {
        self.pending.len() as u64
    }

    /// The highest id of a waiting proposal that applying entries may never
    /// decide: this replica no longer leads the term the proposal was made
    /// in, so nobody here will fill or commit its slot (it may be decided
    /// elsewhere, or stay undecided in an idle group). None if every waiting
    /// proposal is of the term this replica leads now.
    pub fn undecided_max(&self) -> Option<u64> {
        let (leading, term) = (self.raft.role() == Role::Leader, self.raft.term());
        self.pending
            .iter()
            .filter(|p| !(leading && p.term == term))
            .map(|p| p.id)
            .max()
    }

    /// Take the waiting proposals with ids up to `upto` (their deadline
    /// passed undecided).
    pub fn take_undecided(&mut self, upto: u64) -> Vec<u64> {
        let mut out = Vec::new();
        self.pending.retain(|p| {
            let take = p.id <= upto;
            if take {
                out.push(p.id);
            }
            !take
        });
        out
    }

    /// Remember a proposal until the entry at its index is applied. Kept in
    /// index order: a node that led, lost leadership and leads again after
    /// its log was cut back proposes below proposals still waiting from its
    /// earlier term (those will fail when their index applies another term).
    pub fn track(&mut self, index: u64, term: u64, id: u64) {
        let at = self.pending.partition_point(|p| p.index <= index);
        self.pending.insert(at, Pending { index, term, id });
    }

    /// Resolve the proposals an applied entry decides: the one at its index
    /// committed if the terms agree (the same entry), and failed for certain
    /// otherwise — as is any proposal at an earlier index still waiting (its
    /// slot was filled by another leader's entry, which is committed).
    pub fn resolve(&mut self, e: &Entry, mut done: impl FnMut(u64, Result<u64, ProposalError>)) {
        while let Some(p) = self.pending.front() {
            if p.index > e.index {
                break;
            }
            let result = if p.index == e.index && p.term == e.term {
                Ok(p.index)
            } else {
                Err(ProposalError::Superseded)
            };
            done(p.id, result);
            self.pending.pop_front();
        }
    }

    /// A snapshot from the leader replaced the log up to `index`: the
    /// waiting proposals at or below it are never applied here one by
    /// one, so they cannot be decided by index and term; taken out, their
    /// outcome is unknown (the snapshot may or may not hold them).
    pub fn take_covered_by_snapshot(&mut self, index: u64) -> Vec<u64> {
        let n = self.pending.partition_point(|p| p.index <= index);
        self.pending.drain(..n).map(|p| p.id).collect()
    }

    /// Every waiting proposal, failed (the group is going away).
    pub fn drain_pending(&mut self) -> impl Iterator<Item = u64> + '_ {
        self.pending.drain(..).map(|p| p.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Config, EntryKind};

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            kind: EntryKind::Normal,
            data: Default::default(),
        }
    }

    #[test]
    fn proposals_below_older_pending_ones_resolve_by_index_and_term() {
        let raft = Raft::new(Config::new(1), &[1], MemStore::new()).unwrap();
        let mut g = Group::new(7, raft, 1, 1);
        // Term 2: proposals at 10 and 11 that another leader will overwrite.
        g.track(10, 2, 100);
        g.track(11, 2, 101);
        // Leader again in term 4 after the log was cut back to 8.
        g.track(9, 4, 102);
        g.track(10, 4, 103);
        let mut done = Vec::new();
        for (i, t) in [(9, 4), (10, 4), (11, 4)] {
            g.resolve(&entry(i, t), |id, r| done.push((id, r.is_ok())));
        }
        assert_eq!(
            done,
            vec![(102, true), (100, false), (103, true), (101, false)]
        );
    }

    // Mutation: leaving proposals a snapshot jumped over to `resolve`
    // reports them failed for certain at the next applied entry, though
    // the snapshot may hold them (found by the simulation once leaders
    // handed leadership over and then fell behind).
    #[test]
    fn proposals_a_snapshot_jumps_over_are_unknown_not_failed() {
        let raft = Raft::new(Config::new(1), &[1], MemStore::new()).unwrap();
        let mut g = Group::new(7, raft, 1, 1);
        g.track(10, 2, 100);
        g.track(11, 2, 101);
        g.track(14, 3, 102);
        assert_eq!(g.take_covered_by_snapshot(12), vec![100, 101]);
        let mut done = Vec::new();
        g.resolve(&entry(13, 3), |id, r| done.push((id, r)));
        assert!(done.is_empty(), "nothing below 13 is left to fail");
        g.resolve(&entry(14, 3), |id, r| done.push((id, r)));
        assert_eq!(done, vec![(102, Ok(14))]);
    }
}
