//! Credentials with a recognisable shape. Each has a fixed prefix with a rare byte in it, so
//! the scanner only looks where [`Hints`] saw that byte, jumping between its occurrences with
//! SIMD `memchr`:
//!
//! - AWS access key ids: `AKIA` or `ASIA` and 16 of `A-Z 0-9` (found from each `A`);
//! - GitHub tokens: `ghp_ gho_ ghu_ ghs_ ghr_` and at least 30 of `A-Z a-z 0-9`;
//!   `github_pat_` and at least 22 of `A-Z a-z 0-9 _` (found from each `_`);
//! - JWTs: three base64url parts separated by dots, the first two starting `eyJ` (a JSON
//!   object) and at least 10 characters long; the signature may be empty (`alg: none`)
//!   (found from each `J`);
//! - PEM private keys: from `-----BEGIN <label>PRIVATE KEY-----` (also `... PRIVATE KEY
//!   BLOCK-----`) to the end of the matching `-----END ...-----` line; with no END, to the end
//!   of the value, since a truncated key is still a key (found from each `-`);
//! - Slack tokens: `xoxb- xoxa- xoxp- xoxr- xoxs-` and at least 10 of `A-Z a-z 0-9 -`
//!   (found from each `x`);
//! - Stripe live keys: `sk_live_` or `rk_live_` and at least 16 of `A-Z a-z 0-9` (from `_`).
//!
//! Tokens must not be glued to a preceding letter, digit, `_` or `-` (so `XAKIA…` is not a
//! key id); PEM blocks may start anywhere.

use super::{Hints, Hit, is_alnum};
use crate::policy::Detector;

/// How far a PEM header's label may run before `-----`.
const MAX_PEM_LABEL: usize = 64;

/// The shortest PEM header (`-----BEGIN PRIVATE KEY-----`).
const MIN_PEM: usize = 27;

/// AWS key id length.
const AWS_LEN: usize = 20;

pub(super) fn find(text: &[u8], hints: Hints, hits: &mut Vec<Hit>) {
    let mut push = |start: usize, end: Option<usize>| {
        if let Some(end) = end {
            hits.push(Hit {
                start,
                end,
                detector: Detector::Secret,
            });
        }
    };
    let token_start = |start: usize| start == 0 || !is_token(text[start - 1]);
    if hints.has(Hints::UNDERSCORE) {
        for at in memchr::memchr_iter(b'_', text) {
            // `gh?_`, `sk_`/`rk_` and `github_` end at this underscore.
            for back in [3, 2, 6] {
                if let Some(start) = at.checked_sub(back).filter(|&start| token_start(start)) {
                    let end = if back == 2 {
                        stripe(text, start)
                    } else {
                        github(text, start)
                    };
                    push(start, end);
                }
            }
        }
    }
    if hints.has(Hints::J) {
        for at in memchr::memchr_iter(b'J', text) {
            if let Some(start) = at.checked_sub(2).filter(|&start| token_start(start)) {
                push(start, jwt(text, start));
            }
        }
    }
    if hints.has(Hints::A) && hints.has(Hints::K_OR_S) && text.len() >= AWS_LEN {
        for start in memchr::memchr_iter(b'A', text) {
            if token_start(start) {
                push(start, aws(text, start));
            }
        }
    }
    if hints.has(Hints::DASH) {
        if hints.has(Hints::X) {
            for start in memchr::memchr_iter(b'x', text) {
                if token_start(start) {
                    push(start, slack(text, start));
                }
            }
        }
        if text.len() >= MIN_PEM {
            // Dashes are common (dates, UUIDs); a header is five and `BEGIN`. No `memmem`
            // here: building its searcher costs more than checking a few dashes.
            let mut covered = 0;
            for start in memchr::memchr_iter(b'-', text) {
                if start >= covered && text[start..].starts_with(b"-----BEGIN ") {
                    let end = pem(text, start);
                    push(start, end);
                    covered = end.unwrap_or(start);
                }
            }
        }
    }
}

