//! Column lineage: which base-table columns flow into each result column of a statement, into
//! each value a write stores, and into values sent out through side channels (`pg_notify`,
//! `set_config`, large objects, logical messages, dblink).
//!
//! ```text
//!  text ──pg_query::parse──▶ raw parse tree ──Analyzer (per RawStmt)──▶ StatementLineage
//!                                               │   ▲
//!                      Relations::columns / view_definition / computes_from_arguments
//! ```
//!
//! Why it exists: the PostgreSQL engine masks a result column when RowDescription says it *is*
//! a table column. A value derived from a masked column any other way (`upper(email)`,
//! `row_to_json(p)`, a view renaming it, a `UNION` branch, a write into an unmasked column)
//! would leak. This module works out, from the statement text and what the caller knows about
//! relations, what every output column is made of, so the caller can mask by lineage.
//!
//! Pure: no I/O, no async. The caller answers [`Relations`] from the catalog.
//!
//! # How values flow
//!
//! - A column reference resolves against the `FROM` items in scope, innermost query level
//!   first, then outer levels (correlated subqueries). An unqualified name that several items
//!   have is the union of the candidates; a level holding an item whose columns are unknown
//!   makes every unqualified name of that level [`ColumnLineage::Unknown`]; a name found
//!   nowhere is `Unknown` (system columns such as `ctid` are `Constant`).
//! - `*`, `t.*` and whole-row references (`p`, `row_to_json(p)`, `p::text`, `ROW(p.*)`)
//!   expand to every column of the item; CTEs, subqueries and views expand to their own
//!   output lineage. A `*` over an item whose columns are unknown makes the whole output
//!   [`Output::Unknown`] (its width is unknown, so no position can be trusted).
//! - Expressions: a function or operator's result is derived from the union of its
//!   arguments. It is *revealing* unless it is one of the few that tell nothing about the
//!   value beyond a comparison: `count`, `length`/`char_length`/`character_length`/
//!   `octet_length`/`bit_length`, `num_nulls`/`num_nonnulls`, `IS [NOT] NULL`, `IS [NOT]
//!   TRUE/...`, comparison and matching operators, `AND`/`OR`/`NOT`, `IN`, `LIKE`, `BETWEEN`,
//!   `IS [NOT] DISTINCT FROM`, `EXISTS`, `ANY`/`ALL`, `IS JSON`, `JSON_EXISTS`. Sources seen
//!   only through those are reported apart ([`ColumnLineage::Derived`]'s `hidden`), so a
//!   caller can tell `count(email)` from `upper(email)` ([`ColumnLineage::is_revealing`],
//!   [`ColumnLineage::revealed_sources`]; [`ColumnLineage::sources`] gives both kinds).
//!   `md5` is deliberately **not** on that list: the hash of a card number, a social
//!   security number or an e-mail address is reversed by brute force or dictionary in
//!   seconds. Boolean results are on it although each reveals one bit (`email = 'guess'`):
//!   a `WHERE` clause can ask the same question.
//! - `COLLATE` keeps a value `Plain` (the value is unchanged); a cast makes it `Derived`.
//! - `CASE`: the results are revealing sources; the tested values and conditions are hidden
//!   sources. Aggregate `ORDER BY` and `FILTER`, and an inline window's `PARTITION BY` and
//!   `ORDER BY`, are hidden sources too (a named window, `OVER w`, adds none).
//! - Set operations: column *i* is the union of every branch's column *i*; it stays
//!   [`ColumnLineage::Plain`] only when every branch is the same plain column (a constant
//!   branch plus one plain column gives a revealing `Derived`).
//! - Recursive CTEs are iterated to a fixpoint (at most [`MAX_RECURSIVE_ROUNDS`] rounds,
//!   then `Unknown`). Views are analysed from [`Relations::view_definition`], recursively,
//!   at most [`MAX_VIEW_DEPTH`] deep; a view that reaches itself is `Unknown`.
//! - Writes: `UPDATE ... SET`, `INSERT ... SELECT/VALUES` (with `ON CONFLICT DO UPDATE`,
//!   whose `excluded.c` is what the insert would have stored in `c`), `MERGE` actions and
//!   `CREATE TABLE AS`/`SELECT INTO` report the lineage of every stored value that is not a
//!   constant ([`StoredValue`]). `RETURNING` sees the new row: an assigned column is the
//!   union of the column itself and the assigned value; `old.c` (PostgreSQL 18) is the column.
//!
//! # Functions: fail closed
//!
//! Whether a function reads only its arguments cannot be known from text: a user-defined
//! function's body can read any table (`select get_email(1)`), and so can a few built-ins
//! (`query_to_xml`, `ts_stat`, dblink). So a function is trusted only when
//! [`Relations::computes_from_arguments`] says so; its default accepts the PostgreSQL
//! built-ins listed in `lineage/functions.rs` when written unqualified or with `pg_catalog`.
//! Every other function call is `Unknown`, whatever its arguments, and so is a
//! set-returning function in `FROM` whose columns are not known. A caller that can ask the
//! catalog (or trusts more functions) overrides the method.
//!
//! Operators are trusted by symbol (the built-in operator set); an `OPERATOR(schema.op)`
//! outside `pg_catalog` or an unknown symbol is `Unknown`.
//!
//! # Limits
//!
//! - Only explicit data flows are tracked. Which rows are returned (`WHERE`, `JOIN ... ON`,
//!   `GROUP BY`, `LIMIT`) and their order are implicit flows and are not sources, so
//!   `select 1 from people where email like 'a%'` is `Constant`.
//! - A user-defined operator, cast or type input function that shares a built-in's name or
//!   symbol, or a function that shadows a built-in through `search_path` ahead of
//!   `pg_catalog`, is trusted like the built-in.
//! - Triggers, rules, column defaults, row security policies and the bodies of `DO` and
//!   `CALL` are not seen. `CALL`, `EXECUTE` and `FETCH` output is [`Output::Unknown`]:
//!   the caller maps `FETCH` to the cursor's `DECLARE` ([`Deferred::Cursor`]) and `EXECUTE`
//!   to its `PREPARE` ([`Deferred::Prepared`]).
//! - `current_setting` is trusted: a value laundered through `set_config` is reported as a
//!   side channel when it is set, not when it is read back. Other sessions' query texts
//!   (`pg_stat_activity.query`) are not table columns.
//! - Inheritance children and partitions are reported as the parent table's columns.
//! - A write through an updatable view is reported against the view's column, not the base
//!   table's.
//! - `unnest` in `FROM` is counted as one column per argument; over an array of rows
//!   PostgreSQL expands it to the row's columns. The width then disagrees with the server's
//!   and [`Output::for_fields`] masks every column.
//! - `EXPLAIN (ANALYZE false)` is treated as running the statement (more is reported, not
//!   less).
//! - Statistics catalogs (`pg_stats`, `pg_stats_ext`, `pg_stats_ext_exprs`, `pg_statistic`,
//!   `pg_statistic_ext_data`) hold samples of table values: their value columns are
//!   `Unknown`, their other columns plain catalog columns.
//! - `EXPLAIN` and `SHOW` output is [`Output::Constants`]: plans and settings hold no table
//!   values.
//! - Everything is bounded: expression and query nesting [`MAX_DEPTH`], a work budget per
//!   statement (see [`FUEL_BASE`]). A statement over a bound reports
//!   [`StatementLineage::incomplete`] and [`Output::Unknown`]; writes and side channels it
//!   did not finish are still reported, as `Unknown`, by a final sweep over the whole tree.
//!   The recursion uses about as much stack as `pg_query::parse` itself needs for the
//!   deepest tree it accepts (under 2 MiB in a debug build).

