//! Masking a JSON document as it streams: string values pass through a function (the
//! detectors) and the values at chosen JSON paths are replaced, chunk by chunk, without
//! building the document in memory.
//!
//! ```text
//!  chunks ──▶ tokenizer (resumable: a string or number may span chunks)
//!               │ structure, whitespace ─────────────────────────────▶ copied
//!               │ a value at a masked path ──▶ "****" (null kept; an object or array skipped whole)
//!               │ a string value ──f──▶ unchanged: its original bytes; changed: re-encoded
//!               ▼ keys: copied, and remembered as the place of what follows
//! ```
//!
//! What passes unchanged (structure, whitespace, keys, strings `f` leaves alone) is not copied
//! byte by byte: the rewriter notes where the current run of unchanged input began and copies
//! the run in one go when something replaced ends it, or at the end of the chunk. A string
//! whole in its chunk is read in place (found eight bytes at a time, handed to `f` as a `&str`
//! borrowed from the input when it has no escapes); only a token cut by a chunk boundary is
//! copied aside until it ends.
//!
//! Strict where leniency could leak: anything that is not JSON (a bare word, a second
//! document, an unclosed string at the end) is an error, and the relay ends the response
//! rather than pass on what it could not read. The largest single token (a string or number)
//! is bounded by [`MAX_TOKEN`]; nothing else is kept.

use std::borrow::Cow;

use super::MASKED;
use super::jsonpath::{JsonPath, Step};

/// The longest string or number held while it is read.
pub const MAX_TOKEN: usize = 16 * 1024 * 1024;

/// Longest key buffer kept for reuse once its object closes: an odd huge key is freed, not
/// held for the rest of the body.
const SPARE_KEY: usize = 256;

/// What a container expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// `{` just opened: a key or `}`.
    FirstKey,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After `:` or `[`/`,` in an array: a value (or `]` right after `[`).
    Value,
    /// After a value: `,` or the closing bracket.
    CommaOrEnd,
}

#[derive(Debug)]
struct Frame {
    object: bool,
    expect: Expect,
    /// The step of the member or element being read. An object's key buffer is reused from
    /// key to key; it is empty until the first key is read, and nothing asks for the place
    /// before then (a value in an object always follows its key).
    step: Step,
    /// Elements seen so far (arrays).
    index: usize,
    /// Nothing read into it yet (`{}` and `[]` close at once).
    empty: bool,
}

impl AsRef<Step> for Frame {
    fn as_ref(&self) -> &Step {
        &self.step
    }
}

/// What the tokenizer is in the middle of when a chunk ends.
#[derive(Debug)]
enum Token {
    None,
    /// A string; `key` when it is an object key, `escaped` when the chunk ended on a
    /// backslash.
    Str {
        key: bool,
        escaped: bool,
    },
    /// A number, `true`, `false` or `null`.
    Scalar,
    /// Skipping a masked object or array whole.
    Skip {
        depth: usize,
        in_string: bool,
        escaped: bool,
    },
}

impl<F: FnMut(&str) -> Option<String>> std::fmt::Debug for JsonRewriter<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonRewriter")
            .field("paths", &self.paths)
            .field("depth", &self.stack.len())
            .finish_non_exhaustive()
    }
}

/// The streaming rewriter (see the module documentation).
pub struct JsonRewriter<F: FnMut(&str) -> Option<String>> {
    paths: Vec<JsonPath>,
    strings: F,
    stack: Vec<Frame>,
    /// The root value was read.
    done: bool,
    /// The token an earlier chunk left open.
    token: Token,
    /// The bytes of that token so far.
    raw: Vec<u8>,
    /// Key buffers of closed objects, for the next ones: no allocation per object or key.
    spare: Vec<String>,
}

