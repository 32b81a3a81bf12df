//! Snapshot files: the host's state of each group at some index, saved
//! beside the WAL so that the log below it can go (see
//! [`WalBatch::compact`](super::WalBatch::compact) and
//! [`WalBatch::install_snapshot`](super::WalBatch::install_snapshot)).
//!
//! # Use
//!
//! One [`SnapshotStore`] per node, over a directory of its own
//! (`<data_dir>/snapshots` when opened by
//! [`open_storage`](super::open_storage)). The runtime calls
//! [`SnapshotStore::save`] when the host took a snapshot of a group, or
//! when a follower received one whole from its leader, and only once it
//! returned writes the WAL record that relies on it (Compact, Install).
//! At start, [`SnapshotStore::load`] returns the newest usable snapshot of
//! each recovered group.
//!
//! # Files
//!
//! A directory of files named `<group>-<incarnation>-<index>.snap`, each
//! number in 20 decimal digits (so names sort by group, incarnation and
//! index), one snapshot per file:
//!
//! ```text
//! file   = magic "MUXRSNAP" | version:u32 (1 or 2) | reserved:u32 = 0
//!        | group:u64 | incarnation:u64 | index:u64 | term:u64
//!        | n:u32 | n × voter:u64
//!        | version 2 only: nl:u32 | nl × non-voter:u64
//!        |                 np:u32 | np × promotable:u64
//!        | data_len:u64 | data[data_len]
//!        | crc:u32                    CRC-32C over every byte before it
//! ```
//!
//! Integers are little-endian. `index` and `term` are those of the last
//! entry the state covers, the member lists the group's membership at that
//! index ([`SnapshotMeta`]; a group without non-voters is written as
//! version 1, the layout without their lists); `data` is the host's bytes, opaque here. A file is
//! *valid* when its length is exactly what its counts say, its magic,
//! version and CRC are right, and its group, incarnation and index are
//! those of its name. Any other file in the directory is ignored, except
//! `*.tmp` files, which [`SnapshotStore::open`] deletes (saves a crash
//! interrupted).
//!
//! # Atomic save
//!
//! [`SnapshotStore::save`] writes the whole file under a temporary name
//! (`<name>.snap.tmp`, created new), syncs its data, renames it to its final
//! name and syncs the directory; the snapshot is durable when `save`
//! returns, and not before. A crash at any point leaves either no file
//! under the final name, or a complete one (its bytes were synced before
//! the rename); whatever the crash left under the temporary name is
//! deleted at the next open, which also syncs the directory (a file
//! renamed by a save whose directory sync failed is then durable before
//! anything relies on it). Only after the new file is durable are older
//! files deleted, so a crash never leaves a group with fewer snapshots
//! than it had.
//!
//! # Retention
//!
//! After a save, a group keeps the file just saved and the newest one
//! below it (same incarnation): the fallback if the new file turns out
//! unreadable. Every other file of the group is deleted — older ones,
//! files of other incarnations (a group id removed and created again
//! starts from scratch), and files above the new index (a node only ever
//! saves above its current snapshot, so those are files recovery found
//! unreadable). [`SnapshotStore::retain`] and
//! [`SnapshotStore::remove_group`] delete the files of groups that no
//! longer exist.
//!
//! # Loading and fallback
//!
//! [`SnapshotStore::load`] tries the files of a group and incarnation from
//! the highest index down to a minimum (a snapshot below the WAL's
//! compaction point is useless: the entries between are gone) and returns
//! the first valid one. A file that is not — truncated, damaged, too large
//! for the caller's limit, unreadable — is logged with
//! `tracing::error!` (path and reason), counted
//! ([`SnapshotStore::bad_files`]), left on disk for inspection, and the
//! next older one is tried. Loading never panics on a bad file, and never
//! allocates more than the file's size (checked against the limit first);
//! every length in the file is checked against the file's size before it
//! is used.
//!
//! All file operations go through a [`WalFs`]: [`RealFs`](super::RealFs)
//! on disk, or [`MemFs`](super::MemFs) to test what crashes do.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, error, warn};

use super::wal::WalFs;
use crate::crc32c::{crc32c, crc32c_append};
use crate::raft::SnapshotMeta;

