//! Membership changes in the simulated cluster, made the way a broker
//! makes them, and the checks that come with them.
//!
//! The host adds a replica by creating an empty one on the new node
//! (`join_group`) and asking the leader to add it; it removes one by
//! asking the leader, and deletes the replica's data once the removal is
//! applied (`MembersChanged` without it). Its metadata ([`GroupSpec`]'s
//! `members`) follows the membership applied last, so that a node that
//! restarts creates, joins or deletes what it should. A change the leader
//! accepted but lost (its entry overwritten) is noticed by a later
//! membership without the joiner, or by the leader's committed membership.
//!
//! Checked: whenever a leader's commit index moves, a quorum of the voters
//! of its membership holds the committed entry durably (so a removed or
//! not-yet-added replica never made up the quorum); the checker's own
//! rules (one leader per term, committed entries never lost, the same
//! state on every replica) hold across every membership.

use super::cluster::HostOp;
use super::{Check, Cluster};
use crate::multi::Event;
use crate::raft::{LogStore, MemberRole, Role};

impl Cluster {
    /// The member of group `g` (its live incarnation) that leads it, if one
    /// believes it does.
    fn leader_of(&self, g: u64) -> Option<u64> {
        let spec = self.groups.get(&g)?;
        spec.members.iter().copied().find(|&id| {
            !self.is_paused(id)
                && self.node(id).is_some_and(|n| {
                    n.group_incarnation(g) == Some(spec.incarnation)
                        && n.group_status(g).is_ok_and(|s| s.role == Role::Leader)
                })
        })
    }

