//! The file-system operations the WAL needs, behind a trait, so that the
//! same WAL code runs on the real file system ([`RealFs`]) and, in tests and
//! simulations, on an in-memory one that can crash ([`MemFs`]).
//!
//! The contract is the POSIX one the WAL relies on: bytes appended to a
//! file are durable once [`WalFile::sync_data`] returns; the creation or
//! removal of a file is durable once [`WalFs::sync_dir`] of its directory
//! returns; [`WalFs::truncate`] is durable when it returns. Anything not
//! made durable may be lost by a crash, in part or in any order.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

/// A file open for appending (a segment being written).
pub trait WalFile: Send {
    /// Append all of `buf` at the end of the file. On error, any prefix of
    /// `buf` may have been appended.
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Make everything appended so far durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// The file system a [`Wal`](super::Wal) lives in. Paths are the WAL
/// directory joined with a segment's file name.
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
    /// Cut a file to `len` bytes and make that durable before returning.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Make the creations and removals of files in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// A fresh random number for the header of a new segment (its salt; see
    /// the format documentation of the WAL). It must be unpredictable to
    /// whoever writes entry payloads; it need not be cryptographic.
    fn salt(&self) -> u64;
}

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
