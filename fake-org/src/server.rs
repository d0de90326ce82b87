//! The fake org's HTTP surface: routing, admission (token, daily and concurrent limits),
//! faults, paging and the `/__fake/*` inspection endpoints.
//!
//! Owns every byte on the wire. Invariants: every `/services/data/...` response carries
//! `Sforce-Limit-Info`; every admitted data request counts one against the daily counter;
//! data error bodies are JSON arrays and OAuth errors JSON objects (salesforce-api.md §0);
//! record pages are rendered straight to bytes from a frozen [`QueryResult`] with no lock on
//! the org held; `/__fake/*` requests bypass stats, limits and faults.

// Handlers short-circuit with a finished `Response` as their error: it is what gets sent,
// and every such path allocates a body anyway, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::auth::{self, TokenRequest, Tokens};
use super::bulk::{self, BulkFaults, Jobs};
use super::cursors::Cursors;
use super::data::Org;
use super::exec::{self, QueryResult};
use super::faults::{FaultState, FaultsJson, Outcome};
use super::stats::{Kind, Recorder};
use super::{FakeOrgConfig, Faults};

/// The whole request URI is capped at this many bytes (§4.5); longer gets `414`.
pub const MAX_URI_BYTES: usize = 16_384;
/// The newest API version the org speaks (Winter '27, §2).
pub const LATEST_VERSION: u32 = 68;
/// The oldest version still served; older ones are retired (§2).
const OLDEST_VERSION: u32 = 31;
/// `Sforce-Query-Options: batchSize` bounds and default (§4.3).
const MIN_BATCH: usize = 200;
const MAX_BATCH: usize = 2000;
/// Rows changed by each `modify_every` fault: enough to move a few cursors.
const ROWS_PER_MODIFY: usize = 3;

/// Everything a request handler may touch, shared behind one `Arc`.
pub struct Shared {
    pub config: FakeOrgConfig,
    /// `http://127.0.0.1:PORT`, the `instance_url` handed out with tokens.
    pub url: String,
    /// The data. Behind a `std` lock: readers hold it only while a query runs on a blocking
    /// thread, and `modify_rows` writes briefly; nobody holds it across an `.await`.
    pub org: RwLock<Org>,
    /// The live faults and the seeded generator; locked once per data request.
    pub faults: Mutex<FaultState>,
    pub tokens: Tokens,
    pub cursors: Cursors,
    pub stats: Recorder,
    /// Daily API requests used so far (`Sforce-Limit-Info`, `/limits`).
    pub api_used: AtomicU64,
    /// Admitted data requests now being answered, for the concurrent limit.
    pub data_in_flight: AtomicUsize,
    /// Bulk API 2.0 query jobs.
    pub bulk: Jobs,
    /// The live Bulk faults, from `config.bulk.faults` until [`crate::FakeOrg::set_bulk_faults`].
    pub bulk_faults: Mutex<BulkFaults>,
}

impl Shared {
    pub fn new(config: FakeOrgConfig, url: String, org: Org) -> Self {
        Self {
            faults: Mutex::new(FaultState::new(config.faults.clone(), config.seed)),
            tokens: Tokens::new(config.token_lifetime),
            cursors: Cursors::new(config.legacy_cursor_limit),
            stats: Recorder::default(),
            api_used: AtomicU64::new(config.daily_api_used),
            data_in_flight: AtomicUsize::new(0),
            bulk: Jobs::default(),
            bulk_faults: Mutex::new(config.bulk.faults.clone()),
            org: RwLock::new(org),
            config,
            url,
        }
    }

