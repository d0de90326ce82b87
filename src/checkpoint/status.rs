//! What `status` shows: the manifest and the sync journal folded into one summary per object.
//!
//! Owns the folding only (pure, no I/O); reading the journals is [`super::read`] and
//! [`super::cursors::read`], and drawing the tables is the `status` command's.
//!
//! Invariants: a day counts once per object, as done, failed, pending (planned by some run,
//! with no entry yet, and over) or not over yet (its end less than its run's safety lag
//! before now); a window is the span of the done days' windows; a done day has the columns
//! of the config recorded last before it (spec "Schema drift").

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

use super::cursors;
use super::{ChunkState, ConfigVersion, ManifestState};
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
    /// How the object's columns drifted between runs.
    pub columns: ColumnDrift,
    /// Each day done, failed or planned, in order: the calendar of `status --html`.
    #[serde(skip)]
    pub days: BTreeMap<NaiveDate, DayState>,
}

/// What one day of an object is, as the counts above count it.
#[derive(Debug, Clone, PartialEq)]
pub enum DayState {
    Done {
        rows: u64,
        bytes: u64,
    },
    Failed {
        error: String,
    },
    /// Planned, over, and not done yet.
    Pending,
    /// Planned, and its end less than the safety lag ago: it closes at this instant (UTC).
    NotOver {
        closes: DateTime<Utc>,
    },
}

impl DayState {
    /// Its name in words and in the page's `data-state`.
    pub fn name(&self) -> &'static str {
        match self {
            DayState::Done { .. } => "done",
            DayState::Failed { .. } => "failed",
            DayState::Pending => "pending",
            DayState::NotOver { .. } => "not-over",
        }
    }
}

/// How an object's columns drifted, folded from its recorded configs (spec "Schema drift").
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct ColumnDrift {
    /// Columns the org no longer shows: null in the files written since.
    pub missing: Vec<MissingColumn>,
    /// Columns written now that the files of some days lack, or hold as null (written while
    /// the org hid the field): `backfill --repull` of those days fills them.
    pub added: Vec<AddedColumn>,
    /// Columns the field list no longer selects: the files written since lack them.
    pub removed: Vec<RemovedColumn>,
}

impl ColumnDrift {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.added.is_empty() && self.removed.is_empty()
    }
}

#[derive(Debug, PartialEq, Serialize)]
pub struct MissingColumn {
    pub field: String,
    /// The Arrow type its null column is written with.
    pub arrow_type: Option<String>,
    /// The start of the first run that found it missing.
    pub since: String,
}

#[derive(Debug, PartialEq, Serialize)]
pub struct AddedColumn {
    pub field: String,
    /// The start of the run from which on it is written (unknown in older journals).
    pub since: Option<String>,
    /// The days whose files lack it.
    pub days: Vec<String>,
    /// The days whose files hold it as null: written while the org did not show it.
    pub null_days: Vec<String>,
}

#[derive(Debug, PartialEq, Serialize)]
pub struct RemovedColumn {
    pub field: String,
    /// The start of the run from which on files lack it.
    pub since: Option<String>,
}

