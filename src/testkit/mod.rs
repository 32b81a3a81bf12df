//! A deterministic cluster in one process, for tests, the seeded simulation
//! and the benchmarks (built with the `testkit` feature, which the crate's
//! own tests and benches turn on; not part of the library a host links).
//!
//! - [`Cluster`]: nodes running the real [`Node`](crate::multi::Node) and the
//!   real write-ahead log on an in-memory file system that can crash, with a
//!   host that creates and deletes groups the way a broker does;
//! - [`Net`]: the network between them, with loss, duplication, delay,
//!   reordering, partitions and one-way cuts;
//! - [`Checker`]: the invariants, checked on everything the nodes persist,
//!   send, apply and report.
//!
//! Everything random comes from one seed, so a run replays exactly.

mod check;
mod cluster;
mod membership;
mod net;
mod rng;

pub use check::{Check, CheckStats, Checker, Durable, GroupKey};
pub use cluster::{decode, Cluster, ClusterConfig, ClusterStats, GroupSpec, NodeFaults, Phases};
pub use net::{InFlight, Net, NetFaults, NetStats};
pub use rng::Rng;
