//! The incremental run: per object, the rows whose cursor moved since the last sync.
//!
//! Owns: the range an object's pass reads (from its stored position, or that minus the
//! lookback, up to now minus the safety lag), reading it in `(cursor, Id)` order, cutting it
//! into steps written as one file per day, and the order of a step's commit: files staged and
//! fsync'd, `Publishing` recorded, files renamed into place, `Step` recorded. Does not own HTTP
//! (`salesforce`), bytes-to-Arrow (`decode`), Parquet (`write`) or the journal (`checkpoint`).
//!
//! Invariants:
//! * The cursor moves only after the files holding every row before it are durable and in place.
//! * A restart (an expired query locator, a `QUERY_TIMEOUT`, a killed process) continues after
//!   the last row read or committed by a keyset condition on `(cursor, Id)`, so rows sharing one
//!   cursor value at a page, step or run boundary are neither lost nor read again.
//! * A sync's files are named `sync-<run>-<step>.parquet` and never replace a backfill's
//!   `part-*.parquet`; it stages them in its own folder, which no backfill clears.
//! * A pass holds at most one open Parquet writer: rows come in `(cursor, Id)` order, so a
//!   day's file is finished (closed and fsync'd, still staged) when the first row of a later
//!   day arrives, and a day is never reopened within a step (a row of an earlier day is an
//!   error, not a second file of that name). Every file of a step stays staged until the
//!   step commits.

pub mod settings;

use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use crate::checkpoint::CheckpointError;
use crate::checkpoint::cursors::{Position, SyncEntry, SyncJournal};
use crate::error::{ExitKind, UserFacing};
use crate::plan;
use crate::read::{
    self, ObjectJob, PageSource, QueryBudget, ReadError, StopReason, cursor_column, last_position,
    run_blocking, run_io,
};
use crate::salesforce::soql;
use crate::salesforce::{FetchError, QueryPage, SalesforceClient};
use crate::write::{self, ChunkFileWriter, FileMeta, StagedFile, WriteError};

/// Rows per step: each step ends in one file per day it touches and moves the cursor, so an
/// interrupted sync of a long absence loses at most this many rows of reading.
pub const STEP_ROWS: u64 = 50_000;
/// Expired query locators in a row with no row read between them before the pass gives up:
/// a continuation that read a row made progress and starts the count again, so a long pass
/// whose locators keep expiring (an org maintenance) goes on; a `QUERY_TIMEOUT` narrowing
/// neither counts nor resets it.
const MAX_RESTARTS: u32 = 3;
/// `QUERY_TIMEOUT` halves the range; below this it cannot usefully shrink.
const MIN_RANGE: chrono::Duration = chrono::Duration::seconds(1);

/// What one object's pass reads: the rows after `after` whose cursor is before `upto`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    pub after: Position,
    pub upto: DateTime<Utc>,
    /// A `--full-every` re-read from the object's first sync's start.
    pub full: bool,
}

/// One object of a sync, prepared.
pub struct SyncObject {
    pub job: Arc<ObjectJob>,
    pub zone: Tz,
    /// Read with `queryAll`, soft-deleted rows included.
    pub include_deleted: bool,
    pub pass: Pass,
}

/// Shared by the object tasks of a sync.
pub struct SyncRun {
    pub client: SalesforceClient,
    pub out: PathBuf,
    pub budget: Arc<QueryBudget>,
    /// Rows per step: [`STEP_ROWS`] but for tests.
    pub step_rows: u64,
    pub journal: Arc<Mutex<SyncJournal>>,
}

/// What one object's pass did.
#[derive(Debug, Clone, Default)]
pub struct ObjectSummary {
    pub object: String,
    pub rows: u64,
    pub files: u64,
    /// The cursor the pass reached: everything before it is written.
    pub reached: Option<Position>,
    /// A `--full-every` re-read: `reached` is how far it re-read, not the cursor.
    pub full: bool,
    pub finished: bool,
    pub error: Option<String>,
    /// The most Parquet writers the pass held open at once. Each buffers a row group and
    /// holds its encoders, so this bounds the pass's memory beside its page.
    pub peak_open_files: usize,
}

