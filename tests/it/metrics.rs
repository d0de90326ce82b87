//! The `--metrics-addr` endpoint, scraped mid-run: its counters against the fake org's own
//! counts and the journal's rows.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use sfbackfill_fake_org::{FakeOrgConfig, Faults};

use crate::support::*;

/// One scrape: each sample's name with its labels (as written) → value.
type Scrape = BTreeMap<String, f64>;

fn scrape(addr: &str) -> Option<Scrape> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    Some(
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
            .collect(),
    )
}

/// The sum of the samples of `name` whose labels include each of `labels` (`key="value"`).
fn sum(s: &Scrape, name: &str, labels: &[&str]) -> f64 {
    s.iter()
        .filter(|(k, _)| k.split('{').next() == Some(name))
        .filter(|(k, _)| labels.iter().all(|l| k.contains(l)))
        .map(|(_, v)| v)
        .sum()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Rows and days recorded done in the journal, per object.
fn journal_done(out: &Path) -> BTreeMap<String, (u64, u64, u64)> {
    let text = std::fs::read_to_string(out.join("_sfbackfill/backfill.journal")).unwrap();
    let mut done: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    // Read while the run writes: a batch of lines may be half written at its end.
    let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    for line in whole.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        if e["kind"] == "chunk_done" {
            let d = done
                .entry(e["object"].as_str().unwrap().to_string())
                .or_default();
            d.0 += 1;
            d.1 += e["rows"].as_u64().unwrap();
            d.2 += e["bytes"].as_u64().unwrap();
        }
    }
    done
}

