//! Running a node: a [`Runtime`] is one node with its storage (memory or
//! the write-ahead log), driven by the host (host-driven mode: `tick` and
//! `step` on the host's threads, frames out through the [`Host`]) or, after
//! `start`, by its own thread, timer and TCP transport (embedded mode). The
//! C API wraps exactly this.
//!
//! Files, each importing only those listed before it: `error.rs` (why a
//! call failed), `host.rs` (the [`Host`] trait: what the node tells its
//! host), `codec.rs` (frames to typed messages and back, with their byte
//! counts), `disk.rs` (the write-ahead log and snapshot files as the runtime
//! uses them: persist a pass, recover, keep the directory bounded),
//! `elections.rs` (elections per second, for the operator's log),
//! `drive.rs` (the drive loop: persist, send, deliver, advance, for a node
//! shared between threads), `embedded.rs` (the node's own thread and
//! transport), `metrics.rs` (the counters and gauges as Prometheus text);
//! this file holds the [`Runtime`] itself.

mod codec;
mod disk;
mod drive;
mod elections;
mod embedded;
mod error;
mod host;
mod metrics;

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

pub use codec::OutFrame;
#[cfg(any(test, feature = "testkit"))]
pub(crate) use codec::{encode, step_frame};
#[cfg(any(test, feature = "testkit"))]
pub(crate) use disk::{creation_batch, removal_batch};
pub use disk::{wal_batch, DiskStats, Recovery};
pub(crate) use disk::{Creation, Disk};
pub use error::Error;
pub use host::Host;
pub use metrics::{render as render_metrics, GroupRow, Metrics};

use disk::check_snapshot_size;
use drive::{Pass, SharedNode};
use embedded::{Embedded, Link};

use crate::multi::{
    self, KeyMetrics, KeyMetricsTable, MemberInfo, Node, NodeConfig, QuietGauges, Stats,
};
use crate::raft::MemberRole;
use crate::raft::Status;
use crate::storage::{RealFs, StorageOptions, WalOptions};
use crate::transport::{ClusterSecret, TlsConfig, TransportStats};
use crate::wire::DEFAULT_MAX_FRAME_BYTES;

/// How a node runs.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    pub node: NodeConfig,
    /// Embedded mode: the node's own tick interval.
    pub tick: Duration,
    /// None: state in memory only. Some: the write-ahead log's directory;
    /// groups found there are recovered when the runtime is created.
    pub data_dir: Option<PathBuf>,
    /// Frames (envelopes) longer than this are refused unread, from a peer
    /// or from the host.
    pub max_frame_bytes: usize,
    /// With a data directory: the WAL's segment size.
    pub wal_segment_bytes: u64,
    /// [`Runtime::metrics`] includes per-group rows only when the node
    /// hosts at most this many groups (0: never), so that a node with
    /// 100,000 groups does not render 100,000 series unless asked to.
    pub metrics_per_group_max: u64,
    /// Embedded mode: None, peers are not authenticated; Some, every
    /// connection proves both ways that the peer has this same secret (see
    /// [`crate::transport::handshake`]), and a peer without it is refused.
    /// Host-driven mode does not use it: the host's transport owns the
    /// links between nodes, and their security.
    pub cluster_secret: Option<ClusterSecret>,
    /// Turn the node's leader balancer on when it starts in embedded mode
    /// (`NodeConfig::balance_leaders` covers host-driven mode too).
    pub balance_leaders_when_embedded: bool,
    /// Embedded mode: None, plain TCP between nodes; Some, mutual TLS
    /// against the cluster CA on every connection (see
    /// [`crate::transport::tls`]). Host-driven mode does not use it.
    pub tls: Option<TlsConfig>,
}

impl RuntimeConfig {
    pub fn new(node: NodeConfig) -> RuntimeConfig {
        RuntimeConfig {
            node,
            tick: Duration::from_millis(50),
            data_dir: None,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            wal_segment_bytes: WalOptions::DEFAULT_SEGMENT_BYTES,
            metrics_per_group_max: 0,
            cluster_secret: None,
            balance_leaders_when_embedded: false,
            tls: None,
        }
    }
}