/// What a sync did.
#[derive(Debug, Default)]
pub struct SyncSummary {
    pub objects: Vec<ObjectSummary>,
    pub query_requests: u64,
    pub stopped: Option<StopReason>,
    pub failed: u64,
    /// Objects not read: a field type that cannot widen.
    pub refused: Vec<String>,
}

/// Why an object's pass stopped: what stops a backfill's chunk, or the sync journal.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Chunk(#[from] ReadError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

impl From<FetchError> for SyncError {
    fn from(e: FetchError) -> Self {
        SyncError::Chunk(e.into())
    }
}

impl From<WriteError> for SyncError {
    fn from(e: WriteError) -> Self {
        SyncError::Chunk(e.into())
    }
}

impl SyncError {
    fn stop_reason(&self, budget: &QueryBudget) -> Option<StopReason> {
        match self {
            SyncError::Chunk(e) => e.stop_reason(budget),
            SyncError::Checkpoint(_) => None,
        }
    }

    /// Errors every other object would meet too: the run ends with this one.
    fn ends_run(&self) -> bool {
        match self {
            SyncError::Chunk(e) => e.ends_run(),
            SyncError::Checkpoint(_) => true,
        }
    }

    fn fetch(&self) -> Option<&FetchError> {
        match self {
            SyncError::Chunk(ReadError::Fetch(e)) => Some(e),
            _ => None,
        }
    }
}

impl UserFacing for SyncError {
    /// Never a usage exit: a sync error arises once the run reads, when files may have been
    /// written (exit 2 promises that nothing was fetched); the hint still says what to fix.
    fn exit_kind(&self) -> ExitKind {
        let kind = match self {
            SyncError::Chunk(e) => e.exit_kind(),
            SyncError::Checkpoint(e) => e.exit_kind(),
        };
        kind.once_reading()
    }

    fn hint(&self) -> Option<String> {
        match self {
            SyncError::Chunk(e) => e.hint(),
            SyncError::Checkpoint(e) => e.hint(),
        }
    }
}

/// The pass an object's sync reads, from what the journal knows of it; `None` when the object
/// has never been synced and no `--start` says where to begin.
pub fn plan_pass(
    cursor: Option<&crate::checkpoint::cursors::ObjectCursor>,
    start: Option<DateTime<Utc>>,
    lookback: chrono::Duration,
    upto: DateTime<Utc>,
    full_every: Option<u64>,
) -> Option<Pass> {
    let pass = |after, full| Some(Pass { after, upto, full });
    let known = cursor.and_then(|c| c.cursor.clone().map(|p| (c, p)));
    match (cursor.and_then(|c| c.full_pass.clone()), known) {
        (Some(resume), _) => pass(resume, true),
        (None, Some((c, position))) => {
            let origin = c.config.as_ref().map(|cfg| cfg.origin);
            match (full_every, origin) {
                (Some(n), Some(origin)) if (c.passes + 1) % n == 0 => {
                    pass(Position::before(origin), true)
                }
                _ if lookback > chrono::Duration::zero() => {
                    pass(Position::before(position.at - lookback), false)
                }
                _ => pass(position, false),
            }
        }
        (None, None) => start.map(Position::before).and_then(|p| pass(p, false)),
    }
}

/// Deletes the files of a step that never committed (a killed sync): their rows are read again.
pub fn discard_uncommitted(out: &Path, files: &[String]) -> Result<(), WriteError> {
    for file in files {
        let path = out.join(file);
        crate::store::discarded(&path)?;
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!("removed `{file}`, written by a sync that did not finish"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(WriteError::from_io(&path, e)),
        }
    }
    Ok(())
}

/// Where a sync stages its files.
pub fn staging_dir(out: &Path) -> PathBuf {
    crate::checkpoint::manifest_dir(out).join(crate::checkpoint::cursors::SYNC_STAGING_DIR)
}

