//! The seeded, deterministic org: its objects, their rows over calendar year 2025, and the
//! describe bodies built from the field tables.
//!
//! Owns: row generation, row edits ([`Org::modify_rows`]), field changes ([`Org::hide_field`],
//! [`Org::show_field`], [`Org::add_field`]) and the describeGlobal/describe JSON.
//! Does not own query parsing (`soql`), execution or rendering (`exec`).
//!
//! Invariants:
//! * The same seed and scale give the same org, row for row.
//! * Rows of an object are kept in `Id` order and an `Id` is its row's index (`seq`), so a
//!   reference resolves by indexing. Ids increase with `CreatedDate`.
//! * `CreatedDate ≤ LastModifiedDate ≤ SystemModstamp`, all on whole seconds as Salesforce
//!   stores them.
//! * Rows are `Arc`s inside an `Arc`'d vector: a [`Snapshot`] taken before an edit keeps the
//!   old rows, because an edit copies the vector (pointers only) and swaps in a new `Arc<Row>`.
//!   Schemas are `Arc`'d the same way: a field change copies the object's schema, so a query
//!   locator opened before it keeps the columns it was opened with.
//!
//! The time shape, per object (at scale 1): a weekday/weekend rhythm, June about 1.6× busier,
//! six US holidays plus two object-specific days with no rows, some rows exactly at UTC
//! midnight, rows in the skipped and repeated hours of the 2025 US DST changes, about 3 %
//! soft-deleted rows, and for `Case` a bulk update of 30,000 rows on 2025-09-17, most of them
//! stamped with the same second.

mod objects;
pub mod schema;
pub mod values;

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use serde_json::{Value as Json, json};

pub use objects::{ACCOUNT, CASE, CONTACT, INVOICE, LEAD, LOGIN_HISTORY, OPPORTUNITY};
use schema::{FieldSpec, ObjectSchema};
use values::{GenCtx, Value, mix};

/// One record's identity and timestamps; its field values derive from `key` and `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Position in `Id` order; the id's sequence number.
    pub seq: u64,
    /// The seed of this row's values.
    pub key: u64,
    /// Bumped by each edit, which redraws the user data.
    pub version: u32,
    /// Milliseconds since the epoch (UTC), whole seconds.
    pub created: i64,
    /// `LastModifiedDate` (or `LoginTime`).
    pub modified: i64,
    pub modstamp: i64,
    pub deleted: bool,
}

/// An object's definition and its current rows.
#[derive(Debug, Clone)]
pub struct ObjectData {
    pub schema: Arc<ObjectSchema>,
    pub rows: Arc<Vec<Arc<Row>>>,
}

/// Every object's definition and rows as they were at one moment; what a query runs over.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub objects: Vec<ObjectData>,
    counts: Vec<usize>,
    prefixes: Vec<&'static str>,
}

impl Snapshot {
    /// The index of `name` (case-insensitive) among the objects.
    pub fn object_index(&self, name: &str) -> Option<usize> {
        self.objects
            .iter()
            .position(|o| o.schema.name.eq_ignore_ascii_case(name))
    }

    /// The value of field `field` of `row` in object `object`.
    pub fn value(&self, object: usize, field: usize, row: &Row) -> Value {
        let ctx = GenCtx {
            object: self.objects[object].schema.name,
            prefix: self.prefixes[object],
            counts: &self.counts,
            prefixes: &self.prefixes,
        };
        values::value_of(&ctx, &self.objects[object].schema.fields, field, row)
    }
}

/// Every object's describe and rows. Rows are shared snapshots (`Arc`), so a query result
/// taken before a modification keeps seeing the old rows.
pub struct Org {
    /// The Run-As user's zone, used by `convertTimezone()`.
    pub user_time_zone: chrono_tz::Tz,
    snapshot: Snapshot,
}

