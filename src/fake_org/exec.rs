//! STUB (being replaced by its owner): runs a parsed query against a snapshot of the org.
use std::ops::Range;
use super::data::Org;

/// A query error as Salesforce reports it: `errorCode` and `message` (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoqlError {
    pub code: &'static str,
    pub message: String,
}

/// The rows (or count, or groups) a query matched, frozen at execution time.
pub struct QueryResult {}

impl QueryResult {
    /// `totalSize` of the response.
    pub fn total_size(&self) -> usize {
        unimplemented!()
    }
    /// Records that will be served over all pages (0 for `COUNT()`).
    pub fn len(&self) -> usize {
        unimplemented!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A cap on page size below the requested batch size (wide rows), if any.
    pub fn max_page_size(&self) -> Option<usize> {
        unimplemented!()
    }
    /// Appends the JSON records `range` (comma separated, no brackets) to `out`.
    pub fn render_records(&self, _range: Range<usize>, _api_version: &str, _out: &mut Vec<u8>) {
        unimplemented!()
    }
}

/// Parses and runs `soql` (`query_all` = the `queryAll` resource, soft-deleted rows included).
pub fn execute(_org: &Org, _soql: &str, _query_all: bool) -> Result<QueryResult, SoqlError> {
    unimplemented!("exec stub")
}
