//! The TCP transport: frames between real sockets on loopback, one
//! connection per pair, reconnect after a cut mid-frame, refused handshakes,
//! the cluster secret, oversized lengths, heartbeat priority, and a clean
//! stop.
//!
//! Nothing here sleeps to wait for an outcome: every wait polls a condition
//! with a bounded deadline ([`wait_until`]). The only sleeps are in the test
//! proxy, which throttles on purpose to play a slow link.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use muxraft::transport::auth::{self, Role, Transcript, NONCE_LEN, PROOF_LEN};
use muxraft::transport::handshake::{self, HandshakeMessage, Hello, RefuseReason, HELLO_LEN};
use muxraft::transport::{ClusterSecret, Inbound, TlsConfig, Transport, TransportConfig};
use parking_lot::Mutex;

const CLUSTER: u64 = 7;
const DEADLINE: Duration = Duration::from_secs(10);

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("valid address")
}

/// Polls `cond` until it holds; panics with `what` after `deadline`.
fn wait_until_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    wait_until_for(what, DEADLINE, cond);
}

/// Frames a transport delivered, with the sending node.
type Received = Arc<Mutex<Vec<(u64, Bytes)>>>;

struct Node {
    id: u64,
    t: Transport,
    rx: Received,
}

impl Node {
    fn start(id: u64) -> Node {
        Node::start_with(TransportConfig::new(id, CLUSTER, any_port()))
    }

    fn start_with(cfg: TransportConfig) -> Node {
        let rx: Received = Arc::default();
        let sink = rx.clone();
        let inbound: Inbound = Arc::new(move |from, frame| sink.lock().push((from, frame)));
        let id = cfg.node_id;
        let t = Transport::start(cfg, inbound).expect("transport starts");
        Node { id, t, rx }
    }

    fn addr(&self) -> SocketAddr {
        self.t.local_addr()
    }

    fn received(&self) -> usize {
        self.rx.lock().len()
    }

    /// Sequence numbers of the frames received, checking each frame whole
    /// and from `from`.
    fn seqs(&self, from: u64) -> Vec<u64> {
        self.rx
            .lock()
            .iter()
            .map(|(f, bytes)| {
                assert_eq!(*f, from, "frame from an unexpected node");
                check_frame(bytes)
            })
            .collect()
    }
}

/// Two nodes that know each other (1 dials 2).
fn pair() -> (Node, Node) {
    let (a, b) = (Node::start(1), Node::start(2));
    // The acceptor first: a dial that reached a node not yet told of
    // its peer would be refused (and counted) and redialed.
    b.t.add_peer(1, a.addr());
    a.t.add_peer(2, b.addr());
    (a, b)
}

/// A raw length-prefixed frame: an 8-byte sequence number, then `len - 8`
/// bytes of a pattern derived from it, so that any garbling shows.
fn frame(seq: u64, len: usize) -> Bytes {
    assert!(len >= 8);
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend((0..len - 8).map(|i| pattern(seq, i)));
    Bytes::from(buf)
}

fn pattern(seq: u64, i: usize) -> u8 {
    (seq.wrapping_mul(31) as usize).wrapping_add(i * 7) as u8
}

/// Checks a frame built by [`frame`] arrived whole; returns its sequence.
fn check_frame(bytes: &[u8]) -> u64 {
    assert!(bytes.len() >= 12, "frame of {} bytes", bytes.len());
    let len = u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    assert_eq!(
        len,
        bytes.len() - 4,
        "length prefix disagrees with the frame"
    );
    let seq = u64::from_be_bytes(bytes[4..12].try_into().expect("8 bytes"));
    for (i, &b) in bytes[12..].iter().enumerate() {
        assert_eq!(b, pattern(seq, i), "frame {seq} garbled at byte {i}");
    }
    seq
}

fn size_for(seq: u64) -> usize {
    8 + (seq as usize * 37) % 3000
}

#[test]
fn frames_flow_both_ways_intact_and_in_order() {
    let (a, b) = pair();
    const N: u64 = 1000;
    for seq in 0..N {
        a.t.send(2, frame(seq, size_for(seq)), seq % 10 == 0);
        b.t.send(1, frame(seq, size_for(seq + 1)), false);
    }
    wait_until("1000 frames each way", || {
        a.received() == N as usize && b.received() == N as usize
    });
    assert_eq!(a.seqs(2), (0..N).collect::<Vec<_>>());
    // Priority frames may overtake bulk ones; each class stays in order.
    let got = b.seqs(1);
    let (prio, bulk): (Vec<u64>, Vec<u64>) = got.iter().partition(|&&s| s % 10 == 0);
    assert!(prio.windows(2).all(|w| w[0] < w[1]), "priority order");
    assert!(bulk.windows(2).all(|w| w[0] < w[1]), "bulk order");
    assert_eq!(got.len(), N as usize);

    let (sa, sb) = (a.t.stats(), b.t.stats());
    assert_eq!(sa.frames_sent, N);
    assert_eq!(sb.frames_received, N);
    assert_eq!(sa.bytes_sent, sb.bytes_received);
    assert_eq!(sb.frames_sent, N);
    assert_eq!(sa.frames_received, N);
    assert_eq!(sa.frames_dropped + sb.frames_dropped, 0);
    assert_eq!(sa.queued_bytes + sb.queued_bytes, 0);
    a.t.stop();
    b.t.stop();
}

