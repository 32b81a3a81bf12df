//! The host's callbacks.

use std::mem::{offset_of, size_of};
use std::os::raw::c_void;

use super::sized::read_sized;
use super::status::{
    muxraft_status, MUXRAFT_NOT_FOUND, MUXRAFT_NOT_LEADER, MUXRAFT_OK, MUXRAFT_SHUTDOWN,
    MUXRAFT_UNKNOWN,
};
use crate::multi::{Event, ProposalError, ReadError};
use crate::raft::{MemberRole, Role};
use crate::runtime::Host;

/// A group replica's role.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum muxraft_role {
    MUXRAFT_FOLLOWER = 0,
    /// Campaigning (pre-vote or vote).
    MUXRAFT_CANDIDATE = 1,
    MUXRAFT_LEADER = 2,
}

impl From<Role> for muxraft_role {
    fn from(r: Role) -> muxraft_role {
        match r {
            Role::Follower => muxraft_role::MUXRAFT_FOLLOWER,
            Role::PreCandidate | Role::Candidate => muxraft_role::MUXRAFT_CANDIDATE,
            Role::Leader => muxraft_role::MUXRAFT_LEADER,
        }
    }
}

/// A member's role in a group: `MUXRAFT_VOTER` (counts toward elections
/// and commit), `MUXRAFT_NONVOTER` (receives the log, never votes) or
/// `MUXRAFT_PROMOTABLE` (a non-voter that its leader makes a voter once it
/// has caught up).
pub type muxraft_member_role = u32;
pub const MUXRAFT_VOTER: muxraft_member_role = 0;
pub const MUXRAFT_NONVOTER: muxraft_member_role = 1;
pub const MUXRAFT_PROMOTABLE: muxraft_member_role = 2;

pub(crate) fn member_role_to_c(r: MemberRole) -> muxraft_member_role {
    match r {
        MemberRole::Voter => MUXRAFT_VOTER,
        MemberRole::NonVoter => MUXRAFT_NONVOTER,
        MemberRole::Promotable => MUXRAFT_PROMOTABLE,
    }
}

pub(crate) fn member_role_from_c(r: muxraft_member_role) -> Option<MemberRole> {
    match r {
        MUXRAFT_VOTER => Some(MemberRole::Voter),
        MUXRAFT_NONVOTER => Some(MemberRole::NonVoter),
        MUXRAFT_PROMOTABLE => Some(MemberRole::Promotable),
        _ => None,
    }
}

/// One member of a group (`muxraft_group_members`, `members_changed`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct muxraft_member {
    /// The node hosting the member's replica.
    pub node_id: u64,
    /// On the group's leader (`muxraft_group_members` called there): the
    /// highest index known to match the leader's log on that member (for
    /// the leader itself, its own durable end). 0 elsewhere and in
    /// `members_changed`.
    pub match_index: u64,
    /// `MUXRAFT_VOTER`, `MUXRAFT_NONVOTER` or `MUXRAFT_PROMOTABLE`.
    pub role: muxraft_member_role,
}

/// Host-driven mode: called with every frame for node `to`. `frame` is
/// valid only during the call: copy it (or hand it to a socket) before
/// returning. See "Host-driven frames" at the top of this header for what a
/// frame is and what the host may do with it.
///
/// `liveness` is true for heartbeat batches and their answers (and, in the
/// naive mode, per-group heartbeats and their answers): send those ahead of
/// other frames.
pub type muxraft_send_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        to: u64,
        frame: *const u8,
        len: usize,
        liveness: bool,
    ),
>;
/// Called once per committed entry per replica, in log order per group.
/// Indexes increase but may skip: Raft's own entries (the empty entry a new
/// leader appends, membership changes: see `members_changed`) take indexes
/// and are not delivered. `data` (`len` bytes;
/// NULL when `len` is 0) is valid only during the call.
pub type muxraft_apply_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        group_id: u64,
        index: u64,
        data: *const u8,
        len: usize,
    ),
>;
/// Called when this node's replica of a group changes role or learns of a
/// new leader (`leader_id` 0: none known).
pub type muxraft_role_changed_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        group_id: u64,
        role: muxraft_role,
        term: u64,
        leader_id: u64,
    ),
