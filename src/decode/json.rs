//! The REST query page reader: one pass over the JSON bytes, values straight into builders.
//!
//! A hand-rolled scanner rather than a JSON tree: a page of 2,000 wide records is decoded
//! without allocating per record or per value. Strings without escapes are handed over as
//! slices of the body; escaped ones are unescaped into one reused buffer.
//!
//! Invariants: the body is UTF-8-checked once up front, so every slice between ASCII
//! delimiters is valid text; running out of input anywhere before the page's closing `}` is
//! [`DecodeError::Truncated`], never a partial success; containers this reader skips
//! (`attributes`, relationship objects, unknown keys) are matched by bracket depth only.

use super::DecodeError;
use super::columns::ColumnBuilder;
use super::values::ValueError;

/// The envelope of a page, its records already in the builders.
#[derive(Debug)]
pub(super) struct Envelope {
    pub total_size: u64,
    pub done: bool,
    pub next_records_url: Option<String>,
    pub records: usize,
}

/// Longest offending text quoted in an error message.
const MAX_QUOTED: usize = 80;

/// Where the reader is: the body, the position, the record being read.
pub(super) struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Unescaped text of the last string that had escapes; reused to avoid allocating.
    scratch: String,
    record: usize,
}

/// A string just read: a slice of the body, or the reader's scratch buffer.
#[derive(Clone, Copy)]
enum Str {
    Body(usize, usize),
    Scratch,
}

impl<'a> Reader<'a> {
    /// A reader of `body`.
    ///
    /// # Errors
    /// Truncated when the body ends inside a UTF-8 sequence; Malformed when it is not UTF-8.
    pub fn new(body: &'a [u8]) -> Result<Self, DecodeError> {
        let text = std::str::from_utf8(body).map_err(|e| match e.error_len() {
            None => DecodeError::Truncated { bytes: body.len() },
            Some(_) => {
                DecodeError::Malformed(format!("the page is not UTF-8 at byte {}", e.valid_up_to()))
            }
        })?;
        Ok(Self {
            text,
            bytes: body,
            pos: 0,
            scratch: String::new(),
            record: 0,
        })
    }

    /// Reads the whole page, appending each record to `columns` (one builder per name).
    ///
    /// # Errors
    /// Truncated, Malformed, or a Value error naming the record and field.
    pub fn read_page(
        &mut self,
        names: &[Box<[u8]>],
        columns: &mut [ColumnBuilder],
    ) -> Result<Envelope, DecodeError> {
        let mut total_size = None;
        let mut done = None;
        let mut next_records_url = None;
        let mut saw_records = false;
        self.expect(b'{')?;
        if self.next_is(b'}')? {
            self.pos += 1;
        } else {
            loop {
                let key = self.key()?;
                match self.str_of(key) {
                    "totalSize" => {
                        let text = self.number()?;
                        let n = text.parse().map_err(|_| {
                            self.malformed(&format!("`totalSize` is not a count: `{text}`"))
                        })?;
                        total_size = Some(n);
                    }
                    "done" => done = Some(self.boolean()?),
                    "nextRecordsUrl" => {
                        next_records_url = match self.peek()? {
                            b'n' => self.literal(b"null").map(|_| None)?,
                            _ => {
                                let s = self.string()?;
                                Some(self.str_of(s).to_string())
                            }
                        }
                    }
                    "records" => {
                        self.records(names, columns)?;
                        saw_records = true;
                    }
                    _ => {
                        self.skip_value()?;
                    }
                }
                if self.end_of_members(b'}')? {
                    break;
                }
            }
        }
        self.skip_ws();
        if self.pos != self.bytes.len() {
            return Err(self.malformed("unexpected text after the page"));
        }
        let (Some(done), true) = (done, saw_records) else {
            return Err(DecodeError::Malformed(
                "the page has no `done` or no `records`: not a query result".into(),
            ));
        };
        Ok(Envelope {
            total_size: total_size.unwrap_or(0),
            done,
            next_records_url,
            records: self.record,
        })
    }

