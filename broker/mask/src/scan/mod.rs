//! The content detectors and the rewriting of what they find.
//!
//! One call per value: [`scan`] first makes one pass over the bytes ([`Hints`]: the number of
//! ASCII digits, and which of a few rare bytes occur: `@`, `_`, `J`, `x`, `A`, `K`/`S`, `-`,
//! upper case), then runs only the detectors whose needs are met: cards need 13 digits,
//! emails an `@`, a JWT a `J`, and so on. Most values (names, statuses, small numbers) leave
//! after that pass. Each detector is a hand-written, linear scanner over bytes (no regex, no
//! backtracking) in its own file; all of them match ASCII only, so they work in any
//! ASCII-compatible client encoding and never split a multi-byte character.
//!
//! Overlapping matches (a phone number inside a card number, an email inside a secret) are
//! merged into one span that covers both, rewritten in the style of the earliest: whatever is
//! merged, nothing a detector found is left in clear.

mod card;
mod email;
mod iban;
mod phone;
mod secret;
mod ssn;

use crate::counts::MaskCounts;
use crate::policy::{Detector, Inner, Style};
use crate::style::push_styled;

/// The shortest value any detector can match (`a@b.co`).
const MIN_LEN: usize = 6;

/// One detected span, `start..end` in the scanned bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    /// First byte of the match.
    pub(crate) start: usize,
    /// One past the last byte.
    pub(crate) end: usize,
    /// The detector that found it (decides the rule, hence the style and the count).
    pub(crate) detector: Detector,
}

/// Finds every match of the enabled detectors (`by_detector[d]` is the rule using detector
/// `d`) in `bytes`, sorted and merged so that spans never overlap.
pub(crate) fn scan(by_detector: &[Option<usize>; 6], bytes: &[u8], hits: &mut Vec<Hit>) {
    hits.clear();
    if bytes.len() < MIN_LEN {
        return;
    }
    let enabled = |detector: Detector| by_detector[detector.index()].is_some();
    let hints = Hints::of(bytes);
    if enabled(Detector::CardNumber) && hints.digits >= 13 {
        card::find(bytes, hits);
    }
    if enabled(Detector::UsSsn) && hints.digits >= 9 {
        ssn::find(bytes, hits);
    }
    if enabled(Detector::Phone) && hints.digits >= 8 {
        phone::find(bytes, hits);
    }
    if enabled(Detector::Iban)
        && hints.digits >= 2
        && hints.has(Hints::UPPER)
        && bytes.len() >= iban::MIN_LEN
    {
        iban::find(bytes, hits);
    }
    if enabled(Detector::Email) && hints.has(Hints::AT) {
        email::find(bytes, hits);
    }
    if enabled(Detector::Secret) {
        secret::find(bytes, hints, hits);
    }
    merge(hits);
}

/// [`Hints`] flags per byte value.
const CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if c.is_ascii_uppercase() { 1 << 7 } else { 0 }
            | match c {
                b'@' => 1,
                b'_' => 1 << 1,
                b'J' => 1 << 2,
                b'x' => 1 << 3,
                b'A' => 1 << 4,
                b'K' | b'S' => 1 << 5,
                b'-' => 1 << 6,
                _ => 0,
            };
        b += 1;
    }
    table
};

/// What one pass over a value learns, so that detectors with nothing to look for never run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hints {
    /// ASCII digits.
    digits: u32,
    /// Which of the bytes below occur (bit set).
    flags: u32,
}

impl Hints {
    pub(crate) const AT: u32 = 1;
    pub(crate) const UNDERSCORE: u32 = 1 << 1;
    pub(crate) const J: u32 = 1 << 2;
    pub(crate) const X: u32 = 1 << 3;
    pub(crate) const A: u32 = 1 << 4;
    pub(crate) const K_OR_S: u32 = 1 << 5;
    pub(crate) const DASH: u32 = 1 << 6;
    pub(crate) const UPPER: u32 = 1 << 7;

