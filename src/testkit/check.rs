//! The invariants a simulation checks, fed with everything the nodes hand
//! out: what they persist, what they send (decoded), what they apply and
//! report. Each check names the invariant it guards; a violation is an
//! `Err` with a message that says what was seen.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;

use crate::multi::{Body, Envelope, Event, NodeReady, ProposalError, ReadError, Removed};
use crate::raft::{
    Entry, EntryKind, HardState, LogStore, MemStore, MessageType, Predecessor, Role,
};

/// A group replica's identity across the cluster: (group id, incarnation).
pub type GroupKey = (u64, u64);

/// A committed entry as the checker knows it.
#[derive(Clone, Debug)]
struct Committed {
    term: u64,
    data: Bytes,
    /// An upper bound of the term in which it was first committed: the
    /// smallest term a replica was in when its commit index first covered
    /// it. Leaders of later terms must hold it (leader completeness).
    commit_term: u64,
}

/// One life of one replica (a restart starts a new state machine).
#[derive(Default)]
struct Replica {
    applied: u64,
    /// The simulated state machine: a running hash of every entry applied
    /// (index, term and data) and the number of commands among them. A
    /// snapshot carries both ([`SimState`]).
    state: SimState,
    /// Payloads applied in this life since its last restore.
    seen: HashSet<Bytes>,
}

/// The state of the simulated state machine after applying `index`: what a
/// snapshot of it holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimState {
    pub index: u64,
    pub hash: u64,
    pub commands: u64,
}

const SIM_MAGIC: &[u8; 8] = b"MXSIMSNP";

impl SimState {
    fn apply(&mut self, e: &Entry) {
        let mut h = self.hash ^ mix(e.index) ^ mix(e.term).rotate_left(7);
        for chunk in e.data.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            h = mix(h ^ u64::from_le_bytes(b));
        }
        self.hash = mix(h ^ e.data.len() as u64);
        self.index = e.index;
        if e.kind == EntryKind::Normal {
            self.commands += 1;
        }
    }

    /// The snapshot bytes: the state, then `pad` bytes that depend on it (so
    /// that snapshots of any size travel, and a byte changed on the way is
    /// caught by the decoder as well as by the transfer's CRC).
    pub fn encode(&self, pad: usize) -> Bytes {
        let mut b = Vec::with_capacity(32 + pad);
        b.extend_from_slice(SIM_MAGIC);
        b.extend_from_slice(&self.index.to_le_bytes());
        b.extend_from_slice(&self.hash.to_le_bytes());
        b.extend_from_slice(&self.commands.to_le_bytes());
        let mut x = self.hash;
        for _ in 0..pad {
            x = mix(x);
            b.push(x as u8);
        }
        Bytes::from(b)
    }

    pub fn decode(data: &[u8]) -> Result<SimState, String> {
        if data.len() < 32 || &data[..8] != SIM_MAGIC {
            return Err(format!("not a simulated snapshot ({} bytes)", data.len()));
        }
        let u = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
        let st = SimState {
            index: u(8),
            hash: u(16),
            commands: u(24),
        };
        if st.encode(data.len() - 32) != data {
            return Err(format!(
                "simulated snapshot at {} has bad padding",
                st.index
            ));
        }
        Ok(st)
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Clone, Debug)]
struct Proposal {
    payload: Bytes,
    key: GroupKey,
    outcome: Option<Result<u64, ProposalError>>,
}

/// What the checker counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckStats {
    pub proposals: u64,
    /// Proposals refused (`Busy`), checked never to be applied.
    pub refused: u64,
    pub committed: u64,
    pub failed_certain: u64,
    pub unknown: u64,
    pub entries_applied: u64,
    /// Snapshots restored (installed from a leader, or at a restart), each
    /// checked against the state the replicas reached by applying entries.
    pub restores_checked: u64,
    pub leaderships: u64,
    pub votes_checked: u64,
    pub acks_checked: u64,
    /// Acknowledgements whose leader's entry at the index was unknown to
    /// the checker, so only the index was checked.
    pub acks_checked_by_index_only: u64,
    /// Reads taken, served (each checked to be linearizable), and failed.
    pub reads: u64,
    pub reads_served: u64,
    pub reads_failed: u64,
}

/// A read as the checker knows it: its group and the least state it must
/// observe.
#[derive(Clone, Debug)]
struct Read {
    key: GroupKey,
    /// When it was taken: the highest index of a write acknowledged, or
    /// observed by a read served, in its group. A linearizable read
    /// observes at least that.
    floor: u64,
    done: bool,
}

