//! Membership changes: who votes, who only replicates, and how that
//! changes in a live group.
//!
//! One server at a time (Raft thesis §4.1), with the fix for the bug found
//! in it (Ongaro, raft-dev 2015): a configuration is a log entry
//! ([`EntryKind::Config`](super::EntryKind::Config)) holding the whole new
//! membership, and it takes effect on every replica as soon as it is in
//! that replica's log, committed or not (a truncated one is undone). A
//! leader proposes a change only when
//!
//! - an entry of its own term is committed (the fix: a new leader might
//!   otherwise add a change to a configuration that a change of an earlier
//!   term, uncommitted and about to be overwritten, already left), and
//! - the previous change is committed (one in flight per group).
//!
//! Each change adds, removes, or changes the role of one replica, so any
//! majority of the old voters and any majority of the new ones share a
//! voter: two leaders of one term can never be elected by the two
//! configurations. Joint consensus (etcd's `confchange`) allows changing
//! several voters at once; quorum queues change one replica at a time, and
//! one server at a time keeps the log, the snapshot and the wire a single
//! member list.
//!
//! Non-voters (learners) receive the log and never count toward commit,
//! elections, CheckQuorum or read confirmation. A *promotable* one is made
//! a voter by its leader as soon as it has caught up with the commit index.
//! A leader that removes itself keeps leading until the change commits
//! (counting only the new voters), then hands leadership to the most
//! caught-up voter and steps down.

use super::core::Role;
use super::progress::Progress;
use super::quorum::Voters;
use super::LogStore;
use super::{Entry, EntryKind, Error, Raft, ReplicaId, NONE};
use bytes::Bytes;

/// The role of a member of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberRole {
    /// Counts toward elections and commit.
    Voter,
    /// Receives the log, never votes.
    NonVoter,
    /// A non-voter that its leader makes a voter once it has caught up.
    Promotable,
}

/// A group's membership: voters and non-voters, each list sorted and
/// without duplicates, disjoint; `promotable` a subset of `learners`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Hash)]
pub struct Membership {
    pub voters: Vec<ReplicaId>,
    pub learners: Vec<ReplicaId>,
    pub promotable: Vec<ReplicaId>,
}

/// One change of a group's membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfChange {
    /// Add `id` with `role`, or give an existing member that role.
    Add { id: ReplicaId, role: MemberRole },
    /// Remove `id` (which may be the leader itself).
    Remove { id: ReplicaId },
}

/// A member a leader removed, still sent the log and heartbeats (never
/// counted) so that it learns of its removal: until it has held the
/// removal entry, committed, for an election timeout of ticks (a few
/// heartbeats that carried the commit), or for at most
/// [`LEAVING_MAX_TIMEOUTS`] election timeouts (a dead one).
#[derive(Clone, Debug)]
pub(super) struct Leaving {
    pub id: ReplicaId,
    /// Index of the configuration entry that removed it.
    pub index: u64,
    pub progress: Progress,
    /// Ticks since it was removed, and since it held the committed removal.
    pub age: u32,
    pub told: u32,
}

/// How long (in election timeouts) a leader goes on telling a removed
/// member that does not answer.
const LEAVING_MAX_TIMEOUTS: u32 = 4;

/// Version byte of an encoded membership.
const CONF_VERSION: u8 = 1;

/// At most this many members in a configuration entry.
pub const MAX_MEMBERS: usize = 255;

