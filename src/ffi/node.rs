//! The node handle and every call on it.

use std::ffi::CStr;
use std::os::raw::c_char;
use std::slice;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::callbacks::{muxraft_callbacks, read_callbacks};
use super::config::{muxraft_config, read_config};
use super::log::{flush as flush_log, node_created, node_freed, NodeLog};
use super::stats::{muxraft_group_info, muxraft_key_metrics, muxraft_stats};
use super::status::*;
use crate::runtime::{Error, Runtime, RuntimeConfig};

/// A node: the groups it hosts, their storage, and (once started) its own
/// threads and connections. Opaque; create it with `muxraft_node_new`, free
/// it with `muxraft_node_free`.
pub struct muxraft_node {
    runtime: Runtime,
    /// The node's `tracing` dispatcher (`log.rs`), entered by every call
    /// on the node; its threads inherit it.
    log: tracing::Dispatch,
}

fn done(r: Result<(), Error>) -> muxraft_status {
    match r {
        Ok(()) => MUXRAFT_OK,
        Err(e) => fail_with(&e),
    }
}

/// Borrow the node behind a C pointer (refusing NULL), run `f` inside the
/// panic boundary. A panic poisons the node: every later call answers
/// `MUXRAFT_PANIC`.
pub(super) fn with_node(
    node: *mut muxraft_node,
    f: impl FnOnce(&Runtime) -> muxraft_status,
) -> muxraft_status {
    if node.is_null() {
        return fail(MUXRAFT_INVALID_ARGUMENT, "node is NULL");
    }
    // SAFETY: non-NULL, and the header requires a pointer returned by
    // muxraft_node_new and not yet freed. Only shared references are made:
    // all mutation goes through the runtime's locks.
    let h = unsafe { &*node };
    let _log = tracing::dispatcher::set_default(&h.log);
    let status = guard(|| f(&h.runtime));
    if status == MUXRAFT_PANIC {
        h.runtime.poison();
    }
    status
}

