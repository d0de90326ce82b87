//! The compaction journal: which day folders `compact` is replacing, and when each object was
//! last compacted.
//!
//! Owns `_sfbackfill/compact.journal`. A compaction holds both writers' locks,
//! `backfill.lock` and `sync.lock`, for its whole run, so no `backfill` or `sync` writes the
//! folder meanwhile (each is refused, naming the compaction), and it is refused while either
//! runs.
//!
//! Invariants:
//! * A `Replacing` line names a day's new file and every old file it replaces (with the size and
//!   modification time each had) before the new file is renamed into place, and so before any
//!   old file is removed. A `Replaced` line follows once every old file is gone.
//! * A `Replacing` with no `Replaced` after it is a replacement a killed compaction left
//!   unfinished: when its new file is in place, the old files it names that still have the
//!   recorded size and time are superseded by it and may be removed; when it is not, nothing
//!   was removed.
//! * The journal lives beside the other two and is read by nothing else, so an older
//!   sfbackfill, which does not know it, goes on reading the backfill and sync journals.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::Path;

use super::{
    CheckpointError, Journal, JournalLine, LOCK_FILE, acquire_lock, cursors, io_err, manifest_dir,
    read_unlocked,
};

/// The compaction journal's file name.
pub const COMPACT_JOURNAL_FILE: &str = "compact.journal";
const FORMAT: &str = "sfbackfill-compact";
const FORMAT_VERSION: u32 = 1;

/// A file a compaction replaces, as it was when the compaction read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldFile {
    /// `OBJECT/date=D/NAME`, relative to the output folder.
    pub file: String,
    pub bytes: u64,
    pub modified: DateTime<Utc>,
}

/// One line of the compaction journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CompactEntry {
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
    /// A day's compacted file is durable in the staging folder; it is renamed into place next
    /// (`file`, none when no row of the day is kept), then `replaces` are removed.
    Replacing {
        object: String,
        day: NaiveDate,
        run: String,
        file: Option<String>,
        replaces: Vec<OldFile>,
        rows: u64,
        at: DateTime<Utc>,
    },
    /// The day's old files are gone (or its replacement was never published).
    Replaced {
        object: String,
        day: NaiveDate,
        run: String,
        at: DateTime<Utc>,
    },
    /// An object's compaction finished: its files and rows before and after.
    Compacted {
        object: String,
        run: String,
        files_before: u64,
        rows_before: u64,
        files_after: u64,
        rows_after: u64,
        days_rewritten: u64,
        at: DateTime<Utc>,
    },
    RunEnded {
        run: String,
        at: DateTime<Utc>,
        outcome: String,
    },
}

impl JournalLine for CompactEntry {
    fn header(&self) -> Option<(&str, u32)> {
        match self {
            CompactEntry::Header {
                format, version, ..
            } => Some((format, *version)),
            _ => None,
        }
    }
}

/// A replacement recorded but not finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Unfinished {
    pub object: String,
    pub day: NaiveDate,
    pub file: Option<String>,
    pub replaces: Vec<OldFile>,
}

/// An object's last finished compaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastCompaction {
    pub at: DateTime<Utc>,
    pub files_before: u64,
    pub files_after: u64,
    pub rows_before: u64,
    pub rows_after: u64,
}

/// The compaction journal, folded.
#[derive(Debug, Clone, Default)]
pub struct CompactState {
    pub objects: BTreeMap<String, LastCompaction>,
    /// Replacements with no `Replaced` line yet, by `(object, day)`.
    pub unfinished: BTreeMap<(String, NaiveDate), Unfinished>,
}

impl CompactState {
    fn apply(&mut self, entry: CompactEntry) {
        match entry {
            CompactEntry::Header { .. }
            | CompactEntry::RunStarted { .. }
            | CompactEntry::RunEnded { .. } => {}
            CompactEntry::Replacing {
                object,
                day,
                file,
                replaces,
                ..
            } => {
                let unfinished = Unfinished {
                    object: object.clone(),
                    day,
                    file,
                    replaces,
                };
                self.unfinished.insert((object, day), unfinished);
            }
            CompactEntry::Replaced { object, day, .. } => {
                self.unfinished.remove(&(object, day));
            }
            CompactEntry::Compacted {
                object,
                files_before,
                rows_before,
                files_after,
                rows_after,
                at,
                ..
            } => {
                let last = LastCompaction {
                    at,
                    files_before,
                    files_after,
                    rows_before,
                    rows_after,
                };
                self.objects.insert(object, last);
            }
        }
    }
}

/// Reads the compaction journal of `out` without locking it (for `status` and `--dry-run`).
/// None yet reads as empty.
pub fn read(out: &Path) -> Result<CompactState, CheckpointError> {
    let mut state = CompactState::default();
    read_unlocked(out, COMPACT_JOURNAL_FILE, (FORMAT, FORMAT_VERSION), |e| {
        state.apply(e)
    })?;
    Ok(state)
}

