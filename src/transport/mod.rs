//! The TCP transport of the embedded mode: moves length-prefixed frames
//! between nodes and decides nothing about Raft.
//!
//! # Connections
//!
//! There is exactly one TCP connection per pair of nodes, used in both
//! directions: the node with the lower id dials, the one with the higher id
//! only accepts, and only from lower ids it knows. The connection opens with
//! a handshake (see [`handshake`]) carrying the protocol version, the cluster
//! id and the node id; a peer with another cluster, an unknown node id, the
//! wrong dialing direction or another version is refused and counted. With
//! a cluster secret configured, both sides also prove they know it (a keyed
//! MAC over fresh nonces, never the secret itself); a peer that fails, or
//! that has no secret, is refused, counted and logged. With TLS configured
//! (see [`tls`]), every connection is mutual TLS against the cluster CA
//! before the hello, which travels inside it; a peer that fails TLS, or
//! does not speak it, is refused, counted and logged. If a
//! second connection from the same peer arrives (the peer restarted, or its
//! old connection is half-dead), the newer replaces the older, which is
//! closed.
//!
//! The dialer redials forever, until [`Transport::stop`], after a failed
//! dial or a lost connection, with exponential backoff and jitter between
//! `reconnect_min` and `reconnect_max`.
//!
//! # Frames
//!
//! A frame is what [`crate::wire`] defines: a 4-byte big-endian length, then
//! that many bytes. The reader checks the length with
//! [`wire::frame_length`](crate::wire::frame_length) before allocating
//! anything; a length over `max_frame_bytes` (or zero) means a broken peer:
//! its connection is closed and counted. Every whole frame, prefix included,
//! goes to the [`Inbound`] callback with the peer's authenticated node id;
//! a partial frame (a connection that died mid-frame) is never delivered.
//!
//! # Queues and priority
//!
//! [`Transport::send`] never blocks: it queues the frame for the peer and
//! wakes its writer. Each peer has two queues, priority (heartbeat batches
//! and their answers) and bulk (everything else). The writer of a connection
//! gathers queued frames, priority frames first, into one vectored write of
//! up to 64 KiB (or one larger frame), so a priority frame waits at most for
//! the write in progress when it was queued (plus what the kernel's socket
//! buffer already holds): heartbeats never wait behind a backlog of large
//! appends, and many small frames cost one syscall. The
//! bytes queued per peer are bounded by `max_queued_bytes`: beyond it bulk
//! frames are dropped and counted (Raft retransmits); priority frames are
//! not dropped for space while the peer is connected, only while it is down.
//! Frames for a peer that is not connected (or not added yet) wait in its
//! queues, within the bound, and go out once it is connected.
//!
//! # What a lost connection loses
//!
//! Frames still queued when a connection dies stay queued and go out on the
//! next connection. The frames being written when it dies are put back at
//! the front of their queues, in order, if none of their bytes had been
//! written; a frame written in part is lost, and so are frames already handed to the kernel that the peer
//! never read. The receiver never delivers the partial frame (it reads whole
//! frames or nothing), and Raft retransmits whatever was lost. Lost frames
//! are not counted (the transport cannot know which ones the peer read).
//!
//! # Threads
//!
//! The transport runs on one dedicated thread (named `muxraft-tx-<node id>`)
//! with a tokio current-thread runtime that it owns. The inbound callback is
//! called from that thread and must return quickly (push the frame to a
//! queue): while it runs, no connection of this node reads or writes.
//! [`Transport::stop`] (or dropping the transport) closes every connection
//! and the listener and joins the thread.

pub mod auth;
mod backoff;
mod config;
mod connection;
mod dialer;
pub mod handshake;
mod listener;
mod peer;
mod queue;
mod shared;
mod stats;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::oneshot;

pub use auth::ClusterSecret;
pub use config::{
    TransportConfig, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_RECONNECT_MAX,
    DEFAULT_RECONNECT_MIN,
};
pub use stats::TransportStats;
pub use tls::{TlsConfig, TlsConfigError};

use crate::wire::FRAME_HEADER_LEN;
use shared::Shared;
use stats::bump;

/// Called from the transport thread with every frame a peer sent (whole
/// frame, length prefix included, as [`crate::wire::decode_frame`]
/// expects) and the authenticated node id of that peer. It must be quick
/// and must not panic.
pub type Inbound = Arc<dyn Fn(u64, Bytes) + Send + Sync>;

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Binding the listener or spawning the thread failed.
    #[error("transport i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration cannot work.
    #[error("invalid transport configuration: {0}")]
    Config(String),
}

