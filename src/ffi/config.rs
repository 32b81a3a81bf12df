//! Node configuration.

use std::ffi::CStr;
use std::mem::{offset_of, size_of};
use std::os::raw::{c_char, c_void};
use std::sync::Arc;

use super::log::{muxraft_log_fn, muxraft_log_level, Sink};
use super::sized::read_sized;
use crate::multi::NodeConfig;
use crate::transport::{ClusterSecret, TlsConfig};

/// Settings of a node. Always fill it with `muxraft_config_init` first, then
/// change the fields you need: fields are only ever added at the end, and
/// `struct_size` tells the library which ones your program knows (the
/// others take their defaults).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct muxraft_config {
    /// Size of this struct as the program was compiled; set by
    /// `muxraft_config_init`. Do not change it.
    pub struct_size: u32,
    /// This node's id: non-zero, unique in the cluster.
    pub node_id: u64,
    /// Frames carrying another cluster id are refused. Default 0.
    pub cluster_id: u64,
    /// Milliseconds per tick. Host-driven mode: call `muxraft_tick` this
    /// often. Embedded mode: the node's own timer. Default 50.
    pub tick_ms: u32,
    /// Ticks between heartbeats. Default 2.
    pub heartbeat_ticks: u32,
    /// Ticks without a leader before an election; randomized per group in
    /// `[election_ticks, 2 * election_ticks)`. Must exceed `heartbeat_ticks`.
    /// Default 10.
    pub election_ticks: u32,
    /// One heartbeat message per peer per interval for all groups (true), or
    /// one per group per follower (false: for comparison only). Default true.
    pub batch_heartbeats: bool,
    /// Proposals larger than this get `MUXRAFT_TOO_LARGE`. Default 1 MiB,
    /// at most 4 MiB.
    pub max_proposal_bytes: u32,
    /// NULL: state lives in memory and is lost when the node is freed.
    /// Otherwise the directory of the node's durable write-ahead log. The
    /// string is copied by `muxraft_node_new`.
    pub data_dir: *const c_char,
    /// The `snapshot_needed` callback fires once a group applied this many
    /// entries since its last snapshot (0: never by count). Default 10000.
    pub snapshot_threshold_entries: u64,
    /// ...or once its log holds this many bytes of payload (0: never by
    /// size). Default 8 MiB.
    pub snapshot_threshold_bytes: u64,
    /// After a snapshot at index I, the log keeps the entries after
    /// I - `snapshot_trailing_entries` in memory, so that a follower a
    /// little behind catches up by appends rather than by a whole snapshot.
    /// On disk the log starts after I: a restarted node sends the snapshot
    /// instead. Default 1024.
    pub snapshot_trailing_entries: u64,
    /// Snapshots travel to followers in chunks of this many bytes (at most
    /// 4 MiB). Default 1 MiB.
    pub snapshot_chunk_bytes: u32,
    /// A snapshot transfer that makes no progress for this long is
    /// abandoned by both sides (the leader starts a new one). It measures
    /// the network, not the host's `restore`. Default 30000.
    pub snapshot_timeout_ms: u32,
    /// A follower refuses snapshots larger than this: it holds one whole in
    /// memory while receiving it. Default 1 GiB.
    pub max_snapshot_bytes: u64,
    /// With `data_dir`: the write-ahead log starts a new segment file after
    /// this many bytes, and deletes old ones once nothing live needs them.
    /// Default 16 MiB.
    pub wal_segment_bytes: u64,
    /// Backpressure: `muxraft_propose` answers `MUXRAFT_BUSY` at once, and
    /// proposes nothing, when the group already has this many proposals
    /// made on this node and not yet decided (0: no limit). Default 4096.
    pub max_pending_proposals_per_group: u64,
    /// ...or the node has this many over all its groups (0: no limit).
    /// Default 4096: with a node committing some 30,000 proposals a second,
    /// about 140 ms of queue, so that under overload the latency of
    /// accepted proposals stays bounded, the excess is refused, and
    /// leadership holds.
    pub max_pending_proposals: u64,
    /// ...or the group's entries not yet durable on this node hold this
    /// many bytes of payload (a proposal is always accepted when none are
    /// waiting; 0: no limit). Default 16 MiB.
    pub max_unsynced_bytes_per_group: u64,
    /// ...or the node's do, over all its groups (0: no limit). Default
    /// 256 MiB.
    pub max_unsynced_bytes: u64,
    /// Idle groups go quiet: a leader whose followers hold its whole log,
    /// with nothing committed but unapplied and nothing pending, tells them
    /// so after a few quiet heartbeat intervals, and from then on the group
    /// is neither ticked nor has a heartbeat row, on any replica, until a
    /// proposal, a message or the loss of its leader's node wakes it. The
    /// per-pair heartbeat batch, sent every interval even when empty, is
    /// what tells a node its peers are alive. Only with
    /// `batch_heartbeats`. Default true.
    pub quiesce: bool,
    /// `muxraft_read_index` refuses a read with `MUXRAFT_BUSY` when the
    /// group already has this many reads taken and not yet reported (0: no
    /// limit). Default 4096.
    pub max_pending_reads_per_group: u64,
    /// ...or the node has this many over all its groups (0: no limit).
    /// Default 65536.
    pub max_pending_reads: u64,
    /// `muxraft_node_metrics_text` renders per-group series (a `group`
    /// label: role, term, indexes, log bytes) only while the node hosts at
    /// most this many groups. Default 0: never, so that a node with 100,000
    /// groups does not produce 100,000 series unless asked to.
    pub metrics_per_group_max: u64,
    /// Embedded mode: a secret shared by every node of the cluster
    /// (`cluster_secret_len` bytes, 16 to 1024, any bytes: use e.g. 32
    /// random ones), copied by `muxraft_node_new`. Every connection between
    /// two nodes then proves, both ways, that the other side has the same
    /// secret: each side sends a fresh random nonce and answers with
    /// HMAC-SHA256 of the secret over both nonces and both node ids; the
    /// secret itself never travels. A peer with another secret, or none,
    /// is refused, counted in `muxraft_stats.peers_refused_auth` and logged
    /// with the reason; a node without a secret likewise refuses a peer
    /// that has one, so turn it on for every node of a cluster together.
    /// It authenticates who opens a connection, not the frames after it:
    /// they travel in the clear. Default NULL and 0: no secret (peers are
    /// known by their cluster and node ids alone). Host-driven mode
    /// ignores it: the host's transport owns the links between nodes.
    pub cluster_secret: *const u8,
    pub cluster_secret_len: usize,
    /// This node's log lines (see `muxraft_log_fn`) go to this callback,
    /// with `log_userdata`; NULL (the default): to the process-wide one
    /// (`muxraft_set_log_callback`), if any. Every `tracing` event of the
    /// library about this node reaches it, from `muxraft_node_new`
    /// (recovering the data directory) until `muxraft_node_free` returns.
    pub log: muxraft_log_fn,
    /// Passed as the first argument of `log`; muxraft never reads it.
    pub log_userdata: *mut c_void,
    /// The least severe `muxraft_log_level` `log` receives (0..5, 0:
    /// none). Default `MUXRAFT_LOG_INFO`: what an operator needs. Lines
    /// under it cost an integer compare: they are not formatted.
    pub log_level: u32,
    /// The leader balancer: each node hands leaderships of groups it leads
    /// beyond its share to voters that lead less than theirs (it learns
    /// their counts from the heartbeat batches), a few at a time, each by
    /// a leadership transfer to a voter whose log is already complete, so
    /// that after a node returns every node again leads about its share
    /// of the groups (L/N with every node hosting every group). Groups
    /// with a read waiting or a membership change in flight are left
    /// alone; proposals to a group being handed over are refused with
    /// `MUXRAFT_NOT_LEADER` (naming the new leader) for about a round
    /// trip, while those accepted before are committed by the new leader.
    /// After a node is lost it moves nothing for 20 election timeouts
    /// (10 s by default) unless every node is heard again first: the
    /// survivors are electing leaders for the lost node's groups, and a
    /// node back from a restart gets its share back at once.
    /// `MUXRAFT_BALANCE_AUTO` (the default): on in embedded mode, off in
    /// host-driven mode (the host may move leaders itself with
    /// `muxraft_group_transfer_leader`); `MUXRAFT_BALANCE_ON`;
    /// `MUXRAFT_BALANCE_OFF`. Only with `batch_heartbeats`, which carry the
    /// counts. `muxraft_stats.balance_transfers` counts its transfers.
    pub balance_leaders: muxraft_balance,
    /// Transfers the balancer has in flight at most (0: the default, 8;
    /// about 150 leaderships a second with 50 ms ticks).
    pub balance_max_transfers: u32,
    /// Embedded mode: TLS between nodes. Paths (NUL-terminated, copied) of
    /// PEM files: this node's certificate chain (its certificate first,
    /// then any intermediates), its private key (PKCS#8, PKCS#1 or SEC1),
    /// and the cluster CA's certificate(s). All three or none (the
    /// default, NULL: plain TCP). They are read and checked by
    /// `muxraft_node_new`: a missing or unreadable file, a file without
    /// PEM of the kind expected, or a key that is not the certificate's
    /// make it fail with `MUXRAFT_INVALID_ARGUMENT` and a message naming
    /// the field and the file. (Paths rather than PEM bytes: they are what
    /// operators configure, and the key then never passes through the
    /// host's memory. Changed files are read again by a new node only.)
    ///
    /// Every connection between two nodes is then mutual TLS 1.3 before
    /// anything else: the dialing node checks that the other's certificate
    /// chain leads to the CA and that the certificate names the IP address
    /// dialed (an IP subject alternative name; a peer address given by DNS
    /// name is resolved by `muxraft_node_add_peer` and its IP checked); the
    /// accepting node requires a certificate from the CA (which node it is
    /// comes from the handshake that follows, inside TLS, and the
    /// `cluster_secret` if set). A peer that fails TLS, or does not speak
    /// it (a node with TLS and one without refuse each other), is refused,
    /// counted in `muxraft_stats.peers_refused_tls` and logged as a warning
    /// with the reason. Host-driven mode ignores them: the host's transport
    /// owns the links between nodes, and their encryption.
    pub tls_cert_pem: *const c_char,
    pub tls_key_pem: *const c_char,
    pub tls_ca_pem: *const c_char,
    /// How followers learn that an entry is committed. False (the
    /// default): the leader's next append or heartbeat tells them, so a
    /// group taking proposals one at a time sends each follower one append
    /// and gets one answer per proposal, half the messages of true, at the
    /// price of followers applying (their `apply` callbacks) up to one
    /// heartbeat interval after the leader. True: the leader tells them at
    /// once, with an empty append where it has no entries to send. Either
    /// way the leader commits, and reports `proposal_done`, as promptly;
    /// a commit that completes a membership change is always told at once.
    pub broadcast_commit: bool,
}

