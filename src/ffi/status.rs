//! Status codes, the thread-local last error, and the panic boundary.

use std::cell::RefCell;
use std::ffi::CString;
use std::os::raw::c_char;

use crate::multi::Error;

/// Result of every fallible call. The numbers are stable: a retired code is
/// kept as a comment and never reused.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum muxraft_status {
    /// Success.
    MUXRAFT_OK = 0,
    /// A NULL pointer, a zero id, a bad length, or a value out of range.
    MUXRAFT_INVALID_ARGUMENT = 1,
    /// No group with that id on this node.
    MUXRAFT_NOT_FOUND = 2,
    /// A group with that id already exists on this node.
    MUXRAFT_ALREADY_EXISTS = 3,
    /// This node is not the group's leader; `muxraft_group_status` names it.
    MUXRAFT_NOT_LEADER = 4,
    /// A proposal over `max_proposal_bytes`, or a frame over the frame limit.
    MUXRAFT_TOO_LARGE = 5,
    /// Bytes that are not a muxraft frame (garbage, truncated, wrong version).
    MUXRAFT_MALFORMED = 6,
    /// Storage or network failure.
    MUXRAFT_IO = 7,
    /// The node is stopped or stopping.
    MUXRAFT_SHUTDOWN = 8,
    /// The call is not possible right now (e.g. a queue is full); retry.
    MUXRAFT_BUSY = 9,
    /// A bug inside muxraft was caught; this node refuses further calls.
    MUXRAFT_PANIC = 10,
    /// Only in `proposal_done`: the proposal's outcome is unknown (it may or
    /// may not have committed on other replicas).
    MUXRAFT_UNKNOWN = 11,
}

pub use muxraft_status::*;

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

/// The status an error of the Rust API maps to.
pub(crate) fn status_of(e: &Error) -> muxraft_status {
    match e {
        Error::InvalidArgument(_) => MUXRAFT_INVALID_ARGUMENT,
        Error::NotFound(_) => MUXRAFT_NOT_FOUND,
        Error::AlreadyExists(_) => MUXRAFT_ALREADY_EXISTS,
        Error::NotLeader { .. } => MUXRAFT_NOT_LEADER,
        Error::TooLarge { .. } => MUXRAFT_TOO_LARGE,
        Error::Malformed(_) => MUXRAFT_MALFORMED,
        // A well-formed frame that is not for this node: the caller routed it
        // to the wrong node (or a foreign cluster reached it).
        Error::WrongCluster { .. } | Error::WrongDestination { .. } => MUXRAFT_INVALID_ARGUMENT,
        Error::Corrupt { .. } | Error::Storage(_) => MUXRAFT_IO,
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