impl<F: FnMut(&str) -> Option<String>> JsonRewriter<F> {
    /// A rewriter masking `paths` and passing every string value through `strings` (which
    /// returns the replacement when it changes something).
    pub fn new(paths: Vec<JsonPath>, strings: F) -> Self {
        Self {
            paths,
            strings,
            stack: Vec::new(),
            done: false,
            token: Token::None,
            raw: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Rewrites the next chunk into `out`; an error when the input is not JSON.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut at = self.resume(input, out)?;
        // `input[copied..at]` passes unchanged and is not written yet.
        let mut copied = at;
        let text = utf8_prefix(input);
        while at < input.len() {
            let byte = input[at];
            if byte.is_ascii_whitespace() {
                at += 1;
                continue;
            }
            let expect = self.stack.last().map(|f| f.expect);
            match (expect, byte) {
                // Keys.
                (Some(Expect::FirstKey | Expect::Key), b'"') => {
                    if let Some(frame) = self.stack.last_mut() {
                        frame.empty = false;
                    }
                    match scan_string(input, at + 1, false)? {
                        Scanned::Closed { end, escapes } => {
                            token_fits(end + 1 - at, "string")?;
                            let key = string_at(input, text, at, end, escapes)?;
                            set_key(&mut self.stack, &key)?;
                            at = end + 1;
                        }
                        Scanned::Open { escaped } => {
                            out.extend_from_slice(&input[copied..at]);
                            self.hold(&input[at..], Token::Str { key: true, escaped })?;
                            at = input.len();
                            copied = at;
                        }
                    }
                }
                (Some(Expect::FirstKey), b'}') => {
                    self.close(byte)?;
                    at += 1;
                }
                (Some(Expect::Colon), b':') => {
                    self.set_expect(Expect::Value);
                    at += 1;
                }
                (Some(Expect::CommaOrEnd), b',') => {
                    let frame = self.stack.last_mut().ok_or("unbalanced JSON")?;
                    if frame.object {
                        frame.expect = Expect::Key;
                    } else {
                        frame.index += 1;
                        frame.step = Step::Index(frame.index);
                        frame.expect = Expect::Value;
                    }
                    at += 1;
                }
                (Some(Expect::CommaOrEnd), b'}' | b']') => {
                    self.close(byte)?;
                    at += 1;
                }
                // `]` right after `[`.
                (Some(Expect::Value), b']')
                    if self.stack.last().is_some_and(|f| !f.object && f.empty) =>
                {
                    self.close(byte)?;
                    at += 1;
                }
                (Some(Expect::Value), _) | (None, _) if !self.done => {
                    at = self.value(input, text, at, &mut copied, out)?;
                }
                _ => {
                    return Err(format!(
                        "unexpected {:?} in the JSON body",
                        char::from(byte)
                    ));
                }
            }
        }
        out.extend_from_slice(&input[copied..]);
        Ok(())
    }

    /// Ends the document: an error when it is incomplete.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        if matches!(self.token, Token::Scalar) {
            self.token = Token::None;
            self.held_scalar(out)?;
        }
        if !matches!(self.token, Token::None) || !self.stack.is_empty() || !self.done {
            return Err("the JSON body ended before the document did".into());
        }
        Ok(())
    }

    /// Goes on with the token an earlier chunk left open; returns where it ends in `input`
    /// (all of `input` when it is still open).
    fn resume(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, String> {
        match self.token {
            Token::None => Ok(0),
            Token::Str { key, escaped } => match scan_string(input, 0, escaped)? {
                Scanned::Closed { end, .. } => {
                    self.raw.extend_from_slice(&input[..=end]);
                    token_fits(self.raw.len(), "string")?;
                    self.token = Token::None;
                    self.held_string(key, out)?;
                    Ok(end + 1)
                }
                Scanned::Open { escaped } => {
                    self.raw.extend_from_slice(input);
                    token_fits(self.raw.len(), "string")?;
                    self.token = Token::Str { key, escaped };
                    Ok(input.len())
                }
            },
            Token::Scalar => {
                let end = scalar_end(input, 0);
                self.raw.extend_from_slice(&input[..end]);
                token_fits(self.raw.len(), "number")?;
                if end < input.len() {
                    self.token = Token::None;
                    self.held_scalar(out)?;
                }
                Ok(end)
            }
            Token::Skip { .. } => Ok(self.skip(input, 0)),
        }
    }

    /// Keeps the start of a token the chunk ends in.
    fn hold(&mut self, start: &[u8], token: Token) -> Result<(), String> {
        let what = if matches!(token, Token::Scalar) {
            "number"
        } else {
            "string"
        };
        token_fits(start.len(), what)?;
        self.raw.clear();
        self.raw.extend_from_slice(start);
        self.token = token;
        Ok(())
    }

    /// Whether a path reaches the value about to start (or just read).
    fn masked_here(&self) -> bool {
        if self.paths.is_empty() {
            return false;
        }
        let last = self.stack.last().map(|f| &f.step);
        // Most values sit at a key no path ends in: decided without walking the place.
        if !self.paths.iter().any(|p| p.could_end_at(last)) {
            return false;
        }
        self.paths.iter().any(|p| p.matches(&self.stack))
    }

    /// The value starting at `input[at]` (`text`: the chunk's checked UTF-8 prefix); returns
    /// where reading goes on. Writes the unchanged run before it (`input[copied..at]`) when it
    /// replaces the value.
    fn value(
        &mut self,
        input: &[u8],
        text: &str,
        at: usize,
        copied: &mut usize,
        out: &mut Vec<u8>,
    ) -> Result<usize, String> {
        let masked = self.masked_here();
        if let Some(parent) = self.stack.last_mut() {
            parent.empty = false;
        }
        match input[at] {
            b'{' | b'[' if masked => {
                out.extend_from_slice(&input[*copied..at]);
                write_string(out, MASKED);
                self.token = Token::Skip {
                    depth: 0,
                    in_string: false,
                    escaped: false,
                };
                *copied = self.skip(input, at);
                Ok(*copied)
            }
            b'{' => {
                let key = self.spare.pop().unwrap_or_default();
                self.stack.push(Frame {
                    object: true,
                    expect: Expect::FirstKey,
                    step: Step::Key(key),
                    index: 0,
                    empty: true,
                });
                Ok(at + 1)
            }
            b'[' => {
                self.stack.push(Frame {
                    object: false,
                    expect: Expect::Value,
                    step: Step::Index(0),
                    index: 0,
                    empty: true,
                });
                Ok(at + 1)
            }
            b'"' => match scan_string(input, at + 1, false)? {
                Scanned::Closed { end, escapes } => {
                    token_fits(end + 1 - at, "string")?;
                    let value = string_at(input, text, at, end, escapes)?;
                    if let Some(replaced) = self.replacement(&value, masked) {
                        out.extend_from_slice(&input[*copied..at]);
                        write_string(out, &replaced);
                        *copied = end + 1;
                    }
                    self.value_done();
                    Ok(end + 1)
                }
                Scanned::Open { escaped } => {
                    out.extend_from_slice(&input[*copied..at]);
                    self.hold(
                        &input[at..],
                        Token::Str {
                            key: false,
                            escaped,
                        },
                    )?;
                    *copied = input.len();
                    Ok(input.len())
                }
            },
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                let end = scalar_end(input, at);
                if end == input.len() {
                    out.extend_from_slice(&input[*copied..at]);
                    self.hold(&input[at..], Token::Scalar)?;
                    *copied = end;
                    return Ok(end);
                }
                token_fits(end - at, "number")?;
                if scalar_masked(&input[at..end], masked)? {
                    out.extend_from_slice(&input[*copied..at]);
                    write_string(out, MASKED);
                    *copied = end;
                }
                self.value_done();
                Ok(end)
            }
            other => Err(format!(
                "unexpected {:?} in the JSON body",
                char::from(other)
            )),
        }
    }

    /// What a string value becomes when it changes: `****` at a masked path, else what
    /// `strings` makes of it.
    fn replacement(&mut self, text: &str, masked: bool) -> Option<Cow<'static, str>> {
        if masked {
            return Some(Cow::Borrowed(MASKED));
        }
        (self.strings)(text).map(Cow::Owned)
    }

    /// The held string (`self.raw`, quotes included) has ended: a key is remembered, a value
    /// written, changed or not.
    fn held_string(&mut self, key: bool, out: &mut Vec<u8>) -> Result<(), String> {
        let masked = !key && self.masked_here();
        let raw = std::mem::take(&mut self.raw);
        let result = decode_string(&raw, memchr::memchr(b'\\', &raw).is_some()).and_then(|text| {
            if key {
                out.extend_from_slice(&raw);
                return set_key(&mut self.stack, &text);
            }
            match self.replacement(&text, masked) {
                Some(replaced) => write_string(out, &replaced),
                None => out.extend_from_slice(&raw),
            }
            self.value_done();
            Ok(())
        });
        self.raw = raw;
        result
    }

    /// The held scalar (`self.raw`) has ended.
    fn held_scalar(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        if scalar_masked(&self.raw, self.masked_here())? {
            write_string(out, MASKED);
        } else {
            out.extend_from_slice(&self.raw);
        }
        self.value_done();
        Ok(())
    }

    /// Reads a masked object or array in `input[from..]` without writing it (its `****` is
    /// written); returns where it ended, or the end of `input` when it goes on.
    fn skip(&mut self, input: &[u8], from: usize) -> usize {
        let Token::Skip {
            mut depth,
            mut in_string,
            mut escaped,
        } = self.token
        else {
            return from;
        };
        let mut at = from;
        while at < input.len() {
            if in_string && !escaped {
                // The rest of a string, at memchr speed.
                match memchr::memchr2(b'"', b'\\', &input[at..]) {
                    Some(offset) => at += offset,
                    None => {
                        at = input.len();
                        break;
                    }
                }
            }
            let byte = input[at];
            at += 1;
            if in_string {
                if escaped {
                    escaped = false;
                } else if byte == b'\\' {
                    escaped = true;
                } else if byte == b'"' {
                    in_string = false;
                }
                continue;
            }
            match byte {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.token = Token::None;
                        self.value_done();
                        return at;
                    }
                }
                _ => {}
            }
        }
        self.token = Token::Skip {
            depth,
            in_string,
            escaped,
        };
        at
    }

    /// Closes the innermost object or array with `byte` (`}` or `]`).
    fn close(&mut self, byte: u8) -> Result<(), String> {
        let frame = self.stack.pop().ok_or("unbalanced JSON")?;
        if frame.object != (byte == b'}') {
            return Err("mismatched brackets in the JSON body".into());
        }
        if let Step::Key(key) = frame.step
            && key.capacity() <= SPARE_KEY
        {
            self.spare.push(key);
        }
        self.value_done();
        Ok(())
    }

    /// A value ended: its container expects a comma or its end; the root is done.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(frame) => frame.expect = Expect::CommaOrEnd,
            None => self.done = true,
        }
    }

    fn set_expect(&mut self, expect: Expect) {
        if let Some(frame) = self.stack.last_mut() {
            frame.expect = expect;
        }
    }
}

