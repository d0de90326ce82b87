//! `fake-org`: serves the embedded fake org on a port until Ctrl-C.

use crate::config::cli;
use crate::error::ExitKind;

use super::{Failure, shutdown_signal};

/// Serves the embedded fake org until Ctrl-C, printing where and how to sign in to it.
pub(super) async fn fake_org(args: &cli::FakeOrgArgs) -> Result<(), Failure> {
    use sfbackfill_fake_org::{FakeOrg, FakeOrgConfig, Faults};
    let faults = match &args.faults {
        Some(spec) => Faults::parse(spec)
            .map_err(|e| Failure::new(ExitKind::Usage, format!("--faults: {e}"), None))?,
        None => Faults::default(),
    };
    if args.scale == 0 {
        return Err(Failure::new(
            ExitKind::Usage,
            "--scale must be at least 1",
            None,
        ));
    }
    let config = FakeOrgConfig {
        faults,
        seed: args.seed,
        scale: args.scale,
        port: args.port,
        ..FakeOrgConfig::default()
    };
    let (client_id, client_secret) = (config.client_id.clone(), config.client_secret.clone());
    // Listening before the port opens: whoever waits for the port may signal as soon as it accepts.
    let shutdown = shutdown_signal();
    let org = FakeOrg::start(config).await.map_err(|e| {
        Failure::new(
            ExitKind::Usage,
            e.to_string(),
            Some("pick another --port, or 0 for a free one".into()),
        )
    })?;
    let url = org.url();
    // These are the fake's own fixed credentials, not a user's secret: printing them is the point.
    println!(
        "fake Salesforce org at {url} (seed {}, scale {})",
        args.seed, args.scale
    );
    println!("  client id:     {client_id}");
    println!("  client secret: {client_secret}");
    println!("  stats:         {url}/__fake/stats");
    println!();
    println!("Point sfbackfill at it from another shell:");
    println!("  export SF_INSTANCE_URL={url}");
    println!("  export SF_CLIENT_ID={client_id}");
    println!("  export SF_CLIENT_SECRET={client_secret}");
    println!();
    println!("Serving until Ctrl-C.");
    shutdown.await;
    let stats = org.stats();
    org.shutdown().await;
    eprintln!(
        "fake-org: served {} requests, {} records",
        stats.requests, stats.records_served
    );
    Ok(())
}