/// Read a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `s` must be NULL or point to a NUL-terminated string.
unsafe fn c_str<'a>(s: *const c_char, what: &str) -> Result<&'a str, muxraft_status> {
    if s.is_null() {
        return Err(fail(MUXRAFT_INVALID_ARGUMENT, format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| fail(MUXRAFT_INVALID_ARGUMENT, format!("{what} is not UTF-8")))
}

/// Create a node.
///
/// `config` (required) is read and not kept: fill it with
/// `muxraft_config_init` first. `callbacks` may be NULL (no callbacks);
/// otherwise fill it with `muxraft_callbacks_init` first; the struct is
/// copied, the `userdata` it holds is kept and passed back.
/// With `config->data_dir` set, the node opens its write-ahead log there
/// (creating the directory) and recovers every group it holds: those groups
/// exist when this returns (`muxraft_group_create` on them answers
/// `MUXRAFT_ALREADY_EXISTS`). Since the host's state machine starts empty,
/// each group's latest snapshot is handed to `restore` (before this
/// returns) and its committed entries after it are delivered to `apply`
/// again as the node catches up (from index 1 for a group without a
/// snapshot). One node per data directory: the directory is locked
/// (`flock` on `data_dir/LOCK`) while the node lives, and opening one that
/// another node holds, in this process or another, fails.
/// On success `*out` receives a node the caller owns and must free with
/// `muxraft_node_free`.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_INVALID_ARGUMENT` for a NULL `config` or
/// `out`, a config or callbacks struct whose `struct_size` was not set by
/// its `_init` function, a zero `node_id`, `tick_ms` or `heartbeat_ticks`,
/// `election_ticks <= heartbeat_ticks`, `max_proposal_bytes` or
/// `snapshot_chunk_bytes` of 0 or over 4 MiB, `snapshot_timeout_ms` below
/// `tick_ms`, `wal_segment_bytes` under 64 KiB, an empty `data_dir`
/// (NULL means in memory), or a `cluster_secret` of fewer than 16 or more
/// than 1024 bytes, or NULL with a non-zero length, or TLS settings that
/// cannot be used (one or two of the `tls_*_pem` paths set, a file missing
/// or without the PEM expected, a key that is not the certificate's: the
/// message names the field and the file); `MUXRAFT_BUSY` when another node (of this process or
/// another; the message names the process) has the data directory open;
/// `MUXRAFT_IO` when the data directory cannot be used or its log is
/// corrupt (the message says where); `MUXRAFT_PANIC`. On failure
/// `*out` is left unchanged.
#[no_mangle]
pub unsafe extern "C" fn muxraft_node_new(
    config: *const muxraft_config,
    callbacks: *const muxraft_callbacks,
    out: *mut *mut muxraft_node,
) -> muxraft_status {
    guard(|| {
        if out.is_null() {
            return fail(MUXRAFT_INVALID_ARGUMENT, "out is NULL");
        }
        // SAFETY: `config` is NULL or points to a config (header contract).
        let settings = match unsafe { read_config(config) } {
            Ok(s) => s,
            Err(msg) => return fail(MUXRAFT_INVALID_ARGUMENT, msg),
        };
        // SAFETY: NULL or a callbacks struct of `struct_size` readable
        // bytes (header contract); copied.
        let callbacks = match unsafe { read_callbacks(callbacks) } {
            Ok(c) => c,
            Err(msg) => return fail(MUXRAFT_INVALID_ARGUMENT, msg),
        };
        let log = NodeLog::dispatch(settings.node.node_id, settings.log);
        let _log = tracing::dispatcher::set_default(&log);
        let mut cfg = RuntimeConfig::new(settings.node);
        cfg.tick = Duration::from_millis(settings.tick_ms as u64);
        cfg.data_dir = settings.data_dir;
        cfg.wal_segment_bytes = settings.wal_segment_bytes;
        cfg.metrics_per_group_max = settings.metrics_per_group_max;
        cfg.cluster_secret = settings.cluster_secret;
        cfg.balance_leaders_when_embedded = settings.balance_when_embedded;
        cfg.tls = settings.tls;
        let runtime = match Runtime::new(cfg, Arc::new(callbacks)) {
            Ok(r) => r,
            Err(e) => return fail_with(&e),
        };
        node_created();
        // SAFETY: `out` is non-NULL and points to writable storage for a
        // pointer (header contract).
        unsafe { out.write(Box::into_raw(Box::new(muxraft_node { runtime, log }))) };
        MUXRAFT_OK
    })
}

/// Free a node and everything it holds. NULL is a no-op. A started node is
/// stopped first (as by `muxraft_node_stop`); when this returns no muxraft
/// thread of the node is left and no callback runs any more. No other call
/// on this node may be running or made afterwards, and it must not be called
/// from inside one of the node's own callbacks. When this returns, the
/// node's log lines have all been delivered and its log callback is not
/// called any more.
#[no_mangle]
pub unsafe extern "C" fn muxraft_node_free(node: *mut muxraft_node) {
    guard_void(|| {
        if !node.is_null() {
            // SAFETY: a pointer from muxraft_node_new, freed once (contract).
            let node = unsafe { Box::from_raw(node) };
            {
                let _log = tracing::dispatcher::set_default(&node.log);
                drop(node.runtime);
            }
            drop(node.log);
            // No log line of this node reaches its callback after this
            // (and the log thread exits with the last node).
            node_freed();
        }
    })
}

/// Embedded mode: tell the node where peer `node_id` listens. `address` is
/// "host:port" (e.g. "127.0.0.1:7001"), read and not kept. Call it for every
/// other node of the cluster, before or after `muxraft_node_start`.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_INVALID_ARGUMENT` (NULL pointer, zero or
/// own id, an address that does not resolve); `MUXRAFT_SHUTDOWN` (stopped);
/// `MUXRAFT_IO` (the node's storage failed earlier); `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_node_add_peer(
    node: *mut muxraft_node,
    node_id: u64,
    address: *const c_char,
) -> muxraft_status {
    with_node(node, |r| {
        // SAFETY: NULL or NUL-terminated (header contract).
        let address = match unsafe { c_str(address, "address") } {
            Ok(a) => a,
            Err(s) => return s,
        };
        done(r.add_peer(node_id, address))
    })
}

/// Embedded mode: listen on `listen_address` ("host:port"; read, not kept),
/// connect to the peers, and run the node on muxraft's own threads: a timer
/// ticking every `tick_ms`, the TCP transport (one connection per peer pair),
/// and the write-ahead log when `data_dir` is set. From then on callbacks
/// arrive on a muxraft thread, one at a time, and `muxraft_propose`,
/// `muxraft_read_index`, `muxraft_group_create/remove/status`,
/// `muxraft_node_stats` and `muxraft_node_metrics_text` may be
/// called from any thread (including from inside a callback);
/// `muxraft_tick` and `muxraft_step` are refused. The callbacks' `send` is
/// not used.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_INVALID_ARGUMENT` (NULL pointer, bad
/// address, already started); `MUXRAFT_IO` (cannot listen there, or the
/// node's storage failed earlier); `MUXRAFT_SHUTDOWN` (stopped earlier: a
/// node does not restart, create a new one); `MUXRAFT_PANIC`. A start that
/// fails leaves the node as it was: it can be started again (e.g. on another
/// port).
#[no_mangle]
pub unsafe extern "C" fn muxraft_node_start(
    node: *mut muxraft_node,
    listen_address: *const c_char,
) -> muxraft_status {
    with_node(node, |r| {
        // SAFETY: NULL or NUL-terminated (header contract).
        let listen = match unsafe { c_str(listen_address, "listen_address") } {
            Ok(a) => a,
            Err(s) => return s,
        };
        done(r.start(listen))
    })
}

/// Embedded mode: the TCP port the started node listens on (useful after
/// `muxraft_node_start` with port 0, which picks a free one).
///
/// Returns `MUXRAFT_OK` with `*out_port` set; `MUXRAFT_INVALID_ARGUMENT`
/// (NULL pointer, or the node is not started, or stopped); `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_node_listen_port(
    node: *mut muxraft_node,
    out_port: *mut u16,
) -> muxraft_status {
    with_node(node, |r| {
        if out_port.is_null() {
            return fail(MUXRAFT_INVALID_ARGUMENT, "out_port is NULL");
        }
        match r.local_addr() {
            Some(addr) => {
                // SAFETY: non-NULL pointer to the caller's u16.
                unsafe { out_port.write(addr.port()) };
                MUXRAFT_OK
            }
            None => fail(MUXRAFT_INVALID_ARGUMENT, "the node is not started"),
        }
    })
}

