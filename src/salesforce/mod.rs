//! The Salesforce client: the only code that speaks HTTP to the org.
//!
//! Owns sign-in (OAuth 2.0 client credentials against the My Domain host), the data calls the
//! engine needs (describeGlobal, describe, one query page, one JSON query, Bulk API 2.0 query
//! jobs in [`bulk`]), and everything that
//! keeps them polite and robust: the rate limiter and in-flight bound ([`gate`]), retries with
//! back-off ([`retry`]), renewal of an expired token ([`auth`]), and the daily-API-usage guard
//! ([`limits`]). Failures are classified in [`error`]. It does not own paging decisions (the
//! caller follows `nextRecordsUrl`) nor decoding (pages are returned as bytes).
//!
//! Invariants:
//! * The client secret and the access token are held only as [`Secret`]s; they go on the wire
//!   (form body, `Authorization` header marked sensitive) and nowhere else: not in errors, log
//!   lines or `Debug` output.
//! * Every request, retries and token requests included, passes the [`gate::Gate`]: at most
//!   `rate_limit` per `rate_interval` and `concurrency` in flight.
//! * No data request is sent once the org's usage is at `max_api_usage_pct` or Salesforce said
//!   the daily allocation is spent.
//! * The token is only ever sent to the instance URL the sign-in named (or the configured
//!   host), over https unless the host is loopback.
//!
//! ```no_run
//! # async fn demo(config: sfbackfill::salesforce::ClientConfig) -> Result<(), sfbackfill::salesforce::FetchError> {
//! use sfbackfill::salesforce::{QueryPage, SalesforceClient};
//! config.validate()?;
//! let client = SalesforceClient::connect(config).await?;
//! let page = client
//!     .query_page(&QueryPage::First { soql: "SELECT Id FROM Account".into(), include_deleted: false })
//!     .await?;
//! # let _ = page; Ok(()) }
//! ```

mod auth;
pub mod bulk;
pub mod describe;
mod error;
mod gate;
mod limits;
mod retry;
pub mod select;
pub mod soql;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use url::{Host, Url};

use crate::salesforce::describe::{DescribeGlobal, GlobalObject, ObjectDescribe};
use crate::secret::Secret;

pub use error::{FetchError, classify_api_error, classify_token_error};
pub use limits::parse_limit_info;
pub use retry::{Backoff, MAX_BACKOFF};

/// The response header carrying the org's daily usage (salesforce-api.md §6.2).
const LIMIT_INFO: &str = "sforce-limit-info";

/// The request header that asks for a page size (salesforce-api.md §4.3).
const QUERY_OPTIONS: &str = "sforce-query-options";

/// How long an idle pooled connection is kept: Salesforce's edge closes idle connections
/// after about two minutes, so reuse within a run but do not outlive that.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Sign-in attempts when the host cannot be reached at all: a mistyped host should fail in
/// seconds, not after the full back-off schedule of a data call.
const SIGN_IN_CONNECT_ATTEMPTS: u32 = 3;

/// Hosts that refuse the client credentials grant (salesforce-api.md §1.1).
const NOT_MY_DOMAIN: [&str; 2] = ["login.salesforce.com", "test.salesforce.com"];

/// Everything the client needs; built by `app` from validated settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub instance_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub api_version: String,
    pub concurrency: usize,
    pub rate_limit: u32,
    pub rate_interval: Duration,
    pub request_timeout: Duration,
    pub max_api_usage_pct: f64,
    pub max_attempts: u32,
    pub batch_size: Option<u32>,
}

impl ClientConfig {
    /// Checks the URL, credentials and version before any request (exit 2 errors).
    ///
    /// # Errors
    /// A URL that does not parse, is not https to a non-loopback host, or is a host that
    /// refuses the client credentials flow (`login.salesforce.com`, ...); an empty client id
    /// or secret; a version not of the form `vNN.N`.
    pub fn validate(&self) -> Result<(), FetchError> {
        login_base(&self.instance_url)?;
        if self.client_id.trim().is_empty() {
            return Err(FetchError::MissingClientId);
        }
        if self.client_secret.is_empty() {
            return Err(FetchError::MissingClientSecret);
        }
        if !is_api_version(&self.api_version) {
            return Err(FetchError::BadApiVersion {
                value: self.api_version.clone(),
            });
        }
        Ok(())
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            first: self.rate_interval,
            max_attempts: self.max_attempts.max(1),
        }
    }
}

