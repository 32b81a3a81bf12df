//! Key metrics: a few numbers per group — role, term, leader, commit,
//! applied, last index, snapshot index, log bytes, membership, quiesced —
//! that any thread reads without the node's lock, as RabbitMQ's Ra keeps
//! `key_metrics` in counters that readers see without messaging the group's
//! process.
//!
//! **Writing.** Each group owns a [`KeyCell`]: a row of atomic words. The
//! node stores into it (relaxed stores, no lock) where the numbers change:
//! once per pass for each group the pass readied (`Node::advance`, after
//! its writes are durable and its entries handed out), when a snapshot
//! compacts its log, when it quiesces or wakes (`registry.rs`), and at its
//! creation. A quiesced group is in no pass and costs nothing; an awake
//! group at rest (heartbeats only) is in no pass either; a busy group pays
//! a dozen stores per pass, beside the pass's own work on it.
//!
//! **Reading.** [`KeyMetricsTable`] finds a group's cell by id: a hash map
//! behind a `parking_lot::RwLock`, taken for writing only when a group is
//! created or removed (one insert or remove, under the node's lock), and
//! for reading by each reader for the dozen loads of one cell. So a reader
//! never waits for a pass, a tick, an fsync or a host callback, only, at
//! worst, for a map insert or remove in progress; the map is shared by the
//! node and its readers (an `Arc`), not reached through the node.
//!
//! **Consistency.** Each field is one atomic word, so each is a value the
//! group had; but the fields of one read may be from adjacent moments (the
//! commit index of one pass beside the applied index of the next, say), as
//! with Ra's counters. And they are the values as of the group's last pass:
//! what a tick or a frame changed since is published by the pass that
//! follows it (an input that changes any of them gives its group work for
//! one). The simulation checks, after every pass that leaves a node with no
//! work, that every cell equals its group's state
//! ([`Node::key_metrics_stale`](super::Node::key_metrics_stale)).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::idmap::IdMap;
use crate::raft::{MemStore, Raft, Role};

/// One group replica's key metrics, as last published by its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyMetrics {
    /// Which creation of the group id the replica belongs to.
    pub incarnation: u64,
    pub role: Role,
    pub term: u64,
    /// The leader the replica knows of (0: none).
    pub leader: u64,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
    /// Index of the latest snapshot (0: none).
    pub snapshot_index: u64,
    /// Payload bytes of the group's log in memory (durable entries and
    /// those not yet durable): `muxraft_group_info.log_bytes_memory`. The
    /// WAL bytes of a group are an estimate kept under the WAL's lock,
    /// which an fsync holds, so they are not here.
    pub log_bytes: u64,
    /// Voters of the group's membership as this replica sees it (in its
    /// log, committed or not), and the index of the configuration entry
    /// that set it (0: the creation's or a snapshot's).
    pub voters: u64,
    pub membership_index: u64,
    /// Out of the tick loop: no ticks, no heartbeat rows.
    pub quiesced: bool,
}

// The words of a cell.
const INCARNATION: usize = 0;
const ROLE: usize = 1;
const TERM: usize = 2;
const LEADER: usize = 3;
const COMMIT: usize = 4;
const APPLIED: usize = 5;
const LAST_INDEX: usize = 6;
const SNAPSHOT_INDEX: usize = 7;
const LOG_BYTES: usize = 8;
const VOTERS: usize = 9;
const MEMBERSHIP_INDEX: usize = 10;
const QUIESCED: usize = 11;
const WORDS: usize = 12;

fn role_word(r: Role) -> u64 {
    match r {
        Role::Follower => 0,
        Role::PreCandidate => 1,
        Role::Candidate => 2,
        Role::Leader => 3,
    }
}

fn role_of(w: u64) -> Role {
    match w {
        1 => Role::PreCandidate,
        2 => Role::Candidate,
        3 => Role::Leader,
        _ => Role::Follower,
    }
}

/// A group's published key metrics: written by the node only, read by
/// anyone.
pub(crate) struct KeyCell([AtomicU64; WORDS]);

impl KeyCell {
    /// A new group's cell, awake, with its state now.
    pub fn new(incarnation: u64, raft: &Raft<MemStore>) -> KeyCell {
        let cell = KeyCell(Default::default());
        cell.0[INCARNATION].store(incarnation, Relaxed);
        cell.publish(raft);
        cell
    }

