//! The leader balancer: after a node returns (or groups were created while
//! one was away), hand leaderships over to the nodes that lead less than
//! their share, a few at a time, until every node leads about its share.
//!
//! Each node balances only what it leads, from what it sees locally: for
//! every group it hosts, the group's voters and its current leader. A
//! group with `n` voters on nodes this node hears owes each of them `1/n`
//! of a leadership; a node's *share* is the sum of that over the groups
//! hosted here, and its *excess* is how many of those groups it leads
//! minus its share. With every node hosting every group (the common
//! broker shape of 3 nodes and 3 replicas) the views of all nodes agree
//! and the shares are exactly `L/N`; with 5 nodes and 3 replicas each node
//! balances over the groups it shares with the others, which is the same
//! goal seen from its own groups.
//!
//! A node knows its own excess exactly (every group it leads is hosted
//! here), but not another node's: that one hosts groups this node does
//! not see. So every node with the balancer on sends its own excess in
//! its heartbeat batches (`HeartbeatBatch::leader_excess`, once per
//! interval per peer), and a node whose excess is above a small tolerance
//! hands groups it leads to voters whose *reported* excess is at least one
//! group below their share (the one furthest below first), while it stays
//! above. Each such move takes one group from a node above its share to
//! one below it, so the sum of the squared excesses falls with every
//! move: nothing moves back and forth. (A first version judged the others
//! from its own groups alone; in the simulation two nodes of a 4-node
//! cluster, each seeing a different part of the groups, handed one group
//! back and forth forever.) Transfers this node started, and those that
//! completed since the target last reported, are counted for the target
//! until its report includes them. A transfer is started only when it
//! cannot disturb the group:
//!
//! - the target is a voter this node hears, whose log already matches the
//!   leader's (so `TimeoutNow` leaves at once and proposals are refused for
//!   one round trip at most; proposals accepted before it are in the
//!   target's log and are committed by it);
//! - the group has no membership change in flight and no read waiting
//!   (a read pending at a leader that steps down would fail);
//! - groups with no proposal in flight go first.
//!
//! A node that lost a peer starts no transfer for a while (the hold,
//! [`LOSS_HOLD_TIMEOUTS`]), but keeps tallying and reporting its excess,
//! so that the others can still hand it its share.
//!
//! At most `NodeConfig::balance_max_transfers` transfers are in flight per
//! node, and the tally runs at most once per heartbeat interval, only
//! while something changed since the node was last found balanced (a
//! leader changed, a peer was lost or heard again, a group or member came
//! or went): a balanced node with idle groups does no work here at all.

use std::collections::HashMap;

use super::node::Node;
use super::WakeCause;
use crate::raft::Role;

/// A node's excess must be above this share of its share (in per cent),
/// and above one group, before it hands any group over: half the slack
/// the operator's goal (within 10% of L/N) allows. (Half a group was
/// tried: the simulation, seed 66, then saw leaders handed back and forth
/// while a target's report lagged.)
const TOLERANCE_PERCENT: i64 = 5;

/// One leadership, in the units the tally counts in: divisible by every
/// group size up to 16, so that the shares add up exactly (a sum of
/// floating-point thirds would leave a node a hair short of "one group
/// below its share").
const ONE: i64 = 720_720;

/// After a tally that found this node over its share but could start no
/// transfer (no target caught up yet), the next one waits this many
/// heartbeat intervals.
const BACKOFF_INTERVALS: u64 = 5;

/// A transfer the target did not complete (it cannot campaign: a replica
/// that rejoined with an empty disk never votes; or it is too slow) is not
/// tried again for this many election timeouts, doubled at each further
/// failure up to [`ABANDONED_MAX_DOUBLINGS`] times: each try refuses the
/// group's proposals for an election timeout, so a replica that can never
/// lead costs its group a few of them in all, not one every few seconds.
const ABANDONED_TIMEOUTS: u64 = 20;
const ABANDONED_MAX_DOUBLINGS: u32 = 12;

