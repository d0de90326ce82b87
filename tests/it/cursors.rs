//! Query locators that die mid-read, as after org maintenance: a backfill continues after the
//! last `(cursor, Id)` it holds and never reads a day again from its start.

use serde_json::Value;
use std::process::Output;

use crate::support::*;

use sfbackfill_fake_org::{FakeOrg, FakeOrgConfig, Faults};

/// The fake org's bulk-updated `Case` day: about 30,000 rows, 24,000 of them on 16:00:00.
const DAY: &str = "2025-09-17";
const DAY_SOQL: &str = "SELECT Id, LastModifiedDate, Subject, Status FROM Case WHERE LastModifiedDate >= 2025-09-17T00:00:00Z AND LastModifiedDate < 2025-09-18T00:00:00Z";
/// Every this many data requests the org invalidates every open locator: a few pages per
/// task between two invalidations at concurrency 4, about eight invalidations in the day.
const INVALIDATE_EVERY: u64 = 20;

const SUBJECT_AND_STATUS: &[&str] = &["--fields", "Case=Subject,Status"];

/// What one backfill of the heavy day did, counted at the org.
struct Run {
    output: Output,
    /// Query requests: first pages and next pages.
    sent: u64,
    /// `400`s: here only `INVALID_QUERY_LOCATOR` (no other fault is on).
    expired: u64,
    dir: tempfile::TempDir,
}

/// Backfills the heavy day with `select` (the field options) into a new folder.
async fn backfill_day(org: &FakeOrg, concurrency: &str, select: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let mut args = vec![
        "backfill",
        "--objects",
        "Case",
        "--start",
        DAY,
        "--end",
        DAY,
        "--chunk-timezone",
        "UTC",
        "--out",
        out,
        "--concurrency",
        concurrency,
        "--rate-limit",
        "1000",
        "--api",
        "rest",
        "--progress",
        "off",
    ];
    args.extend(select);
    let before = org.stats();
    let output = run(&org.url(), &args).await;
    let after = org.stats();
    let bad = |s: &sfbackfill_fake_org::Stats| s.by_status.get(&400).copied().unwrap_or(0);
    Run {
        output,
        sent: query_requests(&after) - query_requests(&before),
        expired: bad(&after) - bad(&before),
        dir,
    }
}

