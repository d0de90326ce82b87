//! The commands: each turns validated settings into a run and a report.
//!
//! Owns the order of a command's steps (validate, sign in, describe, lock, run, report) and
//! what each prints on stdout. Every failure reaches `main` as a [`Failure`]: its exit class,
//! one line, and a hint. Does not own any pipeline stage.

mod api;
pub mod backfill;
mod check;
mod compact;
#[cfg(feature = "fake-org")]
mod demo;
#[cfg(feature = "fake-org")]
mod fake_org;
mod objects;
mod plan;
mod status;
pub mod sync;

pub use crate::checkpoint::status::{ObjectStatus, SyncStatus, object_statuses, sync_statuses};
#[cfg(feature = "fake-org")]
pub use demo::{DEMO_OBJECTS, duckdb_query};
pub use status::status;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backfill::Reporter;
use crate::config::cli::{self, Command};
use crate::config::{self, Connection, Limits, ProcessEnv};
use crate::error::{ExitKind, UserFacing};
use crate::progress;
use crate::read::StopReason;
use crate::salesforce::{ClientConfig, SalesforceClient};
use crate::store;

/// Attempts per request before a chunk is marked failed: enough to ride out a minute of
/// Salesforce maintenance with the back-off's doubling.
const MAX_ATTEMPTS: u32 = 6;

/// How a command failed: the exit class, one line, and what to do next.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: ExitKind,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(kind: ExitKind, message: impl Into<String>, hint: Option<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint,
        }
    }
}

impl<E: UserFacing> From<E> for Failure {
    fn from(e: E) -> Self {
        Self {
            kind: e.exit_kind(),
            message: e.to_string(),
            hint: e.hint(),
        }
    }
}

/// Runs one parsed command line.
pub async fn run(cli: cli::Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Check(args) => check::check(&args).await,
        Command::Objects(args) => objects::objects(&args).await,
        Command::Plan(args) => {
            let mut settings = config::backfill(&args, &ProcessEnv)?;
            let _out = attach(&mut settings.out)?;
            plan::plan(&settings).await
        }
        Command::Backfill(args) => {
            let mut settings = config::backfill(&args, &ProcessEnv)?;
            let _out = attach(&mut settings.out)?;
            let _metrics = serve_metrics(&args.metrics).await?;
            // Listening before the first request: a Ctrl-C from here on stops the run (exit 3).
            let shutdown = shutdown_signal();
            let reporter: Arc<dyn Reporter> = Arc::from(progress::reporter(settings.progress));
            let summary = backfill::backfill(&settings, reporter, shutdown).await?;
            backfill::finish(&settings, &summary)
        }
        Command::Sync(args) => {
            let mut settings = config::sync(&args, &ProcessEnv)?;
            let _out = attach(&mut settings.out)?;
            let _metrics = serve_metrics(&args.metrics).await?;
            // Listening before the first request: a Ctrl-C from here on stops the run (exit 3).
            let shutdown = shutdown_signal();
            let summary = sync::sync(&settings, shutdown).await?;
            sync::finish_sync(&settings, &summary)
        }
        Command::Status(args) => {
            let out = store::attach(&args.out)?;
            match &args.html {
                Some(page) => status::status_html(out.folder(), page),
                None => status(out.folder(), args.json),
            }
        }
        Command::Compact(args) => compact::compact(&args).await,
        #[cfg(feature = "fake-org")]
        Command::Demo(args) => demo::demo(&args).await,
        #[cfg(feature = "fake-org")]
        Command::FakeOrg(args) => fake_org::fake_org(&args).await,
        #[cfg(not(feature = "fake-org"))]
        Command::Demo(_) | Command::FakeOrg(_) => Err(Failure::new(
            ExitKind::Usage,
            "this build has no embedded fake org",
            Some(
                "build with `--features fake-org` (on by default) to run `demo` and `fake-org`"
                    .into(),
            ),
        )),
    }
}

/// Makes `--out` ready (`store::attach`) and points `out` at the folder the engine works in;
/// the returned guard keeps a bucket's working folder until the command ends.
fn attach(out: &mut PathBuf) -> Result<store::Attached, Failure> {
    let attached = store::attach(out)?;
    *out = attached.folder().to_path_buf();
    Ok(attached)
}

/// Serves the run's metrics on `--metrics-addr`, if given, until the handle drops.
async fn serve_metrics(
    args: &cli::MetricsArgs,
) -> Result<Option<crate::metrics::Listening>, Failure> {
    let Some(addr) = &args.metrics_addr else {
        return Ok(None);
    };
    let listening = crate::metrics::serve(addr).await?;
    eprintln!("metrics: http://{}/metrics", listening.addr());
    Ok(Some(listening))
}

