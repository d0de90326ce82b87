//! The command line: clap structs whose doc comments are the `--help` text.
//!
//! Owns flag names, defaults shown in help and examples. Validation and the merge with a
//! `--config` file happen in `config`; nothing here does I/O. Credentials are never flags:
//! `SF_CLIENT_ID`, `SF_CLIENT_SECRET` or `--client-secret-file`, and no environment value is
//! ever shown in `--help`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Where credentials come from: appended to the `--help` of every command that signs in.
macro_rules! connection_help {
    () => {
        "Credentials come from the environment, never from flags:
  SF_INSTANCE_URL   the org's My Domain URL, e.g. https://acme.my.salesforce.com
  SF_CLIENT_ID      the External Client App's Consumer Key
  SF_CLIENT_SECRET  its Consumer Secret (or --client-secret-file PATH)"
    };
}

/// A signing-in command's help: its examples (`-h` and `--help`), then, for `--help`, where
/// credentials come from.
macro_rules! signed_in_help {
    ($name:ident, $long:ident, $examples:expr) => {
        const $name: &str = $examples;
        const $long: &str = concat!($examples, "\n\n", connection_help!());
    };
}

signed_in_help!(
    CHECK_EXAMPLES,
    CHECK_HELP,
    "Example:
  SF_INSTANCE_URL=https://acme.my.salesforce.com SF_CLIENT_ID=... SF_CLIENT_SECRET=... \\
    sfbackfill check --objects Account,Contact"
);
signed_in_help!(
    OBJECTS_EXAMPLES,
    OBJECTS_HELP,
    "Examples:\n  sfbackfill objects\n  sfbackfill objects Account --json"
);
signed_in_help!(
    PLAN_EXAMPLES,
    PLAN_HELP,
    "Example:\n  sfbackfill plan --objects Account,Contact --start 2025-01-01 --end 2025-12-31 --out ./sf"
);

/// Copy Salesforce records into typed Parquet: parallel, chunked per day, resumable.
#[derive(Debug, Parser)]
#[command(name = "sfbackfill", version, propagate_version = true)]
#[command(after_help = "Start with `sfbackfill demo`: it needs no credentials and no network.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in, read the org's API usage and check that each object is readable.
    #[command(after_help = CHECK_EXAMPLES, after_long_help = CHECK_HELP)]
    Check(CheckArgs),
    /// List the queryable objects, or one object's fields and the Parquet types they get.
    #[command(after_help = OBJECTS_EXAMPLES, after_long_help = OBJECTS_HELP)]
    Objects(ObjectsArgs),
    /// Show the chunks and the requests a backfill would send, without fetching records.
    #[command(after_help = PLAN_EXAMPLES, after_long_help = PLAN_HELP)]
    Plan(BackfillArgs),
    /// Copy a window of history into OUT/OBJECT/date=YYYY-MM-DD/ as Parquet; resumable.
    #[command(after_help = BACKFILL_EXAMPLES, after_long_help = BACKFILL_HELP)]
    Backfill(BackfillArgs),
    /// Copy the records created or changed since the last sync into the same day layout.
    #[command(after_help = SYNC_EXAMPLES, after_long_help = SYNC_HELP)]
    Sync(SyncArgs),
    /// Per object: chunks done, pending and failed, rows, bytes, the window and the sync cursor.
    #[command(after_help = "Example:\n  sfbackfill status --out ./sf --json")]
    Status(StatusArgs),
    /// One file per changed day folder, each record once at its newest version.
    #[command(after_help = COMPACT_EXAMPLES)]
    Compact(CompactArgs),
    /// Run a backfill against an embedded fake org: no credentials, no network.
    #[command(after_help = "Example:\n  sfbackfill demo --out ./sfbackfill-demo")]
    Demo(DemoArgs),
    /// Serve the embedded fake Salesforce org on loopback until Ctrl-C, to try commands against.
    #[command(after_help = FAKE_ORG_EXAMPLES)]
    FakeOrg(FakeOrgArgs),
}

