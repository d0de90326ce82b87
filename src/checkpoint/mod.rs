//! The checkpoint manifest: the sole truth on which chunks are done.
//!
//! Owns everything under `OUT/_sfbackfill/`: the append-only journal of chunk outcomes and the
//! lock that keeps a second writer out, (in [`cursors`]) the sync journal with its own lock,
//! (in [`compactions`]) the compaction journal, and (in [`bulk_jobs`]) the journal of the
//! backfill's open Bulk jobs with their committed part files. Does not own the Parquet files
//! (`write`) nor decide what runs (`backfill`); only the run's coordinator appends.
//!
//! Invariants:
//! * Recording a chunk costs one appended line and one `fsync`, whatever the manifest's size.
//! * A chunk is recorded done only after its file is durable and in place (the caller's order).
//! * A kill at any moment leaves at worst a torn last line, which the next open drops: the
//!   chunk it described is simply not done and runs again, replacing its file atomically.
//! * Any other unreadable line means the manifest is corrupt or foreign; we refuse to guess.

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{ExitKind, UserFacing};

pub mod bulk_jobs;
pub mod compactions;
pub mod cursors;
pub mod status;
use crate::plan::{Chunk, Window};

/// The manifest folder's name inside the output folder.
pub const MANIFEST_DIR: &str = "_sfbackfill";
/// The backfill journal's file name.
pub(crate) const JOURNAL_FILE: &str = "backfill.journal";
/// The lock file's name; its content names the holder.
const LOCK_FILE: &str = "backfill.lock";
/// The first line of every journal; tells our manifests from anything else.
const FORMAT: &str = "sfbackfill-manifest";
/// Bumped when the journal's lines change incompatibly.
const FORMAT_VERSION: u32 = 1;

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// The first line: identifies the file as ours.
    Header {
        format: String,
        version: u32,
        created_at: DateTime<Utc>,
    },
    /// A run began (for `status` and for people reading the journal).
    RunStarted {
        run: String,
        pid: u32,
        at: DateTime<Utc>,
    },
    /// The columns and cursor an object's chunks are written with, from this line on: a new
    /// line each time they change (spec "Schema drift"), so each chunk's columns are those of
    /// the last such line before its `ChunkDone`. `types`, `missing` and `at` are absent from
    /// journals written before sfbackfill followed drift, and read as empty.
    ObjectConfig {
        object: String,
        /// The files' columns, in order; those in `missing` are written as null.
        fields: Vec<String>,
        cursor_field: String,
        chunk_timezone: String,
        include_deleted: bool,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        types: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        missing: BTreeMap<String, DateTime<Utc>>,
        /// When the run that wrote this line started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<DateTime<Utc>>,
    },
    /// A run planned these days of an object; those not done since are pending, or not over
    /// yet while their end is less than the safety lag ago.
    Planned {
        object: String,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        chunk_timezone: String,
        /// The run's `--safety-lag` in milliseconds; absent in journals of older versions,
        /// which read it as none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        safety_lag_ms: Option<i64>,
    },
    /// A chunk's file (if it had rows) is durable and in place.
    ChunkDone {
        object: String,
        day: NaiveDate,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        rows: u64,
        bytes: u64,
        file: Option<String>,
        run: String,
        at: DateTime<Utc>,
    },
    /// A chunk gave up after its retries; it runs again next time.
    ChunkFailed {
        object: String,
        day: NaiveDate,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        error: String,
        run: String,
        at: DateTime<Utc>,
    },
    /// A run ended, normally or stopped early.
    RunEnded {
        run: String,
        at: DateTime<Utc>,
        outcome: String,
        /// What it sent; absent in journals of older versions and for runs refused early.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<RunUsage>,
    },
}

/// What a run sent to Salesforce, and the org's daily API usage as Salesforce last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunUsage {
    /// Requests sent, token requests and retries included.
    pub requests: u64,
    /// Of them, those that repeated a failed attempt.
    pub retries: u64,
    /// The org's daily requests used and allocated, when Salesforce reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_used: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_max: Option<u64>,
}

/// What the manifest knows of one chunk: the latest entry about it.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkState {
    Done {
        window: Window,
        rows: u64,
        bytes: u64,
        file: Option<String>,
        /// The object's config its file was written with: an index into
        /// [`ManifestState::versions`]; `None` when no config preceded it.
        version: Option<usize>,
    },
    Failed {
        window: Window,
        error: String,
    },
}