>;
/// Called exactly once per proposal accepted on this node, with its outcome:
///
/// - `MUXRAFT_OK`, with the index it committed at: final, it is durable on
///   a majority and is applied on every replica.
/// - `MUXRAFT_NOT_LEADER`, index 0: failed for certain. Leadership moved and
///   another entry was committed in its place; it is never applied anywhere.
///   Safe to propose again (at the new leader).
/// - `MUXRAFT_UNKNOWN`, index 0: the outcome is unknown. This node lost
///   leadership (and the proposal was still undecided one election timeout
///   later) or the group was removed here while it was in flight; it may or
///   may not have committed on the other replicas. If it did, it is applied
///   like any committed entry (without a second `proposal_done`).
/// - `MUXRAFT_SHUTDOWN`, index 0: also unknown, because the node stopped
///   (see `muxraft_node_stop`).
pub type muxraft_proposal_done_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        group_id: u64,
        proposal_id: u64,
        status: muxraft_status,
        index: u64,
    ),
>;
/// Called when the host must set its state machine of a group to a
/// snapshot: `data` (`len` bytes; NULL when `len` is 0, valid only during
/// the call) is the state after applying `index`, whose entry had `term`.
/// Called on a follower that installs a snapshot its leader sent (it fell
/// behind the leader's log), and by `muxraft_node_new` for each group
/// recovered from a snapshot on disk. Always before any `apply` of a later
/// index of that group; `apply` then resumes after `index`.
pub type muxraft_restore_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        group_id: u64,
        index: u64,
        term: u64,
        data: *const u8,
        len: usize,
    ),
>;
/// Called once when a group's log since its last snapshot grew past
/// `snapshot_threshold_entries` entries or `snapshot_threshold_bytes` bytes
/// of payload: the host should take a snapshot
/// (`muxraft_group_snapshot`) at an index it has applied (`applied` is the
/// last one). Called again only after a snapshot was taken.
pub type muxraft_snapshot_needed_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        group_id: u64,
        applied: u64,
        entries: u64,
        bytes: u64,
    ),
>;
/// Called exactly once per read accepted by `muxraft_read_index` on this
/// node, with its outcome:
///
/// - `MUXRAFT_OK`, with the read's index: a quorum confirmed this node's
///   leadership after the read was taken, and every entry up to `index` has
///   been delivered to `apply` (before this call). Serve the read from the
///   state machine now: it reflects every write acknowledged before the
///   read was taken (linearizable). Entries after `index` may have been
///   applied too; that is fine.
/// - `MUXRAFT_NOT_LEADER`, index 0: this node stopped leading the group
///   before the read was confirmed. Nothing was read; take it again at the
///   new leader.
/// - `MUXRAFT_NOT_FOUND`, index 0: the group was removed here meanwhile.
/// - `MUXRAFT_SHUTDOWN`, index 0: the node stopped (see
///   `muxraft_node_stop`).
pub type muxraft_read_done_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        group_id: u64,
        read_id: u64,
        status: muxraft_status,
        index: u64,
    ),
>;

/// Called when a membership of the group is applied on this replica: the
/// change proposed with `muxraft_group_add_member` or
/// `muxraft_group_remove_member` (or an automatic promotion) committed at
/// `index`, or a snapshot installed at `index` carried it. `members`
/// (`count` of them, voters first; valid only during the call) is the
/// whole membership from then on. If this node is not among them, its
/// replica was removed: it no longer takes part, and the host may call
/// `muxraft_group_remove` once it no longer needs the replica's state. (A
/// replica that joined is told nothing until a membership lists it: what
/// held before it was added, from a snapshot say, is not a removal.) Also
/// called at start-up for a replica recovered from its own snapshot (the
/// membership the snapshot recorded; later ones follow as its log is
/// applied again).
/// Reported in log order with `apply`; a change proposed and then lost
/// (its leader lost leadership first) is never reported.
pub type muxraft_members_changed_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        group_id: u64,
        index: u64,
        members: *const muxraft_member,
        count: usize,
    ),
>;

