//! Leadership transfer (Raft thesis §3.10): a leader hands its group to a
//! chosen voter, for maintenance or to balance leaders across nodes.
//!
//! The leader stops taking proposals (they are refused, naming the target
//! as the leader to try), catches the target up, and once the target's log
//! matches its own sends it `TimeoutNow`. The target campaigns at once, at
//! the next term, without PreVote, and its vote requests carry `transfer`
//! so that voters grant them although their lease (CheckQuorum) would make
//! them ignore a candidate while a leader is alive: here the leader itself
//! asked. The old leader, seeing the higher term, steps down. If the
//! target has not taken over within an election timeout, the transfer is
//! abandoned and the leader takes proposals again.

use super::core::{Raft, Role};
use super::progress::ProgressState;
use super::{Error, LogStore, Message, MessageType, ReplicaId, NONE};

impl<S: LogStore> Raft<S> {
    /// Hand leadership to voter `to`. Returns at once: the new leader shows
    /// as a role change (on this replica: it becomes a follower). Refused
    /// if this replica does not lead, if `to` is not a voter, or if the
    /// leader is not replicating to `to` (it is unreachable, probing, or
    /// receiving a snapshot). A transfer to this replica itself is a
    /// no-op; a new transfer replaces one in progress.
    pub fn transfer_leader(&mut self, to: ReplicaId) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if to == self.id {
            self.lead_transferee = NONE;
            return Ok(());
        }
        if !self.voters.contains(to) {
            return Err(Error::TransferNotVoter(to));
        }
        let Some(pr) = self.progress(to) else {
            return Err(Error::TransferNotVoter(to));
        };
        if pr.rejoined {
            // It would refuse `TimeoutNow`: it never campaigns.
            return Err(Error::TransferNotVoter(to));
        }
        if pr.state != ProgressState::Replicate {
            return Err(Error::TransferNotCaughtUp(to));
        }
        self.lead_transferee = to;
        self.transfer_elapsed = 0;
        self.transfers += 1;
        tracing::debug!(
            id = self.id,
            term = self.term,
            to,
            "transferring leadership"
        );
        self.maybe_send_timeout_now();
        Ok(())
    }

    /// The voter leadership is being handed to, if a transfer is under way.
    pub fn transferring_to(&self) -> Option<ReplicaId> {
        (self.lead_transferee != NONE).then_some(self.lead_transferee)
    }

    /// Could a transfer to `to` hand over at once? It is a voter this
    /// leader replicates to and its log matches the leader's, so
    /// `TimeoutNow` would leave now (used by the leader balancer, which
    /// moves only groups that pause for no more than a round trip).
    pub fn transfer_ready(&self, to: ReplicaId) -> bool {
        self.role == Role::Leader
            && to != self.id
            && self.voters.contains(to)
            && self.progress(to).is_some_and(|pr| {
                pr.state == ProgressState::Replicate
                    && pr.matched == self.log.last_index()
                    && !pr.rejoined
            })
    }

    /// Transfers this replica started as leader.
    pub fn transfers_started(&self) -> u64 {
        self.transfers
    }

    /// Once the target's log matches ours, tell it to campaign; until then
    /// send it what it lacks.
    pub(super) fn maybe_send_timeout_now(&mut self) {
        let to = self.lead_transferee;
        if to == NONE || self.role != Role::Leader {
            return;
        }
        let last = self.log.last_index();
        match self.progress(to) {
            Some(pr) if pr.matched == last => {
                let m = Message::new(MessageType::TimeoutNow, self.id, to, self.term);
                self.send(m);
            }
            // Behind: send what it lacks now (an append that finds a gap
            // left by lost ones is refused, and the leader backs up).
            Some(_) => {
                self.send_append(to, true);
            }
            None => self.lead_transferee = NONE,
        }
    }

    /// A leader's tick with a transfer under way: give up after an
    /// election timeout (the target is down or cannot win). Returns whether
    /// it gave up.
    #[inline]
    pub(super) fn tick_transfer(&mut self) -> bool {
        if self.lead_transferee == NONE {
            return false;
        }
        self.transfer_elapsed += 1;
        if self.transfer_elapsed < self.cfg.election_ticks {
            return false;
        }
        tracing::debug!(
            id = self.id,
            to = self.lead_transferee,
            "leadership transfer abandoned"
        );
        self.lead_transferee = NONE;
        true
    }

    /// `TimeoutNow` from our leader: campaign now, without PreVote, with
    /// `transfer` on the vote requests.
    pub(super) fn handle_timeout_now(&mut self, m: &Message) {
        if self.role == Role::Leader
            || m.from != self.leader
            || !self.cfg.can_vote
            || !self.voters.contains(self.id)
        {
            return;
        }
        tracing::debug!(id = self.id, term = self.term, "taking over leadership");
        self.campaign_transfer();
    }
}
