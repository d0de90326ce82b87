//! One span task: reads its work (consecutive days, or one sub-range of a heavy day) with one
//! range query per field group, routes rows to per-day sinks by cursor, and cuts what is
//! large after its first page: a span by day, a heavy day by UTC hour and, where one hour's
//! rows share a second, by `Id`.
//!
//! Invariants:
//! * Rows arrive ordered by `(cursor, Id)`, so a day is finished (published, then reported)
//!   as soon as a row of a later day arrives.
//! * A read that loses its query (an expired or invalidated locator, field groups that
//!   disagree, a `QUERY_TIMEOUT`) continues after the last `(cursor, Id)` routed, with new
//!   queries that keep the part's `Id` range; the open day's file stays open, so every row is
//!   written once, in order, and a day that made progress is never read again from its start.
//! * At most one write per task is in flight, so memory stays a page of JSON, a page of Arrow
//!   and the open day's Parquet row group per running task, whatever the day's size.
//! * A task reports its days once: done as each is published, or at its end (failed, put
//!   back, or left pending for a stop); a sub-range reports its day only as the first of its
//!   siblings to fail.

use arrow::record_batch::RecordBatch;
use chrono::{NaiveDate, Utc};
use futures::future::BoxFuture;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::sink::ChunkSink;
use super::split::{DaySplit, SubRange};
use super::{Context, Event, TaskEnd, Work};
use crate::checkpoint::cursors::Position;
use crate::plan::spans::{self, Span};
use crate::plan::{Chunk, Window};
use crate::read::join::GroupJoin;
use crate::read::{
    Halt, ObjectJob, ReadError, cursor_column, fetch_page, last_position, run_blocking, run_io,
};
use crate::salesforce::QueryPage;
use crate::salesforce::soql::{self, IdRange};

/// A read whose query is lost (an expired or invalidated cursor, field groups that disagree)
/// continues after the last row it routed; this many such continuations in a row that route
/// no row between them mean the org loses queries faster than a page can be read, and the
/// work fails. Continuations that made progress are not counted: org maintenance may kill
/// every cursor many times during a heavy day.
const MAX_STALLED_RESTARTS: u32 = 3;

/// Reads one piece of work to its end and says how it ended. A sub-range of a day reports
/// its day only if it is the first of the day's sub-ranges to fail, so that a day is recorded
/// failed (or put back) once.
pub(super) async fn read_work(ctx: Arc<Context>, job: Arc<ObjectJob>, work: Work) -> TaskEnd {
    let mut reader = SpanReader::new(work);
    // The open day's file lives as long as the task: a continuation keeps writing into it.
    let mut open: Option<OpenDay> = None;
    let mut restarts = Restarts::default();
    let error = loop {
        let error = match reader.read(&ctx, &job, &mut open).await {
            Ok(ReadEnd::Finished | ReadEnd::HandedToBulk) => return TaskEnd::Finished,
            Ok(ReadEnd::SiblingFailed) => return TaskEnd::Abandoned,
            Ok(ReadEnd::Recut) => {
                tracing::debug!("{}: reading its own id range", reader.label());
                continue;
            }
            Err(e) => e,
        };
        let lost_query = match &error {
            ReadError::Fetch(e) => e.is_expired_cursor(),
            ReadError::Shifted(_) => true,
            _ => false,
        };
        if lost_query {
            if !restarts.may_continue(reader.resume_at()) {
                break error;
            }
            tracing::info!(
                "{}: {error}; continuing after the last row read",
                reader.label()
            );
        } else if matches!(&error, ReadError::Fetch(e) if e.is_query_timeout())
            && reader.narrow_after_timeout(&ctx)
        {
            tracing::info!(
                "{}: the query timed out; continuing in narrower ranges",
                reader.label()
            );
        } else {
            break error;
        }
    };
    reader.end_with(&ctx, error)
}

/// Counts the continuations of a read that lost its query without moving on from where the
/// previous one began: only those are bounded (by [`MAX_STALLED_RESTARTS`]).
#[derive(Default)]
struct Restarts {
    /// Where the last continuation began.
    at: Option<Position>,
    /// Continuations from `at` so far.
    stalled: u32,
}

