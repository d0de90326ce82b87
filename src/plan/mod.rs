//! Pure planning: a `[start, end)` window and a time zone into per-day chunks per object.
//!
//! Owns: parsing `--start`/`--end`, finding the midnights of `--chunk-timezone`, and the chunk
//! list; which days are over and the window a run derives ([`history`]). Does no I/O and knows
//! nothing of Salesforce.
//!
//! Invariants (property-tested): the chunks of one object tile the window exactly, with no gap
//! and no overlap; each chunk lies inside one local day; days are 23 or 25 hours long on DST
//! changes; a local midnight that does not exist (a zone that springs forward at 00:00) is
//! replaced by the first instant of that day that does.

pub mod api;
pub mod history;
pub mod offpeak;
pub mod spans;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::fmt;

use crate::error::{ExitKind, UserFacing};

/// A half-open span of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, PlanError> {
        if end <= start {
            return Err(PlanError::EmptyWindow { start, end });
        }
        Ok(Self { start, end })
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    pub fn overlaps(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}, {})",
            crate::salesforce::soql::datetime_literal(self.start),
            crate::salesforce::soql::datetime_literal(self.end)
        )
    }
}

/// The unit of work and of the manifest: one object's rows for one local day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Chunk {
    pub object: String,
    /// The local date in the chunk time zone; the `date=` partition.
    pub day: NaiveDate,
    /// The part of that day inside the run's window.
    pub window: Window,
}

impl fmt::Display for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.object, self.day)
    }
}

/// Bad `--start`, `--end` or `--chunk-timezone`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A value that is neither `YYYY-MM-DD` nor an RFC 3339 date-time.
    #[error(
        "`{flag} {value}` is not a date: use `YYYY-MM-DD` or an RFC 3339 date-time like `2025-03-10T00:00:00Z`"
    )]
    BadInstant { flag: &'static str, value: String },
    /// `--end` at or before `--start`.
    #[error("the window is empty: `--end` ({end}) must be after `--start` ({start})")]
    EmptyWindow {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// A zone name chrono-tz does not know.
    #[error(
        "`{0}` is not a time zone: use an IANA name such as `UTC`, `America/New_York` or `Europe/Paris`"
    )]
    UnknownZone(String),
}

impl UserFacing for PlanError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Usage
    }
}

/// Parses an IANA zone name.
pub fn parse_zone(name: &str) -> Result<Tz, PlanError> {
    name.parse::<Tz>()
        .map_err(|_| PlanError::UnknownZone(name.to_string()))
}

/// Which end of the window a date names: a date given to `--end` includes that whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Start,
    End,
}

/// Parses `--start`/`--end`: a date is a local midnight in `tz` (for `End`, the midnight after
/// it); a date-time must carry its offset and is taken as given.
pub fn parse_instant(value: &str, bound: Bound, tz: Tz) -> Result<DateTime<Utc>, PlanError> {
    let flag = match bound {
        Bound::Start => "--start",
        Bound::End => "--end",
    };
    let value = value.trim();
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let day = match bound {
            Bound::Start => date,
            Bound::End => date.succ_opt().ok_or_else(|| PlanError::BadInstant {
                flag,
                value: value.to_string(),
            })?,
        };
        return Ok(day_start(day, tz));
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| PlanError::BadInstant {
            flag,
            value: value.to_string(),
        })
}

/// The first instant of local `day` in `tz`: its midnight, or, where the zone skips midnight,
/// the first minute after the gap.
pub fn day_start(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut local: NaiveDateTime = day.and_time(NaiveTime::MIN);
    // DST gaps are at most a few hours; a day always has a valid instant before its end.
    for _ in 0..(24 * 60) {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(earliest, _) => return earliest.with_timezone(&Utc),
            LocalResult::None => local += Duration::minutes(1),
        }
    }
    unreachable!("no valid instant on {day} in {tz}")
}

/// The local date of `t` in `tz`.
pub fn local_day(t: DateTime<Utc>, tz: Tz) -> NaiveDate {
    t.with_timezone(&tz).date_naive()
}

/// The local days that `window` touches, each clipped to the window, in order.
pub fn days(window: Window, tz: Tz) -> Vec<(NaiveDate, Window)> {
    let mut out = Vec::new();
    let mut day = local_day(window.start, tz);
    let mut start = window.start;
    while start < window.end {
        let next = day.succ_opt().expect("date overflow");
        let end = day_start(next, tz).min(window.end);
        if end > start {
            out.push((day, Window { start, end }));
        }
        start = end.max(start);
        day = next;
    }
    out
}

