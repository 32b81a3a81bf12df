//! The bytes of one record: framing, checksum, and the payload of each kind.
//!
//! ```text
//! record  = len:u32 | crc:u32 | type:u8 | payload[len]
//!           crc = CRC-32C(type ++ payload); integers are little-endian
//! ```
//!
//! | type | name       | payload                                                        |
//! |------|------------|----------------------------------------------------------------|
//! | 1    | Commit     | seq:u64, body_len:u64, count:u32, salt:u64 (frames the records of one `write`) |
//! | 2    | Checkpoint | n:u32, n × group-state (see [`GroupCheckpoint`])               |
//! | 3    | Create     | group:u64, incarnation:u64, voting, m:u32, m × member:u64      |
//! | 4    | Remove     | group:u64 [, tombstone without its group]                      |
//! | 5    | HardState  | group:u64, term:u64, vote:u64, commit:u64                      |
//! | 6    | Entries    | group:v, first:v, commit:v, n:v, base_term:v, n × (term_step:v, kind:u8, len:v, data) |
//! | 7    | Compact    | group:u64, index:u64, term:u64                                 |
//! | 8    | Install    | group:u64, index:u64, term:u64                                 |
//! | 9    | Commits    | n:v, n × (group:v, commit:v)                                   |
//! | 10   | Tombstones | n:u32, n × tombstone                                           |
//!
//! `v` is an unsigned LEB128 varint (7 bits per byte, low first, at most 10
//! bytes, no overlong forms). Entries are the bulk of a WAL, and most are
//! small: an entry costs 3 bytes besides its data (the term as a step from
//! the previous entry's, starting at `base_term`: terms never decrease
//! along a log), and a record about 20 bytes besides its entries. `commit`
//! is the group's commit index when the entries were written (0: not
//! told): recovery raises the group's commit to it, so that a batch that
//! writes entries needs no HardState record when only the commit moved.
//! Commits does the same for groups that write no entries (a leader whose
//! followers acknowledged, a follower told by a heartbeat): a few bytes per
//! group in one record per batch, where a HardState record costs 41.
//!
//! group-state = group:u64, creation (seq:u64, offset:u64), incarnation:u64,
//! term:u64, vote:u64, commit:u64, compacted_index:u64, compacted_term:u64,
//! last_index:u64, floor, m:u32, m × member:u64.
//!
//! How a replica may vote, in a Create record (`voting`) and in a
//! checkpoint (`floor`), one byte and what it announces: 0, as usual; 1, it
//! rejoined after losing its state and never votes; 2, it took the place of
//! a removed replica of its id (a node removed from the group and added
//! back), followed in a Create record by that replica's term:u64, vote:u64,
//! last_term:u64, last_index:u64 (recovery starts the new replica at that
//! term and vote), and in a checkpoint by last_term:u64, last_index:u64:
//! the *vote floor*, below which it votes for no candidate until its own
//! log counts it as a voter (`Raft::succeed_removed`).
//!
//! tombstone = group:u64, incarnation:u64, term:u64, vote:u64,
//! last_term:u64, last_index:u64: a replica this node removed (a Remove
//! record carries it when the replica's state is known), what a replica of
//! the same group incarnation created later must honour. A Create record of
//! that incarnation takes it. Each segment starts with a Tombstones record
//! after its checkpoint (when there are any): every tombstone still kept,
//! oldest first, which replaces those recovery knew.
//!
//! Compact: the group no longer needs its entries up to and including
//! `index`; the entry at `index` had `term` (kept so that log matching works
//! across the compaction point after recovery). Install: the group's log is
//! replaced by a snapshot at (`index`, `term`): it is empty, and its next
//! entry is `index + 1` (an Entries record starting there may follow in the
//! same commit). Both move the group's *compaction point*, which the
//! checkpoint carries as (compacted_index, compacted_term). The checkpoint
//! also carries the last index of each group's log: an install can make a
//! log shorter without an Entries record, and when the segment holding the
//! Install record is deleted, that is how recovery learns it.
//!
//! Two notions, not to be confused: the *incarnation* is the host's number
//! for a group replica (the same on every member, told to the WAL by
//! [`WalBatch::create_group`](super::WalBatch::create_group)); the
//! *creation* ([`Creation`]) is where in this WAL the Create record of the
//! live group sits, which recovery uses to tell a group id's lives apart
//! whatever numbers the host chose. HardState, Entries, Compact and
//! Install records carry neither: they belong to the group live when they
//! were written.
//!
//! Only a Commit record carries the salt of its segment (see `segment.rs`):
//! recovery looks for commit records by scanning bytes in a torn tail, and
//! the salt is what tells a real one from one forged in an entry's payload,
//! whose CRC can be just as good (CRC-32C is not keyed). Other records are
//! only decoded where a real commit's framing places them, so they need no
//! salt.

