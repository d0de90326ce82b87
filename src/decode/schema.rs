//! Describe field types → Arrow types: the one place the output's column types are decided.
//!
//! Owns the mapping of spec "Output" from a Salesforce `FieldType` (plus the describe's
//! precision and scale) to an Arrow `DataType`, the schema of a field list, and the readable
//! type names `objects NAME` prints. It does not own turning values into arrays (`decode`).
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

fn type_name(t: &DataType) -> String {
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