signed_in_help!(
    BACKFILL_EXAMPLES,
    BACKFILL_HELP,
    "Examples:
  sfbackfill backfill --objects Account,Contact --start 2025-01-01 --end 2025-12-31 --out ./sf
  sfbackfill backfill --objects LoginHistory --cursor-field LoginTime --start 2025-06-01 --end 2025-06-30 --out ./sf
  sfbackfill backfill --config backfill.toml --repull --start 2025-03-01 --end 2025-03-07
  sfbackfill backfill --objects Account --out ./sf          (all history, up to the last day over)

Run the same command again to resume: done chunks are skipped. A day is copied only once it is
over (its end at least --safety-lag ago); later days stay pending for the next run."
);

signed_in_help!(
    SYNC_EXAMPLES,
    SYNC_HELP,
    "Examples:
  sfbackfill sync --objects Account,Contact --start 2026-01-01 --out ./sf      (the first sync)
  sfbackfill sync --objects Account,Contact --out ./sf                          (every later one)
  sfbackfill sync --objects LoginHistory --cursor-field LoginTime --out ./sf --full-every 288

Each run reads the rows whose cursor (SystemModstamp, else LastModifiedDate) lies between the
stored cursor minus --lookback and now minus --safety-lag, writes them as
OUT/OBJECT/date=YYYY-MM-DD/sync-*.parquet, then moves the cursor. Rows can arrive more than
once: keep the newest per Id (examples/duckdb.sql). A sync may run beside a backfill on the
same folder; a second sync on it is refused."
);

/// Where and how to sign in.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// The org's My Domain URL (https://<domain>.my.salesforce.com).
    #[arg(
        long,
        env = "SF_INSTANCE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub instance_url: Option<String>,
    /// Read the Consumer Secret from this file instead of SF_CLIENT_SECRET.
    #[arg(long, value_name = "PATH")]
    pub client_secret_file: Option<PathBuf>,
    /// Salesforce API version [default: v62.0].
    #[arg(
        long,
        env = "SF_API_VERSION",
        hide_env_values = true,
        value_name = "vNN.N"
    )]
    pub api_version: Option<String>,
    /// Read settings from a TOML file (same names as the flags; flags win).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// How hard to push the org.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Requests in flight at once [default: 4].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Requests per interval [default: 5].
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,
    /// The rate interval, and the first back-off when Salesforce is overloaded [default: 1000].
    #[arg(long, value_name = "MS")]
    pub rate_limit_timeout_ms: Option<u64>,
    /// Give up on one HTTP request after this long, then retry it [default: 60].
    #[arg(long, value_name = "SECS")]
    pub request_timeout: Option<u64>,
    /// Stop when the org's daily API usage reaches this share [default: 75].
    #[arg(long, value_name = "PCT")]
    pub max_api_usage: Option<f64>,
    /// Rows per page asked of Salesforce, 200 to 2000 [default: 2000].
    #[arg(long, value_name = "N")]
    pub batch_size: Option<u32>,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Objects to check, comma-separated exact API names (e.g. Account,Invoice__c).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub objects: Vec<String>,
    /// The cursor field each object must have [default: LastModifiedDate].
    #[arg(long, value_name = "FIELD")]
    pub cursor_field: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ObjectsArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// One object's API name: list its fields.
    pub name: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ProgressMode {
    /// Bars on a terminal, periodic log lines otherwise.
    #[default]
    Auto,
    Bars,
    Log,
    Off,
}

