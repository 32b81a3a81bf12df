//! Snapshots between nodes: a follower behind its leader's compaction point
//! gets the leader's latest snapshot in chunks.
//!
//! The Raft core only says *that* a follower needs a snapshot (it emits a
//! `Snapshot` message naming one, and pauses appends to that follower); the
//! bytes belong to the host and travel here, as [`SnapshotChunk`]s on the
//! bulk lane (never ahead of heartbeats), one chunk in flight per transfer
//! and one transfer per follower. The follower answers each chunk with a
//! [`SnapshotAck`] saying how much it holds, so an interrupted transfer
//! resumes where it stopped, and one whose follower lost its partial copy
//! starts again. Once the follower holds every byte and the CRC-32C of the
//! whole matches, its node steps the `Snapshot` message into the group: the
//! log is replaced, and the next `Ready` asks the host to persist the
//! snapshot and restore its state machine from it before anything later is
//! applied. A transfer without progress for `snapshot_timeout_ticks` is
//! abandoned on both sides (the leader's group probes again and starts a
//! fresh one); that timeout runs while bytes are on their way, not while the
//! follower's host restores.

use bytes::Bytes;

use super::message::{Body, Envelope, SnapshotAck, SnapshotChunk};
use super::node::Node;
use crate::crc32c::crc32c;
use crate::raft::{Message, MessageType, Role, SnapshotMeta};

/// A snapshot a group holds: what the host gave (or the leader sent), for
/// sending on to followers.
#[derive(Clone, Debug)]
pub(crate) struct Held {
    pub meta: SnapshotMeta,
    pub data: Bytes,
    pub crc: u32,
}

impl Held {
    pub fn new(meta: SnapshotMeta, data: Bytes) -> Held {
        let crc = crc32c(&data);
        Held { meta, data, crc }
    }
}

/// A snapshot being received from a leader.
pub(crate) struct Incoming {
    from: u64,
    term: u64,
    meta: SnapshotMeta,
    total: u64,
    crc: u32,
    buf: Vec<u8>,
    last_progress: u64,
}

/// A snapshot being sent to one follower.
pub(crate) struct Outgoing {
    group_id: u64,
    generation: u64,
    /// The leader's term when the transfer started: chunks go out in it,
    /// and only while this node still leads in it.
    term: u64,
    to: u64,
    index: u64,
    last_progress: u64,
}

impl Outgoing {
    pub(super) fn is_for(&self, group_id: u64, to: u64) -> bool {
        self.group_id == group_id && self.to == to
    }
}

impl Node {
    /// The groups' Raft cores asked for snapshots to be sent (gathered by
    /// the outbox): start those transfers.
    pub(super) fn start_snapshot_transfers(&mut self, requests: Vec<(u64, Message)>) {
        for (group_id, m) in requests {
            let Some(g) = self.groups.get_mut(group_id) else {
                continue;
            };
            let wanted = m.snapshot.as_deref().map_or(0, |s| s.index);
            let held = g.snapshot.as_ref().filter(|h| h.meta.index == wanted);
            if held.is_none() {
                // The core names a snapshot whose bytes are not here (cannot
                // happen unless a host took it and lost it): try again later.
                tracing::warn!(group_id, to = m.to, wanted, "snapshot to send is not held");
                g.raft.report_snapshot_failed(m.to);
                continue;
            }
            let generation = g.generation;
            self.transfers
                .retain(|t| !(t.group_id == group_id && t.to == m.to));
            self.transfers.push(Outgoing {
                group_id,
                generation,
                term: m.term,
                to: m.to,
                index: wanted,
                last_progress: self.ticks,
            });
            self.stats.snapshot_transfers_started += 1;
            let bytes = held.map_or(0, |h| h.data.len());
            tracing::info!(
                group_id,
                to = m.to,
                index = wanted,
                bytes,
                "sending a snapshot to a follower behind the log"
            );
            self.send_chunk(group_id, m.term, m.to, 0);
        }
    }

    /// Queue the chunk of group `group_id`'s snapshot starting at `offset`
    /// for follower `to`.
    fn send_chunk(&mut self, group_id: u64, term: u64, to: u64, offset: u64) {
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        let Some(h) = &g.snapshot else {
            return;
        };
        let total = h.data.len() as u64;
        let start = offset.min(total) as usize;
        let end = (offset.saturating_add(self.config().snapshot_chunk_bytes)).min(total) as usize;
        let chunk = SnapshotChunk {
            group_id,
            incarnation: g.incarnation,
            term,
            meta: h.meta.clone(),
            total_len: total,
            crc: h.crc,
            offset: start as u64,
            data: h.data.slice(start..end),
        };
        let env = Envelope {
            from: self.id(),
            to,
            body: Body::SnapshotChunk(chunk),
        };
        self.queue_message(group_id, env);
    }

