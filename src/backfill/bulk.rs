//! One span of days read by a Bulk API 2.0 query job (salesforce-api.md §7.1): create the
//! job, poll it with back-off, read its results pages by locator, route rows to their days,
//! publish every day once the results are complete, then delete the job.
//!
//! Where Bulk cannot serve, the span goes back to the coordinator as REST work with a note,
//! never as an error: the org refuses the job (a compound field, an object it does not
//! serve), the daily query jobs are at the guarded share, the job fails (`QUERY_TIMEOUT`
//! after Salesforce's own retries) or is not complete after `--bulk-wait` (then aborted), or
//! the job is deleted under the reader twice.
//!
//! A job is journaled (`checkpoint::bulk_jobs`) when created, at each commit point and when
//! it ends, so a killed run's successor reads on from the last commit ([`super::resume`]).
//!
//! Invariants:
//! * Rows arrive in no order: a day is published (and reported) only after the job's last
//!   results page, so a day's file holds every row of the day or none.
//! * Memory is bounded in bytes whatever the span: decoded rows wait per day until
//!   [`BulkSettings::buffer_bytes`] is reached, then each waiting day's rows go to a part
//!   file; a day with parts is published by concatenating them (no re-encoding). The next
//!   results page is fetched and decoded while the current one's rows are kept, so a task
//!   holds at most the buffer and two pages.
//! * Each such spill is a commit point: the parts are fsync'd in the parts folder, then the
//!   coordinator journals them with the locator of the next page. Commit points come by bytes
//!   of decoded rows, not by page, so a part holds a buffer's share of its day, never a page's.
//! * A day that never spilled is written sorted by `(cursor, Id)`, as REST writes it.
//! * Every request (create, poll, results page, abort, delete) takes one query from the
//!   budget and passes the off-peak check, as a REST page does.

use arrow::array::{Array, UInt32Array};
use arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
use arrow::record_batch::RecordBatch;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::resume::Resume;
use super::sink::{ChunkDone, ChunkSink};
use super::{Context, Event, TaskEnd, Work};
use crate::checkpoint::bulk_jobs::{BulkEntry, PartFile};
use crate::plan::api::{self, Api, ApiMode};
use crate::plan::spans::Span;
use crate::plan::{Chunk, Window};
use crate::read::{Halt, ObjectJob, ReadError, cursor_column, fetch_decoded, run_blocking, run_io};
use crate::salesforce::FetchError;
use crate::salesforce::bulk::{JobState, ResultsPage};
use crate::salesforce::soql;
use crate::write::StagedFile;

/// How Bulk jobs are read.
#[derive(Debug, Clone)]
pub struct BulkSettings {
    /// A job not complete after this long is aborted and its days read through REST.
    pub wait: Duration,
    /// Rows asked per results page (`maxRecords`).
    pub page_rows: usize,
    /// Decoded rows waiting for their day's end, per task, before they go to part files.
    pub buffer_bytes: usize,
}

impl Default for BulkSettings {
    /// Thirty minutes per job, [`crate::plan::api::BULK_PAGE_ROWS`] rows per page, 64 MiB of
    /// waiting rows per task.
    fn default() -> Self {
        Self {
            wait: Duration::from_secs(30 * 60),
            page_rows: crate::plan::api::BULK_PAGE_ROWS,
            buffer_bytes: 64 << 20,
        }
    }
}

/// The first pause between polls; each next one is half again as long, up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(10);
/// Jobs deleted under the reader before its days go to REST.
const MAX_JOBS: u32 = 2;

/// Reads `span` through a Bulk job, a new one or the one `resume` names; says how it ended, as
/// a REST span task does. A job still open when the task fails or stops stays journaled.
pub(super) async fn read_span(
    ctx: Arc<Context>,
    job: Arc<ObjectJob>,
    span: Span,
    resume: Option<Box<Resume>>,
) -> TaskEnd {
    match read(&ctx, &job, &span, resume.map(|r| *r)).await {
        Ok(None) => TaskEnd::Finished,
        Ok(Some(why)) => {
            tracing::warn!(
                "{}: reading through REST instead of Bulk: {why}",
                label(&span)
            );
            // Else `auto` would hand the REST span straight back to a job that fails again.
            ctx.rest_only
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(span.object.clone());
            let _ = ctx.events.send(Event::Spawn(Work::Span(span)));
            TaskEnd::Finished
        }
        Err(error) => {
            if let Some(reason) = error.stop_reason(&ctx.budget) {
                return TaskEnd::Stop(reason);
            }
            if matches!(error, ReadError::Halted(Halt::WindowClosed)) {
                return TaskEnd::PutBack(span);
            }
            TaskEnd::Failed {
                days: span.days,
                error,
            }
        }
    }
}

