//! How fast the fake org serves: several clients page through a heavy query over loopback.
//!
//! The fake org must never be the bottleneck of the engine's benches, so this measures
//! records and requests served per second at scale 1 and 10, with every field of the widest
//! object selected. Clients read the raw bytes and find `nextRecordsUrl` with a string
//! search, so the figures are the server's cost plus HTTP, not a JSON parser's; records are
//! counted by the org itself (`Stats::records_served`).
//!
//! `cargo bench --bench fake_org` (optional: `FAKE_ORG_BENCH_CLIENTS=8`).

use std::time::{Duration, Instant};

use serde_json::Value;
use sfbackfill_fake_org::{FakeOrg, FakeOrgConfig};

mod common;
use common::token;

/// The object with the most fields and every field type.
const OBJECT: &str = "Invoice__c";
/// Concurrent clients paging at once; the engine's default concurrency is 4.
const DEFAULT_CLIENTS: usize = 4;

fn main() {
    let clients = std::env::var("FAKE_ORG_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CLIENTS);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "fake org serving speed: {clients} clients paging `SELECT <all fields> FROM {OBJECT}`"
    );
    for scale in [1, 10] {
        runtime.block_on(bench_scale(scale, clients));
    }
}

async fn bench_scale(scale: u32, clients: usize) {
    let started = Instant::now();
    let org = FakeOrg::start(FakeOrgConfig {
        scale,
        daily_api_max: u64::MAX / 2,
        ..Default::default()
    })
    .await
    .expect("fake org starts");
    let startup = started.elapsed();
    let http = common::http();
    let token = token(&http, &org.url()).await;
    let soql = all_fields_query(&http, &org.url(), &token).await;
    org.reset_stats();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, token, soql) = (http.clone(), org.url(), token.clone(), soql.clone());
            tokio::spawn(async move { page_through(&http, &url, &token, &soql).await })
        })
        .collect();
    let mut pages = 0u64;
    let mut bytes = 0u64;
    for task in tasks {
        let (p, b) = task.await.expect("client task");
        pages += p;
        bytes += b;
    }
    let elapsed = started.elapsed();
    let stats = org.stats();
    org.shutdown().await;
    assert_eq!(stats.by_kind["query"] + stats.by_kind["query_more"], pages);
    report(scale, startup, elapsed, stats.records_served, bytes, pages);
}

fn report(
    scale: u32,
    startup: Duration,
    elapsed: Duration,
    records: u64,
    bytes: u64,
    requests: u64,
) {
    let secs = elapsed.as_secs_f64();
    println!(
        "scale {scale:>2}: start {:>6.0} ms | {records:>8} records, {requests:>5} requests, {:>6.1} MB in {secs:>6.2} s | {:>9.0} records/s, {:>7.0} requests/s, {:>6.1} MB/s",
        startup.as_secs_f64() * 1000.0,
        bytes as f64 / 1e6,
        records as f64 / secs,
        requests as f64 / secs,
        bytes as f64 / 1e6 / secs,
    );
}

/// `SELECT` every non-compound field of [`OBJECT`], as a heavy backfill would.
async fn all_fields_query(http: &reqwest::Client, url: &str, token: &str) -> String {
    let describe: Value = http
        .get(format!(
            "{url}/services/data/v62.0/sobjects/{OBJECT}/describe"
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("describe request")
        .json()
        .await
        .expect("describe body");
    let fields: Vec<&str> = describe["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter(|f| !matches!(f["type"].as_str(), Some("address" | "location")))
        .filter_map(|f| f["name"].as_str())
        .collect();
    format!("SELECT {} FROM {OBJECT}", fields.join(", "))
}

/// Pages through the whole query; returns the pages and body bytes read.
async fn page_through(http: &reqwest::Client, url: &str, token: &str, soql: &str) -> (u64, u64) {
    let encoded: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
    let mut next = format!("{url}/services/data/v62.0/query?q={encoded}");
    let (mut pages, mut bytes) = (0u64, 0u64);
    loop {
        let response = http
            .get(&next)
            .bearer_auth(token)
            .send()
            .await
            .expect("page request");
        assert_eq!(response.status(), 200, "{next}");
        let body = response.bytes().await.expect("page body");
        bytes += body.len() as u64;
        pages += 1;
        match next_records_url(&body) {
            Some(path) => next = format!("{url}{path}"),
            None => return (pages, bytes),
        }
    }
}

/// The `nextRecordsUrl`, which the fake org writes before `records`.
fn next_records_url(body: &[u8]) -> Option<String> {
    let head = &body[..body.len().min(512)];
    let text = std::str::from_utf8(head).ok().or_else(|| {
        // A multi-byte character may straddle the cut; the URL is well before it.
        let valid = std::str::from_utf8(head).err()?.valid_up_to();
        std::str::from_utf8(&head[..valid]).ok()
    })?;
    let start = text.find("\"nextRecordsUrl\":\"")? + "\"nextRecordsUrl\":\"".len();
    let end = start + text[start..].find('"')?;
    Some(text[start..end].to_string())
}