impl Restarts {
    /// Whether the read may continue from `at` once more: always after progress, and at most
    /// [`MAX_STALLED_RESTARTS`] times in a row from one position.
    fn may_continue(&mut self, at: Position) -> bool {
        if self.at.as_ref() != Some(&at) {
            self.at = Some(at);
            self.stalled = 0;
        }
        self.stalled += 1;
        self.stalled <= MAX_STALLED_RESTARTS
    }
}

/// A query narrowed below this after repeated `QUERY_TIMEOUT`s cannot be narrowed usefully.
const MIN_QUERY_RANGE: chrono::Duration = chrono::Duration::seconds(1);

/// The days of one span task still to finish, and how to query them.
struct SpanReader {
    /// Ordered and consecutive; the front day is the open one.
    days: VecDeque<Chunk>,
    reading: Reading,
    /// After a `QUERY_TIMEOUT` within one day: the widest range one query may cover.
    narrow: Option<chrono::Duration>,
    /// The SOQL being read, one line per field group: a day's file records the query that
    /// read its first rows (when `narrow` or a continuation reads a day in several queries).
    soql: String,
    /// Where reading continues: every row of the work before this `(cursor, Id)` is routed.
    /// `None` until the first range or row: from the start of the work.
    from: Option<Position>,
}

/// What a span task reads of its days.
enum Reading {
    /// Whole days. A span is counted and cut at most once, on its first page (`may_refine`).
    Days { may_refine: bool },
    /// One sub-range of its only day: a window of hours, and of its rows those in an `Id` range.
    Part(SubRange),
}

/// How reading one query range ended, short of an error.
enum RangeEnd {
    /// Every row of the range was read.
    Read,
    /// A row lay past the task's last day: the rest belongs to parts read elsewhere.
    PastLastDay,
    /// The task stops reading before the range's end.
    Stopped(ReadEnd),
}

/// How a task's read ended, short of an error.
enum ReadEnd {
    /// Every day of the task is finished and reported.
    Finished,
    /// The task's day was cut into `Id` ranges after its first page, which its running query
    /// does not filter by: it reads its own range again from the start.
    Recut,
    /// Another sub-range of the task's day failed: this one stops; that one reports the day.
    SiblingFailed,
    /// `--api auto` handed the span to a Bulk job after its first page: that task reports it.
    HandedToBulk,
}

impl SpanReader {
    fn new(work: Work) -> Self {
        let (days, reading) = match work {
            Work::Span(span) | Work::Bulk(span, _) => {
                (span.days.into(), Reading::Days { may_refine: true })
            }
            Work::Part { day, sub } => (VecDeque::from([day]), Reading::Part(sub)),
        };
        SpanReader {
            days,
            reading,
            narrow: None,
            soql: String::new(),
            from: None,
        }
    }

    /// Where the next query starts: after the last row routed, or the start of the work.
    fn resume_at(&self) -> Position {
        self.from.clone().unwrap_or_else(|| {
            let start = match (self.part(), self.days.front()) {
                (Some(sub), _) => sub.window.start,
                (None, Some(day)) => day.window.start,
                // No day left: nothing more to read.
                (None, None) => chrono::DateTime::<Utc>::MAX_UTC,
            };
            Position::before(start)
        })
    }

    /// Moves where reading continues forward to `to`; never back.
    fn advance_to(&mut self, to: Position) {
        if self.from.as_ref().is_none_or(|from| *from < to) {
            self.from = Some(to);
        }
    }

    fn part(&self) -> Option<&SubRange> {
        match &self.reading {
            Reading::Part(sub) => Some(sub),
            Reading::Days { .. } => None,
        }
    }

    /// Whether this is the task's first page of a span that may still be counted and cut.
    fn take_refine(&mut self) -> bool {
        match &mut self.reading {
            Reading::Days { may_refine } => std::mem::take(may_refine),
            Reading::Part(_) => false,
        }
    }

    /// How the task ends after `error`: the days it did not finish, and what becomes of them.
    fn end_with(self, ctx: &Context, error: ReadError) -> TaskEnd {
        let reports_days = self.part().is_none_or(|sub| sub.split.fail());
        if let Some(reason) = error.stop_reason(&ctx.budget) {
            return TaskEnd::Stop(reason);
        }
        let days: Vec<Chunk> = self.days.into();
        let Some(first) = days.first().filter(|_| reports_days) else {
            return TaskEnd::Abandoned;
        };
        if matches!(error, ReadError::Halted(Halt::WindowClosed)) {
            let object = first.object.clone();
            return TaskEnd::PutBack(Span { object, days });
        }
        TaskEnd::Failed { days, error }
    }

