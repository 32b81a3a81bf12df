//! A node's durable storage as the runtime uses it: the write-ahead log and
//! the snapshot files (`crate::storage`), with what the runtime does to
//! them — persist a pass, take a host's snapshot, recover groups into a
//! fresh node, and keep the directory bounded. The testkit's hosts use the
//! same functions, so the simulation exercises exactly this code.
//!
//! Order of writes, and why:
//!
//! * A pass: the files of snapshots received from leaders first, then one
//!   WAL batch (their Install records, entries, hard states). The Install
//!   record names a snapshot that must already be durable; a crash between
//!   the two leaves a snapshot file the WAL does not know, and recovery
//!   completes the install (`storage::open_storage`).
//! * A host's snapshot: the file (durable when `SnapshotStore::save`
//!   returns), then the node compacts its log, then the WAL records the
//!   compaction. Until that record is durable, recovery still has the
//!   whole log and uses the newest snapshot it finds.
//! * Upkeep, with no pass in flight: delete segments nothing needs; then
//!   rewrite forward the logs of groups that pin old segments, when they
//!   are small, so that an idle group never keeps a segment alive.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::error::Error;
use crate::multi::{Node, NodeReady, Removed};
use crate::raft::SnapshotMeta;
use crate::storage::{
    open_storage, RecoveredNode, SnapshotStore, StorageOptions, Wal, WalBatch, WalError, WalFs,
};

/// Counters of what storage did since the node started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// WAL segment files that exist now, and their bytes.
    pub wal_segments: u64,
    pub wal_bytes: u64,
    /// Segment files deleted.
    pub wal_segments_deleted: u64,
    /// Logs rewritten forward to free an old segment, and their bytes.
    pub logs_rewritten: u64,
    pub bytes_rewritten: u64,
    /// Snapshot files, and their bytes.
    pub snapshot_files: u64,
    pub snapshot_bytes: u64,
}

/// What recovery found, for the host's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub groups: usize,
    /// Groups whose state machine starts from a snapshot.
    pub restored: usize,
    /// Groups whose state could not be rebuilt (their log was compacted and
    /// no valid snapshot covers it): rejoined as fresh replicas.
    pub lost: usize,
}

/// How a replica came to be (for [`creation_batch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creation {
    /// A new group (`Node::create_group`).
    Create,
    /// An existing group this node is added to (`Node::join_group`): no
    /// members of its own; recovered as a joiner, it learns them again from
    /// its log.
    Join,
    /// A group this node lost its state of (`Node::rejoin_group`).
    Rejoin,
}

/// The WAL batch that makes durable the creation of group `group_id`'s
/// replica, which `node` just made (`how`). A replica that took the place
/// of one of the same incarnation this node removed
/// (`Node::succession`) is written with that replica's term, vote and
/// vote floor, which recovery restores.
pub fn creation_batch(
    node: &Node,
    group_id: u64,
    incarnation: u64,
    members: &[u64],
    how: Creation,
) -> WalBatch {
    let mut batch = WalBatch::new();
    let members = if how == Creation::Join { &[] } else { members };
    match (how, node.succession(group_id)) {
        (Creation::Rejoin, _) => batch.rejoin_group(group_id, incarnation, members),
        (_, Some(p)) => batch.create_successor(group_id, incarnation, members, &p),
        (_, None) => batch.create_group(group_id, incarnation, members),
    }
    batch
}

/// The WAL batch that makes durable the removal of group `group_id`'s
/// replica, with the tombstone `Node::remove_group` returned.
pub fn removal_batch(group_id: u64, removed: &Removed) -> WalBatch {
    let mut batch = WalBatch::new();
    batch.remove_replica(group_id, removed.incarnation, &removed.state);
    batch
}

/// The writes one `NodeReady` asks for, as one WAL batch (one write, one
/// fsync): for every group, the snapshot it installs (whose file must be
/// durable first: [`Disk::persist_unsynced`]), its entries and hard state,
/// each for the incarnation the ready was taken from. A HardState record only when
/// the term or the vote changed: a group whose commit index alone moved has
/// it written in its entries record, or, writing no entries, in the one
/// Commits record of the batch (a few bytes per group). Under load, a
/// HardState record per group per pass was 41 of the ~80-100 bytes the WAL
/// spent per small entry.
pub fn wal_batch(rd: &NodeReady) -> WalBatch {
    let mut batch = wal_batch_sized(rd);
    let mut commits = Vec::with_capacity(rd.groups.len());
    for gr in &rd.groups {
        let (g, inc, rd) = (gr.group_id, gr.incarnation, &gr.ready);
        if let Some(meta) = &rd.snapshot {
            batch.install_snapshot(g, inc, meta.index, meta.term);
        }
        let commit = rd.hard_state.map_or(0, |hs| hs.commit);
        batch.entries_with_commit(g, inc, &rd.entries, commit);
        match rd.hard_state {
            Some(hs) if rd.term_or_vote_changed => batch.hard_state(g, inc, hs),
            Some(hs) if rd.entries.is_empty() => commits.push((g, inc, hs.commit)),
            _ => {}
        }
    }
    batch.commits(&commits);
    batch
}