enum Mode {
    HostDriven,
    Embedded(Embedded),
    Stopped,
}

/// A group replica as [`Runtime::group_info`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    pub status: Status,
    pub incarnation: u64,
    /// Payload bytes of the log in memory, and of the latest snapshot kept
    /// there for followers that need it.
    pub log_bytes_memory: u64,
    pub snapshot_bytes_memory: u64,
    /// With a data directory: bytes of the group's log in the WAL (an
    /// estimate), and of its snapshot files.
    pub log_bytes_disk: u64,
    pub snapshot_bytes_disk: u64,
    /// Backpressure: proposals made here still waiting to be decided, and
    /// payload bytes of entries not yet durable here.
    pub pending_proposals: u64,
    pub unsynced_bytes: u64,
}

/// One node: its groups, its storage, and whoever drives it.
pub struct Runtime {
    shared: Arc<SharedNode>,
    disk: Option<Arc<Disk>>,
    /// What recovery found at creation.
    recovery: Recovery,
    host: Arc<dyn Host>,
    tick: Duration,
    max_frame_bytes: usize,
    /// The node's cluster (fixed at creation), to check frames against
    /// without the node's lock.
    cluster_id: u64,
    peers: Mutex<BTreeMap<u64, SocketAddr>>,
    mode: Mutex<Mode>,
    /// The transport's counters when it stopped (they stay readable).
    last_transport: Mutex<TransportStats>,
    metrics_per_group_max: u64,
    cluster_secret: Option<ClusterSecret>,
    balance_leaders_when_embedded: bool,
    tls: Option<TlsConfig>,
    /// The groups' key metrics, shared with the node: read without the
    /// node's lock (`multi/key_metrics.rs`).
    key_metrics: Arc<KeyMetricsTable>,
}

fn resolve(addr: &str) -> Result<SocketAddr, Error> {
    addr.to_socket_addrs()
        .map_err(|e| Error::invalid(format!("address {addr:?}: {e}")))?
        .next()
        .ok_or_else(|| Error::invalid(format!("address {addr:?} resolves to nothing")))
}

/// Remove group `group_id` from `shared` and record that in the WAL.
fn remove_group(shared: &SharedNode, disk: Option<&Disk>, group_id: u64) -> Result<(), Error> {
    // The removal record must not reach the WAL between a pass taking this
    // group's writes and writing them. From inside a callback the pass has
    // written them already, and the record's write syncs them first.
    shared.exclusive(|n| -> Result<(), Error> {
        let removed = n.remove_group(group_id)?;
        // Events of this pass not yet delivered (when removed from inside
        // a callback) must not reach the host as the new group's.
        shared.note_removal();
        if let Some(disk) = disk {
            disk.write(&disk::removal_batch(group_id, &removed))?;
            disk.forget_group(group_id);
        }
        Ok(())
    })
}

