//! What can go wrong talking to Salesforce, and how each answer is classified.
//!
//! Owns [`FetchError`] and the pure functions that turn a token-endpoint answer
//! (salesforce-api.md §1.3) or a data-API answer (§5) into one of its variants. The retry loop
//! relies only on [`FetchError::is_transient`]; `main` relies only on [`UserFacing`].
//!
//! Invariant: no variant carries the client secret or an access token. Messages quote only what
//! Salesforce said (its `error_description` or the first line of its `message`), URL paths and
//! the user's own settings.

use crate::error::{ExitKind, UserFacing};

/// What to do when the org's daily API allocation is spent or the usage guard is reached.
const RESUME_HINT: &str = "usage falls as the rolling 24-hour window moves; \
run the same command again later (done chunks are skipped)";

/// Where the app's settings live, for the hints of setup errors.
const APP_SETTINGS: &str = "Setup → External Client App Manager → your app";

/// The longest excerpt of a Salesforce message put into an error line.
const MAX_EXCERPT: usize = 300;

/// Everything the Salesforce client can fail with. Each variant's doc says when it happens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    // ----- settings, caught before any request -----
    /// The instance URL does not parse as a URL.
    #[error("instance url `{value}` is not a url: {reason}")]
    InvalidUrl { value: String, reason: String },
    /// The instance URL is neither `https` nor `http` to a loopback host.
    #[error("instance url `{url}` must use https (plain http is allowed only for loopback hosts)")]
    InsecureUrl { url: String },
    /// The instance URL is a host that refuses the client credentials grant.
    #[error(
        "`{host}` cannot sign in with client credentials: use the org's My Domain URL, \
         e.g. https://acme.my.salesforce.com"
    )]
    NotMyDomain { host: String },
    /// `SF_CLIENT_ID` is empty.
    #[error("the Consumer Key is empty: set `SF_CLIENT_ID`")]
    MissingClientId,
    /// The client secret is empty.
    #[error("the Consumer Secret is empty: set `SF_CLIENT_SECRET` or use `--client-secret-file`")]
    MissingClientSecret,
    /// The API version is not of the form `vNN.N`.
    #[error("api version `{value}` is not of the form `vNN.N`, e.g. `v62.0`")]
    BadApiVersion { value: String },

    // ----- sign-in (salesforce-api.md §1.3) -----
    /// `invalid_client_id`: unknown client id, or the app is not installed in the org.
    #[error("salesforce does not know this Consumer Key (`{description}`)")]
    WrongClientId { description: String },
    /// `invalid_client`: the client secret is wrong or was rotated.
    #[error("the Consumer Secret is wrong or was rotated (`{description}`)")]
    WrongClientSecret { description: String },
    /// `no client credentials user enabled`: the app has no Run-As user.
    #[error("the app has no Run As user for the client credentials flow (`{description}`)")]
    NoRunAsUser { description: String },
    /// `no valid scopes defined`: the app lacks the `api` scope.
    #[error("the app has no `api` scope (`{description}`)")]
    NoApiScope { description: String },
    /// `request not supported on this domain`: the host is not the org's My Domain.
    #[error("`{host}` refuses the client credentials flow: use the org's My Domain URL")]
    WrongDomain { host: String },
    /// The app does not have "Enable Client Credentials Flow" checked.
    #[error("the client credentials flow is not enabled for the app (`{description}`)")]
    FlowDisabled { description: String },
    /// The Run-As user is not pre-authorised for an admin-approved app, or has not approved it.
    #[error("the Run As user may not use the app (`{description}`)")]
    NotApproved { description: String },
    /// The caller's IP address is outside the app's or profile's allowed ranges.
    #[error("salesforce refuses sign-ins from this IP address (`{description}`)")]
    IpRestricted { description: String },
    /// The Run-As user is deactivated or the org is locked.
    #[error("the Run As user or the org is inactive (`{error}`: `{description}`)")]
    Inactive { error: String, description: String },
    /// Any other refusal of the token endpoint.
    #[error("salesforce refused the sign-in with {status} (`{error}`: `{description}`)")]
    SignInRefused {
        status: u16,
        error: String,
        description: String,
    },
    /// The token endpoint answered something that is not Salesforce's OAuth JSON.
    #[error("`{url}` answered the sign-in with {status} and no salesforce oauth reply")]
    NotSalesforce { url: String, status: u16 },
    /// A data call answered `401 INVALID_SESSION_ID` with a token fetched just before.
    #[error("salesforce refuses the new access token (`{message}`)")]
    SessionRejected { message: String },
    /// A data call answered `401 INVALID_SESSION_ID`: the token expired or was revoked.
    /// The client renews the token and repeats the call; callers only see it in a race.
    #[error("the session expired or was revoked (`{message}`)")]
    SessionExpired { message: String },

    // ----- the data API (salesforce-api.md §5) -----
    /// `INVALID_TYPE`, or a `404` describe: the object is gone or invisible to the Run-As user.
    #[error("object `{object}` does not exist or the Run As user cannot read it")]
    UnknownObject { object: String },
    /// `INVALID_TYPE` outside a describe.
    #[error("salesforce does not know the object in the query (`{message}`)")]
    InvalidType { message: String },
    /// `INVALID_FIELD`: a field was removed or is hidden by field-level security.
    #[error("salesforce does not know a field of the query (`{message}`)")]
    InvalidField { message: String },
    /// `MALFORMED_QUERY`: the statement is not valid SOQL for this org.
    #[error("salesforce rejected the query (`{message}`)")]
    MalformedQuery { message: String },
    /// `QUERY_TIMEOUT`: the range is too heavy for one query; narrow it and try again.
    #[error("the query ran too long on salesforce (`{message}`)")]
    QueryTimeout { message: String },
    /// `INVALID_QUERY_LOCATOR`: the `nextRecordsUrl` cursor expired or is unknown.
    #[error("the query cursor expired (`{message}`)")]
    ExpiredCursor { message: String },
    /// `403 REQUEST_LIMIT_EXCEEDED` `TotalRequests`: the org's daily allocation is spent.
    #[error("the org's daily API allocation is spent (`{message}`)")]
    DailyLimit { message: String },
    /// Usage reached `--max-api-usage`; nothing more is sent.
    #[error(
        "the org's daily API usage is {used} of {max} requests ({share:.1}%), \
         at the `--max-api-usage` limit of {limit}%"
    )]
    UsageGuard {
        used: u64,
        max: u64,
        share: f64,
        limit: f64,
    },
    /// `403 REQUEST_LIMIT_EXCEEDED` for concurrent long requests: back off and retry.
    #[error("salesforce is throttling concurrent requests (`{message}`)")]
    Throttled { message: String },
    /// `API_DISABLED_FOR_ORG`, `INSUFFICIENT_ACCESS`, `FUNCTIONALITY_NOT_ENABLED`.
    #[error("salesforce denied access with `{code}` (`{message}`)")]
    AccessDenied { code: String, message: String },
    /// `404` for a resource other than an object's describe (e.g. an unknown API version).
    #[error("salesforce has no resource at `{path}`")]
    NotFound { path: String },
    /// `414`/`431`: the request URI (with headers) is over 16,384 bytes.
    #[error("the request to `{path}` is too long for salesforce ({status})")]
    UriTooLong { path: String, status: u16 },
    /// `5xx`, `429`, `420`, `406`: the server or its edge is busy or failing; retried.
    #[error("salesforce answered {status} for `{path}` (`{message}`)")]
    Server {
        status: u16,
        path: String,
        message: String,
        /// The `Retry-After` the server asked for, in seconds.
        retry_after: Option<u64>,
    },
    /// Any other error answer of the data API.
    #[error("salesforce answered {status} `{code}` for `{path}` (`{message}`)")]
    Api {
        status: u16,
        code: String,
        path: String,
        message: String,
    },

    // ----- transport -----
    /// No answer within `--request-timeout`.
    #[error("no answer from `{path}` within {secs}s")]
    Timeout { path: String, secs: u64 },
    /// The connection could not be made, was reset, or the body was cut off.
    #[error("the connection for `{path}` failed: {reason}")]
    Connection { path: String, reason: String },
    /// A `200` whose body is not the JSON expected (e.g. cut off mid-way); fetched again.
    #[error("salesforce sent an unreadable {what} (`{reason}`)")]
    BadBody { what: &'static str, reason: String },
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot set up the http client: {reason}")]
    Setup { reason: String },
    /// The token answer named an `instance_url` that is not safe to send a token to.
    #[error("the sign-in named instance url `{url}`, which is not https")]
    InsecureInstance { url: String },
    /// A `nextRecordsUrl` points outside the org's instance.
    #[error("the query cursor `{url}` points outside the org's instance url")]
    ForeignCursor { url: String },
}

