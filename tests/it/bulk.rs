//! Bulk API 2.0 query jobs end to end: the same Parquet as REST, `--api auto`'s choice, and
//! every way Bulk cannot serve falling back to REST with a note.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sfbackfill_fake_org::{
    BulkConfig, BulkFaults, FakeOrg, FakeOrgConfig, Faults, FieldSpec, FieldType,
};

use crate::support::*;

const OBJECTS: &[&str] = &[
    "Account",
    "Contact",
    "Opportunity",
    "Case",
    "Lead",
    "Invoice__c",
];

/// [`backfill_args`] through `--api api`.
pub(crate) fn args<'a>(
    out: &'a str,
    objects: &'a str,
    start: &'a str,
    end: &'a str,
    api: &'a str,
) -> Vec<&'a str> {
    let mut args = backfill_args(out, objects, start, end);
    args.extend(["--api", api]);
    args
}

async fn fake_with(faults: BulkFaults) -> FakeOrg {
    start_fake(FakeOrgConfig {
        bulk: BulkConfig {
            complete_after: Duration::from_millis(200),
            faults,
        },
        ..Default::default()
    })
    .await
}

/// Each day's file of `object`, as its rows by `Id`.
pub(crate) fn days(out: &Path, object: &str) -> Days {
    parquet_files(out, object)
        .into_iter()
        .map(|f| {
            let day = f
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (day, by_id(read_files(&[f])))
        })
        .collect()
}

pub(crate) type Days = BTreeMap<String, BTreeMap<String, Row>>;

/// The same days, each with the same rows and values; a difference is named, not dumped.
pub(crate) fn assert_same_days(got: &Days, want: &Days, what: &str) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: days"
    );
    for (day, rows) in want {
        let have = &got[day];
        assert_eq!(have.len(), rows.len(), "{what} {day}: row count");
        for (id, row) in rows {
            assert_eq!(have.get(id), Some(row), "{what} {day}: row {id}");
        }
    }
}

