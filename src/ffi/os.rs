//! The operating-system calls the crate makes outside `std`: `flock(2)`,
//! for [`RealFs`](crate::storage::RealFs)'s lock on a data directory
//! (`std::fs::File::try_lock` needs Rust 1.89, past this crate's
//! rust-version), and `pthread_sigmask(3)`, to keep SIGPIPE from the
//! transport's thread. They live here because `src/ffi/` is where the
//! crate keeps its `unsafe`.

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

/// Try to take an exclusive `flock` on `file` without waiting: `Ok(true)`
/// if taken, `Ok(false)` if another open file (of this process or another)
/// holds it. The lock lasts until `file` is closed.
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: `flock` only reads its two integer arguments; the descriptor
    // is valid for the call because `file` owns it and is borrowed for the
    // whole call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Block SIGPIPE on the calling thread. A write to a connection whose peer
/// closed it raises SIGPIPE on the writing thread unless the signal is
/// ignored or blocked, and its default action ends the whole process: a
/// broker that links this library must not die because a peer node did
/// (std ignores SIGPIPE in Rust programs; a C or C++ host does not). With
/// it blocked here, such a write fails with `EPIPE`, which the transport
/// handles as a lost connection. Only this thread's mask changes: the
/// host's threads, and what it does with SIGPIPE, are left alone.
pub(crate) fn block_sigpipe_on_this_thread() -> io::Result<()> {
    // SAFETY: `set` is a local `sigset_t`, initialized by `sigemptyset`
    // before `sigaddset` and `pthread_sigmask` read it; `pthread_sigmask`
    // changes only the calling thread's mask, and a null old-set pointer
    // means "do not report the old mask", which it allows.
    let rc = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    match rc {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}
