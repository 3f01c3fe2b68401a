//! Phone numbers. The hardest detector to keep quiet: dates, times, amounts, version numbers,
//! card numbers and plain integers are all digits with separators. Three shapes are matched:
//!
//! - **E.164**: `+`, then 8–15 digits in groups (a country code of one to three digits first
//!   when grouped), separated by spaces, dashes, dots or slashes, parentheses allowed
//!   (`+1 (415) 555-2671`, `+44 20 7946 0958`, `+14155552671`);
//! - **North American**: `AAA-EEE-SSSS` with one separator kind (`-`, `.`, space), or
//!   `(AAA) EEE-SSSS`, optionally after `1`; area and exchange start with 2–9;
//! - **trunk prefix**: a first group of 2–5 digits starting with `0` (`020`, `(030)`, `06`),
//!   then groups of 2–8 digits, 9–12 digits in all, one separator kind
//!   (`020 7946 0958`, `0171-1234567`, `06 12 34 56 78`).
//!
//! Never matched: digits without a `+` or separator (integers), anything glued to letters
//! (`2024-01-15T10:23`), followed by `:` (times) or by a fraction, and groups read across a
//! change of separator (`01.02.2023 10`). Dates fail the shapes: `2024-01-15` is neither North
//! American nor trunk-prefixed, `01-02-2023` has eight digits.

use super::{Hit, digits_end, is_alnum, next_digit, number_ends};
use crate::policy::Detector;

/// Groups read per candidate. A longer run is read again from its last `OVERLAP` groups, so a
/// number straddling the cut is still seen whole.
const MAX_GROUPS: usize = 16;

/// More groups than any matched shape has.
const OVERLAP: usize = 7;

/// One digit group of a candidate.
#[derive(Debug, Clone, Copy, Default)]
struct Group {
    /// First byte (the `(` of a parenthesised group).
    start: usize,
    /// One past the last byte (past the `)`).
    end: usize,
    /// Number of digits (a longer run is no phone group anyway).
    digits: u32,
    /// First digit.
    lead: u8,
    /// In parentheses.
    paren: bool,
    /// The separator before it (0: none, or the first group).
    sep: u8,
}

pub(super) fn find(text: &[u8], hits: &mut Vec<Hit>) {
    let mut at = 0;
    // Where a cut-off run resumes: its start is mid-run, so the start check does not apply.
    let mut resume = usize::MAX;
    // Filled afresh for each candidate; only `..count` is read.
    let mut buffer = [Group::default(); MAX_GROUPS];
    while at < text.len() {
        if !matches!(text[at], b'0'..=b'9' | b'+' | b'(') {
            // Every candidate has a digit at its start or right after its `+` or `(`.
            let Some(digit) = next_digit(text, at) else {
                break;
            };
            at = if digit > at && matches!(text[digit - 1], b'+' | b'(') {
                digit - 1
            } else {
                digit
            };
        }
        let b = text[at];
        if at != resume && !starts(text, at) {
            at = if b.is_ascii_digit() {
                digits_end(text, at)
            } else {
                at + 1
            };
            continue;
        }
        let plus = b == b'+';
        if b.is_ascii_digit() {
            // Most digit runs are plain numbers: no separator, no shape to read.
            let end = digits_end(text, at);
            let continues = matches!(text.get(end), Some(b' ' | b'-' | b'.' | b'/'))
                && text
                    .get(end + 1)
                    .is_some_and(|b| b.is_ascii_digit() || *b == b'(');
            if !continues {
                at = end;
                continue;
            }
        }
        let count = read_groups(text, at + usize::from(plus), &mut buffer);
        if count == 0 {
            at += 1;
            continue;
        }
        let groups = &buffer[..count];
        let next = groups[count - 1].end;
        if total_digits(groups) < 8 {
            // Too few digits for any shape.
        } else if plus {
            if let Some(last) = (0..count)
                .rev()
                .find(|&last| number_ends(text, groups[last].end) && e164(&groups[..=last]))
            {
                push(hits, at, groups[last].end);
            }
        } else {
            let mut first = 0;
            'windows: while first < count {
                if !can_start(&groups[first]) {
                    first += 1;
                    continue;
                }
                for last in (first..count).rev() {
                    let window = &groups[first..=last];
                    if number_ends(text, groups[last].end)
                        && (north_american(window) || trunk_prefix(window))
                    {
                        push(hits, groups[first].start, groups[last].end);
                        first = last + 1;
                        continue 'windows;
                    }
                }
                first += 1;
            }
        }
        at = if count == MAX_GROUPS {
            resume = groups[MAX_GROUPS - OVERLAP].start;
            resume
        } else {
            next.max(at + 1)
        };
    }
}

