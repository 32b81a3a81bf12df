//! The dialing side: one task per peer with a higher id than ours, keeping
//! one connection to it, redialing with backoff, forever until the
//! transport stops.

use std::sync::Arc;

use super::backoff::{self, Backoff};
use super::handshake::HandshakeError;
use super::peer::Peer;
use super::shared::Shared;
use super::stats::bump;
use super::{connection, handshake};

pub(crate) async fn dial_loop(shared: Arc<Shared>, peer: Arc<Peer>) {
    let mut addr_rx = peer.addr.subscribe();
    let mut backoff = Backoff::new(
        shared.cfg.reconnect_min,
        shared.cfg.reconnect_max,
        backoff::seed(shared.cfg.node_id, peer.id),
    );
    // What the peer said when it last refused us, logged once.
    let mut last_refusal: Option<String> = None;
    loop {
        let addr = *addr_rx.borrow_and_update();
        let Some(addr) = addr else {
            if addr_rx.changed().await.is_err() {
                return;
            }
            continue;
        };
        let dialed = tokio::time::timeout(
            shared.cfg.handshake_timeout,
            handshake::dial(&shared, peer.id, addr),
        )
        .await;
        match dialed {
            Ok(Ok(stream)) => {
                backoff.reset();
                last_refusal = None;
                let mut addr_changed = false;
                let mut closed = false;
                let until = async {
                    match addr_rx.changed().await {
                        Ok(()) => addr_changed = true,
                        Err(_) => closed = true,
                    }
                };
                connection::run(&shared, &peer, stream, until).await;
                if closed {
                    return;
                }
                if addr_changed {
                    tracing::debug!(peer = peer.id, "peer address changed: redialing");
                    continue;
                }
            }
            Ok(Err(err)) if err.is_tls() => {
                tracing::warn!(node = shared.cfg.node_id, peer = peer.id, %addr, %err, "dial failed: TLS");
            }
            Ok(Err(err)) if err.is_auth() => {
                tracing::warn!(node = shared.cfg.node_id, peer = peer.id, %addr, %err, "dial failed: cluster secret");
            }
            Ok(Err(err)) => {
                let refused = matches!(
                    err,
                    HandshakeError::RejectedByPeer(_) | HandshakeError::BadAnswer(_)
                );
                let said = err.to_string();
                if refused && last_refusal.as_ref() != Some(&said) {
                    // Once per reason: the dialer retries for ever.
                    tracing::warn!(peer = peer.id, %addr, "handshake with the peer refused: {said}");
                    last_refusal = Some(said);
                } else {
                    tracing::debug!(peer = peer.id, %addr, %err, "dial failed");
                }
            }
            Err(_) => {
                bump(&shared.stats.dial_failures);
                tracing::debug!(node = shared.cfg.node_id, peer = peer.id, %addr, "dial timed out");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            changed = addr_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                backoff.reset();
            }
        }
    }
}
