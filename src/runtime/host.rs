//! The host contract: what the host gives a node to tell it things.

use crate::multi::Event;

/// What a [`Runtime`](super::Runtime) tells its host. Called on the thread
/// that made the call (host-driven mode) or on the node's thread (embedded
/// mode); never on two threads at once for one node, and never with the
/// node's lock held, so a method may call the runtime back.
pub trait Host: Send + Sync {
    /// Host-driven mode: a frame for node `to` (length prefix included).
    /// `liveness` frames (heartbeat batches and their answers) should go
    /// ahead of bulk ones. Unused in embedded mode, where the transport
    /// carries frames.
    fn send(&self, to: u64, frame: &[u8], liveness: bool);
    /// An event, in the order it happened: a role change, a committed entry,
    /// a proposal's outcome.
    fn event(&self, ev: &Event);
}
