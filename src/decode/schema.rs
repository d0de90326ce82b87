//! Describe field types → Arrow types: the one place the output's column types are decided.
//!
//! Owns the mapping of spec "Output" from a Salesforce `FieldType` (plus the describe's
//! precision and scale) to an Arrow `DataType`, the schema of a field list, the readable type
//! names `objects NAME` prints and the manifest records (read back by [`parse_type_name`]), and
//! which type changes of a field between runs are safe ([`widen`], spec "Schema drift"). It
//! does not own turning values into arrays (`decode`).
//!
//! Invariants: every column is nullable and named by the field's API name, in the order given;
//! money (`currency`) is always a `Decimal128` whose precision is in `1..=38` and whose scale
//! is in `0..=precision`; compound `address`/`location` structs always have the same children
//! in the same order ([`ADDRESS_COMPONENTS`], [`LOCATION_COMPONENTS`]).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field as ArrowField, Fields, Schema, SchemaRef, TimeUnit};

use crate::salesforce::describe::{Field, FieldType};

/// The widest decimal Arrow's `Decimal128` holds; also used when describe gives no precision.
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// Time zone of every `datetime` column: Salesforce sends UTC instants.
pub const UTC: &str = "UTC";

/// The name of a `multipicklist` list's item field (Arrow's default, what readers expect).
pub const LIST_ITEM: &str = "item";

/// The components of an `address` struct, in column order, and whether each is a number.
pub const ADDRESS_COMPONENTS: [(&str, bool); 10] = [
    ("city", false),
    ("country", false),
    ("countryCode", false),
    ("geocodeAccuracy", false),
    ("latitude", true),
    ("longitude", true),
    ("postalCode", false),
    ("state", false),
    ("stateCode", false),
    ("street", false),
];

/// The components of a `location` (geolocation) struct, in column order.
pub const LOCATION_COMPONENTS: [&str; 2] = ["latitude", "longitude"];

/// The Arrow type a field is written as (spec "Output").
pub fn arrow_type(field: &Field) -> DataType {
    match field.field_type {
        FieldType::Id
        | FieldType::Reference
        | FieldType::String
        | FieldType::Textarea
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url
        | FieldType::Picklist
        | FieldType::Combobox
        | FieldType::EncryptedString
        | FieldType::DataCategoryGroupReference
        | FieldType::Base64
        | FieldType::AnyType
        | FieldType::Complexvalue
        | FieldType::Json
        | FieldType::Unknown => DataType::Utf8,
        FieldType::Boolean => DataType::Boolean,
        FieldType::Int => DataType::Int32,
        FieldType::Long => DataType::Int64,
        FieldType::Double | FieldType::Percent => DataType::Float64,
        FieldType::Currency => {
            let (precision, scale) = decimal_precision_scale(field);
            DataType::Decimal128(precision, scale)
        }
        FieldType::Date => DataType::Date32,
        FieldType::Datetime => DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into())),
        FieldType::Time => DataType::Time32(TimeUnit::Millisecond),
        FieldType::Multipicklist => DataType::List(list_item_field()),
        FieldType::Location => DataType::Struct(location_fields()),
        FieldType::Address => DataType::Struct(address_fields()),
    }
}

/// The `(precision, scale)` of a currency column: describe's, made valid for `Decimal128`.
///
/// A precision of 0 (describe did not say) or above 38 becomes 38; the scale is clamped into
/// `0..=precision`, so every value describe allows still fits.
pub fn decimal_precision_scale(field: &Field) -> (u8, i8) {
    let precision = match u8::try_from(field.precision) {
        Ok(p) if (1..=MAX_DECIMAL_PRECISION).contains(&p) => p,
        _ => MAX_DECIMAL_PRECISION,
    };
    let scale = field.scale.clamp(0, i32::from(precision));
    (precision, i8::try_from(scale).expect("scale is at most 38"))
}

/// `arrow_type` as readable text for `objects NAME`, e.g. `Decimal128(18, 2)`.
pub fn arrow_type_name(field: &Field) -> String {
    type_name(&arrow_type(field))
}

/// The Arrow schema of a field list, in order; column names are the API names.
pub fn arrow_schema(fields: &[Field]) -> SchemaRef {
    let columns: Vec<ArrowField> = fields
        .iter()
        .map(|f| ArrowField::new(f.name.clone(), arrow_type(f), true))
        .collect();
    Arc::new(Schema::new(columns))
}

