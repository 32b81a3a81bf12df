//! Quiescence: an idle group costs nothing, and the per-pair heartbeat
//! batch is what tells a node its peers (and so the leaders of its quiet
//! groups) are alive.
//!
//! # Going quiet
//!
//! At each heartbeat interval an awake leader checks whether it may go
//! quiet (`Raft::quiet_leader`: everything committed and applied
//! everywhere it can see, nothing pending, every follower on a node this
//! node hears holding the whole log). After [`QUIET_INTERVALS`] such
//! intervals in a row its heartbeat rows carry the *quiesce notice*. A
//! follower that gets a notice and holds exactly the leader's committed log
//! (`Raft::quiet_follower`) goes quiet, remembering the leader's node and
//! that node's liveness epoch, and says so in its answer row. Once every
//! follower it counted answered so, the leader goes quiet too. Quiet groups
//! leave the tick loop on both sides (the registry keeps awake groups in
//! front, and a tick walks only those) and send no rows at all; the empty
//! batch each node still sends each peer every interval keeps them
//! covered.
//!
//! A lost notice or answer costs nothing but time: the leader repeats the
//! notice every interval until every counted follower answered it, a
//! duplicate finds the follower already quiet and is answered again, and
//! an answer to a leader that is no longer asking is ignored.
//!
//! # Waking up
//!
//! Anything that needs the group wakes it: a proposal, a campaign, any
//! group message, a heartbeat row without the notice, an answer row that
//! does not say "quiet". A follower woken by anything but its leader
//! resumes close to its election timeout and sends its leader an answer
//! row, which wakes the leader, whose heartbeats then reset the follower's
//! timer within an interval; a leader resumes counting the followers on
//! nodes it hears as recently active, so its first CheckQuorum does not
//! depose it.
//!
//! When this node stops hearing a peer (see `liveness.rs`), exactly the
//! groups whose leader is on that peer wake up, forget that leader and
//! campaign: one surviving replica of each group first (which one depends
//! on the group, so the new leaders spread over the survivors), within a
//! short window that spreads hundreds of elections out, and the others
//! only if it did not win within half an election timeout, so that two
//! survivors rarely split the vote. In a quiet group every one of them
//! first waits a heartbeat interval: another survivor may lose the peer up
//! to an interval and a tick later than this node, and until then it holds
//! the old leader's lease and drops pre-votes unanswered, which would cost
//! the group a second round. Groups led elsewhere stay quiet. When a
//! peer returns (or restarts), the quiet groups led here with a replica on
//! it wake up and catch it up. A quiet leader that no longer hears a quorum
//! wakes up, so that its CheckQuorum deposes it.

use super::group::Quiet;
use super::liveness::Heard;
use super::node::Node;
use super::stats::WakeCause;
use crate::raft::{Message, MessageType, Role};

/// Gauges of quiescence and node-level liveness (see
/// [`Node::quiet_gauges`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuietGauges {
    pub groups_awake: u64,
    pub groups_quiesced: u64,
    /// Nodes hosting a replica of a group hosted here, and those of them
    /// this node hears.
    pub peers: u64,
    pub peers_heard: u64,
}

/// Heartbeat intervals a leader must find nothing to do, in a row, before
/// it sends the quiesce notice (the hysteresis that keeps a group with a
/// trickle of work from going quiet and waking on every entry).
pub const QUIET_INTERVALS: u32 = 3;

impl Node {
    /// Does `group_id` sleep (quiesced, out of the tick loop)?
    pub fn is_quiesced(&self, group_id: u64) -> bool {
        self.groups.contains(group_id) && !self.groups.is_awake(group_id)
    }

    /// Does this node's replica of `group_id` vote (None: not hosted)?
    pub fn group_can_vote(&self, group_id: u64) -> Option<bool> {
        self.groups.get(group_id).map(|g| g.raft.can_vote())
    }

