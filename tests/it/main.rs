//! One integration binary: the real binary and library against the fake org over loopback.

mod backfill; // the historical run end to end
mod bulk; // Bulk API 2.0 jobs: the same Parquet as REST, auto's choice, fallbacks
mod cli; // commands as a user runs them: exit codes, errors, secrets
mod client; // the Salesforce client: sign-in, retries, rate and concurrency limits, usage guard
mod clouds; // --out az://: the store suite against a real Azure emulator (Azurite); why no gs://
mod compact; // one file per day, each record once: exact, after a kill -9, beside syncs
mod crash; // kill -9 at random points and every fault at once: the next run is exact
mod cursors; // query locators that die mid-read: the read continues after its last row
mod disk; // a full disk and a folder that turns read-only mid-run
mod drift; // fields hidden, added and retyped in the org between runs
mod fake_org; // the fake org itself, so that what it fakes is faithful
mod metrics; // the --metrics-addr endpoint scraped mid-run against the fake org's own counts
mod page; // the status --html page in a headless browser, each day against the journal
mod readers; // the output read back by an independent reader
mod store; // --out s3://: a real S3-compatible server (moto) on loopback, kills, locks
mod support; // helpers: start the fake org, run the binary, read output back
mod sync; // the incremental run beside the backfill
mod thrift; // API thrift: requests against the pages the rows need, QUERY_TIMEOUT
mod time; // a living org and folder: days not over, derived history windows, errors met mid-run, settings changed before the lock
