//! Embedded mode through the Rust API: real runtimes in one process, each
//! with its own node thread, TCP transport on loopback and (where a test
//! says so) its own write-ahead log.
//!
//! Nothing here sleeps to wait for an outcome: every wait polls a condition
//! with a bounded deadline ([`wait_until`]) or waits on the recorder's
//! condition variable with one. The only fixed sleeps are the sampling
//! intervals of the load test, which measure what happens *during* a window.
//!
//! Node ids are two-digit and distinct per test (tests run in parallel in
//! this process): Linux keeps 15 bytes of a thread name, so
//! `muxraft-node-<id>` stays whole and the thread test can tell its threads
//! from the other tests'. Each test also has its own cluster id.
//!
//! The load test takes [`EXCLUSIVE`] for writing, every other test for
//! reading: it measures timing (no election while 1 MiB entries stream), so
//! it runs alone on this 2-core machine rather than next to five other
//! clusters.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use muxraft::multi::{self, Event, FrameKind, NodeConfig, ProposalError, Stats};
use muxraft::raft::Role;
use muxraft::runtime::{Error, Host, Runtime, RuntimeConfig};
use muxraft::transport::ClusterSecret;
use parking_lot::{Condvar, Mutex, RwLock};

mod common;
use common::TempDir;

const TICK: Duration = Duration::from_millis(10);
const ELECTION_TICKS: u32 = 10;
const HEARTBEAT_TICKS: u32 = 2;
/// Bound on every wait for an outcome (elections, commits, catch-up).
const DEADLINE: Duration = Duration::from_secs(30);

static EXCLUSIVE: RwLock<()> = parking_lot::const_rwlock(());

// ---------------------------------------------------------------- helpers

/// Polls `cond` until it holds; panics naming `what` after `deadline`.
fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A `ProposalDone`: the group and the result.
type Outcome = (u64, Result<u64, ProposalError>);

/// What one runtime told its host.
#[derive(Default)]
struct Recorded {
    /// Per group, the commands applied, in delivery order: (index, data).
    /// Data is kept only when the recorder was asked to.
    applied: BTreeMap<u64, Vec<(u64, Bytes)>>,
    /// Every `ProposalDone`, by proposal id (more than one is a bug).
    done: BTreeMap<u64, Vec<Outcome>>,
    /// Bytes of applied commands, per group.
    applied_bytes: BTreeMap<u64, u64>,
    /// `Host::send` calls: embedded mode must never use it.
    sends: u64,
}

/// A handler that records events, optionally calling back into its runtime
/// from inside a callback (see [`Recorder::on_event`]).
struct Recorder {
    keep_data: bool,
    rec: Mutex<Recorded>,
    cv: Condvar,
    /// Set after the runtime exists, for callbacks that call into it.
    runtime: OnceLock<Weak<Runtime>>,
    /// Called on the node thread after an event is recorded.
    hook: Option<Hook>,
}

type Hook = Box<dyn Fn(&Runtime, &Event) + Send + Sync>;

impl Recorder {
    fn new(keep_data: bool) -> Arc<Recorder> {
        Arc::new(Recorder {
            keep_data,
            rec: Mutex::new(Recorded::default()),
            cv: Condvar::new(),
            runtime: OnceLock::new(),
            hook: None,
        })
    }

    fn with_hook(hook: Hook) -> Arc<Recorder> {
        Arc::new(Recorder {
            keep_data: true,
            rec: Mutex::new(Recorded::default()),
            cv: Condvar::new(),
            runtime: OnceLock::new(),
            hook: Some(hook),
        })
    }

    fn applied(&self, group: u64) -> Vec<(u64, Bytes)> {
        self.rec
            .lock()
            .applied
            .get(&group)
            .cloned()
            .unwrap_or_default()
    }

    fn applied_count(&self, group: u64) -> usize {
        self.rec.lock().applied.get(&group).map_or(0, Vec::len)
    }

    /// The outcomes recorded for `id` (normally exactly one).
    fn outcomes(&self, id: u64) -> Vec<Outcome> {
        self.rec.lock().done.get(&id).cloned().unwrap_or_default()
    }

    /// Waits until every id in `ids` has an outcome; panics after the
    /// deadline naming how many are missing.
    fn wait_done(&self, ids: &[u64], deadline: Duration) {
        let end = Instant::now() + deadline;
        let mut rec = self.rec.lock();
        loop {
            let missing = ids.iter().filter(|id| !rec.done.contains_key(id)).count();
            if missing == 0 {
                return;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {missing} of {} proposal outcomes",
                ids.len()
            );
            self.cv.wait_until(&mut rec, end);
        }
    }
}

impl Host for Recorder {
    fn send(&self, _to: u64, _frame: &[u8], _liveness: bool) {
        self.rec.lock().sends += 1;
    }

    fn event(&self, ev: &Event) {
        {
            let mut r = self.rec.lock();
            match ev {
                Event::Applied {
                    group_id,
                    index,
                    data,
                    ..
                } => {
                    let data = if self.keep_data {
                        data.clone()
                    } else {
                        Bytes::new()
                    };
                    r.applied.entry(*group_id).or_default().push((*index, data));
                    *r.applied_bytes.entry(*group_id).or_default() += data_len(ev);
                }
                Event::ProposalDone {
                    group_id,
                    proposal_id,
                    result,
                } => r
                    .done
                    .entry(*proposal_id)
                    .or_default()
                    .push((*group_id, *result)),
                _ => {}
            }
        }
        self.cv.notify_all();
        if let Some(hook) = &self.hook {
            if let Some(rt) = self.runtime.get().and_then(Weak::upgrade) {
                hook(&rt, ev);
            }
        }
    }
}

