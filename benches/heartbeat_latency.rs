//! Heartbeat latency under bulk load: do liveness frames still get through
//! quickly while a replication stream saturates the same connection?
//!
//!     cargo bench --bench heartbeat_latency                  # ~10 s of measuring
//!     cargo bench --bench heartbeat_latency -- --seconds 20
//!     cargo bench --bench heartbeat_latency -- --json
//!     cargo bench --bench heartbeat_latency -- --smoke       # ~2 s; what CI runs
//!     cargo bench --bench heartbeat_latency -- --tls         # both parts over TLS
//!
//! Two parts, each measured idle and then under load; the total measuring
//! time `--seconds S` is split into four equal phases (setup, elections and
//! draining come on top):
//!
//! (a) **Transport.** Two [`Transport`]s on loopback. Every 10 ms node 1
//!     sends node 2 a small *priority* frame carrying its send time (nanos
//!     since an `Instant` shared by both transports, which live in this one
//!     process); node 2's inbound callback records the one-way delay. Idle
//!     phase: nothing else. Bulk phase: another thread keeps node 1's bulk
//!     queue for node 2 filled (16 MiB) with 1 MiB frames. Reported: probe
//!     delay p50/p99/max for both phases and the bulk throughput.
//!
//! (b) **Node.** Two embedded [`Runtime`]s (tick 10 ms, heartbeat every 2
//!     ticks, election timeout 50 ticks = 500-1000 ms, the C API's default
//!     timeout; `--election-ticks` to tighten it), 100 idle groups plus one
//!     bulk group. Idle phase: nothing is proposed. Bulk phase: the bulk group's
//!     leader proposes 1 MiB entries as fast as it can with 8 in flight.
//!     Reported: heartbeat-batch inter-arrival on each node, elections and
//!     leader changes during the phase (must be 0), commit throughput.
//!
//!     The inter-arrival times are **approximate**: the library exposes no
//!     per-frame timestamps, so this bench polls
//!     `stats().received_of(HeartbeatBatch)` every millisecond and timestamps
//!     each increase. Resolution is about 1 ms plus polling jitter, and the
//!     time includes the wait for the node thread to step the frame (which
//!     is what a follower's election timer sees). The side that matters is
//!     the bulk group's *follower*: its batches come over the direction that
//!     carries the 1 MiB appends.
//!
//!     Storage is in memory unless `--wal` is given (then each node writes
//!     its WAL in a temporary directory, fsync per pass). The follower keeps
//!     every entry in memory (no log compaction yet), so the bulk phase stops
//!     early once `--max-mib` MiB are committed (default 3072); the table says
//!     when that happened.
//!
//!     Both parts also report a **stall** canary: the worst lateness of a
//!     thread of this bench that only sleeps and polls (the prober, the
//!     sampler). On a small machine the bulk stream itself keeps every core
//!     busy; when the canary shows a 60 ms stall, a heartbeat that arrived
//!     60 ms late tells about the machine, not the library's queues.
//!
//! `--help` lists the options.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use muxraft::multi::{Event, FrameKind, NodeConfig, Stats};
use muxraft::raft::Role;
use muxraft::runtime::{Host, Runtime, RuntimeConfig};
use muxraft::transport::{Inbound, TlsConfig, Transport, TransportConfig};
use parking_lot::{Condvar, Mutex};

mod common;
use common::JsonObject;
#[path = "../tests/common/mod.rs"]
mod test_common;
use test_common::TempDir;

const MIB: usize = 1 << 20;
/// Priority probe period (transport part).
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// Bulk bytes kept queued for the peer (transport part).
const BULK_QUEUE_TARGET: u64 = 16 << 20;
const TICK: Duration = Duration::from_millis(10);
const HEARTBEAT_TICKS: u32 = 2;
/// Default election timeout in ticks: 500-1000 ms, the C API's default
/// (`tick_ms` 50 x `election_ticks` 10), with heartbeats five times as
/// frequent as its default so that there are more of them to time.
const ELECTION_TICKS: u32 = 50;
const IDLE_GROUPS: u64 = 100;
const BULK_GROUP: u64 = IDLE_GROUPS + 1;
const IN_FLIGHT: usize = 8;
/// How often the node part reads the heartbeat counters.
const POLL: Duration = Duration::from_millis(1);
/// Smoke: the longest acceptable priority-frame delay.
const SMOKE_MAX_DELAY: Duration = Duration::from_secs(1);
/// Bound on setup waits (connections, elections) and on draining.
const SETUP_DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Arguments