impl Runtime {
    /// Create a node; with a data directory, open its WAL and recover every
    /// group it holds.
    pub fn new(cfg: RuntimeConfig, host: Arc<dyn Host>) -> Result<Runtime, Error> {
        if cfg.tick.is_zero() {
            return Err(Error::invalid("tick must be non-zero"));
        }
        // An append carrying one maximal proposal must fit in a frame.
        if cfg.node.max_proposal_bytes as u64 + 4096 > cfg.max_frame_bytes as u64 {
            return Err(Error::invalid(
                "max_proposal_bytes does not fit in max_frame_bytes",
            ));
        }
        // A chunk of a snapshot must fit in a frame too.
        if cfg.node.snapshot_chunk_bytes + 4096 > cfg.max_frame_bytes as u64 {
            return Err(Error::invalid(
                "snapshot_chunk_bytes does not fit in max_frame_bytes",
            ));
        }
        let max_snapshot_bytes = cfg.node.max_snapshot_bytes;
        let mut node = Node::new(cfg.node)?;
        let mut recovery = Recovery::default();
        let disk = match cfg.data_dir {
            None => None,
            Some(dir) => {
                let opts = StorageOptions {
                    segment_bytes: cfg.wal_segment_bytes,
                    max_snapshot_bytes,
                };
                let (disk, recovered) = Disk::open(&dir, Arc::new(RealFs), opts)?;
                tracing::info!(
                    groups = recovered.groups.len(),
                    truncated_tail_bytes = recovered.truncated_tail_bytes,
                    bad_snapshot_files = recovered.bad_snapshot_files,
                    "recovered the data directory"
                );
                recovery = disk.recover_into(&mut node, recovered)?;
                Some(Arc::new(disk))
            }
        };
        let key_metrics = node.key_metrics_table();
        let cluster_id = node.config().cluster_id;
        let rt = Runtime {
            key_metrics,
            shared: Arc::new(SharedNode::new(node)),
            disk,
            recovery,
            host,
            tick: cfg.tick,
            max_frame_bytes: cfg.max_frame_bytes,
            cluster_id,
            peers: Mutex::new(BTreeMap::new()),
            mode: Mutex::new(Mode::HostDriven),
            last_transport: Mutex::new(TransportStats::default()),
            metrics_per_group_max: cfg.metrics_per_group_max,
            cluster_secret: cfg.cluster_secret,
            balance_leaders_when_embedded: cfg.balance_leaders_when_embedded,
            tls: cfg.tls,
        };
        if rt.recovery.restored > 0 {
            // The host restores its state machines now, before anything
            // else can reach it (committed entries after a snapshot are
            // applied in the same pass, after it).
            rt.drive_host()?;
        }
        Ok(rt)
    }

    /// What recovery found when this runtime was created.
    pub fn recovery(&self) -> Recovery {
        self.recovery
    }

    /// Refuse every further call: a bug was caught inside the node and its
    /// state can no longer be trusted.
    pub fn poison(&self) {
        self.shared.poison();
    }

    pub fn node_id(&self) -> u64 {
        self.shared.with(|n| n.id())
    }

    fn check_usable(&self) -> Result<(), Error> {
        self.shared.check()?;
        if matches!(*self.mode.lock(), Mode::Stopped) {
            return Err(Error::Shutdown);
        }
        Ok(())
    }

    /// After an input: host-driven, run the work now on this thread;
    /// embedded, wake the node's thread.
    fn kick(&self) -> Result<(), Error> {
        let mode = self.mode.lock();
        match &*mode {
            Mode::Embedded(e) => {
                e.wake();
                Ok(())
            }
            Mode::Stopped => Ok(()),
            Mode::HostDriven => {
                drop(mode);
                self.drive_host()
            }
        }
    }

    fn drive_host(&self) -> Result<(), Error> {
        let host = self.host.as_ref();
        let send = |f: OutFrame| host.send(f.to, &f.bytes, f.kind.is_heartbeat());
        self.shared.drive(&Pass {
            disk: self.disk.as_deref(),
            send: &send,
            host,
            inbound: None,
        })
    }

    /// Create this node's replica of a group (see
    /// [`Node::create_group`](crate::multi::Node::create_group) for what
    /// `incarnation` must be). With a WAL the group's creation is durable
    /// before this returns.
    pub fn create_group(
        &self,
        group_id: u64,
        incarnation: u64,
        members: &[u64],
    ) -> Result<(), Error> {
        self.add_group(group_id, incarnation, members, Creation::Create)
    }

    /// Create this node's empty replica of an existing group that it is
    /// being added to (see
    /// [`Node::join_group`](crate::multi::Node::join_group)); durable
    /// before this returns, like a creation.
    pub fn join_group(&self, group_id: u64, incarnation: u64) -> Result<(), Error> {
        self.add_group(group_id, incarnation, &[], Creation::Join)
    }