/// A running transport. See the [module documentation](self).
pub struct Transport {
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Transport {
    /// Binds the listener, spawns the transport thread and returns.
    pub fn start(cfg: TransportConfig, inbound: Inbound) -> Result<Transport, TransportError> {
        if cfg.node_id == 0 {
            return Err(TransportError::Config("node id 0 is not a node".into()));
        }
        if cfg.max_frame_bytes == 0 {
            return Err(TransportError::Config("max_frame_bytes is 0".into()));
        }
        let std_listener = std::net::TcpListener::bind(cfg.listen)?;
        std_listener.set_nonblocking(true)?;
        let local_addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let handle = runtime.handle().clone();
        let node_id = cfg.node_id;
        let shared = Arc::new(Shared::new(cfg, inbound));
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let thread = {
            let shared = shared.clone();
            crate::logging::spawn(
                std::thread::Builder::new().name(format!("muxraft-tx-{node_id}")),
                move || {
                    // Every socket write happens on this thread: a peer that
                    // closed its end must not raise SIGPIPE in the host.
                    if let Err(err) = crate::ffi::os::block_sigpipe_on_this_thread() {
                        tracing::warn!(%err, "could not block SIGPIPE on the transport thread");
                    }
                    runtime.block_on(async move {
                        tokio::select! {
                            _ = listener::accept_loop(shared, listener) => {}
                            _ = shutdown_rx => {}
                        }
                    });
                    // Dropping the runtime drops every task: connections and
                    // the listener close here, before the thread exits.
                    drop(runtime);
                },
            )?
        };
        tracing::debug!(node = node_id, %local_addr, "transport started");
        Ok(Transport {
            shared,
            handle,
            local_addr,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    /// The address the listener is bound to (with the real port when the
    /// configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Adds a peer, or changes its address. A peer with a higher id than
    /// this node is dialed (and redialed on an address change); one with a
    /// lower id may connect to this node. Adding this node itself, or node
    /// 0, is ignored.
    pub fn add_peer(&self, node_id: u64, addr: SocketAddr) {
        if node_id == 0 || node_id == self.shared.cfg.node_id {
            tracing::warn!(peer = node_id, "add_peer ignored: not another node");
            return;
        }
        let peer = self.shared.peer_or_insert(node_id);
        peer.known.store(true, std::sync::atomic::Ordering::Release);
        peer.set_addr(addr);
        if node_id > self.shared.cfg.node_id
            && !peer
                .dialer_started
                .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            self.handle
                .spawn(dialer::dial_loop(self.shared.clone(), peer));
        }
    }

    /// Queues a whole frame (length prefix included) for `to`; never
    /// blocks. `priority` frames (heartbeat batches and their answers) are
    /// written before any queued bulk frame. A frame for a peer that is not
    /// connected, or not added yet, waits (bounded) until it is. Dropped and
    /// counted: over the queue bound, over `max_frame_bytes`, not a
    /// well-formed length-prefixed frame, or addressed to this node or 0.
    pub fn send(&self, to: u64, frame: Bytes, priority: bool) {
        let cfg = &self.shared.cfg;
        if to == 0 || to == cfg.node_id {
            self.drop_frame(to, "not another node");
            return;
        }
        if !well_formed(&frame, cfg.max_frame_bytes) {
            self.drop_frame(to, "not a frame within the size limit");
            return;
        }
        let peer = self.shared.peer_or_insert(to);
        if !peer.enqueue(frame, priority, cfg.max_queued_bytes) {
            self.drop_frame(to, "queue full");
        }
    }

    fn drop_frame(&self, to: u64, why: &str) {
        bump(&self.shared.stats.frames_dropped);
        tracing::debug!(peer = to, why, "frame dropped");
    }

    /// The counters so far.
    pub fn stats(&self) -> TransportStats {
        self.shared.stats.snapshot(self.shared.queued_bytes())
    }

    /// Is there an established connection to `peer`?
    pub fn connected(&self, peer: u64) -> bool {
        self.shared.peer(peer).is_some_and(|p| p.is_connected())
    }

    /// Closes every connection and the listener, stops the thread, and
    /// returns once it has exited. Frames still queued are dropped.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() == std::thread::current().id() {
                // Stopped from the inbound callback: the runtime ends when
                // the callback returns, and the thread exits on its own.
                tracing::error!("transport stopped from its own thread; not joined");
            } else if thread.join().is_err() {
                tracing::error!("transport thread panicked");
            }
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Is `frame` exactly one frame: a valid length prefix (not 0, not over
/// `max`) followed by exactly that many bytes?
fn well_formed(frame: &[u8], max: usize) -> bool {
    let Some(header) = frame.first_chunk::<FRAME_HEADER_LEN>() else {
        return false;
    };
    crate::wire::frame_length(*header, max).is_ok_and(|len| len == frame.len() - FRAME_HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn transport_can_be_shared_between_threads() {
        assert_send_sync::<Transport>();
    }

    #[test]
    fn well_formed_frames_only() {
        assert!(well_formed(&[0, 0, 0, 2, 7, 7], 8));
        assert!(!well_formed(&[0, 0, 0, 2, 7], 8), "short");
        assert!(!well_formed(&[0, 0, 0, 1, 7, 7], 8), "long");
        assert!(!well_formed(&[0, 0, 0, 0], 8), "empty envelope");
        assert!(!well_formed(&[0, 0], 8), "no prefix");
        assert!(
            !well_formed(&[0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8),
            "over max"
        );
    }
}