/// Records a key as the place of the innermost object's next value.
fn set_key(stack: &mut [Frame], text: &str) -> Result<(), String> {
    let frame = stack.last_mut().ok_or("unbalanced JSON")?;
    match &mut frame.step {
        Step::Key(key) => {
            key.clear();
            key.push_str(text);
        }
        step @ Step::Index(_) => *step = Step::Key(text.to_owned()),
    }
    frame.expect = Expect::Colon;
    Ok(())
}

/// An error when a token of `len` bytes is longer than [`MAX_TOKEN`].
fn token_fits(len: usize, what: &str) -> Result<(), String> {
    if len > MAX_TOKEN {
        return Err(format!(
            "a {what} in the body is longer than the broker reads"
        ));
    }
    Ok(())
}

/// Where a string's content ends in a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scanned {
    /// At the closing quote `end`; `escapes` when a backslash was seen.
    Closed { end: usize, escapes: bool },
    /// Not in this chunk; `escaped` when the chunk ends on a backslash.
    Open { escaped: bool },
}

/// Reads a string's content from `input[from]` (`escaped`: the byte there is escaped) to its
/// closing quote. An error on a control character, which JSON does not allow in a string
/// (an escaped one is left to [`decode_string`], which refuses it too).
fn scan_string(input: &[u8], from: usize, escaped: bool) -> Result<Scanned, String> {
    let mut at = from;
    if escaped {
        if at >= input.len() {
            return Ok(Scanned::Open { escaped: true });
        }
        at += 1;
    }
    let mut escapes = escaped;
    loop {
        at = next_special(input, at);
        match input.get(at) {
            None => return Ok(Scanned::Open { escaped: false }),
            Some(b'"') => return Ok(Scanned::Closed { end: at, escapes }),
            Some(b'\\') => {
                escapes = true;
                if at + 1 >= input.len() {
                    return Ok(Scanned::Open { escaped: true });
                }
                at += 2;
            }
            Some(_) => return Err(MALFORMED.to_owned()),
        }
    }
}

