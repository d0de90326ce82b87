//! Off-peak windows: the local hours of a time zone in which a run may start requests.
//!
//! Owns parsing `--window HH:MM-HH:MM` and deciding, for an instant, whether it lies inside a
//! window and when the next window opens. Pure: the caller passes the instant, so tests
//! inject any clock and never sleep.
//!
//! Rule: an instant is inside a window when its wall-clock time in the zone is. So on a day
//! that skips an hour, a window starting in the gap opens at the first instant after it; on a
//! day that repeats an hour, a window holding that hour is open during both of its passes.

use chrono::{DateTime, Duration, DurationRound, Timelike, Utc};
use chrono_tz::Tz;
use std::fmt;

use crate::error::{ExitKind, UserFacing};

/// One `HH:MM-HH:MM` window; `end` before `start` crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyWindow {
    start: u32,
    end: u32,
}

/// A malformed `--window`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`--window {value}`: {reason}")]
pub struct WindowError {
    pub value: String,
    pub reason: &'static str,
}

impl UserFacing for WindowError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Usage
    }
}

/// Minutes in a day; `24:00` is accepted as the end of a window.
const DAY_MINUTES: u32 = 24 * 60;

fn parse_minutes(text: &str, allow_24: bool) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    let minutes = h * 60 + m;
    let ok = m < 60 && (minutes < DAY_MINUTES || (allow_24 && minutes == DAY_MINUTES));
    ok.then_some(minutes)
}

impl DailyWindow {
    pub fn parse(value: &str) -> Result<Self, WindowError> {
        let err = |reason| WindowError {
            value: value.to_string(),
            reason,
        };
        let (s, e) = value
            .split_once('-')
            .ok_or_else(|| err("use HH:MM-HH:MM, e.g. 22:00-06:00"))?;
        let start = parse_minutes(s, false)
            .ok_or_else(|| err("the start is not a time HH:MM from 00:00 to 23:59"))?;
        let end = parse_minutes(e, true)
            .ok_or_else(|| err("the end is not a time HH:MM from 00:00 to 24:00"))?;
        if start == end % DAY_MINUTES {
            return Err(err(
                "the window is empty or the whole day: leave --window out to run at any time",
            ));
        }
        Ok(Self { start, end })
    }

    fn contains(&self, minute_of_day: u32) -> bool {
        if self.start < self.end {
            self.start <= minute_of_day && minute_of_day < self.end
        } else {
            minute_of_day >= self.start || minute_of_day < self.end
        }
    }
}

impl fmt::Display for DailyWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// The windows of `--window` in the zone of `--window-tz`.
#[derive(Debug, Clone, PartialEq)]
pub struct OffPeak {
    pub windows: Vec<DailyWindow>,
    pub zone: Tz,
}

/// A window opens within two days whatever the DST changes; scanning further means a bug.
const MAX_SCAN_MINUTES: i64 = 3 * 24 * 60;

impl OffPeak {
    /// True when `now`'s wall-clock time in the zone lies inside a window.
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.zone).time();
        let minute = local.hour() * 60 + local.minute();
        self.windows.iter().any(|w| w.contains(minute))
    }

    /// The first instant at or after `now` inside a window.
    pub fn next_open(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.is_open(now) {
            return now;
        }
        // Windows are whole minutes and zones change offset on whole minutes, so the first
        // open minute boundary is the exact opening instant.
        let mut t = now
            .duration_trunc(Duration::minutes(1))
            .expect("minute truncation")
            + Duration::minutes(1);
        for _ in 0..MAX_SCAN_MINUTES {
            if self.is_open(t) {
                return t;
            }
            t += Duration::minutes(1);
        }
        unreachable!("no off-peak window opens within three days")
    }

    /// `when` as the user reads it: wall-clock time in the window zone.
    pub fn local(&self, when: DateTime<Utc>) -> String {
        when.with_timezone(&self.zone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn offpeak(windows: &[&str], zone: &str) -> OffPeak {
        OffPeak {
            windows: windows
                .iter()
                .map(|w| DailyWindow::parse(w).unwrap())
                .collect(),
            zone: zone.parse().unwrap(),
        }
    }

    #[test]
    fn malformed_windows_are_refused_with_the_fix() {
        for bad in [
            "22:00",
            "25:00-06:00",
            "22:00-06:60",
            "22-06",
            "10:00-10:00",
            "00:00-24:00",
            "ab:cd-01:00",
        ] {
            let err = DailyWindow::parse(bad).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("`--window {bad}`")),
                "{err}"
            );
        }
        assert_eq!(
            DailyWindow::parse("22:00-24:00").unwrap().to_string(),
            "22:00-24:00"
        );
    }

    #[test]
    fn a_window_across_midnight_is_open_on_both_sides() {
        let o = offpeak(&["22:00-06:00"], "UTC");
        assert!(o.is_open(utc("2025-05-01T23:30:00Z")));
        assert!(o.is_open(utc("2025-05-02T05:59:59Z")));
        assert!(!o.is_open(utc("2025-05-02T06:00:00Z")));
        assert!(!o.is_open(utc("2025-05-02T21:59:00Z")));
        assert_eq!(
            o.next_open(utc("2025-05-02T12:34:56Z")),
            utc("2025-05-02T22:00:00Z")
        );
    }

    #[test]
    fn a_window_starting_in_the_skipped_hour_opens_after_the_gap() {
        // 2025-03-09 in New York: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        let o = offpeak(&["02:30-05:00"], "America/New_York");
        let before = utc("2025-03-09T06:00:00Z"); // 01:00 EST
        assert!(!o.is_open(before));
        assert_eq!(o.next_open(before), utc("2025-03-09T07:00:00Z"));
        assert!(o.is_open(utc("2025-03-09T08:59:00Z"))); // 04:59 EDT
        assert!(!o.is_open(utc("2025-03-09T09:00:00Z"))); // 05:00 EDT
    }

    #[test]
    fn a_window_holding_the_repeated_hour_is_open_through_both_passes() {
        // 2025-11-02 in New York: 01:00-02:00 happens twice (05:00-06:00 and 06:00-07:00 UTC).
        let o = offpeak(&["01:00-02:00"], "America/New_York");
        assert!(o.is_open(utc("2025-11-02T05:30:00Z")));
        assert!(o.is_open(utc("2025-11-02T06:30:00Z")));
        assert!(!o.is_open(utc("2025-11-02T07:00:00Z")));
        assert_eq!(
            o.next_open(utc("2025-11-02T04:10:00Z")),
            utc("2025-11-02T05:00:00Z")
        );
    }

    #[test]
    fn several_windows_and_the_local_display() {
        let o = offpeak(&["01:00-03:00", "12:00-13:00"], "Europe/Paris");
        let t = utc("2025-07-01T04:00:00Z"); // 06:00 CEST
        assert_eq!(o.next_open(t), utc("2025-07-01T10:00:00Z"));
        assert_eq!(o.local(o.next_open(t)), "2025-07-01 12:00 CEST");
    }
}
