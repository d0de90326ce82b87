//! Bulk API 2.0 query jobs (salesforce-api.md §7.1): create, poll, results pages, abort,
//! delete, and the `DailyBulkV2QueryJobs` guard.
//!
//! Owns the job resources' wire format. Every request goes through the same session, gate,
//! retries and API-usage guard as a REST page ([`super::Inner::call`]); the caller spends its
//! `--query-limit` budget per request, as for pages. Results come as CSV bytes (gzip on the
//! wire, undone by the HTTP client); decoding is `decode::csv`'s.
//!
//! Invariants: a job is created only while the org's daily query jobs are under the usage
//! share the API total is guarded at; a results request names the locator the previous page
//! gave (`None` for the first), and `Sforce-Locator: null` ends the results.

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::HeaderMap;
use std::sync::PoisonError;

use super::{ApiUsage, DataCall, FetchError, SalesforceClient, json_body};

/// A job's state as `state` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    UploadComplete,
    InProgress,
    JobComplete,
    /// `Failed`, with the job's `errorMessage`.
    Failed(String),
    Aborted,
}

/// One results page: its CSV bytes, the rows the server says it holds, and the next locator
/// (`None` once `Sforce-Locator` is `null`).
#[derive(Debug)]
pub struct ResultsPage {
    pub body: Bytes,
    pub records: Option<usize>,
    pub next: Option<String>,
}

/// Why no job was created for a query the caller then reads through REST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRefused {
    /// The org's daily query jobs are at the guarded share.
    DailyJobs { used: u64, max: u64 },
}

impl std::fmt::Display for JobRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobRefused::DailyJobs { used, max } => write!(
                f,
                "the org's daily Bulk query jobs are at {used}/{max} (DailyBulkV2QueryJobs)"
            ),
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobInfo {
    id: String,
    state: String,
    #[serde(default)]
    error_message: Option<String>,
}

impl JobInfo {
    fn state(&self) -> JobState {
        match self.state.as_str() {
            "JobComplete" => JobState::JobComplete,
            "Failed" => JobState::Failed(self.error_message.clone().unwrap_or_default()),
            "Aborted" => JobState::Aborted,
            "InProgress" => JobState::InProgress,
            _ => JobState::UploadComplete,
        }
    }
}

impl SalesforceClient {
    /// Whether one more query job keeps the org's daily jobs under `max_api_usage_pct`.
    ///
    /// # Errors
    /// [`JobRefused::DailyJobs`] when it would not.
    pub fn check_bulk_jobs(&self) -> Result<(), JobRefused> {
        let jobs = *self
            .inner
            .bulk_jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(ApiUsage { used, max }) = jobs else {
            return Ok(());
        };
        let after = ApiUsage {
            used: used + 1,
            max,
        };
        if max == 0 || after.share_pct() > self.inner.config.max_api_usage_pct {
            return Err(JobRefused::DailyJobs { used, max });
        }
        Ok(())
    }

    /// Creates a query job (`queryAll` with `include_deleted`), CSV with LF line endings.
    /// Returns its id.
    ///
    /// # Errors
    /// The org's refusal (`Api { code: "API_ERROR" | "INVALIDENTITY", .. }` for compound
    /// fields or an object Bulk does not serve) and any data-call error after retries.
    pub async fn create_query_job(
        &self,
        soql: &str,
        include_deleted: bool,
    ) -> Result<String, FetchError> {
        let body = serde_json::json!({
            "operation": if include_deleted { "queryAll" } else { "query" },
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        });
        let call = DataCall {
            method: Method::POST,
            url: self.inner.data_url(&["jobs", "query"]),
            headers: HeaderMap::new(),
            json: Some(body),
        };
        let info: JobInfo = self
            .inner
            .call(&call, |_, body| json_body(&body, "query job answer"))
            .await?;
        if let Some(jobs) = self
            .inner
            .bulk_jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            jobs.used += 1;
        }
        Ok(info.id)
    }

    /// The job's state now.
    ///
    /// # Errors
    /// `NotFound` for a job that no longer exists; any data-call error after retries.
    pub async fn job_state(&self, id: &str) -> Result<JobState, FetchError> {
        let call = self.job_call(Method::GET, id, None);
        let info: JobInfo = self
            .inner
            .call(&call, |_, body| json_body(&body, "query job answer"))
            .await?;
        Ok(info.state())
    }

    /// One results page from `locator` (`None`: the first), at most `max_records` rows.
    ///
    /// # Errors
    /// `NotFound` for a job deleted meanwhile; the org's refusal of a job not complete; any
    /// data-call error after retries.
    pub async fn job_results(
        &self,
        id: &str,
        locator: Option<&str>,
        max_records: usize,
    ) -> Result<ResultsPage, FetchError> {
        let mut url = self.inner.data_url(&["jobs", "query", id, "results"]);
        url.query_pairs_mut()
            .append_pair("maxRecords", &max_records.to_string());
        if let Some(locator) = locator {
            url.query_pairs_mut().append_pair("locator", locator);
        }
        let call = DataCall {
            method: Method::GET,
            url,
            headers: HeaderMap::new(),
            json: None,
        };
        self.inner
            .call(&call, |headers, body| {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                let next = header("sforce-locator")
                    .filter(|l| !l.is_empty() && *l != "null")
                    .map(str::to_string);
                let records = header("sforce-numberofrecords").and_then(|n| n.parse().ok());
                Ok(ResultsPage {
                    body,
                    records,
                    next,
                })
            })
            .await
    }

    /// Aborts a job that is still running (`PATCH` `{"state":"Aborted"}`).
    ///
    /// # Errors
    /// Any data-call error after retries (a job already complete refuses the change).
    pub async fn abort_job(&self, id: &str) -> Result<(), FetchError> {
        let call = self.job_call(
            Method::PATCH,
            id,
            Some(serde_json::json!({"state": "Aborted"})),
        );
        self.inner.call(&call, |_, _| Ok(())).await
    }

    /// Deletes a job and its results.
    ///
    /// # Errors
    /// `NotFound` for a job already gone; any data-call error after retries.
    pub async fn delete_job(&self, id: &str) -> Result<(), FetchError> {
        let call = self.job_call(Method::DELETE, id, None);
        self.inner.call(&call, |_, _| Ok(())).await
    }

    fn job_call(&self, method: Method, id: &str, json: Option<serde_json::Value>) -> DataCall {
        DataCall {
            method,
            url: self.inner.data_url(&["jobs", "query", id]),
            headers: HeaderMap::new(),
            json,
        }
    }
}
