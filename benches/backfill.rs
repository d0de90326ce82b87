//! End to end against the in-process fake org: API thrift and rate-bound wall time.
//!
//! Part 1 (thrift) backfills a window (default: the 2025 year) of six objects with
//! `--all-fields`, concurrency 4 and no effective rate limit, at ×10 scale, through the
//! library (`sfbackfill::cmd::backfill`). It reports the rows, the requests the org counted
//! (`query` + `query_more` + `describe`), the lower bound (per object `ceil(rows / page) + 1`,
//! with the page size the org actually serves for the selected fields, found by asking it),
//! the naive one-query-per-day plan (`Σ days max(1, ceil(rows_day / page)) + 1`, from a
//! `GROUP BY DAY_ONLY(LastModifiedDate)` sent to the org), wall time, records/s and CPU.
//!
//! CPU: the org runs in this process on its own runtime, whose threads are named
//! [`ORG_THREAD`]; their CPU (from `/proc/self/task/*/stat`) is subtracted from
//! `getrusage(RUSAGE_SELF)` so the engine's figure is the engine's alone.
//!
//! Part 2 (rate-bound) backfills a month at scale 1 with a rate limit of 10 per second and
//! compares the wall time with `requests / rate`, every request the org saw counted (the
//! token and `limits` requests pass the same gate as the queries).
//!
//! Part 3 (heavy days) reads one heavy day, concurrency-bound: the org answers every request
//! after `SFB_BENCH_LATENCY_MS` (20) and serves 200 rows a page. Each day is read at
//! concurrency 4, where a day above 10 pages is counted by hour and cut into sub-ranges read
//! side by side, and at concurrency 1, where it is read by one query as every day was before
//! the cut (a single day was one reader at any concurrency). Days: `Case` 2025-09-17 at
//! scale 1 (the bulk update: 80 % of its rows share one second) and `Account` 2025-06-11 at
//! `SFB_BENCH_SPREAD_SCALE` (100), a day whose rows spread over its hours. Checked: the rows
//! written equal the org's, and each day is one file.
//!
//! Part 4 (sparse, not run by default) backfills a year of `Account` and `Contact` at scale 2,
//! every field: most day files hold a few hundred rows, so the engine's CPU per record there
//! includes the fixed cost of a file.
//!
//! Part 5 (slow, not run by default) backfills the same year against an org that answers every
//! request after `SFB_BENCH_SLOW_MS` (500): at concurrency 4 and 8 without a rate limit, whose
//! bound is requests × latency / concurrency, and at concurrency 4 with the default rate limit,
//! whose bound is requests / rate.
//!
//! `cargo bench --bench backfill`. `SFB_BENCH_PARTS` picks parts (`thrift,rate,heavy` by
//! default; `sparse` and `slow` on demand). Overrides: `SFB_BENCH_SCALE` (10), `SFB_BENCH_START` /
//! `SFB_BENCH_END` (2025-01-01 / 2025-12-31, inclusive days), `SFB_BENCH_RATE_START` /
//! `SFB_BENCH_RATE_END` (2025-03-01 / 2025-03-31), `SFB_BENCH_RATE` (10 per second).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sfbackfill::backfill::{Reporter, RunSummary};
use sfbackfill::cmd;
use sfbackfill::config::cli::ProgressMode;
use sfbackfill::config::{BackfillSettings, Connection, Limits};
use sfbackfill::plan::{self, Bound};
use sfbackfill::salesforce::soql::Identifier;
use sfbackfill::secret::Secret;
use sfbackfill_fake_org::{FakeOrg, FakeOrgConfig, Stats};

use sfbackfill::cmd::DEMO_OBJECTS as OBJECTS;

mod common;
use common::{API, query, token};
/// The name of the fake org's runtime threads (workers and blocking pool).
const ORG_THREAD: &str = "fake-org";

/// Follows nothing: the bench reads the summary and the org's counters.
struct Quiet;
impl Reporter for Quiet {}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a valid value")),
        Err(_) => default,
    }
}