/// After a peer is lost, no transfer starts for this many election
/// timeouts (10 s with muxraft's default timeouts) while it stays lost.
/// The survivors elect leaders for its groups within one or two timeouts;
/// moving other groups' leaders among them at the same time would add
/// elections to a cluster busy failing over (and groups the dead node did
/// not lead should see none), and a node that comes back soon, as in a
/// rolling restart, gets its share back anyway. A peer lost for good is
/// balanced around once the hold ends.
pub(super) const LOSS_HOLD_TIMEOUTS: u64 = 20;

#[derive(Default)]
pub(crate) struct Balancer {
    /// On: set by `NodeConfig::balance_leaders` or `Node::set_balance_leaders`.
    on: bool,
    /// Something changed since the node was last found balanced.
    dirty: bool,
    /// No tally before this tick.
    next_tally: u64,
    /// Transfers this balancer started: (group, target).
    inflight: Vec<(u64, u64)>,
    /// Transfers abandoned by their target: (group, target) -> not tried
    /// before this tick, and how many times it failed. An entry goes when
    /// a transfer of the pair completes or the group goes.
    abandoned: HashMap<(u64, u64), (u64, u32)>,
    /// This node's excess at its last tally: what its batches report.
    mine: Option<i64>,
    /// Per peer: the excess it last reported, and how many reports came.
    reports: HashMap<u64, (i64, u64)>,
    /// Transfers to a peer that completed: counted for it until it has
    /// sent [`REPORTS_TO_CATCH_UP`] more reports (by then its own tally
    /// includes them).
    credits: Vec<(u64, u64)>,
    /// No transfer starts before this tick: a peer was lost
    /// ([`LOSS_HOLD_TIMEOUTS`]); 0 once every peer is heard again.
    hold_until: u64,
}

/// Reports a target sends after taking over a group before its report is
/// sure to include it: the tally runs at most once per heartbeat interval
/// (once per [`BACKOFF_INTERVALS`] when it could start no transfer) and
/// the batch that carries it leaves at the next interval. Counting a
/// completed transfer a little too long only makes givers wait.
const REPORTS_TO_CATCH_UP: u64 = BACKOFF_INTERVALS + 3;

/// This node's leaderships against its share, over the groups hosted
/// here, in units of [`ONE`] (the other nodes report their own).
#[derive(Default)]
struct Tally {
    /// Groups it leads (a transfer under way counts for its target).
    led: i64,
    /// Its share: `1/n` of each group with `n` voters on heard nodes.
    share: i64,
}

impl Tally {
    fn excess(&self) -> i64 {
        self.led - self.share
    }
}

impl Balancer {
    pub fn new(on: bool) -> Balancer {
        Balancer {
            on,
            dirty: on,
            ..Balancer::default()
        }
    }

    /// Something that may unbalance the leaders changed.
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    /// A peer was lost: hold until tick `until` (see
    /// [`LOSS_HOLD_TIMEOUTS`]).
    pub fn hold(&mut self, until: u64) {
        self.dirty = true;
        self.hold_until = self.hold_until.max(until);
    }

    /// Every peer is heard again: the hold ends, and the next tally (put
    /// off while holding) runs at once.
    pub fn end_hold(&mut self) {
        self.dirty = true;
        if self.hold_until != 0 {
            self.next_tally = 0;
        }
        self.hold_until = 0;
    }

    /// `peer` is heard again, or restarted: a transfer to it that it did
    /// not complete may have failed only because it was away, so the
    /// pairs abandoned with it as target may be tried again at once
    /// rather than after [`ABANDONED_TIMEOUTS`] (a target that cannot lead
    /// fails again, and waits twice as long as before).
    pub fn peer_back(&mut self, peer: u64) {
        self.dirty = true;
        for (_, (at, _)) in self.abandoned.iter_mut().filter(|((_, to), _)| *to == peer) {
            *at = 0;
        }
    }

    /// What this node's batches say of its leaders.
    pub fn report(&self) -> Option<i64> {
        self.on.then_some(self.mine).flatten()
    }

