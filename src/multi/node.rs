//! A node: many groups, one set of peers. Ticks fan out to every group,
//! outgoing messages are routed (and heartbeats batched, `heartbeat.rs`) per
//! peer, incoming messages are split and stepped into their groups.
//!
//! The node, like each group, is sans-I/O and sans-bytes: it takes typed
//! [`Envelope`]s in and hands typed envelopes out; the wire layer encodes
//! them. The host loop is:
//!
//! ```text
//! loop {
//!     node.tick() / node.step(envelope) / node.propose(..)   // inputs, any time
//!     let rd = node.ready();
//!     send rd.early                                          // 0. may go first
//!     deliver rd.events[..rd.early_events] in order          //    (optional)
//!     persist rd.groups[*].ready.{hard_state, entries}       // 1. durable first
//!     send rd.messages                                       // 2. then send
//!     deliver rd.events[rd.early_events..] in order          // 3. apply, report
//!     node.advance(rd);                                      // 4. done
//! }
//! ```
//!
//! The events of a group whose ready writes nothing they depend on — its
//! committed entries are durable here already (always so on a leader,
//! which counts itself toward commit only once durable), no snapshot, no
//! new term or vote — come first in `rd.events`, and a host may deliver
//! those `rd.early_events` before the write: a leader then reports a
//! commit without waiting for an fsync of entries that are not part of
//! it. Delivering every event after the write is correct too.
//!
//! Only one `NodeReady` may be outstanding at a time; inputs between `ready`
//! and `advance` are fine.

use std::sync::Arc;

use bytes::Bytes;

use super::balance::Balancer;
use super::group::Group;
use super::group::Quiet;
use super::heartbeat::{self, Compaction, IncarnationProofs, RowSlots};
use super::key_metrics::{key_metrics_now, KeyMetrics, KeyMetricsTable};
use super::liveness::Peers;
use super::message::{msg_kind, Body, Envelope};
use super::outbox::Outbox;
use super::proposals::Undecided;
use super::registry::Groups;
use super::snapshot::{Held, Outgoing};
use super::stats::WakeCause;
use super::stats::{FrameKind, Stats};
use super::{Error, NodeConfig, ProposalError, ReadError};
use crate::raft::{
    self, entry_lists, EntryKind, LogStore, MemStore, Message, Predecessor, Raft, Role,
    SnapshotMeta,
};
use crate::tombstones::Tombstones;

/// A group's share of a [`NodeReady`]: what to persist for it. Its messages
/// are in [`NodeReady::messages`].
#[derive(Debug)]
pub struct GroupReady {
    pub group_id: u64,
    /// Which creation of `group_id` this is: a host that removed and
    /// re-created the group since `ready` must not persist this for the new
    /// one.
    pub incarnation: u64,
    generation: u64,
    pub ready: raft::Ready,
    /// The bytes of `ready.snapshot`, when the leader sent one: persist them
    /// with it.
    pub snapshot_data: Option<Bytes>,
    /// This group's events (and the entries it applies) are among the
    /// ready's [`NodeReady::early_events`]: they depend on nothing this
    /// ready writes.
    pub events_early: bool,
}

/// Something to tell the host, in the order it happened. More kinds may be
/// added: match with a catch-all arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
    /// The host must set its state machine of the group to `data`, the
    /// state after applying `index` (whose entry had `term`): a snapshot
    /// the leader sent, or (after a restart) the latest one on disk. Always
    /// before any `Applied` of a later index.
    Restore {
        group_id: u64,
        incarnation: u64,
        index: u64,
        term: u64,
        data: Bytes,
    },
    /// A read taken with [`Node::read_index`]: `Ok(index)` once the
    /// leadership was confirmed and every entry up to `index` was
    /// delivered as `Applied` (before this event): serve it from the state
    /// machine now. Exactly one per accepted read.
    ReadDone {
        group_id: u64,
        read_id: u64,
        result: Result<u64, ReadError>,
    },
    /// A membership of the group was applied on this replica: the
    /// configuration entry at `index` (or a snapshot installed at `index`
    /// that carries it). `members` lists every member with its role,
    /// voters first. A replica not in the list was removed from the group:
    /// it no longer takes part, and the host may remove it
    /// ([`Node::remove_group`]) once it no longer needs its state.
    MembersChanged {
        group_id: u64,
        incarnation: u64,
        index: u64,
        members: Vec<(u64, raft::MemberRole)>,
    },
    /// The group's log grew past `snapshot_threshold_entries` or
    /// `snapshot_threshold_bytes` since its last snapshot: the host should
    /// take one (told once until it does).
    SnapshotNeeded {
        group_id: u64,
        incarnation: u64,
        applied: u64,
        entries: u64,
        bytes: u64,
    },
}

/// Everything the host must do for one pass; see the module docs for order.
#[derive(Debug, Default)]
pub struct NodeReady {
    pub groups: Vec<GroupReady>,
    /// What may be sent **before** the writes are durable: a leader's
    /// appends (Raft lets a leader replicate while it writes its own log:
    /// it counts itself toward commit only once durable) and messages
    /// routed earlier that depend on nothing undurable. Send these first.
    pub early: Vec<Envelope>,
    /// What to send once the writes are durable. Messages of one group to
    /// one peer stay in the order they were made (`early` first).
    pub messages: Vec<Envelope>,
    pub events: Vec<Event>,
    /// How many of `events`, from the first, depend on nothing this ready
    /// writes (outcomes and applies of entries durable already; see the
    /// module documentation): these may be delivered before the writes are
    /// durable. Per group, the order of events is kept either way.
    pub early_events: usize,
}

impl NodeReady {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
            && self.early.is_empty()
            && self.messages.is_empty()
            && self.events.is_empty()
    }
}

/// A replica [`Node::remove_group`] removed, as the removal must be made
/// durable (`WalBatch::remove_replica`): a replica of the same incarnation
/// created later honours it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Removed {
    pub incarnation: u64,
    /// Its term, vote and last log position.
    pub state: Predecessor,
}

/// Many Raft groups hosted on one node.
pub struct Node {
    pub(super) cfg: NodeConfig,
    pub(super) groups: Groups,
    pub(super) ticks: u64,
    /// Since when proposals are refused with `Busy`, for the operator's log.
    busy: Option<BusySpell>,
    next_proposal_id: u64,
    next_generation: u64,
    /// Replicas removed here, in case the node is added back to their
    /// group (`join_group`).
    pub(super) tombstones: Tombstones,
    pub(super) stats: Stats,
    /// Events raised outside a group's `Ready` (a group removed, proposals
    /// whose outcome became unknown).
    events: Vec<Event>,
    /// Groups that may have a `Ready`: `ready` visits only these, so an idle
    /// group costs nothing there. A group is listed at most once per
    /// generation; an id may appear again after a remove + create, and
    /// `ready` visits a listed id only while its group's `dirty` flag is set.
    pub(super) dirty: Vec<u64>,
    /// Messages already routed (they depended on nothing undurable) and
    /// waiting for the next `ready`.
    pub(super) outbox: Outbox,
    undecided: Undecided,
    pub(super) proofs: IncarnationProofs,
    /// Compact heartbeat rows: batch numbers and full rows per peer.
    pub(super) compaction: Compaction,
    /// The slots of the groups of each peer's last batches (`heartbeat.rs`).
    pub(super) row_slots: RowSlots,
    /// Snapshots being sent to followers, and groups receiving one.
    pub(super) transfers: Vec<Outgoing>,
    pub(super) receiving: Vec<(u64, u64)>,
    /// The nodes hosting replicas of groups hosted here, and whether this
    /// node hears them (`liveness.rs`).
    pub(super) peers: Peers,
    /// This node's session, named in its heartbeat batches.
    pub(super) session: u64,
    /// The leader balancer (`balance.rs`).
    pub(super) balancer: Balancer,
    /// The vectors of the last `NodeReady`, emptied by `advance` and used
    /// again by the next `ready`, so that a pass under load does not grow
    /// new ones from nothing (doubling and copying thousands of envelopes
    /// and events each time).
    spare: Spare,
}

