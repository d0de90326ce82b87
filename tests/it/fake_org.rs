//! The fake org itself: auth errors, SOQL, paging consistency, limits and every fault.

#[allow(unused_imports)]
use crate::support::*;
