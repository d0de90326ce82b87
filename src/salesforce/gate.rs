//! The door every request goes through: the rate limiter and the bound on requests in flight.
//!
//! Owns the two limits the spec counts at the server: never more than `--rate-limit` requests
//! in any `--rate-limit-timeout-ms` interval, and never more than `--concurrency` in flight.
//! Token, limits, describe and query requests, first attempts and retries all pass here.
//!
//! Invariants:
//! * The rate limiter is a GCRA with a burst of one: sends are spaced at least `interval /
//!   rate` apart. A burst of `rate` would let nearly `2 × rate` through in one window (a full
//!   burst at its end, another as the next begins), which a server counting per window sees.
//! * The spacing is 5% wider than `interval / rate`, so that `rate + 1` sends never fit in
//!   one interval even when network jitter bunches their arrivals by up to 5% of it.
//! * A permit is held from before the rate wait until the body has been read, and never while
//!   a retry sleeps in back-off.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How much wider than `interval / rate` the spacing of sends is: `rate + 1` requests then
/// span 5 % more than one interval, so arrival jitter (a loaded host, a busy proxy) of up to
/// that much cannot push them into one server-side window, and a rate-bound run stays within
/// 5 % of `requests / rate`, inside the spec's 10 %.
const SPACING_MARGIN: f64 = 1.05;

/// The rate limiter and the in-flight bound; shared by all workers of a client.
#[derive(Debug)]
pub struct Gate {
    /// Spaces sends at least `interval / rate × SPACING_MARGIN` apart.
    limiter: DefaultDirectRateLimiter,
    /// Its clock, to turn a "not until" into a duration to sleep.
    clock: DefaultClock,
    /// One permit per request in flight.
    in_flight: Semaphore,
}

impl Gate {
    /// A gate for `rate` requests per `interval` and `concurrency` in flight (each at least 1).
    pub fn new(rate: u32, interval: Duration, concurrency: usize) -> Self {
        let spacing = interval.mul_f64(SPACING_MARGIN) / rate.max(1);
        let spacing = spacing.max(Duration::from_micros(1));
        let quota = Quota::with_period(spacing)
            .expect("spacing is non-zero")
            .allow_burst(NonZeroU32::MIN);
        let clock = DefaultClock::default();
        Self {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
            in_flight: Semaphore::new(concurrency.max(1)),
        }
    }

    /// Waits for a free slot and then for the rate limiter's turn; the permit is the slot.
    ///
    /// # Cancel safety
    /// Dropping the future gives the slot back; a turn taken from the limiter is lost.
    pub async fn enter(&self) -> SemaphorePermit<'_> {
        let permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        // Timed only when the limiter makes it wait: most requests pass at once.
        let mut waiting = None;
        while let Err(not_until) = self.limiter.check() {
            waiting.get_or_insert_with(std::time::Instant::now);
            tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
        }
        if let Some(since) = waiting {
            crate::metrics::global().rate_limiter_waited(since.elapsed());
        }
        permit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_window_of_one_interval_holds_more_than_rate_sends() {
        let interval = Duration::from_millis(200);
        let rate = 10;
        let gate = Arc::new(Gate::new(rate, interval, 64));
        let start = Instant::now();
        let tasks: Vec<_> = (0..35)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move {
                    let _p = gate.enter().await;
                    start.elapsed()
                })
            })
            .collect();
        let mut sent = Vec::new();
        for t in tasks {
            sent.push(t.await.unwrap());
        }
        sent.sort();
        for (i, first) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .take_while(|t| **t < *first + interval)
                .count();
            assert!(
                in_window <= rate as usize,
                "{in_window} sends within {interval:?} of {first:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_more_than_concurrency_permits_are_out() {
        let gate = Arc::new(Gate::new(1000, Duration::from_millis(1), 3));
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (gate, now, peak) = (gate.clone(), now.clone(), peak.clone());
                tokio::spawn(async move {
                    let _p = gate.enter().await;
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }
}
