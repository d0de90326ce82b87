//! Helpers for integration tests: start the fake org, run the binary, read the output back,
//! and fetch the org's own rows over HTTP with an independent JSON reading.
//!
//! Every wait on a child process goes through [`Running`] (or [`output`]), which gives it a
//! deadline: no test waits forever on a process that hangs.

use arrow::array::*;
use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveTime, Timelike};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sfbackfill_fake_org::{FakeOrg, FakeOrgConfig};

pub const CLIENT_ID: &str = "fake-client-id";
pub const CLIENT_SECRET: &str = "fake-client-secret";

/// A row as canonical text per column, so Parquet and JSON can be compared.
pub type Row = BTreeMap<String, String>;

pub async fn start_fake(config: FakeOrgConfig) -> FakeOrg {
    FakeOrg::start(config).await.expect("fake org starts")
}

pub async fn start_default_fake() -> FakeOrg {
    start_fake(FakeOrgConfig::default()).await
}

/// Runs the real binary with the fake org's credentials in its environment.
pub fn sfbackfill(url: &str, args: &[&str]) -> Output {
    sfbackfill_with_env(
        args,
        &[
            ("SF_INSTANCE_URL", url),
            ("SF_CLIENT_ID", CLIENT_ID),
            ("SF_CLIENT_SECRET", CLIENT_SECRET),
        ],
    )
}

pub fn sfbackfill_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    output(&mut command(args, env)).expect("the binary runs")
}

/// The binary with `args` and only `env` of the variables it reads.
pub(crate) fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sfbackfill"));
    cmd.args(args)
        .env_remove("SF_INSTANCE_URL")
        .env_remove("SF_CLIENT_ID")
        .env_remove("SF_CLIENT_SECRET")
        .env_remove("SF_API_VERSION")
        .env_remove("RUST_LOG");
    without_cloud_env(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The user's own cloud settings (an `AWS_PROFILE`, a session token) never reach a child of
/// the tests: a test gives its store's settings itself.
pub(crate) fn without_cloud_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let cloud = name.to_str().is_some_and(|n| {
            ["AWS_", "AZURE_", "GOOGLE_"]
                .iter()
                .any(|p| n.starts_with(p))
        });
        if cloud {
            cmd.env_remove(name);
        }
    }
}

/// Starts the binary against the fake org at `url` in the background, its output captured,
/// for a test that drives the org or signals the process while it runs.
pub fn spawn_sfbackfill(url: &str, args: &[&str]) -> Running {
    let env = [
        ("SF_INSTANCE_URL", url),
        ("SF_CLIENT_ID", CLIENT_ID),
        ("SF_CLIENT_SECRET", CLIENT_SECRET),
    ];
    let mut cmd = command(args, &env);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Running::spawn(&mut cmd).expect("the binary starts")
}

/// Runs the binary in a blocking thread so the in-process fake org keeps serving.
pub async fn run(url: &str, args: &[&str]) -> Output {
    let url = url.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        sfbackfill(&url, &refs)
    })
    .await
    // The deadline's failure, as the test's own.
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// How long a test waits on a child process before it kills it and fails:
/// `SFB_RUN_DEADLINE_SECS`, 300 s by default (the longest run of the default suites takes
/// well under a minute on a 2-core machine; larger settings of the crash and soak suites may
/// need more).
pub fn run_deadline() -> Duration {
    const DEFAULT_SECS: u64 = 300;
    match std::env::var("SFB_RUN_DEADLINE_SECS") {
        Ok(v) => Duration::from_secs(
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("SFB_RUN_DEADLINE_SECS={v} is not a number of seconds")),
        ),
        Err(_) => Duration::from_secs(DEFAULT_SECS),
    }
}

/// What [`Command::output`] does (stdin closed, stdout and stderr captured, whatever `cmd`
/// set), with the [`run_deadline`]: a child still running then is killed and the test fails
/// with its output.
///
/// # Errors
///
/// When the program cannot be started.
pub fn output(cmd: &mut Command) -> std::io::Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(Running::spawn(cmd)?.wait_blocking())
}

