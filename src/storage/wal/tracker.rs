//! Which live groups exist, and which segments still hold entries they need.
//!
//! The WAL keeps this in memory (rebuilt by recovery) to answer one question
//! cheaply: may this old segment be deleted? For each live group it keeps
//! the *runs* of its current log — maximal index ranges written by records
//! of the same segment — and each segment counts the runs that point into it.
//! An overwrite trims or drops the runs it replaces, a compaction trims or
//! drops the runs at or below its index, a snapshot install or a removal
//! drops all of a group's runs; a segment whose count falls to zero holds no
//! entry anyone needs. Creation, removal, hard-state, compaction and install
//! records never pin a segment: every segment starts with a checkpoint of
//! all live groups (see the module docs of `wal`), which supersedes them
//! all.
//!
//! Along the index order of a log, the segments of its runs never decrease
//! (a record replaces everything after its first index, so whatever it left
//! in place was written earlier): a group's first run is in the oldest
//! segment it pins. That makes [`Tracker::pinning`] a pass over the groups.
//!
//! Each run also carries an estimate of its bytes in its segment (the
//! length of the records that wrote it, scaled down in proportion when it
//! is trimmed), and each segment the sum over its runs: its *live bytes*,
//! which drive the un-pinning policy.

use std::collections::{BTreeMap, HashMap};

use super::record::{Creation, GroupCheckpoint, Voting};
use crate::idmap::IdMap;
use crate::raft::{HardState, Predecessor};
use crate::tombstones::Tombstones;

/// Entries `first..=last` of a group's current log were written in segment
/// `seq`, by records about `bytes` long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    first: u64,
    last: u64,
    seq: u64,
    bytes: u64,
}

impl Run {
    fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// The run cut to `first..=last` (within it): its bytes shrink in
    /// proportion. Returns the bytes it lost.
    fn trim(&mut self, first: u64, last: u64) -> u64 {
        let old = self.len();
        self.first = first;
        self.last = last;
        let kept = (u128::from(self.bytes) * u128::from(self.len()) / u128::from(old)) as u64;
        let lost = self.bytes - kept;
        self.bytes = kept;
        lost
    }
}

#[derive(Clone, Debug)]
pub(super) struct GroupState {
    /// Where its Create record is: tells its lives apart in recovery.
    pub creation: Creation,
    /// The host's incarnation number, checked against each batch.
    pub incarnation: u64,
    pub members: Vec<u64>,
    /// Created by a rejoin after the replica lost its state: it never votes.
    pub rejoined: bool,
    pub hard_state: HardState,
    /// The compaction point: entries up to and including `compacted_index`
    /// are gone (compacted, or replaced by an installed snapshot); the entry
    /// there had term `compacted_term`. The log continues at
    /// `compacted_index + 1`.
    pub compacted_index: u64,
    pub compacted_term: u64,
    runs: Vec<Run>,
}

impl GroupState {
    fn new(creation: Creation, incarnation: u64, members: Vec<u64>) -> GroupState {
        GroupState {
            creation,
            incarnation,
            members,
            rejoined: false,
            hard_state: HardState::default(),
            compacted_index: 0,
            compacted_term: 0,
            runs: Vec::new(),
        }
    }

    /// Last index of the group's log (the compaction point when it holds no
    /// entry).
    pub fn last_index(&self) -> u64 {
        self.runs.last().map_or(self.compacted_index, |r| r.last)
    }
}

/// What the tracker knows of one segment file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct SegmentState {
    /// Runs of live logs that point into it.
    pub runs: u64,
    /// Estimated bytes of those runs.
    pub live_bytes: u64,
    /// Size of the file.
    pub bytes: u64,
}