fn main() {
    let scale: u32 = env_or("SFB_BENCH_SCALE", 10);
    let start: NaiveDate = env_or("SFB_BENCH_START", date("2025-01-01"));
    let end: NaiveDate = env_or("SFB_BENCH_END", date("2025-12-31"));
    let rate_start: NaiveDate = env_or("SFB_BENCH_RATE_START", date("2025-03-01"));
    let rate_end: NaiveDate = env_or("SFB_BENCH_RATE_END", date("2025-03-31"));
    let rate: u32 = env_or("SFB_BENCH_RATE", 10);
    assert!(start <= end && rate_start <= rate_end && rate > 0);

    let engine = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sfb-engine")
        .build()
        .expect("engine runtime");
    // The org's own runtime; blocking threads kept alive so their CPU stays readable.
    let org_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(ORG_THREAD)
        .thread_keep_alive(Duration::from_secs(3600))
        .build()
        .expect("org runtime");

    let parts: String = env_or("SFB_BENCH_PARTS", "thrift,rate,heavy".to_string());
    let parts: Vec<&str> = parts.split(',').collect();
    if parts.contains(&"thrift") && parts.contains(&"rate") {
        let thrift = thrift(&engine, &org_runtime, scale, start, end);
        let bound = rate_bound(&engine, &org_runtime, rate, rate_start, rate_end);
        print_report(
            scale, start, end, &thrift, rate, rate_start, rate_end, &bound,
        );
    }
    if parts.contains(&"heavy") {
        let latency = Duration::from_millis(env_or("SFB_BENCH_LATENCY_MS", 20));
        let spread_scale: u32 = env_or("SFB_BENCH_SPREAD_SCALE", 100);
        let days = [
            heavy_day(
                &engine,
                &org_runtime,
                1,
                "Case",
                date("2025-09-17"),
                latency,
            ),
            heavy_day(
                &engine,
                &org_runtime,
                spread_scale,
                "Account",
                date("2025-06-11"),
                latency,
            ),
        ];
        print_heavy_days(&days, latency);
    }
    if parts.contains(&"sparse") {
        let year = sparse_year(&engine, &org_runtime, start, end);
        print_sparse_year(&year, start, end);
    }
    if parts.contains(&"slow") {
        let latency = Duration::from_millis(env_or("SFB_BENCH_SLOW_MS", 500));
        let runs = slow_responses(&engine, &org_runtime, start, end, latency);
        print_slow_responses(&runs, latency, start, end);
    }
}

/// The objects and scale of the sparse-year and slow-response parts: a year of `Account` and
/// `Contact` at twice the demo density, every field (issue "Speed per core").
const SPARSE_OBJECTS: [&str; 2] = ["Account", "Contact"];
const SPARSE_SCALE: u32 = 2;

fn sparse_settings(url: String, out: &Path, start: NaiveDate, end: NaiveDate) -> BackfillSettings {
    let mut settings = settings(url, out, start, end, 100_000);
    settings.objects = SPARSE_OBJECTS
        .iter()
        .map(|o| Identifier::parse(o).expect("object name"))
        .collect();
    settings
}

/// Engine CPU per record on sparse days: most day files hold a few hundred rows, so the
/// per-file cost weighs as much as the per-row cost.
fn sparse_year(
    engine: &tokio::runtime::Runtime,
    org_runtime: &tokio::runtime::Runtime,
    start: NaiveDate,
    end: NaiveDate,
) -> Run {
    let (org, _) = start_org(org_runtime, SPARSE_SCALE);
    let dir = tempfile::tempdir().expect("temp dir");
    let run = run_backfill(
        engine,
        &org,
        &sparse_settings(org.url(), dir.path(), start, end),
    );
    let written: u64 = SPARSE_OBJECTS
        .iter()
        .map(|o| output_fields_and_rows(dir.path(), o).1)
        .sum();
    assert_eq!(
        written, run.summary.rows,
        "rows written against the summary"
    );
    org_runtime.block_on(org.shutdown());
    run
}

fn print_sparse_year(run: &Run, start: NaiveDate, end: NaiveDate) {
    let engine_cpu = run.cpu_total - run.cpu_org;
    let engine_sys = run.sys_total - run.sys_org;
    let rows = run.summary.rows;
    let files = run.summary.chunks_done.max(1) as f64;
    println!(
        "## Sparse year: {start} .. {end}, {}, --all-fields, scale {SPARSE_SCALE}, concurrency 4, no rate limit\n",
        SPARSE_OBJECTS.join(" + ")
    );
    println!(
        "| rows | day files | wall | engine CPU (user + system) | records per engine CPU-second | per file: user, system |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.2} s | {engine_cpu:.2} s ({:.2} + {engine_sys:.2}) | {} | {:.0} µs, {:.0} µs |\n",
        thousands(rows),
        thousands(run.summary.chunks_done),
        run.wall.as_secs_f64(),
        engine_cpu - engine_sys,
        thousands((rows as f64 / engine_cpu) as u64),
        (engine_cpu - engine_sys) * 1e6 / files,
        engine_sys * 1e6 / files,
    );
}

