//! The fetch plan: which range queries serve which days, so a backfill costs close to the
//! pages its rows need rather than one query per day.
//!
//! Owns the grouping of an object's pending days into [`Span`]s (consecutive days read by one
//! query), the rules that cut a large span into parts from a per-day row estimate, the rules
//! that cut one heavy day into sub-ranges from a per-hour count ([`cut_day`]), and the `Id`
//! ranges a sub-range too heavy for any hour cut is read in ([`id_splits`], [`id_cuts`],
//! [`id_ranges`]). Pure: no I/O. Does not own the day boundaries (`plan`) nor running the
//! queries (`backfill`).
//!
//! Invariants:
//! * A span's days are consecutive (each day's window ends where the next begins), so its one
//!   range query returns exactly the rows of those days; empty days cost nothing of their own.
//! * Splitting never loses or repeats a day: the parts of a span tile it in order.
//! * The manifest's unit stays the day; a span only decides how days are fetched.
//! * A day's sub-ranges tile its window in order, on UTC hour boundaries: rows sharing one
//!   cursor instant always fall in one sub-range, so no time cut can share out a day whose rows
//!   share a second. A sub-range holding well over a fair part of the day is read in `Id`
//!   ranges instead ([`id_splits`]): the first open below, the last open above, each cut ending
//!   one range and starting the next, so together they hold every id exactly once.

