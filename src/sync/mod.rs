//! The incremental run: per object, the rows whose cursor moved since the last sync.
//!
//! Owns: the range an object's pass reads (from its stored position, or that minus the
//! lookback, up to now minus the safety lag), reading it in `(cursor, Id)` order, cutting it
//! into steps written as one file per day, and the order of a step's commit: files staged and
//! fsync'd, `Publishing` recorded, files renamed into place, `Step` recorded. Does not own HTTP
//! (`fetch`), bytes-to-Arrow (`decode`), Parquet (`write`) or the journal (`checkpoint`).
//!
//! Invariants:
//! * The cursor moves only after the files holding every row before it are durable and in place.
//! * A restart (an expired query locator, a `QUERY_TIMEOUT`, a killed process) continues after
//!   the last row read or committed by a keyset condition on `(cursor, Id)`, so rows sharing one
//!   cursor value at a page, step or run boundary are neither lost nor read again.
//! * A sync's files are named `sync-<run>-<step>.parquet` and never replace a backfill's
//!   `part-*.parquet`; it stages them in its own folder, which no backfill clears.

pub mod settings;

use arrow::array::{Array, StringArray, TimestampMillisecondArray};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use crate::checkpoint::CheckpointError;
use crate::checkpoint::cursors::{Position, SyncEntry, SyncJournal};
use crate::error::{ExitKind, UserFacing};
use crate::plan;
use crate::read::{self, ObjectJob, PageSource, QueryBudget, ReadError, StopReason, run_blocking};
use crate::salesforce::soql;
use crate::salesforce::{FetchError, QueryPage, SalesforceClient};
use crate::write::{self, ChunkFileWriter, FileMeta, WriteError};

/// Rows per step: each step ends in one file per day it touches and moves the cursor, so an
/// interrupted sync of a long absence loses at most this many rows of reading.
pub const STEP_ROWS: u64 = 50_000;
/// Expired query locators in a row, without a page read between them, before giving up.
const MAX_RESTARTS: u32 = 3;
/// `QUERY_TIMEOUT` halves the range; below this it cannot usefully shrink.
const MIN_RANGE: chrono::Duration = chrono::Duration::seconds(1);
/// `select` puts `Id` first and the cursor second.
const ID_COLUMN: usize = 0;
const CURSOR_COLUMN: usize = 1;

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
    fn exit_kind(&self) -> ExitKind {
        match self {
            SyncError::Chunk(e) => e.exit_kind(),
            SyncError::Checkpoint(e) => e.exit_kind(),
        }
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
                        && restarts < MAX_RESTARTS =>
                {
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

    /// Writes a page's rows into their days' staged files, off the async runtime.
    async fn write(&mut self, batch: RecordBatch) -> Result<(), SyncError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut step = std::mem::take(&mut self.step);
        let (zone, staging) = (self.object.zone, self.staging.clone());
        let job = self.object.job.clone();
        let schema = job.file_schema();
        let object = self.summary.object.clone();
        let cursor_field = self.object.job.selection.cursor.to_string();
        let pass = self.object.pass.clone();
        self.step = run_blocking(move || {
            for (day, rows) in split_by_day(&batch, zone)? {
                if !step.files.contains_key(&day) {
                    let meta = FileMeta {
                        object: object.clone(),
                        day,
                        window_start: plan::day_start(day, zone).max(pass.after.at),
                        window_end: plan::day_start(day.succ_opt().expect("a next day"), zone)
                            .min(pass.upto),
                        cursor_field: cursor_field.clone(),
                        soql: step.soql.clone(),
                        extracted_at: Utc::now(),
                        null_fields: job.null_columns(),
                    };
                    let writer = ChunkFileWriter::create(&staging, schema.clone(), &meta)?;
                    step.files.insert(day, writer);
                }
                let rows = job.file_batch(&rows);
                step.files.get_mut(&day).expect("inserted").write(&rows)?;
                step.rows += rows.num_rows() as u64;
            }
            Ok(step)
        })
        .await?;
        Ok(())
    }

    /// Makes the step's files durable and visible, then moves the cursor to its last row.
    async fn commit(&mut self) -> Result<(), SyncError> {
        let step = std::mem::take(&mut self.step);
        if step.files.is_empty() {
            return Ok(());
        }
        self.steps += 1;
        let object = self.summary.object.clone();
        let run_id = self.run.journal.lock().await.run_id().to_string();
        let name = format!("sync-{run_id}-{:04}.parquet", self.steps);
        let staged = run_blocking(move || {
            step.files
                .into_iter()
                .map(|(day, writer)| Ok((day, writer.finish()?)))
                .collect::<Result<Vec<_>, ReadError>>()
        })
        .await?;
        let files: Vec<String> = staged
            .iter()
            .map(|(day, _)| format!("{object}/date={day}/{name}"))
            .collect();
        let rows: u64 = staged.iter().map(|(_, f)| f.rows).sum();
        self.run
            .journal
            .lock()
            .await
            .append(SyncEntry::Publishing {
                object: object.clone(),
                run: run_id.clone(),
                files: files.clone(),
            })?;
        let out = self.run.out.clone();
        let target = name.clone();
        run_blocking(move || {
            for (day, file) in &staged {
                let path = write::partition_dir(&out, &object, *day).join(&target);
                write::publish(file, &path)?;
            }
            Ok(())
        })
        .await?;
        self.run.journal.lock().await.append(SyncEntry::Step {
            object: self.summary.object.clone(),
            run: run_id,
            position: self.read_to.clone(),
            full: self.object.pass.full,
            rows,
            files: files.clone(),
            at: Utc::now(),
        })?;
        self.summary.rows += rows;
        self.summary.files += files.len() as u64;
        self.summary.reached = Some(self.read_to.clone());
        Ok(())
    }

    async fn finish_pass(&mut self) -> Result<(), SyncError> {
        let mut journal = self.run.journal.lock().await;
        let run = journal.run_id().to_string();
        journal.append(SyncEntry::Synced {
            object: self.summary.object.clone(),
            run,
            upto: self.object.pass.upto,
            full: self.object.pass.full,
            rows: self.summary.rows,
            at: Utc::now(),
        })?;
        self.summary.finished = true;
        self.summary.reached = Some(Position::before(self.object.pass.upto));
        Ok(())
    }
}

/// The open files of one step, one per day.
#[derive(Default)]
struct Step {
    files: BTreeMap<NaiveDate, ChunkFileWriter>,
    rows: u64,
    soql: String,
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

fn cursor_column(batch: &RecordBatch) -> Result<&TimestampMillisecondArray, ReadError> {
    batch
        .column(CURSOR_COLUMN)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .ok_or_else(|| ReadError::Worker("the cursor column is not a date-time".into()))
}

/// The `(cursor, Id)` of a page's last row.
fn last_position(batch: &RecordBatch) -> Result<Option<Position>, ReadError> {
    let Some(last) = batch.num_rows().checked_sub(1) else {
        return Ok(None);
    };
    let cursor = cursor_column(batch)?;
    let ids = batch
        .column(ID_COLUMN)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| ReadError::Worker("the Id column is not text".into()))?;
    if cursor.is_null(last) || ids.is_null(last) {
        return Err(ReadError::Worker("a row without its cursor or Id".into()));
    }
    let at = DateTime::from_timestamp_millis(cursor.value(last))
        .ok_or_else(|| ReadError::Worker("a cursor value out of range".into()))?;
    Ok(Some(Position {
        at,
        id: ids.value(last).to_string(),
    }))
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