    /// Groups awake and quiesced here.
    pub fn quiet_counts(&self) -> (usize, usize) {
        let awake = self.groups.awake_len();
        (awake, self.groups.len() - awake)
    }

    /// The quiescence and liveness gauges, now.
    pub fn quiet_gauges(&self) -> QuietGauges {
        let (awake, quiet) = self.quiet_counts();
        QuietGauges {
            groups_awake: awake as u64,
            groups_quiesced: quiet as u64,
            peers: self.peers.ids().count() as u64,
            peers_heard: self.peers.heard_count() as u64,
        }
    }

    /// Each peer with whether this node hears it and its liveness epoch.
    pub fn peer_liveness(&self) -> Vec<(u64, bool, u64)> {
        self.peers.states().collect()
    }

    /// Wake `group_id` if it sleeps. A follower resumes `elapsed` ticks into
    /// its election timeout (see `Raft::wake_follower`).
    pub(super) fn wake(&mut self, group_id: u64, cause: WakeCause) {
        if !self.groups.wake(group_id) {
            // Awake already: a leader counting toward quiet starts over.
            if let Some(g) = self.groups.get_mut(group_id) {
                if !matches!(g.quiet, Quiet::Awake { idle: 0 }) {
                    g.quiet = Quiet::Awake { idle: 0 };
                }
            }
            return;
        }
        self.stats.wakeups[cause as usize] += 1;
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        let was = std::mem::replace(&mut g.quiet, Quiet::Awake { idle: 0 });
        match g.raft.role() {
            Role::Leader => {
                let peers = &self.peers;
                g.raft.wake_leader(|id| peers.is_heard(id));
            }
            _ => {
                let from_leader = matches!(cause, WakeCause::LeaderMessage);
                let elapsed = if from_leader {
                    0
                } else {
                    self.cfg.election_ticks - self.cfg.heartbeat_ticks - 1
                };
                g.raft.wake_follower(elapsed);
                // Wake the leader too, with an answer row (one that does
                // not say "quiet"), so that its heartbeats reach us again:
                // also when its own message woke us, since that message
                // may be a late one from before it went quiet (a delayed
                // append or TimeoutNow), and a quiet leader would then never send
                // again. An awake leader takes the row as any heartbeat
                // answer.
                if let Quiet::Follower { leader, .. } = was {
                    let mut m = Message::new(
                        MessageType::HeartbeatResponse,
                        self.cfg.node_id,
                        leader,
                        g.raft.term(),
                    );
                    m.commit = 0;
                    // As the replica's own answers are (`Raft::send`).
                    m.rejoined = !g.raft.can_vote();
                    let incarnation = g.incarnation;
                    self.outbox
                        .route(self.cfg.batch_heartbeats, group_id, incarnation, m);
                }
            }
        }
    }

    /// A group message (or snapshot piece) from node `from` for `group_id`
    /// is about to be stepped: it wakes the group if it is quiet.
    pub(super) fn wake_for_message(&mut self, from: u64, group_id: u64) {
        let cause = match self.groups.get(group_id).map(|g| &g.quiet) {
            Some(Quiet::Follower { leader, .. }) if *leader == from => WakeCause::LeaderMessage,
            Some(Quiet::Follower { .. } | Quiet::Leader) => WakeCause::FollowerMessage,
            _ => return,
        };
        self.wake(group_id, cause);
    }