    pub fn fault_state(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the org has served, Bulk jobs included.
    pub fn stats(&self) -> crate::Stats {
        let mut stats = self.stats.snapshot();
        stats.bulk = self.bulk.stats();
        stats
    }

    pub fn bulk_faults(&self) -> std::sync::MutexGuard<'_, BulkFaults> {
        self.bulk_faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The object's name as the org spells it, for a name matched case-insensitively.
    pub fn org_object_name(&self, name: &str) -> Option<String> {
        let snap = read_org(self).snapshot();
        snap.object_index(name)
            .map(|i| snap.objects[i].schema.name.to_string())
    }

    /// Changes `count` rows now (cursor fields moved to the current time).
    pub fn modify_rows(&self, count: usize) -> usize {
        let seed = self.fault_state().next_u64();
        let mut org = self.org.write().unwrap_or_else(|e| e.into_inner());
        org.modify_rows(count, chrono::Utc::now(), seed)
    }

    /// Changes the org's definitions (fields) under the write lock, briefly.
    pub fn change_org<T>(&self, change: impl FnOnce(&mut Org) -> T) -> T {
        let mut org = self.org.write().unwrap_or_else(|e| e.into_inner());
        change(&mut org)
    }

    fn usage_header(&self) -> HeaderValue {
        let used = self.api_used.load(Ordering::SeqCst);
        let value = format!("api-usage={used}/{}", self.config.daily_api_max);
        HeaderValue::from_str(&value).expect("ascii")
    }
}

type S = State<Arc<Shared>>;

/// The axum app over `shared`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/data", get(versions))
        .route("/services/data/", get(versions))
        .route("/services/data/{version}", get(resources))
        .route("/services/data/{version}/", get(resources))
        .route("/services/data/{version}/sobjects", get(describe_global))
        .route(
            "/services/data/{version}/sobjects/{name}/describe",
            get(describe),
        )
        .route("/services/data/{version}/limits", get(limits))
        .route("/services/data/{version}/query", get(query))
        .route("/services/data/{version}/queryAll", get(query_all))
        .route("/services/data/{version}/query/{locator}", get(query_more))
        .route(
            "/services/data/{version}/queryAll/{locator}",
            get(query_more),
        )
        .route("/services/data/{version}/jobs/query", post(bulk::create))
        .route(
            "/services/data/{version}/jobs/query/{id}",
            get(bulk::poll).patch(bulk::abort).delete(bulk::delete),
        )
        .route(
            "/services/data/{version}/jobs/query/{id}/results",
            get(bulk::results),
        )
        .route("/__fake/stats", get(fake_stats))
        .route("/__fake/faults", post(fake_faults))
        .route("/__fake/revoke", post(fake_revoke))
        .route("/__fake/modify", post(fake_modify))
        .route("/__fake/fields", post(fake_fields))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(shared.clone(), outer))
        .with_state(shared)
}

/// Marks a response whose connection must be dropped instead of answered.
#[derive(Debug, Clone, Copy)]
struct ResetMarker;

/// Counts every non-inspection request, refuses over-long URIs, and stamps the usage header.
async fn outer(State(s): S, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/__fake/") {
        return next.run(req).await;
    }
    let kind = Kind::of_path(&path);
    let _in_flight = s.stats.begin(kind);
    if requested_batch_size(req.headers()).is_some() {
        s.stats.batch_size_sent(kind);
    }
    let uri_len = req
        .uri()
        .path_and_query()
        .map_or(path.len(), |p| p.as_str().len());
    let mut response = if uri_len > MAX_URI_BYTES {
        uri_too_long()
    } else if uri_len + header_bytes(req.headers()) > MAX_URI_BYTES {
        headers_too_large()
    } else {
        next.run(req).await
    };
    if response.extensions().get::<ResetMarker>().is_none() {
        s.stats.status(response.status().as_u16());
    }
    if path.starts_with("/services/data") {
        response
            .headers_mut()
            .insert("sforce-limit-info", s.usage_header());
    }
    response
}

/// The request's header block as sent: `name: value\r\n` per header.
fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// `414` when the URI alone is over the cap (§4.5), as from the edge.
fn uri_too_long() -> Response {
    edge_refusal(StatusCode::URI_TOO_LONG, "414 Request-URI Too Large")
}

/// `431` when the URI fits but URI plus headers exceed the cap (§4.5), as from the edge.
fn headers_too_large() -> Response {
    edge_refusal(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "431 Request Header Fields Too Large",
    )
}

