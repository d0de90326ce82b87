//! Object storage as `--out`: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`.
//!
//! Owns what `--out` means ([`Out`]: a folder, or a bucket URL; any other scheme is refused
//! before any work) and, for a bucket, the whole object-store side: the connection built from
//! the provider's own environment (`object_store`'s `from_env` builders, and for S3 the AWS
//! profile files, `aws_profile`: no credential ever passes through a flag, an output line or
//! an object), day files uploaded whole, the journals
//! as numbered create-only objects (`journal`), and the lock object with its heartbeat (`lock`).
//!
//! How a bucket is written: the engine runs unchanged on a local *working folder*, a fresh
//! temporary folder registered here with its bucket ([`attach`]). The checkpoint, `write`,
//! `sync`, the Bulk resume and `status` call this module at seams, each a no-op for a folder
//! that is not registered: a journal's lock is taken ([`journal_lock`], [`journal_held`]: the
//! lock object, then the journal read back from the bucket into the working folder), a
//! journal append becomes the next numbered object first, a day file is published
//! ([`published`]: uploaded under its final key, then the local copy removed), a committed
//! Bulk part is uploaded ([`kept`]) and fetched back on resume ([`listed`], [`restore`]), a
//! file no longer wanted is deleted ([`discarded`]), and what the prefix holds is listed for
//! the foreign-folder check and `status` ([`names_in`], [`layout`]).
//!
//! Invariants:
//! * The bucket is the truth; the working folder is a cache rebuilt at each start and removed
//!   at the end. A kill leaves at most a temporary folder behind, never a wrong bucket.
//! * A file's key is written whole (one put, or a multipart upload completed at the end), and
//!   before the journal entry that names it: the order of the local engine holds.
//! * Two writers never write the same journal entry (create-only puts); a writer that lost its
//!   lock, or a race for an entry, writes nothing more.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{ExitKind, UserFacing};

mod aws_profile;
mod bucket;
mod journal;
mod lock;

pub use aws_profile::ProfileError;
pub(crate) use bucket::Bucket;
pub(crate) use journal::RemoteJournal;

/// The journals a working folder is filled with from its bucket (not the compaction journal:
/// `compact` refuses a bucket, so none is ever there to list).
const JOURNALS: [&str; 3] = [
    crate::checkpoint::JOURNAL_FILE,
    crate::checkpoint::bulk_jobs::BULK_JOURNAL_FILE,
    crate::checkpoint::cursors::SYNC_JOURNAL_FILE,
];

/// Where `--out` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A local folder: a plain path or a `file://` URL.
    Folder(PathBuf),
    /// An object store URL of a supported scheme.
    Bucket(url::Url),
}

impl Out {
    /// Reads `--out`: text with `://` is a URL, anything else a folder.
    ///
    /// # Errors
    /// [`StoreError::Unsupported`] for a malformed URL, one with credentials in it, or a
    /// scheme other than `file`, `s3`, `s3a`, `gs`, `az`, `adl`, `azure`, `abfs`, `abfss`.
    pub fn parse(given: &Path) -> Result<Out, StoreError> {
        let text = given.to_string_lossy();
        if !text.contains("://") {
            return Ok(Out::Folder(given.to_path_buf()));
        }
        let refuse = |reason: String| StoreError::Unsupported {
            given: without_userinfo(&text),
            reason,
        };
        let url = url::Url::parse(&text).map_err(|e| refuse(format!("not a valid URL ({e})")))?;
        // `abfs[s]://container@account...` names its container where others put a user.
        let container_first = matches!(url.scheme(), "abfs" | "abfss");
        if url.password().is_some() || (!url.username().is_empty() && !container_first) {
            return Err(refuse("credentials do not go in the URL".into()));
        }
        if url.scheme() == "file" {
            return match (url.host_str(), url.to_file_path()) {
                (None | Some("" | "localhost"), Ok(path)) => Ok(Out::Folder(path)),
                _ => Err(refuse(
                    "a file:// URL names a local folder, without a host".into(),
                )),
            };
        }
        use object_store::ObjectStoreScheme as Scheme;
        match Scheme::parse(&url) {
            Ok((Scheme::AmazonS3 | Scheme::GoogleCloudStorage | Scheme::MicrosoftAzure, _)) => {
                Ok(Out::Bucket(url))
            }
            _ => Err(refuse(format!(
                "`{}://` is not a storage sfbackfill writes to",
                url.scheme()
            ))),
        }
    }
}

/// `text` with anything between `://` and an `@` of its authority hidden: a user name or
/// password typed into a URL is never repeated back.
fn without_userinfo(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) if rest[..at].contains(':') => format!("{scheme}://***{}", &rest[at..]),
        _ => text.to_string(),
    }
}