    fn label(&self) -> String {
        if let (Some(sub), Some(day)) = (self.part(), self.days.front()) {
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
                .send(Event::Spawn(Work::Span(Span { object, days: rest })));
            return true;
        }
        let Some(day) = self.days.front() else {
            return false;
        };
        let whole = match self.part() {
            Some(sub) => sub.window.end - sub.window.start,
            None => day.window.end - day.window.start,
        };
        let width = self.narrow.unwrap_or(whole) / 2;
        self.narrow = Some(width);
        width >= MIN_QUERY_RANGE
    }

    /// Reads from where it stands to the last day's end, finishing each day in order: first
    /// the rest of the instant it stopped inside, if any, then ranges up to the end.
    /// `open` is the open day's file, kept from one call to the next.
    async fn read(
        &mut self,
        ctx: &Context,
        job: &ObjectJob,
        open: &mut Option<OpenDay>,
    ) -> Result<ReadEnd, ReadError> {
        while let Some(last) = self.days.back() {
            let last_end = self.part().map_or(last.window.end, |s| s.window.end);
            let from = self.resume_at();
            let end = match self.narrow {
                Some(width) => (from.at + width).min(last_end),
                None => last_end,
            };
            let ids = self.part().map(|s| s.ids.clone()).unwrap_or_default();
            let sel = &job.selection;
            let start = if from.id.is_empty() {
                from.at
            } else {
                // The rows sharing the last row's cursor value after its `Id`, then the range
                // from the next millisecond (cursors have millisecond precision): each
                // statement needs only `AND`.
                let tie = job
                    .groups
                    .iter()
                    .map(|g| {
                        soql::select_tie_in(
                            &sel.object,
                            &g.fields,
                            &sel.cursor,
                            from.at,
                            &from.id,
                            &ids,
                        )
                    })
                    .collect();
                match self.read_queries(ctx, job, open, tie).await? {
                    RangeEnd::Read => {}
                    RangeEnd::PastLastDay => break,
                    RangeEnd::Stopped(end) => return Ok(end),
                }
                let next = from.at + chrono::Duration::milliseconds(1);
                self.advance_to(Position::before(next));
                next
            };
            if start < end {
                let range = job
                    .groups
                    .iter()
                    .map(|g| {
                        soql::select_range_in(&sel.object, &g.fields, &sel.cursor, start, end, &ids)
                    })
                    .collect();
                match self.read_queries(ctx, job, open, range).await? {
                    RangeEnd::Read => {}
                    RangeEnd::PastLastDay => break,
                    RangeEnd::Stopped(end) => return Ok(end),
                }
            }
            self.finish_days_ending_by(ctx, job, open, end).await?;
            self.advance_to(Position::before(end));
        }
        Ok(ReadEnd::Finished)
    }

