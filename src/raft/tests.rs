//! Unit tests of the Raft core, one per protocol rule.
//!
//! The top of the file is a small deterministic network harness: N replicas,
//! each with a "durable" `MemStore` the harness writes every `Ready` into
//! (entries and hard state) before the `Ready`'s messages go on a FIFO queue.
//! Like the multi layer, it first offers each replica the chance to send
//! messages early with `send_durable_messages` (unless `eager_send` is off).
//! The harness itself checks, for every message and `Ready` of every test,
//! the host contract: nothing that promises durable state (a granted vote, an
//! append acknowledgement) leaves before that state is durable, committed
//! entries are handed out exactly once, in order, and only once durable.
//!
//! Every test carries a one-line comment naming a mutation of the core that
//! would make it fail.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use bytes::Bytes;

use super::*;
use super::{LogStore, MemStore};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

type Filter = Box<dyn FnMut(&Message) -> bool>;

struct Replica {
    cfg: Config,
    raft: Raft<MemStore>,
    /// What the host has made durable: the only thing a restart sees.
    durable: MemStore,
    /// Every committed entry handed out, in order, across restarts (the
    /// host's state machine survives a crash with it).
    applied: Vec<Entry>,
    /// The index list of each non-empty `committed_entries` batch.
    apply_batches: Vec<Vec<u64>>,
    /// Every `Ready::role_change`, across restarts.
    roles: Vec<(Role, u64, ReplicaId)>,
    /// Every snapshot the replica installed from its leader.
    restored: Vec<SnapshotMeta>,
    /// Reads handed out, each checked to come after its index was applied.
    reads: Vec<ReadState>,
    reads_failed: Vec<u64>,
}

struct Network {
    voters: Vec<ReplicaId>,
    replicas: BTreeMap<ReplicaId, Replica>,
    /// Messages sent (persisted first) and not yet delivered, in send order.
    queue: VecDeque<Message>,
    /// Every message any replica ever sent, dropped or not.
    sent: Vec<Message>,
    /// Replicas cut off in both directions.
    isolated: HashSet<ReplicaId>,
    /// Kinds dropped on delivery.
    dropped_kinds: HashSet<MessageType>,
    /// Extra drop rule.
    drop_if: Option<Filter>,
    /// Messages matching this are parked in `held` instead of delivered.
    hold_if: Option<Filter>,
    held: Vec<Message>,
    /// Random loss: (generator, percent dropped).
    loss: Option<(Rng, u64)>,
    /// Send what `send_durable_messages` allows before taking a `Ready`.
    eager_send: bool,
    /// Replicas added by `join`: created empty, with no membership.
    joined: HashSet<ReplicaId>,
}

/// A message may leave `id` only if what it promises is durable in `durable`.
fn check_outgoing(id: ReplicaId, durable: &MemStore, m: &Message) {
    assert_eq!(m.from, id, "replica {id} sent a message as {}", m.from);
    match m.msg_type {
        MessageType::VoteResponse if !m.reject => {
            let hs = durable.hard_state();
            assert!(
                hs.term == m.term && hs.vote == m.to,
                "replica {id} granted a vote to {} at term {} before it was durable \
                 (durable {hs:?})",
                m.to,
                m.term
            );
        }
        MessageType::AppendResponse if !m.reject => {
            assert!(
                durable.last_index() >= m.index,
                "replica {id} acknowledged index {} with only {} durable",
                m.index,
                durable.last_index()
            );
        }
        _ => {}
    }
}

impl Replica {
    /// A replica with nothing applied or seen yet, durable as `store`.
    fn new(cfg: Config, raft: Raft<MemStore>, store: MemStore) -> Replica {
        Replica {
            cfg,
            raft,
            durable: store,
            applied: Vec::new(),
            apply_batches: Vec::new(),
            roles: Vec::new(),
            restored: Vec::new(),
            reads: Vec::new(),
            reads_failed: Vec::new(),
        }
    }
}

fn data(s: impl Into<String>) -> Bytes {
    Bytes::from(s.into())
}

/// A log whose entry at index i+1 has term `terms[i]`.
fn entries_with_terms(terms: &[u64], payload: usize) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &term)| Entry {
            term,
            index: i as u64 + 1,
            kind: EntryKind::Normal,
            data: Bytes::from(vec![b'a' + (term % 26) as u8; payload]),
        })
        .collect()
}

/// A store holding a log with the given terms and the given hard state.
fn store_with(terms: &[u64], term: u64, commit: u64) -> MemStore {
    let mut s = MemStore::new();
    s.append(&entries_with_terms(terms, 8));
    s.set_hard_state(HardState {
        term,
        vote: NONE,
        commit,
    });
    s
}

/// Drive a stand-alone replica's `Ready`s (its own store is its durable
/// state) and return the messages it sent.
fn drain(r: &mut Raft<MemStore>) -> Vec<Message> {
    let mut out = Vec::new();
    for _ in 0..10_000 {
        if !r.has_ready() {
            return out;
        }
        let rd = r.ready();
        out.extend(rd.messages.iter().cloned());
        r.advance(&rd);
    }
    panic!("replica {} never runs out of Ready", r.id());
}

fn standalone(id: ReplicaId, store: MemStore, f: impl Fn(&mut Config)) -> Raft<MemStore> {
    let mut cfg = Config::new(id);
    f(&mut cfg);
    Raft::new(cfg, &[1, 2, 3], store).expect("valid replica")
}

impl Network {
    fn new(n: u64) -> Network {
        Network::with_config(n, |_| {})
    }

    fn with_config(n: u64, f: impl Fn(&mut Config)) -> Network {
        Network::with_stores((1..=n).map(|_| MemStore::new()).collect(), f)
    }

    /// Replica i+1 starts from `stores[i]`.
    fn with_stores(stores: Vec<MemStore>, f: impl Fn(&mut Config)) -> Network {
        let voters: Vec<ReplicaId> = (1..=stores.len() as u64).collect();
        let mut replicas = BTreeMap::new();
        for (id, store) in voters.iter().copied().zip(stores) {
            let mut cfg = Config::new(id);
            f(&mut cfg);
            let raft = Raft::new(cfg.clone(), &voters, store.clone()).expect("valid replica");
            replicas.insert(id, Replica::new(cfg, raft, store));
        }
        Network {
            voters,
            replicas,
            queue: VecDeque::new(),
            sent: Vec::new(),
            isolated: HashSet::new(),
            dropped_kinds: HashSet::new(),
            drop_if: None,
            hold_if: None,
            held: Vec::new(),
            loss: None,
            eager_send: true,
            joined: HashSet::new(),
        }
    }

    fn ids(&self) -> Vec<ReplicaId> {
        self.voters.clone()
    }

    fn replica(&self, id: ReplicaId) -> &Replica {
        &self.replicas[&id]
    }

    fn raft(&mut self, id: ReplicaId) -> &mut Raft<MemStore> {
        &mut self.replicas.get_mut(&id).expect("no such replica").raft
    }

    fn status(&self, id: ReplicaId) -> Status {
        self.replicas[&id].raft.status()
    }

    fn election_ticks(&self) -> u32 {
        self.replicas.values().next().unwrap().cfg.election_ticks
    }

    fn tick(&mut self, id: ReplicaId) {
        self.raft(id).tick();
    }

    fn tick_all(&mut self) {
        for id in self.ids() {
            self.tick(id);
        }
    }

    /// `rounds` times: tick everyone once, then deliver until quiet.
    fn run(&mut self, rounds: u32) {
        for _ in 0..rounds {
            self.tick_all();
            self.deliver_all();
        }
    }

    /// Run rounds until `done` holds; panics after `max` rounds.
    fn run_until(&mut self, max: u32, what: &str, mut done: impl FnMut(&Network) -> bool) {
        for _ in 0..max {
            if done(self) {
                return;
            }
            self.tick_all();
            self.deliver_all();
        }
        assert!(done(self), "not reached within {max} rounds: {what}");
    }

    /// Do one `Ready` the way a correct host does: persist, check, send,
    /// apply, advance.
    fn process_ready(&mut self, id: ReplicaId) {
        let r = self.replicas.get_mut(&id).unwrap();
        let rd = r.raft.ready();
        // 1. persist
        if let Some(meta) = &rd.snapshot {
            assert!(
                rd.committed_entries.is_empty(),
                "entries applied in the ready that installs a snapshot"
            );
            r.durable.apply_snapshot(meta.clone());
            r.restored.push(meta.clone());
        }
        if !rd.entries.is_empty() {
            r.durable.append(&rd.entries);
        }
        if let Some(hs) = rd.hard_state {
            r.durable.set_hard_state(hs);
        }
        if let Some(rc) = rd.role_change {
            r.roles.push(rc);
        }
        // 2. what leaves must only promise what is durable now
        for m in &rd.messages {
            check_outgoing(id, &r.durable, m);
        }
        // 3. apply: exactly once, in order, and only durable entries
        if !rd.committed_entries.is_empty() {
            r.apply_batches
                .push(rd.committed_entries.iter().map(|e| e.index).collect());
        }
        for e in &rd.committed_entries {
            let restored = r.restored.last().map_or(0, |s| s.index);
            let next = r
                .applied
                .last()
                .map_or(1, |a| a.index + 1)
                .max(restored + 1);
            assert_eq!(e.index, next, "replica {id} applied out of order or twice");
            assert_eq!(
                r.durable.term(e.index),
                Ok(e.term),
                "replica {id} applied index {} that is not durable",
                e.index
            );
            r.applied.push(e.clone());
        }
        // 3b. reads: served from a state machine that has applied their index
        let applied = r.applied.last().map_or(0, |e| e.index);
        let applied = applied.max(r.restored.last().map_or(0, |s| s.index));
        for read in &rd.reads {
            assert!(
                read.index <= applied,
                "replica {id} handed out read {read:?} with only {applied} applied"
            );
        }
        r.reads.extend(rd.reads.iter().copied());
        r.reads_failed.extend(rd.reads_failed.iter().copied());
        self.sent.extend(rd.messages.iter().cloned());
        self.queue.extend(rd.messages.iter().cloned());
        // 4. advance; the core's own store must now mirror the durable one
        r.raft.advance(&rd);
        assert_eq!(r.raft.store().last_index(), r.durable.last_index());
        assert_eq!(r.raft.store().hard_state(), r.durable.hard_state());
    }

    /// Send what may leave early, then process every pending `Ready` of
    /// every replica.
    fn flush(&mut self) {
        for id in self.ids() {
            if self.eager_send {
                let r = self.replicas.get_mut(&id).unwrap();
                let mut early = Vec::new();
                r.raft.send_durable_messages(|m| early.push(m));
                for m in &early {
                    check_outgoing(id, &r.durable, m);
                }
                self.sent.extend(early.iter().cloned());
                self.queue.extend(early);
            }
            let mut n = 0;
            while self.replicas[&id].raft.has_ready() {
                self.process_ready(id);
                n += 1;
                assert!(n < 10_000, "replica {id} never runs out of Ready");
            }
        }
    }

    fn should_drop(&mut self, m: &Message) -> bool {
        if self.isolated.contains(&m.from) || self.isolated.contains(&m.to) {
            return true;
        }
        if self.dropped_kinds.contains(&m.msg_type) {
            return true;
        }
        if let Some(f) = self.drop_if.as_mut() {
            if f(m) {
                return true;
            }
        }
        if let Some((rng, pct)) = self.loss.as_mut() {
            if rng.range(0, 100) < *pct {
                return true;
            }
        }
        false
    }

    /// Deliver queued messages (and whatever they cause) until quiet.
    fn deliver_all(&mut self) {
        for _ in 0..1_000_000 {
            self.flush();
            let Some(m) = self.queue.pop_front() else {
                return;
            };
            if self.should_drop(&m) {
                continue;
            }
            if self.hold_if.as_mut().is_some_and(|f| f(&m)) {
                self.held.push(m);
                continue;
            }
            let to = m.to;
            let vote = matches!(m.msg_type, MessageType::Vote | MessageType::PreVote);
            match self.raft(to).step(m) {
                // A replica whose membership lags refuses a candidate it
                // does not know as a voter (`membership.rs`).
                Err(Error::UnknownPeer(_)) if vote => {}
                r => r.expect("harness delivers only valid messages"),
            }
        }
        panic!("network did not quiesce");
    }

    /// Step one message straight into its target (no filters) and flush.
    fn step(&mut self, m: Message) {
        let to = m.to;
        self.raft(to).step(m).expect("valid message");
        self.flush();
    }

    /// Remove and return the first queued message matching `pred`.
    fn take_queued(&mut self, pred: impl Fn(&Message) -> bool) -> Message {
        let i = self
            .queue
            .iter()
            .position(pred)
            .expect("no such message queued");
        self.queue.remove(i).unwrap()
    }

    /// Put held messages back on the queue in the order they were held.
    fn release_held(&mut self) {
        self.hold_if = None;
        self.queue.extend(self.held.drain(..));
    }

    fn isolate(&mut self, id: ReplicaId) {
        self.isolated.insert(id);
    }

    fn heal(&mut self) {
        self.isolated.clear();
        self.dropped_kinds.clear();
        self.drop_if = None;
    }

    /// The host process dies after what it made durable; whatever the core
    /// held in memory (including a `Ready` not yet persisted) is gone.
    fn restart(&mut self, id: ReplicaId) {
        let voters = if self.joined.contains(&id) {
            Vec::new()
        } else {
            self.voters.clone()
        };
        let r = self.replicas.get_mut(&id).unwrap();
        let mut cfg = r.cfg.clone();
        cfg.applied = r.applied.last().map_or(0, |e| e.index);
        r.raft = Raft::new(cfg, &voters, r.durable.clone()).expect("restart");
    }

    /// `id` loses its disk and comes back empty, unable to vote (what a
    /// replica that rejoins does).
    fn wipe(&mut self, id: ReplicaId) {
        let voters = self.voters.clone();
        let r = self.replicas.get_mut(&id).unwrap();
        r.durable = MemStore::new();
        r.applied.clear();
        let mut cfg = r.cfg.clone();
        cfg.applied = 0;
        cfg.can_vote = false;
        r.raft = Raft::new(cfg, &voters, MemStore::new()).expect("rejoin");
    }

