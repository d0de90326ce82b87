//! The commands: each turns validated settings into a run and a report.
//!
//! Owns the order of a command's steps (validate, sign in, describe, lock, run, report) and
//! what each prints on stdout. Every failure reaches `main` as a [`Failure`]: its exit class,
//! one line, and a hint. Does not own any pipeline stage.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::cursors::{self, SyncEntry, SyncJournal};
use crate::checkpoint::{self, ChunkState, Entry, Manifest, ManifestState};
use crate::cli::{self, Command};
use crate::config::{self, BackfillSettings, Connection, Limits, ProcessEnv, SyncSettings};
use crate::describe::ObjectDescribe;
use crate::error::{ExitKind, UserFacing};
use crate::fetch::{ClientConfig, FetchError, SalesforceClient};
use crate::fetch_plan;
use crate::plan::{self, Chunk};
use crate::progress;
use crate::schedule::{self, ObjectJob, QueryBudget, Reporter, RunConfig, RunSummary, StopReason};
use crate::schema;
use crate::select::{self, Selection};
use crate::soql::{self, Identifier};
use crate::sync;

/// Attempts per request before a chunk is marked failed: enough to ride out a minute of
/// Salesforce maintenance with the back-off's doubling.
const MAX_ATTEMPTS: u32 = 6;

/// How a command failed: the exit class, one line, and what to do next.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: ExitKind,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(kind: ExitKind, message: impl Into<String>, hint: Option<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint,
        }
    }
}

impl<E: UserFacing> From<E> for Failure {
    fn from(e: E) -> Self {
        Self {
            kind: e.exit_kind(),
            message: e.to_string(),
            hint: e.hint(),
        }
    }
}

/// Runs one parsed command line.
pub async fn run(cli: cli::Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Check(args) => check(&args).await,
        Command::Objects(args) => objects(&args).await,
        Command::Plan(args) => {
            let settings = config::backfill(&args, &ProcessEnv)?;
            plan(&settings).await
        }
        Command::Backfill(args) => {
            let settings = config::backfill(&args, &ProcessEnv)?;
            let reporter: Arc<dyn Reporter> = Arc::from(progress::reporter(settings.progress));
            let summary = backfill(&settings, reporter, shutdown_signal()).await?;
            finish(&settings, &summary)
        }
        Command::Sync(args) => {
            let settings = config::sync(&args, &ProcessEnv)?;
            let summary = sync(&settings, shutdown_signal()).await?;
            finish_sync(&settings, &summary)
        }
        Command::Status(args) => status(&args.out, args.json),
        Command::Demo(args) => demo(&args).await,
        Command::FakeOrg(args) => fake_org(&args).await,
    }
}

/// Resolves when the process receives SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn client_config(connection: &Connection, limits: &Limits) -> ClientConfig {
    ClientConfig {
        instance_url: connection.instance_url.clone(),
        client_id: connection.client_id.clone(),
        client_secret: connection.client_secret.clone(),
        api_version: connection.api_version.clone(),
        concurrency: limits.concurrency,
        rate_limit: limits.rate_limit,
        rate_interval: limits.rate_interval,
        request_timeout: limits.request_timeout,
        max_api_usage_pct: limits.max_api_usage,
        max_attempts: MAX_ATTEMPTS,
        batch_size: limits.batch_size,
    }
}

async fn connect(connection: &Connection, limits: &Limits) -> Result<SalesforceClient, Failure> {
    let cfg = client_config(connection, limits);
    cfg.validate()?;
    Ok(SalesforceClient::connect(cfg).await?)
}

fn usage_line(client: &SalesforceClient) -> String {
    match client.usage() {
        Some(u) => format!(
            "API usage: {} of {} daily requests ({:.1}%)",
            u.used,
            u.max,
            u.share_pct()
        ),
        None => "API usage: unknown (the org did not report it)".into(),
    }
}

// ---------------------------------------------------------------------------------------
// check

#[derive(Debug, Serialize)]
struct ObjectCheck {
    object: String,
    exists: bool,
    queryable: bool,
    cursor: Option<String>,
    rows: Option<u64>,
    problem: Option<String>,
}

async fn check(args: &cli::CheckArgs) -> Result<(), Failure> {
    let file = config::ConfigFile::load(args.connection.config.as_deref())?;
    let connection = config::connection(&args.connection, &file, &ProcessEnv)?;
    let limits = config::limits(&args.limits, &file)?;
    let objects = config::objects(&args.objects)?;
    let cursor = Identifier::parse(
        args.cursor_field
            .as_deref()
            .unwrap_or(config::DEFAULT_CURSOR_FIELD),
    )
    .map_err(config::ConfigError::from)?;
    let client = connect(&connection, &limits).await?;
    println!(
        "Connected! {} (API {})",
        client.instance_url(),
        connection.api_version
    );
    println!("{}", usage_line(&client));
    let mut problems = Vec::new();
    for object in &objects {
        let result = check_object(&client, object, &cursor).await?;
        println!(
            "  {:<24} {}",
            result.object,
            match &result.problem {
                None => format!(
                    "ok: queryable, cursor `{}`, {} rows",
                    result.cursor.as_deref().unwrap_or("-"),
                    result.rows.unwrap_or(0)
                ),
                Some(p) => format!("problem: {p}"),
            }
        );
        if let Some(p) = result.problem {
            problems.push(p);
        }
    }
    match problems.as_slice() {
        [] => Ok(()),
        [one] => Err(Failure::new(ExitKind::Usage, one.clone(), None)),
        many => Err(Failure::new(
            ExitKind::Usage,
            format!(
                "{} objects have problems; the first: {}",
                many.len(),
                many[0]
            ),
            None,
        )),
    }
}

