//! `compact`: per object, each record once at its newest version, one file per day folder.
//!
//! Owns the order of a compaction. Under both writers' locks ([`CompactJournal`]), first any
//! replacement a killed compaction left unfinished is finished; then per object:
//! 1. the files of a sync step that never committed are removed (what the next sync would do);
//! 2. a first pass over every file of the object finds each record's newest version
//!    (`index`), whichever day folder holds it;
//! 3. each day folder that changes (more than one file, or a row not kept) is rewritten, one
//!    day at a time: its kept rows streamed into one staged file (`rewrite`), fsync'd; a
//!    `Replacing` line naming it and the day's old files; the new file renamed into place; the
//!    old files removed; a `Replaced` line.
//!
//! Invariants:
//! * Rows never move between day folders: a day's new file holds a subset of its old files'
//!   rows, so every record stays visible in the folder of its newest version at every instant
//!   (that folder's new file is in place before its old files are removed).
//! * Nothing is removed before the journal names it, and a named file is removed only while
//!   it is what the compaction read (same size and modification time).
//! * The sync and backfill journals are not written: every cursor and every done chunk stays
//!   valid, so the next sync or backfill goes on exactly.

pub mod files;
mod index;
mod rewrite;

use chrono::Utc;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::checkpoint::compactions::{CompactEntry, CompactJournal, Unfinished};
use crate::checkpoint::{self, CheckpointError, cursors};
use crate::error::{ExitKind, UserFacing, quoted};
use crate::write::{self, WriteError};
use files::DayFiles;
use index::{Index, Order};

pub use index::BYTES_PER_RECORD;

/// What `compact` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct CompactOptions {
    /// Objects to compact; empty: every object with day folders.
    pub objects: Vec<String>,
    /// Count what would change, change nothing, take no lock.
    pub dry_run: bool,
    /// Leave out records whose newest version is deleted (`IsDeleted`).
    pub drop_deleted: bool,
}

/// What compacting one object did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectCompaction {
    pub object: String,
    pub files_before: u64,
    pub rows_before: u64,
    pub files_after: u64,
    pub rows_after: u64,
    pub days_rewritten: u64,
    /// Records whose newest version is deleted (kept, or dropped with `--drop-deleted`).
    pub deleted: u64,
}

/// Why a compaction stopped.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error("`{0}` is not an sfbackfill output folder (no `_sfbackfill` in it)")]
    NotOutput(PathBuf),
    #[error("no files of {} in `{out}`", quoted(.objects.iter()))]
    UnknownObjects { out: PathBuf, objects: Vec<String> },
    #[error("cannot read `{path}`: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("`{path}` has no `Id` column, so its records cannot be told apart")]
    NoId { path: PathBuf },
    #[error("`{object}.{column}` is `{}` in some files and `{}` in others, and no type holds both", .types.0, .types.1)]
    TypeClash {
        object: String,
        column: String,
        types: (String, String),
    },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// Names the file an error was met reading.
pub(crate) trait Reading<T> {
    fn reading(self, path: &Path) -> Result<T, CompactError>;
}

impl<T, E: std::fmt::Display> Reading<T> for Result<T, E> {
    fn reading(self, path: &Path) -> Result<T, CompactError> {
        self.map_err(|e| CompactError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

impl UserFacing for CompactError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            CompactError::NotOutput(_) | CompactError::UnknownObjects { .. } => ExitKind::Usage,
            CompactError::Write(e) => e.exit_kind(),
            CompactError::Checkpoint(e) => e.exit_kind(),
            _ => ExitKind::Failure,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            CompactError::NotOutput(_) => Some("pass the --out folder of a backfill or sync".into()),
            CompactError::UnknownObjects { .. } => {
                Some("name objects that have day folders there (`sfbackfill status` lists them)".into())
            }
            CompactError::Read { .. } | CompactError::NoId { .. } => Some(
                "nothing in its day folder was changed: restore the file, or move it aside and `backfill --repull` its day, then run the same command again".into(),
            ),
            CompactError::TypeClash { object, .. } => Some(format!(
                "compact the other objects with --objects; `{object}` is left as it is"
            )),
            CompactError::Write(e) => e.hint(),
            CompactError::Checkpoint(e) => e.hint(),
        }
    }
}

