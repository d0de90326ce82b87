//! One bucket prefix and its connection: keys under the prefix, whole-file uploads, listing.
//!
//! Requests run on the bucket's own small runtime, entered by the calling thread and awaited
//! there ([`Bucket::run`]): the callers are the engine's synchronous seams (a journal append
//! on the coordinator, a publish on the I/O runner), and the lock's heartbeat keeps beating on
//! this runtime however busy the engine's is.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutPayload, WriteMultipart};

use super::StoreError;
use super::lock::LockState;
use crate::compact::files::ObjectFiles;

/// Files up to this size are one put; larger ones a multipart upload of parts of this size.
const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Overrides the part size in bytes (S3 wants at least 5 MiB but for the last part).
const PART_SIZE_VARIABLE: &str = "SFBACKFILL_UPLOAD_PART_SIZE";
/// Parts of one file in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// A connected bucket prefix, tied to its working folder.
#[derive(Debug)]
pub(crate) struct Bucket {
    /// `--out` as given, for messages (it carries no credentials: `Out::parse` refuses them).
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    folder: PathBuf,
    part_size: usize,
    /// The locks this process holds on the prefix (the only list of them): any lost one stops
    /// every write.
    held: Mutex<Vec<Arc<LockState>>>,
    /// Per journal, the entries last fetched into the working folder and the file's length
    /// then: a later fetch reads on from there while the file is unchanged.
    fetched: Mutex<std::collections::HashMap<String, (u64, u64)>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Bucket {
    /// Connects to `url` with the provider's credentials and endpoint from the environment.
    pub(crate) fn connect(url: &url::Url, folder: PathBuf) -> Result<Self, StoreError> {
        let setup = |message: String| StoreError::Setup {
            url: url.to_string(),
            message,
        };
        let (scheme, prefix) = ObjectStoreScheme::parse(url).map_err(|e| setup(e.to_string()))?;
        // Our HTTP stack is rustls without a built-in provider; the Salesforce client installs
        // the same one, whichever connects first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store: Arc<dyn ObjectStore> = match scheme {
            ObjectStoreScheme::AmazonS3 => Arc::new(
                s3_builder()?
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| setup(e.to_string()))?,
            ),
            ObjectStoreScheme::GoogleCloudStorage => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| setup(e.to_string()))?,
            ),
            ObjectStoreScheme::MicrosoftAzure => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| setup(e.to_string()))?,
            ),
            _ => return Err(setup("not an object store URL".into())),
        };
        Self::with_store(url.to_string(), store, prefix, folder)
    }

    /// A bucket in memory, for the store's own unit tests.
    #[cfg(test)]
    pub(crate) fn in_memory(folder: PathBuf) -> Self {
        let store = Arc::new(object_store::memory::InMemory::new());
        Self::with_store("memory:///".into(), store, Key::from("one"), folder)
            .expect("a runtime starts")
    }

    fn with_store(
        url: String,
        store: Arc<dyn ObjectStore>,
        prefix: Key,
        folder: PathBuf,
    ) -> Result<Self, StoreError> {
        let setup = |message: String| StoreError::Setup {
            url: url.clone(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sfbackfill-store")
            .enable_all()
            .build()
            .map_err(|e| setup(format!("cannot start its runtime: {e}")))?;
        let part_size = std::env::var(PART_SIZE_VARIABLE)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(DEFAULT_PART_SIZE);
        Ok(Self {
            url,
            store,
            prefix,
            folder,
            part_size,
            held: Mutex::new(Vec::new()),
            fetched: Mutex::default(),
            runtime: Some(runtime),
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The entries of `journal` last fetched and the working file's length after them.
    pub(crate) fn fetched(&self, journal: &str) -> Option<(u64, u64)> {
        let fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        fetched.get(journal).copied()
    }

    pub(crate) fn set_fetched(&self, journal: &str, entries: u64, file_len: u64) {
        let mut fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        fetched.insert(journal.to_string(), (entries, file_len));
    }

    pub(crate) fn folder(&self) -> &Path {
        &self.folder
    }

    pub(crate) fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The key of `relative` (`/`-separated) under the prefix.
    pub(crate) fn key(&self, relative: &str) -> Key {
        relative
            .split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone(), |key, part| key.join(part))
    }

    /// `key` relative to the prefix, `/`-separated.
    pub(crate) fn relative(&self, key: &Key) -> Option<String> {
        let parts: Vec<String> = key
            .prefix_match(&self.prefix)?
            .map(|p| p.as_ref().to_string())
            .collect();
        Some(parts.join("/"))
    }

    /// Runs `request` to its end on the bucket's runtime, from any thread. Unconstrained:
    /// called inside an engine task, the request would otherwise spend that task's
    /// cooperative budget, and once it is spent every poll would return at once, forever.
    pub(crate) fn run<T>(&self, request: impl Future<Output = T>) -> T {
        let _entered = self.runtime.as_ref().expect("runtime until drop").enter();
        futures::executor::block_on(tokio::task::unconstrained(request))
    }

    /// Spawns `task` on the bucket's runtime (the lock's heartbeat).
    pub(crate) fn spawn(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        self.runtime
            .as_ref()
            .expect("runtime until drop")
            .spawn(task)
    }

    /// A request error about `key`.
    pub(crate) fn failed(
        &self,
        action: &'static str,
        key: &Key,
    ) -> impl FnOnce(object_store::Error) -> StoreError + '_ {
        let key = key.to_string();
        move |e| StoreError::Request {
            action,
            url: self.url.clone(),
            key,
            message: e.to_string(),
        }
    }

    /// Counts a lock this process now holds.
    pub(crate) fn hold(&self, lock: Arc<LockState>) {
        self.held.lock().expect("held locks").push(lock);
    }

    /// Whether this process holds a lock of the prefix for `run`.
    pub(crate) fn holds(&self, run: &str) -> bool {
        self.held
            .lock()
            .expect("held locks")
            .iter()
            .any(|lock| lock.run == run)
    }

    /// Forgets a released lock.
    pub(crate) fn release(&self, lock: &Arc<LockState>) {
        self.held
            .lock()
            .expect("held locks")
            .retain(|l| !Arc::ptr_eq(l, lock));
    }

    /// Refuses any write once a lock of this process is lost.
    pub(crate) fn fence(&self) -> Result<(), StoreError> {
        let held = self.held.lock().expect("held locks").clone();
        held.iter().try_for_each(|lock| lock.check(&self.url))
    }

    /// Uploads the file at `path` to `relative`: one put, or a multipart upload completed only
    /// after its last part, so the key shows the whole file or nothing.
    pub(crate) fn upload(&self, path: &Path, relative: &str) -> Result<(), StoreError> {
        let key = self.key(relative);
        let local = |source| StoreError::Local {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(local)?;
        let len = file.metadata().map_err(local)?.len();
        if len <= self.part_size as u64 {
            let mut bytes = Vec::with_capacity(len as usize);
            file.read_to_end(&mut bytes).map_err(local)?;
            let payload = PutPayload::from(Bytes::from(bytes));
            self.run(self.store.put(&key, payload))
                .map_err(self.failed("upload", &key))?;
            return Ok(());
        }
        let upload = self
            .run(self.store.put_multipart(&key))
            .map_err(self.failed("upload", &key))?;
        let mut parts = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let mut buf = vec![0u8; self.part_size];
        loop {
            let n = read_full(&mut file, &mut buf).map_err(local)?;
            if n == 0 {
                break;
            }
            let waited = self.run(parts.wait_for_capacity(PARTS_IN_FLIGHT));
            if let Err(e) = waited {
                let _ = self.run(parts.abort());
                return Err(self.failed("upload", &key)(e));
            }
            parts.write(&buf[..n]);
            super::TEST_KILL.reached("part");
        }
        self.run(parts.finish())
            .map_err(self.failed("upload", &key))?;
        Ok(())
    }

    /// Downloads `key` into the file at `path` (its folder created), streamed.
    pub(crate) fn download(&self, key: &Key, path: &Path) -> Result<(), StoreError> {
        let local = |source| StoreError::Local {
            path: path.to_path_buf(),
            source,
        };
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(local)?;
        }
        let mut file = std::fs::File::create(path).map_err(local)?;
        self.run(async {
            let got = self
                .store
                .get(key)
                .await
                .map_err(self.failed("read", key))?;
            let mut chunks = got.into_stream();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(self.failed("read", key))?;
                file.write_all(&chunk).map_err(local)?;
            }
            Ok(())
        })
    }

    /// Deletes `relative`; a key already gone is not an error.
    pub(crate) fn delete(&self, relative: &str) -> Result<(), StoreError> {
        let key = self.key(relative);
        match self.run(self.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed("delete", &key)(e)),
        }
    }

    /// Every object under `relative`, with its size.
    pub(crate) fn list(&self, relative: &str) -> Result<Vec<(Key, u64)>, StoreError> {
        let key = self.key(relative);
        self.run(async {
            let mut listed = Vec::new();
            let mut stream = self.store.list(Some(&key));
            while let Some(meta) = stream.next().await {
                let meta = meta.map_err(self.failed("list", &key))?;
                listed.push((meta.location, meta.size));
            }
            Ok(listed)
        })
    }

    /// The last part of each key and folder directly under `relative` (a delimiter listing).
    pub(crate) fn names(&self, relative: &str) -> Result<Vec<String>, StoreError> {
        let key = self.key(relative);
        let listed = self
            .run(self.store.list_with_delimiter(Some(&key)))
            .map_err(self.failed("list", &key))?;
        let objects = listed.objects.into_iter().map(|meta| meta.location);
        Ok(listed
            .common_prefixes
            .into_iter()
            .chain(objects)
            .filter_map(|path| path.filename().map(str::to_string))
            .collect())
    }

    /// Per object, its day folders and files (`OBJECT/date=D/NAME.parquet`), as `status`
    /// shows them for a local folder.
    pub(crate) fn layout(&self) -> Result<Vec<ObjectFiles>, StoreError> {
        let mut days: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (key, _) in self.list("")? {
            let Some(relative) = self.relative(&key) else {
                continue;
            };
            let parts: Vec<&str> = relative.split('/').collect();
            let [object, day, name] = parts[..] else {
                continue;
            };
            if object.starts_with(['_', '.'])
                || !day.starts_with("date=")
                || !name.ends_with(".parquet")
            {
                continue;
            }
            *days
                .entry(object.to_string())
                .or_default()
                .entry(day.to_string())
                .or_default() += 1;
        }
        Ok(days
            .into_iter()
            .map(|(object, days)| ObjectFiles {
                days: days.len() as u64,
                files: days.values().sum(),
                most_in_a_day: days.values().copied().max().unwrap_or(0),
                object,
            })
            .collect())
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        // Dropped from async code too, where a blocking runtime shutdown would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// An S3 builder from the environment, as `AmazonS3Builder::from_env`, then what the AWS
/// profile adds (`aws_profile`): its keys when the environment has none (its session token
/// with them, never the environment's), its region and endpoint when the environment has none.
fn s3_builder() -> Result<object_store::aws::AmazonS3Builder, StoreError> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey as Config};
    let profile = super::aws_profile::settings(&|name| std::env::var(name).ok())?;
    let mut builder = AmazonS3Builder::new();
    // As `from_env`: a variable that is not UTF-8 is skipped, not a panic.
    let vars = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
    for (name, value) in vars {
        let Some(key) = name
            .starts_with("AWS_")
            .then(|| name.to_ascii_lowercase().parse::<Config>().ok())
            .flatten()
        else {
            continue;
        };
        if profile.keys.is_some() && key == Config::Token {
            continue;
        }
        builder = builder.with_config(key, value);
    }
    if let Some((id, secret, token)) = profile.keys {
        builder = builder
            .with_access_key_id(id)
            .with_secret_access_key(secret);
        if let Some(token) = token {
            builder = builder.with_token(token);
        }
    }
    if let Some(region) = profile.region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = profile.endpoint_url {
        builder = builder.with_endpoint(endpoint);
    }
    Ok(builder)
}

/// Fills `buf` from `file` unless the file ends first; returns the bytes read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
