//! The run's metrics for dashboards: what `--metrics-addr` serves in the Prometheus text format.
//!
//! Owns one process-wide registry ([`global`]) that the client, the backfill coordinator and the
//! sync touch at the few points where a request is sent or a chunk or step is recorded, and
//! [`serve`], the listener answering `GET /metrics`. Counting costs an atomic add whether or not
//! anything listens; nothing is served unless `--metrics-addr` is given.
//!
//! Invariants: a request is counted once per attempt, retries and token requests included, by
//! the Salesforce resource it asked for (the same kinds as salesforce-api.md's endpoints), with
//! its HTTP status or `error` when no answer came; rows and bytes are counted when their day is
//! recorded done (backfill) or their step committed (sync), never before.

mod serve;

pub use serve::{Listening, MetricsAddrError, serve};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// Label pairs; names are fixed, values come from the run (object names, kinds, statuses).
type Labels = Vec<(&'static str, String)>;

/// Every metric a run exposes.
pub struct Metrics {
    registry: Registry,
    chunks: Family<Labels, Counter>,
    chunks_planned: Family<Labels, Gauge>,
    rows: Family<Labels, Counter>,
    bytes: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    retries: Counter,
    in_flight: Family<Labels, Gauge>,
    api_used: Gauge,
    api_max: Gauge,
    rate_wait: Counter<f64, AtomicU64>,
    window_wait: Counter<f64, AtomicU64>,
    window_waiting: Gauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("sfbackfill");
        let m = Self {
            registry: Registry::default(),
            chunks: Family::default(),
            chunks_planned: Family::default(),
            rows: Family::default(),
            bytes: Family::default(),
            requests: Family::default(),
            retries: Counter::default(),
            in_flight: Family::default(),
            api_used: Gauge::default(),
            api_max: Gauge::default(),
            rate_wait: Counter::default(),
            window_wait: Counter::default(),
            window_waiting: Gauge::default(),
        };
        registry.register(
            "chunks",
            "Chunks (object days) recorded by this run, by object and state (done, failed)",
            m.chunks.clone(),
        );
        registry.register(
            "chunks_planned",
            "Chunks this backfill run set out to fetch, by object",
            m.chunks_planned.clone(),
        );
        registry.register(
            "rows_written",
            "Rows in files recorded done (backfill) or committed (sync), by object",
            m.rows.clone(),
        );
        registry.register(
            "bytes_written",
            "Parquet bytes recorded done or committed, by object",
            m.bytes.clone(),
        );
        registry.register(
            "requests",
            "Requests sent to Salesforce, retries and token requests included, by kind and HTTP status (error: no answer)",
            m.requests.clone(),
        );
        registry.register(
            "retries",
            "Requests repeated after a back-off",
            m.retries.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests sent and not yet answered, by kind",
            m.in_flight.clone(),
        );
        registry.register(
            "api_usage_used",
            "The org's daily API requests used, as Salesforce last reported",
            m.api_used.clone(),
        );
        registry.register(
            "api_usage_max",
            "The org's daily API request allocation, as Salesforce last reported",
            m.api_max.clone(),
        );
        registry.register(
            "rate_limiter_wait_seconds",
            "Time requests waited for the rate limiter's turn",
            m.rate_wait.clone(),
        );
        registry.register(
            "offpeak_wait_seconds",
            "Time the run waited with work left for an off-peak --window to open, added as each wait ends",
            m.window_wait.clone(),
        );
        registry.register(
            "offpeak_waiting",
            "1 while the run waits with work left for an off-peak --window to open",
            m.window_waiting.clone(),
        );
        Self { registry, ..m }
    }

    /// The text a scrape gets (OpenMetrics, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    /// A chunk recorded done with its rows and bytes.
    pub fn chunk_done(&self, object: &str, rows: u64, bytes: u64) {
        self.chunks
            .get_or_create(&chunk_labels(object, "done"))
            .inc();
        self.written(object, rows, bytes);
    }

    pub fn chunk_failed(&self, object: &str) {
        self.chunks
            .get_or_create(&chunk_labels(object, "failed"))
            .inc();
    }

    /// The chunks a backfill run set out to fetch, per object.
    pub fn chunks_planned(&self, per_object: &[(String, u64)]) {
        for (object, n) in per_object {
            let labels = vec![("object", object.clone())];
            self.chunks_planned
                .get_or_create(&labels)
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// Rows and bytes made durable and visible (a sync's committed step).
    pub fn written(&self, object: &str, rows: u64, bytes: u64) {
        let labels = vec![("object", object.to_string())];
        self.rows.get_or_create(&labels).inc_by(rows);
        self.bytes.get_or_create(&labels).inc_by(bytes);
    }

    /// One request answered with `status`, or with none (`None`: timeout, reset).
    pub fn request(&self, kind: &'static str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        self.requests
            .get_or_create(&vec![("kind", kind.to_string()), ("status", status)])
            .inc();
    }

    pub fn retry(&self) {
        self.retries.inc();
    }

    /// Marks a request of `kind` in flight until the guard drops.
    pub fn in_flight(&self, kind: &'static str) -> InFlight {
        let gauge = self
            .in_flight
            .get_or_create_owned(&vec![("kind", kind.to_string())]);
        gauge.inc();
        InFlight(gauge)
    }

    pub fn api_usage(&self, used: u64, max: u64) {
        self.api_used.set(i64::try_from(used).unwrap_or(i64::MAX));
        self.api_max.set(i64::try_from(max).unwrap_or(i64::MAX));
    }

    pub fn rate_limiter_waited(&self, waited: Duration) {
        self.rate_wait.inc_by(waited.as_secs_f64());
    }

    /// Marks the run waiting for an off-peak window until the guard drops, which adds the
    /// wait's length to the counter.
    pub fn waiting_for_window(&self) -> WindowWait<'_> {
        self.window_waiting.set(1);
        WindowWait {
            metrics: self,
            since: Instant::now(),
        }
    }
}

fn chunk_labels(object: &str, state: &str) -> Labels {
    vec![("object", object.to_string()), ("state", state.to_string())]
}

/// A request in flight; dropping it (answered, failed or cancelled) takes it off the gauge.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A wait for an off-peak window; dropping it ends the wait and adds its length to the counter.
pub struct WindowWait<'a> {
    metrics: &'a Metrics,
    since: Instant,
}

