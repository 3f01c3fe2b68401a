//! Masking of result values: what a session's masking profile hides before a row, a COPY line
//! or an error message reaches the client (and the recording, which sees what the client sees).
//!
//! Pure and synchronous: no protocol, no I/O, no runtime. The PostgreSQL engine drives it:
//!
//! ```text
//!  MaskPolicy::new(column rules, detector rules, key)   once per profile (validated here)
//!        │
//!        ├─ plan(&[Column])            once per RowDescription: per column, masked whole by a
//!        │     └─▶ RowPlan             column rule, scanned by the detectors, or passed through
//!        │            └─ mask_value(i, bytes)   per DataRow value ─▶ Unchanged | Replace | Null
//!        │
//!        └─ mask_text / mask_bytes     free text: NOTICE/ERROR fields, COPY TO STDOUT data
//! ```
//!
//! [`RowPlan::is_noop`] lets the engine forward DataRows untouched when no column needs work.
//! Values that need work are rewritten whole ([`Masked::Replace`]) so the engine can fix the
//! length prefix; a binary-format value of a type this crate cannot rewrite safely becomes
//! [`Masked::Null`], never the raw value. `docs/masking.md` is the user-facing contract.
//!
//! Modules: [`policy`] (rules, validation, the key), `pattern` (column-name globs and `re:`),
//! [`plan`] (per-RowDescription planning and the per-value path), `kind` (what each type OID
//! allows), `scan` (the detectors), `style` (redact, last4, hash), [`counts`] (audit counts).

pub mod counts;
mod kind;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod oracle;
mod pattern;
pub mod plan;
pub mod policy;
mod scan;
mod style;
mod text;

pub use counts::MaskCounts;
pub use plan::{Column, Masked, RowPlan};
pub use policy::{ColumnRule, Detector, DetectorRule, MaskPolicy, PolicyError, Style};

#[cfg(test)]
mod tests;
