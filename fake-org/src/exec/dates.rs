//! Relative date literals (`TODAY`, `LAST_N_DAYS:7`, `THIS_QUARTER`, ...) as day ranges.
//!
//! Owns the calendar arithmetic only: a literal and "today" give a half-open range of
//! dates `[start, end)`. The executor turns those dates into the Run-As user's midnights for
//! `dateTime` fields, as Salesforce evaluates date literals in the user's time zone.
//! Weeks start on Sunday (the Run-As user's `en_US` locale); fiscal periods are calendar ones.

use chrono::{Datelike, Days, Months, NaiveDate};

use crate::soql::{Period, RelDate, RelKind};

/// The dates `[start, end)` that `literal` covers when the user's date is `today`.
pub fn range(literal: &RelDate, today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let n = i64::from(literal.n);
    let p = period_start(literal.period, today);
    let at = |k: i64| shift(literal.period, p, k);
    match (literal.kind, literal.period) {
        (RelKind::This, _) => (p, at(1)),
        (RelKind::Last, _) => (at(-1), p),
        (RelKind::Next, _) => (at(1), at(2)),
        // The day forms count from today and include it; the others are whole periods
        // before or after the current one.
        (RelKind::LastN, Period::Day) => (at(-n), at(1)),
        (RelKind::LastN, _) => (at(-n), p),
        (RelKind::NextN, _) => (at(1), at(1 + n)),
        (RelKind::Ago, _) => (at(-n), at(1 - n)),
    }
}

/// The first day of the period that holds `d`.
fn period_start(period: Period, d: NaiveDate) -> NaiveDate {
    match period {
        Period::Day => d,
        Period::Week => d - Days::new(u64::from(d.weekday().num_days_from_sunday())),
        Period::Month => d.with_day(1).expect("day 1 exists"),
        Period::Quarter => NaiveDate::from_ymd_opt(d.year(), (d.month() - 1) / 3 * 3 + 1, 1)
            .expect("a quarter's first day exists"),
        Period::Year => NaiveDate::from_ymd_opt(d.year(), 1, 1).expect("1 January exists"),
    }
}

/// `start` moved by `k` periods (out-of-range dates saturate at chrono's bounds).
fn shift(period: Period, start: NaiveDate, k: i64) -> NaiveDate {
    let months = |m: i64| {
        let step = Months::new(u32::try_from(m.unsigned_abs()).unwrap_or(u32::MAX));
        if m >= 0 {
            start.checked_add_months(step)
        } else {
            start.checked_sub_months(step)
        }
    };
    let days = |d: i64| {
        let step = Days::new(d.unsigned_abs());
        if d >= 0 {
            start.checked_add_days(step)
        } else {
            start.checked_sub_days(step)
        }
    };
    let moved = match period {
        Period::Day => days(k),
        Period::Week => days(k * 7),
        Period::Month => months(k),
        Period::Quarter => months(k * 3),
        Period::Year => months(k * 12),
    };
    moved.unwrap_or(if k < 0 {
        NaiveDate::MIN
    } else {
        NaiveDate::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soql::relative_date;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn of(name: &str, n: u32) -> (String, String) {
        let mut lit = relative_date(name).unwrap_or_else(|| panic!("{name}"));
        if lit.takes_n {
            lit.n = n;
        }
        // A Wednesday in the second quarter.
        let (a, b) = range(&lit, d("2025-05-14"));
        (a.to_string(), b.to_string())
    }

    fn r(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn literals_cover_the_documented_ranges() {
        assert_eq!(of("TODAY", 0), r("2025-05-14", "2025-05-15"));
        assert_eq!(of("yesterday", 0), r("2025-05-13", "2025-05-14"));
        assert_eq!(of("TOMORROW", 0), r("2025-05-15", "2025-05-16"));
        assert_eq!(of("LAST_N_DAYS", 7), r("2025-05-07", "2025-05-15"));
        assert_eq!(of("NEXT_N_DAYS", 2), r("2025-05-15", "2025-05-17"));
        assert_eq!(of("N_DAYS_AGO", 3), r("2025-05-11", "2025-05-12"));
        assert_eq!(of("LAST_90_DAYS", 0), r("2025-02-13", "2025-05-15"));
        assert_eq!(of("THIS_WEEK", 0), r("2025-05-11", "2025-05-18"));
        assert_eq!(of("LAST_WEEK", 0), r("2025-05-04", "2025-05-11"));
        assert_eq!(of("LAST_N_WEEKS", 2), r("2025-04-27", "2025-05-11"));
        assert_eq!(of("THIS_MONTH", 0), r("2025-05-01", "2025-06-01"));
        assert_eq!(of("LAST_MONTH", 0), r("2025-04-01", "2025-05-01"));
        assert_eq!(of("NEXT_N_MONTHS", 2), r("2025-06-01", "2025-08-01"));
        assert_eq!(of("N_MONTHS_AGO", 5), r("2024-12-01", "2025-01-01"));
        assert_eq!(of("THIS_QUARTER", 0), r("2025-04-01", "2025-07-01"));
        assert_eq!(of("LAST_FISCAL_QUARTER", 0), r("2025-01-01", "2025-04-01"));
        assert_eq!(of("THIS_YEAR", 0), r("2025-01-01", "2026-01-01"));
        assert_eq!(of("LAST_N_YEARS", 2), r("2023-01-01", "2025-01-01"));
        assert_eq!(of("N_FISCAL_YEARS_AGO", 1), r("2024-01-01", "2025-01-01"));
        for not_one in ["THIS_DAY", "LAST_N_DECADES", "NOW", "N_DAYS", "LAST_N_DAY"] {
            assert!(relative_date(not_one).is_none(), "{not_one}");
        }
    }
}
