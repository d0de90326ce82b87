//! The Salesforce client against the fake org: sign-in, setup errors, retries, limits.
//!
//! Each test calls the library's `SalesforceClient` directly over real HTTP on loopback and
//! checks what the org's own counters saw.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sfbackfill::error::{ExitKind, UserFacing};
use sfbackfill::salesforce::{ClientConfig, FetchError, QueryPage, SalesforceClient};
use sfbackfill::secret::Secret;
use sfbackfill_fake_org::{AuthScenario, FakeOrg, FakeOrgConfig, Faults};

use crate::support::*;

/// A secret nobody would print by accident.
const LEAKY_SECRET: &str = "Cl13nt-Secret-Never-Shown-5521";

fn config(url: &str) -> ClientConfig {
    ClientConfig {
        instance_url: url.to_string(),
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(CLIENT_SECRET),
        api_version: "v62.0".into(),
        concurrency: 4,
        rate_limit: 200,
        rate_interval: Duration::from_millis(100),
        request_timeout: Duration::from_secs(10),
        max_api_usage_pct: 100.0,
        max_attempts: 6,
        batch_size: None,
    }
}

async fn connect(cfg: ClientConfig) -> SalesforceClient {
    SalesforceClient::connect(cfg).await.expect("signs in")
}

fn kind(org: &FakeOrg, kind: &str) -> u64 {
    org.stats().by_kind.get(kind).copied().unwrap_or(0)
}

fn status(org: &FakeOrg, status: u16) -> u64 {
    org.stats().by_status.get(&status).copied().unwrap_or(0)
}