fn data_len(ev: &Event) -> u64 {
    match ev {
        Event::Applied { data, .. } => data.len() as u64,
        _ => 0,
    }
}

fn config(id: u64, cluster: u64, data_dir: Option<&Path>) -> RuntimeConfig {
    let mut node = NodeConfig::new(id);
    node.cluster_id = cluster;
    node.election_ticks = ELECTION_TICKS;
    node.heartbeat_ticks = HEARTBEAT_TICKS;
    RuntimeConfig {
        tick: TICK,
        data_dir: data_dir.map(Path::to_path_buf),
        ..RuntimeConfig::new(node)
    }
}

/// One started runtime and its recorder.
struct Member {
    id: u64,
    rt: Arc<Runtime>,
    rec: Arc<Recorder>,
}

impl Member {
    /// Creates the runtime (recovering `cfg.data_dir`, if any) and starts it
    /// on a free loopback port.
    fn start(cfg: RuntimeConfig, rec: Arc<Recorder>) -> Member {
        let id = cfg.node.node_id;
        let rt = Arc::new(Runtime::new(cfg, rec.clone()).expect("runtime created"));
        rec.runtime
            .set(Arc::downgrade(&rt))
            .unwrap_or_else(|_| panic!("recorder of node {id} used twice"));
        rt.start("127.0.0.1:0").expect("runtime started");
        Member { id, rt, rec }
    }

    fn addr(&self) -> String {
        self.rt
            .local_addr()
            .expect("a started runtime has an address")
            .to_string()
    }

    fn stats(&self) -> Stats {
        self.rt.stats().0
    }

    /// Stops the runtime and drops it; panics if someone else still holds it.
    fn stop_and_drop(self) -> Arc<Recorder> {
        self.rt.stop().expect("stop a started runtime");
        let id = self.id;
        let rt = Arc::try_unwrap(self.rt)
            .unwrap_or_else(|_| panic!("runtime {id} still referenced at drop"));
        drop(rt);
        self.rec
    }

    /// Drops a runtime already stopped; a second stop says Shutdown.
    fn stop_and_drop_after_stop(self) {
        assert!(matches!(self.rt.stop(), Err(Error::Shutdown)));
        let id = self.id;
        drop(
            Arc::try_unwrap(self.rt)
                .unwrap_or_else(|_| panic!("runtime {id} still referenced at drop")),
        );
    }
}

/// Tells every member where every other one listens (after start).
fn connect(members: &[&Member]) {
    for a in members {
        for b in members {
            if a.id != b.id {
                a.rt.add_peer(b.id, &b.addr()).expect("add_peer");
            }
        }
    }
}

/// The leader of every group, if all `members` agree on it, it is one of
/// them, and it knows it leads in the same term.
fn agreed_leaders(members: &[&Member], groups: &[u64]) -> Option<BTreeMap<u64, u64>> {
    let mut out = BTreeMap::new();
    for &g in groups {
        let mut leader = None;
        let mut term = None;
        for m in members {
            let s = m.rt.group_status(g).ok()?;
            if s.leader == 0 || leader.is_some_and(|l| l != s.leader) {
                return None;
            }
            if term.is_some_and(|t| t != s.term) {
                return None;
            }
            leader = Some(s.leader);
            term = Some(s.term);
        }
        let l = leader?;
        let lm = members.iter().find(|m| m.id == l)?;
        if lm.rt.group_status(g).ok()?.role != Role::Leader {
            return None;
        }
        out.insert(g, l);
    }
    Some(out)
}

fn wait_for_leaders(members: &[&Member], groups: &[u64]) -> BTreeMap<u64, u64> {
    let mut leaders = None;
    wait_until(
        &format!("all {} groups have an agreed leader", groups.len()),
        DEADLINE,
        || {
            leaders = agreed_leaders(members, groups);
            leaders.is_some()
        },
    );
    leaders.expect("leaders found")
}

fn member<'a>(members: &[&'a Member], id: u64) -> &'a Member {
    members
        .iter()
        .find(|m| m.id == id)
        .copied()
        .unwrap_or_else(|| panic!("no member {id}"))
}

fn payload(g: u64, i: u64) -> Bytes {
    Bytes::from(format!("group {g} entry {i}"))
}

/// Proposes entries `range` to every group at its leader, all groups
/// interleaved; waits for every outcome and asserts each is `Ok`. Returns
/// (group, payload number, committed index) per proposal.
fn propose_round(
    members: &[&Member],
    leaders: &BTreeMap<u64, u64>,
    range: std::ops::Range<u64>,
) -> Vec<(u64, u64, u64)> {
    let mut ids: BTreeMap<u64, Vec<(u64, u64, u64)>> = BTreeMap::new(); // leader -> (id, g, i)
    for i in range {
        for (&g, &l) in leaders {
            let id = member(members, l)
                .rt
                .propose(g, payload(g, i))
                .unwrap_or_else(|e| panic!("propose to group {g} at its leader {l}: {e}"));
            ids.entry(l).or_default().push((id, g, i));
        }
    }
    let mut out = Vec::new();
    for (l, props) in ids {
        let m = member(members, l);
        let just_ids: Vec<u64> = props.iter().map(|p| p.0).collect();
        m.rec.wait_done(&just_ids, DEADLINE);
        for (id, g, i) in props {
            let outcomes = m.rec.outcomes(id);
            assert_eq!(
                outcomes.len(),
                1,
                "proposal {id} on node {l}: one outcome expected, got {outcomes:?}"
            );
            let (og, result) = outcomes[0];
            assert_eq!(og, g, "proposal {id} reported for the wrong group");
            let index =
                result.unwrap_or_else(|e| panic!("proposal {id} (group {g}, entry {i}): {e}"));
            out.push((g, i, index));
        }
    }
    out
}

