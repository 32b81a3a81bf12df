//! Log replication and heartbeats: what a leader sends, what a follower does
//! with it, and how answers move the leader's view of each follower.

use super::core::Role;
use super::progress::ProgressState;
use super::LogStore;
use super::{Entry, Error, Message, MessageType, Raft, ReplicaId, SnapshotMeta, NONE};

impl<S: LogStore> Raft<S> {
    /// Send every follower what it lacks (an empty append still carries the
    /// commit index).
    pub(super) fn broadcast_append(&mut self) {
        for to in self.followers() {
            self.send_append(to, true);
        }
    }

    /// Every other member, voters and non-voters, and members being told
    /// of their removal: all get the log.
    /// Owned, so that the caller may send while it walks them; kept on
    /// the stack for groups of up to [`Followers::INLINE`] other members
    /// (this runs for every group a leader makes ready, every pass).
    pub(super) fn followers(&self) -> Followers {
        let leaving = self.leaving.iter().map(|l| l.id);
        let ids = self.conf.ids().chain(leaving).filter(|&v| v != self.id);
        Followers::collect(ids)
    }

    /// Send `to` an append from its `next` index, unless its progress says to
    /// wait. Returns whether a message was sent.
    pub(super) fn send_append(&mut self, to: ReplicaId, send_if_empty: bool) -> bool {
        let Some(pr) = self.progress(to) else {
            return false;
        };
        if pr.is_paused() {
            return false;
        }
        let prev = pr.next - 1;
        let Ok(prev_term) = self.log.term(prev) else {
            // The follower is behind the compaction point.
            return self.send_snapshot(to);
        };
        let entries: Vec<Entry> = self
            .log
            .entries_from(pr.next, self.cfg.max_append_bytes)
            .unwrap_or_default();
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let last = entries.last().map(|e| e.index);
        let mut m = Message::new(MessageType::Append, self.id, to, self.term);
        m.index = prev;
        m.log_term = prev_term;
        m.entries = entries;
        m.commit = self.log.committed;
        if let Some(pr) = self.progress_mut(to) {
            pr.sent_entries(last);
        }
        self.send(m);
        true
    }

    /// The follower needs entries compacted away: send it the latest
    /// snapshot (its bytes travel as chunks, see the multi layer), and pause
    /// appends until it is installed or the transfer fails.
    fn send_snapshot(&mut self, to: ReplicaId) -> bool {
        let meta = self.log.snapshot().clone();
        if meta.index == 0 {
            tracing::error!(
                to,
                "entries a follower needs are gone and there is no snapshot"
            );
            return false;
        }
        let Some(pr) = self.progress_mut(to) else {
            return false;
        };
        pr.become_snapshot(meta.index);
        let mut m = Message::new(MessageType::Snapshot, self.id, to, self.term);
        m.snapshot = Some(Box::new(meta));
        self.send(m);
        true
    }

    /// The transfer of the snapshot to `to` failed (or was abandoned):
    /// probe again, which sends a fresh snapshot if it still needs one.
    pub fn report_snapshot_failed(&mut self, to: ReplicaId) {
        if let Some(pr) = self.progress_mut(to) {
            if pr.state == ProgressState::Snapshot {
                // Nothing of the snapshot is known to have arrived: probe
                // from what the follower matched.
                pr.pending_snapshot = 0;
                pr.become_probe();
            }
        }
    }

    /// The follower `to` holds the whole snapshot being sent to it: probe
    /// from after it at once, rather than wait for the follower's answer
    /// (which may be lost, and nothing would ask again).
    pub fn report_snapshot_sent(&mut self, to: ReplicaId) {
        let Some(pr) = self.progress_mut(to) else {
            return;
        };
        if pr.state != ProgressState::Snapshot {
            return;
        }
        pr.become_probe();
        if self.role == Role::Leader {
            self.send_append(to, true);
        }
    }

    /// A whole snapshot from the leader `m.from` arrived: install it unless
    /// the log already holds what it covers.
    pub(super) fn handle_snapshot(&mut self, m: &Message) {
        let Some(meta) = m.snapshot.as_deref() else {
            return;
        };
        let mut resp = Message::new(MessageType::AppendResponse, self.id, m.from, self.term);
        if meta.index <= self.log.committed {
            resp.index = self.log.committed;
        } else if self.log.match_term(meta.index, meta.term) {
            // The log already holds it: its prefix matches the leader's.
            self.log.commit_to(meta.index);
            resp.index = meta.index;
        } else {
            tracing::debug!(
                id = self.id,
                index = meta.index,
                term = meta.term,
                "installing a snapshot from the leader"
            );
            self.log.restore(meta.clone());
            // The snapshot's membership, until later entries change it.
            self.refresh_conf();
            resp.index = meta.index;
        }
        // Leaves once the snapshot is durable (the Ready carries it).
        self.send(resp);
    }

