//! The first pass of a compaction: which copy of each record is its newest version.
//!
//! Owns the order of versions (the cursor, then the second stamp, then the later file, then
//! the later row; a null value is older than any) and the memory it takes: one entry per
//! distinct `Id`, [`BYTES_PER_RECORD`] before the hash table's slack, whatever the width of
//! the rows, because only `Id`, the two stamps and `IsDeleted` are read (a Parquet column
//! projection). Afterwards, one bit per row says whether the row is kept.

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::buffer::BooleanBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use super::{CompactError, Reading};

/// Rows per batch read in either pass.
pub const BATCH_ROWS: usize = 8192;

/// Bytes of one map entry: a packed `Id` (16) and its newest version (24).
pub const BYTES_PER_RECORD: usize = std::mem::size_of::<u128>() + std::mem::size_of::<Version>();

/// Where a record's newest copy lies and how new it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    cursor: i64,
    second: i64,
    /// The file's index; its top bit says the copy is deleted (`IsDeleted`).
    file: u32,
    row: u32,
}

const DELETED: u32 = 1 << 31;

impl Version {
    fn rank(&self) -> (i64, i64, u32, u32) {
        (self.cursor, self.second, self.file & !DELETED, self.row)
    }

    fn file(&self) -> usize {
        (self.file & !DELETED) as usize
    }

    fn deleted(&self) -> bool {
        self.file & DELETED != 0
    }
}

/// An `Id` as a map key: a Salesforce Id (15 or 18 letters and digits) packed into 16 bytes,
/// six bits a character; any other text kept as it is.
fn packed(id: &str) -> Option<u128> {
    if id.is_empty() || id.len() > 18 {
        return None;
    }
    let mut key = (id.len() as u128) << 120;
    for (i, b) in id.bytes().enumerate() {
        let six = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'Z' => b - b'A' + 10,
            b'a'..=b'z' => b - b'a' + 36,
            _ => return None,
        };
        key |= u128::from(six) << (6 * i);
    }
    Some(key)
}

/// Which columns order the versions of a record.
#[derive(Debug, Clone)]
pub struct Order {
    pub cursor: String,
    /// Breaks a tie of the cursor: `SystemModstamp`, or `LastModifiedDate` when the cursor is
    /// `SystemModstamp`.
    pub second: String,
}

impl Order {
    pub fn for_cursor(cursor: &str) -> Self {
        let second = if cursor == "SystemModstamp" {
            "LastModifiedDate"
        } else {
            "SystemModstamp"
        };
        Self {
            cursor: cursor.to_string(),
            second: second.to_string(),
        }
    }
}

/// The newest version of every record of an object, over its files in order (a later file
/// wins a tie).
#[derive(Debug, Default)]
pub struct Index {
    packed: HashMap<u128, Version>,
    other: HashMap<Box<str>, Version>,
    /// Rows of each file.
    rows: Vec<u32>,
    /// Rows whose `Id` is null: kept as they are, since nothing says what they duplicate.
    no_id: Vec<(usize, u32)>,
}

impl Index {
    /// An index of `files` files, numbered in the order that breaks ties (a later file wins).
    pub fn new(files: usize) -> Self {
        Self {
            rows: vec![0; files],
            ..Self::default()
        }
    }

