//! The fetch plan: which range queries serve which days, so a backfill costs close to the
//! pages its rows need rather than one query per day.
//!
//! Owns the grouping of an object's pending days into [`Span`]s (consecutive days read by one
//! query) and the rules that cut a large span into parts from a per-day row estimate. Pure: no
//! I/O. Does not own the day boundaries (`plan`) nor running the queries (`schedule`).
//!
//! Invariants:
//! * A span's days are consecutive (each day's window ends where the next begins), so its one
//!   range query returns exactly the rows of those days; empty days cost nothing of their own.
//! * Splitting never loses or repeats a day: the parts of a span tile it in order.
//! * The manifest's unit stays the day; a span only decides how days are fetched.

use chrono::{Duration, NaiveDate};
use std::collections::BTreeMap;
use std::ops::Range;

use crate::plan::{Chunk, Window};

/// A span is refined (counted and cut into parts fetched in parallel) only when its first page
/// says it needs more than this many pages: below it, one more query costs more than the
/// parallelism gains, and the count query plus a part's partial last page stay under 10 %.
pub const REFINE_OVER_PAGES: u64 = 10;

/// Salesforce returns at most 2,000 groups from an aggregate query (salesforce-api.md §4.6);
/// a span longer than this many days is cut evenly instead of counted.
pub const MAX_COUNTED_DAYS: usize = 1_900;

/// Consecutive days of one object, read by one range query per field group.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub object: String,
    /// Ordered, consecutive, never empty.
    pub days: Vec<Chunk>,
}

impl Span {
    /// The span's time range: from its first day's start to its last day's end.
    pub fn window(&self) -> Window {
        Window {
            start: self.days[0].window.start,
            end: self.days[self.days.len() - 1].window.end,
        }
    }

    /// The days `range` of this span, as a span.
    pub fn part(&self, range: Range<usize>) -> Span {
        Span {
            object: self.object.clone(),
            days: self.days[range].to_vec(),
        }
    }
}

/// Groups chunks into spans: each run of consecutive days of one object becomes one span.
/// Chunks may come in any order; days already done leave gaps that start a new span.
pub fn spans(mut chunks: Vec<Chunk>) -> Vec<Span> {
    chunks.sort_by(|a, b| (&a.object, a.day).cmp(&(&b.object, b.day)));
    let mut out: Vec<Span> = Vec::new();
    for chunk in chunks {
        match out.last_mut() {
            Some(span)
                if span.object == chunk.object
                    && span.days[span.days.len() - 1].window.end == chunk.window.start =>
            {
                span.days.push(chunk)
            }
            _ => out.push(Span {
                object: chunk.object.clone(),
                days: vec![chunk],
            }),
        }
    }
    out
}

/// Whether a span whose first page held `page_rows` of `total_rows` should be refined.
pub fn should_refine(span_days: usize, total_rows: u64, page_rows: u64) -> bool {
    span_days > 1 && total_rows.div_ceil(page_rows.max(1)) > REFINE_OVER_PAGES
}

/// Each day's estimated rows from counts per UTC day (`DAY_ONLY` without `convertTimezone`),
/// shared out by how much of each UTC day the chunk's window covers.
pub fn estimate_days(days: &[Chunk], utc_counts: &BTreeMap<NaiveDate, u64>) -> Vec<f64> {
    days.iter()
        .map(|chunk| {
            let (start, end) = (chunk.window.start, chunk.window.end);
            let mut estimate = 0.0;
            let mut day = start.date_naive();
            while day.and_hms_opt(0, 0, 0).expect("midnight").and_utc() < end {
                let day_start = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
                let day_end = day_start + Duration::days(1);
                let overlap = (end.min(day_end) - start.max(day_start)).num_milliseconds();
                if let (Some(n), true) = (utc_counts.get(&day), overlap > 0) {
                    estimate += *n as f64 * overlap as f64 / 86_400_000.0;
                }
                day = day.succ_opt().expect("dates stay in range");
            }
            estimate
        })
        .collect()
}

