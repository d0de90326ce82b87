//! Peak RSS of `sfbackfill compact`: proportional to the records (one index entry per `Id`),
//! not to the width of the rows.
//!
//! The bench writes a folder as a backfill and syncs would: object `Bench__c`, `N` records in
//! 30 days of `part-00000.parquet` files, and a second, newer version of every other record in
//! `sync-*` files of 5 later days, so every day folder changes. Runs: narrow rows (`Id`, two
//! stamps, `Name`) at `N/5` and `N` records, and wide rows (plus 24 text columns of 40
//! characters, about 1 KB a row) at `N/5` and `2N/5`. Each runs the real binary as a child of a launcher
//! (see `benches/memory.rs`: the kernel's `ru_maxrss` of a freshly exec'd process) and is
//! checked: after it, the folder holds `N` rows, one per record, in one file a day (the even
//! days of the first 25 hold only superseded versions, so their folders go).
//!
//! ```text
//! cargo build --release && cargo bench --bench compact
//! SFB_COMPACT_RECORDS=200000 cargo bench --bench compact          # quick run
//! cargo build && cargo bench --bench compact --profile dev
//! ```
//!
//! `N` is `SFB_COMPACT_RECORDS` (default 1,000,000); `SFB_MEM_BIN` points at another binary.

use std::fs::File;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};

#[path = "common/peak_rss.rs"]
mod peak_rss;

const OBJECT: &str = "Bench__c";
const DAYS: usize = 30;
const SYNC_DAYS: usize = 5;
const WIDE_COLUMNS: usize = 24;
const TEXT_CHARS: usize = 40;
const DEFAULT_RECORDS: usize = 1_000_000;
const BATCH: usize = 8192;

struct Measured {
    label: String,
    records: usize,
    rows_before: usize,
    /// The first pass alone (`--dry-run`).
    dry_rss_kb: i64,
    peak_rss_kb: i64,
    wall: Duration,
}

fn main() -> ExitCode {
    if let Some(code) = peak_rss::as_launcher() {
        return code;
    }
    let records = std::env::var("SFB_COMPACT_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_RECORDS);
    let bin = match peak_rss::binary("compact") {
        Ok(bin) => bin,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let floor = peak_rss::floor();
    println!("launcher floor: {:.1} MB", floor as f64 / 1024.0);
    let mut runs = Vec::new();
    for (label, n, wide) in [
        ("narrow", records / 5, false),
        ("narrow", records, false),
        ("wide", records / 5, true),
        ("wide", records * 2 / 5, true),
    ] {
        match measure(&bin, label, n, wide) {
            Ok(m) => runs.push(m),
            Err(e) => {
                eprintln!("{label} {n}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    println!(
        "{:<8} {:>10} {:>12} {:>12} {:>10} {:>8}",
        "rows", "records", "rows before", "dry-run MB", "peak MB", "seconds"
    );
    for m in &runs {
        println!(
            "{:<8} {:>10} {:>12} {:>12.1} {:>10.1} {:>8.1}",
            m.label,
            m.records,
            m.rows_before,
            m.dry_rss_kb as f64 / 1024.0,
            m.peak_rss_kb as f64 / 1024.0,
            m.wall.as_secs_f64()
        );
    }
    for (label, small, large) in [("narrow", &runs[0], &runs[1]), ("wide", &runs[2], &runs[3])] {
        let slope = |kb: fn(&Measured) -> i64| {
            (kb(large) - kb(small)) as f64 * 1024.0 / (large.records - small.records) as f64
        };
        println!(
            "{label}: per additional record, {:.0} bytes of the first pass's peak RSS, {:.0} of the whole run's",
            slope(|m| m.dry_rss_kb),
            slope(|m| m.peak_rss_kb)
        );
    }
    ExitCode::SUCCESS
}

fn schema(wide: bool) -> SchemaRef {
    let stamp = || DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let mut fields = vec![
        Field::new("Id", DataType::Utf8, true),
        Field::new("SystemModstamp", stamp(), true),
        Field::new("LastModifiedDate", stamp(), true),
        Field::new("Name", DataType::Utf8, true),
    ];
    if wide {
        fields.extend(
            (0..WIDE_COLUMNS).map(|c| Field::new(format!("Text{c}__c"), DataType::Utf8, true)),
        );
    }
    Arc::new(Schema::new(fields))
}

/// An 18-character Salesforce-like Id for record `i`.
fn id(i: usize) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut tail = [b'0'; 12];
    let mut n = i;
    for slot in tail.iter_mut().rev() {
        *slot = DIGITS[n % 62];
        n /= 62;
    }
    format!("a01{}AAA", std::str::from_utf8(&tail).expect("ascii"))
}

/// One batch of `records` (their indexes), at `version` (1 or 2).
fn batch(schema: &SchemaRef, records: &[usize], version: i64) -> RecordBatch {
    let base = 1_735_689_600_000i64; // 2025-01-01
    let stamps: Vec<i64> = records
        .iter()
        .map(|&i| base + (i % DAYS) as i64 * 86_400_000 + version * 1_000)
        .collect();
    let stamp = || -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from(stamps.clone()).with_timezone("UTC"))
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|&i| id(i)),
        )),
        stamp(),
        stamp(),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|&i| format!("Record {i} v{version}")),
        )),
    ];
    for c in 0..schema.fields().len() - 4 {
        columns.push(Arc::new(StringArray::from_iter_values(records.iter().map(
            |&i| {
                format!("{c:02}-{i:012}-{version}-")
                    .chars()
                    .cycle()
                    .take(TEXT_CHARS)
                    .collect::<String>()
            },
        ))));
    }
    RecordBatch::try_new(schema.clone(), columns).expect("bench batch")
}