/// Names in describeGlobal that cannot be queried, so clients exercise their filters:
/// (name, label, key prefix, queryable, replicateable).
const SPECIAL_OBJECTS: &[(&str, &str, &str, bool)] = &[
    ("AccountChangeEvent", "Account Change Event", "", false),
    ("Invoice_Paid__e", "Invoice Paid", "e00", false),
    ("AggregateResult", "Aggregate Result", "", false),
    ("ActivityHistory", "Activity History", "", false),
    ("Legacy_Order__x", "Legacy Order", "x00", false),
];

/// Days of 2025 with no rows for any object: US holidays.
const HOLIDAYS: &[(u32, u32)] = &[(1, 1), (5, 26), (7, 4), (9, 1), (11, 27), (12, 25)];

/// The bulk update: `Case` rows on this day, most sharing one `LastModifiedDate` second.
pub const HEAVY_DAY: (u32, u32) = (9, 17);
/// Rows in the bulk update per unit of scale.
pub const HEAVY_ROWS: u32 = 30_000;
const HEAVY_SECOND: u32 = 16 * 3600;

/// UTC times (month, day, h, m) inside the US DST changes of 2025: New York's skipped hour
/// (07:00–08:00Z on 03-09) and repeated hour (05:00–07:00Z on 11-02), Los Angeles' likewise.
const DST_ROWS: &[(u32, u32, u32, u32)] = &[
    (3, 9, 6, 59),
    (3, 9, 7, 0),
    (3, 9, 7, 30),
    (3, 9, 10, 0),
    (3, 9, 10, 45),
    (11, 2, 5, 0),
    (11, 2, 5, 30),
    (11, 2, 6, 15),
    (11, 2, 6, 59),
    (11, 2, 8, 30),
    (11, 2, 9, 30),
];

const DAY_MS: i64 = 86_400_000;

impl Org {
    /// The same `seed` and `scale` always give the same org; `scale` multiplies row counts.
    pub fn generate(seed: u64, scale: u32) -> Org {
        let schemas = objects::all();
        let objects: Vec<ObjectData> = schemas
            .into_iter()
            .enumerate()
            .map(|(i, schema)| ObjectData {
                rows: Arc::new(
                    generate_rows(seed, i, scale)
                        .into_iter()
                        .map(Arc::new)
                        .collect(),
                ),
                schema: Arc::new(schema),
            })
            .collect();
        let counts = objects.iter().map(|o| o.rows.len()).collect();
        let prefixes = objects.iter().map(|o| o.schema.key_prefix).collect();
        Org {
            user_time_zone: chrono_tz::America::Los_Angeles,
            snapshot: Snapshot {
                objects,
                counts,
                prefixes,
            },
        }
    }