/// A group whose current log has entries in an old segment (see
/// [`Wal::pinning`](super::Wal::pinning)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pinned {
    pub group: u64,
    pub incarnation: u64,
    /// The oldest segment the group's log has entries in.
    pub seq: u64,
    /// The first index of the group's log in that segment: rewriting the log
    /// from here to `last_index` un-pins this segment and every later one
    /// the group pins.
    pub first_index: u64,
    /// The group's last durable index when asked.
    pub last_index: u64,
    /// Estimated bytes of the rewrite (the group's runs from `first_index`).
    pub bytes: u64,
}

/// What a checkpoint changed in the registry during recovery.
#[derive(Debug, Default)]
pub(super) struct Reconciled {
    /// Groups recovery knew that the checkpoint does not list (or lists with
    /// a later creation): their state must be dropped.
    pub dropped: Vec<u64>,
    /// Groups (creations) the checkpoint lists that recovery did not know.
    pub introduced: Vec<u64>,
}

#[derive(Debug, Default)]
pub(super) struct Tracker {
    groups: IdMap<GroupState>,
    /// Every segment file that exists.
    segments: BTreeMap<u64, SegmentState>,
    /// The vote floor of each live group that took a removed replica's
    /// place (few: beside the groups rather than in each).
    floors: HashMap<u64, (u64, u64)>,
    /// Replicas removed, as the node remembers them (`crate::tombstones`).
    tombstones: Tombstones,
}

impl Tracker {
    pub fn add_segment(&mut self, seq: u64) {
        self.segments.entry(seq).or_default();
    }

    /// Segment `seq` is now `bytes` long.
    pub fn set_segment_bytes(&mut self, seq: u64, bytes: u64) {
        if let Some(s) = self.segments.get_mut(&seq) {
            s.bytes = bytes;
        }
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn segment(&self, seq: u64) -> Option<SegmentState> {
        self.segments.get(&seq).copied()
    }

    /// Every segment, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = (u64, SegmentState)> + '_ {
        self.segments.iter().map(|(&seq, &s)| (seq, s))
    }

    pub fn group(&self, group: u64) -> Option<&GroupState> {
        self.groups.get(&group)
    }

    pub fn groups(&self) -> impl Iterator<Item = (&u64, &GroupState)> {
        self.groups.iter()
    }

    fn group_mut(&mut self, group: u64) -> Result<&mut GroupState, String> {
        self.groups
            .get_mut(&group)
            .ok_or_else(|| format!("group {group} does not exist"))
    }

    /// A replica is created. One that takes a removed replica's place
    /// starts at its term and vote, with its vote floor; any creation of a
    /// group incarnation takes the tombstone of that incarnation.
    pub fn create(
        &mut self,
        group: u64,
        creation: Creation,
        incarnation: u64,
        members: Vec<u64>,
        voting: Voting,
    ) -> Result<(), String> {
        if self.groups.contains_key(&group) {
            return Err(format!("group {group} is created twice"));
        }
        let mut g = GroupState::new(creation, incarnation, members);
        match voting {
            Voting::Votes => {}
            Voting::Rejoined => g.rejoined = true,
            Voting::Succeeds(p) => {
                g.hard_state = HardState {
                    term: p.term,
                    vote: p.vote,
                    commit: 0,
                };
                self.floors.insert(group, p.last);
            }
        }
        self.tombstones.take(group, incarnation);
        self.groups.insert(group, g);
        Ok(())
    }

    /// A replica is removed; `tombstone`: its incarnation and state, to
    /// remember for a replica of the same incarnation created later.
    pub fn remove(
        &mut self,
        group: u64,
        tombstone: Option<(u64, Predecessor)>,
    ) -> Result<(), String> {
        let g = self
            .groups
            .remove(&group)
            .ok_or_else(|| format!("group {group} is removed but does not exist"))?;
        for r in &g.runs {
            release(&mut self.segments, r);
        }
        self.floors.remove(&group);
        if let Some((incarnation, p)) = tombstone {
            self.tombstones.remember(group, incarnation, p);
        }
        Ok(())
    }

