//! Parsers for one value's text: exact decimals, integers, dates, date-times and times.
//!
//! Pure functions over `&str`, shared by every input format (a REST JSON page today, a Bulk
//! API CSV page later): they see only the value's text, never the surrounding document.
//! Decimals are parsed digit by digit into an `i128` so money never passes through `f64`.

/// Why one value's text cannot become its column's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The text is not a number at all.
    #[error("not a number")]
    NotANumber,
    /// An integer column got a number with a non-zero fraction.
    #[error("not a whole number")]
    Fraction,
    /// The number does not fit the column's integer type.
    #[error("does not fit in {0}")]
    OutOfRange(&'static str),
    /// A currency value has more decimals than the describe's scale.
    #[error("has more decimals than the field's scale {0}")]
    TooManyDecimals(i8),
    /// A currency value has more digits than the describe's precision.
    #[error("has more digits than the field's precision {0}")]
    TooManyDigits(u8),
    /// Not a `true`/`false`.
    #[error("not a boolean")]
    NotABoolean,
    /// Not a `YYYY-MM-DD` date.
    #[error("not a date (YYYY-MM-DD)")]
    BadDate,
    /// Not an ISO 8601 date-time with an offset.
    #[error("not a date-time (YYYY-MM-DDTHH:MM:SS.sss+0000)")]
    BadDateTime,
    /// Not an `HH:MM:SS.sssZ` time.
    #[error("not a time (HH:MM:SS.sssZ)")]
    BadTime,
    /// A JSON object or array where the column holds a scalar.
    #[error("a JSON {found} where {expected} was expected")]
    WrongKind {
        found: &'static str,
        expected: &'static str,
    },
}

/// `10^i` for every exponent a `Decimal128` can hold.
const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// Largest exponent magnitude kept while parsing; anything beyond cannot fit or be exact.
const MAX_EXPONENT: i32 = 10_000;

/// The digits of a decimal number: `value = sign * digits * 10^exponent`, `digits` with no
/// trailing zeros (they are folded into the exponent), or 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scaled {
    negative: bool,
    digits: i128,
    exponent: i32,
}

fn scan_decimal(text: &str) -> Result<Scaled, ValueError> {
    let b = text.as_bytes();
    let (negative, mut i) = match b.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let mut digits: i128 = 0;
    // Zeros after the last non-zero digit, held back so `digits` only grows when it must.
    let mut pending_zeros: i32 = 0;
    let mut fraction_len: i32 = 0;
    let mut seen_dot = false;
    let mut any_digit = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'0'..=b'9' => {
                any_digit = true;
                if seen_dot {
                    fraction_len += 1;
                }
                let d = i128::from(c - b'0');
                if d == 0 {
                    if digits != 0 {
                        pending_zeros += 1;
                    }
                } else {
                    let shift = usize::try_from(pending_zeros + 1).unwrap_or(usize::MAX);
                    digits = POW10
                        .get(shift)
                        .and_then(|p| digits.checked_mul(*p))
                        .and_then(|v| v.checked_add(d))
                        .ok_or(ValueError::TooManyDigits(38))?;
                    pending_zeros = 0;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            b'e' | b'E' => break,
            _ => return Err(ValueError::NotANumber),
        }
        i += 1;
    }
    if !any_digit {
        return Err(ValueError::NotANumber);
    }
    let exp = if i < b.len() {
        parse_exponent(&b[i + 1..])?
    } else {
        0
    };
    Ok(Scaled {
        negative,
        digits,
        exponent: exp + pending_zeros - fraction_len,
    })
}

fn parse_exponent(b: &[u8]) -> Result<i32, ValueError> {
    let (negative, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return Err(ValueError::NotANumber);
    }
    let mut exp: i32 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(ValueError::NotANumber);
        }
        exp = (exp * 10 + i32::from(c - b'0')).min(MAX_EXPONENT);
    }
    Ok(if negative { -exp } else { exp })
}

/// A decimal number's text (`-12.50`, `1.5E7`) as an unscaled `Decimal128(precision, scale)`.
///
/// # Errors
/// Not a number, more decimals than `scale` (other than trailing zeros), or more digits than
/// `precision`.
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i128, ValueError> {
    let s = scan_decimal(text)?;
    if s.digits == 0 {
        return Ok(0);
    }
    let shift = s.exponent + i32::from(scale);
    if shift < 0 {
        // `digits` ends in a non-zero digit, so any downward shift would drop it.
        return Err(ValueError::TooManyDecimals(scale));
    }
    let value = usize::try_from(shift)
        .ok()
        .and_then(|sh| POW10.get(sh))
        .and_then(|p| s.digits.checked_mul(*p))
        .ok_or(ValueError::TooManyDigits(precision))?;
    if value >= POW10[usize::from(precision)] {
        return Err(ValueError::TooManyDigits(precision));
    }
    Ok(if s.negative { -value } else { value })
}

