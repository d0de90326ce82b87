//! A heavy day read in sub-ranges side by side: what each part reads, and the hand-over of
//! their staged files to the part that finishes last, which merges them into the day's file.
//!
//! Invariants: the parts' files are handed over once, in sub-range order, only when every part
//! is in; after a part fails no file is kept and later parts' files are dropped; a day
//! abandoned before its merge (signal, budget) leaves no staged file behind.

use std::sync::{Arc, Mutex};

use crate::plan::Window;
use crate::salesforce::soql::IdRange;
use crate::write::StagedFile;

/// One sub-range of a heavy day: the part of the day's window one task reads, and of the
/// rows in it, those whose `Id` lies in `ids` (the whole range but where one window holds
/// more rows than hours can share out).
#[derive(Clone)]
pub(super) struct SubRange {
    pub index: usize,
    pub window: Window,
    pub ids: IdRange,
    pub split: Arc<DaySplit>,
}

/// A day read in sub-ranges side by side: collects their staged files until all are in.
pub(super) struct DaySplit {
    state: Mutex<SplitState>,
}

struct SplitState {
    /// Per sub-range: `None` while it runs, then its staged file (none if it had no rows)
    /// and the SOQL that read it.
    done: Vec<Option<(Option<StagedFile>, String)>>,
    /// A sub-range failed (or the day was merged): later deposits are dropped.
    closed: bool,
    failed: bool,
}

impl DaySplit {
    pub(super) fn new(parts: usize) -> Self {
        Self {
            state: Mutex::new(SplitState {
                done: (0..parts).map(|_| None).collect(),
                closed: false,
                failed: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SplitState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn has_failed(&self) -> bool {
        self.lock().failed
    }

    /// Marks the day failed and drops the staged files already in; true for the first
    /// failure only, which alone reports the day. After the hand-over only the merging task
    /// is left to fail, and it reports the day.
    pub(super) fn fail(&self) -> bool {
        let mut state = self.lock();
        let first = !state.failed;
        state.failed = true;
        state.closed = true;
        for (staged, _) in state.done.iter_mut().filter_map(Option::take) {
            remove_staged(staged);
        }
        first
    }

    /// Hands in sub-range `index`'s file; when it was the last one missing, returns every
    /// sub-range's file and SOQL in order, for the caller to merge.
    pub(super) fn deposit(
        &self,
        index: usize,
        staged: Option<StagedFile>,
        soql: String,
    ) -> Option<Vec<(Option<StagedFile>, String)>> {
        let mut state = self.lock();
        if state.closed {
            remove_staged(staged);
            return None;
        }
        state.done[index] = Some((staged, soql));
        if state.done.iter().any(Option::is_none) {
            return None;
        }
        state.closed = true;
        Some(state.done.iter_mut().filter_map(Option::take).collect())
    }
}

impl Drop for DaySplit {
    /// A day abandoned before its merge (signal, budget) leaves no staged file behind.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        for (staged, _) in state.done.iter_mut().filter_map(Option::take) {
            remove_staged(staged);
        }
    }
}

fn remove_staged(staged: Option<StagedFile>) {
    if let Some(staged) = staged {
        let _ = std::fs::remove_file(&staged.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn staged(dir: &Path, name: &str) -> Option<StagedFile> {
        let path = dir.join(name);
        std::fs::write(&path, b"x").unwrap();
        Some(StagedFile {
            path,
            rows: 1,
            bytes: 1,
        })
    }

    #[test]
    fn a_split_day_is_handed_over_once_when_its_last_sub_range_is_in() {
        let dir = tempfile::tempdir().unwrap();
        let split = DaySplit::new(3);
        assert!(
            split
                .deposit(2, staged(dir.path(), "c"), "q2".into())
                .is_none()
        );
        assert!(
            split
                .deposit(0, staged(dir.path(), "a"), "q0".into())
                .is_none()
        );
        let parts = split
            .deposit(1, None, "q1".into())
            .expect("the last one is in");
        let soql: Vec<&str> = parts.iter().map(|p| p.1.as_str()).collect();
        assert_eq!(soql, ["q0", "q1", "q2"], "in sub-range order");
        assert!(parts[1].0.is_none());
        // Once handed over, the files are the merger's; its failure reports the day.
        assert!(split.fail());
        assert!(dir.path().join("a").exists() && dir.path().join("c").exists());
    }

    #[test]
    fn a_failed_sub_range_fails_the_day_once_and_drops_its_siblings_files() {
        let dir = tempfile::tempdir().unwrap();
        let split = DaySplit::new(3);
        assert!(
            split
                .deposit(0, staged(dir.path(), "a"), "q0".into())
                .is_none()
        );
        assert!(!split.has_failed());
        assert!(split.fail(), "the first failure reports the day");
        assert!(!split.fail(), "a second one does not");
        assert!(split.has_failed());
        assert!(!dir.path().join("a").exists());
        assert!(
            split
                .deposit(2, staged(dir.path(), "c"), "q2".into())
                .is_none()
        );
        assert!(!dir.path().join("c").exists(), "a late file is dropped");
        // A day abandoned before its merge leaves nothing staged.
        let abandoned = DaySplit::new(2);
        assert!(
            abandoned
                .deposit(1, staged(dir.path(), "b"), "q".into())
                .is_none()
        );
        drop(abandoned);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