/// Reads `object` over the window through REST into a folder of its own.
pub(crate) async fn through_rest(
    url: &str,
    object: &str,
    start: &str,
    end: &str,
) -> BTreeMap<String, BTreeMap<String, Row>> {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        url,
        &args(dir.path().to_str().unwrap(), object, start, end, "rest"),
    )
    .await;
    assert_exit(&o, 0);
    days(dir.path(), object)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_and_rest_write_the_same_days_rows_and_values_for_every_object() {
    let org = fake_with(BulkFaults::default()).await;
    let url = org.url();
    let (start, end) = ("2025-09-10", "2025-09-24");
    for (object, extra) in OBJECTS
        .iter()
        .map(|o| (*o, None))
        .chain([("LoginHistory", Some("LoginTime"))])
    {
        let rest_dir = tempfile::tempdir().unwrap();
        let bulk_dir = tempfile::tempdir().unwrap();
        let mut rest_args = args(
            rest_dir.path().to_str().unwrap(),
            object,
            start,
            end,
            "rest",
        );
        // Small results pages and a small buffer: many pages, rows spilled to part files.
        let mut bulk_args = args(
            bulk_dir.path().to_str().unwrap(),
            object,
            start,
            end,
            "bulk",
        );
        bulk_args.extend(["--bulk-page-rows", "700", "--bulk-buffer-bytes", "200000"]);
        if let Some(cursor) = extra {
            rest_args.extend(["--cursor-field", cursor]);
            bulk_args.extend(["--cursor-field", cursor]);
        }
        assert_exit(&run(&url, &rest_args).await, 0);
        org.reset_stats();
        let o = run(&url, &bulk_args).await;
        assert_exit(&o, 0);
        assert!(
            stderr(&o).contains(&format!("{object} through bulk")),
            "{}",
            stderr(&o)
        );
        let stats = org.stats();
        assert_eq!(query_requests(&stats), 0, "{object}: no REST page was read");
        assert!(stats.bulk.result_pages > 0, "{object}: results were read");
        assert_eq!(stats.bulk.jobs_open, 0, "{object}: every job deleted");
        let (rest, bulk) = (days(rest_dir.path(), object), days(bulk_dir.path(), object));
        assert!(!rest.is_empty(), "{object} has rows in the window");
        assert_same_days(&bulk, &rest, object);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_that_fits_the_buffer_is_written_in_cursor_then_id_order_as_rest_writes_it() {
    let org = fake_with(BulkFaults::default()).await;
    let url = org.url();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for (dir, api) in dirs.iter().zip(["rest", "bulk"]) {
        let o = run(
            &url,
            &args(
                dir.path().to_str().unwrap(),
                "Case",
                "2025-09-16",
                "2025-09-18",
                api,
            ),
        )
        .await;
        assert_exit(&o, 0);
    }
    let order = |dir: &Path| -> Vec<String> {
        read_output(dir, "Case")
            .into_iter()
            .map(|r| r["Id"].clone())
            .collect()
    };
    assert_eq!(order(dirs[0].path()), order(dirs[1].path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_takes_bulk_for_the_heavy_object_and_rest_for_three_days_of_a_small_one() {
    let org = fake_with(BulkFaults::default()).await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    // Pages of 500 rows and results pages of 20,000: September's Case rows need two results
    // pages, so Bulk reads the month with two jobs side by side and still halves REST.
    let pages = ["--batch-size", "500", "--bulk-page-rows", "20000"];
    let mut plan = args(out, "Case", "2025-09-01", "2025-09-30", "auto");
    plan[0] = "plan";
    plan.extend(pages);
    let o = run(&url, &plan).await;
    assert_exit(&o, 0);
    let said = stdout(&o);
    let line = said
        .lines()
        .find(|l| l.starts_with("api: Case through bulk"))
        .unwrap_or_else(|| panic!("{said}"));
    // `… (N jobs)`: the plan cuts the month as the run will.
    let planned: u64 = line
        .rsplit('(')
        .next()
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let mut backfill = args(out, "Case", "2025-09-01", "2025-09-30", "auto");
    backfill.extend(pages);
    let o = run(&url, &backfill).await;
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("backfill: Case/2025-09-01..2025-09-30 through bulk: ~"),
        "{}",
        stderr(&o)
    );
    assert_eq!(org.stats().bulk.jobs_created, planned, "{line}");
    assert_eq!(planned, 2, "{line}");

    org.reset_stats();
    let created = org.stats().bulk.jobs_created;
    let small = tempfile::tempdir().unwrap();
    let small_out = small.path().to_str().unwrap();
    let mut plan = args(small_out, "Lead", "2025-03-03", "2025-03-05", "auto");
    plan[0] = "plan";
    let o = run(&url, &plan).await;
    assert!(
        stdout(&o).contains("api: Lead through rest"),
        "{}",
        stdout(&o)
    );
    let o = run(
        &url,
        &args(small_out, "Lead", "2025-03-03", "2025-03-05", "auto"),
    )
    .await;
    assert_exit(&o, 0);
    assert!(!stderr(&o).contains("through bulk"), "{}", stderr(&o));
    assert_eq!(
        org.stats().bulk.jobs_created,
        created,
        "no job for three small days"
    );
    assert_same_days(
        &days(small.path(), "Lead"),
        &through_rest(&url, "Lead", "2025-03-03", "2025-03-05").await,
        "Lead",
    );
}

/// Runs `--api bulk` for Lead over a fortnight with `faults`; asserts the note and that the
/// output equals REST's. Returns the fake org's Bulk counters.
async fn falls_back(
    faults: BulkFaults,
    extra: &[&str],
    note: &str,
) -> sfbackfill_fake_org::BulkStats {
    falls_back_in(
        faults,
        ("Lead", "2025-05-01", "2025-05-14"),
        "bulk",
        extra,
        note,
    )
    .await
}

/// [`falls_back`] for `object` over `start..=end` through `--api api`.
async fn falls_back_in(
    faults: BulkFaults,
    (object, start, end): (&str, &str, &str),
    api: &str,
    extra: &[&str],
    note: &str,
) -> sfbackfill_fake_org::BulkStats {
    let org = fake_with(faults).await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path().to_str().unwrap(), object, start, end, api);
    a.extend(extra);
    // Progress as log lines: the last one's rows must be the rows written, though rows a
    // given-up job read were reported on the way.
    *a.iter_mut().find(|v| **v == "off").unwrap() = "log";
    let o = run(&url, &a).await;
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains(note),
        "wanted `{note}` in:\n{}",
        stderr(&o)
    );
    let progress = stderr(&o);
    let last = progress
        .lines()
        .rfind(|l| l.starts_with("progress:"))
        .unwrap_or_else(|| panic!("{progress}"));
    let written = read_output(dir.path(), object).len();
    assert!(
        last.contains(&format!(" {written} rows,")),
        "{written} rows written: {last}"
    );
    let stats = org.stats().bulk;
    org.set_bulk_faults(BulkFaults::default());
    assert_same_days(
        &days(dir.path(), object),
        &through_rest(&url, object, start, end).await,
        object,
    );
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_the_org_will_not_serve_through_bulk_is_read_through_rest() {
    let stats = falls_back(
        BulkFaults {
            deny: vec!["Lead".into()],
            ..Default::default()
        },
        &[],
        "reading through REST instead of Bulk: the org refused the job",
    )
    .await;
    assert_eq!(stats.jobs_created, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_sends_its_days_to_rest() {
    let stats = falls_back(
        BulkFaults {
            fail_over: Some(0),
            ..Default::default()
        },
        &[],
        "QUERY_TIMEOUT",
    )
    .await;
    assert!(stats.jobs_created > 0);
    assert_eq!(stats.jobs_open, 0, "the failed job is deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_not_complete_within_bulk_wait_is_aborted_and_its_days_go_to_rest() {
    let stats = falls_back(
        BulkFaults {
            never_complete: vec!["Lead".into()],
            ..Default::default()
        },
        &["--bulk-wait", "1s"],
        "was not complete after 1s (--bulk-wait); aborted",
    )
    .await;
    assert!(stats.jobs_aborted > 0);
    assert_eq!(stats.jobs_open, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_deleted_under_the_reader_is_created_again_then_left_to_rest() {
    let stats = falls_back(
        BulkFaults {
            delete_after_pages: Some(1),
            ..Default::default()
        },
        &["--bulk-page-rows", "100"],
        "2 jobs were deleted while read",
    )
    .await;
    assert_eq!(stats.jobs_created, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compound_field_selected_is_read_through_rest() {
    let org = fake_with(BulkFaults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = run(
        &org.url(),
        &[
            "backfill",
            "--objects",
            "Account",
            "--fields",
            "Account=Id,LastModifiedDate,Name,BillingAddress",
            "--start",
            "2025-05-01",
            "--end",
            "2025-05-07",
            "--out",
            out,
            "--api",
            "bulk",
            "--progress",
            "off",
        ],
    )
    .await;
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains(
            "Account through rest: the compound field Account.BillingAddress is selected"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(org.stats().bulk.jobs_created, 0);
    assert!(!read_output(dir.path(), "Account").is_empty());
}

/// A `base64` field named in `--fields` keeps the object on REST (Bulk refuses binary fields:
/// the fake org answers a job selecting one as Salesforce does), and REST writes the blob's
/// URL, which is what query results carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base64_field_selected_is_read_through_rest() {
    let org = fake_with(BulkFaults::default()).await;
    org.add_field("Account", FieldSpec::new("Logo__c", FieldType::Base64))
        .unwrap();
    let refused = http()
        .post(format!("{}/services/data/v62.0/jobs/query", org.url()))
        .bearer_auth(token(&org.url()).await)
        .json(&serde_json::json!({
            "operation": "query",
            "query": "SELECT Id, Logo__c FROM Account",
            "contentType": "CSV",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body = refused.text().await.unwrap();
    assert!(body.contains("Binary field not supported"), "{body}");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let mut a = args(out, "Account", "2025-05-01", "2025-05-07", "bulk");
    a.extend(["--fields", "Account=Id,LastModifiedDate,Name,Logo__c"]);
    let o = run(&org.url(), &a).await;
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("Account through rest: the base64 field Account.Logo__c is selected"),
        "{}",
        stderr(&o)
    );
    assert_eq!(org.stats().bulk.jobs_created, 0);
    let got = days(dir.path(), "Account");
    let rows: Vec<&Row> = got.values().flat_map(|d| d.values()).collect();
    assert!(!rows.is_empty());
    for row in rows {
        let url = format!("{:?}", row.get("Logo__c"));
        assert!(
            url.contains("/sobjects/Account/") && url.contains("/Logo__c"),
            "{url}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_pages_cut_off_are_fetched_again_and_the_output_is_exact() {
    let org = fake_with(BulkFaults {
        cut_page_every: Some(3),
        ..Default::default()
    })
    .await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(
        dir.path().to_str().unwrap(),
        "Case",
        "2025-09-10",
        "2025-09-20",
        "bulk",
    );
    a.extend(["--bulk-page-rows", "500"]);
    let o = run(&url, &a).await;
    assert_exit(&o, 0);
    assert!(org.stats().bulk.pages_cut > 0, "pages were cut");
    org.set_bulk_faults(BulkFaults::default());
    assert_same_days(
        &days(dir.path(), "Case"),
        &through_rest(&url, "Case", "2025-09-10", "2025-09-20").await,
        "Case",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_aborts_and_deletes_the_running_job_and_leaves_its_days_pending() {
    let org = fake_with(BulkFaults {
        never_complete: vec!["Case".into()],
        ..Default::default()
    })
    .await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let a = args(
        dir.path().to_str().unwrap(),
        "Case",
        "2025-09-01",
        "2025-09-30",
        "bulk",
    );
    let mut child = spawn_sfbackfill(&url, &a);
    child
        .wait_for("a job polled", || {
            org.stats().by_kind.get("bulk_job").copied().unwrap_or(0) >= 2
        })
        .await;
    child.signal(libc::SIGTERM);
    let o = child.wait().await;
    assert_exit(&o, 3);
    let stats = org.stats().bulk;
    assert_eq!(
        (stats.jobs_created, stats.jobs_aborted),
        (1, 1),
        "{stats:?}"
    );
    assert_eq!(stats.jobs_open, 0, "the aborted job is deleted");
    assert!(parquet_files(dir.path(), "Case").is_empty());
    org.set_bulk_faults(BulkFaults::default());
    assert_exit(&run(&url, &a).await, 0);
    assert_same_days(
        &days(dir.path(), "Case"),
        &through_rest(&url, "Case", "2025-09-01", "2025-09-30").await,
        "Case",
    );
}

/// The Bulk journal's lines, parsed (a torn last line is left out).
fn bulk_journal(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("_sfbackfill/bulk.journal"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The last commit journaled: the job, and the rows read through its locator.
fn last_commit(out: &Path) -> Option<(String, u64)> {
    bulk_journal(out)
        .into_iter()
        .rev()
        .find(|e| e["kind"] == "committed")
        .map(|e| {
            (
                e["job"].as_str().unwrap().to_string(),
                e["rows"].as_u64().unwrap(),
            )
        })
}

/// Jobs journaled as created and not ended.
fn open_jobs(out: &Path) -> Vec<String> {
    let mut open = Vec::new();
    for e in bulk_journal(out) {
        let job = e["job"].as_str().unwrap_or_default().to_string();
        match e["kind"].as_str() {
            Some("job_created") => open.push(job),
            Some("job_ended") => open.retain(|j| *j != job),
            _ => {}
        }
    }
    open
}

/// Files in the folder of committed Bulk parts.
fn bulk_parts(out: &Path) -> usize {
    std::fs::read_dir(out.join("_sfbackfill/bulk-parts"))
        .map(|d| d.flatten().count())
        .unwrap_or(0)
}

/// A Case backfill through Bulk in small results pages and a small buffer, so it commits
/// every page or two, killed -9 once a commit is journaled; returns the org, the folder and
/// the arguments of the same command.
async fn killed_after_a_commit() -> (FakeOrg, tempfile::TempDir, Vec<String>) {
    let org = start_fake(FakeOrgConfig {
        faults: Faults {
            latency: Some(Duration::from_millis(40)),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let mut a = args(out, "Case", "2025-09-01", "2025-09-30", "bulk");
    a.extend(["--bulk-page-rows", "300", "--bulk-buffer-bytes", "100000"]);
    let a: Vec<String> = a.into_iter().map(String::from).collect();
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut child = spawn_sfbackfill(&url, &refs);
    child
        .wait_for("a commit journaled", || last_commit(dir.path()).is_some())
        .await;
    child.signal(libc::SIGKILL);
    child.wait().await;
    assert!(
        parquet_files(dir.path(), "Case").is_empty(),
        "the kill landed before the job's days were published"
    );
    (org, dir, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_results_download_reads_on_from_the_journaled_locator_with_the_same_job() {
    let (org, dir, a) = killed_after_a_commit().await;
    let url = org.url();
    let (job, committed) = last_commit(dir.path()).unwrap();
    let before = org.stats();
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = run(&url, &refs).await;
    assert_exit(&o, 0);
    let after = org.stats();
    assert_eq!(
        after.bulk.jobs_created, 1,
        "no second job: {:?}",
        after.bulk
    );
    assert_eq!(
        requests(&after, &["bulk_create"]) - requests(&before, &["bulk_create"]),
        0
    );
    org.set_faults(Faults::default());
    let got = days(dir.path(), "Case");
    let total: u64 = got.values().map(|d| d.len() as u64).sum();
    assert!(committed > 0 && committed < total, "{committed} of {total}");
    assert_eq!(
        after.bulk.rows_served - before.bulk.rows_served,
        total - committed,
        "the second run reads on after the {committed} rows committed, not from the start"
    );
    assert_same_days(
        &got,
        &through_rest(&url, "Case", "2025-09-01", "2025-09-30").await,
        "Case",
    );
    assert!(open_jobs(dir.path()).is_empty(), "job {job} ended");
    assert_eq!(after.bulk.jobs_open, 0, "job {job} deleted");
    assert_eq!(
        bulk_parts(dir.path()),
        0,
        "the parts are in the days' files"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_deleted_after_the_kill_is_replaced_by_a_new_job_for_the_pending_days() {
    let (org, dir, a) = killed_after_a_commit().await;
    let url = org.url();
    assert_eq!(org.delete_bulk_jobs(), 1);
    let before = org.stats();
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = run(&url, &refs).await;
    assert_exit(&o, 0);
    let after = org.stats();
    assert_eq!(after.bulk.jobs_created, 2, "{:?}", after.bulk);
    org.set_faults(Faults::default());
    let got = days(dir.path(), "Case");
    let total: u64 = got.values().map(|d| d.len() as u64).sum();
    assert_eq!(
        after.bulk.rows_served - before.bulk.rows_served,
        total,
        "the new job reads every pending day"
    );
    assert_same_days(
        &got,
        &through_rest(&url, "Case", "2025-09-01", "2025-09-30").await,
        "Case",
    );
    assert!(open_jobs(dir.path()).is_empty());
    assert_eq!(
        bulk_parts(dir.path()),
        0,
        "the lost job's parts are removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_by_the_query_limit_leaves_its_job_for_the_next_run_to_read_on() {
    let org = fake_with(BulkFaults::default()).await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let mut a = args(out, "Case", "2025-09-01", "2025-09-30", "bulk");
    a.extend(["--bulk-page-rows", "300", "--bulk-buffer-bytes", "100000"]);
    let mut limited = a.clone();
    limited.extend(["--query-limit", "12"]);
    let o = run(&url, &limited).await;
    assert_exit(&o, 3);
    let (job, committed) = last_commit(dir.path()).expect("a commit before the limit");
    assert_eq!(
        open_jobs(dir.path()),
        std::slice::from_ref(&job),
        "the job is left open"
    );
    assert_eq!(org.stats().bulk.jobs_open, 1, "and not deleted");
    let status = run(&url, &["status", "--out", out]).await;
    assert_exit(&status, 0);
    let row = format!("{job} ");
    let shown = stdout(&status);
    let line = shown
        .lines()
        .find(|l| l.starts_with(&row))
        .unwrap_or_else(|| panic!("status shows the open job:\n{shown}"));
    assert!(
        line.contains(" Case ") && line.contains(&format!(" {committed} ")),
        "{line}"
    );
    let json = run(&url, &["status", "--out", out, "--json"]).await;
    let doc: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(doc["bulk_jobs"][0]["id"], job.as_str());
    assert_eq!(doc["bulk_jobs"][0]["rows_committed"], committed);
    let page = dir.path().join("status.html");
    let html = run(
        &url,
        &["status", "--out", out, "--html", page.to_str().unwrap()],
    )
    .await;
    assert_exit(&html, 0);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains(&format!("data-bulk-job=\"{job}\"")), "{html}");
    let before = org.stats();
    assert_exit(&run(&url, &a).await, 0);
    let after = org.stats();
    assert_eq!(
        after.bulk.jobs_created, 1,
        "no second job: {:?}",
        after.bulk
    );
    let got = days(dir.path(), "Case");
    let total: u64 = got.values().map(|d| d.len() as u64).sum();
    assert_eq!(
        after.bulk.rows_served - before.bulk.rows_served,
        total - committed
    );
    assert_same_days(
        &got,
        &through_rest(&url, "Case", "2025-09-01", "2025-09-30").await,
        "Case",
    );
    assert!(open_jobs(dir.path()).is_empty());
    assert_eq!(bulk_parts(dir.path()), 0);
    let status = run(&url, &["status", "--out", out]).await;
    assert_exit(&status, 0);
    assert!(stdout(&status).contains("Case"), "{}", stdout(&status));
    assert!(
        !stdout(&status).contains("OPEN BULK JOB"),
        "{}",
        stdout(&status)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_reads_a_heavy_span_with_a_job_per_part_side_by_side() {
    let org = start_fake(FakeOrgConfig {
        bulk: BulkConfig {
            complete_after: Duration::from_millis(200),
            faults: BulkFaults::default(),
        },
        // REST pages of 200 rows: four jobs' creates, polls and deletes stay under half of
        // REST's requests for a month of Case.
        wide_page_size: Some(200),
        ..Default::default()
    })
    .await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let mut a = args(out, "Case", "2025-09-01", "2025-09-30", "auto");
    // Results pages of 3,000 rows: a month of Case is many pages, so one job per task.
    a.extend(["--bulk-page-rows", "3000"]);
    let o = run(&url, &a).await;
    assert_exit(&o, 0);
    assert!(stderr(&o).contains("(4 jobs)"), "{}", stderr(&o));
    assert_eq!(org.stats().bulk.jobs_created, 4);
    let windows: Vec<(String, String)> = bulk_journal(dir.path())
        .into_iter()
        .filter(|e| e["kind"] == "job_created")
        .map(|e| {
            let at = |k: &str| e[k].as_str().unwrap().to_string();
            (at("start"), at("end"))
        })
        .collect();
    let mut sorted = windows.clone();
    sorted.sort();
    assert_eq!(sorted.first().unwrap().0, "2025-09-01T00:00:00Z");
    assert_eq!(sorted.last().unwrap().1, "2025-10-01T00:00:00Z");
    assert!(
        sorted.windows(2).all(|w| w[0].1 == w[1].0),
        "the jobs' windows follow each other, none overlapping: {sorted:?}"
    );
    assert_same_days(
        &days(dir.path(), "Case"),
        &through_rest(&url, "Case", "2025-09-01", "2025-09-30").await,
        "Case",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_auto_a_failed_job_leaves_its_object_to_rest_for_the_run() {
    let failed = BulkFaults {
        fail_over: Some(0),
        ..Default::default()
    };
    let month = ("Case", "2025-09-01", "2025-09-30");
    let stats = falls_back_in(failed, month, "auto", &[], "QUERY_TIMEOUT").await;
    assert_eq!(
        stats.jobs_created, 1,
        "the REST span is not handed back to a new job"
    );
}
