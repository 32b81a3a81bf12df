//! The handshake that opens every connection, before any frame.
//!
//! Every handshake message starts with a fixed-size head of [`HELLO_LEN`]
//! bytes, all big-endian:
//!
//! ```text
//! magic (4 bytes) | protocol version or code (u32) | cluster id (u64) | node id (u64)
//! ```
//!
//! The magic says what it is: "MUXR" a hello, "MUXA" a hello from a node
//! with a cluster secret (followed by more, below), "MUXX" a refusal (the
//! [`RefuseReason`] code where the version goes, zeros after), "MUXP" a
//! proof of the secret (zeros after, then the proof), "MUXK" the final
//! acceptance (zeros after).
//!
//! # Without a cluster secret
//!
//! The dialer (the node with the lower id) sends its hello. The acceptor
//! checks the magic, the version ([`PROTOCOL_VERSION`]), that the dialer
//! has no secret either, the cluster id (equal to its own), and the node
//! id: a peer it knows (added with
//! [`Transport::add_peer`](super::Transport::add_peer)) whose id is lower
//! than its own, since only the lower id of a pair dials. If all hold it
//! answers with its own hello; otherwise it answers with a refusal, closes
//! the connection and counts it. The dialer checks the answer in turn: a
//! hello with the right magic, version and cluster, from the node it meant
//! to reach; anything else and it closes the connection and counts it.
//!
//! # With a cluster secret
//!
//! Both sides prove they know the secret, without sending it (see
//! [`auth`](super::auth) for the proofs and what they protect against):
//!
//! 1. The dialer sends its "MUXA" hello, then a fresh random nonce.
//! 2. The acceptor checks it as above (refusing a dialer without a secret),
//!    then answers with its own "MUXA" hello, a fresh nonce of its own, and
//!    its proof over both nonces.
//! 3. The dialer checks the hello and the proof; if the proof is wrong it
//!    sends a refusal and closes. Otherwise it sends its own proof.
//! 4. The acceptor checks that proof and answers "MUXK" (or a refusal);
//!    only then does either side count the connection established.
//!
//! A node with a secret refuses a node without one, and the reverse: a
//! cluster turns the secret on for all its nodes at once (a rolling change
//! splits it while it runs). Refusals for the secret are counted apart
//! ([`TransportStats::auth_refused`](super::TransportStats::auth_refused))
//! and logged as warnings with the reason.
//!
//! Both sides bound the whole exchange with the handshake timeout, so a
//! peer that goes silent mid-handshake cannot hold a connection slot.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tls::{self, Stream};

use super::auth::{self, Role, Transcript, NONCE_LEN, PROOF_LEN};
use super::peer::Peer;
use super::shared::Shared;
use super::stats::bump;
use crate::wire::PROTOCOL_VERSION;

/// Bytes of the head every handshake message starts with.
pub const HELLO_LEN: usize = 24;
/// First bytes of a hello from a node without a cluster secret.
pub const HELLO_MAGIC: [u8; 4] = *b"MUXR";
/// First bytes of a hello from a node with a cluster secret; a nonce
/// follows (and, from the acceptor, its proof).
pub const AUTH_HELLO_MAGIC: [u8; 4] = *b"MUXA";
/// First bytes of the dialer's proof of the secret; the proof follows.
pub const PROOF_MAGIC: [u8; 4] = *b"MUXP";
/// First bytes of the acceptor's final acceptance of a dialer's proof.
pub const ACCEPTED_MAGIC: [u8; 4] = *b"MUXK";
/// First bytes of a refusal.
pub const REFUSAL_MAGIC: [u8; 4] = *b"MUXX";

/// What a node says about itself when a connection opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub version: u32,
    pub cluster_id: u64,
    pub node_id: u64,
    /// The node has a cluster secret: a nonce follows this hello.
    pub authenticating: bool,
}

impl Hello {
    /// The hello of a node without a cluster secret speaking this build's
    /// protocol version.
    pub fn new(cluster_id: u64, node_id: u64) -> Self {
        Hello {
            version: PROTOCOL_VERSION,
            cluster_id,
            node_id,
            authenticating: false,
        }
    }

