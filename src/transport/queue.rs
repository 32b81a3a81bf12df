//! One peer's outbound queues: priority frames (heartbeat batches and their
//! answers) and bulk frames (everything else), with the byte bound.

use std::collections::VecDeque;

use bytes::Bytes;

/// The frames waiting for one peer. The writer always takes a priority frame
/// when there is one, so a priority frame waits at most for the frame being
/// written when it was queued.
#[derive(Default)]
pub(crate) struct OutQueue {
    priority: VecDeque<Bytes>,
    bulk: VecDeque<Bytes>,
    priority_bytes: usize,
    bulk_bytes: usize,
}

impl OutQueue {
    /// Queues a frame unless it is over the bound; returns whether it was
    /// queued.
    ///
    /// A bulk frame must fit, with everything already queued, in `max`. A
    /// priority frame must too while the peer is down (`connected` false);
    /// while it is connected, a priority frame is never refused because of
    /// bulk frames, only when priority frames alone would exceed `max` (a
    /// connected peer that has not read 64 MiB of heartbeats is as good as
    /// down).
    pub fn push(&mut self, frame: Bytes, priority: bool, connected: bool, max: usize) -> bool {
        let len = frame.len();
        let total = self.priority_bytes + self.bulk_bytes;
        if priority {
            let used = if connected {
                self.priority_bytes
            } else {
                total
            };
            if used.saturating_add(len) > max {
                return false;
            }
            self.priority_bytes += len;
            self.priority.push_back(frame);
        } else {
            if total.saturating_add(len) > max {
                return false;
            }
            self.bulk_bytes += len;
            self.bulk.push_back(frame);
        }
        true
    }

    /// Puts back at the front a frame that was taken but not written at all,
    /// whatever the bound (it was within it when queued).
    pub fn push_front(&mut self, frame: Bytes, priority: bool) {
        if priority {
            self.priority_bytes += frame.len();
            self.priority.push_front(frame);
        } else {
            self.bulk_bytes += frame.len();
            self.bulk.push_front(frame);
        }
    }

    /// The next frame to write, and whether it is a priority frame.
    pub fn pop(&mut self) -> Option<(Bytes, bool)> {
        if let Some(frame) = self.priority.pop_front() {
            self.priority_bytes -= frame.len();
            return Some((frame, true));
        }
        let frame = self.bulk.pop_front()?;
        self.bulk_bytes -= frame.len();
        Some((frame, false))
    }

    /// The next frame to write, as [`OutQueue::pop`], if it is at most
    /// `room` bytes long or `any` is set; `None` leaves it queued.
    pub fn pop_within(&mut self, room: usize, any: bool) -> Option<(Bytes, bool)> {
        let next = self.priority.front().or_else(|| self.bulk.front())?;
        if !any && next.len() > room {
            return None;
        }
        self.pop()
    }

    /// Bytes queued in both queues.
    pub fn queued_bytes(&self) -> usize {
        self.priority_bytes + self.bulk_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, len: usize) -> Bytes {
        Bytes::from(vec![tag; len])
    }

    #[test]
    fn priority_frames_come_out_first_and_each_queue_keeps_its_order() {
        let mut q = OutQueue::default();
        assert!(q.push(frame(1, 10), false, true, 1000));
        assert!(q.push(frame(2, 10), false, true, 1000));
        assert!(q.push(frame(3, 10), true, true, 1000));
        assert!(q.push(frame(4, 10), true, true, 1000));
        let order: Vec<(u8, bool)> = std::iter::from_fn(|| q.pop())
            .map(|(f, p)| (f[0], p))
            .collect();
        assert_eq!(order, [(3, true), (4, true), (1, false), (2, false)]);
        assert_eq!(q.queued_bytes(), 0);
    }

    #[test]
    fn bulk_frames_over_the_bound_are_refused() {
        let mut q = OutQueue::default();
        assert!(q.push(frame(1, 60), false, true, 100));
        assert!(!q.push(frame(2, 41), false, true, 100));
        assert!(q.push(frame(3, 40), false, true, 100));
        assert_eq!(q.queued_bytes(), 100);
        // Priority frames fill the same bound for bulk frames.
        let mut q = OutQueue::default();
        assert!(q.push(frame(1, 60), true, true, 100));
        assert!(!q.push(frame(2, 41), false, true, 100));
    }

    #[test]
    fn priority_frames_ignore_bulk_while_connected_but_not_while_down() {
        let mut q = OutQueue::default();
        assert!(q.push(frame(1, 100), false, true, 100));
        assert!(q.push(frame(2, 50), true, true, 100));
        assert!(q.push(frame(3, 50), true, true, 100));
        assert!(
            !q.push(frame(4, 1), true, true, 100),
            "priority budget full"
        );
        let mut q = OutQueue::default();
        assert!(q.push(frame(1, 100), false, false, 100));
        assert!(!q.push(frame(2, 1), true, false, 100), "peer down: bounded");
    }

    #[test]
    fn push_front_restores_a_taken_frame_first() {
        let mut q = OutQueue::default();
        assert!(q.push(frame(1, 10), false, true, 100));
        assert!(q.push(frame(2, 10), false, true, 100));
        let (f, p) = q.pop().expect("a frame");
        q.push_front(f, p);
        assert_eq!(q.queued_bytes(), 20);
        assert_eq!(q.pop().map(|(f, _)| f[0]), Some(1));
        assert_eq!(q.pop().map(|(f, _)| f[0]), Some(2));
    }
}
