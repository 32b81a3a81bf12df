//! Running a node: the loop that takes its `NodeReady`, persists it,
//! sends, delivers events and advances.
//!
//! - [`SharedNode`]: that loop for a node shared between threads, where
//!   inputs may come from any thread and from inside the host's callbacks.
//! - [`Runtime`]: one node with its storage (memory or the WAL), driven by
//!   the host (`tick`/`step`, frames out through the [`Handler`]) or, after
//!   `start`, by its own thread, timer and TCP transport (embedded mode).

mod embedded;
mod error;
mod node;
mod shared;

pub use error::Error;
pub use node::{wal_batch, Handler, Runtime, RuntimeConfig};
pub use shared::{Host, SharedNode};
