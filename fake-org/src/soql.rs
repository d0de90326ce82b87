//! The fake org's SOQL grammar: a tokenizer and a recursive-descent parser into [`Query`],
//! written from salesforce-api.md §4.5–4.6 alone (it shares nothing with the engine's builder).
//!
//! Owns: syntax. Does not own names or types (whether a field exists, or a literal fits its
//! field): the executor checks those against the describe.
//!
//! Invariants: `parse(&q.to_string()) == q` for every query this module can produce (positions
//! are ignored by equality); `AND` and `OR` never mix without parentheses, as in SOQL; errors
//! carry the byte offset of the offending token, rendered Salesforce-style by [`located`].

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use super::exec::SoqlError;

/// Longest statement Salesforce accepts by default.
pub const MAX_STATEMENT_CHARS: usize = 100_000;

/// A name as written, with where it starts (ignored by equality).
#[derive(Debug, Clone)]
pub struct Ident {
    pub name: String,
    pub pos: usize,
}

impl PartialEq for Ident {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// A parsed statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: Ident,
    pub filter: Option<Cond>,
    pub group_by: Vec<Expr>,
    pub order_by: Vec<OrderKey>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SelectItem {
    pub expr: Expr,
    pub alias: Option<Ident>,
}

/// A field path (`Name`, `Owner.Name`), a function call (`COUNT()` has no argument), or,
/// in the select list only, `FIELDS(ALL|STANDARD|CUSTOM)`.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Field(Vec<Ident>),
    Call {
        func: Func,
        arg: Option<Box<Expr>>,
        pos: Pos,
    },
    Fields {
        kind: FieldsKind,
        pos: Pos,
    },
}

/// Which fields `FIELDS(...)` stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldsKind {
    All,
    Standard,
    Custom,
}

impl FieldsKind {
    pub fn name(self) -> &'static str {
        match self {
            FieldsKind::All => "ALL",
            FieldsKind::Standard => "STANDARD",
            FieldsKind::Custom => "CUSTOM",
        }
    }
}

/// A byte offset that every position compares equal to, so ASTs compare by content.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pos(pub usize);

impl PartialEq for Pos {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Expr {
    /// Where the expression starts in the statement.
    pub fn pos(&self) -> usize {
        match self {
            Expr::Field(path) => path.first().map_or(0, |i| i.pos),
            Expr::Call { pos, .. } | Expr::Fields { pos, .. } => pos.0,
        }
    }

    /// Whether this is an aggregate (`COUNT`, `MIN`, ...) call.
    pub fn is_aggregate(&self) -> bool {
        matches!(self, Expr::Call { func, .. } if func.is_aggregate())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Count,
    CountDistinct,
    Min,
    Max,
    Sum,
    Avg,
    DayOnly,
    CalendarYear,
    CalendarMonth,
    DayInMonth,
    HourInDay,
    ConvertTimezone,
}

const FUNCS: &[(&str, Func)] = &[
    ("COUNT", Func::Count),
    ("COUNT_DISTINCT", Func::CountDistinct),
    ("MIN", Func::Min),
    ("MAX", Func::Max),
    ("SUM", Func::Sum),
    ("AVG", Func::Avg),
    ("DAY_ONLY", Func::DayOnly),
    ("CALENDAR_YEAR", Func::CalendarYear),
    ("CALENDAR_MONTH", Func::CalendarMonth),
    ("DAY_IN_MONTH", Func::DayInMonth),
    ("HOUR_IN_DAY", Func::HourInDay),
    ("convertTimezone", Func::ConvertTimezone),
];

impl Func {
    pub fn name(self) -> &'static str {
        FUNCS
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .expect("every func is listed")
    }

    fn from_name(name: &str) -> Option<Func> {
        FUNCS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, f)| *f)
    }

    pub fn is_aggregate(self) -> bool {
        matches!(
            self,
            Func::Count | Func::CountDistinct | Func::Min | Func::Max | Func::Sum | Func::Avg
        )
    }
}