    /// Crash in the middle of a `Ready`: it was taken but neither persisted
    /// nor sent.
    fn crash_losing_unpersisted(&mut self, id: ReplicaId) {
        let r = self.replicas.get_mut(&id).unwrap();
        if r.raft.has_ready() {
            let _lost = r.raft.ready();
        }
        self.restart(id);
    }

    fn campaign(&mut self, id: ReplicaId) {
        self.raft(id).campaign();
        self.deliver_all();
    }

    /// Make `id` the leader by an explicit campaign.
    fn elect(&mut self, id: ReplicaId) {
        self.campaign(id);
        assert_eq!(self.status(id).role, Role::Leader, "{id} did not win");
    }

    fn propose(&mut self, id: ReplicaId, s: impl Into<String>) -> Proposed {
        self.raft(id).propose(data(s)).expect("leader accepts")
    }

    /// The leader of the highest term, if any replica is one.
    fn leader(&self) -> Option<ReplicaId> {
        self.replicas
            .values()
            .filter(|r| r.raft.role() == Role::Leader)
            .max_by_key(|r| r.raft.term())
            .map(|r| r.raft.id())
    }

    /// The host of `id` takes a snapshot at its applied index and makes it
    /// durable; the log is compacted (the durable store follows).
    fn snapshot(&mut self, id: ReplicaId) -> SnapshotMeta {
        let applied = self.status(id).applied;
        let r = self.replicas.get_mut(&id).unwrap();
        let meta = r.raft.snapshot_meta_at(applied).expect("a snapshot");
        let (point, _) = r.raft.snapshot_taken(meta.clone()).expect("taken");
        r.durable.set_snapshot(meta.clone());
        r.durable.compact(point);
        // The durable log is compacted to the snapshot; memory keeps the
        // trailing window below it.
        assert_eq!(point, meta.index);
        assert!(r.raft.store().first_index() <= r.durable.first_index());
        meta
    }

    fn sent_since(&self, mark: usize) -> &[Message] {
        &self.sent[mark..]
    }

    /// Applied commands (Normal entries) of `id`, as strings.
    fn applied_data(&self, id: ReplicaId) -> Vec<String> {
        self.replica(id)
            .applied
            .iter()
            .filter(|e| e.kind == EntryKind::Normal)
            .map(|e| String::from_utf8_lossy(&e.data).into_owned())
            .collect()
    }

    /// (term) of every index of `id`'s log.
    fn log_terms(&mut self, id: ReplicaId) -> Vec<u64> {
        let last = self.status(id).last_index;
        let r = self.raft(id);
        (1..=last).map(|i| r.log_term(i).expect("in log")).collect()
    }
}

fn count(msgs: &[Message], pred: impl Fn(&Message) -> bool) -> usize {
    msgs.iter().filter(|m| pred(m)).count()
}

// ---------------------------------------------------------------------------
// Election
// ---------------------------------------------------------------------------

// Mutation: never starting an election on timeout, a timeout ≥ 2×election_ticks,
// or skipping PreVote, fails this.
#[test]
fn election_timeout_turns_follower_into_precandidate_then_candidate_then_leader() {
    let mut net = Network::new(3);
    let e = net.election_ticks();
    let mut ticks = 0;
    while net.status(1).role == Role::Follower {
        net.tick(1);
        ticks += 1;
        assert!(ticks < 2 * e, "no campaign within 2×election_ticks");
    }
    assert!(
        ticks >= e,
        "campaigned after {ticks} < election_ticks ticks"
    );
    assert_eq!(net.status(1).role, Role::PreCandidate);
    assert_eq!(net.status(1).term, 0, "a pre-candidate keeps its term");
    net.deliver_all();
    let roles: Vec<(Role, u64)> = net.replica(1).roles.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(
        roles,
        vec![
            (Role::PreCandidate, 0),
            (Role::Candidate, 1),
            (Role::Leader, 1)
        ]
    );
    for id in [2, 3] {
        assert_eq!(net.status(id).leader, 1);
        assert_eq!(net.status(id).term, 1);
    }
}

// Mutation: a fixed timeout (no randomization) or a range other than
// [election_ticks, 2×election_ticks) fails this.
#[test]
fn randomized_election_timeouts_differ_by_seed_and_stay_in_range() {
    let e = 10u32;
    let mut seen = HashSet::new();
    for seed in 1..=20u64 {
        let mut r = standalone(1, MemStore::new(), |c| {
            c.election_ticks = e;
            c.seed = seed;
        });
        let mut ticks = 0;
        while r.role() == Role::Follower {
            r.tick();
            ticks += 1;
            assert!(
                ticks < 2 * e,
                "seed {seed}: no campaign before 2×election_ticks"
            );
        }
        assert!(ticks >= e, "seed {seed}: campaigned after {ticks} ticks");
        seen.insert(ticks);
    }
    assert!(
        seen.len() >= 3,
        "timeouts barely vary across seeds: {seen:?}"
    );
}

// Mutation: dropping the `self.vote == NONE` condition (or the durable vote
// check) in handle_vote_request lets replica 3 vote for both candidates.
#[test]
fn replica_votes_at_most_once_per_term() {
    let mut r = standalone(3, MemStore::new(), |_| {});
    let vote = |from: ReplicaId| {
        let mut m = Message::new(MessageType::Vote, from, 3, 1);
        m.index = 0;
        m.log_term = 0;
        m
    };
    let answer = |msgs: Vec<Message>, to: ReplicaId| {
        let resp: Vec<_> = msgs
            .into_iter()
            .filter(|m| m.msg_type == MessageType::VoteResponse && m.to == to)
            .collect();
        assert_eq!(resp.len(), 1);
        !resp[0].reject
    };
    r.step(vote(1)).unwrap();
    assert!(
        answer(drain(&mut r), 1),
        "first candidate of the term gets the vote"
    );
    r.step(vote(2)).unwrap();
    assert!(
        !answer(drain(&mut r), 2),
        "second candidate of the same term is refused"
    );
    assert_eq!(r.status().vote, 1);
    // Re-asking by the one we voted for is answered the same way (a retry).
    r.step(vote(1)).unwrap();
    assert!(answer(drain(&mut r), 1));
}

// Mutation: making is_up_to_date always true lets the stale candidate win
// (or, with PreVote, raise its term).
#[test]
fn candidate_with_stale_log_loses_the_election() {
    for pre_vote in [false, true] {
        let stores = vec![
            store_with(&[1, 1], 1, 1),
            store_with(&[1, 1], 1, 1),
            store_with(&[1], 1, 1),
        ];
        let mut net = Network::with_stores(stores, |c| c.pre_vote = pre_vote);
        net.campaign(3);
        let s = net.status(3);
        assert_eq!(
            s.role,
            Role::Follower,
            "pre_vote={pre_vote}: a lost election ends as follower"
        );
        let want_term = if pre_vote { 1 } else { 2 };
        assert_eq!(s.term, want_term, "pre_vote={pre_vote}");
        assert!(
            net.replica(3).roles.iter().all(|r| r.0 != Role::Leader),
            "pre_vote={pre_vote}: replica 3 must never lead: {:?}",
            net.replica(3).roles
        );
        let granted = count(&net.sent, |m| {
            matches!(
                m.msg_type,
                MessageType::VoteResponse | MessageType::PreVoteResponse
            ) && m.to == 3
                && !m.reject
        });
        assert_eq!(granted, 0, "pre_vote={pre_vote}");
        // And the group still elects an up-to-date replica.
        net.run_until(60, "a leader among 1 and 2", |n| {
            matches!(n.leader(), Some(1) | Some(2))
        });
    }
}

// Mutation: a tally that counts answers rather than distinct voters lets a
// candidate of a 5-replica group win with one repeated grant.
#[test]
fn duplicate_vote_grants_count_once() {
    let mut cfg = Config::new(1);
    cfg.pre_vote = false;
    let mut r = Raft::new(cfg, &[1, 2, 3, 4, 5], MemStore::new()).unwrap();
    r.campaign();
    drain(&mut r);
    for _ in 0..3 {
        r.step(Message::new(MessageType::VoteResponse, 2, 1, 1))
            .unwrap();
    }
    assert_eq!(
        r.role(),
        Role::Candidate,
        "self + one voter is not a majority of 5"
    );
    r.step(Message::new(MessageType::VoteResponse, 3, 1, 1))
        .unwrap();
    assert_eq!(r.role(), Role::Leader);
}

// Mutation: a quorum computed over a fixed 3 (or over followers only) keeps a
// single replica from electing itself or committing.
#[test]
fn single_replica_group_elects_itself_and_commits_alone() {
    let voters = [1];
    let mut r = Raft::new(Config::new(1), &voters, MemStore::new()).unwrap();
    let mut ticks = 0;
    while r.role() != Role::Leader {
        r.tick();
        ticks += 1;
        assert!(ticks < 20, "no election");
    }
    let p = r.propose(data("solo")).unwrap();
    // The leader counts itself once its entries are durable, not before.
    assert_eq!(r.status().commit, 0);
    let rd = r.ready();
    assert!(rd.messages.is_empty());
    let persisted: Vec<u64> = rd.entries.iter().map(|e| e.index).collect();
    assert_eq!(persisted, [1, 2]);
    assert!(rd.committed_entries.is_empty());
    r.advance(&rd);
    assert_eq!(r.status().commit, p.index);
    let rd = r.ready();
    let applied: Vec<u64> = rd.committed_entries.iter().map(|e| e.index).collect();
    assert_eq!(applied, [1, 2]);
    r.advance(&rd);
    assert!(!r.has_ready());
}

