//! Column names behind result columns: masking rules name columns, but a RowDescription names
//! them by alias (`SELECT email AS e`). Every plain column reference also carries its table OID
//! and attribute number, so one catalog query over a connection of the broker's own maps those
//! back to `schema.table` and the real column name. A table the catalog does not know yet is
//! looked up by OID when a result first names it (decision 28).

use crate::codec::query::{self, tag as qtag};
use crate::codec::{ErrorFields, MAX_MESSAGE, Query, Terminate, parse, tag};
use crate::upstream::{Target, UpstreamError, connect};
use bytes::BytesMut;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;

/// Every column of user tables, views, materialized views, partitioned and foreign tables, in
/// every schema (the system catalogs are a few thousand columns, and knowing them spares
/// psql's `\d` a lookup). No row limit: a catalog the cap cut short would leave tables unknown.
const COLUMNS_SQL: &str = "select c.oid, a.attnum, n.nspname, c.relname, a.attname, c.relkind, \
     case when a.attnum = 1 and c.relkind in ('v','m') then pg_catalog.pg_get_viewdef(c.oid) end \
     from pg_catalog.pg_attribute a \
     join pg_catalog.pg_class c on c.oid = a.attrelid \
     join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
     where a.attnum > 0 and not a.attisdropped and c.relkind in ('r','v','m','p','f')";

/// The same for a few tables by OID, whatever their kind (a sequence has columns too).
const TABLES_SQL: &str = "select c.oid, a.attnum, n.nspname, c.relname, a.attname, c.relkind, \
     case when a.attnum = 1 and c.relkind in ('v','m') then pg_catalog.pg_get_viewdef(c.oid) end \
     from pg_catalog.pg_attribute a \
     join pg_catalog.pg_class c on c.oid = a.attrelid \
     join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
     where a.attnum > 0 and not a.attisdropped and c.oid in ";

/// How long the whole catalog query may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// How long a lookup of a few tables may take; the result that needs it waits meanwhile.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a table a lookup could not name is not looked up again. Its columns are masked
/// meanwhile (a table created in a transaction that has not committed yet is invisible to the
/// broker's own login until it commits).
const MISS_RETRY: Duration = Duration::from_secs(5);

/// One table: `schema.table` and its columns by attribute number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Table {
    /// `schema.table`.
    name: String,
    /// Column names by attribute number.
    columns: HashMap<i16, String>,
    /// `pg_class.relkind`: `r` table, `v` view, `m` materialized view, ...
    kind: char,
    /// A view's or materialized view's defining query (`pg_get_viewdef`).
    definition: Option<String>,
}

/// A relation found by name, for lineage (decision 38).
#[derive(Debug)]
pub struct Relation<'a> {
    /// `schema.table`.
    pub name: &'a str,
    /// Column names in attribute order.
    pub columns: Vec<&'a str>,
    /// The defining query of a view or materialized view.
    pub definition: Option<&'a str>,
}

/// Tables by OID, as a query returned them.
pub(crate) type Tables = HashMap<u32, Table>;

/// The column names of one resource's tables, shared by every session of the resource.
///
/// Loaded whole at tunnel open (at most every minute, [`refresh`](Self::refresh)); a result
/// that names a table or column it does not know yet (created since) makes the session
/// [`resolve`](Self::resolve) just those OIDs at once. Lookups take turns, so sessions that
/// hit the same new table together cause one query, and what it finds is merged for all.
#[derive(Debug, Default)]
pub struct Columns {
    /// What is known. Read by every RowDescription of a masked session, written by loads.
    state: RwLock<State>,
    /// Loads and lookups take turns: whoever waited here first sees what the one before found.
    turn: tokio::sync::Mutex<()>,
}

/// The shared part of [`Columns`].
#[derive(Debug, Default)]
struct State {
    /// Tables by OID.
    tables: Tables,
    /// Table OIDs by relation name (without schema), for lookups by name; kept with `tables`.
    by_name: HashMap<String, Vec<u32>>,
    /// OIDs a lookup could not name, with when it tried: not asked again for [`MISS_RETRY`].
    missed: HashMap<u32, Instant>,
    /// When the whole catalog was last read; `None` before the first load.
    loaded: Option<Instant>,
    /// How to reach the server; `None` for a fixed set (nothing can be looked up).
    target: Option<Target>,
}

/// A read view of the known columns, held while one result shape is planned.
#[derive(Debug)]
pub struct Known<'a>(RwLockReadGuard<'a, State>);