    /// A batch from `peer` arrived with its report (`None`: it does not
    /// balance, and is never handed a group by this one).
    pub fn peer_reported(&mut self, peer: u64, excess: Option<i64>) {
        match excess {
            Some(x) => {
                let r = self.reports.entry(peer).or_insert((0, 0));
                *r = (x, r.1 + 1);
                let seen = r.1;
                self.credits
                    .retain(|&(to, at)| to != peer || seen < at + REPORTS_TO_CATCH_UP);
            }
            None => {
                self.reports.remove(&peer);
                self.credits.retain(|&(to, _)| to != peer);
            }
        }
    }

    /// How many groups above its share `peer` leads, from its report and
    /// what was handed to it since, or `None` without a report.
    fn peer_excess(&self, peer: u64) -> Option<i64> {
        let &(x, _) = self.reports.get(&peer)?;
        let moving = self.inflight.iter().filter(|&&(_, to)| to == peer).count()
            + self.credits.iter().filter(|&&(to, _)| to == peer).count();
        Some(x + ONE * moving as i64)
    }
}

impl Node {
    /// Turn the leader balancer on or off (see `balance.rs`). The runtime
    /// turns it on when an embedded node starts with the default setting.
    pub fn set_balance_leaders(&mut self, on: bool) {
        self.balancer.on = on;
        self.balancer.dirty = on;
        if !on {
            self.balancer.inflight.clear();
        }
    }

    /// The voter a transfer of `group_id` led here is handing it to, if
    /// one is under way.
    pub fn transferring_to(&self, group_id: u64) -> Option<u64> {
        self.groups.get(group_id)?.raft.transferring_to()
    }

    /// Is the leader balancer on?
    pub fn balance_leaders(&self) -> bool {
        self.balancer.on
    }

    /// Called at every tick: forget finished transfers, and when something
    /// changed and the last tally is a heartbeat interval old, tally the
    /// leaders and start transfers while this node leads more than its
    /// share.
    pub(super) fn balance(&mut self) {
        if !self.balancer.on {
            return;
        }
        let (groups, b, now) = (&self.groups, &mut self.balancer, self.ticks);
        let timeout = ABANDONED_TIMEOUTS * u64::from(self.cfg.election_ticks);
        b.inflight.retain(|&(group_id, to)| {
            let Some(g) = groups.get(group_id) else {
                b.abandoned.remove(&(group_id, to));
                return false;
            };
            if g.raft.role() != Role::Leader {
                b.abandoned.remove(&(group_id, to));
                if g.raft.leader() == to {
                    let seen = b.reports.get(&to).map_or(0, |r| r.1);
                    b.credits.push((to, seen));
                }
                return false; // done (or deposed)
            }
            if g.raft.transferring_to() == Some(to) {
                return true;
            }
            let failures = b.abandoned.get(&(group_id, to)).map_or(0, |&(_, f)| f);
            let wait = timeout << failures.min(ABANDONED_MAX_DOUBLINGS);
            b.abandoned
                .insert((group_id, to), (now + wait, failures + 1));
            false
        });
        if !self.balancer.dirty || self.ticks < self.balancer.next_tally {
            return;
        }
        let interval = u64::from(self.cfg.heartbeat_ticks);
        self.balancer.next_tally = self.ticks + interval;
        let room =
            (self.cfg.balance_max_transfers as usize).saturating_sub(self.balancer.inflight.len());
        let (tally, mut candidates) = self.tally();
        let mut mine = tally.excess();
        self.balancer.mine = Some(mine);
        if self.ticks < self.balancer.hold_until {
            // Holding after a loss: no transfer starts here, but the
            // report stays true, so that the others (which may not hold:
            // they may not have shared a group with the lost peer) hand
            // this node its share now rather than when the hold ends
            // (seed 16470). It stays dirty, tallied again at the pace of
            // a node that found no target.
            self.balancer.next_tally = self.ticks + BACKOFF_INTERVALS * interval;
            return;
        }
        let tolerance = (tally.share * TOLERANCE_PERCENT / 100).max(ONE);
        if mine <= tolerance {
            // Balanced, as far as this node goes: nothing to do until
            // something changes (unless its own transfers are still on).
            self.balancer.dirty = !self.balancer.inflight.is_empty();
            return;
        }
        if room == 0 {
            return;
        }
        // Groups with nothing in flight first; then by id, so that runs
        // replay.
        candidates.sort_unstable_by_key(|&(group_id, busy)| (busy, group_id));
        let mut started = 0;
        for (group_id, _) in candidates {
            if started == room || mine <= ONE / 2 {
                break;
            }
            let Some(to) = self.pick_target(group_id) else {
                continue;
            };
            self.wake(group_id, WakeCause::Host);
            let g = self
                .groups
                .get_mut(group_id)
                .expect("a candidate is hosted");
            if g.raft.transfer_leader(to).is_err() {
                continue;
            }
            tracing::debug!(group_id, to, "balancing leaders: transferring");
            self.stats.transfers_started += 1;
            self.stats.balance_transfers += 1;
            if self.balancer.abandoned.contains_key(&(group_id, to)) {
                self.stats.balance_retries += 1;
            }
            self.touched(group_id);
            self.balancer.inflight.push((group_id, to));
            mine -= ONE;
            started += 1;
        }
        if started == 0 {
            // Over its share with no target ready (none caught up yet, or
            // every group busy): look again a little later.
            self.balancer.next_tally = self.ticks + BACKOFF_INTERVALS * interval;
        }
    }

