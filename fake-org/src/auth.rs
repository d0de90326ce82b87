//! The OAuth 2.0 client-credentials token endpoint and the table of issued tokens.
//!
//! Owns which token requests succeed (salesforce-api.md §1.2, §1.3) and whether a bearer
//! token is still valid (§1.4). Invariants: a token is valid only if this org issued it, it
//! was not revoked since, and it is younger than the configured lifetime; revocation is
//! all-or-nothing, like a session reset for the Run-As user. The client secret is only ever
//! compared and used as the HMAC key, never logged or echoed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::Serialize;

use super::AuthScenario;

/// The fake org's 15-character id (`00D` prefix), which every access token starts with.
pub const ORG_ID_15: &str = "00D5g000004FAKE";
/// The 18-character form used in the identity URL.
const ORG_ID_18: &str = "00D5g000004FAKEEAA";
/// The Run-As user every token acts as.
const USER_ID_18: &str = "0055g00000FAKEUAA2";

/// The §1.2 success body, in Salesforce's field order.
#[derive(Debug, Serialize)]
pub struct TokenBody {
    pub access_token: String,
    pub signature: String,
    pub scope: &'static str,
    pub instance_url: String,
    pub id: String,
    pub token_type: &'static str,
    pub issued_at: String,
}

/// A §1.3 error: always `400` with this body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OAuthError {
    pub error: &'static str,
    pub error_description: &'static str,
}

impl OAuthError {
    const fn new(error: &'static str, error_description: &'static str) -> Self {
        Self {
            error,
            error_description,
        }
    }
}

/// What a token request carried: the form fields, and HTTP Basic credentials if sent.
#[derive(Debug, Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub form_encoded: bool,
}

