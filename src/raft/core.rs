//! The replica: its state, `tick`, and `step`, which applies the term rules
//! to every message before handing it to the handler of the current role.

use bytes::Bytes;

use super::membership::Membership;
use super::progress::Progress;
use super::quorum::Voters;
use super::replica_map::ReplicaMap;
use super::rng::Rng;
use super::LogStore;
use super::{
    Config, Entry, EntryKind, Error, HardState, Message, MessageType, RaftLog, ReplicaId, NONE,
};

/// The role a replica plays in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    /// Asking for pre-votes: has not incremented its term.
    PreCandidate,
    Candidate,
    Leader,
}

/// What the host needs to know about a replica at a glance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: ReplicaId,
    pub role: Role,
    pub term: u64,
    pub vote: ReplicaId,
    pub leader: ReplicaId,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
    /// The first index the log still holds (1 until it is compacted).
    pub first_index: u64,
    /// Index of the latest snapshot (0: none).
    pub snapshot_index: u64,
}

/// A proposal accepted by a leader: it is committed when an entry with this
/// index *and* term is applied, and lost if another term's entry is applied
/// at its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposed {
    pub index: u64,
    pub term: u64,
}

/// An append's entries must be what a leader of `m.term` could send:
/// consecutive indexes right after `m.index`, terms never decreasing, none
/// before `m.log_term` nor after the leader's term. Anything else comes from
/// a broken or hostile peer and would corrupt the log (a term from the future
/// makes a log look more up to date than any honest one).
fn check_append(m: &Message) -> Result<(), Error> {
    let mut prev_term = m.log_term;
    for (i, e) in m.entries.iter().enumerate() {
        if Some(e.index) != m.index.checked_add(1 + i as u64) {
            return Err(Error::Malformed(
                "append entries are not consecutive after its index",
            ));
        }
        if e.term < prev_term || e.term > m.term {
            return Err(Error::Malformed(
                "append entry terms are out of order or from the future",
            ));
        }
        prev_term = e.term;
    }
    Ok(())
}

/// One replica of one Raft group.
pub struct Raft<S: LogStore> {
    pub(super) id: ReplicaId,
    pub(super) term: u64,
    pub(super) vote: ReplicaId,
    pub(super) role: Role,
    pub(super) leader: ReplicaId,
    pub(super) log: RaftLog<S>,
    /// The voters of `conf`, kept inline for the quorum arithmetic that
    /// runs on every answer.
    pub(super) voters: Voters,
    /// The membership in effect: the latest configuration in the log
    /// (`membership.rs`).
    pub(super) conf: Membership,
    /// Index of the entry that set `conf` (0: creation or snapshot).
    pub(super) conf_index: u64,
    /// Bumped whenever `conf` changes.
    pub(super) conf_version: u64,
    /// `conf` removed this replica, which was a voter in the membership
    /// before it: until that removal commits, it may still campaign
    /// (`may_campaign`).
    pub(super) removed_voter: bool,
    /// The membership the group was created with (what holds before any
    /// configuration entry or snapshot).
    pub(super) initial_conf: Membership,
    /// A leader's view of each member, voters first in the order of
    /// `voters.ids()`, then non-voters in the order of `conf.learners`:
    /// a voter's is found through the inline voter set, so a heartbeat
    /// answer reaches its follower's entry without first reading a heap
    /// list of ids.
    pub(super) progress: Vec<Progress>,
    /// Members this leader removed: still sent the log and heartbeats
    /// (never counted) until they hold the removal and its commit, so that
    /// they learn of it (`membership.rs`).
    pub(super) leaving: Vec<super::membership::Leaving>,
    pub(super) votes: ReplicaMap<bool>,
    pub(super) msgs: Vec<Message>,
    /// A leader has appends to send at the next `ready`: entries were
    /// proposed, or a follower's window opened. Sent then, in one append
    /// per follower however many proposals and answers came in meanwhile
    /// (messages only leave at `ready`, so waiting costs no latency).
    pub(super) send_pending: bool,
    /// The commit index moved since the last `ready`: followers that get
    /// no append with entries then get an empty one that carries it.
    pub(super) commit_pending: bool,
    pub(super) cfg: Config,
    pub(super) election_elapsed: u32,
    pub(super) heartbeat_elapsed: u32,
    pub(super) randomized_election_timeout: u32,
    pub(super) rng: Rng,
    /// Hard state and role as last handed out in a `Ready`.
    pub(super) prev_hard_state: HardState,
    pub(super) prev_role: (Role, ReplicaId),
    /// Last index handed out for applying in a `Ready` (the host may have
    /// applied it, and snapshot its state there, before `advance`).
    pub(super) handed_out: u64,
    /// The last log position (term, index) of the replica of the same id
    /// that this one succeeds (`succeed_removed`): until this replica's
    /// own configuration counts it, it votes only for candidates at least
    /// that up to date (`may_vote_for`). Durable with the replica's
    /// creation (`restore_vote_floor` at recovery).
    pub(super) vote_floor: Option<(u64, u64)>,
    /// Elections this replica started (real ones, not pre-votes).
    pub(super) elections: u64,
    /// Reads taken while leading (`read.rs`); None while there are none.
    pub(super) reads: Option<Box<super::read::Reads>>,
    /// The last heartbeat round sent for reads. Only grows, across terms
    /// too, so that an answer can never confirm a read of a later round.
    pub(super) read_round: u64,
    /// A leader handing leadership over (`transfer.rs`): the target (NONE
    /// if none), the ticks since it started, and transfers started.
    pub(super) lead_transferee: ReplicaId,
    pub(super) transfer_elapsed: u32,
    pub(super) transfers: u64,
}