/// The host's callbacks. Fill the struct with `muxraft_callbacks_init`
/// (which sets `struct_size` and every callback to NULL), then set the ones
/// you need: callbacks are only ever added at the end, and one your program
/// does not know of is not called. Any of them may be NULL: that event is
/// not reported. `send` is needed only in host-driven mode with groups of
/// more than one replica; there a NULL `send` discards frames (they are
/// still counted in `messages_sent`). In embedded mode the transport carries
/// frames and `send` is never called.
///
/// Callbacks run on the thread that called `muxraft_tick`, `muxraft_step`,
/// `muxraft_propose`, `muxraft_read_index`,
/// `muxraft_group_transfer_leader`, `muxraft_group_add_member`,
/// `muxraft_group_remove_member`, `muxraft_group_join`,
/// `muxraft_group_create` or `muxraft_group_remove` (host-driven mode), or on the node's muxraft
/// thread (embedded mode); also inside `muxraft_node_new` (`restore` of
/// groups recovered from disk) and `muxraft_node_stop` (outcomes still
/// owed); never on two threads at once for one node. They
/// may call muxraft again, including on the same node (e.g. propose from
/// `apply`): such a call does its work and returns, and its callbacks follow
/// once the current one returns. A callback must not unwind or longjmp.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct muxraft_callbacks {
    /// Size of this struct as the program was compiled; set by
    /// `muxraft_callbacks_init`. Do not change it.
    pub struct_size: u32,
    /// Passed as the first argument of every callback; muxraft never reads it.
    pub userdata: *mut c_void,
    pub send: muxraft_send_fn,
    pub apply: muxraft_apply_fn,
    pub role_changed: muxraft_role_changed_fn,
    pub proposal_done: muxraft_proposal_done_fn,
    pub restore: muxraft_restore_fn,
    pub snapshot_needed: muxraft_snapshot_needed_fn,
    pub read_done: muxraft_read_done_fn,
    pub members_changed: muxraft_members_changed_fn,
}

impl Default for muxraft_callbacks {
    fn default() -> muxraft_callbacks {
        muxraft_callbacks {
            struct_size: size_of::<muxraft_callbacks>() as u32,
            userdata: std::ptr::null_mut(),
            send: None,
            apply: None,
            role_changed: None,
            proposal_done: None,
            restore: None,
            snapshot_needed: None,
            read_done: None,
            members_changed: None,
        }
    }
}

/// Fill the first `size` bytes of `callbacks` with no callbacks and NULL
/// userdata, and set `struct_size` (see `muxraft_config_init_sized`). Call
/// it as `muxraft_callbacks_init(&callbacks)`, a macro that passes the size
/// your program was compiled with. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn muxraft_callbacks_init_sized(
    callbacks: *mut muxraft_callbacks,
    size: usize,
) {
    super::status::guard_void(|| {
        // SAFETY: NULL or a struct of `size` writable bytes (header contract).
        unsafe { super::sized::init_sized(callbacks, size, muxraft_callbacks::default()) }
    })
}

/// The smallest `struct_size` accepted: through `userdata`.
const CALLBACKS_MIN_SIZE: usize =
    offset_of!(muxraft_callbacks, userdata) + size_of::<*mut c_void>();

/// Read the callbacks a program passed (NULL: none): the ones its
/// `struct_size` covers, NULL for the rest.
///
/// # Safety
/// `callbacks` must be NULL or point to a `muxraft_callbacks` whose first
/// `struct_size` bytes are readable.
pub(crate) unsafe fn read_callbacks(
    callbacks: *const muxraft_callbacks,
) -> Result<Callbacks, String> {
    if callbacks.is_null() {
        return Ok(Callbacks(muxraft_callbacks::default()));
    }
    // SAFETY: non-NULL with `struct_size` readable bytes (contract); every
    // bit pattern of a pointer or an optional function pointer is valid.
    let cb = unsafe {
        read_sized(
            callbacks,
            muxraft_callbacks::default(),
            CALLBACKS_MIN_SIZE,
            "muxraft_callbacks",
            |_| {},
        )
    }?;
    Ok(Callbacks(cb))
}

/// The callbacks as the Rust side holds them.
#[derive(Clone, Copy)]
pub(crate) struct Callbacks(pub muxraft_callbacks);