/// Stop the node (either mode). The pass in progress finishes (whatever was
/// acknowledged through `proposal_done` is durable); proposals still waiting
/// are reported with `MUXRAFT_SHUTDOWN` (they may still commit on the other
/// nodes). In embedded mode the threads and connections then end, and when
/// this returns no muxraft thread of the node is left; in host-driven mode
/// those reports run on the calling thread before this returns. The data
/// directory is then free: a new node may open it before this one is
/// freed. Every later call returns `MUXRAFT_SHUTDOWN`, except: the
/// read-only `muxraft_group_status`, `muxraft_node_stats`,
/// `muxraft_node_peers` and `muxraft_node_metrics_text` (the node as it
/// was when it stopped); `muxraft_node_listen_port`
/// (`MUXRAFT_INVALID_ARGUMENT`: no longer listening); `muxraft_node_free`;
/// and calls whose arguments are wrong on their face (a NULL pointer, a
/// length over a limit), which get that status first.
/// Must not be called from inside a callback. When this returns, the log
/// lines of the node so far have been delivered.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_INVALID_ARGUMENT` (NULL);
/// `MUXRAFT_SHUTDOWN` (already stopped); `MUXRAFT_IO` (host-driven: the
/// final pass could not write to storage); `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_node_stop(node: *mut muxraft_node) -> muxraft_status {
    let status = with_node(node, |r| done(r.stop()));
    // The lines of the stop reach the host before it goes on.
    flush_log();
    status
}