    /// At a heartbeat interval, for an awake leader group that just sent
    /// its heartbeats: count toward going quiet, and mark its rows with the
    /// notice once it may.
    pub(super) fn quiesce_beat(&mut self, group_id: u64) {
        let (peers, outbox) = (&self.peers, &mut self.outbox);
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        let me = self.cfg.node_id;
        if !g.raft.quiet_leader(|id| peers.is_heard(id)) {
            g.quiet = Quiet::Awake { idle: 0 };
            return;
        }
        let acked = match &mut g.quiet {
            Quiet::Awake { idle } => {
                *idle += 1;
                if *idle < QUIET_INTERVALS {
                    return;
                }
                g.quiet = Quiet::Quiescing { acked: Vec::new() };
                Vec::new()
            }
            Quiet::Quiescing { acked } => acked.clone(),
            // Asleep groups are not ticked.
            Quiet::Leader | Quiet::Follower { .. } => return,
        };
        // Every row carries the notice from now on, also to the followers
        // already quiet: a row without it would wake them.
        let mut waiting = false;
        for v in g.raft.member_ids() {
            if v != me && peers.is_heard(v) {
                outbox.mux.mark_quiesce(v, group_id);
                waiting |= !acked.contains(&v);
            }
        }
        if !waiting {
            // Every follower it counts is quiet already (the others' nodes
            // were lost since).
            self.sleep_leader(group_id);
        }
    }

    fn sleep_leader(&mut self, group_id: u64) {
        if let Some(g) = self.groups.get_mut(group_id) {
            g.quiet = Quiet::Leader;
            self.groups.sleep(group_id);
            self.stats.quiesced += 1;
        }
    }

    /// A heartbeat row from `from` for `group_id` is about to be stepped;
    /// `notice` if it carries the quiesce notice. Only a notice repeated to
    /// a follower already quiet under that leader leaves it asleep (stepping
    /// it answers it); any other row wakes a quiet group.
    pub(super) fn before_row(&mut self, from: u64, group_id: u64, notice: bool) {
        // Quiet under this leader, whose node is still heard in the epoch
        // it was heard in then.
        let repeated = notice
            && matches!(
                self.groups.get(group_id).map(|g| &g.quiet),
                Some(&Quiet::Follower { leader, epoch })
                    if leader == from && self.peers.heard_in(leader, epoch)
            );
        if !repeated {
            self.wake_for_message(from, group_id);
        }
    }

    /// A heartbeat row from `from` for `group_id` at `term` with `commit`
    /// was stepped and carried the quiesce notice: go quiet if this
    /// follower may, and say so in its answer.
    pub(super) fn after_notice(&mut self, from: u64, group_id: u64, term: u64, commit: u64) {
        let epoch = self.peers.epoch(from);
        let heard = self.peers.is_heard(from);
        let quiesce = self.cfg.quiesce;
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        match g.quiet {
            Quiet::Follower { leader, .. } if leader == from => {
                // A repeated notice: answer it again.
                self.outbox.mux.mark_quiesced(from, group_id);
            }
            Quiet::Awake { .. }
                if quiesce && heard && g.raft.quiet_follower(from, term, commit) =>
            {
                g.quiet = Quiet::Follower {
                    leader: from,
                    epoch,
                };
                self.groups.sleep(group_id);
                self.stats.quiesced += 1;
                self.outbox.mux.mark_quiesced(from, group_id);
            }
            _ => {}
        }
    }

    /// An answer row from `from` for `group_id` is about to be stepped;
    /// `quiet` if it says the follower went quiet. Returns whether to step
    /// it.
    pub(super) fn before_answer(&mut self, from: u64, group_id: u64, quiet: bool) -> bool {
        let Some(g) = self.groups.get_mut(group_id) else {
            return true;
        };
        match &mut g.quiet {
            Quiet::Leader => {
                if quiet {
                    // A late or repeated answer to a notice: nothing to do.
                    return false;
                }
                self.wake(group_id, WakeCause::FollowerMessage);
                true
            }
            Quiet::Quiescing { acked } if quiet => {
                if !acked.contains(&from) {
                    acked.push(from);
                }
                let me = self.cfg.node_id;
                let peers = &self.peers;
                let all = g
                    .raft
                    .member_ids()
                    .iter()
                    .all(|&v| v == me || !peers.is_heard(v) || acked.contains(&v));
                if all && g.raft.quiet_leader(|id| peers.is_heard(id)) {
                    self.sleep_leader(group_id);
                }
                true
            }
            _ => true,
        }
    }

