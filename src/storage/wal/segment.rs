//! Segment files: their names and header, and reading the commits they hold
//! back, telling a torn tail from corruption.
//!
//! ```text
//! header = magic "MUXRWAL\0" | version:u32 = 2 | reserved:u32 = 0 | seq:u64 | salt:u64
//! ```
//!
//! The salt is random, drawn when the segment is created, and never leaves
//! the WAL. A commit record *counts* only if its CRC, type and length are
//! right **and** it carries its segment's salt (`commit_at`).
//! Every decision this reader makes about where a commit starts, and whether
//! a later commit exists, looks only at commit records that count, so bytes
//! of an entry's payload — which a client chose and which may hold a
//! byte-exact commit record with a good CRC, but not the salt — can never
//! pass for one. The rules themselves are in the module documentation of
//! `wal` ("Recovery").

use std::io;
use std::path::{Path, PathBuf};

use super::fs::{WalFile, WalFs};
use super::record::{
    self, CommitHeader, Record, COMMIT_PAYLOAD, COMMIT_RECORD, RECORD_HEADER, T_CHECKPOINT,
    T_COMMIT,
};
use super::WalError;

/// First bytes of every segment.
pub const MAGIC: [u8; 8] = *b"MUXRWAL\0";
/// Format version written in the segment header (the only one read).
pub const VERSION: u32 = 2;
/// magic (8) | version:u32 | reserved:u32 (0) | seq:u64 | salt:u64
pub const SEGMENT_HEADER: usize = 32;

/// The largest segment or commit sequence number a WAL holds. Far beyond
/// any real log (2^62 commits take 146 years at a billion a second), so
/// that counting on from the last one never overflows; recovery refuses a
/// larger one as corruption, and opening a WAL whose last segment or
/// commit has it refuses to write past it (`WalError::Exhausted`).
pub const MAX_SEQ: u64 = 1 << 62;

const SUFFIX: &str = ".wal";
const DIGITS: usize = 20;

pub fn segment_name(seq: u64) -> String {
    format!("{seq:0DIGITS$}{SUFFIX}")
}

pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(segment_name(seq))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment files in `dir`, oldest first. Other files are ignored.
pub fn list_segments(fs: &dyn WalFs, dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for name in fs.list(dir)? {
        if let Some(seq) = parse_segment_name(&name) {
            out.push((seq, dir.join(name)));
        }
    }
    out.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(out)
}

/// The header of segment `seq`; `salt` must not be 0 (0 reads as "no
/// salt" in a damaged header).
pub fn encode_header(buf: &mut Vec<u8>, seq: u64, salt: u64) {
    debug_assert_ne!(salt, 0);
    buf.extend_from_slice(&MAGIC);
    record::put_u32(buf, VERSION);
    record::put_u32(buf, 0);
    record::put_u64(buf, seq);
    record::put_u64(buf, salt);
}

/// Create segment `seq` (it must not exist yet), open for appending.
pub fn create_segment(
    fs: &dyn WalFs,
    dir: &Path,
    seq: u64,
) -> io::Result<(Box<dyn WalFile>, PathBuf)> {
    let path = segment_path(dir, seq);
    let file = fs.create_new(&path)?;
    Ok((file, path))
}

/// The records one `write` appended, framed by a Commit record.
#[derive(Debug)]
pub struct Commit {
    /// Offset of the Commit record in the segment.
    pub offset: u64,
    pub seq: u64,
    /// Each record with its offset in the segment.
    pub records: Vec<(u64, Record)>,
}