#[test]
fn exactly_one_connection_per_pair_when_all_add_each_other() {
    let nodes: Vec<Node> = (1..=3).map(Node::start).collect();
    // Every node learns the lower ids (which dial it) before any node
    // learns a higher one (and dials): a dial that reached a node before
    // that node knew the dialer would be refused, rightly, and retried,
    // which is not what this test is about (on a loaded machine it
    // happened: a refusal counted on each side).
    for n in &nodes {
        for m in nodes.iter().filter(|m| m.id < n.id) {
            n.t.add_peer(m.id, m.addr());
        }
    }
    for n in &nodes {
        for m in &nodes {
            n.t.add_peer(m.id, m.addr());
        }
    }
    wait_until("every pair connected", || {
        nodes.iter().all(|n| {
            nodes
                .iter()
                .filter(|m| m.id != n.id)
                .all(|m| n.t.connected(m.id))
        })
    });
    // One frame over every directed pair proves the connections carry
    // traffic both ways, after which nothing is still settling.
    for n in &nodes {
        for m in &nodes {
            if n.id != m.id {
                n.t.send(m.id, frame(n.id, 16), false);
            }
        }
    }
    wait_until("a frame over every directed pair", || {
        nodes.iter().all(|n| n.received() == 2)
    });
    for n in &nodes {
        let s = n.t.stats();
        assert_eq!(s.connections_established, 2, "node {}: {s:?}", n.id);
        assert_eq!(s.reconnects, 0);
        assert_eq!(s.handshakes_refused, 0);
        assert_eq!(s.handshakes_rejected_by_peer, 0);
    }
    for n in nodes {
        n.t.stop();
    }
}

/// What the test proxy does to the stream from the dialer to the acceptor.
#[derive(Clone, Copy)]
enum ProxyMode {
    /// Forward whole frames; when `cut` is armed, forward half of the next
    /// frame and cut both connections.
    Frames,
    /// Forward raw bytes at about 64 MiB/s: a slow link.
    Throttled,
}

/// A TCP proxy between a dialing node and the node it dials.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: SocketAddr, mode: ProxyMode) -> Proxy {
        let listener = TcpListener::bind(any_port()).expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let cut = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let proxy = Proxy {
            addr,
            cut: cut.clone(),
            cuts: cuts.clone(),
            connections: connections.clone(),
        };
        // The accept thread outlives the test's interest in it; it holds no
        // transport and ends with the test process.
        std::thread::spawn(move || {
            for down in listener.incoming() {
                let Ok(down) = down else { continue };
                let Ok(up) = TcpStream::connect(upstream) else {
                    continue;
                };
                connections.fetch_add(1, Ordering::SeqCst);
                let (down2, up2) = (
                    down.try_clone().expect("clone"),
                    up.try_clone().expect("clone"),
                );
                let (cut, cuts) = (cut.clone(), cuts.clone());
                std::thread::spawn(move || forward(down, up, mode, &cut, &cuts));
                std::thread::spawn(move || {
                    let (mut from, mut to) = (up2, down2);
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                });
            }
        });
        proxy
    }
}

/// Forwards the dialer's stream (hello, then frames) to the acceptor.
fn forward(
    mut from: TcpStream,
    mut to: TcpStream,
    mode: ProxyMode,
    cut: &AtomicBool,
    cuts: &AtomicUsize,
) {
    let _ = forward_inner(&mut from, &mut to, mode, cut, cuts);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

fn forward_inner(
    from: &mut TcpStream,
    to: &mut TcpStream,
    mode: ProxyMode,
    cut: &AtomicBool,
    cuts: &AtomicUsize,
) -> std::io::Result<()> {
    if let ProxyMode::Throttled = mode {
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            let n = from.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            to.write_all(&chunk[..n])?;
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut hello = [0u8; HELLO_LEN];
    from.read_exact(&mut hello)?;
    to.write_all(&hello)?;
    loop {
        let mut header = [0u8; 4];
        from.read_exact(&mut header)?;
        let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
        from.read_exact(&mut body)?;
        to.write_all(&header)?;
        if cut.swap(false, Ordering::SeqCst) {
            to.write_all(&body[..body.len() / 2])?;
            to.flush()?;
            cuts.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        to.write_all(&body)?;
    }
}

#[test]
fn a_connection_cut_mid_frame_reconnects_and_never_delivers_a_partial_frame() {
    let (a, b) = (Node::start(1), Node::start(2));
    let proxy = Proxy::start(b.addr(), ProxyMode::Frames);
    a.t.add_peer(2, proxy.addr);
    b.t.add_peer(1, a.addr());
    const LEN: usize = 10_000;
    for seq in 0..100 {
        a.t.send(2, frame(seq, LEN), false);
    }
    wait_until("the first 100 frames", || b.received() == 100);

    // The next frame the proxy reads is cut in half, and the connection
    // with it; frames behind it may be lost too (Raft retransmits).
    proxy.cut.store(true, Ordering::SeqCst);
    for seq in 100..200 {
        a.t.send(2, frame(seq, LEN), false);
    }
    wait_until("the cut", || proxy.cuts.load(Ordering::SeqCst) == 1);
    wait_until("a reconnect through the proxy", || {
        a.t.stats().reconnects >= 1 && a.t.connected(2) && b.t.connected(1)
    });
    assert!(proxy.connections.load(Ordering::SeqCst) >= 2);

    for seq in 200..300 {
        a.t.send(2, frame(seq, LEN), false);
    }
    wait_until("every frame sent after the reconnect", || {
        b.rx.lock()
            .last()
            .is_some_and(|(_, f)| check_frame(f) == 299)
    });
    let seqs = b.seqs(1); // checks every delivered frame is whole
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "out of order: {seqs:?}"
    );
    assert!(!seqs.contains(&100), "the frame cut in half was delivered");
    assert_eq!(&seqs[..100], (0..100).collect::<Vec<_>>().as_slice());
    let after: Vec<u64> = seqs.iter().copied().filter(|&s| s >= 200).collect();
    assert_eq!(after, (200..300).collect::<Vec<_>>());
    let sb = b.t.stats();
    assert_eq!(sb.frames_received, seqs.len() as u64);
    assert_eq!(sb.connections_established, 2);
    assert_eq!(sb.reconnects, 1);
    a.t.stop();
    b.t.stop();
}

/// Connects to `addr`, sends `hello` (any bytes), and returns the stream
/// and the answer (or `None` if the connection closed without one).
fn raw_hello(addr: SocketAddr, hello: &[u8]) -> (TcpStream, Option<HandshakeMessage>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    s.write_all(hello).expect("write hello");
    let mut answer = [0u8; HELLO_LEN];
    let msg = s
        .read_exact(&mut answer)
        .ok()
        .map(|()| HandshakeMessage::decode(&answer));
    (s, msg)
}

/// Reads until the peer closes the connection; returns the bytes read.
fn read_until_closed(s: &mut TcpStream) -> usize {
    let mut total = 0;
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return total,
            Err(e) => panic!("connection neither closed nor reset: {e}"),
        }
    }
}