    /// The vote floor of a live group that took a removed replica's place.
    pub fn vote_floor(&self, group: u64) -> Option<(u64, u64)> {
        self.floors.get(&group).copied()
    }

    pub fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }

    /// A segment's start lists every tombstone kept (recovery): it
    /// replaces those replayed before.
    pub fn set_tombstones(&mut self, all: Vec<(u64, u64, Predecessor)>) {
        let mut t = Tombstones::default();
        for (group, incarnation, p) in all {
            t.remember(group, incarnation, p);
        }
        self.tombstones = t;
    }

    /// An Entries record told the group's commit index: raise it (a commit
    /// index never goes back; 0 tells nothing).
    pub fn raise_commit(&mut self, group: u64, commit: u64) -> Result<(), String> {
        let g = self.group_mut(group)?;
        g.hard_state.commit = g.hard_state.commit.max(commit);
        Ok(())
    }

    pub fn set_hard_state(&mut self, group: u64, hs: HardState) -> Result<(), String> {
        self.group_mut(group)?.hard_state = hs;
        Ok(())
    }

    /// The group no longer needs its entries up to and including `index`
    /// (whose term is `term`): drop the runs wholly at or below it, trim the
    /// one that straddles it. At or below the current compaction point it
    /// changes nothing. Above the last index it empties the log (only
    /// recovery, missing the segments with the entries, sees that; the WAL
    /// refuses such a batch).
    pub fn compact(&mut self, group: u64, index: u64, term: u64) -> Result<(), String> {
        let g = self
            .groups
            .get_mut(&group)
            .ok_or_else(|| format!("compaction of group {group}, which does not exist"))?;
        if index <= g.compacted_index {
            return Ok(());
        }
        g.compacted_index = index;
        g.compacted_term = term;
        let gone = g.runs.partition_point(|r| r.last <= index);
        for r in g.runs.drain(..gone) {
            release(&mut self.segments, &r);
        }
        if let Some(r) = g.runs.first_mut() {
            if r.first <= index {
                let last = r.last;
                let lost = r.trim(index + 1, last);
                shrink(&mut self.segments, r.seq, lost);
            }
        }
        Ok(())
    }

    /// The group's log is replaced by a snapshot at (`index`, `term`):
    /// no run is left, and the log continues at `index + 1`.
    pub fn install(&mut self, group: u64, index: u64, term: u64) -> Result<(), String> {
        let g = self
            .groups
            .get_mut(&group)
            .ok_or_else(|| format!("snapshot install for group {group}, which does not exist"))?;
        if index < g.compacted_index {
            return Err(format!(
                "group {group}: snapshot install at {index}, below the compaction point {}",
                g.compacted_index
            ));
        }
        g.compacted_index = index;
        g.compacted_term = term;
        for r in g.runs.drain(..) {
            release(&mut self.segments, &r);
        }
        Ok(())
    }

    /// Entries `first..=last` of `group` were written in segment `seq`, by
    /// records of `bytes` bytes, replacing everything from `first` on.
    /// Returns whether a run of another segment was dropped or trimmed (an
    /// overwrite, which may have freed a segment).
    pub fn append(
        &mut self,
        group: u64,
        first: u64,
        last: u64,
        seq: u64,
        bytes: u64,
    ) -> Result<bool, String> {
        let g = self
            .groups
            .get_mut(&group)
            .ok_or_else(|| format!("entries for group {group}, which does not exist"))?;
        if first <= g.compacted_index {
            return Err(format!(
                "group {group}: entries start at {first}, at or below the compaction point {}",
                g.compacted_index
            ));
        }
        let overwrote = cut_after(&mut g.runs, &mut self.segments, first - 1);
        match g.runs.last_mut() {
            Some(r) if r.seq == seq && r.last + 1 == first => {
                r.last = last;
                r.bytes += bytes;
            }
            _ => {
                g.runs.push(Run {
                    first,
                    last,
                    seq,
                    bytes,
                });
                self.segments.entry(seq).or_default().runs += 1;
            }
        }
        if let Some(s) = self.segments.get_mut(&seq) {
            s.live_bytes += bytes;
        }
        Ok(overwrote)
    }

    /// The group's log ends at `last` (recovery: a checkpoint says so):
    /// drop what runs hold above it.
    fn truncate(&mut self, group: u64, last: u64) -> Result<(), String> {
        let g = self
            .groups
            .get_mut(&group)
            .ok_or_else(|| format!("group {group} does not exist"))?;
        cut_after(&mut g.runs, &mut self.segments, last);
        Ok(())
    }

    /// Estimated bytes of the entries of `group`'s current log (0 if it is
    /// not live).
    pub fn log_bytes(&self, group: u64) -> u64 {
        self.groups
            .get(&group)
            .map_or(0, |g| g.runs.iter().map(|r| r.bytes).sum())
    }

    /// Every live group, sorted by id, as a Checkpoint record lists it.
    pub fn checkpoint(&self) -> Vec<GroupCheckpoint> {
        let mut out: Vec<GroupCheckpoint> = self
            .groups
            .iter()
            .map(|(&group, g)| GroupCheckpoint {
                group,
                creation: g.creation,
                incarnation: g.incarnation,
                members: g.members.clone(),
                rejoined: g.rejoined,
                vote_floor: self.floors.get(&group).copied(),
                hard_state: g.hard_state,
                compacted_index: g.compacted_index,
                compacted_term: g.compacted_term,
                last_index: g.last_index(),
            })
            .collect();
        out.sort_unstable_by_key(|g| g.group);
        out
    }

    /// Make the registry what a checkpoint says it is (recovery): groups it
    /// does not list are dropped, groups it lists with a creation we do not
    /// know start afresh, known ones take its members, hard state and
    /// compaction point, and lose their runs above its last index (a
    /// Compact or Install record in a deleted segment is known only from
    /// here: an install can shorten a log). A known creation listed with
    /// another incarnation number, or with a compaction point below the one
    /// already replayed, is an error.
    pub fn reconcile(&mut self, listed: &[GroupCheckpoint]) -> Result<Reconciled, String> {
        let mut by_id: HashMap<u64, &GroupCheckpoint> = HashMap::with_capacity(listed.len());
        for cp in listed {
            if by_id.insert(cp.group, cp).is_some() {
                return Err(format!("checkpoint lists group {} twice", cp.group));
            }
        }
        let mut out = Reconciled::default();
        let stale: Vec<u64> = self
            .groups
            .iter()
            .filter(|(id, g)| !matches!(by_id.get(id), Some(cp) if cp.creation == g.creation))
            .map(|(&id, _)| id)
            .collect();
        for id in stale {
            self.remove(id, None)?;
            out.dropped.push(id);
        }
        for cp in listed {
            let g = self.groups.entry(cp.group).or_insert_with(|| {
                out.introduced.push(cp.group);
                GroupState::new(cp.creation, cp.incarnation, Vec::new())
            });
            if g.incarnation != cp.incarnation {
                return Err(format!(
                    "checkpoint lists group {} as incarnation {} but it was created as {}",
                    cp.group, cp.incarnation, g.incarnation
                ));
            }
            if cp.compacted_index < g.compacted_index {
                return Err(format!(
                    "checkpoint lists group {} compacted to {} but it was compacted to {}",
                    cp.group, cp.compacted_index, g.compacted_index
                ));
            }
            g.members.clone_from(&cp.members);
            g.rejoined = cp.rejoined;
            match cp.vote_floor {
                Some(f) => self.floors.insert(cp.group, f),
                None => self.floors.remove(&cp.group),
            };
            g.hard_state = cp.hard_state;
            // (At the same index, an install may have changed the term.)
            g.compacted_term = cp.compacted_term;
            self.compact(cp.group, cp.compacted_index, cp.compacted_term)?;
            self.truncate(cp.group, cp.last_index)?;
        }
        Ok(out)
    }

    /// Segments other than `active` that hold no run of any live group.
    pub fn unneeded_segments(&self, active: u64) -> Vec<u64> {
        self.segments
            .iter()
            .filter(|&(&seq, s)| seq != active && s.runs == 0)
            .map(|(&seq, _)| seq)
            .collect()
    }

    pub fn forget_segment(&mut self, seq: u64) {
        self.segments.remove(&seq);
    }

    /// Up to `max` groups whose log has entries in a segment other than
    /// `active`, those pinning the oldest segments first (by group id
    /// within a segment). One pass over the groups.
    pub fn pinning(&self, active: u64, max: usize) -> Vec<Pinned> {
        let mut out: Vec<Pinned> = self
            .groups
            .iter()
            .filter_map(|(&group, g)| {
                let first = g.runs.first().filter(|r| r.seq != active)?;
                Some(Pinned {
                    group,
                    incarnation: g.incarnation,
                    seq: first.seq,
                    first_index: first.first,
                    last_index: g.last_index(),
                    bytes: g.runs.iter().map(|r| r.bytes).sum(),
                })
            })
            .collect();
        let key = |p: &Pinned| (p.seq, p.group);
        if out.len() > max {
            if max == 0 {
                return Vec::new();
            }
            out.select_nth_unstable_by_key(max - 1, key);
            out.truncate(max);
        }
        out.sort_unstable_by_key(key);
        out
    }

    /// Every segment with its state (tests).
    #[cfg(test)]
    pub fn segments_snapshot(&self) -> BTreeMap<u64, SegmentState> {
        self.segments.clone()
    }

    /// Runs of live logs that point into `seq` (tests).
    #[cfg(test)]
    pub fn runs_in(&self, seq: u64) -> Option<u64> {
        self.segments.get(&seq).map(|s| s.runs)
    }
}

