//! US social security numbers: `AAA-GG-SSSS` or `AAA GG SSSS` (one kind of separator).
//!
//! Never-issued numbers are not matched: area `000`, `666` or `900`–`999`, group `00`,
//! serial `0000`. Nine digits without separators are not matched (any nine-digit number would
//! be), nor a dashed triple glued to more of a dashed identifier (`12-123-45-6789`,
//! `123-45-6789-01`).

use super::{Hit, digits_end, is_alnum, next_digit};
use crate::policy::Detector;

pub(super) fn find(text: &[u8], hits: &mut Vec<Hit>) {
    let mut from = 0;
    while let Some(start) = next_digit(text, from) {
        let area_end = digits_end(text, start);
        from = area_end;
        if area_end - start != 3 || !starts(text, start) {
            continue;
        }
        let Some(&separator @ (b'-' | b' ')) = text.get(area_end) else {
            continue;
        };
        let group = area_end + 1;
        if digits_end(text, group) != group + 2 || text.get(group + 2) != Some(&separator) {
            continue;
        }
        let serial = group + 3;
        let end = digits_end(text, serial);
        if end != serial + 4 || !ends(text, end) {
            continue;
        }
        let number = |from: usize, to: usize| {
            text[from..to]
                .iter()
                .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'))
        };
        let area = number(start, area_end);
        if area == 0 || area == 666 || area >= 900 {
            continue;
        }
        if number(group, group + 2) == 0 || number(serial, end) == 0 {
            continue;
        }
        hits.push(Hit {
            start,
            end,
            detector: Detector::UsSsn,
        });
        from = end;
    }
}

/// Not glued to a letter or digit, nor to a dashed, dotted or slashed number before it.
fn starts(text: &[u8], start: usize) -> bool {
    if start == 0 {
        return true;
    }
    let before = text[start - 1];
    let continues = matches!(before, b'-' | b'.' | b'/' | b':')
        && start >= 2
        && text[start - 2].is_ascii_digit();
    !(is_alnum(before) || continues)
}

/// Not glued to a letter or digit, nor to a dashed, dotted or slashed number after it.
fn ends(text: &[u8], end: usize) -> bool {
    let Some(&after) = text.get(end) else {
        return true;
    };
    let continues = matches!(after, b'-' | b'.' | b'/' | b':')
        && text.get(end + 1).is_some_and(u8::is_ascii_digit);
    !(is_alnum(after) || continues)
}
