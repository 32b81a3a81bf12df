//! `Ready`: everything a replica asks its host to do, and the order to do it
//! in. This ordering is the contract that keeps acknowledged entries safe.

use super::core::Role;
use super::LogStore;
use super::{Entry, HardState, Message, Raft, ReadState, ReplicaId, SnapshotMeta};

/// Work for the host, to be done in this order:
///
/// 1. make `snapshot` (a snapshot received from the leader: it replaces the
///    whole log), then `entries` and `hard_state`, durable (entries may
///    replace a suffix of what was written before, starting at
///    `entries[0].index`);
/// 2. only then send `messages` — votes and append acknowledgements promise
///    that state, so they must not leave before it is durable;
/// 3. restore the state machine from `snapshot`, then apply
///    `committed_entries` in order (never any of a ready that carries a
///    snapshot: they follow in the next);
/// 4. call [`Raft::advance`] with this `Ready`.
///
/// No `step`, `tick` or `propose` may happen between `ready` and `advance`.
#[derive(Debug, Default)]
pub struct Ready {
    /// A snapshot from the leader that replaces the log.
    pub snapshot: Option<SnapshotMeta>,
    /// Changed since the last `Ready`; None if not.
    pub hard_state: Option<HardState>,
    /// The term or the vote in `hard_state` changed (not only the commit
    /// index). Term and vote must be durable before `messages` leave; a
    /// commit index that alone moved may be made durable along with the
    /// entries (a lower commit after a restart is relearned from the
    /// leader), as the runtime's WAL batch does.
    pub term_or_vote_changed: bool,
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
    pub committed_entries: Vec<Entry>,
    /// Role or known leader changed: (role, term, leader).
    pub role_change: Option<(Role, u64, ReplicaId)>,
    /// Reads (`Raft::read_index`) confirmed at an index the host has
    /// applied once it applied this ready's `committed_entries` (and its
    /// snapshot): serve them after those, from the state machine.
    pub reads: Vec<ReadState>,
    /// Reads lost with the leadership before they were confirmed.
    pub reads_failed: Vec<u64>,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.hard_state.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.committed_entries.is_empty()
            && self.role_change.is_none()
            && self.reads.is_empty()
            && self.reads_failed.is_empty()
    }
}

impl<S: LogStore> Raft<S> {
    /// Is there anything for the host to do?
    pub fn has_ready(&self) -> bool {
        !self.msgs.is_empty()
            || self.send_pending
            || self.commit_pending
            || self.log.has_pending_snapshot_for_ready()
            || self.log.has_unstable_for_ready()
            || self.log.has_next_committed()
            || self.hard_state() != self.prev_hard_state
            || (self.role, self.leader) != self.prev_role
            || self.reads_ready(self.handed_out.max(self.log.applied))
    }

    /// A leader sends what was proposed, and what followers' answers made
    /// room for, since the last `Ready`: one append per follower for all
    /// of it, not one per proposal or answer; more only where it exceeds
    /// `max_append_bytes`, as far as the follower's flow control allows
    /// (each send moves its `next` on, or pauses it). A new commit index
    /// rides on those appends; a follower that gets none gets an empty one
    /// for it.
    fn send_pending_appends(&mut self) {
        let send = std::mem::take(&mut self.send_pending);
        let commit = std::mem::take(&mut self.commit_pending);
        if !(send || commit) || self.role != Role::Leader {
            return;
        }
        for to in self.followers() {
            let mut sent = false;
            while self.send_append(to, false) {
                sent = true;
            }
            if commit && !sent {
                self.send_append(to, true);
            }
        }
    }

    /// Hand the pending messages to `send` now, without a `Ready`, if none of
    /// them can depend on state that is not yet durable: every entry is in
    /// the store and the hard state equals the recorded one. Idle heartbeats
    /// and their answers are such messages, so an idle group costs no
    /// persist/advance cycle. Returns whether messages were handed over; if
    /// not, they wait for the next `Ready` (and keep their order).
    pub fn send_durable_messages(&mut self, mut send: impl FnMut(Message)) -> bool {
        if self.msgs.is_empty()
            || !self.log.all_stable()
            || self.hard_state() != self.log.store().hard_state()
        {
            return false;
        }
        for m in self.msgs.drain(..) {
            send(m);
        }
        true
    }

    /// Take the work accumulated since the last `Ready`.
    pub fn ready(&mut self) -> Ready {
        self.send_pending_appends();
        let hs = self.hard_state();
        let hard_state = (hs != self.prev_hard_state).then_some(hs);
        let term_or_vote_changed =
            hs.term != self.prev_hard_state.term || hs.vote != self.prev_hard_state.vote;
        self.prev_hard_state = hs;
        let role = (self.role, self.leader);
        let role_change = (role != self.prev_role).then_some((self.role, self.term, self.leader));
        self.prev_role = role;
        let committed_entries = self.log.next_committed(self.cfg.max_apply_bytes);
        if let Some(last) = committed_entries.last() {
            self.handed_out = last.index;
        }
        let snapshot = self.log.pending_snapshot_for_ready();
        let applied = self
            .handed_out
            .max(self.log.applied)
            .max(snapshot.as_ref().map_or(0, |s| s.index));
        let (reads, reads_failed) = self.take_reads(applied);
        Ready {
            snapshot,
            hard_state,
            term_or_vote_changed,
            entries: self.log.unstable_for_ready(),
            messages: std::mem::take(&mut self.msgs),
            committed_entries,
            role_change,
            reads,
            reads_failed,
        }
    }

    /// The host has done what `ready` asked: entries and hard state are
    /// durable, messages sent, committed entries applied.
    pub fn advance(&mut self, ready: &Ready) {
        if let Some(meta) = &ready.snapshot {
            self.log.snapshot_stable(meta);
        }
        match ready.entries.last() {
            Some(last) => self.log.stable_to(last.index, last.term, ready.hard_state),
            None => self.log.stable_to(0, 0, ready.hard_state),
        }
        self.self_durable();
        if let Some(last) = ready.committed_entries.last() {
            self.log.applied_to(last.index);
        }
    }
}