impl<S: LogStore> Raft<S> {
    /// Build a replica from what `store` holds: a fresh group from an empty
    /// store, a restarted one from the durable hard state and log. `voters`
    /// are the replica ids the group was created with; the membership is
    /// the latest configuration in the log or the snapshot if there is
    /// one. An empty `voters` makes a replica that joins an existing group
    /// (`membership.rs`): it learns the membership from its leader.
    pub fn new(cfg: Config, voters: &[ReplicaId], store: S) -> Result<Raft<S>, Error> {
        cfg.validate()?;
        let initial_conf = Membership::with_voters(voters);
        let hs = store.hard_state();
        if hs.commit > store.last_index() {
            return Err(Error::Corrupt(format!(
                "commit {} is past the last stored index {}",
                hs.commit,
                store.last_index()
            )));
        }
        let mut r = Raft {
            id: cfg.id,
            term: hs.term,
            vote: hs.vote,
            role: Role::Follower,
            leader: NONE,
            log: RaftLog::new(store, cfg.applied),
            voters: Voters::new(&[]),
            conf: Membership::default(),
            conf_index: 0,
            removed_voter: false,
            conf_version: 0,
            initial_conf,
            progress: Vec::new(),
            leaving: Vec::new(),
            votes: ReplicaMap::default(),
            msgs: Vec::new(),
            send_pending: false,
            commit_pending: false,
            rng: Rng::new(cfg.seed),
            cfg,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: 0,
            prev_hard_state: hs,
            prev_role: (Role::Follower, NONE),
            handed_out: 0,
            vote_floor: None,
            elections: 0,
            reads: None,
            read_round: 0,
            lead_transferee: NONE,
            transfer_elapsed: 0,
            transfers: 0,
        };
        let (conf, index) = r.latest_conf();
        r.voters = Voters::new(&conf.voters);
        r.conf = conf;
        r.conf_index = index;
        r.removed_voter = r.removed_by_conf_at(index);
        r.reset(hs.term);
        // `reset` forgets the vote when the term changes; on restart the vote
        // cast in this term is durable and must be kept, or this replica
        // could vote twice in one term.
        r.vote = hs.vote;
        Ok(r)
    }