/// The item field of a `multipicklist` list.
pub fn list_item_field() -> Arc<ArrowField> {
    Arc::new(ArrowField::new(LIST_ITEM, DataType::Utf8, true))
}

fn location_fields() -> Fields {
    LOCATION_COMPONENTS
        .iter()
        .map(|name| ArrowField::new(*name, DataType::Float64, true))
        .collect()
}

fn address_fields() -> Fields {
    ADDRESS_COMPONENTS
        .iter()
        .map(|(name, numeric)| {
            let t = if *numeric {
                DataType::Float64
            } else {
                DataType::Utf8
            };
            ArrowField::new(*name, t, true)
        })
        .collect()
}

/// The text of an Arrow type, as `objects NAME` prints it and the manifest records it, e.g.
/// `Decimal128(18, 2)`, `Timestamp(ms, UTC)`, `List<Utf8>`; [`parse_type_name`] reads it back.
pub fn type_name(t: &DataType) -> String {
    match t {
        DataType::Decimal128(p, s) => format!("Decimal128({p}, {s})"),
        DataType::Timestamp(TimeUnit::Millisecond, Some(tz)) => format!("Timestamp(ms, {tz})"),
        DataType::Time32(TimeUnit::Millisecond) => "Time32(ms)".into(),
        DataType::List(item) => format!("List<{}>", type_name(item.data_type())),
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
                .collect();
            format!("Struct{{{}}}", inner.join(", "))
        }
        other => format!("{other:?}"),
    }
}

/// Reads back a type [`type_name`] wrote (every type [`arrow_type`] gives); `None` for other text.
pub fn parse_type_name(text: &str) -> Option<DataType> {
    let mut parser = TypeParser { rest: text.trim() };
    let t = parser.data_type()?;
    parser.rest.is_empty().then_some(t)
}

/// A recursive-descent reader of [`type_name`]'s grammar.
struct TypeParser<'a> {
    rest: &'a str,
}

impl TypeParser<'_> {
    fn data_type(&mut self) -> Option<DataType> {
        self.rest = self.rest.trim_start();
        let name_end = self
            .rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(self.rest.len());
        let name = &self.rest[..name_end];
        self.rest = &self.rest[name_end..];
        Some(match name {
            "Utf8" => DataType::Utf8,
            "Boolean" => DataType::Boolean,
            "Int32" => DataType::Int32,
            "Int64" => DataType::Int64,
            "Float64" => DataType::Float64,
            "Date32" => DataType::Date32,
            "Decimal128" => {
                self.eat("(")?;
                let precision = self.until(",")?.trim().parse().ok()?;
                self.eat(",")?;
                let scale = self.until(")")?.trim().parse().ok()?;
                self.eat(")")?;
                DataType::Decimal128(precision, scale)
            }
            "Timestamp" => {
                self.eat("(ms,")?;
                let zone = self.until(")")?.trim().to_string();
                self.eat(")")?;
                DataType::Timestamp(TimeUnit::Millisecond, Some(zone.into()))
            }
            "Time32" => {
                self.eat("(ms)")?;
                DataType::Time32(TimeUnit::Millisecond)
            }
            "List" => {
                self.eat("<")?;
                let item = self.data_type()?;
                self.eat(">")?;
                DataType::List(Arc::new(ArrowField::new(LIST_ITEM, item, true)))
            }
            "Struct" => {
                self.eat("{")?;
                let mut children = Vec::new();
                while !self.rest.starts_with('}') {
                    if !children.is_empty() {
                        self.eat(",")?;
                    }
                    let name = self.until(":")?.trim().to_string();
                    self.eat(":")?;
                    children.push(ArrowField::new(name, self.data_type()?, true));
                }
                self.eat("}")?;
                DataType::Struct(children.into())
            }
            _ => return None,
        })
    }

    /// Skips `token` (after any spaces), or fails.
    fn eat(&mut self, token: &str) -> Option<()> {
        self.rest = self.rest.trim_start().strip_prefix(token)?;
        Some(())
    }

    /// The text before the next `stop`, not consumed past it.
    fn until(&mut self, stop: &str) -> Option<&str> {
        let at = self.rest.find(stop)?;
        let (head, tail) = self.rest.split_at(at);
        self.rest = tail;
        Some(head)
    }
}

/// Integer digits an `Int32` and an `Int64` value may have.
const INT32_DIGITS: u8 = 10;
const INT64_DIGITS: u8 = 19;

