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
//! Strict where leniency could leak: anything that is not JSON (a bare word, a second
//! document, an unclosed string at the end) is an error, and the relay ends the response
//! rather than pass on what it could not read. The largest single token (a string or number)
//! is bounded by [`MAX_TOKEN`]; nothing else is kept.

use super::MASKED;
use super::jsonpath::{JsonPath, Step};

/// The longest string or number held while it is read.
pub const MAX_TOKEN: usize = 16 * 1024 * 1024;

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
    /// The step of the member or element being read.
    step: Option<Step>,
    /// Elements seen so far (arrays).
    index: usize,
    /// Nothing read into it yet (`{}` and `[]` close at once).
    empty: bool,
}

/// What the tokenizer is in the middle of.
#[derive(Debug)]
enum Token {
    None,
    /// A string; `key` when it is an object key.
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
    token: Token,
    /// The bytes of the token being read.
    raw: Vec<u8>,
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
        }
    }

    /// Rewrites the next chunk into `out`; an error when the input is not JSON.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let mut i = 0;
        while i < input.len() {
            let byte = input[i];
            match &mut self.token {
                Token::Str { key, escaped } => {
                    // Copy up to the closing quote in one go.
                    let start = i;
                    let mut end = None;
                    let mut esc = *escaped;
                    for (n, &b) in input[start..].iter().enumerate() {
                        if esc {
                            esc = false;
                        } else if b == b'\\' {
                            esc = true;
                        } else if b == b'"' {
                            end = Some(start + n);
                            break;
                        }
                    }
                    let key = *key;
                    match end {
                        Some(end) => {
                            self.raw.extend_from_slice(&input[start..=end]);
                            self.token = Token::None;
                            i = end + 1;
                            self.finish_string(key, out)?;
                        }
                        None => {
                            self.raw.extend_from_slice(&input[start..]);
                            self.token = Token::Str { key, escaped: esc };
                            i = input.len();
                        }
                    }
                    if self.raw.len() > MAX_TOKEN {
                        return Err("a string in the body is longer than the broker reads".into());
                    }
                    continue;
                }
                Token::Scalar => {
                    if matches!(byte, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'+' | b'-' | b'.')
                    {
                        self.raw.push(byte);
                        if self.raw.len() > MAX_TOKEN {
                            return Err(
                                "a number in the body is longer than the broker reads".into()
                            );
                        }
                        i += 1;
                        continue;
                    }
                    self.token = Token::None;
                    self.finish_scalar(out)?;
                    // The delimiter is handled below.
                }
                Token::Skip {
                    depth,
                    in_string,
                    escaped,
                } => {
                    i += 1;
                    if *in_string {
                        if *escaped {
                            *escaped = false;
                        } else if byte == b'\\' {
                            *escaped = true;
                        } else if byte == b'"' {
                            *in_string = false;
                        }
                    } else {
                        match byte {
                            b'"' => *in_string = true,
                            b'{' | b'[' => *depth += 1,
                            b'}' | b']' => {
                                *depth -= 1;
                                if *depth == 0 {
                                    self.token = Token::None;
                                    self.value_done();
                                }
                            }
                            _ => {}
                        }
                    }
                    continue;
                }
                Token::None => {}
            }
            i += 1;
            self.structural(byte, out)?;
        }
        Ok(())
    }

    /// Ends the document: an error when it is incomplete.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        if matches!(self.token, Token::Scalar) {
            self.token = Token::None;
            self.finish_scalar(out)?;
        }
        if !matches!(self.token, Token::None) || !self.stack.is_empty() || !self.done {
            return Err("the JSON body ended before the document did".into());
        }
        Ok(())
    }

    /// One byte outside any token.
    fn structural(&mut self, byte: u8, out: &mut Vec<u8>) -> Result<(), String> {
        if byte.is_ascii_whitespace() {
            out.push(byte);
            return Ok(());
        }
        let expect = self.stack.last().map(|f| f.expect);
        match (expect, byte) {
            // Keys.
            (Some(Expect::FirstKey | Expect::Key), b'"') => {
                if let Some(frame) = self.stack.last_mut() {
                    frame.empty = false;
                }
                self.raw.clear();
                self.raw.push(b'"');
                self.token = Token::Str {
                    key: true,
                    escaped: false,
                };
            }
            (Some(Expect::FirstKey), b'}') => {
                self.stack.pop();
                out.push(byte);
                self.value_done();
            }
            (Some(Expect::Colon), b':') => {
                out.push(byte);
                self.set_expect(Expect::Value);
            }
            (Some(Expect::CommaOrEnd), b',') => {
                out.push(byte);
                let frame = self.stack.last_mut().ok_or("unbalanced JSON")?;
                if frame.object {
                    frame.expect = Expect::Key;
                } else {
                    frame.index += 1;
                    frame.step = Some(Step::Index(frame.index));
                    frame.expect = Expect::Value;
                }
            }
            (Some(Expect::CommaOrEnd), b'}' | b']') => {
                let frame = self.stack.pop().ok_or("unbalanced JSON")?;
                if frame.object != (byte == b'}') {
                    return Err("mismatched brackets in the JSON body".into());
                }
                out.push(byte);
                self.value_done();
            }
            // `]` right after `[`.
            (Some(Expect::Value), b']')
                if self.stack.last().is_some_and(|f| !f.object && f.empty) =>
            {
                self.stack.pop();
                out.push(byte);
                self.value_done();
            }
            (Some(Expect::Value), _) | (None, _) if !self.done => self.value_start(byte, out)?,
            _ => {
                return Err(format!(
                    "unexpected {:?} in the JSON body",
                    char::from(byte)
                ));
            }
        }
        Ok(())
    }

    /// Whether a path reaches the value about to start (or just read).
    fn masked_here(&self) -> bool {
        if self.paths.is_empty() {
            return false;
        }
        let last = self.stack.last().and_then(|f| f.step.as_ref());
        // Most values sit at a key no path ends in: decided without building the place.
        if !self.paths.iter().any(|p| p.could_end_at(last)) {
            return false;
        }
        let steps: Vec<&Step> = self.stack.iter().filter_map(|f| f.step.as_ref()).collect();
        self.paths.iter().any(|p| p.matches(&steps))
    }

    /// The first byte of a value.
    fn value_start(&mut self, byte: u8, out: &mut Vec<u8>) -> Result<(), String> {
        let masked = self.masked_here();
        if let Some(parent) = self.stack.last_mut() {
            parent.empty = false;
        }
        match byte {
            b'{' | b'[' if masked => {
                out.extend_from_slice(b"\"");
                out.extend_from_slice(MASKED.as_bytes());
                out.extend_from_slice(b"\"");
                self.token = Token::Skip {
                    depth: 1,
                    in_string: false,
                    escaped: false,
                };
            }
            b'{' => {
                out.push(byte);
                self.stack.push(Frame {
                    object: true,
                    expect: Expect::FirstKey,
                    step: None,
                    index: 0,
                    empty: true,
                });
            }
            b'[' => {
                out.push(byte);
                self.stack.push(Frame {
                    object: false,
                    expect: Expect::Value,
                    step: Some(Step::Index(0)),
                    index: 0,
                    empty: true,
                });
            }
            b'"' => {
                self.raw.clear();
                self.raw.push(b'"');
                self.token = Token::Str {
                    key: false,
                    escaped: false,
                };
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                self.raw.clear();
                self.raw.push(byte);
                self.token = Token::Scalar;
            }
            other => {
                return Err(format!(
                    "unexpected {:?} in the JSON body",
                    char::from(other)
                ));
            }
        }
        Ok(())
    }

    fn finish_string(&mut self, key: bool, out: &mut Vec<u8>) -> Result<(), String> {
        let text = decode_string(&self.raw)?;
        if key {
            out.extend_from_slice(&self.raw);
            let frame = self.stack.last_mut().ok_or("unbalanced JSON")?;
            frame.step = Some(Step::Key(text.into_owned()));
            frame.expect = Expect::Colon;
            return Ok(());
        }
        if self.masked_here() {
            write_string(out, MASKED);
        } else {
            match (self.strings)(&text) {
                Some(replaced) => write_string(out, &replaced),
                None => out.extend_from_slice(&self.raw),
            }
        }
        self.value_done();
        Ok(())
    }

    fn finish_scalar(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let null = self.raw == b"null";
        if !(null || self.raw == b"true" || self.raw == b"false" || is_number(&self.raw)) {
            return Err("a value in the JSON body is not JSON".into());
        }
        if !null && self.masked_here() {
            write_string(out, MASKED);
        } else {
            out.extend_from_slice(&self.raw);
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

/// A complete JSON string token (quotes included) as text; escapes decoded only when there
/// are any.
fn decode_string(raw: &[u8]) -> Result<std::borrow::Cow<'_, str>, String> {
    let malformed = || "a string in the JSON body is malformed".to_owned();
    let inner = raw
        .get(1..raw.len().saturating_sub(1))
        .filter(|_| raw.len() >= 2)
        .ok_or_else(malformed)?;
    if !inner.contains(&b'\\') {
        if inner.iter().any(|&b| b < 0x20) {
            return Err(malformed());
        }
        return std::str::from_utf8(inner)
            .map(std::borrow::Cow::Borrowed)
            .map_err(|_| malformed());
    }
    serde_json::from_slice::<String>(raw)
        .map(std::borrow::Cow::Owned)
        .map_err(|_| malformed())
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

/// `text` as a JSON string.
fn write_string(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(
        serde_json::to_string(text)
            .unwrap_or_else(|_| "\"\"".to_owned())
            .as_bytes(),
    );
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
}

#[cfg(test)]
mod speed {
    use super::*;

    /// A large document in 64 KiB chunks: every email is replaced, every note masked, and the
    /// output is the same document otherwise. Prints the rate (no threshold: the figure is for
    /// `cargo test --release -p sluice-engine-http rewriter_speed -- --nocapture`, with
    /// `REWRITER_ROWS=400000` for the 37 MB document of docs/benchmarks.md).
    #[test]
    fn rewriter_speed() {
        let rows: usize = std::env::var("REWRITER_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000);
        let mut doc = String::from("{\"rows\":[");
        for i in 0..rows {
            if i > 0 {
                doc.push(',');
            }
            doc.push_str(&format!(
                "{{\"id\":{i},\"email\":\"u{i}@example.com\",\"note\":\"row {i} of the benchmark, plain text\"}}"
            ));
        }
        doc.push_str("]}");
        let paths = vec![JsonPath::parse("$.rows[*].note").expect("path")];
        let started = std::time::Instant::now();
        let mut rewriter = JsonRewriter::new(paths, |s: &str| s.contains('@').then(|| "x".into()));
        let mut out = Vec::with_capacity(doc.len());
        for chunk in doc.as_bytes().chunks(64 * 1024) {
            rewriter.push(chunk, &mut out).expect("json");
        }
        rewriter.finish(&mut out).expect("end");
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{:.1} MB in {secs:.3} s: {:.0} MB/s",
            doc.len() as f64 / 1e6,
            doc.len() as f64 / 1e6 / secs
        );
        let value: serde_json::Value = serde_json::from_slice(&out).expect("JSON out");
        let rows_out = value["rows"].as_array().expect("rows");
        assert_eq!(rows_out.len(), rows);
        assert!(
            rows_out
                .iter()
                .enumerate()
                .all(|(i, row)| { row["id"] == i && row["email"] == "x" && row["note"] == MASKED })
        );
        assert!(!String::from_utf8_lossy(&out).contains("@example.com"));
    }
}
