//! `status`: the manifest and the sync journal folded into tables (or JSON).

use std::path::Path;

use crate::checkpoint;
use crate::checkpoint::cursors;
use crate::checkpoint::status::{ObjectStatus, SyncStatus, object_statuses, sync_statuses};
use crate::error::ExitKind;

use super::Failure;

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
    let statuses = object_statuses(&state, chrono::Utc::now());
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
        for f in &o.failed {
            s += &format!("    failed {}: {}\n", f.day, f.error);
        }
    }
    s
}
