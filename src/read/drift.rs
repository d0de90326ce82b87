//! Schema drift (spec "Schema drift"): an object's columns as this folder recorded them,
//! reconciled with the org's describe now and the run's field request, so that a field deleted,
//! hidden, added or retyped between runs never stops a run nor loses a value.
//!
//! Owns the rules (pure, no I/O); the commands read the journals and the describe, print the
//! notes and record the result. The rules:
//! * A recorded column the org no longer shows (deleted, or hidden from the Run-As user by
//!   field-level security) is not queried; it stays in the files as a null column of its
//!   recorded Arrow type for as long as the run's request would select it were it visible
//!   (named in `--fields`, any field with `--all-fields`, a standard field by default), with
//!   the start of the first run that found it missing.
//! * A field the request selects and the record lacks (new in the org, named anew in
//!   `--fields`, shown again) becomes a column of later files; earlier files lack it.
//! * A recorded column the org still shows but the request no longer selects (the user took it
//!   out of `--fields`, or dropped `--all-fields`) leaves later files: the user's list wins.
//! * A selected field whose type changed is written with a type holding the old and the new
//!   values ([`schema::widen`]); when none exists the object's chunks fail with
//!   [`TypeChange`], naming the field, both types and the way out.
//!
//! Invariant: every column ever written keeps its latest type in the record, so a field that
//! leaves and returns with another type is caught too.

use std::collections::{BTreeMap, BTreeSet};

use arrow::datatypes::DataType;
use chrono::{DateTime, Utc};

use crate::checkpoint::ObjectConfig;
use crate::decode::schema::{self, arrow_type, type_name};
use crate::error::{ExitKind, UserFacing, quoted};
use crate::salesforce::describe::ObjectDescribe;
use crate::salesforce::select::Selection;
use crate::salesforce::soql::Identifier;

/// Which fields a run asks for, as the command line says it.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// The object's standard fields.
    Default,
    /// `--all-fields`: standard and custom.
    All,
    /// `--fields OBJECT=...` (or, for a sync, the list the folder holds).
    Listed(&'a [Identifier]),
}

impl Request<'_> {
    /// Whether the request would select `field` if the org showed it.
    fn wants(&self, field: &str) -> bool {
        match self {
            Request::Default => !field.ends_with("__c"),
            Request::All => true,
            Request::Listed(names) => names.iter().any(|n| n.as_str().eq_ignore_ascii_case(field)),
        }
    }
}

/// The names of `requested` to select from the describe: a name the org no longer shows but
/// the folder recorded is left to [`reconcile`] (a null column) instead of being refused as
/// unknown; any other name is kept, so a typo is still refused with its close matches.
pub fn selectable(
    describe: &ObjectDescribe,
    requested: &[Identifier],
    recorded: Option<&ObjectConfig>,
) -> Vec<Identifier> {
    let recorded_field = |name: &str| {
        recorded.is_some_and(|r| r.fields.iter().any(|f| f.eq_ignore_ascii_case(name)))
    };
    requested
        .iter()
        .filter(|n| describe.field(n.as_str()).is_some() || !recorded_field(n.as_str()))
        .cloned()
        .collect()
}

/// A recorded column the org no longer shows: written as nulls of its recorded type.
#[derive(Debug, Clone, PartialEq)]
pub struct Absent {
    pub field: String,
    pub arrow_type: DataType,
    /// The start of the first run that found it missing.
    pub since: DateTime<Utc>,
}

/// What changed in an object's columns since the folder's record, for the run's output.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// Not in the org's describe: written as null.
    Missing {
        field: String,
        arrow_type: String,
        since: DateTime<Utc>,
    },
    /// Not in the org's describe, and its type was never recorded (a folder written before
    /// sfbackfill recorded types): left out rather than written with a guessed type.
    Untyped { field: String },
    /// Queried from now on; files written before lack it (or hold it as null).
    Added { field: String },
    /// The request no longer selects it: later files lack it.
    Removed { field: String },
    /// Its type changed safely: written as `to` from now on (earlier files hold `from`).
    Widened {
        field: String,
        from: String,
        to: String,
    },
}

