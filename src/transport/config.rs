//! The transport's configuration.

use std::net::SocketAddr;
use std::time::Duration;

use super::auth::ClusterSecret;
use super::tls::TlsConfig;
use crate::wire::DEFAULT_MAX_FRAME_BYTES;

/// Default bound on the bytes queued for one peer: 64 MiB.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 64 << 20;
/// Default first reconnect delay.
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(50);
/// Default longest reconnect delay.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(2);
/// Default limit on connecting plus the whole handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a [`Transport`](super::Transport) runs. Build it with
/// [`TransportConfig::new`] and change the fields that need it.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This node's id (not 0). It is what the handshake announces.
    pub node_id: u64,
    /// The cluster this node belongs to; a peer with another one is refused.
    pub cluster_id: u64,
    /// Where to listen. Port 0 picks a free port, which
    /// [`Transport::local_addr`](super::Transport::local_addr) tells.
    pub listen: SocketAddr,
    /// The longest envelope (bytes after the 4-byte length prefix) accepted
    /// from a peer. A longer length prefix is refused before anything is
    /// allocated for it, and the connection is closed. Frames this node is
    /// asked to send that are over it are dropped and counted: the peer
    /// (assumed configured alike) would refuse them.
    pub max_frame_bytes: usize,
    /// Bound on the bytes queued for one peer (both queues together for
    /// bulk frames). Beyond it bulk frames are dropped and counted (Raft
    /// retransmits); priority frames are not dropped for space while the
    /// peer is connected (they then have a budget of their own of the same
    /// size), only when it is down.
    pub max_queued_bytes: usize,
    /// First delay before redialing a peer after a failed dial or a lost
    /// connection; it doubles on every failure up to `reconnect_max`, with
    /// jitter (each delay is drawn between half and all of its nominal value).
    pub reconnect_min: Duration,
    /// Longest delay between two dials of one peer.
    pub reconnect_max: Duration,
    /// Limit on connecting and the whole handshake (hellos and, with a
    /// cluster secret, proofs), on both sides. A peer that does not
    /// complete the handshake in time is dropped (and counted as refused on
    /// the accepting side), so a silent peer cannot hold a connection slot.
    pub handshake_timeout: Duration,
    /// None: peers are not authenticated (only their cluster and node ids
    /// are checked). Some: every connection proves, both ways, that the
    /// other side has the same secret (see [`handshake`](super::handshake));
    /// a node with a secret and one without refuse each other. Every node
    /// of a cluster needs the same setting.
    pub cluster_secret: Option<ClusterSecret>,
    /// None: connections are plain TCP. Some: every connection is mutual
    /// TLS against the cluster CA first (see [`tls`](super::tls) for what
    /// is verified), and the hello (and the secret's proofs) travel inside
    /// it; a node with TLS and one without refuse each other. Every node of
    /// a cluster needs the same setting.
    pub tls: Option<TlsConfig>,
}

impl TransportConfig {
    /// A configuration with the defaults: frames up to
    /// [`DEFAULT_MAX_FRAME_BYTES`], 64 MiB queued per peer, reconnect delays
    /// from 50 ms to 2 s, a 5 s handshake timeout, no cluster secret and no
    /// TLS.
    pub fn new(node_id: u64, cluster_id: u64, listen: SocketAddr) -> Self {
        TransportConfig {
            node_id,
            cluster_id,
            listen,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            reconnect_min: DEFAULT_RECONNECT_MIN,
            reconnect_max: DEFAULT_RECONNECT_MAX,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            cluster_secret: None,
            tls: None,
        }
    }
}
