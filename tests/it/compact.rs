//! `compact` on a folder a backfill and syncs of a changing org wrote.
//!
//! Exactness for a compaction: every day folder holds one file, and the rows of the object are
//! the org's current records, each exactly once: those the backfill's window holds (by its
//! cursor, `LastModifiedDate`) and those changed since the first sync's start (by
//! `SystemModstamp`).

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use sfbackfill::checkpoint::compactions::CompactJournal;
use sfbackfill::checkpoint::cursors::SyncJournal;
use sfbackfill_fake_org::FakeOrg;

use crate::support::*;

const OBJECTS: &str = "Account,Case";
const ACCOUNT_FIELDS: &str = "Account=Name,SystemModstamp";
const CASE_FIELDS: &str = "Case=Subject,Status,SystemModstamp";
const BACKFILL_START: &str = "2025-06-01";
const BACKFILL_END: &str = "2025-11-30";
const SYNC_START: &str = "2025-12-01T00:00:00Z";
const KILL_VARIABLE: &str = "SFBACKFILL_TEST_COMPACT_KILL";

fn columns(object: &str) -> &'static str {
    match object {
        "Account" => "Id, LastModifiedDate, SystemModstamp, Name",
        _ => "Id, LastModifiedDate, SystemModstamp, Subject, Status",
    }
}

fn sync_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "sync",
        "--objects",
        OBJECTS,
        "--out",
        out,
        "--batch-size",
        "200",
        "--step-rows",
        "500",
        "--rate-limit",
        "1000",
        "--safety-lag",
        "2s",
    ];
    args.extend_from_slice(extra);
    args
}

/// A backfill of six months, then a first sync and three more with rows changed before each.
async fn backfill_and_three_syncs(org: &FakeOrg, out: &str) {
    let url = org.url();
    let o = run(
        &url,
        &[
            "backfill",
            "--objects",
            OBJECTS,
            "--start",
            BACKFILL_START,
            "--end",
            BACKFILL_END,
            "--out",
            out,
            "--fields",
            ACCOUNT_FIELDS,
            "--fields",
            CASE_FIELDS,
            "--rate-limit",
            "1000",
            "--progress",
            "off",
        ],
    )
    .await;
    assert_exit(&o, 0);
    let o = run(&url, &sync_args(out, &["--start", SYNC_START])).await;
    assert_exit(&o, 0);
    for _ in 0..3 {
        assert!(org.modify_rows(120) > 0);
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        let o = run(&url, &sync_args(out, &[])).await;
        assert_exit(&o, 0);
    }
}

/// The org's current records the folder must hold: the backfill's window and every record
/// changed since the first sync's start.
async fn org_current(url: &str, object: &str) -> BTreeMap<String, Row> {
    let select = format!("SELECT {} FROM {object} WHERE", columns(object));
    let window = format!(
        "{select} LastModifiedDate >= {BACKFILL_START}T00:00:00Z AND LastModifiedDate < 2025-12-01T00:00:00Z"
    );
    let changed = format!("{select} SystemModstamp >= {SYNC_START}");
    let mut want = by_id(org_rows(url, object, &window).await);
    want.extend(by_id(org_rows(url, object, &changed).await));
    want
}

/// The newest copy of each `Id` in the folder (by `SystemModstamp`), duplicates allowed.
fn newest(out: &Path, object: &str) -> BTreeMap<String, Row> {
    let stamp = |r: &Row| r["SystemModstamp"].parse::<i64>().unwrap_or(i64::MIN);
    let mut newest: BTreeMap<String, Row> = BTreeMap::new();
    for row in read_output(out, object) {
        if newest
            .get(&row["Id"])
            .is_none_or(|old| stamp(old) < stamp(&row))
        {
            newest.insert(row["Id"].clone(), row);
        }
    }
    newest
}

/// Files per day folder of `object`.
fn files_per_day(out: &Path, object: &str) -> BTreeMap<String, usize> {
    let mut days = BTreeMap::new();
    for file in parquet_files(out, object) {
        let day = file.parent().unwrap().file_name().unwrap();
        *days.entry(day.to_string_lossy().into_owned()).or_default() += 1;
    }
    days
}

async fn compact(out: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args = vec!["compact".to_string(), "--out".into(), out.into()];
    args.extend(extra.iter().map(|a| a.to_string()));
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        sfbackfill_with_env(&args, &env)
    })
    .await
    .unwrap()
}

