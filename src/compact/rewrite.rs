//! The second pass of a compaction: a day's kept rows streamed into one new file with the
//! object's unified schema.
//!
//! Owns the unified schema (every column any file of the object has, the newest file's order
//! first, each with the type that holds all of its files' types, [`schema::widen`]; a file
//! lacking a column gives nulls) and the compacted file's `sfbackfill.*` metadata. Reads one
//! batch of kept rows at a time (a Parquet row selection), so memory is a batch plus the
//! writer's row group, whatever the day's size.

use arrow::array::new_null_array;
use arrow::compute::cast;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection};
use parquet::file::metadata::KeyValue;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use super::index::{BATCH_ROWS, Kept};
use super::{CompactError, Reading};
use crate::decode::schema;
use crate::write::{ChunkFileWriter, FileMeta, StagedFile};

/// The most distinct queries a compacted file's `sfbackfill.soql` keeps (the newest); a day
/// synced every few minutes for months would otherwise carry thousands.
const MAX_QUERIES: usize = 64;

/// The object's unified columns, folded one file at a time, newest file first: each column's
/// first appearance sets its place, its type holds every file's type ([`schema::widen`]), and
/// every column is nullable. Holds one schema, however many files the object has.
#[derive(Debug, Default)]
pub struct SchemaUnion {
    fields: Vec<Field>,
}

impl SchemaUnion {
    /// Adds the columns of a file older than every file added before.
    pub fn add_older(&mut self, object: &str, older: &Schema) -> Result<(), CompactError> {
        for field in older.fields() {
            match self.fields.iter_mut().find(|f| f.name() == field.name()) {
                None => self.fields.push(field.as_ref().clone().with_nullable(true)),
                Some(known) => {
                    let wider =
                        schema::widen(field.data_type(), known.data_type()).ok_or_else(|| {
                            CompactError::TypeClash {
                                object: object.to_string(),
                                column: field.name().clone(),
                                types: (
                                    schema::type_name(field.data_type()),
                                    schema::type_name(known.data_type()),
                                ),
                            }
                        })?;
                    *known = known.clone().with_data_type(wider);
                }
            }
        }
        Ok(())
    }

    pub fn schema(self) -> SchemaRef {
        Arc::new(Schema::new(self.fields))
    }
}

/// What the footers of a day's input files say, gathered for the compacted file's.
#[derive(Debug, Default)]
pub struct Inputs {
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    extracted_at: Option<DateTime<Utc>>,
    queries: Vec<String>,
    /// Per input with kept rows: its columns, and those it holds as null.
    columns: Vec<(BTreeSet<String>, BTreeSet<String>)>,
    files: u64,
}

impl Inputs {
    fn add(&mut self, builder: &ParquetRecordBatchReaderBuilder<File>, kept: bool) {
        self.files += 1;
        let pairs: BTreeMap<&str, &str> = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((kv.key.as_str(), kv.value.as_deref()?)))
            .collect();
        let time = |key: &str| pairs.get(key)?.parse::<DateTime<Utc>>().ok();
        if let (Some(start), Some(end)) = (
            time("sfbackfill.window_start"),
            time("sfbackfill.window_end"),
        ) {
            self.window = Some(match self.window {
                Some((s, e)) => (s.min(start), e.max(end)),
                None => (start, end),
            });
        }
        if let Some(at) = time("sfbackfill.extracted_at") {
            self.extracted_at = Some(self.extracted_at.map_or(at, |e| e.max(at)));
        }
        for query in pairs
            .get("sfbackfill.soql")
            .into_iter()
            .flat_map(|q| q.lines())
        {
            if !query.starts_with("-- ") && !self.queries.iter().any(|q| q == query) {
                self.queries.push(query.to_string());
            }
        }
        if kept {
            let names = builder
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let nulls = pairs
                .get("sfbackfill.null_fields")
                .map(|n| n.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            self.columns.push((names, nulls));
        }
    }

    /// Columns null in every kept row: named null by some input, absent or null in the rest.
    fn null_fields(&self, unified: &Schema) -> Vec<String> {
        unified
            .fields()
            .iter()
            .map(|f| f.name())
            .filter(|name| self.columns.iter().any(|(_, nulls)| nulls.contains(*name)))
            .filter(|name| {
                self.columns
                    .iter()
                    .all(|(names, nulls)| !names.contains(*name) || nulls.contains(*name))
            })
            .cloned()
            .collect()
    }

    /// The newest distinct queries, oldest first, with a first line counting those left out.
    fn soql(&self) -> String {
        let skipped = self.queries.len().saturating_sub(MAX_QUERIES);
        let kept = self.queries[skipped..].join("\n");
        match skipped {
            0 => kept,
            n => format!("-- {n} earlier queries not kept\n{kept}"),
        }
    }
}

/// One day to rewrite.
pub struct Day<'a> {
    pub object: &'a str,
    pub day: NaiveDate,
    pub cursor_field: &'a str,
    /// The day's files: their index in the object's order, and path.
    pub files: Vec<(usize, &'a Path)>,
    pub run: &'a str,
}