/// A `WHERE` condition. `And`/`Or` hold two or more operands.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Compare {
        lhs: Expr,
        op: CmpOp,
        rhs: Lit,
    },
    In {
        lhs: Expr,
        negated: bool,
        values: Vec<Lit>,
    },
    Like {
        lhs: Expr,
        pattern: Lit,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn text(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A literal and where it starts (ignored by equality).
#[derive(Debug, Clone, PartialEq)]
pub struct Lit {
    pub value: LitValue,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LitValue {
    Null,
    Bool(bool),
    /// `units × 10^-scale`, exactly as written.
    Number {
        units: i64,
        scale: u8,
    },
    /// Unescaped, except `\%` and `\_`, which stay escaped for `LIKE`.
    Str(String),
    Date(NaiveDate),
    DateTime(DateTime<FixedOffset>),
    /// A relative date literal (`TODAY`, `LAST_N_DAYS:7`): a range resolved when the query
    /// runs, against the clock and the Run-As user's zone.
    Relative(RelDate),
}

/// The calendar unit a relative date literal counts in. Fiscal periods are the calendar
/// ones: the org's fiscal year starts in January, Salesforce's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

/// Which periods a relative date literal covers, relative to the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    /// `TODAY`, `THIS_MONTH`.
    This,
    /// `LAST_WEEK`: the previous period.
    Last,
    /// `TOMORROW`, `NEXT_YEAR`: the following period.
    Next,
    /// `LAST_N_DAYS:n` (today and the n days before), `LAST_N_MONTHS:n` (the n whole
    /// months before this one).
    LastN,
    /// `NEXT_N_DAYS:n` (the n days after today), `NEXT_N_WEEKS:n` (the n weeks after this one).
    NextN,
    /// `YESTERDAY`, `N_DAYS_AGO:n`: the one period n periods back.
    Ago,
}

/// A relative date literal as written (`name`, upper case, and its `:n` if it takes one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelDate {
    pub name: String,
    pub kind: RelKind,
    pub period: Period,
    /// How many periods (`LAST_90_DAYS` is 90, `YESTERDAY` 1); the `:n` for the `N` forms.
    pub n: u32,
    /// Whether the literal is written with `:n`.
    pub takes_n: bool,
}

/// The relative date literal `name` names (without its `:n`), if any.
pub fn relative_date(name: &str) -> Option<RelDate> {
    let upper = name.to_ascii_uppercase();
    let fixed = |kind, period, n| {
        Some(RelDate {
            name: upper.clone(),
            kind,
            period,
            n,
            takes_n: false,
        })
    };
    let unit = |u: &str| match u {
        "DAY" => Some(Period::Day),
        "WEEK" => Some(Period::Week),
        "MONTH" => Some(Period::Month),
        "QUARTER" | "FISCAL_QUARTER" => Some(Period::Quarter),
        "YEAR" | "FISCAL_YEAR" => Some(Period::Year),
        _ => None,
    };
    match upper.as_str() {
        "YESTERDAY" => return fixed(RelKind::Ago, Period::Day, 1),
        "TODAY" => return fixed(RelKind::This, Period::Day, 1),
        "TOMORROW" => return fixed(RelKind::Next, Period::Day, 1),
        "LAST_90_DAYS" => return fixed(RelKind::LastN, Period::Day, 90),
        "NEXT_90_DAYS" => return fixed(RelKind::NextN, Period::Day, 90),
        _ => {}
    }
    for (prefix, kind) in [
        ("THIS_", RelKind::This),
        ("LAST_", RelKind::Last),
        ("NEXT_", RelKind::Next),
    ] {
        if let Some(period) = upper.strip_prefix(prefix).and_then(unit)
            && period != Period::Day
        {
            return fixed(kind, period, 1);
        }
    }
    let counted = upper
        .strip_prefix("LAST_N_")
        .map(|u| (RelKind::LastN, u))
        .or_else(|| upper.strip_prefix("NEXT_N_").map(|u| (RelKind::NextN, u)))
        .or_else(|| {
            upper
                .strip_prefix("N_")
                .and_then(|u| u.strip_suffix("_AGO"))
                .map(|u| (RelKind::Ago, u))
        });
    let (kind, units) = counted?;
    let period = unit(units.strip_suffix('S')?)?;
    Some(RelDate {
        name: upper,
        kind,
        period,
        n: 0,
        takes_n: true,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    pub expr: Expr,
    /// `Some(true)` for `DESC`, `Some(false)` for an explicit `ASC`.
    pub descending: Option<bool>,
    /// `Some(true)` for `NULLS FIRST`, `Some(false)` for `NULLS LAST`.
    pub nulls_first: Option<bool>,
}

/// A syntax error at a byte offset of the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub pos: usize,
    pub message: String,
}

/// The Salesforce multi-line message: the statement, a caret under the offending column, the
/// row and column, then the explanation.
pub fn located(soql: &str, pos: usize, message: &str) -> String {
    let pos = pos.min(soql.len());
    let before = &soql[..pos];
    let row = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line = soql[line_start..].lines().next().unwrap_or("");
    format!(
        "\n{line}\n{}^\nERROR at Row:{row}:Column:{column}\n{message}",
        " ".repeat(column - 1)
    )
}

/// Parses a statement.
///
/// # Errors
/// `MALFORMED_QUERY` for an empty or over-long statement or a syntax error.
pub fn parse(soql: &str) -> Result<Query, SoqlError> {
    let malformed = |message: String| SoqlError {
        code: "MALFORMED_QUERY",
        message,
    };
    if soql.trim().is_empty() {
        return Err(malformed("SOQL statements cannot be empty or null".into()));
    }
    if soql.chars().count() > MAX_STATEMENT_CHARS {
        return Err(malformed(format!(
            "SOQL statement is too long: {} characters, the maximum is {MAX_STATEMENT_CHARS}",
            soql.chars().count()
        )));
    }
    let tokens = tokenize(soql).map_err(|e| malformed(located(soql, e.pos, &e.message)))?;
    Parser { tokens, at: 0 }
        .query()
        .map_err(|e| malformed(located(soql, e.pos, &e.message)))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Number {
        units: i64,
        scale: u8,
    },
    Date(NaiveDate),
    DateTime(DateTime<FixedOffset>),
    Op(CmpOp),
    Comma,
    Dot,
    /// Only in `LAST_N_DAYS:7` and the like.
    Colon,
    LParen,
    RParen,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
    text: String,
}

fn tokenize(s: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let tok = match c {
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'.' => {
                i += 1;
                Tok::Dot
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b':' => {
                i += 1;
                Tok::Colon
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b'=' => {
                i += 1;
                Tok::Op(CmpOp::Eq)
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Op(CmpOp::Ne)
            }
            b'<' => match bytes.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    Tok::Op(CmpOp::Le)
                }
                Some(b'>') => {
                    i += 2;
                    Tok::Op(CmpOp::Ne)
                }
                _ => {
                    i += 1;
                    Tok::Op(CmpOp::Lt)
                }
            },
            b'>' => {
                if bytes.get(i + 1) == Some(&b'=') {
                    i += 2;
                    Tok::Op(CmpOp::Ge)
                } else {
                    i += 1;
                    Tok::Op(CmpOp::Gt)
                }
            }
            b'\'' => {
                let (value, end) = string_literal(s, i)?;
                i = end;
                Tok::Str(value)
            }
            b'0'..=b'9' | b'-' | b'+' => {
                let (tok, end) = number_or_date(s, i)?;
                i = end;
                tok
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                Tok::Ident(s[start..i].to_string())
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(ParseError {
                    pos: i,
                    message: format!("unexpected token: '{ch}'"),
                });
            }
        };
        out.push(Token {
            tok,
            pos: start,
            text: s[start..i].to_string(),
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: s.len(),
        text: "<EOF>".into(),
    });
    Ok(out)
}

/// A quoted string from `start` (the opening quote); returns the value and the end offset.
fn string_literal(s: &str, start: usize) -> Result<(String, usize), ParseError> {
    let mut value = String::new();
    let mut chars = s[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '\'' => return Ok((value, start + 1 + off + 1)),
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    't' => value.push('\t'),
                    'b' => value.push('\u{8}'),
                    'f' => value.push('\u{c}'),
                    '"' | '\'' | '\\' => value.push(e),
                    '%' | '_' => {
                        value.push('\\');
                        value.push(e);
                    }
                    _ => {
                        return Err(ParseError {
                            pos: start,
                            message: format!(
                                "Invalid string literal '{}'. Illegal character sequence '\\{e}' in string literal.",
                                &s[start..]
                            ),
                        });
                    }
                }
            }
            _ => value.push(c),
        }
    }
    Err(ParseError {
        pos: start,
        message: "unexpected token: '<EOF>'".into(),
    })
}

