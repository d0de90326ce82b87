//! Turns the command line and an optional `--config` TOML file into validated settings.
//!
//! Owns every check that can be made before a request is sent: dates, zones, limits, names,
//! credentials present, output folder writable. The pipeline sees only the types built here.
//! Flags win over the file; the file wins over defaults. Unknown file keys are refused.

use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod cli;

use crate::config::cli::{BackfillArgs, ConnectionArgs, LimitArgs, ProgressMode, SyncArgs};
use crate::error::{ExitKind, UserFacing};
use crate::plan::offpeak::{DailyWindow, OffPeak, WindowError};
use crate::plan::{self, Bound, PlanError, Window};
use crate::salesforce::soql::{Identifier, InvalidIdentifier};
use crate::secret::Secret;

/// The API version used when none is given: Winter '25, widely deployed.
pub const DEFAULT_API_VERSION: &str = "v62.0";
/// Requests in flight: Salesforce allows more, but 4 leaves room for other integrations.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Requests per interval.
pub const DEFAULT_RATE_LIMIT: u32 = 5;
/// The interval of the rate limit, and the first back-off.
pub const DEFAULT_RATE_INTERVAL_MS: u64 = 1000;
/// A query page rarely takes more than a few seconds; a minute means something is stuck.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 60;
/// Stop at three quarters of the daily allowance, leaving the rest to other integrations.
pub const DEFAULT_MAX_API_USAGE: f64 = 75.0;
/// The smallest `--max-query-uri-bytes`: room for the key columns, the window and a few fields.
pub const MIN_QUERY_URI_BYTES: usize = 500;
/// The cursor the spec names as default.
pub const DEFAULT_CURSOR_FIELD: &str = "LastModifiedDate";
/// How far a sync re-reads before its cursor: longer than almost every transaction, so a row
/// committed after a later one (with an earlier timestamp) is still caught.
pub const DEFAULT_LOOKBACK: chrono::Duration = chrono::Duration::minutes(5);
/// How far behind now rows may still be committing, for `sync` (it reads up to now minus this)
/// and `backfill`/`plan` (a day is copied once its end is this far in the past): a
/// transaction stamps its rows before it commits, and our clock and the org's differ; five
/// minutes covers both with room to spare.
pub const DEFAULT_SAFETY_LAG: chrono::Duration = chrono::Duration::minutes(5);

/// A setting that is missing, malformed or contradictory.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required setting was given nowhere.
    #[error("{what} is required: {how}")]
    Missing {
        what: &'static str,
        how: &'static str,
    },
    /// A value that cannot be used.
    #[error("`{flag} {value}`: {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },
    /// The `--config` file cannot be read or has unknown or mistyped keys.
    #[error("config file `{path}`: {message}")]
    File { path: PathBuf, message: String },
    /// The secret file cannot be read or is empty.
    #[error("`--client-secret-file {path}`: {message}")]
    SecretFile { path: PathBuf, message: String },
    /// The output folder cannot be written.
    #[error("cannot write to the output folder `{path}`: {message}")]
    Output { path: PathBuf, message: String },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Identifier(#[from] InvalidIdentifier),
    #[error(transparent)]
    OffPeak(#[from] WindowError),
}

impl UserFacing for ConfigError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Usage
    }
}

/// Where and as whom to sign in.
#[derive(Debug, Clone)]
pub struct Connection {
    pub instance_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub api_version: String,
}

/// How hard to push the org.
#[derive(Debug, Clone)]
pub struct Limits {
    pub concurrency: usize,
    pub rate_limit: u32,
    pub rate_interval: Duration,
    pub request_timeout: Duration,
    pub max_api_usage: f64,
    pub batch_size: Option<u32>,
}