use bytes::Bytes;

use crate::crc32c::{crc32c, crc32c_append};
use crate::raft::{Entry, EntryKind, HardState, Predecessor};

/// Bytes before a record's payload: length, CRC, type.
pub const RECORD_HEADER: usize = 9;
/// Payload length of a Commit record.
pub const COMMIT_PAYLOAD: usize = 28;
/// A whole Commit record.
pub const COMMIT_RECORD: usize = RECORD_HEADER + COMMIT_PAYLOAD;

pub const T_COMMIT: u8 = 1;
pub const T_CHECKPOINT: u8 = 2;
pub const T_CREATE: u8 = 3;
pub const T_REMOVE: u8 = 4;
pub const T_HARD_STATE: u8 = 5;
pub const T_ENTRIES: u8 = 6;
pub const T_COMPACT: u8 = 7;
pub const T_INSTALL: u8 = 8;
pub const T_COMMITS: u8 = 9;
pub const T_TOMBSTONES: u8 = 10;

const KIND_NORMAL: u8 = 0;
const KIND_NOOP: u8 = 1;
const KIND_CONFIG: u8 = 2;

/// The `voting` and `floor` byte (see the module docs).
const VOTES: u8 = 0;
const REJOINED: u8 = 1;
const SUCCEEDS: u8 = 2;

/// Bytes of a tombstone.
const TOMBSTONE: usize = 6 * 8;

/// Which creation of a group id a record belongs to: the position (segment
/// sequence number, byte offset) of the Create record that made it. Unique
/// for the life of the WAL because segment numbers are never reused. (Not
/// the host's incarnation number, which the WAL stores but does not rely
/// on.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Creation {
    pub seq: u64,
    pub offset: u64,
}

/// One live group as a Checkpoint record lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCheckpoint {
    pub group: u64,
    pub creation: Creation,
    /// The host's incarnation number of the group.
    pub incarnation: u64,
    pub members: Vec<u64>,
    /// The replica rejoined after losing its state (never votes).
    pub rejoined: bool,
    /// It took a removed replica's place: its vote floor.
    pub vote_floor: Option<(u64, u64)>,
    pub hard_state: HardState,
    /// The compaction point: entries up to here are gone, and this is the
    /// index and term of the last of them (0, 0 if none).
    pub compacted_index: u64,
    pub compacted_term: u64,
    /// Last index of the log (`compacted_index` when it holds no entry).
    pub last_index: u64,
}

/// A decoded record (Commit records are handled by the segment reader).
#[derive(Debug)]
pub enum Record {
    Checkpoint(Vec<GroupCheckpoint>),
    Create {
        group: u64,
        incarnation: u64,
        voting: Voting,
        members: Vec<u64>,
    },
    Remove {
        group: u64,
        /// The replica's incarnation and state, to remember.
        tombstone: Option<(u64, Predecessor)>,
    },
    /// Every tombstone kept, oldest first: (group, incarnation, state).
    Tombstones(Vec<(u64, u64, Predecessor)>),
    HardState {
        group: u64,
        hs: HardState,
    },
    Entries {
        group: u64,
        first: u64,
        /// The group's commit index then (0: not told).
        commit: u64,
        entries: Vec<Entry>,
        /// Bytes of the whole record, header included.
        len: u64,
    },
    Compact {
        group: u64,
        index: u64,
        term: u64,
    },
    Install {
        group: u64,
        index: u64,
        term: u64,
    },
    /// (group, commit index) pairs.
    Commits(Vec<(u64, u64)>),
}

