//! Peak RSS of a backfill of one heavy day: bounded by pages and row groups in flight, not by
//! the rows of the day.
//!
//! The fake org's `Case` has a heavy day, 2025-09-17 (30,000 rows at scale 1, most in the same
//! `LastModifiedDate` second); at scale 34 it holds about a million. The bench starts the fake
//! org in this process and runs the real `sfbackfill backfill` as a CHILD process, so only the
//! engine's memory is measured: the child's peak resident set comes from `wait4(2)`
//! (`ru_maxrss`, the kernel's high-water mark of the whole process lifetime). Each run is
//! checked: the rows in the Parquet files written for the day must equal the org's
//! `SELECT COUNT()` for that day, or the bench exits with status 1.
//!
//! Runs: the heavy day at each of `SFB_MEM_SCALES` (default `1,3,10,34`: about 30,000,
//! 90,000, 300,000 and 1,000,000 rows), each at concurrency 4 and 16, plus a light day
//! (2025-09-16) at the last scale for the engine's floor. The growth of peak RSS from the first
//! scale to each other is printed: it must stay near flat, not follow the rows.
//!
//! ```text
//! cargo build --release && cargo bench --bench memory
//! SFB_MEM_SCALES=3,10 cargo bench --bench memory          # the issue's ×3 and ×10
//! cargo build && cargo bench --bench memory --profile dev
//! ```
//!
//! The binary is found next to the bench's own directory (`target/<profile>/sfbackfill`, the
//! bench lives in `target/<profile>/deps/`), so build the binary with the same profile first;
//! `SFB_MEM_BIN=/path/to/sfbackfill` overrides.
//!
//! What bounds the memory: a page of JSON and its Arrow batch per running reader (at most
//! `--concurrency`; a heavy day is read in sub-ranges side by side) and each open file's row
//! group, closed at `write::MAX_ROW_GROUP_BYTES` of encoded data or `MAX_ROW_GROUP_ROWS` rows,
//! whichever comes first. Figures: docs/benchmarks.md.

use std::fs::File;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use parquet::file::reader::{FileReader, SerializedFileReader};
use sfbackfill_fake_org::{FakeOrg, FakeOrgConfig};

mod common;
#[path = "common/peak_rss.rs"]
mod peak_rss;

const OBJECT: &str = "Case";
const FIELDS: &str = "Case=Subject,Status,Priority,Origin,Description";
const HEAVY_DAY: &str = "2025-09-17";
const LIGHT_DAY: &str = "2025-09-16";
/// Scales of the fake org the heavy day is read at: ~30,000, ~90,000, ~300,000 and ~1,000,000
/// rows.
const DEFAULT_SCALES: [u32; 4] = [1, 3, 10, 34];
const CONCURRENCIES: [u32; 2] = [4, 16];
const CLIENT_ID: &str = "fake-client-id";
const CLIENT_SECRET: &str = "fake-client-secret";

/// One measured backfill.
struct Run {
    scale: u32,
    day: &'static str,
    concurrency: u32,
    org_rows: u64,
    written_rows: u64,
    files: usize,
    pages: u64,
    wall: Duration,
    peak_rss_kb: i64,
    status: i32,
}

