//! Runs a backfill's chunks: the worker pool, the per-run query budget and cancellation.
//!
//! Owns: which span of days runs when, at most `concurrency` at once; reading a span (one range
//! query, cut into parts when its first page shows it is large, narrowed on `QUERY_TIMEOUT`);
//! reading a heavy day in sub-ranges side by side (cut between UTC hours, and an hour too heavy
//! for that into `Id` ranges) and merging their staged files into the day's one file
//! ([`DaySplit`]);
//! routing its rows into per-day files by cursor; the `--query-limit` budget; the order in
//! which a day's work happens (fetch a page, decode and write it off the async runtime,
//! publish the file, then record it); and stopping (signal, budget, usage guard).
//! Does not own HTTP (`fetch`), bytes-to-Arrow (`decode`), files (`write`) or the journal's
//! format (`checkpoint`): it is the only code that appends to the journal during a run.
//!
//! Invariants:
//! * A chunk is recorded done only after its file is fsync'd and renamed into place.
//! * An abandoned chunk (signal, budget, usage guard) is not recorded: it stays pending and
//!   its staged file, if any, is never published.
//! * Memory per running span is one page of JSON and one page of Arrow, whatever the day's size.
//! * A span's rows arrive ordered by `(cursor, Id)`, so a day is finished (published, then
//!   recorded) as soon as a row of a later day arrives; a restart reopens only the open day.
//! * A day cut into sub-ranges is published once, when every sub-range's staged file is in:
//!   they are concatenated in sub-range order into the day's one file, then recorded. A
//!   sub-range that fails fails the day once; its siblings stop and their files are dropped.

use arrow::array::{Array, TimestampMillisecondArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{NaiveDate, Utc};
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::checkpoint::{CheckpointError, Entry, Manifest};
use crate::error::{ExitKind, UserFacing};
use crate::plan::offpeak::OffPeak;
use crate::plan::spans::{self, Span};
use crate::plan::{Chunk, Window};
use crate::read::join::GroupJoin;
use crate::read::{
    ObjectJob, PageSource, QueryBudget, ReadError, StopReason, fetch_page, run_blocking,
};
use crate::salesforce::soql::{self, IdRange};
use crate::salesforce::{QueryPage, SalesforceClient};
use crate::write::{self, ChunkFileWriter, FileMeta, StagedFile, WriteError};

/// A cursor that expires mid-chunk restarts the chunk; more than this many times in a row
/// means the org is expiring cursors faster than we read them.
const MAX_CHUNK_RESTARTS: u32 = 3;
/// The file name of a chunk's Parquet file inside its `date=` folder.
pub const CHUNK_FILE: &str = "part-00000.parquet";

/// Callbacks the scheduler makes as a run advances; `progress` draws them.
pub trait Reporter: Send + Sync {
    /// The chunks to fetch, per object.
    fn on_run_start(&self, _objects: &[(String, u64)]) {}
    /// Rows of `object` decoded and written.
    fn on_rows(&self, _object: &str, _rows: u64) {}
    fn on_chunk_done(&self, _chunk: &Chunk, _rows: u64) {}
    fn on_chunk_failed(&self, _chunk: &Chunk, _error: &str) {}
    /// Outside every off-peak window: no chunk starts until `until` (local time, as text).
    fn on_waiting(&self, _until: &str) {}
    fn on_run_end(&self) {}
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub chunks_done: u64,
    pub chunks_failed: u64,
    pub rows: u64,
    pub bytes: u64,
    pub query_requests: u64,
    pub stopped: Option<StopReason>,
}

/// A failure that ends the whole run.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A chunk's error that every chunk would meet.
    #[error("{chunk}: {source}")]
    Chunk {
        chunk: String,
        #[source]
        source: ReadError,
    },
}

impl UserFacing for ScheduleError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            ScheduleError::Checkpoint(e) => e.exit_kind(),
            ScheduleError::Chunk { source, .. } => source.exit_kind(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ScheduleError::Checkpoint(e) => e.hint(),
            ScheduleError::Chunk { source, .. } => source.hint().or_else(|| {
                Some("done chunks are kept; run the same command again to resume".into())
            }),
        }
    }
}

/// Shared by the span tasks of a run.
struct Context {
    client: SalesforceClient,
    out: PathBuf,
    staging: PathBuf,
    include_deleted: bool,
    /// How many spans may run at once; a large span is cut into about this many parts.
    concurrency: usize,
    /// No request starts outside these windows; a running span pauses at its next page.
    offpeak: Option<OffPeak>,
    budget: Arc<QueryBudget>,
    reporter: Arc<dyn Reporter>,
    /// Finished days and split-off spans, to the coordinator: the only writer of the journal.
    events: mpsc::UnboundedSender<Event>,
}

/// What a span task tells the coordinator while it runs.
enum Event {
    /// A day's file is in place (or the day had no rows): record it done.
    DayDone { chunk: Chunk, done: ChunkDone },
    /// Days (or a sub-range of a day) split off a running span, to run on another worker.
    Spawn(Work),
}

/// What one span task reads: a span of days, or one sub-range of a heavy day.
struct Work {
    span: Span,
    /// Set when `span` is one day cut into sub-ranges: the part this task reads.
    sub: Option<SubRange>,
}