// Mutation: dropping a check in Config::validate or Raft::new accepts a
// replica that cannot work (or a store that lies about its commit).
#[test]
fn invalid_configs_and_inconsistent_stores_are_refused() {
    let bad = |f: fn(&mut Config)| {
        let mut c = Config::new(1);
        f(&mut c);
        Raft::new(c, &[1, 2, 3], MemStore::new()).err()
    };
    assert!(matches!(bad(|c| c.id = 0), Some(Error::InvalidConfig(_))));
    assert!(matches!(
        bad(|c| c.heartbeat_ticks = 0),
        Some(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        bad(|c| c.election_ticks = c.heartbeat_ticks),
        Some(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        bad(|c| c.max_inflight = 0),
        Some(Error::InvalidConfig(_))
    ));
    // A replica outside the voters it is created with is a non-voter (a
    // joining or removed one): it is built, and never campaigns.
    assert_eq!(bad(|c| c.id = 4), None);
    let mut outsider = Raft::new(Config::new(4), &[1, 2, 3], MemStore::new()).unwrap();
    outsider.campaign();
    for _ in 0..100 {
        outsider.tick();
    }
    assert_eq!(outsider.role(), Role::Follower);
    assert!(outsider.ready().messages.is_empty());
    // A hard state committing past the stored log.
    let lying = store_with(&[1, 1], 1, 5);
    assert!(matches!(
        Raft::new(Config::new(1), &[1, 2, 3], lying).err(),
        Some(Error::Corrupt(_))
    ));
}

// Mutation: granting a second vote in a term, counting a vote twice, or a
// candidate ignoring a lost election would produce two leaders of one term;
// applying uncommitted entries would make applied logs diverge.
#[test]
fn at_most_one_leader_per_term_under_loss_partitions_and_restarts() {
    for seed in 1..=6u64 {
        let mut net = Network::with_config(5, |c| c.seed = c.id * 7919 + seed);
        net.loss = Some((Rng::new(seed), 10));
        net.eager_send = seed % 2 == 0;
        let mut rng = Rng::new(seed.wrapping_mul(0x5851_F42D));
        let mut proposals = 0;
        for round in 0..300u32 {
            match rng.range(0, 100) {
                0..=2 => {
                    let id = rng.range(1, 6);
                    net.isolate(id);
                }
                3..=6 => net.heal(),
                7 => {
                    let id = rng.range(1, 6);
                    net.restart(id);
                }
                8 => {
                    // A leader crashes between accepting a proposal and
                    // persisting it: the entry and its appends are lost.
                    if let Some(l) = net.leader() {
                        let _ = net.raft(l).propose(data(format!("lost{seed}-{round}")));
                        net.crash_losing_unpersisted(l);
                    }
                }
                _ => {}
            }
            for id in net.ids() {
                if rng.range(0, 100) < 90 {
                    net.tick(id);
                }
            }
            if round % 5 == 0 {
                if let Some(l) = net.leader() {
                    let _ = net.raft(l).propose(data(format!("s{seed}-{round}")));
                    proposals += 1;
                }
            }
            net.deliver_all();
        }
        let mut leaders: HashMap<u64, HashSet<ReplicaId>> = HashMap::new();
        for r in net.replicas.values() {
            for &(role, term, leader) in &r.roles {
                if role == Role::Leader {
                    leaders.entry(term).or_default().insert(leader);
                }
            }
        }
        assert!(!leaders.is_empty(), "seed {seed}: no leader ever elected");
        for (term, ids) in &leaders {
            assert_eq!(ids.len(), 1, "seed {seed}: term {term} had leaders {ids:?}");
        }
        // State machine safety: applied logs agree on their common prefix.
        let applied: Vec<&Vec<Entry>> = net.replicas.values().map(|r| &r.applied).collect();
        for a in &applied {
            for b in &applied {
                let n = a.len().min(b.len());
                assert_eq!(a[..n], b[..n], "seed {seed}: applied logs diverge");
            }
        }
        let most = applied.iter().map(|a| a.len()).max().unwrap();
        assert!(
            proposals > 0 && most > 1,
            "seed {seed}: the run made no progress"
        );
    }
}

// ---------------------------------------------------------------------------
// PreVote
// ---------------------------------------------------------------------------

// Mutation: PreVote incrementing the term (or being skipped) makes the
// isolated replica's term grow and, on rejoin, depose the leader.
#[test]
fn isolated_follower_with_prevote_keeps_its_term_and_does_not_disrupt_on_rejoin() {
    let mut net = Network::new(3);
    net.elect(1);
    let term = net.status(1).term;
    net.isolate(3);
    let e = net.election_ticks();
    net.run(10 * e);
    assert!(
        net.replica(3)
            .roles
            .iter()
            .any(|r| r.0 == Role::PreCandidate),
        "the isolated replica never even timed out"
    );
    assert_eq!(
        net.status(3).term,
        term,
        "pre-vote failures must not raise the term"
    );
    assert_eq!(net.status(1).role, Role::Leader);
    net.heal();
    net.run(10 * e);
    for id in 1..=3 {
        let s = net.status(id);
        assert_eq!(s.term, term, "replica {id} changed term");
        assert_eq!(s.leader, 1, "replica {id} lost its leader");
    }
    assert_eq!(net.status(1).role, Role::Leader);
    assert_eq!(net.status(3).role, Role::Follower);
}

// Contrast for the test above: without PreVote the same scenario raises the
// isolated replica's term and, on rejoin, the group's term.
#[test]
fn isolated_follower_without_prevote_raises_its_term_and_disrupts_on_rejoin() {
    let mut net = Network::with_config(3, |c| c.pre_vote = false);
    net.elect(1);
    let term = net.status(1).term;
    net.isolate(3);
    let e = net.election_ticks();
    net.run(10 * e);
    assert!(
        net.status(3).term > term,
        "candidate timeouts raise the term"
    );
    net.heal();
    net.run(10 * e);
    for id in 1..=3 {
        assert!(net.status(id).term > term, "replica {id} did not move on");
    }
    assert!(net.leader().is_some());
}

// ---------------------------------------------------------------------------
// CheckQuorum and the leader lease
// ---------------------------------------------------------------------------

// Mutation: removing the quorum_active check in tick_leader keeps the cut-off
// leader leading forever.
#[test]
fn leader_cut_off_from_quorum_steps_down_within_two_election_timeouts() {
    let mut net = Network::new(3);
    net.elect(1);
    let e = net.election_ticks();
    // Connected, it stays leader for a long time.
    net.run(5 * e);
    assert_eq!(net.status(1).role, Role::Leader);
    let term = net.status(1).term;
    net.isolate(1);
    let mut ticks = 0;
    while net.status(1).role == Role::Leader {
        net.tick(1);
        net.deliver_all();
        ticks += 1;
        assert!(
            ticks <= 2 * e,
            "still leader after {ticks} ticks without a quorum"
        );
    }
    assert_eq!(net.status(1).role, Role::Follower);
    assert_eq!(
        net.status(1).term,
        term,
        "stepping down does not change the term"
    );
    assert_eq!(net.status(1).leader, NONE);
}

// Mutation: removing the in_lease check in step makes the follower adopt the
// disruptive candidate's term (and possibly vote).
#[test]
fn follower_in_lease_ignores_vote_from_higher_term() {
    let mut net = Network::new(3);
    net.elect(1);
    let before = net.status(2);
    let vote = |term: u64, last: u64, last_term: u64| {
        let mut m = Message::new(MessageType::Vote, 3, 2, term);
        m.index = last;
        m.log_term = last_term;
        m
    };
    let last = before.last_index;
    let last_term = net.raft(2).log_term(last).unwrap();
    let mark = net.sent.len();
    net.step(vote(before.term + 1, last, last_term));
    assert_eq!(
        net.status(2),
        before,
        "an in-lease follower ignores the vote"
    );
    assert_eq!(count(net.sent_since(mark), |m| m.from == 2), 0);

    // Contrast: once the lease ran out the same request is honoured.
    let e = net.election_ticks();
    for _ in 0..e {
        net.tick(2);
    }
    net.flush();
    let mark = net.sent.len();
    net.step(vote(before.term + 1, last, last_term));
    assert_eq!(net.status(2).term, before.term + 1);
    assert_eq!(net.status(2).vote, 3);
    let granted = count(net.sent_since(mark), |m| {
        m.msg_type == MessageType::VoteResponse && m.to == 3 && !m.reject
    });
    assert_eq!(granted, 1);
}

// ---------------------------------------------------------------------------
// Replication
// ---------------------------------------------------------------------------

// Mutation: committing without a majority, or handing out committed entries
// out of order, fails this.
#[test]
fn proposals_commit_and_apply_in_order_on_every_replica() {
    let mut net = Network::new(3);
    net.elect(1);
    let mut want = Vec::new();
    for i in 0..10 {
        let s = format!("p{i}");
        net.propose(1, s.clone());
        want.push(s);
        net.deliver_all();
    }
    // A burst proposed before anything is delivered.
    for i in 10..20 {
        let s = format!("p{i}");
        net.propose(1, s.clone());
        want.push(s);
    }
    net.deliver_all();
    let commit = net.status(1).commit;
    assert_eq!(commit, 21, "noop + 20 commands");
    for id in 1..=3 {
        assert_eq!(net.applied_data(id), want, "replica {id}");
        assert_eq!(net.status(id).commit, commit, "replica {id}");
    }
}

// Mutation: setting `commit_pending` whatever `broadcast_commit` says sends
// the empty appends this counts; dropping the membership exception leaves
// the joiner's followers without the commit of the change until a
// heartbeat, and the second half fails.
#[test]
fn without_commit_broadcast_the_commit_index_rides_on_the_next_append_or_heartbeat() {
    let mut net = Network::with_config(3, |c| c.broadcast_commit = false);
    net.elect(1);
    let mark = net.sent.len();
    net.propose(1, "a");
    net.deliver_all();
    let last = net.status(1).last_index;
    assert_eq!(net.status(1).commit, last, "the leader commits as promptly");
    let sent = net.sent_since(mark);
    assert_eq!(
        count(sent, |m| m.msg_type == MessageType::Append),
        2,
        "one append per follower, no empty one for the commit: {sent:?}"
    );
    for id in [2, 3] {
        assert!(net.status(id).commit < last, "replica {id} not told yet");
    }
    // The next proposal's appends carry it...
    net.propose(1, "b");
    net.deliver_all();
    for id in [2, 3] {
        assert_eq!(net.applied_data(id), ["a"], "replica {id}");
    }
    // ...and so does the next heartbeat.
    for _ in 0..net.replica(1).cfg.heartbeat_ticks {
        net.tick(1);
    }
    net.deliver_all();
    for id in [2, 3] {
        assert_eq!(net.applied_data(id), ["a", "b"], "replica {id}");
        assert_eq!(net.status(id).commit, net.status(1).commit);
    }
    // A membership change is told at once.
    net.join(4);
    net.change(1, add(4, MemberRole::NonVoter));
    let conf = net.raft(1).conf_index();
    assert!(net.status(1).commit >= conf);
    for id in [2, 3, 4] {
        assert!(net.status(id).commit >= conf, "replica {id}");
    }
}

// Mutation: a follower appending without truncating a conflicting suffix
// (or skipping the prev-entry check) keeps the stale entries.
#[test]
fn divergent_uncommitted_tail_is_replaced_after_leader_change() {
    let mut net = Network::new(3);
    net.elect(1);
    net.propose(1, "a");
    net.deliver_all();
    net.isolate(1);
    for i in 0..10 {
        net.propose(1, format!("stale{i}"));
    }
    net.deliver_all();
    let stale_last = net.status(1).last_index;
    assert_eq!(stale_last, 12);
    let e = net.election_ticks();
    net.run_until(20 * e, "a new leader among 2 and 3", |n| {
        matches!(n.leader(), Some(2) | Some(3)) && n.status(1).role != Role::Leader
    });
    let new = net.leader().unwrap();
    net.propose(new, "fresh");
    net.deliver_all();
    net.heal();
    net.run_until(20 * e, "replica 1 caught up", |n| {
        n.status(1).commit == n.status(new).commit && n.status(1).leader == new
    });
    assert!(
        net.status(1).last_index < stale_last,
        "the stale tail is gone"
    );
    assert_eq!(net.log_terms(1), net.log_terms(new));
    for id in 1..=3 {
        assert_eq!(net.applied_data(id), ["a", "fresh"], "replica {id}");
    }
}

// Mutation: ignoring the follower's reject hint (walking `next` back one index
// per rejection) needs ~50 rejections here.
#[test]
fn fast_backoff_finds_the_match_point_in_few_rejections() {
    // 1..=5 term 1 everywhere (committed). The leader's side then has 50
    // entries of term 3, replica 3 has 75 of term 2.
    let mut leader_terms = vec![1; 5];
    leader_terms.extend(std::iter::repeat(3).take(50));
    let mut stale_terms = vec![1; 5];
    stale_terms.extend(std::iter::repeat(2).take(75));
    let stores = vec![
        store_with(&leader_terms, 3, 5),
        store_with(&leader_terms, 3, 5),
        store_with(&stale_terms, 2, 5),
    ];
    let mut net = Network::with_stores(stores, |_| {});
    net.elect(1);
    let rejections = count(&net.sent, |m| {
        m.msg_type == MessageType::AppendResponse && m.from == 3 && m.reject
    });
    assert!(rejections >= 1, "the divergence must be detected");
    assert!(
        rejections <= 3,
        "{rejections} rejections to find the match point"
    );
    assert_eq!(net.status(3).last_index, 56);
    assert_eq!(net.log_terms(3), net.log_terms(1));
    assert_eq!(net.status(3).commit, 56);
}

// Mutation: ignoring the in-flight window (is_paused in Replicate) sends an
// append per proposal to the silent follower.
#[test]
fn inflight_window_bounds_appends_to_a_silent_follower() {
    let mut net = Network::with_config(3, |c| c.max_inflight = 2);
    net.elect(1); // replica 3 acknowledged the noop: it is in Replicate
    net.isolate(3);
    let mark = net.sent.len();
    for i in 0..20 {
        net.propose(1, format!("w{i}"));
        net.deliver_all();
    }
    net.run(5); // heartbeats to 3 go unanswered too
    let appends = count(net.sent_since(mark), |m| {
        m.msg_type == MessageType::Append && m.to == 3 && !m.entries.is_empty()
    });
    assert_eq!(appends, 2, "window of 2 appends with entries");
    assert_eq!(net.status(1).commit, 21, "the majority keeps committing");
    // The window does not stall replication forever once 3 answers again.
    net.heal();
    net.run_until(40, "replica 3 caught up", |n| n.status(3).commit == 21);
}

// Mutation: ignoring max_append_bytes sends all 20 entries in one append.
#[test]
fn append_size_limit_caps_entries_per_message_but_sends_at_least_one() {
    let limit = 100;
    let mut big = MemStore::new();
    big.append(&entries_with_terms(&[1; 20], 30)); // 46 bytes each
    big.set_hard_state(HardState {
        term: 1,
        vote: NONE,
        commit: 20,
    });
    let stores = vec![big.clone(), big, MemStore::new()];
    let mut net = Network::with_stores(stores, |c| c.max_append_bytes = limit);
    net.elect(1);
    let appends: Vec<&Message> = net
        .sent
        .iter()
        .filter(|m| m.msg_type == MessageType::Append && m.to == 3 && !m.entries.is_empty())
        .collect();
    for m in &appends {
        let bytes: u64 = m.entries.iter().map(Entry::size).sum();
        assert!(
            bytes <= limit,
            "append of {bytes} bytes over the {limit} limit"
        );
    }
    assert!(
        appends.iter().any(|m| m.entries.len() >= 2),
        "limit allows 2 per append"
    );
    assert_eq!(net.status(3).last_index, 21);
    assert_eq!(net.status(3).commit, 21);

    // One entry larger than the limit still goes, alone.
    let mark = net.sent.len();
    net.propose(1, "x".repeat(500));
    net.deliver_all();
    let m = net
        .sent_since(mark)
        .iter()
        .find(|m| m.msg_type == MessageType::Append && m.to == 3 && !m.entries.is_empty())
        .expect("the large entry is sent");
    assert_eq!(m.entries.len(), 1);
    assert_eq!(net.status(3).commit, 22);
}

// ---------------------------------------------------------------------------
// Commit rule (Raft §5.4.2, Figure 8)
// ---------------------------------------------------------------------------

// Mutation: dropping `term_or_zero(index) == self.term` from maybe_commit
// commits the term-2 entry by counting replicas.
#[test]
fn leader_never_commits_an_earlier_term_entry_by_counting_replicas() {
    // Replica 1 holds [1:t1, 2:t2]; only index 1 is committed.
    let mut r = standalone(1, store_with(&[1, 2], 2, 1), |c| c.pre_vote = false);
    r.campaign();
    assert_eq!(r.role(), Role::Candidate);
    assert_eq!(r.term(), 3);
    drain(&mut r);
    r.step(Message::new(MessageType::VoteResponse, 2, 1, 3))
        .unwrap();
    assert_eq!(r.role(), Role::Leader);
    assert_eq!(r.log_term(3), Some(3), "the leader's own noop at index 3");
    drain(&mut r);
    let ack = |from: ReplicaId, index: u64| {
        let mut m = Message::new(MessageType::AppendResponse, from, 1, 3);
        m.index = index;
        m
    };
    // Every replica holds the term-2 entry: still not committable.
    r.step(ack(2, 2)).unwrap();
    r.step(ack(3, 2)).unwrap();
    drain(&mut r);
    assert_eq!(
        r.status().commit,
        1,
        "a term-2 entry is never committed by counting"
    );
    // One replica acknowledges the term-3 noop: both commit together.
    r.step(ack(2, 3)).unwrap();
    assert_eq!(r.status().commit, 3);
}

// ---------------------------------------------------------------------------
// Heartbeats
// ---------------------------------------------------------------------------

// Mutation: `m.commit = self.log.committed` (no min with the follower's
// match) in broadcast_heartbeat.
#[test]
fn heartbeat_commit_is_clamped_to_the_followers_match() {
    let mut net = Network::new(3);
    net.elect(1);
    net.isolate(3);
    for i in 0..3 {
        net.propose(1, format!("c{i}"));
        net.deliver_all();
    }
    let commit = net.status(1).commit;
    assert_eq!(commit, 4);
    assert_eq!(net.raft(1).follower_matched(3), Some(1));
    let mark = net.sent.len();
    net.raft(1).broadcast_heartbeat();
    net.flush();
    let hbs: Vec<&Message> = net.sent_since(mark).iter().collect();
    assert_eq!(hbs.len(), 2);
    for m in hbs {
        assert_eq!(m.msg_type, MessageType::Heartbeat);
        let want = if m.to == 2 { commit } else { 1 };
        assert_eq!(m.commit, want, "heartbeat to {}", m.to);
    }
}

// Mutation: removing the `m.commit > last_index` guard in handle_heartbeat
// lets a heartbeat commit past the follower's log.
#[test]
fn follower_never_commits_past_its_log_on_a_heartbeat() {
    let mut net = Network::new(3);
    net.elect(1);
    let before = net.status(2);
    assert_eq!(before.last_index, 1);
    let mut hb = Message::new(MessageType::Heartbeat, 1, 2, before.term);
    hb.commit = 10;
    net.step(hb);
    let after = net.status(2);
    assert!(after.commit <= after.last_index);
    assert_eq!(after.commit, before.commit);
    // It still answers, so the leader can find out it lags.
    assert_eq!(
        net.queue.back().map(|m| (m.msg_type, m.to)),
        Some((MessageType::HeartbeatResponse, 1))
    );
}

// Mutation: an unclamped heartbeat commit here makes replica 2 commit and apply
// its own divergent term-1 entries, which the leader never sent.
#[test]
fn heartbeat_overtaking_append_never_commits_unverified_entries() {
    // Replica 2 has two uncommitted term-1 entries the new leader lacks.
    let stores = vec![
        store_with(&[1], 1, 1),
        store_with(&[1, 1, 1], 1, 1),
        store_with(&[1], 1, 1),
    ];
    let mut net = Network::with_stores(stores, |_| {});
    net.hold_if = Some(Box::new(|m| m.to == 2 && m.msg_type == MessageType::Append));
    net.elect(1);
    net.propose(1, "x");
    net.deliver_all();
    assert_eq!(net.status(1).commit, 3, "committed with replica 3");
    assert!(!net.held.is_empty(), "appends to 2 are held back");
    // The heartbeat overtakes the held appends.
    net.raft(1).broadcast_heartbeat();
    net.deliver_all();
    let s2 = net.status(2);
    assert_eq!(s2.last_index, 3, "still its own divergent log");
    assert_eq!(s2.commit, 1, "nothing unverified is committed");
    assert_eq!(net.replica(2).applied.len(), 1);
    // The appends arrive late; replica 2 converges on the leader's log.
    net.release_held();
    net.deliver_all();
    assert_eq!(net.status(2).commit, 3);
    assert_eq!(net.log_terms(2), net.log_terms(1));
    assert_eq!(net.replica(2).applied, net.replica(1).applied);
    assert_eq!(net.applied_data(2).last().map(String::as_str), Some("x"));
}

// Mutation: tick_leader sending appends (or nothing) instead of heartbeats.
#[test]
fn leader_tick_sends_heartbeats_not_appends() {
    let mut net = Network::new(3);
    net.elect(1);
    let hb = net.replica(1).cfg.heartbeat_ticks;
    let mark = net.sent.len();
    for _ in 0..hb {
        net.tick(1);
    }
    net.flush();
    let from_leader: Vec<&Message> = net
        .sent_since(mark)
        .iter()
        .filter(|m| m.from == 1)
        .collect();
    assert_eq!(from_leader.len(), 2, "{from_leader:?}");
    assert!(from_leader
        .iter()
        .all(|m| m.msg_type == MessageType::Heartbeat && m.entries.is_empty()));
    let mut to: Vec<_> = from_leader.iter().map(|m| m.to).collect();
    to.sort_unstable();
    assert_eq!(to, [2, 3]);
}

// Mutation: tick ignoring external_heartbeat, or broadcast_heartbeat sending
// other than one heartbeat per follower.
#[test]
fn external_heartbeat_mode_sends_only_on_broadcast() {
    let mut net = Network::with_config(3, |c| c.external_heartbeat = true);
    net.elect(1);
    let hb = net.replica(1).cfg.heartbeat_ticks;
    let e = net.election_ticks();
    let mark = net.sent.len();
    // Stay under one election timeout so CheckQuorum does not interfere.
    for _ in 0..(e - 1).min(3 * hb) {
        net.tick(1);
    }
    net.flush();
    assert_eq!(count(net.sent_since(mark), |m| m.from == 1), 0);
    net.raft(1).broadcast_heartbeat();
    net.flush();
    let sent = net.sent_since(mark);
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|m| m.msg_type == MessageType::Heartbeat));
    let to: HashSet<_> = sent.iter().map(|m| m.to).collect();
    assert_eq!(to, HashSet::from([2, 3]));
}