/// Whose files a note or a status line speaks of: a backfill's days or a sync's files, which
/// differ in how a gap in them is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    Backfill,
    Sync,
}

impl Files {
    /// The files written before this run, as a plural subject.
    fn earlier(self) -> &'static str {
        match self {
            Files::Backfill => "the days done before",
            Files::Sync => "earlier sync files",
        }
    }

    /// How the files that lack a column (or `columns`, when `plural`) get it: a backfill
    /// replaces its days; a sync's files stay, so a full re-read writes newer copies of their
    /// rows (which a reader keeping each record's newest version picks).
    pub fn refill(self, plural: bool) -> String {
        let it = if plural { "them" } else { "it" };
        match self {
            Files::Backfill => format!("`backfill --repull` of those days writes them with {it}"),
            Files::Sync => format!(
                "a full re-read (one `sync --full-every 1`) writes their rows again with {it}"
            ),
        }
    }
}

/// The notes of an object as lines of a run's output: one per field the org stopped showing
/// (`warning:`) or that changed type, one for all the fields added, one for all removed.
pub fn note_lines(notes: &[Note], object: &str, files: Files) -> Vec<String> {
    let fields = |wanted: fn(&Note) -> Option<&String>| -> Vec<&String> {
        notes.iter().filter_map(wanted).collect()
    };
    let added = fields(|n| match n {
        Note::Added { field } => Some(field),
        _ => None,
    });
    let removed = fields(|n| match n {
        Note::Removed { field } => Some(field),
        _ => None,
    });
    let mut lines: Vec<String> = notes
        .iter()
        .filter(|n| !matches!(n, Note::Added { .. } | Note::Removed { .. }))
        .map(|n| n.line(object, files))
        .collect();
    match added.as_slice() {
        [] => {}
        [one] => lines.push(
            Note::Added {
                field: one.to_string(),
            }
            .line(object, files),
        ),
        many => lines.push(format!(
            "note: `{object}`'s {} are columns from now on; {} lack them \
             (`sfbackfill status` lists their days; {})",
            quoted(many),
            files.earlier(),
            files.refill(true)
        )),
    }
    match removed.as_slice() {
        [] => {}
        [one] => lines.push(
            Note::Removed {
                field: one.to_string(),
            }
            .line(object, files),
        ),
        many => lines.push(format!(
            "note: `{object}`'s {} are no longer selected: later files lack them",
            quoted(many)
        )),
    }
    lines
}

impl Note {
    /// The note as one line of a run's output, `warning:` for a field the org stopped showing.
    pub fn line(&self, object: &str, files: Files) -> String {
        match self {
            Note::Missing {
                field,
                arrow_type,
                since,
            } => format!(
                "warning: `{object}.{field}` is not in the org's describe since {} (deleted, or \
                 hidden from the Run-As user by field-level security): written as null `{arrow_type}`",
                since.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            Note::Untyped { field } => format!(
                "warning: `{object}.{field}` is not in the org's describe, and this folder did not \
                 record its type: left out of later files"
            ),
            Note::Added { field } => format!(
                "note: `{object}.{field}` is a column from now on; {} lack it \
                 (`sfbackfill status` lists their days; {})",
                files.earlier(),
                files.refill(false)
            ),
            Note::Removed { field } => {
                format!("note: `{object}.{field}` is no longer selected: later files lack it")
            }
            Note::Widened { field, from, to } => format!(
                "note: `{object}.{field}` changed type in the org: written as `{to}` from now on \
                 (earlier files hold `{from}`; readers combining files by name widen them)"
            ),
        }
    }
}

/// A field whose type changed in a way no column type can hold: the object's chunks fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{object}.{field}` changed type in the org: this folder's files hold it as `{recorded}`, \
     the describe now gives `{now}`, and no column type holds both without changing values; \
     copy `{object}` into a new --out folder (its history is read again with the new type), \
     or leave `{field}` out with --fields"
)]
pub struct TypeChange {
    pub object: String,
    pub field: String,
    pub recorded: String,
    pub now: String,
}