pub type Check = Result<(), String>;

/// The durable state of one node as the checker models it: what the host
/// persisted, per group, updated after every successful write.
#[derive(Clone, Default)]
pub struct Durable {
    pub groups: BTreeMap<u64, (u64, MemStore)>,
    /// The vote floor of each group whose replica took a removed one's
    /// place.
    pub floors: BTreeMap<u64, (u64, u64)>,
    /// The replicas removed, by (group, incarnation), until a replica of
    /// that incarnation is created (the simulation stays far below the
    /// bound on how many are kept).
    pub tombstones: BTreeMap<(u64, u64), Predecessor>,
}

impl Durable {
    /// A replica is created (`runtime::creation_batch`); `succeeds`, the
    /// removed one whose place it took (`Node::succession`).
    pub fn create(&mut self, group: u64, incarnation: u64, succeeds: Option<Predecessor>) {
        let mut store = MemStore::new();
        self.floors.remove(&group);
        if let Some(p) = succeeds {
            store.set_hard_state(HardState {
                term: p.term,
                vote: p.vote,
                commit: 0,
            });
            self.floors.insert(group, p.last);
        }
        self.tombstones.remove(&(group, incarnation));
        self.groups.insert(group, (incarnation, store));
    }

    /// A replica is removed (`runtime::removal_batch`).
    pub fn remove(&mut self, group: u64, removed: &Removed) {
        self.groups.remove(&group);
        self.floors.remove(&group);
        self.tombstones
            .insert((group, removed.incarnation), removed.state);
    }

    /// Record what a ready asks to persist (the host has made it durable).
    pub fn persist(&mut self, rd: &NodeReady) {
        for gr in &rd.groups {
            let (inc, store) = self
                .groups
                .entry(gr.group_id)
                .or_insert_with(|| (gr.incarnation, MemStore::new()));
            if *inc != gr.incarnation {
                continue; // a removed group's ready: not persisted
            }
            if let Some(meta) = &gr.ready.snapshot {
                store.apply_snapshot(meta.clone());
            }
            if !gr.ready.entries.is_empty() {
                store.append(&gr.ready.entries);
            }
            // As `runtime::wal_batch` writes it: with the same term and
            // vote, only the commit index is recorded (raised, never
            // lowered), in the entries record or a Commits record.
            if let Some(hs) = gr.ready.hard_state {
                if gr.ready.term_or_vote_changed {
                    store.set_hard_state(hs);
                } else {
                    let mut durable = store.hard_state();
                    durable.commit = durable.commit.max(hs.commit);
                    store.set_hard_state(durable);
                }
            }
        }
    }

    /// Only the snapshots `rd` installs, as recovery completes them when
    /// their files are durable and the WAL batch after them is not.
    pub fn install(&mut self, rd: &NodeReady) {
        for gr in &rd.groups {
            let Some(meta) = &gr.ready.snapshot else {
                continue;
            };
            let Some((inc, store)) = self.groups.get_mut(&gr.group_id) else {
                continue;
            };
            if *inc != gr.incarnation {
                continue;
            }
            // As `storage::open_storage` completes it: a log that already
            // holds the snapshot's entry keeps its entries.
            if meta.index > store.last_index() || store.term(meta.index) != Ok(meta.term) {
                store.apply_snapshot(meta.clone());
            } else {
                store.set_snapshot(meta.clone());
            }
            let mut hs = store.hard_state();
            hs.commit = hs.commit.max(meta.index);
            store.set_hard_state(hs);
        }
    }

    fn store(&self, group: u64, inc: u64) -> Option<&MemStore> {
        self.groups
            .get(&group)
            .and_then(|(i, s)| (*i == inc).then_some(s))
    }
}

