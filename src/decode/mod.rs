//! Salesforce query pages → typed Arrow record batches.
//!
//! Owns reading a REST query page (`records`, `totalSize`, `done`, `nextRecordsUrl`,
//! salesforce-api.md §4.2), or a Bulk API 2.0 results page (CSV, §7.1), into one
//! `RecordBatch` of the schema `schema::arrow_schema` gives the field list. It does not own the type mapping (`schema`), fetching (`fetch`) or files
//! (`write`).
//!
//! Layout: [`columns`] holds typed column builders that take values typed or as text;
//! `json` is the page reader that feeds them; `csv` reads Bulk API 2.0 results pages into the
//! same builders; `values` parses one value's text.
//!
//! Invariants: a page decodes completely or not at all; a body cut off anywhere is
//! [`DecodeError::Truncated`] (transient: fetch the page again); every error names the record,
//! the field and the offending text. Keys match the describe spelling exactly, else ASCII
//! case-insensitively; unknown keys (`attributes`, relationship objects) are ignored; a
//! missing key or JSON `null` is a null.

pub mod columns;
mod csv;
mod json;
pub mod schema;
pub mod values;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::error::{ExitKind, UserFacing};
use crate::salesforce::describe::Field;
use columns::ColumnBuilder;
use values::ValueError;

/// One decoded query page.
#[derive(Debug)]
pub struct Page {
    pub batch: RecordBatch,
    pub total_size: u64,
    pub done: bool,
    pub next_records_url: Option<String>,
}

/// Why a page could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body ended before the JSON did (a cut-off transfer): fetch the page again.
    #[error("the page body is cut off after {bytes} bytes")]
    Truncated { bytes: usize },
    /// A field whose Arrow type no builder supports, or a field listed twice.
    #[error("unsupported field `{field}`: {reason}")]
    Unsupported { field: String, reason: String },
    /// The body is not a query result page (broken JSON, missing `done`/`records`).
    #[error("malformed page: {0}")]
    Malformed(String),
    /// A value that does not fit its field's type.
    #[error("record {record}, field `{field}`: `{text}` {reason}")]
    Value {
        record: usize,
        field: String,
        text: String,
        reason: ValueError,
    },
}

impl UserFacing for DecodeError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Failure
    }

    fn hint(&self) -> Option<String> {
        match self {
            DecodeError::Truncated { .. } => {
                Some("the connection kept cutting pages off; run the same command again".into())
            }
            DecodeError::Value { field, .. } => Some(format!(
                "the org sent a value its describe of `{field}` does not allow; \
                 select the object's fields without it (--fields OBJECT=LIST) and report it"
            )),
            DecodeError::Malformed(_) | DecodeError::Unsupported { .. } => None,
        }
    }
}

impl DecodeError {
    /// True for a cut-off body: the same page fetched again may decode.
    pub fn is_transient(&self) -> bool {
        matches!(self, DecodeError::Truncated { .. })
    }
}

/// The most records a REST query page holds (salesforce-api.md §4.3): the row capacity
/// reserved up front, so a full page never reallocates its builders.
const MAX_PAGE_RECORDS: usize = 2000;

/// Decodes pages of one field list. `Send + Sync`: shared by a chunk's tasks behind an `Arc`.
#[derive(Debug)]
pub struct PageDecoder {
    schema: SchemaRef,
    /// API names as bytes, in column order: keys are compared without converting them.
    names: Vec<Box<[u8]>>,
}

impl PageDecoder {
    /// A decoder of pages that select `fields`, in that order.
    ///
    /// # Errors
    /// [`DecodeError::Unsupported`] for a field listed twice (case-insensitively) or whose
    /// Arrow type has no builder.
    pub fn new(fields: &[Field]) -> Result<Self, DecodeError> {
        let schema = crate::decode::schema::arrow_schema(fields);
        for (i, f) in fields.iter().enumerate() {
            if fields[..i]
                .iter()
                .any(|g| g.name.eq_ignore_ascii_case(&f.name))
            {
                return Err(DecodeError::Unsupported {
                    field: f.name.clone(),
                    reason: "the field is listed twice".into(),
                });
            }
            if ColumnBuilder::new(&crate::decode::schema::arrow_type(f), 0, 0).is_none() {
                return Err(DecodeError::Unsupported {
                    field: f.name.clone(),
                    reason: "no column builder for its Arrow type".into(),
                });
            }
        }
        Ok(Self {
            schema,
            names: fields.iter().map(|f| f.name.as_bytes().into()).collect(),
        })
    }