/// Runs every object's pass, `concurrency` at a time, until done or stopped.
pub async fn run(
    run: SyncRun,
    objects: Vec<SyncObject>,
    concurrency: usize,
    shutdown: impl Future<Output = ()>,
) -> Result<SyncSummary, SyncError> {
    let staging = staging_dir(&run.out);
    write::clear_staging(&staging)?;
    let run = Arc::new(run);
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for object in objects {
        let (run, permits, staging) = (run.clone(), permits.clone(), staging.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("never closed");
            let mut reader = PassReader::new(&run, object, staging);
            let result = reader.read().await;
            (reader.summary, result)
        });
    }
    let mut summary = SyncSummary::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            joined = tasks.join_next() => {
                let Some(joined) = joined else { break };
                let (mut object, result) =
                    joined.map_err(|e| ReadError::Worker(e.to_string()))?;
                if let Err(e) = result {
                    if let Some(reason) = e.stop_reason(&run.budget) {
                        summary.stopped.get_or_insert(reason);
                    } else if e.ends_run() {
                        tasks.abort_all();
                        return Err(e);
                    } else {
                        tracing::warn!("{}: {e}", object.object);
                        object.error = Some(e.to_string());
                        summary.failed += 1;
                    }
                }
                summary.objects.push(object);
            }
            () = &mut shutdown => {
                tasks.abort_all();
                summary.stopped = Some(StopReason::Interrupted);
                break;
            }
        }
    }
    summary.objects.sort_by(|a, b| a.object.cmp(&b.object));
    summary.query_requests = run.budget.used();
    Ok(summary)
}

/// Reads one object's pass, step by step.
struct PassReader<'a> {
    run: &'a SyncRun,
    object: SyncObject,
    staging: PathBuf,
    /// The last row read (committed or not); the keyset restart point.
    read_to: Position,
    step: Step,
    steps: u32,
    summary: ObjectSummary,
}

impl<'a> PassReader<'a> {
    fn new(run: &'a SyncRun, object: SyncObject, staging: PathBuf) -> Self {
        let read_to = object.pass.after.clone();
        let summary = ObjectSummary {
            object: object.job.selection.object.to_string(),
            full: object.pass.full,
            ..ObjectSummary::default()
        };
        Self {
            run,
            object,
            staging,
            read_to,
            step: Step::default(),
            steps: 0,
            summary,
        }
    }

    /// Reads `[after, upto)` in ranges (narrowed by `QUERY_TIMEOUT`), then records the pass.
    async fn read(&mut self) -> Result<(), SyncError> {
        let upto = self.object.pass.upto;
        let mut end = upto;
        let mut restarts = 0;
        let mut restarted_at = self.read_to.clone();
        while self.read_to.at < upto {
            match self.read_range(end).await {
                Ok(()) => {
                    restarts = 0;
                    if self.read_to < Position::before(end) {
                        self.read_to = Position::before(end);
                    }
                    end = upto;
                }
                Err(e)
                    if e.fetch().is_some_and(FetchError::is_expired_cursor)
                        && (restarts < MAX_RESTARTS || self.read_to != restarted_at) =>
                {
                    if self.read_to != restarted_at {
                        restarts = 0;
                        restarted_at = self.read_to.clone();
                    }
                    restarts += 1;
                    tracing::info!(
                        "{}: the query cursor expired; continuing after the last row read",
                        self.summary.object
                    );
                }
                Err(e) if e.fetch().is_some_and(FetchError::is_query_timeout) => {
                    let half = (end - self.read_to.at) / 2;
                    if half < MIN_RANGE {
                        return Err(e);
                    }
                    end = self.read_to.at + half;
                    tracing::info!(
                        "{}: the query timed out; reading up to {end} first",
                        self.summary.object
                    );
                }
                Err(e) => {
                    // What was read is kept: the cursor moves to its last row.
                    self.commit().await?;
                    return Err(e);
                }
            }
        }
        self.commit().await?;
        self.finish_pass().await
    }