fn refusal(reason: RefuseReason) -> Option<HandshakeMessage> {
    Some(HandshakeMessage::Refusal(reason.code()))
}

#[test]
fn a_peer_of_another_cluster_is_refused_and_nothing_it_sends_is_delivered() {
    let b = Node::start(2);
    let a = Node::start_with(TransportConfig::new(1, CLUSTER + 1, any_port()));
    b.t.add_peer(1, a.addr());
    a.t.add_peer(2, b.addr());
    for seq in 0..10 {
        a.t.send(2, frame(seq, 100), seq == 0);
    }
    // Two refusals: the dialer retried, with frames queued all along.
    wait_until("two refused handshakes", || {
        b.t.stats().handshakes_refused >= 2 && a.t.stats().handshakes_rejected_by_peer >= 2
    });
    assert_eq!(b.received(), 0);
    assert_eq!(b.t.stats().connections_established, 0);
    assert_eq!(a.t.stats().connections_established, 0);
    assert!(!a.t.connected(2) && !b.t.connected(1));

    // The same by hand: the refusal says why.
    let (mut s, answer) = raw_hello(b.addr(), &Hello::new(CLUSTER + 1, 1).encode());
    assert_eq!(answer, refusal(RefuseReason::Cluster));
    assert_eq!(read_until_closed(&mut s), 0);
    a.t.stop();
    b.t.stop();
}

#[test]
fn unknown_nodes_wrong_direction_bad_version_and_garbage_are_refused() {
    let b = Node::start(5);
    b.t.add_peer(9, any_port()); // known, but 9 > 5: 5 dials 9, never the reverse

    // A real transport that node 5 does not know.
    let stranger = Node::start(3);
    stranger.t.add_peer(5, b.addr());
    stranger.t.send(5, frame(1, 100), false);
    wait_until("the stranger refused", || {
        b.t.stats().handshakes_refused >= 1
    });
    stranger.t.stop();
    let before = b.t.stats().handshakes_refused;

    let cases: [(&str, [u8; HELLO_LEN], RefuseReason); 4] = [
        (
            "unknown node",
            Hello::new(CLUSTER, 4).encode(),
            RefuseReason::UnknownNode,
        ),
        (
            "wrong direction",
            Hello::new(CLUSTER, 9).encode(),
            RefuseReason::WrongDirection,
        ),
        (
            "bad version",
            Hello {
                version: 999,
                ..Hello::new(CLUSTER, 1)
            }
            .encode(),
            RefuseReason::Version,
        ),
        (
            "garbage",
            *b"GET / HTTP/1.1\r\nHost: x\n",
            RefuseReason::BadMagic,
        ),
    ];
    for (i, (what, hello, reason)) in cases.into_iter().enumerate() {
        let (mut s, answer) = raw_hello(b.addr(), &hello);
        assert_eq!(answer, refusal(reason), "{what}");
        assert_eq!(read_until_closed(&mut s), 0, "{what}: closed after refusal");
        wait_until("the refusal counted", || {
            b.t.stats().handshakes_refused > before + i as u64
        });
    }
    assert_eq!(b.received(), 0);
    assert_eq!(b.t.stats().connections_established, 0);
    b.t.stop();
}

#[test]
fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let mut cfg = TransportConfig::new(5, CLUSTER, any_port());
    cfg.handshake_timeout = Duration::from_millis(200);
    let b = Node::start_with(cfg);
    let mut s = TcpStream::connect(b.addr()).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    s.write_all(b"MUXR").expect("part of a hello");
    assert_eq!(read_until_closed(&mut s), 0);
    wait_until("the timeout counted", || {
        b.t.stats().handshakes_refused == 1
    });
    b.t.stop();
}

#[test]
fn an_oversized_frame_length_is_refused_and_other_peers_are_still_served() {
    let b = Node::start(5);
    b.t.add_peer(1, any_port());

    // A hand-made peer 1: valid handshake, then a 4 GiB - 1 length.
    let (mut s, answer) = raw_hello(b.addr(), &Hello::new(CLUSTER, 1).encode());
    assert_eq!(
        answer,
        Some(HandshakeMessage::Hello(Hello::new(CLUSTER, 5)))
    );
    wait_until("peer 1 connected", || b.t.connected(1));
    s.write_all(&u32::MAX.to_be_bytes()).expect("write length");
    s.write_all(&[0u8; 64]).expect("a little of the body");
    assert_eq!(read_until_closed(&mut s), 0);
    wait_until("the oversized length counted", || {
        b.t.stats().oversized_refused == 1 && !b.t.connected(1)
    });

    // A zero length is as broken.
    let (mut s, _) = raw_hello(b.addr(), &Hello::new(CLUSTER, 1).encode());
    s.write_all(&0u32.to_be_bytes()).expect("write length");
    assert_eq!(read_until_closed(&mut s), 0);
    wait_until("the zero length counted", || {
        b.t.stats().malformed_refused == 1
    });
    assert_eq!(b.received(), 0);

    // Node 5 still serves a real peer, both ways.
    let a = Node::start(2);
    a.t.add_peer(5, b.addr());
    b.t.add_peer(2, a.addr());
    a.t.send(5, frame(1, 1000), false);
    b.t.send(2, frame(2, 1000), false);
    wait_until("frames both ways", || {
        a.received() == 1 && b.received() == 1
    });
    assert_eq!(b.seqs(2), [1]);
    assert_eq!(a.seqs(5), [2]);
    a.t.stop();
    b.t.stop();
}

