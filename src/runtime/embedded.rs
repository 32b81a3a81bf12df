//! Embedded mode: the node's own threads (see [`Io`]), ticking on a timer,
//! stepping the frames the transport delivers, and driving the node (WAL
//! write, then frames to the transport, then callbacks).

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::codec::{decode_checked, encode_only, step_decoded, Checked, OutFrame};
use super::disk::Disk;
use super::drive::{Pass, SharedNode};
use super::error::Error;
use super::host::Host;
use crate::multi::Node;
use crate::transport::{ClusterSecret, TlsConfig, Transport, TransportConfig, TransportStats};

/// What the embedded transport takes from the node's configuration.
pub(crate) struct Link {
    pub listen: SocketAddr,
    pub max_frame: usize,
    pub cluster_secret: Option<ClusterSecret>,
    pub tls: Option<TlsConfig>,
}

/// A frame from a peer, decoded on the transport's thread: checked, or the
/// reason it is refused.
type Decoded = (u64, Result<Checked, Error>);

#[derive(Default)]
struct Inbox {
    frames: VecDeque<Decoded>,
    wake: bool,
    stop: bool,
}

/// What the node thread waits on: frames from the transport, a wake-up
/// after a host call, or the next tick.
#[derive(Default)]
struct Signal {
    inbox: Mutex<Inbox>,
    cv: Condvar,
}

impl Signal {
    fn notify(&self, f: impl FnOnce(&mut Inbox)) {
        f(&mut self.inbox.lock());
        self.cv.notify_one();
    }
}

/// What the writer thread waits on: work for a pass, or the stop.
#[derive(Default)]
struct WriterSignal {
    state: Mutex<WriterState>,
    cv: Condvar,
    /// The writer thread runs: data-path frames go to it, not to the node
    /// thread (which takes them all before the writer starts, and in the
    /// degraded mode without one).
    running: AtomicBool,
}

#[derive(Default)]
struct WriterState {
    work: bool,
    stop: bool,
    /// Appends and their answers for the next pass to step.
    frames: Vec<(u64, Checked)>,
}

impl WriterSignal {
    fn work(&self) {
        self.state.lock().work = true;
        self.cv.notify_one();
    }

    fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// A data-path frame, stepped by the writer right before its next
    /// `ready` (so that it does not cross the node thread first).
    fn frame(&self, from: u64, frame: Checked) {
        let mut st = self.state.lock();
        st.frames.push((from, frame));
        st.work = true;
        drop(st);
        self.cv.notify_one();
    }

    /// The frames waiting, swapped into `into` (empty; the emptied list is
    /// left for the next frames, so neither side allocates per pass).
    fn take_frames(&self, into: &mut Vec<(u64, Checked)>) {
        std::mem::swap(&mut self.state.lock().frames, into);
    }

    fn stop(&self) {
        self.state.lock().stop = true;
        self.cv.notify_one();
    }

    /// Wait for work or the stop; returns whether to stop. The flag is
    /// taken: work that arrives during the pass sets it again.
    fn wait(&self) -> bool {
        let mut st = self.state.lock();
        while !st.work && !st.stop {
            self.cv.wait(&mut st);
        }
        st.work = false;
        st.stop
    }
}

pub(crate) struct Embedded {
    signal: Arc<Signal>,
    writer: Arc<WriterSignal>,
    transport: Arc<Transport>,
    thread: Option<JoinHandle<()>>,
    /// The writer thread, which runs the host's callbacks.
    writer_thread: Arc<Mutex<Option<std::thread::ThreadId>>>,
}

impl Embedded {
    pub fn start(
        shared: Arc<SharedNode>,
        disk: Option<Arc<Disk>>,
        host: Arc<dyn Host>,
        tick: Duration,
        link: Link,
        peers: &BTreeMap<u64, SocketAddr>,
    ) -> Result<Embedded, Error> {
        let signal = Arc::new(Signal::default());
        let writer = Arc::new(WriterSignal::default());
        let (node_id, cluster_id) = shared.with(|n| {
            let c = n.config();
            (c.node_id, c.cluster_id)
        });
        let max_frame = link.max_frame;
        let mut tcfg = TransportConfig::new(node_id, cluster_id, link.listen);
        tcfg.max_frame_bytes = max_frame;
        tcfg.cluster_secret = link.cluster_secret;
        tcfg.tls = link.tls;
        let (inbound_signal, inbound_writer) = (signal.clone(), writer.clone());
        let transport = Transport::start(
            tcfg,
            // Decoded here, on the transport's thread, where the bytes
            // are: appends and their answers go straight to the writer,
            // the rest (heartbeats, votes, snapshots, refusals) to the
            // node thread.
            Arc::new(move |from, frame| {
                match decode_checked(cluster_id, max_frame, Some(from), frame) {
                    Ok(c) if c.is_bulk() && inbound_writer.running() => {
                        inbound_writer.frame(from, c)
                    }
                    d => inbound_signal.notify(|i| i.frames.push_back((from, d))),
                }
            }),
        )
        .map_err(|e| Error::Network(e.to_string()))?;
        for (&id, &addr) in peers {
            transport.add_peer(id, addr);
        }
        let transport = Arc::new(transport);
        let writer_thread = Arc::new(Mutex::new(None));
        let thread = {
            let (signal, writer, transport, writer_thread) = (
                signal.clone(),
                writer.clone(),
                transport.clone(),
                writer_thread.clone(),
            );
            crate::logging::spawn(
                std::thread::Builder::new().name(format!("muxraft-node-{node_id}")),
                move || {
                    let io = Io {
                        shared,
                        disk,
                        host,
                        signal,
                        writer,
                        transport,
                        tick,
                        node_id,
                    };
                    io.run(&writer_thread)
                },
            )
            .map_err(|e| Error::Network(format!("cannot spawn the node thread: {e}")))?
        };
        Ok(Embedded {
            signal,
            writer,
            transport,
            thread: Some(thread),
            writer_thread,
        })
    }

