//! One day's Parquet file while its rows arrive, and how it is published: alone, or merged
//! from the staged files of the day's sub-ranges.
//!
//! Invariants: a file is created with the day's first row (a day with no rows has none, unless
//! it replaces one); a published file is fsync'd and renamed into place before the day is
//! reported done; the staged parts of a merged day are removed once it is in place or failed.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::Utc;
use std::path::{Path, PathBuf};

use super::{CHUNK_FILE, Context};
use crate::plan::Chunk;
use crate::read::ObjectJob;
use crate::write::{self, ChunkFileWriter, FileMeta, StagedFile, WriteError};

/// A chunk whose file is in place.
#[derive(Debug)]
pub(super) struct ChunkDone {
    pub rows: u64,
    pub bytes: u64,
    pub file: Option<String>,
}

/// The Parquet file of one chunk while its pages arrive.
pub(super) struct ChunkSink {
    writer: Option<ChunkFileWriter>,
    staging: PathBuf,
    schema: SchemaRef,
    meta: FileMeta,
}

impl ChunkSink {
    /// The sink of `chunk`'s day, read by `soql`; its file is created with the day's first row.
    pub(super) fn new(ctx: &Context, job: &ObjectJob, chunk: &Chunk, soql: &str) -> Self {
        Self {
            writer: None,
            staging: ctx.staging.clone(),
            schema: job.file_schema(),
            meta: FileMeta {
                object: chunk.object.clone(),
                day: chunk.day,
                window_start: chunk.window.start,
                window_end: chunk.window.end,
                cursor_field: job.selection.cursor.to_string(),
                soql: soql.to_string(),
                extracted_at: Utc::now(),
                null_fields: job.null_columns(),
            },
        }
    }

    /// A new, empty sink of the same day and query: one staged part of a day whose rows
    /// arrive in no order (a Bulk job's), published later with [`Self::publish_parts`].
    pub(super) fn part(&self) -> Self {
        self.part_in(&self.staging)
    }

    /// [`Self::part`], its file written in `dir` (a Bulk job's committed parts folder).
    pub(super) fn part_in(&self, dir: &Path) -> Self {
        Self {
            writer: None,
            staging: dir.to_path_buf(),
            schema: self.schema.clone(),
            meta: self.meta.clone(),
        }
    }

    /// Writes rows of the files' schema (`ObjectJob::file_batch`).
    pub(super) fn write(&mut self, batch: &RecordBatch) -> Result<(), WriteError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.writer.is_none() {
            self.writer = Some(ChunkFileWriter::create(
                &self.staging,
                self.schema.clone(),
                &self.meta,
            )?);
        }
        self.writer.as_mut().expect("created above").write(batch)
    }

    /// Closes a sub-range's file, still staged (none if the sub-range had no rows), with the
    /// SOQL that read it.
    pub(super) fn finish(self) -> Result<(Option<StagedFile>, String), WriteError> {
        let staged = self.writer.map(ChunkFileWriter::finish).transpose()?;
        Ok((staged, self.meta.soql))
    }

    /// Publishes a day read in sub-ranges: their staged files (with the SOQL that read each),
    /// concatenated in order into the day's one file, which names every sub-range's query.
    /// The staged parts are removed once the day's file is in place (or on failure).
    pub(super) fn publish_parts(
        mut self,
        parts: Vec<(Option<StagedFile>, String)>,
        out: &Path,
    ) -> Result<ChunkDone, WriteError> {
        let (staged, mut soql): (Vec<Option<StagedFile>>, Vec<String>) = parts.into_iter().unzip();
        // A Bulk day's parts all come from one job's query: it is named once.
        soql.dedup();
        let staged: Vec<StagedFile> = staged.into_iter().flatten().collect();
        self.meta.soql = soql.join("\n");
        let merged = match staged.as_slice() {
            [] => return self.publish(out),
            parts => write::concat_staged(parts, &self.staging, &self.meta),
        };
        let published = merged.and_then(|merged| {
            let dir = write::partition_dir(out, &self.meta.object, self.meta.day);
            write::publish(&merged, &dir.join(CHUNK_FILE))?;
            Ok(merged)
        });
        for part in staged {
            let _ = std::fs::remove_file(&part.path);
        }
        let merged = published?;
        Ok(ChunkDone {
            rows: merged.rows,
            bytes: merged.bytes,
            file: Some(format!(
                "{}/date={}/{CHUNK_FILE}",
                self.meta.object, self.meta.day
            )),
        })
    }

    /// Publishes the file; a day with no rows publishes an empty file only to replace one.
    pub(super) fn publish(self, out: &Path) -> Result<ChunkDone, WriteError> {
        let dir = write::partition_dir(out, &self.meta.object, self.meta.day);
        let final_path = dir.join(CHUNK_FILE);
        let writer = match self.writer {
            Some(w) => w,
            None if final_path.exists() => {
                ChunkFileWriter::create(&self.staging, self.schema, &self.meta)?
            }
            None => {
                return Ok(ChunkDone {
                    rows: 0,
                    bytes: 0,
                    file: None,
                });
            }
        };
        let staged = writer.finish()?;
        write::publish(&staged, &final_path)?;
        Ok(ChunkDone {
            rows: staged.rows,
            bytes: staged.bytes,
            file: Some(format!(
                "{}/date={}/{CHUNK_FILE}",
                self.meta.object, self.meta.day
            )),
        })
    }
}