/// The one line `main` would print for this error.
fn line(e: &FetchError) -> String {
    format!("{e}; hint: {}", e.hint().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_setup_error_gives_its_fix_and_exit_2_without_retrying() {
    let cases: &[(AuthScenario, &str)] = &[
        (AuthScenario::NoRunAsUser, "Run As"),
        (AuthScenario::NoApiScope, "`api`"),
        (AuthScenario::WrongDomain, "My Domain"),
        (AuthScenario::FlowDisabled, "Enable Client Credentials Flow"),
    ];
    for (scenario, needle) in cases {
        let org = start_fake(FakeOrgConfig {
            auth_scenario: scenario.clone(),
            ..Default::default()
        })
        .await;
        let e = SalesforceClient::connect(config(&org.url()))
            .await
            .unwrap_err();
        assert_eq!(e.exit_kind(), ExitKind::Usage, "{scenario:?}: {e}");
        assert!(line(&e).contains(needle), "{scenario:?}: {}", line(&e));
        assert!(!line(&e).contains('\n'));
        assert_eq!(
            kind(&org, "token"),
            1,
            "{scenario:?}: a setup error is not retried"
        );
        assert_eq!(
            org.stats().requests,
            1,
            "{scenario:?}: nothing after the token"
        );
    }
    let org = start_default_fake().await;
    let mut wrong_id = config(&org.url());
    wrong_id.client_id = "not-the-key".into();
    let e = SalesforceClient::connect(wrong_id).await.unwrap_err();
    assert_eq!(e.exit_kind(), ExitKind::Usage);
    assert!(line(&e).contains("Consumer Key"), "{}", line(&e));
    let mut wrong_secret = config(&org.url());
    wrong_secret.client_secret = Secret::new(LEAKY_SECRET);
    let e = SalesforceClient::connect(wrong_secret.clone())
        .await
        .unwrap_err();
    assert_eq!(e.exit_kind(), ExitKind::Usage);
    assert!(line(&e).contains("Consumer Secret"), "{}", line(&e));
    for shown in [
        format!("{e}"),
        format!("{e:?}"),
        line(&e),
        format!("{wrong_secret:?}"),
    ] {
        assert!(!shown.contains(LEAKY_SECRET), "the secret leaked: {shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_that_refuse_the_flow_are_caught_before_any_request() {
    for url in [
        "https://login.salesforce.com",
        "https://test.salesforce.com",
        "https://acme.my.salesforce-setup.com",
    ] {
        let started = Instant::now();
        let e = SalesforceClient::connect(config(url)).await.unwrap_err();
        assert!(matches!(e, FetchError::NotMyDomain { .. }), "{url}: {e:?}");
        assert!(line(&e).contains("Setup → My Domain"), "{}", line(&e));
        assert_eq!(e.exit_kind(), ExitKind::Usage);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "no network was tried"
        );
    }
    let e = SalesforceClient::connect(config("http://example.com"))
        .await
        .unwrap_err();
    assert!(line(&e).contains("https"), "{}", line(&e));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_client_never_shows_the_secret() {
    let org = start_fake(FakeOrgConfig {
        client_secret: LEAKY_SECRET.into(),
        ..Default::default()
    })
    .await;
    let mut cfg = config(&org.url());
    cfg.client_secret = Secret::new(LEAKY_SECRET);
    let client = connect(cfg).await;
    assert_eq!(client.instance_url(), org.url());
    assert!(client.usage().is_some(), "/limits read at sign-in");
    let debug = format!("{client:?}");
    assert!(!debug.contains(LEAKY_SECRET), "{debug}");
    assert!(debug.contains("[redacted]"), "{debug}");
    let e = client.describe("NoSuchThing__c").await.unwrap_err();
    assert!(!format!("{e:?} {e}").contains(LEAKY_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describes_and_queries_speak_the_rest_api() {
    let org = start_default_fake().await;
    let mut cfg = config(&org.url());
    cfg.batch_size = Some(200);
    let client = connect(cfg).await;
    let global = client.describe_global().await.unwrap();
    assert!(global.iter().any(|o| o.name == "Account"), "{global:?}");
    let account = client.describe("Account").await.unwrap();
    assert!(account.field("Id").is_some());
    let e = client.describe("Acount").await.unwrap_err();
    assert!(matches!(e, FetchError::UnknownObject { .. }), "{e:?}");
    assert_eq!(e.exit_kind(), ExitKind::Usage);
    assert!(
        line(&e).contains("`Acount`") && line(&e).contains("permission set"),
        "{}",
        line(&e)
    );

    let count = client
        .query_json("SELECT COUNT() FROM Account")
        .await
        .unwrap();
    let total = count["totalSize"].as_u64().unwrap();
    assert!(
        total > 200,
        "the sample has more than one page of accounts: {total}"
    );

    let mut page = QueryPage::First {
        soql: "SELECT Id, Name FROM Account".into(),
        include_deleted: false,
    };
    let mut rows = 0;
    let mut pages = 0;
    loop {
        let body: serde_json::Value =
            serde_json::from_slice(&client.query_page(&page).await.unwrap()).unwrap();
        let records = body["records"].as_array().unwrap().len();
        assert!(records <= 200, "batchSize is sent: {records}");
        rows += records as u64;
        pages += 1;
        match body["nextRecordsUrl"].as_str() {
            Some(next) if body["done"] == false => page = QueryPage::Next { url: next.into() },
            _ => break,
        }
    }
    assert_eq!(rows, total);
    assert_eq!(kind(&org, "query_more"), pages - 1);

    let e = client
        .query_json("SELECT Nope__c FROM Account")
        .await
        .unwrap_err();
    assert_eq!(e.exit_kind(), ExitKind::Usage, "{e:?}");
    let e = client
        .query_page(&QueryPage::Next {
            url: "https://elsewhere.example/services/data/v62.0/query/01g-200".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::ForeignCursor { .. }), "{e:?}");
}

/// Of the requests of `kind`, those that carried `Sforce-Query-Options: batchSize=N`.
fn with_batch_size(org: &FakeOrg, kind: &str) -> u64 {
    org.stats().with_batch_size.get(kind).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_request_of_a_query_carries_the_batch_size() {
    let org = start_default_fake().await;
    for batch_size in [Some(200), None] {
        let mut cfg = config(&org.url());
        cfg.batch_size = batch_size;
        let client = connect(cfg).await;
        org.reset_stats();
        for include_deleted in [false, true] {
            let mut page = QueryPage::First {
                soql: "SELECT Id FROM Account".into(),
                include_deleted,
            };
            loop {
                let body: serde_json::Value =
                    serde_json::from_slice(&client.query_page(&page).await.unwrap()).unwrap();
                match body["nextRecordsUrl"].as_str() {
                    Some(next) if body["done"] == false => {
                        page = QueryPage::Next { url: next.into() }
                    }
                    _ => break,
                }
            }
        }
        let (first, more) = (kind(&org, "query"), kind(&org, "query_more"));
        assert_eq!(first, 2, "{batch_size:?}");
        assert!(more > 2, "{batch_size:?}: both queries span pages");
        let sent = |n: u64| if batch_size.is_some() { n } else { 0 };
        assert_eq!(
            with_batch_size(&org, "query"),
            sent(first),
            "{batch_size:?}"
        );
        assert_eq!(
            with_batch_size(&org, "query_more"),
            sent(more),
            "{batch_size:?}: every nextRecordsUrl request carries the batch size too"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_mid_run_costs_exactly_one_token_request() {
    let org = start_default_fake().await;
    let mut cfg = config(&org.url());
    cfg.concurrency = 8;
    cfg.rate_limit = 1000;
    let client = connect(cfg).await;
    client.describe("Account").await.unwrap();
    assert_eq!(kind(&org, "token"), 1);
    org.set_faults(Faults {
        latency: Some(Duration::from_millis(20)),
        ..Default::default()
    });
    org.revoke_tokens();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let object = if i % 2 == 0 { "Contact" } else { "Account" };
                client.describe(object).await.map(|_| ())
            })
        })
        .collect();
    for t in tasks {
        t.await
            .unwrap()
            .expect("every worker gets through after one renewal");
    }
    assert_eq!(kind(&org, "token"), 2, "one renewal for 32 workers");
    assert!(
        status(&org, 401) >= 1,
        "the revoked token was actually refused"
    );
    assert_eq!(client.request_counts().renewals, 1);
    assert_eq!(client.request_counts().token, 2);
}

/// A server that signs in fine but refuses every token on data calls: the client must not
/// loop between the token endpoint and the data call.
async fn refusing_server() -> (String, Arc<std::sync::atomic::AtomicU64>) {
    use axum::routing::{get, post};
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let tokens = Arc::new(AtomicU64::new(0));
    let counted = tokens.clone();
    let base = url.clone();
    let app = axum::Router::new()
        .route(
            "/services/oauth2/token",
            post(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::json!({"access_token": "00Dx!tok", "instance_url": base});
                async move { axum::Json(body) }
            }),
        )
        .fallback(get(|| async {
            (
                axum::http::StatusCode::UNAUTHORIZED,
                r#"[{"message":"This session is not valid for use with the REST API","errorCode":"INVALID_SESSION_ID"}]"#,
            )
        }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_right_after_a_fresh_token_is_a_configuration_fault() {
    let (url, tokens) = refusing_server().await;
    let e = SalesforceClient::connect(config(&url)).await.unwrap_err();
    assert!(matches!(e, FetchError::SessionRejected { .. }), "{e:?}");
    assert_eq!(e.exit_kind(), ExitKind::Usage);
    assert!(line(&e).contains("`api`"), "{}", line(&e));
    assert_eq!(
        tokens.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one renewal, no loop"
    );
}

/// Fetches a page the way the scheduler does: a body cut off mid-JSON is asked for again.
async fn page_json(client: &SalesforceClient, page: &QueryPage) -> serde_json::Value {
    for _ in 0..5 {
        let body = client.query_page(page).await.expect("the page arrives");
        if let Ok(v) = serde_json::from_slice(&body) {
            return v;
        }
    }
    panic!("five cut-off bodies in a row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_ride_out_503s_500s_resets_throttling_and_cut_off_bodies() {
    let org = start_default_fake().await;
    let mut cfg = config(&org.url());
    cfg.rate_interval = Duration::from_millis(20);
    cfg.rate_limit = 20;
    // About 31 % of attempts fail; 8 attempts left 48 requests a 1-in-250 chance that one
    // ran out (CI saw it); 14 make that about one in 275,000.
    cfg.max_attempts = 14;
    let client = connect(cfg).await;
    org.set_faults(Faults {
        error_503_rate: 0.08,
        error_500_rate: 0.06,
        reset_rate: 0.06,
        truncate_rate: 0.06,
        concurrent_limit_rate: 0.05,
        ..Default::default()
    });
    let tasks: Vec<_> = (0..48)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                match i % 3 {
                    0 => {
                        client.describe("Account").await.expect("describe");
                    }
                    1 => {
                        let count = client
                            .query_json("SELECT COUNT() FROM Contact")
                            .await
                            .expect("count");
                        assert!(count["totalSize"].as_u64().is_some());
                    }
                    _ => {
                        let page = QueryPage::First {
                            soql: "SELECT Id FROM Account".into(),
                            include_deleted: i % 2 == 0,
                        };
                        let body = page_json(&client, &page).await;
                        assert!(body["records"].is_array());
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let stats = org.stats();
    assert!(
        status(&org, 503) + status(&org, 500) + status(&org, 403) >= 3,
        "faults were injected: {stats:?}"
    );
    assert!(client.request_counts().retries > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_attempts_are_bounded() {
    let org = start_default_fake().await;
    let mut cfg = config(&org.url());
    cfg.rate_interval = Duration::from_millis(10);
    cfg.max_attempts = 3;
    let client = connect(cfg).await;
    org.set_faults(Faults {
        error_503_rate: 1.0,
        retry_after_secs: Some(1),
        ..Default::default()
    });
    let before = org.stats().requests;
    let started = Instant::now();
    let e = client.describe("Account").await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(e, FetchError::Server { status: 503, .. }), "{e:?}");
    assert_eq!(e.exit_kind(), ExitKind::Failure);
    assert_eq!(org.stats().requests - before, 3, "three attempts, no more");
    assert!(
        waited >= Duration::from_secs(2),
        "two waits of Retry-After: 1 s: {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_org_never_sees_more_than_the_rate_or_the_concurrency() {
    let org = start_fake(FakeOrgConfig {
        faults: Faults {
            latency: Some(Duration::from_millis(40)),
            jitter: Some(Duration::from_millis(40)),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    // Rate-bound: 8 per second, plenty of workers.
    let mut cfg = config(&org.url());
    cfg.rate_limit = 8;
    cfg.rate_interval = Duration::from_secs(1);
    cfg.concurrency = 16;
    let client = connect(cfg).await;
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.describe_global().await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stats = org.stats();
    assert!(stats.peak_per_second <= 8, "{stats:?}");
    assert!(
        stats.peak_per_second >= 6,
        "the limiter is kept busy: {stats:?}"
    );

    // Concurrency-bound: a fast rate, slow answers, 3 in flight.
    org.reset_stats();
    let mut cfg = config(&org.url());
    cfg.rate_limit = 1000;
    cfg.rate_interval = Duration::from_secs(1);
    cfg.concurrency = 3;
    let client = connect(cfg).await;
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.describe("Account").await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stats = org.stats();
    assert_eq!(
        stats.peak_in_flight, 3,
        "bounded, and the bound is used: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_guard_stops_at_the_configured_share() {
    let org = start_fake(FakeOrgConfig {
        daily_api_max: 1000,
        daily_api_used: 700,
        ..Default::default()
    })
    .await;
    let mut cfg = config(&org.url());
    cfg.max_api_usage_pct = 75.0;
    cfg.concurrency = 4;
    let client = connect(cfg).await;
    let share = client.usage().unwrap().share_pct();
    assert!((70.0..71.0).contains(&share), "read at sign-in: {share}");
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                loop {
                    if let Err(e) = client.describe("Account").await {
                        return e;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        let e = t.await.unwrap();
        assert!(matches!(e, FetchError::UsageGuard { .. }), "{e:?}");
        assert_eq!(e.exit_kind(), ExitKind::Resumable);
        assert!(line(&e).contains("rolling 24-hour window"), "{}", line(&e));
    }
    let used = org.daily_api_used();
    assert!(
        (750..=754).contains(&used),
        "stopped at 75% give or take in-flight: {used}"
    );
    let before = org.stats().requests;
    assert!(client.describe("Account").await.is_err());
    assert_eq!(
        org.stats().requests,
        before,
        "nothing is sent past the guard"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_limit_answer_stops_the_run_resumably() {
    let org = start_fake(FakeOrgConfig {
        daily_api_max: 1000,
        daily_api_used: 10,
        ..Default::default()
    })
    .await;
    let client = connect(config(&org.url())).await;
    org.set_daily_api_used(1000);
    let before = org.stats().requests;
    let e = client.describe("Account").await.unwrap_err();
    assert!(matches!(e, FetchError::DailyLimit { .. }), "{e:?}");
    assert_eq!(e.exit_kind(), ExitKind::Resumable);
    assert!(
        line(&e).contains("run the same command again later"),
        "{}",
        line(&e)
    );
    assert_eq!(org.stats().requests - before, 1, "not retried");
    let e = client
        .query_json("SELECT COUNT() FROM Account")
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::DailyLimit { .. }), "{e:?}");
    assert_eq!(org.stats().requests - before, 1, "nothing more is sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_host_fails_the_sign_in_in_a_few_attempts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let started = Instant::now();
    let e = SalesforceClient::connect(config(&url)).await.unwrap_err();
    assert!(matches!(e, FetchError::Connection { .. }), "{e:?}");
    assert_eq!(e.exit_kind(), ExitKind::Failure);
    assert!(!e.to_string().contains('\n'), "{e}");
    // Three attempts take well under a second; the full schedule of six, doubling from the
    // first back-off to the 30 s cap, takes over 30 s: the bound only tells the two apart.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
