//! The handshake on arbitrary bytes from the other side, both ways, with
//! and without a cluster secret: node 5 of cluster 0xC1 accepting a
//! connection (peers 3 and 7 known; 3 may dial it) or dialing node 7. The
//! first input byte picks the side and the secret; the rest is what the
//! peer sent before closing. Never a panic; a peer is accepted only after
//! a hello that passes every check; an acceptor's refusal is sent as the
//! refusal message of its reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muxraft::transport::handshake::fuzzing::{accept, dial, CLUSTER, LOWER_PEER, NODE};
use muxraft::transport::handshake::{HandshakeMessage, Hello, HELLO_LEN};
use muxraft::wire::PROTOCOL_VERSION;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let secret = mode & 1 != 0;
    let out = if mode & 2 == 0 {
        accept(input, secret)
    } else {
        dial(input, secret)
    };
    // The acceptor sends its refusal itself (the dialer's caller does).
    if let (Some(reason), 0) = (out.refused, mode & 2) {
        assert!(
            out.written.ends_with(&reason.encode()),
            "refused for {reason:?} but sent {:?}",
            out.written
        );
    }
    let Ok(peer) = out.result else {
        return;
    };
    // Success: the peer's first message was a hello of our cluster and
    // version, from the right node, with a secret exactly when we have one.
    let head: [u8; HELLO_LEN] = input[..HELLO_LEN]
        .try_into()
        .expect("a whole head was read");
    let HandshakeMessage::Hello(hello) = HandshakeMessage::decode(&head) else {
        panic!("accepted {head:?}, which is not a hello");
    };
    assert_eq!(hello.version, PROTOCOL_VERSION);
    assert_eq!(hello.cluster_id, CLUSTER);
    assert_eq!(hello.authenticating, secret);
    assert_eq!(hello.node_id, peer);
    // Without a secret, the answer (acceptor) or the question (dialer) is
    // exactly our own hello.
    if !secret {
        assert_eq!(out.written, Hello::new(CLUSTER, NODE).encode());
    }
    if mode & 2 == 0 {
        assert_eq!(peer, LOWER_PEER);
        // With a secret, the dialer's proof was right: only by chance
        // (2^-256), since our nonce is fresh.
        assert!(!secret, "a dialer proved a secret it could not know");
    }
});
