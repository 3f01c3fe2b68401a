//! The schema, embedded in the binary and applied by sqlx's runtime migrator (no `macros`
//! feature, so no second build of sqlx for a proc-macro).
//!
//! Applied versions and their checksums are kept in `_sqlx_migrations`; opening runs whatever
//! is missing, so opening again is a no-op. A database migrated by a newer build (a version
//! this one does not know) or whose applied migration text differs is refused at open. SQLite
//! and PostgreSQL each have their own files (`migrations/sqlite`, `migrations/postgres`) with
//! the same versions.

use crate::backend::Dialect;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One migration: (version, description, SQL).
type Step = (i64, &'static str, &'static str);

/// The SQLite schema, oldest first. Append only.
const SQLITE: &[Step] = &[
    (
        1,
        "grants",
        include_str!("../migrations/sqlite/0001_grants.sql"),
    ),
    (
        2,
        "revoked tokens",
        include_str!("../migrations/sqlite/0002_revoked_tokens.sql"),
    ),
    (
        3,
        "audit",
        include_str!("../migrations/sqlite/0003_audit.sql"),
    ),
    (
        4,
        "sessions",
        include_str!("../migrations/sqlite/0004_sessions.sql"),
    ),
    (
        5,
        "nodes",
        include_str!("../migrations/sqlite/0005_nodes.sql"),
    ),
    (
        6,
        "holds",
        include_str!("../migrations/sqlite/0006_holds.sql"),
    ),
];

/// The PostgreSQL schema: the same versions and tables in PostgreSQL's types. Append only, and
/// in step with [`SQLITE`] (a version means the same tables in both).
const POSTGRES: &[Step] = &[
    (
        1,
        "grants",
        include_str!("../migrations/postgres/0001_grants.sql"),
    ),
    (
        2,
        "revoked tokens",
        include_str!("../migrations/postgres/0002_revoked_tokens.sql"),
    ),
    (
        3,
        "audit",
        include_str!("../migrations/postgres/0003_audit.sql"),
    ),
    (
        4,
        "sessions",
        include_str!("../migrations/postgres/0004_sessions.sql"),
    ),
    (
        5,
        "nodes",
        include_str!("../migrations/postgres/0005_nodes.sql"),
    ),
    (
        6,
        "holds",
        include_str!("../migrations/postgres/0006_holds.sql"),
    ),
];

/// The migrator for `dialect`'s schema.
pub(crate) fn migrator(dialect: Dialect) -> Migrator {
    migrator_up_to(dialect, i64::MAX)
}

/// The migrator for the migrations up to `last` (tests: a database an older build created).
pub(crate) fn migrator_up_to(dialect: Dialect, last: i64) -> Migrator {
    let steps = match dialect {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    };
    Migrator::with_migrations(
        steps
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

#[cfg(test)]
mod tests {
    use super::{POSTGRES, SQLITE};

    #[test]
    fn both_schemas_have_the_same_versions() {
        let versions = |steps: &[super::Step]| {
            steps
                .iter()
                .map(|&(version, description, _)| (version, description))
                .collect::<Vec<_>>()
        };
        assert_eq!(versions(SQLITE), versions(POSTGRES));
    }
}