impl UserFacing for TypeChange {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Failure
    }
}

/// An object's columns for this run: what to query, what to write as null, what to record.
#[derive(Debug, Clone)]
pub struct Drift {
    /// The fields to query, in column order, with widened types where a type changed.
    pub selection: Selection,
    /// Recorded columns the org no longer shows, written as null after the queried ones.
    pub absent: Vec<Absent>,
    /// The Arrow type of every column the files have had (the record's, updated).
    pub types: BTreeMap<String, String>,
    pub notes: Vec<Note>,
}

impl Drift {
    /// The config to record: these columns, with the object's cursor and day settings.
    /// The cursor is the selection's, spelled as the describe spells it, whatever case the
    /// user typed it in, so the same command compares equal on the next run.
    pub fn config(&self, chunk_timezone: String, include_deleted: bool) -> ObjectConfig {
        let mut fields = self.selection.field_names();
        fields.extend(self.absent.iter().map(|a| a.field.clone()));
        ObjectConfig {
            fields,
            cursor_field: self.selection.cursor.to_string(),
            chunk_timezone,
            include_deleted,
            types: self.types.clone(),
            missing: self
                .absent
                .iter()
                .map(|a| (a.field.clone(), a.since))
                .collect(),
        }
    }

    /// The absent columns as `(name, type)`, for the files' schema.
    pub fn null_columns(&self) -> Vec<(String, DataType)> {
        self.absent
            .iter()
            .map(|a| (a.field.clone(), a.arrow_type.clone()))
            .collect()
    }
}

