//! The `status --html` page opened in a real browser: each day's cell against the journal.
//!
//! Needs Debian's Chromium (`/usr/bin/chromium`); without it the test prints one `skipped`
//! line and passes, unless `SFBACKFILL_REQUIRE_BROWSER=1` (set by `.ci/run`, which installs it).
//! The page and its screenshot are kept as artefacts under `target/tmp/status-page/`.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::NaiveDate;
use sfbackfill_fake_org::{FieldSpec, FieldType};

use crate::support::*;

const CHROMIUM: &str = "/usr/bin/chromium";

const OBJECTS: [&str; 5] = ["Account", "Contact", "Opportunity", "Lead", "Invoice__c"];

fn backfill_args<'a>(out: &'a str, objects: &'a str, start: &'a str, end: &'a str) -> Vec<&'a str> {
    vec![
        "backfill",
        "--objects",
        objects,
        "--start",
        start,
        "--end",
        end,
        "--out",
        out,
        "--rate-limit",
        "1000",
        "--concurrency",
        "4",
        "--progress",
        "off",
    ]
}

/// The browser, or `None` when the test may skip for want of one.
fn browser() -> Option<&'static str> {
    if Path::new(CHROMIUM).exists() {
        return Some(CHROMIUM);
    }
    if std::env::var("SFBACKFILL_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!("SFBACKFILL_REQUIRE_BROWSER=1 but {CHROMIUM} is missing: apt-get install chromium");
    }
    None
}

/// Headless Chromium on `page` with `action` (`--dump-dom`, `--screenshot=...`), isolated from
/// the network and from any profile; its stdout.
fn chromium(browser: &str, page: &Path, action: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let o = output(Command::new(browser).args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--window-size=1440,1800",
        &format!("--user-data-dir={}", profile.path().display()),
        action,
        &format!("file://{}", page.display()),
    ]))
    .expect("chromium runs");
    assert!(o.status.success(), "chromium {action}: {}", stderr(&o));
    stdout(&o)
}

/// What the journal says of each (object, day): the latest chunk entry's state, else pending
/// for a planned day; with the error of a failed day.
fn journal_days(out: &Path) -> BTreeMap<(String, NaiveDate), (String, Option<String>)> {
    let text = std::fs::read_to_string(out.join("_sfbackfill/backfill.journal")).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut days = BTreeMap::new();
    for e in &entries {
        let object = e["object"].as_str().unwrap_or_default().to_string();
        match e["kind"].as_str().unwrap() {
            "chunk_done" | "chunk_failed" => {
                let day: NaiveDate = e["day"].as_str().unwrap().parse().unwrap();
                let state = if e["kind"] == "chunk_done" {
                    ("done".to_string(), None)
                } else {
                    ("failed".to_string(), e["error"].as_str().map(String::from))
                };
                days.insert((object, day), state);
            }
            _ => {}
        }
    }
    // The runs here plan UTC days of a past year: every planned day is over.
    for e in entries.iter().filter(|e| e["kind"] == "planned") {
        let object = e["object"].as_str().unwrap().to_string();
        let start = e["start"].as_str().unwrap()[..10]
            .parse::<NaiveDate>()
            .unwrap();
        let end = e["end"].as_str().unwrap()[..10]
            .parse::<NaiveDate>()
            .unwrap();
        for day in start.iter_days().take_while(|d| *d < end) {
            days.entry((object.clone(), day))
                .or_insert(("pending".to_string(), None));
        }
    }
    days
}