/// Every day folder holds one file and the rows are the org's current records, once each.
async fn assert_compacted_exactly(url: &str, out: &Path) {
    for object in ["Account", "Case"] {
        let per_day = files_per_day(out, object);
        assert!(per_day.len() > 100, "{object}: {} days", per_day.len());
        let crowded: Vec<_> = per_day.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            crowded.is_empty(),
            "{object}: days with other than one file: {crowded:?}"
        );
        let got = by_id(read_output(out, object));
        let want = org_current(url, object).await;
        assert_eq!(got.len(), want.len(), "{object}: records");
        assert_eq!(got, want, "{object}");
    }
}

fn status_json(out: &str) -> Value {
    let o = sfbackfill_with_env(&["status", "--out", out, "--json"], &[]);
    assert_exit(&o, 0);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn files_status(doc: &Value, object: &str) -> Value {
    doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["object"] == object)
        .cloned()
        .unwrap_or_else(|| panic!("no files status for {object}: {doc}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_after_a_backfill_and_three_syncs_leaves_one_file_a_day_and_each_record_once() {
    let org = start_default_fake().await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    backfill_and_three_syncs(&org, out).await;

    let before = read_output(dir.path(), "Account").len();
    let files_before = parquet_files(dir.path(), "Account");
    assert!(
        before > newest(dir.path(), "Account").len(),
        "the syncs wrote no second copy of a record"
    );
    assert!(
        files_per_day(dir.path(), "Account")
            .values()
            .any(|n| *n > 1)
    );
    let per_day_before = files_per_day(dir.path(), "Account");
    let doc = status_json(out);
    assert_eq!(files_status(&doc, "Account")["last_compacted"], Value::Null);

    let o = compact(out, &["--dry-run"], &[]).await;
    assert_exit(&o, 0);
    let dry = stdout(&o);
    let line = dry.lines().find(|l| l.contains("Account")).unwrap();
    assert!(line.starts_with("compact --dry-run: Account"), "{dry}");
    assert!(
        line.contains(&format!("{} files, ", files_before.len())),
        "{dry}"
    );
    assert!(line.contains(&format!("{before} rows ->")), "{dry}");
    assert_eq!(
        parquet_files(dir.path(), "Account"),
        files_before,
        "a dry run changes nothing"
    );

    let o = compact(out, &[], &[]).await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("compact: Account"), "{}", stdout(&o));
    assert_compacted_exactly(&url, dir.path()).await;
    let doc = status_json(out);
    let account = files_status(&doc, "Account");
    assert_eq!(account["most_in_a_day"], 1, "{account}");
    assert!(account["last_compacted"].is_string(), "{account}");
    let rewritten: Vec<_> = parquet_files(dir.path(), "Account")
        .into_iter()
        .filter(|f| {
            f.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("compact-")
        })
        .collect();
    assert!(!rewritten.is_empty());
    let reader = parquet::file::reader::SerializedFileReader::new(
        std::fs::File::open(&rewritten[0]).unwrap(),
    )
    .unwrap();
    let kv: BTreeMap<String, String> = parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
        .collect();
    let day = rewritten[0].parent().unwrap().file_name().unwrap();
    assert_eq!(
        kv["sfbackfill.compacted_from"].parse::<usize>().unwrap(),
        per_day_before[&*day.to_string_lossy()],
        "the files its day held: {kv:?}"
    );
    assert_eq!(kv["sfbackfill.object"], "Account");
    assert_eq!(kv["sfbackfill.cursor_field"], "SystemModstamp");

    // A second compaction of an unchanged folder rewrites nothing.
    let o = compact(out, &[], &[]).await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("(0 days rewritten)"), "{}", stdout(&o));

    // Syncs go on from their cursors: changes made since are read, and compacting again is exact.
    assert!(org.modify_rows(120) > 0);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let o = run(&url, &sync_args(out, &[])).await;
    assert_exit(&o, 0);
    for object in ["Account", "Case"] {
        let got = newest(dir.path(), object);
        assert_eq!(
            got,
            org_current(&url, object).await,
            "{object} after a sync"
        );
    }
    let o = compact(out, &[], &[]).await;
    assert_exit(&o, 0);
    assert_compacted_exactly(&url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_killed_at_any_step_hides_no_record_and_the_same_command_finishes_it() {
    let org = start_default_fake().await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    backfill_and_three_syncs(&org, out).await;
    let want: BTreeMap<&str, _> = [
        ("Account", org_current(&url, "Account").await),
        ("Case", org_current(&url, "Case").await),
    ]
    .into();
    // Each run is killed further on; each next run first finishes what the last one recorded.
    for kill_at in ["recorded:2", "published:3", "removed:4", "published:9"] {
        let o = compact(out, &[], &[(KILL_VARIABLE, kill_at)]).await;
        assert_eq!(
            o.status.signal(),
            Some(libc::SIGKILL),
            "{kill_at}: {}",
            stderr(&o)
        );
        for (object, want) in &want {
            assert_eq!(
                &newest(dir.path(), object),
                want,
                "{object} after a kill at {kill_at}"
            );
        }
    }
    // The last run died after renaming a day's new file in: the next run, even of the other
    // object only, first removes that day's old files, as its journal line names them.
    let journal = std::fs::read_to_string(dir.path().join("_sfbackfill/compact.journal")).unwrap();
    let last: Value = journal
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["kind"] == "replacing")
        .unwrap();
    let object = last["object"].as_str().unwrap();
    let day_dir = dir
        .path()
        .join(object)
        .join(format!("date={}", last["day"].as_str().unwrap()));
    assert!(std::fs::read_dir(&day_dir).unwrap().count() > 1, "{last}");
    let other = if object == "Account" {
        "Case"
    } else {
        "Account"
    };
    let o = compact(out, &["--objects", other], &[]).await;
    assert_exit(&o, 0);
    let left: Vec<_> = std::fs::read_dir(&day_dir)
        .unwrap()
        .map(|e| {
            format!(
                "{object}/date={}/{}",
                last["day"].as_str().unwrap(),
                e.unwrap().file_name().to_string_lossy()
            )
        })
        .collect();
    assert_eq!(left, [last["file"].as_str().unwrap()], "{last}");
    let o = compact(out, &[], &[]).await;
    assert_exit(&o, 0);
    assert_compacted_exactly(&url, dir.path()).await;
    let staged = dir.path().join("_sfbackfill/staging");
    assert_eq!(std::fs::read_dir(staged).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_or_backfill_beside_a_compaction_is_refused_and_so_is_a_compaction_beside_them() {
    let org = start_default_fake().await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = run(&url, &sync_args(out, &["--start", SYNC_START])).await;
    assert_exit(&o, 0);

    let compaction = CompactJournal::open(dir.path(), "compact-held-by-test").unwrap();
    let backfill = [
        "backfill",
        "--objects",
        "Account",
        "--start",
        "2025-06-01",
        "--end",
        "2025-06-30",
        "--out",
        out,
        "--progress",
        "off",
    ];
    for args in [sync_args(out, &[]), backfill.to_vec()] {
        let o = run(&url, &args).await;
        assert_exit(&o, 2);
        let err = stderr(&o);
        assert!(err.contains("another sfbackfill is writing"), "{err}");
        assert!(err.contains("run compact-held-by-test"), "{err}");
    }
    drop(compaction);

    let sync = SyncJournal::open(dir.path(), "sync-held-by-test").unwrap();
    let files = parquet_files(dir.path(), "Account");
    let o = compact(out, &[], &[]).await;
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("run sync-held-by-test"),
        "{}",
        stderr(&o)
    );
    assert_eq!(parquet_files(dir.path(), "Account"), files);
    drop(sync);
    let o = compact(out, &[], &[]).await;
    assert_exit(&o, 0);
    let o = run(&url, &sync_args(out, &[])).await;
    assert_exit(&o, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_records_are_kept_at_their_newest_version_or_dropped_with_drop_deleted() {
    let org = start_default_fake().await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "sync",
            "--objects",
            "Account",
            "--out",
            out,
            "--fields",
            "Account=Name,IsDeleted",
            "--include-deleted",
            "--safety-lag",
            "2s",
            "--rate-limit",
            "1000",
        ];
        a.extend_from_slice(extra);
        a
    };
    let o = run(&url, &args(&["--start", "2025-09-01T00:00:00Z"])).await;
    assert_exit(&o, 0);
    assert!(org.modify_rows(100) > 0);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let o = run(&url, &args(&[])).await;
    assert_exit(&o, 0);
    let soql = "SELECT Id, SystemModstamp, Name, IsDeleted FROM Account WHERE SystemModstamp >= 2025-09-01T00:00:00Z";
    let live = by_id(org_rows(&url, "Account", soql).await);

    let o = compact(out, &[], &[]).await;
    assert_exit(&o, 0);
    let kept = by_id(read_output(dir.path(), "Account"));
    let deleted: Vec<_> = kept.values().filter(|r| r["IsDeleted"] == "true").collect();
    assert!(!deleted.is_empty(), "the org has soft-deleted Accounts");
    assert!(
        stdout(&o).contains(&format!(", {} deleted)", deleted.len())),
        "{}",
        stdout(&o)
    );
    assert_eq!(kept.len(), live.len() + deleted.len());

    let o = compact(out, &["--drop-deleted"], &[]).await;
    assert_exit(&o, 0);
    assert_eq!(by_id(read_output(dir.path(), "Account")), live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_file_has_the_union_of_the_columns_with_nulls_where_a_file_lacked_one() {
    const ADDED: &str = "Compact_Region__c";
    let org = start_default_fake().await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let sync = |fields: &'static str, extra: &[&'static str]| {
        let mut a = vec![
            "sync",
            "--objects",
            "Account",
            "--out",
            out,
            "--fields",
            fields,
            "--safety-lag",
            "2s",
            "--rate-limit",
            "1000",
        ];
        a.extend_from_slice(extra);
        a
    };
    let o = run(
        &url,
        &sync("Account=Name", &["--start", "2025-11-01T00:00:00Z"]),
    )
    .await;
    assert_exit(&o, 0);
    org.add_field(
        "Account",
        sfbackfill_fake_org::FieldSpec::new(ADDED, sfbackfill_fake_org::FieldType::Picklist),
    )
    .unwrap();
    // Two syncs with the column: today's folder holds two files of it, and is rewritten.
    for _ in 0..2 {
        assert!(org.modify_rows(300) > 0);
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        let o = run(&url, &sync("Account=Name,Compact_Region__c", &[])).await;
        assert_exit(&o, 0);
    }
    // Rows without the column read as null there, as a reader with union_by_name sees them.
    let without_nulls = |rows: BTreeMap<String, Row>| -> BTreeMap<String, Row> {
        rows.into_iter()
            .map(|(id, mut row)| {
                if row.get(ADDED).is_some_and(|v| v == NULL) {
                    row.remove(ADDED);
                }
                (id, row)
            })
            .collect()
    };
    let want = without_nulls(newest(dir.path(), "Account"));
    assert!(want.values().any(|r| r.contains_key(ADDED)));

    let o = compact(out, &[], &[]).await;
    assert_exit(&o, 0);
    let compacted: Vec<_> = parquet_files(dir.path(), "Account")
        .into_iter()
        .filter(|f| {
            f.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("compact-")
        })
        .collect();
    assert!(!compacted.is_empty());
    for file in &compacted {
        let columns = file_columns(file);
        assert!(
            columns.contains(&(ADDED.to_string(), arrow::datatypes::DataType::Utf8)),
            "{file:?}: {columns:?}"
        );
    }
    let rows = read_files(&compacted);
    assert!(
        rows.iter().any(|r| r[ADDED] == NULL),
        "rows of older files hold null"
    );
    assert!(
        rows.iter().any(|r| r[ADDED] != NULL),
        "rows of newer files hold values"
    );
    assert_eq!(
        without_nulls(by_id(read_output(dir.path(), "Account"))),
        want
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_or_object_that_is_not_there_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let o = compact(missing.to_str().unwrap(), &[], &[]).await;
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("is not a folder"), "{}", stderr(&o));
    let o = compact(dir.path().to_str().unwrap(), &[], &[]).await;
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("is not an sfbackfill output folder"),
        "{}",
        stderr(&o)
    );

    let org = start_default_fake().await;
    let out = dir.path().to_str().unwrap();
    let o = run(&org.url(), &sync_args(out, &["--start", SYNC_START])).await;
    assert_exit(&o, 0);
    let files = parquet_files(dir.path(), "Account");
    let o = compact(out, &["--objects", "Account,Acount"], &[]).await;
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("no files of `Acount`"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        parquet_files(dir.path(), "Account"),
        files,
        "nothing changed"
    );
    assert!(!dir.path().join("_sfbackfill/compact.journal").exists());
}