#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// First day (YYYY-MM-DD, in --chunk-timezone) or an RFC 3339 date-time [default: the day
    /// of each object's earliest cursor value].
    #[arg(long, help_heading = "Run", value_name = "WHEN")]
    pub start: Option<String>,
    /// Last day, included (YYYY-MM-DD), or an exclusive RFC 3339 date-time [default: the last
    /// day that is over].
    #[arg(long, help_heading = "Run", value_name = "WHEN")]
    pub end: Option<String>,
    /// A day is copied only once its end is this far in the past, for rows still committing
    /// (e.g. 5m, 90s); later days stay pending [default: 5m].
    #[arg(long, help_heading = "Run", value_name = "DURATION")]
    pub safety_lag: Option<String>,
    /// The output folder.
    #[arg(long, help_heading = "Run", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The date-time field that places a row in a day [default: LastModifiedDate].
    #[arg(long, help_heading = "Run", value_name = "FIELD")]
    pub cursor_field: Option<String>,
    /// The zone whose midnights cut the days [default: UTC].
    #[arg(long, help_heading = "Run", value_name = "ZONE")]
    pub chunk_timezone: Option<String>,
    /// The most query requests (query and next pages) this run may send.
    #[arg(long, help_heading = "Run", value_name = "N")]
    pub query_limit: Option<u64>,
    /// Fetch the window's chunks again even if done, replacing their files.
    #[arg(long, help_heading = "Run", help_heading = "Run")]
    pub repull: bool,
    /// Start requests only inside this local-time window, e.g. 22:00-06:00 (repeatable).
    #[arg(help_heading = "Run", long = "window", value_name = "HH:MM-HH:MM")]
    pub windows: Vec<String>,
    /// The zone of --window [default: UTC].
    #[arg(long, help_heading = "Run", value_name = "ZONE")]
    pub window_tz: Option<String>,
    /// The longest query URL to send before splitting the field list (tests use small values).
    #[arg(long, help_heading = "Run", hide = true, value_name = "BYTES")]
    pub max_query_uri_bytes: Option<usize>,
    /// Outside every --window, exit with status 3 instead of waiting.
    #[arg(long, help_heading = "Run", help_heading = "Run")]
    pub exit_outside_window: bool,
    /// How progress is shown.
    #[arg(long, help_heading = "Run", value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Which API reads the rows: Bulk API 2.0 query jobs, REST query pages, or auto: Bulk
    /// for an object whose counted rows make it at most half the requests [default: auto].
    #[arg(long, help_heading = "Run", value_enum, value_name = "API")]
    pub api: Option<crate::plan::api::ApiMode>,
    /// A Bulk job not complete after this long is aborted and its days read through REST
    /// [default: 30m].
    #[arg(long, help_heading = "Run", value_name = "DURATION")]
    pub bulk_wait: Option<String>,
    /// Rows asked per Bulk results page (tests use small values).
    #[arg(long, help_heading = "Run", hide = true, value_name = "N")]
    pub bulk_page_rows: Option<usize>,
    /// Decoded Bulk rows held per task before they go to staged part files (tests use small
    /// values).
    #[arg(long, help_heading = "Run", hide = true, value_name = "BYTES")]
    pub bulk_buffer_bytes: Option<usize>,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub select: SelectArgs,
    /// The output folder (the backfill's, to continue it).
    #[arg(long, help_heading = "Run", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Where an object's first sync starts (YYYY-MM-DD or RFC 3339), usually the backfill's
    /// end. Later syncs start from the stored cursor and ignore it.
    #[arg(long, help_heading = "Run", value_name = "WHEN")]
    pub start: Option<String>,
    /// The date-time field that orders changes [default: SystemModstamp, else LastModifiedDate].
    #[arg(long, help_heading = "Run", value_name = "FIELD")]
    pub cursor_field: Option<String>,
    /// Re-read this much before the cursor, for rows committed late (e.g. 5m, 90s, 0s) [default: 5m].
    #[arg(long, help_heading = "Run", value_name = "DURATION")]
    pub lookback: Option<String>,
    /// Read only up to this long before now, for clock skew and commits in flight [default: 5m].
    #[arg(long, help_heading = "Run", value_name = "DURATION")]
    pub safety_lag: Option<String>,
    /// Every Nth sync of an object re-reads it from its first sync's start, to catch changes
    /// no cursor sees (sharing, formulas).
    #[arg(long, help_heading = "Run", value_name = "N")]
    pub full_every: Option<u64>,
    /// The zone whose midnights cut the days [default: the backfill's, else UTC].
    #[arg(long, help_heading = "Run", value_name = "ZONE")]
    pub chunk_timezone: Option<String>,
    /// The most query requests (query and next pages) this run may send.
    #[arg(long, help_heading = "Run", value_name = "N")]
    pub query_limit: Option<u64>,
    /// Rows per committed step (tests use small values to cross step boundaries).
    #[arg(long, help_heading = "Run", hide = true, value_name = "N")]
    pub step_rows: Option<u64>,
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// Where a run serves its metrics.
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Serve the run's metrics for Prometheus at http://HOST:PORT/metrics while it runs. Keep it
    /// on loopback (127.0.0.1:9464) unless a firewall guards the port.
    #[arg(long, help_heading = "Run", value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
}

