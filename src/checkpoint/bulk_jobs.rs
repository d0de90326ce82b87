//! The Bulk journal: the backfill's open Bulk API 2.0 query jobs, and for each how far its
//! results are read and committed, so a killed run's successor reads on from there.
//!
//! Owns `_sfbackfill/bulk.journal` and the folder of committed part files,
//! `_sfbackfill/bulk-parts/`. It is written only while the backfill's manifest is open (its lock
//! covers this journal too), by the backfill's coordinator.
//!
//! Invariants:
//! * `JobCreated` is written as soon as the org gives the job's id, before any of its results
//!   are read: a run killed while the job runs finds it here and does not create a second one.
//! * A `Committed` line names part files that are fsync'd, in an fsync'd folder, before the
//!   line is written; together with the job's earlier commits they hold exactly the job's
//!   rows before `locator`, split by day. Files in the parts folder that no open job's commits
//!   name are leftovers of a kill and may be removed.
//! * `JobEnded` follows once the job is of no more use (its days recorded, left to REST, or the
//!   job aborted or deleted); an ended job is never read again.
//! * The journal lives beside the backfill journal and is read by nothing else, so an older
//!   sfbackfill, which does not know it, goes on reading the backfill journal (and reads the
//!   days of an open job again through a job of its own).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{CheckpointError, Journal, JournalLine, Manifest, manifest_dir, read_unlocked};

/// The Bulk journal's file name.
pub const BULK_JOURNAL_FILE: &str = "bulk.journal";
/// The folder of committed part files, inside the manifest folder.
pub const BULK_PARTS_DIR: &str = "bulk-parts";
const FORMAT: &str = "sfbackfill-bulk";
const FORMAT_VERSION: u32 = 1;

/// A committed part file: rows of one day read from a job, not yet published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartFile {
    pub day: NaiveDate,
    /// Its name inside [`BULK_PARTS_DIR`].
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
}

/// One line of the Bulk journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BulkEntry {
    Header {
        format: String,
        version: u32,
        created_at: DateTime<Utc>,
    },
    /// A query job was created for the days of `object` in `[start, end)`.
    JobCreated {
        job: String,
        object: String,
        soql: String,
        include_deleted: bool,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        run: String,
        at: DateTime<Utc>,
    },
    /// The job's rows before `locator` (`rows` of them) are in `parts` and the earlier
    /// commits' parts.
    Committed {
        job: String,
        locator: String,
        rows: u64,
        parts: Vec<PartFile>,
        at: DateTime<Utc>,
    },
    /// The job is of no more use.
    JobEnded { job: String, at: DateTime<Utc> },
}

impl JournalLine for BulkEntry {
    fn header(&self) -> Option<(&str, u32)> {
        match self {
            BulkEntry::Header {
                format, version, ..
            } => Some((format, *version)),
            _ => None,
        }
    }
}

/// A job created and not ended, with what is committed of it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenJob {
    pub object: String,
    pub soql: String,
    pub include_deleted: bool,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Where its results are read on from; `None` before the first commit.
    pub locator: Option<String>,
    /// Rows committed.
    pub rows: u64,
    pub parts: Vec<PartFile>,
}

/// The Bulk journal, folded: the open jobs by id.
#[derive(Debug, Clone, Default)]
pub struct BulkState {
    pub open: BTreeMap<String, OpenJob>,
}

impl BulkState {
    fn apply(&mut self, entry: BulkEntry) {
        match entry {
            BulkEntry::Header { .. } => {}
            BulkEntry::JobCreated {
                job,
                object,
                soql,
                include_deleted,
                start,
                end,
                at,
                ..
            } => {
                let open = OpenJob {
                    object,
                    soql,
                    include_deleted,
                    start,
                    end,
                    created_at: at,
                    locator: None,
                    rows: 0,
                    parts: Vec::new(),
                };
                self.open.insert(job, open);
            }
            BulkEntry::Committed {
                job,
                locator,
                rows,
                parts,
                ..
            } => {
                if let Some(open) = self.open.get_mut(&job) {
                    open.locator = Some(locator);
                    open.rows = rows;
                    open.parts.extend(parts);
                }
            }
            BulkEntry::JobEnded { job, .. } => {
                self.open.remove(&job);
            }
        }
    }
}