/// Heartbeat latency under bulk load: do liveness frames still get through
/// quickly while a replication stream saturates the same connection?
#[derive(Parser, Clone, Debug)]
#[command(
    name = "heartbeat_latency",
    bin_name = "cargo bench --bench heartbeat_latency --"
)]
struct Args {
    /// Total measuring time in seconds (at least 0.4), split in four equal
    /// phases
    #[arg(long, value_name = "S", default_value_t = 10.0, value_parser = seconds)]
    seconds: f64,
    /// One JSON object on one line instead of the tables
    #[arg(long)]
    json: bool,
    /// Measure 2 s (S = 2); exit non-zero if any election or leader change happened during
    /// node load, a priority probe took longer than 1 s or was lost, or a
    /// phase saw no heartbeat at all
    #[arg(long)]
    smoke: bool,
    /// Node part with write-ahead logs in temporary directories
    #[arg(long)]
    wal: bool,
    /// Both parts with TLS between the nodes (the test certificates of
    /// tests/certs)
    #[arg(long)]
    tls: bool,
    /// Stop the node bulk phase after M MiB committed
    #[arg(long, value_name = "M", default_value_t = 3072, value_parser = clap::value_parser!(u64).range(1..))]
    max_mib: u64,
    /// Node part's election timeout in 10 ms ticks (10, i.e. 100-200 ms, is
    /// a stress setting)
    #[arg(long, value_name = "E", default_value_t = ELECTION_TICKS,
          value_parser = clap::value_parser!(u32).range(HEARTBEAT_TICKS as i64 + 1..))]
    election_ticks: u32,
    #[command(flatten)]
    cargo: common::CargoArgs,
}

/// `--seconds`: a finite number of at least 0.4.
fn seconds(v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.4)
        .ok_or_else(|| "not a number >= 0.4".to_string())
}

fn parse_args() -> Result<Args, String> {
    let (mut a, m) = common::parse_command_line::<Args>("heartbeat_latency bench");
    if a.smoke {
        if common::given(&m, "seconds") {
            eprintln!("heartbeat_latency bench: --smoke measures 2 s; --seconds ignored");
        }
        a.seconds = 2.0;
    }
    Ok(a)
}

// ---------------------------------------------------------------------------
// Small statistics