    /// Reads one statement per field group to its end, joining their rows and routing them;
    /// each routed batch moves `from` to its last row.
    async fn read_queries(
        &mut self,
        ctx: &Context,
        job: &ObjectJob,
        open: &mut Option<OpenDay>,
        queries: Vec<String>,
    ) -> Result<RangeEnd, ReadError> {
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
                if self.part().is_some_and(|s| s.split.has_failed()) {
                    return Ok(RangeEnd::Stopped(ReadEnd::SiblingFailed));
                }
                let request = requests[g].take().expect("a hungry group has a next page");
                let first_page = matches!(request, QueryPage::First { .. });
                let page = fetch_page(ctx.pages(), &job.groups[g].decoder, &request, &|| {
                    self.label()
                })
                .await?;
                if g == 0 && first_page && self.take_refine() {
                    let days = || self.days.iter().cloned().collect();
                    if !page.done
                        && super::bulk::hand_over(ctx, job, days, page.total_size, &page.batch)
                    {
                        return Ok(RangeEnd::Stopped(ReadEnd::HandedToBulk));
                    }
                    self.refine(ctx, job, page.total_size, page.batch.num_rows() as u64)
                        .await?;
                    if self.part().is_some_and(|s| !s.ids.is_whole()) {
                        // Nothing was routed yet: the part is read from its own start.
                        debug_assert!(open.is_none());
                        self.from = None;
                        return Ok(RangeEnd::Stopped(ReadEnd::Recut));
                    }
                }
                requests[g] = match page.next_records_url {
                    Some(url) if !page.done => Some(QueryPage::Next { url }),
                    _ => None,
                };
                join.push(g, page.batch, requests[g].is_none());
            }
            match join.take()? {
                Some(batch) if !self.route(ctx, job, open, &batch).await? => {
                    return Ok(RangeEnd::PastLastDay);
                }
                Some(batch) => {
                    if let Some(last) = last_position(&batch)? {
                        self.advance_to(last);
                    }
                }
                None if join.is_finished() => return Ok(RangeEnd::Read),
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
                Err(e @ ReadError::Halted(_)) => return Err(e),
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
                let part = whole.part(part.clone());
                let _ = ctx.events.send(Event::Spawn(Work::Span(part)));
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
            Err(e @ ReadError::Halted(_)) => return Err(e),
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
        self.reading = Reading::Part(SubRange {
            index: 0,
            window,
            ids,
            split: split.clone(),
        });
        for (index, (window, ids)) in subs {
            let sub = SubRange {
                index,
                window,
                ids,
                split: split.clone(),
            };
            let day = day.clone();
            let _ = ctx.events.send(Event::Spawn(Work::Part { day, sub }));
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
            Err(e @ ReadError::Halted(_)) => Err(e),
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
        let cursor = cursor_column(batch)?.values().clone();
        let mut offset = 0;
        while offset < batch.num_rows() {
            let Some(day) = self.days.front() else {
                return Ok(false);
            };
            let end = self.front_end().timestamp_millis();
            let until = offset + cursor[offset..].partition_point(|&t| t < end);
            if until > offset {
                let rows = job.file_batch(&batch.slice(offset, until - offset));
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
        match (self.part(), self.days.front()) {
            (Some(sub), _) => sub.window.end,
            (None, Some(day)) => day.window.end,
            (None, None) => unreachable!("asked for the end of no day"),
        }
    }

    /// Publishes the open day's file (a day with no rows has none) and reports it done. Closing,
    /// fsyncing, merging and renaming run on the I/O runner; the day is reported only after.
    async fn finish_front_day(
        &mut self,
        ctx: &Context,
        job: &ObjectJob,
        open: &mut Option<OpenDay>,
    ) -> Result<(), ReadError> {
        let chunk = self.days.front().expect("a day is open").clone();
        let sink = OpenDay::take(open, ctx, job, &chunk, &self.soql).await?;
        let out = ctx.out.clone();
        let done = match self.part() {
            None => run_io(move || sink.publish(&out).map_err(ReadError::from)).await?,
            Some(sub) => {
                let (staged, soql) = run_io(move || sink.finish().map_err(ReadError::from)).await?;
                let Some(parts) = sub.split.deposit(sub.index, staged, soql) else {
                    // Other sub-ranges are still running: the last one in publishes the day.
                    self.days.pop_front();
                    return Ok(());
                };
                let day = ChunkSink::new(ctx, job, &chunk, "");
                run_io(move || day.publish_parts(parts, &out).map_err(ReadError::from)).await?
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

/// Sends a one-page query (a count, an edge id) under the rules of the task's pages.
async fn query_json(ctx: &Context, soql: &str) -> Result<serde_json::Value, ReadError> {
    ctx.pages().query_json(soql, ctx.include_deleted).await
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64, id: &str) -> Position {
        Position {
            at: chrono::DateTime::from_timestamp_millis(ms).unwrap(),
            id: id.into(),
        }
    }

    #[test]
    fn only_continuations_without_progress_are_bounded() {
        let mut restarts = Restarts::default();
        // A cursor lost after every page, but each continuation read on: never refused.
        for page in 0..100 {
            assert!(restarts.may_continue(at(page * 1000, "500A")), "{page}");
        }
        // Lost again and again with no row read in between: three more tries, then the
        // work fails.
        let stuck = at(200_000, "500B");
        for _ in 0..MAX_STALLED_RESTARTS {
            assert!(restarts.may_continue(stuck.clone()));
        }
        assert!(!restarts.may_continue(stuck.clone()));
        assert!(!restarts.may_continue(stuck));
        // Within one instant, the next `Id` is progress too.
        assert!(restarts.may_continue(at(200_000, "500C")));
    }
}
