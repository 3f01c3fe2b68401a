//! A masking profile: column rules, detector rules and the hash key, validated once.
//!
//! [`MaskPolicy::new`] compiles column patterns (globs and `re:` DFAs) and the HMAC key, and
//! refuses what would make a rule ambiguous: empty or duplicate rule names, a detector named by
//! two rules, a pattern that does not compile. The compiled form lives behind an `Arc` so a
//! [`RowPlan`] can own a handle to it and outlive the borrow that made it.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::counts::MaskCounts;
use crate::pattern::ColumnPattern;
use crate::plan::{Column, RowPlan};
use crate::style::Hasher;

/// How a masked value (or a detected substring) is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Style {
    /// Replaced by `****` (text) or the type's neutral value (see `docs/masking.md`). The
    /// length of the original is not revealed.
    Redact,
    /// Every character but the last four becomes `*`; values shorter than eight characters are
    /// redacted whole, since four characters of a short value are most of it.
    Last4,
    /// `h:` and the first 16 hex digits of HMAC-SHA256(key, value): the same input gives the
    /// same output under one key, so joins and group-bys still work. Pseudonymisation, not
    /// anonymisation.
    Hash,
}

impl Style {
    /// Every style, in documentation order.
    pub const ALL: [Style; 3] = [Style::Redact, Style::Last4, Style::Hash];

    /// The configuration spelling: `redact`, `last4`, `hash`.
    pub fn as_str(self) -> &'static str {
        match self {
            Style::Redact => "redact",
            Style::Last4 => "last4",
            Style::Hash => "hash",
        }
    }

    /// Parses the configuration spelling.
    pub fn parse(text: &str) -> Option<Style> {
        Style::ALL.into_iter().find(|style| style.as_str() == text)
    }
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A content detector: finds sensitive substrings wherever they are, whatever the column is
/// called. Exactly what each one matches is in `docs/masking.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detector {
    /// Payment card numbers: 13–19 digits, plain or in the usual 4-4-4-4 / 4-6-5 groups
    /// separated by spaces or dashes, a known issuer prefix, Luhn-valid.
    CardNumber,
    /// Email addresses (ASCII).
    Email,
    /// US social security numbers `AAA-GG-SSSS` (dashes or spaces), never-issued ranges excluded.
    UsSsn,
    /// IBANs: country code, check digits, the country's length, mod-97 verified.
    Iban,
    /// Phone numbers: E.164 (`+CC…`), North American and trunk-prefix (`0…`) national formats.
    Phone,
    /// Credentials: AWS access key ids, GitHub and Slack tokens, JWTs, PEM private key blocks,
    /// Stripe live keys.
    Secret,
}

impl Detector {
    /// Every detector, in documentation order (also the index order used internally).
    pub const ALL: [Detector; 6] = [
        Detector::CardNumber,
        Detector::Email,
        Detector::UsSsn,
        Detector::Iban,
        Detector::Phone,
        Detector::Secret,
    ];

    /// The configuration spelling: `card`, `email`, `ssn`, `iban`, `phone`, `secret`.
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::CardNumber => "card",
            Detector::Email => "email",
            Detector::UsSsn => "ssn",
            Detector::Iban => "iban",
            Detector::Phone => "phone",
            Detector::Secret => "secret",
        }
    }

    /// Parses the configuration spelling.
    pub fn parse(text: &str) -> Option<Detector> {
        Detector::ALL
            .into_iter()
            .find(|detector| detector.as_str() == text)
    }

    /// Position in [`Detector::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Masks whole values of the columns whose name matches `column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRule {
    /// Rule name, reported in audit counts.
    pub name: String,
    /// `column`, `table.column` or `schema.table.column`, each part a glob (`*`, `?`),
    /// case-insensitive; or `re:<regex>` matched against the column name alone.
    pub column: String,
    /// How matching values are rewritten.
    pub style: Style,
}

/// Masks the substrings a detector finds in any scanned value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorRule {
    /// Rule name, reported in audit counts.
    pub name: String,
    /// What to look for.
    pub detector: Detector,
    /// How each match is rewritten.
    pub style: Style,
}

