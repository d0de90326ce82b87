//! Which fields of an object a run copies, and which field places a row in a day.
//!
//! Owns the rules that turn `--fields`, `--all-fields` and `--cursor-field` plus an object's
//! describe into the ordered field list of its queries and Parquet files. Pure: no I/O.
//!
//! Rules: the default is the object's standard (non-custom) fields; `--all-fields` adds custom
//! ones; `Id` and the cursor always come first. `base64` fields are left out unless named (a
//! query that selects one returns a single row per page). A compound parent (`BillingAddress`,
//! a geolocation) is left out when its component fields are selected, so each value is written
//! once; it is written as a struct when named without its components.

use std::collections::BTreeSet;

use crate::error::{ExitKind, UserFacing, quoted};
use crate::salesforce::describe::{Field, FieldType, ObjectDescribe};
use crate::salesforce::soql::Identifier;

/// A field list or cursor that does not fit the object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// A `--fields` name the describe does not have.
    #[error("`{object}` has no field `{field}`{}", suggest(.close))]
    UnknownField {
        object: String,
        field: String,
        close: Vec<String>,
    },
    /// The cursor field is missing from the object.
    #[error("`{object}` has no field `{field}` to place rows in days{}", cursor_advice(.candidates))]
    NoCursor {
        object: String,
        field: String,
        candidates: Vec<String>,
    },
    /// The cursor field exists but is not a date-time.
    #[error("`{object}.{field}` is a {kind} field; the cursor must be a date-time{}", cursor_advice(.candidates))]
    CursorNotDatetime {
        object: String,
        field: String,
        kind: String,
        candidates: Vec<String>,
    },
    /// The object cannot be queried.
    #[error("`{object}` cannot be queried with SOQL (describe says queryable = false)")]
    NotQueryable { object: String },
}

fn suggest(close: &[String]) -> String {
    match close {
        [] => String::new(),
        [one] => format!("; did you mean `{one}`?"),
        many => format!("; did you mean one of {}?", quoted(many)),
    }
}

fn cursor_advice(candidates: &[String]) -> String {
    match candidates {
        [] => ": it has no date-time field, so it cannot be copied by day".into(),
        some => format!(
            ": pass `--cursor-field` with one of its date-time fields: {}",
            quoted(some)
        ),
    }
}

impl UserFacing for SelectError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Usage
    }
}

/// What is copied of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub object: Identifier,
    pub cursor: Identifier,
    /// The describe entries, in query and column order.
    pub fields: Vec<Field>,
}

impl Selection {
    /// Rows per page the org serves this selection at `batch_size` (2,000 when unset): at most
    /// 200 when two or more custom long-text fields are selected, as Salesforce caps them
    /// (salesforce-api.md §4.3). Standard long-text fields do not count.
    pub fn rows_per_page(&self, batch_size: Option<u32>) -> u64 {
        let custom_long_text = self
            .fields
            .iter()
            .filter(|f| f.custom && f.field_type == FieldType::Textarea && f.length > 255)
            .count();
        let batch = u64::from(batch_size.unwrap_or(2000));
        if custom_long_text >= 2 {
            batch.min(LONG_TEXT_PAGE_ROWS)
        } else {
            batch
        }
    }

    pub fn identifiers(&self) -> Vec<Identifier> {
        self.fields
            .iter()
            .map(|f| Identifier::parse(&f.name).expect("describe names are identifiers"))
            .collect()
    }

    pub fn field_names(&self) -> Vec<String> {
        self.fields.iter().map(|f| f.name.clone()).collect()
    }
}

/// Salesforce refuses request URIs over 16,384 bytes (`414`); this leaves room for the
/// `nextRecordsUrl` form and proxies that count a little differently.
pub const MAX_QUERY_URI_BYTES: usize = 15_000;

