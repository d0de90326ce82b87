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
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use parquet::file::reader::{FileReader, SerializedFileReader};
use sfbackfill_fake_org::{FakeOrg, FakeOrgConfig};

mod common;

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
/// Set (to a result file) when this binary runs as the launcher; see [`launch`].
const LAUNCH_ENV: &str = "SFB_MEM_LAUNCH_RESULT";

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
    if let Some(result) = std::env::var_os(LAUNCH_ENV) {
        return launch(Path::new(&result));
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
    let bin = match binary() {
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

    let floor_kb = floor();
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

/// `target/<profile>/sfbackfill`, next to the directory this bench runs from.
fn binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("SFB_MEM_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("SFB_MEM_BIN={} is not a file", path.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // target/<profile>/deps/memory-<hash> → target/<profile>/sfbackfill
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected bench path {}", exe.display()))?;
    let bin = profile_dir.join("sfbackfill");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: build the binary with the bench's profile first, e.g.\n  \
             cargo build --release && cargo bench --bench memory\n  \
             cargo build && cargo bench --bench memory --profile dev\n\
             or point SFB_MEM_BIN at an sfbackfill binary",
            bin.display()
        ))
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
    let status = Command::new(std::env::current_exe().expect("current_exe"))
        .env(LAUNCH_ENV, &result)
        .arg(bin)
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
    let (status, peak_rss_kb) = read_result(&result);
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

/// The launcher: runs `argv[1..]` as its child, reaps it with `wait4` and writes
/// `<exit status> <ru_maxrss KiB>` to `result`.
///
/// Why not `wait4` on a child of the bench itself: Rust spawns through `posix_spawn` (a
/// `CLONE_VM` child sharing the parent's memory until it execs), and Linux keeps the
/// high-water mark of the memory a process had before `exec` in its `ru_maxrss`. A child of
/// the bench would therefore report at least the bench's own RSS, fake org included (a
/// 101-row day measured 50 MB that way). The launcher is this binary freshly exec'd, before
/// any runtime or org exists, so the floor it leaves is a few MB, printed as the `floor` row.
fn launch(result: &Path) -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("launcher: no program");
        return ExitCode::from(2);
    };
    let child = match Command::new(&program).args(args).spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("launcher: spawn {}: {e}", program.to_string_lossy());
            return ExitCode::from(2);
        }
    };
    let (status, maxrss) = wait4(child.id() as libc::pid_t);
    // Reaped by wait4: `child` must not be waited for again (dropping it does not wait).
    drop(child);
    std::fs::write(result, format!("{status} {maxrss}")).expect("write launcher result");
    ExitCode::SUCCESS
}

/// The `ru_maxrss` the launcher reports for a program that uses almost nothing: the part of
/// every figure that is the launcher's, not the engine's.
fn floor() -> i64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let result = dir.path().join("launch.result");
    let status = Command::new(std::env::current_exe().expect("current_exe"))
        .env(LAUNCH_ENV, &result)
        .arg("true")
        .status()
        .expect("run the launcher");
    assert!(status.success(), "launcher failed: {status}");
    read_result(&result).1
}

fn read_result(path: &Path) -> (i32, i64) {
    let text = std::fs::read_to_string(path).expect("launcher result");
    let mut parts = text
        .split_whitespace()
        .map(|p| p.parse::<i64>().expect("number"));
    let status = parts.next().expect("status") as i32;
    let maxrss = parts.next().expect("maxrss");
    (status, maxrss)
}

/// Waits for `pid`; returns its exit status (128 + signal if killed) and `ru_maxrss` in KiB.
fn wait4(pid: libc::pid_t) -> (i32, i64) {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 writes both out-parameters.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own unreaped child; the pointers are to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            panic!("wait4({pid}): {err}");
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    (code, usage.ru_maxrss)
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
