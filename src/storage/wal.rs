//! The node-wide write-ahead log: one log shared by every group of a node,
//! with group commit, a CRC per record, crash recovery and segment deletion.
//!
//! # Use
//!
//! The runtime collects what one `ready()` pass produced for all groups into
//! one [`WalBatch`] and calls [`Wal::write`] once: the batch, encoded as it
//! was filled, is appended behind a small commit header with one `write_all`
//! (two, to avoid a copy, above 256 KiB) and made durable with **one**
//! `fdatasync`, whatever the number of groups in it. While that runs, new
//! input accumulates for the next batch: that is the group commit. Messages
//! that depend on the batch are sent after `write` returns. [`Wal::open`]
//! replays the log and returns every live group's members, hard state and
//! log as a [`MemStore`] (a node opens its WAL and its snapshots together
//! with [`open_storage`](crate::storage::open_storage)).
//!
//! Snapshots and the WAL meet in two records. When the host saved a
//! snapshot of a group, the batch carries [`WalBatch::compact`]: the log
//! no longer needs its entries up to an index (usually a trailing window
//! below the snapshot stays, for followers slightly behind). When a
//! follower received a snapshot from its leader, its bytes are saved first
//! ([`SnapshotStore::save`](crate::storage::SnapshotStore::save)), then the batch carries
//! [`WalBatch::install_snapshot`]: the log is replaced. Either can free old
//! segments; after a write, [`Wal::needs_maintenance`] says whether to call
//! [`Wal::delete_unneeded_segments`] (see "Segment deletion" for the policy
//! that keeps idle groups from pinning segments for ever).
//!
//! # On-disk format (version 2)
//!
//! The directory holds segment files named by a sequence number that starts
//! at 1 and is never reused: `00000000000000000001.wal`, `...02.wal`, ...
//!
//! ```text
//! segment = header commit*
//! header  = magic "MUXRWAL\0" | version:u32 = 2 | reserved:u32 = 0 | seq:u64 | salt:u64   (32 bytes)
//! commit  = Commit record (seq:u64, body_len:u64, count:u32, salt:u64) | body: count records
//! record  = len:u32 | crc:u32 | type:u8 | payload[len]
//!           crc = CRC-32C (Castagnoli) over type ++ payload; integers little-endian
//! ```
//!
//! The **salt** is a random 64-bit number, not 0, drawn for each segment when
//! it is created ([`WalFs::salt`]: operating-system randomness for
//! [`RealFs`]) and written only in the segment's header and in each of its
//! commit records. **A commit record counts** — as the start of a commit,
//! or as evidence that a commit exists further on — only if its length,
//! type and CRC are right *and* its salt equals its segment's salt. Why:
//! entry payloads are chosen by clients and CRC-32C is not keyed, so a
//! payload can hold a byte-exact record of any type with a good CRC; but no
//! client ever sees a salt, so a forged commit record would have to guess 64
//! random bits to count. Other records carry no salt and need none: they are
//! only read where the framing of a counted commit places them, never found
//! by scanning bytes. Version 1 segments (no salt) are refused as
//! [`WalError::Corrupt`] naming the version; there is no migration.
//!
//! A *commit* frames everything one `write` appended; commit sequence
//! numbers increase across the whole log. Record types and payloads are
//! listed in `record.rs`: Checkpoint, Create (group, incarnation, how the
//! replica may vote, members), Remove (group, and the removed replica's
//! tombstone when the node gives it), Tombstones (every one kept), HardState (group, term, vote, commit), Entries (group,
//! first index, the group's commit index, then term, kind and data of each
//! entry, consecutive indexes; varints, about 3 bytes per entry besides its
//! data), Compact (group, index, term), Install (group, index, term),
//! Commits (group and commit index of each group whose commit alone moved).
//!
//! A group's log starts after its **compaction point** (index, term):
//! (0, 0) for a new group. *Compact* moves it up to `index` — the entries up
//! to and including `index` are no longer needed, and `term` is the term
//! of the entry at `index`, kept so that log matching works across the
//! point after recovery. *Install* replaces the log by a snapshot at
//! (index, term): no entry is left, the next one is `index + 1`, and an
//! Entries record starting there may follow in the same commit. The WAL
//! never writes an Entries record that starts at or below the compaction
//! point.
//!
//! **Every segment begins with a Checkpoint record** (first record of its
//! first commit): the list of live groups with, for each, its creation, its
//! incarnation, members, hard state, compaction point (index, term), the
//! last index of its log and how it may vote (rejoined; the vote floor of a
//! replica that took a removed one's place). A Tombstones record follows
//! it when the node remembers removed replicas
//! ([`WalBatch::remove_replica`]): every one kept, oldest first.
//!
//! The format is still version 2: Compact gained its term, Install and the
//! checkpoint's compaction term and last index are new, the voting byte
//! took a third value and Remove an optional tombstone (older directories
//! read unchanged), and none of this was ever released. A directory written by a build before it is not
//! supported (it may be refused as corrupt, or misread).
//!
//! Two notions tell the lives of a group id apart, and must not be confused:
//!
//! * the **incarnation** is the host's number for a group replica, the same
//!   on every member ([`WalBatch::create_group`]), which a group id removed
//!   and created again changes. The WAL stores it (Create record,
//!   checkpoints), returns it ([`RecoveredGroup::incarnation`]) and checks
//!   it: [`WalBatch::entries`], [`WalBatch::hard_state`],
//!   [`WalBatch::compact`] and [`WalBatch::install_snapshot`] name it too,
//!   and [`Wal::write`] refuses a batch whose records name another
//!   incarnation than the live group's ([`WalError::InvalidBatch`]), so the
//!   Ready of a removed group cannot land in the log of its successor. It
//!   is not written in HardState, Entries, Compact and Install records.
//! * the **creation** (`Creation` in the code) is the position (segment,
//!   offset) of the Create record that made the live group. Recovery relies
//!   on it, not on the host's numbers, to tell a group id's lives apart even
//!   when the records in between are gone (deleted segments).
//!
//! # Recovery
//!
//! Segments are read oldest first and their records applied in order: a
//! checkpoint reconciles the set of groups (drops those it does not list,
//! starts afresh those whose creation differs, and gives every group it
//! lists its compaction point and its last index — which is how a Compact
//! or Install record in a deleted segment is known), Create starts an empty
//! log, HardState replaces the hard state, Entries replace the log from
//! their first index on, Remove drops the group, Compact drops the entries
//! up to its index (an Entries record straddling it is trimmed), Install
//! empties the log. The rebuilt [`MemStore`] starts after the compaction
//! point ([`RecoveredGroup::compacted_index`]); its snapshot meta is left
//! at index 0: snapshots live beside the WAL, and
//! [`open_storage`](crate::storage::open_storage) joins the two.
//!
//! A record for a group that does not exist, a second Create of a live
//! group, entries at or below the compaction point, an install below it, or
//! entries that leave a hole in a log are `Corrupt`. A hole is tolerated
//! only while segments are missing in between — where deletion removed
//! entries that a later record overwrote or compacted — and must be gone by
//! the end: filled by an overwrite, compacted past, or emptied by an
//! install. The log a hole is judged against starts at the compaction point
//! plus one. So is a segment or commit sequence number, or a log index
//! (of an entry, a compaction, an install, a checkpoint's last index), past
//! 2^62: no WAL writes one, and counting on from it could overflow.
//!
//! A write cut short by a crash can leave any prefix — and, since pages of
//! an unsynced write reach the disk in any order, any subset of the pages —
//! of its commit. Each write is synced before the next one starts, so only
//! the last commit of the last segment can be torn. Where the commit at
//! offset `p` of the **last** segment does not read whole, recovery decides
//! with the log's own framing where it can, and only ever with commit
//! records that count:
//!
//! * **(a)** its commit record counts but its body is incomplete or bad (a
//!   record with a bad CRC, or one that makes no sense although its CRC is
//!   good: a lost page can zero a record's length and leave its CRC, which
//!   a client can choose, since record CRCs are not salted): a torn tail,
//!   unless a counted commit record starts exactly at `p + 37 + body_len`,
//!   where the framing puts the next commit — then a later write followed
//!   it, and it is `Corrupt`;
//! * **(b)** no commit record that counts starts at `p` (bad length, type,
//!   CRC or salt, or too few bytes left): a torn tail, unless a counted
//!   commit record with a higher sequence number than the last good commit
//!   exists anywhere after `p` — then it is `Corrupt`;
//! * the header of the last segment is incomplete or has a bad magic (the
//!   write that created it was torn): the whole file is a torn tail and is
//!   removed, unless a counted commit record (with the salt the header bytes
//!   still hold, if not 0) follows — then it is `Corrupt`.
//!
//! A torn tail is cut off the file (reported in
//! [`Recovered::truncated_tail_bytes`]) and the commits before it are
//! recovered whole. A commit is all or nothing: recovery never sees half a
//! batch. Anything else — a bad commit with a counted commit after it as
//! above, a bad record in any other segment, a record of a whole commit that
//! the replay cannot apply — is [`WalError::Corrupt`] naming the segment and
//! offset; nothing is ever skipped silently. After recovery the
//! WAL always starts a new segment, so nothing is ever appended after a cut.
//!
//! Since payload bytes never count as commit records, a proposal that holds
//! forged commit records cannot turn a torn tail into `Corrupt` (which would
//! keep the node from restarting), nor make recovery take it for a commit.
//!
//! # Segment deletion
//!
//! Strategy: **checkpoint at every segment start, and only entries of
//! current logs pin a segment.** Because each segment starts with a
//! checkpoint of all live groups, Create, Remove, HardState, Compact and
//! Install records in any segment but the newest are superseded by the next
//! segment's checkpoint. So an old segment is needed only while it holds
//! entries of some live group's current log: entries above its compaction
//! point that no later record replaced. [`Wal::delete_unneeded_segments`]
//! deletes every segment but the active one in which no live log has an
//! entry: all its groups were removed, compacted past it or installed a
//! snapshot, or their entries there were overwritten by later records. The
//! bookkeeping (which index ranges of each live log came from which
//! segment) lives in memory and is rebuilt by recovery. A live group whose
//! creation record sits in a deleted segment is still recovered, from the
//! checkpoint of the next segment. The price is the checkpoint at each
//! segment start: 84 bytes plus 8 per member for each live group (about
//! 10.8 MB for 100,000 groups of 3, once per segment).
//!
//! **Un-pinning.** Compaction frees what lies below a group's compaction
//! point, but a group that stops writing keeps its last entries — the
//! trailing window below its snapshot, or its whole short log — in
//! whatever segment they were written to, and that segment can then never
//! be deleted. The WAL does not move entries on its own; it tells the
//! runtime what to move:
//!
//! * [`Wal::segments`] lists every segment with its size and an estimate
//!   of its *live bytes* (the records live logs still need there, scaled
//!   down in proportion when a compaction or an overwrite trimmed them);
//!   [`Wal::live_bytes_in`] gives one.
//! * [`Wal::pinning`] lists the groups that hold the oldest segments,
//!   oldest first: for each, the oldest segment it has entries in, the
//!   first index there, its last index and the bytes a rewrite would copy.
//! * Rewriting a listed group's log from that first index to its current
//!   last index with [`WalBatch::rewrite_entries`] (the same entries, read
//!   from its store) moves them to the active segment: an Entries record
//!   replaces the log from its first index, so the log does not change, but
//!   no older segment holds any of it any more. The write is refused if the
//!   entries do not end at the group's last index, which would cut the log.
//!
//! **Starting afresh.** When the live logs are a small part of all the
//! segment files (every group snapshotted, say), the runtime can write them
//! all into a new segment with [`Wal::write_in_new_segment`] (listing them
//! with [`Wal::live_logs`]): once that is durable every older segment is
//! unneeded. [`Wal::segment_base_bytes`] is what the new segment costs
//! before it holds anything (its checkpoint).
//!
//! The intended policy, run when [`Wal::needs_maintenance`] says something
//! changed (a roll, a compaction, an install, a removal or an overwrite):
//! delete what is unneeded; start afresh if that frees much for little;
//! then, while the oldest non-active segment's
//! live bytes are small next to its size (say under a quarter), or more
//! segments than a budget exist, rewrite the groups `pinning` lists for
//! that segment — as long as the bytes to rewrite stay small next to the
//! segment size — and delete again. The rewritten bytes go to the active
//! segment and, if the group stays idle, are moved again when that segment
//! becomes the oldest: an idle group costs its retained log once per
//! segment cycle, never a segment for ever. A group with a long
//! uncompacted log (snapshots disabled) is expensive to move: the size
//! check leaves it pinning.
//!
//! Segment size: with groups snapshotting often, small segments (4–16 MiB,
//! [`WalOptions::segment_bytes`]) free space sooner and keep the directory
//! small; each costs a checkpoint of all live groups.
//!
//! # Durability
//!
//! Each `write` ends with [`WalFile::sync_data`] (`fdatasync`); a write
//! that creates a segment also syncs the directory. The previous segment
//! needs no extra sync when rolling: its last write already ended with one.
//! Recovery, before the WAL writes anything, cuts the torn tail if any and
//! makes the last segment and the directory durable (truncate + sync, then a
//! directory sync): what it read may come from a write whose sync failed,
//! read back from the page cache after a restart without a power loss, and
//! nothing may be built on bytes that a later power loss could take away.
//! Recovery changes nothing in the directory when it reports `Corrupt`.
//!
//! If a write or sync fails the WAL refuses all further calls
//! ([`WalError::Failed`]): what reached the disk is unknown, and only a
//! reopen (recovery) can tell.
//!
//! Every file operation goes through a [`WalFs`]: [`RealFs`] (`std::fs`)
//! for [`Wal::open`], any other with [`Wal::open_with`], such as [`MemFs`],
//! which keeps files in memory and simulates crashes that lose what was
//! not synced (for tests and deterministic simulations).
//!
//! One `Wal` per directory: nothing stops a second process from opening the
//! same directory, and two writers would corrupt it.