/// Runs this process has started: the binary starts one, a library caller may start more.
static RUNS_STARTED: AtomicU64 = AtomicU64::new(0);

/// A new run's id: its start (UTC, to the second) and the process id, which tell runs of
/// different processes apart; a later run of the same process adds its rank (`-2`, `-3`, ...).
/// A sync names its files `sync-<run>-<step>.parquet`, so two runs of one process within one
/// second must not share an id: the second's files would replace the first's.
pub(crate) fn run_id() -> String {
    let started = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let pid = std::process::id();
    match RUNS_STARTED.fetch_add(1, Ordering::Relaxed) {
        0 => format!("{started}-{pid}"),
        n => format!("{started}-{pid}-{}", n + 1),
    }
}

/// Listens for SIGINT and SIGTERM from this call on; the future resolves at the first of them.
///
/// The listeners are installed here, not when the future is first polled, so a command calls
/// this before it opens a port or sends a request: a signal that arrives while it signs in or
/// starts serving is kept for the run to see, where before the listeners its default action
/// would have killed the process. A listener that cannot be installed never fires.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            tokio::select! {
                () = received(interrupt) => {}
                () = received(terminate) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        let ctrl_c = tokio::signal::windows::ctrl_c().ok();
        async move {
            match ctrl_c {
                Some(mut c) => {
                    c.recv().await;
                }
                None => std::future::pending().await,
            }
        }
    }
}

/// Resolves when `signal` is received; never, without a listener.
#[cfg(unix)]
async fn received(signal: Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(mut s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// `work`, or `None` if `shutdown` resolves first. For the steps before a run's loop that
/// wait on the network (sign-in and describe, which retry for up to minutes): they write
/// nothing, so a signal during them stops the command at once instead of after them.
async fn unless_shutdown<T>(
    shutdown: Pin<&mut impl Future<Output = ()>>,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        () = shutdown => None,
        done = work => Some(done),
    }
}

fn client_config(connection: &Connection, limits: &Limits) -> ClientConfig {
    ClientConfig {
        instance_url: connection.instance_url.clone(),
        client_id: connection.client_id.clone(),
        client_secret: connection.client_secret.clone(),
        api_version: connection.api_version.clone(),
        concurrency: limits.concurrency,
        rate_limit: limits.rate_limit,
        rate_interval: limits.rate_interval,
        request_timeout: limits.request_timeout,
        max_api_usage_pct: limits.max_api_usage,
        max_attempts: MAX_ATTEMPTS,
        batch_size: limits.batch_size,
    }
}

async fn connect(connection: &Connection, limits: &Limits) -> Result<SalesforceClient, Failure> {
    let cfg = client_config(connection, limits);
    cfg.validate()?;
    Ok(SalesforceClient::connect(cfg).await?)
}

fn usage_line(client: &SalesforceClient) -> String {
    match client.usage() {
        Some(u) => format!(
            "API usage: {} of {} daily requests ({:.1}%)",
            u.used,
            u.max,
            u.share_pct()
        ),
        None => "API usage: unknown (the org did not report it)".into(),
    }
}

/// The exit of a run that stopped early: always resumable; `resume` says how.
fn stopped(reason: &StopReason, interrupted: &str, resume: &str) -> Failure {
    let (message, hint) = match reason {
        StopReason::QueryLimit { limit } => (
            format!("stopped: the query limit of {limit} requests is reached"),
            resume.to_string(),
        ),
        StopReason::ApiUsage { message } => (format!("stopped: {message}"), resume.to_string()),
        StopReason::OutsideWindow { opens } => (
            format!("stopped: outside the off-peak windows; the next opens at {opens}"),
            "run the same command again then; done chunks are skipped".to_string(),
        ),
        StopReason::Interrupted => (interrupted.to_string(), resume.to_string()),
    };
    Failure::new(ExitKind::Resumable, message, Some(hint))
}

/// The exit of a run in which `failed` chunks or objects (`noun`) failed after their retries.
fn failed_after_retries(failed: u64, noun: &str, out: &Path, hint: &str) -> Failure {
    Failure::new(
        ExitKind::Failure,
        format!(
            "{failed} {noun}{} failed after their retries (see `sfbackfill status --out {}`)",
            if failed == 1 { "" } else { "s" },
            store::shown(out)
        ),
        Some(hint.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_one_process_never_share_an_id() {
        let pid = std::process::id().to_string();
        let ids: Vec<String> = (0..3).map(|_| run_id()).collect();
        for id in &ids {
            assert!(id.contains(&format!("Z-{pid}")), "{id}");
        }
        let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "{ids:?}");
    }
}
