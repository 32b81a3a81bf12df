//! The one operating-system call the crate makes outside `std`: `flock(2)`,
//! for [`RealFs`](crate::storage::RealFs)'s lock on a data directory
//! (`std::fs::File::try_lock` needs Rust 1.89, past this crate's
//! rust-version). It lives here because `src/ffi/` is where the crate keeps
//! its `unsafe`.

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
