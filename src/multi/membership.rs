//! Membership changes as the node offers them: adding, promoting and
//! removing replicas of a group this node leads, joining an existing group
//! with an empty replica, and keeping the node's per-peer bookkeeping (the
//! peers it shares groups with) in step with each group's membership.
//!
//! The rules of a change (one at a time, in effect once in the log, the
//! leader's hand-off when it removes itself) are the Raft core's
//! (`raft/membership.rs`); a change is reported to the host once applied,
//! as [`Event::MembersChanged`](super::Event::MembersChanged).

use super::{Error, Node, WakeCause};
use crate::raft::{self, ConfChange, MemStore, MemberRole, Role};

/// One member of a group, as [`Node::members`] lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    pub node_id: u64,
    pub role: MemberRole,
    /// On the leader: the highest index known to match the leader's log
    /// on that member (its own durable end for the leader itself). None
    /// on other replicas.
    pub matched: Option<u64>,
}

impl Node {
    /// Propose adding `member` to group `group_id` with `role`, or changing
    /// the role of a member (promoting a non-voter, say). Only on the
    /// leader; one change at a time per group. Returns the index of the
    /// configuration entry: the change is done when an
    /// [`Event::MembersChanged`](super::Event::MembersChanged) of that
    /// index comes (and lost if one of a later index comes first without
    /// it). A new member's replica must exist on its node: created with
    /// [`join_group`](Node::join_group).
    pub fn add_member(
        &mut self,
        group_id: u64,
        member: u64,
        role: MemberRole,
    ) -> Result<u64, Error> {
        self.change_members(group_id, ConfChange::Add { id: member, role })
    }

    /// Propose removing `member` (possibly this node, the leader: it hands
    /// leadership over once the removal commits). As
    /// [`add_member`](Node::add_member) otherwise.
    pub fn remove_member(&mut self, group_id: u64, member: u64) -> Result<u64, Error> {
        self.change_members(group_id, ConfChange::Remove { id: member })
    }

    fn change_members(&mut self, group_id: u64, cc: ConfChange) -> Result<u64, Error> {
        let (ConfChange::Add { id, .. } | ConfChange::Remove { id }) = cc;
        if id == 0 {
            return Err(Error::InvalidArgument(
                "member id 0 is not a node id".into(),
            ));
        }
        let g = self.groups.get(group_id).ok_or(Error::NotFound(group_id))?;
        if g.raft.role() != Role::Leader {
            return Err(Error::NotLeader {
                group_id,
                leader: g.raft.leader(),
            });
        }
        if matches!(cc, ConfChange::Add { .. })
            && !g.raft.membership().contains(id)
            && g.raft.membership().ids().count() >= self.cfg.max_replicas
        {
            return Err(Error::InvalidArgument(format!(
                "group {group_id} already has the maximum of {} members",
                self.cfg.max_replicas
            )));
        }
        // A change needs the group awake on every side.
        self.wake(group_id, WakeCause::Host);
        let g = self
            .groups
            .get_mut(group_id)
            .ok_or(Error::NotFound(group_id))?;
        let p = g.raft.propose_conf_change(cc).map_err(|e| match e {
            raft::Error::NotLeader { leader } => Error::NotLeader { group_id, leader },
            raft::Error::ConfChangeBusy => Error::Busy {
                group_id,
                what: "membership changes in flight (or the leader's first commit pending)",
                value: 1,
                limit: 1,
            },
            raft::Error::ConfChangeInvalid(why) => {
                Error::InvalidArgument(format!("group {group_id}: {why}"))
            }
            source => Error::Raft { group_id, source },
        })?;
        tracing::info!(group_id, index = p.index, change = ?cc, "membership change proposed");
        self.stats.membership_changes += 1;
        self.touched(group_id);
        self.sync_members(group_id);
        Ok(p.index)
    }

    /// The members of group `group_id` as this replica sees them (the
    /// latest configuration in its log), voters first.
    pub fn members(&self, group_id: u64) -> Result<Vec<MemberInfo>, Error> {
        let g = self.groups.get(group_id).ok_or(Error::NotFound(group_id))?;
        let leading = g.raft.role() == Role::Leader;
        Ok(g.raft
            .membership()
            .members()
            .into_iter()
            .map(|(node_id, role)| MemberInfo {
                node_id,
                role,
                matched: if leading {
                    g.raft.follower_matched(node_id)
                } else {
                    None
                },
            })
            .collect())
    }

    /// Is a membership change of group `group_id` in the log and not yet
    /// committed (as this replica knows)? None if the group is unknown.
    pub fn membership_pending(&self, group_id: u64) -> Option<bool> {
        Some(self.groups.get(group_id)?.raft.conf_change_pending())
    }

    /// Create this node's replica of an existing group that it is about to
    /// be added to (or was just added to): empty, with no membership of its
    /// own, it never campaigns and waits for the group's leader to send it
    /// the log (or a snapshot), from which it learns the membership.
    /// `incarnation` is the group's, as for
    /// [`create_group`](Node::create_group): messages of any other are
    /// dropped.
    ///
    /// If this node removed a replica of the same group incarnation (it is
    /// being added back), the new one keeps the removed one's term and vote
    /// and, until its log counts it as a voter, votes only for candidates
    /// as up to date as the removed one's log (`Raft::succeed_removed`).
    /// Write the creation with what [`succession`](Node::succession)
    /// returns (`WalBatch::create_successor`), so that a restart keeps it.
    pub fn join_group(&mut self, group_id: u64, incarnation: u64) -> Result<(), Error> {
        self.insert_group(group_id, incarnation, &[], MemStore::new(), 0, true)?;
        self.take_tombstone(group_id, incarnation);
        Ok(())
    }

    /// Bring the node's per-peer group counts (which peers it shares a
    /// group with, for liveness and batching) in line with the group's
    /// membership, after a change or its undoing.
    pub(super) fn sync_members(&mut self, group_id: u64) {
        let me = self.cfg.node_id;
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        let version = g.raft.conf_version();
        if version == g.conf_version {
            return;
        }
        g.conf_version = version;
        self.balancer.touch();
        // Once per change on each replica (and once more if a change is
        // undone by a new leader's log): what an operator looks for. Not
        // for a group's creation membership (index 0), which would be a
        // line per group at every start.
        let m = g.raft.membership();
        if g.raft.conf_index() > 0 {
            tracing::info!(
                group_id,
                index = g.raft.conf_index(),
                voters = ?m.voters,
                non_voters = ?m.learners,
                "membership in effect"
            );
        }
        let mut now = g.raft.member_ids();
        now.retain(|&m| m != me);
        now.sort_unstable();
        let before = std::mem::replace(&mut g.members, now.clone());
        let gone = before.iter().copied().filter(|m| !now.contains(m));
        self.peers
            .remove_group(gone.collect::<Vec<_>>().into_iter());
        let new = now.iter().copied().filter(|m| !before.contains(m));
        self.peers
            .add_group(new.collect::<Vec<_>>().into_iter(), self.ticks);
    }
}
