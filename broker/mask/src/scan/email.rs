//! Email addresses, found from each `@` (located with SIMD `memchr`).
//!
//! Local part: the longest run of `A-Z a-z 0-9 . _ % + -` before the `@`, leading dots
//! dropped. Domain: at least two labels of `A-Z a-z 0-9 -` separated by single dots, the last
//! (the top-level domain) at least two letters. ASCII only: internationalised addresses and
//! quoted local parts are not matched.

use super::Hit;
use crate::policy::Detector;

pub(super) fn find(text: &[u8], hits: &mut Vec<Hit>) {
    for at in memchr::memchr_iter(b'@', text) {
        let mut start = at;
        while start > 0 && is_local(text[start - 1]) {
            start -= 1;
        }
        while start < at && text[start] == b'.' {
            start += 1;
        }
        if start == at {
            continue;
        }
        let Some(end) = domain_end(text, at + 1) else {
            continue;
        };
        hits.push(Hit {
            start,
            end,
            detector: Detector::Email,
        });
    }
}

/// [`CLASS`] bit: may be in a local part.
const LOCAL: u8 = 1;
/// [`CLASS`] bit: may be in a domain label.
const LABEL: u8 = 2;

/// Per byte, its [`LOCAL`] and [`LABEL`] bits: one load per byte where the character tests
/// cost several comparisons (the domain and local part are walked byte by byte).
const CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'-' {
            table[b] = LOCAL | LABEL;
        } else if matches!(c, b'.' | b'_' | b'%' | b'+') {
            table[b] = LOCAL;
        }
        b += 1;
    }
    table
};

fn is_local(b: u8) -> bool {
    CLASS[usize::from(b)] & LOCAL != 0
}

fn is_label(b: u8) -> bool {
    CLASS[usize::from(b)] & LABEL != 0
}

/// End of a domain of two or more labels starting at `from`, if there is one. A trailing dot
/// (the end of a sentence) is not part of it.
fn domain_end(text: &[u8], from: usize) -> Option<usize> {
    let mut labels = 0;
    let mut at = from;
    let mut last_label = (from, from);
    loop {
        let start = at;
        while at < text.len() && is_label(text[at]) {
            at += 1;
        }
        if at == start {
            break;
        }
        labels += 1;
        last_label = (start, at);
        if text.get(at) == Some(&b'.') && text.get(at + 1).copied().is_some_and(is_label) {
            at += 1;
        } else {
            break;
        }
    }
    let tld = &text[last_label.0..last_label.1];
    (labels >= 2 && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic))
        .then_some(last_label.1)
}

#[cfg(test)]
mod tests {
    use super::{is_label, is_local};

    #[test]
    fn the_class_table_is_the_character_rules() {
        for b in 0..=u8::MAX {
            assert_eq!(
                is_local(b),
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-'),
                "{b:#x}"
            );
            assert_eq!(
                is_label(b),
                b.is_ascii_alphanumeric() || b == b'-',
                "{b:#x}"
            );
        }
    }
}
