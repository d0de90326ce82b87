//! How a run picks up the Bulk jobs an earlier run left open (killed, failed, or stopped by the
//! budget or the usage guard): which pending days each job reads on, from which locator and
//! with which committed parts, and which jobs are of no more use.
//!
//! Invariants:
//! * A job is read on only when this run would send the very same query (object, fields,
//!   cursor, window, `--include-deleted`), its pending days are consecutive and lie inside its
//!   window, and every committed part of those days is held with its journaled size (in the
//!   parts folder, or on a bucket `--out` listed by its bucket: [`held`]); otherwise it is
//!   stale, and its pending days are planned as any others.
//! * A job's days recorded done since (a kill while its days were being published) are not
//!   read again: the job's rows of those days are dropped as they arrive.
//! * After [`sweep`], the parts folder holds exactly the committed parts of the days read on.

use chrono::NaiveDate;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::bulk_jobs::{BulkState, OpenJob};
use crate::plan::spans::{self, Span};
use crate::plan::{Chunk, Window};
use crate::read::ObjectJob;
use crate::salesforce::soql;
use crate::write::StagedFile;

/// Where a job left open is read on from.
#[derive(Debug)]
pub(super) struct Resume {
    pub id: String,
    /// The job's query, and the window it reads (the span's days lie inside it).
    pub soql: String,
    pub window: Window,
    /// `None`: nothing committed yet, the results are read from their start.
    pub locator: Option<String>,
    /// Rows of the job read through `locator`.
    pub rows: u64,
    /// The committed parts of the span's days.
    pub parts: Vec<(NaiveDate, StagedFile)>,
}

/// The open jobs of the Bulk journal, sorted out for this run.
#[derive(Debug, Default)]
pub(super) struct Claimed {
    /// Spans read on by their job; their days are no longer among the run's chunks.
    pub work: Vec<(Span, Resume)>,
    /// Jobs no pending day of this run is read from: deleted and ended.
    pub stale: Vec<String>,
}

impl Claimed {
    /// The part files [`sweep`] keeps.
    pub fn kept(&self) -> HashSet<PathBuf> {
        self.parts().map(|p| p.path.clone()).collect()
    }

    /// The committed parts the spans read on use.
    pub fn parts(&self) -> impl Iterator<Item = &StagedFile> {
        self.work
            .iter()
            .flat_map(|(_, r)| r.parts.iter().map(|(_, p)| p))
    }
}

/// Takes out of `chunks` the days each open job of `state` reads on; `may_bulk` says which
/// objects this run may read through Bulk at all; `held` is what [`held`] found.
pub(super) fn claim(
    state: &BulkState,
    parts_dir: &Path,
    held: &HashMap<PathBuf, u64>,
    chunks: &mut Vec<Chunk>,
    jobs: &HashMap<String, Arc<ObjectJob>>,
    may_bulk: impl Fn(&str) -> bool,
    include_deleted: bool,
) -> Claimed {
    let mut claimed = Claimed::default();
    for (id, open) in &state.open {
        let usable = may_bulk(&open.object) && open.include_deleted == include_deleted;
        let span = usable
            .then(|| jobs.get(&open.object))
            .flatten()
            .and_then(|job| pending_span(open, job, chunks));
        let Some((span, parts)) =
            span.and_then(|s| committed_parts(open, parts_dir, held, &s).map(|p| (s, p)))
        else {
            claimed.stale.push(id.clone());
            continue;
        };
        let days: HashSet<NaiveDate> = span.days.iter().map(|c| c.day).collect();
        chunks.retain(|c| c.object != span.object || !days.contains(&c.day));
        let resume = Resume {
            id: id.clone(),
            soql: open.soql.clone(),
            window: Window {
                start: open.start,
                end: open.end,
            },
            locator: open.locator.clone(),
            rows: open.rows,
            parts,
        };
        claimed.work.push((span, resume));
    }
    claimed
}

