//! The Salesforce client against the fake org: sign-in, setup errors, retries, limits.

#[allow(unused_imports)]
use crate::support::*;
