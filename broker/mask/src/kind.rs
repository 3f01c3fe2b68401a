//! What a column's type allows: how a whole value is replaced so that it stays valid for its
//! type and format, and how the detectors may look inside it.
//!
//! Drivers decode by type OID in both formats (JDBC's `getInt` on `****` throws, so does
//! asyncpg on a four-byte int4 that is not four bytes), so a masked value keeps its type:
//!
//! | kind | `redact` | `last4` | `hash` |
//! |---|---|---|---|
//! | text-like | `****` | `*…*1234` | `h:<16 hex>` |
//! | json, jsonb | `"****"` | `"*…*1234"` | `"h:<16 hex>"` (a JSON string) |
//! | int2/4/8 | 0 | last four digits (values of 8+ digits), else 0 | keyed number |
//! | float4/8 | 0 | 0 | keyed integer |
//! | numeric | 0 | last four integer digits (8+ digits), else 0 | keyed integer |
//! | uuid | nil UUID | nil but the last four hex digits | keyed UUID (version 8) |
//! | bytea | bytes `****` | `*` bytes but the last four | bytes `h:<16 hex>` |
//! | anything else | NULL | NULL | NULL |
//!
//! Keyed numbers and UUIDs are computed from the value's canonical text (`42`, the hyphenated
//! UUID), so the text and binary formats of one value give the same pseudonym.

use crate::plan::Masked;
use crate::policy::Style;
use crate::style::{Hasher, REDACTED, push_styled};

/// The type classes masking distinguishes, from the RowDescription type OID. Domains arrive
/// as their base type (PostgreSQL sends the base type's OID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// text, varchar, bpchar, name, xml, unknown: both formats are the characters.
    Text,
    /// json: both formats are the JSON text.
    Json,
    /// jsonb: text format is the JSON text; binary is a version byte (1) then the JSON text.
    Jsonb,
    /// int2, int4, int8 (width in bytes).
    Int(u8),
    /// float4.
    Float4,
    /// float8.
    Float8,
    /// numeric.
    Numeric,
    /// uuid.
    Uuid,
    /// bytea.
    Bytea,
    /// Arrays of text-like elements: text format can be rewritten in place.
    TextArray,
    /// Other known arrays.
    OtherArray,
    /// Scalars whose text can hold none of the detected shapes and which have no sensible
    /// masked value: bool, dates and times, network addresses, money, geometric types...
    Scalar,
    /// An OID this crate does not know (extensions such as citext or hstore, enums,
    /// composites): text format is treated as text; binary is opaque.
    Unknown,
}

impl Kind {
    pub(crate) fn of(oid: u32) -> Kind {
        match oid {
            25 | 1043 | 1042 | 19 | 142 | 705 => Kind::Text,
            114 => Kind::Json,
            3802 => Kind::Jsonb,
            21 => Kind::Int(2),
            23 => Kind::Int(4),
            20 => Kind::Int(8),
            700 => Kind::Float4,
            701 => Kind::Float8,
            1700 => Kind::Numeric,
            2950 => Kind::Uuid,
            17 => Kind::Bytea,
            // text[], varchar[], bpchar[], name[], xml[], json[], jsonb[]
            1009 | 1015 | 1014 | 1003 | 143 | 199 | 3807 => Kind::TextArray,
            // bool[], int2[], int4[], int8[], float4[], float8[], numeric[], uuid[], bytea[],
            // date[], time[], timestamp[], timestamptz[], interval[], inet[], cidr[], oid[]
            1000 | 1005 | 1007 | 1016 | 1021 | 1022 | 1231 | 2951 | 1001 | 1182 | 1183 | 1115
            | 1185 | 1187 | 1041 | 651 | 1028 => Kind::OtherArray,
            // bool, "char", oid, tid, xid, cid, date, time, timetz, timestamp, timestamptz,
            // interval, inet, cidr, macaddr, macaddr8, money, pg_lsn, geometric, bit, varbit
            16
            | 18
            | 26
            | 27
            | 28
            | 29
            | 1082
            | 1083
            | 1266
            | 1114
            | 1184
            | 1186
            | 869
            | 650
            | 829
            | 774
            | 790
            | 3220
            | 600..=604
            | 628
            | 718
            | 1560
            | 1562 => Kind::Scalar,
            _ => Kind::Unknown,
        }
    }
}