    /// Ask the leader of group `g` for one membership change, picked at
    /// random: add a node (as a voter, a non-voter or a promotable one,
    /// joining it first), promote a non-voter, or remove a member (the
    /// leader itself sometimes). `max_members` bounds the group; `never`
    /// is a node never added (the one whose disk may be wiped: a wiped
    /// joiner could not rejoin without a vote). Returns whether the leader
    /// took the change.
    pub fn change_members(&mut self, g: u64, max_members: usize, never: u64) -> bool {
        let Some(leader) = self.leader_of(g) else {
            return false;
        };
        let spec = self.groups[&g].clone();
        let Ok(view) = self.node(leader).expect("up").members(g) else {
            return false;
        };
        let voters = view.iter().filter(|m| m.role == MemberRole::Voter).count();
        let learner = view
            .iter()
            .find(|m| m.role == MemberRole::NonVoter)
            .map(|m| m.node_id);
        let outside: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|&n| n != never && !view.iter().any(|m| m.node_id == n))
            .filter(|n| !spec.members.contains(n))
            .collect();
        let roll = self.rng.below(100);
        let promote = learner.filter(|_| roll < 25);
        let (result, added) = if let Some(id) = promote {
            let r = self
                .node_mut(leader)
                .expect("up")
                .add_member(g, id, MemberRole::Voter);
            (r, None)
        } else if !outside.is_empty() && view.len() < max_members && roll < 70 {
            let id = *self.rng.pick(&outside);
            let role = match self.rng.below(10) {
                0..=5 => MemberRole::Promotable,
                6..=7 => MemberRole::NonVoter,
                _ => MemberRole::Voter,
            };
            let r = self.node_mut(leader).expect("up").add_member(g, id, role);
            (r, Some(id))
        } else if view.len() > 1 {
            // Keep at least three voters (so that one disk lost later
            // still leaves two that can elect: a replica that lost its
            // disk never votes again), and enough that can vote now; a
            // broker replaces a replica (add, promote, then remove) rather
            // than shrink around it.
            let inc = spec.incarnation;
            let voter_ids: Vec<u64> = view
                .iter()
                .filter(|m| m.role == MemberRole::Voter)
                .map(|m| m.node_id)
                .collect();
            let electable = |without: u64| {
                let left: Vec<u64> = voter_ids
                    .iter()
                    .copied()
                    .filter(|&v| v != without)
                    .collect();
                let can = left.iter().filter(|&&v| !self.lost_on(v, g, inc)).count();
                can > left.len() / 2
            };
            let removable: Vec<u64> = view
                .iter()
                .filter(|m| m.role != MemberRole::Voter || (voters > 3 && electable(m.node_id)))
                .map(|m| m.node_id)
                .collect();
            if removable.is_empty() {
                return false;
            }
            let id = *self.rng.pick(&removable);
            (
                self.node_mut(leader).expect("up").remove_member(g, id),
                None,
            )
        } else {
            return false;
        };
        let term = self
            .node(leader)
            .and_then(|n| n.group_status(g).ok())
            .map_or(0, |s| s.term);
        match result {
            Ok(index) => {
                self.stats.membership_changes += 1;
                if let Some(id) = added {
                    let spec = self.groups.get_mut(&g).expect("spec");
                    spec.members.push(id);
                    spec.members.sort_unstable();
                    spec.joined.push(id);
                    let inc = spec.incarnation;
                    self.pending_adds.insert((g, id), (inc, index, term));
                    let spread = self.rng.below(10);
                    self.schedule(
                        id,
                        spread,
                        HostOp::Join {
                            group: g,
                            incarnation: inc,
                        },
                    );
                }
                true
            }
            Err(_) => {
                self.stats.membership_refused += 1;
                false
            }
        }
    }

    /// After node `id`'s ready: what its `MembersChanged` events tell the
    /// host, and the quorum check of every commit it made as leader.
    pub(super) fn after_ready_membership(
        &mut self,
        id: u64,
        events: &[Event],
        groups: &[u64],
    ) -> Check {
        for ev in events {
            if let Event::MembersChanged {
                group_id,
                incarnation,
                index,
                members,
            } = ev
            {
                let ids: Vec<u64> = members.iter().map(|&(n, _)| n).collect();
                self.membership_applied(*group_id, *incarnation, *index, &ids);
            }
        }
        if self.cfg.check {
            for &g in groups {
                self.check_commit_quorum(id, g)?;
            }
        }
        Ok(())
    }

    /// A membership applied at `index` on some replica: the host's
    /// metadata follows the latest one; replicas it no longer lists are
    /// deleted, and joiners whose addition it shows lost are too.
    fn membership_applied(&mut self, g: u64, inc: u64, index: u64, ids: &[u64]) {
        let Some(spec) = self.groups.get(&g) else {
            return;
        };
        if spec.incarnation != inc {
            return;
        }
        let seen = self.conf_index.entry((g, inc)).or_insert(0);
        if index <= *seen {
            return;
        }
        *seen = index;
        let pending = &self.pending_adds;
        let gone: Vec<u64> = spec
            .members
            .iter()
            .copied()
            .filter(|n| !ids.contains(n))
            // A joiner added after this membership is not gone.
            .filter(|n| !pending.get(&(g, *n)).is_some_and(|&(_, at, _)| at > index))
            .collect();
        let resolved: Vec<u64> = self
            .pending_adds
            .iter()
            .filter(|(&(pg, _), &(pi, at, _))| pg == g && pi == inc && at <= index)
            .map(|(&(_, n), _)| n)
            .collect();
        for n in resolved {
            self.pending_adds.remove(&(g, n));
        }
        for n in gone {
            self.drop_member(g, inc, n);
        }
    }

    /// The host deletes node `n`'s replica of group `g` and forgets it.
    fn drop_member(&mut self, g: u64, inc: u64, n: u64) {
        if let Some(spec) = self.groups.get_mut(&g) {
            spec.members.retain(|&m| m != n);
            spec.joined.retain(|&m| m != n);
        }
        self.pending_adds.remove(&(g, n));
        self.stats.members_dropped += 1;
        let spread = self.rng.below(10);
        self.schedule(
            n,
            spread,
            HostOp::Remove {
                group: g,
                incarnation: inc,
            },
        );
    }

    /// Additions the leader accepted and then lost with no later
    /// membership to tell: a leader of a later term than the one that
    /// accepted it has committed an entry of its term (so no entry of an
    /// older term that it lacks can ever commit), has no change in flight,
    /// and does not list the joiner. (Of an earlier term or the same one,
    /// it may be a deposed leader that still believes it leads: seed 397
    /// once took a partitioned old leader's word, deleted the joiner, and
    /// the addition then committed under the new leader, leaving a member
    /// with no replica.)
    pub(super) fn resolve_lost_adds(&mut self) {
        let pending: Vec<_> = self.pending_adds.iter().map(|(&k, &v)| (k, v)).collect();
        for ((g, n), (inc, _, added_in)) in pending {
            if self.groups.get(&g).map(|s| s.incarnation) != Some(inc) {
                self.pending_adds.remove(&(g, n));
                continue;
            }
            let Some(leader) = self.leader_of(g) else {
                continue;
            };
            let node = self.node(leader).expect("up");
            let committed = node
                .group_status(g)
                .is_ok_and(|s| s.term > added_in && node.log_term(g, s.commit) == Some(s.term));
            let settled = node.membership_pending(g) == Some(false);
            let listed = node
                .members(g)
                .is_ok_and(|m| m.iter().any(|x| x.node_id == n));
            if committed && settled && !listed {
                self.stats.adds_lost += 1;
                self.drop_member(g, inc, n);
            }
        }
    }

    /// If node `id` leads group `g` and its commit index moved: a quorum
    /// of the voters of its membership holds the entry at the new commit
    /// index durably. (Not for groups with a replica that lost its disk:
    /// its acknowledgements from before the loss count by design.)
    fn check_commit_quorum(&mut self, id: u64, g: u64) -> Check {
        let Some(node) = self.node(id) else {
            return Ok(());
        };
        let Ok(status) = node.group_status(g) else {
            return Ok(());
        };
        let Some(inc) = node.group_incarnation(g) else {
            return Ok(());
        };
        let seen = self.commit_seen.entry((id, g, inc)).or_insert(0);
        let moved = status.commit > *seen;
        *seen = (*seen).max(status.commit);
        if status.role != Role::Leader || !moved {
            return Ok(());
        }
        let node = self.node(id).expect("up");
        let c = status.commit;
        let Some(term) = node.log_term(g, c) else {
            return Ok(());
        };
        let Ok(members) = node.members(g) else {
            return Ok(());
        };
        let voters: Vec<u64> = members
            .iter()
            .filter(|m| m.role == MemberRole::Voter)
            .map(|m| m.node_id)
            .collect();
        if voters.iter().any(|&v| self.lost_on(v, g, inc)) {
            return Ok(());
        }
        // A leader of an incarnation the host deleted, or one whose voters
        // include a replica the host deleted (a stale leader that missed
        // the removal): what those held is gone by design.
        let Some(spec) = self.groups.get(&g).filter(|s| s.incarnation == inc) else {
            return Ok(());
        };
        let deleted = |v: &u64| {
            !spec.members.contains(v)
                && !self
                    .durable_of(*v)
                    .is_some_and(|d| d.groups.get(&g).is_some_and(|(i, _)| *i == inc))
        };
        if voters.iter().any(deleted) {
            return Ok(());
        }
        let holds = |v: &u64| {
            self.durable_of(*v)
                .and_then(|d| d.groups.get(&g))
                .filter(|(i, _)| *i == inc)
                .is_some_and(|(_, store)| match store.term(c) {
                    Ok(t) => t == term,
                    // Compacted: covered by a snapshot it holds.
                    Err(_) => store.snapshot().index >= c,
                })
        };
        let held = voters.iter().filter(|v| holds(v)).count();
        if held < voters.len() / 2 + 1 {
            let progress: Vec<String> = voters
                .iter()
                .map(|&v| {
                    let last = self
                        .durable_of(v)
                        .and_then(|d| d.groups.get(&g))
                        .map(|(i, s)| (*i, s.last_index()));
                    format!(
                        "{v}: durable {last:?}, progress {:?}",
                        node.describe_progress(g, v)
                    )
                })
                .collect();
            return Err(format!(
                "node {id} leads group {g} and committed {c} (term {term}) with only {held} of its voters {voters:?} holding it durably\n  {}\n  members {members:?}",
                progress.join("\n  ")
            ));
        }
        self.stats.quorum_checks += 1;
        Ok(())
    }
}
