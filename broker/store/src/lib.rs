//! The broker's grant store: the only crate that speaks SQL to the broker's own database.
//!
//! Grants and approvers' votes live in one SQLite file (`store.sqlite` in the broker's
//! configuration), kept as the wire types of [`sluice_shared::grants`], so the API hands out what
//! it reads without a conversion layer. The same file keeps the session tokens revoked by logout
//! until they expire ([`Store::revoke_token`]), so a logout survives a restart, and the
//! hash-chained audit trail with its signed checkpoints ([`Store::append_audit`]).
//!
//! The store decides no policy. It persists, and it makes state changes compare-and-set
//! ([`Store::activate`], [`Store::finish`], [`Store::add_vote`]) so that races between the
//! broker's tasks resolve in the database: of two approvers, an approval and the approval
//! timeout, or a revoke and the expiry timer, exactly one wins and the others get
//! [`StoreError::NotInState`] with the state the winner left.
//!
//! ```text
//! sluiced API / timers ──► Store ──(sqlx pool, WAL, BEGIN IMMEDIATE)──► grants, grant_votes,
//!                                                                         revoked_tokens,
//! sluiced audit writer ──►                                                 audit_records,
//!                                                                         audit_checkpoints
//! ```
//!
//! Layout: `store.rs` the operations, `audit.rs` the audit trail's, `codec.rs` grants to
//! columns and back, `migrations.rs` the embedded schema, `error.rs` the error types.

mod audit;
mod backend;
mod changes;
mod codec;
mod copy;
mod error;
mod holds;
mod migrations;
mod sessions;
mod store;

pub use audit::AuditSlice;
pub use backend::Dialect;
pub use changes::{Change, Heard, Listener};
pub use copy::Copied;
pub use error::{OpenError, StoreError};
pub use holds::StoredHold;
pub use sessions::{INTERRUPTED, SILENT, SessionEnd, SessionFilter};
pub use store::{GrantFilter, Store};

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
