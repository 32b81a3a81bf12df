//! The log callback: muxraft's `tracing` events, handed to the host.
//!
//! A node created through the C API gets its own `tracing` dispatcher
//! ([`NodeLog`]): the node's threads run with it (`crate::logging::spawn`)
//! and each call on the node enters it ([`NodeLog::enter`]), so every event
//! of the library is known to be about that node. The dispatcher formats
//! an event only when its level is wanted (the callsite's level is checked
//! against the wanted level first; nothing is formatted otherwise), into a
//! message of at most [`MUXRAFT_LOG_MESSAGE_MAX`], and queues it.
//!
//! Events are emitted from deep inside the node, often with its lock held,
//! and the host may call muxraft back from its log callback: so the
//! callback is never called where the event happens. One process-wide
//! thread, `muxraft-log`, started at the first event to deliver, takes the
//! queued records and calls the callbacks with no muxraft lock held; it
//! exits once no node is left and no process-wide callback is set. The
//! queue is bounded ([`MAX_QUEUED`]); what does not fit is counted and
//! reported by a line of its own once there is room.
//!
//! The subscriber is written here rather than taken from
//! `tracing-subscriber`: it needs no spans, no layers and no formatting
//! options, only a level check, a bounded message and a queue, and a hand
//! written `Subscriber` of that size keeps the dependency tree (and its
//! MSRV) as it is.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::os::raw::{c_char, c_void};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

use super::status::{fail, muxraft_status, MUXRAFT_INVALID_ARGUMENT, MUXRAFT_OK};

/// Severity of a log line; a minimum level lets through it and everything
/// more severe (a smaller number).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum muxraft_log_level {
    /// As a minimum level: no log lines at all. Never passed to a callback.
    MUXRAFT_LOG_OFF = 0,
    /// The node cannot go on as it should (a failed write, a corrupt file).
    MUXRAFT_LOG_ERROR = 1,
    /// Something was refused, dropped or repaired (a torn WAL tail, a peer
    /// of another cluster).
    MUXRAFT_LOG_WARN = 2,
    /// What an operator wants to know, a few lines a minute at most in a
    /// healthy cluster: peers connected and lost, elections (a count per
    /// second), recovery, snapshots sent and installed, backpressure
    /// starting and ending.
    MUXRAFT_LOG_INFO = 3,
    /// What a developer wants to know; can be many lines per second.
    MUXRAFT_LOG_DEBUG = 4,
    MUXRAFT_LOG_TRACE = 5,
}

/// Receives one log line. `level` is its severity (never
/// `MUXRAFT_LOG_OFF`); `node_id` the node it is about; `has_group` whether
/// it is about one group, then `group_id` names it (else `group_id` is 0
/// and means nothing: group ids may be 0). `target` is where in muxraft it
/// comes from (a Rust module path, e.g. "muxraft::storage::wal::recovery")
/// and `message` the line (e.g. "truncating a torn tail segment=...
/// offset=4096 bytes=13"): both NUL-terminated UTF-8, valid only during the
/// call, never NULL; a message longer than `MUXRAFT_LOG_MESSAGE_MAX` bytes
/// is cut there and ends with "...".
///
/// Called on muxraft's log thread (one per process, named "muxraft-log",
/// started by the first line and ended when the last node is freed with
/// no process-wide callback set), never where the event happened and never with a muxraft lock held: it
/// may call muxraft (e.g. `muxraft_node_stats` on the node it reports on),
/// except `muxraft_node_stop` and `muxraft_node_free`. One call at a time
/// for the whole process, so it must
/// not block long: lines queue meanwhile, and past 8192 queued lines the
/// newest are dropped and counted (a WARN line then says how many). It must
/// not unwind or longjmp.
pub type muxraft_log_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: muxraft_log_level,
        node_id: u64,
        has_group: bool,
        group_id: u64,
        target: *const c_char,
        message: *const c_char,
    ),
>;

/// The longest message handed to a log callback, in bytes, "..." included
/// and the terminating NUL not.
pub const MUXRAFT_LOG_MESSAGE_MAX: usize = 4096;
/// Records waiting for the log thread beyond which new ones are dropped.
const MAX_QUEUED: usize = 8192;

