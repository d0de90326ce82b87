//! `backfill`: describe, lock, record the plan, run the chunks, and report how the run ended.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::backfill::{self, Reporter, RunConfig, RunSummary};
use crate::checkpoint::{self, Entry, Manifest, ManifestState, ObjectConfig};
use crate::config::{self, BackfillSettings, Connection};
use crate::error::ExitKind;
use crate::plan::{self, Chunk};
use crate::read::drift::{self, Drift, Files, TypeChange};
use crate::read::{ObjectJob, QueryBudget, StopReason};
use crate::salesforce::SalesforceClient;
use crate::salesforce::describe::ObjectDescribe;
use crate::salesforce::select::{self, Selection};
use crate::salesforce::soql::Identifier;

use super::{Failure, client_config, connect, failed_after_retries, stopped};

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

/// The chunks of the window still to fetch: all of them with `--repull`.
pub(super) fn pending_chunks(
    settings: &BackfillSettings,
    state: &ManifestState,
    object: &str,
) -> Vec<Chunk> {
    plan::chunks(
        &[object.to_string()],
        settings.window,
        settings.chunk_timezone,
    )
    .into_iter()
    .filter(|c| settings.repull || !state.is_done(&c.object, c.day, &c.window))
    .collect()
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
            out.display()
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
    let client = connect(&settings.connection, &settings.limits).await?;
    let started = chrono::Utc::now();
    let prepared = prepare_objects(
        &client,
        backfill_fields(settings),
        &existing.objects,
        started,
        |_| Ok(settings.cursor_field.clone()),
    )
    .await?;
    for drift in prepared.iter().filter_map(|p| p.drift.as_ref().ok()) {
        check_object_config(settings, &existing, &settings.out, &drift.selection)?;
    }
    config::ensure_writable_output(&settings.out)?;
    let run_id = format!(
        "{}-{}",
        started.format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    );
    let mut manifest = Manifest::open(&settings.out, &run_id)?;
    let mut jobs = HashMap::new();
    let mut chunks = Vec::new();
    let mut refused = Vec::new();
    let mut refused_chunks = 0;
    for p in prepared {
        report_drift("backfill", &p, Files::Backfill);
        let drift = match p.drift {
            Ok(drift) => drift,
            Err(change) => {
                refused_chunks += fail_chunks(&mut manifest, settings, &p.object, &change)?;
                refused.push(p.object);
                continue;
            }
        };
        let object = p.object;
        record_plan(&mut manifest, settings, &object, Some(&drift), started)?;
        chunks.extend(pending_chunks(settings, manifest.state(), &object));
        let uri_prefix = query_uri_prefix(&settings.connection) + ID_RANGE_CONDITION_BYTES;
        let nulls = drift.null_columns();
        let job = ObjectJob::new(drift.selection, uri_prefix, settings.max_query_uri_bytes)?
            .with_null_columns(&nulls);
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
    let mut result = backfill::run(config, &mut manifest, &jobs, chunks, shutdown).await;
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
    });
    // The run's own error says more than a journal that cannot take its last line.
    let summary = result?;
    ended?;
    Ok(summary)
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
) -> Result<u64, Failure> {
    record_plan(manifest, settings, object, None, chrono::Utc::now())?;
    let requested = pending_chunks(settings, manifest.state(), object);
    let state = manifest.state();
    let not_done: Vec<&Chunk> = requested
        .iter()
        .filter(|c| !state.is_done(&c.object, c.day, &c.window))
        .collect();
    let error = change.to_string();
    for chunk in not_done {
        manifest.append(Entry::ChunkFailed {
            object: chunk.object.clone(),
            day: chunk.day,
            start: chunk.window.start,
            end: chunk.window.end,
            error: error.clone(),
            run: manifest.run_id().to_string(),
            at: chrono::Utc::now(),
        })?;
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
) -> Result<(), Failure> {
    if let Some(drift) = drift {
        let config = drift.config(
            settings.cursor_field.to_string(),
            settings.chunk_timezone.name().to_string(),
            settings.include_deleted,
        );
        if manifest.state().objects.get(object) != Some(&config) {
            manifest.append(config.entry(object, started))?;
        }
    }
    manifest.append(Entry::Planned {
        object: object.to_string(),
        start: settings.window.start,
        end: settings.window.end,
        chunk_timezone: settings.chunk_timezone.name().to_string(),
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
            objects
                .iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Prints the run's summary and picks the exit: 0 done, 3 stopped early, 1 failed chunks.
pub(super) fn finish(settings: &BackfillSettings, summary: &RunSummary) -> Result<(), Failure> {
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
            &retry_hint(&summary.refused, "run the same command again to retry them"),
        )),
        None => Ok(()),
    }
}