/// An empty batch with room for what [`wal_batch`] writes of `rd`, from
/// above but close (a pass's batch was regrown a dozen times, and a
/// generous guess per group would make a large pass's buffer an `mmap`):
/// per group an Entries record's header and a Commits row (under 64 and
/// 32 bytes), an Install or a HardState record where it has one (under 64
/// bytes each); per entry its data and at most 16 bytes.
fn wal_batch_sized(rd: &NodeReady) -> WalBatch {
    let bytes: usize = rd
        .groups
        .iter()
        .map(|gr| {
            let rd = &gr.ready;
            let records = 96
                + if rd.snapshot.is_some() { 64 } else { 0 }
                + if rd.term_or_vote_changed { 64 } else { 0 };
            records + rd.entries.iter().map(|e| 16 + e.data.len()).sum::<usize>()
        })
        .sum();
    WalBatch::with_capacity(64 + bytes, 2 * rd.groups.len())
}

/// The write-ahead log and the snapshot files of one node.
pub(crate) struct Disk {
    wal: Mutex<Wal>,
    snapshots: Mutex<SnapshotStore>,
    segment_bytes: u64,
    /// Counters the WAL does not keep.
    rewrites: Mutex<(u64, u64)>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk")
            .field("segment_bytes", &self.segment_bytes)
            .finish_non_exhaustive()
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Storage(WalError::Io(e))
}

impl Disk {
    /// Open (and recover) the storage in `dir`.
    pub fn open(
        dir: &Path,
        fs: Arc<dyn WalFs>,
        opts: StorageOptions,
    ) -> Result<(Disk, RecoveredNode), Error> {
        let segment_bytes = opts.segment_bytes;
        let (storage, recovered) = open_storage(dir, fs, opts)?;
        let disk = Disk {
            wal: Mutex::new(storage.wal),
            snapshots: Mutex::new(storage.snapshots),
            segment_bytes,
            rewrites: Mutex::new((0, 0)),
        };
        Ok((disk, recovered))
    }

    /// Create `node`'s groups from what recovery found: each with its log,
    /// at the snapshot it starts from (the host is told to restore it,
    /// before anything later is applied), keeping the mark of a replica
    /// that rejoined and the vote floor of one that took a removed one's
    /// place. A group whose state is lost is written anew as a rejoining
    /// replica. The node remembers the replicas it removed, as before.
    pub fn recover_into(
        &self,
        node: &mut Node,
        recovered: RecoveredNode,
    ) -> Result<Recovery, Error> {
        let mut out = Recovery {
            groups: recovered.groups.len(),
            ..Recovery::default()
        };
        for (group_id, incarnation, removed) in recovered.tombstones {
            node.remember_removed(group_id, incarnation, removed);
        }
        for (group_id, g) in recovered.groups {
            if g.lost {
                tracing::error!(
                    group_id,
                    incarnation = g.incarnation,
                    "group state lost (compacted log without a valid snapshot): rejoining as a fresh replica that never votes"
                );
                let mut batch = WalBatch::new();
                batch.remove_group(group_id);
                batch.rejoin_group(group_id, g.incarnation, &g.members);
                self.write(&batch)?;
                self.snapshots.lock().remove_group(group_id).map_err(io)?;
                node.rejoin_group(group_id, g.incarnation, &g.members)?;
                out.lost += 1;
                continue;
            }
            let applied = g.snapshot.as_ref().map_or(0, |(m, _)| m.index);
            node.recover_group(
                group_id,
                g.incarnation,
                &g.members,
                g.store,
                applied,
                g.rejoined,
                g.vote_floor,
            )?;
            if let Some((_, data)) = g.snapshot {
                node.restore_snapshot(group_id, data)?;
                out.restored += 1;
            }
        }
        Ok(out)
    }

    /// Write what `rd` asks to make durable: the files of the snapshots it
    /// installs (durable when this returns), then one WAL batch, appended
    /// but not yet synced: [`sync`](Disk::sync) does that (one fsync for
    /// every group), or the next write to the WAL, whoever makes it
    /// (`Wal::write_unsynced`).
    pub fn persist_unsynced(&self, rd: &NodeReady) -> Result<(), Error> {
        self.save_received_snapshots(rd)?;
        self.write_unsynced(wal_batch(rd))
    }

