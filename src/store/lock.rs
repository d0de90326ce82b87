//! The lock object of a bucket prefix: `_sfbackfill/backfill.lock` (or `sync.lock`), JSON
//! naming its holder (host, pid, run, start) and its last heartbeat.
//!
//! Protocol (docs/object-storage.md):
//! * Taking: a create-only put (`If-None-Match: *`). If the object exists, it is read with its
//!   ETag; a holder whose heartbeat is older than the stale bound, or a process of this host
//!   that no longer runs, is taken over by a put conditional on that ETag (`If-Match`), so of
//!   two processes taking over the same stale lock one wins. Otherwise the run is refused with
//!   the holder's name.
//! * Holding: every twelfth of the bound the heartbeat is rewritten, conditional on the ETag of
//!   the last write. A failed condition means another process took the lock over: the lock is
//!   lost. A holder that could not renew it for half the bound (a network partition, a process
//!   stopped and resumed) counts it lost too, before anyone may take it over.
//! * Lost: every later write of the run is refused ([`LockState::check`]): no journal entry,
//!   no upload; the run ends with the reason.
//! * Releasing: the object is deleted if it is still this run's (same ETag).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use object_store::{ObjectStoreExt, PutMode, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use super::{Bucket, StoreError};

/// A heartbeat older than this is stale: its lock may be taken over.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(60);
/// Overrides the stale bound (a duration such as `30s` or `2m`).
pub const STALE_AFTER_VARIABLE: &str = "SFBACKFILL_LOCK_STALE_AFTER";

/// The stale bound of this process.
pub(crate) fn stale_after() -> Duration {
    std::env::var(STALE_AFTER_VARIABLE)
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_STALE_AFTER)
}

/// What the lock object holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Holder {
    host: String,
    pid: u32,
    run: String,
    started: DateTime<Utc>,
    heartbeat: DateTime<Utc>,
}

impl Holder {
    fn this_process(run: &str) -> Self {
        let now = Utc::now();
        Self {
            host: host_name(),
            pid: std::process::id(),
            run: run.to_string(),
            started: now,
            heartbeat: now,
        }
    }

    /// Why this holder's lock may be taken over at `now`, if it may.
    fn replaceable(&self, now: DateTime<Utc>, stale: Duration) -> Option<String> {
        let age = (now - self.heartbeat).to_std().unwrap_or_default();
        if age > stale {
            return Some(format!(
                "its heartbeat is {} old",
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            ));
        }
        let here = self.host == host_name();
        if here && self.pid == std::process::id() && !held_here(&self.run) {
            return Some("it was this process id of an earlier start on this host".into());
        }
        if here && self.pid != std::process::id() && !process_runs(self.pid) {
            return Some("its process no longer runs on this host".into());
        }
        None
    }

    /// The holder for a message: host, pid, run and heartbeat age.
    fn describe(&self, now: DateTime<Utc>) -> String {
        let age = (now - self.heartbeat).num_seconds().max(0);
        format!(
            "host {}, pid {}, run {}, heartbeat {age}s ago",
            self.host, self.pid, self.run
        )
    }

    fn payload(&self) -> PutPayload {
        PutPayload::from(serde_json::to_vec(self).expect("a holder serialises"))
    }
}

/// The state of a lock this process holds, shared with its heartbeat.
#[derive(Debug)]
pub(crate) struct LockState {
    /// The run holding it.
    pub(crate) run: String,
    version: Mutex<UpdateVersion>,
    renewed: Mutex<Instant>,
    lost: Mutex<Option<String>>,
    stale: Duration,
}

impl LockState {
    /// Refuses a write once the lock is lost, or not renewed for half the stale bound.
    pub(crate) fn check(&self, url: &str) -> Result<(), StoreError> {
        let mut lost = self.lost.lock().expect("lock state");
        let silent = self.renewed.lock().expect("lock state").elapsed();
        if lost.is_none() && silent > self.stale / 2 {
            *lost = Some(format!(
                "its heartbeat could not be renewed for {}s",
                silent.as_secs()
            ));
        }
        match &*lost {
            Some(why) => Err(StoreError::LockLost {
                url: url.to_string(),
                why: why.clone(),
            }),
            None => Ok(()),
        }
    }

    fn lose(&self, why: String) {
        self.lost.lock().expect("lock state").get_or_insert(why);
    }
}

/// A held lock object; dropping it stops the heartbeat and deletes the object if still ours.
#[derive(Debug)]
pub(crate) struct HeldLock {
    bucket: Arc<Bucket>,
    relative: String,
    state: Arc<LockState>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        self.heartbeat.abort();
        self.bucket.release(&self.state);
        if self.state.lost.lock().expect("lock state").is_some() {
            return;
        }
        let ours = self.state.version.lock().expect("lock state").e_tag.clone();
        let store = self.bucket.store();
        let key = self.bucket.key(&self.relative);
        self.bucket.run(async {
            if let Ok(meta) = store.head(&key).await
                && meta.e_tag == ours
            {
                let _ = store.delete(&key).await;
            }
        });
    }
}

