//! The state the transport's tasks and its handle share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use super::peer::Peer;
use super::stats::Counters;
use super::{Inbound, TransportConfig};

pub(crate) struct Shared {
    pub cfg: TransportConfig,
    pub inbound: Inbound,
    pub stats: Counters,
    /// Connections accepted whose handshake is not finished yet.
    pub pending_handshakes: AtomicUsize,
    peers: RwLock<HashMap<u64, Arc<Peer>>>,
    next_generation: AtomicU64,
}

impl Shared {
    pub fn new(cfg: TransportConfig, inbound: Inbound) -> Self {
        Shared {
            cfg,
            inbound,
            stats: Counters::default(),
            pending_handshakes: AtomicUsize::new(0),
            peers: RwLock::new(HashMap::new()),
            next_generation: AtomicU64::new(1),
        }
    }

    pub fn peer(&self, id: u64) -> Option<Arc<Peer>> {
        self.peers.read().get(&id).cloned()
    }

    /// The peer, created (unknown, without address) if needed.
    pub fn peer_or_insert(&self, id: u64) -> Arc<Peer> {
        if let Some(peer) = self.peer(id) {
            return peer;
        }
        self.peers
            .write()
            .entry(id)
            .or_insert_with(|| Arc::new(Peer::new(id)))
            .clone()
    }

    /// The peer if it was added with `add_peer`.
    pub fn known_peer(&self, id: u64) -> Option<Arc<Peer>> {
        self.peer(id).filter(|p| p.is_known())
    }

    /// A number no other connection of this transport has.
    pub fn next_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Ordering::Relaxed)
    }

    /// Bytes queued for all peers.
    pub fn queued_bytes(&self) -> u64 {
        self.peers
            .read()
            .values()
            .map(|p| p.queue.lock().queued_bytes() as u64)
            .sum()
    }
}
