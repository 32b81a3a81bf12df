//! The file-system operations the WAL needs, behind a trait, so that the
//! same WAL code runs on the real file system ([`RealFs`]) and, in tests and
//! simulations, on an in-memory one that can crash ([`MemFs`]).
//!
//! The contract is the POSIX one the WAL and the snapshot store rely on:
//! bytes appended to a file are durable once [`WalFile::sync_data`]
//! returns; the creation, removal or renaming of a file is durable once
//! [`WalFs::sync_dir`] of its directory returns; [`WalFs::truncate`] is
//! durable when it returns. Anything not made durable may be lost by a
//! crash, in part or in any order.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

/// A file open for appending (a segment being written).
pub trait WalFile: Send {
    /// Append all of `buf` at the end of the file. On error, any prefix of
    /// `buf` may have been appended.
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Make everything appended so far durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// The file system a [`Wal`](super::Wal) and a
/// [`SnapshotStore`](crate::storage::SnapshotStore) live in.
/// Paths are a directory joined with a file name.
pub trait WalFs: Send + Sync {
    /// Create `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the files in `dir`, in any order (names that are not UTF-8
    /// may be left out: no segment has one).
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole content of a file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Create a file that must not exist yet, empty, open for appending.
    /// Its existence is durable only after [`sync_dir`](Self::sync_dir).
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WalFile>>;
    /// Remove a file; durable only after [`sync_dir`](Self::sync_dir).
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Rename the file `from` to `to`, in the same directory (`rename(2)`);
    /// durable only after [`sync_dir`](Self::sync_dir) of it. Whether `to`
    /// may exist already is up to the implementation: callers must not
    /// rely on replacing a file.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Size of a file in bytes.
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// Cut a file to `len` bytes and make that durable before returning.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Make the creations and removals of files in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// A fresh random number for the header of a new segment (its salt; see
    /// the format documentation of the WAL). It must be unpredictable to
    /// whoever writes entry payloads; it need not be cryptographic.
    fn salt(&self) -> u64;
    /// Take `dir` for this process, for as long as the returned lock lives
    /// (a [`Wal`](super::Wal) holds it while open): a second open of the
    /// same directory, by this process or another, fails with
    /// [`WalError::InUse`](super::WalError::InUse) rather than two writers
    /// corrupting it. [`RealFs`] takes an `flock` on `dir/LOCK`; the default
    /// takes nothing (an in-memory file system has one owner, its test).
    fn lock_dir(&self, dir: &Path) -> Result<DirLock, super::WalError> {
        let _ = dir;
        Ok(DirLock::none())
    }
}

/// A directory taken by [`WalFs::lock_dir`]; dropping it lets it go.
pub struct DirLock(#[allow(dead_code)] Option<File>);

impl DirLock {
    /// A lock that holds nothing.
    pub fn none() -> DirLock {
        DirLock(None)
    }
}

impl std::fmt::Debug for DirLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "DirLock(held)"
        } else {
            "DirLock(none)"
        })
    }
}

/// Name of the lock file [`RealFs`] keeps in a data directory. It holds the
/// process id of the last process that took it, for the error message; the
/// lock is the `flock` on it, not its content, so a process killed with
/// SIGKILL leaves nothing to clean up.
pub const LOCK_FILE: &str = "LOCK";

/// The real file system, through `std::fs`: what [`Wal::open`](super::Wal::open)
/// uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

struct RealFile(File);

impl WalFile for RealFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl WalFs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn lock_dir(&self, dir: &Path) -> Result<DirLock, super::WalError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if !crate::ffi::os::try_lock_exclusive(&file)? {
            let mut content = String::new();
            let _ = file.read_to_string(&mut content);
            let holder = match content.trim().parse::<u32>() {
                Ok(pid) if pid == std::process::id() => {
                    format!("this process (pid {pid}: another node is open on it)")
                }
                Ok(pid) => format!("process {pid}"),
                Err(_) => "another process".to_string(),
            };
            return Err(super::WalError::InUse {
                dir: dir.to_path_buf(),
                holder,
            });
        }
        file.set_len(0)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())?;
        Ok(DirLock(Some(file)))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir)? {
            if let Ok(name) = e?.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        Ok(Box::new(RealFile(file)))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn salt(&self) -> u64 {
        os_random_u64()
    }
}

