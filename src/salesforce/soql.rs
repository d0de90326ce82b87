//! Builds the SOQL the engine sends, from validated identifiers only.
//!
//! Owns: identifier validation and the text of every query (chunk ranges, counts). Nothing a
//! user typed reaches a query unless it passed [`Identifier::parse`] and was then matched
//! against the object's describe by the caller. Does not own sending queries (the client, `salesforce`).
//!
//! Invariants: date-time literals are always UTC with `Z` (an unencoded `+` would arrive as a
//! space, salesforce-api.md §4.5); windows are half-open `[start, end)`; rows are ordered by
//! `(cursor, Id)` so that ties on the cursor have a total, repeatable order.

use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt;

/// A Salesforce API name: an object or a field, standard or custom.
///
/// Letters, digits and underscores, starting with a letter, no double underscore except the
/// custom suffixes (`__c`, `__s`, ...) and a namespace prefix (`ns__Field__c`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier(String);

/// A name that cannot be a Salesforce API name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{name}` is not a valid Salesforce API name: use letters, digits and `_`, starting with a letter"
)]
pub struct InvalidIdentifier {
    pub name: String,
}

/// Salesforce API names are at most 40 characters plus a namespace and suffix; anything much
/// longer is a typo or an injection attempt.
const MAX_IDENTIFIER_LEN: usize = 120;