const MALFORMED: &str = "a string in the JSON body is malformed";

/// Offset of the first byte at or after `from` that a JSON string cannot hold as it is: a
/// quote, a backslash or a control character (`bytes.len()` when there is none). Eight bytes
/// at a time: in each word, the zero-byte test flags quotes, backslashes and bytes below
/// 0x20; a flag above the first true one may be false (a borrow), the lowest never is.
fn next_special(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = ONES * 0x80;
    let rest = bytes.get(from..).unwrap_or_default();
    let mut chunks = rest.chunks_exact(8);
    let mut at = from;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let flags = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word);
        let flags = flags & HIGHS;
        if flags != 0 {
            return at + (flags.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map_or(bytes.len(), |offset| at + offset)
}

/// End of the number or literal starting at `input[from]`: the first byte that cannot be part
/// of one (checked by [`scalar_masked`]).
fn scalar_end(input: &[u8], from: usize) -> usize {
    input[from..]
        .iter()
        .position(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'+' | b'-' | b'.'))
        .map_or(input.len(), |len| from + len)
}

/// Whether a scalar is replaced by `****`: at a masked path, unless it is `null`. An error
/// when it is not JSON.
fn scalar_masked(raw: &[u8], masked: bool) -> Result<bool, String> {
    let null = raw == b"null";
    if !(null || raw == b"true" || raw == b"false" || is_number(raw)) {
        return Err("a value in the JSON body is not JSON".into());
    }
    Ok(masked && !null)
}

