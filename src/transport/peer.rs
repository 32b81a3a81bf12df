//! What the transport keeps per peer: its address, its outbound queues, and
//! its current connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch, Notify};

use super::queue::OutQueue;
use super::stats::{bump, Counters};

/// One peer. Created by `add_peer`, or by `send` to a node not added yet
/// (its frames wait, bounded, until it is added and connected); never
/// removed while the transport runs.
pub(crate) struct Peer {
    pub id: u64,
    /// Added with `add_peer`: only such peers may connect to us.
    pub known: AtomicBool,
    /// The dialer task has been spawned (only for peers with a higher id).
    pub dialer_started: AtomicBool,
    /// The address to dial; the dialer watches it to redial on a change.
    pub addr: watch::Sender<Option<SocketAddr>>,
    /// The frames waiting to be written.
    pub queue: Mutex<OutQueue>,
    /// Wakes the writer when a frame is queued.
    pub wake: Notify,
    /// Held by the writer of the current connection, so that a replacing
    /// connection starts writing only once the old writer has stopped:
    /// there is never more than one writer taking frames from the queue.
    pub writer: tokio::sync::Mutex<()>,
    conn: Mutex<Option<ConnSlot>>,
    connected: AtomicBool,
    ever_connected: AtomicBool,
}

/// The current connection: its generation, and the sender whose drop tells
/// its task to close it.
struct ConnSlot {
    generation: u64,
    _close: oneshot::Sender<()>,
}

impl Peer {
    pub fn new(id: u64) -> Self {
        let (addr, _) = watch::channel(None);
        Peer {
            id,
            known: AtomicBool::new(false),
            dialer_started: AtomicBool::new(false),
            addr,
            queue: Mutex::new(OutQueue::default()),
            wake: Notify::new(),
            writer: tokio::sync::Mutex::new(()),
            conn: Mutex::new(None),
            connected: AtomicBool::new(false),
            ever_connected: AtomicBool::new(false),
        }
    }

    pub fn is_known(&self) -> bool {
        self.known.load(Ordering::Acquire)
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Sets the address; returns whether it changed.
    pub fn set_addr(&self, addr: SocketAddr) -> bool {
        self.addr.send_if_modified(|current| {
            if *current == Some(addr) {
                false
            } else {
                *current = Some(addr);
                true
            }
        })
    }

    /// Queues a frame (see [`OutQueue::push`]) and wakes the writer;
    /// returns whether it was queued.
    pub fn enqueue(&self, frame: Bytes, priority: bool, max_queued: usize) -> bool {
        let queued = self
            .queue
            .lock()
            .push(frame, priority, self.is_connected(), max_queued);
        if queued {
            self.wake.notify_one();
        }
        queued
    }

    /// Makes a freshly handshaken connection the current one, closing the
    /// previous one if any (the newer connection wins). The returned guard
    /// detaches it when the connection's task ends, however it ends.
    pub fn attach(
        self: &Arc<Self>,
        generation: u64,
        close: oneshot::Sender<()>,
        stats: &Counters,
    ) -> ConnGuard {
        let mut conn = self.conn.lock();
        // Dropping the old slot drops its close sender: its task sees it and
        // closes the old connection.
        let old = conn.replace(ConnSlot {
            generation,
            _close: close,
        });
        self.connected.store(true, Ordering::Release);
        drop(conn);
        if let Some(old) = old {
            tracing::debug!(
                peer = self.id,
                old = old.generation,
                new = generation,
                "a newer connection replaces the current one"
            );
        }
        bump(&stats.connections_established);
        if self.ever_connected.swap(true, Ordering::AcqRel) {
            bump(&stats.reconnects);
        }
        ConnGuard {
            peer: self.clone(),
            generation,
        }
    }
}

/// Detaches a connection from its peer when dropped, unless a newer one has
/// replaced it already.
pub(crate) struct ConnGuard {
    peer: Arc<Peer>,
    generation: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut conn = self.peer.conn.lock();
        if conn.as_ref().map(|c| c.generation) == Some(self.generation) {
            *conn = None;
            self.peer.connected.store(false, Ordering::Release);
        }
    }
}