/// Folds an object's recorded configs, oldest first, each with the days of the files written
/// under it, into what drifted: the latest config against those before.
pub fn column_drift(versions: &[(&ConfigVersion, &BTreeSet<NaiveDate>)]) -> ColumnDrift {
    let Some((current, _)) = versions.last() else {
        return ColumnDrift::default();
    };
    let now = &current.config;
    let time = |v: &ConfigVersion| v.at.map(soql::datetime_literal);
    let queries = |v: &ConfigVersion, field: &str| {
        v.config.fields.iter().any(|f| f == field) && !v.config.missing.contains_key(field)
    };
    // The first of the latest versions that all satisfy `holds`.
    let since = |holds: &dyn Fn(&ConfigVersion) -> bool| {
        let first = versions
            .iter()
            .rposition(|(v, _)| !holds(v))
            .map_or(0, |i| i + 1);
        versions.get(first).and_then(|(v, _)| time(v))
    };
    let missing = now
        .missing
        .iter()
        .map(|(field, at)| MissingColumn {
            field: field.clone(),
            arrow_type: now.types.get(field).cloned(),
            since: soql::datetime_literal(*at),
        })
        .collect();
    let added = now
        .fields
        .iter()
        .filter(|f| queries(current, f))
        .filter_map(|field| {
            let days_where = |has: bool| -> Vec<String> {
                let days: BTreeSet<NaiveDate> = versions
                    .iter()
                    .filter(|(v, _)| !queries(v, field))
                    .filter(|(v, _)| v.config.fields.contains(field) == has)
                    .flat_map(|(_, days)| days.iter().copied())
                    .collect();
                days.iter().map(NaiveDate::to_string).collect()
            };
            let (days, null_days) = (days_where(false), days_where(true));
            (!days.is_empty() || !null_days.is_empty()).then(|| AddedColumn {
                field: field.clone(),
                since: since(&|v| queries(v, field)),
                days,
                null_days,
            })
        })
        .collect();
    let ever: BTreeSet<&String> = versions
        .iter()
        .flat_map(|(v, _)| v.config.fields.iter())
        .collect();
    let removed = ever
        .into_iter()
        .filter(|f| !now.fields.contains(f))
        .map(|field| RemovedColumn {
            field: field.clone(),
            since: since(&|v| !v.config.fields.contains(field)),
        })
        .collect();
    ColumnDrift {
        missing,
        added,
        removed,
    }
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
                let (rows, bytes) = (*rows, *bytes);
                s.days.insert(*day, DayState::Done { rows, bytes });
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
                let error = error.clone();
                s.days.insert(*day, DayState::Failed { error });
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
                s.days.insert(day, DayState::Pending);
                continue;
            }
            s.chunks_not_over += 1;
            s.days.insert(day, DayState::NotOver { closes });
            if first.is_none_or(|(at, _)| closes < at) {
                first = Some((closes, tz));
            }
        }
        if let Some((at, tz)) = first {
            s.first_closes = Some(soql::datetime_literal(at));
            s.first_closes_text = Some(history::local_and_utc(at, tz));
        }
    }
    // The days of the files written under each config, in one pass over the chunks.
    let mut days: BTreeMap<&str, Vec<BTreeSet<NaiveDate>>> = BTreeMap::new();
    for ((object, day), chunk) in &state.chunks {
        if let ChunkState::Done {
            version: Some(v), ..
        } = chunk
        {
            let versions = state.versions.get(object).map_or(0, Vec::len);
            let of_object = days
                .entry(object)
                .or_insert_with(|| vec![BTreeSet::new(); versions]);
            if let Some(set) = of_object.get_mut(*v) {
                set.insert(*day);
            }
        }
    }
    let none = BTreeSet::new();
    for (object, versions) in &state.versions {
        let of_object = days.get(object.as_str());
        let folded: Vec<_> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| (v, of_object.and_then(|d| d.get(i)).unwrap_or(&none)))
            .collect();
        let columns = column_drift(&folded);
        if !columns.is_empty() {
            by_object.entry(object.clone()).or_default().columns = columns;
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
    /// How the object's synced columns drifted between syncs; `added` names the days whose
    /// sync files lack a column.
    pub columns: ColumnDrift,
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
            columns: sync_drift(&c.versions),
        })
        .collect()
}

