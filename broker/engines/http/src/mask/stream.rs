//! Masking a watch stream: newline-delimited JSON events, arriving in chunks cut anywhere.
//!
//! ```text
//!  chunks:  {"type":"ADDED","obj │ ect":{...}}\n{"type":"MOD │ IFIED",...}\n{"ty
//!                   │ push            │ push                    │ finish
//!                   ▼                 ▼                         ▼
//!  out:     (nothing yet)    {masked event 1}\n   {masked event 2}\n{masked partial}
//! ```
//!
//! Each complete line is parsed, masked with [`super::mask_secrets`] and written again, its
//! newline kept; the partial rest waits for the next chunk. Fail closed: a line that is not
//! one JSON value, or longer than the cap, is never passed on; a watch `ERROR` event saying it
//! was withheld takes its place (the rest of an over-long line is skipped as it arrives). So
//! memory stays below the cap however the stream is cut, and output does not depend on where
//! the chunks were cut.

use super::mask_secrets;

/// The longest event line read: 16 MiB (the largest object etcd stores is 1.5 MiB by default).
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// What takes the place of an event that could not be read (no newline).
const WITHHELD: &str = concat!(
    r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"#,
    r#""status":"Failure","message":"sluice: an event it could not read was withheld","#,
    r#""reason":"InternalError","code":500}}"#
);

/// Masks a newline-delimited JSON stream chunk by chunk.
#[derive(Debug)]
pub struct LineMasker {
    /// Whether the request was for Secrets (see [`super::mask_secrets`]).
    secrets_request: bool,
    /// The longest line read; longer ones are withheld.
    cap: usize,
    /// The line read so far, never longer than `cap`.
    line: Vec<u8>,
    /// True while skipping the rest of an over-long line (already reported as withheld).
    skipping: bool,
    /// Values masked so far.
    masked: usize,
    /// Lines withheld so far.
    withheld: usize,
}

impl LineMasker {
    /// A masker with the [`MAX_LINE`] cap.
    pub fn new(secrets_request: bool) -> LineMasker {
        LineMasker::with_cap(secrets_request, MAX_LINE)
    }

    /// A masker withholding lines longer than `cap` bytes (newline not counted).
    pub fn with_cap(secrets_request: bool, cap: usize) -> LineMasker {
        LineMasker {
            secrets_request,
            cap,
            line: Vec::new(),
            skipping: false,
            masked: 0,
            withheld: 0,
        }
    }