fn digits_at(b: &[u8], i: usize, n: usize) -> bool {
    b.len() >= i + n && b[i..i + n].iter().all(u8::is_ascii_digit)
}

/// A number, date or date-time starting at `start`.
fn number_or_date(s: &str, start: usize) -> Result<(Tok, usize), ParseError> {
    let b = s.as_bytes();
    let bad = |pos: usize| ParseError {
        pos,
        message: format!(
            "unexpected token: '{}'",
            s[pos..]
                .split(|c: char| c.is_whitespace() || c == ')' || c == ',')
                .next()
                .unwrap_or("")
        ),
    };
    if digits_at(b, start, 4) && b.get(start + 4) == Some(&b'-') && digits_at(b, start + 5, 2) {
        return date_or_datetime(s, start).ok_or_else(|| bad(start));
    }
    let mut i = start;
    if matches!(b[i], b'-' | b'+') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == int_start {
        return Err(bad(start));
    }
    let mut digits = s[int_start..i].to_string();
    let mut scale = 0u8;
    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits.push_str(&s[frac_start..i]);
        scale = u8::try_from(i - frac_start).map_err(|_| bad(start))?;
    }
    if b.get(i).is_some_and(|c| c.is_ascii_alphabetic()) {
        return Err(bad(start));
    }
    let magnitude: i64 = digits.parse().map_err(|_| bad(start))?;
    let units = if b[start] == b'-' {
        -magnitude
    } else {
        magnitude
    };
    Ok((Tok::Number { units, scale }, i))
}