/// 64 random bits from the operating system: `/dev/urandom` where it
/// exists, else the random keys std seeds each `RandomState` with (mixed
/// with the time and process id). Safe std code only.
fn os_random_u64() -> u64 {
    let mut b = [0u8; 8];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return u64::from_le_bytes(b);
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.write_u32(std::process::id());
    h.finish()
}

/// An in-memory [`WalFs`] for tests and simulations that models what a
/// power loss does to unsynced data. Deterministic: salts and crashes
/// depend only on the seeds given. Clones share the same files.
///
/// It keeps, per file, the bytes a reader sees now and how many leading
/// bytes of them are durable (appended before the last
/// [`WalFile::sync_data`], or set by [`WalFs::truncate`]); and whether its
/// creation or removal was made durable by a [`WalFs::sync_dir`] of its
/// directory. [`MemFs::crash`] then loses what was not durable:
///
/// * each file keeps its durable bytes plus a random prefix of the rest,
///   and within that kept, unsynced region some 4096-byte pages (aligned
///   on file offsets) may read as zeros: pages of a write reach the disk in
///   any order;
/// * a file created since the last directory sync may vanish, a file
///   removed since then may come back (with its bytes as above);
/// * a rename is a link of the new name (to the same bytes, durable as far
///   as they were synced) and an unlink of the old one, and a crash before
///   the next directory sync may undo each of them independently: the file
///   can end up under both names, either, or — harsher than most file
///   systems — neither.
///
/// File handles opened before a crash fail afterwards. Errors can be
/// injected ([`fail_next_append`](Self::fail_next_append),
/// [`fail_next_sync`](Self::fail_next_sync), [`fail_after`](Self::fail_after))
/// to check what the WAL does when a write or sync fails.
///
/// Simplifications: directories themselves are always durable; a file that
/// is created and removed between two directory syncs is simply gone;
/// appending to a removed or renamed file is an error (POSIX would accept
/// it); a rename onto an existing file is refused (`AlreadyExists`; POSIX
/// would replace it), and onto the name of a removed file whose removal is
/// not durable yet makes that removal durable.
#[derive(Clone)]
pub struct MemFs {
    state: Arc<Mutex<MemState>>,
}

/// Counters of a [`MemFs`] since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemFsStats {
    /// Bytes appended to files.
    pub appended_bytes: u64,
    /// [`WalFile::sync_data`] calls that succeeded.
    pub data_syncs: u64,
    /// [`WalFs::sync_dir`] calls that succeeded.
    pub dir_syncs: u64,
    /// Errors injected.
    pub injected_errors: u64,
    /// [`MemFs::crash`] calls.
    pub crashes: u64,
    /// Files whose creation a crash undid.
    pub files_vanished: u64,
    /// Files whose removal a crash undid.
    pub files_restored: u64,
    /// Unsynced bytes crashes dropped off the end of files.
    pub bytes_lost: u64,
    /// Pages crashes zeroed in the unsynced bytes they kept.
    pub pages_zeroed: u64,
}

/// Which operations an injected error waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultOn {
    Append,
    Sync,
    Any,
}

#[derive(Clone, Copy, Debug)]
struct Fault {
    on: FaultOn,
    /// Matching operations still to let through.
    skip: u64,
}

struct MemFile {
    /// Unique per creation, so handles do not outlive a re-created file.
    id: u64,
    data: Vec<u8>,
    /// `data[..synced]` is durable.
    synced: usize,
    /// The file is in its directory now (not removed).
    linked: bool,
    /// `linked` is durable (a directory sync happened since it changed).
    link_durable: bool,
}