/// Reconciles `selection` (chosen from `describe` for `request`) with the folder's `recorded`
/// config of the object, by a run started `now`.
///
/// # Errors
/// [`TypeChange`] for the first selected field whose recorded type cannot widen to its type now.
pub fn reconcile(
    describe: &ObjectDescribe,
    mut selection: Selection,
    request: Request<'_>,
    recorded: Option<&ObjectConfig>,
    now: DateTime<Utc>,
) -> Result<Drift, TypeChange> {
    let empty = ObjectConfig::default();
    let recorded = recorded.unwrap_or(&empty);
    let fresh = recorded.fields.is_empty();
    let mut notes = Vec::new();
    let mut types = recorded.types.clone();
    for field in &mut selection.fields {
        let new = arrow_type(field);
        let old = types
            .get(&field.name)
            .and_then(|t| schema::parse_type_name(t));
        if let Some(old) = old {
            let widened = schema::widen(&old, &new)
                .and_then(|t| schema::with_arrow_type(field, &t))
                .ok_or_else(|| TypeChange {
                    object: describe.name.clone(),
                    field: field.name.clone(),
                    recorded: type_name(&old),
                    now: type_name(&new),
                })?;
            let written = arrow_type(&widened);
            if written != old {
                notes.push(Note::Widened {
                    field: field.name.clone(),
                    from: type_name(&old),
                    to: type_name(&written),
                });
            }
            *field = widened;
        }
        let queried_before =
            recorded.fields.contains(&field.name) && !recorded.missing.contains_key(&field.name);
        if !fresh && !queried_before {
            notes.push(Note::Added {
                field: field.name.clone(),
            });
        }
        types.insert(field.name.clone(), type_name(&arrow_type(field)));
    }
    let queried: BTreeSet<&str> = selection.fields.iter().map(|f| f.name.as_str()).collect();
    let mut absent = Vec::new();
    for field in &recorded.fields {
        if queried.contains(field.as_str()) {
            continue;
        }
        if describe.field(field).is_some() || !request.wants(field) {
            notes.push(Note::Removed {
                field: field.clone(),
            });
            continue;
        }
        match types.get(field).and_then(|t| schema::parse_type_name(t)) {
            Some(arrow_type) => {
                let since = recorded.missing.get(field).copied().unwrap_or(now);
                notes.push(Note::Missing {
                    field: field.clone(),
                    arrow_type: type_name(&arrow_type),
                    since,
                });
                absent.push(Absent {
                    field: field.clone(),
                    arrow_type,
                    since,
                });
            }
            None => notes.push(Note::Untyped {
                field: field.clone(),
            }),
        }
    }
    Ok(Drift {
        selection,
        absent,
        types,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::describe::{Field, FieldType};
    use crate::salesforce::select;

    fn field(name: &str, t: FieldType) -> Field {
        Field {
            name: name.into(),
            field_type: t,
            length: 0,
            precision: 18,
            scale: 2,
            digits: 0,
            nillable: true,
            custom: name.ends_with("__c"),
            calculated: false,
            compound_field_name: None,
            filterable: true,
            sortable: true,
            groupable: true,
        }
    }

    fn describe(fields: Vec<Field>) -> ObjectDescribe {
        let mut all = vec![
            field("Id", FieldType::Id),
            field("LastModifiedDate", FieldType::Datetime),
        ];
        all.extend(fields);
        ObjectDescribe {
            name: "Account".into(),
            queryable: true,
            replicateable: true,
            fields: all,
        }
    }

    fn ids(names: &[&str]) -> Vec<Identifier> {
        names
            .iter()
            .map(|n| Identifier::parse(n).unwrap())
            .collect()
    }

    fn at(h: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 1, 5, h, 0, 0).unwrap()
    }

    /// Runs `select` then `reconcile`, as a command does.
    fn run(
        d: &ObjectDescribe,
        request: Request<'_>,
        recorded: Option<&ObjectConfig>,
        now: DateTime<Utc>,
    ) -> Result<Drift, TypeChange> {
        let (names, all) = match request {
            Request::Listed(names) => (Some(selectable(d, names, recorded)), false),
            Request::All => (None, true),
            Request::Default => (None, false),
        };
        let cursor = Identifier::parse("LastModifiedDate").unwrap();
        let selection = select::select(d, names.as_deref(), all, &cursor).unwrap();
        reconcile(d, selection, request, recorded, now)
    }

    fn config(drift: &Drift) -> ObjectConfig {
        drift.config("UTC".into(), false)
    }

    #[test]
    fn a_hidden_field_stays_a_null_column_of_its_type_since_the_first_run_that_missed_it() {
        let before = describe(vec![
            field("Name", FieldType::String),
            field("Since__c", FieldType::Date),
        ]);
        let first = config(&run(&before, Request::All, None, at(1)).unwrap());
        assert_eq!(first.types["Since__c"], "Date32");

        let hidden = describe(vec![field("Name", FieldType::String)]);
        let drift = run(&hidden, Request::All, Some(&first), at(2)).unwrap();
        assert_eq!(
            drift.selection.field_names(),
            ["Id", "LastModifiedDate", "Name"]
        );
        assert_eq!(
            drift.null_columns(),
            [("Since__c".to_string(), DataType::Date32)]
        );
        assert_eq!(
            drift.notes,
            [Note::Missing {
                field: "Since__c".into(),
                arrow_type: "Date32".into(),
                since: at(2)
            }]
        );
        let second = config(&drift);
        assert_eq!(
            second.fields,
            ["Id", "LastModifiedDate", "Name", "Since__c"]
        );
        // A later run keeps the first run that found it missing.
        let third = run(&hidden, Request::All, Some(&second), at(3)).unwrap();
        assert_eq!(third.absent[0].since, at(2));
        assert_eq!(config(&third), second, "nothing new to record");

        // Named in a --fields list (a sync's recorded list), it is not refused as unknown.
        let listed = ids(&["Name", "Since__c"]);
        let drift = run(&hidden, Request::Listed(&listed), Some(&second), at(3)).unwrap();
        assert_eq!(drift.absent.len(), 1);
        // A list without it drops it, as does the default for a custom field.
        let drift = run(
            &hidden,
            Request::Listed(&ids(&["Name"])),
            Some(&second),
            at(3),
        )
        .unwrap();
        assert!(drift.absent.is_empty());
        assert_eq!(
            drift.notes,
            [Note::Removed {
                field: "Since__c".into()
            }]
        );
        assert!(
            run(&hidden, Request::Default, Some(&second), at(3))
                .unwrap()
                .absent
                .is_empty()
        );

        // Shown again, it is queried again: a column earlier files held as null.
        let shown = run(&before, Request::All, Some(&second), at(4)).unwrap();
        assert!(shown.absent.is_empty());
        assert_eq!(
            shown.notes,
            [Note::Added {
                field: "Since__c".into()
            }]
        );
    }

    #[test]
    fn a_new_field_is_added_and_a_user_removed_one_leaves() {
        let d = describe(vec![
            field("Name", FieldType::String),
            field("Phone", FieldType::Phone),
            field("Region__c", FieldType::Picklist),
        ]);
        let first =
            config(&run(&d, Request::Listed(&ids(&["Name", "Phone"])), None, at(1)).unwrap());
        let drift = run(
            &d,
            Request::Listed(&ids(&["Name", "Region__c"])),
            Some(&first),
            at(2),
        )
        .unwrap();
        assert_eq!(
            drift.notes,
            [
                Note::Added {
                    field: "Region__c".into()
                },
                Note::Removed {
                    field: "Phone".into()
                }
            ]
        );
        let second = config(&drift);
        assert_eq!(
            second.fields,
            ["Id", "LastModifiedDate", "Name", "Region__c"]
        );
        assert!(
            second.types.contains_key("Phone"),
            "a removed column keeps its type"
        );
        let lines = note_lines(
            &[
                Note::Added { field: "A".into() },
                Note::Added { field: "B".into() },
                Note::Removed { field: "C".into() },
            ],
            "Account",
            Files::Backfill,
        );
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with(
                "note: `Account`'s `A`, `B` are columns from now on; the days done before lack them"
            ),
            "{}",
            lines[0]
        );
        assert_eq!(
            lines[1],
            "note: `Account.C` is no longer selected: later files lack it"
        );
        // An unknown name is still refused with its close matches.
        let unknown = selectable(&d, &ids(&["Nmae"]), Some(&second));
        assert_eq!(unknown, ids(&["Nmae"]));
    }

    #[test]
    fn a_type_that_widens_is_written_wider_and_one_that_cannot_fails_naming_both() {
        let d = describe(vec![
            field("Employees", FieldType::Int),
            field("Code", FieldType::String),
        ]);
        let first = config(&run(&d, Request::All, None, at(1)).unwrap());
        let wider = describe(vec![
            field("Employees", FieldType::Long),
            field("Code", FieldType::String),
        ]);
        let drift = run(&wider, Request::All, Some(&first), at(2)).unwrap();
        assert_eq!(
            drift.notes,
            [Note::Widened {
                field: "Employees".into(),
                from: "Int32".into(),
                to: "Int64".into()
            }]
        );
        let second = config(&drift);
        assert_eq!(second.types["Employees"], "Int64");
        // Narrowed back to int, it stays a long column: no note, nothing new to record.
        let back = run(&d, Request::All, Some(&second), at(3)).unwrap();
        assert_eq!(back.notes, []);
        assert_eq!(
            crate::decode::schema::arrow_type(&back.selection.fields[2]),
            DataType::Int64
        );

        let retyped = describe(vec![
            field("Employees", FieldType::Int),
            field("Code", FieldType::Double),
        ]);
        let change = run(&retyped, Request::All, Some(&second), at(3)).unwrap_err();
        assert_eq!(
            (
                change.field.as_str(),
                change.recorded.as_str(),
                change.now.as_str()
            ),
            ("Code", "Utf8", "Float64")
        );
        assert!(change.to_string().contains("new --out folder"), "{change}");
    }
}