// ---------------------------------------------------------------------------
// Term rules
// ---------------------------------------------------------------------------

// Mutation: a leader ignoring the term of responses stays leader of a stale term.
#[test]
fn stale_leader_steps_down_on_a_higher_term_response() {
    for kind in [MessageType::HeartbeatResponse, MessageType::AppendResponse] {
        let mut net = Network::new(3);
        net.elect(1);
        let term = net.status(1).term;
        net.step(Message::new(kind, 2, 1, term + 4));
        let s = net.status(1);
        assert_eq!(s.role, Role::Follower, "{kind:?}");
        assert_eq!(s.term, term + 4, "{kind:?}");
        assert_eq!(s.leader, NONE, "{kind:?}");
        assert_eq!(s.vote, NONE, "{kind:?}");
        assert!(net.raft(1).propose(data("late")).is_err());
    }
}

// Mutation: dropping the lower-term answer in step leaves a stale leader unaware.
#[test]
fn follower_answers_a_lower_term_heartbeat_with_its_own_term() {
    let mut r = standalone(2, store_with(&[1, 1], 5, 1), |_| {});
    let mut hb = Message::new(MessageType::Heartbeat, 1, 2, 3);
    hb.commit = 2;
    r.step(hb).unwrap();
    let msgs = drain(&mut r);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].msg_type, MessageType::HeartbeatResponse);
    assert_eq!((msgs[0].to, msgs[0].term), (1, 5));
    let s = r.status();
    assert_eq!(
        (s.term, s.commit, s.leader),
        (5, 1, NONE),
        "nothing else changed"
    );
}

// ---------------------------------------------------------------------------
// Restart
// ---------------------------------------------------------------------------

// Mutation: Raft::new not restoring the durable vote lets replica 3 vote
// twice in term 1.
#[test]
fn restarted_replica_still_refuses_a_second_vote_in_its_term() {
    let mut net = Network::new(3);
    let vote = |from: ReplicaId| Message::new(MessageType::Vote, from, 3, 1);
    net.step(vote(1));
    assert_eq!(net.replica(3).durable.hard_state().vote, 1);
    net.restart(3);
    assert_eq!((net.status(3).term, net.status(3).vote), (1, 1));
    let mark = net.sent.len();
    net.step(vote(2));
    let resp: Vec<&Message> = net.sent_since(mark).iter().collect();
    assert_eq!(resp.len(), 1);
    assert_eq!(resp[0].msg_type, MessageType::VoteResponse);
    assert!(resp[0].reject, "voted for 1 in term 1 before the crash");
}

// Mutation: Raft::new ignoring the stored log or hard state.
#[test]
fn restarted_replica_keeps_its_log_and_commit() {
    let mut net = Network::new(3);
    net.elect(1);
    for i in 0..5 {
        net.propose(1, format!("k{i}"));
    }
    net.deliver_all();
    let before = net.status(2);
    let terms = net.log_terms(2);
    assert_eq!(before.commit, 6);
    net.restart(2);
    let after = net.status(2);
    assert_eq!(
        (
            after.term,
            after.vote,
            after.commit,
            after.last_index,
            after.applied
        ),
        (
            before.term,
            before.vote,
            before.commit,
            before.last_index,
            before.applied
        )
    );
    assert_eq!(net.log_terms(2), terms);
    // It rejoins and applies new entries without re-applying old ones (the
    // harness checks exactly-once application).
    net.propose(1, "after");
    net.deliver_all();
    assert_eq!(net.applied_data(2), ["k0", "k1", "k2", "k3", "k4", "after"]);
}

// Mutation: letting an append ack leave before its entries are durable (e.g.
// send_durable_messages ignoring unstable entries) makes the harness see an
// ack for an entry the crash then loses.
#[test]
fn entries_not_persisted_before_a_crash_are_gone_after_restart() {
    let mut net = Network::new(3);
    net.elect(1);
    net.isolate(3);
    let before = net.status(2).last_index;
    net.propose(1, "x");
    net.flush();
    let append = net.take_queued(|m| m.to == 2 && m.msg_type == MessageType::Append);
    net.raft(2).step(append).unwrap();
    assert_eq!(net.status(2).last_index, before + 1, "in memory only");
    let mark = net.sent.len();
    net.crash_losing_unpersisted(2);
    assert_eq!(net.status(2).last_index, before);
    assert_eq!(count(net.sent_since(mark), |m| m.from == 2), 0);
    net.deliver_all();
    assert_eq!(
        net.status(1).commit,
        before,
        "x is not durable on a majority"
    );
    // The leader finds out through heartbeats and re-sends.
    net.run_until(10, "x committed", |n| n.status(1).commit == before + 1);
    net.run(2);
    assert_eq!(net.applied_data(2), ["x"]);
}

// ---------------------------------------------------------------------------
// The Ready contract
// ---------------------------------------------------------------------------

// Mutation: recording the vote after the Ready that carries the VoteResponse
// (or not at all) lets a grant leave before the vote is durable.
#[test]
fn granted_vote_is_in_the_same_ready_as_its_response() {
    let mut r = standalone(2, MemStore::new(), |_| {});
    r.step(Message::new(MessageType::Vote, 1, 2, 1)).unwrap();
    let rd = r.ready();
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: 1,
            vote: 1,
            commit: 0
        })
    );
    assert_eq!(rd.messages.len(), 1);
    let m = &rd.messages[0];
    assert_eq!(
        (m.msg_type, m.to, m.term, m.reject),
        (MessageType::VoteResponse, 1, 1, false)
    );
    r.advance(&rd);
    assert_eq!(r.store().hard_state().vote, 1);
}

// Mutation: acknowledging entries in a Ready before the one that hands them
// out for persisting.
#[test]
fn accepted_append_is_acknowledged_in_the_ready_that_persists_it() {
    let mut r = standalone(2, MemStore::new(), |_| {});
    let mut m = Message::new(MessageType::Append, 1, 2, 1);
    m.entries = entries_with_terms(&[1, 1], 4);
    m.commit = 1;
    r.step(m).unwrap();
    let rd = r.ready();
    let idx: Vec<u64> = rd.entries.iter().map(|e| e.index).collect();
    assert_eq!(idx, [1, 2]);
    assert_eq!(rd.hard_state.map(|h| (h.term, h.commit)), Some((1, 1)));
    let ack: Vec<&Message> = rd
        .messages
        .iter()
        .filter(|m| m.msg_type == MessageType::AppendResponse)
        .collect();
    assert_eq!(ack.len(), 1);
    assert_eq!((ack[0].index, ack[0].reject), (2, false));
    r.advance(&rd);
    assert_eq!(r.store().last_index(), 2);
}

// Mutation: dropping the hard-state check (or the all-stable check) in
// send_durable_messages lets a vote grant (or an append ack) out early.
#[test]
fn send_durable_messages_holds_back_what_is_not_yet_durable() {
    let mut r = standalone(2, MemStore::new(), |_| {});
    let mut early = Vec::new();
    // A vote grant promises a hard state not yet persisted.
    r.step(Message::new(MessageType::Vote, 1, 2, 1)).unwrap();
    assert!(!r.send_durable_messages(|m| early.push(m)));
    assert!(early.is_empty());
    let grants = drain(&mut r);
    assert_eq!(grants.len(), 1, "the grant goes out through the Ready");
    // An append ack promises entries not yet persisted.
    let mut m = Message::new(MessageType::Append, 1, 2, 1);
    m.entries = entries_with_terms(&[1], 4);
    r.step(m).unwrap();
    assert!(!r.send_durable_messages(|m| early.push(m)));
    assert!(early.is_empty());
    let acks = drain(&mut r);
    assert_eq!(acks.len(), 1);
    assert_eq!(
        (acks[0].msg_type, acks[0].index),
        (MessageType::AppendResponse, 1)
    );
    // A heartbeat that changes nothing durable is answered at once, in order.
    r.step(Message::new(MessageType::Heartbeat, 1, 2, 1))
        .unwrap();
    r.step(Message::new(MessageType::Heartbeat, 1, 2, 1))
        .unwrap();
    assert!(r.send_durable_messages(|m| early.push(m)));
    assert_eq!(early.len(), 2);
    assert!(early
        .iter()
        .all(|m| m.msg_type == MessageType::HeartbeatResponse && m.to == 1));
    assert!(!r.has_ready(), "nothing left for a Ready");
    // A heartbeat that moves commit changes the hard state: it waits.
    let mut hb = Message::new(MessageType::Heartbeat, 1, 2, 1);
    hb.commit = 1;
    r.step(hb).unwrap();
    early.clear();
    assert!(!r.send_durable_messages(|m| early.push(m)));
    let rd = r.ready();
    assert_eq!(rd.hard_state.map(|h| h.commit), Some(1));
    assert_eq!(rd.messages.len(), 1);
    r.advance(&rd);
}