    /// One pass over the value. Short values (most of them) go through a class table, one
    /// load and one OR per byte; long ones through a loop the compiler vectorises, where the
    /// per-call cost of reducing the vector accumulators is paid back.
    fn of(bytes: &[u8]) -> Hints {
        if bytes.len() < 32 {
            let mut digits = 0u32;
            let mut flags = 0u8;
            for &b in bytes {
                flags |= CLASS[usize::from(b)];
                digits += u32::from(b.wrapping_sub(b'0') < 10);
            }
            return Hints {
                digits,
                flags: u32::from(flags),
            };
        }
        let mut digits = 0u32;
        let mut flags = 0u8;
        // One byte-wide OR of all flags and digits summed in byte-wide lanes per 255-byte
        // block, so the loop runs 16–32 bytes per step with a single reduction at the end.
        for block in bytes.chunks(255) {
            let mut block_digits = 0u8;
            for &b in block {
                block_digits += u8::from(b.wrapping_sub(b'0') < 10);
                flags |= u8::from(b == b'@')
                    | u8::from(b == b'_') << 1
                    | u8::from(b == b'J') << 2
                    | u8::from(b == b'x') << 3
                    | u8::from(b == b'A') << 4
                    | (u8::from(b == b'K') | u8::from(b == b'S')) << 5
                    | u8::from(b == b'-') << 6
                    | u8::from(b.wrapping_sub(b'A') < 26) << 7;
            }
            digits += u32::from(block_digits);
        }
        let flags = u32::from(flags);
        Hints { digits, flags }
    }

