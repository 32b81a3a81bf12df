//! Elections: PreVote, RequestVote, and the tally.

use super::core::Role;
use super::quorum::VoteResult;
use super::LogStore;
use super::{Message, MessageType, Raft, NONE};

impl<S: LogStore> Raft<S> {
    /// The election timer fired (or the host asked): start a pre-election
    /// when PreVote is on, a real election otherwise.
    pub(super) fn start_election(&mut self) {
        // Non-voters (learners, removed replicas, a joining replica that
        // has not heard of its group yet) never campaign.
        if self.role == Role::Leader || !self.may_campaign() {
            return;
        }
        if self.cfg.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
    }

    /// Ask for pre-votes at `term + 1` without changing our own term or
    /// vote, so a node that cannot win never disturbs the group.
    fn become_pre_candidate(&mut self) {
        // Keep term and vote; only timers and tallies start over.
        let (term, vote) = (self.term, self.vote);
        self.reset(term);
        self.vote = vote;
        self.role = Role::PreCandidate;
        self.request_votes(MessageType::PreVote, self.term + 1, false);
    }

    fn become_candidate(&mut self) {
        self.become_candidate_with(false);
    }

    /// Campaign at once for a leadership transfer (`transfer.rs`): no
    /// PreVote, and the vote requests say the leader asked for it.
    pub(super) fn campaign_transfer(&mut self) {
        self.become_candidate_with(true);
    }

    fn become_candidate_with(&mut self, transfer: bool) {
        self.reset(self.term + 1);
        self.vote = self.id;
        self.role = Role::Candidate;
        self.elections += 1;
        tracing::debug!(id = self.id, term = self.term, "starting election");
        self.request_votes(MessageType::Vote, self.term, transfer);
    }

    fn request_votes(&mut self, kind: MessageType, term: u64, transfer: bool) {
        *self.votes.get_or_insert(self.id, true) = true;
        if self.tally() == VoteResult::Won {
            self.on_won();
            return;
        }
        let (index, log_term) = (self.log.last_index(), self.log.last_term());
        let voters: Vec<_> = self
            .voters
            .ids()
            .iter()
            .copied()
            .filter(|&v| v != self.id)
            .collect();
        for to in voters {
            let mut m = Message::new(kind, self.id, to, term);
            m.index = index;
            m.log_term = log_term;
            m.transfer = transfer;
            self.send(m);
        }
    }

    fn tally(&self) -> VoteResult {
        self.voters.vote_result(|id| self.votes.get(&id).copied())
    }

    fn on_won(&mut self) {
        match self.role {
            Role::PreCandidate => self.become_candidate(),
            Role::Candidate => {
                self.become_leader();
                self.broadcast_append();
            }
            _ => {}
        }
    }

    pub(super) fn handle_vote_response(&mut self, m: &Message) {
        // The first answer of a voter counts; a duplicate cannot change it.
        // A replica that rejoined never grants; were one to, it would not
        // count (it may have voted in this term before it lost its disk).
        self.votes.get_or_insert(m.from, !m.reject && !m.rejoined);
        match self.tally() {
            VoteResult::Won => self.on_won(),
            VoteResult::Lost => self.become_follower(self.term, NONE),
            VoteResult::Pending => {}
        }
    }

    /// May this replica vote for a candidate whose log ends at
    /// (`log_term`, `index`)? A voter of its own configuration, by the
    /// usual rules. One that is not (it joined empty and its log has not
    /// yet brought the configuration that added it) also, unless it
    /// succeeds a removed replica of its id (`succeed_removed`): then only
    /// for a candidate at least as up to date as that replica's log was.
    fn may_vote_for(&self, log_term: u64, index: u64) -> bool {
        if self.voters.contains(self.id) {
            return true;
        }
        self.vote_floor
            .map_or(true, |floor| (log_term, index) >= floor)
    }

    /// This replica, just joined empty, takes the place of one of its id
    /// that this node removed from the group (same incarnation): a node
    /// removed and added back. A candidate still on a configuration from
    /// before the removal counts this id as the old replica, which may have
    /// acknowledged entries and voted in terms this one knows nothing of;
    /// a vote from the empty newcomer could elect a leader without entries
    /// committed with the old replica's acknowledgement (found by the
    /// simulation, seed 7168), or a second leader in a term. So it keeps the
    /// old replica's term and vote, and until its own log counts it as a
    /// voter, votes only for candidates whose log is at least as up to date
    /// as the old replica's (`last`): such a log
    /// holds whatever the old replica acknowledged that was committed. A
    /// candidate without the configuration that added it back does not
    /// count its vote anyway, and one with it is that up to date.
    pub fn succeed_removed(&mut self, removed: Predecessor) {
        if removed.term > self.term {
            // Written with the next ready, as any change of term or vote.
            self.term = removed.term;
            self.vote = removed.vote;
        }
        self.vote_floor = Some(removed.last);
    }

    /// Recovery: the vote floor this replica took with its creation
    /// (`succeed_removed`; its term and vote are in its hard state).
    pub fn restore_vote_floor(&mut self, floor: (u64, u64)) {
        self.vote_floor = Some(floor);
    }

    /// The removed replica this one took the place of
    /// (`succeed_removed`), as its creation must be made durable: its term
    /// and vote (this replica's own, until it moves on) and the vote floor.
    /// None if it took no one's place.
    pub fn succeeded(&self) -> Option<Predecessor> {
        self.vote_floor.map(|last| Predecessor {
            term: self.term,
            vote: self.vote,
            last,
        })
    }

    /// What a replica of this id that joins after this one is removed must
    /// honour (`succeed_removed`).
    pub fn to_succeed(&self) -> Predecessor {
        Predecessor {
            term: self.term,
            vote: self.vote,
            last: (self.log.last_term(), self.log.last_index()),
        }
    }

    /// Vote or pre-vote request at a term ≥ ours (the term rules ran).
    pub(super) fn handle_vote_request(&mut self, m: &Message) {
        let pre = m.msg_type == MessageType::PreVote;
        // We may vote for m.from if we already did in this term, or have not
        // voted and know no leader, or — for a pre-vote — it is for a future
        // term where our vote is still free.
        let can_vote = self.vote == m.from
            || (self.vote == NONE && self.leader == NONE)
            || (pre && m.term > self.term);
        // A replica that lost its durable state (`can_vote` false) may have
        // voted in this term before, and may lack entries it acknowledged.
        let grant = self.cfg.can_vote
            && self.may_vote_for(m.log_term, m.index)
            && can_vote
            && self.log.is_up_to_date(m.index, m.log_term);
        let kind = if pre {
            MessageType::PreVoteResponse
        } else {
            MessageType::VoteResponse
        };
        // A grant is sent at the requested term (for a pre-vote that is a
        // term we do not hold yet); a rejection carries our term so the
        // candidate learns it.
        let term = if grant { m.term } else { self.term };
        let mut resp = Message::new(kind, self.id, m.from, term);
        resp.reject = !grant;
        if grant && !pre {
            // Durable before the answer leaves: the Ready carries the new vote
            // in its hard state, and messages go out only after it is saved.
            self.election_elapsed = 0;
            self.vote = m.from;
        }
        self.send(resp);
    }
}

/// A removed replica, as one that takes its place must honour it
/// (`Raft::succeed_removed`): its term and vote, and its log's last
/// (term, index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Predecessor {
    pub term: u64,
    pub vote: super::ReplicaId,
    pub last: (u64, u64),
}