/// Create this node's replica of group `group_id` (any value, 0 included)
/// whose replicas live on the `n_members` nodes listed in `members` (this
/// node among them; 1 to 7 distinct non-zero ids). Create the group on every
/// member node with the same members and the same `incarnation`. `members`
/// is read, not kept. With a `data_dir`, the group is durable when this
/// returns.
///
/// `incarnation` names this creation of `group_id`: it must differ from
/// every earlier creation of the same id in the cluster (e.g. the creation
/// time in nanoseconds, or a counter kept with the queue's metadata), and be
/// the same on every member. Every message carries it, and a message of
/// another incarnation is dropped, so that when a queue is deleted and
/// created again under the same id, nothing of the deleted one (a late
/// message, a member that has not deleted it yet) ever reaches the new one.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_ALREADY_EXISTS`;
/// `MUXRAFT_INVALID_ARGUMENT` (NULL pointer, bad member list); `MUXRAFT_IO`
/// (the creation could not be written, or the node's storage failed
/// earlier); `MUXRAFT_SHUTDOWN`; `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_create(
    node: *mut muxraft_node,
    group_id: u64,
    incarnation: u64,
    members: *const u64,
    n_members: usize,
) -> muxraft_status {
    // SAFETY: the caller passes `n_members` readable ids at `members`.
    with_node(node, |r| match unsafe { members_of(members, n_members) } {
        Ok(members) => done(r.create_group(group_id, incarnation, members)),
        Err(status) => status,
    })
}

/// The member list a caller passed, or the status that refuses it.
///
/// # Safety
/// `members`, if not NULL, points to `n_members` readable ids that outlive
/// the returned slice.
unsafe fn members_of<'a>(
    members: *const u64,
    n_members: usize,
) -> Result<&'a [u64], muxraft_status> {
    if members.is_null() {
        return Err(fail(MUXRAFT_INVALID_ARGUMENT, "members is NULL"));
    }
    if n_members > 64 {
        return Err(fail(
            MUXRAFT_INVALID_ARGUMENT,
            "n_members is implausibly large",
        ));
    }
    // SAFETY: non-NULL, and the caller passes `n_members` readable ids.
    Ok(unsafe { slice::from_raw_parts(members, n_members) })
}

/// Create this node's replica of a group that exists on the other members,
/// after this node lost what it held of it: its data directory was deleted
/// or replaced (a failed disk), so `muxraft_node_new` recovered nothing for
/// a group the broker's metadata says this node is a member of. Use
/// `muxraft_group_create` only for a group that is new on every member:
/// a replica created empty must not act as one that never existed, since it
/// may have voted and acknowledged entries before it lost them.
///
/// The replica starts empty; its leader brings it up to date with a
/// snapshot (`restore` is called) and appends, after which it applies what
/// the others apply. It **never votes nor campaigns**, for as long as it
/// lives (the mark is durable), and its acknowledgements count toward no
/// quorum: not toward commits, read confirmation nor a leader's check that
/// a majority still hears it. Before it lost its disk it may have helped
/// commit entries of a term a stale leader never heard of; counting its
/// answers would let that leader commit a conflicting entry. So a group
/// with a rejoined replica tolerates one failure less, for elections and
/// for writes alike (a group of 3 with one rejoined replica needs both
/// other replicas), and a leadership transfer to it is refused. To make it
/// a full member again, remove it from the group and add a new replica
/// through a membership change, as soon as the group has a leader.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_ALREADY_EXISTS` (the group was recovered:
/// nothing was lost); `MUXRAFT_INVALID_ARGUMENT` (NULL pointer, bad member
/// list); `MUXRAFT_IO`; `MUXRAFT_SHUTDOWN`; `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_rejoin(
    node: *mut muxraft_node,
    group_id: u64,
    incarnation: u64,
    members: *const u64,
    n_members: usize,
) -> muxraft_status {
    // SAFETY: the caller passes `n_members` readable ids at `members`.
    with_node(node, |r| match unsafe { members_of(members, n_members) } {
        Ok(members) => done(r.rejoin_group(group_id, incarnation, members)),
        Err(status) => status,
    })
}