/// Characters of base64url, which also make up the other tokens.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// End of the run of bytes satisfying `accept` from `from`.
fn run(text: &[u8], from: usize, accept: impl Fn(u8) -> bool) -> usize {
    text[from..]
        .iter()
        .position(|&b| !accept(b))
        .map_or(text.len(), |len| from + len)
}

fn aws(text: &[u8], at: usize) -> Option<usize> {
    let rest = &text[at..];
    if !(rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA")) {
        return None;
    }
    let end = at + 20;
    let id = text.get(at + 4..end)?;
    (id.iter()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && !text.get(end).copied().is_some_and(is_alnum))
    .then_some(end)
}

fn github(text: &[u8], at: usize) -> Option<usize> {
    let rest = &text[at..];
    if rest.starts_with(b"github_pat_") {
        let from = at + 11;
        let end = run(text, from, |b| b.is_ascii_alphanumeric() || b == b'_');
        return (end - from >= 22).then_some(end);
    }
    if rest.len() > 4
        && rest.starts_with(b"gh")
        && matches!(rest[2], b'p' | b'o' | b'u' | b's' | b'r')
        && rest[3] == b'_'
    {
        let from = at + 4;
        let end = run(text, from, |b| b.is_ascii_alphanumeric());
        return (end - from >= 30).then_some(end);
    }
    None
}

fn jwt(text: &[u8], at: usize) -> Option<usize> {
    let is_b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    if !text[at..].starts_with(b"eyJ") {
        return None;
    }
    let header_end = run(text, at, is_b64);
    if header_end - at < 10 || text.get(header_end) != Some(&b'.') {
        return None;
    }
    let payload = header_end + 1;
    if !text[payload..].starts_with(b"eyJ") {
        return None;
    }
    let payload_end = run(text, payload, is_b64);
    if payload_end - payload < 10 || text.get(payload_end) != Some(&b'.') {
        return None;
    }
    Some(run(text, payload_end + 1, is_b64))
}

fn pem(text: &[u8], at: usize) -> Option<usize> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const END: &[u8] = b"-----END ";
    if !text[at..].starts_with(BEGIN) {
        return None;
    }
    let label_start = at + BEGIN.len();
    let label_end = run(text, label_start, |b| {
        b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' '
    });
    let label = &text[label_start..label_end];
    if label.len() > MAX_PEM_LABEL
        || !(label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK"))
        || !text[label_end..].starts_with(b"-----")
    {
        return None;
    }
    let body = label_end + 5;
    let Some(offset) = memchr::memmem::find(&text[body..], END) else {
        return Some(text.len());
    };
    let end_label = body + offset + END.len();
    let end_label_end = run(text, end_label, |b| {
        b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' '
    });
    if text[end_label_end..].starts_with(b"-----") {
        Some(end_label_end + 5)
    } else {
        // A damaged END line: the key is still a key. Mask to the end of the value.
        Some(text.len())
    }
}

fn slack(text: &[u8], at: usize) -> Option<usize> {
    let rest = &text[at..];
    if !(rest.len() > 5
        && rest.starts_with(b"xox")
        && matches!(rest[3], b'b' | b'a' | b'p' | b'r' | b's')
        && rest[4] == b'-')
    {
        return None;
    }
    let from = at + 5;
    let end = run(text, from, |b| b.is_ascii_alphanumeric() || b == b'-');
    (end - from >= 10).then_some(end)
}

fn stripe(text: &[u8], at: usize) -> Option<usize> {
    let rest = &text[at..];
    if !(rest.starts_with(b"sk_live_") || rest.starts_with(b"rk_live_")) {
        return None;
    }
    let from = at + 8;
    let end = run(text, from, |b| b.is_ascii_alphanumeric());
    (end - from >= 16).then_some(end)
}
