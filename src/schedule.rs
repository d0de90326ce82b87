//! Runs a backfill's chunks: the worker pool, the per-run query budget and cancellation.
//!
//! Owns: which span of days runs when, at most `concurrency` at once; reading a span (one range
//! query, cut into parts when its first page shows it is large, narrowed on `QUERY_TIMEOUT`);
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

use arrow::array::{Array, TimestampMillisecondArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{NaiveDate, Utc};
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::checkpoint::{CheckpointError, Entry, Manifest};
use crate::decode::{DecodeError, Page, PageDecoder};
use crate::error::{ExitKind, UserFacing};
use crate::fetch::{FetchError, QueryPage, SalesforceClient};
use crate::fetch_plan::{self, Span};
use crate::join::{GroupJoin, RowsShifted};
use crate::offpeak::OffPeak;
use crate::plan::Chunk;
use crate::select::{self, Selection};
use crate::soql;
use crate::soql::Identifier;
use crate::write::{self, ChunkFileWriter, FileMeta, WriteError};

/// A cursor that expires mid-chunk restarts the chunk; more than this many times in a row
/// means the org is expiring cursors faster than we read them.
const MAX_CHUNK_RESTARTS: u32 = 3;
/// A page whose body arrives cut off is fetched again at most this many times.
const MAX_PAGE_REFETCHES: u32 = 4;
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

/// The `--query-limit` budget: how many more query requests this run may send.
#[derive(Debug)]
pub struct QueryBudget {
    limit: Option<u64>,
    used: AtomicU64,
}

impl QueryBudget {
    pub fn new(limit: Option<u64>) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// Takes one request from the budget; false when it is spent.
    pub fn try_take(&self) -> bool {
        let Some(limit) = self.limit else {
            self.used.fetch_add(1, Ordering::Relaxed);
            return true;
        };
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                (u < limit).then_some(u + 1)
            })
            .is_ok()
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// What is copied of one object, shared by its chunks.
pub struct ObjectJob {
    pub selection: Selection,
    /// Decodes pages of the full field list; its schema is the files' schema.
    pub decoder: Arc<PageDecoder>,
    /// One query per group of fields: one group unless the field list is too long for a URL.
    pub groups: Vec<FieldGroup>,
}

/// The fields one query of a chunk reads.
pub struct FieldGroup {
    pub fields: Vec<Identifier>,
    pub decoder: Arc<PageDecoder>,
    /// Where each of this group's columns goes in the full schema.
    pub positions: Vec<usize>,
}

impl ObjectJob {
    /// Prepares an object's decoders, splitting its fields into groups whose query fits in
    /// `max_uri_bytes` for a URL that begins with `uri_prefix_len` bytes.
    pub fn new(
        selection: Selection,
        uri_prefix_len: usize,
        max_uri_bytes: usize,
    ) -> Result<Self, DecodeError> {
        let decoder = Arc::new(PageDecoder::new(&selection.fields)?);
        let ids = selection.identifiers();
        let groups = select::field_groups(&selection, uri_prefix_len, max_uri_bytes)
            .into_iter()
            .map(|positions| {
                let fields: Vec<_> = positions
                    .iter()
                    .map(|&i| selection.fields[i].clone())
                    .collect();
                Ok(FieldGroup {
                    fields: positions.iter().map(|&i| ids[i].clone()).collect(),
                    decoder: Arc::new(PageDecoder::new(&fields)?),
                    positions,
                })
            })
            .collect::<Result<_, DecodeError>>()?;
        Ok(Self {
            selection,
            decoder,
            groups,
        })
    }
}

/// Why a run stopped before its chunks were all done; each resumes by running again.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    QueryLimit {
        limit: u64,
    },
    ApiUsage {
        message: String,
    },
    /// Outside every off-peak window with `--exit-outside-window`; `opens` is local time.
    OutsideWindow {
        opens: String,
    },
    Interrupted,
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