mod batch;
mod fs;
mod record;
mod recovery;
mod segment;
mod tracker;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{debug, info};

pub use crate::crc32c::crc32c;
pub use batch::WalBatch;
pub use fs::{DirLock, MemFs, MemFsStats, RealFs, WalFile, WalFs, LOCK_FILE, MEMFS_PAGE};
pub use tracker::Pinned;

use batch::Op;
use record::Creation;
use tracker::Tracker;

use crate::idmap::IdMap;
use crate::raft::{MemStore, Predecessor};

/// Where the WAL lives and how large its segments grow.
#[derive(Clone, Debug)]
pub struct WalOptions {
    pub dir: PathBuf,
    /// A new segment is started by the first write after the active one
    /// reached this size (a segment can exceed it by one batch). A segment
    /// is deleted whole, once nothing in it is needed: when groups snapshot
    /// and compact often, small segments (4–16 MiB) keep the directory
    /// small and free space sooner. Each segment begins with a checkpoint of
    /// every live group (84 bytes + 8 per member each), which bounds how
    /// small is sensible.
    pub segment_bytes: u64,
}

impl WalOptions {
    pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

    pub fn new(dir: impl Into<PathBuf>) -> WalOptions {
        WalOptions {
            dir: dir.into(),
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// One group as recovery rebuilt it.
#[derive(Debug)]
pub struct RecoveredGroup {
    /// The incarnation number the host created it with
    /// ([`WalBatch::create_group`]).
    pub incarnation: u64,
    pub members: Vec<u64>,
    /// Created by [`WalBatch::rejoin_group`]: this replica lost its state
    /// once and must never vote.
    pub rejoined: bool,
    /// Created by [`WalBatch::create_successor`]: it took the place of a
    /// removed replica of its id, and votes for no candidate whose log ends
    /// below this (term, index) until its own log counts it as a voter
    /// (`Raft::succeed_removed`).
    pub vote_floor: Option<(u64, u64)>,
    /// Its durable log and hard state. The log starts after the
    /// compaction point: `store.first_index()` is `compacted_index + 1`,
    /// and `store.term(compacted_index)` is `compacted_term`. Its snapshot
    /// meta is the default (index 0): the WAL does not hold snapshots (see
    /// [`open_storage`](crate::storage::open_storage), which adds them).
    pub store: MemStore,
    /// The compaction point: entries up to and including this index were
    /// compacted ([`WalBatch::compact`]) or replaced by an installed
    /// snapshot ([`WalBatch::install_snapshot`]); 0 if none. A log with a
    /// compaction point above 0 can only be used with a snapshot at or
    /// above it.
    pub compacted_index: u64,
    /// Term of the entry at `compacted_index` (0 if none).
    pub compacted_term: u64,
}

/// What recovery rebuilt: every group created and not removed.
#[derive(Debug, Default)]
pub struct Recovered {
    pub groups: BTreeMap<u64, RecoveredGroup>,
    /// The replicas this node removed that it still remembers
    /// ([`WalBatch::remove_replica`]), oldest first: (group id,
    /// incarnation, state), for the node to honour if it is added back.
    pub tombstones: Vec<(u64, u64, Predecessor)>,
    /// Bytes of torn tail cut off the last segment.
    pub truncated_tail_bytes: u64,
    /// Records replayed.
    pub records: u64,
    /// Segment files replayed.
    pub segments: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL I/O error: {0}")]
    Io(#[from] io::Error),
    /// Another `Wal` holds the directory: another process or this one
    /// (`holder` says which, with its process id when known). Two writers
    /// would corrupt it.
    #[error("data directory {} is in use by {holder}: one process, one node per data directory", dir.display())]
    InUse { dir: PathBuf, holder: String },
    #[error("WAL corrupt in {} at offset {offset}: {reason}", segment.display())]
    Corrupt {
        segment: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The batch cannot be written (nothing of it was): a record for a group
    /// that does not exist, entries leaving a gap, ...
    #[error("invalid WAL batch: {0}")]
    InvalidBatch(String),
    /// An earlier write or sync failed; reopen the WAL to recover.
    #[error("the WAL failed earlier and must be reopened")]
    Failed,
    /// The WAL recovered, but its last segment or commit carries the
    /// largest sequence number a WAL writes (2^62, a century and a half of
    /// a billion commits a second: only a damaged or forged segment gets
    /// there), and opening starts a segment with the next: nothing is
    /// written, since no later open could read it.
    #[error("WAL in {} has no sequence number left: its last segment is {segment} and its last commit {commit}, the largest a WAL writes is {max}", dir.display())]
    Exhausted {
        dir: PathBuf,
        segment: u64,
        commit: u64,
        max: u64,
    },
}

/// Counters since open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// fsync calls (file data syncs and directory syncs).
    pub fsyncs: u64,
    /// Records written (commit frames not counted).
    pub records: u64,
    /// Bytes written to segment files.
    pub bytes: u64,
    /// Segment files that exist now.
    pub segments: usize,
    /// Segment files deleted.
    pub segments_deleted: u64,
}

/// Batches up to this size are copied behind the commit header so that the
/// whole commit goes out in one `write_all`.
const COPY_BATCH_BELOW: usize = 256 << 10;

/// One segment file as the WAL sees it ([`Wal::segments`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Its sequence number (file name).
    pub seq: u64,
    /// Size of the file.
    pub bytes: u64,
    /// Estimated bytes of entries in it that live groups' current logs
    /// still hold (the records that wrote them, scaled down in proportion
    /// when an overwrite or a compaction trimmed them). 0 means it is no
    /// longer needed (unless it is the active one).
    pub live_bytes: u64,
    /// Index ranges of live logs that point into it (at most one per group
    /// and record): 0 means it is no longer needed.
    pub runs: u64,
    /// It is the segment being appended to (never deleted).
    pub active: bool,
}

/// The segment being appended to.
struct Active {
    file: Box<dyn WalFile>,
    seq: u64,
    /// Written in its header and in each of its commit records.
    salt: u64,
    len: u64,
    /// Bytes of its header, first commit record and checkpoint: what any
    /// new segment would cost before holding anything.
    base: u64,
}

/// The write-ahead log of one node. See the module documentation.
pub struct Wal {
    opts: WalOptions,
    fs: Arc<dyn WalFs>,
    active: Option<Active>,
    next_commit: u64,
    tracker: Tracker,
    /// Something happened since the last `delete_unneeded_segments` that
    /// may let it delete a segment, or the pinning policy un-pin one.
    maintenance: bool,
    stats: WalStats,
    failed: bool,
    head: Vec<u8>,
    /// `validate`'s map of the groups a batch changes, kept between
    /// batches so that checking one allocates nothing.
    overlay: IdMap<Option<Live>>,
    /// A commit [`write_unsynced`](Wal::write_unsynced) appended and no
    /// sync has finished yet, with its batch: not yet in the bookkeeping.
    unsynced: Option<(WalBatch, Written)>,
    /// The directory is ours while this lives.
    _lock: DirLock,
}

/// Where `Wal::append_commit` put a commit, for `Wal::finish_commit`.
#[derive(Clone, Copy, Debug)]
struct Written {
    /// Its segment, and the offset of the batch's records in it.
    seq: u64,
    batch_at: u64,
    /// Bytes appended, and records (a checkpoint included).
    bytes: u64,
    records: u32,
    /// It started the segment (the directory needs a sync too).
    rolled: bool,
}

/// A live group as the records of a batch before the current one leave
/// it (`Wal::validate`).
#[derive(Clone, Copy)]
struct Live {
    incarnation: u64,
    last: u64,
    compacted: u64,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.opts.dir)
            .field("active", &self.active.as_ref().map(|a| a.seq))
            .field("stats", &self.stats)
            .field("failed", &self.failed)
            .finish()
    }
}

impl Wal {
    /// Open (creating the directory if needed) and recover. See the module
    /// documentation for what a torn tail is and what is `Corrupt`.
    pub fn open(opts: WalOptions) -> Result<(Wal, Recovered), WalError> {
        Wal::open_with(opts, Arc::new(RealFs))
    }

