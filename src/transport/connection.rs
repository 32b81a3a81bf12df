//! One established connection: a reader delivering whole frames, and a
//! writer draining the peer's queues, priority frames first.
//!
//! What a lost connection loses is described in the module documentation
//! of [`crate::transport`].

use std::io::{self, IoSlice};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;

use super::peer::Peer;
use super::queue::OutQueue;
use super::shared::Shared;
use super::stats::{add, bump};
use super::tls::Stream;
use crate::wire::{self, WireError, FRAME_HEADER_LEN};

/// Read buffer of a connection: enough for many small frames per syscall.
const READ_BUFFER: usize = 64 << 10;

/// A writer gathers queued frames into one vectored write until it holds
/// this many bytes (or [`WRITE_BATCH_FRAMES`] frames): many small frames per
/// syscall, while a priority frame queued meanwhile still waits for at most
/// this much (or one larger frame) ahead of it.
pub(crate) const WRITE_BATCH_BYTES: usize = 64 << 10;

/// At most this many frames per vectored write (well under every
/// platform's `IOV_MAX`).
pub(crate) const WRITE_BATCH_FRAMES: usize = 128;

/// The frames the writer is writing (each with whether it is a priority
/// frame), and how many bytes of them, counted from the first, are written.
#[derive(Default)]
struct InFlight {
    frames: Vec<(Bytes, bool)>,
    written: usize,
}

impl InFlight {
    /// Takes from `queue` the next frames to write: priority frames first,
    /// then in order, up to [`WRITE_BATCH_BYTES`] (at least one frame).
    fn fill(&mut self, queue: &mut OutQueue) {
        self.written = 0;
        let mut bytes = 0;
        while self.frames.len() < WRITE_BATCH_FRAMES && bytes < WRITE_BATCH_BYTES {
            let Some((frame, priority)) = queue.pop_within(WRITE_BATCH_BYTES - bytes, bytes == 0)
            else {
                break;
            };
            bytes += frame.len();
            self.frames.push((frame, priority));
        }
    }

    /// Puts the frames none of whose bytes were written back at the front
    /// of `queue`, in their order; drops a frame written in part.
    fn put_back(&mut self, queue: &mut OutQueue) {
        let mut start = 0;
        let mut unwritten = Vec::new();
        for (frame, priority) in self.frames.drain(..) {
            if start >= self.written {
                unwritten.push((frame.clone(), priority));
            }
            start += frame.len();
        }
        for (frame, priority) in unwritten.into_iter().rev() {
            queue.push_front(frame, priority);
        }
        self.written = 0;
    }
}

/// Runs a handshaken connection to `peer` until it fails, the peer closes
/// it, a newer connection replaces it, `until` completes, or the runtime
/// stops.
pub(crate) async fn run(
    shared: &Shared,
    peer: &Arc<Peer>,
    stream: Stream,
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
    tracing::info!(peer = peer.id, generation, "peer connected");
    let mut in_flight = InFlight::default();
    let closed = async {
        tokio::select! {
            _ = &mut close_rx => io::Error::other("replaced by a newer connection"),
            () = until => io::Error::other("closed by this node"),
        }
    };
    // A plain stream splits into owned halves that share no lock; a TLS
    // stream's halves share its one session.
    let outcome = match stream {
        Stream::Plain(tcp) => {
            let (rd, wr) = tcp.into_split();
            serve(shared, peer, rd, wr, &mut in_flight, closed).await
        }
        Stream::Tls(tls) => {
            let (rd, wr) = tokio::io::split(*tls);
            serve(shared, peer, rd, wr, &mut in_flight, closed).await
        }
    };
    in_flight.put_back(&mut peer.queue.lock());
    drop(writer);
    match outcome {
        Ok(()) => tracing::info!(
            peer = peer.id,
            generation,
            "peer connection lost: closed by the peer"
        ),
        Err(err) => tracing::info!(peer = peer.id, generation, %err, "peer connection lost"),
    }
}

/// Runs the reader and the writer of a connection until either ends or
/// `closed` completes.
async fn serve(
    shared: &Shared,
    peer: &Peer,
    rd: impl AsyncRead + Unpin,
    wr: impl AsyncWrite + Unpin,
    in_flight: &mut InFlight,
    closed: impl std::future::Future<Output = io::Error>,
) -> io::Result<()> {
    tokio::select! {
        r = read_loop(shared, peer.id, rd) => r,
        r = write_loop(shared, peer, wr, in_flight) => r,
        err = closed => Err(err),
    }
}