/// Tell the node that the host's state machine of `group_id`, after
/// applying `index`, is the `len` bytes at `data` (copied; NULL allowed
/// when `len` is 0): a snapshot. `index` must be one the host has applied
/// (from inside the `apply` callback of `index` included) and after the
/// group's current snapshot.
///
/// **Returns once the snapshot is durable** (a file written, synced and
/// renamed in `data_dir`) and the log compacted: entries up to `index`
/// leave the write-ahead log, which can then delete its old segments, and
/// entries up to `index - snapshot_trailing_entries` leave memory (the
/// trailing window serves followers a little behind; it is not kept on
/// disk, and after a restart they get the snapshot). Followers that fall
/// behind the compaction point get this snapshot through their `restore`
/// callback. Without `data_dir` the snapshot is kept in memory.
/// May be called from any thread, and from inside a callback; it blocks
/// while the file is written.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_NOT_FOUND`; `MUXRAFT_INVALID_ARGUMENT`
/// (NULL node, NULL `data` with a non-zero `len`, `index` not applied yet
/// or not after the current snapshot); `MUXRAFT_TOO_LARGE` (over
/// `max_snapshot_bytes`); `MUXRAFT_IO` (the file could not be written:
/// nothing changed; or the compaction could not be recorded: the node
/// refuses further work, as after any failed write); `MUXRAFT_SHUTDOWN`;
/// `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_snapshot(
    node: *mut muxraft_node,
    group_id: u64,
    index: u64,
    data: *const u8,
    len: usize,
) -> muxraft_status {
    with_node(node, |r| {
        if data.is_null() && len > 0 {
            return fail(MUXRAFT_INVALID_ARGUMENT, "data is NULL");
        }
        let max = r.max_snapshot_bytes();
        if len as u64 > max {
            return fail(
                MUXRAFT_TOO_LARGE,
                format!("snapshot of {len} bytes is over max_snapshot_bytes ({max})"),
            );
        }
        let bytes = if len == 0 {
            Bytes::new()
        } else {
            // SAFETY: non-NULL, and the caller passes `len` readable bytes.
            Bytes::copy_from_slice(unsafe { slice::from_raw_parts(data, len) })
        };
        done(r.snapshot(group_id, index, bytes))
    })
}

/// Remove this node's replica of a group. Proposals still waiting are
/// reported to `proposal_done` with `MUXRAFT_UNKNOWN` (they may commit on
/// the other replicas). Its messages not yet sent are dropped. The node
/// remembers the removed replica's term, vote and log position, durably,
/// in case it is added back to the same group incarnation
/// (`muxraft_group_join`).
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_NOT_FOUND`; `MUXRAFT_INVALID_ARGUMENT`
/// (NULL node); `MUXRAFT_IO` (the removal could not be written, or the
/// node's storage failed earlier); `MUXRAFT_SHUTDOWN`; `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_remove(
    node: *mut muxraft_node,
    group_id: u64,
) -> muxraft_status {
    with_node(node, |r| done(r.remove_group(group_id)))
}

/// One peer of a node, as `muxraft_node_peers` lists it. This struct never
/// changes (what else a peer needs would come with another function).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct muxraft_peer {
    /// The peer's node id: a node that hosts a replica of a group hosted
    /// here.
    pub node_id: u64,
    /// 1 if a frame from it arrived within the last election timeout (the
    /// heartbeat batch it sends every interval, rows or not), else 0.
    pub heard: u64,
    /// Its liveness epoch on this node: 1 at first, then one more each
    /// time it is lost (not heard for an election timeout) or seen to
    /// restart. Quiet groups trust their leader's node only in the epoch
    /// they went quiet in.
    pub epoch: u64,
}

/// List this node's peers (the nodes hosting replicas of its groups), in
/// node id order, with whether it hears each and its liveness epoch. Writes
/// at most `capacity` of them to `out` (which may be NULL when `capacity`
/// is 0) and sets `*count` to how many peers there are: call it with 0 and
/// NULL to size the array.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_INVALID_ARGUMENT` (NULL node or `count`,
/// NULL `out` with a non-zero `capacity`); `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_node_peers(
    node: *mut muxraft_node,
    out: *mut muxraft_peer,
    capacity: usize,
    count: *mut usize,
) -> muxraft_status {
    with_node(node, |r| {
        if count.is_null() {
            return fail(MUXRAFT_INVALID_ARGUMENT, "count is NULL");
        }
        if out.is_null() && capacity > 0 {
            return fail(
                MUXRAFT_INVALID_ARGUMENT,
                "out is NULL but capacity is not 0",
            );
        }
        let peers = r.peer_liveness();
        for (i, &(node_id, heard, epoch)) in peers.iter().take(capacity).enumerate() {
            let p = muxraft_peer {
                node_id,
                heard: u64::from(heard),
                epoch,
            };
            // SAFETY: `out` holds `capacity` writable elements (header
            // contract) and `i < capacity`.
            unsafe { out.add(i).write(p) };
        }
        // SAFETY: non-NULL, writable (contract).
        unsafe { count.write(peers.len()) };
        MUXRAFT_OK
    })
}

