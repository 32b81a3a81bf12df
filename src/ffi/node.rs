//! The node handle and every call on it.

use std::os::raw::c_void;
use std::slice;

use bytes::Bytes;

use super::callbacks::{muxraft_callbacks, Callbacks};
use super::config::{muxraft_config, read_config};
use super::stats::{muxraft_group_info, muxraft_stats};
use super::status::*;
use crate::multi::Node;
use crate::runtime::SharedNode;

/// A node: the groups it hosts, and their state. Opaque; create it with
/// `muxraft_node_new`, free it with `muxraft_node_free`.
pub struct muxraft_node {
    shared: SharedNode,
    callbacks: Callbacks,
    /// The embedded runtime's tick interval.
    #[allow(dead_code)]
    tick_ms: u32,
}

/// Borrow the node behind a C pointer, refusing NULL and poisoned nodes, run
/// `f`, and poison the node if `f` panics.
fn with_node(
    node: *mut muxraft_node,
    f: impl FnOnce(&muxraft_node) -> muxraft_status,
) -> muxraft_status {
    if node.is_null() {
        return fail(MUXRAFT_INVALID_ARGUMENT, "node is NULL");
    }
    // SAFETY: non-NULL, and the header requires a pointer returned by
    // muxraft_node_new and not yet freed. Only shared references are made:
    // all mutation goes through the node's locks.
    let h = unsafe { &*node };
    if h.shared.is_poisoned() {
        return fail(
            MUXRAFT_PANIC,
            "this node hit an internal error earlier and refuses further calls; free it",
        );
    }
    let status = guard(|| f(h));
    if status == MUXRAFT_PANIC {
        h.shared.poison();
    }
    status
}

impl muxraft_node {
    /// Process the work an input caused: callbacks run now, on this thread
    /// (or on the thread already driving this node).
    fn drive(&self) -> muxraft_status {
        let mut cb = self.callbacks;
        match self.shared.drive(&mut cb) {
            Ok(()) => MUXRAFT_OK,
            Err(e) => fail_with(e),
        }
    }
}

/// Create a node.
///
/// `config` (required) is read and not kept: fill it with
/// `muxraft_config_init` first. `callbacks` may be NULL (no callbacks); the
/// struct is copied, the `userdata` it holds is kept and passed back.
/// On success `*out` receives a node the caller owns and must free with
/// `muxraft_node_free`.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_INVALID_ARGUMENT` for a NULL `config` or
/// `out`, a zero `node_id`, `election_ticks <= heartbeat_ticks`, a config not
/// filled by `muxraft_config_init`, or a `data_dir` in a build without
/// durable storage.
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
        if settings.data_dir.is_some() {
            return fail(
                MUXRAFT_INVALID_ARGUMENT,
                "config.data_dir: durable storage is not available in this version; pass NULL",
            );
        }
        let callbacks = if callbacks.is_null() {
            muxraft_callbacks {
                userdata: std::ptr::null_mut::<c_void>(),
                send: None,
                apply: None,
                role_changed: None,
                proposal_done: None,
            }
        } else {
            // SAFETY: non-NULL pointer to the host's callbacks struct; copied.
            unsafe { *callbacks }
        };
        let node = match Node::new(settings.node) {
            Ok(n) => n,
            Err(e) => return fail_with(e),
        };
        let h = Box::new(muxraft_node {
            shared: SharedNode::new(node),
            callbacks: Callbacks(callbacks),
            tick_ms: settings.tick_ms,
        });
        // SAFETY: `out` is non-NULL and points to writable storage for a
        // pointer (header contract).
        unsafe { out.write(Box::into_raw(h)) };
        MUXRAFT_OK
    })
}

/// Free a node and everything it holds. NULL is a no-op. No call on this
/// node may be running or made afterwards; no callback runs after it returns.
#[no_mangle]
pub unsafe extern "C" fn muxraft_node_free(node: *mut muxraft_node) {
    guard_void(|| {
        if !node.is_null() {
            // SAFETY: a pointer from muxraft_node_new, freed once (contract).
            drop(unsafe { Box::from_raw(node) });
        }
    })
}

/// Create this node's replica of group `group_id` (non-zero) whose replicas
/// live on the `n_members` nodes listed in `members` (this node among them;
/// 1 to 7 distinct non-zero ids). Create the group on every member node with
/// the same members. `members` is read, not kept.
///
/// Returns `MUXRAFT_OK`, `MUXRAFT_ALREADY_EXISTS`, or
/// `MUXRAFT_INVALID_ARGUMENT` (NULL pointer, zero id, bad member list).
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_create(
    node: *mut muxraft_node,
    group_id: u64,
    members: *const u64,
    n_members: usize,
) -> muxraft_status {
    with_node(node, |h| {
        if members.is_null() {
            return fail(MUXRAFT_INVALID_ARGUMENT, "members is NULL");
        }
        if n_members > 64 {
            return fail(MUXRAFT_INVALID_ARGUMENT, "n_members is implausibly large");
        }
        // SAFETY: non-NULL, and the caller passes `n_members` readable ids.
        let members = unsafe { slice::from_raw_parts(members, n_members) };
        match h.shared.with(|n| n.create_group(group_id, members)) {
            Ok(()) => h.drive(),
            Err(e) => fail_with(e),
        }
    })
}

/// Remove this node's replica of a group. Proposals still waiting are
/// reported to `proposal_done` with `MUXRAFT_NOT_FOUND`.
///
/// Returns `MUXRAFT_OK` or `MUXRAFT_NOT_FOUND`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_remove(
    node: *mut muxraft_node,
    group_id: u64,
) -> muxraft_status {
    with_node(node, |h| {
        match h.shared.with(|n| n.remove_group(group_id)) {
            Ok(()) => h.drive(),
            Err(e) => fail_with(e),
        }
    })
}

