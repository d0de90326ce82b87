//! What backfill and sync share to read a range of an object: its fields and decoders, the
//! per-run query budget, one page fetched and decoded off the async runtime, the two runners
//! of blocking work (CPU on rayon, file I/O on tokio's blocking pool), the joins of a wide
//! object's field groups, and the errors of reading.
//!
//! Owns: spending the `--query-limit` budget (one query per request sent), refetching a page
//! whose body arrived cut off, stopping before a request outside the off-peak windows, where
//! a read that lost its query continues (the last row's `(cursor, Id)`), and an object's
//! columns across runs as its fields drift in the org ([`drift`]).
//! Does not own HTTP (`salesforce`), bytes-to-Arrow (`decode`), files (`write`) or which range
//! is read when (`backfill`, `sync`).
//!
//! Invariants:
//! * Every query request sent is taken from the budget first; none is sent once it is spent.
//! * Decoding and encoding run on the rayon pool ([`run_blocking`]), never on the async
//!   runtime; file I/O that waits on the disk (fsync, rename, folder fsync, concatenating
//!   staged files) runs on tokio's blocking pool ([`run_io`]), never on the rayon pool, so a
//!   slow disk delays the files waiting on it and not the decoding of other pages.

pub mod drift;
pub mod join;

use arrow::array::{
    Array, RecordBatch, RecordBatchOptions, StringArray, TimestampMillisecondArray, new_null_array,
};
use arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::checkpoint::cursors::Position;
use crate::decode::{DecodeError, Page, PageDecoder};
use crate::error::{ExitKind, UserFacing};
use crate::plan::offpeak::OffPeak;
use crate::salesforce::select::{self, Selection};
use crate::salesforce::soql::Identifier;
use crate::salesforce::{FetchError, QueryPage, SalesforceClient};
use crate::write::WriteError;
use join::RowsShifted;

/// A page whose body arrives cut off is fetched again at most this many times.
const MAX_PAGE_REFETCHES: u32 = 4;

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

    pub fn limit(&self) -> Option<u64> {
        self.limit
    }
}

/// What is copied of one object, shared by its chunks.
pub struct ObjectJob {
    pub selection: Selection,
    /// Decodes pages of the full field list queried.
    pub decoder: Arc<PageDecoder>,
    /// One query per group of fields: one group unless the field list is too long for a URL.
    pub groups: Vec<FieldGroup>,
    /// The files' schema: the decoder's columns, then a null column for each recorded field
    /// the org no longer shows ([`drift`]).
    file_schema: SchemaRef,
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
        let file_schema = decoder.schema();
        Ok(Self {
            selection,
            decoder,
            groups,
            file_schema,
        })
    }

    /// The job whose files also carry `absent` columns, `(name, type)`, as nulls after the
    /// queried ones: recorded fields the org no longer shows.
    pub fn with_null_columns(mut self, absent: &[(String, DataType)]) -> Self {
        let mut columns: Vec<ArrowField> = self
            .decoder
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        columns.extend(
            absent
                .iter()
                .map(|(name, t)| ArrowField::new(name.clone(), t.clone(), true)),
        );
        self.file_schema = Arc::new(Schema::new(columns));
        self
    }

    /// The schema of the object's files.
    pub fn file_schema(&self) -> SchemaRef {
        self.file_schema.clone()
    }

    /// The columns written as nulls, by name.
    pub fn null_columns(&self) -> Vec<String> {
        let queried = self.decoder.schema().fields().len();
        self.file_schema.fields()[queried..]
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// `batch` (of the decoder's schema) with the files' schema: the null columns appended.
    pub fn file_batch(&self, batch: &RecordBatch) -> RecordBatch {
        let queried = batch.num_columns();
        if queried == self.file_schema.fields().len() {
            return batch.clone();
        }
        let mut columns = batch.columns().to_vec();
        columns.extend(
            self.file_schema.fields()[queried..]
                .iter()
                .map(|f| new_null_array(f.data_type(), batch.num_rows())),
        );
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(self.file_schema.clone(), columns, &options)
            .expect("the queried columns, then nulls of the recorded types")
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

impl StopReason {
    /// The org's daily allowance or the usage guard: no request may start, the run resumes later.
    pub fn of_fetch(e: &FetchError) -> Option<StopReason> {
        (e.exit_kind() == ExitKind::Resumable).then(|| StopReason::ApiUsage {
            message: e.to_string(),
        })
    }
}

/// Why no further request may go out for now: not a failure of the range being read, which
/// stays pending and resumes where the run resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// The `--query-limit` budget is spent: the run stops, resumable.
    QueryLimit,
    /// The off-peak windows closed: the range waits for the next window.
    WindowClosed,
}

/// Why reading a range of an object did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Write(#[from] WriteError),
    /// No request may go out now; nothing failed.
    #[error("{}", match .0 {
        Halt::QueryLimit => "the query limit is reached",
        Halt::WindowClosed => "the off-peak window closed",
    })]
    Halted(Halt),
    /// Rows changed between the queries of a wide object's field groups; read again.
    #[error(transparent)]
    Shifted(#[from] RowsShifted),
    /// A decode or write task died (a bug): reported, never hidden.
    #[error("a worker stopped unexpectedly: {0}")]
    Worker(String),
}