// Mutation: advance not recording applied (repeats) or next_committed starting
// past applied+1 (skips).
#[test]
fn committed_entries_are_handed_out_once_in_order_across_readys() {
    // max_apply_bytes = 1: every Ready hands out a single entry.
    let mut net = Network::with_config(3, |c| c.max_apply_bytes = 1);
    net.elect(1);
    for i in 0..10 {
        net.propose(1, format!("r{i}"));
    }
    net.deliver_all();
    for id in 1..=3 {
        let r = net.replica(id);
        let flat: Vec<u64> = r.apply_batches.iter().flatten().copied().collect();
        assert_eq!(flat, (1..=11).collect::<Vec<_>>(), "replica {id}");
        assert!(r.apply_batches.iter().all(|b| b.len() == 1), "replica {id}");
    }
    // Without the limit, batches are larger but still never overlap.
    let mut net = Network::new(3);
    net.elect(1);
    for i in 0..10 {
        net.propose(1, format!("r{i}"));
    }
    net.deliver_all();
    for id in 1..=3 {
        let flat: Vec<u64> = net
            .replica(id)
            .apply_batches
            .iter()
            .flatten()
            .copied()
            .collect();
        assert_eq!(flat, (1..=11).collect::<Vec<_>>(), "replica {id}");
    }
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

// Mutation: dropping the `to`/sender checks in step lets a misrouted
// heartbeat change the term. (A vote request from a replica outside this
// one's membership is handled like any other: a replica whose membership
// lags, or one that joined and knows none yet, must still vote for the
// new voters; a disruptive removed replica is held off by PreVote and the
// lease, as any other.)
#[test]
fn misaddressed_or_foreign_messages_are_refused_and_change_nothing() {
    let mut net = Network::new(3);
    net.elect(1);
    let before = net.status(2);
    let term = before.term + 5;
    // Within its lease, a vote request from a stranger changes nothing.
    for kind in [MessageType::Vote, MessageType::PreVote] {
        net.raft(2).step(Message::new(kind, 9, 2, term)).unwrap();
        assert_eq!(net.status(2), before);
    }
    let cases = [
        (
            Message::new(MessageType::Heartbeat, 1, 3, term),
            Error::NotForMe { to: 3 },
        ),
        (
            Message::new(MessageType::Heartbeat, 0, 2, term),
            Error::UnknownPeer(0),
        ),
        (
            Message::new(MessageType::Heartbeat, 2, 2, term),
            Error::UnknownPeer(2),
        ),
    ];
    for (m, err) in cases {
        assert_eq!(net.raft(2).step(m.clone()), Err(err), "{m:?}");
        assert_eq!(net.status(2), before, "{m:?}");
        assert!(!net.raft(2).has_ready(), "{m:?}");
    }
}

/// Step `entries` as an Append (prev = 0/0) into a fresh follower and check
/// it is refused: nothing handed out to persist, nothing acknowledged, and
/// the log is still empty.
fn assert_append_refused(what: &str, term: u64, entries: Vec<Entry>) {
    let mut r = standalone(2, MemStore::new(), |_| {});
    let mut m = Message::new(MessageType::Append, 1, 2, term);
    m.entries = entries;
    let _ = r.step(m); // Err or a silent drop are both fine
    let rd = r.ready();
    assert!(rd.entries.is_empty(), "{what}: handed out {:?}", rd.entries);
    assert_eq!(r.status().last_index, 0, "{what}");
    assert!(
        !rd.messages
            .iter()
            .any(|m| m.msg_type == MessageType::AppendResponse && !m.reject && m.index > 0),
        "{what}: acknowledged {:?}",
        rd.messages
    );
    r.advance(&rd);
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: data(format!("{index}@{term}")),
    }
}

// The wire layer leaves "are entries contiguous" to the core (src/wire/mod.rs);
// a fix is a check in handle_append/maybe_append that entries[i].index ==
// m.index + 1 + i.
#[test]
fn append_with_non_contiguous_entries_is_refused() {
    assert_append_refused("starts past index+1", 2, vec![entry(5, 2)]);
    assert_append_refused("gap between entries", 2, vec![entry(1, 2), entry(3, 2)]);
}

// A leader of term T only holds entries of terms ≤ T, non-decreasing, not
// below the term of the entry before them; a log holding a term-7 entry sent
// at term 2 would win elections it must lose.
#[test]
fn append_with_impossible_entry_terms_is_refused() {
    assert_append_refused("entry term above the message term", 2, vec![entry(1, 7)]);
    assert_append_refused("entry terms decreasing", 2, vec![entry(1, 2), entry(2, 1)]);
}

// Scenario 4 of the safety review. Mutation: not dropping the old leader's
// acknowledgement when a later append replaces the entries it covers (see
// `drop_acks_from`) lets it leave beside a log that never held them.
#[test]
fn acknowledgement_of_entries_replaced_before_the_ready_never_leaves() {
    let mut r = standalone(2, MemStore::new(), |_| {});
    // The leader of term 1 sends three entries...
    let mut first = Message::new(MessageType::Append, 1, 2, 1);
    first.entries = vec![entry(1, 1), entry(2, 1), entry(3, 1)];
    r.step(first).unwrap();
    // ...and before the host takes a Ready, the leader of term 2 replaces
    // the last two.
    let mut second = Message::new(MessageType::Append, 3, 2, 2);
    second.index = 1;
    second.log_term = 1;
    second.entries = vec![entry(2, 2), entry(3, 2)];
    r.step(second).unwrap();
    let rd = r.ready();
    let persisted: Vec<(u64, u64)> = rd.entries.iter().map(|e| (e.index, e.term)).collect();
    assert_eq!(persisted, [(1, 1), (2, 2), (3, 2)]);
    for m in &rd.messages {
        if m.msg_type != MessageType::AppendResponse || m.reject {
            continue;
        }
        // An acknowledgement promises the acknowledged leader's entries up
        // to m.index: the ones this Ready persists must be those.
        let leader_term = m.term;
        let backed = rd
            .entries
            .iter()
            .filter(|e| e.index <= m.index)
            .all(|e| e.term <= leader_term && (m.to != 1 || e.term == 1));
        assert!(
            backed,
            "ack to {} at term {} for index {} leaves beside {persisted:?}",
            m.to, m.term, m.index
        );
    }
    assert!(
        rd.messages.iter().any(|m| m.to == 3
            && m.msg_type == MessageType::AppendResponse
            && !m.reject
            && m.index == 3),
        "the new leader's append is acknowledged"
    );
}

// ---------------------------------------------------------------------------
// Snapshots and log compaction

// Mutation: sending appends (or nothing) to a follower behind the compaction
// point leaves it behind forever.
#[test]
fn a_follower_behind_the_compaction_point_is_brought_up_by_a_snapshot() {
    let mut net = Network::with_config(3, |c| c.snapshot_trailing_entries = 2);
    net.elect(1);
    net.isolate(3);
    for i in 0..20 {
        net.propose(1, format!("e{i}"));
        net.deliver_all();
    }
    let meta = net.snapshot(1);
    assert!(net.status(1).last_index > 20);
    assert!(net.raft(1).store().first_index() > 5, "compacted");
    let mark = net.sent.len();
    net.heal();
    net.run_until(30, "follower 3 caught up", |n| {
        n.status(3).commit == n.status(1).commit && n.status(3).last_index == n.status(1).last_index
    });
    let snaps = count(net.sent_since(mark), |m| {
        m.msg_type == MessageType::Snapshot && m.to == 3
    });
    assert!(snaps >= 1, "a snapshot was sent to 3");
    assert_eq!(net.replica(3).restored.last(), Some(&meta));
    // Appends resume after it: a new proposal reaches 3 as an append.
    net.propose(1, "after");
    net.run(4);
    assert!(net.applied_data(3).contains(&"after".to_string()));
}

// Mutation: waiting for the follower's answer alone leaves the leader in
// the snapshot state forever when that answer is lost (nothing asks again).
#[test]
fn a_leader_told_its_snapshot_arrived_probes_on_even_if_the_answer_is_lost() {
    let mut net = Network::with_config(3, |c| c.snapshot_trailing_entries = 2);
    net.elect(1);
    net.isolate(3);
    for i in 0..20 {
        net.propose(1, format!("e{i}"));
        net.deliver_all();
    }
    let meta = net.snapshot(1);
    net.heal();
    // Node 3's acknowledgements are lost (its rejections are not, so the
    // leader finds out it needs the snapshot).
    net.drop_if = Some(Box::new(|m: &Message| {
        m.from == 3 && m.msg_type == MessageType::AppendResponse && !m.reject
    }));
    net.run(6);
    assert_eq!(
        net.replica(3).restored.last(),
        Some(&meta),
        "3 installed it"
    );
    assert!(net.raft(1).follower_matched(3).unwrap() < meta.index);
    net.run(6);
    assert!(
        net.raft(1).follower_matched(3).unwrap() < meta.index,
        "without the report, the leader never learns"
    );
    net.drop_if = None;
    // The transfer layer saw every byte arrive.
    net.raft(1).report_snapshot_sent(3);
    net.run(4);
    assert!(net.raft(1).follower_matched(3).unwrap() >= meta.index);
    net.propose(1, "after");
    net.run(4);
    assert!(net.applied_data(3).contains(&"after".to_string()));
}

// Mutation: a trailing window of 0 sends a snapshot to a follower a few
// entries behind.
#[test]
fn a_follower_a_little_behind_catches_up_by_appends_within_the_trailing_window() {
    let mut net = Network::with_config(3, |c| c.snapshot_trailing_entries = 100);
    net.elect(1);
    net.isolate(3);
    for i in 0..10 {
        net.propose(1, format!("e{i}"));
        net.deliver_all();
    }
    net.snapshot(1);
    let mark = net.sent.len();
    net.heal();
    net.run(6);
    assert_eq!(net.status(3).commit, net.status(1).commit);
    assert_eq!(
        count(net.sent_since(mark), |m| m.msg_type
            == MessageType::Snapshot),
        0,
        "no snapshot for a follower within the window"
    );
    assert!(net.replica(3).restored.is_empty());
}

// Mutation: acknowledging the snapshot before the Ready (or applying entries
// in the Ready that installs it) breaks the host contract the harness checks.
#[test]
fn a_received_snapshot_is_durable_before_its_acknowledgement_and_restored_before_later_entries() {
    let mut r = standalone(2, MemStore::new(), |_| {});
    let mut m = Message::new(MessageType::Snapshot, 1, 2, 3);
    let meta = SnapshotMeta {
        index: 10,
        term: 2,
        voters: vec![1, 2, 3],
        ..Default::default()
    };
    m.snapshot = Some(Box::new(meta.clone()));
    r.step(m).unwrap();
    assert!(
        !r.send_durable_messages(|_| panic!("nothing may leave before the snapshot is durable")),
        "held back"
    );
    let rd = r.ready();
    assert_eq!(rd.snapshot.as_ref(), Some(&meta));
    assert!(rd.committed_entries.is_empty());
    let ack: Vec<&Message> = rd
        .messages
        .iter()
        .filter(|m| m.msg_type == MessageType::AppendResponse)
        .collect();
    assert_eq!(ack.len(), 1);
    assert_eq!((ack[0].index, ack[0].reject), (10, false));
    r.advance(&rd);
    assert_eq!(r.store().snapshot(), &meta);
    assert_eq!((r.status().commit, r.status().applied), (10, 10));
    // The log continues after it.
    let mut a = Message::new(MessageType::Append, 1, 2, 3);
    a.index = 10;
    a.log_term = 2;
    a.entries = vec![entry(11, 3)];
    a.commit = 11;
    r.step(a).unwrap();
    let rd = r.ready();
    assert_eq!(rd.committed_entries.first().map(|e| e.index), Some(11));
}

// A snapshot message naming nothing, or a term after its sender's, is refused.
#[test]
fn a_malformed_snapshot_message_is_refused_and_changes_nothing() {
    let mut r = standalone(2, MemStore::new(), |_| {});
    let m = Message::new(MessageType::Snapshot, 1, 2, 3);
    assert!(matches!(r.step(m), Err(Error::Malformed(_))));
    let mut m = Message::new(MessageType::Snapshot, 1, 2, 3);
    m.snapshot = Some(Box::new(SnapshotMeta {
        index: 5,
        term: 4,
        voters: vec![],
        ..Default::default()
    }));
    assert!(matches!(r.step(m), Err(Error::Malformed(_))));
    assert_eq!(r.status().commit, 0);
}

#[test]
fn a_snapshot_is_taken_only_of_applied_state_after_the_current_one() {
    let mut net = Network::new(3);
    net.elect(1);
    net.propose(1, "a");
    net.run(2);
    let applied = net.status(1).applied;
    assert!(
        net.raft(1).snapshot_meta_at(applied + 1).is_err(),
        "not applied"
    );
    let meta = net.snapshot(1);
    assert_eq!(meta.index, applied);
    assert!(
        net.raft(1).snapshot_meta_at(applied).is_err(),
        "not after the current"
    );
    assert_eq!(meta.voters, vec![1, 2, 3]);
}

// Mutation: allowing only `applied` refuses the snapshot a host takes from
// inside its apply callback; allowing `commit` lets it claim state it has not
// been given.
#[test]
fn a_snapshot_may_be_taken_of_entries_handed_out_before_advance() {
    let voters = [1];
    let mut cfg = Config::new(1);
    cfg.max_apply_bytes = 1; // one entry per Ready
    let mut r = Raft::new(cfg, &voters, MemStore::new()).unwrap();
    while r.role() != Role::Leader {
        r.tick();
    }
    r.propose(data("a")).unwrap();
    r.propose(data("b")).unwrap();
    // Durable: the no-op, "a" and "b" commit.
    let rd = r.ready();
    r.advance(&rd);
    let mut rd = r.ready();
    while rd.committed_entries.last().map(|e| e.data.as_ref()) != Some(&b"a"[..]) {
        r.advance(&rd);
        rd = r.ready();
    }
    let last = rd.committed_entries.last().expect("committed").index;
    // The host applies `last` and snapshots its state there, in the callback;
    // "b" is committed, not handed out.
    assert!(r.status().commit > last);
    assert!(r.snapshot_meta_at(last + 1).is_err(), "not handed out yet");
    let meta = r
        .snapshot_meta_at(last)
        .expect("handed out counts as applied");
    r.advance(&rd);
    r.snapshot_taken(meta).expect("taken after advance");
}

// Mutation: a replica that lost its state and still votes can elect a
// leader without committed entries, or vote twice in a term.
#[test]
fn a_replica_that_cannot_vote_never_campaigns_nor_grants_a_vote() {
    let mut r = standalone(3, MemStore::new(), |c| c.can_vote = false);
    for _ in 0..100 {
        r.tick();
    }
    assert_eq!(r.role(), Role::Follower, "it never campaigns");
    for kind in [MessageType::PreVote, MessageType::Vote] {
        r.step(Message::new(kind, 1, 3, 5)).unwrap();
        let msgs = drain(&mut r);
        assert!(
            msgs.iter().all(|m| m.reject),
            "{kind:?} granted by a replica that cannot vote: {msgs:?}"
        );
    }
}

