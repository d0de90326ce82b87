//! What the fake org has served: request counts by kind and status, peaks, records, and
//! which requests carried a batch size.
//!
//! Owns the [`Recorder`] the server's outermost layer feeds. Invariants: `/__fake/*`
//! requests are never recorded; `in_flight` returns to zero when every request has answered
//! (the [`InFlight`] guard decrements on drop, so a cancelled handler cannot leak a count);
//! `peak_per_second` is the busiest whole second since start or the last reset.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::Stats;

/// Which resource a request asked for, as named in [`Stats::by_kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Token,
    Versions,
    DescribeGlobal,
    Describe,
    Query,
    QueryMore,
    Limits,
    BulkCreate,
    BulkJob,
    BulkResults,
    Other,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Token => "token",
            Kind::Versions => "versions",
            Kind::DescribeGlobal => "describe_global",
            Kind::Describe => "describe",
            Kind::Query => "query",
            Kind::QueryMore => "query_more",
            Kind::Limits => "limits",
            Kind::BulkCreate => "bulk_create",
            Kind::BulkJob => "bulk_job",
            Kind::BulkResults => "bulk_results",
            Kind::Other => "other",
        }
    }

    /// Classifies a request path the way the router dispatches it.
    pub fn of_path(path: &str) -> Kind {
        if path == "/services/oauth2/token" {
            return Kind::Token;
        }
        let Some(rest) = path.strip_prefix("/services/data") else {
            return Kind::Other;
        };
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            [] => Kind::Versions,
            [_, "sobjects"] => Kind::DescribeGlobal,
            [_, "sobjects", _, "describe"] => Kind::Describe,
            [_, "query" | "queryAll"] => Kind::Query,
            [_, "query" | "queryAll", _] => Kind::QueryMore,
            [_, "limits"] => Kind::Limits,
            [_, "jobs", "query"] => Kind::BulkCreate,
            [_, "jobs", "query", _] => Kind::BulkJob,
            [_, "jobs", "query", _, "results"] => Kind::BulkResults,
            _ => Kind::Other,
        }
    }
}

/// Counters shared by every request handler. Atomics for the hot counters; one short
/// `std` mutex for the maps and the per-second bucket (never held across an `.await`).
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    in_flight: AtomicU64,
    records_served: AtomicU64,
    inner: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    requests: u64,
    by_kind: BTreeMap<String, u64>,
    with_batch_size: BTreeMap<String, u64>,
    by_status: BTreeMap<u16, u64>,
    peak_in_flight: u64,
    /// The whole second (since start) of the current bucket, and its count.
    bucket_second: u64,
    bucket_count: u64,
    peak_per_second: u64,
}

/// Marks one request in flight until dropped.
#[derive(Debug)]
pub struct InFlight<'a> {
    recorder: &'a Recorder,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.recorder.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicU64::new(0),
            records_served: AtomicU64::new(0),
            inner: Mutex::new(Counts::default()),
        }
    }
}

impl Recorder {
    /// Records the start of a request of `kind`; the returned guard keeps it in flight.
    pub fn begin(&self, kind: Kind) -> InFlight<'_> {
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let second = self.started.elapsed().as_secs();
        let mut c = self.lock();
        c.requests += 1;
        *c.by_kind.entry(kind.name().to_string()).or_default() += 1;
        c.peak_in_flight = c.peak_in_flight.max(now_in_flight);
        if c.bucket_second != second {
            c.bucket_second = second;
            c.bucket_count = 0;
        }
        c.bucket_count += 1;
        c.peak_per_second = c.peak_per_second.max(c.bucket_count);
        InFlight { recorder: self }
    }

    /// Records that a request of `kind` carried `Sforce-Query-Options: batchSize=N`. The
    /// org keeps a query's page size in its cursor, so pages alone cannot show whether a
    /// client sent the header with every request; this count can.
    pub fn batch_size_sent(&self, kind: Kind) {
        *self
            .lock()
            .with_batch_size
            .entry(kind.name().to_string())
            .or_default() += 1;
    }

    /// Records the status a request was answered with.
    pub fn status(&self, status: u16) {
        *self.lock().by_status.entry(status).or_default() += 1;
    }

    pub fn records(&self, n: usize) {
        self.records_served.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn snapshot(&self) -> Stats {
        let c = self.lock();
        Stats {
            requests: c.requests,
            by_kind: c.by_kind.clone(),
            with_batch_size: c.with_batch_size.clone(),
            by_status: c.by_status.clone(),
            peak_in_flight: c.peak_in_flight,
            peak_per_second: c.peak_per_second,
            records_served: self.records_served.load(Ordering::Relaxed),
            bulk: Default::default(),
        }
    }

    /// Forgets everything counted so far (requests still in flight stay in flight).
    pub fn reset(&self) {
        let mut c = self.lock();
        *c = Counts {
            bucket_second: self.started.elapsed().as_secs(),
            ..Counts::default()
        };
        self.records_served.store(0, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic while counting cannot leave the maps half-updated in a harmful way.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified_like_the_router() {
        let cases = [
            ("/services/oauth2/token", Kind::Token),
            ("/services/data/", Kind::Versions),
            ("/services/data", Kind::Versions),
            ("/services/data/v62.0/sobjects", Kind::DescribeGlobal),
            (
                "/services/data/v62.0/sobjects/Account/describe",
                Kind::Describe,
            ),
            ("/services/data/v62.0/query", Kind::Query),
            ("/services/data/v62.0/queryAll", Kind::Query),
            ("/services/data/v62.0/query/01gABC-2000", Kind::QueryMore),
            ("/services/data/v62.0/limits", Kind::Limits),
            ("/services/data/v62.0/jobs/query", Kind::BulkCreate),
            ("/services/data/v62.0/jobs/query/750ABC", Kind::BulkJob),
            (
                "/services/data/v62.0/jobs/query/750ABC/results",
                Kind::BulkResults,
            ),
            ("/services/data/v62.0/jobs/ingest", Kind::Other),
            ("/elsewhere", Kind::Other),
        ];
        for (path, kind) in cases {
            assert_eq!(Kind::of_path(path), kind, "{path}");
        }
    }

    #[test]
    fn peaks_and_counts_follow_requests() {
        let r = Recorder::default();
        let a = r.begin(Kind::Query);
        let b = r.begin(Kind::QueryMore);
        drop(a);
        let c = r.begin(Kind::Query);
        r.batch_size_sent(Kind::Query);
        r.status(200);
        r.status(200);
        r.status(503);
        r.records(42);
        let s = r.snapshot();
        assert_eq!(s.requests, 3);
        assert_eq!(s.by_kind["query"], 2);
        assert_eq!(s.by_kind["query_more"], 1);
        assert_eq!(s.with_batch_size["query"], 1);
        assert!(!s.with_batch_size.contains_key("query_more"));
        assert_eq!(s.by_status[&200], 2);
        assert_eq!(s.by_status[&503], 1);
        assert_eq!(s.peak_in_flight, 2);
        assert!(s.peak_per_second >= 1);
        assert_eq!(s.records_served, 42);
        drop((b, c));
        assert_eq!(r.in_flight(), 0);
        r.reset();
        assert_eq!(r.snapshot().requests, 0);
        assert_eq!(r.snapshot().records_served, 0);
        assert!(r.snapshot().with_batch_size.is_empty());
    }
}
