//! Parquet chunk files: written aside in the staging folder, then renamed into place.
//!
//! Owns the Parquet writer's settings (zstd, statistics, dictionaries, bounded row groups,
//! key-value metadata), staged file names, durability (fsync of files and of the folders a
//! rename changes) and the user-facing messages of disk errors. It does not decide when a
//! chunk is done (`backfill`, `sync`) or record it (`checkpoint`).
//!
//! Invariants: a reader never sees a partial file: a file only appears under `OUT` by an
//! atomic rename of a closed, fsync'd staged file, replacing any earlier one; a staged file
//! that is dropped without [`ChunkFileWriter::finish`] is deleted; memory per open file is
//! bounded by [`MAX_ROW_GROUP_ROWS`] / [`MAX_ROW_GROUP_BYTES`], not by the size of a day.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::{ExitKind, UserFacing};

/// zstd level of every file: the cheapest one, because encoding shares the per-core budget
/// of decode + write (spec: ≥ 300,000 records/s, measured by benches/decode.rs).
pub const ZSTD_LEVEL: i32 = 1;

/// Rows up to which a file is written with Snappy rather than zstd ([`Codec::for_rows`]); also
/// the most rows an open file holds back before its codec is chosen.
pub const SMALL_FILE_ROWS: usize = 4_096;

/// Rows per row group: large enough for good compression and statistics, small enough that
/// an open file buffers a bounded amount however many rows its day holds.
pub const MAX_ROW_GROUP_ROWS: usize = 65_536;

/// Encoded bytes at which a row group is closed before [`MAX_ROW_GROUP_ROWS`]: an open file
/// holds its row group in memory, so this, not the rows of a day, bounds a file's memory
/// (a heavy day is written by `--concurrency` readers at once). At 8 MiB or more a heavy day of
/// 300,000 rows took 1.4 times the memory of one of 90,000 at concurrency 4, at 2 MiB 1.19
/// times (docs/benchmarks.md); a row group of a wide object still holds about 10,000 rows.
pub const MAX_ROW_GROUP_BYTES: usize = 2 * 1024 * 1024;

/// What a chunk file says about itself (Parquet key-value metadata).
#[derive(Debug, Clone)]
pub struct FileMeta {
    pub object: String,
    pub day: NaiveDate,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub cursor_field: String,
    pub soql: String,
    pub extracted_at: DateTime<Utc>,
    /// Columns written as null because the org no longer showed the field (spec "Schema
    /// drift"): `sfbackfill.null_fields`, comma-separated, present only when some are.
    pub null_fields: Vec<String>,
}

impl FileMeta {
    /// The `sfbackfill.*` key-value pairs written into the file footer.
    pub fn key_values(&self) -> Vec<KeyValue> {
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        [
            ("sfbackfill.object", self.object.clone()),
            ("sfbackfill.day", self.day.to_string()),
            ("sfbackfill.window_start", time(&self.window_start)),
            ("sfbackfill.window_end", time(&self.window_end)),
            ("sfbackfill.cursor_field", self.cursor_field.clone()),
            ("sfbackfill.soql", self.soql.clone()),
            ("sfbackfill.extracted_at", time(&self.extracted_at)),
            ("sfbackfill.version", env!("CARGO_PKG_VERSION").to_string()),
        ]
        .into_iter()
        .chain(
            (!self.null_fields.is_empty())
                .then(|| ("sfbackfill.null_fields", self.null_fields.join(","))),
        )
        .map(|(k, v)| KeyValue::new(k.to_string(), v))
        .collect()
    }
}

/// Why a chunk file could not be written or published.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file system call failed on `path` (disk full, read-only, permissions, ...).
    #[error("cannot write `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The Parquet encoder refused the data (a bug: batches follow the file's schema).
    #[error("cannot encode Parquet: {0}")]
    Parquet(String),
    /// The object store `--out` refused or failed the upload (`store::published`).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl WriteError {
    /// An I/O error on `path`.
    pub fn from_io(path: &Path, source: std::io::Error) -> Self {
        WriteError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A Parquet error on `path`; an I/O error inside it keeps its kind (and so its hint).
    fn from_parquet(path: &Path, e: ParquetError) -> Self {
        match e {
            ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
                Ok(io) => WriteError::from_io(path, *io),
                Err(other) => WriteError::Parquet(other.to_string()),
            },
            other => WriteError::Parquet(other.to_string()),
        }
    }
}