/// For `--api auto`: hands a REST span to Bulk jobs when its first page (`first`, of a query
/// matching `total_rows`) shows that Bulk needs at most half the requests; says so. A heavy
/// span is cut into consecutive parts of about equal days, a job each ([`api::for_span`]), so
/// their results are read side by side.
pub(super) fn hand_over(
    ctx: &Context,
    job: &ObjectJob,
    days: impl FnOnce() -> Vec<Chunk>,
    total_rows: u64,
    first: &RecordBatch,
) -> bool {
    let object = job.selection.object.as_str();
    let rest_only = ctx
        .rest_only
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(object);
    if rest_only || !ctx.auto_bulk.contains(object) {
        return false;
    }
    let span = Span {
        object: object.to_string(),
        days: days(),
    };
    let shape = api::SpanShape {
        rows: total_rows as f64,
        rest_page_rows: first.num_rows() as u64,
        groups: job.groups.len(),
        days: span.days.len(),
        concurrency: ctx.concurrency,
        bulk_page_rows: ctx.bulk.page_rows,
    };
    let (choice, jobs) = api::for_span(ApiMode::Auto, &job.selection, &shape);
    if choice.api != Api::Bulk {
        return false;
    }
    eprintln!(
        "backfill: {} through bulk: {} ({jobs} job{})",
        label(&span),
        choice.reason,
        if jobs == 1 { "" } else { "s" },
    );
    cut(span, jobs).into_iter().all(|part| {
        ctx.events
            .send(Event::Spawn(Work::Bulk(part, None)))
            .is_ok()
    })
}

/// `span` in `parts` consecutive parts whose day counts differ by at most one.
fn cut(span: Span, parts: usize) -> Vec<Span> {
    let (n, parts) = (span.days.len(), parts.clamp(1, span.days.len().max(1)));
    (0..parts)
        .map(|i| span.part(i * n / parts..(i + 1) * n / parts))
        .collect()
}

fn label(span: &Span) -> String {
    let (first, last) = (&span.days[0], &span.days[span.days.len() - 1]);
    if first.day == last.day {
        first.to_string()
    } else {
        format!("{first}..{}", last.day)
    }
}