/// Every `(object, day)` chunk of the window, objects in the given order, days ascending.
pub fn chunks(objects: &[String], window: Window, tz: Tz) -> Vec<Chunk> {
    let days = days(window, tz);
    objects
        .iter()
        .flat_map(|object| {
            days.iter().map(move |(day, w)| Chunk {
                object: object.clone(),
                day: *day,
                window: *w,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn end_date_includes_that_whole_day() {
        let tz = parse_zone("UTC").unwrap();
        let end = parse_instant("2025-03-31", Bound::End, tz).unwrap();
        assert_eq!(end, utc("2025-04-01T00:00:00Z"));
        let start = parse_instant("2025-03-01", Bound::Start, tz).unwrap();
        assert_eq!(start, utc("2025-03-01T00:00:00Z"));
        let exact = parse_instant("2025-03-31T12:00:00+02:00", Bound::End, tz).unwrap();
        assert_eq!(exact, utc("2025-03-31T10:00:00Z"));
    }

    #[test]
    fn dates_are_local_midnights_of_the_chunk_zone() {
        let ny = parse_zone("America/New_York").unwrap();
        let start = parse_instant("2025-03-09", Bound::Start, ny).unwrap();
        assert_eq!(start, utc("2025-03-09T05:00:00Z"));
    }

    #[test]
    fn bad_values_name_the_flag_and_the_fix() {
        let tz = parse_zone("UTC").unwrap();
        let err = parse_instant("2025-13-01", Bound::Start, tz).unwrap_err();
        assert!(
            err.to_string()
                .contains("`--start 2025-13-01` is not a date")
        );
        assert!(matches!(
            parse_zone("Mars/Olympus"),
            Err(PlanError::UnknownZone(_))
        ));
        let a = utc("2025-03-02T00:00:00Z");
        assert!(matches!(
            Window::new(a, a),
            Err(PlanError::EmptyWindow { .. })
        ));
    }

    #[test]
    fn dst_change_days_are_23_and_25_hours() {
        let ny = parse_zone("America/New_York").unwrap();
        let w = Window::new(
            parse_instant("2025-03-08", Bound::Start, ny).unwrap(),
            parse_instant("2025-03-10", Bound::End, ny).unwrap(),
        )
        .unwrap();
        let hours: Vec<i64> = days(w, ny)
            .iter()
            .map(|(_, w)| (w.end - w.start).num_hours())
            .collect();
        assert_eq!(hours, vec![24, 23, 24]);
        let w = Window::new(
            parse_instant("2025-11-02", Bound::Start, ny).unwrap(),
            parse_instant("2025-11-02", Bound::End, ny).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (days(w, ny)[0].1.end - days(w, ny)[0].1.start).num_hours(),
            25
        );
    }

    #[test]
    fn a_zone_that_skips_midnight_starts_the_day_after_the_gap() {
        // Chile springs forward at 00:00 local: 2024-09-08 00:00 does not exist.
        let santiago = parse_zone("America/Santiago").unwrap();
        let start = day_start(NaiveDate::from_ymd_opt(2024, 9, 8).unwrap(), santiago);
        assert_eq!(start, utc("2024-09-08T04:00:00Z"));
        assert_eq!(local_day(start, santiago).to_string(), "2024-09-08");
    }

    #[test]
    fn partial_days_at_both_ends_are_clipped() {
        let tz = parse_zone("UTC").unwrap();
        let w = Window::new(utc("2025-01-01T06:00:00Z"), utc("2025-01-03T01:00:00Z")).unwrap();
        let d = days(w, tz);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].1.start, w.start);
        assert_eq!(d[2].1.end, w.end);
    }

    const ZONES: &[&str] = &[
        "UTC",
        "America/New_York",
        "Europe/London",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "America/Santiago",
        "Pacific/Apia",
        "Asia/Kathmandu",
    ];

    proptest! {
        #[test]
        fn chunks_tile_the_window_exactly(
            start_s in 1_500_000_000i64..1_800_000_000,
            len_s in 1i64..(3 * 366 * 86_400),
            zone in 0..ZONES.len(),
        ) {
            let tz = parse_zone(ZONES[zone]).unwrap();
            let start = DateTime::from_timestamp(start_s, 0).unwrap();
            let w = Window::new(start, start + Duration::seconds(len_s)).unwrap();
            let d = days(w, tz);
            prop_assert_eq!(d.first().unwrap().1.start, w.start);
            prop_assert_eq!(d.last().unwrap().1.end, w.end);
            for pair in d.windows(2) {
                prop_assert_eq!(pair[0].1.end, pair[1].1.start);
                prop_assert!(pair[0].0 < pair[1].0);
            }
            for (day, cw) in &d {
                prop_assert!(cw.start < cw.end);
                prop_assert_eq!(local_day(cw.start, tz), *day);
                prop_assert_eq!(local_day(cw.end - Duration::milliseconds(1), tz), *day);
                prop_assert!((cw.end - cw.start) <= Duration::hours(26));
            }
        }
    }
}
