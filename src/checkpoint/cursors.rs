//! The sync journal: per object, how far `sync` has read (its cursor) and which of its files
//! are committed.
//!
//! Owns `_sfbackfill/sync.journal` and its own lock, `_sfbackfill/sync.lock`, so that a `sync`
//! and a `backfill` run side by side on one folder while two `sync`s cannot.
//!
//! Invariants:
//! * An object's cursor only moves forward, and only after the files of the rows before it are
//!   durable and in place (the caller's order: `Publishing`, publish the files, `Step`).
//! * Files named by a `Publishing` line with no `Step` after it belong to a step that never
//!   committed; the next sync deletes them before it reads, so no row is written twice by a
//!   crash.
//! * A full re-read (`--full-every`) keeps its own position: an interrupted one resumes where it
//!   stopped, and it never moves the incremental cursor back.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{CheckpointError, ConfigVersion, Journal, JournalLine, ObjectConfig, read_unlocked};

/// The sync journal's file name.
pub const SYNC_JOURNAL_FILE: &str = "sync.journal";
/// The sync lock's file name: separate from the backfill's lock.
pub const SYNC_LOCK_FILE: &str = "sync.lock";
/// Where a sync stages its files; the backfill's staging folder is cleared by the backfill.
pub const SYNC_STAGING_DIR: &str = "sync-staging";
const FORMAT: &str = "sfbackfill-sync";
const FORMAT_VERSION: u32 = 1;

/// A point in an object's change order: rows are read ordered by `(cursor, Id)`. An empty
/// `id` lies before every row whose cursor is `at`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub at: DateTime<Utc>,
    pub id: String,
}

impl Position {
    /// Before every row whose cursor is `at` or later.
    pub fn before(at: DateTime<Utc>) -> Self {
        Self {
            at,
            id: String::new(),
        }
    }
}

/// One line of the sync journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SyncEntry {
    Header {
        format: String,
        version: u32,
        created_at: DateTime<Utc>,
    },
    RunStarted {
        run: String,
        pid: u32,
        at: DateTime<Utc>,
    },
    /// The columns and cursor an object is synced with, from this line on (a new line each
    /// time the columns drift, as in the backfill journal); `origin` is where its first sync
    /// started, the start of every full re-read. `types`, `missing` and `at` read as empty in
    /// journals written before sfbackfill followed drift.
    ObjectConfig {
        object: String,
        fields: Vec<String>,
        cursor_field: String,
        chunk_timezone: String,
        include_deleted: bool,
        origin: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        types: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        missing: BTreeMap<String, DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<DateTime<Utc>>,
    },
    /// A step's files are about to be published; without a `Step` after it they are orphans.
    Publishing {
        object: String,
        run: String,
        files: Vec<String>,
    },
    /// A step's files are in place: every row of its pass up to `position` is written.
    Step {
        object: String,
        run: String,
        position: Position,
        full: bool,
        rows: u64,
        files: Vec<String>,
        at: DateTime<Utc>,
    },
    /// A pass read every row whose cursor lies before `upto`.
    Synced {
        object: String,
        run: String,
        upto: DateTime<Utc>,
        full: bool,
        rows: u64,
        at: DateTime<Utc>,
    },
    RunEnded {
        run: String,
        at: DateTime<Utc>,
        outcome: String,
    },
}

impl JournalLine for SyncEntry {
    fn header(&self) -> Option<(&str, u32)> {
        match self {
            SyncEntry::Header {
                format, version, ..
            } => Some((format, *version)),
            _ => None,
        }
    }
}

/// An object's recorded sync settings: what its files are written with, as for a backfill,
/// and where its first sync started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    pub written: ObjectConfig,
    pub origin: DateTime<Utc>,
}

impl SyncConfig {
    /// The line recording this config for `object`, by a run started `at`.
    pub fn entry(&self, object: &str, at: DateTime<Utc>) -> SyncEntry {
        let w = &self.written;
        SyncEntry::ObjectConfig {
            object: object.to_string(),
            fields: w.fields.clone(),
            cursor_field: w.cursor_field.clone(),
            chunk_timezone: w.chunk_timezone.clone(),
            include_deleted: w.include_deleted,
            origin: self.origin,
            types: w.types.clone(),
            missing: w.missing.clone(),
            at: Some(at),
        }
    }
}