/// One chunk's failure.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The `--query-limit` budget is spent; the chunk is abandoned, not failed.
    #[error("the query limit is reached")]
    QueryLimit,
    /// The off-peak windows closed while a span ran: its days wait for the next window.
    #[error("the off-peak window closed")]
    WindowClosed,
    /// Rows changed between the queries of a wide object's field groups; read again.
    #[error(transparent)]
    Shifted(#[from] RowsShifted),
    /// A decode or write task died (a bug): reported, never hidden.
    #[error("a worker stopped unexpectedly: {0}")]
    Worker(String),
}

impl ChunkError {
    /// Errors after which no chunk should start: the whole run stops, resumable.
    fn stop_reason(&self, limit: Option<u64>) -> Option<StopReason> {
        match self {
            ChunkError::QueryLimit => Some(StopReason::QueryLimit {
                limit: limit.unwrap_or_default(),
            }),
            ChunkError::Fetch(e) if e.exit_kind() == ExitKind::Resumable => {
                Some(StopReason::ApiUsage {
                    message: e.to_string(),
                })
            }
            _ => None,
        }
    }

    /// Errors every other chunk would meet too (a full disk, a read-only folder, bad
    /// credentials): the run ends with this error instead of failing each chunk.
    fn ends_run(&self) -> bool {
        match self {
            ChunkError::Write(_) => true,
            ChunkError::Fetch(e) => e.exit_kind() == ExitKind::Usage,
            _ => false,
        }
    }
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
        source: ChunkError,
    },
}

impl UserFacing for ScheduleError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            ScheduleError::Checkpoint(e) => e.exit_kind(),
            ScheduleError::Chunk { source, .. } => match source {
                ChunkError::Fetch(e) => e.exit_kind(),
                _ => ExitKind::Failure,
            },
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ScheduleError::Checkpoint(e) => e.hint(),
            ScheduleError::Chunk { source, .. } => match source {
                ChunkError::Fetch(e) => e.hint(),
                ChunkError::Write(e) => e.hint(),
                _ => None,
            }
            .or_else(|| Some("done chunks are kept; run the same command again to resume".into())),
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
    /// Days split off a running span, to run on another worker.
    Spawn(Span),
}

