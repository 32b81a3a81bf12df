//! Running a node: the loop that takes its `NodeReady`, persists it,
//! sends, delivers events and advances.
//!
//! - [`SharedNode`]: that loop for a node shared between threads, where
//!   inputs may come from any thread and from inside the host's callbacks.
//! - `Runtime` (with the WAL and transport): one node with its storage,
//!   driven by the host or, after `start`, by its own thread (embedded mode).

mod shared;

pub use shared::{Host, SharedNode};
