//! Runs a backfill's chunks: the coordinator of the worker pool, cancellation, and the only
//! writer of the journal during a run.
//!
//! Owns: which work runs when, at most `concurrency` tasks at once, and what becomes of each
//! day a task reports (recorded done or failed, put back for the next off-peak window, left
//! pending for a stop). The tasks themselves are [`span`] (reading and cutting), [`split`] (a
//! heavy day's sub-ranges) and [`sink`] (a day's file). Does not own HTTP (`salesforce`),
//! bytes-to-Arrow (`decode`), files (`write`) or the journal's format (`checkpoint`).
//!
//! Invariants:
//! * A chunk is recorded done only after its file is fsync'd and renamed into place.
//! * An abandoned chunk (signal, budget, usage guard) is not recorded: it stays pending and
//!   its staged file, if any, is never published.
//! * Memory per running task is a page of JSON, a page of Arrow and the open day's Parquet
//!   row group, whatever the day's size.
//! * A day cut into sub-ranges is published once, when every sub-range's staged file is in:
//!   they are concatenated in sub-range order into the day's one file, then recorded. A
//!   sub-range that fails fails the day once; its siblings stop and their files are dropped.

mod bulk;
mod resume;
mod sink;
mod span;
mod split;

pub use bulk::BulkSettings;

use chrono::Utc;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::checkpoint::bulk_jobs::{self, BulkEntry, BulkJournal};
use crate::checkpoint::{CheckpointError, Entry, Manifest};
use crate::error::{ExitKind, UserFacing};
use crate::plan::Chunk;
use crate::plan::offpeak::OffPeak;
use crate::plan::spans::{self, Span};
use crate::read::{ObjectJob, PageSource, QueryBudget, ReadError, StopReason};
use crate::salesforce::SalesforceClient;
use crate::write;
use sink::ChunkDone;
use split::SubRange;

/// The file name of a chunk's Parquet file inside its `date=` folder.
pub const CHUNK_FILE: &str = "part-00000.parquet";

