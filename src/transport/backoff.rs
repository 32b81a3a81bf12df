//! Reconnect delays: exponential backoff with jitter.

use std::time::Duration;

/// Delays between dials of one peer: the nominal delay starts at `min`,
/// doubles after every failure up to `max`, and goes back to `min` once a
/// handshake succeeds. Each delay actually waited is drawn uniformly between
/// half and all of the nominal one ("equal jitter"), so that nodes that lost
/// a peer at the same moment do not all redial it at the same moment.
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    rng: u64,
}

impl Backoff {
    /// `seed` only decides the jitter; any value works (0 is replaced).
    pub fn new(min: Duration, max: Duration, seed: u64) -> Self {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
            rng: seed | 1,
        }
    }

    /// Back to the shortest delay (after a successful handshake).
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The delay to wait now; the following one will be twice as long
    /// (nominally), up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.next;
        self.next = nominal.saturating_mul(2).min(self.max);
        let half = nominal / 2;
        let half_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = self.random() % half_nanos.saturating_add(1);
        half + Duration::from_nanos(jitter)
    }

    /// xorshift64*: enough for jitter, no dependency.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A jitter seed that differs between nodes, peers and runs.
pub(crate) fn seed(node_id: u64, peer_id: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(0);
    node_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ peer_id.rotate_left(32) ^ nanos
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_up_to_the_maximum_with_jitter_within_half() {
        let mut b = Backoff::new(50 * MS, 2000 * MS, 42);
        let mut nominal = 50 * MS;
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d >= nominal / 2 && d <= nominal, "{d:?} vs {nominal:?}");
            nominal = (nominal * 2).min(2000 * MS);
        }
        b.reset();
        let d = b.next_delay();
        assert!(d >= 25 * MS && d <= 50 * MS, "{d:?}");
    }

    #[test]
    fn degenerate_bounds_are_fixed_up() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO, 0);
        let d = b.next_delay();
        assert!(d <= MS);
        let mut b = Backoff::new(100 * MS, 10 * MS, 7);
        for _ in 0..5 {
            assert!(b.next_delay() <= 100 * MS);
        }
    }
}
