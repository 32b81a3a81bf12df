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
//!
//! Every row belongs to one incarnation of its group (a group id can be
//! removed and created again). The mux keeps each row's incarnation, and
//! the node proves them to the receiver with one digest per batch, or one
//! incarnation per row after the receiver reported a mismatch (see
//! [`Incarnations`](crate::wire::Incarnations)).

use crate::raft::{Message, MessageType};
use crate::wire::{GroupHeartbeat, GroupHeartbeatResponse};

/// One list per peer node, in peer order.
pub(crate) type PerPeer<T> = Vec<(u64, Vec<T>)>;

/// A row and the incarnation of the group that produced it.
pub(crate) type Row<T> = (T, u64);

/// Heartbeats and answers bound for each peer during one `ready` pass.
#[derive(Default)]
pub(crate) struct HeartbeatMux {
    beats: PeerLists<Row<GroupHeartbeat>>,
    answers: PeerLists<Row<GroupHeartbeatResponse>>,
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
    fn push(&mut self, peer: u64, item: T) {
        if self.lists.get(self.last).map(|(p, _)| *p) != Some(peer) {
            self.last = match self.lists.iter().position(|(p, _)| *p == peer) {
                Some(i) => i,
                None => {
                    self.lists.push((peer, Vec::new()));
                    self.lists.len() - 1
                }
            };
        }
        self.lists[self.last].1.push(item);
    }

    fn is_empty(&self) -> bool {
        self.lists.is_empty()
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
                let row = GroupHeartbeat {
                    group_id,
                    term: m.term,
                    commit: m.commit,
                };
                self.beats.push(m.to, (row, incarnation));
                true
            }
            MessageType::HeartbeatResponse => {
                let row = GroupHeartbeatResponse {
                    group_id,
                    term: m.term,
                };
                self.answers.push(m.to, (row, incarnation));
                true
            }
            _ => false,
        }
    }

    /// A response batch goes to `peer` in this pass even if it carries no
    /// row (it has something to report).
    pub fn ensure_answer_to(&mut self, peer: u64) {
        self.answers.ensure(peer);
    }

    /// Forget every row of `group_id` (the group was removed: nothing of
    /// it may leave any more).
    pub fn purge(&mut self, group_id: u64) {
        self.beats.retain(|(r, _)| r.group_id != group_id);
        self.answers.retain(|(r, _)| r.group_id != group_id);
    }

    /// The batches, one per peer and kind, each sorted by group. Rows mostly
    /// arrive sorted already (ticks visit groups in creation order, which is
    /// usually id order, and a batch's answers come in the batch's order), so
    /// sorting is usually one linear pass. A group that produced two
    /// heartbeats for one peer in a pass keeps only its last (a later one
    /// supersedes: terms only grow and commit only advances).
    pub fn finish(
        self,
    ) -> (
        PerPeer<Row<GroupHeartbeat>>,
        PerPeer<Row<GroupHeartbeatResponse>>,
    ) {
        (
            self.beats.finish(|(h, _)| h.group_id),
            self.answers.finish(|(h, _)| h.group_id),
        )
    }
}

fn keep_last_per_group<T>(v: &mut Vec<T>, key: impl Fn(&T) -> u64) {
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
                        70
                    ),
                    (
                        GroupHeartbeat {
                            group_id: 9,
                            term: 1,
                            commit: 1
                        },
                        90
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