fn main() -> ExitCode {
    if let Some(code) = peak_rss::as_launcher() {
        return code;
    }
    let scales: Vec<u32> = match std::env::var("SFB_MEM_SCALES") {
        Ok(v) => match v
            .split(',')
            .map(|s| s.trim().parse::<u32>())
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(list) if !list.is_empty() && !list.contains(&0) => list,
            _ => {
                eprintln!("SFB_MEM_SCALES must be whole numbers ≥ 1, comma-separated, got `{v}`");
                return ExitCode::from(2);
            }
        },
        Err(_) => DEFAULT_SCALES.to_vec(),
    };
    let bin = match peak_rss::binary("memory") {
        Ok(bin) => bin,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    println!("memory bench: `sfbackfill backfill --objects {OBJECT} --fields {FIELDS}`");
    println!("binary: {}", bin.display());
    println!();

    let floor_kb = peak_rss::floor();
    println!(
        "measurement floor (the launcher running `true`): {:.1} MB",
        floor_kb as f64 / 1024.0
    );
    let mut runs = Vec::new();
    for &s in &scales {
        let started = Instant::now();
        let org = runtime
            .block_on(FakeOrg::start(FakeOrgConfig {
                scale: s,
                daily_api_max: u64::MAX / 2,
                ..Default::default()
            }))
            .expect("fake org starts");
        println!(
            "fake org at scale {s} started in {:.2} s ({})",
            started.elapsed().as_secs_f64(),
            org.url()
        );
        let url = org.url();
        let mut plan: Vec<(&'static str, u32)> =
            CONCURRENCIES.iter().map(|&c| (HEAVY_DAY, c)).collect();
        if s == *scales.last().unwrap() {
            plan.push((LIGHT_DAY, CONCURRENCIES[0]));
        }
        for (day, concurrency) in plan {
            let org_rows = runtime.block_on(count_day(&url, day));
            org.reset_stats();
            // The child is waited for on this thread; the org keeps serving on the runtime's
            // worker threads.
            let run = backfill(&bin, &url, s, day, concurrency, org_rows);
            let stats = org.stats();
            let run = Run {
                pages: stats.by_kind.get("query").copied().unwrap_or(0)
                    + stats.by_kind.get("query_more").copied().unwrap_or(0),
                ..run
            };
            println!(
                "  scale {s:>3} {day} concurrency {concurrency:>2}: {} rows in {:.1} s, peak RSS {:.1} MB",
                run.written_rows,
                run.wall.as_secs_f64(),
                run.peak_rss_kb as f64 / 1024.0
            );
            runs.push(run);
        }
        runtime.block_on(org.shutdown());
    }

    println!();
    println!(
        "| scale | day | concurrency | org rows | rows written | files | query pages | wall | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} s | {:.1} MB |",
            r.scale,
            r.day,
            r.concurrency,
            thousands(r.org_rows),
            thousands(r.written_rows),
            r.files,
            r.pages,
            r.wall.as_secs_f64(),
            r.peak_rss_kb as f64 / 1024.0
        );
    }
    println!();

    let mut ok = true;
    for r in &runs {
        if r.status != 0 {
            println!(
                "FAIL: scale {} {} concurrency {}: sfbackfill exited with {}",
                r.scale, r.day, r.concurrency, r.status
            );
            ok = false;
        }
        if r.written_rows != r.org_rows {
            println!(
                "FAIL: scale {} {} concurrency {}: wrote {} rows, the org has {}",
                r.scale, r.day, r.concurrency, r.written_rows, r.org_rows
            );
            ok = false;
        }
    }

    // Growth of the heavy day from the first scale to each other, per concurrency.
    for c in CONCURRENCIES {
        let find = |s: u32| {
            runs.iter()
                .find(|r| r.scale == s && r.day == HEAVY_DAY && r.concurrency == c)
        };
        let Some(small) = find(scales[0]) else {
            continue;
        };
        for big in scales[1..].iter().filter_map(|&s| find(s)) {
            let rows = big.written_rows as f64 / small.written_rows.max(1) as f64;
            let rss = big.peak_rss_kb as f64 / small.peak_rss_kb.max(1) as f64;
            println!(
                "concurrency {c}: rows ×{rows:.1} (scale {} → {}), peak RSS ×{rss:.2} \
                 ({:.1} → {:.1} MB)",
                small.scale,
                big.scale,
                small.peak_rss_kb as f64 / 1024.0,
                big.peak_rss_kb as f64 / 1024.0
            );
        }
    }
    if ok {
        println!("all runs wrote exactly the org's rows for the day");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs one backfill as a child process and reaps it with `wait4` for its peak RSS.
fn backfill(
    bin: &Path,
    url: &str,
    scale: u32,
    day: &'static str,
    concurrency: u32,
    org_rows: u64,
) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let log_path = dir.path().join("sfbackfill.log");
    let log = File::create(&log_path).expect("log file");
    let started = Instant::now();
    let result = dir.path().join("launch.result");
    let status = peak_rss::launcher(bin, &result)
        .args([
            "backfill",
            "--objects",
            OBJECT,
            "--fields",
            FIELDS,
            "--start",
            day,
            "--end",
            day,
            "--out",
        ])
        .arg(&out)
        .args(["--rate-limit", "100000", "--concurrency"])
        .arg(concurrency.to_string())
        .args(["--progress", "off"])
        .env("SF_INSTANCE_URL", url)
        .env("SF_CLIENT_ID", CLIENT_ID)
        .env("SF_CLIENT_SECRET", CLIENT_SECRET)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .status()
        .expect("run the launcher");
    assert!(status.success(), "launcher failed: {status}");
    let (status, peak_rss_kb) = peak_rss::result(&result);
    let wall = started.elapsed();
    if status != 0 {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        eprintln!("sfbackfill exited with {status}; its output:\n{log}");
    }
    let (written_rows, files) = parquet_rows(&out.join(OBJECT));
    Run {
        scale,
        day,
        concurrency,
        org_rows,
        written_rows,
        files,
        pages: 0,
        wall,
        peak_rss_kb,
        status,
    }
}

/// Rows (from each footer) and files of every Parquet file under `dir`.
fn parquet_rows(dir: &Path) -> (u64, usize) {
    let mut rows = 0u64;
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let reader = SerializedFileReader::new(File::open(&path).expect("open parquet"))
                    .expect("parquet footer");
                rows += reader.metadata().file_metadata().num_rows() as u64;
                files += 1;
            }
        }
    }
    (rows, files)
}

/// The org's own count of `Case` rows modified on `day` (UTC), as the backfill selects them.
async fn count_day(url: &str, day: &str) -> u64 {
    let http = common::http();
    let token = common::token(&http, url).await;
    let next = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .expect("day")
        .succ_opt()
        .expect("next day");
    let soql = format!(
        "SELECT COUNT() FROM {OBJECT} WHERE LastModifiedDate >= {day}T00:00:00Z \
         AND LastModifiedDate < {next}T00:00:00Z"
    );
    common::query(&http, url, &token, &soql).await["totalSize"]
        .as_u64()
        .expect("totalSize")
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
