//! `backfill`: describe, derive each object's window, lock, check and record the plan, run
//! the days that are over, and report how the run ended.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use crate::backfill::{self, Reporter, RunConfig, RunSummary};
use crate::checkpoint::{self, Entry, Manifest, ManifestState, ObjectConfig};
use crate::config::{self, BackfillSettings, Connection};
use crate::error::{ExitKind, quoted};
use crate::plan::history::{self, NotOver};
use crate::plan::{self, Chunk, Window};
use crate::read::drift::{self, Drift, Files, TypeChange};
use crate::read::{ObjectJob, QueryBudget, StopReason};
use crate::salesforce::SalesforceClient;
use crate::salesforce::describe::{GlobalObject, ObjectDescribe};
use crate::salesforce::select::{self, Selection};
use crate::salesforce::soql::{self, Identifier};

use super::{Failure, client_config, connect, failed_after_retries, stopped, unless_shutdown};

/// What a run asks of its objects' fields and cursor.
pub(super) struct FieldRequest<'a> {
    pub(super) objects: &'a [Identifier],
    /// `--fields`, per object, as given.
    pub(super) fields: &'a BTreeMap<String, Vec<Identifier>>,
    pub(super) all_fields: bool,
}

/// One object of a run: its API name, and its columns reconciled with what the folder
/// recorded (spec "Schema drift"), or why its chunks fail this run.
pub(super) struct Prepared {
    pub(super) object: String,
    pub(super) drift: Result<Drift, TypeChange>,
}

/// The objects of a run, described, selected and reconciled with `recorded` (the folder's
/// config of each object, if any), by a run started `now`; fails before any chunk runs, except
/// for a type change that cannot widen, which fails only that object. `cursor_of` picks each
/// object's cursor from its describe.
pub(super) async fn prepare_objects(
    client: &SalesforceClient,
    request: FieldRequest<'_>,
    recorded: &BTreeMap<String, ObjectConfig>,
    now: DateTime<Utc>,
    cursor_of: impl Fn(&ObjectDescribe) -> Result<Identifier, Failure>,
) -> Result<Vec<Prepared>, Failure> {
    let global = client.describe_global().await?;
    let names = request
        .objects
        .iter()
        .map(|object| listed_name(&global, object))
        .collect::<Result<Vec<_>, _>>()?;
    // All describes at once (within the client's limits): on a slow org each is a round trip.
    let describes = futures::future::join_all(names.iter().map(|name| client.describe(name))).await;
    let mut prepared = Vec::new();
    for (object, describe) in request.objects.iter().zip(describes) {
        let describe = describe?;
        let listed = request
            .fields
            .iter()
            .find(|(o, _)| o.eq_ignore_ascii_case(object.as_str()))
            .map(|(_, f)| f.as_slice());
        let known = recorded.get(&describe.name);
        let selectable = listed.map(|names| drift::selectable(&describe, names, known));
        let cursor = cursor_of(&describe)?;
        let selection = select::select(
            &describe,
            selectable.as_deref(),
            request.all_fields,
            &cursor,
        )?;
        let wanted = match listed {
            Some(names) => drift::Request::Listed(names),
            None if request.all_fields => drift::Request::All,
            None => drift::Request::Default,
        };
        prepared.push(Prepared {
            object: describe.name.clone(),
            drift: drift::reconcile(&describe, selection, wanted, known, now),
        });
    }
    Ok(prepared)
}

/// The org's name of `object`, or the usage error naming close matches.
fn listed_name(global: &[GlobalObject], object: &Identifier) -> Result<String, Failure> {
    let Some(entry) = global
        .iter()
        .find(|o| o.name.eq_ignore_ascii_case(object.as_str()))
    else {
        let close = select::close_matches(object.as_str(), global.iter().map(|o| o.name.as_str()));
        let hint = match close.as_slice() {
            [] => "check the API name in Setup → Object Manager; the Run-As user needs Read on it (a permission set)".to_string(),
            some => format!("did you mean {}?", quoted(some)),
        };
        return Err(Failure::new(
            ExitKind::Usage,
            format!("object `{object}` does not exist or the Run-As user cannot read it"),
            Some(hint),
        ));
    };
    Ok(entry.name.clone())
}