/// Start a record of type `t` at the end of `buf`; returns where it starts.
/// Fill the payload, then call [`finish`].
pub fn begin(buf: &mut Vec<u8>, t: u8) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; 8]);
    buf.push(t);
    start
}

/// Write the length and CRC of the record begun at `start`. Fails if the
/// payload does not fit a u32 length.
pub fn finish(buf: &mut [u8], start: usize) -> Result<(), String> {
    let len = buf.len() - start - RECORD_HEADER;
    let len = u32::try_from(len).map_err(|_| format!("record of {len} bytes is too large"))?;
    let crc = crc32c(&buf[start + 8..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

pub fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

pub fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// An unsigned LEB128 varint.
pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_members(buf: &mut Vec<u8>, members: &[u64]) {
    put_u32(buf, members.len() as u32);
    for &m in members {
        put_u64(buf, m);
    }
}

/// The payload of a Commit record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitHeader {
    pub seq: u64,
    pub body_len: u64,
    pub count: u32,
    pub salt: u64,
}

pub fn encode_commit(buf: &mut Vec<u8>, seq: u64, body_len: u64, count: u32, salt: u64) {
    let start = begin(buf, T_COMMIT);
    put_u64(buf, seq);
    put_u64(buf, body_len);
    put_u32(buf, count);
    put_u64(buf, salt);
    finish(buf, start).expect("fixed-size record");
}

/// Decode a Commit payload of [`COMMIT_PAYLOAD`] bytes.
pub fn decode_commit(payload: &[u8]) -> CommitHeader {
    assert_eq!(
        payload.len(),
        COMMIT_PAYLOAD,
        "a commit payload has a fixed size"
    );
    let u64_at = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&payload[at..at + 8]);
        u64::from_le_bytes(a)
    };
    CommitHeader {
        seq: u64_at(0),
        body_len: u64_at(8),
        count: u32::from_le_bytes([payload[16], payload[17], payload[18], payload[19]]),
        salt: u64_at(20),
    }
}

pub fn encode_checkpoint(buf: &mut Vec<u8>, groups: &[GroupCheckpoint]) -> Result<(), String> {
    let start = begin(buf, T_CHECKPOINT);
    put_u32(buf, groups.len() as u32);
    for g in groups {
        put_u64(buf, g.group);
        put_u64(buf, g.creation.seq);
        put_u64(buf, g.creation.offset);
        put_u64(buf, g.incarnation);
        put_u64(buf, g.hard_state.term);
        put_u64(buf, g.hard_state.vote);
        put_u64(buf, g.hard_state.commit);
        put_u64(buf, g.compacted_index);
        put_u64(buf, g.compacted_term);
        put_u64(buf, g.last_index);
        match (g.rejoined, g.vote_floor) {
            (true, _) => buf.push(REJOINED),
            (false, None) => buf.push(VOTES),
            (false, Some((term, index))) => {
                buf.push(SUCCEEDS);
                put_u64(buf, term);
                put_u64(buf, index);
            }
        }
        put_members(buf, &g.members);
    }
    finish(buf, start)
}

/// How a created replica may vote (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Voting {
    Votes,
    Rejoined,
    Succeeds(Predecessor),
}

pub fn encode_create(
    buf: &mut Vec<u8>,
    group: u64,
    incarnation: u64,
    members: &[u64],
    voting: Voting,
) -> Result<(), String> {
    let start = begin(buf, T_CREATE);
    put_u64(buf, group);
    put_u64(buf, incarnation);
    match voting {
        Voting::Votes => buf.push(VOTES),
        Voting::Rejoined => buf.push(REJOINED),
        Voting::Succeeds(p) => {
            buf.push(SUCCEEDS);
            put_predecessor(buf, &p);
        }
    }
    put_members(buf, members);
    let r = finish(buf, start);
    if r.is_err() {
        buf.truncate(start);
    }
    r
}

/// `tombstone`: the removed replica's incarnation and state, to remember.
pub fn encode_remove(buf: &mut Vec<u8>, group: u64, tombstone: Option<(u64, &Predecessor)>) {
    let start = begin(buf, T_REMOVE);
    put_u64(buf, group);
    if let Some((incarnation, p)) = tombstone {
        put_u64(buf, incarnation);
        put_predecessor(buf, p);
    }
    finish(buf, start).expect("fixed-size record");
}