/// Why a commit could not be read, and what a crash could explain.
enum Bad {
    /// No commit record that counts at the position (bad CRC, type, length
    /// or salt, or too few bytes). Rule (b): in the last segment, a torn
    /// tail unless a counted commit with a higher sequence number follows.
    Header { reason: String },
    /// The commit record counts but its body is incomplete or bad: a record
    /// with a bad CRC, or one that makes no sense although its CRC is good.
    /// Rule (a): in the last segment, a torn tail unless a counted commit
    /// starts at `next`, where the framing puts the next commit (`None`:
    /// beyond any file).
    ///
    /// Why a good CRC is not enough to call a body record corrupt: a lost
    /// page can zero the length field of a record header while its CRC and
    /// type survive on the next page; the record then reads as an empty
    /// record with the original CRC, and a client who chose the payload can
    /// have made that CRC equal CRC-32C of the type byte alone (record CRCs
    /// are not salted). Such a record cannot decode, and must not turn a torn
    /// write into corruption.
    Body {
        offset: usize,
        reason: String,
        next: Option<usize>,
    },
}

/// Reads the commits of one segment held in memory.
pub struct SegmentReader<'a> {
    path: &'a Path,
    data: &'a [u8],
    is_last: bool,
    salt: u64,
    pos: usize,
    commits: usize,
    /// Sequence number of the last commit read, here or in an earlier
    /// segment.
    last_seq: u64,
    /// Where the torn tail starts, once found.
    pub torn_at: Option<u64>,
}

/// The salt a header holds, if it is long enough to hold one and it is not
/// 0 (a zeroed page: no salt is 0).
fn header_salt(data: &[u8]) -> Option<u64> {
    let b = data.get(24..SEGMENT_HEADER)?;
    let salt = u64::from_le_bytes(b.try_into().ok()?);
    (salt != 0).then_some(salt)
}

fn u32_at(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

fn u64_at(d: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&d[at..at + 8]);
    u64::from_le_bytes(a)
}

