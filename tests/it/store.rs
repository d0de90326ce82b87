//! `--out s3://bucket/prefix` against a real S3-compatible server: `moto`, started on a free
//! loopback port per test. Without moto installed each test prints one `skipped` line and
//! passes, unless `SFBACKFILL_REQUIRE_MOTO=1` (as `.ci/run` sets it). The scenarios every
//! bucket must pass are written once over `ObjectServer` (in `clouds.rs`, which runs them on
//! Azure); here they run on S3, beside what only S3 tests (profiles, the parts a run reads).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use sfbackfill_fake_org::{FakeOrgConfig, Faults};

use crate::support::*;

pub(crate) const OBJECTS: &str = "Account,Contact,Opportunity";
pub(crate) const LOCK_KEY: &str = "one/_sfbackfill/backfill.lock";
const PARTS: &str = "one/_sfbackfill/bulk-parts/";

/// [`crate::support::backfill_args`] of the three objects of these suites.
pub(crate) fn backfill_args<'a>(out: &'a str, start: &'a str, end: &'a str) -> Vec<&'a str> {
    crate::support::backfill_args(out, OBJECTS, start, end)
}

/// The variables of `moto` and `extra`, as the helpers take them.
fn env<'a>(
    moto: &'a [(&'static str, String)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    moto.iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(extra.iter().copied())
        .collect()
}

pub(crate) async fn sf(
    org: &str,
    moto: &impl ObjectServer,
    args: &[&str],
    extra: &[(&str, &str)],
) -> Output {
    let vars = moto.env();
    run_with_env(org, args, &env(&vars, extra)).await
}

pub(crate) fn spawn_sf(
    org: &str,
    moto: &impl ObjectServer,
    args: &[&str],
    extra: &[(&str, &str)],
) -> Running {
    let vars = moto.env();
    spawn_sfbackfill_with_env(org, args, &env(&vars, extra))
}

/// The prefix's objects copied into a new folder, read as a local `--out` is.
pub(crate) fn downloaded(moto: &impl ObjectServer, prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    moto.download(prefix, dir.path());
    dir
}

/// Each object's rows by `Id` and its files' names relative to the folder.
pub(crate) fn contents(out: &Path) -> BTreeMap<String, (BTreeMap<String, Row>, Vec<String>)> {
    OBJECTS
        .split(',')
        .map(|object| {
            let names = parquet_files(out, object)
                .iter()
                .map(|f| f.strip_prefix(out).unwrap().display().to_string())
                .collect();
            (object.to_string(), (by_id(read_output(out, object)), names))
        })
        .collect()
}

/// The same backfill into a local folder: what the bucket must hold.
pub(crate) async fn local_backfill(org: &str, start: &str, end: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        org,
        &backfill_args(dir.path().to_str().unwrap(), start, end),
    )
    .await;
    assert_exit(&o, 0);
    dir
}