/// Every tombstone kept, oldest first (at a segment's start).
pub fn encode_tombstones(
    buf: &mut Vec<u8>,
    all: impl ExactSizeIterator<Item = (u64, u64, Predecessor)>,
) -> Result<(), String> {
    let start = begin(buf, T_TOMBSTONES);
    put_u32(buf, all.len() as u32);
    for (group, incarnation, p) in all {
        put_u64(buf, group);
        put_u64(buf, incarnation);
        put_predecessor(buf, &p);
    }
    finish(buf, start)
}

fn put_predecessor(buf: &mut Vec<u8>, p: &Predecessor) {
    put_u64(buf, p.term);
    put_u64(buf, p.vote);
    put_u64(buf, p.last.0);
    put_u64(buf, p.last.1);
}

pub fn encode_hard_state(buf: &mut Vec<u8>, group: u64, hs: &HardState) {
    let start = begin(buf, T_HARD_STATE);
    put_u64(buf, group);
    put_u64(buf, hs.term);
    put_u64(buf, hs.vote);
    put_u64(buf, hs.commit);
    finish(buf, start).expect("fixed-size record");
}

/// Encode `entries` (consecutive indexes, checked by the caller; terms
/// must not decrease) of `group`, whose commit index is `commit` (0: not
/// told).
pub fn encode_entries(
    buf: &mut Vec<u8>,
    group: u64,
    commit: u64,
    entries: &[Entry],
) -> Result<(), String> {
    let start = begin(buf, T_ENTRIES);
    let r = encode_entries_payload(buf, group, commit, entries).and_then(|()| finish(buf, start));
    if r.is_err() {
        buf.truncate(start);
    }
    r
}

fn encode_entries_payload(
    buf: &mut Vec<u8>,
    group: u64,
    commit: u64,
    entries: &[Entry],
) -> Result<(), String> {
    put_varint(buf, group);
    put_varint(buf, entries[0].index);
    put_varint(buf, commit);
    put_varint(buf, entries.len() as u64);
    let mut term = entries[0].term;
    put_varint(buf, term);
    for e in entries {
        let step = e.term.checked_sub(term).ok_or_else(|| {
            format!(
                "entry {} has term {}, below the previous entry's {term}",
                e.index, e.term
            )
        })?;
        term = e.term;
        put_varint(buf, step);
        buf.push(match e.kind {
            EntryKind::Normal => KIND_NORMAL,
            EntryKind::Noop => KIND_NOOP,
            EntryKind::Config => KIND_CONFIG,
        });
        let len = u32::try_from(e.data.len())
            .map_err(|_| format!("entry {} of {} bytes is too large", e.index, e.data.len()))?;
        put_varint(buf, u64::from(len));
        buf.extend_from_slice(&e.data);
    }
    Ok(())
}

/// Encode a Commits record of (group, commit) pairs.
pub fn encode_commits(buf: &mut Vec<u8>, commits: impl ExactSizeIterator<Item = (u64, u64)>) {
    let start = begin(buf, T_COMMITS);
    put_varint(buf, commits.len() as u64);
    for (g, c) in commits {
        put_varint(buf, g);
        put_varint(buf, c);
    }
    // At most 20 bytes per pair: a batch never holds 2^28 groups' worth.
    finish(buf, start).expect("a commits record fits a u32 length");
}

pub fn encode_compact(buf: &mut Vec<u8>, group: u64, index: u64, term: u64) {
    let start = begin(buf, T_COMPACT);
    put_u64(buf, group);
    put_u64(buf, index);
    put_u64(buf, term);
    finish(buf, start).expect("fixed-size record");
}

pub fn encode_install(buf: &mut Vec<u8>, group: u64, index: u64, term: u64) {
    let start = begin(buf, T_INSTALL);
    put_u64(buf, group);
    put_u64(buf, index);
    put_u64(buf, term);
    finish(buf, start).expect("fixed-size record");
}

/// A record header read from bytes (not yet checked against its payload).
#[derive(Clone, Copy, Debug)]
pub struct RawHeader {
    pub len: usize,
    pub crc: u32,
    pub t: u8,
}