    /// The snapshot the host would take at `index` (which it has applied,
    /// after the current snapshot): its meta, checked.
    pub fn snapshot_meta_at(&self, index: u64) -> Result<SnapshotMeta, Error> {
        // Handed out in a `Ready` counts as applied: a host snapshots its
        // state from inside its apply callback, before `advance`.
        let applied = self.log.applied.max(self.handed_out);
        if index > applied {
            return Err(Error::Snapshot(format!(
                "index {index} is not applied yet (applied {applied})"
            )));
        }
        let current = self.log.snapshot().index;
        if index <= current {
            return Err(Error::Snapshot(format!(
                "index {index} is not after the current snapshot at {current}"
            )));
        }
        let term = self
            .log
            .term(index)
            .map_err(|e| Error::Snapshot(format!("index {index}: {e}")))?;
        let conf = self.conf_at(index);
        Ok(SnapshotMeta {
            index,
            term,
            voters: conf.voters,
            learners: conf.learners,
            promotable: conf.promotable,
        })
    }

    /// The host made a snapshot durable (`meta` from
    /// [`snapshot_meta_at`](Raft::snapshot_meta_at)): record it, and drop the
    /// in-memory log up to its index minus the trailing window. Returns the
    /// snapshot's (index, term): where the **durable** log may be compacted
    /// to. It needs nothing the snapshot covers — the trailing window serves
    /// followers a little behind from memory, and after a restart they get
    /// the snapshot instead — so recovery never reads those entries and the
    /// WAL segments holding them can go at once. (The index was applied,
    /// and a host makes entries durable before applying them; a caller that
    /// cannot be sure caps it at the end of its durable log.)
    pub fn snapshot_taken(&mut self, meta: SnapshotMeta) -> Result<(u64, u64), Error> {
        let current = self.log.snapshot().index;
        if meta.index <= current || self.log.term(meta.index) != Ok(meta.term) {
            return Err(Error::Snapshot(format!(
                "snapshot at {} (term {}) no longer fits this log (snapshot at {current})",
                meta.index, meta.term
            )));
        }
        let compact_to = meta
            .index
            .saturating_sub(self.cfg.snapshot_trailing_entries);
        let point = (meta.index, meta.term);
        self.log.snapshot_taken(meta, compact_to);
        Ok(point)
    }

    /// One heartbeat to every follower. In the multi layer this is what the
    /// mux calls once per interval for every group a node leads.
    pub fn broadcast_heartbeat(&mut self) {
        if self.role != super::Role::Leader {
            return;
        }
        // Runs for every group a node leads every interval: no `followers()`
        // vector, just disjoint borrows of what it reads and `msgs`.
        let round = self.next_read_round();
        let (id, term, committed) = (self.id, self.term, self.log.committed);
        let followers = self.voters.ids().iter().chain(&self.conf.learners);
        let members = followers.zip(&self.progress).filter(|(&v, _)| v != id);
        let leaving = self.leaving.iter().map(|l| (&l.id, &l.progress));
        for (&to, pr) in members.chain(leaving) {
            let mut m = Message::new(MessageType::Heartbeat, id, to, term);
            // MUST NOT forward the commit past what the follower has matched:
            // a heartbeat can overtake the append that carries those entries,
            // and the follower cannot verify entries it has not received.
            m.commit = pr.matched.min(committed);
            m.index = round;
            self.msgs.push(m);
        }
    }

