//! Many groups on one node: the group registry, tick fan-out, message
//! routing, and the heartbeat mux that sends one batch per peer per interval
//! whatever the number of groups (`heartbeat.rs`).

mod config;
mod error;
mod group;
mod heartbeat;
mod node;
mod registry;
mod stats;

pub use config::NodeConfig;
pub use error::{Error, ProposalError};
pub use node::{Event, GroupReady, Node, NodeReady, OutFrame};
pub use stats::{Count, FrameKind, Stats};

#[cfg(test)]
mod tests;
