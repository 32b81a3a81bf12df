//! The heartbeat mux and demux: the reason muxraft exists.
//!
//! Sending side (mux): once per heartbeat interval the node asks every group
//! it leads for its heartbeats (`Raft::broadcast_heartbeat`, in
//! `raft/replication.rs`); as the node routes the resulting messages, every
//! `Heartbeat` bound for peer P becomes a row of P's one `HeartbeatBatch`,
//! and every `HeartbeatResponse` a row of P's one `HeartbeatBatchResponse`
//! ([`HeartbeatMux::offer`]). A row carries only (group, term, commit),
//! where the group already clamped commit to the follower's match, so
//! nothing is lost by dropping the rest of the message. At `ready` the rows
//! leave as one batch per peer ([`flush`]); the wire layer encodes a batch
//! as columns (`wire/batch.rs`).
//!
//! Receiving side (demux): each row of a batch is stepped into its group
//! with exactly what a stand-alone heartbeat would have delivered
//! (`Raft::step_heartbeat`), and each answer with `step_heartbeat_response`.
//! A row for a group this node does not host is dropped for that group
//! alone.
//!
//! Both sides have a fast path for the idle case, which is most rows: a
//! leader at rest hands its heartbeats to the mux as rows
//! ([`HeartbeatMux::beat`]), a follower at rest only resets its timer and
//! its answer goes straight into the answer rows ([`HeartbeatMux::answer`]),
//! and an answer from an up-to-date follower only marks it active; no
//! `Message` is built for any of them. Each is what the general path would
//! have done (the `_at_rest` functions of `raft/replication.rs` say when,
//! and their tests compare the two); anything else takes the general
//! path.
//!
//! Every row belongs to one incarnation of its group (a group id can be
//! removed and created again), and rows of another incarnation must never
//! reach a group. A batch proves the incarnations of all its rows with one
//! digest ([`incarnation_digest`]); a receiver whose groups do not match it
//! drops the whole batch and says so in its response, and the sender then
//! names each row's incarnation for a few batches ([`IncarnationProofs`]),
//! so that only the rows of other incarnations are dropped.
//!
//! Compact rows ([`Compaction`]): a group that is awake but unchanged sends
//! the same (term, commit) every interval. The sender numbers its batches
//! to each peer; the peer's answers say which of the last 64 it received
//! and stepped. Once the batch with a group's full row is known received,
//! the following rows with the same values go compact: the group id alone
//! (its term 0 in the decoded batch), about one byte. The follower reads a
//! compact row as a heartbeat from its leader at the term it follows it in,
//! with no new commit; one that does not follow the sender (it restarted,
//! campaigned, or never got the full row) uses nothing of it and asks for
//! a full row instead. An answer whose term is the term of the row it
//! answers leaves the term out too. Why a compact row is safe even when a
//! sender wrongly believes its full row arrived: the follower then uses
//! only what it already holds (its own term, which is at most the leader's,
//! and no commit), see `Raft::step_heartbeat_compact`.

use std::collections::{BTreeMap, BTreeSet};

use super::group::Quiet;
use super::message::{
    incarnation_row_hash, Body, Envelope, GroupHeartbeat, GroupHeartbeatResponse, HeartbeatBatch,
    HeartbeatBatchResponse, Incarnations,
};
use super::node::{Node, Stepped};
use super::stats::Stats;
use crate::raft::{Message, MessageType};

/// One list per peer node, in peer order.
pub(crate) type PerPeer<T> = Vec<(u64, Vec<T>)>;

/// A row and the replica that produced it.
pub(crate) type Row<T> = (T, Replica);

/// Which replica of its group a row comes from: the group's incarnation,
/// and that pair's share of a batch's digest (`incarnation_row_hash`, which
/// a group computes once: `Group::replica`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Replica {
    pub incarnation: u64,
    pub hash: u64,
}

impl Replica {
    pub fn new(group_id: u64, incarnation: u64) -> Replica {
        Replica {
            incarnation,
            hash: incarnation_row_hash(group_id, incarnation),
        }
    }
}

/// Heartbeats and answers bound for each peer during one `ready` pass.
#[derive(Default)]
pub(crate) struct HeartbeatMux {
    beats: PeerLists<Row<GroupHeartbeat>>,
    answers: PeerLists<Row<GroupHeartbeatResponse>>,
    /// Per peer, the groups whose row to it carries the quiesce notice.
    quiesce: PeerLists<u64>,
    /// Per peer, the groups whose answer to it says "gone quiet".
    quiesced: PeerLists<u64>,
    /// Per peer, (group, read round) of the heartbeats and of the answers
    /// that carry one (`raft/read.rs`).
    beat_rounds: PeerLists<(u64, u64)>,
    answer_rounds: PeerLists<(u64, u64)>,
    /// Per peer, (group, term) of the rows stepped from its batches in
    /// this pass: an answer at that term leaves the term out.
    row_terms: PeerLists<(u64, u64)>,
    /// Per peer, the groups whose compact row could not be used.
    need_full: PeerLists<u64>,
    /// Per peer, the groups whose answer to it comes from a replica that
    /// rejoined without its disk (`Message::rejoined`).
    rejoined: PeerLists<u64>,
}

/// One list per peer. A node has few peers and a batch's rows all go to the
/// same one, so the last peer used is checked first, then a short scan.
struct PeerLists<T> {
    lists: Vec<(u64, Vec<T>)>,
    last: usize,
}

impl<T> Default for PeerLists<T> {
    fn default() -> Self {
        PeerLists {
            lists: Vec::new(),
            last: 0,
        }
    }
}

impl<T> PeerLists<T> {
    #[inline(always)]
    fn push(&mut self, peer: u64, item: T) {
        self.push_with(peer, |v| v.push(item));
    }

    #[inline(always)]
    fn push_with(&mut self, peer: u64, f: impl FnOnce(&mut Vec<T>)) {
        if self.lists.get(self.last).map(|(p, _)| *p) != Some(peer) {
            self.last = match self.lists.iter().position(|(p, _)| *p == peer) {
                Some(i) => i,
                None => {
                    // Lists of a pass are filled from empty: skip the
                    // smallest steps of growing.
                    self.lists.push((peer, Vec::with_capacity(64)));
                    self.lists.len() - 1
                }
            };
        }
        f(&mut self.lists[self.last].1);
    }

    fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// Room for `n` more items to `peer` (a list for it, even empty).
    fn reserve(&mut self, peer: u64, n: usize) {
        match self.lists.iter().position(|(p, _)| *p == peer) {
            Some(i) => self.lists[i].1.reserve(n),
            None => self.lists.push((peer, Vec::with_capacity(n))),
        }
    }

    /// Make sure `peer` has a list, even an empty one (so that a frame goes
    /// out to it).
    fn ensure(&mut self, peer: u64) {
        if !self.lists.iter().any(|(p, _)| *p == peer) {
            self.lists.push((peer, Vec::new()));
        }
    }

    fn retain(&mut self, keep: impl Fn(&T) -> bool) {
        for (_, v) in self.lists.iter_mut() {
            v.retain(&keep);
        }
    }

    /// Per peer in peer order, each list sorted by group with one row per
    /// group (its last).
    fn finish(mut self, group: impl Fn(&T) -> u64 + Copy) -> PerPeer<T> {
        self.lists.sort_unstable_by_key(|(p, _)| *p);
        for (_, v) in self.lists.iter_mut() {
            keep_last_per_group(v, group);
        }
        self.lists
    }
}

impl HeartbeatMux {
    pub fn is_empty(&self) -> bool {
        self.beats.is_empty() && self.answers.is_empty()
    }

    /// Take `m` into a batch if it is a heartbeat or its answer (true);
    /// other messages are left to the caller (false). Borrows `m`: a row
    /// copies three numbers out of it, and the caller drops it either way.
    pub fn offer(&mut self, group_id: u64, incarnation: u64, m: &Message) -> bool {
        match m.msg_type {
            MessageType::Heartbeat => {
                let replica = Replica::new(group_id, incarnation);
                self.beat(m.to, group_id, replica, m.term, m.commit, m.index);
                true
            }
            MessageType::HeartbeatResponse => {
                let replica = Replica::new(group_id, incarnation);
                self.answer(m.to, group_id, replica, m.term, m.index);
                if m.rejoined {
                    self.rejoined.push(m.to, group_id);
                }
                true
            }
            _ => false,
        }
    }

    /// The heartbeat row of group `group_id` (its `replica`) to `peer`:
    /// what [`offer`](HeartbeatMux::offer) makes of a `Heartbeat`.
    #[inline]
    pub fn beat(
        &mut self,
        peer: u64,
        group_id: u64,
        replica: Replica,
        term: u64,
        commit: u64,
        round: u64,
    ) {
        let row = GroupHeartbeat {
            group_id,
            term,
            commit,
        };
        self.beats.push(peer, (row, replica));
        if round != 0 {
            self.beat_rounds.push(peer, (group_id, round));
        }
    }

    /// The answer row of group `group_id` (its `replica`) to `peer`, at
    /// `term`, echoing read round `round` (0: none): what [`offer`]
    /// makes of a `HeartbeatResponse`.
    ///
    /// [`offer`]: HeartbeatMux::offer
    #[inline]
    pub fn answer(&mut self, peer: u64, group_id: u64, replica: Replica, term: u64, round: u64) {
        let row = GroupHeartbeatResponse { group_id, term };
        self.answers.push(peer, (row, replica));
        if round != 0 {
            self.answer_rounds.push(peer, (group_id, round));
        }
    }

    /// A batch of `rows` rows from `peer` is being stepped: room for their
    /// answers.
    pub fn expect_answers(&mut self, peer: u64, rows: usize) {
        // Not `row_terms`: rows stepped at rest mostly leave nothing there.
        self.answers.reserve(peer, rows);
    }

    /// A response batch goes to `peer` in this pass even if it carries no
    /// row (it answers a batch, or has something to report).
    pub fn ensure_answer_to(&mut self, peer: u64) {
        self.answers.ensure(peer);
    }

    /// A heartbeat batch goes to `peer` in this pass even if it carries no
    /// row (the batch is the node-level liveness signal), with room for
    /// `rows` rows.
    pub fn expect_beats(&mut self, peer: u64, rows: usize) {
        self.beats.reserve(peer, rows);
    }

    /// The row of `group_id` to `peer` in this pass carries the quiesce
    /// notice (if the group has a row there; see [`flush`]).
    pub fn mark_quiesce(&mut self, peer: u64, group_id: u64) {
        self.quiesce.push(peer, group_id);
    }

    /// The answer of `group_id` to `peer` in this pass says it went quiet.
    pub fn mark_quiesced(&mut self, peer: u64, group_id: u64) {
        self.quiesced.push(peer, group_id);
    }

    /// Group `group_id`'s row from `peer` was stepped at `term` (the row's,
    /// or for a compact row the term it stood for).
    #[inline]
    pub fn row_stepped(&mut self, peer: u64, group_id: u64, term: u64) {
        self.row_terms.push(peer, (group_id, term));
    }

    /// Group `group_id` could not use `peer`'s compact row.
    pub fn need_full(&mut self, peer: u64, group_id: u64) {
        self.need_full.push(peer, group_id);
    }

    /// Forget every row of `group_id` (the group was removed: nothing of
    /// it may leave any more).
    pub fn purge(&mut self, group_id: u64) {
        self.beats.retain(|(r, _)| r.group_id != group_id);
        self.answers.retain(|(r, _)| r.group_id != group_id);
        self.quiesce.retain(|&g| g != group_id);
        self.quiesced.retain(|&g| g != group_id);
        self.beat_rounds.retain(|&(g, _)| g != group_id);
        self.answer_rounds.retain(|&(g, _)| g != group_id);
        self.row_terms.retain(|&(g, _)| g != group_id);
        self.rejoined.retain(|&g| g != group_id);
    }

