//! The org's daily API usage: reading it, remembering the latest reading, and the guard.
//!
//! Owns the parsing of `Sforce-Limit-Info` (salesforce-api.md §6.2) and of the
//! `DailyApiRequests` entry of `GET /limits` (§6.1), and [`UsageMeter`], the shared latest
//! reading that the client checks before every request it sends.
//!
//! Invariant: the meter only ever holds a reading Salesforce sent; with no reading yet, the
//! guard lets requests through (the first data response brings one).

use std::sync::Mutex;

use super::ApiUsage;
use super::error::FetchError;

/// Parses the first `api-usage=<used>/<max>` of a `Sforce-Limit-Info` header, ignoring any
/// `per-app-api-usage=...` that may follow.
pub fn parse_limit_info(header: &str) -> Option<ApiUsage> {
    header.split([';', ',']).map(str::trim).find_map(|part| {
        let value = part.strip_prefix("api-usage=")?;
        let (used, max) = value.split_once('/')?;
        let used = leading_number(used)?;
        let max = leading_number(max)?;
        Some(ApiUsage { used, max })
    })
}

/// The digits at the start of `text` (after spaces) as a number.
fn leading_number(text: &str) -> Option<u64> {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text[..end].parse().ok()
}

/// Reads `DailyApiRequests` from a `GET /limits` body: used = `Max - Remaining`.
pub fn parse_limits(body: &serde_json::Value) -> Option<ApiUsage> {
    let daily = body.get("DailyApiRequests")?;
    let max = daily.get("Max")?.as_u64()?;
    let remaining = daily.get("Remaining")?.as_u64()?;
    Some(ApiUsage {
        used: max.saturating_sub(remaining),
        max,
    })
}

/// Reads `DailyBulkV2QueryJobs` from a `GET /limits` body (§6.1): Bulk API 2.0 query jobs
/// of the rolling 24 hours.
pub fn parse_bulk_jobs(body: &serde_json::Value) -> Option<ApiUsage> {
    let jobs = body.get("DailyBulkV2QueryJobs")?;
    let max = jobs.get("Max")?.as_u64()?;
    let remaining = jobs.get("Remaining")?.as_u64()?;
    Some(ApiUsage {
        used: max.saturating_sub(remaining),
        max,
    })
}

/// The latest usage reading, shared by all workers, and the `--max-api-usage` guard.
#[derive(Debug)]
pub struct UsageMeter {
    /// Latest reading; a `std` mutex because it is held for a copy, never across `.await`.
    latest: Mutex<Option<ApiUsage>>,
    /// The share (percent) at which no new request is sent.
    limit_pct: f64,
    /// Salesforce's message once it said the daily allocation is spent: nothing more is sent.
    spent: Mutex<Option<String>>,
}

impl UsageMeter {
    pub fn new(limit_pct: f64) -> Self {
        Self {
            latest: Mutex::new(None),
            limit_pct,
            spent: Mutex::new(None),
        }
    }

    pub fn latest(&self) -> Option<ApiUsage> {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a reading; answers arrive out of order, but each is Salesforce's own recent
    /// count, so the newest to arrive is as good as any.
    pub fn record(&self, usage: ApiUsage) {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(usage);
        crate::metrics::global().api_usage(usage.used, usage.max);
    }

    /// Remembers that Salesforce refused a request for the daily total.
    pub fn mark_spent(&self, message: &str) {
        *self.spent.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.to_string());
    }

    /// `Err(DailyLimit)` once Salesforce said the allocation is spent, `Err(UsageGuard)` once
    /// the latest reading is at or over the limit.
    pub fn check(&self) -> Result<(), FetchError> {
        if let Some(message) = self.spent.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(FetchError::DailyLimit { message });
        }
        match self.latest() {
            Some(u) if u.max > 0 && u.share_pct() >= self.limit_pct => {
                Err(FetchError::UsageGuard {
                    used: u.used,
                    max: u.max,
                    share: u.share_pct(),
                    limit: self.limit_pct,
                })
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ExitKind, UserFacing};

    #[test]
    fn limit_info_takes_the_first_api_usage_and_ignores_the_rest() {
        let u = |used, max| Some(ApiUsage { used, max });
        assert_eq!(parse_limit_info("api-usage=18/15000"), u(18, 15000));
        assert_eq!(
            parse_limit_info("api-usage=18/15000; per-app-api-usage=17/250(appName=sfbackfill)"),
            u(18, 15000)
        );
        assert_eq!(
            parse_limit_info("per-app-api-usage=17/250(appName=x); api-usage=5/10"),
            u(5, 10)
        );
        assert_eq!(parse_limit_info(" api-usage= 7/100 "), u(7, 100));
        assert_eq!(parse_limit_info("api-usage=x/100"), None);
        assert_eq!(parse_limit_info("api-usage=7"), None);
        assert_eq!(parse_limit_info(""), None);
    }

    #[test]
    fn limits_body_gives_used_as_max_minus_remaining() {
        let body = serde_json::json!({
            "DailyApiRequests": {"Max": 15000, "Remaining": 14982, "sfbackfill": {"Max": 0, "Remaining": 0}},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000}
        });
        assert_eq!(
            parse_limits(&body),
            Some(ApiUsage {
                used: 18,
                max: 15000
            })
        );
        assert_eq!(parse_limits(&serde_json::json!({})), None);
    }

    #[test]
    fn the_guard_stops_at_the_configured_share_and_not_before() {
        let meter = UsageMeter::new(75.0);
        assert!(
            meter.check().is_ok(),
            "no reading yet: let requests through"
        );
        meter.record(ApiUsage {
            used: 749,
            max: 1000,
        });
        assert!(meter.check().is_ok());
        meter.record(ApiUsage {
            used: 750,
            max: 1000,
        });
        let e = meter.check().unwrap_err();
        assert_eq!(e.exit_kind(), ExitKind::Resumable);
        assert!(e.to_string().contains("75.0%"), "{e}");
        assert!(
            e.hint()
                .unwrap()
                .contains("run the same command again later")
        );
        meter.record(ApiUsage { used: 10, max: 0 });
        assert!(meter.check().is_ok(), "a zero max is no reading");
        meter.mark_spent("TotalRequests Limit exceeded.");
        let e = meter.check().unwrap_err();
        assert!(matches!(e, FetchError::DailyLimit { .. }), "{e:?}");
    }
}
