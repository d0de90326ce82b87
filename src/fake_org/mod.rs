//! STUB (being replaced by its owner): an in-process fake Salesforce org over real HTTP.
pub mod data;
pub mod exec;
pub mod soql;

use std::collections::BTreeMap;
use std::time::Duration;

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
    /// Pages of this object are capped at this many rows whatever the batch size ("wide" rows).
    pub wide_page_size: Option<usize>,
    /// Tokens expire this long after issue; `None`: never.
    pub token_lifetime: Option<Duration>,
    /// The Run-As user's zone, used by `convertTimezone()`.
    pub user_time_zone: chrono_tz::Tz,
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
            wide_page_size: None,
            token_lifetime: None,
            user_time_zone: chrono_tz::America::Los_Angeles,
            port: 0,
        }
    }
}

/// What the org has served. `by_kind` keys: `token`, `versions`, `describe_global`,
/// `describe`, `query` (a first page of `query` or `queryAll`), `query_more` (a
/// `nextRecordsUrl` page), `limits`, `other`. `requests` counts every request but `/__fake/*`.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub requests: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub by_status: BTreeMap<u16, u64>,
    pub peak_in_flight: u64,
    pub peak_per_second: u64,
    pub records_served: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("fake org: {0}")]
pub struct FakeOrgError(String);

pub struct FakeOrg {}

impl FakeOrg {
    pub async fn start(_config: FakeOrgConfig) -> Result<FakeOrg, FakeOrgError> {
        unimplemented!()
    }
    pub fn url(&self) -> String {
        unimplemented!()
    }
    pub fn stats(&self) -> Stats {
        unimplemented!()
    }
    /// Replaces the faults from now on.
    pub fn set_faults(&self, _faults: Faults) {
        unimplemented!()
    }
    /// Revokes every issued token (the next data request with one gets `401 INVALID_SESSION_ID`).
    pub fn revoke_tokens(&self) {
        unimplemented!()
    }
    /// Modifies `count` rows now, as a user would between runs; returns how many.
    pub fn modify_rows(&self, _count: usize) -> usize {
        unimplemented!()
    }
    pub async fn shutdown(self) {
        unimplemented!()
    }
}