async fn check_object(
    client: &SalesforceClient,
    object: &Identifier,
    cursor: &Identifier,
) -> Result<ObjectCheck, Failure> {
    let mut check = ObjectCheck {
        object: object.to_string(),
        exists: false,
        queryable: false,
        cursor: None,
        rows: None,
        problem: None,
    };
    let describe = match client.describe(object.as_str()).await {
        Ok(d) => d,
        Err(e) if e.exit_kind() == ExitKind::Usage => {
            check.problem = Some(e.to_string());
            return Ok(check);
        }
        Err(e) => return Err(e.into()),
    };
    check.exists = true;
    check.queryable = describe.queryable;
    match select::select(&describe, Some(&[]), false, cursor) {
        Ok(sel) => check.cursor = Some(sel.cursor.to_string()),
        Err(e) => {
            check.problem = Some(e.to_string());
            return Ok(check);
        }
    }
    let count = client.query_json(&soql::count_all(object)).await?;
    check.rows = count.get("totalSize").and_then(|v| v.as_u64());
    Ok(check)
}

// ---------------------------------------------------------------------------------------
// objects

async fn objects(args: &cli::ObjectsArgs) -> Result<(), Failure> {
    let file = config::ConfigFile::load(args.connection.config.as_deref())?;
    let connection = config::connection(&args.connection, &file, &ProcessEnv)?;
    let limits = config::limits(&args.limits, &file)?;
    if let Some(name) = &args.name {
        Identifier::parse(name).map_err(config::ConfigError::from)?;
    }
    let client = connect(&connection, &limits).await?;
    match &args.name {
        None => list_objects(&client, args.json).await,
        Some(name) => describe_object(&client, name, args.json).await,
    }
}

