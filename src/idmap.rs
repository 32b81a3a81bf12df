//! Maps keyed by group id, with a hasher cheaper than the standard one.
//!
//! Group ids are chosen by the host (peers' frames and the WAL only name
//! ids the host created), so a seeded hasher's defence against flooding
//! buys nothing here, and SipHash costs a few dozen cycles per lookup on
//! paths that look up every group of a pass: the registry's index, the
//! key-metrics table, the WAL's per-group bookkeeping and its check of
//! every batch before it is written.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from group id to `V` hashed with [`IdHasher`].
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Hashes a group id with one folded 64×64→128-bit multiply: a few cycles
/// against SipHash's few dozen, and without a random seed, so runs replay.
/// Every bit of the id reaches both ends of the hash, so ids that differ
/// only in their high bits (say, a shard number shifted up) still spread.
/// Only the host inserts groups; a peer naming ids in frames merely looks
/// them up, so it cannot build the long probe chains of a flooding attack.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; this keeps other input correct.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        // An odd constant with well-mixed bits (from the golden ratio).
        const K: u128 = 0x9E37_79B9_7F4A_7C15;
        let p = u128::from(self.0 ^ x) * K;
        self.0 = (p as u64) ^ ((p >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differing_only_in_high_bits_spread() {
        let hash = |id: u64| {
            let mut h = IdHasher::default();
            h.write_u64(id);
            h.finish()
        };
        let low: std::collections::HashSet<u64> =
            (0..1024u64).map(|i| hash(i << 40) & 1023).collect();
        assert!(low.len() > 512, "{} distinct buckets of 1024", low.len());
    }
}
