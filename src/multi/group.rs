//! One group as hosted by a node: its replica and the proposals made here
//! that are still waiting to commit.

use std::collections::VecDeque;

use super::ProposalError;
use crate::raft::{Entry, Raft};
use crate::storage::MemStore;

struct Pending {
    index: u64,
    term: u64,
    id: u64,
}

pub(crate) struct Group {
    pub raft: Raft<MemStore>,
    /// Distinguishes this group from an earlier one with the same id, so a
    /// `NodeReady` taken before a remove + create is not applied to the new one.
    pub incarnation: u64,
    pending: VecDeque<Pending>,
    pub last_leader: u64,
    pub last_elections: u64,
}

impl Group {
    pub fn new(raft: Raft<MemStore>, incarnation: u64) -> Group {
        Group {
            last_elections: raft.elections_started(),
            raft,
            incarnation,
            pending: VecDeque::new(),
            last_leader: 0,
        }
    }

    pub fn track(&mut self, index: u64, term: u64, id: u64) {
        debug_assert!(self.pending.back().map_or(true, |p| p.index < index));
        self.pending.push_back(Pending { index, term, id });
    }

    /// Resolve the proposals an applied entry decides: the one at its index
    /// committed if the terms agree (the same entry), and lost otherwise —
    /// as is any proposal at an earlier index still waiting (its slot was
    /// filled by another leader's entry).
    pub fn resolve(&mut self, e: &Entry, mut done: impl FnMut(u64, Result<u64, ProposalError>)) {
        while let Some(p) = self.pending.front() {
            if p.index > e.index {
                break;
            }
            let result = if p.index == e.index && p.term == e.term {
                Ok(p.index)
            } else {
                Err(ProposalError::LeaderChanged)
            };
            done(p.id, result);
            self.pending.pop_front();
        }
    }

    /// Every waiting proposal, failed (the group is going away).
    pub fn drain_pending(&mut self) -> impl Iterator<Item = u64> + '_ {
        self.pending.drain(..).map(|p| p.id)
    }
}
