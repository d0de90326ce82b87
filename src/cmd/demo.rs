//! `demo`: the embedded fake org, backfilled into a folder, with a query to paste.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::backfill::Reporter;
use crate::checkpoint;
use crate::config::cli;
use crate::config::{self, BackfillSettings, Connection, Limits};
use crate::error::ExitKind;
use crate::plan;
use crate::progress;
use crate::salesforce::soql::Identifier;

use super::status::status_table;
use super::{Failure, shutdown_signal};
use crate::checkpoint::status::object_statuses;

/// The demo's objects: the standard ones plus the custom object with every field type.
pub const DEMO_OBJECTS: &[&str] = &[
    "Account",
    "Contact",
    "Opportunity",
    "Case",
    "Lead",
    "Invoice__c",
];

pub(super) async fn demo(args: &cli::DemoArgs) -> Result<(), Failure> {
    use sfbackfill_fake_org::{FakeOrg, FakeOrgConfig};
    // Listening before the embedded org's port opens and the backfill's first request.
    let shutdown = shutdown_signal();
    let fake_config = FakeOrgConfig::default();
    let (client_id, secret) = (
        fake_config.client_id.clone(),
        fake_config.client_secret.clone(),
    );
    let org = FakeOrg::start(fake_config).await.map_err(|e| {
        Failure::new(
            ExitKind::Failure,
            format!("cannot start the embedded fake org: {e}"),
            None,
        )
    })?;
    eprintln!("demo: embedded fake Salesforce org at {}", org.url());
    let tz = plan::parse_zone("UTC")?;
    let settings = BackfillSettings {
        connection: Connection {
            instance_url: org.url(),
            client_id,
            client_secret: crate::secret::Secret::new(secret),
            api_version: config::DEFAULT_API_VERSION.into(),
        },
        limits: Limits {
            concurrency: 4,
            // The fake org is on loopback: no quota to spare, so let the demo run at speed.
            rate_limit: 200,
            rate_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(60),
            max_api_usage: config::DEFAULT_MAX_API_USAGE,
            batch_size: None,
        },
        objects: DEMO_OBJECTS
            .iter()
            .map(|o| Identifier::parse(o).expect("constant"))
            .collect(),
        start: Some(plan::parse_instant("2025-06-01", plan::Bound::Start, tz)?),
        end: Some(plan::parse_instant("2025-06-30", plan::Bound::End, tz)?),
        safety_lag: config::DEFAULT_SAFETY_LAG,
        chunk_timezone: tz,
        out: crate::store::refuse_bucket(&args.out, "demo")?,
        fields: BTreeMap::new(),
        all_fields: true,
        cursor_field: Identifier::parse(config::DEFAULT_CURSOR_FIELD).expect("constant"),
        query_limit: None,
        include_deleted: false,
        repull: false,
        offpeak: None,
        exit_outside_window: false,
        max_query_uri_bytes: crate::salesforce::select::MAX_QUERY_URI_BYTES,
        progress: args.progress,
        api: plan::api::ApiMode::Rest,
        bulk: crate::backfill::BulkSettings::default(),
    };
    eprintln!(
        "demo: backfilling {} for June 2025 into `{}`",
        DEMO_OBJECTS.join(", "),
        settings.out.display()
    );
    let reporter: Arc<dyn Reporter> = Arc::from(progress::reporter(settings.progress));
    let summary = super::backfill::backfill(&settings, reporter, shutdown).await?;
    let stats = org.stats();
    org.shutdown().await;
    super::backfill::finish(&settings, &summary)?;
    let state = checkpoint::read(&settings.out)?;
    println!();
    print!(
        "{}",
        status_table(&object_statuses(&state, chrono::Utc::now()))
    );
    println!();
    println!(
        "{} rows in {} query requests ({} requests in all, peak {} in flight at the org)",
        summary.rows, summary.query_requests, stats.requests, stats.peak_in_flight
    );
    println!("Query it with DuckDB:");
    println!("{}", duckdb_query(&settings.out));
    Ok(())
}

/// A ready-to-paste DuckDB command over a backfill's output.
pub fn duckdb_query(out: &Path) -> String {
    let base: PathBuf = std::fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf());
    format!(
        "  duckdb -c \"SELECT date, count(*) AS rows, sum(Amount__c) AS amount FROM read_parquet('{}/Invoice__c/date=*/*.parquet', hive_partitioning = true) GROUP BY date ORDER BY date LIMIT 10\"",
        base.display()
    )
}
