//! Majority counting for one voter set.

use super::ReplicaId;

/// Outcome of an election tally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    Won,
    Lost,
    Pending,
}

/// The voters of a group. (Joint consensus for membership changes will make
/// this a pair of sets; every caller already goes through these functions.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voters {
    ids: Vec<ReplicaId>,
}

impl Voters {
    pub fn new(ids: &[ReplicaId]) -> Voters {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        Voters { ids }
    }

    pub fn ids(&self) -> &[ReplicaId] {
        &self.ids
    }

    pub fn contains(&self, id: ReplicaId) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    pub fn quorum(&self) -> usize {
        self.ids.len() / 2 + 1
    }

    /// The highest index that a majority has matched: sort the matched
    /// indexes descending and take the quorum-th.
    pub fn committed_index(&self, matched: impl Fn(ReplicaId) -> u64) -> u64 {
        if self.ids.is_empty() {
            return 0;
        }
        let mut m: Vec<u64> = self.ids.iter().map(|&id| matched(id)).collect();
        m.sort_unstable_by(|a, b| b.cmp(a));
        m[self.quorum() - 1]
    }

    /// Tally votes: `granted(id)` is Some(true) for a yes, Some(false) for a
    /// no, None for no answer yet.
    pub fn vote_result(&self, granted: impl Fn(ReplicaId) -> Option<bool>) -> VoteResult {
        let (mut yes, mut missing) = (0, 0);
        for &id in &self.ids {
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