    /// The rows as they are now; later edits do not change it.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.clone()
    }

    /// The queryable objects' API names, in a fixed order.
    pub fn object_names(&self) -> Vec<&'static str> {
        self.snapshot
            .objects
            .iter()
            .map(|o| o.schema.name)
            .collect()
    }

    /// The spelling of a describeGlobal entry that cannot be a `FROM` (`AggregateResult`,
    /// change events, platform events), if `name` is one.
    pub fn unqueryable(&self, name: &str) -> Option<&'static str> {
        SPECIAL_OBJECTS
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(name))
            .map(|(n, ..)| *n)
    }

    /// Rows of `object` (case-insensitive), deleted ones only if `include_deleted`.
    pub fn row_count(&self, object: &str, include_deleted: bool) -> Option<usize> {
        let i = self.snapshot.object_index(object)?;
        let rows = &self.snapshot.objects[i].rows;
        Some(
            rows.iter()
                .filter(|r| include_deleted || !r.deleted)
                .count(),
        )
    }

    /// The describeGlobal body (salesforce-api.md §3.1).
    pub fn describe_global(&self, api_version: &str) -> Json {
        let v = api_version.trim_start_matches('v');
        let entry = |name: &str,
                     label: &str,
                     prefix: &str,
                     custom: bool,
                     queryable: bool,
                     replicateable: bool| {
            let base = format!("/services/data/v{v}/sobjects/{name}");
            json!({
                "name": name, "label": label,
                "keyPrefix": if prefix.is_empty() { Json::Null } else { json!(prefix) },
                "custom": custom, "queryable": queryable, "replicateable": replicateable,
                "retrieveable": queryable, "searchable": replicateable,
                "deprecatedAndHidden": false, "customSetting": false,
                "urls": {"sobject": base, "describe": format!("{base}/describe"),
                         "rowTemplate": format!("{base}/{{ID}}")},
            })
        };
        let mut sobjects: Vec<Json> = self
            .snapshot
            .objects
            .iter()
            .map(|o| {
                let s = &o.schema;
                let tracked = s.field_index("SystemModstamp").is_some();
                entry(s.name, s.label, s.key_prefix, s.custom, true, tracked)
            })
            .collect();
        for (name, label, prefix, queryable) in SPECIAL_OBJECTS {
            sobjects.push(entry(
                name,
                label,
                prefix,
                name.contains("__"),
                *queryable,
                false,
            ));
        }
        sobjects.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects})
    }

    /// The sObject describe body, or `None` for an unknown object (case-insensitive name).
    pub fn describe(&self, object: &str, api_version: &str) -> Option<Json> {
        let v = api_version.trim_start_matches('v');
        if let Some(i) = self.snapshot.object_index(object) {
            return Some(self.snapshot.objects[i].schema.describe(v));
        }
        let (name, label, prefix, _) = SPECIAL_OBJECTS
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(object))?;
        let base = format!("/services/data/v{v}/sobjects/{name}");
        Some(json!({
            "name": name, "label": label, "keyPrefix": prefix, "custom": name.contains("__"),
            "queryable": false, "replicateable": false, "retrieveable": false,
            "fields": [], "childRelationships": [], "recordTypeInfos": [],
            "urls": {"sobject": base, "describe": format!("{base}/describe"),
                     "rowTemplate": format!("{base}/{{ID}}")},
        }))
    }

    /// Hides `field` of `object` from the Run-As user, as field-level security taken away or a
    /// deleted field does: describe leaves it out, `FIELDS()` skips it, and SOQL that names it
    /// is `INVALID_FIELD` (salesforce-api.md §5). Its values are kept for [`Org::show_field`].
    ///
    /// # Errors
    /// An unknown object or field, or `Id`.
    pub fn hide_field(&mut self, object: &str, field: &str) -> Result<(), String> {
        self.schema_mut(object)?.set_hidden(field, true)
    }

    /// Shows a hidden field again, with the values it had.
    ///
    /// # Errors
    /// An unknown object or field.
    pub fn show_field(&mut self, object: &str, field: &str) -> Result<(), String> {
        self.schema_mut(object)?.set_hidden(field, false)
    }

    /// Adds a field to `object` (or redefines the field of that name, hidden or not, e.g. with
    /// another type); every row, old and new, has a value for it (or a null).
    ///
    /// # Errors
    /// An unknown object, or a spec [`ObjectSchema::define`] refuses.
    pub fn add_field(&mut self, object: &str, spec: &FieldSpec) -> Result<(), String> {
        self.schema_mut(object)?.define(spec).map(|_| ())
    }

    /// A copy of `object`'s schema to change; snapshots taken before keep the old one.
    fn schema_mut(&mut self, object: &str) -> Result<&mut ObjectSchema, String> {
        let i = self
            .snapshot
            .object_index(object)
            .ok_or_else(|| format!("the org has no object `{object}`"))?;
        Ok(Arc::make_mut(&mut self.snapshot.objects[i].schema))
    }

    /// Changes `count` rows (new values, cursor fields moved to `now`); returns how many.
    ///
    /// Rows are drawn from every object with `LastModifiedDate` (not `LoginHistory`, whose
    /// rows are immutable), never deleted ones; the same row may be edited twice.
    pub fn modify_rows(&mut self, count: usize, now: DateTime<Utc>, seed: u64) -> usize {
        let now_ms = now.timestamp() * 1000;
        let mut rng = fastrand::Rng::with_seed(mix(seed ^ 0x6d0d));
        let editable: Vec<usize> = (0..self.snapshot.objects.len())
            .filter(|&i| i != LOGIN_HISTORY && !self.snapshot.objects[i].rows.is_empty())
            .collect();
        if editable.is_empty() {
            return 0;
        }
        let mut done = 0;
        for _ in 0..count {
            let object = editable[rng.usize(..editable.len())];
            let rows = Arc::make_mut(&mut self.snapshot.objects[object].rows);
            let Some(at) = (0..8)
                .map(|_| rng.usize(..rows.len()))
                .find(|&i| !rows[i].deleted)
            else {
                continue;
            };
            let old = &rows[at];
            rows[at] = Arc::new(Row {
                version: old.version + 1,
                modified: now_ms.max(old.modified),
                modstamp: now_ms.max(old.modstamp),
                ..(**old).clone()
            });
            done += 1;
        }
        done
    }
}

