//! Schema drift (spec "Schema drift"): fields hidden, deleted, added and retyped in the org
//! between runs. Every run exits 0 unless a type cannot widen; later files carry a hidden
//! field as nulls of its recorded type and an added field as a column; every other value
//! equals the org's; `status` names what drifted, since when, and the days that lack a column.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::datatypes::DataType;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sfbackfill_fake_org::{FieldSpec, FieldType};

use crate::support::*;

const HIDDEN: &str = "Customer_Since__c";
const ADDED: &str = "Region__c";

fn backfill_args<'a>(out: &'a str, objects: &'a str, start: &'a str, end: &'a str) -> Vec<&'a str> {
    vec![
        "backfill",
        "--objects",
        objects,
        "--start",
        start,
        "--end",
        end,
        "--out",
        out,
        "--all-fields",
        "--rate-limit",
        "1000",
        "--progress",
        "off",
    ]
}

fn status_json(url: &str, out: &str) -> Value {
    let o = sfbackfill(url, &["status", "--out", out, "--json"]);
    assert_exit(&o, 0);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn status_text(url: &str, out: &str) -> String {
    let o = sfbackfill(url, &["status", "--out", out]);
    assert_exit(&o, 0);
    stdout(&o)
}

/// The entry of `object` in a status document's `list` (`objects` or `sync`).
fn entry(doc: &Value, list: &str, object: &str) -> Value {
    doc[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["object"] == object)
        .cloned()
        .unwrap_or_else(|| panic!("no {list} status for {object}: {doc}"))
}

/// The files of `object` whose day lies in `days` (inclusive bounds, `YYYY-MM-DD`).
fn files_of_days(out: &Path, object: &str, first: &str, last: &str) -> Vec<PathBuf> {
    parquet_files(out, object)
        .into_iter()
        .filter(|f| {
            let day = f.parent().unwrap().file_name().unwrap().to_string_lossy();
            let day = day.trim_start_matches("date=");
            (first..=last).contains(&day)
        })
        .collect()
}

/// The org's rows of `object` with these columns, whose `LastModifiedDate` is in `[start, end)`.
async fn org_window(
    url: &str,
    object: &str,
    columns: &[String],
    start: &str,
    end: &str,
) -> BTreeMap<String, Row> {
    let soql = format!(
        "SELECT {} FROM {object} WHERE LastModifiedDate >= {start} AND LastModifiedDate < {end}",
        columns.join(", ")
    );
    by_id(org_rows(url, object, &soql).await)
}

/// The column names of `files`, which must all have the same columns.
fn columns_of(files: &[PathBuf]) -> Vec<(String, DataType)> {
    let columns = file_columns(&files[0]);
    for f in files {
        assert_eq!(file_columns(f), columns, "{f:?}");
    }
    columns
}

/// Asserts `rows` hold `field` as nothing but nulls, then takes it out of each.
fn take_null_column(rows: &mut BTreeMap<String, Row>, field: &str) {
    for (id, row) in rows.iter_mut() {
        assert_eq!(row.remove(field).as_deref(), Some(NULL), "{id}: {field}");
    }
}

fn parse_time(text: &Value) -> DateTime<Utc> {
    text.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_hidden_and_one_added_between_two_backfills_stop_nothing_and_lose_no_value() {
    let org = start_default_fake().await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = run(
        &url,
        &backfill_args(out, "Account", "2025-06-02", "2025-06-04"),
    )
    .await;
    assert_exit(&o, 0);
    let first = files_of_days(dir.path(), "Account", "2025-06-02", "2025-06-04");
    let first_columns = columns_of(&first);
    assert!(first_columns.contains(&(HIDDEN.into(), DataType::Date32)));
    let names = |columns: &[(String, DataType)]| -> Vec<String> {
        columns.iter().map(|(n, _)| n.clone()).collect()
    };
    let (a, b) = ("2025-06-02T00:00:00Z", "2025-06-05T00:00:00Z");
    let first_want = org_window(&url, "Account", &names(&first_columns), a, b).await;

    org.hide_field("Account", HIDDEN).unwrap();
    org.add_field(
        "Account",
        FieldSpec::new(ADDED, FieldType::Picklist).with_nulls(20),
    )
    .unwrap();
    let second_began = Utc::now();
    let o = run(
        &url,
        &backfill_args(out, "Account", "2025-06-05", "2025-06-07"),
    )
    .await;
    assert_exit(&o, 0);
    let err = stderr(&o);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains(HIDDEN)).collect();
    assert_eq!(warnings.len(), 1, "one line per object and field: {err}");
    assert!(
        warnings[0].starts_with(&format!(
            "warning: `Account.{HIDDEN}` is not in the org's describe since"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("note: `Account.{ADDED}` is a column from now on")),
        "{err}"
    );

    // The first run's files are untouched and exact.
    assert_eq!(by_id(read_files(&first)), first_want);
    // The second run's: the hidden field a null column of its recorded type, the added one
    // a column, every other value the org's.
    let second = files_of_days(dir.path(), "Account", "2025-06-05", "2025-06-07");
    let second_columns = columns_of(&second);
    assert!(second_columns.contains(&(HIDDEN.into(), DataType::Date32)));
    assert!(second_columns.contains(&(ADDED.into(), DataType::Utf8)));
    let mut got = by_id(read_files(&second));
    take_null_column(&mut got, HIDDEN);
    let queried: Vec<String> = names(&second_columns)
        .into_iter()
        .filter(|n| n != HIDDEN)
        .collect();
    let (c, d) = ("2025-06-05T00:00:00Z", "2025-06-08T00:00:00Z");
    let want = org_window(&url, "Account", &queried, c, d).await;
    assert!(want.len() > 100, "{}", want.len());
    assert_eq!(got, want);
    assert!(
        got.values().any(|r| r[ADDED] != NULL),
        "the added field has values"
    );

    let text = status_text(&url, out);
    assert!(
        text.contains(&format!("`{HIDDEN}` not in the org's describe since")),
        "{text}"
    );
    assert!(text.contains(&format!("`{ADDED}` written since")), "{text}");
    assert!(
        text.contains("3 days lack it (2025-06-02, 2025-06-03, 2025-06-04); `backfill --repull` of those days writes them with it"),
        "{text}"
    );
    let doc = status_json(&url, out);
    let columns = &entry(&doc, "objects", "Account")["columns"];
    let missing = &columns["missing"][0];
    assert_eq!(missing["field"], HIDDEN);
    assert_eq!(missing["arrow_type"], "Date32");
    let since = parse_time(&missing["since"]);
    assert!(
        since >= second_began - chrono::Duration::seconds(1) && since <= Utc::now(),
        "since {since}: the second run's start"
    );
    let added = &columns["added"][0];
    assert_eq!(added["field"], ADDED);
    assert_eq!(
        added["days"],
        serde_json::json!(["2025-06-02", "2025-06-03", "2025-06-04"])
    );

    // Shown again: a third run keeps the first missing time out of its record, queries the
    // field again, and status says which days hold it as null.
    org.show_field("Account", HIDDEN).unwrap();
    let o = run(
        &url,
        &backfill_args(out, "Account", "2025-06-09", "2025-06-09"),
    )
    .await;
    assert_exit(&o, 0);
    assert!(stderr(&o).contains(&format!("note: `Account.{HIDDEN}` is a column from now on")));
    let third = files_of_days(dir.path(), "Account", "2025-06-09", "2025-06-09");
    assert!(read_files(&third).iter().any(|r| r[HIDDEN] != NULL));
    let doc = status_json(&url, out);
    let columns = &entry(&doc, "objects", "Account")["columns"];
    assert_eq!(columns["missing"], serde_json::json!([]));
    let shown = columns["added"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["field"] == HIDDEN)
        .unwrap();
    assert_eq!(
        shown["null_days"],
        serde_json::json!(["2025-06-05", "2025-06-06", "2025-06-07"])
    );
}

/// `sync` of Account with an explicit field list, small steps and no lookback.
fn sync_args<'a>(out: &'a str, fields: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "sync",
        "--objects",
        "Account",
        "--out",
        out,
        "--fields",
        fields,
        "--lookback",
        "0s",
        "--safety-lag",
        "1s",
        "--batch-size",
        "200",
        "--step-rows",
        "500",
        "--rate-limit",
        "1000",
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_hidden_and_one_added_between_two_syncs_stop_nothing_and_lose_no_value() {
    let org = start_default_fake().await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let listed = format!("Account=Name,Health_Score__c,{HIDDEN}");
    let o = run(
        &url,
        &sync_args(out, &listed, &["--start", "2025-12-01T00:00:00Z"]),
    )
    .await;
    assert_exit(&o, 0);
    let first: BTreeSet<PathBuf> = parquet_files(dir.path(), "Account").into_iter().collect();
    assert!(!first.is_empty());
    let first_columns = columns_of(&first.iter().cloned().collect::<Vec<_>>());
    assert!(first_columns.contains(&(HIDDEN.into(), DataType::Date32)));

    org.hide_field("Account", HIDDEN).unwrap();
    org.add_field(
        "Account",
        FieldSpec::new(ADDED, FieldType::Picklist).with_nulls(20),
    )
    .unwrap();
    let changed_from = Utc::now() - chrono::Duration::seconds(1);
    assert_eq!(org.modify_rows(600), 600);
    // Past the safety lag, so the second sync reads every change.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second_began = Utc::now();
    // The user adds the new field to the list; the hidden one stays listed.
    let relisted = format!("{listed},{ADDED}");
    let o = run(&url, &sync_args(out, &relisted, &[])).await;
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert_eq!(
        err.lines().filter(|l| l.contains(HIDDEN)).count(),
        1,
        "one line per object and field: {err}"
    );
    assert!(
        err.contains(&format!(
            "warning: `Account.{HIDDEN}` is not in the org's describe since"
        )),
        "{err}"
    );

    let second: Vec<PathBuf> = parquet_files(dir.path(), "Account")
        .into_iter()
        .filter(|f| !first.contains(f))
        .collect();
    assert!(!second.is_empty());
    let columns = columns_of(&second);
    assert!(columns.contains(&(HIDDEN.into(), DataType::Date32)));
    assert!(columns.contains(&(ADDED.into(), DataType::Utf8)));
    let mut got = by_id(read_files(&second));
    take_null_column(&mut got, HIDDEN);
    let soql = format!(
        "SELECT Id, SystemModstamp, Name, Health_Score__c, {ADDED} FROM Account WHERE SystemModstamp >= {}",
        changed_from.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let want = by_id(org_rows(&url, "Account", &soql).await);
    assert!(want.len() > 20, "{}", want.len());
    assert_eq!(got, want);

    let doc = status_json(&url, out);
    let columns = &entry(&doc, "sync", "Account")["columns"];
    let missing = &columns["missing"][0];
    assert_eq!(
        (&missing["field"], &missing["arrow_type"]),
        (&HIDDEN.into(), &"Date32".into())
    );
    let since = parse_time(&missing["since"]);
    assert!(
        since >= second_began - chrono::Duration::seconds(1),
        "{since}"
    );
    let added = &columns["added"][0];
    assert_eq!(added["field"], ADDED);
    let first_days: BTreeSet<String> = first
        .iter()
        .map(|f| {
            let day = f.parent().unwrap().file_name().unwrap().to_string_lossy();
            day.trim_start_matches("date=").to_string()
        })
        .collect();
    let lacking: BTreeSet<String> = added["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert_eq!(lacking, first_days, "the days of the first sync's files");
    let text = status_text(&url, out);
    assert!(
        text.contains(&format!("`{HIDDEN}` not in the org's describe since")),
        "{text}"
    );
    assert!(
        text.contains(&format!("sync files of {} days lack it", first_days.len())),
        "{text}"
    );
    assert!(
        text.contains("a full re-read (one `sync --full-every 1`) writes their rows again with it"),
        "{text}"
    );

    // Which it does: after a full re-read no sync file's rows lack the column any more.
    let o = run(&url, &sync_args(out, &relisted, &["--full-every", "1"])).await;
    assert_exit(&o, 0);
    let doc = status_json(&url, out);
    let columns = &entry(&doc, "sync", "Account")["columns"];
    assert_eq!(columns["added"], serde_json::json!([]), "{columns}");
    assert_eq!(columns["missing"][0]["field"], HIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_that_cannot_widen_fails_that_objects_chunks_and_the_others_are_done() {
    let org = start_default_fake().await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let objects = "Account,Contact,Invoice__c";
    assert_exit(
        &run(
            &url,
            &backfill_args(out, objects, "2025-06-02", "2025-06-03"),
        )
        .await,
        0,
    );
    // Text that became a number cannot widen; an int that became a long can.
    org.add_field("Account", FieldSpec::new("AccountNumber", FieldType::Long))
        .unwrap();
    org.add_field(
        "Invoice__c",
        FieldSpec::new("Line_Count__c", FieldType::Long),
    )
    .unwrap();
    let o = run(
        &url,
        &backfill_args(out, objects, "2025-06-04", "2025-06-05"),
    )
    .await;
    assert_exit(&o, 1);
    let err = stderr(&o);
    let message = "`Account.AccountNumber` changed type in the org: this folder's files hold it as `Utf8`, the describe now gives `Int64`";
    assert!(err.contains(message), "{err}");
    assert!(err.contains("new --out folder"), "{err}");
    assert!(
        err.contains("note: `Invoice__c.Line_Count__c` changed type in the org: written as `Int64` from now on (earlier files hold `Int32`"),
        "{err}"
    );

    let doc = status_json(&url, out);
    let account = entry(&doc, "objects", "Account");
    assert_eq!(
        (
            account["chunks_done"].as_u64(),
            account["chunks_failed"].as_u64()
        ),
        (Some(2), Some(2))
    );
    let failed = account["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{account}");
    for failed in failed {
        assert!(
            failed["error"].as_str().unwrap().contains(message),
            "{failed}"
        );
    }
    for object in ["Contact", "Invoice__c"] {
        let s = entry(&doc, "objects", object);
        assert_eq!(
            (s["chunks_done"].as_u64(), s["chunks_failed"].as_u64()),
            (Some(4), Some(0)),
            "{object}"
        );
    }
    let old = files_of_days(dir.path(), "Invoice__c", "2025-06-02", "2025-06-03");
    let new = files_of_days(dir.path(), "Invoice__c", "2025-06-04", "2025-06-05");
    assert!(columns_of(&old).contains(&("Line_Count__c".into(), DataType::Int32)));
    let new_columns = columns_of(&new);
    assert!(new_columns.contains(&("Line_Count__c".into(), DataType::Int64)));
    let names: Vec<String> = new_columns.into_iter().map(|(n, _)| n).collect();
    let want = org_window(
        &url,
        "Invoice__c",
        &names,
        "2025-06-04T00:00:00Z",
        "2025-06-06T00:00:00Z",
    )
    .await;
    assert!(!want.is_empty());
    assert_eq!(by_id(read_files(&new)), want);
    assert!(files_of_days(dir.path(), "Account", "2025-06-04", "2025-06-05").is_empty());

    // A --repull of done days cannot replace them either: they stay done with their files, and
    // the run says it failed.
    let before = files_of_days(dir.path(), "Account", "2025-06-02", "2025-06-03");
    let mut repull = backfill_args(out, "Account", "2025-06-02", "2025-06-03");
    repull.push("--repull");
    let o = run(&url, &repull).await;
    assert_exit(&o, 1);
    assert!(stderr(&o).contains(message), "{}", stderr(&o));
    let account = entry(&status_json(&url, out), "objects", "Account");
    assert_eq!(account["chunks_done"].as_u64(), Some(2));
    assert_eq!(
        files_of_days(dir.path(), "Account", "2025-06-02", "2025-06-03"),
        before
    );
}