/// A child process that a test waits on, always against the [`run_deadline`].
///
/// Its piped stdout and stderr are read as it runs (so a chatty child never blocks on a full
/// pipe) and are what a test that fails on it shows. Polling loops go through
/// [`Running::wait_for`] (or its blocking twin), which fail early if the child exits first.
pub struct Running {
    child: Child,
    /// The program and its arguments, for failure messages.
    what: String,
    /// When the child started: the deadline counts from here.
    began: Instant,
    stdout: Option<Drain>,
    stderr: Option<Drain>,
}

/// One pipe of a child, read to its end by a thread of its own.
struct Drain {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Drain {
    fn start(mut pipe: impl Read + Send + 'static) -> Self {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = bytes.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Drain { bytes, reader }
    }

    /// What was read, once the pipe is closed; what was read so far if it stays open for
    /// more than a few seconds after the child ended (a grandchild holding it).
    fn finish(self) -> Vec<u8> {
        let began = Instant::now();
        while !self.reader.is_finished() && began.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::mem::take(&mut *self.bytes.lock().unwrap())
    }
}

impl Running {
    /// Starts `cmd` as it is set up (pipe stdout or stderr to have them read and shown).
    ///
    /// # Errors
    ///
    /// When the program cannot be started.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Running> {
        let what = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().map(Drain::start);
        let stderr = child.stderr.take().map(Drain::start);
        Ok(Running {
            child,
            what,
            began: Instant::now(),
            stdout,
            stderr,
        })
    }

    /// What the child has written to stderr so far (a server's request log).
    pub fn stderr_so_far(&self) -> String {
        let bytes = self
            .stderr
            .as_ref()
            .map(|d| d.bytes.lock().unwrap().clone());
        String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned()
    }

    /// The child's process id (to signal it).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a `libc::SIG*`) to the child, unless it has exited already.
    pub fn signal(&mut self, signal: i32) {
        if !self.has_exited() {
            // SAFETY: kill(2) only; the pid is the child's, not yet reaped, so not reused.
            unsafe { libc::kill(self.child.id() as i32, signal) };
        }
    }