    /// Create this node's replica of a group that exists on the other
    /// members, after this node lost what it held of it (its data directory
    /// was deleted or replaced): see
    /// [`Node::rejoin_group`](crate::multi::Node::rejoin_group). The replica
    /// never votes, for as long as it lives (the mark is durable).
    pub fn rejoin_group(
        &self,
        group_id: u64,
        incarnation: u64,
        members: &[u64],
    ) -> Result<(), Error> {
        self.add_group(group_id, incarnation, members, Creation::Rejoin)
    }

    /// Create or rejoin a replica in the node, then make it durable; if the
    /// write fails the replica is taken out again.
    fn add_group(
        &self,
        group_id: u64,
        incarnation: u64,
        members: &[u64],
        how: Creation,
    ) -> Result<(), Error> {
        self.check_usable()?;
        self.shared.with(|n| -> Result<(), Error> {
            match how {
                Creation::Rejoin => n.rejoin_group(group_id, incarnation, members)?,
                Creation::Create => n.create_group(group_id, incarnation, members)?,
                Creation::Join => n.join_group(group_id, incarnation)?,
            }
            if let Some(disk) = &self.disk {
                let batch = disk::creation_batch(n, group_id, incarnation, members, how);
                if let Err(e) = disk.write(&batch) {
                    let _ = n.remove_group(group_id);
                    return Err(e);
                }
            }
            Ok(())
        })?;
        self.kick()
    }

    /// The host's state machine of group `group_id` after applying `index`
    /// is `data`: make it durable (a snapshot file), then compact the
    /// group's log up to the trailing window and record that in the WAL.
    /// Returns once the snapshot is durable and the log compacted. `index`
    /// must have been applied (handed to the host, from inside its apply
    /// callback included) and be after the group's current snapshot.
    pub fn snapshot(&self, group_id: u64, index: u64, data: Bytes) -> Result<(), Error> {
        self.check_usable()?;
        let max = self.shared.with(|n| n.config().max_snapshot_bytes);
        check_snapshot_size(&data, max)?;
        let (meta, incarnation) = self.shared.with(|n| -> Result<_, multi::Error> {
            let inc = n
                .group_incarnation(group_id)
                .ok_or(multi::Error::NotFound(group_id))?;
            Ok((n.snapshot_meta_at(group_id, index)?, inc))
        })?;
        // Durable first, outside the node's lock (it may be large).
        if let Some(disk) = &self.disk {
            disk.save_snapshot(group_id, incarnation, &meta, &data)?;
        }
        // No pass in flight while the log is compacted and the compaction
        // recorded: upkeep, which rewrites logs from the node's store, must
        // not see one without the other.
        let r = self.shared.exclusive(|n| -> Result<(), Error> {
            if n.group_incarnation(group_id) != Some(incarnation) {
                // Removed (and maybe created again) meanwhile.
                return Err(multi::Error::NotFound(group_id).into());
            }
            let point = n.take_snapshot(group_id, meta, data)?;
            if let Some(disk) = &self.disk {
                disk.record_compaction(n, group_id, incarnation, point)?;
            }
            Ok(())
        });
        if let Err(Error::Storage(e)) = r {
            // The compaction is done in memory but its record may not be:
            // what reached the disk is unknown.
            self.shared.fail_storage();
            return Err(Error::Storage(e));
        }
        r?;
        self.kick()
    }

    pub fn remove_group(&self, group_id: u64) -> Result<(), Error> {
        self.check_usable()?;
        remove_group(&self.shared, self.disk.as_deref(), group_id)?;
        self.kick()
    }

    pub fn group_status(&self, group_id: u64) -> Result<Status, Error> {
        Ok(self.shared.with(|n| n.group_status(group_id))?)
    }