/// An integer's text; integral decimal forms (`12.0`, `1E3`) are accepted, fractions are not.
///
/// # Errors
/// Not a number, a fraction, or outside the `i64` range.
pub fn parse_i64(text: &str) -> Result<i64, ValueError> {
    let b = text.as_bytes();
    let (negative, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    // Fast path: plain digits, at most 18 of them, cannot overflow.
    if !digits.is_empty() && digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit) {
        let v = digits
            .iter()
            .fold(0i64, |acc, &c| acc * 10 + i64::from(c - b'0'));
        return Ok(if negative { -v } else { v });
    }
    let v = parse_decimal(text, 38, 0).map_err(|e| match e {
        ValueError::TooManyDecimals(_) => ValueError::Fraction,
        ValueError::TooManyDigits(_) => ValueError::OutOfRange("a 64-bit integer"),
        other => other,
    })?;
    i64::try_from(v).map_err(|_| ValueError::OutOfRange("a 64-bit integer"))
}

/// An `int` field's text.
///
/// # Errors
/// As [`parse_i64`], or outside the `i32` range.
pub fn parse_i32(text: &str) -> Result<i32, ValueError> {
    let v = parse_i64(text).map_err(|e| match e {
        ValueError::OutOfRange(_) => ValueError::OutOfRange("a 32-bit integer"),
        other => other,
    })?;
    i32::try_from(v).map_err(|_| ValueError::OutOfRange("a 32-bit integer"))
}

/// A floating-point number's text, correctly rounded.
///
/// # Errors
/// Not a number.
pub fn parse_f64(text: &str) -> Result<f64, ValueError> {
    text.parse().map_err(|_| ValueError::NotANumber)
}

