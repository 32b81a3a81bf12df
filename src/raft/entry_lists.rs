//! Emptied entry lists kept for reuse, one small pool per thread.
//!
//! At mid load a pass activates each group for about one entry, and each
//! activation made and freed a list of entries several times over: the
//! entries a leader sends each follower (`RaftLog::slice`), the entries a
//! `Ready` hands out to write and to apply. A list taken here is one an
//! earlier pass on this thread emptied (`give`), so the allocator is not
//! called for it. Lists move between threads with what they carry (an
//! append decoded on the transport's thread is stepped on the writer's);
//! each thread keeps what it is given, up to its bound, and a thread that
//! takes more than it gets allocates as before.
//!
//! Bounded: at most [`LISTS_MAX`] lists of at most [`ENTRIES_MAX`] entries
//! each per thread (1,024 x 8 x 56 bytes, 448 KiB); larger lists are freed,
//! so a burst does not pin its peak memory.

use std::cell::RefCell;

use super::Entry;

/// The most lists a thread keeps.
pub const LISTS_MAX: usize = 1024;
/// The most entries a kept list has room for.
pub const ENTRIES_MAX: usize = 8;

thread_local! {
    static LISTS: RefCell<Vec<Vec<Entry>>> = const { RefCell::new(Vec::new()) };
}

/// An empty list with room for at least `n` entries: a kept one when `n`
/// fits one, else a new one (none allocated for `n` = 0).
pub fn take(n: usize) -> Vec<Entry> {
    if n == 0 || n > ENTRIES_MAX {
        return Vec::with_capacity(n);
    }
    // `try_with`: a list asked for while the thread exits is a new one.
    let kept = LISTS
        .try_with(|l| l.try_borrow_mut().ok().and_then(|mut l| l.pop()))
        .ok()
        .flatten();
    match kept {
        Some(mut v) => {
            v.reserve(n);
            v
        }
        None => Vec::with_capacity(n),
    }
}

/// Keep `v`'s room for a later [`take`] on this thread (its entries are
/// dropped now); freed if it is large or the thread keeps enough.
pub fn give(mut v: Vec<Entry>) {
    if v.capacity() == 0 || v.capacity() > ENTRIES_MAX {
        return;
    }
    v.clear();
    let _ = LISTS.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            if l.len() < LISTS_MAX {
                l.push(v);
            }
        }
    });
}

/// How many lists this thread keeps (for tests).
#[cfg(test)]
pub fn kept() -> usize {
    LISTS.with(|l| l.borrow().len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(i: u64) -> Entry {
        Entry {
            term: 1,
            index: i,
            data: Bytes::from(vec![i as u8; 3]),
            ..Entry::default()
        }
    }

    #[test]
    fn a_given_list_is_taken_back_empty_and_its_entries_are_dropped() {
        let data = Bytes::from(vec![7u8; 10]);
        let mut v = take(2);
        v.push(Entry {
            data: data.clone(),
            ..Entry::default()
        });
        let room = v.as_ptr();
        give(v);
        assert!(data.is_unique(), "the entry was dropped when kept");
        let again = take(1);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), room, "the same room, not a new list");
        assert_eq!(again.capacity(), 2, "a new list would have room for 1");
    }

    #[test]
    fn the_pool_is_bounded_in_lists_and_in_room_per_list() {
        std::thread::spawn(|| {
            give(Vec::with_capacity(ENTRIES_MAX + 1));
            give(Vec::new());
            assert_eq!(kept(), 0, "too large or without room: freed");
            for i in 0..LISTS_MAX + 10 {
                give(vec![entry(i as u64)]);
            }
            assert_eq!(kept(), LISTS_MAX);
            assert!(take(ENTRIES_MAX + 1).capacity() > ENTRIES_MAX);
        })
        .join()
        .unwrap();
    }
}
