//! A simulated network between the nodes of a [`Cluster`](super::Cluster):
//! frames in flight with a delivery time, and the faults a real network has.
//!
//! Loss, duplication and delay are decided when a frame is sent; cuts
//! (partitions, one-way or both ways) when it is due, so a frame sent
//! before a partition healed may still be lost to it, and one sent during
//! it may arrive after. Frames due at the same instant may be delivered in
//! any order. A paused node's frames wait for it; a crashed node's are lost.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::Rng;

/// Per-frame faults.
#[derive(Clone, Debug, Default)]
pub struct NetFaults {
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Frames take 0 to `max_delay` ticks; with a delay, frames due at the
    /// same tick are delivered in random order.
    pub max_delay: u64,
}

/// A frame on its way.
#[derive(Clone, Debug)]
pub struct InFlight {
    pub at: u64,
    pub seq: u64,
    pub from: u64,
    pub to: u64,
    pub bytes: Bytes,
}

/// Counters of what the network did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Lost to a partition or a one-way cut.
    pub cut: u64,
    /// Lost because the receiver was down.
    pub to_dead: u64,
    pub delivered: u64,
}

#[derive(Default)]
pub struct Net {
    in_flight: Vec<InFlight>,
    seq: u64,
    /// Two-way partition: node -> side. Empty: no partition.
    sides: BTreeMap<u64, u8>,
    /// One-way cuts: frames from `.0` to `.1` are lost.
    blocked: BTreeSet<(u64, u64)>,
    pub faults: NetFaults,
    pub stats: NetStats,
    /// Frames to this node are set aside in `held` when due, instead of
    /// delivered (a test releases them when it wants).
    pub hold_to: Option<u64>,
    pub held: Vec<InFlight>,
    /// Frames from this node are lost.
    pub drop_from: Option<u64>,
}

impl Net {
    pub fn send(&mut self, rng: &mut Rng, now: u64, from: u64, to: u64, mut bytes: Bytes) {
        self.stats.sent += 1;
        if self.drop_from == Some(from) || rng.chance(self.faults.loss) {
            self.stats.lost += 1;
            return;
        }
        let copies = if rng.chance(self.faults.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for copy in 1..=copies {
            // The last copy takes the frame itself: cloning a `Bytes` made
            // from a `Vec` allocates, which a benchmark would count.
            let bytes = if copy < copies {
                bytes.clone()
            } else {
                std::mem::take(&mut bytes)
            };
            let delay = match self.faults.max_delay {
                0 => 0,
                d => rng.below(d + 1),
            };
            self.seq += 1;
            self.in_flight.push(InFlight {
                at: now + delay,
                seq: self.seq,
                from,
                to,
                bytes,
            });
        }
    }

    /// Is the link from `from` to `to` cut right now?
    pub fn is_cut(&self, from: u64, to: u64) -> bool {
        self.sides.get(&from) != self.sides.get(&to) || self.blocked.contains(&(from, to))
    }

    pub fn partition(&mut self, sides: BTreeMap<u64, u8>) {
        self.sides = sides;
    }

    pub fn cut_one_way(&mut self, from: u64, to: u64) {
        self.blocked.insert((from, to));
    }

    pub fn is_partitioned(&self) -> bool {
        !self.sides.is_empty() || !self.blocked.is_empty()
    }

    pub fn heal(&mut self) {
        self.sides.clear();
        self.blocked.clear();
    }

    /// Frames due by `now` for receivers that `ready(to)` accepts, in
    /// delivery order; frames for receivers that `waiting(to)` says are
    /// paused stay in flight; the rest (dead receivers, cut links) are lost.
    pub fn take_due(
        &mut self,
        rng: &mut Rng,
        now: u64,
        alive: impl Fn(u64) -> bool,
        paused: impl Fn(u64) -> bool,
    ) -> Vec<InFlight> {
        let stays = |f: &InFlight| f.at > now || (alive(f.to) && paused(f.to));
        let mut due = if self.in_flight.iter().any(stays) {
            let mut due = Vec::new();
            let mut keep = Vec::with_capacity(self.in_flight.len());
            for f in self.in_flight.drain(..) {
                if stays(&f) {
                    keep.push(f);
                } else {
                    due.push(f);
                }
            }
            self.in_flight = keep;
            due
        } else {
            // All of it (no delays, nobody paused): as it is, no copy.
            std::mem::take(&mut self.in_flight)
        };
        due.sort_by_key(|f| (f.at, f.seq));
        if self.faults.max_delay > 0 {
            for i in (1..due.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                due.swap(i, j);
            }
        }
        if self.hold_to.is_none() && !self.is_partitioned() {
            // Only dead receivers to weed out: in place.
            let before = due.len();
            due.retain(|f| alive(f.to));
            self.stats.to_dead += (before - due.len()) as u64;
            self.stats.delivered += due.len() as u64;
            return due;
        }
        let mut out = Vec::with_capacity(due.len());
        for f in due {
            if !alive(f.to) {
                self.stats.to_dead += 1;
            } else if self.is_cut(f.from, f.to) {
                self.stats.cut += 1;
            } else if self.hold_to == Some(f.to) {
                self.held.push(f);
            } else {
                self.stats.delivered += 1;
                out.push(f);
            }
        }
        out
    }

    /// Take up to `n` due frames addressed to `to` (for inputs that arrive
    /// while a node is between `ready` and `advance`).
    pub fn take_due_for(&mut self, now: u64, to: u64, n: usize) -> Vec<InFlight> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.in_flight.len() && out.len() < n {
            let f = &self.in_flight[i];
            if f.to == to && f.at <= now && !self.is_cut(f.from, f.to) {
                out.push(self.in_flight.swap_remove(i));
                self.stats.delivered += 1;
            } else {
                i += 1;
            }
        }
        out.sort_by_key(|f| f.seq);
        out
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The frames in flight, in send order.
    pub fn frames(&self) -> Vec<&InFlight> {
        let mut v: Vec<&InFlight> = self.in_flight.iter().collect();
        v.sort_by_key(|f| f.seq);
        v
    }

    /// Forget everything in flight (a test that wants a quiet network).
    pub fn clear(&mut self) {
        self.in_flight.clear();
    }
}
