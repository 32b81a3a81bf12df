//! Which live groups exist, and which segments still hold entries they need.
//!
//! The WAL keeps this in memory (rebuilt by recovery) to answer one question
//! cheaply: may this old segment be deleted? For each live group it keeps
//! the *runs* of its current log — maximal index ranges written by records
//! of the same segment — and each segment counts the runs that point into it.
//! An overwrite trims or drops the runs it replaces, a removal drops all of a
//! group's runs; a segment whose count falls to zero holds no entry anyone
//! needs. Creation, removal, hard-state and compaction records never pin a
//! segment: every segment starts with a checkpoint of all live groups (see
//! the module docs of `wal`), which supersedes them all.

use std::collections::{BTreeMap, HashMap};

use super::record::{Creation, GroupCheckpoint};
use crate::raft::HardState;

/// Entries `first..=last` of a group's current log were written in segment
/// `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    first: u64,
    last: u64,
    seq: u64,
}

#[derive(Clone, Debug)]
pub(super) struct GroupState {
    /// Where its Create record is: tells its lives apart in recovery.
    pub creation: Creation,
    /// The host's incarnation number, checked against each batch.
    pub incarnation: u64,
    pub members: Vec<u64>,
    pub hard_state: HardState,
    /// Entries up to here are no longer needed by the group (see
    /// [`Wal::compact`](super::Wal::compact)).
    pub compacted: u64,
    runs: Vec<Run>,
}

impl GroupState {
    fn new(creation: Creation, incarnation: u64, members: Vec<u64>) -> GroupState {
        GroupState {
            creation,
            incarnation,
            members,
            hard_state: HardState::default(),
            compacted: 0,
            runs: Vec::new(),
        }
    }

    /// Last index of the group's log (0 when empty).
    pub fn last_index(&self) -> u64 {
        self.runs.last().map_or(0, |r| r.last)
    }
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
    groups: HashMap<u64, GroupState>,
    /// Every segment file that exists, with the number of runs in it.
    segments: BTreeMap<u64, u64>,
}

impl Tracker {
    pub fn add_segment(&mut self, seq: u64) {
        self.segments.entry(seq).or_insert(0);
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
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

    pub fn create(
        &mut self,
        group: u64,
        creation: Creation,
        incarnation: u64,
        members: Vec<u64>,
    ) -> Result<(), String> {
        if self.groups.contains_key(&group) {
            return Err(format!("group {group} is created twice"));
        }
        self.groups
            .insert(group, GroupState::new(creation, incarnation, members));
        Ok(())
    }

    pub fn remove(&mut self, group: u64) -> Result<(), String> {
        let g = self
            .groups
            .remove(&group)
            .ok_or_else(|| format!("group {group} is removed but does not exist"))?;
        for r in g.runs {
            release(&mut self.segments, r.seq);
        }
        Ok(())
    }

    pub fn set_hard_state(&mut self, group: u64, hs: HardState) -> Result<(), String> {
        self.group_mut(group)?.hard_state = hs;
        Ok(())
    }

    pub fn compact(&mut self, group: u64, index: u64) -> Result<(), String> {
        let g = self.group_mut(group)?;
        g.compacted = g.compacted.max(index);
        Ok(())
    }

    /// Entries `first..=last` of `group` were written in segment `seq`,
    /// replacing everything from `first` on.
    pub fn append(&mut self, group: u64, first: u64, last: u64, seq: u64) -> Result<(), String> {
        let g = self
            .groups
            .get_mut(&group)
            .ok_or_else(|| format!("entries for group {group}, which does not exist"))?;
        while let Some(r) = g.runs.last_mut() {
            if r.first >= first {
                let seq = r.seq;
                g.runs.pop();
                release(&mut self.segments, seq);
            } else {
                r.last = r.last.min(first - 1);
                break;
            }
        }
        match g.runs.last_mut() {
            Some(r) if r.seq == seq && r.last + 1 == first => r.last = last,
            _ => {
                g.runs.push(Run { first, last, seq });
                *self.segments.entry(seq).or_insert(0) += 1;
            }
        }
        Ok(())
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
                hard_state: g.hard_state,
                compacted: g.compacted,
            })
            .collect();
        out.sort_unstable_by_key(|g| g.group);
        out
    }

    /// Make the registry what a checkpoint says it is (recovery): groups it
    /// does not list are dropped, groups it lists with a creation we do not
    /// know start afresh, known ones take its members and hard state. A known
    /// creation listed with another incarnation number is an error.
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
            self.remove(id)?;
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
            g.members.clone_from(&cp.members);
            g.hard_state = cp.hard_state;
            g.compacted = g.compacted.max(cp.compacted);
        }
        Ok(out)
    }

    /// Segments other than `active` that hold no run of any live group.
    pub fn unneeded_segments(&self, active: u64) -> Vec<u64> {
        self.segments
            .iter()
            .filter(|&(&seq, &runs)| seq != active && runs == 0)
            .map(|(&seq, _)| seq)
            .collect()
    }

    pub fn forget_segment(&mut self, seq: u64) {
        self.segments.remove(&seq);
    }

    /// Every segment with its count of runs (tests).
    #[cfg(test)]
    pub fn segments_snapshot(&self) -> BTreeMap<u64, u64> {
        self.segments.clone()
    }

    /// Runs of live logs that point into `seq` (tests).
    #[cfg(test)]
    pub fn runs_in(&self, seq: u64) -> Option<u64> {
        self.segments.get(&seq).copied()
    }
}

fn release(segments: &mut BTreeMap<u64, u64>, seq: u64) {
    if let Some(n) = segments.get_mut(&seq) {
        *n = n.saturating_sub(1);
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
        t.create(1, at(1), 10, vec![1]).unwrap();
        t.append(1, 1, 10, 1).unwrap();
        t.append(1, 11, 20, 2).unwrap();
        t.append(1, 21, 30, 3).unwrap();
        assert_eq!(t.unneeded_segments(4), Vec::<u64>::new());
        // Overwrite from 15: segment 3's run goes, segment 2's is trimmed.
        t.append(1, 15, 16, 4).unwrap();
        assert_eq!(t.unneeded_segments(4), vec![3]);
        assert_eq!(t.group(1).unwrap().last_index(), 16);
        // Overwrite from 5: only segment 1 (1..=4) and 4 are still needed.
        t.append(1, 5, 5, 4).unwrap();
        assert_eq!(t.unneeded_segments(4), vec![2, 3]);
        assert_eq!(
            t.runs_in(4),
            Some(1),
            "contiguous appends merge into one run"
        );
        t.remove(1).unwrap();
        assert_eq!(t.unneeded_segments(4), vec![1, 2, 3]);
    }

    #[test]
    fn reconcile_drops_unlisted_and_replaced_creations() {
        let mut t = Tracker::default();
        t.add_segment(1);
        t.create(1, at(1), 10, vec![1]).unwrap();
        t.create(2, at(1), 10, vec![1]).unwrap();
        t.create(3, at(1), 10, vec![1]).unwrap();
        t.append(3, 1, 3, 1).unwrap();
        let hs = HardState {
            term: 2,
            vote: 1,
            commit: 3,
        };
        let cp = |group, seq| GroupCheckpoint {
            group,
            creation: at(seq),
            incarnation: seq * 10,
            members: vec![1, 2],
            hard_state: hs,
            compacted: 0,
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
}
