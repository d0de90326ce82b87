//! Which part of an object's history a run may copy: the days that are over, and the window a
//! run derives when `--start` or `--end` is left out.
//!
//! Owns the rule that a day is copied only once it is over: its end (the end of the part of it
//! the window holds) lies at least the safety lag before the instant the run starts reading.
//! Rows may still be committing inside the lag (a transaction stamps its rows before it
//! commits, and clocks differ), so a day read earlier could miss rows for good once recorded
//! done. Pure: the instant, the lag and the object's earliest cursor value are given.
//!
//! Invariants:
//! * A day over at `now` is over at every later instant: splitting is monotonic in `now`, so a
//!   run that takes its instant before it reads never records a day that was not over.
//! * A derived end is a day boundary of the chunk zone, so every day of a derived window is
//!   whole and over.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use super::{Chunk, Window, day_start, local_day};

/// The instant a day (or its part) that ends at `end` is over: `lag` after its end.
pub fn closes_at(end: DateTime<Utc>, lag: Duration) -> DateTime<Utc> {
    end + lag
}

/// Whether the chunk window `window` is over at `now`.
pub fn is_over(window: &Window, now: DateTime<Utc>, lag: Duration) -> bool {
    closes_at(window.end, lag) <= now
}

/// The chunks that are over at `now`, and those that are not (in the given order each).
pub fn split_over(
    chunks: Vec<Chunk>,
    now: DateTime<Utc>,
    lag: Duration,
) -> (Vec<Chunk>, Vec<Chunk>) {
    chunks
        .into_iter()
        .partition(|c| is_over(&c.window, now, lag))
}

/// Days not over yet: how many, and the first to close (its chunk and when).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotOver {
    pub days: u64,
    pub first: Option<(Chunk, DateTime<Utc>)>,
}

impl NotOver {
    /// Folds `chunks` (not over) into the count and the first to close.
    pub fn of(chunks: &[Chunk], lag: Duration) -> Self {
        let mut out = NotOver::default();
        for chunk in chunks {
            out.add(chunk, lag);
        }
        out
    }

    /// Counts one more day not over.
    pub fn add(&mut self, chunk: &Chunk, lag: Duration) {
        self.days += 1;
        let closes = closes_at(chunk.window.end, lag);
        if self.first.as_ref().is_none_or(|(_, at)| closes < *at) {
            self.first = Some((chunk.clone(), closes));
        }
    }

    /// Both counts together.
    pub fn merge(&mut self, other: NotOver) {
        self.days += other.days;
        if let Some((chunk, at)) = other.first
            && self.first.as_ref().is_none_or(|(_, a)| at < *a)
        {
            self.first = Some((chunk, at));
        }
    }
}

/// The end of the last day of `tz` that is over at `now`: the local midnight at or before
/// `now - lag` (a window without `--end` ends here).
pub fn over_until(now: DateTime<Utc>, lag: Duration, tz: Tz) -> DateTime<Utc> {
    day_start(local_day(now - lag, tz), tz)
}

/// The window one object's run covers: from `start`, else the local day of `earliest` (its
/// earliest cursor value), to `end`, else the end of the last day over at `now`. `None` when
/// there is nothing to read: an object with no rows (`earliest` is `None` with no `start`), or
/// a window whose end is not after its start.
pub fn object_window(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    earliest: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    lag: Duration,
    tz: Tz,
) -> Option<Window> {
    let start = match start {
        Some(start) => start,
        None => day_start(local_day(earliest?, tz), tz),
    };
    let end = end.unwrap_or_else(|| over_until(now, lag, tz));
    Window::new(start, end).ok()
}

