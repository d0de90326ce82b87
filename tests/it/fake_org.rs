//! The fake org itself: auth errors, SOQL, paging consistency, limits and every fault.

#[allow(unused_imports)]
use crate::support::*;

use base64::Engine;
use serde_json::Value;
use sfbackfill_fake_org::{AuthScenario, FakeOrg, FakeOrgConfig, Faults};
use std::collections::BTreeMap;
use std::time::Duration;

const V: &str = "v62.0";

async fn token_response(url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = http()
        .post(format!("{url}/services/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

const GOOD_FORM: [(&str, &str); 3] = [
    ("grant_type", "client_credentials"),
    ("client_id", CLIENT_ID),
    ("client_secret", CLIENT_SECRET),
];

async fn data_get(org: &FakeOrg, token: &str, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", org.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Status, `errorCode` and `message` of element 0 of a data API error array.
async fn api_error(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    let first = &body.as_array().expect("an error array")[0];
    (
        status,
        first["errorCode"].as_str().unwrap().to_string(),
        first["message"].as_str().unwrap().to_string(),
    )
}

fn query_path(soql: &str) -> String {
    format!("/services/data/{V}/query?q={}", urlencode(soql))
}

async fn query_page(org: &FakeOrg, token: &str, path: &str, batch: Option<&str>) -> Value {
    let mut req = http()
        .get(format!("{}{path}", org.url()))
        .bearer_auth(token);
    if let Some(b) = batch {
        req = req.header("Sforce-Query-Options", format!("batchSize={b}"));
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

/// Every page of a query: the record list of each page.
async fn all_pages(org: &FakeOrg, token: &str, soql: &str, batch: Option<&str>) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut page = query_page(org, token, &query_path(soql), batch).await;
    loop {
        pages.push(page["records"].as_array().unwrap().clone());
        if page["done"].as_bool().unwrap() {
            assert!(
                page.get("nextRecordsUrl").is_none(),
                "a done page has a next url"
            );
            return pages;
        }
        let next = page["nextRecordsUrl"].as_str().unwrap().to_string();
        page = query_page(org, token, &next, batch).await;
    }
}

async fn count(org: &FakeOrg, token: &str, soql: &str) -> u64 {
    let page = query_page(org, token, &query_path(soql), None).await;
    assert_eq!(page["records"].as_array().unwrap().len(), 0);
    page["totalSize"].as_u64().unwrap()
}

const MARCH: &str =
    "LastModifiedDate >= 2025-03-01T00:00:00Z AND LastModifiedDate < 2025-04-01T00:00:00Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_error_has_its_documented_body() {
    let cases = [
        (
            AuthScenario::NoRunAsUser,
            "invalid_grant",
            "no client credentials user enabled",
        ),
        (
            AuthScenario::NoApiScope,
            "invalid_grant",
            "no valid scopes defined",
        ),
        (
            AuthScenario::WrongDomain,
            "invalid_grant",
            "request not supported on this domain",
        ),
        (
            AuthScenario::FlowDisabled,
            "invalid_grant",
            "client credentials flow not enabled",
        ),
    ];
    for (scenario, error, description) in cases {
        let org = start_fake(FakeOrgConfig {
            auth_scenario: scenario.clone(),
            ..Default::default()
        })
        .await;
        let (status, body) = token_response(&org.url(), &GOOD_FORM).await;
        assert_eq!(status, 400, "{scenario:?}");
        assert_eq!(
            body,
            serde_json::json!({"error": error, "error_description": description})
        );
    }
    let org = start_fake(FakeOrgConfig::default()).await;
    let url = org.url();
    let bad = [
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "nope"),
                ("client_secret", CLIENT_SECRET),
            ],
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", "nope"),
            ],
            "invalid_client",
            "invalid client credentials",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
            "unsupported_grant_type",
            "grant type not supported",
        ),
        (
            vec![("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)],
            "unsupported_grant_type",
            "grant type not supported",
        ),
    ];
    for (form, error, description) in bad {
        let (status, body) = token_response(&url, &form).await;
        assert_eq!(status, 400, "{form:?}");
        assert_eq!(
            body,
            serde_json::json!({"error": error, "error_description": description}),
            "{form:?}"
        );
    }
    assert_eq!(org.stats().by_status.get(&400), Some(&4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_the_documented_shape_signed_with_the_secret() {
    let org = start_fake(FakeOrgConfig::default()).await;
    let (status, body) = token_response(&org.url(), &GOOD_FORM).await;
    assert_eq!(status, 200);
    let obj = body.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "access_token",
            "id",
            "instance_url",
            "issued_at",
            "scope",
            "signature",
            "token_type"
        ]
    );
    assert!(body["access_token"].as_str().unwrap().starts_with("00D"));
    assert!(body["access_token"].as_str().unwrap().contains('!'));
    assert_eq!(body["instance_url"], org.url());
    assert_eq!(body["token_type"], "Bearer");
    let issued_at = body["issued_at"].as_str().expect("issued_at is a string");
    let ms: i64 = issued_at.parse().unwrap();
    assert!((ms - chrono::Utc::now().timestamp_millis()).abs() < 60_000);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, CLIENT_SECRET.as_bytes());
    let message = format!("{}{issued_at}", body["id"].as_str().unwrap());
    let signature = base64::engine::general_purpose::STANDARD
        .decode(body["signature"].as_str().unwrap())
        .unwrap();
    ring::hmac::verify(&key, message.as_bytes(), &signature).expect("signature verifies");
    // HTTP Basic credentials work as well as form fields.
    let r = http()
        .post(format!("{}/services/oauth2/token", org.url()))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("sforce-limit-info").is_none(),
        "the OAuth endpoint has no usage header"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_tokens_get_invalid_session_id() {
    let session_expired = (
        401,
        "INVALID_SESSION_ID".to_string(),
        "Session expired or invalid".to_string(),
    );
    let org = start_fake(FakeOrgConfig::default()).await;
    let limits = format!("/services/data/{V}/limits");
    let t = token(&org.url()).await;
    assert_eq!(data_get(&org, &t, &limits).await.status(), 200);
    org.revoke_tokens();
    assert_eq!(
        api_error(data_get(&org, &t, &limits).await).await,
        session_expired
    );
    let t = token(&org.url()).await;
    assert_eq!(data_get(&org, &t, &limits).await.status(), 200);
    http()
        .post(format!("{}/__fake/revoke", org.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        api_error(data_get(&org, &t, &limits).await).await,
        session_expired
    );
    assert_eq!(
        api_error(data_get(&org, "garbage", &limits).await).await,
        session_expired
    );

    let short = start_fake(FakeOrgConfig {
        token_lifetime: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let t = token(&short.url()).await;
    assert_eq!(data_get(&short, &t, &limits).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        api_error(data_get(&short, &t, &limits).await).await,
        session_expired
    );

    let revoking = start_fake(FakeOrgConfig {
        faults: Faults {
            revoke_after: Some(3),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let t = token(&revoking.url()).await;
    for _ in 0..3 {
        assert_eq!(data_get(&revoking, &t, &limits).await.status(), 200);
    }
    assert_eq!(
        api_error(data_get(&revoking, &t, &limits).await).await,
        session_expired
    );
    let t = token(&revoking.url()).await;
    assert_eq!(
        data_get(&revoking, &t, &limits).await.status(),
        200,
        "revoke-after fires once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_end_at_v68_and_unknown_versions_and_objects_are_not_found() {
    let org = start_fake(FakeOrgConfig::default()).await;
    let list: Value = http()
        .get(format!("{}/services/data/", org.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.first().unwrap()["version"], "31.0");
    assert_eq!(
        list.last().unwrap(),
        &serde_json::json!({"label": "Winter '27", "url": "/services/data/v68.0", "version": "68.0"})
    );
    assert!(
        list.iter()
            .any(|v| v["version"] == "62.0" && v["label"] == "Winter '25")
    );
    let t = token(&org.url()).await;
    let not_found = (
        404,
        "NOT_FOUND".to_string(),
        "The requested resource does not exist".to_string(),
    );
    assert_eq!(
        api_error(data_get(&org, &t, "/services/data/v12.0/limits").await).await,
        not_found
    );
    assert_eq!(
        api_error(data_get(&org, &t, "/services/data/v99.0/sobjects").await).await,
        not_found
    );
    assert_eq!(
        api_error(data_get(&org, &t, "/services/data/v99.0/").await).await,
        not_found
    );
    // A version's resource directory, and `latest` naming the newest version.
    for (path, version) in [
        ("/services/data/v62.0/", "v62.0"),
        ("/services/data/v62.0", "v62.0"),
        ("/services/data/latest/", "v68.0"),
    ] {
        let r = data_get(&org, &t, path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers().get("sforce-limit-info").is_some());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["query"], format!("/services/data/{version}/query"));
        assert_eq!(
            body["sobjects"],
            format!("/services/data/{version}/sobjects")
        );
    }
    let latest: Value = data_get(&org, &t, "/services/data/latest/sobjects/Account/describe")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        latest["urls"]["describe"],
        "/services/data/v68.0/sobjects/Account/describe"
    );
    assert_eq!(
        data_get(&org, "nope", "/services/data/v62.0/")
            .await
            .status(),
        401
    );
    // Query resources are GET only; the token endpoint POST only.
    let r = http()
        .post(format!(
            "{}{}",
            org.url(),
            query_path("SELECT Id FROM Account")
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET,HEAD");
    let (status, code, message) = api_error(r).await;
    assert_eq!((status, code.as_str()), (405, "METHOD_NOT_ALLOWED"));
    assert!(message.contains("'POST' not allowed"), "{message}");
    let r = http()
        .get(format!("{}/services/oauth2/token", org.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_request", "error_description": "must use HTTP POST"})
    );
    assert_eq!(
        api_error(
            data_get(
                &org,
                &t,
                &format!("/services/data/{V}/sobjects/Nope__c/describe")
            )
            .await
        )
        .await,
        not_found
    );
    let account: Value = data_get(
        &org,
        &t,
        &format!("/services/data/{V}/sobjects/Account/describe"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(account["name"], "Account");
    let global: Value = data_get(&org, &t, &format!("/services/data/{V}/sobjects"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        global["sobjects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "Invoice__c")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_covers_every_row_exactly_once_and_matches_count() {
    let org = start_fake(FakeOrgConfig::default()).await;
    let t = token(&org.url()).await;
    let n = count(
        &org,
        &t,
        &format!("SELECT COUNT() FROM Account WHERE {MARCH}"),
    )
    .await;
    assert!(n > 400, "too few rows to page: {n}");
    let pages = all_pages(
        &org,
        &t,
        &format!("SELECT Id, Name FROM Account WHERE {MARCH} ORDER BY Id"),
        Some("200"),
    )
    .await;
    assert_eq!(pages.len() as u64, n.div_ceil(200));
    assert!(pages[..pages.len() - 1].iter().all(|p| p.len() == 200));
    let ids: Vec<&str> = pages
        .iter()
        .flatten()
        .map(|r| r["Id"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len() as u64, n);
    assert_eq!(unique.len(), ids.len(), "a row was served twice");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ORDER BY Id holds across pages");
    assert_eq!(org.stats().records_served, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_size_is_honoured_clamped_and_capped_for_wide_rows() {
    let org = start_fake(FakeOrgConfig::default()).await;
    let t = token(&org.url()).await;
    let soql = "SELECT Id FROM Account";
    let first = |batch: Option<&'static str>| {
        let (org, t) = (&org, &t);
        async move {
            query_page(org, t, &query_path(soql), batch).await["records"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(first(None).await, 2000);
    assert_eq!(first(Some("300")).await, 300);
    assert_eq!(first(Some("50")).await, 200);
    assert_eq!(first(Some("9000")).await, 2000);
    let wide = start_fake(FakeOrgConfig {
        wide_page_size: Some(150),
        ..Default::default()
    })
    .await;
    let t = token(&wide.url()).await;
    let page = query_page(&wide, &t, &query_path(soql), Some("1000")).await;
    assert_eq!(page["records"].as_array().unwrap().len(), 150);
    let next = query_page(
        &wide,
        &t,
        page["nextRecordsUrl"].as_str().unwrap(),
        Some("1000"),
    )
    .await;
    assert_eq!(next["records"].as_array().unwrap().len(), 150);
}

fn stamps(pages: &[Vec<Value>]) -> BTreeMap<String, String> {
    pages
        .iter()
        .flatten()
        .map(|r| {
            (
                r["Id"].as_str().unwrap().to_string(),
                r["LastModifiedDate"].to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_keeps_its_snapshot_while_rows_change_and_pages_can_be_reread() {
    let org = start_fake(FakeOrgConfig::default()).await;
    let t = token(&org.url()).await;
    let soql = "SELECT Id, LastModifiedDate FROM Account ORDER BY Id";
    let before = stamps(&all_pages(&org, &t, soql, None).await);
    let first = query_page(&org, &t, &query_path(soql), None).await;
    let next = first["nextRecordsUrl"].as_str().unwrap().to_string();
    assert!(
        next.starts_with(&format!("/services/data/{V}/query/01g")),
        "{next}"
    );
    assert_eq!(org.modify_rows(500), 500);
    let mut pages = vec![first["records"].as_array().unwrap().clone()];
    let second = query_page(&org, &t, &next, None).await;
    let again = query_page(&org, &t, &next, None).await;
    assert_eq!(second, again, "re-reading a locator gives the same page");
    let mut page = second;
    loop {
        pages.push(page["records"].as_array().unwrap().clone());
        let Some(next) = page["nextRecordsUrl"].as_str().map(str::to_owned) else {
            break;
        };
        page = query_page(&org, &t, &next, None).await;
    }
    assert_eq!(stamps(&pages), before, "the cursor saw the modification");
    let after = stamps(&all_pages(&org, &t, soql, None).await);
    assert_ne!(after, before, "the modification is visible to a new query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_legacy_killed_cursors_are_invalid_query_locators() {
    let soql = format!("SELECT Id FROM Account WHERE {MARCH}");
    let org = start_fake(FakeOrgConfig {
        faults: Faults {
            cursor_ttl: Some(Duration::from_millis(300)),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let t = token(&org.url()).await;
    let first = query_page(&org, &t, &query_path(&soql), Some("200")).await;
    let next = first["nextRecordsUrl"].as_str().unwrap().to_string();
    assert_eq!(
        data_get(&org, &t, &next).await.status(),
        200,
        "used within the ttl"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, code, _) = api_error(data_get(&org, &t, &next).await).await;
    assert_eq!((status, code.as_str()), (400, "INVALID_QUERY_LOCATOR"));
    let (status, code, _) = api_error(
        data_get(
            &org,
            &t,
            &format!("/services/data/{V}/query/01gNOTAREALONE000-200"),
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "INVALID_QUERY_LOCATOR"));

    let legacy = start_fake(FakeOrgConfig {
        legacy_cursor_limit: true,
        ..Default::default()
    })
    .await;
    let t = token(&legacy.url()).await;
    let mut locators = Vec::new();
    for _ in 0..11 {
        let page = query_page(&legacy, &t, &query_path(&soql), Some("200")).await;
        locators.push(page["nextRecordsUrl"].as_str().unwrap().to_string());
    }
    let (status, code, _) = api_error(data_get(&legacy, &t, &locators[0]).await).await;
    assert_eq!(
        (status, code.as_str()),
        (400, "INVALID_QUERY_LOCATOR"),
        "the oldest of 11 was killed"
    );
    for locator in &locators[1..] {
        assert_eq!(data_get(&legacy, &t, locator).await.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidated_cursors_are_invalid_query_locators_and_new_queries_still_page() {
    let soql = format!("SELECT Id FROM Account WHERE {MARCH}");
    let org = start_fake(FakeOrgConfig::default()).await;
    let t = token(&org.url()).await;
    let mut nexts = Vec::new();
    for _ in 0..2 {
        let page = query_page(&org, &t, &query_path(&soql), Some("200")).await;
        nexts.push(page["nextRecordsUrl"].as_str().unwrap().to_string());
    }
    assert_eq!(data_get(&org, &t, &nexts[0]).await.status(), 200);
    assert_eq!(org.invalidate_cursors(), 2, "both locators were open");
    assert_eq!(org.open_cursors(), 0);
    for next in &nexts {
        let (status, code, _) = api_error(data_get(&org, &t, next).await).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "INVALID_QUERY_LOCATOR"),
            "{next}"
        );
    }
    let fresh = query_page(&org, &t, &query_path(&soql), Some("200")).await;
    let next = fresh["nextRecordsUrl"].as_str().unwrap();
    assert_eq!(
        data_get(&org, &t, next).await.status(),
        200,
        "a new query pages"
    );

    // The fault: every 3rd data request first invalidates every open locator, that
    // request's own included.
    let org = start_fake(FakeOrgConfig {
        faults: Faults::parse("invalidate-cursors-every=3").unwrap(),
        ..Default::default()
    })
    .await;
    let t = token(&org.url()).await;
    let first = query_page(&org, &t, &query_path(&soql), Some("200")).await; // request 1
    let next = first["nextRecordsUrl"].as_str().unwrap().to_string();
    let second: Value = data_get(&org, &t, &next).await.json().await.unwrap(); // 2
    assert!(second["records"].as_array().is_some_and(|r| r.len() == 200));
    let (status, code, _) = api_error(data_get(&org, &t, &next).await).await; // 3
    assert_eq!((status, code.as_str()), (400, "INVALID_QUERY_LOCATOR"));
}

fn usage(r: &reqwest::Response) -> (u64, u64) {
    let h = r
        .headers()
        .get("sforce-limit-info")
        .expect("usage header")
        .to_str()
        .unwrap();
    let (used, max) = h
        .strip_prefix("api-usage=")
        .unwrap()
        .split_once('/')
        .unwrap();
    (used.parse().unwrap(), max.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_rises_per_request_and_the_two_limits_have_distinct_messages() {
    let org = start_fake(FakeOrgConfig {
        daily_api_max: 10,
        daily_api_used: 7,
        ..Default::default()
    })
    .await;
    let t = token(&org.url()).await;
    let limits = format!("/services/data/{V}/limits");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let r = data_get(&org, &t, &limits).await;
        assert_eq!(r.status(), 200);
        seen.push(usage(&r));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["DailyApiRequests"]["Max"], 10);
        assert_eq!(
            body["DailyApiRequests"]["Remaining"],
            10 - seen.last().unwrap().0
        );
    }
    assert_eq!(seen, [(8, 10), (9, 10), (10, 10)]);
    let r = data_get(&org, &t, &limits).await;
    assert_eq!(usage(&r), (10, 10));
    let (status, code, message) = api_error(r).await;
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded."
        )
    );
    org.set_daily_api_used(0);
    assert_eq!(data_get(&org, &t, &limits).await.status(), 200);

    let busy = start_fake(FakeOrgConfig {
        concurrent_limit: Some(2),
        faults: Faults {
            latency: Some(Duration::from_millis(300)),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let t = token(&busy.url()).await;
    let requests = (0..6).map(|_| data_get(&busy, &t, &limits));
    let responses = futures::future::join_all(requests).await;
    let mut ok = 0;
    let mut refused = 0;
    for r in responses {
        if r.status() == 200 {
            ok += 1;
        } else {
            let (status, code, message) = api_error(r).await;
            assert_eq!(
                (status, code.as_str(), message.as_str()),
                (
                    403,
                    "REQUEST_LIMIT_EXCEEDED",
                    "ConcurrentPerOrgLongTxn Limit exceeded."
                )
            );
            refused += 1;
        }
    }
    assert_eq!((ok, refused), (2, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_observably_happens() {
    let org = start_fake(FakeOrgConfig::default()).await;
    let t = token(&org.url()).await;
    let limits = format!("/services/data/{V}/limits");
    let only = |f: Faults| org.set_faults(f);

    only(Faults {
        error_503_rate: 1.0,
        retry_after_secs: Some(3),
        ..Default::default()
    });
    let mut html = 0;
    for _ in 0..20 {
        let r = data_get(&org, &t, &limits).await;
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "3");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        let body = r.text().await.unwrap();
        if ct.starts_with("text/html") {
            html += 1;
            assert!(body.contains("Maintenance"));
        } else {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v[0]["errorCode"], "SERVER_UNAVAILABLE");
        }
    }
    assert!((1..20).contains(&html), "{html} of 20 503s were HTML pages");
    only(Faults {
        error_503_rate: 1.0,
        ..Default::default()
    });
    let r = data_get(&org, &t, &limits).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_none());

    only(Faults {
        error_500_rate: 1.0,
        ..Default::default()
    });
    let (status, code, _) = api_error(data_get(&org, &t, &limits).await).await;
    assert_eq!((status, code.as_str()), (500, "UNKNOWN_EXCEPTION"));

    only(Faults {
        concurrent_limit_rate: 1.0,
        ..Default::default()
    });
    let (status, _, message) = api_error(data_get(&org, &t, &limits).await).await;
    assert_eq!(
        (status, message.as_str()),
        (403, "ConcurrentPerOrgLongTxn Limit exceeded.")
    );

    only(Faults {
        truncate_rate: 1.0,
        ..Default::default()
    });
    let r = data_get(&org, &t, &limits).await;
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.expect("the transfer itself completes");
    assert!(!body.is_empty());
    assert!(
        serde_json::from_slice::<Value>(&body).is_err(),
        "a truncated body parsed"
    );

    only(Faults {
        reset_rate: 1.0,
        ..Default::default()
    });
    let err = http()
        .get(format!("{}{limits}", org.url()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status(), "{err}");

    only(Faults {
        latency: Some(Duration::from_millis(200)),
        ..Default::default()
    });
    let started = std::time::Instant::now();
    assert_eq!(data_get(&org, &t, &limits).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(200));

    // Faults can also be switched over HTTP.
    let r = http()
        .post(format!("{}/__fake/faults", org.url()))
        .body(r#"{"error_500_rate":1.0}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(data_get(&org, &t, &limits).await.status(), 500);
    let r = http()
        .post(format!("{}/__fake/faults", org.url()))
        .body(r#"{"bogus":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    http()
        .post(format!("{}/__fake/faults", org.url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(data_get(&org, &t, &limits).await.status(), 200);
    let statuses = org.stats().by_status;
    assert!(
        statuses[&503] >= 21 && statuses[&500] >= 2 && statuses[&403] >= 1,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_the_timeout_threshold_times_out() {
    let org = start_fake(FakeOrgConfig {
        faults: Faults {
            query_timeout_over: Some(1000),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let t = token(&org.url()).await;
    let (status, code, message) =
        api_error(data_get(&org, &t, &query_path("SELECT Id FROM Account")).await).await;
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (
            400,
            "QUERY_TIMEOUT",
            "Your query request was running for too long."
        )
    );
    let small = "SELECT Id FROM Account WHERE LastModifiedDate >= 2025-03-01T00:00:00Z AND LastModifiedDate < 2025-03-03T00:00:00Z";
    assert_eq!(data_get(&org, &t, &query_path(small)).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soql_errors_are_400_arrays_and_uris_over_16384_bytes_are_414() {
    let org = start_fake(FakeOrgConfig::default()).await;
    let t = token(&org.url()).await;
    let (status, code, _) =
        api_error(data_get(&org, &t, &query_path("SELECT Nope__x FROM Account")).await).await;
    assert_eq!((status, code.as_str()), (400, "INVALID_FIELD"));
    let (status, code, _) =
        api_error(data_get(&org, &t, &format!("/services/data/{V}/query?q=")).await).await;
    assert_eq!((status, code.as_str()), (400, "MALFORMED_QUERY"));
    let fields = vec!["Name"; 3000].join(", ");
    let long = query_path(&format!("SELECT Id, {fields} FROM Account"));
    assert!(long.len() > 16_384);
    assert_eq!(data_get(&org, &t, &long).await.status(), 414);
    // A URI that fits, but not together with the headers: 431 (§4.5).
    // An aggregate result never pages, whatever the batch size.
    let groups = query_page(
        &org,
        &t,
        &query_path("SELECT DAY_ONLY(CreatedDate) d, COUNT(Id) n FROM Account GROUP BY DAY_ONLY(CreatedDate)"),
        Some("200"),
    )
    .await;
    assert_eq!(groups["done"], true);
    assert!(groups.get("nextRecordsUrl").is_none());
    let n = groups["records"].as_array().unwrap().len();
    assert!(
        n > 200 && n as u64 == groups["totalSize"].as_u64().unwrap(),
        "{n}"
    );
    let fields = vec!["Name"; 1500].join(", ");
    let fits = query_path(&format!("SELECT Id, {fields} FROM Account LIMIT 1"));
    assert!(fits.len() < 16_384 && fits.len() > 10_000);
    let send = |padding: usize| {
        http()
            .get(format!("{}{fits}", org.url()))
            .bearer_auth(&t)
            .header("X-Padding", "p".repeat(padding))
            .send()
    };
    let r = send(16_384 - fits.len()).await.unwrap();
    assert_eq!(r.status(), 431);
    assert!(r.headers().get("sforce-limit-info").is_some());
    let r = send(16_384 - fits.len() - 700).await.unwrap();
    assert_ne!(r.status(), 431);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_kinds_statuses_and_the_peak_in_flight() {
    let org = start_fake(FakeOrgConfig {
        faults: Faults {
            latency: Some(Duration::from_millis(300)),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let t = token(&org.url()).await;
    let limits = format!("/services/data/{V}/limits");
    futures::future::join_all((0..4).map(|_| data_get(&org, &t, &limits))).await;
    data_get(&org, &t, "/services/data/v62.0/query/01gUNKNOWN-200").await;
    let stats = org.stats();
    assert_eq!(stats.requests, 6);
    assert_eq!(stats.by_kind["token"], 1);
    assert_eq!(stats.by_kind["limits"], 4);
    assert_eq!(stats.by_kind["query_more"], 1);
    assert_eq!(stats.by_status[&200], 5);
    assert_eq!(stats.by_status[&400], 1);
    assert_eq!(stats.peak_in_flight, 4);
    assert!(stats.peak_per_second >= 4);
    assert!(
        stats.with_batch_size.is_empty(),
        "no request asked a batch size"
    );
    assert_eq!(org.in_flight(), 0);
    let json: Value = http()
        .get(format!("{}/__fake/stats", org.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["requests"], 6, "inspection requests are not counted");
    assert_eq!(json["by_kind"]["limits"], 4);
    assert!(json["with_batch_size"].as_object().unwrap().is_empty());
    org.reset_stats();
    assert_eq!(org.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_org_command_refuses_a_bad_fault_list_in_one_line() {
    let o = sfbackfill_with_env(
        &["fake-org", "--port", "0", "--faults", "latency=50ms,503=2"],
        &[],
    );
    assert_exit(&o, 2);
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("503=2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_and_added_fields_show_in_describe_soql_and_open_cursors_as_salesforce_does() {
    let org = start_fake(FakeOrgConfig::default()).await;
    let url = org.url();
    let t = token(&url).await;
    let soql = format!("SELECT Id, Tier__c FROM Account WHERE {MARCH} ORDER BY Id");
    let first = query_page(&org, &t, &query_path(&soql), Some("200")).await;
    let next = first["nextRecordsUrl"].as_str().unwrap().to_string();

    org.hide_field("Account", "Tier__c").unwrap();
    org.add_field(
        "Account",
        sfbackfill_fake_org::FieldSpec::new("Region__c", sfbackfill_fake_org::FieldType::Picklist),
    )
    .unwrap();
    let fields = field_types(&url, "Account").await;
    assert!(!fields.contains_key("Tier__c"));
    assert_eq!(fields["Region__c"].0, "picklist");
    let (status, code, message) = api_error(data_get(&org, &t, &query_path(&soql)).await).await;
    assert_eq!((status, code.as_str()), (400, "INVALID_FIELD"));
    assert!(
        message.contains("No such column 'Tier__c' on entity 'Account'"),
        "{message}"
    );
    // A locator opened before the change keeps the columns it was opened with.
    let second = query_page(&org, &t, &next, None).await;
    assert!(second["records"][0].get("Tier__c").is_some());
    let added = query_page(
        &org,
        &t,
        &query_path(&format!("SELECT Id, Region__c FROM Account WHERE {MARCH}")),
        None,
    )
    .await;
    assert!(added["records"][0]["Region__c"].is_string());

    // The same changes over HTTP, for a fake org served by `sfbackfill fake-org`.
    let post = |q: &str| http().post(format!("{url}/__fake/fields?{q}")).send();
    assert_eq!(
        post("object=Account&show=Tier__c").await.unwrap().status(),
        204
    );
    assert_eq!(
        post("object=Account&hide=Region__c")
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        post("object=Account&add=Score__c:double")
            .await
            .unwrap()
            .status(),
        204
    );
    let fields = field_types(&url, "Account").await;
    assert!(fields.contains_key("Tier__c") && !fields.contains_key("Region__c"));
    assert_eq!(fields["Score__c"].0, "double");
    let refused = post("object=Account&add=Geo__c:location").await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("cannot be added"));
    assert_eq!(post("object=Nope&hide=Name").await.unwrap().status(), 400);
}
