//! Status codes, their names, the thread-local last error, the one mapping
//! from the runtime's errors to statuses, and the panic boundary.

use std::cell::RefCell;
use std::ffi::CString;
use std::os::raw::{c_char, c_int};

use crate::multi;
use crate::raft;
use crate::runtime::Error;
use crate::wire::WireError;

/// Result of every fallible call. The numbers are stable: a retired code is
/// kept as a comment and never reused.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum muxraft_status {
    /// Success.
    MUXRAFT_OK = 0,
    /// A NULL pointer, a bad length, a value out of range, a struct whose
    /// `struct_size` is not set, or a call the node's mode does not allow.
    MUXRAFT_INVALID_ARGUMENT = 1,
    /// No group with that id on this node.
    MUXRAFT_NOT_FOUND = 2,
    /// A group with that id already exists on this node.
    MUXRAFT_ALREADY_EXISTS = 3,
    /// This node is not the group's leader; `muxraft_group_status` names it.
    /// In `proposal_done`: the proposal failed for certain.
    MUXRAFT_NOT_LEADER = 4,
    /// A proposal over `max_proposal_bytes`, or a frame over the frame
    /// limit; or a buffer too small for the text asked for (the call says
    /// how many bytes it needs).
    MUXRAFT_TOO_LARGE = 5,
    /// Bytes that are not a muxraft frame (garbage, truncated, wrong version).
    MUXRAFT_MALFORMED = 6,
    /// Storage or network failure. After a failed write the node refuses
    /// every further call with `MUXRAFT_IO`.
    MUXRAFT_IO = 7,
    /// The node is stopped or stopping.
    MUXRAFT_SHUTDOWN = 8,
    /// The call is not possible right now (e.g. a queue is full, or the
    /// data directory is in use by another node); retry.
    MUXRAFT_BUSY = 9,
    /// A bug inside muxraft was caught; this node refuses every further
    /// call with `MUXRAFT_PANIC` (free it and create a new one), except
    /// `muxraft_group_status`, `muxraft_node_stats` and
    /// `muxraft_node_metrics_text`, which still answer for diagnosis.
    MUXRAFT_PANIC = 10,
    /// Only in `proposal_done`: the proposal's outcome is unknown (it may or
    /// may not have committed on other replicas).
    MUXRAFT_UNKNOWN = 11,
}

pub use muxraft_status::*;

/// The name of a status as a static NUL-terminated string
/// ("MUXRAFT_NOT_LEADER"); "MUXRAFT_UNKNOWN_STATUS" for a number that is no
/// status. Never NULL; owned by the library; do not free. Takes an `int` so
/// that any number is safe to pass.
#[no_mangle]
pub extern "C" fn muxraft_status_str(status: c_int) -> *const c_char {
    let name: &'static str = match status {
        0 => "MUXRAFT_OK\0",
        1 => "MUXRAFT_INVALID_ARGUMENT\0",
        2 => "MUXRAFT_NOT_FOUND\0",
        3 => "MUXRAFT_ALREADY_EXISTS\0",
        4 => "MUXRAFT_NOT_LEADER\0",
        5 => "MUXRAFT_TOO_LARGE\0",
        6 => "MUXRAFT_MALFORMED\0",
        7 => "MUXRAFT_IO\0",
        8 => "MUXRAFT_SHUTDOWN\0",
        9 => "MUXRAFT_BUSY\0",
        10 => "MUXRAFT_PANIC\0",
        11 => "MUXRAFT_UNKNOWN\0",
        _ => "MUXRAFT_UNKNOWN_STATUS\0",
    };
    name.as_ptr().cast()
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Record `msg` as this thread's last error and return `status`.
pub(crate) fn fail(status: muxraft_status, msg: impl Into<String>) -> muxraft_status {
    let mut msg = msg.into();
    msg.retain(|c| c != '\0');
    LAST_ERROR.with(|e| *e.borrow_mut() = CString::new(msg).unwrap_or_default());
    status
}

/// Record a runtime error as this thread's last error and return its
/// status: the one place where errors become statuses.
pub(crate) fn fail_with(e: &Error) -> muxraft_status {
    fail(status_of(e), e.to_string())
}