impl TokenRequest {
    /// Reads the form body and an `Authorization: Basic` header; the form wins when both
    /// name a credential, as Salesforce reads the body first.
    pub fn parse(content_type: Option<&str>, body: &[u8], authorization: Option<&str>) -> Self {
        let form_encoded = content_type.is_some_and(|c| {
            c.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        let mut req = TokenRequest {
            form_encoded,
            ..Default::default()
        };
        if form_encoded {
            for (k, v) in url::form_urlencoded::parse(body) {
                match k.as_ref() {
                    "grant_type" => req.grant_type = Some(v.into_owned()),
                    "client_id" => req.client_id = Some(v.into_owned()),
                    "client_secret" => req.client_secret = Some(v.into_owned()),
                    _ => {}
                }
            }
        }
        if let Some((id, secret)) = authorization.and_then(basic_credentials) {
            req.client_id.get_or_insert(id);
            req.client_secret.get_or_insert(secret);
        }
        req
    }
}

fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// Decides a token request's fate, in the order Salesforce checks: the host and grant
/// first, then the app's identity and secret, then the app's configuration.
pub fn check(
    req: &TokenRequest,
    scenario: &AuthScenario,
    client_id: &str,
    client_secret: &str,
) -> Result<(), OAuthError> {
    let unsupported = OAuthError::new("unsupported_grant_type", "grant type not supported");
    if !req.form_encoded || req.grant_type.as_deref() != Some("client_credentials") {
        return Err(unsupported);
    }
    if *scenario == AuthScenario::WrongDomain {
        return Err(OAuthError::new(
            "invalid_grant",
            "request not supported on this domain",
        ));
    }
    if req.client_id.as_deref() != Some(client_id) {
        return Err(OAuthError::new(
            "invalid_client_id",
            "client identifier invalid",
        ));
    }
    if !constant_time_eq(req.client_secret.as_deref().unwrap_or(""), client_secret) {
        return Err(OAuthError::new(
            "invalid_client",
            "invalid client credentials",
        ));
    }
    match scenario {
        AuthScenario::Ok | AuthScenario::WrongDomain => Ok(()),
        AuthScenario::NoRunAsUser => Err(OAuthError::new(
            "invalid_grant",
            "no client credentials user enabled",
        )),
        AuthScenario::NoApiScope => {
            Err(OAuthError::new("invalid_grant", "no valid scopes defined"))
        }
        AuthScenario::FlowDisabled => Err(OAuthError::new(
            "invalid_grant",
            "client credentials flow not enabled",
        )),
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Why a bearer token was refused; all map to the same `401 INVALID_SESSION_ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Unknown,
    Expired,
}

/// Issued tokens and their issue times. A `std` mutex: lookups are short and never await.
#[derive(Debug)]
pub struct Tokens {
    lifetime: Option<Duration>,
    issued: Mutex<HashMap<String, Instant>>,
}

impl Tokens {
    pub fn new(lifetime: Option<Duration>) -> Self {
        Self {
            lifetime,
            issued: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a token and builds the §1.2 body; `random` supplies the token's opaque part.
    pub fn issue(&self, instance_url: &str, client_secret: &str, random: &str) -> TokenBody {
        let access_token = format!("{ORG_ID_15}!{random}");
        let issued_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            .to_string();
        let id = format!("https://login.salesforce.com/id/{ORG_ID_18}/{USER_ID_18}");
        let signature = sign(client_secret, &id, &issued_at);
        self.lock().insert(access_token.clone(), Instant::now());
        TokenBody {
            access_token,
            signature,
            scope: "api",
            instance_url: instance_url.to_string(),
            id,
            token_type: "Bearer",
            issued_at,
        }
    }

    /// Checks an `Authorization` header value.
    pub fn validate(&self, authorization: Option<&str>) -> Result<(), Refusal> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("OAuth "))
            })
            .map(str::trim)
            .ok_or(Refusal::Missing)?;
        let issued = *self.lock().get(token).ok_or(Refusal::Unknown)?;
        match self.lifetime {
            Some(life) if issued.elapsed() >= life => Err(Refusal::Expired),
            _ => Ok(()),
        }
    }

    /// Invalidates every token issued so far.
    pub fn revoke_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.issued.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Base64 HMAC-SHA256 of `id + issued_at` keyed with the client secret (§1.2).
pub fn sign(client_secret: &str, id: &str, issued_at: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, client_secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(issued_at.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ctx.sign().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> TokenRequest {
        TokenRequest::parse(
            Some("application/x-www-form-urlencoded"),
            body.as_bytes(),
            None,
        )
    }

    const GOOD: &str = "grant_type=client_credentials&client_id=id&client_secret=s3cret";

    #[test]
    fn good_credentials_pass_and_each_fault_has_its_description() {
        let ok = |req: &TokenRequest, s: AuthScenario| check(req, &s, "id", "s3cret");
        assert_eq!(ok(&form(GOOD), AuthScenario::Ok), Ok(()));
        let desc = |r: Result<(), OAuthError>| r.unwrap_err().error_description;
        assert_eq!(
            desc(ok(&form(GOOD), AuthScenario::NoRunAsUser)),
            "no client credentials user enabled"
        );
        assert_eq!(
            desc(ok(&form(GOOD), AuthScenario::NoApiScope)),
            "no valid scopes defined"
        );
        assert_eq!(
            desc(ok(&form(GOOD), AuthScenario::WrongDomain)),
            "request not supported on this domain"
        );
        assert_eq!(
            desc(ok(&form(GOOD), AuthScenario::FlowDisabled)),
            "client credentials flow not enabled"
        );
        let wrong_id = form("grant_type=client_credentials&client_id=x&client_secret=s3cret");
        assert_eq!(
            ok(&wrong_id, AuthScenario::Ok).unwrap_err().error,
            "invalid_client_id"
        );
        let wrong_secret = form("grant_type=client_credentials&client_id=id&client_secret=nope");
        assert_eq!(
            ok(&wrong_secret, AuthScenario::Ok).unwrap_err().error,
            "invalid_client"
        );
        let no_grant = form("client_id=id&client_secret=s3cret");
        assert_eq!(
            ok(&no_grant, AuthScenario::Ok).unwrap_err().error,
            "unsupported_grant_type"
        );
        let json = TokenRequest::parse(Some("application/json"), GOOD.as_bytes(), None);
        assert_eq!(
            ok(&json, AuthScenario::Ok).unwrap_err().error,
            "unsupported_grant_type"
        );
    }

    #[test]
    fn basic_auth_supplies_missing_credentials() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("id:s3cret")
        );
        let req = TokenRequest::parse(
            Some("application/x-www-form-urlencoded"),
            b"grant_type=client_credentials",
            Some(&header),
        );
        assert_eq!(check(&req, &AuthScenario::Ok, "id", "s3cret"), Ok(()));
    }

    #[test]
    fn the_signature_is_the_documented_hmac() {
        // Independent check: HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        let sig = sign("key", "The quick brown fox jumps over the lazy dog", "");
        assert_eq!(sig, "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg=");
    }

    #[test]
    fn tokens_are_valid_until_revoked_or_expired() {
        let tokens = Tokens::new(None);
        let body = tokens.issue("http://127.0.0.1:1", "s", "abc");
        assert!(body.access_token.starts_with("00D5g000004FAKE!"));
        let header = format!("Bearer {}", body.access_token);
        assert_eq!(tokens.validate(Some(&header)), Ok(()));
        assert_eq!(tokens.validate(None), Err(Refusal::Missing));
        assert_eq!(tokens.validate(Some("Bearer nope")), Err(Refusal::Unknown));
        tokens.revoke_all();
        assert_eq!(tokens.validate(Some(&header)), Err(Refusal::Unknown));
        let short = Tokens::new(Some(Duration::ZERO));
        let body = short.issue("http://127.0.0.1:1", "s", "abc");
        let header = format!("Bearer {}", body.access_token);
        assert_eq!(short.validate(Some(&header)), Err(Refusal::Expired));
    }
}