    pub fn id(&self) -> ReplicaId {
        self.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn leader(&self) -> ReplicaId {
        self.leader
    }

    /// Number of real elections (term increments as candidate) started.
    pub fn elections_started(&self) -> u64 {
        self.elections
    }

    /// Does this replica vote and campaign? (Not one that rejoined with an
    /// empty disk: see `Config::can_vote`.)
    pub fn can_vote(&self) -> bool {
        self.cfg.can_vote
    }

    pub fn voters(&self) -> &[ReplicaId] {
        self.voters.ids()
    }

    /// Every member: voters, then non-voters.
    pub fn member_ids(&self) -> Vec<ReplicaId> {
        self.conf.ids().collect()
    }

    pub fn status(&self) -> Status {
        Status {
            id: self.id,
            role: self.role,
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            commit: self.log.committed,
            applied: self.log.applied,
            last_index: self.log.last_index(),
            first_index: self.log.first_index(),
            snapshot_index: self.log.snapshot().index,
        }
    }

    /// Bytes of payload of the entries not yet durable (the store holds
    /// the others).
    pub fn unstable_payload_bytes(&self) -> u64 {
        self.log.unstable_payload_bytes()
    }

    /// The store as of the last `advance`.
    pub fn store(&self) -> &S {
        self.log.store()
    }

    /// Term of the entry at `index`, if the log holds it.
    pub fn log_term(&self, index: u64) -> Option<u64> {
        self.log.term(index).ok()
    }

    /// Has a leader's progress toward `id` caught up with the leader's log?
    pub fn follower_matched(&self, id: ReplicaId) -> Option<u64> {
        self.progress(id).map(|p| p.matched)
    }

    /// A leader's view of follower `id`, for diagnostics.
    pub fn describe_progress(&self, id: ReplicaId) -> Option<String> {
        self.progress(id).map(|p| format!("{p:?}"))
    }

    /// A leader's view of member `id` (or of a member it removed that is
    /// still being told so).
    pub(super) fn progress(&self, id: ReplicaId) -> Option<&Progress> {
        match self.member_position(id) {
            Some(at) => self.progress.get(at),
            None => self
                .leaving
                .iter()
                .find(|l| l.id == id)
                .map(|l| &l.progress),
        }
    }

    pub(super) fn progress_mut(&mut self, id: ReplicaId) -> Option<&mut Progress> {
        match self.member_position(id) {
            Some(at) => self.progress.get_mut(at),
            None => self
                .leaving
                .iter_mut()
                .find(|l| l.id == id)
                .map(|l| &mut l.progress),
        }
    }

    /// Where member `id`'s progress is: voters first, then non-voters.
    fn member_position(&self, id: ReplicaId) -> Option<usize> {
        self.voters.position(id).or_else(|| {
            let at = self.conf.learners.iter().position(|&l| l == id)?;
            Some(self.voters.ids().len() + at)
        })
    }

    /// Every member with the leader's view of it (voters first).
    pub(super) fn members_progress(&self) -> impl Iterator<Item = (ReplicaId, &Progress)> {
        self.voters
            .ids()
            .iter()
            .chain(&self.conf.learners)
            .copied()
            .zip(&self.progress)
    }

    pub(super) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    /// Advance logical time by one tick.
    ///
    /// Returns false when the tick only moved timers: no message, no change
    /// of role, term, vote or leader. Then neither `has_ready` nor
    /// `send_durable_messages` can answer differently than before it, and a
    /// host hosting many idle groups may skip asking (almost every tick of
    /// an idle group is such a tick).
    ///
    /// Small enough to inline into a walk over many groups: a tick that
    /// only moves a follower's timer is a few instructions, and the rest
    /// is called out of line.
    #[inline]
    pub fn tick(&mut self) -> bool {
        if self.role == Role::Leader {
            return self.tick_leader();
        }
        self.election_elapsed = self.election_elapsed.saturating_add(1);
        if self.election_elapsed < self.randomized_election_timeout {
            return false;
        }
        self.tick_election_timeout()
    }

    /// A tick of a non-leader whose election timer ran out.
    #[inline(never)]
    fn tick_election_timeout(&mut self) -> bool {
        if !self.may_campaign() {
            // A replica that never campaigns (a non-voter, one that lost
            // its disk, a joiner) lets its timer run on: its lease on the
            // last leader it heard from ends an election timeout after it,
            // and stays ended, so it answers candidates on their logs
            // alone (restarting the timer would renew the lease each
            // timeout and leave candidates that need its vote waiting).
            return self.poke_silent_leader();
        }
        self.election_elapsed = 0;
        self.start_election();
        true
    }

    /// A replica that never campaigns has heard nothing from the leader
    /// it knows for an election timeout (or another since): it sends the
    /// leader an empty heartbeat answer, once per election timeout. A
    /// voter in its place campaigns, which wakes the group; without this,
    /// a non-voter woken while its leader sleeps (quiesced), whose wake-up
    /// answer was lost, would stay awake forever and never hear from the
    /// leader again (the simulation's seed 7683). The answer wakes a quiet
    /// leader, whose heartbeats then reach it; an awake leader takes it as
    /// any answer (round 0 confirms no read); a dead one costs a message
    /// per timeout.
    fn poke_silent_leader(&mut self) -> bool {
        if self.role != Role::Follower || self.leader == NONE {
            return false;
        }
        let over = self.election_elapsed - self.randomized_election_timeout;
        if over % self.cfg.election_ticks.max(1) != 0 || self.election_elapsed == u32::MAX {
            return false;
        }
        let poke = Message::new(
            MessageType::HeartbeatResponse,
            self.id,
            self.leader,
            self.term,
        );
        self.send(poke);
        true
    }

    #[inline(never)]
    fn tick_leader(&mut self) -> bool {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        let gave_up = self.tick_transfer();
        self.tick_leaving();
        if self.election_elapsed >= self.cfg.election_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum && !self.quorum_active() {
                tracing::debug!(
                    id = self.id,
                    term = self.term,
                    "lost contact with quorum; stepping down"
                );
                self.become_follower(self.term, NONE);
                return true;
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            // A promotion waiting for another change to commit.
            let last = self.log.last_index();
            self.maybe_promote();
            if !self.cfg.external_heartbeat {
                self.broadcast_heartbeat();
                return true;
            }
            if self.log.last_index() != last {
                // The promotion's entry: work for `ready`.
                return true;
            }
        }
        gave_up
    }

    /// CheckQuorum: has a majority been heard from since the last round?
    /// Resets the marks for the next round.
    fn quorum_active(&mut self) -> bool {
        let id = self.id;
        let active = self.voters.vote_result(|v| {
            Some(
                v == id
                    || self
                        .progress(v)
                        .is_some_and(|p| p.recent_active && !p.rejoined),
            )
        });
        let ids = self.voters.ids().iter().chain(&self.conf.learners);
        for (&v, p) in ids.zip(&mut self.progress) {
            p.recent_active = v == id;
        }
        active == super::quorum::VoteResult::Won
    }

    /// Start an election now (PreVote first when enabled).
    pub fn campaign(&mut self) {
        self.start_election();
    }

    /// Propose a command. Only a leader accepts; the returned index and term
    /// identify the entry so the host can tell when it commits.
    pub fn propose(&mut self, data: Bytes) -> Result<Proposed, Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if self.lead_transferee != NONE {
            // Handing over: the target is about to lead; propose there.
            return Err(Error::NotLeader {
                leader: self.lead_transferee,
            });
        }
        let index = self.log.last_index() + 1;
        let entry = Entry {
            term: self.term,
            index,
            kind: EntryKind::Normal,
            data,
        };
        self.append_entries(vec![entry]);
        // Sent at `ready`, with whatever else is proposed before it.
        self.send_pending = true;
        Ok(Proposed {
            index,
            term: self.term,
        })
    }

