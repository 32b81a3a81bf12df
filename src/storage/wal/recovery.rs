//! Replaying the segments at open: rebuild every live group's log and hard
//! state, and the bookkeeping that says which segments are still needed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use super::fs::WalFs;
use super::record::{Creation, Record};
use super::segment::{list_segments, SegmentReader, MAX_SEQ};
use super::tracker::Tracker;
use super::{Recovered, RecoveredGroup, WalError};
use crate::raft::{Entry, MemStore, SnapshotMeta};

/// What recovery does to the last segment after reading it.
enum Tail<'a> {
    /// Its header was never completely written: remove it.
    Remove(&'a Path),
    /// Keep (and make durable) its first bytes, cutting any torn tail.
    Keep(&'a Path, u64),
}

/// What [`recover`] hands the WAL.
pub(super) struct Outcome {
    pub recovered: Recovered,
    pub tracker: Tracker,
    /// Highest segment sequence number seen (0 if none).
    pub last_segment: u64,
    /// Highest commit sequence number seen (0 if none).
    pub last_commit: u64,
}

/// The lowest index a group's log is missing below entries it holds, and
/// the record that left it.
struct Gap {
    at: u64,
    segment: PathBuf,
    offset: u64,
}

/// A group's log as replay rebuilds it: the entries after its compaction
/// point. It may have a hole for a while: entries that a later record
/// overwrote may sit in a segment that was deleted, while the entries after
/// them survive in a kept one. A later overwrite, a compaction past the hole
/// or a snapshot install must do away with every hole before the end of the
/// replay.
struct GroupLog {
    entries: BTreeMap<u64, Entry>,
    /// The compaction point: the log starts after it.
    compacted: u64,
    gap: Option<Gap>,
    /// Segments found missing before the last record that told what the
    /// log holds (Create, Entries, Install): a new hole is allowed only if
    /// more are missing by now.
    missing_ref: u64,
}

impl GroupLog {
    fn new(missing_ref: u64) -> GroupLog {
        GroupLog {
            entries: BTreeMap::new(),
            compacted: 0,
            gap: None,
            missing_ref,
        }
    }

    /// Last index of the log (the compaction point when it holds nothing).
    fn last(&self) -> u64 {
        self.entries
            .last_key_value()
            .map_or(self.compacted, |(&k, _)| k)
    }

    fn append(
        &mut self,
        first: u64,
        entries: Vec<Entry>,
        missing_now: u64,
        segment: &Path,
        offset: u64,
    ) -> Result<(), String> {
        if first <= self.compacted {
            // The WAL never writes this (it refuses the batch).
            return Err(format!(
                "entries start at {first}, at or below the compaction point {}",
                self.compacted
            ));
        }
        drop(self.entries.split_off(&first));
        if self.gap.as_ref().is_some_and(|g| first <= g.at) {
            self.gap = None;
        }
        let last = self.last();
        // With a hole already open below `first`, whatever lies between it
        // and `first` is part of it: only an overwrite at or below its start
        // can fill it, and that drops everything above.
        if first > last + 1 && self.gap.is_none() {
            if missing_now <= self.missing_ref {
                return Err(format!(
                    "entries start at {first} but the log ends at {last} (a gap)"
                ));
            }
            self.gap = Some(Gap {
                at: last + 1,
                segment: segment.to_path_buf(),
                offset,
            });
        }
        self.missing_ref = missing_now;
        self.entries
            .extend(entries.into_iter().map(|e| (e.index, e)));
        Ok(())
    }

    /// Entries up to and including `index` are gone: drop them (trimming
    /// what an Entries record straddling `index` wrote). A hole at or
    /// below `index` is gone with them; what is left of the log must then
    /// run without a hole from `index + 1`, or the hole starts at the first
    /// index missing there. At or below the current point: nothing.
    ///
    /// Unlike an overwrite, this does not say what the log holds above
    /// `index` (entries written there may sit in a deleted segment), so
    /// `missing_ref` stays.
    fn compact(&mut self, index: u64) {
        if index <= self.compacted {
            return;
        }
        self.compacted = index;
        self.entries = self.entries.split_off(&(index + 1));
        let Some(gap) = &mut self.gap else {
            return;
        };
        if gap.at > index {
            return;
        }
        // What is left above the point, from `index + 1`: the first index
        // missing below the last one held, if any.
        let missing = (index + 1..)
            .zip(self.entries.keys())
            .find(|&(expect, &k)| k != expect);
        match missing {
            Some((at, _)) => gap.at = at,
            None => self.gap = None,
        }
    }

    /// A checkpoint says the log ends at `last`: whatever is held above it
    /// is stale (an install shortened the log, and its record is in a
    /// deleted segment). Entries held up to `last` may still be stale too,
    /// but only where a later record replaces them (else the segment with
    /// the right ones would have been kept and replayed).
    fn truncate(&mut self, last: u64) {
        drop(self.entries.split_off(&(last + 1)));
        let held = self.last();
        if self.gap.as_ref().is_some_and(|g| g.at > held) {
            // Nothing held above it any more: a short log, not a hole.
            self.gap = None;
        }
    }

    /// The log is replaced by a snapshot at `index`: empty, continuing at
    /// `index + 1`. Says exactly what the log holds, holes or not.
    fn install(&mut self, index: u64, missing_now: u64) {
        self.entries.clear();
        self.compacted = index;
        self.gap = None;
        self.missing_ref = missing_now;
    }
}

/// The fields of a decoded Entries record.
struct EntriesRecord {
    group: u64,
    first: u64,
    commit: u64,
    entries: Vec<Entry>,
    /// Bytes of the record, header included.
    bytes: u64,
}

struct Replay {
    tracker: Tracker,
    logs: HashMap<u64, GroupLog>,
    records: u64,
    last_commit: u64,
    /// Segment sequence numbers below the current one that no longer exist
    /// (numbering starts at 1 and is never reused).
    missing_now: u64,
    /// The same count at the last checkpoint replayed. Not simply at the
    /// previous segment read: a segment can hold no commit at all (the
    /// header of a segment whose first write was torn, cut back by a later
    /// recovery), hence no checkpoint.
    missing_at_checkpoint: u64,
}

impl Replay {
    fn apply(&mut self, seq: u64, offset: u64, rec: Record) -> Result<(), String> {
        self.records += 1;
        match rec {
            Record::Checkpoint(groups) => {
                let r = self.tracker.reconcile(&groups)?;
                // The segment's start is the whole state: its tombstones
                // follow, if any.
                self.tracker.set_tombstones(Vec::new());
                for g in r.dropped {
                    self.logs.remove(&g);
                }
                // A group the last checkpoint did not list, and whose Create
                // record was not replayed, was created in a segment missing
                // since: its entries can only be in segments missing since.
                for g in r.introduced {
                    self.logs
                        .insert(g, GroupLog::new(self.missing_at_checkpoint));
                }
                self.missing_at_checkpoint = self.missing_now;
                // A Compact or Install record in a deleted segment is known
                // only from here.
                for cp in &groups {
                    if let Some(log) = self.logs.get_mut(&cp.group) {
                        log.compact(cp.compacted_index);
                        log.truncate(cp.last_index);
                    }
                }
            }
            Record::Create {
                group,
                incarnation,
                voting,
                members,
            } => {
                self.tracker.create(
                    group,
                    Creation { seq, offset },
                    incarnation,
                    members,
                    voting,
                )?;
                self.logs.insert(group, GroupLog::new(self.missing_now));
            }
            Record::Remove { group, tombstone } => {
                self.tracker.remove(group, tombstone)?;
                self.logs.remove(&group);
            }
            Record::Tombstones(all) => self.tracker.set_tombstones(all),
            Record::HardState { group, hs } => self.tracker.set_hard_state(group, hs)?,
            Record::Commits(pairs) => {
                for (group, commit) in pairs {
                    self.tracker.raise_commit(group, commit)?;
                }
            }
            Record::Compact { group, index, term } => {
                self.tracker.compact(group, index, term)?;
                self.log(group)?.compact(index);
            }
            Record::Install { group, index, term } => {
                self.tracker.install(group, index, term)?;
                let missing_now = self.missing_now;
                self.log(group)?.install(index, missing_now);
            }
            Record::Entries { .. } => unreachable!("handled by apply_entries"),
        }
        Ok(())
    }

    fn log(&mut self, group: u64) -> Result<&mut GroupLog, String> {
        self.logs
            .get_mut(&group)
            .ok_or_else(|| format!("group {group} does not exist"))
    }

    fn apply_entries(
        &mut self,
        seq: u64,
        segment: &Path,
        offset: u64,
        rec: EntriesRecord,
    ) -> Result<(), String> {
        let EntriesRecord {
            group,
            first,
            commit,
            entries,
            bytes,
        } = rec;
        self.records += 1;
        let last = first + entries.len() as u64 - 1;
        self.tracker.append(group, first, last, seq, bytes)?;
        self.tracker.raise_commit(group, commit)?;
        let missing_now = self.missing_now;
        self.log(group)?
            .append(first, entries, missing_now, segment, offset)
            .map_err(|e| format!("group {group}: {e}"))
    }

    fn finish(mut self, dir: &Path) -> Result<(BTreeMap<u64, RecoveredGroup>, Tracker), WalError> {
        let mut groups = BTreeMap::new();
        for (&id, g) in self.tracker.groups() {
            let log = self.logs.remove(&id).unwrap_or_else(|| GroupLog::new(0));
            if let Some(gap) = log.gap {
                return Err(WalError::Corrupt {
                    segment: gap.segment,
                    offset: gap.offset,
                    reason: format!(
                        "group {id}: entries from index {} on are missing and no later record replaces them",
                        gap.at
                    ),
                });
            }
            if log.compacted != g.compacted_index {
                return Err(WalError::Corrupt {
                    segment: dir.to_path_buf(),
                    offset: 0,
                    reason: format!(
                        "group {id}: log compacted to {} but the group to {}",
                        log.compacted, g.compacted_index
                    ),
                });
            }
            let entries: Vec<Entry> = log.entries.into_values().collect();
            // Guaranteed by the hole tracking; checked rather than left to
            // MemStore's assertion, since it comes from disk.
            if let Some((i, e)) = entries
                .iter()
                .enumerate()
                .find(|(i, e)| e.index != g.compacted_index + *i as u64 + 1)
            {
                return Err(WalError::Corrupt {
                    segment: dir.to_path_buf(),
                    offset: 0,
                    reason: format!(
                        "group {id}: recovered log has index {} at position {} after the compaction point {}",
                        e.index,
                        i + 1,
                        g.compacted_index
                    ),
                });
            }
            let store = MemStore::restored(
                g.hard_state,
                SnapshotMeta::default(),
                g.compacted_index,
                g.compacted_term,
                entries,
            );
            groups.insert(
                id,
                RecoveredGroup {
                    incarnation: g.incarnation,
                    members: g.members.clone(),
                    rejoined: g.rejoined,
                    vote_floor: self.tracker.vote_floor(id),
                    store,
                    compacted_index: g.compacted_index,
                    compacted_term: g.compacted_term,
                },
            );
        }
        Ok((groups, self.tracker))
    }
}

/// Read every segment of `dir` in order and rebuild the groups. A torn tail
/// of the last segment is cut off the file.
pub(super) fn recover(fs: &dyn WalFs, dir: &Path) -> Result<Outcome, WalError> {
    let segments = list_segments(fs, dir)?;
    let mut replay = Replay {
        tracker: Tracker::default(),
        logs: HashMap::new(),
        records: 0,
        last_commit: 0,
        missing_now: 0,
        missing_at_checkpoint: 0,
    };
    let mut truncated = 0u64;
    let mut read = 0usize;
    let last_segment = segments.last().map_or(0, |(seq, _)| *seq);
    // What to do to the last segment once everything has been read.
    let mut tail: Option<Tail> = None;
    for (i, (seq, path)) in segments.iter().enumerate() {
        let seq = *seq;
        let is_last = i + 1 == segments.len();
        let corrupt = |offset: u64, reason: String| WalError::Corrupt {
            segment: path.clone(),
            offset,
            reason,
        };
        // Checked on the name alone, before anything is read: the next
        // segment's number is this one plus one.
        if seq > MAX_SEQ {
            return Err(corrupt(
                0,
                format!(
                    "segment sequence number {seq} is past the largest a WAL writes ({MAX_SEQ})"
                ),
            ));
        }
        let data = fs.read(path)?;
        let Some(mut reader) = SegmentReader::open(path, seq, &data, is_last, replay.last_commit)?
        else {
            warn!(segment = %path.display(), bytes = data.len(), "removing a segment whose header was never completely written");
            truncated += data.len() as u64;
            tail = Some(Tail::Remove(path));
            continue;
        };
        replay.missing_now = seq.saturating_sub(1).saturating_sub(i as u64);
        replay.tracker.add_segment(seq);
        read += 1;
        while let Some(commit) = reader.next_commit()? {
            if commit.seq > MAX_SEQ {
                return Err(corrupt(
                    commit.offset,
                    format!(
                        "commit sequence number {} is past the largest a WAL writes ({MAX_SEQ})",
                        commit.seq
                    ),
                ));
            }
            if commit.seq <= replay.last_commit {
                return Err(corrupt(
                    commit.offset,
                    format!(
                        "commit {} follows commit {}",
                        commit.seq, replay.last_commit
                    ),
                ));
            }
            replay.last_commit = commit.seq;
            for (offset, rec) in commit.records {
                let r = match rec {
                    Record::Entries {
                        group,
                        first,
                        commit,
                        entries,
                        len,
                    } => replay.apply_entries(
                        seq,
                        path,
                        offset,
                        EntriesRecord {
                            group,
                            first,
                            commit,
                            entries,
                            bytes: len,
                        },
                    ),
                    rec => replay.apply(seq, offset, rec),
                };
                r.map_err(|reason| corrupt(offset, reason))?;
            }
        }
        let len = match reader.torn_at {
            Some(at) => {
                let cut = data.len() as u64 - at;
                warn!(segment = %path.display(), offset = at, bytes = cut, "truncating a torn tail");
                truncated += cut;
                at
            }
            None => data.len() as u64,
        };
        replay.tracker.set_segment_bytes(seq, len);
        if is_last {
            tail = Some(Tail::Keep(path, len));
        }
        debug!(segment = %path.display(), "replayed");
    }
    let records = replay.records;
    let last_commit = replay.last_commit;
    let (groups, tracker) = replay.finish(dir)?;
    // Only now that everything was read without error is the directory
    // changed: a refused open leaves it as it was.
    match tail {
        None => {}
        // Durably (below): were it to come back after another crash, it
        // would no longer be the last segment, and read as corruption.
        Some(Tail::Remove(path)) => fs.remove(path)?,
        // Cut the torn tail, if any, and in any case make what was
        // recovered durable: it may come from a write whose sync failed,
        // read back from the page cache by a restart without a power loss.
        // Nothing may be built on it before it is on disk.
        Some(Tail::Keep(path, len)) => fs.truncate(path, len)?,
    }
    // Likewise the directory entry of the last segment, whose creation may
    // not have been synced either, before a new segment follows it.
    fs.sync_dir(dir)?;
    Ok(Outcome {
        recovered: Recovered {
            tombstones: tracker.tombstones().iter().collect(),
            groups,
            truncated_tail_bytes: truncated,
            records,
            segments: read,
        },
        tracker,
        last_segment,
        last_commit,
    })
}
