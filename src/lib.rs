//! sfbackfill: copies Salesforce records into typed Parquet, in parallel, resumably.
//!
//! # Layout
//!
//! The folders mirror the pipeline (`docs/architecture.md`), each with one owner:
//!
//! * [`cmd`]: one file per command; wiring from validated settings to a run, and exit classes.
//! * [`config`]: the command line ([`config::cli`]) and TOML, resolved into validated settings.
//! * [`plan`]: pure; a window into per-day chunks in a zone, spans of days, cuts by hour and by
//!   `Id`, off-peak windows.
//! * [`salesforce`]: the only code that speaks HTTP to Salesforce: sign-in, limits, retries,
//!   paging, SOQL text, describe and field selection.
//! * [`read`]: what backfill and sync share to read a range: the query budget, pages fetched
//!   and decoded off the runtime, joins of field groups.
//! * [`backfill`]: the historical run: the coordinator (the only writer of the journal during
//!   a run), span readers, heavy days split, per-day sinks.
//! * [`sync`]: the incremental run: rows changed since the cursor, in `(cursor, Id)` order.
//! * [`compact`]: one file per day folder, each record once at its newest version.
//! * [`decode`]: Salesforce JSON pages into Arrow record batches, typed by [`decode::schema`].
//! * [`write`]: Parquet files, written aside and renamed into place.
//! * [`checkpoint`]: the manifest journal, the sole truth on which chunks are done, and the
//!   sync journal with each object's incremental cursor.
//! * [`store`]: `--out` as an object store URL (S3, GCS, Azure): uploads, the journals as
//!   numbered objects and the lock object, at seams of `checkpoint`, `write` and `sync`.
//! * [`progress`]: bars on a terminal, log lines elsewhere.
//! * [`status_page`]: the `status --html` page, drawn from the same model as the table.
//! * [`metrics`]: the run's counters, served in the Prometheus text format on `--metrics-addr`.
//!
//! The fake org is a crate apart (`sfbackfill-fake-org`): it shares no code with the engine,
//! so the two can disagree, which is what makes it a test.

pub mod backfill;
pub mod checkpoint;
pub mod cmd;
pub mod compact;
pub mod config;
pub mod decode;
pub mod error;
mod kill_point;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod read;
pub mod salesforce;
pub mod secret;
pub mod status_page;
pub mod store;
pub mod sync;
pub mod write;
