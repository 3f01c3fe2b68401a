//! What the server says once a login has succeeded, and the protocol version negotiation:
//! ParameterStatus, BackendKeyData, ReadyForQuery, NegotiateProtocolVersion.

use super::{CodecError, Cursor, put_cstr, tag, write_fixed_frame, write_frame};
use bytes::{BufMut, BytesMut};

/// ParameterStatus (`S`): the current value of a run-time parameter the client should know
/// (`server_version`, `client_encoding`, `DateStyle`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterStatus {
    /// Parameter name.
    pub name: String,
    /// Its current value.
    pub value: String,
}

impl ParameterStatus {
    /// Decodes the body of an `S` message.
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        let mut c = Cursor::new(body, "ParameterStatus");
        let name = c.cstr()?.to_owned();
        let value = c.cstr()?.to_owned();
        c.finish()?;
        Ok(Self { name, value })
    }

    /// Appends the message to `buf`. Fails if the name or value contains NUL.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), CodecError> {
        write_frame(buf, Some(tag::PARAMETER_STATUS), "ParameterStatus", |b| {
            put_cstr(b, self.name.as_bytes(), "parameter name")?;
            put_cstr(b, self.value.as_bytes(), "parameter value")
        })
    }
}

/// BackendKeyData (`K`): the process id and secret key a client needs to cancel a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendKeyData {
    /// Process id of the backend.
    pub pid: i32,
    /// Secret key; a CancelRequest must present it.
    pub key: i32,
}

impl BackendKeyData {
    /// Decodes the body of a `K` message (protocol 3.0: exactly two `int32`).
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        let mut c = Cursor::new(body, "BackendKeyData");
        let pid = c.i32()?;
        let key = c.i32()?;
        c.finish()?;
        Ok(Self { pid, key })
    }

    /// Appends the message to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        write_fixed_frame(buf, Some(tag::BACKEND_KEY_DATA), |b| {
            b.put_i32(self.pid);
            b.put_i32(self.key);
        });
    }
}

/// ReadyForQuery (`Z`): the backend waits for a query; carries the transaction status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyForQuery {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InTransaction,
    /// `E`: in a failed transaction block.
    Failed,
}

impl ReadyForQuery {
    /// Decodes the body of a `Z` message.
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        let mut c = Cursor::new(body, "ReadyForQuery");
        let status = match c.u8()? {
            b'I' => Self::Idle,
            b'T' => Self::InTransaction,
            b'E' => Self::Failed,
            _ => {
                return Err(CodecError::Invalid {
                    what: "ReadyForQuery",
                    reason: "unknown transaction status",
                });
            }
        };
        c.finish()?;
        Ok(status)
    }

    /// The status byte on the wire.
    pub fn status_byte(self) -> u8 {
        match self {
            Self::Idle => b'I',
            Self::InTransaction => b'T',
            Self::Failed => b'E',
        }
    }

    /// Appends the message to `buf`.
    pub fn encode(self, buf: &mut BytesMut) {
        write_fixed_frame(buf, Some(tag::READY_FOR_QUERY), |b| {
            b.put_u8(self.status_byte())
        });
    }
}

/// NegotiateProtocolVersion (`v`): the server supports an older minor version than requested,
/// or does not recognise some `_pq_.` startup options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiateProtocolVersion {
    /// Newest minor protocol version the server supports for the requested major version.
    pub newest_minor: i32,
    /// Protocol options of the startup packet the server did not recognise.
    pub unrecognized: Vec<String>,
}

