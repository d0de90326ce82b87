//! `sync`: the incremental run's wiring: settings checked against the sync journal, then the run.

use std::future::Future;
use std::sync::Arc;

use crate::checkpoint::cursors::{self, SyncEntry, SyncJournal};
use crate::checkpoint::{self, ManifestState};
use crate::config::{self, SyncSettings};
use crate::error::ExitKind;
use crate::read::drift::Files;
use crate::read::{ObjectJob, QueryBudget, StopReason};
use crate::salesforce::select::Selection;
use crate::salesforce::soql;
use crate::sync;

use super::backfill::{
    FieldRequest, Prepared, prepare_objects, query_uri_prefix, report_drift, retry_hint,
};
use super::{Failure, client_config, connect, failed_after_retries, stopped, unless_shutdown};

/// Runs a sync to the end or until it stops; the caller reports the summary.
pub async fn sync(
    settings: &SyncSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<sync::SyncSummary, Failure> {
    client_config(&settings.connection, &settings.limits).validate()?;
    config::check_writable_output(&settings.out)?;
    let cursors = cursors::read(&settings.out)?;
    let backfilled = checkpoint::read(&settings.out)?;
    sync::settings::refuse_unseeded(&settings.objects, settings.start, &cursors, &settings.out)?;
    let fields = sync::settings::fields(
        &settings.fields,
        settings.all_fields,
        &settings.objects,
        &cursors,
        &backfilled,
    );
    let request = FieldRequest {
        objects: &settings.objects,
        fields: &fields,
        all_fields: settings.all_fields,
    };
    let started = chrono::Utc::now();
    let recorded = sync::settings::recorded_columns(&cursors, &backfilled);
    tokio::pin!(shutdown);
    let Some(setup) = unless_shutdown(shutdown.as_mut(), async {
        let client = connect(&settings.connection, &settings.limits).await?;
        let prepared = prepare_objects(&client, request, &recorded, started, |d| {
            Ok(sync::settings::cursor(
                settings.cursor_field.as_ref(),
                &cursors,
                d,
            )?)
        })
        .await?;
        Ok::<_, Failure>((client, prepared))
    })
    .await
    else {
        return Ok(sync::SyncSummary {
            stopped: Some(StopReason::Interrupted),
            ..sync::SyncSummary::default()
        });
    };
    let (client, prepared) = setup?;
    config::ensure_writable_output(&settings.out)?;
    let run_id = super::run_id();
    let mut journal = SyncJournal::open(&settings.out, &run_id)?;
    let upto = chrono::Utc::now() - settings.safety_lag;
    let synced = sync_objects(&mut journal, settings, prepared, &backfilled, upto, started);
    let (objects, refused) = match synced {
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
    let mut result = sync::run(run, objects, settings.limits.concurrency, shutdown).await;
    if let Ok(summary) = &mut result {
        summary.failed += refused.len() as u64;
        summary.refused = refused.iter().map(|o| o.object.clone()).collect();
        summary.objects.extend(refused);
        summary.objects.sort_by(|a, b| a.object.cmp(&b.object));
    }
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
/// recording) the settings it is synced with; and the objects whose pass fails before it
/// starts (a field type that cannot widen).
fn sync_objects(
    journal: &mut SyncJournal,
    settings: &SyncSettings,
    prepared: Vec<Prepared>,
    backfilled: &ManifestState,
    upto: chrono::DateTime<chrono::Utc>,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<(Vec<sync::SyncObject>, Vec<sync::ObjectSummary>), Failure> {
    let mut objects = Vec::new();
    let mut refused = Vec::new();
    for p in prepared {
        report_drift("sync", &p, Files::Sync);
        let object = p.object;
        let drift = match p.drift {
            Ok(drift) => drift,
            Err(change) => {
                refused.push(sync::ObjectSummary {
                    object,
                    error: Some(change.to_string()),
                    ..sync::ObjectSummary::default()
                });
                continue;
            }
        };
        let known = journal.state().objects.get(&object).cloned();
        let uncommitted = known.as_ref().map(|k| k.uncommitted.as_slice());
        sync::discard_uncommitted(&settings.out, uncommitted.unwrap_or_default())?;
        let zone = sync::settings::zone(
            settings.chunk_timezone,
            known.as_ref(),
            backfilled.objects.get(&object),
        );
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
            return Err(sync::settings::SettingsError::unseeded(&object, &settings.out).into());
        };
        let config = drift.config(zone.name().to_string(), include_deleted);
        let nulls = drift.null_columns();
        let job = sync_job(settings, drift.selection)?.with_null_columns(&nulls);
        record_sync_config(
            journal,
            settings,
            &object,
            config,
            known.as_ref(),
            &pass,
            started,
        )?;
        objects.push(sync::SyncObject {
            job: Arc::new(job),
            zone,
            include_deleted,
            pass,
        });
    }
    Ok((objects, refused))
}

/// Records the object's sync settings the first time and each time its columns drift, and
/// refuses a sync with another cursor, zone or deleted-rows setting: its files would not match
/// those already written.
fn record_sync_config(
    journal: &mut SyncJournal,
    settings: &SyncSettings,
    object: &str,
    now: checkpoint::ObjectConfig,
    known: Option<&cursors::ObjectCursor>,
    pass: &sync::Pass,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<(), Failure> {
    let recorded = known.and_then(|k| k.config.as_ref());
    if let Some(what) = recorded.and_then(|r| r.written.difference(&now)) {
        return Err(Failure::new(
            ExitKind::Usage,
            format!(
                "`{}` holds syncs of `{object}` made with {what}",
                crate::store::shown(&settings.out)
            ),
            Some("sync with the same settings, or into another --out folder".into()),
        ));
    }
    if recorded.is_some_and(|r| r.written == now) {
        return Ok(());
    }
    let config = cursors::SyncConfig {
        written: now,
        origin: recorded.map_or(pass.after.at, |r| r.origin),
    };
    journal.append(config.entry(object, started))?;
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
pub(super) fn finish_sync(
    settings: &SyncSettings,
    summary: &sync::SyncSummary,
) -> Result<(), Failure> {
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
            &retry_hint(&summary.refused, resume),
        )),
        None => Ok(()),
    }
}
