//! The three styles on text: `****`, keep-last-four, keyed hash. Typed values (integers, UUIDs,
//! ...) are built from the same pieces in `kind`.

use aws_lc_rs::hmac;

use crate::policy::Style;

/// What `redact` writes for text.
pub(crate) const REDACTED: &[u8] = b"****";

/// Values shorter than this many characters are redacted whole by `last4`.
pub(crate) const LAST4_MIN_CHARS: usize = 8;

/// HMAC-SHA256 under the profile key. `hmac::Key` keeps the padded key state, so each value
/// costs two SHA-256 compressions plus its own length.
pub(crate) struct Hasher {
    /// The keyed HMAC state; never printed.
    key: hmac::Key,
}

impl Hasher {
    pub(crate) fn new(key: &[u8; 32]) -> Hasher {
        Hasher {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// The full tag.
    pub(crate) fn tag(&self, data: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.key, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// The first eight bytes of the tag as an integer, for typed pseudonyms.
    pub(crate) fn number(&self, data: &[u8]) -> u64 {
        let tag = self.tag(data);
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag[..8]);
        u64::from_be_bytes(first)
    }

    /// Appends `h:` and the first 16 hex digits of the tag.
    pub(crate) fn push_text(&self, data: &[u8], out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let tag = self.tag(data);
        out.extend_from_slice(b"h:");
        for byte in &tag[..8] {
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        }
    }
}

/// Appends `raw` rewritten in `style`. `canonical` is what `hash` signs: the raw text for
/// column rules, a normalised form for detector matches (digits of a card number, a lowercased
/// email) so that the same value written two ways gets one pseudonym.
pub(crate) fn push_styled(
    style: Style,
    hasher: &Hasher,
    raw: &[u8],
    canonical: &[u8],
    out: &mut Vec<u8>,
) {
    match style {
        Style::Redact => out.extend_from_slice(REDACTED),
        Style::Last4 => push_last4(raw, out),
        Style::Hash => hasher.push_text(canonical, out),
    }
}

/// `*` for every character but the last four, which are kept. Short values, and values that
/// are not UTF-8 (their "characters" are unknowable), are redacted whole.
pub(crate) fn push_last4(raw: &[u8], out: &mut Vec<u8>) {
    let Ok(text) = std::str::from_utf8(raw) else {
        out.extend_from_slice(REDACTED);
        return;
    };
    let chars = text.chars().count();
    if chars < LAST4_MIN_CHARS {
        out.extend_from_slice(REDACTED);
        return;
    }
    let keep_from = text
        .char_indices()
        .nth(chars - 4)
        .map_or(text.len(), |(at, _)| at);
    out.extend(std::iter::repeat_n(b'*', chars - 4));
    out.extend_from_slice(&raw[keep_from..]);
}
