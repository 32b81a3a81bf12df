//! What a replica needs for quiescence (the multi layer decides when; see
//! `multi/quiesce.rs`): may it go quiet, and how it resumes.
//!
//! A quiesced replica is simply not ticked: its timers stand still. So
//! going quiet must leave nothing that a timer would have driven (no
//! message to retry, no entry to replicate, nothing to commit or apply),
//! and waking must set the timers so that the replica behaves as if it had
//! been ticked against a healthy peer all along: a leader counts the
//! followers whose nodes it hears as recently active (it must not step down
//! on its first CheckQuorum), a follower either keeps its lease (its
//! leader is alive) or drops it and campaigns soon (its leader's node is
//! gone).

use super::core::{Raft, Role};
use super::progress::ProgressState;
use super::NONE;
use super::{LogStore, ReplicaId};

impl<S: LogStore> Raft<S> {
    /// May this leader go quiet? Everything is durable, committed and
    /// applied; nothing waits to be sent; and every follower for which
    /// `counted` holds (those on nodes this node hears) has the whole log
    /// (and no snapshot is on its way to it). Those followers and the leader
    /// must be a quorum.
    pub fn quiet_leader(&self, counted: impl Fn(ReplicaId) -> bool) -> bool {
        let last = self.log.last_index();
        if self.role != Role::Leader
            || self.send_pending
            || self.commit_pending
            || !self.msgs.is_empty()
            || !self.log.all_stable()
            || self.log.has_pending_snapshot_for_ready()
            || self.log.committed != last
            || self.log.applied != last
            || self.log.term_or_zero(last) != self.term
            || self.reads.is_some()
            || self.lead_transferee != NONE
            || !self.leaving.is_empty()
        {
            return false;
        }
        if !self.conf.promotable.is_empty() {
            // A promotion is still to come.
            return false;
        }
        let mut caught_up = 0;
        for (id, pr) in self.members_progress() {
            let voter = self.voters.contains(id);
            if id == self.id {
                caught_up += usize::from(voter);
                continue;
            }
            if !counted(id) {
                continue;
            }
            // Probing with the whole log matched is fine too: there is
            // nothing left to probe for, and no append would be sent.
            if pr.matched != last || pr.state == ProgressState::Snapshot {
                return false;
            }
            // A replica that rejoined counts toward no quorum, nor toward
            // the one CheckQuorum will ask for when this leader wakes.
            caught_up += usize::from(voter && !pr.rejoined);
        }
        caught_up >= self.voters.quorum()
    }

    /// May this follower go quiet on a quiesce notice from `leader` at
    /// `term` whose commit index is `commit` (already stepped)? It holds
    /// exactly the leader's committed log, durably, and owes no message.
    pub fn quiet_follower(&self, leader: ReplicaId, term: u64, commit: u64) -> bool {
        self.role == Role::Follower
            && self.leader == leader
            && self.term == term
            && self.log.last_index() == commit
            && self.log.committed == commit
            && self.log.all_stable()
            && !self.log.has_pending_snapshot_for_ready()
            && self.msgs.is_empty()
    }

    /// A quiesced leader resumes: its followers whose nodes are `heard`
    /// count as recently active, and its CheckQuorum and heartbeat timers
    /// start over.
    pub fn wake_leader(&mut self, heard: impl Fn(ReplicaId) -> bool) {
        if self.role != Role::Leader {
            return;
        }
        let me = self.id;
        let ids = self.voters.ids().iter().chain(&self.conf.learners);
        for (&id, pr) in ids.zip(&mut self.progress) {
            pr.recent_active = id == me || heard(id);
        }
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
    }

    /// A quiesced follower resumes `elapsed` ticks into its election
    /// timeout: 0 when its leader's message woke it; close to the timeout
    /// when something else did, so that it campaigns unless the leader
    /// (woken too) reasserts itself within about a heartbeat interval.
    pub fn wake_follower(&mut self, elapsed: u32) {
        if self.role == Role::Leader {
            return;
        }
        self.election_elapsed = elapsed.min(self.cfg.election_ticks.saturating_sub(1));
    }