/// `vNN.N`: a `v`, digits, a dot, digits.
fn is_api_version(value: &str) -> bool {
    let Some((major, minor)) = value.strip_prefix('v').and_then(|v| v.split_once('.')) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// The origin (scheme, host, port) of a configured instance URL, checked for sign-in.
fn login_base(value: &str) -> Result<Url, FetchError> {
    let invalid = |reason: &str| FetchError::InvalidUrl {
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let url = Url::parse(value.trim()).map_err(|e| invalid(&e.to_string()))?;
    let host = url.host().ok_or_else(|| invalid("it names no host"))?;
    if let Host::Domain(name) = &host {
        let name = name.to_ascii_lowercase();
        if NOT_MY_DOMAIN.contains(&name.as_str())
            || name.ends_with(".salesforce-setup.com")
            || name.ends_with(".lightning.force.com")
        {
            return Err(FetchError::NotMyDomain { host: name });
        }
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => {
            return Err(FetchError::InsecureUrl {
                url: value.to_string(),
            });
        }
        other => return Err(invalid(&format!("scheme `{other}` is not https"))),
    }
    url.join("/").map_err(|e| invalid(&e.to_string()))
}

/// 127.0.0.0/8, `::1` and `localhost`: the only hosts plain http is allowed to.
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// The org's daily API usage, from `Sforce-Limit-Info` or `/limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

impl ApiUsage {
    pub fn share_pct(&self) -> f64 {
        if self.max == 0 {
            0.0
        } else {
            self.used as f64 * 100.0 / self.max as f64
        }
    }
}

/// One query page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryPage {
    First { soql: String, include_deleted: bool },
    Next { url: String },
}

/// Requests a client has sent, by kind; retries count as requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Token requests (sign-in and renewals).
    pub token: u64,
    /// Data requests (limits, describe, query pages).
    pub data: u64,
    /// Of all requests, those that repeated a failed attempt after a back-off.
    pub retries: u64,
    /// Token renewals after `INVALID_SESSION_ID`.
    pub renewals: u64,
}

/// The counters behind [`RequestCounts`].
#[derive(Debug, Default)]
struct Counters {
    token: AtomicU64,
    data: AtomicU64,
    retries: AtomicU64,
    renewals: AtomicU64,
}

/// The kind of request, for the counters and log lines: token requests are `POST`s to the
/// login host, data requests `GET`s to the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Token,
    Data,
}

/// One data request as sent (and sent again on a retry).
struct DataCall {
    method: reqwest::Method,
    url: Url,
    headers: HeaderMap,
    json: Option<serde_json::Value>,
}

/// A signed-in client; cheap to clone, shared by all workers.
#[derive(Clone)]
pub struct SalesforceClient {
    inner: Arc<Inner>,
}

/// The shared state of a client.
struct Inner {
    config: ClientConfig,
    /// Built once: one connection pool for all workers (http/2 where the server offers it).
    http: reqwest::Client,
    /// The configured host's origin: where the token is requested.
    login: Url,
    /// The token answer's `instance_url` (or `login`): the base of all data calls.
    instance: Url,
    /// `instance` as the text `instance_url()` returns, without a trailing slash.
    instance_text: String,
    token: auth::TokenCell,
    gate: gate::Gate,
    usage: limits::UsageMeter,
    /// `DailyBulkV2QueryJobs` as `/limits` gave it, plus the jobs this client created since.
    bulk_jobs: std::sync::Mutex<Option<ApiUsage>>,
    counters: Counters,
}

impl fmt::Debug for SalesforceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SalesforceClient")
            .field("instance_url", &self.inner.instance_text)
            .field("config", &self.inner.config)
            .field("usage", &self.inner.usage.latest())
            .finish_non_exhaustive()
    }
}