fn push(hits: &mut Vec<Hit>, start: usize, end: usize) {
    hits.push(Hit {
        start,
        end,
        detector: Detector::Phone,
    });
}

/// A candidate may start here: not glued to a letter, a digit or a `+`, nor the fraction of a
/// decimal or a time.
fn starts(text: &[u8], at: usize) -> bool {
    if at == 0 {
        return true;
    }
    let before = text[at - 1];
    let glued = is_alnum(before) || before == b'+' || before == b')';
    let continues =
        matches!(before, b'.' | b':' | b'-' | b'/') && at >= 2 && text[at - 2].is_ascii_digit();
    !(glued || continues)
}

/// Reads digit groups from `at`; returns how many.
fn read_groups(text: &[u8], mut at: usize, groups: &mut [Group; MAX_GROUPS]) -> usize {
    let mut count = 0;
    let mut sep = 0;
    while count < MAX_GROUPS {
        let group = match text.get(at) {
            Some(b'(') => {
                let digits_end = digits_end(text, at + 1);
                let digits = digits_end - (at + 1);
                if !(1..=5).contains(&digits) || text.get(digits_end) != Some(&b')') {
                    break;
                }
                let digits = u32::try_from(digits).unwrap_or(u32::MAX);
                Group {
                    start: at,
                    end: digits_end + 1,
                    digits,
                    lead: text[at + 1],
                    paren: true,
                    sep,
                }
            }
            Some(b) if b.is_ascii_digit() => {
                let end = digits_end(text, at);
                Group {
                    start: at,
                    end,
                    digits: u32::try_from(end - at).unwrap_or(u32::MAX),
                    lead: *b,
                    paren: false,
                    sep,
                }
            }
            _ => break,
        };
        groups[count] = group;
        count += 1;
        at = group.end;
        let continues = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_digit() || *b == b'(');
        match text.get(at) {
            Some(&s @ (b' ' | b'-' | b'.' | b'/')) if continues(text.get(at + 1)) => {
                sep = s;
                at += 1;
            }
            // `(415)555-2671`: no separator after a parenthesised group.
            Some(b) if group.paren && b.is_ascii_digit() => sep = 0,
            _ => break,
        }
    }
    count
}

fn total_digits(groups: &[Group]) -> u32 {
    groups
        .iter()
        .fold(0u32, |sum, group| sum.saturating_add(group.digits))
}

/// Can a North American or trunk-prefix number start with this group?
fn can_start(group: &Group) -> bool {
    match group.lead {
        b'0' => (2..=5).contains(&group.digits),
        b'1' => group.digits == 1 || (group.digits == 3 && group.paren),
        _ => group.digits == 3,
    }
}

/// `+` then 8–15 digits; when grouped, a country code of one to three digits first.
fn e164(groups: &[Group]) -> bool {
    let digits = total_digits(groups);
    (8..=15).contains(&digits)
        && !groups[0].paren
        && (groups.len() == 1 || (1..=3).contains(&groups[0].digits))
        && groups[0].lead != b'0'
}

/// `[1 ]AAA-EEE-SSSS`, `[1 ](AAA) EEE-SSSS`.
fn north_american(groups: &[Group]) -> bool {
    let rest = match groups {
        [one, rest @ ..]
            if rest.len() == 3 && one.digits == 1 && one.lead == b'1' && !one.paren =>
        {
            rest
        }
        _ => groups,
    };
    let [area, exchange, subscriber] = rest else {
        return false;
    };
    if area.digits != 3
        || exchange.digits != 3
        || subscriber.digits != 4
        || exchange.paren
        || subscriber.paren
        || !(b'2'..=b'9').contains(&area.lead)
        || !(b'2'..=b'9').contains(&exchange.lead)
    {
        return false;
    }
    if area.paren {
        matches!(exchange.sep, 0 | b' ') && matches!(subscriber.sep, b'-' | b'.' | b' ')
    } else {
        exchange.sep == subscriber.sep && matches!(exchange.sep, b'-' | b'.' | b' ')
    }
}

/// A first group `0…` of 2–5 digits, then groups of 2–8, 9–12 digits, one separator kind.
fn trunk_prefix(groups: &[Group]) -> bool {
    let [first, rest @ ..] = groups else {
        return false;
    };
    if rest.is_empty()
        || first.lead != b'0'
        || !(2..=5).contains(&first.digits)
        || !(9..=12).contains(&total_digits(groups))
    {
        return false;
    }
    let separators_from = usize::from(first.paren);
    let sep = rest[separators_from.min(rest.len() - 1)].sep;
    rest.iter()
        .all(|group| !group.paren && (2..=8).contains(&group.digits))
        && rest[separators_from..].iter().all(|group| group.sep == sep)
        && (!first.paren || matches!(rest[0].sep, 0 | b' '))
        && (sep != 0 || first.paren)
}