    /// Reads a chunk and returns the masked bytes of every line it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            self.take(&rest[..end], &mut out);
            self.end_line(&mut out);
            rest = &rest[end + 1..];
        }
        self.take(rest, &mut out);
        out
    }

    /// Ends the stream: the masked bytes of a last line that had no newline (none added).
    pub fn finish(mut self) -> Vec<u8> {
        if self.skipping || self.line.is_empty() {
            return Vec::new();
        }
        let line = std::mem::take(&mut self.line);
        self.mask_line(&line)
    }

    /// How many values were masked so far.
    pub fn masked(&self) -> usize {
        self.masked
    }

    /// How many lines were withheld so far.
    pub fn withheld(&self) -> usize {
        self.withheld
    }

    /// Adds bytes of the current line, or withholds it once it grows past the cap.
    fn take(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.skipping || bytes.is_empty() {
            return;
        }
        if self.line.len() + bytes.len() > self.cap {
            self.line = Vec::new();
            self.skipping = true;
            self.withheld += 1;
            out.extend_from_slice(WITHHELD.as_bytes());
            out.push(b'\n');
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    /// A newline: writes the masked line (or nothing after a withheld one).
    fn end_line(&mut self, out: &mut Vec<u8>) {
        if self.skipping {
            self.skipping = false;
            return;
        }
        let mut line = std::mem::take(&mut self.line);
        out.extend_from_slice(&self.mask_line(&line));
        out.push(b'\n');
        line.clear();
        self.line = line;
        // Keep a small buffer for the next line, not the largest one seen.
        self.line.shrink_to(64 * 1024);
    }

    /// One line masked and written again, or the withheld event. A blank line stays blank.
    fn mask_line(&mut self, line: &[u8]) -> Vec<u8> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Vec::new();
        }
        let written = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|mut event| {
                let masked = mask_secrets(&mut event, self.secrets_request);
                let bytes = serde_json::to_vec(&event).ok()?;
                Some((masked, bytes))
            });
        match written {
            Some((masked, bytes)) => {
                self.masked += masked;
                bytes
            }
            None => {
                self.withheld += 1;
                WITHHELD.as_bytes().to_vec()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn stream() -> Vec<u8> {
        let events = [
            json!({"type": "ADDED", "object": {"kind": "Secret", "metadata": {"name": "a"}, "data": {"k": "c2VjcmV0"}}}),
            json!({"type": "BOOKMARK", "object": {"kind": "Secret", "metadata": {"resourceVersion": "9"}}}),
            json!({"type": "MODIFIED", "object": {"kind": "Secret", "metadata": {"name": "é"}, "stringData": {"k": "plain"}}}),
            json!({"type": "ADDED", "object": {"kind": "ConfigMap", "data": {"k": "v"}}}),
        ];
        let mut out = Vec::new();
        for event in events {
            out.extend_from_slice(event.to_string().as_bytes());
            out.push(b'\n');
        }
        out
    }

    fn lines(bytes: &[u8]) -> Vec<Value> {
        bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("every output line is JSON"))
            .collect()
    }

    #[test]
    fn events_are_masked_line_by_line() {
        let input = stream();
        let mut masker = LineMasker::new(false);
        let mut out = masker.push(&input);
        assert_eq!(masker.masked(), 2);
        assert_eq!(masker.withheld(), 0);
        out.extend(masker.finish());
        assert!(out.ends_with(b"\n"));
        let events = lines(&out);
        assert_eq!(events.len(), 4);
        assert_eq!(events[0]["object"]["data"]["k"], "KioqKg==");
        assert_eq!(events[2]["object"]["stringData"]["k"], "****");
        assert_eq!(events[3]["object"]["data"]["k"], "v");
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(!text.contains("c2VjcmV0") && !text.contains("plain"));
    }

    #[test]
    fn a_split_stream_gives_the_same_output_at_every_boundary() {
        let input = stream();
        let mut whole = LineMasker::new(true);
        let mut expected = whole.push(&input);
        expected.extend(whole.finish());
        // Two chunks cut at every byte.
        for cut in 0..=input.len() {
            let mut masker = LineMasker::new(true);
            let mut out = masker.push(&input[..cut]);
            out.extend(masker.push(&input[cut..]));
            out.extend(masker.finish());
            assert_eq!(out, expected, "cut at {cut}");
        }
        // One byte at a time.
        let mut masker = LineMasker::new(true);
        let mut out = Vec::new();
        for byte in &input {
            out.extend(masker.push(std::slice::from_ref(byte)));
        }
        out.extend(masker.finish());
        assert_eq!(out, expected);
    }

    #[test]
    fn lines_that_are_not_json_are_withheld() {
        let mut masker = LineMasker::new(false);
        let out = masker.push(b"{\"type\":\"ADDED\",\"object\":{\"kind\":\"Secret\",\"data\":{\"k\":\"c2VjcmV0\"}\nnot json\n{}{}\n\n");
        assert_eq!(masker.withheld(), 3);
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(!text.contains("c2VjcmV0") && !text.contains("not json"));
        let events: Vec<&str> = text.split('\n').collect();
        assert_eq!(events.len(), 5, "{text}");
        for event in &events[..3] {
            assert_eq!(*event, WITHHELD);
        }
        assert_eq!(events[3], "", "a blank line stays blank");
        let withheld: Value = serde_json::from_str(WITHHELD).expect("JSON");
        assert_eq!(withheld["type"], "ERROR");
        assert_eq!(withheld["object"]["kind"], "Status");
        assert_eq!(
            withheld["object"]["message"],
            "sluice: an event it could not read was withheld"
        );
    }

    #[test]
    fn a_partial_last_line_is_masked_or_withheld_at_the_end() {
        let mut masker = LineMasker::new(true);
        assert!(masker.push(b"{\"data\":{\"k\":\"c2VjcmV0\"}}").is_empty());
        assert_eq!(masker.finish(), b"{\"data\":{\"k\":\"KioqKg==\"}}");
        let mut masker = LineMasker::new(true);
        assert!(masker.push(b"{\"data\":{\"k\":\"c2Vj").is_empty());
        assert_eq!(masker.finish(), WITHHELD.as_bytes());
    }

    #[test]
    fn over_long_lines_are_withheld_and_skipped() {
        let long = format!(
            "{{\"kind\":\"Secret\",\"data\":{{\"k\":\"{}\"}}}}",
            "A".repeat(100)
        );
        let short = "{\"kind\":\"Secret\",\"data\":{\"k\":\"QQ==\"}}";
        let input = format!("{long}\n{short}\n{long}");
        let mut whole = LineMasker::with_cap(false, 64);
        let mut expected = whole.push(input.as_bytes());
        assert_eq!(whole.withheld(), 2);
        assert!(whole.line.len() <= 64);
        expected.extend(whole.finish());
        let text = String::from_utf8(expected.clone()).expect("UTF-8");
        assert_eq!(
            text,
            format!(
                "{WITHHELD}\n{{\"data\":{{\"k\":\"KioqKg==\"}},\"kind\":\"Secret\"}}\n{WITHHELD}\n"
            )
        );
        for size in [1, 7, 64, 65] {
            let mut masker = LineMasker::with_cap(false, 64);
            let mut out = Vec::new();
            for chunk in input.as_bytes().chunks(size) {
                out.extend(masker.push(chunk));
                assert!(masker.line.len() <= 64);
            }
            out.extend(masker.finish());
            assert_eq!(out, expected, "chunks of {size}");
        }
        // A line of exactly the cap is read.
        let mut masker = LineMasker::with_cap(false, short.len());
        let out = masker.push(format!("{short}\n").as_bytes());
        assert_eq!(masker.withheld(), 0);
        assert_eq!(lines(&out)[0]["data"]["k"], "KioqKg==");
    }
}