const ELLIPSIS: &str = "...";

/// A host's callback, its userdata and minimum level.
pub(crate) struct Sink {
    f: unsafe extern "C" fn(
        *mut c_void,
        muxraft_log_level,
        u64,
        bool,
        u64,
        *const c_char,
        *const c_char,
    ),
    userdata: *mut c_void,
    level: muxraft_log_level,
    /// Lines dropped because the queue was full, not yet reported.
    dropped: AtomicU64,
}

// SAFETY: muxraft never reads `userdata`, only passes it back to the host's
// callback; the header documents that the callback runs on muxraft's log
// thread, so the host makes userdata safe to use there.
unsafe impl Send for Sink {}
unsafe impl Sync for Sink {}

impl Sink {
    /// The sink of a callback with its minimum level (None when there is
    /// no callback or the level is OFF), or why the level is refused.
    pub(crate) fn new(
        f: muxraft_log_fn,
        userdata: *mut c_void,
        level: u32,
    ) -> Result<Option<Arc<Sink>>, String> {
        let level = level_from_u32(level)
            .ok_or_else(|| format!("log level {level} is not a muxraft_log_level (0..=5)"))?;
        Ok(match f {
            Some(f) if level != muxraft_log_level::MUXRAFT_LOG_OFF => Some(Arc::new(Sink {
                f,
                userdata,
                level,
                dropped: AtomicU64::new(0),
            })),
            _ => None,
        })
    }
}

fn level_from_u32(level: u32) -> Option<muxraft_log_level> {
    use muxraft_log_level::*;
    Some(match level {
        0 => MUXRAFT_LOG_OFF,
        1 => MUXRAFT_LOG_ERROR,
        2 => MUXRAFT_LOG_WARN,
        3 => MUXRAFT_LOG_INFO,
        4 => MUXRAFT_LOG_DEBUG,
        5 => MUXRAFT_LOG_TRACE,
        _ => return None,
    })
}

fn level_of(level: &Level) -> muxraft_log_level {
    use muxraft_log_level::*;
    match *level {
        Level::ERROR => MUXRAFT_LOG_ERROR,
        Level::WARN => MUXRAFT_LOG_WARN,
        Level::INFO => MUXRAFT_LOG_INFO,
        Level::DEBUG => MUXRAFT_LOG_DEBUG,
        Level::TRACE => MUXRAFT_LOG_TRACE,
    }
}

fn filter_of(level: muxraft_log_level) -> tracing::level_filters::LevelFilter {
    use muxraft_log_level::*;
    use tracing::level_filters::LevelFilter;
    match level {
        MUXRAFT_LOG_OFF => LevelFilter::OFF,
        MUXRAFT_LOG_ERROR => LevelFilter::ERROR,
        MUXRAFT_LOG_WARN => LevelFilter::WARN,
        MUXRAFT_LOG_INFO => LevelFilter::INFO,
        MUXRAFT_LOG_DEBUG => LevelFilter::DEBUG,
        MUXRAFT_LOG_TRACE => LevelFilter::TRACE,
    }
}

/// The process-wide callback, for nodes without their own.
static PROCESS: Mutex<Option<Arc<Sink>>> = parking_lot::const_mutex(None);
/// Its level as a number (0: none), read on every event of such nodes.
static PROCESS_LEVEL: AtomicU32 = AtomicU32::new(0);