/// Prints what drifted in an object's columns, one line per field (added and removed ones
/// share a line), about a backfill's or a sync's `files`.
pub(super) fn report_drift(command: &str, prepared: &Prepared, files: Files) {
    match &prepared.drift {
        Ok(drift) => {
            for line in drift::note_lines(&drift.notes, &prepared.object, files) {
                eprintln!("{line}");
            }
        }
        Err(change) => eprintln!("{command}: `{}` fails: {change}", prepared.object),
    }
}

pub(super) fn backfill_fields(settings: &BackfillSettings) -> FieldRequest<'_> {
    FieldRequest {
        objects: &settings.objects,
        fields: &settings.fields,
        all_fields: settings.all_fields,
    }
}

/// The chunks of an object's window still to fetch (all of them with `--repull`), whether
/// over or not.
pub(super) fn pending_chunks(
    settings: &BackfillSettings,
    state: &ManifestState,
    object: &str,
    window: Window,
) -> Vec<Chunk> {
    plan::chunks(&[object.to_string()], window, settings.chunk_timezone)
        .into_iter()
        .filter(|c| settings.repull || !state.is_done(&c.object, c.day, &c.window))
        .collect()
}

/// The window a run covers for one object, and how it was derived.
pub(super) struct ObjectWindow {
    /// `None`: nothing to read (no rows, or no day of it is over yet).
    pub(super) window: Option<Window>,
    /// A line saying what was derived, when `--start` or `--end` was left out.
    pub(super) derived: Option<String>,
}

/// Each object's window: `--start`/`--end` as given; without `--start`, from the local day of
/// the object's earliest cursor value (one one-row query, through `queryAll` with
/// `--include-deleted`, taken from `budget` when there is one); without `--end`, to the end
/// of the last day over at `now`.
///
/// # Errors
/// A query that fails (its exit class: nothing has been fetched), the query limit reached
/// (exit 3), or an object whose earliest cursor value is null (a nullable custom cursor).
pub(super) async fn object_windows(
    client: &SalesforceClient,
    settings: &BackfillSettings,
    selections: &[&Selection],
    now: DateTime<Utc>,
    budget: Option<&QueryBudget>,
) -> Result<Vec<ObjectWindow>, Failure> {
    let tz = settings.chunk_timezone;
    // One query per object, all at once (within the client's limits).
    let earliest = futures::future::join_all(selections.iter().map(|selection| async move {
        if settings.start.is_some() {
            return Ok(None);
        }
        if let Some(budget) = budget.filter(|b| !b.try_take()) {
            return Err(Failure::new(
                ExitKind::Resumable,
                format!(
                    "stopped: the query limit of {} requests is reached before every object's history start is known",
                    budget.limit().unwrap_or_default()
                ),
                Some("raise --query-limit, or give --start".into()),
            ));
        }
        earliest_cursor(client, selection, settings.include_deleted).await
    }))
    .await;
    let mut out = Vec::new();
    for (selection, earliest) in selections.iter().zip(earliest) {
        let earliest = earliest?;
        let window = history::object_window(
            settings.start,
            settings.end,
            earliest,
            now,
            settings.safety_lag,
            tz,
        );
        let derived = (settings.start.is_none() || settings.end.is_none())
            .then(|| derived_line(selection, settings, window, earliest));
        out.push(ObjectWindow { window, derived });
    }
    Ok(out)
}