    /// The batches, one per peer and kind, each sorted by group. Rows mostly
    /// arrive sorted already (ticks visit groups in creation order, which is
    /// usually id order, and a batch's answers come in the batch's order), so
    /// sorting is usually one linear pass. A group that produced two
    /// heartbeats for one peer in a pass keeps only its last (a later one
    /// supersedes: terms only grow and commit only advances).
    #[cfg(test)]
    pub fn finish(
        self,
    ) -> (
        PerPeer<Row<GroupHeartbeat>>,
        PerPeer<Row<GroupHeartbeatResponse>>,
    ) {
        let (rows, _, _, _) = self.finish_with_flags();
        rows
    }

    /// [`finish`](Self::finish), and per peer the groups marked with
    /// [`mark_quiesce`](Self::mark_quiesce),
    /// [`mark_quiesced`](Self::mark_quiesced) and as rejoined (sorted, one
    /// entry per group), the rounds, the rows' terms and the groups that
    /// need a full row.
    #[allow(clippy::type_complexity)]
    fn finish_with_flags(
        self,
    ) -> (
        (
            PerPeer<Row<GroupHeartbeat>>,
            PerPeer<Row<GroupHeartbeatResponse>>,
        ),
        (PerPeer<u64>, PerPeer<u64>),
        (PerPeer<(u64, u64)>, PerPeer<(u64, u64)>),
        (PerPeer<(u64, u64)>, PerPeer<u64>, PerPeer<u64>),
    ) {
        (
            (
                self.beats.finish(|(h, _)| h.group_id),
                self.answers.finish(|(h, _)| h.group_id),
            ),
            (self.quiesce.finish(|&g| g), self.quiesced.finish(|&g| g)),
            (
                finish_rounds(self.beat_rounds),
                finish_rounds(self.answer_rounds),
            ),
            (
                self.row_terms.finish(|&(g, _)| g),
                self.need_full.finish(|&g| g),
                self.rejoined.finish(|&g| g),
            ),
        )
    }
}

/// Per peer, (group, round) sorted by group with one entry per group, its
/// highest round (a later round confirms everything an earlier one would).
fn finish_rounds(lists: PeerLists<(u64, u64)>) -> PerPeer<(u64, u64)> {
    let mut lists = lists.lists;
    for (_, v) in lists.iter_mut() {
        v.sort_unstable();
        v.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = kept.1.max(later.1);
            }
            same
        });
    }
    lists
}

