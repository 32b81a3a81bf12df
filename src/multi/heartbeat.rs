//! The heartbeat mux and demux: the reason muxraft exists.
//!
//! Sending side (mux): once per heartbeat interval the node asks every group
//! it leads for its heartbeats (`Raft::broadcast_heartbeat`); when the node
//! routes the resulting messages, every `Heartbeat` bound for peer P is
//! packed into P's one `HeartbeatBatch`, and every `HeartbeatResponse` into
//! P's one `HeartbeatBatchResponse`. A per-group heartbeat carries only
//! (group, term, commit), where the group already clamped commit to the
//! follower's match, so nothing is lost by dropping the rest of the message.
//!
//! Receiving side (demux): each entry of a batch becomes exactly the
//! `Heartbeat` (or `HeartbeatResponse`) message a stand-alone heartbeat would
//! have been, stepped into its group. An entry for a group this node does not
//! host is dropped for that group alone.

use std::collections::BTreeMap;

use crate::raft::{Message, MessageType};
use crate::wire::{GroupHeartbeat, GroupHeartbeatResponse};

/// One list per peer node, in peer order.
pub(crate) type PerPeer<T> = Vec<(u64, Vec<T>)>;

/// Heartbeats and answers bound for each peer during one `ready` pass.
#[derive(Default)]
pub(crate) struct HeartbeatMux {
    beats: BTreeMap<u64, Vec<GroupHeartbeat>>,
    answers: BTreeMap<u64, Vec<GroupHeartbeatResponse>>,
}

impl HeartbeatMux {
    /// Take `m` into a batch if it is a heartbeat or its answer; give it
    /// back otherwise.
    pub fn offer(&mut self, group_id: u64, m: Message) -> Option<Message> {
        match m.msg_type {
            MessageType::Heartbeat => {
                self.beats.entry(m.to).or_default().push(GroupHeartbeat {
                    group_id,
                    term: m.term,
                    commit: m.commit,
                });
                None
            }
            MessageType::HeartbeatResponse => {
                self.answers
                    .entry(m.to)
                    .or_default()
                    .push(GroupHeartbeatResponse {
                        group_id,
                        term: m.term,
                    });
                None
            }
            _ => Some(m),
        }
    }

    /// The batches, one per peer and kind. Groups are visited in id order, so
    /// each list is sorted; a group that produced two heartbeats for one peer
    /// in a pass keeps only its last (a later one supersedes: terms only
    /// grow and commit only advances).
    pub fn finish(self) -> (PerPeer<GroupHeartbeat>, PerPeer<GroupHeartbeatResponse>) {
        let beats = self
            .beats
            .into_iter()
            .map(|(peer, mut v)| {
                keep_last_per_group(&mut v, |h| h.group_id);
                (peer, v)
            })
            .collect();
        let answers = self
            .answers
            .into_iter()
            .map(|(peer, mut v)| {
                keep_last_per_group(&mut v, |h| h.group_id);
                (peer, v)
            })
            .collect();
        (beats, answers)
    }
}

fn keep_last_per_group<T>(v: &mut Vec<T>, key: impl Fn(&T) -> u64) {
    // Stable sort keeps emission order within a group; then keep the last.
    v.sort_by_key(&key);
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for item in v.drain(..) {
        match out.last_mut() {
            Some(last) if key(last) == key(&item) => *last = item,
            _ => out.push(item),
        }
    }
    *v = out;
}

/// The stand-alone heartbeat that batch entry `h` from node `from` stands
/// for.
pub(crate) fn heartbeat_message(from: u64, to: u64, h: &GroupHeartbeat) -> Message {
    let mut m = Message::new(MessageType::Heartbeat, from, to, h.term);
    m.commit = h.commit;
    m
}

/// The stand-alone heartbeat answer that response entry `h` stands for.
pub(crate) fn heartbeat_response_message(
    from: u64,
    to: u64,
    h: &GroupHeartbeatResponse,
) -> Message {
    Message::new(MessageType::HeartbeatResponse, from, to, h.term)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mux_packs_per_peer_and_keeps_the_last_heartbeat_of_a_group() {
        let mut mux = HeartbeatMux::default();
        let hb = |to, term, commit| {
            let mut m = Message::new(MessageType::Heartbeat, 1, to, term);
            m.commit = commit;
            m
        };
        assert!(mux.offer(7, hb(2, 3, 10)).is_none());
        assert!(mux.offer(7, hb(3, 3, 9)).is_none());
        assert!(mux.offer(9, hb(2, 1, 1)).is_none());
        assert!(mux.offer(7, hb(2, 4, 11)).is_none());
        let append = Message::new(MessageType::Append, 1, 2, 3);
        assert!(mux.offer(7, append).is_some(), "appends are not batched");
        let (beats, answers) = mux.finish();
        assert!(answers.is_empty());
        assert_eq!(beats.len(), 2);
        assert_eq!(
            beats[0],
            (
                2,
                vec![
                    GroupHeartbeat {
                        group_id: 7,
                        term: 4,
                        commit: 11
                    },
                    GroupHeartbeat {
                        group_id: 9,
                        term: 1,
                        commit: 1
                    }
                ]
            )
        );
        assert_eq!(beats[1].1.len(), 1);
    }
}