/// The earliest cursor value of an object, `None` when it has no rows.
async fn earliest_cursor(
    client: &SalesforceClient,
    selection: &Selection,
    include_deleted: bool,
) -> Result<Option<DateTime<Utc>>, Failure> {
    let (object, cursor) = (&selection.object, &selection.cursor);
    let soql = soql::earliest_cursor(object, cursor);
    let answer = client.query_json_in(&soql, include_deleted).await?;
    let Some(record) = answer["records"].get(0).and_then(|r| r.as_object()) else {
        return Ok(None);
    };
    let value = record
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(cursor.as_str()))
        .map(|(_, v)| v);
    let text = match value {
        Some(serde_json::Value::String(text)) => text,
        Some(serde_json::Value::Null) => {
            return Err(Failure::new(
                ExitKind::Usage,
                format!("`{object}` has rows with no `{cursor}`, so its history has no start"),
                Some(format!(
                    "give --start (rows without a `{cursor}` are never copied), or pick another --cursor-field"
                )),
            ));
        }
        _ => {
            return Err(Failure::new(
                ExitKind::Failure,
                format!("salesforce answered the earliest `{cursor}` of `{object}` without it"),
                Some("give --start to skip this query".into()),
            ));
        }
    };
    let ms = crate::decode::values::parse_datetime(text).map_err(|e| {
        Failure::new(
            ExitKind::Failure,
            format!("the earliest `{cursor}` of `{object}`, `{text}`, is {e}"),
            Some("give --start to skip this query".into()),
        )
    })?;
    Ok(DateTime::from_timestamp_millis(ms))
}

/// `Account: 2025-01-02 to 2026-11-19 (687 days, from its earliest LastModifiedDate, to the
/// last day over, in UTC)`, or why there is nothing to read.
fn derived_line(
    selection: &Selection,
    settings: &BackfillSettings,
    window: Option<Window>,
    earliest: Option<DateTime<Utc>>,
) -> String {
    let object = &selection.object;
    let tz = settings.chunk_timezone;
    let Some(window) = window else {
        return match (settings.start, earliest) {
            (None, None) => format!("{object}: no rows, nothing to copy"),
            _ => format!(
                "{object}: nothing to copy yet: no day of its window is over (a day is over {} after its end)",
                humantime::format_duration(settings.safety_lag.to_std().unwrap_or_default())
            ),
        };
    };
    let days = plan::days(window, tz);
    let (first, last) = (days[0].0, days[days.len() - 1].0);
    let from = match settings.start {
        Some(_) => "from --start".to_string(),
        None => format!("from its earliest {}", selection.cursor),
    };
    let to = match settings.end {
        Some(_) => "to --end",
        None => "to the last day over",
    };
    format!(
        "{object}: {first} to {last} ({} day{}, {from}, {to}, in {})",
        days.len(),
        if days.len() == 1 { "" } else { "s" },
        tz.name()
    )
}