/// How the detectors treat a value of one kind in one format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanMode {
    /// Not scanned: the type cannot carry text (binary numbers, dates, uuids...).
    Skip,
    /// Matches are replaced in place (text-like values, text-format text arrays).
    InPlace,
    /// Matches are replaced in place inside JSON text; binary jsonb keeps its version byte.
    Json,
    /// A match replaces the whole value with the type's masked value in the match's style
    /// (a card number stored as a bigint or numeric, a key in a bytea).
    Whole,
    /// A match makes the whole value NULL: an opaque binary value, or an array whose elements
    /// cannot hold the masked text.
    Null,
}

impl ScanMode {
    pub(crate) fn of(kind: Kind, binary: bool) -> ScanMode {
        match (kind, binary) {
            (Kind::Text, _) | (Kind::Unknown | Kind::TextArray, false) => ScanMode::InPlace,
            (Kind::Json | Kind::Jsonb, _) => ScanMode::Json,
            (Kind::Int(_) | Kind::Float4 | Kind::Float8 | Kind::Numeric, false)
            | (Kind::Bytea, _) => ScanMode::Whole,
            (Kind::Int(_) | Kind::Float4 | Kind::Float8 | Kind::Numeric, true)
            | (Kind::Uuid | Kind::Scalar, _) => ScanMode::Skip,
            (Kind::Unknown | Kind::TextArray, true) | (Kind::OtherArray, _) => ScanMode::Null,
        }
    }
}

/// Replaces a whole value of `kind` in `style`, keeping it valid for its type and format.
pub(crate) fn replace_whole(
    kind: Kind,
    binary: bool,
    style: Style,
    hasher: &Hasher,
    value: &[u8],
) -> Masked {
    let replaced = match kind {
        Kind::Text => Some(styled(style, hasher, value)),
        Kind::Unknown if !binary => Some(styled(style, hasher, value)),
        Kind::Json => Some(json_string(style, hasher, value)),
        Kind::Jsonb if !binary => Some(json_string(style, hasher, value)),
        Kind::Jsonb => match value.split_first() {
            Some((1, json)) => {
                let mut out = vec![1];
                out.extend(json_string(style, hasher, json));
                Some(out)
            }
            _ => None,
        },
        Kind::Int(width) => int(width, binary, style, hasher, value),
        Kind::Float4 | Kind::Float8 => float(kind == Kind::Float8, binary, style, hasher, value),
        Kind::Numeric => numeric(binary, style, hasher, value),
        Kind::Uuid => uuid(binary, style, hasher, value),
        Kind::Bytea => Some(bytea(binary, style, hasher, value)),
        Kind::Unknown | Kind::TextArray | Kind::OtherArray | Kind::Scalar => None,
    };
    replaced.map_or(Masked::Null, Masked::Replace)
}

fn styled(style: Style, hasher: &Hasher, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len().max(18));
    push_styled(style, hasher, value, value, &mut out);
    out
}

