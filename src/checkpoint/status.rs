//! What `status` shows: the manifest and the sync journal folded into one summary per object.
//!
//! Owns the folding only (pure, no I/O); reading the journals is [`super::read`] and
//! [`super::cursors::read`], and drawing the tables is the `status` command's.
//!
//! Invariants: a day counts once per object, as done, failed, pending (planned by some run,
//! with no entry yet, and over) or not over yet (its end less than its run's safety lag
//! before now); a window is the span of the done days' windows.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

use super::cursors;
use super::{ChunkState, ManifestState};
use crate::plan;
use crate::plan::history;
use crate::salesforce::soql;

/// One object's chunks, folded from the manifest.
#[derive(Debug, Default, Serialize)]
pub struct ObjectStatus {
    pub object: String,
    pub chunks_done: u64,
    pub chunks_pending: u64,
    pub chunks_failed: u64,
    /// Planned days whose end is less than the safety lag ago: copied by a later run.
    pub chunks_not_over: u64,
    /// When the first of them is over (UTC).
    pub first_closes: Option<String>,
    /// The same instant in the chunk zone and UTC, for people.
    #[serde(skip)]
    pub first_closes_text: Option<String>,
    pub rows: u64,
    pub bytes: u64,
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    pub failed: Vec<FailedChunk>,
}

/// A chunk whose latest entry is a failure, with its error.
#[derive(Debug, Serialize)]
pub struct FailedChunk {
    pub day: String,
    pub error: String,
}

/// Folds the manifest into per-object counts, as of `now` (which days are over).
pub fn object_statuses(state: &ManifestState, now: DateTime<Utc>) -> Vec<ObjectStatus> {
    let mut by_object: BTreeMap<String, ObjectStatus> = BTreeMap::new();
    for ((object, day), chunk) in &state.chunks {
        let s = by_object.entry(object.clone()).or_default();
        match chunk {
            ChunkState::Done {
                window,
                rows,
                bytes,
                ..
            } => {
                s.chunks_done += 1;
                s.rows += rows;
                s.bytes += bytes;
                let start = soql::datetime_literal(window.start);
                let end = soql::datetime_literal(window.end);
                if s.window_start.as_ref().is_none_or(|w| *w > start) {
                    s.window_start = Some(start);
                }
                if s.window_end.as_ref().is_none_or(|w| *w < end) {
                    s.window_end = Some(end);
                }
            }
            ChunkState::Failed { error, .. } => {
                s.chunks_failed += 1;
                s.failed.push(FailedChunk {
                    day: day.to_string(),
                    error: error.clone(),
                });
            }
        }
    }
    for (object, plans) in &state.planned {
        // Each planned day once, with when it closes (the earliest any plan says) and its zone.
        let mut days: BTreeMap<NaiveDate, (DateTime<Utc>, chrono_tz::Tz)> = BTreeMap::new();
        for planned in plans {
            let Ok(tz) = plan::parse_zone(&planned.chunk_timezone) else {
                continue;
            };
            for (day, window) in plan::days(planned.window, tz) {
                let closes = history::closes_at(window.end, planned.safety_lag);
                let entry = days.entry(day).or_insert((closes, tz));
                if closes < entry.0 {
                    *entry = (closes, tz);
                }
            }
        }
        let s = by_object.entry(object.clone()).or_default();
        let mut first: Option<(DateTime<Utc>, chrono_tz::Tz)> = None;
        for (day, (closes, tz)) in days {
            if state.chunks.contains_key(&(object.clone(), day)) {
                continue;
            }
            if closes <= now {
                s.chunks_pending += 1;
                continue;
            }
            s.chunks_not_over += 1;
            if first.is_none_or(|(at, _)| closes < at) {
                first = Some((closes, tz));
            }
        }
        if let Some((at, tz)) = first {
            s.first_closes = Some(soql::datetime_literal(at));
            s.first_closes_text = Some(history::local_and_utc(at, tz));
        }
    }
    by_object
        .into_iter()
        .map(|(object, mut s)| {
            s.object = object;
            s
        })
        .collect()
}

/// One object's incremental state, for `status`.
#[derive(Debug, Serialize)]
pub struct SyncStatus {
    pub object: String,
    pub cursor_field: Option<String>,
    /// Every row before this is written.
    pub cursor: Option<String>,
    /// The `Id` that breaks a tie at `cursor`, when a sync stopped inside one second.
    pub cursor_id: Option<String>,
    pub last_synced: Option<String>,
    pub syncs: u64,
    pub rows: u64,
    /// How far an unfinished `--full-every` re-read got.
    pub full_reread_at: Option<String>,
}