mod analyzer;
mod functions;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::ops::Range;

pub use functions::builtin_computes_from_arguments;

use analyzer::Analyzer;

/// Deeper expressions or query nestings than this are `Unknown`.
pub const MAX_DEPTH: usize = 200;
/// Views within views deeper than this are `Unknown`.
pub const MAX_VIEW_DEPTH: usize = 16;
/// Rounds of a recursive CTE before its columns are given up as `Unknown`.
pub const MAX_RECURSIVE_ROUNDS: usize = 8;
/// Analysis steps (nodes evaluated) per statement before it is given up: a base plus an
/// allowance per byte of statement text, so that a bulk `INSERT ... VALUES` is analysed
/// whole (a node costs one step and takes at least one byte) while what can blow up (rounds
/// of recursive CTEs nested in recursive CTEs) stays bounded.
pub const FUEL_BASE: usize = 200_000;
/// See [`FUEL_BASE`].
pub const FUEL_PER_BYTE: usize = 4;

/// A base-table column: schema when written (or as the view definition writes it), table,
/// column. Names are as PostgreSQL folds them: unquoted identifiers lower-cased, quoted ones
/// as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BaseColumn {
    /// The schema, when the statement (or view definition) qualifies the table.
    pub schema: Option<String>,
    /// The table (or catalog relation) name.
    pub table: String,
    /// The column name.
    pub column: String,
}