/// Refuses a cursor, zone or deleted-rows setting other than the one existing chunks were
/// written with; a changed field list is not refused but followed (spec "Schema drift").
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
        cursor_field: selection.cursor.to_string(),
        chunk_timezone: settings.chunk_timezone.name().to_string(),
        include_deleted: settings.include_deleted,
        ..ObjectConfig::default()
    };
    let Some(what) = recorded.difference(&now) else {
        return Ok(());
    };
    Err(Failure::new(
        ExitKind::Usage,
        format!(
            "`{}` already holds `{object}` chunks written with {what}",
            crate::store::shown(out)
        ),
        Some("add --repull to replace the window's chunks, or use another --out folder".into()),
    ))
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
    let started = chrono::Utc::now();
    tokio::pin!(shutdown);
    let Some(setup) = unless_shutdown(shutdown.as_mut(), async {
        let client = connect(&settings.connection, &settings.limits).await?;
        let prepared = prepare_objects(
            &client,
            backfill_fields(settings),
            &existing.objects,
            started,
            |_| Ok(settings.cursor_field.clone()),
        )
        .await?;
        Ok::<_, Failure>((client, prepared))
    })
    .await
    else {
        return Ok(RunSummary {
            stopped: Some(StopReason::Interrupted),
            ..RunSummary::default()
        });
    };
    let (client, prepared) = setup?;
    // A cheap early refusal, with nothing written; checked again under the lock below.
    for drift in prepared.iter().filter_map(|p| p.drift.as_ref().ok()) {
        check_object_config(settings, &existing, &settings.out, &drift.selection)?;
    }
    let budget = Arc::new(QueryBudget::new(settings.query_limit));
    // Taken before any record is read: a day over at this instant is over while we read it.
    let now = Utc::now();
    let selections: Vec<&Selection> = prepared
        .iter()
        .filter_map(|p| p.drift.as_ref().ok().map(|d| &d.selection))
        .collect();
    let windows = object_windows(&client, settings, &selections, now, Some(&budget)).await?;
    for line in windows.iter().filter_map(|w| w.derived.as_ref()) {
        eprintln!("backfill: {line}");
    }
    config::ensure_writable_output(&settings.out)?;
    let run_id = super::run_id();
    let mut manifest = Manifest::open(&settings.out, &run_id)?;
    // Another process may have written chunks between our first read and the lock.
    for selection in &selections {
        if let Err(refused) =
            check_object_config(settings, manifest.state(), &settings.out, selection)
        {
            let _ = manifest.append(Entry::RunEnded {
                run: run_id,
                at: Utc::now(),
                outcome: "refused".into(),
                usage: None,
            });
            return Err(refused);
        }
    }
    let mut jobs = HashMap::new();
    let mut chunks = Vec::new();
    let mut not_over = NotOver::default();
    let mut refused = Vec::new();
    let mut refused_chunks = 0;
    let mut windows = windows.into_iter();
    for p in prepared {
        report_drift("backfill", &p, Files::Backfill);
        let drift = match p.drift {
            Ok(drift) => drift,
            Err(change) => {
                // Without --start no query has found this object's history: only a given
                // window's days can be recorded failed; the run fails the object either way.
                let window = history::object_window(
                    settings.start,
                    settings.end,
                    None,
                    now,
                    settings.safety_lag,
                    settings.chunk_timezone,
                );
                if let Some(window) = window {
                    refused_chunks +=
                        fail_chunks(&mut manifest, settings, &p.object, &change, window, now)?;
                }
                refused.push(p.object);
                continue;
            }
        };
        let window = windows.next().expect("a window per selection");
        let Some(window) = window.window else {
            continue;
        };
        let object = p.object;
        record_plan(
            &mut manifest,
            settings,
            &object,
            Some(&drift),
            started,
            window,
        )?;
        let pending = pending_chunks(settings, manifest.state(), &object, window);
        let (over, later) = history::split_over(pending, now, settings.safety_lag);
        not_over.merge(NotOver::of(&later, settings.safety_lag));
        if over.is_empty() {
            continue;
        }
        chunks.extend(over);
        let uri_prefix = query_uri_prefix(&settings.connection) + ID_RANGE_CONDITION_BYTES;
        let nulls = drift.null_columns();
        let job = ObjectJob::new(drift.selection, uri_prefix, settings.max_query_uri_bytes)?
            .with_null_columns(&nulls);
        jobs.insert(object, Arc::new(job));
    }
    let (bulk_objects, auto_bulk) = super::api::bulk_objects(settings.api, &jobs);
    let sent = client.clone();
    let config = RunConfig {
        client,
        out: settings.out.clone(),
        include_deleted: settings.include_deleted,
        concurrency: settings.limits.concurrency,
        budget,
        offpeak: settings.offpeak.clone(),
        exit_outside_window: settings.exit_outside_window,
        reporter,
        bulk_objects,
        auto_bulk,
        bulk: settings.bulk.clone(),
    };
    let mut result = backfill::run(config, &mut manifest, &jobs, chunks, shutdown)
        .await
        .map(|summary| RunSummary {
            not_over,
            ..summary
        });
    if let Ok(summary) = &mut result {
        summary.chunks_failed += refused_chunks;
        summary.refused = refused;
    }
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
        usage: Some(run_usage(&sent)),
    });
    // The run's own error says more than a journal that cannot take its last line.
    let summary = result?;
    ended?;
    Ok(summary)
}

/// What `client` sent this run, and the org's usage as last reported, for the journal.
fn run_usage(client: &SalesforceClient) -> checkpoint::RunUsage {
    let sent = client.request_counts();
    let usage = client.usage();
    checkpoint::RunUsage {
        requests: sent.token + sent.data,
        retries: sent.retries,
        api_used: usage.map(|u| u.used),
        api_max: usage.map(|u| u.max),
    }
}

