//! Bulk API 2.0 query jobs (salesforce-api.md §7.1): create, poll, results by locator and
//! `maxRecords`, abort and delete, with the refusals and faults a client must survive.
//!
//! Owns the job table. Invariants: a job's query runs once, at creation, into a frozen
//! [`QueryResult`], so every results page of a job (and any page read again) comes from the
//! same rows; a job's state follows its age (`UploadComplete`, then `InProgress`, then
//! `JobComplete` after [`BulkConfig::complete_after`]) unless a fault or an abort says
//! otherwise; rows come in primary-key chunks whose order is shuffled by the seed, never in
//! cursor order; every request here passes the same admission as the REST resources, so
//! each counts one daily API request.

#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::exec::{self, QueryResult};
use super::server::{self, Shared};

/// Rows per primary-key chunk: the unit whose order the server shuffles.
const CHUNK_ROWS: usize = 2_500;
/// `maxRecords` when the request gives none.
const DEFAULT_MAX_RECORDS: usize = 100_000;
/// The daily allocation of query jobs (`DailyBulkV2QueryJobs`, §6.3).
pub const DAILY_JOBS_MAX: u64 = 10_000;
/// Salesforce retries a failing job this many times before `Failed` (§7.1).
const INTERNAL_RETRIES: u32 = 15;

/// How the org's Bulk API behaves.
#[derive(Debug, Clone)]
pub struct BulkConfig {
    /// A job reads `UploadComplete` for the first half of this, `InProgress` for the rest,
    /// then `JobComplete`.
    pub complete_after: Duration,
    pub faults: BulkFaults,
}

impl Default for BulkConfig {
    fn default() -> Self {
        Self {
            complete_after: Duration::from_millis(300),
            faults: BulkFaults::default(),
        }
    }
}

/// Bulk faults; all off by default.
#[derive(Debug, Clone, Default)]
pub struct BulkFaults {
    /// Objects on the org's Bulk deny-list: creating a job on one is refused
    /// (`INVALIDENTITY ... is not supported by the Bulk API`).
    pub deny: Vec<String>,
    /// A job whose query matches more than this many rows ends `Failed` with a
    /// `QUERY_TIMEOUT` message after Salesforce's internal retries.
    pub fail_over: Option<usize>,
    /// Jobs on these objects stay `InProgress` for ever.
    pub never_complete: Vec<String>,
    /// Every this many results pages (counted over all jobs), the page is cut off half-way:
    /// the transfer ends cleanly, the CSV does not.
    pub cut_page_every: Option<u64>,
    /// After this many results pages of a job, the job is deleted (as if by another user
    /// or the 7-day expiry): its next request gets `404 NOT_FOUND`.
    pub delete_after_pages: Option<u64>,
}

/// Counters for `/__fake/stats`-style inspection.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BulkStats {
    pub jobs_created: u64,
    pub jobs_deleted: u64,
    pub jobs_aborted: u64,
    pub result_pages: u64,
    /// Rows in the results pages served (a page cut off counts whole).
    pub rows_served: u64,
    pub pages_cut: u64,
    /// Jobs alive now.
    pub jobs_open: u64,
}

struct Job {
    id: String,
    operation: String,
    object: String,
    version: String,
    created: Instant,
    created_at: String,
    outcome: Outcome,
    aborted: bool,
    pages: u64,
}

enum Outcome {
    Rows {
        result: Arc<QueryResult>,
        order: Arc<Vec<u32>>,
    },
    Failed(String),
    Stuck,
}

/// The job table and its counters, shared by every handler.
#[derive(Default)]
pub struct Jobs {
    table: Mutex<HashMap<String, Job>>,
    stats: Mutex<BulkStats>,
    pages_served: std::sync::atomic::AtomicU64,
    pub created_today: std::sync::atomic::AtomicU64,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut BulkStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Deletes every job, as the 7-day expiry or another user would; returns how many.
    pub fn delete_all(&self) -> usize {
        let mut table = self.lock();
        let n = table.len();
        table.clear();
        drop(table);
        self.count(|c| c.jobs_deleted += n as u64);
        n
    }