impl BaseColumn {
    /// A column of `table`, in `schema` when given.
    pub fn new(schema: Option<&str>, table: &str, column: &str) -> Self {
        BaseColumn {
            schema: schema.map(str::to_owned),
            table: table.to_owned(),
            column: column.to_owned(),
        }
    }
}

/// What flows into one value (an output column, a stored value, a side-channel payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnLineage {
    /// No table column flows in (constants, `count(*)`, `now()`, parameters).
    Constant,
    /// Exactly one base column, unchanged (through aliases, subqueries, CTEs, views,
    /// `COLLATE`, set-operation branches that are all this same column).
    Plain(BaseColumn),
    /// Computed from base columns. Invariant: the sets are disjoint and not both empty.
    Derived {
        /// Columns that reach the value through at least one revealing path: the value may
        /// show them, whole or in part (`upper(email)`, `substr(card, 1, 6)`).
        revealed: BTreeSet<BaseColumn>,
        /// Columns that reach the value only through functions and operators that reveal
        /// nothing of them beyond a comparison (`count(email)`, `email IS NULL`,
        /// `length(card)`, `email = 'x'`).
        hidden: BTreeSet<BaseColumn>,
    },
    /// Could not be worked out (an unknown function, relation or view, a whole-row reference
    /// to a table whose columns are unknown, a bound reached): mask it.
    Unknown,
}

impl ColumnLineage {
    /// A value derived from `revealed` (revealing) and `hidden` (non-revealing) columns;
    /// `Constant` when both are empty.
    pub fn derived(
        revealed: impl IntoIterator<Item = BaseColumn>,
        hidden: impl IntoIterator<Item = BaseColumn>,
    ) -> Self {
        let revealed: BTreeSet<BaseColumn> = revealed.into_iter().collect();
        let hidden: BTreeSet<BaseColumn> = hidden
            .into_iter()
            .filter(|c| !revealed.contains(c))
            .collect();
        if revealed.is_empty() && hidden.is_empty() {
            ColumnLineage::Constant
        } else {
            ColumnLineage::Derived { revealed, hidden }
        }
    }

    /// Whether the value may show something of a base column: true for `Plain`, `Unknown`
    /// and a `Derived` with a revealed source.
    pub fn is_revealing(&self) -> bool {
        match self {
            ColumnLineage::Constant => false,
            ColumnLineage::Plain(_) | ColumnLineage::Unknown => true,
            ColumnLineage::Derived { revealed, .. } => !revealed.is_empty(),
        }
    }

    /// The base columns the value may show (see [`ColumnLineage::is_revealing`]; empty for
    /// `Unknown`, which the caller masks regardless).
    pub fn revealed_sources(&self) -> Vec<&BaseColumn> {
        match self {
            ColumnLineage::Plain(c) => vec![c],
            ColumnLineage::Derived { revealed, .. } => revealed.iter().collect(),
            ColumnLineage::Constant | ColumnLineage::Unknown => Vec::new(),
        }
    }