/// A `--out` ready for a command: the folder the engine works in, and for a bucket the
/// registration that ties that working folder to its bucket. Dropping it unregisters the
/// working folder and removes it.
#[derive(Debug)]
pub struct Attached {
    folder: PathBuf,
    bucket: Option<Arc<Bucket>>,
}

impl Attached {
    /// The folder the engine reads and writes: `--out` itself, or the bucket's working folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(bucket) = self.bucket.take() {
            registry()
                .lock()
                .expect("store registry")
                .retain(|b| !Arc::ptr_eq(b, &bucket));
            let _ = std::fs::remove_dir_all(&self.folder);
        }
    }
}

/// Makes `out` ready: a folder is used as it is; a bucket is connected (credentials from the
/// environment), given a fresh working folder holding a copy of its journals (for reading, as
/// `status` and `plan` do, and for the checks before a run takes its lock), and registered.
///
/// # Errors
/// [`StoreError`] for an unsupported `--out`, a bucket that cannot be reached or read.
pub fn attach(out: &Path) -> Result<Attached, StoreError> {
    let url = match Out::parse(out)? {
        Out::Folder(folder) => {
            return Ok(Attached {
                folder,
                bucket: None,
            });
        }
        Out::Bucket(url) => url,
    };
    let folder = working_folder()?;
    let bucket = Arc::new(Bucket::connect(&url, folder.clone())?);
    let attached = Attached {
        folder,
        bucket: Some(bucket.clone()),
    };
    registry()
        .lock()
        .expect("store registry")
        .push(bucket.clone());
    for name in JOURNALS {
        journal::fetch(&bucket, name)?;
    }
    Ok(attached)
}

/// Refuses a bucket `--out` for a command that works on a local folder only.
///
/// # Errors
/// [`StoreError::LocalOnly`] naming the command, for a bucket; [`StoreError::Unsupported`] for
/// an unsupported URL.
pub fn refuse_bucket(out: &Path, command: &'static str) -> Result<PathBuf, StoreError> {
    match Out::parse(out)? {
        Out::Folder(folder) => Ok(folder),
        Out::Bucket(url) => Err(StoreError::LocalOnly {
            command,
            url: url.to_string(),
        }),
    }
}

/// A new, empty working folder in the system's temporary folder.
fn working_folder() -> Result<PathBuf, StoreError> {
    static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let folder = std::env::temp_dir().join(format!("sfbackfill-out-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).map_err(|source| StoreError::Local {
        path: folder.clone(),
        source,
    })?;
    Ok(folder)
}

type Registry = Mutex<Vec<Arc<Bucket>>>;

/// The buckets of this process, each knowing its working folder.
fn registry() -> &'static Registry {
    static REGISTRY: Registry = Mutex::new(Vec::new());
    &REGISTRY
}

/// The bucket whose working folder holds `path`, with `path` relative to that folder.
fn bucket_of(path: &Path) -> Option<(Arc<Bucket>, String)> {
    let registry = registry().lock().expect("store registry");
    registry.iter().find_map(|bucket| {
        let relative = path.strip_prefix(bucket.folder()).ok()?;
        let key: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        Some((bucket.clone(), key.join("/")))
    })
}

/// The seam of `checkpoint::Journal::open`, called once its local lock is held: for a working
/// folder, takes the bucket's lock object `lock_name` and fills the local journal
/// `journal_name` from the bucket's entries, returning where the next entries go.
///
/// # Errors
/// [`StoreError::Locked`] naming the holder; any failure to reach or read the bucket.
pub(crate) fn journal_lock(
    out: &Path,
    journal_name: &str,
    lock_name: &str,
    run: &str,
) -> Result<Option<RemoteJournal>, StoreError> {
    let Some((bucket, _)) = bucket_of(out) else {
        return Ok(None);
    };
    let lock = lock::take(&bucket, lock_name, run)?;
    let next = journal::fetch(&bucket, journal_name)?;
    Ok(Some(RemoteJournal::new(
        journal_name,
        next,
        bucket,
        Some(lock),
    )))
}

/// The seam of `checkpoint::Journal::open_held`: for a working folder, fills the local journal
/// `journal_name` from the bucket's entries and returns where its next entries go, under the
/// lock object the caller's run already holds (the backfill's, for its Bulk journal).
///
/// # Errors
/// Any failure to reach or read the bucket.
pub(crate) fn journal_held(
    out: &Path,
    journal_name: &str,
) -> Result<Option<RemoteJournal>, StoreError> {
    let Some((bucket, _)) = bucket_of(out) else {
        return Ok(None);
    };
    bucket.fence()?;
    let next = journal::fetch(&bucket, journal_name)?;
    Ok(Some(RemoteJournal::new(journal_name, next, bucket, None)))
}

