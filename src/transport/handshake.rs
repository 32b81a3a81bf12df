//! The handshake that opens every connection, before any frame.
//!
//! The dialer (the node with the lower id) sends a fixed-size hello:
//!
//! ```text
//! magic "MUXR" (4 bytes) | protocol version (u32) | cluster id (u64) | node id (u64)
//! ```
//!
//! all big-endian, [`HELLO_LEN`] bytes in all. The acceptor checks the magic,
//! the version ([`PROTOCOL_VERSION`]), the cluster id (equal to its own),
//! and the node id: a peer it knows (added with
//! [`Transport::add_peer`](super::Transport::add_peer)) whose id is lower
//! than its own, since only the lower id of a pair dials. If all hold it
//! answers with its own hello; otherwise it answers with a refusal of the
//! same size — magic "MUXX", the [`RefuseReason`] code where the version
//! goes, zeros after — closes the connection and counts it. The dialer
//! checks the answer in turn: a hello with the right magic, version and
//! cluster, from the node it meant to reach; anything else and it closes
//! the connection and counts it. Both sides bound the whole exchange with
//! the handshake timeout.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::peer::Peer;
use super::shared::Shared;
use super::stats::bump;
use crate::wire::PROTOCOL_VERSION;

/// Bytes of a hello, and of a refusal.
pub const HELLO_LEN: usize = 24;
/// First bytes of a hello.
pub const HELLO_MAGIC: [u8; 4] = *b"MUXR";
/// First bytes of a refusal.
pub const REFUSAL_MAGIC: [u8; 4] = *b"MUXX";

/// What a node says about itself when a connection opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub version: u32,
    pub cluster_id: u64,
    pub node_id: u64,
}

impl Hello {
    /// The hello of a node speaking this build's protocol version.
    pub fn new(cluster_id: u64, node_id: u64) -> Self {
        Hello {
            version: PROTOCOL_VERSION,
            cluster_id,
            node_id,
        }
    }

    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut buf = [0u8; HELLO_LEN];
        buf[0..4].copy_from_slice(&HELLO_MAGIC);
        buf[4..8].copy_from_slice(&self.version.to_be_bytes());
        buf[8..16].copy_from_slice(&self.cluster_id.to_be_bytes());
        buf[16..24].copy_from_slice(&self.node_id.to_be_bytes());
        buf
    }
}

/// Why an acceptor refused a hello. The numbers are the wire codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefuseReason {
    #[error("not a muxraft hello")]
    BadMagic = 1,
    #[error("unsupported protocol version")]
    Version = 2,
    #[error("another cluster")]
    Cluster = 3,
    #[error("unknown node id")]
    UnknownNode = 4,
    #[error("the lower node id must dial")]
    WrongDirection = 5,
}

impl RefuseReason {
    pub fn code(self) -> u32 {
        self as u32
    }

    pub fn from_code(code: u32) -> Option<Self> {
        [
            RefuseReason::BadMagic,
            RefuseReason::Version,
            RefuseReason::Cluster,
            RefuseReason::UnknownNode,
            RefuseReason::WrongDirection,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// The refusal message carrying this reason.
    pub fn encode(self) -> [u8; HELLO_LEN] {
        let mut buf = [0u8; HELLO_LEN];
        buf[0..4].copy_from_slice(&REFUSAL_MAGIC);
        buf[4..8].copy_from_slice(&self.code().to_be_bytes());
        buf
    }
}

/// A [`HELLO_LEN`]-byte handshake message, read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeMessage {
    /// A hello; its version and ids are not checked yet.
    Hello(Hello),
    /// A refusal with its code (an unknown code is kept as is).
    Refusal(u32),
    /// Neither.
    Garbage,
}

impl HandshakeMessage {
    pub fn decode(buf: &[u8; HELLO_LEN]) -> Self {
        let u32_at =
            |at: usize| u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let u64_at = |at: usize| (u64::from(u32_at(at)) << 32) | u64::from(u32_at(at + 4));
        if buf[0..4] == HELLO_MAGIC {
            HandshakeMessage::Hello(Hello {
                version: u32_at(4),
                cluster_id: u64_at(8),
                node_id: u64_at(16),
            })
        } else if buf[0..4] == REFUSAL_MAGIC {
            HandshakeMessage::Refusal(u32_at(4))
        } else {
            HandshakeMessage::Garbage
        }
    }
}

/// The acceptor's decision on a dialer's hello: `Ok` with the dialer's node
/// id, or the reason to refuse it. `is_known` says whether a node id was
/// added as a peer.
pub(crate) fn check_dialer(
    msg: HandshakeMessage,
    own: Hello,
    is_known: impl Fn(u64) -> bool,
) -> Result<u64, RefuseReason> {
    let HandshakeMessage::Hello(hello) = msg else {
        return Err(RefuseReason::BadMagic);
    };
    if hello.version != PROTOCOL_VERSION {
        return Err(RefuseReason::Version);
    }
    if hello.cluster_id != own.cluster_id {
        return Err(RefuseReason::Cluster);
    }
    if hello.node_id == 0 || hello.node_id == own.node_id || !is_known(hello.node_id) {
        return Err(RefuseReason::UnknownNode);
    }
    if hello.node_id > own.node_id {
        return Err(RefuseReason::WrongDirection);
    }
    Ok(hello.node_id)
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("refused the peer's hello: {0}")]
    Refused(RefuseReason),
    #[error("the peer refused our hello (code {0})")]
    RejectedByPeer(u32),
    #[error("bad answer: {0}")]
    BadAnswer(String),
}