/// [`column_drift`] of a sync's configs. The files written before a finished full re-read
/// lack nothing any more: the re-read wrote their rows again, and a reader keeps the newest.
fn sync_drift(versions: &[cursors::SyncedVersion]) -> ColumnDrift {
    let refreshed = versions.iter().rposition(|v| v.full_pass).unwrap_or(0);
    let none = BTreeSet::new();
    let folded: Vec<_> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| (&v.version, if i < refreshed { &none } else { &v.days }))
        .collect();
    column_drift(&folded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::PlannedWindow;
    use crate::checkpoint::cursors::{ObjectCursor, Position, SyncState};
    use crate::plan::Window;
    use chrono::{Datelike, TimeZone};

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
            version: None,
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
        let states: Vec<_> = s.days.iter().map(|(d, st)| (d.day(), st.name())).collect();
        assert_eq!(
            states,
            [
                (1, "pending"),
                (2, "done"),
                (3, "done"),
                (4, "failed"),
                (5, "pending"),
                (6, "pending")
            ]
        );
        assert_eq!(s.days[&day(3)], DayState::Done { rows: 7, bytes: 70 });
    }

    fn version(fields: &[&str], missing: &[&str], at: Option<DateTime<Utc>>) -> ConfigVersion {
        let config = crate::checkpoint::ObjectConfig {
            fields: fields.iter().map(|f| f.to_string()).collect(),
            types: fields
                .iter()
                .map(|f| (f.to_string(), "Utf8".to_string()))
                .collect(),
            missing: missing
                .iter()
                .map(|f| (f.to_string(), at.unwrap()))
                .collect(),
            ..Default::default()
        };
        ConfigVersion { config, at }
    }

    #[test]
    fn drift_names_missing_columns_since_when_the_days_lacking_added_ones_and_removed_ones() {
        let v0 = version(&["Id", "Name", "Phone", "Since__c"], &[], None);
        let v1 = version(
            &["Id", "Name", "Region__c", "Since__c"],
            &["Since__c"],
            Some(at(10, 8)),
        );
        let v2 = version(
            &["Id", "Name", "Region__c", "Since__c"],
            &[],
            Some(at(12, 8)),
        );
        let days = |ds: &[u32]| ds.iter().map(|&d| day(d)).collect::<BTreeSet<_>>();
        let (d0, d1, d2) = (days(&[1, 2]), days(&[3]), days(&[4]));

        let hidden = column_drift(&[(&v0, &d0), (&v1, &d1)]);
        assert_eq!(
            hidden.missing,
            [MissingColumn {
                field: "Since__c".into(),
                arrow_type: Some("Utf8".into()),
                since: "2025-03-10T08:00:00.000Z".into()
            }]
        );
        assert_eq!(
            hidden.added,
            [AddedColumn {
                field: "Region__c".into(),
                since: Some("2025-03-10T08:00:00.000Z".into()),
                days: vec!["2025-03-01".into(), "2025-03-02".into()],
                null_days: vec![],
            }]
        );
        assert_eq!(
            hidden.removed,
            [RemovedColumn {
                field: "Phone".into(),
                since: Some("2025-03-10T08:00:00.000Z".into())
            }]
        );

        // Shown again: no longer missing, and the day written while hidden holds nulls.
        let shown = column_drift(&[(&v0, &d0), (&v1, &d1), (&v2, &d2)]);
        assert!(shown.missing.is_empty());
        let since = shown.added.iter().find(|a| a.field == "Since__c").unwrap();
        assert_eq!(since.null_days, ["2025-03-03"]);
        assert!(since.days.is_empty());
        assert_eq!(since.since.as_deref(), Some("2025-03-12T08:00:00.000Z"));
        assert_eq!(column_drift(&[(&v0, &d0)]), ColumnDrift::default());
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
        let not_over: Vec<_> = s
            .days
            .iter()
            .filter(|(_, st)| matches!(st, DayState::NotOver { .. }))
            .map(|(d, _)| d.day())
            .collect();
        assert_eq!(not_over, [3, 4, 5]);
        assert_eq!(s.first_closes.as_deref(), Some("2025-03-03T23:05:00.000Z"));
        assert_eq!(
            s.first_closes_text.as_deref(),
            Some("2025-03-04 00:05:00 CET (2025-03-03 23:05:00 UTC)")
        );
        // Once it is over, it is merely pending.
        let s = &object_statuses(&state, at(6, 0))[0];
        assert_eq!((s.chunks_pending, s.chunks_not_over), (4, 0));
        assert_eq!(s.first_closes, None);
        assert!(s.days.values().all(|d| d.name() != "not-over"));
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
