//! A full disk and an output folder that turns read-only mid-run: a clear error, nothing
//! corrupted, and the run completes once the cause is gone.
//!
//! Both tests use real file systems, mounted by the test, so they need root with
//! `CAP_SYS_ADMIN`. Whether mounting works is probed once; where it is refused each test says
//! so in one line on stderr and passes, so `cargo test` works for anyone. CI sets
//! `SFBACKFILL_REQUIRE_MOUNTS=1`: then a refused mount fails the test, so a CI that lost the
//! right does not pass silently.
//!
//! * the full disk is a `tmpfs` of a few hundred KiB, grown afterwards with
//!   `mount -o remount,size=…` (files and the journal stay open and in place);
//! * the read-only folder is an ext4 image on a loop device mounted `errors=remount-ro`, turned
//!   read-only mid-run by the kernel's own error path (`/sys/fs/ext4/DEV/trigger_fs_error`),
//!   exactly as a failing disk does it, then repaired the way an operator does it: unmount,
//!   `e2fsck -fy`, mount again.
//!
//! Why not `mount -o remount,ro` of a tmpfs or of a read-only bind mount: the kernel refuses
//! (`EBUSY`) to make a mount read-only while a file on it is open for writing, and the journal
//! is open for the whole run; a read-only bind mount over a subfolder would turn the publishing
//! `rename` into `EXDEV` (a different mount), which is not what a read-only disk does.
//!
//! Figures and commands: docs/reliability.md, section 3.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sfbackfill_fake_org::{FakeOrgConfig, Faults};

use crate::support::*;

/// How to run these tests where they were skipped.
const HOW_TO_RUN: &str = "run it as root with CAP_SYS_ADMIN, e.g. `sudo cargo test --test it disk`";

/// Why this process may not mount a file system (the `mount` error), or `None` if it can:
/// probed once by mounting a tiny tmpfs on a temporary folder and unmounting it. Only a
/// refusal for want of rights (or no `mount` program) is a reason to skip: any other mount
/// failure is a broken test machine and fails the probe.
fn mount_refused() -> Option<&'static str> {
    static PROBE: OnceLock<Option<String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let mount = output(Command::new("mount").args([
                "-t",
                "tmpfs",
                "-o",
                "size=16k",
                "tmpfs",
                path_str(dir.path()),
            ]));
            match mount {
                Err(e) => Some(format!("cannot run mount: {e}")),
                Ok(o) if !o.status.success() => {
                    let err = String::from_utf8_lossy(&o.stderr);
                    let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
                    let lower = err.to_lowercase();
                    let refused = [
                        "permission denied",
                        "not permitted",
                        "must be superuser",
                        "only root",
                    ]
                    .iter()
                    .any(|r| lower.contains(r));
                    assert!(
                        refused,
                        "mounting a tmpfs failed, not for want of rights: {err} ({})",
                        o.status
                    );
                    Some(err)
                }
                Ok(_) => {
                    system("umount", &[path_str(dir.path())], &[0]);
                    None
                }
            }
        })
        .as_deref()
}

/// Whether `test` can mount here. If not, it says so in one line on stderr and the caller
/// returns (the test passes), unless `SFBACKFILL_REQUIRE_MOUNTS` is set (CI): then it fails.
fn can_mount(test: &str) -> bool {
    let Some(why) = mount_refused() else {
        return true;
    };
    let required =
        std::env::var("SFBACKFILL_REQUIRE_MOUNTS").is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{test}: mounting is refused ({why}) but SFBACKFILL_REQUIRE_MOUNTS is set; {HOW_TO_RUN}"
    );
    // Straight to stderr, not `eprintln!`, which the test harness captures and hides for a
    // test that passes: a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "skipped {test}: mounting is refused ({why}); {HOW_TO_RUN}"
    );
    false
}

/// Runs a system command; panics with its output unless its exit code is in `ok`.
fn system(program: &str, args: &[&str], ok: &[i32]) -> Output {
    let o = output(Command::new(program).args(args))
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        o.status.code().is_some_and(|c| ok.contains(&c)),
        "{program} {args:?}: {}\n{}{}\n(these tests mount real file systems and need root, \
         as CI has)",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// A tmpfs of a given size, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(kib: u64) -> Self {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let size = format!("size={kib}k");
        system(
            "mount",
            &["-t", "tmpfs", "-o", &size, "tmpfs", path_str(&dir)],
            &[0],
        );
        Tmpfs {
            dir,
            _parent: parent,
        }
    }

    /// More (or less) room, with everything on it left in place and open files still open.
    fn resize(&self, kib: u64) {
        let size = format!("remount,size={kib}k");
        system("mount", &["-o", &size, path_str(&self.dir)], &[0]);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = output(Command::new("umount").arg("-l").arg(&self.dir));
    }
}