/// The pending days of `open`'s window as one span, when this run would send its query.
fn pending_span(open: &OpenJob, job: &ObjectJob, chunks: &[Chunk]) -> Option<Span> {
    let sel = &job.selection;
    let soql = soql::bulk_range(
        &sel.object,
        &sel.identifiers(),
        &sel.cursor,
        open.start,
        open.end,
    );
    if soql != open.soql {
        return None;
    }
    let overlapping: Vec<Chunk> = chunks
        .iter()
        .filter(|c| {
            c.object == open.object && c.window.start < open.end && open.start < c.window.end
        })
        .cloned()
        .collect();
    let inside = overlapping
        .iter()
        .all(|c| open.start <= c.window.start && c.window.end <= open.end);
    let mut spans = spans::spans(overlapping);
    match (inside, spans.len()) {
        (true, 1) => spans.pop(),
        _ => None,
    }
}

/// The committed parts of `span`'s days, each checked held with its journaled size.
fn committed_parts(
    open: &OpenJob,
    parts_dir: &Path,
    held: &HashMap<PathBuf, u64>,
    span: &Span,
) -> Option<Vec<(NaiveDate, StagedFile)>> {
    open.parts
        .iter()
        .filter(|p| span.days.iter().any(|c| c.day == p.day))
        .map(|p| {
            let path = parts_dir.join(&p.file);
            let bytes = *held.get(&path)?;
            (bytes == p.bytes).then_some((
                p.day,
                StagedFile {
                    path,
                    rows: p.rows,
                    bytes,
                },
            ))
        })
        .collect()
}