/// Emptied vectors kept from one pass to the next (see [`Node::ready`] and
/// [`Node::advance`]).
#[derive(Default)]
struct Spare {
    groups: Vec<GroupReady>,
    early: Vec<Envelope>,
    messages: Vec<Envelope>,
    events: Vec<Event>,
    /// The events of groups whose writes they wait for, set apart during
    /// `ready` (empty between passes).
    late_events: Vec<Event>,
    routed: Vec<(u64, Envelope)>,
    /// Emptied message lists of group replicas (each `ready` hands a
    /// replica's list over and the node routes its messages), lent back to
    /// replicas about to send: a follower answering appends and a leader
    /// sending them would otherwise allocate a list per pass each.
    /// Bounded by [`ROOM_LISTS_MAX`] and [`ROOM_MESSAGES_MAX`].
    message_room: Vec<Vec<Message>>,
}

/// The most message lists [`Spare::message_room`] keeps, and the most
/// messages each keeps room for: at most 1,024 x 8 x 96 bytes (768 KiB)
/// held for the next pass, enough for a pass of a thousand groups (a
/// list is taken back by the pass that hands its messages out).
const ROOM_LISTS_MAX: usize = 1024;
const ROOM_MESSAGES_MAX: usize = 8;

impl Spare {
    /// A list from the pool for `raft`, if it has none.
    fn lend_room(&mut self, raft: &mut Raft<MemStore>) {
        if raft.has_message_room() {
            return;
        }
        if let Some(room) = self.message_room.pop() {
            if let Some(back) = raft.lend_message_room(room) {
                self.message_room.push(back);
            }
        }
    }

    /// Keep an emptied message list for another replica.
    fn keep_room(&mut self, mut room: Vec<Message>) {
        room.clear();
        if room.capacity() > 0
            && room.capacity() <= ROOM_MESSAGES_MAX
            && self.message_room.len() < ROOM_LISTS_MAX
        {
            self.message_room.push(room);
        }
    }
}

/// The most elements a spare vector keeps room for: a burst (a node
/// catching up thousands of groups at once) does not pin its peak memory
/// for good.
const SPARE_MAX: usize = 4096;

/// `envelopes`, emptied, with the entry lists of their group messages
/// (sent by now) kept for the next pass's appends.
fn give_entry_lists(mut envelopes: Vec<Envelope>) -> Vec<Envelope> {
    for env in envelopes.drain(..) {
        if let Body::Group { msg, .. } = env.body {
            entry_lists::give(msg.entries);
        }
    }
    envelopes
}

/// Keep `v`, emptied, as the spare in `slot` (its room capped at
/// [`SPARE_MAX`]).
fn keep_spare<T>(slot: &mut Vec<T>, mut v: Vec<T>) {
    v.clear();
    v.shrink_to(SPARE_MAX);
    if v.capacity() >= slot.capacity() {
        *slot = v;
    }
}

/// What became of a message handed to a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stepped {
    Ok,
    /// No group with that id here.
    NoGroup,
    /// The group here is another incarnation.
    OtherIncarnation,
    /// The group refused it (not a member, malformed, ...).
    Refused,
}

impl Stepped {
    /// Did the message name the incarnation hosted here?
    pub fn same_incarnation(self) -> bool {
        matches!(self, Stepped::Ok | Stepped::Refused)
    }
}