    /// Step a message from a peer replica.
    ///
    /// Term rules first (Raft §5.1), for every kind: a higher term makes this
    /// replica a follower of that term (unless it is a vote request that the
    /// lease tells us to ignore, or a pre-vote, which never changes terms); a
    /// lower term is answered only where that helps the sender learn it is
    /// stale, and otherwise dropped.
    ///
    /// Heartbeats and their answers have a path of their own
    /// ([`step_heartbeat`](Raft::step_heartbeat) in `replication.rs`, with
    /// the same term rules), which the node's heartbeat demux calls
    /// directly.
    pub fn step(&mut self, mut m: Message) -> Result<(), Error> {
        if m.to != self.id {
            return Err(Error::NotForMe { to: m.to });
        }
        match m.msg_type {
            MessageType::Heartbeat => {
                return self.step_heartbeat_round(m.from, m.term, m.commit, m.index)
            }
            MessageType::HeartbeatResponse => {
                return self.step_heartbeat_response_marked(m.from, m.term, m.index, m.rejoined)
            }
            _ => {}
        }
        self.check_peer(m.from)?;
        if m.msg_type == MessageType::Append {
            check_append(&m)?;
        }
        if m.msg_type == MessageType::Snapshot {
            match m.snapshot.as_deref() {
                Some(s) if s.index > 0 && s.term <= m.term => {}
                _ => {
                    return Err(Error::Malformed(
                        "snapshot message without a valid snapshot",
                    ))
                }
            }
        }
        if m.term > self.term {
            match m.msg_type {
                MessageType::Vote | MessageType::PreVote => {
                    // A transfer's campaign was asked for by the leader
                    // itself: the lease does not hold against it.
                    if self.in_lease() && !(m.msg_type == MessageType::Vote && m.transfer) {
                        // We heard from a live leader within an election
                        // timeout: a candidate that could not have is
                        // disrupting, so neither vote nor adopt its term.
                        return Ok(());
                    }
                    if m.msg_type == MessageType::Vote {
                        self.become_follower(m.term, NONE);
                    }
                }
                MessageType::PreVoteResponse if !m.reject => {
                    // A granted pre-vote echoes the term we would campaign
                    // at; it is not a newer term anyone holds.
                }
                MessageType::Append | MessageType::Snapshot => {
                    self.become_follower(m.term, m.from);
                }
                _ => self.become_follower(m.term, NONE),
            }
        } else if m.term < self.term {
            match m.msg_type {
                MessageType::Append | MessageType::Snapshot
                    if self.cfg.check_quorum || self.cfg.pre_vote =>
                {
                    // A stale leader (say, one cut off and then reconnected)
                    // learns our term from the answer and steps down. Without
                    // it, a PreVote cluster can leave that node stuck.
                    let resp =
                        Message::new(MessageType::AppendResponse, self.id, m.from, self.term);
                    self.send(resp);
                }
                MessageType::PreVote => {
                    let mut resp =
                        Message::new(MessageType::PreVoteResponse, self.id, m.from, self.term);
                    resp.reject = true;
                    self.send(resp);
                }
                _ => {}
            }
            return Ok(());
        }

        // The handlers borrow the message: it is large. A follower's append
        // takes its entries out of it (`handle_append`), none keeps it.
        match m.msg_type {
            MessageType::Vote | MessageType::PreVote => self.handle_vote_request(&m),
            _ => match self.role {
                Role::Leader => self.step_leader(&m),
                Role::Candidate | Role::PreCandidate => self.step_candidate(&mut m),
                Role::Follower => self.step_follower(&mut m),
            },
        }
        Ok(())
    }