/// Round trips one after another before a span can be cut (see [`print_slow_responses`]).
const PLAN_ROUND_TRIPS: u32 = 6;

/// One backfill against an org that answers every request after the same latency.
struct SlowRun {
    concurrency: usize,
    rate: Option<u32>,
    rows: u64,
    requests: u64,
    wall: Duration,
}

/// The sparse year against an org answering every request after `latency`: at two
/// concurrencies without a rate limit (bound: requests × latency / concurrency) and at the
/// default rate (bound: requests / rate).
fn slow_responses(
    engine: &tokio::runtime::Runtime,
    org_runtime: &tokio::runtime::Runtime,
    start: NaiveDate,
    end: NaiveDate,
    latency: Duration,
) -> Vec<SlowRun> {
    let default_rate = sfbackfill::config::DEFAULT_RATE_LIMIT;
    [(4, None), (8, None), (4, Some(default_rate))]
        .into_iter()
        .map(|(concurrency, rate)| {
            let org = org_runtime
                .block_on(FakeOrg::start(FakeOrgConfig {
                    scale: SPARSE_SCALE,
                    daily_api_max: u64::MAX / 2,
                    faults: sfbackfill_fake_org::Faults {
                        latency: Some(latency),
                        ..Default::default()
                    },
                    ..Default::default()
                }))
                .expect("fake org starts");
            let dir = tempfile::tempdir().expect("temp dir");
            let mut settings = sparse_settings(org.url(), dir.path(), start, end);
            settings.limits.concurrency = concurrency;
            settings.limits.rate_limit = rate.unwrap_or(100_000);
            let run = run_backfill(engine, &org, &settings);
            org_runtime.block_on(org.shutdown());
            SlowRun {
                concurrency,
                rate,
                rows: run.summary.rows,
                requests: run.after.requests - run.before.requests,
                wall: run.wall,
            }
        })
        .collect()
}

fn print_slow_responses(runs: &[SlowRun], latency: Duration, start: NaiveDate, end: NaiveDate) {
    println!(
        "## Slow responses: {start} .. {end}, {}, --all-fields, scale {SPARSE_SCALE}, every response after {} ms\n",
        SPARSE_OBJECTS.join(" + "),
        latency.as_millis()
    );
    // Round trips in a row before an object's first cut: sign-in, `limits`, `describeGlobal`,
    // the describes (side by side), the first page, the count by day.
    let plan = PLAN_ROUND_TRIPS as f64 * latency.as_secs_f64();
    println!(
        "| concurrency | rate limit | rows | requests (all, at the org) | bound | wall | wall / bound | wall / (bound + {PLAN_ROUND_TRIPS} round trips) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in runs {
        let by_latency = r.requests as f64 * latency.as_secs_f64() / r.concurrency as f64;
        let by_rate = r
            .rate
            .map_or(0.0, |rate| r.requests as f64 / f64::from(rate));
        let (bound, which) = match by_rate > by_latency {
            true => (by_rate, "requests / rate"),
            false => (by_latency, "requests × latency / concurrency"),
        };
        let wall = r.wall.as_secs_f64();
        println!(
            "| {} | {} | {} | {} | {bound:.2} s ({which}) | {wall:.2} s | {:.2} | {:.2} |",
            r.concurrency,
            r.rate.map_or("none".to_string(), |r| format!("{r}/s")),
            thousands(r.rows),
            r.requests,
            wall / bound,
            wall / (bound + plan)
        );
    }
    println!();
}

/// One heavy day read at several concurrencies.
struct HeavyDay {
    object: &'static str,
    day: NaiveDate,
    scale: u32,
    rows: u64,
    /// Per concurrency: the run, its first pages (`query`, count queries included) and all
    /// query requests.
    runs: Vec<(usize, Run, u64, u64)>,
}