// Found by the simulation (seed 12): a follower restarts from a snapshot at
// 25 whose saved hard state still says commit 19 (the install became durable
// before the commit that came with it). If it believed commit 19, an append
// probing at 19 would find index 19 compacted away and be rejected with hint
// 0, the leader would probe at 19 again, and the pair would loop for ever.
#[test]
fn a_replica_restarted_from_a_snapshot_counts_its_index_as_committed() {
    let meta = SnapshotMeta {
        index: 25,
        term: 4,
        voters: vec![1, 2, 3],
        ..Default::default()
    };
    let hs = HardState {
        term: 4,
        vote: 0,
        commit: 19,
    };
    let store = MemStore::restored(hs, meta, 25, 4, Vec::new());
    let mut r = standalone(2, store, |_| {});
    assert_eq!((r.status().commit, r.status().applied), (25, 25));
    let mut a = Message::new(MessageType::Append, 1, 2, 4);
    a.index = 19;
    a.log_term = 4;
    a.entries = (20..=27).map(|i| entry(i, 4)).collect();
    a.commit = 27;
    r.step(a).unwrap();
    let rd = r.ready();
    let resp: Vec<(u64, bool)> = rd
        .messages
        .iter()
        .filter(|m| m.msg_type == MessageType::AppendResponse)
        .map(|m| (m.index, m.reject))
        .collect();
    assert_eq!(
        resp,
        vec![(25, false)],
        "answered with the snapshot's index"
    );
}

// Found by the simulation (seeds 12 and 129, wiped disks): a leader that saw
// a follower match everything sends it nothing but heartbeats. Once that
// follower lost its disk and rejoined empty, it must say so (it cannot take
// the heartbeat's commit), and the leader must believe it, or the follower
// stays empty for ever, or the pair probe each other in a tight loop.
#[test]
fn a_follower_that_lost_its_log_is_brought_back_by_its_leader() {
    let mut net = Network::new(3);
    net.elect(1);
    for i in 0..5 {
        net.propose(1, format!("m{i}"));
    }
    net.run(2);
    let want = net.applied_data(1);
    assert_eq!(net.applied_data(3), want);
    net.wipe(3);
    assert!(net.applied_data(3).is_empty());
    let ticks = net.election_ticks();
    net.run_until(ticks * 2, "the wiped follower catches up", |n| {
        n.applied_data(3) == want
    });
    // It is followed like any other from then on.
    net.propose(1, "after");
    net.run(2);
    assert_eq!(net.applied_data(3), net.applied_data(1));
}

// A replica that rejoined after losing its disk never votes, and it must
// not acknowledge toward any quorum either (seed 13630, quiesced mode).
// Before the wipe it helped commit entries in a later term than the one a
// stale leader, cut off from that term's leader, still leads in; after the
// wipe it remembers neither, takes the stale leader's appends and would
// give it the quorum to commit a conflicting entry at the same index. Its
// answers say it rejoined (`Message::rejoined`) and its leader leaves it
// out of every quorum. Mutation: counting its `matched` in `maybe_commit`
// commits "y".
#[test]
fn a_rejoined_replica_does_not_give_a_stale_leader_a_quorum() {
    // Without PreVote and CheckQuorum, so that node 2 wins at once (the
    // simulation reached the same state with them, by timing).
    let mut net = Network::with_config(3, |c| {
        c.pre_vote = false;
        c.check_quorum = false;
    });
    net.elect(1);
    net.propose(1, "a");
    net.deliver_all();
    // Node 1 is cut off, believing it still leads term 1; node 2 is
    // elected in term 2 with node 3's vote, and commits "x" with it.
    net.isolate(1);
    net.elect(2);
    net.propose(2, "x");
    net.deliver_all();
    assert_eq!(net.applied_data(3), vec!["a", "x"]);
    // Node 3 loses its disk and rejoins; now only nodes 1 and 3 hear each
    // other.
    net.wipe(3);
    net.heal();
    net.drop_if = Some(Box::new(|m: &Message| m.from == 2 || m.to == 2));
    net.propose(1, "y");
    net.deliver_all();
    // "x" was committed at the index "y" takes here: "y" must not commit.
    assert_eq!(net.applied_data(1), vec!["a"], "the stale leader committed");
}

/// Nodes 1, 2, 3; node 1 leads term 1 and is then cut off while node 2
/// leads term 2 with node 3 and commits "x"; node 3 loses its disk and
/// rejoins; only nodes 1 and 3 hear each other. Node 1 is a stale leader
/// whose one live follower rejoined.
fn stale_leader_with_a_rejoined_follower() -> Network {
    let mut net = Network::with_config(3, |c| {
        c.pre_vote = false;
        c.check_quorum = false;
    });
    net.elect(1);
    net.propose(1, "a");
    net.deliver_all();
    net.isolate(1);
    net.elect(2);
    net.propose(2, "x");
    net.deliver_all();
    net.wipe(3);
    net.heal();
    net.drop_if = Some(Box::new(|m: &Message| m.from == 2 || m.to == 2));
    net
}

// The read side of the same bug: node 1 would answer a read with "a" alone
// when "x" is committed. Mutation: counting a rejoined replica's read round
// in `confirm_reads` confirms the read.
#[test]
fn a_rejoined_replica_confirms_no_read_of_a_stale_leader() {
    let mut net = stale_leader_with_a_rejoined_follower();
    assert_eq!(net.status(1).role, Role::Leader);
    net.raft(1).read_index(7, false).unwrap();
    for _ in 0..3 {
        beat(&mut net, 1);
        net.deliver_all();
    }
    assert_eq!(
        net.raft(1).pending_reads(),
        1,
        "the read still waits for a quorum"
    );
    assert!(
        read_ids(&net, 1).is_empty(),
        "a stale leader confirmed a read"
    );
}

// CheckQuorum: a leader that only a rejoined replica hears has no quorum
// and steps down. Mutation: counting its activity in `quorum_active` keeps
// node 1 leading.
#[test]
fn a_leader_heard_only_by_a_rejoined_replica_steps_down() {
    let mut net = Network::new(3);
    net.elect(1);
    net.propose(1, "a");
    net.deliver_all();
    let commit = net.status(1).commit;
    net.wipe(3);
    net.isolate(2);
    // Node 3 takes node 1's appends again, saying it rejoined.
    net.propose(1, "b");
    net.deliver_all();
    assert_eq!(
        net.applied_data(3),
        vec!["a"],
        "node 3 caught up to the commit"
    );
    let e = net.election_ticks();
    let mut ticks = 0;
    while net.status(1).role == Role::Leader {
        net.tick(1);
        net.tick(3);
        net.deliver_all();
        ticks += 1;
        assert!(ticks <= 2 * e, "still leader after {ticks} ticks");
    }
    assert_eq!(
        net.status(1).commit,
        commit,
        "\"b\" committed without a quorum"
    );
}

// A rejoined replica never campaigns, so a transfer to it could only stall
// the group until it timed out; the balancer must not pick it either.
// Mutation: without the check in `transfer_leader` the transfer starts.
#[test]
fn a_leadership_transfer_to_a_rejoined_replica_is_refused() {
    let mut net = Network::new(3);
    net.elect(1);
    net.propose(1, "a");
    net.deliver_all();
    net.wipe(3);
    net.propose(1, "b");
    net.deliver_all();
    net.run(2);
    assert_eq!(net.applied_data(3), vec!["a", "b"]);
    assert!(!net.raft(1).transfer_ready(3));
    assert_eq!(
        net.raft(1).transfer_leader(3),
        Err(Error::TransferNotVoter(3))
    );
    assert!(net.raft(1).transfer_ready(2));
}

// Quiescence: a leader goes quiet only with a quorum caught up that will
// keep it leading when it wakes (CheckQuorum); a rejoined replica is in
// none. Mutation: counting it in `quiet_leader` lets node 1 go quiet with
// only node 3's node heard, and step down on waking.
#[test]
fn a_rejoined_replica_is_not_in_the_quorum_a_leader_needs_to_go_quiet() {
    let mut net = Network::new(3);
    net.elect(1);
    net.propose(1, "a");
    net.deliver_all();
    net.wipe(3);
    net.propose(1, "b");
    net.deliver_all();
    net.run(2);
    assert_eq!(net.applied_data(3), vec!["a", "b"]);
    assert!(net.raft(1).quiet_leader(|id| id == 2));
    assert!(!net.raft(1).quiet_leader(|id| id == 3));
}

// A leader's appends may leave before its own write (the drive loop sends
// them first), so the leader must count itself toward commit only for what
// its own disk holds. Mutation: counting itself at append time commits an
// entry that one follower's disk holds when the leader's does not (a leader
// crash then loses a committed entry in a group of three).
#[test]
fn a_leader_counts_itself_toward_commit_only_once_its_entries_are_durable() {
    let voters = [1, 2, 3];
    let cfg = |id| {
        let mut c = Config::new(id);
        c.pre_vote = false;
        c
    };
    let mut l = Raft::new(cfg(1), &voters, MemStore::new()).unwrap();
    let mut f = Raft::new(cfg(2), &voters, MemStore::new()).unwrap();
    l.campaign();
    let rd = l.ready();
    l.advance(&rd);
    l.step(Message::new(MessageType::VoteResponse, 2, 1, l.term()))
        .unwrap();
    assert_eq!(l.role(), Role::Leader);
    let term = l.term();
    // The no-op and "x" in the leader's log, not yet durable.
    let p = l.propose(data("x")).unwrap();
    let rd = l.ready();
    assert_eq!(rd.entries.last().map(|e| e.index), Some(p.index));
    // The follower gets the appends (sent early), makes them durable and
    // acknowledges before the leader's own write completed.
    for m in rd.messages.iter().filter(|m| m.to == 2) {
        f.step(m.clone()).unwrap();
    }
    let frd = f.ready();
    f.advance(&frd);
    let acks: Vec<Message> = frd.messages.into_iter().filter(|m| m.to == 1).collect();
    // (The leader probes first: the append carries the no-op, index 1.)
    let acked = acks
        .iter()
        .filter(|m| m.msg_type == MessageType::AppendResponse && !m.reject)
        .map(|m| m.index)
        .max()
        .expect("an acknowledgement");
    assert!(acked >= 1);
    for m in acks {
        l.step(m).unwrap();
    }
    assert_eq!(
        l.status().commit,
        0,
        "committed with one durable copy out of three"
    );
    // Its own write done: leader + follower are a majority.
    l.advance(&rd);
    assert_eq!(l.status().commit, acked);
    assert_eq!(l.term(), term);
}

// Batching on the data path: a leader proposed to N times between two
// readies used to send N appends per follower (one per proposal), and each
// follower answered each one.
#[test]
fn proposals_between_two_readies_leave_in_one_append_per_follower() {
    let mut net = Network::new(3);
    net.elect(1);
    net.flush();
    let mark = net.sent.len();
    let first = net.propose(1, "a").index;
    for s in ["b", "c", "d", "e"] {
        net.propose(1, s);
    }
    net.flush();
    let appends: Vec<&Message> = net
        .sent_since(mark)
        .iter()
        .filter(|m| m.msg_type == MessageType::Append && m.from == 1)
        .collect();
    assert_eq!(appends.len(), 2, "one append per follower: {appends:?}");
    for m in appends {
        let idx: Vec<u64> = m.entries.iter().map(|e| e.index).collect();
        assert_eq!(idx, (first..first + 5).collect::<Vec<_>>());
    }
    net.deliver_all();
    let with_entries = count(net.sent_since(mark), |m| {
        m.msg_type == MessageType::Append && !m.entries.is_empty()
    });
    assert_eq!(
        with_entries, 2,
        "so one answer per follower for the entries"
    );
    assert_eq!(net.applied_data(2), ["a", "b", "c", "d", "e"]);
}

// ...and proposals beyond one append's size still go out at once, in as
// many appends as the size needs, as far as the follower's window allows.
#[test]
fn proposals_over_one_appends_size_leave_in_several_appends_at_once() {
    let mut net = Network::with_config(3, |c| c.max_append_bytes = 100);
    net.elect(1);
    net.flush();
    let mark = net.sent.len();
    for i in 0..10 {
        net.propose(1, format!("{i:0>60}"));
    }
    net.process_ready(1);
    let appends = count(net.sent_since(mark), |m| {
        m.msg_type == MessageType::Append && m.to == 2
    });
    assert!(
        appends >= 5,
        "{appends} appends for 600 bytes of 100-byte appends"
    );
    net.deliver_all();
    assert_eq!(net.applied_data(3).len(), 10);
}

// A new commit index used to go out at once in an empty append per
// follower, and the entries proposed in the same pass in another.
#[test]
fn a_new_commit_index_rides_on_the_append_of_what_was_proposed_meanwhile() {
    let mut net = Network::new(3);
    net.elect(1);
    net.deliver_all();
    net.propose(1, "a");
    net.flush();
    // The followers' acknowledgements of "a" arrive, then "b" is proposed,
    // both before the leader's next ready.
    for _ in 0..2 {
        let m = net.take_queued(|m| m.msg_type == MessageType::Append && m.from == 1);
        net.step(m);
    }
    let acks: Vec<Message> = (0..2)
        .map(|_| net.take_queued(|m| m.msg_type == MessageType::AppendResponse && m.to == 1))
        .collect();
    let committed = net.status(1).commit;
    for m in acks {
        net.raft(1).step(m).unwrap();
    }
    assert!(net.status(1).commit > committed, "the acks commit \"a\"");
    net.propose(1, "b");
    let mark = net.sent.len();
    net.process_ready(1);
    let appends: Vec<&Message> = net
        .sent_since(mark)
        .iter()
        .filter(|m| m.msg_type == MessageType::Append)
        .collect();
    assert_eq!(appends.len(), 2, "{appends:?}");
    for m in appends {
        assert_eq!(m.entries.len(), 1, "\"b\" rides along: {m:?}");
        assert_eq!(m.commit, net.status(1).commit);
    }
    // With nothing proposed, the commit index goes out alone.
    net.deliver_all();
    assert_eq!(net.applied_data(2), ["a", "b"]);
    assert_eq!(net.applied_data(3), ["a", "b"]);
}

// ---------------------------------------------------------------------------
// Reads (read index)
// ---------------------------------------------------------------------------

/// Ids of the reads `id` handed out so far.
fn read_ids(net: &Network, id: ReplicaId) -> Vec<u64> {
    net.replica(id).reads.iter().map(|r| r.id).collect()
}

/// One heartbeat broadcast from `id`, queued (not delivered).
fn beat(net: &mut Network, id: ReplicaId) {
    net.raft(id).broadcast_heartbeat();
    net.flush();
}