/// The page Salesforce serves when two or more custom long-text fields are selected, whatever
/// batch size was asked (salesforce-api.md §4.3).
const LONG_TEXT_PAGE_ROWS: u64 = 200;

/// Splits the selection's fields into groups whose range query fits in `max_uri_bytes`
/// when sent to a URL that begins with `uri_prefix_len` bytes (instance URL and path).
///
/// Returns indices into `selection.fields`; every group starts with `Id` and the cursor,
/// which `join` uses to line the groups' rows up. One group when everything fits.
pub fn field_groups(
    selection: &Selection,
    uri_prefix_len: usize,
    max_uri_bytes: usize,
) -> Vec<Vec<usize>> {
    let ids = selection.identifiers();
    let key: Vec<usize> = (0..ids.len().min(2)).collect();
    let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let length = |group: &[usize]| {
        let fields: Vec<Identifier> = group.iter().map(|&i| ids[i].clone()).collect();
        let soql = crate::salesforce::soql::select_range(
            &selection.object,
            &fields,
            &selection.cursor,
            epoch,
            epoch,
        );
        uri_prefix_len
            + url::form_urlencoded::byte_serialize(soql.as_bytes())
                .map(str::len)
                .sum::<usize>()
    };
    let mut groups = Vec::new();
    let mut current = key.clone();
    for i in key.len()..ids.len() {
        current.push(i);
        if length(&current) > max_uri_bytes && current.len() > key.len() + 1 {
            current.pop();
            groups.push(std::mem::replace(&mut current, key.clone()));
            current.push(i);
        }
    }
    groups.push(current);
    groups
}

/// The cursor fields tried, in the order salesforce-api.md §3.4 recommends.
const CURSOR_PREFERENCE: &[&str] = &[
    "SystemModstamp",
    "LastModifiedDate",
    "CreatedDate",
    "LoginTime",
];

/// The date-time fields of an object that could serve as its cursor, preferred ones first.
pub fn cursor_candidates(describe: &ObjectDescribe) -> Vec<String> {
    let mut names: Vec<String> = CURSOR_PREFERENCE
        .iter()
        .filter_map(|p| {
            describe
                .field(p)
                .filter(|f| f.is_datetime())
                .map(|f| f.name.clone())
        })
        .collect();
    for f in describe.fields.iter().filter(|f| f.is_datetime()) {
        if !names.contains(&f.name) {
            names.push(f.name.clone());
        }
    }
    names
}

/// Chooses the fields of `describe` to copy.
///
/// `requested` is the `--fields` list for this object, if any.
pub fn select(
    describe: &ObjectDescribe,
    requested: Option<&[Identifier]>,
    all_fields: bool,
    cursor: &Identifier,
) -> Result<Selection, SelectError> {
    if !describe.queryable {
        return Err(SelectError::NotQueryable {
            object: describe.name.clone(),
        });
    }
    let cursor_field = cursor_field(describe, cursor)?;
    let mut chosen: Vec<&Field> = match requested {
        Some(names) => names
            .iter()
            .map(|n| find(describe, n.as_str()))
            .collect::<Result<_, _>>()?,
        None => describe
            .fields
            .iter()
            .filter(|f| all_fields || !f.custom)
            .filter(|f| f.field_type != FieldType::Base64)
            .collect(),
    };
    let selected: BTreeSet<String> = chosen.iter().map(|f| f.name.clone()).collect();
    chosen.retain(|f| !(f.is_compound() && has_components(describe, &f.name, &selected)));
    let mut fields = Vec::with_capacity(chosen.len() + 2);
    if let Some(id) = describe.field("Id") {
        fields.push(id.clone());
    }
    if !fields.iter().any(|f| f.name == cursor_field.name) {
        fields.push(cursor_field.clone());
    }
    for f in chosen {
        if !fields.iter().any(|g| g.name == f.name) {
            fields.push(f.clone());
        }
    }
    Ok(Selection {
        object: Identifier::parse(&describe.name).expect("describe names are identifiers"),
        cursor: Identifier::parse(&cursor_field.name).expect("describe names are identifiers"),
        fields,
    })
}