/// The masked value as a JSON string literal. For a JSON string without escapes, `last4`
/// and `hash` work on its content (so `"ada@example.com"` in a json column and
/// `ada@example.com` in a text column share a pseudonym); otherwise on the JSON text as sent.
fn json_string(style: Style, hasher: &Hasher, json: &[u8]) -> Vec<u8> {
    let content = match json.trim_ascii() {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => inner,
        _ => json,
    };
    let mut masked = Vec::with_capacity(18);
    push_styled(style, hasher, content, content, &mut masked);
    let mut out = Vec::with_capacity(masked.len() + 2);
    out.push(b'"');
    for &b in &masked {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
    out
}

/// The decimal digits of an integer's canonical text, without its sign.
fn last4_of_digits(digits: &str) -> u64 {
    let digits = digits.trim_start_matches('-');
    if digits.len() < crate::style::LAST4_MIN_CHARS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    digits[digits.len() - 4..].parse().unwrap_or(0)
}

fn int(width: u8, binary: bool, style: Style, hasher: &Hasher, value: &[u8]) -> Option<Vec<u8>> {
    let parsed: i64 = if binary {
        match *value {
            [a, b] if width == 2 => i64::from(i16::from_be_bytes([a, b])),
            [a, b, c, d] if width == 4 => i64::from(i32::from_be_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] if width == 8 => i64::from_be_bytes([a, b, c, d, e, f, g, h]),
            _ => return None,
        }
    } else {
        std::str::from_utf8(value).ok()?.trim().parse().ok()?
    };
    let canonical = parsed.to_string();
    let masked: u64 = match style {
        Style::Redact => 0,
        Style::Last4 => last4_of_digits(&canonical),
        Style::Hash => {
            let modulus = match width {
                2 => 1 << 15,
                4 => 1 << 31,
                _ => 1 << 63,
            };
            hasher.number(canonical.as_bytes()) % modulus
        }
    };
    Some(if binary {
        // `masked` fits the width: below 2^(8·width−1), or at most 9999.
        let bytes = masked.to_be_bytes();
        bytes[8 - usize::from(width)..].to_vec()
    } else {
        masked.to_string().into_bytes()
    })
}

fn float(
    double: bool,
    binary: bool,
    style: Style,
    hasher: &Hasher,
    value: &[u8],
) -> Option<Vec<u8>> {
    let canonical = if binary {
        match *value {
            [a, b, c, d] if !double => f32::from_be_bytes([a, b, c, d]).to_string(),
            [a, b, c, d, e, f, g, h] if double => {
                f64::from_be_bytes([a, b, c, d, e, f, g, h]).to_string()
            }
            _ => return None,
        }
    } else {
        let text = std::str::from_utf8(value).ok()?.trim();
        if double {
            text.parse::<f64>().ok()?.to_string()
        } else {
            text.parse::<f32>().ok()?.to_string()
        }
    };
    let masked = match style {
        Style::Redact | Style::Last4 => 0,
        // Integers below 2^24 (2^53) are exact in a float4 (float8).
        Style::Hash => hasher.number(canonical.as_bytes()) % if double { 1 << 53 } else { 1 << 24 },
    };
    Some(match (binary, double) {
        (false, _) => masked.to_string().into_bytes(),
        #[allow(clippy::cast_precision_loss)]
        (true, false) => (masked as f32).to_be_bytes().to_vec(),
        #[allow(clippy::cast_precision_loss)]
        (true, true) => (masked as f64).to_be_bytes().to_vec(),
    })
}

fn numeric(binary: bool, style: Style, hasher: &Hasher, value: &[u8]) -> Option<Vec<u8>> {
    let canonical = if binary {
        numeric_text(value)?
    } else {
        std::str::from_utf8(value).ok()?.trim().to_string()
    };
    let masked = match style {
        Style::Redact => 0,
        Style::Last4 => last4_of_digits(canonical.split('.').next().unwrap_or("")),
        Style::Hash => hasher.number(canonical.as_bytes()) % 1_000_000_000_000_000,
    };
    Some(if binary {
        numeric_binary(masked)
    } else {
        masked.to_string().into_bytes()
    })
}

/// PostgreSQL's binary numeric (`ndigits`, `weight`, `sign`, `dscale`, base-10000 digits) as
/// its canonical text.
fn numeric_text(value: &[u8]) -> Option<String> {
    let word = |at: usize| {
        value
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let ndigits = usize::from(word(0)?);
    #[allow(clippy::cast_possible_wrap)]
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = usize::from(word(6)? & 0x3fff);
    if value.len() != 8 + 2 * ndigits {
        return None;
    }
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    let digit = |i: i32| -> u16 {
        usize::try_from(i)
            .ok()
            .filter(|&i| i < ndigits)
            .and_then(|i| word(8 + 2 * i))
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&digit(0).to_string());
        for i in 1..=weight {
            text.push_str(&format!("{:04}", digit(i)));
        }
    }
    if dscale > 0 {
        text.push('.');
        let mut fraction = String::new();
        let mut i = weight + 1;
        while fraction.len() < dscale {
            fraction.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        fraction.truncate(dscale);
        text.push_str(&fraction);
    }
    Some(text)
}

/// A non-negative integer as PostgreSQL's binary numeric (scale 0).
fn numeric_binary(mut n: u64) -> Vec<u8> {
    let mut digits = Vec::new();
    while n > 0 {
        // Below 10000: fits a u16.
        digits.push(u16::try_from(n % 10_000).unwrap_or(0));
        n /= 10_000;
    }
    digits.reverse();
    let weight = digits.len().saturating_sub(1);
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let mut out = Vec::with_capacity(8 + 2 * digits.len());
    let as_u16 = |n: usize| u16::try_from(n).unwrap_or(0);
    out.extend_from_slice(&as_u16(digits.len()).to_be_bytes());
    out.extend_from_slice(&as_u16(weight).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    for digit in digits {
        out.extend_from_slice(&digit.to_be_bytes());
    }
    out
}

fn uuid(binary: bool, style: Style, hasher: &Hasher, value: &[u8]) -> Option<Vec<u8>> {
    let bytes: [u8; 16] = if binary {
        value.try_into().ok()?
    } else {
        let mut bytes = [0u8; 16];
        let mut nibbles = 0;
        for &b in value {
            let nibble = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                b'-' | b'{' | b'}' => continue,
                _ => return None,
            };
            if nibbles == 32 {
                return None;
            }
            bytes[nibbles / 2] |= if nibbles % 2 == 0 {
                nibble << 4
            } else {
                nibble
            };
            nibbles += 1;
        }
        if nibbles != 32 {
            return None;
        }
        bytes
    };
    let mut masked = [0u8; 16];
    match style {
        Style::Redact => {}
        Style::Last4 => masked[14..].copy_from_slice(&bytes[14..]),
        Style::Hash => {
            let tag = hasher.tag(uuid_text(&bytes).as_bytes());
            masked.copy_from_slice(&tag[..16]);
            // RFC 9562 version 8 (custom), variant 10.
            masked[6] = (masked[6] & 0x0f) | 0x80;
            masked[8] = (masked[8] & 0x3f) | 0x80;
        }
    }
    Some(if binary {
        masked.to_vec()
    } else {
        uuid_text(&masked).into_bytes()
    })
}

fn uuid_text(bytes: &[u8; 16]) -> String {
    let mut text = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// bytea: the bytes are masked (text format arrives as `\x` hex and leaves as `\x` hex).
fn bytea(binary: bool, style: Style, hasher: &Hasher, value: &[u8]) -> Vec<u8> {
    let decoded;
    let bytes = if binary {
        value
    } else {
        decoded = bytea_decode(value);
        decoded.as_deref().unwrap_or(value)
    };
    let mut masked = Vec::with_capacity(18);
    match style {
        Style::Redact => masked.extend_from_slice(REDACTED),
        Style::Last4 if bytes.len() < crate::style::LAST4_MIN_CHARS => {
            masked.extend_from_slice(REDACTED)
        }
        Style::Last4 => {
            masked.extend(std::iter::repeat_n(b'*', bytes.len() - 4));
            masked.extend_from_slice(&bytes[bytes.len() - 4..]);
        }
        Style::Hash => hasher.push_text(bytes, &mut masked),
    }
    if binary {
        return masked;
    }
    let mut out = Vec::with_capacity(2 + 2 * masked.len());
    out.extend_from_slice(b"\\x");
    for byte in masked {
        out.extend_from_slice(format!("{byte:02x}").as_bytes());
    }
    out
}

/// Decodes bytea's hex text output (`\x...`); `None` for the escape format or bad hex.
pub(crate) fn bytea_decode(text: &[u8]) -> Option<Vec<u8>> {
    let hex = text.strip_prefix(b"\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    hex.chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
pub(crate) fn test_numeric_text(value: &[u8]) -> Option<String> {
    numeric_text(value)
}

#[cfg(test)]
pub(crate) fn test_numeric_binary(n: u64) -> Vec<u8> {
    numeric_binary(n)
}
