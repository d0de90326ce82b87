//! `status`: the manifest and the sync journal folded into tables (or JSON).

use std::path::Path;

use crate::checkpoint;
use crate::checkpoint::bulk_jobs::{self, BulkState};
use crate::checkpoint::cursors;
use crate::checkpoint::status::{
    AddedColumn, ColumnDrift, ObjectStatus, SyncStatus, object_statuses, sync_statuses,
};
use crate::error::{ExitKind, quoted};
use crate::read::drift::Files;
use crate::status_page;

use super::Failure;

/// What every form of `status` shows, read once.
struct Shown {
    state: checkpoint::ManifestState,
    objects: Vec<ObjectStatus>,
    synced: Vec<SyncStatus>,
    bulk: BulkState,
}

impl Shown {
    fn read(out: &Path, now: chrono::DateTime<chrono::Utc>) -> Result<Self, Failure> {
        check_folder(out)?;
        let state = checkpoint::read(out)?;
        Ok(Self {
            objects: object_statuses(&state, now),
            synced: sync_statuses(&cursors::read(out)?),
            bulk: bulk_jobs::read(out)?,
            state,
        })
    }
}

/// `status --html FILE`: the same status as one self-contained page, written to `page`.
pub fn status_html(out: &Path, page: &Path) -> Result<(), Failure> {
    let now = chrono::Utc::now();
    let shown = Shown::read(out, now)?;
    let lines = |drift: &ColumnDrift, files: Files| -> Vec<String> {
        drift_lines(drift, files)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let html = status_page::render(&status_page::Page {
        out,
        now,
        drift: shown
            .objects
            .iter()
            .map(|o| lines(&o.columns, Files::Backfill))
            .collect(),
        objects: &shown.objects,
        sync_drift: shown
            .synced
            .iter()
            .map(|o| lines(&o.columns, Files::Sync))
            .collect(),
        synced: &shown.synced,
        bulk: &shown.bulk,
        last_run_ended: shown.state.last_run_ended.as_ref(),
        usage: shown.state.last_run_usage,
    });
    std::fs::write(page, html).map_err(|e| {
        Failure::new(
            ExitKind::Usage,
            format!("cannot write `{}`: {e}", page.display()),
            Some("give --html a file in an existing folder you can write to".into()),
        )
    })?;
    println!(
        "wrote {} ({} objects, {} synced)",
        page.display(),
        shown.objects.len(),
        shown.synced.len()
    );
    Ok(())
}

fn check_folder(out: &Path) -> Result<(), Failure> {
    if out.is_dir() {
        return Ok(());
    }
    Err(Failure::new(
        ExitKind::Usage,
        format!("`{}` is not a folder", out.display()),
        Some("pass the --out folder of a backfill".into()),
    ))
}

/// `status`: per object chunks done, pending and failed, rows, bytes, window, errors.
pub fn status(out: &Path, json: bool) -> Result<(), Failure> {
    let Shown {
        state,
        objects: statuses,
        synced,
        bulk,
    } = Shown::read(out, chrono::Utc::now())?;
    let files = crate::compact::files_status(out)?;
    if json {
        let doc = serde_json::json!({
            "out": crate::store::shown(out),
            "objects": statuses,
            "sync": synced,
            "files": files,
            "bulk_jobs": bulk.open.iter().map(|(id, job)| serde_json::json!({
                "id": id,
                "object": job.object,
                "window_start": job.start,
                "window_end": job.end,
                "created_at": job.created_at,
                "rows_committed": job.rows,
                "parts": job.parts.len(),
            })).collect::<Vec<_>>(),
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
    if !bulk.open.is_empty() {
        print!("\n{}", bulk_table(&bulk));
    }
    if !synced.is_empty() {
        print!("\n{}", sync_table(&synced));
    }
    if !files.is_empty() {
        print!("\n{}", files_table(&files));
    }
    Ok(())
}

/// The Bulk jobs a stopped backfill left open, which the next one reads on from.
fn bulk_table(bulk: &BulkState) -> String {
    let time = |at: &chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M UTC").to_string();
    let mut s = format!(
        "{:<20} {:<20} {:<20} {:>14}  {}\n",
        "OPEN BULK JOB", "OBJECT", "CREATED", "ROWS COMMITTED", "WINDOW"
    );
    for (id, job) in &bulk.open {
        s += &format!(
            "{id:<20} {:<20} {:<20} {:>14}  {} .. {}\n",
            job.object,
            time(&job.created_at),
            job.rows,
            time(&job.start),
            time(&job.end)
        );
    }
    s += "    the next backfill with the same arguments reads on from these jobs while Salesforce keeps them (7 days); a job gone by then is created again for its pending days\n";
    s
}

/// Per object its day folders, files, the most files in one day, and its last compaction.
fn files_table(objects: &[crate::compact::FilesStatus]) -> String {
    let mut s = format!(
        "{:<20} {:>6} {:>8} {:>8}  {}\n",
        "FILES OF OBJECT", "DAYS", "FILES", "MOST/DAY", "LAST COMPACTED"
    );
    for o in objects {
        let last = o.last_compacted.map_or_else(
            || "never".to_string(),
            |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        );
        s += &format!(
            "{:<20} {:>6} {:>8} {:>8}  {last}\n",
            o.files.object, o.files.days, o.files.files, o.files.most_in_a_day
        );
    }
    s
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
        s += &drift_lines(&o.columns, Files::Sync);
    }
    s
}

pub(super) fn status_table(statuses: &[ObjectStatus]) -> String {
    let mut s = format!(
        "{:<20} {:>6} {:>8} {:>8} {:>7} {:>10} {:>12}  {}\n",
        "OBJECT", "DONE", "PENDING", "NOT OVER", "FAILED", "ROWS", "BYTES", "WINDOW"
    );
    for o in statuses {
        s += &format!(
            "{:<20} {:>6} {:>8} {:>8} {:>7} {:>10} {:>12}  {} .. {}\n",
            o.object,
            o.chunks_done,
            o.chunks_pending,
            o.chunks_not_over,
            o.chunks_failed,
            o.rows,
            o.bytes,
            o.window_start.as_deref().unwrap_or("-"),
            o.window_end.as_deref().unwrap_or("-")
        );
        if let Some(at) = &o.first_closes_text {
            s += &format!(
                "    {} day{} not over yet; the first closes at {at}\n",
                o.chunks_not_over,
                if o.chunks_not_over == 1 {
                    " is"
                } else {
                    "s are"
                }
            );
        }
        // Days failed by one cause (a type change fails every pending day) share a line.
        let mut failed: Vec<(Vec<String>, &str)> = Vec::new();
        for f in &o.failed {
            match failed.iter_mut().find(|(_, e)| *e == f.error) {
                Some((days, _)) => days.push(f.day.clone()),
                None => failed.push((vec![f.day.clone()], &f.error)),
            }
        }
        for (days, error) in failed {
            match days.as_slice() {
                [day] => s += &format!("    failed {day}: {error}\n"),
                _ => {
                    s += &format!(
                        "    failed {} ({}): {error}\n",
                        count(days.len(), "day"),
                        day_list(&days)
                    )
                }
            }
        }
        s += &drift_lines(&o.columns, Files::Backfill);
    }
    s
}

/// One line per drifted column of an object: missing from the org, lacking in some days'
/// files (a backfill's or a sync's `files`), or no longer selected; columns that drifted
/// together share a line.
fn drift_lines(drift: &ColumnDrift, files: Files) -> String {
    let mut s = String::new();
    for m in &drift.missing {
        let arrow_type = m.arrow_type.as_deref().unwrap_or("its recorded type");
        s += &format!(
            "    `{}` not in the org's describe since {} (deleted, or hidden from the Run-As user): null ({arrow_type}) in files written since\n",
            m.field, m.since
        );
    }
    // Columns that drifted together (one run added or dropped them) share a line.
    let mut added: Vec<(Vec<&str>, &AddedColumn)> = Vec::new();
    for a in &drift.added {
        let same = |b: &AddedColumn| {
            (&b.since, &b.days, &b.null_days) == (&a.since, &a.days, &a.null_days)
        };
        match added.iter_mut().find(|(_, b)| same(b)) {
            Some((fields, _)) => fields.push(&a.field),
            None => added.push((vec![&a.field], a)),
        }
    }
    for (fields, a) in added {
        let since = a
            .since
            .as_deref()
            .map(|t| format!(" since {t}"))
            .unwrap_or_default();
        let whose = match files {
            Files::Backfill => "",
            Files::Sync => "sync files of ",
        };
        let it = if fields.len() == 1 { "it" } else { "them" };
        let mut gaps = Vec::new();
        if !a.days.is_empty() {
            gaps.push(format!(
                "{whose}{} lack {it} ({})",
                count(a.days.len(), "day"),
                day_list(&a.days)
            ));
        }
        if !a.null_days.is_empty() {
            gaps.push(format!(
                "{whose}{} hold {it} as null ({})",
                count(a.null_days.len(), "day"),
                day_list(&a.null_days)
            ));
        }
        s += &format!(
            "    {} written{since}; {}; {}\n",
            quoted(fields.iter()),
            gaps.join(", "),
            files.refill(fields.len() > 1)
        );
    }
    let mut removed: Vec<(Vec<&str>, &Option<String>)> = Vec::new();
    for r in &drift.removed {
        match removed.iter_mut().find(|(_, since)| **since == r.since) {
            Some((fields, _)) => fields.push(&r.field),
            None => removed.push((vec![&r.field], &r.since)),
        }
    }
    for (fields, since) in removed {
        let since = since
            .as_deref()
            .map(|t| format!(" since {t}"))
            .unwrap_or_default();
        let it = if fields.len() == 1 { "it" } else { "them" };
        s += &format!(
            "    {} not selected{since}: files written since lack {it}\n",
            quoted(fields.iter())
        );
    }
    s
}

fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// A few days in full, more as their range.
fn day_list(days: &[String]) -> String {
    match days {
        [] => String::new(),
        few if few.len() <= 5 => few.join(", "),
        [first, .., last] => format!("{first} .. {last}"),
        [_] => unreachable!("one day is few"),
    }
}