    /// The tally over every group hosted here, and the groups this node
    /// leads that could be handed over, each with whether it has proposals
    /// in flight.
    fn tally(&self) -> (Tally, Vec<(u64, bool)>) {
        let me = self.cfg.node_id;
        let mut t = Tally::default();
        let mut candidates = Vec::new();
        let mut heard = Vec::new();
        for (group_id, g) in self.groups.iter() {
            let voters = g.raft.voters();
            if voters.len() < 2 || !voters.contains(&me) {
                continue;
            }
            let leading = g.raft.role() == Role::Leader;
            // A transfer under way counts for its target already.
            let leader = match (leading, g.raft.transferring_to()) {
                (true, Some(to)) => to,
                (true, None) => me,
                (false, _) => g.raft.leader(),
            };
            heard.clear();
            heard.extend(
                voters
                    .iter()
                    .copied()
                    .filter(|&v| v == me || self.peers.is_heard(v)),
            );
            if leader == 0 || !heard.contains(&leader) {
                continue; // leaderless for now: an election will place it
            }
            t.share += ONE / heard.len() as i64;
            if leader != me {
                continue;
            }
            t.led += ONE;
            if !g.raft.conf_change_pending() && g.raft.pending_reads() == 0 && heard.len() > 1 {
                candidates.push((group_id, g.has_pending()));
            }
        }
        (t, candidates)
    }

    /// The voter of `group_id` to hand it to: one this node hears, whose
    /// log matches the leader's, and that reports leading at least one
    /// group less than its share (the one furthest below first; the lower
    /// id on a tie).
    fn pick_target(&self, group_id: u64) -> Option<u64> {
        let me = self.cfg.node_id;
        let g = self.groups.get(group_id)?;
        g.raft
            .voters()
            .iter()
            .copied()
            .filter(|&v| v != me && self.peers.is_heard(v))
            .filter_map(|v| Some((self.balancer.peer_excess(v)?, v)))
            .filter(|&(x, _)| x <= -ONE)
            .map(|(_, v)| v)
            .filter(|&v| {
                let wait = self.balancer.abandoned.get(&(group_id, v));
                wait.map_or(true, |&(at, _)| at <= self.ticks)
            })
            .filter(|&v| g.raft.transfer_ready(v))
            .min_by_key(|&v| (self.balancer.peer_excess(v), v))
    }
}