/// The accepting side: reads and checks the dialer's hello, answers, and
/// returns the authenticated peer. Refusals are answered and counted here;
/// the caller counts a timeout.
pub(crate) async fn accept(
    shared: &Shared,
    stream: &mut TcpStream,
) -> Result<Arc<Peer>, HandshakeError> {
    let mut buf = [0u8; HELLO_LEN];
    if let Err(err) = stream.read_exact(&mut buf).await {
        bump(&shared.stats.handshakes_refused);
        return Err(err.into());
    }
    let own = Hello::new(shared.cfg.cluster_id, shared.cfg.node_id);
    let checked = check_dialer(HandshakeMessage::decode(&buf), own, |id| {
        shared.known_peer(id).is_some()
    });
    // The peer is looked up again: it cannot be forgotten in between (peers
    // are never removed), but this keeps the check and the lookup together.
    let peer = checked.and_then(|id| shared.known_peer(id).ok_or(RefuseReason::UnknownNode));
    match peer {
        Ok(peer) => {
            stream.write_all(&own.encode()).await?;
            Ok(peer)
        }
        Err(reason) => {
            bump(&shared.stats.handshakes_refused);
            // Best effort: the connection is closed either way.
            let _ = stream.write_all(&reason.encode()).await;
            let _ = stream.shutdown().await;
            Err(HandshakeError::Refused(reason))
        }
    }
}

/// The dialing side: connects to `addr`, sends our hello and checks the
/// answer is the hello of `peer_id` in our cluster. Failures are counted
/// here; the caller counts a timeout.
pub(crate) async fn dial(
    shared: &Shared,
    peer_id: u64,
    addr: SocketAddr,
) -> Result<TcpStream, HandshakeError> {
    let mut stream = match exchange(shared, addr).await {
        Ok(stream) => stream,
        Err(err) => {
            bump(&shared.stats.dial_failures);
            return Err(err);
        }
    };
    let mut buf = [0u8; HELLO_LEN];
    if let Err(err) = stream.read_exact(&mut buf).await {
        bump(&shared.stats.dial_failures);
        return Err(err.into());
    }
    let result = match HandshakeMessage::decode(&buf) {
        HandshakeMessage::Hello(hello) if hello.version != PROTOCOL_VERSION => Err(
            HandshakeError::BadAnswer(format!("protocol version {}", hello.version)),
        ),
        HandshakeMessage::Hello(hello) if hello.cluster_id != shared.cfg.cluster_id => Err(
            HandshakeError::BadAnswer(format!("cluster {}", hello.cluster_id)),
        ),
        HandshakeMessage::Hello(hello) if hello.node_id != peer_id => Err(
            HandshakeError::BadAnswer(format!("node {} answered", hello.node_id)),
        ),
        HandshakeMessage::Hello(_) => Ok(stream),
        HandshakeMessage::Refusal(code) => {
            bump(&shared.stats.handshakes_rejected_by_peer);
            return Err(HandshakeError::RejectedByPeer(code));
        }
        HandshakeMessage::Garbage => Err(HandshakeError::BadAnswer("not a hello".into())),
    };
    if result.is_err() {
        bump(&shared.stats.handshakes_refused);
    }
    result
}

/// Connects and sends our hello.
async fn exchange(shared: &Shared, addr: SocketAddr) -> Result<TcpStream, HandshakeError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let hello = Hello::new(shared.cfg.cluster_id, shared.cfg.node_id);
    stream.write_all(&hello.encode()).await?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_and_refusal_round_trip() {
        let hello = Hello::new(0xC1, 7);
        assert_eq!(
            HandshakeMessage::decode(&hello.encode()),
            HandshakeMessage::Hello(hello)
        );
        for code in 1..=5 {
            let reason = RefuseReason::from_code(code).expect("known code");
            assert_eq!(
                HandshakeMessage::decode(&reason.encode()),
                HandshakeMessage::Refusal(code)
            );
        }
        assert_eq!(RefuseReason::from_code(0), None);
        assert_eq!(
            HandshakeMessage::decode(&[0xAB; HELLO_LEN]),
            HandshakeMessage::Garbage
        );
    }

    #[test]
    fn acceptor_checks_magic_version_cluster_identity_and_direction() {
        let own = Hello::new(9, 5);
        let known = |id: u64| id == 1 || id == 8;
        let check = |h: Hello| check_dialer(HandshakeMessage::Hello(h), own, known);
        assert_eq!(check(Hello::new(9, 1)), Ok(1));
        assert_eq!(
            check_dialer(HandshakeMessage::Garbage, own, known),
            Err(RefuseReason::BadMagic)
        );
        assert_eq!(
            check_dialer(HandshakeMessage::Refusal(1), own, known),
            Err(RefuseReason::BadMagic)
        );
        let old = Hello {
            version: PROTOCOL_VERSION + 1,
            ..Hello::new(9, 1)
        };
        assert_eq!(check(old), Err(RefuseReason::Version));
        assert_eq!(check(Hello::new(10, 1)), Err(RefuseReason::Cluster));
        assert_eq!(check(Hello::new(9, 2)), Err(RefuseReason::UnknownNode));
        assert_eq!(check(Hello::new(9, 0)), Err(RefuseReason::UnknownNode));
        assert_eq!(check(Hello::new(9, 5)), Err(RefuseReason::UnknownNode));
        assert_eq!(check(Hello::new(9, 8)), Err(RefuseReason::WrongDirection));
    }
}
