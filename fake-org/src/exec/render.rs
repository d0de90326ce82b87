//! JSON text for values as Salesforce writes them in query results (§3.3), straight into a
//! byte buffer: no intermediate `serde_json::Value` per record, since rendering must never be
//! the bottleneck of a bench.

use std::io::Write;

use chrono::{DateTime, Datelike, NaiveDate, Timelike};

use crate::data::values::Value;

/// Values at or above this magnitude print in Java's exponent form (`1.5E7`), as Salesforce
/// serialises doubles.
const EXPONENT_FROM: i128 = 10_000_000;

/// Appends `v` as JSON.
pub fn value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Dec { units, scale } => decimal(*units, *scale, out),
        Value::Date(d) => {
            out.push(b'"');
            date(*d, out);
            out.push(b'"');
        }
        Value::DateTime(ms) => {
            out.push(b'"');
            datetime(*ms, out);
            out.extend_from_slice(b"+0000\"");
        }
        Value::Time(ms) => {
            let _ = write!(
                out,
                "\"{:02}:{:02}:{:02}.{:03}Z\"",
                ms / 3_600_000,
                ms / 60_000 % 60,
                ms / 1000 % 60,
                ms % 1000
            );
        }
        Value::Text(s) => string(s, out),
        Value::Id(id) => {
            out.push(b'"');
            id.write(out);
            out.push(b'"');
        }
    }
}

/// `units × 10^-scale` with all `scale` digits (`1234.50`), or Java's `1.23450E7` form when
/// the magnitude is ten million or more (trailing zeros dropped, at least one decimal).
pub fn decimal(units: i64, scale: u8, out: &mut Vec<u8>) {
    let magnitude = i128::from(units.unsigned_abs());
    if magnitude >= EXPONENT_FROM * 10i128.pow(u32::from(scale)) {
        if units < 0 {
            out.push(b'-');
        }
        let digits = magnitude.to_string();
        let exponent = digits.len() as i32 - 1 - i32::from(scale);
        let significant = digits.trim_end_matches('0');
        let (head, tail) = significant.split_at(1);
        let tail = if tail.is_empty() { "0" } else { tail };
        let _ = write!(out, "{head}.{tail}E{exponent}");
        return;
    }
    out.extend_from_slice(crate::soql::decimal_text(units, scale).as_bytes());
}

fn two(n: u32, out: &mut Vec<u8>) {
    out.push(b'0' + (n / 10) as u8);
    out.push(b'0' + (n % 10) as u8);
}

fn date(d: NaiveDate, out: &mut Vec<u8>) {
    let y = d.year();
    if (0..10_000).contains(&y) {
        let y = y as u32;
        two(y / 100, out);
        two(y % 100, out);
    } else {
        let _ = write!(out, "{y}");
    }
    out.push(b'-');
    two(d.month(), out);
    out.push(b'-');
    two(d.day(), out);
}

/// `2024-03-10T07:15:00.000` (the caller adds the offset).
pub fn datetime(ms: i64, out: &mut Vec<u8>) {
    let t = DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .naive_utc();
    date(t.date(), out);
    out.push(b'T');
    two(t.hour(), out);
    out.push(b':');
    two(t.minute(), out);
    out.push(b':');
    two(t.second(), out);
    out.push(b'.');
    let milli = t.and_utc().timestamp_subsec_millis();
    out.push(b'0' + (milli / 100) as u8);
    two(milli % 100, out);
}

/// A JSON string: quotes, backslashes and control characters escaped, UTF-8 passed through.
pub fn string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                let _ = write!(out, "\\u{b:04x}");
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn text(v: &Value) -> String {
        let mut out = Vec::new();
        value(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn decimals_keep_their_scale_and_large_ones_use_exponents() {
        assert_eq!(
            text(&Value::Dec {
                units: 123_450,
                scale: 2
            }),
            "1234.50"
        );
        assert_eq!(
            text(&Value::Dec {
                units: -5,
                scale: 2
            }),
            "-0.05"
        );
        assert_eq!(
            text(&Value::Dec {
                units: 15_000_000,
                scale: 0
            }),
            "1.5E7"
        );
        assert_eq!(
            text(&Value::Dec {
                units: 1_000_000_000,
                scale: 2
            }),
            "1.0E7"
        );
        assert_eq!(
            text(&Value::Dec {
                units: -12_345_678_912,
                scale: 2
            }),
            "-1.2345678912E8"
        );
        assert_eq!(
            text(&Value::Dec {
                units: 9_999_999,
                scale: 0
            }),
            "9999999"
        );
    }

    #[test]
    fn times_and_dates_use_the_salesforce_forms() {
        let ms = "2024-03-10T07:15:00.042Z"
            .parse::<DateTime<chrono::Utc>>()
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            text(&Value::DateTime(ms)),
            "\"2024-03-10T07:15:00.042+0000\""
        );
        assert_eq!(
            text(&Value::Time(7 * 3_600_000 + 15 * 60_000)),
            "\"07:15:00.000Z\""
        );
        assert_eq!(
            text(&Value::Date(NaiveDate::from_ymd_opt(2024, 3, 1).unwrap())),
            "\"2024-03-01\""
        );
    }

    #[test]
    fn strings_escape_what_json_needs_and_keep_unicode() {
        let s = "a\"b\\c\nd\re\tf\u{1}g 東京 🎉";
        let out = text(&Value::Text(Cow::Borrowed(s)));
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        assert!(out.contains("東京 🎉"));
    }
}