/// What is read of each object: the same flags for `backfill`, `plan` and `sync`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Objects")]
pub struct SelectArgs {
    /// Objects, comma-separated exact API names (custom objects end in __c).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub objects: Vec<String>,
    /// Fields of one object: OBJECT=F1,F2,... (repeatable; Id and the cursor are always added)
    /// [default: the standard fields; for sync, the backfill's list].
    #[arg(long, value_name = "OBJECT=LIST")]
    pub fields: Vec<String>,
    /// Every field, standard and custom, instead of the standard ones.
    #[arg(long)]
    pub all_fields: bool,
    /// Use queryAll and keep soft-deleted rows (IsDeleted = true): how deletions are seen.
    #[arg(long)]
    pub include_deleted: bool,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The output folder of a backfill.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write a self-contained HTML page instead: per object, a calendar of its days by state.
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    pub html: Option<PathBuf>,
}

const COMPACT_EXAMPLES: &str = "\
Examples:
  sfbackfill compact --out ./sf --dry-run
  sfbackfill compact --out ./sf --objects Account,Contact --drop-deleted

A sync or backfill started on the folder while it runs is refused (exit 2), and it is refused
while one of them runs; a killed compaction is finished by running the same command again.";

#[derive(Debug, Clone, Args)]
pub struct CompactArgs {
    /// The output folder of a backfill or sync.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Objects to compact, comma-separated [default: every object with day folders].
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub objects: Vec<String>,
    /// Print per object the files and rows before and after; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Leave out records whose newest version is deleted (IsDeleted, from --include-deleted).
    #[arg(long)]
    pub drop_deleted: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Where to write the demo's Parquet files.
    #[arg(long, value_name = "DIR", default_value = "sfbackfill-demo")]
    pub out: PathBuf,
    /// How progress is shown.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

const FAKE_ORG_EXAMPLES: &str = "\
Examples:
  sfbackfill fake-org --port 8787
  sfbackfill fake-org --port 8787 --scale 10 --faults latency=50ms,503=0.05,truncate=0.02

Fault names (comma-separated NAME=VALUE): latency, jitter (durations: 50ms, 2s, 1m),
503, 500, truncate, reset, concurrent (shares of requests, 0 to 1), retry-after (seconds
sent with the 503s), revoke-after, modify-every, invalidate-cursors-every (request counts),
query-timeout-over (rows), cursor-ttl (duration).";

#[derive(Debug, Clone, Args)]
pub struct FakeOrgArgs {
    /// The loopback port to listen on; 0 picks a free one.
    #[arg(long, value_name = "N", default_value_t = 8787)]
    pub port: u16,
    /// The seed of the generated data (and of the faults).
    #[arg(long, value_name = "S", default_value_t = 42)]
    pub seed: u64,
    /// Multiply the generated rows by this.
    #[arg(long, value_name = "X", default_value_t = 1)]
    pub scale: u32,
    /// Faults to inject into data requests, e.g. latency=50ms,503=0.05,reset=0.01.
    #[arg(long, value_name = "LIST")]
    pub faults: Option<String>,
}
