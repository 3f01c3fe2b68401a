//! Behaviour tests for the whole crate, one file per concern, sharing the helpers below.

mod binary;
mod detectors;
mod plan;
mod property;
mod styles;
mod text;

use crate::scan::{self, Hit};
use crate::{Column, ColumnRule, Detector, DetectorRule, MaskCounts, MaskPolicy, Masked, Style};

/// The key every test policy uses unless a test is about keys.
const KEY: [u8; 32] = [42; 32];

/// A policy from short rule descriptions; panics if it is refused.
fn policy(columns: &[(&str, &str, Style)], detectors: &[(&str, Detector, Style)]) -> MaskPolicy {
    policy_with_key(columns, detectors, KEY)
}

fn policy_with_key(
    columns: &[(&str, &str, Style)],
    detectors: &[(&str, Detector, Style)],
    key: [u8; 32],
) -> MaskPolicy {
    let columns = columns
        .iter()
        .map(|(name, column, style)| ColumnRule {
            name: (*name).into(),
            column: (*column).into(),
            style: *style,
        })
        .collect();
    let detectors = detectors
        .iter()
        .map(|(name, detector, style)| DetectorRule {
            name: (*name).into(),
            detector: *detector,
            style: *style,
        })
        .collect();
    match MaskPolicy::new(columns, detectors, key) {
        Ok(policy) => policy,
        Err(error) => panic!("policy refused: {error}"),
    }
}

/// Every detector redacting, each rule named after its detector.
fn all_detectors(style: Style) -> MaskPolicy {
    let rules: Vec<(&str, Detector, Style)> = Detector::ALL
        .iter()
        .map(|detector| (detector.as_str(), *detector, style))
        .collect();
    policy(&[], &rules)
}

/// What one detector alone finds in `text`, as substrings.
fn found(detector: Detector, text: &str) -> Vec<String> {
    let mut by_detector = [None; 6];
    by_detector[detector.index()] = Some(0);
    let mut hits: Vec<Hit> = Vec::new();
    scan::scan(&by_detector, text.as_bytes(), &mut hits);
    hits.iter()
        .map(|hit| text[hit.start..hit.end].to_string())
        .collect()
}

/// A text-format column.
fn text_column(name: &str) -> Column<'_> {
    Column {
        name,
        table: None,
        type_oid: 25,
        binary: false,
    }
}

/// Masks one value of a single-column result.
fn mask_one(policy: &MaskPolicy, column: Column<'_>, value: &[u8]) -> (Masked, MaskCounts) {
    let plan = policy.plan(&[column]);
    let mut counts = MaskCounts::new();
    let masked = plan.mask_value(0, value, &mut counts);
    (masked, counts)
}

/// The replaced bytes as text; panics on Unchanged or Null.
fn replaced(masked: &Masked) -> String {
    match masked {
        Masked::Replace(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        other => panic!("expected a replacement, got {other:?}"),
    }
}
