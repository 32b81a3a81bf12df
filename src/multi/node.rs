//! A node: many groups, one set of peers. Ticks fan out to every group,
//! outgoing messages are routed (and heartbeats batched) per peer, incoming
//! frames are split and stepped into their groups.
//!
//! The node, like each group, is sans-I/O. The host loop is:
//!
//! ```text
//! loop {
//!     node.tick() / node.step(frame) / node.propose(..)   // inputs, any time
//!     let rd = node.ready();
//!     persist rd.groups[*].ready.{hard_state, entries}    // 1. durable first
//!     send rd.frames                                      // 2. then send
//!     deliver rd.events in order                          // 3. apply, report
//!     node.advance(rd);                                   // 4. done
//! }
//! ```
//!
//! Only one `NodeReady` may be outstanding at a time; inputs between `ready`
//! and `advance` are fine.

use bytes::Bytes;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::group::Group;
use super::heartbeat::{heartbeat_message, heartbeat_response_message, HeartbeatMux};
use super::registry::Groups;
use super::stats::{FrameKind, Stats};
use super::{Error, NodeConfig, ProposalError};
use crate::raft::MemStore;
use crate::raft::{self, EntryKind, Message, MessageType, Raft, Role};
use crate::wire::{
    decode_frame, encode_frame, incarnation_digest, incarnation_row_hash, Body, Frame,
    HeartbeatBatch, HeartbeatBatchResponse, Incarnations, WireError,
};

/// After a peer reports an incarnation mismatch, this many heartbeat batches
/// to it name each row's incarnation before the node goes back to a digest.
const PER_ROW_BATCHES: u32 = 8;

/// A frame to send to node `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutFrame {
    pub to: u64,
    pub kind: FrameKind,
    pub bytes: Bytes,
}

/// A group's share of a [`NodeReady`]: what to persist for it. Its messages
/// were already routed into frames.
#[derive(Debug)]
pub struct GroupReady {
    pub group_id: u64,
    /// Which creation of `group_id` this is: a host that removed and
    /// re-created the group since `ready` must not persist this for the new
    /// one.
    pub incarnation: u64,
    generation: u64,
    pub ready: raft::Ready,
}

/// Something to tell the host, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// This node's replica of the group changed role, or learned of a new
    /// leader (`leader` is 0 when none is known).
    RoleChanged {
        group_id: u64,
        incarnation: u64,
        role: Role,
        term: u64,
        leader: u64,
    },
    /// A committed command, delivered once per replica in log order.
    Applied {
        group_id: u64,
        incarnation: u64,
        index: u64,
        data: Bytes,
    },
    /// A proposal made on this node: committed at `Ok(index)`, failed for
    /// certain, or of unknown outcome (see [`ProposalError`]). Exactly one
    /// per accepted proposal.
    ProposalDone {
        group_id: u64,
        proposal_id: u64,
        result: Result<u64, ProposalError>,
    },
}

/// Everything the host must do for one pass; see the module docs for order.
#[derive(Debug, Default)]
pub struct NodeReady {
    pub groups: Vec<GroupReady>,
    pub frames: Vec<OutFrame>,
    pub events: Vec<Event>,
}

impl NodeReady {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.frames.is_empty() && self.events.is_empty()
    }
}

/// Many Raft groups hosted on one node.
pub struct Node {
    cfg: NodeConfig,
    groups: Groups,
    ticks: u64,
    next_proposal_id: u64,
    next_generation: u64,
    stats: Stats,
    /// Events raised outside a group's `Ready` (a group removed, proposals
    /// whose outcome became unknown).
    events: Vec<Event>,
    /// Groups that may have a `Ready`: `ready` visits only these, so an idle
    /// group costs nothing there. A group is listed at most once per
    /// generation; an id may appear again after a remove + create, and
    /// `ready` visits a listed id only while its group's `dirty` flag is set.
    dirty: Vec<u64>,
    /// Messages already routed (they depended on nothing undurable) and
    /// waiting for the next `ready`: heartbeat rows per peer, other frames.
    outbox: Outbox,
    /// Proposals to report as unknown if still undecided at a deadline, in
    /// deadline order.
    undecided: VecDeque<Undecided>,
    /// Peers whose heartbeat batches name each row's incarnation, and for
    /// how many more batches.
    per_row_incarnations: BTreeMap<u64, u32>,
    /// Peers whose last batch named group incarnations not hosted here: the
    /// next response to each says so.
    report_mismatch: BTreeSet<u64>,
}

