//! Which API reads an object's days: REST query pages, or Bulk API 2.0 query jobs.
//!
//! Pure. Owns the choice `--api` leaves to the tool (`auto`) and what Bulk cannot serve. A
//! REST page holds at most 2,000 rows; a Bulk job costs a create, a few polls, a results
//! request per [`BULK_PAGE_ROWS`] rows and a delete (salesforce-api.md §7.1), each one API
//! request. `auto` takes Bulk when that is at most half the REST requests: then the job's
//! wait (its polls) is shorter than the REST pages it saves, so it is not slower either.
//!
//! Invariant: whatever `--api` says, an object Bulk cannot serve (a compound or `base64`
//! field selected, an object on the deny-list) is read through REST, with the reason.

use crate::salesforce::describe::FieldType;
use crate::salesforce::select::Selection;

/// `--api`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ApiMode {
    /// Bulk where its requests are at most half of REST's for the rows counted.
    #[default]
    Auto,
    Rest,
    Bulk,
}

/// The API that reads an object's days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Rest,
    Bulk,
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Api::Rest => "rest",
            Api::Bulk => "bulk",
        })
    }
}

/// The API chosen for an object and why, in words for `plan` and the run's notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiChoice {
    pub api: Api,
    pub reason: String,
}

/// Rows asked per Bulk results page (`maxRecords`).
pub const BULK_PAGE_ROWS: usize = 50_000;

/// Status polls a job takes on average before it completes; a guess for the estimate only.
const EXPECTED_POLLS: u64 = 4;

/// Objects Bulk API 2.0 does not serve or serves only with a filter (salesforce-api.md §4.7,
/// §7.1); the org's own refusal (`INVALIDENTITY`) sends others to REST at run time.
const BULK_DENY_LIST: &[&str] = &[
    "ActivityHistory",
    "AggregateResult",
    "CombinedAttachment",
    "ContentDocumentLink",
    "EntityParticle",
    "FieldDefinition",
    "FlexQueueItem",
    "IdeaComment",
    "Name",
    "NoteAndAttachment",
    "OpenActivity",
    "PicklistValueInfo",
    "UserFieldAccess",
    "UserRecordAccess",
    "Vote",
];

/// Why Bulk cannot read this selection, if it cannot.
pub fn bulk_refusal(selection: &Selection) -> Option<String> {
    let object = selection.object.as_str();
    if BULK_DENY_LIST
        .iter()
        .any(|d| d.eq_ignore_ascii_case(object))
    {
        return Some(format!("{object} is not served by the Bulk API"));
    }
    let field = selection.fields.iter().find(|f| {
        matches!(
            f.field_type,
            FieldType::Address | FieldType::Location | FieldType::Base64
        )
    })?;
    let kind = if field.field_type == FieldType::Base64 {
        "base64"
    } else {
        "compound"
    };
    Some(format!(
        "the {kind} field {object}.{} is selected, which Bulk refuses",
        field.name
    ))
}

/// REST requests to read `rows`: a page per `rows_per_page` for each field group.
pub fn rest_requests(rows: f64, rows_per_page: u64, groups: usize) -> u64 {
    let pages = (rows / rows_per_page.max(1) as f64).ceil().max(1.0) as u64;
    pages * groups.max(1) as u64
}

/// How many jobs read a span of `days` days holding about `rows`, side by side: one per
/// results page of `page_rows`, at most `concurrency` and one per day. A job's results pages
/// come one after another (each names the next by its locator), so a heavy span read by one
/// job is read by one task while the others idle; each extra job costs a create, polls and a
/// delete.
pub fn jobs_for(rows: f64, page_rows: usize, days: usize, concurrency: usize) -> usize {
    let pages = (rows / page_rows.max(1) as f64).ceil() as usize;
    pages.min(concurrency).min(days).max(1)
}

/// Bulk requests to read `rows` with `jobs` jobs of results pages of `page_rows`: each job a
/// create, polls, at least one results page and a delete.
pub fn bulk_requests(rows: f64, jobs: usize, page_rows: usize) -> u64 {
    let jobs = jobs.max(1) as u64;
    let pages = ((rows / page_rows.max(1) as f64).ceil() as u64).max(jobs);
    jobs * (1 + EXPECTED_POLLS + 1) + pages
}

/// What the choice for one span of pending days weighs.
#[derive(Debug, Clone, Copy)]
pub struct SpanShape {
    /// About how many rows the span holds.
    pub rows: f64,
    /// Rows per REST page of the selection.
    pub rest_page_rows: u64,
    /// REST field groups (each reads every row once).
    pub groups: usize,
    pub days: usize,
    /// `--concurrency`: the most jobs a heavy span is cut into.
    pub concurrency: usize,
    /// `--bulk-page-rows`.
    pub bulk_page_rows: usize,
}

impl SpanShape {
    /// REST requests to read the span.
    pub fn rest_requests(&self) -> u64 {
        rest_requests(self.rows, self.rest_page_rows, self.groups)
    }