/// `true` or `false`.
///
/// # Errors
/// Any other text.
pub fn parse_bool(text: &str) -> Result<bool, ValueError> {
    match text {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ValueError::NotABoolean),
    }
}

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// The value of `n` ASCII digits at `b[at..at + n]`, if they are all digits.
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    s.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// `YYYY-MM-DD` at the start of `b`, as days since the epoch.
fn date_prefix(b: &[u8]) -> Option<i64> {
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let year = i64::from(digits(b, 0, 4)?);
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// `HH:MM:SS[.fraction]` at the start of `b`: (ms since midnight, bytes used).
fn time_prefix(b: &[u8]) -> Option<(i64, usize)> {
    if b.get(2) != Some(&b':') || b.get(5) != Some(&b':') {
        return None;
    }
    let (h, m, s) = (digits(b, 0, 2)?, digits(b, 3, 2)?, digits(b, 6, 2)?);
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let mut ms = i64::from((h * 60 + m) * 60 + s) * 1000;
    let mut used = 8;
    if b.get(8) == Some(&b'.') {
        let frac = b[9..].iter().take_while(|c| c.is_ascii_digit()).count();
        if frac == 0 {
            return None;
        }
        // Sub-millisecond digits are dropped: the column holds milliseconds.
        let millis = (0..3).fold(0, |acc, k| {
            acc * 10
                + b.get(9 + k)
                    .filter(|_| k < frac)
                    .map_or(0, |c| i64::from(c - b'0'))
        });
        ms += millis;
        used = 9 + frac;
    }
    Some((ms, used))
}

/// A UTC offset suffix: empty or `Z` → 0, `±HH`, `±HHMM`, `±HH:MM` → milliseconds east.
fn offset_ms(b: &[u8]) -> Option<i64> {
    let sign = match b.first() {
        None => return Some(0),
        Some(b'Z') if b.len() == 1 => return Some(0),
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return None,
    };
    let h = digits(b, 1, 2)?;
    let m = match b.len() {
        3 => 0,
        5 => digits(b, 3, 2)?,
        6 if b[3] == b':' => digits(b, 4, 2)?,
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * i64::from(h * 60 + m) * 60_000)
}

/// `YYYY-MM-DD` as days since 1970-01-01.
///
/// # Errors
/// Any other shape, or a day that does not exist.
pub fn parse_date(text: &str) -> Result<i32, ValueError> {
    let b = text.as_bytes();
    if b.len() != 10 {
        return Err(ValueError::BadDate);
    }
    date_prefix(b)
        .and_then(|d| i32::try_from(d).ok())
        .ok_or(ValueError::BadDate)
}

/// An ISO 8601 date-time (`2024-03-10T07:15:00.000+0000`, `Z`, `+00:00`, any offset) as
/// milliseconds since the epoch in UTC. Without an offset the time is taken as UTC, which is
/// what Salesforce means by every date-time it sends.
///
/// # Errors
/// Any other shape, or a date or time that does not exist.
pub fn parse_datetime(text: &str) -> Result<i64, ValueError> {
    let b = text.as_bytes();
    let parsed = (|| {
        if b.len() < 19 || !matches!(b[10], b'T' | b' ') {
            return None;
        }
        let days = date_prefix(b)?;
        let (ms, used) = time_prefix(&b[11..])?;
        let offset = offset_ms(&b[11 + used..])?;
        Some(days * MS_PER_DAY + ms - offset)
    })();
    parsed.ok_or(ValueError::BadDateTime)
}

/// `HH:MM:SS[.sss][Z]` as milliseconds since midnight.
///
/// # Errors
/// Any other shape, or an hour/minute/second out of range.
pub fn parse_time(text: &str) -> Result<i32, ValueError> {
    let b = text.as_bytes();
    match time_prefix(b) {
        Some((ms, used)) if matches!(&b[used..], b"" | b"Z") => {
            Ok(i32::try_from(ms).expect("less than a day of milliseconds"))
        }
        _ => Err(ValueError::BadTime),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact_in_every_notation() {
        let d = |t| parse_decimal(t, 18, 2);
        assert_eq!(d("12.5"), Ok(1250));
        assert_eq!(d("-0.5"), Ok(-50));
        assert_eq!(d("0"), Ok(0));
        assert_eq!(d("-0.00"), Ok(0));
        assert_eq!(d("1.5E7"), Ok(1_500_000_000));
        assert_eq!(d("1.5e+7"), Ok(1_500_000_000));
        assert_eq!(d("125E-2"), Ok(125));
        assert_eq!(d("1.2300"), Ok(123));
        assert_eq!(d("100"), Ok(10_000));
        assert_eq!(d("0.05"), Ok(5));
        assert_eq!(d("9999999999999999.99"), Ok(999_999_999_999_999_999));
        assert_eq!(d("10000000000000000"), Err(ValueError::TooManyDigits(18)));
        assert_eq!(d("1.005"), Err(ValueError::TooManyDecimals(2)));
        assert_eq!(d("1E-3"), Err(ValueError::TooManyDecimals(2)));
        assert_eq!(d("abc"), Err(ValueError::NotANumber));
        assert_eq!(d("1.2.3"), Err(ValueError::NotANumber));
        assert_eq!(d("1e"), Err(ValueError::NotANumber));
        assert_eq!(d("-"), Err(ValueError::NotANumber));
        assert_eq!(
            parse_decimal("12345678901234567890123456789012345678", 38, 0),
            Ok(12_345_678_901_234_567_890_123_456_789_012_345_678)
        );
        assert_eq!(
            parse_decimal("1E40", 38, 0),
            Err(ValueError::TooManyDigits(38))
        );
    }

    #[test]
    fn integers_accept_integral_floats_only() {
        assert_eq!(parse_i32("42"), Ok(42));
        assert_eq!(parse_i32("-7"), Ok(-7));
        assert_eq!(parse_i32("12.0"), Ok(12));
        assert_eq!(parse_i32("1E3"), Ok(1000));
        assert_eq!(parse_i32("12.5"), Err(ValueError::Fraction));
        assert_eq!(
            parse_i32("2147483648"),
            Err(ValueError::OutOfRange("a 32-bit integer"))
        );
        assert_eq!(parse_i64("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_i64("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(
            parse_i64("9223372036854775808"),
            Err(ValueError::OutOfRange("a 64-bit integer"))
        );
        assert_eq!(parse_i64("x"), Err(ValueError::NotANumber));
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(parse_date("2024-03-10"), Ok(19792));
        assert_eq!(parse_date("1969-12-31"), Ok(-1));
        assert_eq!(parse_date("2024-02-29"), Ok(19782));
        assert_eq!(parse_date("2023-02-29"), Err(ValueError::BadDate));
        assert_eq!(parse_date("2024-3-10"), Err(ValueError::BadDate));
        let t = 1_710_054_900_000; // 2024-03-10T07:15:00Z
        assert_eq!(parse_datetime("2024-03-10T07:15:00.000+0000"), Ok(t));
        assert_eq!(parse_datetime("2024-03-10T07:15:00Z"), Ok(t));
        assert_eq!(parse_datetime("2024-03-10T07:15:00.000+00:00"), Ok(t));
        assert_eq!(parse_datetime("2024-03-10T09:15:00.000+0200"), Ok(t));
        assert_eq!(parse_datetime("2024-03-09T23:15:00.000-08:00"), Ok(t));
        assert_eq!(parse_datetime("2024-03-10T07:15:00.1239Z"), Ok(t + 123));
        assert_eq!(parse_datetime("1969-12-31T23:59:59.999Z"), Ok(-1));
        for bad in [
            "2024-03-10",
            "2024-03-10T25:00:00Z",
            "2024-03-10T07:15:00.+0000",
            "2024-03-10T07:15:00.000+000",
            "2024-03-10T07:15:00.000 junk",
        ] {
            assert_eq!(parse_datetime(bad), Err(ValueError::BadDateTime), "{bad}");
        }
        assert_eq!(parse_time("07:15:00.000Z"), Ok(26_100_000));
        assert_eq!(parse_time("23:59:59.999"), Ok(86_399_999));
        assert_eq!(parse_time("00:00:00Z"), Ok(0));
        assert_eq!(parse_time("24:00:00Z"), Err(ValueError::BadTime));
        assert_eq!(parse_time("07:15:00.000+0100"), Err(ValueError::BadTime));
    }
}