fn has_components(describe: &ObjectDescribe, parent: &str, selected: &BTreeSet<String>) -> bool {
    describe
        .fields
        .iter()
        .any(|f| f.compound_field_name.as_deref() == Some(parent) && selected.contains(&f.name))
}

fn cursor_field<'a>(
    describe: &'a ObjectDescribe,
    cursor: &Identifier,
) -> Result<&'a Field, SelectError> {
    let candidates = cursor_candidates(describe);
    match describe.field(cursor.as_str()) {
        Some(f) if f.is_datetime() => Ok(f),
        Some(f) => Err(SelectError::CursorNotDatetime {
            object: describe.name.clone(),
            field: f.name.clone(),
            kind: serde_json::to_value(&f.field_type)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "non-date-time".into()),
            candidates,
        }),
        None => Err(SelectError::NoCursor {
            object: describe.name.clone(),
            field: cursor.to_string(),
            candidates,
        }),
    }
}

fn find<'a>(describe: &'a ObjectDescribe, name: &str) -> Result<&'a Field, SelectError> {
    describe
        .field(name)
        .ok_or_else(|| SelectError::UnknownField {
            object: describe.name.clone(),
            field: name.to_string(),
            close: close_matches(name, describe.fields.iter().map(|f| f.name.as_str())),
        })
}