#[test]
fn a_priority_frame_overtakes_a_backlog_of_large_bulk_frames_on_a_slow_link() {
    let (a, b) = (Node::start(1), Node::start(2));
    let proxy = Proxy::start(b.addr(), ProxyMode::Throttled);
    a.t.add_peer(2, proxy.addr);
    b.t.add_peer(1, a.addr());
    wait_until("connected", || a.t.connected(2) && b.t.connected(1));

    const BULK: u64 = 50;
    const HEARTBEAT: u64 = 1_000_000;
    for seq in 0..BULK {
        a.t.send(2, frame(seq, 1 << 20), false);
    }
    a.t.send(2, frame(HEARTBEAT, 64), true);
    wait_until_for("every frame", Duration::from_secs(60), || {
        b.received() == BULK as usize + 1
    });
    let seqs = b.seqs(1);
    let at = seqs
        .iter()
        .position(|&s| s == HEARTBEAT)
        .expect("the heartbeat arrived");
    let bulk: Vec<u64> = seqs.iter().copied().filter(|&s| s != HEARTBEAT).collect();
    assert_eq!(bulk, (0..BULK).collect::<Vec<_>>());
    eprintln!("the priority frame arrived after {at} of {BULK} bulk frames of 1 MiB");
    // It waits for the frame being written and what the kernel's socket
    // buffers (a few MiB) already hold, never for the queued backlog.
    assert!(at < BULK as usize / 2, "priority frame arrived {at}th");
    a.t.stop();
    b.t.stop();
}

#[test]
fn priority_frames_queued_while_disconnected_go_out_first() {
    let a = Node::start(1);
    // Node 2 is not added yet: frames wait for it.
    for seq in 0..5 {
        a.t.send(2, frame(seq, 1000), false);
    }
    a.t.send(2, frame(100, 100), true);
    a.t.send(2, frame(101, 100), true);
    assert!(!a.t.connected(2));
    assert_eq!(a.t.stats().queued_bytes, 5 * 1004 + 2 * 104);

    let b = Node::start(2);
    b.t.add_peer(1, a.addr());
    a.t.add_peer(2, b.addr());
    wait_until("all frames", || b.received() == 7);
    assert_eq!(b.seqs(1), [100, 101, 0, 1, 2, 3, 4]);
    assert_eq!(a.t.stats().queued_bytes, 0);
    a.t.stop();
    b.t.stop();
}

#[test]
fn frames_over_the_queue_bound_or_malformed_are_dropped_and_counted() {
    let mut cfg = TransportConfig::new(1, CLUSTER, any_port());
    cfg.max_queued_bytes = 10_000;
    cfg.max_frame_bytes = 2_000;
    let a = Node::start_with(cfg);
    for seq in 0..20 {
        a.t.send(2, frame(seq, 996), false); // 1,000 bytes with the prefix
    }
    // The peer is down and the queue full: a heartbeat is dropped too.
    a.t.send(2, frame(100, 96), true);
    assert_eq!(a.t.stats().frames_dropped, 11);
    assert_eq!(a.t.stats().queued_bytes, 10_000);
    // Not frames, or over the frame limit, or to nobody: dropped.
    a.t.send(3, Bytes::from_static(&[0, 0, 0, 5, 1]), false);
    a.t.send(3, Bytes::from_static(&[0, 0, 0, 0]), false);
    a.t.send(3, frame(1, 2_001), false);
    a.t.send(1, frame(1, 100), false);
    a.t.send(0, frame(1, 100), false);
    assert_eq!(a.t.stats().frames_dropped, 16);

    let b = Node::start(2);
    b.t.add_peer(1, a.addr());
    a.t.add_peer(2, b.addr());
    wait_until("the queued frames", || b.received() == 10);
    assert_eq!(b.seqs(1), (0..10).collect::<Vec<_>>());
    a.t.stop();
    b.t.stop();
}

#[test]
fn a_newer_connection_from_a_peer_replaces_the_older() {
    let b = Node::start(5);
    b.t.add_peer(1, any_port());
    let (mut old, answer) = raw_hello(b.addr(), &Hello::new(CLUSTER, 1).encode());
    assert!(matches!(answer, Some(HandshakeMessage::Hello(_))));
    wait_until("connected", || b.t.connected(1));
    let (mut new, answer) = raw_hello(b.addr(), &Hello::new(CLUSTER, 1).encode());
    assert!(matches!(answer, Some(HandshakeMessage::Hello(_))));
    assert_eq!(read_until_closed(&mut old), 0, "the older one is closed");
    wait_until("the newer one counted", || {
        let s = b.t.stats();
        s.connections_established == 2 && s.reconnects == 1 && b.t.connected(1)
    });

    // Frames flow on the newer one, both ways.
    b.t.send(1, frame(42, 100), true);
    let mut got = vec![0u8; 104];
    new.read_exact(&mut got)
        .expect("frame on the newer connection");
    assert_eq!(check_frame(&got), 42);
    new.write_all(&frame(43, 50)).expect("write");
    wait_until("the frame from the newer connection", || b.received() == 1);
    assert_eq!(b.seqs(1), [43]);
    b.t.stop();
}

