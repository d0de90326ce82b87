//! API thrift: a backfill costs close to the pages its rows need, counted at the org.

use serde_json::Value;

use crate::support::*;

use sfbackfill::cmd::DEMO_OBJECTS;

/// Rows and rows per page of `soql` as the org serves it (its page size for these fields).
async fn rows_and_page_size(url: &str, soql: &str) -> (u64, u64) {
    let token = token(url).await;
    let page: Value = http()
        .get(format!(
            "{url}/services/data/v62.0/query?q={}",
            urlencode(soql)
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = page["totalSize"].as_u64().unwrap();
    let served = page["records"].as_array().unwrap().len() as u64;
    (
        rows,
        if page["done"].as_bool().unwrap() {
            rows.max(1)
        } else {
            served
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_backfill_sends_at_most_a_fifth_more_requests_than_its_rows_need() {
    let org = start_default_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let objects = DEMO_OBJECTS.join(",");
    let args = [
        "backfill",
        "--objects",
        &objects,
        "--start",
        "2025-06-01",
        "--end",
        "2025-06-30",
        "--out",
        out,
        "--all-fields",
        "--rate-limit",
        "1000",
        "--progress",
        "off",
    ];
    let before = org.stats();
    assert_exit(&run(&org.url(), &args).await, 0);
    let after = org.stats();
    let kinds = ["query", "query_more", "describe"];
    let sent = requests(&after, &kinds) - requests(&before, &kinds);

    let mut floor = 0;
    for object in DEMO_OBJECTS {
        let fields: Vec<String> = read_output(dir.path(), object)[0].keys().cloned().collect();
        let soql = format!(
            "SELECT {} FROM {object} WHERE LastModifiedDate >= 2025-06-01T00:00:00Z AND LastModifiedDate < 2025-07-01T00:00:00Z",
            fields.join(", ")
        );
        let (rows, page) = rows_and_page_size(&org.url(), &soql).await;
        assert_eq!(
            read_output(dir.path(), object).len() as u64,
            rows,
            "{object}"
        );
        floor += rows.div_ceil(page) + 1;
    }
    let ratio = sent as f64 / floor as f64;
    assert!(
        ratio <= 1.2,
        "{sent} requests against a lower bound of {floor} ({ratio:.2})"
    );
    // A day's file names the query that really read it: the month's, not a per-day one.
    let file = dir.path().join("Lead/date=2025-06-10/part-00000.parquet");
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(file).unwrap())
            .unwrap();
    let meta = parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap();
    let soql = meta
        .iter()
        .find(|kv| kv.key == "sfbackfill.soql")
        .and_then(|kv| kv.value.clone())
        .unwrap();
    assert!(
        soql.contains(">= 2025-06-01T00:00:00.000Z") && soql.contains("< 2025-07-01T00:00:00.000Z"),
        "{soql}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_with_a_heavy_day_is_cut_into_parts_and_stays_near_the_floor() {
    let org = start_default_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = [
        "backfill",
        "--objects",
        "Case",
        "--fields",
        "Case=Subject,Status",
        "--start",
        "2025-01-01",
        "--end",
        "2025-12-31",
        "--out",
        out,
        "--rate-limit",
        "1000",
        "--concurrency",
        "4",
        "--api",
        "rest",
        "--progress",
        "off",
    ];
    let before = org.stats();
    assert_exit(&run(&org.url(), &args).await, 0);
    let after = org.stats();
    let firsts = requests(&after, &["query"]) - requests(&before, &["query"]);
    let sent =
        requests(&after, &["query", "query_more"]) - requests(&before, &["query", "query_more"]);
    let soql = "SELECT Id, LastModifiedDate, Subject, Status FROM Case WHERE LastModifiedDate >= 2025-01-01T00:00:00Z AND LastModifiedDate < 2026-01-01T00:00:00Z";
    let (rows, page) = rows_and_page_size(&org.url(), soql).await;
    let floor = rows.div_ceil(page);
    assert!(
        firsts >= 3,
        "a large year was not cut into parts ({firsts} first pages)"
    );
    assert!(
        firsts < 365 / 4,
        "{firsts} first pages: close to one query per day"
    );
    assert!(
        sent as f64 <= floor as f64 * 1.2,
        "{sent} query requests against a floor of {floor}"
    );
    assert_eq!(read_output(dir.path(), "Case").len() as u64, rows);
    let o = sfbackfill(&org.url(), &["status", "--out", out, "--json"]);
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        doc["objects"][0]["chunks_done"], 365,
        "the manifest's unit stays the day"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_timeout_narrows_the_range_and_the_run_still_completes() {
    let org = start_fake(sfbackfill_fake_org::FakeOrgConfig {
        faults: sfbackfill_fake_org::Faults {
            query_timeout_over: Some(300),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = [
        "backfill",
        "--objects",
        "Opportunity",
        "--fields",
        "Opportunity=Name",
        "--start",
        "2025-06-01",
        "--end",
        "2025-06-30",
        "--out",
        out,
        "--rate-limit",
        "1000",
        "--progress",
        "off",
    ];
    let o = run(&org.url(), &args).await;
    assert_exit(&o, 0);
    assert!(
        org.stats().by_status.get(&400).copied().unwrap_or(0) > 0,
        "no query timed out"
    );
    org.set_faults(Default::default());
    let want = by_id(
        org_rows(
            &org.url(),
            "Opportunity",
            "SELECT Id, LastModifiedDate, Name FROM Opportunity WHERE LastModifiedDate >= 2025-06-01T00:00:00Z AND LastModifiedDate < 2025-07-01T00:00:00Z",
        )
        .await,
    );
    assert!(want.len() > 300);
    assert_eq!(by_id(read_output(dir.path(), "Opportunity")), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_predicts_the_requests_a_backfill_then_sends() {
    let org = start_default_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let out = out.to_str().unwrap();
    let window = [
        "--start",
        "2025-01-01",
        "--end",
        "2025-12-31",
        "--out",
        out,
        "--rate-limit",
        "1000",
    ];
    let mut plan_args = vec!["plan", "--objects", "Account,Lead"];
    plan_args.extend(window);
    let o = run(&org.url(), &plan_args).await;
    assert_exit(&o, 0);
    assert!(
        !std::path::Path::new(out).exists(),
        "plan wrote to the output folder"
    );
    let text = stdout(&o);
    let predicted: u64 = text
        .split("about ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no total in {text}"));
    let mut backfill_args = vec!["backfill", "--objects", "Account,Lead", "--progress", "off"];
    backfill_args.extend(window);
    let before = org.stats();
    assert_exit(&run(&org.url(), &backfill_args).await, 0);
    let kinds = ["query", "query_more", "describe"];
    let sent = requests(&org.stats(), &kinds) - requests(&before, &kinds);
    assert!(
        sent.abs_diff(predicted) <= 2,
        "plan said {predicted}, the backfill sent {sent}"
    );
}

/// The `sfbackfill.soql` of a day's file.
fn file_soql(path: &std::path::Path) -> String {
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path).unwrap())
            .unwrap();
    parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|kv| kv.key == "sfbackfill.soql").cloned())
        .and_then(|kv| kv.value)
        .unwrap_or_default()
}

/// Backfills `Case` on the heavy day 2025-09-17 cut at `zone`'s midnights, against an org
/// serving 200 rows a page (so that its hours outside the bulk update's second hold over 10
/// pages each side); returns the first pages sent, all query requests, and the output folder.
async fn heavy_day(
    zone: &str,
    start: &str,
    end: &str,
) -> (u64, u64, tempfile::TempDir, sfbackfill_fake_org::FakeOrg) {
    let org = start_fake(sfbackfill_fake_org::FakeOrgConfig {
        wide_page_size: Some(200),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = [
        "backfill",
        "--objects",
        "Case",
        "--fields",
        "Case=Subject,Status",
        "--start",
        start,
        "--end",
        end,
        "--chunk-timezone",
        zone,
        "--out",
        out,
        "--concurrency",
        "4",
        "--rate-limit",
        "1000",
        "--api",
        "rest",
        "--progress",
        "off",
    ];
    let before = org.stats();
    assert_exit(&run(&org.url(), &args).await, 0);
    let after = org.stats();
    let firsts = requests(&after, &["query"]) - requests(&before, &["query"]);
    let sent = query_requests(&after) - query_requests(&before);
    (firsts, sent, dir, org)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_day_is_read_in_sub_ranges_side_by_side_into_one_file() {
    for (zone, start, end) in [
        ("UTC", "2025-09-17T00:00:00Z", "2025-09-18T00:00:00Z"),
        // A zoned day crosses a UTC midnight: its hours come from two UTC dates.
        (
            "America/New_York",
            "2025-09-17T04:00:00Z",
            "2025-09-18T04:00:00Z",
        ),
    ] {
        let (firsts, sent, dir, org) = heavy_day(zone, "2025-09-17", "2025-09-17").await;
        let soql = format!(
            "SELECT Id, LastModifiedDate, Subject, Status FROM Case WHERE LastModifiedDate >= {start} AND LastModifiedDate < {end}"
        );
        let want = by_id(org_rows(&org.url(), "Case", &soql).await);
        let (rows, page) = rows_and_page_size(&org.url(), &soql).await;
        assert_eq!(page, 200);
        assert!(rows > 25_000, "{rows}");
        // The whole day's query, the count by hour, and at least one sub-range query more.
        assert!(
            firsts >= 3,
            "{zone}: the heavy day was read by {firsts} queries (count included)"
        );
        assert!(
            sent as f64 <= rows.div_ceil(page) as f64 * 1.05,
            "{zone}: {sent} query requests for {} pages",
            rows.div_ceil(page)
        );
        // One file for the day, holding exactly the org's rows, naming every sub-range query.
        let files = parquet_files(dir.path(), "Case");
        assert_eq!(files.len(), 1, "{zone}: {files:?}");
        assert!(files[0].ends_with("date=2025-09-17/part-00000.parquet"));
        assert_eq!(by_id(read_output(dir.path(), "Case")), want, "{zone}");
        let queries = file_soql(&files[0]);
        // The count by hour, then one query per sub-range (and, for the id ranges, two
        // one-row queries for the hour's first and last id).
        assert!(
            (queries.lines().count() as u64) < firsts,
            "{zone}: the file names each query that read it: {queries}"
        );
        // 24,000 rows share 16:00:00: no cut between hours shares them out, ids do.
        let id_ranges = queries.lines().filter(|q| q.contains(" AND Id ")).count();
        assert!(
            id_ranges >= 2,
            "{zone}: the bulk-updated second was not read in id ranges: {queries}"
        );
        assert!(
            queries
                .lines()
                .next()
                .is_some_and(|q| q.contains(&format!(">= {}", &start[..19]))),
            "{queries}"
        );
        // Nothing left in staging, and the manifest still counts one day.
        let staging = sfbackfill::backfill::staging_dir(dir.path());
        let left: Vec<_> = std::fs::read_dir(&staging)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{zone}: staged files left: {left:?}");
        let o = sfbackfill(
            &org.url(),
            &["status", "--out", dir.path().to_str().unwrap(), "--json"],
        );
        let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(doc["objects"][0]["chunks_done"], 1, "{zone}");
        assert_eq!(doc["objects"][0]["rows"], rows, "{zone}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_opening_on_the_bulk_updated_second_is_read_in_id_ranges_from_its_first_query() {
    // The window's first hour holds the 24,000 rows that share 16:00:00, so the task that
    // read the first page must drop its unfiltered query and read its own id range.
    let (start, end) = ("2025-09-17T16:00:00Z", "2025-09-18T00:00:00Z");
    let (firsts, _, dir, org) = heavy_day("UTC", start, end).await;
    let soql = format!(
        "SELECT Id, LastModifiedDate, Subject, Status FROM Case WHERE LastModifiedDate >= {start} AND LastModifiedDate < {end}"
    );
    let want = by_id(org_rows(&org.url(), "Case", &soql).await);
    assert!(want.len() > 24_000, "{}", want.len());
    let files = parquet_files(dir.path(), "Case");
    assert_eq!(files.len(), 1, "{files:?}");
    let got = read_output(dir.path(), "Case");
    assert_eq!(got.len(), want.len(), "a row written twice");
    assert_eq!(by_id(got), want);
    let queries = file_soql(&files[0]);
    let first = queries.lines().next().unwrap_or_default();
    assert!(
        first.contains(">= 2025-09-17T16:00:00") && first.contains(" AND Id < '"),
        "the first sub-range is not an id range: {queries}"
    );
    assert!((queries.lines().count() as u64) < firsts, "{queries}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_that_refuses_aggregates_still_gets_a_plan_and_an_exact_heavy_day() {
    let org = start_fake(sfbackfill_fake_org::FakeOrgConfig {
        refuse_aggregates: true,
        wide_page_size: Some(200),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let window = [
        "--objects",
        "Case",
        "--fields",
        "Case=Subject,Status",
        "--start",
        "2025-09-17",
        "--end",
        "2025-09-17",
        "--out",
        out,
        "--concurrency",
        "4",
        "--rate-limit",
        "1000",
    ];
    let o = run(&org.url(), &[&["plan"][..], &window].concat()).await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("would not count rows per day for Case"),
        "{}",
        stdout(&o)
    );
    let o = run(
        &org.url(),
        &[&["backfill"][..], &window, &["--progress", "off"]].concat(),
    )
    .await;
    assert_exit(&o, 0);
    assert!(
        org.stats().by_status.get(&400).copied().unwrap_or(0) > 0,
        "no aggregate was refused"
    );
    let want = org_rows(
        &org.url(),
        "Case",
        "SELECT Id, LastModifiedDate, Subject, Status FROM Case WHERE LastModifiedDate >= 2025-09-17T00:00:00Z AND LastModifiedDate < 2025-09-18T00:00:00Z",
    )
    .await;
    let got = read_output(dir.path(), "Case");
    assert_eq!(got.len(), want.len(), "rows lost or written twice");
    assert_eq!(by_id(got), by_id(want));
}