struct MemState {
    files: BTreeMap<PathBuf, MemFile>,
    dirs: BTreeSet<PathBuf>,
    seed: u64,
    salts: u64,
    next_id: u64,
    /// Bumped by every crash; handles from an older epoch fail.
    epoch: u64,
    fault: Option<Fault>,
    stats: MemFsStats,
}

impl MemState {
    fn file(&self, path: &Path) -> io::Result<&MemFile> {
        match self.files.get(path) {
            Some(f) if f.linked => Ok(f),
            _ => Err(not_found(path)),
        }
    }

    fn file_mut(&mut self, path: &Path) -> io::Result<&mut MemFile> {
        match self.files.get_mut(path) {
            Some(f) if f.linked => Ok(f),
            _ => Err(not_found(path)),
        }
    }

    /// Fail this operation if an injected error is waiting for it.
    fn inject(&mut self, op: FaultOn) -> io::Result<()> {
        let Some(f) = &mut self.fault else {
            return Ok(());
        };
        if f.on != FaultOn::Any && f.on != op {
            return Ok(());
        }
        if f.skip > 0 {
            f.skip -= 1;
            return Ok(());
        }
        self.fault = None;
        self.stats.injected_errors += 1;
        Err(io::Error::other("injected I/O error (MemFs)"))
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file (MemFs)", path.display()),
    )
}

/// SplitMix64: a good 64-bit mixer, enough for deterministic test noise.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Size of the pages a crash loses independently.
pub const MEMFS_PAGE: usize = 4096;

impl MemFs {
    /// An empty file system; `seed` decides the salts it hands out.
    pub fn new(seed: u64) -> MemFs {
        MemFs {
            state: Arc::new(Mutex::new(MemState {
                files: BTreeMap::new(),
                dirs: BTreeSet::new(),
                seed,
                salts: 0,
                next_id: 0,
                epoch: 0,
                fault: None,
                stats: MemFsStats::default(),
            })),
        }
    }

    /// A power loss; `seed` decides what survives (see the type's docs).
    /// Afterwards every byte and every directory entry left is durable.
    pub fn crash(&self, seed: u64) {
        let mut rng = seed;
        let mut next = move || {
            rng = rng.wrapping_add(1);
            mix(rng ^ seed.rotate_left(17))
        };
        let mut guard = self.state.lock();
        let st = &mut *guard;
        st.epoch += 1;
        st.fault = None;
        let stats = &mut st.stats;
        stats.crashes += 1;
        st.files.retain(|_, f| {
            if f.linked != f.link_durable && next() % 2 == 0 {
                // The creation or the removal is lost.
                f.linked = !f.linked;
                if f.linked {
                    stats.files_restored += 1;
                } else {
                    stats.files_vanished += 1;
                }
            }
            if !f.linked {
                return false;
            }
            let unsynced = f.data.len() - f.synced;
            if unsynced > 0 {
                let keep = match next() % 4 {
                    0 => 0,
                    1 => unsynced,
                    _ => (next() % (unsynced as u64 + 1)) as usize,
                };
                let end = f.synced + keep;
                f.data.truncate(end);
                stats.bytes_lost += (unsynced - keep) as u64;
                if keep > 0 && next() % 2 == 0 {
                    // Some pages of the kept region never made it.
                    let mut page = f.synced / MEMFS_PAGE * MEMFS_PAGE;
                    while page < end {
                        if next() % 3 == 0 {
                            let lo = page.max(f.synced);
                            let hi = (page + MEMFS_PAGE).min(end);
                            f.data[lo..hi].fill(0);
                            stats.pages_zeroed += 1;
                        }
                        page += MEMFS_PAGE;
                    }
                }
            }
            f.synced = f.data.len();
            f.link_durable = true;
            true
        });
    }

    /// The next [`WalFile::append`] fails after appending the first half
    /// of its bytes (a short write).
    pub fn fail_next_append(&self) {
        self.state.lock().fault = Some(Fault {
            on: FaultOn::Append,
            skip: 0,
        });
    }

