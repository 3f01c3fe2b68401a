//! The PostgreSQL v3 wire protocol as pure values: no I/O, no runtime.
//!
//! Every message is framed one of two ways:
//!
//! - **untagged** (only the first packet of a connection: [`StartupPacket`]): an `int32`
//!   length that counts itself, then the payload;
//! - **tagged** (everything after): a one-byte tag, an `int32` length that counts itself but
//!   not the tag, then the body.
//!
//! Reading is always two steps, as in mini-redis: a `check` that looks only at what is buffered
//! and says "incomplete" (`Ok(None)`), "invalid" (`Err`) or "a whole frame of N bytes"; then a
//! `decode` of exactly that frame. Incomplete is never an error: every prefix of a valid message
//! is incomplete. Decoders take the body of one complete frame and refuse trailing bytes, so a
//! message means one thing only.
//!
//! One file per message family: [`startup`] (untagged packets), [`frame`] (tagged framing),
//! [`auth`] (the `R` and `p` exchange), [`status`] (what the server says after login),
//! [`fields`] (ErrorResponse and NoticeResponse), [`frontend`] (Query, Terminate),
//! [`backend`] (one enum over every backend message of the login phase). `oracle` (tests and
//! the `fuzzing` feature only) holds the properties the fuzz targets in `fuzz/` check.
//!
//! Error messages of this module describe structure only, never payload bytes: a rejected
//! packet may carry a password.

pub mod auth;
pub mod backend;
pub mod fields;
pub mod frame;
pub mod frontend;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod oracle;
pub mod query;
pub mod startup;
pub mod status;

pub use auth::{Authentication, PasswordMessage, SaslInitialResponse, SaslResponse};
pub use backend::BackendMessage;
pub use fields::{ErrorFields, Severity};
pub use frame::{Frame, HEADER_LEN, MAX_LOGIN_MESSAGE, MAX_MESSAGE, check, parse, parse_header};
pub use frontend::{Query, Terminate};
pub use startup::{MAX_STARTUP_PACKET, MIN_STARTUP_PACKET, StartupPacket, check_startup};
pub use status::{BackendKeyData, NegotiateProtocolVersion, ParameterStatus, ReadyForQuery};

use bytes::{BufMut, BytesMut};

/// Message tags of the tagged messages this crate knows, from the protocol documentation.
pub mod tag {
    /// Backend: Authentication* (all variants share the tag).
    pub const AUTHENTICATION: u8 = b'R';
    /// Backend: ParameterStatus.
    pub const PARAMETER_STATUS: u8 = b'S';
    /// Backend: BackendKeyData.
    pub const BACKEND_KEY_DATA: u8 = b'K';
    /// Backend: ReadyForQuery.
    pub const READY_FOR_QUERY: u8 = b'Z';
    /// Backend: ErrorResponse.
    pub const ERROR_RESPONSE: u8 = b'E';
    /// Backend: NoticeResponse.
    pub const NOTICE_RESPONSE: u8 = b'N';
    /// Backend: NegotiateProtocolVersion.
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
    /// Backend: NotificationResponse (a `NOTIFY` or `pg_notify` delivered to a listener).
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
    /// Frontend: PasswordMessage, SASLInitialResponse and SASLResponse (typed by auth state).
    pub const PASSWORD: u8 = b'p';
    /// Frontend: simple Query.
    pub const QUERY: u8 = b'Q';
    /// Frontend: Terminate.
    pub const TERMINATE: u8 = b'X';
}

