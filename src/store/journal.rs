//! A journal in a bucket: one immutable object per append, `_sfbackfill/<journal>/<n>.json`,
//! `n` zero-padded to 20 digits from 0, each written with a create-only put
//! (`If-None-Match: *`). An object holds the whole lines of its append: one entry, or the days
//! a round of tasks finished, journaled together.
//!
//! Read back by listing the journal's entries in order and joining them into the working
//! folder's journal file, which the checkpoint then reads as it reads a local one. Entries are
//! numbered without gaps: a writer writes `n + 1` only after `n` exists, so a missing number
//! is an entry deleted by hand and refused. Two writers can never both write entry `n`: the
//! second's put fails, and that writer stops.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use futures::StreamExt;
use object_store::{ObjectStoreExt, PutMode, PutPayload};

use super::lock::HeldLock;
use super::{Bucket, StoreError};

/// Entries fetched at once when a journal is read back.
const FETCHES_IN_FLIGHT: usize = 32;

/// `_sfbackfill/<journal>`, relative to the prefix.
fn entries_of(journal: &str) -> String {
    format!("{}/{journal}", crate::checkpoint::MANIFEST_DIR)
}

fn entry_name(number: u64) -> String {
    format!("{number:020}.json")
}

/// Brings the working folder's file of `journal` up to the bucket's entries (none when it has
/// no entries); returns the number of entries, the next one's number. Entries never change
/// once written, so a fetch reads on after the entries the last fetch of this process wrote
/// when the file is as that fetch left it (a start reads the journals once to check, then
/// again under the lock: the second read costs a listing); else it reads them all.
///
/// # Errors
/// [`StoreError::Gap`] for a missing entry; [`StoreError::Request`] when listing or reading
/// fails; [`StoreError::Local`] when the working folder cannot be written.
pub(crate) fn fetch(bucket: &Bucket, journal: &str) -> Result<u64, StoreError> {
    let relative = entries_of(journal);
    let mut numbered = BTreeMap::new();
    for (key, _) in bucket.list(&relative)? {
        let number = key
            .filename()
            .and_then(|name| name.strip_suffix(".json"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(number) = number {
            numbered.insert(number, key);
        }
    }
    if let Some(missing) = (0..numbered.len() as u64).find(|n| !numbered.contains_key(n)) {
        return Err(StoreError::Gap {
            url: bucket.url().to_string(),
            journal: journal.to_string(),
            number: missing,
        });
    }
    let path = crate::checkpoint::manifest_dir(bucket.folder()).join(journal);
    let local = |source| StoreError::Local {
        path: path.clone(),
        source,
    };
    let file_len = std::fs::metadata(&path).map(|m| m.len()).ok();
    let have = bucket
        .fetched(journal)
        .filter(|&(entries, len)| Some(len) == file_len && entries <= numbered.len() as u64)
        .map_or(0, |(entries, _)| entries);
    if have == 0 {
        let _ = std::fs::remove_file(&path);
    }
    if numbered.len() as u64 == have {
        return Ok(have);
    }
    let written = |file: &std::fs::File| file.metadata().map(|m| m.len()).map_err(local);
    let store = bucket.store();
    let lines: Vec<_> = bucket.run(
        futures::stream::iter(numbered.range(have..).map(|(_, key)| key))
            .map(|key| {
                let store = store.clone();
                async move {
                    let got = store.get(key).await;
                    match got {
                        Ok(got) => got.bytes().await.map_err(|e| (key, e)),
                        Err(e) => Err((key, e)),
                    }
                }
            })
            .buffered(FETCHES_IN_FLIGHT)
            .collect(),
    );
    std::fs::create_dir_all(path.parent().expect("a manifest folder")).map_err(local)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(local)?;
    for line in lines {
        let line = line.map_err(|(key, e)| bucket.failed("read", key)(e))?;
        file.write_all(&line).map_err(local)?;
    }
    file.sync_data().map_err(local)?;
    bucket.set_fetched(journal, numbered.len() as u64, written(&file)?);
    Ok(numbered.len() as u64)
}

/// A journal of a bucket this run holds the lock of: where its next entry goes.
#[derive(Debug)]
pub(crate) struct RemoteJournal {
    journal: String,
    next: u64,
    bucket: Arc<Bucket>,
    /// The lock this journal took; none for one written under another journal's lock.
    _lock: Option<HeldLock>,
}

impl RemoteJournal {
    /// `lock` is the lock this journal took; `None` for one written while another journal of
    /// the same run holds the bucket's lock.
    pub(crate) fn new(
        journal: &str,
        next: u64,
        bucket: Arc<Bucket>,
        lock: Option<HeldLock>,
    ) -> Self {
        Self {
            journal: journal.to_string(),
            next,
            bucket,
            _lock: lock,
        }
    }

    /// After the working file took the last entry's lines and is `file_len` long: a later
    /// fetch of this journal reads on from there instead of reading every entry again.
    pub(crate) fn written_locally(&self, file_len: u64) {
        self.bucket.set_fetched(&self.journal, self.next, file_len);
    }

    /// Writes `lines` (whole JSON lines, newlines included) as the next entry, create-only.
    ///
    /// # Errors
    /// [`StoreError::LockLost`] once the lock is lost; [`StoreError::Raced`] when the entry
    /// exists already (another writer); [`StoreError::Request`] when the put fails.
    pub(crate) fn append(&mut self, lines: bytes::Bytes) -> Result<(), StoreError> {
        let bucket = &self.bucket;
        bucket.fence()?;
        let key = bucket.key(&format!(
            "{}/{}",
            entries_of(&self.journal),
            entry_name(self.next)
        ));
        let store = bucket.store();
        let payload = PutPayload::from(lines.clone());
        let put = bucket.run(store.put_opts(&key, payload, PutMode::Create.into()));
        match put {
            Ok(_) => {}
            // A put the store kept but answered with an error is retried by the client, and
            // the retry finds the entry: ours if it holds our lines (under our lock, no other
            // writer wrote them).
            Err(object_store::Error::AlreadyExists { .. }) if self.holds(&key, &lines)? => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                return Err(StoreError::Raced {
                    url: bucket.url().to_string(),
                    journal: self.journal.clone(),
                    number: self.next,
                });
            }
            Err(e) => return Err(bucket.failed("write", &key)(e)),
        }
        self.next += 1;
        Ok(())
    }

    /// Whether the entry at `key` is exactly `lines`.
    fn holds(&self, key: &object_store::path::Path, lines: &[u8]) -> Result<bool, StoreError> {
        let bucket = &self.bucket;
        let store = bucket.store();
        let got = bucket.run(async { store.get(key).await?.bytes().await });
        let got = got.map_err(bucket.failed("read", key))?;
        Ok(got.as_ref() == lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(journal: &mut RemoteJournal, path: &std::path::Path, lines: &[&str]) {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        journal.append(text.clone().into()).unwrap();
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn an_entry_found_taken_is_ours_when_it_holds_our_lines_and_a_race_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = Arc::new(Bucket::in_memory(dir.path().to_path_buf()));
        let mut first = RemoteJournal::new("j", 0, bucket.clone(), None);
        first.append("{\"run\":\"a\"}\n".into()).unwrap();
        // As a retried put whose first attempt the store kept: the same lines at entry 0.
        let mut retried = RemoteJournal::new("j", 0, bucket.clone(), None);
        retried.append("{\"run\":\"a\"}\n".into()).unwrap();
        assert_eq!(retried.next, 1, "it goes on after its entry");
        let mut other = RemoteJournal::new("j", 0, bucket.clone(), None);
        let raced = other.append("{\"run\":\"b\"}\n".into()).unwrap_err();
        assert!(
            matches!(raced, StoreError::Raced { number: 0, .. }),
            "{raced}"
        );
    }

    #[test]
    fn a_fetch_after_this_process_wrote_its_entries_keeps_the_working_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let bucket = Arc::new(Bucket::in_memory(dir.path().to_path_buf()));
        let path = crate::checkpoint::manifest_dir(dir.path()).join("j");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "").unwrap();
        let mut journal = RemoteJournal::new("j", 0, bucket.clone(), None);
        append(&mut journal, &path, &["{\"n\":0}", "{\"n\":1}"]);
        journal.written_locally(std::fs::metadata(&path).unwrap().len());
        // Held open as the checkpoint holds its journal: replacing the file would orphan it.
        let held = std::fs::File::open(&path).unwrap();
        assert_eq!(fetch(&bucket, "j").unwrap(), 1);
        let now = std::fs::metadata(&path).unwrap();
        assert_eq!(now.ino(), held.metadata().unwrap().ino(), "the same file");
    }

    #[test]
    fn entries_of_several_lines_are_read_back_whole_and_a_later_fetch_reads_on() {
        let dir = tempfile::tempdir().unwrap();
        let bucket = Arc::new(Bucket::in_memory(dir.path().to_path_buf()));
        let path = crate::checkpoint::manifest_dir(dir.path()).join("j");
        let mut journal = RemoteJournal::new("j", 0, bucket.clone(), None);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "").unwrap();
        append(&mut journal, &path, &["{\"n\":0}"]);
        append(
            &mut journal,
            &path,
            &["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"],
        );
        let whole = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();

        assert_eq!(fetch(&bucket, "j").unwrap(), 2, "two entries");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), whole);
        // Another writer's entries since (more than the file has lines): read on after the
        // two entries the file holds, not after as many entries as it has lines.
        let mut other = RemoteJournal::new("j", 2, bucket.clone(), None);
        let later: String = (4..9).map(|n| format!("{{\"n\":{n}}}\n")).collect();
        for line in later.lines() {
            other.append(format!("{line}\n").into()).unwrap();
        }
        assert_eq!(fetch(&bucket, "j").unwrap(), 7);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{whole}{later}")
        );
        // A file changed since the last fetch is read again whole.
        std::fs::write(&path, "{\"n\":0}\n").unwrap();
        assert_eq!(fetch(&bucket, "j").unwrap(), 7);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{whole}{later}")
        );
    }
}