    /// Reads `Id`, the order's columns and `IsDeleted` of `path`, file number `file`, in any
    /// order of files; returns the file's schema.
    pub fn add_file(
        &mut self,
        file: usize,
        path: &Path,
        order: &Order,
    ) -> Result<SchemaRef, CompactError> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).reading(path)?)
            .reading(path)?;
        let rows = builder.metadata().file_metadata().num_rows();
        let rows = u32::try_from(rows)
            .map_err(|_| "more than 4,294,967,295 rows in one file")
            .reading(path)?;
        let schema = builder.schema().clone();
        let wanted = ["Id", &order.cursor, &order.second, "IsDeleted"];
        let roots: Vec<usize> = wanted
            .iter()
            .filter_map(|name| schema.index_of(name).ok())
            .collect();
        if schema.index_of("Id").is_err() {
            return Err(CompactError::NoId {
                path: path.to_path_buf(),
            });
        }
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .reading(path)?;
        self.rows[file] = rows;
        let mut offset = 0u32;
        for batch in reader {
            let batch = batch.reading(path)?;
            self.add_batch(&batch, file, offset, order).reading(path)?;
            offset += batch.num_rows() as u32;
        }
        Ok(schema)
    }

    fn add_batch(
        &mut self,
        batch: &RecordBatch,
        file: usize,
        offset: u32,
        order: &Order,
    ) -> Result<(), arrow::error::ArrowError> {
        let ids = cast(column(batch, "Id").expect("projected"), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let cursor = millis(column(batch, &order.cursor))?;
        let second = millis(column(batch, &order.second))?;
        let deleted = column(batch, "IsDeleted").and_then(|c| c.as_boolean_opt().cloned());
        let value = |stamps: &Option<arrow::array::Int64Array>, i: usize| {
            stamps
                .as_ref()
                .filter(|s| s.is_valid(i))
                .map_or(i64::MIN, |s| s.value(i))
        };
        for i in 0..batch.num_rows() {
            let row = offset + i as u32;
            if ids.is_null(i) {
                self.no_id.push((file, row));
                continue;
            }
            let is_deleted = deleted
                .as_ref()
                .is_some_and(|d| d.is_valid(i) && d.value(i));
            let version = Version {
                cursor: value(&cursor, i),
                second: value(&second, i),
                file: file as u32 | if is_deleted { DELETED } else { 0 },
                row,
            };
            let id = ids.value(i);
            let slot = match packed(id) {
                Some(key) => self.packed.entry(key).or_insert(version),
                None => self.other.entry(id.into()).or_insert(version),
            };
            if version.rank() > slot.rank() {
                *slot = version;
            }
        }
        Ok(())
    }

    /// Records whose newest version is deleted.
    pub fn deleted(&self) -> u64 {
        let versions = self.packed.values().chain(self.other.values());
        versions.filter(|v| v.deleted()).count() as u64
    }

    /// One bit per row of each file, set for the rows kept: each record's newest version,
    /// unless it is deleted and `drop_deleted`. Consumes the index: its map is freed here.
    pub fn into_kept(self, drop_deleted: bool) -> Kept {
        let mut bits: Vec<Vec<u64>> = self
            .rows
            .iter()
            .map(|&n| vec![0u64; (n as usize).div_ceil(64)])
            .collect();
        let mut set = |file: usize, row: u32| bits[file][row as usize / 64] |= 1 << (row % 64);
        for v in self.packed.into_values().chain(self.other.into_values()) {
            if !(drop_deleted && v.deleted()) {
                set(v.file(), v.row);
            }
        }
        for (file, row) in self.no_id {
            set(file, row);
        }
        Kept {
            bits,
            rows: self.rows,
        }
    }
}

/// The rows a compaction keeps, a bit per row of each file.
#[derive(Debug)]
pub struct Kept {
    bits: Vec<Vec<u64>>,
    rows: Vec<u32>,
}

impl Kept {
    pub fn rows(&self, file: usize) -> u64 {
        u64::from(self.rows[file])
    }

    pub fn kept(&self, file: usize) -> u64 {
        self.bits[file]
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum()
    }

    /// The rows of `file` to read, as a filter.
    pub fn filter(&self, file: usize) -> BooleanArray {
        let words: Vec<u8> = self.bits[file]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let buffer = BooleanBuffer::new(words.into(), 0, self.rows[file] as usize);
        BooleanArray::new(buffer, None)
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a dyn Array> {
    batch.column_by_name(name).map(|c| c.as_ref())
}

/// A date or time column as milliseconds since the epoch.
fn millis(
    column: Option<&dyn Array>,
) -> Result<Option<arrow::array::Int64Array>, arrow::error::ArrowError> {
    let Some(column) = column else {
        return Ok(None);
    };
    let stamps = cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    Ok(Some(
        cast(&stamps, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salesforce_ids_pack_apart_and_others_do_not_pack() {
        let a = packed("001000000000001AAA").unwrap();
        let b = packed("001000000000001AAa").unwrap();
        let short = packed("001000000000001").unwrap();
        assert_ne!(a, b, "Ids are case-sensitive");
        assert_ne!(a, short);
        assert_ne!(packed("0").unwrap(), packed("00").unwrap());
        assert_eq!(packed("a-b"), None);
        assert_eq!(packed("0010000000000010000"), None);
        assert_eq!(BYTES_PER_RECORD, 40);
    }

    #[test]
    fn the_newest_version_wins_then_the_second_stamp_then_the_later_file() {
        let v = |cursor, second, file, row| Version {
            cursor,
            second,
            file,
            row,
        };
        assert!(v(2, 0, 0, 0).rank() > v(1, 9, 5, 5).rank());
        assert!(v(1, 2, 0, 0).rank() > v(1, 1, 5, 5).rank());
        assert!(v(1, 1, 3, 0).rank() > v(1, 1, 2, 9).rank());
        assert!(v(1, 1, 3 | DELETED, 0).rank() == v(1, 1, 3, 0).rank());
        assert!(
            v(i64::MIN, 5, 9, 0).rank() < v(0, 0, 0, 0).rank(),
            "null is oldest"
        );
    }
}
