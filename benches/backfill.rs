//! Placeholder: the end-to-end backfill bench (API thrift against the naive plan, rate-bound wall time).
fn main() {}