    /// A frame from `peer` arrived; `session` if it named the peer's.
    pub(super) fn heard_from(&mut self, peer: u64, session: Option<u64>) {
        match self.peers.heard(peer, self.ticks, session) {
            Heard::Same => {}
            Heard::Returned => {
                self.every_peer_heard_ends_the_balance_hold();
                self.balancer.peer_back(peer);
                self.stats.peers_returned += 1;
                tracing::info!(peer, "peer heard again");
                self.peer_returned(peer);
            }
            Heard::Restarted => {
                self.every_peer_heard_ends_the_balance_hold();
                self.balancer.peer_back(peer);
                self.stats.peers_restarted += 1;
                tracing::info!(peer, "peer restarted: the groups it led elect again");
                // Its replicas start over: the groups it led need a leader,
                // and the quiet ones led here must catch it up.
                self.leader_node_gone(peer, true);
                self.peer_returned(peer);
            }
        }
    }

    /// A peer was heard again: once no peer is lost, the leader balancer
    /// may move leaders again at once (`balance.rs`: the hold after a loss).
    fn every_peer_heard_ends_the_balance_hold(&mut self) {
        if self.peers.heard_count() == self.peers.ids().count() {
            self.balancer.end_hold();
        } else {
            self.balancer.touch();
        }
    }

    /// Called at every tick: peers not heard for an election timeout are
    /// lost.
    pub(super) fn check_liveness(&mut self) {
        let lost = self
            .peers
            .expire(self.ticks, u64::from(self.cfg.election_ticks));
        for peer in lost {
            let hold = super::balance::LOSS_HOLD_TIMEOUTS * u64::from(self.cfg.election_ticks);
            self.balancer.hold(self.ticks + hold);
            self.stats.peers_lost += 1;
            tracing::info!(
                peer,
                ticks = self.cfg.election_ticks,
                "peer lost: not heard for an election timeout; the groups it led elect again"
            );
            self.leader_node_gone(peer, false);
            self.quorum_check_after_loss();
        }
    }

    /// The node `peer` is gone (lost, or `restarted`): every group here
    /// whose leader is on it forgets that leader and campaigns, staggered.
    fn leader_node_gone(&mut self, peer: u64, restarted: bool) {
        let mut affected = Vec::new();
        for (group_id, g) in self.groups.iter() {
            let (led_there, quiet) = match g.quiet {
                Quiet::Follower { leader, .. } => (leader == peer, true),
                _ => (
                    g.raft.role() != Role::Leader && g.raft.leader() == peer,
                    false,
                ),
            };
            if led_there {
                affected.push((group_id, quiet));
            }
        }
        affected.sort_unstable();
        for (group_id, quiet) in affected {
            self.wake(group_id, WakeCause::PeerLost);
            let me = self.cfg.node_id;
            let (election, interval) = (self.cfg.election_ticks, self.cfg.heartbeat_ticks);
            // A quiet replica on another survivor holds the old leader's
            // lease, and drops our pre-votes unanswered, until its node
            // loses the peer too: less than an interval and a tick after
            // this node (the peer's last frames may have reached it an
            // interval after ours, and ticks are not in phase). So a quiet
            // group first waits an interval (the stagger starts at 1), and
            // so does any group when the peer restarted (a replica's lease
            // may outlast a quick restart). An awake replica's lease ends an
            // election timeout after the peer's last heartbeat row, which
            // every survivor got in the same batch: by the time this node
            // loses the peer, a tick later than that at least, it is over.
            let settle = if quiet || restarted { interval } else { 0 };
            if let Some(g) = self.groups.get_mut(group_id) {
                let voters = g.raft.voters();
                let after = campaign_delay(group_id, me, peer, voters, election, interval, settle);
                g.raft.leader_lost(after);
            }
            // Forgetting the leader is news for the host (a role change
            // with no leader) and for the key metrics: a pass tells both.
            // Without it the change waited for the campaign, and a leader
            // heard again before that was never reported gone.
            self.touched(group_id);
        }
    }