const KINDS: [&str; 9] = [
    "token",
    "limits",
    "describe_global",
    "describe",
    "query",
    "query_more",
    "bulk_create",
    "bulk_job",
    "bulk_results",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_mid_run_agrees_with_the_fake_orgs_counts_and_the_journal() {
    let config = FakeOrgConfig::default();
    let daily_max = config.daily_api_max;
    let org = start_fake(config).await;
    org.set_faults(Faults {
        latency: Some(Duration::from_millis(20)),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut run = spawn_sfbackfill(
        &org.url(),
        &[
            "backfill",
            "--objects",
            "Account,Contact,Case",
            "--start",
            "2025-01-01",
            "--end",
            "2025-12-31",
            "--out",
            out,
            "--concurrency",
            "2",
            "--rate-limit",
            "1000",
            "--request-timeout",
            "3600",
            "--metrics-addr",
            &addr,
            "--progress",
            "off",
        ],
    );
    run.wait_for("some days done", || {
        scrape(&addr).is_some_and(|s| sum(&s, "sfbackfill_chunks_total", &[]) >= 3.0)
    })
    .await;
    // Every request from now on hangs in the org: the run stands still mid-way, its
    // answered requests and those in flight all counted on both sides.
    org.set_faults(Faults {
        latency: Some(Duration::from_secs(3600)),
        ..Faults::default()
    });
    // Days whose last request was answered are still being written: wait for the journal too.
    let mut last = (Scrape::new(), None);
    run.wait_for("the counts to agree", || {
        let Some(s) = scrape(&addr) else {
            return false;
        };
        let stats = org.stats();
        let written = journal_done(dir.path())
            .iter()
            .all(|(object, (days, _, _))| {
                let o = format!("object=\"{object}\"");
                sum(&s, "sfbackfill_chunks_total", &[&o, "state=\"done\""]) == *days as f64
            });
        let agree = KINDS.iter().all(|kind| {
            let k = format!("kind=\"{kind}\"");
            let ours = sum(&s, "sfbackfill_requests_total", &[&k])
                + sum(&s, "sfbackfill_requests_in_flight", &[&k]);
            ours == requests(&stats, &[kind]) as f64
        }) && sum(&s, "sfbackfill_requests_in_flight", &[]) == org.in_flight() as f64
            && org.in_flight() > 0
            && written;
        last = (s, Some(stats));
        agree
    })
    .await;
    let (s, stats) = (last.0, last.1.unwrap());
    assert!(stats.requests > 0);
    assert_eq!(
        sum(&s, "sfbackfill_requests_total", &["status=\"200\""]),
        stats.by_status.get(&200).copied().unwrap_or(0) as f64,
        "{s:?}"
    );
    assert_eq!(sum(&s, "sfbackfill_retries_total", &[]), 0.0);
    assert_eq!(sum(&s, "sfbackfill_api_usage_max", &[]), daily_max as f64);
    let used = sum(&s, "sfbackfill_api_usage_used", &[]);
    assert!(used > 0.0 && used <= stats.requests as f64, "{used}");

    // What it wrote: exactly the journal's done days, rows and bytes, per object.
    let journal = journal_done(dir.path());
    assert!(!journal.is_empty());
    for (object, (days, rows, bytes)) in &journal {
        let o = format!("object=\"{object}\"");
        assert_eq!(
            sum(&s, "sfbackfill_chunks_total", &[&o, "state=\"done\""]),
            *days as f64,
            "{object}"
        );
        assert_eq!(
            sum(&s, "sfbackfill_rows_written_total", &[&o]),
            *rows as f64
        );
        assert_eq!(
            sum(&s, "sfbackfill_bytes_written_total", &[&o]),
            *bytes as f64
        );
        assert_eq!(sum(&s, "sfbackfill_chunks_planned", &[&o]), 365.0);
    }
    assert_eq!(
        sum(&s, "sfbackfill_chunks_total", &["state=\"failed\""]),
        0.0
    );
    assert!(s.contains_key("sfbackfill_rate_limiter_wait_seconds_total"));
    assert!(s.contains_key("sfbackfill_offpeak_wait_seconds_total"));

    run.signal(libc::SIGINT);
    assert_exit(&run.wait().await, 3);
}

#[test]
fn a_bad_metrics_address_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = sfbackfill(
        "http://127.0.0.1:1",
        &[
            "backfill",
            "--objects",
            "Account",
            "--start",
            "2025-01-01",
            "--end",
            "2025-01-02",
            "--out",
            out,
            "--metrics-addr",
            "localhost",
        ],
    );
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("--metrics-addr `localhost` is not HOST:PORT"),
        "{err}"
    );
    assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waiting_for_its_window_says_so_having_sent_no_query() {
    let org = start_default_fake().await;
    let now = chrono::Utc::now();
    let hours = |h| {
        (now + chrono::Duration::hours(h))
            .format("%H:%M")
            .to_string()
    };
    let window = format!("{}-{}", hours(2), hours(3));
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut run = spawn_sfbackfill(
        &org.url(),
        &[
            "backfill",
            "--objects",
            "Account",
            "--start",
            "2025-01-01",
            "--end",
            "2025-01-31",
            "--out",
            dir.path().to_str().unwrap(),
            "--window",
            &window,
            "--window-tz",
            "UTC",
            "--metrics-addr",
            &addr,
            "--progress",
            "off",
        ],
    );
    let mut last = Scrape::new();
    run.wait_for("the run to wait for its window", || {
        let Some(s) = scrape(&addr) else {
            return false;
        };
        let stats = org.stats();
        let agree = KINDS.iter().all(|kind| {
            let k = format!("kind=\"{kind}\"");
            sum(&s, "sfbackfill_requests_total", &[&k]) == requests(&stats, &[kind]) as f64
        });
        let waiting = sum(&s, "sfbackfill_offpeak_waiting", &[]) == 1.0;
        last = s;
        agree && waiting && org.in_flight() == 0
    })
    .await;
    assert_eq!(query_requests(&org.stats()), 0);
    assert!(sum(&last, "sfbackfill_requests_total", &["kind=\"describe\""]) >= 1.0);
    assert_eq!(
        sum(&last, "sfbackfill_chunks_planned", &["object=\"Account\""]),
        31.0
    );
    assert_eq!(sum(&last, "sfbackfill_chunks_total", &[]), 0.0);
    run.signal(libc::SIGINT);
    assert_exit(&run.wait().await, 3);
}

/// Rows of the steps the sync journal records, per object.
fn sync_journal_rows(out: &Path) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(out.join("_sfbackfill/sync.journal")).unwrap_or_default();
    let mut rows: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        if e["kind"] == "step" {
            *rows
                .entry(e["object"].as_str().unwrap().to_string())
                .or_default() += e["rows"].as_u64().unwrap();
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_scraped_mid_run_counts_the_rows_its_journal_committed() {
    let org = start_default_fake().await;
    org.set_faults(Faults {
        latency: Some(Duration::from_millis(20)),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut run = spawn_sfbackfill(
        &org.url(),
        &[
            "sync",
            "--objects",
            "Account",
            "--start",
            "2025-01-01",
            "--out",
            dir.path().to_str().unwrap(),
            "--batch-size",
            "200",
            "--step-rows",
            "200",
            "--rate-limit",
            "1000",
            "--request-timeout",
            "3600",
            "--metrics-addr",
            &addr,
        ],
    );
    run.wait_for("some rows committed", || {
        scrape(&addr).is_some_and(|s| sum(&s, "sfbackfill_rows_written_total", &[]) > 0.0)
    })
    .await;
    org.set_faults(Faults {
        latency: Some(Duration::from_secs(3600)),
        ..Faults::default()
    });
    let mut last = Scrape::new();
    run.wait_for("the counts to agree", || {
        let Some(s) = scrape(&addr) else {
            return false;
        };
        let stats = org.stats();
        let agree = KINDS.iter().all(|kind| {
            let k = format!("kind=\"{kind}\"");
            sum(&s, "sfbackfill_requests_total", &[&k])
                + sum(&s, "sfbackfill_requests_in_flight", &[&k])
                == requests(&stats, &[kind]) as f64
        });
        let rows = sync_journal_rows(dir.path())
            .get("Account")
            .copied()
            .unwrap_or(0);
        let written =
            sum(&s, "sfbackfill_rows_written_total", &["object=\"Account\""]) == rows as f64;
        last = s;
        agree && written && org.in_flight() > 0
    })
    .await;
    assert!(
        sum(
            &last,
            "sfbackfill_bytes_written_total",
            &["object=\"Account\""]
        ) > 0.0
    );
    run.signal(libc::SIGINT);
    assert_exit(&run.wait().await, 3);
}