/// Why bytes are not a valid message. Messages describe structure only, never content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The length field is negative, too small for the message, or above the allowed maximum.
    #[error("invalid {what} length {len} (allowed {min} to {max})")]
    Length {
        /// Which kind of message.
        what: &'static str,
        /// The length field as sent (may be negative).
        len: i64,
        /// Smallest acceptable value.
        min: usize,
        /// Largest acceptable value.
        max: usize,
    },
    /// A startup packet asks for a protocol version other than 3.0.
    #[error("unsupported frontend protocol {major}.{minor}: Sluice supports protocol 3.0 only")]
    UnsupportedProtocol {
        /// Major version requested.
        major: u16,
        /// Minor version requested.
        minor: u16,
    },
    /// A string field is not NUL-terminated within the message.
    #[error("{what}: missing NUL terminator")]
    MissingNul {
        /// Which field.
        what: &'static str,
    },
    /// A string field is not UTF-8.
    #[error("{what}: not valid UTF-8")]
    Utf8 {
        /// Which field.
        what: &'static str,
    },
    /// The message ends before a fixed-size field.
    #[error("{what}: message ends early")]
    Truncated {
        /// Which field.
        what: &'static str,
    },
    /// The message carries bytes after its last field.
    #[error("{what}: {count} unexpected trailing bytes")]
    Trailing {
        /// Which message.
        what: &'static str,
        /// How many bytes were left over.
        count: usize,
    },
    /// A value is out of its domain (an unknown status byte, an empty parameter name, ...).
    #[error("{what}: {reason}")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A tag that is not allowed here.
    #[error("unexpected message type {:?} {context}", char::from(*tag))]
    UnexpectedTag {
        /// The tag received.
        tag: u8,
        /// Where it arrived, e.g. "during login".
        context: &'static str,
    },
    /// A string to encode contains a NUL byte, which would end it early on the wire.
    #[error("{what} contains a NUL byte")]
    NulInString {
        /// Which field.
        what: &'static str,
    },
    /// A message to encode is longer than the protocol's `int32` length allows.
    #[error("{what} is too long to encode")]
    TooLong {
        /// Which message.
        what: &'static str,
    },
}

/// Reads fields from the body of one complete message. Every read checks bounds, so a short
/// body is an error, never a panic.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    /// What is left to read.
    buf: &'a [u8],
    /// Which message, for error messages.
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError::Truncated { what: self.what });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn i32(&mut self) -> Result<i32, CodecError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A NUL-terminated byte string, without its NUL.
    pub(crate) fn cstr_bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let Some(nul) = self.buf.iter().position(|&b| b == 0) else {
            return Err(CodecError::MissingNul { what: self.what });
        };
        let s = &self.buf[..nul];
        self.buf = &self.buf[nul + 1..];
        Ok(s)
    }

    /// A NUL-terminated UTF-8 string, without its NUL.
    pub(crate) fn cstr(&mut self) -> Result<&'a str, CodecError> {
        let what = self.what;
        std::str::from_utf8(self.cstr_bytes()?).map_err(|_| CodecError::Utf8 { what })
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Fails if anything is left: a message means one thing only.
    pub(crate) fn finish(self) -> Result<(), CodecError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CodecError::Trailing {
                what: self.what,
                count: self.buf.len(),
            })
        }
    }
}

/// Appends one frame to `buf`: the optional tag, a length placeholder, the body written by
/// `body`, then the real length. On error `buf` is left as it was, so a half-written message
/// never reaches the wire.
pub(crate) fn write_frame(
    buf: &mut BytesMut,
    tag: Option<u8>,
    what: &'static str,
    body: impl FnOnce(&mut BytesMut) -> Result<(), CodecError>,
) -> Result<(), CodecError> {
    let start = buf.len();
    if let Some(tag) = tag {
        buf.put_u8(tag);
    }
    let len_at = buf.len();
    buf.put_i32(0);
    if let Err(e) = body(buf) {
        buf.truncate(start);
        return Err(e);
    }
    let Ok(len) = i32::try_from(buf.len() - len_at) else {
        buf.truncate(start);
        return Err(CodecError::TooLong { what });
    };
    buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Appends `s` and its NUL terminator, refusing an embedded NUL.
pub(crate) fn put_cstr(buf: &mut BytesMut, s: &[u8], what: &'static str) -> Result<(), CodecError> {
    if s.contains(&0) {
        return Err(CodecError::NulInString { what });
    }
    buf.put_slice(s);
    buf.put_u8(0);
    Ok(())
}

/// Frames whose body cannot fail to encode (fixed fields only) go through here so their
/// encoders stay infallible. The only possible error, a body over 2 GiB, cannot happen for
/// them; should it ever, the message is left out rather than sent corrupt.
pub(crate) fn write_fixed_frame(
    buf: &mut BytesMut,
    tag: Option<u8>,
    body: impl FnOnce(&mut BytesMut),
) {
    let _ = write_frame(buf, tag, "message", |b| {
        body(b);
        Ok(())
    });
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Shared checks for the per-family tests.

    /// Every strict prefix of a complete frame must be reported incomplete by `check`, never
    /// invalid; the whole frame must be reported complete with its exact length.
    pub(crate) fn assert_prefixes_incomplete(frame: &[u8], max: usize) {
        for n in 0..frame.len() {
            assert_eq!(
                super::check(&frame[..n], max),
                Ok(None),
                "prefix of {n} bytes should be incomplete"
            );
        }
        let (_, total) = super::check(frame, max)
            .expect("valid frame")
            .expect("complete frame");
        assert_eq!(total, frame.len());
    }
}