    /// A group's status, incarnation and the bytes it holds.
    pub fn group_info(&self, group_id: u64) -> Result<GroupInfo, Error> {
        let mut info = self.shared.with(|n| -> Result<GroupInfo, multi::Error> {
            let status = n.group_status(group_id)?;
            let (log_memory, snapshot_memory) = n.group_memory(group_id).unwrap_or_default();
            let (pending, unsynced) = n.group_pressure(group_id).unwrap_or_default();
            Ok(GroupInfo {
                status,
                incarnation: n.group_incarnation(group_id).unwrap_or(0),
                log_bytes_memory: log_memory,
                snapshot_bytes_memory: snapshot_memory,
                log_bytes_disk: 0,
                snapshot_bytes_disk: 0,
                pending_proposals: pending,
                unsynced_bytes: unsynced,
            })
        })?;
        if let Some(disk) = &self.disk {
            (info.log_bytes_disk, info.snapshot_bytes_disk) = disk.group_bytes(group_id);
        }
        Ok(info)
    }

    /// A group's key metrics (role, term, leader, commit, applied, last
    /// index, snapshot index, log bytes, membership, quiesced) as of its
    /// last pass, read from atomics the node publishes: this never waits
    /// for the node (its lock, a pass, an fsync or a callback), so any
    /// thread may call it at any time, from inside a callback too, and
    /// after `stop`. Fields may be from adjacent moments (see
    /// [`KeyMetrics`]).
    pub fn key_metrics(&self, group_id: u64) -> Result<KeyMetrics, Error> {
        self.key_metrics
            .get(group_id)
            .ok_or_else(|| multi::Error::NotFound(group_id).into())
    }

    pub fn propose(&self, group_id: u64, data: Bytes) -> Result<u64, Error> {
        self.propose_then(group_id, data, |_| {})
    }

    /// Like [`propose`](Runtime::propose), handing the proposal id to
    /// `accepted` before any callback about it can run (in host-driven mode
    /// the commit of a single-replica group is reported inside this call).
    pub fn propose_then(
        &self,
        group_id: u64,
        data: Bytes,
        accepted: impl FnOnce(u64),
    ) -> Result<u64, Error> {
        self.check_usable()?;
        let id = {
            // Held across the check and the proposal: `stop` sets Stopped
            // under this lock, so a proposal is either accepted before the
            // node's final pass (which reports it) or refused here.
            let mode = self.mode.lock();
            if matches!(*mode, Mode::Stopped) {
                return Err(Error::Shutdown);
            }
            self.shared.with(|n| n.propose(group_id, data))?
        };
        accepted(id);
        self.kick()?;
        Ok(id)
    }

    /// Take a linearizable read of a group this node leads (see
    /// `Node::read_index`); `accepted` gets its id before any callback can
    /// report it.
    pub fn read_index_then(&self, group_id: u64, accepted: impl FnOnce(u64)) -> Result<u64, Error> {
        self.check_usable()?;
        let id = {
            // As for proposals: a read is accepted before the final pass
            // (which reports it) or refused here.
            let mode = self.mode.lock();
            if matches!(*mode, Mode::Stopped) {
                return Err(Error::Shutdown);
            }
            self.shared.with(|n| n.read_index(group_id))?
        };
        accepted(id);
        self.kick()?;
        Ok(id)
    }

    /// Hand leadership of a group this node leads to node `to` (see
    /// `Node::transfer_leader`).
    pub fn transfer_leader(&self, group_id: u64, to: u64) -> Result<(), Error> {
        self.check_usable()?;
        {
            let mode = self.mode.lock();
            if matches!(*mode, Mode::Stopped) {
                return Err(Error::Shutdown);
            }
            self.shared.with(|n| n.transfer_leader(group_id, to))?;
        }
        self.kick()
    }

    /// Propose adding `member` to a group this node leads, or changing its
    /// role (see `Node::add_member`); returns the configuration entry's
    /// index.
    pub fn add_member(&self, group_id: u64, member: u64, role: MemberRole) -> Result<u64, Error> {
        self.leader_call(|n| n.add_member(group_id, member, role))
    }

    /// Propose removing `member` from a group this node leads (see
    /// `Node::remove_member`).
    pub fn remove_member(&self, group_id: u64, member: u64) -> Result<u64, Error> {
        self.leader_call(|n| n.remove_member(group_id, member))
    }

