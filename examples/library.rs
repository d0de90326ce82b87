//! Using sfbackfill as a library: start the embedded fake org, backfill a week of two objects
//! into a temporary folder, then read the manifest's per-object status.
//!
//! Run with `cargo run --example library`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sfbackfill::backfill::Reporter;
use sfbackfill::cmd::{self, object_statuses};
use sfbackfill::config::cli::ProgressMode;
use sfbackfill::config::{BackfillSettings, Connection, Limits};
use sfbackfill::plan::{self, Bound};
use sfbackfill::salesforce::soql::Identifier;
use sfbackfill::secret::Secret;
use sfbackfill_fake_org::{FakeOrg, FakeOrgConfig};

/// Prints each finished chunk; a `Reporter` is how a host program follows a run.
struct PrintChunks;

impl Reporter for PrintChunks {
    fn on_chunk_done(&self, chunk: &plan::Chunk, rows: u64) {
        println!("done {chunk}: {rows} rows");
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fake = FakeOrgConfig::default();
    let (id, secret) = (fake.client_id.clone(), fake.client_secret.clone());
    let org = FakeOrg::start(fake).await?;
    let out = tempfile_dir()?;
    let utc = plan::parse_zone("UTC")?;
    let settings = BackfillSettings {
        connection: Connection {
            instance_url: org.url(),
            client_id: id,
            client_secret: Secret::new(secret),
            api_version: "v62.0".into(),
        },
        limits: Limits {
            concurrency: 4,
            rate_limit: 100,
            rate_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            max_api_usage: 75.0,
            batch_size: None,
        },
        objects: vec![
            Identifier::parse("Account")?,
            Identifier::parse("Opportunity")?,
        ],
        start: Some(plan::parse_instant("2025-05-05", Bound::Start, utc)?),
        end: Some(plan::parse_instant("2025-05-11", Bound::End, utc)?),
        safety_lag: sfbackfill::config::DEFAULT_SAFETY_LAG,
        chunk_timezone: utc,
        out: out.clone(),
        fields: BTreeMap::new(),
        all_fields: false,
        cursor_field: Identifier::parse("LastModifiedDate")?,
        query_limit: None,
        include_deleted: false,
        repull: false,
        offpeak: None,
        exit_outside_window: false,
        max_query_uri_bytes: sfbackfill::salesforce::select::MAX_QUERY_URI_BYTES,
        progress: ProgressMode::Off,
        api: sfbackfill::plan::api::ApiMode::Auto,
        bulk: sfbackfill::backfill::BulkSettings::default(),
    };
    let summary = cmd::backfill::backfill(&settings, Arc::new(PrintChunks), std::future::pending())
        .await
        .map_err(|f| f.message)?;
    println!("{} rows in {} chunks", summary.rows, summary.chunks_done);
    let state = sfbackfill::checkpoint::read(&out)?;
    for s in object_statuses(&state, chrono::Utc::now()) {
        println!(
            "{}: {} chunks done, {} rows, {} bytes",
            s.object, s.chunks_done, s.rows, s.bytes
        );
    }
    org.shutdown().await;
    std::fs::remove_dir_all(&out)?;
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("sfbackfill-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