/// `YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm|±hhmm)`.
fn date_or_datetime(s: &str, start: usize) -> Option<(Tok, usize)> {
    let b = s.as_bytes();
    let date = NaiveDate::parse_from_str(s.get(start..start + 10)?, "%Y-%m-%d").ok()?;
    let mut i = start + 10;
    if b.get(i) != Some(&b'T') {
        if b.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        return Some((Tok::Date(date), i));
    }
    i += 1;
    let time = NaiveTime::parse_from_str(s.get(i..i + 8)?, "%H:%M:%S").ok()?;
    i += 8;
    let mut millis = 0u32;
    if b.get(i) == Some(&b'.') {
        let frac_start = i + 1;
        i = frac_start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &s[frac_start..i];
        if frac.is_empty() || frac.len() > 3 {
            return None;
        }
        millis = format!("{frac:0<3}").parse().ok()?;
    }
    let offset_secs = match b.get(i) {
        Some(b'Z') => {
            i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let sign = if *sign == b'-' { -1 } else { 1 };
            let (h, m, len) = if digits_at(b, i + 1, 2)
                && b.get(i + 3) == Some(&b':')
                && digits_at(b, i + 4, 2)
            {
                (&s[i + 1..i + 3], &s[i + 4..i + 6], 6)
            } else if digits_at(b, i + 1, 4) {
                (&s[i + 1..i + 3], &s[i + 3..i + 5], 5)
            } else {
                return None;
            };
            i += len;
            sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60)
        }
        _ => return None,
    };
    if b.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let offset = FixedOffset::east_opt(offset_secs)?;
    let local = NaiveDateTime::new(date, time.with_nanosecond(millis * 1_000_000)?);
    let dt = local.and_local_timezone(offset).single()?;
    Some((Tok::DateTime(dt), i))
}

const KEYWORDS: &[&str] = &[
    "SELECT", "FROM", "WHERE", "GROUP", "BY", "ORDER", "LIMIT", "OFFSET", "AND", "OR", "NOT", "IN",
    "LIKE", "ASC", "DESC", "NULLS", "FIRST", "LAST", "HAVING", "WITH", "FOR", "USING", "INCLUDES",
    "EXCLUDES", "TYPEOF", "NULL", "TRUE", "FALSE",
];

fn is_keyword(name: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(name))
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