    /// The group's members as this replica sees them.
    pub fn members(&self, group_id: u64) -> Result<Vec<MemberInfo>, Error> {
        Ok(self.shared.with(|n| n.members(group_id))?)
    }

    /// A call on the node that may start work (then the node thread is
    /// woken): refused once stopped.
    fn leader_call<T>(
        &self,
        f: impl FnOnce(&mut Node) -> Result<T, multi::Error>,
    ) -> Result<T, Error> {
        self.check_usable()?;
        let out = {
            let mode = self.mode.lock();
            if matches!(*mode, Mode::Stopped) {
                return Err(Error::Shutdown);
            }
            self.shared.with(f)?
        };
        self.kick()?;
        Ok(out)
    }

    /// The node's counters, its number of groups, (embedded mode) the
    /// transport's counters, (with a data directory) storage's, and the
    /// quiescence and liveness gauges.
    pub fn stats(&self) -> (Stats, usize, TransportStats, DiskStats, QuietGauges) {
        let (stats, groups, quiet) = self
            .shared
            .with(|n| (n.stats().clone(), n.group_count(), n.quiet_gauges()));
        let transport = match &*self.mode.lock() {
            Mode::Embedded(e) => e.transport_stats(),
            _ => self.last_transport.lock().clone(),
        };
        let disk = self.disk.as_ref().map(|d| d.stats()).unwrap_or_default();
        (stats, groups, transport, disk, quiet)
    }

    /// The numbers a metrics scrape renders: the node-level ones copied
    /// under the node's lock, which is held no longer than the copy; the
    /// per-group rows, when wanted, from the key metrics, without it.
    /// Render them with [`render_metrics`], outside any lock.
    pub fn metrics(&self) -> Metrics {
        let max = self.metrics_per_group_max;
        let mut m = self.shared.with(|n| Metrics {
            node_id: n.id(),
            stats: n.stats().clone(),
            groups: n.group_count() as u64,
            quiet: n.quiet_gauges(),
            peers: n.peer_liveness(),
            ..Metrics::default()
        });
        if m.groups > 0 && m.groups <= max {
            let rows = usize::try_from(max).unwrap_or(usize::MAX);
            m.group_rows = (self.key_metrics.all_up_to(rows).unwrap_or_default())
                .into_iter()
                .map(|(group_id, metrics)| GroupRow {
                    group_id,
                    metrics,
                    log_bytes_disk: 0,
                })
                .collect();
        }
        m.transport = match &*self.mode.lock() {
            Mode::Embedded(e) => e.transport_stats(),
            _ => self.last_transport.lock().clone(),
        };
        if let Some(disk) = &self.disk {
            m.disk = disk.stats();
            for row in &mut m.group_rows {
                row.log_bytes_disk = disk.group_bytes(row.group_id).0;
            }
        }
        m
    }

    /// The node's counters and gauges as Prometheus text (see
    /// [`Runtime::metrics`] and [`render_metrics`]).
    pub fn metrics_text(&self) -> String {
        render_metrics(&self.metrics())
    }

    /// Each peer with whether this node hears it and its liveness epoch.
    pub fn peer_liveness(&self) -> Vec<(u64, bool, u64)> {
        self.shared.with(|n| n.peer_liveness())
    }

    pub fn max_snapshot_bytes(&self) -> u64 {
        self.shared.with(|n| n.config().max_snapshot_bytes)
    }

    pub fn max_proposal_bytes(&self) -> usize {
        self.shared.with(|n| n.config().max_proposal_bytes)
    }

    /// The longest frame `step` takes: the 4-byte prefix and the limit.
    pub fn max_step_len(&self) -> usize {
        self.max_frame_bytes.saturating_add(4)
    }

