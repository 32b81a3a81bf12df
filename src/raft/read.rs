//! Linearizable reads without a log entry: the read index (Raft thesis
//! §6.4).
//!
//! A leader takes a read at its commit index, then makes sure it was still
//! the leader when the read arrived: a quorum must answer a heartbeat sent
//! *after* the read was taken, at the leader's term. Once the state machine
//! has applied up to that index, the host may serve the read from it: no
//! write acknowledged before the read started can be missing, since it was
//! committed, so at or below the read index.
//!
//! Heartbeats carry a *round*: a leader with reads waiting numbers each
//! heartbeat broadcast (`Message::index` of a `Heartbeat`), and a read
//! waits for round `r + 1`, the first broadcast after it, where `r` was the
//! last round sent when it arrived. A follower's answer echoes the round
//! (`Message::index` of a `HeartbeatResponse`); in the multi layer's
//! batches, where rows carry no round, the node matches the answer batch to
//! the batch it answers and supplies the round itself (`heartbeat.rs`).
//! Every read taken between two broadcasts is confirmed by the same round:
//! one heartbeat round serves them all.
//!
//! A new leader does not know the commit index of its term until it has
//! committed an entry of its own (its no-op): reads taken before that wait
//! for it and take the commit index then.

use std::collections::VecDeque;

use super::core::{Raft, Role};
use super::{Error, LogStore};

/// A read confirmed at `index`: serve it once the state machine has applied
/// `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub id: u64,
    pub index: u64,
}

/// Reads of one replica. Boxed in the replica, and only while it has any:
/// most groups never read, and an idle group should cost no memory for it.
#[derive(Debug, Default)]
pub(super) struct Reads {
    /// Taken by this leader, waiting for a quorum to confirm a round, in
    /// the order they arrived.
    waiting: VecDeque<Waiting>,
    /// Confirmed, waiting for the state machine to reach their index.
    confirmed: Vec<ReadState>,
    /// Lost with the leadership before they were confirmed.
    failed: Vec<u64>,
}

#[derive(Debug)]
struct Waiting {
    id: u64,
    /// The commit index when the read arrived, if this leader had committed
    /// an entry of its term by then.
    index: Option<u64>,
    /// The heartbeat round whose answers confirm it.
    round: u64,
}

impl Reads {
    fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.confirmed.is_empty() && self.failed.is_empty()
    }
}

impl<S: LogStore> Raft<S> {
    /// Take a linearizable read with id `id` (the host's): it comes back in
    /// a `Ready`'s `reads` once it is confirmed and applied, or in
    /// `reads_failed` if this replica loses its leadership first. With
    /// `now`, a heartbeat round leaves at once for it (one round per read,
    /// as etcd does); without, it waits for the next heartbeat broadcast.
    pub fn read_index(&mut self, id: u64, now: bool) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        let index = self.committed_in_term().then_some(self.log.committed);
        let round = self.read_round + 1;
        self.reads
            .get_or_insert_with(Default::default)
            .waiting
            .push_back(Waiting { id, index, round });
        if now {
            self.broadcast_heartbeat();
        }
        // A group of one confirms at once.
        self.confirm_reads();
        Ok(())
    }

    /// Reads taken and not yet handed out (waiting, confirmed or failed).
    pub fn pending_reads(&self) -> usize {
        self.reads
            .as_ref()
            .map_or(0, |r| r.waiting.len() + r.confirmed.len() + r.failed.len())
    }

    /// Every read not yet handed out, waiting, confirmed or failed: the
    /// replica is going away (its group removed, its node stopping).
    pub fn take_all_reads(&mut self) -> Vec<u64> {
        let Some(reads) = self.reads.take() else {
            return Vec::new();
        };
        let mut ids: Vec<u64> = reads.waiting.iter().map(|w| w.id).collect();
        ids.extend(reads.confirmed.iter().map(|c| c.id));
        ids.extend(reads.failed);
        ids
    }

    /// Reads waiting for a round's answers.
    pub(super) fn reads_waiting(&self) -> bool {
        self.reads.as_ref().is_some_and(|r| !r.waiting.is_empty())
    }

    /// Has this leader committed an entry of its own term? Only then is its
    /// commit index at least every commit index of earlier leaders.
    fn committed_in_term(&self) -> bool {
        self.log.term_or_zero(self.log.committed) == self.term
    }

    /// The round the next heartbeat broadcast carries: a new one if reads
    /// wait for it, else 0 (no round: answers to it confirm nothing).
    pub(super) fn next_read_round(&mut self) -> u64 {
        if !self.reads_waiting() {
            return 0;
        }
        self.read_round += 1;
        self.read_round
    }

    /// Follower `from` answered heartbeat round `round` at this leader's
    /// term.
    pub(super) fn read_round_answered(&mut self, from: u64, round: u64) {
        if round == 0 {
            return;
        }
        let Some(pr) = self.progress_mut(from) else {
            return;
        };
        if round <= pr.read_round {
            return;
        }
        pr.read_round = round;
        self.confirm_reads();
    }

    /// Move the reads whose round a quorum (this leader included) answered
    /// to `confirmed`, once the leader has committed in its term.
    pub(super) fn confirm_reads(&mut self) {
        if !self.reads_waiting() || self.role != Role::Leader || !self.committed_in_term() {
            return;
        }
        let me = self.id;
        let answered = self.voters.committed_index(|id| {
            if id == me {
                u64::MAX
            } else {
                // A replica that rejoined may not know of a newer leader.
                self.progress(id)
                    .map_or(0, |p| if p.rejoined { 0 } else { p.read_round })
            }
        });
        let commit = self.log.committed;
        let Some(reads) = self.reads.as_mut() else {
            return;
        };
        while reads.waiting.front().is_some_and(|w| w.round <= answered) {
            let w = reads.waiting.pop_front().expect("checked above");
            reads.confirmed.push(ReadState {
                id: w.id,
                index: w.index.unwrap_or(commit),
            });
        }
    }

    /// This replica stops leading: reads still waiting for confirmation
    /// fail (a later leader may have committed writes this one cannot see).
    /// Confirmed ones stand: they were linearizable when confirmed, and are
    /// served once applied, as before.
    pub(super) fn fail_waiting_reads(&mut self) {
        if let Some(reads) = self.reads.as_mut() {
            let lost = reads.waiting.drain(..).map(|w| w.id);
            reads.failed.extend(lost);
        }
    }

    /// Is a read ready for the host: failed, or confirmed at an index the
    /// host has been handed (`applied`)?
    pub(super) fn reads_ready(&self, applied: u64) -> bool {
        self.reads
            .as_ref()
            .is_some_and(|r| !r.failed.is_empty() || r.confirmed.iter().any(|c| c.index <= applied))
    }

    /// The reads a `Ready` hands out: the confirmed ones whose index is at
    /// or below `applied` (the host applies the ready's committed entries
    /// first), and the failed ones.
    pub(super) fn take_reads(&mut self, applied: u64) -> (Vec<ReadState>, Vec<u64>) {
        let Some(reads) = self.reads.as_mut() else {
            return Default::default();
        };
        let mut done = Vec::new();
        reads.confirmed.retain(|c| {
            let ready = c.index <= applied;
            if ready {
                done.push(*c);
            }
            !ready
        });
        let failed = std::mem::take(&mut reads.failed);
        if reads.is_empty() {
            self.reads = None;
        }
        (done, failed)
    }
}
