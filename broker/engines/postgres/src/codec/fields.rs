//! ErrorResponse (`E`) and NoticeResponse (`N`): a list of typed fields.
//!
//! Each field is a one-byte type (`S` severity, `V` non-localized severity, `C` SQLSTATE,
//! `M` message, `D` detail, `H` hint, ...) and a NUL-terminated string; a zero byte ends the
//! list. Field order is kept as sent, so a message re-encodes to the same bytes.

use super::{CodecError, Cursor, put_cstr, tag, write_frame};
use bytes::{BufMut, BytesMut};

/// Field type bytes used by the proxy.
pub mod field {
    /// Severity, possibly localized.
    pub const SEVERITY: u8 = b'S';
    /// Severity, never localized (PostgreSQL 9.6+).
    pub const SEVERITY_NONLOCALIZED: u8 = b'V';
    /// SQLSTATE code.
    pub const CODE: u8 = b'C';
    /// Primary message.
    pub const MESSAGE: u8 = b'M';
    /// Optional detail.
    pub const DETAIL: u8 = b'D';
    /// Optional hint: what to do about it.
    pub const HINT: u8 = b'H';
}

/// Severity of an error or notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The current command failed.
    Error,
    /// The session is ending.
    Fatal,
    /// Every session is ending.
    Panic,
    /// Notice: a warning.
    Warning,
    /// Notice: informational.
    Notice,
    /// Notice: debugging output.
    Debug,
    /// Notice: requested information.
    Info,
    /// Notice: log output.
    Log,
}

impl Severity {
    /// The word PostgreSQL puts in the `S` and `V` fields.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Fatal => "FATAL",
            Self::Panic => "PANIC",
            Self::Warning => "WARNING",
            Self::Notice => "NOTICE",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Log => "LOG",
        }
    }
}

/// The fields of an ErrorResponse or NoticeResponse, in wire order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorFields {
    /// `(type, value)` pairs as sent.
    pub fields: Vec<(u8, String)>,
}

impl ErrorFields {
    /// An error or notice with severity (`S` and `V`), SQLSTATE (`C`) and message (`M`), the
    /// fields and order PostgreSQL itself sends.
    pub fn new(severity: Severity, code: &str, message: impl Into<String>) -> Self {
        Self {
            fields: vec![
                (field::SEVERITY, severity.as_str().to_owned()),
                (field::SEVERITY_NONLOCALIZED, severity.as_str().to_owned()),
                (field::CODE, code.to_owned()),
                (field::MESSAGE, message.into()),
            ],
        }
    }