/// One recorded config of an object's syncs and what was written under it.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncedVersion {
    pub version: ConfigVersion,
    /// The days of the files committed under it.
    pub days: BTreeSet<NaiveDate>,
    /// A full re-read finished under it: every row of the files written before was written
    /// again with its columns (a reader keeps each record's newest copy).
    pub full_pass: bool,
}

/// What the journal knows of one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectCursor {
    /// The latest config.
    pub config: Option<SyncConfig>,
    /// Every config recorded, oldest first, with the files committed under each (so `status`
    /// can say which days' sync files lack a column).
    pub versions: Vec<SyncedVersion>,
    /// Every row before this position is written (as of when it was read).
    pub cursor: Option<Position>,
    /// An unfinished full re-read: how far it got.
    pub full_pass: Option<Position>,
    /// Passes that read to their end.
    pub passes: u64,
    pub last_synced: Option<DateTime<Utc>>,
    pub rows: u64,
    /// Files of a step that never committed.
    pub uncommitted: Vec<String>,
}

/// The sync journal, folded.
#[derive(Debug, Clone, Default)]
pub struct SyncState {
    pub objects: BTreeMap<String, ObjectCursor>,
    pub last_run_started: Option<DateTime<Utc>>,
    pub last_run_ended: Option<(DateTime<Utc>, String)>,
}

impl SyncState {
    fn apply(&mut self, entry: SyncEntry) {
        match entry {
            SyncEntry::Header { .. } => {}
            SyncEntry::RunStarted { at, .. } => self.last_run_started = Some(at),
            SyncEntry::RunEnded { at, outcome, .. } => self.last_run_ended = Some((at, outcome)),
            SyncEntry::ObjectConfig {
                object,
                fields,
                cursor_field,
                chunk_timezone,
                include_deleted,
                origin,
                types,
                missing,
                at,
            } => {
                let written = ObjectConfig {
                    fields,
                    cursor_field,
                    chunk_timezone,
                    include_deleted,
                    types,
                    missing,
                };
                let o = self.objects.entry(object).or_default();
                let version = ConfigVersion {
                    config: written.clone(),
                    at,
                };
                o.versions.push(SyncedVersion {
                    version,
                    days: BTreeSet::new(),
                    full_pass: false,
                });
                o.config = Some(SyncConfig { written, origin });
            }
            SyncEntry::Publishing { object, files, .. } => {
                self.objects.entry(object).or_default().uncommitted = files;
            }
            SyncEntry::Step {
                object,
                position,
                full,
                rows,
                files,
                ..
            } => {
                let o = self.objects.entry(object).or_default();
                if let Some(v) = o.versions.last_mut() {
                    v.days.extend(files.iter().filter_map(|f| file_day(f)));
                }
                o.uncommitted.clear();
                o.rows += rows;
                if full {
                    o.full_pass = Some(position);
                } else if o.cursor.as_ref().is_none_or(|c| *c < position) {
                    o.cursor = Some(position);
                }
            }
            SyncEntry::Synced {
                object,
                upto,
                full,
                at,
                ..
            } => {
                let o = self.objects.entry(object).or_default();
                let end = Position::before(upto);
                if o.cursor.as_ref().is_none_or(|c| *c < end) {
                    o.cursor = Some(end);
                }
                if full {
                    o.full_pass = None;
                    if let Some(v) = o.versions.last_mut() {
                        v.full_pass = true;
                    }
                }
                o.passes += 1;
                o.last_synced = Some(at);
            }
        }
    }
}

/// The `date=` day of a file path `OBJECT/date=D/NAME`.
fn file_day(file: &str) -> Option<NaiveDate> {
    file.split('/')
        .find_map(|part| part.strip_prefix("date="))
        .and_then(|d| d.parse().ok())
}

/// Reads the sync journal of `out` without locking it (for `status`). None yet reads as empty.
pub fn read(out: &Path) -> Result<SyncState, CheckpointError> {
    let mut state = SyncState::default();
    read_unlocked(out, SYNC_JOURNAL_FILE, (FORMAT, FORMAT_VERSION), |e| {
        state.apply(e)
    })?;
    Ok(state)
}

/// The open, locked sync journal of one output folder. Dropping it releases the lock.
#[derive(Debug)]
pub struct SyncJournal {
    journal: Journal,
    state: SyncState,
    run: String,
}