    /// The node of this follower's leader is gone: forget the leader (its
    /// lease no longer holds, so this replica answers others' pre-votes on
    /// the log alone) and campaign in `after` ticks, even if that is past
    /// its randomized election timeout (a survivor ranked late waits for
    /// its turn, rather than campaign at a random tick that may be another
    /// one's).
    pub fn leader_lost(&mut self, after: u32) {
        if self.role == Role::Leader {
            return;
        }
        self.leader = NONE;
        let after = after.max(1);
        self.randomized_election_timeout = self.randomized_election_timeout.max(after);
        self.election_elapsed = self.randomized_election_timeout - after;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{Config, MemStore, Message, Raft};
    use super::*;

    /// Replicas 1..=3 of one group, each its own durable store.
    fn group() -> Vec<Raft<MemStore>> {
        (1..=3)
            .map(|id| Raft::new(Config::new(id), &[1, 2, 3], MemStore::new()).unwrap())
            .collect()
    }

    /// Run every replica's readies (the store records them at `advance`)
    /// and deliver what they send, but what `lost` says, until nothing
    /// moves. (Replica ids 1..=n at indexes 0..n; also used by the fast
    /// path's tests in `replication.rs`.)
    pub(in crate::raft) fn pump(rs: &mut [Raft<MemStore>], lost: impl Fn(&Message) -> bool) {
        loop {
            let mut sent = Vec::new();
            for r in rs.iter_mut() {
                while r.has_ready() {
                    let rd = r.ready();
                    sent.extend(rd.messages.iter().cloned());
                    r.advance(&rd);
                }
            }
            if sent.is_empty() {
                return;
            }
            for m in sent.into_iter().filter(|m| !lost(m)) {
                let to = m.to as usize - 1;
                rs[to].step(m).unwrap();
            }
        }
    }

    // Mutation: `pr.state != ProgressState::Replicate` in place of the
    // Snapshot test (a probed follower holding the whole log keeps its
    // leader awake), or dropping `pr.matched != last` for probed followers.
    #[test]
    fn a_probed_follower_blocks_quiet_only_while_it_lacks_entries() {
        let mut rs = group();
        rs[0].campaign();
        pump(&mut rs, |_| false);
        assert_eq!(rs[0].role(), Role::Leader);
        assert!(rs[0].quiet_leader(|_| true), "all caught up, replicating");
        let last = rs[0].log.last_index();
        rs[0].progress_mut(2).unwrap().become_probe();
        let pr = rs[0].progress(2).unwrap();
        assert_eq!((pr.state, pr.matched), (ProgressState::Probe, last));
        assert!(
            rs[0].quiet_leader(|_| true),
            "probing with the whole log matched: nothing left to send"
        );
        // An entry that reaches replica 3 only: 2, still probed, is behind.
        rs[0].propose(bytes::Bytes::from_static(b"x")).unwrap();
        pump(&mut rs, |m| m.to == 2);
        let pr = rs[0].progress(2).unwrap();
        assert_eq!((pr.state, pr.matched), (ProgressState::Probe, last));
        assert_eq!(rs[0].log.committed, last + 1, "committed with 3");
        assert_eq!(rs[0].log.applied, last + 1);
        assert!(
            !rs[0].quiet_leader(|_| true),
            "a probed follower that lacks an entry blocks"
        );
        assert!(
            rs[0].quiet_leader(|id| id != 2),
            "unless its node is not heard"
        );
    }

    // Mutation: `saturating_sub(after)` in leader_lost: a survivor ranked
    // past its randomized timeout campaigns at a random tick, maybe with
    // the one ranked before it.
    #[test]
    fn a_replica_whose_leader_is_lost_campaigns_after_exactly_the_ticks_asked() {
        for after in [1, 4, 19, 25, 40] {
            let mut rs = group();
            rs[0].campaign();
            pump(&mut rs, |_| false);
            let f = &mut rs[1];
            f.leader_lost(after);
            assert_eq!(f.leader, NONE);
            for t in 1..after {
                f.tick();
                assert_eq!(f.role(), Role::Follower, "tick {t} of {after}");
            }
            f.tick();
            assert_eq!(f.role(), Role::PreCandidate, "after {after} ticks");
        }
    }
}