    /// The same hello from a node with a cluster secret.
    pub fn authenticating(self) -> Self {
        Hello {
            authenticating: true,
            ..self
        }
    }

    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let magic = if self.authenticating {
            AUTH_HELLO_MAGIC
        } else {
            HELLO_MAGIC
        };
        head(magic, self.version, self.cluster_id, self.node_id)
    }
}

fn head(magic: [u8; 4], word: u32, cluster_id: u64, node_id: u64) -> [u8; HELLO_LEN] {
    let mut buf = [0u8; HELLO_LEN];
    buf[0..4].copy_from_slice(&magic);
    buf[4..8].copy_from_slice(&word.to_be_bytes());
    buf[8..16].copy_from_slice(&cluster_id.to_be_bytes());
    buf[16..24].copy_from_slice(&node_id.to_be_bytes());
    buf
}

/// Why a handshake was refused. The numbers are the wire codes.
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
    #[error("the refusing node has a cluster secret and the other has none")]
    SecretRequired = 6,
    #[error("the other node has a cluster secret and the refusing node has none")]
    SecretUnexpected = 7,
    #[error("wrong proof of the cluster secret (the two nodes have different secrets)")]
    BadProof = 8,
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
            RefuseReason::SecretRequired,
            RefuseReason::SecretUnexpected,
            RefuseReason::BadProof,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// Is this a refusal for the cluster secret?
    pub fn is_auth(self) -> bool {
        matches!(
            self,
            RefuseReason::SecretRequired | RefuseReason::SecretUnexpected | RefuseReason::BadProof
        )
    }

    /// The refusal message carrying this reason.
    pub fn encode(self) -> [u8; HELLO_LEN] {
        head(REFUSAL_MAGIC, self.code(), 0, 0)
    }
}

/// The head of the dialer's proof message ([`PROOF_LEN`] bytes follow).
pub fn proof_head() -> [u8; HELLO_LEN] {
    head(PROOF_MAGIC, 0, 0, 0)
}

/// The acceptor's final acceptance.
pub fn accepted() -> [u8; HELLO_LEN] {
    head(ACCEPTED_MAGIC, 0, 0, 0)
}

/// A [`HELLO_LEN`]-byte handshake head, read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeMessage {
    /// A hello; its version and ids are not checked yet.
    Hello(Hello),
    /// The dialer's proof of the secret follows.
    Proof,
    /// The acceptor accepted the dialer's proof.
    Accepted,
    /// A refusal with its code (an unknown code is kept as is).
    Refusal(u32),
    /// None of these.
    Garbage,
}

impl HandshakeMessage {
    pub fn decode(buf: &[u8; HELLO_LEN]) -> Self {
        let u32_at =
            |at: usize| u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let u64_at = |at: usize| (u64::from(u32_at(at)) << 32) | u64::from(u32_at(at + 4));
        let magic = [buf[0], buf[1], buf[2], buf[3]];
        match magic {
            HELLO_MAGIC | AUTH_HELLO_MAGIC => HandshakeMessage::Hello(Hello {
                version: u32_at(4),
                cluster_id: u64_at(8),
                node_id: u64_at(16),
                authenticating: magic == AUTH_HELLO_MAGIC,
            }),
            PROOF_MAGIC => HandshakeMessage::Proof,
            ACCEPTED_MAGIC => HandshakeMessage::Accepted,
            REFUSAL_MAGIC => HandshakeMessage::Refusal(u32_at(4)),
            _ => HandshakeMessage::Garbage,
        }
    }
}