/// Reads frames and delivers each whole one to the inbound callback; `Ok`
/// when the peer closes the connection between two frames.
async fn read_loop(shared: &Shared, peer_id: u64, rd: impl AsyncRead + Unpin) -> io::Result<()> {
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

/// Writes queued frames, many per vectored write, always taking priority
/// frames first; never returns `Ok`.
async fn write_loop(
    shared: &Shared,
    peer: &Peer,
    mut wr: impl AsyncWrite + Unpin,
    in_flight: &mut InFlight,
) -> io::Result<()> {
    loop {
        in_flight.fill(&mut peer.queue.lock());
        if in_flight.frames.is_empty() {
            // A frame queued after `fill` left a permit: this returns at once.
            peer.wake.notified().await;
            continue;
        }
        let total: usize = in_flight.frames.iter().map(|(f, _)| f.len()).sum();
        while in_flight.written < total {
            // One allocation per write, for many frames.
            let mut iov = Vec::with_capacity(in_flight.frames.len());
            let mut skip = in_flight.written;
            for (frame, _) in &in_flight.frames {
                if skip >= frame.len() {
                    skip -= frame.len();
                    continue;
                }
                iov.push(IoSlice::new(&frame[skip..]));
                skip = 0;
            }
            let n = wr.write_vectored(&iov).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            in_flight.written += n;
        }
        // TLS: the session may hold the last records until flushed (plain
        // TCP: nothing to do).
        wr.flush().await?;
        add(&shared.stats.frames_sent, in_flight.frames.len() as u64);
        add(&shared.stats.bytes_sent, total as u64);
        in_flight.frames.clear();
        in_flight.written = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, len: usize) -> Bytes {
        Bytes::from(vec![tag; len])
    }

    fn tags(q: &mut OutQueue) -> Vec<(u8, bool)> {
        std::iter::from_fn(|| q.pop())
            .map(|(f, p)| (f[0], p))
            .collect()
    }

    #[test]
    fn a_write_batch_takes_priority_frames_first_and_stops_at_its_size() {
        let mut q = OutQueue::default();
        let max = 1 << 20;
        assert!(q.push(frame(1, 1000), false, true, max));
        assert!(q.push(frame(2, WRITE_BATCH_BYTES), false, true, max));
        assert!(q.push(frame(3, 10), true, true, max));
        let mut w = InFlight::default();
        w.fill(&mut q);
        let got: Vec<(u8, bool)> = w.frames.iter().map(|(f, p)| (f[0], *p)).collect();
        // Frame 2 would take the batch past its size: it waits.
        assert_eq!(got, [(3, true), (1, false)]);
        w.frames.clear();
        // A frame larger than a batch goes out alone.
        w.fill(&mut q);
        assert_eq!(w.frames.len(), 1);
        assert_eq!(w.frames[0].0.len(), WRITE_BATCH_BYTES);
    }

    #[test]
    fn a_lost_connection_puts_back_the_unwritten_frames_in_order_and_drops_a_partial_one() {
        let mut q = OutQueue::default();
        let max = 1 << 20;
        for tag in 1..=4 {
            assert!(q.push(frame(tag, 10), false, true, max));
        }
        assert!(q.push(frame(9, 10), true, true, max));
        let mut w = InFlight::default();
        w.fill(&mut q);
        assert_eq!(w.frames.len(), 5);
        // Frame 9 and frame 1 written, frame 2 in part, 3 and 4 not at all.
        w.written = 25;
        assert!(q.push(frame(5, 10), false, true, max));
        w.put_back(&mut q);
        assert_eq!(tags(&mut q), [(3, false), (4, false), (5, false)]);
        assert!(w.frames.is_empty());

        // Nothing written: everything goes back, the priority frame first.
        for tag in 1..=2 {
            assert!(q.push(frame(tag, 10), false, true, max));
        }
        assert!(q.push(frame(9, 10), true, true, max));
        w.fill(&mut q);
        w.put_back(&mut q);
        assert_eq!(tags(&mut q), [(9, true), (1, false), (2, false)]);
    }
}