    /// [`open`](Self::open) on another file system, such as a [`MemFs`]
    /// that simulates crashes.
    pub fn open_with(opts: WalOptions, fs: Arc<dyn WalFs>) -> Result<(Wal, Recovered), WalError> {
        fs.create_dir_all(&opts.dir)?;
        // Before reading anything: another writer may be appending.
        let lock = fs.lock_dir(&opts.dir)?;
        let out = recovery::recover(fs.as_ref(), &opts.dir)?;
        // Opening writes the next segment and commit: their numbers must
        // still be ones a later recovery accepts.
        if out.last_segment >= segment::MAX_SEQ || out.last_commit >= segment::MAX_SEQ {
            return Err(WalError::Exhausted {
                dir: opts.dir.clone(),
                segment: out.last_segment,
                commit: out.last_commit,
                max: segment::MAX_SEQ,
            });
        }
        info!(
            dir = %opts.dir.display(),
            groups = out.recovered.groups.len(),
            records = out.recovered.records,
            segments = out.recovered.segments,
            truncated = out.recovered.truncated_tail_bytes,
            "WAL recovered"
        );
        let mut wal = Wal {
            opts,
            fs,
            active: None,
            next_commit: out.last_commit + 1,
            tracker: out.tracker,
            // Segments may have become unneeded before a crash that came
            // before their deletion.
            maintenance: true,
            stats: WalStats::default(),
            failed: false,
            head: Vec::new(),
            overlay: IdMap::default(),
            unsynced: None,
            _lock: lock,
        };
        // Start a fresh segment (it begins with a checkpoint): appends never
        // go after a tail that recovery had to cut.
        wal.commit_checked(&WalBatch::default(), out.last_segment + 1)?;
        Ok((wal, out.recovered))
    }