/// Waits until every member has applied `n` commands of every group.
fn wait_applied(members: &[&Member], groups: &[u64], n: usize) {
    wait_until(
        &format!("every member applied {n} commands of every group"),
        DEADLINE,
        || {
            members
                .iter()
                .all(|m| groups.iter().all(|&g| m.rec.applied_count(g) >= n))
        },
    );
}

/// Asserts that every member applied exactly the same commands of every
/// group, in the same order, at increasing indexes, and that they are
/// payloads `0..n` of that group in order.
fn assert_same_applied(members: &[&Member], groups: &[u64], n: u64) {
    for &g in groups {
        let first = members[0].rec.applied(g);
        let want: Vec<Bytes> = (0..n).map(|i| payload(g, i)).collect();
        let got: Vec<Bytes> = first.iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(got, want, "group {g} on node {}", members[0].id);
        assert!(
            first.windows(2).all(|w| w[0].0 < w[1].0),
            "group {g}: indexes not increasing on node {}: {:?}",
            members[0].id,
            first.iter().map(|e| e.0).collect::<Vec<_>>()
        );
        for m in &members[1..] {
            assert_eq!(
                m.rec.applied(g),
                first,
                "group {g}: node {} applied differently from node {}",
                m.id,
                members[0].id
            );
        }
    }
}

/// Each committed index matches where its payload was applied.
fn assert_indexes_match(members: &[&Member], committed: &[(u64, u64, u64)]) {
    for &(g, i, index) in committed {
        let applied = members[0].rec.applied(g);
        let at = applied.iter().find(|(_, d)| *d == payload(g, i));
        assert_eq!(
            at.map(|e| e.0),
            Some(index),
            "group {g} entry {i} committed at {index}"
        );
    }
}

/// Names of this process's threads that belong to node `id`: named
/// `muxraft-<something>-<id>` (read from /proc/self/task/*/comm).
fn muxraft_threads_of(id: u64) -> Vec<String> {
    let suffix = format!("-{id}");
    let mut names = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return names;
    };
    for t in tasks.flatten() {
        // A thread may exit between the listing and the read.
        if let Ok(comm) = std::fs::read_to_string(t.path().join("comm")) {
            let comm = comm.trim_end();
            if comm.starts_with("muxraft-") && comm.ends_with(&suffix) {
                names.push(comm.to_string());
            }
        }
    }
    names.sort();
    names
}

fn groups(range: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    range.collect()
}

