//! Runs a parsed query against a snapshot of the org: name and type checks against the
//! describe, filtering, ordering, `LIMIT`/`OFFSET`, `COUNT()`, `GROUP BY` aggregates, and the
//! records as Salesforce JSON.
//!
//! Owns: query semantics and errors (`INVALID_FIELD`, `INVALID_TYPE`, `MALFORMED_QUERY`, ...).
//! Does not own paging or HTTP: the server slices a [`QueryResult`] into pages.
//!
//! Invariants:
//! * A [`QueryResult`] is frozen at execution: it holds the org's [`Snapshot`] (shared rows),
//!   so later edits never change what its remaining pages render.
//! * `query` never returns soft-deleted rows; `queryAll` does.
//! * Without `ORDER BY` rows come in `Id` order; ties under `ORDER BY` keep `Id` order.
//! * Literals are converted to typed values once, when the query is compiled; rows are
//!   filtered without parsing strings.
//! * An aggregate result never holds more than [`MAX_GROUPS`] rows: it cannot page.

mod csv;
mod dates;
mod render;

use std::collections::HashMap;
use std::ops::Range;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};

use super::data::schema::{Field, FieldType};
use super::data::values::{IdValue, USERS, Value};
use super::data::{Org, Row, Snapshot};
use super::soql::{self, CmpOp, Cond, Expr, Func, Lit, LitValue, Query, RelDate, located};

pub use render::datetime as render_datetime;

/// Largest `OFFSET` Salesforce accepts.
pub const MAX_OFFSET: u64 = 2_000;
/// An aggregate query's rows must fit in one batch (salesforce-api.md §4.6).
pub const MAX_GROUPS: usize = 2_000;
/// Pages are capped at this many rows when two or more custom long text areas are selected
/// (§4.3); standard ones (`Description`) do not count, as in Salesforce.
pub const LONG_TEXT_PAGE: usize = 200;

/// A query error as Salesforce reports it: `errorCode` and `message` (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoqlError {
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for SoqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for SoqlError {}

/// The rows (or count, or groups) a query matched, frozen at execution time.
pub struct QueryResult {
    kind: Kind,
}

enum Kind {
    Count(usize),
    Records(Records),
    /// Aggregate rows, already rendered (there are at most [`MAX_GROUPS`]).
    Aggregate(Vec<Vec<u8>>),
}

struct Records {
    snap: Snapshot,
    object: usize,
    rows: Vec<u32>,
    columns: Vec<Column>,
    /// Custom long text areas selected from the object itself, for [`LONG_TEXT_PAGE`].
    custom_long_texts: usize,
}

/// One key of a rendered record.
enum Column {
    Field {
        key: &'static str,
        field: usize,
    },
    Compound {
        key: &'static str,
        field: usize,
    },
    /// `"Owner": {"attributes": .., "Name": ..}`: the selected columns of one parent, which
    /// may be parents in turn (up to [`MAX_RELATIONSHIP_DEPTH`] levels). Under a `User`
    /// parent, `field` indices are into [`USER_FIELDS`].
    Parent {
        key: &'static str,
        via: usize,
        target: Target,
        columns: Vec<Column>,
    },
}

/// The deepest relationship path SOQL allows (`A.B.C.D.E.Field`, §4.6).
pub const MAX_RELATIONSHIP_DEPTH: usize = 5;

/// One step of a relationship path: the reference field (`OwnerId`) in the object reached
/// so far, its relationship name (`Owner`) and the object it leads to.
#[derive(Debug, Clone, Copy)]
struct Hop {
    key: &'static str,
    via: usize,
    target: Target,
}

/// Where a row's columns are read from while rendering: a row of an object, or a user.
#[derive(Clone, Copy)]
enum Ctx<'a> {
    Row(usize, &'a Row),
    User(IdValue),
}

/// The object a reference points to: the built-in users or one of the org's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    User,
    Object(usize),
}

/// `User` fields reachable through `Owner.`, `CreatedBy.`, ...
const USER_FIELDS: &[(&str, FieldType)] = &[
    ("Id", FieldType::Id),
    ("Name", FieldType::String),
    ("Username", FieldType::String),
    ("Email", FieldType::Email),
    ("IsActive", FieldType::Boolean),
];

impl QueryResult {
    /// `totalSize` of the response.
    pub fn total_size(&self) -> usize {
        match &self.kind {
            Kind::Count(n) => *n,
            Kind::Records(r) => r.rows.len(),
            Kind::Aggregate(rows) => rows.len(),
        }
    }

