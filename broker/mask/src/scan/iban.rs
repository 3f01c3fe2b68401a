//! International bank account numbers (ISO 13616).
//!
//! Two upper-case letters naming a country of the IBAN registry, two check digits, then the
//! country's exact number of upper-case letters and digits in total, optionally grouped by
//! single spaces (`DE89 3704 0044 0532 0130 00`). The mod-97 check must give 1. Lower-case
//! IBANs are not matched.

use super::{Hit, is_alnum};
use crate::policy::Detector;

/// The shortest IBAN (Norway).
pub(super) const MIN_LEN: usize = 15;

/// The longest IBAN.
const MAX_LEN: usize = 34;

pub(super) fn find(text: &[u8], hits: &mut Vec<Hit>) {
    let mut at = 0;
    while at + MIN_LEN <= text.len() {
        if !text[at].is_ascii_uppercase() {
            at += 1;
            continue;
        }
        if let Some(end) = iban_at(text, at) {
            hits.push(Hit {
                start: at,
                end,
                detector: Detector::Iban,
            });
            at = end;
        } else {
            at += 1;
        }
    }
}

/// The end of an IBAN starting at `start`, if one does.
fn iban_at(text: &[u8], start: usize) -> Option<usize> {
    let head = text.get(start..start + 4)?;
    if !(head[0].is_ascii_uppercase()
        && head[1].is_ascii_uppercase()
        && head[2].is_ascii_digit()
        && head[3].is_ascii_digit())
    {
        return None;
    }
    if start > 0 && is_alnum(text[start - 1]) {
        return None;
    }
    let len = country_length([head[0], head[1]])?;
    let mut compact = [0u8; MAX_LEN];
    let mut count = 0;
    let mut at = start;
    while count < len {
        match text.get(at) {
            Some(&b) if b.is_ascii_uppercase() || b.is_ascii_digit() => {
                compact[count] = b;
                count += 1;
                at += 1;
            }
            Some(b' ')
                if text
                    .get(at + 1)
                    .is_some_and(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
            {
                at += 1;
            }
            _ => return None,
        }
    }
    if text.get(at).copied().is_some_and(is_alnum) {
        return None;
    }
    let check = u32::from(head[2] - b'0') * 10 + u32::from(head[3] - b'0');
    ((2..=98).contains(&check) && mod97(&compact[..len]) == 1).then_some(at)
}

/// ISO 7064 MOD 97-10 of an IBAN: the first four characters moved to the end, letters as
/// 10–35.
pub(crate) fn mod97(iban: &[u8]) -> u32 {
    iban[4..]
        .iter()
        .chain(&iban[..4])
        .fold(0u32, |acc, &b| match b {
            b'0'..=b'9' => (acc * 10 + u32::from(b - b'0')) % 97,
            _ => (acc * 100 + u32::from(b - b'A') + 10) % 97,
        })
}

/// Total IBAN length by country (SWIFT IBAN registry).
fn country_length(country: [u8; 2]) -> Option<usize> {
    let len = match &country {
        b"NO" => 15,
        b"BE" => 16,
        b"DK" | b"FI" | b"FK" | b"FO" | b"GL" | b"NL" | b"SD" => 18,
        b"MK" | b"SI" => 19,
        b"AT" | b"BA" | b"EE" | b"KZ" | b"LT" | b"LU" | b"MN" | b"XK" => 20,
        b"CH" | b"HR" | b"LI" | b"LV" => 21,
        b"BG" | b"BH" | b"CR" | b"DE" | b"GB" | b"GE" | b"IE" | b"ME" | b"RS" | b"VA" => 22,
        b"AE" | b"GI" | b"IL" | b"IQ" | b"OM" | b"SO" | b"TL" => 23,
        b"AD" | b"CZ" | b"ES" | b"MD" | b"PK" | b"RO" | b"SA" | b"SE" | b"SK" | b"TN" | b"VG" => 24,
        b"LY" | b"PT" | b"ST" => 25,
        b"IS" | b"TR" => 26,
        b"BI" | b"DJ" | b"FR" | b"GR" | b"IT" | b"MC" | b"MR" | b"SM" => 27,
        b"AL" | b"AZ" | b"BY" | b"CY" | b"DO" | b"GT" | b"HN" | b"HU" | b"LB" | b"NI" | b"PL"
        | b"SV" => 28,
        b"BR" | b"EG" | b"PS" | b"QA" | b"UA" => 29,
        b"JO" | b"KW" | b"MU" | b"YE" => 30,
        b"MT" | b"SC" => 31,
        b"LC" => 32,
        b"RU" => 33,
        _ => return None,
    };
    Some(len)
}