    fn step_follower(&mut self, m: &mut Message) {
        match m.msg_type {
            MessageType::Append => {
                self.election_elapsed = 0;
                self.leader = m.from;
                self.handle_append(m);
            }
            MessageType::Snapshot => {
                self.election_elapsed = 0;
                self.leader = m.from;
                self.handle_snapshot(m);
            }
            MessageType::TimeoutNow => self.handle_timeout_now(m),
            _ => {} // late vote responses and the like
        }
    }

    fn step_candidate(&mut self, m: &mut Message) {
        match m.msg_type {
            MessageType::Append => {
                self.become_follower(m.term, m.from);
                self.handle_append(m);
            }
            MessageType::Snapshot => {
                self.become_follower(m.term, m.from);
                self.handle_snapshot(m);
            }
            MessageType::VoteResponse if self.role == Role::Candidate => {
                self.handle_vote_response(m)
            }
            MessageType::PreVoteResponse if self.role == Role::PreCandidate => {
                self.handle_vote_response(m)
            }
            _ => {}
        }
    }

    fn step_leader(&mut self, m: &Message) {
        match m.msg_type {
            MessageType::AppendResponse => self.handle_append_response(m),
            MessageType::Append | MessageType::Snapshot => self.another_leader(m.from, m.term),
            _ => {}
        }
    }

    /// A message only a peer replica sends, from another replica?
    ///
    /// Not checked against the membership: a replica whose log lags may
    /// not yet know the member that now leads it, or the non-voter that
    /// answers it, and Raft lets any replica send (Raft thesis §4.1: a
    /// server handles requests without consulting its configuration).
    /// What a message may change is limited instead: only voters' votes
    /// and acknowledgements count (and of those, none of a replica that
    /// rejoined without its disk), and answers from non-members find no
    /// progress to move.
    pub(super) fn check_peer(&self, from: ReplicaId) -> Result<(), Error> {
        if from == self.id || from == NONE {
            return Err(Error::UnknownPeer(from));
        }
        Ok(())
    }

    /// An append or heartbeat reached the leader from another leader of its
    /// own term. Two leaders in one term would break election safety; this
    /// can only be a forged or corrupted message.
    pub(super) fn another_leader(&self, from: ReplicaId, term: u64) {
        tracing::error!(
            id = self.id,
            from,
            term,
            "leader got an append or heartbeat from another leader of its term"
        );
    }