    /// Records that will be served over all pages (0 for `COUNT()`).
    pub fn len(&self) -> usize {
        match &self.kind {
            Kind::Count(_) => 0,
            Kind::Records(r) => r.rows.len(),
            Kind::Aggregate(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is an aggregate result, which never pages: all of it (at most
    /// [`MAX_GROUPS`] rows) comes in the first response whatever the batch size (§4.6).
    pub fn is_aggregate(&self) -> bool {
        matches!(self.kind, Kind::Aggregate(_))
    }

    /// A cap on page size below the requested batch size (wide rows), if any.
    pub fn max_page_size(&self) -> Option<usize> {
        match &self.kind {
            Kind::Records(r) if r.custom_long_texts >= 2 => Some(LONG_TEXT_PAGE),
            _ => None,
        }
    }

    /// Appends the JSON records `range` (comma separated, no brackets) to `out`.
    /// `api_version` is `62.0` or `v62.0`.
    pub fn render_records(&self, range: Range<usize>, api_version: &str, out: &mut Vec<u8>) {
        let version = api_version.trim_start_matches('v');
        match &self.kind {
            Kind::Count(_) => {}
            Kind::Aggregate(rows) => {
                for (n, row) in rows[range.start.min(rows.len())..range.end.min(rows.len())]
                    .iter()
                    .enumerate()
                {
                    if n > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(row);
                }
            }
            Kind::Records(r) => {
                let end = range.end.min(r.rows.len());
                for (n, &at) in r.rows[range.start.min(end)..end].iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    r.render(at as usize, version, out);
                }
            }
        }
    }
}

impl Records {
    fn render(&self, at: usize, version: &str, out: &mut Vec<u8>) {
        let data = &self.snap.objects[self.object];
        let row = &data.rows[at];
        attributes(
            data.schema.name,
            &self.snap.value(self.object, 0, row),
            version,
            out,
        );
        columns(
            &self.snap,
            Ctx::Row(self.object, row),
            &self.columns,
            version,
            out,
        );
        out.push(b'}');
    }
}

/// Appends `,"key":value` for each column, read from `ctx`.
fn columns(snap: &Snapshot, ctx: Ctx<'_>, cols: &[Column], version: &str, out: &mut Vec<u8>) {
    for column in cols {
        out.push(b',');
        match (column, ctx) {
            (Column::Field { key, field }, Ctx::Row(object, row)) => {
                key_of(key, out);
                render::value(&snap.value(object, *field, row), out);
            }
            (Column::Field { key, field }, Ctx::User(id)) => {
                key_of(key, out);
                render::value(&user_value(id, *field), out);
            }
            (Column::Compound { key, field }, Ctx::Row(object, row)) => {
                key_of(key, out);
                compound(snap, object, *field, row, out);
            }
            (
                Column::Parent {
                    key,
                    via,
                    target,
                    columns: inner,
                },
                Ctx::Row(object, row),
            ) => {
                key_of(key, out);
                match snap.value(object, *via, row) {
                    Value::Id(id) => parent(snap, *target, id, inner, version, out),
                    _ => out.extend_from_slice(b"null"),
                }
            }
            (Column::Compound { key, .. } | Column::Parent { key, .. }, Ctx::User(_)) => {
                // Users have no compound fields or relationships here; the compiler never
                // builds such a column.
                key_of(key, out);
                out.extend_from_slice(b"null");
            }
        }
    }
}

/// Adds `leaf`, reached through `hops`, to the column tree: under the parent column of the
/// first hop (made on its first mention, so parents keep the order of first selection).
fn insert_column(cols: &mut Vec<Column>, hops: &[Hop], leaf: Column) {
    let Some((hop, rest)) = hops.split_first() else {
        cols.push(leaf);
        return;
    };
    let at = cols
        .iter()
        .position(|c| matches!(c, Column::Parent { via, .. } if *via == hop.via));
    let at = at.unwrap_or_else(|| {
        cols.push(Column::Parent {
            key: hop.key,
            via: hop.via,
            target: hop.target,
            columns: Vec::new(),
        });
        cols.len() - 1
    });
    if let Column::Parent { columns, .. } = &mut cols[at] {
        insert_column(columns, rest, leaf);
    }
}

/// `{"attributes":{"type":..,"url":..}` (the record stays open for its fields).
fn attributes(object: &str, id: &Value, version: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"attributes\":{\"type\":\"");
    out.extend_from_slice(object.as_bytes());
    out.extend_from_slice(b"\",\"url\":\"/services/data/v");
    out.extend_from_slice(version.as_bytes());
    out.extend_from_slice(b"/sobjects/");
    out.extend_from_slice(object.as_bytes());
    out.push(b'/');
    if let Value::Id(id) = id {
        id.write(out);
    }
    out.extend_from_slice(b"\"}");
}

fn key_of(key: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// An address or location object from its components, `null` when all are empty.
fn compound(snap: &Snapshot, object: usize, field: usize, row: &Row, out: &mut Vec<u8>) {
    let fields = &snap.objects[object].schema.fields;
    let f = &fields[field];
    // A component hidden from the Run-As user is not part of its compound either.
    let parts: Vec<(&str, Value)> = f
        .components
        .iter()
        .filter(|(_, i)| !fields[*i].hidden)
        .map(|(k, i)| (*k, snap.value(object, *i, row)))
        .collect();
    if parts.iter().all(|(_, v)| *v == Value::Null) {
        out.extend_from_slice(b"null");
        return;
    }
    let keys: &[&str] = if f.ftype == FieldType::Address {
        &[
            "city",
            "country",
            "countryCode",
            "geocodeAccuracy",
            "latitude",
            "longitude",
            "postalCode",
            "state",
            "stateCode",
            "street",
        ]
    } else {
        &["latitude", "longitude"]
    };
    out.push(b'{');
    for (n, key) in keys.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        key_of(key, out);
        match parts.iter().find(|(k, _)| k == key) {
            Some((_, v)) => render::value(v, out),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
}

fn parent(
    snap: &Snapshot,
    target: Target,
    id: IdValue,
    cols: &[Column],
    version: &str,
    out: &mut Vec<u8>,
) {
    match target {
        Target::User => {
            attributes("User", &Value::Id(id), version, out);
            columns(snap, Ctx::User(id), cols, version, out);
        }
        Target::Object(t) => {
            let data = &snap.objects[t];
            let Some(row) = data.rows.get(id.seq as usize) else {
                out.extend_from_slice(b"null");
                return;
            };
            attributes(data.schema.name, &Value::Id(id), version, out);
            columns(snap, Ctx::Row(t, row), cols, version, out);
        }
    }
    out.push(b'}');
}

fn user_value(id: IdValue, field: usize) -> Value {
    let name = USERS[id.seq as usize % USERS.len()];
    let login: String = name
        .chars()
        .filter(|c| c.is_ascii_alphabetic() || *c == ' ')
        .collect::<String>()
        .to_ascii_lowercase()
        .replace(' ', ".");
    match USER_FIELDS[field].0 {
        "Id" => Value::Id(id),
        "Name" => Value::Text(name.into()),
        "Username" => Value::Text(format!("{login}@fake-org.example").into()),
        "Email" => Value::Text(format!("{login}@example.com").into()),
        _ => Value::Bool(true),
    }
}

/// Parses and runs `soql` (`query_all` = the `queryAll` resource, soft-deleted rows included).
///
/// # Errors
/// The Salesforce error for a malformed statement, an unknown object or field, a literal of the
/// wrong type, an operation a field does not support, an `OFFSET` over 2,000, or an aggregate
/// result over 2,000 rows.
pub fn execute(org: &Org, soql: &str, query_all: bool) -> Result<QueryResult, SoqlError> {
    execute_at(org, soql, query_all, Utc::now())
}

/// [`execute`] with relative date literals (`TODAY`, `LAST_N_DAYS:n`) resolved as of `now`.
///
/// # Errors
/// As [`execute`].
pub fn execute_at(
    org: &Org,
    soql: &str,
    query_all: bool,
    now: DateTime<Utc>,
) -> Result<QueryResult, SoqlError> {
    let query = soql::parse(soql)?;
    let snap = org.snapshot();
    let Some(object) = snap.object_index(&query.from.name) else {
        return Err(match org.unqueryable(&query.from.name) {
            Some(name) => SoqlError {
                code: "INVALID_TYPE_FOR_OPERATION",
                message: located(
                    soql,
                    query.from.pos,
                    &format!("entity type {name} does not support query"),
                ),
            },
            None => SoqlError {
                code: "INVALID_TYPE",
                message: located(
                    soql,
                    query.from.pos,
                    &format!(
                        "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
                        query.from.name
                    ),
                ),
            },
        });
    };
    let query = expand_fields(query, &snap.objects[object].schema, soql)?;
    let cx = Compiler {
        soql,
        snap: &snap,
        object,
        tz: org.user_time_zone,
        today: now.with_timezone(&org.user_time_zone).date_naive(),
    };
    if let Some(offset) = query.offset
        && offset > MAX_OFFSET
    {
        return Err(SoqlError {
            code: "NUMBER_OUTSIDE_VALID_RANGE",
            message: format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
        });
    }
    let filter = query.filter.as_ref().map(|c| cx.condition(c)).transpose()?;
    let is_count_all = |e: &Expr| {
        matches!(
            e,
            Expr::Call {
                func: Func::Count,
                arg: None,
                ..
            }
        )
    };
    let matched = cx.matching(filter.as_ref(), query_all);
    if query.select.iter().any(|s| is_count_all(&s.expr)) {
        return cx.count_all(&query, matched.len());
    }
    let aggregate = !query.group_by.is_empty()
        || query
            .select
            .iter()
            .any(|s| matches!(s.expr, Expr::Call { .. }));
    if aggregate {
        let rows = cx.aggregate(&query, &matched)?;
        return Ok(QueryResult {
            kind: Kind::Aggregate(rows),
        });
    }
    let records = cx.records(&query, matched)?;
    Ok(QueryResult {
        kind: Kind::Records(records),
    })
}

/// The most rows a query with `FIELDS(ALL)` or `FIELDS(CUSTOM)` may ask for.
pub const FIELDS_LIMIT: u64 = 200;

/// Replaces `FIELDS(ALL|STANDARD|CUSTOM)` in the select list with the object's fields in
/// describe order (a field already selected is not repeated). `ALL` and `CUSTOM` need a
/// `LIMIT` of at most 200, as in Salesforce (§4.5).
fn expand_fields(
    mut query: Query,
    schema: &super::data::schema::ObjectSchema,
    soql: &str,
) -> Result<Query, SoqlError> {
    if !query
        .select
        .iter()
        .any(|s| matches!(s.expr, Expr::Fields { .. }))
    {
        return Ok(query);
    }
    let mut select: Vec<soql::SelectItem> = Vec::new();
    let listed = |select: &[soql::SelectItem], name: &str| {
        select.iter().any(|s| match &s.expr {
            Expr::Field(path) if s.alias.is_none() => {
                path.len() == 1 && path[0].name.eq_ignore_ascii_case(name)
            }
            _ => false,
        })
    };
    for item in std::mem::take(&mut query.select) {
        let Expr::Fields { kind, pos } = item.expr else {
            if !(matches!(&item.expr, Expr::Field(p) if p.len() == 1)
                && listed(&select, &item.expr.to_string()))
            {
                select.push(item);
            }
            continue;
        };
        if kind != soql::FieldsKind::Standard && query.limit.is_none_or(|l| l > FIELDS_LIMIT) {
            return Err(SoqlError {
                code: "MALFORMED_QUERY",
                message: located(
                    soql,
                    pos.0,
                    &format!(
                        "The SOQL FIELDS function must have a LIMIT of at most {FIELDS_LIMIT}"
                    ),
                ),
            });
        }
        for f in schema.visible_fields() {
            let wanted = match kind {
                soql::FieldsKind::All => true,
                soql::FieldsKind::Standard => !f.custom,
                soql::FieldsKind::Custom => f.custom,
            };
            if wanted && !listed(&select, f.name) {
                select.push(soql::SelectItem {
                    expr: Expr::Field(vec![soql::Ident {
                        name: f.name.to_string(),
                        pos: pos.0,
                    }]),
                    alias: None,
                });
            }
        }
    }
    query.select = select;
    Ok(query)
}

/// A compiled value expression: evaluated per row without re-reading the statement.
#[derive(Debug, Clone)]
enum Eval {
    Field(usize),
    /// A field reached through one or more relationships; `field` indexes the last hop's
    /// target (into [`USER_FIELDS`] for a user).
    Parent {
        hops: Vec<Hop>,
        field: usize,
    },
    /// Converts a UTC date-time to the user's wall clock (still carried as milliseconds).
    Tz(Box<Eval>),
    Func(Func, Box<Eval>),
}

/// What an expression yields, for type checks.
#[derive(Debug, Clone, Copy)]
struct Typed {
    ftype: FieldType,
    name: &'static str,
    /// The field's metadata, when the expression is a plain field: the object it belongs
    /// to (`None` for a user's field) and its index.
    field: Option<(Option<usize>, usize)>,
}

enum Pred {
    All(Vec<Pred>),
    Any(Vec<Pred>),
    Not(Box<Pred>),
    Compare(Eval, CmpOp, Value),
    /// A relative date literal: the value against the range `[start, end)`.
    Range(Eval, CmpOp, Value, Value),
    In(Eval, bool, Vec<Value>),
    Like(Eval, Vec<LikeToken>),
}

#[derive(Debug, Clone, PartialEq)]
enum LikeToken {
    Any,
    One,
    Char(char),
}

struct Compiler<'a> {
    soql: &'a str,
    snap: &'a Snapshot,
    object: usize,
    tz: chrono_tz::Tz,
    /// The Run-As user's date now, for relative date literals.
    today: NaiveDate,
}

fn no_such_column(soql: &str, pos: usize, name: &str, entity: &str) -> SoqlError {
    SoqlError {
        code: "INVALID_FIELD",
        message: located(
            soql,
            pos,
            &format!(
                "No such column '{name}' on entity '{entity}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
            ),
        ),
    }
}

impl Compiler<'_> {
    fn fields(&self, object: usize) -> &[Field] {
        &self.snap.objects[object].schema.fields
    }

    fn invalid_field(&self, pos: usize, message: String) -> SoqlError {
        SoqlError {
            code: "INVALID_FIELD",
            message: located(self.soql, pos, &message),
        }
    }

    fn malformed(&self, pos: usize, message: String) -> SoqlError {
        SoqlError {
            code: "MALFORMED_QUERY",
            message: located(self.soql, pos, &message),
        }
    }

    /// Resolves a field path (`Name`, `Owner.Name`, `Account.Owner.Email`, up to
    /// [`MAX_RELATIONSHIP_DEPTH`] relationships) to an evaluator and its type.
    fn path(&self, path: &[soql::Ident]) -> Result<(Eval, Typed), SoqlError> {
        let root = &self.snap.objects[self.object].schema;
        let mut path = path;
        if path.len() > 1 && path[0].name.eq_ignore_ascii_case(root.name) {
            path = &path[1..];
        }
        let (leaf, rels) = path.split_last().expect("a path has a field");
        if rels.len() > MAX_RELATIONSHIP_DEPTH {
            return Err(self.malformed(
                rels[MAX_RELATIONSHIP_DEPTH].pos,
                format!(
                    "SOQL statements cannot query relationship fields more than {MAX_RELATIONSHIP_DEPTH} levels away from the root entity object"
                ),
            ));
        }
        let mut hops = Vec::with_capacity(rels.len());
        let mut at = Target::Object(self.object);
        for rel in rels {
            let not_understood = || {
                self.invalid_field(rel.pos, format!(
                    "Didn't understand relationship '{}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.",
                    rel.name
                ))
            };
            // Users expose no relationships here.
            let Target::Object(o) = at else {
                return Err(not_understood());
            };
            let schema = &self.snap.objects[o].schema;
            let via = schema
                .relationship_index(&rel.name)
                .ok_or_else(not_understood)?;
            let f = &schema.fields[via];
            let target = match f.reference_to.unwrap_or("User") {
                "User" => Target::User,
                name => Target::Object(
                    self.snap
                        .object_index(name)
                        .expect("references name seeded objects"),
                ),
            };
            hops.push(Hop {
                key: f.relationship_name.expect("a relationship"),
                via,
                target,
            });
            at = target;
        }
        let (object, field, ftype, name) = match at {
            Target::User => {
                let i = USER_FIELDS
                    .iter()
                    .position(|(n, _)| n.eq_ignore_ascii_case(&leaf.name))
                    .ok_or_else(|| no_such_column(self.soql, leaf.pos, &leaf.name, "User"))?;
                (None, i, USER_FIELDS[i].1, USER_FIELDS[i].0)
            }
            Target::Object(o) => {
                let schema = &self.snap.objects[o].schema;
                let i = schema
                    .field_index(&leaf.name)
                    .ok_or_else(|| no_such_column(self.soql, leaf.pos, &leaf.name, schema.name))?;
                (Some(o), i, schema.fields[i].ftype, schema.fields[i].name)
            }
        };
        let eval = if hops.is_empty() {
            Eval::Field(field)
        } else {
            Eval::Parent { hops, field }
        };
        Ok((
            eval,
            Typed {
                ftype,
                name,
                field: Some((object, field)),
            },
        ))
    }

    /// A value expression outside aggregates: a field path or a date function.
    fn expr(&self, e: &Expr) -> Result<(Eval, Typed), SoqlError> {
        match e {
            Expr::Field(path) => self.path(path),
            Expr::Fields { pos, .. } => {
                Err(self.malformed(pos.0, "unexpected token: 'FIELDS'".into()))
            }
            Expr::Call { func, arg, pos } => {
                let pos = pos.0;
                if func.is_aggregate() || *func == Func::ConvertTimezone {
                    return Err(self.malformed(pos, format!("unexpected token: '{}'", func.name())));
                }
                let Some(arg) = arg else {
                    return Err(self.malformed(pos, format!("unexpected token: '{}'", func.name())));
                };
                let (inner, ty) = match arg.as_ref() {
                    Expr::Call {
                        func: Func::ConvertTimezone,
                        arg: Some(a),
                        ..
                    } => {
                        let (inner, ty) = self.expr_plain(a)?;
                        if ty.ftype != FieldType::DateTime {
                            return Err(self.invalid_field(
                                a.pos(),
                                format!(
                                    "convertTimezone can only be used with dateTime fields: {}",
                                    ty.name
                                ),
                            ));
                        }
                        (Eval::Tz(Box::new(inner)), ty)
                    }
                    other => self.expr_plain(other)?,
                };
                let date_ok = matches!(ty.ftype, FieldType::Date | FieldType::DateTime);
                let ok = match func {
                    Func::HourInDay | Func::DayOnly => ty.ftype == FieldType::DateTime,
                    _ => date_ok,
                };
                if !ok {
                    return Err(self.invalid_field(
                        arg.pos(),
                        format!(
                            "{} can not be applied to field '{}' of type {}",
                            func.name(),
                            ty.name,
                            ty.ftype.api_name()
                        ),
                    ));
                }
                let out_type = if *func == Func::DayOnly {
                    FieldType::Date
                } else {
                    FieldType::Int
                };
                Ok((
                    Eval::Func(*func, Box::new(inner)),
                    Typed {
                        ftype: out_type,
                        name: ty.name,
                        field: None,
                    },
                ))
            }
        }
    }

    /// A field path only (the argument of a function).
    fn expr_plain(&self, e: &Expr) -> Result<(Eval, Typed), SoqlError> {
        match e {
            Expr::Field(path) => self.path(path),
            Expr::Call { func, pos, .. } => {
                Err(self.malformed(pos.0, format!("unexpected token: '{}'", func.name())))
            }
            Expr::Fields { pos, .. } => {
                Err(self.malformed(pos.0, "unexpected token: 'FIELDS'".into()))
            }
        }
    }

    fn field_meta(&self, ty: &Typed) -> Option<&Field> {
        let (object, i) = ty.field?;
        Some(&self.fields(object?)[i])
    }

    fn condition(&self, c: &Cond) -> Result<Pred, SoqlError> {
        Ok(match c {
            Cond::And(parts) => Pred::All(
                parts
                    .iter()
                    .map(|p| self.condition(p))
                    .collect::<Result<_, _>>()?,
            ),
            Cond::Or(parts) => Pred::Any(
                parts
                    .iter()
                    .map(|p| self.condition(p))
                    .collect::<Result<_, _>>()?,
            ),
            Cond::Not(inner) => Pred::Not(Box::new(self.condition(inner)?)),
            Cond::Compare { lhs, op, rhs } => {
                let (eval, ty) = self.filterable(lhs)?;
                match &rhs.value {
                    LitValue::Relative(r) => {
                        let (start, end) = self.relative(r, rhs, &ty)?;
                        Pred::Range(eval, *op, start, end)
                    }
                    _ => Pred::Compare(eval, *op, self.literal(rhs, &ty)?),
                }
            }
            Cond::In {
                lhs,
                negated,
                values,
            } if values
                .iter()
                .any(|v| matches!(v.value, LitValue::Relative(_))) =>
            {
                // `IN (TODAY, LAST_WEEK)`: any of the ranges (or plain values).
                let (eval, ty) = self.filterable(lhs)?;
                let any = values
                    .iter()
                    .map(|v| match &v.value {
                        LitValue::Relative(r) => {
                            let (start, end) = self.relative(r, v, &ty)?;
                            Ok(Pred::Range(eval.clone(), CmpOp::Eq, start, end))
                        }
                        _ => Ok(Pred::Compare(
                            eval.clone(),
                            CmpOp::Eq,
                            self.literal(v, &ty)?,
                        )),
                    })
                    .collect::<Result<_, SoqlError>>()?;
                let any = Pred::Any(any);
                if *negated {
                    Pred::Not(Box::new(any))
                } else {
                    any
                }
            }
            Cond::In {
                lhs,
                negated,
                values,
            } => {
                let (eval, ty) = self.filterable(lhs)?;
                let values = values
                    .iter()
                    .map(|v| self.literal(v, &ty))
                    .collect::<Result<_, _>>()?;
                Pred::In(eval, *negated, values)
            }
            Cond::Like { lhs, pattern } => {
                let (eval, ty) = self.filterable(lhs)?;
                let text_like = !ty.ftype.is_numeric()
                    && !matches!(
                        ty.ftype,
                        FieldType::Boolean
                            | FieldType::Date
                            | FieldType::DateTime
                            | FieldType::Time
                    );
                let LitValue::Str(p) = &pattern.value else {
                    return Err(
                        self.malformed(pattern.pos.0, format!("unexpected token: '{pattern}'"))
                    );
                };
                if !text_like {
                    return Err(self.invalid_field(
                        lhs.pos(),
                        format!("invalid operator on {} field: LIKE", ty.ftype.api_name()),
                    ));
                }
                Pred::Like(eval, like_tokens(p))
            }
        })
    }

    fn filterable(&self, e: &Expr) -> Result<(Eval, Typed), SoqlError> {
        let (eval, ty) = self.expr(e)?;
        if let Some(f) = self.field_meta(&ty)
            && !f.filterable()
        {
            return Err(self.invalid_field(
                e.pos(),
                format!("field '{}' can not be filtered in a query call", f.name),
            ));
        }
        Ok((eval, ty))
    }

    /// The Salesforce error for a literal of the wrong type for its field.
    fn wrong_type(&self, lit: &Lit, ty: &Typed) -> SoqlError {
        let t = ty.ftype.filter_type_name();
        let quoted = if t == "string" || t == "id" {
            "should be enclosed in quotes"
        } else {
            "should not be enclosed in quotes"
        };
        self.invalid_field(
            lit.pos.0,
            format!(
                "value of filter criterion for field '{}' must be of type {t} and {quoted}",
                ty.name
            ),
        )
    }

    /// A relative date literal as the bounds `[start, end)` of its range: dates for a
    /// `date` field, the Run-As user's midnights (as UTC instants) for a `dateTime` field.
    fn relative(&self, r: &RelDate, lit: &Lit, ty: &Typed) -> Result<(Value, Value), SoqlError> {
        let (start, end) = dates::range(r, self.today);
        match ty.ftype {
            FieldType::Date => Ok((Value::Date(start), Value::Date(end))),
            FieldType::DateTime => Ok((
                Value::DateTime(self.local_midnight(start)),
                Value::DateTime(self.local_midnight(end)),
            )),
            _ => Err(self.wrong_type(lit, ty)),
        }
    }

    /// The instant (ms) the user's day `d` starts; after a midnight DST gap, the first
    /// instant that exists.
    fn local_midnight(&self, d: NaiveDate) -> i64 {
        let midnight = d.and_hms_opt(0, 0, 0).expect("midnight exists");
        (0..=3)
            .find_map(|h| {
                self.tz
                    .from_local_datetime(&(midnight + chrono::Duration::hours(h)))
                    .earliest()
            })
            .map_or_else(
                || midnight.and_utc().timestamp_millis(),
                |t| t.timestamp_millis(),
            )
    }

    /// Converts a literal to the typed value it is compared with, or the Salesforce error.
    fn literal(&self, lit: &Lit, ty: &Typed) -> Result<Value, SoqlError> {
        let wrong = || self.wrong_type(lit, ty);
        Ok(match (&lit.value, ty.ftype) {
            (LitValue::Null, _) => Value::Null,
            (LitValue::Bool(b), FieldType::Boolean) => Value::Bool(*b),
            (LitValue::Number { units, scale }, t) if t.is_numeric() => Value::Dec {
                units: *units,
                scale: *scale,
            },
            (LitValue::Date(d), FieldType::Date) => Value::Date(*d),
            (LitValue::DateTime(d), FieldType::DateTime) => Value::DateTime(d.timestamp_millis()),
            (LitValue::Str(s), FieldType::Id | FieldType::Reference) => {
                match s.len() {
                    18 => Value::Text(s.clone().into()),
                    // A 15-character id names the same record as its 18-character form.
                    15 if s.is_ascii() => Value::Text(id_18(s).into()),
                    _ => {
                        return Err(self.invalid_field(lit.pos.0, format!("invalid ID field: {s}")));
                    }
                }
            }
            (LitValue::Str(s), t)
                if !t.is_numeric()
                    && !matches!(
                        t,
                        FieldType::Boolean
                            | FieldType::Date
                            | FieldType::DateTime
                            | FieldType::Time
                    ) =>
            {
                Value::Text(s.clone().into())
            }
            _ => return Err(wrong()),
        })
    }

    fn eval(&self, e: &Eval, row: &Row) -> Value {
        match e {
            Eval::Field(i) => self.snap.value(self.object, *i, row),
            Eval::Parent { hops, field } => {
                let (mut object, mut row) = (self.object, row);
                for hop in hops {
                    let Value::Id(id) = self.snap.value(object, hop.via, row) else {
                        return Value::Null;
                    };
                    match hop.target {
                        Target::User => return user_value(id, *field),
                        Target::Object(t) => match self.snap.objects[t].rows.get(id.seq as usize) {
                            Some(parent) => (object, row) = (t, parent),
                            None => return Value::Null,
                        },
                    }
                }
                self.snap.value(object, *field, row)
            }
            Eval::Tz(inner) => match self.eval(inner, row) {
                Value::DateTime(ms) => {
                    let utc = DateTime::from_timestamp_millis(ms).unwrap_or_default();
                    let local = self.tz.from_utc_datetime(&utc.naive_utc()).naive_local();
                    Value::DateTime(local.and_utc().timestamp_millis())
                }
                other => other,
            },
            Eval::Func(func, inner) => {
                let (date, hour) = match self.eval(inner, row) {
                    Value::DateTime(ms) => {
                        let t = DateTime::from_timestamp_millis(ms).unwrap_or_default();
                        (t.date_naive(), t.hour())
                    }
                    Value::Date(d) => (d, 0),
                    _ => return Value::Null,
                };
                date_part(*func, date, hour)
            }
        }
    }

    fn test(&self, p: &Pred, row: &Row) -> bool {
        match p {
            Pred::All(ps) => ps.iter().all(|p| self.test(p, row)),
            Pred::Any(ps) => ps.iter().any(|p| self.test(p, row)),
            Pred::Not(p) => !self.test(p, row),
            Pred::Compare(e, op, lit) => compare(&self.eval(e, row), *op, lit),
            Pred::Range(e, op, start, end) => {
                let v = self.eval(e, row);
                if v == Value::Null {
                    return *op == CmpOp::Ne;
                }
                let from_start = compare(&v, CmpOp::Ge, start);
                let before_end = compare(&v, CmpOp::Lt, end);
                match op {
                    CmpOp::Eq => from_start && before_end,
                    CmpOp::Ne => !(from_start && before_end),
                    CmpOp::Lt => !from_start,
                    CmpOp::Le => before_end,
                    CmpOp::Gt => !before_end,
                    CmpOp::Ge => from_start,
                }
            }
            Pred::In(e, negated, values) => {
                let v = self.eval(e, row);
                let hit = values.iter().any(|l| compare(&v, CmpOp::Eq, l));
                hit != *negated
            }
            Pred::Like(e, pattern) => match self.eval(e, row).text() {
                Some(t) => like(&t.to_lowercase().chars().collect::<Vec<_>>(), pattern),
                None => false,
            },
        }
    }

    /// Indices of the rows that pass the filter, in `Id` order.
    fn matching(&self, filter: Option<&Pred>, query_all: bool) -> Vec<u32> {
        let rows = &self.snap.objects[self.object].rows;
        rows.iter()
            .enumerate()
            .filter(|(_, r)| (query_all || !r.deleted) && filter.is_none_or(|f| self.test(f, r)))
            .map(|(i, _)| i as u32)
            .collect()
    }

    fn count_all(&self, q: &Query, matched: usize) -> Result<QueryResult, SoqlError> {
        if q.select.len() > 1 || !q.group_by.is_empty() {
            let pos = q.select.iter().find_map(|s| match s.expr {
                Expr::Call {
                    func: Func::Count,
                    arg: None,
                    pos,
                } => Some(pos.0),
                _ => None,
            });
            return Err(self.malformed(
                pos.unwrap_or(0),
                "COUNT() must be the only element in the SELECT list.".into(),
            ));
        }
        if let Some(k) = q.order_by.first() {
            return Err(self.malformed(k.expr.pos(), "ORDER BY cannot be used with COUNT()".into()));
        }
        let after_offset = matched.saturating_sub(q.offset.unwrap_or(0) as usize);
        let n = q
            .limit
            .map_or(after_offset, |l| after_offset.min(l as usize));
        Ok(QueryResult {
            kind: Kind::Count(n),
        })
    }

    fn sort_keys(&self, q: &Query, rows: &mut [u32]) -> Result<(), SoqlError> {
        if q.order_by.is_empty() {
            return Ok(());
        }
        let mut keys = Vec::new();
        for k in &q.order_by {
            let (eval, ty) = self.expr(&k.expr)?;
            if let Some(f) = self.field_meta(&ty)
                && !f.sortable()
            {
                return Err(self.invalid_field(
                    k.expr.pos(),
                    format!("field '{}' can not be sorted in a query call", f.name),
                ));
            }
            let desc = k.descending.unwrap_or(false);
            keys.push((eval, desc, k.nulls_first.unwrap_or(!desc)));
        }
        let data = &self.snap.objects[self.object].rows;
        let mut decorated: Vec<(Vec<Value>, u32)> = rows
            .iter()
            .map(|&i| {
                (
                    keys.iter()
                        .map(|(e, ..)| self.eval(e, &data[i as usize]))
                        .collect(),
                    i,
                )
            })
            .collect();
        decorated.sort_by(|(a, _), (b, _)| {
            for (n, (_, desc, nulls_first)) in keys.iter().enumerate() {
                let ord = ordered(&a[n], &b[n], *desc, *nulls_first);
                if ord.is_ne() {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
        for (slot, (_, i)) in rows.iter_mut().zip(decorated) {
            *slot = i;
        }
        Ok(())
    }

    fn records(&self, q: &Query, mut rows: Vec<u32>) -> Result<Records, SoqlError> {
        let mut columns: Vec<Column> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        let mut custom_long_texts = 0;
        for item in &q.select {
            let Expr::Field(path) = &item.expr else {
                unreachable!("functions make an aggregate query")
            };
            let (eval, ty) = self.path(path)?;
            let key = item.expr.to_string().to_ascii_lowercase();
            if seen.contains(&key) {
                return Err(self.malformed(
                    item.expr.pos(),
                    format!("duplicate field selected: {}", ty.name),
                ));
            }
            seen.push(key);
            let (object, field) = ty.field.expect("a path names a field");
            let leaf = match object {
                Some(o) if self.fields(o)[field].is_compound() => Column::Compound {
                    key: ty.name,
                    field,
                },
                _ => Column::Field {
                    key: ty.name,
                    field,
                },
            };
            match eval {
                Eval::Field(i) => {
                    let f = &self.fields(self.object)[i];
                    if f.custom && f.is_long_text() {
                        custom_long_texts += 1;
                    }
                    columns.push(leaf);
                }
                Eval::Parent { hops, .. } => insert_column(&mut columns, &hops, leaf),
                _ => unreachable!("a path is a field or a parent field"),
            }
        }
        self.sort_keys(q, &mut rows)?;
        let offset = (q.offset.unwrap_or(0) as usize).min(rows.len());
        rows.drain(..offset);
        if let Some(limit) = q.limit {
            rows.truncate(limit as usize);
        }
        Ok(Records {
            snap: self.snap.clone(),
            object: self.object,
            rows,
            columns,
            custom_long_texts,
        })
    }

    fn aggregate(&self, q: &Query, matched: &[u32]) -> Result<Vec<Vec<u8>>, SoqlError> {
        let mut group_evals = Vec::new();
        for g in &q.group_by {
            let (eval, ty) = self.expr(g)?;
            if let Some(f) = self.field_meta(&ty)
                && !f.groupable()
            {
                return Err(self.invalid_field(
                    g.pos(),
                    format!("field '{}' can not be grouped in a query call", f.name),
                ));
            }
            group_evals.push(eval);
        }
        let group_text: Vec<String> = q
            .group_by
            .iter()
            .map(|g| g.to_string().to_ascii_lowercase())
            .collect();
        let mut outputs = Vec::new();
        let mut unnamed = 0;
        for item in &q.select {
            let output = match &item.expr {
                Expr::Call { func, arg, pos } if func.is_aggregate() => {
                    let Some(arg) = arg else {
                        return Err(self.malformed(
                            pos.0,
                            "COUNT() must be the only element in the SELECT list.".into(),
                        ));
                    };
                    let (eval, ty) = self.expr(arg)?;
                    if matches!(func, Func::Sum | Func::Avg) && !ty.ftype.is_numeric() {
                        return Err(self.malformed(
                            arg.pos(),
                            format!(
                                "field {} does not support aggregate operator {}",
                                ty.name,
                                func.name()
                            ),
                        ));
                    }
                    Output::Agg(*func, eval)
                }
                e => {
                    let text = e.to_string().to_ascii_lowercase();
                    let Some(g) = group_text.iter().position(|t| *t == text) else {
                        return Err(self.malformed(
                            e.pos(),
                            format!("Field must be grouped or aggregated: {e}"),
                        ));
                    };
                    Output::Group(g)
                }
            };
            let key = match (&item.alias, &item.expr) {
                (Some(a), _) => a.name.clone(),
                (None, Expr::Field(_)) => self.expr(&item.expr)?.1.name.to_string(),
                (None, Expr::Call { .. } | Expr::Fields { .. }) => {
                    unnamed += 1;
                    format!("expr{}", unnamed - 1)
                }
            };
            outputs.push((key, output));
        }
        let data = &self.snap.objects[self.object].rows;
        let mut groups: HashMap<Vec<u8>, (Vec<Value>, Vec<u32>)> = HashMap::new();
        let mut order: Vec<Vec<u8>> = Vec::new();
        for &i in matched {
            let values: Vec<Value> = group_evals
                .iter()
                .map(|e| self.eval(e, &data[i as usize]))
                .collect();
            let mut key = Vec::new();
            for v in &values {
                render::value(v, &mut key);
                key.push(0);
            }
            groups
                .entry(key.clone())
                .or_insert_with(|| {
                    order.push(key);
                    (values, Vec::new())
                })
                .1
                .push(i);
        }
        if group_evals.is_empty() && groups.is_empty() {
            groups.insert(Vec::new(), (Vec::new(), Vec::new()));
            order.push(Vec::new());
        }
        let mut table: Vec<(Vec<Value>, Vec<Value>)> = order
            .into_iter()
            .map(|k| {
                let (keys, rows) = groups.remove(&k).expect("listed");
                let outs = outputs
                    .iter()
                    .map(|(_, o)| match o {
                        Output::Group(g) => keys[*g].clone(),
                        Output::Agg(func, eval) => self.fold(*func, eval, &rows),
                    })
                    .collect();
                (keys, outs)
            })
            .collect();
        self.order_groups(q, &outputs, &mut table)?;
        let offset = (q.offset.unwrap_or(0) as usize).min(table.len());
        table.drain(..offset);
        if let Some(limit) = q.limit {
            table.truncate(limit as usize);
        }
        if table.len() > MAX_GROUPS {
            return Err(SoqlError {
                code: "MALFORMED_QUERY",
                message: "Aggregate query does not support queryMore(), use LIMIT to restrict the results to a single batch".into(),
            });
        }
        Ok(table
            .into_iter()
            .map(|(_, outs)| {
                let mut out = b"{\"attributes\":{\"type\":\"AggregateResult\"}".to_vec();
                for ((key, _), v) in outputs.iter().zip(&outs) {
                    out.push(b',');
                    render::string(key, &mut out);
                    out.push(b':');
                    render::value(v, &mut out);
                }
                out.push(b'}');
                out
            })
            .collect())
    }

    /// Orders groups by `ORDER BY` (group expressions or aggregates in the select list), else
    /// by the group keys ascending.
    fn order_groups(
        &self,
        q: &Query,
        outputs: &[(String, Output)],
        table: &mut [(Vec<Value>, Vec<Value>)],
    ) -> Result<(), SoqlError> {
        if q.order_by.is_empty() {
            table.sort_by(|a, b| {
                a.0.iter()
                    .zip(&b.0)
                    .map(|(x, y)| x.sort_cmp(y))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            return Ok(());
        }
        let mut keys = Vec::new();
        for k in &q.order_by {
            let text = k.expr.to_string().to_ascii_lowercase();
            let column = q
                .select
                .iter()
                .position(|s| s.expr.to_string().to_ascii_lowercase() == text)
                .ok_or_else(|| {
                    self.malformed(
                        k.expr.pos(),
                        format!("Ordered field must be grouped or aggregated: {}", k.expr),
                    )
                })?;
            let _ = &outputs[column];
            let desc = k.descending.unwrap_or(false);
            keys.push((column, desc, k.nulls_first.unwrap_or(!desc)));
        }
        table.sort_by(|a, b| {
            keys.iter()
                .map(|(c, desc, nf)| ordered(&a.1[*c], &b.1[*c], *desc, *nf))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        Ok(())
    }

    fn fold(&self, func: Func, eval: &Eval, rows: &[u32]) -> Value {
        let data = &self.snap.objects[self.object].rows;
        let values = rows
            .iter()
            .map(|&i| self.eval(eval, &data[i as usize]))
            .filter(|v| *v != Value::Null);
        match func {
            Func::Count => Value::Int(values.count() as i64),
            Func::CountDistinct => {
                let mut seen: Vec<Vec<u8>> = values
                    .map(|v| {
                        let mut b = Vec::new();
                        render::value(&v, &mut b);
                        b.to_ascii_lowercase()
                    })
                    .collect();
                seen.sort();
                seen.dedup();
                Value::Int(seen.len() as i64)
            }
            Func::Min => values.min_by(|a, b| a.sort_cmp(b)).unwrap_or(Value::Null),
            Func::Max => values.max_by(|a, b| a.sort_cmp(b)).unwrap_or(Value::Null),
            Func::Sum | Func::Avg => {
                let (mut sum, mut scale, mut n) = (0i128, 0u8, 0i64);
                for v in values {
                    let (u, s) = match v {
                        Value::Dec { units, scale } => (i128::from(units), scale),
                        Value::Int(i) => (i128::from(i), 0),
                        _ => continue,
                    };
                    if s > scale {
                        sum *= 10i128.pow(u32::from(s - scale));
                        scale = s;
                    }
                    sum += u * 10i128.pow(u32::from(scale - s));
                    n += 1;
                }
                if n == 0 {
                    return Value::Null;
                }
                if func == Func::Sum {
                    match i64::try_from(sum) {
                        Ok(units) => Value::Dec { units, scale },
                        Err(_) => Value::Null,
                    }
                } else {
                    let avg = sum * 1_000_000 / i128::from(n);
                    let scale = scale + 6;
                    i64::try_from(avg).map_or(Value::Null, |units| Value::Dec { units, scale })
                }
            }
            _ => Value::Null,
        }
    }
}

enum Output {
    Group(usize),
    Agg(Func, Eval),
}

fn date_part(func: Func, date: NaiveDate, hour: u32) -> Value {
    match func {
        Func::DayOnly => Value::Date(date),
        Func::CalendarYear => Value::Int(i64::from(date.year())),
        Func::CalendarMonth => Value::Int(i64::from(date.month())),
        Func::DayInMonth => Value::Int(i64::from(date.day())),
        Func::HourInDay => Value::Int(i64::from(hour)),
        _ => Value::Null,
    }
}

/// The 18-character form of a 15-character id: one checksum character per five, from
/// which of them are upper case.
fn id_18(id15: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut out = id15.to_string();
    for chunk in id15.as_bytes().chunks(5) {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_ascii_uppercase())
            .fold(0usize, |acc, (bit, _)| acc | 1 << bit);
        out.push(ALPHABET[bits] as char);
    }
    out
}

/// ORDER BY comparison with direction and null placement.
fn ordered(a: &Value, b: &Value, desc: bool, nulls_first: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a == &Value::Null, b == &Value::Null) {
        (true, true) => Equal,
        (true, false) => {
            if nulls_first {
                Less
            } else {
                Greater
            }
        }
        (false, true) => {
            if nulls_first {
                Greater
            } else {
                Less
            }
        }
        _ => {
            let o = a.sort_cmp(b);
            if desc { o.reverse() } else { o }
        }
    }
}

/// SOQL comparison: `= null` / `!= null` test emptiness; otherwise a null never matches
/// except under `!=`.
fn compare(v: &Value, op: CmpOp, lit: &Value) -> bool {
    use std::cmp::Ordering::*;
    match (v, lit) {
        (Value::Null, Value::Null) => op == CmpOp::Eq,
        (_, Value::Null) => op == CmpOp::Ne,
        (Value::Null, _) => op == CmpOp::Ne,
        _ => match v.compare(lit) {
            Some(o) => match op {
                CmpOp::Eq => o == Equal,
                CmpOp::Ne => o != Equal,
                CmpOp::Lt => o == Less,
                CmpOp::Le => o != Greater,
                CmpOp::Gt => o == Greater,
                CmpOp::Ge => o != Less,
            },
            None => op == CmpOp::Ne,
        },
    }
}

fn like_tokens(pattern: &str) -> Vec<LikeToken> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '%' => LikeToken::Any,
            '_' => LikeToken::One,
            '\\' => match chars.next() {
                Some(e) => LikeToken::Char(e.to_lowercase().next().unwrap_or(e)),
                None => LikeToken::Char('\\'),
            },
            c => LikeToken::Char(c.to_lowercase().next().unwrap_or(c)),
        });
    }
    out
}

/// Case-insensitive `LIKE` over lowercased text.
fn like(text: &[char], pattern: &[LikeToken]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((LikeToken::Any, rest)) => (0..=text.len()).any(|i| like(&text[i..], rest)),
        Some((LikeToken::One, rest)) => !text.is_empty() && like(&text[1..], rest),
        Some((LikeToken::Char(c), rest)) => text.first() == Some(c) && like(&text[1..], rest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::CASE;
    use std::sync::OnceLock;

    fn org() -> &'static Org {
        static ORG: OnceLock<Org> = OnceLock::new();
        ORG.get_or_init(|| Org::generate(42, 1))
    }

    fn records(soql: &str, all: bool) -> Vec<serde_json::Value> {
        let r = execute(org(), soql, all).unwrap_or_else(|e| panic!("{soql}: {e}"));
        let mut out = b"[".to_vec();
        r.render_records(0..r.len(), "62.0", &mut out);
        out.push(b']');
        serde_json::from_slice(&out).expect("valid JSON")
    }

    fn err(soql: &str) -> SoqlError {
        match execute(org(), soql, false) {
            Ok(_) => panic!("{soql} ran"),
            Err(e) => e,
        }
    }

    fn ms(t: &str) -> i64 {
        t.parse::<DateTime<chrono::Utc>>()
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn a_window_query_matches_brute_force_in_cursor_then_id_order() {
        let snap = org().snapshot();
        let (a, b) = (ms("2025-09-17T00:00:00Z"), ms("2025-09-18T00:00:00Z"));
        let want: Vec<&Row> = {
            let mut v: Vec<&Row> = snap.objects[CASE]
                .rows
                .iter()
                .map(|r| r.as_ref())
                .filter(|r| !r.deleted && r.modstamp >= a && r.modstamp < b)
                .collect();
            v.sort_by_key(|r| (r.modstamp, r.seq));
            v
        };
        let got = records(
            "SELECT Id, SystemModstamp, Owner.Name FROM Case WHERE SystemModstamp >= 2025-09-17T00:00:00Z \
             AND SystemModstamp < 2025-09-18T00:00:00.000+00:00 ORDER BY SystemModstamp ASC, Id ASC",
            false,
        );
        assert_eq!(got.len(), want.len());
        assert!(got.len() >= 30_000);
        for (g, w) in got.iter().zip(&want) {
            let id = match snap.value(CASE, 0, w) {
                Value::Id(id) => id.to_string_18(),
                _ => unreachable!(),
            };
            assert_eq!(g["Id"], id.as_str());
        }
        assert_eq!(got[0]["attributes"]["type"], "Case");
        assert!(
            got[0]["attributes"]["url"]
                .as_str()
                .unwrap()
                .starts_with("/services/data/v62.0/sobjects/Case/500")
        );
        assert_eq!(got[0]["Owner"]["attributes"]["type"], "User");
        assert!(got[0]["Owner"]["Name"].is_string());
        let count = execute(org(), "SELECT COUNT() FROM Case WHERE SystemModstamp >= 2025-09-17T00:00:00Z AND SystemModstamp < 2025-09-18T00:00:00Z", false).unwrap();
        assert_eq!(count.total_size(), want.len());
        assert_eq!(count.len(), 0);
    }

    #[test]
    fn query_hides_deleted_rows_and_query_all_shows_them() {
        let q = "SELECT Id, IsDeleted FROM Account WHERE IsDeleted = true";
        assert!(records(q, false).is_empty());
        let all = records(q, true);
        assert!(!all.is_empty());
        assert!(all.iter().all(|r| r["IsDeleted"] == true));
        let total = org().row_count("Account", true).unwrap();
        assert_eq!(
            execute(org(), "SELECT COUNT() FROM Account", true)
                .unwrap()
                .total_size(),
            total
        );
    }

    #[test]
    fn aggregates_by_day_match_brute_force() {
        let got = records(
            "SELECT DAY_ONLY(convertTimezone(LastModifiedDate)) d, COUNT(Id) n FROM Opportunity \
             WHERE LastModifiedDate >= 2025-03-01T00:00:00Z AND LastModifiedDate < 2025-04-01T00:00:00Z \
             GROUP BY DAY_ONLY(convertTimezone(LastModifiedDate))",
            false,
        );
        let snap = org().snapshot();
        let tz = org().user_time_zone;
        let mut want: std::collections::BTreeMap<String, i64> = Default::default();
        for r in snap.objects[crate::data::OPPORTUNITY].rows.iter() {
            if !r.deleted
                && r.modified >= ms("2025-03-01T00:00:00Z")
                && r.modified < ms("2025-04-01T00:00:00Z")
            {
                let d = DateTime::from_timestamp_millis(r.modified)
                    .unwrap()
                    .with_timezone(&tz)
                    .date_naive();
                *want.entry(d.to_string()).or_default() += 1;
            }
        }
        let got: std::collections::BTreeMap<String, i64> = got
            .iter()
            .map(|r| {
                assert_eq!(
                    r["attributes"],
                    serde_json::json!({"type": "AggregateResult"})
                );
                (
                    r["d"].as_str().unwrap().to_string(),
                    r["n"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want);
        let unaliased = records(
            "SELECT CALENDAR_MONTH(CreatedDate), COUNT(Id) FROM Lead GROUP BY CALENDAR_MONTH(CreatedDate)",
            false,
        );
        assert!(unaliased[0].get("expr0").is_some() && unaliased[0].get("expr1").is_some());
    }

    #[test]
    fn too_many_groups_cannot_page() {
        let e = err("SELECT Name, COUNT(Id) FROM Account GROUP BY Name");
        assert!(e.message.contains("does not support queryMore()"), "{e}");
        assert_eq!(
            records(
                "SELECT Name, COUNT(Id) FROM Account GROUP BY Name LIMIT 5",
                false
            )
            .len(),
            5
        );
    }

    #[test]
    fn type_errors_use_salesforce_messages() {
        let e = err("SELECT Id FROM Opportunity WHERE CloseDate = 2025-03-10T00:00:00Z");
        assert_eq!(e.code, "INVALID_FIELD");
        assert!(e.message.contains("value of filter criterion for field 'CloseDate' must be of type date and should not be enclosed in quotes"), "{}", e.message);
        let e = err("SELECT Id FROM Opportunity WHERE LastModifiedDate >= 2025-03-10");
        assert!(
            e.message.contains("must be of type dateTime"),
            "{}",
            e.message
        );
        let e = err("SELECT Id FROM Opportunity WHERE Amount > '5'");
        assert!(
            e.message.contains("must be of type currency"),
            "{}",
            e.message
        );
        let e = err("SELECT Foo FROM Account");
        assert_eq!(e.code, "INVALID_FIELD");
        assert!(e.message.starts_with("\nSELECT Foo FROM Account\n       ^\nERROR at Row:1:Column:8\nNo such column 'Foo' on entity 'Account'."), "{:?}", e.message);
        let e = err("SELECT Id FROM Foo");
        assert_eq!(e.code, "INVALID_TYPE");
        assert!(e.message.contains("sObject type 'Foo' is not supported."));
        assert_eq!(
            err("SELECT Id FROM AggregateResult").code,
            "INVALID_TYPE_FOR_OPERATION"
        );
        assert_eq!(
            err("SELECT Id FROM Account ORDER BY Description").code,
            "INVALID_FIELD"
        );
        assert_eq!(
            err("SELECT Id FROM Account WHERE Description = 'x'").code,
            "INVALID_FIELD"
        );
        assert_eq!(
            err("SELECT COUNT() FROM Account ORDER BY Name").code,
            "MALFORMED_QUERY"
        );
        assert_eq!(
            err("SELECT COUNT(), Name FROM Account").code,
            "MALFORMED_QUERY"
        );
        assert_eq!(
            err("SELECT Id FROM Account OFFSET 2001").code,
            "NUMBER_OUTSIDE_VALID_RANGE"
        );
        assert_eq!(
            err("SELECT Name, COUNT(Id) FROM Account").code,
            "MALFORMED_QUERY"
        );
    }

    #[test]
    fn filters_ordering_and_limits_agree_with_brute_force() {
        let all = records(
            "SELECT Id, Name, Industry, AnnualRevenue, Owner.Name FROM Account",
            false,
        );
        let want: Vec<&serde_json::Value> = all
            .iter()
            .filter(|r| {
                (r["Industry"] == "Banking" || r["Industry"] == "Retail")
                    && r["Name"]
                        .as_str()
                        .unwrap()
                        .to_lowercase()
                        .starts_with("acme")
            })
            .collect();
        let got = records(
            "SELECT Id FROM Account WHERE Industry IN ('banking', 'Retail') AND Name LIKE 'ACME%' ORDER BY Id DESC LIMIT 7 OFFSET 2",
            false,
        );
        let mut ids: Vec<&str> = want.iter().map(|r| r["Id"].as_str().unwrap()).collect();
        ids.reverse();
        let expected: Vec<&str> = ids.into_iter().skip(2).take(7).collect();
        assert_eq!(
            got.iter()
                .map(|r| r["Id"].as_str().unwrap())
                .collect::<Vec<_>>(),
            expected
        );
        let nulls_last = records(
            "SELECT Id, AnnualRevenue FROM Account ORDER BY AnnualRevenue DESC NULLS LAST LIMIT 3000",
            false,
        );
        assert!(nulls_last.first().unwrap()["AnnualRevenue"].is_number());
        let not = records(
            "SELECT Id FROM Account WHERE NOT (Industry = null OR Industry != 'Media')",
            false,
        );
        assert!(!not.is_empty());
        assert_eq!(
            not.len(),
            all.iter().filter(|r| r["Industry"] == "Media").count()
        );
    }

    #[test]
    fn invoice_records_render_every_type() {
        let describe = org().describe("Invoice__c", "62.0").unwrap();
        let names: Vec<&str> = describe["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        let soql = format!("SELECT {} FROM Invoice__c LIMIT 500", names.join(", "));
        let r = execute(org(), &soql, false).unwrap();
        assert_eq!(
            r.max_page_size(),
            Some(LONG_TEXT_PAGE),
            "Terms__c and Summary__c are two custom long text areas"
        );
        let rows = records(&soql, false);
        assert_eq!(rows.len(), 500);
        for name in &names {
            assert!(
                rows.iter().all(|r| r.get(*name).is_some()),
                "{name} missing"
            );
            if *name != "Id"
                && describe["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["name"] == *name && f["nillable"] == true)
            {
                assert!(rows.iter().any(|r| r[*name].is_null()), "{name} never null");
            }
        }
        let first = rows.iter().find(|r| !r["Location__c"].is_null()).unwrap();
        assert!(first["Location__c"]["latitude"].is_number());
        // A custom address holds ISO codes, in `stateCode`/`countryCode`, and no names.
        for r in rows.iter().filter(|r| !r["Billing_Address__c"].is_null()) {
            let address = &r["Billing_Address__c"];
            assert_eq!(address["state"], serde_json::Value::Null);
            assert_eq!(address["country"], serde_json::Value::Null);
            assert_eq!(address["stateCode"], r["Billing_Address__StateCode__s"]);
            assert_eq!(address["countryCode"], r["Billing_Address__CountryCode__s"]);
            assert_eq!(address["city"], r["Billing_Address__City__s"]);
            let country = address["countryCode"].as_str().unwrap();
            assert!(
                country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()),
                "{country}"
            );
        }
        assert!(
            rows.iter()
                .any(|r| r["Billing_Address__c"]["countryCode"] == "JP"
                    && r["Billing_Address__c"]["stateCode"] == "13")
        );
        let t = rows
            .iter()
            .find_map(|r| r["Delivery_Window__c"].as_str())
            .unwrap();
        assert!(t.len() == 13 && t.ends_with(".000Z"), "{t}");
        let dt = rows
            .iter()
            .find_map(|r| r["Issued_At__c"].as_str())
            .unwrap();
        assert!(dt.ends_with("+0000") && !dt.contains(".000+"), "{dt}");
        assert!(
            rows.iter()
                .any(|r| r["Tags__c"].as_str().is_some_and(|t| t.contains(';')))
        );
        assert!(rows.iter().any(|r| {
            r["Terms__c"]
                .as_str()
                .is_some_and(|t| t.contains('\n') && !t.is_ascii())
        }));
        assert_eq!(
            org().describe("Invoice__c", "62.0").unwrap()["name"],
            "Invoice__c"
        );
        let e = execute(
            org(),
            "SELECT Id, Terms__c, Description FROM Invoice__c",
            false,
        )
        .err()
        .unwrap();
        assert_eq!(e.code, "INVALID_FIELD");
    }

    #[test]
    fn only_two_custom_long_text_areas_cap_the_page() {
        let cap = |soql: &str| execute(org(), soql, false).unwrap().max_page_size();
        assert_eq!(
            cap("SELECT Id, Terms__c, Summary__c FROM Invoice__c LIMIT 1"),
            Some(LONG_TEXT_PAGE)
        );
        assert_eq!(cap("SELECT Id, Terms__c, Notes__c FROM Invoice__c"), None);
        // Case's Description (32,000) and Comments (4,000) are standard long text areas.
        assert_eq!(
            cap("SELECT Id, Description, Comments FROM Case LIMIT 1"),
            None
        );
        assert_eq!(
            cap("SELECT Id, Description, Subject FROM Case LIMIT 1"),
            None
        );
    }

    #[test]
    fn fields_functions_expand_to_describe_fields_and_all_needs_limit_200() {
        let describe = org().describe("Invoice__c", "62.0").unwrap();
        let fields: Vec<(String, bool)> = describe["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_string(), f["custom"] == true))
            .collect();
        let keys = |soql: &str| {
            let r = execute(org(), soql, false).unwrap_or_else(|e| panic!("{soql}: {e}"));
            let mut raw = b"[".to_vec();
            r.render_records(0..r.len().min(1), "62.0", &mut raw);
            raw.push(b']');
            let text = String::from_utf8(raw).unwrap();
            // Keys in the order written: every top-level key of the first record.
            let rec: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
            let mut keys: Vec<(usize, String)> = rec[0]
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "attributes")
                .map(|k| (text.find(&format!(",\"{k}\":")).unwrap(), k.clone()))
                .collect();
            keys.sort();
            keys.into_iter().map(|(_, k)| k).collect::<Vec<_>>()
        };
        let all: Vec<String> = fields.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(keys("SELECT FIELDS(ALL) FROM Invoice__c LIMIT 200"), all);
        let custom: Vec<String> = fields.iter().filter(|f| f.1).map(|f| f.0.clone()).collect();
        assert_eq!(
            keys("SELECT FIELDS(CUSTOM) FROM Invoice__c LIMIT 5"),
            custom
        );
        let standard: Vec<String> = fields
            .iter()
            .filter(|f| !f.1)
            .map(|f| f.0.clone())
            .collect();
        assert_eq!(keys("select fields(standard) from Invoice__c"), standard);
        let mut name_first = vec!["Name".to_string()];
        name_first.extend(standard.iter().filter(|n| *n != "Name").cloned());
        assert_eq!(
            keys("SELECT Name, FIELDS(STANDARD) FROM Invoice__c"),
            name_first
        );
        for bad in [
            "SELECT FIELDS(ALL) FROM Invoice__c",
            "SELECT FIELDS(ALL) FROM Invoice__c LIMIT 201",
            "SELECT Id, FIELDS(CUSTOM) FROM Invoice__c",
        ] {
            let e = err(bad);
            assert_eq!(e.code, "MALFORMED_QUERY", "{bad}");
            assert!(
                e.message
                    .ends_with("The SOQL FIELDS function must have a LIMIT of at most 200"),
                "{bad}: {}",
                e.message
            );
        }
        assert_eq!(
            err("SELECT Id FROM Invoice__c WHERE FIELDS(ALL) = null").code,
            "MALFORMED_QUERY"
        );
        assert_eq!(
            err("SELECT FIELDS(SOME) FROM Invoice__c LIMIT 1").code,
            "MALFORMED_QUERY"
        );
    }

    #[test]
    fn relationship_paths_nest_up_to_five_levels() {
        let accounts: HashMap<String, serde_json::Value> = records(
            "SELECT Id, Name, Owner.Name, ParentId, BillingAddress FROM Account",
            true,
        )
        .into_iter()
        .map(|r| (r["Id"].as_str().unwrap().to_string(), r))
        .collect();
        let contacts = records(
            "SELECT Id, AccountId, Account.Name, Owner.Email, Account.Owner.Name, \
             Account.Parent.Name, Account.BillingAddress, Account.Parent.Parent.Id \
             FROM Contact LIMIT 3000",
            false,
        );
        let (mut with_account, mut without, mut with_parent) = (0, 0, 0);
        for c in &contacts {
            let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, ["Account", "AccountId", "Id", "Owner", "attributes"]);
            let Some(id) = c["AccountId"].as_str() else {
                assert!(c["Account"].is_null());
                without += 1;
                continue;
            };
            with_account += 1;
            let a = &accounts[id];
            let nested = &c["Account"];
            assert_eq!(nested["attributes"]["type"], "Account");
            let keys: Vec<&str> = nested
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                ["BillingAddress", "Name", "Owner", "Parent", "attributes"]
            );
            assert_eq!(nested["Name"], a["Name"]);
            assert_eq!(nested["Owner"]["attributes"]["type"], "User");
            assert_eq!(nested["Owner"]["Name"], a["Owner"]["Name"]);
            assert_eq!(nested["BillingAddress"], a["BillingAddress"]);
            match a["ParentId"].as_str() {
                None => assert!(nested["Parent"].is_null()),
                Some(p) => {
                    with_parent += 1;
                    assert_eq!(nested["Parent"]["Name"], accounts[p]["Name"]);
                    assert_eq!(nested["Parent"]["Parent"]["Id"], accounts[p]["ParentId"]);
                }
            }
            assert!(c["Owner"]["Email"].as_str().unwrap().contains('@'));
        }
        assert!(with_account > 0 && without > 0 && with_parent > 0);
        // Parents come where first selected, their fields in selection order.
        let r = execute(
            org(),
            "SELECT Account.Name, Id, Owner.Email, Account.Owner.Name, Account.Parent.Name FROM Contact WHERE AccountId != null LIMIT 1",
            false,
        )
        .unwrap();
        let mut raw = Vec::new();
        r.render_records(0..1, "62.0", &mut raw);
        let raw = String::from_utf8(raw).unwrap();
        let at = |k: &str| raw.find(k).unwrap_or_else(|| panic!("{k} in {raw}"));
        assert!(at("\"Account\":") < at("\"Id\":"));
        // The contact's own Owner comes after Id; the account's Owner sits inside Account.
        assert!(at("\"Id\":") < raw.rfind("\"Owner\":").unwrap());
        assert!(at("\"Owner\":") < at("\"Id\":"));
        assert!(at("\"Name\":") < at("\"Parent\":"));
        // Filters and groups follow paths too.
        let owner = accounts
            .values()
            .find_map(|a| a["Owner"]["Name"].as_str())
            .unwrap();
        let filtered = records(
            &format!(
                "SELECT Id, AccountId FROM Contact WHERE Account.Owner.Name = '{}'",
                owner.replace('\'', "\\'")
            ),
            false,
        );
        assert!(!filtered.is_empty());
        assert!(
            filtered
                .iter()
                .all(|c| accounts[c["AccountId"].as_str().unwrap()]["Owner"]["Name"] == owner)
        );
        assert!(
            !records(
                "SELECT Account.Owner.Name, COUNT(Id) FROM Contact GROUP BY Account.Owner.Name",
                false
            )
            .is_empty()
        );
        records(
            "SELECT Id, Parent.Parent.Parent.Parent.Parent.Name FROM Account LIMIT 5",
            false,
        );
        let e = err("SELECT Id, Parent.Parent.Parent.Parent.Parent.Parent.Name FROM Account");
        assert_eq!(e.code, "MALFORMED_QUERY");
        assert!(e.message.contains("more than 5 levels"), "{}", e.message);
        let e = err("SELECT Id, Owner.Manager.Name FROM Account");
        assert_eq!(e.code, "INVALID_FIELD");
        assert!(
            e.message
                .contains("Didn't understand relationship 'Manager'")
        );
        assert_eq!(
            err("SELECT Id FROM Contact WHERE Account.BillingAddress != null").code,
            "INVALID_FIELD"
        );
    }

    #[test]
    fn a_fifteen_character_id_matches_its_record() {
        let rows = records("SELECT Id, OwnerId FROM Account LIMIT 40", false);
        for r in &rows {
            let id = r["Id"].as_str().unwrap();
            let owner = r["OwnerId"].as_str().unwrap();
            let hit = records(
                &format!(
                    "SELECT Id FROM Account WHERE Id = '{}' AND OwnerId IN ('{}')",
                    &id[..15],
                    &owner[..15]
                ),
                false,
            );
            assert_eq!(hit.len(), 1, "{id}");
            assert_eq!(hit[0]["Id"], id);
            assert_eq!(id_18(&id[..15]), id);
        }
        assert_eq!(
            err("SELECT Id FROM Account WHERE Id = '001'").code,
            "INVALID_FIELD"
        );
    }

    #[test]
    fn relative_date_literals_are_ranges_in_the_users_zone() {
        // 05:00Z on 15 June is still 14 June in Los Angeles (UTC-7 in summer).
        let now: DateTime<Utc> = "2025-06-15T05:00:00Z".parse().unwrap();
        let count = |soql: &str| {
            execute_at(org(), soql, false, now)
                .unwrap_or_else(|e| panic!("{soql}: {e}"))
                .total_size()
        };
        let same = |relative: &str, explicit: &str| {
            let a = count(&format!("SELECT COUNT() FROM Case WHERE {relative}"));
            let b = count(&format!("SELECT COUNT() FROM Case WHERE {explicit}"));
            assert_eq!(a, b, "{relative} vs {explicit}");
            a
        };
        let today = same(
            "CreatedDate = TODAY",
            "CreatedDate >= 2025-06-14T07:00:00Z AND CreatedDate < 2025-06-15T07:00:00Z",
        );
        assert!(today > 0);
        assert!(
            same(
                "CreatedDate = YESTERDAY",
                "CreatedDate >= 2025-06-13T07:00:00Z AND CreatedDate < 2025-06-14T07:00:00Z",
            ) > 0
        );
        assert!(
            same(
                "CreatedDate >= LAST_N_DAYS:7",
                "CreatedDate >= 2025-06-07T07:00:00Z",
            ) > today
        );
        same(
            "CreatedDate = LAST_N_DAYS:7",
            "CreatedDate >= 2025-06-07T07:00:00Z AND CreatedDate < 2025-06-15T07:00:00Z",
        );
        same("CreatedDate < TODAY", "CreatedDate < 2025-06-14T07:00:00Z");
        same("CreatedDate > TODAY", "CreatedDate >= 2025-06-15T07:00:00Z");
        same("CreatedDate <= TODAY", "CreatedDate < 2025-06-15T07:00:00Z");
        same(
            "CreatedDate != THIS_MONTH",
            "CreatedDate < 2025-06-01T07:00:00Z OR CreatedDate >= 2025-07-01T07:00:00Z",
        );
        same(
            "CreatedDate IN (YESTERDAY, TODAY)",
            "CreatedDate >= 2025-06-13T07:00:00Z AND CreatedDate < 2025-06-15T07:00:00Z",
        );
        // A date field compares with the dates themselves; DAY_ONLY(convertTimezone()) too.
        let dates = |relative: &str, explicit: &str| {
            let a = count(&format!("SELECT COUNT() FROM Account WHERE {relative}"));
            let b = count(&format!("SELECT COUNT() FROM Account WHERE {explicit}"));
            assert_eq!(a, b, "{relative} vs {explicit}");
        };
        dates(
            "LastActivityDate = LAST_N_DAYS:30",
            "LastActivityDate >= 2025-05-15 AND LastActivityDate < 2025-06-15",
        );
        dates(
            "DAY_ONLY(convertTimezone(CreatedDate)) = TODAY",
            "CreatedDate >= 2025-06-14T07:00:00Z AND CreatedDate < 2025-06-15T07:00:00Z",
        );
        let e = execute_at(
            org(),
            "SELECT Id FROM Account WHERE Name = TODAY",
            false,
            now,
        )
        .err()
        .unwrap();
        assert_eq!(e.code, "INVALID_FIELD");
        assert!(
            e.message.contains("must be of type string"),
            "{}",
            e.message
        );
        for bad in [
            "SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS",
            "SELECT Id FROM Account WHERE CreatedDate = TODAY:3",
            "SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS:x",
        ] {
            assert_eq!(err(bad).code, "MALFORMED_QUERY", "{bad}");
        }
    }

    #[test]
    fn a_result_is_frozen_against_later_edits() {
        let mut org = Org::generate(3, 1);
        let soql = "SELECT Id, Name, LastModifiedDate FROM Account WHERE LastModifiedDate < 2025-02-01T00:00:00Z";
        let before = execute(&org, soql, false).unwrap();
        let mut first = Vec::new();
        before.render_records(0..before.len(), "62.0", &mut first);
        let now = "2026-02-01T00:00:00Z".parse().unwrap();
        assert_eq!(org.modify_rows(5_000, now, 1), 5_000);
        let mut again = Vec::new();
        before.render_records(0..before.len(), "62.0", &mut again);
        assert_eq!(first, again);
        let after = execute(&org, soql, false).unwrap();
        assert!(after.len() < before.len());
    }

    #[test]
    #[ignore = "prints generation and rendering speed; run with --release"]
    fn print_speed() {
        let t = std::time::Instant::now();
        let org = Org::generate(42, 10);
        println!("generate scale 10: {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let r = execute(&org, "SELECT Id, Name, Type, Industry, AnnualRevenue, NumberOfEmployees, Phone, Website, BillingStreet, BillingCity, BillingState, BillingPostalCode, BillingCountry, OwnerId, CreatedDate, LastModifiedDate, SystemModstamp, IsDeleted FROM Account ORDER BY SystemModstamp, Id", false).unwrap();
        println!("execute {} rows: {:?}", r.len(), t.elapsed());
        let t = std::time::Instant::now();
        let mut out = Vec::with_capacity(1 << 20);
        for start in (0..r.len()).step_by(2000) {
            out.clear();
            r.render_records(start..start + 2000, "62.0", &mut out);
        }
        let s = t.elapsed().as_secs_f64();
        println!("render: {:.0} records/s", r.len() as f64 / s);
    }
}

#[cfg(test)]
mod field_change_tests {
    use super::*;
    use crate::data::ACCOUNT;
    use crate::data::schema::{FieldSpec, FieldType};

    fn ids_and(org: &Org, soql: &str) -> Vec<serde_json::Value> {
        let r = execute(org, soql, false).unwrap_or_else(|e| panic!("{soql}: {e}"));
        let mut out = b"[".to_vec();
        r.render_records(0..r.len(), "62.0", &mut out);
        out.push(b']');
        serde_json::from_slice(&out).expect("valid JSON")
    }

    fn refusal(org: &Org, soql: &str) -> SoqlError {
        match execute(org, soql, false) {
            Ok(_) => panic!("{soql} ran"),
            Err(e) => e,
        }
    }

    fn describe_names(org: &Org, object: &str) -> Vec<String> {
        org.describe(object, "62.0").unwrap()["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect()
    }

    const WINDOW: &str = "WHERE LastModifiedDate >= 2025-06-02T00:00:00Z AND LastModifiedDate < 2025-06-03T00:00:00Z ORDER BY Id";

    #[test]
    fn a_hidden_field_leaves_describe_fields_and_soql_and_comes_back_with_its_values() {
        let mut org = Org::generate(42, 1);
        let before = ids_and(
            &org,
            &format!("SELECT Id, Health_Score__c FROM Account {WINDOW}"),
        );
        let snapshot = org.snapshot();
        org.hide_field("Account", "health_score__c").unwrap();
        assert!(!describe_names(&org, "Account").contains(&"Health_Score__c".into()));
        let refused = refusal(
            &org,
            &format!("SELECT Id, Health_Score__c FROM Account {WINDOW}"),
        );
        assert_eq!(refused.code, "INVALID_FIELD");
        assert!(
            refused
                .message
                .contains("No such column 'Health_Score__c' on entity 'Account'")
        );
        let filtered = refusal(&org, "SELECT Id FROM Account WHERE Health_Score__c > 1");
        assert_eq!(filtered.code, "INVALID_FIELD");
        let all = ids_and(&org, "SELECT FIELDS(CUSTOM) FROM Account LIMIT 5");
        assert!(all[0].get("Health_Score__c").is_none(), "{}", all[0]);
        assert!(all[0].get("Tier__c").is_some(), "{}", all[0]);
        // A snapshot taken before the change still has the field.
        assert!(
            snapshot.objects[ACCOUNT]
                .schema
                .field_index("Health_Score__c")
                .is_some()
        );

        org.show_field("Account", "Health_Score__c").unwrap();
        let after = ids_and(
            &org,
            &format!("SELECT Id, Health_Score__c FROM Account {WINDOW}"),
        );
        assert_eq!(before, after);
        assert!(org.hide_field("Account", "Nope__c").is_err());
        assert!(org.hide_field("Nope", "Name").is_err());
        assert!(org.hide_field("Account", "Id").is_err());
    }

    #[test]
    fn an_added_field_has_values_in_every_row_and_a_redefined_one_its_new_type() {
        let mut org = Org::generate(42, 1);
        let plain = ids_and(
            &org,
            &format!("SELECT Id, Name, Tier__c FROM Account {WINDOW}"),
        );
        org.add_field(
            "Account",
            &FieldSpec::new("Region__c", FieldType::Picklist).with_nulls(20),
        )
        .unwrap();
        org.add_field(
            "Account",
            &FieldSpec::new("Budget__c", FieldType::Currency).with_number(16, 2),
        )
        .unwrap();
        let names = describe_names(&org, "Account");
        assert_eq!(names[names.len() - 2..], ["Region__c", "Budget__c"]);
        let rows = ids_and(
            &org,
            &format!("SELECT Id, Name, Tier__c, Region__c, Budget__c FROM Account {WINDOW}"),
        );
        assert_eq!(rows.len(), plain.len());
        for (row, old) in rows.iter().zip(&plain) {
            // The other fields' values do not move.
            assert_eq!(
                (&row["Id"], &row["Name"], &row["Tier__c"]),
                (&old["Id"], &old["Name"], &old["Tier__c"])
            );
            assert!(row["Budget__c"].is_number(), "{row}");
        }
        let regions: Vec<&serde_json::Value> = rows.iter().map(|r| &r["Region__c"]).collect();
        assert!(regions.iter().any(|r| r.is_null()) && regions.iter().any(|r| r.is_string()));
        let all = ids_and(&org, "SELECT FIELDS(CUSTOM) FROM Account LIMIT 5");
        assert!(all[0].get("Budget__c").is_some());

        // Text redefined as a number: describe and values follow.
        org.add_field("Account", &FieldSpec::new("AccountNumber", FieldType::Long))
            .unwrap();
        let d = org.describe("Account", "62.0").unwrap();
        let number = d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "AccountNumber")
            .unwrap();
        assert_eq!(number["type"], "long");
        let rows = ids_and(
            &org,
            &format!("SELECT Id, AccountNumber FROM Account {WINDOW}"),
        );
        assert!(
            rows.iter().all(|r| r["AccountNumber"].is_i64()),
            "{}",
            rows[0]
        );
        assert!(
            org.add_field("Account", &FieldSpec::new("BillingCity", FieldType::Int))
                .is_err()
        );
        assert!(
            org.add_field("Account", &FieldSpec::new("Geo__c", FieldType::Location))
                .is_err()
        );
        assert!(
            org.add_field("Account", &FieldSpec::new("bad name", FieldType::Int))
                .is_err()
        );
    }
}
