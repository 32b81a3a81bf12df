//! Between the node's typed messages and the bytes on the wire: decoding a
//! frame a peer sent and stepping it, encoding what a node hands out. The
//! node's per-kind byte counters are filled here, where the bytes are.

use bytes::Bytes;

use super::error::Error;
use crate::multi::{Envelope, FrameKind, Node};
use crate::wire::{decode_frame_bytes, encode_frame};

/// An encoded frame for node `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutFrame {
    pub to: u64,
    pub kind: FrameKind,
    pub bytes: Bytes,
}

/// Decode `frame` (length prefix included) and step it into `node`.
/// `sender` is the peer the host knows sent it, if it knows; a frame
/// claiming another sender is refused. A frame that cannot be trusted
/// (malformed, too large, another cluster, another destination) is refused
/// whole and counted in the node's stats.
pub(crate) fn step_frame(
    node: &mut Node,
    max_frame_bytes: usize,
    sender: Option<u64>,
    frame: Bytes,
) -> Result<(), Error> {
    let len = frame.len();
    let f = match decode_frame_bytes(frame, max_frame_bytes) {
        Ok(f) => f,
        Err(e) => {
            node.record_rejected();
            return Err(Error::Wire(e));
        }
    };
    let expected = node.config().cluster_id;
    if f.cluster_id != expected {
        node.record_rejected();
        return Err(Error::WrongCluster {
            expected,
            got: f.cluster_id,
        });
    }
    if let Some(sender) = sender.filter(|&s| s != f.envelope.from) {
        node.record_rejected();
        return Err(Error::WrongSender {
            claimed: f.envelope.from,
            sender,
        });
    }
    let kind = f.envelope.body.kind();
    node.step(f.envelope)?;
    node.record_bytes_received(kind, len);
    Ok(())
}

/// Encode a message `node` handed out, counting its bytes.
#[cfg(any(test, feature = "testkit"))]
pub(crate) fn encode(node: &mut Node, env: &Envelope) -> OutFrame {
    let out = encode_only(node.config().cluster_id, env);
    node.record_bytes_sent(out.kind, out.bytes.len());
    out
}

/// Encode a message of cluster `cluster_id` without counting it (for
/// callers that count later, outside the node's lock).
pub(crate) fn encode_only(cluster_id: u64, env: &Envelope) -> OutFrame {
    OutFrame {
        to: env.to,
        kind: env.body.kind(),
        bytes: encode_frame(cluster_id, env),
    }
}
