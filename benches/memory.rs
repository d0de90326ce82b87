//! Placeholder: peak RSS of a backfill of one heavy day at several concurrencies.
fn main() {}