#[test]
fn a_changed_peer_address_is_redialed() {
    let (a, b) = (Node::start(1), Node::start(2));
    // A port nothing listens on: bind one, then free it.
    let dead = TcpListener::bind(any_port())
        .and_then(|l| l.local_addr())
        .expect("free port");
    a.t.add_peer(2, dead);
    b.t.add_peer(1, a.addr());
    a.t.send(2, frame(7, 100), false);
    wait_until("a failed dial", || a.t.stats().dial_failures >= 1);
    a.t.add_peer(2, b.addr());
    wait_until("the frame over the new address", || b.received() == 1);
    assert_eq!(b.seqs(1), [7]);
    a.t.stop();
    b.t.stop();
}

/// Threads of this process whose name is `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|comm| comm.trim_end() == name)
        })
        .count()
}

/// The signals blocked on a thread: the `SigBlk` mask of its
/// `/proc/.../status` file at `path`.
fn blocked_signals(path: &std::path::Path) -> u64 {
    let status = std::fs::read_to_string(path).expect("a thread's status");
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .expect("a SigBlk line");
    u64::from_str_radix(mask.trim(), 16).expect("a hex mask")
}

/// The signals blocked on the thread named `name`.
fn blocked_signals_of(name: &str) -> u64 {
    for e in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let dir = e.expect("a task").path();
        if std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim_end() == name) {
            return blocked_signals(&dir.join("status"));
        }
    }
    panic!("no thread named {name}");
}

/// Every socket write happens on the transport's thread, and a write to a
/// connection the peer closed raises SIGPIPE on the writing thread, whose
/// default action ends the process: a C or C++ broker that does not ignore
/// SIGPIPE would die because a peer node did. The thread blocks it (the
/// write then fails with EPIPE, a lost connection); this process's other
/// threads keep their mask. (Rust programs ignore SIGPIPE, so the check is
/// of the mask, not of a death.) Mutation: not blocking it fails here.
#[test]
fn the_transport_thread_blocks_sigpipe_and_leaves_other_threads_alone() {
    const SIGPIPE_BIT: u64 = 1 << (13 - 1);
    let a = Node::start(79);
    let b = Node::start(80);
    // The thread is named before its first instruction runs and blocks the
    // signal only after: read the mask once it has carried a frame (its
    // runtime runs after the mask is set), not as soon as it has a name.
    b.t.add_peer(79, a.addr());
    a.t.add_peer(80, b.addr());
    a.t.send(80, frame(1, 100), false);
    wait_until("a frame", || b.received() == 1);
    assert_ne!(blocked_signals_of("muxraft-tx-79") & SIGPIPE_BIT, 0);
    let mine = blocked_signals(std::path::Path::new("/proc/thread-self/status"));
    assert_eq!(
        mine & SIGPIPE_BIT,
        0,
        "the caller's thread must keep its mask"
    );
    a.t.stop();
    b.t.stop();
}

#[test]
fn stop_closes_the_listener_and_connections_and_joins_the_thread() {
    // Tests run in parallel threads of this process, so the count is of
    // this transport's thread, found by its name, not of all threads.
    let name = "muxraft-tx-77";
    assert_eq!(threads_named(name), 0);
    let a = Node::start(77);
    let b = Node::start(78);
    // The thread names itself once running.
    wait_until("the transport thread named", || threads_named(name) == 1);
    a.t.add_peer(78, b.addr());
    b.t.add_peer(77, a.addr());
    a.t.send(78, frame(1, 100), false);
    wait_until("a frame", || b.received() == 1);
    let addr = a.addr();
    a.t.stop();
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener is still open"
    );
    // join() returns once the thread has finished; the kernel forgets it
    // moments later.
    wait_until("the transport thread gone", || threads_named(name) == 0);
    wait_until("the peer sees the connection closed", || !b.t.connected(77));
    b.t.stop();
    wait_until("the peer's thread gone", || {
        threads_named("muxraft-tx-78") == 0
    });
}

fn secret(byte: u8) -> ClusterSecret {
    ClusterSecret::new(&[byte; 32]).expect("a valid secret")
}

/// A node of `CLUSTER` with `secret` (or none).
fn start_secret(id: u64, secret: Option<ClusterSecret>) -> Node {
    let mut cfg = TransportConfig::new(id, CLUSTER, any_port());
    cfg.cluster_secret = secret;
    Node::start_with(cfg)
}

/// Two nodes with these secrets that know each other (1 dials 2).
fn secret_pair(a: Option<ClusterSecret>, b: Option<ClusterSecret>) -> (Node, Node) {
    let (a, b) = (start_secret(1, a), start_secret(2, b));
    // The acceptor first: a dial that reached a node not yet told of
    // its peer would be refused (and counted) and redialed.
    b.t.add_peer(1, a.addr());
    a.t.add_peer(2, b.addr());
    (a, b)
}

#[test]
fn nodes_with_the_same_secret_connect_and_carry_frames_both_ways() {
    let (a, b) = secret_pair(Some(secret(1)), Some(secret(1)));
    for seq in 0..100 {
        a.t.send(2, frame(seq, size_for(seq)), seq % 10 == 0);
        b.t.send(1, frame(seq, size_for(seq)), false);
    }
    wait_until("100 frames each way", || {
        a.received() == 100 && b.received() == 100
    });
    assert_eq!(a.seqs(2), (0..100).collect::<Vec<_>>());
    for n in [&a, &b] {
        let s = n.t.stats();
        assert_eq!(s.connections_established, 1, "node {}: {s:?}", n.id);
        assert_eq!(s.handshakes_refused + s.handshakes_rejected_by_peer, 0);
        assert_eq!(s.auth_refused + s.auth_rejected_by_peer, 0);
    }
    a.t.stop();
    b.t.stop();
}

/// Waits until `refuser` refused at least two handshakes for the secret
/// and `refused` saw them, then checks that nothing got through.
fn assert_refused_for_the_secret(refuser: &Node, refused: &Node, frames_to: &Node) {
    wait_until("two refusals for the secret", || {
        refuser.t.stats().auth_refused >= 2 && refused.t.stats().auth_rejected_by_peer >= 2
    });
    let s = refuser.t.stats();
    assert!(s.handshakes_refused >= s.auth_refused, "{s:?}");
    assert_eq!(frames_to.received(), 0);
    for n in [refuser, refused] {
        assert_eq!(n.t.stats().connections_established, 0, "node {}", n.id);
    }
    assert!(!refuser.t.connected(refused.id) && !refused.t.connected(refuser.id));
}