/// The seam of `write::publish`, after the rename: a file in a working folder is uploaded
/// under its key, whole, then its local copy removed.
///
/// # Errors
/// [`StoreError`] when this run lost its lock or the upload failed.
pub(crate) fn published(path: &Path) -> Result<(), StoreError> {
    if !uploaded(path)? {
        return Ok(());
    }
    std::fs::remove_file(path).map_err(|source| StoreError::Local {
        path: path.to_path_buf(),
        source,
    })
}

/// Uploads a working folder's file under its key; `false` for a file of a plain folder.
fn uploaded(path: &Path) -> Result<bool, StoreError> {
    let Some((bucket, key)) = bucket_of(path) else {
        return Ok(false);
    };
    bucket.fence()?;
    bucket.upload(path, &key)?;
    Ok(true)
}

/// The seam of a Bulk commit (`backfill::bulk`): a working folder's part file is uploaded
/// under its key and kept locally, where the run goes on reading it; on a bucket the
/// committed parts are what a later run, on any machine, reads on from.
///
/// # Errors
/// [`StoreError`] when this run lost its lock or the upload failed.
pub(crate) fn kept(path: &Path) -> Result<(), StoreError> {
    uploaded(path).map(|_| ())
}

/// The files the bucket holds under a working folder's `dir`, as working-folder paths with
/// their sizes; none for a folder that is not a working folder (a local `--out` holds its
/// files itself).
///
/// # Errors
/// [`StoreError`] when listing fails.
pub(crate) fn listed(dir: &Path) -> Result<Vec<(PathBuf, u64)>, StoreError> {
    let Some((bucket, relative)) = bucket_of(dir) else {
        return Ok(Vec::new());
    };
    Ok(bucket
        .list(&relative)?
        .into_iter()
        .filter_map(|(key, size)| Some((bucket.folder().join(bucket.relative(&key)?), size)))
        .collect())
}

/// The names a working folder's bucket holds directly under its `dir`, objects and folders
/// alike (one delimiter listing); `None` for a folder that is not a working folder.
pub(crate) fn names_in(dir: &Path) -> Option<Result<Vec<String>, StoreError>> {
    let (bucket, relative) = bucket_of(dir)?;
    Some(bucket.names(&relative))
}

/// Fetches into a working folder the files named with their sizes, each unless already there
/// with its size: the committed Bulk parts a run reads on from, which a run on another machine
/// may have committed. Files of a plain folder are skipped.
///
/// # Errors
/// [`StoreError`] when a download fails.
pub(crate) fn restore<'a>(
    files: impl IntoIterator<Item = (&'a Path, u64)>,
) -> Result<(), StoreError> {
    for (path, size) in files {
        let Some((bucket, relative)) = bucket_of(path) else {
            continue;
        };
        if std::fs::metadata(path).ok().map(|m| m.len()) != Some(size) {
            bucket.download(&bucket.key(&relative), path)?;
        }
    }
    Ok(())
}

/// The seam of `sync::discard_uncommitted` and of the Bulk parts' sweep: a working folder's
/// file is deleted from its bucket.
///
/// # Errors
/// [`StoreError`] when this run lost its lock or the delete failed.
pub(crate) fn discarded(path: &Path) -> Result<(), StoreError> {
    let Some((bucket, key)) = bucket_of(path) else {
        return Ok(());
    };
    bucket.fence()?;
    bucket.delete(&key)
}

/// For a working folder, its bucket's day files per object (what `status` shows of the files
/// of a local folder); `None` for a folder.
pub fn layout(out: &Path) -> Option<Result<Vec<crate::compact::files::ObjectFiles>, StoreError>> {
    let (bucket, _) = bucket_of(out)?;
    Some(bucket.layout())
}

/// How to name `out` to the user: its bucket URL for a working folder, else the folder.
pub fn shown(out: &Path) -> String {
    match bucket_of(out) {
        Some((bucket, _)) => bucket.url().to_string(),
        None => out.display().to_string(),
    }
}