/// Proposals of one group, up to a proposal id, that applying entries may
/// never decide on this node.
struct Undecided {
    deadline: u64,
    group_id: u64,
    generation: u64,
    upto: u64,
}

/// Where routed messages wait for the next `ready`.
#[derive(Default)]
struct Outbox {
    mux: HeartbeatMux,
    /// Frames with the group they belong to, so that removing a group can
    /// take back what it had not sent yet.
    frames: Vec<(u64, OutFrame)>,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.mux.is_empty()
    }

    /// Route one message of a group: into a heartbeat batch (batched mode)
    /// or its own frame.
    fn route(
        &mut self,
        cfg: &NodeConfig,
        stats: &mut Stats,
        group_id: u64,
        incarnation: u64,
        m: Message,
    ) {
        if cfg.batch_heartbeats && self.mux.offer(group_id, incarnation, &m) {
            return;
        }
        let (to, kind) = (m.to, frame_kind(m.msg_type));
        let bytes = encode_frame(&Frame {
            cluster_id: cfg.cluster_id,
            from: cfg.node_id,
            to,
            body: Body::Group {
                group_id,
                incarnation,
                msg: m,
            },
        });
        stats.on_sent(kind, bytes.len());
        self.frames.push((group_id, OutFrame { to, kind, bytes }));
    }

    /// Take back everything of a removed group that has not left yet.
    fn purge(&mut self, group_id: u64) {
        self.frames.retain(|(g, _)| *g != group_id);
        self.mux.purge(group_id);
    }
}

impl Node {
    pub fn new(cfg: NodeConfig) -> Result<Node, Error> {
        cfg.validate()?;
        Ok(Node {
            cfg,
            groups: Groups::default(),
            ticks: 0,
            next_proposal_id: 1,
            next_generation: 1,
            stats: Stats::default(),
            events: Vec::new(),
            dirty: Vec::new(),
            outbox: Outbox::default(),
            undecided: VecDeque::new(),
            per_row_incarnations: BTreeMap::new(),
            report_mismatch: BTreeSet::new(),
        })
    }

    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    pub fn id(&self) -> u64 {
        self.cfg.node_id
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The hosted groups' ids, ascending.
    pub fn group_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.groups.sorted_ids().into_iter()
    }

    /// Create this node's replica of a new, empty group.
    ///
    /// `incarnation` names this creation of `group_id`: every member must be
    /// given the same value, and it must differ from every earlier creation
    /// of the same id (e.g. the creation time in nanoseconds, or a counter
    /// kept in the host's metadata). Messages of another incarnation are
    /// dropped, so a removed group's late messages never reach a new group
    /// with the same id.
    pub fn create_group(
        &mut self,
        group_id: u64,
        incarnation: u64,
        members: &[u64],
    ) -> Result<(), Error> {
        self.create_group_with_store(group_id, incarnation, members, MemStore::new(), 0)
    }

    /// Create this node's replica of a group from what storage recovered
    /// (hard state and log), with the host's state machine at `applied`.
    pub fn create_group_with_store(
        &mut self,
        group_id: u64,
        incarnation: u64,
        members: &[u64],
        store: MemStore,
        applied: u64,
    ) -> Result<(), Error> {
        self.validate_members(group_id, members)?;
        if self.groups.contains(group_id) {
            return Err(Error::AlreadyExists(group_id));
        }
        let raft = Raft::new(self.cfg.raft_config(group_id, applied), members, store).map_err(
            |e| match e {
                raft::Error::Corrupt(reason) => Error::Corrupt {
                    group: group_id,
                    reason,
                },
                other => Error::InvalidArgument(other.to_string()),
            },
        )?;
        let generation = self.next_generation;
        self.next_generation += 1;
        self.groups
            .insert(group_id, Group::new(raft, incarnation, generation));
        // A restarted replica may have committed entries to apply.
        self.touched(group_id);
        Ok(())
    }