impl ReadError {
    /// Errors after which no chunk should start: the whole run stops, resumable.
    pub(crate) fn stop_reason(&self, budget: &QueryBudget) -> Option<StopReason> {
        match self {
            ReadError::Halted(Halt::QueryLimit) => Some(StopReason::QueryLimit {
                limit: budget.limit().unwrap_or_default(),
            }),
            ReadError::Fetch(e) => StopReason::of_fetch(e),
            _ => None,
        }
    }

    /// Errors every other chunk would meet too (a full disk, a read-only folder, bad
    /// credentials): the run ends with this error instead of failing each chunk. An error of
    /// one object's queries (a field deleted or hidden since the describe, an object gone)
    /// fails the chunks it touches and the run goes on with the other objects.
    pub(crate) fn ends_run(&self) -> bool {
        match self {
            ReadError::Write(_) => true,
            ReadError::Fetch(e) => e.is_run_wide(),
            _ => false,
        }
    }
}

impl UserFacing for ReadError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            ReadError::Fetch(e) => e.exit_kind(),
            ReadError::Halted(Halt::QueryLimit) => ExitKind::Resumable,
            _ => ExitKind::Failure,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ReadError::Fetch(e) => e.hint(),
            ReadError::Write(e) => e.hint(),
            _ => None,
        }
    }
}

/// Fetches and decodes one page, spending one query from the budget per request sent.
/// A body cut off mid-JSON is fetched again (the same locator serves the same page).
pub(crate) async fn fetch_page(
    source: PageSource<'_>,
    decoder: &Arc<PageDecoder>,
    request: &QueryPage,
    label: &(dyn Fn() -> String + Sync),
) -> Result<Page, ReadError> {
    let decoder = decoder.clone();
    fetch_decoded(
        source,
        label,
        || source.client.query_page(request),
        move |body| Ok(decoder.decode(&body)?),
    )
    .await
}