    fn records(
        &mut self,
        names: &[Box<[u8]>],
        columns: &mut [ColumnBuilder],
    ) -> Result<(), DecodeError> {
        self.expect(b'[')?;
        if self.next_is(b']')? {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.expect(b'{')?;
            self.object(names, columns, None)?;
            self.record += 1;
            if self.end_of_members(b']')? {
                return Ok(());
            }
        }
    }

    /// Reads the members of an object whose `{` was consumed into `columns`; keys not in
    /// `names` are skipped, and columns without a key get a null.
    fn object(
        &mut self,
        names: &[Box<[u8]>],
        columns: &mut [ColumnBuilder],
        parent: Option<&[u8]>,
    ) -> Result<(), DecodeError> {
        let row = columns.first().map_or(0, ColumnBuilder::len);
        if self.next_is(b'}')? {
            self.pos += 1;
        } else {
            // Salesforce emits fields in select order: try the one after the last match first.
            let mut expected = 0;
            loop {
                let found = match names.get(expected) {
                    Some(name) if self.at_key(name)? => Some(expected),
                    _ => {
                        let key = self.key()?;
                        find_column(names, self.bytes_of(key), expected)
                    }
                };
                match found {
                    Some(c) => {
                        if columns[c].len() > row {
                            return Err(self.malformed(&format!(
                                "record {} has the key `{}` twice",
                                self.record,
                                String::from_utf8_lossy(&names[c])
                            )));
                        }
                        self.value(&mut columns[c], &names[c], parent)?;
                        expected = c + 1;
                    }
                    None => self.skip_value()?,
                }
                if self.end_of_members(b'}')? {
                    break;
                }
            }
        }
        for column in columns.iter_mut() {
            if column.len() == row {
                column.push_null();
            }
        }
        Ok(())
    }

    /// Reads one value into `column`.
    fn value(
        &mut self,
        column: &mut ColumnBuilder,
        name: &[u8],
        parent: Option<&[u8]>,
    ) -> Result<(), DecodeError> {
        let start = self.pos;
        let result = match self.peek()? {
            b'"' => {
                let s = self.string()?;
                let text = match s {
                    Str::Body(a, b) => &self.text[a..b],
                    Str::Scratch => self.scratch.as_str(),
                };
                column.push_text(text)
            }
            b'n' => {
                self.literal(b"null")?;
                column.push_null();
                Ok(())
            }
            b't' | b'f' => {
                let v = self.boolean()?;
                column.push_bool(v)
            }
            b'{' if column.as_struct_mut().is_some() => {
                self.pos += 1;
                let s = column.as_struct_mut().expect("checked above");
                let (names, children) = s.parts_mut();
                self.object(names, children, Some(name))?;
                s.end_row();
                Ok(())
            }
            b'{' | b'[' if column.is_text() => {
                self.skip_value()?;
                column.push_text(&self.text[start..self.pos])
            }
            b'{' | b'[' => {
                self.skip_value()?;
                Err(ValueError::WrongKind {
                    found: if self.bytes[start] == b'{' {
                        "object"
                    } else {
                        "array"
                    },
                    expected: "a scalar",
                })
            }
            b'-' | b'0'..=b'9' => {
                let text = self.number()?;
                column.push_text(text)
            }
            _ => return Err(self.malformed("expected a value")),
        };
        result.map_err(|reason| DecodeError::Value {
            record: self.record,
            field: field_path(parent, name),
            text: quote(&self.text[start..self.pos]),
            reason,
        })
    }