/// An ext4 file system on a loop device, mounted `errors=remount-ro`; unmounted on drop.
struct Ext4 {
    image: PathBuf,
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Ext4 {
    fn mount(mib: u64) -> Self {
        let parent = tempfile::tempdir().unwrap();
        let image = parent.path().join("disk.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(mib << 20)
            .unwrap();
        system("mkfs.ext4", &["-q", "-F", path_str(&image)], &[0]);
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let fs = Ext4 {
            image,
            dir,
            _parent: parent,
        };
        fs.attach();
        fs
    }

    fn attach(&self) {
        system(
            "mount",
            &[
                "-o",
                "loop,errors=remount-ro",
                path_str(&self.image),
                path_str(&self.dir),
            ],
            &[0],
        );
    }

    /// The kernel's ext4 error path: with `errors=remount-ro` the file system turns read-only
    /// at once, open files included, as when the disk under it fails.
    fn fail_read_only(&self) {
        let source = system(
            "findmnt",
            &["-n", "-o", "SOURCE", path_str(&self.dir)],
            &[0],
        );
        let source = String::from_utf8_lossy(&source.stdout).trim().to_string();
        let device = Path::new(&source).file_name().unwrap().to_string_lossy();
        std::fs::write(
            format!("/sys/fs/ext4/{device}/trigger_fs_error"),
            "sfbackfill disk test\n",
        )
        .expect("ext4 error trigger");
    }

    /// Whether creating a file is refused as on a read-only file system (mount options show
    /// `rw,…,emergency_ro` after an error, so ask the file system itself).
    fn is_read_only(&self) -> bool {
        let probe = self.dir.join("probe");
        match std::fs::write(&probe, b"") {
            Ok(()) => {
                std::fs::remove_file(&probe).unwrap();
                false
            }
            Err(e) => e.kind() == std::io::ErrorKind::ReadOnlyFilesystem,
        }
    }

    /// What an operator does: unmount, check and repair, mount again (writable).
    fn repair(&self) {
        system("umount", &[path_str(&self.dir)], &[0]);
        // 1: errors were corrected (the error flag, free counts), as expected after the error.
        system("e2fsck", &["-f", "-y", path_str(&self.image)], &[0, 1]);
        self.attach();
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = output(Command::new("umount").arg("-l").arg(&self.dir));
    }
}

fn backfill_args(out: &Path, objects: &str, start: &str, end: &str) -> Vec<String> {
    [
        "backfill",
        "--objects",
        objects,
        "--start",
        start,
        "--end",
        end,
        "--out",
        path_str(out),
        "--all-fields",
        "--concurrency",
        "2",
        "--progress",
        "off",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn run_args(url: &str, args: &[String]) -> Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(url, &refs).await
}

/// The end of an inclusive `--end` day as a SOQL datetime literal.
fn day_after(end: &str) -> String {
    let d = chrono::NaiveDate::parse_from_str(end, "%Y-%m-%d").unwrap() + chrono::Duration::days(1);
    format!("{d}T00:00:00Z")
}

/// The org's rows of `object` in the window, with the columns the output holds.
async fn org_window(url: &str, out: &Path, object: &str, start: &str, end: &str) -> Vec<Row> {
    let fields: Vec<String> = read_output(out, object)
        .first()
        .map(|r| r.keys().cloned().collect())
        .expect("the output holds rows");
    let soql = format!(
        "SELECT {} FROM {object} WHERE LastModifiedDate >= {start}T00:00:00Z \
         AND LastModifiedDate < {}",
        fields.join(", "),
        day_after(end)
    );
    org_rows(url, object, &soql).await
}

/// The one `error:` line of a failed run (and no panic).
fn the_error_line(o: &Output) -> String {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "the binary panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line: {err}");
    lines[0].to_string()
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files.extend(snapshot(&p));
        } else {
            files.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    files
}

/// Bytes a tmpfs needs for these files (whole pages).
fn pages_kib(files: &BTreeMap<PathBuf, Vec<u8>>) -> u64 {
    files
        .values()
        .map(|b| (b.len() as u64).div_ceil(4096) * 4)
        .sum()
}

/// What a stopped run must leave: a reader of `OBJECT/date=*/` sees whole Parquet files only,
/// no Id twice, a journal whose every whole line parses, and `status` reads it. Nothing is left
/// in staging either, unless `may_stage`: a file system that turned read-only refuses to
/// delete the unfinished staged file too, and a run that stops on an error exits without
/// waiting for other days' writes still running off the runtime (readers never see staging;
/// the next run clears it, asserted after each rerun).
/// Returns the rows visible over all objects.
fn assert_consistent(url: &str, out: &Path, objects: &str, may_stage: bool) -> usize {
    let mut rows = 0;
    for object in objects.split(',') {
        // parquet_files fails on any entry but date=*/…parquet; read_output on a partial file.
        for f in parquet_files(out, object) {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with("part-"), "a reader sees {f:?}");
        }
        rows += by_id(read_output(out, object)).len();
    }
    let staging = out.join("_sfbackfill").join("staging");
    let staged: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        may_stage || staged.is_empty(),
        "staged files left behind: {staged:?}"
    );
    let journal = std::fs::read(out.join("_sfbackfill").join("backfill.journal"))
        .expect("the journal exists");
    let text = String::from_utf8(journal).expect("the journal is UTF-8");
    let whole = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => "",
    };
    for (n, line) in whole.lines().enumerate() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("journal line {} does not parse ({e}): {line}", n + 1));
    }
    let o = sfbackfill(url, &["status", "--out", path_str(out), "--json"]);
    assert_exit(&o, 0);
    serde_json::from_str::<serde_json::Value>(&stdout(&o)).expect("status is JSON");
    rows
}