/// The `sfbackfill.soql` of a file: the queries that read it, one a line.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_day_whose_cursors_are_invalidated_every_few_pages_continues_exactly() {
    let org = start_fake(FakeOrgConfig {
        wide_page_size: Some(200),
        ..Default::default()
    })
    .await;
    let want = org_rows(&org.url(), "Case", DAY_SOQL).await;
    let pages = (want.len() as u64).div_ceil(200);
    assert!(pages > 100, "{pages} pages: not a heavy day");
    let want = by_id(want);
    for concurrency in ["1", "4"] {
        org.set_faults(Faults::default());
        let calm = backfill_day(&org, concurrency, SUBJECT_AND_STATUS).await;
        assert_exit(&calm.output, 0);
        assert_eq!(calm.expired, 0);
        org.set_faults(Faults {
            invalidate_cursors_every: Some(INVALIDATE_EVERY),
            ..Default::default()
        });
        let living = backfill_day(&org, concurrency, SUBJECT_AND_STATUS).await;
        org.set_faults(Faults::default());
        assert_exit(&living.output, 0);
        println!(
            "concurrency {concurrency}: {} pages; {} query requests without invalidation, \
             {} with ({} INVALID_QUERY_LOCATOR)",
            pages, calm.sent, living.sent, living.expired
        );
        assert!(
            living.expired >= 5,
            "concurrency {concurrency}: only {} cursors were lost",
            living.expired
        );
        // Each lost cursor costs at most two requests: the refused one, and the query for the
        // rest of the instant the read stopped in (one request when it is empty, else a
        // partial page more); the range from the next millisecond takes up the pages the lost
        // query still had. Nothing is read twice.
        assert!(
            living.sent <= calm.sent + 2 * living.expired + 4,
            "concurrency {concurrency}: {} query requests with {} lost cursors, {} without",
            living.sent,
            living.expired,
            calm.sent
        );

        // One file, exactly the org's rows, each once, in the order of the run whose cursors
        // lived: `(cursor, Id)`, or that within each sub-range when the day was cut (an `Id`
        // range spans its window's hours, and sub-ranges follow each other in the file).
        let files = parquet_files(living.dir.path(), "Case");
        assert_eq!(files.len(), 1, "{files:?}");
        let got = read_output(living.dir.path(), "Case");
        assert_eq!(got.len(), want.len(), "concurrency {concurrency}");
        let keys = |rows: &[Row]| -> Vec<(i64, String)> {
            rows.iter()
                .map(|r| (r["LastModifiedDate"].parse().unwrap(), r["Id"].clone()))
                .collect()
        };
        let calm_keys = keys(&read_output(calm.dir.path(), "Case"));
        let got_keys = keys(&got);
        assert!(
            got_keys == calm_keys,
            "concurrency {concurrency}: rows in another order"
        );
        let runs = 1 + got_keys.windows(2).filter(|w| w[0] >= w[1]).count();
        let queries = file_soql(&files[0]).lines().count();
        assert!(
            runs <= queries,
            "concurrency {concurrency}: {runs} ordered runs from {queries} sub-range queries"
        );
        if concurrency == "1" {
            assert_eq!(runs, 1, "rows out of (cursor, Id) order");
        }
        assert_eq!(by_id(got), want, "concurrency {concurrency}");
        // The file names the query that read its first rows: the day's, from its start.
        let soql = file_soql(&files[0]);
        assert!(
            soql.lines()
                .next()
                .is_some_and(|q| q.contains(">= 2025-09-17T00:00:00.000Z")),
            "{soql}"
        );
        let o = sfbackfill(
            &org.url(),
            &[
                "status",
                "--out",
                living.dir.path().to_str().unwrap(),
                "--json",
            ],
        );
        assert_exit(&o, 0);
        let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(doc["objects"][0]["chunks_done"], 1);
        assert_eq!(doc["objects"][0]["chunks_failed"], 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_day_read_in_field_groups_continues_every_group_from_one_position() {
    let org = start_fake(FakeOrgConfig {
        wide_page_size: Some(200),
        ..Default::default()
    })
    .await;
    // Every field, in groups of a few: each page of rows is one request per group.
    let select = ["--all-fields", "--max-query-uri-bytes", "500"];
    let calm = backfill_day(&org, "4", &select).await;
    assert_exit(&calm.output, 0);
    org.set_faults(Faults {
        invalidate_cursors_every: Some(INVALIDATE_EVERY),
        ..Default::default()
    });
    let living = backfill_day(&org, "4", &select).await;
    org.set_faults(Faults::default());
    assert_exit(&living.output, 0);

    // The groups of one query share its `WHERE`: the first sub-range's are the file's first
    // lines.
    let files = parquet_files(calm.dir.path(), "Case");
    assert_eq!(files.len(), 1, "{files:?}");
    let soql = file_soql(&files[0]);
    let filter = |q: &str| q.split_once(" WHERE ").map(|(_, w)| w.to_string());
    let first = filter(soql.lines().next().unwrap());
    let groups = soql.lines().filter(|q| filter(q) == first).count() as u64;
    assert!(groups >= 2, "the field list was not split: {soql}");
    println!(
        "{groups} field groups: {} query requests without invalidation, {} with ({} INVALID_QUERY_LOCATOR)",
        calm.sent, living.sent, living.expired
    );
    assert!(
        living.expired >= 5,
        "only {} cursors were lost",
        living.expired
    );
    // A lost cursor drops the rows the other groups fetched ahead (a page each at most) and
    // costs each group the rest of the instant, besides the refused request.
    assert!(
        living.sent <= calm.sent + (2 * groups + 1) * living.expired + 4,
        "{} query requests with {} lost cursors, {} without",
        living.sent,
        living.expired,
        calm.sent
    );
    // Every row whole (every group's columns), once, in the same order as without loss.
    let want = read_output(calm.dir.path(), "Case");
    let got = read_output(living.dir.path(), "Case");
    assert!(want.len() > 25_000, "{}", want.len());
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the rows differ from the run whose cursors lived"
    );
    // And both are the org's rows, not the same mistake twice.
    let fields = ["Id", "LastModifiedDate", "Subject", "Status"];
    let projected = got
        .into_iter()
        .map(|r| {
            r.into_iter()
                .filter(|(k, _)| fields.contains(&k.as_str()))
                .collect()
        })
        .collect();
    assert_eq!(
        by_id(projected),
        by_id(org_rows(&org.url(), "Case", DAY_SOQL).await)
    );
}
