//! Per result shape: [`RowPlan`], made once per RowDescription, applied to every DataRow value.
//!
//! Planning does the per-column work (pattern matching, type classification) once, so the
//! per-value path is an index, a match on a small enum, and — only for columns that need it —
//! a detector scan or a replacement.

use std::fmt;
use std::sync::Arc;

use crate::counts::MaskCounts;
use crate::kind::{Kind, ScanMode, bytea_decode, replace_whole};
use crate::policy::{Inner, MaskPolicy};
use crate::scan::{self, Hit};

/// One column of a RowDescription, as the engine knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column<'a> {
    /// The column name (the field name of the RowDescription: an alias if the query gave one).
    pub name: &'a str,
    /// `schema.table` or `table`, resolved by the engine from the table OID; `None` when the
    /// column is not a table column (an expression, OID 0) or the engine could not resolve it.
    pub table: Option<&'a str>,
    /// The type OID (a domain arrives as its base type).
    pub type_oid: u32,
    /// Binary format (format code 1) in this result.
    pub binary: bool,
}

/// What happens to one value. The engine writes `Replace` with its new length, `Null` as
/// length -1, and `Unchanged` as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Masked {
    /// Nothing to mask: forward the value as it is.
    Unchanged,
    /// The masked value, in the column's format.
    Replace(Vec<u8>),
    /// Send SQL NULL: the value had to be masked and this crate cannot build a valid masked
    /// value of its type in this format (see `docs/masking.md`).
    Null,
}

/// Per column: what to do with its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Forward untouched.
    Pass,
    /// Replace whole values in the style of this column rule (index into the policy's rules).
    Whole(usize),
    /// Run the detectors.
    Scan(ScanMode),
}

/// The plan for one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Planned {
    /// What to do.
    action: Action,
    /// The column's type class.
    kind: Kind,
    /// Binary format.
    binary: bool,
}

/// The masking plan of one result shape. Owns a handle to its policy, so it can live in the
/// engine's session state for as long as the portal or statement it describes.
#[derive(Clone)]
pub struct RowPlan {
    /// Rules, styles, key.
    inner: Arc<Inner>,
    /// One entry per RowDescription column.
    columns: Vec<Planned>,
    /// No column needs work.
    noop: bool,
}