/// `(object, day)` of every `chunk_done` line the journal holds whole.
fn recorded_days(out: &Path) -> std::collections::BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(out.join("_sfbackfill").join("backfill.journal"))
        .expect("the journal exists");
    let whole = text.rfind('\n').map_or("", |i| &text[..i]);
    whole
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["kind"] == "chunk_done")
        .map(|entry| {
            (
                entry["object"].as_str().unwrap_or_default().to_string(),
                entry["day"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// `(object, day)` of a file at `OUT/OBJECT/date=DAY/NAME`.
fn object_and_day(path: &Path) -> (String, String) {
    let folder = path.parent().expect("a day folder");
    let day = folder.file_name().unwrap().to_string_lossy();
    let object = folder.parent().and_then(Path::file_name).unwrap();
    (
        object.to_string_lossy().into_owned(),
        day.trim_start_matches("date=").to_string(),
    )
}

/// The output equals the org's rows for the window, every column, no extra, no duplicate.
async fn assert_exact(url: &str, out: &Path, objects: &str, start: &str, end: &str) -> usize {
    let mut total = 0;
    for object in objects.split(',') {
        let got = by_id(read_output(out, object));
        let want = by_id(org_window(url, out, object, start, end).await);
        assert_eq!(got.len(), want.len(), "{object}: row count");
        assert_eq!(got, want, "{object}: rows");
        total += got.len();
    }
    total
}

/// A backfill onto a disk too small for it: exit 1 with one line saying the disk is full and
/// what to do, nothing partial visible, the journal readable; after the disk is grown, the same
/// command completes with exactly the org's rows.
///
/// The disk is sized at fractions of what the whole output needs (measured by a first run on
/// an ordinary folder), so it fills at different points: while a chunk file is written, when
/// it is published, when the journal records it. `SFB_DISK_FRACTIONS` (percent, comma
/// separated; default `15,45,80`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_run_cleanly_and_the_same_command_completes_after() {
    if !can_mount("disk::a_full_disk_stops_the_run_cleanly_and_the_same_command_completes_after") {
        return;
    }
    let fractions: Vec<u64> = std::env::var("SFB_DISK_FRACTIONS")
        .unwrap_or_else(|_| "15,45,80".into())
        .split(',')
        .map(|f| f.trim().parse().expect("SFB_DISK_FRACTIONS: percents"))
        .collect();
    let (objects, start, end) = ("Account,Contact", "2025-01-01", "2025-02-28");
    let org = start_default_fake().await;
    let url = org.url();
    let reference = tempfile::tempdir().unwrap();
    let o = run_args(&url, &backfill_args(reference.path(), objects, start, end)).await;
    assert_exit(&o, 0);
    let need = pages_kib(&snapshot(reference.path()));
    let want_rows = assert_exact(&url, reference.path(), objects, start, end).await;
    for percent in fractions {
        let kib = (need * percent / 100).max(16);
        let disk = Tmpfs::mount(kib);
        let out = disk.dir.join("out");
        let args = backfill_args(&out, objects, start, end);
        let o = run_args(&url, &args).await;
        assert_exit(&o, 1);
        let line = the_error_line(&o);
        assert!(
            line.contains("disk is full") || line.contains("No space left on device"),
            "{percent}%: the line does not say the disk is full: {line}"
        );
        assert!(
            line.contains("free space") && line.contains("run the same command again"),
            "{percent}%: the line does not say what to do: {line}"
        );
        let visible = assert_consistent(&url, &out, objects, true);
        disk.resize(need * 2);
        let o = run_args(&url, &args).await;
        assert_exit(&o, 0);
        assert_consistent(&url, &out, objects, false);
        let rows = assert_exact(&url, &out, objects, start, end).await;
        assert_eq!(rows, want_rows);
        eprintln!(
            "disk: full at {percent}% of {need} KiB ({kib} KiB): {visible} rows visible after \
             the stop; after growing the disk {rows} rows exact; {line}"
        );
    }
}

/// An output folder whose file system turns read-only after the first day files are published:
/// exit 1 with one line saying so, the files already published stay readable and unchanged,
/// the journal parses; once the file system is repaired and writable, the same command
/// completes with exactly the org's rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_turning_read_only_mid_run_stops_cleanly_and_the_run_completes_after() {
    if !can_mount(
        "disk::a_folder_turning_read_only_mid_run_stops_cleanly_and_the_run_completes_after",
    ) {
        return;
    }
    let (objects, start, end) = ("Account,Contact", "2025-01-01", "2025-03-31");
    let org = start_fake(FakeOrgConfig {
        faults: Faults {
            // Slow and small pages, so the run is still going when the disk fails.
            latency: Some(Duration::from_millis(40)),
            ..Default::default()
        },
        wide_page_size: Some(200),
        ..Default::default()
    })
    .await;
    let url = org.url();
    let disk = Ext4::mount(32);
    let out = disk.dir.join("out");
    let args = backfill_args(&out, objects, start, end);
    let mut child = Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_sfbackfill"))
            .args(&args)
            .env_remove("RUST_LOG")
            .env("SF_INSTANCE_URL", &url)
            .env("SF_CLIENT_ID", CLIENT_ID)
            .env("SF_CLIENT_SECRET", CLIENT_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .expect("the binary starts");
    let published = |out: &Path| -> usize {
        objects
            .split(',')
            .map(|o| parquet_files(out, o).len())
            .sum()
    };
    let began = Instant::now();
    // Fails if the run ends before its first file.
    child
        .wait_for("the run's first file", || published(&out) > 0)
        .await;
    disk.fail_read_only();
    let failed_at = began.elapsed();
    assert!(
        disk.is_read_only(),
        "the file system did not turn read-only"
    );
    let before: BTreeMap<PathBuf, Vec<u8>> = snapshot(&out)
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    let o = child.wait().await;
    assert_exit(&o, 1);
    // Only days the journal recorded are promised to survive: a file renamed into place as the
    // disk failed, whose folder's fsync then failed, was never recorded and may be gone after
    // the repair (the next run fetches its day again).
    let recorded = recorded_days(&out);
    let before: BTreeMap<PathBuf, Vec<u8>> = before
        .into_iter()
        .filter(|(path, _)| recorded.contains(&object_and_day(path)))
        .collect();
    let line = the_error_line(&o);
    // ext4 turned read-only answers a write with EROFS, and an fsync in flight with EIO.
    assert!(
        line.contains("turned read-only") || line.to_lowercase().contains("read-only file system"),
        "the line does not say the folder is read-only: {line}"
    );
    assert!(
        line.contains("run the same command again"),
        "the line does not say the run resumes: {line}"
    );
    let visible = assert_consistent(&url, &out, objects, true);
    for (path, bytes) in &before {
        assert_eq!(
            &std::fs::read(path).unwrap(),
            bytes,
            "{path:?} changed after the stop"
        );
    }
    disk.repair();
    for (path, bytes) in &before {
        let now = std::fs::read(path).unwrap_or_else(|e| panic!("{path:?} lost: {e}"));
        assert_eq!(&now, bytes, "{path:?} changed by the repair");
    }
    assert_consistent(&url, &out, objects, true);
    let o = run_args(&url, &args).await;
    assert_exit(&o, 0);
    assert_consistent(&url, &out, objects, false);
    let rows = assert_exact(&url, &out, objects, start, end).await;
    eprintln!(
        "disk: read-only after {} ms with {} files published ({visible} rows visible after \
         the stop); after the repair {rows} rows exact; {line}",
        failed_at.as_millis(),
        before.len()
    );
}