pub fn read_header(b: &[u8]) -> RawHeader {
    RawHeader {
        len: u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
        crc: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        t: b[8],
    }
}

/// Does `payload` carry the CRC the header claims?
pub fn crc_matches(h: &RawHeader, payload: &[u8]) -> bool {
    crc32c_append(crc32c(&[h.t]), payload) == h.crc
}

/// Reads integers off a payload; every read is bounds-checked.
pub struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(b: &'a [u8]) -> Cursor<'a> {
        Cursor { b, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.b.len() - self.pos < n {
            return Err(format!(
                "payload ends at {} but {} more bytes are needed at {}",
                self.b.len(),
                n,
                self.pos
            ));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, String> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    /// An unsigned LEB128 varint: at most 10 bytes, no bits beyond 64, no
    /// overlong form (a final byte of 0 after the first).
    pub fn varint(&mut self) -> Result<u64, String> {
        let at = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(format!("varint at {at} exceeds 64 bits"));
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(format!("overlong varint at {at}"));
                }
                return Ok(v);
            }
        }
        Err(format!("varint at {at} exceeds 64 bits"))
    }

    /// A varint count of items each at least `min_item` bytes long, checked
    /// against what is left (see [`count`](Self::count)).
    fn varint_count(&mut self, min_item: usize) -> Result<usize, String> {
        let n = self.varint()?;
        let left = self.b.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_item) <= left => Ok(n),
            _ => Err(format!("count {n} does not fit in the payload")),
        }
    }

    /// A count of items each at least `min_item` bytes long, checked against
    /// what is left so that garbage cannot make us allocate without bound.
    fn count(&mut self, min_item: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item) > self.b.len() - self.pos {
            return Err(format!("count {n} does not fit in the payload"));
        }
        Ok(n)
    }

    fn members(&mut self) -> Result<Vec<u64>, String> {
        let n = self.count(8)?;
        (0..n).map(|_| self.u64()).collect()
    }

    fn left(&self) -> usize {
        self.b.len() - self.pos
    }

    fn predecessor(&mut self) -> Result<Predecessor, String> {
        Ok(Predecessor {
            term: self.u64()?,
            vote: self.u64()?,
            last: (self.u64()?, index_in_range("last index", self.u64()?)?),
        })
    }

    pub fn end(&self) -> Result<(), String> {
        if self.pos != self.b.len() {
            return Err(format!(
                "{} unexpected bytes after the payload",
                self.b.len() - self.pos
            ));
        }
        Ok(())
    }
}

/// The largest log index a record may name. No log gets near it (2^62
/// entries), so that replay can always name the index after one; a larger
/// one is corruption.
pub const MAX_INDEX: u64 = 1 << 62;

fn index_in_range(what: &str, index: u64) -> Result<u64, String> {
    if index > MAX_INDEX {
        return Err(format!(
            "{what} {index} is past the largest a WAL writes ({MAX_INDEX})"
        ));
    }
    Ok(index)
}

