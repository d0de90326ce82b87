//! STUB (being replaced by its owner): the only HTTP client code.
use bytes::Bytes;
use std::time::Duration;
use crate::describe::{GlobalObject, ObjectDescribe};
use crate::error::{ExitKind, UserFacing};
use crate::secret::Secret;

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
    pub fn validate(&self) -> Result<(), FetchError> {
        unimplemented!("fetch stub")
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
        if self.max == 0 { 0.0 } else { self.used as f64 * 100.0 / self.max as f64 }
    }
}

/// One query page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryPage {
    First { soql: String, include_deleted: bool },
    Next { url: String },
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("stub")]
    Stub,
}

impl FetchError {
    pub fn is_transient(&self) -> bool {
        false
    }
    pub fn is_expired_cursor(&self) -> bool {
        false
    }
}

impl UserFacing for FetchError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Failure
    }
}

/// A signed-in client; cheap to clone, shared by all workers.
#[derive(Debug, Clone)]
pub struct SalesforceClient {}

impl SalesforceClient {
    pub async fn connect(_config: ClientConfig) -> Result<Self, FetchError> {
        unimplemented!("fetch stub")
    }
    pub fn instance_url(&self) -> &str {
        unimplemented!("fetch stub")
    }
    pub fn usage(&self) -> Option<ApiUsage> {
        unimplemented!("fetch stub")
    }
    pub async fn describe_global(&self) -> Result<Vec<GlobalObject>, FetchError> {
        unimplemented!("fetch stub")
    }
    pub async fn describe(&self, _object: &str) -> Result<ObjectDescribe, FetchError> {
        unimplemented!("fetch stub")
    }
    pub async fn query_page(&self, _page: &QueryPage) -> Result<Bytes, FetchError> {
        unimplemented!("fetch stub")
    }
    pub async fn query_json(&self, _soql: &str) -> Result<serde_json::Value, FetchError> {
        unimplemented!("fetch stub")
    }
}
