//! One established connection: a reader delivering whole frames, and a
//! writer draining the peer's queues, priority frames first.
//!
//! What a lost connection loses is described in the module documentation
//! of [`crate::transport`].

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::peer::Peer;
use super::shared::Shared;
use super::stats::{add, bump};
use crate::wire::{self, WireError, FRAME_HEADER_LEN};

/// Read buffer of a connection: enough for many small frames per syscall.
const READ_BUFFER: usize = 64 << 10;

/// The frame the writer is writing, and how many of its bytes are written.
#[derive(Default)]
struct InFlight {
    frame: Option<(Bytes, bool)>,
    written: usize,
}

/// Runs a handshaken connection to `peer` until it fails, the peer closes
/// it, a newer connection replaces it, `until` completes, or the runtime
/// stops.
pub(crate) async fn run(
    shared: &Shared,
    peer: &Arc<Peer>,
    stream: TcpStream,
    until: impl std::future::Future<Output = ()>,
) {
    let generation = shared.next_generation();
    let (close_tx, mut close_rx) = oneshot::channel::<()>();
    let _guard = peer.attach(generation, close_tx, &shared.stats);
    // One writer per peer at a time: wait for the connection this one
    // replaces (if any) to stop writing, and put back what it took.
    let writer = tokio::select! {
        writer = peer.writer.lock() => writer,
        _ = &mut close_rx => return,
    };
    tracing::debug!(
        node = shared.cfg.node_id,
        peer = peer.id,
        generation,
        "connection established"
    );
    let (rd, wr) = stream.into_split();
    let mut in_flight = InFlight::default();
    let outcome = tokio::select! {
        r = read_loop(shared, peer.id, rd) => r,
        r = write_loop(shared, peer, wr, &mut in_flight) => r,
        _ = &mut close_rx => Err(io::Error::other("replaced by a newer connection")),
        () = until => Err(io::Error::other("closed by this node")),
    };
    if let (Some((frame, priority)), 0) = (in_flight.frame.take(), in_flight.written) {
        peer.queue.lock().push_front(frame, priority);
    }
    drop(writer);
    match outcome {
        Ok(()) => tracing::debug!(peer = peer.id, generation, "peer closed the connection"),
        Err(err) => tracing::debug!(peer = peer.id, generation, %err, "connection closed"),
    }
}

/// Reads frames and delivers each whole one to the inbound callback; `Ok`
/// when the peer closes the connection between two frames.
async fn read_loop(shared: &Shared, peer_id: u64, rd: OwnedReadHalf) -> io::Result<()> {
    let mut rd = BufReader::with_capacity(READ_BUFFER, rd);
    loop {
        let mut header = [0u8; FRAME_HEADER_LEN];
        match rd.read_exact(&mut header).await {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(err) => return Err(err),
        }
        // Checked before allocating: a hostile or corrupt prefix costs
        // nothing but the connection.
        let len = match wire::frame_length(header, shared.cfg.max_frame_bytes) {
            Ok(len) => len,
            Err(err) => {
                if matches!(err, WireError::TooLarge { .. }) {
                    bump(&shared.stats.oversized_refused);
                } else {
                    bump(&shared.stats.malformed_refused);
                }
                tracing::warn!(peer = peer_id, %err, "closing the connection of a broken peer");
                return Err(io::Error::new(io::ErrorKind::InvalidData, err));
            }
        };
        let total = FRAME_HEADER_LEN + len;
        let mut buf = BytesMut::with_capacity(total);
        buf.extend_from_slice(&header);
        buf.resize(total, 0);
        rd.read_exact(&mut buf[FRAME_HEADER_LEN..]).await?;
        bump(&shared.stats.frames_received);
        add(&shared.stats.bytes_received, total as u64);
        (shared.inbound)(peer_id, buf.freeze());
    }
}

/// Writes queued frames, one whole frame at a time, always taking a priority
/// frame first when there is one; never returns `Ok`.
async fn write_loop(
    shared: &Shared,
    peer: &Peer,
    mut wr: OwnedWriteHalf,
    in_flight: &mut InFlight,
) -> io::Result<()> {
    loop {
        let next = peer.queue.lock().pop();
        let Some((frame, priority)) = next else {
            // A frame queued after `pop` left a permit: this returns at once.
            peer.wake.notified().await;
            continue;
        };
        in_flight.frame = Some((frame.clone(), priority));
        in_flight.written = 0;
        while in_flight.written < frame.len() {
            let n = wr.write(&frame[in_flight.written..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            in_flight.written += n;
        }
        in_flight.frame = None;
        bump(&shared.stats.frames_sent);
        add(&shared.stats.bytes_sent, frame.len() as u64);
    }
}
