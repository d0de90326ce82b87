//! The incremental run against a fake org whose records change during and between syncs.
//!
//! Exactness for a sync: every row of the org whose cursor lies at or after the first sync's
//! start is in the output, and the newest version of each `Id` in the output (by the cursor)
//! is the org's current row. With `--lookback 0s` it is also read exactly once per version.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sfbackfill::checkpoint::cursors::{SyncEntry, SyncJournal};
use sfbackfill::config::{Connection, Limits, SyncSettings};
use sfbackfill::salesforce::soql::Identifier;
use sfbackfill::secret::Secret;
use sfbackfill_fake_org::{FakeOrgConfig, Faults};

use crate::support::*;

const ACCOUNT_FIELDS: &str = "Account=Name,LastModifiedDate";
const CASE_FIELDS: &str = "Case=Subject,Status,LastModifiedDate";

/// `sync` of `objects` into `out` with small pages and steps, so boundaries are crossed often.
fn sync_args<'a>(out: &'a str, objects: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "sync",
        "--objects",
        objects,
        "--out",
        out,
        "--fields",
        ACCOUNT_FIELDS,
        "--fields",
        CASE_FIELDS,
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

/// The org's current rows of `object` whose `SystemModstamp` is at or after `since`.
async fn org_since(url: &str, object: &str, fields: &str, since: &str) -> BTreeMap<String, Row> {
    let soql = format!(
        "SELECT Id, SystemModstamp, {fields} FROM {object} WHERE SystemModstamp >= {since}"
    );
    by_id(org_rows(url, object, &soql).await)
}

/// Rows of the files of `object` whose name starts with `prefix` (`sync-` or `part-`).
fn rows_of(out: &Path, object: &str, prefix: &str) -> Vec<Row> {
    let copy = tempfile::tempdir().unwrap();
    for file in parquet_files(out, object) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            let day = file.parent().unwrap().file_name().unwrap();
            let dir = copy.path().join(object).join(day);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(&file, dir.join(name)).unwrap();
        }
    }
    read_output(copy.path(), object)
}

/// The newest version of each `Id` by `SystemModstamp`; two versions with one stamp must agree.
fn newest_by_id(rows: Vec<Row>) -> BTreeMap<String, Row> {
    let stamp = |r: &Row| r["SystemModstamp"].parse::<i64>().unwrap();
    let mut newest: BTreeMap<String, Row> = BTreeMap::new();
    for row in rows {
        match newest.get(&row["Id"]) {
            Some(old) if stamp(old) > stamp(&row) => {}
            Some(old) if stamp(old) == stamp(&row) => {
                assert_eq!(old, &row, "two versions of one Id with one stamp differ")
            }
            _ => {
                newest.insert(row["Id"].clone(), row);
            }
        }
    }
    newest
}

/// No `(Id, SystemModstamp)` twice: each version was read once.
fn assert_each_version_once(rows: &[Row]) {
    let mut seen = std::collections::BTreeSet::new();
    for r in rows {
        let key = (r["Id"].clone(), r["SystemModstamp"].clone());
        assert!(seen.insert(key.clone()), "version {key:?} written twice");
    }
}

