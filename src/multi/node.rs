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

use super::group::Group;
use super::heartbeat::{heartbeat_message, heartbeat_response_message, HeartbeatMux};
use super::registry::Groups;
use super::stats::{FrameKind, Stats};
use super::{Error, NodeConfig, ProposalError};
use crate::raft::{self, EntryKind, Message, MessageType, Raft, Role};
use crate::storage::MemStore;
use crate::wire::{decode_frame, encode_frame, Body, Frame, WireError};

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
    incarnation: u64,
    pub ready: raft::Ready,
}

/// Something to tell the host, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// This node's replica of the group changed role, or learned of a new
    /// leader (`leader` is 0 when none is known).
    RoleChanged {
        group_id: u64,
        role: Role,
        term: u64,
        leader: u64,
    },
    /// A committed command, delivered once per replica in log order.
    Applied {
        group_id: u64,
        index: u64,
        data: Bytes,
    },
    /// A proposal made on this node committed at `Ok(index)`, or cannot.
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
    next_incarnation: u64,
    stats: Stats,
    /// Events raised outside a group's `Ready` (a group removed).
    events: Vec<Event>,
    /// Groups that may have a `Ready`: `ready` visits only these, so an idle
    /// group costs nothing there.
    dirty: Vec<u64>,
    /// Messages already routed (they depended on nothing undurable) and
    /// waiting for the next `ready`: heartbeat rows per peer, other frames.
    outbox: Outbox,
}

/// Where routed messages wait for the next `ready`.
#[derive(Default)]
struct Outbox {
    mux: HeartbeatMux,
    frames: Vec<OutFrame>,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.mux.is_empty()
    }

    /// Route one message of a group: into a heartbeat batch (batched mode)
    /// or its own frame.
    fn route(&mut self, cfg: &NodeConfig, stats: &mut Stats, group_id: u64, m: Message) {
        if cfg.batch_heartbeats && self.mux.offer(group_id, &m) {
            return;
        }
        let (to, kind) = (m.to, frame_kind(m.msg_type));
        let bytes = encode_frame(&Frame {
            cluster_id: cfg.cluster_id,
            from: cfg.node_id,
            to,
            body: Body::Group { group_id, msg: m },
        });
        stats.on_sent(kind, bytes.len());
        self.frames.push(OutFrame { to, kind, bytes });
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
            next_incarnation: 1,
            stats: Stats::default(),
            events: Vec::new(),
            dirty: Vec::new(),
            outbox: Outbox::default(),
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
    pub fn create_group(&mut self, group_id: u64, members: &[u64]) -> Result<(), Error> {
        self.create_group_with_store(group_id, members, MemStore::new(), 0)
    }

    /// Create this node's replica of a group from what storage recovered
    /// (hard state and log), with the host's state machine at `applied`.
    pub fn create_group_with_store(
        &mut self,
        group_id: u64,
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
        let incarnation = self.next_incarnation;
        self.next_incarnation += 1;
        self.groups.insert(group_id, Group::new(raft, incarnation));
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

    /// Remove this node's replica of a group. Proposals still waiting fail
    /// with [`ProposalError::GroupRemoved`] in the next `ready`.
    pub fn remove_group(&mut self, group_id: u64) -> Result<(), Error> {
        let mut g = self
            .groups
            .remove(group_id)
            .ok_or(Error::NotFound(group_id))?;
        for proposal_id in g.drain_pending() {
            self.stats.proposals_failed += 1;
            self.events.push(Event::ProposalDone {
                group_id,
                proposal_id,
                result: Err(ProposalError::GroupRemoved),
            });
        }
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
                self.stats.proposals_failed += 1;
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
            Body::Group { group_id, msg } => {
                self.stats
                    .on_received(frame_kind(msg.msg_type), frame.len());
                self.step_group(group_id, msg);
            }
            Body::HeartbeatBatch(beats) => {
                self.stats
                    .on_received(FrameKind::HeartbeatBatch, frame.len());
                for h in &beats {
                    self.step_group(h.group_id, heartbeat_message(from, to, h));
                }
            }
            Body::HeartbeatBatchResponse(answers) => {
                self.stats
                    .on_received(FrameKind::HeartbeatBatchResponse, frame.len());
                for h in &answers {
                    self.step_group(h.group_id, heartbeat_response_message(from, to, h));
                }
            }
        }
        Ok(())
    }

    fn step_group(&mut self, group_id: u64, m: Message) {
        let Some(g) = self.groups.get_mut(group_id) else {
            self.stats.messages_dropped += 1;
            return;
        };
        if let Err(e) = g.raft.step(m) {
            tracing::debug!(group_id, error = %e, "message dropped");
            self.stats.messages_dropped += 1;
            return;
        }
        after_input(
            &self.cfg,
            &mut self.stats,
            &mut self.outbox,
            &mut self.dirty,
            group_id,
            g,
        );
    }

    /// Is there anything for the host to do?
    pub fn has_ready(&self) -> bool {
        !self.events.is_empty() || !self.dirty.is_empty() || !self.outbox.is_empty()
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
        for group_id in dirty {
            let Some(g) = self.groups.get_mut(group_id) else {
                continue; // removed since
            };
            g.dirty = false;
            if !g.raft.has_ready() {
                continue;
            }
            let mut rd = g.raft.ready();
            let elections = g.raft.elections_started();
            self.stats.elections_started += elections - g.last_elections;
            g.last_elections = elections;
            if let Some((role, term, leader)) = rd.role_change {
                if leader != 0 && leader != g.last_leader {
                    self.stats.leader_changes += 1;
                    g.last_leader = leader;
                }
                out.events.push(Event::RoleChanged {
                    group_id,
                    role,
                    term,
                    leader,
                });
            }
            for m in rd.messages.drain(..) {
                outbox.route(&self.cfg, &mut self.stats, group_id, m);
            }
            for e in &rd.committed_entries {
                if e.kind == EntryKind::Normal {
                    self.stats.entries_applied += 1;
                    out.events.push(Event::Applied {
                        group_id,
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
                incarnation: g.incarnation,
                ready: rd,
            });
        }
        out.frames = std::mem::take(&mut outbox.frames);
        let (beats, answers) = outbox.mux.finish();
        for (to, beats) in beats {
            self.stats.group_heartbeats_batched += beats.len() as u64;
            let body = Body::HeartbeatBatch(beats);
            out.frames
                .push(self.frame(to, FrameKind::HeartbeatBatch, body));
        }
        for (to, answers) in answers {
            self.stats.group_heartbeat_responses_batched += answers.len() as u64;
            let body = Body::HeartbeatBatchResponse(answers);
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
                Some(g) if g.incarnation == gr.incarnation => g.raft.advance(&gr.ready),
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
    g.raft
        .send_durable_messages(|m| outbox.route(cfg, stats, group_id, m));
    // `has_ready` first: it reads cache lines the input just touched, while
    // `dirty` sits on a line of its own, and an idle group is never dirty.
    if g.raft.has_ready() && !g.dirty {
        g.dirty = true;
        dirty.push(group_id);
    }
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
