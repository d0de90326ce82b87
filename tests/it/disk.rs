//! A full disk and an output folder that turns read-only mid-run: a clear error, nothing
//! corrupted, and the run completes once the cause is gone.