fn status_json(url: &str, out: &str) -> Value {
    let o = sfbackfill(url, &["status", "--out", out, "--json"]);
    assert_exit(&o, 0);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn synced(doc: &Value, object: &str) -> Value {
    doc["sync"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["object"] == object)
        .cloned()
        .unwrap_or_else(|| panic!("no sync status for {object}: {doc}"))
}

fn fields_of(object: &str) -> &'static str {
    match object {
        "Account" => "Name, LastModifiedDate",
        _ => "Subject, Status, LastModifiedDate",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_of_syncs_misses_no_change_made_during_or_between_them() {
    let org = start_fake(FakeOrgConfig {
        faults: Faults {
            // Every 5th data request first changes 3 rows: changes land mid-run.
            modify_every: Some(5),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let start = "2025-11-01T00:00:00Z";
    let test_began = chrono::Utc::now().timestamp_millis() - 1_000;
    let o = run(
        &url,
        &sync_args(out, "Account,Case", &["--start", start, "--lookback", "0s"]),
    )
    .await;
    assert_exit(&o, 0);
    for _ in 0..3 {
        assert!(org.modify_rows(40) > 0);
        let o = run(&url, &sync_args(out, "Account,Case", &["--lookback", "0s"])).await;
        assert_exit(&o, 0);
    }
    org.set_faults(Faults::default());
    // Past the safety lag of the last change, the next sync must see everything.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let o = run(&url, &sync_args(out, "Account,Case", &["--lookback", "0s"])).await;
    assert_exit(&o, 0);
    for object in ["Account", "Case"] {
        let rows = rows_of(dir.path(), object, "sync-");
        assert_each_version_once(&rows);
        let got = newest_by_id(rows);
        let want = org_since(&url, object, fields_of(object), start).await;
        let stamp = |r: &Row| r["SystemModstamp"].parse::<i64>().unwrap();
        let changed = want.values().filter(|r| stamp(r) >= test_began).count();
        assert!(changed > 0, "{object}: the test changed no row");
        assert_eq!(got.len(), want.len(), "{object}: Ids");
        assert_eq!(got, want, "{object}: newest versions");
    }
    let doc = status_json(&url, out);
    let account = synced(&doc, "Account");
    assert_eq!(account["syncs"], 5);
    assert_eq!(account["cursor_field"], "SystemModstamp");
    assert!(account["last_synced"].is_string(), "{account}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_sharing_one_second_across_pages_and_runs_are_each_read_once() {
    let org = start_default_fake().await;
    let url = org.url();
    let since = (chrono::Utc::now() - chrono::Duration::seconds(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // A bulk update: every changed row gets the same second.
    assert!(org.modify_rows(4000) > 3000);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let want = org_since(&url, "Account", fields_of("Account"), &since).await;
    assert!(
        want.len() > 600,
        "the tie spans several 200-row pages: {}",
        want.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    // One page per run: every run stops inside the shared second and the next continues.
    let first = [
        "--start",
        since.as_str(),
        "--lookback",
        "0s",
        "--query-limit",
        "1",
    ];
    let o = run(&url, &sync_args(out, "Account", &first)).await;
    assert_exit(&o, 3);
    let mut runs = 1;
    loop {
        let o = run(
            &url,
            &sync_args(out, "Account", &["--lookback", "0s", "--query-limit", "1"]),
        )
        .await;
        runs += 1;
        match o.status.code() {
            Some(3) => assert!(runs < 20, "no progress after {runs} runs"),
            Some(0) => break,
            _ => assert_exit(&o, 0),
        }
    }
    assert!(runs >= 4, "the tie was read in {runs} runs");
    let got = by_id(rows_of(dir.path(), "Account", "sync-"));
    assert_eq!(got.len(), want.len(), "rows lost or read twice");
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_at_random_points_resumes_without_a_gap_or_a_repeat() {
    let org = start_fake(FakeOrgConfig {
        faults: Faults {
            latency: Some(Duration::from_millis(20)),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let start = "2025-08-01T00:00:00Z";
    let args: Vec<String> = sync_args(out, "Account,Case", &["--start", start, "--lookback", "0s"])
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut killed_mid_run = 0;
    for _ in 0..6 {
        let mut child = Running::spawn(
            Command::new(env!("CARGO_BIN_EXE_sfbackfill"))
                .args(&args)
                .env_remove("RUST_LOG")
                .env("SF_INSTANCE_URL", &url)
                .env("SF_CLIENT_ID", CLIENT_ID)
                .env("SF_CLIENT_SECRET", CLIENT_SECRET)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(rng.u64(100..=900))).await;
        killed_mid_run += usize::from(!child.has_exited());
        child.signal(libc::SIGKILL);
        child.wait().await;
        for object in ["Account", "Case"] {
            // Between runs too, what a reader sees holds no row twice.
            by_id(rows_of(dir.path(), object, "sync-"));
        }
    }
    assert!(
        killed_mid_run >= 3,
        "only {killed_mid_run} of 6 kills landed while a sync ran"
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&url, &refs).await;
    assert_exit(&o, 0);
    for object in ["Account", "Case"] {
        let got = by_id(rows_of(dir.path(), object, "sync-"));
        let want = org_since(&url, object, fields_of(object), start).await;
        assert_eq!(got.len(), want.len(), "{object}: rows lost or read twice");
        assert_eq!(got, want, "{object}");
    }
    let staging = dir.path().join("_sfbackfill/sync-staging");
    assert_eq!(std::fs::read_dir(staging).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_beside_syncs_on_one_folder_finishes_exact_and_so_do_they() {
    let org = start_default_fake().await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap().to_string();
    let since = "2025-12-01T00:00:00Z";
    let o = run(&url, &sync_args(&out, "Account,Case", &["--start", since])).await;
    assert_exit(&o, 0);
    org.modify_rows(60);
    let backfill = {
        let (url, out) = (url.clone(), out.clone());
        tokio::spawn(async move {
            let args = [
                "backfill",
                "--objects",
                "Account,Case",
                "--start",
                "2025-03-01",
                "--end",
                "2025-08-31",
                "--out",
                &out,
                "--fields",
                ACCOUNT_FIELDS,
                "--fields",
                CASE_FIELDS,
                "--rate-limit",
                "40",
                "--concurrency",
                "2",
                "--progress",
                "off",
            ];
            run(&url, &args).await
        })
    };
    for _ in 0..3 {
        let o = run(&url, &sync_args(&out, "Account,Case", &[])).await;
        assert_exit(&o, 0);
    }
    let o = backfill.await.unwrap();
    assert_exit(&o, 0);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let o = run(&url, &sync_args(&out, "Account,Case", &[])).await;
    assert_exit(&o, 0);
    for object in ["Account", "Case"] {
        let backfilled = by_id(rows_of(dir.path(), object, "part-"));
        let soql = format!(
            "SELECT Id, LastModifiedDate, {} FROM {object} WHERE LastModifiedDate >= 2025-03-01T00:00:00Z AND LastModifiedDate < 2025-09-01T00:00:00Z",
            fields_of(object).replace(", LastModifiedDate", "")
        );
        let want = by_id(org_rows(&url, object, &soql).await);
        assert_eq!(backfilled.len(), want.len(), "{object}: backfill rows");
        assert_eq!(backfilled, want, "{object}: backfill");
        let got = newest_by_id(rows_of(dir.path(), object, "sync-"));
        let want = org_since(&url, object, fields_of(object), since).await;
        assert_eq!(got, want, "{object}: sync");
    }
    let doc = status_json(&url, &out);
    assert!(
        doc["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["chunks_done"].as_u64() > Some(100))
    );
    assert_eq!(synced(&doc, "Case")["syncs"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sync_on_a_folder_is_refused_naming_the_first() {
    let org = start_default_fake().await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let holder = SyncJournal::open(dir.path(), "sync-held-by-test").unwrap();
    let o = run(&url, &sync_args(out, "Account", &["--start", "2025-12-01"])).await;
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("another sfbackfill is writing"), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    drop(holder);
    let o = run(&url, &sync_args(out, "Account", &["--start", "2025-12-01"])).await;
    assert_exit(&o, 0);
    let other_cursor = ["--cursor-field", "LastModifiedDate"];
    let o = run(&url, &sync_args(out, "Account", &other_cursor)).await;
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("made with cursor `SystemModstamp`, not `LastModifiedDate`"),
        "{err}"
    );
    let journal = std::fs::read_to_string(dir.path().join("_sfbackfill/sync.journal")).unwrap();
    let last: Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["outcome"], "refused",
        "a refused run is closed in the journal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_without_start_or_an_object_without_a_cursor_is_refused_before_any_request() {
    let org = start_default_fake().await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = run(&url, &["sync", "--objects", "Account", "--out", out]).await;
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("no sync cursor") && err.contains("--start"),
        "{err}"
    );
    assert!(
        err.contains("backfill"),
        "the message says a backfill seeds the history: {err}"
    );
    assert_eq!(org.stats().requests, 0, "a request was sent");
    let o = run(
        &url,
        &[
            "sync",
            "--objects",
            "LoginHistory",
            "--out",
            out,
            "--start",
            "2025-12-01",
        ],
    )
    .await;
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("neither SystemModstamp nor LastModifiedDate"),
        "{err}"
    );
    assert!(
        err.contains("--cursor-field") && err.contains("LoginTime"),
        "{err}"
    );
    let args = [
        "sync",
        "--objects",
        "LoginHistory",
        "--cursor-field",
        "LoginTime",
        "--out",
        out,
        "--start",
        "2025-12-01",
        "--safety-lag",
        "0s",
    ];
    let o = run(&url, &args).await;
    assert_exit(&o, 0);
    let got = read_output(dir.path(), "LoginHistory");
    let want = org_rows(
        &url,
        "LoginHistory",
        "SELECT Id FROM LoginHistory WHERE LoginTime >= 2025-12-01T00:00:00Z",
    )
    .await;
    assert_eq!(got.len(), want.len());
    assert!(!got.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nth_sync_rereads_the_whole_window() {
    let org = start_default_fake().await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let every = ["--lookback", "0s", "--full-every", "2"];
    let mut first = every.to_vec();
    first.extend(["--start", "2025-12-01"]);
    let rows_after = |doc: &Value| synced(doc, "Case")["rows"].as_u64().unwrap();
    assert_exit(&run(&url, &sync_args(out, "Case", &first)).await, 0);
    let once = rows_after(&status_json(&url, out));
    assert!(once > 0);
    assert_exit(&run(&url, &sync_args(out, "Case", &every)).await, 0);
    let doc = status_json(&url, out);
    assert_eq!(rows_after(&doc), 2 * once, "the 2nd sync re-read every row");
    assert_exit(&run(&url, &sync_args(out, "Case", &every)).await, 0);
    let doc = status_json(&url, out);
    assert_eq!(
        rows_after(&doc),
        2 * once,
        "the 3rd sync read only changes (none)"
    );
    assert_eq!(synced(&doc, "Case")["syncs"], 3);
    let got = newest_by_id(rows_of(dir.path(), "Case", "sync-"));
    let want = org_since(&url, "Case", fields_of("Case"), "2025-12-01T00:00:00Z").await;
    assert_eq!(got, want);
}

/// An in-process `sync` of Account and Case with the test's field lists, full-size steps and
/// the default lookback, whose summary the test reads.
fn sync_settings(url: &str, out: &Path, start: &str) -> SyncSettings {
    let ids = |names: &[&str]| -> Vec<Identifier> {
        names
            .iter()
            .map(|n| Identifier::parse(n).unwrap())
            .collect()
    };
    SyncSettings {
        connection: Connection {
            instance_url: url.to_string(),
            client_id: CLIENT_ID.into(),
            client_secret: Secret::new(CLIENT_SECRET.to_string()),
            api_version: "v62.0".into(),
        },
        limits: Limits {
            concurrency: 2,
            rate_limit: 1000,
            rate_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            max_api_usage: 75.0,
            batch_size: None,
        },
        objects: ids(&["Account", "Case"]),
        out: out.to_path_buf(),
        start: Some(start.parse().unwrap()),
        fields: BTreeMap::from([
            ("Account".into(), ids(&["Name", "LastModifiedDate"])),
            (
                "Case".into(),
                ids(&["Subject", "Status", "LastModifiedDate"]),
            ),
        ]),
        all_fields: false,
        cursor_field: None,
        lookback: chrono::Duration::minutes(5),
        // The fake org stamps changes to the second: a lag under one second could miss some.
        safety_lag: chrono::Duration::seconds(2),
        full_every: None,
        chunk_timezone: None,
        query_limit: None,
        include_deleted: false,
        max_query_uri_bytes: sfbackfill::salesforce::select::MAX_QUERY_URI_BYTES,
        step_rows: sfbackfill::sync::STEP_ROWS,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_across_a_year_holds_one_open_file_per_object() {
    let org = start_fake(FakeOrgConfig {
        faults: Faults {
            // Case's year times out whole: it is read in two ranges, one step across both.
            query_timeout_over: Some(30_000),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let start = "2025-01-01T00:00:00Z";
    let settings = sync_settings(&url, dir.path(), start);
    let summary = sfbackfill::cmd::sync::sync(&settings, std::future::pending())
        .await
        .unwrap();
    assert!(
        org.stats().by_status.get(&400).copied().unwrap_or(0) >= 1,
        "no range timed out"
    );
    org.set_faults(Faults::default());
    for object in &summary.objects {
        assert!(object.finished && object.error.is_none(), "{object:?}");
        assert!(
            object.files > 300,
            "{}: one file per day: {object:?}",
            object.object
        );
        assert_eq!(
            object.peak_open_files, 1,
            "{}: a day's file is finished when the next day's first row arrives",
            object.object
        );
    }
    // Later syncs re-read their last five minutes (the lookback): the changed rows' day gets
    // a new file each time, none replacing another.
    for _ in 0..2 {
        assert!(org.modify_rows(60) > 0);
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        let summary = sfbackfill::cmd::sync::sync(&settings, std::future::pending())
            .await
            .unwrap();
        assert!(summary.objects.iter().all(|o| o.finished), "{summary:?}");
    }
    let journal = std::fs::read_to_string(dir.path().join("_sfbackfill/sync.journal")).unwrap();
    let mut published = std::collections::BTreeSet::new();
    for line in journal.lines() {
        if let Ok(SyncEntry::Step { files, .. }) = serde_json::from_str(line) {
            for file in files {
                assert!(published.insert(file.clone()), "`{file}` published twice");
            }
        }
    }
    for object in ["Account", "Case"] {
        assert_eq!(
            parquet_files(dir.path(), object).len(),
            published
                .iter()
                .filter(|f| f.starts_with(&format!("{object}/")))
                .count()
        );
        let rows = rows_of(dir.path(), object, "sync-");
        let want = org_since(&url, object, fields_of(object), start).await;
        assert_eq!(newest_by_id(rows), want, "{object}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_whose_cursors_keep_dying_goes_on_while_it_makes_progress() {
    // Every few requests the org invalidates every open locator (an org maintenance): far more
    // expiries than the bound, each after some rows were read.
    let org = start_fake(FakeOrgConfig {
        faults: Faults {
            invalidate_cursors_every: Some(3),
            ..Faults::default()
        },
        ..FakeOrgConfig::default()
    })
    .await;
    let url = org.url();
    let since = "2025-11-01T00:00:00Z";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = run(&url, &sync_args(out, "Case", &["--start", since])).await;
    let expired = org.stats().by_status.get(&400).copied().unwrap_or(0);
    assert_exit(&o, 0);
    assert!(
        expired > 4,
        "only {expired} cursors died: the bound was never tested"
    );
    let got = rows_of(dir.path(), "Case", "sync-");
    assert_each_version_once(&got);
    let want = org_since(&url, "Case", fields_of("Case"), since).await;
    assert_eq!(newest_by_id(got), want);
}
