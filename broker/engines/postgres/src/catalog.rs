//! Column names behind result columns: masking rules name columns, but a RowDescription names
//! them by alias (`SELECT email AS e`). Every plain column reference also carries its table OID
//! and attribute number, so one catalog query over a connection of the broker's own maps those
//! back to `schema.table` and the real column name.

use crate::codec::query::{self, tag as qtag};
use crate::codec::{ErrorFields, MAX_MESSAGE, Query, Terminate, parse, tag};
use crate::upstream::{Target, UpstreamError, connect};
use bytes::BytesMut;
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// User tables, views, materialized views, partitioned and foreign tables, outside the system
/// schemas; capped so a huge catalog cannot stall a session start.
const COLUMNS_SQL: &str = "select c.oid, a.attnum, n.nspname, c.relname, a.attname \
     from pg_catalog.pg_attribute a \
     join pg_catalog.pg_class c on c.oid = a.attrelid \
     join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
     where a.attnum > 0 and not a.attisdropped and c.relkind in ('r','v','m','p','f') \
       and n.nspname not in ('pg_catalog', 'information_schema') \
     limit 200000";

/// How long the catalog query may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// `(table OID, attribute number)` to `("schema.table", "column")`.
#[derive(Debug, Default, Clone)]
pub struct Columns {
    map: HashMap<(u32, i16), (String, String)>,
}

impl Columns {
    /// The table and real name of a result column, if it is a plain column of a known table.
    pub fn get(&self, table_oid: u32, column: i16) -> Option<(&str, &str)> {
        self.map
            .get(&(table_oid, column))
            .map(|(t, c)| (t.as_str(), c.as_str()))
    }

    /// Number of known columns.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
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

/// Logs in with the resource's credential and reads every user column's table and name.
pub async fn load(target: &Target) -> Result<Columns, CatalogError> {
    tokio::time::timeout(TIMEOUT, load_inner(target))
        .await
        .map_err(|_| CatalogError::Io(format!("no answer within {}s", TIMEOUT.as_secs())))?
}

async fn load_inner(target: &Target) -> Result<Columns, CatalogError> {
    let mut upstream = connect(target, &[]).await?;
    let stream = &mut upstream.stream;
    let mut out = BytesMut::new();
    Query {
        sql: COLUMNS_SQL.to_owned(),
    }
    .encode(&mut out)
    .map_err(|e| CatalogError::Io(e.to_string()))?;
    stream
        .write_all(&out)
        .await
        .map_err(|e| CatalogError::Io(e.to_string()))?;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut columns = Columns::default();
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
                        columns
                            .map
                            .insert((oid, num), (format!("{schema}.{table}"), column));
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
        None => Ok(columns),
    }
}