/// Create every group in `gs`, with `ids` as members, on every member node.
fn create_on_all(members: &[&Member], gs: &[u64], ids: &[u64]) {
    for m in members {
        for &g in gs {
            m.rt.create_group(g, 1, ids).expect("create group");
        }
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn three_embedded_runtimes_elect_commit_and_apply_every_group_in_the_same_order() {
    let _shared = EXCLUSIVE.read();
    const CLUSTER: u64 = 1001;
    let ids = [11, 12, 13];
    let ms: Vec<Member> = ids
        .iter()
        .map(|&id| Member::start(config(id, CLUSTER, None), Recorder::new(true)))
        .collect();
    let members: Vec<&Member> = ms.iter().collect();
    connect(&members);
    let gs = groups(1..=50);
    create_on_all(&members, &gs, &ids);
    let leaders = wait_for_leaders(&members, &gs);

    let committed = propose_round(&members, &leaders, 0..20);
    assert_eq!(committed.len(), 50 * 20);
    wait_applied(&members, &gs, 20);
    assert_same_applied(&members, &gs, 20);
    assert_indexes_match(&members, &committed);

    for m in &members {
        let s = m.stats();
        assert_eq!(
            m.rec.rec.lock().sends,
            0,
            "embedded mode used Handler::send"
        );
        assert!(
            s.received_of(FrameKind::HeartbeatBatch).messages > 0,
            "node {} received no heartbeat batch",
            m.id
        );
        assert_eq!(s.frames_rejected, 0, "node {} rejected frames", m.id);
    }
    drop(members);
    for m in ms {
        m.stop_and_drop();
    }
}

#[test]
fn runtimes_sharing_a_cluster_secret_replicate_and_one_with_another_secret_is_kept_out() {
    let _shared = EXCLUSIVE.read();
    const CLUSTER: u64 = 1071;
    let ids = [71, 72, 73];
    let secret = |b: u8| Some(ClusterSecret::new(&[b; 32]).expect("a valid secret"));
    let ms: Vec<Member> = ids
        .iter()
        .map(|&id| {
            let mut cfg = config(id, CLUSTER, None);
            // 73 has another secret.
            cfg.cluster_secret = secret(if id == 73 { 2 } else { 1 });
            Member::start(cfg, Recorder::new(true))
        })
        .collect();
    let members: Vec<&Member> = ms.iter().collect();
    connect(&members);
    let gs = groups(1..=5);
    create_on_all(&members, &gs, &ids);
    // 71 and 72 are a majority: they elect and commit without 73.
    let good = [members[0], members[1]];
    let leaders = wait_for_leaders(&good, &gs);
    assert!(leaders.values().all(|&l| l != 73));
    let committed = propose_round(&good, &leaders, 0..5);
    assert_eq!(committed.len(), 5 * 5);
    wait_applied(&good, &gs, 5);
    assert_same_applied(&good, &gs, 5);

    let transport = |m: &Member| m.rt.stats().2;
    wait_until(
        "73 refused by both others, for the secret",
        DEADLINE,
        || {
            let t = transport(members[2]);
            t.auth_refused + t.auth_rejected_by_peer >= 2
        },
    );
    for m in &members {
        let t = transport(m);
        if m.id == 73 {
            assert_eq!(t.connections_established, 0, "node 73: {t:?}");
        } else {
            assert!(t.connections_established >= 1, "node {}: {t:?}", m.id);
        }
        assert_eq!(m.stats().frames_rejected, 0, "node {}", m.id);
    }
    assert_eq!(
        transport(members[0]).auth_refused + transport(members[0]).auth_rejected_by_peer,
        transport(members[0]).handshakes_refused
            + transport(members[0]).handshakes_rejected_by_peer,
        "71 refused nothing but 73, and for the secret"
    );
    assert!(gs.iter().all(|&g| members[2].rec.applied_count(g) == 0));
    drop(members);
    for m in ms {
        m.stop_and_drop();
    }
}

#[test]
fn a_runtime_restarted_from_its_wal_recovers_its_groups_catches_up_and_reapplies_everything_in_order(
) {
    let _shared = EXCLUSIVE.read();
    const CLUSTER: u64 = 1002;
    let ids = [21, 22, 23];
    let dirs: Vec<TempDir> = ids
        .iter()
        .map(|id| TempDir::new(&format!("restart-{id}")))
        .collect();
    let mut ms: Vec<Member> = ids
        .iter()
        .zip(&dirs)
        .map(|(&id, d)| Member::start(config(id, CLUSTER, Some(d.path())), Recorder::new(true)))
        .collect();
    let gs = groups(1..=50);
    {
        let members: Vec<&Member> = ms.iter().collect();
        connect(&members);
        create_on_all(&members, &gs, &ids);
        let leaders = wait_for_leaders(&members, &gs);
        let committed = propose_round(&members, &leaders, 0..20);
        wait_applied(&members, &gs, 20);
        assert_same_applied(&members, &gs, 20);
        assert_indexes_match(&members, &committed);
    }

    // Stop the middle node (it dials 23 and is dialed by 21) and drop it.
    let victim = ms.remove(1);
    let victim_id = victim.id;
    let old = victim.stop_and_drop();
    let old_applied: BTreeMap<u64, Vec<(u64, Bytes)>> = old.rec.lock().applied.clone();

    // The other two elect leaders for the groups it led and go on.
    {
        let members: Vec<&Member> = ms.iter().collect();
        let leaders = wait_for_leaders(&members, &gs);
        propose_round(&members, &leaders, 20..30);
        wait_applied(&members, &gs, 30);
    }

    // Restart it from its data directory.
    let cfg = config(victim_id, CLUSTER, Some(dirs[1].path()));
    let rec = Recorder::new(true);
    let rt = Arc::new(Runtime::new(cfg, rec.clone()).expect("runtime recovered"));
    assert_eq!(rt.stats().1, gs.len(), "groups recovered");
    for &g in &gs {
        let s = rt
            .group_status(g)
            .unwrap_or_else(|e| panic!("group {g} not recovered: {e}"));
        assert!(
            s.last_index >= 21,
            "group {g} recovered with last index {}",
            s.last_index
        );
        assert!(
            matches!(
                rt.create_group(g, 1, &ids),
                Err(Error::Node(multi::Error::AlreadyExists(x))) if x == g
            ),
            "create_group of recovered group {g} must say AlreadyExists"
        );
    }
    rec.runtime.set(Arc::downgrade(&rt)).ok();
    rt.start("127.0.0.1:0").expect("restarted runtime starts");
    let restarted = Member {
        id: victim_id,
        rt,
        rec,
    };
    // New port: both sides learn it (21 redials 22; 22 dials 23).
    for m in &ms {
        restarted.rt.add_peer(m.id, &m.addr()).expect("add_peer");
        m.rt.add_peer(restarted.id, &restarted.addr())
            .expect("add_peer with a new address");
    }
    ms.insert(1, restarted);
    let members: Vec<&Member> = ms.iter().collect();
    let leaders = wait_for_leaders(&members, &gs);
    let committed = propose_round(&members, &leaders, 30..40);
    wait_applied(&members, &gs, 40);
    assert_same_applied(&members, &gs, 40);
    assert_indexes_match(&members, &committed);
    for &g in &gs {
        let new = members[1].rec.applied(g);
        let before = old_applied.get(&g).cloned().unwrap_or_default();
        assert!(
            new.starts_with(&before),
            "group {g}: what node {victim_id} applied before the restart is not a prefix \
             of what it applied after it"
        );
        assert_eq!(
            new.first().map(|e| &e.1),
            Some(&payload(g, 0)),
            "group {g}: the restarted node must re-apply from the first command"
        );
    }
    drop(members);
    for m in ms {
        m.stop_and_drop();
    }
}

#[test]
fn stop_and_drop_leave_no_muxraft_thread_behind() {
    let _shared = EXCLUSIVE.read();
    const CLUSTER: u64 = 1003;
    let ids = [31, 32];
    for id in ids {
        assert_eq!(muxraft_threads_of(id), Vec::<String>::new(), "before start");
    }
    let dirs: Vec<TempDir> = ids
        .iter()
        .map(|id| TempDir::new(&format!("threads-{id}")))
        .collect();
    let ms: Vec<Member> = ids
        .iter()
        .zip(&dirs)
        .map(|(&id, d)| Member::start(config(id, CLUSTER, Some(d.path())), Recorder::new(true)))
        .collect();
    let members: Vec<&Member> = ms.iter().collect();
    connect(&members);
    for m in &members {
        m.rt.create_group(1, 1, &ids).expect("create group");
    }
    // Connected, elected, WAL written, something committed: every thread
    // the runtime has is up.
    let leaders = wait_for_leaders(&members, &[1]);
    propose_round(&members, &leaders, 0..3);
    wait_applied(&members, &[1], 3);
    for id in ids {
        let names = muxraft_threads_of(id);
        for want in [format!("muxraft-node-{id}"), format!("muxraft-tx-{id}")] {
            assert!(
                names.contains(&want),
                "thread {want} not found among {names:?}: the check would prove nothing"
            );
        }
    }
    drop(members);
    let mut ms = ms.into_iter();
    // Node 31: stop, then drop.
    let a = ms.next().expect("node 31");
    a.rt.stop().expect("stop");
    // `stop` joins the threads; the kernel may list a joined thread for a
    // moment longer, hence the (short) bounded poll.
    wait_until(
        "node 31 has no thread left after stop",
        Duration::from_secs(5),
        || muxraft_threads_of(31).is_empty(),
    );
    a.stop_and_drop_after_stop();
    assert_eq!(muxraft_threads_of(31), Vec::<String>::new(), "after drop");
    // Node 32: dropped without stop (Drop stops it).
    let b = ms.next().expect("node 32");
    let rt = Arc::try_unwrap(b.rt).unwrap_or_else(|_| panic!("runtime 32 still referenced"));
    drop(rt);
    wait_until(
        "node 32 has no thread left after drop",
        Duration::from_secs(5),
        || muxraft_threads_of(32).is_empty(),
    );
}

#[test]
fn proposals_waiting_at_stop_are_reported_as_shutdown_exactly_once() {
    let _shared = EXCLUSIVE.read();
    const CLUSTER: u64 = 1004;
    let ids = [41, 42];
    let mut ms: Vec<Member> = ids
        .iter()
        .map(|&id| Member::start(config(id, CLUSTER, None), Recorder::new(true)))
        .collect();
    let members: Vec<&Member> = ms.iter().collect();
    connect(&members);
    for m in &members {
        m.rt.create_group(1, 1, &ids).expect("create group");
    }
    let leader_id = wait_for_leaders(&members, &[1])[&1];
    drop(members);
    // Stop the follower: nothing the leader accepts now can commit.
    let follower = ms.iter().position(|m| m.id != leader_id).expect("follower");
    ms.remove(follower).stop_and_drop();
    let m = ms.pop().expect("the leader");

    // Propose until the leader steps down (CheckQuorum) or 100 are in.
    let mut accepted = Vec::new();
    for i in 0..100 {
        match m.rt.propose(1, payload(1, i)) {
            Ok(id) => accepted.push(id),
            Err(Error::Node(multi::Error::NotLeader { .. })) => break,
            Err(e) => panic!("propose: {e}"),
        }
    }
    assert!(!accepted.is_empty(), "no proposal was accepted");
    m.rt.stop().expect("stop");
    // `stop` returns after the final pass: every outcome is already there.
    for &id in &accepted {
        assert_eq!(
            m.rec.outcomes(id),
            vec![(1, Err(ProposalError::Shutdown))],
            "proposal {id}: exactly one outcome, Shutdown (without a quorum it cannot commit)"
        );
    }
    let done = m.rec.rec.lock().done.len();
    assert_eq!(done, accepted.len(), "outcomes for ids never handed out");
    m.stop_and_drop_after_stop();
}

/// Proposes in a tight loop on several threads while the node is stopped:
/// every id `propose` returned must get exactly one `ProposalDone`.
fn stop_while_proposing(cluster: u64, ids: [u64; 2], proposers: usize) -> Result<(), String> {
    let ms: Vec<Member> = ids
        .iter()
        .map(|&id| Member::start(config(id, cluster, None), Recorder::new(false)))
        .collect();
    let members: Vec<&Member> = ms.iter().collect();
    connect(&members);
    let gs = groups(1..=8);
    create_on_all(&members, &gs, &ids);
    let leaders = wait_for_leaders(&members, &gs);
    // The node leading most groups is stopped under its proposers.
    let l = if leaders.values().filter(|&&l| l == ids[0]).count() * 2 >= gs.len() {
        ids[0]
    } else {
        ids[1]
    };
    let led: Vec<u64> = leaders
        .iter()
        .filter(|(_, &x)| x == l)
        .map(|(&g, _)| g)
        .collect();
    let target = member(&members, l);
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let started = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..proposers)
        .map(|t| {
            let rt = target.rt.clone();
            let led = led.clone();
            let accepted = accepted.clone();
            let started = started.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                loop {
                    let g = led[(i as usize + t) % led.len()];
                    i += 1;
                    match rt.propose(g, Bytes::from_static(b"x")) {
                        Ok(id) => {
                            accepted.lock().push(id);
                            started.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::Shutdown) => return,
                        // Leadership may move under load, and a tight loop
                        // meets backpressure; keep going.
                        Err(Error::Node(
                            multi::Error::NotLeader { .. } | multi::Error::Busy { .. },
                        )) => std::thread::yield_now(),
                        Err(e) => panic!("propose: {e}"),
                    }
                }
            })
        })
        .collect();
    wait_until("proposers are going", DEADLINE, || {
        started.load(Ordering::Relaxed) >= 500
    });
    target.rt.stop().expect("stop");
    for t in threads {
        t.join().expect("proposer thread");
    }
    let accepted = accepted.lock().clone();
    let rec = target.rec.rec.lock();
    let mut problems = Vec::new();
    let accepted_set: BTreeSet<u64> = accepted.iter().copied().collect();
    for &id in &accepted {
        match rec.done.get(&id).map(Vec::as_slice) {
            None | Some([]) => problems.push(format!("proposal {id}: no ProposalDone")),
            Some([(_, Ok(_))]) | Some([(_, Err(ProposalError::Shutdown))]) => {}
            Some(other) => problems.push(format!("proposal {id}: outcomes {other:?}")),
        }
    }
    for id in rec.done.keys() {
        if !accepted_set.contains(id) {
            problems.push(format!(
                "ProposalDone for id {id} that propose never returned"
            ));
        }
    }
    drop(rec);
    drop(members);
    let mut iter = ms.into_iter();
    for m in iter.by_ref() {
        if m.id == l {
            m.stop_and_drop_after_stop();
        } else {
            m.stop_and_drop();
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} accepted proposals: {}{}",
            problems.len(),
            accepted.len(),
            problems[..problems.len().min(5)].join("; "),
            if problems.len() > 5 { "; ..." } else { "" }
        ))
    }
}