fn heavy_day(
    engine: &tokio::runtime::Runtime,
    org_runtime: &tokio::runtime::Runtime,
    scale: u32,
    object: &'static str,
    day: NaiveDate,
    latency: Duration,
) -> HeavyDay {
    let org = org_runtime
        .block_on(FakeOrg::start(FakeOrgConfig {
            scale,
            daily_api_max: u64::MAX / 2,
            wide_page_size: Some(200),
            faults: sfbackfill_fake_org::Faults {
                latency: Some(latency),
                ..Default::default()
            },
            ..Default::default()
        }))
        .expect("fake org starts");
    let mut runs = Vec::new();
    let mut rows = 0;
    for concurrency in [1, 4] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = settings(org.url(), dir.path(), day, day, 100_000);
        settings.objects = vec![Identifier::parse(object).expect("object name")];
        settings.limits.concurrency = concurrency;
        let run = run_backfill(engine, &org, &settings);
        let firsts = kinds(&run.after, &["query"]) - kinds(&run.before, &["query"]);
        let queries = kinds(&run.after, &["query", "query_more"])
            - kinds(&run.before, &["query", "query_more"]);
        let (_, written) = output_fields_and_rows(dir.path(), object);
        let files = std::fs::read_dir(dir.path().join(object).join(format!("date={day}")))
            .expect("the day's folder")
            .count();
        assert_eq!(files, 1, "{object} {day}: one file for the day");
        rows = engine.block_on(async {
            let http = common::http();
            let token = token(&http, &org.url()).await;
            let soql = format!(
                "SELECT COUNT() FROM {object} WHERE LastModifiedDate >= {day}T00:00:00Z AND LastModifiedDate < {}T00:00:00Z",
                day + Days::new(1)
            );
            query(&http, &org.url(), &token, &soql).await["totalSize"]
                .as_u64()
                .expect("a count")
        });
        assert_eq!(
            written, rows,
            "{object} {day}: rows written against the org's"
        );
        runs.push((concurrency, run, firsts, queries));
    }
    org_runtime.block_on(org.shutdown());
    HeavyDay {
        object,
        day,
        scale,
        rows,
        runs,
    }
}

fn print_heavy_days(days: &[HeavyDay], latency: Duration) {
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    println!(
        "\n## Heavy days: one day, `--all-fields`, 200 rows a page, {} ms per request ({profile} profile)\n",
        latency.as_millis()
    );
    println!(
        "| object, day, scale | rows | pages | concurrency | first queries (counts included) | query requests | wall |"
    );
    println!("|---|---|---|---|---|---|---|");
    for d in days {
        for (concurrency, run, firsts, queries) in &d.runs {
            println!(
                "| `{}` {} ×{} | {} | {} | {concurrency} | {firsts} | {queries} | {:.2} s |",
                d.object,
                d.day,
                d.scale,
                thousands(d.rows),
                d.rows.div_ceil(200),
                run.wall.as_secs_f64()
            );
        }
    }
}

fn date(s: &str) -> NaiveDate {
    s.parse().expect("a date")
}

fn start_org(org_runtime: &tokio::runtime::Runtime, scale: u32) -> (FakeOrg, Duration) {
    let started = Instant::now();
    let org = org_runtime
        .block_on(FakeOrg::start(FakeOrgConfig {
            scale,
            daily_api_max: u64::MAX / 2,
            ..Default::default()
        }))
        .expect("fake org starts");
    (org, started.elapsed())
}

fn settings(
    url: String,
    out: &Path,
    start: NaiveDate,
    end: NaiveDate,
    rate_limit: u32,
) -> BackfillSettings {
    let config = FakeOrgConfig::default();
    let utc = plan::parse_zone("UTC").expect("UTC");
    BackfillSettings {
        connection: Connection {
            instance_url: url,
            client_id: config.client_id.clone(),
            client_secret: Secret::new(config.client_secret.clone()),
            api_version: API.into(),
        },
        limits: Limits {
            concurrency: 4,
            rate_limit,
            rate_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(120),
            max_api_usage: 75.0,
            batch_size: None,
        },
        objects: OBJECTS
            .iter()
            .map(|o| Identifier::parse(o).expect("object name"))
            .collect(),
        start: Some(plan::parse_instant(&start.to_string(), Bound::Start, utc).expect("start")),
        end: Some(plan::parse_instant(&end.to_string(), Bound::End, utc).expect("end")),
        safety_lag: sfbackfill::config::DEFAULT_SAFETY_LAG,
        chunk_timezone: utc,
        out: out.to_path_buf(),
        fields: BTreeMap::new(),
        all_fields: true,
        cursor_field: Identifier::parse("LastModifiedDate").expect("cursor"),
        query_limit: None,
        include_deleted: false,
        repull: false,
        offpeak: None,
        exit_outside_window: false,
        max_query_uri_bytes: sfbackfill::salesforce::select::MAX_QUERY_URI_BYTES,
        progress: ProgressMode::Off,
        api: sfbackfill::plan::api::ApiMode::Rest,
        bulk: sfbackfill::backfill::BulkSettings::default(),
    }
}