    /// The schema of every batch this decoder returns.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Decodes one page body.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] for a cut-off body (transient), [`DecodeError::Malformed`]
    /// for anything that is not a query page, [`DecodeError::Value`] for a value that does
    /// not fit its field.
    pub fn decode(&self, body: &[u8]) -> Result<Page, DecodeError> {
        let width = self.names.len().max(1);
        let rows = (body.len() / (width * 24 + 64)).clamp(16, MAX_PAGE_RECORDS);
        let text_bytes = body.len() / width;
        let mut columns: Vec<ColumnBuilder> = self
            .schema
            .fields()
            .iter()
            .map(|f| {
                ColumnBuilder::new(f.data_type(), rows, text_bytes)
                    .expect("checked in PageDecoder::new")
            })
            .collect();
        let envelope = json::Reader::new(body)?.read_page(&self.names, &mut columns)?;
        let arrays = columns.iter_mut().map(ColumnBuilder::finish).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(envelope.records));
        let batch = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .expect("builders follow the schema and hold one value per record");
        Ok(Page {
            batch,
            total_size: envelope.total_size,
            done: envelope.done,
            next_records_url: envelope.next_records_url,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::salesforce::describe::FieldType;
    use arrow::array::{
        Array, AsArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array,
        Int64Array, ListArray, StringArray, StructArray, Time32MillisecondArray,
        TimestampMillisecondArray,
    };

    pub(crate) fn field(name: &str, field_type: FieldType) -> Field {
        Field {
            name: name.into(),
            field_type,
            length: 255,
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

    /// A page of `records` (JSON object bodies without braces), as Salesforce sends it.
    pub(crate) fn page(records: &[&str]) -> String {
        let recs: Vec<String> = records
            .iter()
            .map(|r| {
                format!(
                    r#"{{"attributes":{{"type":"Invoice__c","url":"/services/data/v62.0/sobjects/Invoice__c/a01"}},{r}}}"#
                )
            })
            .collect();
        format!(
            r#"{{"totalSize":{},"done":true,"records":[{}]}}"#,
            records.len(),
            recs.join(",")
        )
    }

    fn decode_one(f: Field, json_value: &str) -> Result<arrow::array::ArrayRef, DecodeError> {
        let name = f.name.clone();
        let d = PageDecoder::new(&[f])?;
        let body = page(&[&format!(r#""{name}":{json_value}"#)]);
        Ok(d.decode(body.as_bytes())?.batch.column(0).clone())
    }

    fn value_err(f: Field, json_value: &str) -> String {
        match decode_one(f, json_value) {
            Err(e @ DecodeError::Value { .. }) => e.to_string(),
            other => panic!("expected a value error for {json_value}, got {other:?}"),
        }
    }

    #[test]
    fn envelope_fields_and_key_order() {
        let d = PageDecoder::new(&[field("Id", FieldType::Id)]).unwrap();
        let bodies = [
            r#"{"totalSize":5321,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/01g-2000","records":[{"Id":"a"}]}"#,
            r#"{"records":[{"Id":"a"}],"nextRecordsUrl":"/services/data/v62.0/query/01g-2000","done":false,"totalSize":5321}"#,
            " {\n \"done\" : false , \"records\" : [ { \"Id\" : \"a\" } ] ,\"totalSize\":5321,\"nextRecordsUrl\":\"/services/data/v62.0/query/01g-2000\"}\n",
        ];
        for body in bodies {
            let p = d.decode(body.as_bytes()).unwrap();
            assert_eq!(p.total_size, 5321);
            assert!(!p.done);
            assert_eq!(
                p.next_records_url.as_deref(),
                Some("/services/data/v62.0/query/01g-2000")
            );
            assert_eq!(p.batch.num_rows(), 1);
        }
        let empty = d
            .decode(br#"{"totalSize":0,"done":true,"records":[]}"#)
            .unwrap();
        assert_eq!(empty.batch.num_rows(), 0);
        assert!(empty.done && empty.next_records_url.is_none());
    }

    #[test]
    fn record_keys_match_by_name_in_any_order_and_missing_is_null() {
        let d = PageDecoder::new(&[
            field("Id", FieldType::Id),
            field("Name", FieldType::String),
            field("NumberOfEmployees", FieldType::Int),
        ])
        .unwrap();
        let body = page(&[
            r#""Id":"1","Name":"A","NumberOfEmployees":3"#,
            r#""NumberOfEmployees":4,"Owner":{"attributes":{"type":"User"},"Name":"Ada"},"id":"2""#,
            r#""Name":null"#,
        ]);
        let b = d.decode(body.as_bytes()).unwrap().batch;
        let ids = b.column(0).as_string::<i32>();
        assert_eq!(ids.value(0), "1");
        assert_eq!(ids.value(1), "2", "case-insensitive fallback");
        assert!(ids.is_null(2));
        let names = b.column(1).as_string::<i32>();
        assert!(names.is_null(1) && names.is_null(2));
        let n = b.column(2).as_primitive::<arrow::datatypes::Int32Type>();
        assert_eq!((n.value(0), n.value(1)), (3, 4));
        assert!(n.is_null(2));
    }

    #[test]
    fn text_types_with_every_escape() {
        let col = decode_one(
            field("Description", FieldType::Textarea),
            r#""line 1\nline \"2\"\t\\ \/ \u00e9 \uD83D\uDE00 \b\f\r ü""#,
        )
        .unwrap();
        let s = col.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(s.value(0), "line 1\nline \"2\"\t\\ / é 😀 \u{8}\u{c}\r ü");
        let lone = decode_one(field("S", FieldType::String), r#""a\uD83Db""#).unwrap();
        assert_eq!(lone.as_string::<i32>().value(0), "a\u{FFFD}b");
        let any = decode_one(field("NewValue", FieldType::AnyType), "12.50").unwrap();
        assert_eq!(any.as_string::<i32>().value(0), "12.50");
        let json = decode_one(field("Metadata", FieldType::Json), r#"{"a":[1,"}"]}"#).unwrap();
        assert_eq!(json.as_string::<i32>().value(0), r#"{"a":[1,"}"]}"#);
        let flag = decode_one(field("OldValue", FieldType::AnyType), "true").unwrap();
        assert_eq!(flag.as_string::<i32>().value(0), "true");
    }

    #[test]
    fn scalar_types() {
        let b = decode_one(field("IsDeleted", FieldType::Boolean), "true").unwrap();
        assert!(b.as_any().downcast_ref::<BooleanArray>().unwrap().value(0));
        let i = decode_one(field("N", FieldType::Int), "12.0").unwrap();
        assert_eq!(
            i.as_any().downcast_ref::<Int32Array>().unwrap().value(0),
            12
        );
        let l = decode_one(field("L", FieldType::Long), "-9007199254740993").unwrap();
        assert_eq!(
            l.as_any().downcast_ref::<Int64Array>().unwrap().value(0),
            -9_007_199_254_740_993
        );
        let f = decode_one(field("P", FieldType::Percent), "1.5E7").unwrap();
        assert_eq!(
            f.as_any().downcast_ref::<Float64Array>().unwrap().value(0),
            1.5e7
        );
        let c = decode_one(field("Amount", FieldType::Currency), "-1.5E3").unwrap();
        let c = c.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!((c.value(0), c.precision(), c.scale()), (-150_000, 18, 2));
        let c = decode_one(field("Amount", FieldType::Currency), "-0.5").unwrap();
        assert_eq!(
            c.as_primitive::<arrow::datatypes::Decimal128Type>()
                .value(0),
            -50
        );
        let d = decode_one(field("D", FieldType::Date), r#""2024-03-10""#).unwrap();
        assert_eq!(
            d.as_any().downcast_ref::<Date32Array>().unwrap().value(0),
            19792
        );
        for text in [
            "2024-03-10T07:15:00.000+0000",
            "2024-03-10T07:15:00.000Z",
            "2024-03-10T07:15:00.000+00:00",
            "2024-03-10T02:15:00.000-0500",
        ] {
            let t = decode_one(field("T", FieldType::Datetime), &format!("\"{text}\"")).unwrap();
            let t = t
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .unwrap();
            assert_eq!(t.value(0), 1_710_054_900_000, "{text}");
            assert_eq!(t.timezone(), Some("UTC"));
        }
        let t = decode_one(field("Tm", FieldType::Time), r#""07:15:00.000Z""#).unwrap();
        assert_eq!(
            t.as_any()
                .downcast_ref::<Time32MillisecondArray>()
                .unwrap()
                .value(0),
            26_100_000
        );
    }

    #[test]
    fn multipicklist_is_a_list() {
        let col = decode_one(field("Tags__c", FieldType::Multipicklist), r#""A;B;C""#).unwrap();
        let list = col.as_any().downcast_ref::<ListArray>().unwrap();
        let items = list.value(0);
        let items = items.as_string::<i32>();
        assert_eq!(items.iter().flatten().collect::<Vec<_>>(), ["A", "B", "C"]);
        let empty = decode_one(field("Tags__c", FieldType::Multipicklist), r#""""#).unwrap();
        assert_eq!(empty.as_list::<i32>().value(0).len(), 0);
        let null = decode_one(field("Tags__c", FieldType::Multipicklist), "null").unwrap();
        assert!(null.is_null(0));
    }

    #[test]
    fn address_and_location_structs_with_nulls() {
        let d = PageDecoder::new(&[
            field("BillingAddress", FieldType::Address),
            field("Geo__c", FieldType::Location),
        ])
        .unwrap();
        let body = page(&[
            r#""BillingAddress":{"city":"San Francisco","country":"USA","countryCode":null,"geocodeAccuracy":null,"latitude":37.79,"longitude":-122.39,"postalCode":"94105","state":"CA","stateCode":null,"street":"415 Mission St\nFloor 3"},"Geo__c":{"latitude":1.5,"longitude":null}"#,
            r#""BillingAddress":null,"Geo__c":null"#,
            r#""BillingAddress":{"street":"x","CITY":"y"},"Geo__c":{}"#,
        ]);
        let b = d.decode(body.as_bytes()).unwrap().batch;
        let a = b.column(0).as_any().downcast_ref::<StructArray>().unwrap();
        let city = a.column_by_name("city").unwrap().as_string::<i32>();
        let street = a.column_by_name("street").unwrap().as_string::<i32>();
        let lat = a
            .column_by_name("latitude")
            .unwrap()
            .as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(city.value(0), "San Francisco");
        assert_eq!(street.value(0), "415 Mission St\nFloor 3");
        assert_eq!(lat.value(0), 37.79);
        assert!(a.column_by_name("countryCode").unwrap().is_null(0));
        assert!(a.is_null(1) && city.is_null(1));
        assert!(a.is_valid(2));
        assert_eq!((street.value(2), city.value(2)), ("x", "y"));
        assert!(a.column_by_name("state").unwrap().is_null(2));
        let g = b.column(1).as_any().downcast_ref::<StructArray>().unwrap();
        let glat = g.column(0).as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(glat.value(0), 1.5);
        assert!(g.column(1).is_null(0));
        assert!(g.is_null(1));
        assert!(g.is_valid(2) && g.column(0).is_null(2));
    }

    #[test]
    fn bad_values_name_record_field_and_text() {
        let e = value_err(field("Amount__c", FieldType::Currency), "1.005");
        assert!(
            e.contains("record 0") && e.contains("`Amount__c`") && e.contains("`1.005`"),
            "{e}"
        );
        assert!(e.contains("scale 2"), "{e}");
        let e = value_err(field("N", FieldType::Int), "12.5");
        assert!(e.contains("whole number"), "{e}");
        let e = value_err(field("N", FieldType::Int), "3000000000");
        assert!(e.contains("32-bit"), "{e}");
        let e = value_err(field("D", FieldType::Date), r#""2024-02-30""#);
        assert!(e.contains("2024-02-30") && e.contains("not a date"), "{e}");
        let e = value_err(field("T", FieldType::Datetime), r#""yesterday""#);
        assert!(e.contains("yesterday"), "{e}");
        let e = value_err(field("B", FieldType::Boolean), "1");
        assert!(e.contains("not a boolean"), "{e}");
        let e = value_err(field("N", FieldType::Int), "{}");
        assert!(e.contains("object"), "{e}");
        let e = value_err(
            field("BillingAddress", FieldType::Address),
            r#"{"latitude":"north"}"#,
        );
        assert!(e.contains("BillingAddress.latitude"), "{e}");
    }

    #[test]
    fn broken_pages_are_malformed_not_truncated() {
        let d = PageDecoder::new(&[field("Id", FieldType::Id)]).unwrap();
        for body in [
            r#"[{"message":"Session expired","errorCode":"INVALID_SESSION_ID"}]"#,
            r#"{"totalSize":1,"done":true,"records":[{"Id":"a"}]}x"#,
            r#"{"totalSize":1,"records":[{"Id":"a"}]}"#,
            r#"{"done":true,"records":[{"Id":"a" "Name":1}]}"#,
            r#"{"done":true,"records":[{"Id":"a","Id":"b"}]}"#,
            r#"{"done":tru,"records":[]}"#,
            "{\"done\":true,\"records\":[{\"Id\":\"\\q\"}]}",
        ] {
            match d.decode(body.as_bytes()) {
                Err(e @ DecodeError::Malformed(_)) => assert!(!e.is_transient()),
                other => panic!("{body}: {other:?}"),
            }
        }
        let bad_utf8 = b"{\"done\":true,\"records\":[{\"Id\":\"\xff\"}]}";
        assert!(matches!(d.decode(bad_utf8), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn every_cut_of_a_page_is_truncated() {
        let fields = [
            field("Id", FieldType::Id),
            field("Name", FieldType::String),
            field("Amount__c", FieldType::Currency),
            field("IsActive__c", FieldType::Boolean),
            field("BillingAddress", FieldType::Address),
            field("Tags__c", FieldType::Multipicklist),
        ];
        let d = PageDecoder::new(&fields).unwrap();
        let body = r#"{"totalSize":2,"done":false,"nextRecordsUrl":"/q/01g-2","records":[{"attributes":{"type":"A","url":"/x"},"Id":"001","Name":"é😀 \"q\" \uD83D\uDE00","Amount__c":-1.5E2,"IsActive__c":false,"BillingAddress":{"city":"X","latitude":1.25},"Tags__c":"A;B"},{"Id":"002","Name":null,"Amount__c":12,"IsActive__c":true,"BillingAddress":null,"Tags__c":null}]}"#;
        assert_eq!(d.decode(body.as_bytes()).unwrap().batch.num_rows(), 2);
        for cut in 0..body.len() {
            match d.decode(&body.as_bytes()[..cut]) {
                Err(e @ DecodeError::Truncated { .. }) => assert!(e.is_transient()),
                other => panic!(
                    "cut at {cut} ({:?}): {other:?}",
                    body.get(cut.saturating_sub(10)..cut)
                ),
            }
        }
    }

    #[test]
    fn a_field_listed_twice_is_refused() {
        let e = PageDecoder::new(&[
            field("Name", FieldType::String),
            field("name", FieldType::String),
        ])
        .unwrap_err();
        assert!(matches!(e, DecodeError::Unsupported { .. }), "{e}");
    }
}

#[cfg(test)]
mod proptests {
    use super::tests::{field, page};
    use super::*;
    use crate::salesforce::describe::FieldType;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{
        Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, Time32MillisecondType,
        TimestampMillisecondType,
    };
    use chrono::{DateTime, FixedOffset, NaiveDate};
    use proptest::prelude::*;

    /// One record's values, `None` for null.
    #[derive(Debug, Clone)]
    struct Row {
        text: Option<String>,
        int: Option<i32>,
        long: Option<i64>,
        double: Option<f64>,
        /// Unscaled, scale 2.
        money: Option<(i64, bool)>,
        flag: Option<bool>,
        day: Option<i32>,
        /// Epoch ms and the offset (minutes) it is written with.
        at: Option<(i64, i32)>,
        time: Option<i32>,
        tags: Option<Vec<String>>,
        geo: Option<(Option<f64>, Option<f64>)>,
    }

    fn fields() -> Vec<Field> {
        vec![
            field("Text__c", FieldType::Textarea),
            field("Int__c", FieldType::Int),
            field("Long__c", FieldType::Long),
            field("Double__c", FieldType::Double),
            field("Money__c", FieldType::Currency),
            field("Flag__c", FieldType::Boolean),
            field("Day__c", FieldType::Date),
            field("At__c", FieldType::Datetime),
            field("Time__c", FieldType::Time),
            field("Tags__c", FieldType::Multipicklist),
            field("Geo__c", FieldType::Location),
        ]
    }

    fn finite() -> impl Strategy<Value = f64> {
        any::<f64>().prop_filter("finite", |v| v.is_finite())
    }

    fn row() -> impl Strategy<Value = Row> {
        (
            (
                proptest::option::of(any::<String>()),
                proptest::option::of(any::<i32>()),
                proptest::option::of(any::<i64>()),
                proptest::option::of(finite()),
                proptest::option::of((
                    -10_000_000_000_000_000i64..10_000_000_000_000_000,
                    any::<bool>(),
                )),
                proptest::option::of(any::<bool>()),
            ),
            (
                proptest::option::of(-719_162i32..2_932_896),
                proptest::option::of((
                    -62_135_596_800_000i64..253_402_214_400_000,
                    -14 * 60..14 * 60i32,
                )),
                proptest::option::of(0..86_400_000i32),
                proptest::option::of(proptest::collection::vec("[^;]{1,8}", 0..4)),
                proptest::option::of((
                    proptest::option::of(-90.0..90.0f64),
                    proptest::option::of(-180.0..180.0f64),
                )),
            ),
        )
            .prop_map(
                |((text, int, long, double, money, flag), (day, at, time, tags, geo))| Row {
                    text,
                    int,
                    long,
                    double,
                    money,
                    flag,
                    day,
                    at,
                    time,
                    tags,
                    geo,
                },
            )
    }

    fn opt<T>(v: &Option<T>, f: impl Fn(&T) -> String) -> String {
        v.as_ref().map_or("null".into(), f)
    }

    fn money_text(unscaled: i64, exponent_form: bool) -> String {
        let sign = if unscaled < 0 { "-" } else { "" };
        let digits = unscaled.unsigned_abs().to_string();
        if exponent_form && digits.len() > 1 {
            // d.dddE(n): the digits with the point after the first one.
            let exp = digits.len() as i32 - 1 - 2;
            format!("{sign}{}.{}E{exp}", &digits[..1], &digits[1..])
        } else {
            let padded = format!("{digits:0>3}");
            let (int, frac) = padded.split_at(padded.len() - 2);
            format!("{sign}{int}.{frac}")
        }
    }

    fn datetime_text(ms: i64, offset_minutes: i32) -> String {
        let offset = FixedOffset::east_opt(offset_minutes * 60).unwrap();
        let t = DateTime::from_timestamp_millis(ms)
            .unwrap()
            .with_timezone(&offset);
        t.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
    }

    fn record(r: &Row) -> String {
        let s = |v: &String| serde_json::to_string(v).unwrap();
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        format!(
            r#""Text__c":{},"Int__c":{},"Long__c":{},"Double__c":{},"Money__c":{},"Flag__c":{},"Day__c":{},"At__c":{},"Time__c":{},"Tags__c":{},"Geo__c":{}"#,
            opt(&r.text, s),
            opt(&r.int, i32::to_string),
            opt(&r.long, i64::to_string),
            opt(&r.double, |v| serde_json::to_string(v).unwrap()),
            opt(&r.money, |(m, e)| money_text(*m, *e)),
            opt(&r.flag, bool::to_string),
            opt(&r.day, |d| format!(
                "\"{}\"",
                epoch + chrono::Duration::days(i64::from(*d))
            )),
            opt(&r.at, |(ms, off)| format!(
                "\"{}\"",
                datetime_text(*ms, *off)
            )),
            opt(&r.time, |t| format!(
                "\"{:02}:{:02}:{:02}.{:03}Z\"",
                t / 3_600_000,
                t / 60_000 % 60,
                t / 1000 % 60,
                t % 1000
            )),
            opt(&r.tags, |t| s(&t.join(";"))),
            opt(&r.geo, |(lat, lon)| format!(
                r#"{{"latitude":{},"longitude":{}}}"#,
                opt(lat, f64::to_string),
                opt(lon, f64::to_string)
            )),
        )
    }

    fn check<T: PartialEq + std::fmt::Debug>(
        col: &dyn Array,
        i: usize,
        want: Option<T>,
        got: impl Fn(usize) -> T,
    ) {
        match want {
            None => assert!(col.is_null(i), "row {i} should be null"),
            Some(w) => {
                assert!(col.is_valid(i), "row {i} should be {w:?}");
                assert_eq!(got(i), w, "row {i}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn salesforce_json_decodes_back_to_the_same_values(rows in proptest::collection::vec(row(), 0..20)) {
            let decoder = PageDecoder::new(&fields()).unwrap();
            let records: Vec<String> = rows.iter().map(record).collect();
            let refs: Vec<&str> = records.iter().map(String::as_str).collect();
            let b = decoder.decode(page(&refs).as_bytes()).unwrap().batch;
            prop_assert_eq!(b.num_rows(), rows.len());
            for (i, r) in rows.iter().enumerate() {
                check(b.column(0).as_ref(), i, r.text.clone(), |i| b.column(0).as_string::<i32>().value(i).to_string());
                check(b.column(1).as_ref(), i, r.int, |i| b.column(1).as_primitive::<Int32Type>().value(i));
                check(b.column(2).as_ref(), i, r.long, |i| b.column(2).as_primitive::<Int64Type>().value(i));
                check(b.column(3).as_ref(), i, r.double, |i| b.column(3).as_primitive::<Float64Type>().value(i));
                check(b.column(4).as_ref(), i, r.money.map(|m| i128::from(m.0)), |i| b.column(4).as_primitive::<Decimal128Type>().value(i));
                check(b.column(5).as_ref(), i, r.flag, |i| b.column(5).as_boolean().value(i));
                check(b.column(6).as_ref(), i, r.day, |i| b.column(6).as_primitive::<Date32Type>().value(i));
                check(b.column(7).as_ref(), i, r.at.map(|a| a.0), |i| b.column(7).as_primitive::<TimestampMillisecondType>().value(i));
                check(b.column(8).as_ref(), i, r.time, |i| b.column(8).as_primitive::<Time32MillisecondType>().value(i));
                check(b.column(9).as_ref(), i, r.tags.clone(), |i| {
                    let l = b.column(9).as_list::<i32>().value(i);
                    l.as_string::<i32>().iter().map(|s| s.unwrap().to_string()).collect()
                });
                let geo = b.column(10).as_struct();
                check(geo, i, r.geo.map(|g| g.0), |i| {
                    let c = geo.column(0);
                    c.is_valid(i).then(|| c.as_primitive::<Float64Type>().value(i))
                });
                check(geo, i, r.geo.map(|g| g.1), |i| {
                    let c = geo.column(1);
                    c.is_valid(i).then(|| c.as_primitive::<Float64Type>().value(i))
                });
            }
        }
    }
}