    /// [`broadcast_heartbeat`](Raft::broadcast_heartbeat) for the batched
    /// mux, when its heartbeats would leave at once anyway (no message
    /// waiting, everything durable: what
    /// [`send_durable_messages`](Raft::send_durable_messages) checks): each
    /// goes to `emit` as (to, term, commit, read round), in the order they
    /// would have been handed out, without a `Message`. Returns false,
    /// having done nothing, otherwise (or if this is not a leader).
    #[inline]
    pub fn broadcast_heartbeat_at_rest(
        &mut self,
        mut emit: impl FnMut(ReplicaId, u64, u64, u64),
    ) -> bool {
        if self.role != super::Role::Leader
            || !self.msgs.is_empty()
            || !self.log.all_stable()
            || self.hard_state() != self.log.store().hard_state()
        {
            return false;
        }
        let round = self.next_read_round();
        let (id, term, committed) = (self.id, self.term, self.log.committed);
        // The same followers, in the same order, as `broadcast_heartbeat`:
        // voters, non-voters, then members being told of their removal.
        let followers = self.voters.ids().iter().chain(&self.conf.learners);
        let members = followers.zip(&self.progress).filter(|(&v, _)| v != id);
        let leaving = self.leaving.iter().map(|l| (&l.id, &l.progress));
        for (&to, pr) in members.chain(leaving) {
            // The commit clamped as in `broadcast_heartbeat`.
            emit(to, term, pr.matched.min(committed), round);
        }
        true
    }

    /// A follower's (or candidate's) append: its entries are moved into
    /// the log, out of `m`.
    pub(super) fn handle_append(&mut self, m: &mut Message) {
        let mut resp = Message::new(MessageType::AppendResponse, self.id, m.from, self.term);
        if m.index < self.log.committed {
            // Everything up to our commit is known to match any leader.
            resp.index = self.log.committed;
            self.send(resp);
            return;
        }
        let config = m.entries.iter().any(|e| e.kind == super::EntryKind::Config);
        let entries = std::mem::take(&mut m.entries);
        match self
            .log
            .maybe_append(m.index, m.log_term, m.commit, entries)
        {
            Some((last, replaced)) => {
                resp.index = last;
                if let Some(at) = replaced {
                    self.drop_acks_from(at);
                }
                // A configuration arrived, or one was replaced: the
                // membership is the log's latest (`membership.rs`).
                let undone = replaced.is_some_and(|at| at <= self.conf_index);
                if undone || config {
                    self.refresh_conf();
                }
            }
            None => {
                // Fast back-off: name the last index at or below the leader's
                // probe whose term is ≤ the probe's term; the leader skips
                // every index after it that cannot match.
                let (hint, hint_term) = self.log.find_conflict_by_term(m.index, m.log_term);
                resp.reject = true;
                resp.index = m.index;
                resp.reject_hint = hint;
                resp.log_term = hint_term;
            }
        }
        self.send(resp);
    }

    /// Entries from `at` on were just replaced before any of them became
    /// durable in their old form: an acknowledgement still waiting to leave
    /// that covers them (made for an earlier leader, before this append)
    /// would promise entries the host is never asked to persist. Drop it: it
    /// answers a leader of an older term, which needs it no more.
    fn drop_acks_from(&mut self, at: u64) {
        self.msgs
            .retain(|m| !(m.msg_type == MessageType::AppendResponse && !m.reject && m.index >= at));
    }

    /// A heartbeat from `from`, leader of `term`, with `commit` = min(our
    /// match, its commit): the whole of Raft's rules for it in one place.
    /// `step` comes here for a `Heartbeat` message, and the node's
    /// heartbeat demux calls it for each row of a batch.
    ///
    /// Term rules as for any message: a higher term makes us its follower; a
    /// lower one is answered with our term (with PreVote or CheckQuorum on),
    /// so that a stale leader learns it and steps down.
    pub fn step_heartbeat(&mut self, from: ReplicaId, term: u64, commit: u64) -> Result<(), Error> {
        self.step_heartbeat_round(from, term, commit, 0)
    }