/// Set (or, with a NULL `callback` or `MUXRAFT_LOG_OFF`, clear) the
/// process-wide log callback: it receives the log lines of every node
/// created without a `log` callback in its `muxraft_config` (nodes created
/// before this call included), at `level` and more severe (a
/// `muxraft_log_level`; `MUXRAFT_LOG_INFO` is what an operator wants). A
/// node with its own callback sends its lines there only. `userdata` is
/// passed back to `callback`; muxraft never reads it.
///
/// Replaces the previous callback: when this returns, lines already queued
/// have been delivered (to the previous callback) and the previous one is
/// never called again, so its userdata may be freed. (Called from inside a
/// log callback, it cannot wait for itself: lines queued before it may
/// still reach the previous callback afterwards.) May be called from any
/// thread, at any time.
///
/// Returns `MUXRAFT_OK`; `MUXRAFT_INVALID_ARGUMENT` (`level` over
/// `MUXRAFT_LOG_TRACE`: nothing changed); `MUXRAFT_PANIC`.
#[no_mangle]
pub unsafe extern "C" fn muxraft_set_log_callback(
    callback: muxraft_log_fn,
    userdata: *mut c_void,
    level: u32,
) -> muxraft_status {
    super::status::guard(|| {
        let sink = match Sink::new(callback, userdata, level) {
            Ok(s) => s,
            Err(msg) => return fail(MUXRAFT_INVALID_ARGUMENT, msg),
        };
        let number = sink.as_ref().map_or(0, |s| s.level as u32);
        let (had, has) = {
            let mut process = PROCESS.lock();
            let had = process.is_some();
            *process = sink;
            PROCESS_LEVEL.store(number, Ordering::Release);
            (had, process.is_some())
        };
        // The level may have risen past what callsites were told: ask them
        // again (it also lowers `LevelFilter::current` when it fell).
        tracing::callsite::rebuild_interest_cache();
        if has && !had {
            USERS.fetch_add(1, Ordering::AcqRel);
        } else if had && !has {
            release();
        } else {
            flush();
        }
        MUXRAFT_OK
    })
}

/// One node's `tracing` dispatcher: its events, with its id, to its own
/// callback or else the process-wide one.
pub(crate) struct NodeLog {
    node_id: u64,
    own: Option<Arc<Sink>>,
}

impl NodeLog {
    /// The dispatcher of node `node_id` with its own sink, if any.
    pub(crate) fn dispatch(node_id: u64, own: Option<Arc<Sink>>) -> tracing::Dispatch {
        tracing::Dispatch::new(NodeLog { node_id, own })
    }

    fn level(&self) -> u32 {
        match &self.own {
            Some(s) => s.level as u32,
            None => PROCESS_LEVEL.load(Ordering::Acquire),
        }
    }

    fn sink(&self) -> Option<Arc<Sink>> {
        match &self.own {
            Some(s) => Some(s.clone()),
            None => PROCESS.lock().clone(),
        }
    }
}