/// A validated `backfill` (or `plan`).
#[derive(Debug, Clone)]
pub struct BackfillSettings {
    pub connection: Connection,
    pub limits: Limits,
    pub objects: Vec<Identifier>,
    /// `--start`; `None`: each object's history starts at its earliest cursor value.
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    /// `--end` (exclusive); `None`: the end of the last day that is over.
    pub end: Option<chrono::DateTime<chrono::Utc>>,
    /// A day is copied only once its end lies this far before the run starts reading.
    pub safety_lag: chrono::Duration,
    pub chunk_timezone: Tz,
    pub out: PathBuf,
    /// `--fields`, per object, as given (checked against the describe later).
    pub fields: BTreeMap<String, Vec<Identifier>>,
    pub all_fields: bool,
    pub cursor_field: Identifier,
    pub query_limit: Option<u64>,
    pub include_deleted: bool,
    pub repull: bool,
    pub offpeak: Option<OffPeak>,
    pub exit_outside_window: bool,
    /// Field lists whose query URL would be longer are split into groups joined by `Id`.
    pub max_query_uri_bytes: usize,
    pub progress: ProgressMode,
    /// `--api`.
    pub api: crate::plan::api::ApiMode,
    /// `--bulk-wait` and how Bulk results are held.
    pub bulk: crate::backfill::BulkSettings,
}

/// A validated `sync`.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub connection: Connection,
    pub limits: Limits,
    pub objects: Vec<Identifier>,
    pub out: PathBuf,
    /// Where an object's first sync starts.
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    pub fields: BTreeMap<String, Vec<Identifier>>,
    pub all_fields: bool,
    /// None: `SystemModstamp`, else `LastModifiedDate`, per object.
    pub cursor_field: Option<Identifier>,
    pub lookback: chrono::Duration,
    pub safety_lag: chrono::Duration,
    pub full_every: Option<u64>,
    /// None: the backfill's zone for the object, else UTC.
    pub chunk_timezone: Option<Tz>,
    pub query_limit: Option<u64>,
    pub include_deleted: bool,
    pub max_query_uri_bytes: usize,
    /// Rows per committed step of a pass.
    pub step_rows: u64,
}

/// The `--config` file: the flags' names in kebab-case. Credentials are not accepted here.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    pub instance_url: Option<String>,
    pub api_version: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub objects: Option<Vec<String>>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub out: Option<PathBuf>,
    pub fields: Option<BTreeMap<String, Vec<String>>>,
    pub all_fields: Option<bool>,
    pub cursor_field: Option<String>,
    pub chunk_timezone: Option<String>,
    pub query_limit: Option<u64>,
    pub include_deleted: Option<bool>,
    pub concurrency: Option<usize>,
    pub rate_limit: Option<u32>,
    pub rate_limit_timeout_ms: Option<u64>,
    pub request_timeout: Option<u64>,
    pub max_api_usage: Option<f64>,
    pub batch_size: Option<u32>,
    pub window: Option<Vec<String>>,
    pub window_tz: Option<String>,
    pub exit_outside_window: Option<bool>,
    pub lookback: Option<String>,
    pub safety_lag: Option<String>,
    pub full_every: Option<u64>,
}

impl ConfigFile {
    /// Reads `path`, or an empty file when none is given.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let err = |message: String| ConfigError::File {
            path: path.to_path_buf(),
            message,
        };
        let text = fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start].lines().count().max(1))
                .map(|n| format!(" (line {n})"))
                .unwrap_or_default();
            err(format!("{}{line}", e.message().trim()))
        })
    }
}

