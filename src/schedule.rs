//! Runs a backfill's chunks: the worker pool, the per-run query budget and cancellation.
//!
//! Owns: which chunk runs when, at most `concurrency` at once; the `--query-limit` budget;
//! the order in which a chunk's work happens (fetch a page, decode and write it off the async
//! runtime, publish the file, then record it); and stopping (signal, budget, usage guard).
//! Does not own HTTP (`fetch`), bytes-to-Arrow (`decode`), files (`write`) or the journal's
//! format (`checkpoint`): it is the only code that appends to the journal during a run.
//!
//! Invariants:
//! * A chunk is recorded done only after its file is fsync'd and renamed into place.
//! * An abandoned chunk (signal, budget, usage guard) is not recorded: it stays pending and
//!   its staged file, if any, is never published.
//! * Memory per running chunk is one page of JSON and one page of Arrow, whatever the day's size.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::Utc;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::task::JoinSet;

use crate::checkpoint::{CheckpointError, Entry, Manifest};
use crate::decode::{DecodeError, Page, PageDecoder};
use crate::error::{ExitKind, UserFacing};
use crate::fetch::{FetchError, QueryPage, SalesforceClient};
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

/// Shared by the chunk tasks of a run.
struct Context {
    client: SalesforceClient,
    out: PathBuf,
    staging: PathBuf,
    include_deleted: bool,
    budget: Arc<QueryBudget>,
    reporter: Arc<dyn Reporter>,
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

/// Runs `chunks`, at most `concurrency` at a time, recording each outcome in `manifest`.
///
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
    let ctx = Arc::new(Context {
        client: config.client,
        out: config.out,
        staging,
        include_deleted: config.include_deleted,
        budget: config.budget,
        reporter: config.reporter,
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
    let mut pending = chunks.into_iter().peekable();
    let mut running = JoinSet::new();
    let mut waiting_reported = false;
    tokio::pin!(shutdown);
    loop {
        let closed_until = closed_until(config.offpeak.as_ref(), pending.peek().is_some());
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
            let Some(chunk) = pending.next() else { break };
            let job = jobs[&chunk.object].clone();
            running.spawn(fetch_chunk(ctx.clone(), job, chunk));
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
            _ = &mut shutdown, if summary.stopped.is_none() => {
                summary.stopped = Some(StopReason::Interrupted);
                running.abort_all();
            }
            _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
            joined = running.join_next(), if !running.is_empty() => {
                let Some(joined) = joined else { break };
                let (chunk, result) = match joined {
                    Ok(outcome) => outcome,
                    Err(e) if e.is_cancelled() => continue,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
                if let Err(e) = record(&ctx, manifest, &mut summary, chunk, result, config.query_limit) {
                    running.abort_all();
                    return Err(e);
                }
            }
        }
    }
    summary.query_requests = ctx.budget.used();
    ctx.reporter.on_run_end();
    Ok(summary)
}

/// When chunks remain and the off-peak windows are closed now, the instant the next opens.
fn closed_until(offpeak: Option<&OffPeak>, chunks_remain: bool) -> Option<chrono::DateTime<Utc>> {
    let offpeak = offpeak.filter(|_| chunks_remain)?;
    let now = Utc::now();
    (!offpeak.is_open(now)).then(|| offpeak.next_open(now))
}

fn record(
    ctx: &Context,
    manifest: &mut Manifest,
    summary: &mut RunSummary,
    chunk: Chunk,
    result: Result<ChunkDone, ChunkError>,
    query_limit: Option<u64>,
) -> Result<(), ScheduleError> {
    let run = manifest.run_id().to_string();
    match result {
        Ok(done) => {
            manifest.append(Entry::ChunkDone {
                object: chunk.object.clone(),
                day: chunk.day,
                start: chunk.window.start,
                end: chunk.window.end,
                rows: done.rows,
                bytes: done.bytes,
                file: done.file,
                run,
                at: Utc::now(),
            })?;
            summary.chunks_done += 1;
            summary.rows += done.rows;
            summary.bytes += done.bytes;
            ctx.reporter.on_chunk_done(&chunk, done.rows);
        }
        Err(e) => {
            if let Some(reason) = e.stop_reason(query_limit) {
                summary.stopped.get_or_insert(reason);
                return Ok(());
            }
            if e.ends_run() {
                return Err(ScheduleError::Chunk {
                    chunk: chunk.to_string(),
                    source: e,
                });
            }
            let error = e.to_string();
            tracing::warn!("chunk {chunk} failed: {error}");
            manifest.append(Entry::ChunkFailed {
                object: chunk.object.clone(),
                day: chunk.day,
                start: chunk.window.start,
                end: chunk.window.end,
                error: error.clone(),
                run,
                at: Utc::now(),
            })?;
            summary.chunks_failed += 1;
            ctx.reporter.on_chunk_failed(&chunk, &error);
        }
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

async fn fetch_chunk(
    ctx: Arc<Context>,
    job: Arc<ObjectJob>,
    chunk: Chunk,
) -> (Chunk, Result<ChunkDone, ChunkError>) {
    let mut restarts = 0;
    let result = loop {
        match fetch_chunk_once(&ctx, &job, &chunk).await {
            Err(ChunkError::Fetch(e)) if e.is_expired_cursor() && restarts < MAX_CHUNK_RESTARTS => {
                restarts += 1;
                tracing::info!("chunk {chunk}: the query cursor expired; restarting the chunk");
            }
            Err(ChunkError::Shifted(e)) if restarts < MAX_CHUNK_RESTARTS => {
                restarts += 1;
                tracing::info!("chunk {chunk}: {e}; reading it again");
            }
            other => break other,
        }
    };
    (chunk, result)
}

/// The Parquet file of one chunk while its pages arrive.
struct ChunkSink {
    writer: Option<ChunkFileWriter>,
    staging: PathBuf,
    schema: SchemaRef,
    meta: FileMeta,
}

impl ChunkSink {
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

async fn fetch_chunk_once(
    ctx: &Context,
    job: &ObjectJob,
    chunk: &Chunk,
) -> Result<ChunkDone, ChunkError> {
    let sel = &job.selection;
    let queries: Vec<String> = job
        .groups
        .iter()
        .map(|g| {
            soql::select_range(
                &sel.object,
                &g.fields,
                &sel.cursor,
                chunk.window.start,
                chunk.window.end,
            )
        })
        .collect();
    let mut sink = ChunkSink {
        writer: None,
        staging: ctx.staging.clone(),
        schema: job.decoder.schema(),
        meta: FileMeta {
            object: chunk.object.clone(),
            day: chunk.day,
            window_start: chunk.window.start,
            window_end: chunk.window.end,
            cursor_field: sel.cursor.to_string(),
            soql: queries.join("\n"),
            extracted_at: Utc::now(),
        },
    };
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
            let page = fetch_page(ctx, &job.groups[g].decoder, &request, chunk).await?;
            requests[g] = match page.next_records_url {
                Some(url) if !page.done => Some(QueryPage::Next { url }),
                _ => None,
            };
            join.push(g, page.batch, requests[g].is_none());
        }
        match join.take()? {
            Some(batch) => {
                let rows = batch.num_rows() as u64;
                sink = run_blocking(move || {
                    sink.write(&batch)?;
                    Ok(sink)
                })
                .await?;
                ctx.reporter.on_rows(&chunk.object, rows);
            }
            None if join.is_finished() => break,
            None => {}
        }
    }
    let out = ctx.out.clone();
    run_blocking(move || sink.publish(&out).map_err(ChunkError::from)).await
}

/// Fetches and decodes one page, spending one query from the budget per request sent.
/// A body cut off mid-JSON is fetched again (the same locator serves the same page).
async fn fetch_page(
    ctx: &Context,
    decoder: &Arc<PageDecoder>,
    request: &QueryPage,
    chunk: &Chunk,
) -> Result<Page, ChunkError> {
    let mut refetches = 0;
    loop {
        if !ctx.budget.try_take() {
            return Err(ChunkError::QueryLimit);
        }
        let body = ctx.client.query_page(request).await?;
        let decoder = decoder.clone();
        match run_blocking(move || decoder.decode(&body).map_err(ChunkError::from)).await {
            Err(ChunkError::Decode(e)) if e.is_transient() && refetches < MAX_PAGE_REFETCHES => {
                refetches += 1;
                tracing::info!("chunk {chunk}: a page arrived cut off ({e}); fetching it again");
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