// Mutation: confirming a read without waiting for a quorum's answers (or
// on answers of the round before it) hands it out before any heartbeat.
#[test]
fn a_read_waits_for_a_quorum_to_answer_a_heartbeat_sent_after_it() {
    let mut net = Network::new(3);
    net.elect(1);
    net.propose(1, "w1");
    net.deliver_all();
    let commit = net.status(1).commit;
    net.raft(1).read_index(7, false).unwrap();
    net.deliver_all();
    assert!(read_ids(&net, 1).is_empty(), "confirmed without a round");
    beat(&mut net, 1);
    net.deliver_all();
    assert_eq!(
        net.replica(1).reads,
        vec![ReadState {
            id: 7,
            index: commit
        }]
    );
    assert_eq!(net.raft(1).pending_reads(), 0);
}

// Mutation: a read waiting for the round that was already out when it came
// (round = last sent, not the next) is confirmed by answers to a heartbeat
// that left before it: those prove nothing about leadership at read time.
#[test]
fn answers_to_a_round_sent_before_a_read_do_not_confirm_it() {
    let mut net = Network::new(3);
    net.elect(1);
    net.raft(1).read_index(1, false).unwrap();
    // Round 1 goes out (for read 1) and its answers are held back.
    net.hold_if = Some(Box::new(|m| m.msg_type == MessageType::HeartbeatResponse));
    beat(&mut net, 1);
    net.deliver_all();
    assert_eq!(net.held.len(), 2);
    net.raft(1).read_index(2, false).unwrap();
    net.release_held();
    net.deliver_all();
    assert_eq!(read_ids(&net, 1), vec![1], "round 1 confirms read 1 only");
    beat(&mut net, 1);
    net.deliver_all();
    assert_eq!(read_ids(&net, 1), vec![1, 2]);
}

// Mutation: counting an answer of any term (or any answer at all) lets a
// deposed leader confirm a read at a stale index after a new leader
// committed writes it cannot see.
#[test]
fn a_deposed_leader_fails_its_reads_and_never_confirms_them() {
    // Without CheckQuorum the cut-off leader keeps believing it leads.
    let mut net = Network::with_config(3, |c| c.check_quorum = false);
    net.elect(1);
    net.propose(1, "w1");
    net.deliver_all();
    net.isolate(1);
    // 2 takes over and commits a write 1 never sees.
    let e = net.election_ticks();
    for _ in 0..3 * e {
        net.tick(2);
        net.deliver_all();
        if net.status(2).role == Role::Leader {
            break;
        }
    }
    assert_eq!(net.status(2).role, Role::Leader);
    net.propose(2, "w2");
    net.deliver_all();
    assert_eq!(net.status(1).role, Role::Leader, "1 does not know yet");
    net.raft(1).read_index(9, false).unwrap();
    net.heal();
    beat(&mut net, 1);
    net.deliver_all();
    assert!(read_ids(&net, 1).is_empty(), "a stale read was confirmed");
    assert_eq!(net.replica(1).reads_failed, vec![9]);
    assert_ne!(net.status(1).role, Role::Leader);
}

// Mutation: without the wait for the leader's first commit of its term, a
// read taken right after an election is confirmed at the previous leader's
// (older) commit index.
#[test]
fn reads_on_a_new_leader_wait_for_its_first_commit() {
    // Without CheckQuorum, 3 votes for 2 at once (no lease to wait out).
    let mut net = Network::with_config(3, |c| c.check_quorum = false);
    net.elect(1);
    net.propose(1, "w1");
    // The followers get w1 but the commit that w1 reached never leaves 1.
    net.drop_if = Some(Box::new(|m| {
        m.from == 1 && m.msg_type != MessageType::AppendResponse && m.commit > 1
    }));
    net.deliver_all();
    net.drop_if = None;
    let committed = net.status(1).commit;
    assert!(net.status(2).commit < committed);
    // 2 is elected; its no-op is held back, so it has not committed in its
    // term yet.
    net.isolate(1);
    net.hold_if = Some(Box::new(|m| m.msg_type == MessageType::Append));
    net.raft(2).campaign();
    net.deliver_all();
    assert_eq!(net.status(2).role, Role::Leader);
    net.raft(2).read_index(5, false).unwrap();
    // Its round is answered by 3 while the no-op is still held back.
    beat(&mut net, 2);
    net.deliver_all();
    assert!(net.raft(2).status().commit < net.raft(2).status().last_index);
    assert!(
        read_ids(&net, 2).is_empty(),
        "confirmed before the term's first commit"
    );
    net.release_held();
    net.deliver_all();
    let index = net.replica(2).reads.first().map(|r| r.index);
    assert!(
        index >= Some(committed),
        "read at {index:?}, below the commit index {committed} of the earlier leader"
    );
}

// Mutation: a group of one waiting for answers that never come.
#[test]
fn a_single_replica_group_confirms_a_read_at_once() {
    let mut net = Network::new(1);
    net.elect(1);
    net.propose(1, "w");
    net.deliver_all();
    net.raft(1).read_index(3, false).unwrap();
    net.deliver_all();
    assert_eq!(
        net.replica(1).reads,
        vec![ReadState {
            id: 3,
            index: net.status(1).commit
        }]
    );
}

// Mutation: a heartbeat round per read (or a round that confirms only the
// oldest read) costs more messages or leaves reads waiting.
#[test]
fn one_heartbeat_round_confirms_every_read_taken_before_it() {
    let mut net = Network::new(3);
    net.elect(1);
    for id in 0..100 {
        net.raft(1).read_index(id, false).unwrap();
    }
    net.deliver_all();
    let mark = net.sent.len();
    beat(&mut net, 1);
    net.deliver_all();
    assert_eq!(read_ids(&net, 1), (0..100).collect::<Vec<_>>());
    assert_eq!(net.sent_since(mark).len(), 4, "two heartbeats, two answers");
    // With no read waiting, heartbeats carry no round.
    let mark = net.sent.len();
    beat(&mut net, 1);
    assert!(net.sent_since(mark).iter().all(|m| m.index == 0));
}

// Mutation: `now` ignored (the read waits for the next tick's heartbeat).
#[test]
fn a_read_taken_now_sends_its_own_round() {
    let mut net = Network::new(3);
    net.elect(1);
    net.raft(1).read_index(1, true).unwrap();
    net.deliver_all();
    assert_eq!(read_ids(&net, 1), vec![1]);
}

// Mutation: a follower accepting reads (it cannot know the commit index).
#[test]
fn a_follower_refuses_reads_and_names_the_leader() {
    let mut net = Network::new(3);
    net.elect(1);
    assert_eq!(
        net.raft(2).read_index(1, false),
        Err(Error::NotLeader { leader: 1 })
    );
}

// ---------------------------------------------------------------------------
// Leadership transfer
// ---------------------------------------------------------------------------

// Mutation: a transfer campaign whose votes do not carry `transfer` (or
// voters that ignore it) is refused by voters in their lease, and the
// transfer never completes.
#[test]
fn leadership_moves_to_a_caught_up_voter_in_one_election_despite_leases() {
    let mut net = Network::new(3);
    net.elect(1);
    net.propose(1, "w");
    net.deliver_all();
    let term = net.status(1).term;
    net.raft(1).transfer_leader(2).unwrap();
    net.deliver_all();
    assert_eq!(net.status(2).role, Role::Leader);
    assert_eq!(
        net.status(2).term,
        term + 1,
        "one election, no pre-vote round"
    );
    assert_eq!(net.status(1).role, Role::Follower);
    assert_eq!(net.status(1).leader, 2);
    assert_eq!(net.applied_data(2), vec!["w".to_string()]);
}

// Mutation: sending TimeoutNow before the target matches the leader's log
// lets it lose the election (its log is behind the old leader's).
#[test]
fn a_lagging_target_is_caught_up_before_it_is_told_to_campaign() {
    let mut net = Network::new(3);
    net.elect(1);
    // Node 3 misses three writes; node 2 has them.
    net.drop_if = Some(Box::new(|m| m.to == 3 && m.msg_type == MessageType::Append));
    for i in 0..3 {
        net.propose(1, format!("w{i}"));
        net.deliver_all();
    }
    net.drop_if = None;
    assert!(net.raft(1).follower_matched(3) < Some(net.status(1).last_index));
    let mark = net.sent.len();
    net.raft(1).transfer_leader(3).unwrap();
    net.deliver_all();
    let timeout_now: Vec<&Message> = net
        .sent_since(mark)
        .iter()
        .filter(|m| m.msg_type == MessageType::TimeoutNow)
        .collect();
    assert_eq!(timeout_now.len(), 1);
    assert_eq!(net.status(3).role, Role::Leader);
    assert_eq!(net.applied_data(3).len(), 3);
}

// Mutation: proposals taken during a transfer would be appended by a
// leader about to step down (and likely lost or reported unknown).
#[test]
fn proposals_during_a_transfer_are_refused_naming_the_target() {
    let mut net = Network::new(3);
    net.elect(1);
    net.isolate(2);
    net.raft(1).transfer_leader(2).unwrap();
    assert_eq!(
        net.raft(1).propose(data("x")),
        Err(Error::NotLeader { leader: 2 })
    );
    assert_eq!(net.raft(1).transferring_to(), Some(2));
    // The target never answers: abandoned after an election timeout, and
    // the leader takes proposals again.
    for _ in 0..net.election_ticks() {
        net.tick(1);
    }
    assert_eq!(net.raft(1).transferring_to(), None);
    assert_eq!(net.status(1).role, Role::Leader);
    assert!(net.raft(1).propose(data("y")).is_ok());
}

// Mutation: accepting any target (a non-voter, or one the leader is not
// replicating to) starts transfers that cannot complete.
#[test]
fn transfers_to_non_voters_or_unreachable_voters_are_refused() {
    // Without CheckQuorum, node 2 votes for the restarted node 1 at once.
    let mut net = Network::with_config(3, |c| c.check_quorum = false);
    net.elect(1);
    assert_eq!(
        net.raft(1).transfer_leader(9),
        Err(Error::TransferNotVoter(9))
    );
    assert_eq!(
        net.raft(2).transfer_leader(3),
        Err(Error::NotLeader { leader: 1 })
    );
    // A leader that just restarted probing node 3 does not know it is
    // reachable.
    net.isolate(3);
    net.crash_losing_unpersisted(1);
    net.elect(1);
    assert_eq!(
        net.raft(1).transfer_leader(3),
        Err(Error::TransferNotCaughtUp(3))
    );
    assert_eq!(
        net.raft(1).transfer_leader(1),
        Ok(()),
        "to itself: nothing to do"
    );
}

// ---------------------------------------------------------------------------
// Membership changes (membership.rs)
// ---------------------------------------------------------------------------

impl Network {
    /// Start replica `id` as a joiner: an empty log and no membership; it
    /// waits for a leader to contact it. Ticked and delivered to from now
    /// on (it is added to the ids the network drives).
    fn join(&mut self, id: ReplicaId) {
        let cfg = self.replicas.values().next().unwrap().cfg.clone();
        let cfg = Config {
            id,
            seed: id,
            ..cfg
        };
        let store = MemStore::new();
        let raft = Raft::new(cfg.clone(), &[], store.clone()).expect("a joiner");
        self.replicas.insert(id, Replica::new(cfg, raft, store));
        self.voters.push(id);
        self.joined.insert(id);
    }

    fn change(&mut self, leader: ReplicaId, cc: ConfChange) -> Proposed {
        let p = self
            .raft(leader)
            .propose_conf_change(cc)
            .expect("change accepted");
        self.deliver_all();
        p
    }

    fn members(&self, id: ReplicaId) -> Membership {
        self.replicas[&id].raft.membership().clone()
    }
}

fn add(id: ReplicaId, role: MemberRole) -> ConfChange {
    ConfChange::Add { id, role }
}

// Mutation: `tick_leader` answering false after a tick's promotion: with
// external heartbeats the multi layer then never learned that the tick
// appended the promotion's entry, which waited for an unrelated input
// (found by the simulation's check of the key metrics).
#[test]
fn a_tick_that_promotes_a_caught_up_replica_says_it_acted() {
    let mut net = Network::with_config(3, |c| c.external_heartbeat = true);
    net.elect(1);
    net.join(4);
    // 4 catches up while the change adding it cannot commit: its promotion
    // must wait for that commit, which 4's own answers do not bring.
    net.isolate(2);
    net.isolate(3);
    net.change(1, add(4, MemberRole::Promotable));
    net.raft(1).broadcast_heartbeat();
    net.deliver_all();
    assert_eq!(net.status(4).last_index, net.status(1).last_index);
    net.heal();
    net.isolate(4);
    net.raft(1).broadcast_heartbeat();
    net.deliver_all();
    let s = net.status(1);
    assert_eq!(s.commit, s.last_index, "the change committed");
    assert_eq!(net.members(1).promotable, vec![4], "not promoted yet");
    // The leader's heartbeat tick promotes 4: a tick that appended an
    // entry must say it acted.
    let mut promoted_by_a_tick = false;
    for _ in 0..=net.replica(1).cfg.heartbeat_ticks {
        let before = net.status(1).last_index;
        let acted = net.raft(1).tick();
        if net.status(1).last_index > before {
            assert!(
                acted,
                "the tick appended the promotion and said it only moved timers"
            );
            promoted_by_a_tick = true;
        }
    }
    assert!(promoted_by_a_tick);
    assert_eq!(net.members(1).voters, vec![1, 2, 3, 4]);
}

// Mutation: counting non-voters in `committed_index`/`vote_result`, or
// skipping the promotion in `maybe_promote`.
#[test]
fn a_promotable_replica_catches_up_becomes_a_voter_and_then_counts() {
    let mut net = Network::new(3);
    net.elect(1);
    for i in 0..5 {
        net.propose(1, format!("before {i}"));
    }
    net.deliver_all();
    net.join(4);
    net.change(1, add(4, MemberRole::Promotable));
    net.run(3);
    let m = net.members(1);
    assert_eq!(m.voters, vec![1, 2, 3, 4], "promoted once caught up: {m:?}");
    assert!(m.learners.is_empty());
    for id in 1..=4 {
        assert_eq!(net.members(id), m, "replica {id} sees the same membership");
    }
    assert_eq!(net.status(4).last_index, net.status(1).last_index);
    // Four voters: a quorum is three, and 4 is needed with 3 cut off.
    net.isolate(3);
    net.isolate(4);
    let p = net.propose(1, "needs 4");
    net.deliver_all();
    assert!(
        net.status(1).commit < p.index,
        "1 and 2 are not a quorum of 4"
    );
    net.heal();
    net.isolate(3);
    net.run(2);
    assert!(net.status(1).commit >= p.index, "1, 2 and 4 are");
}