/// The column type to write a field with when earlier files hold it as `recorded` and the
/// describe now gives `now`: a type that holds every value of both with none changed, so
/// readers that combine the files by name (DuckDB `union_by_name`, pyarrow's unified schema)
/// widen the old columns to it. `None` when no such type is safe (text ↔ number, a date ↔ a
/// date-time, a float ↔ a decimal, a decimal whose scale shrank so the org's values lost
/// digits, more than 38 digits).
///
/// Safe: the same type; `Int32` with `Int64` (an `int` that became a `long`, or back: a long
/// column still holds ints); `Int32` with `Float64`; integers and decimals as the decimal with
/// the larger integer part at the new scale (a bigger precision, a longer scale).
///
/// ```
/// use arrow::datatypes::DataType;
/// use sfbackfill::decode::schema::widen;
/// assert_eq!(widen(&DataType::Int32, &DataType::Int64), Some(DataType::Int64));
/// assert_eq!(widen(&DataType::Decimal128(18, 2), &DataType::Decimal128(16, 4)), Some(DataType::Decimal128(20, 4)));
/// assert_eq!(widen(&DataType::Decimal128(18, 2), &DataType::Decimal128(18, 0)), None);
/// assert_eq!(widen(&DataType::Utf8, &DataType::Float64), None);
/// ```
pub fn widen(recorded: &DataType, now: &DataType) -> Option<DataType> {
    use DataType::{Decimal128, Float64, Int32, Int64};
    let decimal = |t: &DataType| match t {
        Int32 => Some((INT32_DIGITS, 0)),
        Int64 => Some((INT64_DIGITS, 0)),
        Decimal128(p, s) => Some((p.saturating_sub(s.max(&0).unsigned_abs()), *s)),
        _ => None,
    };
    match (recorded, now) {
        (a, b) if a == b => Some(b.clone()),
        (Int32, Int64) | (Int64, Int32) => Some(Int64),
        (Int32, Float64) | (Float64, Int32) => Some(Float64),
        (Decimal128(..), _) | (_, Decimal128(..)) => {
            let ((old_int, old_scale), (new_int, new_scale)) = (decimal(recorded)?, decimal(now)?);
            if new_scale < old_scale {
                return None;
            }
            let precision = old_int.max(new_int).checked_add(new_scale.unsigned_abs())?;
            (precision <= MAX_DECIMAL_PRECISION).then_some(Decimal128(precision, new_scale))
        }
        _ => None,
    }
}

