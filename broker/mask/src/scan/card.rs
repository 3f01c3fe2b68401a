//! Payment card numbers (PAN).
//!
//! A candidate is a run of digit groups separated by one kind of separator (a space or a dash).
//! Any window of consecutive groups is a card number when, together:
//!
//! - its layout is a real one: one group of 13–19 digits; or groups of four with a last group
//!   of one to four (`4-4-4-4`, `4-4-4-1`, `4-4-4-4-3`); or `4-6-5` (Amex), `4-6-4` (Diners);
//! - it starts with a known issuer prefix (Visa 4, Mastercard 51–55 and 2221–2720, Maestro and
//!   others 5x and 6x, Amex 34/37, Diners 300–305/36/38/39, JCB 3528–3589, Mir 2200–2204,
//!   RuPay 81/82);
//! - it passes the Luhn check;
//! - it is not glued to a letter or digit, and is not part of a decimal or a time.
//!
//! Windows let a card number be found inside a longer group run (`... 4111 1111 1111 1111 2024`),
//! but digits inside one group are never split: a 20-digit run is not searched for a 16-digit
//! card, so long identifiers and hex digests are left alone.

use super::{Hit, digits_end, next_digit, number_ends, number_starts};
use crate::policy::Detector;

/// Groups read per candidate. A longer run is read again from its last `OVERLAP` groups, so a
/// card number straddling the cut is still seen whole.
const MAX_GROUPS: usize = 16;

/// More groups than the longest layout has (five).
const OVERLAP: usize = 5;

pub(super) fn find(text: &[u8], hits: &mut Vec<Hit>) {
    let mut from = 0;
    // Filled afresh for each candidate; only `..count` is read.
    let mut groups = [(0usize, 0usize); MAX_GROUPS];
    while let Some(start) = next_digit(text, from) {
        let run_end = digits_end(text, start);
        let continues = matches!(text.get(run_end), Some(b' ' | b'-'))
            && text.get(run_end + 1).is_some_and(u8::is_ascii_digit);
        if !continues && run_end - start < 13 {
            // A lone short number (most digit runs): no card can be read from it.
            from = run_end;
            continue;
        }
        let mut count = 0;
        let mut separator = None;
        let mut at = start;
        // The run stopped at a different separator (`7 5555-5555-...`): its last group may
        // begin the next run.
        let mut switched = false;
        loop {
            let end = digits_end(text, at);
            groups[count] = (at, end);
            count += 1;
            at = end;
            if count == MAX_GROUPS {
                break;
            }
            match (text.get(at), text.get(at + 1)) {
                (Some(&sep @ (b' ' | b'-')), Some(next))
                    if next.is_ascii_digit() && separator.is_none_or(|s| s == sep) =>
                {
                    separator = Some(sep);
                    at += 1;
                }
                (Some(b' ' | b'-'), Some(next)) if next.is_ascii_digit() => {
                    switched = true;
                    break;
                }
                _ => break,
            }
        }
        from = if count == MAX_GROUPS {
            groups[MAX_GROUPS - OVERLAP].0
        } else if switched && count > 1 {
            groups[count - 1].0
        } else {
            groups[count - 1].1
        };
        let total: usize = groups[..count].iter().map(|(start, end)| end - start).sum();
        let mut first = if total < 13 { count } else { 0 };
        'windows: while first < count {
            for last in (first..count).rev() {
                let (start, end) = (groups[first].0, groups[last].1);
                if (first > 0 || number_starts(text, start))
                    && (last + 1 < count || number_ends(text, end))
                    && is_card(text, &groups[first..=last])
                {
                    hits.push(Hit {
                        start,
                        end,
                        detector: Detector::CardNumber,
                    });
                    first = last + 1;
                    continue 'windows;
                }
            }
            first += 1;
        }
    }
}

/// Layout, issuer prefix and Luhn for one window of groups.
fn is_card(text: &[u8], groups: &[(usize, usize)]) -> bool {
    let len_of = |i: usize| groups[i].1 - groups[i].0;
    let n = groups.len();
    if !(13..=19).contains(&(0..n).map(len_of).sum::<usize>()) {
        return false;
    }
    let layout = n == 1
        || ((0..n - 1).all(|i| len_of(i) == 4) && (1..=4).contains(&len_of(n - 1)))
        || (n == 3 && len_of(0) == 4 && len_of(1) == 6 && matches!(len_of(2), 4 | 5));
    if !layout {
        return false;
    }
    let mut digits = [0u8; 19];
    let mut len = 0;
    for &(start, end) in groups {
        for &b in &text[start..end] {
            digits[len] = b - b'0';
            len += 1;
        }
    }
    let digits = &digits[..len];
    known_issuer(digits) && luhn(digits)
}

/// Issuer identification prefixes of the major networks (digit values, not ASCII).
fn known_issuer(d: &[u8]) -> bool {
    let prefix = |n: usize| d[..n].iter().fold(0u32, |acc, &x| acc * 10 + u32::from(x));
    match d[0] {
        4..=6 => true,
        3 => {
            matches!(prefix(2), 34 | 36..=39)
                || (300..=305).contains(&prefix(3))
                || (3528..=3589).contains(&prefix(4))
        }
        2 => (2200..=2204).contains(&prefix(4)) || (2221..=2720).contains(&prefix(4)),
        8 => matches!(prefix(2), 81 | 82),
        _ => false,
    }
}

/// The Luhn (mod 10) check over digit values.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}