#[test]
fn a_peer_with_another_secret_is_refused_counted_and_never_connects() {
    let (a, b) = secret_pair(Some(secret(1)), Some(secret(2)));
    for seq in 0..10 {
        a.t.send(2, frame(seq, 100), seq == 0);
    }
    // The dialer checks the acceptor's proof first: it refuses, and tells
    // the acceptor why.
    assert_refused_for_the_secret(&a, &b, &b);
    a.t.stop();
    b.t.stop();
}

#[test]
fn a_peer_without_a_secret_is_refused_by_one_with_and_the_reverse() {
    // The dialer has none: the acceptor refuses its plain hello.
    let (a, b) = secret_pair(None, Some(secret(1)));
    a.t.send(2, frame(1, 100), false);
    assert_refused_for_the_secret(&b, &a, &b);
    let (mut s, answer) = raw_hello(b.addr(), &Hello::new(CLUSTER, 1).encode());
    assert_eq!(answer, refusal(RefuseReason::SecretRequired));
    assert_eq!(read_until_closed(&mut s), 0);
    a.t.stop();
    b.t.stop();

    // The acceptor has none: it refuses a hello that comes with a nonce.
    let (a, b) = secret_pair(Some(secret(1)), None);
    a.t.send(2, frame(1, 100), false);
    assert_refused_for_the_secret(&b, &a, &b);
    a.t.stop();
    b.t.stop();
}

/// A dialer's authenticating hello as node 1, with `nonce`.
fn auth_hello(nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    let mut hello = Hello::new(CLUSTER, 1).authenticating().encode().to_vec();
    hello.extend_from_slice(nonce);
    hello
}

/// Reads the acceptor's answer to an authenticating hello: its nonce and
/// its proof.
fn read_auth_answer(s: &mut TcpStream) -> ([u8; NONCE_LEN], [u8; PROOF_LEN]) {
    let mut head = [0u8; HELLO_LEN];
    s.read_exact(&mut head).expect("the acceptor's hello");
    assert_eq!(
        HandshakeMessage::decode(&head),
        HandshakeMessage::Hello(Hello::new(CLUSTER, 2).authenticating())
    );
    let (mut nonce, mut proof) = ([0u8; NONCE_LEN], [0u8; PROOF_LEN]);
    s.read_exact(&mut nonce).expect("the acceptor's nonce");
    s.read_exact(&mut proof).expect("the acceptor's proof");
    (nonce, proof)
}

/// Sends `proof` as the dialer's and returns the acceptor's verdict.
fn send_proof(s: &mut TcpStream, proof: &[u8; PROOF_LEN]) -> HandshakeMessage {
    let mut msg = handshake::proof_head().to_vec();
    msg.extend_from_slice(proof);
    s.write_all(&msg).expect("write the proof");
    let mut head = [0u8; HELLO_LEN];
    s.read_exact(&mut head).expect("the verdict");
    HandshakeMessage::decode(&head)
}

#[test]
fn a_reflected_a_replayed_and_a_wrongly_keyed_proof_are_refused() {
    let b = start_secret(2, Some(secret(1)));
    b.t.add_peer(1, any_port());
    let refusals = || b.t.stats().auth_refused;

    // Reflection: no secret needed to try it, the acceptor's own proof
    // sent back as the dialer's.
    let nonce = auth::nonce().expect("nonce");
    let mut s = raw_hello_auth(&b, &nonce);
    let (_, acceptors_proof) = read_auth_answer(&mut s);
    assert_eq!(
        send_proof(&mut s, &acceptors_proof),
        HandshakeMessage::Refusal(RefuseReason::BadProof.code())
    );
    assert_eq!(read_until_closed(&mut s), 0);
    wait_until("the reflection counted", || refusals() == 1);

    // A proof made with another secret.
    let mut s = raw_hello_auth(&b, &nonce);
    let (acceptor_nonce, _) = read_auth_answer(&mut s);
    let transcript = Transcript {
        cluster_id: CLUSTER,
        dialer_id: 1,
        acceptor_id: 2,
        dialer_nonce: nonce,
        acceptor_nonce,
    };
    assert_eq!(
        send_proof(&mut s, &transcript.prove(&secret(2), Role::Dialer)),
        HandshakeMessage::Refusal(RefuseReason::BadProof.code())
    );
    wait_until("the wrong key counted", || refusals() == 2);

    // Replay: a genuine proof recorded on one connection (which it opens),
    // then replayed with the same nonce on the next one.
    let mut s = raw_hello_auth(&b, &nonce);
    let (acceptor_nonce, acceptors_proof) = read_auth_answer(&mut s);
    let recorded = Transcript {
        cluster_id: CLUSTER,
        dialer_id: 1,
        acceptor_id: 2,
        dialer_nonce: nonce,
        acceptor_nonce,
    };
    assert!(recorded.verify(&secret(1), Role::Acceptor, &acceptors_proof));
    let genuine = recorded.prove(&secret(1), Role::Dialer);
    assert_eq!(send_proof(&mut s, &genuine), HandshakeMessage::Accepted);
    wait_until("the genuine connection", || b.t.connected(1));
    drop(s);
    let mut s = raw_hello_auth(&b, &nonce);
    let (fresh, _) = read_auth_answer(&mut s);
    assert_ne!(fresh, acceptor_nonce, "the acceptor's nonce is fresh");
    assert_eq!(
        send_proof(&mut s, &genuine),
        HandshakeMessage::Refusal(RefuseReason::BadProof.code())
    );
    wait_until("the replay counted", || refusals() == 3);
    assert_eq!(b.t.stats().connections_established, 1);
    b.t.stop();
}