/// Fails the object's chunks this run was to write, for `change` (a type that cannot widen):
/// the object is not read, and each run fails them again until the way out is taken. Those not
/// done are recorded failed; a done one that `--repull` asked to replace stays done (its file
/// is in place and valid) but counts as failed for the run's exit. Returns how many failed.
fn fail_chunks(
    manifest: &mut Manifest,
    settings: &BackfillSettings,
    object: &str,
    change: &TypeChange,
    window: Window,
    now: DateTime<Utc>,
) -> Result<u64, Failure> {
    record_plan(manifest, settings, object, None, now, window)?;
    let pending = pending_chunks(settings, manifest.state(), object, window);
    let (requested, _) = history::split_over(pending, now, settings.safety_lag);
    let state = manifest.state();
    let not_done: Vec<&Chunk> = requested
        .iter()
        .filter(|c| !state.is_done(&c.object, c.day, &c.window))
        .collect();
    let error = change.to_string();
    for chunk in not_done {
        manifest.append_failed(chunk, &error)?;
        crate::metrics::global().chunk_failed(object);
    }
    Ok(requested.len() as u64)
}

/// Room in a backfill's query URL for the `Id` range that reads part of a heavy hour,
/// URL-encoded (`AND Id >= '…' AND Id < '…'` with 15-character ids).
const ID_RANGE_CONDITION_BYTES: usize = 100;

/// The bytes of a query URL before its SOQL: the longest form (`queryAll`) is counted.
pub(super) fn query_uri_prefix(connection: &Connection) -> usize {
    connection.instance_url.len()
        + format!("/services/data/{}/queryAll?q=", connection.api_version).len()
}

/// Records the object's columns (when `drift` changed them) and the window this run plans.
fn record_plan(
    manifest: &mut Manifest,
    settings: &BackfillSettings,
    object: &str,
    drift: Option<&Drift>,
    started: DateTime<Utc>,
    window: Window,
) -> Result<(), Failure> {
    if let Some(drift) = drift {
        let config = drift.config(
            settings.chunk_timezone.name().to_string(),
            settings.include_deleted,
        );
        if manifest.state().objects.get(object) != Some(&config) {
            manifest.append(config.entry(object, started))?;
        }
    }
    manifest.append(Entry::Planned {
        object: object.to_string(),
        start: window.start,
        end: window.end,
        chunk_timezone: settings.chunk_timezone.name().to_string(),
        safety_lag_ms: Some(settings.safety_lag.num_milliseconds()),
    })?;
    Ok(())
}

/// What to do about failed work: `retry`, but not for `refused` objects, whose field type
/// changed beyond widening and fail again until the way out their message names is taken.
pub(super) fn retry_hint(refused: &[String], retry: &str) -> String {
    match refused {
        [] => retry.to_string(),
        objects => format!(
            "{} fail until the field type change named above is resolved (see its message); \
             for other failures, {retry}",
            quoted(objects)
        ),
    }
}

/// Prints the run's summary and picks the exit: 0 done (days not over yet are not work of
/// this run), 3 stopped early, 1 failed chunks.
pub(super) fn finish(settings: &BackfillSettings, summary: &RunSummary) -> Result<(), Failure> {
    eprintln!(
        "backfill: {} chunks done, {} failed, {} rows, {} bytes, {} query requests",
        summary.chunks_done,
        summary.chunks_failed,
        summary.rows,
        summary.bytes,
        summary.query_requests
    );
    if let Some(line) = not_over_line(&summary.not_over, settings.chunk_timezone) {
        eprintln!("backfill: {line}; run the same command again then");
    }
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
            &retry_hint(&summary.refused, "run the same command again to retry them"),
        )),
        None => Ok(()),
    }
}

/// `3 days are not over yet and stay pending; the first (Account/2026-11-20) closes at …`, in
/// the chunk zone and UTC; `None` when every day was over.
pub(super) fn not_over_line(not_over: &NotOver, tz: chrono_tz::Tz) -> Option<String> {
    let (chunk, at) = not_over.first.as_ref()?;
    Some(format!(
        "{} day{} not over yet and stay{} pending; the first ({chunk}) closes at {}",
        not_over.days,
        if not_over.days == 1 { " is" } else { "s are" },
        if not_over.days == 1 { "s" } else { "" },
        history::local_and_utc(*at, tz)
    ))
}