    /// The next [`WalFile::sync_data`] or [`WalFs::sync_dir`] fails, making
    /// nothing durable.
    pub fn fail_next_sync(&self) {
        self.state.lock().fault = Some(Fault {
            on: FaultOn::Sync,
            skip: 0,
        });
    }

    /// Let `ops` operations that change something (create, append, sync,
    /// directory sync, remove, rename, truncate) succeed, then fail the
    /// next one.
    /// Replaces any error injected before and not yet triggered.
    pub fn fail_after(&self, ops: u64) {
        self.state.lock().fault = Some(Fault {
            on: FaultOn::Any,
            skip: ops,
        });
    }

    /// Is an injected error still waiting?
    pub fn fault_pending(&self) -> bool {
        self.state.lock().fault.is_some()
    }

    /// Forget an injected error that has not triggered.
    pub fn clear_fault(&self) {
        self.state.lock().fault = None;
    }

    pub fn stats(&self) -> MemFsStats {
        self.state.lock().stats
    }

    /// Every file that exists, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        let st = self.state.lock();
        st.files
            .iter()
            .filter(|(_, f)| f.linked)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// What a reader of `path` sees now.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        self.state.lock().file(path).ok().map(|f| f.data.clone())
    }

    /// Bytes of `path` that a crash may lose (appended since the last sync).
    pub fn unsynced_bytes(&self, path: &Path) -> Option<u64> {
        let st = self.state.lock();
        st.file(path).ok().map(|f| (f.data.len() - f.synced) as u64)
    }

    /// Replace the content of an existing file, durably (to corrupt it in a
    /// test). Returns false if there is no such file.
    pub fn set_contents(&self, path: &Path, data: Vec<u8>) -> bool {
        let mut st = self.state.lock();
        match st.file_mut(path) {
            Ok(f) => {
                f.synced = data.len();
                f.data = data;
                true
            }
            Err(_) => false,
        }
    }
}

impl std::fmt::Debug for MemFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state.lock();
        f.debug_struct("MemFs")
            .field("files", &st.files.len())
            .field("epoch", &st.epoch)
            .field("stats", &st.stats)
            .finish()
    }
}

struct MemHandle {
    state: Arc<Mutex<MemState>>,
    path: PathBuf,
    id: u64,
    epoch: u64,
}

impl MemHandle {
    fn with<T>(&self, f: impl FnOnce(&mut MemState) -> io::Result<T>) -> io::Result<T> {
        let mut st = self.state.lock();
        if st.epoch != self.epoch {
            return Err(io::Error::other("file handle from before a crash (MemFs)"));
        }
        match st.files.get(&self.path) {
            Some(f) if f.id == self.id && f.linked => {}
            _ => return Err(not_found(&self.path)),
        }
        f(&mut st)
    }
}

