//! Membership calls: adding, promoting and removing members of a group,
//! listing them, and joining an existing group with an empty replica.

use super::callbacks::{member_role_from_c, member_role_to_c, muxraft_member, muxraft_member_role};
use super::node::{muxraft_node, with_node};
use super::status::*;

/// Propose adding the replica on node `member_node_id` to a group this node
/// leads, with `role` (`MUXRAFT_VOTER`, `MUXRAFT_NONVOTER` or
/// `MUXRAFT_PROMOTABLE`), or giving an existing member that role (e.g.
/// `MUXRAFT_VOTER` promotes a non-voter). Create the new member's replica
/// first, on its node, with `muxraft_group_join`; in embedded mode its node
/// must be one of this node's peers (`muxraft_node_add_peer` or the
/// config's): a member nobody can reach is not refused, it just never
/// answers (and a voter that never answers holds back commits). Returns
/// at once: the change is done
/// when `members_changed` reports a membership with it (on every replica,
/// this one included). A new voter counts toward commit from the moment the
/// change is in the leader's log, so add a replica that has to catch up as
/// `MUXRAFT_PROMOTABLE`: it receives the log (or a snapshot) and is made a
/// voter once it has caught up, without the group waiting for it.
///
/// Changes go one at a time per group (one replica added, removed or
/// changed; Raft's single-server changes), and none before a new leader
/// has committed an entry of its term.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_NOT_LEADER` (this node does not lead the
/// group, or is handing leadership over); `MUXRAFT_BUSY` (another change of
/// the group is in flight, or this leader is new: retry once
/// `members_changed` reported it, or shortly); `MUXRAFT_NOT_FOUND`;
/// `MUXRAFT_INVALID_ARGUMENT` (NULL node, member 0, an unknown `role`, the
/// member already has that role, the group is at `max_replicas`);
/// `MUXRAFT_IO`; `MUXRAFT_SHUTDOWN`; `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_add_member(
    node: *mut muxraft_node,
    group_id: u64,
    member_node_id: u64,
    role: muxraft_member_role,
) -> muxraft_status {
    with_node(node, |r| {
        let Some(role) = member_role_from_c(role) else {
            return fail(
                MUXRAFT_INVALID_ARGUMENT,
                format!("unknown member role {role} (MUXRAFT_VOTER, _NONVOTER or _PROMOTABLE)"),
            );
        };
        match r.add_member(group_id, member_node_id, role) {
            Ok(_) => MUXRAFT_OK,
            Err(e) => fail_with(&e),
        }
    })
}

/// Propose removing the replica on node `member_node_id` from a group this
/// node leads. It may be this node itself: it leads until the removal
/// commits, then hands leadership to the most caught-up voter and steps
/// down. Returns at once; done when `members_changed` reports a membership
/// without it. The leader goes on sending the removed replica the log and
/// heartbeats until it holds its removal, committed (at most a few
/// election timeouts if it does not answer), so a reachable removed
/// replica gets its own `members_changed` without itself and stops taking
/// part; remove it from its node with `muxraft_group_remove` then (or
/// when the leader's `members_changed` reports the removal, if that node
/// is unreachable). A group keeps
/// at least one voter.
///
/// Returns as `muxraft_group_add_member`; `MUXRAFT_INVALID_ARGUMENT` also
/// when the node is not a member, or is the last voter.
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_remove_member(
    node: *mut muxraft_node,
    group_id: u64,
    member_node_id: u64,
) -> muxraft_status {
    with_node(node, |r| match r.remove_member(group_id, member_node_id) {
        Ok(_) => MUXRAFT_OK,
        Err(e) => fail_with(&e),
    })
}

/// The members of a group as this node's replica sees them (the latest
/// membership in its log, committed or not; on the leader with each
/// member's `match_index`), voters first. Writes at most `capacity` of
/// them to `out` and sets `*count` (if not NULL) to how many there are.
/// `capacity` 0 (with `out` NULL) asks for the count: the answer is then
/// `MUXRAFT_TOO_LARGE` with `*count` set (`MUXRAFT_OK` for a joined
/// replica that knows no member yet). A group has at most `max_replicas`
/// members.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_TOO_LARGE` (`capacity` < `*count`:
/// the first `capacity` were written); `MUXRAFT_NOT_FOUND`;
/// `MUXRAFT_INVALID_ARGUMENT` (NULL node, NULL `out` with a non-zero
/// `capacity`); `MUXRAFT_PANIC`. Answers after `muxraft_node_stop` too.
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_members(
    node: *mut muxraft_node,
    group_id: u64,
    out: *mut muxraft_member,
    capacity: usize,
    count: *mut usize,
) -> muxraft_status {
    with_node(node, |r| {
        if out.is_null() && capacity > 0 {
            return fail(
                MUXRAFT_INVALID_ARGUMENT,
                "out is NULL but capacity is not 0",
            );
        }
        let members = match r.members(group_id) {
            Ok(m) => m,
            Err(e) => return fail_with(&e),
        };
        if !count.is_null() {
            // SAFETY: non-NULL pointer to the caller's size_t (contract).
            unsafe { count.write(members.len()) };
        }
        for (i, m) in members.iter().take(capacity).enumerate() {
            let c = muxraft_member {
                node_id: m.node_id,
                match_index: m.matched.unwrap_or(0),
                role: member_role_to_c(m.role),
            };
            // SAFETY: `out` is non-NULL (checked: capacity > 0 here) and
            // holds `capacity` > i writable members (contract).
            unsafe { out.add(i).write(c) };
        }
        if members.len() > capacity {
            return fail(
                MUXRAFT_TOO_LARGE,
                format!(
                    "group {group_id} has {} members, out holds {capacity}",
                    members.len()
                ),
            );
        }
        MUXRAFT_OK
    })
}

/// Create this node's replica of an existing group it is being added to:
/// empty, with no membership of its own, it never campaigns and waits for
/// the group's leader to send it the log (or a snapshot); then
/// `members_changed` reports the membership it learned (`restore` comes
/// first if it was a snapshot). `incarnation` is the group's, as the other
/// members were created with: messages of any other incarnation are
/// dropped. Call it on the new member's node before (or just after)
/// `muxraft_group_add_member` on the leader. Durable before it returns,
/// like `muxraft_group_create`.
///
/// A node removed from the group and added back joins under the same
/// replica id (the node's): this node remembers the replica it removed
/// (`muxraft_group_remove` writes it to the data directory: the latest
/// 16,384 removals), and the new one keeps its term and vote and votes
/// only for candidates at least as up to date as it was, so that a member
/// still on an older membership cannot be elected by the newcomer's vote
/// without entries committed meanwhile. Both are durable: a restart of the
/// node between the removal and the re-addition, or after it, keeps them
/// (see the design document, "Membership changes"). Use the group's
/// incarnation as before: a new incarnation is a new group, and its
/// replicas remember nothing of the old one's.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_ALREADY_EXISTS` (the node already hosts the
/// group); `MUXRAFT_INVALID_ARGUMENT` (NULL node); `MUXRAFT_IO`;
/// `MUXRAFT_SHUTDOWN`; `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_join(
    node: *mut muxraft_node,
    group_id: u64,
    incarnation: u64,
) -> muxraft_status {
    with_node(node, |r| match r.join_group(group_id, incarnation) {
        Ok(()) => MUXRAFT_OK,
        Err(e) => fail_with(&e),
    })
}
