//! The accepting side: the listener, and the handshake of each incoming
//! connection.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::shared::Shared;
use super::stats::bump;
use super::{connection, handshake};

/// Connections accepted at once whose handshake is not done; more are
/// closed at once, so that a flood of idle connections costs little.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// Accepts connections until the runtime stops.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                if shared.pending_handshakes.fetch_add(1, Ordering::AcqRel)
                    >= MAX_PENDING_HANDSHAKES
                {
                    shared.pending_handshakes.fetch_sub(1, Ordering::AcqRel);
                    bump(&shared.stats.handshakes_refused);
                    tracing::warn!(%remote, "too many pending handshakes: connection dropped");
                    continue;
                }
                tokio::spawn(accept_one(shared.clone(), stream, remote));
            }
            Err(err) => {
                // Typically out of file descriptors: wait instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn accept_one(shared: Arc<Shared>, stream: TcpStream, remote: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let result = tokio::time::timeout(
        shared.cfg.handshake_timeout,
        handshake::accept(&shared, stream),
    )
    .await;
    shared.pending_handshakes.fetch_sub(1, Ordering::AcqRel);
    match result {
        Ok(Ok((peer, stream))) => {
            connection::run(&shared, &peer, stream, std::future::pending()).await
        }
        Ok(Err(err)) if err.is_tls() => {
            tracing::warn!(node = shared.cfg.node_id, %remote, %err, "connection refused: TLS");
        }
        Ok(Err(err)) if err.is_auth() => {
            tracing::warn!(node = shared.cfg.node_id, %remote, %err, "handshake failed: cluster secret");
        }
        Ok(Err(err)) => {
            tracing::warn!(%remote, "connection refused: {err}");
        }
        Err(_) => {
            bump(&shared.stats.handshakes_refused);
            tracing::warn!(%remote, "connection refused: handshake timed out");
        }
    }
}