    fn validate_members(&self, group_id: u64, members: &[u64]) -> Result<(), Error> {
        let bad = |s: String| Err(Error::InvalidArgument(s));
        if group_id == 0 {
            return bad("group id 0 is reserved".into());
        }
        if members.is_empty() || members.len() > self.cfg.max_replicas {
            return bad(format!(
                "a group needs 1 to {} members, got {}",
                self.cfg.max_replicas,
                members.len()
            ));
        }
        if members.contains(&0) {
            return bad("member id 0 is not a node id".into());
        }
        if !members.contains(&self.cfg.node_id) {
            return bad(format!(
                "members must include this node ({})",
                self.cfg.node_id
            ));
        }
        let mut sorted = members.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != members.len() {
            return bad("members must not repeat".into());
        }
        Ok(())
    }

    /// Remove this node's replica of a group. Proposals still waiting are
    /// reported as [`ProposalError::GroupRemoved`] (outcome unknown) in the
    /// next `ready`; its messages not yet handed out in a `NodeReady` are
    /// dropped.
    pub fn remove_group(&mut self, group_id: u64) -> Result<(), Error> {
        let mut g = self
            .groups
            .remove(group_id)
            .ok_or(Error::NotFound(group_id))?;
        for proposal_id in g.drain_pending() {
            self.stats.proposals_unknown += 1;
            self.events.push(Event::ProposalDone {
                group_id,
                proposal_id,
                result: Err(ProposalError::GroupRemoved),
            });
        }
        self.outbox.purge(group_id);
        Ok(())
    }

    /// The node is stopping: every proposal still waiting is reported as
    /// [`ProposalError::Shutdown`] in the next `ready`.
    pub fn fail_pending_proposals(&mut self) {
        // In id order, so the events do not depend on the slab's layout.
        for group_id in self.groups.sorted_ids() {
            let Some(g) = self.groups.get_mut(group_id) else {
                continue;
            };
            for proposal_id in g.drain_pending() {
                self.stats.proposals_unknown += 1;
                self.events.push(Event::ProposalDone {
                    group_id,
                    proposal_id,
                    result: Err(ProposalError::Shutdown),
                });
            }
        }
    }

    pub fn group_status(&self, group_id: u64) -> Result<raft::Status, Error> {
        self.groups
            .get(group_id)
            .map(|g| g.raft.status())
            .ok_or(Error::NotFound(group_id))
    }

    /// The incarnation of the group hosted here under `group_id`.
    pub fn group_incarnation(&self, group_id: u64) -> Option<u64> {
        self.groups.get(group_id).map(|g| g.incarnation)
    }

    /// The members of a group hosted here.
    pub fn group_members(&self, group_id: u64) -> Result<Vec<u64>, Error> {
        self.groups
            .get(group_id)
            .map(|g| g.raft.voters().to_vec())
            .ok_or(Error::NotFound(group_id))
    }

    /// What this node, as leader of `group_id`, knows `follower` has matched.
    pub fn follower_matched(&self, group_id: u64, follower: u64) -> Option<u64> {
        self.groups.get(group_id)?.raft.follower_matched(follower)
    }

    /// Term of the entry at `index` in this replica's log, if held.
    pub fn log_term(&self, group_id: u64, index: u64) -> Option<u64> {
        self.groups.get(group_id)?.raft.log_term(index)
    }

    /// Propose a command to a group this node leads. Returns the proposal id
    /// that its [`Event::ProposalDone`] will carry.
    pub fn propose(&mut self, group_id: u64, data: Bytes) -> Result<u64, Error> {
        if data.len() > self.cfg.max_proposal_bytes {
            return Err(Error::TooLarge {
                what: "proposal",
                len: data.len(),
                max: self.cfg.max_proposal_bytes,
            });
        }
        let g = self
            .groups
            .get_mut(group_id)
            .ok_or(Error::NotFound(group_id))?;
        let p = g.raft.propose(data).map_err(|e| match e {
            raft::Error::NotLeader { leader } => Error::NotLeader {
                group: group_id,
                leader,
            },
            other => Error::InvalidArgument(other.to_string()),
        })?;
        let id = self.next_proposal_id;
        self.next_proposal_id += 1;
        g.track(p.index, p.term, id);
        self.stats.proposals += 1;
        self.touched(group_id);
        Ok(id)
    }