/// Reads the span; `Some(reason)` when its days must go to REST instead.
async fn read(
    ctx: &Context,
    job: &ObjectJob,
    span: &Span,
    mut resume: Option<Resume>,
) -> Result<Option<String>, ReadError> {
    let sel = &job.selection;
    let (soql, window) = match &resume {
        Some(r) => (r.soql.clone(), r.window),
        None => {
            let w = span.window();
            let soql =
                soql::bulk_range(&sel.object, &sel.identifiers(), &sel.cursor, w.start, w.end);
            (soql, w)
        }
    };
    for attempt in 1..=MAX_JOBS {
        let (id, from) = match resume.take() {
            Some(r) => {
                tracing::info!(
                    "{}: reading on Bulk job {} after {} committed rows",
                    label(span),
                    r.id,
                    r.rows
                );
                open_jobs(ctx).insert(r.id.clone());
                (r.id.clone(), Some(r))
            }
            None => match create(ctx, span, &soql, window).await? {
                Ok(id) => (id, None),
                Err(why) => return Ok(Some(why)),
            },
        };
        match wait(ctx, &id).await? {
            Waited::Complete => {}
            Waited::Gone => {
                end_job(ctx, &id);
                continue;
            }
            Waited::Failed(message) => {
                delete_quietly(ctx, &id).await;
                return Ok(Some(format!("job {id} failed: {message}")));
            }
            Waited::TooLong => {
                abort_quietly(ctx, &id).await;
                return Ok(Some(format!(
                    "job {id} was not complete after {}s (--bulk-wait); aborted",
                    ctx.bulk.wait.as_secs()
                )));
            }
        }
        match download(ctx, job, span, &id, &soql, window, from).await {
            Ok(()) => {
                delete_quietly(ctx, &id).await;
                return Ok(None);
            }
            Err(ReadError::Fetch(FetchError::NotFound { .. })) if attempt < MAX_JOBS => {
                end_job(ctx, &id);
                tracing::info!(
                    "{}: job {id} was deleted while read; a new job",
                    label(span)
                );
            }
            Err(ReadError::Fetch(FetchError::NotFound { .. })) => {
                end_job(ctx, &id);
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Some(format!("{MAX_JOBS} jobs were deleted while read")))
}

/// Creates the span's job and has it journaled; `Err(reason)` when Bulk cannot serve.
async fn create(
    ctx: &Context,
    span: &Span,
    soql: &str,
    window: Window,
) -> Result<Result<String, String>, ReadError> {
    if let Err(refused) = ctx.client.check_bulk_jobs() {
        return Ok(Err(refused.to_string()));
    }
    ctx.pages().take_request()?;
    let id = match ctx.client.create_query_job(soql, ctx.include_deleted).await {
        Ok(id) => id,
        Err(e) if refuses_job(&e) => return Ok(Err(format!("the org refused the job: {e}"))),
        Err(e) => return Err(e.into()),
    };
    open_jobs(ctx).insert(id.clone());
    let _ = ctx.events.send(Event::Bulk(BulkEntry::JobCreated {
        job: id.clone(),
        object: span.object.clone(),
        soql: soql.to_string(),
        include_deleted: ctx.include_deleted,
        start: window.start,
        end: window.end,
        run: ctx.run.clone(),
        at: chrono::Utc::now(),
    }));
    tracing::debug!("{}: Bulk job {id} created", label(span));
    Ok(Ok(id))
}

/// The job is of no more use: no longer open in this run, nor in the journal.
fn end_job(ctx: &Context, id: &str) {
    open_jobs(ctx).remove(id);
    let _ = ctx.events.send(Event::Bulk(BulkEntry::JobEnded {
        job: id.to_string(),
        at: chrono::Utc::now(),
    }));
}

/// The org's refusal of a job Bulk cannot run; REST may still read the range.
fn refuses_job(e: &FetchError) -> bool {
    match e {
        FetchError::Api { status, code, .. } => {
            *status == 400
                && matches!(
                    code.as_str(),
                    "API_ERROR" | "INVALIDENTITY" | "INVALIDJOB" | "FEATURENOTENABLED"
                )
        }
        FetchError::MalformedQuery { .. } | FetchError::AccessDenied { .. } => true,
        _ => false,
    }
}

enum Waited {
    Complete,
    Failed(String),
    TooLong,
    /// The job disappeared (deleted by someone else): a new one may serve.
    Gone,
}

/// Polls the job until it completes, fails, or passes `--bulk-wait`.
async fn wait(ctx: &Context, id: &str) -> Result<Waited, ReadError> {
    let started = Instant::now();
    let mut pause = FIRST_POLL;
    loop {
        tokio::time::sleep(pause.min(ctx.bulk.wait.saturating_sub(started.elapsed()))).await;
        ctx.pages().take_request()?;
        let state = match ctx.client.job_state(id).await {
            Ok(state) => state,
            Err(FetchError::NotFound { .. }) => return Ok(Waited::Gone),
            Err(e) => return Err(e.into()),
        };
        match state {
            JobState::JobComplete => return Ok(Waited::Complete),
            JobState::Failed(message) => return Ok(Waited::Failed(message)),
            JobState::Aborted => return Ok(Waited::Failed("aborted by someone else".into())),
            _ if started.elapsed() >= ctx.bulk.wait => return Ok(Waited::TooLong),
            _ => pause = (pause * 3 / 2).min(MAX_POLL),
        }
    }
}

async fn abort_quietly(ctx: &Context, id: &str) {
    if ctx.pages().take_request().is_ok()
        && let Err(e) = ctx.client.abort_job(id).await
    {
        tracing::info!("Bulk job {id}: the abort was refused ({e})");
    }
    delete_quietly(ctx, id).await;
}

fn open_jobs(ctx: &Context) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
    ctx.open_jobs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// After a run stopped by a signal, aborts and deletes the jobs its stopped tasks left: their
/// days stay pending and the next run reads them with a new job. (A run stopped by the budget
/// or the usage guard, or failed, leaves its jobs journaled for the next run to read on.)
pub(super) async fn abort_open_jobs(ctx: &Context) {
    let left: Vec<String> = open_jobs(ctx).drain().collect();
    for id in left {
        tracing::info!("Bulk job {id}: aborted, the run stopped before its rows were in");
        abort_quietly(ctx, &id).await;
    }
}

/// Deletes a job whose rows are committed (or that is of no more use) and ends it in the
/// journal; a failed delete only leaves the job to Salesforce's 7-day expiry.
pub(super) async fn delete_quietly(ctx: &Context, id: &str) {
    end_job(ctx, id);
    if ctx.pages().take_request().is_ok()
        && let Err(e) = ctx.client.delete_job(id).await
    {
        tracing::info!("Bulk job {id}: not deleted ({e}); Salesforce removes it after 7 days");
    }
}

/// Reads the job's results pages into the span's days, from the start or from the commit
/// `from` names, committing at each spill; then publishes the days. Rows are reported as
/// read; a download given up takes its report back, as its days will be read again.
async fn download(
    ctx: &Context,
    job: &ObjectJob,
    span: &Span,
    id: &str,
    soql: &str,
    window: Window,
    from: Option<Resume>,
) -> Result<(), ReadError> {
    let mut reported = 0;
    let downloaded = read_results(ctx, job, span, id, (soql, window), from, &mut reported).await;
    if downloaded.is_err() {
        ctx.reporter.on_rows_dropped(&span.object, reported);
    }
    downloaded
}

async fn read_results(
    ctx: &Context,
    job: &ObjectJob,
    span: &Span,
    id: &str,
    (soql, window): (&str, Window),
    from: Option<Resume>,
    reported: &mut u64,
) -> Result<(), ReadError> {
    let mut days = DayRouter::new(ctx, job, span, soql, window);
    let (mut locator, mut rows) = (None, 0);
    if let Some(from) = from {
        days.adopt(from.parts, soql);
        (locator, rows) = (from.locator, from.rows);
    }
    let mut page = results_page(ctx, job, id, locator.as_deref()).await?;
    loop {
        let (batch, next) = page;
        rows += batch.num_rows() as u64;
        *reported += batch.num_rows() as u64;
        ctx.reporter.on_rows(&span.object, batch.num_rows() as u64);
        // The next page is asked for (by the locator this one gave) while this one's rows
        // are routed, spilled and committed: the server's work and ours overlap.
        let keep = async {
            days.route(job, batch).await?;
            match &next {
                Some(next) if days.buffered > ctx.bulk.buffer_bytes => {
                    let parts = days.spill(&ctx.parts_dir).await?;
                    commit(ctx, id, next, rows, parts).await
                }
                _ => Ok(()),
            }
        };
        let fetch = async {
            match &next {
                Some(next) => Some(results_page(ctx, job, id, Some(next)).await),
                None => None,
            }
        };
        let (kept, fetched) = tokio::join!(keep, fetch);
        kept?;
        match fetched {
            Some(fetched) => page = fetched?,
            None => break,
        }
    }
    days.publish_all(ctx, reported).await
}

/// Has the journal record that the job's `rows` before `locator` are in the parts spilled so
/// far, once the parts folder's new entries are durable (and, on a bucket `--out`, uploaded).
async fn commit(
    ctx: &Context,
    id: &str,
    locator: &str,
    rows: u64,
    parts: Vec<PartFile>,
) -> Result<(), ReadError> {
    let dir = ctx.parts_dir.clone();
    let files: Vec<PathBuf> = parts.iter().map(|p| dir.join(&p.file)).collect();
    run_io(move || {
        crate::write::sync_dir(&dir)?;
        for file in &files {
            crate::store::kept(file).map_err(crate::write::WriteError::from)?;
        }
        Ok(())
    })
    .await?;
    let _ = ctx.events.send(Event::Bulk(BulkEntry::Committed {
        job: id.to_string(),
        locator: locator.to_string(),
        rows,
        parts,
        at: chrono::Utc::now(),
    }));
    Ok(())
}

/// One results page, decoded; a page cut off is fetched again from the same locator.
async fn results_page(
    ctx: &Context,
    job: &ObjectJob,
    id: &str,
    locator: Option<&str>,
) -> Result<(RecordBatch, Option<String>), ReadError> {
    let decoder = job.decoder.clone();
    fetch_decoded(
        ctx.pages(),
        &|| format!("Bulk job {id}"),
        || ctx.client.job_results(id, locator, ctx.bulk.page_rows),
        move |page: ResultsPage| Ok((decoder.decode_csv(&page.body, page.records)?, page.next)),
    )
    .await
}

/// The span's rows by day while the job's pages arrive.
struct DayRouter {
    days: Vec<Day>,
    /// Each day's window start, in ms: a row's day is the last start at or before its cursor.
    starts: Arc<Vec<i64>>,
    end: i64,
    /// The job's window, in ms: its rows outside the span's days are of days recorded since.
    job: (i64, i64),
    /// Bytes of decoded rows waiting in `days`.
    buffered: usize,
}

struct Day {
    chunk: Chunk,
    sink: ChunkSink,
    waiting: Vec<RecordBatch>,
    /// Staged part files of rows already spilled, with the query that read them.
    parts: Vec<(Option<StagedFile>, String)>,
}

impl DayRouter {
    fn new(ctx: &Context, job: &ObjectJob, span: &Span, soql: &str, window: Window) -> Self {
        let days = span
            .days
            .iter()
            .map(|chunk| Day {
                chunk: chunk.clone(),
                sink: ChunkSink::new(ctx, job, chunk, soql),
                waiting: Vec::new(),
                parts: Vec::new(),
            })
            .collect();
        Self {
            days,
            starts: Arc::new(
                span.days
                    .iter()
                    .map(|d| d.window.start.timestamp_millis())
                    .collect(),
            ),
            end: span.window().end.timestamp_millis(),
            job: (
                window.start.timestamp_millis(),
                window.end.timestamp_millis(),
            ),
            buffered: 0,
        }
    }

    /// Takes committed parts of a job read on as the first parts of their days.
    fn adopt(&mut self, parts: Vec<(chrono::NaiveDate, StagedFile)>, soql: &str) {
        for (day, part) in parts {
            if let Some(d) = self.days.iter_mut().find(|d| d.chunk.day == day) {
                d.parts.push((Some(part), soql.to_string()));
            }
        }
    }

    /// Splits a page's rows by day (off the runtime) and keeps them with their days.
    async fn route(&mut self, job: &ObjectJob, batch: RecordBatch) -> Result<(), ReadError> {
        let batch = job.file_batch(&batch);
        let (starts, end, window) = (self.starts.clone(), self.end, self.job);
        let by_day = run_blocking(move || split_by_day(&batch, &starts, end, window)).await?;
        for (day, rows) in by_day {
            self.buffered += rows.get_array_memory_size();
            self.days[day].waiting.push(rows);
        }
        Ok(())
    }

    /// Writes every waiting day's rows to a new part file of that day in `dir`, fsync'd;
    /// returns the new parts.
    async fn spill(&mut self, dir: &Path) -> Result<Vec<PartFile>, ReadError> {
        let mut spilled = Vec::new();
        for day in &mut self.days {
            if day.waiting.is_empty() {
                continue;
            }
            let waiting = std::mem::take(&mut day.waiting);
            let (staged, soql) = write_part(day.sink.part_in(dir), waiting).await?;
            if let Some(staged) = &staged {
                spilled.push(PartFile {
                    day: day.chunk.day,
                    file: staged
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    rows: staged.rows,
                    bytes: staged.bytes,
                });
            }
            day.parts.push((staged, soql));
        }
        self.buffered = 0;
        Ok(spilled)
    }

    /// Publishes every day, `concurrency` at a time (the files are independent), and reports
    /// each as it is in place; its rows leave `reported`, the rows a failure takes back.
    async fn publish_all(self, ctx: &Context, reported: &mut u64) -> Result<(), ReadError> {
        use futures::StreamExt;
        let mut published = futures::stream::iter(
            self.days
                .into_iter()
                .map(|day| publish_day(day, ctx.out.clone())),
        )
        .buffer_unordered(ctx.concurrency.max(1));
        while let Some(done) = published.next().await {
            let (chunk, done) = done?;
            // Written: no longer taken back if a later day fails.
            *reported = reported.saturating_sub(done.rows);
            let _ = ctx.events.send(Event::DayDone { chunk, done });
        }
        Ok(())
    }
}

/// Publishes one day: sorted from memory when it never spilled, else its parts (the rows
/// still waiting as one more) concatenated.
async fn publish_day(day: Day, out: PathBuf) -> Result<(Chunk, ChunkDone), ReadError> {
    let Day {
        chunk,
        mut sink,
        waiting,
        mut parts,
    } = day;
    if parts.is_empty() {
        let sink = run_blocking(move || {
            if let Some(rows) = sorted(&waiting)? {
                sink.write(&rows)?;
            }
            Ok(sink)
        })
        .await?;
        let done = run_io(move || Ok(sink.publish(&out)?)).await?;
        return Ok((chunk, done));
    }
    if !waiting.is_empty() {
        parts.push(write_part(sink.part(), waiting).await?);
    }
    let done = run_io(move || Ok(sink.publish_parts(parts, &out)?)).await?;
    Ok((chunk, done))
}

/// Writes `rows` to the part file `part` (encoding off the runtime) and closes it: the staged
/// file (`None`: no rows) and the query that read them.
async fn write_part(
    mut part: ChunkSink,
    rows: Vec<RecordBatch>,
) -> Result<(Option<StagedFile>, String), ReadError> {
    let part = run_blocking(move || {
        for batch in &rows {
            part.write(batch)?;
        }
        Ok(part)
    })
    .await?;
    run_io(move || Ok(part.finish()?)).await
}

/// The rows of `batch` per day index, in row order within each day; rows of the job's
/// `window` before the first day's start or at or after `end` are dropped.
fn split_by_day(
    batch: &RecordBatch,
    starts: &[i64],
    end: i64,
    window: (i64, i64),
) -> Result<Vec<(usize, RecordBatch)>, ReadError> {
    let cursor = cursor_column(batch)?;
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); starts.len()];
    for i in 0..batch.num_rows() {
        let at = cursor.value(i);
        if cursor.is_null(i) || at < window.0 || at >= window.1 {
            return Err(ReadError::Worker(format!(
                "the Bulk job returned a row outside its range (cursor {at} ms)"
            )));
        }
        let day = starts.partition_point(|&s| s <= at);
        if day == 0 || at >= end {
            continue;
        }
        rows[day - 1].push(i as u32);
    }
    rows.into_iter()
        .enumerate()
        .filter(|(_, r)| !r.is_empty())
        .map(|(day, r)| {
            let taken = take_record_batch(batch, &UInt32Array::from(r))
                .map_err(|e| ReadError::Worker(format!("routing rows to days: {e}")))?;
            Ok((day, taken))
        })
        .collect()
}