/// Undoes the browser's attribute serialisation.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// Each day cell of the rendered DOM: (object, day) → (state, title).
fn dom_cells(dom: &str) -> BTreeMap<(String, NaiveDate), (String, String)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let len = tag[start..].find('"')?;
        Some(unescape(&tag[start..start + len]))
    };
    let mut cells = BTreeMap::new();
    for section in dom.split("<section").skip(1) {
        let object = attr(section, "data-object").expect("a section names its object");
        for tag in section.split("<i ").skip(1) {
            let tag = &tag[..tag.find('>').unwrap()];
            let Some(day) = attr(tag, "data-day") else {
                continue;
            };
            let state = attr(tag, "data-state").expect("a day cell has a state");
            let title = attr(tag, "title").unwrap_or_default();
            let previous = cells.insert((object.clone(), day.parse().unwrap()), (state, title));
            assert!(previous.is_none(), "{object} {day} twice");
        }
    }
    cells
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_of_five_objects_shows_each_days_state_in_a_browser() {
    let Some(browser) = browser() else {
        println!("skipped status page test: {CHROMIUM} is not installed");
        return;
    };
    let org = start_default_fake().await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let all = OBJECTS.join(",");
    let o = run(&url, &backfill_args(out, &all, "2025-01-01", "2025-10-31")).await;
    assert_exit(&o, 0);
    // A type change fails Account's November: each day with its error.
    org.add_field("Account", FieldSpec::new("AccountNumber", FieldType::Long))
        .unwrap();
    let o = run(
        &url,
        &backfill_args(out, "Account", "2025-11-01", "2025-11-30"),
    )
    .await;
    assert_exit(&o, 1);
    // A run stopped by its query limit leaves Contact's end of year pending.
    let mut stopped = backfill_args(out, "Contact", "2025-11-01", "2025-12-31");
    stopped.extend(["--query-limit", "1"]);
    assert_exit(&run(&url, &stopped).await, 3);

    let artefacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page");
    std::fs::create_dir_all(&artefacts).unwrap();
    let page = artefacts.join("status.html");
    let o = sfbackfill(
        &url,
        &["status", "--out", out, "--html", page.to_str().unwrap()],
    );
    assert_exit(&o, 0);
    let html = std::fs::read_to_string(&page).unwrap();
    for external in [
        "<script", "<link", "src=", "url(", "@import", "http:", "https:",
    ] {
        assert!(!html.contains(external), "the page loads `{external}`");
    }

    let cells = dom_cells(&chromium(browser, &page, "--dump-dom"));
    let journal = journal_days(dir.path());
    let (first, last) = (
        NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
    );
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for object in OBJECTS {
        for day in first.iter_days().take_while(|d| *d <= last) {
            let key = (object.to_string(), day);
            let (state, title) = cells
                .get(&key)
                .unwrap_or_else(|| panic!("no cell for {object} {day}"));
            let (want, error) = journal
                .get(&key)
                .cloned()
                .unwrap_or(("outside".to_string(), None));
            assert_eq!(state, &want, "{object} {day}: {title}");
            if let Some(error) = error {
                assert!(title.contains(&error), "{object} {day}: {title}");
            }
            *seen
                .entry(match want.as_str() {
                    "done" => "done",
                    "failed" => "failed",
                    "pending" => "pending",
                    _ => "outside",
                })
                .or_default() += 1;
        }
    }
    assert_eq!(
        cells.len(),
        365 * OBJECTS.len(),
        "one cell per day and object"
    );
    assert_eq!(seen.get("failed"), Some(&30), "{seen:?}");
    assert!(seen.get("pending").is_some_and(|n| *n > 0), "{seen:?}");
    assert!(seen.get("outside").is_some_and(|n| *n > 0), "{seen:?}");

    let shot = artefacts.join("status.png");
    let _ = std::fs::remove_file(&shot);
    chromium(browser, &page, &format!("--screenshot={}", shot.display()));
    let png = std::fs::read(&shot).expect("the screenshot is written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    println!("status page and screenshot: {}", artefacts.display());
}

#[test]
fn a_page_that_cannot_be_written_is_one_line_and_an_empty_folder_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let missing = dir.path().join("no-such-folder/status.html");
    let o = sfbackfill(
        "http://127.0.0.1:1",
        &["status", "--out", out, "--html", missing.to_str().unwrap()],
    );
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot write") && err.contains("--html"),
        "{err}"
    );

    let page = dir.path().join("status.html");
    let o = sfbackfill(
        "http://127.0.0.1:1",
        &["status", "--out", out, "--html", page.to_str().unwrap()],
    );
    assert_exit(&o, 0);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("No chunk is recorded"), "{html}");
    assert!(!html.contains("data-day"), "{html}");
}