    /// A chunk from the leader `from`.
    pub(super) fn step_snapshot_chunk(&mut self, from: u64, c: SnapshotChunk) {
        let (ticks, max, me) = (self.ticks, self.config().max_snapshot_bytes, self.id());
        let Some(g) = self.groups.get_mut(c.group_id) else {
            self.stats.messages_dropped += 1;
            return;
        };
        if g.incarnation != c.incarnation {
            self.stats.incarnation_mismatches += 1;
            return;
        }
        if c.term < g.raft.term() {
            return; // a stale leader's; it learns our term otherwise
        }
        let same = g.incoming.as_ref().is_some_and(|i| {
            i.from == from
                && i.term == c.term
                && i.meta == c.meta
                && i.total == c.total_len
                && i.crc == c.crc
        });
        if !same {
            if c.total_len > max {
                tracing::warn!(
                    group_id = c.group_id,
                    bytes = c.total_len,
                    max,
                    "refusing a snapshot over max_snapshot_bytes"
                );
                self.stats.messages_dropped += 1;
                return;
            }
            if g.incoming.is_none() {
                self.receiving.push((c.group_id, g.generation));
            }
            g.incoming = Some(Incoming {
                from,
                term: c.term,
                meta: c.meta.clone(),
                total: c.total_len,
                crc: c.crc,
                buf: Vec::new(),
                last_progress: ticks,
            });
        }
        let Some(inc) = g.incoming.as_mut() else {
            return;
        };
        if c.offset == inc.buf.len() as u64 {
            inc.buf.extend_from_slice(&c.data);
            inc.last_progress = ticks;
        }
        let mut received = inc.buf.len() as u64;
        let (group_id, incarnation, index) = (c.group_id, g.incarnation, c.meta.index);
        if received == inc.total {
            let Some(inc) = g.incoming.take() else {
                return;
            };
            if crc32c(&inc.buf) != inc.crc {
                tracing::warn!(
                    group_id,
                    index,
                    "snapshot failed its CRC; receiving it again"
                );
                self.stats.snapshot_crc_failures += 1;
                received = 0;
            } else {
                let mut m = Message::new(MessageType::Snapshot, from, me, inc.term);
                m.snapshot = Some(Box::new(inc.meta.clone()));
                g.received = Some(Held {
                    meta: inc.meta,
                    data: Bytes::from(inc.buf),
                    crc: inc.crc,
                });
                self.step_row(group_id, Some(incarnation), |r| r.step(m));
            }
        }
        let term = self.groups.get(group_id).map_or(0, |g| g.raft.term());
        let ack = SnapshotAck {
            group_id,
            incarnation,
            term,
            index,
            received,
        };
        let env = Envelope {
            from: me,
            to: from,
            body: Body::SnapshotAck(ack),
        };
        self.queue_message(group_id, env);
    }

    /// A follower's answer to a chunk: send the next one, or the transfer is
    /// done (the follower's Raft core acknowledges the snapshot itself).
    pub(super) fn step_snapshot_ack(&mut self, from: u64, a: SnapshotAck) {
        let Some(pos) = self
            .transfers
            .iter()
            .position(|t| t.group_id == a.group_id && t.to == from && t.index == a.index)
        else {
            return;
        };
        let (generation, term) = (self.transfers[pos].generation, self.transfers[pos].term);
        let Some(g) = self
            .groups
            .get_mut(a.group_id)
            .filter(|g| g.incarnation == a.incarnation && g.generation == generation)
        else {
            // The group is gone (or is another one now).
            self.transfers.swap_remove(pos);
            return;
        };
        if g.raft.role() != Role::Leader || g.raft.term() != term {
            // We no longer lead in the term the transfer began in: a chunk
            // sent now would claim a leadership we do not hold.
            self.transfers.swap_remove(pos);
            return;
        }
        let total = match &g.snapshot {
            Some(h) if h.meta.index == a.index => h.data.len() as u64,
            _ => {
                // The host took a newer snapshot meanwhile: this one cannot
                // be sent on. Probe again, which sends the newer one if the
                // follower still needs it.
                self.transfers.swap_remove(pos);
                g.raft.report_snapshot_failed(from);
                self.touched(a.group_id);
                return;
            }
        };
        if a.received >= total {
            // The follower holds it all: its Raft core installs it and
            // answers, but that answer may be lost; probe after it now.
            self.transfers.swap_remove(pos);
            tracing::debug!(
                group_id = a.group_id,
                to = from,
                index = a.index,
                "snapshot sent"
            );
            g.raft.report_snapshot_sent(from);
            self.touched(a.group_id);
            return;
        }
        self.transfers[pos].last_progress = self.ticks;
        self.send_chunk(a.group_id, term, from, a.received);
    }

    /// Abandon transfers (both ways) without progress for the timeout.
    pub(super) fn expire_snapshot_transfers(&mut self) {
        let (ticks, timeout) = (self.ticks, self.config().snapshot_timeout_ticks);
        let mut failed = Vec::new();
        self.transfers.retain(|t| {
            let live = ticks.saturating_sub(t.last_progress) < timeout;
            if !live {
                failed.push((t.group_id, t.generation, t.to));
            }
            live
        });
        for (group_id, generation, to) in failed {
            self.stats.snapshot_transfers_failed += 1;
            if let Some(g) = self.groups.get_mut(group_id) {
                if g.generation == generation {
                    tracing::warn!(group_id, to, "snapshot transfer stalled; abandoned");
                    g.raft.report_snapshot_failed(to);
                    self.touched(group_id);
                }
            }
        }
        let groups = &mut self.groups;
        self.receiving.retain(|&(group_id, generation)| {
            let Some(g) = groups.get_mut(group_id) else {
                return false;
            };
            if g.generation != generation {
                return false;
            }
            match &g.incoming {
                None => false,
                Some(i) if ticks.saturating_sub(i.last_progress) >= timeout => {
                    g.incoming = None;
                    false
                }
                Some(_) => true,
            }
        });
    }

    /// Are snapshots moving (so ticks must check their timeouts)?
    pub(super) fn has_transfers(&self) -> bool {
        !self.transfers.is_empty() || !self.receiving.is_empty()
    }
}
