//! `--out az://container/prefix` against a real Azure Blob Storage emulator: Azurite, started
//! on a free loopback port per test, the same checks as the S3 suite (`store.rs`) runs against
//! moto. Without Azurite each test prints one `skipped` line and passes, unless
//! `SFBACKFILL_REQUIRE_AZURITE=1` (as `.ci/run` sets it, after
//! `npm install --prefix ~/.cache/sfbackfill-azurite azurite@3.35.0`).
//!
//! `gs://` has no suite: no emulator installable from a package registry speaks the XML API
//! that `object_store`'s GCS client uses (puts with `x-goog-if-generation-match`, listing with
//! `list-type=2`, XML multipart uploads); docs/object-storage.md says which were tried.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

use crate::store::{
    LOCK_KEY, backfill_args, contents, downloaded, journal, local_backfill, sf, slow_org,
    stopped_holder,
};
use crate::support::*;

/// Azurite's well-known development account and key (public, in every Azure SDK).
const ACCOUNT: &str = "devstoreaccount1";
const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const CONTAINER: &str = "lake";
/// Where `.ci/run` installs Azurite when it is not on the `PATH`, under `$HOME`.
const CACHED: &str = ".cache/sfbackfill-azurite/node_modules/.bin/azurite-blob";

/// An Azurite blob service on a free loopback port, in a folder of its own, with one
/// container; killed when dropped.
struct Azurite {
    /// First: fields drop in order, and the server must stop before its folders go.
    _server: Running,
    endpoint: String,
    /// The runs' `TMPDIR`: the working folders a kill -9 leaves go with it.
    tmp: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl Azurite {
    /// Starts Azurite, or prints one `skipped` line and returns `None` when it is not
    /// installed; with `SFBACKFILL_REQUIRE_AZURITE=1` a missing Azurite fails the test instead.
    fn start(test: &str) -> Option<Azurite> {
        let Some(program) = azurite_program() else {
            assert!(
                std::env::var("SFBACKFILL_REQUIRE_AZURITE").as_deref() != Ok("1"),
                "SFBACKFILL_REQUIRE_AZURITE=1 but Azurite is not installed: \
                 npm install --prefix ~/.cache/sfbackfill-azurite azurite@3.35.0"
            );
            println!(
                "skipped clouds::{test}: Azurite not installed \
                 (npm install --prefix ~/.cache/sfbackfill-azurite azurite@3.35.0)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let data = tempfile::tempdir().expect("a folder for Azurite");
        let mut cmd = Command::new(program);
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(data.path())
            // Loopback only: no telemetry sent out, no access log, any API version.
            .args([
                "--disableTelemetry",
                "--silent",
                "--skipApiVersionCheck",
                "--loose",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut server = Running::spawn(&mut cmd).expect("Azurite starts");
        let addr = format!("127.0.0.1:{port}");
        server.wait_for_blocking("Azurite to listen", || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        let azurite = Azurite {
            endpoint: format!("http://{addr}"),
            tmp: tempfile::tempdir().expect("a temporary folder"),
            _data: data,
            _server: server,
        };
        azurite.create_container();
        Some(azurite)
    }

    /// Creates the container with a request signed with the account key (`object_store` has
    /// no call for it, and Azurite refuses unsigned requests).
    fn create_container(&self) {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let version = "2021-08-06";
        let to_sign = format!(
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n\
             /{ACCOUNT}/{ACCOUNT}/{CONTAINER}\nrestype:container"
        );
        let engine = base64::engine::general_purpose::STANDARD;
        let key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            &engine.decode(ACCOUNT_KEY).expect("a base64 key"),
        );
        let signature = engine.encode(ring::hmac::sign(&key, to_sign.as_bytes()));
        let url = format!("{}/{ACCOUNT}/{CONTAINER}?restype=container", self.endpoint);
        block_on(async {
            http()
                .put(url)
                .header("x-ms-date", &date)
                .header("x-ms-version", version)
                .header("Authorization", format!("SharedKey {ACCOUNT}:{signature}"))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .expect("the container is created");
        });
    }
}

impl ObjectServer for Azurite {
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            // Azurite's key is public, but it is passed as a user's secret key would be.
            ("AZURE_STORAGE_ACCOUNT_KEY", ACCOUNT_KEY.into()),
            ("AZURITE_BLOB_STORAGE_URL", self.endpoint.clone()),
            ("TMPDIR", self.tmp.path().display().to_string()),
        ]
    }

    fn url(&self, prefix: &str) -> String {
        format!("az://{CONTAINER}/{prefix}")
    }

    fn store(&self) -> Arc<dyn object_store::ObjectStore> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // The emulator mode reads its endpoint from the process's environment; the test's
        // client names the same account, key and endpoint itself.
        let builder = object_store::azure::MicrosoftAzureBuilder::new()
            .with_account(ACCOUNT)
            .with_access_key(ACCOUNT_KEY)
            .with_endpoint(format!("{}/{ACCOUNT}", self.endpoint))
            .with_allow_http(true)
            .with_container_name(CONTAINER);
        Arc::new(builder.build().expect("a client of Azurite"))
    }
}

/// `azurite-blob` on the `PATH`, else where `.ci/run` installs it.
fn azurite_program() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("azurite-blob"));
    let cached = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(CACHED));
    on_path.chain(cached).find(|p| p.is_file())
}

