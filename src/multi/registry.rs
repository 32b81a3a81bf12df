//! The groups a node hosts, found by id.
//!
//! With tens of thousands of groups, an idle heartbeat interval costs a node
//! one lookup per batch row and a few passes over every group (ticks), and
//! at that scale both are dominated by cache misses. So the layout is chosen
//! for the cache: the groups live in one contiguous slab that `tick` walks
//! front to back (a stream the hardware prefetcher follows), and a compact
//! id → slot index finds a row's group in one probe, where a B-tree keyed by
//! id descends a chain of dependent misses through nodes holding whole
//! groups.

use std::sync::Arc;

use super::group::Group;
use super::key_metrics::KeyMetricsTable;
use crate::idmap::IdMap;

/// Hosted groups: a slab in no particular order plus an index by id. The
/// awake groups (those not quiesced) are the slab's first `awake` slots, so
/// that a tick walks only them: a quiesced group costs a tick nothing.
#[derive(Default)]
pub(crate) struct Groups {
    /// Awake groups first, then quiesced ones; within each part, creation
    /// order except where removing, quiescing or waking a group swapped
    /// two. Deterministic, which the seeded simulation needs.
    slab: Vec<Group>,
    awake: usize,
    /// The id of the group in each slot. A dense list apart from the
    /// groups: removal and `sorted_ids` read ids without touching a group.
    ids: Vec<u64>,
    index: IdMap<usize>,
    /// Each group's key-metrics cell by id, for readers on other threads
    /// (`key_metrics.rs`): kept here, where groups come and go, and where
    /// they quiesce and wake (the cells' `quiesced` flag).
    metrics: Arc<KeyMetricsTable>,
    /// Grows whenever a group is added or removed or changes slot: slots
    /// (and row hashes) noted at one layout are right while it holds.
    layout: u64,
}

impl Groups {
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// The current layout (see the field): equal layouts, same groups in
    /// the same slots.
    pub fn layout(&self) -> u64 {
        self.layout
    }