    /// [`step_heartbeat`](Raft::step_heartbeat) of a heartbeat of read
    /// round `round`, which the answer echoes (`read.rs`).
    pub fn step_heartbeat_round(
        &mut self,
        from: ReplicaId,
        term: u64,
        commit: u64,
        round: u64,
    ) -> Result<(), Error> {
        self.check_peer(from)?;
        if term > self.term {
            self.become_follower(term, from);
        } else if term < self.term {
            if self.cfg.check_quorum || self.cfg.pre_vote {
                self.send(Message::new(
                    MessageType::HeartbeatResponse,
                    self.id,
                    from,
                    self.term,
                ));
            }
            return Ok(());
        }
        match self.role {
            Role::Follower => {
                self.election_elapsed = 0;
                self.leader = from;
            }
            Role::PreCandidate | Role::Candidate => self.become_follower(term, from),
            Role::Leader => {
                self.another_leader(from, term);
                return Ok(());
            }
        }
        // commit ≤ the match the leader recorded for us, which we made
        // durable before acknowledging: it can never pass our verified log.
        if commit > self.log.last_index() {
            // The leader saw us match `commit`, so we lost what we made
            // durable: the disk was wiped and this replica rejoined. Tell
            // it where our log really ends, or it never sends us anything
            // again (it believes we have all it has).
            let last = self.log.last_index();
            tracing::warn!(id = self.id, commit, last, "heartbeat commit past our log");
            let mut lost = Message::new(MessageType::AppendResponse, self.id, from, self.term);
            lost.reject = true;
            lost.index = commit;
            lost.reject_hint = last;
            lost.log_term = self.log.term(last).unwrap_or(0);
            self.send(lost);
        } else {
            self.log.commit_to(commit);
        }
        let mut answer = Message::new(MessageType::HeartbeatResponse, self.id, from, self.term);
        answer.index = round;
        self.send(answer);
        Ok(())
    }

    /// A compact heartbeat row from `from` (the multi layer's batches):
    /// "the same term and commit as my last full row". Used only by a
    /// follower of `from`, as a heartbeat at the term it follows `from` in
    /// and with no new commit; returns that term, or None if this replica
    /// does not follow `from` (then the sender must send a full row).
    ///
    /// Safe even if this replica never received that full row: it follows
    /// `from` at its own term T', so `from` led T'; the sender's term T is
    /// at least T' (terms only grow), and a replica at T' <= T that answers
    /// has voted in no term above T, which is all an answer counts for
    /// (CheckQuorum, read rounds). Nothing is committed from it.
    pub fn step_heartbeat_compact(
        &mut self,
        from: ReplicaId,
        round: u64,
    ) -> Result<Option<u64>, Error> {
        self.check_peer(from)?;
        if self.role != Role::Follower || self.leader != from {
            return Ok(None);
        }
        let (term, commit) = (self.term, self.log.committed);
        self.step_heartbeat_round(from, term, commit, round)?;
        Ok(Some(term))
    }

    /// The batched demux's fast path for a heartbeat row from `from`: full
    /// (`Some((term, commit))`) or compact (`None`, as
    /// [`step_heartbeat_compact`](Raft::step_heartbeat_compact) reads it).
    /// When stepping it would change nothing but the election timer, and
    /// its answer would be the only message and leave at once
    /// ([`send_durable_messages`](Raft::send_durable_messages)): a follower
    /// of `from` at the row's term, owing no message, with everything
    /// durable, that the row brings no new commit. Then it resets the timer
    /// and returns the answer's term, which the caller sends itself, with
    /// the row's read round; this is exactly what
    /// [`step_heartbeat_round`](Raft::step_heartbeat_round) would have done
    /// and handed out. Otherwise it changes nothing and returns None: step
    /// the row the general way.
    #[inline]
    pub fn step_heartbeat_at_rest(
        &mut self,
        from: ReplicaId,
        row: Option<(u64, u64)>,
    ) -> Option<u64> {
        let (term, commit) = row.unwrap_or((self.term, self.log.committed));
        let at_rest = self.role == Role::Follower
            && self.leader == from
            && term == self.term
            && commit <= self.log.committed
            && self.msgs.is_empty()
            && self.log.all_stable()
            && self.hard_state() == self.log.store().hard_state()
            // `check_peer`, without building its error.
            && from != self.id
            && from != NONE
            // A replica that rejoined marks its answers: a `Message` does.
            && self.cfg.can_vote;
        if !at_rest {
            return None;
        }
        self.election_elapsed = 0;
        Some(self.term)
    }

    /// The batched demux's fast path for follower `from`'s answer at `term`
    /// to a heartbeat row without a read round: when this is a leader of
    /// `term` with no message waiting and `from` holds its whole log, the
    /// answer only marks `from` active (what
    /// [`step_heartbeat_response_round`](Raft::step_heartbeat_response_round)
    /// does then, sending nothing); returns whether it was that case (if
    /// not, nothing changed: step it the general way).
    #[inline]
    pub fn step_heartbeat_response_at_rest(&mut self, from: ReplicaId, term: u64) -> bool {
        if term != self.term
            || self.role != Role::Leader
            || !self.msgs.is_empty()
            || from == self.id
        {
            return false;
        }
        // A voter, and where its progress is (a non-voter's answer, or a
        // removed member's, takes the general path).
        let Some(at) = self.voters.position(from) else {
            return false;
        };
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(at) else {
            return false;
        };
        if pr.matched < last {
            return false;
        }
        pr.recent_active = true;
        pr.probe_sent = false;
        if pr.state == ProgressState::Replicate && pr.inflights.full() {
            pr.inflights.free_first_one();
        }
        true
    }

