//! API thrift: a backfill costs close to the pages its rows need, counted at the org.

use serde_json::Value;

use crate::support::*;

use sfbackfill::app::DEMO_OBJECTS;

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
    let org = start_fake(sfbackfill::fake_org::FakeOrgConfig {
        faults: sfbackfill::fake_org::Faults {
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