/// The acceptor's decision on a dialer's hello: `Ok` with the dialer's node
/// id, or the reason to refuse it. `own.authenticating` says whether this
/// node has a cluster secret; `is_known` whether a node id was added as a
/// peer.
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
    match (own.authenticating, hello.authenticating) {
        (true, false) => return Err(RefuseReason::SecretRequired),
        (false, true) => return Err(RefuseReason::SecretUnexpected),
        _ => {}
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

/// The dialer's decision on the acceptor's hello: `Ok` if it is the hello
/// of `peer_id` in our cluster, with a secret exactly when we have one.
pub(crate) fn check_acceptor(
    msg: HandshakeMessage,
    own: Hello,
    peer_id: u64,
) -> Result<(), HandshakeError> {
    let hello = match msg {
        HandshakeMessage::Hello(hello) => hello,
        HandshakeMessage::Refusal(code) => return Err(HandshakeError::RejectedByPeer(code)),
        _ => return Err(HandshakeError::BadAnswer("not a hello".into())),
    };
    if hello.version != PROTOCOL_VERSION {
        return Err(HandshakeError::BadAnswer(format!(
            "protocol version {}",
            hello.version
        )));
    }
    match (own.authenticating, hello.authenticating) {
        (true, false) => return Err(HandshakeError::Refused(RefuseReason::SecretRequired)),
        (false, true) => return Err(HandshakeError::Refused(RefuseReason::SecretUnexpected)),
        _ => {}
    }
    if hello.cluster_id != own.cluster_id {
        return Err(HandshakeError::BadAnswer(format!(
            "cluster {}",
            hello.cluster_id
        )));
    }
    if hello.node_id != peer_id {
        return Err(HandshakeError::BadAnswer(format!(
            "node {} answered",
            hello.node_id
        )));
    }
    Ok(())
}

/// What a node without TLS says of a peer that speaks it.
const PEER_SPEAKS_TLS: &str =
    "the peer speaks TLS and this node has no TLS configured (tls_cert_pem, tls_key_pem, tls_ca_pem)";

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("i/o: {0}")]
    Io(std::io::Error),
    /// TLS failed: `by_peer` when the peer refused us (it sent an alert),
    /// otherwise this node refused the peer.
    #[error("TLS: {reason}")]
    Tls { reason: String, by_peer: bool },
    #[error("refused the peer: {0}")]
    Refused(RefuseReason),
    #[error("the peer refused us: {}", refusal_text(*.0))]
    RejectedByPeer(u32),
    #[error("bad answer: {0}")]
    BadAnswer(String),
}

fn refusal_text(code: u32) -> String {
    match RefuseReason::from_code(code) {
        Some(reason) => reason.to_string(),
        None => format!("code {code}"),
    }
}

impl From<std::io::Error> for HandshakeError {
    /// An i/o error, or a TLS failure that rustls reports through one.
    fn from(err: std::io::Error) -> Self {
        match tls::tls_failure(&err) {
            Some((reason, by_peer)) => HandshakeError::Tls { reason, by_peer },
            None => HandshakeError::Io(err),
        }
    }
}

impl HandshakeError {
    /// Did the handshake fail for TLS (on either side)?
    pub fn is_tls(&self) -> bool {
        matches!(self, HandshakeError::Tls { .. })
    }

    /// Did the handshake fail for the cluster secret (on either side)?
    pub fn is_auth(&self) -> bool {
        match self {
            HandshakeError::Refused(reason) => reason.is_auth(),
            HandshakeError::RejectedByPeer(code) => {
                RefuseReason::from_code(*code).is_some_and(RefuseReason::is_auth)
            }
            _ => false,
        }
    }
}

/// What the handshake runs over: a TCP stream, or (fuzzing, tests) bytes
/// in memory.
trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<S: AsyncRead + AsyncWrite + Unpin> Io for S {}

/// This node's hello.
fn own_hello(shared: &Shared) -> Hello {
    let hello = Hello::new(shared.cfg.cluster_id, shared.cfg.node_id);
    if shared.cfg.cluster_secret.is_some() {
        hello.authenticating()
    } else {
        hello
    }
}

/// Counts a refusal of this node's (and, apart, one for the secret).
fn count_refusal(shared: &Shared, reason: Option<RefuseReason>) {
    bump(&shared.stats.handshakes_refused);
    if reason.is_some_and(RefuseReason::is_auth) {
        bump(&shared.stats.auth_refused);
    }
}

/// Counts a refusal of the peer's (and, apart, one for the secret).
fn count_rejection(shared: &Shared, err: &HandshakeError) {
    bump(&shared.stats.handshakes_rejected_by_peer);
    if err.is_auth() {
        bump(&shared.stats.auth_rejected_by_peer);
    }
}

/// Counts a TLS failure: this node's refusal, or the peer's.
fn count_tls(shared: &Shared, by_peer: bool) {
    if by_peer {
        bump(&shared.stats.handshakes_rejected_by_peer);
        bump(&shared.stats.tls_rejected_by_peer);
    } else {
        bump(&shared.stats.handshakes_refused);
        bump(&shared.stats.tls_refused);
    }
}