/// `muxraft_config.balance_leaders`: when the leader balancer runs.
pub type muxraft_balance = u32;
/// On in embedded mode, off in host-driven mode.
pub const MUXRAFT_BALANCE_AUTO: muxraft_balance = 0;
pub const MUXRAFT_BALANCE_ON: muxraft_balance = 1;
pub const MUXRAFT_BALANCE_OFF: muxraft_balance = 2;

const MAX_PROPOSAL_LIMIT: u32 = 4 << 20;
const MAX_SNAPSHOT_CHUNK: u32 = 4 << 20;
const DEFAULT_SNAPSHOT_TIMEOUT_MS: u32 = 30_000;
const DEFAULT_WAL_SEGMENT_BYTES: u64 = 16 << 20;
/// Below this, every few writes would start a segment (each begins with a
/// checkpoint of every group).
const MIN_WAL_SEGMENT_BYTES: u64 = 64 << 10;

/// The smallest `struct_size` accepted: through `node_id`, the one field
/// without a default.
const CONFIG_MIN_SIZE: usize = offset_of!(muxraft_config, node_id) + size_of::<u64>();

impl Default for muxraft_config {
    fn default() -> muxraft_config {
        let n = NodeConfig::new(0);
        muxraft_config {
            struct_size: size_of::<muxraft_config>() as u32,
            node_id: 0,
            cluster_id: 0,
            tick_ms: 50,
            heartbeat_ticks: n.heartbeat_ticks,
            election_ticks: n.election_ticks,
            batch_heartbeats: true,
            max_proposal_bytes: n.max_proposal_bytes as u32,
            data_dir: std::ptr::null(),
            snapshot_threshold_entries: n.snapshot_threshold_entries,
            snapshot_threshold_bytes: n.snapshot_threshold_bytes,
            snapshot_trailing_entries: n.snapshot_trailing_entries,
            snapshot_chunk_bytes: n.snapshot_chunk_bytes as u32,
            snapshot_timeout_ms: DEFAULT_SNAPSHOT_TIMEOUT_MS,
            max_snapshot_bytes: n.max_snapshot_bytes,
            wal_segment_bytes: DEFAULT_WAL_SEGMENT_BYTES,
            max_pending_proposals_per_group: n.max_pending_proposals_per_group,
            max_pending_proposals: n.max_pending_proposals,
            max_unsynced_bytes_per_group: n.max_unsynced_bytes_per_group,
            max_unsynced_bytes: n.max_unsynced_bytes,
            quiesce: n.quiesce,
            max_pending_reads_per_group: n.max_pending_reads_per_group,
            max_pending_reads: n.max_pending_reads,
            metrics_per_group_max: 0,
            cluster_secret: std::ptr::null(),
            cluster_secret_len: 0,
            log: None,
            log_userdata: std::ptr::null_mut(),
            log_level: muxraft_log_level::MUXRAFT_LOG_INFO as u32,
            balance_leaders: MUXRAFT_BALANCE_AUTO,
            balance_max_transfers: 0,
            tls_cert_pem: std::ptr::null(),
            tls_key_pem: std::ptr::null(),
            tls_ca_pem: std::ptr::null(),
            broadcast_commit: n.broadcast_commit,
        }
    }
}