    /// Write the batch and make it durable with one fsync; returns when it
    /// is. An empty batch writes nothing. A batch that is invalid as a whole
    /// ([`WalError::InvalidBatch`], see the methods of [`WalBatch`]) writes
    /// nothing either and leaves the WAL usable.
    pub fn write(&mut self, batch: &WalBatch) -> Result<(), WalError> {
        match self.append_checked(batch)? {
            Some(w) => self.finish_commit(batch, w),
            None => Ok(()),
        }
    }

    /// [`write`](Self::write) in two halves: append the batch now, and
    /// leave its fsync to [`sync`](Self::sync) — or to whatever the WAL
    /// does next: every other write, and segment deletion, first syncs the
    /// batch before (each write is synced before the next one starts, so
    /// only the last commit can be torn). Until it is synced, the batch is
    /// not durable and not in what [`last_index`](Self::last_index),
    /// [`segments`](Self::segments) and the like report.
    ///
    /// For a caller with work that depends on nothing the batch holds (the
    /// drive loop tells a host of commits that were durable before): the
    /// batch's bytes are on their way meanwhile, and whatever that work
    /// writes to the WAL lands after the batch, as it would have after a
    /// whole `write`.
    pub fn write_unsynced(&mut self, batch: WalBatch) -> Result<(), WalError> {
        if let Some(w) = self.append_checked(&batch)? {
            self.unsynced = Some((batch, w));
        }
        Ok(())
    }

