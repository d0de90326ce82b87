//! STUB (being replaced by its owner): Parquet chunk files, written aside, renamed into place.
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};
use std::path::{Path, PathBuf};
use crate::error::{ExitKind, UserFacing};

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
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write `{path}`: {source}")]
    Io { path: PathBuf, #[source] source: std::io::Error },
    #[error("cannot encode Parquet: {0}")]
    Parquet(String),
}

impl WriteError {
    pub fn from_io(path: &Path, source: std::io::Error) -> Self {
        WriteError::Io { path: path.to_path_buf(), source }
    }
}

impl UserFacing for WriteError {
    fn exit_kind(&self) -> ExitKind {
        ExitKind::Failure
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
pub struct ChunkFileWriter {}

impl ChunkFileWriter {
    pub fn create(_staging_dir: &Path, _schema: SchemaRef, _meta: &FileMeta) -> Result<Self, WriteError> {
        unimplemented!("write stub")
    }
    pub fn write(&mut self, _batch: &RecordBatch) -> Result<(), WriteError> {
        unimplemented!("write stub")
    }
    pub fn finish(self) -> Result<StagedFile, WriteError> {
        unimplemented!("write stub")
    }
}

/// `OUT/OBJECT/date=YYYY-MM-DD`.
pub fn partition_dir(out: &Path, object: &str, day: NaiveDate) -> PathBuf {
    out.join(object).join(format!("date={day}"))
}

/// Renames a staged file into place (creating its folder) and fsyncs the folder.
pub fn publish(_staged: &StagedFile, _final_path: &Path) -> Result<(), WriteError> {
    unimplemented!("write stub")
}