/// Fill `*out` with this node's view of a group: as much of it as
/// `out->struct_size` holds (set it with `muxraft_group_info_init`).
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_NOT_FOUND`; `MUXRAFT_INVALID_ARGUMENT`
/// (NULL pointer, `struct_size` not set); `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_status(
    node: *mut muxraft_node,
    group_id: u64,
    out: *mut muxraft_group_info,
) -> muxraft_status {
    with_node(node, |r| {
        if out.is_null() {
            return fail(MUXRAFT_INVALID_ARGUMENT, "out is NULL");
        }
        // SAFETY: non-NULL pointer to the caller's struct (header contract).
        if let Err(msg) = unsafe { muxraft_group_info::check(out) } {
            return fail(MUXRAFT_INVALID_ARGUMENT, msg);
        }
        match r.group_info(group_id) {
            // SAFETY: non-NULL pointer to the caller's struct of
            // `struct_size` writable bytes (header contract).
            Ok(info) => match unsafe { muxraft_group_info::new(&info).write_to(out) } {
                Ok(()) => MUXRAFT_OK,
                Err(msg) => fail(MUXRAFT_INVALID_ARGUMENT, msg),
            },
            Err(e) => fail_with(&e),
        }
    })
}

/// Fill `*out` with a group's key metrics (role, term, leader, commit,
/// applied, last index, snapshot index, log bytes, membership, quiesced):
/// as much of it as `out->struct_size` holds (set it with
/// `muxraft_key_metrics_init`).
///
/// Never waits for the node: the numbers are atomics that the node
/// publishes at the end of each pass that touched the group (and when it
/// quiesces, wakes or is compacted by a snapshot), read without the node's
/// lock, so this returns at once while the node is busy (a long tick, an
/// fsync, a callback that blocks). Callable from any thread, including
/// from inside callbacks, and after `muxraft_node_stop`. The only lock it
/// takes is a read lock on the index of groups, which `muxraft_group_create`
/// and `muxraft_group_remove` (and their kin) hold for one map update.
/// Each field is read whole; fields may be from adjacent moments (see
/// `muxraft_key_metrics`). `muxraft_group_status` tells more (bytes on
/// disk, backpressure) but goes through the node.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_NOT_FOUND` (no such group here);
/// `MUXRAFT_INVALID_ARGUMENT` (NULL node or `out`, `struct_size` not set);
/// `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_key_metrics(
    node: *mut muxraft_node,
    group_id: u64,
    out: *mut muxraft_key_metrics,
) -> muxraft_status {
    with_node(node, |r| {
        if out.is_null() {
            return fail(MUXRAFT_INVALID_ARGUMENT, "out is NULL");
        }
        // SAFETY: non-NULL pointer to the caller's struct (header contract).
        if let Err(msg) = unsafe { muxraft_key_metrics::check(out) } {
            return fail(MUXRAFT_INVALID_ARGUMENT, msg);
        }
        match r.key_metrics(group_id) {
            // SAFETY: non-NULL pointer to the caller's struct of
            // `struct_size` writable bytes (header contract).
            Ok(m) => match unsafe { muxraft_key_metrics::new(&m).write_to(out) } {
                Ok(()) => MUXRAFT_OK,
                Err(msg) => fail(MUXRAFT_INVALID_ARGUMENT, msg),
            },
            Err(e) => fail_with(&e),
        }
    })
}

