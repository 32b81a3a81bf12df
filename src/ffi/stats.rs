//! Node statistics and group status as C structs that grow: each starts
//! with `struct_size`, set by its `_init` function, and the library writes
//! only what the caller's size holds (see `sized.rs`).

use std::mem::{offset_of, size_of};

use super::callbacks::muxraft_role;
use super::sized::{init_sized, write_sized};
use crate::multi::{FrameKind, KeyMetrics, QuietGauges, Stats, WakeCause};
use crate::raft::Status;
use crate::runtime::{DiskStats, GroupInfo};
use crate::transport::TransportStats;

/// A group replica's state, from `muxraft_group_status`. Set `struct_size`
/// with `muxraft_group_info_init` before the call; fields are only ever
/// added at the end, and the library writes only the ones `struct_size`
/// covers.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct muxraft_group_info {
    /// Size of this struct as the program was compiled; set by
    /// `muxraft_group_info_init`. Not written by the library.
    pub struct_size: u32,
    pub role: muxraft_role,
    /// Current term.
    pub term: u64,
    /// The leader this replica knows of, 0 if none.
    pub leader_id: u64,
    /// Highest index known committed.
    pub commit_index: u64,
    /// Highest index applied (delivered to `apply`, or one of Raft's own
    /// entries, which are not delivered).
    pub applied_index: u64,
    /// Highest index in this replica's log.
    pub last_index: u64,
    /// Which creation of the group id this replica belongs to (the value
    /// given to `muxraft_group_create`).
    pub incarnation: u64,
    /// Index of the latest snapshot (0: none): the host's, or one installed
    /// from the leader.
    pub snapshot_index: u64,
    /// The first index the log still holds (1 until it is compacted; the
    /// entries before it are in the snapshot).
    pub first_index: u64,
    /// Bytes of payload the log holds in memory, and of the latest
    /// snapshot kept in memory for followers that need it.
    pub log_bytes_memory: u64,
    pub snapshot_bytes_memory: u64,
    /// With `data_dir`: bytes of this group's log in the write-ahead log
    /// (an estimate: the records that wrote its live entries), and of its
    /// snapshot files.
    pub log_bytes_disk: u64,
    pub snapshot_bytes_disk: u64,
    /// Backpressure (on the leader): proposals made on this node still
    /// waiting to be decided, and payload bytes of entries not yet durable
    /// here. `muxraft_propose` answers `MUXRAFT_BUSY` when they reach
    /// `max_pending_proposals_per_group` or `max_unsynced_bytes_per_group`.
    pub pending_proposals: u64,
    pub unsynced_bytes: u64,
}

impl muxraft_group_info {
    pub(crate) fn new(i: &GroupInfo) -> muxraft_group_info {
        let s = &i.status;
        muxraft_group_info {
            struct_size: size_of::<muxraft_group_info>() as u32,
            role: s.role.into(),
            term: s.term,
            leader_id: s.leader,
            commit_index: s.commit,
            applied_index: s.applied,
            last_index: s.last_index,
            incarnation: i.incarnation,
            snapshot_index: s.snapshot_index,
            first_index: s.first_index,
            log_bytes_memory: i.log_bytes_memory,
            snapshot_bytes_memory: i.snapshot_bytes_memory,
            log_bytes_disk: i.log_bytes_disk,
            snapshot_bytes_disk: i.snapshot_bytes_disk,
            pending_proposals: i.pending_proposals,
            unsynced_bytes: i.unsynced_bytes,
        }
    }

    /// Check the caller's `struct_size` before anything else.
    ///
    /// # Safety
    /// `out` must be non-NULL and point to `struct_size` readable bytes.
    pub(crate) unsafe fn check(out: *const muxraft_group_info) -> Result<(), String> {
        // SAFETY: forwarded contract.
        unsafe { super::sized::check_size(out, GROUP_INFO_MIN_SIZE, "muxraft_group_info") }
    }

