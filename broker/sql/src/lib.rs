//! Statement facts and the guard decision: what a SQL statement does, and whether a role may
//! run it. Pure: no I/O, no async, no global state beyond an optional cache.
//!
//! ```text
//!  SQL text ──postgres::classify / Classifier──▶ [StatementFacts]  (one per statement)
//!                                                     │
//!                       GuardPolicy { profile, rules }│
//!                                                     ▼
//!                                   GuardPolicy::decide ──▶ Verdict: Allow | Block | Hold
//! ```
//!
//! - [`facts`] is the dialect-neutral interface: classes, tables, functions, the shape of a
//!   `WHERE`, and the flags the guard refuses on. A MySQL engine built on `sqlparser` is to
//!   produce the same type.
//! - [`postgres`] produces facts with PostgreSQL's own grammar (libpg_query via `pg_query`),
//!   so what the server would run is exactly what gets classified.
//! - [`guard`] decides on facts alone: custom rules first, then the built-in profile
//!   (`read-only`, `guarded-write`, `admin`). Unparsable text is refused under the guarded
//!   profiles (fail closed).
//! - [`postgres::lineage`] works out which base-table columns flow into each result column,
//!   each stored value and each side-channel payload of a statement, so that masking can
//!   follow values through expressions, views and writes rather than trust RowDescription.
//!
//! See `docs/guardrails.md` for the user-facing description.

pub mod facts;
pub mod guard;
pub mod postgres;

pub use facts::{
    CopyDirection, CopyFacts, CopyTarget, PreparedRef, SideEffectKind, StatementClass,
    StatementFacts, TableRef, WhereFacts, WriteFacts, harmless_setting, side_effect_kind,
};
pub use guard::{Action, GuardPolicy, GuardRule, NoPrepared, PreparedLookup, Profile, Verdict};
pub use postgres::lineage::{
    BaseColumn, ColumnLineage, Deferred, NoRelations, Output, Relations, SideChannel,
    StatementLineage, StoredValue, lineage,
};
pub use postgres::{Classifier, classify};
