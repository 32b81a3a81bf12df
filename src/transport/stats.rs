//! The transport's counters.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the transport has done since it started. Every field is a counter
/// except `queued_bytes`, which is the current total over all peers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Handshakes completed (on either side): connections that carried or
    /// could carry frames.
    pub connections_established: u64,
    /// Of those, connections to a peer this node had been connected to
    /// before (the connection was lost or replaced, and came back).
    pub reconnects: u64,
    /// Handshakes this node refused: on the accepting side a bad magic or
    /// version, another cluster, an unknown node id, a node id that should
    /// not dial this node (the lower id dials), or a hello that did not
    /// arrive in time; on the dialing side an answer that is not a valid
    /// hello of the cluster and node it meant to reach; on either side a
    /// peer that fails the cluster secret (below).
    pub handshakes_refused: u64,
    /// Of those, the refusals for the cluster secret: the peer has none and
    /// this node has one, or the reverse, or its proof is wrong (another
    /// secret). Each is logged as a warning with the reason.
    pub auth_refused: u64,
    /// Handshakes the peer refused: dials it answered with a refusal, and
    /// (with a cluster secret) acceptances whose proof the dialer refused.
    pub handshakes_rejected_by_peer: u64,
    /// Of those, the refusals for the cluster secret (this node's proof
    /// was wrong, or one of the two has no secret).
    pub auth_rejected_by_peer: u64,
    /// Handshakes this node refused for TLS (also counted in
    /// `handshakes_refused`): the peer's certificate does not lead to the
    /// cluster CA, does not name the address dialed, or is missing; the
    /// peer does not speak TLS and this node does, or the reverse. Each is
    /// logged as a warning with the reason.
    pub tls_refused: u64,
    /// Handshakes the peer refused for TLS (also counted in
    /// `handshakes_rejected_by_peer`): it sent a TLS alert (it does not
    /// trust this node's certificate, typically).
    pub tls_rejected_by_peer: u64,
    /// Dials that failed before a hello could be exchanged (connection
    /// refused, unreachable, timeout).
    pub dial_failures: u64,
    /// Frames written whole to a socket, and their bytes (prefix included).
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// Frames delivered to the inbound callback, and their bytes.
    pub frames_received: u64,
    pub bytes_received: u64,
    /// Frames dropped before being written: over the queue bound, over the
    /// frame size limit, not a well-formed length-prefixed frame, or
    /// addressed to this node or to node 0.
    pub frames_dropped: u64,
    /// Connections closed because a peer announced a frame over the limit.
    pub oversized_refused: u64,
    /// Connections closed because a peer announced a zero-length frame.
    pub malformed_refused: u64,
    /// Bytes currently queued for all peers (a gauge, not a counter).
    pub queued_bytes: u64,
}

/// The live counters behind [`TransportStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub connections_established: AtomicU64,
    pub reconnects: AtomicU64,
    pub handshakes_refused: AtomicU64,
    pub auth_refused: AtomicU64,
    pub auth_rejected_by_peer: AtomicU64,
    pub handshakes_rejected_by_peer: AtomicU64,
    pub tls_refused: AtomicU64,
    pub tls_rejected_by_peer: AtomicU64,
    pub dial_failures: AtomicU64,
    pub frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub frames_dropped: AtomicU64,
    pub oversized_refused: AtomicU64,
    pub malformed_refused: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub fn snapshot(&self, queued_bytes: u64) -> TransportStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStats {
            connections_established: get(&self.connections_established),
            reconnects: get(&self.reconnects),
            handshakes_refused: get(&self.handshakes_refused),
            auth_refused: get(&self.auth_refused),
            handshakes_rejected_by_peer: get(&self.handshakes_rejected_by_peer),
            auth_rejected_by_peer: get(&self.auth_rejected_by_peer),
            tls_refused: get(&self.tls_refused),
            tls_rejected_by_peer: get(&self.tls_rejected_by_peer),
            dial_failures: get(&self.dial_failures),
            frames_sent: get(&self.frames_sent),
            bytes_sent: get(&self.bytes_sent),
            frames_received: get(&self.frames_received),
            bytes_received: get(&self.bytes_received),
            frames_dropped: get(&self.frames_dropped),
            oversized_refused: get(&self.oversized_refused),
            malformed_refused: get(&self.malformed_refused),
            queued_bytes,
        }
    }
}