    /// Append a batch to the WAL, for [`sync`](Disk::sync) to make durable
    /// (nothing if it is empty).
    pub fn write_unsynced(&self, batch: WalBatch) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        Ok(self.wal.lock().write_unsynced(batch)?)
    }

    /// Make what was appended unsynced durable, if nothing did since.
    pub fn sync(&self) -> Result<(), Error> {
        Ok(self.wal.lock().sync()?)
    }

    /// The first half of [`persist_unsynced`](Disk::persist_unsynced): the
    /// files of the snapshots `rd` installs.
    pub fn save_received_snapshots(&self, rd: &NodeReady) -> Result<(), Error> {
        for gr in &rd.groups {
            if let (Some(meta), Some(data)) = (&gr.ready.snapshot, &gr.snapshot_data) {
                self.snapshots
                    .lock()
                    .save(gr.group_id, gr.incarnation, meta, data)
                    .map_err(io)?;
            }
        }
        Ok(())
    }

    /// The node stopped: write nothing more and let the data directory go
    /// (a new node may open it while this one is not yet freed).
    pub fn close(&self) {
        self.wal.lock().close();
    }

    /// Write a batch (nothing if it is empty).
    pub fn write(&self, batch: &WalBatch) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        Ok(self.wal.lock().write(batch)?)
    }

    /// Make a host's snapshot durable (its file), before the node compacts.
    pub fn save_snapshot(
        &self,
        group_id: u64,
        incarnation: u64,
        meta: &SnapshotMeta,
        data: &[u8],
    ) -> Result<(), Error> {
        self.snapshots
            .lock()
            .save(group_id, incarnation, meta, data)
            .map_err(io)
    }

    /// The node took a host's snapshot of group `group_id` and may compact
    /// its durable log to `point` (from `Node::take_snapshot`): record the
    /// compaction in the WAL, capped at the end of the group's log there
    /// (with the term `node` knows at the capped index). Returns the point
    /// recorded, if any.
    pub fn record_compaction(
        &self,
        node: &Node,
        group_id: u64,
        incarnation: u64,
        point: (u64, u64),
    ) -> Result<Option<(u64, u64)>, Error> {
        let mut wal = self.wal.lock();
        let Some(last) = wal.last_index(group_id) else {
            return Ok(None);
        };
        let point = match point {
            (index, term) if index <= last => (index, term),
            _ => match node.log_term(group_id, last) {
                Some(term) => (last, term),
                None => return Ok(None),
            },
        };
        let mut batch = WalBatch::default();
        batch.compact(group_id, incarnation, point.0, point.1);
        wal.write(&batch)?;
        Ok(Some(point))
    }

    /// The group was removed (its removal is durable in the WAL): its
    /// snapshot files go.
    pub fn forget_group(&self, group_id: u64) {
        if let Err(e) = self.snapshots.lock().remove_group(group_id) {
            // Recovery deletes the files of groups it does not know.
            tracing::warn!(group_id, error = %e, "could not delete a removed group's snapshot files");
        }
    }

    /// Bytes of a group's log in the WAL (an estimate), and of its snapshot
    /// files.
    pub fn group_bytes(&self, group_id: u64) -> (u64, u64) {
        let log = self.wal.lock().log_bytes(group_id);
        (log, self.snapshots.lock().bytes(group_id))
    }

    pub fn stats(&self) -> DiskStats {
        let (segments, wal_bytes, deleted) = {
            let wal = self.wal.lock();
            let segs = wal.segments();
            (
                segs.len() as u64,
                segs.iter().map(|s| s.bytes).sum(),
                wal.stats().segments_deleted,
            )
        };
        let (files, snapshot_bytes) = {
            let s = self.snapshots.lock();
            (s.count() as u64, s.total_bytes())
        };
        let (logs, bytes) = *self.rewrites.lock();
        DiskStats {
            wal_segments: segments,
            wal_bytes,
            wal_segments_deleted: deleted,
            logs_rewritten: logs,
            bytes_rewritten: bytes,
            snapshot_files: files,
            snapshot_bytes,
        }
    }

    /// Keep the directory bounded; call with no `NodeReady` of `node`
    /// outstanding (its store is then exactly the durable log, plus the
    /// trailing windows below snapshots, which the WAL no longer needs).
    /// Cheap when nothing changed since the last call.
    ///
    /// 1. Deletes the segments no live log needs.
    /// 2. **Mostly dead WAL**: when the live logs are at most an eighth of
    ///    the segment files and at most half a segment, and moving them
    ///    would free at least a quarter of a segment, writes them into a
    ///    fresh segment (after its checkpoint) and deletes every older one.
    ///    This is what makes a node whose groups snapshotted and went quiet
    ///    restart by reading almost nothing, whatever its history; it costs
    ///    at most an eighth of what was written since the last time.
    /// 3. **Pinned old segments**: if more than two old segments remain,
    ///    rewrites forward (into the active segment) the logs of the groups
    ///    pinning the oldest of them when those segments hold little that is
    ///    live (at most a quarter of a segment): an idle group with a few
    ///    entries, or a slow one spread thinly over many segments. At most
    ///    half a segment is rewritten per call, so upkeep costs at most half
    ///    again what the groups write. A group with much live data in old
    ///    segments is left alone: its snapshot threshold makes its host
    ///    take a snapshot, and the compaction frees them.
    pub fn upkeep(&self, node: &Node) -> Result<(), Error> {
        let mut wal = self.wal.lock();
        if !wal.needs_maintenance() {
            return Ok(());
        }
        wal.delete_unneeded_segments()?;
        let segments = wal.segments();
        let total: u64 = segments.iter().map(|s| s.bytes).sum();
        let live: u64 = segments.iter().map(|s| s.live_bytes).sum();
        let freed = total.saturating_sub(live + wal.segment_base_bytes());
        if live <= total / 8 && live <= self.segment_bytes / 2 && freed >= self.segment_bytes / 4 {
            // Only if every live log can be moved: one left behind would
            // keep its segment, and the next call would roll again.
            if let Some((batch, logs, bytes)) = rewrites(node, &wal.live_logs(), u64::MAX, true) {
                wal.write_in_new_segment(&batch)?;
                let deleted = wal.delete_unneeded_segments()?;
                tracing::debug!(
                    logs,
                    bytes,
                    deleted,
                    "moved the live logs to a fresh segment"
                );
                self.count_rewrites(logs, bytes);
                return Ok(());
            }
        }
        let old: Vec<_> = segments.iter().filter(|s| !s.active).collect();
        if old.len() <= 2 {
            return Ok(());
        }
        let sparse: Vec<u64> = old[..old.len() - 2]
            .iter()
            .filter(|s| s.live_bytes <= self.segment_bytes / 4)
            .map(|s| s.seq)
            .collect();
        if sparse.is_empty() {
            return Ok(());
        }
        let pins: Vec<_> = wal
            .pinning(usize::MAX)
            .into_iter()
            .filter(|p| sparse.contains(&p.seq))
            .collect();
        let Some((batch, logs, bytes)) = rewrites(node, &pins, self.segment_bytes / 2, false)
        else {
            return Ok(());
        };
        wal.write(&batch)?;
        let deleted = wal.delete_unneeded_segments()?;
        tracing::debug!(logs, bytes, deleted, "rewrote sparse logs forward");
        self.count_rewrites(logs, bytes);
        Ok(())
    }

    fn count_rewrites(&self, logs: u64, bytes: u64) {
        let mut r = self.rewrites.lock();
        r.0 += logs;
        r.1 += bytes;
    }
}