impl Node {
    pub fn new(cfg: NodeConfig) -> Result<Node, Error> {
        cfg.validate()?;
        Ok(Node {
            groups: Groups::default(),
            ticks: 0,
            busy: None,
            next_proposal_id: 1,
            next_generation: 1,
            tombstones: Tombstones::default(),
            stats: Stats::default(),
            events: Vec::new(),
            dirty: Vec::new(),
            outbox: Outbox::default(),
            spare: Spare::default(),
            undecided: Undecided::default(),
            proofs: IncarnationProofs::default(),
            compaction: Compaction::default(),
            row_slots: RowSlots::default(),
            transfers: Vec::new(),
            receiving: Vec::new(),
            peers: Peers::default(),
            balancer: Balancer::new(cfg.balance_leaders),
            session: if cfg.session != 0 {
                cfg.session
            } else {
                crate::raft::Rng::new(cfg.seed ^ 0x5E55_1015).next_u64()
            },
            cfg,
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

    /// The backpressure gauges counted again from every group, the slow
    /// way: (proposals in flight, bytes not yet durable as counted), to
    /// check [`Stats::pending_proposals`] and [`Stats::unsynced_bytes`]
    /// against (tests and the simulation).
    pub fn pressure_recounted(&self) -> (u64, u64) {
        self.groups.iter().fold((0, 0), |(p, u), (_, g)| {
            (p + g.pending_len(), u + g.unsynced_counted)
        })
    }

    /// Proposals in flight in group `group_id` and its payload bytes not
    /// yet durable here.
    pub fn group_pressure(&self, group_id: u64) -> Option<(u64, u64)> {
        let g = self.groups.get(group_id)?;
        Some((g.pending_len(), g.raft.unstable_payload_bytes()))
    }

    /// The layer that encodes this node's messages reports their sizes
    /// here, so that every per-kind counter is in [`Stats`].
    pub fn record_bytes_sent(&mut self, kind: FrameKind, bytes: usize) {
        self.stats.on_bytes_sent(kind, bytes);
    }

    /// The layer that decodes messages for this node reports their sizes.
    pub fn record_bytes_received(&mut self, kind: FrameKind, bytes: usize) {
        self.stats.on_bytes_received(kind, bytes);
    }

    /// The layer that decodes messages for this node refused one
    /// (malformed, too large, another cluster).
    pub fn record_rejected(&mut self) {
        self.stats.frames_rejected += 1;
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The key metrics of every group hosted here, to read from any thread
    /// without this node's lock (see `key_metrics.rs`): the table is
    /// shared, and stays current for as long as the node lives.
    pub fn key_metrics_table(&self) -> Arc<KeyMetricsTable> {
        self.groups.metrics_table()
    }

    /// Group `group_id`'s key metrics as last published.
    pub fn key_metrics(&self, group_id: u64) -> Option<KeyMetrics> {
        self.groups.get(group_id).map(|g| g.metrics.load())
    }

    /// A group whose published key metrics differ from its state now, or
    /// a cell left in the table by a removed group, described; None if
    /// every cell agrees. Every input that changes them gives its group
    /// work for a pass, which publishes them: so with no work left
    /// (`!has_ready()`) none may differ. For tests and the simulation.
    pub fn key_metrics_stale(&self) -> Option<String> {
        let table = self.groups.metrics_table();
        if let Some(id) = table
            .ids()
            .into_iter()
            .find(|&id| !self.groups.contains(id))
        {
            return Some(format!(
                "group {id}: removed, but its key metrics are still listed"
            ));
        }
        self.groups.iter().find_map(|(id, g)| {
            let published = table.get(id);
            let now = key_metrics_now(g.incarnation, &g.raft, !self.groups.is_awake(id));
            (published != Some(now))
                .then(|| format!("group {id}: key metrics published {published:?}, now {now:?}"))
        })
    }

    /// A group with work for a pass (`Raft::has_ready`) while the node has
    /// none (`!has_ready()`), if any: work nothing would ever collect. Every
    /// input that gives a group work lists it dirty, which is what lets the
    /// demux's fast paths (`heartbeat.rs`), which only touch timers and
    /// activity, skip asking. For tests and the simulation.
    pub fn unlisted_work(&self) -> Option<u64> {
        self.groups
            .iter()
            .find_map(|(id, g)| (g.raft.has_ready() && !g.dirty).then_some(id))
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
    ///
    /// If this node removed a replica of the same incarnation, the new one
    /// takes its place as [`join_group`](Node::join_group) says (a host
    /// should not create an incarnation again, but if it does, the new
    /// replica does not vote twice in a term).
    pub fn create_group(
        &mut self,
        group_id: u64,
        incarnation: u64,
        members: &[u64],
    ) -> Result<(), Error> {
        self.create_group_with_store(group_id, incarnation, members, MemStore::new(), 0)?;
        self.take_tombstone(group_id, incarnation);
        Ok(())
    }

    /// A replica just created takes the place of the one of the same
    /// incarnation this node removed, if it remembers one.
    pub(super) fn take_tombstone(&mut self, group_id: u64, incarnation: u64) {
        if let Some(t) = self.tombstones.take(group_id, incarnation) {
            if let Some(g) = self.groups.get_mut(group_id) {
                g.raft.succeed_removed(t);
            }
            // Its term and vote to write: work for a pass.
            self.touched(group_id);
        }
    }

    /// The removed replica that group `group_id`'s replica took the place
    /// of when it was created ([`join_group`](Node::join_group)), as the
    /// creation must be made durable (`WalBatch::create_successor`): its
    /// term and vote and the vote floor. None if it took no one's place or
    /// the group is unknown. Ask right after the creation: the term and
    /// vote are the replica's own, which move on.
    pub fn succession(&self, group_id: u64) -> Option<Predecessor> {
        self.groups.get(group_id)?.raft.succeeded()
    }

    /// A replica this node removed before it restarted (storage recovered
    /// its tombstone): remembered as [`remove_group`](Node::remove_group)
    /// remembers one. Give them oldest first.
    pub fn remember_removed(&mut self, group_id: u64, incarnation: u64, removed: Predecessor) {
        self.tombstones.remember(group_id, incarnation, removed);
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
        self.validate_members(members)?;
        self.insert_group(group_id, incarnation, members, store, applied, true)
    }

    /// [`create_group_with_store`](Node::create_group_with_store) for a
    /// replica that storage recovered with its mark of having rejoined
    /// (`rejoined`: see [`rejoin_group`](Node::rejoin_group)), which it
    /// keeps: it never votes. `vote_floor`: it took the place of a removed
    /// replica ([`join_group`](Node::join_group)) and keeps that floor.
    #[allow(clippy::too_many_arguments)]
    pub fn recover_group(
        &mut self,
        group_id: u64,
        incarnation: u64,
        members: &[u64],
        store: MemStore,
        applied: u64,
        rejoined: bool,
        vote_floor: Option<(u64, u64)>,
    ) -> Result<(), Error> {
        self.insert_group(group_id, incarnation, members, store, applied, !rejoined)?;
        if let (Some(floor), Some(g)) = (vote_floor, self.groups.get_mut(group_id)) {
            g.raft.restore_vote_floor(floor);
        }
        Ok(())
    }

    /// Entries `from..=` the end of group `group_id`'s durable log (what
    /// the host made durable and the node recorded at `advance`), with the
    /// group's incarnation; None if the log no longer holds `from` (it was
    /// compacted) or the group is unknown. For rewriting a log forward in
    /// the WAL: call it with no `NodeReady` outstanding.
    pub fn durable_entries(&self, group_id: u64, from: u64) -> Option<(u64, Vec<raft::Entry>)> {
        let g = self.groups.get(group_id)?;
        let store = g.raft.store();
        if from < store.first_index() || from > store.last_index() {
            return None;
        }
        let entries = store.entries(from, store.last_index() + 1, u64::MAX).ok()?;
        Some((g.incarnation, entries))
    }

    /// Bytes of payload group `group_id`'s log holds in memory (durable and
    /// not yet durable entries), and of the snapshot it keeps for followers.
    pub fn group_memory(&self, group_id: u64) -> Option<(u64, u64)> {
        let g = self.groups.get(group_id)?;
        let snapshot = g.snapshot.as_ref().map_or(0, |h| h.data.len() as u64);
        let log = g.raft.store().payload_bytes() + g.raft.unstable_payload_bytes();
        Some((log, snapshot))
    }

    /// Create this node's replica of a group that already exists on the
    /// other members, after this node lost its durable state for it (its
    /// data directory was wiped): an empty replica that its leader brings up
    /// to date (by a snapshot and appends). It may have voted in terms it no
    /// longer knows of, and acknowledged entries it no longer holds, so it
    /// never votes nor campaigns, and its leader counts it in no quorum
    /// (`Config::can_vote`); it replicates. (Replacing it by a full member
    /// is a membership change.)
    pub fn rejoin_group(
        &mut self,
        group_id: u64,
        incarnation: u64,
        members: &[u64],
    ) -> Result<(), Error> {
        self.validate_members(members)?;
        self.insert_group(group_id, incarnation, members, MemStore::new(), 0, false)?;
        // It never votes: what a removed replica of its incarnation did
        // matters no more (and the WAL's copy is taken too).
        self.tombstones.take(group_id, incarnation);
        Ok(())
    }

    /// `members` empty: a replica that joins an existing group
    /// ([`join_group`](Node::join_group)), or one recovered after it did.
    pub(super) fn insert_group(
        &mut self,
        group_id: u64,
        incarnation: u64,
        members: &[u64],
        store: MemStore,
        applied: u64,
        can_vote: bool,
    ) -> Result<(), Error> {
        if !members.is_empty() {
            self.validate_members(members)?;
        }
        if self.groups.contains(group_id) {
            return Err(Error::AlreadyExists(group_id));
        }
        let cfg = self.cfg.raft_config(group_id, applied, can_vote);
        let raft =
            Raft::new(cfg, members, store).map_err(|source| Error::Raft { group_id, source })?;
        let generation = self.next_generation;
        self.next_generation += 1;
        let mut group = Group::new(group_id, raft, incarnation, generation);
        group.reported_self = !members.is_empty();
        self.groups.insert(group_id, group);
        // The peers it shares with: of its membership, which a recovered
        // replica may have changed since its creation.
        self.sync_members(group_id);
        // A restarted replica may have committed entries to apply.
        self.touched(group_id);
        Ok(())
    }

    fn validate_members(&self, members: &[u64]) -> Result<(), Error> {
        let bad = |s: String| Err(Error::InvalidArgument(s));
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
    ///
    /// The node remembers the replica (a tombstone: its term, vote and last
    /// log position; the latest 16,384 removals) for a replica of the same
    /// incarnation created later (a node removed from a group and added
    /// back: [`join_group`](Node::join_group)), and returns it: write it
    /// with the removal (`WalBatch::remove_replica`) so that a restart
    /// keeps it too.
    pub fn remove_group(&mut self, group_id: u64) -> Result<Removed, Error> {
        let mut g = self
            .groups
            .remove(group_id)
            .ok_or(Error::NotFound(group_id))?;
        let removed = Removed {
            incarnation: g.incarnation,
            state: g.raft.to_succeed(),
        };
        self.tombstones
            .remember(group_id, removed.incarnation, removed.state);
        self.report_all(group_id, &mut g, ProposalError::GroupRemoved);
        if g.leading {
            take(&mut self.stats.groups_led, 1);
        }
        self.balancer.touch();
        let reads = g.raft.take_all_reads();
        self.report_reads_failed(group_id, reads, ReadError::GroupRemoved);
        self.outbox.purge(group_id);
        self.peers.remove_group(g.members.iter().copied());
        // News of the removed replica not yet handed out (a restore queued
        // by recovery, say) must not reach the host as a later replica's
        // of the same id; outcomes of proposals and reads are owed.
        self.events.retain(|e| match e {
            Event::RoleChanged { group_id: g, .. }
            | Event::Applied { group_id: g, .. }
            | Event::Restore { group_id: g, .. }
            | Event::SnapshotNeeded { group_id: g, .. }
            | Event::MembersChanged { group_id: g, .. } => *g != group_id,
            Event::ProposalDone { .. } | Event::ReadDone { .. } => true,
        });
        Ok(removed)
    }

    /// The node is stopping: every proposal still waiting is reported as
    /// [`ProposalError::Shutdown`] in the next `ready`, and every read
    /// still pending as [`ReadError::Shutdown`].
    pub fn fail_pending_proposals(&mut self) {
        // In id order, so the events do not depend on the slab's layout.
        for group_id in self.groups.sorted_ids() {
            let mut pending = Vec::new();
            let mut reads = Vec::new();
            if let Some(g) = self.groups.get_mut(group_id) {
                pending.extend(g.drain_pending());
                reads = g.raft.take_all_reads();
            }
            take(&mut self.stats.pending_proposals, pending.len() as u64);
            self.report_unknown(group_id, pending, ProposalError::Shutdown);
            self.report_reads_failed(group_id, reads, ReadError::Shutdown);
        }
    }

    fn report_all(&mut self, group_id: u64, g: &mut Group, why: ProposalError) {
        let pending: Vec<u64> = g.drain_pending().collect();
        take(&mut self.stats.pending_proposals, pending.len() as u64);
        // The group is going away: its bytes leave the node's count too.
        take(
            &mut self.stats.unsynced_bytes,
            std::mem::take(&mut g.unsynced_counted),
        );
        self.report_unknown(group_id, pending, why);
    }

    fn report_reads_failed(&mut self, group_id: u64, reads: Vec<u64>, why: ReadError) {
        take(&mut self.stats.pending_reads, reads.len() as u64);
        self.stats.reads_failed += reads.len() as u64;
        self.events
            .extend(reads.into_iter().map(|read_id| Event::ReadDone {
                group_id,
                read_id,
                result: Err(why),
            }));
    }

    fn report_unknown(&mut self, group_id: u64, proposals: Vec<u64>, why: ProposalError) {
        for proposal_id in proposals {
            self.stats.proposals_unknown += 1;
            self.events.push(Event::ProposalDone {
                group_id,
                proposal_id,
                result: Err(why),
            });
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
    /// The leader's view of follower `follower` in group `group_id`, for
    /// diagnostics (a simulation's failure report).
    pub fn describe_progress(&self, group_id: u64, follower: u64) -> Option<String> {
        let g = self.groups.get(group_id)?;
        let transfer = self.transfers.iter().any(|t| t.is_for(group_id, follower));
        Some(format!(
            "{} transfer={transfer} snapshot_held={:?}",
            g.raft.describe_progress(follower)?,
            g.snapshot.as_ref().map(|h| h.meta.index)
        ))
    }

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
        if self
            .groups
            .get(group_id)
            .is_some_and(|g| g.raft.role() == Role::Leader)
        {
            // Anything but `idle: 0` means the leader counts toward going
            // quiet, or is quiet: a proposal needs it.
            self.wake(group_id, WakeCause::Host);
        }
        let g = self
            .groups
            .get_mut(group_id)
            .ok_or(Error::NotFound(group_id))?;
        if g.raft.role() == Role::Leader {
            // A follower answers NotLeader below: that tells more.
            if let Err(e) = check_pressure(&self.cfg, &self.stats, group_id, g, data.len()) {
                self.stats.proposals_refused_busy += 1;
                let (ticks, refused) = (self.ticks, self.stats.proposals_refused_busy);
                match &mut self.busy {
                    Some(spell) => spell.last_refusal = ticks,
                    None => {
                        if let Error::Busy {
                            what, value, limit, ..
                        } = &e
                        {
                            tracing::info!(
                                group_id,
                                value,
                                limit,
                                "backpressure started: proposals refused (BUSY): {what} at its limit"
                            );
                        }
                        self.busy = Some(BusySpell {
                            since: ticks,
                            last_refusal: ticks,
                            refused_before: refused - 1,
                        });
                    }
                }
                return Err(e);
            }
        }
        let p = g.raft.propose(data).map_err(|e| match e {
            raft::Error::NotLeader { leader } => Error::NotLeader { group_id, leader },
            source => Error::Raft { group_id, source },
        })?;
        let id = self.next_proposal_id;
        self.next_proposal_id += 1;
        g.track(p.index, p.term, id);
        self.stats.pending_proposals += 1;
        account_unsynced(&mut self.stats, g);
        self.stats.proposals += 1;
        self.touched(group_id);
        Ok(id)
    }

    /// Take a linearizable read of a group this node leads (Raft's read
    /// index): the returned id comes back in one [`Event::ReadDone`],
    /// with the index to serve it at once the leadership is confirmed by a
    /// quorum's answers to the next heartbeat round and that index is
    /// applied. With batched heartbeats every read taken during an interval
    /// rides on the interval's batches, so reads cost no extra message; in
    /// the naive mode each read sends a heartbeat round of its own (as
    /// etcd/raft does). A quiet group wakes up.
    pub fn read_index(&mut self, group_id: u64) -> Result<u64, Error> {
        let g = self.groups.get(group_id).ok_or(Error::NotFound(group_id))?;
        if g.raft.role() != Role::Leader {
            return Err(Error::NotLeader {
                group_id,
                leader: g.raft.leader(),
            });
        }
        let pending = g.raft.pending_reads() as u64;
        let busy = if pending >= self.cfg.max_pending_reads_per_group {
            Some((
                "reads pending in the group",
                pending,
                self.cfg.max_pending_reads_per_group,
            ))
        } else if self.stats.pending_reads >= self.cfg.max_pending_reads {
            Some((
                "reads pending on the node",
                self.stats.pending_reads,
                self.cfg.max_pending_reads,
            ))
        } else {
            None
        };
        if let Some((what, value, limit)) = busy {
            self.stats.reads_refused_busy += 1;
            return Err(Error::Busy {
                group_id,
                what,
                value,
                limit,
            });
        }
        self.wake(group_id, WakeCause::Host);
        let now = !self.cfg.batch_heartbeats;
        let g = self.groups.get_mut(group_id).expect("checked above");
        let id = self.next_proposal_id;
        g.raft.read_index(id, now).map_err(|e| match e {
            raft::Error::NotLeader { leader } => Error::NotLeader { group_id, leader },
            source => Error::Raft { group_id, source },
        })?;
        self.next_proposal_id += 1;
        self.stats.reads += 1;
        self.stats.pending_reads += 1;
        self.touched(group_id);
        Ok(id)
    }

    /// Hand leadership of a group this node leads to the replica on node
    /// `to` (Raft's leadership transfer, `raft/transfer.rs`). Returns at
    /// once; the new leader shows as an [`Event::RoleChanged`], and a
    /// transfer the target does not complete within an election timeout is
    /// abandoned. Until then proposals are refused with `NotLeader` naming
    /// `to`. Refused with `NotLeader` on a follower, `Raft` with
    /// `TransferNotVoter` if `to` is not a voter, `TransferNotCaughtUp` if
    /// the leader is not replicating to it. A quiet group wakes up.
    pub fn transfer_leader(&mut self, group_id: u64, to: u64) -> Result<(), Error> {
        let g = self.groups.get(group_id).ok_or(Error::NotFound(group_id))?;
        if g.raft.role() != Role::Leader {
            return Err(Error::NotLeader {
                group_id,
                leader: g.raft.leader(),
            });
        }
        self.wake(group_id, WakeCause::Host);
        let g = self.groups.get_mut(group_id).expect("checked above");
        g.raft.transfer_leader(to).map_err(|e| match e {
            raft::Error::NotLeader { leader } => Error::NotLeader { group_id, leader },
            source => Error::Raft { group_id, source },
        })?;
        if to != self.cfg.node_id {
            self.stats.transfers_started += 1;
        }
        self.touched(group_id);
        Ok(())
    }

    /// The snapshot the host would take of group `group_id` at `index`
    /// (checked: applied, and after the current one), without taking it.
    pub fn snapshot_meta_at(&self, group_id: u64, index: u64) -> Result<SnapshotMeta, Error> {
        let g = self.groups.get(group_id).ok_or(Error::NotFound(group_id))?;
        g.raft
            .snapshot_meta_at(index)
            .map_err(|source| Error::Raft { group_id, source })
    }

    /// The host made a snapshot of group `group_id` durable: `data` is its
    /// state after applying `meta.index` (from [`snapshot_meta_at`]). The
    /// log is compacted up to the trailing window; returns the compaction
    /// point (index, term) for the durable log to follow.
    ///
    /// [`snapshot_meta_at`]: Node::snapshot_meta_at
    pub fn take_snapshot(
        &mut self,
        group_id: u64,
        meta: SnapshotMeta,
        data: Bytes,
    ) -> Result<(u64, u64), Error> {
        let g = self
            .groups
            .get_mut(group_id)
            .ok_or(Error::NotFound(group_id))?;
        let point = g
            .raft
            .snapshot_taken(meta.clone())
            .map_err(|source| Error::Raft { group_id, source })?;
        g.snapshot = Some(Held::new(meta, data));
        g.hinted = false;
        // No pass follows for an idle group: its compacted log is news now.
        g.metrics.publish(&g.raft);
        self.stats.snapshots_taken += 1;
        tracing::debug!(
            group_id,
            compacted_to = point.0,
            "snapshot taken; log compacted"
        );
        Ok(point)
    }

    /// After a restart: group `group_id` was recovered from a snapshot whose
    /// bytes are `data` (its store holds the snapshot's meta). The host is
    /// told to restore them before anything later is applied.
    pub fn restore_snapshot(&mut self, group_id: u64, data: Bytes) -> Result<(), Error> {
        let g = self
            .groups
            .get_mut(group_id)
            .ok_or(Error::NotFound(group_id))?;
        let meta = g.raft.store().snapshot().clone();
        if meta.index == 0 {
            return Err(Error::InvalidArgument(format!(
                "group {group_id} was not recovered from a snapshot"
            )));
        }
        self.events.push(Event::Restore {
            group_id,
            incarnation: g.incarnation,
            index: meta.index,
            term: meta.term,
            data: data.clone(),
        });
        // The membership the snapshot recorded (later ones come as its log
        // is applied again).
        if let Some(ev) =
            members_event(group_id, g, self.cfg.node_id, meta.index, meta.membership())
        {
            self.events.push(ev);
        }
        g.snapshot = Some(Held::new(meta, data));
        Ok(())
    }

    /// Queue a message of group `group_id` for the next `ready` (taken back
    /// if the group is removed first).
    pub(super) fn queue_message(&mut self, group_id: u64, env: Envelope) {
        self.outbox.messages.push((group_id, env));
    }

    /// After an input reached group `group_id`: send at once what depends on
    /// nothing undurable, and remember the group if it has other work.
    pub(super) fn touched(&mut self, group_id: u64) {
        if let Some(g) = self.groups.get_mut(group_id) {
            after_input(&self.cfg, &mut self.outbox, &mut self.dirty, group_id, g);
        }
    }

    /// Make this node's replica campaign now (tests and tools; elections
    /// otherwise start on their own).
    pub fn campaign(&mut self, group_id: u64) -> Result<(), Error> {
        self.wake(group_id, WakeCause::Host);
        let g = self
            .groups
            .get_mut(group_id)
            .ok_or(Error::NotFound(group_id))?;
        g.raft.campaign();
        self.touched(group_id);
        Ok(())
    }

    /// One tick for every group. With batching, every heartbeat interval the
    /// node also asks each group it leads for its heartbeats
    /// (`Raft::broadcast_heartbeat`), so that they all leave in the same
    /// batches (`heartbeat.rs`).
    pub fn tick(&mut self) {
        self.ticks += 1;
        self.end_busy_spell();
        self.report_undecided();
        if self.has_transfers() {
            self.expire_snapshot_transfers();
        }
        if self.cfg.batch_heartbeats {
            self.check_liveness();
        }
        self.balance();
        let beat = self.cfg.batch_heartbeats && self.ticks % self.cfg.heartbeat_ticks as u64 == 0;
        if beat {
            // The per-pair batch goes out every interval, rows or not: it
            // is the liveness signal that covers quiet groups. A peer gets
            // at most a row per awake group led here: room for that many.
            let rows = (self.stats.groups_led as usize).min(self.groups.awake_len());
            for peer in self.peers.ids() {
                self.outbox.mux.expect_beats(peer, rows);
            }
        }
        let quiesce = beat && self.cfg.quiesce;
        let mut leaders = Vec::new();
        let (cfg, outbox) = (&self.cfg, &mut self.outbox);
        let scope = crate::logging::GroupScope::enter();
        // Quiet groups are not ticked: they are not in this walk at all.
        for (group_id, g) in self.groups.iter_awake_mut() {
            scope.set(group_id);
            // Most ticks only move a group's timers; those leave nothing for
            // `after_input` to find, so an idle group costs just its timers.
            let mut acted = g.raft.tick();
            if beat && g.raft.role() == Role::Leader {
                // Heartbeats that would be routed at once go straight into
                // the mux's rows (which leaves the group nothing to do);
                // others wait in the group as messages.
                let (mux, replica) = (&mut outbox.mux, g.replica());
                let rows = g
                    .raft
                    .broadcast_heartbeat_at_rest(|to, term, commit, round| {
                        mux.beat(to, group_id, replica, term, commit, round)
                    });
                if !rows {
                    g.raft.broadcast_heartbeat();
                    acted = true;
                }
                if quiesce {
                    leaders.push(group_id);
                }
            }
            if acted {
                after_input(cfg, outbox, &mut self.dirty, group_id, g);
            }
        }
        drop(scope);
        for group_id in leaders {
            self.quiesce_beat(group_id);
        }
    }

    /// Backpressure ends, for the log, once no proposal was refused for an
    /// election timeout: a node at its limit refuses and accepts in turns,
    /// and one line per turn would flood the log.
    fn end_busy_spell(&mut self) {
        let Some(spell) = self.busy else {
            return;
        };
        if self.ticks - spell.last_refusal < u64::from(self.cfg.election_ticks) {
            return;
        }
        self.busy = None;
        tracing::info!(
            refused = self.stats.proposals_refused_busy - spell.refused_before,
            ticks = spell.last_refusal - spell.since + 1,
            "backpressure ended: no proposal refused for an election timeout"
        );
    }

    /// Proposals still undecided at their deadline are reported unknown
    /// (see `proposals.rs`).
    fn report_undecided(&mut self) {
        while let Some((group_id, generation, upto)) = self.undecided.pop_due(self.ticks) {
            let Some(g) = self.groups.get_mut(group_id) else {
                continue;
            };
            if g.generation != generation {
                continue; // removed (its proposals were reported then)
            }
            let due = g.take_undecided(upto);
            take(&mut self.stats.pending_proposals, due.len() as u64);
            self.report_unknown(group_id, due, ProposalError::LeadershipLost);
        }
    }

    /// After a group's role or term changed: proposals that applying
    /// entries here may never decide are due one election timeout later.
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
        let at = self.ticks + u64::from(self.cfg.election_ticks);
        self.undecided.schedule(at, group_id, g.generation, upto);
    }

    /// Step a message a peer sent (decoded by the caller). One addressed to
    /// another node, or claiming to come from this one, is refused and
    /// counted; a message for a group not hosted here is dropped for that
    /// group alone and counted, and `Ok` is returned since that is normal
    /// while groups are being created or removed.
    pub fn step(&mut self, env: Envelope) -> Result<(), Error> {
        if env.to != self.cfg.node_id || env.from == self.cfg.node_id {
            self.stats.frames_rejected += 1;
            return Err(Error::WrongDestination {
                to: env.to,
                from: env.from,
                me: self.cfg.node_id,
            });
        }
        if !matches!(env.body, Body::Groups(_)) {
            self.stats.on_received(env.body.kind());
        }
        let from = env.from;
        let session = match &env.body {
            Body::HeartbeatBatch(b) => Some(b.session),
            Body::HeartbeatBatchResponse(b) => Some(b.session),
            _ => None,
        };
        self.heard_from(from, session.filter(|&s| s != 0));
        match env.body {
            Body::Group {
                group_id,
                incarnation,
                msg,
            } => {
                self.wake_for_message(from, group_id);
                self.step_row(group_id, Some(incarnation), |r| r.step(msg));
            }
            Body::Groups(msgs) => {
                for m in msgs {
                    self.stats.on_received(msg_kind(&m.msg));
                    self.wake_for_message(from, m.group_id);
                    // An append is always answered (at the next `ready`,
                    // which takes the list back).
                    if m.msg.msg_type == crate::raft::MessageType::Append {
                        if let Some(g) = self.groups.get_mut(m.group_id) {
                            self.spare.lend_room(&mut g.raft);
                        }
                    }
                    self.step_row(m.group_id, Some(m.incarnation), |r| r.step(m.msg));
                }
            }
            Body::HeartbeatBatch(batch) => self.step_heartbeat_batch(from, batch),
            Body::HeartbeatBatchResponse(answers) => self.step_heartbeat_answers(from, answers),
            Body::SnapshotChunk(c) => {
                self.wake_for_message(from, c.group_id);
                self.step_snapshot_chunk(from, c)
            }
            Body::SnapshotAck(a) => {
                self.wake_for_message(from, a.group_id);
                self.step_snapshot_ack(from, a)
            }
        }
        Ok(())
    }

    /// Hand an input to a group replica. `incarnation` is the sender's, or
    /// None when the caller already checked it (a batch whose digest
    /// matched).
    pub(super) fn step_row(
        &mut self,
        group_id: u64,
        incarnation: Option<u64>,
        input: impl FnOnce(&mut Raft<MemStore>) -> Result<(), raft::Error>,
    ) -> Stepped {
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
        if let Err(e) = crate::logging::in_group(group_id, || input(&mut g.raft)) {
            tracing::debug!(group_id, error = %e, "message dropped");
            self.stats.messages_dropped += 1;
            return Stepped::Refused;
        }
        after_input(&self.cfg, &mut self.outbox, &mut self.dirty, group_id, g);
        Stepped::Ok
    }

    /// Is there anything for the host to do?
    pub fn has_ready(&self) -> bool {
        !self.events.is_empty()
            || !self.dirty.is_empty()
            || !self.outbox.is_empty()
            || self.proofs.owes_report()
    }

    /// Collect every group's work: writes to persist, messages to send (the
    /// heartbeats of all groups packed into one batch per peer), and events.
    pub fn ready(&mut self) -> NodeReady {
        // The node's events so far become the ready's, and the spare takes
        // their place (the vectors trade places, nothing is copied).
        let events = std::mem::take(&mut self.spare.events);
        let mut out = NodeReady {
            events: std::mem::replace(&mut self.events, events),
            groups: std::mem::take(&mut self.spare.groups),
            early: Vec::new(),
            messages: std::mem::take(&mut self.spare.messages),
            early_events: 0,
        };
        // Events raised outside a ready (a removal, outcomes made unknown)
        // keep their place before everything: with any, no event is early.
        let split = out.events.is_empty();
        let mut late = std::mem::take(&mut self.spare.late_events);
        // Messages routed earlier go first: a group's messages stay in order.
        // They depend on nothing undurable, so they may leave early, and so
        // may a leader's appends made in this pass, after them.
        let routed = std::mem::take(&mut self.spare.routed);
        let mut outbox = std::mem::replace(
            &mut self.outbox,
            Outbox {
                messages: routed,
                ..Outbox::default()
            },
        );
        let mut early = std::mem::take(&mut self.spare.early);
        early.extend(outbox.messages.drain(..).map(|(_, m)| m));
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        let mut changed = Vec::new();
        let mut conf_changed = Vec::new();
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
            let first_event = out.events.len();
            // A leader's appends are made in `ready`.
            self.spare.lend_room(&mut g.raft);
            let mut rd = crate::logging::in_group(group_id, || g.raft.ready());
            if g.raft.conf_version() != g.conf_version {
                conf_changed.push(group_id);
            }
            let elections = g.raft.elections_started();
            self.stats.elections_started += elections - g.last_elections;
            g.last_elections = elections;
            let incarnation = g.incarnation;
            if let Some((role, term, leader)) = rd.role_change {
                let leading = role == Role::Leader;
                if leading != g.leading {
                    g.leading = leading;
                    if leading {
                        self.stats.groups_led += 1;
                    } else {
                        take(&mut self.stats.groups_led, 1);
                    }
                }
                if role != Role::Leader && matches!(g.quiet, Quiet::Quiescing { .. }) {
                    // It stepped down while asking its followers to go quiet.
                    g.quiet = Quiet::Awake { idle: 0 };
                }
                if leader != 0 && leader != g.last_leader {
                    self.stats.leader_changes += 1;
                    g.last_leader = leader;
                }
                self.balancer.touch();
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
            // A snapshot from the leader: its bytes go with it to be
            // persisted, and the host restores it before any later apply.
            let mut snapshot_data = None;
            match (&rd.snapshot, g.received.take()) {
                (Some(meta), Some(held)) if held.meta == *meta => {
                    self.stats.snapshots_installed += 1;
                    tracing::info!(
                        group_id,
                        index = meta.index,
                        term = meta.term,
                        bytes = held.data.len(),
                        "installing a snapshot from the leader"
                    );
                    // Proposals made here that the snapshot jumps over:
                    // their outcome is unknown (not decided by entries).
                    let covered = g.take_covered_by_snapshot(meta.index);
                    if !covered.is_empty() {
                        take(&mut self.stats.pending_proposals, covered.len() as u64);
                        self.stats.proposals_unknown += covered.len() as u64;
                        out.events.extend(covered.into_iter().map(|proposal_id| {
                            Event::ProposalDone {
                                group_id,
                                proposal_id,
                                result: Err(ProposalError::LeadershipLost),
                            }
                        }));
                    }
                    out.events.push(Event::Restore {
                        group_id,
                        incarnation,
                        index: meta.index,
                        term: meta.term,
                        data: held.data.clone(),
                    });
                    if let Some(ev) =
                        members_event(group_id, g, self.cfg.node_id, meta.index, meta.membership())
                    {
                        out.events.push(ev);
                    }
                    snapshot_data = Some(held.data.clone());
                    g.hinted = false;
                    g.snapshot = Some(held);
                }
                (Some(meta), _) => {
                    // Cannot happen: the core installs only what the node
                    // received whole. Persisting the meta without its bytes
                    // would lose the state, so fail loudly.
                    panic!("group {group_id}: snapshot {meta:?} installed without its bytes");
                }
                (None, _) => {}
            }
            let leading = g.raft.role() == Role::Leader;
            for m in rd.messages.drain(..) {
                if leading && m.msg_type == crate::raft::MessageType::Append {
                    early.push(super::outbox::group_envelope(group_id, incarnation, m));
                } else {
                    outbox.route(self.cfg.batch_heartbeats, group_id, incarnation, m);
                }
            }
            self.spare.keep_room(std::mem::take(&mut rd.messages));
            for e in &rd.committed_entries {
                if e.kind == EntryKind::Normal {
                    self.stats.entries_applied += 1;
                    out.events.push(Event::Applied {
                        group_id,
                        incarnation,
                        index: e.index,
                        data: e.data.clone(),
                    });
                } else if e.kind == EntryKind::Config {
                    let m = raft::Membership::decode(&e.data);
                    if let Some(ev) =
                        m.and_then(|m| members_event(group_id, g, self.cfg.node_id, e.index, m))
                    {
                        out.events.push(ev);
                    }
                }
                let (events, stats) = (&mut out.events, &mut self.stats);
                g.resolve(e, |proposal_id, result| {
                    take(&mut stats.pending_proposals, 1);
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
            // Reads after the entries they read (the host applies those
            // first, in event order).
            let served = rd.reads.iter().map(|r| (r.id, Ok(r.index)));
            let lost = rd
                .reads_failed
                .iter()
                .map(|&id| (id, Err(ReadError::LeadershipLost)));
            for (read_id, result) in served.chain(lost) {
                take(&mut self.stats.pending_reads, 1);
                match result {
                    Ok(_) => self.stats.reads_served += 1,
                    Err(_) => self.stats.reads_failed += 1,
                }
                out.events.push(Event::ReadDone {
                    group_id,
                    read_id,
                    result,
                });
            }
            let handed_out = rd.committed_entries.last().map(|e| e.index);
            if let Some(ev) = snapshot_hint(&self.cfg, group_id, g, handed_out) {
                out.events.push(ev);
            }
            let events_early = split && events_wait_for_nothing(&rd);
            if !events_early {
                late.extend(out.events.drain(first_event..));
            }
            out.groups.push(GroupReady {
                group_id,
                incarnation,
                generation: g.generation,
                ready: rd,
                snapshot_data,
                events_early,
            });
        }
        if split {
            out.early_events = out.events.len();
        }
        out.events.append(&mut late);
        self.spare.late_events = late;
        for group_id in changed {
            self.schedule_undecided(group_id);
        }
        for group_id in conf_changed {
            self.sync_members(group_id);
        }
        let requests = std::mem::take(&mut outbox.snapshots);
        if !requests.is_empty() {
            self.start_snapshot_transfers(requests);
        }
        // Chunks and acknowledgements queued by transfers go out too.
        outbox.messages.append(&mut self.outbox.messages);
        out.messages
            .extend(outbox.messages.drain(..).map(|(_, m)| m));
        keep_spare(&mut self.spare.routed, outbox.messages);
        let sender = self.batch_sender();
        heartbeat::flush(
            outbox.mux,
            &mut self.proofs,
            &mut self.compaction,
            sender,
            &mut self.stats,
            &mut out.messages,
        );
        out.early = early;
        for m in out.early.iter().chain(&out.messages) {
            self.stats.on_sent(m.body.kind());
        }
        out
    }

    fn batch_sender(&self) -> heartbeat::Sender {
        heartbeat::Sender {
            id: self.cfg.node_id,
            session: self.session,
            leader_excess: self.balancer.report(),
        }
    }

    /// The heartbeat batches (and their answers) routed since the last
    /// `ready`, now, without a `ready`: what may leave while a pass is
    /// being written. Only rows that depend on nothing undurable are ever
    /// routed there (`Raft::send_durable_messages`), so they may go ahead
    /// of the pass's own messages, as the transport's liveness lane lets
    /// them anyway. Everything else waits for the next `ready`. Callable
    /// between `ready` and `advance`.
    pub fn take_liveness(&mut self) -> Vec<Envelope> {
        let mut out = Vec::new();
        if self.outbox.mux.is_empty() && !self.proofs.owes_report() {
            return out;
        }
        let mux = std::mem::take(&mut self.outbox.mux);
        let sender = self.batch_sender();
        heartbeat::flush(
            mux,
            &mut self.proofs,
            &mut self.compaction,
            sender,
            &mut self.stats,
            &mut out,
        );
        for m in &out {
            self.stats.on_sent(m.body.kind());
        }
        out
    }

    /// The host has persisted, sent and delivered what `rd` asked.
    pub fn advance(&mut self, rd: NodeReady) {
        let NodeReady {
            mut groups,
            early,
            messages,
            events,
            early_events: _,
        } = rd;
        for gr in groups.drain(..) {
            match self.groups.get_mut(gr.group_id) {
                Some(g) if g.generation == gr.generation => {
                    crate::logging::in_group(gr.group_id, || g.raft.advance(&gr.ready));
                    account_unsynced(&mut self.stats, g);
                    // The pass is done for this group: what it changed is
                    // readable by other threads now (`key_metrics.rs`).
                    g.metrics.publish(&g.raft);
                    // More committed entries than one Ready carries, or
                    // messages that waited for this write: the group has
                    // work again.
                    self.touched(gr.group_id);
                }
                _ => {} // removed since; nothing to record
            }
            // Their room serves the next pass's lists.
            entry_lists::give(gr.ready.entries);
            entry_lists::give(gr.ready.committed_entries);
        }
        keep_spare(&mut self.spare.groups, groups);
        keep_spare(&mut self.spare.early, give_entry_lists(early));
        keep_spare(&mut self.spare.messages, give_entry_lists(messages));
        keep_spare(&mut self.spare.events, events);
    }
}

/// May the host hear a group's events of `rd` before `rd` is durable? Only
/// if they tell of nothing it writes: no snapshot (restored with its file),
/// no new term or vote (a role change may follow from it), and every entry
/// handed out to apply below the first one it writes (a follower may be
/// told of a commit in the append that brings the entries; a leader's
/// committed entries are always durable here already).
pub(super) fn events_wait_for_nothing(rd: &raft::Ready) -> bool {
    let written_from = rd.entries.first().map_or(u64::MAX, |e| e.index);
    rd.snapshot.is_none()
        && !rd.term_or_vote_changed
        && rd
            .committed_entries
            .last()
            .map_or(true, |e| e.index < written_from)
}

/// A time proposals were refused with `Busy`, in ticks.
#[derive(Clone, Copy, Debug)]
struct BusySpell {
    since: u64,
    last_refusal: u64,
    /// `proposals_refused_busy` before the spell's first refusal.
    refused_before: u64,
}

/// Backpressure: may group `g` (led here) take a proposal of `len` bytes?
/// Busy if it or the node is at a limit on proposals in flight, or would
/// pass one on bytes not yet durable (one proposal always fits when none
/// are waiting to be written: a limit below `max_proposal_bytes` must not
/// make a proposal impossible).
fn check_pressure(
    cfg: &NodeConfig,
    stats: &Stats,
    group_id: u64,
    g: &Group,
    len: usize,
) -> Result<(), Error> {
    let busy = |what, value, limit| {
        Err(Error::Busy {
            group_id,
            what,
            value,
            limit,
        })
    };
    let pending = g.pending_len();
    if pending >= cfg.max_pending_proposals_per_group {
        return busy(
            "the group's proposals in flight",
            pending,
            cfg.max_pending_proposals_per_group,
        );
    }
    if stats.pending_proposals >= cfg.max_pending_proposals {
        return busy(
            "the node's proposals in flight",
            stats.pending_proposals,
            cfg.max_pending_proposals,
        );
    }
    let len = len as u64;
    let unsynced = g.raft.unstable_payload_bytes();
    if unsynced > 0 && unsynced.saturating_add(len) > cfg.max_unsynced_bytes_per_group {
        return busy(
            "the group's bytes not yet durable",
            unsynced,
            cfg.max_unsynced_bytes_per_group,
        );
    }
    let total = stats.unsynced_bytes;
    if total > 0 && total.saturating_add(len) > cfg.max_unsynced_bytes {
        return busy(
            "the node's bytes not yet durable",
            total,
            cfg.max_unsynced_bytes,
        );
    }
    Ok(())
}

/// Take `n` off a gauge the node keeps by hand. Counts that went wrong
/// would refuse proposals for ever (or never): tests and the simulation
/// check them (`Node::pressure_recounted`), and a release build at least
/// does not wrap.
fn take(gauge: &mut u64, n: u64) {
    debug_assert!(*gauge >= n, "gauge {gauge} below {n}");
    *gauge = gauge.saturating_sub(n);
}

/// Bring the node's count of bytes not yet durable up to date with group
/// `g`'s (after a proposal, and after each pass that made some durable).
/// Entries a follower received count from its next pass on.
fn account_unsynced(stats: &mut Stats, g: &mut Group) {
    let now = g.raft.unstable_payload_bytes();
    take(&mut stats.unsynced_bytes, g.unsynced_counted);
    stats.unsynced_bytes += now;
    g.unsynced_counted = now;
}

/// Tell the host once when a group's log since its last snapshot grew past a
/// threshold. Counted with what this pass hands out (`handed_out`: the last
/// committed entry in it), which the host applies before it reads the hint:
/// counted only from the last `advance`, the hint would come a pass late,
/// naming an index before the host's last, and not at all if the group
/// then went idle.
fn snapshot_hint(
    cfg: &NodeConfig,
    group_id: u64,
    g: &mut Group,
    handed_out: Option<u64>,
) -> Option<Event> {
    if g.hinted {
        return None;
    }
    let s = g.raft.status();
    let applied = handed_out.map_or(s.applied, |i| i.max(s.applied));
    let entries = applied.saturating_sub(g.raft.store().snapshot().index);
    // The whole log: the store as of the last advance, and the entries
    // appended since.
    let bytes = g.raft.store().payload_bytes() + g.raft.unstable_payload_bytes();
    if entries < cfg.snapshot_threshold_entries && bytes < cfg.snapshot_threshold_bytes {
        return None;
    }
    g.hinted = true;
    Some(Event::SnapshotNeeded {
        group_id,
        incarnation: g.incarnation,
        applied,
        entries,
        bytes,
    })
}

/// After an input reached a group: route at once the messages that depend on
/// nothing undurable, and list the group as dirty if it has other work.
fn after_input(
    cfg: &NodeConfig,
    outbox: &mut Outbox,
    dirty: &mut Vec<u64>,
    group_id: u64,
    g: &mut Group,
) {
    let incarnation = g.incarnation;
    g.raft
        .send_durable_messages(|m| outbox.route(cfg.batch_heartbeats, group_id, incarnation, m));
    mark_dirty(dirty, group_id, g);
}

/// List group `g` as dirty if it has work for the next `ready`.
pub(super) fn mark_dirty(dirty: &mut Vec<u64>, group_id: u64, g: &mut Group) {
    // `has_ready` first: it reads cache lines the input just touched, while
    // `dirty` sits on a line of its own, and an idle group is never dirty.
    if g.raft.has_ready() && !g.dirty {
        g.dirty = true;
        dirty.push(group_id);
    }
}

/// The `MembersChanged` to report for membership `m` applied at `index`
/// on this node's replica of `g`: none for an empty one (a snapshot of a
/// joiner that had none), nor for one without this node while it never
/// saw itself listed (a joiner learning what held before it was added: not
/// a removal).
fn members_event(
    group_id: u64,
    g: &mut Group,
    me: u64,
    index: u64,
    m: raft::Membership,
) -> Option<Event> {
    if m.voters.is_empty() {
        return None;
    }
    if m.contains(me) {
        g.reported_self = true;
    } else if !g.reported_self {
        return None;
    }
    Some(Event::MembersChanged {
        group_id,
        incarnation: g.incarnation,
        index,
        members: m.members(),
    })
}

#[cfg(test)]
mod members_event_tests {
    use super::*;
    use crate::raft::{ConfChange, MemStore, MemberRole, Membership, Raft};

    fn joiner() -> Group {
        let raft = Raft::new(crate::raft::Config::new(4), &[], MemStore::new()).unwrap();
        Group::new(7, raft, 1, 1)
    }

    fn listed(e: Option<Event>) -> Option<Vec<u64>> {
        match e? {
            Event::MembersChanged { members, .. } => Some(members.iter().map(|m| m.0).collect()),
            _ => None,
        }
    }

    // Mutation: reporting every membership to a joiner (`reported_self`
    // ignored) tells it, from a snapshot taken before it was added, that
    // it is not a member: what the header calls a removal.
    #[test]
    fn a_joiner_is_not_told_a_membership_from_before_its_addition() {
        let mut g = joiner();
        let before = Membership::with_voters(&[1, 2, 3]);
        assert_eq!(listed(members_event(7, &mut g, 4, 5, before.clone())), None);
        let added = before
            .apply(ConfChange::Add {
                id: 4,
                role: MemberRole::Promotable,
            })
            .unwrap();
        assert_eq!(
            listed(members_event(7, &mut g, 4, 6, added.clone())),
            Some(vec![1, 2, 3, 4])
        );
        // Once it saw itself listed, a membership without it is its
        // removal, and is reported.
        let removed = added.apply(ConfChange::Remove { id: 4 }).unwrap();
        assert_eq!(
            listed(members_event(7, &mut g, 4, 9, removed)),
            Some(vec![1, 2, 3])
        );
        // An empty membership (a joiner's snapshot of nothing) is never
        // reported.
        assert_eq!(
            listed(members_event(7, &mut joiner(), 4, 1, Membership::default())),
            None
        );
    }
}

#[cfg(test)]
mod remove_group_tests {
    use super::*;
    use crate::raft::{HardState, MemStore, SnapshotMeta};

    fn recovered(n: &mut Node, group_id: u64, incarnation: u64) {
        let meta = SnapshotMeta {
            index: 5,
            term: 2,
            voters: vec![1, 2, 3],
            ..Default::default()
        };
        let hs = HardState {
            term: 2,
            vote: 0,
            commit: 5,
        };
        let store = MemStore::restored(hs, meta, 5, 2, Vec::new());
        n.create_group_with_store(group_id, incarnation, &[1, 2, 3], store, 5)
            .unwrap();
        n.restore_snapshot(group_id, Bytes::from_static(b"state"))
            .unwrap();
    }

    // Mutation: a removed group's queued events kept (simulation seed 45):
    // the restore queued by recovery reaches the host as the new replica's.
    #[test]
    fn a_removed_groups_queued_events_never_reach_a_later_replica_of_its_id() {
        let mut n = Node::new(NodeConfig::new(1)).unwrap();
        recovered(&mut n, 9, 1);
        recovered(&mut n, 10, 1);
        n.remove_group(9).unwrap();
        n.create_group(9, 2, &[1, 2, 3]).unwrap();
        let rd = n.ready();
        let about = |g: u64| {
            rd.events
                .iter()
                .filter(|e| match e {
                    Event::Restore { group_id, .. } | Event::MembersChanged { group_id, .. } => {
                        *group_id == g
                    }
                    _ => false,
                })
                .count()
        };
        assert_eq!(about(9), 0, "{:?}", rd.events);
        assert_eq!(
            about(10),
            2,
            "the other group's restore and membership stay"
        );
    }
}

#[cfg(test)]
mod message_room_tests {
    use super::*;
    use crate::raft::{Config, MessageType};

    fn replica() -> Raft<MemStore> {
        Raft::new(Config::new(1), &[1, 2, 3], MemStore::new()).unwrap()
    }

    // Mutation: a list lent over one the replica holds (its waiting
    // messages dropped, or its room leaked), lists kept past either cap
    // (the pool pins a burst's memory), or lent lists never taken back:
    // one of these fails.
    #[test]
    fn message_lists_are_lent_to_replicas_without_one_and_kept_within_caps() {
        let mut spare = Spare::default();
        let mut raft = replica();
        // Nothing to lend yet.
        spare.lend_room(&mut raft);
        assert!(!raft.has_message_room());
        spare.keep_room(Vec::with_capacity(4));
        spare.lend_room(&mut raft);
        assert!(raft.has_message_room());
        assert!(spare.message_room.is_empty());
        // A replica with room keeps its own; the pool keeps its list.
        spare.keep_room(Vec::with_capacity(4));
        spare.lend_room(&mut raft);
        assert_eq!(spare.message_room.len(), 1);
        // The lent list carries what the replica sends, and `ready` hands
        // it over with them.
        raft.campaign();
        let rd = raft.ready();
        assert!(rd
            .messages
            .iter()
            .all(|m| m.msg_type == MessageType::PreVote || m.msg_type == MessageType::Vote));
        assert!(!rd.messages.is_empty());
        assert!(!raft.has_message_room());
        // Lists are emptied when kept; over-large ones and any past the
        // pool's cap are dropped.
        let mut full = Vec::with_capacity(4);
        full.push(Message::new(MessageType::Append, 1, 2, 1));
        spare.keep_room(full);
        assert!(spare.message_room.iter().all(Vec::is_empty));
        spare.keep_room(Vec::with_capacity(ROOM_MESSAGES_MAX + 1));
        spare.keep_room(Vec::new());
        assert_eq!(spare.message_room.len(), 2);
        for _ in 0..ROOM_LISTS_MAX + 10 {
            spare.keep_room(Vec::with_capacity(1));
        }
        assert_eq!(spare.message_room.len(), ROOM_LISTS_MAX);
    }
}