impl SalesforceClient {
    /// Signs in and reads the org's API usage from `GET /limits`.
    ///
    /// A `403`/`404` on `/limits` (the Run-As user lacks "View Setup and Configuration") does
    /// not fail: usage then comes from the `Sforce-Limit-Info` of the first data response.
    ///
    /// # Errors
    /// Any [`ClientConfig::validate`] error; a setup error of the token endpoint (wrong key or
    /// secret, no Run-As user, no `api` scope, not the My Domain host, ...); a token Salesforce
    /// refuses at once (`SessionRejected`); the org unreachable after the retries.
    pub async fn connect(config: ClientConfig) -> Result<Self, FetchError> {
        config.validate()?;
        let login = login_base(&config.instance_url)?;
        let http = build_http(&config)?;
        let gate = gate::Gate::new(config.rate_limit, config.rate_interval, config.concurrency);
        let usage = limits::UsageMeter::new(config.max_api_usage_pct);
        let mut client = Inner {
            instance: login.clone(),
            instance_text: String::new(),
            login,
            http,
            token: auth::TokenCell::new(Secret::new(String::new())),
            gate,
            usage,
            bulk_jobs: std::sync::Mutex::new(None),
            counters: Counters::default(),
            config,
        };
        let grant = client.request_token(true).await?;
        client.instance = match &grant.instance_url {
            Some(url) => data_base(url)?,
            None => client.login.clone(),
        };
        client.instance_text = client.instance.as_str().trim_end_matches('/').to_string();
        client.token = auth::TokenCell::new(grant.access);
        let client = Self {
            inner: Arc::new(client),
        };
        client.read_limits().await?;
        tracing::debug!(
            instance = %client.inner.instance_text,
            usage = ?client.usage(),
            "signed in"
        );
        Ok(client)
    }

    /// The base URL of data calls, as the sign-in answer named it.
    pub fn instance_url(&self) -> &str {
        &self.inner.instance_text
    }

    /// The latest daily-usage reading, if Salesforce has given one.
    pub fn usage(&self) -> Option<ApiUsage> {
        self.inner.usage.latest()
    }

    /// What this client has sent so far.
    pub fn request_counts(&self) -> RequestCounts {
        let c = &self.inner.counters;
        RequestCounts {
            token: c.token.load(Ordering::Relaxed),
            data: c.data.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            renewals: c.renewals.load(Ordering::Relaxed),
        }
    }

    /// The org's objects (`GET /sobjects`).
    ///
    /// # Errors
    /// Any data-call error after retries (see [`FetchError`]).
    pub async fn describe_global(&self) -> Result<Vec<GlobalObject>, FetchError> {
        let url = self.inner.data_url(&["sobjects"]);
        let global: DescribeGlobal = self.inner.get_json(&url, "describeGlobal answer").await?;
        Ok(global.sobjects)
    }

    /// One object's describe (`GET /sobjects/{object}/describe`).
    ///
    /// # Errors
    /// `UnknownObject` (exit 2, with the permission-set advice) when the object does not exist
    /// or the Run-As user cannot see it; any other data-call error after retries.
    pub async fn describe(&self, object: &str) -> Result<ObjectDescribe, FetchError> {
        let url = self.inner.data_url(&["sobjects", object, "describe"]);
        match self.inner.get_json(&url, "describe answer").await {
            Err(FetchError::NotFound { .. } | FetchError::InvalidType { .. }) => {
                Err(FetchError::UnknownObject {
                    object: object.to_string(),
                })
            }
            other => other,
        }
    }

    /// One page of a query, as the raw JSON bytes Salesforce sent.
    ///
    /// `First` runs the statement (`/query`, or `/queryAll` to include deleted rows); `Next`
    /// follows an opaque `nextRecordsUrl`. Both send the configured `batchSize`: it is a
    /// header of each page request (salesforce-api.md §4.1), so a `Next` without it would
    /// leave that page's size to the org. A body cut off mid-JSON is returned as is: the
    /// decoder finds it and the caller asks again.
    ///
    /// # Errors
    /// `ExpiredCursor` for a dead `nextRecordsUrl`, `QueryTimeout`, `InvalidField`,
    /// `MalformedQuery`, the usage guard, and any other data-call error after retries.
    pub async fn query_page(&self, page: &QueryPage) -> Result<Bytes, FetchError> {
        let inner = &self.inner;
        let url = match page {
            QueryPage::First {
                soql,
                include_deleted,
            } => {
                let resource = if *include_deleted {
                    "queryAll"
                } else {
                    "query"
                };
                inner.query_url(resource, soql)
            }
            QueryPage::Next { url } => inner.cursor_url(url)?,
        };
        let mut headers = HeaderMap::new();
        if let Some(n) = inner.config.batch_size {
            let value = HeaderValue::from_str(&format!("batchSize={n}"))
                .expect("digits are a valid header value");
            headers.insert(QUERY_OPTIONS, value);
        }
        inner.get(&url, headers).await
    }