/// Compacts the objects of `out`; `run` names the compaction (in its files and journal).
/// Blocking: call it off the async runtime.
///
/// # Errors
/// [`CompactError`]; a lock held by a sync or backfill is `Checkpoint(Locked)`.
pub fn compact(
    out: &Path,
    options: &CompactOptions,
    run: &str,
) -> Result<Vec<ObjectCompaction>, CompactError> {
    if !checkpoint::manifest_dir(out).is_dir() {
        return Err(CompactError::NotOutput(out.to_path_buf()));
    }
    let objects = chosen_objects(out, &options.objects)?;
    let mut journal = match options.dry_run {
        true => None,
        false => Some(CompactJournal::open(out, run)?),
    };
    let compacted = compact_objects(out, &objects, options, run, journal.as_mut());
    if let Some(journal) = journal.as_mut() {
        let outcome = match &compacted {
            Ok(_) => "complete",
            Err(_) => "failed",
        };
        let ended = journal.append(CompactEntry::RunEnded {
            run: run.to_string(),
            at: Utc::now(),
            outcome: outcome.into(),
        });
        // A failure's own error is the one to report; the journal's comes second.
        if compacted.is_ok() {
            ended?;
        }
    }
    compacted
}

/// Finishes what a killed compaction left, then compacts each of `objects` in turn.
fn compact_objects(
    out: &Path,
    objects: &[String],
    options: &CompactOptions,
    run: &str,
    mut journal: Option<&mut CompactJournal>,
) -> Result<Vec<ObjectCompaction>, CompactError> {
    if let Some(journal) = journal.as_deref_mut() {
        finish_unfinished(out, journal)?;
        write::clear_staging(&staging_dir(out))?;
    }
    let synced = cursors::read(out)?;
    let backfilled = checkpoint::read(out)?;
    let mut reports = Vec::new();
    for object in objects {
        let sync = synced.objects.get(object);
        let uncommitted: BTreeSet<String> = sync
            .map(|o| o.uncommitted.iter().cloned().collect())
            .unwrap_or_default();
        if let (true, Some(o)) = (journal.is_some(), sync) {
            crate::sync::discard_uncommitted(out, &o.uncommitted)?;
        }
        let cursor = sync
            .and_then(|o| o.config.as_ref().map(|c| c.written.cursor_field.clone()))
            .or_else(|| {
                backfilled
                    .objects
                    .get(object)
                    .map(|c| c.cursor_field.clone())
            })
            .unwrap_or_else(|| "SystemModstamp".to_string());
        let days = files::object_days(out, object, &uncommitted)?;
        let job = ObjectJob {
            out,
            object,
            order: Order::for_cursor(&cursor),
            run,
            drop_deleted: options.drop_deleted,
        };
        let report = job.compact(&days, journal.as_deref_mut())?;
        if let Some(journal) = journal.as_deref_mut() {
            journal.append(CompactEntry::Compacted {
                object: object.clone(),
                run: run.to_string(),
                files_before: report.files_before,
                rows_before: report.rows_before,
                files_after: report.files_after,
                rows_after: report.rows_after,
                days_rewritten: report.days_rewritten,
                at: Utc::now(),
            })?;
        }
        reports.push(report);
    }
    Ok(reports)
}

/// Where a compaction stages its files: the backfill's staging folder, whose lock it holds.
fn staging_dir(out: &Path) -> PathBuf {
    crate::backfill::staging_dir(out)
}

/// The objects to compact: `requested`, each of which must have day folders, or all of them.
fn chosen_objects(out: &Path, requested: &[String]) -> Result<Vec<String>, CompactError> {
    let present = files::objects_in(out)?;
    if requested.is_empty() {
        return Ok(present);
    }
    let unknown: Vec<String> = requested
        .iter()
        .filter(|o| !present.contains(o))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(CompactError::UnknownObjects {
            out: out.to_path_buf(),
            objects: unknown,
        });
    }
    Ok(requested.to_vec())
}

/// Finishes what a killed compaction recorded: a published file's old files are removed; a
/// replacement never published removed nothing. Either way the day is settled.
fn finish_unfinished(out: &Path, journal: &mut CompactJournal) -> Result<(), CompactError> {
    let unfinished: Vec<Unfinished> = journal.state().unfinished.values().cloned().collect();
    for u in unfinished {
        let published = u.file.as_ref().is_none_or(|f| out.join(f).is_file());
        if published {
            let removed = files::remove_replaced(out, &u.replaces, || {})?;
            files::remove_if_empty(&write::partition_dir(out, &u.object, u.day));
            tracing::info!(
                "{}: finished the compaction of {} interrupted before: {removed} old files removed",
                u.object,
                u.day
            );
        }
        journal.append(CompactEntry::Replaced {
            object: u.object,
            day: u.day,
            run: journal.run_id().to_string(),
            at: Utc::now(),
        })?;
    }
    Ok(())
}

/// One object's compaction.
struct ObjectJob<'a> {
    out: &'a Path,
    object: &'a str,
    order: Order,
    run: &'a str,
    drop_deleted: bool,
}

