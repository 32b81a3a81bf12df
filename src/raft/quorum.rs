//! Majority counting for one voter set.

use super::ReplicaId;

/// Outcome of an election tally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    Won,
    Lost,
    Pending,
}

/// Voter sets up to this size, which covers the usual 3, 5 and 7 replicas,
/// are kept inside the replica's own state.
const INLINE_VOTERS: usize = 7;

/// The voters of a group. (Joint consensus for membership changes will make
/// this a pair of sets; every caller already goes through these functions.)
///
/// Every message a replica receives is checked against this set. On a node
/// hosting many groups a heap-allocated set would be one more cache miss
/// per message, after the one that reached the replica, so small sets live
/// inline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voters {
    ids: Ids,
}

/// Sorted and without duplicates; `Inline` whenever the set fits, so that
/// equal sets compare equal.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ids {
    Inline {
        len: u8,
        ids: [ReplicaId; INLINE_VOTERS],
    },
    Heap(Box<[ReplicaId]>),
}

impl Voters {
    pub fn new(ids: &[ReplicaId]) -> Voters {
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let ids = if sorted.len() <= INLINE_VOTERS {
            let mut ids = [super::NONE; INLINE_VOTERS];
            ids[..sorted.len()].copy_from_slice(&sorted);
            Ids::Inline {
                len: sorted.len() as u8, // at most INLINE_VOTERS
                ids,
            }
        } else {
            Ids::Heap(sorted.into_boxed_slice())
        };
        Voters { ids }
    }

    #[inline]
    pub fn ids(&self) -> &[ReplicaId] {
        match &self.ids {
            Ids::Inline { len, ids } => &ids[..usize::from(*len)],
            Ids::Heap(ids) => ids,
        }
    }

    pub fn contains(&self, id: ReplicaId) -> bool {
        // A linear scan: a group has a handful of voters, too few for a
        // binary search to pay, and this runs for every message.
        self.ids().contains(&id)
    }

    /// Where `id` is in [`ids`](Voters::ids), for state kept per voter in
    /// that order.
    #[inline]
    pub fn position(&self, id: ReplicaId) -> Option<usize> {
        self.ids().iter().position(|&v| v == id)
    }

    pub fn quorum(&self) -> usize {
        self.ids().len() / 2 + 1
    }

    /// The highest index that a majority has matched: sort the matched
    /// indexes descending and take the quorum-th.
    pub fn committed_index(&self, matched: impl Fn(ReplicaId) -> u64) -> u64 {
        if self.ids().is_empty() {
            return 0;
        }
        // Groups of up to 7 voters (every broker's) sort on the stack: a
        // leader asks this at every answer, and an allocation per answer
        // was a tenth of the instructions this call cost.
        const ON_STACK: usize = 7;
        let ids = self.ids();
        let mut small = [0u64; ON_STACK];
        let mut large = Vec::new();
        let m: &mut [u64] = if ids.len() <= ON_STACK {
            &mut small[..ids.len()]
        } else {
            large.resize(ids.len(), 0);
            &mut large
        };
        for (slot, &id) in m.iter_mut().zip(ids) {
            *slot = matched(id);
        }
        m.sort_unstable_by(|a, b| b.cmp(a));
        m[self.quorum() - 1]
    }

    /// Tally votes: `granted(id)` is Some(true) for a yes, Some(false) for a
    /// no, None for no answer yet.
    pub fn vote_result(&self, granted: impl Fn(ReplicaId) -> Option<bool>) -> VoteResult {
        let (mut yes, mut missing) = (0, 0);
        for &id in self.ids() {
            match granted(id) {
                Some(true) => yes += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        let q = self.quorum();
        if yes >= q {
            VoteResult::Won
        } else if yes + missing >= q {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_index_is_the_majority_match() {
        let v = Voters::new(&[1, 2, 3, 4, 5]);
        let m = |id| [0, 9, 7, 5, 3, 1][id as usize];
        assert_eq!(v.committed_index(m), 5);
        let v = Voters::new(&[1, 2, 3]);
        assert_eq!(v.committed_index(m), 7);
        // More voters than fit on the stack: the same rule.
        let v = Voters::new(&(1..=9).collect::<Vec<_>>());
        assert_eq!(v.committed_index(|id| 10 * id), 50);
        let v = Voters::new(&(1..=8).collect::<Vec<_>>());
        assert_eq!(v.committed_index(|id| 10 * id), 40);
        let v = Voters::new(&(1..=7).collect::<Vec<_>>());
        assert_eq!(v.committed_index(|id| 10 * id), 40);
    }

    #[test]
    fn small_and_large_sets_behave_alike() {
        let small = Voters::new(&[5, 1, 3, 1]);
        assert_eq!(small.ids(), &[1, 3, 5]);
        assert!(small.contains(3) && !small.contains(2));
        assert_eq!(small, Voters::new(&[1, 3, 5]));
        let ids: Vec<ReplicaId> = (1..=9).rev().collect();
        let large = Voters::new(&ids);
        assert_eq!(large.ids(), &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(large.contains(9) && !large.contains(10));
        assert_eq!(large.quorum(), 5);
    }

    #[test]
    fn vote_result_counts_majorities() {
        let v = Voters::new(&[1, 2, 3]);
        assert_eq!(
            v.vote_result(|id| (id == 1).then_some(true)),
            VoteResult::Pending
        );
        assert_eq!(
            v.vote_result(|id| (id <= 2).then_some(true)),
            VoteResult::Won
        );
        assert_eq!(v.vote_result(|id| Some(id == 1)), VoteResult::Lost);
    }
}