type PResult<T> = Result<T, ParseError>;

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.at]
    }

    fn next(&mut self) -> Token {
        let t = self.tokens[self.at].clone();
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
        t
    }

    fn unexpected<T>(&self) -> PResult<T> {
        let t = self.peek();
        Err(ParseError {
            pos: t.pos,
            message: format!("unexpected token: '{}'", t.text),
        })
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(n) if n.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.is_kw(kw);
        if hit {
            self.next();
        }
        hit
    }

    fn expect_kw(&mut self, kw: &str) -> PResult<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            self.unexpected()
        }
    }

    fn expect(&mut self, tok: &Tok) -> PResult<()> {
        if &self.peek().tok == tok {
            self.next();
            Ok(())
        } else {
            self.unexpected()
        }
    }

    fn ident(&mut self) -> PResult<Ident> {
        match &self.peek().tok {
            Tok::Ident(n) if !is_keyword(n) => {
                let t = self.next();
                Ok(Ident {
                    name: t.text,
                    pos: t.pos,
                })
            }
            _ => self.unexpected(),
        }
    }

    fn query(&mut self) -> PResult<Query> {
        self.expect_kw("SELECT")?;
        let mut select = vec![self.select_item()?];
        while self.peek().tok == Tok::Comma {
            self.next();
            select.push(self.select_item()?);
        }
        self.expect_kw("FROM")?;
        let from = self.ident()?;
        let filter = if self.eat_kw("WHERE") {
            Some(self.cond()?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        if self.eat_kw("GROUP") {
            self.expect_kw("BY")?;
            group_by.push(self.expr()?);
            while self.peek().tok == Tok::Comma {
                self.next();
                group_by.push(self.expr()?);
            }
        }
        let mut order_by = Vec::new();
        if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            order_by.push(self.order_key()?);
            while self.peek().tok == Tok::Comma {
                self.next();
                order_by.push(self.order_key()?);
            }
        }
        let limit = if self.eat_kw("LIMIT") {
            Some(self.count()?)
        } else {
            None
        };
        let offset = if self.eat_kw("OFFSET") {
            Some(self.count()?)
        } else {
            None
        };
        if self.peek().tok != Tok::Eof {
            return self.unexpected();
        }
        Ok(Query {
            select,
            from,
            filter,
            group_by,
            order_by,
            limit,
            offset,
        })
    }

    fn count(&mut self) -> PResult<u64> {
        match self.peek().tok {
            Tok::Number { units, scale: 0 }
                if units >= 0 && self.peek().text.as_bytes()[0] != b'+' =>
            {
                self.next();
                Ok(units as u64)
            }
            _ => self.unexpected(),
        }
    }

    fn select_item(&mut self) -> PResult<SelectItem> {
        if self.is_kw("FIELDS")
            && self.tokens.get(self.at + 1).map(|t| &t.tok) == Some(&Tok::LParen)
        {
            let pos = self.next().pos;
            self.next();
            let kind = match &self.peek().tok {
                Tok::Ident(k) if k.eq_ignore_ascii_case("ALL") => FieldsKind::All,
                Tok::Ident(k) if k.eq_ignore_ascii_case("STANDARD") => FieldsKind::Standard,
                Tok::Ident(k) if k.eq_ignore_ascii_case("CUSTOM") => FieldsKind::Custom,
                _ => return self.unexpected(),
            };
            self.next();
            self.expect(&Tok::RParen)?;
            return Ok(SelectItem {
                expr: Expr::Fields {
                    kind,
                    pos: Pos(pos),
                },
                alias: None,
            });
        }
        let expr = self.expr()?;
        let alias = match &self.peek().tok {
            Tok::Ident(n) if !is_keyword(n) => Some(self.ident()?),
            _ => None,
        };
        Ok(SelectItem { expr, alias })
    }

    fn expr(&mut self) -> PResult<Expr> {
        let first = self.ident()?;
        if self.peek().tok == Tok::LParen {
            let Some(func) = Func::from_name(&first.name) else {
                return Err(ParseError {
                    pos: first.pos,
                    message: format!("Unknown function '{}'", first.name),
                });
            };
            self.next();
            let arg = if self.peek().tok == Tok::RParen {
                None
            } else {
                Some(Box::new(self.expr()?))
            };
            self.expect(&Tok::RParen)?;
            return Ok(Expr::Call {
                func,
                arg,
                pos: Pos(first.pos),
            });
        }
        let mut path = vec![first];
        while self.peek().tok == Tok::Dot {
            self.next();
            path.push(self.ident()?);
        }
        Ok(Expr::Field(path))
    }

    fn order_key(&mut self) -> PResult<OrderKey> {
        let expr = self.expr()?;
        let descending = if self.eat_kw("ASC") {
            Some(false)
        } else if self.eat_kw("DESC") {
            Some(true)
        } else {
            None
        };
        let nulls_first = if self.eat_kw("NULLS") {
            if self.eat_kw("FIRST") {
                Some(true)
            } else if self.eat_kw("LAST") {
                Some(false)
            } else {
                return self.unexpected();
            }
        } else {
            None
        };
        Ok(OrderKey {
            expr,
            descending,
            nulls_first,
        })
    }

    /// A chain of `AND`s or of `OR`s; mixing them needs parentheses.
    fn cond(&mut self) -> PResult<Cond> {
        let first = self.unary()?;
        let joiner = if self.is_kw("AND") {
            "AND"
        } else if self.is_kw("OR") {
            "OR"
        } else {
            return Ok(first);
        };
        let mut parts = vec![first];
        while self.eat_kw(joiner) {
            parts.push(self.unary()?);
        }
        if self.is_kw("AND") || self.is_kw("OR") {
            return self.unexpected();
        }
        Ok(if joiner == "AND" {
            Cond::And(parts)
        } else {
            Cond::Or(parts)
        })
    }

    fn unary(&mut self) -> PResult<Cond> {
        if self.eat_kw("NOT") {
            return Ok(Cond::Not(Box::new(self.unary()?)));
        }
        if self.peek().tok == Tok::LParen {
            self.next();
            let inner = self.cond()?;
            self.expect(&Tok::RParen)?;
            return Ok(inner);
        }
        self.predicate()
    }

    fn predicate(&mut self) -> PResult<Cond> {
        let lhs = self.expr()?;
        if let Tok::Op(op) = self.peek().tok {
            self.next();
            let rhs = self.literal()?;
            return Ok(Cond::Compare { lhs, op, rhs });
        }
        if self.eat_kw("LIKE") {
            let pattern = self.literal()?;
            return Ok(Cond::Like { lhs, pattern });
        }
        let negated = self.eat_kw("NOT");
        if self.eat_kw("IN") {
            self.expect(&Tok::LParen)?;
            let mut values = vec![self.literal()?];
            while self.peek().tok == Tok::Comma {
                self.next();
                values.push(self.literal()?);
            }
            self.expect(&Tok::RParen)?;
            return Ok(Cond::In {
                lhs,
                negated,
                values,
            });
        }
        self.unexpected()
    }

    fn literal(&mut self) -> PResult<Lit> {
        let t = self.peek().clone();
        let value = match &t.tok {
            Tok::Str(s) => LitValue::Str(s.clone()),
            Tok::Number { units, scale } => LitValue::Number {
                units: *units,
                scale: *scale,
            },
            Tok::Date(d) => LitValue::Date(*d),
            Tok::DateTime(d) => LitValue::DateTime(*d),
            Tok::Ident(n) if n.eq_ignore_ascii_case("null") => LitValue::Null,
            Tok::Ident(n) if n.eq_ignore_ascii_case("true") => LitValue::Bool(true),
            Tok::Ident(n) if n.eq_ignore_ascii_case("false") => LitValue::Bool(false),
            Tok::Ident(n) => match relative_date(n) {
                Some(mut rel) => {
                    self.next();
                    if rel.takes_n {
                        self.expect(&Tok::Colon)?;
                        rel.n = u32::try_from(self.count()?).map_err(|_| ParseError {
                            pos: t.pos,
                            message: format!("unexpected token: '{}'", t.text),
                        })?;
                    }
                    return Ok(Lit {
                        value: LitValue::Relative(rel),
                        pos: Pos(t.pos),
                    });
                }
                None => return self.unexpected(),
            },
            _ => return self.unexpected(),
        };
        self.next();
        Ok(Lit {
            value,
            pos: Pos(t.pos),
        })
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        for (i, item) in self.select.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", item.expr)?;
            if let Some(a) = &item.alias {
                write!(f, " {}", a.name)?;
            }
        }
        write!(f, " FROM {}", self.from.name)?;
        if let Some(c) = &self.filter {
            write!(f, " WHERE {c}")?;
        }
        if !self.group_by.is_empty() {
            f.write_str(" GROUP BY ")?;
            for (i, e) in self.group_by.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{e}")?;
            }
        }
        if !self.order_by.is_empty() {
            f.write_str(" ORDER BY ")?;
            for (i, k) in self.order_by.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{}", k.expr)?;
                match k.descending {
                    Some(true) => f.write_str(" DESC")?,
                    Some(false) => f.write_str(" ASC")?,
                    None => {}
                }
                match k.nulls_first {
                    Some(true) => f.write_str(" NULLS FIRST")?,
                    Some(false) => f.write_str(" NULLS LAST")?,
                    None => {}
                }
            }
        }
        if let Some(n) = self.limit {
            write!(f, " LIMIT {n}")?;
        }
        if let Some(n) = self.offset {
            write!(f, " OFFSET {n}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Field(path) => {
                for (i, p) in path.iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(&p.name)?;
                }
                Ok(())
            }
            Expr::Call { func, arg, .. } => match arg {
                Some(a) => write!(f, "{}({a})", func.name()),
                None => write!(f, "{}()", func.name()),
            },
            Expr::Fields { kind, .. } => write!(f, "FIELDS({})", kind.name()),
        }
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operand = |f: &mut fmt::Formatter<'_>, c: &Cond| match c {
            Cond::And(_) | Cond::Or(_) => write!(f, "({c})"),
            _ => write!(f, "{c}"),
        };
        match self {
            Cond::And(parts) | Cond::Or(parts) => {
                let joiner = if matches!(self, Cond::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(joiner)?;
                    }
                    operand(f, p)?;
                }
                Ok(())
            }
            Cond::Not(inner) => {
                f.write_str("NOT ")?;
                operand(f, inner)
            }
            Cond::Compare { lhs, op, rhs } => write!(f, "{lhs} {} {rhs}", op.text()),
            Cond::In {
                lhs,
                negated,
                values,
            } => {
                write!(f, "{lhs} {}IN (", if *negated { "NOT " } else { "" })?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
            Cond::Like { lhs, pattern } => write!(f, "{lhs} LIKE {pattern}"),
        }
    }
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            LitValue::Null => f.write_str("null"),
            LitValue::Bool(b) => write!(f, "{b}"),
            LitValue::Number { units, scale } => f.write_str(&decimal_text(*units, *scale)),
            LitValue::Str(s) => {
                f.write_str("'")?;
                let mut chars = s.chars().peekable();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' if matches!(chars.peek(), Some('%' | '_')) => f.write_str("\\")?,
                        '\\' => f.write_str("\\\\")?,
                        '\'' => f.write_str("\\'")?,
                        '\n' => f.write_str("\\n")?,
                        '\r' => f.write_str("\\r")?,
                        '\t' => f.write_str("\\t")?,
                        '\u{8}' => f.write_str("\\b")?,
                        '\u{c}' => f.write_str("\\f")?,
                        _ => write!(f, "{c}")?,
                    }
                }
                f.write_str("'")
            }
            LitValue::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            LitValue::Relative(r) if r.takes_n => write!(f, "{}:{}", r.name, r.n),
            LitValue::Relative(r) => f.write_str(&r.name),
            LitValue::DateTime(dt) => {
                write!(f, "{}", dt.format("%Y-%m-%dT%H:%M:%S"))?;
                let ms = dt.timestamp_subsec_millis();
                if ms != 0 {
                    write!(f, ".{ms:03}")?;
                }
                let off = dt.offset().local_minus_utc();
                if off == 0 {
                    f.write_str("Z")
                } else {
                    let sign = if off < 0 { '-' } else { '+' };
                    let a = off.abs();
                    write!(f, "{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
                }
            }
        }
    }
}

