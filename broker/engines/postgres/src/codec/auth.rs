//! The authentication exchange: the backend's `R` messages and the frontend's `p` answers.
//!
//! The frontend's `p` messages (PasswordMessage, SASLInitialResponse, SASLResponse) share one
//! tag and cannot be told apart by their bytes; the receiver decodes them with the type that
//! matches the authentication request it sent last.

use super::{CodecError, Cursor, put_cstr, tag, write_fixed_frame, write_frame};
use bytes::{BufMut, BytesMut};
use sluice_shared::Secret;

/// Authentication request codes (the first `int32` of an `R` message).
mod code {
    pub const OK: i32 = 0;
    pub const KERBEROS_V5: i32 = 2;
    pub const CLEARTEXT_PASSWORD: i32 = 3;
    pub const MD5_PASSWORD: i32 = 5;
    pub const SCM_CREDENTIAL: i32 = 6;
    pub const GSS: i32 = 7;
    pub const GSS_CONTINUE: i32 = 8;
    pub const SSPI: i32 = 9;
    pub const SASL: i32 = 10;
    pub const SASL_CONTINUE: i32 = 11;
    pub const SASL_FINAL: i32 = 12;
}

/// A backend `R` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// AuthenticationOk: the login succeeded.
    Ok,
    /// AuthenticationCleartextPassword: send the password as is.
    CleartextPassword,
    /// AuthenticationMD5Password: send `md5(md5(password + user) + salt)`.
    Md5Password {
        /// Random salt chosen by the server.
        salt: [u8; 4],
    },
    /// AuthenticationSASL: start a SASL exchange with one of these mechanisms.
    Sasl {
        /// Mechanism names in the server's order of preference.
        mechanisms: Vec<String>,
    },
    /// AuthenticationSASLContinue: the server's next SASL challenge.
    SaslContinue {
        /// Mechanism-specific data (SCRAM's server-first-message).
        data: Vec<u8>,
    },
    /// AuthenticationSASLFinal: the server's last SASL message, to be verified by the client.
    SaslFinal {
        /// Mechanism-specific data (SCRAM's server-final-message).
        data: Vec<u8>,
    },
    /// A method Sluice does not implement (Kerberos, SCM credentials, GSSAPI, SSPI, or a code
    /// from a newer server). Kept as a value so the caller can name it in an error; its body is
    /// not decoded and is not re-encoded.
    Unsupported {
        /// The request code.
        code: i32,
    },
}

impl Authentication {
    /// Decodes the body of an `R` message.
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        let mut c = Cursor::new(body, "Authentication");
        let msg = match c.i32()? {
            code::OK => Self::Ok,
            code::CLEARTEXT_PASSWORD => Self::CleartextPassword,
            code::MD5_PASSWORD => {
                let b = c.bytes(4)?;
                Self::Md5Password {
                    salt: [b[0], b[1], b[2], b[3]],
                }
            }
            code::SASL => {
                let mut mechanisms = Vec::new();
                loop {
                    let m = c.cstr()?;
                    if m.is_empty() {
                        break;
                    }
                    mechanisms.push(m.to_owned());
                }
                Self::Sasl { mechanisms }
            }
            code::SASL_CONTINUE => Self::SaslContinue {
                data: c.rest().to_vec(),
            },
            code::SASL_FINAL => Self::SaslFinal {
                data: c.rest().to_vec(),
            },
            other => {
                // Unsupported methods may carry data (GSS tokens); it is not ours to judge.
                c.rest();
                Self::Unsupported { code: other }
            }
        };
        c.finish()?;
        Ok(msg)
    }

    /// Appends the message to `buf`. Fails only when a SASL mechanism name contains NUL.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), CodecError> {
        let fixed = |buf: &mut BytesMut, code: i32, extra: &[u8]| {
            write_fixed_frame(buf, Some(tag::AUTHENTICATION), |b| {
                b.put_i32(code);
                b.put_slice(extra);
            });
        };
        match self {
            Self::Ok => fixed(buf, code::OK, &[]),
            Self::CleartextPassword => fixed(buf, code::CLEARTEXT_PASSWORD, &[]),
            Self::Md5Password { salt } => fixed(buf, code::MD5_PASSWORD, salt),
            Self::Unsupported { code } => fixed(buf, *code, &[]),
            Self::Sasl { mechanisms } => {
                return write_frame(buf, Some(tag::AUTHENTICATION), "AuthenticationSASL", |b| {
                    b.put_i32(code::SASL);
                    for m in mechanisms {
                        if m.is_empty() {
                            return Err(CodecError::Invalid {
                                what: "SASL mechanism",
                                reason: "empty name",
                            });
                        }
                        put_cstr(b, m.as_bytes(), "SASL mechanism")?;
                    }
                    b.put_u8(0);
                    Ok(())
                });
            }
            Self::SaslContinue { data } => {
                return write_frame(
                    buf,
                    Some(tag::AUTHENTICATION),
                    "AuthenticationSASLContinue",
                    |b| {
                        b.put_i32(code::SASL_CONTINUE);
                        b.put_slice(data);
                        Ok(())
                    },
                );
            }
            Self::SaslFinal { data } => {
                return write_frame(
                    buf,
                    Some(tag::AUTHENTICATION),
                    "AuthenticationSASLFinal",
                    |b| {
                        b.put_i32(code::SASL_FINAL);
                        b.put_slice(data);
                        Ok(())
                    },
                );
            }
        }
        Ok(())
    }

    /// A name for the request, for error messages ("the target asks for GSSAPI").
    pub fn method_name(&self) -> &'static str {
        match self {
            Self::Ok => "none (trust)",
            Self::CleartextPassword => "cleartext password",
            Self::Md5Password { .. } => "MD5 password",
            Self::Sasl { .. } | Self::SaslContinue { .. } | Self::SaslFinal { .. } => "SASL",
            Self::Unsupported { code } => match *code {
                code::KERBEROS_V5 => "Kerberos V5",
                code::SCM_CREDENTIAL => "SCM credentials",
                code::GSS | code::GSS_CONTINUE => "GSSAPI",
                code::SSPI => "SSPI",
                _ => "an unknown method",
            },
        }
    }
}