/// The status of a runtime error.
pub(crate) fn status_of(e: &Error) -> muxraft_status {
    match e {
        Error::Node(n) => match n {
            multi::Error::InvalidArgument(_) => MUXRAFT_INVALID_ARGUMENT,
            multi::Error::NotFound(_) => MUXRAFT_NOT_FOUND,
            multi::Error::AlreadyExists(_) => MUXRAFT_ALREADY_EXISTS,
            multi::Error::NotLeader { .. } => MUXRAFT_NOT_LEADER,
            multi::Error::Busy { .. } => MUXRAFT_BUSY,
            multi::Error::TooLarge { .. } => MUXRAFT_TOO_LARGE,
            // A well-formed frame that is not for this node: the caller
            // routed it to the wrong node.
            multi::Error::WrongDestination { .. } => MUXRAFT_INVALID_ARGUMENT,
            // Stored state that contradicts itself is a storage problem;
            // anything else the core refuses is a bad argument.
            multi::Error::Raft { source, .. } => match source {
                raft::Error::Corrupt(_) => MUXRAFT_IO,
                // Not now: the leader is not replicating to the target.
                raft::Error::TransferNotCaughtUp(_) => MUXRAFT_BUSY,
                _ => MUXRAFT_INVALID_ARGUMENT,
            },
        },
        Error::Wire(WireError::TooLarge { .. }) => MUXRAFT_TOO_LARGE,
        Error::Wire(_) => MUXRAFT_MALFORMED,
        // A well-formed frame of another cluster, or from another sender
        // than the host says: misrouted.
        Error::WrongCluster { .. } | Error::WrongSender { .. } => MUXRAFT_INVALID_ARGUMENT,
        // Another node has the data directory open: not now.
        Error::Storage(crate::storage::WalError::InUse { .. }) => MUXRAFT_BUSY,
        Error::Storage(_) | Error::Network(_) | Error::Failed => MUXRAFT_IO,
        Error::Mode(_) => MUXRAFT_INVALID_ARGUMENT,
        Error::Shutdown => MUXRAFT_SHUTDOWN,
        Error::Panicked => MUXRAFT_PANIC,
    }
}

/// The message of the last call on this thread that did not return
/// `MUXRAFT_OK` ("" if none). Never NULL. The string is owned by muxraft and
/// valid until the next failing call on this thread; copy it to keep it.
/// Read it after the call returned, not in the same expression: in
/// `printf("%d %s", muxraft_tick(n), muxraft_last_error())` the compiler may
/// evaluate `muxraft_last_error()` first.
#[no_mangle]
pub extern "C" fn muxraft_last_error() -> *const c_char {
    // The pointer stays valid while the CString in the thread-local is not
    // replaced, i.e. until the next failing call on this thread.
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Run an entry point's body, turning a panic into `MUXRAFT_PANIC` with a
/// message instead of unwinding into C (which would be undefined behaviour).
pub(crate) fn guard(body: impl FnOnce() -> muxraft_status) -> muxraft_status {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(s) => s,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            fail(
                MUXRAFT_PANIC,
                format!("internal error (please report): {what}"),
            )
        }
    }
}

/// Like [`guard`] for entry points that return nothing.
pub(crate) fn guard_void(body: impl FnOnce()) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_status_has_its_name_and_other_numbers_are_unknown() {
        let name = |n: c_int| {
            // SAFETY: muxraft_status_str returns a static NUL-terminated string.
            unsafe { CStr::from_ptr(muxraft_status_str(n)) }
                .to_str()
                .unwrap()
        };
        assert_eq!(name(MUXRAFT_OK as c_int), "MUXRAFT_OK");
        assert_eq!(name(MUXRAFT_NOT_LEADER as c_int), "MUXRAFT_NOT_LEADER");
        assert_eq!(name(MUXRAFT_UNKNOWN as c_int), "MUXRAFT_UNKNOWN");
        for n in [-1, 12, c_int::MAX, c_int::MIN] {
            assert_eq!(name(n), "MUXRAFT_UNKNOWN_STATUS");
        }
    }

    #[test]
    fn a_caught_panic_and_a_failed_write_map_to_their_own_statuses() {
        assert_eq!(status_of(&Error::Panicked), MUXRAFT_PANIC);
        assert_eq!(status_of(&Error::Failed), MUXRAFT_IO);
        let torn = Error::Wire(WireError::Truncated { need: 9, have: 3 });
        assert_eq!(status_of(&torn), MUXRAFT_MALFORMED);
        let big = Error::Wire(WireError::TooLarge { len: 9, max: 3 });
        assert_eq!(status_of(&big), MUXRAFT_TOO_LARGE);
        let corrupt = Error::Node(multi::Error::Raft {
            group_id: 0,
            source: raft::Error::Corrupt("commit past the log".into()),
        });
        assert_eq!(status_of(&corrupt), MUXRAFT_IO);
    }
}
