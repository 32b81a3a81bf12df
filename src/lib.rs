//! muxraft: many Raft groups per node, with one heartbeat message per peer per
//! interval whatever the number of groups.
//!
//! Layers, top to bottom (see `DESIGN.md`): [`raft`] is one group as a pure
//! state machine; [`multi`] hosts many groups on a node and multiplexes their
//! heartbeats; [`wire`] is the byte format; [`storage`] the logs.

pub mod crc32c;
pub mod ffi;
pub(crate) mod idmap;
pub(crate) mod logging;
pub mod multi;
pub mod raft;
pub mod runtime;
pub mod storage;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub(crate) mod tombstones;
pub mod transport;
pub mod wire;
