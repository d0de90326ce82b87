//! `--api` for `backfill`: which objects Bulk API 2.0 jobs read this run, and the line that
//! says why for each object with days to read.
//!
//! With `auto`, an object's pending rows are counted with one `COUNT()` over its pending
//! days (taken from the query budget); an object not counted is read through REST.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::config::BackfillSettings;
use crate::plan::Chunk;
use crate::plan::api::{self, Api, ApiMode};
use crate::plan::spans;
use crate::read::{ObjectJob, QueryBudget};
use crate::salesforce::SalesforceClient;
use crate::salesforce::soql;

/// The objects whose spans Bulk jobs read; prints `backfill: OBJECT through API: why`.
pub(super) async fn bulk_objects(
    client: &SalesforceClient,
    settings: &BackfillSettings,
    budget: &QueryBudget,
    jobs: &HashMap<String, Arc<ObjectJob>>,
    chunks: &[Chunk],
) -> HashSet<String> {
    let mut bulk = HashSet::new();
    let mut objects: Vec<&String> = jobs.keys().collect();
    objects.sort();
    for object in objects {
        let pending: Vec<Chunk> = chunks
            .iter()
            .filter(|c| &c.object == object)
            .cloned()
            .collect();
        let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
            continue;
        };
        let job = &jobs[object];
        let sel = &job.selection;
        let rows = if settings.api == ApiMode::Auto && api::bulk_refusal(sel).is_none() {
            count(client, settings, budget, job, first, last).await
        } else {
            None
        };
        let choice = api::choose(
            settings.api,
            sel,
            rows,
            sel.rows_per_page(settings.limits.batch_size),
            job.groups.len(),
            spans::spans(pending).len(),
        );
        eprintln!(
            "backfill: {object} through {}: {}",
            choice.api, choice.reason
        );
        if choice.api == Api::Bulk {
            bulk.insert(object.clone());
        }
    }
    bulk
}

/// Rows of the object between its first and last pending day; `None` when the budget is
/// spent or the org would not count.
async fn count(
    client: &SalesforceClient,
    settings: &BackfillSettings,
    budget: &QueryBudget,
    job: &ObjectJob,
    first: &Chunk,
    last: &Chunk,
) -> Option<f64> {
    if !budget.try_take() {
        return None;
    }
    let sel = &job.selection;
    let soql = soql::count_range(
        &sel.object,
        &sel.cursor,
        first.window.start,
        last.window.end,
    );
    match client.query_json_in(&soql, settings.include_deleted).await {
        Ok(answer) => answer["totalSize"].as_u64().map(|n| n as f64),
        Err(e) => {
            tracing::info!(
                "{}: rows not counted ({e}); reading through REST",
                sel.object
            );
            None
        }
    }
}