    /// The answer of follower `from` (at `term`) to our heartbeat. A higher
    /// term means we are a stale leader: we step down.
    pub fn step_heartbeat_response(&mut self, from: ReplicaId, term: u64) -> Result<(), Error> {
        self.step_heartbeat_response_round(from, term, 0)
    }

    /// [`step_heartbeat_response`](Raft::step_heartbeat_response) of an
    /// answer to read round `round` (0: none). The heartbeat demux calls it
    /// with the round of the row the answer answers.
    pub fn step_heartbeat_response_round(
        &mut self,
        from: ReplicaId,
        term: u64,
        round: u64,
    ) -> Result<(), Error> {
        self.step_heartbeat_response_marked(from, term, round, false)
    }

    /// [`step_heartbeat_response_round`](Raft::step_heartbeat_response_round)
    /// of an answer that may come from a replica that rejoined
    /// (`Message::rejoined`; the demux reads it from the response's list):
    /// the follower's progress is marked before the answer counts.
    pub fn step_heartbeat_response_marked(
        &mut self,
        from: ReplicaId,
        term: u64,
        round: u64,
        rejoined: bool,
    ) -> Result<(), Error> {
        self.check_peer(from)?;
        if term > self.term {
            self.become_follower(term, NONE);
        } else if term == self.term && self.role == Role::Leader {
            if rejoined {
                self.mark_rejoined(from);
            }
            self.handle_heartbeat_response(from);
            self.read_round_answered(from, round);
        }
        Ok(())
    }

    /// Follower `from` lost its durable state and rejoined: from now on it
    /// counts in no quorum of this leader's (`Progress::rejoined`).
    fn mark_rejoined(&mut self, from: ReplicaId) {
        if let Some(pr) = self.progress_mut(from) {
            if !pr.rejoined {
                tracing::info!(from, "follower rejoined without its disk: in no quorum");
                pr.rejoined = true;
            }
        }
    }

    pub(super) fn handle_append_response(&mut self, m: &Message) {
        let from = m.from;
        if !m.reject && m.index > self.log.last_index() {
            // A follower cannot have matched entries this leader never had.
            tracing::warn!(
                from,
                index = m.index,
                "append response past our log; ignored"
            );
            return;
        }
        let next_probe = if m.reject && m.log_term > 0 {
            // Our own last index at or below the hint with a term ≤ the
            // follower's term there: everything between cannot match.
            self.log.find_conflict_by_term(m.reject_hint, m.log_term).0
        } else {
            m.reject_hint
        };
        let Some(pr) = self.progress_mut(from) else {
            return;
        };
        // Before the answer counts: a replica that rejoined marks all.
        pr.rejoined |= m.rejoined;
        pr.recent_active = true;
        if m.reject {
            if pr.maybe_decr_to(m.index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(from, true);
            }
            return;
        }
        if !pr.maybe_update(m.index) {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Replicate => pr.inflights.free_to(m.index),
            ProgressState::Snapshot => {
                if pr.matched >= pr.pending_snapshot {
                    pr.become_probe();
                    pr.become_replicate();
                }
            }
        }
        if self.maybe_commit() {
            self.commit_moved();
        }
        // Fill the window at `ready`, with everything proposed by then.
        let last = self.log.last_index();
        if self.progress(from).is_some_and(|pr| pr.next <= last) {
            self.send_pending = true;
        }
        if from == self.lead_transferee {
            self.maybe_send_timeout_now();
        }
        if self.conf.promotable.contains(&from) {
            self.maybe_promote();
        }
    }

    fn handle_heartbeat_response(&mut self, from: ReplicaId) {
        let last = self.log.last_index();
        let Some(pr) = self.progress_mut(from) else {
            return;
        };
        pr.recent_active = true;
        pr.probe_sent = false;
        if pr.state == ProgressState::Replicate && pr.inflights.full() {
            pr.inflights.free_first_one();
        }
        // A lagging follower is found here: heartbeats carry no log position,
        // so the leader sends it a real append.
        if pr.matched < last {
            self.send_append(from, true);
        }
    }

