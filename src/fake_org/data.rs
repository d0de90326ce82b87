//! STUB (being replaced by its owner): the seeded, deterministic org data and its describes.
use chrono::{DateTime, Utc};

/// Every object's describe and rows. Rows are shared snapshots (`Arc`), so a query result
/// taken before a modification keeps seeing the old rows.
pub struct Org {
    /// The Run-As user's zone, used by `convertTimezone()`.
    pub user_time_zone: chrono_tz::Tz,
}

impl Org {
    /// The same `seed` and `scale` always give the same org.
    pub fn generate(_seed: u64, _scale: u32) -> Org {
        unimplemented!("data stub")
    }
    /// The describeGlobal body (salesforce-api.md §3.1).
    pub fn describe_global(&self, _api_version: &str) -> serde_json::Value {
        unimplemented!("data stub")
    }
    /// The sObject describe body, or `None` for an unknown object (case-insensitive name).
    pub fn describe(&self, _object: &str, _api_version: &str) -> Option<serde_json::Value> {
        unimplemented!("data stub")
    }
    /// Changes `count` rows (new values, cursor fields moved to `now`); returns how many.
    pub fn modify_rows(&mut self, _count: usize, _now: DateTime<Utc>, _seed: u64) -> usize {
        unimplemented!("data stub")
    }
}