impl Subscriber for NodeLog {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_span() {
            return Interest::never();
        }
        // The process-wide level can change at any time: ask per event
        // (`enabled`, an atomic load and a compare), after the macro's own
        // check against `LevelFilter::current` (the highest level any
        // dispatcher wants) has let it through.
        Interest::sometimes()
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        // Without a callback of its own, the process-wide level: changed by
        // muxraft_set_log_callback, which then has every callsite ask again.
        let level = level_from_u32(self.level()).unwrap_or(muxraft_log_level::MUXRAFT_LOG_OFF);
        Some(filter_of(level))
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        !meta.is_span() && level_of(meta.level()) as u32 <= self.level()
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Never enabled for spans (above): not called, but an Id is owed.
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let level = level_of(meta.level());
        let Some(sink) = self.sink() else {
            return;
        };
        if level > sink.level {
            return;
        }
        let mut line = Line::default();
        event.record(&mut line);
        let message = line.finish();
        push(LogRecord {
            sink,
            level,
            node_id: self.node_id,
            group: line.group.or_else(crate::logging::current_group),
            target: meta.target(),
            message,
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// An event's message and fields as one bounded line: the message, then
/// ` name=value` per other field. A `group_id` (or `group`) field is taken
/// out as the line's group.
#[derive(Default)]
struct Line {
    message: Bounded,
    fields: Bounded,
    group: Option<u64>,
}

impl Line {
    fn finish(&mut self) -> String {
        let mut s = std::mem::take(&mut self.message);
        let _ = s.write_str(&self.fields.text);
        s.truncated |= self.fields.truncated;
        s.finish()
    }
}

impl Visit for Line {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if matches!(field.name(), "group_id" | "group") {
            self.group = Some(value);
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = self.message.write_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

/// A string that stops growing at [`MUXRAFT_LOG_MESSAGE_MAX`] (formatting goes on
/// but is discarded), with NUL bytes replaced: the host reads it as a C
/// string.
#[derive(Default)]
struct Bounded {
    text: String,
    truncated: bool,
}

impl Bounded {
    /// The text, cut to fit the bound with "..." at the end if it had to be.
    fn finish(self) -> String {
        let mut text = self.text;
        if self.truncated || text.len() > MUXRAFT_LOG_MESSAGE_MAX {
            let mut cut = MUXRAFT_LOG_MESSAGE_MAX - ELLIPSIS.len();
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str(ELLIPSIS);
        }
        text
    }
}

impl fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Room for one more character than the bound: `finish` sees that
        // the text went past it.
        let room = (MUXRAFT_LOG_MESSAGE_MAX + 1).saturating_sub(self.text.len());
        if room == 0 {
            self.truncated = true;
            return Ok(());
        }
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        if take < s.len() {
            self.truncated = true;
        }
        self.text.extend(
            s[..take]
                .chars()
                .map(|c| if c == '\0' { '\u{fffd}' } else { c }),
        );
        Ok(())
    }
}

/// A line waiting for the log thread.
struct LogRecord {
    sink: Arc<Sink>,
    level: muxraft_log_level,
    node_id: u64,
    group: Option<u64>,
    target: &'static str,
    message: String,
}

struct Queue {
    records: VecDeque<LogRecord>,
    /// Records ever queued, and ever delivered: a flush waits for the
    /// second to reach what the first was.
    queued: u64,
    done: u64,
    /// Whether the log thread runs.
    running: bool,
    handle: Option<JoinHandle<()>>,
    /// The thread exits once the queue is empty.
    stop: bool,
}

static QUEUE: Mutex<Queue> = parking_lot::const_mutex(Queue {
    records: VecDeque::new(),
    queued: 0,
    done: 0,
    running: false,
    handle: None,
    stop: false,
});
/// Nodes alive, plus one while a process-wide callback is set. When none
/// are left, the log thread delivers what is queued and exits: a program
/// that freed its nodes and cleared its callback has no muxraft thread
/// left, and the next line starts a new one.
static USERS: AtomicUsize = AtomicUsize::new(0);
/// The log thread waits on it for records.
static WORK: Condvar = Condvar::new();
/// Flushes wait on it for `done` to move.
static DELIVERED: Condvar = Condvar::new();

fn push(record: LogRecord) {
    let mut q = QUEUE.lock();
    // A thread told to stop but not yet gone delivers this line first.
    if q.handle.is_none() && !q.running {
        match std::thread::Builder::new()
            .name("muxraft-log".into())
            .spawn(deliver_loop)
        {
            Ok(handle) => {
                q.handle = Some(handle);
                q.running = true;
                q.stop = false;
            }
            // No thread, no delivery: drop the line rather than queue it
            // for ever (an event here must not recurse into logging).
            Err(_) => return,
        }
    }
    if q.records.len() >= MAX_QUEUED {
        record.sink.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let dropped = record.sink.dropped.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        q.records.push_back(LogRecord {
            sink: record.sink.clone(),
            level: muxraft_log_level::MUXRAFT_LOG_WARN,
            node_id: record.node_id,
            group: None,
            target: "muxraft::ffi::log",
            message: format!(
                "{dropped} log lines dropped: the log callback is slower than the library logs"
            ),
        });
        q.queued += 1;
    }
    q.records.push_back(record);
    q.queued += 1;
    WORK.notify_one();
}

/// The log thread: deliver records in the order they were queued, with no
/// lock held during a callback.
fn deliver_loop() {
    ON_LOG_THREAD.with(|t| t.set(true));
    // Each pass over a batch keeps the order the records were queued in:
    // only one log thread runs at a time (`push` starts one only when the
    // previous one has exited).
    loop {
        let batch: Vec<LogRecord> = {
            let mut q = QUEUE.lock();
            while q.records.is_empty() && !q.stop {
                WORK.wait(&mut q);
            }
            if q.records.is_empty() {
                // Stopped: whoever stopped it joins the handle it took.
                q.running = false;
                return;
            }
            q.records.drain(..).collect()
        };
        let n = batch.len() as u64;
        for r in batch {
            deliver(&r);
        }
        QUEUE.lock().done += n;
        DELIVERED.notify_all();
    }
}

fn deliver(r: &LogRecord) {
    let mut text = Vec::with_capacity(r.target.len() + r.message.len() + 2);
    text.extend_from_slice(r.target.as_bytes());
    text.push(0);
    let message_at = text.len();
    text.extend_from_slice(r.message.as_bytes());
    text.push(0);
    let target = text.as_ptr().cast::<c_char>();
    let message = text[message_at..].as_ptr().cast::<c_char>();
    // SAFETY: the host registered `f` with this userdata; both strings are
    // NUL-terminated (targets are module paths, and `Bounded` replaced any
    // NUL in the message) and `text` outlives the call, as documented.
    unsafe {
        (r.sink.f)(
            r.sink.userdata,
            r.level,
            r.node_id,
            r.group.is_some(),
            r.group.unwrap_or(0),
            target,
            message,
        )
    }
}

thread_local! {
    static ON_LOG_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Is this the log thread (a callback calling muxraft)? A thread-local
/// flag rather than `thread::current()`, which would allocate a handle for
/// every host thread.
fn on_log_thread() -> bool {
    ON_LOG_THREAD.with(|t| t.get())
}

/// Wait until every record queued before this call has been delivered.
/// On the log thread itself (a callback calling muxraft) it returns at
/// once: it would wait for itself.
pub(crate) fn flush() {
    let mut q = QUEUE.lock();
    if on_log_thread() {
        return;
    }
    let target = q.queued;
    while q.done < target {
        DELIVERED.wait(&mut q);
    }
}

/// A node was created (see `USERS`).
pub(crate) fn node_created() {
    USERS.fetch_add(1, Ordering::AcqRel);
}

/// A node was freed: its lines are delivered when this returns.
pub(crate) fn node_freed() {
    release();
}

/// One user fewer: flush, and when it was the last one, stop the log
/// thread once it delivered everything and wait for it to exit.
fn release() {
    if USERS.fetch_sub(1, Ordering::AcqRel) != 1 {
        flush();
        return;
    }
    let handle = {
        let mut q = QUEUE.lock();
        if on_log_thread() {
            // From a log callback (documented as not allowed): it cannot
            // wait for itself; the thread stays.
            return;
        }
        q.stop = true;
        WORK.notify_one();
        q.handle.take()
    };
    if let Some(h) = handle {
        let _ = h.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    type Seen = StdMutex<Vec<(muxraft_log_level, u64, Option<u64>, String, String)>>;

    unsafe extern "C" fn collect(
        userdata: *mut c_void,
        level: muxraft_log_level,
        node_id: u64,
        has_group: bool,
        group_id: u64,
        target: *const c_char,
        message: *const c_char,
    ) {
        // SAFETY: the tests pass a `Seen` that outlives the node's log.
        let seen = unsafe { &*(userdata as *const Seen) };
        // SAFETY: NUL-terminated, valid during the call (the contract).
        let (target, message) = unsafe {
            (
                std::ffi::CStr::from_ptr(target)
                    .to_str()
                    .unwrap()
                    .to_owned(),
                std::ffi::CStr::from_ptr(message)
                    .to_str()
                    .unwrap()
                    .to_owned(),
            )
        };
        let group = has_group.then_some(group_id);
        seen.lock()
            .unwrap()
            .push((level, node_id, group, target, message));
    }

    fn node_log(seen: &Seen, level: u32) -> tracing::Dispatch {
        let ud = seen as *const Seen as *mut c_void;
        NodeLog::dispatch(9, Sink::new(Some(collect), ud, level).unwrap())
    }

    #[test]
    fn lines_carry_node_group_level_and_fields() {
        let seen = Seen::default();
        tracing::dispatcher::with_default(&node_log(&seen, 3), || {
            tracing::info!(group_id = 0u64, index = 12, "snapshot installed");
            crate::logging::in_group(5, || tracing::warn!(term = 3, "heartbeat commit"));
            tracing::error!(path = %"/x/y", "failed");
            tracing::debug!("not wanted at info");
        });
        flush();
        let seen = seen.lock().unwrap();
        use muxraft_log_level::*;
        assert_eq!(
            *seen,
            vec![
                (
                    MUXRAFT_LOG_INFO,
                    9,
                    Some(0),
                    "muxraft::ffi::log::tests".into(),
                    "snapshot installed index=12".into()
                ),
                (
                    MUXRAFT_LOG_WARN,
                    9,
                    Some(5),
                    "muxraft::ffi::log::tests".into(),
                    "heartbeat commit term=3".into()
                ),
                (
                    MUXRAFT_LOG_ERROR,
                    9,
                    None,
                    "muxraft::ffi::log::tests".into(),
                    "failed path=/x/y".into()
                ),
            ]
        );
    }

    #[test]
    fn disabled_levels_are_not_formatted() {
        struct Counted<'a>(&'a AtomicU64);
        impl fmt::Display for Counted<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fetch_add(1, Ordering::Relaxed);
                f.write_str("x")
            }
        }
        let formatted = AtomicU64::new(0);
        let seen = Seen::default();
        tracing::dispatcher::with_default(&node_log(&seen, 2), || {
            tracing::info!(v = %Counted(&formatted), "off at warn");
            tracing::warn!(v = %Counted(&formatted), "on at warn");
        });
        flush();
        assert_eq!(formatted.load(Ordering::Relaxed), 1);
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn long_messages_are_cut_and_nul_replaced() {
        let seen = Seen::default();
        let long = "é".repeat(3 * MUXRAFT_LOG_MESSAGE_MAX);
        tracing::dispatcher::with_default(&node_log(&seen, 5), || {
            tracing::info!("{long}");
            tracing::info!("a\0b");
        });
        flush();
        let seen = seen.lock().unwrap();
        let cut = &seen[0].4;
        assert!(cut.len() <= MUXRAFT_LOG_MESSAGE_MAX, "{}", cut.len());
        assert!(cut.len() > MUXRAFT_LOG_MESSAGE_MAX - 8);
        assert!(cut.ends_with(ELLIPSIS));
        assert_eq!(seen[1].4, "a\u{fffd}b");
    }

    #[test]
    fn levels_outside_the_enum_are_refused() {
        assert!(Sink::new(Some(collect), std::ptr::null_mut(), 6).is_err());
        assert!(Sink::new(Some(collect), std::ptr::null_mut(), 0)
            .unwrap()
            .is_none());
        assert!(Sink::new(None, std::ptr::null_mut(), 3).unwrap().is_none());
    }

    /// Backpressure is logged as a spell: one line when proposals start
    /// being refused (with the group), none for each refusal after it, one
    /// when none was refused for an election timeout.
    #[test]
    fn backpressure_is_one_line_when_it_starts_and_one_when_it_ends() {
        use crate::multi::{Node, NodeConfig};
        let seen = Seen::default();
        tracing::dispatcher::with_default(&node_log(&seen, 3), || {
            let mut cfg = NodeConfig::new(1);
            cfg.max_pending_proposals_per_group = 1;
            let election_ticks = cfg.election_ticks;
            let mut n = Node::new(cfg).unwrap();
            n.create_group(6, 1, &[1]).unwrap();
            n.campaign(6).unwrap();
            let settle = |n: &mut Node| {
                for _ in 0..10 {
                    if n.has_ready() {
                        let rd = n.ready();
                        n.advance(rd);
                    }
                }
            };
            settle(&mut n);
            n.propose(6, bytes::Bytes::from_static(b"a")).unwrap();
            for _ in 0..3 {
                assert!(n.propose(6, bytes::Bytes::from_static(b"b")).is_err());
            }
            settle(&mut n);
            for _ in 0..election_ticks {
                n.tick();
            }
            n.propose(6, bytes::Bytes::from_static(b"c")).unwrap();
        });
        flush();
        let seen = seen.lock().unwrap();
        let lines: Vec<_> = seen
            .iter()
            .filter(|l| l.4.contains("backpressure"))
            .collect();
        assert_eq!(lines.len(), 2, "{seen:?}");
        assert!(
            lines[0].4.starts_with("backpressure started"),
            "{}",
            lines[0].4
        );
        assert_eq!(lines[0].2, Some(6));
        assert!(
            lines[1].4.starts_with("backpressure ended"),
            "{}",
            lines[1].4
        );
        assert!(lines[1].4.contains("refused=3"), "{}", lines[1].4);
    }
}