/// One run of the library's backfill, with the org's counters and the CPU around it.
struct Run {
    summary: RunSummary,
    wall: Duration,
    /// Process CPU (user + system) during the run.
    cpu_total: f64,
    /// CPU of the org's threads during the run.
    cpu_org: f64,
    /// The system (kernel) part of each: file creation, fsync, renames, sockets.
    sys_total: f64,
    sys_org: f64,
    before: Stats,
    after: Stats,
}

fn run_backfill(
    engine: &tokio::runtime::Runtime,
    org: &FakeOrg,
    settings: &BackfillSettings,
) -> Run {
    let before = org.stats();
    let (cpu0, org0) = (process_cpu(), threads_cpu(ORG_THREAD));
    let (sys0, org_sys0) = (process_cpu_sys(), threads_cpu_sys(ORG_THREAD));
    let started = Instant::now();
    let summary = engine
        .block_on(cmd::backfill::backfill(
            settings,
            Arc::new(Quiet),
            std::future::pending(),
        ))
        .unwrap_or_else(|f| panic!("backfill failed: {}", f.message));
    let wall = started.elapsed();
    let (cpu1, org1) = (process_cpu(), threads_cpu(ORG_THREAD));
    let (sys1, org_sys1) = (process_cpu_sys(), threads_cpu_sys(ORG_THREAD));
    let after = org.stats();
    assert_eq!(summary.chunks_failed, 0, "chunks failed");
    assert!(summary.stopped.is_none(), "the run stopped early");
    Run {
        summary,
        wall,
        cpu_total: cpu1 - cpu0,
        cpu_org: org1 - org0,
        sys_total: sys1 - sys0,
        sys_org: org_sys1 - org_sys0,
        before,
        after,
    }
}

fn kinds(stats: &Stats, kinds: &[&str]) -> u64 {
    kinds
        .iter()
        .map(|k| stats.by_kind.get(*k).copied().unwrap_or(0))
        .sum()
}

struct ObjectFigures {
    object: &'static str,
    rows: u64,
    /// Rows per page the org serves for the selected fields (the rows, when one page holds all).
    page: u64,
    /// Whether the whole window fits in one page (so the page size is only known to be ≥ rows).
    one_page: bool,
    floor: u64,
    naive: u64,
}

struct Thrift {
    startup: Duration,
    run: Run,
    objects: Vec<ObjectFigures>,
    /// `query` + `query_more` the org counted.
    queries: u64,
    describes: u64,
}

fn thrift(
    engine: &tokio::runtime::Runtime,
    org_runtime: &tokio::runtime::Runtime,
    scale: u32,
    start: NaiveDate,
    end: NaiveDate,
) -> Thrift {
    let (org, startup) = start_org(org_runtime, scale);
    let dir = tempfile::tempdir().expect("temp dir");
    let run = run_backfill(
        engine,
        &org,
        &settings(org.url(), dir.path(), start, end, 100_000),
    );
    let queries =
        kinds(&run.after, &["query", "query_more"]) - kinds(&run.before, &["query", "query_more"]);
    let describes = kinds(&run.after, &["describe"]) - kinds(&run.before, &["describe"]);
    assert_eq!(
        run.summary.query_requests, queries,
        "the engine's and the org's query counts differ"
    );

    let url = org.url();
    let objects = engine.block_on(async {
        let http = common::http();
        let token = token(&http, &url).await;
        let mut figures = Vec::new();
        for &object in OBJECTS {
            let (fields, written) = output_fields_and_rows(dir.path(), object);
            let range = format!(
                "LastModifiedDate >= {}T00:00:00Z AND LastModifiedDate < {}T00:00:00Z",
                start,
                end + Days::new(1)
            );
            let select = format!("SELECT {} FROM {object} WHERE {range}", fields.join(", "));
            let (rows, page, one_page) = rows_and_page_size(&http, &url, &token, &select).await;
            assert_eq!(
                written, rows,
                "{object}: rows written against rows in the org"
            );
            let per_day = rows_per_day(&http, &url, &token, object, &range).await;
            assert_eq!(per_day.values().sum::<u64>(), rows, "{object}: day counts");
            let mut naive = 1; // the describe
            let mut day = start;
            while day <= end {
                naive += per_day
                    .get(&day)
                    .copied()
                    .unwrap_or(0)
                    .div_ceil(page)
                    .max(1);
                day = day + Days::new(1);
            }
            figures.push(ObjectFigures {
                object,
                rows,
                page,
                one_page,
                floor: rows.div_ceil(page) + 1,
                naive,
            });
        }
        figures
    });
    assert_eq!(
        objects.iter().map(|o| o.rows).sum::<u64>(),
        run.summary.rows,
        "rows in the summary"
    );
    org_runtime.block_on(org.shutdown());
    Thrift {
        startup,
        run,
        objects,
        queries,
        describes,
    }
}

