//! The one access token of a client, and how it is obtained and renewed.
//!
//! Owns the token request's form and the reading of its answer (salesforce-api.md §1.1–1.2),
//! and [`TokenCell`], the token shared by all workers.
//!
//! Invariants:
//! * The token is held only as a [`Secret`], from the moment its JSON is read; no error built
//!   here quotes the token answer's text.
//! * Renewal is single flight: each token carries a generation, and a worker that met
//!   `INVALID_SESSION_ID` renews only if the token it used is still the current one. However
//!   many workers meet the expiry at once, one token request is sent.

use std::sync::RwLock;

use serde::Deserialize;

use super::error::FetchError;
use crate::secret::Secret;

/// The path of the OAuth token endpoint on the My Domain host.
pub const TOKEN_PATH: &str = "/services/oauth2/token";

/// A token and its generation (1 for the first, +1 for each renewal).
#[derive(Debug, Clone)]
pub struct Token {
    pub access: Secret,
    pub generation: u64,
}

/// What a successful token answer gives the client.
#[derive(Debug)]
pub struct Grant {
    pub access: Secret,
    /// The base of all data calls, if the answer named one.
    pub instance_url: Option<String>,
}

/// Reads a `200` token answer; a body that is not the expected JSON is `BadBody` (transient:
/// it may have been cut off), described without quoting it.
pub fn parse_grant(body: &[u8]) -> Result<Grant, FetchError> {
    // Fields are read into a type without `Debug`, and the token goes into a `Secret` at once.
    #[derive(Deserialize)]
    struct Answer {
        access_token: String,
        #[serde(default)]
        instance_url: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|e| FetchError::BadBody {
        what: "sign-in answer",
        reason: json_error_shape(&e),
    })?;
    if answer.access_token.trim().is_empty() {
        return Err(FetchError::BadBody {
            what: "sign-in answer",
            reason: "the access token is empty".into(),
        });
    }
    Ok(Grant {
        access: Secret::new(answer.access_token),
        instance_url: answer.instance_url.filter(|u| !u.trim().is_empty()),
    })
}

/// A JSON error's kind and position, never the text it choked on (which could be a token).
pub fn json_error_shape(e: &serde_json::Error) -> String {
    format!(
        "{:?} json error at line {} column {}",
        e.classify(),
        e.line(),
        e.column()
    )
    .to_lowercase()
}

/// The current token, shared by all workers of a client.
#[derive(Debug)]
pub struct TokenCell {
    /// The current token; a `std` lock because it is only held to clone the token.
    current: RwLock<Token>,
    /// Held while a renewal is in flight, so that only one is; async because it is held
    /// across the token request.
    renewing: tokio::sync::Mutex<()>,
}

impl TokenCell {
    pub fn new(access: Secret) -> Self {
        Self {
            current: RwLock::new(Token {
                access,
                generation: 1,
            }),
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn current(&self) -> Token {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the token that had generation `used` with the one `fetch` gets, unless another
    /// worker already did: then it returns at once. Returns whether this call sent a request.
    ///
    /// # Errors
    /// The error of `fetch` (the token is then unchanged).
    pub async fn renew<F, Fut>(&self, used: u64, fetch: F) -> Result<bool, FetchError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Secret, FetchError>>,
    {
        let _only_one = self.renewing.lock().await;
        if self.current().generation != used {
            return Ok(false);
        }
        let access = fetch().await?;
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        current.access = access;
        current.generation += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_grant_keeps_the_token_secret_and_reads_the_instance() {
        let body = br#"{"access_token":"00D!AQ8-very-secret","instance_url":"https://acme.my.salesforce.com","id":"x","token_type":"Bearer","issued_at":"1713195676742","signature":"s"}"#;
        let grant = parse_grant(body).unwrap();
        assert_eq!(grant.access.expose(), "00D!AQ8-very-secret");
        assert_eq!(
            grant.instance_url.as_deref(),
            Some("https://acme.my.salesforce.com")
        );
        assert!(!format!("{grant:?}").contains("very-secret"));
    }

    #[test]
    fn a_broken_grant_is_described_without_quoting_it() {
        let cut = br#"{"access_token":"00D!AQ8-very-secr"#;
        let e = parse_grant(cut).unwrap_err();
        assert!(e.is_transient());
        assert!(!format!("{e} {e:?}").contains("very-secr"), "{e:?}");
        let wrong_type = br#"{"access_token":12345678, "instance_url": "x"}"#;
        let e = parse_grant(wrong_type).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("12345678"), "{e:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_workers_meeting_an_expiry_renew_once() {
        let cell = Arc::new(TokenCell::new(Secret::new("first")));
        let requests = Arc::new(AtomicUsize::new(0));
        let used = cell.current().generation;
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (cell, requests) = (cell.clone(), requests.clone());
                tokio::spawn(async move {
                    cell.renew(used, || async {
                        requests.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Ok(Secret::new("second"))
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        let mut sent = 0;
        for t in tasks {
            sent += usize::from(t.await.unwrap());
        }
        assert_eq!(sent, 1);
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        let now = cell.current();
        assert_eq!((now.access.expose(), now.generation), ("second", 2));
    }

    #[tokio::test]
    async fn a_failed_renewal_leaves_the_token_alone() {
        let cell = TokenCell::new(Secret::new("first"));
        let e = cell
            .renew(1, || async { Err(FetchError::MissingClientId) })
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::MissingClientId));
        assert_eq!(cell.current().generation, 1);
    }
}
