//! Shows a run's progress: bars on a terminal, periodic log lines elsewhere.
//!
//! Owns all drawing; the only user of indicatif. Implements `backfill::Reporter`, so the
//! scheduler knows nothing of terminals. Bars count chunks (one bar per object and a total);
//! messages carry rows and rows per second. When stderr is not a terminal (CI, cron, tests)
//! a line is logged at most every [`LOG_EVERY`].

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::backfill::Reporter;
use crate::config::cli::ProgressMode;
use crate::plan::Chunk;

/// Often enough to show a run is alive in a log, rarely enough not to flood it.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Builds the reporter for `mode`.
pub fn reporter(mode: ProgressMode) -> Box<dyn Reporter> {
    let terminal = std::io::stderr().is_terminal();
    match mode {
        ProgressMode::Off => Box::new(Silent),
        ProgressMode::Bars => Box::new(Bars::new()),
        ProgressMode::Auto if terminal => Box::new(Bars::new()),
        ProgressMode::Auto | ProgressMode::Log => Box::new(LogLines::new()),
    }
}

/// Shows nothing.
pub struct Silent;

impl Reporter for Silent {}

/// Counts shared by both displays.
struct Totals {
    started: Instant,
    chunks_total: AtomicU64,
    chunks_done: AtomicU64,
    rows: AtomicU64,
}

impl Totals {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            chunks_total: AtomicU64::new(0),
            chunks_done: AtomicU64::new(0),
            rows: AtomicU64::new(0),
        }
    }

    fn rows_per_second(&self) -> f64 {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.rows.load(Ordering::Relaxed) as f64 / secs
    }

    fn drop_rows(&self, rows: u64) {
        let _ = self
            .rows
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                Some(r.saturating_sub(rows))
            });
    }

    fn eta(&self) -> Option<Duration> {
        let done = self.chunks_done.load(Ordering::Relaxed);
        let total = self.chunks_total.load(Ordering::Relaxed);
        if done == 0 || done >= total {
            return None;
        }
        let per_chunk = self.started.elapsed().as_secs_f64() / done as f64;
        Some(Duration::from_secs_f64(per_chunk * (total - done) as f64))
    }
}

/// One bar per object plus a total.
pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    objects: Mutex<HashMap<String, ProgressBar>>,
    totals: Totals,
}

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(0));
        total.set_style(style(
            "{prefix:>16} [{bar:30}] {pos}/{len} chunks {msg} ETA {eta}",
        ));
        total.set_prefix("total");
        Self {
            multi,
            total,
            objects: Mutex::new(HashMap::new()),
            totals: Totals::new(),
        }
    }

    fn with_bar(&self, object: &str, f: impl FnOnce(&ProgressBar)) {
        let bars = self.objects.lock().expect("progress lock");
        if let Some(bar) = bars.get(object) {
            f(bar);
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("progress templates are constant")
        .progress_chars("=> ")
}

impl Reporter for Bars {
    fn on_run_start(&self, objects: &[(String, u64)]) {
        let mut bars = self.objects.lock().expect("progress lock");
        for (object, chunks) in objects {
            let bar = self
                .multi
                .insert_before(&self.total, ProgressBar::new(*chunks));
            bar.set_style(style("{prefix:>16} [{bar:30}] {pos}/{len} chunks {msg}"));
            bar.set_prefix(object.clone());
            bars.insert(object.clone(), bar);
        }
        let total: u64 = objects.iter().map(|(_, c)| c).sum();
        self.totals.chunks_total.store(total, Ordering::Relaxed);
        self.total.set_length(total);
    }

    fn on_rows(&self, _object: &str, rows: u64) {
        self.totals.rows.fetch_add(rows, Ordering::Relaxed);
        self.total.set_message(format!(
            "{} rows, {:.0} rows/s",
            self.totals.rows.load(Ordering::Relaxed),
            self.totals.rows_per_second()
        ));
    }

    fn on_rows_dropped(&self, object: &str, rows: u64) {
        self.totals.drop_rows(rows);
        self.on_rows(object, 0);
    }

    fn on_chunk_done(&self, chunk: &Chunk, rows: u64) {
        self.totals.chunks_done.fetch_add(1, Ordering::Relaxed);
        self.with_bar(&chunk.object, |bar| {
            bar.inc(1);
            bar.set_message(format!("last {} ({rows} rows)", chunk.day));
        });
        self.total.inc(1);
    }

    fn on_chunk_failed(&self, chunk: &Chunk, error: &str) {
        self.with_bar(&chunk.object, |bar| {
            bar.set_message(format!("{} failed", chunk.day))
        });
        let _ = self.multi.println(format!("chunk {chunk} failed: {error}"));
    }

    fn on_waiting(&self, until: &str) {
        self.total.set_message(format!(
            "outside the off-peak windows: waiting until {until}"
        ));
    }

    fn on_run_end(&self) {
        for bar in self.objects.lock().expect("progress lock").values() {
            bar.finish();
        }
        self.total.finish();
    }
}

/// A line on stderr at most every [`LOG_EVERY`], and at the end.
pub struct LogLines {
    totals: Totals,
    last: Mutex<Instant>,
}

impl LogLines {
    fn new() -> Self {
        Self {
            totals: Totals::new(),
            last: Mutex::new(Instant::now()),
        }
    }

    fn line(&self) -> String {
        let eta = self
            .totals
            .eta()
            .map(|d| format!(", about {}s left", d.as_secs()))
            .unwrap_or_default();
        format!(
            "progress: {}/{} chunks, {} rows, {:.0} rows/s{eta}",
            self.totals.chunks_done.load(Ordering::Relaxed),
            self.totals.chunks_total.load(Ordering::Relaxed),
            self.totals.rows.load(Ordering::Relaxed),
            self.totals.rows_per_second()
        )
    }

    fn maybe_log(&self) {
        let mut last = self.last.lock().expect("progress lock");
        if last.elapsed() >= LOG_EVERY {
            *last = Instant::now();
            eprintln!("{}", self.line());
        }
    }
}

impl Reporter for LogLines {
    fn on_run_start(&self, objects: &[(String, u64)]) {
        let total: u64 = objects.iter().map(|(_, c)| c).sum();
        self.totals.chunks_total.store(total, Ordering::Relaxed);
        eprintln!(
            "backfill: {total} chunks to fetch over {} objects",
            objects.len()
        );
    }

    fn on_rows(&self, _object: &str, rows: u64) {
        self.totals.rows.fetch_add(rows, Ordering::Relaxed);
        self.maybe_log();
    }

    fn on_rows_dropped(&self, _object: &str, rows: u64) {
        self.totals.drop_rows(rows);
    }

    fn on_chunk_done(&self, _chunk: &Chunk, _rows: u64) {
        self.totals.chunks_done.fetch_add(1, Ordering::Relaxed);
        self.maybe_log();
    }

    fn on_chunk_failed(&self, chunk: &Chunk, error: &str) {
        eprintln!("chunk {chunk} failed: {error}");
    }

    fn on_waiting(&self, until: &str) {
        eprintln!("outside the off-peak windows: waiting until {until}");
    }

    fn on_run_end(&self) {
        eprintln!("{}", self.line());
    }
}