/// Cuts `estimates.len()` consecutive days into parts of about `target` rows each: a part
/// closes before a day that would take it past `target`, so a heavy day stands alone.
pub fn split(estimates: &[f64], target: f64) -> Vec<Range<usize>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut rows = 0.0;
    for (i, &n) in estimates.iter().enumerate() {
        if i > start && rows + n > target {
            parts.push(start..i);
            start = i;
            rows = 0.0;
        }
        rows += n;
    }
    if start < estimates.len() {
        parts.push(start..estimates.len());
    }
    parts
}

/// Cuts `days` days into `parts` runs of nearly equal length, for spans too long to count.
pub fn split_evenly(days: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, days.max(1));
    (0..parts)
        .map(|p| p * days / parts..(p + 1) * days / parts)
        .filter(|r| !r.is_empty())
        .collect()
}

/// The rows a part should hold: enough pages that its partial last page wastes little, and
/// small enough that `concurrency` parts run side by side.
pub fn part_target(total_rows: u64, page_rows: u64, concurrency: usize) -> f64 {
    let floor = (REFINE_OVER_PAGES * page_rows.max(1)) as f64;
    (total_rows as f64 / concurrency.max(1) as f64).max(floor)
}

/// The rows per UTC day in an answer to `soql::count_by_day` (`AggregateResult` rows `{d, n}`).
pub fn day_counts(answer: &serde_json::Value) -> BTreeMap<NaiveDate, u64> {
    answer["records"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .filter_map(|r| {
                    let day = NaiveDate::parse_from_str(r["d"].as_str()?, "%Y-%m-%d").ok()?;
                    Some((day, r["n"].as_u64()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The expected cost of reading one span: first pages (one per query) and requests in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub queries: u64,
    pub requests: u64,
}

/// What the scheduler is expected to send for a span whose days hold `estimates` rows, at
/// `page_rows` per page: one query paged through, or when refined, a count query, one query
/// per part and at most one page of the first query read past its part.
pub fn expected_cost(estimates: &[f64], page_rows: u64, concurrency: usize) -> Cost {
    let page = page_rows.max(1);
    let pages = |rows: f64| (rows.ceil() as u64).div_ceil(page).max(1);
    let total: f64 = estimates.iter().sum();
    if !should_refine(estimates.len(), total.ceil() as u64, page) {
        return Cost {
            queries: 1,
            requests: pages(total),
        };
    }
    let parts = split(
        estimates,
        part_target(total.ceil() as u64, page, concurrency),
    );
    let part_pages: u64 = parts
        .iter()
        .map(|p| pages(estimates[p.clone()].iter().sum()))
        .sum();
    let overshoot = u64::from(parts.len() > 1);
    Cost {
        queries: parts.len() as u64,
        requests: part_pages + 1 + overshoot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{self, chunks};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    fn june(tz: &str) -> Vec<Chunk> {
        let tz = plan::parse_zone(tz).unwrap();
        let w = Window::new(
            Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap(),
        )
        .unwrap();
        chunks(&["Account".into(), "Case".into()], w, tz)
    }

    #[test]
    fn consecutive_days_of_an_object_make_one_span_and_gaps_start_another() {
        let mut all = june("UTC");
        assert_eq!(spans(all.clone()).len(), 2);
        all.retain(|c| c.day != NaiveDate::from_ymd_opt(2025, 6, 10).unwrap());
        let s = spans(all);
        assert_eq!(s.len(), 4);
        assert_eq!(s.iter().map(|s| s.days.len()).sum::<usize>(), 58);
        for span in &s {
            for pair in span.days.windows(2) {
                assert_eq!(pair[0].window.end, pair[1].window.start);
            }
        }
    }

    #[test]
    fn a_heavy_day_stands_alone_and_light_days_share_a_part() {
        let estimates = [10.0, 10.0, 30_000.0, 5.0, 5.0, 5.0];
        assert_eq!(split(&estimates, 20_000.0), vec![0..2, 2..3, 3..6]);
        assert_eq!(split(&[], 10.0), Vec::<Range<usize>>::new());
        assert_eq!(split(&[50.0], 10.0), vec![0..1]);
    }

    #[test]
    fn utc_counts_are_shared_out_over_zoned_days() {
        let days: Vec<Chunk> = june("America/New_York")
            .into_iter()
            .filter(|c| c.object == "Account")
            .collect();
        let counts: BTreeMap<NaiveDate, u64> = (1..=30)
            .map(|d| (NaiveDate::from_ymd_opt(2025, 6, d).unwrap(), 240))
            .collect();
        let est = estimate_days(&days, &counts);
        // New York is UTC-4 in June: the window's first local day (31 May) holds the first
        // 4 h of 1 June UTC, a whole local day spans 20 h of one UTC day and 4 h of the next,
        // and the last (30 June) ends at the window's end, 00:00 UTC on 1 July.
        assert_eq!(est.len(), 31);
        assert!((est[0] - 40.0).abs() < 1e-9, "{}", est[0]);
        assert!((est[1] - 240.0).abs() < 1e-9, "{}", est[1]);
        assert!((est[30] - 200.0).abs() < 1e-9, "{}", est[30]);
        assert!((est.iter().sum::<f64>() - 240.0 * 30.0).abs() < 1e-6);
    }

    #[test]
    fn refining_needs_several_days_and_more_than_the_threshold_of_pages() {
        assert!(!should_refine(1, 1_000_000, 2000));
        assert!(!should_refine(30, 20_000, 2000));
        assert!(should_refine(30, 20_001, 2000));
        assert!(part_target(1_000_000, 2000, 4) >= 250_000.0);
        assert_eq!(part_target(30_000, 2000, 4), 20_000.0);
    }

    #[test]
    fn a_small_span_costs_its_pages_and_a_large_one_a_count_and_its_parts() {
        assert_eq!(
            expected_cost(&[0.0; 30], 2000, 4),
            Cost {
                queries: 1,
                requests: 1
            }
        );
        assert_eq!(expected_cost(&[300.0; 30], 2000, 4).requests, 5);
        let heavy = expected_cost(&[1000.0, 1000.0, 60_000.0, 1000.0], 2000, 4);
        assert_eq!(heavy.queries, 3);
        assert_eq!(heavy.requests, 1 + 30 + 1 + 1 + 1);
    }

    #[test]
    fn day_counts_read_the_aggregate_rows() {
        let answer = serde_json::json!({"totalSize": 2, "done": true, "records": [
            {"attributes": {"type": "AggregateResult"}, "d": "2024-03-10", "n": 418},
            {"attributes": {"type": "AggregateResult"}, "d": "2024-03-11", "n": 377}]});
        let counts = day_counts(&answer);
        assert_eq!(counts[&NaiveDate::from_ymd_opt(2024, 3, 10).unwrap()], 418);
        assert_eq!(counts.values().sum::<u64>(), 795);
    }

    proptest! {
        #[test]
        fn parts_tile_the_days_in_order(estimates in prop::collection::vec(0.0f64..50_000.0, 0..200), target in 1.0f64..100_000.0) {
            let parts = split(&estimates, target);
            let mut next = 0;
            for p in &parts {
                prop_assert_eq!(p.start, next);
                prop_assert!(p.end > p.start);
                next = p.end;
            }
            prop_assert_eq!(next, estimates.len());
        }

        #[test]
        fn even_parts_tile_the_days(days in 1usize..3000, parts in 1usize..64) {
            let ranges = split_evenly(days, parts);
            let mut next = 0;
            for r in &ranges {
                prop_assert_eq!(r.start, next);
                next = r.end;
            }
            prop_assert_eq!(next, days);
        }
    }
}
