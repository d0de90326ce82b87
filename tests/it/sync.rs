//! The incremental run against a fake org whose records change during and between syncs.