/// Callbacks the scheduler makes as a run advances; `progress` draws them.
pub trait Reporter: Send + Sync {
    /// The chunks to fetch, per object.
    fn on_run_start(&self, _objects: &[(String, u64)]) {}
    /// Rows of `object` decoded and written.
    fn on_rows(&self, _object: &str, _rows: u64) {}
    /// Rows reported by `on_rows` that will not be written as read: a Bulk download given up
    /// (its days are read again by a new job or through REST).
    fn on_rows_dropped(&self, _object: &str, _rows: u64) {}
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
    /// Days of the windows that were not over when the run started: left pending, not read.
    pub not_over: crate::plan::history::NotOver,
    /// Objects whose chunks failed without being read: a field type that cannot widen.
    pub refused: Vec<String>,
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
    /// Never a usage exit: the run has started reading, so files may have been written (exit
    /// 2 promises that nothing was fetched); the hint still says what to fix.
    fn exit_kind(&self) -> ExitKind {
        let kind = match self {
            ScheduleError::Checkpoint(e) => e.exit_kind(),
            ScheduleError::Chunk { source, .. } => source.exit_kind(),
        };
        kind.once_reading()
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
    bulk: BulkSettings,
    /// Objects whose spans `--api auto` hands to Bulk when their first page shows it pays.
    auto_bulk: std::collections::HashSet<String>,
    /// Objects a Bulk job could not serve this run: their spans stay with REST.
    rest_only: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Bulk jobs created or read on and not yet ended: a signal aborts them.
    open_jobs: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Where Bulk jobs' committed parts are written (`checkpoint::bulk_jobs`).
    parts_dir: PathBuf,
    /// This run's id, as the journals name it.
    run: String,
}

/// What a span task tells the coordinator while it runs.
enum Event {
    /// A day's file is in place (or the day had no rows): record it done.
    DayDone { chunk: Chunk, done: ChunkDone },
    /// Days (or a sub-range of a day) split off a running span, to run on another worker.
    Spawn(Work),
    /// A Bulk job created, committed to or ended: for the Bulk journal.
    Bulk(BulkEntry),
}

/// What one span task is given to read.
enum Work {
    /// Consecutive days of one object, read by one range query.
    Span(Span),
    /// One sub-range of a heavy day, read beside the day's other sub-ranges.
    Part { day: Chunk, sub: SubRange },
    /// Consecutive days of one object, read by one Bulk API 2.0 query job: a new one, or one
    /// an earlier run left open, read on from its last commit.
    Bulk(Span, Option<Box<resume::Resume>>),
}

impl Work {
    fn object(&self) -> &str {
        match self {
            Work::Span(span) | Work::Bulk(span, _) => &span.object,
            Work::Part { day, .. } => &day.object,
        }
    }
}

/// How a span task ended; the days it finished were reported as they were.
enum TaskEnd {
    /// Every day of its work is done.
    Finished,
    /// The off-peak windows closed: these days wait for the next one.
    PutBack(Span),
    /// No request may go out (query limit, API usage guard): the run stops, resumable; the
    /// task's unfinished days stay pending.
    Stop(StopReason),
    /// These days failed with `error`, or the run ends with it if every day would meet it.
    Failed { days: Vec<Chunk>, error: ReadError },
    /// Nothing to record: a sub-range whose day another sub-range reports.
    Abandoned,
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
    /// The objects whose spans Bulk API 2.0 jobs read; the others are read through REST.
    pub bulk_objects: std::collections::HashSet<String>,
    /// The objects whose REST spans go to Bulk when their first page shows it pays (`auto`).
    pub auto_bulk: std::collections::HashSet<String>,
    pub bulk: BulkSettings,
}

/// Where chunk files are written before they are published.
pub fn staging_dir(out: &Path) -> PathBuf {
    crate::checkpoint::manifest_dir(out).join("staging")
}

/// Runs `chunks`, at most `concurrency` spans at a time, recording each day in `manifest`.
///
/// Consecutive days of an object are read as one span (see `plan::spans`); a span whose first
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
    mut chunks: Vec<Chunk>,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, ScheduleError> {
    let staging = staging_dir(&config.out);
    write::clear_staging(&staging).map_err(|e| ScheduleError::Chunk {
        chunk: "staging".into(),
        source: ReadError::Write(e),
    })?;
    let mut bulk_journal = BulkJournal::open(manifest, &config.out)?;
    let parts_dir = bulk_jobs::parts_dir(&config.out);
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
        bulk: config.bulk,
        auto_bulk: config.auto_bulk.clone(),
        rest_only: Default::default(),
        open_jobs: Default::default(),
        parts_dir,
        run: manifest.run_id().to_string(),
    });
    let mut per_object: Vec<(String, u64)> = Vec::new();
    for c in &chunks {
        match per_object.iter_mut().find(|(o, _)| *o == c.object) {
            Some((_, n)) => *n += 1,
            None => per_object.push((c.object.clone(), 1)),
        }
    }
    ctx.reporter.on_run_start(&per_object);
    crate::metrics::global().chunks_planned(&per_object);

    let mut summary = RunSummary::default();
    let parts_failed = |e: write::WriteError| ScheduleError::Chunk {
        chunk: "Bulk parts".into(),
        source: ReadError::Write(e),
    };
    let parts_io = |e| parts_failed(write::WriteError::from_io(&ctx.parts_dir, e));
    // On a bucket `--out` the parts are claimed as the bucket lists them, and only the parts
    // of the jobs read on are downloaded (a run on another machine committed them).
    let held = resume::held(&ctx.parts_dir).map_err(parts_io)?;
    let claimed = resume::claim(
        bulk_journal.state(),
        &ctx.parts_dir,
        &held,
        &mut chunks,
        jobs,
        |o| config.bulk_objects.contains(o) || config.auto_bulk.contains(o),
        config.include_deleted,
    );
    crate::store::restore(claimed.parts().map(|p| (p.path.as_path(), p.bytes)))
        .map_err(|e| parts_failed(e.into()))?;
    resume::sweep(&ctx.parts_dir, &held, &claimed.kept()).map_err(parts_io)?;
    for id in &claimed.stale {
        bulk::delete_quietly(&ctx, id).await;
    }
    let mut pending: VecDeque<Work> = claimed
        .work
        .into_iter()
        .map(|(span, resume)| Work::Bulk(span, Some(Box::new(resume))))
        .chain(spans::spans(chunks).into_iter().map(|span| {
            if config.bulk_objects.contains(&span.object) {
                Work::Bulk(span, None)
            } else {
                Work::Span(span)
            }
        }))
        .collect();
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
            let job = jobs[work.object()].clone();
            match work {
                Work::Bulk(span, resume) => {
                    running.spawn(bulk::read_span(ctx.clone(), job, span, resume))
                }
                work => running.spawn(span::read_work(ctx.clone(), job, work)),
            };
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
        let _waiting = wait.map(|_| crate::metrics::global().waiting_for_window());
        tokio::select! {
            biased;
            Some(event) = inbox.recv() => {
                if let Err(e) = on_events(&ctx, manifest, &mut bulk_journal, &mut summary, &mut pending, Some(event), &mut inbox) {
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
                let end = match joined {
                    Ok(end) => end,
                    Err(e) if e.is_cancelled() => continue,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
                // The task's last days were sent before it ended: record them first.
                on_events(&ctx, manifest, &mut bulk_journal, &mut summary, &mut pending, None, &mut inbox)?;
                if let Err(e) = record_end(&ctx, manifest, &mut summary, &mut pending, end) {
                    running.abort_all();
                    return Err(e);
                }
            }
        }
    }
    // Days published by tasks that a signal then abandoned are in place: record them too.
    on_events(
        &ctx,
        manifest,
        &mut bulk_journal,
        &mut summary,
        &mut pending,
        None,
        &mut inbox,
    )?;
    if summary.stopped == Some(StopReason::Interrupted) {
        bulk::abort_open_jobs(&ctx).await;
        on_events(
            &ctx,
            manifest,
            &mut bulk_journal,
            &mut summary,
            &mut pending,
            None,
            &mut inbox,
        )?;
    }
    sweep_ended_parts(&ctx, &bulk_journal);
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

/// Removes the parts of jobs ended this run; a failure leaves them to the next run's sweep.
fn sweep_ended_parts(ctx: &Context, journal: &BulkJournal) {
    let keep = journal
        .state()
        .open
        .values()
        .flat_map(|job| job.parts.iter().map(|p| ctx.parts_dir.join(&p.file)))
        .collect();
    let swept =
        resume::held(&ctx.parts_dir).and_then(|held| resume::sweep(&ctx.parts_dir, &held, &keep));
    if let Err(e) = swept {
        tracing::info!("Bulk parts of ended jobs not removed ({e}); the next run removes them");
    }
}

/// Records `first` and every event already waiting, in order. Consecutive days done are
/// journaled together, up to the next event of another kind: one write and one sync (on a
/// bucket, one object), however many days a round of tasks finished.
fn on_events(
    ctx: &Context,
    manifest: &mut Manifest,
    bulk_journal: &mut BulkJournal,
    summary: &mut RunSummary,
    pending: &mut VecDeque<Work>,
    first: Option<Event>,
    inbox: &mut mpsc::UnboundedReceiver<Event>,
) -> Result<(), ScheduleError> {
    let mut days = Vec::new();
    let waiting = std::iter::from_fn(|| inbox.try_recv().ok());
    for event in first.into_iter().chain(waiting) {
        match event {
            Event::DayDone { chunk, done } => days.push((chunk, done)),
            Event::Spawn(work) => pending.push_front(work),
            Event::Bulk(entry) => {
                record_days(ctx, manifest, summary, std::mem::take(&mut days))?;
                bulk_journal.append(entry)?;
            }
        }
    }
    record_days(ctx, manifest, summary, days)
}

fn record_days(
    ctx: &Context,
    manifest: &mut Manifest,
    summary: &mut RunSummary,
    days: Vec<(Chunk, ChunkDone)>,
) -> Result<(), ScheduleError> {
    if days.is_empty() {
        return Ok(());
    }
    let run = manifest.run_id().to_string();
    let entries = days
        .iter()
        .map(|(chunk, done)| Entry::ChunkDone {
            object: chunk.object.clone(),
            day: chunk.day,
            start: chunk.window.start,
            end: chunk.window.end,
            rows: done.rows,
            bytes: done.bytes,
            file: done.file.clone(),
            run: run.clone(),
            at: Utc::now(),
        })
        .collect();
    manifest.append_all(entries)?;
    for (chunk, done) in days {
        summary.chunks_done += 1;
        summary.rows += done.rows;
        summary.bytes += done.bytes;
        ctx.reporter.on_chunk_done(&chunk, done.rows);
        crate::metrics::global().chunk_done(&chunk.object, done.rows, done.bytes);
    }
    Ok(())
}

/// Records how a span task ended.
fn record_end(
    ctx: &Context,
    manifest: &mut Manifest,
    summary: &mut RunSummary,
    pending: &mut VecDeque<Work>,
    end: TaskEnd,
) -> Result<(), ScheduleError> {
    let (days, e) = match end {
        TaskEnd::Finished | TaskEnd::Abandoned => return Ok(()),
        TaskEnd::PutBack(span) => {
            pending.push_front(Work::Span(span));
            return Ok(());
        }
        TaskEnd::Stop(reason) => {
            summary.stopped.get_or_insert(reason);
            return Ok(());
        }
        TaskEnd::Failed { days, error } => (days, error),
    };
    let first = days.first().expect("a failed task names its days");
    if e.ends_run() {
        return Err(ScheduleError::Chunk {
            chunk: first.to_string(),
            source: e,
        });
    }
    let error = e.to_string();
    tracing::warn!("chunk {first} and {} more failed: {error}", days.len() - 1);
    for chunk in days {
        manifest.append_failed(&chunk, &error)?;
        summary.chunks_failed += 1;
        ctx.reporter.on_chunk_failed(&chunk, &error);
        crate::metrics::global().chunk_failed(&chunk.object);
    }
    Ok(())
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