#[derive(Default)]
pub struct Checker {
    /// (group, incarnation, term) -> the one node that led it.
    leaders: HashMap<(u64, u64, u64), u64>,
    /// (group, incarnation, index, term) -> (term of the previous entry, data).
    entry_prev: HashMap<(u64, u64, u64, u64), (u64, Bytes)>,
    committed: HashMap<GroupKey, BTreeMap<u64, Committed>>,
    /// (node, group, incarnation) -> commit index last seen persisted.
    commit_seen: HashMap<(u64, u64, u64), u64>,
    /// (group, incarnation, term) -> the leader's log as its appends showed
    /// it: index -> term.
    leader_logs: HashMap<(u64, u64, u64), BTreeMap<u64, u64>>,
    /// (node, life, group, incarnation) -> its state machine.
    replicas: HashMap<(u64, u64, u64, u64), Replica>,
    /// The state machine's state after each index, as the first replica to
    /// reach it computed it: every other replica must reach the same,
    /// whether by applying entries or by restoring a snapshot.
    states: HashMap<GroupKey, BTreeMap<u64, SimState>>,
    /// (node, life, proposal id) -> the proposal.
    proposals: HashMap<(u64, u64, u64), Proposal>,
    /// Acknowledged payloads: where they committed.
    acked: BTreeMap<Bytes, (GroupKey, u64)>,
    failed_certain: HashSet<Bytes>,
    applied_anywhere: HashSet<Bytes>,
    /// Payloads a node refused (`Busy`): never to be applied.
    refused: HashSet<Bytes>,
    /// (sender, receiver, group, incarnation) -> the term of the last full
    /// heartbeat row sent (what a compact row stands for).
    last_full_row: HashMap<(u64, u64, u64, u64), u64>,
    /// (node, life, read id) -> the read.
    reads: HashMap<(u64, u64, u64), Read>,
    /// Per group incarnation: the highest index a write was acknowledged
    /// at or a served read observed, so far (what a read taken now must
    /// observe).
    read_floor: HashMap<GroupKey, u64>,
    pub stats: CheckStats,
}

impl Checker {
    /// A node refused to propose `payload` (backpressure): nothing of it
    /// may ever be applied.
    pub fn on_refused(&mut self, payload: Bytes) {
        self.stats.refused += 1;
        self.refused.insert(payload);
    }

    pub fn on_propose(&mut self, node: u64, life: u64, id: u64, key: GroupKey, payload: Bytes) {
        self.stats.proposals += 1;
        self.proposals.insert(
            (node, life, id),
            Proposal {
                payload,
                key,
                outcome: None,
            },
        );
    }

    /// `node` took read `id` of a group: it must observe every write
    /// acknowledged, and everything any read served has observed, before
    /// now.
    pub fn on_read(&mut self, node: u64, life: u64, id: u64, key: GroupKey) {
        self.stats.reads += 1;
        let floor = self.read_floor.get(&key).copied().unwrap_or(0);
        self.reads.insert(
            (node, life, id),
            Read {
                key,
                floor,
                done: false,
            },
        );
    }

