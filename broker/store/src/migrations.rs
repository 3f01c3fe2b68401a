//! The schema, embedded in the binary and applied by sqlx's runtime migrator (no `macros`
//! feature, so no second build of sqlx for a proc-macro).
//!
//! Applied versions and their checksums are kept in `_sqlx_migrations`; opening runs whatever
//! is missing, so opening again is a no-op. A file migrated by a newer build (a version this
//! one does not know) or whose applied migration text differs is refused at open.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// Every migration, oldest first: (version, description, SQL). Append only.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "grants", include_str!("../migrations/0001_grants.sql")),
    (
        2,
        "revoked tokens",
        include_str!("../migrations/0002_revoked_tokens.sql"),
    ),
    (3, "audit", include_str!("../migrations/0003_audit.sql")),
    (
        4,
        "sessions",
        include_str!("../migrations/0004_sessions.sql"),
    ),
];

/// The migrator for [`MIGRATIONS`].
pub(crate) fn migrator() -> Migrator {
    migrator_up_to(i64::MAX)
}

/// The migrator for the migrations up to `last` (tests: a file an older build created).
pub(crate) fn migrator_up_to(last: i64) -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .filter(|&&(version, _, _)| version <= last)
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}
