//! Elections, for the operator's log: a node that loses a peer starts one
//! election per group that peer led, and a cluster that cannot keep a
//! leader starts them every timeout. One line per election would be
//! thousands of lines at once; the operator needs how many and when. So
//! the node's elections are counted over windows of a second and a window
//! with any election makes one INFO line (a healthy cluster has none).

use std::time::{Duration, Instant};

/// How many elections the node started, per window.
#[derive(Debug)]
pub(crate) struct ElectionRate {
    since: Instant,
    /// The node's `elections_started` when the window began.
    at_start: u64,
}

impl ElectionRate {
    pub const WINDOW: Duration = Duration::from_secs(1);
    /// Elections in a window that make a line.
    pub const THRESHOLD: u64 = 1;

    pub fn new(now: Instant, total: u64) -> ElectionRate {
        ElectionRate {
            since: now,
            at_start: total,
        }
    }

    /// The node has started `total` elections so far: at the end of a
    /// window, the number it started during it, if that is worth a line.
    pub fn observe(&mut self, now: Instant, total: u64) -> Option<(u64, Duration)> {
        let took = now.saturating_duration_since(self.since);
        if took < Self::WINDOW {
            return None;
        }
        let n = total.saturating_sub(self.at_start);
        *self = ElectionRate::new(now, total);
        (n >= Self::THRESHOLD).then_some((n, took))
    }

    /// Log the window's elections, if any.
    pub fn log(&mut self, now: Instant, total: u64) {
        if let Some((n, took)) = self.observe(now, total) {
            tracing::info!(
                elections = n,
                ms = took.as_millis() as u64,
                "{n} election{} started in the last {:.1} s",
                if n == 1 { "" } else { "s" },
                took.as_secs_f64()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_window_with_elections_none_without() {
        let t0 = Instant::now();
        let mut r = ElectionRate::new(t0, 5);
        // Within the window: nothing yet, however many.
        assert_eq!(r.observe(t0 + Duration::from_millis(500), 300), None);
        let end = t0 + Duration::from_millis(1000);
        assert_eq!(r.observe(end, 305), Some((300, Duration::from_secs(1))));
        // A quiet window says nothing.
        assert_eq!(r.observe(end + Duration::from_millis(1500), 305), None);
    }
}