/// The entries of a journal in the bucket, in order: each object holds one or more lines.
pub(crate) fn journal(moto: &impl ObjectServer, name: &str) -> Vec<serde_json::Value> {
    moto.keys(&format!("one/_sfbackfill/{name}/"))
        .iter()
        .flat_map(|k| {
            let bytes = moto.get(k);
            assert!(bytes.ends_with(b"\n"), "{k} holds whole lines");
            serde_json::Deserializer::from_slice(&bytes)
                .into_iter::<serde_json::Value>()
                .map(|v| v.expect("a JSON entry"))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_of_three_objects_to_s3_is_exact_and_sync_and_status_use_the_prefix() {
    let Some(moto) = Moto::start("a_backfill_of_three_objects_to_s3_is_exact", &[]) else {
        return;
    };
    crate::clouds::a_backfill_is_exact_and_sync_and_status_use_the_prefix(&moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_kills_mid_upload_then_the_same_command_give_exact_output() {
    let Some(moto) = Moto::start(
        "two_kills_mid_upload_then_the_same_command_give_exact_output",
        // moto's own floor on a multipart part is 5 MiB, as S3's.
        &[("S3_UPLOAD_PART_MIN_SIZE", "1024")],
    ) else {
        return;
    };
    crate::clouds::two_kills_mid_upload_then_the_same_command_are_exact(&moto).await;
}

/// A fake org slow enough that a run holds its lock for seconds.
pub(crate) async fn slow_org() -> sfbackfill_fake_org::FakeOrg {
    start_fake(FakeOrgConfig {
        faults: Faults {
            latency: Some(Duration::from_millis(700)),
            ..Faults::default()
        },
        ..FakeOrgConfig::default()
    })
    .await
}

/// Starts a backfill and stops it (SIGSTOP) once it holds the lock object.
pub(crate) async fn stopped_holder(
    org: &str,
    moto: &impl ObjectServer,
    args: &[&str],
    extra: &[(&str, &str)],
) -> Running {
    let mut first = spawn_sf(org, moto, args, extra);
    let pid = u64::from(first.id());
    // Stopped once its run is journaled, not merely once it holds the lock: the tests name
    // the old holder's run by its `run_started` entry.
    first
        .wait_for(
            "the first run to take the lock and journal its start",
            || {
                moto.keys("one/_sfbackfill/").iter().any(|k| k == LOCK_KEY)
                    && journal(moto, "backfill.journal")
                        .iter()
                        .any(|e| e["kind"] == "run_started" && e["pid"].as_u64() == Some(pid))
            },
        )
        .await;
    first.signal(libc::SIGSTOP);
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_is_refused_while_the_first_runs() {
    let Some(moto) = Moto::start("a_second_writer_is_refused_while_the_first_runs", &[]) else {
        return;
    };
    crate::clouds::a_second_writer_is_refused(&moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lock_is_taken_over_and_the_old_holder_stops() {
    let Some(moto) = Moto::start("a_stale_lock_is_taken_over_and_the_old_holder_stops", &[]) else {
        return;
    };
    crate::clouds::a_stale_lock_is_taken_over(&moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_taken_over_elsewhere_stops_the_holder_at_its_next_renewal() {
    let test = "a_lock_taken_over_elsewhere_stops_the_holder_at_its_next_renewal";
    let Some(moto) = Moto::start(test, &[]) else {
        return;
    };
    crate::clouds::a_lock_taken_over_elsewhere_stops_the_holder(&moto).await;
}

#[test]
fn an_unsupported_scheme_is_refused_and_nothing_is_written() {
    let cwd = tempfile::tempdir().unwrap();
    for out in [
        "ftp://lake/one",
        "http://lake/one",
        "s3:///no-bucket",
        "s3://key:secret@lake/one",
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sfbackfill"));
        cmd.current_dir(cwd.path())
            .args(["backfill", "--objects", "Account", "--start", "2025-03-01"])
            .args(["--end", "2025-03-02", "--out", out, "--progress", "off"])
            // Nothing listens there: a run that started would fail with exit 1.
            .env("SF_INSTANCE_URL", "http://127.0.0.1:9")
            .env("SF_CLIENT_ID", CLIENT_ID)
            .env("SF_CLIENT_SECRET", CLIENT_SECRET);
        let o = output(&mut cmd).unwrap();
        assert_exit(&o, 2);
        let message = stderr(&o);
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(message.contains("--out"), "{message}");
        assert!(!message.contains("secret"), "{message}");
        let written: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
        assert!(written.is_empty(), "{out} wrote {written:?}");
    }
    let o = sfbackfill_with_env(&["compact", "--out", "s3://lake/one"], &[]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("local --out"), "{}", stderr(&o));
}

/// A Bulk run on the bucket killed -9 once a commit is in the bucket's Bulk journal: the
/// committed parts are in the bucket too, so the same command on a new working folder (as a
/// new pod would have) reads on from the journaled locator with the same job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_run_killed_after_a_commit_reads_on_from_the_bucket_with_the_same_job() {
    let Some(moto) = Moto::start(
        "a_bulk_run_killed_after_a_commit_reads_on_from_the_bucket_with_the_same_job",
        &[],
    ) else {
        return;
    };
    a_bulk_run_killed_after_a_commit_reads_on(&moto).await;
}

/// The Bulk kill scenario above on any bucket (`clouds.rs` runs it on Azure).
pub(crate) async fn a_bulk_run_killed_after_a_commit_reads_on(moto: &impl ObjectServer) {
    let org = start_fake(FakeOrgConfig {
        faults: Faults {
            latency: Some(Duration::from_millis(40)),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let url = moto.url("one");
    let mut args = crate::bulk::args(&url, "Case", "2025-09-01", "2025-09-30", "bulk");
    args.extend(["--bulk-page-rows", "300", "--bulk-buffer-bytes", "100000"]);
    let committed = |moto: &_| {
        journal(moto, "bulk.journal")
            .iter()
            .rev()
            .find(|e| e["kind"] == "committed")
            .map(|e| e["rows"].as_u64().unwrap())
    };
    let mut first = spawn_sf(&org.url(), &moto, &args, &[]);
    first
        .wait_for("a commit in the bucket's Bulk journal", || {
            committed(&moto).is_some()
        })
        .await;
    first.signal(libc::SIGKILL);
    first.wait().await;
    assert!(
        !moto.keys("one/_sfbackfill/bulk-parts/").is_empty(),
        "the committed parts are in the bucket"
    );
    assert!(
        !moto
            .keys("one/Case/")
            .iter()
            .any(|k| k.ends_with(".parquet")),
        "the kill landed before the job's days were published"
    );

    // A part a kill left before its commit: no job names it.
    moto.put(&format!("{PARTS}stray-part"), &[7u8; 20_000]);
    // A lock of another host, an hour old: live under a bound of two hours, stale under 60 s.
    let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let holder = serde_json::json!({
        "host": "elsewhere", "pid": 1, "run": "by-hand", "started": hour_ago, "heartbeat": hour_ago,
    });
    moto.put(LOCK_KEY, holder.to_string().as_bytes());
    // The parts each run downloads, where the server's request log can be read (moto).
    let parts_read = |since: Option<usize>| -> Option<Vec<String>> {
        let gets = moto.gets()?;
        let read = gets[since?..]
            .iter()
            .filter(|path| path.starts_with(&format!("/lake/{PARTS}")))
            .cloned()
            .collect();
        Some(read)
    };
    let since = moto.gets().map(|g| g.len());
    let refused = sf(
        &org.url(),
        &moto,
        &args,
        &[("SFBACKFILL_LOCK_STALE_AFTER", "2h")],
    )
    .await;
    assert_exit(&refused, 2);
    assert!(
        stderr(&refused).contains("host elsewhere"),
        "{}",
        stderr(&refused)
    );
    if let Some(read) = parts_read(since) {
        assert_eq!(read, Vec::<String>::new(), "the refused run read parts");
    }

    // Read after the refused run, which writes no entry: a put the killed run had sent has
    // landed by now.
    let rows_committed = committed(&moto).unwrap();
    let named: BTreeSet<String> = journal(&moto, "bulk.journal")
        .iter()
        .filter(|e| e["kind"] == "committed")
        .flat_map(|e| e["parts"].as_array().unwrap().clone())
        .map(|p| format!("/lake/{PARTS}{}", p["file"].as_str().unwrap()))
        .collect();
    assert!(!named.is_empty(), "the commit names its parts");
    let before = org.stats();
    let since = moto.gets().map(|g| g.len());
    let again = sf(&org.url(), &moto, &args, &[]).await;
    assert_exit(&again, 0);
    if let Some(read) = parts_read(since) {
        assert_eq!(
            read.iter().cloned().collect::<BTreeSet<_>>(),
            named,
            "the run read exactly the parts its job names"
        );
        assert_eq!(read.len(), named.len(), "each part once: {read:?}");
    }
    let after = org.stats();
    assert_eq!(
        after.bulk.jobs_created, 1,
        "no second job: {:?}",
        after.bulk
    );
    let got = downloaded(&moto, "one");
    let got = crate::bulk::days(got.path(), "Case");
    let total: u64 = got.values().map(|d| d.len() as u64).sum();
    assert!(rows_committed < total, "{rows_committed} of {total}");
    assert_eq!(
        after.bulk.rows_served - before.bulk.rows_served,
        total - rows_committed,
        "the second run reads on after the committed rows, not from the start"
    );
    let want = crate::bulk::through_rest(&org.url(), "Case", "2025-09-01", "2025-09-30").await;
    crate::bulk::assert_same_days(&got, &want, "Case");
    assert!(
        moto.keys("one/_sfbackfill/bulk-parts/").is_empty(),
        "the parts are in the days' files, and swept from the bucket"
    );
}

const PROFILE_SECRET: &str = "profile-secret-never-shown-7d2e";
const OTHER_SECRET: &str = "other-secret-never-shown-91ac";

/// An sfbackfill run whose AWS settings are only in the profile files of `files`: none of the
/// test's own `AWS_*` variables, and of moto's only `AWS_ALLOW_HTTP` (a plain-HTTP server).
async fn with_profile(
    org: &str,
    moto: &Moto,
    files: &Path,
    args: &[&str],
    extra: &[(&str, &str)],
) -> Output {
    let mut cmd = command(
        args,
        &[
            ("SF_INSTANCE_URL", org),
            ("SF_CLIENT_ID", CLIENT_ID),
            ("SF_CLIENT_SECRET", CLIENT_SECRET),
        ],
    );
    for (name, value) in moto.env() {
        if matches!(name, "TMPDIR" | "AWS_ALLOW_HTTP") {
            cmd.env(name, value);
        }
    }
    cmd.env("AWS_SHARED_CREDENTIALS_FILE", files.join("credentials"))
        .env("AWS_CONFIG_FILE", files.join("config"))
        .env("HOME", files)
        // Were the profile not read, the role chain would ask this dead loopback port.
        .env("AWS_METADATA_ENDPOINT", "http://127.0.0.1:9");
    for (name, value) in extra {
        cmd.env(name, value);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Running::spawn(&mut cmd)
        .expect("the binary starts")
        .wait()
        .await
}

fn assert_no_profile_secret(outputs: &[&Output], moto: &Moto) {
    for o in outputs {
        for bytes in [&o.stdout, &o.stderr] {
            let text = String::from_utf8_lossy(bytes);
            for secret in [PROFILE_SECRET, OTHER_SECRET, CLIENT_SECRET] {
                assert!(!text.contains(secret), "an output shows a secret: {text}");
            }
        }
    }
    for key in moto.keys("") {
        let text = String::from_utf8_lossy(&moto.get(&key)).into_owned();
        for secret in [PROFILE_SECRET, OTHER_SECRET] {
            assert!(!text.contains(secret), "`{key}` holds a secret");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_with_its_keys_only_in_aws_profile_files_is_exact() {
    let Some(moto) = Moto::start(
        "a_backfill_with_its_keys_only_in_aws_profile_files_is_exact",
        &[],
    ) else {
        return;
    };
    let org = start_default_fake().await;
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| std::fs::write(files.path().join(name), text).unwrap();
    let endpoint = &moto.endpoint;
    write(
        "credentials",
        format!(
            "# keys\n[default]\naws_access_key_id = moto-access-key\n\
             aws_secret_access_key = {PROFILE_SECRET}\n\n[other]\n\
             aws_access_key_id = other-access-key\naws_secret_access_key = {OTHER_SECRET}\n"
        ),
    );
    write(
        "config",
        format!(
            "[default]\nregion = us-east-1\nendpoint_url = {endpoint} ; moto\n\n\
             [profile other]\nregion = us-east-1\nendpoint_url = {endpoint}\n"
        ),
    );
    let url = moto.url("one");
    let args = backfill_args(&url, "2025-03-01", "2025-03-05");
    let o = with_profile(&org.url(), &moto, files.path(), &args, &[]).await;
    assert_exit(&o, 0);
    let want = local_backfill(&org.url(), "2025-03-01", "2025-03-05").await;
    assert_eq!(
        contents(downloaded(&moto, "one").path()),
        contents(want.path())
    );

    // The default profile now leads nowhere (half a key pair, a dead endpoint): only the
    // `other` sections of both files reach the bucket.
    write(
        "credentials",
        format!(
            "[default]\naws_access_key_id = moto-access-key\n\n[other]\n\
             aws_access_key_id = other-access-key\naws_secret_access_key = {OTHER_SECRET}\n"
        ),
    );
    write(
        "config",
        format!(
            "[default]\nregion = us-east-1\nendpoint_url = http://127.0.0.1:9\n\n\
             [profile other]\nregion = us-east-1\nendpoint_url = {endpoint}\n"
        ),
    );
    let status = ["status", "--out", &url, "--json"];
    let refused = with_profile(&org.url(), &moto, files.path(), &status, &[]).await;
    assert_exit(&refused, 2);
    let other = [("AWS_PROFILE", "other")];
    let shown = with_profile(&org.url(), &moto, files.path(), &status, &other).await;
    assert_exit(&shown, 0);
    let doc: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    for object in doc["objects"].as_array().unwrap() {
        assert_eq!(object["chunks_done"], 5, "{object}");
    }
    assert_no_profile_secret(&[&o, &refused, &shown], &moto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_unsupported_aws_profile_is_refused_before_any_work() {
    let Some(moto) = Moto::start(
        "a_missing_or_unsupported_aws_profile_is_refused_before_any_work",
        &[],
    ) else {
        return;
    };
    let org = start_default_fake().await;
    let files = tempfile::tempdir().unwrap();
    let endpoint = &moto.endpoint;
    std::fs::write(
        files.path().join("credentials"),
        format!(
            "[default]\naws_access_key_id = moto-access-key\n\
             aws_secret_access_key = {PROFILE_SECRET}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        files.path().join("config"),
        format!(
            "[default]\nregion = us-east-1\nendpoint_url = {endpoint}\n\n\
             [profile sso]\nsso_session = corp\nsso_account_id = 123456789012\n\
             region = us-east-1\nendpoint_url = {endpoint}\n\n\
             [profile proc]\ncredential_process = /bin/echo {OTHER_SECRET}\n\
             region = us-east-1\nendpoint_url = {endpoint}\n"
        ),
    )
    .unwrap();
    let url = moto.url("one");
    let args = backfill_args(&url, "2025-03-01", "2025-03-02");
    let before = org.stats();
    let mut outputs = Vec::new();
    for (profile, says) in [
        ("nowhere", "`nowhere`, but neither"),
        ("proc", "`credential_process`"),
        ("sso", "`sso_account_id`"),
    ] {
        let o = with_profile(
            &org.url(),
            &moto,
            files.path(),
            &args,
            &[("AWS_PROFILE", profile)],
        )
        .await;
        assert_exit(&o, 2);
        let message = stderr(&o);
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(message.contains(says), "{profile}: {message}");
        assert!(message.contains("hint:"), "{message}");
        outputs.push(o);
    }
    assert!(
        moto.keys("").is_empty(),
        "a refused run wrote to the bucket"
    );
    assert_eq!(
        query_requests(&org.stats()),
        query_requests(&before),
        "a refused run queried the org"
    );
    assert_no_profile_secret(&outputs.iter().collect::<Vec<_>>(), &moto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_whose_sfbackfill_folder_holds_what_we_did_not_make_is_refused() {
    let Some(moto) = Moto::start(
        "a_prefix_whose_sfbackfill_folder_holds_what_we_did_not_make_is_refused",
        &[],
    ) else {
        return;
    };
    let org = start_default_fake().await;
    let url = moto.url("one");
    let theirs = ["one/_sfbackfill/other-tool/state.json"];
    for key in theirs {
        moto.put(key, b"{}");
    }
    let before = org.stats();
    let o = sf(
        &org.url(),
        &moto,
        &backfill_args(&url, "2025-03-01", "2025-03-02"),
        &[],
    )
    .await;
    assert_exit(&o, 2);
    let message = stderr(&o);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.contains("`s3://lake/one/_sfbackfill` is not an sfbackfill manifest")
            && message.contains("`other-tool`"),
        "{message}"
    );
    assert_eq!(moto.keys(""), theirs, "the refused run wrote to the bucket");
    assert_eq!(
        query_requests(&org.stats()),
        query_requests(&before),
        "the refused run queried the org"
    );
}