    /// Write into the caller's struct, as much as its `struct_size` holds.
    ///
    /// # Safety
    /// `out` must be non-NULL and point to `struct_size` writable bytes.
    pub(crate) unsafe fn write_to(&self, out: *mut muxraft_group_info) -> Result<(), String> {
        // SAFETY: forwarded contract.
        unsafe { write_sized(out, self, GROUP_INFO_MIN_SIZE, "muxraft_group_info") }
    }
}

/// The smallest `struct_size` accepted: through `role`.
const GROUP_INFO_MIN_SIZE: usize = offset_of!(muxraft_group_info, role) + size_of::<muxraft_role>();

/// Zero the first `size` bytes of `info` and set `struct_size` (see
/// `muxraft_config_init_sized`). Call it as `muxraft_group_info_init(&info)`,
/// a macro that passes the size your program was compiled with. NULL is
/// ignored.
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_info_init_sized(info: *mut muxraft_group_info, size: usize) {
    super::status::guard_void(|| {
        {
            let v = muxraft_group_info::new(&GroupInfo {
                status: Status {
                    id: 0,
                    role: crate::raft::Role::Follower,
                    term: 0,
                    vote: 0,
                    leader: 0,
                    commit: 0,
                    applied: 0,
                    last_index: 0,
                    first_index: 0,
                    snapshot_index: 0,
                },
                incarnation: 0,
                log_bytes_memory: 0,
                snapshot_bytes_memory: 0,
                log_bytes_disk: 0,
                snapshot_bytes_disk: 0,
                pending_proposals: 0,
                unsynced_bytes: 0,
            });
            // SAFETY: NULL or a struct of `size` writable bytes (contract).
            unsafe { init_sized(info, size, v) };
        }
    })
}

/// A group replica's key metrics, from `muxraft_group_key_metrics`: the
/// numbers the node publishes for the group at the end of each pass that
/// touched it, read without waiting for the node. Each field is read
/// whole, but fields may be from adjacent moments (the commit index of one
/// pass beside the applied index of the next), as with counters. Set
/// `struct_size` with `muxraft_key_metrics_init` before the call; fields
/// are only ever added at the end, and the library writes only the ones
/// `struct_size` covers.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct muxraft_key_metrics {
    /// Size of this struct as the program was compiled; set by
    /// `muxraft_key_metrics_init`. Not written by the library.
    pub struct_size: u32,
    pub role: muxraft_role,
    /// Current term.
    pub term: u64,
    /// The leader this replica knows of, 0 if none.
    pub leader_id: u64,
    /// Highest index known committed.
    pub commit_index: u64,
    /// Highest index applied (handed to `apply` and returned from it, or
    /// one of Raft's own entries).
    pub applied_index: u64,
    /// Highest index in this replica's log (durable or not).
    pub last_index: u64,
    /// Index of the latest snapshot (0: none).
    pub snapshot_index: u64,
    /// Payload bytes of the group's log in memory (as
    /// `muxraft_group_info.log_bytes_memory`; the WAL estimate,
    /// `log_bytes_disk`, is only in `muxraft_group_status`).
    pub log_bytes: u64,
    /// Voters in the membership as this replica sees it (the latest
    /// configuration in its log, committed or not).
    pub voters: u64,
    /// Index of the configuration entry that set that membership (0: the
    /// group's creation, or a snapshot's).
    pub membership_index: u64,
    /// 1 if the group is quiesced here (idle: no ticks, no heartbeat
    /// rows), else 0.
    pub quiesced: u64,
    /// Which creation of the group id this replica belongs to.
    pub incarnation: u64,
}