    /// Commit the highest index a majority has matched, if it is of this
    /// term (§5.4.2: never count replicas for an older term's entry).
    pub(super) fn maybe_commit(&mut self) -> bool {
        // A replica that rejoined may acknowledge entries that conflict
        // with one it helped commit before it lost its disk: it holds
        // nothing toward a quorum.
        let index = self.voters.committed_index(|id| {
            self.progress(id)
                .map_or(0, |p| if p.rejoined { 0 } else { p.matched })
        });
        if index > self.log.committed && self.log.term_or_zero(index) == self.term {
            self.log.commit_to(index);
            // Reads taken before this leader's first commit wait for it.
            self.confirm_reads();
            // A committed change may end this leader's term here.
            self.after_commit_conf();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod at_rest_tests {
    //! The demux's fast paths against the general ones: the same state
    //! after the same row, and the same answer handed out.
    use super::super::quiet::tests::pump;
    use super::super::{Config, MemStore};
    use super::*;

    /// Replicas 1..=3 of one group, 1 leading, an entry committed and
    /// applied everywhere, everything durable.
    fn group() -> Vec<Raft<MemStore>> {
        let mut rs: Vec<_> = (1..=3)
            .map(|id| Raft::new(Config::new(id), &[1, 2, 3], MemStore::new()).unwrap())
            .collect();
        rs[0].campaign();
        pump(&mut rs, |_| false);
        rs[0].propose(bytes::Bytes::from_static(b"x")).unwrap();
        pump(&mut rs, |_| false);
        assert_eq!(rs[0].role(), Role::Leader);
        rs
    }

    fn state(r: &Raft<MemStore>) -> String {
        format!(
            "{:?}",
            (
                (r.term, r.vote, r.role, r.leader, r.hard_state()),
                (r.log.committed, r.log.last_index(), r.log.all_stable()),
                (r.election_elapsed, r.heartbeat_elapsed),
                (&r.msgs, &r.progress, r.send_pending, r.commit_pending),
                r.has_ready(),
            )
        )
    }

    /// What the general path hands out at once.
    fn sent(r: &mut Raft<MemStore>) -> Vec<Message> {
        let mut out = Vec::new();
        r.send_durable_messages(|m| out.push(m));
        out
    }

    /// Step a row from `from` into replica `at` both ways, after `setup`;
    /// returns whether the fast path took it (and checks it agreed).
    fn row(
        setup: impl Fn(&mut Vec<Raft<MemStore>>),
        at: usize,
        from: u64,
        row: Option<(u64, u64)>,
        round: u64,
    ) -> bool {
        let (mut a, mut b) = (group(), group());
        setup(&mut a);
        setup(&mut b);
        let before = state(&b[at]);
        let fast = b[at].step_heartbeat_at_rest(from, row);
        let general = match row {
            Some((term, commit)) => a[at].step_heartbeat_round(from, term, commit, round),
            None => a[at].step_heartbeat_compact(from, round).map(|_| ()),
        };
        match fast {
            Some(term) => {
                assert!(general.is_ok());
                let mut answer =
                    Message::new(MessageType::HeartbeatResponse, at as u64 + 1, from, term);
                answer.index = round;
                assert_eq!(sent(&mut a[at]), vec![answer]);
                assert_eq!(state(&a[at]), state(&b[at]));
                true
            }
            None => {
                assert_eq!(state(&b[at]), before, "the fast path changed nothing");
                false
            }
        }
    }

    // Mutation: dropping any condition of `step_heartbeat_at_rest` takes a
    // row the general path treats otherwise (a new term, a new commit, a
    // message waiting, a write not durable), and the states differ.
    #[test]
    fn a_row_at_rest_takes_the_fast_path_and_ends_as_the_general_one() {
        let none = |_: &mut Vec<Raft<MemStore>>| {};
        let (term, commit) = {
            let g = group();
            (g[0].term, g[0].log.committed)
        };
        let elapsed = |rs: &mut Vec<Raft<MemStore>>| {
            rs[1].tick();
            rs[1].tick();
        };
        assert!(row(elapsed, 1, 1, Some((term, commit)), 0));
        assert!(row(elapsed, 1, 1, Some((term, commit)), 7));
        assert!(row(none, 1, 1, Some((term, commit - 1)), 0), "older commit");
        assert!(row(elapsed, 1, 1, None, 3), "compact");
        assert!(!row(none, 1, 1, Some((term + 1, commit)), 0), "new term");
        assert!(!row(none, 1, 1, Some((term - 1, commit)), 0), "stale");
        assert!(!row(none, 1, 3, Some((term, commit)), 0), "not its leader");
        assert!(!row(none, 1, 9, Some((term, commit)), 0), "not a member");
        assert!(!row(none, 0, 2, Some((term, commit)), 0), "a leader");
        let behind = |rs: &mut Vec<Raft<MemStore>>| {
            // An entry the follower holds but does not know committed: the
            // empty append that would tell it is lost.
            rs[0].propose(bytes::Bytes::from_static(b"y")).unwrap();
            pump(rs, |m| {
                m.to == 2 && m.msg_type == MessageType::Append && m.entries.is_empty()
            });
            assert_eq!(rs[1].log.committed + 1, rs[0].log.committed);
        };
        assert!(
            !row(behind, 1, 1, Some((term, commit + 1)), 0),
            "new commit"
        );
        assert!(row(behind, 1, 1, Some((term, commit)), 0), "no new commit");
        let waiting = |rs: &mut Vec<Raft<MemStore>>| {
            let term = rs[1].term;
            rs[1].send(Message::new(MessageType::AppendResponse, 2, 1, term));
        };
        assert!(
            !row(waiting, 1, 1, Some((term, commit)), 0),
            "message waiting"
        );
        let undurable = |rs: &mut Vec<Raft<MemStore>>| {
            rs[1].vote = 3;
        };
        assert!(!row(undurable, 1, 1, None, 0), "hard state not durable");
    }

    /// Broadcast heartbeats from replica `at` both ways, after `setup`;
    /// returns whether the fast path took them (and checks it agreed).
    fn broadcast(setup: impl Fn(&mut Vec<Raft<MemStore>>), at: usize) -> bool {
        let (mut a, mut b) = (group(), group());
        setup(&mut a);
        setup(&mut b);
        let before = state(&b[at]);
        let mut rows = Vec::new();
        let fast = b[at].broadcast_heartbeat_at_rest(|to, term, commit, round| {
            rows.push((to, term, commit, round))
        });
        a[at].broadcast_heartbeat();
        if fast {
            let general: Vec<_> = sent(&mut a[at])
                .into_iter()
                .map(|m| {
                    assert_eq!(
                        (m.msg_type, m.from),
                        (MessageType::Heartbeat, at as u64 + 1)
                    );
                    (m.to, m.term, m.commit, m.index)
                })
                .collect();
            assert_eq!(rows, general);
            assert!(!rows.is_empty());
            assert_eq!(state(&a[at]), state(&b[at]));
        } else {
            assert!(rows.is_empty());
            assert_eq!(state(&b[at]), before, "the fast path changed nothing");
        }
        fast
    }

    // Mutation: broadcasting rows while a message waits (they would pass
    // it) or before a write is durable, or without the read round.
    #[test]
    fn heartbeats_at_rest_are_the_rows_the_general_path_would_hand_out() {
        assert!(broadcast(|_| {}, 0));
        let reading = |rs: &mut Vec<Raft<MemStore>>| {
            rs[0].read_index(77, false).unwrap();
        };
        assert!(broadcast(reading, 0), "with a read round");
        let lagging = |rs: &mut Vec<Raft<MemStore>>| {
            rs[0].propose(bytes::Bytes::from_static(b"y")).unwrap();
            pump(rs, |m| m.to == 2);
        };
        assert!(broadcast(lagging, 0), "commit clamped to the match");
        let waiting = |rs: &mut Vec<Raft<MemStore>>| {
            let term = rs[0].term;
            rs[0].send(Message::new(MessageType::Append, 1, 3, term));
        };
        assert!(!broadcast(waiting, 0), "a message waiting");
        let undurable = |rs: &mut Vec<Raft<MemStore>>| {
            rs[0].propose(bytes::Bytes::from_static(b"z")).unwrap();
        };
        assert!(!broadcast(undurable, 0), "an entry not durable");
        assert!(!broadcast(|_| {}, 1), "a follower");
        // Rows to a non-voter, and to a member being told of its removal,
        // as the general path sends them (node 4 never answers).
        let with_learner = |rs: &mut Vec<Raft<MemStore>>| {
            let add = super::super::ConfChange::Add {
                id: 4,
                role: super::super::MemberRole::NonVoter,
            };
            rs[0].propose_conf_change(add).unwrap();
            pump(rs, |m| m.to == 4);
        };
        assert!(broadcast(with_learner, 0), "with a non-voter");
        let removing = |rs: &mut Vec<Raft<MemStore>>| {
            let cc = super::super::ConfChange::Remove { id: 3 };
            rs[0].propose_conf_change(cc).unwrap();
            pump(rs, |_| false);
            assert!(!rs[0].leaving.is_empty());
        };
        assert!(broadcast(removing, 0), "with a member leaving");
    }

    /// An answer from `from` at `term` into the leader both ways.
    fn answer(setup: impl Fn(&mut Vec<Raft<MemStore>>), from: u64, term: u64) -> bool {
        let (mut a, mut b) = (group(), group());
        setup(&mut a);
        setup(&mut b);
        for r in [&mut a[0], &mut b[0]] {
            for pr in r.progress.iter_mut() {
                pr.recent_active = false;
                pr.probe_sent = true;
            }
        }
        let before = state(&b[0]);
        let fast = b[0].step_heartbeat_response_at_rest(from, term);
        a[0].step_heartbeat_response_round(from, term, 0).ok();
        if fast {
            assert!(sent(&mut a[0]).is_empty());
            assert_eq!(state(&a[0]), state(&b[0]));
        } else {
            assert_eq!(state(&b[0]), before, "the fast path changed nothing");
        }
        fast
    }

    // Mutation: taking an answer of another term, or from a follower that
    // lacks entries (which the general path sends an append), differs.
    #[test]
    fn an_answer_at_rest_takes_the_fast_path_and_ends_as_the_general_one() {
        let none = |_: &mut Vec<Raft<MemStore>>| {};
        let term = group()[0].term;
        assert!(answer(none, 2, term));
        assert!(!answer(none, 2, term + 1), "a higher term deposes");
        assert!(!answer(none, 2, term - 1), "stale");
        assert!(!answer(none, 9, term), "not a member");
        let lagging = |rs: &mut Vec<Raft<MemStore>>| {
            rs[0].propose(bytes::Bytes::from_static(b"y")).unwrap();
            pump(rs, |m| m.to == 2);
        };
        assert!(
            !answer(lagging, 2, term),
            "a follower behind gets an append"
        );
        let waiting = |rs: &mut Vec<Raft<MemStore>>| {
            let term = rs[0].term;
            rs[0].send(Message::new(MessageType::Heartbeat, 1, 3, term));
        };
        assert!(!answer(waiting, 2, term), "a message waiting");
    }
}

/// The ids [`Raft::followers`] returns: inline up to [`Followers::INLINE`],
/// on the heap past that.
pub(super) enum Followers {
    Inline([ReplicaId; Followers::INLINE], usize),
    Heap(std::vec::IntoIter<ReplicaId>),
}

impl Followers {
    pub(super) const INLINE: usize = 8;

    fn collect(mut ids: impl Iterator<Item = ReplicaId>) -> Followers {
        let mut buf = [NONE; Followers::INLINE];
        let mut n = 0;
        while let Some(id) = ids.next() {
            if n == Followers::INLINE {
                let mut all = buf.to_vec();
                all.push(id);
                all.extend(ids);
                return Followers::Heap(all.into_iter());
            }
            buf[n] = id;
            n += 1;
        }
        // Taken from the back: reverse, so that they come out in order.
        buf[..n].reverse();
        Followers::Inline(buf, n)
    }
}

impl Iterator for Followers {
    type Item = ReplicaId;

    fn next(&mut self) -> Option<ReplicaId> {
        match self {
            Followers::Inline(buf, n) => {
                if *n == 0 {
                    return None;
                }
                *n -= 1;
                Some(buf[*n])
            }
            Followers::Heap(it) => it.next(),
        }
    }
}

#[cfg(test)]
mod followers_tests {
    use super::*;

    // Mutation: the inline ids out of order, the last one lost, or the
    // heap path cut at the inline size: the lists differ.
    #[test]
    fn followers_come_out_in_member_order_inline_and_on_the_heap() {
        for n in [0usize, 1, 2, 7, 8, 9, 20] {
            let ids: Vec<ReplicaId> = (1..=n as u64).map(|i| i * 3).collect();
            let got: Vec<ReplicaId> = Followers::collect(ids.iter().copied()).collect();
            assert_eq!(got, ids, "{n} followers");
        }
    }
}