impl FetchError {
    /// Whether the retry loop sends the request again after a back-off.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            FetchError::Server { .. }
                | FetchError::Throttled { .. }
                | FetchError::Timeout { .. }
                | FetchError::Connection { .. }
                | FetchError::BadBody { .. }
        )
    }

    /// `INVALID_QUERY_LOCATOR`: the read continues after the last `(cursor, Id)` it holds,
    /// with a new query.
    pub fn is_expired_cursor(&self) -> bool {
        matches!(self, FetchError::ExpiredCursor { .. })
    }

    /// The org would not run this statement (an aggregate it does not support, a field it
    /// cannot group, a query too heavy or too complex): another statement may still work.
    pub fn is_query_refused(&self) -> bool {
        matches!(
            self,
            FetchError::MalformedQuery { .. }
                | FetchError::InvalidField { .. }
                | FetchError::QueryTimeout { .. }
                | FetchError::Api { status: 400, .. }
        )
    }

    /// Whether every request would meet this error, whatever object or range it reads: the
    /// settings, the sign-in and the session, the API version, the org's API access. The
    /// other usage-class errors (an unknown field or object, a statement the org refuses, a
    /// permission on one object) concern the queries of one object only.
    pub fn is_run_wide(&self) -> bool {
        use FetchError::*;
        match self {
            UnknownObject { .. }
            | InvalidType { .. }
            | InvalidField { .. }
            | MalformedQuery { .. } => false,
            AccessDenied { code, .. } => code == "API_DISABLED_FOR_ORG",
            SessionExpired { .. } | Setup { .. } => true,
            _ => self.exit_kind() == ExitKind::Usage,
        }
    }

    /// `QUERY_TIMEOUT`: the caller narrows the range and tries again.
    pub fn is_query_timeout(&self) -> bool {
        matches!(self, FetchError::QueryTimeout { .. })
    }

    /// The seconds the server asked to wait before the next attempt, if it said.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            FetchError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl UserFacing for FetchError {
    fn exit_kind(&self) -> ExitKind {
        use FetchError::*;
        match self {
            InvalidUrl { .. }
            | InsecureUrl { .. }
            | NotMyDomain { .. }
            | MissingClientId
            | MissingClientSecret
            | BadApiVersion { .. }
            | WrongClientId { .. }
            | WrongClientSecret { .. }
            | NoRunAsUser { .. }
            | NoApiScope { .. }
            | WrongDomain { .. }
            | FlowDisabled { .. }
            | NotApproved { .. }
            | IpRestricted { .. }
            | Inactive { .. }
            | SignInRefused { .. }
            | NotSalesforce { .. }
            | SessionRejected { .. }
            | UnknownObject { .. }
            | InvalidType { .. }
            | InvalidField { .. }
            | MalformedQuery { .. }
            | AccessDenied { .. }
            | NotFound { .. }
            | InsecureInstance { .. } => ExitKind::Usage,
            DailyLimit { .. } | UsageGuard { .. } => ExitKind::Resumable,
            _ => ExitKind::Failure,
        }
    }

    fn hint(&self) -> Option<String> {
        use FetchError::*;
        let hint = match self {
            NotMyDomain { .. } | WrongDomain { .. } | NotSalesforce { .. } => {
                "find the org's My Domain URL in Setup → My Domain and pass it as \
                 `--instance-url` or `SF_INSTANCE_URL`"
                    .to_string()
            }
            MissingClientId | WrongClientId { .. } => format!(
                "copy the Consumer Key again from {APP_SETTINGS} → Settings → \
                 OAuth Settings → Consumer Key and Secret"
            ),
            MissingClientSecret | WrongClientSecret { .. } => format!(
                "copy the Consumer Secret again from {APP_SETTINGS} → Settings → \
                 OAuth Settings → Consumer Key and Secret"
            ),
            NoRunAsUser { .. } => format!(
                "in {APP_SETTINGS} → Policies → OAuth Policies → Client Credentials Flow, \
                 pick the Run As user from the lookup"
            ),
            NoApiScope { .. } => format!(
                "add the `api` scope (Manage user data via APIs) in {APP_SETTINGS} → \
                 Settings → OAuth Settings → Selected OAuth Scopes"
            ),
            FlowDisabled { .. } => format!(
                "check Enable Client Credentials Flow in {APP_SETTINGS} → Settings → \
                 OAuth Settings, and pick a Run As user in its Policies"
            ),
            NotApproved { .. } => format!(
                "in {APP_SETTINGS} → Policies, allow the Run As user's profile or a \
                 permission set it has"
            ),
            IpRestricted { .. } => format!(
                "relax IP restrictions in {APP_SETTINGS} → Policies, or add this \
                 address to the Run As user's profile Login IP Ranges"
            ),
            Inactive { .. } => "activate the Run As user (Setup → Users) or pick another \
                                one in the app's Policies"
                .to_string(),
            SessionRejected { .. } => format!(
                "the token lacks API access: add the `api` scope in {APP_SETTINGS} and \
                 make sure the Run As user has the API Enabled permission"
            ),
            UnknownObject { .. } | InvalidType { .. } => {
                "check the API name (custom objects end in `__c`), or grant the Run As \
                 user Read on it in a permission set"
                    .to_string()
            }
            InvalidField { .. } => "check the field names, or grant the Run As user \
                                    field-level Read access in a permission set"
                .to_string(),
            AccessDenied { .. } => "give the Run As user the API Enabled and View All Data \
                                    (or object Read) permissions in a permission set"
                .to_string(),
            NotFound { .. } => "check `--api-version` (e.g. `v62.0`) and the instance url".into(),
            DailyLimit { .. } | UsageGuard { .. } => RESUME_HINT.to_string(),
            Throttled { .. } | Server { .. } | Timeout { .. } | Connection { .. } => {
                "salesforce or the network is struggling; run the same command again later, \
                 or lower `--concurrency`"
                    .to_string()
            }
            QueryTimeout { .. } => "use smaller chunks or a narrower window".to_string(),
            InsecureUrl { .. } | InsecureInstance { .. } => {
                "use the https My Domain URL, e.g. https://acme.my.salesforce.com".to_string()
            }
            BadApiVersion { .. } => "pass `--api-version v62.0` or similar".to_string(),
            _ => return None,
        };
        Some(hint)
    }
}