    pub fn stats(&self) -> BulkStats {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
        stats.jobs_open = self.lock().len() as u64;
        stats
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    operation: String,
    query: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    column_delimiter: Option<String>,
    #[serde(default)]
    line_ending: Option<String>,
}

type S = State<Arc<Shared>>;

fn bad_request(code: &str, message: &str) -> Response {
    server::api_error(StatusCode::BAD_REQUEST, code, message)
}

/// `POST /services/data/vXX.X/jobs/query`.
pub async fn create(
    State(s): S,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _admitted = match server::admit(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(version) = server::api_version(&version) else {
        return server::not_found();
    };
    let Ok(req) = serde_json::from_slice::<CreateBody>(&body) else {
        return bad_request(
            "JSON_PARSER_ERROR",
            "Cannot deserialize the job: expected operation and query",
        );
    };
    if let Some(refusal) = unsupported_options(&req) {
        return bad_request("INVALIDJOB", refusal);
    }
    let all = match req.operation.as_str() {
        "query" => false,
        "queryAll" => true,
        other => return bad_request("INVALIDJOB", &format!("Unsupported operation: {other}")),
    };
    let shared = s.clone();
    let ran = tokio::task::spawn_blocking(move || plan_job(&shared, &req.query, all)).await;
    let (object, outcome) = match ran {
        Ok(Ok(planned)) => planned,
        Ok(Err(response)) => return response,
        Err(_) => return server::unknown_exception(),
    };
    let id = format!("750{}", server::random_id_chars(&s, 15));
    let job = Job {
        id: id.clone(),
        operation: req.operation,
        object,
        version,
        created: Instant::now(),
        created_at: now_text(),
        outcome,
        aborted: false,
        pages: 0,
    };
    let info = info(&job, &s.config.bulk);
    s.bulk.lock().insert(id, job);
    s.bulk.created_today.fetch_add(1, Ordering::SeqCst);
    s.bulk.count(|c| c.jobs_created += 1);
    json(StatusCode::OK, &info)
}

fn unsupported_options(req: &CreateBody) -> Option<&'static str> {
    if req.content_type.as_deref().is_some_and(|c| c != "CSV") {
        return Some("contentType must be CSV");
    }
    if req
        .column_delimiter
        .as_deref()
        .is_some_and(|c| c != "COMMA")
    {
        return Some("This fake org serves columnDelimiter COMMA only");
    }
    if req
        .line_ending
        .as_deref()
        .is_some_and(|l| l != "LF" && l != "CRLF")
    {
        return Some("lineEnding must be LF or CRLF");
    }
    None
}

/// Runs the query once and decides the job's fate: rows, a failure, or stuck.
fn plan_job(s: &Shared, soql: &str, all: bool) -> Result<(String, Outcome), Response> {
    let faults = s.bulk_faults().clone();
    let parsed = crate::soql::parse(soql).map_err(|e| bad_request(e.code, &e.message))?;
    let object = parsed.from.name.clone();
    if faults.deny.iter().any(|d| d.eq_ignore_ascii_case(&object)) {
        return Err(bad_request(
            "INVALIDENTITY",
            &format!("INVALIDENTITY: Entity '{object}' is not supported by the Bulk API."),
        ));
    }
    let org = s.org.read().unwrap_or_else(|e| e.into_inner());
    let result = exec::execute(&org, soql, all).map_err(|e| bad_request(e.code, &e.message))?;
    drop(org);
    if let Some(refusal) = result.bulk_refusal() {
        return Err(bad_request("API_ERROR", refusal));
    }
    let object = s.org_object_name(&object).unwrap_or(object);
    if faults
        .never_complete
        .iter()
        .any(|o| o.eq_ignore_ascii_case(&object))
    {
        return Ok((object, Outcome::Stuck));
    }
    if faults.fail_over.is_some_and(|n| result.len() > n) {
        let message = format!(
            "Failed to process query: QUERY_TIMEOUT: Your query request was running for too long. (retried {INTERNAL_RETRIES} times)"
        );
        return Ok((object, Outcome::Failed(message)));
    }
    let ordered = !parsed.order_by.is_empty() || parsed.limit.is_some();
    let seed = s.fault_state().next_u64();
    let order = Arc::new(chunk_order(result.len(), ordered, seed));
    Ok((
        object,
        Outcome::Rows {
            result: Arc::new(result),
            order,
        },
    ))
}

/// Positions in serving order: chunks of [`CHUNK_ROWS`] in a seeded shuffle (primary-key
/// chunking answers chunks as they finish), or in order for an ordered or limited query.
fn chunk_order(len: usize, ordered: bool, seed: u64) -> Vec<u32> {
    let mut chunks: Vec<usize> = (0..len.div_ceil(CHUNK_ROWS)).collect();
    if !ordered {
        fastrand::Rng::with_seed(seed).shuffle(&mut chunks);
    }
    chunks
        .into_iter()
        .flat_map(|c| (c * CHUNK_ROWS..((c + 1) * CHUNK_ROWS).min(len)).map(|i| i as u32))
        .collect()
}

fn state(job: &Job, config: &BulkConfig) -> &'static str {
    if job.aborted {
        return "Aborted";
    }
    let age = job.created.elapsed();
    match &job.outcome {
        _ if age < config.complete_after / 2 => "UploadComplete",
        Outcome::Stuck => "InProgress",
        _ if age < config.complete_after => "InProgress",
        Outcome::Failed(_) => "Failed",
        Outcome::Rows { .. } => "JobComplete",
    }
}