    /// Runs a statement whose answer is one page (`COUNT()`, aggregates) and returns its JSON.
    ///
    /// # Errors
    /// As [`SalesforceClient::query_page`]; a body that is not JSON after the retries.
    pub async fn query_json(&self, soql: &str) -> Result<serde_json::Value, FetchError> {
        self.query_json_in(soql, false).await
    }

    /// [`SalesforceClient::query_json`] through `queryAll` when `include_deleted`, so that
    /// soft-deleted rows count too.
    ///
    /// # Errors
    /// As [`SalesforceClient::query_json`].
    pub async fn query_json_in(
        &self,
        soql: &str,
        include_deleted: bool,
    ) -> Result<serde_json::Value, FetchError> {
        let resource = if include_deleted { "queryAll" } else { "query" };
        let url = self.inner.query_url(resource, soql);
        self.inner.get_json(&url, "query answer").await
    }

    /// Reads `/limits` into the usage meter, tolerating a Run-As user who may not see it.
    async fn read_limits(&self) -> Result<(), FetchError> {
        let url = self.inner.data_url(&["limits"]);
        match self
            .inner
            .get_json::<serde_json::Value>(&url, "limits answer")
            .await
        {
            Ok(body) => {
                if let Some(usage) = limits::parse_limits(&body) {
                    self.inner.usage.record(usage);
                }
                *self
                    .inner
                    .bulk_jobs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = limits::parse_bulk_jobs(&body);
                Ok(())
            }
            Err(
                e @ (FetchError::NotFound { .. }
                | FetchError::AccessDenied { .. }
                | FetchError::Api { status: 403, .. }),
            ) => {
                tracing::debug!("cannot read /limits ({e}); usage will come from response headers");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Builds the one HTTP client: rustls with the ring provider, gzip, pooled connections,
/// http/2 where offered, and the per-request timeout.
fn build_http(config: &ClientConfig) -> Result<reqwest::Client, FetchError> {
    // Installing twice (several clients in one process) is fine: the first provider stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("sfbackfill/", env!("CARGO_PKG_VERSION")))
        .timeout(config.request_timeout)
        .connect_timeout(config.request_timeout.min(Duration::from_secs(30)))
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(config.concurrency.max(1))
        .gzip(true)
        .build()
        .map_err(|e| FetchError::Setup {
            reason: root_cause(&e),
        })
}

/// The base of data calls from the sign-in's `instance_url`, which must be https (or a
/// loopback host) since the token goes there.
fn data_base(value: &str) -> Result<Url, FetchError> {
    let insecure = || FetchError::InsecureInstance {
        url: value.to_string(),
    };
    let url = Url::parse(value.trim()).map_err(|_| insecure())?;
    let host = url.host().ok_or_else(insecure)?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        _ => return Err(insecure()),
    }
    url.join("/").map_err(|_| insecure())
}

/// The innermost error's message: reqwest's own text names the URL (SOQL included), while the
/// root cause says what actually happened ("connection reset", "certificate expired").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    error::excerpt(&cause.to_string())
}

/// Percent-encodes a query-string value, spaces as `%20`: `+` means a space only to some
/// decoders, and a literal `+` in a date-time offset must arrive as `+` (salesforce-api.md §4.5).
fn encode_query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl Inner {
    /// `instance/services/data/vXX.X/<segments...>`, each segment percent-encoded.
    fn data_url(&self, segments: &[&str]) -> Url {
        let mut url = self.instance.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has a path")
            .pop_if_empty()
            .extend(["services", "data", self.config.api_version.as_str()])
            .extend(segments);
        url
    }

    /// `.../query?q=<soql>` (or `queryAll`).
    fn query_url(&self, resource: &str, soql: &str) -> Url {
        let mut url = self.data_url(&[resource]);
        url.set_query(Some(&format!("q={}", encode_query_value(soql))));
        url
    }

    /// The absolute URL of a `nextRecordsUrl`, which must stay on the instance's origin (the
    /// token goes with it).
    fn cursor_url(&self, next: &str) -> Result<Url, FetchError> {
        let foreign = || FetchError::ForeignCursor {
            url: next.to_string(),
        };
        let url = self.instance.join(next).map_err(|_| foreign())?;
        if url.origin() != self.instance.origin() {
            return Err(foreign());
        }
        Ok(url)
    }

    /// A data `GET` whose `200` body is JSON of type `T`; a body that does not parse (cut off)
    /// is fetched again like any transient failure.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
        what: &'static str,
    ) -> Result<T, FetchError> {
        self.with_session(url, HeaderMap::new(), |body| json_body(&body, what))
            .await
    }

    /// A data `GET` returning the `200` body as is.
    async fn get(&self, url: &Url, headers: HeaderMap) -> Result<Bytes, FetchError> {
        self.with_session(url, headers, Ok).await
    }

    /// Sends a data `GET` until it succeeds (see [`Inner::call`]); `read` turns a `200` body
    /// into the result, its error counting as a failed attempt.
    async fn with_session<T>(
        &self,
        url: &Url,
        headers: HeaderMap,
        read: impl Fn(Bytes) -> Result<T, FetchError>,
    ) -> Result<T, FetchError> {
        let call = DataCall {
            method: reqwest::Method::GET,
            url: url.clone(),
            headers,
            json: None,
        };
        self.call(&call, |_, body| read(body)).await
    }

    /// Sends a data request until it succeeds, renewing the token once on
    /// `INVALID_SESSION_ID` and backing off on transient failures.
    ///
    /// `read` turns a `2xx` answer (headers and body) into the result; its error counts as a
    /// failed attempt.
    async fn call<T>(
        &self,
        call: &DataCall,
        read: impl Fn(&HeaderMap, Bytes) -> Result<T, FetchError>,
    ) -> Result<T, FetchError> {
        let url = &call.url;
        let mut retry = retry::RetryState::new(self.config.backoff());
        let mut renewals = 0;
        loop {
            self.usage.check()?;
            let token = self.token.current();
            let outcome = self
                .send_data(call, &token.access)
                .await
                .and_then(|(headers, body)| read(&headers, body));
            let error = match outcome {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            match error {
                FetchError::SessionExpired { message } if refuses_token(renewals, &message) => {
                    return Err(FetchError::SessionRejected { message });
                }
                FetchError::SessionExpired { .. } => {
                    renewals += 1;
                    self.renew(token.generation).await?;
                }
                FetchError::DailyLimit { ref message } => {
                    self.usage.mark_spent(message);
                    return Err(error);
                }
                e => match retry.next_delay(&e) {
                    Some(delay) => self.back_off(url, &e, delay, retry.failures()).await,
                    None => return Err(e),
                },
            }
        }
    }

    /// Replaces the token that had `generation`, unless another worker already did.
    async fn renew(&self, generation: u64) -> Result<(), FetchError> {
        let sent = self
            .token
            .renew(generation, || async {
                Ok(self.request_token(false).await?.access)
            })
            .await?;
        if sent {
            self.counters.renewals.fetch_add(1, Ordering::Relaxed);
            tracing::info!("the access token expired or was revoked; signed in again");
        }
        Ok(())
    }

    async fn back_off(&self, url: &Url, error: &FetchError, delay: Duration, failures: u32) {
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        crate::metrics::global().retry();
        tracing::info!(
            path = url.path(),
            attempt = failures + 1,
            "{error}; trying again in {:.1}s",
            delay.as_secs_f64()
        );
        tokio::time::sleep(delay).await;
    }

    /// One data request: through the gate, with the token, reading the usage header.
    async fn send_data(
        &self,
        call: &DataCall,
        token: &Secret,
    ) -> Result<(HeaderMap, Bytes), FetchError> {
        let url = &call.url;
        let mut request = self
            .http
            .request(call.method.clone(), url.clone())
            .headers(call.headers.clone())
            .bearer_auth(token.expose());
        if let Some(json) = &call.json {
            request = request.json(json);
        }
        let (status, response_headers, body) =
            self.send(Kind::Data, &call.method, url, request).await?;
        if let Some(usage) = response_headers
            .get(LIMIT_INFO)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_limit_info)
        {
            self.usage.record(usage);
        }
        if (200..300).contains(&status) {
            return Ok((response_headers, body));
        }
        Err(classify_api_error(
            status,
            &body,
            url.path(),
            retry_after(&response_headers),
        ))
    }

    /// Requests a token, retrying transient failures. On the `first` sign-in, a host that
    /// cannot be reached at all gets [`SIGN_IN_CONNECT_ATTEMPTS`], not the full schedule.
    async fn request_token(&self, first: bool) -> Result<auth::Grant, FetchError> {
        let url = self
            .login
            .join(auth::TOKEN_PATH)
            .expect("a fixed path joins");
        let mut retry = retry::RetryState::new(self.config.backoff());
        loop {
            let error = match self.send_token(&url).await {
                Ok(grant) => return Ok(grant),
                Err(e) => e,
            };
            let unreachable = matches!(error, FetchError::Connection { .. })
                && retry.failures() + 1 >= SIGN_IN_CONNECT_ATTEMPTS;
            if first && unreachable {
                return Err(error);
            }
            match retry.next_delay(&error) {
                Some(delay) => self.back_off(&url, &error, delay, retry.failures()).await,
                None => return Err(error),
            }
        }
    }

    async fn send_token(&self, url: &Url) -> Result<auth::Grant, FetchError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.config.client_id.trim()),
            ("client_secret", self.config.client_secret.expose().trim()),
        ];
        let request = self.http.post(url.clone()).form(&form);
        let (status, headers, body) = self
            .send(Kind::Token, &reqwest::Method::POST, url, request)
            .await?;
        if status == 200 {
            return auth::parse_grant(&body);
        }
        Err(classify_token_error(
            status,
            &body,
            url.as_str(),
            self.login.host_str().unwrap_or_default(),
            retry_after(&headers),
        ))
    }

    /// Sends one request through the gate and reads its whole body while holding the slot.
    async fn send(
        &self,
        kind: Kind,
        method: &reqwest::Method,
        url: &Url,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, HeaderMap, Bytes), FetchError> {
        let _slot = self.gate.enter().await;
        let counter = match kind {
            Kind::Token => &self.counters.token,
            Kind::Data => &self.counters.data,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("{method} {}", loggable(url));
        let metrics = crate::metrics::global();
        let metrics_kind = crate::metrics::request_kind(url.path());
        let answered = async {
            let _in_flight = metrics.in_flight(metrics_kind);
            let response = request.send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok((status, headers, body))
        }
        .await;
        metrics.request(metrics_kind, answered.as_ref().ok().map(|(s, _, _)| *s));
        let (status, headers, body) = answered.map_err(|e| self.transport_error(url, &e))?;
        tracing::debug!(status, bytes = body.len(), "answer from {}", url.path());
        Ok((status, headers, body))
    }

    fn transport_error(&self, url: &Url, e: &reqwest::Error) -> FetchError {
        let path = url.path().to_string();
        if e.is_timeout() {
            FetchError::Timeout {
                path,
                secs: self.config.request_timeout.as_secs(),
            }
        } else if e.is_builder() {
            FetchError::Setup {
                reason: root_cause(e),
            }
        } else {
            FetchError::Connection {
                path,
                reason: root_cause(e),
            }
        }
    }
}