/// Drop or trim the runs above index `last`; returns whether there were
/// any.
fn cut_after(runs: &mut Vec<Run>, segments: &mut BTreeMap<u64, SegmentState>, last: u64) -> bool {
    let mut cut = false;
    while let Some(r) = runs.last_mut() {
        if r.first > last {
            let r = runs.pop().expect("just seen");
            release(segments, &r);
            cut = true;
        } else {
            if r.last > last {
                let lost = r.trim(r.first, last);
                shrink(segments, r.seq, lost);
                cut = true;
            }
            break;
        }
    }
    cut
}

/// A run into segment `seq` is gone.
fn release(segments: &mut BTreeMap<u64, SegmentState>, r: &Run) {
    if let Some(s) = segments.get_mut(&r.seq) {
        s.runs = s.runs.saturating_sub(1);
        s.live_bytes = s.live_bytes.saturating_sub(r.bytes);
    }
}

/// A run into segment `seq` lost `bytes`.
fn shrink(segments: &mut BTreeMap<u64, SegmentState>, seq: u64, bytes: u64) {
    if let Some(s) = segments.get_mut(&seq) {
        s.live_bytes = s.live_bytes.saturating_sub(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64) -> Creation {
        Creation { seq, offset: 0 }
    }

    #[test]
    fn overwrites_release_the_segments_they_supersede() {
        let mut t = Tracker::default();
        for s in 1..=4 {
            t.add_segment(s);
        }
        t.create(1, at(1), 10, vec![1], Voting::Votes).unwrap();
        t.append(1, 1, 10, 1, 100).unwrap();
        t.append(1, 11, 20, 2, 100).unwrap();
        t.append(1, 21, 30, 3, 100).unwrap();
        assert_eq!(t.unneeded_segments(4), Vec::<u64>::new());
        // Overwrite from 15: segment 3's run goes, segment 2's is trimmed.
        t.append(1, 15, 16, 4, 100).unwrap();
        assert_eq!(t.unneeded_segments(4), vec![3]);
        assert_eq!(t.group(1).unwrap().last_index(), 16);
        // Overwrite from 5: only segment 1 (1..=4) and 4 are still needed.
        t.append(1, 5, 5, 4, 100).unwrap();
        assert_eq!(t.unneeded_segments(4), vec![2, 3]);
        assert_eq!(
            t.runs_in(4),
            Some(1),
            "contiguous appends merge into one run"
        );
        t.remove(1, None).unwrap();
        assert_eq!(t.unneeded_segments(4), vec![1, 2, 3]);
    }

    #[test]
    fn reconcile_drops_unlisted_and_replaced_creations() {
        let mut t = Tracker::default();
        t.add_segment(1);
        t.create(1, at(1), 10, vec![1], Voting::Votes).unwrap();
        t.create(2, at(1), 10, vec![1], Voting::Votes).unwrap();
        t.create(3, at(1), 10, vec![1], Voting::Votes).unwrap();
        t.append(3, 1, 3, 1, 100).unwrap();
        let hs = HardState {
            term: 2,
            vote: 1,
            commit: 3,
        };
        let cp = |group, seq| GroupCheckpoint {
            group,
            creation: at(seq),
            incarnation: seq * 10,
            rejoined: false,
            vote_floor: None,
            members: vec![1, 2],
            hard_state: hs,
            compacted_index: 0,
            compacted_term: 0,
            last_index: 3,
        };
        let r = t.reconcile(&[cp(2, 5), cp(3, 1), cp(4, 5)]).unwrap();
        let mut dropped = r.dropped.clone();
        dropped.sort_unstable();
        assert_eq!(dropped, vec![1, 2]);
        let mut introduced = r.introduced.clone();
        introduced.sort_unstable();
        assert_eq!(introduced, vec![2, 4]);
        assert_eq!(
            t.group(3).unwrap().last_index(),
            3,
            "same creation keeps its log"
        );
        assert_eq!(t.group(3).unwrap().hard_state, hs);
        assert_eq!(t.group(2).unwrap().incarnation, 50);
        assert!(t.reconcile(&[cp(2, 5), cp(2, 5)]).is_err());
        // The same creation with another incarnation number makes no sense.
        let mut odd = cp(3, 1);
        odd.incarnation = 11;
        assert!(t.reconcile(&[odd]).is_err());
    }

    #[test]
    fn a_compaction_drops_the_runs_below_it_and_trims_the_one_across_it() {
        let mut t = Tracker::default();
        for s in 1..=4 {
            t.add_segment(s);
        }
        t.create(1, at(1), 10, vec![1], Voting::Votes).unwrap();
        t.append(1, 1, 10, 1, 1000).unwrap();
        t.append(1, 11, 20, 2, 1000).unwrap();
        t.append(1, 21, 30, 3, 1000).unwrap();
        t.compact(1, 15, 2).unwrap();
        assert_eq!(t.unneeded_segments(4), vec![1]);
        let g = t.group(1).unwrap();
        assert_eq!((g.compacted_index, g.compacted_term), (15, 2));
        assert_eq!(g.last_index(), 30);
        // Half of segment 2's run is gone: half its bytes with it.
        assert_eq!(t.segment(2).unwrap().live_bytes, 500);
        assert_eq!(t.segment(1).unwrap().live_bytes, 0);
        // At or below the point: nothing changes (not even the term).
        t.compact(1, 12, 9).unwrap();
        assert_eq!(t.group(1).unwrap().compacted_term, 2);
        assert_eq!(t.segment(2).unwrap().live_bytes, 500);
        // Up to the last index: no run is left, the log ends at the point.
        t.compact(1, 30, 3).unwrap();
        assert_eq!(t.unneeded_segments(4), vec![1, 2, 3]);
        assert_eq!(t.group(1).unwrap().last_index(), 30);
        // Entries continue after the point, never at or below it.
        assert!(t.append(1, 30, 31, 4, 10).is_err());
        assert!(!t.append(1, 31, 31, 4, 10).unwrap());
        assert_eq!(t.group(1).unwrap().last_index(), 31);
    }

    #[test]
    fn an_install_drops_every_run_and_the_log_ends_at_the_snapshot() {
        let mut t = Tracker::default();
        for s in 1..=3 {
            t.add_segment(s);
        }
        t.create(1, at(1), 10, vec![1], Voting::Votes).unwrap();
        t.append(1, 1, 10, 1, 100).unwrap();
        t.append(1, 11, 12, 2, 100).unwrap();
        t.install(1, 5, 4).unwrap();
        assert_eq!(t.unneeded_segments(3), vec![1, 2]);
        let g = t.group(1).unwrap();
        assert_eq!(g.last_index(), 5, "even below the old last index");
        assert_eq!((g.compacted_index, g.compacted_term), (5, 4));
        t.install(1, 50, 5).unwrap();
        assert_eq!(t.group(1).unwrap().last_index(), 50);
        assert!(t.install(1, 49, 5).is_err(), "below the compaction point");
        t.append(1, 51, 52, 3, 100).unwrap();
        assert_eq!(t.group(1).unwrap().last_index(), 52);
    }

    #[test]
    fn live_bytes_follow_appends_overwrites_and_removals() {
        let mut t = Tracker::default();
        for s in 1..=3 {
            t.add_segment(s);
        }
        t.create(1, at(1), 10, vec![1], Voting::Votes).unwrap();
        t.create(2, at(1), 10, vec![1], Voting::Votes).unwrap();
        t.append(1, 1, 4, 1, 400).unwrap();
        t.append(1, 5, 8, 1, 400).unwrap(); // merges into one run
        t.append(2, 1, 2, 1, 50).unwrap();
        assert_eq!(t.segment(1).unwrap().runs, 2);
        assert_eq!(t.segment(1).unwrap().live_bytes, 850);
        // Overwrite from 7: 2 of 8 entries of group 1's run go.
        assert!(t.append(1, 7, 7, 2, 30).unwrap());
        assert_eq!(t.segment(1).unwrap().live_bytes, 600 + 50);
        assert_eq!(t.segment(2).unwrap().live_bytes, 30);
        t.remove(1, None).unwrap();
        assert_eq!(t.segment(1).unwrap().live_bytes, 50);
        assert_eq!(t.segment(2).unwrap(), SegmentState::default());
    }

    #[test]
    fn pinning_lists_each_group_once_under_its_oldest_segment() {
        let mut t = Tracker::default();
        for s in 1..=4 {
            t.add_segment(s);
        }
        for g in 1..=4 {
            t.create(g, at(1), 10 + g, vec![1], Voting::Votes).unwrap();
        }
        t.append(3, 1, 5, 1, 100).unwrap();
        t.append(3, 6, 9, 2, 80).unwrap();
        t.append(1, 1, 1, 2, 10).unwrap();
        t.append(2, 1, 1, 1, 10).unwrap();
        t.append(4, 1, 3, 4, 10).unwrap(); // only in the active segment
        t.compact(2, 1, 1).unwrap(); // nothing left: pins nothing
        t.compact(3, 2, 1).unwrap();
        let p = t.pinning(4, 10);
        let got: Vec<(u64, u64, u64, u64)> = p
            .iter()
            .map(|p| (p.seq, p.group, p.first_index, p.last_index))
            .collect();
        assert_eq!(got, vec![(1, 3, 3, 9), (2, 1, 1, 1)]);
        assert_eq!(p[0].incarnation, 13);
        assert_eq!(p[0].bytes, 60 + 80, "the rewrite: all its runs");
        assert_eq!(t.pinning(4, 1).len(), 1);
        assert_eq!(t.pinning(4, 1)[0].group, 3, "oldest segment first");
        assert!(t.pinning(4, 0).is_empty());
    }
}