impl UserFacing for WriteError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            WriteError::Store(e) => e.exit_kind(),
            _ => ExitKind::Failure,
        }
    }

    fn hint(&self) -> Option<String> {
        if let WriteError::Store(e) = self {
            return e.hint();
        }
        let WriteError::Io { path, source } = self else {
            return None;
        };
        let place = path.display();
        match source.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Some(format!(
                "the disk is full: free space on the disk of `{place}` then run the same \
                 command again (finished days are kept)"
            )),
            ErrorKind::ReadOnlyFilesystem => Some(format!(
                "`{place}` is on a read-only file system: make it writable (or choose another \
                 --out), then run the same command again (finished days are kept)"
            )),
            _ if source.raw_os_error() == Some(libc::EIO) => Some(format!(
                "the disk of `{place}` reported an I/O error (failing, or turned read-only): \
                 check it, then run the same command again (finished days are kept)"
            )),
            ErrorKind::PermissionDenied => Some(format!(
                "permission denied on `{place}`: make the output folder writable for this \
                 user or choose another --out"
            )),
            ErrorKind::NotADirectory => Some(format!(
                "a part of `{place}` is a file, not a folder: choose another --out"
            )),
            _ => None,
        }
    }
}

/// A closed, fsync'd file in the staging folder, not yet visible to readers.
#[derive(Debug)]
pub struct StagedFile {
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
}

/// Streams one chunk's batches into a Parquet file in the staging folder. `Send`.
///
/// Created by `backfill` and `sync` when a chunk's first rows arrive; [`Self::finish`] closes and
/// fsyncs it. Dropped unfinished (a failed or abandoned chunk), it deletes its file.
///
/// The first [`SMALL_FILE_ROWS`] rows are held back until the file is known to be large: a file
/// that ends below that is written with Snappy ([`Codec::for_rows`]), a larger one with zstd.
pub struct ChunkFileWriter {
    state: WriterState,
    schema: SchemaRef,
    /// The footer's key-value pairs, kept until the writer opens.
    key_values: Vec<KeyValue>,
    path: PathBuf,
    rows: u64,
    /// Set once the file is closed and fsync'd; until then, dropping deletes it.
    finished: bool,
}

enum WriterState {
    /// The file exists, empty; its batches are held until the codec is chosen.
    Holding {
        file: File,
        batches: Vec<RecordBatch>,
    },
    Writing(Box<ArrowWriter<File>>),
    /// Between states, and after the writer is closed or failed.
    Closed,
}

/// The compression of a file, chosen from its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Zstd,
    Snappy,
}

impl Codec {
    /// zstd, but for files of at most [`SMALL_FILE_ROWS`] rows: zstd builds a context per
    /// column chunk, and each context asks the CPU for its features (`cpuid`), which a virtual
    /// machine answers slowly (about 25 µs each on the bench machine): for a file of a few
    /// hundred rows that fixed cost outweighs encoding them. Snappy has no such cost, and
    /// every Parquet reader reads it.
    pub fn for_rows(rows: u64) -> Self {
        match rows as usize > SMALL_FILE_ROWS {
            true => Codec::Zstd,
            false => Codec::Snappy,
        }
    }

    fn compression(self) -> Compression {
        match self {
            Codec::Zstd => {
                Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).expect("a valid zstd level"))
            }
            Codec::Snappy => Compression::SNAPPY,
        }
    }
}

impl std::fmt::Debug for ChunkFileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkFileWriter")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// Makes staged names unique within a process even when the clock repeats a value.
static STAGED_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// A new, unique name in the staging folder for a file of `meta`'s day.
fn staged_path(staging_dir: &Path, meta: &FileMeta, extension: &str) -> PathBuf {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let n = STAGED_SEQUENCE.fetch_add(1, Ordering::Relaxed);
    staging_dir.join(format!(
        "{}-{}-{nanos}-{n}.{extension}.tmp",
        meta.object, meta.day
    ))
}