    /// Reads taken by `node` in `life` that have no outcome yet.
    pub fn reads_pending(&self, node: u64, life: u64) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .reads
            .iter()
            .filter(|((n, l, _), r)| *n == node && *l == life && !r.done)
            .map(|((_, _, id), _)| *id)
            .collect();
        v.sort_unstable();
        v
    }

    /// A read's outcome, reported after everything the same ready applied:
    /// served only once the replica applied its index, and linearizable
    /// (the state it is served from, the replica's applied index now,
    /// covers its floor).
    fn on_read_done(
        &mut self,
        node: u64,
        life: u64,
        id: u64,
        result: Result<u64, ReadError>,
    ) -> Check {
        let Some(read) = self.reads.get_mut(&(node, life, id)) else {
            return Err(format!(
                "node {node} reported read {id}, which it never took"
            ));
        };
        if read.done {
            return Err(format!("node {node} reported read {id} twice"));
        }
        read.done = true;
        let (key, floor) = (read.key, read.floor);
        let index = match result {
            Ok(index) => index,
            Err(_) => {
                self.stats.reads_failed += 1;
                return Ok(());
            }
        };
        self.stats.reads_served += 1;
        let applied = self.applied_index(node, life, key);
        if applied < index {
            return Err(format!(
                "node {node} served read {id} of group {}/{} at index {index} having applied only {applied}",
                key.0, key.1
            ));
        }
        if applied < floor {
            return Err(format!(
                "linearizability violated: node {node} served read {id} of group {}/{} from state at {applied} (read index {index}); a write acknowledged or a read served before it started had index {floor}",
                key.0, key.1
            ));
        }
        let f = self.read_floor.entry(key).or_default();
        *f = (*f).max(applied);
        Ok(())
    }

    /// A node persisted `rd` and its durable state is now `durable`: log
    /// matching on the entries, and the commit bounds of newly committed
    /// indexes.
    pub fn on_persisted(&mut self, node: u64, rd: &NodeReady, durable: &Durable) -> Check {
        for gr in &rd.groups {
            let (g, inc) = (gr.group_id, gr.incarnation);
            let Some(store) = durable.store(g, inc) else {
                continue;
            };
            if let Some(meta) = &gr.ready.snapshot {
                // Installed from a leader: committed, and what it covers
                // was checked when the leader's replicas committed it.
                let prev = self.commit_seen.entry((node, g, inc)).or_insert(0);
                *prev = (*prev).max(meta.index);
            }
            if let Some(first) = gr.ready.entries.first() {
                let mut prev_term = store.term(first.index - 1).unwrap_or(0);
                for e in &gr.ready.entries {
                    let key = (g, inc, e.index, e.term);
                    let val = (prev_term, e.data.clone());
                    match self.entry_prev.get(&key) {
                        Some(seen) if *seen != val => {
                            return Err(format!(
                                "log matching violated: group {g}/{inc} entry ({}, term {}) on node {node} follows term {prev_term} with {:?}; elsewhere it follows term {} with {:?}",
                                e.index, e.term, e.data, seen.0, seen.1
                            ));
                        }
                        Some(_) => {}
                        None => {
                            self.entry_prev.insert(key, val);
                        }
                    }
                    prev_term = e.term;
                }
            }
            if let Some(hs) = gr.ready.hard_state {
                self.commit_durable(node, (g, inc), store, hs.commit, hs.term)?;
            }
        }
        Ok(())
    }

    /// Node `node` holds group `key`'s log durably in `store` and knows it
    /// committed up to `commit` (in a term `term`): note what that commits.
    fn commit_durable(
        &mut self,
        node: u64,
        key: GroupKey,
        store: &MemStore,
        commit: u64,
        term: u64,
    ) -> Check {
        let (g, inc) = key;
        let prev = self.commit_seen.entry((node, g, inc)).or_insert(0);
        if commit <= *prev {
            return Ok(());
        }
        let from = *prev + 1;
        *prev = commit;
        for idx in from.max(store.first_index())..=commit {
            let Ok(entry_term) = store.term(idx) else {
                return Err(format!(
                    "node {node} group {g}/{inc} committed index {idx} it does not hold durably (commit {commit})"
                ));
            };
            let data = store
                .entries(idx, idx + 1, u64::MAX)
                .ok()
                .and_then(|v| v.into_iter().next())
                .map(|e| e.data)
                .unwrap_or_default();
            self.note_committed(node, key, idx, entry_term, data, term)?;
        }
        Ok(())
    }

    fn note_committed(
        &mut self,
        node: u64,
        key: GroupKey,
        index: u64,
        term: u64,
        data: Bytes,
        commit_term: u64,
    ) -> Check {
        let slot = self.committed.entry(key).or_default();
        match slot.get_mut(&index) {
            Some(c) if (c.term, &c.data) != (term, &data) => Err(format!(
                "state machine safety violated: group {}/{} index {index} committed as (term {term}, {data:?}) on node {node}, as (term {}, {:?}) elsewhere",
                key.0, key.1, c.term, c.data
            )),
            Some(c) => {
                c.commit_term = c.commit_term.min(commit_term);
                Ok(())
            }
            None => {
                slot.insert(
                    index,
                    Committed {
                        term,
                        data,
                        commit_term,
                    },
                );
                Ok(())
            }
        }
    }

    /// The frames of a ready, about to leave `node` whose durable state is
    /// `durable`: nothing may promise what is not durable, and the leaders
    /// they reveal must be unique per term. `incarnation_of` gives the
    /// sender's incarnation of a group (heartbeat rows do not carry it).
    pub fn on_send(
        &mut self,
        node: u64,
        messages: &[Envelope],
        durable: &Durable,
        incarnation_of: impl Fn(u64) -> Option<u64>,
    ) -> Check {
        for m in messages {
            match &m.body {
                Body::Group {
                    group_id,
                    incarnation,
                    msg,
                } => {
                    let (group_id, incarnation) = (*group_id, *incarnation);
                    let key = (group_id, incarnation);
                    match msg.msg_type {
                        MessageType::Append | MessageType::Heartbeat => {
                            self.leadership(node, key, msg.term, "sent an append")?;
                            if msg.msg_type == MessageType::Append {
                                let log = self
                                    .leader_logs
                                    .entry((group_id, incarnation, msg.term))
                                    .or_default();
                                if msg.index > 0 {
                                    log.insert(msg.index, msg.log_term);
                                }
                                for e in &msg.entries {
                                    log.insert(e.index, e.term);
                                }
                            }
                        }
                        MessageType::VoteResponse if !msg.reject => {
                            self.stats.votes_checked += 1;
                            let hs = durable.store(group_id, incarnation).map(|s| s.hard_state());
                            let backed = hs.is_some_and(|hs| {
                                hs.term > msg.term || (hs.term == msg.term && hs.vote == msg.to)
                            });
                            if !backed {
                                return Err(format!(
                                    "durability violated: node {node} granted group {group_id}/{incarnation} vote to {} at term {} with durable hard state {hs:?}",
                                    msg.to, msg.term
                                ));
                            }
                        }
                        MessageType::AppendResponse if !msg.reject => {
                            self.stats.acks_checked += 1;
                            let store = durable.store(group_id, incarnation);
                            let last = store.map_or(0, |s| s.last_index());
                            if last < msg.index {
                                return Err(format!(
                                    "durability violated: node {node} acknowledged group {group_id}/{incarnation} index {} at term {} with {last} durable",
                                    msg.index, msg.term
                                ));
                            }
                            let expected = self
                                .leader_logs
                                .get(&(group_id, incarnation, msg.term))
                                .and_then(|l| l.get(&msg.index).copied())
                                .or_else(|| {
                                    self.committed
                                        .get(&key)
                                        .and_then(|c| c.get(&msg.index))
                                        .map(|c| c.term)
                                });
                            // Compacted away: applied, hence committed, and
                            // the same everywhere (state machine safety).
                            let compacted = store.is_some_and(|s| msg.index < s.first_index());
                            match expected {
                                None => self.stats.acks_checked_by_index_only += 1,
                                Some(_) if msg.index == 0 || compacted => {}
                                Some(t) => {
                                    let have = store.and_then(|s| s.term(msg.index).ok());
                                    if have != Some(t) {
                                        return Err(format!(
                                            "durability violated: node {node} acknowledged group {group_id}/{incarnation} index {} to the leader of term {} (whose entry there has term {t}) but holds term {have:?} there durably",
                                            msg.index, msg.term
                                        ));
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                }
                Body::HeartbeatBatch(batch) => {
                    for row in &batch.rows {
                        let Some(inc) = incarnation_of(row.group_id) else {
                            return Err(format!(
                                "node {node} sent a heartbeat row for group {}, which it does not host",
                                row.group_id
                            ));
                        };
                        // A compact row (term 0 in a numbered batch) stands
                        // for the term of the group's last full row to that
                        // node: the sender still leads that term.
                        let full = (node, m.to, row.group_id, inc);
                        let term = if batch.seq != 0 && row.term == 0 {
                            match self.last_full_row.get(&full) {
                                Some(&t) => t,
                                None => {
                                    return Err(format!(
                                        "node {node} sent node {} a compact row of group {} before any full row",
                                        m.to, row.group_id
                                    ))
                                }
                            }
                        } else {
                            self.last_full_row.insert(full, row.term);
                            row.term
                        };
                        self.leadership(node, (row.group_id, inc), term, "sent a heartbeat")?;
                    }
                }
                Body::HeartbeatBatchResponse(_) | Body::SnapshotAck(_) => {}
                Body::Groups(_) => {
                    return Err(format!(
                        "node {node} handed out packed group messages: packing is the codec's job"
                    ));
                }
                Body::SnapshotChunk(c) => {
                    // A leader sends snapshot chunks of its term.
                    self.leadership(node, (c.group_id, c.incarnation), c.term, "sent a snapshot")?;
                }
            }
        }
        Ok(())
    }

    /// Election safety: at most one leader per group incarnation and term.
    fn leadership(&mut self, node: u64, key: GroupKey, term: u64, how: &str) -> Check {
        match self.leaders.insert((key.0, key.1, term), node) {
            Some(other) if other != node => Err(format!(
                "election safety violated: group {}/{} term {term} has leaders {other} and {node} ({node} {how})",
                key.0, key.1
            )),
            Some(_) => Ok(()),
            None => {
                self.stats.leaderships += 1;
                Ok(())
            }
        }
    }

    /// What node `node` (in its life `life`) applied and reported in `rd`
    /// before its writes were durable: the events of the groups
    /// `rd.early_events` covers, which must tell only of what `durable`
    /// (the node's durable state before `rd`) holds already. `log_term` as
    /// for [`on_ready`](Self::on_ready).
    pub fn on_early_events(
        &mut self,
        node: u64,
        life: u64,
        rd: &NodeReady,
        durable: &Durable,
        log_term: impl Fn(u64, u64) -> Result<Option<u64>, u64>,
    ) -> Check {
        let early = &rd.events[..rd.early_events];
        for gr in rd.groups.iter().filter(|gr| gr.events_early) {
            let (g, inc) = (gr.group_id, gr.incarnation);
            let Some(last) = gr.ready.committed_entries.last() else {
                continue;
            };
            let store = durable.store(g, inc);
            for e in &gr.ready.committed_entries {
                let held = store.is_some_and(|s| {
                    e.index <= s.snapshot().index || s.term(e.index) == Ok(e.term)
                });
                if !held {
                    return Err(format!(
                        "node {node} group {g}/{inc}: entry {} (term {}) told to the host before its write was durable",
                        e.index, e.term
                    ));
                }
            }
            // Its commit index, which this ready writes, is what makes
            // them committed: as far as they go, it is known now.
            if let (Some(hs), Some(store)) = (gr.ready.hard_state, store) {
                self.commit_durable(node, (g, inc), store, hs.commit.min(last.index), hs.term)?;
            }
        }
        let early_groups: HashSet<u64> = rd
            .groups
            .iter()
            .filter(|gr| gr.events_early)
            .map(|gr| gr.group_id)
            .collect();
        for ev in early {
            let g = event_group(ev);
            if !early_groups.contains(&g) {
                return Err(format!(
                    "node {node}: an early event of group {g}, whose events wait for the write: {ev:?}"
                ));
            }
        }
        self.on_events(node, life, rd, true, &log_term)
    }

    /// What node `node` (in its life `life`) applied and reported in `rd`
    /// once its writes were durable (all but what
    /// [`on_early_events`](Self::on_early_events) took).
    /// `log_term` reads the node's current log (for leader completeness):
    /// `Err(first)` for an index its log no longer holds, `first` being the
    /// first index it still holds.
    pub fn on_ready(
        &mut self,
        node: u64,
        life: u64,
        rd: &NodeReady,
        log_term: impl Fn(u64, u64) -> Result<Option<u64>, u64>,
    ) -> Check {
        self.on_events(node, life, rd, false, &log_term)
    }

    /// The events of `rd` (and the groups' applies) that are early, or not.
    fn on_events(
        &mut self,
        node: u64,
        life: u64,
        rd: &NodeReady,
        early: bool,
        log_term: &impl Fn(u64, u64) -> Result<Option<u64>, u64>,
    ) -> Check {
        let events = if early {
            &rd.events[..rd.early_events]
        } else {
            &rd.events[rd.early_events..]
        };
        // A restore comes before anything applied after it (the runtime
        // delivers the events in this order).
        for ev in events {
            if let Event::Restore {
                group_id,
                incarnation,
                index,
                term,
                data,
            } = ev
            {
                self.on_restore(node, life, (*group_id, *incarnation), *index, *term, data)?;
            }
        }
        for gr in rd.groups.iter().filter(|gr| gr.events_early == early) {
            let key = (gr.group_id, gr.incarnation);
            for e in &gr.ready.committed_entries {
                self.on_applied(node, life, key, e)?;
            }
            if let Some((Role::Leader, term, _)) = gr.ready.role_change {
                self.leadership(node, key, term, "became leader")?;
                self.leader_completeness(node, key, term, log_term)?;
            }
        }
        for ev in events {
            match ev {
                Event::ProposalDone {
                    proposal_id,
                    result,
                    ..
                } => self.on_outcome(node, life, *proposal_id, *result)?,
                Event::ReadDone {
                    read_id, result, ..
                } => self.on_read_done(node, life, *read_id, *result)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// The replica's state machine was set to a snapshot at `index`.
    fn on_restore(
        &mut self,
        node: u64,
        life: u64,
        key: GroupKey,
        index: u64,
        term: u64,
        data: &Bytes,
    ) -> Check {
        let st = SimState::decode(data).map_err(|e| {
            format!(
                "node {node} group {}/{} restored garbage: {e}",
                key.0, key.1
            )
        })?;
        if st.index != index {
            return Err(format!(
                "node {node} group {}/{} was told to restore index {index} with a snapshot of index {}",
                key.0, key.1, st.index
            ));
        }
        let rep = self.replicas.entry((node, life, key.0, key.1)).or_default();
        if index <= rep.applied {
            return Err(format!(
                "node {node} group {}/{} restored a snapshot at {index} after applying {} (an index applied twice)",
                key.0, key.1, rep.applied
            ));
        }
        rep.applied = index;
        rep.state = st;
        rep.seen.clear();
        self.stats.restores_checked += 1;
        if let Some(c) = self.committed.get(&key).and_then(|c| c.get(&index)) {
            if c.term != term {
                return Err(format!(
                    "node {node} group {}/{} restored a snapshot at {index} of term {term}; the entry committed there has term {}",
                    key.0, key.1, c.term
                ));
            }
        }
        self.check_state(node, key, st)
    }

    /// Every replica's state at an index is the same, however it got there.
    fn check_state(&mut self, node: u64, key: GroupKey, st: SimState) -> Check {
        let states = self.states.entry(key).or_default();
        match states.get(&st.index) {
            Some(s) if *s != st => Err(format!(
                "state machine safety violated: node {node} group {}/{} reached {st:?}; another replica reached {s:?}",
                key.0, key.1
            )),
            Some(_) => Ok(()),
            None => {
                states.insert(st.index, st);
                Ok(())
            }
        }
    }

    /// The host deleted node `node`'s replica of `key` (the group was
    /// deleted, or the replica removed from it): one created there again
    /// (re-added to the group) starts from nothing.
    pub fn on_replica_deleted(&mut self, node: u64, life: u64, key: GroupKey) {
        self.replicas.remove(&(node, life, key.0, key.1));
    }

    fn on_applied(&mut self, node: u64, life: u64, key: GroupKey, e: &Entry) -> Check {
        let rep = self.replicas.entry((node, life, key.0, key.1)).or_default();
        if e.index != rep.applied + 1 {
            return Err(format!(
                "node {node} group {}/{} applied index {} after {} (a gap or a repeat)",
                key.0, key.1, e.index, rep.applied
            ));
        }
        rep.applied = e.index;
        rep.state.apply(e);
        let st = rep.state;
        if e.kind == EntryKind::Normal {
            self.stats.entries_applied += 1;
            if !rep.seen.insert(e.data.clone()) {
                return Err(format!(
                    "node {node} group {}/{} applied {:?} twice",
                    key.0, key.1, e.data
                ));
            }
            if self.refused.contains(&e.data) {
                return Err(format!(
                    "node {node} applied {:?}, which a leader refused as busy",
                    e.data
                ));
            }
            if self.failed_certain.contains(&e.data) {
                return Err(format!(
                    "node {node} applied {:?}, which was reported failed for certain",
                    e.data
                ));
            }
            self.applied_anywhere.insert(e.data.clone());
        }
        match self.committed.get(&key).and_then(|c| c.get(&e.index)) {
            Some(c) if (c.term, &c.data) != (e.term, &e.data) => {
                return Err(format!(
                    "state machine safety violated: node {node} applied group {}/{} index {} as (term {}, {:?}); it committed as (term {}, {:?})",
                    key.0, key.1, e.index, e.term, e.data, c.term, c.data
                ))
            }
            Some(_) => {}
            None => {
                return Err(format!(
                    "node {node} applied group {}/{} index {} before any replica persisted its commit",
                    key.0, key.1, e.index
                ))
            }
        }
        self.check_state(node, key, st)
    }

    /// Every entry committed in a term before `term` is in the new leader's
    /// log (Raft's leader completeness). Entries committed later need not be:
    /// a delayed vote can elect a leader of an older term after them.
    fn leader_completeness(
        &self,
        node: u64,
        key: GroupKey,
        term: u64,
        log_term: &impl Fn(u64, u64) -> Result<Option<u64>, u64>,
    ) -> Check {
        let Some(entries) = self.committed.get(&key) else {
            return Ok(());
        };
        for (&index, c) in entries {
            if c.commit_term >= term {
                continue;
            }
            match log_term(key.0, index) {
                Ok(Some(t)) if t == c.term => {}
                // Compacted away: the leader's snapshot covers it (only
                // applied, hence committed, entries are ever compacted).
                Err(_) => {}
                have => {
                    return Err(format!(
                        "leader completeness violated: node {node} leads group {}/{} in term {term} without entry ({index}, term {}) committed by term {} (it holds {have:?})",
                        key.0, key.1, c.term, c.commit_term
                    ))
                }
            }
        }
        Ok(())
    }

    fn on_outcome(
        &mut self,
        node: u64,
        life: u64,
        id: u64,
        result: Result<u64, ProposalError>,
    ) -> Check {
        let Some(p) = self.proposals.get_mut(&(node, life, id)) else {
            return Err(format!(
                "node {node} reported an outcome for proposal {id}, which it never accepted"
            ));
        };
        if let Some(first) = p.outcome {
            return Err(format!(
                "node {node} reported proposal {id} ({:?}) twice: {first:?}, then {result:?}",
                p.payload
            ));
        }
        p.outcome = Some(result);
        let (payload, key) = (p.payload.clone(), p.key);
        match result {
            Ok(index) => {
                self.stats.committed += 1;
                let at = self.committed.get(&key).and_then(|c| c.get(&index));
                if at.map(|c| &c.data) != Some(&payload) {
                    return Err(format!(
                        "proposal {payload:?} acknowledged at {}/{}#{index}, which holds {at:?}",
                        key.0, key.1
                    ));
                }
                self.acked.insert(payload, (key, index));
                let f = self.read_floor.entry(key).or_default();
                *f = (*f).max(index);
            }
            Err(e) if e.is_certain() => {
                self.stats.failed_certain += 1;
                if self.applied_anywhere.contains(&payload) {
                    return Err(format!(
                        "proposal {payload:?} reported failed for certain ({e:?}) but it was applied"
                    ));
                }
                self.failed_certain.insert(payload);
            }
            Err(_) => self.stats.unknown += 1,
        }
        Ok(())
    }

    /// Proposals accepted by `node` in `life` that have no outcome yet.
    pub fn undecided(&self, node: u64, life: u64) -> Vec<(u64, Bytes)> {
        let mut v: Vec<(u64, Bytes)> = self
            .proposals
            .iter()
            .filter(|((n, l, _), p)| *n == node && *l == life && p.outcome.is_none())
            .map(|((_, _, id), p)| (*id, p.payload.clone()))
            .collect();
        v.sort();
        v
    }

    /// Acknowledged proposals of a group incarnation.
    pub fn acked_of(&self, key: GroupKey) -> Vec<(Bytes, u64)> {
        self.acked
            .iter()
            .filter(|(_, (k, _))| *k == key)
            .map(|(p, (_, i))| (p.clone(), *i))
            .collect()
    }

    /// The state machine of `node` in `life` for a group incarnation (what
    /// a snapshot taken now holds).
    pub fn state(&self, node: u64, life: u64, key: GroupKey) -> Option<SimState> {
        self.replicas
            .get(&(node, life, key.0, key.1))
            .map(|r| r.state)
    }

    /// Node `node` lost its disk: nothing it said before binds it.
    pub fn on_wiped(&mut self, node: u64) {
        self.commit_seen.retain(|&(n, _, _), _| n != node);
    }

    /// The index `node` in `life` applied up to in this group incarnation.
    pub fn applied_index(&self, node: u64, life: u64, key: GroupKey) -> u64 {
        self.replicas
            .get(&(node, life, key.0, key.1))
            .map_or(0, |r| r.applied)
    }
}

impl Checker {
    /// A node restarted with `durable` recovered from its disk: its log must
    /// agree with every entry seen before, and what it holds committed is
    /// committed (a torn write may have carried a commit no ready showed).
    pub fn on_recovered(&mut self, node: u64, durable: &Durable) -> Check {
        let mut groups: Vec<(&u64, &(u64, MemStore))> = durable.groups.iter().collect();
        groups.sort_by_key(|(g, _)| **g);
        for (&g, (inc, store)) in groups {
            let inc = *inc;
            let hs = store.hard_state();
            let (first, last) = (store.first_index(), store.last_index());
            let entries = store.entries(first, last + 1, u64::MAX).unwrap_or_default();
            let mut prev_term = store.term(first - 1).unwrap_or(0);
            for e in &entries {
                let key = (g, inc, e.index, e.term);
                let val = (prev_term, e.data.clone());
                if let Some(seen) = self.entry_prev.get(&key) {
                    if *seen != val {
                        return Err(format!(
                            "log matching violated after recovery: node {node} group {g}/{inc} entry ({}, term {}) follows term {prev_term}; elsewhere term {}",
                            e.index, e.term, seen.0
                        ));
                    }
                } else {
                    self.entry_prev.insert(key, val);
                }
                prev_term = e.term;
            }
            let seen = self.commit_seen.entry((node, g, inc)).or_insert(0);
            let from = (*seen + 1).max(first);
            *seen = (*seen).max(hs.commit);
            for e in entries
                .iter()
                .filter(|e| e.index >= from && e.index <= hs.commit)
            {
                self.note_committed(node, (g, inc), e.index, e.term, e.data.clone(), hs.term)?;
            }
        }
        Ok(())
    }
}

/// The group an event is about.
fn event_group(ev: &Event) -> u64 {
    match ev {
        Event::RoleChanged { group_id, .. }
        | Event::Applied { group_id, .. }
        | Event::Restore { group_id, .. }
        | Event::MembersChanged { group_id, .. }
        | Event::SnapshotNeeded { group_id, .. }
        | Event::ProposalDone { group_id, .. }
        | Event::ReadDone { group_id, .. } => *group_id,
    }
}