    /// Reads the rows after `read_to` whose cursor is before `end`, committing full steps:
    /// first the rest of `read_to`'s cursor value when the pass stopped inside it, then the
    /// range from the next millisecond (cursors have millisecond precision).
    async fn read_range(&mut self, end: DateTime<Utc>) -> Result<(), SyncError> {
        if !self.read_to.id.is_empty() {
            let tie = self.read_to.clone();
            let sel = &self.object.job.selection;
            let soql = soql::select_tie(
                &sel.object,
                &sel.identifiers(),
                &sel.cursor,
                tie.at,
                &tie.id,
            );
            self.read_query(soql).await?;
            self.read_to = Position::before(tie.at + chrono::Duration::milliseconds(1));
            if self.read_to.at >= end {
                return Ok(());
            }
        }
        let sel = &self.object.job.selection;
        let soql = soql::select_range(
            &sel.object,
            &sel.identifiers(),
            &sel.cursor,
            self.read_to.at,
            end,
        );
        self.read_query(soql).await
    }

    /// Reads every page of one query, moving `read_to` to each page's last row.
    async fn read_query(&mut self, soql: String) -> Result<(), SyncError> {
        let job = self.object.job.clone();
        let mut request = QueryPage::First {
            soql: soql.clone(),
            include_deleted: self.object.include_deleted,
        };
        self.step.soql = soql;
        loop {
            let source = PageSource {
                client: &self.run.client,
                budget: &self.run.budget,
                offpeak: None,
            };
            let label = || self.summary.object.clone();
            let page = read::fetch_page(source, &job.decoder, &request, &label).await?;
            if let Some(last) = last_position(&page.batch)? {
                self.read_to = last;
            }
            let next = page.next_records_url.clone().filter(|_| !page.done);
            self.write(page.batch).await?;
            if self.step.rows >= self.run.step_rows {
                self.commit().await?;
            }
            match next {
                Some(url) => request = QueryPage::Next { url },
                None => return Ok(()),
            }
        }
    }