/// How busy a day is relative to a plain weekday; 0 for a day with no rows.
fn day_weight(object: usize, date: NaiveDate) -> f64 {
    let (m, d) = (date.month(), date.day());
    let doy = date.ordinal() as usize;
    let object_quiet = [33 + 5 * object, 200 + 11 * object];
    if HOLIDAYS.contains(&(m, d)) || object_quiet.contains(&doy) {
        return 0.0;
    }
    let base = match date.weekday() {
        Weekday::Sat | Weekday::Sun => 0.15,
        _ => 1.0,
    };
    if m == 6 { base * 1.6 } else { base }
}

fn midnight_ms(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0)
        .expect("valid")
        .and_utc()
        .timestamp_millis()
}

/// A time of day in whole seconds, mostly in US business hours (13:00–24:00 UTC).
fn time_of_day(rng: &mut fastrand::Rng) -> i64 {
    let secs = if rng.u8(..100) < 65 {
        13 * 3600 + rng.i64(0..11 * 3600)
    } else {
        rng.i64(0..86_400)
    };
    secs * 1000
}

/// One object's rows, in `Id` order.
fn generate_rows(seed: u64, object: usize, scale: u32) -> Vec<Row> {
    let mut rng = fastrand::Rng::with_seed(mix(seed ^ mix(object as u64 + 1)));
    let days: Vec<NaiveDate> = NaiveDate::from_ymd_opt(2025, 1, 1)
        .expect("valid")
        .iter_days()
        .take_while(|d| d.year() == 2025)
        .collect();
    let total_weight: f64 = days.iter().map(|d| day_weight(object, *d)).sum();
    let per_weight = f64::from(objects::YEARLY_ROWS[object]) * f64::from(scale) / total_weight;
    // (LastModifiedDate, part of the bulk update)
    let mut stamps: Vec<(i64, bool)> = Vec::new();
    for date in &days {
        let w = day_weight(object, *date);
        if w == 0.0 {
            continue;
        }
        let expected = per_weight * w * (0.75 + 0.5 * rng.f64());
        let n = expected.round() as usize;
        let day = midnight_ms(*date);
        for k in 0..n {
            let at_midnight = k == 0 && rng.u8(..100) < 30;
            let at = if at_midnight {
                0
            } else {
                time_of_day(&mut rng)
            };
            stamps.push((day + at, false));
        }
    }
    if scale > 0 {
        for (m, d, h, min) in DST_ROWS {
            let date = NaiveDate::from_ymd_opt(2025, *m, *d).expect("valid");
            stamps.push((
                midnight_ms(date) + i64::from(h * 3600 + min * 60) * 1000,
                false,
            ));
        }
    }
    if object == CASE {
        let date = NaiveDate::from_ymd_opt(2025, HEAVY_DAY.0, HEAVY_DAY.1).expect("valid");
        let day = midnight_ms(date);
        for _ in 0..HEAVY_ROWS * scale {
            let same_second = rng.u8(..100) < 80;
            let at = if same_second {
                i64::from(HEAVY_SECOND) * 1000
            } else {
                time_of_day(&mut rng)
            };
            stamps.push((day + at, true));
        }
    }
    let mut rows: Vec<Row> = stamps
        .into_iter()
        .map(|(modified, bulk)| new_row(&mut rng, object, modified, bulk))
        .collect();
    rows.sort_by_key(|r| (r.created, r.modified, r.key));
    for (seq, row) in rows.iter_mut().enumerate() {
        row.seq = seq as u64;
    }
    rows
}