/// An object's recorded columns and cursor: what its files are written with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectConfig {
    /// The files' columns, in order: the fields queried, then those in `missing`.
    pub fields: Vec<String>,
    pub cursor_field: String,
    pub chunk_timezone: String,
    pub include_deleted: bool,
    /// The Arrow type (`decode::schema::type_name`) of every column the object's files have
    /// had, removed ones included, so a type change is caught even for a field that returns;
    /// empty in journals written before sfbackfill recorded types.
    pub types: BTreeMap<String, String>,
    /// Columns the org no longer shows (deleted, or hidden from the Run-As user), written as
    /// null, each with the start of the first run that found it missing.
    pub missing: BTreeMap<String, DateTime<Utc>>,
}

/// One recorded config of an object and when the run that recorded it started (`None` in
/// journals written before sfbackfill followed drift).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigVersion {
    pub config: ObjectConfig,
    pub at: Option<DateTime<Utc>>,
}

impl ObjectConfig {
    /// The line recording this config for `object`, by a run started `at`.
    pub fn entry(&self, object: &str, at: DateTime<Utc>) -> Entry {
        Entry::ObjectConfig {
            object: object.to_string(),
            fields: self.fields.clone(),
            cursor_field: self.cursor_field.clone(),
            chunk_timezone: self.chunk_timezone.clone(),
            include_deleted: self.include_deleted,
            types: self.types.clone(),
            missing: self.missing.clone(),
            at: Some(at),
        }
    }

    /// How `now` differs from this recorded config in what places rows in days and files, in
    /// words for an error; none when the two may write the same folder. The columns are not
    /// compared: they follow "Schema drift" (`read::drift`). The cursor is named first.
    pub fn difference(&self, now: &ObjectConfig) -> Option<String> {
        if self.cursor_field != now.cursor_field {
            Some(format!(
                "cursor `{}`, not `{}`",
                self.cursor_field, now.cursor_field
            ))
        } else if self.chunk_timezone != now.chunk_timezone {
            Some(format!(
                "chunk time zone `{}`, not `{}`",
                self.chunk_timezone, now.chunk_timezone
            ))
        } else if self.include_deleted != now.include_deleted {
            Some("another --include-deleted setting".to_string())
        } else {
            None
        }
    }
}

/// A window a run planned for an object: its days are pending until recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedWindow {
    pub window: Window,
    pub chunk_timezone: String,
    /// A day of it is over once its end is this far in the past.
    pub safety_lag: chrono::Duration,
}

/// Everything the journal says, folded: the latest state per chunk.
#[derive(Debug, Clone, Default)]
pub struct ManifestState {
    pub chunks: BTreeMap<(String, NaiveDate), ChunkState>,
    /// Per object, its latest config.
    pub objects: BTreeMap<String, ObjectConfig>,
    /// Per object, every config recorded, oldest first; a done chunk names its own.
    pub versions: BTreeMap<String, Vec<ConfigVersion>>,
    /// Per object, the windows runs planned.
    pub planned: BTreeMap<String, Vec<PlannedWindow>>,
    pub last_run_started: Option<DateTime<Utc>>,
    pub last_run_ended: Option<(DateTime<Utc>, String)>,
    /// What the last run that ended sent, if it recorded that.
    pub last_run_usage: Option<RunUsage>,
}

impl ManifestState {
    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Header { .. } => {}
            Entry::RunStarted { at, .. } => self.last_run_started = Some(at),
            Entry::RunEnded {
                at, outcome, usage, ..
            } => {
                self.last_run_ended = Some((at, outcome));
                self.last_run_usage = usage;
            }
            Entry::Planned {
                object,
                start,
                end,
                chunk_timezone,
                safety_lag_ms,
            } => {
                let plans = self.planned.entry(object).or_default();
                let plan = PlannedWindow {
                    window: Window { start, end },
                    chunk_timezone,
                    safety_lag: chrono::Duration::milliseconds(safety_lag_ms.unwrap_or(0)),
                };
                if !plans.contains(&plan) {
                    plans.push(plan);
                }
            }
            Entry::ObjectConfig {
                object,
                fields,
                cursor_field,
                chunk_timezone,
                include_deleted,
                types,
                missing,
                at,
            } => {
                let config = ObjectConfig {
                    fields,
                    cursor_field,
                    chunk_timezone,
                    include_deleted,
                    types,
                    missing,
                };
                self.versions
                    .entry(object.clone())
                    .or_default()
                    .push(ConfigVersion {
                        config: config.clone(),
                        at,
                    });
                self.objects.insert(object, config);
            }
            Entry::ChunkDone {
                object,
                day,
                start,
                end,
                rows,
                bytes,
                file,
                ..
            } => {
                let window = Window { start, end };
                let version = self.versions.get(&object).map(|v| v.len() - 1);
                let state = ChunkState::Done {
                    window,
                    rows,
                    bytes,
                    file,
                    version,
                };
                self.chunks.insert((object, day), state);
            }
            Entry::ChunkFailed {
                object,
                day,
                start,
                end,
                error,
                ..
            } => {
                let state = ChunkState::Failed {
                    window: Window { start, end },
                    error,
                };
                self.chunks.insert((object, day), state);
            }
        }
    }

    /// True when the chunk of `object` on `day` is done over at least `window`.
    pub fn is_done(&self, object: &str, day: NaiveDate, window: &Window) -> bool {
        matches!(
            self.chunks.get(&(object.to_string(), day)),
            Some(ChunkState::Done { window: w, .. }) if w.start <= window.start && window.end <= w.end
        )
    }

    /// Done chunks of `object`.
    pub fn done_chunks<'a>(&'a self, object: &'a str) -> impl Iterator<Item = NaiveDate> + 'a {
        self.chunks.iter().filter_map(move |((o, day), s)| {
            (o == object && matches!(s, ChunkState::Done { .. })).then_some(*day)
        })
    }
}