/// Connects to `b` and sends an authenticating hello as node 1.
fn raw_hello_auth(b: &Node, nonce: &[u8; NONCE_LEN]) -> TcpStream {
    let mut s = TcpStream::connect(b.addr()).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    s.write_all(&auth_hello(nonce)).expect("write hello");
    s
}

#[test]
fn a_peer_silent_after_the_acceptors_proof_is_dropped_after_the_timeout() {
    let mut cfg = TransportConfig::new(2, CLUSTER, any_port());
    cfg.cluster_secret = Some(secret(1));
    cfg.handshake_timeout = Duration::from_millis(200);
    let b = Node::start_with(cfg);
    b.t.add_peer(1, any_port());
    let mut s = raw_hello_auth(&b, &auth::nonce().expect("nonce"));
    read_auth_answer(&mut s);
    // No proof: the acceptor gives up.
    assert_eq!(read_until_closed(&mut s), 0);
    wait_until("the timeout counted", || {
        b.t.stats().handshakes_refused == 1
    });
    assert_eq!(b.t.stats().connections_established, 0);
    b.t.stop();
}

// ---------------------------------------------------------------------------
// TLS between nodes, with the test certificates of tests/certs (gen.sh).

fn cert(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/certs")
        .join(name)
}

/// TLS settings: a node certificate (`node1`, `other`, `wrong-ip`...) and
/// the CA it trusts (`ca` or `other-ca`).
fn tls(node: &str, ca: &str) -> TlsConfig {
    TlsConfig::from_pem_files(
        cert(&format!("{node}.crt")),
        cert(&format!("{node}.key")),
        cert(&format!("{ca}.crt")),
    )
    .expect("the test certificates load")
}

fn start_tls(id: u64, tls: Option<TlsConfig>) -> Node {
    let mut cfg = TransportConfig::new(id, CLUSTER, any_port());
    cfg.tls = tls;
    Node::start_with(cfg)
}

/// Two nodes with these TLS settings that know each other (1 dials 2).
fn tls_pair(a: Option<TlsConfig>, b: Option<TlsConfig>) -> (Node, Node) {
    let (a, b) = (start_tls(1, a), start_tls(2, b));
    // The acceptor first: a dial that reached a node not yet told of
    // its peer would be refused (and counted) and redialed.
    b.t.add_peer(1, a.addr());
    a.t.add_peer(2, b.addr());
    (a, b)
}

#[test]
fn tls_nodes_connect_and_carry_frames_both_ways() {
    let (a, b) = tls_pair(Some(tls("node1", "ca")), Some(tls("node2", "ca")));
    for seq in 0..200 {
        a.t.send(2, frame(seq, size_for(seq)), seq % 10 == 0);
        b.t.send(1, frame(seq, size_for(seq)), false);
    }
    wait_until("200 frames each way", || {
        a.received() == 200 && b.received() == 200
    });
    assert_eq!(a.seqs(2), (0..200).collect::<Vec<_>>());
    let mut got = b.seqs(1);
    // Priority frames may overtake: the set is whole.
    got.sort_unstable();
    assert_eq!(got, (0..200).collect::<Vec<_>>());
    for n in [&a, &b] {
        let s = n.t.stats();
        assert_eq!(s.connections_established, 1, "node {}: {s:?}", n.id);
        assert_eq!(s.handshakes_refused + s.handshakes_rejected_by_peer, 0);
        assert_eq!(s.tls_refused + s.tls_rejected_by_peer, 0, "{s:?}");
    }
    a.t.stop();
    b.t.stop();
}

/// Waits until `refuser` refused at least two handshakes for TLS (and,
/// when `refused_sees_it`, `refused` counted them as the peer's refusals),
/// then checks that nothing got through.
fn assert_refused_for_tls(refuser: &Node, refused: &Node, refused_sees_it: bool) {
    wait_until("two refusals for TLS", || {
        refuser.t.stats().tls_refused >= 2
            && (!refused_sees_it || refused.t.stats().tls_rejected_by_peer >= 2)
    });
    let s = refuser.t.stats();
    assert!(s.handshakes_refused >= s.tls_refused, "{s:?}");
    for n in [refuser, refused] {
        assert_eq!(n.t.stats().connections_established, 0, "node {}", n.id);
        assert_eq!(n.received(), 0, "node {}", n.id);
    }
    assert!(!refuser.t.connected(refused.id) && !refused.t.connected(refuser.id));
}

#[test]
fn a_dialer_whose_certificate_another_ca_signed_is_refused_and_counted() {
    // Node 1 trusts the cluster CA but presents another CA's certificate:
    // node 2 (accepting) refuses it and tells it so with an alert.
    let (a, b) = tls_pair(Some(tls("other", "ca")), Some(tls("node2", "ca")));
    a.t.send(2, frame(1, 100), false);
    assert_refused_for_tls(&b, &a, true);
}

#[test]
fn an_acceptor_whose_certificate_another_ca_signed_is_refused_and_counted() {
    let (a, b) = tls_pair(Some(tls("node1", "ca")), Some(tls("other", "ca")));
    a.t.send(2, frame(1, 100), false);
    assert_refused_for_tls(&a, &b, true);
}

#[test]
fn an_acceptor_whose_certificate_names_another_address_is_refused() {
    // Signed by the cluster CA, but for 127.0.0.2: the dialer reached
    // 127.0.0.1.
    let (a, b) = tls_pair(Some(tls("node1", "ca")), Some(tls("wrong-ip", "ca")));
    a.t.send(2, frame(1, 100), false);
    assert_refused_for_tls(&a, &b, true);
}