fn keep_last_per_group<T>(v: &mut Vec<T>, key: impl Fn(&T) -> u64) {
    // The usual case: one row per group, in group order already.
    if v.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
        return;
    }
    // Stable sort keeps emission order within a group (and is linear on the
    // usual already sorted list); then keep the last row of each group, in
    // place: `dedup_by` drops `later` and keeps `kept`, so move the later
    // row's values into the kept slot first.
    v.sort_by_key(&key);
    v.dedup_by(|later, kept| {
        let same = key(later) == key(kept);
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
}

/// A full row stands for the compact rows after it for this many batches
/// to its peer (the window of batches a peer's answer acknowledges); then
/// the group sends a full row again.
const BASE_WINDOW: u64 = 64;

/// What a full row told a peer: its group's compact rows stand for it once
/// batch `seq` is known received.
#[derive(Clone, Copy, Debug)]
struct Base {
    group: u64,
    /// The group's incarnation: a row of another never stands for it.
    incarnation: u64,
    term: u64,
    commit: u64,
    seq: u64,
}

/// Compact rows and answers, per peer: see the module docs.
#[derive(Default)]
pub(crate) struct Compaction {
    peers: Vec<PeerRows>,
}

#[derive(Default)]
struct PeerRows {
    peer: u64,
    /// The peer's session, as its batches and answers name it: a new one
    /// (a restart) forgets everything below.
    session: u64,
    /// As a sender: the number of the last batch sent to the peer, the
    /// peer's latest acknowledgement (highest batch received and the bits
    /// of the 64 up to it), and the full rows sent, ascending by group.
    sent: u64,
    acked: u64,
    acked_bits: u64,
    bases: Vec<Base>,
    scratch: Vec<Base>,
    /// How many rows the last [`compact`](PeerRows::compact) made compact.
    compacted: usize,
    /// As a receiver: the highest batch number received from the peer and
    /// the bits of the 64 up to it, and whether the next answer owes them.
    received: u64,
    received_bits: u64,
    owe_ack: bool,
}

impl PeerRows {
    fn forget(&mut self) {
        self.acked = 0;
        self.acked_bits = 0;
        self.bases.clear();
        self.received = 0;
        self.received_bits = 0;
        self.owe_ack = false;
    }

    /// Did the peer receive (and step) our batch `seq`?
    fn was_received(&self, seq: u64) -> bool {
        seq != 0
            && seq <= self.acked
            && self.acked - seq < BASE_WINDOW
            && self.acked_bits & (1 << (self.acked - seq)) != 0
    }

    /// Number the batch about to leave with `rows` (ascending by group)
    /// and make compact every row whose full row the peer received with
    /// the same values; the rows in `full` (ascending) stay full. Returns
    /// the batch number.
    fn compact(&mut self, rows: &mut [Row<GroupHeartbeat>], full: &[u64]) -> u64 {
        self.sent += 1;
        let seq = self.sent;
        // Two vectors take turns: the bases are read from one and written
        // to the other, and neither is allocated again in steady state.
        let bases = std::mem::take(&mut self.bases);
        let mut old = bases.iter().copied().peekable();
        let mut new = std::mem::take(&mut self.scratch);
        new.clear();
        new.reserve(rows.len());
        let fresh = |b: &Base| b.seq + BASE_WINDOW > seq;
        let kept_full = |group: u64| !full.is_empty() && full.binary_search(&group).is_ok();
        let mut compacted = 0;
        for (row, replica) in rows.iter_mut() {
            let incarnation = replica.incarnation;
            // Bases of groups without a row here stay while fresh.
            while let Some(b) = old.next_if(|b| b.group < row.group_id) {
                if fresh(&b) {
                    new.push(b);
                }
            }
            let prev = old.next_if(|b| b.group == row.group_id);
            let same = prev.is_some_and(|b| {
                b.incarnation == incarnation
                    && b.term == row.term
                    && b.commit == row.commit
                    && fresh(&b)
                    && self.was_received(b.seq)
                    && !kept_full(row.group_id)
            });
            match prev {
                Some(b) if same => {
                    row.term = 0;
                    row.commit = 0;
                    compacted += 1;
                    new.push(b);
                }
                _ => new.push(Base {
                    group: row.group_id,
                    incarnation,
                    term: row.term,
                    commit: row.commit,
                    seq,
                }),
            }
        }
        new.extend(old.filter(|b| fresh(b)));
        self.bases = new;
        self.scratch = bases;
        self.compacted = compacted;
        seq
    }

    /// The peer received our batches up to `ack` (`bits`, see
    /// [`HeartbeatBatchResponse::ack_bits`]).
    fn acknowledged(&mut self, ack: u64, bits: u64) {
        if ack > self.sent {
            // Not a batch of this life of ours (a late answer from before
            // a restart): ignore.
            return;
        }
        if ack > self.acked {
            self.acked = ack;
            self.acked_bits = bits;
        } else if ack == self.acked {
            self.acked_bits |= bits;
        }
    }

    /// The peer could not use our compact rows of `groups` (ascending):
    /// their next rows go full.
    fn need_full(&mut self, groups: &[u64]) {
        self.bases
            .retain(|b| groups.binary_search(&b.group).is_err());
    }

    /// We received and stepped the peer's batch `seq`.
    fn received(&mut self, seq: u64) {
        if seq == 0 {
            return;
        }
        if seq > self.received {
            let shift = seq - self.received;
            self.received_bits = if shift >= 64 {
                0
            } else {
                self.received_bits << shift
            };
            self.received = seq;
        }
        let back = self.received - seq;
        if back < BASE_WINDOW {
            self.received_bits |= 1 << back;
        }
        self.owe_ack = true;
    }
}

impl Compaction {
    fn peer(&mut self, peer: u64) -> &mut PeerRows {
        let i = match self.peers.iter().position(|p| p.peer == peer) {
            Some(i) => i,
            None => {
                self.peers.push(PeerRows {
                    peer,
                    ..Default::default()
                });
                self.peers.len() - 1
            }
        };
        &mut self.peers[i]
    }

    /// A frame from `peer` named its `session`: if it is a new one, the
    /// peer restarted and knows nothing of our rows, nor we of its batches.
    fn session(&mut self, peer: u64, session: u64) -> &mut PeerRows {
        let p = self.peer(peer);
        if session != 0 && p.session != session {
            if p.session != 0 {
                p.forget();
            }
            p.session = session;
        }
        p
    }

    /// The peer dropped a batch of ours whole (incarnation mismatch): it
    /// did not step those rows, so none of ours stands as received.
    fn mismatch(&mut self, peer: u64) {
        let p = self.peer(peer);
        p.acked = 0;
        p.acked_bits = 0;
        p.bases.clear();
    }
}

/// Where the groups of the last batch, and of the last answer batch, from
/// each peer sit in the registry, and the digest of their incarnations. A
/// peer sends rows for the same groups interval after interval: while no
/// group here was added, removed or moved (`Groups::layout`), a batch with
/// the same group ids finds its slots and its digest here, without a
/// lookup per row.
#[derive(Default)]
pub(crate) struct RowSlots {
    seen: Vec<SeenRows>,
    /// The slots of the batch being stepped (kept for its allocation).
    scratch: Vec<usize>,
}

#[derive(Default)]
struct SeenRows {
    peer: u64,
    answers: bool,
    /// The registry's layout these were found at (None: nothing to reuse).
    layout: Option<u64>,
    ids: Vec<u64>,
    slots: Vec<usize>,
    /// The wrapping sum of the groups' row hashes.
    sum: u64,
}

impl RowSlots {
    fn of(&mut self, peer: u64, answers: bool) -> &mut SeenRows {
        let i = match self
            .seen
            .iter()
            .position(|s| s.peer == peer && s.answers == answers)
        {
            Some(i) => i,
            None => {
                self.seen.push(SeenRows {
                    peer,
                    answers,
                    ..SeenRows::default()
                });
                self.seen.len() - 1
            }
        };
        &mut self.seen[i]
    }
}

/// After a peer reports an incarnation mismatch, this many heartbeat batches
/// to it name each row's incarnation before the node goes back to a digest.
const PER_ROW_BATCHES: u32 = 8;

/// How this node proves the incarnations of its batches' rows to each peer,
/// and what it owes each peer in return.
#[derive(Default)]
pub(crate) struct IncarnationProofs {
    /// Peers whose heartbeat batches name each row's incarnation, and for
    /// how many more batches.
    per_row: BTreeMap<u64, u32>,
    /// Peers whose last batch named incarnations not hosted here: the next
    /// response to each says so.
    report_mismatch: BTreeSet<u64>,
}

impl IncarnationProofs {
    /// Is there a report owed to a peer (so a response must go out)?
    pub fn owes_report(&self) -> bool {
        !self.report_mismatch.is_empty()
    }
}

/// What every batch of a node says about the node itself.
#[derive(Clone, Copy)]
pub(crate) struct Sender {
    pub id: u64,
    pub session: u64,
    pub leader_excess: Option<i64>,
}

/// Turn the rows gathered during one pass into one batch (and one answer
/// batch) per peer, each with the proof of its rows' incarnations.
pub(crate) fn flush(
    mux: HeartbeatMux,
    proofs: &mut IncarnationProofs,
    compaction: &mut Compaction,
    sender: Sender,
    stats: &mut Stats,
    out: &mut Vec<Envelope>,
) {
    let Sender {
        id: from,
        session,
        leader_excess,
    } = sender;
    let mut mux = mux;
    for &peer in &proofs.report_mismatch {
        mux.ensure_answer_to(peer);
    }
    let (
        (beats, answers),
        (quiesce, quiesced),
        (beat_rounds, answer_rounds),
        (row_terms, need_full, rejoined),
    ) = mux.finish_with_flags();
    // The rounds of the rows in the peer's batch (a row dropped since, by
    // `purge`, takes its round with it); the wire keeps one per group.
    let rounds = |lists: &PerPeer<(u64, u64)>, to: u64, has_row: &dyn Fn(u64) -> bool| {
        lists
            .iter()
            .find(|(p, _)| *p == to)
            .map(|(_, r)| r.iter().copied().filter(|&(g, _)| has_row(g)).collect())
            .unwrap_or_default()
    };
    // The marked groups that have a row in the peer's batch.
    let flags = |lists: &PerPeer<u64>, to: u64, has_row: &dyn Fn(u64) -> bool| -> Vec<u64> {
        lists
            .iter()
            .find(|(p, _)| *p == to)
            .map(|(_, ids)| ids.iter().copied().filter(|&g| has_row(g)).collect())
            .unwrap_or_default()
    };
    for (to, rows) in beats {
        stats.group_heartbeats_batched += rows.len() as u64;
        let incarnations = match proofs.per_row.get_mut(&to) {
            Some(left) => {
                *left -= 1;
                if *left == 0 {
                    proofs.per_row.remove(&to);
                }
                stats.batches_with_incarnations += 1;
                Incarnations::PerRow(rows.iter().map(|(_, r)| r.incarnation).collect())
            }
            None => Incarnations::Digest(digest(&rows)),
        };
        let mut rows = rows;
        let quiesce = flags(&quiesce, to, &|g| {
            rows.binary_search_by_key(&g, |(h, _)| h.group_id).is_ok()
        });
        // Rows with the quiesce notice stay full: the follower checks the
        // commit it carries.
        let seq = if rows.is_empty() {
            0
        } else {
            let p = compaction.peer(to);
            let seq = p.compact(&mut rows, &quiesce);
            stats.compact_rows_sent += p.compacted as u64;
            seq
        };
        let rows: Vec<GroupHeartbeat> = rows.into_iter().map(|(h, _)| h).collect();
        stats.quiesce_notices_sent += quiesce.len() as u64;
        let rounds: Vec<(u64, u64)> = rounds(&beat_rounds, to, &|g| {
            rows.binary_search_by_key(&g, |h| h.group_id).is_ok()
        });
        stats.read_rounds_sent += rounds.len() as u64;
        let body = Body::HeartbeatBatch(HeartbeatBatch {
            rows,
            incarnations,
            quiesce,
            session,
            rounds,
            seq,
            leader_excess,
        });
        out.push(Envelope { from, to, body });
    }
    for (to, mut rows) in answers {
        let p = compaction.peer(to);
        let (ack_seq, ack_bits) = if std::mem::take(&mut p.owe_ack) {
            (p.received, p.received_bits)
        } else {
            (0, 0)
        };
        if ack_seq == 0 {
            // Answers stepped at rest from a numbered batch left their term
            // out (`step_beat_at_rest`), counting on this acknowledgement;
            // it was withdrawn since (the peer restarted: a new session),
            // and they answer its previous life. They go nowhere, as if
            // lost.
            rows.retain(|(h, _)| h.term != 0);
        }
        stats.group_heartbeat_responses_batched += rows.len() as u64;
        let incarnation_digest = digest(&rows);
        let mut rows: Vec<GroupHeartbeatResponse> = rows.into_iter().map(|(h, _)| h).collect();
        if ack_seq != 0 {
            // An answer at the term of the row it answers leaves it out.
            let answered = row_terms
                .iter()
                .find(|(p, _)| *p == to)
                .map_or(&[][..], |(_, t)| t.as_slice());
            // Both ascending by group, one entry per group: one walk.
            let mut answered = answered.iter().peekable();
            for r in rows.iter_mut() {
                while answered.next_if(|&&(g, _)| g < r.group_id).is_some() {}
                if answered.peek() == Some(&&(r.group_id, r.term)) {
                    r.term = 0;
                }
            }
        }
        let need_full = need_full
            .iter()
            .find(|(p, _)| *p == to)
            .map_or_else(Vec::new, |(_, g)| g.clone());
        let quiesced = flags(&quiesced, to, &|g| {
            rows.binary_search_by_key(&g, |h| h.group_id).is_ok()
        });
        let rounds = rounds(&answer_rounds, to, &|g| {
            rows.binary_search_by_key(&g, |h| h.group_id).is_ok()
        });
        let rejoined = flags(&rejoined, to, &|g| {
            rows.binary_search_by_key(&g, |h| h.group_id).is_ok()
        });
        let body = Body::HeartbeatBatchResponse(HeartbeatBatchResponse {
            incarnation_digest,
            incarnation_mismatch: proofs.report_mismatch.remove(&to),
            rows,
            quiesced,
            session,
            rounds,
            ack_seq,
            ack_bits,
            need_full,
            rejoined,
        });
        out.push(Envelope { from, to, body });
    }
}

/// The incarnation digest of `rows` (`message::incarnation_digest`), from
/// the hashes their replicas computed once.
fn digest<T>(rows: &[Row<T>]) -> u64 {
    rows.iter().fold(0u64, |d, (_, r)| d.wrapping_add(r.hash))
}

/// The read round a batch's row of `group_id` carries (0: none); `rounds`
/// is ascending by group.
fn round_of(rounds: &[(u64, u64)], group_id: u64) -> u64 {
    if rounds.is_empty() {
        return 0;
    }
    rounds
        .binary_search_by_key(&group_id, |&(g, _)| g)
        .map_or(0, |i| rounds[i].1)
}

/// The demux, as part of the node: it needs the node's groups.
impl Node {
    /// The fast path for an answer row from `from` that does not say
    /// "quiet" and echoes no read round, whose incarnation the response's
    /// digest proved (`ack_seq`: the response's, which makes a term of 0
    /// the leader's own): a leader at rest only marks the follower active
    /// (`Raft::step_heartbeat_response_at_rest`). Returns false, having
    /// changed nothing, when it needs the general path.
    #[inline]
    fn step_answer_at_rest(
        &mut self,
        from: u64,
        h: &GroupHeartbeatResponse,
        slot: usize,
        ack_seq: u64,
    ) -> bool {
        let Some(g) = self.groups.at_mut(slot, h.group_id) else {
            return false;
        };
        // `before_answer` wakes a quiet leader on an answer that does not
        // say "quiet", and does nothing otherwise.
        if matches!(g.quiet, Quiet::Leader) {
            return false;
        }
        let term = match h.term {
            0 if ack_seq != 0 => g.raft.term(),
            t => t,
        };
        // Only activity changed: no work for a pass that it did not have
        // (and a group with work is listed already: `Node::unlisted_work`).
        g.raft.step_heartbeat_response_at_rest(from, term)
    }

    /// Do the groups hosted here have exactly the incarnations `digest`
    /// stands for (one row per group id in `group_ids`, from `from`'s
    /// batch, or its answers if `answers`)? Leaves each row's slot in
    /// `slots`, for the visit that steps it. The same groups as in the
    /// previous such batch, with no group here moved since, take no lookup
    /// ([`RowSlots`]).
    fn digest_matches(
        &mut self,
        from: u64,
        answers: bool,
        group_ids: impl Iterator<Item = u64> + Clone,
        digest: u64,
        slots: &mut Vec<usize>,
    ) -> bool {
        let layout = self.groups.layout();
        let seen = self.row_slots.of(from, answers);
        if seen.layout == Some(layout) && seen.ids.iter().copied().eq(group_ids.clone()) {
            slots.clone_from(&seen.slots);
            return seen.sum == digest;
        }
        seen.layout = None;
        seen.ids.clear();
        slots.clear();
        let mut sum = 0u64;
        for group_id in group_ids {
            match self.groups.get_with_slot(group_id) {
                Some((slot, g)) => {
                    slots.push(slot);
                    seen.ids.push(group_id);
                    sum = sum.wrapping_add(g.row_hash)
                }
                None => return false,
            }
        }
        seen.slots.clone_from(slots);
        seen.sum = sum;
        seen.layout = Some(layout);
        sum == digest
    }

    /// Demux a heartbeat batch from node `from`: each row is stepped into
    /// its group, if the group hosted here is the incarnation the row
    /// belongs to.
    pub(super) fn step_heartbeat_batch(&mut self, from: u64, batch: HeartbeatBatch) {
        // Every batch is answered, rows or not: the answer is the peer's
        // liveness signal from this node as much as the batch is ours.
        self.outbox.mux.ensure_answer_to(from);
        self.compaction.session(from, batch.session);
        self.balancer.peer_reported(from, batch.leader_excess);
        // Only a numbered batch has compact rows (term 0), and those carry
        // no notice (the sender keeps notice rows full).
        let compact = batch.seq != 0;
        let notice = |h: &GroupHeartbeat| {
            !(compact && h.term == 0) && batch.quiesce.binary_search(&h.group_id).is_ok()
        };
        let rounds = &batch.rounds;
        let round = |g: u64| round_of(rounds, g);
        let mismatch = match batch.incarnations {
            Incarnations::Digest(digest) => {
                let mut slots = std::mem::take(&mut self.row_slots.scratch);
                let ids = batch.rows.iter().map(|h| h.group_id);
                let matched = self.digest_matches(from, false, ids, digest, &mut slots);
                if matched {
                    self.outbox.mux.expect_answers(from, batch.rows.len());
                    // Most batches carry no notice and no read round: no
                    // lookup per row for them.
                    let plain = batch.quiesce.is_empty() && rounds.is_empty();
                    for (h, &slot) in batch.rows.iter().zip(&slots) {
                        let (notice, round) = if plain {
                            (false, 0)
                        } else {
                            (notice(h), round(h.group_id))
                        };
                        if !notice && self.step_beat_at_rest(from, h, slot, compact, round) {
                            continue;
                        }
                        self.before_row(from, h.group_id, notice);
                        self.step_beat(from, h, compact, None, round);
                        if notice {
                            self.after_notice(from, h.group_id, h.term, h.commit);
                        }
                    }
                    self.compaction.peer(from).received(batch.seq);
                }
                self.row_slots.scratch = slots;
                if !matched {
                    // Which rows are of another incarnation cannot be told:
                    // drop them all, and ask for incarnations per row.
                    self.stats.batches_dropped_incarnation += 1;
                }
                !matched
            }
            Incarnations::PerRow(incarnations) => {
                let mut mismatch = false;
                for (h, inc) in batch.rows.iter().zip(incarnations) {
                    let same = self
                        .groups
                        .get(h.group_id)
                        .is_some_and(|g| g.incarnation == inc);
                    let notice = notice(h);
                    if same {
                        self.before_row(from, h.group_id, notice);
                    }
                    let stepped = self.step_beat(from, h, compact, Some(inc), round(h.group_id));
                    mismatch |= !stepped.same_incarnation();
                    if same && notice {
                        self.after_notice(from, h.group_id, h.term, h.commit);
                    }
                }
                if !mismatch {
                    self.compaction.peer(from).received(batch.seq);
                }
                mismatch
            }
        };
        if mismatch {
            self.proofs.report_mismatch.insert(from);
        }
    }

    /// The fast path of [`step_beat`](Node::step_beat) for a row without
    /// the quiesce notice, whose incarnation the batch's digest proved: an
    /// awake follower at rest (`Raft::step_heartbeat_at_rest`) only resets
    /// its timer, and its answer goes straight into the peer's answer rows,
    /// as the general path would route it. Returns false, having changed
    /// nothing, when the row needs the general path.
    #[inline]
    fn step_beat_at_rest(
        &mut self,
        from: u64,
        h: &GroupHeartbeat,
        slot: usize,
        compact: bool,
        round: u64,
    ) -> bool {
        if !self.cfg.batch_heartbeats {
            return false;
        }
        let Some(g) = self.groups.at_mut(slot, h.group_id) else {
            return false;
        };
        // An awake group: `before_row` would do nothing.
        if !matches!(g.quiet, Quiet::Awake { .. }) {
            return false;
        }
        let row = (!(compact && h.term == 0)).then_some((h.term, h.commit));
        let Some(term) = g.raft.step_heartbeat_at_rest(from, row) else {
            return false;
        };
        let mux = &mut self.outbox.mux;
        if compact {
            // A numbered batch: the answers to it acknowledge it (see
            // `received` in `step_heartbeat_batch`), and an answer at the
            // term of the row it answers leaves the term out, as `flush`
            // would find for this one (a full row's term is the follower's
            // here, as a compact row's).
            mux.answer(from, h.group_id, g.replica(), 0, round);
        } else {
            mux.answer(from, h.group_id, g.replica(), term, round);
            mux.row_stepped(from, h.group_id, term);
        }
        // Only the election timer changed: no work for a pass that it did
        // not have (and a group with work is listed already:
        // `Node::unlisted_work`).
        true
    }

    /// Step one heartbeat row from `from` into its group: a full row as
    /// it is, a compact one as the group's follower reads it (or, if it
    /// cannot, ask for a full row). Notes the term it was stepped at, for
    /// the answer.
    fn step_beat(
        &mut self,
        from: u64,
        h: &GroupHeartbeat,
        compact: bool,
        incarnation: Option<u64>,
        round: u64,
    ) -> Stepped {
        if !(compact && h.term == 0) {
            let stepped = self.step_row(h.group_id, incarnation, |r| {
                r.step_heartbeat_round(from, h.term, h.commit, round)
            });
            if stepped == Stepped::Ok {
                self.outbox.mux.row_stepped(from, h.group_id, h.term);
            }
            return stepped;
        }
        let mut used = None;
        let stepped = self.step_row(h.group_id, incarnation, |r| {
            used = r.step_heartbeat_compact(from, round)?;
            Ok(())
        });
        if stepped == Stepped::Ok {
            match used {
                Some(term) => self.outbox.mux.row_stepped(from, h.group_id, term),
                None => {
                    self.stats.compact_rows_refused += 1;
                    self.outbox.mux.need_full(from, h.group_id);
                }
            }
        }
        stepped
    }

    /// Demux a heartbeat batch response from node `from`; a digest that
    /// does not match drops it whole (a group was re-created while the
    /// batch was out).
    pub(super) fn step_heartbeat_answers(&mut self, from: u64, answers: HeartbeatBatchResponse) {
        let p = self.compaction.session(from, answers.session);
        if answers.ack_seq != 0 {
            p.acknowledged(answers.ack_seq, answers.ack_bits);
        }
        if !answers.need_full.is_empty() {
            p.need_full(&answers.need_full);
        }
        if answers.incarnation_mismatch {
            self.proofs.per_row.insert(from, PER_ROW_BATCHES);
            self.compaction.mismatch(from);
        }
        let mut slots = std::mem::take(&mut self.row_slots.scratch);
        if !self.digest_matches(
            from,
            true,
            answers.rows.iter().map(|h| h.group_id),
            answers.incarnation_digest,
            &mut slots,
        ) {
            self.row_slots.scratch = slots;
            self.stats.batches_dropped_incarnation += 1;
            return;
        }
        // Most answers say "quiet" for no row, echo no read round and come
        // from no replica that rejoined: no lookup per row for them.
        let plain =
            answers.quiesced.is_empty() && answers.rounds.is_empty() && answers.rejoined.is_empty();
        for (h, &slot) in answers.rows.iter().zip(&slots) {
            let (quiet, round, rejoined) = if plain {
                (false, 0, false)
            } else {
                (
                    answers.quiesced.binary_search(&h.group_id).is_ok(),
                    round_of(&answers.rounds, h.group_id),
                    answers.rejoined.binary_search(&h.group_id).is_ok(),
                )
            };
            if !quiet
                && round == 0
                && !rejoined
                && self.step_answer_at_rest(from, h, slot, answers.ack_seq)
            {
                continue;
            }
            if self.before_answer(from, h.group_id, quiet) {
                if round != 0 {
                    self.stats.read_rounds_answered += 1;
                }
                // Term 0: the term of the row it answers, as far as this
                // leader can tell its own (see `Raft::step_heartbeat_compact`
                // for why that is all an answer needs).
                self.step_row(h.group_id, None, |r| {
                    let term = match h.term {
                        0 if answers.ack_seq != 0 => r.term(),
                        t => t,
                    };
                    r.step_heartbeat_response_marked(from, term, round, rejoined)
                });
            }
        }
        self.row_slots.scratch = slots;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{Message, MessageType};

    #[test]
    fn mux_packs_per_peer_and_keeps_the_last_heartbeat_of_a_group() {
        let mut mux = HeartbeatMux::default();
        let hb = |to, term, commit| {
            let mut m = Message::new(MessageType::Heartbeat, 1, to, term);
            m.commit = commit;
            m
        };
        assert!(mux.offer(7, 70, &hb(2, 3, 10)));
        assert!(mux.offer(7, 70, &hb(3, 3, 9)));
        assert!(mux.offer(9, 90, &hb(2, 1, 1)));
        assert!(mux.offer(7, 70, &hb(2, 4, 11)));
        let append = Message::new(MessageType::Append, 1, 2, 3);
        assert!(!mux.offer(7, 70, &append), "appends are not batched");
        let (beats, answers) = mux.finish();
        assert!(answers.is_empty());
        assert_eq!(beats.len(), 2);
        assert_eq!(
            beats[0],
            (
                2,
                vec![
                    (
                        GroupHeartbeat {
                            group_id: 7,
                            term: 4,
                            commit: 11
                        },
                        Replica::new(7, 70)
                    ),
                    (
                        GroupHeartbeat {
                            group_id: 9,
                            term: 1,
                            commit: 1
                        },
                        Replica::new(9, 90)
                    )
                ]
            )
        );
        assert_eq!(beats[1].1.len(), 1);
    }

    #[test]
    fn purge_forgets_every_row_of_a_removed_group_and_ensure_sends_an_empty_answer() {
        let mut mux = HeartbeatMux::default();
        let mut hb = Message::new(MessageType::Heartbeat, 1, 2, 3);
        hb.commit = 1;
        let answer = Message::new(MessageType::HeartbeatResponse, 1, 3, 3);
        assert!(mux.offer(7, 70, &hb));
        assert!(mux.offer(8, 80, &hb));
        assert!(mux.offer(7, 70, &answer));
        mux.purge(7);
        mux.ensure_answer_to(4);
        let (beats, answers) = mux.finish();
        assert_eq!(beats.len(), 1);
        assert_eq!(beats[0].1.len(), 1);
        assert_eq!(beats[0].1[0].0.group_id, 8);
        assert_eq!(answers, vec![(3, vec![]), (4, vec![])]);
    }
}

#[cfg(test)]
mod compaction_tests {
    use super::*;

    fn row(group_id: u64, term: u64, commit: u64) -> Row<GroupHeartbeat> {
        (
            GroupHeartbeat {
                group_id,
                term,
                commit,
            },
            Replica::new(group_id, 100 + group_id),
        )
    }

    fn compact_groups(rows: &[Row<GroupHeartbeat>]) -> Vec<u64> {
        rows.iter()
            .filter(|(h, _)| h.term == 0)
            .map(|(h, _)| h.group_id)
            .collect()
    }

    /// The follower's side: what its answers acknowledge.
    fn ack_of(receiver: &PeerRows) -> (u64, u64) {
        (receiver.received, receiver.received_bits)
    }

    /// The follower receives batch `seq` and its answer reaches the sender.
    fn deliver(tx: &mut PeerRows, rx: &mut PeerRows, seq: u64) {
        rx.received(seq);
        let (ack, bits) = ack_of(rx);
        tx.acknowledged(ack, bits);
    }

    // Mutation: compacting before the full row's batch is acknowledged (or
    // on any acknowledgement at all) sends rows the follower cannot read.
    #[test]
    fn a_row_goes_compact_only_once_the_batch_of_its_full_row_was_received() {
        let (mut tx, mut rx) = (PeerRows::default(), PeerRows::default());
        let mut rows = vec![row(1, 3, 10), row(2, 3, 20)];
        let s1 = tx.compact(&mut rows, &[]);
        assert!(compact_groups(&rows).is_empty(), "first rows are full");
        // Not yet acknowledged: full again (and that batch is the one whose
        // receipt counts now).
        let mut again = vec![row(1, 3, 10), row(2, 3, 20)];
        let s2 = tx.compact(&mut again, &[]);
        assert!(compact_groups(&again).is_empty());
        deliver(&mut tx, &mut rx, s1);
        let mut third = vec![row(1, 3, 10)];
        tx.compact(&mut third, &[]);
        assert!(
            compact_groups(&third).is_empty(),
            "its last full row was in {s2}"
        );
        deliver(&mut tx, &mut rx, s2);
        // Group 1's last full row was in the third batch, not received yet;
        // group 2's in s2.
        let mut rows = vec![row(1, 3, 10), row(2, 3, 20)];
        tx.compact(&mut rows, &[]);
        assert_eq!(compact_groups(&rows), vec![2]);
        let s5 = tx.sent;
        deliver(&mut tx, &mut rx, s5);
        let mut rows = vec![row(1, 3, 10), row(2, 3, 21)];
        tx.compact(&mut rows, &[]);
        assert_eq!(compact_groups(&rows), vec![1], "group 2's commit moved");
        // A notice row stays full whatever.
        let mut rows = vec![row(1, 3, 10)];
        tx.compact(&mut rows, &[1]);
        assert!(compact_groups(&rows).is_empty());
    }

    // Mutation: taking the highest batch number received as "every batch
    // up to it received" compacts a row whose full row was lost.
    #[test]
    fn a_lost_full_row_is_not_covered_by_a_later_batch_received() {
        let (mut tx, mut rx) = (PeerRows::default(), PeerRows::default());
        let mut a = vec![row(1, 3, 10)];
        let lost = tx.compact(&mut a, &[]);
        // The next batch carries only another group's row and arrives.
        let mut b = vec![row(2, 3, 20)];
        let got = tx.compact(&mut b, &[]);
        assert!(got > lost);
        deliver(&mut tx, &mut rx, got);
        let mut rows = vec![row(1, 3, 10), row(2, 3, 20)];
        tx.compact(&mut rows, &[]);
        assert_eq!(
            compact_groups(&rows),
            vec![2],
            "group 1's full row was in the lost batch"
        );
    }

    // Mutation: a base matched by group id alone lets a re-created group
    // inherit the old incarnation's row.
    #[test]
    fn a_row_of_another_incarnation_or_term_goes_full() {
        let (mut tx, mut rx) = (PeerRows::default(), PeerRows::default());
        let mut rows = vec![row(1, 3, 10), row(2, 3, 20)];
        let s = tx.compact(&mut rows, &[]);
        deliver(&mut tx, &mut rx, s);
        let mut rows = vec![row(1, 4, 10), (row(2, 3, 20).0, Replica::new(2, 999))];
        tx.compact(&mut rows, &[]);
        assert!(compact_groups(&rows).is_empty());
    }

    #[test]
    fn need_full_and_a_restart_of_the_peer_send_full_rows_again() {
        let (mut tx, mut rx) = (PeerRows::default(), PeerRows::default());
        let mut rows = vec![row(1, 3, 10), row(2, 3, 20)];
        let s = tx.compact(&mut rows, &[]);
        deliver(&mut tx, &mut rx, s);
        tx.need_full(&[2]);
        let mut rows = vec![row(1, 3, 10), row(2, 3, 20)];
        tx.compact(&mut rows, &[]);
        assert_eq!(compact_groups(&rows), vec![1]);
        let mut c = Compaction::default();
        c.session(9, 1);
        c.peer(9).acked = 5;
        c.session(9, 2);
        assert_eq!(c.peer(9).acked, 0, "a new session forgets");
    }

    #[test]
    fn acknowledgement_bits_cover_the_64_batches_up_to_the_highest() {
        let mut rx = PeerRows::default();
        for s in [1, 2, 4, 70] {
            rx.received(s);
        }
        assert_eq!(rx.received, 70);
        assert_eq!(rx.received_bits, 1, "1, 2 and 4 are out of the window");
        rx.received(68);
        assert_eq!(rx.received_bits, 0b101);
        let mut tx = PeerRows {
            sent: 70,
            ..Default::default()
        };
        tx.acknowledged(70, 0b101);
        assert!(tx.was_received(70) && tx.was_received(68));
        assert!(!tx.was_received(69) && !tx.was_received(4));
        // An acknowledgement of a batch this life never sent is ignored.
        tx.acknowledged(71, 1);
        assert_eq!(tx.acked, 70);
    }
}