/// Whether a column's values repeat enough for a dictionary to pay: not for the record `Id`
/// nor for near-unique numbers and instants, where building one only costs time.
fn wants_dictionary(field: &arrow::datatypes::Field) -> bool {
    !(field.name() == "Id"
        || matches!(
            field.data_type(),
            DataType::Timestamp(..)
                | DataType::Float64
                | DataType::Decimal128(..)
                | DataType::Int64
        ))
}

/// The writer properties of a chunk file of `schema`, its footer carrying `key_values`.
fn writer_properties(
    schema: &SchemaRef,
    key_values: &[KeyValue],
    codec: Codec,
) -> WriterProperties {
    let builder = schema
        .fields()
        .iter()
        .filter(|f| !wants_dictionary(f))
        .fold(WriterProperties::builder(), |b, f| {
            b.set_column_dictionary_enabled(ColumnPath::from(f.name().as_str()), false)
        });
    builder
        .set_compression(codec.compression())
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_dictionary_enabled(true)
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(MAX_ROW_GROUP_BYTES))
        .set_key_value_metadata(Some(key_values.to_vec()))
        .set_created_by(format!("sfbackfill {}", env!("CARGO_PKG_VERSION")))
        .build()
}

impl ChunkFileWriter {
    /// Creates a new, uniquely named file in `staging_dir` (which must exist).
    ///
    /// # Errors
    /// [`WriteError::Io`] when the file cannot be created.
    pub fn create(
        staging_dir: &Path,
        schema: SchemaRef,
        meta: &FileMeta,
    ) -> Result<Self, WriteError> {
        Self::create_with(staging_dir, schema, meta, Vec::new())
    }

    /// [`Self::create`], with `extra` key-value pairs in the footer after `meta`'s (how
    /// `compact` says a file was compacted, and from how many).
    ///
    /// # Errors
    /// [`WriteError::Io`] when the file cannot be created.
    pub fn create_with(
        staging_dir: &Path,
        schema: SchemaRef,
        meta: &FileMeta,
        extra: Vec<KeyValue>,
    ) -> Result<Self, WriteError> {
        let path = staged_path(staging_dir, meta, "parquet");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| WriteError::from_io(&path, e))?;
        Ok(Self {
            state: WriterState::Holding {
                file,
                batches: Vec::new(),
            },
            schema,
            key_values: meta.key_values().into_iter().chain(extra).collect(),
            path,
            rows: 0,
            finished: false,
        })
    }

    /// Appends a batch of the file's schema.
    ///
    /// # Errors
    /// [`WriteError::Io`] when the disk refuses the bytes of a finished row group.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), WriteError> {
        self.rows += batch.num_rows() as u64;
        match &mut self.state {
            WriterState::Writing(writer) => writer
                .write(batch)
                .map_err(|e| WriteError::from_parquet(&self.path, e)),
            WriterState::Holding { batches, .. } => {
                batches.push(batch.clone());
                match Codec::for_rows(self.rows) {
                    Codec::Zstd => self.start_writing(Codec::Zstd),
                    Codec::Snappy => Ok(()),
                }
            }
            WriterState::Closed => Err(WriteError::Parquet(format!(
                "`{}` was written to after it failed",
                self.path.display()
            ))),
        }
    }

    /// Opens the Parquet writer with `codec` and hands it the held batches.
    fn start_writing(&mut self, codec: Codec) -> Result<(), WriteError> {
        let (file, batches) = match std::mem::replace(&mut self.state, WriterState::Closed) {
            WriterState::Holding { file, batches } => (file, batches),
            open_or_closed => {
                self.state = open_or_closed;
                return Ok(());
            }
        };
        let properties = writer_properties(&self.schema, &self.key_values, codec);
        let mut writer = ArrowWriter::try_new(file, self.schema.clone(), Some(properties))
            .map_err(|e| WriteError::from_parquet(&self.path, e))?;
        for batch in &batches {
            writer
                .write(batch)
                .map_err(|e| WriteError::from_parquet(&self.path, e))?;
        }
        self.state = WriterState::Writing(Box::new(writer));
        Ok(())
    }

    /// Closes the file (footer with metadata), fsyncs it and returns it, still staged.
    ///
    /// # Errors
    /// [`WriteError::Io`] when the last bytes or the fsync fail.
    pub fn finish(mut self) -> Result<StagedFile, WriteError> {
        let closed = self
            .start_writing(Codec::for_rows(self.rows))
            .and_then(|()| {
                let WriterState::Writing(mut writer) =
                    std::mem::replace(&mut self.state, WriterState::Closed)
                else {
                    return Err(WriteError::Parquet(format!(
                        "`{}` was finished after it failed",
                        self.path.display()
                    )));
                };
                writer
                    .finish()
                    .map_err(|e| WriteError::from_parquet(&self.path, e))?;
                let file = writer.inner();
                file.sync_all()
                    .and_then(|()| file.metadata())
                    .map_err(|e| WriteError::from_io(&self.path, e))
            });
        let metadata = closed?;
        self.finished = true;
        Ok(StagedFile {
            path: self.path.clone(),
            rows: self.rows,
            bytes: metadata.len(),
        })
    }
}

