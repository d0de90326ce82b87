//! The files of an output folder as `compact` and `status` see them: per object, its day
//! folders and their Parquet files; and the removal of replaced files.
//!
//! Owns the listing (names ending `.parquet` in `OBJECT/date=D/`; staged `.tmp` files and
//! anything else are not data) and the rule that a replaced file is removed only while it is
//! the file the compaction read: same size, same modification time.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::checkpoint::compactions::OldFile;
use crate::write::{self, WriteError};

/// One Parquet file of a day folder.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFile {
    /// `OBJECT/date=D/NAME`, relative to the output folder: the name journals use.
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub modified: DateTime<Utc>,
}

impl DataFile {
    /// The file as a journal records what it replaces.
    pub fn old_file(&self) -> OldFile {
        OldFile {
            file: self.name.clone(),
            bytes: self.bytes,
            modified: self.modified,
        }
    }
}

/// A day folder's files, sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct DayFiles {
    pub day: NaiveDate,
    pub files: Vec<DataFile>,
}

/// The day folders of `object` in `out` that hold Parquet files, oldest day first; files named
/// in `ignored` (uncommitted sync files) are left out.
///
/// # Errors
/// [`WriteError::Io`] when a folder cannot be listed.
pub fn object_days(
    out: &Path,
    object: &str,
    ignored: &BTreeSet<String>,
) -> Result<Vec<DayFiles>, WriteError> {
    let mut days = Vec::new();
    for (day, dir) in day_dirs(out, object)? {
        let mut files = Vec::new();
        for entry in read_dir(&dir)? {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let name = format!("{object}/date={day}/{file_name}");
            if !file_name.ends_with(".parquet") || ignored.contains(&name) {
                continue;
            }
            let path = entry.path();
            let meta = entry
                .metadata()
                .map_err(|e| WriteError::from_io(&path, e))?;
            if !meta.is_file() {
                continue;
            }
            let modified = meta.modified().map_err(|e| WriteError::from_io(&path, e))?;
            files.push(DataFile {
                name,
                path,
                bytes: meta.len(),
                modified: modified.into(),
            });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        if !files.is_empty() {
            days.push(DayFiles { day, files });
        }
    }
    days.sort_by_key(|d| d.day);
    Ok(days)
}

/// `OUT/OBJECT/date=D` folders, with their day.
fn day_dirs(out: &Path, object: &str) -> Result<Vec<(NaiveDate, PathBuf)>, WriteError> {
    let dir = out.join(object);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    Ok(read_dir(&dir)?
        .into_iter()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let day = name.strip_prefix("date=")?.parse().ok()?;
            Some((day, e.path()))
        })
        .collect())
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, WriteError> {
    std::fs::read_dir(dir)
        .and_then(|entries| entries.collect())
        .map_err(|e| WriteError::from_io(dir, e))
}

/// The objects with day folders in `out`: its folders not starting with `_` or `.` that hold a
/// `date=` folder.
///
/// # Errors
/// [`WriteError::Io`] when `out` cannot be listed.
pub fn objects_in(out: &Path) -> Result<Vec<String>, WriteError> {
    let mut objects = Vec::new();
    for entry in read_dir(out)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(['_', '.']) || !entry.path().is_dir() {
            continue;
        }
        if !day_dirs(out, &name)?.is_empty() {
            objects.push(name);
        }
    }
    objects.sort();
    Ok(objects)
}

/// Removes the replaced `files` that are still what the compaction read, then fsyncs their
/// folders; a file that is gone is skipped, and one changed since (a `backfill --repull`
/// rewrote it after a killed compaction) is kept and named in a warning. Returns how many were
/// removed.
///
/// # Errors
/// [`WriteError::Io`] when a file cannot be removed or a folder synced.
pub fn remove_replaced(
    out: &Path,
    files: &[OldFile],
    mut after_each: impl FnMut(),
) -> Result<u64, WriteError> {
    let mut removed = 0;
    let mut dirs = BTreeSet::new();
    for old in files {
        let path = out.join(&old.file);
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(WriteError::from_io(&path, e)),
        };
        let modified: Option<DateTime<Utc>> = meta.modified().ok().map(Into::into);
        if meta.len() != old.bytes || modified != Some(old.modified) {
            tracing::warn!(
                "kept `{}`: it changed after the compaction that replaces it read it",
                old.file
            );
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(WriteError::from_io(&path, e)),
        }
        if let Some(dir) = path.parent() {
            dirs.insert(dir.to_path_buf());
        }
        after_each();
    }
    for dir in dirs {
        write::sync_dir(&dir)?;
    }
    Ok(removed)
}

/// Removes a day folder left without files (every row of it superseded elsewhere).
pub fn remove_if_empty(dir: &Path) {
    // Fails when a file is there: then the folder stays, as it should.
    if std::fs::remove_dir(dir).is_ok()
        && let Some(parent) = dir.parent()
    {
        let _ = write::sync_dir(parent);
    }
}

/// How an object's files lie in its day folders, for `status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectFiles {
    pub object: String,
    pub days: u64,
    pub files: u64,
    /// The most files one day folder holds (1 after a compaction with no write since).
    pub most_in_a_day: u64,
}

/// Per object of `out`, its days and files.
///
/// # Errors
/// [`WriteError::Io`] when a folder cannot be listed.
pub fn layout(out: &Path) -> Result<Vec<ObjectFiles>, WriteError> {
    objects_in(out)?
        .into_iter()
        .map(|object| {
            let days = object_days(out, &object, &BTreeSet::new())?;
            Ok(ObjectFiles {
                days: days.len() as u64,
                files: days.iter().map(|d| d.files.len() as u64).sum(),
                most_in_a_day: days.iter().map(|d| d.files.len() as u64).max().unwrap_or(0),
                object,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_still_as_read_are_removed_and_empty_days_go() {
        let out = tempfile::tempdir().unwrap();
        let day = NaiveDate::from_ymd_opt(2025, 3, 1).unwrap();
        let dir = write::partition_dir(out.path(), "Account", day);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["part-00000.parquet", "sync-r-0001.parquet", "x.parquet.tmp"] {
            std::fs::write(dir.join(name), name).unwrap();
        }
        let days = object_days(out.path(), "Account", &BTreeSet::new()).unwrap();
        assert_eq!(objects_in(out.path()).unwrap(), ["Account"]);
        let names: Vec<&str> = days[0].files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Account/date=2025-03-01/part-00000.parquet",
                "Account/date=2025-03-01/sync-r-0001.parquet"
            ]
        );
        let old: Vec<OldFile> = days[0].files.iter().map(DataFile::old_file).collect();
        // A repull rewrote the part file after the compaction read it: it stays.
        std::fs::write(dir.join("part-00000.parquet"), "rewritten, longer").unwrap();
        assert_eq!(remove_replaced(out.path(), &old, || {}).unwrap(), 1);
        assert!(dir.join("part-00000.parquet").exists());
        assert!(!dir.join("sync-r-0001.parquet").exists());
        assert_eq!(
            remove_replaced(out.path(), &old[1..], || {}).unwrap(),
            0,
            "gone: skipped"
        );
        remove_if_empty(&dir);
        assert!(dir.exists(), "a folder with files stays");
        std::fs::remove_file(dir.join("part-00000.parquet")).unwrap();
        std::fs::remove_file(dir.join("x.parquet.tmp")).unwrap();
        remove_if_empty(&dir);
        assert!(!dir.exists());
    }
}
