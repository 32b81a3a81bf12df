//! What a node remembers of the group replicas it removed: for each
//! (group id, incarnation), the replica's term, vote and last log position
//! ([`Predecessor`]), so that if the node is added back to the group, the
//! empty replica that joins does not vote where the removed one could not
//! have (`Raft::succeed_removed`). Bounded: the oldest are forgotten first.
//!
//! Two copies are kept in step: the node's (`multi::Node`), which a join
//! takes from, and the WAL's (its tracker), which makes them durable: a
//! removal record carries the tombstone, a creation of the same group
//! incarnation takes it, and every segment starts with the whole set
//! after its checkpoint. Both see the same removals and creations in the
//! same order, so the bound forgets the same ones. See docs/DESIGN.md,
//! "Membership changes".

use std::collections::{HashMap, VecDeque};

use crate::raft::Predecessor;

/// Replicas remembered at most (the most recent removals: a replica moved
/// away and back comes back soon): with the map's and the queue's overhead
/// about 150 bytes each, under 3 MB for a node that removes groups all day.
pub(crate) const MAX_TOMBSTONES: usize = 16_384;

#[derive(Clone, Debug, Default)]
pub(crate) struct Tombstones {
    /// Each with the number it was remembered under.
    by_group: HashMap<(u64, u64), (u64, Predecessor)>,
    /// Keys in the order they were remembered, with that number: a key
    /// taken or remembered again since is skipped when its turn comes.
    order: VecDeque<((u64, u64), u64)>,
    next: u64,
}

impl Tombstones {
    pub fn remember(&mut self, group_id: u64, incarnation: u64, t: Predecessor) {
        let key = (group_id, incarnation);
        self.next += 1;
        self.by_group.insert(key, (self.next, t));
        self.order.push_back((key, self.next));
        while self.by_group.len() > MAX_TOMBSTONES || self.order.len() > 2 * MAX_TOMBSTONES {
            let Some((old, n)) = self.order.pop_front() else {
                break;
            };
            if self.by_group.get(&old).is_some_and(|(m, _)| *m == n) {
                self.by_group.remove(&old);
            }
        }
    }

    /// The removed replica of this group incarnation, once: a replica
    /// that joins takes its place.
    pub fn take(&mut self, group_id: u64, incarnation: u64) -> Option<Predecessor> {
        self.by_group
            .remove(&(group_id, incarnation))
            .map(|(_, t)| t)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_group.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_group.is_empty()
    }

    /// Every tombstone as (group id, incarnation, predecessor), oldest
    /// first: remembered in this order, they come back as they are.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, Predecessor)> + '_ {
        self.order.iter().filter_map(|&(key, n)| {
            let (m, t) = self.by_group.get(&key)?;
            (*m == n).then_some((key.0, key.1, *t))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u64) -> Predecessor {
        Predecessor {
            term: n,
            vote: 0,
            last: (n, n),
        }
    }

    #[test]
    fn a_tombstone_is_taken_once_for_its_incarnation_only() {
        let mut ts = Tombstones::default();
        ts.remember(7, 1, t(3));
        assert_eq!(ts.take(7, 2), None, "another incarnation");
        assert_eq!(ts.take(7, 1), Some(t(3)));
        assert_eq!(ts.take(7, 1), None, "taken");
    }

    #[test]
    fn the_oldest_are_forgotten_past_the_bound() {
        let mut ts = Tombstones::default();
        for g in 0..MAX_TOMBSTONES as u64 + 10 {
            ts.remember(g, 1, t(g));
        }
        assert_eq!(ts.len(), MAX_TOMBSTONES);
        assert_eq!(ts.take(0, 1), None, "the oldest went first");
        assert_eq!(ts.take(9, 1), None);
        assert_eq!(ts.take(10, 1), Some(t(10)));
        // Remembered again: its newer mention keeps it.
        let mut ts = Tombstones::default();
        ts.remember(0, 1, t(1));
        for g in 1..MAX_TOMBSTONES as u64 {
            ts.remember(g, 1, t(g));
        }
        ts.remember(0, 1, t(2));
        ts.remember(u64::MAX, 1, t(5));
        assert_eq!(ts.take(0, 1), Some(t(2)));
    }

    #[test]
    fn iteration_is_oldest_first_and_skips_what_was_taken_or_renewed() {
        let mut ts = Tombstones::default();
        ts.remember(1, 1, t(1));
        ts.remember(2, 1, t(2));
        ts.remember(3, 1, t(3));
        ts.remember(1, 1, t(4));
        assert_eq!(ts.take(2, 1), Some(t(2)));
        let all: Vec<_> = ts.iter().collect();
        assert_eq!(all, vec![(3, 1, t(3)), (1, 1, t(4))]);
        // Remembered again in that order, they come back the same.
        let mut again = Tombstones::default();
        for (g, inc, p) in ts.iter() {
            again.remember(g, inc, p);
        }
        assert_eq!(again.iter().collect::<Vec<_>>(), all);
    }
}