#[test]
fn a_non_voter_never_counts_toward_commit_or_elections() {
    let mut net = Network::new(3);
    net.elect(1);
    net.join(4);
    net.change(1, add(4, MemberRole::NonVoter));
    net.run(3);
    assert_eq!(net.members(4).learners, vec![4], "stays a non-voter");
    // 1 and the non-voter 4 are not a quorum of {1, 2, 3}.
    net.isolate(2);
    net.isolate(3);
    let p = net.propose(1, "x");
    net.run(2);
    assert!(net.status(1).commit < p.index);
    assert_eq!(net.status(4).last_index, p.index, "4 has it, uncounted");
    // Cut off from its leader, a non-voter never campaigns.
    net.heal();
    net.isolate(1);
    net.run(60);
    assert_eq!(net.replica(4).raft.elections_started(), 0);
    assert_ne!(net.status(4).role, Role::Leader);
    let leader = net.leader().expect("2 or 3 took over");
    assert!(leader == 2 || leader == 3);
}

// Mutation: `poke_silent_leader` never sending leaves a non-voter woken
// while its leader sleeps (quiesced), whose wake-up answer was lost, awake
// for good (the simulation's seed 7683); sending at every tick past the
// timeout, or before it, fails the count or the spacing.
#[test]
fn a_non_voter_that_hears_nothing_from_its_leader_pokes_it_once_per_election_timeout() {
    let mut net = Network::new(3);
    net.elect(1);
    net.join(4);
    net.change(1, add(4, MemberRole::NonVoter));
    net.run(3);
    let r = net.raft(4);
    assert_eq!((r.role(), r.leader()), (Role::Follower, 1));
    let timeout = r.cfg.election_ticks;
    // The leader goes silent (asleep, or gone): only 4 is ticked.
    let mut pokes = Vec::new();
    for t in 1..=10 * timeout {
        r.tick();
        while r.has_ready() {
            let rd = r.ready();
            for m in &rd.messages {
                assert_eq!(
                    (m.msg_type, m.to, m.commit, m.index),
                    (MessageType::HeartbeatResponse, 1, 0, 0),
                    "an empty answer to its leader, and nothing else"
                );
                pokes.push(t);
            }
            r.advance(&rd);
        }
    }
    assert!(pokes[0] >= timeout, "not before a timeout: {pokes:?}");
    assert!(
        pokes.windows(2).all(|w| w[1] - w[0] == timeout),
        "{pokes:?}"
    );
    assert!(pokes.len() >= 8, "{pokes:?}");
    // While its leader is heard, it sends nothing of the kind.
    net.run(20);
    let r = net.raft(4);
    for _ in 0..timeout - 1 {
        r.tick();
        assert!(!r.has_ready());
    }
}

// Mutation: dropping either condition of `propose_conf_change`'s busy
// check (the known bug of one-server changes needs the first).
#[test]
fn one_change_at_a_time_and_none_before_the_leaders_first_commit() {
    let mut net = Network::new(3);
    // Wins, but its no-op is not committed while no follower's answer
    // arrives.
    net.dropped_kinds.insert(MessageType::AppendResponse);
    net.campaign(1);
    assert_eq!(net.status(1).role, Role::Leader);
    assert_eq!(
        net.raft(1)
            .propose_conf_change(add(4, MemberRole::NonVoter)),
        Err(Error::ConfChangeBusy),
        "nothing of its term committed yet"
    );
    net.heal();
    net.run(2);
    net.join(4);
    net.join(5);
    net.hold_if = Some(Box::new(|m: &Message| {
        m.msg_type == MessageType::AppendResponse
    }));
    net.raft(1)
        .propose_conf_change(add(4, MemberRole::NonVoter))
        .expect("first change");
    net.deliver_all();
    assert_eq!(
        net.raft(1)
            .propose_conf_change(add(5, MemberRole::NonVoter)),
        Err(Error::ConfChangeBusy),
        "the first is not committed"
    );
    net.release_held();
    net.deliver_all();
    net.raft(1)
        .propose_conf_change(add(5, MemberRole::NonVoter))
        .expect("after the first committed");
    assert!(matches!(
        net.raft(1)
            .propose_conf_change(ConfChange::Remove { id: 9 }),
        Err(Error::ConfChangeBusy | Error::ConfChangeInvalid(_))
    ));
    assert!(matches!(
        net.raft(2)
            .propose_conf_change(ConfChange::Remove { id: 3 }),
        Err(Error::NotLeader { leader: 1 })
    ));
}

// Mutation: skipping `step_down_removed` (the removed leader goes on
// leading a group it is no member of) or its TimeoutNow.
#[test]
fn a_removed_leader_hands_over_once_its_removal_commits() {
    let mut net = Network::new(3);
    net.elect(1);
    let term = net.status(1).term;
    let elections = net.replica(1).raft.elections_started();
    let p = net.change(1, ConfChange::Remove { id: 1 });
    net.deliver_all();
    assert_eq!(net.members(2).voters, vec![2, 3]);
    assert_ne!(net.status(1).role, Role::Leader, "stepped down");
    let leader = net.leader().expect("handed over at once, no timeout");
    assert!(leader == 2 || leader == 3);
    assert_eq!(net.status(leader).term, term + 1);
    assert!(net.status(leader).commit >= p.index);
    // The removed replica never campaigns again, and is not needed.
    net.isolate(1);
    let q = net.propose(leader, "after");
    net.run(60);
    assert!(net.status(leader).commit >= q.index);
    assert_eq!(net.replica(1).raft.elections_started(), elections);
}

// Mutation: a replica holding its own uncommitted removal never campaigns
// (`may_campaign` without its removed-voter case). Seed 672: of four
// voters one was gone for good, and the only replica with the whole log
// held its own removal: the other two lacked entries it had, so it
// refused them its vote, and it never asked for theirs.
#[test]
fn a_replica_holding_its_own_uncommitted_removal_still_campaigns() {
    let mut net = Network::new(4);
    net.elect(1);
    let before = net.propose(1, "before");
    net.deliver_all();
    assert!(net.status(2).commit >= before.index);
    net.wipe(4); // back empty: it never votes again
                 // 1 removes itself and takes one more proposal; nobody hears either.
    net.isolate(1);
    let removal = net.change(1, ConfChange::Remove { id: 1 });
    net.propose(1, "after");
    net.deliver_all();
    net.restart(1); // no longer leads; keeps its log
    net.heal();
    net.run_until(200, "a leader", |n| n.leader().is_some());
    net.run_until(200, "the removal committed", |n| {
        n.status(2).commit >= removal.index
    });
    assert_eq!(net.members(2).voters, vec![2, 3, 4]);
    net.run_until(200, "2 or 3 leads", |n| {
        n.leader().is_some_and(|l| l == 2 || l == 3)
    });
}

// Mutation: not calling `refresh_conf` when an append replaces a suffix
// holding a configuration.
#[test]
fn a_configuration_overwritten_in_the_log_is_undone() {
    let mut net = Network::new(3);
    net.elect(1);
    net.join(4);
    // 1 adds 4 but nobody hears it.
    net.isolate(1);
    net.raft(1)
        .propose_conf_change(add(4, MemberRole::Voter))
        .unwrap();
    net.deliver_all();
    assert_eq!(net.members(1).voters, vec![1, 2, 3, 4], "in effect at once");
    // 2 leads a later term and overwrites 1's uncommitted tail.
    net.heal();
    net.isolate(1);
    net.isolate(4);
    net.run_until(100, "2 or 3 leads", |n| {
        n.leader().is_some_and(|l| l != 1) && n.status(1).term < n.status(2).term
    });
    let leader = net.leader().unwrap();
    net.propose(leader, "overwrites");
    net.deliver_all();
    net.heal();
    net.run(4);
    assert_eq!(net.status(1).role, Role::Follower);
    assert_eq!(
        net.members(1).voters,
        vec![1, 2, 3],
        "the change was undone"
    );
    assert_eq!(net.status(1).last_index, net.status(leader).last_index);
}

// Mutation: starting a restarted replica from its creation membership
// (ignoring the configurations in its log or snapshot).
#[test]
fn a_restarted_replica_and_a_snapshot_keep_the_membership() {
    let mut net = Network::new(3);
    net.elect(1);
    net.join(4);
    net.change(1, add(4, MemberRole::NonVoter));
    net.change(1, ConfChange::Remove { id: 3 });
    net.run(2);
    let want = Membership {
        voters: vec![1, 2],
        learners: vec![4],
        promotable: vec![],
    };
    for id in [1, 2, 4] {
        net.restart(id);
        assert_eq!(net.members(id), want, "replica {id} after a restart");
    }
    net.run(30);
    let leader = net.leader().expect("a leader");
    let applied = net.status(leader).applied;
    let meta = net.raft(leader).snapshot_meta_at(applied).unwrap();
    assert_eq!(meta.membership(), want);
    // An index before the changes has the creation membership.
    let mut fresh = Network::new(3);
    fresh.elect(1);
    fresh.join(4);
    fresh.propose(1, "a");
    fresh.deliver_all();
    let before = fresh.status(1).applied;
    fresh.change(1, add(4, MemberRole::NonVoter));
    fresh.run(2);
    let old = fresh.raft(1).snapshot_meta_at(before).unwrap();
    assert_eq!(old.membership(), Membership::with_voters(&[1, 2, 3]));
}

// Mutation: dropping removed members from the leader's sends at once
// (no `leaving`): a removed follower never gets the entry that removes it.
#[test]
fn a_removed_follower_learns_of_its_removal() {
    let mut net = Network::new(3);
    net.elect(1);
    let p = net.change(1, ConfChange::Remove { id: 3 });
    net.run(2 * net.election_ticks());
    assert_eq!(net.members(3).voters, vec![1, 2], "3 holds its removal");
    assert!(net.status(3).commit >= p.index, "and knows it committed");
    assert!(net.replica(1).raft.leaving.is_empty(), "then it is let go");
    // It never campaigns; the group goes on without it.
    let elections = net.replica(3).raft.elections_started();
    net.run(60);
    assert_eq!(net.replica(3).raft.elections_started(), elections);
}

// Mutation: restarting a never-campaigning replica's election timer at
// each timeout (as a voter's is): its lease on a dead leader is renewed
// forever and a candidate that needs its vote never gets it.
#[test]
fn a_replica_that_never_campaigns_lets_its_lease_run_out() {
    let mut net = Network::new(3);
    net.elect(1);
    let mut learner = Raft::new(Config::new(4), &[], MemStore::new()).unwrap();
    let hb = Message::new(MessageType::Heartbeat, 1, 4, net.status(1).term);
    learner.step(hb).unwrap();
    drain(&mut learner);
    let e = net.election_ticks();
    for t in 0..5 * e {
        learner.tick();
        if t < e {
            continue;
        }
        // Past one election timeout, at every tick: a pre-vote is granted.
        let mut pv = Message::new(MessageType::PreVote, 2, 4, net.status(1).term + 1);
        pv.index = 10;
        pv.log_term = net.status(1).term;
        learner.step(pv).unwrap();
        let granted = drain(&mut learner)
            .iter()
            .any(|m| m.msg_type == MessageType::PreVoteResponse && !m.reject);
        assert!(
            granted,
            "tick {t}: its lease on leader 1 ended and stayed ended"
        );
    }
}

// Found by the simulation (seed 7168, mode quiesced): replica 5 of a group
// {1, 3, 5} had entries up to (term 4, index 27), among them committed
// ones replica 3 lacked, when node 5 was removed from the group (its
// replica deleted) and added back, joining empty under the same id.
// Replica 3, whose log ended at (term 2, index 2), campaigned on the
// configuration it knew, {1, 3, 5}, and the empty newcomer granted its vote
// (nothing in its log was newer): 3 led without the committed entries. A
// replica that takes a removed one's place keeps its term and vote, and
// until its own configuration counts it votes only for candidates as up to
// date as the removed one's log.
// Mutation: `may_vote_for` ignoring the floor fails here.
#[test]
fn a_replica_added_back_votes_only_for_candidates_as_up_to_date_as_the_removed_one() {
    let vote = |kind, from, term, last: (u64, u64)| {
        let mut m = Message::new(kind, from, 5, term);
        (m.log_term, m.index) = last;
        m
    };
    let granted = |r: &mut Raft<MemStore>| {
        let msgs = drain(r);
        let answers: Vec<bool> = msgs
            .iter()
            .filter(|m| {
                matches!(
                    m.msg_type,
                    MessageType::VoteResponse | MessageType::PreVoteResponse
                )
            })
            .map(|m| !m.reject)
            .collect();
        assert_eq!(answers.len(), 1, "one answer: {msgs:?}");
        answers[0]
    };
    let joiner = || Raft::new(Config::new(5), &[], MemStore::new()).expect("a joiner");
    // A joiner that takes nobody's place votes as before: the candidate's
    // configuration cannot count it as anyone else.
    let mut fresh = joiner();
    fresh.step(vote(MessageType::Vote, 3, 7, (2, 2))).unwrap();
    assert!(granted(&mut fresh));

    let mut back = joiner();
    back.succeed_removed(Predecessor {
        term: 4,
        vote: 5,
        last: (4, 27),
    });
    // The removed replica's term and vote, written with the next ready.
    let rd = back.ready();
    assert_eq!(rd.hard_state.map(|hs| (hs.term, hs.vote)), Some((4, 5)));
    back.advance(&rd);
    // Its vote of term 4 stands.
    back.step(vote(MessageType::Vote, 3, 4, (4, 30))).unwrap();
    assert!(!granted(&mut back), "a second vote in term 4");
    for kind in [MessageType::PreVote, MessageType::Vote] {
        back.step(vote(kind, 3, 7, (2, 2))).unwrap();
        assert!(!granted(&mut back), "{kind:?} for a stale candidate");
    }
    back.step(vote(MessageType::Vote, 1, 8, (5, 31))).unwrap();
    assert!(granted(&mut back), "an up-to-date candidate refused");
    assert_eq!(
        back.to_succeed(),
        Predecessor {
            term: 8,
            vote: 1,
            last: (0, 0)
        }
    );
}
