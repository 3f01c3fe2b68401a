//! The two databases the store runs on, and the little SQL that differs between them.
//!
//! Every query goes through sqlx's `Any` driver with numbered placeholders (`$1`, `$2`, ...),
//! which both SQLite and PostgreSQL read, so one text serves both. What cannot be shared is
//! here: how a write transaction starts, which column orders rows by insertion, how a JSON field
//! is compared, and row locks. [`Sql`] builds the few queries whose shape depends on the input
//! (filters, lists), numbering placeholders as values are bound.

use crate::StoreError;
use sqlx::AnyPool;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Arguments, AssertSqlSafe, Encode, Transaction, Type};
use std::fmt::Write as _;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// One file, one broker (the embedded default).
    Sqlite,
    /// A server several brokers share.
    Postgres,
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dialect::Sqlite => "SQLite",
            Dialect::Postgres => "PostgreSQL",
        })
    }
}

impl Dialect {
    /// Starts a transaction that writes. SQLite takes its write lock first (`IMMEDIATE`), so
    /// a waiting writer queues on the busy timeout instead of failing when it upgrades a read;
    /// PostgreSQL's row locks and compare-and-set `UPDATE`s order writers by themselves.
    pub(crate) async fn begin_write(
        self,
        pool: &AnyPool,
    ) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self {
            Dialect::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => pool.begin().await,
        }
    }

    /// Starts a transaction whose reads all see one snapshot (SQLite's deferred transaction
    /// does; PostgreSQL's default `READ COMMITTED` takes a new snapshot per statement).
    pub(crate) async fn begin_snapshot(
        self,
        pool: &AnyPool,
    ) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self {
            Dialect::Sqlite => pool.begin().await,
            Dialect::Postgres => {
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
            }
        }
    }

    /// The column that orders a table's rows by insertion.
    pub(crate) fn insertion_order(self) -> &'static str {
        match self {
            Dialect::Sqlite => "rowid",
            Dialect::Postgres => "seq",
        }
    }

    /// `approval.expires_at` of a grant row as an integer.
    pub(crate) fn approval_expires_at(self) -> &'static str {
        match self {
            Dialect::Sqlite => "json_extract(approval, '$.expires_at')",
            Dialect::Postgres => "(approval::json ->> 'expires_at')::bigint",
        }
    }

    /// A `SELECT`'s suffix that locks the rows it reads until the transaction ends (SQLite
    /// needs none: its write transaction holds the whole database).
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}

/// A query whose text is assembled from pieces, each bound value a numbered placeholder.
pub(crate) struct Sql {
    text: String,
    args: AnyArguments,
    bound: usize,
    error: Option<sqlx::error::BoxDynError>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: AnyArguments::default(),
            bound: 0,
            error: None,
        }
    }

    /// Appends text as it is (never a value: values go through [`Sql::bind`]).
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub(crate) fn bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'t, Any> + Type<Any>,
    {
        self.bound += 1;
        let _ = write!(self.text, "${}", self.bound);
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// `, `-separated placeholders for `values`.
    pub(crate) fn bind_list<'t, T>(&mut self, values: impl IntoIterator<Item = T>) -> &mut Self
    where
        T: Encode<'t, Any> + Type<Any>,
    {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(value);
        }
        self
    }

    /// The query, ready to run; [`StoreError::Invalid`] if a value could not be bound.
    pub(crate) fn build(self) -> Result<Query<'static, Any, AnyArguments>, StoreError> {
        match self.error {
            Some(e) => Err(StoreError::Invalid {
                what: format!("a value of the query ({e})"),
            }),
            None => Ok(sqlx::query_with(AssertSqlSafe(self.text), self.args)),
        }
    }
}