impl ObjectJob<'_> {
    /// Indexes every file of `days`, then rewrites the days that change (only counts them
    /// without a journal: a dry run).
    fn compact(
        &self,
        days: &[DayFiles],
        mut journal: Option<&mut CompactJournal>,
    ) -> Result<ObjectCompaction, CompactError> {
        // Files in the order that breaks ties: by day, then by name (`compact-` before `part-`
        // before `sync-`, earlier runs first), as `examples/duckdb.sql` orders them.
        let all: Vec<&files::DataFile> = days.iter().flat_map(|d| &d.files).collect();
        let mut index = Index::new(all.len());
        let mut union = rewrite::SchemaUnion::default();
        // Newest first: the newest file's columns lead the unified schema.
        for (number, file) in all.iter().enumerate().rev() {
            let schema = index.add_file(number, &file.path, &self.order)?;
            union.add_older(self.object, &schema)?;
        }
        let mut report = ObjectCompaction {
            object: self.object.to_string(),
            files_before: all.len() as u64,
            deleted: index.deleted(),
            ..ObjectCompaction::default()
        };
        let unified = union.schema();
        let kept = index.into_kept(self.drop_deleted);
        let mut first = 0;
        for day in days {
            let numbers: Vec<usize> = (first..first + day.files.len()).collect();
            first += day.files.len();
            let rows: u64 = numbers.iter().map(|&f| kept.rows(f)).sum();
            let keeps: u64 = numbers.iter().map(|&f| kept.kept(f)).sum();
            report.rows_before += rows;
            report.rows_after += keeps;
            let changes = day.files.len() > 1 || keeps < rows;
            report.files_after += u64::from(keeps > 0);
            if !changes {
                continue;
            }
            report.days_rewritten += 1;
            if let Some(journal) = journal.as_deref_mut() {
                let paths = numbers
                    .iter()
                    .zip(&day.files)
                    .map(|(&n, f)| (n, f.path.as_path()))
                    .collect();
                self.replace_day(day, paths, &kept, &unified, journal)?;
            }
        }
        Ok(report)
    }

    /// Rewrites one day: staged, recorded, published, old files removed, recorded.
    fn replace_day(
        &self,
        day: &DayFiles,
        files: Vec<(usize, &Path)>,
        kept: &index::Kept,
        unified: &arrow::datatypes::SchemaRef,
        journal: &mut CompactJournal,
    ) -> Result<(), CompactError> {
        let plan = rewrite::Day {
            object: self.object,
            day: day.day,
            cursor_field: &self.order.cursor,
            files,
            run: self.run,
        };
        let staged = rewrite::rewrite_day(&plan, kept, unified, &staging_dir(self.out))?;
        let dir = write::partition_dir(self.out, self.object, day.day);
        let name = format!("{}.parquet", self.run);
        let old: Vec<_> = day.files.iter().map(files::DataFile::old_file).collect();
        journal.append(CompactEntry::Replacing {
            object: self.object.to_string(),
            day: day.day,
            run: self.run.to_string(),
            file: staged
                .as_ref()
                .map(|_| format!("{}/date={}/{name}", self.object, day.day)),
            replaces: old.clone(),
            rows: staged.as_ref().map_or(0, |s| s.rows),
            at: Utc::now(),
        })?;
        TEST_KILL.reached("recorded");
        if let Some(staged) = &staged {
            write::publish(staged, &dir.join(&name))?;
        }
        TEST_KILL.reached("published");
        files::remove_replaced(self.out, &old, || TEST_KILL.reached("removed"))?;
        files::remove_if_empty(&dir);
        journal.append(CompactEntry::Replaced {
            object: self.object.to_string(),
            day: day.day,
            run: self.run.to_string(),
            at: Utc::now(),
        })?;
        Ok(())
    }
}

/// A kill -9 at a chosen step, for the crash tests only: `SFBACKFILL_TEST_COMPACT_KILL` set to
/// `STEP:N` (`recorded`, `published` or `removed`, and a count) makes the process kill itself
/// with SIGKILL the Nth time it reaches that step. Unset, it costs one check per step.
static TEST_KILL: crate::kill_point::KillPoint =
    crate::kill_point::KillPoint::new("SFBACKFILL_TEST_COMPACT_KILL");

/// Per object, its files per day and last compaction, for `status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FilesStatus {
    #[serde(flatten)]
    pub files: files::ObjectFiles,
    pub last_compacted: Option<chrono::DateTime<Utc>>,
}

/// The layout of `out`'s day folders, with each object's last compaction.
///
/// # Errors
/// [`CompactError`] when a folder or the compaction journal cannot be read.
pub fn files_status(out: &Path) -> Result<Vec<FilesStatus>, CompactError> {
    let compacted = crate::checkpoint::compactions::read(out)?;
    let last: BTreeMap<&String, _> = compacted.objects.iter().map(|(o, c)| (o, c.at)).collect();
    let layout = match crate::store::layout(out) {
        Some(listed) => listed.map_err(crate::write::WriteError::from)?,
        None => files::layout(out)?,
    };
    Ok(layout
        .into_iter()
        .map(|files| FilesStatus {
            last_compacted: last.get(&files.object).copied(),
            files,
        })
        .collect())
}