/// Why a masking profile was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A rule without a name could not be reported in audit counts.
    #[error("a masking rule has an empty name")]
    EmptyName,
    /// Two rules share a name, so their counts would merge.
    #[error("two masking rules are named `{name}`")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// The same detector in two rules would leave it unclear which style applies.
    #[error("masking rule `{name}`: detector `{detector}` is already used by rule `{first}`")]
    DuplicateDetector {
        /// The later rule.
        name: String,
        /// The detector both name.
        detector: Detector,
        /// The earlier rule.
        first: String,
    },
    /// A column pattern that cannot be used.
    #[error("masking rule `{name}`: column pattern `{pattern}`: {reason}")]
    BadPattern {
        /// The rule.
        name: String,
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A validated masking profile. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct MaskPolicy {
    /// Shared with every [`RowPlan`] made from this policy.
    pub(crate) inner: Arc<Inner>,
}

/// The compiled profile.
pub(crate) struct Inner {
    /// Column rules as given, for [`MaskPolicy::columns`].
    pub(crate) columns: Vec<ColumnRule>,
    /// Compiled `columns[i].column`.
    pub(crate) patterns: Vec<ColumnPattern>,
    /// `columns[i].name`, shared with [`MaskCounts`] entries so counting never allocates.
    pub(crate) column_names: Vec<Arc<str>>,
    /// Detector rules as given.
    pub(crate) detectors: Vec<DetectorRule>,
    /// `detectors[i].name`, shared with [`MaskCounts`].
    pub(crate) detector_names: Vec<Arc<str>>,
    /// For each detector in [`Detector::ALL`] order, the rule (index into `detectors`) using it.
    pub(crate) by_detector: [Option<usize>; 6],
    /// The HMAC key, ready to sign.
    pub(crate) hasher: Hasher,
}

impl MaskPolicy {
    /// Validates and compiles a profile. `key` keys the `hash` style; keep it secret and stable
    /// (changing it changes every pseudonym).
    pub fn new(
        columns: Vec<ColumnRule>,
        detectors: Vec<DetectorRule>,
        key: [u8; 32],
    ) -> Result<MaskPolicy, PolicyError> {
        let mut seen: Vec<&str> = Vec::new();
        for name in columns
            .iter()
            .map(|rule| rule.name.as_str())
            .chain(detectors.iter().map(|rule| rule.name.as_str()))
        {
            if name.is_empty() {
                return Err(PolicyError::EmptyName);
            }
            if seen.contains(&name) {
                return Err(PolicyError::DuplicateName { name: name.into() });
            }
            seen.push(name);
        }
        let mut by_detector = [None; 6];
        for (index, rule) in detectors.iter().enumerate() {
            let slot = &mut by_detector[rule.detector.index()];
            if let Some(first) = *slot {
                let first: &DetectorRule = &detectors[first];
                return Err(PolicyError::DuplicateDetector {
                    name: rule.name.clone(),
                    detector: rule.detector,
                    first: first.name.clone(),
                });
            }
            *slot = Some(index);
        }
        let patterns = columns
            .iter()
            .map(|rule| {
                ColumnPattern::compile(&rule.column).map_err(|reason| PolicyError::BadPattern {
                    name: rule.name.clone(),
                    pattern: rule.column.clone(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MaskPolicy {
            inner: Arc::new(Inner {
                column_names: columns
                    .iter()
                    .map(|rule| Arc::from(rule.name.as_str()))
                    .collect(),
                detector_names: detectors
                    .iter()
                    .map(|rule| Arc::from(rule.name.as_str()))
                    .collect(),
                columns,
                patterns,
                detectors,
                by_detector,
                hasher: Hasher::new(&key),
            }),
        })
    }

    /// The column rules, in order (the first matching rule wins).
    pub fn columns(&self) -> &[ColumnRule] {
        &self.inner.columns
    }

    /// The detector rules.
    pub fn detectors(&self) -> &[DetectorRule] {
        &self.inner.detectors
    }

    /// True when the profile has no rules at all: every plan is a no-op.
    pub fn is_empty(&self) -> bool {
        self.inner.columns.is_empty() && self.inner.detectors.is_empty()
    }

    /// Plans one result shape (once per RowDescription): per column, whether a column rule
    /// masks it whole (the first matching rule), whether the detectors scan it, or neither.
    pub fn plan(&self, columns: &[Column<'_>]) -> RowPlan {
        RowPlan::new(self, columns)
    }

    /// Masks free text (NOTICE/ERROR fields such as a unique-violation DETAIL that quotes a
    /// value): every detector runs, each match is replaced in place. Column rules do not apply:
    /// free text has no columns.
    pub fn mask_text<'t>(&self, text: &'t str, counts: &mut MaskCounts) -> Cow<'t, str> {
        crate::text::mask_text(&self.inner, text, counts)
    }

    /// [`MaskPolicy::mask_text`] for bytes that need not be UTF-8 (COPY TO STDOUT data in the
    /// session's client encoding): the detectors only match ASCII, and only matched ASCII spans
    /// are replaced, so every other byte passes unchanged.
    pub fn mask_bytes<'t>(&self, bytes: &'t [u8], counts: &mut MaskCounts) -> Cow<'t, [u8]> {
        crate::text::mask_bytes(&self.inner, bytes, counts)
    }
}

impl fmt::Debug for MaskPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskPolicy")
            .field("columns", &self.inner.columns)
            .field("detectors", &self.inner.detectors)
            .field("key", &"[redacted]")
            .finish()
    }
}
