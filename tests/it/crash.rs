//! Crash and fault suites: kill -9 at random points, every fault at once, then exact output.

#[allow(unused_imports)]
use crate::support::*;