/// The HTML page the edge answers with, before the request reaches the API.
fn edge_refusal(status: StatusCode, title: &str) -> Response {
    let body = format!("<html><body><h1>{title}</h1></body></html>");
    (
        status,
        [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// bodies

#[derive(Serialize)]
struct ApiError<'a> {
    message: &'a str,
    #[serde(rename = "errorCode")]
    error_code: &'a str,
}

/// A data API error: a JSON array of one error object (§5.1).
pub(crate) fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::to_vec(&[ApiError {
        message,
        error_code: code,
    }])
    .expect("serialisable");
    json_bytes(status, body)
}

pub(crate) fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body,
    )
        .into_response()
}

pub(crate) fn not_found() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

fn invalid_session() -> Response {
    api_error(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
    )
}

fn limit_exceeded(message: &str) -> Response {
    api_error(StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED", message)
}

pub(crate) fn unknown_exception() -> Response {
    api_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
    )
}

fn unavailable(retry_after: Option<u64>, html: bool) -> Response {
    let mut response = if html {
        let page = "<html><head><title>Salesforce - Down for Maintenance</title></head>\
                    <body><h1>Down for Maintenance</h1><p>Salesforce is undergoing scheduled \
                    maintenance. Please try again later.</p></body></html>";
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/html;charset=UTF-8")],
            page,
        )
            .into_response()
    } else {
        api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server too busy",
        )
    };
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A response whose body fails before its first byte: hyper then drops the connection
/// without having written the status line, which the client sees as a reset.
fn reset() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected connection reset",
        ))
    });
    let mut response = Body::from_stream(failing).into_response();
    response.extensions_mut().insert(ResetMarker);
    response
}

/// A `200` JSON body, cut off half-way when the request drew the truncation fault. The
/// HTTP transfer itself stays well-formed (its length is the cut length).
fn ok_json(body: Vec<u8>, admitted: &Admitted) -> Response {
    let mut body = body;
    if admitted.truncate && body.len() > 1 {
        body.truncate(body.len() / 2);
    }
    json_bytes(StatusCode::OK, body)
}

// ---------------------------------------------------------------------------------------
// admission

/// A data request that passed the token, limits and fault checks.
pub(crate) struct Admitted<'a> {
    truncate: bool,
    _slot: Slot<'a>,
}

/// One admitted data request in flight, released on drop.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Checks, in Salesforce's order, the session, the daily allocation and the concurrent
/// limit, then applies the faults drawn for this request.
pub(crate) async fn admit<'a>(
    s: &'a Arc<Shared>,
    headers: &HeaderMap,
) -> Result<Admitted<'a>, Response> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if s.tokens.validate(authorization).is_err() {
        return Err(invalid_session());
    }
    let max = s.config.daily_api_max;
    let counted = s
        .api_used
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
            (used < max).then_some(used + 1)
        });
    if counted.is_err() {
        return Err(limit_exceeded("TotalRequests Limit exceeded."));
    }
    let now_in_flight = s.data_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let slot = Slot(&s.data_in_flight);
    if s.config.concurrent_limit.is_some_and(|l| now_in_flight > l) {
        return Err(limit_exceeded("ConcurrentPerOrgLongTxn Limit exceeded."));
    }
    let draw = s.fault_state().draw();
    if draw.revoke {
        s.tokens.revoke_all();
    }
    if draw.modify {
        modify_in_background(s, ROWS_PER_MODIFY).await;
    }
    if draw.invalidate_cursors {
        s.cursors.invalidate_all();
    }
    if !draw.delay.is_zero() {
        tokio::time::sleep(draw.delay).await;
    }
    match draw.outcome {
        Outcome::Normal => Ok(Admitted {
            truncate: false,
            _slot: slot,
        }),
        Outcome::Truncate => Ok(Admitted {
            truncate: true,
            _slot: slot,
        }),
        Outcome::Unavailable { retry_after, html } => Err(unavailable(retry_after, html)),
        Outcome::UnknownException => Err(unknown_exception()),
        Outcome::ConcurrentLimit => Err(limit_exceeded("ConcurrentPerOrgLongTxn Limit exceeded.")),
        Outcome::Reset => Err(reset()),
    }
}