use chrono::{DateTime, Duration, DurationRound, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::ops::Range;

use crate::plan::{Chunk, Window};
use crate::salesforce::soql::IdRange;

/// The fewest pages a part of a cut span or day is given. Parts are otherwise sized from the
/// pages and `--concurrency` ([`part_target`]), so every slot has a chain of pages to follow
/// when each response takes long; this floor keeps a part's partial last page to about an
/// eighth of its requests.
pub const MIN_PART_PAGES: u64 = 4;

/// A span is refined (counted and cut into parts fetched in parallel) only when its first page
/// says it needs more than this many pages: room for two parts.
pub const REFINE_OVER_PAGES: u64 = 2 * MIN_PART_PAGES;

/// The fewest pages a sub-range of one heavy day is given, and the pages above which a day is
/// counted by hour. Higher than a span's floor: a day's cut costs more (a count by hour, two
/// edge-id queries per `Id`-cut hour, a partial page per sub-range), and a heavy day is rare,
/// so the slots it leaves idle are few.
pub const DAY_PART_MIN_PAGES: u64 = 10;

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

/// The rows a part should hold: a share of the span that lets `concurrency` parts run side by
/// side, and at least [`MIN_PART_PAGES`] pages so its partial last page wastes little.
pub fn part_target(total_rows: u64, page_rows: u64, concurrency: usize) -> f64 {
    let floor = (MIN_PART_PAGES * page_rows.max(1)) as f64;
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

/// `total` rows shared evenly over the UTC days `window` touches (the first days take the
/// remainder): an estimate for an org that will not count rows per day.
pub fn spread_evenly(window: Window, total: u64) -> BTreeMap<NaiveDate, u64> {
    let first = window.start.date_naive();
    let last = (window.end - Duration::milliseconds(1)).date_naive();
    let days: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= last).collect();
    let n = days.len().max(1) as u64;
    days.into_iter()
        .enumerate()
        .map(|(i, day)| (day, total / n + u64::from((i as u64) < total % n)))
        .collect()
}

/// Whether one day estimated at `rows` is worth counting by hour and cutting into sub-ranges:
/// above [`DAY_PART_MIN_PAGES`], more than a span's threshold, since a day's cut costs more (a
/// count by hour, edge ids, a partial page per sub-range).
pub fn should_cut_day(rows: f64, page_rows: u64) -> bool {
    rows > (DAY_PART_MIN_PAGES * page_rows.max(1)) as f64
}

/// The rows per UTC hour in an answer to `soql::count_by_hour` (`AggregateResult` rows
/// `{d, h, n}`: `DAY_ONLY` and `HOUR_IN_DAY` without `convertTimezone` are UTC), keyed by the
/// hour's start.
pub fn hour_counts(answer: &serde_json::Value) -> BTreeMap<DateTime<Utc>, u64> {
    answer["records"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .filter_map(|r| {
                    let day = NaiveDate::parse_from_str(r["d"].as_str()?, "%Y-%m-%d").ok()?;
                    let hour = u32::try_from(r["h"].as_u64()?).ok()?;
                    let start = day.and_hms_opt(hour, 0, 0)?.and_utc();
                    Some((start, r["n"].as_u64()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `window` cut at every UTC hour boundary inside it, each part with the start of its hour.
fn hour_slots(window: Window) -> impl Iterator<Item = (DateTime<Utc>, Window)> {
    let mut at = window.start;
    std::iter::from_fn(move || {
        if at >= window.end {
            return None;
        }
        let hour = at
            .duration_trunc(Duration::hours(1))
            .expect("instants truncate to hours");
        let next = (hour + Duration::hours(1)).min(window.end);
        let slot = Window {
            start: at,
            end: next,
        };
        at = next;
        Some((hour, slot))
    })
}

/// The rows estimated in `window` from rows per UTC hour, an hour's rows spread evenly over it.
pub fn window_rows(window: Window, hours: &BTreeMap<DateTime<Utc>, u64>) -> f64 {
    hour_slots(window)
        .map(|(hour, slot)| {
            let share = (slot.end - slot.start).num_milliseconds() as f64 / 3_600_000.0;
            hours.get(&hour).map_or(0.0, |&n| n as f64 * share)
        })
        .sum()
}

/// How many `Id` ranges to read each of a day's sub-range `windows` in: more than one only
/// where a window holds over twice the rows of a fair part (the day's rows over `max_parts`,
/// at least [`DAY_PART_MIN_PAGES`] pages). Those are rows no cut between hours can share out,
/// such as a bulk update that stamped them all with one second.
pub fn id_splits(
    windows: &[Window],
    hours: &BTreeMap<DateTime<Utc>, u64>,
    page_rows: u64,
    max_parts: usize,
) -> Vec<usize> {
    let rows: Vec<f64> = windows.iter().map(|w| window_rows(*w, hours)).collect();
    let floor = (DAY_PART_MIN_PAGES * page_rows.max(1)) as f64;
    let fair = (rows.iter().sum::<f64>() / max_parts.max(1) as f64).max(floor);
    rows.iter()
        .map(|&r| match r > 2.0 * fair {
            true => ((r / fair).ceil() as usize).clamp(1, max_parts.max(1)),
            false => 1,
        })
        .collect()
}

/// Salesforce id characters in the order ids sort in (`0-9A-Za-z`, as in ASCII).
const ID_DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// The significant length of an id; the 3 characters an 18-character id adds are a checksum.
const ID_LEN: usize = 15;

/// Up to `parts - 1` ids that cut the ids from `first` to `last` into `parts` ranges of about
/// equal width, reading an id's first 15 characters as a base-62 number: 15-character ids,
/// strictly increasing, each above `first` and at most `last`. The ranges are `[.., cut1)`,
/// `[cut1, cut2)`, ... `[cutN, ..)`, so every id falls in exactly one whatever the ids are;
/// equal width means equal rows only when ids are spread evenly, as sequential ids are. Empty
/// when the ids are not base-62 or too close together to cut.
pub fn id_cuts(first: &str, last: &str, parts: usize) -> Vec<String> {
    let (Some(lo), Some(hi)) = (id_number(first), id_number(last)) else {
        return Vec::new();
    };
    let mut cuts: Vec<u128> = Vec::new();
    for k in 1..parts.max(1) as u128 {
        let cut = lo + (hi.saturating_sub(lo)) * k / parts as u128;
        if cut > lo && cuts.last().is_none_or(|&c| cut > c) {
            cuts.push(cut);
        }
    }
    cuts.into_iter().map(id_text).collect()
}

/// The `Id` ranges between `cuts` (from [`id_cuts`]): the first open below, the last open
/// above, so together they hold every id. One whole range when there is no cut.
pub fn id_ranges(cuts: Vec<String>) -> Vec<IdRange> {
    let mut from = None;
    cuts.into_iter()
        .map(Some)
        .chain([None])
        .map(|to| {
            let range = IdRange {
                from: from.take(),
                to: to.clone(),
            };
            from = to;
            range
        })
        .collect()
}

fn id_number(id: &str) -> Option<u128> {
    if id.len() < ID_LEN {
        return None;
    }
    id.bytes().take(ID_LEN).try_fold(0u128, |n, b| {
        let digit = ID_DIGITS.iter().position(|&d| d == b)?;
        Some(n * 62 + digit as u128)
    })
}

fn id_text(mut n: u128) -> String {
    let mut id = [b'0'; ID_LEN];
    for slot in id.iter_mut().rev() {
        *slot = ID_DIGITS[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(id.to_vec()).expect("id digits are ASCII")
}

/// Cuts one day's `window` into contiguous sub-ranges of about equal rows, from its rows per
/// UTC hour, to be read side by side: at most `max_parts` of them, each estimated at no fewer
/// than [`DAY_PART_MIN_PAGES`] pages of `page_rows` (fewer would cost more in partial pages than
/// the parallelism gains). Cuts fall on UTC hour boundaries inside the window, so a zoned day
/// (crossing a UTC midnight, 23 or 25 hours long) is cut like any other; an hour's rows are
/// assumed spread evenly over it where the window holds only part of that hour. One window
/// back means: read it whole.
pub fn cut_day(
    window: Window,
    hours: &BTreeMap<DateTime<Utc>, u64>,
    page_rows: u64,
    max_parts: usize,
) -> Vec<Window> {
    // Slots: the window cut at every UTC hour boundary inside it, with their row estimates.
    let slots: Vec<(Window, f64)> = hour_slots(window)
        .map(|(_, slot)| (slot, window_rows(slot, hours)))
        .collect();
    let total: f64 = slots.iter().map(|s| s.1).sum();
    let floor = (DAY_PART_MIN_PAGES * page_rows.max(1)) as f64;
    // A quarter of slack: cuts snap to hours, so parts come out a little uneven.
    let wanted = ((total / (floor * 1.25)) as usize)
        .min(max_parts)
        .min(slots.len());
    if wanted < 2 {
        return vec![window];
    }
    // Cut after the slot whose running total is nearest each k/wanted of the rows.
    let cumulative: Vec<f64> = slots
        .iter()
        .scan(0.0, |sum, s| {
            *sum += s.1;
            Some(*sum)
        })
        .collect();
    let mut cuts: Vec<usize> = Vec::new();
    for k in 1..wanted {
        let goal = total * k as f64 / wanted as f64;
        let best = (0..slots.len() - 1)
            .min_by(|&a, &b| {
                (cumulative[a] - goal)
                    .abs()
                    .total_cmp(&(cumulative[b] - goal).abs())
            })
            .expect("at least two slots");
        if cuts.last().is_none_or(|&last| best > last) {
            cuts.push(best);
        }
    }
    // Parts as slot ranges; a part below the floor joins its lighter neighbour.
    let mut parts: Vec<(Range<usize>, f64)> = Vec::new();
    let mut from = 0;
    for end in cuts.into_iter().map(|c| c + 1).chain([slots.len()]) {
        let rows = slots[from..end].iter().map(|s| s.1).sum();
        parts.push((from..end, rows));
        from = end;
    }
    while parts.len() > 1 {
        let Some((i, _)) = parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.1 < floor)
            .min_by(|a, b| a.1.1.total_cmp(&b.1.1))
        else {
            break;
        };
        let j = match (i.checked_sub(1), (i + 1 < parts.len()).then_some(i + 1)) {
            (Some(l), Some(r)) if parts[r].1 < parts[l].1 => r,
            (Some(l), _) => l,
            (None, Some(r)) => r,
            (None, None) => unreachable!("more than one part"),
        };
        let (lo, hi) = (i.min(j), i.max(j));
        let merged = (
            parts[lo].0.start..parts[hi].0.end,
            parts[lo].1 + parts[hi].1,
        );
        parts[lo] = merged;
        parts.remove(hi);
    }
    parts
        .into_iter()
        .map(|(r, _)| Window {
            start: slots[r.start].0.start,
            end: slots[r.end - 1].0.end,
        })
        .collect()
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
    // A single-day part above the threshold is counted by hour (one request); the pages its
    // sub-ranges add (at most one partial page each) depend on those counts and are not here.
    let hour_counts = |days: &[f64]| {
        u64::from(concurrency > 1 && days.len() == 1 && should_cut_day(days[0], page))
    };
    if !should_refine(estimates.len(), total.ceil() as u64, page) {
        return Cost {
            queries: 1,
            requests: pages(total) + hour_counts(estimates),
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
    let counts: u64 = parts
        .iter()
        .map(|p| hour_counts(&estimates[p.clone()]))
        .sum();
    Cost {
        queries: parts.len() as u64,
        requests: part_pages + 1 + overshoot + counts,
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
        assert!(
            !should_refine(30, 16_000, 2000),
            "8 pages: no room for two parts"
        );
        assert!(should_refine(30, 16_001, 2000));
        assert!(part_target(1_000_000, 2000, 4) >= 250_000.0);
        assert_eq!(
            part_target(30_000, 2000, 4),
            8_000.0,
            "at least 4 pages a part"
        );
        assert_eq!(part_target(160_000, 2000, 8), 20_000.0, "a share per slot");
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
        // The day count, the parts' pages, the first query's page past its part, and the
        // heavy day's count by hour.
        assert_eq!(heavy.requests, 1 + 30 + 1 + 1 + 1 + 1);
        assert_eq!(expected_cost(&[60_000.0], 2000, 4).requests, 30 + 1);
        assert_eq!(
            expected_cost(&[60_000.0], 2000, 1).requests,
            30,
            "no one to share with"
        );
    }

    #[test]
    fn a_window_with_most_of_the_days_rows_is_read_in_id_ranges() {
        let day = Window {
            start: Utc.with_ymd_and_hms(2025, 9, 17, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2025, 9, 18, 0, 0, 0).unwrap(),
        };
        let hour = |h| Utc.with_ymd_and_hms(2025, 9, 17, h, 0, 0).unwrap();
        let hours: BTreeMap<_, _> = [(hour(9), 3_000), (hour(16), 24_000), (hour(20), 3_000)]
            .into_iter()
            .collect();
        let windows = [
            Window {
                start: day.start,
                end: hour(16),
            },
            Window {
                start: hour(16),
                end: hour(17),
            },
            Window {
                start: hour(17),
                end: day.end,
            },
        ];
        assert_eq!(window_rows(windows[1], &hours), 24_000.0);
        assert_eq!(id_splits(&windows, &hours, 200, 4), [1, 4, 1]);
        assert_eq!(
            id_splits(&windows, &hours, 2_000, 4),
            [1, 1, 1],
            "parts under 10 pages"
        );
        assert_eq!(id_splits(&[day], &hours, 200, 1), [1], "no other worker");
    }

    #[test]
    fn id_cuts_are_increasing_ids_between_the_first_and_the_last() {
        let cuts = id_cuts("5008c00000000AAAAA", "5008c00000000zzAAA", 4);
        assert_eq!(cuts.len(), 3);
        assert!(cuts.iter().all(|c| c.len() == 15));
        assert!(cuts.windows(2).all(|w| w[0] < w[1]));
        assert!("5008c00000000AA" < cuts[0].as_str() && cuts[2].as_str() <= "5008c00000000zz");
        assert_eq!(
            id_cuts("5008c0000000001", "5008c0000000003", 2),
            ["5008c0000000002"]
        );
        assert!(id_cuts("5008c0000000001", "5008c0000000002", 4).is_empty());
        assert!(id_cuts("5008c0000000002", "5008c0000000002", 4).is_empty());
        assert!(id_cuts("500-bad-id-0000", "5008c0000000002", 4).is_empty());
        let ranges = id_ranges(vec!["a".into(), "b".into()]);
        let bounds: Vec<_> = ranges
            .iter()
            .map(|r| (r.from.as_deref(), r.to.as_deref()))
            .collect();
        assert_eq!(
            bounds,
            [(None, Some("a")), (Some("a"), Some("b")), (Some("b"), None)]
        );
        assert_eq!(id_ranges(Vec::new()), [IdRange::default()]);
    }

    proptest! {
        #[test]
        fn id_cuts_order_like_the_ids_they_cut(a in 0u128..62u128.pow(15), b in 0u128..62u128.pow(15), parts in 1usize..9) {
            let (lo, hi) = (id_text(a.min(b)), id_text(a.max(b)));
            let cuts = id_cuts(&lo, &hi, parts);
            prop_assert!(cuts.len() < parts.max(1));
            for w in cuts.windows(2) {
                prop_assert!(w[0] < w[1]);
            }
            for c in &cuts {
                prop_assert!(lo < *c && *c <= hi);
            }
        }
    }

    #[test]
    fn an_even_spread_covers_every_utc_day_and_keeps_the_total() {
        let window = Window {
            start: Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2025, 3, 4, 0, 0, 0).unwrap(),
        };
        let spread = spread_evenly(window, 10);
        assert_eq!(spread.values().copied().collect::<Vec<_>>(), [4, 3, 3]);
        assert_eq!(spread_evenly(window, 0).values().sum::<u64>(), 0);
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

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn hours_of(day: &str, counts: &[(u32, u64)]) -> BTreeMap<DateTime<Utc>, u64> {
        let d = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        counts
            .iter()
            .map(|&(h, n)| (d.and_hms_opt(h, 0, 0).unwrap().and_utc(), n))
            .collect()
    }

    #[test]
    fn a_day_spread_over_hours_is_cut_into_equal_sub_ranges_on_hour_boundaries() {
        let day = Window {
            start: utc("2025-09-17T00:00:00Z"),
            end: utc("2025-09-18T00:00:00Z"),
        };
        let even: Vec<(u32, u64)> = (0..24).map(|h| (h, 10_000)).collect();
        let parts = cut_day(day, &hours_of("2025-09-17", &even), 2000, 4);
        let starts: Vec<String> = parts
            .iter()
            .map(|w| w.start.format("%H").to_string())
            .collect();
        assert_eq!(starts, ["00", "06", "12", "18"]);
        assert_eq!(parts[3].end, day.end);
        // Not enough rows for two sub-ranges of 10 pages: read whole.
        let light: Vec<(u32, u64)> = (0..24).map(|h| (h, 1_000)).collect();
        assert_eq!(
            cut_day(day, &hours_of("2025-09-17", &light), 2000, 4),
            vec![day]
        );
        // One worker: nothing to gain.
        assert_eq!(
            cut_day(day, &hours_of("2025-09-17", &even), 2000, 1),
            vec![day]
        );
    }

    #[test]
    fn an_hour_holding_most_rows_stands_alone_and_light_ends_join_a_neighbour() {
        let day = Window {
            start: utc("2025-09-17T00:00:00Z"),
            end: utc("2025-09-18T00:00:00Z"),
        };
        // The fake org's heavy Case day: 80 % on 16:00:00, the rest spread, 200 rows a page.
        let mut shape: Vec<(u32, u64)> = (0..24)
            .map(|h| (h, if h >= 13 { 450 } else { 90 }))
            .collect();
        shape[16].1 = 24_400;
        let parts = cut_day(day, &hours_of("2025-09-17", &shape), 200, 4);
        let cuts: Vec<String> = parts
            .iter()
            .map(|w| w.start.format("%H").to_string())
            .collect();
        assert_eq!(cuts, ["00", "16", "17"]);
        // At 2,000 rows a page the light hours hold under 10 pages on either side: the day is
        // read whole, since the heavy hour is the tail anyway and cannot be cut by time.
        assert_eq!(
            cut_day(day, &hours_of("2025-09-17", &shape), 2000, 4),
            vec![day]
        );
    }

    #[test]
    fn a_zoned_dst_day_is_cut_across_the_utc_midnight() {
        // New York's 2 November 2025 lasts 25 hours: 04:00Z on the 2nd to 05:00Z on the 3rd.
        let day = Window {
            start: utc("2025-11-02T04:00:00Z"),
            end: utc("2025-11-03T05:00:00Z"),
        };
        let mut hours = hours_of(
            "2025-11-02",
            &(0..24).map(|h| (h, 5_000)).collect::<Vec<_>>(),
        );
        hours.extend(hours_of(
            "2025-11-03",
            &(0..24).map(|h| (h, 5_000)).collect::<Vec<_>>(),
        ));
        let parts = cut_day(day, &hours, 2000, 5);
        assert_eq!(parts.len(), 5);
        assert_eq!(parts[0].start, day.start);
        assert_eq!(parts[4].end, day.end);
        for pair in parts.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        // 25 hours of 5,000 rows in five parts of five hours; hours outside the window
        // (00:00–04:00 on the 2nd, after 05:00 on the 3rd) count for nothing.
        let hours_each: Vec<i64> = parts
            .iter()
            .map(|w| (w.end - w.start).num_hours())
            .collect();
        assert_eq!(hours_each, [5, 5, 5, 5, 5]);
    }

    #[test]
    fn hour_counts_read_the_aggregate_rows() {
        let answer = serde_json::json!({"totalSize": 2, "done": true, "records": [
            {"attributes": {"type": "AggregateResult"}, "d": "2025-09-17", "h": 23, "n": 461},
            {"attributes": {"type": "AggregateResult"}, "d": "2025-09-18", "h": 2, "n": 1}]});
        let hours = hour_counts(&answer);
        assert_eq!(hours[&utc("2025-09-17T23:00:00Z")], 461);
        assert_eq!(hours[&utc("2025-09-18T02:00:00Z")], 1);
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
        fn sub_ranges_tile_the_day_within_the_limits(
            counts in prop::collection::vec(0u64..50_000, 26),
            start_min in 0i64..1440,
            len_h in 23i64..26,
            max_parts in 1usize..9,
            page in prop::sample::select(vec![200u64, 2000]),
        ) {
            let start = utc("2025-03-09T00:00:00Z") + Duration::minutes(start_min);
            let day = Window { start, end: start + Duration::hours(len_h) };
            let first = utc("2025-03-09T00:00:00Z");
            let hours: BTreeMap<DateTime<Utc>, u64> = counts
                .iter()
                .enumerate()
                .map(|(i, &n)| (first + Duration::hours(i as i64), n))
                .collect();
            let parts = cut_day(day, &hours, page, max_parts);
            prop_assert!(!parts.is_empty() && parts.len() <= max_parts.max(1));
            prop_assert_eq!(parts[0].start, day.start);
            prop_assert_eq!(parts[parts.len() - 1].end, day.end);
            for pair in parts.windows(2) {
                prop_assert_eq!(pair[0].end, pair[1].start);
                prop_assert!(pair[0].start < pair[0].end);
                prop_assert_eq!(pair[0].end.timestamp() % 3600, 0, "cut off an hour boundary");
            }
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