/// `t` as local time in `tz` and as UTC, for a line a person reads:
/// `2026-11-21 00:05:00 CET (2026-11-20 23:05:00 UTC)`.
pub fn local_and_utc(t: DateTime<Utc>, tz: Tz) -> String {
    let utc = t.format("%Y-%m-%d %H:%M:%S UTC");
    if tz == Tz::UTC {
        return utc.to_string();
    }
    format!(
        "{} ({utc})",
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{chunks, parse_zone};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn window(a: &str, b: &str) -> Window {
        Window::new(utc(a), utc(b)).unwrap()
    }

    #[test]
    fn a_day_is_over_a_lag_after_its_end() {
        let day = window("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z");
        let lag = Duration::minutes(5);
        let cases = [
            ("2026-11-20T12:00:00Z", false),
            ("2026-11-21T00:00:00Z", false),
            ("2026-11-21T00:04:59.999Z", false),
            ("2026-11-21T00:05:00Z", true),
            ("2026-12-01T00:00:00Z", true),
        ];
        for (now, over) in cases {
            assert_eq!(is_over(&day, utc(now), lag), over, "{now}");
        }
        assert!(is_over(&day, utc("2026-11-21T00:00:00Z"), Duration::zero()));
    }

    #[test]
    fn a_window_past_now_splits_at_the_first_day_not_over() {
        let tz = parse_zone("UTC").unwrap();
        let w = window("2026-11-18T00:00:00Z", "2026-11-23T00:00:00Z");
        let all = chunks(&["Account".into()], w, tz);
        let now = utc("2026-11-20T09:30:00Z");
        let (over, not_over) = split_over(all, now, Duration::minutes(5));
        let days = |c: &[Chunk]| c.iter().map(|c| c.day.to_string()).collect::<Vec<_>>();
        assert_eq!(days(&over), ["2026-11-18", "2026-11-19"]);
        assert_eq!(days(&not_over), ["2026-11-20", "2026-11-21", "2026-11-22"]);
        let pending = NotOver::of(&not_over, Duration::minutes(5));
        assert_eq!(pending.days, 3);
        let (first, closes) = pending.first.unwrap();
        assert_eq!(first.day.to_string(), "2026-11-20");
        assert_eq!(closes, utc("2026-11-21T00:05:00Z"));
    }

    #[test]
    fn yesterday_is_not_over_inside_the_lag_after_midnight() {
        let paris = parse_zone("Europe/Paris").unwrap();
        let w = window("2026-11-18T23:00:00Z", "2026-11-20T23:00:00Z");
        let all = chunks(&["Case".into()], w, paris);
        // 00:03 in Paris on the 20th: the 19th ended three minutes ago.
        let (over, not_over) = split_over(all, utc("2026-11-19T23:03:00Z"), Duration::minutes(5));
        assert_eq!(over.len(), 0);
        assert_eq!(not_over.len(), 2);
        assert_eq!(
            NotOver::of(&not_over, Duration::minutes(5))
                .first
                .unwrap()
                .1,
            utc("2026-11-19T23:05:00Z")
        );
    }

    #[test]
    fn a_window_ending_at_an_instant_closes_a_lag_after_it() {
        let tz = parse_zone("UTC").unwrap();
        let w = window("2026-11-20T00:00:00Z", "2026-11-20T10:00:00Z");
        let all = chunks(&["Lead".into()], w, tz);
        let lag = Duration::seconds(1);
        let (over, _) = split_over(all.clone(), utc("2026-11-20T10:00:00.500Z"), lag);
        assert!(over.is_empty());
        let (over, not_over) = split_over(all, utc("2026-11-20T10:00:01Z"), lag);
        assert_eq!((over.len(), not_over.len()), (1, 0));
    }

    #[test]
    fn merged_counts_keep_the_first_to_close() {
        let tz = parse_zone("UTC").unwrap();
        let lag = Duration::zero();
        let a = chunks(
            &["A".into()],
            window("2026-11-21T00:00:00Z", "2026-11-23T00:00:00Z"),
            tz,
        );
        let b = chunks(
            &["B".into()],
            window("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"),
            tz,
        );
        let mut all = NotOver::of(&a, lag);
        all.merge(NotOver::of(&b, lag));
        assert_eq!(all.days, 3);
        assert_eq!(all.first.unwrap().0.object, "B");
    }

    #[test]
    fn the_last_day_over_ends_at_the_midnight_before_now_minus_the_lag() {
        let utc_tz = parse_zone("UTC").unwrap();
        let lag = Duration::minutes(5);
        assert_eq!(
            over_until(utc("2026-11-20T09:30:00Z"), lag, utc_tz),
            utc("2026-11-20T00:00:00Z")
        );
        // Inside the lag after midnight, yesterday is not over yet.
        assert_eq!(
            over_until(utc("2026-11-20T00:04:00Z"), lag, utc_tz),
            utc("2026-11-19T00:00:00Z")
        );
        let ny = parse_zone("America/New_York").unwrap();
        assert_eq!(
            over_until(utc("2026-11-20T03:00:00Z"), lag, ny),
            utc("2026-11-19T05:00:00Z")
        );
    }

    #[test]
    fn a_derived_window_starts_on_the_earliest_day_and_ends_with_the_last_day_over() {
        let tz = parse_zone("America/New_York").unwrap();
        let lag = Duration::minutes(5);
        let now = utc("2026-11-20T15:00:00Z");
        // The earliest row, 02:00 UTC on 2025-01-02, is still 2025-01-01 in New York.
        let w = object_window(None, None, Some(utc("2025-01-02T02:00:00Z")), now, lag, tz);
        assert_eq!(
            w,
            Some(window("2025-01-01T05:00:00Z", "2026-11-20T05:00:00Z"))
        );
        // Given bounds win over the derived ones.
        let given = utc("2025-06-01T04:00:00Z");
        let w = object_window(Some(given), None, None, now, lag, tz).unwrap();
        assert_eq!(w.start, given);
        let end = utc("2027-01-01T05:00:00Z");
        let w = object_window(None, Some(end), Some(given), now, lag, tz).unwrap();
        assert_eq!(w.end, end);
    }

    #[test]
    fn nothing_to_read_is_no_window() {
        let tz = parse_zone("UTC").unwrap();
        let lag = Duration::minutes(5);
        let now = utc("2026-11-20T15:00:00Z");
        // No rows.
        assert_eq!(object_window(None, None, None, now, lag, tz), None);
        // Every row is from today, which is not over.
        let today = utc("2026-11-20T08:00:00Z");
        assert_eq!(object_window(None, None, Some(today), now, lag, tz), None);
        // The earliest row is after --end.
        let end = utc("2025-01-01T00:00:00Z");
        assert_eq!(
            object_window(
                None,
                Some(end),
                Some(utc("2025-03-01T00:00:00Z")),
                now,
                lag,
                tz
            ),
            None
        );
    }

    #[test]
    fn closing_times_read_in_both_zones() {
        let t = utc("2026-11-20T23:05:00Z");
        assert_eq!(
            local_and_utc(t, parse_zone("Europe/Paris").unwrap()),
            "2026-11-21 00:05:00 CET (2026-11-20 23:05:00 UTC)"
        );
        assert_eq!(
            local_and_utc(t, parse_zone("UTC").unwrap()),
            "2026-11-20 23:05:00 UTC"
        );
    }
}