    /// Is a leader known and heard from within the election timeout?
    pub(super) fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && self.leader != NONE
            && self.election_elapsed < self.cfg.election_ticks
    }

    /// Common to every role change: timers, votes and progress start over.
    pub(super) fn reset(&mut self, term: u64) {
        // A leader's unconfirmed reads and its transfer end with its
        // leadership (a new leader of the same replica starts afresh).
        self.fail_waiting_reads();
        self.lead_transferee = NONE;
        if self.term != term {
            self.term = term;
            self.vote = NONE;
        }
        self.leader = NONE;
        self.leaving.clear();
        self.send_pending = false;
        self.commit_pending = false;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        let e = self.cfg.election_ticks as u64;
        self.randomized_election_timeout = self.rng.range(e, 2 * e) as u32;
        self.votes.clear();
        let next = self.log.last_index() + 1;
        let max_inflight = self.cfg.max_inflight;
        let members = self.voters.ids().len() + self.conf.learners.len();
        self.progress = (0..members)
            .map(|_| Progress::new(next, max_inflight))
            .collect();
        // A replica counts itself toward commit only for what is durable
        // here: a leader's appends may leave before its own write.
        let stable = self.log.stable_last_index().min(self.log.last_index());
        if let Some(me) = self.progress_mut(self.id) {
            me.matched = stable;
        }
    }

    pub(super) fn become_follower(&mut self, term: u64, leader: ReplicaId) {
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
    }

    pub(super) fn become_leader(&mut self) {
        debug_assert!(self.role == Role::Candidate);
        self.reset(self.term);
        self.role = Role::Leader;
        self.leader = self.id;
        let ids = self.voters.ids().iter().chain(&self.conf.learners);
        for (&id, p) in ids.zip(&mut self.progress) {
            p.recent_active = id == self.id;
        }
        // Commit entries of earlier terms by committing one of ours (§5.4.2).
        let noop = Entry {
            term: self.term,
            index: self.log.last_index() + 1,
            kind: EntryKind::Noop,
            data: Bytes::new(),
        };
        self.append_entries(vec![noop]);
        tracing::debug!(id = self.id, term = self.term, "became leader");
    }

    /// Append entries created by this leader to its own log. The leader
    /// counts itself for them once they are durable (`advance`), not now:
    /// its appends to followers may leave before its own write.
    pub(super) fn append_entries(&mut self, entries: Vec<Entry>) {
        self.log.append(&entries);
    }

    /// The host made the log durable up to its stable end: a leader now
    /// counts itself for it, and may commit.
    pub(super) fn self_durable(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let stable = self.log.stable_last_index();
        let updated = match self.progress_mut(self.id) {
            Some(me) => me.maybe_update(stable),
            None => false,
        };
        if updated && self.maybe_commit() {
            self.commit_moved();
        }
    }

    /// This leader's commit index moved: its followers learn it at the next
    /// `ready`, with the entries proposed meanwhile if there are any, or by
    /// an empty append, unless `broadcast_commit` is off and no membership
    /// change awaits its applying (then the index rides on the next append
    /// or heartbeat).
    pub(super) fn commit_moved(&mut self) {
        if self.cfg.broadcast_commit || self.conf_index > self.log.applied {
            self.commit_pending = true;
        }
    }

    pub(super) fn send(&mut self, mut m: Message) {
        // A replica that lost its durable state says so in everything it
        // sends (it leads nothing, so that is answers and its refusals).
        m.rejoined = !self.cfg.can_vote;
        self.msgs.push(m);
    }

    /// Room for the messages this replica will send, from a pool the host
    /// keeps: taken if no message waits and there is no room yet (each
    /// `ready` hands the list over, so a busy replica would otherwise grow
    /// a new one every pass); otherwise handed back.
    pub fn lend_message_room(&mut self, room: Vec<Message>) -> Option<Vec<Message>> {
        debug_assert!(room.is_empty());
        if self.msgs.capacity() == 0 {
            self.msgs = room;
            None
        } else {
            Some(room)
        }
    }

    /// Does this replica have room for messages already?
    pub fn has_message_room(&self) -> bool {
        self.msgs.capacity() > 0
    }
}