/// PasswordMessage: a cleartext password or an MD5 hash, NUL-terminated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordMessage {
    /// The password (or `md5...` hash) as sent; PostgreSQL does not require UTF-8 here.
    pub password: Secret<Vec<u8>>,
}

impl PasswordMessage {
    /// Decodes the body of a `p` message sent in answer to a password request.
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        let mut c = Cursor::new(body, "PasswordMessage");
        let password = c.cstr_bytes()?.to_vec();
        c.finish()?;
        Ok(Self {
            password: Secret::new(password),
        })
    }

    /// Appends the message to `buf`. Fails if the password contains NUL, which the protocol
    /// cannot carry.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), CodecError> {
        write_frame(buf, Some(tag::PASSWORD), "PasswordMessage", |b| {
            put_cstr(b, self.password.expose(), "password")
        })
    }
}

/// SASLInitialResponse: the chosen mechanism and its first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslInitialResponse {
    /// The mechanism, one of those the server offered.
    pub mechanism: String,
    /// The client-first-message; `None` is sent as length -1.
    pub data: Option<Vec<u8>>,
}

impl SaslInitialResponse {
    /// Decodes the body of a `p` message sent in answer to AuthenticationSASL.
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        let mut c = Cursor::new(body, "SASLInitialResponse");
        let mechanism = c.cstr()?.to_owned();
        let data = match c.i32()? {
            -1 => None,
            len => {
                let len = usize::try_from(len).map_err(|_| CodecError::Invalid {
                    what: "SASLInitialResponse",
                    reason: "negative data length",
                })?;
                Some(c.bytes(len)?.to_vec())
            }
        };
        c.finish()?;
        Ok(Self { mechanism, data })
    }

    /// Appends the message to `buf`. Fails if the mechanism name contains NUL.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), CodecError> {
        write_frame(buf, Some(tag::PASSWORD), "SASLInitialResponse", |b| {
            put_cstr(b, self.mechanism.as_bytes(), "SASL mechanism")?;
            match &self.data {
                None => b.put_i32(-1),
                Some(data) => {
                    let len = i32::try_from(data.len()).map_err(|_| CodecError::TooLong {
                        what: "SASLInitialResponse",
                    })?;
                    b.put_i32(len);
                    b.put_slice(data);
                }
            }
            Ok(())
        })
    }
}

/// SASLResponse: a later client message of a SASL exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslResponse {
    /// Mechanism-specific data (SCRAM's client-final-message).
    pub data: Vec<u8>,
}

impl SaslResponse {
    /// Decodes the body of a `p` message sent in answer to AuthenticationSASLContinue.
    pub fn decode(body: &[u8]) -> Result<Self, CodecError> {
        Ok(Self {
            data: body.to_vec(),
        })
    }

    /// Appends the message to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), CodecError> {
        write_frame(buf, Some(tag::PASSWORD), "SASLResponse", |b| {
            b.put_slice(&self.data);
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

    fn frame(encode: impl FnOnce(&mut BytesMut) -> Result<(), CodecError>) -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode(&mut buf).unwrap();
        buf.to_vec()
    }

    fn body(frame: &[u8]) -> &[u8] {
        parse(frame, MAX_LOGIN_MESSAGE).unwrap().unwrap().body
    }

    #[test]
    fn authentication_round_trips() {
        for msg in [
            Authentication::Ok,
            Authentication::CleartextPassword,
            Authentication::Md5Password { salt: [1, 2, 3, 4] },
            Authentication::Sasl {
                mechanisms: vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()],
            },
            Authentication::SaslContinue {
                data: b"r=abc,s=xyz,i=4096".to_vec(),
            },
            Authentication::SaslFinal {
                data: b"v=xyz".to_vec(),
            },
            Authentication::Unsupported { code: 7 },
        ] {
            let f = frame(|b| msg.encode(b));
            assert_eq!(f[0], b'R');
            assert_prefixes_incomplete(&f, MAX_LOGIN_MESSAGE);
            assert_eq!(Authentication::decode(body(&f)).unwrap(), msg);
        }
    }

