//! The `status --html` page: the folded status drawn as one self-contained HTML file.
//!
//! Owns the drawing only: it takes the same per-object and per-sync models the `status` table
//! prints ([`crate::checkpoint::status`]) and returns the page's text; reading journals and
//! writing the file are the command's.
//!
//! Invariants:
//! * The page loads nothing: inline CSS, no script, no font, image or link outside itself.
//! * Every text from the journal or the org (object names, errors, field names, the folder) is
//!   escaped before it is placed in the page, in text and in attributes alike.
//! * Every day of the calendar's range is one cell with `data-day` (YYYY-MM-DD) and
//!   `data-state` (`done`, `failed`, `pending`, `not-over`, or `outside` for a day no window
//!   of the object holds), so a reader or a test can check a day without parsing colours.
//! * All objects share one range, the first to the last day any of them has, so the same
//!   column is the same week in each calendar.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use std::fmt::Write;
use std::path::Path;

use crate::checkpoint::RunUsage;
use crate::checkpoint::bulk_jobs::BulkState;
use crate::checkpoint::status::{DayState, ObjectStatus, SyncStatus};

/// Everything the page shows.
pub struct Page<'a> {
    pub out: &'a Path,
    pub now: DateTime<Utc>,
    pub objects: &'a [ObjectStatus],
    /// Per object, in the same order, its schema changes in the words `status` prints.
    pub drift: Vec<Vec<String>>,
    pub synced: &'a [SyncStatus],
    /// Per synced object, in the same order, its schema changes.
    pub sync_drift: Vec<Vec<String>>,
    /// Bulk jobs a stopped backfill left open.
    pub bulk: &'a BulkState,
    pub last_run_ended: Option<&'a (DateTime<Utc>, String)>,
    pub usage: Option<RunUsage>,
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:0 0 4px}
.meta,.counts{color:#59636e;margin:0 0 8px}
code{font:12px ui-monospace,monospace}
table{border-collapse:collapse;margin:8px 0 16px}
th,td{padding:3px 10px;text-align:right;border-bottom:1px solid #d1d9e0;font-variant-numeric:tabular-nums}
th:first-child,td:first-child{text-align:left}
.bar{display:flex;width:160px;height:10px;background:#eff2f5}
.bar span{display:block;height:10px}
.objects{display:grid;grid-template-columns:repeat(auto-fill,minmax(660px,1fr));gap:16px}
.object{border:1px solid #d1d9e0;border-radius:6px;padding:12px;overflow-x:auto}
.frame{display:grid;grid-template-columns:28px auto;gap:2px 4px;font-size:10px;color:#59636e}
.months{display:grid;grid-auto-columns:9px;gap:2px;height:13px;white-space:nowrap}
.wd{display:grid;grid-template-rows:repeat(7,9px);gap:2px}
.cal{display:grid;grid-template-rows:repeat(7,9px);grid-auto-flow:column;grid-auto-columns:9px;gap:2px}
.cal i{display:block;width:9px;height:9px;border-radius:2px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 12px;vertical-align:-1px}
.done{background:#2da44e}.done.l0{background:#aceebb}.done.l1{background:#6fdd8b}.done.l2{background:#2da44e}.done.l3{background:#116329}
.failed{background:#cf222e}.pending{background:#d4a72c}
.not-over{background:repeating-linear-gradient(45deg,#54aeff 0 2px,#ddf4ff 2px 4px)}
.outside{background:#eff2f5}.pad{visibility:hidden}
ul{margin:6px 0 0;padding-left:18px}li{margin:2px 0}
.drift li{color:#9a6700}.errors li{color:#a40e26}
";

/// The whole page.
pub fn render(page: &Page) -> String {
    let mut html = String::new();
    let title = format!("sfbackfill status: {}", crate::store::shown(page.out));
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    html += &run_line(page);
    html += LEGEND;
    let calendar = range(page.objects);
    if let Some((first, last)) = calendar {
        let _ = writeln!(
            html,
            "<p class=\"meta\">Calendars from {first} to {last}, weeks from Monday.</p>"
        );
    }
    html += &overview(page.objects);
    match calendar {
        Some((first, last)) => {
            html += "<div class=\"objects\">\n";
            for (object, drift) in page.objects.iter().zip(&page.drift) {
                html += &object_section(object, drift, first, last);
            }
            html += "</div>\n";
        }
        None => html += "<p>No chunk is recorded or planned in this folder yet.</p>\n",
    }
    html += &bulk_section(page.bulk);
    html += &sync_section(page.synced, &page.sync_drift);
    html += "</body></html>\n";
    html
}

const LEGEND: &str = "<p class=\"legend\">\
<i class=\"done l2\"></i>done (darker: more rows)\
<i class=\"failed\"></i>failed (hover for the error)\
<i class=\"pending\"></i>pending\
<i class=\"not-over\"></i>not over yet\
<i class=\"outside\"></i>outside every window</p>\n";

/// When the page was drawn, how the last run ended and what it sent.
fn run_line(page: &Page) -> String {
    let mut parts = vec![format!(
        "as of {}",
        page.now.format("%Y-%m-%d %H:%M:%S UTC")
    )];
    if let Some((at, outcome)) = page.last_run_ended {
        parts.push(format!(
            "last run ended {} ({})",
            at.format("%Y-%m-%d %H:%M:%S UTC"),
            escape(outcome)
        ));
    }
    if let Some(u) = page.usage {
        parts.push(format!(
            "it sent {} requests ({} retries)",
            thousands(u.requests),
            thousands(u.retries)
        ));
        if let (Some(used), Some(max)) = (u.api_used, u.api_max) {
            let share = if max == 0 {
                0.0
            } else {
                used as f64 * 100.0 / max as f64
            };
            parts.push(format!(
                "org daily API usage <b data-api-used=\"{used}\" data-api-max=\"{max}\">{} of {} ({share:.1}%)</b>",
                thousands(used),
                thousands(max)
            ));
        }
    }
    format!("<p class=\"meta\">{}</p>\n", parts.join(" · "))
}

/// One row per object: its counts and a bar of their shares.
fn overview(objects: &[ObjectStatus]) -> String {
    let mut s = String::from(
        "<table><tr><th>Object</th><th>Done</th><th>Pending</th><th>Not over</th>\
         <th>Failed</th><th>Rows</th><th>Bytes</th><th></th></tr>\n",
    );
    for o in objects {
        let total = (o.chunks_done + o.chunks_pending + o.chunks_not_over + o.chunks_failed).max(1);
        let width = |n: u64| n as f64 * 100.0 / total as f64;
        let _ = writeln!(
            s,
            "<tr data-object=\"{name}\"><td><a href=\"#o-{name}\">{name}</a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><div class=\"bar\">\
             <span class=\"done\" style=\"width:{:.2}%\"></span><span class=\"failed\" style=\"width:{:.2}%\"></span>\
             <span class=\"pending\" style=\"width:{:.2}%\"></span><span class=\"not-over\" style=\"width:{:.2}%\"></span>\
             </div></td></tr>",
            thousands(o.chunks_done),
            thousands(o.chunks_pending),
            thousands(o.chunks_not_over),
            thousands(o.chunks_failed),
            thousands(o.rows),
            bytes(o.bytes),
            width(o.chunks_done),
            width(o.chunks_failed),
            width(o.chunks_pending),
            width(o.chunks_not_over),
            name = escape(&o.object),
        );
    }
    s + "</table>\n"
}

/// The first and last day any object has.
fn range(objects: &[ObjectStatus]) -> Option<(NaiveDate, NaiveDate)> {
    let first = objects.iter().filter_map(|o| o.days.keys().next()).min()?;
    let last = objects
        .iter()
        .filter_map(|o| o.days.keys().next_back())
        .max()?;
    Some((*first, *last))
}

fn object_section(o: &ObjectStatus, drift: &[String], first: NaiveDate, last: NaiveDate) -> String {
    let name = escape(&o.object);
    let mut s = format!(
        "<section class=\"object\" id=\"o-{name}\" data-object=\"{name}\"><h2>{name}</h2>\n"
    );
    let window = match (&o.window_start, &o.window_end) {
        (Some(a), Some(b)) => format!(" · done window {} .. {}", escape(a), escape(b)),
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        "<p class=\"counts\">{} done · {} pending · {} not over · {} failed · {} rows · {}{window}</p>",
        thousands(o.chunks_done),
        thousands(o.chunks_pending),
        thousands(o.chunks_not_over),
        thousands(o.chunks_failed),
        thousands(o.rows),
        bytes(o.bytes),
    );
    s += &calendar(o, first, last);
    if let Some(closes) = &o.first_closes_text {
        let _ = writeln!(
            s,
            "<p class=\"counts\">The first day not over yet closes at {}.</p>",
            escape(closes)
        );
    }
    if !o.failed.is_empty() {
        s += "<ul class=\"errors\">";
        // Days failed by one cause (a type change fails every pending day) share a line.
        let mut failed: Vec<(Vec<&str>, &str)> = Vec::new();
        for f in &o.failed {
            match failed.iter_mut().find(|(_, e)| *e == f.error) {
                Some((days, _)) => days.push(&f.day),
                None => failed.push((vec![&f.day], &f.error)),
            }
        }
        for (days, error) in failed {
            let which = match days.as_slice() {
                [one] => one.to_string(),
                [first, .., last] => format!("{} days, {first} .. {last}", days.len()),
                [] => unreachable!("a group has a day"),
            };
            let _ = write!(
                s,
                "<li><code>{}</code>: {}</li>",
                escape(&which),
                escape(error)
            );
        }
        s += "</ul>\n";
    }
    if !drift.is_empty() {
        s += "<ul class=\"drift\">";
        for line in drift {
            let _ = write!(s, "<li>{}</li>", escape(line.trim()));
        }
        s += "</ul>\n";
    }
    s + "</section>\n"
}

/// A week-by-weekday grid of `first..=last`, weeks from Monday, one cell per day.
fn calendar(o: &ObjectStatus, first: NaiveDate, last: NaiveDate) -> String {
    let monday = first - Duration::days(i64::from(first.weekday().num_days_from_monday()));
    let week_of = |day: NaiveDate| (day - monday).num_days() / 7;
    let max_rows = o
        .days
        .values()
        .filter_map(|d| match d {
            DayState::Done { rows, .. } => Some(*rows),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut months = String::from("<div class=\"months\">");
    let mut day = first;
    while day <= last {
        if day == first || day.day() == 1 {
            // A year starts where its January does; the range's first label is its month.
            let label = if day.month() == 1 {
                day.format("%Y")
            } else {
                day.format("%b")
            };
            let _ = write!(
                months,
                "<span style=\"grid-row:1;grid-column:{}/span 4\">{label}</span>",
                week_of(day) + 1
            );
        }
        day = day.succ_opt().expect("a date within chrono's range");
    }
    months += "</div>";
    let mut cells = String::from("<div class=\"cal\">");
    for _ in 0..first.weekday().num_days_from_monday() {
        cells += "<i class=\"pad\"></i>";
    }
    let mut day = first;
    while day <= last {
        cells += &cell(day, o.days.get(&day), max_rows);
        day = day.succ_opt().expect("a date within chrono's range");
    }
    cells += "</div>";
    format!(
        "<div class=\"frame\"><span></span>{months}<div class=\"wd\"><span>Mon</span><span></span>\
         <span>Wed</span><span></span><span>Fri</span><span></span><span></span></div>{cells}</div>\n"
    )
}

/// One day's cell: its state in the class and `data-state`, the details on hover.
fn cell(day: NaiveDate, state: Option<&DayState>, max_rows: u64) -> String {
    let Some(state) = state else {
        return format!(
            "<i class=\"outside\" data-day=\"{day}\" data-state=\"outside\" title=\"{day}: outside every window\"></i>"
        );
    };
    let (class, title) = match state {
        DayState::Done { rows, bytes: b } => (
            format!("done l{}", level(*rows, max_rows)),
            format!("{day}: done, {} rows, {}", thousands(*rows), bytes(*b)),
        ),
        DayState::Failed { error } => ("failed".into(), format!("{day}: failed: {error}")),
        DayState::Pending => ("pending".into(), format!("{day}: pending")),
        DayState::NotOver { closes } => (
            "not-over".into(),
            format!(
                "{day}: not over yet; closes at {}",
                closes.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        ),
    };
    let rows = match state {
        DayState::Done { rows, bytes } => {
            format!(" data-rows=\"{rows}\" data-bytes=\"{bytes}\"")
        }
        _ => String::new(),
    };
    format!(
        "<i class=\"{class}\" data-day=\"{day}\" data-state=\"{}\"{rows} title=\"{}\"></i>",
        state.name(),
        escape(&title)
    )
}

/// A done day's shade: 0 for no rows, then by thirds of the object's busiest day.
fn level(rows: u64, max: u64) -> u64 {
    match rows.saturating_mul(3) {
        0 => 0,
        r if r <= max => 1,
        r if r <= max.saturating_mul(2) => 2,
        _ => 3,
    }
}

/// The Bulk jobs the next backfill reads on from; nothing when there are none.
fn bulk_section(bulk: &BulkState) -> String {
    if bulk.open.is_empty() {
        return String::new();
    }
    let time = |at: &DateTime<Utc>| at.format("%Y-%m-%d %H:%M UTC").to_string();
    let mut s = String::from(
        "<h2>Open Bulk jobs</h2><p class=\"meta\">The next backfill with the same arguments \
         reads on from these while Salesforce keeps them (7 days).</p>\
         <table><tr><th>Job</th><th>Object</th><th>Created</th><th>Rows committed</th>\
         <th>Window</th></tr>\n",
    );
    for (id, job) in &bulk.open {
        let _ = writeln!(
            s,
            "<tr data-bulk-job=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{} .. {}</td></tr>",
            escape(id),
            escape(id),
            escape(&job.object),
            time(&job.created_at),
            thousands(job.rows),
            time(&job.start),
            time(&job.end),
        );
    }
    s + "</table>\n"
}

fn sync_section(synced: &[SyncStatus], drift: &[Vec<String>]) -> String {
    if synced.is_empty() {
        return "<h2>Sync</h2><p class=\"meta\">No object has been synced into this folder.</p>\n"
            .into();
    }
    let mut s = String::from(
        "<h2>Sync</h2><table><tr><th>Object</th><th>Cursor field</th><th>Cursor</th>\
         <th>Last sync</th><th>Syncs</th><th>Rows</th></tr>\n",
    );
    for (o, lines) in synced.iter().zip(drift) {
        let cursor = match (&o.cursor, &o.cursor_id) {
            (Some(at), Some(id)) => format!("{at} after {id}"),
            (Some(at), None) => at.clone(),
            _ => "-".into(),
        };
        let _ = writeln!(
            s,
            "<tr data-synced=\"{}\"><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&o.object),
            escape(&o.object),
            escape(o.cursor_field.as_deref().unwrap_or("-")),
            escape(&cursor),
            escape(o.last_synced.as_deref().unwrap_or("never finished")),
            thousands(o.syncs),
            thousands(o.rows),
        );
        let mut notes: Vec<String> = lines.iter().map(|l| escape(l.trim())).collect();
        if let Some(at) = &o.full_reread_at {
            notes.insert(0, format!("a full re-read is under way, at {}", escape(at)));
        }
        if !notes.is_empty() {
            let _ = writeln!(
                s,
                "<tr><td colspan=\"6\"><ul class=\"drift\"><li>{}</li></ul></td></tr>",
                notes.join("</li><li>")
            );
        }
    }
    s + "</table>\n"
}

/// Text made safe for HTML text and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => s += "&amp;",
            '<' => s += "&lt;",
            '>' => s += "&gt;",
            '"' => s += "&quot;",
            '\'' => s += "&#39;",
            c => s.push(c),
        }
    }
    s
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut s = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(c);
    }
    s
}

/// Bytes in the largest binary unit that keeps a whole number in front.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_JOBS: BulkState = BulkState {
        open: std::collections::BTreeMap::new(),
    };

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, m, d).unwrap()
    }

    fn object(name: &str, days: &[(NaiveDate, DayState)]) -> ObjectStatus {
        ObjectStatus {
            object: name.into(),
            days: days.iter().cloned().collect(),
            ..ObjectStatus::default()
        }
    }

    fn page<'a>(objects: &'a [ObjectStatus]) -> Page<'a> {
        Page {
            out: Path::new("/data/<out>"),
            now: DateTime::from_timestamp(1_750_000_000, 0).unwrap(),
            objects,
            drift: vec![vec![]; objects.len()],
            synced: &[],
            sync_drift: vec![],
            bulk: &NO_JOBS,
            last_run_ended: None,
            usage: None,
        }
    }

    #[test]
    fn every_day_of_the_shared_range_is_one_cell_with_its_state() {
        let objects = [
            object(
                "Account",
                &[
                    (
                        day(3, 3),
                        DayState::Done {
                            rows: 5,
                            bytes: 900,
                        },
                    ),
                    (day(3, 5), DayState::Pending),
                ],
            ),
            object(
                "Lead",
                &[(
                    day(3, 7),
                    DayState::Failed {
                        error: "INVALID_FIELD: <No such column 'X'>".into(),
                    },
                )],
            ),
        ];
        let html = render(&page(&objects));
        // 2025-03-03 is a Monday: no padding; five days per object.
        assert_eq!(html.matches("data-day=").count(), 10);
        assert!(html.contains(
            "data-day=\"2025-03-03\" data-state=\"done\" data-rows=\"5\" data-bytes=\"900\""
        ));
        assert!(html.contains("data-day=\"2025-03-04\" data-state=\"outside\""));
        assert!(html.contains("data-day=\"2025-03-05\" data-state=\"pending\""));
        assert!(html.contains(
            "data-state=\"failed\" title=\"2025-03-07: failed: INVALID_FIELD: &lt;No such column &#39;X&#39;&gt;\""
        ));
        assert!(!html.contains("<No such"), "errors are escaped");
        assert!(html.contains("/data/&lt;out&gt;"));
        assert!(
            !html.contains("<script") && !html.contains("http"),
            "self-contained"
        );
    }

    #[test]
    fn a_range_starting_midweek_is_padded_to_monday() {
        let objects = [object("Case", &[(day(3, 6), DayState::Pending)])];
        let html = render(&page(&objects));
        assert_eq!(html.matches("class=\"pad\"").count(), 3, "Thursday");
    }

    #[test]
    fn shades_rise_with_rows_and_numbers_read_well() {
        assert_eq!(
            [0, 1, 33, 34, 66, 67, 100].map(|r| level(r, 100)),
            [0, 1, 1, 2, 2, 3, 3]
        );
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(bytes(900), "900 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