/// Sends a refusal (best effort: the connection is closed either way),
/// counts it and returns the error.
async fn refuse<S: Io>(shared: &Shared, stream: &mut S, reason: RefuseReason) -> HandshakeError {
    count_refusal(shared, Some(reason));
    let _ = stream.write_all(&reason.encode()).await;
    let _ = stream.shutdown().await;
    HandshakeError::Refused(reason)
}

/// Reads a handshake head. A node without TLS whose peer speaks it (a TLS
/// record where a head should be, or before the peer closed) fails with
/// [`HandshakeError::Tls`], so that the log says why.
async fn read_head<S: Io>(
    shared: &Shared,
    stream: &mut S,
) -> Result<HandshakeMessage, HandshakeError> {
    let mut buf = [0u8; HELLO_LEN];
    let mut got = 0;
    let peer_speaks_tls = |head: &[u8]| shared.cfg.tls.is_none() && tls::looks_like_tls(head);
    while got < HELLO_LEN {
        let n = stream.read(&mut buf[got..]).await?;
        if n == 0 {
            if peer_speaks_tls(&buf[..got]) {
                return Err(HandshakeError::Tls {
                    reason: PEER_SPEAKS_TLS.into(),
                    by_peer: false,
                });
            }
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        got += n;
    }
    let msg = HandshakeMessage::decode(&buf);
    if msg == HandshakeMessage::Garbage && peer_speaks_tls(&buf) {
        return Err(HandshakeError::Tls {
            reason: PEER_SPEAKS_TLS.into(),
            by_peer: false,
        });
    }
    Ok(msg)
}

async fn read_array<S: Io, const N: usize>(stream: &mut S) -> std::io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// The accepting side: with TLS, its handshake first; then reads and
/// checks the dialer's hello (and, with a cluster secret, exchanges
/// proofs), answers, and returns the authenticated peer and the stream.
/// Refusals are answered and counted here, and so is a dialer that stops
/// answering or fails TLS; the caller counts a timeout.
pub(crate) async fn accept(
    shared: &Shared,
    tcp: TcpStream,
) -> Result<(Arc<Peer>, Stream), HandshakeError> {
    let result = async {
        let mut stream = match &shared.cfg.tls {
            None => Stream::Plain(tcp),
            Some(tls) => tls.accept(tcp).await?,
        };
        let peer = accept_inner(shared, &mut stream).await?;
        Ok((peer, stream))
    }
    .await;
    match &result {
        Err(HandshakeError::Io(_)) => count_refusal(shared, None),
        Err(HandshakeError::Tls { by_peer, .. }) => count_tls(shared, *by_peer),
        _ => {}
    }
    result
}

async fn accept_inner<S: Io>(shared: &Shared, stream: &mut S) -> Result<Arc<Peer>, HandshakeError> {
    let msg = match read_head(shared, stream).await {
        Err(err @ HandshakeError::Tls { .. }) => {
            // A TLS dialer and this node has no TLS: a refusal in the
            // clear is garbage to its TLS, which then fails at once (and
            // its log says so) instead of waiting for the timeout.
            let _ = stream.write_all(&RefuseReason::BadMagic.encode()).await;
            let _ = stream.shutdown().await;
            return Err(err);
        }
        other => other?,
    };
    let own = own_hello(shared);
    let checked = check_dialer(msg, own, |id| shared.known_peer(id).is_some());
    // The peer is looked up again: it cannot be forgotten in between (peers
    // are never removed), but this keeps the check and the lookup together.
    let peer = checked.and_then(|id| shared.known_peer(id).ok_or(RefuseReason::UnknownNode));
    let peer = match peer {
        Ok(peer) => peer,
        Err(reason) => return Err(refuse(shared, stream, reason).await),
    };
    let Some(secret) = &shared.cfg.cluster_secret else {
        stream.write_all(&own.encode()).await?;
        stream.flush().await?;
        return Ok(peer);
    };
    let dialer_nonce = read_array::<S, NONCE_LEN>(stream).await?;
    let transcript = Transcript {
        cluster_id: own.cluster_id,
        dialer_id: peer.id,
        acceptor_id: own.node_id,
        dialer_nonce,
        acceptor_nonce: auth::nonce()?,
    };
    let mut answer = Vec::with_capacity(HELLO_LEN + NONCE_LEN + PROOF_LEN);
    answer.extend_from_slice(&own.encode());
    answer.extend_from_slice(&transcript.acceptor_nonce);
    answer.extend_from_slice(&transcript.prove(secret, Role::Acceptor));
    stream.write_all(&answer).await?;
    stream.flush().await?;
    match read_head(shared, stream).await? {
        HandshakeMessage::Proof => {}
        HandshakeMessage::Refusal(code) => {
            let err = HandshakeError::RejectedByPeer(code);
            count_rejection(shared, &err);
            return Err(err);
        }
        _ => return Err(refuse(shared, stream, RefuseReason::BadMagic).await),
    }
    let proof = read_array::<S, PROOF_LEN>(stream).await?;
    if !transcript.verify(secret, Role::Dialer, &proof) {
        return Err(refuse(shared, stream, RefuseReason::BadProof).await);
    }
    stream.write_all(&accepted()).await?;
    stream.flush().await?;
    Ok(peer)
}

/// The dialing side: connects to `addr` (with TLS, checking that the
/// acceptor's certificate is the CA's for `addr`'s IP), sends our hello
/// and checks the answer is the hello of `peer_id` in our cluster (with a
/// cluster secret, exchanging proofs and waiting for the acceptance).
/// Failures are counted here; the caller counts a timeout.
pub(crate) async fn dial(
    shared: &Shared,
    peer_id: u64,
    addr: SocketAddr,
) -> Result<Stream, HandshakeError> {
    let tcp = match TcpStream::connect(addr).await {
        Ok(tcp) => tcp,
        Err(err) => {
            bump(&shared.stats.dial_failures);
            return Err(HandshakeError::Io(err));
        }
    };
    let opened = async {
        tcp.set_nodelay(true)?;
        match &shared.cfg.tls {
            None => Ok(Stream::Plain(tcp)),
            Some(tls) => tls.connect(addr.ip(), tcp).await,
        }
    };
    let mut stream = match opened.await.map_err(HandshakeError::from) {
        Ok(stream) => stream,
        Err(err) => {
            match &err {
                HandshakeError::Tls { by_peer, .. } => count_tls(shared, *by_peer),
                _ => bump(&shared.stats.dial_failures),
            }
            return Err(err);
        }
    };
    let handshake = dial_inner(shared, peer_id, &mut stream);
    let err = match handshake.await {
        Ok(()) => return Ok(stream),
        Err(err) => err,
    };
    match &err {
        HandshakeError::Io(_) => bump(&shared.stats.dial_failures),
        HandshakeError::Tls { by_peer, .. } => count_tls(shared, *by_peer),
        HandshakeError::RejectedByPeer(_) => count_rejection(shared, &err),
        HandshakeError::Refused(reason) => {
            count_refusal(shared, Some(*reason));
            // Tell the acceptor why, so that its log says it too.
            let _ = stream.write_all(&reason.encode()).await;
        }
        HandshakeError::BadAnswer(_) => count_refusal(shared, None),
    }
    let _ = stream.shutdown().await;
    Err(err)
}

async fn dial_inner<S: Io>(
    shared: &Shared,
    peer_id: u64,
    stream: &mut S,
) -> Result<(), HandshakeError> {
    let own = own_hello(shared);
    let Some(secret) = &shared.cfg.cluster_secret else {
        stream.write_all(&own.encode()).await?;
        stream.flush().await?;
        return check_acceptor(read_head(shared, stream).await?, own, peer_id);
    };
    let dialer_nonce = auth::nonce()?;
    let mut hello = Vec::with_capacity(HELLO_LEN + NONCE_LEN);
    hello.extend_from_slice(&own.encode());
    hello.extend_from_slice(&dialer_nonce);
    stream.write_all(&hello).await?;
    stream.flush().await?;
    check_acceptor(read_head(shared, stream).await?, own, peer_id)?;
    let transcript = Transcript {
        cluster_id: own.cluster_id,
        dialer_id: own.node_id,
        acceptor_id: peer_id,
        dialer_nonce,
        acceptor_nonce: read_array::<S, NONCE_LEN>(stream).await?,
    };
    let proof = read_array::<S, PROOF_LEN>(stream).await?;
    if !transcript.verify(secret, Role::Acceptor, &proof) {
        return Err(HandshakeError::Refused(RefuseReason::BadProof));
    }
    let mut answer = Vec::with_capacity(HELLO_LEN + PROOF_LEN);
    answer.extend_from_slice(&proof_head());
    answer.extend_from_slice(&transcript.prove(secret, Role::Dialer));
    stream.write_all(&answer).await?;
    stream.flush().await?;
    match read_head(shared, stream).await? {
        HandshakeMessage::Accepted => Ok(()),
        HandshakeMessage::Refusal(code) => Err(HandshakeError::RejectedByPeer(code)),
        _ => Err(HandshakeError::BadAnswer("not an acceptance".into())),
    }
}

/// The handshake over bytes in memory, for the fuzz targets (`fuzz/`):
/// built only with the `fuzzing` feature (and in tests). Not part of the
/// library's API.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    use super::*;
    use crate::transport::{ClusterSecret, TransportConfig};

    /// The cluster of the node under test.
    pub const CLUSTER: u64 = 0xC1;
    /// The node under test; it knows peers [`LOWER_PEER`] (which may dial
    /// it) and [`HIGHER_PEER`] (which it dials).
    pub const NODE: u64 = 5;
    pub const LOWER_PEER: u64 = 3;
    pub const HIGHER_PEER: u64 = 7;
    /// The secret the node has when asked to authenticate.
    pub const SECRET: &[u8] = b"fuzzing secret, 32 bytes long!!!";

    /// A connection whose far side sent `input` and then closed; what this
    /// side writes is kept.
    struct Memory<'a> {
        input: &'a [u8],
        written: Vec<u8>,
    }

    impl AsyncRead for Memory<'_> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = buf.remaining().min(self.input.len());
            buf.put_slice(&self.input[..n]);
            self.input = &self.input[n..];
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Memory<'_> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// How one side's handshake ended.
    #[derive(Debug)]
    pub struct Outcome {
        /// `Ok` with the authenticated peer's id, or why it failed.
        pub result: Result<u64, String>,
        /// Whether the failure was this side's refusal, and its reason.
        pub refused: Option<RefuseReason>,
        /// What this side sent.
        pub written: Vec<u8>,
    }

    fn shared(secret: bool) -> Shared {
        let mut cfg = TransportConfig::new(NODE, CLUSTER, ([127, 0, 0, 1], 0).into());
        if secret {
            cfg.cluster_secret = Some(ClusterSecret::new(SECRET).expect("a valid secret"));
        }
        let shared = Shared::new(cfg, Arc::new(|_, _| {}));
        for id in [LOWER_PEER, HIGHER_PEER] {
            let peer = shared.peer_or_insert(id);
            peer.known.store(true, std::sync::atomic::Ordering::Release);
        }
        shared
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        thread_local! {
            static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a tokio runtime");
        }
        RUNTIME.with(|rt| rt.block_on(f))
    }

    fn outcome(result: Result<u64, HandshakeError>, written: Vec<u8>) -> Outcome {
        let refused = match &result {
            Err(HandshakeError::Refused(reason)) => Some(*reason),
            _ => None,
        };
        Outcome {
            result: result.map_err(|e| e.to_string()),
            refused,
            written,
        }
    }

    /// Node [`NODE`] accepts a connection on which the dialer sent `input`.
    pub fn accept(input: &[u8], secret: bool) -> Outcome {
        let shared = shared(secret);
        let mut stream = Memory {
            input,
            written: Vec::new(),
        };
        let result = run(accept_inner(&shared, &mut stream)).map(|peer| peer.id);
        outcome(result, stream.written)
    }

    /// Node [`NODE`] dials [`HIGHER_PEER`], which answers `input`.
    pub fn dial(input: &[u8], secret: bool) -> Outcome {
        let shared = shared(secret);
        let mut stream = Memory {
            input,
            written: Vec::new(),
        };
        let result = run(dial_inner(&shared, HIGHER_PEER, &mut stream)).map(|()| HIGHER_PEER);
        outcome(result, stream.written)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_in_memory_handshake_accepts_a_good_hello_and_refuses_a_bad_one() {
            let good = Hello::new(CLUSTER, LOWER_PEER).encode();
            let out = accept(&good, false);
            assert_eq!(out.result, Ok(LOWER_PEER));
            assert_eq!(out.written, Hello::new(CLUSTER, NODE).encode());
            let out = accept(&Hello::new(CLUSTER, HIGHER_PEER).encode(), false);
            assert_eq!(out.refused, Some(RefuseReason::WrongDirection));
            assert_eq!(out.written, RefuseReason::WrongDirection.encode());
            // With a secret: the dialer's nonce, then a proof that is wrong.
            let mut input = good_auth_hello(LOWER_PEER);
            input.extend_from_slice(&[9; NONCE_LEN]);
            input.extend_from_slice(&proof_head());
            input.extend_from_slice(&[0; PROOF_LEN]);
            let out = accept(&input, true);
            assert_eq!(out.refused, Some(RefuseReason::BadProof));
            // The dialer: the peer it meant to reach answers.
            let out = dial(&Hello::new(CLUSTER, HIGHER_PEER).encode(), false);
            assert_eq!(out.result, Ok(HIGHER_PEER));
            assert!(dial(&Hello::new(CLUSTER, 8).encode(), false)
                .result
                .is_err());
            // Cut short: an i/o error, no refusal.
            let out = accept(&good[..10], false);
            assert!(out.result.is_err() && out.refused.is_none());
        }

        fn good_auth_hello(id: u64) -> Vec<u8> {
            Hello::new(CLUSTER, id).authenticating().encode().to_vec()
        }
    }
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
        for code in 1..=8 {
            let reason = RefuseReason::from_code(code).expect("known code");
            assert_eq!(
                HandshakeMessage::decode(&reason.encode()),
                HandshakeMessage::Refusal(code)
            );
        }
        assert_eq!(RefuseReason::from_code(0), None);
        assert_eq!(RefuseReason::from_code(9), None);
        let auth = hello.authenticating();
        assert_eq!(
            HandshakeMessage::decode(&auth.encode()),
            HandshakeMessage::Hello(auth)
        );
        assert_eq!(
            HandshakeMessage::decode(&proof_head()),
            HandshakeMessage::Proof
        );
        assert_eq!(
            HandshakeMessage::decode(&accepted()),
            HandshakeMessage::Accepted
        );
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

    #[test]
    fn acceptor_refuses_a_dialer_whose_secret_setting_differs() {
        let known = |id: u64| id == 1;
        let plain = Hello::new(9, 1);
        let secret = plain.authenticating();
        let check = |own: Hello, h: Hello| check_dialer(HandshakeMessage::Hello(h), own, known);
        assert_eq!(check(Hello::new(9, 5).authenticating(), secret), Ok(1));
        assert_eq!(check(Hello::new(9, 5), plain), Ok(1));
        assert_eq!(
            check(Hello::new(9, 5).authenticating(), plain),
            Err(RefuseReason::SecretRequired)
        );
        assert_eq!(
            check(Hello::new(9, 5), secret),
            Err(RefuseReason::SecretUnexpected)
        );
        assert!(RefuseReason::SecretRequired.is_auth());
        assert!(RefuseReason::BadProof.is_auth());
        assert!(!RefuseReason::Cluster.is_auth());
    }

    #[test]
    fn dialer_checks_the_acceptors_hello_and_secret_setting() {
        let own = Hello::new(9, 1).authenticating();
        let answer = |h: Hello| check_acceptor(HandshakeMessage::Hello(h), own, 5);
        assert!(answer(Hello::new(9, 5).authenticating()).is_ok());
        assert!(matches!(
            answer(Hello::new(9, 5)),
            Err(HandshakeError::Refused(RefuseReason::SecretRequired))
        ));
        assert!(matches!(
            answer(Hello::new(9, 6).authenticating()),
            Err(HandshakeError::BadAnswer(_))
        ));
        assert!(matches!(
            answer(Hello::new(8, 5).authenticating()),
            Err(HandshakeError::BadAnswer(_))
        ));
        let refused = check_acceptor(HandshakeMessage::Refusal(8), own, 5).unwrap_err();
        assert!(refused.is_auth());
        assert!(refused.to_string().contains("wrong proof"), "{refused}");
        assert!(!HandshakeError::RejectedByPeer(3).is_auth());
        let plain = Hello::new(9, 1);
        assert!(matches!(
            check_acceptor(
                HandshakeMessage::Hello(Hello::new(9, 5).authenticating()),
                plain,
                5
            ),
            Err(HandshakeError::Refused(RefuseReason::SecretUnexpected))
        ));
    }
}
