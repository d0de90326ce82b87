//! Fault injection: the `--faults` text form, the `/__fake/faults` JSON form, and the
//! seeded per-request draw.
//!
//! Owns which fault (if any) each data request meets. Invariants: every random choice comes
//! from one generator seeded from the org's seed, so a run with the same requests in the same
//! order meets the same faults; replacing the faults restarts the `revoke_after`,
//! `modify_every` and `invalidate_cursors_every` counts (a revocation happens once per setting).

use std::time::Duration;

use serde::Deserialize;

use super::Faults;

/// A `--faults` entry that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad fault `{entry}`: {reason}; expected e.g. {EXAMPLE}")]
pub struct FaultSpecError {
    entry: String,
    reason: String,
}

/// The example shown with every fault-spec error.
pub const EXAMPLE: &str = "latency=50ms,jitter=20ms,503=0.05,retry-after=2,500=0.01,truncate=0.02,reset=0.01,concurrent=0.02,revoke-after=100,modify-every=50,query-timeout-over=20000,cursor-ttl=30s,invalidate-cursors-every=40";

impl Faults {
    /// Reads the comma-separated `name=value` form of `sfbackfill fake-org --faults`.
    ///
    /// # Errors
    /// An unknown name, a missing `=`, a rate outside `0..=1` or an unreadable number or
    /// duration names the offending entry.
    pub fn parse(spec: &str) -> Result<Faults, FaultSpecError> {
        let mut faults = Faults::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let fail = |reason: &str| FaultSpecError {
                entry: entry.to_string(),
                reason: reason.to_string(),
            };
            let (name, value) = entry
                .split_once('=')
                .ok_or_else(|| fail("missing `=value`"))?;
            let (name, value) = (name.trim(), value.trim());
            match name {
                "latency" => faults.latency = Some(duration(value).map_err(|r| fail(&r))?),
                "jitter" => faults.jitter = Some(duration(value).map_err(|r| fail(&r))?),
                "503" => faults.error_503_rate = rate(value).map_err(|r| fail(&r))?,
                "retry-after" => {
                    faults.retry_after_secs = Some(count(value).map_err(|r| fail(&r))?)
                }
                "500" => faults.error_500_rate = rate(value).map_err(|r| fail(&r))?,
                "truncate" => faults.truncate_rate = rate(value).map_err(|r| fail(&r))?,
                "reset" => faults.reset_rate = rate(value).map_err(|r| fail(&r))?,
                "concurrent" => faults.concurrent_limit_rate = rate(value).map_err(|r| fail(&r))?,
                "revoke-after" => {
                    faults.revoke_after = Some(positive(value).map_err(|r| fail(&r))?)
                }
                "modify-every" => {
                    faults.modify_every = Some(positive(value).map_err(|r| fail(&r))?)
                }
                "query-timeout-over" => {
                    faults.query_timeout_over = Some(count(value).map_err(|r| fail(&r))? as usize)
                }
                "cursor-ttl" => faults.cursor_ttl = Some(duration(value).map_err(|r| fail(&r))?),
                "invalidate-cursors-every" => {
                    faults.invalidate_cursors_every = Some(positive(value).map_err(|r| fail(&r))?)
                }
                _ => return Err(fail("unknown fault name")),
            }
        }
        Ok(faults)
    }
}

fn rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err("a rate is a share between 0 and 1".into()),
    }
}

fn count(value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .map_err(|_| "expected a whole number".to_string())
}

fn positive(value: &str) -> Result<u64, String> {
    match count(value)? {
        0 => Err("expected a number above 0".into()),
        n => Ok(n),
    }
}

/// `250ms`, `30s`, `5m`; a bare number is milliseconds.
fn duration(value: &str) -> Result<Duration, String> {
    let bad = || "expected a duration like 50ms, 30s or 5m".to_string();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    match unit {
        "" | "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(bad()),
    }
}

/// The JSON body of `POST /__fake/faults`; absent fields are off, durations in milliseconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultsJson {
    latency_ms: Option<u64>,
    jitter_ms: Option<u64>,
    error_503_rate: f64,
    retry_after_secs: Option<u64>,
    error_500_rate: f64,
    truncate_rate: f64,
    reset_rate: f64,
    concurrent_limit_rate: f64,
    revoke_after: Option<u64>,
    modify_every: Option<u64>,
    query_timeout_over: Option<usize>,
    cursor_ttl_ms: Option<u64>,
    invalidate_cursors_every: Option<u64>,
}

impl From<FaultsJson> for Faults {
    fn from(j: FaultsJson) -> Self {
        Faults {
            latency: j.latency_ms.map(Duration::from_millis),
            jitter: j.jitter_ms.map(Duration::from_millis),
            error_503_rate: j.error_503_rate,
            retry_after_secs: j.retry_after_secs,
            error_500_rate: j.error_500_rate,
            truncate_rate: j.truncate_rate,
            reset_rate: j.reset_rate,
            concurrent_limit_rate: j.concurrent_limit_rate,
            revoke_after: j.revoke_after,
            modify_every: j.modify_every,
            query_timeout_over: j.query_timeout_over,
            cursor_ttl: j.cursor_ttl_ms.map(Duration::from_millis),
            invalidate_cursors_every: j.invalidate_cursors_every,
        }
    }
}

/// What one data request meets instead of (or on top of) its normal answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Normal,
    /// `503 SERVER_UNAVAILABLE`; `html` sends a maintenance page instead of JSON.
    Unavailable {
        retry_after: Option<u64>,
        html: bool,
    },
    UnknownException,
    ConcurrentLimit,
    /// The connection is dropped before any response byte.
    Reset,
    /// A `200` whose JSON is cut off.
    Truncate,
}