/// Why the manifest could not be read, locked or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Another process holds the lock.
    #[error(
        "another sfbackfill is writing `{out}` ({holder}): wait for it to finish, or stop it, then run again"
    )]
    Locked { out: PathBuf, holder: String },
    /// The journal has an unreadable line that is not a torn last line.
    #[error("the manifest `{path}` is corrupt at line {line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// The folder holds a manifest of another tool or format.
    #[error("`{path}` is not an sfbackfill manifest (format {found}): use another `--out` folder")]
    Foreign { path: PathBuf, found: String },
    /// The journal was written by a newer sfbackfill.
    #[error(
        "`{path}` was written by a newer sfbackfill (journal format {version}): upgrade sfbackfill to continue this folder"
    )]
    Newer { path: PathBuf, version: u32 },
    /// Reading or writing under `_sfbackfill/` failed.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The object store `--out` refused or failed a lock or journal operation.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl UserFacing for CheckpointError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            CheckpointError::Locked { .. }
            | CheckpointError::Corrupt { .. }
            | CheckpointError::Foreign { .. }
            | CheckpointError::Newer { .. } => ExitKind::Usage,
            CheckpointError::Io { .. } => ExitKind::Failure,
            CheckpointError::Store(e) => e.exit_kind(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            CheckpointError::Corrupt { path, .. } => Some(format!(
                "move `{}` aside to start that output folder afresh (its chunks will be fetched again)",
                path.display()
            )),
            CheckpointError::Io { source, .. } => Some(io_hint(source).into()),
            CheckpointError::Store(e) => e.hint(),
            _ => None,
        }
    }
}

/// What to do about a failed read or write of the manifest.
fn io_hint(source: &io::Error) -> &'static str {
    match source.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            "the disk is full: free space, then run the same command again (finished work is kept)"
        }
        io::ErrorKind::ReadOnlyFilesystem => {
            "the folder's file system is read-only: make it writable, then run the same command again"
        }
        _ if source.raw_os_error() == Some(libc::EIO) => {
            "the disk reported an I/O error (failing, or turned read-only): check it, then run the same command again"
        }
        _ => "fix the folder's space or permissions, then run the same command again",
    }
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> CheckpointError + 'a {
    move |source| CheckpointError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Path of the manifest folder in `out`.
pub fn manifest_dir(out: &Path) -> PathBuf {
    out.join(MANIFEST_DIR)
}

/// Reads the manifest of `out` without locking it (for `status` and `plan`).
///
/// A folder without a manifest reads as empty.
pub fn read(out: &Path) -> Result<ManifestState, CheckpointError> {
    let mut state = ManifestState::default();
    if !read_unlocked(out, JOURNAL_FILE, (FORMAT, FORMAT_VERSION), |e| {
        state.apply(e)
    })? {
        refuse_foreign_folder(out)?;
    }
    Ok(state)
}

/// Folds the journal `name` of `out` through `apply` without locking it (for `status` and
/// `plan`); `false` when there is none.
pub(crate) fn read_unlocked<E: JournalLine>(
    out: &Path,
    name: &str,
    format: (&str, u32),
    apply: impl FnMut(E),
) -> Result<bool, CheckpointError> {
    let path = manifest_dir(out).join(name);
    match File::open(&path) {
        Ok(file) => {
            read_journal(&path, file, format, apply)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("read", &path)(e)),
    }
}