/// Fill `*out` with this node's view of a group.
///
/// Returns `MUXRAFT_OK`, `MUXRAFT_NOT_FOUND`, or `MUXRAFT_INVALID_ARGUMENT`
/// (NULL `out`).
#[no_mangle]
pub unsafe extern "C" fn muxraft_group_status(
    node: *mut muxraft_node,
    group_id: u64,
    out: *mut muxraft_group_info,
) -> muxraft_status {
    with_node(node, |h| {
        if out.is_null() {
            return fail(MUXRAFT_INVALID_ARGUMENT, "out is NULL");
        }
        match h.shared.with(|n| n.group_status(group_id)) {
            Ok(s) => {
                // SAFETY: non-NULL pointer to the caller's struct.
                unsafe { out.write(s.into()) };
                MUXRAFT_OK
            }
            Err(e) => fail_with(e),
        }
    })
}

/// Propose `len` bytes at `data` (copied; NULL allowed when `len` is 0) to a
/// group this node leads. On `MUXRAFT_OK`, `*out_proposal_id` (if not NULL)
/// receives an id that `proposal_done` reports exactly once: `MUXRAFT_OK`
/// with the entry's index once it is committed (durable on a majority), or
/// why it was not.
///
/// Returns `MUXRAFT_OK`, `MUXRAFT_NOT_LEADER` (see `muxraft_group_status`
/// for the leader), `MUXRAFT_NOT_FOUND`, `MUXRAFT_TOO_LARGE` (over
/// `max_proposal_bytes`), or `MUXRAFT_INVALID_ARGUMENT`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_propose(
    node: *mut muxraft_node,
    group_id: u64,
    data: *const u8,
    len: usize,
    out_proposal_id: *mut u64,
) -> muxraft_status {
    with_node(node, |h| {
        let bytes = if len == 0 {
            Bytes::new()
        } else if data.is_null() {
            return fail(MUXRAFT_INVALID_ARGUMENT, "data is NULL but len is not 0");
        } else {
            let max = h.shared.with(|n| n.config().max_proposal_bytes);
            if len > max {
                return fail(
                    MUXRAFT_TOO_LARGE,
                    format!("proposal of {len} bytes exceeds max_proposal_bytes {max}"),
                );
            }
            // SAFETY: non-NULL and the caller passes `len` readable bytes.
            Bytes::copy_from_slice(unsafe { slice::from_raw_parts(data, len) })
        };
        match h.shared.with(|n| n.propose(group_id, bytes)) {
            Ok(id) => {
                if !out_proposal_id.is_null() {
                    // SAFETY: non-NULL pointer to the caller's u64.
                    unsafe { out_proposal_id.write(id) };
                }
                h.drive()
            }
            Err(e) => fail_with(e),
        }
    })
}

/// Host-driven mode: hand the node a frame that node `from` sent (`len`
/// bytes at `frame`, read and not kept). Callbacks caused by it run before
/// this returns (unless another thread is already running this node's
/// callbacks, which then runs them).
///
/// Returns `MUXRAFT_OK` (a message for a group not hosted here is dropped
/// and counted: that is normal while groups are created), `MUXRAFT_MALFORMED`
/// (not a muxraft frame), `MUXRAFT_TOO_LARGE`, or `MUXRAFT_INVALID_ARGUMENT`
/// (NULL pointer, zero `from`, a frame from another cluster, addressed to
/// another node, or claiming another sender).
#[no_mangle]
pub unsafe extern "C" fn muxraft_step(
    node: *mut muxraft_node,
    from: u64,
    frame: *const u8,
    len: usize,
) -> muxraft_status {
    with_node(node, |h| {
        if frame.is_null() {
            return fail(MUXRAFT_INVALID_ARGUMENT, "frame is NULL");
        }
        if from == 0 {
            return fail(
                MUXRAFT_INVALID_ARGUMENT,
                "from must be a node id (non-zero)",
            );
        }
        // SAFETY: non-NULL and the caller passes `len` readable bytes; the
        // slice does not outlive this call.
        let bytes = unsafe { slice::from_raw_parts(frame, len) };
        match h.shared.with(|n| n.step_from(from, bytes)) {
            Ok(()) => h.drive(),
            Err(e) => fail_with(e),
        }
    })
}

/// Host-driven mode: advance the node's clock by one tick (call it every
/// `tick_ms`). Elections and heartbeats happen here; callbacks run before it
/// returns.
///
/// Returns `MUXRAFT_OK` or `MUXRAFT_INVALID_ARGUMENT` (NULL node).
#[no_mangle]
pub unsafe extern "C" fn muxraft_tick(node: *mut muxraft_node) -> muxraft_status {
    with_node(node, |h| {
        h.shared.with(|n| n.tick());
        h.drive()
    })
}

/// Fill `*out` with the node's counters.
///
/// Returns `MUXRAFT_OK` or `MUXRAFT_INVALID_ARGUMENT` (NULL pointer).
#[no_mangle]
pub unsafe extern "C" fn muxraft_node_stats(
    node: *mut muxraft_node,
    out: *mut muxraft_stats,
) -> muxraft_status {
    with_node(node, |h| {
        if out.is_null() {
            return fail(MUXRAFT_INVALID_ARGUMENT, "out is NULL");
        }
        let s = h
            .shared
            .with(|n| muxraft_stats::from_stats(n.stats(), n.group_count()));
        // SAFETY: non-NULL pointer to the caller's struct.
        unsafe { out.write(s) };
        MUXRAFT_OK
    })
}