/// The faults drawn for one data request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    pub delay: Duration,
    pub outcome: Outcome,
    /// Revoke every token once this request has been admitted.
    pub revoke: bool,
    /// Modify rows before answering this request.
    pub modify: bool,
    /// Invalidate every open query locator before answering this request.
    pub invalidate_cursors: bool,
}

/// The live faults and the generator that draws them.
#[derive(Debug)]
pub struct FaultState {
    faults: Faults,
    rng: fastrand::Rng,
    /// Data requests since the faults were last set.
    requests: u64,
}

impl FaultState {
    pub fn new(faults: Faults, seed: u64) -> Self {
        Self {
            faults,
            rng: fastrand::Rng::with_seed(seed),
            requests: 0,
        }
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn set(&mut self, faults: Faults) {
        self.faults = faults;
        self.requests = 0;
    }

    /// A value from the seeded generator, for seeds and opaque ids.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.u64(..)
    }

    /// Draws the faults for the next data request.
    pub fn draw(&mut self) -> Draw {
        self.requests += 1;
        let f = &self.faults;
        let jitter = f
            .jitter
            .map(|j| Duration::from_micros(self.rng.u64(0..=j.as_micros() as u64)))
            .unwrap_or_default();
        let delay = f.latency.unwrap_or_default() + jitter;
        let revoke = f.revoke_after == Some(self.requests);
        let modify = f
            .modify_every
            .is_some_and(|n| self.requests.is_multiple_of(n));
        let invalidate_cursors = f
            .invalidate_cursors_every
            .is_some_and(|n| self.requests.is_multiple_of(n));
        // One uniform draw split into bands keeps the rates exact shares of requests
        // even when several are set.
        let x = self.rng.f64();
        let bands = [
            (f.reset_rate, Outcome::Reset),
            (f.error_503_rate, Outcome::Normal),
            (f.error_500_rate, Outcome::UnknownException),
            (f.concurrent_limit_rate, Outcome::ConcurrentLimit),
            (f.truncate_rate, Outcome::Truncate),
        ];
        let mut edge = 0.0;
        let mut outcome = Outcome::Normal;
        for (i, (share, band)) in bands.into_iter().enumerate() {
            edge += share;
            if x < edge {
                outcome = if i == 1 {
                    Outcome::Unavailable {
                        retry_after: f.retry_after_secs,
                        // Maintenance pages are the rarer form of a 503.
                        html: self.rng.u8(0..4) == 0,
                    }
                } else {
                    band
                };
                break;
            }
        }
        Draw {
            delay,
            outcome,
            revoke,
            modify,
            invalidate_cursors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let f = Faults::parse(EXAMPLE).unwrap();
        assert_eq!(f.latency, Some(Duration::from_millis(50)));
        assert_eq!(f.jitter, Some(Duration::from_millis(20)));
        assert_eq!(f.error_503_rate, 0.05);
        assert_eq!(f.retry_after_secs, Some(2));
        assert_eq!(f.error_500_rate, 0.01);
        assert_eq!(f.truncate_rate, 0.02);
        assert_eq!(f.reset_rate, 0.01);
        assert_eq!(f.concurrent_limit_rate, 0.02);
        assert_eq!(f.revoke_after, Some(100));
        assert_eq!(f.modify_every, Some(50));
        assert_eq!(f.query_timeout_over, Some(20000));
        assert_eq!(f.cursor_ttl, Some(Duration::from_secs(30)));
        assert_eq!(f.invalidate_cursors_every, Some(40));
        assert!(Faults::parse("").is_ok());
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in [
            "latency",
            "503=2",
            "503=x",
            "bogus=1",
            "latency=5h",
            "revoke-after=0",
            "invalidate-cursors-every=0",
            "invalidate-cursors-every=1s",
        ] {
            let e = Faults::parse(bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn draws_are_reproducible_and_near_their_rates() {
        let faults = Faults {
            error_503_rate: 0.1,
            error_500_rate: 0.1,
            reset_rate: 0.1,
            ..Default::default()
        };
        let run = || {
            let mut s = FaultState::new(faults.clone(), 7);
            (0..10_000).map(|_| s.draw().outcome).collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let n503 = a
            .iter()
            .filter(|o| matches!(o, Outcome::Unavailable { .. }))
            .count();
        let n500 = a
            .iter()
            .filter(|o| **o == Outcome::UnknownException)
            .count();
        let reset = a.iter().filter(|o| **o == Outcome::Reset).count();
        for n in [n503, n500, reset] {
            assert!((800..1200).contains(&n), "{n}");
        }
        assert!(
            a.iter()
                .any(|o| matches!(o, Outcome::Unavailable { html: true, .. }))
        );
    }

    #[test]
    fn revoke_happens_once_and_modify_and_invalidate_every_n() {
        let mut s = FaultState::new(
            Faults {
                revoke_after: Some(3),
                modify_every: Some(2),
                invalidate_cursors_every: Some(3),
                ..Default::default()
            },
            1,
        );
        let draws: Vec<Draw> = (0..6).map(|_| s.draw()).collect();
        let revokes: Vec<bool> = draws.iter().map(|d| d.revoke).collect();
        let modifies: Vec<bool> = draws.iter().map(|d| d.modify).collect();
        let invalidates: Vec<bool> = draws.iter().map(|d| d.invalidate_cursors).collect();
        assert_eq!(revokes, [false, false, true, false, false, false]);
        assert_eq!(modifies, [false, true, false, true, false, true]);
        assert_eq!(invalidates, [false, false, true, false, false, true]);
    }
}
