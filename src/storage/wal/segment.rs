//! Segment files: their names and header, and reading the commits they hold
//! back, telling a torn tail from corruption.

use std::io;
use std::path::{Path, PathBuf};

use super::fs::{WalFile, WalFs};
use super::record::{self, Record, COMMIT_RECORD, RECORD_HEADER, T_CHECKPOINT, T_COMMIT};
use super::WalError;

/// First bytes of every segment.
pub const MAGIC: [u8; 8] = *b"MUXRWAL\0";
/// Format version written in the segment header.
pub const VERSION: u32 = 1;
/// magic (8) | version:u32 | reserved:u32 (0) | seq:u64
pub const SEGMENT_HEADER: usize = 24;

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

pub fn encode_header(buf: &mut Vec<u8>, seq: u64) {
    buf.extend_from_slice(&MAGIC);
    record::put_u32(buf, VERSION);
    record::put_u32(buf, 0);
    record::put_u64(buf, seq);
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

/// Why a commit could not be read.
struct Bad {
    offset: usize,
    reason: String,
    /// A write cut short by a crash can look like this. Then, in the last
    /// segment, it is a torn tail if no valid commit starts at or after
    /// this position; `None` means it is corruption wherever it is.
    torn_if_nothing_valid_from: Option<usize>,
}

impl Bad {
    fn torn(offset: usize, reason: String, from: usize) -> Bad {
        Bad {
            offset,
            reason,
            torn_if_nothing_valid_from: Some(from),
        }
    }

    fn corrupt(offset: usize, reason: String) -> Bad {
        Bad {
            offset,
            reason,
            torn_if_nothing_valid_from: None,
        }
    }
}

/// Reads the commits of one segment held in memory.
pub struct SegmentReader<'a> {
    path: &'a Path,
    data: &'a [u8],
    is_last: bool,
    pos: usize,
    commits: usize,
    /// Where the torn tail starts, once found.
    pub torn_at: Option<u64>,
}