const START: &str = "2025-03-01";
const END: &str = "2025-03-10";

/// A backfill of three objects gives the bucket the rows and file names of a local run, its
/// journal entries, nothing else, and the lock released; `--repull`, `status` and `sync` work
/// on the same prefix; no secret is in any object or output.
pub(crate) async fn a_backfill_is_exact_and_sync_and_status_use_the_prefix(
    server: &impl ObjectServer,
) {
    let org = start_default_fake().await;
    let url = server.url("one");
    let o = sf(&org.url(), server, &backfill_args(&url, START, END), &[]).await;
    assert_exit(&o, 0);
    let want = contents(local_backfill(&org.url(), START, END).await.path());
    for (object, (rows, _)) in &want {
        assert!(!rows.is_empty(), "{object} has rows");
    }
    assert_eq!(contents(downloaded(server, "one").path()), want);
    for key in server.keys("") {
        let file = key.ends_with("/part-00000.parquet") && key.contains("/date=2025-03-");
        let entry = ["backfill.journal", "bulk.journal"]
            .iter()
            .any(|j| key.starts_with(&format!("one/_sfbackfill/{j}/")))
            && key.ends_with(".json");
        assert!(
            file || entry,
            "unexpected key `{key}` (the lock is released)"
        );
    }
    let mut repull = backfill_args(&url, "2025-03-04", "2025-03-05");
    repull.push("--repull");
    let repulled = sf(&org.url(), server, &repull, &[]).await;
    assert_exit(&repulled, 0);
    assert_eq!(contents(downloaded(server, "one").path()), want);

    let sync = [
        "sync",
        "--objects",
        "Account",
        "--out",
        &url,
        "--start",
        START,
    ];
    let synced = sf(&org.url(), server, &sync, &[]).await;
    assert_exit(&synced, 0);
    let again = sf(&org.url(), server, &sync[..5], &[]).await;
    assert_exit(&again, 0);
    assert!(
        server
            .keys("one/Account/")
            .iter()
            .any(|k| k.contains("/sync-")),
        "the sync wrote its files to the bucket"
    );
    let status = sf(
        &org.url(),
        server,
        &["status", "--out", &url, "--json"],
        &[],
    )
    .await;
    assert_exit(&status, 0);
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["out"], url.as_str());
    assert_eq!(doc["objects"].as_array().unwrap().len(), 3, "{doc}");
    for object in doc["objects"].as_array().unwrap() {
        assert_eq!(object["chunks_done"], 10, "{object}");
        assert_eq!(object["chunks_pending"], 0, "{object}");
    }
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{doc}");
    for f in files {
        assert!(
            f["object"].is_string() && f["files"].as_u64() > Some(0),
            "{f}"
        );
    }
    assert_eq!(doc["sync"][0]["object"], "Account");
    assert_eq!(doc["sync"][0]["syncs"], 2);
    assert!(!journal(server, "sync.journal").is_empty());
    assert_no_secret(server, &[&o, &repulled, &synced, &again, &status]);
}