/// Salesforce's OAuth error object (salesforce-api.md §1.3).
#[derive(Debug, Default, serde::Deserialize)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Classifies a non-`200` answer of the token endpoint.
///
/// Matches on `error_description` first (the more specific of the two), then on `error`;
/// a `5xx` or edge answer without the OAuth JSON is transient, any other shape is reported
/// as "not Salesforce" with the My Domain advice.
pub fn classify_token_error(
    status: u16,
    body: &[u8],
    url: &str,
    host: &str,
    retry_after: Option<u64>,
) -> FetchError {
    let parsed = serde_json::from_slice::<OAuthError>(body)
        .ok()
        .filter(|e| !e.error.is_empty() || !e.error_description.is_empty());
    let Some(oauth) = parsed else {
        if is_transient_status(status) {
            return FetchError::Server {
                status,
                path: "/services/oauth2/token".into(),
                message: excerpt(&String::from_utf8_lossy(body)),
                retry_after,
            };
        }
        return FetchError::NotSalesforce {
            url: url.to_string(),
            status,
        };
    };
    let description = excerpt(&oauth.error_description);
    let desc = description.to_ascii_lowercase();
    let error = oauth.error.to_ascii_lowercase();
    let by_description = [
        ("client identifier invalid", TokenCause::ClientId),
        ("invalid client credentials", TokenCause::Secret),
        ("no client credentials user enabled", TokenCause::RunAs),
        ("no valid scopes", TokenCause::Scope),
        ("not supported on this domain", TokenCause::Domain),
        ("client credentials flow not enabled", TokenCause::Flow),
        ("grant type not supported", TokenCause::Flow),
        ("not admin approved", TokenCause::Approval),
        ("approved this consumer", TokenCause::Approval),
        ("ip restricted", TokenCause::Ip),
    ];
    let by_error = [
        ("invalid_client_id", TokenCause::ClientId),
        ("invalid_client", TokenCause::Secret),
        ("unsupported_grant_type", TokenCause::Flow),
        ("invalid_app_access", TokenCause::Approval),
        ("inactive_user", TokenCause::Inactive),
        ("inactive_org", TokenCause::Inactive),
    ];
    let cause = by_description
        .iter()
        .find(|(needle, _)| desc.contains(needle))
        .or_else(|| by_error.iter().find(|(code, _)| error == *code))
        .map(|(_, cause)| *cause);
    match cause {
        Some(TokenCause::ClientId) => FetchError::WrongClientId { description },
        Some(TokenCause::Secret) => FetchError::WrongClientSecret { description },
        Some(TokenCause::RunAs) => FetchError::NoRunAsUser { description },
        Some(TokenCause::Scope) => FetchError::NoApiScope { description },
        Some(TokenCause::Domain) => FetchError::WrongDomain {
            host: host.to_string(),
        },
        Some(TokenCause::Flow) => FetchError::FlowDisabled { description },
        Some(TokenCause::Approval) => FetchError::NotApproved { description },
        Some(TokenCause::Ip) => FetchError::IpRestricted { description },
        Some(TokenCause::Inactive) => FetchError::Inactive {
            error: excerpt(&oauth.error),
            description,
        },
        None if is_transient_status(status) => FetchError::Server {
            status,
            path: "/services/oauth2/token".into(),
            message: description,
            retry_after,
        },
        None => FetchError::SignInRefused {
            status,
            error: excerpt(&oauth.error),
            description,
        },
    }
}

