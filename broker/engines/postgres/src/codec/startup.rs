//! The untagged first packet of a connection: SSLRequest, GSSENCRequest, CancelRequest or
//! StartupMessage.
//!
//! Layout: `int32` length counting itself, `int32` request code, then the payload. The code
//! tells the kinds apart: three magic numbers below any real protocol version, or the protocol
//! version `major << 16 | minor`. Sluice speaks 3.0 only; other versions are refused with the
//! message PostgreSQL users know ("unsupported frontend protocol 2.0").

use super::{CodecError, Cursor, put_cstr, write_fixed_frame, write_frame};
use bytes::{BufMut, BytesMut};

/// Smallest valid startup packet (an SSLRequest: length and code).
pub const MIN_STARTUP_PACKET: usize = 8;

/// Largest startup packet PostgreSQL accepts (`MAX_STARTUP_PACKET_LENGTH`); the same bound
/// keeps an unauthenticated client from making the broker buffer more.
pub const MAX_STARTUP_PACKET: usize = 10_000;

/// Request code of an SSLRequest.
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
/// Request code of a GSSENCRequest.
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
/// Request code of a CancelRequest.
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;
/// Protocol version 3.0, the only one Sluice speaks.
pub const PROTOCOL_3_0: i32 = 196_608;

/// A decoded first packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    /// The client asks whether the server will speak TLS; answered with one byte.
    SslRequest,
    /// The client asks whether the server will speak GSSAPI encryption; answered with one byte.
    GssEncRequest,
    /// Cancel the query running on the connection identified by `pid` and `key`, which the
    /// server sent earlier in BackendKeyData.
    CancelRequest {
        /// Process id from BackendKeyData.
        pid: i32,
        /// Secret key from BackendKeyData.
        key: i32,
    },
    /// Start a session with protocol 3.0.
    StartupMessage {
        /// Run-time parameters in the order sent (`user`, `database`, `application_name`, ...).
        params: Vec<(String, String)>,
    },
}

impl StartupPacket {
    /// Decodes one complete packet (length field included), as delimited by [`check_startup`].
    pub fn decode(packet: &[u8]) -> Result<Self, CodecError> {
        let mut c = Cursor::new(packet, "startup packet");
        let len = c.i32()?;
        if usize::try_from(len).ok() != Some(packet.len()) {
            return Err(CodecError::Invalid {
                what: "startup packet",
                reason: "length field does not match the packet",
            });
        }
        let code = c.i32()?;
        // The three requests have a fixed size; anything else is malformed, not a longer form.
        let exact = |what: &'static str, want: usize| {
            if packet.len() == want {
                Ok(())
            } else {
                Err(CodecError::Length {
                    what,
                    len: i64::from(len),
                    min: want,
                    max: want,
                })
            }
        };
        match code {
            SSL_REQUEST_CODE => exact("SSLRequest", 8).map(|()| Self::SslRequest),
            GSSENC_REQUEST_CODE => exact("GSSENCRequest", 8).map(|()| Self::GssEncRequest),
            CANCEL_REQUEST_CODE => {
                exact("CancelRequest", 16)?;
                let pid = c.i32()?;
                let key = c.i32()?;
                c.finish()?;
                Ok(Self::CancelRequest { pid, key })
            }
            PROTOCOL_3_0 => decode_params(Cursor::new(c.rest(), "startup parameters"))
                .map(|params| Self::StartupMessage { params }),
            other => Err(CodecError::UnsupportedProtocol {
                major: (other >> 16) as u16,
                minor: (other & 0xffff) as u16,
            }),
        }
    }

    /// Appends the packet to `buf`. Fails only for a StartupMessage whose parameter name is
    /// empty or whose name or value contains NUL.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), CodecError> {
        match self {
            Self::SslRequest => write_fixed_frame(buf, None, |b| b.put_i32(SSL_REQUEST_CODE)),
            Self::GssEncRequest => write_fixed_frame(buf, None, |b| b.put_i32(GSSENC_REQUEST_CODE)),
            Self::CancelRequest { pid, key } => write_fixed_frame(buf, None, |b| {
                b.put_i32(CANCEL_REQUEST_CODE);
                b.put_i32(*pid);
                b.put_i32(*key);
            }),
            Self::StartupMessage { params } => {
                return write_frame(buf, None, "StartupMessage", |b| {
                    b.put_i32(PROTOCOL_3_0);
                    for (name, value) in params {
                        if name.is_empty() {
                            // An empty name would read back as the list terminator.
                            return Err(CodecError::Invalid {
                                what: "startup parameter",
                                reason: "empty parameter name",
                            });
                        }
                        put_cstr(b, name.as_bytes(), "startup parameter name")?;
                        put_cstr(b, value.as_bytes(), "startup parameter value")?;
                    }
                    b.put_u8(0);
                    Ok(())
                });
            }
        }
        Ok(())
    }

    /// The last value of parameter `name` in a StartupMessage (later duplicates win, as in
    /// PostgreSQL); `None` for other packets or an absent parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        match self {
            Self::StartupMessage { params } => param(params, name),
            _ => None,
        }
    }
}

