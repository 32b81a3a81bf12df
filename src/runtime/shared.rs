use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::multi::{Error, Event, Node, NodeReady, OutFrame};

/// What the host does with each pass of work, in this order: make writes
/// durable, send frames, deliver events.
pub trait Host {
    /// Make `rd.groups[*].ready.{hard_state, entries}` durable. Nothing is
    /// sent until this returns `Ok`. In-memory hosts do nothing.
    fn persist(&mut self, _rd: &NodeReady) -> Result<(), Error> {
        Ok(())
    }
    fn send(&mut self, frame: &OutFrame);
    fn event(&mut self, ev: &Event);
}

thread_local! {
    /// Nodes this thread is driving right now (innermost last). A call that
    /// arrives from inside one of their callbacks only queues its input: the
    /// drive loop already running below it picks the work up.
    static DRIVING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// A node shared between threads, with one drive loop at a time.
pub struct SharedNode {
    node: Mutex<Node>,
    /// Held by the thread running the drive loop, so that only one
    /// `NodeReady` is outstanding and callbacks are never delivered by two
    /// threads at once (entries stay in order).
    driving: Mutex<()>,
    /// Set when a panic escaped the node's code: its state can no longer be
    /// trusted, so every later call is refused.
    poisoned: AtomicBool,
    /// Groups removed so far: when it moves during a pass (a callback
    /// removed a group), the pass's remaining events are checked against
    /// the groups still hosted.
    removals: AtomicU64,
}

struct DriveGuard(usize);

impl Drop for DriveGuard {
    fn drop(&mut self) {
        DRIVING.with(|d| {
            let mut d = d.borrow_mut();
            if let Some(pos) = d.iter().rposition(|&x| x == self.0) {
                d.remove(pos);
            }
        });
    }
}

impl SharedNode {
    pub fn new(node: Node) -> SharedNode {
        SharedNode {
            node: Mutex::new(node),
            driving: Mutex::new(()),
            poisoned: AtomicBool::new(false),
            removals: AtomicU64::new(0),
        }
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    /// A group was removed (see `removals`).
    pub fn note_removal(&self) {
        self.removals.fetch_add(1, Ordering::AcqRel);
    }

    /// Run `f` on the node under its lock. Keep `f` short: it blocks every
    /// other caller.
    pub fn with<R>(&self, f: impl FnOnce(&mut Node) -> R) -> R {
        f(&mut self.node.lock())
    }

    fn key(&self) -> usize {
        self as *const SharedNode as usize
    }

    /// Is this thread inside this node's drive loop (i.e. in a callback)?
    pub fn in_callback(&self) -> bool {
        let k = self.key();
        DRIVING.with(|d| d.borrow().contains(&k))
    }

    /// Run `f` on the node with no drive pass in flight: a `NodeReady` taken
    /// but not yet persisted would otherwise still carry writes for
    /// whatever `f` changes (a group being removed). From inside a callback
    /// the pass in flight is this thread's own and already persisted.
    pub fn exclusive<R>(&self, f: impl FnOnce(&mut Node) -> R) -> R {
        if self.in_callback() {
            return self.with(f);
        }
        let _no_pass = self.driving.lock();
        self.with(f)
    }

    /// Process work until there is none: persist, send, deliver events,
    /// advance. Called after every input. It never waits for another
    /// thread's callbacks: if this node is already being driven (by this
    /// thread, from inside a callback, or by another thread), the running
    /// loop picks the new work up and this returns at once. The node lock is
    /// never held while the host is called back.
    pub fn drive(&self, host: &mut dyn Host) -> Result<(), Error> {
        if self.in_callback() {
            return Ok(());
        }
        loop {
            let Some(one_driver) = self.driving.try_lock() else {
                // The driver re-checks for work after it lets go, so work
                // queued now is not stranded.
                return Ok(());
            };
            self.drive_locked(host)?;
            drop(one_driver);
            if !self.node.lock().has_ready() {
                return Ok(());
            }
        }
    }

    /// Is `ev` about a group a callback removed during this pass (so that a
    /// group created again under its id would be told the old one's
    /// news)? Outcomes of proposals are always delivered: each is owed
    /// exactly once.
    fn is_stale(&self, ev: &Event) -> bool {
        let (group_id, incarnation) = match ev {
            Event::Applied {
                group_id,
                incarnation,
                ..
            }
            | Event::RoleChanged {
                group_id,
                incarnation,
                ..
            } => (*group_id, *incarnation),
            Event::ProposalDone { .. } => return false,
        };
        self.node.lock().group_incarnation(group_id) != Some(incarnation)
    }

    fn drive_locked(&self, host: &mut dyn Host) -> Result<(), Error> {
        DRIVING.with(|d| d.borrow_mut().push(self.key()));
        let _guard = DriveGuard(self.key());
        loop {
            let (rd, removals) = {
                let mut n = self.node.lock();
                if !n.has_ready() {
                    return Ok(());
                }
                (n.ready(), self.removals.load(Ordering::Acquire))
            };
            host.persist(&rd)?;
            for f in &rd.frames {
                host.send(f);
            }
            for ev in &rd.events {
                if self.removals.load(Ordering::Acquire) != removals && self.is_stale(ev) {
                    continue;
                }
                host.event(ev);
            }
            self.node.lock().advance(rd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multi::NodeConfig;
    use bytes::Bytes;
    use std::sync::Arc;

    struct Recorder<'a> {
        shared: &'a SharedNode,
        applied: Vec<u64>,
        proposed_inside: bool,
    }

    impl Host for Recorder<'_> {
        fn send(&mut self, _frame: &OutFrame) {}
        fn event(&mut self, ev: &Event) {
            if let Event::Applied {
                group_id, index, ..
            } = ev
            {
                self.applied.push(*index);
                // Propose from inside the callback: must neither deadlock
                // nor be applied out of order.
                if !self.proposed_inside {
                    self.proposed_inside = true;
                    self.shared
                        .with(|n| n.propose(*group_id, Bytes::from_static(b"again")))
                        .unwrap();
                    self.shared.drive(&mut NoHost).unwrap();
                }
            }
        }
    }

    struct NoHost;
    impl Host for NoHost {
        fn send(&mut self, _: &OutFrame) {}
        fn event(&mut self, _: &Event) {}
    }

    #[test]
    fn proposing_from_inside_apply_neither_deadlocks_nor_reorders() {
        let mut node = Node::new(NodeConfig::new(1)).unwrap();
        node.create_group(1, 1, &[1]).unwrap();
        let shared = Arc::new(SharedNode::new(node));
        shared.with(|n| n.campaign(1)).unwrap();
        shared.drive(&mut NoHost).unwrap();
        shared
            .with(|n| n.propose(1, Bytes::from_static(b"first")))
            .unwrap();
        let mut rec = Recorder {
            shared: &shared,
            applied: Vec::new(),
            proposed_inside: false,
        };
        shared.drive(&mut rec).unwrap();
        assert!(rec.proposed_inside);
        // index 1 is the leader's no-op; 2 = "first", 3 = "again".
        assert_eq!(rec.applied, vec![2, 3]);
    }
}