impl Drop for ChunkFileWriter {
    fn drop(&mut self) {
        if !self.finished {
            // Unfinished: the chunk failed or was abandoned; its partial file must not linger.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Concatenates staged files of one schema, in order, into a new staged file whose footer
/// carries `meta` (the `sfbackfill.*` pairs; the inputs' other pairs, such as the Arrow schema,
/// are kept from the first input). Row groups are copied as they are, column chunk by column
/// chunk, without decoding or re-encoding (as the parquet crate's `parquet-concat` does); the
/// result is closed and fsync'd, not yet visible. The inputs are left in place.
///
/// This is how a day read in several sub-ranges becomes the one file of its day.
///
/// # Errors
/// [`WriteError::Io`] when an input cannot be read or the output written;
/// [`WriteError::Parquet`] when the inputs' schemas differ or a footer cannot be parsed.
pub fn concat_staged(
    inputs: &[StagedFile],
    staging_dir: &Path,
    meta: &FileMeta,
) -> Result<StagedFile, WriteError> {
    use parquet::column::writer::ColumnCloseResult;
    use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
    use parquet::file::writer::SerializedFileWriter;

    let Some(first) = inputs.first() else {
        return Err(WriteError::Parquet("no file to concatenate".into()));
    };
    let opened = inputs
        .iter()
        .map(|input| {
            let file = File::open(&input.path).map_err(|e| WriteError::from_io(&input.path, e))?;
            let metadata = ParquetMetaDataReader::new()
                .with_page_index_policy(PageIndexPolicy::Optional)
                .parse_and_finish(&file)
                .map_err(|e| WriteError::from_parquet(&input.path, e))?;
            Ok((file, metadata))
        })
        .collect::<Result<Vec<_>, WriteError>>()?;
    let schema = opened[0].1.file_metadata().schema_descr().root_schema_ptr();
    for ((_, metadata), input) in opened.iter().zip(inputs).skip(1) {
        if metadata.file_metadata().schema_descr().root_schema_ptr() != schema {
            return Err(WriteError::Parquet(format!(
                "`{}` does not have the schema of `{}`",
                input.path.display(),
                first.path.display()
            )));
        }
    }
    let ours = meta.key_values();
    let mut key_values: Vec<KeyValue> = opened[0]
        .1
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter(|kv| !kv.key.starts_with("sfbackfill."))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    key_values.extend(ours);
    let properties = WriterProperties::builder()
        .set_key_value_metadata(Some(key_values))
        .set_created_by(format!("sfbackfill {}", env!("CARGO_PKG_VERSION")))
        .build();

    let path = staged_path(staging_dir, meta, "merged.parquet");
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| WriteError::from_io(&path, e))?;
    let copied = (|| {
        let mut writer = SerializedFileWriter::new(out, schema, Arc::new(properties))
            .map_err(|e| WriteError::from_parquet(&path, e))?;
        let mut rows = 0u64;
        for ((file, metadata), input) in opened.iter().zip(inputs) {
            let page_index = metadata.page_index();
            for (g, group) in metadata.row_groups().iter().enumerate() {
                let mut group_out = writer
                    .next_row_group()
                    .map_err(|e| WriteError::from_parquet(&path, e))?;
                for (c, column) in group.columns().iter().enumerate() {
                    let result = ColumnCloseResult {
                        bytes_written: column.compressed_size() as _,
                        rows_written: group.num_rows() as _,
                        metadata: column.clone(),
                        bloom_filter: None,
                        column_index: page_index.and_then(|pi| pi.column_index(g, c)).cloned(),
                        offset_index: page_index.and_then(|pi| pi.offset_index(g, c)).cloned(),
                    };
                    group_out
                        .append_column(file, result)
                        .map_err(|e| WriteError::from_parquet(&input.path, e))?;
                }
                group_out
                    .close()
                    .map_err(|e| WriteError::from_parquet(&path, e))?;
                rows += group.num_rows() as u64;
            }
        }
        let out = writer
            .into_inner()
            .map_err(|e| WriteError::from_parquet(&path, e))?;
        let bytes = out
            .sync_all()
            .and_then(|()| out.metadata())
            .map_err(|e| WriteError::from_io(&path, e))?
            .len();
        Ok((rows, bytes))
    })();
    match copied {
        Ok((rows, bytes)) => Ok(StagedFile { path, rows, bytes }),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// Empties a staging folder (creating it if needed): staged files of an interrupted run are
/// never published.
///
/// # Errors
/// [`WriteError::Io`] when the folder cannot be removed or created.
pub fn clear_staging(staging: &Path) -> Result<(), WriteError> {
    match std::fs::remove_dir_all(staging) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(WriteError::from_io(staging, e)),
    }
    std::fs::create_dir_all(staging).map_err(|e| WriteError::from_io(staging, e))
}

/// `OUT/OBJECT/date=YYYY-MM-DD`.
pub fn partition_dir(out: &Path, object: &str, day: NaiveDate) -> PathBuf {
    out.join(object).join(format!("date={day}"))
}

/// Renames a staged file into place (creating its folder) and fsyncs the folder.
///
/// An existing file at `final_path` is replaced atomically (how `--repull` rewrites a day):
/// a reader sees the old file or the new one, never neither.
///
/// # Errors
/// [`WriteError::Io`] naming the folder or file that could not be created, renamed or synced.
pub fn publish(staged: &StagedFile, final_path: &Path) -> Result<(), WriteError> {
    let dir = final_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_dir_durably(dir)?;
    std::fs::rename(&staged.path, final_path).map_err(|e| WriteError::from_io(final_path, e))?;
    sync_dir(dir)?;
    Ok(crate::store::published(final_path)?)
}

/// Creates `dir` and its missing parents, fsyncing the parent of each one created so the
/// new entries survive a crash.
fn create_dir_durably(dir: &Path) -> Result<(), WriteError> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    std::fs::create_dir_all(dir).map_err(|e| WriteError::from_io(dir, e))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// fsyncs a folder, making renames and creations inside it durable.
pub fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| WriteError::from_io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::PageDecoder;
    use crate::decode::tests::{field, page};
    use crate::salesforce::describe::FieldType;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Decimal128Type, TimeUnit, TimestampMillisecondType};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn meta() -> FileMeta {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        FileMeta {
            object: "Invoice__c".into(),
            day: NaiveDate::from_ymd_opt(2024, 3, 10).unwrap(),
            window_start: t("2024-03-10T00:00:00Z"),
            window_end: t("2024-03-11T00:00:00Z"),
            cursor_field: "SystemModstamp".into(),
            soql: "SELECT Id FROM Invoice__c".into(),
            extracted_at: t("2024-04-01T12:00:00Z"),
            null_fields: Vec::new(),
        }
    }

    #[test]
    fn arrow_writer_round_trip_keeps_values_types_nulls_and_metadata() {
        let fields = [
            field("Id", FieldType::Id),
            field("Amount__c", FieldType::Currency),
            field("SystemModstamp", FieldType::Datetime),
            field("Tags__c", FieldType::Multipicklist),
            field("BillingAddress", FieldType::Address),
        ];
        let decoder = PageDecoder::new(&fields).unwrap();
        let body = page(&[
            r#""Id":"a01","Amount__c":12.5,"SystemModstamp":"2024-03-10T07:15:00.000+0000","Tags__c":"A;B","BillingAddress":{"city":"Paris","latitude":48.85}"#,
            r#""Id":"a02","Amount__c":null,"SystemModstamp":null,"Tags__c":null,"BillingAddress":null"#,
        ]);
        let batch = decoder.decode(body.as_bytes()).unwrap().batch;
        let dir = tempfile::tempdir().unwrap();
        let mut w = ChunkFileWriter::create(dir.path(), decoder.schema(), &meta()).unwrap();
        w.write(&batch).unwrap();
        w.write(&batch).unwrap();
        let staged = w.finish().unwrap();
        assert_eq!(staged.rows, 4);
        assert_eq!(staged.bytes, std::fs::metadata(&staged.path).unwrap().len());
        assert!(staged.path.to_str().unwrap().ends_with(".parquet.tmp"));

        let reader = SerializedFileReader::new(File::open(&staged.path).unwrap()).unwrap();
        let kv: std::collections::HashMap<String, Option<String>> = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .iter()
            .map(|k| (k.key.clone(), k.value.clone()))
            .collect();
        let get = |k: &str| kv.get(k).cloned().flatten().unwrap_or_default();
        assert_eq!(get("sfbackfill.object"), "Invoice__c");
        assert_eq!(get("sfbackfill.day"), "2024-03-10");
        assert_eq!(get("sfbackfill.window_start"), "2024-03-10T00:00:00.000Z");
        assert_eq!(get("sfbackfill.window_end"), "2024-03-11T00:00:00.000Z");
        assert_eq!(get("sfbackfill.cursor_field"), "SystemModstamp");
        assert_eq!(get("sfbackfill.soql"), "SELECT Id FROM Invoice__c");
        assert_eq!(get("sfbackfill.extracted_at"), "2024-04-01T12:00:00.000Z");
        assert_eq!(get("sfbackfill.version"), env!("CARGO_PKG_VERSION"));
        let rg = reader.metadata().row_group(0);
        assert!(rg.column(0).statistics().is_some(), "statistics on");
        assert_eq!(
            rg.column(0).compression(),
            Compression::SNAPPY,
            "a file of a few rows is Snappy"
        );

        let batches: Vec<RecordBatch> =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&staged.path).unwrap())
                .unwrap()
                .build()
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let back = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(back.schema(), decoder.schema(), "types come back exactly");
        assert_eq!(
            back.schema().field(1).data_type(),
            &DataType::Decimal128(18, 2)
        );
        assert_eq!(
            back.schema().field(2).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert_eq!(back.num_rows(), 4);
        assert_eq!(
            back.column(1).as_primitive::<Decimal128Type>().value(2),
            1250
        );
        assert_eq!(
            back.column(2)
                .as_primitive::<TimestampMillisecondType>()
                .value(0),
            1_710_054_900_000
        );
        for c in 1..5 {
            assert!(
                back.column(c).is_null(1) && back.column(c).is_null(3),
                "column {c}"
            );
        }
        assert_eq!(&back.slice(0, 2), &batch);
    }

