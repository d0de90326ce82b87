//! Query locators: the frozen result behind each `nextRecordsUrl`, and their lifetime.
//!
//! Owns which locators are alive (salesforce-api.md §4.4). Invariants: a locator serves the
//! snapshot taken when its query ran, whatever happens to the org afterwards; any page of it
//! may be fetched again while it lives; a locator dies `ttl` after its last use, and under the
//! legacy rule opening an eleventh unfinished cursor silently kills the oldest; invalidating
//! (as org maintenance does) kills every locator open at that moment. Dead, expired, invalidated
//! and unknown locators are indistinguishable to the caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::exec::QueryResult;

/// Cursors since API 56.0 live two days (§4.4).
pub const MODERN_TTL: Duration = Duration::from_secs(2 * 24 * 3600);
/// Before 56.0, 15 minutes of inactivity killed a cursor.
pub const LEGACY_TTL: Duration = Duration::from_secs(15 * 60);
/// Before 56.0, a user could hold this many open cursors.
pub const LEGACY_OPEN_LIMIT: usize = 10;
/// A fully read cursor is kept this long after its last use, so a client re-reading a
/// cut-off last page still finds it, without the table growing for two days in benches.
const FINISHED_GRACE: Duration = Duration::from_secs(120);

/// One open query.
pub struct Cursor {
    pub result: Arc<QueryResult>,
    pub page_size: usize,
    opened: u64,
    last_used: Instant,
    finished: bool,
}

/// The locator table. A `std` mutex: every operation is a short map update, never awaits.
pub struct Cursors {
    legacy: bool,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_order: u64,
    open: HashMap<String, Cursor>,
}

impl Cursors {
    pub fn new(legacy: bool) -> Self {
        Self {
            legacy,
            table: Mutex::new(Table::default()),
        }
    }

    /// Registers a query whose first page did not hold every row.
    pub fn open(
        &self,
        locator: String,
        result: Arc<QueryResult>,
        page_size: usize,
        ttl: Option<Duration>,
    ) {
        let mut t = self.lock();
        let now = Instant::now();
        let ttl = self.ttl(ttl);
        t.open.retain(|_, c| !is_dead(c, now, ttl));
        if self.legacy {
            let unfinished = t.open.values().filter(|c| !c.finished).count();
            if unfinished >= LEGACY_OPEN_LIMIT {
                let oldest = t
                    .open
                    .iter()
                    .filter(|(_, c)| !c.finished)
                    .min_by_key(|(_, c)| c.opened)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    t.open.remove(&k);
                }
            }
        }
        let opened = t.next_order;
        t.next_order += 1;
        t.open.insert(
            locator,
            Cursor {
                result,
                page_size,
                opened,
                last_used: now,
                finished: false,
            },
        );
    }

    /// The snapshot behind `locator` if it is alive, touching it; `end` is the row after
    /// the page about to be served, so a cursor read to the end is marked finished.
    pub fn page(
        &self,
        locator: &str,
        offset: usize,
        ttl: Option<Duration>,
    ) -> Option<(Arc<QueryResult>, usize, usize)> {
        let mut t = self.lock();
        let now = Instant::now();
        let ttl = self.ttl(ttl);
        let cursor = t.open.get_mut(locator)?;
        if is_dead(cursor, now, ttl) {
            t.open.remove(locator);
            return None;
        }
        let len = cursor.result.len();
        if offset > len || offset == 0 {
            return None;
        }
        let end = (offset + cursor.page_size).min(len);
        cursor.last_used = now;
        cursor.finished |= end >= len;
        Some((cursor.result.clone(), cursor.page_size, end))
    }

    /// Kills every locator open now, finished or not, as org maintenance does: each answers
    /// `INVALID_QUERY_LOCATOR` from then on. Queries run afterwards open new ones as usual.
    /// Returns how many were open.
    pub fn invalidate_all(&self) -> usize {
        let mut t = self.lock();
        let open = t.open.len();
        t.open.clear();
        open
    }

    /// Live cursors, finished or not.
    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    fn ttl(&self, fault: Option<Duration>) -> Duration {
        fault.unwrap_or(if self.legacy { LEGACY_TTL } else { MODERN_TTL })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn is_dead(c: &Cursor, now: Instant, ttl: Duration) -> bool {
    let idle = now.duration_since(c.last_used);
    idle >= ttl || (c.finished && idle >= FINISHED_GRACE)
}
