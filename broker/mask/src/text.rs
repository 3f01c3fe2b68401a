//! Free text: NOTICE/ERROR fields and COPY TO STDOUT data. Only the detectors apply.

use std::borrow::Cow;

use crate::counts::MaskCounts;
use crate::policy::Inner;
use crate::scan;

pub(crate) fn mask_text<'t>(inner: &Inner, text: &'t str, counts: &mut MaskCounts) -> Cow<'t, str> {
    match mask_bytes(inner, text.as_bytes(), counts) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        // Only ASCII spans were replaced, by ASCII or by characters copied from the span, so
        // the result is UTF-8; the lossy path never runs.
        Cow::Owned(bytes) => Cow::Owned(
            String::from_utf8(bytes)
                .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned()),
        ),
    }
}

pub(crate) fn mask_bytes<'t>(
    inner: &Inner,
    bytes: &'t [u8],
    counts: &mut MaskCounts,
) -> Cow<'t, [u8]> {
    let mut hits = Vec::new();
    scan::scan(&inner.by_detector, bytes, &mut hits);
    if hits.is_empty() {
        return Cow::Borrowed(bytes);
    }
    match scan::rewrite(inner, bytes, &hits, false, counts) {
        Ok(masked) => Cow::Owned(masked),
        // Not JSON: never refused. Should it be, nothing is better than the clear text.
        Err(_) => Cow::Owned(crate::style::REDACTED.to_vec()),
    }
}
