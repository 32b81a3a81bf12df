//! The drive loop: take the node's `NodeReady`, make its writes durable,
//! send its messages, deliver its events, advance; again until there is no
//! work. [`SharedNode`] runs it for a node shared between threads, where
//! inputs may come from any thread and from inside the host's callbacks.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use super::codec::{encode_all, OutFrame};
use super::disk::Disk;
use super::elections::ElectionRate;
use super::error::Error;
use super::host::Host;
use crate::multi::{Event, FrameKind, Node};

/// Where one node's passes go: its WAL (if any), where encoded frames are
/// sent, and the host that hears the events; and what a pass steps into
/// the node, under its lock, right before it takes a `ready` (the
/// embedded writer's frames: appends and their answers that arrived while
/// the previous pass was being written).
pub(crate) struct Pass<'a> {
    pub disk: Option<&'a Disk>,
    pub send: &'a dyn Fn(OutFrame),
    pub host: &'a dyn Host,
    pub inbound: Option<&'a dyn Fn(&mut Node)>,
}

thread_local! {
    /// Nodes this thread is driving right now (innermost last). A call that
    /// arrives from inside one of their callbacks only queues its input: the
    /// drive loop already running below it picks the work up.
    static DRIVING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

const HEALTHY: u8 = 0;
const STORAGE_FAILED: u8 = 1;
const PANICKED: u8 = 2;

/// A node shared between threads, with one drive loop at a time.
pub(crate) struct SharedNode {
    node: Mutex<Node>,
    /// Held by the thread running the drive loop, so that only one
    /// `NodeReady` is outstanding and callbacks are never delivered by two
    /// threads at once (entries stay in order).
    driving: Mutex<()>,
    /// Why the node refuses all work, if it does: a failed write (what
    /// reached the disk is unknown) or a caught panic (its state can no
    /// longer be trusted).
    failure: AtomicU8,
    /// Groups removed so far: when it moves during a pass (a callback
    /// removed a group), the pass's remaining events are checked against
    /// the groups still hosted.
    removals: AtomicU64,
    /// Elections per second, for the log.
    elections: Mutex<ElectionRate>,
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
            failure: AtomicU8::new(HEALTHY),
            removals: AtomicU64::new(0),
            elections: Mutex::new(ElectionRate::new(Instant::now(), 0)),
        }
    }

    /// `Ok` while the node accepts work; the reason it refuses otherwise.
    pub fn check(&self) -> Result<(), Error> {
        match self.failure.load(Ordering::Acquire) {
            HEALTHY => Ok(()),
            STORAGE_FAILED => Err(Error::Failed),
            _ => Err(Error::Panicked),
        }
    }

    /// A panic escaped the node's code: refuse everything from now on.
    pub fn poison(&self) {
        self.failure.store(PANICKED, Ordering::Release);
    }

    pub fn fail_storage(&self) {
        let _ = self.failure.compare_exchange(
            HEALTHY,
            STORAGE_FAILED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// A group was removed (see `removals`).
    pub fn note_removal(&self) {
        self.removals.fetch_add(1, Ordering::AcqRel);
    }

    /// One tick of the node's timers; once a second, a log line if the
    /// node started elections (`elections.rs`).
    pub fn tick(&self) {
        let elections = self.with(|n| {
            n.tick();
            n.stats().elections_started
        });
        self.elections.lock().log(Instant::now(), elections);
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
    /// the pass in flight is this thread's own and its WAL batch already
    /// written: if `f` writes to the WAL, that write syncs the batch first
    /// (`Wal::write_unsynced`), so what `f` records lands after it.
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
    /// never held while the host is called back. A failed write fails the
    /// node ([`Error::Failed`] from then on).
    pub fn drive(&self, pass: &Pass) -> Result<(), Error> {
        if self.in_callback() {
            return Ok(());
        }
        loop {
            self.check()?;
            let Some(one_driver) = self.driving.try_lock() else {
                // The driver re-checks for work after it lets go, so work
                // queued now is not stranded.
                return Ok(());
            };
            let r = self.drive_locked(pass);
            drop(one_driver);
            if let Err(e) = r {
                if matches!(e, Error::Storage(_)) {
                    self.fail_storage();
                }
                return Err(e);
            }
            if !self.node.lock().has_ready() {
                return Ok(());
            }
        }
    }

    fn drive_locked(&self, pass: &Pass) -> Result<(), Error> {
        DRIVING.with(|d| d.borrow_mut().push(self.key()));
        let _guard = DriveGuard(self.key());
        loop {
            let (rd, removals, cluster_id) = {
                let mut n = self.node.lock();
                // No pass in flight: the node's store is the durable log,
                // which upkeep may rewrite forward. Between every two
                // passes, not only once the node is idle: a node that
                // always has work (a host proposing from its callbacks, an
                // embedded node proposed to faster than it syncs) would
                // otherwise never delete a segment. Cheap when nothing
                // changed.
                if let Some(disk) = pass.disk {
                    disk.upkeep(&n)?;
                }
                if let Some(inbound) = pass.inbound {
                    inbound(&mut n);
                }
                if !n.has_ready() {
                    return Ok(());
                }
                let cluster_id = n.config().cluster_id;
                (n.ready(), self.removals.load(Ordering::Acquire), cluster_id)
            };
            // 0. A leader's appends go out while it writes its own log.
            let mut bytes = [0usize; FrameKind::COUNT];
            for f in encode_all(cluster_id, &rd.early, &mut bytes) {
                (pass.send)(f);
            }
            // 1. Durable first: one write and one fsync for every group.
            // Between the two, the events that depend on nothing this pass
            // writes: a leader tells of its commits without waiting for
            // the fsync of entries they are not part of. Whatever their
            // callbacks write to the WAL (a group removed, a snapshot's
            // compaction) syncs this pass's batch first and lands after it,
            // as when the host hears of it after the whole write.
            if let Some(disk) = pass.disk {
                disk.persist_unsynced(&rd)?;
            }
            let (early_events, late_events) = rd.events.split_at(rd.early_events);
            self.deliver(pass, early_events, removals);
            if let Some(disk) = pass.disk {
                disk.sync()?;
            }
            // 2. Then what depended on it.
            for f in encode_all(cluster_id, &rd.messages, &mut bytes) {
                (pass.send)(f);
            }
            // 3. Then tell the host the rest.
            self.deliver(pass, late_events, removals);
            // 4. Done.
            let mut n = self.node.lock();
            for kind in FrameKind::ALL {
                if bytes[kind as usize] > 0 {
                    n.record_bytes_sent(kind, bytes[kind as usize]);
                }
            }
            n.advance(rd);
        }
    }

    /// Tell the host `events`, in order, but those about a group a callback
    /// removed since the pass began (`removals` then).
    fn deliver(&self, pass: &Pass, events: &[Event], removals: u64) {
        for ev in events {
            if self.removals.load(Ordering::Acquire) != removals && self.is_stale(ev) {
                continue;
            }
            pass.host.event(ev);
        }
    }

    /// Is `ev` about a group a callback removed during this pass (so that a
    /// group created again under its id would be told the old one's
    /// news)? Outcomes of proposals and reads are always delivered: each is
    /// owed exactly once.
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
            }
            | Event::Restore {
                group_id,
                incarnation,
                ..
            }
            | Event::SnapshotNeeded {
                group_id,
                incarnation,
                ..
            }
            | Event::MembersChanged {
                group_id,
                incarnation,
                ..
            } => (*group_id, *incarnation),
            Event::ProposalDone { .. } | Event::ReadDone { .. } => return false,
        };
        self.node.lock().group_incarnation(group_id) != Some(incarnation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multi::NodeConfig;
    use bytes::Bytes;
    use std::sync::Arc;

    struct Recorder {
        shared: Arc<SharedNode>,
        applied: Mutex<Vec<u64>>,
    }

    impl Host for Recorder {
        fn send(&self, _to: u64, _frame: &[u8], _liveness: bool) {}
        fn event(&self, ev: &Event) {
            if let Event::Applied {
                group_id, index, ..
            } = ev
            {
                let first = {
                    let mut a = self.applied.lock();
                    a.push(*index);
                    a.len() == 1
                };
                // Propose from inside the callback: must neither deadlock
                // nor be applied out of order.
                if first {
                    self.shared
                        .with(|n| n.propose(*group_id, Bytes::from_static(b"again")))
                        .unwrap();
                    self.shared.drive(&no_pass(self)).unwrap();
                }
            }
        }
    }

    fn no_pass(host: &dyn Host) -> Pass<'_> {
        Pass {
            disk: None,
            send: &|_| {},
            host,
            inbound: None,
        }
    }

    /// A node leading a group of one, its first pass done (the leader's
    /// no-op applied), with a recorder as its host.
    fn one_leader() -> (Arc<SharedNode>, Recorder) {
        let mut node = Node::new(NodeConfig::new(1)).unwrap();
        node.create_group(1, 1, &[1]).unwrap();
        let shared = Arc::new(SharedNode::new(node));
        shared.with(|n| n.campaign(1)).unwrap();
        let rec = Recorder {
            shared: shared.clone(),
            applied: Mutex::new(Vec::new()),
        };
        shared.drive(&no_pass(&rec)).unwrap();
        (shared, rec)
    }

    // Mutation: stepping `inbound` after the `has_ready` check (or not at
    // all) leaves the proposal it makes for a later pass, and this fails.
    #[test]
    fn a_pass_steps_its_inbound_work_before_it_takes_the_ready() {
        let (shared, rec) = one_leader();
        // Nothing else to do: only the inbound step gives the pass work.
        assert!(!shared.with(|n| n.has_ready()));
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let inbound = |n: &mut Node| {
            if calls.fetch_add(1, Ordering::Relaxed) == 0 {
                n.propose(1, Bytes::from_static(b"stepped")).unwrap();
            }
        };
        let pass = Pass {
            inbound: Some(&inbound),
            ..no_pass(&rec)
        };
        shared.drive(&pass).unwrap();
        // index 1 is the leader's no-op; 2 = "stepped", 3 = "again" (the
        // recorder's own proposal, from inside the first apply).
        assert_eq!(*rec.applied.lock(), vec![2, 3]);
    }

    /// A host that removes group 2 when told group 1 applied "x", as a
    /// broker deleting a queue from inside its apply callback would.
    struct Remover<'a> {
        shared: &'a SharedNode,
        disk: &'a Disk,
        removed: Mutex<Option<Result<(), Error>>>,
    }

    impl Host for Remover<'_> {
        fn send(&self, _to: u64, _frame: &[u8], _liveness: bool) {}
        fn event(&self, ev: &Event) {
            if let Event::Applied {
                group_id: 1, data, ..
            } = ev
            {
                if data.as_ref() == b"x" {
                    let r = crate::runtime::remove_group(self.shared, Some(self.disk), 2);
                    *self.removed.lock() = Some(r);
                }
            }
        }
    }

    // Mutation: delivering the early events before the pass's batch is
    // written puts the removal record ahead of group 2's entries, and the
    // WAL refuses the batch (the node fails with a storage error).
    #[test]
    fn a_group_removed_from_inside_an_early_event_is_removed_after_the_pass_that_wrote_to_it() {
        use crate::storage::{MemFs, StorageOptions, WalBatch};
        let fs = Arc::new(MemFs::new(7));
        let dir = std::path::Path::new("/data");
        let (disk, _) = Disk::open(dir, fs.clone(), StorageOptions::default()).unwrap();
        let mut node = Node::new(NodeConfig::new(1)).unwrap();
        let mut batch = WalBatch::default();
        for g in [1, 2] {
            node.create_group(g, 1, &[1]).unwrap();
            batch.create_group(g, 1, &[1]);
        }
        disk.write(&batch).unwrap();
        let shared = SharedNode::new(node);
        let host = Remover {
            shared: &shared,
            disk: &disk,
            removed: Mutex::new(None),
        };
        let pass = Pass {
            disk: Some(&disk),
            ..no_pass(&host)
        };
        for g in [1, 2] {
            shared.with(|n| n.campaign(g)).unwrap();
        }
        shared.drive(&pass).unwrap();
        // Group 1 takes "x"; the pass that tells it committed also writes
        // group 2's "y", proposed right before that pass's ready.
        shared
            .with(|n| n.propose(1, Bytes::from_static(b"x")))
            .unwrap();
        let passes = std::sync::atomic::AtomicUsize::new(0);
        let inbound = |n: &mut Node| {
            if passes.fetch_add(1, Ordering::Relaxed) == 1 {
                n.propose(2, Bytes::from_static(b"y")).unwrap();
            }
        };
        let pass = Pass {
            inbound: Some(&inbound),
            ..pass
        };
        shared.drive(&pass).unwrap();
        assert!(matches!(*host.removed.lock(), Some(Ok(()))));
        assert_eq!(shared.with(|n| n.group_incarnation(2)), None);
        disk.close();
        drop(host);
        drop(disk);
        // Recovery: group 2's entries, then its removal; group 1 has "x".
        let (_, recovered) = Disk::open(dir, fs, StorageOptions::default()).unwrap();
        assert_eq!(
            recovered.groups.keys().copied().collect::<Vec<_>>(),
            vec![1]
        );
        let store = &recovered.groups[&1].store;
        let last = crate::raft::LogStore::last_index(store);
        let data = crate::raft::LogStore::entries(store, last, last + 1, u64::MAX).unwrap();
        assert_eq!(data[0].data.as_ref(), b"x");
    }

    #[test]
    fn proposing_from_inside_apply_neither_deadlocks_nor_reorders() {
        let (shared, rec) = one_leader();
        shared
            .with(|n| n.propose(1, Bytes::from_static(b"first")))
            .unwrap();
        shared.drive(&no_pass(&rec)).unwrap();
        // index 1 is the leader's no-op; 2 = "first", 3 = "again".
        assert_eq!(*rec.applied.lock(), vec![2, 3]);
    }
}