fn write_file(path: &Path, schema: &SchemaRef, records: &[usize], version: i64) {
    std::fs::create_dir_all(path.parent().expect("a day folder")).expect("day folder");
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("a level")))
        .build();
    let mut writer = ArrowWriter::try_new(
        File::create(path).expect("file"),
        schema.clone(),
        Some(properties),
    )
    .expect("writer");
    for chunk in records.chunks(BATCH) {
        writer.write(&batch(schema, chunk, version)).expect("write");
    }
    writer.close().expect("close");
}

/// A folder of `n` records: version 1 of each in its day's part file, version 2 of every
/// other one in a sync file of a later day. Returns the rows written.
fn generate(out: &Path, n: usize, wide: bool) -> usize {
    std::fs::create_dir_all(out.join("_sfbackfill")).expect("manifest folder");
    let schema = schema(wide);
    let day = |d: usize| out.join(OBJECT).join(format!("date=2025-01-{:02}", d + 1));
    for d in 0..DAYS {
        let records: Vec<usize> = (d..n).step_by(DAYS).collect();
        write_file(&day(d).join("part-00000.parquet"), &schema, &records, 1);
    }
    for s in 0..SYNC_DAYS {
        let records: Vec<usize> = (0..n)
            .filter(|i| i % 2 == 0 && (i / 2) % SYNC_DAYS == s)
            .collect();
        write_file(
            &day(DAYS - SYNC_DAYS + s).join("sync-20250201T000000Z-1-0001.parquet"),
            &schema,
            &records,
            2,
        );
    }
    n + n.div_ceil(2)
}

fn measure(bin: &Path, label: &str, n: usize, wide: bool) -> Result<Measured, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let rows_before = generate(dir.path(), n, wide);
    let (dry_rss_kb, _) = compact(bin, dir.path(), true)?;
    let (peak_rss_kb, wall) = compact(bin, dir.path(), false)?;
    let (rows, files, days) = parquet_rows(&dir.path().join(OBJECT));
    if rows != n as u64 || files != days {
        return Err(format!(
            "after compact: {rows} rows in {files} files of {days} days, want {n} in one a day"
        ));
    }
    Ok(Measured {
        label: label.to_string(),
        records: n,
        rows_before,
        dry_rss_kb,
        peak_rss_kb,
        wall,
    })
}

/// Runs `compact` (with `--dry-run`: the first pass alone) under the launcher: its peak RSS in
/// KiB and its time.
fn compact(bin: &Path, out: &Path, dry_run: bool) -> Result<(i64, Duration), String> {
    let result = out.join("launch.result");
    let started = Instant::now();
    let status = peak_rss::launcher(bin, &result)
        .args(["compact", "--out"])
        .arg(out)
        .args(dry_run.then_some("--dry-run"))
        .status()
        .map_err(|e| e.to_string())?;
    let wall = started.elapsed();
    if !status.success() {
        return Err(format!("launcher: {status}"));
    }
    let (code, peak_rss_kb) = peak_rss::result(&result);
    std::fs::remove_file(&result).map_err(|e| e.to_string())?;
    match code {
        0 => Ok((peak_rss_kb, wall)),
        _ => Err(format!("compact exited {code}")),
    }
}

/// Rows (from each footer), files and day folders under `dir`.
fn parquet_rows(dir: &Path) -> (u64, usize, usize) {
    let mut rows = 0u64;
    let mut files = 0;
    let mut days = 0;
    for day in std::fs::read_dir(dir).expect("object folder").flatten() {
        days += 1;
        for f in std::fs::read_dir(day.path()).expect("day folder").flatten() {
            let reader =
                SerializedFileReader::new(File::open(f.path()).expect("file")).expect("parquet");
            rows += reader.metadata().file_metadata().num_rows() as u64;
            files += 1;
        }
    }
    (rows, files, days)
}