impl Known<'_> {
    /// The table and real name of a result column, if it is a column of a known table.
    pub fn get(&self, table_oid: u32, column: i16) -> Option<(&str, &str)> {
        let table = self.0.tables.get(&table_oid)?;
        let name = table.columns.get(&column)?;
        Some((table.name.as_str(), name.as_str()))
    }

    /// Whether the relation is a view or materialized view: its result columns are whatever
    /// its query computes, not stored values.
    pub fn is_view(&self, table_oid: u32) -> bool {
        self.0
            .tables
            .get(&table_oid)
            .is_some_and(|t| matches!(t.kind, 'v' | 'm'))
    }

    /// The relation `schema.name`, or the one an unqualified `name` most likely means:
    /// `pg_catalog`'s, else `public`'s, else the only one of that name. `None` when unknown
    /// or ambiguous.
    pub fn relation(&self, schema: Option<&str>, name: &str) -> Option<Relation<'_>> {
        let candidates: Vec<&Table> = self
            .0
            .by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|oid| self.0.tables.get(oid))
            .collect();
        let in_schema = |wanted: &str| {
            candidates
                .iter()
                .copied()
                .find(|t| t.name.split_once('.').is_some_and(|(s, _)| s == wanted))
        };
        let table = match schema {
            Some(schema) => in_schema(schema)?,
            None => match in_schema("pg_catalog").or_else(|| in_schema("public")) {
                Some(table) => table,
                None => match candidates.as_slice() {
                    [only] => only,
                    _ => return None,
                },
            },
        };
        let mut numbered: Vec<(&i16, &String)> = table.columns.iter().collect();
        numbered.sort_by_key(|(num, _)| **num);
        Some(Relation {
            name: table.name.as_str(),
            columns: numbered.into_iter().map(|(_, c)| c.as_str()).collect(),
            definition: table.definition.as_deref(),
        })
    }
}