/// A `2xx` body read as `T`; a body that is not (cut off, an edge's page) is a
/// [`FetchError::BadBody`], which is retried.
fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &'static str,
) -> Result<T, FetchError> {
    serde_json::from_slice(body).map_err(|e| FetchError::BadBody {
        what,
        reason: auth::json_error_shape(&e),
    })
}

/// A URL as logged: path and query (the SOQL is not secret), never userinfo.
fn loggable(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{}", url.path(), q),
        None => url.path().to_string(),
    }
}

/// Renewals of the token for one request before a `401` means the org refuses our tokens:
/// a token revoked again between its issue and its first use (an admin revoking sessions
/// twice) is renewed again, a token that is never accepted is not renewed forever.
const MAX_RENEWALS: u32 = 3;

/// Whether a `401` after `renewals` fresh tokens means Salesforce refuses them for good: the
/// Run-As user lacks API access (salesforce-api.md §1.5 wording), or renewing did not help.
fn refuses_token(renewals: u32, message: &str) -> bool {
    renewals >= MAX_RENEWALS
        || (renewals > 0 && message.contains("not valid for use with the REST API"))
}

/// `Retry-After` in seconds, if the answer carried one: a number of seconds, or an HTTP date
/// (RFC 9110 §10.2.3) counted from now, a date in the past meaning now.
fn retry_after(headers: &HeaderMap) -> Option<u64> {
    retry_after_at(headers, chrono::Utc::now())
}

