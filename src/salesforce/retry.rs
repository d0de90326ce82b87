//! The retry policy: how long to wait before the next attempt, and when to give up.
//!
//! Owns the back-off schedule only; which errors are worth retrying is
//! [`FetchError::is_transient`](super::FetchError::is_transient), and the loop that sleeps
//! lives with the client.
//!
//! The schedule: the first back-off is `--rate-limit-timeout-ms`, each next one doubles, capped
//! at [`MAX_BACKOFF`]; the actual wait is drawn from the upper half of that (equal jitter), so
//! workers that failed together do not come back together, yet the first wait is never
//! near zero, which would hit an overloaded server again at once. A `Retry-After` (seconds) is
//! a floor on the wait.

use std::time::Duration;

use super::error::FetchError;

/// The longest back-off between two attempts: long enough for a busy org to recover, short
/// enough that a run does not look hung.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The longest `Retry-After` honoured; a larger value is treated as this, so a misconfigured
/// edge cannot park a run for hours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The back-off schedule of one client.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first back-off (before jitter).
    pub first: Duration,
    /// The attempts a request gets in all, the first included.
    pub max_attempts: u32,
}

impl Backoff {
    /// The wait after the `failures`-th failed attempt (1-based), with `unit` in `0.0..=1.0`
    /// the jitter draw.
    pub fn delay(&self, failures: u32, retry_after: Option<u64>, unit: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        let base = self
            .first
            .saturating_mul(1u32 << doublings)
            .min(MAX_BACKOFF);
        let jittered = base.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0));
        match retry_after {
            Some(secs) => jittered.max(Duration::from_secs(secs).min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }
}

/// Attempts made for one request, and whether another is allowed.
#[derive(Debug)]
pub struct RetryState {
    policy: Backoff,
    failures: u32,
}

impl RetryState {
    pub fn new(policy: Backoff) -> Self {
        Self {
            policy,
            failures: 0,
        }
    }

    /// After a failed attempt: the wait before the next one, or `None` when the error is not
    /// transient or the attempts are spent.
    pub fn next_delay(&mut self, error: &FetchError) -> Option<Duration> {
        if !error.is_transient() || self.failures + 1 >= self.policy.max_attempts {
            return None;
        }
        self.failures += 1;
        Some(
            self.policy
                .delay(self.failures, error.retry_after(), fastrand::f64()),
        )
    }

    /// Failed attempts so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Backoff {
        Backoff {
            first: Duration::from_millis(1000),
            max_attempts: 6,
        }
    }

    #[test]
    fn backoff_starts_at_the_interval_doubles_and_is_capped() {
        let p = policy();
        let top: Vec<_> = (1..=7).map(|n| p.delay(n, None, 1.0).as_millis()).collect();
        assert_eq!(top, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        let bottom: Vec<_> = (1..=3).map(|n| p.delay(n, None, 0.0).as_millis()).collect();
        assert_eq!(bottom, [500, 1000, 2000]);
        assert_eq!(p.delay(1000, None, 1.0), MAX_BACKOFF, "no overflow");
    }

    #[test]
    fn retry_after_is_a_floor_and_bounded() {
        let p = policy();
        assert_eq!(p.delay(1, Some(7), 0.0), Duration::from_secs(7));
        assert_eq!(p.delay(5, Some(1), 1.0), Duration::from_secs(16));
        assert_eq!(p.delay(1, Some(100_000), 0.0), MAX_RETRY_AFTER);
    }

    fn busy() -> FetchError {
        FetchError::Server {
            status: 503,
            path: "/x".into(),
            message: "busy".into(),
            retry_after: None,
        }
    }

    #[test]
    fn attempts_are_bounded_and_fatal_errors_are_not_retried() {
        let mut state = RetryState::new(policy());
        let delays: Vec<_> = std::iter::from_fn(|| state.next_delay(&busy())).collect();
        assert_eq!(delays.len(), 5, "six attempts in all");
        for (i, d) in delays.iter().enumerate() {
            let base = Duration::from_millis(1000 << i);
            assert!(*d >= base / 2 && *d <= base, "{i}: {d:?}");
        }
        let mut state = RetryState::new(policy());
        let fatal = FetchError::MalformedQuery {
            message: "x".into(),
        };
        assert_eq!(state.next_delay(&fatal), None);
        assert_eq!(state.failures(), 0);
    }

    #[test]
    fn the_waits_of_a_failing_request_add_up_to_the_schedule() {
        // `tokio::time::pause` needs tokio's `test-util`, which the crate does not enable; the
        // waits are pure, so their sum is checked instead of a paused clock.
        let mut state = RetryState::new(Backoff {
            first: Duration::from_millis(100),
            max_attempts: 4,
        });
        let total: Duration = std::iter::from_fn(|| state.next_delay(&busy())).sum();
        // three back-offs of 100, 200 and 400 ms, each jittered into its upper half.
        assert!(
            total >= Duration::from_millis(350) && total <= Duration::from_millis(700),
            "{total:?}"
        );
    }
}