/// Sends a page request and decodes its answer off the runtime, spending one query from the
/// budget per request sent. An answer cut off is fetched again, at most
/// [`MAX_PAGE_REFETCHES`] times: a cursor or a Bulk locator serves the same page again.
pub(crate) async fn fetch_decoded<A, T, Fut>(
    source: PageSource<'_>,
    label: &(dyn Fn() -> String + Sync),
    mut fetch: impl FnMut() -> Fut,
    decode: impl Fn(A) -> Result<T, ReadError> + Clone + Send + 'static,
) -> Result<T, ReadError>
where
    Fut: Future<Output = Result<A, FetchError>>,
    A: Send + 'static,
    T: Send + 'static,
{
    let mut refetches = 0;
    loop {
        source.take_request()?;
        let answer = fetch().await?;
        let decode = decode.clone();
        match run_blocking(move || decode(answer)).await {
            Err(ReadError::Decode(e)) if e.is_transient() && refetches < MAX_PAGE_REFETCHES => {
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

/// Where pages come from and what may stop the next request.
#[derive(Clone, Copy)]
pub(crate) struct PageSource<'a> {
    pub client: &'a SalesforceClient,
    pub budget: &'a QueryBudget,
    /// Outside these windows no request starts.
    pub offpeak: Option<&'a OffPeak>,
}

impl PageSource<'_> {
    /// Takes one request from the budget, unless the off-peak windows are closed or the
    /// budget is spent.
    pub(crate) fn take_request(&self) -> Result<(), ReadError> {
        if self.offpeak.is_some_and(|w| !w.is_open(Utc::now())) {
            return Err(ReadError::Halted(Halt::WindowClosed));
        }
        if !self.budget.try_take() {
            return Err(ReadError::Halted(Halt::QueryLimit));
        }
        Ok(())
    }

    /// Sends a one-page query (a count, an edge id) under the same rules as a page: the
    /// off-peak windows and the budget; through `queryAll` when `include_deleted`, so it
    /// counts the rows the range's own query reads.
    pub async fn query_json(
        &self,
        soql: &str,
        include_deleted: bool,
    ) -> Result<serde_json::Value, ReadError> {
        self.take_request()?;
        Ok(self.client.query_json_in(soql, include_deleted).await?)
    }
}

/// `select` puts `Id` first and the cursor second in every selection and field group.
const ID_COLUMN: usize = 0;
const CURSOR_COLUMN: usize = 1;

/// The cursor column of a batch of decoded rows.
pub(crate) fn cursor_column(batch: &RecordBatch) -> Result<&TimestampMillisecondArray, ReadError> {
    batch
        .column(CURSOR_COLUMN)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .ok_or_else(|| ReadError::Worker("the cursor column is not a date-time".into()))
}

/// The `(cursor, Id)` of a batch's last row: where a read that lost its query continues.
pub(crate) fn last_position(batch: &RecordBatch) -> Result<Option<Position>, ReadError> {
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

/// Runs CPU-heavy work (decoding a page, encoding rows into a Parquet writer) on the rayon
/// pool and awaits it without blocking the runtime. Work that waits on the disk goes to
/// [`run_io`] instead: a rayon thread blocked in an fsync is one fewer decoding.
///
/// The work starts when this is called, not when the future is first polled, so a caller
/// can hold the future while it does something else (the span reader fetches the next page
/// while the last one is encoded). Dropping the future drops only the result.
pub(crate) fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> impl Future<Output = Result<T, ReadError>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .unwrap_or_else(|panic| Err(ReadError::Worker(panic_message(&panic))));
        let _ = tx.send(result);
    });
    async move {
        rx.await
            .unwrap_or_else(|_| Err(ReadError::Worker("the worker pool shut down".into())))
    }
}

/// Runs blocking file I/O (closing and fsyncing a file, renaming it into place, fsyncing
/// folders, concatenating staged files, appending to a journal) on tokio's blocking pool and
/// awaits it. Its threads are apart from the rayon pool, so a slow disk stalls no decoding;
/// a panic comes back as [`ReadError::Worker`], as from [`run_blocking`].
///
/// # Cancel safety
/// Dropping the future does not stop work that has started: it runs to its end on its thread
/// (a rename happens whole or not at all) and its result is dropped; the runtime's shutdown
/// waits for it. Work not started yet may be dropped, which leaves at most a staged file.
pub(crate) async fn run_io<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(ReadError::Worker(if e.is_panic() {
            panic_message(&*e.into_panic())
        } else {
            "the I/O pool shut down".into()
        }))
    })
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_disk_does_not_stall_decoding() {
        // One more fsync stuck than the decode pool has threads; decoding goes on.
        let threads = rayon::current_num_threads();
        let (started, mut running) = tokio::sync::mpsc::unbounded_channel();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(std::sync::Mutex::new(wait));
        let io: Vec<_> = (0..=threads)
            .map(|_| {
                let (started, wait) = (started.clone(), wait.clone());
                tokio::spawn(run_io(move || {
                    let _ = started.send(());
                    let _ = wait.lock().unwrap().recv();
                    Ok(())
                }))
            })
            .collect();
        for _ in 0..threads {
            running.recv().await.expect("an I/O task started");
        }
        let decoded = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            run_blocking(|| Ok(6 * 7)),
        )
        .await;
        for _ in 0..=threads {
            release.send(()).unwrap();
        }
        for task in io {
            task.await.unwrap().unwrap();
        }
        assert_eq!(decoded.expect("decoding waited for the disk").unwrap(), 42);
    }

    #[tokio::test]
    async fn cpu_work_starts_before_its_future_is_awaited() {
        let (started, seen) = std::sync::mpsc::channel();
        let pending = run_blocking(move || {
            started.send(()).unwrap();
            Ok(7)
        });
        // Not yet polled: the work runs anyway, so a caller overlaps it with a fetch.
        seen.recv_timeout(std::time::Duration::from_secs(30))
            .expect("the work started without being awaited");
        assert_eq!(pending.await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_panic_in_file_io_is_a_worker_error() {
        let e = run_io(|| -> Result<(), ReadError> { panic!("disk on fire") })
            .await
            .unwrap_err();
        assert!(
            matches!(&e, ReadError::Worker(m) if m == "disk on fire"),
            "{e}"
        );
    }
}