    /// After an input reached group `group_id`: send at once what depends on
    /// nothing undurable, and remember the group if it has other work.
    fn touched(&mut self, group_id: u64) {
        if let Some(g) = self.groups.get_mut(group_id) {
            after_input(
                &self.cfg,
                &mut self.stats,
                &mut self.outbox,
                &mut self.dirty,
                group_id,
                g,
            );
        }
    }

    /// Make this node's replica campaign now (tests and tools; elections
    /// otherwise start on their own).
    pub fn campaign(&mut self, group_id: u64) -> Result<(), Error> {
        let g = self
            .groups
            .get_mut(group_id)
            .ok_or(Error::NotFound(group_id))?;
        g.raft.campaign();
        self.touched(group_id);
        Ok(())
    }

    /// One tick for every group. With batching, every heartbeat interval the
    /// node also asks each group it leads for its heartbeats, so they all
    /// leave in the same batches.
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.report_undecided();
        let beat = self.cfg.batch_heartbeats && self.ticks % self.cfg.heartbeat_ticks as u64 == 0;
        let (cfg, stats, outbox) = (&self.cfg, &mut self.stats, &mut self.outbox);
        for (group_id, g) in self.groups.iter_mut() {
            // Most ticks only move a group's timers; those leave nothing for
            // `after_input` to find, so an idle group costs just its timers.
            let mut acted = g.raft.tick();
            if beat && g.raft.role() == Role::Leader {
                g.raft.broadcast_heartbeat();
                acted = true;
            }
            if acted {
                after_input(cfg, stats, outbox, &mut self.dirty, group_id, g);
            }
        }
    }

    /// Proposals still undecided at their deadline are reported unknown.
    fn report_undecided(&mut self) {
        while self
            .undecided
            .front()
            .is_some_and(|u| u.deadline <= self.ticks)
        {
            let Some(u) = self.undecided.pop_front() else {
                break;
            };
            let Some(g) = self.groups.get_mut(u.group_id) else {
                continue;
            };
            if g.generation != u.generation {
                continue; // removed (its proposals were reported then)
            }
            for proposal_id in g.take_undecided(u.upto) {
                self.stats.proposals_unknown += 1;
                self.events.push(Event::ProposalDone {
                    group_id: u.group_id,
                    proposal_id,
                    result: Err(ProposalError::LeadershipLost),
                });
            }
        }
    }

    /// After a group's role or term changed: proposals that applying
    /// entries here may never decide get a deadline of one election timeout
    /// to be decided by then (the new leader commits or replaces them), and
    /// are reported unknown after it.
    fn schedule_undecided(&mut self, group_id: u64) {
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        let Some(upto) = g.undecided_max() else {
            return;
        };
        if upto <= g.undecided_upto {
            return;
        }
        g.undecided_upto = upto;
        self.undecided.push_back(Undecided {
            deadline: self.ticks + u64::from(self.cfg.election_ticks),
            group_id,
            generation: g.generation,
            upto,
        });
    }

    /// Step one frame a peer sent. A frame that cannot be trusted (malformed,
    /// too large, another cluster, another destination) is refused whole and
    /// counted; a message for a group not hosted here is dropped for that
    /// group alone and counted, and `Ok` is returned since that is normal
    /// while groups are being created or removed.
    pub fn step(&mut self, frame: &[u8]) -> Result<(), Error> {
        self.step_frame(frame, None)
    }

    /// Like [`step`](Node::step), for a host that knows which peer sent the
    /// frame: one claiming another sender is refused.
    pub fn step_from(&mut self, from: u64, frame: &[u8]) -> Result<(), Error> {
        self.step_frame(frame, Some(from))
    }

    fn step_frame(&mut self, frame: &[u8], sender: Option<u64>) -> Result<(), Error> {
        let f = match decode_frame(frame, self.cfg.max_frame_bytes) {
            Ok(f) => f,
            Err(e) => {
                self.stats.frames_rejected += 1;
                return Err(match e {
                    WireError::TooLarge { len, max } => Error::TooLarge {
                        what: "frame",
                        len,
                        max,
                    },
                    other => Error::Malformed(other),
                });
            }
        };
        if f.cluster_id != self.cfg.cluster_id {
            self.stats.frames_rejected += 1;
            return Err(Error::WrongCluster {
                expected: self.cfg.cluster_id,
                got: f.cluster_id,
            });
        }
        if sender.is_some_and(|s| s != f.from) {
            self.stats.frames_rejected += 1;
            return Err(Error::InvalidArgument(format!(
                "frame claims to come from node {}, the host says node {}",
                f.from,
                sender.unwrap_or(0)
            )));
        }
        if f.to != self.cfg.node_id || f.from == self.cfg.node_id {
            self.stats.frames_rejected += 1;
            return Err(Error::WrongDestination {
                to: f.to,
                me: self.cfg.node_id,
            });
        }
        let (from, to) = (f.from, f.to);
        match f.body {
            Body::Group {
                group_id,
                incarnation,
                msg,
            } => {
                self.stats
                    .on_received(frame_kind(msg.msg_type), frame.len());
                self.step_group(group_id, Some(incarnation), msg);
            }
            Body::HeartbeatBatch(batch) => {
                self.stats
                    .on_received(FrameKind::HeartbeatBatch, frame.len());
                self.step_heartbeat_batch(from, to, batch);
            }
            Body::HeartbeatBatchResponse(answers) => {
                self.stats
                    .on_received(FrameKind::HeartbeatBatchResponse, frame.len());
                self.step_heartbeat_answers(from, to, answers);
            }
        }
        Ok(())
    }

    /// Do the groups hosted here have exactly the incarnations `digest`
    /// stands for (one row per group id in `group_ids`)?
    fn digest_matches(&self, group_ids: impl Iterator<Item = u64>, digest: u64) -> bool {
        let mut sum = 0u64;
        for group_id in group_ids {
            match self.groups.get(group_id) {
                Some(g) => sum = sum.wrapping_add(incarnation_row_hash(group_id, g.incarnation)),
                None => return false,
            }
        }
        sum == digest
    }

    /// Demux a heartbeat batch: each row is stepped into its group, if the
    /// group hosted here is the incarnation the sender's row belongs to.
    fn step_heartbeat_batch(&mut self, from: u64, to: u64, batch: HeartbeatBatch) {
        let mismatch = match batch.incarnations {
            Incarnations::Digest(digest) => {
                if self.digest_matches(batch.rows.iter().map(|h| h.group_id), digest) {
                    for h in &batch.rows {
                        self.step_group(h.group_id, None, heartbeat_message(from, to, h));
                    }
                    false
                } else {
                    // Which rows are of another incarnation cannot be told:
                    // drop them all, and ask for incarnations per row.
                    self.stats.batches_dropped_incarnation += 1;
                    true
                }
            }
            Incarnations::PerRow(incarnations) => {
                let mut mismatch = false;
                for (h, inc) in batch.rows.iter().zip(incarnations) {
                    let stepped =
                        self.step_group(h.group_id, Some(inc), heartbeat_message(from, to, h));
                    mismatch |= stepped == Stepped::OtherIncarnation;
                    mismatch |= stepped == Stepped::NoGroup;
                }
                mismatch
            }
        };
        if mismatch {
            self.report_mismatch.insert(from);
        }
    }

    /// Demux a heartbeat batch response; a digest that does not match drops
    /// it whole (a group was re-created while the batch was out).
    fn step_heartbeat_answers(&mut self, from: u64, to: u64, answers: HeartbeatBatchResponse) {
        if answers.incarnation_mismatch {
            self.per_row_incarnations.insert(from, PER_ROW_BATCHES);
        }
        if !self.digest_matches(
            answers.rows.iter().map(|h| h.group_id),
            answers.incarnation_digest,
        ) {
            self.stats.batches_dropped_incarnation += 1;
            return;
        }
        for h in &answers.rows {
            self.step_group(h.group_id, None, heartbeat_response_message(from, to, h));
        }
    }

    /// Step a message into a group. `incarnation` is the sender's, or None
    /// when the caller already checked it (a batch whose digest matched).
    fn step_group(&mut self, group_id: u64, incarnation: Option<u64>, m: Message) -> Stepped {
        let Some(g) = self.groups.get_mut(group_id) else {
            self.stats.messages_dropped += 1;
            return Stepped::NoGroup;
        };
        if incarnation.is_some_and(|i| i != g.incarnation) {
            // Another life of this group id: its messages must never touch
            // this one (a removed group's data would come back).
            self.stats.incarnation_mismatches += 1;
            return Stepped::OtherIncarnation;
        }
        if let Err(e) = g.raft.step(m) {
            tracing::debug!(group_id, error = %e, "message dropped");
            self.stats.messages_dropped += 1;
            return Stepped::Refused;
        }
        after_input(
            &self.cfg,
            &mut self.stats,
            &mut self.outbox,
            &mut self.dirty,
            group_id,
            g,
        );
        Stepped::Ok
    }

    /// Is there anything for the host to do?
    pub fn has_ready(&self) -> bool {
        !self.events.is_empty()
            || !self.dirty.is_empty()
            || !self.outbox.is_empty()
            || !self.report_mismatch.is_empty()
    }

    /// Collect every group's work: writes to persist, frames to send (the
    /// heartbeats of all groups packed into one batch per peer), and events.
    pub fn ready(&mut self) -> NodeReady {
        let mut out = NodeReady {
            events: std::mem::take(&mut self.events),
            ..NodeReady::default()
        };
        // Frames routed earlier go first: messages of a group stay in order.
        let mut outbox = std::mem::take(&mut self.outbox);
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        let mut changed = Vec::new();
        for group_id in dirty {
            let Some(g) = self.groups.get_mut(group_id) else {
                continue; // removed since
            };
            if !g.dirty {
                // Listed twice: removed and created again since it was
                // listed, and the new group listed itself too. One visit.
                continue;
            }
            g.dirty = false;
            if !g.raft.has_ready() {
                continue;
            }
            let mut rd = g.raft.ready();
            let elections = g.raft.elections_started();
            self.stats.elections_started += elections - g.last_elections;
            g.last_elections = elections;
            let incarnation = g.incarnation;
            if let Some((role, term, leader)) = rd.role_change {
                if leader != 0 && leader != g.last_leader {
                    self.stats.leader_changes += 1;
                    g.last_leader = leader;
                }
                out.events.push(Event::RoleChanged {
                    group_id,
                    incarnation,
                    role,
                    term,
                    leader,
                });
            }
            if g.has_pending() && (rd.role_change.is_some() || rd.hard_state.is_some()) {
                changed.push(group_id);
            }
            for m in rd.messages.drain(..) {
                outbox.route(&self.cfg, &mut self.stats, group_id, incarnation, m);
            }
            for e in &rd.committed_entries {
                if e.kind == EntryKind::Normal {
                    self.stats.entries_applied += 1;
                    out.events.push(Event::Applied {
                        group_id,
                        incarnation,
                        index: e.index,
                        data: e.data.clone(),
                    });
                }
                let (events, stats) = (&mut out.events, &mut self.stats);
                g.resolve(e, |proposal_id, result| {
                    match result {
                        Ok(_) => stats.proposals_committed += 1,
                        Err(_) => stats.proposals_failed += 1,
                    }
                    events.push(Event::ProposalDone {
                        group_id,
                        proposal_id,
                        result,
                    });
                });
            }
            out.groups.push(GroupReady {
                group_id,
                incarnation,
                generation: g.generation,
                ready: rd,
            });
        }
        for group_id in changed {
            self.schedule_undecided(group_id);
        }
        out.frames = outbox.frames.drain(..).map(|(_, f)| f).collect();
        for &peer in &self.report_mismatch {
            outbox.mux.ensure_answer_to(peer);
        }
        let (beats, answers) = outbox.mux.finish();
        for (to, rows) in beats {
            self.stats.group_heartbeats_batched += rows.len() as u64;
            let incarnations = match self.per_row_incarnations.get_mut(&to) {
                Some(left) => {
                    *left -= 1;
                    if *left == 0 {
                        self.per_row_incarnations.remove(&to);
                    }
                    self.stats.batches_with_incarnations += 1;
                    Incarnations::PerRow(rows.iter().map(|(_, i)| *i).collect())
                }
                None => Incarnations::Digest(incarnation_digest(
                    rows.iter().map(|(h, i)| (h.group_id, *i)),
                )),
            };
            let body = Body::HeartbeatBatch(HeartbeatBatch {
                rows: rows.into_iter().map(|(h, _)| h).collect(),
                incarnations,
            });
            out.frames
                .push(self.frame(to, FrameKind::HeartbeatBatch, body));
        }
        for (to, rows) in answers {
            self.stats.group_heartbeat_responses_batched += rows.len() as u64;
            let body = Body::HeartbeatBatchResponse(HeartbeatBatchResponse {
                incarnation_digest: incarnation_digest(rows.iter().map(|(h, i)| (h.group_id, *i))),
                incarnation_mismatch: self.report_mismatch.remove(&to),
                rows: rows.into_iter().map(|(h, _)| h).collect(),
            });
            out.frames
                .push(self.frame(to, FrameKind::HeartbeatBatchResponse, body));
        }
        out
    }

    fn frame(&mut self, to: u64, kind: FrameKind, body: Body) -> OutFrame {
        let bytes = encode_frame(&Frame {
            cluster_id: self.cfg.cluster_id,
            from: self.cfg.node_id,
            to,
            body,
        });
        self.stats.on_sent(kind, bytes.len());
        OutFrame { to, kind, bytes }
    }

    /// The host has persisted, sent and delivered what `rd` asked.
    pub fn advance(&mut self, rd: NodeReady) {
        for gr in rd.groups {
            match self.groups.get_mut(gr.group_id) {
                Some(g) if g.generation == gr.generation => g.raft.advance(&gr.ready),
                _ => continue, // removed since; nothing to record
            }
            // More committed entries than one Ready carries, or messages
            // that waited for this write: the group has work again.
            self.touched(gr.group_id);
        }
    }
}