/// Neither the Salesforce secret nor the store's keys (the variables given to sfbackfill
/// named `*KEY*` or `*SECRET*`) are in any output or object.
fn assert_no_secret(server: &impl ObjectServer, outputs: &[&std::process::Output]) {
    let vars = server.env();
    let secrets: Vec<&str> = vars
        .iter()
        .filter(|(name, _)| name.contains("KEY") || name.contains("SECRET"))
        .map(|(_, value)| value.as_str())
        .chain([CLIENT_SECRET])
        .collect();
    assert!(secrets.len() > 1, "the store is given a key");
    let texts = outputs
        .iter()
        .flat_map(|o| [o.stdout.clone(), o.stderr.clone()])
        .chain(server.keys("").into_iter().map(|key| server.get(&key)));
    for text in texts {
        let text = String::from_utf8_lossy(&text);
        for secret in &secrets {
            assert!(!text.contains(secret), "a secret is shown");
        }
    }
}

/// Killed twice in the middle of a multipart upload, then run again: whatever the bucket
/// lists reads whole after each kill, and the third run's output is a local run's.
pub(crate) async fn two_kills_mid_upload_then_the_same_command_are_exact(
    server: &impl ObjectServer,
) {
    let org = start_default_fake().await;
    let url = server.url("one");
    let args = backfill_args(&url, START, END);
    // 4 KiB parts: every day file is a multipart upload of a few parts.
    let parts = ("SFBACKFILL_UPLOAD_PART_SIZE", "4096");
    for kill_at in ["part:3", "part:25"] {
        let killed = [parts, ("SFBACKFILL_TEST_STORE_KILL", kill_at)];
        let o = sf(&org.url(), server, &args, &killed).await;
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&o.status),
            Some(libc::SIGKILL),
            "killed at {kill_at}: {}",
            stderr(&o)
        );
        let listed = downloaded(server, "one");
        for object in crate::store::OBJECTS.split(',') {
            read_output(listed.path(), object);
        }
    }
    let done = journal(server, "backfill.journal")
        .iter()
        .filter(|e| e["kind"] == "chunk_done")
        .count();
    assert!(
        done > 0 && done < 30,
        "the kills left {done} of 30 days done"
    );
    let o = sf(&org.url(), server, &args, &[parts]).await;
    assert_exit(&o, 0);
    let want = local_backfill(&org.url(), START, END).await;
    assert_eq!(
        contents(downloaded(server, "one").path()),
        contents(want.path())
    );
}

/// While a run holds the lock, a second is refused with exit 2 and the holder's pid, and
/// writes no journal entry.
pub(crate) async fn a_second_writer_is_refused(server: &impl ObjectServer) {
    let org = slow_org().await;
    let url = server.url("one");
    let args = backfill_args(&url, START, END);
    let mut first = stopped_holder(&org.url(), server, &args, &[]).await;
    let first_pid = first.id();
    let second = sf(&org.url(), server, &args, &[]).await;
    first.signal(libc::SIGCONT);
    assert_exit(&second, 2);
    let message = stderr(&second);
    assert!(
        message.contains("another sfbackfill is writing"),
        "{message}"
    );
    assert!(
        message.contains(&format!("pid {}", first.id())),
        "{message}"
    );
    assert_exit(&first.wait().await, 0);
    // A run's first entry names its pid: the refused run wrote none. (The stopped run's
    // request in flight when it was stopped still lands: the journal's length would race.)
    let started: Vec<_> = journal(server, "backfill.journal")
        .into_iter()
        .filter(|e| e["kind"] == "run_started")
        .map(|e| e["pid"].as_u64())
        .collect();
    assert_eq!(started, [Some(u64::from(first_pid))], "one run started");
    assert!(!server.keys("").iter().any(|k| k == LOCK_KEY), "released");
}

/// A lock whose heartbeat is older than the stale bound is taken over by the next run, which
/// finishes exact; the old holder, resumed, stops without writing another entry.
pub(crate) async fn a_stale_lock_is_taken_over(server: &impl ObjectServer) {
    let org = slow_org().await;
    let url = server.url("one");
    let args = backfill_args(&url, START, END);
    // Long enough that the new holder's own renewals (every twelfth, lost at half) ride out a
    // busy server; the old holder's heartbeat is left to grow older than it.
    let stale = ("SFBACKFILL_LOCK_STALE_AFTER", "4s");
    let mut old = stopped_holder(&org.url(), server, &args, &[stale]).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let new = sf(&org.url(), server, &args, &[stale]).await;
    assert_exit(&new, 0);
    let took = stderr(&new);
    assert!(took.contains("took over the lock"), "{took}");
    assert!(took.contains(&format!("pid {}", old.id())), "{took}");
    let written = journal(server, "backfill.journal").len();
    old.signal(libc::SIGCONT);
    let old = old.wait().await;
    assert_exit(&old, 1);
    let why = stderr(&old);
    assert!(
        why.contains("lost its lock") || why.contains("first: this run stops here"),
        "{why}"
    );
    assert_eq!(
        journal(server, "backfill.journal").len(),
        written,
        "the old holder wrote after the takeover"
    );
    let want = local_backfill(&org.url(), START, END).await;
    assert_eq!(
        contents(downloaded(server, "one").path()),
        contents(want.path())
    );
}