impl NegotiateProtocolVersion {
    /// Decodes the body of a `v` message.
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        let mut c = Cursor::new(body, "NegotiateProtocolVersion");
        let newest_minor = c.i32()?;
        let count = usize::try_from(c.i32()?).map_err(|_| CodecError::Invalid {
            what: "NegotiateProtocolVersion",
            reason: "negative option count",
        })?;
        // Each option takes at least its NUL, so the body bounds a sane count; checking it first
        // keeps a hostile count from reserving memory.
        let mut unrecognized = Vec::with_capacity(count.min(body.len()));
        for _ in 0..count {
            unrecognized.push(c.cstr()?.to_owned());
        }
        c.finish()?;
        Ok(Self {
            newest_minor,
            unrecognized,
        })
    }

    /// Appends the message to `buf`. Fails if an option name contains NUL.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), CodecError> {
        write_frame(
            buf,
            Some(tag::NEGOTIATE_PROTOCOL_VERSION),
            "NegotiateProtocolVersion",
            |b| {
                b.put_i32(self.newest_minor);
                let count =
                    i32::try_from(self.unrecognized.len()).map_err(|_| CodecError::TooLong {
                        what: "NegotiateProtocolVersion",
                    })?;
                b.put_i32(count);
                for o in &self.unrecognized {
                    put_cstr(b, o.as_bytes(), "protocol option")?;
                }
                Ok(())
            },
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::codec::test_util::assert_prefixes_incomplete;
    use crate::codec::{MAX_LOGIN_MESSAGE, parse};

    fn body(frame: &[u8]) -> &[u8] {
        parse(frame, MAX_LOGIN_MESSAGE).unwrap().unwrap().body
    }

    #[test]
    fn parameter_status_round_trips() {
        let msg = ParameterStatus {
            name: "server_version".into(),
            value: "15.8".into(),
        };
        let mut buf = BytesMut::new();
        msg.encode(&mut buf).unwrap();
        assert_eq!(&buf[..], b"S\0\0\0\x18server_version\x0015.8\0");
        assert_prefixes_incomplete(&buf, MAX_LOGIN_MESSAGE);
        assert_eq!(ParameterStatus::decode(body(&buf)).unwrap(), msg);
        assert!(matches!(
            ParameterStatus::decode(b"name\0value"),
            Err(CodecError::MissingNul { .. })
        ));
    }

    #[test]
    fn backend_key_data_round_trips() {
        let msg = BackendKeyData { pid: 42, key: -7 };
        let mut buf = BytesMut::new();
        msg.encode(&mut buf);
        assert_eq!(buf.len(), 13);
        assert_prefixes_incomplete(&buf, MAX_LOGIN_MESSAGE);
        assert_eq!(BackendKeyData::decode(body(&buf)).unwrap(), msg);
        assert!(BackendKeyData::decode(&[0; 7]).is_err());
        assert!(BackendKeyData::decode(&[0; 9]).is_err());
    }

    #[test]
    fn ready_for_query_round_trips() {
        for msg in [
            ReadyForQuery::Idle,
            ReadyForQuery::InTransaction,
            ReadyForQuery::Failed,
        ] {
            let mut buf = BytesMut::new();
            msg.encode(&mut buf);
            assert_prefixes_incomplete(&buf, MAX_LOGIN_MESSAGE);
            assert_eq!(ReadyForQuery::decode(body(&buf)).unwrap(), msg);
        }
        let mut buf = BytesMut::new();
        ReadyForQuery::Idle.encode(&mut buf);
        assert_eq!(&buf[..], b"Z\0\0\0\x05I");
        assert!(ReadyForQuery::decode(b"X").is_err());
        assert!(ReadyForQuery::decode(b"").is_err());
        assert!(ReadyForQuery::decode(b"II").is_err());
    }

    #[test]
    fn negotiate_protocol_version_round_trips() {
        let msg = NegotiateProtocolVersion {
            newest_minor: 0,
            unrecognized: vec!["_pq_.foo".into()],
        };
        let mut buf = BytesMut::new();
        msg.encode(&mut buf).unwrap();
        assert_prefixes_incomplete(&buf, MAX_LOGIN_MESSAGE);
        assert_eq!(NegotiateProtocolVersion::decode(body(&buf)).unwrap(), msg);
        let mut bad = 0i32.to_be_bytes().to_vec();
        bad.extend_from_slice(&(-1i32).to_be_bytes());
        assert!(NegotiateProtocolVersion::decode(&bad).is_err());
        let mut huge = 0i32.to_be_bytes().to_vec();
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            NegotiateProtocolVersion::decode(&huge),
            Err(CodecError::MissingNul { .. })
        ));
    }
}
