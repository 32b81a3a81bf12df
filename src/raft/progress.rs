//! What a leader knows of one follower: how far its log matches, what to send
//! next, and whether it may send more now.

/// How the leader is currently replicating to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// The leader does not know where the follower's log matches. It sends at
    /// most one append per heartbeat interval (or per response) and walks
    /// `next` back on each rejection.
    Probe,
    /// The follower's log matches up to `matched`; appends are pipelined
    /// optimistically, bounded by the in-flight window.
    Replicate,
    /// The follower needs entries the leader compacted away: a snapshot at
    /// `pending_snapshot` is on its way. No appends until the follower
    /// acknowledges it (or the transfer fails).
    Snapshot,
}

/// A bounded window of appends sent but not yet acknowledged, remembered by
/// the last index each carried.
#[derive(Clone, Debug)]
pub struct Inflights {
    cap: usize,
    /// Last index of each in-flight append, ascending.
    last_indexes: std::collections::VecDeque<u64>,
}

impl Inflights {
    pub fn new(cap: usize) -> Inflights {
        Inflights {
            cap: cap.max(1),
            last_indexes: std::collections::VecDeque::new(),
        }
    }

    pub fn full(&self) -> bool {
        self.last_indexes.len() >= self.cap
    }

    pub fn len(&self) -> usize {
        self.last_indexes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_indexes.is_empty()
    }

    pub fn add(&mut self, last_index: u64) {
        debug_assert!(!self.full(), "inflight window overflow");
        self.last_indexes.push_back(last_index);
    }

    /// An acknowledgement up to `index` frees every append ending at or
    /// before it.
    pub fn free_to(&mut self, index: u64) {
        while matches!(self.last_indexes.front(), Some(&i) if i <= index) {
            self.last_indexes.pop_front();
        }
    }

    /// A heartbeat response proves the follower is alive; free one slot so a
    /// window full of lost appends cannot stall replication forever.
    pub fn free_first_one(&mut self) {
        self.last_indexes.pop_front();
    }

    pub fn reset(&mut self) {
        self.last_indexes.clear();
    }
}

/// The leader's view of one follower.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Highest index known to match the leader's log.
    pub matched: u64,
    /// Next index to send.
    pub next: u64,
    pub state: ProgressState,
    /// In `Probe`: an append was sent and no answer has come yet.
    pub probe_sent: bool,
    pub inflights: Inflights,
    /// Heard from since the last CheckQuorum round.
    pub recent_active: bool,
    /// In `Snapshot`: the index of the snapshot being sent.
    pub pending_snapshot: u64,
    /// The highest heartbeat round this follower answered at the leader's
    /// term (`read.rs`).
    pub read_round: u64,
    /// The follower lost its durable state and rejoined (its messages
    /// carry `Message::rejoined`): it may have acknowledged entries of a
    /// term this leader never heard of and then forgotten them, so it
    /// counts in no quorum (commit, read confirmation, CheckQuorum,
    /// quiescence), whatever it answers. Set by its first marked answer,
    /// before that answer counts; such a replica marks every answer.
    pub rejoined: bool,
}