/// First bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"MUXRSNAP";
/// Format version written for a membership with non-voters (and read,
/// with version 1: voters only).
pub const SNAPSHOT_VERSION: u32 = 2;

/// Bytes before the voters: magic, version, reserved, group, incarnation,
/// index, term, voter count.
const FIXED_HEAD: usize = 8 + 4 + 4 + 8 * 4 + 4;
/// Bytes after the voters, besides the data: data length, CRC.
const FIXED_TAIL: usize = 8 + 4;

const SUFFIX: &str = ".snap";
const TMP_SUFFIX: &str = ".tmp";
const DIGITS: usize = 20;

/// Which snapshot a file holds, as its name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    group: u64,
    incarnation: u64,
    index: u64,
}

impl Key {
    fn file_name(&self) -> String {
        format!(
            "{:0DIGITS$}-{:0DIGITS$}-{:0DIGITS$}{SUFFIX}",
            self.group, self.incarnation, self.index
        )
    }

    fn parse(name: &str) -> Option<Key> {
        let stem = name.strip_suffix(SUFFIX)?;
        let mut parts = stem.split('-');
        let mut num = || {
            let p = parts.next()?;
            if p.len() != DIGITS || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse::<u64>().ok()
        };
        let key = Key {
            group: num()?,
            incarnation: num()?,
            index: num()?,
        };
        parts.next().is_none().then_some(key)
    }
}

/// The snapshot files of one node, indexed by name. See the module
/// documentation for the format, the atomic save, retention and fallback.
pub struct SnapshotStore {
    fs: Arc<dyn WalFs>,
    dir: PathBuf,
    /// Every snapshot file, with its size in bytes.
    files: BTreeMap<Key, u64>,
    /// Files `load` refused since open.
    bad: AtomicU64,
}

impl std::fmt::Debug for SnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStore")
            .field("dir", &self.dir)
            .field("files", &self.files.len())
            .field("bytes", &self.total_bytes())
            .field("bad", &self.bad_files())
            .finish()
    }
}