/// A lock replaced under a running holder (another host took it over) fails the holder's
/// next renewal, conditional on its version: the run stops with exit 1 naming the new
/// holder, before its days are done, and leaves the new holder's lock in place.
pub(crate) async fn a_lock_taken_over_elsewhere_stops_the_holder(server: &impl ObjectServer) {
    use object_store::ObjectStoreExt;
    let org = slow_org().await;
    let url = server.url("one");
    let args = backfill_args(&url, START, END);
    let stale = ("SFBACKFILL_LOCK_STALE_AFTER", "6s");
    let mut run = crate::store::spawn_sf(&org.url(), server, &args, &[stale]);
    run.wait_for("the run to take the lock and journal its start", || {
        journal(server, "backfill.journal")
            .iter()
            .any(|e| e["kind"] == "run_started")
    })
    .await;
    let now = chrono::Utc::now().to_rfc3339();
    let elsewhere = serde_json::json!({
        "host": "elsewhere", "pid": 7, "run": "r-elsewhere", "started": now, "heartbeat": now,
    });
    let lock = object_store::path::Path::from(LOCK_KEY);
    let store = server.store();
    block_on(store.put(&lock, serde_json::to_vec(&elsewhere).unwrap().into()))
        .expect("the lock is replaced");
    let o = run.wait().await;
    assert_exit(&o, 1);
    let why = stderr(&o);
    assert!(why.contains("lost its lock"), "{why}");
    assert!(why.contains("taken over by host elsewhere, pid 7"), "{why}");
    let done = journal(server, "backfill.journal")
        .iter()
        .filter(|e| e["kind"] == "chunk_done")
        .count();
    assert!(
        done < 30,
        "the run stopped before its last day: {done} of 30"
    );
    let held: serde_json::Value = serde_json::from_slice(&server.get(LOCK_KEY)).unwrap();
    assert_eq!(
        held["host"], "elsewhere",
        "the new holder's lock is left alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_a_backfill_of_three_objects_is_exact_and_sync_and_status_use_the_prefix() {
    let test = "azure_a_backfill_of_three_objects_is_exact_and_sync_and_status_use_the_prefix";
    if let Some(azurite) = Azurite::start(test) {
        a_backfill_is_exact_and_sync_and_status_use_the_prefix(&azurite).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_two_kills_mid_upload_then_the_same_command_give_exact_output() {
    let test = "azure_two_kills_mid_upload_then_the_same_command_give_exact_output";
    if let Some(azurite) = Azurite::start(test) {
        two_kills_mid_upload_then_the_same_command_are_exact(&azurite).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_a_second_writer_is_refused_while_the_first_runs() {
    let test = "azure_a_second_writer_is_refused_while_the_first_runs";
    if let Some(azurite) = Azurite::start(test) {
        a_second_writer_is_refused(&azurite).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_a_stale_lock_is_taken_over_and_the_old_holder_stops() {
    let test = "azure_a_stale_lock_is_taken_over_and_the_old_holder_stops";
    if let Some(azurite) = Azurite::start(test) {
        a_stale_lock_is_taken_over(&azurite).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_a_lock_taken_over_elsewhere_stops_the_holder_at_its_next_renewal() {
    let test = "azure_a_lock_taken_over_elsewhere_stops_the_holder_at_its_next_renewal";
    if let Some(azurite) = Azurite::start(test) {
        a_lock_taken_over_elsewhere_stops_the_holder(&azurite).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_a_bulk_run_killed_after_a_commit_reads_on_from_the_container_with_the_same_job() {
    let test =
        "azure_a_bulk_run_killed_after_a_commit_reads_on_from_the_container_with_the_same_job";
    if let Some(azurite) = Azurite::start(test) {
        crate::store::a_bulk_run_killed_after_a_commit_reads_on(&azurite).await;
    }
}