/// Propose `len` bytes at `data` (copied; NULL allowed when `len` is 0) to a
/// group this node leads. On `MUXRAFT_OK`, `*out_proposal_id` (if not NULL)
/// receives an id — written before any callback runs — that `proposal_done`
/// reports exactly once (see `muxraft_proposal_done_fn` for the outcomes).
/// A node numbers its proposals and reads in one increasing sequence from
/// 1, never reused while the node lives: a host may keep what it waits for
/// in a ring indexed by id (`examples/c/queue_node.c` does).
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_NOT_LEADER` (see `muxraft_group_status`
/// for the leader: leadership moves, so this is routine); `MUXRAFT_NOT_FOUND`;
/// `MUXRAFT_TOO_LARGE` (over `max_proposal_bytes`);
/// `MUXRAFT_INVALID_ARGUMENT` (NULL node, NULL `data` with a non-zero
/// `len`); `MUXRAFT_IO` (the node's storage failed earlier);
/// `MUXRAFT_SHUTDOWN`; `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_propose(
    node: *mut muxraft_node,
    group_id: u64,
    data: *const u8,
    len: usize,
    out_proposal_id: *mut u64,
) -> muxraft_status {
    with_node(node, |r| {
        let bytes = if len == 0 {
            Bytes::new()
        } else if data.is_null() {
            return fail(MUXRAFT_INVALID_ARGUMENT, "data is NULL but len is not 0");
        } else {
            let max = r.max_proposal_bytes();
            if len > max {
                return fail(
                    MUXRAFT_TOO_LARGE,
                    format!("proposal of {len} bytes exceeds max_proposal_bytes {max}"),
                );
            }
            // SAFETY: non-NULL and the caller passes `len` readable bytes.
            Bytes::copy_from_slice(unsafe { slice::from_raw_parts(data, len) })
        };
        let publish = |id: u64| {
            if !out_proposal_id.is_null() {
                // SAFETY: non-NULL pointer to the caller's u64.
                unsafe { out_proposal_id.write(id) };
            }
        };
        match r.propose_then(group_id, bytes, publish) {
            Ok(_) => MUXRAFT_OK,
            Err(e) => fail_with(&e),
        }
    })
}

/// Take a linearizable read of a group this node leads, without writing
/// to the log (Raft's read index). On `MUXRAFT_OK`, `*out_read_id` (if not
/// NULL) receives an id — written before any callback runs — that
/// `read_done` reports exactly once: with `MUXRAFT_OK` and an index once a
/// quorum confirmed this node still leads and every entry up to that index
/// was delivered to `apply`; serve the read from the state machine then.
/// See `muxraft_read_done_fn` for the other outcomes.
///
/// With `batch_heartbeats` (the default), every read taken during a
/// heartbeat interval is confirmed by that interval's heartbeat batches: no
/// extra message, a wait of at most about one interval plus a round trip.
/// In the naive mode each read sends a heartbeat round of its own. A quiet
/// group wakes up (and goes quiet again once idle).
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_NOT_LEADER` (read at the leader: see
/// `muxraft_group_status`); `MUXRAFT_NOT_FOUND`; `MUXRAFT_BUSY` (over
/// `max_pending_reads_per_group` or `max_pending_reads`: retry once reads
/// are reported); `MUXRAFT_INVALID_ARGUMENT` (NULL node); `MUXRAFT_IO`;
/// `MUXRAFT_SHUTDOWN`; `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_read_index(
    node: *mut muxraft_node,
    group_id: u64,
    out_read_id: *mut u64,
) -> muxraft_status {
    with_node(node, |r| {
        let publish = |id: u64| {
            if !out_read_id.is_null() {
                // SAFETY: non-NULL pointer to the caller's u64.
                unsafe { out_read_id.write(id) };
            }
        };
        match r.read_index_then(group_id, publish) {
            Ok(_) => MUXRAFT_OK,
            Err(e) => fail_with(&e),
        }
    })
}