    /// Make the batch [`write_unsynced`](Self::write_unsynced) appended
    /// durable, if some is still waiting; returns when it is. Fails if the
    /// WAL failed since (whoever's write found the failure: the batch may
    /// not be durable).
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        match self.unsynced.take() {
            Some((batch, w)) => self.finish_commit(&batch, w),
            None => Ok(()),
        }
    }

    /// Sync what waits, check the batch and append it (into a new segment
    /// if the active one is full). `None`: an empty batch, nothing written.
    fn append_checked(&mut self, batch: &WalBatch) -> Result<Option<Written>, WalError> {
        self.sync()?;
        self.check_writable(batch)?;
        if batch.ops.is_empty() {
            return Ok(None);
        }
        let roll = match &self.active {
            Some(a) if a.len < self.opts.segment_bytes => None,
            Some(a) => Some(a.seq + 1),
            None => return Err(WalError::Failed),
        };
        self.append_commit(batch, roll)
            .map(Some)
            .inspect_err(|_| self.failed = true)
    }

    /// Write the batch as [`write`](Self::write) does, but as the first
    /// commit of a new segment (after its checkpoint), even if it is empty
    /// and the active segment is not full. For reclaiming space: once the
    /// live logs of older segments are rewritten into it, all of them can
    /// go (see "Segment deletion").
    pub fn write_in_new_segment(&mut self, batch: &WalBatch) -> Result<(), WalError> {
        self.sync()?;
        self.check_writable(batch)?;
        let Some(seq) = self.active.as_ref().map(|a| a.seq + 1) else {
            return Err(WalError::Failed);
        };
        self.commit_checked(batch, seq)
    }

    /// Bytes a new segment costs before it holds anything (its header and
    /// the checkpoint of every live group), as the active one did.
    pub fn segment_base_bytes(&self) -> u64 {
        self.active.as_ref().map_or(0, |a| a.base)
    }

    /// Stop writing for good and let the directory go: another `Wal` may
    /// open it from now on. Later writes fail with [`WalError::Failed`];
    /// [`segments`](Self::segments) and [`stats`](Self::stats) still answer.
    pub fn close(&mut self) {
        self.failed = true;
        self.unsynced = None;
        self.active = None;
        self._lock = DirLock::none();
    }