/// Takes the lock object `_sfbackfill/<name>` of `bucket` for `run`.
///
/// # Errors
/// [`StoreError::Locked`] naming a live holder; [`StoreError::Request`] when the store fails.
pub(crate) fn take(bucket: &Arc<Bucket>, name: &str, run: &str) -> Result<HeldLock, StoreError> {
    let relative = format!("{}/{name}", crate::checkpoint::MANIFEST_DIR);
    let key = bucket.key(&relative);
    let store = bucket.store();
    let stale = stale_after();
    let me = Holder::this_process(run);
    let created = bucket.run(store.put_opts(&key, me.payload(), PutMode::Create.into()));
    let version = match created {
        Ok(put) => UpdateVersion::from(put),
        Err(object_store::Error::AlreadyExists { .. }) => take_over(bucket, &key, &me, stale)?,
        Err(e) => return Err(bucket.failed("create", &key)(e)),
    };
    let state = Arc::new(LockState {
        run: run.to_string(),
        version: Mutex::new(version),
        renewed: Mutex::new(Instant::now()),
        lost: Mutex::new(None),
        stale,
    });
    bucket.hold(state.clone());
    let heartbeat = bucket.spawn(beat(
        store,
        key,
        me,
        state.clone(),
        bucket.url().to_string(),
    ));
    Ok(HeldLock {
        bucket: bucket.clone(),
        relative,
        state,
        heartbeat,
    })
}

/// Reads the existing lock and takes it over if it is replaceable, conditional on its ETag.
fn take_over(
    bucket: &Bucket,
    key: &object_store::path::Path,
    me: &Holder,
    stale: Duration,
) -> Result<UpdateVersion, StoreError> {
    let store = bucket.store();
    let (holder, version) = bucket
        .run(async {
            let got = store.get(key).await?;
            let version = UpdateVersion {
                e_tag: got.meta.e_tag.clone(),
                version: got.meta.version.clone(),
            };
            Ok::<_, object_store::Error>((got.bytes().await?, version))
        })
        .map_err(bucket.failed("read", key))?;
    let holder: Holder = serde_json::from_slice(&holder).map_err(|e| StoreError::Locked {
        url: bucket.url().to_string(),
        holder: format!("unreadable lock object `{key}`: {e}"),
    })?;
    let now = Utc::now();
    let locked = |holder: &Holder| StoreError::Locked {
        url: bucket.url().to_string(),
        holder: holder.describe(now),
    };
    let Some(why) = holder.replaceable(now, stale) else {
        return Err(locked(&holder));
    };
    match bucket.run(store.put_opts(key, me.payload(), PutMode::Update(version).into())) {
        Ok(put) => {
            eprintln!(
                "warning: took over the lock of `{}` from {} ({why})",
                bucket.url(),
                holder.describe(now)
            );
            Ok(UpdateVersion::from(put))
        }
        Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {
            Err(locked(&holder))
        }
        Err(e) => Err(bucket.failed("take over", key)(e)),
    }
}

/// Renews the heartbeat every twelfth of the stale bound until the lock is lost or dropped.
async fn beat(
    store: Arc<dyn object_store::ObjectStore>,
    key: object_store::path::Path,
    mut me: Holder,
    state: Arc<LockState>,
    url: String,
) {
    let every = state.stale / 12;
    loop {
        tokio::time::sleep(every).await;
        if state.check(&url).is_err() {
            return;
        }
        me.heartbeat = Utc::now();
        let version = state.version.lock().expect("lock state").clone();
        match store
            .put_opts(&key, me.payload(), PutMode::Update(version).into())
            .await
        {
            Ok(put) => {
                *state.version.lock().expect("lock state") = UpdateVersion::from(put);
                *state.renewed.lock().expect("lock state") = Instant::now();
            }
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => {
                let by = match store.get(&key).await {
                    Ok(got) => got
                        .bytes()
                        .await
                        .ok()
                        .and_then(|b| serde_json::from_slice::<Holder>(&b).ok())
                        .map(|h| h.describe(Utc::now())),
                    Err(_) => None,
                };
                let why = match by {
                    Some(by) => format!("taken over by {by}"),
                    None => "taken over by another process".into(),
                };
                eprintln!("error: this run lost its lock on `{url}` ({why}): it stops");
                state.lose(why);
                return;
            }
            Err(e) => tracing::warn!("cannot renew the lock of `{url}`: {e}"),
        }
    }
}

/// Whether a lock of this process, on any of its buckets, is `run`'s: a lock naming this
/// process's id is an earlier start's only when this process does not hold it.
fn held_here(run: &str) -> bool {
    super::registry()
        .lock()
        .expect("store registry")
        .iter()
        .any(|bucket| bucket.holds(run))
}

/// This machine's host name (in a container, usually the pod's name).
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its full length, which is passed.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match ok {
        true => String::from_utf8_lossy(&buf[..end]).into_owned(),
        false => "unknown host".into(),
    }
}

/// Whether a process `pid` runs on this host.
fn process_runs(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let sent = unsafe { libc::kill(pid, 0) } == 0;
    sent || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(host: &str, pid: u32, age_secs: i64) -> Holder {
        let at = Utc::now() - chrono::Duration::seconds(age_secs);
        Holder {
            host: host.into(),
            pid,
            run: "r".into(),
            started: at,
            heartbeat: at,
        }
    }

    #[test]
    fn a_fresh_lock_of_a_live_or_remote_process_is_kept_and_a_stale_one_is_not() {
        let stale = Duration::from_secs(60);
        let now = Utc::now();
        let parent = std::os::unix::process::parent_id();
        assert!(
            holder(&host_name(), parent, 5)
                .replaceable(now, stale)
                .is_none()
        );
        assert!(holder("elsewhere", 1, 5).replaceable(now, stale).is_none());
        assert!(holder("elsewhere", 1, 61).replaceable(now, stale).is_some());
        assert!(
            holder(&host_name(), u32::MAX / 2, 5)
                .replaceable(now, stale)
                .is_some()
        );
    }
}