struct RateBound {
    run: Run,
    requests: u64,
    by_kind: BTreeMap<String, u64>,
}

fn rate_bound(
    engine: &tokio::runtime::Runtime,
    org_runtime: &tokio::runtime::Runtime,
    rate: u32,
    start: NaiveDate,
    end: NaiveDate,
) -> RateBound {
    let (org, _) = start_org(org_runtime, 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let run = run_backfill(
        engine,
        &org,
        &settings(org.url(), dir.path(), start, end, rate),
    );
    let requests = run.after.requests - run.before.requests;
    let by_kind = run
        .after
        .by_kind
        .iter()
        .map(|(k, n)| {
            (
                k.clone(),
                n - run.before.by_kind.get(k).copied().unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    // The org is fresh and nothing else talked to it: its peak is the engine's.
    assert!(
        run.after.peak_per_second <= u64::from(rate),
        "{} requests in one second against a limit of {rate}",
        run.after.peak_per_second
    );
    org_runtime.block_on(org.shutdown());
    RateBound {
        run,
        requests,
        by_kind,
    }
}

/// Column names (the selected fields) and row count of an object's Parquet output.
fn output_fields_and_rows(out: &Path, object: &str) -> (Vec<String>, u64) {
    let mut fields: Option<Vec<String>> = None;
    let mut rows = 0u64;
    let Ok(days) = std::fs::read_dir(out.join(object)) else {
        panic!("{object}: no output folder");
    };
    for day in days.flatten() {
        for file in std::fs::read_dir(day.path()).expect("day folder").flatten() {
            if !file.file_name().to_string_lossy().ends_with(".parquet") {
                continue;
            }
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file.path()).unwrap())
                    .expect("a Parquet file");
            rows += builder.metadata().file_metadata().num_rows() as u64;
            let names: Vec<String> = builder
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            match &fields {
                None => fields = Some(names),
                Some(seen) => assert_eq!(seen, &names, "{object}: files disagree on columns"),
            }
        }
    }
    (
        fields.unwrap_or_else(|| panic!("{object}: no Parquet file")),
        rows,
    )
}

/// Rows of `soql`, rows per page as the org serves it (its page size for these fields), and
/// whether one page held them all.
async fn rows_and_page_size(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    soql: &str,
) -> (u64, u64, bool) {
    let page = query(http, url, token, soql).await;
    let rows = page["totalSize"].as_u64().expect("totalSize");
    let served = page["records"].as_array().expect("records").len() as u64;
    let done = page["done"].as_bool().expect("done");
    let page_size = if done { rows.max(1) } else { served };
    (rows, page_size, done)
}

/// Rows per UTC day in `range`, from the org's `GROUP BY DAY_ONLY(LastModifiedDate)`.
async fn rows_per_day(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    object: &str,
    range: &str,
) -> BTreeMap<NaiveDate, u64> {
    let soql = format!(
        "SELECT DAY_ONLY(LastModifiedDate) d, COUNT(Id) n FROM {object} WHERE {range} GROUP BY DAY_ONLY(LastModifiedDate)"
    );
    let page = query(http, url, token, &soql).await;
    assert_eq!(page["done"], true, "{object}: day counts span pages");
    page["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                date(r["d"].as_str().expect("d")),
                r["n"].as_u64().expect("n"),
            )
        })
        .collect()
}