fn info(job: &Job, config: &BulkConfig) -> serde_json::Value {
    let state = state(job, config);
    let processed = match (&job.outcome, state) {
        (Outcome::Rows { result, .. }, "JobComplete") => result.len(),
        _ => 0,
    };
    let mut body = serde_json::json!({
        "id": job.id,
        "operation": job.operation,
        "object": job.object,
        "createdById": "005R0000000GiwjIAC",
        "createdDate": job.created_at,
        "systemModstamp": job.created_at,
        "state": state,
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": job.version.trim_start_matches('v').parse::<f64>().unwrap_or(62.0),
        "lineEnding": "LF",
        "columnDelimiter": "COMMA",
        "numberRecordsProcessed": processed,
        "retries": 0,
        "totalProcessingTime": job.created.elapsed().as_millis() as u64,
    });
    if let (Outcome::Failed(message), "Failed") = (&job.outcome, state) {
        body["errorMessage"] = message.clone().into();
        body["retries"] = INTERNAL_RETRIES.into();
    }
    body
}

fn now_text() -> String {
    let mut out = Vec::new();
    exec::render_datetime(chrono::Utc::now().timestamp_millis(), &mut out);
    format!("{}+0000", String::from_utf8_lossy(&out))
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    server::json_bytes(status, serde_json::to_vec(body).expect("serialisable"))
}

/// `GET .../jobs/query/{id}`.
pub async fn poll(
    State(s): S,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let _admitted = match server::admit(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if server::api_version(&version).is_none() {
        return server::not_found();
    }
    match s.bulk.lock().get(&id) {
        Some(job) => json(StatusCode::OK, &info(job, &s.config.bulk)),
        None => server::not_found(),
    }
}

#[derive(Deserialize)]
struct StateChange {
    state: String,
}

/// `PATCH .../jobs/query/{id}` with `{"state":"Aborted"}`.
pub async fn abort(
    State(s): S,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _admitted = match server::admit(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if server::api_version(&version).is_none() {
        return server::not_found();
    }
    let Ok(change) = serde_json::from_slice::<StateChange>(&body) else {
        return bad_request("JSON_PARSER_ERROR", "Cannot deserialize the state change");
    };
    if change.state != "Aborted" {
        return bad_request(
            "INVALIDJOBSTATE",
            "A query job can only be changed to Aborted",
        );
    }
    let mut table = s.bulk.lock();
    let Some(job) = table.get_mut(&id) else {
        return server::not_found();
    };
    let state = state(job, &s.config.bulk);
    if matches!(state, "JobComplete" | "Failed") {
        return bad_request(
            "INVALIDJOBSTATE",
            &format!("Job {id} is already in state {state}"),
        );
    }
    job.aborted = true;
    let body = info(job, &s.config.bulk);
    drop(table);
    s.bulk.count(|c| c.jobs_aborted += 1);
    json(StatusCode::OK, &body)
}

/// `DELETE .../jobs/query/{id}`: `204`.
pub async fn delete(
    State(s): S,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let _admitted = match server::admit(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if server::api_version(&version).is_none() {
        return server::not_found();
    }
    if s.bulk.lock().remove(&id).is_none() {
        return server::not_found();
    }
    s.bulk.count(|c| c.jobs_deleted += 1);
    StatusCode::NO_CONTENT.into_response()
}

/// `GET .../jobs/query/{id}/results?maxRecords=N&locator=L`.
pub async fn results(
    State(s): S,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let _admitted = match server::admit(&s, &headers).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(version) = server::api_version(&version) else {
        return server::not_found();
    };
    let params: HashMap<String, String> = q
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let max = match params.get("maxRecords").map(|m| m.parse::<usize>()) {
        None => DEFAULT_MAX_RECORDS,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            return bad_request(
                "INVALIDQUERYLOCATOR",
                "maxRecords must be a positive integer",
            );
        }
    };
    let offset = match params.get("locator").map(|l| decode_locator(l)) {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => return bad_request("INVALIDQUERYLOCATOR", "Invalid query locator"),
    };
    let served = match take_page(&s, &id, &version) {
        Ok(served) => served,
        Err(r) => return r,
    };
    let (result, order) = served;
    if offset > order.len() {
        return bad_request("INVALIDQUERYLOCATOR", "Invalid query locator");
    }
    let end = (offset + max).min(order.len());
    let total = order.len();
    let shared = s.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        let mut body = Vec::with_capacity(256 + (end - offset) * 200);
        result.csv_header(&mut body);
        for &at in &order[offset..end] {
            result.render_csv(at as usize..at as usize + 1, &mut body);
        }
        let n = shared.bulk.pages_served.fetch_add(1, Ordering::SeqCst) + 1;
        let cut = shared
            .bulk_faults()
            .cut_page_every
            .is_some_and(|every| n % every.max(1) == 0);
        if cut {
            body.truncate(body.len() / 2 + 1);
        }
        (body, cut)
    })
    .await;
    let Ok((body, cut)) = rendered else {
        return server::unknown_exception();
    };
    s.stats.records(end - offset);
    s.bulk.count(|c| {
        c.result_pages += 1;
        c.rows_served += (end - offset) as u64;
        c.pages_cut += u64::from(cut);
    });
    let next = if end < total {
        encode_locator(end)
    } else {
        "null".to_string()
    };
    csv_response(body, end - offset, &next, &headers)
}