#[test]
fn every_proposal_accepted_while_stop_races_gets_exactly_one_outcome() {
    let _shared = EXCLUSIVE.read();
    for round in 0..20u64 {
        if let Err(e) = stop_while_proposing(1100 + round, [43, 44], 6) {
            panic!("round {round}: {e}");
        }
    }
}

#[test]
fn tick_and_step_on_a_started_runtime_and_every_call_after_stop_are_refused() {
    let _shared = EXCLUSIVE.read();
    let rec = Recorder::new(true);
    let rt = Runtime::new(config(51, 1010, None), rec.clone()).expect("runtime");
    assert!(rt.local_addr().is_none());
    rt.create_group(1, 1, &[51]).expect("create before start");
    rt.start("127.0.0.1:0").expect("start");
    assert!(rt.local_addr().is_some_and(|a| a.port() != 0));
    assert!(
        matches!(rt.tick(), Err(Error::Mode(_))),
        "tick when started"
    );
    assert!(
        matches!(rt.step(52, &[0, 0, 0, 1, 0]), Err(Error::Mode(_))),
        "step when started"
    );
    assert!(
        matches!(rt.start("127.0.0.1:0"), Err(Error::Mode(_))),
        "second start"
    );
    // A single-replica group elects itself and commits on its own.
    wait_until("group 1 has a leader", DEADLINE, || {
        rt.group_status(1).is_ok_and(|s| s.role == Role::Leader)
    });
    let id = rt.propose(1, Bytes::from_static(b"one")).expect("propose");
    rec.wait_done(&[id], DEADLINE);
    assert!(matches!(rec.outcomes(id).as_slice(), [(1, Ok(_))]));

    rt.stop().expect("stop");
    assert!(rt.local_addr().is_none(), "no address after stop");
    assert!(matches!(rt.tick(), Err(Error::Shutdown)), "tick");
    assert!(
        matches!(rt.step(52, &[0, 0, 0, 1, 0]), Err(Error::Shutdown)),
        "step"
    );
    assert!(
        matches!(
            rt.propose(1, Bytes::from_static(b"x")),
            Err(Error::Shutdown)
        ),
        "propose"
    );
    assert!(
        matches!(rt.create_group(2, 1, &[51]), Err(Error::Shutdown)),
        "create_group"
    );
    assert!(
        matches!(rt.remove_group(1), Err(Error::Shutdown)),
        "remove_group"
    );
    assert!(
        matches!(rt.add_peer(52, "127.0.0.1:1"), Err(Error::Shutdown)),
        "add_peer"
    );
    assert!(
        matches!(rt.start("127.0.0.1:0"), Err(Error::Shutdown)),
        "start after stop"
    );
    assert!(matches!(rt.stop(), Err(Error::Shutdown)), "second stop");
}

