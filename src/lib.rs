//! sfbackfill: copies Salesforce records into typed Parquet, in parallel, resumably.
//!
//! # Layout
//!
//! The modules mirror the pipeline, each with one owner:
//!
//! * [`plan`]: pure; objects and a `[start, end)` window into per-day chunks.
//! * [`fetch_plan`]: pure; pending days into spans read by one query, cut by a row estimate.
//! * [`schedule`]: the worker pool, cancellation and the per-run query budget.
//! * [`fetch`]: the only code that speaks HTTP to Salesforce: sign-in, limits, retries, paging.
//! * [`soql`]: builds queries from validated identifiers only.
//! * [`decode`]: Salesforce JSON pages into Arrow record batches, typed by [`schema`].
//! * [`write`]: Parquet files, written aside and renamed into place.
//! * [`checkpoint`]: the manifest journal, the sole truth on which chunks are done, and the
//!   sync journal with each object's incremental cursor.
//! * [`sync`]: the incremental run: rows changed since the cursor, in `(cursor, Id)` order.
//! * [`progress`]: bars on a terminal, log lines elsewhere.
//! * [`fake_org`]: an in-process Salesforce org for tests, benches and the demo. It shares
//!   no code with the engine, so the two can disagree, which is what makes it a test.
//!
//! [`cli`], [`config`] and [`app`] turn the command line into a validated `Settings` and run it.

pub mod app;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod decode;
pub mod describe;
pub mod error;
pub mod fake_org;
pub mod fetch;
pub mod fetch_plan;
pub mod join;
pub mod offpeak;
pub mod plan;
pub mod progress;
pub mod schedule;
pub mod schema;
pub mod secret;
pub mod select;
pub mod soql;
pub mod sync;
pub mod write;