    pub(crate) fn has(self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

/// Sorts by start (longest first on ties) and merges overlapping spans into their union,
/// keeping the detector of the earliest.
fn merge(hits: &mut Vec<Hit>) {
    if hits.len() < 2 {
        return;
    }
    hits.sort_unstable_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut kept = 0;
    for index in 1..hits.len() {
        let hit = hits[index];
        if hit.start < hits[kept].end {
            hits[kept].end = hits[kept].end.max(hit.end);
        } else {
            kept += 1;
            hits[kept] = hit;
        }
    }
    hits.truncate(kept + 1);
}

/// The rule index behind a hit. Only enabled detectors produce hits.
pub(crate) fn rule_of(inner: &Inner, hit: &Hit) -> Option<usize> {
    inner.by_detector[hit.detector.index()]
}

/// Counts every hit against its rule.
pub(crate) fn count_hits(inner: &Inner, hits: &[Hit], counts: &mut MaskCounts) {
    for hit in hits {
        if let Some(rule) = rule_of(inner, hit) {
            counts.add(&inner.detector_names[rule], 1);
        }
    }
}

/// A JSON match that crosses a string boundary cannot be rewritten in place; the caller masks
/// the whole value instead.
#[derive(Debug)]
pub(crate) struct CrossesJsonString;

/// Rewrites `bytes` with every hit replaced in its rule's style and counted. With `json`, a
/// hit outside a JSON string (a bare number) is replaced by a quoted string, so the document
/// stays valid JSON.
pub(crate) fn rewrite(
    inner: &Inner,
    bytes: &[u8],
    hits: &[Hit],
    json: bool,
    counts: &mut MaskCounts,
) -> Result<Vec<u8>, CrossesJsonString> {
    let mut out = Vec::with_capacity(bytes.len() + 16 * hits.len());
    let mut json_state = JsonStrings::default();
    let mut copied = 0;
    for hit in hits {
        let Some(rule) = rule_of(inner, hit) else {
            continue;
        };
        let mut start = hit.start;
        let mut quote = false;
        if json {
            let inside = json_state.inside_at(bytes, hit.start);
            if json_state.crosses(bytes, hit.end) {
                return Err(CrossesJsonString);
            }
            if !inside {
                quote = true;
                // A negative number: the sign goes with it.
                if start > copied && bytes[start - 1] == b'-' {
                    start -= 1;
                }
            }
        }
        out.extend_from_slice(&bytes[copied..start]);
        let raw = &bytes[hit.start..hit.end];
        let style = inner.detectors[rule].style;
        // Only `hash` signs the canonical form: the others need no copy of the match.
        let canonical = if style == Style::Hash {
            canonical(hit.detector, raw)
        } else {
            std::borrow::Cow::Borrowed(raw)
        };
        if quote {
            out.push(b'"');
        }
        push_styled(style, &inner.hasher, raw, &canonical, &mut out);
        if quote {
            out.push(b'"');
        }
        counts.add(&inner.detector_names[rule], 1);
        copied = hit.end;
    }
    out.extend_from_slice(&bytes[copied..]);
    Ok(out)
}

/// What the `hash` style signs for a match: one form per value however it was written.
fn canonical(detector: Detector, raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    match detector {
        Detector::CardNumber | Detector::UsSsn => {
            Cow::Owned(raw.iter().copied().filter(u8::is_ascii_digit).collect())
        }
        Detector::Phone => Cow::Owned(
            raw.iter()
                .copied()
                .filter(|b| b.is_ascii_digit() || *b == b'+')
                .collect(),
        ),
        Detector::Iban => Cow::Owned(
            raw.iter()
                .copied()
                .filter(u8::is_ascii_alphanumeric)
                .map(|b| b.to_ascii_uppercase())
                .collect(),
        ),
        Detector::Email => Cow::Owned(raw.to_ascii_lowercase()),
        Detector::Secret => Cow::Borrowed(raw),
    }
}

/// Tracks, left to right, whether a byte offset of a JSON text lies inside a string.
#[derive(Debug, Default)]
struct JsonStrings {
    /// Bytes before this offset have been read.
    at: usize,
    /// Inside a string at `at`.
    inside: bool,
    /// The previous byte was a backslash inside a string.
    escaped: bool,
}

impl JsonStrings {
    /// Advances to `to` (never backwards) and says whether `to` is inside a string.
    fn inside_at(&mut self, bytes: &[u8], to: usize) -> bool {
        while self.at < to {
            let b = bytes[self.at];
            if self.inside {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.inside = false;
                }
            } else if b == b'"' {
                self.inside = true;
            }
            self.at += 1;
        }
        self.inside
    }

    /// True when the bytes from the current offset to `end` change the string state (contain
    /// an unescaped quote), or start or end inside an escape, so that replacing them would
    /// change the document's shape. Call right after `inside_at(start)`.
    fn crosses(&mut self, bytes: &[u8], end: usize) -> bool {
        if self.escaped {
            return true;
        }
        let mut changed = false;
        while self.at < end {
            let was = self.inside;
            self.inside_at(bytes, self.at + 1);
            changed |= self.inside != was;
        }
        changed || self.escaped
    }
}

/// ASCII letter or digit: what may not touch a match on either side.
fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// End of the run of ASCII digits starting at `from`.
fn digits_end(text: &[u8], from: usize) -> usize {
    text[from..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .map_or(text.len(), |len| from + len)
}

/// Offset of the next ASCII digit at or after `from`. Skips eight bytes at a time while a
/// word holds no digit (long runs of text or padding between numbers).
fn next_digit(text: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut at = from;
    for chunk in text[from..].chunks_exact(8) {
        let word = <[u8; 8]>::try_from(chunk).map_or(u64::MAX, u64::from_le_bytes);
        // Bytes 0x30..=0x39 become 0..=9; "some byte below 10" is exact for a whole word.
        let x = word ^ (ONES * 0x30);
        if x.wrapping_sub(ONES * 10) & !x & HIGHS != 0 {
            break;
        }
        at += 8;
    }
    text[at..]
        .iter()
        .position(u8::is_ascii_digit)
        .map(|offset| at + offset)
}

/// A number may start at `start`: not glued to a letter or digit, and not the fraction of a
/// decimal or the minutes of a time (`3.14159…`, `10:23`). A comma is a boundary, not a
/// decimal mark: PostgreSQL writes decimals with a dot, and commas separate CSV fields and
/// array elements (`1,4111…`).
fn number_starts(text: &[u8], start: usize) -> bool {
    if start == 0 {
        return true;
    }
    let before = text[start - 1];
    let continues = matches!(before, b'.' | b':') && start >= 2 && text[start - 2].is_ascii_digit();
    !(is_alnum(before) || continues)
}

/// A number may end at `end`: not glued to a letter or digit, and not followed by a fraction
/// or a time (`…1111.50`, `10:23`). A comma is a boundary (see [`number_starts`]).
fn number_ends(text: &[u8], end: usize) -> bool {
    let Some(&after) = text.get(end) else {
        return true;
    };
    let fraction = after == b'.' && text.get(end + 1).is_some_and(u8::is_ascii_digit);
    !(is_alnum(after) || after == b':' || fraction)
}