#[test]
fn a_callback_on_the_node_thread_can_propose_and_stop_still_returns() {
    let _shared = EXCLUSIVE.read();
    const CLUSTER: u64 = 1011;
    let ids = [53, 54];
    // Each node's callback answers every applied "ping N" (N < 50) with
    // "ping N+1" when it leads the group, from inside the callback. A
    // proposal reported as Shutdown is answered by another proposal, which
    // must be refused (the node is stopping), not deadlock.
    let refused_in_callback = Arc::new(AtomicU64::new(0));
    let hook = |refused: Arc<AtomicU64>| -> Hook {
        Box::new(move |rt: &Runtime, ev: &Event| match ev {
            Event::Applied { group_id, data, .. } => {
                let Some(n) = std::str::from_utf8(data)
                    .ok()
                    .and_then(|s| s.strip_prefix("ping "))
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    return;
                };
                let leads = rt
                    .group_status(*group_id)
                    .is_ok_and(|s| s.role == Role::Leader);
                if n < 50 && leads {
                    let next = Bytes::from(format!("ping {}", n + 1));
                    if let Err(e) = rt.propose(*group_id, next) {
                        panic!("propose from inside apply: {e}");
                    }
                }
            }
            Event::ProposalDone {
                group_id,
                result: Err(ProposalError::Shutdown),
                ..
            } => match rt.propose(*group_id, Bytes::from_static(b"late")) {
                Err(Error::Shutdown) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                other => panic!("propose from inside the final pass: {other:?}"),
            },
            _ => {}
        })
    };
    let mut ms: Vec<Member> = ids
        .iter()
        .map(|&id| {
            Member::start(
                config(id, CLUSTER, None),
                Recorder::with_hook(hook(refused_in_callback.clone())),
            )
        })
        .collect();
    let members: Vec<&Member> = ms.iter().collect();
    connect(&members);
    for m in &members {
        m.rt.create_group(1, 1, &ids).expect("create group");
    }
    let leader_id = wait_for_leaders(&members, &[1])[&1];
    let l = member(&members, leader_id);
    l.rt.propose(1, Bytes::from_static(b"ping 0"))
        .expect("propose");
    wait_applied(&members, &[1], 51);
    for m in &members {
        let got: Vec<Bytes> = m.rec.applied(1).into_iter().map(|e| e.1).collect();
        let want: Vec<Bytes> = (0..=50).map(|n| Bytes::from(format!("ping {n}"))).collect();
        assert_eq!(got, want, "node {}", m.id);
    }
    drop(members);

    // Leave the leader alone, give it a proposal that cannot commit, stop it.
    let follower = ms.iter().position(|m| m.id != leader_id).expect("follower");
    ms.remove(follower).stop_and_drop();
    let m = ms.pop().expect("the leader");
    let id =
        m.rt.propose(1, Bytes::from_static(b"ping 100"))
            .expect("propose");
    m.rt.stop()
        .expect("stop returns although a callback calls into the node");
    assert_eq!(m.rec.outcomes(id), vec![(1, Err(ProposalError::Shutdown))]);
    assert_eq!(refused_in_callback.load(Ordering::Relaxed), 1);
    m.stop_and_drop_after_stop();
}