/// The day's waiting rows as one batch ordered by `(cursor, Id)`; `None` for no rows.
fn sorted(waiting: &[RecordBatch]) -> Result<Option<RecordBatch>, ReadError> {
    let Some(first) = waiting.first() else {
        return Ok(None);
    };
    let worker = |e: arrow::error::ArrowError| ReadError::Worker(format!("sorting a day: {e}"));
    let all = arrow::compute::concat_batches(&first.schema(), waiting).map_err(worker)?;
    let keys = [1, 0].map(|c| SortColumn {
        values: all.column(c).clone(),
        options: None,
    });
    let order = lexsort_to_indices(&keys, None).map_err(worker)?;
    Ok(Some(take_record_batch(&all, &order).map_err(worker)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn batch(rows: &[(&str, i64)]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("Id", DataType::Utf8, false),
            Field::new(
                "SystemModstamp",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(
                    TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1))
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap()
    }

    fn ids(b: &RecordBatch) -> Vec<String> {
        b.column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .iter()
            .map(|s| s.unwrap().to_string())
            .collect()
    }

    #[test]
    fn rows_go_to_the_day_whose_window_holds_their_cursor() {
        let b = batch(&[("c", 250), ("a", 99), ("b", 100), ("d", 199)]);
        let split = split_by_day(&b, &[0, 100, 200], 300, (0, 300)).unwrap();
        let got: Vec<(usize, Vec<String>)> = split.iter().map(|(d, b)| (*d, ids(b))).collect();
        assert_eq!(
            got,
            vec![
                (0, vec!["a".to_string()]),
                (1, vec!["b".to_string(), "d".to_string()]),
                (2, vec!["c".to_string()]),
            ]
        );
        assert!(split_by_day(&batch(&[("x", 300)]), &[0, 100, 200], 300, (0, 300)).is_err());
        assert!(split_by_day(&batch(&[("x", -1)]), &[0, 100, 200], 300, (0, 300)).is_err());
    }

    #[test]
    fn rows_of_the_jobs_days_recorded_since_are_dropped() {
        let b = batch(&[("a", 50), ("b", 150), ("c", 250)]);
        let split = split_by_day(&b, &[100], 200, (0, 300)).unwrap();
        let got: Vec<(usize, Vec<String>)> = split.iter().map(|(d, b)| (*d, ids(b))).collect();
        assert_eq!(got, vec![(0, vec!["b".to_string()])]);
    }

    #[test]
    fn a_day_is_sorted_by_cursor_then_id_across_pages() {
        let pages = [batch(&[("b", 5), ("z", 1)]), batch(&[("a", 5), ("c", 3)])];
        let day = sorted(&pages).unwrap().unwrap();
        assert_eq!(ids(&day), ["z", "c", "a", "b"]);
        assert!(sorted(&[]).unwrap().is_none());
    }
}