impl SyncJournal {
    /// Opens (creating if needed) and locks the sync journal of `out`.
    ///
    /// # Errors
    /// `Locked` when another sync holds it; `Corrupt`/`Foreign` for a journal we did not
    /// write; `Io` when the folder cannot be written.
    pub fn open(out: &Path, run: &str) -> Result<Self, CheckpointError> {
        let header = SyncEntry::Header {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            created_at: Utc::now(),
        };
        let mut state = SyncState::default();
        let journal = Journal::open(out, SYNC_JOURNAL_FILE, SYNC_LOCK_FILE, run, header, |e| {
            state.apply(e)
        })?;
        let mut opened = Self {
            journal,
            state,
            run: run.to_string(),
        };
        opened.append(SyncEntry::RunStarted {
            run: run.to_string(),
            pid: std::process::id(),
            at: Utc::now(),
        })?;
        Ok(opened)
    }

    pub fn state(&self) -> &SyncState {
        &self.state
    }

    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// Appends one entry and makes it durable before returning.
    pub fn append(&mut self, entry: SyncEntry) -> Result<(), CheckpointError> {
        self.journal.append(&entry)?;
        self.state.apply(entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, h, 0, 0).unwrap()
    }

    fn step(object: &str, position: Position, full: bool) -> SyncEntry {
        SyncEntry::Step {
            object: object.into(),
            run: "r".into(),
            position,
            full,
            rows: 3,
            files: vec![],
            at: Utc::now(),
        }
    }

    fn synced(object: &str, upto: DateTime<Utc>, full: bool) -> SyncEntry {
        SyncEntry::Synced {
            object: object.into(),
            run: "r".into(),
            upto,
            full,
            rows: 0,
            at: Utc::now(),
        }
    }

    #[test]
    fn the_cursor_survives_a_reopen_and_orders_ties_by_id() {
        let out = tempfile::tempdir().unwrap();
        {
            let mut j = SyncJournal::open(out.path(), "r1").unwrap();
            let tie = |id: &str| Position {
                at: at(1),
                id: id.into(),
            };
            j.append(step("Account", tie("001A"), false)).unwrap();
            j.append(step("Account", tie("001C"), false)).unwrap();
        }
        let j = SyncJournal::open(out.path(), "r2").unwrap();
        let cursor = j.state().objects["Account"].cursor.clone().unwrap();
        assert_eq!(cursor.id, "001C");
        assert_eq!(read(out.path()).unwrap().objects["Account"].rows, 6);
    }

    #[test]
    fn a_full_pass_keeps_its_own_position_and_never_moves_the_cursor_back() {
        let out = tempfile::tempdir().unwrap();
        let mut j = SyncJournal::open(out.path(), "r1").unwrap();
        j.append(synced("Case", at(10), false)).unwrap();
        j.append(step("Case", Position::before(at(2)), true))
            .unwrap();
        let o = &j.state().objects["Case"];
        assert_eq!(o.cursor, Some(Position::before(at(10))));
        assert_eq!(o.full_pass, Some(Position::before(at(2))));
        j.append(synced("Case", at(9), true)).unwrap();
        let o = &j.state().objects["Case"];
        assert_eq!(o.cursor, Some(Position::before(at(10))));
        assert_eq!(o.full_pass, None);
        assert_eq!(o.passes, 2);
    }

    #[test]
    fn files_of_a_step_that_never_committed_are_remembered_until_one_does() {
        let out = tempfile::tempdir().unwrap();
        let mut j = SyncJournal::open(out.path(), "r1").unwrap();
        j.append(SyncEntry::Publishing {
            object: "Lead".into(),
            run: "r1".into(),
            files: vec!["Lead/date=2025-03-01/sync-r1-0001.parquet".into()],
        })
        .unwrap();
        drop(j);
        let state = read(out.path()).unwrap();
        assert_eq!(state.objects["Lead"].uncommitted.len(), 1);
        let mut j = SyncJournal::open(out.path(), "r2").unwrap();
        j.append(step("Lead", Position::before(at(1)), false))
            .unwrap();
        assert!(j.state().objects["Lead"].uncommitted.is_empty());
    }

    #[test]
    fn a_second_sync_is_refused_but_a_backfill_is_not() {
        let out = tempfile::tempdir().unwrap();
        let _sync = SyncJournal::open(out.path(), "s1").unwrap();
        assert!(matches!(
            SyncJournal::open(out.path(), "s2").unwrap_err(),
            CheckpointError::Locked { .. }
        ));
        super::super::Manifest::open(out.path(), "b1").unwrap();
    }
}
