//! An in-process fake Salesforce org over real HTTP, for tests, benches and `sfbackfill demo`.
//!
//! Owns everything the engine's client can meet on the wire, written from
//! `salesforce-api.md` alone: it shares no code with the engine, so it can disagree with it.
//!
//! Layout: [`data`] generates the seeded org, [`soql`] parses and [`exec`] runs queries into
//! frozen snapshots; `server` is the axum app (auth, limits, paging, faults, `/__fake/*`),
//! with `auth` (tokens), `cursors` (query locators), `faults` (injection) and `stats`.
//!
//! Invariants: the same seed, scale and request sequence give the same data, ids and faults;
//! a query locator keeps serving the rows its query matched however the org changes later;
//! nothing here logs a secret (the fake's own credentials are not secrets, but the client's
//! bearer tokens are never logged either).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sfbackfill_fake_org::FakeOrgError> {
//! use sfbackfill_fake_org::{FakeOrg, FakeOrgConfig};
//! let org = FakeOrg::start(FakeOrgConfig::default()).await?;
//! println!("serving {}", org.url());
//! org.shutdown().await;
//! # Ok(()) }
//! ```
mod auth;
mod bulk;
mod cursors;
pub mod data;
pub mod exec;
mod faults;
mod server;
pub mod soql;
mod stats;

pub use bulk::{BulkConfig, BulkFaults, BulkStats};
pub use data::schema::{FieldSpec, FieldType};
pub use faults::FaultSpecError;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which token-endpoint answer the org gives (salesforce-api.md §1.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AuthScenario {
    #[default]
    Ok,
    NoRunAsUser,
    NoApiScope,
    WrongDomain,
    FlowDisabled,
}

/// Faults to inject into data requests (not the token endpoint unless said); all off by default.
/// Rates are shares of data requests in `0.0..=1.0`, drawn from the seeded generator.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Added before every response.
    pub latency: Option<Duration>,
    /// A random extra `0..jitter` on top of `latency`.
    pub jitter: Option<Duration>,
    /// `503 SERVER_UNAVAILABLE` (`Server too busy`).
    pub error_503_rate: f64,
    /// The `Retry-After` seconds sent with those 503s; `None` sends no header.
    pub retry_after_secs: Option<u64>,
    /// `500 UNKNOWN_EXCEPTION`.
    pub error_500_rate: f64,
    /// `200` whose body is cut off mid-JSON (the transfer itself ends cleanly).
    pub truncate_rate: f64,
    /// The connection is dropped without a response.
    pub reset_rate: f64,
    /// `403 REQUEST_LIMIT_EXCEEDED` `ConcurrentPerOrgLongTxn Limit exceeded.`
    pub concurrent_limit_rate: f64,
    /// Revoke every issued token after this many data requests, once per setting.
    pub revoke_after: Option<u64>,
    /// Modify a few rows (cursor fields moved to now) every this many data requests.
    pub modify_every: Option<u64>,
    /// `400 QUERY_TIMEOUT` for a query that matches more than this many rows.
    pub query_timeout_over: Option<usize>,
    /// Query locators expire this long after they were last used (`INVALID_QUERY_LOCATOR`).
    pub cursor_ttl: Option<Duration>,
    /// Every this many data requests, every open query locator is invalidated before the
    /// request is answered, as after org maintenance (`INVALID_QUERY_LOCATOR` from then on).
    pub invalidate_cursors_every: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct FakeOrgConfig {
    pub client_id: String,
    pub client_secret: String,
    pub auth_scenario: AuthScenario,
    pub faults: Faults,
    pub seed: u64,
    /// Multiplies the seeded rows (×10, ×100 for benches).
    pub scale: u32,
    /// `DailyApiRequests.Max`; over it every data request is `403 TotalRequests Limit exceeded.`
    pub daily_api_max: u64,
    /// Requests already used today when the org starts (to test the usage guard).
    pub daily_api_used: u64,
    /// More data requests in flight than this get `403 ConcurrentPerOrgLongTxn`; `None`: no limit.
    pub concurrent_limit: Option<usize>,
    /// The pre-56.0 rule: at most 10 open cursors per user, the oldest silently killed.
    pub legacy_cursor_limit: bool,
    /// An org (or a stand-in) whose SOQL runs no aggregate (`GROUP BY`): every one is a
    /// `400 MALFORMED_QUERY`, so a client's fallbacks for optional counts can be tested.
    pub refuse_aggregates: bool,
    /// Pages of this object are capped at this many rows whatever the batch size ("wide" rows).
    pub wide_page_size: Option<usize>,
    /// Tokens expire this long after issue; `None`: never.
    pub token_lifetime: Option<Duration>,
    /// The Run-As user's zone, used by `convertTimezone()`.
    pub user_time_zone: chrono_tz::Tz,
    /// Bulk API 2.0 query jobs: how long they take, and their faults.
    pub bulk: BulkConfig,
    /// `0` picks a free port.
    pub port: u16,
}

impl Default for FakeOrgConfig {
    fn default() -> Self {
        Self {
            client_id: "fake-client-id".into(),
            client_secret: "fake-client-secret".into(),
            auth_scenario: AuthScenario::Ok,
            faults: Faults::default(),
            seed: 42,
            scale: 1,
            daily_api_max: 100_000,
            daily_api_used: 0,
            concurrent_limit: None,
            legacy_cursor_limit: false,
            refuse_aggregates: false,
            wide_page_size: None,
            token_lifetime: None,
            user_time_zone: chrono_tz::America::Los_Angeles,
            bulk: BulkConfig::default(),
            port: 0,
        }
    }
}

/// What the org has served. `by_kind` keys: `token`, `versions`, `describe_global`,
/// `describe`, `query` (a first page of `query` or `queryAll`), `query_more` (a
/// `nextRecordsUrl` page), `limits`, `bulk_create` (a Bulk query job created), `bulk_job`
/// (a job polled, aborted or deleted), `bulk_results` (a results page), `other`. `requests` counts every request but `/__fake/*`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub requests: u64,
    pub by_kind: BTreeMap<String, u64>,
    /// Of `by_kind`, the requests that carried `Sforce-Query-Options: batchSize=N` (any `N`),
    /// under the same keys; a kind none carried is absent.
    pub with_batch_size: BTreeMap<String, u64>,
    pub by_status: BTreeMap<u16, u64>,
    pub peak_in_flight: u64,
    pub peak_per_second: u64,
    pub records_served: u64,
    /// Bulk API 2.0 query jobs: created, deleted, aborted, open, results pages served and cut.
    pub bulk: BulkStats,
}