    /// The key-metrics table of these groups, to read from any thread.
    pub fn metrics_table(&self) -> Arc<KeyMetricsTable> {
        self.metrics.clone()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    pub fn get(&self, id: u64) -> Option<&Group> {
        self.index.get(&id).map(|&slot| &self.slab[slot])
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Group> {
        self.index.get(&id).map(|&slot| &mut self.slab[slot])
    }

    /// Group `id` and its slot, for [`at_mut`](Groups::at_mut) later.
    pub fn get_with_slot(&self, id: u64) -> Option<(usize, &Group)> {
        self.index.get(&id).map(|&slot| (slot, &self.slab[slot]))
    }

    /// Group `id` if it is still in `slot` (groups move when one is
    /// removed, quiesced or woken): a second visit without a lookup.
    #[inline]
    pub fn at_mut(&mut self, slot: usize, id: u64) -> Option<&mut Group> {
        match self.ids.get(slot) {
            Some(&at) if at == id => Some(&mut self.slab[slot]),
            _ => self.get_mut(id),
        }
    }

    /// Add a group, awake; the caller has checked that `id` is not hosted
    /// yet.
    pub fn insert(&mut self, id: u64, g: Group) {
        debug_assert!(!self.contains(id), "group {id} inserted twice");
        g.metrics.set_quiesced(false);
        self.metrics.insert(id, g.metrics.clone());
        self.layout += 1;
        self.index.insert(id, self.slab.len());
        self.slab.push(g);
        self.ids.push(id);
        self.swap_slots(self.slab.len() - 1, self.awake);
        self.awake += 1;
    }

    pub fn remove(&mut self, id: u64) -> Option<Group> {
        let mut slot = *self.index.get(&id)?;
        if slot < self.awake {
            // Out of the awake part first, so that it stays contiguous.
            self.swap_slots(slot, self.awake - 1);
            self.awake -= 1;
            slot = self.awake;
        }
        let last = self.slab.len() - 1;
        self.swap_slots(slot, last);
        self.layout += 1;
        self.index.remove(&id);
        self.metrics.remove(id);
        self.ids.pop();
        self.slab.pop()
    }

    /// Exchange two slots, keeping the index right.
    fn swap_slots(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        self.layout += 1;
        self.slab.swap(a, b);
        self.ids.swap(a, b);
        self.index.insert(self.ids[a], a);
        self.index.insert(self.ids[b], b);
    }

    /// Is `id` hosted and awake?
    pub fn is_awake(&self, id: u64) -> bool {
        self.index.get(&id).is_some_and(|&slot| slot < self.awake)
    }

    /// Take `id` out of the awake part (it quiesced). False if it was not
    /// awake (or not hosted).
    pub fn sleep(&mut self, id: u64) -> bool {
        match self.index.get(&id) {
            Some(&slot) if slot < self.awake => {
                self.slab[slot].metrics.set_quiesced(true);
                self.swap_slots(slot, self.awake - 1);
                self.awake -= 1;
                true
            }
            _ => false,
        }
    }

    /// Put `id` back in the awake part. False if it was awake already (or
    /// not hosted).
    pub fn wake(&mut self, id: u64) -> bool {
        match self.index.get(&id) {
            Some(&slot) if slot >= self.awake => {
                self.slab[slot].metrics.set_quiesced(false);
                self.swap_slots(slot, self.awake);
                self.awake += 1;
                true
            }
            _ => false,
        }
    }

    /// How many groups are awake.
    pub fn awake_len(&self) -> usize {
        self.awake
    }

    /// The awake groups, mutably, in slab order.
    pub fn iter_awake_mut(&mut self) -> impl Iterator<Item = (u64, &mut Group)> {
        let n = self.awake;
        self.ids[..n].iter().copied().zip(self.slab[..n].iter_mut())
    }

    /// Every group in slab order (the cheap order to visit them all in).
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Group)> {
        self.ids.iter().copied().zip(self.slab.iter())
    }

    /// The ids in ascending order, for callers that want a stable listing.
    pub fn sorted_ids(&self) -> Vec<u64> {
        let mut ids = self.ids.clone();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::MemStore;
    use crate::raft::{Config, Raft};

    fn group(incarnation: u64) -> Group {
        let raft = Raft::new(Config::new(1), &[1], MemStore::new()).unwrap();
        Group::new(incarnation, raft, incarnation, incarnation)
    }

    #[test]
    fn remove_moves_the_last_group_and_keeps_every_id_findable() {
        let mut gs = Groups::default();
        for id in [30, 10, 20, 40] {
            gs.insert(id, group(id));
        }
        assert_eq!(gs.remove(10).map(|g| g.incarnation), Some(10));
        assert!(gs.remove(10).is_none());
        assert!(!gs.contains(10));
        for id in [20, 30, 40] {
            assert_eq!(gs.get(id).map(|g| g.incarnation), Some(id));
        }
        assert_eq!(gs.remove(40).map(|g| g.incarnation), Some(40));
        assert_eq!(gs.len(), 2);
        assert_eq!(gs.sorted_ids(), vec![20, 30]);
        let visited: Vec<u64> = gs.iter().map(|(id, _)| id).collect();
        assert_eq!(visited, vec![30, 20]);
    }

    #[test]
    fn the_awake_groups_stay_in_front_through_sleep_wake_insert_and_remove() {
        let mut gs = Groups::default();
        for id in 1..=6 {
            gs.insert(id, group(id));
        }
        assert!(gs.sleep(2) && gs.sleep(5) && !gs.sleep(5));
        assert!(!gs.sleep(99));
        gs.insert(7, group(7));
        assert!(gs.remove(2).is_some(), "a quiesced group");
        assert!(gs.remove(3).is_some(), "an awake one");
        assert!(gs.wake(5) && !gs.wake(5));
        assert!(gs.sleep(1));
        let mut awake: Vec<u64> = gs.iter_awake_mut().map(|(id, _)| id).collect();
        awake.sort_unstable();
        assert_eq!(awake, vec![4, 5, 6, 7]);
        assert_eq!(gs.awake_len(), 4);
        assert!(!gs.is_awake(1) && gs.is_awake(4));
        for id in [1, 4, 5, 6, 7] {
            assert_eq!(gs.get(id).map(|g| g.incarnation), Some(id), "{id}");
        }
        assert_eq!(gs.sorted_ids(), vec![1, 4, 5, 6, 7]);
    }
}