impl Drop for WindowWait<'_> {
    fn drop(&mut self) {
        self.metrics.window_waiting.set(0);
        let waited = self.since.elapsed().as_secs_f64();
        self.metrics.window_wait.inc_by(waited);
    }
}

/// The kind of a Salesforce request by its path (salesforce-api.md's endpoints): `token`,
/// `limits`, `describe_global`, `describe`, `query` (a statement's first page, `query` or
/// `queryAll`), `query_more` (a `nextRecordsUrl`), `bulk_create` (a Bulk query job created),
/// `bulk_job` (a job polled, aborted or deleted), `bulk_results` (a job's results page), or
/// `other`.
pub fn request_kind(path: &str) -> &'static str {
    if path.ends_with("/oauth2/token") {
        return "token";
    }
    let Some(rest) = path.strip_prefix("/services/data/") else {
        return "other";
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [_, "limits"] => "limits",
        [_, "sobjects"] => "describe_global",
        [_, "sobjects", _, "describe"] => "describe",
        [_, "query" | "queryAll"] => "query",
        [_, "query" | "queryAll", _] => "query_more",
        [_, "jobs", "query"] => "bulk_create",
        [_, "jobs", "query", _] => "bulk_job",
        [_, "jobs", "query", _, "results"] => "bulk_results",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_kinds_follow_the_salesforce_endpoints() {
        let kinds: Vec<_> = [
            "/services/oauth2/token",
            "/services/data/v62.0/limits",
            "/services/data/v62.0/sobjects",
            "/services/data/v62.0/sobjects/Account/describe",
            "/services/data/v62.0/query",
            "/services/data/v62.0/queryAll",
            "/services/data/v62.0/query/01gxx0000000001-2000",
            "/services/data/v62.0/jobs/query",
            "/services/data/v62.0/jobs/query/750R0000000zlh9IAA",
            "/services/data/v62.0/jobs/query/750R0000000zlh9IAA/results",
            "/services/data/v62.0/sobjects/Account/001",
        ]
        .into_iter()
        .map(request_kind)
        .collect();
        assert_eq!(
            kinds,
            [
                "token",
                "limits",
                "describe_global",
                "describe",
                "query",
                "query",
                "query_more",
                "bulk_create",
                "bulk_job",
                "bulk_results",
                "other"
            ]
        );
    }

    #[test]
    fn the_exposition_names_each_metric_with_its_labels() {
        let m = Metrics::new();
        m.chunk_done("Account", 10, 400);
        m.chunk_failed("Account");
        m.request("query", Some(200));
        m.request("query", None);
        {
            let _a = m.in_flight("query");
            let text = m.encode();
            assert!(text.contains("sfbackfill_requests_in_flight{kind=\"query\"} 1\n"));
        }
        let text = m.encode();
        for line in [
            "sfbackfill_chunks_total{object=\"Account\",state=\"done\"} 1\n",
            "sfbackfill_chunks_total{object=\"Account\",state=\"failed\"} 1\n",
            "sfbackfill_rows_written_total{object=\"Account\"} 10\n",
            "sfbackfill_bytes_written_total{object=\"Account\"} 400\n",
            "sfbackfill_requests_total{kind=\"query\",status=\"200\"} 1\n",
            "sfbackfill_requests_total{kind=\"query\",status=\"error\"} 1\n",
            "sfbackfill_requests_in_flight{kind=\"query\"} 0\n",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
    }
}