/// The open compaction journal, holding the backfill's and the sync's locks. Dropping it
/// releases both.
#[derive(Debug)]
pub struct CompactJournal {
    journal: Journal,
    state: CompactState,
    run: String,
    _sync_lock: File,
}

impl CompactJournal {
    /// Takes the sync's and the backfill's locks of `out`, then opens (creating if needed) the
    /// compaction journal.
    ///
    /// # Errors
    /// `Locked` when a sync, a backfill or another compaction holds a lock, naming it;
    /// `Corrupt`/`Foreign` for a journal we did not write; `Io` when the folder cannot be
    /// written.
    pub fn open(out: &Path, run: &str) -> Result<Self, CheckpointError> {
        let dir = manifest_dir(out);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let sync_lock = acquire_lock(out, &dir.join(cursors::SYNC_LOCK_FILE), run)?;
        let header = CompactEntry::Header {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            created_at: Utc::now(),
        };
        let mut state = CompactState::default();
        let journal = Journal::open(out, COMPACT_JOURNAL_FILE, LOCK_FILE, run, header, |e| {
            state.apply(e)
        })?;
        let mut opened = Self {
            journal,
            state,
            run: run.to_string(),
            _sync_lock: sync_lock,
        };
        opened.append(CompactEntry::RunStarted {
            run: run.to_string(),
            pid: std::process::id(),
            at: Utc::now(),
        })?;
        Ok(opened)
    }

    pub fn state(&self) -> &CompactState {
        &self.state
    }

    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// Appends one entry and makes it durable before returning.
    pub fn append(&mut self, entry: CompactEntry) -> Result<(), CheckpointError> {
        self.journal.append(&entry)?;
        self.state.apply(entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
    }

    fn replacing(d: u32) -> CompactEntry {
        CompactEntry::Replacing {
            object: "Account".into(),
            day: day(d),
            run: "r".into(),
            file: Some(format!("Account/date={}/compact-r.parquet", day(d))),
            replaces: vec![OldFile {
                file: format!("Account/date={}/part-00000.parquet", day(d)),
                bytes: 10,
                modified: Utc::now(),
            }],
            rows: 3,
            at: Utc::now(),
        }
    }

    #[test]
    fn a_replacement_without_its_end_is_unfinished_after_a_reopen() {
        let out = tempfile::tempdir().unwrap();
        {
            let mut j = CompactJournal::open(out.path(), "r1").unwrap();
            j.append(replacing(1)).unwrap();
            j.append(CompactEntry::Replaced {
                object: "Account".into(),
                day: day(1),
                run: "r1".into(),
                at: Utc::now(),
            })
            .unwrap();
            j.append(replacing(2)).unwrap();
        }
        let j = CompactJournal::open(out.path(), "r2").unwrap();
        let unfinished: Vec<_> = j.state().unfinished.values().map(|u| u.day).collect();
        assert_eq!(unfinished, [day(2)]);
        assert_eq!(read(out.path()).unwrap().unfinished.len(), 1);
    }

    #[test]
    fn a_compaction_is_refused_beside_a_sync_or_a_backfill_and_refuses_them() {
        let out = tempfile::tempdir().unwrap();
        let sync = cursors::SyncJournal::open(out.path(), "s1").unwrap();
        let e = CompactJournal::open(out.path(), "c1").unwrap_err();
        assert!(e.to_string().contains("run s1"), "{e}");
        drop(sync);
        let backfill = super::super::Manifest::open(out.path(), "b1").unwrap();
        let e = CompactJournal::open(out.path(), "c2").unwrap_err();
        assert!(e.to_string().contains("run b1"), "{e}");
        drop(backfill);
        let _compact = CompactJournal::open(out.path(), "c3").unwrap();
        for e in [
            cursors::SyncJournal::open(out.path(), "s2").unwrap_err(),
            super::super::Manifest::open(out.path(), "b2").unwrap_err(),
        ] {
            assert!(matches!(e, CheckpointError::Locked { .. }), "{e}");
            assert!(e.to_string().contains("run c3"), "{e}");
        }
    }

    #[test]
    fn the_last_compaction_of_each_object_is_kept() {
        let out = tempfile::tempdir().unwrap();
        let mut j = CompactJournal::open(out.path(), "r1").unwrap();
        for files_after in [3, 2] {
            j.append(CompactEntry::Compacted {
                object: "Case".into(),
                run: "r1".into(),
                files_before: 9,
                rows_before: 90,
                files_after,
                rows_after: 50,
                days_rewritten: 2,
                at: Utc::now(),
            })
            .unwrap();
        }
        drop(j);
        assert_eq!(read(out.path()).unwrap().objects["Case"].files_after, 2);
    }
}