fn new_row(rng: &mut fastrand::Rng, object: usize, modified: i64, bulk: bool) -> Row {
    let key = rng.u64(..);
    if object == LOGIN_HISTORY {
        return Row {
            seq: 0,
            key,
            version: 0,
            created: modified,
            modified,
            modstamp: modified,
            deleted: false,
        };
    }
    let created = if rng.u8(..100) < 40 {
        modified
    } else {
        modified - rng.i64(0..120 * DAY_MS) / 1000 * 1000
    };
    let heavy = bulk || modified.rem_euclid(DAY_MS) == i64::from(HEAVY_SECOND) * 1000;
    let modstamp = if !heavy && rng.u8(..100) < 10 {
        modified + rng.i64(1..600) * 1000
    } else {
        modified
    };
    Row {
        seq: 0,
        key,
        version: 0,
        created,
        modified,
        modstamp,
        // The bulk update touched live rows only.
        deleted: !heavy && rng.u8(..100) < 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// One field's entry in a describe answer.
    fn describe_field(describe: &serde_json::Value, name: &str) -> serde_json::Value {
        describe["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .expect(name)
    }

    fn day_of(ms: i64) -> NaiveDate {
        DateTime::from_timestamp_millis(ms)
            .expect("valid")
            .date_naive()
    }

    fn ymd(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, m, d).expect("valid")
    }

    fn per_day(org: &Org, object: usize) -> BTreeMap<NaiveDate, usize> {
        let mut days = BTreeMap::new();
        for r in org.snapshot.objects[object].rows.iter() {
            *days.entry(day_of(r.modified)).or_default() += 1;
        }
        days
    }

    #[test]
    fn the_same_seed_gives_the_same_rows_and_another_seed_does_not() {
        let (a, b, c) = (
            Org::generate(7, 1),
            Org::generate(7, 1),
            Org::generate(8, 1),
        );
        for i in 0..a.snapshot.objects.len() {
            assert_eq!(a.snapshot.objects[i].rows, b.snapshot.objects[i].rows);
            let row = &a.snapshot.objects[i].rows[10];
            for f in 0..a.snapshot.objects[i].schema.fields.len() {
                assert_eq!(a.snapshot.value(i, f, row), b.snapshot.value(i, f, row));
            }
        }
        assert_ne!(a.snapshot.objects[0].rows, c.snapshot.objects[0].rows);
    }

    #[test]
    fn scale_one_holds_about_a_hundred_thousand_rows_with_a_busy_june() {
        let org = Org::generate(42, 1);
        let total: usize = org.snapshot.objects.iter().map(|o| o.rows.len()).sum();
        assert!((100_000..=150_000).contains(&total), "{total}");
        for (i, o) in org.snapshot.objects.iter().enumerate() {
            let june: usize = per_day(&org, i)
                .range(ymd(6, 1)..ymd(7, 1))
                .map(|(_, n)| n)
                .sum();
            assert!(june >= 1_000, "{} June {june}", o.schema.name);
        }
    }

    #[test]
    fn the_heavy_day_holds_thirty_thousand_cases_mostly_in_one_second() {
        let org = Org::generate(42, 1);
        let days = per_day(&org, CASE);
        assert!(days[&ymd(9, 17)] >= 30_000);
        let mut by_stamp: BTreeMap<i64, usize> = BTreeMap::new();
        for r in org.snapshot.objects[CASE].rows.iter() {
            *by_stamp.entry(r.modified).or_default() += 1;
        }
        assert!(by_stamp.values().max().copied().unwrap_or(0) >= 20_000);
    }

    #[test]
    fn every_object_has_empty_days_deleted_midnight_and_dst_rows() {
        let org = Org::generate(42, 1);
        for (i, o) in org.snapshot.objects.iter().enumerate() {
            let days = per_day(&org, i);
            assert!(!days.contains_key(&ymd(12, 25)), "{}", o.schema.name);
            assert!(!days.contains_key(&ymd(7, 4)), "{}", o.schema.name);
            let midnights = o.rows.iter().filter(|r| r.modified % DAY_MS == 0).count();
            assert!(midnights > 10, "{} midnights {midnights}", o.schema.name);
            let in_ny_gap = |r: &&Arc<Row>| {
                let t = DateTime::from_timestamp_millis(r.modified).expect("valid");
                t >= "2025-03-09T07:00:00Z"
                    .parse::<DateTime<Utc>>()
                    .expect("valid")
                    && t < "2025-03-09T08:00:00Z"
                        .parse::<DateTime<Utc>>()
                        .expect("valid")
            };
            assert!(o.rows.iter().filter(in_ny_gap).count() >= 2);
            assert!(days.contains_key(&ymd(11, 2)));
            let deleted = o.rows.iter().filter(|r| r.deleted).count();
            if i == LOGIN_HISTORY {
                assert_eq!(deleted, 0);
            } else {
                assert!(deleted * 200 > o.rows.len() && deleted * 100 < o.rows.len() * 6);
            }
        }
    }

    #[test]
    fn timestamps_are_ordered_and_ids_follow_creation() {
        let org = Org::generate(42, 1);
        for o in &org.snapshot.objects {
            for w in o.rows.windows(2) {
                assert!(w[0].created <= w[1].created);
                assert_eq!(w[0].seq + 1, w[1].seq);
            }
            for r in o.rows.iter() {
                assert!(r.created <= r.modified && r.modified <= r.modstamp);
                assert_eq!(r.modified % 1000, 0);
            }
        }
    }

    #[test]
    fn login_history_has_login_time_but_no_audit_fields() {
        let org = Org::generate(42, 1);
        let d = org.describe("loginhistory", "62.0").expect("known");
        let names: Vec<&str> = d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"LoginTime"));
        for absent in [
            "LastModifiedDate",
            "SystemModstamp",
            "CreatedDate",
            "IsDeleted",
        ] {
            assert!(!names.contains(&absent), "{absent}");
        }
    }

    #[test]
    fn describe_reports_compounds_types_and_sortability() {
        let org = Org::generate(1, 1);
        assert!(org.describe("Nope__c", "62.0").is_none());
        let d = org.describe("account", "62.0").expect("known");
        assert_eq!(d["name"], "Account");
        assert_eq!(
            d["urls"]["describe"],
            "/services/data/v62.0/sobjects/Account/describe"
        );
        let field = |n: &str| describe_field(&d, n);
        assert_eq!(field("BillingCity")["compoundFieldName"], "BillingAddress");
        assert_eq!(field("BillingAddress")["type"], "address");
        assert_eq!(field("AnnualRevenue")["soapType"], "xsd:double");
        assert_eq!(field("AnnualRevenue")["precision"], 18);
        assert_eq!(field("Description")["sortable"], false);
        assert_eq!(field("Name")["sortable"], true);
        assert_eq!(field("OwnerId")["referenceTo"], json!(["User"]));
        assert_eq!(field("OwnerId")["relationshipName"], "Owner");
        let inv = org.describe("Invoice__c", "v62.0").expect("known");
        let types: Vec<&str> = inv["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["type"].as_str().unwrap())
            .collect();
        for t in [
            "currency",
            "percent",
            "double",
            "int",
            "long",
            "date",
            "datetime",
            "time",
            "boolean",
            "multipicklist",
            "picklist",
            "email",
            "phone",
            "url",
            "textarea",
            "location",
            "address",
            "reference",
            "encryptedstring",
        ] {
            assert!(types.contains(&t), "{t}");
        }
        let inv_field = |n: &str| describe_field(&inv, n);
        for part in [
            "Street",
            "City",
            "StateCode",
            "PostalCode",
            "CountryCode",
            "Latitude",
            "Longitude",
            "GeocodeAccuracy",
        ] {
            let f = inv_field(&format!("Billing_Address__{part}__s"));
            assert_eq!(f["compoundFieldName"], "Billing_Address__c", "{part}");
            assert_eq!(f["custom"], true, "{part}");
        }
        assert_eq!(inv_field("Billing_Address__c")["type"], "address");
        assert_eq!(inv_field("Billing_Address__c")["custom"], true);
        let country = inv_field("Billing_Address__CountryCode__s");
        assert_eq!(country["type"], "picklist");
        assert!(
            country["picklistValues"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["value"] == "JP")
        );
        assert_eq!(
            field("BillingCountry")["type"],
            "string",
            "a standard one holds names"
        );
        let global = org.describe_global("62.0");
        let names: Vec<&str> = global["sobjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"AccountChangeEvent") && names.contains(&"Invoice__c"));
        let agg = global["sobjects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "AggregateResult")
            .unwrap();
        assert_eq!(agg["queryable"], false);
    }

    #[test]
    fn name_parts_name_their_compound_and_ids_are_18_bytes() {
        let org = Org::generate(1, 1);
        for object in ["Contact", "Lead"] {
            let d = org.describe(object, "62.0").expect("known");
            let field = |n: &str| describe_field(&d, n);
            assert_eq!(field("FirstName")["compoundFieldName"], "Name", "{object}");
            assert_eq!(field("LastName")["compoundFieldName"], "Name", "{object}");
            assert_eq!(field("Name")["compoundFieldName"], Json::Null, "{object}");
            assert_eq!(field("Name")["type"], "string", "{object}");
            assert_eq!(field("Id")["byteLength"], 18, "{object}");
            assert_eq!(field("OwnerId")["byteLength"], 18, "{object}");
            assert_eq!(field("Email")["compoundFieldName"], Json::Null, "{object}");
        }
    }

    #[test]
    fn modify_rows_moves_stamps_and_leaves_old_snapshots_alone() {
        let mut org = Org::generate(42, 1);
        let before = org.snapshot();
        let now: DateTime<Utc> = "2026-01-05T10:00:00.123Z".parse().unwrap();
        assert_eq!(org.modify_rows(50, now, 9), 50);
        let after = org.snapshot();
        let mut changed = 0;
        for (o, (a, b)) in before.objects.iter().zip(&after.objects).enumerate() {
            for (x, y) in a.rows.iter().zip(b.rows.iter()) {
                if x != y {
                    changed += 1;
                    assert_eq!(y.modified, now.timestamp() * 1000);
                    assert_eq!(x.seq, y.seq);
                    assert_ne!(o, LOGIN_HISTORY);
                }
            }
        }
        assert!(changed > 0 && changed <= 50);
        assert!(
            before
                .objects
                .iter()
                .flat_map(|o| o.rows.iter())
                .all(|r| r.version == 0)
        );
    }

    #[test]
    #[ignore = "prints row counts"]
    fn print_counts() {
        let org = Org::generate(42, 1);
        for o in &org.snapshot.objects {
            let del = o.rows.iter().filter(|r| r.deleted).count();
            println!("{} {} ({} deleted)", o.schema.name, o.rows.len(), del);
        }
    }
}