    /// Store the group's numbers now (all but the incarnation, fixed, and
    /// the quiesced flag, which the registry stores).
    pub fn publish(&self, raft: &Raft<MemStore>) {
        let s = raft.status();
        let w = &self.0;
        w[ROLE].store(role_word(s.role), Relaxed);
        w[TERM].store(s.term, Relaxed);
        w[LEADER].store(s.leader, Relaxed);
        w[COMMIT].store(s.commit, Relaxed);
        w[APPLIED].store(s.applied, Relaxed);
        w[LAST_INDEX].store(s.last_index, Relaxed);
        w[SNAPSHOT_INDEX].store(s.snapshot_index, Relaxed);
        w[LOG_BYTES].store(log_bytes(raft), Relaxed);
        w[VOTERS].store(raft.voters().len() as u64, Relaxed);
        w[MEMBERSHIP_INDEX].store(raft.conf_index(), Relaxed);
    }

    pub fn set_quiesced(&self, quiesced: bool) {
        self.0[QUIESCED].store(u64::from(quiesced), Relaxed);
    }

    pub fn load(&self) -> KeyMetrics {
        let w = |i: usize| self.0[i].load(Relaxed);
        KeyMetrics {
            incarnation: w(INCARNATION),
            role: role_of(w(ROLE)),
            term: w(TERM),
            leader: w(LEADER),
            commit: w(COMMIT),
            applied: w(APPLIED),
            last_index: w(LAST_INDEX),
            snapshot_index: w(SNAPSHOT_INDEX),
            log_bytes: w(LOG_BYTES),
            voters: w(VOTERS),
            membership_index: w(MEMBERSHIP_INDEX),
            quiesced: w(QUIESCED) != 0,
        }
    }
}

/// Payload bytes of a group's log in memory (as `Node::group_memory`).
fn log_bytes(raft: &Raft<MemStore>) -> u64 {
    raft.store().payload_bytes() + raft.unstable_payload_bytes()
}

/// What a cell would hold if published now: to check a cell against
/// (`Node::key_metrics_stale`).
pub(crate) fn key_metrics_now(
    incarnation: u64,
    raft: &Raft<MemStore>,
    quiesced: bool,
) -> KeyMetrics {
    let s = raft.status();
    KeyMetrics {
        incarnation,
        role: s.role,
        term: s.term,
        leader: s.leader,
        commit: s.commit,
        applied: s.applied,
        last_index: s.last_index,
        snapshot_index: s.snapshot_index,
        log_bytes: log_bytes(raft),
        voters: raft.voters().len() as u64,
        membership_index: raft.conf_index(),
        quiesced,
    }
}

/// Every hosted group's cell by id, shared by the node (which adds and
/// removes cells) and its readers (any thread).
#[derive(Default)]
pub struct KeyMetricsTable {
    cells: RwLock<IdMap<Arc<KeyCell>>>,
}

impl KeyMetricsTable {
    /// Group `group_id`'s key metrics as last published, if it is hosted.
    /// Never waits for the node: only, at worst, for a group's creation or
    /// removal to finish its map update.
    pub fn get(&self, group_id: u64) -> Option<KeyMetrics> {
        self.cells.read().get(&group_id).map(|c| c.load())
    }

    /// Groups with a cell (the groups hosted).
    pub fn len(&self) -> usize {
        self.cells.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids with a cell, in no particular order.
    pub fn ids(&self) -> Vec<u64> {
        self.cells.read().keys().copied().collect()
    }

    /// Every group's key metrics, in id order, if there are at most `max`
    /// groups (None otherwise, without copying any).
    pub fn all_up_to(&self, max: usize) -> Option<Vec<(u64, KeyMetrics)>> {
        let mut rows: Vec<(u64, KeyMetrics)> = {
            let cells = self.cells.read();
            if cells.len() > max {
                return None;
            }
            cells.iter().map(|(&id, c)| (id, c.load())).collect()
        };
        rows.sort_unstable_by_key(|r| r.0);
        Some(rows)
    }

    pub(crate) fn insert(&self, group_id: u64, cell: Arc<KeyCell>) {
        self.cells.write().insert(group_id, cell);
    }

    pub(crate) fn remove(&self, group_id: u64) {
        self.cells.write().remove(&group_id);
    }
}