    /// Bulk requests to read the span with `jobs` jobs.
    pub fn bulk_requests(&self, jobs: usize) -> u64 {
        bulk_requests(self.rows, jobs, self.bulk_page_rows)
    }
}

/// The API that reads one span under `mode`, and the jobs it is cut into when through Bulk:
/// `auto` takes as many jobs, up to [`jobs_for`], as keep Bulk at most half of REST's
/// requests; `--api bulk` reads a span with one job. `backfill` and `plan` both decide here.
pub fn for_span(mode: ApiMode, selection: &Selection, shape: &SpanShape) -> (ApiChoice, usize) {
    let most = match mode {
        ApiMode::Auto => jobs_for(
            shape.rows,
            shape.bulk_page_rows,
            shape.days,
            shape.concurrency,
        ),
        _ => 1,
    };
    let choose = |jobs| (choose(mode, selection, shape, jobs), jobs);
    (1..=most)
        .rev()
        .map(choose)
        .find(|(choice, _)| choice.api == Api::Bulk)
        .unwrap_or_else(|| choose(1))
}

/// The API for a span read, if through Bulk, by `jobs` jobs.
fn choose(mode: ApiMode, selection: &Selection, shape: &SpanShape, jobs: usize) -> ApiChoice {
    let rest = |reason: String| ApiChoice {
        api: Api::Rest,
        reason,
    };
    if mode == ApiMode::Rest {
        return rest("--api rest".into());
    }
    if let Some(refusal) = bulk_refusal(selection) {
        return rest(refusal);
    }
    if mode == ApiMode::Bulk {
        return ApiChoice {
            api: Api::Bulk,
            reason: "--api bulk".into(),
        };
    }
    let rows = shape.rows;
    let (by_rest, by_bulk) = (shape.rest_requests(), shape.bulk_requests(jobs));
    let numbers = format!("~{rows:.0} rows: {by_rest} REST requests, {by_bulk} Bulk");
    if by_bulk * 2 <= by_rest {
        ApiChoice {
            api: Api::Bulk,
            reason: numbers,
        }
    } else {
        rest(numbers)
    }
}

/// An object's `api:` line: the API of its spans (both when they differ), the jobs Bulk reads
/// them with, and why.
#[derive(Default)]
pub struct ObjectApis {
    bulk: Vec<(ApiChoice, usize, f64)>,
    rest: Vec<(ApiChoice, f64)>,
}

impl ObjectApis {
    /// Records the choice for one span of the object.
    pub fn add(&mut self, choice: ApiChoice, jobs: usize, shape: &SpanShape) {
        let rows = shape.rows;
        match choice.api {
            Api::Bulk => self.bulk.push((choice, jobs, rows)),
            Api::Rest => self.rest.push((choice, rows)),
        }
    }