impl<'a> SegmentReader<'a> {
    /// Check the header of segment `seq`; `last_commit` is the sequence
    /// number of the last commit of the segments before it (0 if none).
    /// `Ok(None)`: this is the last segment and its header was never
    /// completely written (a crash during the write that created it), so
    /// the whole file is a torn tail.
    pub fn open(
        path: &'a Path,
        seq: u64,
        data: &'a [u8],
        is_last: bool,
        last_commit: u64,
    ) -> Result<Option<SegmentReader<'a>>, WalError> {
        let corrupt = |reason: String| WalError::Corrupt {
            segment: path.to_path_buf(),
            offset: 0,
            reason,
        };
        let magic_ok = data.len() >= MAGIC.len() && data[..MAGIC.len()] == MAGIC;
        if magic_ok && data.len() >= 12 {
            let version = u32_at(data, 8);
            if version != VERSION {
                return Err(corrupt(format!(
                    "unsupported segment format version {version} (this build reads only version {VERSION}; \
                     there is no migration from version {version})"
                )));
            }
        }
        if !magic_ok || data.len() < SEGMENT_HEADER {
            // No write to a segment is acknowledged before its header is
            // durable, so an incomplete header in the last segment is a torn
            // first write — unless a commit carrying the salt the header
            // bytes still hold follows: then the header was damaged later.
            let written = header_salt(data)
                .and_then(|salt| counted_commit_from(data, SEGMENT_HEADER, salt, last_commit));
            if is_last && written.is_none() {
                return Ok(None);
            }
            return Err(corrupt(if data.len() < SEGMENT_HEADER {
                format!("segment header is incomplete ({} bytes)", data.len())
            } else {
                "not a muxraft WAL segment (bad magic)".into()
            }));
        }
        let named = u64_at(data, 16);
        if named != seq {
            return Err(corrupt(format!(
                "header says segment {named} but the file name says {seq}"
            )));
        }
        let Some(salt) = header_salt(data) else {
            return Err(corrupt("segment header has no salt (0)".into()));
        };
        Ok(Some(SegmentReader {
            path,
            data,
            is_last,
            salt,
            pos: SEGMENT_HEADER,
            commits: 0,
            last_seq: last_commit,
            torn_at: None,
        }))
    }

    /// The next commit; `Ok(None)` at the end of the segment or at a torn
    /// tail (then `torn_at` says where it starts).
    pub fn next_commit(&mut self) -> Result<Option<Commit>, WalError> {
        if self.pos == self.data.len() || self.torn_at.is_some() {
            return Ok(None);
        }
        let bad = match self.parse_commit() {
            Ok((commit, end)) => {
                self.pos = end;
                self.commits += 1;
                self.last_seq = self.last_seq.max(commit.seq);
                return Ok(Some(commit));
            }
            Err(bad) => bad,
        };
        let (offset, reason) = match bad {
            Bad::Header { reason } => {
                match counted_commit_from(self.data, self.pos + 1, self.salt, self.last_seq) {
                    None if self.is_last => return self.torn(),
                    None => (self.pos, reason),
                    Some((at, seq)) => (
                        self.pos,
                        format!("{reason}, yet commit {seq} follows at offset {at}"),
                    ),
                }
            }
            Bad::Body {
                offset,
                reason,
                next,
            } => match next.and_then(|n| commit_at(self.data, n, self.salt)) {
                None if self.is_last => return self.torn(),
                None => (offset, reason),
                Some(h) => (
                    offset,
                    format!("{reason}, yet the next commit ({}) follows it", h.seq),
                ),
            },
        };
        Err(WalError::Corrupt {
            segment: self.path.to_path_buf(),
            offset: offset as u64,
            reason,
        })
    }

    fn torn(&mut self) -> Result<Option<Commit>, WalError> {
        self.torn_at = Some(self.pos as u64);
        Ok(None)
    }

    fn parse_commit(&self) -> Result<(Commit, usize), Bad> {
        let d = self.data;
        let pos = self.pos;
        let Some(h) = commit_at(d, pos, self.salt) else {
            let left = d.len() - pos;
            return Err(Bad::Header {
                reason: if left < COMMIT_RECORD {
                    format!("{left} bytes at the end are not a whole commit record")
                } else {
                    "expected a commit record (bad CRC, type, length or salt)".into()
                },
            });
        };
        let body = pos + COMMIT_RECORD;
        let next = usize::try_from(h.body_len)
            .ok()
            .and_then(|len| body.checked_add(len));
        let end = match next {
            Some(end) if end <= d.len() => end,
            _ => {
                return Err(Bad::Body {
                    offset: pos,
                    reason: format!(
                        "commit of {} bytes runs past the end of the segment ({} bytes left)",
                        h.body_len,
                        d.len() - body
                    ),
                    next,
                })
            }
        };
        let bad = |offset: usize, reason: String| Bad::Body {
            offset,
            reason,
            next: Some(end),
        };
        let mut records = Vec::with_capacity(h.count.min(1 << 16) as usize);
        let mut p = body;
        while p < end {
            if end - p < RECORD_HEADER {
                return Err(bad(p, "record header crosses the end of its commit".into()));
            }
            let rh = record::read_header(&d[p..p + RECORD_HEADER]);
            if rh.len > end - p - RECORD_HEADER {
                return Err(bad(
                    p,
                    format!("record of {} bytes crosses the end of its commit", rh.len),
                ));
            }
            let payload = &d[p + RECORD_HEADER..p + RECORD_HEADER + rh.len];
            if !record::crc_matches(&rh, payload) {
                return Err(bad(p, "record CRC mismatch".into()));
            }
            if rh.t == T_COMMIT {
                return Err(bad(p, "commit record inside a commit".into()));
            }
            let first_of_segment = self.commits == 0 && records.is_empty();
            if first_of_segment != (rh.t == T_CHECKPOINT) {
                return Err(bad(
                    p,
                    if first_of_segment {
                        "segment does not start with a checkpoint".into()
                    } else {
                        "checkpoint record after the start of the segment".into()
                    },
                ));
            }
            let rec = record::decode(rh.t, payload).map_err(|e| bad(p, e))?;
            records.push((p as u64, rec));
            p += RECORD_HEADER + rh.len;
        }
        if records.is_empty() && self.commits == 0 {
            return Err(bad(pos, "segment does not start with a checkpoint".into()));
        }
        if records.len() as u64 != u64::from(h.count) {
            return Err(bad(
                pos,
                format!(
                    "commit announces {} records but holds {}",
                    h.count,
                    records.len()
                ),
            ));
        }
        Ok((
            Commit {
                offset: pos as u64,
                seq: h.seq,
                records,
            },
            end,
        ))
    }
}

