//! A map keyed by replica id for the handful of replicas in a group (at most
//! seven): a vector searched linearly, which beats hashing at this size and
//! keeps a group's state in few cache lines when a node hosts many groups.

use super::ReplicaId;

#[derive(Clone, Debug)]
pub struct ReplicaMap<V> {
    items: Vec<(ReplicaId, V)>,
}

impl<V> Default for ReplicaMap<V> {
    fn default() -> Self {
        ReplicaMap { items: Vec::new() }
    }
}

impl<V> ReplicaMap<V> {
    pub fn get(&self, id: &ReplicaId) -> Option<&V> {
        self.items.iter().find(|(k, _)| k == id).map(|(_, v)| v)
    }

    /// Insert unless present; returns the value held for `id` afterwards.
    pub fn get_or_insert(&mut self, id: ReplicaId, v: V) -> &mut V {
        let pos = match self.items.iter().position(|(k, _)| *k == id) {
            Some(pos) => pos,
            None => {
                self.items.push((id, v));
                self.items.len() - 1
            }
        };
        &mut self.items[pos].1
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }
}