fn retry_after_at(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse() {
        return Some(seconds);
    }
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    Some((at.with_timezone(&chrono::Utc) - now).num_seconds().max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ExitKind, UserFacing};

    fn config(url: &str) -> ClientConfig {
        ClientConfig {
            instance_url: url.into(),
            client_id: "id".into(),
            client_secret: Secret::new("s3cr3t-value"),
            api_version: "v62.0".into(),
            concurrency: 4,
            rate_limit: 5,
            rate_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(60),
            max_api_usage_pct: 75.0,
            max_attempts: 6,
            batch_size: None,
        }
    }

    fn refused(cfg: &ClientConfig) -> String {
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.exit_kind(), ExitKind::Usage, "{e}");
        format!("{e}; hint: {}", e.hint().unwrap_or_default())
    }

    #[test]
    fn my_domain_https_and_loopback_http_are_accepted() {
        for url in [
            "https://acme.my.salesforce.com",
            "https://acme--uat.sandbox.my.salesforce.com/",
            "http://127.0.0.1:8080",
            "http://127.8.9.10",
            "http://localhost:3000",
            "http://[::1]:9000",
        ] {
            assert!(config(url).validate().is_ok(), "{url}");
        }
    }

    #[test]
    fn bad_urls_are_refused_with_the_value_and_the_fix() {
        let line = refused(&config("not a url"));
        assert!(line.contains("`not a url`"), "{line}");
        let line = refused(&config("http://example.com"));
        assert!(line.contains("https"), "{line}");
        let line = refused(&config("http://10.0.0.1"));
        assert!(line.contains("https"), "{line}");
        let line = refused(&config("ftp://acme.my.salesforce.com"));
        assert!(line.contains("ftp"), "{line}");
        for host in [
            "https://login.salesforce.com",
            "https://TEST.salesforce.com/",
            "https://acme.my.salesforce-setup.com",
            "http://login.salesforce.com",
        ] {
            let line = refused(&config(host));
            assert!(line.contains("My Domain"), "{host}: {line}");
            assert!(line.contains("Setup → My Domain"), "{host}: {line}");
        }
    }

    #[test]
    fn empty_credentials_and_odd_versions_are_refused() {
        let mut cfg = config("https://acme.my.salesforce.com");
        cfg.client_id = " ".into();
        assert!(refused(&cfg).contains("Consumer Key"));
        let mut cfg = config("https://acme.my.salesforce.com");
        cfg.client_secret = Secret::new("");
        assert!(refused(&cfg).contains("Consumer Secret"));
        for version in ["62.0", "v62", "vX.0", "v62.", "latest"] {
            let mut cfg = config("https://acme.my.salesforce.com");
            cfg.api_version = version.into();
            assert!(refused(&cfg).contains(version), "{version}");
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let cfg = config("https://acme.my.salesforce.com");
        assert!(!format!("{cfg:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn query_values_keep_plus_signs_and_encode_spaces() {
        let soql = "SELECT Id FROM Account WHERE SystemModstamp >= 2024-03-10T00:00:00+00:00";
        let encoded = encode_query_value(soql);
        assert!(
            !encoded.contains('+') && !encoded.contains(' '),
            "{encoded}"
        );
        assert!(encoded.contains("%2B00%3A00"), "{encoded}");
        let decoded: String = url::form_urlencoded::parse(format!("q={encoded}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        assert_eq!(decoded, soql);
    }

    #[test]
    fn data_base_refuses_a_plain_http_instance_elsewhere() {
        assert!(data_base("https://acme.my.salesforce.com").is_ok());
        assert!(data_base("http://127.0.0.1:4000").is_ok());
        assert!(matches!(
            data_base("http://acme.my.salesforce.com"),
            Err(FetchError::InsecureInstance { .. })
        ));
    }

    #[test]
    fn a_token_revoked_again_is_renewed_but_one_never_accepted_is_refused() {
        let expired = "Session expired or invalid";
        let no_api = "This session is not valid for use with the REST API";
        assert!(!refuses_token(0, expired));
        assert!(!refuses_token(1, expired));
        assert!(!refuses_token(2, expired));
        assert!(refuses_token(3, expired));
        assert!(!refuses_token(0, no_api));
        assert!(refuses_token(1, no_api));
    }

    #[test]
    fn retry_after_reads_seconds_or_an_http_date() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after(&h), Some(7));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        let now = "2015-10-21T07:27:30Z".parse().unwrap();
        assert_eq!(retry_after_at(&h, now), Some(30));
        let later = "2015-10-21T08:00:00Z".parse().unwrap();
        assert_eq!(retry_after_at(&h, later), Some(0));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