    /// Every base column that flows in, revealing or not.
    pub fn sources(&self) -> Vec<&BaseColumn> {
        match self {
            ColumnLineage::Plain(c) => vec![c],
            ColumnLineage::Derived { revealed, hidden } => revealed.iter().chain(hidden).collect(),
            ColumnLineage::Constant | ColumnLineage::Unknown => Vec::new(),
        }
    }

    /// Both values flow into one (an expression over both): `Unknown` absorbs, `Constant`
    /// is neutral, anything else becomes `Derived` keeping each source's revealing state.
    fn and(self, other: ColumnLineage) -> ColumnLineage {
        use ColumnLineage::{Constant, Derived, Plain, Unknown};
        match (self, other) {
            (Unknown, _) | (_, Unknown) => Unknown,
            (Constant, x) | (x, Constant) => x,
            (a, b) => {
                let (mut revealed, mut hidden) = (BTreeSet::new(), BTreeSet::new());
                for side in [a, b] {
                    match side {
                        Plain(c) => {
                            revealed.insert(c);
                        }
                        Derived {
                            revealed: r,
                            hidden: h,
                        } => {
                            revealed.extend(r);
                            hidden.extend(h);
                        }
                        Constant | Unknown => {}
                    }
                }
                ColumnLineage::derived(revealed, hidden)
            }
        }
    }

    /// The value passed through a function or operator, revealing or not.
    fn through(self, revealing: bool) -> ColumnLineage {
        use ColumnLineage::{Constant, Derived, Plain, Unknown};
        match self {
            Constant => Constant,
            Unknown => Unknown,
            Plain(c) if revealing => ColumnLineage::derived([c], []),
            Plain(c) => ColumnLineage::derived([], [c]),
            Derived { revealed, hidden } if !revealing => {
                ColumnLineage::derived([], revealed.into_iter().chain(hidden))
            }
            derived @ Derived { .. } => derived,
        }
    }

    /// One value or the other (set-operation branches, `RETURNING` of an assigned column):
    /// `Plain` only when both are the same plain column.
    fn or(self, other: ColumnLineage) -> ColumnLineage {
        if self == other {
            return self;
        }
        self.and(other).through(true)
    }
}

/// The columns of one row source, in order, with their lineage; `None` when unknown.
type Columns = Option<Vec<Col>>;

/// One named column of a row source.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Col {
    name: String,
    lineage: ColumnLineage,
}

/// What the caller knows about relations (the broker answers from the database catalog).
pub trait Relations {
    /// The columns of a table, view or materialized view, in order; `None` when unknown.
    fn columns(&self, schema: Option<&str>, name: &str) -> Option<Vec<String>>;

    /// The defining query of a view or materialized view (as `pg_get_viewdef` returns it),
    /// if `name` is one. Its columns are then [`Relations::columns`] (the view's names, which
    /// may differ from the query's), with the lineage of the query's output columns.
    fn view_definition(&self, schema: Option<&str>, name: &str) -> Option<String>;

    /// Whether the function computes its result from its arguments (and session state)
    /// alone, never reading table rows. `false` makes every call of it `Unknown`. The
    /// default trusts the PostgreSQL built-ins this crate lists
    /// ([`builtin_computes_from_arguments`]).
    fn computes_from_arguments(&self, schema: Option<&str>, name: &str) -> bool {
        builtin_computes_from_arguments(schema, name)
    }
}

/// A [`Relations`] that knows no relation: every table is unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRelations;

impl Relations for NoRelations {
    fn columns(&self, _: Option<&str>, _: &str) -> Option<Vec<String>> {
        None
    }

    fn view_definition(&self, _: Option<&str>, _: &str) -> Option<String> {
        None
    }
}

/// The rows a statement returns to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// No rows (plain `INSERT`, DDL, `SET`, ...).
    NoRows,
    /// Rows with these columns, in order.
    Rows(Vec<ColumnLineage>),
    /// Rows holding no table values in any column, whatever their width (`EXPLAIN`, `SHOW`).
    Constants,
    /// Rows this analysis cannot describe (`EXECUTE`, `FETCH`, `CALL`, a `*` over a relation
    /// whose columns are unknown, a statement over a bound): mask every column.
    Unknown,
}

