//! The backfill end to end: the real binary against the fake org over loopback HTTP.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::*;

use sfbackfill::cmd::DEMO_OBJECTS as OBJECTS;

/// The fields the output holds for `object`, from its first file's schema.
fn output_fields(out: &Path, object: &str) -> Vec<String> {
    let rows = read_output(out, object);
    rows.first()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default()
}

async fn expected(
    url: &str,
    object: &str,
    fields: &[String],
    start: &str,
    end: &str,
) -> BTreeMap<String, Row> {
    let soql = format!(
        "SELECT {} FROM {object} WHERE LastModifiedDate >= {start} AND LastModifiedDate < {end}",
        fields.join(", ")
    );
    by_id(org_rows(url, object, &soql).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_of_every_seeded_object_equals_the_orgs_rows() {
    let org = start_default_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let objects = OBJECTS.join(",");
    let o = run(
        &org.url(),
        &backfill_args(out, &objects, "2025-01-01", "2025-12-31"),
    )
    .await;
    assert_exit(&o, 0);
    for object in OBJECTS {
        let fields = output_fields(dir.path(), object);
        assert!(fields.contains(&"Id".to_string()), "{object} has output");
        let got = by_id(read_output(dir.path(), object));
        let want = expected(
            &org.url(),
            object,
            &fields,
            "2025-01-01T00:00:00Z",
            "2026-01-01T00:00:00Z",
        )
        .await;
        assert_eq!(got.len(), want.len(), "{object}: row count");
        for (id, row) in &want {
            assert_eq!(got.get(id), Some(row), "{object} {id}");
        }
    }
    let login = run(
        &org.url(),
        &[
            "backfill",
            "--objects",
            "LoginHistory",
            "--cursor-field",
            "LoginTime",
            "--start",
            "2025-01-01",
            "--end",
            "2025-12-31",
            "--out",
            out,
            "--rate-limit",
            "1000",
            "--progress",
            "off",
        ],
    )
    .await;
    assert_exit(&login, 0);
    assert!(!read_output(dir.path(), "LoginHistory").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_fetches_nothing() {
    let org = start_default_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = backfill_args(out, "Account,Opportunity", "2025-03-01", "2025-03-31");
    assert_exit(&run(&org.url(), &args).await, 0);
    let before = org.stats();
    assert_exit(&run(&org.url(), &args).await, 0);
    let after = org.stats();
    assert_eq!(
        query_requests(&after),
        query_requests(&before),
        "a rerun sent query requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_by_the_query_limit_resumes_to_the_same_output() {
    let org = start_default_fake().await;
    let stopped = tempfile::tempdir().unwrap();
    let unbroken = tempfile::tempdir().unwrap();
    let (s, u) = (
        stopped.path().to_str().unwrap(),
        unbroken.path().to_str().unwrap(),
    );
    let before = org.stats();
    assert_exit(
        &run(
            &org.url(),
            &backfill_args(u, "Account,Case", "2025-06-10", "2025-06-25"),
        )
        .await,
        0,
    );
    let after = org.stats();
    let needed = query_requests(&after) - query_requests(&before);
    assert!(needed >= 2, "the window needs {needed} query requests");
    let limit = (needed / 2).to_string();
    let mut limited = backfill_args(s, "Account,Case", "2025-06-10", "2025-06-25");
    limited.extend(["--query-limit", &limit]);
    let o = run(&org.url(), &limited).await;
    assert_exit(&o, 3);
    assert!(stderr(&o).contains("query limit"), "{}", stderr(&o));
    assert_eq!(
        stderr(&o)
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1
    );
    assert_exit(
        &run(
            &org.url(),
            &backfill_args(s, "Account,Case", "2025-06-10", "2025-06-25"),
        )
        .await,
        0,
    );
    for object in ["Account", "Case"] {
        assert_eq!(
            by_id(read_output(stopped.path(), object)),
            by_id(read_output(unbroken.path(), object))
        );
        let names = |p: &Path| {
            parquet_files(p, object)
                .into_iter()
                .map(|f| f.strip_prefix(p).unwrap().to_path_buf())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(stopped.path()), names(unbroken.path()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repull_of_one_week_replaces_only_that_weeks_files() {
    use std::os::unix::fs::MetadataExt;
    let org = start_default_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    assert_exit(
        &run(
            &org.url(),
            &backfill_args(out, "Account", "2025-03-01", "2025-03-31"),
        )
        .await,
        0,
    );
    let inodes = |p: &Path| -> BTreeMap<String, u64> {
        parquet_files(p, "Account")
            .into_iter()
            .map(|f| {
                (
                    f.to_string_lossy().into_owned(),
                    std::fs::metadata(&f).unwrap().ino(),
                )
            })
            .collect()
    };
    let before = inodes(dir.path());
    let mut repull = backfill_args(out, "Account", "2025-03-10", "2025-03-16");
    repull.push("--repull");
    assert_exit(&run(&org.url(), &repull).await, 0);
    let after = inodes(dir.path());
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (file, ino) in &before {
        let in_week =
            ("10"..="16").contains(&&file[file.find("date=2025-03-").unwrap() + 13..][..2]);
        assert_eq!(after[file] != *ino, in_week, "{file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_cursor_over_existing_chunks_is_refused_but_another_field_list_is_followed() {
    let org = start_default_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    assert_exit(
        &run(
            &org.url(),
            &backfill_args(out, "Account", "2025-03-01", "2025-03-03"),
        )
        .await,
        0,
    );
    let later = |extra: &'static [&'static str]| {
        let mut args = vec![
            "backfill",
            "--objects",
            "Account",
            "--start",
            "2025-03-01",
            "--end",
            "2025-03-05",
            "--out",
            out,
            "--rate-limit",
            "1000",
            "--progress",
            "off",
        ];
        args.extend_from_slice(extra);
        args
    };
    let o = run(&org.url(), &later(&["--cursor-field", "SystemModstamp"])).await;
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("already holds `Account` chunks written with cursor"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--repull"), "{}", stderr(&o));

    // Another field list follows "Schema drift": the dropped fields leave later files.
    let o = run(&org.url(), &later(&["--fields", "Account=Name"])).await;
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("`Phone`, `Fax`, `Website`")
            && stderr(&o).contains("are no longer selected: later files lack them"),
        "{}",
        stderr(&o)
    );
    let file = dir
        .path()
        .join("Account/date=2025-03-05/part-00000.parquet");
    let columns = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(file).unwrap(),
    )
    .unwrap()
    .schema()
    .fields()
    .iter()
    .map(|f| f.name().clone())
    .collect::<Vec<_>>();
    assert_eq!(columns, ["Id", "LastModifiedDate", "Name"]);
    let status = sfbackfill(&org.url(), &["status", "--out", out]);
    let text = stdout(&status);
    assert!(
        text.contains("`Phone`, `Rating`") && text.contains("not selected since"),
        "{text}"
    );
    assert!(text.contains(": files written since lack them"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_done_chunks_rows_and_bytes() {
    let org = start_default_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    assert_exit(
        &run(
            &org.url(),
            &backfill_args(out, "Opportunity", "2025-04-01", "2025-04-30"),
        )
        .await,
        0,
    );
    let o = sfbackfill(&org.url(), &["status", "--out", out, "--json"]);
    assert_exit(&o, 0);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let opp = &doc["objects"][0];
    assert_eq!(opp["object"], "Opportunity");
    assert_eq!(opp["chunks_done"], 30);
    assert_eq!(opp["chunks_pending"], 0);
    let rows = read_output(dir.path(), "Opportunity").len() as u64;
    assert_eq!(opp["rows"].as_u64().unwrap(), rows);
    assert!(opp["bytes"].as_u64().unwrap() > 0);
}

fn slow_org_config() -> sfbackfill_fake_org::FakeOrgConfig {
    sfbackfill_fake_org::FakeOrgConfig {
        faults: sfbackfill_fake_org::Faults {
            latency: Some(std::time::Duration::from_millis(40)),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Waits until the output holds at least one finished day, so a signal lands mid-run.
async fn wait_for_first_file(child: &mut Running, out: &Path, object: &str) {
    child
        .wait_for("the first file", || !parquet_files(out, object).is_empty())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_with_exit_3_and_the_rerun_completes_exactly() {
    let org = start_fake(slow_org_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = backfill_args(out, "Account", "2025-02-01", "2025-04-30");
    let mut child = spawn_sfbackfill(&org.url(), &args);
    wait_for_first_file(&mut child, dir.path(), "Account").await;
    child.signal(libc::SIGTERM);
    let o = child.wait().await;
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("run the same command again"),
        "{}",
        stderr(&o)
    );
    org.set_faults(Default::default());
    assert_exit(&run(&org.url(), &args).await, 0);
    let fields = output_fields(dir.path(), "Account");
    let got = by_id(read_output(dir.path(), "Account"));
    let want = expected(
        &org.url(),
        "Account",
        &fields,
        "2025-02-01T00:00:00Z",
        "2025-05-01T00:00:00Z",
    )
    .await;
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_backfill_on_the_same_folder_is_refused_naming_the_first() {
    let org = start_fake(slow_org_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let mut first = spawn_sfbackfill(
        &org.url(),
        &backfill_args(out, "Account", "2025-02-01", "2025-04-30"),
    );
    wait_for_first_file(&mut first, dir.path(), "Account").await;
    let o = run(
        &org.url(),
        &backfill_args(out, "Contact", "2025-02-01", "2025-02-03"),
    )
    .await;
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains(&format!("pid {}", first.id())),
        "{}",
        stderr(&o)
    );
    first.signal(libc::SIGINT);
    let o = first.wait().await;
    assert_exit(&o, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_window_with_exit_outside_window_exits_3_without_a_request() {
    use chrono::Timelike;
    let org = start_default_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let hour = (chrono::Utc::now().hour() + 3) % 24;
    let window = format!("{hour:02}:00-{:02}:00", (hour + 1) % 24);
    let mut args = backfill_args(out, "Account", "2025-03-01", "2025-03-02");
    args.extend([
        "--window",
        &window,
        "--window-tz",
        "UTC",
        "--exit-outside-window",
    ]);
    let o = run(&org.url(), &args).await;
    assert_exit(&o, 3);
    assert!(
        stderr(&o).contains("outside the off-peak windows"),
        "{}",
        stderr(&o)
    );
    assert_eq!(org.stats().requests, 0, "a request was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_list_too_long_for_one_url_is_split_and_joined_by_id() {
    let org = start_default_fake().await;
    let split = tempfile::tempdir().unwrap();
    let whole = tempfile::tempdir().unwrap();
    let mut args = backfill_args(
        split.path().to_str().unwrap(),
        "Invoice__c",
        "2025-05-01",
        "2025-05-20",
    );
    // Field groups are REST's: a Bulk job's query goes in a POST body.
    args.extend(["--max-query-uri-bytes", "500", "--api", "rest"]);
    let before = org.stats();
    assert_exit(&run(&org.url(), &args).await, 0);
    let split_queries = requests(&org.stats(), &["query"]) - requests(&before, &["query"]);
    let before = org.stats();
    assert_exit(
        &run(
            &org.url(),
            &[
                &backfill_args(
                    whole.path().to_str().unwrap(),
                    "Invoice__c",
                    "2025-05-01",
                    "2025-05-20",
                )[..],
                &["--api", "rest"],
            ]
            .concat(),
        )
        .await,
        0,
    );
    let whole_queries = requests(&org.stats(), &["query"]) - requests(&before, &["query"]);
    assert!(
        split_queries >= 2 * whole_queries,
        "the field list was not split ({split_queries} vs {whole_queries})"
    );
    let (a, b) = (
        by_id(read_output(split.path(), "Invoice__c")),
        by_id(read_output(whole.path(), "Invoice__c")),
    );
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_named_in_other_case_resumes_the_same_folder() {
    let org = start_default_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let mut args = backfill_args(out, "Account", "2025-03-01", "2025-03-03");
    args.extend(["--cursor-field", "lastmodifieddate"]);
    assert_exit(&run(&org.url(), &args).await, 0);
    // The same command again: the folder recorded the cursor as Salesforce spells it.
    let again = run(&org.url(), &args).await;
    assert_exit(&again, 0);
    assert!(
        stderr(&again).contains("0 chunks done"),
        "{}",
        stderr(&again)
    );
}