    #[test]
    fn publish_replaces_an_existing_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        let schema = crate::decode::schema::arrow_schema(&[field("Id", FieldType::Id)]);
        let final_path = partition_dir(&dir.path().join("out"), "Invoice__c", meta().day)
            .join("part-00000.parquet");
        assert!(final_path.ends_with("out/Invoice__c/date=2024-03-10/part-00000.parquet"));
        let mut published = Vec::new();
        for _ in 0..2 {
            let staged = ChunkFileWriter::create(&staging, schema.clone(), &meta())
                .unwrap()
                .finish()
                .unwrap();
            publish(&staged, &final_path).unwrap();
            assert!(!staged.path.exists());
            published.push(std::fs::read(&final_path).unwrap());
        }
        assert_eq!(
            std::fs::read_dir(final_path.parent().unwrap())
                .unwrap()
                .count(),
            1
        );
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
        assert_eq!(published[1], std::fs::read(&final_path).unwrap());
    }

    #[test]
    fn staged_parts_concatenate_in_order_without_re_encoding() {
        let fields = [
            field("Id", FieldType::Id),
            field("Amount__c", FieldType::Currency),
            field("SystemModstamp", FieldType::Datetime),
        ];
        let decoder = PageDecoder::new(&fields).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut parts = Vec::new();
        for (p, rows) in [(0, 3), (1, 1), (2, 2)] {
            let records: Vec<String> = (0..rows)
                .map(|r| {
                    format!(
                        r#""Id":"a{p}{r}","Amount__c":{p}.5,"SystemModstamp":"2024-03-10T0{p}:15:00.000+0000""#
                    )
                })
                .collect();
            let refs: Vec<&str> = records.iter().map(String::as_str).collect();
            let batch = decoder.decode(page(&refs).as_bytes()).unwrap().batch;
            let mut part_meta = meta();
            part_meta.soql = format!("SELECT part {p}");
            let mut w = ChunkFileWriter::create(dir.path(), decoder.schema(), &part_meta).unwrap();
            w.write(&batch).unwrap();
            parts.push(w.finish().unwrap());
        }
        let mut day = meta();
        day.soql = "SELECT part 0\nSELECT part 1\nSELECT part 2".into();
        let merged = concat_staged(&parts, dir.path(), &day).unwrap();
        assert_eq!(merged.rows, 6);
        assert_eq!(merged.bytes, std::fs::metadata(&merged.path).unwrap().len());
        // Column chunks are copied: the merged file's are byte for byte the parts'.
        let reader = SerializedFileReader::new(File::open(&merged.path).unwrap()).unwrap();
        let md = reader.metadata();
        assert_eq!(md.num_row_groups(), 3);
        for (g, part) in parts.iter().enumerate() {
            let source = SerializedFileReader::new(File::open(&part.path).unwrap()).unwrap();
            let want = source.metadata().row_group(0);
            let got = md.row_group(g);
            for c in 0..3 {
                assert_eq!(
                    got.column(c).compressed_size(),
                    want.column(c).compressed_size()
                );
                assert_eq!(got.column(c).statistics(), want.column(c).statistics());
            }
        }
        let kv: std::collections::HashMap<String, Option<String>> = md
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .iter()
            .map(|k| (k.key.clone(), k.value.clone()))
            .collect();
        assert_eq!(kv["sfbackfill.soql"].as_deref(), Some(day.soql.as_str()));
        assert_eq!(kv["sfbackfill.day"].as_deref(), Some("2024-03-10"));
        assert!(kv.contains_key("ARROW:schema"), "the Arrow schema is kept");
        let back: Vec<RecordBatch> =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&merged.path).unwrap())
                .unwrap()
                .build()
                .unwrap()
                .map(Result::unwrap)
                .collect();
        assert_eq!(back[0].schema(), decoder.schema(), "types survive");
        let ids: Vec<String> = back
            .iter()
            .flat_map(|b| {
                let ids = b.column(0).as_string::<i32>();
                (0..b.num_rows())
                    .map(|i| ids.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(ids, ["a00", "a01", "a02", "a10", "a20", "a21"]);
    }

    /// A file of `rows` one-column rows written in batches of 1,000, and its column chunks' codecs.
    fn codecs_of_a_file_of(rows: usize) -> (u64, Vec<parquet::basic::Compression>) {
        let dir = tempfile::tempdir().unwrap();
        let schema = crate::decode::schema::arrow_schema(&[field("Id", FieldType::Id)]);
        let mut w = ChunkFileWriter::create(dir.path(), schema.clone(), &meta()).unwrap();
        for start in (0..rows).step_by(1_000) {
            let ids: Vec<String> = (start..rows.min(start + 1_000))
                .map(|i| format!("a{i:014}"))
                .collect();
            let array = arrow::array::StringArray::from(ids);
            w.write(&RecordBatch::try_new(schema.clone(), vec![Arc::new(array)]).unwrap())
                .unwrap();
        }
        let staged = w.finish().unwrap();
        let reader = SerializedFileReader::new(File::open(&staged.path).unwrap()).unwrap();
        let codecs = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.column(0).compression())
            .collect();
        (reader.metadata().file_metadata().num_rows() as u64, codecs)
    }

    #[test]
    fn small_files_are_written_with_snappy_and_larger_ones_with_zstd() {
        use parquet::basic::Compression;
        let (rows, codecs) = codecs_of_a_file_of(300);
        assert_eq!((rows, codecs), (300, vec![Compression::SNAPPY]));
        let (rows, codecs) = codecs_of_a_file_of(SMALL_FILE_ROWS);
        assert_eq!(rows, SMALL_FILE_ROWS as u64);
        assert_eq!(codecs, vec![Compression::SNAPPY], "the bound is inclusive");
        let (rows, codecs) = codecs_of_a_file_of(SMALL_FILE_ROWS + 1);
        assert_eq!(
            rows,
            SMALL_FILE_ROWS as u64 + 1,
            "held rows are all written"
        );
        assert!(
            matches!(codecs[..], [Compression::ZSTD(_)]),
            "a larger file is zstd: {codecs:?}"
        );
    }

    #[test]
    fn an_unfinished_writer_removes_its_staged_file() {
        let dir = tempfile::tempdir().unwrap();
        let schema = crate::decode::schema::arrow_schema(&[field("Id", FieldType::Id)]);
        let mut w = ChunkFileWriter::create(dir.path(), schema.clone(), &meta()).unwrap();
        let ids = arrow::array::StringArray::from(vec!["a01"]);
        w.write(&RecordBatch::try_new(schema.clone(), vec![Arc::new(ids)]).unwrap())
            .unwrap();
        let w2 = ChunkFileWriter::create(dir.path(), schema, &meta()).unwrap();
        assert_ne!(w.path, w2.path, "staged names are unique");
        drop(w);
        drop(w2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_folder_under_a_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, b"x").unwrap();
        let schema = crate::decode::schema::arrow_schema(&[field("Id", FieldType::Id)]);
        let e = ChunkFileWriter::create(&file, schema.clone(), &meta()).unwrap_err();
        assert!(e.to_string().contains("not-a-folder"), "{e}");
        assert!(
            e.hint().unwrap().contains("is a file, not a folder"),
            "{:?}",
            e.hint()
        );
        assert_eq!(e.exit_kind(), ExitKind::Failure);

        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        let staged = ChunkFileWriter::create(&staging, schema, &meta())
            .unwrap()
            .finish()
            .unwrap();
        let e = publish(&staged, &file.join("date=2024-03-10/part-00000.parquet")).unwrap_err();
        assert!(matches!(e, WriteError::Io { .. }), "{e}");
        assert!(e.hint().is_some(), "{e}");
    }

    #[test]
    fn disk_errors_get_hints() {
        let full = WriteError::from_io(
            Path::new("/out/x"),
            std::io::Error::from(ErrorKind::StorageFull),
        );
        assert!(
            full.hint().unwrap().contains("free space on"),
            "{:?}",
            full.hint()
        );
        assert!(full.hint().unwrap().contains("run the same command again"));
        let ro = WriteError::from_io(
            Path::new("/out/x"),
            std::io::Error::from(ErrorKind::ReadOnlyFilesystem),
        );
        assert!(ro.hint().unwrap().contains("read-only"));
        let denied = WriteError::from_io(
            Path::new("/out/x"),
            std::io::Error::from(ErrorKind::PermissionDenied),
        );
        assert!(denied.hint().unwrap().contains("permission denied"));
        let wrapped = WriteError::from_parquet(
            Path::new("/out/x"),
            ParquetError::External(Box::new(std::io::Error::from(ErrorKind::StorageFull))),
        );
        assert!(matches!(wrapped, WriteError::Io { .. }));
    }
}
