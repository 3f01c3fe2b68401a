//! Frontend messages outside authentication that the proxy makes or reads: simple Query and
//! Terminate. (Relayed traffic is not decoded.)

use super::{CodecError, Cursor, put_cstr, tag, write_fixed_frame, write_frame};
use bytes::BytesMut;

/// Query (`Q`): one or more SQL statements as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The SQL text.
    pub sql: String,
}

impl Query {
    /// Decodes the body of a `Q` message.
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        let mut c = Cursor::new(body, "Query");
        let sql = c.cstr()?.to_owned();
        c.finish()?;
        Ok(Self { sql })
    }

    /// Appends the message to `buf`. Fails if the text contains NUL.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), CodecError> {
        write_frame(buf, Some(tag::QUERY), "Query", |b| {
            put_cstr(b, self.sql.as_bytes(), "query text")
        })
    }
}

/// Terminate (`X`): the client is closing the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminate;

impl Terminate {
    /// Decodes the body of an `X` message (it has none).
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        Cursor::new(body, "Terminate").finish().map(|()| Self)
    }

    /// Appends the message to `buf`.
    pub fn encode(self, buf: &mut BytesMut) {
        write_fixed_frame(buf, Some(tag::TERMINATE), |_| {});
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::codec::test_util::assert_prefixes_incomplete;
    use crate::codec::{MAX_LOGIN_MESSAGE, parse};

    #[test]
    fn query_round_trips() {
        let q = Query {
            sql: "select 41+1".into(),
        };
        let mut buf = BytesMut::new();
        q.encode(&mut buf).unwrap();
        assert_eq!(&buf[..], b"Q\0\0\0\x10select 41+1\0");
        assert_prefixes_incomplete(&buf, MAX_LOGIN_MESSAGE);
        let f = parse(&buf, MAX_LOGIN_MESSAGE).unwrap().unwrap();
        assert_eq!(Query::decode(f.body).unwrap(), q);
        assert!(Query::decode(b"select 1").is_err());
    }

    #[test]
    fn terminate_is_five_bytes() {
        let mut buf = BytesMut::new();
        Terminate.encode(&mut buf);
        assert_eq!(&buf[..], b"X\0\0\0\x04");
        assert_eq!(Terminate::decode(b""), Ok(Terminate));
        assert!(Terminate::decode(b"x").is_err());
    }
}
