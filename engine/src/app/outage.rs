//! Riding out a short outage of the log instead of answering `unavailable` at once.
//!
//! On a cluster the event stream has no leader for a few seconds after its leader dies
//! (measured: 4–6.5 s), and a node restart or a client moving to another node looks the same
//! to an append: `LogError::Unavailable`. A sender told `unavailable` each time would have to
//! know to come back; most do not. So the engine keeps trying its own command for a bounded
//! time, deciding it again from the case as the log then has it: the command's idempotency
//! key (its `Nats-Msg-Id`) and the case's processed sources make a retry after an append
//! whose ack was lost come back as the earlier outcome, never as a second commit. Only when
//! the log is still unavailable at the end does the sender get `unavailable`, which the
//! README tells it to retry with the same message id.

use std::time::Duration;

/// How long and how often a command is retried while the log is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutagePolicy {
    /// Give up after this long (0: do not ride out; answer `unavailable` at once).
    pub ride_out: Duration,
    /// The first pause; each next one doubles, up to `longest_pause`.
    pub first_pause: Duration,
    pub longest_pause: Duration,
}

impl OutagePolicy {
    /// Answer `unavailable` at once: the caller retries (tests of the log's own faults).
    pub const NONE: Self = Self {
        ride_out: Duration::ZERO,
        first_pause: Duration::ZERO,
        longest_pause: Duration::ZERO,
    };

    /// What `wangge serve` does: up to 10 s, covering a leader election or a node restart.
    pub const SERVE: Self = Self {
        ride_out: Duration::from_secs(10),
        first_pause: Duration::from_millis(50),
        longest_pause: Duration::from_secs(1),
    };

    /// The pauses between attempts, in order, until the ride-out time is spent: the last is
    /// cut so that their sum is exactly `ride_out`.
    pub fn pauses(&self) -> Vec<Duration> {
        let mut pauses = Vec::new();
        let mut spent = Duration::ZERO;
        let mut next = self.first_pause;
        while spent < self.ride_out && !next.is_zero() {
            let pause = next.min(self.ride_out - spent);
            pauses.push(pause);
            spent += pause;
            next = (next * 2).min(self.longest_pause);
        }
        pauses
    }
}

impl Default for OutagePolicy {
    fn default() -> Self {
        Self::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_rides_out_ten_seconds_in_growing_pauses_of_at_most_one() {
        let pauses = OutagePolicy::SERVE.pauses();
        assert_eq!(pauses.iter().sum::<Duration>(), Duration::from_secs(10));
        assert_eq!(pauses[0], Duration::from_millis(50));
        assert_eq!(pauses[1], Duration::from_millis(100));
        assert!(pauses.iter().all(|p| *p <= Duration::from_secs(1)));
        // Growing, but for the last, which is cut to end at ten seconds exactly.
        let growing = &pauses[..pauses.len() - 1];
        assert!(growing.windows(2).all(|w| w[1] >= w[0]), "{pauses:?}");
    }

    #[test]
    fn no_policy_means_no_retry() {
        assert!(OutagePolicy::NONE.pauses().is_empty());
        assert_eq!(OutagePolicy::default(), OutagePolicy::NONE);
    }
}