    /// A host call left work for a pass.
    pub fn wake(&self) {
        self.writer.work();
    }

    pub fn add_peer(&self, id: u64, addr: SocketAddr) {
        self.transport.add_peer(id, addr);
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    pub fn transport_stats(&self) -> TransportStats {
        self.transport.stats()
    }

    /// Stop the node's threads (the writer finishes its current pass and
    /// runs the last one), then the transport; returns when all have
    /// exited, with the transport's final counters.
    pub fn stop(mut self) -> TransportStats {
        self.signal.notify(|i| i.stop = true);
        if let Some(t) = self.thread.take() {
            let me = std::thread::current().id();
            if *self.writer_thread.lock() == Some(me) || t.thread().id() == me {
                tracing::error!(
                    "muxraft node stopped from its own callback; its threads exit on return"
                );
            } else if t.join().is_err() {
                tracing::error!("muxraft node thread panicked");
            }
        }
        let stats = self.transport.stats();
        match Arc::try_unwrap(self.transport) {
            Ok(t) => t.stop(),
            Err(_) => tracing::error!("transport still referenced at stop"),
        }
        stats
    }
}

/// The node's two threads and what they share.
///
/// * The transport's thread decodes every frame and routes it:
///   appends and their answers to the writer, everything else to the node
///   thread (all of them to the node thread until the writer runs).
/// * The **node thread** (`Io::run`) takes the other inputs: ticks on the
///   timer, heartbeats, votes, snapshot chunks. After each, it sends at
///   once the heartbeat batches and answers the node routed
///   (`Node::take_liveness`: rows of groups whose state is durable), and
///   tells the writer when there is work for a pass. It never waits for
///   the disk, so heartbeats keep their interval while an fsync runs.
/// * The **writer thread** runs the drive loop (`SharedNode::drive`): step
///   the appends and answers that arrived meanwhile, take the
///   `NodeReady`, write and fsync it (group commit: everything that
///   arrived during the previous fsync goes in the next one), send what
///   depended on it, deliver the callbacks, advance. The host's callbacks
///   run on it, one at a time.
///
/// The node's lock is held by either only for short steps; it is never
/// held across an fsync or a callback.
struct Io {
    shared: Arc<SharedNode>,
    disk: Option<Arc<Disk>>,
    host: Arc<dyn Host>,
    signal: Arc<Signal>,
    writer: Arc<WriterSignal>,
    transport: Arc<Transport>,
    tick: Duration,
    node_id: u64,
}

impl Io {
    fn run(self, writer_thread: &Mutex<Option<std::thread::ThreadId>>) {
        let writer = {
            let (shared, disk, host, signal, transport) = (
                self.shared.clone(),
                self.disk.clone(),
                self.host.clone(),
                self.writer.clone(),
                self.transport.clone(),
            );
            crate::logging::spawn(
                std::thread::Builder::new().name(format!("muxraft-wal-{}", self.node_id)),
                move || write_loop(shared, disk, host, signal, transport),
            )
        };
        let writer = match writer {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot spawn the writer thread; the node runs without it");
                // Degraded: one thread does both, as before the writer.
                return self.input_loop(true);
            }
        };
        *writer_thread.lock() = Some(writer.thread().id());
        self.writer.running.store(true, Ordering::Release);
        self.input_loop(false);
        self.writer.stop();
        if writer.join().is_err() {
            tracing::error!("muxraft writer thread panicked");
        }
    }

