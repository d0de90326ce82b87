//! A living org: days that are not over yet, history windows derived from the org, an error
//! met mid-run by one object, and a folder changed by another run before the lock.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use std::path::Path;

use crate::support::*;

use sfbackfill::cmd::DEMO_OBJECTS;

/// Sleeps past a local midnight of `tz` if one is less than `margin` away (either side), so a
/// test's "today" does not change under it.
async fn away_from_midnight(tz: Tz, margin: Duration) {
    let now = Utc::now();
    let local = now.with_timezone(&tz);
    let today = local.date_naive();
    let since = local.naive_local() - today.and_hms_opt(0, 0, 0).unwrap();
    let until = today.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap() - local.naive_local();
    let wait = if since < margin {
        margin - since
    } else if until < margin {
        until + margin
    } else {
        return;
    };
    tokio::time::sleep(wait.to_std().unwrap()).await;
}

/// The journal's lines.
fn journal(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("_sfbackfill/backfill.journal"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `status --json`'s entry for `object`.
fn status_of(url: &str, out: &str, object: &str) -> Value {
    let o = sfbackfill(url, &["status", "--out", out, "--json"]);
    assert_exit(&o, 0);
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["object"] == object)
        .unwrap_or_else(|| panic!("no {object} in {doc}"))
        .clone()
}

fn latency(ms: u64) -> sfbackfill_fake_org::Faults {
    sfbackfill_fake_org::Faults {
        latency: Some(std::time::Duration::from_millis(ms)),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_past_now_copies_only_the_days_that_are_over() {
    let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
    // The test runs a backfill, a plan and several status runs that must all see one "today".
    away_from_midnight(tokyo, Duration::minutes(2)).await;
    let org = start_default_fake().await;
    // Rows dated now, in every object: a run that read today would serve them.
    assert_eq!(org.modify_rows(60), 60);
    let today = Utc::now().with_timezone(&tokyo).date_naive();
    let (start, end) = (
        (today - Duration::days(2)).to_string(),
        (today + Duration::days(2)).to_string(),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let objects = DEMO_OBJECTS.join(",");
    let args = [
        "--objects",
        &objects,
        "--start",
        &start,
        "--end",
        &end,
        "--chunk-timezone",
        "Asia/Tokyo",
        "--safety-lag",
        "1s",
        "--out",
        out,
        "--rate-limit",
        "1000",
    ];
    let before = org.stats();
    let o = run(
        &org.url(),
        &[&["backfill"][..], &args, &["--progress", "off"]].concat(),
    )
    .await;
    assert_exit(&o, 0);
    assert_eq!(
        org.stats().records_served,
        before.records_served,
        "rows of a day not over were read"
    );
    // The first day not over, today, closes one second after Tokyo's next midnight.
    let closes = format!("{} 00:00:01 JST", today + Duration::days(1));
    let line = stderr(&o)
        .lines()
        .find(|l| l.contains("not over yet"))
        .unwrap_or_else(|| panic!("no closing line: {}", stderr(&o)))
        .to_string();
    assert!(line.contains("18 days are not over yet"), "{line}");
    assert!(line.contains(&closes), "{line}");
    assert!(line.contains(&format!("{today} 15:00:01 UTC)")), "{line}");
    for entry in journal(dir.path()) {
        if let Some(day) = entry["day"].as_str() {
            let day: NaiveDate = day.parse().unwrap();
            assert!(day < today, "a day not over was recorded: {entry}");
        }
    }
    for object in DEMO_OBJECTS {
        let s = status_of(&org.url(), out, object);
        assert_eq!(s["chunks_done"], 2, "{s}");
        assert_eq!(s["chunks_pending"], 0, "{s}");
        assert_eq!(s["chunks_not_over"], 3, "{s}");
        let first = format!("{today}T15:00:01.000Z");
        assert_eq!(s["first_closes"], first.as_str(), "{s}");
    }
    let table = stdout(&sfbackfill(&org.url(), &["status", "--out", out]));
    assert!(table.contains("NOT OVER"), "{table}");
    assert!(
        table.contains(&format!(
            "3 days are not over yet; the first closes at {closes}"
        )),
        "{table}"
    );
    let o = run(&org.url(), &[&["plan"][..], &args].concat()).await;
    assert_exit(&o, 0);
    let plan = stdout(&o);
    assert!(plan.contains("NOT OVER"), "{plan}");
    let row: Vec<&str> = plan
        .lines()
        .find(|l| l.starts_with("Account "))
        .unwrap_or_else(|| panic!("no Account row: {plan}"))
        .split_whitespace()
        .collect();
    // OBJECT DAYS DONE NOT-OVER EMPTY ...
    assert_eq!(&row[1..4], ["5", "2", "3"], "{plan}");
    assert!(plan.contains(&closes), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_not_over_stays_pending_and_the_same_command_copies_it_once_over() {
    away_from_midnight(Tz::UTC, Duration::seconds(30)).await;
    let org = start_default_fake().await;
    assert!(org.modify_rows(400) > 0);
    let today = Utc::now().date_naive().to_string();
    // The window ends a few seconds from now: today's part is over a second after that.
    let end: DateTime<Utc> = Utc::now() + Duration::seconds(10);
    let end_text = end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let end: DateTime<Utc> = end_text.parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = [
        "backfill",
        "--objects",
        "Account,Contact",
        "--fields",
        "Account=Name,Industry",
        "--fields",
        "Contact=LastName,Email",
        "--start",
        &today,
        "--end",
        &end_text,
        "--safety-lag",
        "1s",
        "--out",
        out,
        "--rate-limit",
        "1000",
        "--progress",
        "off",
    ];
    let o = run(&org.url(), &args).await;
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("2 days are not over yet and stay pending"),
        "{}",
        stderr(&o)
    );
    assert!(read_output(dir.path(), "Account").is_empty());
    assert_eq!(status_of(&org.url(), out, "Account")["chunks_not_over"], 1);
    let wait = end + Duration::milliseconds(1500) - Utc::now();
    tokio::time::sleep(wait.to_std().unwrap_or_default()).await;
    let o = run(&org.url(), &args).await;
    assert_exit(&o, 0);
    assert!(!stderr(&o).contains("not over"), "{}", stderr(&o));
    for (object, fields) in [
        ("Account", "Name, Industry"),
        ("Contact", "LastName, Email"),
    ] {
        let got = by_id(read_output(dir.path(), object));
        let soql = format!(
            "SELECT Id, LastModifiedDate, {fields} FROM {object} WHERE LastModifiedDate >= {today}T00:00:00Z AND LastModifiedDate < {end_text}"
        );
        let want = by_id(org_rows(&org.url(), object, &soql).await);
        assert!(!want.is_empty(), "{object}: no row was modified today");
        assert_eq!(got, want, "{object}");
        let s = status_of(&org.url(), out, object);
        assert_eq!(
            (&s["chunks_done"], &s["chunks_not_over"]),
            (&1.into(), &0.into())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_start_or_end_the_whole_history_up_to_the_last_day_over_is_copied() {
    let org = start_default_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let args = [
        "--objects",
        "Account,Lead",
        "--fields",
        "Account=Name,Industry",
        "--fields",
        "Lead=LastName,Status",
        "--out",
        out,
        "--rate-limit",
        "1000",
    ];
    let o = run(&org.url(), &[&["plan"][..], &args].concat()).await;
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("from its earliest LastModifiedDate, to the last day over"),
        "{}",
        stdout(&o)
    );
    let o = run(
        &org.url(),
        &[&["backfill"][..], &args, &["--progress", "off"]].concat(),
    )
    .await;
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("backfill: Account: 2025-01-") && err.contains("to the last day over"),
        "{err}"
    );
    assert!(!err.contains("not over"), "{err}");
    for (object, fields) in [("Account", "Name, Industry"), ("Lead", "LastName, Status")] {
        let got = by_id(read_output(dir.path(), object));
        let soql = format!("SELECT Id, LastModifiedDate, {fields} FROM {object}");
        let want = by_id(org_rows(&org.url(), object, &soql).await);
        assert!(want.len() > 1000, "{object}");
        assert_eq!(got.len(), want.len(), "{object}: row count");
        assert_eq!(got, want, "{object}");
    }
    // The plans recorded are each object's own window: from the day of its earliest cursor
    // value to the last UTC midnight at least the 5-minute lag before now.
    let planned: Vec<Value> = journal(dir.path())
        .into_iter()
        .filter(|e| e["kind"] == "planned")
        .collect();
    assert_eq!(planned.len(), 2);
    let midnight = |t: DateTime<Utc>| t.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let last_over = midnight(Utc::now() - Duration::minutes(5));
    for p in &planned {
        let object = p["object"].as_str().unwrap();
        let soql = format!(
            "SELECT Id, LastModifiedDate FROM {object} ORDER BY LastModifiedDate ASC LIMIT 1"
        );
        let first = org_rows(&org.url(), object, &soql).await;
        let earliest =
            DateTime::from_timestamp_millis(first[0]["LastModifiedDate"].parse().unwrap());
        let start: DateTime<Utc> = p["start"].as_str().unwrap().parse().unwrap();
        assert_eq!(start, midnight(earliest.unwrap()), "{p}");
        let end: DateTime<Utc> = p["end"].as_str().unwrap().parse().unwrap();
        // The run may have started just before a midnight this check comes after.
        assert!(
            end == last_over || end + Duration::days(1) == last_over,
            "{p}"
        );
    }
    // A window that ends before the object's first row: nothing to do.
    let empty = tempfile::tempdir().unwrap();
    let empty_out = empty.path().to_str().unwrap();
    let o = run(
        &org.url(),
        &[
            "backfill",
            "--objects",
            "Account",
            "--end",
            "2024-06-30",
            "--out",
            empty_out,
            "--progress",
            "off",
        ],
    )
    .await;
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("Account: nothing to copy"),
        "{}",
        stderr(&o)
    );
    assert!(parquet_files(empty.path(), "Account").is_empty());
    assert!(
        journal(empty.path())
            .iter()
            .all(|e| e["kind"] != "planned" && e["kind"] != "chunk_done")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_hidden_mid_run_fails_that_objects_days_and_the_others_are_copied() {
    let org = start_fake(sfbackfill_fake_org::FakeOrgConfig {
        faults: latency(400),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let mut running = spawn_sfbackfill(
        &org.url(),
        &[
            "backfill",
            "--objects",
            "Account,Contact",
            "--fields",
            "Account=Name,Industry",
            "--fields",
            "Contact=LastName,Email",
            "--start",
            "2025-03-03",
            "--end",
            "2025-03-07",
            "--out",
            out,
            "--rate-limit",
            "1000",
            "--progress",
            "off",
        ],
    );
    // Queries go out only once every describe is answered; the org answers each request after
    // its delay, so the first queries, still waiting, see the field hidden.
    running
        .wait_for("the first query", || {
            requests(&org.stats(), &["query"]) >= 1
        })
        .await;
    org.hide_field("Account", "Industry").unwrap();
    org.set_faults(Default::default());
    let o = running.wait().await;
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("5 chunks failed"), "{err}");
    assert!(err.contains("sfbackfill status"), "{err}");
    let account = status_of(&org.url(), out, "Account");
    assert_eq!(account["chunks_failed"], 5, "{account}");
    assert_eq!(account["chunks_done"], 0, "{account}");
    let error = account["failed"][0]["error"].as_str().unwrap();
    assert!(error.contains("Industry"), "{error}");
    let contact = status_of(&org.url(), out, "Contact");
    assert_eq!(contact["chunks_done"], 5, "{contact}");
    let got = by_id(read_output(dir.path(), "Contact"));
    let want = by_id(
        org_rows(
            &org.url(),
            "Contact",
            "SELECT Id, LastModifiedDate, LastName, Email FROM Contact WHERE LastModifiedDate >= 2025-03-03T00:00:00Z AND LastModifiedDate < 2025-03-08T00:00:00Z",
        )
        .await,
    );
    assert!(!want.is_empty());
    assert_eq!(got, want);
    assert!(read_output(dir.path(), "Account").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_changed_by_a_run_that_finished_before_the_lock_is_refused() {
    let org = start_fake(sfbackfill_fake_org::FakeOrgConfig {
        faults: latency(3000),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let window = ["--start", "2025-03-03", "--end", "2025-03-04", "--out", out];
    let common = ["--rate-limit", "1000", "--progress", "off"];
    // The second run reads the (empty) folder, signs in, and waits on the org's slow answer...
    let mut second = spawn_sfbackfill(
        &org.url(),
        &[
            &[
                "backfill",
                "--objects",
                "Account",
                "--chunk-timezone",
                "America/New_York",
            ][..],
            &window,
            &common,
        ]
        .concat(),
    );
    second
        .wait_for("its sign-in", || requests(&org.stats(), &["limits"]) >= 1)
        .await;
    // ...while the first copies the same days in UTC days, quickly.
    org.set_faults(Default::default());
    let first = run(
        &org.url(),
        &[&["backfill", "--objects", "Account"][..], &window, &common].concat(),
    )
    .await;
    assert_exit(&first, 0);
    let o = second.wait().await;
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("already holds `Account` chunks written with chunk time zone `UTC`"),
        "{err}"
    );
    let last = journal(dir.path()).pop().unwrap();
    assert_eq!(last["outcome"], "refused", "{last}");
    let configs: Vec<Value> = journal(dir.path())
        .into_iter()
        .filter(|e| e["kind"] == "object_config")
        .collect();
    assert_eq!(
        configs.len(),
        1,
        "the refused run recorded no settings of its own"
    );
    assert_eq!(configs[0]["chunk_timezone"], "UTC", "{}", configs[0]);
}
