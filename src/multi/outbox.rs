//! Where a node's outgoing messages wait for the next `ready`: heartbeats
//! and their answers as rows of the per-peer batches (`heartbeat.rs`), every
//! other message as its own envelope, each with the group it belongs to so
//! that removing a group takes back what it has not sent yet.

use super::heartbeat::HeartbeatMux;
use super::message::{Body, Envelope};
use crate::raft::{Message, MessageType};

#[derive(Default)]
pub(crate) struct Outbox {
    pub mux: HeartbeatMux,
    /// Group messages (not batched), with their group id, in send order.
    pub messages: Vec<(u64, Envelope)>,
    /// Snapshots the groups' Raft cores asked to send (`snapshot.rs`
    /// turns each into a transfer of chunks).
    pub snapshots: Vec<(u64, Message)>,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.mux.is_empty() && self.snapshots.is_empty()
    }

    /// Route one message of group replica (`group_id`, `incarnation`): into
    /// a heartbeat batch (batched mode) or an envelope of its own.
    pub fn route(&mut self, batch_heartbeats: bool, group_id: u64, incarnation: u64, m: Message) {
        if batch_heartbeats && self.mux.offer(group_id, incarnation, &m) {
            return;
        }
        if m.msg_type == MessageType::Snapshot {
            self.snapshots.push((group_id, m));
            return;
        }
        self.messages
            .push((group_id, group_envelope(group_id, incarnation, m)));
    }

    /// Take back everything of a removed group that has not left yet.
    pub fn purge(&mut self, group_id: u64) {
        self.messages.retain(|(g, _)| *g != group_id);
        self.snapshots.retain(|(g, _)| *g != group_id);
        self.mux.purge(group_id);
    }
}

/// Message `m` of group replica (`group_id`, `incarnation`), as the
/// envelope it travels in on its own.
pub(crate) fn group_envelope(group_id: u64, incarnation: u64, m: Message) -> Envelope {
    Envelope {
        from: m.from,
        to: m.to,
        body: Body::Group {
            group_id,
            incarnation,
            msg: m,
        },
    }
}