/// Decode the payload of a (CRC-checked) record of type `t`.
pub fn decode(t: u8, payload: &[u8]) -> Result<Record, String> {
    let mut c = Cursor::new(payload);
    let rec = match t {
        T_CHECKPOINT => {
            let n = c.count(10 * 8 + 1 + 4)?;
            let mut groups = Vec::with_capacity(n);
            for _ in 0..n {
                let group = c.u64()?;
                let creation = Creation {
                    seq: c.u64()?,
                    offset: c.u64()?,
                };
                let incarnation = c.u64()?;
                let hard_state = HardState {
                    term: c.u64()?,
                    vote: c.u64()?,
                    commit: c.u64()?,
                };
                let compacted_index = c.u64()?;
                let compacted_term = c.u64()?;
                let last_index = index_in_range("last index", c.u64()?)?;
                if last_index < compacted_index {
                    return Err(format!(
                        "group {group} ends at {last_index}, below its compaction point {compacted_index}"
                    ));
                }
                let (rejoined, vote_floor) = match c.u8()? {
                    VOTES => (false, None),
                    REJOINED => (true, None),
                    SUCCEEDS => (
                        false,
                        Some((c.u64()?, index_in_range("vote floor", c.u64()?)?)),
                    ),
                    b => return Err(format!("group {group}: unknown voting byte {b}")),
                };
                let members = c.members()?;
                groups.push(GroupCheckpoint {
                    group,
                    creation,
                    incarnation,
                    members,
                    rejoined,
                    vote_floor,
                    hard_state,
                    compacted_index,
                    compacted_term,
                    last_index,
                });
            }
            Record::Checkpoint(groups)
        }
        T_CREATE => {
            let group = c.u64()?;
            let incarnation = c.u64()?;
            let voting = match c.u8()? {
                VOTES => Voting::Votes,
                REJOINED => Voting::Rejoined,
                SUCCEEDS => Voting::Succeeds(c.predecessor()?),
                b => return Err(format!("group {group}: unknown voting byte {b}")),
            };
            Record::Create {
                group,
                incarnation,
                voting,
                members: c.members()?,
            }
        }
        T_REMOVE => {
            let group = c.u64()?;
            let tombstone = if c.left() > 0 {
                Some((c.u64()?, c.predecessor()?))
            } else {
                None
            };
            Record::Remove { group, tombstone }
        }
        T_TOMBSTONES => {
            let n = c.count(TOMBSTONE)?;
            let mut all = Vec::with_capacity(n);
            for _ in 0..n {
                all.push((c.u64()?, c.u64()?, c.predecessor()?));
            }
            Record::Tombstones(all)
        }
        T_HARD_STATE => Record::HardState {
            group: c.u64()?,
            hs: HardState {
                term: c.u64()?,
                vote: c.u64()?,
                commit: c.u64()?,
            },
        },
        T_ENTRIES => {
            let group = c.varint()?;
            let first = c.varint()?;
            if first == 0 {
                return Err("entries start at index 0".into());
            }
            let commit = c.varint()?;
            // term step, kind, length: at least 3 bytes each.
            let n = c.varint_count(3)?;
            if n == 0 {
                return Err("entries record with no entry".into());
            }
            match first.checked_add(n as u64 - 1) {
                Some(last) => index_in_range("entry index", last)?,
                None => return Err(format!("entries {first}+{n} overflow the index space")),
            };
            let mut term = c.varint()?;
            let mut entries = Vec::with_capacity(n);
            for i in 0..n as u64 {
                term = term
                    .checked_add(c.varint()?)
                    .ok_or_else(|| format!("entry {} has a term beyond 2^64", first + i))?;
                let kind = match c.u8()? {
                    KIND_NORMAL => EntryKind::Normal,
                    KIND_NOOP => EntryKind::Noop,
                    KIND_CONFIG => EntryKind::Config,
                    k => return Err(format!("unknown entry kind {k}")),
                };
                let len = c.varint()?;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= u32::MAX as usize)
                    .ok_or_else(|| format!("entry length {len} is too large"))?;
                let data = Bytes::copy_from_slice(c.take(len)?);
                entries.push(Entry {
                    term,
                    index: first + i,
                    kind,
                    data,
                });
            }
            Record::Entries {
                group,
                first,
                commit,
                entries,
                len: (RECORD_HEADER + payload.len()) as u64,
            }
        }
        T_COMPACT => Record::Compact {
            group: c.u64()?,
            index: index_in_range("compaction index", c.u64()?)?,
            term: c.u64()?,
        },
        T_INSTALL => {
            let (group, index, term) = (c.u64()?, c.u64()?, c.u64()?);
            index_in_range("snapshot index", index)?;
            if index == 0 {
                return Err("snapshot install at index 0".into());
            }
            Record::Install { group, index, term }
        }
        T_COMMITS => {
            let n = c.varint_count(2)?;
            let mut pairs = Vec::with_capacity(n);
            for _ in 0..n {
                pairs.push((c.varint()?, c.varint()?));
            }
            Record::Commits(pairs)
        }
        t => return Err(format!("unknown record type {t}")),
    };
    c.end()?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(buf: &[u8]) -> Record {
        let h = read_header(buf);
        assert_eq!(h.len, buf.len() - RECORD_HEADER);
        let payload = &buf[RECORD_HEADER..];
        assert!(crc_matches(&h, payload));
        decode(h.t, payload).unwrap()
    }

    #[test]
    fn every_record_kind_round_trips() {
        let mut b = Vec::new();
        encode_create(&mut b, 7, 41, &[1, 2, 3], Voting::Votes).unwrap();
        assert!(matches!(
            roundtrip(&b),
            Record::Create { group: 7, incarnation: 41, voting: Voting::Votes, members } if members == [1, 2, 3]
        ));
        let mut b = Vec::new();
        encode_create(&mut b, 8, 42, &[4], Voting::Rejoined).unwrap();
        assert!(matches!(
            roundtrip(&b),
            Record::Create { group: 8, incarnation: 42, voting: Voting::Rejoined, members } if members == [4]
        ));
        let removed = Predecessor {
            term: 9,
            vote: 3,
            last: (8, 27),
        };
        let mut b = Vec::new();
        encode_create(&mut b, 8, 42, &[], Voting::Succeeds(removed)).unwrap();
        assert!(matches!(
            roundtrip(&b),
            Record::Create { group: 8, incarnation: 42, voting: Voting::Succeeds(p), members }
                if members.is_empty() && p == removed
        ));
        let mut b = Vec::new();
        encode_tombstones(
            &mut b,
            [(8, 42, removed), (u64::MAX, 1, removed)].into_iter(),
        )
        .unwrap();
        assert!(matches!(
            roundtrip(&b),
            Record::Tombstones(all) if all == vec![(8, 42, removed), (u64::MAX, 1, removed)]
        ));

        let hs = HardState {
            term: 4,
            vote: 2,
            commit: 9,
        };
        b.clear();
        encode_hard_state(&mut b, 7, &hs);
        assert!(matches!(roundtrip(&b), Record::HardState { group: 7, hs: h } if h == hs));

        let entries = vec![
            Entry {
                term: 3,
                index: 5,
                kind: EntryKind::Noop,
                data: Bytes::new(),
            },
            Entry {
                term: 4,
                index: 6,
                kind: EntryKind::Normal,
                data: Bytes::from_static(b"hello"),
            },
        ];
        b.clear();
        encode_entries(&mut b, 7, 6, &entries).unwrap();
        // header 9; group, first, commit, n, base term: 1 byte each; per
        // entry: term step, kind, length (1 byte each), data.
        assert_eq!(b.len(), 9 + 5 + 3 + (3 + 5));
        match roundtrip(&b) {
            Record::Entries {
                group: 7,
                first: 5,
                commit: 6,
                entries: got,
                len,
            } => {
                assert_eq!(got, entries);
                assert_eq!(len, b.len() as u64);
            }
            r => panic!("{r:?}"),
        }
        // Large numbers take more bytes and still round-trip (an index up
        // to MAX_INDEX; past it, the record is refused).
        let mut far = vec![Entry {
            term: u64::MAX,
            index: MAX_INDEX + 1,
            kind: EntryKind::Normal,
            data: Bytes::from(vec![7u8; 300]),
        }];
        b.clear();
        encode_entries(&mut b, u64::MAX, u64::MAX, &far).unwrap();
        let err = decode(T_ENTRIES, &b[RECORD_HEADER..]).unwrap_err();
        assert!(err.contains("past the largest"), "{err}");
        far[0].index = MAX_INDEX;
        b.clear();
        encode_entries(&mut b, u64::MAX, u64::MAX, &far).unwrap();
        match roundtrip(&b) {
            Record::Entries {
                group: u64::MAX,
                first: MAX_INDEX,
                commit: u64::MAX,
                entries: got,
                ..
            } => assert_eq!(got, far),
            r => panic!("{r:?}"),
        }
        // Terms never decrease along a log: refused, nothing written.
        let mut backwards = entries.clone();
        backwards.reverse();
        backwards[0].index = 5;
        backwards[1].index = 6;
        b.clear();
        assert!(encode_entries(&mut b, 7, 0, &backwards).is_err());
        assert!(b.is_empty());

        let cp = vec![GroupCheckpoint {
            group: 9,
            creation: Creation { seq: 3, offset: 77 },
            incarnation: 12,
            rejoined: true,
            vote_floor: None,
            members: vec![1, 5],
            hard_state: hs,
            compacted_index: 2,
            compacted_term: 1,
            last_index: 7,
        }];
        b.clear();
        encode_checkpoint(&mut b, &cp).unwrap();
        assert!(matches!(roundtrip(&b), Record::Checkpoint(g) if g == cp));
        let mut succeeding = cp.clone();
        succeeding[0].rejoined = false;
        succeeding[0].vote_floor = Some((8, 27));
        b.clear();
        encode_checkpoint(&mut b, &succeeding).unwrap();
        assert!(matches!(roundtrip(&b), Record::Checkpoint(g) if g == succeeding));

        b.clear();
        encode_remove(&mut b, 7, None);
        assert!(matches!(
            roundtrip(&b),
            Record::Remove {
                group: 7,
                tombstone: None
            }
        ));
        b.clear();
        encode_remove(&mut b, 7, Some((42, &removed)));
        assert!(matches!(
            roundtrip(&b),
            Record::Remove { group: 7, tombstone: Some((42, p)) } if p == removed
        ));
        b.clear();
        encode_compact(&mut b, 7, 12, 3);
        assert!(matches!(
            roundtrip(&b),
            Record::Compact {
                group: 7,
                index: 12,
                term: 3
            }
        ));
        b.clear();
        encode_commits(&mut b, [(7, 12), (u64::MAX, 300)].into_iter());
        assert_eq!(b.len(), 9 + 1 + 2 + 10 + 2);
        assert!(matches!(roundtrip(&b), Record::Commits(p) if p == vec![(7, 12), (u64::MAX, 300)]));
        b.clear();
        encode_install(&mut b, 7, 40, 5);
        assert!(matches!(
            roundtrip(&b),
            Record::Install {
                group: 7,
                index: 40,
                term: 5
            }
        ));
    }

    #[test]
    fn a_flipped_bit_fails_the_crc() {
        let mut b = Vec::new();
        encode_create(&mut b, 7, 1, &[1, 2, 3], Voting::Votes).unwrap();
        for i in 8..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x10;
            let h = read_header(&c);
            assert!(!crc_matches(&h, &c[RECORD_HEADER..]), "flip at {i}");
        }
    }

    #[test]
    fn garbage_counts_are_refused_before_allocating() {
        let mut p = Vec::new();
        put_u64(&mut p, 1);
        put_u32(&mut p, u32::MAX);
        assert!(decode(T_CREATE, &p).is_err());
        let mut p = Vec::new();
        put_u32(&mut p, u32::MAX);
        assert!(decode(T_CHECKPOINT, &p).is_err());
    }

    #[test]
    fn bad_varints_are_refused() {
        // 11 bytes, more than 64 bits, an overlong zero, a cut-off one.
        for bad in [
            &[0xFFu8; 11][..],
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02],
            &[0x80, 0x00],
            &[0x80],
        ] {
            assert!(Cursor::new(bad).varint().is_err(), "{bad:?}");
        }
        let max = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
        assert_eq!(Cursor::new(&max).varint(), Ok(u64::MAX));
        assert_eq!(Cursor::new(&[0]).varint(), Ok(0));
        // An entries record claiming more entries than its bytes can hold.
        let mut p = Vec::new();
        for v in [1, 1, 0, u64::MAX, 1] {
            put_varint(&mut p, v);
        }
        let e = decode(T_ENTRIES, &p).unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
    }

    #[test]
    fn nonsense_compaction_points_do_not_decode() {
        let mut b = Vec::new();
        encode_install(&mut b, 7, 0, 1);
        assert!(decode(T_INSTALL, &b[RECORD_HEADER..]).is_err());
        let cp = GroupCheckpoint {
            group: 1,
            creation: Creation { seq: 1, offset: 32 },
            incarnation: 1,
            rejoined: false,
            vote_floor: None,
            members: vec![1],
            hard_state: HardState::default(),
            compacted_index: 9,
            compacted_term: 1,
            last_index: 8,
        };
        b.clear();
        encode_checkpoint(&mut b, &[cp]).unwrap();
        let e = decode(T_CHECKPOINT, &b[RECORD_HEADER..]).unwrap_err();
        assert!(e.contains("below its compaction point"), "{e}");
    }
}