/// Why a bucket could not be used or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `--out` is a URL sfbackfill does not write to.
    #[error("--out `{given}`: {reason}")]
    Unsupported { given: String, reason: String },
    /// A command that works on local folders only was given a bucket.
    #[error("`{command}` works on a local --out for now, not `{url}`")]
    LocalOnly { command: &'static str, url: String },
    /// The store could not be set up from the URL and the environment.
    #[error("cannot use `{url}`: {message}")]
    Setup { url: String, message: String },
    /// A request to the store failed (after `object_store`'s own retries).
    #[error("cannot {action} `{key}` in `{url}`: {message}")]
    Request {
        action: &'static str,
        url: String,
        key: String,
        message: String,
    },
    /// Another process holds the lock object.
    #[error(
        "another sfbackfill is writing `{url}` ({holder}): wait for it to finish, or stop it, then run again"
    )]
    Locked { url: String, holder: String },
    /// This run's lock was taken over, or could not be renewed in time.
    #[error("this run lost its lock on `{url}` ({why}): it stops here and writes nothing more")]
    LockLost { url: String, why: String },
    /// Another writer created a journal entry this run meant to write.
    #[error(
        "another sfbackfill wrote entry {number} of `{journal}` in `{url}` first: this run stops here and writes nothing more"
    )]
    Raced {
        url: String,
        journal: String,
        number: u64,
    },
    /// A journal's entries are not numbered 0, 1, 2, ... without a gap.
    #[error("the journal `{journal}` in `{url}` lacks entry {number}")]
    Gap {
        url: String,
        journal: String,
        number: u64,
    },
    /// The AWS profile the environment chooses cannot be used.
    #[error(transparent)]
    Profile(#[from] aws_profile::ProfileError),
    /// The working folder could not be written.
    #[error("cannot write the working folder `{path}`: {source}")]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl UserFacing for StoreError {
    fn exit_kind(&self) -> ExitKind {
        match self {
            StoreError::Unsupported { .. }
            | StoreError::LocalOnly { .. }
            | StoreError::Setup { .. }
            | StoreError::Locked { .. }
            | StoreError::Gap { .. } => ExitKind::Usage,
            StoreError::Profile(e) => e.exit_kind(),
            StoreError::Request { .. }
            | StoreError::LockLost { .. }
            | StoreError::Raced { .. }
            | StoreError::Local { .. } => ExitKind::Failure,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            StoreError::Profile(e) => return e.hint(),
            StoreError::Unsupported { .. } => "give a folder, or an s3://bucket/prefix, \
                gs://bucket/prefix or az://container/prefix URL (credentials come from the \
                provider's environment, see docs/object-storage.md)"
                .into(),
            StoreError::LocalOnly { .. } => {
                "run it on a local copy of the prefix, or leave the files as they are (see docs/object-storage.md)"
                    .into()
            }
            StoreError::Setup { .. } | StoreError::Request { .. } => {
                "check the bucket's name, the network and the credentials in the environment \
                 (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, or an AWS_PROFILE), \
                 then run the same command again (finished days are kept)"
                    .into()
            }
            StoreError::Locked { .. } => format!(
                "a lock whose heartbeat is older than {} is taken over by the next run (see docs/object-storage.md)",
                humantime::format_duration(lock::stale_after())
            ),
            StoreError::LockLost { .. } | StoreError::Raced { .. } => {
                "another sfbackfill writes this prefix now: let it finish (finished days are kept)"
                    .into()
            }
            StoreError::Gap { .. } => {
                "an entry object was deleted by hand: restore it, or start a new prefix".into()
            }
            StoreError::Local { .. } => {
                "free space in the temporary folder (TMPDIR), then run the same command again"
                    .into()
            }
        })
    }
}

/// A kill -9 at a chosen step, for the store tests only: `SFBACKFILL_TEST_STORE_KILL` set to
/// `part:N` makes the process kill itself with SIGKILL when the Nth part of a multipart
/// upload has been handed to the upload (mid-upload). Unset, it costs one check per part.
static TEST_KILL: crate::kill_point::KillPoint =
    crate::kill_point::KillPoint::new("SFBACKFILL_TEST_STORE_KILL");

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Out, StoreError> {
        Out::parse(Path::new(text))
    }

    #[test]
    fn folders_and_file_urls_are_folders() {
        assert_eq!(parse("./sf").unwrap(), Out::Folder("./sf".into()));
        assert_eq!(parse("s3:").unwrap(), Out::Folder("s3:".into()));
        assert_eq!(
            parse("file:///data/sf").unwrap(),
            Out::Folder("/data/sf".into())
        );
    }

    #[test]
    fn bucket_urls_are_buckets_and_others_are_refused() {
        for url in [
            "s3://lake/one",
            "s3://lake",
            "gs://lake/one",
            "az://container/one",
            "abfss://fs@account.dfs.core.windows.net/one",
        ] {
            assert!(matches!(parse(url).unwrap(), Out::Bucket(_)), "{url}");
        }
        for url in [
            "ftp://lake/one",
            "http://lake/one",
            "memory:///x",
            "s3:///no-bucket",
            "s3://key:secret@lake/one",
            "s3://user@lake/one",
            "file://host/x",
            "s3://[bad/x",
        ] {
            let e = parse(url).unwrap_err();
            assert!(matches!(e, StoreError::Unsupported { .. }), "{url}: {e}");
            assert_eq!(e.exit_kind(), ExitKind::Usage);
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }
}
