//! Records as Bulk API 2.0 CSV (salesforce-api.md §7.1): a header row of the selected names
//! in SELECT order (`Owner.Name` for a parent's field), then one row per record; every value
//! quoted with `""` inside, an empty cell for null, lines ending in LF.
//!
//! Invariants: columns come in the order the JSON renderer writes keys, so both views of one
//! [`QueryResult`] carry the same values; a query Bulk refuses never reaches here
//! ([`QueryResult::bulk_refusal`] is checked when the job is created).

use std::io::Write;
use std::ops::Range;

use super::render;
use super::{Column, Ctx, Kind, QueryResult, Records, Target, user_value};
use crate::data::Snapshot;
use crate::data::schema::FieldType;
use crate::data::values::Value;

impl QueryResult {
    /// Why Bulk API 2.0 refuses this query, as the error message job creation answers with:
    /// compound fields, `base64` fields and aggregates (§7.1). `None` for a plain record query.
    pub fn bulk_refusal(&self) -> Option<&'static str> {
        match &self.kind {
            Kind::Records(r) if has_compound(&r.columns) => {
                Some("Selecting compound data not supported in Bulk Query")
            }
            Kind::Records(r) if r.selects_base64() => {
                Some("FeatureNotEnabled : Binary field not supported")
            }
            Kind::Records(_) => None,
            Kind::Count(_) | Kind::Aggregate(_) => {
                Some("Aggregate queries are not supported by Bulk API")
            }
        }
    }

    /// Appends the header row (`"Id","Owner.Name"` and LF).
    pub fn csv_header(&self, out: &mut Vec<u8>) {
        let Kind::Records(r) = &self.kind else {
            return;
        };
        let mut names = Vec::new();
        header_names(&r.columns, "", &mut names);
        for (n, name) in names.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            quoted(name, out);
        }
        out.push(b'\n');
    }

    /// Appends the records at `range` (positions in the result), one CSV row each.
    pub fn render_csv(&self, range: Range<usize>, out: &mut Vec<u8>) {
        let Kind::Records(r) = &self.kind else {
            return;
        };
        let end = range.end.min(r.rows.len());
        for &at in &r.rows[range.start.min(end)..end] {
            r.csv_row(at as usize, out);
        }
    }
}

impl Records {
    fn csv_row(&self, at: usize, out: &mut Vec<u8>) {
        let row = &self.snap.objects[self.object].rows[at];
        let mut first = true;
        cells(
            &self.snap,
            Some(Ctx::Row(self.object, row)),
            &self.columns,
            &mut first,
            out,
        );
        out.push(b'\n');
    }
}

impl Records {
    /// Whether a `base64` field of the object itself is selected.
    fn selects_base64(&self) -> bool {
        let fields = &self.snap.objects[self.object].schema.fields;
        self.columns.iter().any(|c| {
            matches!(c, Column::Field { field, .. } if fields[*field].ftype == FieldType::Base64)
        })
    }
}

fn has_compound(cols: &[Column]) -> bool {
    cols.iter().any(|c| match c {
        Column::Compound { .. } => true,
        Column::Parent { columns, .. } => has_compound(columns),
        Column::Field { .. } => false,
    })
}

fn header_names(cols: &[Column], prefix: &str, out: &mut Vec<String>) {
    for column in cols {
        match column {
            Column::Field { key, .. } | Column::Compound { key, .. } => {
                out.push(format!("{prefix}{key}"));
            }
            Column::Parent { key, columns, .. } => {
                header_names(columns, &format!("{prefix}{key}."), out);
            }
        }
    }
}

/// One cell per leaf column; a null parent (`ctx` `None`) gives empty cells for all of its.
fn cells(
    snap: &Snapshot,
    ctx: Option<Ctx<'_>>,
    cols: &[Column],
    first: &mut bool,
    out: &mut Vec<u8>,
) {
    for column in cols {
        match column {
            Column::Field { field, .. } | Column::Compound { field, .. } => {
                if !std::mem::take(first) {
                    out.push(b',');
                }
                let value = match ctx {
                    Some(Ctx::Row(object, row)) => snap.value(object, *field, row),
                    Some(Ctx::User(id)) => user_value(id, *field),
                    None => Value::Null,
                };
                cell(&value, out);
            }
            Column::Parent {
                via,
                target,
                columns,
                ..
            } => {
                let inner = match ctx {
                    Some(Ctx::Row(object, row)) => match snap.value(object, *via, row) {
                        Value::Id(id) => parent_ctx(snap, *target, id),
                        _ => None,
                    },
                    _ => None,
                };
                cells(snap, inner, columns, first, out);
            }
        }
    }
}

fn parent_ctx(
    snap: &Snapshot,
    target: Target,
    id: crate::data::values::IdValue,
) -> Option<Ctx<'_>> {
    match target {
        Target::User => Some(Ctx::User(id)),
        Target::Object(t) => snap.objects[t]
            .rows
            .get(id.seq as usize)
            .map(|row| Ctx::Row(t, row)),
    }
}

/// One value in Bulk's CSV forms: datetimes `2024-03-10T07:15:00.000Z`, dates, times
/// `07:15:00.000Z`, `true`/`false`, numbers as in JSON; null is an empty, unquoted cell.
fn cell(v: &Value, out: &mut Vec<u8>) {
    let mut text = Vec::new();
    match v {
        Value::Null => return,
        Value::DateTime(ms) => {
            render::datetime(*ms, &mut text);
            text.push(b'Z');
        }
        Value::Text(s) => text.extend_from_slice(s.as_bytes()),
        Value::Id(id) => id.write(&mut text),
        Value::Date(_) | Value::Time(_) => {
            render::value(v, &mut text);
            text.retain(|&b| b != b'"');
        }
        Value::Bool(_) | Value::Int(_) | Value::Dec { .. } => render::value(v, &mut text),
    }
    out.push(b'"');
    for &b in &text {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

fn quoted(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let _ = out.write_all(s.replace('"', "\"\"").as_bytes());
    out.push(b'"');
}