impl Membership {
    /// Voters only (a group's creation).
    pub fn with_voters(voters: &[ReplicaId]) -> Membership {
        let mut v = voters.to_vec();
        v.sort_unstable();
        v.dedup();
        Membership {
            voters: v,
            learners: Vec::new(),
            promotable: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.voters.is_empty() && self.learners.is_empty()
    }

    pub fn role(&self, id: ReplicaId) -> Option<MemberRole> {
        if self.voters.contains(&id) {
            Some(MemberRole::Voter)
        } else if self.promotable.contains(&id) {
            Some(MemberRole::Promotable)
        } else if self.learners.contains(&id) {
            Some(MemberRole::NonVoter)
        } else {
            None
        }
    }

    /// Every member with its role: voters first, then non-voters, each in
    /// id order.
    pub fn members(&self) -> Vec<(ReplicaId, MemberRole)> {
        let mut out: Vec<(ReplicaId, MemberRole)> = self
            .voters
            .iter()
            .map(|&id| (id, MemberRole::Voter))
            .collect();
        for &id in &self.learners {
            out.push((id, self.role(id).unwrap_or(MemberRole::NonVoter)));
        }
        out
    }

    /// Every member id (voters, then non-voters).
    pub fn ids(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.voters.iter().chain(&self.learners).copied()
    }

    pub fn contains(&self, id: ReplicaId) -> bool {
        self.role(id).is_some()
    }

    /// The membership after `cc`, or why it cannot be made.
    pub fn apply(&self, cc: ConfChange) -> Result<Membership, &'static str> {
        let mut next = self.clone();
        let id = match cc {
            ConfChange::Add { id, .. } | ConfChange::Remove { id } => id,
        };
        if id == NONE {
            return Err("member id 0 is not a node id");
        }
        next.voters.retain(|&v| v != id);
        next.learners.retain(|&v| v != id);
        next.promotable.retain(|&v| v != id);
        match cc {
            ConfChange::Add { role, .. } => {
                if self.role(id) == Some(role) {
                    return Err("the replica is already a member with that role");
                }
                match role {
                    MemberRole::Voter => next.voters.push(id),
                    MemberRole::NonVoter => next.learners.push(id),
                    MemberRole::Promotable => {
                        next.learners.push(id);
                        next.promotable.push(id);
                    }
                }
            }
            ConfChange::Remove { .. } => {
                if !self.contains(id) {
                    return Err("the replica is not a member of the group");
                }
            }
        }
        if next.voters.is_empty() {
            return Err("a group needs at least one voter");
        }
        if next.voters.len() + next.learners.len() > MAX_MEMBERS {
            return Err("too many members");
        }
        next.voters.sort_unstable();
        next.learners.sort_unstable();
        next.promotable.sort_unstable();
        Ok(next)
    }

    /// The bytes of a configuration entry.
    pub fn encode(&self) -> Bytes {
        let n = self.voters.len() + self.learners.len() + self.promotable.len();
        let mut out = Vec::with_capacity(4 + 8 * n);
        out.push(CONF_VERSION);
        for list in [&self.voters, &self.learners, &self.promotable] {
            out.push(list.len().min(MAX_MEMBERS) as u8);
        }
        for list in [&self.voters, &self.learners, &self.promotable] {
            for &id in list.iter().take(MAX_MEMBERS) {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
        Bytes::from(out)
    }

    /// Read a configuration entry; None if it is not one this version
    /// wrote (a corrupt or foreign entry: the caller keeps its membership).
    pub fn decode(data: &[u8]) -> Option<Membership> {
        let (&version, rest) = data.split_first()?;
        if version != CONF_VERSION || rest.len() < 3 {
            return None;
        }
        let counts = [rest[0] as usize, rest[1] as usize, rest[2] as usize];
        let ids = &rest[3..];
        if ids.len() != 8 * counts.iter().sum::<usize>() {
            return None;
        }
        let mut at = 0;
        let mut take = |n: usize| -> Vec<ReplicaId> {
            let v = (0..n)
                .map(|i| {
                    let b = &ids[8 * (at + i)..8 * (at + i + 1)];
                    u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))
                })
                .collect();
            at += n;
            v
        };
        let m = Membership {
            voters: take(counts[0]),
            learners: take(counts[1]),
            promotable: take(counts[2]),
        };
        m.is_valid().then_some(m)
    }

    /// Sorted, no duplicates, no id 0, voters and learners disjoint,
    /// promotable within learners, at least one voter.
    pub fn is_valid(&self) -> bool {
        let strictly_sorted = |v: &[ReplicaId]| v.windows(2).all(|w| w[0] < w[1]);
        !self.voters.is_empty()
            && strictly_sorted(&self.voters)
            && strictly_sorted(&self.learners)
            && strictly_sorted(&self.promotable)
            && !self.ids().any(|id| id == NONE)
            && !self.learners.iter().any(|l| self.voters.contains(l))
            && self.promotable.iter().all(|p| self.learners.contains(p))
    }
}

impl<S: LogStore> Raft<S> {
    /// The group's membership as this replica sees it (the latest
    /// configuration in its log, committed or not).
    pub fn membership(&self) -> &Membership {
        &self.conf
    }

    /// Index of the entry that set the current membership (0: the group's
    /// creation, or a snapshot's).
    pub fn conf_index(&self) -> u64 {
        self.conf_index
    }