/// The load test's streamer: proposes `entry`-byte commands to `group` at
/// `rt` with `in_flight` outstanding until `stop` or `cap` committed; returns
/// (committed, failed) or the first refused proposal.
fn stream(
    rt: Arc<Runtime>,
    rec: Arc<Recorder>,
    group: u64,
    entry: usize,
    in_flight: usize,
    cap: u64,
    stop: Arc<AtomicBool>,
) -> Result<(u64, u64), String> {
    let data = Bytes::from(vec![0xa5u8; entry]);
    let mut pending: Vec<u64> = Vec::new();
    let (mut ok, mut failed) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) && ok < cap {
        while pending.len() < in_flight {
            match rt.propose(group, data.clone()) {
                Ok(id) => pending.push(id),
                Err(e) => return Err(format!("bulk propose: {e}")),
            }
        }
        let mut r = rec.rec.lock();
        pending.retain(|id| match r.done.get(id).and_then(|o| o.first()) {
            Some((_, Ok(_))) => {
                ok += 1;
                false
            }
            Some((_, Err(_))) => {
                failed += 1;
                false
            }
            None => true,
        });
        if pending.len() == in_flight {
            rec.cv.wait_for(&mut r, Duration::from_millis(50));
        }
    }
    Ok((ok, failed))
}