// SAFETY: muxraft only passes `userdata` back to the host's own functions; the
// header documents that callbacks may run on another thread than the one
// that registered them, so the host must make userdata safe to use there.
unsafe impl Send for Callbacks {}
unsafe impl Sync for Callbacks {}

impl Host for Callbacks {
    fn send(&self, to: u64, frame: &[u8], liveness: bool) {
        if let Some(f) = self.0.send {
            // SAFETY: the host registered `f`; `frame` is valid for `len`
            // bytes for the duration of the call, as documented.
            unsafe { f(self.0.userdata, to, frame.as_ptr(), frame.len(), liveness) }
        }
    }

    fn event(&self, ev: &Event) {
        let ud = self.0.userdata;
        match ev {
            Event::Applied {
                group_id,
                index,
                data,
                ..
            } => {
                if let Some(f) = self.0.apply {
                    let ptr = if data.is_empty() {
                        std::ptr::null()
                    } else {
                        data.as_ptr()
                    };
                    // SAFETY: host function; `data` outlives the call.
                    unsafe { f(ud, *group_id, *index, ptr, data.len()) }
                }
            }
            Event::RoleChanged {
                group_id,
                role,
                term,
                leader,
                ..
            } => {
                if let Some(f) = self.0.role_changed {
                    // SAFETY: host function; plain values.
                    unsafe { f(ud, *group_id, (*role).into(), *term, *leader) }
                }
            }
            Event::ProposalDone {
                group_id,
                proposal_id,
                result,
            } => {
                if let Some(f) = self.0.proposal_done {
                    let (status, index) = match result {
                        Ok(i) => (MUXRAFT_OK, *i),
                        Err(ProposalError::Superseded) => (MUXRAFT_NOT_LEADER, 0),
                        Err(ProposalError::LeadershipLost | ProposalError::GroupRemoved) => {
                            (MUXRAFT_UNKNOWN, 0)
                        }
                        Err(ProposalError::Shutdown) => (MUXRAFT_SHUTDOWN, 0),
                    };
                    // SAFETY: host function; plain values.
                    unsafe { f(ud, *group_id, *proposal_id, status, index) }
                }
            }
            Event::Restore {
                group_id,
                index,
                term,
                data,
                ..
            } => {
                if let Some(f) = self.0.restore {
                    let ptr = if data.is_empty() {
                        std::ptr::null()
                    } else {
                        data.as_ptr()
                    };
                    // SAFETY: host function; `data` outlives the call.
                    unsafe { f(ud, *group_id, *index, *term, ptr, data.len()) }
                }
            }
            Event::SnapshotNeeded {
                group_id,
                applied,
                entries,
                bytes,
                ..
            } => {
                if let Some(f) = self.0.snapshot_needed {
                    // SAFETY: host function; plain values.
                    unsafe { f(ud, *group_id, *applied, *entries, *bytes) }
                }
            }
            Event::MembersChanged {
                group_id,
                index,
                members,
                ..
            } => {
                if let Some(f) = self.0.members_changed {
                    let list: Vec<muxraft_member> = members
                        .iter()
                        .map(|&(node_id, role)| muxraft_member {
                            node_id,
                            match_index: 0,
                            role: member_role_to_c(role),
                        })
                        .collect();
                    // SAFETY: host function; `list` outlives the call.
                    unsafe { f(ud, *group_id, *index, list.as_ptr(), list.len()) }
                }
            }
            Event::ReadDone {
                group_id,
                read_id,
                result,
            } => {
                if let Some(f) = self.0.read_done {
                    let (status, index) = match result {
                        Ok(i) => (MUXRAFT_OK, *i),
                        Err(ReadError::LeadershipLost) => (MUXRAFT_NOT_LEADER, 0),
                        Err(ReadError::GroupRemoved) => (MUXRAFT_NOT_FOUND, 0),
                        Err(ReadError::Shutdown) => (MUXRAFT_SHUTDOWN, 0),
                    };
                    // SAFETY: host function; plain values.
                    unsafe { f(ud, *group_id, *read_id, status, index) }
                }
            }
        }
    }
}