impl muxraft_key_metrics {
    pub(crate) fn new(m: &KeyMetrics) -> muxraft_key_metrics {
        muxraft_key_metrics {
            struct_size: size_of::<muxraft_key_metrics>() as u32,
            role: m.role.into(),
            term: m.term,
            leader_id: m.leader,
            commit_index: m.commit,
            applied_index: m.applied,
            last_index: m.last_index,
            snapshot_index: m.snapshot_index,
            log_bytes: m.log_bytes,
            voters: m.voters,
            membership_index: m.membership_index,
            quiesced: u64::from(m.quiesced),
            incarnation: m.incarnation,
        }
    }

    /// Check the caller's `struct_size` before anything else.
    ///
    /// # Safety
    /// `out` must be non-NULL and point to `struct_size` readable bytes.
    pub(crate) unsafe fn check(out: *const muxraft_key_metrics) -> Result<(), String> {
        // SAFETY: forwarded contract.
        unsafe { super::sized::check_size(out, KEY_METRICS_MIN_SIZE, "muxraft_key_metrics") }
    }

    /// Write into the caller's struct, as much as its `struct_size` holds.
    ///
    /// # Safety
    /// `out` must be non-NULL and point to `struct_size` writable bytes.
    pub(crate) unsafe fn write_to(&self, out: *mut muxraft_key_metrics) -> Result<(), String> {
        // SAFETY: forwarded contract.
        unsafe { write_sized(out, self, KEY_METRICS_MIN_SIZE, "muxraft_key_metrics") }
    }
}

/// The smallest `struct_size` accepted: through `role`.
const KEY_METRICS_MIN_SIZE: usize =
    offset_of!(muxraft_key_metrics, role) + size_of::<muxraft_role>();

/// Zero the first `size` bytes of `metrics` and set `struct_size` (see
/// `muxraft_config_init_sized`). Call it as
/// `muxraft_key_metrics_init(&metrics)`, a macro that passes the size your
/// program was compiled with. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn muxraft_key_metrics_init_sized(
    metrics: *mut muxraft_key_metrics,
    size: usize,
) {
    super::status::guard_void(|| {
        let v = muxraft_key_metrics::new(&KeyMetrics {
            incarnation: 0,
            role: crate::raft::Role::Follower,
            term: 0,
            leader: 0,
            commit: 0,
            applied: 0,
            last_index: 0,
            snapshot_index: 0,
            log_bytes: 0,
            voters: 0,
            membership_index: 0,
            quiesced: false,
        });
        // SAFETY: NULL or a struct of `size` writable bytes (contract).
        unsafe { init_sized(metrics, size, v) };
    })
}