impl RowPlan {
    pub(crate) fn new(policy: &MaskPolicy, columns: &[Column<'_>]) -> RowPlan {
        let inner = &policy.inner;
        let detectors = inner.by_detector.iter().any(Option::is_some);
        let columns: Vec<Planned> = columns
            .iter()
            .map(|column| {
                let kind = Kind::of(column.type_oid);
                let rule = inner
                    .patterns
                    .iter()
                    .position(|pattern| pattern.matches(column.name, column.table));
                let action = match rule {
                    Some(rule) => Action::Whole(rule),
                    None if detectors => match ScanMode::of(kind, column.binary) {
                        ScanMode::Skip => Action::Pass,
                        mode => Action::Scan(mode),
                    },
                    None => Action::Pass,
                };
                Planned {
                    action,
                    kind,
                    binary: column.binary,
                }
            })
            .collect();
        let noop = columns.iter().all(|planned| planned.action == Action::Pass);
        RowPlan {
            inner: Arc::clone(inner),
            columns,
            noop,
        }
    }

    /// True when no column needs work: the engine may forward DataRows without looking at
    /// them.
    pub fn is_noop(&self) -> bool {
        self.noop
    }

    /// Number of planned columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// True for a result without columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The name of the column rule that masks column `index` whole, if any (for audit and
    /// `explain` output).
    pub fn column_rule(&self, index: usize) -> Option<&str> {
        match self.columns.get(index)?.action {
            Action::Whole(rule) => Some(&self.inner.columns[rule].name),
            _ => None,
        }
    }

    /// True when the detectors scan column `index`.
    pub fn scans(&self, index: usize) -> bool {
        matches!(
            self.columns.get(index).map(|planned| planned.action),
            Some(Action::Scan(_))
        )
    }

    /// Masks one non-NULL value of column `index` (NULLs need no masking and are not passed).
    /// A column rule replaces the whole value; detectors replace only what they find (a card
    /// number inside a free-text note). Values of columns beyond the RowDescription (which a
    /// correct server never sends) are scanned as opaque: a match makes them NULL.
    pub fn mask_value(&self, index: usize, value: &[u8], counts: &mut MaskCounts) -> Masked {
        let planned = match self.columns.get(index) {
            Some(planned) => *planned,
            None if self.inner.by_detector.iter().any(Option::is_some) => Planned {
                action: Action::Scan(ScanMode::Null),
                kind: Kind::Unknown,
                binary: true,
            },
            None => return Masked::Unchanged,
        };
        match planned.action {
            Action::Pass => Masked::Unchanged,
            Action::Whole(rule) => {
                counts.add(&self.inner.column_names[rule], 1);
                replace_whole(
                    planned.kind,
                    planned.binary,
                    self.inner.columns[rule].style,
                    &self.inner.hasher,
                    value,
                )
            }
            Action::Scan(mode) => self.scan(mode, planned, value, counts),
        }
    }

    fn scan(
        &self,
        mode: ScanMode,
        planned: Planned,
        value: &[u8],
        counts: &mut MaskCounts,
    ) -> Masked {
        let inner = &*self.inner;
        let mut hits = Vec::new();
        match mode {
            ScanMode::Skip => Masked::Unchanged,
            ScanMode::InPlace => {
                scan::scan(&inner.by_detector, value, &mut hits);
                if hits.is_empty() {
                    return Masked::Unchanged;
                }
                match scan::rewrite(inner, value, &hits, false, counts) {
                    Ok(masked) => Masked::Replace(masked),
                    // Only JSON rewriting refuses.
                    Err(_) => self.whole_for(planned, &hits, value, counts),
                }
            }
            ScanMode::Json => {
                let (prefix, json) = match (planned.kind, planned.binary) {
                    (Kind::Jsonb, true) => match value.split_first() {
                        Some((1, json)) => (Some(1u8), json),
                        // An unknown jsonb version: opaque.
                        _ => return self.null_on_hit(value, counts),
                    },
                    _ => (None, value),
                };
                scan::scan(&inner.by_detector, json, &mut hits);
                if hits.is_empty() {
                    return Masked::Unchanged;
                }
                let mut scratch = MaskCounts::new();
                match scan::rewrite(inner, json, &hits, true, &mut scratch) {
                    Ok(masked) => {
                        counts.merge(&scratch);
                        Masked::Replace(match prefix {
                            Some(version) => {
                                let mut out = Vec::with_capacity(1 + masked.len());
                                out.push(version);
                                out.extend(masked);
                                out
                            }
                            None => masked,
                        })
                    }
                    Err(_) => self.whole_for(planned, &hits, value, counts),
                }
            }
            ScanMode::Whole => {
                let decoded;
                let bytes = match (planned.kind, planned.binary) {
                    (Kind::Bytea, false) => {
                        decoded = bytea_decode(value);
                        decoded.as_deref().unwrap_or(value)
                    }
                    _ => value,
                };
                scan::scan(&inner.by_detector, bytes, &mut hits);
                if hits.is_empty() {
                    return Masked::Unchanged;
                }
                self.whole_for(planned, &hits, value, counts)
            }
            ScanMode::Null => self.null_on_hit(value, counts),
        }
    }

    /// Replaces the whole value in the style of the first hit's rule, counting every hit.
    fn whole_for(
        &self,
        planned: Planned,
        hits: &[Hit],
        value: &[u8],
        counts: &mut MaskCounts,
    ) -> Masked {
        let inner = &*self.inner;
        scan::count_hits(inner, hits, counts);
        let Some(rule) = hits.first().and_then(|hit| scan::rule_of(inner, hit)) else {
            return Masked::Null;
        };
        replace_whole(
            planned.kind,
            planned.binary,
            inner.detectors[rule].style,
            &inner.hasher,
            value,
        )
    }

    /// Scans opaque bytes; any hit makes the value NULL.
    fn null_on_hit(&self, value: &[u8], counts: &mut MaskCounts) -> Masked {
        let mut hits = Vec::new();
        scan::scan(&self.inner.by_detector, value, &mut hits);
        if hits.is_empty() {
            return Masked::Unchanged;
        }
        scan::count_hits(&self.inner, &hits, counts);
        Masked::Null
    }
}

impl fmt::Debug for RowPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowPlan")
            .field("columns", &self.columns)
            .field("noop", &self.noop)
            .finish_non_exhaustive()
    }
}
