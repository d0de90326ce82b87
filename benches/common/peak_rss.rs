//! Peak resident memory of a child process, for the benches that measure it (`memory`,
//! `compact`): the bench re-executes itself as a *launcher* that runs the measured command
//! and reaps it with `wait4(2)`, whose `ru_maxrss` is the kernel's high-water mark of the
//! child's whole life.
//!
//! Why not `wait4` on a child of the bench itself: Rust spawns through `posix_spawn` (a
//! `CLONE_VM` child sharing the parent's memory until it execs), and Linux keeps the
//! high-water mark of the memory a process had before `exec` in its `ru_maxrss`. A child of
//! the bench would therefore report at least the bench's own RSS, fake org included (a
//! 101-row day measured 50 MB that way). The launcher is the bench binary freshly exec'd,
//! before any runtime or org exists, so the floor it leaves is a few MB ([`floor`]).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Set (to a result file) when the bench binary runs as the launcher.
const LAUNCH_ENV: &str = "SFB_MEM_LAUNCH_RESULT";

/// First thing in the bench's `main`: when this process is the launcher, runs `argv[1..]`,
/// writes `<exit status> <ru_maxrss KiB>` to the result file, and returns the exit code.
pub fn as_launcher() -> Option<ExitCode> {
    std::env::var_os(LAUNCH_ENV).map(|result| launch(Path::new(&result)))
}

/// A command that runs `program` under the launcher, reporting to `result`; add the
/// program's arguments, run it, then read [`result`].
pub fn launcher(program: &Path, result: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("current_exe"));
    command.env(LAUNCH_ENV, result).arg(program);
    command
}

/// The sfbackfill binary next to the bench's profile folder (`target/<profile>/sfbackfill`;
/// the bench lives in `target/<profile>/deps/`), or `SFB_MEM_BIN`.
pub fn binary(bench: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("SFB_MEM_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("SFB_MEM_BIN={} is not a file", path.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected bench path {}", exe.display()))?;
    let bin = profile_dir.join("sfbackfill");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: build the binary with the bench's profile first, e.g.\n  \
             cargo build --release && cargo bench --bench {bench}\n  \
             cargo build && cargo bench --bench {bench} --profile dev\n\
             or point SFB_MEM_BIN at an sfbackfill binary",
            bin.display()
        ))
    }
}

fn launch(result: &Path) -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("launcher: no program");
        return ExitCode::from(2);
    };
    let child = match Command::new(&program).args(args).spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("launcher: spawn {}: {e}", program.to_string_lossy());
            return ExitCode::from(2);
        }
    };
    let (status, maxrss) = wait4(child.id() as libc::pid_t);
    // Reaped by wait4: `child` must not be waited for again (dropping it does not wait).
    drop(child);
    std::fs::write(result, format!("{status} {maxrss}")).expect("write launcher result");
    ExitCode::SUCCESS
}

/// The `ru_maxrss` the launcher reports for a program that uses almost nothing: the part of
/// every figure that is the launcher's, not the engine's.
pub fn floor() -> i64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("launch.result");
    let status = launcher(Path::new("true"), &path)
        .status()
        .expect("run the launcher");
    assert!(status.success(), "launcher failed: {status}");
    result(&path).1
}

/// What the launcher wrote: the program's exit status (128 + signal if killed) and its peak
/// RSS in KiB.
pub fn result(path: &Path) -> (i32, i64) {
    let text = std::fs::read_to_string(path).expect("launcher result");
    let mut parts = text
        .split_whitespace()
        .map(|p| p.parse::<i64>().expect("number"));
    let status = parts.next().expect("status") as i32;
    let maxrss = parts.next().expect("maxrss");
    (status, maxrss)
}

/// Waits for `pid`; returns its exit status (128 + signal if killed) and `ru_maxrss` in KiB.
fn wait4(pid: libc::pid_t) -> (i32, i64) {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 writes both out-parameters.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own unreaped child; the pointers are to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            panic!("wait4({pid}): {err}");
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    (code, usage.ru_maxrss)
}