/// `field` with the describe type, precision and scale whose Arrow type is `t`, so a decoder
/// built from it writes `t` ([`widen`]'s result); `None` when no describe type gives `t`.
pub fn with_arrow_type(field: &Field, t: &DataType) -> Option<Field> {
    if arrow_type(field) == *t {
        return Some(field.clone());
    }
    let mut widened = field.clone();
    match t {
        DataType::Int64 => widened.field_type = FieldType::Long,
        DataType::Float64 => widened.field_type = FieldType::Double,
        DataType::Decimal128(p, s) => {
            widened.field_type = FieldType::Currency;
            widened.precision = u32::from(*p);
            widened.scale = i32::from(*s);
        }
        _ => return None,
    }
    (arrow_type(&widened) == *t).then_some(widened)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, field_type: FieldType, precision: u32, scale: i32) -> Field {
        Field {
            name: name.into(),
            field_type,
            length: 0,
            precision,
            scale,
            digits: 0,
            nillable: true,
            custom: false,
            calculated: false,
            compound_field_name: None,
            filterable: true,
            sortable: true,
            groupable: true,
        }
    }

    #[test]
    fn every_describe_type_has_its_spec_arrow_type() {
        use FieldType as T;
        let cases = [
            (T::Id, "Utf8"),
            (T::Reference, "Utf8"),
            (T::Textarea, "Utf8"),
            (T::Base64, "Utf8"),
            (T::AnyType, "Utf8"),
            (T::Json, "Utf8"),
            (T::Unknown, "Utf8"),
            (T::Boolean, "Boolean"),
            (T::Int, "Int32"),
            (T::Long, "Int64"),
            (T::Double, "Float64"),
            (T::Percent, "Float64"),
            (T::Currency, "Decimal128(18, 2)"),
            (T::Date, "Date32"),
            (T::Datetime, "Timestamp(ms, UTC)"),
            (T::Time, "Time32(ms)"),
            (T::Multipicklist, "List<Utf8>"),
            (T::Location, "Struct{latitude: Float64, longitude: Float64}"),
        ];
        for (t, name) in cases {
            assert_eq!(
                arrow_type_name(&field("F", t.clone(), 18, 2)),
                name,
                "{t:?}"
            );
        }
        let address = arrow_type_name(&field("A", T::Address, 0, 0));
        assert!(
            address.starts_with("Struct{city: Utf8, country: Utf8"),
            "{address}"
        );
        assert!(address.contains("latitude: Float64"), "{address}");
    }

    #[test]
    fn currency_precision_and_scale_are_made_valid() {
        let t = |p, s| arrow_type(&field("C", FieldType::Currency, p, s));
        assert_eq!(t(18, 2), DataType::Decimal128(18, 2));
        assert_eq!(t(0, 2), DataType::Decimal128(38, 2));
        assert_eq!(t(60, 4), DataType::Decimal128(38, 4));
        assert_eq!(t(5, 9), DataType::Decimal128(5, 5));
        assert_eq!(t(10, -3), DataType::Decimal128(10, 0));
    }

    #[test]
    fn every_type_name_reads_back_as_its_type() {
        use FieldType as T;
        for t in [
            T::Id,
            T::Boolean,
            T::Int,
            T::Long,
            T::Double,
            T::Currency,
            T::Date,
            T::Datetime,
            T::Time,
            T::Multipicklist,
            T::Location,
            T::Address,
        ] {
            let arrow = arrow_type(&field("F", t.clone(), 16, 4));
            assert_eq!(parse_type_name(&type_name(&arrow)), Some(arrow), "{t:?}");
        }
        assert_eq!(
            parse_type_name("Decimal128(38, 0)"),
            Some(DataType::Decimal128(38, 0))
        );
        for bad in [
            "",
            "Utf9",
            "Decimal128(18)",
            "Int32 extra",
            "List<Utf8",
            "Struct{a: }",
        ] {
            assert_eq!(parse_type_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_changes_that_keep_every_value_widen() {
        use DataType::{Boolean, Date32, Decimal128 as D, Float64, Int32, Int64, Utf8};
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into()));
        let cases = [
            (Utf8, Utf8, Some(Utf8)),
            (Int32, Int64, Some(Int64)),
            (Int64, Int32, Some(Int64)),
            (Int32, Float64, Some(Float64)),
            (Float64, Int32, Some(Float64)),
            (D(16, 2), D(18, 2), Some(D(18, 2))),
            (D(18, 2), D(16, 2), Some(D(18, 2))),
            (D(18, 2), D(18, 4), Some(D(20, 4))),
            (Int32, D(18, 2), Some(D(18, 2))),
            (Int64, D(18, 0), Some(D(19, 0))),
            (Int64, D(16, 2), Some(D(21, 2))),
            (D(18, 2), Int64, None),
            (D(38, 2), D(38, 4), None),
            (D(18, 4), D(18, 2), None),
            (Int64, Float64, None),
            (Float64, D(18, 2), None),
            (D(18, 2), Float64, None),
            (Utf8, Float64, None),
            (Int32, Utf8, None),
            (Date32, ts.clone(), None),
            (Boolean, Utf8, None),
        ];
        for (recorded, now, want) in cases {
            assert_eq!(widen(&recorded, &now), want, "{recorded} -> {now}");
        }
    }

    #[test]
    fn a_widened_type_is_given_by_a_field_a_decoder_can_be_built_from() {
        let int = field("N", FieldType::Int, 9, 0);
        let long = with_arrow_type(&int, &DataType::Int64).unwrap();
        assert_eq!(arrow_type(&long), DataType::Int64);
        let money = with_arrow_type(&int, &DataType::Decimal128(21, 2)).unwrap();
        assert_eq!(arrow_type(&money), DataType::Decimal128(21, 2));
        assert_eq!(with_arrow_type(&int, &DataType::Int32), Some(int.clone()));
        assert_eq!(with_arrow_type(&int, &DataType::Utf8), None);
    }

    #[test]
    fn schema_keeps_order_names_and_nullability() {
        let s = arrow_schema(&[
            field("Id", FieldType::Id, 0, 0),
            field("Amount__c", FieldType::Currency, 16, 2),
        ]);
        let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["Id", "Amount__c"]);
        assert!(s.fields().iter().all(|f| f.is_nullable()));
    }
}
