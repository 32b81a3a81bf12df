//! Running a node: the loop that takes its `NodeReady`, persists, sends,
//! delivers events and advances.
//!
//! [`SharedNode`] is that loop for a node shared between threads, where the
//! host moves bytes and time (host-driven mode): inputs may come from any
//! thread, and from inside the host's own callbacks, without deadlock or
//! reordering.

mod shared;

pub use shared::{Host, SharedNode};