/// Reads the Bulk journal of `out` without locking it (for `status`).
///
/// # Errors
/// `Corrupt`/`Foreign`/`Newer` for a journal we cannot read; `Io` when it cannot be read.
pub fn read(out: &Path) -> Result<BulkState, CheckpointError> {
    let mut state = BulkState::default();
    read_unlocked(out, BULK_JOURNAL_FILE, (FORMAT, FORMAT_VERSION), |e| {
        state.apply(e)
    })?;
    Ok(state)
}

/// The folder of committed part files of `out`.
pub fn parts_dir(out: &Path) -> PathBuf {
    manifest_dir(out).join(BULK_PARTS_DIR)
}

/// The open Bulk journal of a backfill; written under the manifest's lock.
#[derive(Debug)]
pub struct BulkJournal {
    journal: Journal,
    state: BulkState,
}

impl BulkJournal {
    /// Opens (creating if needed) the Bulk journal of `out`, whose manifest `_held` is open and
    /// so locked by this process.
    ///
    /// # Errors
    /// `Corrupt`/`Foreign`/`Newer` for a journal we cannot read; `Io` when it cannot be written.
    pub fn open(_held: &Manifest, out: &Path) -> Result<Self, CheckpointError> {
        let header = BulkEntry::Header {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            created_at: Utc::now(),
        };
        let mut state = BulkState::default();
        let journal = Journal::open_held(out, BULK_JOURNAL_FILE, header, |e| state.apply(e))?;
        Ok(Self { journal, state })
    }

    pub fn state(&self) -> &BulkState {
        &self.state
    }

    /// Appends one entry and makes it durable before returning.
    pub fn append(&mut self, entry: BulkEntry) -> Result<(), CheckpointError> {
        self.journal.append(&entry)?;
        self.state.apply(entry);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(job: &str) -> BulkEntry {
        let start = NaiveDate::from_ymd_opt(2025, 3, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        BulkEntry::JobCreated {
            job: job.into(),
            object: "Case".into(),
            soql: "SELECT Id FROM Case".into(),
            include_deleted: false,
            start,
            end: start + chrono::Duration::days(2),
            run: "r1".into(),
            at: Utc::now(),
        }
    }

    fn committed(job: &str, locator: &str, rows: u64, file: &str) -> BulkEntry {
        BulkEntry::Committed {
            job: job.into(),
            locator: locator.into(),
            rows,
            parts: vec![PartFile {
                day: NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
                file: file.into(),
                rows: 7,
                bytes: 100,
            }],
            at: Utc::now(),
        }
    }

    #[test]
    fn an_open_job_keeps_its_last_locator_and_every_part_across_a_reopen() {
        let out = tempfile::tempdir().unwrap();
        {
            let manifest = Manifest::open(out.path(), "r1").unwrap();
            let mut j = BulkJournal::open(&manifest, out.path()).unwrap();
            j.append(created("750A")).unwrap();
            j.append(created("750B")).unwrap();
            j.append(committed("750A", "L1", 7, "a1")).unwrap();
            j.append(committed("750A", "L2", 14, "a2")).unwrap();
            j.append(committed("750B", "L1", 7, "b1")).unwrap();
            j.append(BulkEntry::JobEnded {
                job: "750B".into(),
                at: Utc::now(),
            })
            .unwrap();
        }
        let manifest = Manifest::open(out.path(), "r2").unwrap();
        let j = BulkJournal::open(&manifest, out.path()).unwrap();
        let open: Vec<&String> = j.state().open.keys().collect();
        assert_eq!(open, ["750A"]);
        let a = &j.state().open["750A"];
        assert_eq!((a.locator.as_deref(), a.rows), (Some("L2"), 14));
        let files: Vec<&str> = a.parts.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(files, ["a1", "a2"]);
        // The backfill journal itself is untouched: an older binary reads it as before.
        let state = super::super::read(out.path()).unwrap();
        assert!(state.chunks.is_empty());
    }
}
