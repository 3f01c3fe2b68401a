//! Messages of the query phase that the enforcing proxy reads or rewrites: the extended
//! protocol's Parse, Bind, Describe, Execute and Close, FunctionCall's target, and the result
//! messages RowDescription and DataRow.
//!
//! Decoders borrow from the frame body; DataRow is walked value by value so a row can be
//! rewritten without decoding it into owned values.

use super::{CodecError, Cursor, put_cstr, write_frame};
use bytes::{BufMut, BytesMut};

/// Frontend tags of the query phase.
pub mod tag {
    /// Parse.
    pub const PARSE: u8 = b'P';
    /// Bind.
    pub const BIND: u8 = b'B';
    /// Describe.
    pub const DESCRIBE: u8 = b'D';
    /// Execute.
    pub const EXECUTE: u8 = b'E';
    /// Close.
    pub const CLOSE: u8 = b'C';
    /// Sync.
    pub const SYNC: u8 = b'S';
    /// Flush.
    pub const FLUSH: u8 = b'H';
    /// FunctionCall.
    pub const FUNCTION_CALL: u8 = b'F';
    /// CopyData (both directions).
    pub const COPY_DATA: u8 = b'd';
    /// Backend: RowDescription.
    pub const ROW_DESCRIPTION: u8 = b'T';
    /// Backend: DataRow.
    pub const DATA_ROW: u8 = b'D';
    /// Backend: ParseComplete.
    pub const PARSE_COMPLETE: u8 = b'1';
    /// Backend: BindComplete.
    pub const BIND_COMPLETE: u8 = b'2';
    /// Backend: CloseComplete.
    pub const CLOSE_COMPLETE: u8 = b'3';
    /// Backend: NoData.
    pub const NO_DATA: u8 = b'n';
    /// Backend: ParameterDescription.
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    /// Backend: CommandComplete.
    pub const COMMAND_COMPLETE: u8 = b'C';
    /// Backend: EmptyQueryResponse.
    pub const EMPTY_QUERY: u8 = b'I';
    /// Backend: PortalSuspended.
    pub const PORTAL_SUSPENDED: u8 = b's';
    /// Backend: CopyOutResponse.
    pub const COPY_OUT: u8 = b'H';
    /// Backend: CopyInResponse.
    pub const COPY_IN: u8 = b'G';
    /// Backend: CopyBothResponse.
    pub const COPY_BOTH: u8 = b'W';
    /// Backend: CopyDone (both directions).
    pub const COPY_DONE: u8 = b'c';
}

/// Parse (`P`): prepare `sql` as statement `name` ("" is the unnamed statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse<'a> {
    /// Statement name.
    pub name: &'a str,
    /// SQL text.
    pub sql: &'a str,
    /// Parameter type OIDs the client fixed (0 = let the server infer).
    pub param_types: Vec<u32>,
}

impl<'a> Parse<'a> {
    /// Decodes the body of a `P` message.
    pub fn decode(body: &'a [u8]) -> Result<Self, CodecError> {
        let mut c = Cursor::new(body, "Parse");
        let name = c.cstr()?;
        let sql = c.cstr()?;
        let count = read_count(&mut c)?;
        let mut param_types = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            param_types.push(c.i32()? as u32);
        }
        c.finish()?;
        Ok(Self {
            name,
            sql,
            param_types,
        })
    }

    /// Appends a Parse of `sql` under `name` with no parameter types.
    pub fn encode(name: &str, sql: &str, buf: &mut BytesMut) -> Result<(), CodecError> {
        write_frame(buf, Some(tag::PARSE), "Parse", |b| {
            put_cstr(b, name.as_bytes(), "statement name")?;
            put_cstr(b, sql.as_bytes(), "query text")?;
            b.put_i16(0);
            Ok(())
        })
    }
}

/// The parts of a Bind (`B`) the proxy needs: which portal, from which statement, and the
/// result formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    /// Portal name.
    pub portal: &'a str,
    /// Statement name.
    pub statement: &'a str,
    /// Result format codes: none (all text), one (for all columns) or one per column.
    pub result_formats: Vec<i16>,
}

