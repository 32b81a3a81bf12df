//! Proposals that applying entries may never decide on this node.
//!
//! A proposal is decided when the entry at its index is applied: committed if
//! that entry is the proposal's, failed for certain otherwise (see
//! `Group::resolve`). But once this node no longer leads the term a proposal
//! was made in, nothing here fills or commits its slot: another leader
//! decides it, and in an idle group whose new leader's log ends below the
//! proposal's index, nobody ever does. Such proposals get a deadline of one
//! election timeout (enough for a new leader to commit or replace them in
//! the common case) and are reported unknown if still undecided then.

use std::collections::VecDeque;

/// Proposals of one group, up to a proposal id, and when they are due.
struct Deadline {
    at: u64,
    group_id: u64,
    generation: u64,
    upto: u64,
}

/// The deadlines, in the order they fall due (each is `now` plus the same
/// timeout, so a queue is enough).
#[derive(Default)]
pub(crate) struct Undecided {
    deadlines: VecDeque<Deadline>,
}

impl Undecided {
    /// Proposals of group (`group_id`, `generation`) with ids up to `upto`
    /// are due at tick `at`.
    pub fn schedule(&mut self, at: u64, group_id: u64, generation: u64, upto: u64) {
        self.deadlines.push_back(Deadline {
            at,
            group_id,
            generation,
            upto,
        });
    }

    /// The next deadline that is due at tick `now`: (group id, generation,
    /// the highest proposal id it covers).
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, u64, u64)> {
        if self.deadlines.front()?.at > now {
            return None;
        }
        self.deadlines
            .pop_front()
            .map(|d| (d.group_id, d.generation, d.upto))
    }
}