#[test]
fn a_plain_node_and_a_tls_node_refuse_each_other_both_ways() {
    for tls_dials in [true, false] {
        let (dialer_tls, acceptor_tls) = if tls_dials {
            (Some(tls("node1", "ca")), None)
        } else {
            (None, Some(tls("node2", "ca")))
        };
        let (a, b) = tls_pair(dialer_tls, acceptor_tls);
        a.t.send(2, frame(1, 100), false);
        // Each side counts the other as refused for TLS: the TLS node
        // because the peer does not speak it, the plain node because the
        // peer does (it says so in its log rather than "bad magic").
        let end = Instant::now() + DEADLINE;
        while a.t.stats().tls_refused < 2 || b.t.stats().tls_refused < 2 {
            assert!(
                Instant::now() < end,
                "tls dials {tls_dials}: both sides refused for TLS twice: {:?} {:?}",
                a.t.stats(),
                b.t.stats()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        for n in [&a, &b] {
            let s = n.t.stats();
            assert_eq!(s.connections_established, 0, "tls dials {tls_dials}: {s:?}");
            assert_eq!(n.received(), 0);
        }
    }
}

/// Both directions of every connection through it, recorded.
struct Recorder {
    addr: SocketAddr,
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    /// Listens on loopback and forwards each connection to `to`, both ways,
    /// keeping a copy of every byte (both directions together: the test
    /// only looks for patterns).
    fn start(to: SocketAddr) -> Recorder {
        let listener = TcpListener::bind(any_port()).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let bytes: Arc<Mutex<Vec<u8>>> = Arc::default();
        let seen = bytes.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                for (mut from, mut into) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    let seen = seen.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 << 10];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || into.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            seen.lock().extend_from_slice(&buf[..n]);
                        }
                        let _ = into.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Recorder { addr, bytes }
    }

    fn contains(&self, needle: &[u8]) -> bool {
        self.bytes.lock().windows(needle.len()).any(|w| w == needle)
    }
}

/// A frame whose payload carries a marker anyone reading the wire would
/// see: the length prefix, the sequence number, then the marker.
fn marked_frame(seq: u64) -> Bytes {
    let marker = b"muxraft-plaintext-marker-0123456789";
    let mut buf = Vec::new();
    buf.extend_from_slice(&((8 + marker.len()) as u32).to_be_bytes());
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(marker);
    Bytes::from(buf)
}

/// Runs two nodes (node 1 dialing node 2 through a recorder) with these TLS
/// settings, sends marked frames both ways, and returns the recorder.
fn capture(a_tls: Option<TlsConfig>, b_tls: Option<TlsConfig>) -> Recorder {
    let (a, b) = (start_tls(1, a_tls), start_tls(2, b_tls));
    let recorder = Recorder::start(b.addr());
    a.t.add_peer(2, recorder.addr);
    b.t.add_peer(1, a.addr());
    for seq in 0..50 {
        a.t.send(2, marked_frame(seq), seq % 2 == 0);
        b.t.send(1, marked_frame(1000 + seq), false);
    }
    wait_until("50 frames each way", || {
        a.received() == 50 && b.received() == 50
    });
    a.t.stop();
    b.t.stop();
    recorder
}

/// What would give a frame or a hello away on the wire: the hellos (magic,
/// version, cluster and node ids), the marker, and the first 12 bytes of
/// every frame (length prefix and sequence number).
fn plaintext_seen(r: &Recorder) -> Vec<String> {
    let mut seen = Vec::new();
    for id in [1, 2] {
        if r.contains(&Hello::new(CLUSTER, id).encode()) {
            seen.push(format!("hello of node {id}"));
        }
    }
    if r.contains(&handshake::HELLO_MAGIC) {
        seen.push("hello magic".into());
    }
    if r.contains(b"plaintext-marker") {
        seen.push("payload marker".into());
    }
    for seq in (0..50).chain(1000..1050) {
        if r.contains(&marked_frame(seq)[..12]) {
            seen.push(format!("frame header {seq}"));
        }
    }
    seen
}

#[test]
fn with_tls_no_hello_frame_header_or_payload_travels_in_the_clear() {
    // The same capture of a plain cluster sees all of them: the check can
    // fail.
    let plain = capture(None, None);
    let seen = plaintext_seen(&plain);
    assert!(
        seen.len() >= 2 + 1 + 1 + 100,
        "plain capture saw only {seen:?}"
    );

    let tls = capture(Some(tls("node1", "ca")), Some(tls("node2", "ca")));
    assert!(
        tls.bytes.lock().len() > 50 * 2 * 47,
        "the TLS capture holds at least the frames' bytes"
    );
    assert_eq!(plaintext_seen(&tls), Vec::<String>::new());
}

#[test]
fn tls_and_the_cluster_secret_combine_a_wrong_secret_inside_tls_is_still_refused() {
    let start = |id: u64, node: &str, s: u8| {
        let mut cfg = TransportConfig::new(id, CLUSTER, any_port());
        cfg.tls = Some(tls(node, "ca"));
        cfg.cluster_secret = Some(secret(s));
        Node::start_with(cfg)
    };
    // The same secret: TLS, then the proofs inside it, then frames.
    let (a, b) = (start(1, "node1", 1), start(2, "node2", 1));
    a.t.add_peer(2, b.addr());
    b.t.add_peer(1, a.addr());
    a.t.send(2, frame(1, 100), false);
    wait_until("a frame over TLS with the secret", || b.received() == 1);
    // Another secret: TLS passes, the secret does not.
    let c = start(3, "node3", 2);
    a.t.add_peer(3, c.addr());
    c.t.add_peer(1, a.addr());
    a.t.send(3, frame(2, 100), false);
    wait_until("two refusals for the secret", || {
        a.t.stats().auth_refused >= 2
    });
    let s = a.t.stats();
    assert_eq!(s.tls_refused + s.tls_rejected_by_peer, 0, "{s:?}");
    assert_eq!(c.received(), 0);
    assert!(!a.t.connected(3));
}