/// A `_sfbackfill` folder with files but no journal was not made by us. On a bucket `--out`
/// the bucket's `_sfbackfill/` is the one checked, as its URL.
fn refuse_foreign_folder(out: &Path) -> Result<(), CheckpointError> {
    let mut dir = manifest_dir(out);
    let names: Vec<String> = match crate::store::names_in(&dir) {
        Some(names) => {
            dir = PathBuf::from(format!("{}/{MANIFEST_DIR}", crate::store::shown(out)));
            names?
        }
        None => match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => return Ok(()),
        },
    };
    let ours = |name: &str| {
        name == "staging"
            || name.ends_with(".lock")
            || name == cursors::SYNC_JOURNAL_FILE
            || name == cursors::SYNC_STAGING_DIR
            || name == compactions::COMPACT_JOURNAL_FILE
            || name == bulk_jobs::BULK_JOURNAL_FILE
            || name == bulk_jobs::BULK_PARTS_DIR
    };
    let foreign = names.into_iter().find(|name| !ours(name));
    match foreign {
        Some(name) => Err(CheckpointError::Foreign {
            path: dir,
            found: format!("unknown file `{name}`"),
        }),
        None => Ok(()),
    }
}

/// A journal's line type: the first line of every journal is a header naming its format.
pub(crate) trait JournalLine: Serialize + DeserializeOwned {
    /// `(format, version)` when this line is a header.
    fn header(&self) -> Option<(&str, u32)>;
}

impl JournalLine for Entry {
    fn header(&self) -> Option<(&str, u32)> {
        match self {
            Entry::Header {
                format, version, ..
            } => Some((format, *version)),
            _ => None,
        }
    }
}