/// The longest prefix of a chunk that is UTF-8 (all of it unless it ends inside a character
/// or holds a byte that is not UTF-8), checked once so that the strings in it are sliced from
/// it rather than checked one by one (most are a few bytes long, where a check per string
/// costs more than the bytes).
fn utf8_prefix(input: &[u8]) -> &str {
    match std::str::from_utf8(input) {
        Ok(text) => text,
        Err(error) => std::str::from_utf8(&input[..error.valid_up_to()]).unwrap_or_default(),
    }
}

/// The string token `input[start..=end]` (quotes included) as text: without escapes, sliced
/// from `text` (the chunk's UTF-8 prefix) when it lies in it; otherwise as [`decode_string`].
fn string_at<'a>(
    input: &'a [u8],
    text: &'a str,
    start: usize,
    end: usize,
    escapes: bool,
) -> Result<Cow<'a, str>, String> {
    if !escapes && let Some(inner) = text.get(start + 1..end) {
        return Ok(Cow::Borrowed(inner));
    }
    decode_string(&input[start..=end], escapes)
}

/// A complete JSON string token (quotes included) as text; escapes decoded only when there
/// are any. Control characters were refused by [`scan_string`].
fn decode_string(raw: &[u8], escapes: bool) -> Result<Cow<'_, str>, String> {
    if escapes {
        return serde_json::from_slice::<String>(raw)
            .map(Cow::Owned)
            .map_err(|_| MALFORMED.to_owned());
    }
    let inner = raw
        .get(1..raw.len().saturating_sub(1))
        .filter(|_| raw.len() >= 2)
        .ok_or(MALFORMED)?;
    std::str::from_utf8(inner)
        .map(Cow::Borrowed)
        .map_err(|_| MALFORMED.to_owned())
}