/// The environment the credentials come from; a trait so tests need not touch the process's.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Resolves the connection: URL and version from flags, file or environment (clap reads
/// `SF_INSTANCE_URL`/`SF_API_VERSION`), the client id and secret from the environment or the
/// secret file.
pub fn connection(
    args: &ConnectionArgs,
    file: &ConfigFile,
    env: &dyn Env,
) -> Result<Connection, ConfigError> {
    let instance_url = args
        .instance_url
        .clone()
        .or_else(|| file.instance_url.clone())
        .filter(|u| !u.trim().is_empty())
        .ok_or(ConfigError::Missing {
            what: "the instance URL",
            how: "set SF_INSTANCE_URL or --instance-url to the org's My Domain URL (Setup → My Domain)",
        })?;
    let api_version = args
        .api_version
        .clone()
        .or_else(|| file.api_version.clone())
        .unwrap_or_else(|| DEFAULT_API_VERSION.to_string());
    let client_id = env
        .var("SF_CLIENT_ID")
        .filter(|v| !v.trim().is_empty())
        .ok_or(ConfigError::Missing {
            what: "the Consumer Key",
            how: "set SF_CLIENT_ID (the app's Settings → Consumer Key and Secret)",
        })?;
    let secret_file = args
        .client_secret_file
        .clone()
        .or_else(|| file.client_secret_file.clone());
    let client_secret = match secret_file {
        Some(path) => read_secret_file(&path)?,
        None => env
            .var("SF_CLIENT_SECRET")
            .map(Secret::new)
            .filter(|s| !s.is_empty())
            .ok_or(ConfigError::Missing {
                what: "the Consumer Secret",
                how: "set SF_CLIENT_SECRET or pass --client-secret-file PATH",
            })?,
    };
    Ok(Connection {
        instance_url: instance_url.trim().trim_end_matches('/').to_string(),
        client_id: client_id.trim().to_string(),
        client_secret,
        api_version,
    })
}

fn read_secret_file(path: &Path) -> Result<Secret, ConfigError> {
    let err = |message: &str| ConfigError::SecretFile {
        path: path.to_path_buf(),
        message: message.to_string(),
    };
    let text = fs::read_to_string(path).map_err(|e| err(&e.to_string()))?;
    let secret = Secret::new(text.trim());
    if secret.is_empty() {
        return Err(err("the file is empty"));
    }
    Ok(secret)
}

/// Resolves the limits, refusing values that cannot work.
pub fn limits(args: &LimitArgs, file: &ConfigFile) -> Result<Limits, ConfigError> {
    let concurrency = args
        .concurrency
        .or(file.concurrency)
        .unwrap_or(DEFAULT_CONCURRENCY);
    if concurrency == 0 || concurrency > 256 {
        return Err(invalid("--concurrency", concurrency, "use 1 to 256"));
    }
    let rate_limit = args
        .rate_limit
        .or(file.rate_limit)
        .unwrap_or(DEFAULT_RATE_LIMIT);
    if rate_limit == 0 {
        return Err(invalid("--rate-limit", rate_limit, "use 1 or more"));
    }
    let interval_ms = args
        .rate_limit_timeout_ms
        .or(file.rate_limit_timeout_ms)
        .unwrap_or(DEFAULT_RATE_INTERVAL_MS);
    if interval_ms == 0 {
        return Err(invalid(
            "--rate-limit-timeout-ms",
            interval_ms,
            "use 1 or more",
        ));
    }
    let timeout = args
        .request_timeout
        .or(file.request_timeout)
        .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECS);
    if timeout == 0 {
        return Err(invalid(
            "--request-timeout",
            timeout,
            "use 1 or more seconds",
        ));
    }
    let max_api_usage = args
        .max_api_usage
        .or(file.max_api_usage)
        .unwrap_or(DEFAULT_MAX_API_USAGE);
    if !(max_api_usage > 0.0 && max_api_usage <= 100.0) {
        return Err(invalid(
            "--max-api-usage",
            max_api_usage,
            "use a percentage above 0, at most 100",
        ));
    }
    let batch_size = args.batch_size.or(file.batch_size);
    if let Some(b) = batch_size
        && !(200..=2000).contains(&b)
    {
        return Err(invalid("--batch-size", b, "Salesforce accepts 200 to 2000"));
    }
    Ok(Limits {
        concurrency,
        rate_limit,
        rate_interval: Duration::from_millis(interval_ms),
        request_timeout: Duration::from_secs(timeout),
        max_api_usage,
        batch_size,
    })
}