async fn modify_in_background(s: &Arc<Shared>, count: usize) {
    // The write lock waits for running queries; keep that wait off the async workers.
    let shared = s.clone();
    let _ = tokio::task::spawn_blocking(move || shared.modify_rows(count)).await;
}

/// `v62.0` → `v62.0`, `latest` → the newest; `None` for anything the org does not serve.
pub(crate) fn api_version(raw: &str) -> Option<String> {
    if raw == "latest" {
        return Some(format!("v{LATEST_VERSION}.0"));
    }
    let major: u32 = raw.strip_prefix('v')?.strip_suffix(".0")?.parse().ok()?;
    (OLDEST_VERSION..=LATEST_VERSION)
        .contains(&major)
        .then(|| format!("v{major}.0"))
}

/// The org for reading; a poisoned lock only means a query panicked, the data is intact.
fn read_org(s: &Shared) -> std::sync::RwLockReadGuard<'_, Org> {
    s.org.read().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// handlers

async fn token(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let req = TokenRequest::parse(
        header_str(header::CONTENT_TYPE),
        &body,
        header_str(header::AUTHORIZATION),
    );
    let cfg = &s.config;
    if let Err(e) = auth::check(&req, &cfg.auth_scenario, &cfg.client_id, &cfg.client_secret) {
        let body = serde_json::to_vec(&e).expect("serialisable");
        return json_bytes(StatusCode::BAD_REQUEST, body);
    }
    let random = random_token(&mut s.fault_state());
    let grant = s.tokens.issue(&s.url, &cfg.client_secret, &random);
    json_bytes(
        StatusCode::OK,
        serde_json::to_vec(&grant).expect("serialisable"),
    )
}

const ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn random_chars(state: &mut FaultState, n: usize) -> String {
    (0..n)
        .map(|_| ALPHANUMERIC[(state.next_u64() % ALPHANUMERIC.len() as u64) as usize] as char)
        .collect()
}

/// `n` random id characters, for job ids.
pub(crate) fn random_id_chars(s: &Shared, n: usize) -> String {
    random_chars(&mut s.fault_state(), n)
}

fn random_token(state: &mut FaultState) -> String {
    // Salesforce session ids: `AQ` then ~90 characters of mixed alphabet with `.`/`_`.
    format!(
        "AQ8AQ{}.{}",
        random_chars(state, 60),
        random_chars(state, 30)
    )
}

fn release_label(major: u32) -> String {
    // Three releases a year from Spring '24 = 60.0 (§2).
    let offset = major as i64 - 60;
    let season = ["Spring", "Summer", "Winter"][offset.rem_euclid(3) as usize];
    let year = 24 + offset.div_euclid(3) + i64::from(season == "Winter");
    format!("{season} '{year:02}")
}

async fn versions() -> Response {
    let list: Vec<serde_json::Value> = (OLDEST_VERSION..=LATEST_VERSION)
        .map(|v| {
            serde_json::json!({
                "label": release_label(v),
                "url": format!("/services/data/v{v}.0"),
                "version": format!("{v}.0"),
            })
        })
        .collect();
    json_bytes(
        StatusCode::OK,
        serde_json::to_vec(&list).expect("serialisable"),
    )
}