/// User + system CPU seconds of the whole process so far.
fn process_cpu() -> f64 {
    let (user, sys) = rusage_self();
    user + sys
}

/// System CPU seconds of the whole process so far.
fn process_cpu_sys() -> f64 {
    rusage_self().1
}

fn rusage_self() -> (f64, f64) {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(usage.ru_utime), secs(usage.ru_stime))
}

/// User + system CPU seconds of this process's live threads whose name starts with `prefix`.
fn threads_cpu(prefix: &str) -> f64 {
    let (user, sys) = threads_ticks(prefix);
    user + sys
}

/// System CPU seconds of this process's live threads whose name starts with `prefix`.
fn threads_cpu_sys(prefix: &str) -> f64 {
    threads_ticks(prefix).1
}

/// User and system CPU seconds of this process's live threads whose name starts with `prefix`.
fn threads_ticks(prefix: &str) -> (f64, f64) {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let (mut user, mut sys) = (0u64, 0u64);
    for task in std::fs::read_dir("/proc/self/task")
        .expect("/proc")
        .flatten()
    {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        // `pid (comm) state ...`: the name may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // Fields 14 and 15 (utime, stime); `rest[0]` is field 3.
        let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        user += field(14).unwrap_or(0);
        sys += field(15).unwrap_or(0);
    }
    (user as f64 / ticks, sys as f64 / ticks)
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn print_report(
    scale: u32,
    start: NaiveDate,
    end: NaiveDate,
    t: &Thrift,
    rate: u32,
    rate_start: NaiveDate,
    rate_end: NaiveDate,
    b: &RateBound,
) {
    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    let rows: u64 = t.objects.iter().map(|o| o.rows).sum();
    let floor: u64 = t.objects.iter().map(|o| o.floor).sum();
    let naive: u64 = t.objects.iter().map(|o| o.naive).sum();
    let sent = t.queries + t.describes;
    let wall = t.run.wall.as_secs_f64();
    let engine_cpu = t.run.cpu_total - t.run.cpu_org;

    println!(
        "## API thrift: {start} .. {end}, 6 objects, --all-fields, scale {scale}, concurrency 4, no rate limit ({profile} profile)\n"
    );
    println!("| object | rows | page | naive: one query per day | lower bound |");
    println!("|---|---|---|---|---|");
    for o in &t.objects {
        println!(
            "| `{}` | {} | {} | {} | {} |",
            o.object,
            thousands(o.rows),
            if o.one_page {
                format!("≥ {} (one page)", thousands(o.page))
            } else {
                thousands(o.page)
            },
            thousands(o.naive),
            thousands(o.floor)
        );
    }
    println!();
    println!("| rows | naive: one query per day | sfbackfill | lower bound | ratio |");
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {} | {} ({} query pages + {} describes) | {} | {:.3} |",
        thousands(rows),
        thousands(naive),
        thousands(sent),
        thousands(t.queries),
        t.describes,
        thousands(floor),
        sent as f64 / floor as f64
    );
    println!();
    println!(
        "| wall | records/s | CPU engine (user + sys) | engine CPU s per million records | CPU fake org | CPU process | org start-up |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {wall:.2} s | {} | {engine_cpu:.2} s | {:.1} | {:.2} s | {:.2} s | {:.2} s |",
        thousands((rows as f64 / wall) as u64),
        engine_cpu / (rows as f64 / 1e6),
        t.run.cpu_org,
        t.run.cpu_total,
        t.startup.as_secs_f64()
    );
    println!();
    println!(
        "Written: {} bytes in {} day chunks. Sign-in, `limits` and `describeGlobal` are outside both request columns.\n",
        thousands(t.run.summary.bytes),
        thousands(t.run.summary.chunks_done)
    );

    let rb_wall = b.run.wall.as_secs_f64();
    let bound = b.requests as f64 / rate as f64;
    let kinds: Vec<String> = b.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "## Rate-bound: {rate_start} .. {rate_end}, 6 objects, --all-fields, scale 1, rate limit {rate} per 1 s ({profile} profile)\n"
    );
    println!(
        "| rows | requests (all, at the org) | requests / rate | wall | wall / (requests / rate) | peak requests in one second |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} ({}) | {bound:.2} s | {rb_wall:.2} s | {:.3} | {} |",
        thousands(b.run.summary.rows),
        b.requests,
        kinds.join(", "),
        rb_wall / bound,
        b.run.after.peak_per_second
    );
}