/// Reads a journal of `format`, handing each line to `apply`; returns the byte length of its
/// valid prefix (a torn last line is not part of it).
pub(crate) fn read_journal<E: JournalLine>(
    path: &Path,
    file: File,
    format: (&str, u32),
    mut apply: impl FnMut(E),
) -> Result<u64, CheckpointError> {
    let mut reader = BufReader::new(file);
    let mut valid_len = 0u64;
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        number += 1;
        let complete = line.ends_with(b"\n");
        let parsed = serde_json::from_slice::<E>(&line);
        match (parsed, complete) {
            (Ok(entry), true) => {
                check_header(path, number, entry.header(), format)?;
                apply(entry);
                valid_len += n as u64;
            }
            // A torn last line: the write it belonged to never finished.
            (_, false) => break,
            (Err(e), true) => {
                if number == 1 {
                    return Err(CheckpointError::Foreign {
                        path: path.to_path_buf(),
                        found: "unreadable first line".into(),
                    });
                }
                return Err(CheckpointError::Corrupt {
                    path: path.to_path_buf(),
                    line: number,
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(valid_len)
}

fn check_header(
    path: &Path,
    number: usize,
    header: Option<(&str, u32)>,
    expected: (&str, u32),
) -> Result<(), CheckpointError> {
    match (number, header) {
        (1, Some(found)) if found == expected => Ok(()),
        (1, Some((format, version))) if format == expected.0 && version > expected.1 => {
            Err(CheckpointError::Newer {
                path: path.to_path_buf(),
                version,
            })
        }
        (1, Some((format, version))) => Err(CheckpointError::Foreign {
            path: path.to_path_buf(),
            found: format!("`{format}` version {version}"),
        }),
        (1, None) => Err(CheckpointError::Foreign {
            path: path.to_path_buf(),
            found: "no header".into(),
        }),
        (_, Some(_)) => Err(CheckpointError::Corrupt {
            path: path.to_path_buf(),
            line: number,
            reason: "a second header".into(),
        }),
        _ => Ok(()),
    }
}

/// An open, locked, append-only journal under `_sfbackfill/`. Dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
    /// The length of the complete lines written so far.
    len: u64,
    /// A write failed: later lines would follow a torn one, so none are written.
    broken: bool,
    /// For an object store `--out`, the bucket's journal, written before each local append.
    remote: Option<crate::store::RemoteJournal>,
    /// The lock this journal took; none for one opened under a lock its caller holds.
    _lock: Option<File>,
}

impl Journal {
    /// Locks `lock_name` and opens `journal_name` in the manifest folder of `out`, writing
    /// `header` into a new journal and handing every line of an existing one to `apply`. A torn
    /// last line left by a killed process is cut off.
    pub(crate) fn open<E: JournalLine>(
        out: &Path,
        journal_name: &str,
        lock_name: &str,
        run: &str,
        header: E,
        apply: impl FnMut(E),
    ) -> Result<Self, CheckpointError> {
        let dir = manifest_dir(out);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let lock = acquire_lock(out, &dir.join(lock_name), run)?;
        let remote = crate::store::journal_lock(out, journal_name, lock_name, run)?;
        Self::open_locked(out, journal_name, header, apply, Some(lock), remote)
    }

    /// Opens `journal_name` as [`Self::open`] does, under a lock the caller already holds
    /// (the backfill's Bulk journal is written only while the manifest is open).
    pub(crate) fn open_held<E: JournalLine>(
        out: &Path,
        journal_name: &str,
        header: E,
        apply: impl FnMut(E),
    ) -> Result<Self, CheckpointError> {
        let remote = crate::store::journal_held(out, journal_name)?;
        Self::open_locked(out, journal_name, header, apply, None, remote)
    }

    fn open_locked<E: JournalLine>(
        out: &Path,
        journal_name: &str,
        header: E,
        apply: impl FnMut(E),
        lock: Option<File>,
        remote: Option<crate::store::RemoteJournal>,
    ) -> Result<Self, CheckpointError> {
        let dir = manifest_dir(out);
        let path = dir.join(journal_name);
        let format = header.header().expect("a header line");
        let format = (format.0.to_string(), format.1);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let is_new = file.metadata().map_err(io_err("read", &path))?.len() == 0;
        if !is_new {
            let reader = file.try_clone().map_err(io_err("read", &path))?;
            let valid_len = read_journal(&path, reader, (&format.0, format.1), apply)?;
            drop_torn_tail(&file, &path, valid_len)?;
        }
        let len = file.seek(SeekFrom::End(0)).map_err(io_err("open", &path))?;
        let mut journal = Self {
            file,
            path,
            len,
            broken: false,
            remote,
            _lock: lock,
        };
        if is_new {
            journal.append(&header)?;
            sync_dir(&dir)?;
        }
        Ok(journal)
    }

    /// Appends one line and makes it durable before returning. After a failed write (a full
    /// disk) the torn line is cut off if possible and the journal takes no more lines this
    /// run, so a later line never follows a fragment the next run would call corruption.
    pub(crate) fn append(&mut self, entry: &impl Serialize) -> Result<(), CheckpointError> {
        self.append_lines(line_of(entry))
    }

    /// Appends `entries` as [`Self::append`] does one: one write and one sync, and on a
    /// bucket one entry object holding their lines.
    pub(crate) fn append_all<E: Serialize>(
        &mut self,
        entries: &[E],
    ) -> Result<(), CheckpointError> {
        self.append_lines(entries.iter().flat_map(line_of).collect())
    }

    fn append_lines(&mut self, lines: Vec<u8>) -> Result<(), CheckpointError> {
        if self.broken {
            return Err(io_err("write", &self.path)(io::Error::other(
                "an earlier write to it failed in this run",
            )));
        }
        let lines = bytes::Bytes::from(lines);
        if let Some(remote) = &mut self.remote {
            remote
                .append(lines.clone())
                .inspect_err(|_| self.broken = true)?;
        }
        match write_lines(&mut self.file, &self.path, &lines) {
            Ok(written) => {
                self.len += written;
                if let Some(remote) = &self.remote {
                    remote.written_locally(self.len);
                }
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }
}

/// The open, locked manifest of one output folder. Dropping it releases the lock.
#[derive(Debug)]
pub struct Manifest {
    journal: Journal,
    state: ManifestState,
    run: String,
}

impl Manifest {
    /// Opens (creating if needed) and locks the manifest of `out`.
    ///
    /// # Errors
    /// `Locked` when another process holds it, naming that process; `Corrupt`/`Foreign` for
    /// a journal we did not write; `Io` when the folder cannot be created or written.
    pub fn open(out: &Path, run: &str) -> Result<Self, CheckpointError> {
        if !manifest_dir(out).join(JOURNAL_FILE).exists() {
            refuse_foreign_folder(out)?;
        }
        let header = Entry::Header {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            created_at: Utc::now(),
        };
        let mut state = ManifestState::default();
        let journal = Journal::open(out, JOURNAL_FILE, LOCK_FILE, run, header, |e| {
            state.apply(e)
        })?;
        let mut manifest = Self {
            journal,
            state,
            run: run.to_string(),
        };
        manifest.append(Entry::RunStarted {
            run: run.to_string(),
            pid: std::process::id(),
            at: Utc::now(),
        })?;
        Ok(manifest)
    }

    pub fn state(&self) -> &ManifestState {
        &self.state
    }

    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// Records `chunk` failed by this run with `error`, durably.
    pub fn append_failed(&mut self, chunk: &Chunk, error: &str) -> Result<(), CheckpointError> {
        self.append(Entry::ChunkFailed {
            object: chunk.object.clone(),
            day: chunk.day,
            start: chunk.window.start,
            end: chunk.window.end,
            error: error.to_string(),
            run: self.run_id().to_string(),
            at: Utc::now(),
        })
    }

    /// Appends one entry and makes it durable before returning.
    pub fn append(&mut self, entry: Entry) -> Result<(), CheckpointError> {
        self.journal.append(&entry)?;
        self.state.apply(entry);
        Ok(())
    }

    /// Appends `entries` in one write, durable before returning ([`Journal::append_all`]).
    pub fn append_all(&mut self, entries: Vec<Entry>) -> Result<(), CheckpointError> {
        self.journal.append_all(&entries)?;
        for entry in entries {
            self.state.apply(entry);
        }
        Ok(())
    }
}

/// `entry` as one journal line, its newline included.
fn line_of(entry: &impl Serialize) -> Vec<u8> {
    let mut line = serde_json::to_vec(entry).expect("journal entries serialise");
    line.push(b'\n');
    line
}

/// Appends whole lines durably; returns their length in bytes.
fn write_lines(file: &mut File, path: &Path, lines: &[u8]) -> Result<u64, CheckpointError> {
    // One write call: a crash tears at most one line, the last written, which the next open
    // drops; the lines before it are whole.
    file.write_all(lines).map_err(io_err("write", path))?;
    file.sync_data().map_err(io_err("sync", path))?;
    Ok(lines.len() as u64)
}

fn drop_torn_tail(journal: &File, path: &Path, valid_len: u64) -> Result<(), CheckpointError> {
    let len = journal.metadata().map_err(io_err("read", path))?.len();
    if len > valid_len {
        tracing::warn!(
            "dropping a torn last line of `{}` left by an interrupted run",
            path.display()
        );
        journal.set_len(valid_len).map_err(io_err("repair", path))?;
        journal.sync_data().map_err(io_err("sync", path))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}

/// Takes the advisory lock; the file's text names the holder for the next process's message.
fn acquire_lock(out: &Path, path: &Path, run: &str) -> Result<File, CheckpointError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err("open", path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(path)
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "holder unknown".into());
            return Err(CheckpointError::Locked {
                out: out.to_path_buf(),
                holder: holder.trim().to_string(),
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", path)(e)),
    }
    let text = format!(
        "pid {}, started {}, run {run}",
        std::process::id(),
        Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    );
    file.set_len(0).map_err(io_err("write", path))?;
    file.write_all(text.as_bytes())
        .map_err(io_err("write", path))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(fields: &[&str]) -> ObjectConfig {
        ObjectConfig {
            fields: fields.iter().map(|f| f.to_string()).collect(),
            cursor_field: "LastModifiedDate".into(),
            chunk_timezone: "UTC".into(),
            include_deleted: false,
            ..ObjectConfig::default()
        }
    }

    #[test]
    fn an_unchanged_config_has_no_difference() {
        let a = config(&["Id", "LastModifiedDate", "Name"]);
        assert_eq!(a.difference(&a.clone()), None);
    }

    #[test]
    fn a_changed_field_list_is_not_a_difference_but_drift() {
        let recorded = config(&["Id", "LastModifiedDate", "Name", "Phone"]);
        let now = config(&["Id", "LastModifiedDate", "Name", "Fax"]);
        assert_eq!(recorded.difference(&now), None);
    }

    #[test]
    fn a_config_line_of_an_older_journal_reads_without_types_and_each_chunk_names_its_config() {
        let out = tempfile::tempdir().unwrap();
        drop(Manifest::open(out.path(), "r1").unwrap());
        let path = manifest_dir(out.path()).join(JOURNAL_FILE);
        let old = r#"{"kind":"object_config","object":"Account","fields":["Id","LastModifiedDate"],"cursor_field":"LastModifiedDate","chunk_timezone":"UTC","include_deleted":false}"#;
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        writeln!(f, "{old}").unwrap();
        drop(f);
        let mut m = Manifest::open(out.path(), "r2").unwrap();
        assert_eq!(
            m.state().objects["Account"],
            config(&["Id", "LastModifiedDate"])
        );
        m.append(done("Account", 1, 5)).unwrap();
        let mut drifted = config(&["Id", "LastModifiedDate", "Gone__c"]);
        drifted.types.insert("Gone__c".into(), "Date32".into());
        let at = Utc::now();
        drifted.missing.insert("Gone__c".into(), at);
        m.append(drifted.entry("Account", at)).unwrap();
        m.append(done("Account", 2, 5)).unwrap();
        drop(m);
        let state = read(out.path()).unwrap();
        assert_eq!(state.objects["Account"], drifted);
        assert_eq!(state.versions["Account"].len(), 2);
        assert_eq!(state.versions["Account"][1].at, Some(at));
        let version =
            |d| match &state.chunks[&("Account".to_string(), window(d).start.date_naive())] {
                ChunkState::Done { version, .. } => *version,
                other => panic!("{other:?}"),
            };
        assert_eq!((version(1), version(2)), (Some(0), Some(1)));
    }

    #[test]
    fn a_changed_cursor_is_named() {
        let recorded = config(&["Id", "LastModifiedDate", "SystemModstamp"]);
        let mut now = config(&["Id", "SystemModstamp", "LastModifiedDate"]);
        now.cursor_field = "SystemModstamp".into();
        assert_eq!(
            recorded.difference(&now).as_deref(),
            Some("cursor `LastModifiedDate`, not `SystemModstamp`")
        );
    }

    #[test]
    fn zone_and_deleted_rows_are_differences_too() {
        let recorded = config(&["Id", "LastModifiedDate"]);
        let mut zoned = recorded.clone();
        zoned.chunk_timezone = "Europe/Paris".into();
        assert_eq!(
            recorded.difference(&zoned).as_deref(),
            Some("chunk time zone `UTC`, not `Europe/Paris`")
        );
        let mut deleted = recorded.clone();
        deleted.include_deleted = true;
        assert_eq!(
            recorded.difference(&deleted).as_deref(),
            Some("another --include-deleted setting")
        );
    }

    fn window(d: u32) -> Window {
        let start = NaiveDate::from_ymd_opt(2025, 3, d)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        Window {
            start,
            end: start + chrono::Duration::days(1),
        }
    }

    fn done(object: &str, d: u32, rows: u64) -> Entry {
        let w = window(d);
        Entry::ChunkDone {
            object: object.into(),
            day: w.start.date_naive(),
            start: w.start,
            end: w.end,
            rows,
            bytes: rows * 10,
            file: Some(format!(
                "{object}/date={}/part-00000.parquet",
                w.start.date_naive()
            )),
            run: "r1".into(),
            at: Utc::now(),
        }
    }

    #[test]
    fn reopened_manifest_remembers_done_chunks() {
        let out = tempfile::tempdir().unwrap();
        {
            let mut m = Manifest::open(out.path(), "r1").unwrap();
            m.append(done("Account", 1, 5)).unwrap();
            m.append(done("Account", 2, 7)).unwrap();
        }
        let m = Manifest::open(out.path(), "r2").unwrap();
        let day = |d| NaiveDate::from_ymd_opt(2025, 3, d).unwrap();
        assert!(m.state().is_done("Account", day(1), &window(1)));
        assert!(m.state().is_done("Account", day(2), &window(2)));
        assert!(!m.state().is_done("Account", day(3), &window(3)));
        assert!(!m.state().is_done("Contact", day(1), &window(1)));
    }

    #[test]
    fn days_appended_together_are_each_remembered_and_a_torn_one_is_dropped_alone() {
        let out = tempfile::tempdir().unwrap();
        {
            let mut m = Manifest::open(out.path(), "r1").unwrap();
            let days = (1..=3).map(|d| done("Account", d, d.into())).collect();
            m.append_all(days).unwrap();
        }
        // A crash inside the write: the last day's line is cut off.
        let path = manifest_dir(out.path()).join(JOURNAL_FILE);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 20)
            .unwrap();
        let m = Manifest::open(out.path(), "r2").unwrap();
        let day = |d| NaiveDate::from_ymd_opt(2025, 3, d).unwrap();
        assert!(m.state().is_done("Account", day(1), &window(1)));
        assert!(m.state().is_done("Account", day(2), &window(2)));
        assert!(!m.state().is_done("Account", day(3), &window(3)));
    }

    #[test]
    fn a_plan_remembers_its_safety_lag_and_an_older_plan_reads_as_none() {
        let older = r#"{"kind":"planned","object":"Case","start":"2025-03-01T00:00:00Z","end":"2025-03-02T00:00:00Z","chunk_timezone":"UTC"}"#;
        let mut state = ManifestState::default();
        state.apply(serde_json::from_str(older).unwrap());
        let w = window(1);
        let newer = Entry::Planned {
            object: "Lead".into(),
            start: w.start,
            end: w.end,
            chunk_timezone: "UTC".into(),
            safety_lag_ms: Some(300_000),
        };
        let line = serde_json::to_string(&newer).unwrap();
        assert!(line.contains(r#""safety_lag_ms":300000"#), "{line}");
        state.apply(serde_json::from_str(&line).unwrap());
        assert_eq!(
            state.planned["Case"][0].safety_lag,
            chrono::Duration::zero()
        );
        assert_eq!(
            state.planned["Lead"][0].safety_lag,
            chrono::Duration::minutes(5)
        );
    }

    #[test]
    fn a_failed_entry_after_done_makes_the_chunk_pending_again() {
        let out = tempfile::tempdir().unwrap();
        let mut m = Manifest::open(out.path(), "r1").unwrap();
        m.append(done("Account", 1, 5)).unwrap();
        let w = window(1);
        m.append(Entry::ChunkFailed {
            object: "Account".into(),
            day: w.start.date_naive(),
            start: w.start,
            end: w.end,
            error: "boom".into(),
            run: "r1".into(),
            at: Utc::now(),
        })
        .unwrap();
        assert!(!m.state().is_done("Account", w.start.date_naive(), &w));
    }

    #[test]
    fn second_writer_is_refused_and_told_who_holds_the_lock() {
        let out = tempfile::tempdir().unwrap();
        let _first = Manifest::open(out.path(), "r1").unwrap();
        let err = Manifest::open(out.path(), "r2").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CheckpointError::Locked { .. }));
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("started"), "{msg}");
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_its_chunk_runs_again() {
        let out = tempfile::tempdir().unwrap();
        {
            let mut m = Manifest::open(out.path(), "r1").unwrap();
            m.append(done("Account", 1, 5)).unwrap();
        }
        let path = manifest_dir(out.path()).join(JOURNAL_FILE);
        let full = serde_json::to_string(&done("Account", 2, 7)).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&full.as_bytes()[..full.len() / 2]).unwrap();
        drop(f);
        let mut m = Manifest::open(out.path(), "r2").unwrap();
        let day2 = NaiveDate::from_ymd_opt(2025, 3, 2).unwrap();
        assert!(!m.state().is_done("Account", day2, &window(2)));
        m.append(done("Account", 3, 1)).unwrap();
        drop(m);
        let again = read(out.path()).unwrap();
        assert_eq!(again.chunks.len(), 2);
    }

    #[test]
    fn a_corrupt_middle_line_is_refused_not_guessed() {
        let out = tempfile::tempdir().unwrap();
        drop(Manifest::open(out.path(), "r1").unwrap());
        let path = manifest_dir(out.path()).join(JOURNAL_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{not json}\n").unwrap();
        drop(f);
        let err = Manifest::open(out.path(), "r2").unwrap_err();
        assert!(
            matches!(err, CheckpointError::Corrupt { line: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_foreign_manifest_is_refused() {
        let out = tempfile::tempdir().unwrap();
        let dir = manifest_dir(out.path());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(JOURNAL_FILE), "hello\n").unwrap();
        assert!(matches!(
            Manifest::open(out.path(), "r").unwrap_err(),
            CheckpointError::Foreign { .. }
        ));
        fs::remove_file(dir.join(JOURNAL_FILE)).unwrap();
        fs::write(dir.join("state.db"), "x").unwrap();
        assert!(matches!(
            read(out.path()).unwrap_err(),
            CheckpointError::Foreign { .. }
        ));
    }

    #[test]
    fn appending_costs_one_line_whatever_the_size() {
        let out = tempfile::tempdir().unwrap();
        let mut m = Manifest::open(out.path(), "r1").unwrap();
        let path = manifest_dir(out.path()).join(JOURNAL_FILE);
        let before = fs::metadata(&path).unwrap().len();
        m.append(done("Account", 1, 5)).unwrap();
        let one = fs::metadata(&path).unwrap().len() - before;
        for d in 2..=28 {
            m.append(done("Account", d, 5)).unwrap();
        }
        let before = fs::metadata(&path).unwrap().len();
        m.append(done("Contact", 1, 5)).unwrap();
        let grew = fs::metadata(&path).unwrap().len() - before;
        assert!(
            grew <= one + 2,
            "appending grew the journal by {grew} bytes, one line is {one}"
        );
    }
}