/// The job's rows for a results page, or the refusal: unknown or deleted job, another API
/// version, a job not complete, or one deleted under the reader by the fault.
fn take_page(
    s: &Shared,
    id: &str,
    version: &str,
) -> Result<(Arc<QueryResult>, Arc<Vec<u32>>), Response> {
    let delete_after = s.bulk_faults().delete_after_pages;
    let mut table = s.bulk.lock();
    let Some(job) = table.get_mut(id) else {
        return Err(server::not_found());
    };
    if job.version != version {
        return Err(server::api_error(
            StatusCode::CONFLICT,
            "API_VERSION_MISMATCH",
            &format!("Job {id} was created with API version {}", job.version),
        ));
    }
    let state = state(job, &s.config.bulk);
    let Outcome::Rows { result, order } = &job.outcome else {
        return Err(bad_request(
            "JOB_NOT_COMPLETE",
            &format!("Job {id} is in state {state}"),
        ));
    };
    if state != "JobComplete" {
        return Err(bad_request(
            "JOB_NOT_COMPLETE",
            &format!("Job {id} is in state {state}"),
        ));
    }
    let rows = (result.clone(), order.clone());
    job.pages += 1;
    if delete_after.is_some_and(|n| job.pages > n) {
        table.remove(id);
        drop(table);
        s.bulk.count(|c| c.jobs_deleted += 1);
        return Err(server::not_found());
    }
    Ok(rows)
}

fn csv_response(body: Vec<u8>, records: usize, next: &str, headers: &HeaderMap) -> Response {
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let body = if gzip { gzipped(&body) } else { body };
    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, "text/csv")], body).into_response();
    let h = response.headers_mut();
    h.insert("sforce-numberofrecords", HeaderValue::from(records));
    h.insert(
        "sforce-locator",
        HeaderValue::from_str(next).expect("ascii"),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

fn gzipped(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// Locators look like Salesforce's: the offset's decimal digits, base64 without padding.
fn encode_locator(offset: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(offset.to_string())
}

fn decode_locator(locator: &str) -> Option<usize> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(locator)
        .ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_round_trip_and_reject_garbage() {
        for n in [0, 1, 50_000, 123_456_789] {
            assert_eq!(decode_locator(&encode_locator(n)), Some(n));
        }
        assert_eq!(decode_locator("null"), None);
        assert_eq!(decode_locator("!!"), None);
    }

    #[test]
    fn chunk_order_is_a_permutation_out_of_order_unless_ordered() {
        let order = chunk_order(10 * CHUNK_ROWS + 7, false, 7);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..order.len() as u32).collect::<Vec<_>>());
        assert_ne!(order, sorted);
        assert_eq!(
            chunk_order(CHUNK_ROWS + 3, true, 7),
            (0..CHUNK_ROWS as u32 + 3).collect::<Vec<_>>()
        );
    }
}