/// Fill the first `size` bytes of `config` with the defaults and set
/// `struct_size` to `size` (or to this library's size, if smaller). Call it
/// as `muxraft_config_init(&config)`, a macro that passes
/// `sizeof config` as your program was compiled: a library newer than your
/// header then writes only the fields your program knows. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn muxraft_config_init_sized(config: *mut muxraft_config, size: usize) {
    super::status::guard_void(|| {
        // SAFETY: NULL or a struct of `size` writable bytes (header contract).
        unsafe { super::sized::init_sized(config, size, muxraft_config::default()) }
    })
}

/// A session id for a node starting now: random per process and per
/// start, never 0 (see `NodeConfig::session`).
fn random_session() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // Randomly keyed per process; the clock and a counter tell starts in
    // one process apart.
    static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.write_u64(STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish() | 1
}

/// A validated configuration as the Rust side uses it.
pub(crate) struct Settings {
    pub node: NodeConfig,
    pub tick_ms: u32,
    pub data_dir: Option<std::path::PathBuf>,
    pub wal_segment_bytes: u64,
    pub metrics_per_group_max: u64,
    pub cluster_secret: Option<ClusterSecret>,
    pub tls: Option<TlsConfig>,
    /// The node's own log callback, if it has one.
    pub log: Option<Arc<Sink>>,
    /// `MUXRAFT_BALANCE_AUTO`: the balancer starts with embedded mode.
    pub balance_when_embedded: bool,
}

