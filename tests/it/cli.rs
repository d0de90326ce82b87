//! The commands as a user runs them: exit codes, one-line errors, secrets never shown.

use std::path::Path;

use crate::support::*;
use sfbackfill::fake_org::{AuthScenario, FakeOrgConfig};

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
            "(format `sfbackfill-manifest` version 99)",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_never_appears_in_any_output_or_file() {
    let org = start_fake(FakeOrgConfig {
        client_secret: LEAKY_SECRET.into(),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let secret_file = dir.path().join("secret.txt");
    std::fs::write(&secret_file, LEAKY_SECRET).unwrap();
    let url = org.url();
    let runs: Vec<Vec<String>> = vec![
        vec!["check".into(), "--objects".into(), "Account".into()],
        vec!["objects".into()],
        vec!["objects".into(), "Invoice__c".into(), "--json".into()],
        vec![
            "backfill".into(),
            "--objects".into(),
            "Account".into(),
            "--start".into(),
            "2025-03-01".into(),
            "--end".into(),
            "2025-03-03".into(),
            "--out".into(),
            format!("{out}/o"),
            "--rate-limit".into(),
            "100".into(),
        ],
        vec!["status".into(), "--out".into(), format!("{out}/o")],
        vec!["backfill".into(), "--help".into()],
    ];
    for args in runs {
        for env_secret in [true, false] {
            let url = url.clone();
            let args = args.clone();
            let secret_file = secret_file.clone();
            let o = tokio::task::spawn_blocking(move || {
                let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sfbackfill"));
                cmd.args(&args)
                    .env("SF_INSTANCE_URL", &url)
                    .env("SF_CLIENT_ID", CLIENT_ID)
                    .env("RUST_LOG", "trace");
                if env_secret {
                    cmd.env("SF_CLIENT_SECRET", LEAKY_SECRET);
                } else if args[0] != "status" && args.get(1).map(String::as_str) != Some("--help") {
                    cmd.arg("--client-secret-file").arg(&secret_file);
                }
                cmd.output().unwrap()
            })
            .await
            .unwrap();
            assert!(o.status.code().is_some());
            no_secret_in(&o, None);
        }
    }
    std::fs::remove_file(&secret_file).unwrap();
    let o = sfbackfill(&url, &["status", "--out", &format!("{out}/o")]);
    assert_exit(&o, 0);
    no_secret_in(&o, Some(dir.path()));
}