impl SnapshotStore {
    /// Open the store in `dir`, creating the directory if needed: delete
    /// leftover `*.tmp` files (saves a crash interrupted), index the
    /// snapshot files by name and size, without reading them, and make the
    /// directory durable.
    ///
    /// Why the directory sync: a save whose directory sync failed leaves
    /// its file under the final name but not durably so; after a restart
    /// without a power loss it is listed like any other, and recovery may
    /// build on it (complete an install, let the WAL drop the entries it
    /// covers). A later power loss must not take it away.
    pub fn open(fs: Arc<dyn WalFs>, dir: impl Into<PathBuf>) -> io::Result<SnapshotStore> {
        let dir = dir.into();
        fs.create_dir_all(&dir)?;
        let mut files = BTreeMap::new();
        let mut removed = 0;
        for name in fs.list(&dir)? {
            let path = dir.join(&name);
            if name.ends_with(TMP_SUFFIX) {
                warn!(path = %path.display(), "deleting a snapshot file a crash left unfinished");
                match fs.remove(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            } else if let Some(key) = Key::parse(&name) {
                files.insert(key, fs.file_len(&path)?);
            }
        }
        fs.sync_dir(&dir)?;
        debug!(dir = %dir.display(), files = files.len(), removed, "snapshot store opened");
        Ok(SnapshotStore {
            fs,
            dir,
            files,
            bad: AtomicU64::new(0),
        })
    }

    /// Save `data`, the state of `group` (`incarnation`) after applying
    /// `meta.index`, durably: written under a temporary name, synced,
    /// renamed, directory synced. Returns once the snapshot is durable;
    /// only then are the group's other files deleted, keeping the one just
    /// saved and the newest one below it (a failure to delete is logged,
    /// not returned: the snapshot is saved).
    ///
    /// On error the snapshot may or may not survive a crash; the group's
    /// earlier files are untouched. Saving a snapshot whose file exists
    /// already replaces it unless it holds the same bytes. `meta.index`
    /// must not be 0.
    pub fn save(
        &mut self,
        group: u64,
        incarnation: u64,
        meta: &SnapshotMeta,
        data: &[u8],
    ) -> io::Result<()> {
        if meta.index == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("group {group}: a snapshot at index 0"),
            ));
        }
        let too_many = |_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "too many members in a snapshot",
            )
        };
        let voters = u32::try_from(meta.voters.len()).map_err(too_many)?;
        let learners = u32::try_from(meta.learners.len()).map_err(too_many)?;
        let promotable = u32::try_from(meta.promotable.len()).map_err(too_many)?;
        let version: u32 = if learners == 0 && promotable == 0 {
            1
        } else {
            2
        };
        let key = Key {
            group,
            incarnation,
            index: meta.index,
        };
        let path = self.path(&key);
        let mut head = Vec::with_capacity(FIXED_HEAD + 8 * meta.voters.len() + 8);
        head.extend_from_slice(&SNAPSHOT_MAGIC);
        head.extend_from_slice(&version.to_le_bytes());
        head.extend_from_slice(&0u32.to_le_bytes());
        for v in [group, incarnation, meta.index, meta.term] {
            head.extend_from_slice(&v.to_le_bytes());
        }
        head.extend_from_slice(&voters.to_le_bytes());
        for v in &meta.voters {
            head.extend_from_slice(&v.to_le_bytes());
        }
        if version == 2 {
            for (n, list) in [(learners, &meta.learners), (promotable, &meta.promotable)] {
                head.extend_from_slice(&n.to_le_bytes());
                for v in list {
                    head.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        head.extend_from_slice(&(data.len() as u64).to_le_bytes());
        let crc = crc32c_append(crc32c(&head), data);

        if self.files.contains_key(&key) {
            // The same snapshot again (a save retried after an error, say):
            // nothing to write if the file holds it; else replace it, which
            // the rename cannot do (MemFs refuses; so must we, portably).
            if let Ok((m, d)) = self.read_valid(&key, u64::MAX) {
                if m == *meta && d == data {
                    self.fs.sync_dir(&self.dir)?;
                    return Ok(());
                }
            }
            self.delete(&key)?;
            self.fs.sync_dir(&self.dir)?;
        }

        let tmp = self.dir.join(format!("{}{TMP_SUFFIX}", key.file_name()));
        match self.fs.remove(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let written = (|| {
            let mut f = self.fs.create_new(&tmp)?;
            f.append(&head)?;
            f.append(data)?;
            f.append(&crc.to_le_bytes())?;
            f.sync_data()
        })();
        if let Err(e) = written {
            // Best effort: open deletes it anyway.
            let _ = self.fs.remove(&tmp);
            return Err(e);
        }
        self.fs.rename(&tmp, &path)?;
        let len = (head.len() + data.len() + 4) as u64;
        self.files.insert(key, len);
        self.fs.sync_dir(&self.dir)?;
        debug!(
            group,
            incarnation,
            index = meta.index,
            bytes = len,
            "snapshot saved"
        );

        // Durable: now the files it makes useless can go.
        let previous = self
            .files
            .range(
                Key {
                    group,
                    incarnation,
                    index: 0,
                }..key,
            )
            .next_back()
            .map(|(k, _)| *k);
        let doomed: Vec<Key> = self
            .group_keys(group)
            .filter(|k| *k != key && Some(*k) != previous)
            .collect();
        if !doomed.is_empty() {
            if let Err(e) = self.delete_all(&doomed) {
                warn!(group, error = %e, "could not delete older snapshot files");
            }
        }
        Ok(())
    }

    /// The newest valid snapshot of `group` (`incarnation`) at or above
    /// `min_index`, with its bytes. Files larger than `max_bytes` are
    /// refused. A file that is not valid is logged, counted
    /// ([`bad_files`](Self::bad_files)) and skipped for the next older one.
    /// `None` if no file qualifies.
    pub fn load(
        &self,
        group: u64,
        incarnation: u64,
        min_index: u64,
        max_bytes: u64,
    ) -> Option<(SnapshotMeta, Bytes)> {
        let range = Key {
            group,
            incarnation,
            index: min_index,
        }..=Key {
            group,
            incarnation,
            index: u64::MAX,
        };
        for key in self.files.range(range).rev().map(|(k, _)| *k) {
            match self.read_valid(&key, max_bytes) {
                Ok(found) => return Some(found),
                Err(reason) => {
                    self.bad.fetch_add(1, Ordering::Relaxed);
                    error!(
                        path = %self.path(&key).display(),
                        reason = %reason,
                        "snapshot file refused; trying an older one"
                    );
                }
            }
        }
        None
    }

    /// Delete every file of `group`, whatever its incarnation; returns how
    /// many were deleted.
    pub fn remove_group(&mut self, group: u64) -> io::Result<usize> {
        let doomed: Vec<Key> = self.group_keys(group).collect();
        self.delete_all(&doomed)
    }

    /// Delete the files of every (group, incarnation) for which `live`
    /// returns false; returns how many were deleted.
    pub fn retain(&mut self, mut live: impl FnMut(u64, u64) -> bool) -> io::Result<usize> {
        let doomed: Vec<Key> = self
            .files
            .keys()
            .filter(|k| !live(k.group, k.incarnation))
            .copied()
            .collect();
        self.delete_all(&doomed)
    }

    /// Bytes on disk of the files of `group`.
    pub fn bytes(&self, group: u64) -> u64 {
        self.group_keys(group).map(|k| self.files[&k]).sum()
    }

    /// Bytes on disk of all snapshot files.
    pub fn total_bytes(&self) -> u64 {
        self.files.values().sum()
    }

    /// Number of snapshot files.
    pub fn count(&self) -> usize {
        self.files.len()
    }

    /// The files of `group`: (incarnation, index) of each, in ascending
    /// order.
    pub fn list(&self, group: u64) -> Vec<(u64, u64)> {
        self.group_keys(group)
            .map(|k| (k.incarnation, k.index))
            .collect()
    }

    /// Files [`load`](Self::load) refused since the store was opened.
    pub fn bad_files(&self) -> u64 {
        self.bad.load(Ordering::Relaxed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the file of snapshot `key`.
    fn path(&self, key: &Key) -> PathBuf {
        self.dir.join(key.file_name())
    }

    fn group_keys(&self, group: u64) -> impl Iterator<Item = Key> + '_ {
        let lo = Key {
            group,
            incarnation: 0,
            index: 0,
        };
        let hi = Key {
            group,
            incarnation: u64::MAX,
            index: u64::MAX,
        };
        self.files.range(lo..=hi).map(|(k, _)| *k)
    }

    /// Remove one file (gone already is fine) and forget it.
    fn delete(&mut self, key: &Key) -> io::Result<()> {
        match self.fs.remove(&self.path(key)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.files.remove(key);
        Ok(())
    }

    /// Remove these files, then sync the directory (not needed for safety:
    /// a file that comes back after a crash is deleted again later).
    fn delete_all(&mut self, keys: &[Key]) -> io::Result<usize> {
        for key in keys {
            self.delete(key)?;
            debug!(path = %self.path(key).display(), "snapshot file deleted");
        }
        if !keys.is_empty() {
            self.fs.sync_dir(&self.dir)?;
        }
        Ok(keys.len())
    }

    /// Read the file of `key` and check it whole; the reason if it is not
    /// valid.
    fn read_valid(&self, key: &Key, max_bytes: u64) -> Result<(SnapshotMeta, Bytes), String> {
        let path = self.path(key);
        let len = self.fs.file_len(&path).map_err(|e| e.to_string())?;
        if len > max_bytes {
            return Err(format!("{len} bytes, more than the limit of {max_bytes}"));
        }
        let buf = self.fs.read(&path).map_err(|e| e.to_string())?;
        let parsed = parse(&buf)?;
        let held = parsed.key;
        if held != *key {
            return Err(format!(
                "the file holds group {} incarnation {} index {}, not what its name says",
                held.group, held.incarnation, held.index
            ));
        }
        Ok((parsed.meta, Bytes::from(buf).slice(parsed.data)))
    }
}

/// What a snapshot file holds, checked whole.
struct Parsed {
    key: Key,
    meta: SnapshotMeta,
    /// Where the data lies in the file.
    data: std::ops::Range<usize>,
}

/// Check a whole snapshot file, or say why it is not valid. Every length
/// is checked against the buffer before it is used, so garbage cannot make
/// it allocate or index out of bounds.
fn parse(b: &[u8]) -> Result<Parsed, String> {
    if b.len() < FIXED_HEAD + FIXED_TAIL {
        return Err(format!("{} bytes: too short for a snapshot file", b.len()));
    }
    if b[..8] != SNAPSHOT_MAGIC {
        return Err("not a muxraft snapshot file (bad magic)".into());
    }
    let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let u64_at = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(a)
    };
    let version = u32_at(8);
    if version != 1 && version != SNAPSHOT_VERSION {
        return Err(format!(
            "unsupported snapshot format version {version} (this build reads {SNAPSHOT_VERSION})"
        ));
    }
    let crc_at = b.len() - 4;
    let crc = u32_at(crc_at);
    if crc32c(&b[..crc_at]) != crc {
        return Err("CRC mismatch".into());
    }
    let (group, incarnation, index, term) = (u64_at(16), u64_at(24), u64_at(32), u64_at(40));
    let n = u32_at(48) as usize;
    // What is left for the voters, the data length and the data.
    let left = b.len() - FIXED_HEAD - FIXED_TAIL;
    if n.saturating_mul(8) > left {
        return Err(format!("{n} voters do not fit in the file"));
    }
    let voters: Vec<u64> = (0..n).map(|i| u64_at(FIXED_HEAD + 8 * i)).collect();
    let mut len_at = FIXED_HEAD + 8 * n;
    let mut lists = [Vec::new(), Vec::new()];
    if version == 2 {
        for list in &mut lists {
            // A count, its ids, and still the data length and CRC after.
            if len_at + 4 + FIXED_TAIL > b.len() {
                return Err("member lists do not fit in the file".into());
            }
            let k = u32_at(len_at) as usize;
            len_at += 4;
            if k.saturating_mul(8) > b.len() - len_at - FIXED_TAIL {
                return Err(format!("{k} members do not fit in the file"));
            }
            *list = (0..k).map(|i| u64_at(len_at + 8 * i)).collect();
            len_at += 8 * k;
        }
    }
    let [learners, promotable] = lists;
    let data_len = u64_at(len_at);
    let data_at = len_at + 8;
    if data_len != (crc_at - data_at) as u64 {
        return Err(format!(
            "data of {data_len} bytes, but {} bytes are left for it",
            crc_at - data_at
        ));
    }
    if index == 0 {
        return Err("a snapshot at index 0".into());
    }
    Ok(Parsed {
        key: Key {
            group,
            incarnation,
            index,
        },
        meta: SnapshotMeta {
            index,
            term,
            voters,
            learners,
            promotable,
        },
        data: data_at..crc_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemFs;

    fn dir() -> PathBuf {
        PathBuf::from("/mem/data/snapshots")
    }

    fn open(fs: &MemFs) -> SnapshotStore {
        SnapshotStore::open(Arc::new(fs.clone()), dir()).unwrap()
    }

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            index,
            term: index / 10 + 1,
            voters: vec![1, 2, 3],
            ..Default::default()
        }
    }

    /// Data that spans a few pages, different for each index.
    fn data(index: u64) -> Vec<u8> {
        (0..10_000u64).map(|i| (i * 7 + index) as u8).collect()
    }

    fn save(s: &mut SnapshotStore, group: u64, index: u64) {
        s.save(group, 1, &meta(index), &data(index)).unwrap();
    }

    fn loaded(s: &SnapshotStore, group: u64) -> Option<u64> {
        s.load(group, 1, 0, u64::MAX).map(|(m, d)| {
            assert_eq!(m, meta(m.index));
            assert_eq!(&d[..], &data(m.index)[..]);
            m.index
        })
    }

    fn path(group: u64, incarnation: u64, index: u64) -> PathBuf {
        dir().join(
            Key {
                group,
                incarnation,
                index,
            }
            .file_name(),
        )
    }

    #[test]
    fn file_names_sort_by_group_incarnation_and_index_and_round_trip() {
        let k = Key {
            group: 7,
            incarnation: 3,
            index: 120,
        };
        assert_eq!(
            k.file_name(),
            "00000000000000000007-00000000000000000003-00000000000000000120.snap"
        );
        assert_eq!(Key::parse(&k.file_name()), Some(k));
        for bad in [
            "7-3-120.snap",
            "00000000000000000007-00000000000000000003.snap",
            "00000000000000000007-00000000000000000003-00000000000000000120.snap.tmp",
            "00000000000000000007-00000000000000000003-00000000000000000120-1.snap",
            "0000000000000000000x-00000000000000000003-00000000000000000120.snap",
            "00000000000000000001.wal",
        ] {
            assert_eq!(Key::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_saved_snapshot_loads_after_a_crash_and_reopen() {
        let fs = MemFs::new(1);
        let mut s = open(&fs);
        let empty = SnapshotMeta {
            index: 5,
            term: 2,
            voters: Vec::new(),
            ..Default::default()
        };
        s.save(9, 4, &empty, b"").unwrap();
        save(&mut s, 1, 100);
        fs.crash(7);
        let s = open(&fs);
        assert_eq!(s.count(), 2);
        assert_eq!(loaded(&s, 1), Some(100));
        let (m, d) = s.load(9, 4, 0, u64::MAX).unwrap();
        assert_eq!((m, d.len()), (empty, 0));
        assert_eq!(s.load(9, 3, 0, u64::MAX), None, "another incarnation");
        assert_eq!(s.load(2, 1, 0, u64::MAX), None);
        assert_eq!(s.bad_files(), 0);
        assert!(matches!(
            open(&fs).save(1, 1, &meta(0), b"x").map_err(|e| e.kind()),
            Err(io::ErrorKind::InvalidInput)
        ));
    }

    /// A group with snapshots at 100 and 200 saves one at 300, and the
    /// power goes out after each step of the save (every operation that
    /// changes something, by `fail_after(n)`), under many crash seeds: the
    /// newest valid snapshot is 200 or 300 — 300 for sure if `save`
    /// returned Ok — and never 100 or nothing.
    #[test]
    fn a_crash_at_any_step_of_a_save_leaves_the_previous_or_the_new_snapshot() {
        let (mut new, mut old, mut ok) = (0, 0, 0);
        for n in 0..14 {
            for seed in 0..12 {
                let fs = MemFs::new(seed);
                let mut s = open(&fs);
                save(&mut s, 1, 100);
                save(&mut s, 1, 200);
                fs.fail_after(n);
                let saved = s.save(1, 1, &meta(300), &data(300)).is_ok();
                fs.clear_fault();
                fs.crash(seed * 31 + n);
                let s = open(&fs);
                let got = loaded(&s, 1);
                assert!(
                    got == Some(300) || (!saved && got == Some(200)),
                    "step {n} seed {seed}: saved {saved}, loaded {got:?}"
                );
                assert_eq!(
                    s.bad_files(),
                    0,
                    "step {n} seed {seed}: a torn file was visible"
                );
                // Never fewer snapshots than before the save.
                let kept = s.list(1);
                assert!(
                    kept.len() >= 2 && kept.contains(&(1, 200)),
                    "step {n} seed {seed}: {kept:?}"
                );
                assert!(
                    fs.files()
                        .iter()
                        .all(|p| !p.to_string_lossy().ends_with(".tmp")),
                    "open deletes leftovers"
                );
                ok += usize::from(saved);
                new += usize::from(got == Some(300));
                old += usize::from(got == Some(200));
            }
        }
        assert!(ok > 0 && new > ok && old > 0, "ok {ok} new {new} old {old}");
    }

    /// The save's directory sync fails: its file is there, but a power
    /// loss could take it away. A restart without a power loss lists it,
    /// and recovery may build on it; so open makes it durable.
    #[test]
    fn open_makes_a_file_whose_save_failed_at_the_directory_sync_durable() {
        for seed in 0..20 {
            let fs = MemFs::new(seed);
            let mut s = open(&fs);
            // create, 3 appends, data sync, rename: then the directory sync.
            fs.fail_after(6);
            assert!(s.save(1, 1, &meta(100), &data(100)).is_err());
            assert!(!fs.fault_pending(), "the directory sync failed");
            let s = open(&fs);
            assert_eq!(loaded(&s, 1), Some(100));
            fs.crash(seed);
            assert_eq!(loaded(&open(&fs), 1), Some(100), "seed {seed}");
        }
    }

    #[test]
    fn a_damaged_newest_snapshot_falls_back_to_the_older_one() {
        let fs = MemFs::new(1);
        let mut s = open(&fs);
        save(&mut s, 1, 100);
        save(&mut s, 1, 200);
        let p = path(1, 1, 200);
        let good = fs.contents(&p).unwrap();
        // A flipped bit in the header, the voters, the data length, the
        // data and the CRC.
        for at in [0, 9, 20, 40, 48, 56, 76, 80, 5000, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x04;
            assert!(fs.set_contents(&p, bad));
            let s = open(&fs);
            assert_eq!(loaded(&s, 1), Some(100), "flip at {at}");
            assert_eq!(s.bad_files(), 1);
        }
        // Both damaged: nothing.
        let mut bad = fs.contents(&path(1, 1, 100)).unwrap();
        bad[3000] ^= 1;
        fs.set_contents(&path(1, 1, 100), bad);
        let s = open(&fs);
        assert_eq!(loaded(&s, 1), None);
        assert_eq!(s.bad_files(), 2);
    }

    /// Files cut at every length, and files whose counts lie (with a good
    /// CRC, as a careless writer could make them), are refused without a
    /// panic or a large allocation.
    #[test]
    fn truncated_and_lying_files_are_refused_without_panicking() {
        let fs = MemFs::new(1);
        let mut s = open(&fs);
        save(&mut s, 1, 100);
        let p = path(1, 1, 100);
        let good = fs.contents(&p).unwrap();
        let mut s = open(&fs);
        s.files.insert(
            Key {
                group: 1,
                incarnation: 1,
                index: 100,
            },
            good.len() as u64,
        );
        for len in (0..good.len())
            .step_by(97)
            .chain([1, 51, 52, 63, 64, 83, 84])
        {
            fs.set_contents(&p, good[..len].to_vec());
            assert_eq!(loaded(&s, 1), None, "cut at {len}");
        }
        // Counts that lie, resealed with a good CRC.
        let reseal = |mut b: Vec<u8>| {
            let at = b.len() - 4;
            let crc = crc32c(&b[..at]);
            b[at..].copy_from_slice(&crc.to_le_bytes());
            b
        };
        let with = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            reseal(b)
        };
        let lies: Vec<(&str, Vec<u8>)> = vec![
            ("voters", with(48, &u32::MAX.to_le_bytes())),
            ("more voters", with(48, &4u32.to_le_bytes())),
            ("data length", with(76, &u64::MAX.to_le_bytes())),
            ("shorter data", with(76, &9_000u64.to_le_bytes())),
            ("version", with(8, &2u32.to_le_bytes())),
            ("magic", with(0, b"MUXRWAL\0")),
            ("index in the header", with(32, &101u64.to_le_bytes())),
            ("group in the header", with(16, &2u64.to_le_bytes())),
            ("index 0", with(32, &0u64.to_le_bytes())),
            ("garbage", reseal(vec![0xAB; 5000])),
        ];
        for (what, bytes) in lies {
            fs.set_contents(&p, bytes);
            assert_eq!(loaded(&s, 1), None, "{what}");
        }
        fs.set_contents(&p, good);
        assert_eq!(loaded(&s, 1), Some(100));
    }

    #[test]
    fn files_larger_than_the_limit_are_refused_and_min_index_is_honoured() {
        let fs = MemFs::new(1);
        let mut s = open(&fs);
        s.save(1, 1, &meta(100), &[1; 100]).unwrap();
        save(&mut s, 1, 200); // 10,000 bytes of data
        let (m, d) = s.load(1, 1, 0, 1000).unwrap();
        assert_eq!((m.index, d.len()), (100, 100), "the large one is refused");
        assert_eq!(s.bad_files(), 1);
        assert_eq!(loaded(&s, 1), Some(200));
        assert_eq!(s.load(1, 1, 101, u64::MAX).unwrap().0.index, 200);
        assert_eq!(s.load(1, 1, 201, u64::MAX), None);
        assert_eq!(s.load(1, 1, 101, 1000), None);
    }

    #[test]
    fn a_save_keeps_the_new_snapshot_and_the_one_below_and_nothing_else() {
        let fs = MemFs::new(1);
        let mut s = open(&fs);
        s.save(1, 0, &meta(500), b"an earlier incarnation").unwrap();
        save(&mut s, 2, 100);
        save(&mut s, 1, 100);
        assert_eq!(s.list(1), vec![(1, 100)], "other incarnations go");
        save(&mut s, 1, 200);
        assert_eq!(s.list(1), vec![(1, 100), (1, 200)]);
        save(&mut s, 1, 300);
        assert_eq!(s.list(1), vec![(1, 200), (1, 300)]);
        // A file above the new one (recovery found it unreadable) goes too.
        s.save(1, 1, &meta(900), b"unreadable").unwrap();
        save(&mut s, 1, 400);
        assert_eq!(s.list(1), vec![(1, 300), (1, 400)]);
        assert_eq!(s.list(2), vec![(1, 100)], "other groups are left alone");
        let files: Vec<PathBuf> = fs.files();
        assert_eq!(files.len(), 3);
        // The index matches the directory, and survives a reopen.
        let s2 = open(&fs);
        assert_eq!(s2.list(1), s.list(1));
        assert_eq!(s2.total_bytes(), s.total_bytes());
    }

    #[test]
    fn saving_the_same_snapshot_again_keeps_or_replaces_its_file() {
        let fs = MemFs::new(1);
        let mut s = open(&fs);
        save(&mut s, 1, 100);
        let appended = fs.stats().appended_bytes;
        save(&mut s, 1, 100);
        assert_eq!(fs.stats().appended_bytes, appended, "the same bytes: kept");
        s.save(1, 1, &meta(100), b"other bytes").unwrap();
        let (_, d) = s.load(1, 1, 0, u64::MAX).unwrap();
        assert_eq!(&d[..], b"other bytes");
        assert_eq!(s.count(), 1);
    }

    #[test]
    fn open_deletes_leftover_temporary_files_and_ignores_strangers() {
        let fs = MemFs::new(1);
        let mut s = open(&fs);
        save(&mut s, 1, 100);
        let tmp = dir().join(format!(
            "{}{TMP_SUFFIX}",
            Key {
                group: 1,
                incarnation: 1,
                index: 200,
            }
            .file_name()
        ));
        fs.create_new(&tmp)
            .unwrap()
            .append(b"half a snapshot")
            .unwrap();
        let stranger = dir().join("README");
        fs.create_new(&stranger).unwrap();
        let s = open(&fs);
        assert!(fs.contents(&tmp).is_none());
        assert!(fs.contents(&stranger).is_some());
        assert_eq!(s.count(), 1);
        assert_eq!(loaded(&s, 1), Some(100));
    }

    #[test]
    fn retain_and_remove_group_delete_the_files_of_dead_groups() {
        let fs = MemFs::new(1);
        let mut s = open(&fs);
        for g in 1..=4 {
            save(&mut s, g, 100);
        }
        save(&mut s, 1, 200);
        s.save(5, 2, &meta(10), &[0; 50]).unwrap();
        let one = fs.contents(&path(1, 1, 100)).unwrap().len() as u64;
        assert_eq!(s.bytes(1), 2 * one);
        assert_eq!(s.bytes(5), one - 10_000 + 50);
        assert_eq!(s.total_bytes(), 5 * one + s.bytes(5));
        assert_eq!(s.count(), 6);
        // Groups 2 and 3 are gone; group 5 lives on as incarnation 3.
        let deleted = s.retain(|g, inc| matches!((g, inc), (1, 1) | (4, 1) | (5, 3)));
        assert_eq!(deleted.unwrap(), 3);
        assert_eq!(s.remove_group(4).unwrap(), 1);
        assert_eq!(s.remove_group(4).unwrap(), 0);
        assert_eq!(s.count(), 2);
        assert_eq!(s.total_bytes(), 2 * one);
        fs.crash(3);
        let s = open(&fs);
        assert_eq!(s.count(), 2, "deletions were made durable");
        assert_eq!(s.list(1), vec![(1, 100), (1, 200)]);
    }
}