    /// Writes a page's rows into their days' staged files. Rows come in `(cursor, Id)` order,
    /// so a day is finished (closed and fsync'd, still staged) as soon as the first row of a
    /// later day arrives: the step holds one open writer, however many days it spans.
    /// Encoding runs on the rayon pool; finishing a file is file I/O and runs apart from it.
    ///
    /// A page not written whole drops the step (its staged files are removed), so a commit
    /// never moves the cursor past rows that are not in a file.
    async fn write(&mut self, batch: RecordBatch) -> Result<(), SyncError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut step = std::mem::take(&mut self.step);
        for (day, rows) in split_by_day(&batch, self.object.zone)? {
            let open = match step.open.take() {
                Some(file) if file.day == day => Some(file),
                Some(file) if file.day > day => {
                    // A second file of an earlier day would take the same name as the first.
                    return Err(ReadError::Worker(format!(
                        "rows out of (cursor, Id) order: a row of {day} after rows of {}",
                        file.day
                    ))
                    .into());
                }
                Some(file) => {
                    step.finished.push(finish_day(file).await?);
                    None
                }
                None => None,
            };
            // The open day's file, or what its first rows create it with.
            let open = open.ok_or_else(|| {
                let schema = self.object.job.file_schema();
                (
                    self.staging.clone(),
                    schema,
                    self.file_meta(day, &step.soql),
                )
            });
            let rows = self.object.job.file_batch(&rows);
            let count = rows.num_rows() as u64;
            let file = run_blocking(move || {
                let mut file = match open {
                    Ok(file) => file,
                    Err((staging, schema, meta)) => DayFile {
                        day,
                        writer: ChunkFileWriter::create(&staging, schema, &meta)?,
                    },
                };
                file.writer.write(&rows)?;
                Ok(file)
            })
            .await?;
            step.open = Some(file);
            step.rows += count;
            self.summary.peak_open_files = self.summary.peak_open_files.max(step.open_files());
        }
        self.step = step;
        Ok(())
    }

    /// The metadata of `day`'s file in this pass, read by `soql`.
    fn file_meta(&self, day: NaiveDate, soql: &str) -> FileMeta {
        let (zone, pass) = (self.object.zone, &self.object.pass);
        FileMeta {
            object: self.summary.object.clone(),
            day,
            window_start: plan::day_start(day, zone).max(pass.after.at),
            window_end: plan::day_start(day.succ_opt().expect("a next day"), zone).min(pass.upto),
            cursor_field: self.object.job.selection.cursor.to_string(),
            soql: soql.to_string(),
            extracted_at: Utc::now(),
            null_fields: self.object.job.null_columns(),
        }
    }

    /// Makes the step's files durable and visible, then moves the cursor to its last row.
    async fn commit(&mut self) -> Result<(), SyncError> {
        let mut step = std::mem::take(&mut self.step);
        if let Some(file) = step.open.take() {
            step.finished.push(finish_day(file).await?);
        }
        if step.finished.is_empty() {
            return Ok(());
        }
        self.steps += 1;
        let object = self.summary.object.clone();
        let run_id = self.run.journal.lock().await.run_id().to_string();
        // One file per day and step: days are finished in order and never reopened.
        let name = format!("sync-{run_id}-{:04}.parquet", self.steps);
        let files: Vec<String> = step
            .finished
            .iter()
            .map(|(day, _)| format!("{object}/date={day}/{name}"))
            .collect();
        let rows: u64 = step.finished.iter().map(|(_, f)| f.rows).sum();
        let bytes: u64 = step.finished.iter().map(|(_, f)| f.bytes).sum();
        record(
            &self.run.journal,
            SyncEntry::Publishing {
                object: object.clone(),
                run: run_id.clone(),
                files: files.clone(),
            },
        )
        .await?;
        let staged = std::mem::take(&mut step.finished);
        let out = self.run.out.clone();
        let target = name.clone();
        run_io(move || {
            for (day, file) in &staged {
                let path = write::partition_dir(&out, &object, *day).join(&target);
                write::publish(file, &path)?;
            }
            Ok(())
        })
        .await?;
        record(
            &self.run.journal,
            SyncEntry::Step {
                object: self.summary.object.clone(),
                run: run_id,
                position: self.read_to.clone(),
                full: self.object.pass.full,
                rows,
                files: files.clone(),
                at: Utc::now(),
            },
        )
        .await?;
        self.summary.rows += rows;
        self.summary.files += files.len() as u64;
        crate::metrics::global().written(&self.summary.object, rows, bytes);
        self.summary.reached = Some(self.read_to.clone());
        Ok(())
    }

    async fn finish_pass(&mut self) -> Result<(), SyncError> {
        let run = self.run.journal.lock().await.run_id().to_string();
        record(
            &self.run.journal,
            SyncEntry::Synced {
                object: self.summary.object.clone(),
                run,
                upto: self.object.pass.upto,
                full: self.object.pass.full,
                rows: self.summary.rows,
                at: Utc::now(),
            },
        )
        .await?;
        self.summary.finished = true;
        self.summary.reached = Some(Position::before(self.object.pass.upto));
        tracing::debug!(
            "{}: {} rows in {} files, at most {} open at once",
            self.summary.object,
            self.summary.rows,
            self.summary.files,
            self.summary.peak_open_files
        );
        Ok(())
    }
}

/// One step's files: the day being written and the days already finished. Rows come in
/// `(cursor, Id)` order, so only the step's last day is open; the others are closed and
/// fsync'd in the staging folder, waiting for the step's commit to rename them into place.
#[derive(Default)]
struct Step {
    /// The day rows are being written to, the latest the step has touched.
    open: Option<DayFile>,
    /// Earlier days, in order: closed, fsync'd, still staged.
    finished: Vec<(NaiveDate, StagedFile)>,
    rows: u64,
    soql: String,
}

impl Step {
    /// Parquet writers the step holds open: one, or none before its first row.
    fn open_files(&self) -> usize {
        usize::from(self.open.is_some())
    }
}

impl Drop for Step {
    /// A step dropped before its commit (a page not written whole, an abandoned pass) leaves
    /// no staged file behind; its rows are read again. The open file removes itself.
    fn drop(&mut self) {
        for (_, staged) in self.finished.drain(..) {
            let _ = std::fs::remove_file(&staged.path);
        }
    }
}