impl<'a> Bind<'a> {
    /// Decodes the body of a `B` message (parameter values are skipped, not copied).
    pub fn decode(body: &'a [u8]) -> Result<Self, CodecError> {
        let mut c = Cursor::new(body, "Bind");
        let portal = c.cstr()?;
        let statement = c.cstr()?;
        let formats = read_count(&mut c)?;
        c.bytes(formats * 2)?;
        let values = read_count(&mut c)?;
        for _ in 0..values {
            let len = c.i32()?;
            if len > 0 {
                c.bytes(len as usize)?;
            } else if len < -1 {
                return Err(CodecError::Invalid {
                    what: "Bind",
                    reason: "negative parameter length",
                });
            }
        }
        let count = read_count(&mut c)?;
        let mut result_formats = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let b = c.bytes(2)?;
            result_formats.push(i16::from_be_bytes([b[0], b[1]]));
        }
        c.finish()?;
        Ok(Self {
            portal,
            statement,
            result_formats,
        })
    }
}

/// Describe (`D`) or Close (`C`): a statement (`S`) or a portal (`P`) by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A prepared statement.
    Statement(&'a str),
    /// A portal.
    Portal(&'a str),
}

impl<'a> Target<'a> {
    /// Decodes the body of a `D` or `C` message.
    pub fn decode(body: &'a [u8], what: &'static str) -> Result<Self, CodecError> {
        let mut c = Cursor::new(body, what);
        let kind = c.u8()?;
        let name = c.cstr()?;
        c.finish()?;
        match kind {
            b'S' => Ok(Self::Statement(name)),
            b'P' => Ok(Self::Portal(name)),
            _ => Err(CodecError::Invalid {
                what,
                reason: "expected 'S' or 'P'",
            }),
        }
    }
}

/// The SQL text of a Query (`Q`) body, borrowed (the proxy reads every query; the owned
/// [`super::Query`] is for the ones it writes).
pub fn query_text(body: &[u8]) -> Result<&str, CodecError> {
    let mut c = Cursor::new(body, "Query");
    let sql = c.cstr()?;
    c.finish()?;
    Ok(sql)
}

/// Execute (`E`): run portal `portal`.
pub fn execute_portal(body: &[u8]) -> Result<&str, CodecError> {
    let mut c = Cursor::new(body, "Execute");
    let portal = c.cstr()?;
    c.i32()?;
    c.finish()?;
    Ok(portal)
}

/// The OID of the function a FunctionCall (`F`) calls.
pub fn function_call_oid(body: &[u8]) -> Result<u32, CodecError> {
    let mut c = Cursor::new(body, "FunctionCall");
    Ok(c.i32()? as u32)
}

/// One field of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDescription {
    /// Column name.
    pub name: String,
    /// Table OID or 0.
    pub table_oid: u32,
    /// Attribute number or 0.
    pub column: i16,
    /// Type OID.
    pub type_oid: u32,
    /// Format code: 0 text, 1 binary (always 0 in a statement's Describe).
    pub format: i16,
}

/// Decodes the body of a RowDescription (`T`).
pub fn row_description(body: &[u8]) -> Result<Vec<FieldDescription>, CodecError> {
    let mut c = Cursor::new(body, "RowDescription");
    let count = read_count(&mut c)?;
    let mut fields = Vec::with_capacity(count.min(1664));
    for _ in 0..count {
        let name = String::from_utf8_lossy(c.cstr_bytes()?).into_owned();
        let table_oid = c.i32()? as u32;
        let b = c.bytes(2)?;
        let column = i16::from_be_bytes([b[0], b[1]]);
        let type_oid = c.i32()? as u32;
        c.bytes(2 + 4)?; // type size, type modifier
        let b = c.bytes(2)?;
        let format = i16::from_be_bytes([b[0], b[1]]);
        fields.push(FieldDescription {
            name,
            table_oid,
            column,
            type_oid,
            format,
        });
    }
    c.finish()?;
    Ok(fields)
}