impl Identifier {
    pub fn parse(name: &str) -> Result<Self, InvalidIdentifier> {
        let invalid = || InvalidIdentifier {
            name: name.to_string(),
        };
        let mut chars = name.chars();
        let first_is_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        let rest_ok = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let ends_ok = !name.ends_with('_');
        if !first_is_letter || !rest_ok || !ends_ok || name.len() > MAX_IDENTIFIER_LEN {
            return Err(invalid());
        }
        if name.contains("___") {
            return Err(invalid());
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SOQL date-time literal: UTC, millisecond precision, `Z` suffix.
pub fn datetime_literal(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The rows of one object whose cursor lies in `[start, end)`, ordered by `(cursor, Id)`.
pub fn select_range(
    object: &Identifier,
    fields: &[Identifier],
    cursor: &Identifier,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> String {
    select_range_in(object, fields, cursor, start, end, &IdRange::default())
}

/// A select list: the fields' names, comma-separated.
fn field_list(fields: &[Identifier]) -> String {
    fields
        .iter()
        .map(Identifier::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A range of record ids, `[from, to)`; an open end is unbounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdRange {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl IdRange {
    pub fn is_whole(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }
}

/// [`select_range`] of the rows whose `Id` is also in `ids`.
pub fn select_range_in(
    object: &Identifier,
    fields: &[Identifier],
    cursor: &Identifier,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    ids: &IdRange,
) -> String {
    let list = field_list(fields);
    format!(
        "SELECT {list} FROM {object} WHERE {cursor} >= {} AND {cursor} < {}{} ORDER BY {cursor} ASC, Id ASC",
        datetime_literal(start),
        datetime_literal(end),
        id_filter(ids),
    )
}

/// The rows whose cursor lies in `[start, end)`, unordered: a Bulk API 2.0 job's query, which
/// must not `ORDER BY` so that the org keeps chunking it by primary key (salesforce-api.md §7.1).
pub fn bulk_range(
    object: &Identifier,
    fields: &[Identifier],
    cursor: &Identifier,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> String {
    format!(
        "SELECT {} FROM {object} WHERE {cursor} >= {} AND {cursor} < {}",
        field_list(fields),
        datetime_literal(start),
        datetime_literal(end),
    )
}

/// ` AND Id >= 'from' AND Id < 'to'`, each bound only when `ids` has it.
fn id_filter(ids: &IdRange) -> String {
    let from = ids.from.as_deref().map(string_literal);
    let to = ids.to.as_deref().map(string_literal);
    from.map(|id| format!(" AND Id >= {id}"))
        .into_iter()
        .chain(to.map(|id| format!(" AND Id < {id}")))
        .collect()
}

/// The lowest `Id` among the rows whose cursor lies in `[start, end)`, or with `from`, the
/// highest at or above it: one row, where an `Id` range cut begins or ends. The `Id >=` filter
/// of the second makes an org that cannot compare ids refuse it before any part needs one.
pub fn edge_id(
    object: &Identifier,
    cursor: &Identifier,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    from: Option<&str>,
) -> String {
    let (filter, order) = match from {
        None => (String::new(), "ASC"),
        Some(id) => (format!(" AND Id >= {}", string_literal(id)), "DESC"),
    };
    format!(
        "SELECT Id FROM {object} WHERE {cursor} >= {} AND {cursor} < {}{filter} ORDER BY Id {order} LIMIT 1",
        datetime_literal(start),
        datetime_literal(end),
    )
}

/// The earliest cursor value of `object`: one row, where its history starts when no `--start`
/// is given. `ORDER BY ... LIMIT 1` rather than `MIN()`: salesforce-api.md §4.5 guarantees
/// both clauses on every object, while it names no aggregate but `COUNT()` and the date
/// functions.
pub fn earliest_cursor(object: &Identifier, cursor: &Identifier) -> String {
    format!("SELECT {cursor} FROM {object} ORDER BY {cursor} ASC LIMIT 1")
}

/// The rows of one object whose cursor is exactly `at` and whose `Id` is above `after_id`, in
/// `Id` order: the rest of a cursor value shared by many rows (a bulk update), where a sync
/// stopped inside it. With the plain range from the next millisecond it continues exactly
/// after the last row read, in conditions joined by `AND` alone.
pub fn select_tie(
    object: &Identifier,
    fields: &[Identifier],
    cursor: &Identifier,
    at: DateTime<Utc>,
    after_id: &str,
) -> String {
    select_tie_in(object, fields, cursor, at, after_id, &IdRange::default())
}

/// [`select_tie`] of the rows whose `Id` is also in `ids`: a read of one `Id` range that
/// stopped inside a shared cursor value continues inside its range.
pub fn select_tie_in(
    object: &Identifier,
    fields: &[Identifier],
    cursor: &Identifier,
    at: DateTime<Utc>,
    after_id: &str,
    ids: &IdRange,
) -> String {
    let list = field_list(fields);
    format!(
        "SELECT {list} FROM {object} WHERE {cursor} = {} AND Id > {}{} ORDER BY {cursor} ASC, Id ASC",
        datetime_literal(at),
        string_literal(after_id),
        id_filter(ids),
    )
}

/// A SOQL string literal: single quotes, with quotes and backslashes escaped.
pub fn string_literal(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('\'', "\\'");
    format!("'{escaped}'")
}

/// How many rows of `object` have their cursor in `[start, end)`.
pub fn count_range(
    object: &Identifier,
    cursor: &Identifier,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> String {
    format!(
        "SELECT COUNT() FROM {object} WHERE {cursor} >= {} AND {cursor} < {}",
        datetime_literal(start),
        datetime_literal(end)
    )
}

/// Rows per UTC day of the cursor in `[start, end)`, as `AggregateResult` rows `{d, n}`.
/// `DAY_ONLY` without `convertTimezone` groups by the UTC date (salesforce-api.md §4.6).
pub fn count_by_day(
    object: &Identifier,
    cursor: &Identifier,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> String {
    format!(
        "SELECT DAY_ONLY({cursor}) d, COUNT(Id) n FROM {object} WHERE {cursor} >= {} AND {cursor} < {} GROUP BY DAY_ONLY({cursor})",
        datetime_literal(start),
        datetime_literal(end)
    )
}

/// Rows per UTC hour of the cursor in `[start, end)`, as `AggregateResult` rows `{d, h, n}`:
/// grouped by both `DAY_ONLY` and `HOUR_IN_DAY` (integers 0..=23), both UTC without
/// `convertTimezone` (salesforce-api.md §4.6), so a window that crosses a UTC midnight (a
/// zoned day, 23 or 25 hours on DST days) keeps its hours apart. At most 48 groups for a
/// window of up to two days, far under the 2,000-group limit of an aggregate.
pub fn count_by_hour(
    object: &Identifier,
    cursor: &Identifier,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> String {
    format!(
        "SELECT DAY_ONLY({cursor}) d, HOUR_IN_DAY({cursor}) h, COUNT(Id) n FROM {object} WHERE {cursor} >= {} AND {cursor} < {} GROUP BY DAY_ONLY({cursor}), HOUR_IN_DAY({cursor})",
        datetime_literal(start),
        datetime_literal(end)
    )
}

/// The whole object's row count, for `check`.
pub fn count_all(object: &Identifier) -> String {
    format!("SELECT COUNT() FROM {object}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn identifiers_accept_standard_custom_and_namespaced_names() {
        for ok in [
            "Account",
            "Invoice__c",
            "Geo__Latitude__s",
            "ns__Thing__c",
            "LoginTime",
            "A1",
        ] {
            assert!(Identifier::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn identifiers_refuse_anything_that_could_change_a_query() {
        for bad in [
            "",
            "1Account",
            "Account WHERE",
            "Id,Name",
            "Name'",
            "Owner.Name",
            "_x",
            "x_",
            "a___b",
            "Acc-ount",
            "Ac\u{e9}",
            "Id)--",
        ] {
            let err = Identifier::parse(bad).unwrap_err();
            assert!(err.to_string().contains("not a valid Salesforce API name"));
        }
    }

    #[test]
    fn range_query_is_half_open_utc_and_totally_ordered() {
        let obj = Identifier::parse("Account").unwrap();
        let cursor = Identifier::parse("LastModifiedDate").unwrap();
        let fields = [Identifier::parse("Id").unwrap(), cursor.clone()];
        let start = Utc.with_ymd_and_hms(2025, 3, 9, 5, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2025, 3, 10, 4, 0, 0).unwrap();
        assert_eq!(
            select_range(&obj, &fields, &cursor, start, end),
            "SELECT Id, LastModifiedDate FROM Account WHERE LastModifiedDate >= 2025-03-09T05:00:00.000Z \
             AND LastModifiedDate < 2025-03-10T04:00:00.000Z ORDER BY LastModifiedDate ASC, Id ASC"
        );
        assert!(!count_range(&obj, &cursor, start, end).contains('+'));
        let tie = select_tie(&obj, &fields, &cursor, start, "0018c00000001AbCDE");
        assert_eq!(
            tie,
            "SELECT Id, LastModifiedDate FROM Account WHERE LastModifiedDate = 2025-03-09T05:00:00.000Z \
             AND Id > '0018c00000001AbCDE' ORDER BY LastModifiedDate ASC, Id ASC"
        );
        let ids = IdRange {
            from: Some("5008c0000000A00".into()),
            to: None,
        };
        assert!(
            select_range_in(&obj, &fields, &cursor, start, end, &ids).contains(
                "< 2025-03-10T04:00:00.000Z AND Id >= '5008c0000000A00' ORDER BY LastModifiedDate ASC, Id ASC"
            )
        );
        let ids = IdRange {
            from: Some("5008c0000000A00".into()),
            to: Some("5008c0000000B00".into()),
        };
        assert!(
            select_range_in(&obj, &fields, &cursor, start, end, &ids)
                .contains("AND Id >= '5008c0000000A00' AND Id < '5008c0000000B00' ORDER BY")
        );
        assert_eq!(
            select_tie_in(&obj, &fields, &cursor, start, "5008c0000000A7x", &ids),
            "SELECT Id, LastModifiedDate FROM Account WHERE LastModifiedDate = 2025-03-09T05:00:00.000Z \
             AND Id > '5008c0000000A7x' AND Id >= '5008c0000000A00' AND Id < '5008c0000000B00' \
             ORDER BY LastModifiedDate ASC, Id ASC"
        );
    }

    #[test]
    fn the_earliest_cursor_is_one_ordered_row() {
        let obj = Identifier::parse("LoginHistory").unwrap();
        let cursor = Identifier::parse("LoginTime").unwrap();
        assert_eq!(
            earliest_cursor(&obj, &cursor),
            "SELECT LoginTime FROM LoginHistory ORDER BY LoginTime ASC LIMIT 1"
        );
    }
}
