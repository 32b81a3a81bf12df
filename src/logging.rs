//! What a `tracing` event of muxraft carries besides its own fields: which
//! node and which group it is about.
//!
//! * The node is the thread's: every thread muxraft spawns for a node (the
//!   node thread, the writer thread, the transport thread) runs with the
//!   `tracing` dispatcher of the thread that started it ([`spawn`]), and the
//!   C API enters the node's own dispatcher around each call on the node
//!   (`ffi::log`). A Rust program that sets a scoped dispatcher around
//!   `Runtime::start` thus sees the node's threads' events too.
//! * The group is a thread-local set while one group's Raft runs
//!   ([`in_group`]): the Raft code knows nothing of group ids, yet its
//!   warnings are about one group. An event with its own `group_id` field
//!   names its group itself.

use std::cell::Cell;
use std::io;
use std::thread::{Builder, JoinHandle};

thread_local! {
    static GROUP: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Run `f` with `group_id` as the group the thread's events are about.
/// Nests: the previous group is put back afterwards.
pub(crate) fn in_group<R>(group_id: u64, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            GROUP.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(GROUP.with(|g| g.replace(Some(group_id))));
    f()
}

/// The group the thread's events are about, for a walk over many groups:
/// [`set`](GroupScope::set) names each in turn (one store, where
/// [`in_group`] saves and restores around each), and the group in effect
/// before the walk is put back at its end.
pub(crate) struct GroupScope(Option<u64>);

impl GroupScope {
    pub fn enter() -> GroupScope {
        GroupScope(GROUP.with(|g| g.get()))
    }

    pub fn set(&self, group_id: u64) {
        GROUP.with(|g| g.set(Some(group_id)));
    }
}

impl Drop for GroupScope {
    fn drop(&mut self) {
        GROUP.with(|g| g.set(self.0));
    }
}

/// The group the current thread's events are about, if any.
pub fn current_group() -> Option<u64> {
    GROUP.with(|g| g.get())
}

/// Spawn a thread that logs where the spawning thread logs: the dispatcher
/// in effect here (a scoped one, e.g. a node's) is the new thread's default.
pub(crate) fn spawn<F>(builder: Builder, f: F) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    builder.spawn(move || {
        // Without any dispatcher here, setting `NoSubscriber` as the
        // thread's default would hide a global one set later.
        let _default = (!dispatch.is::<tracing::subscriber::NoSubscriber>())
            .then(|| tracing::dispatcher::set_default(&dispatch));
        f()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_nests_and_is_restored() {
        assert_eq!(current_group(), None);
        in_group(7, || {
            assert_eq!(current_group(), Some(7));
            in_group(0, || assert_eq!(current_group(), Some(0)));
            assert_eq!(current_group(), Some(7));
        });
        assert_eq!(current_group(), None);
    }
}