/// `units × 10^-scale` as decimal text (`-150, 2` → `-1.50`).
pub fn decimal_text(units: i64, scale: u8) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let digits = units.unsigned_abs().to_string();
    let scale = usize::from(scale);
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_statements_parse() {
        for q in [
            "SELECT Id FROM Account",
            "select id, name from account where name = 'O\\'Brien' and industry != null",
            "SELECT Id, Owner.Name FROM Account WHERE SystemModstamp >= 2024-03-10T00:00:00Z AND SystemModstamp < 2024-03-11T00:00:00.000Z ORDER BY SystemModstamp ASC, Id ASC",
            "SELECT Id FROM Account WHERE CreatedDate > 2024-03-10T00:00:00+00:00 OR CreatedDate < 2024-03-10T00:00:00-05:00 OR CreatedDate = 2024-03-10T00:00:00+0000",
            "SELECT COUNT() FROM Case WHERE CreatedDate >= 2024-03-10T00:00:00Z",
            "SELECT DAY_ONLY(convertTimezone(CreatedDate)) d, COUNT(Id) n FROM Case GROUP BY DAY_ONLY(convertTimezone(CreatedDate))",
            "SELECT CALENDAR_YEAR(CreatedDate), CALENDAR_MONTH(CreatedDate), DAY_IN_MONTH(CreatedDate), HOUR_IN_DAY(CreatedDate), MIN(Amount), MAX(Amount) FROM Opportunity GROUP BY CALENDAR_YEAR(CreatedDate), CALENDAR_MONTH(CreatedDate), DAY_IN_MONTH(CreatedDate), HOUR_IN_DAY(CreatedDate)",
            "SELECT Id FROM Opportunity WHERE CloseDate = 2024-03-10 AND Amount > -12.50 AND IsWon = TRUE",
            "SELECT Id FROM Lead WHERE NOT (Status IN ('A', 'B') OR Name LIKE 'x\\_%') AND Rating NOT IN ('Hot')",
            "SELECT Id FROM Account ORDER BY Name DESC NULLS LAST, Id LIMIT 10 OFFSET 20",
            "SELECT FIELDS(ALL) FROM Account LIMIT 200",
            "SELECT Id, fields(standard), FIELDS(Custom) FROM Account",
            "SELECT Id FROM Account WHERE CreatedDate = TODAY OR CreatedDate >= LAST_N_DAYS:7 OR CreatedDate IN (yesterday, N_WEEKS_AGO:2, THIS_FISCAL_YEAR)",
        ] {
            let parsed = parse(q).unwrap_or_else(|e| panic!("{q}: {}", e.message));
            assert_eq!(parse(&parsed.to_string()).unwrap(), parsed, "{q}");
        }
    }

    #[test]
    fn malformed_statements_are_refused_with_a_location() {
        for (q, col) in [
            ("SELECT FROM Account", 8),
            ("SELECT Id Account", 0),
            ("SELECT Id FROM", 15),
            ("SELECT Id, FROM Account", 12),
            (
                "SELECT Id FROM Account WHERE Name = 'a' AND Id = 'b' OR Id = 'c'",
                54,
            ),
            (
                "SELECT Id FROM Account WHERE CreatedDate > 2024-03-10T00:00:00 ",
                44,
            ),
            (
                "SELECT Id FROM Account WHERE CreatedDate > 2024-03-10T00:00:00 00:00",
                44,
            ),
            ("SELECT Id FROM Account WHERE Name = 'open", 37),
            ("SELECT Id FROM Account LIMIT -1", 30),
            ("SELECT Id FROM Account WHERE Name = 'a' garbage", 41),
            ("SELECT Id FROM Account ORDER BY Name NULLS", 43),
            ("SELECT Id FROM Account WHERE Name ~ 'a'", 35),
            ("SELECT FOO(Id) FROM Account", 8),
        ] {
            let e = parse(q).expect_err(q);
            assert_eq!(e.code, "MALFORMED_QUERY", "{q}");
            if col > 0 {
                assert!(
                    e.message
                        .contains(&format!("ERROR at Row:1:Column:{col}\n")),
                    "{q}: {}",
                    e.message
                );
            }
        }
        let e = parse("  ").unwrap_err();
        assert_eq!(e.message, "SOQL statements cannot be empty or null");
        let long = format!(
            "SELECT Id FROM Account WHERE Name = '{}'",
            "x".repeat(MAX_STATEMENT_CHARS)
        );
        assert_eq!(parse(&long).unwrap_err().code, "MALFORMED_QUERY");
    }

    #[test]
    fn literals_keep_their_exact_values() {
        let q = parse("SELECT Id FROM X WHERE A = 1.50 AND B = 2024-03-10T07:15:00.5-05:00 AND C = 'a\\nb\\\\'").unwrap();
        let Some(Cond::And(parts)) = q.filter else {
            panic!()
        };
        let rhs: Vec<&LitValue> = parts
            .iter()
            .map(|p| match p {
                Cond::Compare { rhs, .. } => &rhs.value,
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            *rhs[0],
            LitValue::Number {
                units: 150,
                scale: 2
            }
        );
        let LitValue::DateTime(dt) = rhs[1] else {
            panic!()
        };
        assert_eq!(
            dt.timestamp_millis(),
            "2024-03-10T12:15:00.500Z"
                .parse::<DateTime<chrono::Utc>>()
                .unwrap()
                .timestamp_millis()
        );
        assert_eq!(*rhs[2], LitValue::Str("a\nb\\".into()));
    }

    fn ident() -> impl Strategy<Value = Ident> {
        "[A-Za-z][A-Za-z0-9_]{0,8}"
            .prop_filter("not a keyword", |s| {
                !is_keyword(s) && Func::from_name(s).is_none()
            })
            .prop_map(|name| Ident { name, pos: 0 })
    }

    fn expr() -> impl Strategy<Value = Expr> {
        let field = || prop::collection::vec(ident(), 1..3).prop_map(Expr::Field);
        prop_oneof![
            3 => field(),
            1 => (prop::sample::select(vec![Func::DayOnly, Func::CalendarYear, Func::HourInDay]), field(), any::<bool>())
                .prop_map(|(func, f, tz)| {
                    let arg = if tz {
                        Expr::Call { func: Func::ConvertTimezone, arg: Some(Box::new(f)), pos: Pos(0) }
                    } else {
                        f
                    };
                    Expr::Call { func, arg: Some(Box::new(arg)), pos: Pos(0) }
                }),
        ]
    }

    fn literal() -> impl Strategy<Value = Lit> {
        let value = prop_oneof![
            Just(LitValue::Null),
            any::<bool>().prop_map(LitValue::Bool),
            (any::<i32>(), 0u8..4).prop_map(|(u, scale)| LitValue::Number {
                units: i64::from(u),
                scale
            }),
            "[ -~\\n\\t\u{e9}\u{6771}]{0,12}".prop_map(LitValue::Str),
            (0i64..20_000).prop_map(|d| LitValue::Date(
                NaiveDate::from_num_days_from_ce_opt(730_000 + d as i32).unwrap()
            )),
            (0i64..2_000_000_000_000, -12i32..14, any::<bool>()).prop_map(|(ms, h, whole)| {
                let ms = if whole { ms / 1000 * 1000 } else { ms };
                let off = FixedOffset::east_opt(h * 3600).unwrap();
                LitValue::DateTime(
                    DateTime::from_timestamp_millis(ms)
                        .unwrap()
                        .with_timezone(&off),
                )
            }),
        ];
        value.prop_map(|value| Lit { value, pos: Pos(0) })
    }

    fn cond() -> impl Strategy<Value = Cond> {
        let ops = prop::sample::select(vec![
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Lt,
            CmpOp::Le,
            CmpOp::Gt,
            CmpOp::Ge,
        ]);
        let leaf = prop_oneof![
            (expr(), ops, literal()).prop_map(|(lhs, op, rhs)| Cond::Compare { lhs, op, rhs }),
            (
                expr(),
                any::<bool>(),
                prop::collection::vec(literal(), 1..4)
            )
                .prop_map(|(lhs, negated, values)| Cond::In {
                    lhs,
                    negated,
                    values
                }),
            (expr(), "[a-z%_]{0,6}").prop_map(|(lhs, p)| Cond::Like {
                lhs,
                pattern: Lit {
                    value: LitValue::Str(p),
                    pos: Pos(0)
                }
            }),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(Cond::And),
                prop::collection::vec(inner.clone(), 2..4).prop_map(Cond::Or),
                inner.prop_map(|c| Cond::Not(Box::new(c))),
            ]
        })
    }

    fn query() -> impl Strategy<Value = Query> {
        let item = (expr(), prop::option::of(ident()))
            .prop_map(|(expr, alias)| SelectItem { expr, alias });
        let key = (
            expr(),
            prop::option::of(any::<bool>()),
            prop::option::of(any::<bool>()),
        )
            .prop_map(|(expr, descending, nulls_first)| OrderKey {
                expr,
                descending,
                nulls_first,
            });
        (
            prop::collection::vec(item, 1..4),
            ident(),
            prop::option::of(cond()),
            prop::collection::vec(expr(), 0..2),
            prop::collection::vec(key, 0..3),
            prop::option::of(0u64..5000),
            prop::option::of(0u64..3000),
        )
            .prop_map(
                |(select, from, filter, group_by, order_by, limit, offset)| Query {
                    select,
                    from,
                    filter,
                    group_by,
                    order_by,
                    limit,
                    offset,
                },
            )
    }

    proptest! {
        #[test]
        fn display_round_trips(q in query()) {
            let text = q.to_string();
            let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {}", e.message)))?;
            prop_assert_eq!(parsed, q, "{}", text);
        }
    }
}