/// Read and check a configuration passed by C: the fields its `struct_size`
/// covers, defaults for the rest.
///
/// # Safety
/// `config` must be NULL or point to a `muxraft_config` whose first
/// `struct_size` bytes are readable, `data_dir` (when covered) must be
/// NULL or a NUL-terminated string, `cluster_secret` (when covered)
/// NULL or `cluster_secret_len` readable bytes, and the `tls_*_pem` paths
/// (when covered) NULL or NUL-terminated strings.
pub(crate) unsafe fn read_config(config: *const muxraft_config) -> Result<Settings, String> {
    if config.is_null() {
        return Err("config is NULL".into());
    }
    let batch_at = offset_of!(muxraft_config, batch_heartbeats);
    let quiesce_at = offset_of!(muxraft_config, quiesce);
    let broadcast_at = offset_of!(muxraft_config, broadcast_commit);
    // SAFETY: non-NULL with `struct_size` readable bytes (contract). The
    // only fields not every bit pattern of is valid are the bools, normalized
    // before the bytes become a struct.
    let c = unsafe {
        read_sized(
            config,
            muxraft_config::default(),
            CONFIG_MIN_SIZE,
            "muxraft_config",
            |bytes| {
                for at in [batch_at, quiesce_at, broadcast_at] {
                    if let Some(b) = bytes.get_mut(at) {
                        *b = u8::from(*b != 0);
                    }
                }
            },
        )
    }?;
    if c.node_id == 0 {
        return Err("config.node_id must be non-zero".into());
    }
    if c.tick_ms == 0 {
        return Err("config.tick_ms must be non-zero".into());
    }
    if c.max_proposal_bytes == 0 || c.max_proposal_bytes > MAX_PROPOSAL_LIMIT {
        return Err(format!(
            "config.max_proposal_bytes must be in 1..={MAX_PROPOSAL_LIMIT}"
        ));
    }
    let data_dir = if c.data_dir.is_null() {
        None
    } else {
        // SAFETY: documented as NUL-terminated.
        let s = unsafe { CStr::from_ptr(c.data_dir) };
        let s = s
            .to_str()
            .map_err(|_| "config.data_dir is not UTF-8".to_string())?;
        if s.is_empty() {
            return Err("config.data_dir is empty (use NULL for in-memory)".into());
        }
        Some(std::path::PathBuf::from(s))
    };
    let mut node = NodeConfig::new(c.node_id);
    node.cluster_id = c.cluster_id;
    node.heartbeat_ticks = c.heartbeat_ticks;
    node.election_ticks = c.election_ticks;
    node.batch_heartbeats = c.batch_heartbeats;
    node.quiesce = c.quiesce && c.batch_heartbeats;
    node.broadcast_commit = c.broadcast_commit;
    node.session = random_session();
    node.max_proposal_bytes = c.max_proposal_bytes as usize;
    if c.snapshot_chunk_bytes == 0 || c.snapshot_chunk_bytes > MAX_SNAPSHOT_CHUNK {
        return Err(format!(
            "config.snapshot_chunk_bytes must be in 1..={MAX_SNAPSHOT_CHUNK}"
        ));
    }
    if c.snapshot_timeout_ms < c.tick_ms {
        return Err("config.snapshot_timeout_ms must be at least tick_ms".into());
    }
    if c.wal_segment_bytes < MIN_WAL_SEGMENT_BYTES {
        return Err(format!(
            "config.wal_segment_bytes must be at least {MIN_WAL_SEGMENT_BYTES}"
        ));
    }
    // 0 turns a threshold off.
    node.snapshot_threshold_entries = match c.snapshot_threshold_entries {
        0 => u64::MAX,
        n => n,
    };
    node.snapshot_threshold_bytes = match c.snapshot_threshold_bytes {
        0 => u64::MAX,
        n => n,
    };
    node.snapshot_trailing_entries = c.snapshot_trailing_entries;
    node.snapshot_chunk_bytes = c.snapshot_chunk_bytes as u64;
    node.snapshot_timeout_ticks = (c.snapshot_timeout_ms / c.tick_ms) as u64;
    node.max_snapshot_bytes = c.max_snapshot_bytes;
    // 0 lifts a limit.
    let limit = |v: u64| if v == 0 { u64::MAX } else { v };
    node.max_pending_proposals_per_group = limit(c.max_pending_proposals_per_group);
    node.max_pending_proposals = limit(c.max_pending_proposals);
    node.max_unsynced_bytes_per_group = limit(c.max_unsynced_bytes_per_group);
    node.max_unsynced_bytes = limit(c.max_unsynced_bytes);
    node.max_pending_reads_per_group = limit(c.max_pending_reads_per_group);
    node.max_pending_reads = limit(c.max_pending_reads);
    let balance_when_embedded = match c.balance_leaders {
        MUXRAFT_BALANCE_AUTO => c.batch_heartbeats,
        MUXRAFT_BALANCE_ON if !c.batch_heartbeats => {
            return Err(
                "config.balance_leaders: the balancer needs batch_heartbeats (its counts travel in the batches)"
                    .into(),
            )
        }
        MUXRAFT_BALANCE_ON => {
            node.balance_leaders = true;
            false
        }
        MUXRAFT_BALANCE_OFF => false,
        other => {
            return Err(format!(
                "config.balance_leaders: {other} is not MUXRAFT_BALANCE_AUTO, _ON or _OFF"
            ))
        }
    };
    if c.balance_max_transfers != 0 {
        node.balance_max_transfers = c.balance_max_transfers;
    }
    node.validate().map_err(|e| e.to_string())?;
    let cluster_secret = match (c.cluster_secret.is_null(), c.cluster_secret_len) {
        (_, 0) => None,
        (true, _) => return Err("config.cluster_secret is NULL but its length is not 0".into()),
        (false, len) => {
            // SAFETY: non-NULL with `len` readable bytes (header contract);
            // copied at once.
            let bytes = unsafe { std::slice::from_raw_parts(c.cluster_secret, len) };
            Some(ClusterSecret::new(bytes).map_err(|e| format!("config.cluster_secret: {e}"))?)
        }
    };
    // SAFETY: each NULL or NUL-terminated (header contract).
    let tls = unsafe { read_tls(&c) }?;
    let log = Sink::new(c.log, c.log_userdata, c.log_level).map_err(|e| format!("config.{e}"))?;
    Ok(Settings {
        node,
        tick_ms: c.tick_ms,
        data_dir,
        wal_segment_bytes: c.wal_segment_bytes,
        metrics_per_group_max: c.metrics_per_group_max,
        cluster_secret,
        tls,
        log,
        balance_when_embedded,
    })
}