    /// `api: OBJECT through …`; `None` when the object has no pending span.
    pub fn line(&self, object: &str) -> Option<String> {
        let jobs: usize = self.bulk.iter().map(|(_, j, _)| j).sum();
        let jobs = format!("{jobs} job{}", if jobs == 1 { "" } else { "s" });
        // The heaviest span's reason speaks for the object.
        let heaviest = |a: &f64, b: &f64| a.total_cmp(b);
        let bulk = self.bulk.iter().max_by(|a, b| heaviest(&a.2, &b.2));
        let rest = self.rest.iter().max_by(|a, b| heaviest(&a.1, &b.1));
        Some(match (bulk, rest) {
            (Some((b, ..)), None) => format!("api: {object} through bulk: {} ({jobs})", b.reason),
            (None, Some((r, _))) => format!("api: {object} through rest: {}", r.reason),
            (Some((b, ..)), Some((r, _))) => format!(
                "api: {object} through bulk for {} of {} spans: {} ({jobs}); rest for the others: {}",
                self.bulk.len(),
                self.bulk.len() + self.rest.len(),
                b.reason,
                r.reason
            ),
            (None, None) => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tests::field;
    use crate::salesforce::soql::Identifier;

    fn shape(rows: f64) -> SpanShape {
        SpanShape {
            rows,
            rest_page_rows: 2000,
            groups: 1,
            days: 365,
            concurrency: 1,
            bulk_page_rows: BULK_PAGE_ROWS,
        }
    }

    fn selection(object: &str, extra: Option<(&str, FieldType)>) -> Selection {
        let mut fields = vec![
            field("Id", FieldType::Id),
            field("SystemModstamp", FieldType::Datetime),
        ];
        fields.extend(extra.map(|(n, t)| field(n, t)));
        Selection {
            object: Identifier::parse(object).unwrap(),
            cursor: Identifier::parse("SystemModstamp").unwrap(),
            fields,
        }
    }

    #[test]
    fn a_heavy_span_is_read_by_a_job_per_results_page_up_to_the_concurrency() {
        assert_eq!(jobs_for(10_000.0, BULK_PAGE_ROWS, 365, 4), 1);
        assert_eq!(jobs_for(120_000.0, BULK_PAGE_ROWS, 365, 4), 3);
        assert_eq!(jobs_for(5_000_000.0, BULK_PAGE_ROWS, 365, 4), 4);
        assert_eq!(jobs_for(5_000_000.0, BULK_PAGE_ROWS, 2, 4), 2);
        assert_eq!(jobs_for(0.0, BULK_PAGE_ROWS, 0, 4), 1);
    }

    #[test]
    fn auto_takes_bulk_only_where_it_halves_the_requests() {
        let s = selection("Case", None);
        let heavy = choose(ApiMode::Auto, &s, &shape(200_000.0), 1);
        assert_eq!(heavy.api, Api::Bulk, "{}", heavy.reason);
        assert!(
            heavy.reason.contains("100 REST requests, 10 Bulk"),
            "{}",
            heavy.reason
        );
        let small = choose(ApiMode::Auto, &s, &shape(900.0), 1);
        assert_eq!(small.api, Api::Rest, "{}", small.reason);
        let edge = choose(ApiMode::Auto, &s, &shape(28_000.0), 1);
        assert_eq!(
            edge.api,
            Api::Bulk,
            "14 pages vs 7 requests: {}",
            edge.reason
        );
        let under = choose(ApiMode::Auto, &s, &shape(26_000.0), 1);
        assert_eq!(
            under.api,
            Api::Rest,
            "13 pages vs 7 requests: {}",
            under.reason
        );
        let scattered = choose(ApiMode::Auto, &s, &shape(200_000.0), 10);
        assert_eq!(scattered.api, Api::Rest, "ten jobs: {}", scattered.reason);
        assert_eq!(choose(ApiMode::Rest, &s, &shape(1e7), 1).api, Api::Rest);
        assert_eq!(choose(ApiMode::Bulk, &s, &shape(1.0), 1).api, Api::Bulk);
    }

    #[test]
    fn a_span_takes_as_many_jobs_as_keep_bulk_at_half_and_weighs_the_bulk_page_size() {
        let s = selection("Case", None);
        let wide = SpanShape {
            concurrency: 4,
            ..shape(5_000_000.0)
        };
        let (choice, jobs) = for_span(ApiMode::Auto, &s, &wide);
        assert_eq!((choice.api, jobs), (Api::Bulk, 4), "{}", choice.reason);
        let (choice, jobs) = for_span(ApiMode::Bulk, &s, &wide);
        assert_eq!(
            (choice.api, jobs),
            (Api::Bulk, 1),
            "--api bulk: a job a span"
        );
        // 14 REST pages: 7 Bulk requests at 50,000 rows a page, 20 at 2,000.
        let edge = shape(28_000.0);
        assert_eq!(for_span(ApiMode::Auto, &s, &edge).0.api, Api::Bulk);
        let small_pages = SpanShape {
            bulk_page_rows: 2000,
            ..edge
        };
        let (choice, jobs) = for_span(ApiMode::Auto, &s, &small_pages);
        assert_eq!((choice.api, jobs), (Api::Rest, 1), "{}", choice.reason);
        assert!(
            choice.reason.contains("14 REST requests, 20 Bulk"),
            "{}",
            choice.reason
        );
    }

    #[test]
    fn an_objects_line_names_its_spans_apis_and_jobs() {
        let s = selection("Case", None);
        let mut apis = ObjectApis::default();
        assert_eq!(apis.line("Case"), None);
        let heavy = SpanShape {
            concurrency: 4,
            ..shape(5_000_000.0)
        };
        let (choice, jobs) = for_span(ApiMode::Auto, &s, &heavy);
        apis.add(choice, jobs, &heavy);
        let line = apis.line("Case").unwrap();
        assert!(
            line.starts_with("api: Case through bulk: ~5000000 rows"),
            "{line}"
        );
        assert!(line.ends_with("(4 jobs)"), "{line}");
        let light = shape(900.0);
        let (choice, jobs) = for_span(ApiMode::Auto, &s, &light);
        apis.add(choice, jobs, &light);
        let line = apis.line("Case").unwrap();
        assert!(
            line.starts_with("api: Case through bulk for 1 of 2 spans: ~5000000 rows"),
            "{line}"
        );
        assert!(
            line.ends_with("rest for the others: ~900 rows: 1 REST requests, 7 Bulk"),
            "{line}"
        );
    }

    #[test]
    fn what_bulk_refuses_goes_to_rest_whatever_the_mode() {
        for (object, extra, said) in [
            (
                "Account",
                Some(("BillingAddress", FieldType::Address)),
                "compound field Account.BillingAddress",
            ),
            (
                "Attachment",
                Some(("Body", FieldType::Base64)),
                "base64 field Attachment.Body",
            ),
            (
                "UserRecordAccess",
                None,
                "UserRecordAccess is not served by the Bulk API",
            ),
        ] {
            let c = choose(ApiMode::Bulk, &selection(object, extra), &shape(1e7), 1);
            assert_eq!(c.api, Api::Rest);
            assert!(c.reason.contains(said), "{}", c.reason);
        }
    }
}