    /// `peer` is heard again (or restarted): quiet groups led here with a
    /// replica on it wake, so that it is caught up and answers again.
    fn peer_returned(&mut self, peer: u64) {
        let mut affected = Vec::new();
        for (group_id, g) in self.groups.iter() {
            if matches!(g.quiet, Quiet::Leader) && g.raft.membership().contains(peer) {
                affected.push(group_id);
            }
        }
        affected.sort_unstable();
        for group_id in affected {
            self.wake(group_id, WakeCause::PeerReturned);
        }
    }

    /// After a loss: a quiet leader that no longer hears a quorum wakes, so
    /// that its CheckQuorum deposes it as an awake one's would.
    fn quorum_check_after_loss(&mut self) {
        let me = self.cfg.node_id;
        let mut affected = Vec::new();
        for (group_id, g) in self.groups.iter() {
            if !matches!(g.quiet, Quiet::Leader) {
                continue;
            }
            let voters = g.raft.voters();
            let heard = voters
                .iter()
                .filter(|&&v| v == me || self.peers.is_heard(v))
                .count();
            if heard <= voters.len() / 2 {
                affected.push(group_id);
            }
        }
        affected.sort_unstable();
        for group_id in affected {
            self.wake(group_id, WakeCause::PeerLost);
        }
    }
}

/// Ticks until this node's replica of `group_id` campaigns after the
/// leader's node `dead` was lost. The survivors (the voters but `dead`)
/// are ranked starting from one chosen by the group id, so that new
/// leaders spread over them: the first campaigns `settle` ticks (see
/// `leader_node_gone`) and then within `window` ticks (spread by group, so
/// that hundreds of groups do not campaign in the same tick), each later
/// one half an election timeout after the one before, by when the first
/// has normally won and its heartbeat has reset the others' timers. Each
/// later one also waits `settle` more, so that waiting it does not bring
/// two survivors whose clocks run at different rates closer together.
fn campaign_delay(
    group_id: u64,
    me: u64,
    dead: u64,
    voters: &[u64],
    election_ticks: u32,
    window: u32,
    settle: u32,
) -> u32 {
    let mut survivors: Vec<u64> = voters.iter().copied().filter(|&v| v != dead).collect();
    survivors.sort_unstable();
    let n = survivors.len().max(1) as u64;
    let h = spread(group_id);
    let first = (h % n) as usize;
    let pos = survivors.iter().position(|&v| v == me).unwrap_or(0);
    let rank = (pos + survivors.len() - first) % survivors.len().max(1);
    let jitter = ((h >> 32) % u64::from(window.max(1))) as u32;
    1 + settle + jitter + rank as u32 * ((election_ticks / 2).max(1) + settle)
}

/// A well-mixed function of a group id (the same on every node).
fn spread(group_id: u64) -> u64 {
    let mut z = group_id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_survivor_campaigns_first_and_the_first_ones_spread() {
        let voters = [1, 2, 3];
        let mut firsts = [0u32; 4];
        for g in 1..=300 {
            let d: Vec<u32> = [2u64, 3]
                .iter()
                .map(|&me| campaign_delay(g, me, 1, &voters, 10, 2, 0))
                .collect();
            let (lo, hi) = (d[0].min(d[1]), d[0].max(d[1]));
            assert!(
                lo <= 2,
                "group {g}: the first campaigns within the window: {d:?}"
            );
            assert!(
                hi >= lo + 5,
                "group {g}: the second waits half a timeout: {d:?}"
            );
            firsts[if d[0] < d[1] { 2 } else { 3 }] += 1;
        }
        assert!(firsts[2] > 100 && firsts[3] > 100, "{firsts:?}");
    }
}