/// The last value of `name` in a startup parameter list.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Name/value pairs, each NUL-terminated, the list ended by one more NUL that must be the last
/// byte of the packet.
fn decode_params(mut c: Cursor<'_>) -> Result<Vec<(String, String)>, CodecError> {
    let mut params = Vec::new();
    loop {
        let name = c.cstr()?;
        if name.is_empty() {
            c.finish()?;
            return Ok(params);
        }
        let value = c.cstr()?;
        params.push((name.to_owned(), value.to_owned()));
    }
}

/// Is a whole startup packet at the start of `buf`? Returns its length when it is.
///
/// `Ok(None)`: read more. `Err`: the length field is outside
/// [`MIN_STARTUP_PACKET`]..=[`MAX_STARTUP_PACKET`].
pub fn check_startup(buf: &[u8]) -> Result<Option<usize>, CodecError> {
    let Some(header) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = startup_len(header)?;
    Ok((buf.len() >= len).then_some(len))
}

/// Validates the length field of a startup packet and returns the packet's length.
pub fn startup_len(header: &[u8; 4]) -> Result<usize, CodecError> {
    let len = i32::from_be_bytes(*header);
    usize::try_from(len)
        .ok()
        .filter(|l| (MIN_STARTUP_PACKET..=MAX_STARTUP_PACKET).contains(l))
        .ok_or(CodecError::Length {
            what: "startup packet",
            len: i64::from(len),
            min: MIN_STARTUP_PACKET,
            max: MAX_STARTUP_PACKET,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn encoded(p: &StartupPacket) -> Vec<u8> {
        let mut buf = BytesMut::new();
        p.encode(&mut buf).unwrap();
        buf.to_vec()
    }

    fn startup() -> StartupPacket {
        StartupPacket::StartupMessage {
            params: vec![
                ("user".into(), "alice".into()),
                ("database".into(), "app".into()),
                ("application_name".into(), "psql".into()),
            ],
        }
    }

    #[test]
    fn round_trips() {
        for p in [
            StartupPacket::SslRequest,
            StartupPacket::GssEncRequest,
            StartupPacket::CancelRequest { pid: 1234, key: -5 },
            startup(),
            StartupPacket::StartupMessage { params: vec![] },
        ] {
            let bytes = encoded(&p);
            assert_eq!(check_startup(&bytes), Ok(Some(bytes.len())));
            assert_eq!(StartupPacket::decode(&bytes).unwrap(), p);
        }
    }

    #[test]
    fn exact_bytes_of_an_ssl_request() {
        assert_eq!(
            encoded(&StartupPacket::SslRequest),
            [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]
        );
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for p in [
            StartupPacket::SslRequest,
            StartupPacket::CancelRequest { pid: 1, key: 2 },
            startup(),
        ] {
            let bytes = encoded(&p);
            for n in 0..bytes.len() {
                assert_eq!(check_startup(&bytes[..n]), Ok(None), "{p:?} prefix {n}");
            }
        }
    }

    #[test]
    fn lengths_out_of_range_are_refused() {
        for len in [i32::MIN, -1, 0, 4, 7, 10_001, i32::MAX] {
            let err = check_startup(&len.to_be_bytes()).unwrap_err();
            assert!(matches!(err, CodecError::Length { .. }), "{len}: {err:?}");
        }
        assert_eq!(check_startup(&10_000i32.to_be_bytes()), Ok(None));
    }

    #[test]
    fn protocol_2_is_refused_by_name() {
        let mut p = 8i32.to_be_bytes().to_vec();
        p.extend_from_slice(&0x0002_0000i32.to_be_bytes());
        let err = StartupPacket::decode(&p).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unsupported frontend protocol 2.0"),
            "{err}"
        );
        let mut p = 8i32.to_be_bytes().to_vec();
        p.extend_from_slice(&0x0003_0002i32.to_be_bytes());
        assert_eq!(
            StartupPacket::decode(&p),
            Err(CodecError::UnsupportedProtocol { major: 3, minor: 2 })
        );
    }

    #[test]
    fn missing_nuls_are_invalid() {
        let good = encoded(&startup());
        // Drop the list terminator: the packet now ends right after a value.
        let mut no_terminator = good[..good.len() - 1].to_vec();
        let len = no_terminator.len() as i32;
        no_terminator[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            StartupPacket::decode(&no_terminator),
            Err(CodecError::MissingNul { .. })
        ));
        // A name with no value at all.
        let mut half = Vec::new();
        half.extend_from_slice(&0i32.to_be_bytes());
        half.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
        half.extend_from_slice(b"user");
        let len = half.len() as i32;
        half[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            StartupPacket::decode(&half),
            Err(CodecError::MissingNul { .. })
        ));
    }

    #[test]
    fn bytes_after_the_terminator_are_invalid() {
        let mut p = encoded(&startup());
        p.extend_from_slice(b"x\0");
        let len = p.len() as i32;
        p[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            StartupPacket::decode(&p),
            Err(CodecError::Trailing { .. })
        ));
    }

    #[test]
    fn fixed_size_requests_must_have_their_size() {
        let mut p = encoded(&StartupPacket::SslRequest);
        p.extend_from_slice(&[0, 0, 0, 0]);
        p[..4].copy_from_slice(&12i32.to_be_bytes());
        assert!(matches!(
            StartupPacket::decode(&p),
            Err(CodecError::Length { .. })
        ));
        let p = encoded(&StartupPacket::CancelRequest { pid: 1, key: 2 });
        let mut short = p[..12].to_vec();
        short[..4].copy_from_slice(&12i32.to_be_bytes());
        assert!(matches!(
            StartupPacket::decode(&short),
            Err(CodecError::Length { .. })
        ));
    }

    #[test]
    fn non_utf8_parameters_are_invalid() {
        let mut p = Vec::new();
        p.extend_from_slice(&0i32.to_be_bytes());
        p.extend_from_slice(&PROTOCOL_3_0.to_be_bytes());
        p.extend_from_slice(b"user\0\xff\xfe\0\0");
        let len = p.len() as i32;
        p[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            StartupPacket::decode(&p),
            Err(CodecError::Utf8 { .. })
        ));
    }

    #[test]
    fn encoding_refuses_nul_and_empty_names() {
        let mut buf = BytesMut::new();
        let bad = StartupPacket::StartupMessage {
            params: vec![("user".into(), "a\0b".into())],
        };
        assert!(bad.encode(&mut buf).is_err());
        let empty = StartupPacket::StartupMessage {
            params: vec![(String::new(), "x".into())],
        };
        assert!(empty.encode(&mut buf).is_err());
        assert!(buf.is_empty(), "a failed encode leaves nothing behind");
    }

    #[test]
    fn later_duplicates_win() {
        let p = StartupPacket::StartupMessage {
            params: vec![("user".into(), "a".into()), ("user".into(), "b".into())],
        };
        assert_eq!(p.param("user"), Some("b"));
        assert_eq!(p.param("database"), None);
    }
}