/// The settings of one run.
pub struct RunConfig {
    pub client: SalesforceClient,
    pub out: PathBuf,
    pub include_deleted: bool,
    pub concurrency: usize,
    pub budget: Arc<QueryBudget>,
    pub query_limit: Option<u64>,
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
    clear_staging(&staging).map_err(|e| ScheduleError::Chunk {
        chunk: "staging".into(),
        source: ChunkError::Write(e),
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
    let mut pending: VecDeque<Span> = fetch_plan::spans(chunks).into();
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
            let Some(span) = pending.pop_front() else {
                break;
            };
            let job = jobs[&span.object].clone();
            running.spawn(fetch_span(ctx.clone(), job, span));
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
                if let (Err(ChunkError::WindowClosed), Some(first)) = (&result, days.first()) {
                    let object = first.object.clone();
                    pending.push_front(Span { object, days });
                    continue;
                }
                if let Err(e) = record_end(&ctx, manifest, &mut summary, days, result, config.query_limit) {
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
    pending: &mut VecDeque<Span>,
    event: Event,
) -> Result<(), ScheduleError> {
    match event {
        Event::Spawn(span) => pending.push_front(span),
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
    result: Result<(), ChunkError>,
    query_limit: Option<u64>,
) -> Result<(), ScheduleError> {
    let Err(e) = result else {
        return Ok(());
    };
    if let Some(reason) = e.stop_reason(query_limit) {
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

/// Staged files of an earlier, interrupted run are never published: drop them.
fn clear_staging(staging: &Path) -> Result<(), WriteError> {
    match std::fs::remove_dir_all(staging) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(WriteError::from_io(staging, e)),
    }
    std::fs::create_dir_all(staging).map_err(|e| WriteError::from_io(staging, e))
}

/// A chunk whose file is in place.
#[derive(Debug)]
struct ChunkDone {
    rows: u64,
    bytes: u64,
    file: Option<String>,
}

/// Reads a span's days; returns the days it did not finish and why, if it stopped early.
async fn fetch_span(
    ctx: Arc<Context>,
    job: Arc<ObjectJob>,
    span: Span,
) -> (Vec<Chunk>, Result<(), ChunkError>) {
    let mut reader = SpanReader {
        days: span.days.into(),
        may_refine: true,
        narrow: None,
        soql: String::new(),
    };
    let mut restarts = 0;
    let result = loop {
        match reader.read(&ctx, &job).await {
            Err(ChunkError::Fetch(e)) if e.is_expired_cursor() && restarts < MAX_CHUNK_RESTARTS => {
                restarts += 1;
                tracing::info!(
                    "{}: the query cursor expired; reading its open day again",
                    reader.label()
                );
            }
            Err(ChunkError::Shifted(e)) if restarts < MAX_CHUNK_RESTARTS => {
                restarts += 1;
                tracing::info!("{}: {e}; reading its open day again", reader.label());
            }
            Err(ChunkError::Fetch(e)) if e.is_query_timeout() => {
                if !reader.narrow_after_timeout(&ctx) {
                    break Err(ChunkError::Fetch(e));
                }
                tracing::info!(
                    "{}: the query timed out; narrowed the range",
                    reader.label()
                );
            }
            other => break other,
        }
    };
    (reader.days.into(), result)
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
}

impl SpanReader {
    fn label(&self) -> String {
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
            let _ = ctx.events.send(Event::Spawn(Span { object, days: rest }));
            return true;
        }
        let Some(day) = self.days.front() else {
            return false;
        };
        let width = self.narrow.unwrap_or(day.window.end - day.window.start) / 2;
        self.narrow = Some(width);
        width >= MIN_QUERY_RANGE
    }

    /// Reads from the open day's start to the last day's end, finishing each day in order.
    async fn read(&mut self, ctx: &Context, job: &ObjectJob) -> Result<(), ChunkError> {
        let mut open: Option<OpenDay> = None;
        let Some(first) = self.days.front() else {
            return Ok(());
        };
        let mut start = first.window.start;
        while let Some(last) = self.days.back() {
            let end = match self.narrow {
                Some(width) => (start + width).min(last.window.end),
                None => last.window.end,
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
    ) -> Result<bool, ChunkError> {
        let sel = &job.selection;
        let queries: Vec<String> = job
            .groups
            .iter()
            .map(|g| soql::select_range(&sel.object, &g.fields, &sel.cursor, start, end))
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
                let request = requests[g].take().expect("a hungry group has a next page");
                let first_page = matches!(request, QueryPage::First { .. });
                let page =
                    fetch_page(ctx, &job.groups[g].decoder, &request, &|| self.label()).await?;
                if g == 0 && first_page && std::mem::take(&mut self.may_refine) {
                    self.refine(ctx, job, page.total_size, page.batch.num_rows() as u64)
                        .await?;
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
    ) -> Result<(), ChunkError> {
        if !fetch_plan::should_refine(self.days.len(), total_rows, page_rows) {
            return Ok(());
        }
        let whole = Span {
            object: job.selection.object.to_string(),
            days: self.days.iter().cloned().collect(),
        };
        let days = &whole.days;
        let parts = if days.len() > fetch_plan::MAX_COUNTED_DAYS {
            fetch_plan::split_evenly(days.len(), ctx.concurrency * 2)
        } else {
            match count_by_day(ctx, job, days).await {
                Ok(counts) => {
                    let estimates = fetch_plan::estimate_days(days, &counts);
                    let target = fetch_plan::part_target(total_rows, page_rows, ctx.concurrency);
                    fetch_plan::split(&estimates, target)
                }
                Err(ChunkError::QueryLimit) => return Err(ChunkError::QueryLimit),
                Err(e) => {
                    tracing::warn!(
                        "{}: cannot count rows by day ({e}); reading it whole",
                        self.label()
                    );
                    return Ok(());
                }
            }
        };
        if parts.len() > 1 {
            self.days = whole.part(parts[0].clone()).days.into();
            for part in &parts[1..] {
                let _ = ctx.events.send(Event::Spawn(whole.part(part.clone())));
            }
        }
        Ok(())
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
    ) -> Result<bool, ChunkError> {
        let cursor = batch
            .column(CURSOR_COLUMN)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .ok_or_else(|| ChunkError::Worker("the cursor column is not a date-time".into()))?
            .values()
            .clone();
        let mut offset = 0;
        while offset < batch.num_rows() {
            let Some(day) = self.days.front() else {
                return Ok(false);
            };
            let end = day.window.end.timestamp_millis();
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
    ) -> Result<(), ChunkError> {
        while self.days.front().is_some_and(|d| d.window.end <= end) {
            self.finish_front_day(ctx, job, open).await?;
        }
        Ok(())
    }

    /// Publishes the open day's file (a day with no rows has none) and reports it done.
    async fn finish_front_day(
        &mut self,
        ctx: &Context,
        job: &ObjectJob,
        open: &mut Option<OpenDay>,
    ) -> Result<(), ChunkError> {
        let chunk = self.days.front().expect("a day is open").clone();
        let sink = OpenDay::take(open, ctx, job, &chunk, &self.soql).await?;
        let out = ctx.out.clone();
        let done = run_blocking(move || sink.publish(&out).map_err(ChunkError::from)).await?;
        self.days.pop_front();
        let _ = ctx.events.send(Event::DayDone { chunk, done });
        Ok(())
    }
}

/// The open day's file, writing its latest batch on the rayon pool while the next page is
/// fetched. At most one write per span is in flight, so memory stays about a page per span.
struct OpenDay(BoxFuture<'static, Result<ChunkSink, ChunkError>>);

impl OpenDay {
    /// The open day's sink once its write has finished, or a new one for `chunk`.
    async fn take(
        open: &mut Option<OpenDay>,
        ctx: &Context,
        job: &ObjectJob,
        chunk: &Chunk,
        soql: &str,
    ) -> Result<ChunkSink, ChunkError> {
        match open.take() {
            Some(OpenDay(write)) => write.await,
            None => Ok(ChunkSink::new(ctx, job, chunk, soql)),
        }
    }
}

/// The cursor is the second column of every selection (`select` puts `Id` then the cursor).
const CURSOR_COLUMN: usize = 1;

/// Rows per UTC day over the days' range, from one aggregate query.
async fn count_by_day(
    ctx: &Context,
    job: &ObjectJob,
    days: &[Chunk],
) -> Result<BTreeMap<NaiveDate, u64>, ChunkError> {
    if !ctx.budget.try_take() {
        return Err(ChunkError::QueryLimit);
    }
    let sel = &job.selection;
    let soql = soql::count_by_day(
        &sel.object,
        &sel.cursor,
        days[0].window.start,
        days[days.len() - 1].window.end,
    );
    let answer = ctx.client.query_json(&soql).await?;
    Ok(fetch_plan::day_counts(&answer))
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

/// Fetches and decodes one page, spending one query from the budget per request sent.
/// A body cut off mid-JSON is fetched again (the same locator serves the same page).
async fn fetch_page(
    ctx: &Context,
    decoder: &Arc<PageDecoder>,
    request: &QueryPage,
    label: &(dyn Fn() -> String + Sync),
) -> Result<Page, ChunkError> {
    let mut refetches = 0;
    loop {
        if ctx.offpeak.as_ref().is_some_and(|w| !w.is_open(Utc::now())) {
            return Err(ChunkError::WindowClosed);
        }
        if !ctx.budget.try_take() {
            return Err(ChunkError::QueryLimit);
        }
        let body = ctx.client.query_page(request).await?;
        let decoder = decoder.clone();
        match run_blocking(move || decoder.decode(&body).map_err(ChunkError::from)).await {
            Err(ChunkError::Decode(e)) if e.is_transient() && refetches < MAX_PAGE_REFETCHES => {
                refetches += 1;
                tracing::info!(
                    "{}: a page arrived cut off ({e}); fetching it again",
                    label()
                );
            }
            other => return other,
        }
    }
}

/// Runs CPU-heavy work on the rayon pool and awaits it without blocking the runtime.
async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ChunkError> + Send + 'static,
) -> Result<T, ChunkError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .unwrap_or_else(|panic| Err(ChunkError::Worker(panic_message(&panic))));
        let _ = tx.send(result);
    });
    rx.await
        .unwrap_or_else(|_| Err(ChunkError::Worker("the worker pool shut down".into())))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

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