    /// A frame of `len` bytes, over `max_step_len`, handed to `step`:
    /// counted as refused, and the error to return.
    pub fn refuse_oversized(&self, len: usize) -> Error {
        self.shared.with(|n| n.record_rejected());
        Error::Wire(crate::wire::WireError::TooLarge {
            len: len.saturating_sub(4),
            max: self.max_frame_bytes,
        })
    }

    fn host_driven(&self) -> Result<(), Error> {
        self.check_usable()?;
        match *self.mode.lock() {
            Mode::HostDriven => Ok(()),
            Mode::Embedded(_) => Err(Error::Mode(
                "the node is started: muxraft runs its own timer and transport",
            )),
            Mode::Stopped => Err(Error::Shutdown),
        }
    }

    /// Host-driven mode: one tick.
    pub fn tick(&self) -> Result<(), Error> {
        self.host_driven()?;
        self.shared.tick();
        self.drive_host()
    }

    /// Host-driven mode: a frame (length prefix included) that node `from`
    /// sent.
    pub fn step(&self, from: u64, frame: &[u8]) -> Result<(), Error> {
        self.host_driven()?;
        let max = self.max_frame_bytes;
        // Refused before it is copied: a caller's length is not to be
        // trusted with an allocation (a frame is a 4-byte prefix and at
        // most `max` bytes).
        if frame.len() > self.max_step_len() {
            return Err(self.refuse_oversized(frame.len()));
        }
        let frame = Bytes::copy_from_slice(frame);
        // Decoded before the node's lock is taken (see `input_loop`).
        let checked = codec::decode_checked(self.cluster_id, max, Some(from), frame);
        self.shared.with(|n| match checked {
            Ok(d) => codec::step_decoded(n, d),
            Err(e) => {
                n.record_rejected();
                Err(e)
            }
        })?;
        self.drive_host()
    }

    /// Tell the node where peer `node_id` listens ("host:port").
    pub fn add_peer(&self, node_id: u64, address: &str) -> Result<(), Error> {
        self.check_usable()?;
        if node_id == 0 {
            return Err(Error::invalid("peer node id must be non-zero"));
        }
        if node_id == self.node_id() {
            return Err(Error::invalid("a node is not its own peer"));
        }
        let addr = resolve(address)?;
        self.peers.lock().insert(node_id, addr);
        if let Mode::Embedded(e) = &*self.mode.lock() {
            e.add_peer(node_id, addr);
        }
        Ok(())
    }

    /// Embedded mode: listen on `listen`, connect to the peers, and run the
    /// node on muxraft's own threads until `stop`.
    pub fn start(&self, listen: &str) -> Result<(), Error> {
        self.check_usable()?;
        let addr = resolve(listen)?;
        let mut mode = self.mode.lock();
        match &*mode {
            Mode::HostDriven => {}
            Mode::Embedded(_) => return Err(Error::Mode("the node is already started")),
            Mode::Stopped => return Err(Error::Shutdown),
        }
        let embedded = Embedded::start(
            self.shared.clone(),
            self.disk.clone(),
            self.host.clone(),
            self.tick,
            Link {
                listen: addr,
                max_frame: self.max_frame_bytes,
                cluster_secret: self.cluster_secret.clone(),
                tls: self.tls.clone(),
            },
            &self.peers.lock(),
        )?;
        *mode = Mode::Embedded(embedded);
        if self.balance_leaders_when_embedded {
            self.shared.with(|n| n.set_balance_leaders(true));
        }
        Ok(())
    }

    /// The port the embedded transport listens on (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &*self.mode.lock() {
            Mode::Embedded(e) => Some(e.local_addr()),
            _ => None,
        }
    }

    /// Stop the node, in either mode. Writes in progress finish (what was
    /// acknowledged is durable); proposals still waiting are reported with
    /// `ProposalError::Shutdown`; in embedded mode the threads and
    /// connections end, and this returns when no muxraft thread of this node
    /// is left. Final: the node cannot restart.
    pub fn stop(&self) -> Result<(), Error> {
        let mut mode = self.mode.lock();
        match std::mem::replace(&mut *mode, Mode::Stopped) {
            Mode::Embedded(e) => {
                drop(mode);
                let transport = e.stop();
                *self.last_transport.lock() = transport;
                self.release_data_dir();
                Ok(())
            }
            Mode::HostDriven => {
                drop(mode);
                // The last pass runs here, on the caller's thread, like every
                // host-driven pass: it reports the failed proposals.
                self.shared.with(|n| n.fail_pending_proposals());
                let r = self.drive_host();
                self.release_data_dir();
                r
            }
            Mode::Stopped => Err(Error::Shutdown),
        }
    }
}