/// `GET /services/data/vXX.X/`: the version's resource directory, listing what this org
/// serves (Salesforce lists many more; clients look names up, never assume the set).
async fn resources(State(s): S, Path(version): Path<String>, headers: HeaderMap) -> Response {
    let admitted = match admit(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(version) = api_version(&version) else {
        return not_found();
    };
    let base = format!("/services/data/{version}");
    let body = serde_json::json!({
        "limits": format!("{base}/limits"),
        "query": format!("{base}/query"),
        "queryAll": format!("{base}/queryAll"),
        "sobjects": format!("{base}/sobjects"),
    });
    ok_json(serde_json::to_vec(&body).expect("serialisable"), &admitted)
}

async fn describe_global(State(s): S, Path(version): Path<String>, headers: HeaderMap) -> Response {
    let admitted = match admit(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(version) = api_version(&version) else {
        return not_found();
    };
    let body = serde_json::to_vec(&read_org(&s).describe_global(&version)).expect("serialisable");
    ok_json(body, &admitted)
}

async fn describe(
    State(s): S,
    Path((version, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let admitted = match admit(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(version) = api_version(&version) else {
        return not_found();
    };
    let describe = read_org(&s).describe(&name, &version);
    match describe {
        Some(d) => ok_json(serde_json::to_vec(&d).expect("serialisable"), &admitted),
        None => not_found(),
    }
}

async fn limits(State(s): S, Path(version): Path<String>, headers: HeaderMap) -> Response {
    let admitted = match admit(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if api_version(&version).is_none() {
        return not_found();
    }
    let max = s.config.daily_api_max;
    let used = s.api_used.load(Ordering::SeqCst).min(max);
    let jobs_used = s.bulk.created_today.load(Ordering::SeqCst);
    let body = serde_json::json!({
        "DailyApiRequests": {"Max": max, "Remaining": max - used,
                             "sfbackfill": {"Max": 0, "Remaining": 0}},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
        "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
        "DailyBulkV2QueryJobs": {"Max": bulk::DAILY_JOBS_MAX,
                                 "Remaining": bulk::DAILY_JOBS_MAX.saturating_sub(jobs_used)},
    });
    ok_json(serde_json::to_vec(&body).expect("serialisable"), &admitted)
}

async fn query(
    State(s): S,
    Path(version): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    run_query(&s, &version, &headers, q.as_deref(), false).await
}

async fn query_all(
    State(s): S,
    Path(version): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    run_query(&s, &version, &headers, q.as_deref(), true).await
}

/// The `q` parameter, decoded as a form value: an unencoded `+` becomes a space (§4.5).
fn soql_param(raw_query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(raw_query?.as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.into_owned())
        .filter(|q| !q.trim().is_empty())
}

/// The batch size a request asks for, clamped to 200..=2000; 2000 when it asks none.
fn batch_size(headers: &HeaderMap) -> usize {
    requested_batch_size(headers)
        .unwrap_or(MAX_BATCH)
        .clamp(MIN_BATCH, MAX_BATCH)
}

/// `N` of a `Sforce-Query-Options: batchSize=N` header, as sent.
fn requested_batch_size(headers: &HeaderMap) -> Option<usize> {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|opts| {
            opts.split([',', ';']).find_map(|opt| {
                let (k, v) = opt.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("batchSize")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
        })
}

async fn run_query(
    s: &Arc<Shared>,
    version: &str,
    headers: &HeaderMap,
    raw_query: Option<&str>,
    all: bool,
) -> Response {
    let admitted = match admit(s, headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(version) = api_version(version) else {
        return not_found();
    };
    let Some(soql) = soql_param(raw_query) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "SOQL statements cannot be empty or null",
        );
    };
    let locator = format!("01g{}", random_chars(&mut s.fault_state(), 15));
    let shared = s.clone();
    let requested = batch_size(headers);
    let ran = tokio::task::spawn_blocking(move || {
        first_page(&shared, &soql, all, requested, &version, &locator)
    })
    .await;
    let page = match ran {
        Ok(Ok(page)) => page,
        Ok(Err(response)) => return response,
        Err(join) => {
            tracing::error!("fake org query panicked: {join}");
            return unknown_exception();
        }
    };
    s.stats.records(page.records);
    ok_json(page.body, &admitted)
}

/// One rendered page and how many records it holds.
struct Page {
    body: Vec<u8>,
    records: usize,
}

/// Runs the query (read lock held only for the run), applies the timeout fault, opens a
/// cursor if rows remain, and renders the first page.
fn first_page(
    s: &Shared,
    soql: &str,
    all: bool,
    requested: usize,
    version: &str,
    locator: &str,
) -> Result<Page, Response> {
    let result = exec::execute(&read_org(s), soql, all);
    let result = result.map_err(|e| api_error(StatusCode::BAD_REQUEST, e.code, &e.message))?;
    if s.config.refuse_aggregates && result.is_aggregate() {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "Aggregate queries are not supported by this org",
        ));
    }
    let timeout_over = s.fault_state().faults().query_timeout_over;
    if timeout_over.is_some_and(|n| result.total_size() > n) {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "QUERY_TIMEOUT",
            "Your query request was running for too long.",
        ));
    }
    let page_size = if result.is_aggregate() {
        // Aggregate queries cannot page (§4.6): the executor already refused more groups
        // than one batch holds, so all of them go out at once.
        result.len()
    } else {
        [
            Some(requested),
            result.max_page_size(),
            s.config.wide_page_size,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(MAX_BATCH)
    }
    .max(1);
    let result = Arc::new(result);
    let end = page_size.min(result.len());
    let next = (end < result.len()).then(|| {
        let ttl = s.fault_state().faults().cursor_ttl;
        s.cursors
            .open(locator.to_string(), result.clone(), page_size, ttl);
        next_url(version, locator, end)
    });
    Ok(render_page(&result, 0..end, next.as_deref(), version))
}

fn next_url(version: &str, locator: &str, offset: usize) -> String {
    format!("/services/data/{version}/query/{locator}-{offset}")
}

/// `{"totalSize","done","nextRecordsUrl"?,"records":[...]}` written as bytes.
fn render_page(
    result: &QueryResult,
    range: Range<usize>,
    next: Option<&str>,
    version: &str,
) -> Page {
    let records = range.len();
    let mut body = Vec::with_capacity(256 + records * 256);
    body.extend_from_slice(
        format!(
            "{{\"totalSize\":{},\"done\":{}",
            result.total_size(),
            next.is_none()
        )
        .as_bytes(),
    );
    if let Some(url) = next {
        body.extend_from_slice(format!(",\"nextRecordsUrl\":\"{url}\"").as_bytes());
    }
    body.extend_from_slice(b",\"records\":[");
    if records > 0 {
        result.render_records(range, version, &mut body);
    }
    body.extend_from_slice(b"]}");
    Page { body, records }
}

async fn query_more(
    State(s): S,
    Path((version, locator)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let admitted = match admit(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if api_version(&version).is_none() {
        return not_found();
    }
    let invalid = || {
        api_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )
    };
    let Some((id, offset)) = locator.rsplit_once('-') else {
        return invalid();
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return invalid();
    };
    let ttl = s.fault_state().faults().cursor_ttl;
    let Some((result, _page_size, end)) = s.cursors.page(id, offset, ttl) else {
        return invalid();
    };
    let id = id.to_string();
    let rendered = tokio::task::spawn_blocking(move || {
        let next = (end < result.len()).then(|| next_url(&version, &id, end));
        render_page(&result, offset..end, next.as_deref(), &version)
    })
    .await;
    match rendered {
        Ok(page) => {
            s.stats.records(page.records);
            ok_json(page.body, &admitted)
        }
        Err(join) => {
            tracing::error!("fake org page rendering panicked: {join}");
            unknown_exception()
        }
    }
}

/// A known resource asked with the wrong method. The OAuth endpoint answers in its own
/// envelope; data resources (GET only, §4.1) with a JSON array and an `Allow` header.
async fn method_not_allowed(req: Request) -> Response {
    if req.uri().path() == "/services/oauth2/token" {
        let body = serde_json::to_vec(&serde_json::json!({
            "error": "invalid_request",
            "error_description": "must use HTTP POST",
        }))
        .expect("serialisable");
        return json_bytes(StatusCode::BAD_REQUEST, body);
    }
    if req.uri().path().starts_with("/__fake/") {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let message = format!(
        "HTTP Method '{}' not allowed. Allowed are GET,HEAD",
        req.method()
    );
    let mut response = api_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        &message,
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
    response
}

async fn fallback(State(s): S, req: Request) -> Response {
    if !req.uri().path().starts_with("/services/data/") {
        return not_found();
    }
    match admit(&s, req.headers()).await {
        Ok(_) => not_found(),
        Err(r) => r,
    }
}

// ---------------------------------------------------------------------------------------
// inspection

async fn fake_stats(State(s): S) -> Response {
    json_bytes(
        StatusCode::OK,
        serde_json::to_vec(&s.stats()).expect("serialisable"),
    )
}

async fn fake_faults(State(s): S, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultsJson>(&body) {
        Ok(json) => {
            s.fault_state().set(Faults::from(json));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("bad faults JSON: {e}\n")).into_response(),
    }
}

async fn fake_revoke(State(s): S) -> Response {
    s.tokens.revoke_all();
    StatusCode::NO_CONTENT.into_response()
}

async fn fake_modify(State(s): S, RawQuery(q): RawQuery) -> Response {
    let count = q
        .as_deref()
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "count")
                .and_then(|(_, v)| v.parse::<usize>().ok())
        })
        .unwrap_or(1);
    let shared = s.clone();
    match tokio::task::spawn_blocking(move || shared.modify_rows(count)).await {
        Ok(n) => json_bytes(StatusCode::OK, format!("{{\"modified\":{n}}}").into_bytes()),
        Err(_) => unknown_exception(),
    }
}

/// `POST /__fake/fields?object=O&hide=F` (or `show=F`, or `add=F:type`): a field change, as
/// [`crate::FakeOrg::hide_field`], `show_field` and `add_field` make it; an added field has the
/// type's default size. `204`, or `400` with the reason as text.
async fn fake_fields(State(s): S, RawQuery(q): RawQuery) -> Response {
    let params: Vec<(String, String)> = q
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let change = |org: &mut Org| -> Result<(), String> {
        let object = get("object").ok_or("`object` is missing")?;
        match (get("hide"), get("show"), get("add")) {
            (Some(field), None, None) => org.hide_field(&object, &field),
            (None, Some(field), None) => org.show_field(&object, &field),
            (None, None, Some(add)) => {
                let (name, ftype) = add.split_once(':').ok_or("`add` is NAME:type")?;
                let ftype = crate::data::schema::FieldType::from_api_name(ftype)
                    .ok_or_else(|| format!("unknown field type `{ftype}`"))?;
                org.add_field(&object, &crate::FieldSpec::new(name, ftype))
            }
            _ => Err("give one of `hide`, `show` or `add`".into()),
        }
    };
    match s.change_org(change) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(reason) => (StatusCode::BAD_REQUEST, reason).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_the_served_range() {
        assert_eq!(api_version("v62.0").as_deref(), Some("v62.0"));
        assert_eq!(api_version("latest").as_deref(), Some("v68.0"));
        for bad in ["v30.0", "v69.0", "62.0", "v62.5", "vx"] {
            assert_eq!(api_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn release_labels_follow_the_table() {
        assert_eq!(release_label(60), "Spring '24");
        assert_eq!(release_label(62), "Winter '25");
        assert_eq!(release_label(66), "Spring '26");
        assert_eq!(release_label(68), "Winter '27");
        assert_eq!(release_label(31), "Summer '14");
    }

    #[test]
    fn batch_size_is_clamped_and_defaults_to_2000() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("sforce-query-options", HeaderValue::from_str(v).unwrap());
            batch_size(&h)
        };
        assert_eq!(batch_size(&HeaderMap::new()), 2000);
        assert_eq!(with("batchSize=1000"), 1000);
        assert_eq!(with("batchSize=5"), 200);
        assert_eq!(with("batchSize=90000"), 2000);
        assert_eq!(with("batchsize=300"), 300);
    }

    #[test]
    fn soql_plus_signs_arrive_as_spaces() {
        assert_eq!(
            soql_param(Some("q=SELECT+Id+FROM+Account")).as_deref(),
            Some("SELECT Id FROM Account")
        );
        assert_eq!(soql_param(Some("q=")), None);
        assert_eq!(soql_param(None), None);
    }
}