/// A batch that rewrites forward the logs `pins` lists (each from its
/// first index there to its current end, read from `node`'s store), in
/// order, until `budget` bytes; with the number of logs and bytes. None if
/// there is nothing to write, or, with `all`, if some log cannot be moved.
fn rewrites(
    node: &Node,
    pins: &[crate::storage::Pinned],
    budget: u64,
    all: bool,
) -> Option<(WalBatch, u64, u64)> {
    let mut batch = WalBatch::new();
    let (mut logs, mut spent) = (0, 0);
    for p in pins {
        if spent + p.bytes > budget {
            break;
        }
        // The node's store holds the durable log (and maybe a trailing
        // window below it); a group compacted in memory but not yet in the
        // WAL (a snapshot being recorded) no longer holds `first_index`:
        // its compaction frees it anyway.
        let entries = node
            .durable_entries(p.group, p.first_index)
            .filter(|(inc, e)| {
                *inc == p.incarnation && e.last().map(|e| e.index) == Some(p.last_index)
            });
        match entries {
            Some((_, entries)) => {
                batch.rewrite_entries(p.group, p.incarnation, &entries);
                spent += p.bytes;
                logs += 1;
            }
            None if all => return None,
            None => {}
        }
    }
    (all || !batch.is_empty()).then_some((batch, logs, spent))
}

/// The snapshot data of a host's snapshot, checked against the node's
/// limit.
pub(crate) fn check_snapshot_size(data: &Bytes, max: u64) -> Result<(), Error> {
    if data.len() as u64 > max {
        return Err(Error::Node(crate::multi::Error::TooLarge {
            what: "snapshot",
            len: data.len(),
            max: max as usize,
        }));
    }
    Ok(())
}