    /// Delete every segment except the active one that holds no entry of
    /// any live group's current log; returns how many were deleted. Cheap
    /// when there is nothing to delete (one pass over the segment list).
    pub fn delete_unneeded_segments(&mut self) -> Result<usize, WalError> {
        self.sync()?;
        if self.failed {
            return Err(WalError::Failed);
        }
        let Some(active) = self.active.as_ref().map(|a| a.seq) else {
            return Err(WalError::Failed);
        };
        let victims = self.tracker.unneeded_segments(active);
        if victims.is_empty() {
            self.maintenance = false;
            return Ok(0);
        }
        let mut deleted = 0;
        let mut result = Ok(());
        for &seq in &victims {
            match self.fs.remove(&segment::segment_path(&self.opts.dir, seq)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            self.tracker.forget_segment(seq);
            deleted += 1;
        }
        self.stats.segments_deleted += deleted as u64;
        self.stats.segments = self.tracker.segment_count();
        result?;
        // Not needed for safety (a segment that comes back after a crash is
        // replayed harmlessly), but keeps the directory in step.
        self.fs.sync_dir(&self.opts.dir)?;
        self.stats.fsyncs += 1;
        self.maintenance = false;
        debug!(deleted, "deleted unneeded WAL segments");
        Ok(deleted)
    }

    /// Whether a segment rolled, or a group was compacted, installed a
    /// snapshot, was removed or overwrote entries, since the last successful
    /// [`delete_unneeded_segments`](Self::delete_unneeded_segments) (or the
    /// open): only then can it delete anything, or can the segment list
    /// ([`segments`](Self::segments)) have changed in a way that matters to
    /// the un-pinning policy. A cheap flag: check it after each write.
    pub fn needs_maintenance(&self) -> bool {
        self.maintenance
    }

    /// Every segment file, oldest first, with its size and an estimate of
    /// the bytes live logs still need in it. One pass over the segments.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let active = self.active.as_ref().map(|a| a.seq);
        self.tracker
            .segments()
            .map(|(seq, s)| SegmentInfo {
                seq,
                bytes: s.bytes,
                live_bytes: s.live_bytes,
                runs: s.runs,
                active: Some(seq) == active,
            })
            .collect()
    }

    /// Estimated bytes of segment `seq` that live logs still need (see
    /// [`SegmentInfo::live_bytes`]); `None` if there is no such segment.
    pub fn live_bytes_in(&self, seq: u64) -> Option<u64> {
        self.tracker.segment(seq).map(|s| s.live_bytes)
    }

    /// The groups that keep old segments from being deleted: up to `max` of
    /// them, those whose log reaches into the oldest segment first. Each
    /// group is listed once, under the oldest segment it has entries in
    /// ([`Pinned::seq`]), with the first index of its log there.
    ///
    /// To un-pin: for each listed group still live with that incarnation,
    /// read its entries from `first_index` to its **current** last durable
    /// index from its store and add them to a batch with
    /// [`WalBatch::rewrite_entries`] (the same bytes go to the active
    /// segment; the log does not change). Once written, the group no longer
    /// has entries in any older segment, and
    /// [`delete_unneeded_segments`](Self::delete_unneeded_segments) deletes
    /// the segments nobody else needs. See the module documentation
    /// ("Segment deletion") for when it is worth it.
    ///
    /// Cost: one pass over the live groups (not per write: call it when the
    /// policy decided to un-pin a segment).
    pub fn pinning(&self, max: usize) -> Vec<Pinned> {
        match &self.active {
            Some(a) => self.tracker.pinning(a.seq, max),
            None => Vec::new(),
        }
    }

    /// Every live group that has entries in the segment files, each with
    /// the oldest segment it has entries in and the first index there (as
    /// [`pinning`](Self::pinning), the active segment included). One pass
    /// over the live groups.
    pub fn live_logs(&self) -> Vec<Pinned> {
        // Segment numbers start at 1: "active = 0" excludes nothing.
        self.tracker.pinning(0, usize::MAX)
    }

    /// The last index of `group`'s log in the WAL (its compaction point if
    /// the log is empty); None if it is not live.
    pub fn last_index(&self, group: u64) -> Option<u64> {
        self.tracker.group(group).map(|g| g.last_index())
    }

    pub fn stats(&self) -> WalStats {
        self.stats
    }

    /// Estimated bytes of `group`'s current log in the segment files (the
    /// records that wrote its entries; see [`SegmentInfo::live_bytes`]).
    pub fn log_bytes(&self, group: u64) -> u64 {
        self.tracker.log_bytes(group)
    }