/// Counters since the node was created, from `muxraft_node_stats`. Set
/// `struct_size` with `muxraft_stats_init` before the call; counters are
/// only ever added at the end, and the library writes only the ones
/// `struct_size` covers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct muxraft_stats {
    /// Size of this struct as the program was compiled; set by
    /// `muxraft_stats_init`. Not written by the library.
    pub struct_size: u32,
    /// Frames handed to `send` (or the transport), of every kind.
    pub messages_sent: u64,
    pub bytes_sent: u64,
    /// Frames stepped into the node (accepted ones).
    pub messages_received: u64,
    /// `HeartbeatBatch` frames sent: at most one per peer per interval.
    pub heartbeat_batches_sent: u64,
    /// Per-group heartbeats carried inside those batches: what the naive
    /// scheme would have sent as separate messages.
    pub group_heartbeats_batched: u64,
    /// Elections started by this node's replicas.
    pub elections_started: u64,
    /// Frames refused: malformed, too large, another cluster or node.
    pub frames_rejected: u64,
    /// Stand-alone per-group heartbeat frames sent (naive mode).
    pub heartbeats_sent: u64,
    /// Heartbeat-batch answers sent.
    pub heartbeat_batch_responses_sent: u64,
    /// All liveness frames sent (heartbeats, batches and their answers).
    pub heartbeat_messages_sent: u64,
    pub heartbeat_bytes_sent: u64,
    pub bytes_received: u64,
    /// Messages for a group not hosted here, or from a non-member.
    pub messages_dropped: u64,
    pub leader_changes: u64,
    /// Proposals accepted.
    pub proposals: u64,
    /// Of those: committed (`proposal_done` with `MUXRAFT_OK`).
    pub proposals_committed: u64,
    /// Of those: failed for certain (`MUXRAFT_NOT_LEADER`).
    pub proposals_failed: u64,
    pub entries_applied: u64,
    /// Groups hosted now (a gauge).
    pub groups: u64,
    /// Of the proposals: outcome unknown (`MUXRAFT_UNKNOWN`,
    /// `MUXRAFT_SHUTDOWN`).
    pub proposals_unknown: u64,
    /// Messages and heartbeat rows dropped because they belong to another
    /// incarnation of a group hosted here (an earlier life of a re-created
    /// queue, or a node that has not deleted it yet).
    pub incarnation_mismatches: u64,
    /// Heartbeat batches and responses dropped whole because their
    /// incarnation digest did not match (the sender then names each row's
    /// incarnation for a while).
    pub batches_dropped_incarnation: u64,
    /// Embedded mode (0 otherwise): connections established with peers
    /// (handshakes completed, either side).
    pub connections_established: u64,
    /// Embedded mode: of those, to a peer connected to before (the
    /// connection was lost or replaced and came back).
    pub reconnects: u64,
    /// Embedded mode: handshakes refused (another cluster, unknown node,
    /// bad version, timeout) on either side.
    pub handshakes_refused: u64,
    /// Embedded mode: dials that failed before a handshake.
    pub dial_failures: u64,
    /// Embedded mode: frames the transport dropped before writing them (its
    /// queue to a peer full, or a frame it cannot send).
    pub transport_frames_dropped: u64,
    /// Embedded mode: bytes waiting in the transport's queues now (a gauge).
    pub bytes_queued: u64,
    /// Snapshots the host took (`muxraft_group_snapshot`), and snapshots
    /// this node's replicas installed from their leaders.
    pub snapshots_taken: u64,
    pub snapshots_installed: u64,
    /// Snapshot transfers this node started as a leader, and those it
    /// abandoned for lack of progress (started again later).
    pub snapshot_transfers_started: u64,
    pub snapshot_transfers_failed: u64,
    /// Snapshots received whole whose CRC did not match (received again).
    pub snapshot_crc_failures: u64,
    /// With `data_dir`: write-ahead log segment files now, and their bytes.
    pub wal_segments: u64,
    pub wal_bytes: u64,
    /// With `data_dir`: segment files deleted since the node started.
    pub wal_segments_deleted: u64,
    /// With `data_dir`: bytes of small logs rewritten forward so that an
    /// idle group does not keep an old segment alive.
    pub wal_bytes_rewritten: u64,
    /// With `data_dir`: snapshot files now, and their bytes.
    pub snapshot_files: u64,
    pub snapshot_file_bytes: u64,
    /// Backpressure: proposals refused with `MUXRAFT_BUSY` since the node
    /// started; and now (gauges) proposals in flight over all groups
    /// (accepted here, not yet decided) and payload bytes of entries not
    /// yet durable here (counted at each proposal and each pass).
    pub proposals_refused_busy: u64,
    pub pending_proposals: u64,
    pub unsynced_bytes: u64,
    /// Quiescence (gauges): groups hosted here that are awake (ticked,
    /// sending heartbeat rows) and quiesced (idle: no ticks, no rows,
    /// covered by the node-level liveness of their leader's node).
    pub groups_awake: u64,
    pub groups_quiesced: u64,
    /// Times a group here went quiet since the node started, and times a
    /// quiet group woke up, by cause: a call of the host's (proposal,
    /// campaign); a message from its leader; a message from another
    /// replica; its leader's node lost or restarted; a peer with one of its
    /// replicas returned.
    pub quiesced_total: u64,
    pub wakeups_host: u64,
    pub wakeups_leader_message: u64,
    pub wakeups_follower_message: u64,
    pub wakeups_peer_lost: u64,
    pub wakeups_peer_returned: u64,
    /// Node-level liveness: the nodes that host replicas of groups hosted
    /// here, and (gauge) those this node hears (a frame from it within an
    /// election timeout); times a peer was lost, heard again, or seen to
    /// restart. `muxraft_node_peers` lists each with its liveness epoch.
    pub peers: u64,
    pub peers_heard: u64,
    pub peers_lost: u64,
    pub peers_returned: u64,
    pub peers_restarted: u64,
    /// Reads (`muxraft_read_index`) taken on this node; of those, served
    /// (`read_done` with `MUXRAFT_OK`) and failed (any other status); reads
    /// refused with `MUXRAFT_BUSY`; and now (gauge) reads taken and not yet
    /// reported.
    pub reads: u64,
    pub reads_served: u64,
    pub reads_failed: u64,
    pub reads_refused_busy: u64,
    pub pending_reads: u64,
    /// Heartbeat rows sent carrying a read round, and answers received
    /// echoing one: with batching, all the reads of one interval in a
    /// group share one round.
    pub read_rounds_sent: u64,
    pub read_rounds_answered: u64,
    /// Heartbeat rows sent compact (the group id alone: term and commit
    /// unchanged since a full row the peer acknowledged), and compact rows
    /// received that this node could not use (it asked for a full row).
    pub compact_rows_sent: u64,
    pub compact_rows_refused: u64,
    /// Leader balance: the groups this node leads now (gauge), and the
    /// leadership transfers it started (`muxraft_group_transfer_leader`).
    pub groups_led: u64,
    pub transfers_started: u64,
    /// Embedded mode: handshakes refused for the cluster secret (see
    /// `muxraft_config.cluster_secret`), by this node or by the peer: a
    /// peer with another secret, or without one while this node has one,
    /// or the reverse. Each is logged as a warning with the reason. Also
    /// counted in `handshakes_refused`.
    pub peers_refused_auth: u64,
    /// Of `transfers_started`, those the leader balancer started (see
    /// `muxraft_config.balance_leaders`).
    pub balance_transfers: u64,
    /// Embedded mode: handshakes refused for TLS (see
    /// `muxraft_config.tls_cert_pem`), by this node or by the peer: a
    /// certificate from another CA, or not for the address dialed, or
    /// none; a peer without TLS while this node has it, or the reverse.
    /// Each is logged as a warning with the reason. Also counted in
    /// `handshakes_refused` (or as refused by the peer).
    pub peers_refused_tls: u64,
}