/// The commit record at `q` if it counts: whole, with the type and length
/// of a commit record, a good CRC and the segment's `salt`.
fn commit_at(d: &[u8], q: usize, salt: u64) -> Option<CommitHeader> {
    let rec = d.get(q..q.checked_add(COMMIT_RECORD)?)?;
    let h = record::read_header(&rec[..RECORD_HEADER]);
    if h.t != T_COMMIT || h.len != COMMIT_PAYLOAD {
        return None;
    }
    let payload = &rec[RECORD_HEADER..];
    if !record::crc_matches(&h, payload) {
        return None;
    }
    let c = record::decode_commit(payload);
    (c.salt == salt).then_some(c)
}

/// The first commit record that counts (carries `salt`) at or after `from`
/// with a sequence number above `after_seq`: its offset and sequence number.
/// Linear: a candidate is checked only when its type and length bytes fit,
/// and a commit record is small.
fn counted_commit_from(d: &[u8], from: usize, salt: u64, after_seq: u64) -> Option<(usize, u64)> {
    let len_bytes = (COMMIT_PAYLOAD as u32).to_le_bytes();
    (from..d.len().saturating_sub(COMMIT_RECORD - 1))
        .filter(|&q| d[q + 8] == T_COMMIT && d[q..q + 4] == len_bytes)
        .find_map(|q| {
            commit_at(d, q, salt)
                .filter(|c| c.seq > after_seq)
                .map(|c| (q, c.seq))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_by_sequence_and_round_trip() {
        assert_eq!(segment_name(1), "00000000000000000001.wal");
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("1.wal"), None);
        assert_eq!(parse_segment_name("0000000000000000000x.wal"), None);
        assert_eq!(parse_segment_name("00000000000000000001.tmp"), None);
    }

    #[test]
    fn only_commit_records_with_the_salt_and_a_higher_sequence_count() {
        let salt = 0x5EED;
        let mut d = vec![0xAAu8; 100];
        assert_eq!(counted_commit_from(&d, 0, salt, 0), None);
        // A commit record with a good CRC but another salt: what a client
        // can put in a payload.
        record::encode_commit(&mut d, 3, 0, 0, salt + 1);
        assert_eq!(counted_commit_from(&d, 0, salt, 0), None);
        assert_eq!(counted_commit_from(&d, 0, salt + 1, 0), Some((100, 3)));
        record::encode_commit(&mut d, 4, 0, 0, salt);
        d.extend_from_slice(&[0u8; 5]);
        let at = 100 + COMMIT_RECORD;
        assert_eq!(counted_commit_from(&d, 0, salt, 0), Some((at, 4)));
        assert_eq!(counted_commit_from(&d, at, salt, 3), Some((at, 4)));
        assert_eq!(counted_commit_from(&d, at, salt, 4), None, "not newer");
        assert_eq!(counted_commit_from(&d, at + 1, salt, 0), None);
        assert!(commit_at(&d, at, salt).is_some());
        assert!(commit_at(&d, at + 1, salt).is_none());
        assert!(commit_at(&d, d.len() - 3, salt).is_none());
        assert!(commit_at(&d, usize::MAX, salt).is_none());
        // A flipped salt byte is a bad CRC.
        d[at + COMMIT_RECORD - 1] ^= 1;
        assert!(commit_at(&d, at, salt).is_none());
    }
}
