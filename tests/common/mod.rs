//! Helpers shared by the integration tests (`mod common;` in each) and by
//! the `heartbeat_latency` bench. Cargo does not treat this directory as a
//! test target.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `muxraft-<crate>-<name>-<pid>-<n>-<nanos>`, where `<crate>` is the
    /// including test or bench (`wal`, `embedded`, ...). Not created: the
    /// code under test creates it.
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = std::env::temp_dir().join(format!(
            "muxraft-{}-{name}-{}-{}-{nanos}",
            env!("CARGO_CRATE_NAME"),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A group's state machine for the tests and benches that restart nodes:
/// every entry applied folds into a digest (FNV-1a over the index and the
/// data, chained), and a snapshot is its 24 bytes.
#[allow(dead_code)] // not every includer uses it
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Machine {
    pub applied: u64,
    pub count: u64,
    pub digest: u64,
}

#[allow(dead_code)]
impl Machine {
    pub fn apply(&mut self, index: u64, data: &[u8]) {
        self.applied = index;
        self.count += 1;
        let mut h = self.digest ^ 0xcbf2_9ce4_8422_2325;
        for b in index.to_le_bytes().iter().chain(data) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.digest = h;
    }

    pub fn encode(&self) -> bytes::Bytes {
        let mut v = Vec::with_capacity(24);
        for x in [self.applied, self.count, self.digest] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        bytes::Bytes::from(v)
    }

    /// None unless `b` is 24 bytes.
    pub fn decode(b: &[u8]) -> Option<Machine> {
        let x = |i: usize| {
            Some(u64::from_le_bytes(
                b.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        (b.len() == 24).then_some(())?;
        Some(Machine {
            applied: x(0)?,
            count: x(1)?,
            digest: x(2)?,
        })
    }
}