/// The smallest `struct_size` accepted: through `messages_sent`.
const STATS_MIN_SIZE: usize = offset_of!(muxraft_stats, messages_sent) + size_of::<u64>();

/// Zero the first `size` bytes of `stats` and set `struct_size` (see
/// `muxraft_config_init_sized`). Call it as `muxraft_stats_init(&stats)`, a
/// macro that passes the size your program was compiled with. NULL is
/// ignored.
#[no_mangle]
pub unsafe extern "C" fn muxraft_stats_init_sized(stats: *mut muxraft_stats, size: usize) {
    super::status::guard_void(|| {
        // SAFETY: NULL or a struct of `size` writable bytes (contract).
        unsafe { init_sized(stats, size, muxraft_stats::default()) }
    })
}

impl muxraft_stats {
    pub(crate) fn new(
        s: &Stats,
        groups: usize,
        t: &TransportStats,
        d: &DiskStats,
        q: &QuietGauges,
    ) -> muxraft_stats {
        let woke = |c: WakeCause| s.wakeups[c as usize];
        let hb = s.heartbeat_traffic_sent();
        muxraft_stats {
            struct_size: size_of::<muxraft_stats>() as u32,
            messages_sent: s.messages_sent(),
            bytes_sent: s.bytes_sent(),
            messages_received: s.messages_received(),
            heartbeat_batches_sent: s.sent_of(FrameKind::HeartbeatBatch).messages,
            group_heartbeats_batched: s.group_heartbeats_batched,
            elections_started: s.elections_started,
            frames_rejected: s.frames_rejected,
            heartbeats_sent: s.sent_of(FrameKind::Heartbeat).messages,
            heartbeat_batch_responses_sent: s.sent_of(FrameKind::HeartbeatBatchResponse).messages,
            heartbeat_messages_sent: hb.messages,
            heartbeat_bytes_sent: hb.bytes,
            bytes_received: s.bytes_received(),
            messages_dropped: s.messages_dropped,
            leader_changes: s.leader_changes,
            proposals: s.proposals,
            proposals_committed: s.proposals_committed,
            proposals_failed: s.proposals_failed,
            entries_applied: s.entries_applied,
            groups: groups as u64,
            proposals_unknown: s.proposals_unknown,
            incarnation_mismatches: s.incarnation_mismatches,
            batches_dropped_incarnation: s.batches_dropped_incarnation,
            connections_established: t.connections_established,
            reconnects: t.reconnects,
            handshakes_refused: t.handshakes_refused + t.handshakes_rejected_by_peer,
            dial_failures: t.dial_failures,
            transport_frames_dropped: t.frames_dropped,
            bytes_queued: t.queued_bytes,
            snapshots_taken: s.snapshots_taken,
            snapshots_installed: s.snapshots_installed,
            snapshot_transfers_started: s.snapshot_transfers_started,
            snapshot_transfers_failed: s.snapshot_transfers_failed,
            snapshot_crc_failures: s.snapshot_crc_failures,
            wal_segments: d.wal_segments,
            wal_bytes: d.wal_bytes,
            wal_segments_deleted: d.wal_segments_deleted,
            wal_bytes_rewritten: d.bytes_rewritten,
            snapshot_files: d.snapshot_files,
            snapshot_file_bytes: d.snapshot_bytes,
            proposals_refused_busy: s.proposals_refused_busy,
            pending_proposals: s.pending_proposals,
            unsynced_bytes: s.unsynced_bytes,
            groups_awake: q.groups_awake,
            groups_quiesced: q.groups_quiesced,
            quiesced_total: s.quiesced,
            wakeups_host: woke(WakeCause::Host),
            wakeups_leader_message: woke(WakeCause::LeaderMessage),
            wakeups_follower_message: woke(WakeCause::FollowerMessage),
            wakeups_peer_lost: woke(WakeCause::PeerLost),
            wakeups_peer_returned: woke(WakeCause::PeerReturned),
            peers: q.peers,
            peers_heard: q.peers_heard,
            peers_lost: s.peers_lost,
            peers_returned: s.peers_returned,
            peers_restarted: s.peers_restarted,
            reads: s.reads,
            reads_served: s.reads_served,
            reads_failed: s.reads_failed,
            reads_refused_busy: s.reads_refused_busy,
            pending_reads: s.pending_reads,
            read_rounds_sent: s.read_rounds_sent,
            read_rounds_answered: s.read_rounds_answered,
            compact_rows_sent: s.compact_rows_sent,
            compact_rows_refused: s.compact_rows_refused,
            groups_led: s.groups_led,
            transfers_started: s.transfers_started,
            peers_refused_auth: t.auth_refused + t.auth_rejected_by_peer,
            balance_transfers: s.balance_transfers,
            peers_refused_tls: t.tls_refused + t.tls_rejected_by_peer,
        }
    }

    /// Write into the caller's struct, as much as its `struct_size` holds.
    ///
    /// # Safety
    /// `out` must be non-NULL and point to `struct_size` writable bytes.
    pub(crate) unsafe fn write_to(&self, out: *mut muxraft_stats) -> Result<(), String> {
        // SAFETY: forwarded contract.
        unsafe { write_sized(out, self, STATS_MIN_SIZE, "muxraft_stats") }
    }
}