    // ---- tokens -------------------------------------------------------------------------

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next non-blank byte, not consumed.
    fn peek(&mut self) -> Result<u8, DecodeError> {
        self.skip_ws();
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.truncated())
    }

    fn next_is(&mut self, c: u8) -> Result<bool, DecodeError> {
        Ok(self.peek()? == c)
    }

    fn expect(&mut self, c: u8) -> Result<(), DecodeError> {
        if self.peek()? == c {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.malformed(&format!("expected `{}`", char::from(c))))
        }
    }

    /// After a member: true at the closing `close`, false after a `,`.
    fn end_of_members(&mut self, close: u8) -> Result<bool, DecodeError> {
        match self.peek()? {
            b',' => {
                self.pos += 1;
                Ok(false)
            }
            c if c == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(self.malformed(&format!("expected `,` or `{}`", char::from(close)))),
        }
    }

    /// An object key and its `:`.
    fn key(&mut self) -> Result<Str, DecodeError> {
        if self.peek()? != b'"' {
            return Err(self.malformed("expected a key"));
        }
        let key = self.string()?;
        self.expect(b':')?;
        Ok(key)
    }

    /// Consumes the key `"name":` when it is next, without scanning the key for escapes.
    fn at_key(&mut self, name: &[u8]) -> Result<bool, DecodeError> {
        let start = self.pos + 1;
        let end = start + name.len();
        let matches = self.peek()? == b'"'
            && self.bytes.get(start..end) == Some(name)
            && self.bytes.get(end) == Some(&b'"');
        if matches {
            self.pos = end + 1;
            self.expect(b':')?;
        }
        Ok(matches)
    }

    fn str_of(&self, s: Str) -> &str {
        match s {
            Str::Body(a, b) => &self.text[a..b],
            Str::Scratch => &self.scratch,
        }
    }

    fn bytes_of(&self, s: Str) -> &[u8] {
        self.str_of(s).as_bytes()
    }

    /// A string at `pos` (which holds `"`).
    fn string(&mut self) -> Result<Str, DecodeError> {
        let start = self.pos + 1;
        let end = find_quote_or_backslash(self.bytes, start).ok_or_else(|| self.truncated())?;
        if self.bytes[end] == b'"' {
            self.pos = end + 1;
            return Ok(Str::Body(start, end));
        }
        self.scratch.clear();
        self.scratch.push_str(&self.text[start..end]);
        self.pos = end;
        self.unescape_rest()?;
        Ok(Str::Scratch)
    }

    /// Continues a string at a `\`, appending to `scratch` up to the closing quote.
    fn unescape_rest(&mut self) -> Result<(), DecodeError> {
        loop {
            let i = self.pos;
            if self.bytes[i] == b'"' {
                self.pos = i + 1;
                return Ok(());
            }
            let escape = *self.bytes.get(i + 1).ok_or_else(|| self.truncated())?;
            self.pos = i + 2;
            match escape {
                b'"' => self.scratch.push('"'),
                b'\\' => self.scratch.push('\\'),
                b'/' => self.scratch.push('/'),
                b'b' => self.scratch.push('\u{8}'),
                b'f' => self.scratch.push('\u{c}'),
                b'n' => self.scratch.push('\n'),
                b'r' => self.scratch.push('\r'),
                b't' => self.scratch.push('\t'),
                b'u' => {
                    let c = self.unicode_escape()?;
                    self.scratch.push(c);
                }
                _ => {
                    self.pos = i;
                    return Err(self.malformed("invalid escape in a string"));
                }
            }
            let end =
                find_quote_or_backslash(self.bytes, self.pos).ok_or_else(|| self.truncated())?;
            self.scratch.push_str(&self.text[self.pos..end]);
            self.pos = end;
        }
    }

    /// The character of a `\uXXXX` (its `\u` consumed), joining a UTF-16 surrogate pair.
    /// A lone surrogate becomes U+FFFD: one odd character should not fail a whole backfill.
    fn unicode_escape(&mut self) -> Result<char, DecodeError> {
        let high = self.hex4()?;
        if !(0xD800..0xDC00).contains(&high) {
            return Ok(char::from_u32(high).unwrap_or(char::REPLACEMENT_CHARACTER));
        }
        if self.bytes.get(self.pos) == Some(&b'\\') && self.bytes.get(self.pos + 1) == Some(&b'u') {
            let save = self.pos;
            self.pos += 2;
            let low = self.hex4()?;
            if (0xDC00..0xE000).contains(&low) {
                let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            self.pos = save;
        } else if self.pos + 2 > self.bytes.len() {
            return Err(self.truncated());
        }
        Ok(char::REPLACEMENT_CHARACTER)
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.truncated())?;
        let mut v = 0;
        for &d in digits {
            let h = char::from(d)
                .to_digit(16)
                .ok_or_else(|| self.malformed("invalid \\u escape"))?;
            v = v * 16 + h;
        }
        self.pos += 4;
        Ok(v)
    }

    /// A number's text at `pos`.
    fn number(&mut self) -> Result<&'a str, DecodeError> {
        self.skip_ws();
        let start = self.pos;
        let len = self.bytes[start..]
            .iter()
            .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .ok_or_else(|| self.truncated())?;
        if len == 0 {
            return Err(self.malformed("expected a number"));
        }
        self.pos = start + len;
        Ok(&self.text[start..start + len])
    }

    fn boolean(&mut self) -> Result<bool, DecodeError> {
        if self.peek()? == b't' {
            self.literal(b"true")?;
            Ok(true)
        } else {
            self.literal(b"false")?;
            Ok(false)
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), DecodeError> {
        self.skip_ws();
        let rest = &self.bytes[self.pos..];
        if rest.starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else if word.starts_with(rest) {
            Err(self.truncated())
        } else {
            Err(self.malformed(&format!("expected `{}`", String::from_utf8_lossy(word))))
        }
    }

    /// Skips one value of any kind.
    fn skip_value(&mut self) -> Result<(), DecodeError> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'n' => self.literal(b"null"),
            b't' | b'f' => self.boolean().map(|_| ()),
            b'{' | b'[' => self.skip_container(),
            _ => self.number().map(|_| ()),
        }
    }

    fn skip_string(&mut self) -> Result<(), DecodeError> {
        let mut i = self.pos + 1;
        loop {
            let at = find_quote_or_backslash(self.bytes, i).ok_or_else(|| self.truncated())?;
            if self.bytes[at] == b'"' {
                self.pos = at + 1;
                return Ok(());
            }
            i = at + 2;
        }
    }

    fn skip_container(&mut self) -> Result<(), DecodeError> {
        let mut depth = 0usize;
        loop {
            let c = *self.bytes.get(self.pos).ok_or_else(|| self.truncated())?;
            match c {
                b'"' => {
                    self.skip_string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
    }

    #[cold]
    #[inline(never)]
    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            bytes: self.bytes.len(),
        }
    }

    #[cold]
    #[inline(never)]
    fn malformed(&self, what: &str) -> DecodeError {
        let near = self.text.get(self.pos..).map_or("", |rest| {
            let end = rest.char_indices().nth(24).map_or(rest.len(), |(i, _)| i);
            &rest[..end]
        });
        DecodeError::Malformed(format!(
            "{what} at byte {} (record {}), near `{near}`",
            self.pos, self.record
        ))
    }
}