    /// Ticks and frames until the stop. `drive_here`: no writer thread.
    fn input_loop(&self, drive_here: bool) {
        let mut next_tick = Instant::now() + self.tick;
        let mut refusals = Refusals::default();
        let send = |f: OutFrame| self.transport.send(f.to, f.bytes, f.kind.is_heartbeat());
        let pass = Pass {
            disk: self.disk.as_deref(),
            send: &send,
            host: self.host.as_ref(),
            inbound: None,
        };
        loop {
            let (frames, wake, stop) = {
                let mut inbox = self.signal.inbox.lock();
                while inbox.frames.is_empty() && !inbox.wake && !inbox.stop {
                    if self.signal.cv.wait_until(&mut inbox, next_tick).timed_out() {
                        break;
                    }
                }
                let wake = std::mem::take(&mut inbox.wake);
                (std::mem::take(&mut inbox.frames), wake, inbox.stop)
            };
            if stop {
                if drive_here {
                    final_pass(&self.shared, &pass);
                }
                return;
            }
            let now = Instant::now();
            let mut input = wake;
            if now >= next_tick {
                self.shared.tick();
                input = true;
                next_tick += self.tick;
                if next_tick < now {
                    // Fell behind (a slow callback in the degraded mode, or
                    // a descheduled thread): do not replay missed ticks.
                    next_tick = now + self.tick;
                }
            }
            if !frames.is_empty() {
                input = true;
                // Decoded on the transport's thread, before the node's
                // lock is taken: only stepping needs the node, and the
                // writer's pass and the host's proposals wait while the
                // lock is held.
                self.shared.with(|n| {
                    for (from, d) in frames {
                        // Refused frames are counted in the node's stats.
                        let stepped = d
                            .inspect_err(|_| n.record_rejected())
                            .and_then(|d| step_decoded(n, d));
                        if let Err(e) = stepped {
                            refusals.refused(Instant::now(), from, &e);
                        }
                    }
                });
            }
            if !input {
                continue;
            }
            if drive_here {
                if let Err(e) = self.shared.drive(&pass) {
                    tracing::error!(error = %e, "node failed; it stops here");
                    return;
                }
                continue;
            }
            // Heartbeats first, without waiting for a pass in flight.
            let (liveness, cluster_id, more) = self
                .shared
                .with(|n| (n.take_liveness(), n.config().cluster_id, n.has_ready()));
            if !liveness.is_empty() {
                let frames: Vec<OutFrame> = liveness
                    .iter()
                    .map(|m| encode_only(cluster_id, m))
                    .collect();
                self.shared.with(|n| {
                    for f in &frames {
                        n.record_bytes_sent(f.kind, f.bytes.len());
                    }
                });
                for f in frames {
                    send(f);
                }
            }
            if more {
                self.writer.work();
            }
        }
    }
}

/// Frames from peers the node refused, for the log: the reason of one per
/// second at most at WARN, with how many were refused since the last line
/// (a broken peer may send thousands a second), each one at DEBUG.
#[derive(Default)]
struct Refusals {
    last_line: Option<Instant>,
    since_line: u64,
}

impl Refusals {
    fn refused(&mut self, now: Instant, from: u64, e: &Error) {
        tracing::debug!(from, error = %e, "frame refused");
        if self
            .last_line
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            self.since_line += 1;
            return;
        }
        let more = std::mem::take(&mut self.since_line);
        self.last_line = Some(now);
        tracing::warn!(from, more_since_last_line = more, "frame refused: {e}");
    }
}

/// The writer thread: a pass whenever there is work, until the stop; then
/// the last pass, which reports the proposals still waiting.
fn write_loop(
    shared: Arc<SharedNode>,
    disk: Option<Arc<Disk>>,
    host: Arc<dyn Host>,
    signal: Arc<WriterSignal>,
    transport: Arc<Transport>,
) {
    let send = |f: OutFrame| transport.send(f.to, f.bytes, f.kind.is_heartbeat());
    let (frames, refusals) = (RefCell::new(Vec::new()), RefCell::new(Refusals::default()));
    // Under the node's lock, right before each `ready`: the appends and
    // answers that arrived while the previous pass was being written.
    let inbound = |n: &mut Node| {
        let mut frames = frames.borrow_mut();
        signal.take_frames(&mut frames);
        for (from, c) in frames.drain(..) {
            if let Err(e) = step_decoded(n, c) {
                refusals.borrow_mut().refused(Instant::now(), from, &e);
            }
        }
    };
    let pass = Pass {
        disk: disk.as_deref(),
        send: &send,
        host: host.as_ref(),
        inbound: Some(&inbound),
    };
    loop {
        if signal.wait() {
            final_pass(&shared, &pass);
            return;
        }
        if let Err(e) = shared.drive(&pass) {
            // A storage failure: the node refuses all work from now on.
            tracing::error!(error = %e, "node failed; it stops here");
            return;
        }
    }
}

fn final_pass(shared: &SharedNode, pass: &Pass) {
    shared.with(|n| n.fail_pending_proposals());
    if let Err(e) = shared.drive(pass) {
        tracing::error!(error = %e, "final pass at stop failed");
    }
}