    /// Bumped on every change of the membership, undone ones included: the
    /// multi layer compares it to notice a change.
    pub fn conf_version(&self) -> u64 {
        self.conf_version
    }

    /// With `self.conf` set by the configuration entry at `index`: did
    /// that entry remove this replica as a voter?
    pub(super) fn removed_by_conf_at(&self, index: u64) -> bool {
        index > 0
            && self.conf.role(self.id) != Some(MemberRole::Voter)
            && self.conf_at(index - 1).role(self.id) == Some(MemberRole::Voter)
    }

    /// Does this replica campaign when its timer fires? A voter that can
    /// vote does; so does one whose removal is in its log but not yet
    /// committed (the Raft thesis, §4.2.2: it may still be needed until
    /// the removal commits; it does not count its own vote). Without that,
    /// a group whose only up-to-date replica holds its own uncommitted
    /// removal cannot elect: the others lack entries it has, so it refuses
    /// them its vote, and it would never ask for theirs (seed 672: four
    /// voters, one wiped, the leader removing itself when it lost its
    /// leadership).
    pub(super) fn may_campaign(&self) -> bool {
        self.cfg.can_vote
            && (self.voters.contains(self.id) || (self.removed_voter && self.conf_change_pending()))
    }

    /// Is a membership change proposed and not yet committed?
    pub fn conf_change_pending(&self) -> bool {
        self.conf_index > self.log.committed
    }