impl Columns {
    /// An empty catalog of the server at `target`: [`refresh`](Self::refresh) loads it.
    pub fn new(target: Target) -> Self {
        Self {
            state: RwLock::new(State {
                target: Some(target),
                ..State::default()
            }),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// A fixed set of `(table OID, attribute number, "schema.table", column)`, with no server
    /// to look anything else up in (tests, and sessions without column rules).
    pub fn fixed(columns: impl IntoIterator<Item = (u32, i16, String, String)>) -> Self {
        let mut tables = Tables::new();
        for (oid, num, table, column) in columns {
            let entry = tables.entry(oid).or_insert_with(|| Table {
                name: table,
                kind: 'r',
                ..Table::default()
            });
            entry.columns.insert(num, column);
        }
        let mut state = State {
            tables,
            ..State::default()
        };
        state.reindex();
        Self {
            state: RwLock::new(state),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// What is known now; hold it only while planning (never across an await).
    pub fn known(&self) -> Known<'_> {
        Known(self.read())
    }

    /// Number of known columns.
    pub fn len(&self) -> usize {
        self.read().tables.values().map(|t| t.columns.len()).sum()
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a lookup could name more of these `(table OID, attribute number)` result
    /// columns: some come from a table (OID not 0) whose column is not known, that was not
    /// looked up in vain just now, and there is a server to ask. Cheap: no allocation.
    pub fn missing(&self, columns: impl IntoIterator<Item = (u32, i16)>) -> bool {
        let state = self.read();
        state.target.is_some() && columns.into_iter().any(|key| state.wanted(key))
    }

    /// Loads the whole catalog unless it was loaded less than `max_age` ago, logging in as
    /// `target` (which later lookups use too). Concurrent callers share one load.
    pub async fn refresh(&self, max_age: Duration, target: &Target) -> Result<(), CatalogError> {
        let fresh = |state: &State| state.loaded.is_some_and(|at| at.elapsed() < max_age);
        if fresh(&self.read()) {
            return Ok(());
        }
        let _turn = self.turn.lock().await;
        if fresh(&self.read()) {
            return Ok(());
        }
        let tables = load(target).await?;
        let mut state = self.write();
        state.tables = tables;
        state.reindex();
        state.missed.clear();
        state.loaded = Some(Instant::now());
        state.target = Some(target.clone());
        Ok(())
    }

    /// Looks up the tables of the `(table OID, attribute number)` result columns that are not
    /// known, with one query for just those OIDs, and merges what it finds. Never fails: a
    /// table it cannot name (the query failed, or the table is not visible to the broker's
    /// login) stays unknown for [`MISS_RETRY`], and column rules mask its columns.
    pub async fn resolve(&self, columns: &[(u32, i16)]) {
        let Some(target) = self.read().target.clone() else {
            return;
        };
        self.resolve_with(columns, |oids| async move {
            tokio::time::timeout(LOOKUP_TIMEOUT, load_tables(&target, &oids))
                .await
                .map_err(|_| {
                    CatalogError::Io(format!("no answer within {}s", LOOKUP_TIMEOUT.as_secs()))
                })?
        })
        .await;
    }

    /// [`resolve`](Self::resolve) with the query supplied (tests count them).
    pub(crate) async fn resolve_with<F, Fut>(&self, columns: &[(u32, i16)], lookup: F)
    where
        F: FnOnce(Vec<u32>) -> Fut,
        Fut: Future<Output = Result<Tables, CatalogError>>,
    {
        let _turn = self.turn.lock().await;
        // Decided after the turn: a lookup that ran meanwhile may have answered already.
        let mut oids: Vec<u32> = {
            let state = self.read();
            columns
                .iter()
                .filter(|key| state.wanted(**key))
                .map(|(oid, _)| *oid)
                .collect()
        };
        oids.sort_unstable();
        oids.dedup();
        if oids.is_empty() {
            return;
        }
        let found = lookup(oids.clone()).await;
        let mut state = self.write();
        match found {
            Ok(tables) => {
                state.tables.extend(tables);
                state.reindex();
            }
            Err(e) => {
                warn!(error = %e, tables = ?oids, "cannot look up new tables for masking; their columns are masked")
            }
        }
        let now = Instant::now();
        for oid in oids {
            let named = columns
                .iter()
                .filter(|(o, _)| *o == oid)
                .all(|(_, num)| state.known(oid, *num));
            if named {
                state.missed.remove(&oid);
            } else {
                state.missed.insert(oid, now);
            }
        }
    }
}

impl State {
    /// Rebuilds the name index after `tables` changed.
    fn reindex(&mut self) {
        self.by_name.clear();
        for (oid, table) in &self.tables {
            if let Some((_, name)) = table.name.split_once('.') {
                self.by_name.entry(name.to_owned()).or_default().push(*oid);
            }
        }
    }

    fn known(&self, oid: u32, column: i16) -> bool {
        self.tables
            .get(&oid)
            .is_some_and(|t| t.columns.contains_key(&column))
    }

    /// Whether a lookup should be tried for this result column.
    fn wanted(&self, (oid, column): (u32, i16)) -> bool {
        oid != 0
            && !self.known(oid, column)
            && self
                .missed
                .get(&oid)
                .is_none_or(|at| at.elapsed() >= MISS_RETRY)
    }
}

/// Why the catalog could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Login failed.
    #[error("cannot log in to read the catalog: {0}")]
    Login(#[from] UpstreamError),
    /// The server refused the query.
    #[error("the catalog query failed: {0}")]
    Query(String),
    /// Reading or writing failed, or the answer was malformed.
    #[error("reading the catalog: {0}")]
    Io(String),
}

/// Logs in with the resource's credential and reads every column's table and name.
async fn load(target: &Target) -> Result<Tables, CatalogError> {
    tokio::time::timeout(TIMEOUT, query_columns(target, COLUMNS_SQL.to_owned()))
        .await
        .map_err(|_| CatalogError::Io(format!("no answer within {}s", TIMEOUT.as_secs())))?
}

/// Reads the columns of the tables `oids` (integers formatted here: nothing is quoted).
async fn load_tables(target: &Target, oids: &[u32]) -> Result<Tables, CatalogError> {
    let list = oids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    query_columns(target, format!("{TABLES_SQL}({list})")).await
}

async fn query_columns(target: &Target, sql: String) -> Result<Tables, CatalogError> {
    let mut upstream = connect(target, &[]).await?;
    let stream = &mut upstream.stream;
    let mut out = BytesMut::new();
    Query { sql }
        .encode(&mut out)
        .map_err(|e| CatalogError::Io(e.to_string()))?;
    stream
        .write_all(&out)
        .await
        .map_err(|e| CatalogError::Io(e.to_string()))?;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut tables = Tables::new();
    let mut failure = None;
    'read: loop {
        while let Some(frame) =
            parse(&buf, MAX_MESSAGE).map_err(|e| CatalogError::Io(e.to_string()))?
        {
            let total = frame.total_len;
            match frame.tag {
                qtag::DATA_ROW => {
                    let values =
                        query::data_row(frame.body).map_err(|e| CatalogError::Io(e.to_string()))?;
                    let text = |i: usize| {
                        values
                            .get(i)
                            .copied()
                            .flatten()
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                    };
                    if let (Some(oid), Some(num), Some(schema), Some(table), Some(column)) =
                        (text(0), text(1), text(2), text(3), text(4))
                        && let (Ok(oid), Ok(num)) = (oid.parse::<u32>(), num.parse::<i16>())
                    {
                        let entry = tables.entry(oid).or_insert_with(|| Table {
                            name: format!("{schema}.{table}"),
                            kind: text(5).and_then(|k| k.chars().next()).unwrap_or('r'),
                            ..Table::default()
                        });
                        entry.columns.insert(num, column);
                        if let Some(definition) = text(6) {
                            entry.definition = Some(definition);
                        }
                    }
                }
                tag::ERROR_RESPONSE => {
                    failure = ErrorFields::decode(frame.body)
                        .ok()
                        .and_then(|f| f.message().map(str::to_owned));
                }
                tag::READY_FOR_QUERY => break 'read,
                _ => {}
            }
            bytes::Buf::advance(&mut buf, total);
        }
        buf.reserve(64 * 1024);
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| CatalogError::Io(e.to_string()))?;
        if n == 0 {
            return Err(CatalogError::Io("the server closed the connection".into()));
        }
    }
    let mut bye = BytesMut::new();
    Terminate.encode(&mut bye);
    let _ = stream.write_all(&bye).await;
    match failure {
        Some(message) => Err(CatalogError::Query(message)),
        None => Ok(tables),
    }
}

#[cfg(test)]
mod tests;