#[test]
fn heartbeat_batches_keep_flowing_and_nobody_elects_while_one_group_streams_1mib_entries() {
    let _alone = EXCLUSIVE.write();
    const CLUSTER: u64 = 1012;
    const BULK: u64 = 101;
    const IN_FLIGHT: usize = 8;
    const ENTRY: usize = 1 << 20;
    const INTERVAL: Duration = Duration::from_millis(250);
    /// 3 s of load, unless `CAP_MIB` is reached first.
    const INTERVALS: u32 = 12;
    /// The follower keeps every entry in memory (no log compaction yet):
    /// stop at 2 GiB (about 2 s on a fast machine).
    const CAP_MIB: u64 = 2048;
    /// Heartbeats every 20 ms as in the other tests, but an election timeout
    /// of 500-1000 ms (the C API's default timeout) instead of 100-200 ms:
    /// the stream keeps both cores of a small machine busy, and a thread
    /// that only sleeps and polls was measured stalled for up to ~130 ms
    /// meanwhile (the stall column of benches/heartbeat_latency.rs). With
    /// 100 ms this test saw elections in 4 of 33 runs on a loaded 2-core
    /// machine while batches kept arriving (6 or more per 250 ms). That
    /// batches keep flowing is checked on its own, per 250 ms interval.
    const LOAD_ELECTION_TICKS: u32 = 50;
    let ids = [61, 62];
    let ms: Vec<Member> = ids
        .iter()
        .map(|&id| {
            let mut cfg = config(id, CLUSTER, None);
            cfg.node.max_proposal_bytes = ENTRY;
            cfg.node.election_ticks = LOAD_ELECTION_TICKS;
            Member::start(cfg, Recorder::new(false))
        })
        .collect();
    let members: Vec<&Member> = ms.iter().collect();
    connect(&members);
    let gs = groups(1..=BULK);
    create_on_all(&members, &gs, &ids);
    let leaders = wait_for_leaders(&members, &gs);
    let leader = member(&members, leaders[&BULK]);
    let follower = members
        .iter()
        .find(|m| m.id != leader.id)
        .copied()
        .expect("follower");

    let before: Vec<Stats> = members.iter().map(|m| m.stats()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let streamer = {
        let (rt, rec, stop) = (leader.rt.clone(), leader.rec.clone(), stop.clone());
        std::thread::spawn(move || stream(rt, rec, BULK, ENTRY, IN_FLIGHT, CAP_MIB, stop))
    };
    let start = Instant::now();
    // Heartbeat batches each node received in each interval.
    let mut per_interval: Vec<Vec<u64>> = vec![Vec::new(); members.len()];
    let mut last: Vec<u64> = before
        .iter()
        .map(|s| s.received_of(FrameKind::HeartbeatBatch).messages)
        .collect();
    for k in 1..=INTERVALS {
        // Sampling cadence, not a wait for an outcome.
        let due = start + INTERVAL * k;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        for (i, m) in members.iter().enumerate() {
            let now = m.stats().received_of(FrameKind::HeartbeatBatch).messages;
            per_interval[i].push(now - last[i]);
            last[i] = now;
        }
        if streamer.is_finished() {
            break; // reached the cap (or failed: reported below)
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let streamed = streamer.join().expect("streamer thread");
    let after: Vec<Stats> = members.iter().map(|m| m.stats()).collect();
    let (ok, failed) = streamed.clone().unwrap_or((0, 0));
    let mib = ok as f64 * ENTRY as f64 / (1u64 << 20) as f64;
    eprintln!(
        "load test: {mib:.0} MiB committed in {:.2} s ({:.1} MiB/s); heartbeat batches \
         received per {} ms: {:?}",
        elapsed.as_secs_f64(),
        mib / elapsed.as_secs_f64(),
        INTERVAL.as_millis(),
        members
            .iter()
            .zip(&per_interval)
            .map(|(m, w)| (m.id, w.clone()))
            .collect::<Vec<_>>()
    );
    if let Err(e) = streamed {
        panic!("{e}");
    }
    for (i, m) in members.iter().enumerate() {
        assert_eq!(
            after[i].elections_started, before[i].elections_started,
            "node {}: elections started during the load",
            m.id
        );
        assert_eq!(
            after[i].leader_changes, before[i].leader_changes,
            "node {}: leader changes during the load",
            m.id
        );
        // 250 ms is 12.5 heartbeat intervals: batches in every one of them.
        let w = &per_interval[i];
        assert!(w.len() >= 4, "the load window lasted {} intervals", w.len());
        assert!(
            w.iter().all(|&n| n >= 2),
            "node {}: heartbeat batches received per {} ms interval: {w:?}",
            m.id,
            INTERVAL.as_millis()
        );
    }
    assert_eq!(failed, 0, "bulk proposals failed");
    assert!(
        mib >= 24.0,
        "the bulk group made too little progress: {mib:.0} MiB in {:.2} s",
        elapsed.as_secs_f64()
    );
    assert!(
        follower
            .rec
            .rec
            .lock()
            .applied_bytes
            .get(&BULK)
            .copied()
            .unwrap_or(0)
            > 0,
        "the follower applied nothing of the bulk group"
    );
    drop(members);
    for m in ms {
        m.stop_and_drop();
    }
}

#[test]
fn a_host_driven_runtime_can_be_stopped_and_then_refuses_calls() {
    let _shared = EXCLUSIVE.read();
    let rec = Recorder::new(false);
    let rt = Runtime::new(config(56, 1016, None), rec.clone()).expect("runtime");
    rt.create_group(1, 1, &[56, 57, 58]).expect("create");
    // Campaign alone: no peer answers, so nothing ever commits.
    for _ in 0..40 {
        rt.tick().expect("tick");
    }
    let leader = rt.group_status(1).expect("status").role == muxraft::raft::Role::Leader;
    assert!(!leader, "a lone replica of three cannot win");
    rt.stop().expect("stop a host-driven runtime");
    assert!(matches!(rt.stop(), Err(Error::Shutdown)));
    assert!(matches!(rt.tick(), Err(Error::Shutdown)));
}

/// After a bug was caught at the boundary (the C API poisons the runtime
/// when a panic reaches it), every call says so (MUXRAFT_PANIC in C), not
/// that storage failed.
#[test]
fn a_poisoned_runtime_refuses_every_call_as_panicked() {
    let _shared = EXCLUSIVE.read();
    let rec = Recorder::new(false);
    let rt = Runtime::new(config(59, 1017, None), rec.clone()).expect("runtime");
    rt.create_group(0, 1, &[59])
        .expect("group id 0 is a group id");
    rt.poison();
    assert!(matches!(rt.tick(), Err(Error::Panicked)));
    assert!(matches!(
        rt.propose(0, Bytes::from_static(b"x")),
        Err(Error::Panicked)
    ));
    assert!(matches!(rt.create_group(1, 1, &[59]), Err(Error::Panicked)));
    assert!(matches!(rt.remove_group(0), Err(Error::Panicked)));
}