impl From<Span> for Work {
    fn from(span: Span) -> Self {
        Work { span, sub: None }
    }
}

/// One sub-range of a heavy day: the part of the day's window one task reads, and of the
/// rows in it, those whose `Id` lies in `ids` (the whole range but where one window holds
/// more rows than hours can share out).
#[derive(Clone)]
struct SubRange {
    index: usize,
    window: Window,
    ids: IdRange,
    split: Arc<DaySplit>,
}

/// A day read in sub-ranges side by side: collects their staged files until all are in.
struct DaySplit {
    state: Mutex<SplitState>,
}

struct SplitState {
    /// Per sub-range: `None` while it runs, then its staged file (none if it had no rows)
    /// and the SOQL that read it.
    done: Vec<Option<(Option<StagedFile>, String)>>,
    /// A sub-range failed (or the day was merged): later deposits are dropped.
    closed: bool,
    failed: bool,
}

impl DaySplit {
    fn new(parts: usize) -> Self {
        Self {
            state: Mutex::new(SplitState {
                done: (0..parts).map(|_| None).collect(),
                closed: false,
                failed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SplitState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn has_failed(&self) -> bool {
        self.lock().failed
    }

    /// Marks the day failed and drops the staged files already in; true for the first
    /// failure only, which alone reports the day. After the hand-over only the merging task
    /// is left to fail, and it reports the day.
    fn fail(&self) -> bool {
        let mut state = self.lock();
        let first = !state.failed;
        state.failed = true;
        state.closed = true;
        for (staged, _) in state.done.iter_mut().filter_map(Option::take) {
            remove_staged(staged);
        }
        first
    }

    /// Hands in sub-range `index`'s file; when it was the last one missing, returns every
    /// sub-range's file and SOQL in order, for the caller to merge.
    fn deposit(
        &self,
        index: usize,
        staged: Option<StagedFile>,
        soql: String,
    ) -> Option<Vec<(Option<StagedFile>, String)>> {
        let mut state = self.lock();
        if state.closed {
            remove_staged(staged);
            return None;
        }
        state.done[index] = Some((staged, soql));
        if state.done.iter().any(Option::is_none) {
            return None;
        }
        state.closed = true;
        Some(state.done.iter_mut().filter_map(Option::take).collect())
    }
}

impl Drop for DaySplit {
    /// A day abandoned before its merge (signal, budget) leaves no staged file behind.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        for (staged, _) in state.done.iter_mut().filter_map(Option::take) {
            remove_staged(staged);
        }
    }
}

fn remove_staged(staged: Option<StagedFile>) {
    if let Some(staged) = staged {
        let _ = std::fs::remove_file(&staged.path);
    }
}

/// The settings of one run.
pub struct RunConfig {
    pub client: SalesforceClient,
    pub out: PathBuf,
    pub include_deleted: bool,
    pub concurrency: usize,
    pub budget: Arc<QueryBudget>,
    pub offpeak: Option<OffPeak>,
    pub exit_outside_window: bool,
    pub reporter: Arc<dyn Reporter>,
}

/// Where chunk files are written before they are published.
pub fn staging_dir(out: &Path) -> PathBuf {
    crate::checkpoint::manifest_dir(out).join("staging")
}

/// Runs `chunks`, at most `concurrency` spans at a time, recording each day in `manifest`.
///
/// Consecutive days of an object are read as one span (see `fetch_plan`); a span whose first
/// page shows it is large is counted by day and cut into parts that run side by side.
/// Returns when every chunk is done or failed, or when the run stops (`shutdown` resolves,
/// the query budget or the API usage guard is reached): then `stopped` says why.
///
/// # Errors
/// A journal that cannot be written, or a chunk error every chunk would meet (disk full).
pub async fn run(
    config: RunConfig,
    manifest: &mut Manifest,
    jobs: &HashMap<String, Arc<ObjectJob>>,
    chunks: Vec<Chunk>,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, ScheduleError> {
    let staging = staging_dir(&config.out);
    write::clear_staging(&staging).map_err(|e| ScheduleError::Chunk {
        chunk: "staging".into(),
        source: ReadError::Write(e),
    })?;
    let (events, mut inbox) = mpsc::unbounded_channel();
    let ctx = Arc::new(Context {
        client: config.client,
        out: config.out,
        staging,
        include_deleted: config.include_deleted,
        concurrency: config.concurrency,
        offpeak: config.offpeak.clone(),
        budget: config.budget,
        reporter: config.reporter,
        events,
    });
    let mut per_object: Vec<(String, u64)> = Vec::new();
    for c in &chunks {
        match per_object.iter_mut().find(|(o, _)| *o == c.object) {
            Some((_, n)) => *n += 1,
            None => per_object.push((c.object.clone(), 1)),
        }
    }
    ctx.reporter.on_run_start(&per_object);

    let mut summary = RunSummary::default();
    let mut pending: VecDeque<Work> = spans::spans(chunks).into_iter().map(Work::from).collect();
    let mut running = JoinSet::new();
    let mut waiting_reported = false;
    tokio::pin!(shutdown);
    loop {
        let closed_until = closed_until(config.offpeak.as_ref(), !pending.is_empty());
        if let (Some(opens), true) = (closed_until, config.exit_outside_window) {
            let opens = config
                .offpeak
                .as_ref()
                .expect("closed implies windows")
                .local(opens);
            summary
                .stopped
                .get_or_insert(StopReason::OutsideWindow { opens });
        }
        while summary.stopped.is_none()
            && closed_until.is_none()
            && running.len() < config.concurrency
        {
            let Some(work) = pending.pop_front() else {
                break;
            };
            let job = jobs[&work.span.object].clone();
            running.spawn(fetch_span(ctx.clone(), job, work));
            waiting_reported = false;
        }
        let opens = closed_until.filter(|_| summary.stopped.is_none());
        if running.is_empty() && opens.is_none() {
            break;
        }
        if let (Some(at), false) = (opens, waiting_reported) {
            ctx.reporter.on_waiting(
                &config
                    .offpeak
                    .as_ref()
                    .expect("closed implies windows")
                    .local(at),
            );
            waiting_reported = true;
        }
        let wait = opens.map(|at| (at - Utc::now()).to_std().unwrap_or_default());
        tokio::select! {
            biased;
            Some(event) = inbox.recv() => {
                if let Err(e) = on_event(&ctx, manifest, &mut summary, &mut pending, event) {
                    running.abort_all();
                    return Err(e);
                }
            }
            _ = &mut shutdown, if summary.stopped.is_none() => {
                summary.stopped = Some(StopReason::Interrupted);
                running.abort_all();
            }
            _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
            joined = running.join_next(), if !running.is_empty() => {
                let Some(joined) = joined else { break };
                let (days, result) = match joined {
                    Ok(outcome) => outcome,
                    Err(e) if e.is_cancelled() => continue,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
                // The task's last days were sent before it ended: record them first.
                while let Ok(event) = inbox.try_recv() {
                    on_event(&ctx, manifest, &mut summary, &mut pending, event)?;
                }
                if let (Err(ReadError::WindowClosed), Some(first)) = (&result, days.first()) {
                    let object = first.object.clone();
                    pending.push_front(Span { object, days }.into());
                    continue;
                }
                if let Err(e) = record_end(&ctx, manifest, &mut summary, days, result) {
                    running.abort_all();
                    return Err(e);
                }
            }
        }
    }
    // Days published by tasks that a signal then abandoned are in place: record them too.
    while let Ok(event) = inbox.try_recv() {
        on_event(&ctx, manifest, &mut summary, &mut pending, event)?;
    }
    summary.query_requests = ctx.budget.used();
    ctx.reporter.on_run_end();
    Ok(summary)
}

/// When spans remain and the off-peak windows are closed now, the instant the next opens.
fn closed_until(offpeak: Option<&OffPeak>, work_remains: bool) -> Option<chrono::DateTime<Utc>> {
    let offpeak = offpeak.filter(|_| work_remains)?;
    let now = Utc::now();
    (!offpeak.is_open(now)).then(|| offpeak.next_open(now))
}

fn on_event(
    ctx: &Context,
    manifest: &mut Manifest,
    summary: &mut RunSummary,
    pending: &mut VecDeque<Work>,
    event: Event,
) -> Result<(), ScheduleError> {
    match event {
        Event::Spawn(work) => pending.push_front(work),
        Event::DayDone { chunk, done } => {
            manifest.append(Entry::ChunkDone {
                object: chunk.object.clone(),
                day: chunk.day,
                start: chunk.window.start,
                end: chunk.window.end,
                rows: done.rows,
                bytes: done.bytes,
                file: done.file,
                run: manifest.run_id().to_string(),
                at: Utc::now(),
            })?;
            summary.chunks_done += 1;
            summary.rows += done.rows;
            summary.bytes += done.bytes;
            ctx.reporter.on_chunk_done(&chunk, done.rows);
        }
    }
    Ok(())
}

/// Records how a span task ended: `days` are the days it did not finish.
fn record_end(
    ctx: &Context,
    manifest: &mut Manifest,
    summary: &mut RunSummary,
    days: Vec<Chunk>,
    result: Result<(), ReadError>,
) -> Result<(), ScheduleError> {
    let Err(e) = result else {
        return Ok(());
    };
    if let Some(reason) = e.stop_reason(&ctx.budget) {
        summary.stopped.get_or_insert(reason);
        return Ok(());
    }
    let Some(first) = days.first() else {
        return Ok(());
    };
    if e.ends_run() {
        return Err(ScheduleError::Chunk {
            chunk: first.to_string(),
            source: e,
        });
    }
    let error = e.to_string();
    tracing::warn!("chunk {first} and {} more failed: {error}", days.len() - 1);
    for chunk in days {
        manifest.append(Entry::ChunkFailed {
            object: chunk.object.clone(),
            day: chunk.day,
            start: chunk.window.start,
            end: chunk.window.end,
            error: error.clone(),
            run: manifest.run_id().to_string(),
            at: Utc::now(),
        })?;
        summary.chunks_failed += 1;
        ctx.reporter.on_chunk_failed(&chunk, &error);
    }
    Ok(())
}

/// A chunk whose file is in place.
#[derive(Debug)]
struct ChunkDone {
    rows: u64,
    bytes: u64,
    file: Option<String>,
}

/// Reads a span's days; returns the days it did not finish and why, if it stopped early.
/// A sub-range of a day returns its day only if it is the first of the day's sub-ranges to
/// fail, so that a day is recorded failed (or put back) once.
async fn fetch_span(
    ctx: Arc<Context>,
    job: Arc<ObjectJob>,
    work: Work,
) -> (Vec<Chunk>, Result<(), ReadError>) {
    let mut reader = SpanReader {
        days: work.span.days.into(),
        may_refine: work.sub.is_none(),
        narrow: None,
        soql: String::new(),
        sub: work.sub,
    };
    let mut restarts = 0;
    let result = loop {
        match reader.read(&ctx, &job).await {
            Err(ReadError::Fetch(e)) if e.is_expired_cursor() && restarts < MAX_CHUNK_RESTARTS => {
                restarts += 1;
                tracing::info!(
                    "{}: the query cursor expired; reading its open day again",
                    reader.label()
                );
            }
            Err(ReadError::Recut) => {
                tracing::debug!("{}: reading its own id range", reader.label());
            }
            Err(ReadError::Shifted(e)) if restarts < MAX_CHUNK_RESTARTS => {
                restarts += 1;
                tracing::info!("{}: {e}; reading its open day again", reader.label());
            }
            Err(ReadError::Fetch(e)) if e.is_query_timeout() => {
                if !reader.narrow_after_timeout(&ctx) {
                    break Err(ReadError::Fetch(e));
                }
                tracing::info!(
                    "{}: the query timed out; narrowed the range",
                    reader.label()
                );
            }
            other => break other,
        }
    };
    match (&reader.sub, result) {
        (Some(sub), Err(e)) => {
            let first = sub.split.fail();
            let days = if first {
                reader.days.into()
            } else {
                Vec::new()
            };
            (days, Err(e))
        }
        (_, result) => (reader.days.into(), result),
    }
}

/// A query narrowed below this after repeated `QUERY_TIMEOUT`s cannot be narrowed usefully.
const MIN_QUERY_RANGE: chrono::Duration = chrono::Duration::seconds(1);

/// The days of one span task still to finish, and how to query them.
struct SpanReader {
    /// Ordered and consecutive; the front day is the open one.
    days: VecDeque<Chunk>,
    /// A span is counted and cut at most once, on its first page.
    may_refine: bool,
    /// After a `QUERY_TIMEOUT` within one day: the widest range one query may cover.
    narrow: Option<chrono::Duration>,
    /// The SOQL of the range being read, one line per field group: a day's file records the
    /// query that read its rows (the first one, when `narrow` reads a day in several ranges).
    soql: String,
    /// When this task reads one sub-range of its only day: which, and where it ends.
    sub: Option<SubRange>,
}

impl SpanReader {
    fn label(&self) -> String {
        if let (Some(sub), Some(day)) = (&self.sub, self.days.front()) {
            let ids = match (&sub.ids.from, &sub.ids.to) {
                (None, None) => String::new(),
                (from, to) => format!(
                    " ids [{}, {})",
                    from.as_deref().unwrap_or(".."),
                    to.as_deref().unwrap_or("..")
                ),
            };
            return format!(
                "{day} [{}, {}){ids}",
                sub.window.start.format("%H:%M"),
                sub.window.end.format("%H:%M")
            );
        }
        match (self.days.front(), self.days.back()) {
            (Some(a), Some(b)) if a.day != b.day => format!("{a}..{}", b.day),
            (Some(a), _) => a.to_string(),
            _ => "span".into(),
        }
    }

    /// Halves the work after a `QUERY_TIMEOUT`: later days go to another worker, or a single
    /// day is read in narrower ranges. False when the range is already as narrow as it gets.
    fn narrow_after_timeout(&mut self, ctx: &Context) -> bool {
        if self.days.len() > 1 {
            let rest: Vec<Chunk> = self.days.drain(self.days.len() / 2..).collect();
            let object = rest[0].object.clone();
            let _ = ctx
                .events
                .send(Event::Spawn(Span { object, days: rest }.into()));
            return true;
        }
        let Some(day) = self.days.front() else {
            return false;
        };
        let whole = match &self.sub {
            Some(sub) => sub.window.end - sub.window.start,
            None => day.window.end - day.window.start,
        };
        let width = self.narrow.unwrap_or(whole) / 2;
        self.narrow = Some(width);
        width >= MIN_QUERY_RANGE
    }

    /// Reads from the open day's start to the last day's end, finishing each day in order.
    async fn read(&mut self, ctx: &Context, job: &ObjectJob) -> Result<(), ReadError> {
        let mut open: Option<OpenDay> = None;
        let Some(first) = self.days.front() else {
            return Ok(());
        };
        let mut start = self
            .sub
            .as_ref()
            .map_or(first.window.start, |s| s.window.start);
        while let Some(last) = self.days.back() {
            let last_end = self.sub.as_ref().map_or(last.window.end, |s| s.window.end);
            let end = match self.narrow {
                Some(width) => (start + width).min(last_end),
                None => last_end,
            };
            if !self.read_range(ctx, job, &mut open, start, end).await? {
                break;
            }
            self.finish_days_ending_by(ctx, job, &mut open, end).await?;
            start = end;
        }
        Ok(())
    }

    /// Reads `[start, end)`; false when the rows went past the last day (the span was cut).
    async fn read_range(
        &mut self,
        ctx: &Context,
        job: &ObjectJob,
        open: &mut Option<OpenDay>,
        start: chrono::DateTime<Utc>,
        end: chrono::DateTime<Utc>,
    ) -> Result<bool, ReadError> {
        let sel = &job.selection;
        let ids = self.sub.as_ref().map(|s| s.ids.clone()).unwrap_or_default();
        let queries: Vec<String> = job
            .groups
            .iter()
            .map(|g| soql::select_range_in(&sel.object, &g.fields, &sel.cursor, start, end, &ids))
            .collect();
        self.soql = queries.join("\n");
        let mut requests: Vec<Option<QueryPage>> = queries
            .into_iter()
            .map(|soql| {
                Some(QueryPage::First {
                    soql,
                    include_deleted: ctx.include_deleted,
                })
            })
            .collect();
        let positions = job.groups.iter().map(|g| g.positions.clone()).collect();
        let mut join = GroupJoin::new(job.decoder.schema(), positions);
        loop {
            for g in join.hungry() {
                if self.sub.as_ref().is_some_and(|s| s.split.has_failed()) {
                    return Err(ReadError::SiblingFailed);
                }
                let request = requests[g].take().expect("a hungry group has a next page");
                let first_page = matches!(request, QueryPage::First { .. });
                let page = fetch_page(ctx.pages(), &job.groups[g].decoder, &request, &|| {
                    self.label()
                })
                .await?;
                if g == 0 && first_page && std::mem::take(&mut self.may_refine) {
                    self.refine(ctx, job, page.total_size, page.batch.num_rows() as u64)
                        .await?;
                    if self.sub.as_ref().is_some_and(|s| !s.ids.is_whole()) {
                        return Err(ReadError::Recut);
                    }
                }
                requests[g] = match page.next_records_url {
                    Some(url) if !page.done => Some(QueryPage::Next { url }),
                    _ => None,
                };
                join.push(g, page.batch, requests[g].is_none());
            }
            match join.take()? {
                Some(batch) if !self.route(ctx, job, open, &batch).await? => return Ok(false),
                Some(_) => {}
                None if join.is_finished() => return Ok(true),
                None => {}
            }
        }
    }

    /// Cuts a large span after its first page: counts its rows by day and hands all parts but
    /// the first to other workers. A failed count only costs the parallelism.
    async fn refine(
        &mut self,
        ctx: &Context,
        job: &ObjectJob,
        total_rows: u64,
        page_rows: u64,
    ) -> Result<(), ReadError> {
        // The rows of this task's day, when it is left with one: cut it if it is heavy.
        let day_rows = if spans::should_refine(self.days.len(), total_rows, page_rows) {
            self.cut_span(ctx, job, total_rows, page_rows).await?
        } else {
            Some(total_rows as f64)
        };
        match day_rows {
            Some(rows)
                if ctx.concurrency > 1
                    && self.days.len() == 1
                    && spans::should_cut_day(rows, page_rows) =>
            {
                self.cut_day(ctx, job, page_rows).await
            }
            _ => Ok(()),
        }
    }

    /// Counts a span's rows by day and keeps its first part, handing the others to other
    /// workers. Returns the estimated rows of the first part when it is a single day.
    async fn cut_span(
        &mut self,
        ctx: &Context,
        job: &ObjectJob,
        total_rows: u64,
        page_rows: u64,
    ) -> Result<Option<f64>, ReadError> {
        let whole = Span {
            object: job.selection.object.to_string(),
            days: self.days.iter().cloned().collect(),
        };
        let days = &whole.days;
        let (parts, first_rows) = if days.len() > spans::MAX_COUNTED_DAYS {
            let parts = spans::split_evenly(days.len(), ctx.concurrency * 2);
            (parts, None)
        } else {
            match count_by_day(ctx, job, days).await {
                Ok(counts) => {
                    let estimates = spans::estimate_days(days, &counts);
                    let target = spans::part_target(total_rows, page_rows, ctx.concurrency);
                    let parts = spans::split(&estimates, target);
                    let first = parts.first().map(|p| estimates[p.clone()].iter().sum());
                    (parts, first)
                }
                Err(ReadError::QueryLimit) => return Err(ReadError::QueryLimit),
                Err(e) => {
                    tracing::warn!(
                        "{}: cannot count rows by day ({e}); reading it whole",
                        self.label()
                    );
                    return Ok(None);
                }
            }
        };
        if parts.len() > 1 {
            self.days = whole.part(parts[0].clone()).days.into();
            for part in &parts[1..] {
                let _ = ctx
                    .events
                    .send(Event::Spawn(whole.part(part.clone()).into()));
            }
        }
        Ok(first_rows)
    }

    /// Counts this task's one day by UTC hour and cuts it into sub-ranges: this task keeps
    /// the first, the others go to other workers. A failed count only costs the parallelism.
    async fn cut_day(
        &mut self,
        ctx: &Context,
        job: &ObjectJob,
        page_rows: u64,
    ) -> Result<(), ReadError> {
        let day = self.days[0].clone();
        let hours = match count_by_hour(ctx, job, &day).await {
            Ok(hours) => hours,
            Err(ReadError::QueryLimit) => return Err(ReadError::QueryLimit),
            Err(e) => {
                tracing::warn!(
                    "{}: cannot count rows by hour ({e}); reading the day whole",
                    self.label()
                );
                return Ok(());
            }
        };
        let windows = spans::cut_day(day.window, &hours, page_rows, ctx.concurrency);
        let splits = spans::id_splits(&windows, &hours, page_rows, ctx.concurrency);
        let mut subs: Vec<(Window, IdRange)> = Vec::new();
        for (window, parts) in windows.into_iter().zip(splits) {
            let cuts = match parts {
                1 => Vec::new(),
                parts => self.id_cuts(ctx, job, window, parts).await?,
            };
            subs.extend(spans::id_ranges(cuts).into_iter().map(|ids| (window, ids)));
        }
        if subs.len() < 2 {
            return Ok(());
        }
        tracing::debug!("{}: read in {} sub-ranges", self.label(), subs.len());
        let split = Arc::new(DaySplit::new(subs.len()));
        let mut subs = subs.into_iter().enumerate();
        let (_, (window, ids)) = subs.next().expect("at least two");
        self.sub = Some(SubRange {
            index: 0,
            window,
            ids,
            split: split.clone(),
        });
        for (index, (window, ids)) in subs {
            let span = Span {
                object: day.object.clone(),
                days: vec![day.clone()],
            };
            let sub = SubRange {
                index,
                window,
                ids,
                split: split.clone(),
            };
            let _ = ctx.events.send(Event::Spawn(Work {
                span,
                sub: Some(sub),
            }));
        }
        Ok(())
    }

    /// Cuts `window`'s rows into `parts` `Id` ranges, from its lowest and highest `Id` (two
    /// one-row queries). None when those cannot be read: the window is then read whole, which
    /// costs only the parallelism.
    async fn id_cuts(
        &self,
        ctx: &Context,
        job: &ObjectJob,
        window: Window,
        parts: usize,
    ) -> Result<Vec<String>, ReadError> {
        let edges = async {
            let Some(first) = edge_id(ctx, job, window, None).await? else {
                return Ok(None);
            };
            let last = edge_id(ctx, job, window, Some(&first)).await?;
            Ok::<_, ReadError>(last.map(|last| (first, last)))
        };
        match edges.await {
            Ok(Some((first, last))) => Ok(spans::id_cuts(&first, &last, parts)),
            Ok(None) => Ok(Vec::new()),
            Err(ReadError::QueryLimit) => Err(ReadError::QueryLimit),
            Err(e) => {
                tracing::warn!(
                    "{}: cannot read the ids to cut by ({e}); reading the range whole",
                    self.label()
                );
                Ok(Vec::new())
            }
        }
    }

    /// Writes a batch's rows into their days' files; rows are in cursor order, so each day
    /// is finished when the first row of a later day arrives. False once a row lies past the
    /// last day (the rest of the query belongs to parts read elsewhere).
    async fn route(
        &mut self,
        ctx: &Context,
        job: &ObjectJob,
        open: &mut Option<OpenDay>,
        batch: &RecordBatch,
    ) -> Result<bool, ReadError> {
        let cursor = batch
            .column(CURSOR_COLUMN)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .ok_or_else(|| ReadError::Worker("the cursor column is not a date-time".into()))?
            .values()
            .clone();
        let mut offset = 0;
        while offset < batch.num_rows() {
            let Some(day) = self.days.front() else {
                return Ok(false);
            };
            let end = self.front_end().timestamp_millis();
            let until = offset + cursor[offset..].partition_point(|&t| t < end);
            if until > offset {
                let rows = batch.slice(offset, until - offset);
                let count = rows.num_rows() as u64;
                let mut sink = OpenDay::take(open, ctx, job, day, &self.soql).await?;
                // Not awaited: the next page is fetched while this one is written.
                *open = Some(OpenDay(Box::pin(run_blocking(move || {
                    sink.write(&rows)?;
                    Ok(sink)
                }))));
                ctx.reporter.on_rows(&day.object, count);
            }
            if until < batch.num_rows() {
                self.finish_front_day(ctx, job, open).await?;
            }
            offset = until;
        }
        Ok(true)
    }

    /// Finishes every day that ends at or before `end`: all its rows have been read.
    async fn finish_days_ending_by(
        &mut self,
        ctx: &Context,
        job: &ObjectJob,
        open: &mut Option<OpenDay>,
        end: chrono::DateTime<Utc>,
    ) -> Result<(), ReadError> {
        while !self.days.is_empty() && self.front_end() <= end {
            self.finish_front_day(ctx, job, open).await?;
        }
        Ok(())
    }

    /// Where the open day's rows end for this task: the day's end, or its sub-range's.
    fn front_end(&self) -> chrono::DateTime<Utc> {
        match (&self.sub, self.days.front()) {
            (Some(sub), _) => sub.window.end,
            (None, Some(day)) => day.window.end,
            (None, None) => unreachable!("asked for the end of no day"),
        }
    }

    /// Publishes the open day's file (a day with no rows has none) and reports it done.
    async fn finish_front_day(
        &mut self,
        ctx: &Context,
        job: &ObjectJob,
        open: &mut Option<OpenDay>,
    ) -> Result<(), ReadError> {
        let chunk = self.days.front().expect("a day is open").clone();
        let sink = OpenDay::take(open, ctx, job, &chunk, &self.soql).await?;
        let out = ctx.out.clone();
        let done = match &self.sub {
            None => run_blocking(move || sink.publish(&out).map_err(ReadError::from)).await?,
            Some(sub) => {
                let (staged, soql) =
                    run_blocking(move || sink.finish().map_err(ReadError::from)).await?;
                let Some(parts) = sub.split.deposit(sub.index, staged, soql) else {
                    // Other sub-ranges are still running: the last one in publishes the day.
                    self.days.pop_front();
                    return Ok(());
                };
                let day = ChunkSink::new(ctx, job, &chunk, "");
                run_blocking(move || day.publish_parts(parts, &out).map_err(ReadError::from))
                    .await?
            }
        };
        self.days.pop_front();
        let _ = ctx.events.send(Event::DayDone { chunk, done });
        Ok(())
    }
}

/// The open day's file, writing its latest batch on the rayon pool while the next page is
/// fetched. At most one write per span is in flight, so memory stays about a page per span.
struct OpenDay(BoxFuture<'static, Result<ChunkSink, ReadError>>);

impl OpenDay {
    /// The open day's sink once its write has finished, or a new one for `chunk`.
    async fn take(
        open: &mut Option<OpenDay>,
        ctx: &Context,
        job: &ObjectJob,
        chunk: &Chunk,
        soql: &str,
    ) -> Result<ChunkSink, ReadError> {
        match open.take() {
            Some(OpenDay(write)) => write.await,
            None => Ok(ChunkSink::new(ctx, job, chunk, soql)),
        }
    }
}

/// The cursor is the second column of every selection (`select` puts `Id` then the cursor).
const CURSOR_COLUMN: usize = 1;

/// Rows per UTC hour of one day's window, from one aggregate query.
async fn count_by_hour(
    ctx: &Context,
    job: &ObjectJob,
    day: &Chunk,
) -> Result<BTreeMap<chrono::DateTime<Utc>, u64>, ReadError> {
    let sel = &job.selection;
    let soql = soql::count_by_hour(&sel.object, &sel.cursor, day.window.start, day.window.end);
    Ok(spans::hour_counts(&query_json(ctx, &soql).await?))
}

/// The lowest `Id` of the rows in `window`, or with `from` the highest at or above it; none if
/// there is none.
async fn edge_id(
    ctx: &Context,
    job: &ObjectJob,
    window: Window,
    from: Option<&str>,
) -> Result<Option<String>, ReadError> {
    let sel = &job.selection;
    let soql = soql::edge_id(&sel.object, &sel.cursor, window.start, window.end, from);
    let answer = query_json(ctx, &soql).await?;
    Ok(answer["records"][0]["Id"].as_str().map(str::to_string))
}

/// Sends a one-page query (a count, an edge id), spending one query from the budget.
async fn query_json(ctx: &Context, soql: &str) -> Result<serde_json::Value, ReadError> {
    if !ctx.budget.try_take() {
        return Err(ReadError::QueryLimit);
    }
    Ok(ctx.client.query_json(soql).await?)
}

/// Rows per UTC day over the days' range, from one aggregate query.
async fn count_by_day(
    ctx: &Context,
    job: &ObjectJob,
    days: &[Chunk],
) -> Result<BTreeMap<NaiveDate, u64>, ReadError> {
    let sel = &job.selection;
    let soql = soql::count_by_day(
        &sel.object,
        &sel.cursor,
        days[0].window.start,
        days[days.len() - 1].window.end,
    );
    Ok(spans::day_counts(&query_json(ctx, &soql).await?))
}

/// The Parquet file of one chunk while its pages arrive.
struct ChunkSink {
    writer: Option<ChunkFileWriter>,
    staging: PathBuf,
    schema: SchemaRef,
    meta: FileMeta,
}

impl ChunkSink {
    /// The sink of `chunk`'s day, read by `soql`; its file is created with the day's first row.
    fn new(ctx: &Context, job: &ObjectJob, chunk: &Chunk, soql: &str) -> Self {
        Self {
            writer: None,
            staging: ctx.staging.clone(),
            schema: job.decoder.schema(),
            meta: FileMeta {
                object: chunk.object.clone(),
                day: chunk.day,
                window_start: chunk.window.start,
                window_end: chunk.window.end,
                cursor_field: job.selection.cursor.to_string(),
                soql: soql.to_string(),
                extracted_at: Utc::now(),
            },
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), WriteError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.writer.is_none() {
            self.writer = Some(ChunkFileWriter::create(
                &self.staging,
                self.schema.clone(),
                &self.meta,
            )?);
        }
        self.writer.as_mut().expect("created above").write(batch)
    }

    /// Closes a sub-range's file, still staged (none if the sub-range had no rows), with the
    /// SOQL that read it.
    fn finish(self) -> Result<(Option<StagedFile>, String), WriteError> {
        let staged = self.writer.map(ChunkFileWriter::finish).transpose()?;
        Ok((staged, self.meta.soql))
    }

    /// Publishes a day read in sub-ranges: their staged files (with the SOQL that read each),
    /// concatenated in order into the day's one file, which names every sub-range's query.
    /// The staged parts are removed once the day's file is in place (or on failure).
    fn publish_parts(
        mut self,
        parts: Vec<(Option<StagedFile>, String)>,
        out: &Path,
    ) -> Result<ChunkDone, WriteError> {
        let (staged, soql): (Vec<Option<StagedFile>>, Vec<String>) = parts.into_iter().unzip();
        let staged: Vec<StagedFile> = staged.into_iter().flatten().collect();
        self.meta.soql = soql.join("\n");
        let merged = match staged.as_slice() {
            [] => return self.publish(out),
            parts => write::concat_staged(parts, &self.staging, &self.meta),
        };
        let published = merged.and_then(|merged| {
            let dir = write::partition_dir(out, &self.meta.object, self.meta.day);
            write::publish(&merged, &dir.join(CHUNK_FILE))?;
            Ok(merged)
        });
        for part in staged {
            let _ = std::fs::remove_file(&part.path);
        }
        let merged = published?;
        Ok(ChunkDone {
            rows: merged.rows,
            bytes: merged.bytes,
            file: Some(format!(
                "{}/date={}/{CHUNK_FILE}",
                self.meta.object, self.meta.day
            )),
        })
    }

    /// Publishes the file; a day with no rows publishes an empty file only to replace one.
    fn publish(self, out: &Path) -> Result<ChunkDone, WriteError> {
        let dir = write::partition_dir(out, &self.meta.object, self.meta.day);
        let final_path = dir.join(CHUNK_FILE);
        let writer = match self.writer {
            Some(w) => w,
            None if final_path.exists() => {
                ChunkFileWriter::create(&self.staging, self.schema, &self.meta)?
            }
            None => {
                return Ok(ChunkDone {
                    rows: 0,
                    bytes: 0,
                    file: None,
                });
            }
        };
        let staged = writer.finish()?;
        write::publish(&staged, &final_path)?;
        Ok(ChunkDone {
            rows: staged.rows,
            bytes: staged.bytes,
            file: Some(format!(
                "{}/date={}/{CHUNK_FILE}",
                self.meta.object, self.meta.day
            )),
        })
    }
}

impl Context {
    fn pages(&self) -> PageSource<'_> {
        PageSource {
            client: &self.client,
            budget: &self.budget,
            offpeak: self.offpeak.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(dir: &Path, name: &str) -> Option<StagedFile> {
        let path = dir.join(name);
        std::fs::write(&path, b"x").unwrap();
        Some(StagedFile {
            path,
            rows: 1,
            bytes: 1,
        })
    }

    #[test]
    fn a_split_day_is_handed_over_once_when_its_last_sub_range_is_in() {
        let dir = tempfile::tempdir().unwrap();
        let split = DaySplit::new(3);
        assert!(
            split
                .deposit(2, staged(dir.path(), "c"), "q2".into())
                .is_none()
        );
        assert!(
            split
                .deposit(0, staged(dir.path(), "a"), "q0".into())
                .is_none()
        );
        let parts = split
            .deposit(1, None, "q1".into())
            .expect("the last one is in");
        let soql: Vec<&str> = parts.iter().map(|p| p.1.as_str()).collect();
        assert_eq!(soql, ["q0", "q1", "q2"], "in sub-range order");
        assert!(parts[1].0.is_none());
        // Once handed over, the files are the merger's; its failure reports the day.
        assert!(split.fail());
        assert!(dir.path().join("a").exists() && dir.path().join("c").exists());
    }

    #[test]
    fn a_failed_sub_range_fails_the_day_once_and_drops_its_siblings_files() {
        let dir = tempfile::tempdir().unwrap();
        let split = DaySplit::new(3);
        assert!(
            split
                .deposit(0, staged(dir.path(), "a"), "q0".into())
                .is_none()
        );
        assert!(!split.has_failed());
        assert!(split.fail(), "the first failure reports the day");
        assert!(!split.fail(), "a second one does not");
        assert!(split.has_failed());
        assert!(!dir.path().join("a").exists());
        assert!(
            split
                .deposit(2, staged(dir.path(), "c"), "q2".into())
                .is_none()
        );
        assert!(!dir.path().join("c").exists(), "a late file is dropped");
        // A day abandoned before its merge leaves nothing staged.
        let abandoned = DaySplit::new(2);
        assert!(
            abandoned
                .deposit(1, staged(dir.path(), "b"), "q".into())
                .is_none()
        );
        drop(abandoned);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_query_budget_never_hands_out_more_than_its_limit() {
        let budget = Arc::new(QueryBudget::new(Some(50)));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let b = budget.clone();
                std::thread::spawn(move || (0..20).filter(|_| b.try_take()).count())
            })
            .collect();
        let taken: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(taken, 50);
        assert_eq!(budget.used(), 50);
        let unlimited = QueryBudget::new(None);
        assert!((0..1000).all(|_| unlimited.try_take()));
    }
}