fn invalid(flag: &'static str, value: impl ToString, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        flag,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Parses `--objects` entries into API names.
pub fn objects(list: &[String]) -> Result<Vec<Identifier>, ConfigError> {
    let mut out: Vec<Identifier> = Vec::new();
    for name in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let id = Identifier::parse(name)?;
        if !out.iter().any(|o| o.as_str().eq_ignore_ascii_case(name)) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Parses `--fields OBJECT=F1,F2` entries.
fn fields(
    flags: &[String],
    file: &Option<BTreeMap<String, Vec<String>>>,
) -> Result<BTreeMap<String, Vec<Identifier>>, ConfigError> {
    let mut out = BTreeMap::new();
    for (object, list) in file.iter().flatten() {
        let ids = list
            .iter()
            .map(|f| Identifier::parse(f.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(Identifier::parse(object)?.to_string(), ids);
    }
    for flag in flags {
        let (object, list) = flag.split_once('=').ok_or_else(|| {
            invalid(
                "--fields",
                flag,
                "use OBJECT=FIELD1,FIELD2 (e.g. Account=Id,Name)",
            )
        })?;
        let ids = list
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(Identifier::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Err(invalid(
                "--fields",
                flag,
                "list at least one field after `=`",
            ));
        }
        out.insert(Identifier::parse(object.trim())?.to_string(), ids);
    }
    Ok(out)
}

/// `--objects` from the flag or the file; at least one.
fn required_objects(flag: &[String], file: &ConfigFile) -> Result<Vec<Identifier>, ConfigError> {
    let list = if flag.is_empty() {
        file.objects.clone().unwrap_or_default()
    } else {
        flag.to_vec()
    };
    let objects = objects(&list)?;
    if objects.is_empty() {
        return Err(ConfigError::Missing {
            what: "--objects",
            how: "name the objects to copy, e.g. --objects Account,Contact",
        });
    }
    Ok(objects)
}

fn required_out(flag: &Option<PathBuf>, file: &ConfigFile) -> Result<PathBuf, ConfigError> {
    flag.clone()
        .or_else(|| file.out.clone())
        .ok_or(ConfigError::Missing {
            what: "--out",
            how: "give the output folder, e.g. --out ./salesforce",
        })
}

fn query_limit(limit: Option<u64>) -> Result<Option<u64>, ConfigError> {
    if limit == Some(0) {
        return Err(invalid(
            "--query-limit",
            0,
            "0 would send nothing: give a positive number, or leave it out for no limit",
        ));
    }
    Ok(limit)
}

/// Resolves and validates a `backfill`/`plan` command line. Does no network I/O.
pub fn backfill(args: &BackfillArgs, env: &dyn Env) -> Result<BackfillSettings, ConfigError> {
    let file = ConfigFile::load(args.connection.config.as_deref())?;
    let objects = required_objects(&args.select.objects, &file)?;
    let zone_name = args
        .chunk_timezone
        .clone()
        .or_else(|| file.chunk_timezone.clone())
        .unwrap_or_else(|| "UTC".into());
    let chunk_timezone = plan::parse_zone(&zone_name)?;
    let start = args
        .start
        .clone()
        .or_else(|| file.start.clone())
        .map(|s| plan::parse_instant(&s, Bound::Start, chunk_timezone))
        .transpose()?;
    let end = args
        .end
        .clone()
        .or_else(|| file.end.clone())
        .map(|e| plan::parse_instant(&e, Bound::End, chunk_timezone))
        .transpose()?;
    if let (Some(start), Some(end)) = (start, end) {
        Window::new(start, end)?;
    }
    let safety_lag = duration(
        "--safety-lag",
        args.safety_lag.as_deref().or(file.safety_lag.as_deref()),
        DEFAULT_SAFETY_LAG,
    )?;
    let out = required_out(&args.out, &file)?;
    let query_limit = query_limit(args.query_limit.or(file.query_limit))?;
    let cursor_field = Identifier::parse(
        args.cursor_field
            .as_deref()
            .or(file.cursor_field.as_deref())
            .unwrap_or(DEFAULT_CURSOR_FIELD),
    )?;
    let window_flags = if args.windows.is_empty() {
        file.window.clone().unwrap_or_default()
    } else {
        args.windows.clone()
    };
    let window_tz = args.window_tz.clone().or_else(|| file.window_tz.clone());
    let offpeak = match (window_flags.is_empty(), window_tz) {
        (true, Some(_)) => {
            return Err(ConfigError::Missing {
                what: "--window",
                how: "--window-tz needs at least one --window HH:MM-HH:MM",
            });
        }
        (true, None) => None,
        (false, zone) => Some(OffPeak {
            windows: window_flags
                .iter()
                .map(|w| DailyWindow::parse(w))
                .collect::<Result<_, _>>()?,
            zone: plan::parse_zone(zone.as_deref().unwrap_or("UTC"))?,
        }),
    };
    let exit_outside_window = args.exit_outside_window || file.exit_outside_window.unwrap_or(false);
    if exit_outside_window && offpeak.is_none() {
        return Err(ConfigError::Missing {
            what: "--window",
            how: "--exit-outside-window needs at least one --window HH:MM-HH:MM",
        });
    }
    Ok(BackfillSettings {
        connection: connection(&args.connection, &file, env)?,
        limits: limits(&args.limits, &file)?,
        objects,
        start,
        end,
        safety_lag,
        chunk_timezone,
        out,
        fields: fields(&args.select.fields, &file.fields)?,
        all_fields: args.select.all_fields || file.all_fields.unwrap_or(false),
        cursor_field,
        query_limit,
        include_deleted: args.select.include_deleted || file.include_deleted.unwrap_or(false),
        repull: args.repull,
        offpeak,
        exit_outside_window,
        max_query_uri_bytes: args
            .max_query_uri_bytes
            .unwrap_or(crate::salesforce::select::MAX_QUERY_URI_BYTES)
            .max(MIN_QUERY_URI_BYTES),
        progress: args.progress,
        api: args.api.unwrap_or_default(),
        bulk: bulk_settings(args)?,
    })
}

/// `--bulk-wait` and the hidden Bulk page and buffer sizes.
fn bulk_settings(args: &BackfillArgs) -> Result<crate::backfill::BulkSettings, ConfigError> {
    let default = crate::backfill::BulkSettings::default();
    let wait = duration(
        "--bulk-wait",
        args.bulk_wait.as_deref(),
        chrono::Duration::from_std(default.wait).expect("fits"),
    )?;
    Ok(crate::backfill::BulkSettings {
        wait: wait.to_std().unwrap_or_default(),
        page_rows: args.bulk_page_rows.unwrap_or(default.page_rows).max(1),
        buffer_bytes: args.bulk_buffer_bytes.unwrap_or(default.buffer_bytes),
    })
}

/// Resolves and validates a `sync` command line. Does no network I/O.
pub fn sync(args: &SyncArgs, env: &dyn Env) -> Result<SyncSettings, ConfigError> {
    let file = ConfigFile::load(args.connection.config.as_deref())?;
    let objects = required_objects(&args.select.objects, &file)?;
    let out = required_out(&args.out, &file)?;
    let chunk_timezone = args
        .chunk_timezone
        .clone()
        .or_else(|| file.chunk_timezone.clone())
        .map(|z| plan::parse_zone(&z))
        .transpose()?;
    let start = args
        .start
        .clone()
        .or_else(|| file.start.clone())
        .map(|s| plan::parse_instant(&s, Bound::Start, chunk_timezone.unwrap_or(Tz::UTC)))
        .transpose()?;
    let cursor_field = args
        .cursor_field
        .as_deref()
        .or(file.cursor_field.as_deref())
        .map(Identifier::parse)
        .transpose()?;
    let full_every = args.full_every.or(file.full_every);
    if full_every == Some(0) {
        return Err(invalid(
            "--full-every",
            0,
            "give how many syncs apart the full re-reads are, e.g. --full-every 24",
        ));
    }
    let lookback = duration(
        "--lookback",
        args.lookback.as_deref().or(file.lookback.as_deref()),
        DEFAULT_LOOKBACK,
    )?;
    let safety_lag = duration(
        "--safety-lag",
        args.safety_lag.as_deref().or(file.safety_lag.as_deref()),
        DEFAULT_SAFETY_LAG,
    )?;
    Ok(SyncSettings {
        connection: connection(&args.connection, &file, env)?,
        limits: limits(&args.limits, &file)?,
        objects,
        out,
        start,
        fields: fields(&args.select.fields, &file.fields)?,
        all_fields: args.select.all_fields || file.all_fields.unwrap_or(false),
        cursor_field,
        lookback,
        safety_lag,
        full_every,
        chunk_timezone,
        query_limit: query_limit(args.query_limit.or(file.query_limit))?,
        include_deleted: args.select.include_deleted || file.include_deleted.unwrap_or(false),
        max_query_uri_bytes: crate::salesforce::select::MAX_QUERY_URI_BYTES,
        step_rows: args.step_rows.unwrap_or(crate::sync::STEP_ROWS).max(1),
    })
}

/// A duration flag such as `5m`, `90s` or `1h 30m`; `default` when it is not given.
fn duration(
    flag: &'static str,
    value: Option<&str>,
    default: chrono::Duration,
) -> Result<chrono::Duration, ConfigError> {
    let Some(text) = value else {
        return Ok(default);
    };
    let parsed = humantime::parse_duration(text.trim()).map_err(|e| {
        invalid(
            flag,
            text,
            &format!("{e}: write a duration such as 5m, 90s or 1h"),
        )
    })?;
    chrono::Duration::from_std(parsed).map_err(|_| invalid(flag, text, "too long"))
}

/// Checks, without changing anything, that `out` is or can become a writable folder.
pub fn check_writable_output(out: &Path) -> Result<(), ConfigError> {
    let err = |message: &str| ConfigError::Output {
        path: out.to_path_buf(),
        message: message.to_string(),
    };
    if out.exists() && !out.is_dir() {
        return Err(err("it is a file, not a folder"));
    }
    let existing = out
        .ancestors()
        .find(|p| p.as_os_str().is_empty() || p.exists())
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    if !existing.is_dir() {
        return Err(err("a part of its path is a file, not a folder"));
    }
    if !is_writable(existing) {
        return Err(err(
            "permission denied (the folder or its parent is read-only)",
        ));
    }
    Ok(())
}

#[cfg(unix)]
fn is_writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(not(unix))]
fn is_writable(dir: &Path) -> bool {
    !std::fs::metadata(dir)
        .map(|m| m.permissions().readonly())
        .unwrap_or(true)
}

/// Checks that `out` is a folder we can write, creating it if it does not exist.
pub fn ensure_writable_output(out: &Path) -> Result<(), ConfigError> {
    let err = |message: String| ConfigError::Output {
        path: out.to_path_buf(),
        message,
    };
    if out.exists() && !out.is_dir() {
        return Err(err("it is a file, not a folder".into()));
    }
    fs::create_dir_all(out).map_err(|e| err(e.kind().to_string()))?;
    let probe = out.join(format!(".sfbackfill-write-test-{}", std::process::id()));
    fs::write(&probe, b"").map_err(|e| err(e.kind().to_string()))?;
    fs::remove_file(&probe).map_err(|e| err(e.kind().to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<&'static str, &'static str>);
    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
    }

    fn env() -> FakeEnv {
        FakeEnv(HashMap::from([
            ("SF_CLIENT_ID", "id"),
            ("SF_CLIENT_SECRET", "s3cret"),
        ]))
    }

    fn parse(args: &[&str]) -> Result<BackfillSettings, ConfigError> {
        let mut argv = vec![
            "sfbackfill",
            "backfill",
            "--instance-url",
            "https://x.my.salesforce.com",
        ];
        argv.extend_from_slice(args);
        let cli = crate::config::cli::Cli::try_parse_from(argv).unwrap();
        match cli.command {
            crate::config::cli::Command::Backfill(a) => backfill(&a, &env()),
            _ => unreachable!(),
        }
    }

    const OK: &[&str] = &[
        "--objects",
        "Account",
        "--start",
        "2025-01-01",
        "--end",
        "2025-01-31",
        "--out",
        "x",
    ];

    #[test]
    fn a_good_command_line_resolves_with_defaults() {
        let s = parse(OK).unwrap();
        assert_eq!(s.limits.concurrency, 4);
        assert_eq!(s.limits.rate_limit, 5);
        assert_eq!(s.cursor_field.as_str(), "LastModifiedDate");
        assert_eq!(s.connection.api_version, "v62.0");
        assert_eq!((s.end.unwrap() - s.start.unwrap()).num_days(), 31);
        assert_eq!(s.safety_lag, chrono::Duration::minutes(5));
    }

    #[test]
    fn start_and_end_may_be_left_to_the_objects_history() {
        let s = parse(&["--objects", "Account", "--out", "x"]).unwrap();
        assert_eq!((s.start, s.end), (None, None));
        let s = parse(&["--objects", "Account", "--out", "x", "--end", "2025-01-31"]).unwrap();
        assert_eq!(s.start, None);
        assert_eq!(s.end.unwrap().to_rfc3339(), "2025-02-01T00:00:00+00:00");
        let s = parse(&["--objects", "Account", "--out", "x", "--safety-lag", "90s"]).unwrap();
        assert_eq!(s.safety_lag, chrono::Duration::seconds(90));
        let msg = parse(&["--objects", "Account", "--out", "x", "--safety-lag", "soon"])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("--safety-lag soon"), "{msg}");
    }

    #[test]
    fn backfill_and_sync_share_the_safety_lag_default() {
        let cli = crate::config::cli::Cli::try_parse_from([
            "sfbackfill",
            "sync",
            "--instance-url",
            "https://x.my.salesforce.com",
            "--objects",
            "Account",
            "--out",
            "x",
        ])
        .unwrap();
        let crate::config::cli::Command::Sync(args) = cli.command else {
            unreachable!()
        };
        let sync = sync(&args, &env()).unwrap();
        let backfill = parse(OK).unwrap();
        assert_eq!(sync.safety_lag, backfill.safety_lag);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let cases: &[(&[&str], &str)] = &[
            (&["--query-limit", "0"], "--query-limit 0"),
            (&["--concurrency", "0"], "--concurrency 0"),
            (&["--max-api-usage", "150"], "--max-api-usage 150"),
            (&["--batch-size", "50"], "--batch-size 50"),
            (&["--fields", "Account"], "--fields Account"),
            (&["--chunk-timezone", "Nowhere/City"], "Nowhere/City"),
            (&["--window", "22:00"], "--window 22:00"),
            (
                &["--window", "22:00-06:00", "--window-tz", "Mars/Base"],
                "Mars/Base",
            ),
            (&["--exit-outside-window"], "--exit-outside-window needs"),
        ];
        for (extra, needle) in cases {
            let mut args = OK.to_vec();
            args.extend_from_slice(extra);
            let msg = parse(&args).unwrap_err().to_string();
            assert!(msg.contains(needle), "{needle}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn end_before_start_and_bad_objects_are_usage_errors() {
        let err = parse(&[
            "--objects",
            "Account",
            "--start",
            "2025-02-01",
            "--end",
            "2025-01-01",
            "--out",
            "x",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("window is empty"));
        let err = parse(&[
            "--objects",
            "Acc ount",
            "--start",
            "2025-01-01",
            "--end",
            "2025-01-02",
            "--out",
            "x",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("not a valid Salesforce API name"));
        assert_eq!(err.exit_kind(), ExitKind::Usage);
    }

    #[test]
    fn config_file_fills_in_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        fs::write(&path, "objects = [\"Contact\"]\nstart = \"2025-01-01\"\nend = \"2025-01-02\"\nout = \"o\"\nconcurrency = 9\n").unwrap();
        let s = parse(&["--config", path.to_str().unwrap(), "--concurrency", "3"]).unwrap();
        assert_eq!(s.objects[0].as_str(), "Contact");
        assert_eq!(s.limits.concurrency, 3);
        fs::write(&path, "objects = [\"Contact\"]\nclient-secret = \"oops\"\n").unwrap();
        let msg = parse(&["--config", path.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("unknown field `client-secret`"), "{msg}");
        assert!(!msg.contains("oops"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn output_that_is_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        assert!(
            ensure_writable_output(&file)
                .unwrap_err()
                .to_string()
                .contains("is a file")
        );
        ensure_writable_output(&dir.path().join("new/sub")).unwrap();
    }
}