/// The known causes of a token refusal, so both match tables share one mapping.
#[derive(Debug, Clone, Copy)]
enum TokenCause {
    ClientId,
    Secret,
    RunAs,
    Scope,
    Domain,
    Flow,
    Approval,
    Ip,
    Inactive,
}

/// One element of the data API's error array (salesforce-api.md §5.1).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiErrorBody {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    message: String,
}

/// Reads `errorCode` and `message` of element 0, accepting a bare object too; `None` for
/// HTML, empty or other bodies.
fn parse_api_error(body: &[u8]) -> Option<ApiErrorBody> {
    match serde_json::from_slice::<serde_json::Value>(body).ok()? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .next()
            .and_then(|v| serde_json::from_value(v).ok()),
        v @ serde_json::Value::Object(_) => serde_json::from_value(v).ok(),
        _ => None,
    }
}

/// Classifies a non-`2xx` answer of a data call.
///
/// `path` is the request path (no host, no query string) for the message.
pub fn classify_api_error(
    status: u16,
    body: &[u8],
    path: &str,
    retry_after: Option<u64>,
) -> FetchError {
    let parsed = parse_api_error(body).unwrap_or_default();
    let code = parsed.error_code.to_ascii_uppercase();
    let message = if parsed.message.trim().is_empty() {
        excerpt(&String::from_utf8_lossy(body))
    } else {
        excerpt(&parsed.message)
    };
    let path = path.to_string();
    match (status, code.as_str()) {
        (_, "INVALID_SESSION_ID") | (401, _) => FetchError::SessionExpired { message },
        (_, "REQUEST_LIMIT_EXCEEDED") if message.contains("TotalRequests") => {
            FetchError::DailyLimit { message }
        }
        (_, "REQUEST_LIMIT_EXCEEDED") => FetchError::Throttled { message },
        (_, "INVALID_TYPE") => FetchError::InvalidType { message },
        (_, "INVALID_FIELD") => FetchError::InvalidField { message },
        (_, "MALFORMED_QUERY") => FetchError::MalformedQuery { message },
        (_, "QUERY_TIMEOUT") => FetchError::QueryTimeout { message },
        (_, "INVALID_QUERY_LOCATOR") => FetchError::ExpiredCursor { message },
        (_, "API_DISABLED_FOR_ORG" | "INSUFFICIENT_ACCESS" | "FUNCTIONALITY_NOT_ENABLED") => {
            FetchError::AccessDenied { code, message }
        }
        (404, _) | (_, "NOT_FOUND") => FetchError::NotFound { path },
        (414 | 431, _) => FetchError::UriTooLong { path, status },
        (s, _) if is_transient_status(s) => FetchError::Server {
            status,
            path,
            message,
            retry_after,
        },
        _ => FetchError::Api {
            status,
            code: if code.is_empty() { "-".into() } else { code },
            path,
            message,
        },
    }
}

