//! Embedded mode: the node's own thread, ticking on a timer, stepping the
//! frames the transport delivers, and driving the node (WAL write, then
//! frames to the transport, then callbacks) — all on one muxraft thread.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use super::codec::{step_frame, OutFrame};
use super::disk::Disk;
use super::drive::{Pass, SharedNode};
use super::error::Error;
use super::host::Host;
use crate::transport::{Transport, TransportConfig, TransportStats};

#[derive(Default)]
struct Inbox {
    frames: VecDeque<(u64, Bytes)>,
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

pub(crate) struct Embedded {
    signal: Arc<Signal>,
    transport: Arc<Transport>,
    thread: Option<JoinHandle<()>>,
}

impl Embedded {
    pub fn start(
        shared: Arc<SharedNode>,
        disk: Option<Arc<Disk>>,
        host: Arc<dyn Host>,
        tick: Duration,
        max_frame: usize,
        listen: SocketAddr,
        peers: &BTreeMap<u64, SocketAddr>,
    ) -> Result<Embedded, Error> {
        let signal = Arc::new(Signal::default());
        let (node_id, cluster_id) = shared.with(|n| {
            let c = n.config();
            (c.node_id, c.cluster_id)
        });
        let mut tcfg = TransportConfig::new(node_id, cluster_id, listen);
        tcfg.max_frame_bytes = max_frame;
        let inbound_signal = signal.clone();
        let transport = Transport::start(
            tcfg,
            Arc::new(move |from, frame| {
                inbound_signal.notify(|i| i.frames.push_back((from, frame)));
            }),
        )
        .map_err(|e| Error::Network(e.to_string()))?;
        for (&id, &addr) in peers {
            transport.add_peer(id, addr);
        }
        let transport = Arc::new(transport);
        let thread = {
            let (signal, transport) = (signal.clone(), transport.clone());
            std::thread::Builder::new()
                .name(format!("muxraft-node-{node_id}"))
                .spawn(move || run(shared, disk, host, signal, transport, tick, max_frame))
                .map_err(|e| Error::Network(format!("cannot spawn the node thread: {e}")))?
        };
        Ok(Embedded {
            signal,
            transport,
            thread: Some(thread),
        })
    }

    pub fn wake(&self) {
        self.signal.notify(|i| i.wake = true);
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

    /// Stop the node thread (it finishes its current pass), then the
    /// transport; returns when both have exited, with the transport's final
    /// counters.
    pub fn stop(mut self) -> TransportStats {
        self.signal.notify(|i| i.stop = true);
        if let Some(t) = self.thread.take() {
            if t.thread().id() == std::thread::current().id() {
                tracing::error!(
                    "muxraft node stopped from its own callback; its thread exits on return"
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

fn run(
    shared: Arc<SharedNode>,
    disk: Option<Arc<Disk>>,
    host: Arc<dyn Host>,
    signal: Arc<Signal>,
    transport: Arc<Transport>,
    tick: Duration,
    max_frame: usize,
) {
    let mut next_tick = Instant::now() + tick;
    let send = |f: OutFrame| transport.send(f.to, f.bytes, f.kind.is_heartbeat());
    let pass = Pass {
        disk: disk.as_deref(),
        send: &send,
        host: host.as_ref(),
    };
    loop {
        let (frames, stop) = {
            let mut inbox = signal.inbox.lock();
            while inbox.frames.is_empty() && !inbox.wake && !inbox.stop {
                if signal.cv.wait_until(&mut inbox, next_tick).timed_out() {
                    break;
                }
            }
            inbox.wake = false;
            (std::mem::take(&mut inbox.frames), inbox.stop)
        };
        if stop {
            shared.with(|n| n.fail_pending_proposals());
            if let Err(e) = shared.drive(&pass) {
                tracing::error!(error = %e, "final pass at stop failed");
            }
            return;
        }
        let now = Instant::now();
        if now >= next_tick {
            shared.with(|n| n.tick());
            next_tick += tick;
            if next_tick < now {
                // Fell behind (a long fsync or a slow callback): do not
                // replay missed ticks in a burst.
                next_tick = now + tick;
            }
        }
        if !frames.is_empty() {
            shared.with(|n| {
                for (from, frame) in frames {
                    // Refused frames are counted in the node's stats.
                    if let Err(e) = step_frame(n, max_frame, Some(from), frame) {
                        tracing::debug!(from, error = %e, "frame refused");
                    }
                }
            });
        }
        if let Err(e) = shared.drive(&pass) {
            // A storage failure: the node refuses all work from now on.
            tracing::error!(error = %e, "node failed; it stops here");
            return;
        }
    }
}
