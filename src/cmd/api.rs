//! `--api` for `backfill`: which objects Bulk API 2.0 jobs read from the start, which may be
//! handed to Bulk after a span's first page (`auto`), and a line for each object Bulk cannot
//! serve.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::plan::api::{self, ApiMode};
use crate::read::ObjectJob;

/// The objects Bulk reads (`--api bulk`) and those `auto` may hand to Bulk; prints
/// `backfill: OBJECT through API: why` for each object Bulk reads or cannot serve.
pub(super) fn bulk_objects(
    mode: ApiMode,
    jobs: &HashMap<String, Arc<ObjectJob>>,
) -> (HashSet<String>, HashSet<String>) {
    let (mut bulk, mut auto) = (HashSet::new(), HashSet::new());
    if mode == ApiMode::Rest {
        return (bulk, auto);
    }
    let mut objects: Vec<&String> = jobs.keys().collect();
    objects.sort();
    for object in objects {
        if let Some(refusal) = api::bulk_refusal(&jobs[object].selection) {
            eprintln!("backfill: {object} through rest: {refusal}");
        } else if mode == ApiMode::Bulk {
            eprintln!("backfill: {object} through bulk: --api bulk");
            bulk.insert(object.clone());
        } else {
            auto.insert(object.clone());
        }
    }
    (bulk, auto)
}