impl<'a> SegmentReader<'a> {
    /// Check the header of segment `seq`. `Ok(None)`: this is the last
    /// segment and its header itself was never completely written (a crash
    /// while creating it), so the whole file is a torn tail.
    pub fn open(
        path: &'a Path,
        seq: u64,
        data: &'a [u8],
        is_last: bool,
    ) -> Result<Option<SegmentReader<'a>>, WalError> {
        let corrupt = |reason: String| WalError::Corrupt {
            segment: path.to_path_buf(),
            offset: 0,
            reason,
        };
        let header_ok = data.len() >= SEGMENT_HEADER && data[..8] == MAGIC;
        if !header_ok {
            if is_last && !valid_commit_from(data, 0) {
                return Ok(None);
            }
            return Err(corrupt(if data.len() < SEGMENT_HEADER {
                format!("segment header is incomplete ({} bytes)", data.len())
            } else {
                "not a muxraft WAL segment (bad magic)".into()
            }));
        }
        let version = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
        if version != VERSION {
            return Err(corrupt(format!(
                "unsupported segment format version {version} (this build reads {VERSION})"
            )));
        }
        let mut s = [0u8; 8];
        s.copy_from_slice(&data[16..24]);
        let named = u64::from_le_bytes(s);
        if named != seq {
            return Err(corrupt(format!(
                "header says segment {named} but the file name says {seq}"
            )));
        }
        Ok(Some(SegmentReader {
            path,
            data,
            is_last,
            pos: SEGMENT_HEADER,
            commits: 0,
            torn_at: None,
        }))
    }

    /// The next commit; `Ok(None)` at the end of the segment or at a torn
    /// tail (then `torn_at` says where it starts).
    pub fn next_commit(&mut self) -> Result<Option<Commit>, WalError> {
        if self.pos == self.data.len() || self.torn_at.is_some() {
            return Ok(None);
        }
        match self.parse_commit() {
            Ok((commit, end)) => {
                self.pos = end;
                self.commits += 1;
                Ok(Some(commit))
            }
            Err(bad) => match bad.torn_if_nothing_valid_from {
                Some(from) if self.is_last && !valid_commit_from(self.data, from) => {
                    self.torn_at = Some(self.pos as u64);
                    Ok(None)
                }
                _ => Err(WalError::Corrupt {
                    segment: self.path.to_path_buf(),
                    offset: bad.offset as u64,
                    reason: bad.reason,
                }),
            },
        }
    }

    fn parse_commit(&self) -> Result<(Commit, usize), Bad> {
        let d = self.data;
        let pos = self.pos;
        if d.len() - pos < COMMIT_RECORD {
            return Err(Bad::torn(
                pos,
                format!("{} bytes at the end are not a whole commit", d.len() - pos),
                d.len(),
            ));
        }
        if !is_valid_commit_header(d, pos) {
            return Err(Bad::torn(
                pos,
                "expected a commit record (bad CRC, type or length)".into(),
                pos + 1,
            ));
        }
        let mut c = record::Cursor::new(&d[pos + RECORD_HEADER..pos + COMMIT_RECORD]);
        let (seq, body_len, count) = match (c.u64(), c.u64(), c.u32()) {
            (Ok(s), Ok(b), Ok(n)) => (s, b, n),
            _ => unreachable!("a commit payload has a fixed size"),
        };
        let body = pos + COMMIT_RECORD;
        let end = match usize::try_from(body_len) {
            Ok(len) if len <= d.len() - body => body + len,
            _ => {
                return Err(Bad::torn(
                    pos,
                    format!(
                    "commit of {body_len} bytes runs past the end of the segment ({} bytes left)",
                    d.len() - body
                ),
                    d.len(),
                ))
            }
        };
        let mut records = Vec::with_capacity(count.min(1 << 16) as usize);
        let mut p = body;
        while p < end {
            if end - p < RECORD_HEADER {
                return Err(Bad::torn(
                    p,
                    "record header crosses the end of its commit".into(),
                    end,
                ));
            }
            let h = record::read_header(&d[p..p + RECORD_HEADER]);
            if h.len > end - p - RECORD_HEADER {
                return Err(Bad::torn(
                    p,
                    format!("record of {} bytes crosses the end of its commit", h.len),
                    end,
                ));
            }
            let payload = &d[p + RECORD_HEADER..p + RECORD_HEADER + h.len];
            if !record::crc_matches(&h, payload) {
                return Err(Bad::torn(p, "record CRC mismatch".into(), end));
            }
            if h.t == T_COMMIT {
                return Err(Bad::corrupt(p, "commit record inside a commit".into()));
            }
            let first_of_segment = self.commits == 0 && records.is_empty();
            if first_of_segment != (h.t == T_CHECKPOINT) {
                return Err(Bad::corrupt(
                    p,
                    if first_of_segment {
                        "segment does not start with a checkpoint".into()
                    } else {
                        "checkpoint record after the start of the segment".into()
                    },
                ));
            }
            let rec = record::decode(h.t, payload).map_err(|e| Bad::corrupt(p, e))?;
            records.push((p as u64, rec));
            p += RECORD_HEADER + h.len;
        }
        if records.is_empty() && self.commits == 0 {
            return Err(Bad::corrupt(
                pos,
                "segment does not start with a checkpoint".into(),
            ));
        }
        if records.len() as u64 != u64::from(count) {
            return Err(Bad::corrupt(
                pos,
                format!(
                    "commit announces {count} records but holds {}",
                    records.len()
                ),
            ));
        }
        Ok((
            Commit {
                offset: pos as u64,
                seq,
                records,
            },
            end,
        ))
    }
}

fn is_valid_commit_header(d: &[u8], q: usize) -> bool {
    if d.len() < q + COMMIT_RECORD {
        return false;
    }
    let h = record::read_header(&d[q..q + RECORD_HEADER]);
    h.t == T_COMMIT
        && h.len == COMMIT_RECORD - RECORD_HEADER
        && record::crc_matches(&h, &d[q + RECORD_HEADER..q + COMMIT_RECORD])
}

/// Does a valid commit record start anywhere at or after `from`? Linear:
/// a candidate is checked only when its type and length bytes fit, and a
/// commit record is small.
fn valid_commit_from(d: &[u8], from: usize) -> bool {
    let len_bytes = ((COMMIT_RECORD - RECORD_HEADER) as u32).to_le_bytes();
    (from..d.len().saturating_sub(COMMIT_RECORD - 1))
        .any(|q| d[q + 8] == T_COMMIT && d[q..q + 4] == len_bytes && is_valid_commit_header(d, q))
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
    fn a_valid_commit_is_found_after_garbage_only_when_there_is_one() {
        let mut d = vec![0xAAu8; 100];
        assert!(!valid_commit_from(&d, 0));
        record::encode_commit(&mut d, 3, 0, 0);
        d.extend_from_slice(&[0u8; 5]);
        assert!(valid_commit_from(&d, 0));
        assert!(valid_commit_from(&d, 100));
        assert!(!valid_commit_from(&d, 101));
    }
}