/// Streams the kept rows of `day`'s files into one staged file of `unified` columns, closed and
/// fsync'd; `None` when no row is kept.
pub fn rewrite_day(
    day: &Day<'_>,
    kept: &Kept,
    unified: &SchemaRef,
    staging: &Path,
) -> Result<Option<StagedFile>, CompactError> {
    let mut inputs = Inputs::default();
    let mut writer: Option<ChunkFileWriter> = None;
    let mut metas = Vec::new();
    for &(file, path) in &day.files {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).reading(path)?)
            .reading(path)?;
        let keeps = kept.kept(file) > 0;
        inputs.add(&builder, keeps);
        if keeps {
            metas.push((file, path));
        }
    }
    if metas.is_empty() {
        return Ok(None);
    }
    for (file, path) in metas {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).reading(path)?)
            .reading(path)?;
        let selection = RowSelection::from_filters(&[kept.filter(file)]);
        let reader = builder
            .with_row_selection(selection)
            .with_batch_size(BATCH_ROWS)
            .build()
            .reading(path)?;
        for batch in reader {
            let batch = conform(&batch.reading(path)?, unified).reading(path)?;
            let w = match writer.as_mut() {
                Some(w) => w,
                None => writer.insert(create_writer(day, &inputs, unified, staging)?),
            };
            w.write(&batch)?;
        }
    }
    match writer {
        Some(w) => Ok(Some(w.finish()?)),
        None => Ok(None),
    }
}

fn create_writer(
    day: &Day<'_>,
    inputs: &Inputs,
    unified: &SchemaRef,
    staging: &Path,
) -> Result<ChunkFileWriter, CompactError> {
    let now = Utc::now();
    let day_start = day.day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let (window_start, window_end) = inputs
        .window
        .unwrap_or((day_start, day_start + chrono::Duration::days(1)));
    let meta = FileMeta {
        object: day.object.to_string(),
        day: day.day,
        window_start,
        window_end,
        cursor_field: day.cursor_field.to_string(),
        soql: inputs.soql(),
        extracted_at: inputs.extracted_at.unwrap_or(now),
        null_fields: inputs.null_fields(unified),
    };
    let extra = [
        ("sfbackfill.compacted_from", inputs.files.to_string()),
        (
            "sfbackfill.compacted_at",
            now.to_rfc3339_opts(SecondsFormat::Millis, true),
        ),
        ("sfbackfill.compacted_by", day.run.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| KeyValue::new(k.to_string(), v))
    .collect();
    Ok(ChunkFileWriter::create_with(
        staging,
        unified.clone(),
        &meta,
        extra,
    )?)
}

/// `batch` with the `unified` columns: each cast to its unified type, nulls where it lacks one.
fn conform(
    batch: &RecordBatch,
    unified: &SchemaRef,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let columns = unified
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => Ok(c.clone()),
            Some(c) => cast(c, field.data_type()),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(unified.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;

    fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), false))
                .collect::<Vec<_>>(),
        ))
    }

    /// The union of `schemas`, oldest first.
    fn unified_schema(object: &str, schemas: &[SchemaRef]) -> Result<SchemaRef, CompactError> {
        let mut union = SchemaUnion::default();
        for s in schemas.iter().rev() {
            union.add_older(object, s)?;
        }
        Ok(union.schema())
    }

    #[test]
    fn the_unified_schema_is_the_union_newest_order_first_with_widened_types() {
        let old = schema(&[
            ("Id", DataType::Utf8),
            ("Gone__c", DataType::Date32),
            ("Count__c", DataType::Int32),
        ]);
        let new = schema(&[
            ("Id", DataType::Utf8),
            ("Count__c", DataType::Int64),
            ("Added__c", DataType::Utf8),
        ]);
        let unified = unified_schema("Account", &[old, new]).unwrap();
        let got: Vec<(String, DataType, bool)> = unified
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable()))
            .collect();
        assert_eq!(
            got,
            [
                ("Id".into(), DataType::Utf8, true),
                ("Count__c".into(), DataType::Int64, true),
                ("Added__c".into(), DataType::Utf8, true),
                ("Gone__c".into(), DataType::Date32, true),
            ]
        );
        let clash = schema(&[("Count__c", DataType::Utf8)]);
        let e = unified_schema("Account", &[clash, unified]).unwrap_err();
        assert!(e.to_string().contains("`Account.Count__c`"), "{e}");
    }

    #[test]
    fn a_batch_conforms_by_name_with_casts_and_nulls() {
        let unified = schema(&[
            ("Id", DataType::Utf8),
            ("Count__c", DataType::Int64),
            ("Added__c", DataType::Utf8),
        ]);
        let unified = unified_schema("X", &[unified]).unwrap();
        let batch = RecordBatch::try_new(
            schema(&[("Count__c", DataType::Int32), ("Id", DataType::Utf8)]),
            vec![
                Arc::new(arrow::array::Int32Array::from(vec![7])),
                Arc::new(arrow::array::StringArray::from(vec!["001"])),
            ],
        )
        .unwrap();
        let out = conform(&batch, &unified).unwrap();
        assert_eq!(out.schema(), unified);
        assert_eq!(
            out.column(1)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap()
                .value(0),
            7
        );
        assert!(out.column(2).is_null(0));
    }
}