impl Runtime {
    /// After the last pass of a stop: nothing writes any more, and a new
    /// node may open the data directory while this one is not yet freed
    /// (an Erlang resource waits for the garbage collector).
    fn release_data_dir(&self) {
        if let Some(disk) = &self.disk {
            disk.close();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Release the mode lock before joining: a callback still running on
        // the node thread may call in (and is then told Shutdown).
        let mode = std::mem::replace(&mut *self.mode.lock(), Mode::Stopped);
        if let Mode::Embedded(e) = mode {
            let _ = e.stop();
        }
    }
}

#[cfg(test)]
mod key_metrics_tests {
    use super::*;
    use crate::multi::Event;
    use crate::raft::Role;
    use std::sync::mpsc;

    struct NoHost;

    impl Host for NoHost {
        fn send(&self, _to: u64, _frame: &[u8], _liveness: bool) {}
        fn event(&self, _ev: &Event) {}
    }

    fn leader_of_one() -> Arc<Runtime> {
        let rt = Runtime::new(RuntimeConfig::new(NodeConfig::new(1)), Arc::new(NoHost)).unwrap();
        rt.create_group(7, 3, &[1]).unwrap();
        for _ in 0..100 {
            if rt.group_status(7).unwrap().role == Role::Leader {
                break;
            }
            rt.tick().unwrap();
        }
        Arc::new(rt)
    }

    // Mutation: reading the key metrics through the node (its lock), as
    // `group_info` does: the read then waits for whoever holds it.
    #[test]
    fn key_metrics_are_read_while_the_node_is_held_by_another_thread() {
        let rt = leader_of_one();
        rt.propose(7, Bytes::from_static(b"x")).unwrap();
        let status = rt.group_status(7).unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = rt.clone();
        let got = rt.shared.with(|_node| {
            // The node's lock is held here, as by a pass or a long tick.
            std::thread::spawn(move || {
                let _ = tx.send((reader.key_metrics(7), reader.key_metrics(8)));
            });
            rx.recv_timeout(Duration::from_secs(10))
                .expect("the read waited for the node's lock")
        });
        let (m, missing) = got;
        let m = m.unwrap();
        assert!(
            matches!(missing, Err(Error::Node(multi::Error::NotFound(8)))),
            "{missing:?}"
        );
        assert_eq!(m.role, Role::Leader);
        assert_eq!(m.incarnation, 3);
        assert_eq!((m.term, m.leader), (status.term, 1));
        assert_eq!(
            (m.commit, m.applied, m.last_index),
            (status.commit, status.applied, status.last_index)
        );
        assert_eq!(m.last_index, 2, "the leader's no-op and x");
        assert_eq!(m.log_bytes, 1);
        assert_eq!((m.voters, m.membership_index, m.quiesced), (1, 0, false));
    }

    #[test]
    fn key_metrics_follow_removal_and_re_creation_and_outlive_stop() {
        let rt = leader_of_one();
        rt.remove_group(7).unwrap();
        assert!(rt.key_metrics(7).is_err());
        rt.create_group(7, 4, &[1]).unwrap();
        let m = rt.key_metrics(7).unwrap();
        assert_eq!(
            (m.incarnation, m.role, m.last_index),
            (4, Role::Follower, 0)
        );
        rt.stop().unwrap();
        assert_eq!(rt.key_metrics(7).unwrap().incarnation, 4);
    }
}
