//! What can go wrong in the store, split so the broker can answer each case differently:
//! races lost on a transition ([`StoreError::NotInState`], [`StoreError::AlreadyVoted`]) are
//! ordinary answers for the API, while [`StoreError::Corrupt`] and [`StoreError::Database`] are
//! operator problems.
//!
//! Display strings do not repeat their source: print errors with their cause chain
//! (`{err:#}` through anyhow).

use sluice_shared::grants::GrantState;
use std::path::PathBuf;

/// An error from [`Store`](crate::Store).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or brought up to the current schema.
    #[error("cannot open the grant store {location}")]
    Open {
        /// The SQLite file, or the PostgreSQL URL without its password.
        location: String,
        /// Why.
        #[source]
        source: OpenError,
    },
    /// No grant has that id.
    #[error("no such grant")]
    NotFound,
    /// A compare-and-set transition or a vote found the grant in another state: someone else
    /// (another approver, the expiry timer, a revoke) got there first.
    #[error("the grant is {actual}")]
    NotInState {
        /// The state the grant is in now.
        actual: GrantState,
    },
    /// This approver has already voted on this grant.
    #[error("this approver has already voted on the grant")]
    AlreadyVoted,
    /// A grant with this id is already stored.
    #[error("a grant with id {id} already exists")]
    Duplicate {
        /// The id.
        id: String,
    },
    /// The caller passed something the store cannot keep (a time beyond `i64::MAX`, the
    /// `unknown` state, a non-final target for `finish`). A bug in the caller, not in the data.
    #[error("cannot store {what}")]
    Invalid {
        /// What was wrong, in words.
        what: String,
    },
    /// A stored row cannot be read back as a grant (an unknown state string, a negative time,
    /// malformed JSON). Never papered over: the database was edited or damaged.
    #[error("stored grant {id} is corrupt: {what}")]
    Corrupt {
        /// The grant's id.
        id: String,
        /// What was wrong, in words.
        what: String,
    },
    /// A stored token revocation cannot be read back (a negative time). Never papered over:
    /// the database was edited or damaged.
    #[error("stored revocation of session token {token_id} is corrupt: {what}")]
    CorruptRevocation {
        /// The revoked token's id.
        token_id: String,
        /// What was wrong, in words.
        what: String,
    },
    /// A stored session cannot be read back (a negative count, CI claims that are not a JSON
    /// object). Never papered over: the database was edited or damaged.
    #[error("stored session {id} is corrupt: {what}")]
    CorruptSession {
        /// The session's id.
        id: String,
        /// What was wrong, in words.
        what: String,
    },
    /// A stored audit record or checkpoint cannot be read back (a negative number, `data` that
    /// is not a JSON object). Never papered over: the audit trail was changed outside the
    /// broker.
    #[error("stored audit {row} is corrupt: {what}")]
    CorruptAudit {
        /// Which row, in words (`record 17`, `checkpoint 100`).
        row: String,
        /// What was wrong, in words.
        what: String,
    },
    /// Another writer appended to the audit trail first: the batch was not written; chain it
    /// onto `head` and append again.
    #[error("the audit trail moved on to seq {} (another writer appended)", head.seq)]
    AuditHeadMoved {
        /// Where the trail ends now.
        head: sluice_shared::audit::Head,
    },
    /// The database failed (I/O error, disk full, lock wait beyond the busy timeout, the
    /// server unreachable, ...).
    #[error("grant store query failed")]
    Database(#[from] sqlx::Error),
}

/// Why [`Store::open`](crate::Store::open) failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// SQLite creates the file but not its directory.
    #[error("its directory {} does not exist (create it, or fix `store.sqlite`)", dir.display())]
    MissingDirectory {
        /// The missing directory.
        dir: PathBuf,
    },
    /// The database refused (SQLite: not a database, permissions, locked; PostgreSQL:
    /// unreachable, authentication, TLS, ...).
    #[error("could not connect to it")]
    Connect(#[source] sqlx::Error),
    /// A newer `sluiced` migrated it: this build does not know its schema.
    #[error(
        "its schema is version {found}, newer than this sluiced knows ({known}): run a sluiced at \
         least as new as the one that migrated it (replicas are upgraded one at a time, never \
         downgraded)"
    )]
    Newer {
        /// The newest migration applied to the database.
        found: i64,
        /// The newest this build has.
        known: i64,
    },
    /// A migration failed, or the database was migrated by a modified build.
    #[error("its schema could not be brought up to date")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}