    /// Whether the child has exited (it is reaped then, and waiting returns at once).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Waits for the child to exit and returns its status and captured output; at the
    /// deadline, kills it and fails the test with its output.
    pub fn wait_blocking(mut self) -> Output {
        let mut pause = Duration::from_millis(1);
        loop {
            if self.has_exited() {
                return self.take_output();
            }
            if let Some(o) = self.check_deadline("it to exit") {
                return o;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// [`Running::wait_blocking`] off the async runtime, so an in-process fake org keeps
    /// serving meanwhile.
    pub async fn wait(self) -> Output {
        tokio::task::spawn_blocking(move || self.wait_blocking())
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Polls `done` until it holds; fails the test (child killed, its output shown) if the
    /// child exits first or the deadline passes. `what` names what is awaited.
    pub async fn wait_for(&mut self, what: &str, mut done: impl FnMut() -> bool) {
        while !self.poll(what, &mut done) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// [`Running::wait_for`] on the current thread.
    pub fn wait_for_blocking(&mut self, what: &str, mut done: impl FnMut() -> bool) {
        while !self.poll(what, &mut done) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Once the deadline has passed, kills the child and fails the test with its output; for
    /// a loop that waits on the child in its own way. `what` names what is awaited. Returns
    /// the output instead of failing only while the thread already panics (a clean-up in
    /// `Drop`), after saying so on stderr.
    pub fn check_deadline(&mut self, what: &str) -> Option<Output> {
        let deadline = run_deadline();
        if self.began.elapsed() < deadline {
            return None;
        }
        let _ = self.child.kill();
        let o = self.take_output();
        let message = format!(
            "gave up waiting for {what} after {} s (SFB_RUN_DEADLINE_SECS) and killed `{}`\n\
             stdout: {}\nstderr: {}",
            deadline.as_secs(),
            self.what,
            stdout(&o),
            stderr(&o)
        );
        if std::thread::panicking() {
            eprintln!("{message}");
            return Some(o);
        }
        panic!("{message}");
    }

    /// Whether `done` holds; fails if it cannot hold any more or the deadline passed.
    fn poll(&mut self, what: &str, done: &mut impl FnMut() -> bool) -> bool {
        // Asked before `done`, so a child that did its part and then exited is no failure.
        let exited = self.has_exited();
        if done() {
            return true;
        }
        if exited {
            let o = self.take_output();
            panic!(
                "`{}` exited ({}) while the test waited for {what}\nstdout: {}\nstderr: {}",
                self.what,
                o.status,
                stdout(&o),
                stderr(&o)
            );
        }
        self.check_deadline(what);
        false
    }

    /// The exit status (waiting for it: call once the child exited or was killed) and what
    /// its pipes gave.
    fn take_output(&mut self) -> Output {
        let status = self.child.wait().expect("wait");
        Output {
            status,
            stdout: self.stdout.take().map(Drain::finish).unwrap_or_default(),
            stderr: self.stderr.take().map(Drain::finish).unwrap_or_default(),
        }
    }
}

/// A test that fails while its child runs does not leave the child running.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// Every Parquet file under `out/object/date=*/`.
pub fn parquet_files(out: &Path, object: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(days) = std::fs::read_dir(out.join(object)) else {
        return files;
    };
    for day in days.flatten() {
        assert!(
            day.file_name().to_string_lossy().starts_with("date="),
            "stray entry {:?} in the object folder",
            day.path()
        );
        for f in std::fs::read_dir(day.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            assert!(name.ends_with(".parquet"), "stray file {:?}", f.path());
            files.push(f.path());
        }
    }
    files.sort();
    files
}

/// The rows of every Parquet file of `object`, canonicalised.
pub fn read_output(out: &Path, object: &str) -> Vec<Row> {
    read_files(&parquet_files(out, object))
}

/// The columns of a Parquet file, with their Arrow types.
pub fn file_columns(file: &Path) -> Vec<(String, DataType)> {
    ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
        .unwrap()
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect()
}

/// The rows of these Parquet files, canonicalised.
pub fn read_files(files: &[PathBuf]) -> Vec<Row> {
    let mut rows = Vec::new();
    for file in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let schema = batch.schema();
            for i in 0..batch.num_rows() {
                let mut row = Row::new();
                for (c, field) in schema.fields().iter().enumerate() {
                    row.insert(
                        field.name().clone(),
                        arrow_text(batch.column(c).as_ref(), i),
                    );
                }
                rows.push(row);
            }
        }
    }
    rows
}

pub const NULL: &str = "∅";

fn arrow_text(col: &dyn Array, i: usize) -> String {
    if col.is_null(i) {
        return NULL.into();
    }
    match col.data_type() {
        DataType::Utf8 => col
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(i)
            .to_string(),
        DataType::Boolean => col
            .as_any()
            .downcast_ref::<BooleanArray>()
            .unwrap()
            .value(i)
            .to_string(),
        DataType::Int32 => col
            .as_any()
            .downcast_ref::<Int32Array>()
            .unwrap()
            .value(i)
            .to_string(),
        DataType::Int64 => col
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(i)
            .to_string(),
        DataType::Float64 => format!(
            "{:?}",
            col.as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .value(i)
        ),
        DataType::Decimal128(_, scale) => {
            let v = col
                .as_any()
                .downcast_ref::<Decimal128Array>()
                .unwrap()
                .value(i);
            format!("{v}e-{scale}")
        }
        DataType::Date32 => {
            let d = col.as_any().downcast_ref::<Date32Array>().unwrap().value(i);
            (NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(d as i64))
                .to_string()
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => col
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap()
            .value(i)
            .to_string(),
        DataType::Time32(TimeUnit::Millisecond) => col
            .as_any()
            .downcast_ref::<Time32MillisecondArray>()
            .unwrap()
            .value(i)
            .to_string(),
        DataType::List(_) => {
            let list = col.as_any().downcast_ref::<ListArray>().unwrap().value(i);
            (0..list.len())
                .map(|j| arrow_text(list.as_ref(), j))
                .collect::<Vec<_>>()
                .join(";")
        }
        DataType::Struct(fields) => {
            let s = col.as_any().downcast_ref::<StructArray>().unwrap();
            let mut parts: Vec<String> = fields
                .iter()
                .enumerate()
                .map(|(k, f)| format!("{}={}", f.name(), arrow_text(s.column(k).as_ref(), i)))
                .collect();
            parts.sort();
            parts.join(",")
        }
        other => panic!("unexpected column type {other}"),
    }
}

/// The canonical text of a JSON value of a field of the given describe type.
pub fn json_text(value: &Value, sf_type: &str, scale: i64) -> String {
    if value.is_null() {
        return NULL.into();
    }
    match sf_type {
        "boolean" => value.as_bool().unwrap().to_string(),
        "int" | "long" => value.as_i64().unwrap().to_string(),
        "double" | "percent" => format!("{:?}", value.as_f64().unwrap()),
        "currency" => format!("{}e-{scale}", scaled_decimal(&value.to_string(), scale)),
        "datetime" => {
            let t = DateTime::parse_from_str(value.as_str().unwrap(), "%Y-%m-%dT%H:%M:%S%.3f%z")
                .unwrap();
            t.timestamp_millis().to_string()
        }
        "time" => {
            let s = value.as_str().unwrap().trim_end_matches('Z');
            let t = NaiveTime::parse_from_str(s, "%H:%M:%S%.3f").unwrap();
            (t.num_seconds_from_midnight() as i64 * 1000 + (t.nanosecond() / 1_000_000) as i64)
                .to_string()
        }
        "address" | "location" => {
            let mut parts: Vec<String> = value
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    let t = if matches!(k.as_str(), "latitude" | "longitude") {
                        "double"
                    } else {
                        "string"
                    };
                    format!("{k}={}", json_text(v, t, 0))
                })
                .collect();
            parts.sort();
            parts.join(",")
        }
        _ => match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
    }
}

/// A JSON number's text as an integer scaled by 10^scale, exactly (no floating point).
pub fn scaled_decimal(text: &str, scale: i64) -> i128 {
    let lower = text.to_ascii_lowercase();
    let (mantissa, exp) = match lower.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i64>().unwrap()),
        None => (lower.clone(), 0),
    };
    let negative = mantissa.starts_with('-');
    let mantissa = mantissa.trim_start_matches(['-', '+']);
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: i128 = format!("{int}{frac}").parse().unwrap();
    let shift = scale + exp - frac.len() as i64;
    let value = if shift >= 0 {
        digits * 10i128.pow(shift as u32)
    } else {
        let div = 10i128.pow((-shift) as u32);
        assert_eq!(digits % div, 0, "{text} has more digits than scale {scale}");
        digits / div
    };
    if negative { -value } else { value }
}

/// A plain HTTP client for reading the fake org independently of ours (rustls needs its
/// crypto provider installed once per process).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// An access token from the fake org, fetched as any client would.
pub async fn token(url: &str) -> String {
    let body: Value = http()
        .post(format!("{url}/services/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// The describe `fields` of `object`: name → (type, scale).
pub async fn field_types(url: &str, object: &str) -> BTreeMap<String, (String, i64)> {
    let token = token(url).await;
    let body: Value = http()
        .get(format!(
            "{url}/services/data/v62.0/sobjects/{object}/describe"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                (
                    f["type"].as_str().unwrap().to_string(),
                    f["scale"].as_i64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

/// The org's own rows for a SOQL query, paged with nextRecordsUrl, canonicalised like the output.
pub async fn org_rows(url: &str, object: &str, soql: &str) -> Vec<Row> {
    let token = token(url).await;
    let types = field_types(url, object).await;
    let client = http();
    let mut next = format!("{url}/services/data/v62.0/query?q={}", urlencode(soql));
    let mut rows = Vec::new();
    loop {
        let page: Value = client
            .get(&next)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for record in page["records"].as_array().unwrap() {
            let mut row = Row::new();
            for (k, v) in record.as_object().unwrap() {
                if k == "attributes" {
                    continue;
                }
                let (t, scale) = types.get(k).cloned().unwrap_or(("string".into(), 0));
                row.insert(k.clone(), json_text(v, &t, scale));
            }
            rows.push(row);
        }
        match page["nextRecordsUrl"].as_str() {
            Some(path) if !page["done"].as_bool().unwrap() => next = format!("{url}{path}"),
            _ => break,
        }
    }
    rows
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Rows keyed by Id; panics on a duplicate Id.
pub fn by_id(rows: Vec<Row>) -> BTreeMap<String, Row> {
    let mut out = BTreeMap::new();
    for row in rows {
        let id = row["Id"].clone();
        assert!(out.insert(id.clone(), row).is_none(), "duplicate Id {id}");
    }
    out
}

/// Requests of the given kinds the fake org has served (`query`, `query_more`, `describe`...).
pub fn requests(stats: &sfbackfill_fake_org::Stats, kinds: &[&str]) -> u64 {
    kinds
        .iter()
        .map(|k| stats.by_kind.get(*k).copied().unwrap_or(0))
        .sum()
}

/// Query requests (first pages and next pages) the fake org has served.
pub fn query_requests(stats: &sfbackfill_fake_org::Stats) -> u64 {
    requests(stats, &["query", "query_more"])
}

/// [`spawn_sfbackfill`] with `extra` variables in the child's environment too.
pub fn spawn_sfbackfill_with_env(url: &str, args: &[&str], extra: &[(&str, &str)]) -> Running {
    let mut env = vec![
        ("SF_INSTANCE_URL", url),
        ("SF_CLIENT_ID", CLIENT_ID),
        ("SF_CLIENT_SECRET", CLIENT_SECRET),
    ];
    env.extend_from_slice(extra);
    let mut cmd = command(args, &env);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Running::spawn(&mut cmd).expect("the binary starts")
}

/// [`run`] with `extra` variables in the child's environment too.
pub async fn run_with_env(url: &str, args: &[&str], extra: &[(&str, &str)]) -> Output {
    spawn_sfbackfill_with_env(url, args, extra).wait().await
}

/// A `moto` S3 server (`pip install "moto[server]"`) on a free loopback port, with one
/// bucket; killed when dropped.
pub struct Moto {
    pub endpoint: String,
    pub bucket: String,
    /// The runs' `TMPDIR`: the working folders a kill -9 leaves go with it.
    tmp: tempfile::TempDir,
    _server: Running,
}

/// The dummy secret key the tests give sfbackfill: it must appear in no object and no output.
pub const MOTO_SECRET_KEY: &str = "moto-secret-key-never-shown-5b1c";

impl Moto {
    /// Starts the server with `server_env` (e.g. moto's `S3_UPLOAD_PART_MIN_SIZE`), or, when
    /// moto is not installed, prints one `skipped` line and returns `None`; with
    /// `SFBACKFILL_REQUIRE_MOTO=1` (set by `.ci/run`) a missing moto fails the test instead.
    pub fn start(test: &str, server_env: &[(&str, &str)]) -> Option<Moto> {
        let installed = Command::new("python3")
            .args(["-c", "import moto.server, flask"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            assert!(
                std::env::var("SFBACKFILL_REQUIRE_MOTO").as_deref() != Ok("1"),
                "SFBACKFILL_REQUIRE_MOTO=1 but the moto server is not installed: pip install \"moto[server]\""
            );
            println!(
                "skipped store::{test}: moto server not installed (pip install \"moto[server]\")"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut cmd = Command::new("python3");
        cmd.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        // moto's own boto would read the user's AWS profile and fail every request.
        without_cloud_env(&mut cmd);
        for (k, v) in server_env {
            cmd.env(k, v);
        }
        let mut server = Running::spawn(&mut cmd).expect("moto starts");
        let addr = format!("127.0.0.1:{port}");
        server.wait_for_blocking("moto to listen", || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        let moto = Moto {
            endpoint: format!("http://{addr}"),
            bucket: "lake".into(),
            tmp: tempfile::tempdir().expect("a temporary folder"),
            _server: server,
        };
        block_on(async {
            http()
                .put(format!("{}/{}", moto.endpoint, moto.bucket))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .expect("the bucket is created");
        });
        Some(moto)
    }
}

impl Moto {
    fn no_file(&self, name: &str) -> String {
        self.tmp.path().join(name).display().to_string()
    }
}

/// A local object store server started by the tests (moto, Azurite): how sfbackfill reaches
/// it, and what it holds, read with a client of its own.
pub trait ObjectServer {
    /// The variables that point sfbackfill at this server (and the runs' `TMPDIR`).
    fn env(&self) -> Vec<(&'static str, String)>;

    /// The `--out` URL of `prefix` in the server's bucket or container.
    fn url(&self, prefix: &str) -> String;

    /// A client of the bucket or container, keys relative to it.
    fn store(&self) -> Arc<dyn object_store::ObjectStore>;

    /// The paths of the object GETs the server has answered so far, in order
    /// (`/bucket/key`), for a server whose request log the tests read (moto); else `None`.
    fn gets(&self) -> Option<Vec<String>> {
        None
    }

    /// Writes `bytes` at `key`.
    fn put(&self, key: &str, bytes: &[u8]) {
        use object_store::ObjectStoreExt;
        let store = self.store();
        let key = object_store::path::Path::from(key);
        let payload = object_store::PutPayload::from(bytes.to_vec());
        block_on(async { store.put(&key, payload).await.expect("put") });
    }

    /// Every key under `prefix`, sorted.
    fn keys(&self, prefix: &str) -> Vec<String> {
        use futures::StreamExt;
        let store = self.store();
        let prefix = object_store::path::Path::from(prefix);
        let mut keys: Vec<String> = block_on(async {
            store
                .list(Some(&prefix))
                .map(|m| m.expect("listing").location.to_string())
                .collect()
                .await
        });
        keys.sort();
        keys
    }

    /// The object at `key`.
    fn get(&self, key: &str) -> Vec<u8> {
        use object_store::ObjectStoreExt;
        let store = self.store();
        let key = object_store::path::Path::from(key);
        block_on(async {
            store
                .get(&key)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("body")
        })
        .to_vec()
    }

    /// Copies every object under `prefix` into `dir`, keys as relative paths.
    fn download(&self, prefix: &str, dir: &Path) {
        for key in self.keys(prefix) {
            let relative = key.strip_prefix(prefix).unwrap().trim_start_matches('/');
            let path = dir.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, self.get(&key)).unwrap();
        }
    }
}

/// A reference to a server is one too, so that helpers taking `&impl ObjectServer` are
/// called alike with a server or a reference to one.
impl<T: ObjectServer + ?Sized> ObjectServer for &T {
    fn env(&self) -> Vec<(&'static str, String)> {
        (**self).env()
    }

    fn url(&self, prefix: &str) -> String {
        (**self).url(prefix)
    }

    fn store(&self) -> Arc<dyn object_store::ObjectStore> {
        (**self).store()
    }

    fn gets(&self) -> Option<Vec<String>> {
        (**self).gets()
    }
}

/// Runs `f` on a runtime of its own in a thread of its own: callable from async tests.
pub fn block_on<T: Send>(f: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(f)
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

impl ObjectServer for Moto {
    /// The variables that point sfbackfill at this server.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "moto-access-key".into()),
            ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("TMPDIR", self.tmp.path().display().to_string()),
            // No AWS profile of the machine running the tests applies.
            ("AWS_CONFIG_FILE", self.no_file("aws-config")),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                self.no_file("aws-credentials"),
            ),
        ]
    }

    /// `s3://bucket/prefix`.
    fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    fn store(&self) -> Arc<dyn object_store::ObjectStore> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_bucket_name(&self.bucket)
            .with_region("us-east-1")
            .with_access_key_id("moto-access-key")
            .with_secret_access_key(MOTO_SECRET_KEY)
            .build()
            .expect("a client of the moto server");
        Arc::new(s3)
    }

    /// From moto's request log; listings are not counted.
    fn gets(&self) -> Option<Vec<String>> {
        let log = self._server.stderr_so_far();
        let paths = log
            .lines()
            .filter_map(|line| line.split_once("\"GET ")?.1.split_once(' '))
            .map(|(path, _)| path.to_string())
            .filter(|path| !path.contains('?'))
            .collect();
        Some(paths)
    }
}

/// A backfill of `objects` over `start..=end` into `out` with every field, quickly and
/// quietly (`--rate-limit 1000 --concurrency 4 --progress off`).
pub fn backfill_args<'a>(
    out: &'a str,
    objects: &'a str,
    start: &'a str,
    end: &'a str,
) -> Vec<&'a str> {
    vec![
        "backfill",
        "--objects",
        objects,
        "--start",
        start,
        "--end",
        end,
        "--out",
        out,
        "--all-fields",
        "--rate-limit",
        "1000",
        "--concurrency",
        "4",
        "--progress",
        "off",
    ]
}