/// Folds the sync journal into one line per synced object.
pub fn sync_statuses(state: &cursors::SyncState) -> Vec<SyncStatus> {
    state
        .objects
        .iter()
        .map(|(object, c)| SyncStatus {
            object: object.clone(),
            cursor_field: c.config.as_ref().map(|c| c.written.cursor_field.clone()),
            cursor: c.cursor.as_ref().map(|p| soql::datetime_literal(p.at)),
            cursor_id: c
                .cursor
                .as_ref()
                .map(|p| p.id.clone())
                .filter(|id| !id.is_empty()),
            last_synced: c.last_synced.map(soql::datetime_literal),
            syncs: c.passes,
            rows: c.rows,
            full_reread_at: c.full_pass.as_ref().map(|p| soql::datetime_literal(p.at)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::PlannedWindow;
    use crate::checkpoint::cursors::{ObjectCursor, Position, SyncState};
    use crate::plan::Window;
    use chrono::TimeZone;

    fn planned(window: Window, zone: &str, lag_minutes: i64) -> PlannedWindow {
        PlannedWindow {
            window,
            chunk_timezone: zone.into(),
            safety_lag: chrono::Duration::minutes(lag_minutes),
        }
    }

    /// Long after every planned day of these tests.
    fn later() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, d, h, 0, 0).unwrap()
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
    }

    fn window(d: u32) -> Window {
        Window {
            start: at(d, 0),
            end: at(d + 1, 0),
        }
    }

    fn done(d: u32, rows: u64) -> ChunkState {
        ChunkState::Done {
            window: window(d),
            rows,
            bytes: rows * 10,
            file: Some(format!("Account/date=2025-03-0{d}/part-00000.parquet")),
        }
    }

    #[test]
    fn each_planned_day_counts_once_as_done_failed_or_pending() {
        let mut state = ManifestState::default();
        state.chunks.insert(("Account".into(), day(2)), done(2, 5));
        state.chunks.insert(("Account".into(), day(3)), done(3, 7));
        state.chunks.insert(
            ("Account".into(), day(4)),
            ChunkState::Failed {
                window: window(4),
                error: "INVALID_FIELD".into(),
            },
        );
        // Two runs planned overlapping windows: the shared days are pending once.
        let plans = vec![
            planned(
                Window {
                    start: at(1, 0),
                    end: at(6, 0),
                },
                "UTC",
                5,
            ),
            planned(
                Window {
                    start: at(2, 0),
                    end: at(7, 0),
                },
                "UTC",
                0,
            ),
        ];
        state.planned.insert("Account".into(), plans);

        let statuses = object_statuses(&state, later());
        assert_eq!(statuses.len(), 1);
        let s = &statuses[0];
        assert_eq!(s.object, "Account");
        assert_eq!(
            (s.chunks_done, s.chunks_failed, s.chunks_pending),
            (2, 1, 3)
        );
        assert_eq!((s.rows, s.bytes), (12, 120));
        assert_eq!(s.window_start.as_deref(), Some("2025-03-02T00:00:00.000Z"));
        assert_eq!(s.window_end.as_deref(), Some("2025-03-04T00:00:00.000Z"));
        assert_eq!(s.failed.len(), 1);
        assert_eq!(s.failed[0].day, "2025-03-04");
        assert_eq!(s.failed[0].error, "INVALID_FIELD");
    }

    #[test]
    fn pending_days_follow_the_planned_zone() {
        let mut state = ManifestState::default();
        // One UTC day seen from New York touches two local days.
        let plan = planned(window(10), "America/New_York", 5);
        state.planned.insert("Case".into(), vec![plan]);
        let statuses = object_statuses(&state, later());
        assert_eq!(statuses[0].chunks_pending, 2);
        assert_eq!(statuses[0].window_start, None);
    }

    #[test]
    fn days_whose_end_is_inside_the_lag_are_not_over_and_say_when_they_close() {
        let mut state = ManifestState::default();
        let plan = planned(
            Window {
                start: at(1, 0),
                end: at(5, 0),
            },
            "Europe/Paris",
            5,
        );
        state.planned.insert("Lead".into(), vec![plan]);
        state.chunks.insert(("Lead".into(), day(1)), done(1, 3));
        // The window's Paris days: the 1st to the 4th, and the first hour of the 5th. At
        // 00:30 in Paris on the 3rd, the 2nd is over and the 3rd is not.
        let now = at(2, 23) + chrono::Duration::minutes(30);
        let s = &object_statuses(&state, now)[0];
        assert_eq!(
            (s.chunks_done, s.chunks_pending, s.chunks_not_over),
            (1, 1, 3)
        );
        assert_eq!(s.first_closes.as_deref(), Some("2025-03-03T23:05:00.000Z"));
        assert_eq!(
            s.first_closes_text.as_deref(),
            Some("2025-03-04 00:05:00 CET (2025-03-03 23:05:00 UTC)")
        );
        // Once it is over, it is merely pending.
        let s = &object_statuses(&state, at(6, 0))[0];
        assert_eq!((s.chunks_pending, s.chunks_not_over), (4, 0));
        assert_eq!(s.first_closes, None);
    }

    #[test]
    fn objects_are_listed_by_name() {
        let mut state = ManifestState::default();
        state.chunks.insert(("Lead".into(), day(2)), done(2, 1));
        state.chunks.insert(("Account".into(), day(2)), done(2, 1));
        let names: Vec<_> = object_statuses(&state, later())
            .into_iter()
            .map(|s| s.object)
            .collect();
        assert_eq!(names, ["Account", "Lead"]);
    }

    #[test]
    fn a_sync_cursor_shows_its_tie_id_only_when_it_has_one() {
        let mut state = SyncState::default();
        state.objects.insert(
            "Account".into(),
            ObjectCursor {
                cursor: Some(Position::before(at(5, 12))),
                passes: 2,
                rows: 40,
                ..ObjectCursor::default()
            },
        );
        state.objects.insert(
            "Contact".into(),
            ObjectCursor {
                cursor: Some(Position {
                    at: at(5, 13),
                    id: "003000000000001AAA".into(),
                }),
                full_pass: Some(Position::before(at(1, 0))),
                ..ObjectCursor::default()
            },
        );
        let statuses = sync_statuses(&state);
        assert_eq!(
            statuses[0].cursor.as_deref(),
            Some("2025-03-05T12:00:00.000Z")
        );
        assert_eq!(statuses[0].cursor_id, None);
        assert_eq!((statuses[0].syncs, statuses[0].rows), (2, 40));
        assert_eq!(statuses[0].cursor_field, None);
        assert_eq!(statuses[1].cursor_id.as_deref(), Some("003000000000001AAA"));
        assert_eq!(
            statuses[1].full_reread_at.as_deref(),
            Some("2025-03-01T00:00:00.000Z")
        );
    }
}
