//! The `sfbackfill` binary: parse, run, and map the outcome to the spec's exit status.

use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

use sfbackfill::cmd::{self, Failure};

fn main() -> ExitCode {
    let cli = sfbackfill::config::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return report(&Failure::new(
                sfbackfill::error::ExitKind::Failure,
                format!("cannot start the async runtime: {e}"),
                None,
            ));
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(&failure),
    }
}

/// Prints one line for the failure (and its hint) and returns its exit status.
fn report(failure: &Failure) -> ExitCode {
    let message = failure.message.replace('\n', " ");
    match &failure.hint {
        Some(hint) => eprintln!("error: {message}; hint: {}", hint.replace('\n', " ")),
        None => eprintln!("error: {message}"),
    }
    ExitCode::from(failure.kind.code() as u8)
}