/// Hand leadership of a group this node leads to its replica on node
/// `to_node_id` (Raft's leadership transfer: the leader catches the target
/// up, then tells it to campaign at once; its election is granted even by
/// voters that still hear this leader). Returns at once: `role_changed`
/// reports the new leader on every replica, usually within a few round
/// trips; a transfer the target has not completed within an election
/// timeout is abandoned, and this node leads on. While a transfer is under
/// way `muxraft_propose` on this node returns `MUXRAFT_NOT_LEADER` (propose
/// at the target). A transfer to this node itself does nothing; a new one
/// replaces one under way. Leaders piled up on the survivors after a
/// restart are moved back this way, one group at a time.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_NOT_LEADER` (this node does not lead the
/// group); `MUXRAFT_NOT_FOUND`; `MUXRAFT_INVALID_ARGUMENT` (NULL node, or
/// `to_node_id` is not a voter of the group); `MUXRAFT_BUSY` (this leader
/// is not replicating to the target now: it is unreachable, being probed
/// or receiving a snapshot; retry later); `MUXRAFT_IO`;
/// `MUXRAFT_SHUTDOWN`; `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_transfer_leader(
    node: *mut muxraft_node,
    group_id: u64,
    to_node_id: u64,
) -> muxraft_status {
    with_node(node, |r| done(r.transfer_leader(group_id, to_node_id)))
}

/// Host-driven mode: hand the node a frame that node `from` sent (`len`
/// bytes at `frame`, read and not kept; see "Host-driven frames" at the top
/// of this header). Callbacks caused by it run before this returns (unless
/// another thread is already running this node's callbacks, which then runs
/// them).
///
/// Returns `MUXRAFT_OK` (a message for a group not hosted here, or of
/// another incarnation of it, is dropped and counted: that is normal while
/// groups are created and removed); `MUXRAFT_MALFORMED` (not a muxraft
/// frame: drop it); `MUXRAFT_TOO_LARGE` (over the frame limit);
/// `MUXRAFT_INVALID_ARGUMENT` (NULL pointer, zero `from`, a frame from
/// another cluster, addressed to another node, or claiming another sender;
/// or the node is started); `MUXRAFT_IO` (the write-ahead log failed, now
/// or earlier); `MUXRAFT_SHUTDOWN`; `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_step(
    node: *mut muxraft_node,
    from: u64,
    frame: *const u8,
    len: usize,
) -> muxraft_status {
    with_node(node, |r| {
        if frame.is_null() {
            return fail(MUXRAFT_INVALID_ARGUMENT, "frame is NULL");
        }
        if from == 0 {
            return fail(
                MUXRAFT_INVALID_ARGUMENT,
                "from must be a node id (non-zero)",
            );
        }
        // Checked before any byte is read or copied: the caller's length
        // must not size an allocation, nor a slice past the frame limit.
        if len > r.max_step_len() {
            return fail_with(&r.refuse_oversized(len));
        }
        // SAFETY: non-NULL and the caller passes `len` readable bytes; the
        // slice does not outlive this call.
        let bytes = unsafe { slice::from_raw_parts(frame, len) };
        done(r.step(from, bytes))
    })
}

/// Host-driven mode: advance the node's clock by one tick (call it every
/// `tick_ms`). Elections and heartbeats happen here; callbacks run before it
/// returns.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_INVALID_ARGUMENT` (NULL node, or the node
/// is started); `MUXRAFT_IO` (the write-ahead log failed, now or earlier);
/// `MUXRAFT_SHUTDOWN`; `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_tick(node: *mut muxraft_node) -> muxraft_status {
    with_node(node, |r| done(r.tick()))
}

/// Fill `*out` with the node's counters: as many as `out->struct_size`
/// holds (set it with `muxraft_stats_init`).
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_INVALID_ARGUMENT` (NULL pointer,
/// `struct_size` not set); `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_node_stats(
    node: *mut muxraft_node,
    out: *mut muxraft_stats,
) -> muxraft_status {
    with_node(node, |r| {
        if out.is_null() {
            return fail(MUXRAFT_INVALID_ARGUMENT, "out is NULL");
        }
        let (stats, groups, transport, disk, quiet) = r.stats();
        let s = muxraft_stats::new(&stats, groups, &transport, &disk, &quiet);
        // SAFETY: non-NULL pointer to the caller's struct of `struct_size`
        // writable bytes (header contract).
        match unsafe { s.write_to(out) } {
            Ok(()) => MUXRAFT_OK,
            Err(msg) => fail(MUXRAFT_INVALID_ARGUMENT, msg),
        }
    })
}
