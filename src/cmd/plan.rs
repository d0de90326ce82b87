//! `plan`: what a backfill would send, from the manifest and one count query per object.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::checkpoint;
use crate::config::BackfillSettings;
use crate::plan;
use crate::plan::api;
use crate::plan::history::{self, NotOver};
use crate::plan::spans;
use crate::salesforce::select::Selection;
use crate::salesforce::soql;
use crate::salesforce::{FetchError, SalesforceClient};

use crate::read::drift::Files;

use super::backfill::{
    backfill_fields, not_over_line, object_windows, pending_chunks, prepare_objects, report_drift,
};
use super::{Failure, client_config, connect, usage_line};

pub(super) async fn plan(settings: &BackfillSettings) -> Result<(), Failure> {
    client_config(&settings.connection, &settings.limits).validate()?;
    let state = checkpoint::read(&settings.out)?;
    let client = connect(&settings.connection, &settings.limits).await?;
    let prepared = prepare_objects(
        &client,
        backfill_fields(settings),
        &state.objects,
        chrono::Utc::now(),
        |_| Ok(settings.cursor_field.clone()),
    )
    .await?;
    let mut selections = Vec::new();
    for p in prepared {
        report_drift("plan", &p, Files::Backfill);
        if let Ok(drift) = p.drift {
            selections.push(drift.selection);
        }
    }
    let now = chrono::Utc::now();
    let refs: Vec<&Selection> = selections.iter().collect();
    let windows = object_windows(&client, settings, &refs, now, None).await?;
    for line in windows.iter().filter_map(|w| w.derived.as_ref()) {
        println!("{line}");
    }
    // Without --start, a backfill sends one query per object for its earliest cursor value.
    let earliest_queries = u64::from(settings.start.is_none());
    let per_second =
        f64::from(settings.limits.rate_limit) / settings.limits.rate_interval.as_secs_f64();
    println!(
        "{:<24} {:>5} {:>5} {:>8} {:>6} {:>9} {:>8} {:>9} {:>7}",
        "OBJECT", "DAYS", "DONE", "NOT OVER", "EMPTY", "ROWS", "QUERIES", "REQUESTS", "FLOOR"
    );
    let (mut total_requests, mut total_floor) = (0u64, 0u64);
    let mut estimated = Vec::new();
    let mut closing = Vec::new();
    let mut api_lines = Vec::new();
    for (selection, window) in selections.iter().zip(&windows) {
        let object = selection.object.to_string();
        let (days, pending, not_over) = match window.window {
            Some(window) => {
                let pending = pending_chunks(settings, &state, &object, window);
                let (over, later) = history::split_over(pending, now, settings.safety_lag);
                let days = plan::days(window, settings.chunk_timezone).len();
                (days, over, NotOver::of(&later, settings.safety_lag))
            }
            None => (0, Vec::new(), NotOver::default()),
        };
        if let Some(line) = not_over_line(&not_over, settings.chunk_timezone) {
            closing.push(format!("{object}: {line}"));
        }
        // Rows are counted over the days a backfill would read now, not the days to come.
        let counted = match (pending.first(), pending.last()) {
            (Some(a), Some(b)) => Some(plan::Window {
                start: a.window.start,
                end: b.window.end,
            }),
            _ => None,
        };
        let counts = match counted {
            None => BTreeMap::new(),
            Some(counted) => match day_counts(&client, selection, counted).await {
                Ok(counts) => counts,
                Err(e) if e.is_query_refused() => {
                    estimated.push(format!("{object} (`{e}`)"));
                    spread_count(&client, selection, counted).await?
                }
                Err(e) => return Err(e.into()),
            },
        };
        let page = selection.rows_per_page(settings.limits.batch_size);
        let groups = field_groups(settings, selection);
        let (mut rows, mut empty, mut floor) = (0.0, 0, 0);
        let mut cost = spans::Cost::default();
        let mut apis = api::ObjectApis::default();
        cost.queries += earliest_queries;
        cost.requests += earliest_queries;
        for span in spans::spans(pending.clone()) {
            let estimates = spans::estimate_days(&span.days, &counts);
            empty += estimates.iter().filter(|&&n| n == 0.0).count();
            let span_rows = estimates.iter().sum::<f64>();
            rows += span_rows;
            let shape = api::SpanShape {
                rows: span_rows,
                rest_page_rows: page,
                groups,
                days: span.days.len(),
                concurrency: settings.limits.concurrency,
                bulk_page_rows: settings.bulk.page_rows,
            };
            let (choice, jobs) = api::for_span(settings.api, selection, &shape);
            let (c, fewest) = match choice.api {
                api::Api::Bulk => {
                    // Under `auto` a span's first REST page shows its rows before the handover.
                    let first_page = u64::from(settings.api == api::ApiMode::Auto);
                    let requests = shape.bulk_requests(jobs) + first_page;
                    let queries = jobs as u64 + first_page;
                    (spans::Cost { queries, requests }, shape.bulk_requests(1))
                }
                api::Api::Rest => (
                    spans::expected_cost(&estimates, page, settings.limits.concurrency),
                    (span_rows.round() as u64).div_ceil(page),
                ),
            };
            cost.queries += c.queries;
            cost.requests += c.requests;
            floor += fewest;
            apis.add(choice, jobs, &shape);
        }
        if let Some(line) = apis.line(&object) {
            api_lines.push(line);
        }
        let rows = rows.round() as u64;
        // The describe is part of both.
        let floor = floor + 1;
        total_requests += cost.requests + 1;
        total_floor += floor;
        println!(
            "{:<24} {:>5} {:>5} {:>8} {:>6} {:>9} {:>8} {:>9} {:>7}",
            object,
            days,
            days - pending.len() - not_over.days as usize,
            not_over.days,
            empty,
            rows,
            cost.queries,
            cost.requests + 1,
            floor
        );
    }
    for line in &closing {
        println!("{line}");
    }
    for line in &api_lines {
        println!("{line}");
    }
    if !estimated.is_empty() {
        println!(
            "the org would not count rows per day for {}: their rows are the window's count spread evenly over its days, so EMPTY and QUERIES are guesses",
            estimated.join(", ")
        );
    }
    let secs = total_requests as f64 / per_second;
    println!(
        "about {total_requests} requests against a lower bound of {total_floor} (the fewest requests the rows need, plus each describe); at {per_second:.1} requests/s about {}",
        human_duration(Duration::from_secs_f64(secs))
    );
    println!("{}", usage_line(&client));
    Ok(())
}