    /// Path of the segment being appended to.
    pub fn active_segment(&self) -> Option<PathBuf> {
        self.active
            .as_ref()
            .map(|a| segment::segment_path(&self.opts.dir, a.seq))
    }

    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }

    /// The WAL has not failed and the batch is valid as a whole (see
    /// [`validate`](Self::validate)).
    fn check_writable(&mut self, batch: &WalBatch) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        if let Some(reason) = &batch.invalid {
            return Err(WalError::InvalidBatch(reason.clone()));
        }
        let mut overlay = std::mem::take(&mut self.overlay);
        overlay.clear();
        let checked = self.validate(batch, &mut overlay);
        // Kept for the next batch, unless one far larger than usual left
        // it big (clearing costs its capacity).
        if overlay.capacity() <= 4 * batch.ops.len().max(1024) {
            self.overlay = overlay;
        }
        checked
    }

    /// Check the batch against the live groups before writing any of it.
    /// `overlay` (empty) receives the groups the batch itself changes:
    /// Some if live.
    fn validate(
        &self,
        batch: &WalBatch,
        overlay: &mut IdMap<Option<Live>>,
    ) -> Result<(), WalError> {
        overlay.reserve(batch.ops.len());
        for op in &batch.ops {
            let (group, incarnation) = match op {
                Op::Create { group, .. } | Op::Remove { group, .. } => (*group, None),
                Op::HardState {
                    group, incarnation, ..
                }
                | Op::Commit {
                    group, incarnation, ..
                }
                | Op::Entries {
                    group, incarnation, ..
                }
                | Op::Compact {
                    group, incarnation, ..
                }
                | Op::Install {
                    group, incarnation, ..
                } => (*group, Some(*incarnation)),
            };
            let live = match overlay.get(&group) {
                Some(&s) => s,
                None => self.tracker.group(group).map(|g| Live {
                    incarnation: g.incarnation,
                    last: g.last_index(),
                    compacted: g.compacted_index,
                }),
            };
            let invalid = |m: String| Err(WalError::InvalidBatch(format!("group {group}: {m}")));
            if let (Some(theirs), Some(ours)) = (incarnation, live) {
                if theirs != ours.incarnation {
                    // A write for an earlier (or later) life of the group id:
                    // it must not land in this one's log.
                    return invalid(format!(
                        "record for incarnation {theirs}, but the live group is incarnation {}",
                        ours.incarnation
                    ));
                }
            }
            let next = match (op, live) {
                (Op::Create { .. }, Some(_)) => return invalid("created but it exists".into()),
                (Op::Create { incarnation, .. }, None) => Some(Live {
                    incarnation: *incarnation,
                    last: 0,
                    compacted: 0,
                }),
                (_, None) => return invalid("does not exist".into()),
                (Op::Remove { .. }, Some(_)) => None,
                (Op::HardState { .. } | Op::Commit { .. }, Some(g)) => Some(g),
                (
                    Op::Entries {
                        first,
                        last: end,
                        rewrite,
                        ..
                    },
                    Some(g),
                ) => {
                    if *first <= g.compacted {
                        return invalid(format!(
                            "entries start at {first}, at or below the compaction point {}",
                            g.compacted
                        ));
                    }
                    if *first > g.last + 1 {
                        return invalid(format!(
                            "entries start at {first} but the log ends at {}",
                            g.last
                        ));
                    }
                    if *rewrite && *end != g.last {
                        return invalid(format!(
                            "a rewrite of entries {first}..={end} would cut the log, which ends at {}",
                            g.last
                        ));
                    }
                    Some(Live { last: *end, ..g })
                }
                (Op::Compact { index, .. }, Some(g)) => {
                    if *index > g.last {
                        return invalid(format!(
                            "compaction to {index} but the log ends at {}",
                            g.last
                        ));
                    }
                    Some(Live {
                        compacted: g.compacted.max(*index),
                        ..g
                    })
                }
                (Op::Install { index, .. }, Some(g)) => {
                    if *index < g.compacted {
                        return invalid(format!(
                            "snapshot install at {index}, below the compaction point {}",
                            g.compacted
                        ));
                    }
                    Some(Live {
                        last: *index,
                        compacted: *index,
                        ..g
                    })
                }
            };
            overlay.insert(group, next);
        }
        Ok(())
    }

    /// [`commit`](Self::commit) into a new segment `seq`; marks the WAL
    /// failed on error.
    fn commit_checked(&mut self, batch: &WalBatch, seq: u64) -> Result<(), WalError> {
        let w = self
            .append_commit(batch, Some(seq))
            .inspect_err(|_| self.failed = true)?;
        self.finish_commit(batch, w)
    }

    /// Append one commit — a checkpoint first if starting segment `roll`,
    /// then the batch — for [`finish_commit`](Self::finish_commit) to sync.
    fn append_commit(&mut self, batch: &WalBatch, roll: Option<u64>) -> Result<Written, WalError> {
        let mut body = Vec::new();
        let mut count = batch.records;
        if roll.is_some() {
            record::encode_checkpoint(&mut body, &self.tracker.checkpoint())
                .map_err(WalError::InvalidBatch)?;
            count += 1;
            let tombstones = self.tracker.tombstones();
            if !tombstones.is_empty() {
                let all: Vec<_> = tombstones.iter().collect();
                record::encode_tombstones(&mut body, all.into_iter())
                    .map_err(WalError::InvalidBatch)?;
                count += 1;
            }
        }
        if let Some(seq) = roll {
            let (file, path) = segment::create_segment(self.fs.as_ref(), &self.opts.dir, seq)?;
            debug!(segment = %path.display(), "starting WAL segment");
            // 0 is "no salt" in a damaged header (see segment.rs).
            let salt = match self.fs.salt() {
                0 => 1,
                s => s,
            };
            self.active = Some(Active {
                file,
                seq,
                salt,
                len: 0,
                base: (segment::SEGMENT_HEADER + record::COMMIT_RECORD + body.len()) as u64,
            });
            self.tracker.add_segment(seq);
            self.stats.segments = self.tracker.segment_count();
            self.maintenance = true;
        }
        let Some(active) = self.active.as_mut() else {
            return Err(WalError::Failed);
        };
        let head = &mut self.head;
        head.clear();
        if roll.is_some() {
            segment::encode_header(head, active.seq, active.salt);
        }
        let body_len = (body.len() + batch.buf.len()) as u64;
        record::encode_commit(head, self.next_commit, body_len, count, active.salt);
        head.extend_from_slice(&body);
        let batch_at = active.len + head.len() as u64;

        // One write_all for the usual small batch; a large one is not copied.
        if batch.buf.len() <= COPY_BATCH_BELOW {
            head.extend_from_slice(&batch.buf);
            active.file.append(head)?;
        } else {
            active.file.append(head)?;
            active.file.append(&batch.buf)?;
        }
        Ok(Written {
            seq: active.seq,
            batch_at,
            bytes: batch_at - active.len + batch.buf.len() as u64,
            records: count,
            rolled: roll.is_some(),
        })
    }

    /// Sync the commit `append_commit` wrote for `batch` and update the
    /// bookkeeping; marks the WAL failed on error.
    fn finish_commit(&mut self, batch: &WalBatch, w: Written) -> Result<(), WalError> {
        self.sync_commit(w).inspect_err(|_| self.failed = true)?;
        let Some(active) = self.active.as_mut() else {
            return Err(WalError::Failed);
        };
        active.len += w.bytes;
        let len = active.len;
        self.tracker.set_segment_bytes(w.seq, len);
        self.stats.bytes += w.bytes;
        self.stats.records += u64::from(w.records);
        self.next_commit += 1;
        self.apply(batch, w.seq, w.batch_at);
        Ok(())
    }

    fn sync_commit(&mut self, w: Written) -> Result<(), WalError> {
        let Some(active) = self.active.as_mut() else {
            return Err(WalError::Failed);
        };
        active.file.sync_data()?;
        self.stats.fsyncs += 1;
        if w.rolled {
            self.fs.sync_dir(&self.opts.dir)?;
            self.stats.fsyncs += 1;
        }
        Ok(())
    }

    /// The batch is durable: update what we know of the groups.
    fn apply(&mut self, batch: &WalBatch, seq: u64, batch_at: u64) {
        let t = &mut self.tracker;
        // The batch was validated against this state, so these cannot fail.
        for op in &batch.ops {
            let _ = match op {
                Op::Create {
                    group,
                    incarnation,
                    members,
                    voting,
                    offset,
                } => t.create(
                    *group,
                    Creation {
                        seq,
                        offset: batch_at + *offset as u64,
                    },
                    *incarnation,
                    members.clone(),
                    *voting,
                ),
                Op::Remove { group, tombstone } => {
                    self.maintenance = true;
                    t.remove(*group, *tombstone)
                }
                Op::HardState { group, hs, .. } => t.set_hard_state(*group, *hs),
                Op::Commit { group, commit, .. } => t.raise_commit(*group, *commit),
                Op::Entries {
                    group,
                    first,
                    last,
                    commit,
                    bytes,
                    ..
                } => t
                    .append(*group, *first, *last, seq, *bytes)
                    .and_then(|overwrote| {
                        self.maintenance |= overwrote;
                        t.raise_commit(*group, *commit)
                    }),
                Op::Compact {
                    group, index, term, ..
                } => {
                    self.maintenance = true;
                    t.compact(*group, *index, *term)
                }
                Op::Install {
                    group, index, term, ..
                } => {
                    self.maintenance = true;
                    t.install(*group, *index, *term)
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::LogStore;
    use crate::raft::{Entry, EntryKind, HardState};
    use bytes::Bytes;
    use std::fs;

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "muxraft-wal-unit-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn ents(first: u64, n: u64, term: u64) -> Vec<Entry> {
        (first..first + n)
            .map(|i| Entry {
                term,
                index: i,
                kind: EntryKind::Normal,
                data: Bytes::from(vec![i as u8; 100]),
            })
            .collect()
    }

    #[test]
    fn runtime_and_recovered_bookkeeping_agree() {
        let dir = tempdir("bookkeeping");
        let mut opts = WalOptions::new(&dir);
        opts.segment_bytes = 2048;
        let (mut wal, _) = Wal::open(opts.clone()).unwrap();
        let mut b = WalBatch::default();
        b.create_group(1, 1, &[1, 2, 3]);
        b.create_group(2, 1, &[1, 2, 3]);
        b.create_group(3, 1, &[1, 2, 3]);
        b.entries(3, 1, &ents(1, 5, 1));
        wal.write(&b).unwrap();
        for round in 0..20u64 {
            let mut b = WalBatch::default();
            b.entries(1, 1, &ents(round * 3 + 1, 3, 1));
            // Group 2 keeps overwriting its first entries.
            b.entries(2, 1, &ents(1, 2, round + 1));
            b.hard_state(
                2,
                1,
                HardState {
                    term: round + 1,
                    vote: 1,
                    commit: 1,
                },
            );
            // Group 1 compacts behind itself; group 3 installs snapshots.
            if round > 2 {
                b.compact(1, 1, round * 3 - 4, 1);
            }
            if round % 5 == 4 {
                b.install_snapshot(3, 1, round * 10, round);
                b.entries(3, 1, &ents(round * 10 + 1, 2, round));
            }
            wal.write(&b).unwrap();
        }
        let live: Vec<(u64, tracker::SegmentState)> = wal
            .tracker
            .segments_snapshot()
            .into_iter()
            .collect::<Vec<_>>();
        drop(wal);
        let (wal2, rec) = Wal::open(opts).unwrap();
        let again: Vec<(u64, tracker::SegmentState)> =
            wal2.tracker.segments_snapshot().into_iter().collect();
        // The reopened WAL has one more (fresh, empty) segment.
        assert_eq!(&again[..live.len()], &live[..]);
        assert_eq!(again.len(), live.len() + 1);
        assert_eq!(rec.groups[&2].store.hard_state().term, 20);
        assert_eq!(rec.groups[&1].compacted_index, 53);
        assert_eq!(rec.groups[&3].store.first_index(), 191);
        assert!(live
            .iter()
            .any(|(_, s)| s.live_bytes > 0 && s.live_bytes < s.bytes));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_wal_refuses_further_writes() {
        let dir = tempdir("failed");
        let (mut wal, _) = Wal::open(WalOptions::new(&dir)).unwrap();
        wal.failed = true;
        let mut b = WalBatch::default();
        b.create_group(1, 1, &[1]);
        assert!(matches!(wal.write(&b), Err(WalError::Failed)));
        assert!(matches!(
            wal.delete_unneeded_segments(),
            Err(WalError::Failed)
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
