//! A living org: an error met mid-run by one object, and a folder changed by another run
//! before the lock.

use serde_json::Value;
use std::path::Path;
use std::process::Output;

use crate::support::*;

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

/// Runs the binary in the background (the test keeps driving the org meanwhile).
fn spawn_run(url: &str, args: &[&str]) -> tokio::task::JoinHandle<Output> {
    let url = url.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        sfbackfill(&url, &refs)
    })
}

/// Waits until the org has received `n` requests of `kind`.
async fn wait_for_requests(org: &sfbackfill_fake_org::FakeOrg, kind: &str, n: u64) {
    for _ in 0..3000 {
        if requests(&org.stats(), &[kind]) >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the org never received {n} `{kind}` requests");
}

fn latency(ms: u64) -> sfbackfill_fake_org::Faults {
    sfbackfill_fake_org::Faults {
        latency: Some(std::time::Duration::from_millis(ms)),
        ..Default::default()
    }
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
    let running = spawn_run(
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
    // Objects are described in order: once Contact's describe arrives, Account's is answered,
    // and Account's queries come after Contact's (delayed) describe.
    wait_for_requests(&org, "describe", 2).await;
    assert!(org.hide_field("Account", "Industry"));
    org.set_faults(Default::default());
    let o = running.await.unwrap();
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
async fn a_field_list_changed_by_a_run_that_finished_before_the_lock_is_refused() {
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
    let second = spawn_run(
        &org.url(),
        &[
            &[
                "backfill",
                "--objects",
                "Account",
                "--fields",
                "Account=Name",
            ][..],
            &window,
            &common,
        ]
        .concat(),
    );
    wait_for_requests(&org, "limits", 1).await;
    // ...while the first copies the same days with the standard fields, quickly.
    org.set_faults(Default::default());
    let first = run(
        &org.url(),
        &[&["backfill", "--objects", "Account"][..], &window, &common].concat(),
    )
    .await;
    assert_exit(&first, 0);
    let o = second.await.unwrap();
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("already holds `Account` chunks written with another field list"),
        "{err}"
    );
    let last = journal(dir.path()).pop().unwrap();
    assert_eq!(last["outcome"], "refused", "{last}");
    let configs: Vec<Value> = journal(dir.path())
        .into_iter()
        .filter(|e| e["kind"] == "object_config")
        .collect();
    assert_eq!(configs.len(), 1, "the refused run recorded its field list");
}