/// The column a key names: the expected one, else an exact match, else ASCII
/// case-insensitive (describe and query spellings can differ in case).
fn find_column(names: &[Box<[u8]>], key: &[u8], expected: usize) -> Option<usize> {
    if names.get(expected).is_some_and(|n| **n == *key) {
        return Some(expected);
    }
    names
        .iter()
        .position(|n| **n == *key)
        .or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(key)))
}

/// `Parent.child` or `field`, for error messages.
fn field_path(parent: Option<&[u8]>, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    match parent {
        Some(p) => format!("{}.{name}", String::from_utf8_lossy(p)),
        None => name.into_owned(),
    }
}

/// Offending text for an error message, cut at [`MAX_QUOTED`] characters.
fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The index of the first `"` or `\` at or after `from`, eight bytes per step.
fn find_quote_or_backslash(b: &[u8], from: usize) -> Option<usize> {
    let rest = b.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut offset = from;
    for chunk in &mut chunks {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let q = w ^ (LO * u64::from(b'"'));
        let s = w ^ (LO * u64::from(b'\\'));
        // A zero byte in `q` or `s` marks a match; the lowest flagged byte is exact.
        let hits = ((q.wrapping_sub(LO) & !q) | (s.wrapping_sub(LO) & !s)) & HI;
        if hits != 0 {
            return Some(offset + (hits.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|p| offset + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_search_finds_the_first_match_at_any_alignment() {
        for len in 0..20 {
            for at in 0..len {
                for c in [b'"', b'\\'] {
                    let mut v = vec![b'a'; len];
                    v[at] = c;
                    if at + 1 < len {
                        v[at + 1] = b'"';
                    }
                    for from in 0..=at {
                        assert_eq!(find_quote_or_backslash(&v, from), Some(at));
                    }
                }
            }
            assert_eq!(find_quote_or_backslash(&vec![0xC3; len], 0), None);
        }
    }
}