/// The values of a DataRow (`D`) body: `None` for SQL NULL.
pub fn data_row(body: &[u8]) -> Result<Vec<Option<&[u8]>>, CodecError> {
    let mut c = Cursor::new(body, "DataRow");
    let count = read_count(&mut c)?;
    let mut values = Vec::with_capacity(count.min(1664));
    for _ in 0..count {
        let len = c.i32()?;
        if len == -1 {
            values.push(None);
        } else if len < 0 {
            return Err(CodecError::Invalid {
                what: "DataRow",
                reason: "negative value length",
            });
        } else {
            values.push(Some(c.bytes(len as usize)?));
        }
    }
    c.finish()?;
    Ok(values)
}

/// Appends a DataRow with these values.
pub fn encode_data_row<'v>(
    values: impl ExactSizeIterator<Item = Option<&'v [u8]>>,
    buf: &mut BytesMut,
) -> Result<(), CodecError> {
    write_frame(buf, Some(tag::DATA_ROW), "DataRow", |b| {
        let count = i16::try_from(values.len()).map_err(|_| CodecError::Invalid {
            what: "DataRow",
            reason: "too many columns",
        })?;
        b.put_i16(count);
        for value in values {
            match value {
                None => b.put_i32(-1),
                Some(v) => {
                    let len = i32::try_from(v.len()).map_err(|_| CodecError::Invalid {
                        what: "DataRow",
                        reason: "value too long",
                    })?;
                    b.put_i32(len);
                    b.put_slice(v);
                }
            }
        }
        Ok(())
    })
}

/// Appends a CopyData carrying `data`.
pub fn encode_copy_data(data: &[u8], buf: &mut BytesMut) -> Result<(), CodecError> {
    write_frame(buf, Some(tag::COPY_DATA), "CopyData", |b| {
        b.put_slice(data);
        Ok(())
    })
}

/// An `int16` count that must not be negative.
fn read_count(c: &mut Cursor<'_>) -> Result<usize, CodecError> {
    let b = c.bytes(2)?;
    let n = i16::from_be_bytes([b[0], b[1]]);
    usize::try_from(n).map_err(|_| CodecError::Invalid {
        what: "count",
        reason: "negative",
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::codec::{MAX_MESSAGE, parse};

    #[test]
    fn parse_round_trips_and_rejects_truncation() {
        let mut buf = BytesMut::new();
        Parse::encode("s1", "select $1", &mut buf).unwrap();
        let f = parse(&buf, MAX_MESSAGE).unwrap().unwrap();
        let p = Parse::decode(f.body).unwrap();
        assert_eq!((p.name, p.sql, p.param_types.len()), ("s1", "select $1", 0));
        assert!(Parse::decode(&f.body[..f.body.len() - 1]).is_err());
    }

    #[test]
    fn bind_skips_values_and_reads_result_formats() {
        let mut body = Vec::new();
        body.extend_from_slice(b"p\0s\0");
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(&3i32.to_be_bytes());
        body.extend_from_slice(b"abc");
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
        let b = Bind::decode(&body).unwrap();
        assert_eq!((b.portal, b.statement), ("p", "s"));
        assert_eq!(b.result_formats, vec![1, 0]);
        assert!(Bind::decode(&body[..body.len() - 1]).is_err());
    }

    #[test]
    fn data_rows_round_trip_with_nulls() {
        let mut buf = BytesMut::new();
        let values: Vec<Option<&[u8]>> = vec![Some(b"1"), None, Some(b"")];
        encode_data_row(values.clone().into_iter(), &mut buf).unwrap();
        let f = parse(&buf, MAX_MESSAGE).unwrap().unwrap();
        assert_eq!(data_row(f.body).unwrap(), values);
        assert!(data_row(&f.body[..f.body.len() - 1]).is_err());
        assert!(data_row(b"\x00\x01\xff\xff\xff\xfe").is_err());
    }

    #[test]
    fn describe_targets() {
        assert_eq!(
            Target::decode(b"Sname\0", "Describe").unwrap(),
            Target::Statement("name")
        );
        assert_eq!(
            Target::decode(b"P\0", "Describe").unwrap(),
            Target::Portal("")
        );
        assert!(Target::decode(b"Xn\0", "Describe").is_err());
    }
}
