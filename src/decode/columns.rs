//! Typed column builders: one value at a time in, one Arrow array out.
//!
//! The layer between an input format and Arrow. A reader (the JSON page reader today, a Bulk
//! API CSV reader later) hands each value over either typed (`push_bool`, `push_null`) or as
//! its text (`push_text`), and the builder parses the text into its Arrow type
//! ([`super::values`]). Builders are created from the Arrow type alone, so any format that
//! produces the same schema produces the same arrays.
//!
//! Invariant: after every complete row, every builder of a batch has the same `len()`; a
//! rejected value appends nothing.

use std::sync::Arc;

use arrow::array::{ArrayBuilder, NullBufferBuilder};
use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int32Builder,
    Int64Builder, ListBuilder, StringBuilder, StructArray, Time32MillisecondBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Fields, TimeUnit};

use super::values::{self, ValueError};

/// A builder for one column of a supported Arrow type (those `schema::arrow_type` produces).
#[derive(Debug)]
pub enum ColumnBuilder {
    Text(StringBuilder),
    Boolean(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Decimal {
        builder: Decimal128Builder,
        precision: u8,
        scale: i8,
    },
    Date(Date32Builder),
    Timestamp(TimestampMillisecondBuilder),
    Time(Time32MillisecondBuilder),
    /// `multipicklist`: one `;`-joined text in, a list of its values out.
    List(ListBuilder<StringBuilder>),
    Struct(Box<StructColumn>),
}

/// The builders of a struct column (`address`, `location`) and its own validity.
#[derive(Debug)]
pub struct StructColumn {
    fields: Fields,
    /// Component names as bytes, for matching keys without converting them.
    names: Vec<Box<[u8]>>,
    children: Vec<ColumnBuilder>,
    validity: NullBufferBuilder,
}

impl StructColumn {
    /// Component names and their builders, in column order, for a reader to fill one row.
    pub fn parts_mut(&mut self) -> (&[Box<[u8]>], &mut [ColumnBuilder]) {
        (&self.names, &mut self.children)
    }

    /// Ends a non-null row whose components were pushed (missing ones are padded with null).
    pub fn end_row(&mut self) {
        let row = self.validity.len();
        for child in &mut self.children {
            if child.len() == row {
                child.push_null();
            }
        }
        self.validity.append_non_null();
    }

    fn push_null(&mut self) {
        for child in &mut self.children {
            child.push_null();
        }
        self.validity.append_null();
    }