/// Up to three names within a small edit distance of `name`, closest first.
pub fn close_matches<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let lower = name.to_ascii_lowercase();
    let mut scored: Vec<(f64, &str)> = names
        .map(|n| (strsim::jaro_winkler(&lower, &n.to_ascii_lowercase()), n))
        .filter(|(score, _)| *score >= 0.85)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(3)
        .map(|(_, n)| n.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, t: FieldType, custom: bool, parent: Option<&str>) -> Field {
        Field {
            name: name.into(),
            field_type: t,
            length: 0,
            precision: 0,
            scale: 0,
            digits: 0,
            nillable: true,
            custom,
            calculated: false,
            compound_field_name: parent.map(str::to_string),
            filterable: true,
            sortable: true,
            groupable: true,
        }
    }

    fn long_text(name: &str, custom: bool) -> Field {
        Field {
            length: 32_768,
            ..field(name, FieldType::Textarea, custom, None)
        }
    }

    fn selection(fields: Vec<Field>) -> Selection {
        Selection {
            object: Identifier::parse("Invoice__c").unwrap(),
            cursor: Identifier::parse("LastModifiedDate").unwrap(),
            fields,
        }
    }

    #[test]
    fn two_custom_long_text_fields_cap_the_page_at_200_rows() {
        let id = field("Id", FieldType::Id, false, None);
        let one = selection(vec![id.clone(), long_text("Notes__c", true)]);
        assert_eq!(one.rows_per_page(None), 2000);
        assert_eq!(one.rows_per_page(Some(500)), 500);
        let two = selection(vec![
            id.clone(),
            long_text("Notes__c", true),
            long_text("Summary__c", true),
        ]);
        assert_eq!(two.rows_per_page(None), 200);
        assert_eq!(two.rows_per_page(Some(1000)), 200);
    }

    #[test]
    fn standard_long_text_and_short_text_areas_do_not_cap_the_page() {
        let id = field("Id", FieldType::Id, false, None);
        let standard = selection(vec![
            id.clone(),
            long_text("Description", false),
            long_text("Notes__c", true),
        ]);
        assert_eq!(standard.rows_per_page(None), 2000);
        let short = Field {
            length: 255,
            ..field("Short__c", FieldType::Textarea, true, None)
        };
        let shorts = selection(vec![
            id,
            short.clone(),
            Field {
                name: "Other__c".into(),
                ..short
            },
        ]);
        assert_eq!(shorts.rows_per_page(None), 2000);
    }

    fn account() -> ObjectDescribe {
        ObjectDescribe {
            name: "Account".into(),
            queryable: true,
            replicateable: true,
            fields: vec![
                field("Id", FieldType::Id, false, None),
                field("Name", FieldType::String, false, None),
                field(
                    "BillingStreet",
                    FieldType::Textarea,
                    false,
                    Some("BillingAddress"),
                ),
                field(
                    "BillingCity",
                    FieldType::String,
                    false,
                    Some("BillingAddress"),
                ),
                field("BillingAddress", FieldType::Address, false, None),
                field("Photo", FieldType::Base64, false, None),
                field("CreatedDate", FieldType::Datetime, false, None),
                field("LastModifiedDate", FieldType::Datetime, false, None),
                field("SystemModstamp", FieldType::Datetime, false, None),
                field("Score__c", FieldType::Double, true, None),
            ],
        }
    }

    fn id(s: &str) -> Identifier {
        Identifier::parse(s).unwrap()
    }

    #[test]
    fn default_is_standard_fields_with_id_and_cursor_first() {
        let s = select(&account(), None, false, &id("LastModifiedDate")).unwrap();
        assert_eq!(
            s.field_names(),
            [
                "Id",
                "LastModifiedDate",
                "Name",
                "BillingStreet",
                "BillingCity",
                "CreatedDate",
                "SystemModstamp"
            ]
        );
        let all = select(&account(), None, true, &id("LastModifiedDate")).unwrap();
        assert!(all.field_names().contains(&"Score__c".to_string()));
    }

    #[test]
    fn a_named_compound_without_components_is_kept() {
        let s = select(
            &account(),
            Some(&[id("BillingAddress")]),
            false,
            &id("SystemModstamp"),
        )
        .unwrap();
        assert_eq!(s.field_names(), ["Id", "SystemModstamp", "BillingAddress"]);
    }

    #[test]
    fn a_long_field_list_is_split_into_groups_that_each_fit() {
        let mut wide = account();
        for i in 0..400 {
            wide.fields.push(field(
                &format!("Custom_Field_Number_{i:03}__c"),
                FieldType::String,
                true,
                None,
            ));
        }
        let s = select(&wide, None, true, &id("SystemModstamp")).unwrap();
        assert_eq!(field_groups(&s, 60, MAX_QUERY_URI_BYTES).len(), 1);
        let groups = field_groups(&s, 60, 4_000);
        assert!(groups.len() > 2, "{}", groups.len());
        let mut seen: Vec<usize> = groups.iter().flat_map(|g| g[2..].to_vec()).collect();
        seen.sort();
        assert_eq!(
            seen,
            (2..s.fields.len()).collect::<Vec<_>>(),
            "every field in exactly one group"
        );
        for g in &groups {
            assert_eq!(&g[..2], &[0, 1], "each group starts with Id and the cursor");
        }
    }

    #[test]
    fn unknown_fields_suggest_close_matches() {
        let err = select(
            &account(),
            Some(&[id("Nmae")]),
            false,
            &id("LastModifiedDate"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`Account` has no field `Nmae`; did you mean `Name`?"
        );
    }

    #[test]
    fn a_missing_or_wrong_cursor_says_which_fields_would_do() {
        let mut login = account();
        login.name = "LoginHistory".into();
        login
            .fields
            .retain(|f| !f.name.ends_with("Date") && f.name != "SystemModstamp");
        login
            .fields
            .push(field("LoginTime", FieldType::Datetime, false, None));
        let err = select(&login, None, false, &id("LastModifiedDate")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`LoginHistory` has no field `LastModifiedDate` to place rows in days: pass `--cursor-field` with one of its date-time fields: `LoginTime`"
        );
        let err = select(&account(), None, false, &id("Name")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`Account.Name` is a string field"),
            "{err}"
        );
    }
}