/// The part files held, with their sizes: the parts folder's, and on a bucket `--out` its
/// bucket's (one listing; the bucket's size wins), not downloaded.
pub(super) fn held(parts_dir: &Path) -> io::Result<HashMap<PathBuf, u64>> {
    let mut held = HashMap::new();
    match std::fs::read_dir(parts_dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                held.insert(entry.path(), entry.metadata()?.len());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    held.extend(crate::store::listed(parts_dir).map_err(io::Error::other)?);
    Ok(held)
}

/// Removes every part file `held` names but `keep` does not (the parts folder is created if
/// missing): parts of a kill before their commit, of ended jobs, or of days since recorded.
/// On a bucket `--out` they are deleted from the bucket too.
pub(super) fn sweep(
    parts_dir: &Path,
    held: &HashMap<PathBuf, u64>,
    keep: &HashSet<PathBuf>,
) -> io::Result<()> {
    std::fs::create_dir_all(parts_dir)?;
    for path in held.keys().filter(|p| !keep.contains(*p)) {
        crate::store::discarded(path).map_err(io::Error::other)?;
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::bulk_jobs::PartFile;
    use crate::decode::tests::field;
    use crate::salesforce::describe::FieldType;
    use crate::salesforce::select::Selection;
    use crate::salesforce::soql::Identifier;
    use chrono::{DateTime, Utc};

    fn at(d: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(2025, 3, d)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
    }

    fn chunk(d: u32) -> Chunk {
        Chunk {
            object: "Case".into(),
            day: at(d).date_naive(),
            window: Window {
                start: at(d),
                end: at(d + 1),
            },
        }
    }

    fn jobs() -> HashMap<String, Arc<ObjectJob>> {
        let selection = Selection {
            object: Identifier::parse("Case").unwrap(),
            cursor: Identifier::parse("SystemModstamp").unwrap(),
            fields: vec![
                field("Id", FieldType::Id),
                field("SystemModstamp", FieldType::Datetime),
            ],
        };
        let job = ObjectJob::new(selection, 0, 16_000).unwrap();
        HashMap::from([("Case".to_string(), Arc::new(job))])
    }

    /// A job over March 1–4 with one committed part a day, each written in `dir`.
    fn state(jobs: &HashMap<String, Arc<ObjectJob>>, dir: &Path) -> BulkState {
        let sel = &jobs["Case"].selection;
        let parts = (1..=4)
            .map(|d| {
                let file = format!("part-{d}");
                std::fs::write(dir.join(&file), b"1234").unwrap();
                PartFile {
                    day: at(d).date_naive(),
                    file,
                    rows: 1,
                    bytes: 4,
                }
            })
            .collect();
        let open = OpenJob {
            object: "Case".into(),
            soql: soql::bulk_range(&sel.object, &sel.identifiers(), &sel.cursor, at(1), at(5)),
            include_deleted: false,
            start: at(1),
            end: at(5),
            created_at: at(5),
            locator: Some("L".into()),
            rows: 4,
            parts,
        };
        BulkState {
            open: [("750A".to_string(), open)].into(),
        }
    }

    fn claim_with(
        pending: &[u32],
        change: impl FnOnce(&mut BulkState, &Path),
    ) -> (Claimed, Vec<NaiveDate>) {
        let dir = tempfile::tempdir().unwrap();
        let jobs = jobs();
        let mut state = state(&jobs, dir.path());
        change(&mut state, dir.path());
        let mut chunks: Vec<Chunk> = pending.iter().map(|&d| chunk(d)).collect();
        let held = held(dir.path()).unwrap();
        let claimed = claim(
            &state,
            dir.path(),
            &held,
            &mut chunks,
            &jobs,
            |_| true,
            false,
        );
        (claimed, chunks.iter().map(|c| c.day).collect())
    }

    fn days(claimed: &Claimed) -> Vec<u32> {
        use chrono::Datelike;
        claimed.work[0].0.days.iter().map(|c| c.day.day()).collect()
    }

    #[test]
    fn a_job_whose_days_are_all_pending_is_read_on_with_every_part() {
        let (claimed, left) = claim_with(&[1, 2, 3, 4, 6], |_, _| {});
        assert!(claimed.stale.is_empty());
        assert_eq!(days(&claimed), [1, 2, 3, 4]);
        let resume = &claimed.work[0].1;
        assert_eq!(
            (resume.locator.as_deref(), resume.parts.len()),
            (Some("L"), 4)
        );
        assert_eq!(left, [at(6).date_naive()], "day 6 is planned as usual");
        assert_eq!(claimed.kept().len(), 4);
    }

    #[test]
    fn days_recorded_since_at_the_edges_are_left_out_with_their_parts() {
        let (claimed, _) = claim_with(&[2, 3], |_, _| {});
        assert_eq!(days(&claimed), [2, 3]);
        assert_eq!(
            claimed.kept().len(),
            2,
            "the parts of days 1 and 4 are swept"
        );
        assert_eq!(
            claimed.work[0].1.window.start,
            at(1),
            "the job's own window"
        );
    }

    #[test]
    fn a_job_that_cannot_be_read_on_is_stale_and_its_days_planned_as_usual() {
        let stale = |pending: &[u32], change: &dyn Fn(&mut BulkState, &Path)| {
            let (claimed, left) = claim_with(pending, |s, d| change(s, d));
            assert!(claimed.work.is_empty());
            assert_eq!(claimed.stale, ["750A"]);
            assert_eq!(left.len(), pending.len());
        };
        // A day in the middle recorded since: the pending days are not one span.
        stale(&[1, 2, 4], &|_, _| {});
        // A committed part gone, or of another size.
        stale(&[1, 2, 3, 4], &|_, d| {
            std::fs::remove_file(d.join("part-2")).unwrap()
        });
        stale(&[1, 2, 3, 4], &|_, d| {
            std::fs::write(d.join("part-3"), b"12").unwrap()
        });
        // Another query (the fields changed since).
        stale(&[1, 2, 3, 4], &|s, _| {
            s.open.get_mut("750A").unwrap().soql.push_str(", Subject")
        });
        // Another --include-deleted.
        stale(&[1, 2, 3, 4], &|s, _| {
            s.open.get_mut("750A").unwrap().include_deleted = true
        });
        // No pending day left.
        stale(&[], &|_, _| {});
    }

    #[test]
    fn the_sweep_keeps_exactly_the_named_files() {
        let dir = tempfile::tempdir().unwrap();
        let parts = dir.path().join("parts");
        std::fs::create_dir(&parts).unwrap();
        for name in ["a", "b"] {
            std::fs::write(parts.join(name), b"x").unwrap();
        }
        let held = held(&parts).unwrap();
        assert_eq!(held.len(), 2);
        sweep(&parts, &held, &HashSet::from([parts.join("a")])).unwrap();
        let left: Vec<_> = std::fs::read_dir(&parts).unwrap().flatten().collect();
        assert_eq!(left.len(), 1);
        assert!(parts.join("a").exists());
    }
}