impl WalFile for MemHandle {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let path = self.path.clone();
        self.with(|st| {
            let (n, r) = match st.inject(FaultOn::Append) {
                Ok(()) => (buf.len(), Ok(())),
                Err(e) => (buf.len() / 2, Err(e)),
            };
            st.stats.appended_bytes += n as u64;
            st.file_mut(&path)?.data.extend_from_slice(&buf[..n]);
            r
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let path = self.path.clone();
        self.with(|st| {
            st.inject(FaultOn::Sync)?;
            st.stats.data_syncs += 1;
            let f = st.file_mut(&path)?;
            f.synced = f.data.len();
            Ok(())
        })
    }
}

impl WalFs for MemFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        for d in dir.ancestors() {
            if !d.as_os_str().is_empty() {
                st.dirs.insert(d.to_path_buf());
            }
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.state.lock();
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(st
            .files
            .iter()
            .filter(|(p, f)| f.linked && p.parent() == Some(dir))
            .filter_map(|(p, _)| p.file_name()?.to_str().map(String::from))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        Ok(self.state.lock().file(path)?.data.clone())
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let mut st = self.state.lock();
        if !path.parent().is_some_and(|d| st.dirs.contains(d)) {
            return Err(not_found(path));
        }
        if st.file(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists (MemFs)", path.display()),
            ));
        }
        st.inject(FaultOn::Any)?;
        st.next_id += 1;
        let id = st.next_id;
        st.files.insert(
            path.to_path_buf(),
            MemFile {
                id,
                data: Vec::new(),
                synced: 0,
                linked: true,
                link_durable: false,
            },
        );
        Ok(Box::new(MemHandle {
            state: Arc::clone(&self.state),
            path: path.to_path_buf(),
            id,
            epoch: st.epoch,
        }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.file(path)?;
        st.inject(FaultOn::Any)?;
        let f = st.file_mut(path)?;
        if f.link_durable {
            f.linked = false;
        } else {
            st.files.remove(path);
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.file(from)?;
        if !to.parent().is_some_and(|d| st.dirs.contains(d)) {
            return Err(not_found(to));
        }
        if st.file(to).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists (MemFs)", to.display()),
            ));
        }
        st.inject(FaultOn::Any)?;
        // Unlink the old name (as `remove` does)...
        let f = st.file_mut(from)?;
        let (data, synced) = (f.data.clone(), f.synced);
        if f.link_durable {
            f.linked = false;
        } else {
            st.files.remove(from);
        }
        // ... and link the new one to the same bytes, not durably.
        st.next_id += 1;
        let id = st.next_id;
        st.files.insert(
            to.to_path_buf(),
            MemFile {
                id,
                data,
                synced,
                linked: true,
                link_durable: false,
            },
        );
        Ok(())
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(self.state.lock().file(path)?.data.len() as u64)
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut st = self.state.lock();
        st.file(path)?;
        st.inject(FaultOn::Any)?;
        let f = st.file_mut(path)?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        f.data.resize(len, 0);
        f.synced = len;
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        st.inject(FaultOn::Sync)?;
        st.stats.dir_syncs += 1;
        st.files.retain(|p, f| {
            if p.parent() == Some(dir) {
                f.link_durable = true;
                f.linked
            } else {
                true
            }
        });
        Ok(())
    }

    fn salt(&self) -> u64 {
        let mut st = self.state.lock();
        st.salts += 1;
        mix(st.seed ^ mix(st.salts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from("/mem/wal")
    }

    fn file(fs: &MemFs, name: &str) -> (PathBuf, Box<dyn WalFile>) {
        fs.create_dir_all(&dir()).unwrap();
        let p = dir().join(name);
        let f = fs.create_new(&p).unwrap();
        (p, f)
    }

    #[test]
    fn synced_bytes_survive_and_unsynced_ones_become_a_prefix_with_zeroed_pages() {
        let (mut whole, mut partial, mut none, mut zeroed) = (0, 0, 0, 0);
        for seed in 0..200 {
            let fs = MemFs::new(1);
            let (p, mut f) = file(&fs, "a");
            fs.sync_dir(&dir()).unwrap();
            let synced: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8 + 1).collect();
            f.append(&synced).unwrap();
            f.sync_data().unwrap();
            let more = vec![0xAB; 3 * MEMFS_PAGE];
            f.append(&more).unwrap();
            assert_eq!(fs.unsynced_bytes(&p), Some(more.len() as u64));
            fs.crash(seed);
            let got = fs.contents(&p).unwrap();
            assert_eq!(&got[..synced.len()], &synced[..], "seed {seed}");
            let tail = &got[synced.len()..];
            assert!(tail.len() <= more.len());
            assert!(tail.iter().all(|&b| b == 0xAB || b == 0), "seed {seed}");
            match tail.len() {
                0 => none += 1,
                n if n == more.len() => whole += 1,
                _ => partial += 1,
            }
            if tail.contains(&0) {
                zeroed += 1;
                // Whole pages (by file offset) read as zeros, or none.
                for (i, chunk) in got.chunks(MEMFS_PAGE).enumerate() {
                    let lo = (i * MEMFS_PAGE).max(synced.len());
                    let hi = (i * MEMFS_PAGE + chunk.len()).max(lo);
                    let region = &got[lo..hi];
                    assert!(
                        region.iter().all(|&b| b == 0) || !region.contains(&0),
                        "seed {seed}: page {i} partly zeroed"
                    );
                }
            }
            assert_eq!(fs.unsynced_bytes(&p), Some(0), "all durable after a crash");
            assert!(f.append(b"x").is_err(), "old handles fail after a crash");
        }
        assert!(whole > 0 && partial > 0 && none > 0 && zeroed > 0);
    }

    #[test]
    fn directory_changes_need_a_directory_sync() {
        let (mut vanished, mut back) = (0, 0);
        for seed in 0..100 {
            let fs = MemFs::new(1);
            let (kept, mut f) = file(&fs, "kept");
            f.append(b"synced").unwrap();
            f.sync_data().unwrap();
            fs.sync_dir(&dir()).unwrap();
            let (gone, _) = file(&fs, "gone");
            fs.sync_dir(&dir()).unwrap();
            fs.remove(&gone).unwrap();
            let (new, mut g) = file(&fs, "new");
            g.append(b"data").unwrap();
            g.sync_data().unwrap();
            assert_eq!(fs.files(), vec![kept.clone(), new.clone()]);
            fs.crash(seed);
            assert_eq!(fs.contents(&kept).unwrap(), b"synced");
            match fs.contents(&new) {
                None => vanished += 1,
                Some(d) => assert_eq!(d, b"data"),
            }
            back += usize::from(fs.contents(&gone).is_some());
            let mut names = fs.list(&dir()).unwrap();
            names.sort();
            assert_eq!(names.len(), fs.files().len());
        }
        assert!(vanished > 0 && vanished < 100);
        assert!(back > 0 && back < 100);

        // Made durable, they stay as they are.
        let fs = MemFs::new(1);
        let (a, _) = file(&fs, "a");
        let (b, _) = file(&fs, "b");
        fs.sync_dir(&dir()).unwrap();
        fs.remove(&b).unwrap();
        fs.sync_dir(&dir()).unwrap();
        fs.crash(3);
        assert_eq!(fs.files(), vec![a]);
    }

    #[test]
    fn truncate_is_durable_and_create_new_refuses_existing_files() {
        let fs = MemFs::new(1);
        let (p, mut f) = file(&fs, "a");
        fs.sync_dir(&dir()).unwrap();
        f.append(&[7; 100]).unwrap();
        fs.truncate(&p, 40).unwrap();
        assert_eq!(fs.unsynced_bytes(&p), Some(0));
        fs.crash(9);
        assert_eq!(fs.contents(&p).unwrap(), vec![7; 40]);
        assert_eq!(
            fs.create_new(&p).err().map(|e| e.kind()),
            Some(io::ErrorKind::AlreadyExists)
        );
        assert_eq!(
            fs.create_new(Path::new("/elsewhere/x"))
                .err()
                .map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
    }

    #[test]
    fn injected_errors_hit_the_operation_they_wait_for() {
        let fs = MemFs::new(1);
        let (p, mut f) = file(&fs, "a");
        fs.fail_next_sync();
        f.append(b"0123456789").unwrap();
        assert!(f.sync_data().is_err());
        assert_eq!(fs.unsynced_bytes(&p), Some(10));
        fs.fail_next_append();
        assert!(f.append(b"abcdef").is_err());
        assert_eq!(fs.contents(&p).unwrap(), b"0123456789abc", "a short write");
        fs.fail_after(2);
        f.append(b"x").unwrap();
        f.sync_data().unwrap();
        assert!(fs.fault_pending());
        assert!(fs.sync_dir(&dir()).is_err());
        assert!(!fs.fault_pending());
        fs.sync_dir(&dir()).unwrap();
        assert_eq!(fs.stats().injected_errors, 3);
    }

    #[test]
    fn a_rename_needs_a_directory_sync_and_a_crash_may_undo_either_half() {
        let mut seen = BTreeSet::new();
        for seed in 0..200 {
            let fs = MemFs::new(1);
            let (a, mut f) = file(&fs, "a");
            f.append(b"snapshot").unwrap();
            f.sync_data().unwrap();
            fs.sync_dir(&dir()).unwrap();
            let b = dir().join("b");
            fs.rename(&a, &b).unwrap();
            assert_eq!(fs.files(), vec![b.clone()]);
            assert_eq!(fs.file_len(&b).unwrap(), 8);
            assert!(f.append(b"x").is_err(), "the handle went with the old name");
            fs.crash(seed);
            for p in [&a, &b] {
                if let Some(d) = fs.contents(p) {
                    assert_eq!(d, b"snapshot", "seed {seed}");
                }
            }
            seen.insert((fs.contents(&a).is_some(), fs.contents(&b).is_some()));
        }
        assert_eq!(seen.len(), 4, "old, new, both and neither: {seen:?}");

        // Made durable, only the new name is left.
        let fs = MemFs::new(1);
        let (a, mut f) = file(&fs, "a");
        f.append(b"snapshot").unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(&dir()).unwrap();
        let b = dir().join("b");
        fs.rename(&a, &b).unwrap();
        fs.sync_dir(&dir()).unwrap();
        fs.crash(5);
        assert_eq!(fs.files(), vec![b.clone()]);
        assert_eq!(fs.contents(&b).unwrap(), b"snapshot");
    }

    #[test]
    fn a_renamed_file_keeps_only_its_synced_bytes_for_sure() {
        let mut partial = 0;
        for seed in 0..100 {
            let fs = MemFs::new(1);
            let (a, mut f) = file(&fs, "a");
            f.append(&[1; 100]).unwrap();
            f.sync_data().unwrap();
            f.append(&[2; 100]).unwrap();
            let b = dir().join("b");
            fs.rename(&a, &b).unwrap();
            assert_eq!(fs.unsynced_bytes(&b), Some(100));
            fs.sync_dir(&dir()).unwrap();
            fs.crash(seed);
            let d = fs.contents(&b).unwrap();
            assert!(d.len() >= 100 && d[..100] == [1; 100], "seed {seed}");
            partial += usize::from(d.len() < 200);
        }
        assert!(partial > 0);
    }

    #[test]
    fn rename_refuses_missing_sources_and_existing_targets_and_counts_as_an_operation() {
        let fs = MemFs::new(1);
        let (a, _) = file(&fs, "a");
        let (b, _) = file(&fs, "b");
        let kind = |r: io::Result<()>| r.err().map(|e| e.kind());
        assert_eq!(
            kind(fs.rename(&dir().join("x"), &dir().join("y"))),
            Some(io::ErrorKind::NotFound)
        );
        assert_eq!(kind(fs.rename(&a, &b)), Some(io::ErrorKind::AlreadyExists));
        assert_eq!(
            kind(fs.rename(&a, Path::new("/elsewhere/a"))),
            Some(io::ErrorKind::NotFound)
        );
        fs.fail_after(0);
        assert!(fs.rename(&a, &dir().join("c")).is_err());
        assert_eq!(fs.files(), vec![a, b], "a failed rename changes nothing");
        assert_eq!(fs.stats().injected_errors, 1);
    }

    #[test]
    fn salts_depend_on_the_seed_only() {
        let salts = |seed| {
            let fs = MemFs::new(seed);
            [fs.salt(), fs.salt(), fs.salt()]
        };
        assert_eq!(salts(5), salts(5));
        assert_ne!(salts(5), salts(6));
        let s = salts(5);
        assert!(s[0] != s[1] && s[1] != s[2]);
        assert_ne!(RealFs.salt(), RealFs.salt());
    }
}