/// Statuses that say "try again later": server faults, edge throttling (`429`, `420`) and the
/// bodiless `406` the edge occasionally sends (salesforce-api.md §5.2 notes).
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 500..=599 | 429 | 420 | 406 | 408)
}

/// The first non-empty line of a Salesforce message, whitespace-collapsed and bounded, so an
/// error stays one readable line (HTML pages and multi-line SOQL errors included).
pub fn excerpt(text: &str) -> String {
    let stripped = strip_tags(text);
    let collapsed: String = stripped.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= MAX_EXCERPT {
        return collapsed;
    }
    let mut cut: String = collapsed.chars().take(MAX_EXCERPT).collect();
    cut.push('…');
    cut
}

/// Drops `<...>` tags, so an HTML maintenance page reads as its text.
fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(status: u16, body: &str) -> FetchError {
        classify_token_error(
            status,
            body.as_bytes(),
            "https://acme.my.salesforce.com/services/oauth2/token",
            "acme.my.salesforce.com",
            None,
        )
    }

    fn oauth(error: &str, description: &str) -> String {
        serde_json::json!({"error": error, "error_description": description}).to_string()
    }

    #[test]
    fn each_token_error_of_the_api_table_names_its_setup_fix() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "invalid_client_id",
                "client identifier invalid",
                "Consumer Key",
            ),
            (
                "invalid_client",
                "invalid client credentials",
                "Consumer Secret",
            ),
            (
                "invalid_grant",
                "no client credentials user enabled",
                "Run As",
            ),
            ("invalid_grant", "no valid scopes defined", "`api`"),
            (
                "invalid_grant",
                "request not supported on this domain",
                "My Domain",
            ),
            (
                "invalid_grant",
                "client credentials flow not enabled",
                "Client Credentials",
            ),
            (
                "unsupported_grant_type",
                "grant type not supported",
                "Client Credentials",
            ),
        ];
        for (error, description, needle) in cases {
            for status in [400, 401] {
                let e = token(status, &oauth(error, description));
                let line = format!("{e}; hint: {}", e.hint().unwrap_or_default());
                assert!(line.contains(needle), "{error}/{description}: {line}");
                assert_eq!(e.exit_kind(), ExitKind::Usage, "{line}");
                assert!(!e.is_transient());
            }
        }
    }

    #[test]
    fn token_errors_match_the_description_before_the_error_code() {
        // `invalid_client` is also sent for a disabled flow; the description decides.
        let e = token(
            400,
            &oauth("invalid_client", "client credentials flow not enabled"),
        );
        assert!(matches!(e, FetchError::FlowDisabled { .. }), "{e:?}");
        let e = token(400, &oauth("inactive_user", "whatever"));
        assert!(matches!(e, FetchError::Inactive { .. }), "{e:?}");
        let e = token(400, &oauth("invalid_client", ""));
        assert!(matches!(e, FetchError::WrongClientSecret { .. }), "{e:?}");
    }

    #[test]
    fn odd_token_answers_are_reported_not_panicked_on() {
        let e = token(404, "<html><body>Not here</body></html>");
        assert!(
            matches!(e, FetchError::NotSalesforce { status: 404, .. }),
            "{e:?}"
        );
        assert!(e.hint().unwrap().contains("My Domain"));
        let e = token(503, "<html>Maintenance</html>");
        assert!(e.is_transient(), "{e:?}");
        let e = token(400, &oauth("weird", "something new"));
        assert!(
            matches!(e, FetchError::SignInRefused { status: 400, .. }),
            "{e:?}"
        );
        assert_eq!(e.exit_kind(), ExitKind::Usage);
    }

    fn api(status: u16, code: &str, message: &str) -> FetchError {
        let body = serde_json::json!([{ "errorCode": code, "message": message }]).to_string();
        classify_api_error(status, body.as_bytes(), "/services/data/v62.0/query", None)
    }

    #[test]
    fn data_errors_are_classified_by_code_and_message() {
        assert!(matches!(
            api(401, "INVALID_SESSION_ID", "Session expired or invalid"),
            FetchError::SessionExpired { .. }
        ));
        let daily = api(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        );
        assert!(matches!(daily, FetchError::DailyLimit { .. }));
        assert_eq!(daily.exit_kind(), ExitKind::Resumable);
        assert!(!daily.is_transient());
        assert!(daily.hint().unwrap().contains("rolling 24-hour window"));
        let busy = api(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "ConcurrentPerOrgLongTxn Limit exceeded.",
        );
        assert!(busy.is_transient());
        assert!(api(400, "INVALID_QUERY_LOCATOR", "invalid").is_expired_cursor());
        assert!(api(400, "QUERY_TIMEOUT", "too long").is_query_timeout());
        for (code, kind) in [
            ("INVALID_FIELD", ExitKind::Usage),
            ("MALFORMED_QUERY", ExitKind::Usage),
            ("INVALID_TYPE", ExitKind::Usage),
            ("INSUFFICIENT_ACCESS", ExitKind::Usage),
            ("QUERY_TIMEOUT", ExitKind::Failure),
        ] {
            let e = api(400, code, "x");
            assert_eq!(e.exit_kind(), kind, "{code}");
            assert!(!e.is_transient(), "{code}");
        }
        assert!(matches!(
            api(404, "NOT_FOUND", "x"),
            FetchError::NotFound { .. }
        ));
    }

    #[test]
    fn only_errors_every_request_would_meet_are_run_wide() {
        for (status, code) in [
            (400, "INVALID_FIELD"),
            (400, "INVALID_TYPE"),
            (400, "MALFORMED_QUERY"),
            (403, "INSUFFICIENT_ACCESS"),
            (400, "QUERY_TIMEOUT"),
            (503, "SERVER_UNAVAILABLE"),
        ] {
            assert!(!api(status, code, "x").is_run_wide(), "{code}");
        }
        for (status, code) in [
            (404, "NOT_FOUND"),
            (403, "API_DISABLED_FOR_ORG"),
            (401, "INVALID_SESSION_ID"),
        ] {
            assert!(api(status, code, "x").is_run_wide(), "{code}");
        }
        let secret = token(400, &oauth("invalid_client", "invalid client credentials"));
        assert!(secret.is_run_wide());
    }

    #[test]
    fn server_and_edge_faults_are_transient_whatever_the_body() {
        for status in [500, 502, 503, 504, 429, 420, 406] {
            for body in ["", "<html><h1>Down for maintenance</h1></html>", "[]"] {
                let e = classify_api_error(status, body.as_bytes(), "/x", Some(3));
                assert!(e.is_transient(), "{status} {body}: {e:?}");
                assert_eq!(e.retry_after(), Some(3));
            }
        }
        let e = classify_api_error(414, b"", "/x", None);
        assert!(matches!(e, FetchError::UriTooLong { status: 414, .. }));
        assert!(!e.is_transient());
    }

    #[test]
    fn excerpts_are_one_bounded_line() {
        let msg = "\nSELECT Foo FROM Account\n       ^\nERROR at Row:1:Column:8\nNo such column";
        let e = api(400, "INVALID_FIELD", msg);
        assert!(!e.to_string().contains('\n'), "{e}");
        assert!(e.to_string().contains("No such column"));
        let long = "x".repeat(5000);
        assert!(excerpt(&long).chars().count() <= MAX_EXCERPT + 1);
        assert_eq!(excerpt("<html><b>Server</b> busy</html>"), "Server busy");
    }
}