/// The open file of one day of a step.
struct DayFile {
    day: NaiveDate,
    writer: ChunkFileWriter,
}

/// Closes and fsyncs a day's file, still staged, on the I/O runner.
async fn finish_day(file: DayFile) -> Result<(NaiveDate, StagedFile), ReadError> {
    let DayFile { day, writer } = file;
    run_io(move || Ok((day, writer.finish()?))).await
}

/// Appends `entry` to the sync journal. The append fsyncs, so it runs on the I/O runner,
/// holding the journal until the line is written.
async fn record(journal: &Arc<Mutex<SyncJournal>>, entry: SyncEntry) -> Result<(), SyncError> {
    let mut journal = journal.clone().lock_owned().await;
    run_io(move || Ok(journal.append(entry))).await??;
    Ok(())
}

/// Splits rows ordered by cursor into runs of one local day each.
fn split_by_day(batch: &RecordBatch, zone: Tz) -> Result<Vec<(NaiveDate, RecordBatch)>, ReadError> {
    let cursor = cursor_column(batch)?;
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < batch.num_rows() {
        let first = DateTime::from_timestamp_millis(cursor.value(offset))
            .ok_or_else(|| ReadError::Worker("a cursor value out of range".into()))?;
        let day = plan::local_day(first, zone);
        let end = plan::day_start(day.succ_opt().expect("a next day"), zone).timestamp_millis();
        let until = offset + cursor.values()[offset..].partition_point(|&t| t < end);
        out.push((day, batch.slice(offset, until - offset)));
        offset = until;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::ObjectConfig;
    use crate::checkpoint::cursors::{ObjectCursor, SyncConfig};
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, h, 0, 0).unwrap()
    }

    fn known(position: Position, passes: u64) -> ObjectCursor {
        ObjectCursor {
            config: Some(SyncConfig {
                written: ObjectConfig {
                    fields: vec![],
                    cursor_field: "SystemModstamp".into(),
                    chunk_timezone: "UTC".into(),
                    include_deleted: false,
                    ..ObjectConfig::default()
                },
                origin: at(0),
            }),
            cursor: Some(position),
            passes,
            ..ObjectCursor::default()
        }
    }

    #[test]
    fn a_first_sync_needs_a_start() {
        let none = plan_pass(None, None, chrono::Duration::minutes(5), at(9), None);
        assert_eq!(none, None);
        let first = plan_pass(None, Some(at(1)), chrono::Duration::minutes(5), at(9), None);
        assert_eq!(first.unwrap().after, Position::before(at(1)));
    }

    #[test]
    fn later_syncs_start_at_the_cursor_less_the_lookback_or_exactly_after_it() {
        let tie = Position {
            at: at(5),
            id: "001B".into(),
        };
        let c = known(tie.clone(), 3);
        let with = plan_pass(
            Some(&c),
            Some(at(1)),
            chrono::Duration::minutes(5),
            at(9),
            None,
        );
        assert_eq!(
            with.unwrap().after,
            Position::before(at(5) - chrono::Duration::minutes(5))
        );
        let without = plan_pass(Some(&c), None, chrono::Duration::zero(), at(9), None);
        assert_eq!(without.unwrap().after, tie);
    }

    #[test]
    fn every_nth_sync_rereads_from_the_origin_and_an_unfinished_one_resumes() {
        let c = known(Position::before(at(5)), 2);
        let third = plan_pass(Some(&c), None, chrono::Duration::zero(), at(9), Some(3)).unwrap();
        assert!(third.full);
        assert_eq!(third.after, Position::before(at(0)));
        let fourth = plan_pass(
            Some(&known(Position::before(at(5)), 3)),
            None,
            chrono::Duration::zero(),
            at(9),
            Some(3),
        )
        .unwrap();
        assert!(!fourth.full);
        let mut resuming = known(Position::before(at(5)), 3);
        resuming.full_pass = Some(Position::before(at(2)));
        let resumed = plan_pass(Some(&resuming), None, chrono::Duration::zero(), at(9), None);
        assert_eq!(resumed.unwrap().after, Position::before(at(2)));
    }
}
