//! The commands as a user runs them: exit codes, one-line errors, secrets never shown.

use std::path::Path;

use crate::support::*;
use sfbackfill_fake_org::{AuthScenario, FakeOrgConfig};

/// A secret nobody would print by accident: if it shows up anywhere, we leaked it.
const LEAKY_SECRET: &str = "Sup3r-Secret-Value-7731";

fn no_secret_in(o: &std::process::Output, files_under: Option<&Path>) {
    assert!(!stdout(o).contains(LEAKY_SECRET), "secret in stdout");
    assert!(!stderr(o).contains(LEAKY_SECRET), "secret in stderr");
    if let Some(dir) = files_under {
        for entry in walk(dir) {
            let bytes = std::fs::read(&entry).unwrap();
            let hay = String::from_utf8_lossy(&bytes);
            assert!(!hay.contains(LEAKY_SECRET), "secret in {}", entry.display());
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn one_error_line(o: &std::process::Output) -> String {
    let lines: Vec<_> = stderr(o)
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line: {}", stderr(o));
    lines[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_connects_and_reports_each_object() {
    let org = start_default_fake().await;
    let o = run(&org.url(), &["check", "--objects", "Account,Invoice__c"]).await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with("Connected!"), "{out}");
    assert!(out.contains("API usage:"), "{out}");
    assert!(
        out.contains("Account") && out.contains("Invoice__c"),
        "{out}"
    );
    let o = run(&org.url(), &["check", "--objects", "LoginHistory"]).await;
    assert_exit(&o, 2);
    assert!(stdout(&o).contains("--cursor-field"), "{}", stdout(&o));
    let o = run(
        &org.url(),
        &[
            "check",
            "--objects",
            "LoginHistory",
            "--cursor-field",
            "LoginTime",
        ],
    )
    .await;
    assert_exit(&o, 0);
    let o = run(&org.url(), &["check", "--objects", "Acount"]).await;
    assert_exit(&o, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_setup_error_names_the_fix_in_salesforce_setup() {
    let cases: &[(AuthScenario, &str)] = &[
        (AuthScenario::NoRunAsUser, "Run As"),
        (AuthScenario::NoApiScope, "api"),
        (AuthScenario::WrongDomain, "My Domain"),
    ];
    for (scenario, needle) in cases {
        let org = start_fake(FakeOrgConfig {
            auth_scenario: scenario.clone(),
            ..Default::default()
        })
        .await;
        let o = run(&org.url(), &["check"]).await;
        assert_exit(&o, 2);
        let line = one_error_line(&o);
        assert!(line.contains(needle), "{scenario:?}: {line}");
    }
    let org = start_default_fake().await;
    let wrong_id = sfbackfill_with_env(
        &["check"],
        &[
            ("SF_INSTANCE_URL", &org.url()),
            ("SF_CLIENT_ID", "nope"),
            ("SF_CLIENT_SECRET", CLIENT_SECRET),
        ],
    );
    assert_exit(&wrong_id, 2);
    assert!(
        one_error_line(&wrong_id).contains("Consumer Key"),
        "{}",
        stderr(&wrong_id)
    );
    let url = org.url();
    let wrong_secret = tokio::task::spawn_blocking(move || {
        sfbackfill_with_env(
            &["check"],
            &[
                ("SF_INSTANCE_URL", &url),
                ("SF_CLIENT_ID", CLIENT_ID),
                ("SF_CLIENT_SECRET", LEAKY_SECRET),
            ],
        )
    })
    .await
    .unwrap();
    assert_exit(&wrong_secret, 2);
    assert!(
        one_error_line(&wrong_secret).contains("Consumer Secret"),
        "{}",
        stderr(&wrong_secret)
    );
    no_secret_in(&wrong_secret, None);
}

/// `base` with each flag of `extra` (flag, value pairs) set: replaced where `base` has it, else
/// added.
fn with_flags<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = base.to_vec();
    for pair in extra.chunks(2) {
        match args.iter().position(|a| *a == pair[0]) {
            Some(i) => args[i + 1] = pair[1],
            None => args.extend_from_slice(pair),
        }
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_invocations_fail_before_any_request_with_one_line() {
    let org = start_default_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let inputs = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = inputs.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (bad_config, empty_secret, a_file) = (
        file("bad.toml", "bogus-key = 1\n"),
        file("empty-secret", ""),
        file("a-file", "x"),
    );
    let missing = inputs.path().join("missing").to_str().unwrap().to_string();
    // Output folders whose manifest is corrupt or not ours, made from a real journal.
    let journal = seed_journal(&org.url()).await;
    let manifest_out = |name: &str, files: &[(&str, String)]| {
        let out = inputs.path().join(name);
        std::fs::create_dir_all(out.join("_sfbackfill")).unwrap();
        for (file, text) in files {
            std::fs::write(out.join("_sfbackfill").join(file), text).unwrap();
        }
        out.to_str().unwrap().to_string()
    };
    let lines: Vec<&str> = journal.lines().collect();
    assert!(lines.len() >= 4, "a real journal: {journal}");
    let mut garbled = lines.clone();
    garbled.insert(2, "{\"kind\":\"chunk_done\",\"object\":"); // a whole line, not JSON
    let garbled = garbled.join("\n") + "\n";
    let header: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(header["kind"], "header", "{journal}");
    let mut other = header.clone();
    other["format"] = "other-tool".into();
    let other_tool = format!("{other}\n{}\n", lines[1..].join("\n"));
    let mut newer = header.clone();
    newer["version"] = 99.into();
    let newer = format!("{newer}\n{}\n", lines[1..].join("\n"));
    let corrupt_out = manifest_out("corrupt", &[("backfill.journal", garbled)]);
    let other_tool_out = manifest_out("other-tool", &[("backfill.journal", other_tool)]);
    let newer_out = manifest_out("newer", &[("backfill.journal", newer)]);
    let csv_out = manifest_out(
        "csv",
        &[("backfill.journal", "Id,Day\n001,2025-01-01\n".into())],
    );
    let unknown_out = manifest_out("unknown", &[("state.db", "SQLite format 3".into())]);
    let inputs_before = tree(inputs.path());
    let base = [
        "backfill",
        "--objects",
        "Account",
        "--start",
        "2025-01-01",
        "--end",
        "2025-01-31",
        "--out",
        out,
    ];
    let cases: &[(&[&str], &str)] = &[
        (&["--start", "2025-02-30"], "--start 2025-02-30"),
        (&["--end", "2024-12-01"], "window is empty"),
        (&["--chunk-timezone", "Mars/Base"], "Mars/Base"),
        (&["--query-limit", "0"], "--query-limit 0"),
        (&["--window", "25:00-01:00"], "--window 25:00-01:00"),
        (
            &["--objects", "Acc;ount"],
            "not a valid Salesforce API name",
        ),
        (&["--fields", "Account"], "OBJECT=FIELD1,FIELD2"),
        (&["--concurrency", "0"], "--concurrency 0"),
        (
            &["--instance-url", "https://login.salesforce.com"],
            "My Domain",
        ),
        (&["--instance-url", "http://example.com"], "https"),
        (&["--instance-url", "not a url"], "not a url"),
        (&["--start", "2025-13-01"], "--start 2025-13-01"),
        (&["--end", "not-a-date"], "--end not-a-date"),
        (&["--window", "22:00"], "HH:MM-HH:MM"),
        (
            &["--window", "22:00-06:00", "--window-tz", "Nowhere/Zone"],
            "Nowhere/Zone",
        ),
        (&["--rate-limit", "0"], "--rate-limit 0"),
        (
            &["--rate-limit-timeout-ms", "0"],
            "--rate-limit-timeout-ms 0",
        ),
        (&["--request-timeout", "0"], "--request-timeout 0"),
        (&["--max-api-usage", "0"], "--max-api-usage 0"),
        (&["--max-api-usage", "150"], "--max-api-usage 150"),
        (&["--batch-size", "100"], "200 to 2000"),
        (&["--batch-size", "5000"], "200 to 2000"),
        (&["--fields", "Account="], "at least one field"),
        (&["--objects", ""], "--objects is required"),
        (
            &["--cursor-field", "Last Modified"],
            "not a valid Salesforce API name",
        ),
        (&["--api-version", "62"], "vNN.N"),
        (
            &["--instance-url", "https://test.salesforce.com"],
            "My Domain",
        ),
        (&["--instance-url", "ftp://acme.my.salesforce.com"], "https"),
        (&["--config", &missing], "config file"),
        (&["--config", &bad_config], "unknown field `bogus-key`"),
        (&["--client-secret-file", &missing], "--client-secret-file"),
        (
            &["--client-secret-file", &empty_secret],
            "the file is empty",
        ),
        (&["--out", &a_file], "not a folder"),
        (
            &["--out", &corrupt_out],
            "corrupt/_sfbackfill/backfill.journal` is corrupt at line 3",
        ),
        (&["--out", &corrupt_out], "move `"),
        (
            &["--out", &other_tool_out],
            "backfill.journal` is not an sfbackfill manifest (format `other-tool` version 1): \
             use another `--out` folder",
        ),
        (
            &["--out", &newer_out],
            "written by a newer sfbackfill (journal format 99): upgrade sfbackfill",
        ),
        (
            &["--out", &csv_out],
            "csv/_sfbackfill/backfill.journal` is not an sfbackfill",
        ),
        (&["--out", &unknown_out], "unknown file `state.db`"),
    ];
    assert!(cases.len() >= 38);
    for (extra, needle) in cases {
        let args = with_flags(&base, extra);
        let before = org.stats().requests;
        let o = run(&org.url(), &args).await;
        assert_exit(&o, 2);
        let line = one_error_line(&o);
        assert!(line.contains(needle), "{extra:?}: {line}");
        assert_eq!(org.stats().requests, before, "{extra:?} sent a request");
    }
    let sync = [
        "sync",
        "--objects",
        "Account",
        "--start",
        "2025-12-01",
        "--out",
        out,
    ];
    let sync_cases: &[(&[&str], &str)] = &[
        (&["--lookback", "soon"], "--lookback soon"),
        (&["--safety-lag", "5"], "--safety-lag 5"),
        (&["--full-every", "0"], "--full-every 0"),
        (&["--start", "2025-02-30"], "--start 2025-02-30"),
        (&["--query-limit", "0"], "--query-limit 0"),
        (&["--chunk-timezone", "Mars/Base"], "Mars/Base"),
    ];
    for (extra, needle) in sync_cases {
        let args = with_flags(&sync, extra);
        let before = org.stats().requests;
        let o = run(&org.url(), &args).await;
        assert_exit(&o, 2);
        let line = one_error_line(&o);
        assert!(line.contains(needle), "{extra:?}: {line}");
        assert_eq!(org.stats().requests, before, "{extra:?} sent a request");
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "the output folder was changed"
    );
    assert!(
        tree(inputs.path()) == inputs_before,
        "a refused run changed a folder with a corrupt or foreign manifest"
    );
}

/// The journal of a real one-day backfill (header, run, object, plan, chunks, end).
async fn seed_journal(url: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = run(
        url,
        &[
            "backfill",
            "--objects",
            "Account",
            "--start",
            "2025-01-02",
            "--end",
            "2025-01-02",
            "--out",
            out,
        ],
    )
    .await;
    assert_exit(&o, 0);
    std::fs::read_to_string(dir.path().join("_sfbackfill").join("backfill.journal")).unwrap()
}

/// Every file and folder under `dir` with its bytes (folders as `None`).
fn tree(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Option<Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(tree(&p));
            out.insert(p, None);
        } else {
            out.insert(p.clone(), Some(std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// A Ctrl-C while `backfill` or `sync` still signs in and describes (here: while the org takes
/// its time over the first data request) stops the command at once with exit 3 and the
/// resume hint; it is neither lost (the listener is in place before the first request) nor
/// held until the slow request and the describes are done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_while_signing_in_stops_the_run_at_once_with_exit_3() {
    // Far longer than the command may take to stop; the token endpoint is not slowed.
    let latency = std::time::Duration::from_secs(30);
    let org = start_fake(FakeOrgConfig {
        faults: sfbackfill_fake_org::Faults {
            latency: Some(latency),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let url = org.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let window = ["--start", "2025-06-01", "--end", "2025-06-02"];
    let backfill = [
        &["backfill", "--objects", "Account", "--out", out][..],
        &window,
    ]
    .concat();
    let sync = [
        "sync",
        "--objects",
        "Account",
        "--out",
        out,
        "--start",
        "2025-06-01",
    ];
    for args in [&backfill[..], &sync[..]] {
        let before = org.stats().requests;
        let mut child = Running::spawn(
            std::process::Command::new(env!("CARGO_BIN_EXE_sfbackfill"))
                .args(args)
                .env_remove("RUST_LOG")
                .env("SF_INSTANCE_URL", &url)
                .env("SF_CLIENT_ID", CLIENT_ID)
                .env("SF_CLIENT_SECRET", CLIENT_SECRET)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped()),
        )
        .unwrap();
        // The token, then a data request the org sits on.
        child
            .wait_for("its first data request", || {
                org.stats().requests >= before + 2
            })
            .await;
        let signalled = std::time::Instant::now();
        child.signal(libc::SIGINT);
        let o = child.wait().await;
        let took = signalled.elapsed();
        assert_exit(&o, 3);
        let line = one_error_line(&o);
        assert!(
            line.contains("stopped by a signal") && line.contains("run the same command again"),
            "{args:?}: {line}"
        );
        assert!(
            took < latency,
            "{args:?}: stopped {took:?} after the signal, not at once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_objects_and_fields_suggest_close_matches() {
    let org = start_default_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new");
    let out = out.to_str().unwrap();
    let o = run(
        &org.url(),
        &[
            "backfill",
            "--objects",
            "Acount",
            "--start",
            "2025-01-01",
            "--end",
            "2025-01-02",
            "--out",
            out,
        ],
    )
    .await;
    assert_exit(&o, 2);
    assert!(one_error_line(&o).contains("`Account`"), "{}", stderr(&o));
    let o = run(
        &org.url(),
        &[
            "backfill",
            "--objects",
            "Account",
            "--fields",
            "Account=Nmae",
            "--start",
            "2025-01-01",
            "--end",
            "2025-01-02",
            "--out",
            out,
        ],
    )
    .await;
    assert_exit(&o, 2);
    assert!(
        one_error_line(&o).contains("did you mean `Name`"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &org.url(),
        &[
            "backfill",
            "--objects",
            "LoginHistory",
            "--start",
            "2025-01-01",
            "--end",
            "2025-01-02",
            "--out",
            out,
        ],
    )
    .await;
    assert_exit(&o, 2);
    assert!(one_error_line(&o).contains("`LoginTime`"), "{}", stderr(&o));
    assert!(
        !Path::new(out).exists(),
        "a refused run created the output folder"
    );
}

/// How a run gets the secret.
#[derive(Clone, Copy, Debug)]
enum SecretVia {
    Env,
    File,
    ConfigFile,
}

/// Every command of the binary, with the secret given each way, at trace logging: the secret
/// never shows on stdout or stderr, nor in any file written anywhere the binary could write
/// (its output folders, its working folder, HOME, XDG folders and TMPDIR all point into one
/// scanned folder; the secret file itself lives outside it). Errors are included: a refused
/// secret, an unknown object, a bad flag. Every subcommand's `--help` too, listed from
/// `sfbackfill --help` so that a new command is covered without editing this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_never_appears_in_any_output_or_file() {
    let org = start_fake(FakeOrgConfig {
        client_secret: LEAKY_SECRET.into(),
        ..Default::default()
    })
    .await;
    // The same secret is wrong here: the refusal must not echo it.
    let other = start_default_fake().await;
    let scanned = tempfile::tempdir().unwrap();
    let root = scanned.path().to_path_buf();
    let outside = tempfile::tempdir().unwrap();
    let secret_file = outside.path().join("secret.txt");
    std::fs::write(&secret_file, LEAKY_SECRET).unwrap();
    let config = outside.path().join("sfbackfill.toml");
    std::fs::write(
        &config,
        format!("client-secret-file = {:?}\n", secret_file.to_str().unwrap()),
    )
    .unwrap();
    for sub in ["home", "cwd", "tmp", "xdg-config", "xdg-cache", "xdg-data"] {
        std::fs::create_dir(root.join(sub)).unwrap();
    }
    let out = root.join("o").to_str().unwrap().to_string();
    let demo = root.join("demo").to_str().unwrap().to_string();
    let window = ["--start", "2025-03-01", "--end", "2025-03-03"];
    let mut runs: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |url: &str, args: &[&str]| {
        runs.push((
            url.to_string(),
            args.iter().map(|s| s.to_string()).collect(),
        ));
    };
    let url = org.url();
    add(&url, &["check", "--objects", "Account"]);
    add(&url, &["objects"]);
    add(&url, &["objects", "Invoice__c", "--json"]);
    add(
        &url,
        &[
            &["plan", "--objects", "Account", "--out", &out],
            &window[..],
        ]
        .concat(),
    );
    add(
        &url,
        &[
            &["backfill", "--objects", "Account", "--out", &out],
            &window[..],
            &["--rate-limit", "100", "--progress", "off"],
        ]
        .concat(),
    );
    add(
        &url,
        &[
            "sync",
            "--objects",
            "Account",
            "--out",
            &out,
            "--start",
            "2025-12-01",
            "--rate-limit",
            "100",
        ],
    );
    add(&url, &["sync", "--objects", "Account", "--out", &out]);
    add(&url, &["status", "--out", &out]);
    add(&url, &["status", "--out", &out, "--json"]);
    add(
        &url,
        &[
            &["backfill", "--objects", "Acount", "--out", &out],
            &window[..],
        ]
        .concat(),
    );
    add(
        &url,
        &[
            "backfill",
            "--objects",
            "Account",
            "--out",
            &out,
            "--start",
            "nope",
        ],
    );
    add(&other.url(), &["check"]);
    add(
        &other.url(),
        &[
            &["backfill", "--objects", "Account", "--out", &out],
            &window[..],
        ]
        .concat(),
    );
    add(&url, &["demo", "--out", &demo, "--progress", "off"]);
    add(&url, &["--help"]);
    add(&url, &["--version"]);
    for sub in subcommands() {
        add(&url, &[sub.as_str(), "--help"]);
    }
    let mut ran = 0;
    for (url, args) in runs {
        for via in [SecretVia::Env, SecretVia::File, SecretVia::ConfigFile] {
            let (dir, url, secret_file, config) = (
                root.clone(),
                url.clone(),
                secret_file.clone(),
                config.clone(),
            );
            let a = args.clone();
            let o = tokio::task::spawn_blocking(move || {
                let mut cmd = leak_command(&dir);
                cmd.args(&a).env("SF_INSTANCE_URL", &url);
                let takes_connection = matches!(
                    a[0].as_str(),
                    "check" | "objects" | "plan" | "backfill" | "sync"
                ) && !a.iter().any(|x| x == "--help");
                match via {
                    SecretVia::Env => {
                        cmd.env("SF_CLIENT_SECRET", LEAKY_SECRET);
                    }
                    SecretVia::File if takes_connection => {
                        cmd.arg("--client-secret-file").arg(&secret_file);
                    }
                    SecretVia::ConfigFile if takes_connection => {
                        cmd.arg("--config").arg(&config);
                    }
                    // Commands without a connection: the secret still sits in the environment.
                    _ => {
                        cmd.env("SF_CLIENT_SECRET", LEAKY_SECRET);
                    }
                }
                output(&mut cmd).unwrap()
            })
            .await
            .unwrap();
            assert!(o.status.code().is_some(), "{args:?} ({via:?}) was killed");
            assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
            no_secret_in(&o, Some(&root));
            ran += 1;
        }
    }
    // The long-running fake org: serve, then Ctrl-C.
    let root2 = root.clone();
    let o = tokio::task::spawn_blocking(move || fake_org_until_interrupted(&root2))
        .await
        .unwrap();
    no_secret_in(&o, Some(&root));
    ran += 1;
    // The runs did write: a backfill folder with files, a demo folder.
    assert!(
        walk(&root.join("o")).len() > 2,
        "the backfill wrote nothing"
    );
    assert!(root.join("demo").exists(), "the demo wrote nothing");
    assert!(ran >= 50, "{ran} runs");
}

/// The subcommands `sfbackfill --help` lists.
fn subcommands() -> Vec<String> {
    let o = sfbackfill_with_env(&["--help"], &[]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    let list: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect();
    for known in [
        "check", "objects", "plan", "backfill", "status", "demo", "fake-org",
    ] {
        assert!(list.iter().any(|c| c == known), "{known} not in {list:?}");
    }
    list
}

/// The binary with every place it could write pointing into `root`, tracing on.
fn leak_command(root: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sfbackfill"));
    cmd.current_dir(root.join("cwd"))
        .env_remove("SF_INSTANCE_URL")
        .env_remove("SF_CLIENT_SECRET")
        .env_remove("SF_API_VERSION")
        .env("SF_CLIENT_ID", CLIENT_ID)
        .env("RUST_LOG", "trace")
        .env("HOME", root.join("home"))
        .env("TMPDIR", root.join("tmp"))
        .env("XDG_CONFIG_HOME", root.join("xdg-config"))
        .env("XDG_CACHE_HOME", root.join("xdg-cache"))
        .env("XDG_DATA_HOME", root.join("xdg-data"))
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs `sfbackfill fake-org` with the secret in its environment until it serves, then
/// interrupts it (once: it listens before it serves); returns what it printed.
fn fake_org_until_interrupted(root: &Path) -> std::process::Output {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Running::spawn(
        leak_command(root)
            .args(["fake-org", "--port", &port.to_string()])
            .env("SF_CLIENT_SECRET", LEAKY_SECRET)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    )
    .unwrap();
    child.wait_for_blocking("fake-org to accept on its port", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    child.signal(libc::SIGINT);
    let o = child.wait_blocking();
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("fake-org: served"),
        "no clean stop: {}",
        stderr(&o)
    );
    o
}

#[test]
fn every_subcommand_help_shows_an_example_invocation() {
    for sub in subcommands() {
        for flag in ["-h", "--help"] {
            let o = sfbackfill_with_env(&[sub.as_str(), flag], &[]);
            assert_exit(&o, 0);
            let text = stdout(&o);
            assert!(
                text.contains("Example") && text.contains(&format!("sfbackfill {sub}")),
                "`sfbackfill {sub} {flag}` shows no example:\n{text}"
            );
        }
    }
}
