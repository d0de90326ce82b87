//! `compact`: one file per changed day folder, each record once at its newest version.

use crate::compact::{self, CompactOptions, ObjectCompaction};
use crate::config::cli::CompactArgs;
use crate::error::ExitKind;

use super::Failure;

/// Runs the compaction off the async runtime and prints one line per object.
pub async fn compact(args: &CompactArgs) -> Result<(), Failure> {
    let out = crate::store::refuse_bucket(&args.out, "compact")?;
    if !out.is_dir() {
        return Err(Failure::new(
            ExitKind::Usage,
            format!("`{}` is not a folder", out.display()),
            Some("pass the --out folder of a backfill or sync".into()),
        ));
    }
    let options = CompactOptions {
        objects: args.objects.clone(),
        dry_run: args.dry_run,
        drop_deleted: args.drop_deleted,
    };
    let run = format!("compact-{}", super::run_id());
    let reports = tokio::task::spawn_blocking(move || compact::compact(&out, &options, &run))
        .await
        .map_err(|e| Failure::new(ExitKind::Failure, e.to_string(), None))??;
    for report in &reports {
        println!("{}", line(report, args.dry_run));
    }
    Ok(())
}

/// `compact: Account   212 files, 10397 rows -> 31 files, 8519 rows (30 days rewritten)`.
fn line(r: &ObjectCompaction, dry_run: bool) -> String {
    let (label, done) = match dry_run {
        true => ("compact --dry-run", "to rewrite"),
        false => ("compact", "rewritten"),
    };
    let deleted = match r.deleted {
        0 => String::new(),
        n => format!(", {n} deleted"),
    };
    format!(
        "{label}: {:<20} {:>6} files, {:>9} rows -> {:>6} files, {:>9} rows ({} {} {done}{deleted})",
        r.object,
        r.files_before,
        r.rows_before,
        r.files_after,
        r.rows_after,
        r.days_rewritten,
        if r.days_rewritten == 1 { "day" } else { "days" },
    )
}