/// p50, p99 and max of a sample (nearest rank), in milliseconds.
#[derive(Clone, Copy, Debug, Default)]
struct Dist {
    n: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Dist {
    fn of(mut v: Vec<Duration>) -> Dist {
        if v.is_empty() {
            return Dist::default();
        }
        v.sort_unstable();
        let rank = |p: f64| {
            let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v[i.clamp(1, v.len()) - 1].as_secs_f64() * 1e3
        };
        Dist {
            n: v.len(),
            p50: rank(50.0),
            p99: rank(99.0),
            max: v[v.len() - 1].as_secs_f64() * 1e3,
        }
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let end = Instant::now() + SETUP_DEADLINE;
    while !cond() {
        if Instant::now() >= end {
            return Err(format!("timed out waiting until {what}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// (a) Transport level

const TAG_PROBE: u8 = b'P';
const TAG_BULK: u8 = b'B';
const PHASE_IDLE: u8 = 0;
const PHASE_BULK: u8 = 1;

/// A whole frame: 4-byte big-endian length, then `payload`.
fn frame(payload: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(4 + payload.len());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    Bytes::from(v)
}

/// A probe: tag, phase, send time in nanos since `base`.
fn probe(phase: u8, sent_nanos: u64) -> Bytes {
    let mut p = [0u8; 10];
    p[0] = TAG_PROBE;
    p[1] = phase;
    p[2..10].copy_from_slice(&sent_nanos.to_le_bytes());
    frame(&p)
}

#[derive(Default)]
struct Sink {
    /// (phase, one-way delay) of every probe received.
    delays: Mutex<Vec<(u8, Duration)>>,
    bulk_bytes: AtomicU64,
    bulk_frames: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default)]
struct TransportPhase {
    sent: u64,
    delay: Dist,
    bulk_mib_s: f64,
    bulk_frames: u64,
    /// The prober's worst lateness against its 10 ms schedule (ms).
    stall_ms: f64,
}

#[derive(Clone, Copy, Debug, Default)]
struct TransportResult {
    idle: TransportPhase,
    bulk: TransportPhase,
    frames_dropped: u64,
}

/// `--tls`: node `id`'s TLS settings (tests/certs/node<id>.crt, its key,
/// the test CA); None without `--tls`.
fn tls_for(tls: bool, id: u64) -> Result<Option<TlsConfig>, String> {
    if !tls {
        return Ok(None);
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/certs");
    TlsConfig::from_pem_files(
        dir.join(format!("node{id}.crt")),
        dir.join(format!("node{id}.key")),
        dir.join("ca.crt"),
    )
    .map(Some)
    .map_err(|e| format!("node {id}: {e}"))
}

fn measure_transport(phase_len: Duration, tls: bool) -> Result<TransportResult, String> {
    const CLUSTER: u64 = 0x6862;
    let base = Instant::now();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    let sink = Arc::new(Sink::default());
    let inbound: Inbound = {
        let sink = sink.clone();
        Arc::new(move |_from, f: Bytes| match f.get(4) {
            Some(&TAG_PROBE) if f.len() == 14 => {
                let now = base.elapsed().as_nanos() as u64;
                let mut sent = [0u8; 8];
                sent.copy_from_slice(&f[6..14]);
                let d = Duration::from_nanos(now.saturating_sub(u64::from_le_bytes(sent)));
                sink.delays.lock().push((f[5], d));
            }
            Some(&TAG_BULK) => {
                sink.bulk_bytes.fetch_add(f.len() as u64, Ordering::Relaxed);
                sink.bulk_frames.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        })
    };
    let start = |id: u64, inbound: Inbound| {
        let mut cfg = TransportConfig::new(id, CLUSTER, any);
        cfg.tls = tls_for(tls, id)?;
        Transport::start(cfg, inbound).map_err(|e| format!("transport {id}: {e}"))
    };
    let a = Arc::new(start(1, Arc::new(|_, _| {}))?);
    let b = start(2, inbound)?;
    a.add_peer(2, b.local_addr());
    b.add_peer(1, a.local_addr());
    wait_until("the two transports are connected", || {
        a.connected(2) && b.connected(1)
    })?;

    let phase = Arc::new(AtomicU8::new(PHASE_IDLE));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    // The prober's worst lateness against its schedule, per phase (nanos): a
    // canary for this process not being scheduled.
    let late = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let prober = {
        let (a, phase, stop, sent) = (a.clone(), phase.clone(), stop.clone(), sent.clone());
        let late = late.clone();
        std::thread::spawn(move || {
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let p = phase.load(Ordering::Relaxed);
                let behind = Instant::now().saturating_duration_since(next);
                late[p as usize].fetch_max(behind.as_nanos() as u64, Ordering::Relaxed);
                a.send(2, probe(p, base.elapsed().as_nanos() as u64), true);
                sent[p as usize].fetch_add(1, Ordering::Relaxed);
                next += PROBE_EVERY;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })
    };

    // Idle phase.
    std::thread::sleep(phase_len);

    // Bulk phase: keep the bulk queue filled with 1 MiB frames.
    let bulk_before = sink.bulk_bytes.load(Ordering::Relaxed);
    let frames_before = sink.bulk_frames.load(Ordering::Relaxed);
    phase.store(PHASE_BULK, Ordering::Relaxed);
    let bulk_stop = Arc::new(AtomicBool::new(false));
    let bulk = {
        let (a, bulk_stop) = (a.clone(), bulk_stop.clone());
        std::thread::spawn(move || {
            let mut payload = vec![0x5au8; MIB - 4];
            payload[0] = TAG_BULK;
            let big = frame(&payload);
            while !bulk_stop.load(Ordering::Relaxed) {
                if a.stats().queued_bytes < BULK_QUEUE_TARGET {
                    a.send(2, big.clone(), false);
                } else {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    let t0 = Instant::now();
    std::thread::sleep(phase_len);
    let bulk_bytes = sink.bulk_bytes.load(Ordering::Relaxed) - bulk_before;
    let bulk_frames = sink.bulk_frames.load(Ordering::Relaxed) - frames_before;
    let bulk_secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    bulk_stop.store(true, Ordering::Relaxed);
    prober.join().map_err(|_| "prober panicked")?;
    bulk.join().map_err(|_| "bulk sender panicked")?;

    // Every probe sent must arrive (priority frames are not dropped while
    // connected); wait for the stragglers behind the queued bulk frames.
    let total_sent = sent[0].load(Ordering::Relaxed) + sent[1].load(Ordering::Relaxed);
    let arrived = || sink.delays.lock().len() as u64;
    let _ = wait_until("every probe arrived", || arrived() >= total_sent);
    let frames_dropped = a.stats().frames_dropped;
    let delays = std::mem::take(&mut *sink.delays.lock());
    let of = |p: u8| Dist::of(delays.iter().filter(|d| d.0 == p).map(|d| d.1).collect());
    let stall = |p: u8| late[p as usize].load(Ordering::Relaxed) as f64 / 1e6;
    drop(b);
    match Arc::try_unwrap(a) {
        Ok(a) => a.stop(),
        Err(_) => return Err("transport 1 still shared".into()),
    }
    Ok(TransportResult {
        idle: TransportPhase {
            sent: sent[0].load(Ordering::Relaxed),
            delay: of(PHASE_IDLE),
            bulk_mib_s: 0.0,
            bulk_frames: 0,
            stall_ms: stall(PHASE_IDLE),
        },
        bulk: TransportPhase {
            sent: sent[1].load(Ordering::Relaxed),
            delay: of(PHASE_BULK),
            bulk_mib_s: bulk_bytes as f64 / MIB as f64 / bulk_secs,
            bulk_frames,
            stall_ms: stall(PHASE_BULK),
        },
        frames_dropped,
    })
}

// ---------------------------------------------------------------------------
// (b) Node level

/// Counts what the runtime reports; keeps no entry data.
#[derive(Default)]
struct Counter {
    /// Proposal id -> committed?
    done: Mutex<HashMap<u64, bool>>,
    cv: Condvar,
    applied_bytes: AtomicU64,
}

impl Host for Counter {
    fn send(&self, _to: u64, _frame: &[u8], _liveness: bool) {}

    fn event(&self, ev: &Event) {
        match ev {
            Event::Applied { data, .. } => {
                self.applied_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            Event::ProposalDone {
                proposal_id,
                result,
                ..
            } => {
                self.done.lock().insert(*proposal_id, result.is_ok());
                self.cv.notify_all();
            }
            _ => {}
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct NodePhase {
    secs: f64,
    /// Heartbeat batches received, and their inter-arrival, per node:
    /// [bulk follower, bulk leader].
    batches: [u64; 2],
    inter_arrival: [Dist; 2],
    elections: u64,
    leader_changes: u64,
    committed_mib: f64,
    failed_proposals: u64,
    /// Longest gap between two polls of the sampler (see [`Sampled`]).
    max_poll_gap_ms: f64,
}

#[derive(Clone, Copy, Debug, Default)]
struct NodeResult {
    idle: NodePhase,
    bulk: NodePhase,
    capped: bool,
}

struct NodeBench {
    rts: Vec<(u64, Arc<Runtime>, Arc<Counter>)>,
    _dirs: Vec<TempDir>,
}

impl NodeBench {
    fn start(wal: bool, election_ticks: u32, tls: bool) -> Result<NodeBench, String> {
        const CLUSTER: u64 = 0x6863;
        let ids = [1u64, 2];
        let mut rts = Vec::new();
        let mut dirs = Vec::new();
        for id in ids {
            let mut node = NodeConfig::new(id);
            node.cluster_id = CLUSTER;
            node.election_ticks = election_ticks;
            node.heartbeat_ticks = HEARTBEAT_TICKS;
            node.max_proposal_bytes = MIB;
            let data_dir = wal.then(|| {
                let d = TempDir::new(&format!("node{id}"));
                let p = d.path().to_path_buf();
                dirs.push(d);
                p
            });
            let counter = Arc::new(Counter::default());
            let rt = Runtime::new(
                RuntimeConfig {
                    tick: TICK,
                    data_dir,
                    tls: tls_for(tls, id)?,
                    ..RuntimeConfig::new(node)
                },
                counter.clone(),
            )
            .map_err(|e| format!("runtime {id}: {e}"))?;
            rt.start("127.0.0.1:0")
                .map_err(|e| format!("start {id}: {e}"))?;
            rts.push((id, Arc::new(rt), counter));
        }
        for (id, rt, _) in &rts {
            for (other, ort, _) in &rts {
                if id != other {
                    let addr = ort.local_addr().ok_or("no address")?.to_string();
                    rt.add_peer(*other, &addr).map_err(|e| format!("{e}"))?;
                }
            }
        }
        for (_, rt, _) in &rts {
            for g in 1..=BULK_GROUP {
                rt.create_group(g, 1, &ids).map_err(|e| format!("{e}"))?;
            }
        }
        Ok(NodeBench { rts, _dirs: dirs })
    }

    /// The node (index into `rts`) leading `g`, once both agree.
    fn leader_of(&self, g: u64) -> Option<usize> {
        let mut leader = None;
        for (_, rt, _) in &self.rts {
            let s = rt.group_status(g).ok()?;
            if s.leader == 0 || leader.is_some_and(|l| l != s.leader) {
                return None;
            }
            leader = Some(s.leader);
        }
        let i = self.rts.iter().position(|r| Some(r.0) == leader)?;
        (self.rts[i].1.group_status(g).ok()?.role == Role::Leader).then_some(i)
    }

    fn stats(&self, i: usize) -> Stats {
        self.rts[i].1.stats().0
    }

    fn stop(self) {
        for (_, rt, _) in self.rts {
            let _ = rt.stop();
        }
    }
}

/// What the sampler saw: arrival times of heartbeat batches on each node
/// (slots as `order`), and the longest time between two of its own polls
/// (a canary: a long one means this process was not scheduled, so the
/// library's threads probably were not either).
struct Sampled {
    arrivals: [Vec<Instant>; 2],
    max_poll_gap: Duration,
}

/// Polls both nodes' heartbeat-batch counters every `POLL` until `until`
/// says stop (`order` maps result slots to node indexes).
fn sample_arrivals(nb: &NodeBench, order: [usize; 2], mut until: impl FnMut() -> bool) -> Sampled {
    let mut arrivals: [Vec<Instant>; 2] = [Vec::new(), Vec::new()];
    let mut last = order.map(|i| nb.stats(i).received_of(FrameKind::HeartbeatBatch).messages);
    let mut next = Instant::now();
    let mut prev_poll = Instant::now();
    let mut max_poll_gap = Duration::ZERO;
    while !until() {
        let now = Instant::now();
        max_poll_gap = max_poll_gap.max(now - prev_poll);
        prev_poll = now;
        for (slot, &i) in order.iter().enumerate() {
            let c = nb.stats(i).received_of(FrameKind::HeartbeatBatch).messages;
            for _ in last[slot]..c {
                arrivals[slot].push(now);
            }
            last[slot] = c;
        }
        next += POLL;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Sampled {
        arrivals,
        max_poll_gap,
    }
}

fn inter_arrival(arrivals: &[Instant]) -> Dist {
    Dist::of(arrivals.windows(2).map(|w| w[1] - w[0]).collect())
}

fn phase_result(nb: &NodeBench, before: &[Stats], sampled: &Sampled, secs: f64) -> NodePhase {
    let arrivals = &sampled.arrivals;
    let after: Vec<Stats> = (0..nb.rts.len()).map(|i| nb.stats(i)).collect();
    let delta = |f: fn(&Stats) -> u64| -> u64 {
        after
            .iter()
            .zip(before)
            .map(|(a, b)| f(a).saturating_sub(f(b)))
            .sum()
    };
    NodePhase {
        secs,
        batches: [arrivals[0].len() as u64, arrivals[1].len() as u64],
        inter_arrival: [inter_arrival(&arrivals[0]), inter_arrival(&arrivals[1])],
        elections: delta(|s| s.elections_started),
        leader_changes: delta(|s| s.leader_changes),
        committed_mib: 0.0,
        failed_proposals: 0,
        max_poll_gap_ms: sampled.max_poll_gap.as_secs_f64() * 1e3,
    }
}

fn measure_node(a: &Args, phase_len: Duration) -> Result<NodeResult, String> {
    let nb = NodeBench::start(a.wal, a.election_ticks, a.tls)?;
    let mut leaders = Vec::new();
    wait_until("every group has a leader both nodes agree on", || {
        leaders = (1..=BULK_GROUP).map(|g| nb.leader_of(g)).collect();
        leaders.iter().all(Option::is_some)
    })?;
    let leader = nb
        .leader_of(BULK_GROUP)
        .ok_or("the bulk group lost its leader")?;
    let follower = 1 - leader;
    let order = [follower, leader];

    // Idle phase.
    let before: Vec<Stats> = (0..2).map(|i| nb.stats(i)).collect();
    let t0 = Instant::now();
    let sampled = sample_arrivals(&nb, order, || t0.elapsed() >= phase_len);
    let idle = phase_result(&nb, &before, &sampled, t0.elapsed().as_secs_f64());

    // Bulk phase.
    let before: Vec<Stats> = (0..2).map(|i| nb.stats(i)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let streamer = {
        let rt = nb.rts[leader].1.clone();
        let counter = nb.rts[leader].2.clone();
        let (stop, committed) = (stop.clone(), committed.clone());
        let max = a.max_mib;
        std::thread::spawn(move || -> Result<u64, String> {
            let data = Bytes::from(vec![0xa5u8; MIB]);
            let mut in_flight: Vec<u64> = Vec::new();
            let mut failed = 0u64;
            while !stop.load(Ordering::Relaxed) && committed.load(Ordering::Relaxed) < max {
                while in_flight.len() < IN_FLIGHT {
                    in_flight.push(
                        rt.propose(BULK_GROUP, data.clone())
                            .map_err(|e| format!("bulk propose: {e}"))?,
                    );
                }
                let mut done = counter.done.lock();
                in_flight.retain(|id| match done.remove(id) {
                    Some(true) => {
                        committed.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                    Some(false) => {
                        failed += 1;
                        false
                    }
                    None => true,
                });
                if in_flight.len() == IN_FLIGHT {
                    counter.cv.wait_for(&mut done, Duration::from_millis(20));
                }
            }
            Ok(failed)
        })
    };
    let t0 = Instant::now();
    let capped = AtomicBool::new(false);
    let sampled = sample_arrivals(&nb, order, || {
        if committed.load(Ordering::Relaxed) >= a.max_mib {
            capped.store(true, Ordering::Relaxed);
            return true;
        }
        t0.elapsed() >= phase_len
    });
    let secs = t0.elapsed().as_secs_f64();
    let committed_mib = committed.load(Ordering::Relaxed) as f64;
    stop.store(true, Ordering::Relaxed);
    let mut bulk = phase_result(&nb, &before, &sampled, secs);
    bulk.committed_mib = committed_mib;
    bulk.failed_proposals = streamer.join().map_err(|_| "streamer panicked")??;
    nb.stop();
    Ok(NodeResult {
        idle,
        bulk,
        capped: capped.load(Ordering::Relaxed),
    })
}

// ---------------------------------------------------------------------------
// Report

struct Report {
    args: Args,
    phase_secs: f64,
    transport: TransportResult,
    node: NodeResult,
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Left-aligned first column, right-aligned others.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                s.push_str(&format!(" {:<w$}", c, w = w[i]));
            } else {
                s.push_str(&format!(" | {:>w$}", c, w = w[i]));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    let dashes: Vec<String> = w.iter().map(|&n| "-".repeat(n)).collect();
    out.push_str(&format!("  {}\n", dashes.join("-+-")));
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

impl common::Report for Report {
    fn table(&self) -> String {
        let t = &self.transport;
        let n = &self.node;
        let mut out = format!(
            "heartbeat latency bench: {:.2} s per phase, release={}, tls={}\n\n",
            self.phase_secs,
            !cfg!(debug_assertions),
            self.args.tls
        );
        out.push_str(&format!(
            "(a) transport: one priority frame every {} ms, one-way delay (ms); \
             bulk = 1 MiB frames, {} MiB kept queued\n",
            PROBE_EVERY.as_millis(),
            BULK_QUEUE_TARGET >> 20
        ));
        let rows: Vec<Vec<String>> = [("idle", &t.idle), ("bulk", &t.bulk)]
            .iter()
            .map(|(name, p)| {
                vec![
                    name.to_string(),
                    p.sent.to_string(),
                    p.delay.n.to_string(),
                    ms(p.delay.p50),
                    ms(p.delay.p99),
                    ms(p.delay.max),
                    ms(p.stall_ms),
                    if *name == "bulk" {
                        format!("{:.0}", p.bulk_mib_s)
                    } else {
                        "-".into()
                    },
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "phase",
                "probes sent",
                "received",
                "p50",
                "p99",
                "max",
                "stall",
                "bulk MiB/s",
            ],
            &rows,
        ));
        out.push_str(&format!(
            "  stall: the prober's worst lateness against its schedule (ms), a canary for \
             the machine not scheduling this process; frames dropped by the sender: {}\n\n",
            t.frames_dropped
        ));

        out.push_str(&format!(
            "(b) node: 2 embedded runtimes, {IDLE_GROUPS} idle groups + 1 group streaming \
             1 MiB entries ({IN_FLIGHT} in flight), tick {} ms, heartbeat every {} ms, \
             election timeout {}-{} ms, storage {}\n",
            TICK.as_millis(),
            TICK.as_millis() * HEARTBEAT_TICKS as u128,
            TICK.as_millis() * self.args.election_ticks as u128,
            2 * TICK.as_millis() * self.args.election_ticks as u128,
            if self.args.wal { "WAL" } else { "memory" }
        ));
        let rows: Vec<Vec<String>> = [("idle", &n.idle), ("bulk", &n.bulk)]
            .iter()
            .map(|(name, p)| {
                let f = &p.inter_arrival[0];
                let l = &p.inter_arrival[1];
                vec![
                    name.to_string(),
                    format!("{:.2}", p.secs),
                    p.batches[0].to_string(),
                    ms(f.p50),
                    ms(f.p99),
                    ms(f.max),
                    ms(l.p50),
                    ms(l.p99),
                    p.elections.to_string(),
                    p.leader_changes.to_string(),
                    ms(p.max_poll_gap_ms),
                    if *name == "bulk" {
                        format!("{:.0}", p.committed_mib / p.secs)
                    } else {
                        "-".into()
                    },
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "phase",
                "s",
                "batches in (follower)",
                "p50",
                "p99",
                "max",
                "leader p50",
                "leader p99",
                "elections",
                "leader changes",
                "stall",
                "commit MiB/s",
            ],
            &rows,
        ));
        out.push_str(
            "  p50/p99/max: heartbeat-batch inter-arrival (ms) on the bulk group's follower, \
             approximate: counters polled every 1 ms;\n  leader p50/p99: the same on the \
             bulk group's leader (batches that travel against the bulk stream);\n  stall: \
             longest gap between two of those polls (ms), a canary for the machine not \
             scheduling this process\n",
        );
        out.push_str(&format!(
            "  bulk phase: {:.0} MiB committed{}{}\n",
            n.bulk.committed_mib,
            if n.capped {
                format!(" (stopped early at --max-mib {})", self.args.max_mib)
            } else {
                String::new()
            },
            if n.bulk.failed_proposals > 0 {
                format!(", {} proposals failed", n.bulk.failed_proposals)
            } else {
                String::new()
            }
        ));
        out
    }

    fn json(&self) -> String {
        let t = &self.transport;
        let n = &self.node;
        let mut o = JsonObject::default();
        o.num("phase_seconds", self.phase_secs);
        for (name, p) in [("idle", &t.idle), ("bulk", &t.bulk)] {
            o.int(&format!("transport_{name}_probes_sent"), p.sent);
            o.int(
                &format!("transport_{name}_probes_received"),
                p.delay.n as u64,
            );
            o.num(&format!("transport_{name}_delay_p50_ms"), p.delay.p50);
            o.num(&format!("transport_{name}_delay_p99_ms"), p.delay.p99);
            o.num(&format!("transport_{name}_delay_max_ms"), p.delay.max);
            o.num(&format!("transport_{name}_prober_stall_max_ms"), p.stall_ms);
        }
        o.num("transport_bulk_mib_per_s", t.bulk.bulk_mib_s);
        o.int("transport_frames_dropped", t.frames_dropped);
        for (name, p) in [("idle", &n.idle), ("bulk", &n.bulk)] {
            o.num(&format!("node_{name}_seconds"), p.secs);
            for (side, i) in [("follower", 0), ("leader", 1)] {
                o.int(&format!("node_{name}_{side}_batches"), p.batches[i]);
                let d = &p.inter_arrival[i];
                o.num(&format!("node_{name}_{side}_interarrival_p50_ms"), d.p50);
                o.num(&format!("node_{name}_{side}_interarrival_p99_ms"), d.p99);
                o.num(&format!("node_{name}_{side}_interarrival_max_ms"), d.max);
            }
            o.num(
                &format!("node_{name}_sampler_stall_max_ms"),
                p.max_poll_gap_ms,
            );
            o.int(&format!("node_{name}_elections"), p.elections);
            o.int(&format!("node_{name}_leader_changes"), p.leader_changes);
        }
        o.num("node_bulk_committed_mib", n.bulk.committed_mib);
        o.num(
            "node_bulk_commit_mib_per_s",
            n.bulk.committed_mib / n.bulk.secs,
        );
        o.int("node_bulk_failed_proposals", n.bulk.failed_proposals);
        o.bool("node_bulk_capped", n.capped);
        o.bool("wal", self.args.wal);
        o.int("election_ticks", u64::from(self.args.election_ticks));
        o.int("tick_ms", TICK.as_millis() as u64);
        o.finish()
    }

    /// What `--smoke` requires; returns the failures.
    fn smoke_failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        let t = &self.transport;
        for (name, p) in [("idle", &t.idle), ("bulk", &t.bulk)] {
            if p.delay.n == 0 {
                f.push(format!("transport {name}: no probe received"));
            }
            if (p.delay.n as u64) < p.sent {
                f.push(format!(
                    "transport {name}: {} of {} probes lost",
                    p.sent - p.delay.n as u64,
                    p.sent
                ));
            }
            if p.delay.max > SMOKE_MAX_DELAY.as_secs_f64() * 1e3 {
                f.push(format!(
                    "transport {name}: a priority frame took {:.0} ms (limit {} ms)",
                    p.delay.max,
                    SMOKE_MAX_DELAY.as_millis()
                ));
            }
        }
        if t.bulk.bulk_frames == 0 {
            f.push("transport bulk: no bulk frame arrived".into());
        }
        let n = &self.node;
        for (name, p) in [("idle", &n.idle), ("bulk", &n.bulk)] {
            if p.elections != 0 || p.leader_changes != 0 {
                f.push(format!(
                    "node {name}: {} elections and {} leader changes, want 0",
                    p.elections, p.leader_changes
                ));
            }
            if p.batches.contains(&0) {
                f.push(format!(
                    "node {name}: a node received no heartbeat batch ({:?})",
                    p.batches
                ));
            }
        }
        if n.bulk.committed_mib == 0.0 {
            f.push("node bulk: nothing committed".into());
        }
        if n.bulk.failed_proposals != 0 {
            f.push(format!(
                "node bulk: {} proposals failed",
                n.bulk.failed_proposals
            ));
        }
        f
    }
}

fn run(a: &Args) -> Result<Report, String> {
    let phase = Duration::from_secs_f64(a.seconds / 4.0);
    let transport = measure_transport(phase, a.tls)?;
    let node = measure_node(a, phase)?;
    Ok(Report {
        args: a.clone(),
        phase_secs: phase.as_secs_f64(),
        transport,
        node,
    })
}

impl common::Args for Args {
    fn json(&self) -> bool {
        self.json
    }
    fn smoke(&self) -> bool {
        self.smoke
    }
}

fn main() -> ExitCode {
    common::run_main(
        "heartbeat_latency bench",
        "figures are not meaningful",
        parse_args,
        run,
    )
}