/// Whether `raw` is a JSON number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_number(raw: &[u8]) -> bool {
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while raw.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if raw.get(i) == Some(&b'-') {
        i += 1;
    }
    match raw.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if raw.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(raw.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(raw.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == raw.len()
}

/// `text` as a JSON string: quotes, backslashes and control characters escaped as
/// `serde_json` does, everything else copied in runs.
fn write_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut copied = 0;
    loop {
        let at = next_special(bytes, copied);
        out.extend_from_slice(&bytes[copied..at]);
        let Some(&byte) = bytes.get(at) else {
            break;
        };
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
        copied = at + 1;
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The tree way: parse, apply the paths, scan every string value, as the relay did.
    fn by_tree(doc: &str, paths: &[JsonPath]) -> Value {
        let mut value: Value = serde_json::from_str(doc).expect("valid");
        for path in paths {
            path.apply(&mut value, &mut |_| MASKED.to_owned());
        }
        fn scan(v: &mut Value) {
            match v {
                Value::String(s) if s.contains('@') => *s = "[email]".to_owned(),
                Value::Array(items) => items.iter_mut().for_each(scan),
                Value::Object(map) => map.values_mut().for_each(scan),
                _ => {}
            }
        }
        scan(&mut value);
        value
    }

    fn streamed(doc: &str, paths: &[JsonPath], chunk: usize) -> Result<Vec<u8>, String> {
        let mut rewriter = JsonRewriter::new(paths.to_vec(), |s: &str| {
            s.contains('@').then(|| "[email]".to_owned())
        });
        let mut out = Vec::new();
        for piece in doc.as_bytes().chunks(chunk.max(1)) {
            rewriter.push(piece, &mut out)?;
        }
        rewriter.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn streaming_masks_as_the_tree_does_however_the_body_is_cut() {
        let paths: Vec<JsonPath> = [
            "$.customers[*].card",
            "$..ssn",
            "$.meta.secret",
            "$.list[1]",
            "$.nums[*]",
        ]
        .iter()
        .map(|p| JsonPath::parse(p).expect("path"))
        .collect();
        let docs = [
            json!({"customers": [
                {"id": 1, "name": "Ada \"A\" L\u{00f6}velace", "email": "ada@example.com", "card": "4111 1111 1111 1111", "ssn": "078-05-1120"},
                {"id": 2, "name": "Alan", "email": "alan@example.com", "card": {"nested": "x@y.z"}, "ssn": null}
            ], "next": null, "meta": {"secret": [1, 2, {"a": "b"}], "keep": "k@k.k", "deep": {"x": {"ssn": 5}}},
            "list": ["a", "b@c.d", "c"], "nums": [1.5e3, -2, true, false, null], "empty": [], "obj": {}, "s": "\\\n\t"})
            .to_string(),
            json!([[], {}, [[]], "@", 0]).to_string(),
            "[0, -0.5e+10, 1E3, 12.25, -7]".to_owned(),
            json!("a@b.c").to_string(),
            json!(42).to_string(),
            "  { \"a\" : [ 1 , { \"ssn\" : \"x\" } ] , \"b\":\"\\\"@\" }  ".to_owned(),
        ];
        for doc in &docs {
            let want = by_tree(doc, &paths);
            for chunk in [1, 2, 3, 5, 7, 64, 4096] {
                let out = streamed(doc, &paths, chunk).unwrap_or_else(|e| panic!("{doc}: {e}"));
                let got: Value = serde_json::from_slice(&out)
                    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
                assert_eq!(got, want, "{doc} in chunks of {chunk}");
            }
        }
        // Unchanged strings keep their bytes (escapes as the service wrote them).
        let out = streamed(r#"{"a":"caf\u00e9"}"#, &[], 3).expect("ok");
        assert_eq!(out, br#"{"a":"caf\u00e9"}"#);
    }

    #[test]
    fn what_is_not_json_is_an_error_not_passed_on() {
        for bad in [
            r#"{"a":1}x"#,
            r#"{"a":}"#,
            "[1,]",
            r#"{"a" 1}"#,
            r#"{"a":"open"#,
            r#"{"a":tru}"#,
            r#"{"a":secret@x.com}"#,
            "{} {}",
            r#"{"a":1]"#,
            r#"{"a":1,}"#,
            "[",
            "",
            r#"{"a":01x}"#,
            "[01]",
            "[1.]",
            "[.5]",
            "[1e]",
            "[-]",
            "[+1]",
            "[\"tab\there\"]",
        ] {
            for chunk in [1, 4, 100] {
                assert!(
                    streamed(bad, &[], chunk).is_err(),
                    "{bad:?} in chunks of {chunk}"
                );
            }
        }
    }

    /// xorshift64: deterministic cases without a dependency.
    struct Gen(u64);

    impl Gen {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            usize::try_from(self.0 % n as u64).expect("small")
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    /// JSON text as written inside quotes: escapes, multi-byte characters, emails, strings
    /// longer than a word.
    const STRINGS: &[&str] = &[
        "",
        "plain",
        "ada@example.com",
        "caf\\u00e9",
        "a\\\"b@c.de",
        "tab\\t",
        "\\\\",
        "é@ü.de",
        "😀 emoji",
        "a longer note, well past eight bytes, naming bob@corp.example.org in passing",
        "\\ud83d\\ude00",
        "4111 1111 1111 1111",
    ];
    const KEYS: &[&str] = &["a", "ssn", "card", "note", "x.y", "é", "q\\\"k", "rows"];
    const SCALARS: &[&str] = &[
        "0", "-0.5e+10", "1E3", "12.25", "-7", "true", "false", "null",
    ];
    /// Bytes inserted into a document to damage it.
    const NOISE: &[u8] = b"\"{}[],:\\ x0-.e\n\x01@\xc3\xff\x80\x0c";
    const WHITESPACE: &[&str] = &["", "", "", " ", "\n  ", "\t", "\r\n"];
    const PATHS: &[&str] = &[
        "$.a",
        "$..ssn",
        "$.a[*].card",
        "$.*",
        "$[1]",
        "$..note",
        "$['x.y']",
        "$.rows[*].a",
    ];

    fn generate(g: &mut Gen, depth: usize, out: &mut String) {
        out.push_str(g.pick(WHITESPACE));
        match if depth > 3 {
            2 + g.below(2)
        } else {
            g.below(4)
        } {
            0 => {
                out.push('{');
                for i in 0..g.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(g.pick(WHITESPACE));
                    out.push_str(&format!("\"{}\"", g.pick(KEYS)));
                    out.push_str(g.pick(WHITESPACE));
                    out.push(':');
                    generate(g, depth + 1, out);
                }
                out.push('}');
            }
            1 => {
                out.push('[');
                for i in 0..g.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    generate(g, depth + 1, out);
                }
                out.push(']');
            }
            2 => out.push_str(&format!("\"{}\"", g.pick(STRINGS))),
            _ => out.push_str(g.pick(SCALARS)),
        }
        out.push_str(g.pick(WHITESPACE));
    }

    /// `doc` pushed in pieces ending at `cuts`.
    fn cut(
        doc: &[u8],
        paths: &[JsonPath],
        cuts: &[usize],
        strings: impl FnMut(&str) -> Option<String>,
    ) -> Result<Vec<u8>, String> {
        let mut rewriter = JsonRewriter::new(paths.to_vec(), strings);
        let mut out = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain([doc.len()].iter()) {
            rewriter.push(&doc[from..to], &mut out)?;
            from = to;
        }
        rewriter.finish(&mut out)?;
        Ok(out)
    }

    /// Generated documents, a third of them damaged (a byte dropped or inserted, including
    /// bytes that are not UTF-8, or the end cut off), each pushed whole, a byte at a time and
    /// in random pieces: every way of cutting gives the same bytes or an error; a document
    /// JSON accepts is masked as the tree masker does, and one it refuses is refused.
    #[test]
    fn generated_documents_however_cut() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let mut text = String::new();
            generate(&mut g, 0, &mut text);
            let mut doc = text.into_bytes();
            if g.below(3) == 0 {
                let at = g.below(doc.len() + 1);
                match g.below(3) {
                    0 if at < doc.len() => {
                        doc.remove(at);
                    }
                    1 => doc.insert(at, NOISE[g.below(NOISE.len())]),
                    _ => doc.truncate(at),
                }
            }
            let paths: Vec<JsonPath> = (0..g.below(3))
                .map(|_| JsonPath::parse(g.pick(PATHS)).expect("path"))
                .collect();
            let at_sign = |s: &str| s.contains('@').then(|| "[email]".to_owned());
            let whole = cut(&doc, &paths, &[], at_sign);
            let mut random: Vec<usize> = (0..g.below(6)).map(|_| g.below(doc.len() + 1)).collect();
            random.sort_unstable();
            let bytewise: Vec<usize> = (1..doc.len()).collect();
            for cuts in [random, bytewise] {
                assert_eq!(
                    cut(&doc, &paths, &cuts, at_sign),
                    whole,
                    "{} cut at {cuts:?}",
                    String::from_utf8_lossy(&doc)
                );
            }
            let shown = String::from_utf8_lossy(&doc);
            match serde_json::from_slice::<Value>(&doc) {
                Ok(_) => {
                    let text = std::str::from_utf8(&doc).expect("JSON is UTF-8");
                    let out = whole.unwrap_or_else(|e| panic!("{shown}: {e}"));
                    let got: Value = serde_json::from_slice(&out).expect("JSON out");
                    assert_eq!(got, by_tree(text, &paths), "{shown}");
                    // Nothing to change: the bytes pass as they came.
                    assert_eq!(cut(&doc, &[], &[], |_| None), Ok(doc.clone()), "{shown}");
                }
                // A masked object or array is skipped unread, and a form feed passes as
                // whitespace; otherwise what JSON refuses is refused.
                Err(_) if paths.is_empty() && !doc.contains(&0x0c) => {
                    assert!(whole.is_err(), "{shown}");
                }
                Err(_) => {}
            }
        }
    }

    #[test]
    fn a_replacement_is_encoded_as_serde_json_encodes_it() {
        let mut every: String = (0u8..0x80).map(char::from).collect();
        every.push_str("é😀\u{7f}\u{2028}");
        for text in [every.as_str(), "", "plain", "\"", "\\", "a\nb"] {
            let mut out = Vec::new();
            write_string(&mut out, text);
            assert_eq!(
                String::from_utf8(out).expect("UTF-8"),
                serde_json::to_string(text).expect("string")
            );
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// Rows from `REWRITER_ROWS` (20,000 unless set).
    fn rows() -> usize {
        std::env::var("REWRITER_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000)
    }

    /// `{"rows":[{"id":0,"email":"u0@example.com","note":"..."},...]}` with `note` as given.
    fn document(rows: usize, note: &str) -> String {
        let mut doc = String::from("{\"rows\":[");
        for i in 0..rows {
            if i > 0 {
                doc.push(',');
            }
            doc.push_str(&format!(
                "{{\"id\":{i},\"email\":\"u{i}@example.com\",\"note\":\"row {i} {note}\"}}"
            ));
        }
        doc.push_str("]}");
        doc
    }

    /// Rewrites `doc` in 64 KiB chunks (the relay's frame size) with `$.rows[*].note` masked,
    /// best of three runs; prints and returns the output.
    fn timed<F: FnMut(&str) -> Option<String>>(
        label: &str,
        doc: &str,
        mut strings: impl FnMut() -> F,
    ) -> Vec<u8> {
        let mut best = f64::MAX;
        let mut out = Vec::with_capacity(doc.len());
        for _ in 0..3 {
            let paths = vec![JsonPath::parse("$.rows[*].note").expect("path")];
            let mut rewriter = JsonRewriter::new(paths, strings());
            out.clear();
            let started = std::time::Instant::now();
            for chunk in doc.as_bytes().chunks(64 * 1024) {
                rewriter.push(chunk, &mut out).expect("json");
            }
            rewriter.finish(&mut out).expect("end");
            best = best.min(started.elapsed().as_secs_f64());
        }
        println!(
            "{label}: {:.1} MB in {best:.3} s: {:.0} MB/s",
            doc.len() as f64 / 1e6,
            doc.len() as f64 / 1e6 / best
        );
        out
    }

    /// Every row kept, in order, with its email replaced by `email` and its note masked.
    fn check(out: &[u8], rows: usize, email: &str) {
        let value: serde_json::Value = serde_json::from_slice(out).expect("JSON out");
        let rows_out = value["rows"].as_array().expect("rows");
        assert_eq!(rows_out.len(), rows);
        assert!(
            rows_out.iter().enumerate().all(|(i, row)| {
                row["id"] == i && row["email"] == email && row["note"] == MASKED
            })
        );
        assert!(!String::from_utf8_lossy(out).contains("@example.com"));
    }

    /// A large document: every email is replaced, every note masked, and the output is the
    /// same document otherwise. Prints the rate (no threshold: the figure is for
    /// `cargo test --release -p sluice-engine-http rewriter_speed -- --nocapture`, with
    /// `REWRITER_ROWS=400000` for the 37 MB document of docs/benchmarks.md).
    #[test]
    fn rewriter_speed() {
        let rows = rows();
        let doc = document(rows, "of the benchmark, plain text");
        let out = timed("rewriter, '@' test", &doc, || {
            |s: &str| s.contains('@').then(|| "x".into())
        });
        check(&out, rows, "x");
    }

    /// As [`rewriter_speed`], with the closure the broker builds (`web::masked_json`): a
    /// `MaskPolicy` with the email detector, every string value through `mask_text`; the
    /// document is bench/http.sh's `/big.json`. What a masked response costs per byte, short
    /// of the sockets.
    #[test]
    fn rewriter_speed_with_detectors() {
        use sluice_mask::{Detector, DetectorRule, MaskCounts, MaskPolicy, Style};
        let rows = rows();
        let doc = document(
            rows,
            "of the big JSON document; filler text to give each row some weight",
        );
        let rule = |detector: Detector| DetectorRule {
            name: detector.to_string(),
            detector,
            style: Style::Redact,
        };
        for (label, detectors) in [
            ("rewriter + email detector", vec![rule(Detector::Email)]),
            (
                "rewriter + every detector",
                Detector::ALL.into_iter().map(rule).collect(),
            ),
        ] {
            let policy = MaskPolicy::new(Vec::new(), detectors, [7; 32]).expect("policy");
            let out = timed(label, &doc, || {
                let policy = policy.clone();
                let mut counts = MaskCounts::default();
                move |text: &str| match policy.mask_text(text, &mut counts) {
                    std::borrow::Cow::Owned(masked) => Some(masked),
                    std::borrow::Cow::Borrowed(_) => None,
                }
            });
            check(&out, rows, MASKED);
        }
    }
}