    /// Propose one membership change. Only a leader, with an entry of its
    /// own term committed and no other change in flight (else
    /// [`Error::ConfChangeBusy`]); the returned index and term identify the
    /// configuration entry, which takes effect at once (it is in the log).
    pub fn propose_conf_change(&mut self, cc: ConfChange) -> Result<super::Proposed, Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if self.lead_transferee != NONE {
            return Err(Error::NotLeader {
                leader: self.lead_transferee,
            });
        }
        if self.conf_change_pending() || self.log.term_or_zero(self.log.committed) != self.term {
            return Err(Error::ConfChangeBusy);
        }
        let next = self.conf.apply(cc).map_err(Error::ConfChangeInvalid)?;
        let index = self.log.last_index() + 1;
        let entry = Entry {
            term: self.term,
            index,
            kind: EntryKind::Config,
            data: next.encode(),
        };
        self.append_entries(vec![entry]);
        self.set_conf(next, index);
        self.send_pending = true;
        tracing::debug!(
            id = self.id,
            term = self.term,
            index,
            ?cc,
            "membership change proposed"
        );
        Ok(super::Proposed {
            index,
            term: self.term,
        })
    }

    /// Make `conf` (set by the entry at `index`) the membership: the voter
    /// set, and for a leader the progress of each member (kept for those
    /// that stay, new ones probed from the end of the log).
    pub(super) fn set_conf(&mut self, conf: Membership, index: u64) {
        self.conf_index = index;
        if conf == self.conf {
            return;
        }
        self.removed_voter = index > 0
            && conf.role(self.id) != Some(MemberRole::Voter)
            && self.conf_at(index - 1).role(self.id) == Some(MemberRole::Voter);
        // (`conf` is not in place yet: `conf_at` reads the log.)
        self.conf_version += 1;
        let old_ids: Vec<ReplicaId> = self.conf.ids().collect();
        let mut old_progress = std::mem::take(&mut self.progress);
        if self.role == Role::Leader {
            // Removed members go on hearing from this leader until they
            // hold their removal (and know it committed).
            self.leaving.retain(|l| !conf.contains(l.id));
            for (at, &id) in old_ids.iter().enumerate() {
                if id != self.id && !conf.contains(id) && at < old_progress.len() {
                    let next = self.log.last_index() + 1;
                    let progress = std::mem::replace(
                        &mut old_progress[at],
                        Progress::new(next, self.cfg.max_inflight),
                    );
                    self.leaving.push(Leaving {
                        id,
                        index,
                        progress,
                        age: 0,
                        told: 0,
                    });
                }
            }
        }
        self.voters = Voters::new(&conf.voters);
        self.conf = conf;
        let next = self.log.last_index() + 1;
        let max_inflight = self.cfg.max_inflight;
        let ids: Vec<ReplicaId> = self.conf.ids().collect();
        self.progress = ids
            .iter()
            .map(|id| match old_ids.iter().position(|o| o == id) {
                Some(p) if p < old_progress.len() => {
                    std::mem::replace(&mut old_progress[p], Progress::new(next, max_inflight))
                }
                _ => {
                    let mut pr = Progress::new(next, max_inflight);
                    if *id == self.id {
                        pr.matched = self.log.stable_last_index().min(self.log.last_index());
                    }
                    // Heard from for CheckQuorum until proven otherwise:
                    // a member just added must not make its leader step
                    // down before it had a chance to answer.
                    pr.recent_active = true;
                    pr
                }
            })
            .collect();
        if self.role != Role::Leader && !self.may_campaign() {
            // A replica that is no longer a voter neither campaigns nor
            // keeps asking for votes.
            if matches!(self.role, Role::Candidate | Role::PreCandidate) {
                let term = self.term;
                self.become_follower(term, NONE);
            }
        }
        if self.role == Role::Leader {
            // New members get the log; the commit rule now counts the new
            // voters (the change may even commit entries at once).
            self.send_pending = true;
            if self.maybe_commit() {
                self.commit_pending = true;
            }
        }
    }

    /// The log changed where a configuration could be (a follower appended
    /// a configuration entry, or replaced a suffix holding one): the
    /// membership is that of the latest configuration entry in the log,
    /// else the snapshot's, else the group's creation.
    pub(super) fn refresh_conf(&mut self) {
        let (conf, index) = self.latest_conf();
        self.set_conf(conf, index);
    }

    /// The latest configuration in the log, and the index that set it.
    pub(super) fn latest_conf(&self) -> (Membership, u64) {
        let snap = self.log.snapshot();
        let floor = self.log.first_index().max(snap.index + 1);
        let mut hi = self.log.last_index() + 1;
        const WINDOW: u64 = 256;
        while hi > floor {
            let lo = hi.saturating_sub(WINDOW).max(floor);
            if let Ok(entries) = self.log.slice(lo, hi, u64::MAX) {
                for e in entries.iter().rev() {
                    if e.kind == EntryKind::Config {
                        if let Some(m) = Membership::decode(&e.data) {
                            return (m, e.index);
                        }
                        tracing::error!(
                            id = self.id,
                            index = e.index,
                            "unreadable configuration entry ignored"
                        );
                    }
                }
            }
            hi = lo;
        }
        if snap.index > 0 && !snap.voters.is_empty() {
            return (snap.membership(), 0);
        }
        (self.initial_conf.clone(), 0)
    }

    /// The membership as of `index` (at or after the snapshot): for the
    /// meta of a snapshot taken there.
    pub(super) fn conf_at(&self, index: u64) -> Membership {
        if index >= self.conf_index {
            return self.conf.clone();
        }
        let snap = self.log.snapshot();
        let floor = self.log.first_index().max(snap.index + 1);
        if index >= floor {
            if let Ok(entries) = self.log.slice(floor, index + 1, u64::MAX) {
                if let Some(m) = entries
                    .iter()
                    .rev()
                    .filter(|e| e.kind == EntryKind::Config)
                    .find_map(|e| Membership::decode(&e.data))
                {
                    return m;
                }
            }
        }
        if snap.index > 0 && !snap.voters.is_empty() {
            return snap.membership();
        }
        self.initial_conf.clone()
    }

    /// Once per leader tick: removed members that have held their
    /// committed removal for an election timeout, or that never answered
    /// for a few, are no longer sent anything.
    #[inline]
    pub(super) fn tick_leaving(&mut self) {
        if self.leaving.is_empty() {
            return;
        }
        let (committed, e) = (self.log.committed, self.cfg.election_ticks);
        for l in &mut self.leaving {
            l.age = l.age.saturating_add(1);
            if committed >= l.index && l.progress.matched >= l.index {
                l.told = l.told.saturating_add(1);
            }
        }
        self.leaving
            .retain(|l| l.told < e && l.age < LEAVING_MAX_TIMEOUTS * e);
    }

    /// After the commit index moved: a leader whose removal committed
    /// hands leadership to the most caught-up voter and steps down; a
    /// promotable non-voter that caught up is made a voter.
    pub(super) fn after_commit_conf(&mut self) {
        if self.role != Role::Leader || self.conf_change_pending() {
            return;
        }
        if !self.voters.contains(self.id) {
            self.step_down_removed();
        }
    }

    /// This leader's removal committed: send `TimeoutNow` to the voter
    /// whose log matches the most of ours (it can win at once), then step
    /// down. A voter lacking entries would be refused votes, so if none
    /// is caught up the voters simply elect after their timeout.
    fn step_down_removed(&mut self) {
        let last = self.log.last_index();
        let best = self
            .voters
            .ids()
            .iter()
            .copied()
            .filter(|&v| v != self.id)
            .filter_map(|v| self.progress(v).map(|p| (p.matched, v)))
            .max();
        tracing::debug!(
            id = self.id,
            term = self.term,
            ?best,
            "removed leader steps down"
        );
        // Followers learn the commit of the change from the next leader;
        // tell the best one to campaign now if its log is whole.
        if let Some((matched, to)) = best {
            if matched == last {
                let m = super::Message::new(super::MessageType::TimeoutNow, self.id, to, self.term);
                self.send(m);
            }
        }
        let term = self.term;
        self.become_follower(term, NONE);
    }

    /// A promotable non-voter that has caught up with the commit index is
    /// made a voter (one change at a time: it waits for any other).
    #[inline]
    pub(super) fn maybe_promote(&mut self) {
        if self.role != Role::Leader || self.conf.promotable.is_empty() {
            return;
        }
        self.promote_one();
    }

    /// The first promotable non-voter that caught up is proposed as a
    /// voter (out of line: most leader ticks have none to promote).
    #[inline(never)]
    fn promote_one(&mut self) {
        let committed = self.log.committed;
        let ready = self.conf.promotable.iter().copied().find(|&id| {
            self.progress(id).is_some_and(|p| {
                p.matched >= committed && p.state == super::ProgressState::Replicate
            })
        });
        if let Some(id) = ready {
            let cc = ConfChange::Add {
                id,
                role: MemberRole::Voter,
            };
            match self.propose_conf_change(cc) {
                Ok(p) => tracing::debug!(id = self.id, member = id, index = p.index, "promoting"),
                Err(Error::ConfChangeBusy) => {} // again after the change in flight
                Err(e) => tracing::debug!(id = self.id, member = id, %e, "promotion refused"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_membership_round_trips_through_its_entry() {
        let m = Membership {
            voters: vec![1, 2, 3],
            learners: vec![4, 9],
            promotable: vec![9],
        };
        assert_eq!(Membership::decode(&m.encode()), Some(m.clone()));
        let mut bytes = m.encode().to_vec();
        bytes.pop();
        assert_eq!(Membership::decode(&bytes), None, "truncated");
        assert_eq!(Membership::decode(&[]), None);
        assert_eq!(Membership::decode(&[2, 0, 0, 0]), None, "unknown version");
        assert_eq!(Membership::decode(&[1, 0, 0, 0]), None, "no voter");
        let dup = Membership {
            voters: vec![1, 2],
            learners: vec![2],
            promotable: vec![],
        };
        assert_eq!(Membership::decode(&dup.encode()), None, "voter and learner");
    }

    #[test]
    fn changes_move_one_member_at_a_time() {
        let m = Membership::with_voters(&[1, 2, 3]);
        let add = |id, role| ConfChange::Add { id, role };
        let m2 = m.apply(add(4, MemberRole::Promotable)).unwrap();
        assert_eq!(m2.role(4), Some(MemberRole::Promotable));
        assert_eq!(
            (m2.learners.clone(), m2.promotable.clone()),
            (vec![4], vec![4])
        );
        let m3 = m2.apply(add(4, MemberRole::Voter)).unwrap();
        assert_eq!(m3.voters, vec![1, 2, 3, 4]);
        assert!(m3.learners.is_empty() && m3.promotable.is_empty());
        let m4 = m3.apply(ConfChange::Remove { id: 1 }).unwrap();
        assert_eq!(m4.voters, vec![2, 3, 4]);
        assert!(
            m4.apply(ConfChange::Remove { id: 1 }).is_err(),
            "not a member"
        );
        assert!(m4.apply(add(2, MemberRole::Voter)).is_err(), "same role");
        let one = Membership::with_voters(&[1]);
        assert!(
            one.apply(ConfChange::Remove { id: 1 }).is_err(),
            "last voter"
        );
        assert!(one.apply(add(0, MemberRole::Voter)).is_err());
    }
}