impl Output {
    /// The lineage of each of the `fields` columns the server describes. When the analysis
    /// disagrees with the server on the width, no position can be trusted: all `Unknown`.
    pub fn for_fields(&self, fields: usize) -> Vec<ColumnLineage> {
        match self {
            Output::Rows(columns) if columns.len() == fields => columns.clone(),
            Output::Constants => vec![ColumnLineage::Constant; fields],
            _ => vec![ColumnLineage::Unknown; fields],
        }
    }
}

/// Rows described now but returned by a later statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferred {
    /// `DECLARE name CURSOR FOR ...`: `FETCH` from `name` returns the [`Output`] rows.
    Cursor(String),
    /// `PREPARE name AS ...`: `EXECUTE name` returns the [`Output`] rows, and does the
    /// writes and side channels reported with it.
    Prepared(String),
}

/// A value a write stores, and what flows into it. Only non-constant values are reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredValue {
    /// The target's schema, when written.
    pub schema: Option<String>,
    /// The target table (or view, for writes through an updatable view).
    pub table: String,
    /// The target column; `None` when the target's columns are unknown.
    pub column: Option<String>,
    /// What flows into the stored value.
    pub lineage: ColumnLineage,
}

/// A value sent out of the statement other than in its result rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideChannel {
    /// The function that sends it (`pg_notify`, `set_config`, `lo_from_bytea`, ...).
    pub function: String,
    /// What flows into its arguments (all of them: a channel name carries data too).
    pub lineage: ColumnLineage,
}

/// The lineage of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLineage {
    /// The statement's byte range in the text (as [`classify`](super::classify) gives it).
    pub span: Range<usize>,
    /// The rows it returns.
    pub output: Output,
    /// Set when the rows are returned later, by `FETCH` or `EXECUTE`.
    pub deferred: Option<Deferred>,
    /// Set when the rows come from a cursor (`FETCH`) or a prepared statement (`EXECUTE`)
    /// described earlier: the caller looks up what that `DECLARE` or `PREPARE` reported.
    pub reads: Option<Deferred>,
    /// Non-constant values it stores.
    pub stored: Vec<StoredValue>,
    /// Values it sends through side channels (`pg_notify` and the like), one per call.
    pub side_channels: Vec<SideChannel>,
    /// Why the analysis is incomplete (parse error, bound reached); `None` when complete.
    pub incomplete: Option<String>,
}

/// Per statement in `sql` (split as [`classify`](super::classify) splits): the lineage of
/// each output column, the values writes store, and the values sent through side channels.
///
/// Text that does not parse yields one statement spanning the whole text, with
/// [`Output::Unknown`] and the parse error in [`StatementLineage::incomplete`].
pub fn lineage(sql: &str, relations: &dyn Relations) -> Vec<StatementLineage> {
    analyse(sql, relations, None)
}

/// [`lineage`] with the work budget per statement fixed (tests) or from its size (`None`).
fn analyse(sql: &str, relations: &dyn Relations, fuel: Option<usize>) -> Vec<StatementLineage> {
    let tree = match pg_query::parse(sql, 0) {
        Ok(tree) => tree,
        Err(e) => {
            return vec![StatementLineage {
                span: 0..sql.len(),
                output: Output::Unknown,
                deferred: None,
                reads: None,
                stored: Vec::new(),
                side_channels: Vec::new(),
                incomplete: Some(super::parse_error(&e)),
            }];
        }
    };
    tree.protobuf
        .stmts
        .iter()
        .filter_map(|raw| {
            let stmt = raw.stmt.as_ref()?.node.as_ref()?;
            let span = super::span(sql, raw.stmt_location, raw.stmt_len);
            let fuel = fuel.unwrap_or_else(|| {
                FUEL_BASE.saturating_add(span.len().saturating_mul(FUEL_PER_BYTE))
            });
            Some(Analyzer::new(relations, fuel).statement(stmt, span))
        })
        .collect()
}