    /// Adds a detail (`D`) field.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.fields.push((field::DETAIL, detail.into()));
        self
    }

    /// Adds a hint (`H`) field.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.fields.push((field::HINT, hint.into()));
        self
    }

    /// The first field of type `ty`.
    pub fn get(&self, ty: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, v)| v.as_str())
    }

    /// The non-localized severity if sent, else the localized one.
    pub fn severity(&self) -> Option<&str> {
        self.get(field::SEVERITY_NONLOCALIZED)
            .or_else(|| self.get(field::SEVERITY))
    }

    /// The SQLSTATE code.
    pub fn code(&self) -> Option<&str> {
        self.get(field::CODE)
    }

    /// The primary message.
    pub fn message(&self) -> Option<&str> {
        self.get(field::MESSAGE)
    }

    /// Decodes the body of an `E` or `N` message.
    ///
    /// Values are decoded as UTF-8 with invalid sequences replaced: during login the server
    /// may still write in its own encoding, and an error that cannot be read is worse than one
    /// with a replacement character.
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        let mut c = Cursor::new(body, "ErrorResponse");
        let mut fields = Vec::new();
        loop {
            let ty = c.u8()?;
            if ty == 0 {
                break;
            }
            let value = String::from_utf8_lossy(c.cstr_bytes()?).into_owned();
            fields.push((ty, value));
        }
        c.finish()?;
        Ok(Self { fields })
    }

    /// Appends an ErrorResponse to `buf`. Fails if a value contains NUL or a type is zero.
    pub fn encode_error(&self, buf: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(buf, tag::ERROR_RESPONSE)
    }

    /// Appends a NoticeResponse to `buf`. Fails if a value contains NUL or a type is zero.
    pub fn encode_notice(&self, buf: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(buf, tag::NOTICE_RESPONSE)
    }

    fn encode(&self, buf: &mut BytesMut, tag: u8) -> Result<(), CodecError> {
        write_frame(buf, Some(tag), "ErrorResponse", |b| {
            for (ty, value) in &self.fields {
                if *ty == 0 {
                    // A zero type would read back as the end of the list.
                    return Err(CodecError::Invalid {
                        what: "error field",
                        reason: "field type 0",
                    });
                }
                b.put_u8(*ty);
                put_cstr(b, value.as_bytes(), "error field")?;
            }
            b.put_u8(0);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::codec::test_util::assert_prefixes_incomplete;
    use crate::codec::{MAX_LOGIN_MESSAGE, parse};

    #[test]
    fn exact_bytes_of_a_fatal_error() {
        let e = ErrorFields::new(Severity::Fatal, "28P01", "no").with_hint("try again");
        let mut buf = BytesMut::new();
        e.encode_error(&mut buf).unwrap();
        let mut want = b"E".to_vec();
        let body = b"SFATAL\0VFATAL\0C28P01\0Mno\0Htry again\0\0";
        want.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        want.extend_from_slice(body);
        assert_eq!(&buf[..], &want[..]);
    }

    #[test]
    fn round_trips_as_error_and_notice() {
        let e = ErrorFields::new(Severity::Warning, "01000", "careful")
            .with_detail("details")
            .with_hint("hint");
        for (encode, tag) in [
            (
                ErrorFields::encode_error as fn(&ErrorFields, &mut BytesMut) -> _,
                b'E',
            ),
            (ErrorFields::encode_notice, b'N'),
        ] {
            let mut buf = BytesMut::new();
            encode(&e, &mut buf).unwrap();
            assert_prefixes_incomplete(&buf, MAX_LOGIN_MESSAGE);
            let f = parse(&buf, MAX_LOGIN_MESSAGE).unwrap().unwrap();
            assert_eq!(f.tag, tag);
            let back = ErrorFields::decode(f.body).unwrap();
            assert_eq!(back, e);
            assert_eq!(back.severity(), Some("WARNING"));
            assert_eq!(back.code(), Some("01000"));
            assert_eq!(back.message(), Some("careful"));
        }
    }

    #[test]
    fn malformed_fields_are_invalid() {
        assert!(matches!(
            ErrorFields::decode(b""),
            Err(CodecError::Truncated { .. })
        ));
        assert!(matches!(
            ErrorFields::decode(b"Mtext"),
            Err(CodecError::MissingNul { .. })
        ));
        assert!(matches!(
            ErrorFields::decode(b"Mtext\0"),
            Err(CodecError::Truncated { .. })
        ));
        assert!(matches!(
            ErrorFields::decode(b"Mtext\0\0x"),
            Err(CodecError::Trailing { .. })
        ));
        assert_eq!(ErrorFields::decode(b"\0").unwrap(), ErrorFields::default());
    }

    #[test]
    fn undecodable_text_is_replaced_not_refused() {
        let e = ErrorFields::decode(b"Mcaf\xe9\0\0").unwrap();
        assert_eq!(e.message(), Some("caf\u{fffd}"));
    }

    #[test]
    fn encoding_refuses_nul() {
        let e = ErrorFields::new(Severity::Error, "XX000", "a\0b");
        let mut buf = BytesMut::new();
        assert!(e.encode_error(&mut buf).is_err());
        assert!(buf.is_empty());
    }
}