/// The TLS settings: all three paths or none, each file read and checked.
///
/// # Safety
/// Each `tls_*_pem` of `c` is NULL or a NUL-terminated string.
unsafe fn read_tls(c: &muxraft_config) -> Result<Option<TlsConfig>, String> {
    let fields = [
        ("tls_cert_pem", c.tls_cert_pem),
        ("tls_key_pem", c.tls_key_pem),
        ("tls_ca_pem", c.tls_ca_pem),
    ];
    let set = fields.iter().filter(|(_, p)| !p.is_null()).count();
    if set == 0 {
        return Ok(None);
    }
    if set < fields.len() {
        let missing: Vec<&str> = fields
            .iter()
            .filter(|(_, p)| p.is_null())
            .map(|(name, _)| *name)
            .collect();
        return Err(format!(
            "config: TLS needs tls_cert_pem, tls_key_pem and tls_ca_pem together; {} NULL",
            missing.join(" and ")
        ));
    }
    let mut paths = Vec::with_capacity(fields.len());
    for (name, p) in fields {
        // SAFETY: non-NULL and NUL-terminated (contract).
        let s = unsafe { CStr::from_ptr(p) };
        let s = s
            .to_str()
            .map_err(|_| format!("config.{name} is not UTF-8"))?;
        if s.is_empty() {
            return Err(format!("config.{name} is empty"));
        }
        paths.push(std::path::PathBuf::from(s));
    }
    TlsConfig::from_pem_files(&paths[0], &paths[1], &paths[2])
        .map(Some)
        .map_err(|e| format!("config.{e}"))
}
