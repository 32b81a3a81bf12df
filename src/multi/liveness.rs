//! Node-level liveness: does this node hear each of its peers?
//!
//! Every heartbeat interval a node sends each peer one heartbeat batch,
//! even an empty one, and answers every batch it gets: that per-pair
//! traffic is the liveness signal, whatever the number of groups. A peer is
//! *heard* while some frame from it arrived within the last
//! `election_ticks` ticks; when that lapses it is *lost*, and its epoch
//! moves on. The epoch only grows: a quiesced follower remembers the epoch
//! of its leader's node when it went quiet, and counts on that leader only
//! while the peer is heard *in that epoch*, so a peer once lost is never
//! trusted again on the strength of a late frame. A peer's restart (a new
//! session in its batches) is a loss and a return at once.
//!
//! The peers are the nodes that host a replica of a group hosted here,
//! counted by group, so the set follows the groups.

use std::collections::BTreeMap;

/// What this node knows of one peer.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    /// Groups hosted here with a replica on the peer.
    groups: u32,
    /// The tick a frame from the peer last arrived at.
    last_heard: u64,
    heard: bool,
    /// Moves on every loss (and restart) of the peer.
    epoch: u64,
    /// The peer's session, once a batch named it.
    session: Option<u64>,
}

/// How hearing from a peer changed what this node knows of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Heard {
    /// Nothing new.
    Same,
    /// Heard again after it was lost.
    Returned,
    /// It restarted (a new session) without ever being lost here.
    Restarted,
}

/// The peers of one node and whether it hears them.
#[derive(Default)]
pub(crate) struct Peers {
    map: BTreeMap<u64, Peer>,
}

impl Peers {
    /// A group with replicas on `peers` is hosted here from tick `now`. A
    /// new peer starts heard (it is given one liveness timeout to show
    /// itself).
    pub fn add_group(&mut self, peers: impl Iterator<Item = u64>, now: u64) {
        for id in peers {
            self.map
                .entry(id)
                .or_insert(Peer {
                    groups: 0,
                    last_heard: now,
                    heard: true,
                    epoch: 1,
                    session: None,
                })
                .groups += 1;
        }
    }

    /// A group with replicas on `peers` is no longer hosted here.
    pub fn remove_group(&mut self, peers: impl Iterator<Item = u64>) {
        for id in peers {
            if let Some(p) = self.map.get_mut(&id) {
                p.groups -= 1;
                if p.groups == 0 {
                    self.map.remove(&id);
                }
            }
        }
    }

    /// A frame from `peer` arrived at tick `now`; `session` if it named
    /// the peer's session. A peer that hosts no group shared with this node
    /// is not tracked.
    pub fn heard(&mut self, peer: u64, now: u64, session: Option<u64>) -> Heard {
        let Some(p) = self.map.get_mut(&peer) else {
            return Heard::Same;
        };
        p.last_heard = now;
        let restarted = match (p.session, session) {
            (Some(old), Some(new)) => old != new,
            _ => false,
        };
        if session.is_some() {
            p.session = session;
        }
        if !p.heard {
            p.heard = true;
            return Heard::Returned;
        }
        if restarted {
            p.epoch += 1;
            return Heard::Restarted;
        }
        Heard::Same
    }

    /// The peers not heard for more than `timeout` ticks at tick `now`:
    /// each is marked lost (its epoch moves on) and returned.
    pub fn expire(&mut self, now: u64, timeout: u64) -> Vec<u64> {
        let mut lost = Vec::new();
        for (&id, p) in self.map.iter_mut() {
            if p.heard && now.saturating_sub(p.last_heard) > timeout {
                p.heard = false;
                p.epoch += 1;
                lost.push(id);
            }
        }
        lost
    }

    /// Is `peer` heard now? (This node itself, or an untracked node, is
    /// not a peer: false.)
    pub fn is_heard(&self, peer: u64) -> bool {
        self.map.get(&peer).is_some_and(|p| p.heard)
    }

    /// `peer`'s epoch (0: not a peer).
    pub fn epoch(&self, peer: u64) -> u64 {
        self.map.get(&peer).map_or(0, |p| p.epoch)
    }

    /// Is `peer` heard in `epoch`, the epoch a quiesced follower saw when
    /// its leader on `peer` went quiet?
    pub fn heard_in(&self, peer: u64, epoch: u64) -> bool {
        self.map
            .get(&peer)
            .is_some_and(|p| p.heard && p.epoch == epoch)
    }

    /// The peers, in id order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.map.keys().copied()
    }

    /// Each peer with whether it is heard and its epoch, in id order.
    pub fn states(&self) -> impl Iterator<Item = (u64, bool, u64)> + '_ {
        self.map.iter().map(|(&id, p)| (id, p.heard, p.epoch))
    }

    pub fn heard_count(&self) -> usize {
        self.map.values().filter(|p| p.heard).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_lost_after_the_timeout_and_returns_in_a_new_epoch() {
        let mut p = Peers::default();
        p.add_group([2, 3].into_iter(), 0);
        assert!(p.is_heard(2) && p.is_heard(3));
        assert_eq!(p.heard(2, 5, Some(77)), Heard::Same);
        assert_eq!(p.expire(10, 10), Vec::<u64>::new());
        assert_eq!(p.expire(11, 10), vec![3], "3 never heard since tick 0");
        let e = p.epoch(3);
        assert!(!p.is_heard(3));
        assert_eq!(p.expire(16, 10), vec![2]);
        // A late frame of 3's makes it heard again, in a later epoch than
        // any follower saw before the loss.
        assert_eq!(p.heard(3, 17, None), Heard::Returned);
        assert!(p.is_heard(3));
        assert_eq!(p.epoch(3), e);
        assert!(!p.heard_in(3, e - 1));
        assert!(p.heard_in(3, e));
    }

    #[test]
    fn a_new_session_is_a_restart_and_moves_the_epoch() {
        let mut p = Peers::default();
        p.add_group([2].into_iter(), 0);
        assert_eq!(p.heard(2, 1, Some(5)), Heard::Same);
        let e = p.epoch(2);
        assert_eq!(p.heard(2, 2, Some(5)), Heard::Same);
        assert_eq!(p.heard(2, 3, Some(6)), Heard::Restarted);
        assert_eq!(p.epoch(2), e + 1);
        assert!(!p.heard_in(2, e));
    }

    #[test]
    fn peers_follow_the_groups_shared_with_them() {
        let mut p = Peers::default();
        p.add_group([2, 3].into_iter(), 0);
        p.add_group([3].into_iter(), 0);
        p.remove_group([2, 3].into_iter());
        assert_eq!(p.ids().collect::<Vec<_>>(), vec![3]);
        assert_eq!(p.heard(9, 1, None), Heard::Same, "not a peer");
        assert!(!p.is_heard(9));
    }
}
