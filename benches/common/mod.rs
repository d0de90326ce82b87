//! What the benches share: a plain HTTP client and an independent sign-in and query against
//! the fake org, so each bench can check its figures against the org's own answers.

use serde_json::Value;
use sfbackfill_fake_org::FakeOrgConfig;

/// The API version the benches query with.
pub const API: &str = "v62.0";

/// A reqwest client; rustls needs its crypto provider installed once per process.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// An access token for the fake org's default credentials.
pub async fn token(http: &reqwest::Client, url: &str) -> String {
    let config = FakeOrgConfig::default();
    let body: Value = http
        .post(format!("{url}/services/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token body");
    body["access_token"].as_str().expect("a token").to_string()
}

/// The first page of `soql`; panics on an error answer.
#[allow(dead_code)] // not every bench queries
pub async fn query(http: &reqwest::Client, url: &str, token: &str, soql: &str) -> Value {
    let response = http
        .get(format!("{url}/services/data/{API}/query"))
        .query(&[("q", soql)])
        .bearer_auth(token)
        .send()
        .await
        .expect("query request");
    let status = response.status();
    let body: Value = response.json().await.expect("query body");
    assert!(status.is_success(), "{soql}: {status} {body}");
    body
}