/// Rows per UTC day of the object's cursor over `window`, one aggregate query per stretch of
/// days that fits Salesforce's 2,000-group limit.
async fn day_counts(
    client: &SalesforceClient,
    selection: &Selection,
    window: plan::Window,
) -> Result<BTreeMap<chrono::NaiveDate, u64>, FetchError> {
    let mut counts = BTreeMap::new();
    let stretch = chrono::Duration::days(spans::MAX_COUNTED_DAYS as i64);
    let mut start = window.start;
    while start < window.end {
        let end = (start + stretch).min(window.end);
        let soql = soql::count_by_day(&selection.object, &selection.cursor, start, end);
        counts.extend(spans::day_counts(&client.query_json(&soql).await?));
        start = end;
    }
    Ok(counts)
}

/// For an org that refuses the per-day aggregate: the window's `COUNT()`, spread evenly over
/// its UTC days, so `plan` still prints an estimate instead of failing.
async fn spread_count(
    client: &SalesforceClient,
    selection: &Selection,
    window: plan::Window,
) -> Result<BTreeMap<chrono::NaiveDate, u64>, Failure> {
    let soql = soql::count_range(
        &selection.object,
        &selection.cursor,
        window.start,
        window.end,
    );
    let total = client.query_json(&soql).await?["totalSize"]
        .as_u64()
        .unwrap_or(0);
    Ok(spans::spread_evenly(window, total))
}

/// REST field groups of the selection, as `backfill` would split its queries.
fn field_groups(settings: &BackfillSettings, selection: &Selection) -> usize {
    crate::salesforce::select::field_groups(
        selection,
        super::backfill::query_uri_prefix(&settings.connection),
        settings.max_query_uri_bytes,
    )
    .len()
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}