    #[test]
    fn exact_bytes_of_the_requests_the_proxy_sends() {
        assert_eq!(
            frame(|b| Authentication::Ok.encode(b)),
            b"R\0\0\0\x08\0\0\0\0"
        );
        assert_eq!(
            frame(|b| Authentication::CleartextPassword.encode(b)),
            b"R\0\0\0\x08\0\0\0\x03"
        );
    }

    #[test]
    fn malformed_authentication_is_invalid() {
        // MD5 with a short salt.
        assert!(matches!(
            Authentication::decode(&[0, 0, 0, 5, 1, 2]),
            Err(CodecError::Truncated { .. })
        ));
        // Ok with trailing bytes.
        assert!(matches!(
            Authentication::decode(&[0, 0, 0, 0, 9]),
            Err(CodecError::Trailing { .. })
        ));
        // SASL list without its terminator.
        let mut b = 10i32.to_be_bytes().to_vec();
        b.extend_from_slice(b"SCRAM-SHA-256\0");
        assert!(matches!(
            Authentication::decode(&b),
            Err(CodecError::MissingNul { .. })
        ));
        // No code at all.
        assert!(matches!(
            Authentication::decode(&[0, 0]),
            Err(CodecError::Truncated { .. })
        ));
    }

    #[test]
    fn unsupported_methods_are_named() {
        let gss = Authentication::decode(&[0, 0, 0, 7]).unwrap();
        assert_eq!(gss.method_name(), "GSSAPI");
        let cont = Authentication::decode(&[0, 0, 0, 8, 1, 2, 3]).unwrap();
        assert_eq!(cont, Authentication::Unsupported { code: 8 });
    }

    #[test]
    fn password_message_round_trips_and_needs_its_nul() {
        let msg = PasswordMessage {
            password: Secret::new(b"s3cret".to_vec()),
        };
        let f = frame(|b| msg.encode(b));
        assert_eq!(f, b"p\0\0\0\x0bs3cret\0");
        assert_prefixes_incomplete(&f, MAX_LOGIN_MESSAGE);
        assert_eq!(PasswordMessage::decode(body(&f)).unwrap(), msg);
        assert!(matches!(
            PasswordMessage::decode(b"s3cret"),
            Err(CodecError::MissingNul { .. })
        ));
        assert!(matches!(
            PasswordMessage::decode(b"a\0b\0"),
            Err(CodecError::Trailing { .. })
        ));
        let nul = PasswordMessage {
            password: Secret::new(b"a\0b".to_vec()),
        };
        assert!(nul.encode(&mut BytesMut::new()).is_err());
    }

    #[test]
    fn decode_errors_never_show_the_password() {
        let err = PasswordMessage::decode(b"hunter2-no-nul").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        let dbg = format!("{:?}", PasswordMessage::decode(b"hunter2\0").unwrap());
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn sasl_messages_round_trip() {
        for msg in [
            SaslInitialResponse {
                mechanism: "SCRAM-SHA-256".into(),
                data: Some(b"n,,n=,r=abc".to_vec()),
            },
            SaslInitialResponse {
                mechanism: "SCRAM-SHA-256".into(),
                data: None,
            },
        ] {
            let f = frame(|b| msg.encode(b));
            assert_prefixes_incomplete(&f, MAX_LOGIN_MESSAGE);
            assert_eq!(SaslInitialResponse::decode(body(&f)).unwrap(), msg);
        }
        let msg = SaslResponse {
            data: b"c=biws,r=abc,p=xyz".to_vec(),
        };
        let f = frame(|b| msg.encode(b));
        assert_eq!(SaslResponse::decode(body(&f)).unwrap(), msg);
    }

    #[test]
    fn sasl_initial_response_lengths_are_checked() {
        let mut b = b"SCRAM-SHA-256\0".to_vec();
        b.extend_from_slice(&(-2i32).to_be_bytes());
        assert!(matches!(
            SaslInitialResponse::decode(&b),
            Err(CodecError::Invalid { .. })
        ));
        let mut b = b"SCRAM-SHA-256\0".to_vec();
        b.extend_from_slice(&10i32.to_be_bytes());
        b.extend_from_slice(b"short");
        assert!(matches!(
            SaslInitialResponse::decode(&b),
            Err(CodecError::Truncated { .. })
        ));
        let mut b = b"SCRAM-SHA-256\0".to_vec();
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(b"ab");
        assert!(matches!(
            SaslInitialResponse::decode(&b),
            Err(CodecError::Trailing { .. })
        ));
    }
}