    fn finish(&mut self) -> ArrayRef {
        let children = self
            .children
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect();
        Arc::new(StructArray::new(
            self.fields.clone(),
            children,
            self.validity.finish(),
        ))
    }
}

impl ColumnBuilder {
    /// A builder of `data_type` with room for `rows` values and `text_bytes` of text.
    /// `None` for a type no Salesforce field maps to.
    pub fn new(data_type: &DataType, rows: usize, text_bytes: usize) -> Option<Self> {
        Some(match data_type {
            DataType::Utf8 => ColumnBuilder::Text(StringBuilder::with_capacity(rows, text_bytes)),
            DataType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
            DataType::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(rows)),
            DataType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(rows)),
            DataType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(rows)),
            DataType::Decimal128(precision, scale) => ColumnBuilder::Decimal {
                builder: Decimal128Builder::with_capacity(rows)
                    .with_precision_and_scale(*precision, *scale)
                    .ok()?,
                precision: *precision,
                scale: *scale,
            },
            DataType::Date32 => ColumnBuilder::Date(Date32Builder::with_capacity(rows)),
            DataType::Timestamp(TimeUnit::Millisecond, tz) => ColumnBuilder::Timestamp(
                TimestampMillisecondBuilder::with_capacity(rows).with_timezone_opt(tz.clone()),
            ),
            DataType::Time32(TimeUnit::Millisecond) => {
                ColumnBuilder::Time(Time32MillisecondBuilder::with_capacity(rows))
            }
            DataType::List(item) if item.data_type() == &DataType::Utf8 => ColumnBuilder::List(
                ListBuilder::with_capacity(StringBuilder::with_capacity(rows, text_bytes), rows)
                    .with_field(item.clone()),
            ),
            DataType::Struct(fields) => {
                let children = fields
                    .iter()
                    .map(|f| ColumnBuilder::new(f.data_type(), rows, text_bytes / 4))
                    .collect::<Option<Vec<_>>>()?;
                ColumnBuilder::Struct(Box::new(StructColumn {
                    names: fields.iter().map(|f| f.name().as_bytes().into()).collect(),
                    fields: fields.clone(),
                    children,
                    validity: NullBufferBuilder::new(rows),
                }))
            }
            _ => return None,
        })
    }

    /// Values appended so far.
    pub fn len(&self) -> usize {
        match self {
            ColumnBuilder::Text(b) => b.len(),
            ColumnBuilder::Boolean(b) => b.len(),
            ColumnBuilder::Int32(b) => b.len(),
            ColumnBuilder::Int64(b) => b.len(),
            ColumnBuilder::Float64(b) => b.len(),
            ColumnBuilder::Decimal { builder, .. } => builder.len(),
            ColumnBuilder::Date(b) => b.len(),
            ColumnBuilder::Timestamp(b) => b.len(),
            ColumnBuilder::Time(b) => b.len(),
            ColumnBuilder::List(b) => b.len(),
            ColumnBuilder::Struct(s) => s.validity.len(),
        }
    }

    /// True before the first value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a null.
    pub fn push_null(&mut self) {
        match self {
            ColumnBuilder::Text(b) => b.append_null(),
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Decimal { builder, .. } => builder.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Time(b) => b.append_null(),
            ColumnBuilder::List(b) => b.append_null(),
            ColumnBuilder::Struct(s) => s.push_null(),
        }
    }

    /// Appends a boolean; a text column stores it as `true`/`false`.
    ///
    /// # Errors
    /// As [`Self::push_text`] of `true`/`false` when the column is neither boolean nor text.
    pub fn push_bool(&mut self, value: bool) -> Result<(), ValueError> {
        match self {
            ColumnBuilder::Boolean(b) => b.append_value(value),
            ColumnBuilder::Text(b) => b.append_value(if value { "true" } else { "false" }),
            _ => return self.push_text(if value { "true" } else { "false" }),
        }
        Ok(())
    }

    /// Appends a value given as its text (a JSON string's content or a JSON number's text),
    /// parsed into the column's type.
    ///
    /// # Errors
    /// The text is not a value of the column's type (see [`ValueError`]).
    pub fn push_text(&mut self, text: &str) -> Result<(), ValueError> {
        match self {
            ColumnBuilder::Text(b) => b.append_value(text),
            ColumnBuilder::Boolean(b) => b.append_value(values::parse_bool(text)?),
            ColumnBuilder::Int32(b) => b.append_value(values::parse_i32(text)?),
            ColumnBuilder::Int64(b) => b.append_value(values::parse_i64(text)?),
            ColumnBuilder::Float64(b) => b.append_value(values::parse_f64(text)?),
            ColumnBuilder::Decimal {
                builder,
                precision,
                scale,
            } => builder.append_value(values::parse_decimal(text, *precision, *scale)?),
            ColumnBuilder::Date(b) => b.append_value(values::parse_date(text)?),
            ColumnBuilder::Timestamp(b) => b.append_value(values::parse_datetime(text)?),
            ColumnBuilder::Time(b) => b.append_value(values::parse_time(text)?),
            ColumnBuilder::List(b) => {
                // An empty multipicklist is an empty list, not a list of one empty value.
                if !text.is_empty() {
                    for item in text.split(';') {
                        b.values().append_value(item);
                    }
                }
                b.append(true);
            }
            ColumnBuilder::Struct(_) => {
                return Err(ValueError::WrongKind {
                    found: "scalar",
                    expected: "an object",
                });
            }
        }
        Ok(())
    }

    /// The struct builder, when this column is a struct.
    pub fn as_struct_mut(&mut self) -> Option<&mut StructColumn> {
        match self {
            ColumnBuilder::Struct(s) => Some(s),
            _ => None,
        }
    }

    /// True for a text column (it also stores nested JSON as its text).
    pub fn is_text(&self) -> bool {
        matches!(self, ColumnBuilder::Text(_))
    }

    /// The array of everything appended, leaving the builder empty.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal { builder, .. } => Arc::new(builder.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Time(b) => Arc::new(b.finish()),
            ColumnBuilder::List(b) => Arc::new(b.finish()),
            ColumnBuilder::Struct(s) => s.finish(),
        }
    }
}