async fn list_objects(client: &SalesforceClient, json: bool) -> Result<(), Failure> {
    let mut objects: Vec<_> = client
        .describe_global()
        .await?
        .into_iter()
        .filter(|o| o.is_extractable())
        .collect();
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&objects).expect("serialisable")
        );
        return Ok(());
    }
    println!("{:<40} {:<8} LABEL", "OBJECT", "CUSTOM");
    for o in objects {
        println!(
            "{:<40} {:<8} {}",
            o.name,
            if o.custom { "yes" } else { "" },
            o.label
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct FieldRow {
    name: String,
    salesforce_type: serde_json::Value,
    arrow_type: String,
    custom: bool,
    nillable: bool,
    compound_field_name: Option<String>,
}

async fn describe_object(client: &SalesforceClient, name: &str, json: bool) -> Result<(), Failure> {
    let describe = client.describe(name).await?;
    let rows: Vec<FieldRow> = describe
        .fields
        .iter()
        .map(|f| FieldRow {
            name: f.name.clone(),
            salesforce_type: serde_json::to_value(&f.field_type).expect("serialisable"),
            arrow_type: schema::arrow_type_name(f),
            custom: f.custom,
            nillable: f.nillable,
            compound_field_name: f.compound_field_name.clone(),
        })
        .collect();
    if json {
        let doc = serde_json::json!({"object": describe.name, "queryable": describe.queryable, "fields": rows});
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serialisable")
        );
        return Ok(());
    }
    println!("{} ({} fields)", describe.name, rows.len());
    println!("{:<40} {:<16} PARQUET (ARROW)", "FIELD", "SALESFORCE");
    for r in rows {
        let sf = r.salesforce_type.as_str().unwrap_or("?").to_string();
        println!("{:<40} {:<16} {}", r.name, sf, r.arrow_type);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// backfill and plan

/// What a run asks of its objects' fields and cursor.
struct FieldRequest<'a> {
    objects: &'a [Identifier],
    /// `--fields`, per object, as given.
    fields: &'a BTreeMap<String, Vec<Identifier>>,
    all_fields: bool,
}

/// The objects of a run, described and selected; fails before any chunk runs. `cursor_of`
/// picks each object's cursor from its describe.
async fn prepare_objects(
    client: &SalesforceClient,
    request: FieldRequest<'_>,
    cursor_of: impl Fn(&ObjectDescribe) -> Result<Identifier, Failure>,
) -> Result<Vec<(ObjectDescribe, Selection)>, Failure> {
    let global = client.describe_global().await?;
    let mut prepared = Vec::new();
    for object in request.objects {
        let Some(entry) = global
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(object.as_str()))
        else {
            let close =
                select::close_matches(object.as_str(), global.iter().map(|o| o.name.as_str()));
            let hint = match close.as_slice() {
                [] => "check the API name in Setup → Object Manager; the Run-As user needs Read on it (a permission set)".to_string(),
                some => format!("did you mean {}?", some.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")),
            };
            return Err(Failure::new(
                ExitKind::Usage,
                format!("object `{object}` does not exist or the Run-As user cannot read it"),
                Some(hint),
            ));
        };
        let describe = client.describe(&entry.name).await?;
        let requested = request
            .fields
            .iter()
            .find(|(o, _)| o.eq_ignore_ascii_case(object.as_str()))
            .map(|(_, f)| f.as_slice());
        let cursor = cursor_of(&describe)?;
        let selection = select::select(&describe, requested, request.all_fields, &cursor)?;
        prepared.push((describe, selection));
    }
    Ok(prepared)
}

fn backfill_fields(settings: &BackfillSettings) -> FieldRequest<'_> {
    FieldRequest {
        objects: &settings.objects,
        fields: &settings.fields,
        all_fields: settings.all_fields,
    }
}

/// The chunks of the window still to fetch: all of them with `--repull`.
fn pending_chunks(settings: &BackfillSettings, state: &ManifestState, object: &str) -> Vec<Chunk> {
    plan::chunks(
        &[object.to_string()],
        settings.window,
        settings.chunk_timezone,
    )
    .into_iter()
    .filter(|c| settings.repull || !state.is_done(&c.object, c.day, &c.window))
    .collect()
}

/// Refuses a field list or cursor that differs from the one existing chunks were written with.
fn check_object_config(
    settings: &BackfillSettings,
    state: &ManifestState,
    out: &Path,
    selection: &Selection,
) -> Result<(), Failure> {
    let object = selection.object.as_str();
    let Some(recorded) = state.objects.get(object) else {
        return Ok(());
    };
    if state.done_chunks(object).next().is_none() || settings.repull {
        return Ok(());
    }
    let now = checkpoint::ObjectConfig {
        fields: selection.field_names(),
        cursor_field: selection.cursor.to_string(),
        chunk_timezone: settings.chunk_timezone.name().to_string(),
        include_deleted: settings.include_deleted,
    };
    let Some(what) = config_difference(recorded, &now) else {
        return Ok(());
    };
    Err(Failure::new(
        ExitKind::Usage,
        format!(
            "`{}` already holds `{object}` chunks written with {what}",
            out.display()
        ),
        Some("add --repull to replace the window's chunks, or use another --out folder".into()),
    ))
}

/// How the settings an object's files were written with differ from `now`, in words.
fn config_difference(
    recorded: &checkpoint::ObjectConfig,
    now: &checkpoint::ObjectConfig,
) -> Option<String> {
    if recorded.cursor_field != now.cursor_field {
        // The cursor's place in the field list moves with it: name the cursor, not the list.
        Some(format!(
            "cursor `{}`, not `{}`",
            recorded.cursor_field, now.cursor_field
        ))
    } else if recorded.fields != now.fields {
        let added: Vec<_> = now
            .fields
            .iter()
            .filter(|f| !recorded.fields.contains(f))
            .cloned()
            .collect();
        let removed: Vec<_> = recorded
            .fields
            .iter()
            .filter(|f| !now.fields.contains(f))
            .cloned()
            .collect();
        Some(format!(
            "another field list (added: [{}], removed: [{}])",
            added.join(", "),
            removed.join(", ")
        ))
    } else if recorded.chunk_timezone != now.chunk_timezone {
        Some(format!(
            "chunk time zone `{}`, not `{}`",
            recorded.chunk_timezone, now.chunk_timezone
        ))
    } else if recorded.include_deleted != now.include_deleted {
        Some("another --include-deleted setting".to_string())
    } else {
        None
    }
}

/// Runs a backfill to the end or until it stops; the caller reports the summary.
pub async fn backfill(
    settings: &BackfillSettings,
    reporter: Arc<dyn Reporter>,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, Failure> {
    client_config(&settings.connection, &settings.limits).validate()?;
    config::check_writable_output(&settings.out)?;
    if let (Some(offpeak), true) = (&settings.offpeak, settings.exit_outside_window) {
        let now = chrono::Utc::now();
        if !offpeak.is_open(now) {
            return Ok(RunSummary {
                stopped: Some(StopReason::OutsideWindow {
                    opens: offpeak.local(offpeak.next_open(now)),
                }),
                ..RunSummary::default()
            });
        }
    }
    // A corrupt or foreign manifest is refused before any request is sent.
    let existing = checkpoint::read(&settings.out)?;
    let client = connect(&settings.connection, &settings.limits).await?;
    let prepared = prepare_objects(&client, backfill_fields(settings), |_| {
        Ok(settings.cursor_field.clone())
    })
    .await?;
    for (_, selection) in &prepared {
        check_object_config(settings, &existing, &settings.out, selection)?;
    }
    config::ensure_writable_output(&settings.out)?;
    let run_id = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    );
    let mut manifest = Manifest::open(&settings.out, &run_id)?;
    let mut jobs = HashMap::new();
    let mut chunks = Vec::new();
    for (_, selection) in prepared {
        let object = selection.object.to_string();
        record_plan(&mut manifest, settings, &selection)?;
        chunks.extend(pending_chunks(settings, manifest.state(), &object));
        let uri_prefix = query_uri_prefix(&settings.connection) + ID_RANGE_CONDITION_BYTES;
        let job = ObjectJob::new(selection, uri_prefix, settings.max_query_uri_bytes)?;
        jobs.insert(object, Arc::new(job));
    }
    let budget = Arc::new(QueryBudget::new(settings.query_limit));
    let config = RunConfig {
        client,
        out: settings.out.clone(),
        include_deleted: settings.include_deleted,
        concurrency: settings.limits.concurrency,
        budget,
        offpeak: settings.offpeak.clone(),
        exit_outside_window: settings.exit_outside_window,
        reporter,
    };
    let result = schedule::run(config, &mut manifest, &jobs, chunks, shutdown).await;
    let outcome = match &result {
        Ok(s) if s.stopped.is_some() => "stopped",
        Ok(s) if s.chunks_failed > 0 => "failed chunks",
        Ok(_) => "complete",
        Err(_) => "error",
    };
    let ended = manifest.append(Entry::RunEnded {
        run: run_id,
        at: chrono::Utc::now(),
        outcome: outcome.into(),
    });
    // The run's own error says more than a journal that cannot take its last line.
    let summary = result?;
    ended?;
    Ok(summary)
}

/// Room in a backfill's query URL for the `Id` range that reads part of a heavy hour,
/// URL-encoded (`AND Id >= '…' AND Id < '…'` with 15-character ids).
const ID_RANGE_CONDITION_BYTES: usize = 100;

/// The bytes of a query URL before its SOQL: the longest form (`queryAll`) is counted.
fn query_uri_prefix(connection: &Connection) -> usize {
    connection.instance_url.len()
        + format!("/services/data/{}/queryAll?q=", connection.api_version).len()
}

fn record_plan(
    manifest: &mut Manifest,
    settings: &BackfillSettings,
    selection: &Selection,
) -> Result<(), Failure> {
    let object = selection.object.to_string();
    let config = checkpoint::ObjectConfig {
        fields: selection.field_names(),
        cursor_field: selection.cursor.to_string(),
        chunk_timezone: settings.chunk_timezone.name().to_string(),
        include_deleted: settings.include_deleted,
    };
    if manifest.state().objects.get(&object) != Some(&config) {
        manifest.append(Entry::ObjectConfig {
            object: object.clone(),
            fields: config.fields,
            cursor_field: config.cursor_field,
            chunk_timezone: config.chunk_timezone,
            include_deleted: config.include_deleted,
        })?;
    }
    manifest.append(Entry::Planned {
        object,
        start: settings.window.start,
        end: settings.window.end,
        chunk_timezone: settings.chunk_timezone.name().to_string(),
    })?;
    Ok(())
}

/// Prints the run's summary and picks the exit: 0 done, 3 stopped early, 1 failed chunks.
fn finish(settings: &BackfillSettings, summary: &RunSummary) -> Result<(), Failure> {
    eprintln!(
        "backfill: {} chunks done, {} failed, {} rows, {} bytes, {} query requests",
        summary.chunks_done,
        summary.chunks_failed,
        summary.rows,
        summary.bytes,
        summary.query_requests
    );
    match &summary.stopped {
        Some(reason) => Err(stopped(
            reason,
            "stopped by a signal; chunks in flight were abandoned, finished ones are kept",
            "run the same command again to resume; done chunks are skipped",
        )),
        None if summary.chunks_failed > 0 => Err(failed_after_retries(
            summary.chunks_failed,
            "chunk",
            &settings.out,
            "run the same command again to retry them",
        )),
        None => Ok(()),
    }
}

/// The exit of a run that stopped early: always resumable; `resume` says how.
fn stopped(reason: &StopReason, interrupted: &str, resume: &str) -> Failure {
    let (message, hint) = match reason {
        StopReason::QueryLimit { limit } => (
            format!("stopped: the query limit of {limit} requests is reached"),
            resume.to_string(),
        ),
        StopReason::ApiUsage { message } => (format!("stopped: {message}"), resume.to_string()),
        StopReason::OutsideWindow { opens } => (
            format!("stopped: outside the off-peak windows; the next opens at {opens}"),
            "run the same command again then; done chunks are skipped".to_string(),
        ),
        StopReason::Interrupted => (interrupted.to_string(), resume.to_string()),
    };
    Failure::new(ExitKind::Resumable, message, Some(hint))
}

/// The exit of a run in which `failed` chunks or objects (`noun`) failed after their retries.
fn failed_after_retries(failed: u64, noun: &str, out: &Path, hint: &str) -> Failure {
    Failure::new(
        ExitKind::Failure,
        format!(
            "{failed} {noun}{} failed after their retries (see `sfbackfill status --out {}`)",
            if failed == 1 { "" } else { "s" },
            out.display()
        ),
        Some(hint.to_string()),
    )
}

async fn plan(settings: &BackfillSettings) -> Result<(), Failure> {
    client_config(&settings.connection, &settings.limits).validate()?;
    let state = checkpoint::read(&settings.out)?;
    let client = connect(&settings.connection, &settings.limits).await?;
    let prepared = prepare_objects(&client, backfill_fields(settings), |_| {
        Ok(settings.cursor_field.clone())
    })
    .await?;
    let per_second =
        f64::from(settings.limits.rate_limit) / settings.limits.rate_interval.as_secs_f64();
    println!(
        "{:<24} {:>5} {:>5} {:>6} {:>9} {:>8} {:>9} {:>7}",
        "OBJECT", "DAYS", "DONE", "EMPTY", "ROWS", "QUERIES", "REQUESTS", "FLOOR"
    );
    let (mut total_requests, mut total_floor) = (0u64, 0u64);
    let mut estimated = Vec::new();
    for (_, selection) in &prepared {
        let object = selection.object.to_string();
        let days = plan::days(settings.window, settings.chunk_timezone).len();
        let pending = pending_chunks(settings, &state, &object);
        let counts = match day_counts(&client, selection, settings.window).await {
            Ok(counts) => counts,
            Err(e) if e.is_query_refused() => {
                estimated.push(format!("{object} (`{e}`)"));
                spread_count(&client, selection, settings.window).await?
            }
            Err(e) => return Err(e.into()),
        };
        let page = page_rows(settings, selection);
        let (mut rows, mut empty, mut cost) = (0.0, 0, fetch_plan::Cost::default());
        for span in fetch_plan::spans(pending.clone()) {
            let estimates = fetch_plan::estimate_days(&span.days, &counts);
            empty += estimates.iter().filter(|&&n| n == 0.0).count();
            rows += estimates.iter().sum::<f64>();
            let c = fetch_plan::expected_cost(&estimates, page, settings.limits.concurrency);
            cost.queries += c.queries;
            cost.requests += c.requests;
        }
        let rows = rows.round() as u64;
        // The describe is part of both: the floor is the pages the rows need plus it.
        let floor = rows.div_ceil(page) + 1;
        total_requests += cost.requests + 1;
        total_floor += floor;
        println!(
            "{:<24} {:>5} {:>5} {:>6} {:>9} {:>8} {:>9} {:>7}",
            object,
            days,
            days - pending.len(),
            empty,
            rows,
            cost.queries,
            cost.requests + 1,
            floor
        );
    }
    if !estimated.is_empty() {
        println!(
            "the org would not count rows per day for {}: their rows are the window's count spread evenly over its days, so EMPTY and QUERIES are guesses",
            estimated.join(", ")
        );
    }
    let secs = total_requests as f64 / per_second;
    println!(
        "about {total_requests} requests against a lower bound of {total_floor} (pages the rows need, plus each describe); at {per_second:.1} requests/s about {}",
        human_duration(Duration::from_secs_f64(secs))
    );
    println!("{}", usage_line(&client));
    Ok(())
}

/// Rows per UTC day of the object's cursor over `window`, one aggregate query per stretch of
/// days that fits Salesforce's 2,000-group limit.
async fn day_counts(
    client: &SalesforceClient,
    selection: &Selection,
    window: plan::Window,
) -> Result<BTreeMap<chrono::NaiveDate, u64>, FetchError> {
    let mut counts = BTreeMap::new();
    let stretch = chrono::Duration::days(fetch_plan::MAX_COUNTED_DAYS as i64);
    let mut start = window.start;
    while start < window.end {
        let end = (start + stretch).min(window.end);
        let soql = soql::count_by_day(&selection.object, &selection.cursor, start, end);
        counts.extend(fetch_plan::day_counts(&client.query_json(&soql).await?));
        start = end;
    }
    Ok(counts)
}

/// For an org that refuses the per-day aggregate: the window's `COUNT()`, spread evenly over
/// its UTC days, so `plan` still prints an estimate instead of failing.
async fn spread_count(
    client: &SalesforceClient,
    selection: &Selection,
    window: plan::Window,
) -> Result<BTreeMap<chrono::NaiveDate, u64>, Failure> {
    let soql = soql::count_range(
        &selection.object,
        &selection.cursor,
        window.start,
        window.end,
    );
    let total = client.query_json(&soql).await?["totalSize"]
        .as_u64()
        .unwrap_or(0);
    Ok(fetch_plan::spread_evenly(window, total))
}

/// Rows per page the org will serve this selection: the batch size, or 200 when two or more
/// long-text fields are selected (salesforce-api.md §4.3).
fn page_rows(settings: &BackfillSettings, selection: &Selection) -> u64 {
    let long_text = selection
        .fields
        .iter()
        .filter(|f| f.field_type == crate::describe::FieldType::Textarea && f.length > 255)
        .count();
    let batch = u64::from(settings.limits.batch_size.unwrap_or(2000));
    if long_text >= 2 {
        batch.min(200)
    } else {
        batch
    }
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

// ---------------------------------------------------------------------------------------
// status

#[derive(Debug, Default, Serialize)]
pub struct ObjectStatus {
    pub object: String,
    pub chunks_done: u64,
    pub chunks_pending: u64,
    pub chunks_failed: u64,
    pub rows: u64,
    pub bytes: u64,
    pub window_start: Option<String>,
    pub window_end: Option<String>,
    pub failed: Vec<FailedChunk>,
}

#[derive(Debug, Serialize)]
pub struct FailedChunk {
    pub day: String,
    pub error: String,
}

/// Folds the manifest into per-object counts.
pub fn object_statuses(state: &ManifestState) -> Vec<ObjectStatus> {
    let mut by_object: BTreeMap<String, ObjectStatus> = BTreeMap::new();
    for ((object, day), chunk) in &state.chunks {
        let s = by_object.entry(object.clone()).or_default();
        match chunk {
            ChunkState::Done {
                window,
                rows,
                bytes,
                ..
            } => {
                s.chunks_done += 1;
                s.rows += rows;
                s.bytes += bytes;
                let start = crate::soql::datetime_literal(window.start);
                let end = crate::soql::datetime_literal(window.end);
                if s.window_start.as_ref().is_none_or(|w| *w > start) {
                    s.window_start = Some(start);
                }
                if s.window_end.as_ref().is_none_or(|w| *w < end) {
                    s.window_end = Some(end);
                }
            }
            ChunkState::Failed { error, .. } => {
                s.chunks_failed += 1;
                s.failed.push(FailedChunk {
                    day: day.to_string(),
                    error: error.clone(),
                });
            }
        }
    }
    for (object, plans) in &state.planned {
        let mut days = std::collections::BTreeSet::new();
        for (window, zone) in plans {
            if let Ok(tz) = plan::parse_zone(zone) {
                days.extend(plan::days(*window, tz).into_iter().map(|(d, _)| d));
            }
        }
        let s = by_object.entry(object.clone()).or_default();
        s.chunks_pending = days
            .iter()
            .filter(|d| !state.chunks.contains_key(&(object.clone(), **d)))
            .count() as u64;
    }
    by_object
        .into_iter()
        .map(|(object, mut s)| {
            s.object = object;
            s
        })
        .collect()
}

/// `status`: per object chunks done, pending and failed, rows, bytes, window, errors.
pub fn status(out: &Path, json: bool) -> Result<(), Failure> {
    if !out.is_dir() {
        return Err(Failure::new(
            ExitKind::Usage,
            format!("`{}` is not a folder", out.display()),
            Some("pass the --out folder of a backfill".into()),
        ));
    }
    let state = checkpoint::read(out)?;
    let statuses = object_statuses(&state);
    let synced = sync_statuses(&cursors::read(out)?);
    if json {
        let doc = serde_json::json!({
            "out": out,
            "objects": statuses,
            "sync": synced,
            "last_run_started": state.last_run_started,
            "last_run_ended": state.last_run_ended.as_ref().map(|(at, outcome)| serde_json::json!({"at": at, "outcome": outcome})),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serialisable")
        );
        return Ok(());
    }
    print!("{}", status_table(&statuses));
    if let Some((at, outcome)) = &state.last_run_ended {
        println!(
            "last run ended {} ({outcome})",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    if !synced.is_empty() {
        print!("\n{}", sync_table(&synced));
    }
    Ok(())
}

/// One object's incremental state, for `status`.
#[derive(Debug, Serialize)]
pub struct SyncStatus {
    pub object: String,
    pub cursor_field: Option<String>,
    /// Every row before this is written.
    pub cursor: Option<String>,
    /// The `Id` that breaks a tie at `cursor`, when a sync stopped inside one second.
    pub cursor_id: Option<String>,
    pub last_synced: Option<String>,
    pub syncs: u64,
    pub rows: u64,
    /// How far an unfinished `--full-every` re-read got.
    pub full_reread_at: Option<String>,
}

pub fn sync_statuses(state: &cursors::SyncState) -> Vec<SyncStatus> {
    state
        .objects
        .iter()
        .map(|(object, c)| SyncStatus {
            object: object.clone(),
            cursor_field: c.config.as_ref().map(|c| c.written.cursor_field.clone()),
            cursor: c.cursor.as_ref().map(|p| soql::datetime_literal(p.at)),
            cursor_id: c
                .cursor
                .as_ref()
                .map(|p| p.id.clone())
                .filter(|id| !id.is_empty()),
            last_synced: c.last_synced.map(soql::datetime_literal),
            syncs: c.passes,
            rows: c.rows,
            full_reread_at: c.full_pass.as_ref().map(|p| soql::datetime_literal(p.at)),
        })
        .collect()
}

fn sync_table(statuses: &[SyncStatus]) -> String {
    let mut s = format!(
        "{:<20} {:<16} {:<26} {:<26} {:>6} {:>10}\n",
        "SYNCED OBJECT", "CURSOR FIELD", "CURSOR", "LAST SYNC", "SYNCS", "ROWS"
    );
    for o in statuses {
        let cursor = match (&o.cursor, &o.cursor_id) {
            (Some(at), Some(id)) => format!("{at} after {id}"),
            (Some(at), None) => at.clone(),
            _ => "-".into(),
        };
        s += &format!(
            "{:<20} {:<16} {:<26} {:<26} {:>6} {:>10}\n",
            o.object,
            o.cursor_field.as_deref().unwrap_or("-"),
            cursor,
            o.last_synced.as_deref().unwrap_or("never finished"),
            o.syncs,
            o.rows
        );
        if let Some(at) = &o.full_reread_at {
            s += &format!("    a full re-read is under way, at {at}\n");
        }
    }
    s
}

fn status_table(statuses: &[ObjectStatus]) -> String {
    let mut s = format!(
        "{:<20} {:>6} {:>8} {:>7} {:>10} {:>12}  {}\n",
        "OBJECT", "DONE", "PENDING", "FAILED", "ROWS", "BYTES", "WINDOW"
    );
    for o in statuses {
        s += &format!(
            "{:<20} {:>6} {:>8} {:>7} {:>10} {:>12}  {} .. {}\n",
            o.object,
            o.chunks_done,
            o.chunks_pending,
            o.chunks_failed,
            o.rows,
            o.bytes,
            o.window_start.as_deref().unwrap_or("-"),
            o.window_end.as_deref().unwrap_or("-")
        );
        for f in &o.failed {
            s += &format!("    failed {}: {}\n", f.day, f.error);
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// sync

/// The cursors a sync prefers, in order (salesforce-api.md §3.4): `SystemModstamp` moves on
/// every change, system ones included; `LastModifiedDate` only on user and API edits.
const SYNC_CURSORS: &[&str] = &["SystemModstamp", "LastModifiedDate"];

/// Runs a sync to the end or until it stops; the caller reports the summary.
pub async fn sync(
    settings: &SyncSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<sync::SyncSummary, Failure> {
    client_config(&settings.connection, &settings.limits).validate()?;
    config::check_writable_output(&settings.out)?;
    let cursors = cursors::read(&settings.out)?;
    let backfilled = checkpoint::read(&settings.out)?;
    refuse_unseeded(settings, &cursors)?;
    let client = connect(&settings.connection, &settings.limits).await?;
    let fields = sync_fields(settings, &cursors, &backfilled);
    let request = FieldRequest {
        objects: &settings.objects,
        fields: &fields,
        all_fields: settings.all_fields,
    };
    let prepared =
        prepare_objects(&client, request, |d| sync_cursor(settings, &cursors, d)).await?;
    config::ensure_writable_output(&settings.out)?;
    let run_id = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    );
    let mut journal = SyncJournal::open(&settings.out, &run_id)?;
    let upto = chrono::Utc::now() - settings.safety_lag;
    let objects = match sync_objects(&mut journal, settings, prepared, &backfilled, upto) {
        Ok(objects) => objects,
        Err(refused) => {
            let _ = journal.append(SyncEntry::RunEnded {
                run: run_id,
                at: chrono::Utc::now(),
                outcome: "refused".into(),
            });
            return Err(refused);
        }
    };
    let journal = Arc::new(tokio::sync::Mutex::new(journal));
    let run = sync::SyncRun {
        client,
        out: settings.out.clone(),
        budget: Arc::new(QueryBudget::new(settings.query_limit)),
        step_rows: settings.step_rows,
        journal: journal.clone(),
    };
    let result = sync::run(run, objects, settings.limits.concurrency, shutdown).await;
    let outcome = match &result {
        Ok(s) if s.stopped.is_some() => "stopped",
        Ok(s) if s.failed > 0 => "failed objects",
        Ok(_) => "complete",
        Err(_) => "error",
    };
    let ended = journal.lock().await.append(SyncEntry::RunEnded {
        run: run_id,
        at: chrono::Utc::now(),
        outcome: outcome.into(),
    });
    let summary = result?;
    ended?;
    Ok(summary)
}

/// Each object's pass, after deleting the files of its uncommitted step and checking (then
/// recording) the settings it is synced with.
fn sync_objects(
    journal: &mut SyncJournal,
    settings: &SyncSettings,
    prepared: Vec<(ObjectDescribe, Selection)>,
    backfilled: &ManifestState,
    upto: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<sync::SyncObject>, Failure> {
    let mut objects = Vec::new();
    for (_, selection) in prepared {
        let object = selection.object.to_string();
        let known = journal.state().objects.get(&object).cloned();
        let uncommitted = known.as_ref().map(|k| k.uncommitted.as_slice());
        sync::discard_uncommitted(&settings.out, uncommitted.unwrap_or_default())?;
        let zone = sync_zone(settings, known.as_ref(), backfilled.objects.get(&object));
        let include_deleted = settings.include_deleted
            || known
                .as_ref()
                .and_then(|k| k.config.as_ref())
                .is_some_and(|c| c.written.include_deleted);
        let Some(pass) = sync::plan_pass(
            known.as_ref(),
            settings.start,
            settings.lookback,
            upto,
            settings.full_every,
        ) else {
            return Err(unseeded(settings, &object));
        };
        let job = sync_job(settings, selection)?;
        let config = checkpoint::ObjectConfig {
            fields: job.selection.field_names(),
            cursor_field: job.selection.cursor.to_string(),
            chunk_timezone: zone.name().to_string(),
            include_deleted,
        };
        record_sync_config(journal, settings, &object, config, known.as_ref(), &pass)?;
        objects.push(sync::SyncObject {
            job: Arc::new(job),
            zone,
            include_deleted,
            pass,
        });
    }
    Ok(objects)
}

/// An object never synced needs `--start`: refused before any request is sent.
fn refuse_unseeded(settings: &SyncSettings, cursors: &cursors::SyncState) -> Result<(), Failure> {
    if settings.start.is_some() {
        return Ok(());
    }
    let known = |o: &Identifier| {
        cursors.objects.iter().any(|(name, c)| {
            name.eq_ignore_ascii_case(o.as_str()) && (c.cursor.is_some() || c.full_pass.is_some())
        })
    };
    match settings.objects.iter().find(|o| !known(o)) {
        Some(object) => Err(unseeded(settings, object.as_str())),
        None => Ok(()),
    }
}

fn unseeded(settings: &SyncSettings, object: &str) -> Failure {
    Failure::new(
        ExitKind::Usage,
        format!(
            "`{object}` has no sync cursor in `{}` yet: its first sync needs --start",
            settings.out.display()
        ),
        Some(
            "a backfill seeds the history: backfill up to a day, then sync with --start that \
             day's end (e.g. --start 2026-01-01); later syncs continue from the stored cursor"
                .into(),
        ),
    )
}

/// `--fields` as given; else the list this folder already holds the object with (its syncs',
/// then its backfill's), so that a sync continues the backfill with the same columns.
fn sync_fields(
    settings: &SyncSettings,
    cursors: &cursors::SyncState,
    backfilled: &ManifestState,
) -> BTreeMap<String, Vec<Identifier>> {
    let mut fields = settings.fields.clone();
    if settings.all_fields {
        return fields;
    }
    for object in &settings.objects {
        let name = object.to_string();
        if fields.keys().any(|o| o.eq_ignore_ascii_case(&name)) {
            continue;
        }
        let recorded = cursors
            .objects
            .get(&name)
            .and_then(|c| c.config.as_ref().map(|c| c.written.fields.clone()))
            .or_else(|| backfilled.objects.get(&name).map(|o| o.fields.clone()));
        if let Some(list) = recorded {
            let ids = list
                .iter()
                .filter_map(|f| Identifier::parse(f).ok())
                .collect();
            fields.insert(name, ids);
        }
    }
    fields
}

/// `--cursor-field`, else the one the object was synced with, else `SystemModstamp`, else
/// `LastModifiedDate`; an object with none of them is refused, naming its date-time fields.
fn sync_cursor(
    settings: &SyncSettings,
    cursors: &cursors::SyncState,
    describe: &ObjectDescribe,
) -> Result<Identifier, Failure> {
    if let Some(field) = &settings.cursor_field {
        return Ok(field.clone());
    }
    let recorded = cursors
        .objects
        .get(&describe.name)
        .and_then(|c| c.config.as_ref())
        .map(|c| c.written.cursor_field.as_str());
    let found = recorded
        .into_iter()
        .chain(SYNC_CURSORS.iter().copied())
        .find(|name| describe.field(name).is_some_and(|f| f.is_datetime()));
    if let Some(name) = found {
        return Ok(Identifier::parse(name).expect("describe names are identifiers"));
    }
    let candidates = select::cursor_candidates(describe);
    let advice = match candidates.as_slice() {
        [] => "it has no date-time field, so it cannot be synced incrementally: back it up with `backfill --repull` instead".to_string(),
        some => format!(
            "pass --cursor-field with one of its date-time fields: {}",
            some.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
        ),
    };
    Err(Failure::new(
        ExitKind::Usage,
        format!(
            "`{}` has neither SystemModstamp nor LastModifiedDate to follow its changes",
            describe.name
        ),
        Some(advice),
    ))
}

/// `--chunk-timezone`, else the zone the object was synced or backfilled with, else UTC.
fn sync_zone(
    settings: &SyncSettings,
    known: Option<&cursors::ObjectCursor>,
    backfilled: Option<&checkpoint::ObjectConfig>,
) -> chrono_tz::Tz {
    let recorded = known
        .and_then(|k| k.config.as_ref().map(|c| c.written.chunk_timezone.clone()))
        .or_else(|| backfilled.map(|b| b.chunk_timezone.clone()));
    settings
        .chunk_timezone
        .or_else(|| recorded.and_then(|z| plan::parse_zone(&z).ok()))
        .unwrap_or(chrono_tz::Tz::UTC)
}

/// Records the object's sync settings the first time, and refuses a sync with other ones:
/// its files would not match those already written.
fn record_sync_config(
    journal: &mut SyncJournal,
    settings: &SyncSettings,
    object: &str,
    now: checkpoint::ObjectConfig,
    known: Option<&cursors::ObjectCursor>,
    pass: &sync::Pass,
) -> Result<(), Failure> {
    if let Some(recorded) = known.and_then(|k| k.config.as_ref()) {
        return match config_difference(&recorded.written, &now) {
            None => Ok(()),
            Some(what) => Err(Failure::new(
                ExitKind::Usage,
                format!(
                    "`{}` holds syncs of `{object}` made with {what}",
                    settings.out.display()
                ),
                Some("sync with the same settings, or into another --out folder".into()),
            )),
        };
    }
    journal.append(SyncEntry::ObjectConfig {
        object: object.to_string(),
        fields: now.fields,
        cursor_field: now.cursor_field,
        chunk_timezone: now.chunk_timezone,
        include_deleted: now.include_deleted,
        origin: pass.after.at,
    })?;
    Ok(())
}

/// Room in a sync's query URL for its `(cursor, Id)` condition, URL-encoded.
const KEYSET_CONDITION_BYTES: usize = 160;

/// The object's decoder; a field list too long for one query URL is refused, since a sync
/// pages by `(cursor, Id)` and cannot join field groups across pages.
fn sync_job(settings: &SyncSettings, selection: Selection) -> Result<ObjectJob, Failure> {
    let uri_prefix = query_uri_prefix(&settings.connection) + KEYSET_CONDITION_BYTES;
    let object = selection.object.to_string();
    let job = ObjectJob::new(selection, uri_prefix, settings.max_query_uri_bytes)?;
    if job.groups.len() > 1 {
        return Err(Failure::new(
            ExitKind::Usage,
            format!("`{object}`'s field list is too long for one query URL, which sync needs"),
            Some(format!(
                "sync fewer fields with --fields {object}=Id,...; the backfill reads wide objects in field groups"
            )),
        ));
    }
    Ok(job)
}

/// Prints what each object's pass did and picks the exit: 0 done, 3 stopped, 1 failed.
fn finish_sync(settings: &SyncSettings, summary: &sync::SyncSummary) -> Result<(), Failure> {
    for o in &summary.objects {
        let cursor = o
            .reached
            .as_ref()
            .map(|p| soql::datetime_literal(p.at))
            .unwrap_or_else(|| "unchanged".into());
        let state = match (&o.error, o.finished) {
            (Some(e), _) => format!("failed: {e}"),
            (None, true) => "done".into(),
            (None, false) => "stopped".into(),
        };
        let (files, reached) = match (o.files, o.full) {
            (1, false) => ("file", "cursor"),
            (1, true) => ("file", "full re-read to"),
            (_, false) => ("files", "cursor"),
            (_, true) => ("files", "full re-read to"),
        };
        eprintln!(
            "sync: {:<20} {:>9} rows in {} {files}, {reached} {cursor} ({state})",
            o.object, o.rows, o.files
        );
    }
    let resume = "run the same command again: it continues from the stored cursors";
    match &summary.stopped {
        Some(reason) => Err(stopped(
            reason,
            "stopped by a signal; written steps are kept and their cursors moved",
            resume,
        )),
        None if summary.failed > 0 => Err(failed_after_retries(
            summary.failed,
            "object",
            &settings.out,
            resume,
        )),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// demo

/// The demo's objects: the standard ones plus the custom object with every field type.
pub const DEMO_OBJECTS: &[&str] = &[
    "Account",
    "Contact",
    "Opportunity",
    "Case",
    "Lead",
    "Invoice__c",
];

async fn demo(args: &cli::DemoArgs) -> Result<(), Failure> {
    use crate::fake_org::{FakeOrg, FakeOrgConfig};
    let fake_config = FakeOrgConfig::default();
    let (client_id, secret) = (
        fake_config.client_id.clone(),
        fake_config.client_secret.clone(),
    );
    let org = FakeOrg::start(fake_config).await.map_err(|e| {
        Failure::new(
            ExitKind::Failure,
            format!("cannot start the embedded fake org: {e}"),
            None,
        )
    })?;
    eprintln!("demo: embedded fake Salesforce org at {}", org.url());
    let tz = plan::parse_zone("UTC")?;
    let settings = BackfillSettings {
        connection: Connection {
            instance_url: org.url(),
            client_id,
            client_secret: crate::secret::Secret::new(secret),
            api_version: config::DEFAULT_API_VERSION.into(),
        },
        limits: Limits {
            concurrency: 4,
            // The fake org is on loopback: no quota to spare, so let the demo run at speed.
            rate_limit: 200,
            rate_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(60),
            max_api_usage: config::DEFAULT_MAX_API_USAGE,
            batch_size: None,
        },
        objects: DEMO_OBJECTS
            .iter()
            .map(|o| Identifier::parse(o).expect("constant"))
            .collect(),
        window: plan::Window::new(
            plan::parse_instant("2025-06-01", plan::Bound::Start, tz)?,
            plan::parse_instant("2025-06-30", plan::Bound::End, tz)?,
        )?,
        chunk_timezone: tz,
        out: args.out.clone(),
        fields: BTreeMap::new(),
        all_fields: true,
        cursor_field: Identifier::parse(config::DEFAULT_CURSOR_FIELD).expect("constant"),
        query_limit: None,
        include_deleted: false,
        repull: false,
        offpeak: None,
        exit_outside_window: false,
        max_query_uri_bytes: crate::select::MAX_QUERY_URI_BYTES,
        progress: args.progress,
    };
    eprintln!(
        "demo: backfilling {} for June 2025 into `{}`",
        DEMO_OBJECTS.join(", "),
        settings.out.display()
    );
    let reporter: Arc<dyn Reporter> = Arc::from(progress::reporter(settings.progress));
    let summary = backfill(&settings, reporter, shutdown_signal()).await?;
    let stats = org.stats();
    org.shutdown().await;
    finish(&settings, &summary)?;
    let state = checkpoint::read(&settings.out)?;
    println!();
    print!("{}", status_table(&object_statuses(&state)));
    println!();
    println!(
        "{} rows in {} query requests ({} requests in all, peak {} in flight at the org)",
        summary.rows, summary.query_requests, stats.requests, stats.peak_in_flight
    );
    println!("Query it with DuckDB:");
    println!("{}", duckdb_query(&settings.out));
    Ok(())
}

/// A ready-to-paste DuckDB command over a backfill's output.
pub fn duckdb_query(out: &Path) -> String {
    let base: PathBuf = std::fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf());
    format!(
        "  duckdb -c \"SELECT date, count(*) AS rows, sum(Amount__c) AS amount FROM read_parquet('{}/Invoice__c/date=*/*.parquet', hive_partitioning = true) GROUP BY date ORDER BY date LIMIT 10\"",
        base.display()
    )
}

// ---------------------------------------------------------------------------------------
// fake-org

/// Serves the embedded fake org until Ctrl-C, printing where and how to sign in to it.
async fn fake_org(args: &cli::FakeOrgArgs) -> Result<(), Failure> {
    use crate::fake_org::{FakeOrg, FakeOrgConfig, Faults};
    let faults = match &args.faults {
        Some(spec) => Faults::parse(spec)
            .map_err(|e| Failure::new(ExitKind::Usage, format!("--faults: {e}"), None))?,
        None => Faults::default(),
    };
    if args.scale == 0 {
        return Err(Failure::new(
            ExitKind::Usage,
            "--scale must be at least 1",
            None,
        ));
    }
    let config = FakeOrgConfig {
        faults,
        seed: args.seed,
        scale: args.scale,
        port: args.port,
        ..FakeOrgConfig::default()
    };
    let (client_id, client_secret) = (config.client_id.clone(), config.client_secret.clone());
    let org = FakeOrg::start(config).await.map_err(|e| {
        Failure::new(
            ExitKind::Usage,
            e.to_string(),
            Some("pick another --port, or 0 for a free one".into()),
        )
    })?;
    let url = org.url();
    // These are the fake's own fixed credentials, not a user's secret: printing them is the point.
    println!(
        "fake Salesforce org at {url} (seed {}, scale {})",
        args.seed, args.scale
    );
    println!("  client id:     {client_id}");
    println!("  client secret: {client_secret}");
    println!("  stats:         {url}/__fake/stats");
    println!();
    println!("Point sfbackfill at it from another shell:");
    println!("  export SF_INSTANCE_URL={url}");
    println!("  export SF_CLIENT_ID={client_id}");
    println!("  export SF_CLIENT_SECRET={client_secret}");
    println!();
    println!("Serving until Ctrl-C.");
    shutdown_signal().await;
    let stats = org.stats();
    org.shutdown().await;
    eprintln!(
        "fake-org: served {} requests, {} records",
        stats.requests, stats.records_served
    );
    Ok(())
}