/// Why the fake org could not start.
#[derive(Debug, thiserror::Error)]
#[error("fake org: {0}")]
pub struct FakeOrgError(String);

/// A running fake org. Created by [`FakeOrg::start`]; serves until [`FakeOrg::shutdown`] or
/// until dropped (dropping asks the server to stop without waiting for it).
pub struct FakeOrg {
    shared: Arc<server::Shared>,
    url: String,
    /// Tells the server to stop accepting and finish open requests.
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// How long `shutdown` lets open connections finish before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl FakeOrg {
    /// Generates the org's data, binds `127.0.0.1:port` (`0`: a free port) and serves on
    /// the current tokio runtime.
    ///
    /// # Errors
    /// The port cannot be bound, or the data generator failed.
    pub async fn start(config: FakeOrgConfig) -> Result<FakeOrg, FakeOrgError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|e| {
                FakeOrgError(format!("cannot listen on 127.0.0.1:{}: {e}", config.port))
            })?;
        let port = listener
            .local_addr()
            .map_err(|e| FakeOrgError(format!("no local address: {e}")))?
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let org = generate(config.seed, config.scale, config.user_time_zone).await?;
        let shared = Arc::new(server::Shared::new(config, url.clone(), org));
        let app = server::router(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        // Small responses must not wait for delayed ACKs (Nagle) on loopback.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let serving = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serving.await {
                tracing::error!("fake org server stopped: {e}");
            }
        });
        Ok(FakeOrg {
            shared,
            url,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`: the token endpoint's host and the `instance_url` it hands out.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Forgets the requests counted so far.
    pub fn reset_stats(&self) {
        self.shared.stats.reset();
    }

    /// Requests being answered right now (inspection endpoints excluded).
    pub fn in_flight(&self) -> u64 {
        self.shared.stats.in_flight()
    }

    /// Daily API requests used so far, as `Sforce-Limit-Info` reports them.
    pub fn daily_api_used(&self) -> u64 {
        self.shared.api_used.load(Ordering::SeqCst)
    }

    /// Sets the daily usage counter, e.g. to just below the limit.
    pub fn set_daily_api_used(&self, used: u64) {
        self.shared.api_used.store(used, Ordering::SeqCst);
    }

    /// Query locators alive now (finished ones linger briefly for re-reads).
    pub fn open_cursors(&self) -> usize {
        self.shared.cursors.len()
    }

    /// Replaces the faults from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.fault_state().set(faults);
    }

    /// Replaces the Bulk faults from now on (jobs created before keep their fate).
    pub fn set_bulk_faults(&self, faults: BulkFaults) {
        *self.shared.bulk_faults() = faults;
    }

    /// Bulk API 2.0 job counters.
    pub fn bulk_stats(&self) -> BulkStats {
        self.shared.bulk.stats()
    }

    /// Deletes every Bulk job, as their 7-day expiry or another user would: a reader's next
    /// request for one gets `404 NOT_FOUND`. Returns how many there were.
    pub fn delete_bulk_jobs(&self) -> usize {
        self.shared.bulk.delete_all()
    }

    /// Invalidates every open query locator, as org maintenance does: each answers
    /// `400 INVALID_QUERY_LOCATOR` from then on (salesforce-api.md §4.4). Returns how many
    /// were open.
    pub fn invalidate_cursors(&self) -> usize {
        self.shared.cursors.invalidate_all()
    }

    /// Revokes every issued token (the next data request with one gets `401 INVALID_SESSION_ID`).
    pub fn revoke_tokens(&self) {
        self.shared.tokens.revoke_all();
    }

    /// Modifies `count` rows now, as a user would between runs; returns how many.
    pub fn modify_rows(&self, count: usize) -> usize {
        self.shared.modify_rows(count)
    }

    /// Hides `field` of `object` from now on, as an admin who takes away the Run-As user's
    /// field-level security, or deletes the field, does: describe leaves it out, `FIELDS()`
    /// skips it, and a query that names it gets `400 INVALID_FIELD` (salesforce-api.md §5).
    /// Query locators opened before keep serving it.
    ///
    /// # Errors
    /// An unknown object or field, or `Id`.
    pub fn hide_field(&self, object: &str, field: &str) -> Result<(), FakeOrgError> {
        self.shared
            .change_org(|org| org.hide_field(object, field))
            .map_err(FakeOrgError)
    }

    /// Shows a hidden field again, with the values it had.
    ///
    /// # Errors
    /// An unknown object or field.
    pub fn show_field(&self, object: &str, field: &str) -> Result<(), FakeOrgError> {
        self.shared
            .change_org(|org| org.show_field(object, field))
            .map_err(FakeOrgError)
    }

    /// Adds a field to `object` from now on: describe lists it, queries and `FIELDS()` return
    /// it, and every row, old or new, has a value (or a null, `spec.null_pct` percent of them).
    /// The name of an existing field, hidden or not, redefines it in place, as a field deleted
    /// and created again, or whose type was changed in Setup, would be.
    ///
    /// # Errors
    /// An unknown object; a name that is not an API name; an `id`, `address` or `location`
    /// field; a redefinition of `Id` or of a compound or its components.
    pub fn add_field(&self, object: &str, spec: FieldSpec) -> Result<(), FakeOrgError> {
        self.shared
            .change_org(|org| org.add_field(object, &spec))
            .map_err(FakeOrgError)
    }

    /// Stops accepting, lets open requests finish (a few seconds at most), then returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for FakeOrg {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Builds the org on a blocking thread: at large scales generation takes a while.
async fn generate(seed: u64, scale: u32, zone: chrono_tz::Tz) -> Result<data::Org, FakeOrgError> {
    tokio::task::spawn_blocking(move || {
        let mut org = data::Org::generate(seed, scale);
        org.user_time_zone = zone;
        org
    })
    .await
    .map_err(|e| {
        FakeOrgError(format!(
            "cannot generate the data (seed {seed}, scale {scale}): {e}"
        ))
    })
}