impl Progress {
    pub fn new(next: u64, max_inflight: usize) -> Progress {
        Progress {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_inflight),
            recent_active: false,
            pending_snapshot: 0,
            read_round: 0,
            rejoined: false,
        }
    }

    /// May the leader send this follower another append now?
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.full(),
            ProgressState::Snapshot => true,
        }
    }

    pub fn become_probe(&mut self) {
        // After a snapshot, the follower holds at least its index.
        let from = match self.state {
            ProgressState::Snapshot => self.matched.max(self.pending_snapshot),
            _ => self.matched,
        };
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.next = from + 1;
        self.pending_snapshot = 0;
        self.inflights.reset();
    }

    /// A snapshot at `index` is being sent to the follower.
    pub fn become_snapshot(&mut self, index: u64) {
        self.state = ProgressState::Snapshot;
        self.pending_snapshot = index;
        self.probe_sent = false;
        self.inflights.reset();
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.probe_sent = false;
        self.next = self.matched + 1;
        self.inflights.reset();
    }

    /// The follower acknowledged a match up to `index`. Returns whether that
    /// is news (a stale or duplicated acknowledgement is not).
    pub fn maybe_update(&mut self, index: u64) -> bool {
        let updated = self.matched < index;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next = self.next.max(index + 1);
        updated
    }

    /// Record that an append ending at `last` was sent.
    pub fn sent_entries(&mut self, last: Option<u64>) {
        match self.state {
            ProgressState::Replicate => {
                if let Some(last) = last {
                    self.next = last + 1;
                    self.inflights.add(last);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => {}
        }
    }

    /// The follower rejected an append at `rejected`; `probe_to` is where the
    /// leader should try next (from the follower's hint). Returns false when
    /// the rejection is stale (a duplicate or a reordered old answer).
    pub fn maybe_decr_to(&mut self, rejected: u64, probe_to: u64) -> bool {
        if self.state == ProgressState::Snapshot {
            // An answer to an append sent before the snapshot started.
            return false;
        }
        if rejected <= self.matched {
            if probe_to >= self.matched {
                // An old answer: it says nothing we do not know.
                return false;
            }
            // It lacks an entry it acknowledged: it lost its log (a replica
            // that rejoined after its disk was wiped), or this is an old
            // answer overtaken by later ones. Believe it: keeping `matched`
            // would probe at it for ever, while lowering it only withholds
            // the follower's vote from later commits, keeps more log for it
            // and, if the answer was old, costs one probe.
            self.matched = probe_to;
            self.become_probe();
            return true;
        }
        if self.state == ProgressState::Replicate {
            // In replicate state appends go out in order from matched+1.
            self.next = self.matched + 1;
            return true;
        }
        // In probe state only a rejection of the append just sent counts.
        if self.next == 0 || self.next - 1 != rejected {
            return false;
        }
        self.next = (probe_to + 1).min(rejected).max(self.matched + 1);
        self.probe_sent = false;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Found by the simulation (seed 12, with wiped disks): a follower that
    // lost its log refuses the probe at its old match with hint 0; keeping
    // `matched` made the leader probe there again at once, for ever.
    #[test]
    fn a_probe_refused_at_the_match_resets_the_match() {
        let mut p = Progress::new(1, 2);
        assert!(p.maybe_update(26));
        assert_eq!(p.next, 27);
        p.become_probe();
        assert!(p.maybe_decr_to(26, 0));
        assert_eq!((p.matched, p.next), (0, 1));
        // In replicate state too (the follower says so when a heartbeat
        // commits past its log).
        assert!(p.maybe_update(26));
        p.become_replicate();
        assert!(p.maybe_decr_to(26, 3));
        assert_eq!((p.matched, p.next, p.state), (3, 4, ProgressState::Probe));
        // An old refusal below what it matched since says nothing new.
        assert!(p.maybe_update(30));
        assert!(!p.maybe_decr_to(20, 30));
    }

    #[test]
    fn replicate_window_pauses_when_full_and_frees_on_ack() {
        let mut p = Progress::new(1, 2);
        p.become_replicate();
        p.sent_entries(Some(3));
        assert!(!p.is_paused());
        p.sent_entries(Some(5));
        assert!(p.is_paused());
        assert!(p.maybe_update(3));
        p.inflights.free_to(3);
        assert!(!p.is_paused());
        assert_eq!(p.next, 6);
    }

    #[test]
    fn probe_sends_one_at_a_time() {
        let mut p = Progress::new(5, 4);
        assert!(!p.is_paused());
        p.sent_entries(Some(7));
        assert!(p.is_paused());
        assert_eq!(p.next, 5, "probe does not advance next optimistically");
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut p = Progress::new(10, 4);
        // probe rejection of something other than next-1 is stale
        assert!(!p.maybe_decr_to(5, 3));
        assert!(p.maybe_decr_to(9, 3));
        assert_eq!(p.next, 4);
        let mut r = Progress::new(1, 4);
        r.maybe_update(8);
        r.become_replicate();
        assert!(
            !r.maybe_decr_to(8, 8),
            "rejection at or below match, hinting at the match, is stale"
        );
        assert!(r.maybe_decr_to(12, 0));
        assert_eq!(r.next, 9);
    }
}