/// After an input reached a group: route at once the messages that depend on
/// nothing undurable, and list the group as dirty if it has other work.
fn after_input(
    cfg: &NodeConfig,
    stats: &mut Stats,
    outbox: &mut Outbox,
    dirty: &mut Vec<u64>,
    group_id: u64,
    g: &mut Group,
) {
    let incarnation = g.incarnation;
    g.raft
        .send_durable_messages(|m| outbox.route(cfg, stats, group_id, incarnation, m));
    // `has_ready` first: it reads cache lines the input just touched, while
    // `dirty` sits on a line of its own, and an idle group is never dirty.
    if g.raft.has_ready() && !g.dirty {
        g.dirty = true;
        dirty.push(group_id);
    }
}

/// What became of a message handed to a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stepped {
    Ok,
    /// No group with that id here.
    NoGroup,
    /// The group here is another incarnation.
    OtherIncarnation,
    /// The group refused it (not a member, malformed, ...).
    Refused,
}

fn frame_kind(t: MessageType) -> FrameKind {
    match t {
        MessageType::Append => FrameKind::Append,
        MessageType::AppendResponse => FrameKind::AppendResponse,
        MessageType::Vote => FrameKind::Vote,
        MessageType::VoteResponse => FrameKind::VoteResponse,
        MessageType::PreVote => FrameKind::PreVote,
        MessageType::PreVoteResponse => FrameKind::PreVoteResponse,
        MessageType::Heartbeat => FrameKind::Heartbeat,
        MessageType::HeartbeatResponse => FrameKind::HeartbeatResponse,
    }
}
